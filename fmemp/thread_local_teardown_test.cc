// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Issue 14, failure 1: a program's thread_local objects that free or
// allocate through fmemp in their destructors, constructed before or after
// the thread's first fmemp call. Before per-thread state was handed back by
// a pthread key destructor, one constructed first was destroyed after
// fmemp's per-thread state, and ASan reported a heap-use-after-free in
// RegisterThreadState. Run under --config=asan (and tsan) too.

#include <cstring>
#include <thread>
#include <vector>

#include "fmemp/fmemp.h"
#include "fmemp/thread_registry.h"
#include "gtest/gtest.h"

namespace {

FMemp* g_memp = nullptr;

// Holds blocks of g_memp; its destructor frees them and allocates and frees
// once more, as a program's per-thread object might.
struct Holder {
  std::vector<void*> blocks;
  ~Holder() {
    for (void* p : blocks) FMempFree(g_memp, p);
    void* late = FMempMalloc(g_memp, 48);
    if (late != nullptr) std::memset(late, 0x5a, 48);
    FMempFree(g_memp, late);
  }
};

thread_local Holder holder;

enum class Order { kHolderFirst, kFmempFirst };

class ThreadLocalTeardownTest
    : public testing::TestWithParam<std::tuple<FMempPolicy, Order>> {};

TEST_P(ThreadLocalTeardownTest, DestructorMayFreeAndAllocate) {
  const FMempPolicy policy = std::get<0>(GetParam());
  const Order order = std::get<1>(GetParam());
  alignas(16) static unsigned char buffer[1 << 20];
  FMemp memp = {};
  ASSERT_EQ(FMempInitWithPolicy(&memp, buffer, buffer + sizeof(buffer), policy),
            FMEMP_SUCCESS);
  g_memp = &memp;
  const int threads = policy == FMEMP_POLICY_SINGLE_THREAD ? 1 : 4;
  for (int t = 0; t < threads; ++t) {
    std::thread worker([order] {
      if (order == Order::kHolderFirst) {
        holder.blocks.reserve(64);  // constructed before any fmemp call
      } else {
        FMempFree(g_memp, FMempMalloc(g_memp, 16));
      }
      for (int i = 0; i < 64; ++i) {
        void* p = FMempMalloc(g_memp, 16 + 8 * static_cast<size_t>(i));
        ASSERT_NE(p, nullptr);
        holder.blocks.push_back(p);
      }
    });
    worker.join();  // one at a time: single_thread allows no overlap
  }
  FMempDrainThreadCaches(&memp);
  FMempUsage usage;
  ASSERT_EQ(FMempProbe64(&memp, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.live_blocks, 0u);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(FMempCheck(&memp), FMEMP_SUCCESS);
  FMempRemove(&memp);
  g_memp = nullptr;
}

INSTANTIATE_TEST_SUITE_P(
    Policies, ThreadLocalTeardownTest,
    testing::Combine(testing::Values(FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK,
                                     FMEMP_POLICY_SINGLE_THREAD,
                                     FMEMP_POLICY_THREAD_CACHE,
                                     FMEMP_POLICY_THREAD_HEAPS),
                     testing::Values(Order::kHolderFirst, Order::kFmempFirst)));

// A thread that used many short-lived pools keeps at most one orphaned
// state: each registration drops the orphans of removed pools.
TEST(ThreadLocalTeardownTest, OrphansDoNotAccumulate) {
  alignas(16) static unsigned char buffer[256 << 10];
  const size_t before = fmemp::ThreadStateCountOfThisThread();
  for (int cycle = 0; cycle < 1000; ++cycle) {
    FMemp memp = {};
    ASSERT_EQ(FMempInit(&memp, buffer, buffer + sizeof(buffer)), FMEMP_SUCCESS);
    FMempFree(&memp, FMempMalloc(&memp, 32));  // registers a cache
    FMempRemove(&memp);
    EXPECT_LE(fmemp::ThreadStateCountOfThisThread(), before + 1);
  }
}

// A thread whose pool was removed while it slept, and that never calls
// fmemp again, exits cleanly (its orphan is deleted at exit).
TEST(ThreadLocalTeardownTest, ThreadOutlivingItsPoolExitsCleanly) {
  alignas(16) static unsigned char buffer[256 << 10];
  FMemp memp = {};
  ASSERT_EQ(FMempInit(&memp, buffer, buffer + sizeof(buffer)), FMEMP_SUCCESS);
  std::atomic<int> stage{0};
  std::thread worker([&] {
    FMempFree(&memp, FMempMalloc(&memp, 64));
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  FMempRemove(&memp);
  stage.store(2);
  worker.join();
}

}  // namespace
