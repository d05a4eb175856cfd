// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// A double free across threads, as a user meets it: two live threads free
// the same block at the same moment (released together by a barrier). Under
// every thread-safe policy of the C API exactly one free applies, the other
// is reported as FMEMP_MISUSE_DOUBLE_FREE and counted, and no block is ever
// handed out twice afterwards. Also: a damaged per-thread cache link is
// dropped and reported, never followed. Run under --config=tsan too.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/test_util.h"
#include "fmemp/thread_cache.h"
#include "gtest/gtest.h"
#include "sync/spin_lock.h"

namespace {

constexpr int kRounds = 200;
constexpr size_t kBlockBytes = 48;
constexpr size_t kRegionBytes = size_t{4} << 20;

// A reusable barrier for a fixed number of threads (spins: the rounds are
// short and the point is that the frees race).
class SpinBarrier {
 public:
  explicit SpinBarrier(int parties) : parties_(parties) {}
  void Wait() {
    const uint32_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == parties_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    while (generation_.load(std::memory_order_acquire) == generation) {
      std::this_thread::yield();
    }
  }

 private:
  const int parties_;
  std::atomic<int> arrived_{0};
  std::atomic<uint32_t> generation_{0};
};

std::atomic<int> double_free_reports{0};
std::atomic<int> other_reports{0};
void CountMisuse(void*, int kind, const void*) {
  if (kind == FMEMP_MISUSE_DOUBLE_FREE) {
    double_free_reports.fetch_add(1);
  } else {
    other_reports.fetch_add(1);
  }
}

uint64_t LiveBlocks(FMemp* memp) {
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(memp, &usage), FMEMP_SUCCESS);
  return usage.live_blocks;
}

struct Case {
  FMempPolicy policy;
  bool owner_heap;  // THREAD_HEAPS: the block lies in the main thread's heap
  const char* name;
};

class CrossThreadDoubleFreeTest : public ::testing::TestWithParam<Case> {};

// Blocks allocated by several threads at once are distinct and disjoint.
void ExpectDisjoint(std::vector<std::pair<uintptr_t, size_t>> blocks) {
  std::sort(blocks.begin(), blocks.end());
  for (size_t i = 1; i < blocks.size(); ++i) {
    ASSERT_GE(blocks[i].first, blocks[i - 1].first + blocks[i - 1].second)
        << "block handed out twice or overlapping: " << i;
  }
}

TEST_P(CrossThreadDoubleFreeTest, ExactlyOneFreeAppliesAndOneIsReported) {
  const Case c = GetParam();
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[kRegionBytes]);
  std::unique_ptr<uint8_t[]> own(new uint8_t[kRegionBytes]);
  fmemp::test_util::ScopedFMemp memp;
  ASSERT_EQ(FMempInitWithPolicy(memp.get(), buffer.get(),
                                buffer.get() + kRegionBytes, c.policy),
            FMEMP_SUCCESS);
  ASSERT_EQ(FMempSetErrorHandler(memp.get(), &CountMisuse, nullptr),
            FMEMP_SUCCESS);
  double_free_reports = 0;
  other_reports = 0;
  if (c.owner_heap) {
    ASSERT_EQ(FMempAddRegion(memp.get(), own.get(), own.get() + kRegionBytes),
              FMEMP_SUCCESS);
    ASSERT_EQ(FMempBindThread(memp.get(), own.get()), FMEMP_SUCCESS);
  }

  SpinBarrier barrier(3);
  std::atomic<void*> victim{nullptr};
  std::atomic<bool> stop{false};
  std::vector<std::pair<uintptr_t, size_t>> found[2];
  auto worker = [&](int index) {
    for (;;) {
      barrier.Wait();  // the victim is published (or stop is set)
      if (stop.load()) break;
      FMempFree(memp.get(), victim.load());
      barrier.Wait();  // both frees are done
    }
    // Whatever this thread's cache holds is handed out now.
    for (int i = 0; i < 4 * kRounds; ++i) {
      void* p = FMempMalloc(memp.get(), kBlockBytes);
      ASSERT_NE(p, nullptr);
      found[index].push_back({reinterpret_cast<uintptr_t>(p), kBlockBytes});
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  for (int round = 0; round < kRounds; ++round) {
    void* p = FMempMalloc(memp.get(), kBlockBytes);
    ASSERT_NE(p, nullptr);
    if (c.owner_heap) {
      ASSERT_GE(static_cast<uint8_t*>(p), own.get());
      ASSERT_LT(static_cast<uint8_t*>(p), own.get() + kRegionBytes);
    }
    std::memset(p, 0x5a, kBlockBytes);
    FMempSyncThreadHeap(memp.get());
    const uint64_t live_before = LiveBlocks(memp.get());
    victim.store(p);
    barrier.Wait();                   // go
    barrier.Wait();                   // both frees done
    FMempSyncThreadHeap(memp.get());  // applies queued frees (thread heaps)
    ASSERT_EQ(LiveBlocks(memp.get()), live_before - 1) << "round " << round;
    ASSERT_EQ(double_free_reports.load(), round + 1) << "round " << round;
  }
  stop.store(true);
  barrier.Wait();
  std::vector<std::pair<uintptr_t, size_t>> mine;
  for (int i = 0; i < 4 * kRounds; ++i) {
    void* p = FMempMalloc(memp.get(), kBlockBytes);
    ASSERT_NE(p, nullptr);
    mine.push_back({reinterpret_cast<uintptr_t>(p), kBlockBytes});
  }
  a.join();
  b.join();
  EXPECT_EQ(other_reports.load(), 0);
  FMempUsage usage;
  ASSERT_EQ(FMempProbe64(memp.get(), &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.invalid_frees, static_cast<uint64_t>(kRounds));
  for (int i = 0; i < 2; ++i) {
    mine.insert(mine.end(), found[i].begin(), found[i].end());
  }
  ExpectDisjoint(mine);
  for (const auto& block : mine) {
    FMempFree(memp.get(), reinterpret_cast<void*>(block.first));
  }
  EXPECT_EQ(FMempCheck(memp.get()), FMEMP_SUCCESS);
  EXPECT_EQ(double_free_reports.load(), kRounds);
  EXPECT_EQ(other_reports.load(), 0);
  if (c.owner_heap) {
    ASSERT_EQ(FMempUnbindThread(memp.get()), FMEMP_SUCCESS);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Policies, CrossThreadDoubleFreeTest,
    ::testing::Values(Case{FMEMP_POLICY_THREAD_CACHE, false, "ThreadCache"},
                      Case{FMEMP_POLICY_THREAD_HEAPS, false, "ThreadHeaps"},
                      Case{FMEMP_POLICY_THREAD_HEAPS, true, "OwnersHeap"},
                      Case{FMEMP_POLICY_MUTEX, false, "Mutex"},
                      Case{FMEMP_POLICY_SPINLOCK, false, "SpinLock"}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.name);
    });

// --- The per-thread cache's lists (C++ front-end) ---

struct Reports {
  int double_frees = 0;
  int damaged = 0;
  int other = 0;
};
void Record(void* context, fmemp::MempError error, const void*) {
  auto* r = static_cast<Reports*>(context);
  if (error == fmemp::MempError::kDoubleFree) {
    ++r->double_frees;
  } else if (error == fmemp::MempError::kUseAfterFreeWrite) {
    ++r->damaged;
  } else {
    ++r->other;
  }
}

class CacheListTest : public ::testing::Test {
 protected:
  CacheListTest() : buffer_(new uint8_t[kRegionBytes]) {
    memp_.SetErrorHandler(&Record, &reports_);
    EXPECT_TRUE(memp_.AddRegion(buffer_.get(), kRegionBytes).ok());
  }
  bool InRegion(const void* p) const {
    const auto* b = static_cast<const uint8_t*>(p);
    return b >= buffer_.get() && b < buffer_.get() + kRegionBytes;
  }

  std::unique_ptr<uint8_t[]> buffer_;
  Reports reports_;
  fmemp::CachingMemp<fmemp::sync::SpinLock> memp_;
};

TEST_F(CacheListTest, DamagedLinkIsDroppedAndReportedNotFollowed) {
  void* a = memp_.Allocate(kBlockBytes);
  void* b = memp_.Allocate(kBlockBytes);
  void* c = memp_.Allocate(kBlockBytes);
  ASSERT_TRUE(a && b && c);
  memp_.FlushThisThread();  // the class's list now holds exactly a, b, c
  ASSERT_TRUE(memp_.Free(c));
  ASSERT_TRUE(memp_.Free(b));
  ASSERT_TRUE(memp_.Free(a));  // the list: a -> b -> c
  // A use after free overwrites b's link with an address outside any
  // region; following it would crash.
  uintptr_t wild = 0xdead0000;
  std::memcpy(b, &wild, sizeof(wild));
  EXPECT_EQ(memp_.Allocate(kBlockBytes), a);
  EXPECT_EQ(memp_.Allocate(kBlockBytes), b);
  void* next = memp_.Allocate(kBlockBytes);  // not the wild link
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(InRegion(next));
  EXPECT_NE(next, c);  // dropped with the rest of the list
  EXPECT_EQ(reports_.damaged, 1);
  EXPECT_EQ(memp_.damaged_lists(), 1u);
  EXPECT_EQ(memp_.Probe().invalid_frees, 1u);
  // Many more allocations: no wild pointer, no second report.
  for (int i = 0; i < 100; ++i) {
    void* p = memp_.Allocate(kBlockBytes);
    ASSERT_TRUE(InRegion(p));
  }
  EXPECT_EQ(reports_.damaged, 1);
  EXPECT_TRUE(memp_.Check().ok());
}

TEST_F(CacheListTest, ClobberedMarkerDropsTheListAtHandOut) {
  void* a = memp_.Allocate(kBlockBytes);
  void* b = memp_.Allocate(kBlockBytes);
  ASSERT_TRUE(a && b);
  memp_.FlushThisThread();
  ASSERT_TRUE(memp_.Free(a));
  ASSERT_TRUE(memp_.Free(b));            // the list: b -> a
  std::memset(b, 0, 2 * sizeof(void*));  // a use after free zeroes b
  void* p = memp_.Allocate(kBlockBytes);
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p, b);
  EXPECT_NE(p, a);
  EXPECT_EQ(reports_.damaged, 1);
  // The cache's counts cover only what its lists hold.
  memp_.FlushThisThread();
  EXPECT_EQ(memp_.CachedBytes(), 0u);
  EXPECT_TRUE(memp_.Check().ok());
}

TEST_F(CacheListTest, DamagedLinkFoundByATrimIsNotFollowed) {
  void* a = memp_.Allocate(kBlockBytes);
  void* b = memp_.Allocate(kBlockBytes);
  ASSERT_TRUE(a && b);
  memp_.FlushThisThread();
  ASSERT_TRUE(memp_.Free(a));
  ASSERT_TRUE(memp_.Free(b));  // the list: b -> a
  uintptr_t wild = 0x10;
  std::memcpy(b, &wild, sizeof(wild));
  memp_.FlushThisThread();  // walks the list: must stop at b
  EXPECT_EQ(reports_.damaged, 1);
  EXPECT_EQ(memp_.CachedBytes(), 0u);
  EXPECT_TRUE(memp_.Check().ok());
}

TEST_F(CacheListTest, BlockParkedInAnotherThreadsCacheIsRefusedEverywhere) {
  void* p = memp_.Allocate(kBlockBytes);
  ASSERT_NE(p, nullptr);
  std::thread other([&] { EXPECT_TRUE(memp_.Free(p)); });
  other.join();
  // Parked in the other (exited) thread's cache... which went back to the
  // heaps on exit, so park it in a live thread's cache instead.
  void* q = memp_.Allocate(kBlockBytes);
  ASSERT_NE(q, nullptr);
  std::atomic<int> step{0};
  std::thread holder([&] {
    EXPECT_TRUE(memp_.Free(q));  // parked in holder's cache
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
  });
  while (step.load() != 1) std::this_thread::yield();
  EXPECT_EQ(memp_.UsableSize(q), 0u);
  EXPECT_FALSE(memp_.Free(q));
  EXPECT_EQ(memp_.Reallocate(q, 2 * kBlockBytes), nullptr);
  EXPECT_EQ(reports_.double_frees, 2);
  step.store(2);
  holder.join();
  EXPECT_EQ(reports_.other, 0);
  EXPECT_TRUE(memp_.Check().ok());
}

// A live block whose user data happens to hold some other value in the
// marker's word is freed normally (only the exact keyed value counts).
TEST_F(CacheListTest, UserDataInTheMarkerWordDoesNotBlockAFree) {
  for (int i = 0; i < 64; ++i) {
    void* p = memp_.Allocate(kBlockBytes);
    ASSERT_NE(p, nullptr);
    uintptr_t words[2] = {reinterpret_cast<uintptr_t>(p),
                          reinterpret_cast<uintptr_t>(p) ^ uintptr_t{1} << i};
    std::memcpy(p, words, sizeof(words));
    EXPECT_TRUE(memp_.Free(p));
  }
  EXPECT_EQ(reports_.double_frees, 0);
}

}  // namespace
