// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/thread_cache.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "fmemp/test_util.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

using test_util::Fill;
using test_util::HasFill;

constexpr size_t kRegionBytes = size_t{4} << 20;

struct Region {
  Region() : memory(new uint64_t[kRegionBytes / 8]) {}
  void* begin() { return memory.get(); }
  std::unique_ptr<uint64_t[]> memory;
};

template <typename Front>
void ExpectBalanced(const Front& memp) {
  const MempStats s = memp.Probe();
  EXPECT_EQ(s.used_bytes + s.cached_bytes + s.free_bytes, s.capacity_bytes);
  EXPECT_TRUE(memp.Check().ok()) << memp.Check();
}

struct MisuseLog {
  static void Record(void* context, MempError error, const void*) {
    auto* log = static_cast<MisuseLog*>(context);
    if (error == MempError::kDoubleFree) ++log->double_frees;
    if (error == MempError::kForeignPointer) ++log->foreign;
  }
  int double_frees = 0;
  int foreign = 0;
};

TEST(CachingMempTest, FreedBlockIsReusedFromTheCache) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  void* a = memp.Allocate(100);
  ASSERT_NE(a, nullptr);
  const MempStats after_alloc = memp.Probe();
  EXPECT_GT(after_alloc.cached_bytes, 0u);  // the rest of the refill batch
  EXPECT_EQ(after_alloc.live_blocks, 1u);
  EXPECT_GE(after_alloc.used_bytes, 112u);
  memp.Free(a);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
  EXPECT_EQ(memp.Probe().live_blocks, 0u);
  EXPECT_EQ(memp.Allocate(100), a);  // last in, first out
  memp.Free(a);
  ExpectBalanced(memp);
  memp.FlushThisThread();
  EXPECT_EQ(memp.Probe().cached_bytes, 0u);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
  ExpectBalanced(memp);
}

TEST(CachingMempTest, BlocksKeepTheirContents) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  std::vector<std::pair<void*, size_t>> live;
  for (size_t i = 0; i < 2000; ++i) {
    const size_t n = 1 + (i * 37) % 1200;  // cached and uncached sizes
    void* p = memp.Allocate(n);
    ASSERT_NE(p, nullptr);
    ASSERT_GE(memp.UsableSize(p), n);
    Fill(p, n, static_cast<uint8_t>(i));
    live.emplace_back(p, n);
    if (i % 3 == 0) {
      const auto [q, m] = live[i / 2];
      if (q != nullptr) {
        ASSERT_TRUE(HasFill(q, m, static_cast<uint8_t>(i / 2)));
        memp.Free(q);
        live[i / 2].first = nullptr;
      }
    }
  }
  for (size_t i = 0; i < live.size(); ++i) {
    if (live[i].first == nullptr) continue;
    ASSERT_TRUE(
        HasFill(live[i].first, live[i].second, static_cast<uint8_t>(i)));
    memp.Free(live[i].first);
  }
  ExpectBalanced(memp);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
}

TEST(CachingMempTest, CacheStaysWithinItsByteBudget) {
  Region region;
  CacheOptions options;
  options.max_bytes_per_thread = 4096;
  options.refill_bytes = 1024;
  CachingMemp<sync::SpinLock> memp(options);
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  std::vector<void*> blocks;
  for (int i = 0; i < 500; ++i) blocks.push_back(memp.Allocate(16 + i % 900));
  for (void* p : blocks) {
    memp.Free(p);
    // This thread's cache and the depot, each within the budget.
    constexpr size_t kDepot = CachingMemp<sync::SpinLock>::kDepotBudgets;
    ASSERT_LE(memp.Probe().cached_bytes,
              (1 + kDepot) * options.max_bytes_per_thread);
    ASSERT_LE(memp.DepotBytes(), kDepot * options.max_bytes_per_thread);
  }
  ExpectBalanced(memp);
}

// One thread allocates, another frees, for many rounds: the freeing thread's
// cache fills to its budget and returns the rest, so the memory held stays
// bounded.
TEST(CachingMempTest, ProducerConsumerStaysBounded) {
  Region region;
  CacheOptions options;
  options.max_bytes_per_thread = 16 << 10;
  CachingMemp<sync::Mutex> memp(options);
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  constexpr int kRounds = 200, kPerRound = 64;
  std::vector<void*> handoff(kPerRound);
  std::atomic<int> stage{0};  // even: producer's turn; odd: consumer's
  size_t worst_cached = 0, worst_used = 0;
  std::thread consumer([&] {
    for (int r = 0; r < kRounds; ++r) {
      while (stage.load(std::memory_order_acquire) != 2 * r + 1) {
        std::this_thread::yield();
      }
      for (void* p : handoff) memp.Free(p);
      stage.store(2 * r + 2, std::memory_order_release);
    }
  });
  for (int r = 0; r < kRounds; ++r) {
    while (stage.load(std::memory_order_acquire) != 2 * r) {
      std::this_thread::yield();
    }
    for (int i = 0; i < kPerRound; ++i) handoff[i] = memp.Allocate(64 + i * 8);
    const MempStats s = memp.Probe();
    worst_cached = std::max(worst_cached, s.cached_bytes);
    worst_used = std::max(worst_used, s.used_bytes);
    stage.store(2 * r + 1, std::memory_order_release);
  }
  consumer.join();
  // Two caches (producer's and consumer's), each within the budget, and the
  // depot, within kDepotBudgets budgets.
  constexpr size_t kDepot = CachingMemp<sync::Mutex>::kDepotBudgets;
  EXPECT_LE(worst_cached, (2 + kDepot) * options.max_bytes_per_thread);
  const MempStats s = memp.Probe();
  EXPECT_EQ(s.used_bytes, 0u);
  // The producer's cache and the depot.
  EXPECT_LE(s.cached_bytes, (1 + kDepot) * options.max_bytes_per_thread);
  EXPECT_LE(memp.DepotBytes(), kDepot * options.max_bytes_per_thread);
  ExpectBalanced(memp);
}

TEST(CachingMempTest, ExitingThreadReturnsItsCache) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  const MempStats start = memp.Probe();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&memp] {
      std::vector<void*> blocks;
      for (int i = 0; i < 300; ++i) blocks.push_back(memp.Allocate(8 + i));
      for (void* p : blocks) memp.Free(p);
    });
  }
  for (auto& t : threads) t.join();
  const MempStats end = memp.Probe();
  EXPECT_EQ(end.used_bytes, start.used_bytes);
  EXPECT_EQ(end.cached_bytes, 0u);
  EXPECT_EQ(end.free_bytes, end.capacity_bytes);
  ExpectBalanced(memp);
}

// An idle thread's cache is drained by another thread, synchronously.
TEST(CachingMempTest, DrainReachesIdleThreads) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  std::atomic<int> step{0};
  std::thread idle([&] {
    void* p = memp.Allocate(200);
    memp.Free(p);
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
    // Still works after its cache was drained under it.
    void* q = memp.Allocate(200);
    EXPECT_NE(q, nullptr);
    memp.Free(q);
  });
  while (step.load() != 1) std::this_thread::yield();
  EXPECT_GT(memp.Probe().cached_bytes, 0u);
  memp.DrainAllCaches();
  EXPECT_EQ(memp.Probe().cached_bytes, 0u);
  EXPECT_EQ(memp.Probe().free_bytes, memp.Probe().capacity_bytes);
  step = 2;
  idle.join();
  ExpectBalanced(memp);
}

TEST(CachingMempTest, RemovingARegionReclaimsCachedBlocks) {
  Region first, second;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(first.begin(), kRegionBytes).ok());
  std::atomic<int> step{0};
  std::thread other([&] {
    void* p = memp.Allocate(64);  // parks a batch in this thread's cache
    memp.Free(p);
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
  });
  while (step.load() != 1) std::this_thread::yield();
  ASSERT_TRUE(memp.AddRegion(second.begin(), kRegionBytes).ok());
  ASSERT_GT(memp.Probe().cached_bytes, 0u);
  EXPECT_TRUE(memp.RemoveRegion(first.begin()).ok());
  EXPECT_EQ(memp.Probe().region_count, 1u);
  step = 2;
  other.join();
  // A live block still refuses removal, and the region stays in service.
  void* live = memp.Allocate(64);
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(memp.RemoveRegion(second.begin()).code(),
            absl::StatusCode::kFailedPrecondition);
  void* more = memp.Allocate(5000);
  EXPECT_NE(more, nullptr);
  memp.Free(more);
  memp.Free(live);
  EXPECT_TRUE(memp.RemoveRegion(second.begin()).ok());
  EXPECT_EQ(memp.Allocate(64), nullptr);
}

TEST(CachingMempTest, DoubleFreeInTheCacheIsReportedAndIgnored) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  MisuseLog log;
  memp.SetErrorHandler(&MisuseLog::Record, &log);
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  void* a = memp.Allocate(48);
  void* b = memp.Allocate(48);
  memp.Free(a);
  memp.Free(a);
  EXPECT_EQ(log.double_frees, 1);
  EXPECT_EQ(memp.Probe().invalid_frees, 1u);
  // The block is handed out once, not twice.
  void* c = memp.Allocate(48);
  void* d = memp.Allocate(48);
  EXPECT_NE(c, d);
  EXPECT_NE(d, b);
  memp.Free(b);
  memp.Free(c);
  memp.Free(d);
  memp.FlushThisThread();
  memp.Free(d);  // now free in the heap itself
  EXPECT_EQ(log.double_frees, 2);
  int stack_object = 0;
  memp.Free(&stack_object);
  EXPECT_EQ(log.foreign, 1);
  ExpectBalanced(memp);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
}

TEST(CachingMempTest, ExhaustionDrainsOtherCachesBeforeFailing) {
  constexpr size_t kSmall = 64 << 10;
  std::unique_ptr<uint64_t[]> memory(new uint64_t[kSmall / 8]);
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(memory.get(), kSmall).ok());
  std::thread hog([&] {
    std::vector<void*> blocks;
    while (void* p = memp.Allocate(512)) blocks.push_back(p);
    for (void* p : blocks) memp.Free(p);  // parks up to its budget
  });
  hog.join();  // its cache went back at exit; fill another cache instead
  std::atomic<int> step{0};
  std::thread parker([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 60; ++i) blocks.push_back(memp.Allocate(512));
    for (void* p : blocks) memp.Free(p);
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
  });
  while (step.load() != 1) std::this_thread::yield();
  ASSERT_GT(memp.Probe().cached_bytes, 30000u);
  const uint64_t failed_before = memp.Probe().failed_allocations;
  void* big = memp.Allocate(40000);  // needs the parked blocks back
  EXPECT_NE(big, nullptr);
  memp.Free(big);
  step = 2;
  parker.join();
  // Served after the drain: the call did not fail, whatever its first
  // attempt met.
  EXPECT_EQ(memp.Probe().failed_allocations, failed_before);
  ExpectBalanced(memp);
}

// Several threads run out of room at once while another thread's cache
// holds the memory: one of them drains every cache, and each of the others
// retries once that drain has returned the blocks, even when it finds
// nothing cached any more (the drain emptied the caches between its failed
// attempt and its look). Before, such a thread gave up: nullptr with half
// the region free (thread_churn_test's waves met it under load).
TEST(CachingMempTest, ConcurrentExhaustionsAllRetryAfterOneDrain) {
  constexpr size_t kSmall = 256 << 10;
  constexpr int kThreads = 4;
  constexpr int kRounds = 20;
  constexpr size_t kBig = 16 << 10;  // uncached: the shared regions serve it
  std::unique_ptr<uint64_t[]> memory(new uint64_t[kSmall / 8]);
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(memory.get(), kSmall).ok());
  std::atomic<int> failures{0};
  for (int round = 0; round < kRounds; ++round) {
    // A parker fills the region with blocks and frees them into its own
    // cache (its budget exceeds the region), then stays alive.
    std::atomic<int> step{0};
    std::thread parker([&] {
      std::vector<void*> blocks;
      while (void* p = memp.Allocate(512)) blocks.push_back(p);
      for (void* p : blocks) memp.Free(p);
      step = 1;
      while (step.load() != 2) std::this_thread::yield();
    });
    while (step.load() != 1) std::this_thread::yield();
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        ++ready;
        while (ready.load() != kThreads) {
        }
        void* p = memp.Allocate(kBig);  // needs the parked blocks back
        if (p == nullptr) {
          ++failures;
        } else {
          memp.Free(p);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    step = 2;
    parker.join();
  }
  EXPECT_EQ(failures.load(), 0);
  ExpectBalanced(memp);
}

// A small request whose cache cannot refill and whose locked retry finds
// no room either is one failed allocation; the refill's short batch is not
// one, and neither is a small request another thread's parked blocks serve.
TEST(CachingMempTest, ACacheMissThatEndsInNullptrCountsOnce) {
  constexpr size_t kSmall = 64 << 10;
  std::unique_ptr<uint64_t[]> memory(new uint64_t[kSmall / 8]);
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(memory.get(), kSmall).ok());
  std::vector<void*> blocks;
  while (void* p = memp.Allocate(256)) blocks.push_back(p);
  ASSERT_GT(blocks.size(), 100u);
  EXPECT_EQ(memp.Probe().failed_allocations, 1u);
  EXPECT_EQ(memp.Allocate(256), nullptr);
  EXPECT_EQ(memp.Probe().failed_allocations, 2u);
  // Another thread's cache holds the only free blocks: the drain on the
  // failure path serves this thread's request.
  std::atomic<int> step{0};
  std::thread parker([&] {
    for (int i = 0; i < 32; ++i) memp.Free(blocks[i]);  // parked there
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
  });
  while (step.load() != 1) std::this_thread::yield();
  ASSERT_GT(memp.Probe().cached_bytes, 0u);
  void* served = memp.Allocate(1000);  // needs the parked blocks back
  EXPECT_NE(served, nullptr);
  step = 2;
  parker.join();
  EXPECT_EQ(memp.Probe().failed_allocations, 2u);
  memp.Free(served);
  for (size_t i = 32; i < blocks.size(); ++i) memp.Free(blocks[i]);
  ExpectBalanced(memp);
}

TEST(CachingMempTest, TaggedBlocksBypassTheCache) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  BlockTag tag;
  tag.file = "here";
  tag.line = 7;
  void* p = memp.AllocateTagged(16, 40, tag);
  ASSERT_NE(p, nullptr);
  memp.Free(p);
  EXPECT_TRUE(memp.Check().ok());  // no tag left on a cached block
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
}

TEST(CachingMempTest, ClearForgetsCachedBlocks) {
  Region region;
  CachingMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  memp.Free(memp.Allocate(32));
  memp.Clear();
  EXPECT_EQ(memp.Probe().cached_bytes, 0u);
  EXPECT_EQ(memp.Probe().capacity_bytes, 0u);
  EXPECT_EQ(memp.Allocate(32), nullptr);
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  void* p = memp.Allocate(32);
  EXPECT_NE(p, nullptr);
  memp.Free(p);
  ExpectBalanced(memp);
}

// Blocks freed by one thread reach another thread's refills through the
// depot, still parked: a free of one of them, anywhere, is refused; a drain
// returns the depot to the regions.
TEST(CachingMempTest, DepotHandsRemoteFreesToRefillsAndRefusesDoubleFrees) {
  Region region;
  CacheOptions options;
  options.max_bytes_per_thread = 16 << 10;
  CachingMemp<sync::SpinLock> memp(options);
  ASSERT_TRUE(memp.AddRegion(region.begin(), kRegionBytes).ok());
  MisuseLog log;
  memp.SetErrorHandler(&MisuseLog::Record, &log);
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(memp.Allocate(64));
  std::thread freer([&] {
    for (void* p : blocks) ASSERT_TRUE(memp.Free(p));
    // Every block is parked in this cache or the depot: all refused.
    for (void* p : blocks) EXPECT_FALSE(memp.Free(p));
  });
  freer.join();
  EXPECT_EQ(log.double_frees, static_cast<int>(blocks.size()));
  const size_t depot_before = memp.DepotBytes();
  ASSERT_GT(depot_before, 0u);
  ExpectBalanced(memp);
  // This thread's refill of the class takes a batch from the depot.
  memp.FlushThisThread();
  void* p = memp.Allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_LT(memp.DepotBytes(), depot_before);
  memp.Free(p);
  ExpectBalanced(memp);
  memp.DrainAllCaches();
  EXPECT_EQ(memp.DepotBytes(), 0u);
  EXPECT_EQ(memp.Probe().cached_bytes, 0u);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
  ExpectBalanced(memp);
}

}  // namespace
}  // namespace fmemp
