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
    const uint64_t tag = TagFor(a, kKey, 64 | kFree);
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
    tags.insert(TagFor(a, kKey, 64));
  }
  // 17 free bits: 1000 addresses collide rarely.
  EXPECT_GT(tags.size(), 990u);
  EXPECT_NE(TagFor(0x10000, kKey, 64), TagFor(0x10000, kKey + 1, 64));
}

TEST(BlockHeaderTest, LiveUsableBytesAcceptsOnlyALiveHeaderAtItsAddress) {
  const uintptr_t block = 0x123450;
  const uint64_t live = WordFor(block, kKey, 64 | kPrevFree);
  EXPECT_EQ(LiveUsableBytes(live, block, kKey), 64 - kBlockOverhead);
  EXPECT_EQ(LiveUsableBytes(WordFor(block, kKey, 64 | kPrevFree | kFree), block,
                            kKey),
            0u)
      << "free";
  EXPECT_EQ(LiveUsableBytes(live, block + 16, kKey), 0u) << "elsewhere";
  EXPECT_EQ(LiveUsableBytes(live, block, kKey ^ 1), 0u) << "another heap";
  EXPECT_EQ(LiveUsableBytes(WordFor(block, kKey, 16), block, kKey), 0u)
      << "a span no live block has";
  EXPECT_EQ(LiveUsableBytes(0, block, kKey), 0u);
  const uint64_t aligned =
      WordFor(block, kKey, 64 | kPrevFree | (uint64_t{6} << kAlignShift));
  EXPECT_EQ(LiveUsableBytes(aligned, block, kKey), 64 - kBlockOverhead)
      << "the alignment bits do not matter";
}

// The tag covers the whole word: changing any one byte of a header (span,
// flags, alignment or tag) to any other value makes it fail, always.
TEST(BlockHeaderTest, EveryByteChangeFailsTheCheck) {
  for (uintptr_t a = 0x7f0000010000; a < 0x7f0000010000 + 16 * 64; a += 16) {
    const uint64_t rests[] = {64 | kFree, 4096 | kPrevFree,
                              32,         1008 | (uint64_t{7} << kAlignShift),
                              kFree,      kLost | 512 | kPrevFree};
    for (uint64_t rest : rests) {
      const uint64_t word = WordFor(a, kKey, rest);
      ASSERT_TRUE(IsHeader(word, a, kKey));
      for (int byte = 0; byte < 8; ++byte) {
        for (uint64_t change = 1; change < 256; ++change) {
          ASSERT_FALSE(IsHeader(word ^ (change << (8 * byte)), a, kKey))
              << "byte " << byte << " xor " << change;
        }
      }
      EXPECT_FALSE(IsHeader(word, a + 16, kKey)) << "moved";
    }
  }
}

// The arithmetic behind EveryByteChangeFailsTheCheck, for every value of the
// other operand rather than the sampled ones: a change of d * 2^(8b) in the
// multiplied value (one byte of the 45 covered bits) moves the product's top
// 17 bits by floor(D / 2^47) or one more, D = d * 2^(8b) * kTagMultiplier;
// that move must never be 0 mod 2^17, nor within 4 of 0 for byte 5, where
// the same write may change tag bits 46-47.
TEST(BlockHeaderTest, MultiplierMovesTheTagForEveryByteChange) {
  for (int byte = 0; byte <= 5; ++byte) {
    const int64_t limit = byte < 5 ? 255 : 31;
    const uint64_t margin = byte < 5 ? 1 : 4;
    for (int64_t d = -limit; d <= limit; ++d) {
      if (d == 0) continue;
      const uint64_t delta =
          (static_cast<uint64_t>(d) << (8 * byte)) * kTagMultiplier;
      const uint64_t moved = delta >> 47;  // 0 .. 2^17 - 1
      EXPECT_GE(moved, margin) << "byte " << byte << " d " << d;
      EXPECT_LT(moved, (uint64_t{1} << 17) - margin)
          << "byte " << byte << " d " << d;
    }
  }
}

// Wider damage passes only with the tag's odds (2^-17 per word).
// IsHeader compares the tag shifted down; it must answer exactly as the
// tag's definition: headers, headers with any one bit flipped, and words
// that only share the forced bits.
TEST(BlockHeaderTest, IsHeaderAgreesWithTagFor) {
  const auto by_definition = [](uint64_t word, uintptr_t address,
                                uint64_t key) {
    return (word & kTagMask) == TagFor(address, key, word & ~kTagMask);
  };
  uint64_t state = 0x9e3779b97f4a7c15ull;
  const auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  size_t headers = 0;
  for (int i = 0; i < 20000; ++i) {
    const uintptr_t address = next() & ~uintptr_t{15};
    const uint64_t key = next() | 1;
    const uint64_t header = WordFor(address, key, next() & ~kTagMask);
    for (int bit = -1; bit < 64; ++bit) {
      const uint64_t word = bit < 0 ? header : header ^ (uint64_t{1} << bit);
      ASSERT_EQ(IsHeader(word, address, key), by_definition(word, address, key))
          << std::hex << word << " at " << address;
      headers += IsHeader(word, address, key);
    }
    const uint64_t random = next() | kTagForcedBits;
    ASSERT_EQ(IsHeader(random, address, key),
              by_definition(random, address, key));
  }
  EXPECT_GE(headers, 20000u);  // every unflipped header passes
}

TEST(BlockHeaderTest, RandomWordsRarelyPass) {
  uint64_t x = 0x243f6a8885a308d3ull;
  size_t passed = 0;
  for (int i = 0; i < 1 << 20; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (IsHeader(x | block_header::kTagForcedBits, 0x123450, kKey)) ++passed;
  }
  EXPECT_LE(passed, 32u);  // 8 expected
}

TEST(BlockHeaderTest, LostAndFreeBlocksAreNotLive) {
  const uintptr_t block = 0x123450;
  EXPECT_EQ(LiveUsableBytes(WordFor(block, kKey, 64 | kLost), block, kKey), 0u);
  EXPECT_TRUE(IsIntactSuccessor(WordFor(block, kKey, 64 | kLost), block, kKey));
  EXPECT_FALSE(
      IsIntactSuccessor(WordFor(block, kKey, 64 | kPrevFree), block, kKey));
}

}  // namespace
}  // namespace fmemp::tlsf::block_header
