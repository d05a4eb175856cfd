// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Issue 14, failure 4: the SDK's life cycle. SDK code zeroes an FMemp (often
// a local variable), calls FMempInit, uses the pool and ends with
// FMempRemove, again and again; it has no other teardown call. Before
// FMempRemove released its front-end, every cycle leaked ~10 KB and left an
// orphaned per-thread cache on the thread, which made each next cycle
// slower.
//
// 10,000 cycles under every policy. The time per cycle is not measured here
// (see fmemp/sdk_cycle_benchmark.cc and docs/BENCHMARKS.md); what would make it
// grow is: bookkeeping records piling up in the metadata arena, and
// per-thread states piling up on the thread. Both are counted exactly, and
// resident memory is bounded.

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "fmemp/fmemp.h"
#include "fmemp/metadata_arena.h"
#include "fmemp/thread_registry.h"
#include "gtest/gtest.h"

namespace {

size_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;  // NOLINT(runtime/int): statm
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<size_t>(resident) *
         static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

alignas(64) unsigned char g_buffer[256 << 10];

void NoteMisuse(void*, int, const void*) {}

// One SDK cycle: a zeroed FMemp on the stack, init, use, remove.
void Cycle(FMempPolicy policy, int i) {
  FMemp memp;
  std::memset(&memp, 0, sizeof(memp));
  ASSERT_EQ(
      FMempInitWithPolicy(&memp, g_buffer, g_buffer + sizeof(g_buffer), policy),
      FMEMP_SUCCESS);
  if (i % 2 == 0) {
    ASSERT_EQ(FMempSetErrorHandler(&memp, &NoteMisuse, nullptr), FMEMP_SUCCESS);
  }
  if (policy == FMEMP_POLICY_THREAD_HEAPS && i % 3 == 0) {
    ASSERT_EQ(FMempBindThread(&memp, g_buffer), FMEMP_SUCCESS);
  }
  void* blocks[8];
  for (int k = 0; k < 8; ++k) {
    blocks[k] = FMempMalloc(&memp, 16u << k);
    ASSERT_NE(blocks[k], nullptr);
  }
  for (int k = 0; k < 8; k += 2) FMempFree(&memp, blocks[k]);
  u32 total = 0, used = 0, peak = 0;
  FMemProbe(&memp, &total, &used, &peak);
  ASSERT_GT(used, 0u);
  // Half the blocks are still live at FMempRemove, as SDK code leaves them.
  FMempRemove(&memp);
  ASSERT_EQ(memp.priv, nullptr);
}

class SdkCycleTest : public testing::TestWithParam<FMempPolicy> {};

TEST_P(SdkCycleTest, TenThousandCyclesKeepEverythingFlat) {
  const FMempPolicy policy = GetParam();
  // Warm up: the first cycles map the arena's chunks and fault in pages.
  for (int i = 0; i < 100; ++i) Cycle(policy, i);
  const size_t rss_before = ResidentBytes();
  const fmemp::MetadataArenaStats arena_before = fmemp::MetadataArena::Stats();
  const size_t states_before = fmemp::ThreadStateCountOfThisThread();
  ASSERT_GT(rss_before, 0u);

  for (int i = 0; i < 10000; ++i) {
    Cycle(policy, i);
    if (HasFatalFailure()) return;
    if (i % 1000 == 999) {
      // Nothing accumulates: the same records and the same per-thread
      // states as after the warm-up, every thousand cycles.
      EXPECT_EQ(fmemp::MetadataArena::Stats().records_in_use,
                arena_before.records_in_use)
          << "cycle " << i;
      EXPECT_EQ(fmemp::ThreadStateCountOfThisThread(), states_before)
          << "cycle " << i;
    }
  }

  const fmemp::MetadataArenaStats arena_after = fmemp::MetadataArena::Stats();
  EXPECT_EQ(arena_after.records_in_use, arena_before.records_in_use);
  EXPECT_EQ(arena_after.bytes_in_use, arena_before.bytes_in_use);
  EXPECT_EQ(arena_after.bytes_mapped, arena_before.bytes_mapped);
  const size_t rss_after = ResidentBytes();
  EXPECT_LT(rss_after, rss_before + (1 << 20))
      << "resident memory grew from " << rss_before << " to " << rss_after;
}

// Worker threads use each cycle's pool and exit; their per-thread state is
// handed back, the cycle's records all return.
TEST_P(SdkCycleTest, CyclesWithThreadsKeepTheArenaFlat) {
  const FMempPolicy policy = GetParam();
  if (policy == FMEMP_POLICY_SINGLE_THREAD) GTEST_SKIP() << "one thread only";
  auto cycle = [policy] {
    FMemp memp = {};
    ASSERT_EQ(FMempInitWithPolicy(&memp, g_buffer, g_buffer + sizeof(g_buffer),
                                  policy),
              FMEMP_SUCCESS);
    std::thread worker([&memp] {
      void* p = FMempMalloc(&memp, 100);
      FMempFree(&memp, p);
    });
    worker.join();
    FMempRemove(&memp);
  };
  for (int i = 0; i < 20; ++i) cycle();
  const fmemp::MetadataArenaStats before = fmemp::MetadataArena::Stats();
  for (int i = 0; i < 500; ++i) {
    cycle();
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(fmemp::MetadataArena::Stats().records_in_use,
            before.records_in_use);
}

// FMempRelease after FMempRemove, or twice, is harmless.
TEST(SdkCycleTest, ReleaseAfterRemoveIsHarmless) {
  FMemp memp = {};
  ASSERT_EQ(FMempInit(&memp, g_buffer, g_buffer + sizeof(g_buffer)),
            FMEMP_SUCCESS);
  FMempRemove(&memp);
  FMempRelease(&memp);
  FMempRelease(&memp);
  EXPECT_EQ(memp.priv, nullptr);
  EXPECT_EQ(FMempMalloc(&memp, 16), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Policies, SdkCycleTest,
                         testing::Values(FMEMP_POLICY_MUTEX,
                                         FMEMP_POLICY_SPINLOCK,
                                         FMEMP_POLICY_SINGLE_THREAD,
                                         FMEMP_POLICY_THREAD_CACHE,
                                         FMEMP_POLICY_THREAD_HEAPS));

}  // namespace
