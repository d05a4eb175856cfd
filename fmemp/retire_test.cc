// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Region retirement (issue 15) at the lock-policy front-ends and the
// per-thread caches' (whose parked blocks of the region are given back,
// never handed out again): a retiring
// region hands out nothing, keeps its live blocks valid, and goes (its
// handler run outside the lock) with its last block, by any free path;
// cancel, bad input, and threads racing frees and allocations against it.

#include <atomic>
#include <cstddef>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "fmemp/memp.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

constexpr size_t kRegionBytes = size_t{256} << 10;

template <typename Memp>
struct Retirements {
  Memp* memp = nullptr;
  int calls = 0;
  void* begin = nullptr;
  void* end = nullptr;
  bool lock_was_free = false;
};

// Runs outside the lock: calling back into the Memp would deadlock a mutex
// otherwise.
template <typename Memp>
void OnRetired(void* context, void* begin, void* end) {
  auto* r = static_cast<Retirements<Memp>*>(context);
  ++r->calls;
  r->begin = begin;
  r->end = end;
  r->lock_was_free = r->memp->Probe().region_count >= 0;
}

template <typename Memp>
class RetireTest : public ::testing::Test {
 protected:
  RetireTest() {
    for (auto& region : regions_) {
      region = std::make_unique<unsigned char[]>(kRegionBytes);
      EXPECT_TRUE(memp_.AddRegion(region.get(), kRegionBytes).ok());
    }
    // A cache that took a retiring region's parked block for a damaged
    // link would report it here.
    memp_.SetErrorHandler(&CountReport, &reports_);
  }
  ~RetireTest() override { EXPECT_EQ(reports_.load(), 0); }
  static void CountReport(void* context, MempError, const void*) {
    static_cast<std::atomic<int>*>(context)->fetch_add(1);
  }
  bool InRegion(const void* p, int i) const {
    const auto* b = static_cast<const unsigned char*>(p);
    return b >= regions_[i].get() && b < regions_[i].get() + kRegionBytes;
  }
  const RegionStats* StatsOf(const RegionStatsList& list, int i) const {
    for (const RegionStats& s : list) {
      if (s.begin == regions_[i].get()) return &s;
    }
    return nullptr;
  }

  std::unique_ptr<unsigned char[]> regions_[3];
  std::atomic<int> reports_{0};
  Memp memp_;
};

using LockPolicies =
    ::testing::Types<Memp<sync::Mutex>, Memp<sync::SpinLock>,
                     Memp<sync::NoLock>, CachingMemp<sync::SpinLock>,
                     ThreadHeapMemp<sync::SpinLock>>;
TYPED_TEST_SUITE(RetireTest, LockPolicies);

TYPED_TEST(RetireTest, RetiringRegionHandsOutNothingAndGoesWithItsLastBlock) {
  // 20 blocks; the region of the first is the one retired (v).
  std::vector<void*> in_v, others;
  std::vector<void*> first20;
  for (int i = 0; i < 20; ++i) {
    void* p = this->memp_.Allocate(1000);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, 1000);
    first20.push_back(p);
  }
  int v = 0;
  while (!this->InRegion(first20[0], v)) ++v;
  for (void* p : first20) (this->InRegion(p, v) ? in_v : others).push_back(p);
  Retirements<TypeParam> retired{&this->memp_};
  ASSERT_TRUE(this->memp_
                  .RetireRegion(this->regions_[v].get(), &OnRetired<TypeParam>,
                                &retired)
                  .ok());
  // Its figures show it retiring, with its live bytes.
  const RegionStatsList regions = this->memp_.ProbeRegions();
  const RegionStats* s = this->StatsOf(regions, v);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->retiring);
  EXPECT_EQ(s->live_blocks, in_v.size());
  EXPECT_GT(s->used_bytes, in_v.size() * 1000);
  // Nothing new comes from it.
  for (int i = 0; i < 400; ++i) {
    void* p = this->memp_.Allocate(16 + i);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(this->InRegion(p, v));
    others.push_back(p);
  }
  // Its blocks stay valid; freeing all but one keeps it.
  for (size_t i = 1; i < in_v.size(); ++i) {
    EXPECT_EQ(static_cast<unsigned char*>(in_v[i])[999], 0x5a);
    this->memp_.Free(in_v[i]);
  }
  EXPECT_EQ(retired.calls, 0);
  EXPECT_EQ(this->memp_.Probe().region_count, 3u);
  // The last one, through a moving reallocation, takes it away.
  void* moved = this->memp_.Reallocate(in_v[0], 50000);
  ASSERT_NE(moved, nullptr);
  EXPECT_FALSE(this->InRegion(moved, v));
  EXPECT_EQ(static_cast<unsigned char*>(moved)[999], 0x5a);
  EXPECT_EQ(retired.calls, 1);
  EXPECT_EQ(retired.begin, this->regions_[v].get());
  EXPECT_TRUE(retired.lock_was_free);
  EXPECT_EQ(this->memp_.Probe().region_count, 2u);
  EXPECT_EQ(this->StatsOf(this->memp_.ProbeRegions(), v), nullptr);
  // Its memory is the caller's again: nothing of fmemp's lives there.
  std::memset(this->regions_[v].get(), 0, kRegionBytes);
  this->memp_.Free(moved);
  for (void* p : others) this->memp_.Free(p);
  EXPECT_TRUE(this->memp_.Check().ok());
}

TYPED_TEST(RetireTest, EmptyRegionGoesAtOnceAndBadInputChangesNothing) {
  Retirements<TypeParam> retired{&this->memp_};
  int dummy = 0;
  EXPECT_EQ(this->memp_.TryRetireRegion(&dummy, nullptr, nullptr).error(),
            ManagementError::kNoRegion);
  EXPECT_EQ(this->memp_.TryCancelRetire(this->regions_[1].get()).error(),
            ManagementError::kNotRetiring);
  ASSERT_TRUE(this->memp_
                  .RetireRegion(this->regions_[1].get(), &OnRetired<TypeParam>,
                                &retired)
                  .ok());
  EXPECT_EQ(retired.calls, 1);  // no live block: gone before the return
  EXPECT_EQ(this->memp_.Probe().region_count, 2u);
  EXPECT_EQ(
      this->memp_.TryRetireRegion(this->regions_[1].get(), nullptr, nullptr)
          .error(),
      ManagementError::kNoRegion);
}

TYPED_TEST(RetireTest, CancelPutsItBackAndTwiceIsRefused) {
  void* p = nullptr;
  while (p == nullptr || !this->InRegion(p, 2)) {
    p = this->memp_.Allocate(20000);
    ASSERT_NE(p, nullptr);
  }
  ASSERT_TRUE(
      this->memp_.RetireRegion(this->regions_[2].get(), nullptr, nullptr).ok());
  EXPECT_EQ(
      this->memp_.TryRetireRegion(this->regions_[2].get(), nullptr, nullptr)
          .error(),
      ManagementError::kRetiring);
  ASSERT_TRUE(this->memp_.CancelRetire(this->regions_[2].get()).ok());
  const RegionStatsList regions = this->memp_.ProbeRegions();
  const RegionStats* s = this->StatsOf(regions, 2);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->retiring);
  this->memp_.Free(p);  // no longer retiring: the region stays
  EXPECT_EQ(this->memp_.Probe().region_count, 3u);
}

// A removal tried on a retiring region that still holds a block is refused
// and leaves it retiring: out of service, as before. (CachingMemp's removal
// takes a region out of service and, on failure, put this one back in: the
// key-value server's trims then had new keys placed in a retiring region.)
TYPED_TEST(RetireTest, RemovalTriedWhileRetiringLeavesItOutOfService) {
  void* p = nullptr;
  std::vector<void*> elsewhere;
  while (p == nullptr || !this->InRegion(p, 0)) {
    if (p != nullptr) elsewhere.push_back(p);
    p = this->memp_.Allocate(3000);
    ASSERT_NE(p, nullptr);
  }
  for (void* q : elsewhere) this->memp_.Free(q);  // room for what follows
  elsewhere.clear();
  ASSERT_TRUE(
      this->memp_.RetireRegion(this->regions_[0].get(), nullptr, nullptr).ok());
  EXPECT_EQ(this->memp_.TryRemoveRegion(this->regions_[0].get()).error(),
            ManagementError::kLiveBlocks);
  const RegionStatsList regions = this->memp_.ProbeRegions();
  const RegionStats* s = this->StatsOf(regions, 0);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->retiring);
  EXPECT_EQ(s->live_blocks, 1u);
  for (int i = 0; i < 300; ++i) {
    void* q = this->memp_.Allocate(16 + 7 * i);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(this->InRegion(q, 0)) << "block " << i;
    elsewhere.push_back(q);
  }
  this->memp_.Free(p);  // its last block: it goes
  EXPECT_EQ(this->StatsOf(this->memp_.ProbeRegions(), 0), nullptr);
  for (void* q : elsewhere) this->memp_.Free(q);
  EXPECT_TRUE(this->memp_.Check().ok());
}

// Threads allocate and free while the main thread retires a region: no
// block from it after the retirement, none lost, and it goes once the
// threads have freed theirs.
TYPED_TEST(RetireTest, RacingThreadsNeverGetABlockOfTheRetiredRegion) {
  if (!TypeParam::kThreadSafe) GTEST_SKIP() << "one thread at a time";
  constexpr int kThreads = 4;
  std::atomic<bool> retired_flag{false};
  std::atomic<bool> bad{false};
  std::atomic<int> started{0};
  Retirements<TypeParam> retired{&this->memp_};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> held(64, nullptr);
      uint64_t x = 88172645463325252ULL + t;
      started.fetch_add(1);
      for (int i = 0; i < 20000; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        void*& slot = held[x % held.size()];
        if (slot != nullptr) {
          this->memp_.Free(slot);
          slot = nullptr;
        } else {
          const bool after = retired_flag.load(std::memory_order_acquire);
          slot = this->memp_.Allocate(16 + (x >> 40) % 2000);
          if (slot != nullptr && after && this->InRegion(slot, 0)) {
            bad.store(true);
          }
        }
      }
      for (void* p : held) this->memp_.Free(p);
    });
  }
  while (started.load() < kThreads) std::this_thread::yield();
  ASSERT_TRUE(this->memp_
                  .RetireRegion(this->regions_[0].get(), &OnRetired<TypeParam>,
                                &retired)
                  .ok());
  retired_flag.store(true, std::memory_order_release);
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(bad.load());
  EXPECT_EQ(retired.calls, 1);
  EXPECT_EQ(this->memp_.Probe().region_count, 2u);
  EXPECT_EQ(this->memp_.Probe().live_blocks, 0u);
  EXPECT_TRUE(this->memp_.Check().ok());
}

// Thread heaps: only shared regions retire (a bound one is not found until
// it is unbound), a retiring region cannot be bound, and a bound thread's
// free of the last block reaps it.
TEST(ThreadHeapRetireTest, BoundRegionsStayAndRetiringOnesAreNotBound) {
  auto a = std::make_unique<unsigned char[]>(kRegionBytes);
  auto b = std::make_unique<unsigned char[]>(kRegionBytes);
  ThreadHeapMemp<sync::SpinLock> memp;
  ASSERT_TRUE(memp.AddRegion(a.get(), kRegionBytes).ok());
  ASSERT_TRUE(memp.AddRegion(b.get(), kRegionBytes).ok());
  std::atomic<int> step{0};
  void* block = nullptr;
  int calls = 0;
  std::thread worker([&] {
    ASSERT_TRUE(memp.BindThisThread(a.get()).ok());
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
    EXPECT_EQ(memp.TryBindThisThread(b.get()).error(),
              ManagementError::kRetiring);
    memp.Free(block);  // a shared block, freed by a bound thread
    step.store(3);
  });
  while (step.load() != 1) std::this_thread::yield();
  EXPECT_EQ(memp.TryRetireRegion(a.get(), nullptr, nullptr).error(),
            ManagementError::kNoRegion);
  block = memp.Allocate(100);  // unbound: from the shared region b
  ASSERT_NE(block, nullptr);
  ASSERT_TRUE(memp.RetireRegion(
                      b.get(),
                      [](void* context, void*, void*) {
                        ++*static_cast<int*>(context);
                      },
                      &calls)
                  .ok());
  step.store(2);
  while (step.load() != 3) std::this_thread::yield();
  worker.join();
  EXPECT_EQ(calls, 1);
  // a is shared again (the worker exited); b is gone.
  EXPECT_EQ(memp.Probe().region_count, 1u);
}

}  // namespace
}  // namespace fmemp
