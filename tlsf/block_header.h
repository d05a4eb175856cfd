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
//   bits 2-3    zero
//   bits 4-39   span (a multiple of kAlignment, < kMaxSpan); 0 marks a
//               pool's end sentinel
//   bits 40-44  log2 of the alignment the block was allocated with (0:
//               default), kept so that a moving realloc keeps it
//   bits 45-63  tag: a hash of the block's address and the owning heap's
//               key, bits 45 and 63 always set; a word whose tag does not
//               match is not a block header

#ifndef FMEMP_TLSF_BLOCK_HEADER_H_
#define FMEMP_TLSF_BLOCK_HEADER_H_

#include <cstdint>

#include "tlsf/size_class.h"

namespace fmemp::tlsf::block_header {

inline constexpr uint64_t kFree = 1;
inline constexpr uint64_t kPrevFree = 2;
inline constexpr uint64_t kSpanMask =
    (kMaxSpan - 1) & ~uint64_t{kAlignment - 1};
inline constexpr int kAlignShift = kMaxSpanLog2;
inline constexpr uint64_t kAlignMask = uint64_t{0x1f} << kAlignShift;
inline constexpr int kTagShift = kAlignShift + 5;
inline constexpr uint64_t kTagMask = ~uint64_t{0} << kTagShift;

static_assert(kTagShift < 64 && 64 - kTagShift >= 16, "tag needs its bits");

// The tag bits of the header of the block at `block_address` in the heap
// whose key is `key`. Bits 45 and 63 are always set: a zero word or a
// user-space pointer (bit 63 clear on every 64-bit platform fmemp
// supports), such as a free-list link that now covers an old header, never
// passes for a header.
constexpr uint64_t TagFor(uintptr_t block_address, uint64_t key) {
  const uint64_t h = (block_address ^ key) * 0x9e3779b97f4a7c15ull;
  return ((h >> kTagShift) | 1 | (uint64_t{1} << (63 - kTagShift)))
         << kTagShift;
}

// The usable bytes of the live block whose header is `word` at
// `block_address`, or 0 when the word is not the header of a live block
// there (wrong tag, free, or a span below a live block's least).
constexpr size_t LiveUsableBytes(uint64_t word, uintptr_t block_address,
                                 uint64_t key) {
  const size_t span = word & kSpanMask;
  const bool live = (word & (kTagMask | kFree)) == TagFor(block_address, key) &&
                    span >= kMinFreeSpan;
  return live ? UsableBytes(span) : 0;
}

// Whether `word`, read at `block_address`, is the header a live block's
// physical successor must have: tagged (a live or free block, or a pool's
// end sentinel) and without kPrevFree. An overflow past the live block
// that reached the header fails this (with the tag's odds).
constexpr bool IsIntactSuccessor(uint64_t word, uintptr_t block_address,
                                 uint64_t key) {
  return (word & (kTagMask | kPrevFree)) == TagFor(block_address, key);
}

}  // namespace fmemp::tlsf::block_header

#endif  // FMEMP_TLSF_BLOCK_HEADER_H_
