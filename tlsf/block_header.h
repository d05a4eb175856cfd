// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tlsf/block_header.h
//
// The layout of a block's one-word header (tlsf::Heap; heap.cc describes the
// whole block), and the tag that marks a word as a header. Shared by heap.cc
// and by the inline members of heap.h that read a header without the heap's
// lock (Heap::UsableSize). Not for use outside tlsf/.
//
//   bit  0      kFree: the block is free
//   bit  1      kPrevFree: the previous block is free
//   bit  2      kLost: the block is out of service (see below)
//   bit  3      zero
//   bits 4-39   span (a multiple of kAlignment, < kMaxSpan); 0 marks a
//               pool's end sentinel
//   bits 40-44  log2 of the alignment the block was allocated with (0:
//               default), kept so that a moving realloc keeps it
//   bits 45-63  tag: a function of the block's address, the owning heap's
//               key AND every other bit of the word (bits 0-44), with bits
//               45 and 63 always set (TagFor). A word whose tag does not
//               match is not a block header: a write that changes the bits
//               of one byte of a header (span, flags, alignment or tag) is
//               always caught, any other change with odds of 2^-17 of
//               passing by chance.
//
// The readers below are forced inline: they run on every free of the
// per-thread caches, where GCC otherwise kept some as calls.
//
// The heap writes header words whole and recomputes the tag on every write
// (a neighbour's kPrevFree flip included), so a reader without the heap's
// lock that loads the word once sees either the old or the new valid word.
//
// kLost marks a block the heap found damaged in its free lists or next to a
// freed block (a damaged list link, a block it could not unlist): it is
// neither free nor live, is never handed out, merged or relisted, and its
// span counts in HeapStats::lost_bytes.

#ifndef FMEMP_TLSF_BLOCK_HEADER_H_
#define FMEMP_TLSF_BLOCK_HEADER_H_

#include <cstdint>

#include "absl/base/attributes.h"
#include "tlsf/size_class.h"

namespace fmemp::tlsf::block_header {

inline constexpr uint64_t kFree = 1;
inline constexpr uint64_t kPrevFree = 2;
inline constexpr uint64_t kLost = 4;
inline constexpr uint64_t kSpanMask =
    (kMaxSpan - 1) & ~uint64_t{kAlignment - 1};
inline constexpr int kAlignShift = kMaxSpanLog2;
inline constexpr uint64_t kAlignMask = uint64_t{0x1f} << kAlignShift;
inline constexpr int kTagShift = kAlignShift + 5;
inline constexpr uint64_t kTagMask = ~uint64_t{0} << kTagShift;
// Tag bits that are always set.
inline constexpr uint64_t kTagForcedBits =
    (uint64_t{1} << kTagShift) | (uint64_t{1} << 63);

static_assert(kTagShift < 64 && 64 - kTagShift >= 16, "tag needs its bits");
static_assert(kTagShift + 1 + 17 == 63, "17 tag bits between the forced ones");

// The multiplier of TagFor. Any odd constant makes the tag depend on every
// bit of `rest`; this one also passes the one-byte condition below, which
// block_header_test checks for every byte and every change.
inline constexpr uint64_t kTagMultiplier = 0x9e3779b97f4a7c15ull;

// The tag bits of a header at `block_address`, in the heap whose key is
// `key`, whose other bits are `rest` (REQUIRES: rest & kTagMask == 0).
//
//   bit 45      always set
//   bits 46-62  the top 17 bits of (rest XOR address XOR key) * kTagMultiplier
//   bit 63      always set
//
// One multiply, so that the hot path can afford a tag on every header it
// reads or writes. Why a one-byte change is always caught: changing bits of
// `rest` within byte b changes x = rest ^ address ^ key by d * 2^(8b),
// 0 < |d| < 256 (|d| < 32 for byte 5, whose top three bits are tag bits), so
// the product changes by D = d * 2^(8b) * kTagMultiplier (mod 2^64), and its
// top 17 bits change by floor(D / 2^47) or one more (mod 2^17). For this
// multiplier that is never 0 (never within 4 of 0 for byte 5, whose tag
// bits 46-47 the same write may change): the recomputed tag differs from
// the stored one. A change confined to tag bits leaves the recomputed tag
// as it was and differs from it. Any other change passes with odds of about
// 2^-17. The key and address make a header copied to another address, or
// into another heap, fail the same way. Bits 45 and 63 are always set: a
// zero word or a user-space pointer (bit 63 clear on every 64-bit platform
// fmemp supports), such as a free-list link that now covers an old header,
// never passes for a header. An integrity check against stray writes, not a
// secret: whoever can read a header can compute a valid one for the same
// address.
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr uint64_t TagFor(uintptr_t block_address,
                                                       uint64_t key,
                                                       uint64_t rest) {
  const uint64_t mixed = (rest ^ block_address ^ key) * kTagMultiplier;
  return ((mixed >> 47) << (kTagShift + 1)) | kTagForcedBits;
}

// The header word with bits 0-44 `rest` at `block_address`.
constexpr uint64_t WordFor(uintptr_t block_address, uint64_t key,
                           uint64_t rest) {
  return rest | TagFor(block_address, key, rest);
}

// Whether `word`, read at `block_address`, is a header the heap whose key
// is `key` wrote there: its tag matches its other bits. That is
// (word & kTagMask) == TagFor(block_address, key, word & ~kTagMask),
// compared kTagShift bits down, where TagFor's constant bits fit an
// instruction's immediate: one 64-bit constant (the multiplier) instead of
// four, so that the front-ends' free paths, which check two headers, keep
// every value in a register without saving any (block_header_test checks
// the two forms agree).
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr bool IsHeader(uint64_t word,
                                                     uintptr_t block_address,
                                                     uint64_t key) {
  const uint64_t rest = (word << (64 - kTagShift)) >> (64 - kTagShift);
  const uint64_t mixed = (rest ^ block_address ^ key) * kTagMultiplier;
  return (word >> kTagShift) ==
         (((mixed >> 47) << 1) | (kTagForcedBits >> kTagShift));
}

// The usable bytes of the live block whose header is `word` at
// `block_address`, or 0 when the word is not the header of a live block
// there (not a header, free, out of service, or a span below a live
// block's least).
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr size_t LiveUsableBytes(
    uint64_t word, uintptr_t block_address, uint64_t key) {
  const size_t span = word & kSpanMask;
  const bool live = IsHeader(word, block_address, key) &&
                    (word & (kFree | kLost)) == 0 && span >= kMinFreeSpan;
  return live ? UsableBytes(span) : 0;
}

// Whether `word`, read at `block_address`, is the header a live block's
// physical successor must have: a header (a live, free or out-of-service
// block, or a pool's end sentinel) without kPrevFree. An overflow past the
// live block that reached the header fails this (with the tag's odds).
ABSL_ATTRIBUTE_ALWAYS_INLINE constexpr bool IsIntactSuccessor(
    uint64_t word, uintptr_t block_address, uint64_t key) {
  return (word & kPrevFree) == 0 && IsHeader(word, block_address, key);
}

}  // namespace fmemp::tlsf::block_header

#endif  // FMEMP_TLSF_BLOCK_HEADER_H_
