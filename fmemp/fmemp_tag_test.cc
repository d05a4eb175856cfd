// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the SDK's FMEMP_TAG_DEBUG mode through the SDK header name
// "fmemory_pool.h": FMEMP_MALLOC / FMEMP_MALLOC_ALIGN / FMEMP_CALLOC /
// FMEMP_REALLOC / FMEMP_FREE call the tagged variants, so FMemListAll shows
// this file and the line of every live allocation, entries go away on free,
// a moving realloc keeps a tag, and the FMemp layout does not change.

#define FMEMP_TAG_DEBUG
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "fmemory_pool.h"  // the SDK's name for fmemp/fmemp.h
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef FMEMP_FMEMP_FMEMP_H_
#error "fmemory_pool.h did not resolve to fmemp/fmemp.h"
#endif

// The layout is the SDK's three members plus priv, with or without
// FMEMP_TAG_DEBUG: the tag table lives outside FMemp. (On 64-bit targets:
// pools_list, tlsf_ptr, is_ready and its padding, priv.)
static_assert(sizeof(void*) != 8 || sizeof(FMemp) == 4 * sizeof(void*),
              "FMEMP_TAG_DEBUG must not change the FMemp layout");
static_assert(offsetof(FMemp, pools_list) == 0, "");
static_assert(offsetof(FMemp, tlsf_ptr) == sizeof(void*), "");
static_assert(offsetof(FMemp, is_ready) == 2 * sizeof(void*), "");
static_assert(sizeof(void*) != 8 || offsetof(FMemp, priv) == 3 * sizeof(void*),
              "");

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kBufferBytes = 64 * 1024;

// The value of an allocation macro with the line it was written on. Both
// __LINE__s expand on the line of the (single-line) TAGGED use.
struct Tagged {
  void* ptr;
  int line;
};
#define TAGGED(call) \
  Tagged { (call), __LINE__ }

// "file:line" as FMemListAll prints a tag of this file.
std::string Where(int line) { return absl::StrFormat("%s:%d", __FILE__, line); }

// The listing line of the live block at p, or "" when p is not listed.
std::string BlockLine(const std::string& listing, const void* p) {
  const std::string prefix = absl::StrFormat("  %p ", p);
  const size_t at = listing.find(prefix);
  if (at == std::string::npos) return "";
  return listing.substr(at, listing.find('\n', at) - at);
}

class FMempTagTest : public testing::Test {
 protected:
  FMempTagTest() : buffer_(new uint8_t[kBufferBytes]) {}
  void SetUp() override {
    ASSERT_EQ(FMempInit(&memp_, buffer_.get(), buffer_.get() + kBufferBytes),
              FMEMP_SUCCESS);
  }
  void TearDown() override {
    EXPECT_EQ(FMempCheck(&memp_), FMEMP_SUCCESS);
    FMempRelease(&memp_);
  }

  std::string ListAll() {
    testing::internal::CaptureStdout();
    FMemListAll(&memp_);
    return testing::internal::GetCapturedStdout();
  }

  std::unique_ptr<uint8_t[]> buffer_;
  FMemp memp_ = {};
};

TEST_F(FMempTagTest, MacrosTagEveryAllocationWithFileAndLine) {
  const Tagged a = TAGGED(FMEMP_MALLOC(&memp_, 100));
  const Tagged b = TAGGED(FMEMP_MALLOC_ALIGN(&memp_, 200, 128));
  const Tagged c = TAGGED(FMEMP_CALLOC(&memp_, 10, 30));
  const Tagged d = TAGGED(FMEMP_REALLOC(&memp_, nullptr, 300));
  for (const Tagged& t : {a, b, c, d}) ASSERT_NE(t.ptr, nullptr) << t.line;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.ptr) % 128, 0u);
  const uint8_t* zeroed = static_cast<const uint8_t*>(c.ptr);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(zeroed[i], 0) << i;
  // An untagged allocation is listed without a tag.
  void* plain = FMempMalloc(&memp_, 50);
  ASSERT_NE(plain, nullptr);

  const std::string listing = ListAll();
  EXPECT_THAT(listing, HasSubstr("fmemp_tag_test.cc"));
  for (const Tagged& t : {a, b, c, d}) {
    EXPECT_THAT(BlockLine(listing, t.ptr), HasSubstr(Where(t.line))) << listing;
  }
  EXPECT_THAT(BlockLine(listing, plain), Not(HasSubstr(__FILE__)));
  EXPECT_NE(BlockLine(listing, plain), "");
  EXPECT_THAT(listing, HasSubstr("integrity check: OK"));

  for (const Tagged& t : {a, b, c, d}) FMEMP_FREE(&memp_, t.ptr);
  FMEMP_FREE(&memp_, plain);
  u32 used = 1;
  FMemProbe(&memp_, nullptr, &used, nullptr);
  EXPECT_EQ(used, 0u);
}

TEST_F(FMempTagTest, FreedBlocksLeaveTheListing) {
  const Tagged a = TAGGED(FMEMP_MALLOC(&memp_, 64));
  const Tagged b = TAGGED(FMEMP_MALLOC(&memp_, 64));
  ASSERT_NE(a.ptr, nullptr);
  ASSERT_NE(b.ptr, nullptr);
  EXPECT_THAT(ListAll(), HasSubstr(Where(a.line)));
  FMEMP_FREE(&memp_, a.ptr);
  std::string listing = ListAll();
  EXPECT_THAT(listing, Not(HasSubstr(Where(a.line))));
  EXPECT_THAT(listing, HasSubstr(Where(b.line)));
  FMEMP_FREE(&memp_, b.ptr);
  listing = ListAll();
  EXPECT_THAT(listing, Not(HasSubstr(__FILE__)));
  // A block allocated later at a freed block's address, untagged, does not
  // inherit the old tag. (A per-thread cache may hand out other free blocks
  // of the size first.)
  std::vector<void*> others;
  void* again = nullptr;
  for (int i = 0; i < 256 && again != a.ptr; ++i) {
    if (again != nullptr) others.push_back(again);
    again = FMempMalloc(&memp_, 64);
  }
  ASSERT_EQ(again, a.ptr);
  EXPECT_THAT(ListAll(), Not(HasSubstr(__FILE__)));
  FMempFree(&memp_, again);
  for (void* p : others) FMempFree(&memp_, p);
}

TEST_F(FMempTagTest, MovingReallocKeepsATag) {
  const Tagged a = TAGGED(FMEMP_MALLOC(&memp_, 100));
  const Tagged blocker = TAGGED(FMEMP_MALLOC(&memp_, 100));
  ASSERT_NE(a.ptr, nullptr);
  ASSERT_NE(blocker.ptr, nullptr);
  std::memset(a.ptr, 0x5a, 100);
  const Tagged moved = TAGGED(FMEMP_REALLOC(&memp_, a.ptr, 10000));
  ASSERT_NE(moved.ptr, nullptr);
  ASSERT_NE(moved.ptr, a.ptr) << "the blocker should force a move";
  EXPECT_EQ(static_cast<uint8_t*>(moved.ptr)[99], 0x5a);

  const std::string listing = ListAll();
  EXPECT_THAT(BlockLine(listing, moved.ptr), HasSubstr(Where(moved.line)))
      << listing;
  EXPECT_EQ(BlockLine(listing, a.ptr), "");
  EXPECT_THAT(listing, Not(HasSubstr(Where(a.line))));
  EXPECT_THAT(BlockLine(listing, blocker.ptr), HasSubstr(Where(blocker.line)));

  // Shrinking in place keeps a tag too.
  const Tagged shrunk = TAGGED(FMEMP_REALLOC(&memp_, moved.ptr, 5000));
  ASSERT_EQ(shrunk.ptr, moved.ptr);
  EXPECT_THAT(BlockLine(ListAll(), shrunk.ptr), HasSubstr(__FILE__));

  FMEMP_FREE(&memp_, shrunk.ptr);
  FMEMP_FREE(&memp_, blocker.ptr);
  EXPECT_THAT(ListAll(), Not(HasSubstr(__FILE__)));
}

TEST_F(FMempTagTest, ReallocToZeroDropsTheTag) {
  const Tagged a = TAGGED(FMEMP_MALLOC(&memp_, 100));
  ASSERT_NE(a.ptr, nullptr);
  EXPECT_EQ(FMEMP_REALLOC(&memp_, a.ptr, 0), nullptr);
  EXPECT_THAT(ListAll(), Not(HasSubstr(__FILE__)));
}

}  // namespace
