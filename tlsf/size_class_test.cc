// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Exhaustive checks of the constexpr size-class arithmetic in
// tlsf/size_class.h: BinForSpan, BinLowerBound, RoundUpToBinStart and
// SpanForRequest, over every kAlignment multiple up to 2^22, over every bin
// boundary (and its kAlignment neighbours) up to kMaxSpan, and at the
// request-size limits near kMaxRequest and SIZE_MAX.

#include "tlsf/size_class.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace fmemp::tlsf {
namespace {

// --- Compile-time checks ---

static_assert(IsPowerOfTwo(kAlignment), "alignment is a power of two");
static_assert(kMinFreeSpan % kAlignment == 0, "min span is aligned");
static_assert(kMaxSpan % kAlignment == 0, "max span is aligned");
static_assert(SpanForRequest(0) == kMinFreeSpan, "malloc(0) gets a block");
static_assert(SpanForRequest(1) == kMinFreeSpan, "tiny requests round up");
static_assert(SpanForRequest(kMaxRequest) == kMaxSpan - kAlignment,
              "the largest request has the largest span");
static_assert(SpanForRequest(kMaxRequest + 1) == 0, "one more is refused");
static_assert(SpanForRequest(SIZE_MAX) == 0, "SIZE_MAX must not wrap");
static_assert(BinForSpan(kAlignment) == Bin{0, 1}, "first small bin");
static_assert(BinForSpan(kSmallSpanLimit - kAlignment) ==
                  Bin{0, kSecondLevelCount - 1},
              "last small bin");
static_assert(BinForSpan(kSmallSpanLimit) == Bin{1, 0}, "first large bin");
static_assert(BinForSpan(kMaxSpan - kAlignment) ==
                  Bin{kFirstLevelCount - 1, kSecondLevelCount - 1},
              "top bin");
static_assert(BinLowerBound(Bin{1, 0}) == kSmallSpanLimit, "level 1 start");
static_assert(RoundUpToBinStart(kSmallSpanLimit + kAlignment) ==
                  kSmallSpanLimit + kSmallSpanLimit / kSecondLevelCount,
              "round up to the next slice");
static_assert(RoundUpToBinStart(kMaxSpan - kAlignment) == kMaxSpan,
              "the top bin rounds up past kMaxSpan");

// --- Helpers ---

constexpr size_t kExhaustiveLimit = size_t{1} << 22;

bool InRange(Bin bin) {
  return bin.first >= 0 && bin.first < kFirstLevelCount && bin.second >= 0 &&
         bin.second < kSecondLevelCount;
}

// The bin after `bin` in span order. For the top bin, {kFirstLevelCount, 0}.
Bin NextBin(Bin bin) {
  if (bin.second + 1 < kSecondLevelCount) return Bin{bin.first, bin.second + 1};
  return Bin{bin.first + 1, 0};
}

// Lower bound of the bin after `bin`; kMaxSpan after the top bin.
size_t NextBinLowerBound(Bin bin) {
  const Bin next = NextBin(bin);
  if (next.first >= kFirstLevelCount) return kMaxSpan;
  return BinLowerBound(next);
}

// Every bin usable for a span (all but {0, 0}, whose bound is span 0).
std::vector<Bin> AllBins() {
  std::vector<Bin> bins;
  for (int first = 0; first < kFirstLevelCount; ++first) {
    for (int second = first == 0 ? 1 : 0; second < kSecondLevelCount;
         ++second) {
      bins.push_back(Bin{first, second});
    }
  }
  return bins;
}

// Every span to check: all kAlignment multiples up to kExhaustiveLimit, and
// each bin's lower bound and its kAlignment neighbours up to kMaxSpan.
std::vector<size_t> SpansToCheck() {
  std::vector<size_t> spans;
  for (size_t span = kAlignment; span <= kExhaustiveLimit; span += kAlignment) {
    spans.push_back(span);
  }
  for (const Bin bin : AllBins()) {
    const size_t bound = BinLowerBound(bin);
    for (const size_t span : {bound - kAlignment, bound, bound + kAlignment}) {
      if (span > kExhaustiveLimit && span < kMaxSpan) spans.push_back(span);
    }
  }
  spans.push_back(kMaxSpan - kAlignment);
  return spans;
}

// Checks one span against the bin definitions; returns the failures.
::testing::AssertionResult SpanIsConsistent(size_t span) {
  const Bin bin = BinForSpan(span);
  if (!InRange(bin)) {
    return ::testing::AssertionFailure()
           << "span " << span << ": bin (" << bin.first << ", " << bin.second
           << ") out of range";
  }
  const size_t low = BinLowerBound(bin);
  const size_t high = NextBinLowerBound(bin);
  if (!(low <= span && span < high)) {
    return ::testing::AssertionFailure()
           << "span " << span << " outside its bin (" << bin.first << ", "
           << bin.second << ") = [" << low << ", " << high << ")";
  }
  const size_t rounded = RoundUpToBinStart(span);
  // The smallest bin lower bound >= span: span itself when it starts its bin,
  // otherwise the start of the next bin (kMaxSpan after the top bin).
  const size_t expected = low == span ? span : high;
  if (rounded != expected) {
    return ::testing::AssertionFailure()
           << "RoundUpToBinStart(" << span << ") = " << rounded
           << ", want the smallest bin start >= span, " << expected;
  }
  if (rounded < span) {
    return ::testing::AssertionFailure()
           << "RoundUpToBinStart(" << span << ") = " << rounded << " < span";
  }
  if (rounded < kMaxSpan && BinLowerBound(BinForSpan(rounded)) != rounded) {
    return ::testing::AssertionFailure()
           << "RoundUpToBinStart(" << span << ") = " << rounded
           << " is not a bin lower bound";
  }
  return ::testing::AssertionSuccess();
}

// --- Bins ---

TEST(SizeClassTest, EverySpanLiesInItsBinAndRoundsUpToTheNextBinStart) {
  for (const size_t span : SpansToCheck()) {
    ASSERT_TRUE(SpanIsConsistent(span));
  }
}

TEST(SizeClassTest, BinsAreMonotonicInSpan) {
  size_t previous_span = 0;
  Bin previous{0, 0};
  for (const size_t span : SpansToCheck()) {
    ASSERT_GT(span, previous_span) << "SpansToCheck must be ascending";
    const Bin bin = BinForSpan(span);
    const bool ordered =
        bin.first > previous.first ||
        (bin.first == previous.first && bin.second >= previous.second);
    ASSERT_TRUE(ordered) << "span " << span << " -> (" << bin.first << ", "
                         << bin.second << ") after span " << previous_span
                         << " -> (" << previous.first << ", " << previous.second
                         << ")";
    // Consecutive checked spans never skip a bin below kExhaustiveLimit.
    if (span <= kExhaustiveLimit && previous_span != 0) {
      ASSERT_TRUE(bin == previous || bin == NextBin(previous))
          << "span " << span << " skipped a bin";
    }
    previous_span = span;
    previous = bin;
  }
}

TEST(SizeClassTest, EveryBinLowerBoundMapsBackToItsBin) {
  size_t previous_bound = 0;
  for (const Bin bin : AllBins()) {
    const size_t bound = BinLowerBound(bin);
    EXPECT_EQ(bound % kAlignment, 0u) << bin.first << ", " << bin.second;
    EXPECT_GT(bound, previous_bound) << bin.first << ", " << bin.second;
    EXPECT_LT(bound, kMaxSpan) << bin.first << ", " << bin.second;
    const Bin back = BinForSpan(bound);
    EXPECT_TRUE(back == bin)
        << "(" << bin.first << ", " << bin.second << ") -> " << bound << " -> ("
        << back.first << ", " << back.second << ")";
    EXPECT_EQ(RoundUpToBinStart(bound), bound);
    previous_bound = bound;
  }
  // The bins tile [kAlignment, kMaxSpan) without gaps.
  EXPECT_EQ(BinLowerBound(Bin{0, 1}), kAlignment);
  EXPECT_EQ(NextBinLowerBound(Bin{kFirstLevelCount - 1, kSecondLevelCount - 1}),
            kMaxSpan);
  EXPECT_EQ(BinLowerBound(Bin{kFirstLevelCount - 1, kSecondLevelCount - 1}) +
                (size_t{1} << (kMaxSpanLog2 - 1 - kSecondLevelLog2)),
            kMaxSpan);
}

TEST(SizeClassTest, SmallSpansHaveABinEach) {
  for (size_t span = kAlignment; span < kSmallSpanLimit; span += kAlignment) {
    const Bin bin = BinForSpan(span);
    EXPECT_EQ(bin.first, 0);
    EXPECT_EQ(static_cast<size_t>(bin.second), span / kAlignment);
    EXPECT_EQ(RoundUpToBinStart(span), span);
  }
}

// --- Requests ---

::testing::AssertionResult RequestIsConsistent(size_t bytes) {
  const size_t span = SpanForRequest(bytes);
  if (span == 0) {
    return ::testing::AssertionFailure() << "request " << bytes << " refused";
  }
  if (span % kAlignment != 0 || span < kMinFreeSpan || span >= kMaxSpan) {
    return ::testing::AssertionFailure()
           << "request " << bytes << ": bad span " << span;
  }
  if (UsableBytes(span) < bytes) {
    return ::testing::AssertionFailure()
           << "request " << bytes << ": span " << span << " gives only "
           << UsableBytes(span) << " usable bytes";
  }
  if (span != kMinFreeSpan && span - kAlignment >= bytes + kBlockOverhead) {
    return ::testing::AssertionFailure()
           << "request " << bytes << ": span " << span << " is not minimal; "
           << span - kAlignment << " would do";
  }
  return ::testing::AssertionSuccess();
}

TEST(SizeClassTest, ZeroAndOneByteGetTheMinimumSpan) {
  EXPECT_EQ(SpanForRequest(0), kMinFreeSpan);
  EXPECT_EQ(SpanForRequest(1), kMinFreeSpan);
}

TEST(SizeClassTest, EveryRequestGetsTheSmallestSufficientSpan) {
  for (size_t bytes = 0; bytes <= kExhaustiveLimit; ++bytes) {
    ASSERT_TRUE(RequestIsConsistent(bytes));
  }
}

TEST(SizeClassTest, RequestsAtBinBoundariesAreConsistent) {
  for (const Bin bin : AllBins()) {
    const size_t bound = BinLowerBound(bin);
    for (size_t delta = 0; delta < 2 * kAlignment; ++delta) {
      const size_t around = bound + delta;
      if (around < kBlockOverhead + kAlignment) continue;
      const size_t bytes = around - kBlockOverhead - kAlignment;
      if (bytes > kMaxRequest) continue;
      ASSERT_TRUE(RequestIsConsistent(bytes));
    }
  }
}

TEST(SizeClassTest, RequestsNearTheLimitAreRefusedWithoutWrapping) {
  EXPECT_EQ(SpanForRequest(kMaxRequest), kMaxSpan - kAlignment);
  EXPECT_TRUE(RequestIsConsistent(kMaxRequest));
  EXPECT_TRUE(RequestIsConsistent(kMaxRequest - 1));
  EXPECT_TRUE(RequestIsConsistent(kMaxRequest - kAlignment));
  EXPECT_EQ(SpanForRequest(kMaxRequest + 1), 0u);
  EXPECT_EQ(SpanForRequest(kMaxRequest + kAlignment), 0u);
  EXPECT_EQ(SpanForRequest(kMaxSpan), 0u);
  EXPECT_EQ(SpanForRequest(SIZE_MAX), 0u);
  EXPECT_EQ(SpanForRequest(SIZE_MAX - 1), 0u);
  EXPECT_EQ(SpanForRequest(SIZE_MAX - kAlignment), 0u);
  EXPECT_EQ(SpanForRequest(SIZE_MAX - kBlockOverhead), 0u);
  EXPECT_EQ(SpanForRequest(SIZE_MAX - kBlockOverhead - kAlignment + 1), 0u);
  EXPECT_EQ(SpanForRequest(SIZE_MAX / 2), 0u);
}

TEST(SizeClassTest, HelpersBehave) {
  EXPECT_EQ(FloorLog2(1), 0);
  EXPECT_EQ(FloorLog2(kAlignment), kAlignmentLog2);
  EXPECT_EQ(FloorLog2(kMaxSpan - 1), kMaxSpanLog2 - 1);
  EXPECT_EQ(FloorLog2(~uint64_t{0}), 63);
  EXPECT_FALSE(IsPowerOfTwo(0));
  EXPECT_TRUE(IsPowerOfTwo(1));
  EXPECT_FALSE(IsPowerOfTwo(kAlignment + 1));
  EXPECT_TRUE(IsPowerOfTwo(size_t{1} << 63));
  EXPECT_EQ(AlignUp(0, kAlignment), 0u);
  EXPECT_EQ(AlignUp(1, kAlignment), kAlignment);
  EXPECT_EQ(AlignUp(kAlignment, kAlignment), kAlignment);
  EXPECT_EQ(UsableBytes(kMinFreeSpan), kMinFreeSpan - kBlockOverhead);
}

}  // namespace
}  // namespace fmemp::tlsf
