// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/management_error.h"

#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fmemp {
namespace {

using ::testing::HasSubstr;

// Passed by value through every lock: nothing to construct or destroy.
static_assert(std::is_trivially_copyable_v<ManagementResult>);
static_assert(std::is_trivially_destructible_v<ManagementResult>);

TEST(ManagementResultTest, DefaultIsOkAndConvertsToOk) {
  const ManagementResult result;
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.code(), absl::StatusCode::kOk);
  EXPECT_TRUE(result.ToStatus().ok());
}

TEST(ManagementResultTest, EveryErrorHasAFailingCodeAndAMessage) {
  for (int e = static_cast<int>(ManagementError::kNullBound);
       e <= static_cast<int>(ManagementError::kNotRetiring); ++e) {
    const auto error = static_cast<ManagementError>(e);
    const ManagementResult result(error);
    EXPECT_FALSE(result.ok()) << e;
    EXPECT_NE(ManagementErrorCode(error), absl::StatusCode::kOk) << e;
    EXPECT_STRNE(ManagementErrorMessage(error), "") << e;
    const absl::Status status = result.ToStatus();
    EXPECT_EQ(status.code(), ManagementErrorCode(error)) << e;
    EXPECT_EQ(std::string(status.message()), ManagementErrorMessage(error));
  }
}

TEST(ManagementResultTest, TheStatusNamesTheSubject) {
  static char region[64];
  const ManagementResult result(ManagementError::kLiveBlocks, region);
  EXPECT_EQ(result.subject(), region);
  const absl::Status status = result.ToStatus();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("live bytes"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrFormat("%p", static_cast<void*>(region))));
}

TEST(ManagementResultTest, CodesFollowTheTable) {
  EXPECT_EQ(ManagementResult(ManagementError::kOverlap).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ManagementResult(ManagementError::kNoRegion).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ManagementResult(ManagementError::kTooSmall).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ManagementResult(ManagementError::kBoundToOtherThread).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ManagementResult(ManagementError::kNoMemory).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ManagementResult(ManagementError::kCorrupt).code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace fmemp
