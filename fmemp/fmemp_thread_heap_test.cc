// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The C API's per-thread heaps (FMEMP_POLICY_THREAD_HEAPS): binding,
// unbinding, the errors of each call, probes, and threads that exit bound.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "fmemp/fmemp.h"
#include "fmemp/test_util.h"
#include "gtest/gtest.h"

namespace {

using fmemp::test_util::Fill;
using fmemp::test_util::HasFill;
using fmemp::test_util::ScopedFMemp;

constexpr size_t kBytes = size_t{1} << 20;

struct Buffer {
  explicit Buffer(size_t bytes = kBytes)
      : bytes(bytes), data(new uint64_t[bytes / 8]) {}
  char* begin() { return reinterpret_cast<char*>(data.get()); }
  char* end() { return begin() + bytes; }
  bool Holds(const void* p) { return p >= begin() && p < end(); }
  size_t bytes;
  std::unique_ptr<uint64_t[]> data;
};

FMempUsage Usage(FMemp* memp) {
  FMempUsage usage = {};
  EXPECT_EQ(FMempProbe64(memp, &usage), FMEMP_SUCCESS);
  return usage;
}

std::atomic<int> misuse_reports{0};
void CountMisuse(void*, int, const void*) { misuse_reports.fetch_add(1); }

TEST(FMempThreadHeapTest, WorkerBindsAllocatesAndExits) {
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared, own;
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  misuse_reports.store(0);
  ASSERT_EQ(FMempSetErrorHandler(memp, &CountMisuse, nullptr), FMEMP_SUCCESS);
  std::vector<void*> blocks;
  std::thread worker([&] {
    ASSERT_EQ(FMempAddRegion(memp, own.begin(), own.end()), FMEMP_SUCCESS);
    ASSERT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);
    EXPECT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);  // again
    for (int i = 0; i < 10; ++i) {
      void* p = i % 2 == 0 ? FMempMalloc(memp, 100 + i)
                           : FMempMallocAlign(memp, 100, 256);
      ASSERT_TRUE(own.Holds(p));
      Fill(p, 100, static_cast<uint8_t>(i));
      blocks.push_back(p);
    }
    void* zeroed = FMempCalloc(memp, 10, 10);
    EXPECT_TRUE(own.Holds(zeroed));
    FMempFree(memp, zeroed);
    EXPECT_EQ(FMempThreadHeapCount(memp), 1u);
    FMempThreadHeapUsage usage = {};
    ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_SUCCESS);
    EXPECT_EQ(usage.live_blocks, 10u);
    EXPECT_EQ(usage.regions, 1u);
    // Small blocks freed (and refilled) by the worker are parked in its
    // thread heap's cache: neither used nor free, in both probes.
    EXPECT_GT(usage.cached_bytes, 0u);
    EXPECT_EQ(usage.used + usage.cached_bytes + usage.free_bytes, usage.total);
    EXPECT_EQ(Usage(memp).cached_bytes, usage.cached_bytes);
    EXPECT_NE(usage.thread_id, 0u);
    EXPECT_EQ(FMempRegionCount(memp), 2u);  // shared and its own
    EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  });
  worker.join();  // exits bound, with its blocks alive
  EXPECT_EQ(FMempThreadHeapCount(memp), 0u);
  EXPECT_EQ(FMempRegionCount(memp), 2u);  // both shared now
  EXPECT_EQ(Usage(memp).live_blocks, 10u);
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_TRUE(HasFill(blocks[i], 100, static_cast<uint8_t>(i)));
    FMempFree(memp, blocks[i]);
  }
  EXPECT_EQ(Usage(memp).used, 0u);
  EXPECT_EQ(FMempRemoveRegion(memp, own.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  EXPECT_EQ(misuse_reports.load(), 0);
}

// Frees of a thread heap's blocks by another thread wait for the owner's next
// call; FMempSyncThreadHeap is such a call that neither allocates nor frees.
// FMempDrainThreadCaches reaches the thread heap of a thread that stays idle:
// its parked blocks are free when the call returns.
TEST(FMempThreadHeapTest, DrainReachesAnIdleThreadsThreadHeap) {
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared, own;
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  std::atomic<int> step{0};
  std::thread worker([&] {
    ASSERT_EQ(FMempAddRegion(memp, own.begin(), own.end()), FMEMP_SUCCESS);
    ASSERT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);
    for (int i = 0; i < 20; ++i) FMempFree(memp, FMempMalloc(memp, 24 + i));
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();  // idle
    void* p = FMempMalloc(memp, 64);  // carries on after the drain
    EXPECT_TRUE(own.Holds(p));
    FMempFree(memp, p);
  });
  while (step.load() != 1) std::this_thread::yield();
  const FMempUsage before = Usage(memp);
  EXPECT_GT(before.cached_bytes, 0u);
  ASSERT_EQ(FMempDrainThreadCaches(memp), FMEMP_SUCCESS);
  const FMempUsage after = Usage(memp);
  EXPECT_EQ(after.cached_bytes, 0u);
  EXPECT_EQ(after.free_bytes, before.free_bytes + before.cached_bytes);
  FMempThreadHeapUsage usage = {};
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.cached_bytes, 0u);
  step.store(2);
  worker.join();
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempThreadHeapTest, SyncAppliesFreesQueuedByOtherThreads) {
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared, own;
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  std::vector<void*> blocks;
  std::atomic<int> stage{0};
  std::thread owner([&] {
    EXPECT_EQ(FMempAddRegion(memp, own.begin(), own.end()), FMEMP_SUCCESS);
    EXPECT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);
    for (int i = 0; i < 20; ++i) blocks.push_back(FMempMalloc(memp, 200));
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();  // idle owner
    EXPECT_EQ(FMempSyncThreadHeap(memp), FMEMP_SUCCESS);
    stage.store(3);
    while (stage.load() != 4) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  for (void* p : blocks) FMempFree(memp, p);  // queued to the owner
  EXPECT_EQ(Usage(memp).live_blocks, blocks.size());
  stage.store(2);
  while (stage.load() != 3) std::this_thread::yield();
  EXPECT_EQ(Usage(memp).live_blocks, 0u);
  EXPECT_EQ(Usage(memp).used, 0u);
  EXPECT_EQ(FMempSyncThreadHeap(memp), FMEMP_SUCCESS) << "no thread heap here";
  stage.store(4);
  owner.join();
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempThreadHeapTest, ErrorsChangeNothing) {
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared, own, unknown;
  // Not initialised, and other policies.
  EXPECT_EQ(FMempBindThread(memp, own.begin()), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempSyncThreadHeap(memp), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempBindThread(nullptr, own.begin()), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempThreadHeapCount(nullptr), 0u);
  ASSERT_EQ(FMempInit(memp, shared.begin(), shared.end()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempBindThread(memp, shared.begin()), FMEMP_ERR_NOT_SUPPORTED);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_ERR_NOT_SUPPORTED);
  EXPECT_EQ(FMempSyncThreadHeap(memp), FMEMP_ERR_NOT_SUPPORTED);
  FMempThreadHeapUsage usage;
  EXPECT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_ERR_NOT_SUPPORTED);
  EXPECT_EQ(FMempThreadHeapCount(memp), 0u);
  FMempRemove(memp);

  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, own.begin(), own.end()), FMEMP_SUCCESS);
  const FMempUsage before = Usage(memp);
  EXPECT_EQ(FMempBindThread(memp, unknown.begin()), FMEMP_ERR_REGION_NOT_FOUND);
  EXPECT_EQ(FMempBindThread(memp, own.begin() + 16),
            FMEMP_ERR_REGION_NOT_FOUND);
  EXPECT_EQ(FMempBindThreadWithFlags(memp, own.begin(), 0x80),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempProbeThreadHeap(memp, 0, nullptr), FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);  // nothing bound

  std::atomic<bool> bound{false}, release{false};
  std::thread owner([&] {
    ASSERT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);
    bound.store(true);
    while (!release.load()) std::this_thread::yield();
  });
  while (!bound.load()) std::this_thread::yield();
  // Bound to another thread: neither bindable nor removable here.
  EXPECT_EQ(FMempBindThread(memp, own.begin()), FMEMP_ERR_REGION_BUSY);
  EXPECT_EQ(FMempRemoveRegion(memp, own.begin()), FMEMP_ERR_REGION_BUSY);
  // Nor may a new region overlap it.
  EXPECT_EQ(FMempAddRegion(memp, own.begin() + 4096, own.end() + 4096),
            FMEMP_ERR_REGION_OVERLAP);
  release.store(true);
  owner.join();
  const FMempUsage after = Usage(memp);
  EXPECT_EQ(after.total, before.total);
  EXPECT_EQ(after.regions, before.regions);
  EXPECT_EQ(FMempRemoveRegion(memp, own.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempThreadHeapTest, NoFallbackReturnsNullWhenTheThreadHeapIsFull) {
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared, own(64 << 10);
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, own.begin(), own.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempBindThreadWithFlags(memp, own.begin(), FMEMP_BIND_NO_FALLBACK),
            FMEMP_SUCCESS);
  EXPECT_EQ(FMempMalloc(memp, 100 << 10), nullptr);
  void* p = FMempMalloc(memp, 1000);
  EXPECT_TRUE(own.Holds(p));
  Fill(p, 1000, 2);
  EXPECT_EQ(FMempRealloc(memp, p, 100 << 10), nullptr);  // p unchanged
  EXPECT_TRUE(HasFill(p, 1000, 2));
  EXPECT_EQ(Usage(memp).failed_allocations, 2u);
  // With fallback, the same requests go to the shared region.
  ASSERT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);
  void* big = FMempMalloc(memp, 100 << 10);
  EXPECT_TRUE(shared.Holds(big));
  p = FMempRealloc(memp, p, 100 << 10);
  EXPECT_TRUE(shared.Holds(p));
  EXPECT_TRUE(HasFill(p, 1000, 2));
  FMempThreadHeapUsage usage;
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.fallbacks, 2u);
  FMempFree(memp, p);
  FMempFree(memp, big);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
  EXPECT_EQ(FMempThreadHeapCount(memp), 0u);
  EXPECT_EQ(Usage(memp).used, 0u);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

// Workers with thread heaps of their own free each other's blocks; a prober
// reads the aggregated and per-thread heap figures throughout.
TEST(FMempThreadHeapTest, CrossThreadFreesUnderLoad) {
  constexpr int kWorkers = 3;
  constexpr int kRounds = 2000;
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared;
  std::vector<std::unique_ptr<Buffer>> own;
  for (int i = 0; i < kWorkers; ++i) own.push_back(std::make_unique<Buffer>());
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  misuse_reports.store(0);
  ASSERT_EQ(FMempSetErrorHandler(memp, &CountMisuse, nullptr), FMEMP_SUCCESS);
  // One slot per worker pair: worker t puts, worker t+1 takes and frees.
  std::vector<std::atomic<void*>> slots(kWorkers);
  for (auto& s : slots) s.store(nullptr);
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread prober([&] {
    while (!done.load()) {
      const FMempUsage u = Usage(memp);
      if (u.used + u.cached_bytes + u.free_bytes != u.total) bad.fetch_add(1);
      const u32 n = FMempThreadHeapCount(memp);
      FMempThreadHeapUsage p;
      for (u32 i = 0; i < n; ++i) {
        if (FMempProbeThreadHeap(memp, i, &p) == FMEMP_SUCCESS &&
            p.used + p.cached_bytes + p.free_bytes != p.total) {
          bad.fetch_add(1);
        }
      }
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kWorkers; ++t) {
    workers.emplace_back([&, t] {
      if (FMempAddRegion(memp, own[t]->begin(), own[t]->end()) !=
              FMEMP_SUCCESS ||
          FMempBindThread(memp, own[t]->begin()) != FMEMP_SUCCESS) {
        bad.fetch_add(1);
        return;
      }
      for (int i = 0; i < kRounds; ++i) {
        auto* p = static_cast<uint8_t*>(FMempMalloc(memp, 24 + i % 500));
        if (p == nullptr || !own[t]->Holds(p)) bad.fetch_add(1);
        if (p == nullptr) continue;
        p[0] = static_cast<uint8_t>(t);
        void* old = slots[t].exchange(p);
        if (old != nullptr) FMempFree(memp, old);  // own block
        void* theirs = slots[(t + 1) % kWorkers].exchange(nullptr);
        if (theirs != nullptr) {
          if (*static_cast<uint8_t*>(theirs) != (t + 1) % kWorkers) {
            bad.fetch_add(1);
          }
          FMempFree(memp, theirs);  // queued to its owner
        }
      }
      if (FMempCheck(memp) != FMEMP_SUCCESS) bad.fetch_add(1);
    });
  }
  for (std::thread& w : workers) w.join();
  done.store(true);
  prober.join();
  for (auto& s : slots) FMempFree(memp, s.exchange(nullptr));
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(misuse_reports.load(), 0);
  const FMempUsage u = Usage(memp);
  EXPECT_EQ(u.used, 0u);
  EXPECT_EQ(u.regions, kWorkers + 1u);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

// Two workers' heaps peak at different times (the first exits before the
// second starts): max_used is the most taken from the regions at once (in
// use plus parked in the thread heaps' caches), not the sum of the two
// peaks (issue 14).
TEST(FMempThreadHeapTest, MaxUsedIsTheTruePeakNotTheSumOfThreadHeapPeaks) {
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  Buffer shared, a_region, b_region;
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  size_t peaks[2] = {0, 0};
  Buffer* regions[2] = {&a_region, &b_region};
  for (int w = 0; w < 2; ++w) {
    std::thread worker([&, w] {
      ASSERT_EQ(FMempAddRegion(memp, regions[w]->begin(), regions[w]->end()),
                FMEMP_SUCCESS);
      ASSERT_EQ(FMempBindThread(memp, regions[w]->begin()), FMEMP_SUCCESS);
      std::vector<void*> blocks;
      for (int i = 0; i < 50 + 30 * w; ++i) {
        blocks.push_back(FMempMalloc(memp, 1000));
        ASSERT_TRUE(regions[w]->Holds(blocks.back()));
      }
      const FMempUsage top = Usage(memp);  // allocations only: the peak
      peaks[w] = top.used + top.cached_bytes;
      EXPECT_EQ(top.max_used, std::max(peaks[0], peaks[1]));
      for (void* p : blocks) FMempFree(memp, p);
    });
    worker.join();
  }
  const FMempUsage usage = Usage(memp);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.max_used, std::max(peaks[0], peaks[1]));
  EXPECT_LT(usage.max_used, peaks[0] + peaks[1]);
  u32 total = 0, used = 0, max_used = 0;
  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(max_used, std::max(peaks[0], peaks[1]));
}

}  // namespace
