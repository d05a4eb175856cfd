// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "tlsf/block_header.h"

#include <cstdint>
#include <set>

#include "gtest/gtest.h"

namespace fmemp::tlsf::block_header {
namespace {

constexpr uint64_t kKey = 0x5bd1e9955bd1e995ull;

TEST(BlockHeaderTest, TagsNeverMatchZeroOrAUserSpacePointer) {
  for (uintptr_t a = 0x10000; a < 0x10000 + 4096 * 16; a += 16) {
    const uint64_t tag = TagFor(a, kKey);
    EXPECT_EQ(tag & ~kTagMask, 0u) << "tag bits only";
    EXPECT_NE(tag & (uint64_t{1} << kTagShift), 0u);
    EXPECT_NE(tag & (uint64_t{1} << 63), 0u);
    // A word holding a user-space pointer or zero has bit 63 clear.
    EXPECT_NE(uint64_t{0x00007fffdeadbef0} & kTagMask, tag);
  }
}

TEST(BlockHeaderTest, TagsDependOnAddressAndKey) {
  std::set<uint64_t> tags;
  for (uintptr_t a = 0x10000; a < 0x10000 + 16 * 1000; a += 16) {
    tags.insert(TagFor(a, kKey));
  }
  // 17 free bits: 1000 addresses collide rarely.
  EXPECT_GT(tags.size(), 990u);
  EXPECT_NE(TagFor(0x10000, kKey), TagFor(0x10000, kKey + 1));
}

TEST(BlockHeaderTest, LiveUsableBytesAcceptsOnlyALiveHeaderAtItsAddress) {
  const uintptr_t block = 0x123450;
  const uint64_t live = TagFor(block, kKey) | 64 | kPrevFree;
  EXPECT_EQ(LiveUsableBytes(live, block, kKey), 64 - kBlockOverhead);
  EXPECT_EQ(LiveUsableBytes(live | kFree, block, kKey), 0u) << "free";
  EXPECT_EQ(LiveUsableBytes(live, block + 16, kKey), 0u) << "elsewhere";
  EXPECT_EQ(LiveUsableBytes(live, block, kKey ^ 1), 0u) << "another heap";
  EXPECT_EQ(LiveUsableBytes(TagFor(block, kKey) | 16, block, kKey), 0u)
      << "a span no live block has";
  EXPECT_EQ(LiveUsableBytes(0, block, kKey), 0u);
  const uint64_t aligned = live | (uint64_t{6} << kAlignShift);
  EXPECT_EQ(LiveUsableBytes(aligned, block, kKey), 64 - kBlockOverhead)
      << "the alignment bits do not matter";
}

}  // namespace
}  // namespace fmemp::tlsf::block_header
