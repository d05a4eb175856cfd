// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The hard and soft limits of the lock-policy front-ends and of the
// per-thread-cache front-end (issue 15): exact at the limit with threads
// racing, refusals counted and kept from the out-of-memory handler, the soft
// handler run once per crossing and outside the lock.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <new>
#include <thread>
#include <vector>

#include "fmemp/budget.h"
#include "fmemp/memp.h"
#include "fmemp/pmr.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

constexpr size_t kRegionBytes = size_t{4} << 20;

template <typename FrontEnd>
class LimitTest : public ::testing::Test {
 protected:
  LimitTest() : buffer_(new unsigned char[kRegionBytes]) {
    EXPECT_TRUE(memp_.AddRegion(buffer_.get(), kRegionBytes).ok());
  }
  // The usage the limit caps: the heaps' used bytes, parked blocks included.
  size_t TakenBytes() {
    const MempStats stats = memp_.Probe();
    return stats.used_bytes + stats.cached_bytes;
  }

  std::unique_ptr<unsigned char[]> buffer_;
  FrontEnd memp_;
};

using FrontEnds =
    ::testing::Types<Memp<sync::Mutex>, Memp<sync::SpinLock>,
                     Memp<sync::NoLock>, CachingMemp<sync::SpinLock>,
                     ThreadHeapMemp<sync::SpinLock>>;
TYPED_TEST_SUITE(LimitTest, FrontEnds);

// One thread's part of a race at the limit: `ops` steps over `slots` slots,
// every slot filled first (so that even threads that run one after another
// reach the limit), then a random slot freed or refilled with 16 to
// 16 + max_bytes bytes; counts NULLs, notes any moment the budget's usage
// is above `limit`. Returns the blocks still held.
template <typename FrontEnd>
std::vector<void*> RaceAtTheLimit(FrontEnd& memp, int thread, int ops,
                                  size_t slots, size_t max_bytes, size_t limit,
                                  std::atomic<uint64_t>* nulls,
                                  std::atomic<bool>* passed) {
  std::vector<void*> held(slots, nullptr);
  uint64_t x = 0x9e3779b97f4a7c15ULL * (thread + 1);
  for (int i = 0; i < ops; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    void*& slot = held[static_cast<size_t>(i) < slots ? i : x % slots];
    if (slot != nullptr) {
      memp.Free(slot);
      slot = nullptr;
    } else {
      slot = memp.Allocate(16 + (x >> 40) % max_bytes);
      if (slot == nullptr) nulls->fetch_add(1);
    }
    if (memp.budget().usage() > limit) passed->store(true);
  }
  return held;
}

int oom_calls = 0;
bool CountOom(void*, size_t, size_t) {
  ++oom_calls;
  return false;
}

TYPED_TEST(LimitTest, RefusesPastTheLimitWithoutTheOomHandler) {
  constexpr size_t kLimit = 64 << 10;
  this->memp_.SetLimit(kLimit);
  oom_calls = 0;
  this->memp_.SetOutOfMemoryHandler(&CountOom, nullptr);
  std::vector<void*> blocks;
  for (;;) {
    void* p = this->memp_.Allocate(2000);
    if (p == nullptr) break;
    std::memset(p, 0xab, 2000);
    blocks.push_back(p);
    ASSERT_LE(this->TakenBytes(), kLimit);
  }
  const MempStats stats = this->memp_.Probe();
  EXPECT_GT(blocks.size(), 20u);
  EXPECT_LE(stats.used_bytes, kLimit);
  EXPECT_LE(stats.peak_used_bytes, kLimit);
  EXPECT_GT(stats.used_bytes + 2 * 2048, kLimit);  // it filled up to it
  EXPECT_EQ(stats.failed_allocations, 1u);
  EXPECT_EQ(stats.limit_refusals, 1u);
  EXPECT_EQ(oom_calls, 0);
  EXPECT_GE(this->memp_.budget().refusals(), 1u);
  // A growing reallocation that would pass it fails, the block intact.
  void* last = blocks.back();
  EXPECT_EQ(this->memp_.Reallocate(last, 60000), nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(last)[1999], 0xab);
  EXPECT_EQ(this->memp_.Probe().limit_refusals, 2u);
  // Freeing makes room again.
  for (void* p : blocks) this->memp_.Free(p);
  void* p = this->memp_.Allocate(2000);
  EXPECT_NE(p, nullptr);
  this->memp_.Free(p);
}

TYPED_TEST(LimitTest, LimitBelowUsageRefusesAndFreesNothing) {
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(this->memp_.Allocate(4000));
  const size_t used = this->memp_.Probe().used_bytes;
  this->memp_.SetLimit(used / 2);
  EXPECT_EQ(this->memp_.Probe().used_bytes, used);
  EXPECT_EQ(this->memp_.budget().usage(), this->TakenBytes());
  EXPECT_EQ(this->memp_.Allocate(4000), nullptr);
  for (int i = 0; i < 75; ++i) this->memp_.Free(blocks[i]);
  void* p = this->memp_.Allocate(4000);
  EXPECT_NE(p, nullptr);
  this->memp_.Free(p);
  for (int i = 75; i < 100; ++i) this->memp_.Free(blocks[i]);
  this->memp_.SetLimit(Budget::kNoLimit);
  p = this->memp_.Allocate(kRegionBytes / 2);
  EXPECT_NE(p, nullptr);
  this->memp_.Free(p);
}

template <typename FrontEnd>
struct Evictor {
  FrontEnd* memp = nullptr;
  std::vector<void*>* blocks = nullptr;
  int calls = 0;
  size_t usage_seen = 0;
};

// Frees half of the blocks, from inside the handler: under Memp<Mutex> a
// handler run inside the lock would deadlock here.
template <typename FrontEnd>
void Evict(void* context, const Budget::SoftLimitEvent& event) {
  auto* evictor = static_cast<Evictor<FrontEnd>*>(context);
  ++evictor->calls;
  evictor->usage_seen = event.usage;
  auto& blocks = *evictor->blocks;
  const size_t keep = blocks.size() / 2;
  for (size_t i = keep; i < blocks.size(); ++i) evictor->memp->Free(blocks[i]);
  blocks.resize(keep);
}

TYPED_TEST(LimitTest, SoftLimitHandlerEvictsOncePerCrossing) {
  std::vector<void*> blocks;
  Evictor<TypeParam> evictor{&this->memp_, &blocks};
  constexpr size_t kSoft = 256 << 10;
  this->memp_.SetSoftLimit(kSoft, kSoft / 4, &Evict<TypeParam>, &evictor);
  for (int i = 0; i < 2000; ++i) {
    void* p = this->memp_.Allocate(3000);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
  }
  // 2000 x ~3 KiB is ~6 MiB of requests against a soft limit of 256 KiB:
  // each crossing halves what is live, so the handler ran many times and
  // usage stays near the limit.
  EXPECT_GT(evictor.calls, 5);
  EXPECT_GT(evictor.usage_seen, kSoft);
  EXPECT_EQ(this->memp_.budget().soft_crossings(),
            static_cast<uint64_t>(evictor.calls));
  EXPECT_LT(this->TakenBytes(), kSoft + kSoft / 2);
  for (void* p : blocks) this->memp_.Free(p);
}

// Threads race to allocate at the limit (4 threads under the 2-core
// machine's scheduler; 8 for the thread-safe front-ends), checking that the
// usage never passes it; at the end every block is freed and usage is 0.
TYPED_TEST(LimitTest, RacingThreadsNeverPassTheLimit) {
  if (!TypeParam::kThreadSafe) GTEST_SKIP() << "one thread at a time";
  constexpr size_t kLimit = 100'003;  // below one thread's filled slots
  constexpr int kThreads = 8;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kOps = 20'000;
#else
  constexpr int kOps = 125'000;  // a million operations in all
#endif
  this->memp_.SetLimit(kLimit);
  std::atomic<bool> passed{false};
  std::atomic<uint64_t> nulls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::vector<void*> held = RaceAtTheLimit(
          this->memp_, t, kOps, 64, 4000, kLimit, &nulls, &passed);
      for (void* p : held) this->memp_.Free(p);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(passed.load());
  const MempStats stats = this->memp_.Probe();
  EXPECT_LE(stats.peak_used_bytes, kLimit);
  EXPECT_GT(nulls.load(), 0u);  // the limit was reached
  EXPECT_EQ(stats.limit_refusals, stats.failed_allocations);
  EXPECT_EQ(stats.limit_refusals, nulls.load());
  EXPECT_EQ(this->memp_.budget().usage(), this->TakenBytes());
}

// Per-thread heaps: 8 threads each bind a region of their own and race to
// allocate against the front-end's limit, which covers every thread heap;
// a thread's own heap limit holds for that heap alone, and a refusal never
// falls back to the shared regions.
TEST(ThreadHeapLimitTest,
     BoundThreadsRacingNeverPassTheFrontEndsOrTheirHeapsLimit) {
  constexpr int kThreads = 8;
  constexpr size_t kRegion = size_t{1} << 20;
  constexpr size_t kLimit = 600'007;      // below what 8 threads' slots hold
  constexpr size_t kHeapLimit = 100'000;  // thread 0's own
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kOps = 20'000;
#else
  constexpr int kOps = 125'000;
#endif
  std::vector<std::unique_ptr<unsigned char[]>> buffers;
  ThreadHeapMemp<sync::SpinLock> memp;
  auto shared = std::make_unique<unsigned char[]>(kRegion);
  ASSERT_TRUE(memp.AddRegion(shared.get(), kRegion).ok());
  for (int t = 0; t < kThreads; ++t) {
    buffers.push_back(std::make_unique<unsigned char[]>(kRegion));
    ASSERT_TRUE(memp.AddRegion(buffers.back().get(), kRegion).ok());
  }
  memp.SetLimit(kLimit);
  std::atomic<bool> passed{false};
  std::atomic<bool> heap_passed{false};
  std::atomic<uint64_t> nulls{0};
  std::atomic<int> bound{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ASSERT_TRUE(memp.BindThisThread(buffers[t].get()).ok());
      if (t == 0) {
        ASSERT_TRUE(memp.TrySetThreadHeapLimit(0, kHeapLimit).ok());
      }
      bound.fetch_add(1);
      while (bound.load() < kThreads) std::this_thread::yield();
      const std::vector<void*> held =
          RaceAtTheLimit(memp, t, kOps, 96, 3000, kLimit, &nulls, &passed);
      if (t == 0) {
        for (const ThreadHeapStats& heap : memp.ProbeThreadHeaps()) {
          if (heap.limit == kHeapLimit && heap.budget_usage > kHeapLimit) {
            heap_passed.store(true);
          }
        }
      }
      for (void* p : held) memp.Free(p);
      memp.FlushThisThread();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(passed.load());
  EXPECT_FALSE(heap_passed.load());
  EXPECT_GT(nulls.load(), 0u);
  const MempStats stats = memp.Probe();
  EXPECT_EQ(stats.limit_refusals, nulls.load());
  EXPECT_EQ(stats.failed_allocations, nulls.load());
  // Every block is back (the threads exited, their regions returned): the
  // front-end's usage, charged by thread heaps and shared regions alike, is 0.
  EXPECT_EQ(stats.used_bytes, 0u);
  EXPECT_EQ(memp.budget().usage(), 0u);
}

TEST(ThreadHeapLimitTest, ThreadHeapSoftLimitRunsOnItsThreadOutsideLocks) {
  constexpr size_t kRegion = size_t{1} << 20;
  auto buffer = std::make_unique<unsigned char[]>(kRegion);
  ThreadHeapMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(buffer.get(), kRegion).ok());
  std::thread worker([&] {
    ASSERT_TRUE(memp.BindThisThread(buffer.get()).ok());
    std::vector<void*> blocks;
    Evictor<ThreadHeapMemp<sync::SpinLock>> evictor{&memp, &blocks};
    ASSERT_TRUE(memp.TrySetThreadHeapSoftLimit(
                        0, 128 << 10, 32 << 10,
                        &Evict<ThreadHeapMemp<sync::SpinLock>>, &evictor)
                    .ok());
    for (int i = 0; i < 2000; ++i) {
      void* p = memp.Allocate(1500);
      ASSERT_NE(p, nullptr);
      blocks.push_back(p);
    }
    EXPECT_GT(evictor.calls, 5);
    for (void* p : blocks) memp.Free(p);
  });
  worker.join();
  EXPECT_EQ(memp.TrySetThreadHeapLimit(12345, 1).error(),
            ManagementError::kNoThreadHeap);
}

// pmr: a resource whose front-end's limit is reached throws std::bad_alloc,
// and the front-end is unchanged (issue 15, Interfaces).
TEST(PmrLimitTest, ResourceAtTheLimitThrowsBadAlloc) {
  auto buffer = std::make_unique<unsigned char[]>(kRegionBytes);
  Memp<sync::Mutex> memp;
  ASSERT_TRUE(memp.AddRegion(buffer.get(), kRegionBytes).ok());
  memp.SetLimit(64 << 10);
  MemoryResource<Memp<sync::Mutex>> resource(&memp);
  std::pmr::vector<char> small(&resource);
  small.resize(1000, 'x');
  std::pmr::vector<char> big(&resource);
  EXPECT_THROW(big.resize(100 << 10), std::bad_alloc);
  EXPECT_EQ(memp.Probe().limit_refusals, 1u);
  EXPECT_EQ(small[999], 'x');
  memp.SetLimit(Budget::kNoLimit);
  big.resize(100 << 10);
  EXPECT_EQ(big.size(), size_t{100} << 10);
}

}  // namespace
}  // namespace fmemp
