// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tests/stress/stress_test.cc
//
// The stress harness (stress_harness.h) under every thread-safe policy
// (fmemp::testkit::ThreadSafeFrontEnds, fmemp/testing/front_end_list.h):
// Memp<SpinLock>, Memp<Mutex>, CachingMemp<SpinLock>, CachingMemp<Mutex>,
// ThreadHeapMemp<SpinLock>, ThreadHeapMemp<Mutex>, and the C API with
// FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_THREAD_CACHE and
// FMEMP_POLICY_THREAD_HEAPS. Each policy runs for a bounded time (5 s, or
// 400000 allocator calls, by default); docs/STRESS.md gives the long-soak
// settings. Run under --config=tsan and --config=asan too.

#include <cstdint>
#include <cstring>
#include <string>

#include "fmemp/testing/front_end_gtest.h"
#include "fmemp/testing/front_end_list.h"
#include "gtest/gtest.h"
#include "tests/stress/block_pattern.h"
#include "tests/stress/stress_harness.h"

namespace fmemp {
namespace stress {
namespace {

// --- The pattern itself catches what it is meant to catch ---

TEST(BlockPatternTest, DetectsFlippedShiftedAndStaleBytes) {
  alignas(16) uint8_t buffer[256];
  for (size_t size : {0, 1, 7, 8, 9, 15, 16, 17, 100, 255}) {
    const Block b = MakeBlock(buffer, size, 7);
    EXPECT_EQ(FirstBadByte(b), -1) << size;
    for (size_t i = 0; i < size; ++i) {
      buffer[i] ^= 0x10;
      EXPECT_EQ(FirstBadByte(b), static_cast<ptrdiff_t>(i)) << size;
      buffer[i] ^= 0x10;
    }
  }
  // Another generation at the same address: a stale copy.
  const Block now = MakeBlock(buffer, 100, 8);
  Block stale = now;
  stale.generation = 7;
  stale.seed = SeedFor(buffer, 7);
  EXPECT_NE(FirstBadByte(stale), -1);
  // The same block copied one word further on.
  alignas(16) uint8_t moved[256];
  std::memcpy(moved + 8, buffer, 100);
  EXPECT_NE(FirstBadByte(now, moved, 100), -1);
  std::memcpy(moved, buffer, 100);
  EXPECT_EQ(FirstBadByte(now, moved, 100), -1);
  EXPECT_EQ(FirstBadByte(now, moved, 50), -1);  // a prefix
  EXPECT_EQ(FirstNonZeroByte(moved + 200, 0), -1);
}

// --- The harness, once per policy ---

template <typename FrontEnd>
class StressTest : public testing::Test {};

FMEMP_FRONT_END_TYPED_TEST_SUITE(StressTest, testkit::ThreadSafeFrontEnds);

TYPED_TEST(StressTest, ManyThreadsRegionsAndProbes) {
  StressHarness<TypeParam> harness(StressConfig::FromEnvironment());
  harness.Run();
}

}  // namespace
}  // namespace stress
}  // namespace fmemp
