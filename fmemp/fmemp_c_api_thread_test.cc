// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Multi-threaded tests of the C API (fmemp/fmemp.h) under each thread-safe
// lock policy (FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK): workers allocate
// with every allocation call, write a pattern derived from the address and
// verify it before freeing, and hand a share of their blocks to another
// worker that frees them; meanwhile a manager thread adds and removes a
// region and checks probe snapshots. At the end every byte is free and the
// integrity check passes. Run under --config=tsan for data races.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/fmemp.h"
#include "gtest/gtest.h"

namespace {

constexpr int kWorkers = 4;
// Each worker runs at least kMinOpsPerWorker operations, and goes on until
// the manager has removed the extra region kMinRemovals times while the
// workers run, or kSoftDeadline has passed: the manager may get little CPU
// (absl::Mutex is not fair, and tests may run on two cores).
constexpr int kMinOpsPerWorker = 4000;
constexpr int kMinRemovals = 20;
constexpr std::chrono::seconds kSoftDeadline(3);
constexpr size_t kMaxLivePerWorker = 32;
// The workers' ordinary blocks go to the base region (the smaller one, which
// a good-fit search prefers); big blocks fill the extra one exactly, so it
// empties as soon as its big block is freed.
constexpr size_t kBaseBytes = 256 * 1024;
constexpr size_t kExtraBytes = 512 * 1024;

struct Block {
  uint8_t* ptr;
  size_t size;
};

uint8_t PatternByte(const uint8_t* base, size_t i) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(base);
  return static_cast<uint8_t>((a >> 4) ^ (a >> 12) ^ (i * 31));
}

void WritePattern(const Block& b) {
  for (size_t i = 0; i < b.size; ++i) b.ptr[i] = PatternByte(b.ptr, i);
}

bool HasPattern(const Block& b) {
  for (size_t i = 0; i < b.size; ++i) {
    if (b.ptr[i] != PatternByte(b.ptr, i)) return false;
  }
  return true;
}

// Misuse reports of foreign pointers, from any thread.
std::atomic<int> foreign_reports{0};
void CountForeign(void*, int kind, const void*) {
  if (kind == FMEMP_MISUSE_FOREIGN_POINTER) foreign_reports.fetch_add(1);
}

void CountLine(void* user, const char*) { ++*static_cast<int*>(user); }

// Blocks handed to a worker by the others, freed by it.
class Inbox {
 public:
  void Push(Block b) {
    absl::MutexLock hold(&mu_);
    blocks_.push_back(b);
  }
  std::vector<Block> TakeAll() {
    std::vector<Block> taken;
    absl::MutexLock hold(&mu_);
    taken.swap(blocks_);
    return taken;
  }

 private:
  absl::Mutex mu_;
  std::vector<Block> blocks_ ABSL_GUARDED_BY(mu_);
};

// What went wrong, counted by every thread; all must stay 0.
struct Errors {
  std::atomic<int> allocation_content{0};  // pattern or zeroing broken
  std::atomic<int> alignment{0};
  std::atomic<int> outside_regions{0};
  std::atomic<int> probe{0};
  std::atomic<int> region_calls{0};
  std::atomic<int> check{0};
};

class FMempThreadTest : public testing::TestWithParam<FMempPolicy> {
 protected:
  FMempThreadTest()
      : base_(new uint8_t[kBaseBytes]), extra_(new uint8_t[kExtraBytes]) {}
  ~FMempThreadTest() override { FMempRelease(&memp_); }

  // Initialises memp_ and measures the largest block the empty extra region
  // holds.
  void Init() {
    ASSERT_EQ(FMempInitWithPolicy(&memp_, base_.get(), base_.get() + kBaseBytes,
                                  GetParam()),
              FMEMP_SUCCESS);
    ASSERT_EQ(FMempAddRegion(&memp_, extra_.get(), extra_.get() + kExtraBytes),
              FMEMP_SUCCESS);
    for (u32 i = 0; i < FMempRegionCount(&memp_); ++i) {
      FMempRegionUsage region;
      ASSERT_EQ(FMempProbeRegion(&memp_, i, &region), FMEMP_SUCCESS);
      if (region.begin == extra_.get()) big_bytes_ = region.largest_free;
    }
    ASSERT_GT(big_bytes_, kBaseBytes);
    ASSERT_EQ(FMempRemoveRegion(&memp_, extra_.get()), FMEMP_SUCCESS);
  }

  bool InExtra(const Block& b) const {
    return b.ptr >= extra_.get() && b.ptr < extra_.get() + kExtraBytes;
  }

  bool InRegions(const Block& b) const {
    const uint8_t* base = base_.get();
    const uint8_t* extra = extra_.get();
    return (b.ptr >= base && b.ptr + b.size <= base + kBaseBytes) ||
           (b.ptr >= extra && b.ptr + b.size <= extra + kExtraBytes);
  }

  // One worker: random allocation calls, pattern checks, frees of its own
  // blocks and of blocks other workers handed to it.
  void Work(int id) {
    std::mt19937 rng(1234 + id);
    std::vector<Block> mine;
    Inbox& next = inboxes_[(id + 1) % kWorkers];
    auto release = [&](Block b) {
      if (!HasPattern(b)) ++errors_.allocation_content;
      FMempFree(&memp_, b.ptr);
    };
    for (int op = 0;; ++op) {
      if (op >= kMinOpsPerWorker &&
          (removals_while_running_.load(std::memory_order_relaxed) >=
               kMinRemovals ||
           std::chrono::steady_clock::now() > deadline_)) {
        break;
      }
      if (op % 8 == 0) std::this_thread::yield();  // let the manager in
      // Cross-thread frees of what the previous worker handed over.
      for (const Block& b : inboxes_[id].TakeAll()) release(b);
      if (rng() % 64 == 0) {
        // A short-lived block that fills the extra region (allocation fails
        // while it is removed or full): blocks land there, and it empties
        // again soon, so the manager's removals race real use.
        const size_t size = big_bytes_;
        const Block b{static_cast<uint8_t*>(FMempMalloc(&memp_, size)), size};
        if (b.ptr == nullptr) continue;
        if (!InExtra(b) || !InRegions(b)) ++errors_.outside_regions;
        blocks_in_extra_.fetch_add(1);
        WritePattern(b);
        if (rng() % 2 == 0) {
          next.Push(b);
        } else {
          release(b);
        }
        continue;
      }
      const unsigned choice = rng() % 10;
      if (mine.size() < kMaxLivePerWorker && choice < 5) {
        const size_t size = 1 + rng() % (rng() % 8 == 0 ? 8192 : 256);
        void* p = nullptr;
        switch (rng() % 3) {
          case 0:
            p = FMempMalloc(&memp_, size);
            break;
          case 1: {
            const size_t align = size_t{16} << (rng() % 6);
            p = FMempMallocAlign(&memp_, size, align);
            if (p != nullptr && reinterpret_cast<uintptr_t>(p) % align != 0) {
              ++errors_.alignment;
            }
            break;
          }
          default: {
            p = FMempCalloc(&memp_, 1, size);
            const uint8_t* z = static_cast<const uint8_t*>(p);
            for (size_t i = 0; z != nullptr && i < size; ++i) {
              if (z[i] != 0) {
                ++errors_.allocation_content;
                break;
              }
            }
            break;
          }
        }
        if (p == nullptr) continue;  // a full pool is allowed
        const Block b{static_cast<uint8_t*>(p), size};
        if (!InRegions(b)) ++errors_.outside_regions;
        WritePattern(b);
        mine.push_back(b);
      } else if (!mine.empty() && choice < 7) {
        // Realloc: the old bytes come along, then the new pattern is
        // written for the new address.
        Block& b = mine[rng() % mine.size()];
        const size_t size = 1 + rng() % 1024;
        if (!HasPattern(b)) ++errors_.allocation_content;
        void* p = FMempRealloc(&memp_, b.ptr, size);
        if (p == nullptr) continue;  // b is unchanged
        const uint8_t* old = b.ptr;
        b.ptr = static_cast<uint8_t*>(p);
        for (size_t i = 0; i < std::min(size, b.size); ++i) {
          if (b.ptr[i] != PatternByte(old, i)) {
            ++errors_.allocation_content;
            break;
          }
        }
        b.size = size;
        if (!InRegions(b)) ++errors_.outside_regions;
        WritePattern(b);
      } else if (!mine.empty()) {
        const size_t i = rng() % mine.size();
        const Block b = mine[i];
        mine[i] = mine.back();
        mine.pop_back();
        if (rng() % 3 == 0) {
          if (!HasPattern(b)) ++errors_.allocation_content;
          next.Push(b);  // freed by the next worker
        } else {
          release(b);
        }
      }
    }
    for (const Block& b : mine) release(b);
  }

  // Adds and removes the extra region until `stop`, checking snapshots.
  void Manage(const std::atomic<bool>& stop) {
    bool added = false;
    int iteration = 0;
    while (!stop.load(std::memory_order_acquire)) {
      if (!added) {
        const FError e =
            FMempAddRegion(&memp_, extra_.get(), extra_.get() + kExtraBytes);
        if (e == FMEMP_SUCCESS) {
          added = true;
          ++adds_;
        } else {
          ++errors_.region_calls;
        }
      } else {
        // Refused while a worker holds a block there: retry next time.
        const FError e = FMempRemoveRegion(&memp_, extra_.get());
        if (e == FMEMP_SUCCESS) {
          added = false;
          ++removes_;
          removals_while_running_.fetch_add(1, std::memory_order_relaxed);
        } else if (e != FMEMP_ERR_REGION_BUSY) {
          ++errors_.region_calls;
        }
      }
      Snapshot(/*misuse_expected=*/false);
      if (++iteration % 64 == 0 && FMempCheck(&memp_) != FMEMP_SUCCESS) {
        ++errors_.check;
      }
      std::this_thread::yield();
    }
    // The workers are done and every block is freed: the region must be
    // empty now, and is removed before its memory goes away.
    if (added) {
      if (FMempRemoveRegion(&memp_, extra_.get()) == FMEMP_SUCCESS) {
        ++removes_;
      } else {
        ++errors_.region_calls;
      }
    }
  }

  void Snapshot(bool misuse_expected) {
    u32 total = 0, used = 0, max_used = 0;
    FMemProbe(&memp_, &total, &used, &max_used);
    if (used > total || max_used < used) ++errors_.probe;
    FMempUsage usage;
    if (FMempProbe64(&memp_, &usage) != FMEMP_SUCCESS ||
        usage.used > usage.total || usage.max_used < usage.used ||
        usage.used + usage.cached_bytes + usage.free_bytes != usage.total ||
        usage.regions < 1 || usage.regions > 2 ||
        (!misuse_expected && usage.invalid_frees != 0)) {
      ++errors_.probe;
    }
  }

  FMemp memp_ = {};
  std::unique_ptr<uint8_t[]> base_;
  std::unique_ptr<uint8_t[]> extra_;  // outlives every use of the region
  Inbox inboxes_[kWorkers];
  Errors errors_;
  size_t big_bytes_ = 0;  // set before the threads start
  std::chrono::steady_clock::time_point deadline_;
  std::atomic<int> blocks_in_extra_{0};
  int adds_ = 0;     // by the manager only
  int removes_ = 0;  // by the manager only
  std::atomic<int> removals_while_running_{0};
};

TEST_P(FMempThreadTest, ConcurrentAllocationCrossThreadFreesAndRegionChurn) {
  ASSERT_NO_FATAL_FAILURE(Init());
  std::atomic<bool> stop{false};
  deadline_ = std::chrono::steady_clock::now() + kSoftDeadline;
  std::thread manager([&] { Manage(stop); });
  std::vector<std::thread> workers;
  workers.reserve(kWorkers);
  for (int id = 0; id < kWorkers; ++id) {
    workers.emplace_back([this, id] { Work(id); });
  }
  for (std::thread& w : workers) w.join();
  // Blocks handed over after their receiver finished are freed here.
  for (Inbox& inbox : inboxes_) {
    for (const Block& b : inbox.TakeAll()) {
      if (!HasPattern(b)) ++errors_.allocation_content;
      FMempFree(&memp_, b.ptr);
    }
  }
  stop.store(true, std::memory_order_release);
  manager.join();

  EXPECT_EQ(errors_.allocation_content.load(), 0);
  EXPECT_EQ(errors_.alignment.load(), 0);
  EXPECT_EQ(errors_.outside_regions.load(), 0);
  EXPECT_EQ(errors_.probe.load(), 0);
  EXPECT_EQ(errors_.region_calls.load(), 0);
  EXPECT_EQ(errors_.check.load(), 0);
  EXPECT_GE(adds_, 1);
  // The region came and went while the workers used the pool.
  EXPECT_GE(removals_while_running_.load(), 1);
  EXPECT_GT(blocks_in_extra_.load(), 0) << "no block ever used the region";
  EXPECT_EQ(removes_, adds_);

  // Blocks parked in this thread's cache (FMEMP_POLICY_THREAD_CACHE) go
  // back; the workers' caches went back when they exited.
  ASSERT_EQ(FMempDrainThreadCaches(&memp_), FMEMP_SUCCESS);
  u32 total = 0, used = 1, max_used = 0;
  FMemProbe(&memp_, &total, &used, &max_used);
  EXPECT_EQ(used, 0u);
  EXPECT_GT(max_used, 0u);
  FMempUsage usage;
  ASSERT_EQ(FMempProbe64(&memp_, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.live_blocks, 0u);
  EXPECT_EQ(usage.regions, 1u);
  EXPECT_EQ(usage.invalid_frees, 0u);
  EXPECT_EQ(usage.free_bytes, usage.total);
  EXPECT_EQ(FMempCheck(&memp_), FMEMP_SUCCESS);
}

// Probes, listings, checks, error-handler changes and misuse reports race
// allocation from several threads.
TEST_P(FMempThreadTest, ConcurrentObservationAndMisuseReports) {
  ASSERT_EQ(FMempInitWithPolicy(&memp_, base_.get(), base_.get() + kBaseBytes,
                                GetParam()),
            FMEMP_SUCCESS);
  foreign_reports.store(0);
  ASSERT_EQ(FMempSetErrorHandler(&memp_, &CountForeign, nullptr),
            FMEMP_SUCCESS);
  constexpr int kRounds = 1000;
  alignas(16) static uint8_t foreign[64];
  std::vector<std::thread> threads;
  threads.reserve(kWorkers);
  for (int id = 0; id < kWorkers; ++id) {
    threads.emplace_back([this, id] {
      const size_t size = 64 + id;
      for (int i = 0; i < kRounds; ++i) {
        const Block b{static_cast<uint8_t*>(FMempMalloc(&memp_, size)), size};
        if (b.ptr == nullptr) {
          ++errors_.allocation_content;
          continue;
        }
        WritePattern(b);
        FMempFree(&memp_, foreign);  // reported, counted, ignored
        Snapshot(/*misuse_expected=*/true);
        if (id == 0 && i % 10 == 0 &&
            FMempSetErrorHandler(&memp_, &CountForeign, nullptr) !=
                FMEMP_SUCCESS) {
          ++errors_.check;
        }
        if (i % 50 == 0) {
          int lines = 0;
          if (FMemListAllTo(&memp_, &CountLine, &lines) != FMEMP_SUCCESS ||
              lines < 3) {
            ++errors_.check;
          }
          if (FMempCheck(&memp_) != FMEMP_SUCCESS) ++errors_.check;
        }
        if (!HasPattern(b)) ++errors_.allocation_content;
        FMempFree(&memp_, b.ptr);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors_.allocation_content.load(), 0);
  EXPECT_EQ(errors_.probe.load(), 0);
  EXPECT_EQ(errors_.check.load(), 0);
  EXPECT_EQ(foreign_reports.load(), kWorkers * kRounds);
  FMempUsage usage;
  ASSERT_EQ(FMempProbe64(&memp_, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.invalid_frees, static_cast<u64>(kWorkers * kRounds));
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.live_blocks, 0u);
  EXPECT_EQ(FMempCheck(&memp_), FMEMP_SUCCESS);
}

INSTANTIATE_TEST_SUITE_P(ThreadSafePolicies, FMempThreadTest,
                         testing::Values(FMEMP_POLICY_MUTEX,
                                         FMEMP_POLICY_SPINLOCK,
                                         FMEMP_POLICY_THREAD_CACHE,
                                         FMEMP_POLICY_THREAD_HEAPS),
                         [](const testing::TestParamInfo<FMempPolicy>& info) {
                           switch (info.param) {
                             case FMEMP_POLICY_THREAD_HEAPS:
                               return std::string("ThreadHeaps");
                             case FMEMP_POLICY_MUTEX:
                               return std::string("Mutex");
                             case FMEMP_POLICY_SPINLOCK:
                               return std::string("SpinLock");
                             default:
                               return std::string("ThreadCache");
                           }
                         });

}  // namespace
