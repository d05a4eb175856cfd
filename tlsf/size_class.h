// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tlsf/size_class.h
//
// The size-to-bin arithmetic of the two-level segregated fit heap, as
// constexpr functions over block spans. It has no state and no dependencies;
// the heap (tlsf/heap.h) builds its free lists and bitmaps on it, and
// size_class_test.cc checks it exhaustively.
//
// Terms
//
// * A block's *span* is the distance in bytes from its header word to the next
//   block's header word. Spans are multiples of kAlignment. A block of span S
//   gives its owner S - kBlockOverhead usable bytes: the header is one word.
// * Free blocks are kept in bins indexed by (first, second). The first level
//   splits spans by powers of two; the second level splits each power of two
//   into kSecondLevelCount equal slices. Spans below kSmallSpanLimit all share
//   first level 0, where the slices are exactly kAlignment wide, so every small
//   span has a bin of its own.
//
// Two mappings are used:
//
// * BinForSpan(span): the bin a free block of that span is filed under; the
//   bin's range [BinLowerBound(bin), BinLowerBound(next bin)) contains span.
// * RoundUpToBinStart(span): the smallest bin lower bound >= span. Every block
//   filed at or above that bin is large enough for span, so a search there is
//   a good fit found in O(1) with two bit scans.

#ifndef FMEMP_TLSF_SIZE_CLASS_H_
#define FMEMP_TLSF_SIZE_CLASS_H_

#include <cstddef>
#include <cstdint>

namespace fmemp::tlsf {

// Every payload is aligned to kAlignment, which is at least
// alignof(std::max_align_t) on every supported platform (16 on x86-64).
inline constexpr int kAlignmentLog2 = 4;
inline constexpr size_t kAlignment = size_t{1} << kAlignmentLog2;

// Per-allocation overhead: one machine word holding span, flags and a check
// tag. The next block's back pointer lives in this block's last word, which
// the owner may use while the block is allocated.
inline constexpr size_t kBlockOverhead = sizeof(uint64_t);

// A free block stores two list links after its header word and lends its last
// word to the next block's back pointer, so free spans are at least 32 bytes.
inline constexpr size_t kMinFreeSpan = 2 * kAlignment;

// Second level: each power-of-two range is split into 2^5 = 32 slices.
inline constexpr int kSecondLevelLog2 = 5;
inline constexpr int kSecondLevelCount = 1 << kSecondLevelLog2;

// Spans below kSmallSpanLimit live in first level 0, in slices of kAlignment.
inline constexpr int kFirstLevelShift = kSecondLevelLog2 + kAlignmentLog2;
inline constexpr size_t kSmallSpanLimit = size_t{1} << kFirstLevelShift;

// Spans are strictly below kMaxSpan (1 TiB). This bounds the control
// structure: kFirstLevelCount * kSecondLevelCount list heads.
inline constexpr int kMaxSpanLog2 = 40;
inline constexpr size_t kMaxSpan = size_t{1} << kMaxSpanLog2;
inline constexpr int kFirstLevelCount = kMaxSpanLog2 - kFirstLevelShift + 1;

// The largest request the heap can satisfy: its span is kMaxSpan - kAlignment.
inline constexpr size_t kMaxRequest = kMaxSpan - kAlignment - kBlockOverhead;

static_assert(kAlignment >= alignof(std::max_align_t),
              "payloads must satisfy any fundamental alignment");
static_assert(kSmallSpanLimit / kSecondLevelCount == kAlignment,
              "first level 0 must have one bin per small span");
static_assert(kFirstLevelCount <= 32, "first-level bitmap is 32 bits");
static_assert(kSecondLevelCount <= 32, "second-level bitmaps are 32 bits");
static_assert(kMaxSpanLog2 < 64, "spans must fit in a 64-bit word");

// A free-list bin.
struct Bin {
  int first;   // [0, kFirstLevelCount)
  int second;  // [0, kSecondLevelCount)

  friend constexpr bool operator==(Bin a, Bin b) {
    return a.first == b.first && a.second == b.second;
  }
  friend constexpr bool operator!=(Bin a, Bin b) { return !(a == b); }
};

// Index of the highest set bit. REQUIRES: value != 0.
constexpr int FloorLog2(uint64_t value) { return 63 - __builtin_clzll(value); }

constexpr bool IsPowerOfTwo(size_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

constexpr size_t AlignUp(size_t value, size_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

// The span that serves a request of `bytes` usable bytes, or 0 when
// `bytes` > kMaxRequest (including values near SIZE_MAX, which must not wrap).
// A request of 0 bytes gets the smallest block.
constexpr size_t SpanForRequest(size_t bytes) {
  if (bytes > kMaxRequest) return 0;
  const size_t span = AlignUp(bytes + kBlockOverhead, kAlignment);
  return span < kMinFreeSpan ? kMinFreeSpan : span;
}

// Usable bytes of a block of the given span.
constexpr size_t UsableBytes(size_t span) { return span - kBlockOverhead; }

// The bin a free block of `span` is filed under.
// REQUIRES: span is a multiple of kAlignment, 0 < span < kMaxSpan.
constexpr Bin BinForSpan(size_t span) {
  if (span < kSmallSpanLimit) {
    return Bin{0, static_cast<int>(span >> kAlignmentLog2)};
  }
  const int log2 = FloorLog2(span);
  const int second =
      static_cast<int>(span >> (log2 - kSecondLevelLog2)) - kSecondLevelCount;
  return Bin{log2 - kFirstLevelShift + 1, second};
}

// The smallest span filed under `bin`.
constexpr size_t BinLowerBound(Bin bin) {
  if (bin.first == 0) return static_cast<size_t>(bin.second) << kAlignmentLog2;
  const int log2 = bin.first + kFirstLevelShift - 1;
  return (size_t{1} << log2) +
         (static_cast<size_t>(bin.second) << (log2 - kSecondLevelLog2));
}

// The smallest bin lower bound >= span. May be >= kMaxSpan for spans in the
// top bin, in which case no bin is large enough for a good-fit search.
// REQUIRES: 0 < span < kMaxSpan.
constexpr size_t RoundUpToBinStart(size_t span) {
  if (span < kSmallSpanLimit) return span;
  const size_t slice = size_t{1} << (FloorLog2(span) - kSecondLevelLog2);
  return AlignUp(span, slice);
}

}  // namespace fmemp::tlsf

#endif  // FMEMP_TLSF_SIZE_CLASS_H_
