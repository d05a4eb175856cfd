// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/asymmetric_barrier.h"

#include <linux/membarrier.h>

#include <atomic>
#include <cerrno>

#include "gtest/gtest.h"

namespace fmemp {
namespace {

using asymmetric_barrier_internal::SetMembarrierCallForTesting;

std::atomic<int> calls{0};

long FailsTwiceThenSucceeds(int command) {  // NOLINT(runtime/int)
  EXPECT_EQ(command, MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  if (calls.fetch_add(1) < 2) {
    errno = EINTR;
    return -1;
  }
  return 0;
}

long AlwaysFails(int) {  // NOLINT(runtime/int)
  errno = EPERM;
  return -1;
}

class HeavyBarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kAsymmetricBarrierEnabled || !HeavyBarrierIsMembarrier()) {
      GTEST_SKIP() << "membarrier(2) not in use (kernel or TSan build)";
    }
    calls = 0;
  }
  void TearDown() override { SetMembarrierCallForTesting(nullptr); }
};

TEST_F(HeavyBarrierTest, RealSystemCallSucceeds) { HeavyBarrier(); }

TEST_F(HeavyBarrierTest, RetriesTransientFailures) {
  SetMembarrierCallForTesting(&FailsTwiceThenSucceeds);
  HeavyBarrier();
  EXPECT_EQ(calls.load(), 3);
}

// Fast sides skip their fence once membarrier is registered, so a slow side
// that cannot issue it must not carry on as if it had.
TEST_F(HeavyBarrierTest, PersistentFailureStopsTheProcess) {
  EXPECT_DEATH(
      {
        SetMembarrierCallForTesting(&AlwaysFails);
        HeavyBarrier();
      },
      "membarrier.*failed \\(errno 1\\)");
}

}  // namespace
}  // namespace fmemp
