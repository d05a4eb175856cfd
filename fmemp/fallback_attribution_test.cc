// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// A thread heap's fallback blocks (issue 15, items 2 and 3): the blocks a
// thread heap takes from the shared regions when its own are full are
// attributed to it (ThreadHeapStats::fallback_bytes) and charged to its own
// limit, whichever thread frees them and however they are reallocated; its
// thread's exit forgets them; and the per-thread live bytes with the shared
// regions' unattributed bytes sum to the front-end's used bytes.
// Run under --config=tsan and --config=asan too.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "fmemp/budget.h"
#include "fmemp/thread_heap.h"
#include "gtest/gtest.h"
#include "sync/spin_lock.h"
#include "tlsf/heap.h"

namespace fmemp {
namespace {

using Front = ThreadHeapMemp<sync::SpinLock>;

constexpr size_t kSharedBytes = size_t{1} << 20;
constexpr size_t kOwnBytes = size_t{16} << 10;
// Above SizeClassCache::kMaxCachedRequest: never parked, so the figures
// below are exact without flushing.
constexpr size_t kBlock = 2000;

// The calling thread's heap's figures (its thread_id); a default
// ThreadHeapStats (thread_id 0) if it has none listed.
ThreadHeapStats MyHeap(const Front& memp) {
  const uint64_t me = thread_heap_internal::CurrentThreadId();
  for (const ThreadHeapStats& heap : memp.ProbeThreadHeaps()) {
    if (heap.thread_id == me) return heap;
  }
  return ThreadHeapStats();
}

size_t SpanOf(Front& memp, void* p) {
  return memp.UsableSize(p) + tlsf::kBlockOverhead;
}

bool In(const unsigned char* region, size_t bytes, const void* p) {
  const auto* at = static_cast<const unsigned char*>(p);
  return at >= region && at < region + bytes;
}

int oom_calls = 0;
bool CountOom(void*, size_t, size_t) {
  ++oom_calls;
  return false;
}

class FallbackAttributionTest : public ::testing::Test {
 protected:
  FallbackAttributionTest()
      : shared_(new unsigned char[kSharedBytes]),
        own_(new unsigned char[kOwnBytes]) {
    EXPECT_TRUE(memp_.AddRegion(shared_.get(), kSharedBytes).ok());
    EXPECT_TRUE(memp_.AddRegion(own_.get(), kOwnBytes).ok());
  }
  // Allocates kBlock-byte blocks on the calling (bound) thread until
  // `fallback` of them came from the shared regions; returns all of them,
  // fallback blocks last.
  std::vector<void*> FillAndFallBack(int fallback) {
    std::vector<void*> blocks;
    int from_shared = 0;
    while (from_shared < fallback) {
      void* p = memp_.Allocate(kBlock);
      EXPECT_NE(p, nullptr);
      if (p == nullptr) break;
      blocks.push_back(p);
      if (!In(own_.get(), kOwnBytes, p)) ++from_shared;
    }
    return blocks;
  }
  size_t FallbackSpans(const std::vector<void*>& blocks) {
    size_t spans = 0;
    for (void* p : blocks) {
      if (!In(own_.get(), kOwnBytes, p)) spans += SpanOf(memp_, p);
    }
    return spans;
  }

  std::unique_ptr<unsigned char[]> shared_;
  std::unique_ptr<unsigned char[]> own_;
  Front memp_;
};

// The heap's limit covers its fallback blocks: the fallback that would pass
// it returns NULL (a failure and a limit refusal, no OOM handler), exactly
// at the limit.
TEST_F(FallbackAttributionTest, HeapLimitRefusesAFallback) {
  constexpr size_t kHeapLimit = 48 << 10;  // three times the own region
  oom_calls = 0;
  memp_.SetOutOfMemoryHandler(&CountOom, nullptr);
  std::thread worker([&] {
    ASSERT_TRUE(memp_.BindThisThread(own_.get()).ok());
    ASSERT_TRUE(memp_.TrySetThreadHeapLimit(0, kHeapLimit).ok());
    std::vector<void*> blocks;
    size_t spans = 0;
    for (;;) {
      void* p = memp_.Allocate(kBlock);
      if (p == nullptr) break;
      blocks.push_back(p);
      spans += SpanOf(memp_, p);
      ASSERT_LE(spans, kHeapLimit);  // on main: fallbacks pass it
    }
    const ThreadHeapStats heap = MyHeap(memp_);
    EXPECT_GT(heap.fallbacks, 0u);
    EXPECT_EQ(heap.fallback_bytes, FallbackSpans(blocks));
    EXPECT_GT(heap.fallback_bytes, 0u);
    // Exact: the refused block would have passed the limit, and the heap's
    // usage is every block it holds, its own and its fallback blocks.
    EXPECT_EQ(heap.budget_usage, spans);
    EXPECT_EQ(
        heap.budget_usage,
        heap.stats.used_bytes + heap.stats.cached_bytes + heap.fallback_bytes);
    EXPECT_GT(spans + tlsf::SpanForRequest(kBlock), kHeapLimit);
    EXPECT_EQ(heap.stats.failed_allocations, 1u);
    const MempStats total = memp_.Probe();
    EXPECT_EQ(total.failed_allocations, 1u);
    EXPECT_EQ(total.limit_refusals, 1u);
    EXPECT_EQ(oom_calls, 0);
    // Freed, the heap's usage and its fallback bytes drop to 0.
    for (void* p : blocks) EXPECT_TRUE(memp_.Free(p));
    EXPECT_EQ(MyHeap(memp_).fallback_bytes, 0u);
    EXPECT_EQ(MyHeap(memp_).budget_usage, 0u);
  });
  worker.join();
}

// A fallback block freed by another thread credits the heap it is
// attributed to (its fallback bytes and its limit's usage).
TEST_F(FallbackAttributionTest, CrossThreadFreeOfAFallbackBlockCreditsItsHeap) {
  std::atomic<int> step{0};
  std::vector<void*> fallback;
  std::thread worker([&] {
    ASSERT_TRUE(memp_.BindThisThread(own_.get()).ok());
    ASSERT_TRUE(memp_.TrySetThreadHeapLimit(0, 64 << 10).ok());
    const std::vector<void*> blocks = FillAndFallBack(3);
    const size_t fallback_spans = FallbackSpans(blocks);
    for (void* p : blocks) {
      if (!In(own_.get(), kOwnBytes, p)) fallback.push_back(p);
    }
    ThreadHeapStats heap = MyHeap(memp_);
    EXPECT_EQ(heap.fallback_bytes, fallback_spans);
    const size_t usage_before = heap.budget_usage;
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
    heap = MyHeap(memp_);
    EXPECT_EQ(heap.fallback_bytes, 0u);  // on main: never credited
    EXPECT_EQ(heap.budget_usage, usage_before - fallback_spans);
    for (void* p : blocks) {
      if (In(own_.get(), kOwnBytes, p)) memp_.Free(p);
    }
    EXPECT_EQ(MyHeap(memp_).budget_usage, 0u);
  });
  while (step.load() != 1) std::this_thread::yield();
  for (void* p : fallback) EXPECT_TRUE(memp_.Free(p));  // another thread
  step.store(2);
  worker.join();
  EXPECT_EQ(memp_.Probe().invalid_frees, 0u);
}

// A thread heap whose thread exits with live fallback blocks: the ledger
// forgets them (they become unattributed shared blocks), nothing is lost,
// nothing is credited twice (not to a later thread heap either), and the
// front-end's budget stays exact.
TEST_F(FallbackAttributionTest, ThreadExitWithLiveFallbackBlocks) {
  memp_.SetLimit(kSharedBytes);  // the front-end's budget charges everything
  auto taken = [&] {
    const MempStats s = memp_.Probe();
    return s.used_bytes + s.cached_bytes;
  };
  std::vector<void*> fallback;
  size_t fallback_spans = 0;
  std::thread worker([&] {
    ASSERT_TRUE(memp_.BindThisThread(own_.get()).ok());
    const std::vector<void*> blocks = FillAndFallBack(4);
    fallback_spans = FallbackSpans(blocks);
    for (void* p : blocks) {
      if (!In(own_.get(), kOwnBytes, p)) {
        fallback.push_back(p);
      } else {
        memp_.Free(p);
      }
    }
    EXPECT_EQ(MyHeap(memp_).fallback_bytes, fallback_spans);
    EXPECT_EQ(memp_.SharedUnattributedBytes(), 0u);
  });
  worker.join();
  EXPECT_TRUE(memp_.ProbeThreadHeaps().empty());
  // Nothing lost: the blocks are live shared blocks now, no one's.
  EXPECT_EQ(memp_.Probe().used_bytes, fallback_spans);
  EXPECT_EQ(memp_.SharedUnattributedBytes(), fallback_spans);
  EXPECT_EQ(memp_.budget().usage(), taken());
  // A new thread heap (perhaps in the exited one's memory) is not credited
  // when they are freed.
  auto own2 = std::make_unique<unsigned char[]>(kOwnBytes);
  ASSERT_TRUE(memp_.AddRegion(own2.get(), kOwnBytes).ok());
  std::atomic<int> step{0};
  std::thread second([&] {
    ASSERT_TRUE(memp_.BindThisThread(own2.get()).ok());
    void* mine = memp_.Allocate(kBlock);
    ASSERT_NE(mine, nullptr);
    const size_t usage = MyHeap(memp_).budget_usage;
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
    EXPECT_EQ(MyHeap(memp_).budget_usage, usage);
    EXPECT_EQ(MyHeap(memp_).fallback_bytes, 0u);
    memp_.Free(mine);
  });
  while (step.load() != 1) std::this_thread::yield();
  for (void* p : fallback) EXPECT_TRUE(memp_.Free(p));
  step.store(2);
  second.join();
  EXPECT_EQ(memp_.Probe().used_bytes, 0u);
  EXPECT_EQ(memp_.Probe().invalid_frees, 0u);
  EXPECT_EQ(memp_.budget().usage(), 0u);
  EXPECT_EQ(memp_.SharedUnattributedBytes(), 0u);
}

// Reallocation keeps a fallback block attributed to its heap: a growth is
// charged to the heap's limit first (refused past it: NULL, the block
// intact), a shrink in place credits it, on the owner's thread or another.
TEST_F(FallbackAttributionTest, ReallocOfAFallbackBlock) {
  constexpr size_t kHeapLimit = 40 << 10;
  std::atomic<int> step{0};
  void* block = nullptr;
  std::thread worker([&] {
    ASSERT_TRUE(memp_.BindThisThread(own_.get()).ok());
    ASSERT_TRUE(memp_.TrySetThreadHeapLimit(0, kHeapLimit).ok());
    std::vector<void*> blocks = FillAndFallBack(1);
    block = blocks.back();
    blocks.pop_back();
    std::memset(block, 0x5a, kBlock);
    ThreadHeapStats heap = MyHeap(memp_);
    const size_t own_used = heap.stats.used_bytes;
    EXPECT_EQ(heap.fallback_bytes, SpanOf(memp_, block));
    // Grows within the limit: still attributed, with its new span.
    void* grown = memp_.Reallocate(block, 3 * kBlock);
    ASSERT_NE(grown, nullptr);
    EXPECT_FALSE(In(own_.get(), kOwnBytes, grown));
    block = grown;
    EXPECT_EQ(static_cast<unsigned char*>(block)[kBlock - 1], 0x5a);
    heap = MyHeap(memp_);
    EXPECT_EQ(heap.fallback_bytes, SpanOf(memp_, block));
    EXPECT_EQ(heap.budget_usage, own_used + heap.fallback_bytes);
    // Past the heap's limit: refused, the block as it was.
    const uint64_t failed = heap.stats.failed_allocations;
    EXPECT_EQ(memp_.Reallocate(block, kHeapLimit), nullptr);
    heap = MyHeap(memp_);
    EXPECT_EQ(heap.stats.failed_allocations, failed + 1);
    EXPECT_EQ(heap.fallback_bytes, SpanOf(memp_, block));
    EXPECT_LE(heap.budget_usage, kHeapLimit);
    EXPECT_EQ(static_cast<unsigned char*>(block)[0], 0x5a);
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
    // Another thread shrank it: the heap was credited.
    heap = MyHeap(memp_);
    EXPECT_EQ(heap.fallback_bytes, SpanOf(memp_, block));
    EXPECT_LT(heap.fallback_bytes, 3 * kBlock);
    EXPECT_EQ(heap.budget_usage, own_used + heap.fallback_bytes);
    EXPECT_TRUE(memp_.Free(block));
    EXPECT_EQ(MyHeap(memp_).fallback_bytes, 0u);
    for (void* p : blocks) memp_.Free(p);
    EXPECT_EQ(MyHeap(memp_).budget_usage, 0u);
  });
  while (step.load() != 1) std::this_thread::yield();
  void* shrunk = memp_.Reallocate(block, 100);
  ASSERT_NE(shrunk, nullptr);
  block = shrunk;
  EXPECT_EQ(static_cast<unsigned char*>(block)[99], 0x5a);
  step.store(2);
  worker.join();
  EXPECT_GE(memp_.Probe().limit_refusals, 1u);
  EXPECT_EQ(memp_.Probe().used_bytes, 0u);
}

// Unbinding keeps the heap's fallback blocks attributed to it (the heap
// lives on with its limit): it is still listed while they live.
TEST_F(FallbackAttributionTest, UnboundHeapKeepsItsFallbackBlocks) {
  std::thread worker([&] {
    ASSERT_TRUE(memp_.BindThisThread(own_.get()).ok());
    std::vector<void*> blocks = FillAndFallBack(2);
    const size_t fallback_spans = FallbackSpans(blocks);
    std::vector<void*> fallback;
    for (void* p : blocks) {
      if (In(own_.get(), kOwnBytes, p)) {
        memp_.Free(p);
      } else {
        fallback.push_back(p);
      }
    }
    ASSERT_TRUE(memp_.UnbindThisThread().ok());
    ThreadHeapStats heap = MyHeap(memp_);
    EXPECT_EQ(heap.stats.region_count, 0u);
    EXPECT_EQ(heap.fallback_bytes, fallback_spans);
    EXPECT_EQ(heap.budget_usage, fallback_spans);
    for (void* p : fallback) EXPECT_TRUE(memp_.Free(p));
    EXPECT_EQ(MyHeap(memp_).thread_id, 0u);  // no longer listed
    EXPECT_EQ(memp_.ProbeThreadHeaps().size(), 0u);
  });
  worker.join();
  EXPECT_EQ(memp_.Probe().used_bytes, 0u);
}

int retired_calls = 0;
void CountRetired(void*, void*, void*) { ++retired_calls; }

// A fallback block in a shared region being retired: a realloc moves it out
// (still attributed, its new block charged to the heap), and its free
// removes the region.
TEST_F(FallbackAttributionTest, RetirementMovesKeepTheAttribution) {
  auto second = std::make_unique<unsigned char[]>(kSharedBytes);
  ASSERT_TRUE(memp_.AddRegion(second.get(), kSharedBytes).ok());
  retired_calls = 0;
  std::atomic<int> step{0};
  void* block = nullptr;
  std::vector<void*> blocks;
  std::thread worker([&] {
    ASSERT_TRUE(memp_.BindThisThread(own_.get()).ok());
    blocks = FillAndFallBack(1);
    block = blocks.back();
    blocks.pop_back();
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
    EXPECT_EQ(MyHeap(memp_).fallback_bytes, SpanOf(memp_, block));
    EXPECT_TRUE(memp_.Free(block));
    EXPECT_EQ(MyHeap(memp_).fallback_bytes, 0u);
    for (void* p : blocks) memp_.Free(p);
  });
  while (step.load() != 1) std::this_thread::yield();
  void* const region =
      In(shared_.get(), kSharedBytes, block) ? shared_.get() : second.get();
  ASSERT_TRUE(memp_.RetireRegion(region, &CountRetired, nullptr).ok());
  void* moved = memp_.Reallocate(block, 3 * kBlock);
  ASSERT_NE(moved, nullptr);
  EXPECT_FALSE(In(static_cast<unsigned char*>(region), kSharedBytes, moved));
  EXPECT_EQ(retired_calls, 1);  // its last block moved out
  block = moved;
  step.store(2);
  worker.join();
  EXPECT_EQ(memp_.Probe().used_bytes, 0u);
}

// At quiescence, each thread's live bytes (its regions' used bytes plus its
// fallback bytes) and the shared regions' unattributed bytes sum to the
// front-end's used bytes; the unattributed bytes are exactly what an
// unbound thread allocated.
TEST(FallbackAttributionIdentityTest, LiveBytesSumToTheFrontEndsUsedBytes) {
  constexpr int kThreads = 4;
  auto shared = std::make_unique<unsigned char[]>(kSharedBytes);
  std::vector<std::unique_ptr<unsigned char[]>> own;
  Front memp;
  ASSERT_TRUE(memp.AddRegion(shared.get(), kSharedBytes).ok());
  for (int t = 0; t < kThreads; ++t) {
    own.push_back(std::make_unique<unsigned char[]>(kOwnBytes));
    ASSERT_TRUE(memp.AddRegion(own.back().get(), kOwnBytes).ok());
  }
  std::atomic<int> bound{0};
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ASSERT_TRUE(memp.BindThisThread(own[t].get()).ok());
      bound.fetch_add(1);
      // Every region bound first: binding a region that holds another
      // heap's fallback blocks makes them the binder's.
      while (bound.load() != kThreads) std::this_thread::yield();
      std::vector<void*> blocks;
      for (int i = 0; i < 20 + 3 * t; ++i) {
        void* p = memp.Allocate(i % 2 == 0 ? kBlock : 300 + 40 * t);
        ASSERT_NE(p, nullptr);
        blocks.push_back(p);
      }
      for (size_t i = 0; i < blocks.size(); i += 3) memp.Free(blocks[i]);
      memp.FlushThisThread();  // published, nothing parked
      ready.fetch_add(1);
      while (!done.load()) std::this_thread::yield();
      for (size_t i = 1; i < blocks.size(); ++i) {
        if (i % 3 != 0) memp.Free(blocks[i]);
      }
    });
  }
  // (Once every region is bound: a block of a region bound later would
  // be that thread heap's.)
  while (bound.load() != kThreads) std::this_thread::yield();
  size_t unbound_spans = 0;
  std::vector<void*> unbound;
  for (int i = 0; i < 5; ++i) {
    unbound.push_back(memp.Allocate(700 + 100 * i));
    unbound_spans += SpanOf(memp, unbound.back());
  }
  while (ready.load() != kThreads) std::this_thread::yield();
  size_t live = 0;
  const ThreadHeapStatsList heaps = memp.ProbeThreadHeaps();
  EXPECT_EQ(heaps.size(), static_cast<size_t>(kThreads));
  for (const ThreadHeapStats& heap : heaps) {
    EXPECT_GT(heap.fallback_bytes, 0u);
    EXPECT_EQ(
        heap.budget_usage,
        heap.stats.used_bytes + heap.stats.cached_bytes + heap.fallback_bytes);
    live += heap.stats.used_bytes + heap.fallback_bytes;
  }
  EXPECT_EQ(memp.SharedUnattributedBytes(), unbound_spans);
  EXPECT_EQ(live + memp.SharedUnattributedBytes(), memp.Probe().used_bytes);
  done.store(true);
  for (auto& thread : threads) thread.join();
  for (void* p : unbound) memp.Free(p);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
}

// Threads racing at their heaps' limits while falling back to the shared
// regions, freeing each other's blocks (fallback blocks included): no
// heap's usage ever passes its limit, and every refusal is counted once.
TEST(FallbackAttributionRaceTest, BoundHeapsFallingBackNeverPassTheirLimit) {
  constexpr int kThreads = 8;
  constexpr size_t kOwn = size_t{8} << 10;
  constexpr size_t kHeapLimit = 40'000;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kOps = 20'000;
#else
  constexpr int kOps = 125'000;  // a million operations in all
#endif
  auto shared = std::make_unique<unsigned char[]>(size_t{4} << 20);
  std::vector<std::unique_ptr<unsigned char[]>> own;
  Front memp;
  ASSERT_TRUE(memp.AddRegion(shared.get(), size_t{4} << 20).ok());
  for (int t = 0; t < kThreads; ++t) {
    own.push_back(std::make_unique<unsigned char[]>(kOwn));
    ASSERT_TRUE(memp.AddRegion(own.back().get(), kOwn).ok());
  }
  constexpr size_t kMailboxes = 16;
  std::atomic<void*> mailbox[kMailboxes] = {};
  std::atomic<bool> passed{false};
  std::atomic<uint64_t> nulls{0};
  std::atomic<int> bound{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ASSERT_TRUE(memp.BindThisThread(own[t].get()).ok());
      ASSERT_TRUE(memp.TrySetThreadHeapLimit(0, kHeapLimit).ok());
      bound.fetch_add(1);
      while (bound.load() < kThreads) std::this_thread::yield();
      std::vector<void*> held(48, nullptr);
      uint64_t x = 0x9e3779b97f4a7c15ULL * (t + 1);
      for (int i = 0; i < kOps; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        void*& slot =
            held[static_cast<size_t>(i) < held.size() ? i : x % held.size()];
        if (slot != nullptr) {
          if ((x >> 20) % 4 == 0) {
            // Another thread frees it (and this one frees another's).
            slot = mailbox[(x >> 24) % kMailboxes].exchange(slot);
          }
          memp.Free(slot);
          slot = nullptr;
        } else {
          slot = memp.Allocate(16 + (x >> 40) % 3000);
          if (slot == nullptr) nulls.fetch_add(1);
        }
        if (i % 512 == 0) {
          for (const ThreadHeapStats& heap : memp.ProbeThreadHeaps()) {
            if (heap.budget_usage > heap.limit) passed.store(true);
          }
        }
      }
      for (void* p : held) memp.Free(p);
      memp.FlushThisThread();
      bound.fetch_add(1);
      // Stay bound until every thread is done: the mailboxes' blocks are
      // freed by the main thread, crediting the live heaps.
      while (bound.load() < 2 * kThreads + 1) std::this_thread::yield();
    });
  }
  while (bound.load() < 2 * kThreads) std::this_thread::yield();
  for (auto& box : mailbox) {
    if (void* p = box.exchange(nullptr)) memp.Free(p);
  }
  uint64_t fallbacks = 0;
  for (const ThreadHeapStats& heap : memp.ProbeThreadHeaps()) {
    EXPECT_EQ(heap.fallback_bytes, 0u);
    EXPECT_EQ(heap.budget_usage,
              heap.stats.used_bytes + heap.stats.cached_bytes);
    fallbacks += heap.fallbacks;
  }
  bound.fetch_add(1);
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(passed.load());
  EXPECT_GT(fallbacks, 0u);
  EXPECT_GT(nulls.load(), 0u);
  const MempStats stats = memp.Probe();
  EXPECT_EQ(stats.failed_allocations, nulls.load());
  EXPECT_EQ(stats.limit_refusals, nulls.load());
  EXPECT_EQ(stats.used_bytes, 0u);
  EXPECT_EQ(stats.invalid_frees, 0u);
}

}  // namespace
}  // namespace fmemp
