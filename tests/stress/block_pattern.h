// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tests/stress/block_pattern.h
//
// The contents the stress harness writes into every block it holds, and the
// check it runs before every free and every realloc.
//
// Every byte of a block is written. The pattern is a sequence of 64-bit
// words: word 0 holds the requested size, word 1 the block's generation (a
// number unique to the allocation within a run), and every later word is
// derived from the block's seed, a hash of its address and its generation.
// So a block that turns up with the wrong bytes says whose it was, a stale
// copy of a freed block at the same address (older generation) fails, and
// a copy shifted by any number of words fails. A block shorter than a word
// gets the leading bytes of the words it covers.
//
// The seed is recorded with the block rather than recomputed: after a
// realloc moves a block, its prefix must still carry the pattern computed
// from its old address.

#ifndef FMEMP_TESTS_STRESS_BLOCK_PATTERN_H_
#define FMEMP_TESTS_STRESS_BLOCK_PATTERN_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

namespace fmemp {
namespace stress {

// A block handed out by the allocator under test, as the harness records it.
struct Block {
  uint8_t* ptr = nullptr;
  size_t size = 0;          // bytes requested (and patterned)
  uint64_t generation = 0;  // unique per allocation within a run
  uint64_t seed = 0;        // SeedFor(ptr, generation) when patterned
};

// splitmix64's finaliser: every input bit affects every output bit.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

inline uint64_t SeedFor(const void* ptr, uint64_t generation) {
  return Mix64(reinterpret_cast<uintptr_t>(ptr) ^ Mix64(generation));
}

// Word `w` of `b`'s pattern.
inline uint64_t PatternWord(const Block& b, size_t w) {
  switch (w) {
    case 0:
      return b.size;
    case 1:
      return b.generation;
    default:
      return b.seed + w * 0x9e3779b97f4a7c15ull;
  }
}

// Records `ptr` as a new block of `size` bytes with `generation` and writes
// its pattern.
inline Block MakeBlock(void* ptr, size_t size, uint64_t generation) {
  Block b{static_cast<uint8_t*>(ptr), size, generation,
          SeedFor(ptr, generation)};
  const size_t words = size / 8;
  // Whole words with memcpy: one 8-byte store each (and one sanitizer check
  // instead of eight).
  for (size_t w = 0; w < words; ++w) {
    const uint64_t word = PatternWord(b, w);
    std::memcpy(b.ptr + 8 * w, &word, 8);
  }
  if (size % 8 != 0) {
    const uint64_t word = PatternWord(b, words);
    std::memcpy(b.ptr + 8 * words, &word, size % 8);
  }
  return b;
}

// The first byte of `b` within its first `limit` bytes that does not carry
// its pattern, read at `at` (normally b.ptr; a realloc's new block for the
// preserved prefix). -1 when all are right.
inline ptrdiff_t FirstBadByte(const Block& b, const uint8_t* at, size_t limit) {
  const size_t n = limit < b.size ? limit : b.size;
  size_t w = 0;
  for (; 8 * w + 8 <= n; ++w) {
    uint64_t found;
    std::memcpy(&found, at + 8 * w, 8);
    if (found != PatternWord(b, w)) break;
  }
  for (size_t i = 8 * w; i < n; ++i) {
    const uint64_t word = PatternWord(b, i / 8);
    uint8_t expected;
    std::memcpy(&expected, reinterpret_cast<const uint8_t*>(&word) + i % 8, 1);
    if (at[i] != expected) return static_cast<ptrdiff_t>(i);
  }
  return -1;
}

inline ptrdiff_t FirstBadByte(const Block& b) {
  return FirstBadByte(b, b.ptr, b.size);
}

// The first nonzero byte of [p, p + n), or -1.
inline ptrdiff_t FirstNonZeroByte(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (word != 0) break;
  }
  for (; i < n; ++i) {
    if (p[i] != 0) return static_cast<ptrdiff_t>(i);
  }
  return -1;
}

inline std::string Describe(const Block& b) {
  return absl::StrFormat("block %p size %u generation %#x", b.ptr, b.size,
                         b.generation);
}

// What a broken pattern looked like, for failure messages: the offset, the
// byte found and expected, and what the block's first two words say.
inline std::string DescribeDamage(const Block& b, const uint8_t* at,
                                  ptrdiff_t bad) {
  const uint64_t word = PatternWord(b, static_cast<size_t>(bad) / 8);
  uint8_t expected;
  std::memcpy(&expected, reinterpret_cast<const uint8_t*>(&word) + bad % 8, 1);
  std::string s =
      absl::StrFormat("%s read at %p: byte %d is %#04x, expected %#04x",
                      Describe(b), at, bad, at[bad], expected);
  if (b.size >= 16) {
    uint64_t size, generation;
    std::memcpy(&size, at, 8);
    std::memcpy(&generation, at + 8, 8);
    absl::StrAppendFormat(&s, " (its header words say size %u generation %#x)",
                          size, generation);
  }
  return s;
}

}  // namespace stress
}  // namespace fmemp

#endif  // FMEMP_TESTS_STRESS_BLOCK_PATTERN_H_
