// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/live_blocks.h
//
// The fuzz targets' model of what an allocator handed out: every live block
// with its size, alignment and fill pattern, and the pointers that were freed
// since (for double-free probes). It also holds FUZZ_CHECK, the one way a
// target reports a violated invariant: a message on stderr and abort(), which
// libFuzzer and the replay main both treat as a crash.
//
// Fill patterns keep bit 5 of every byte clear, and so bit 45 of every 64-bit
// word. Bit 45 is the lowest bit of the tag in every TLSF block header
// (tlsf/block_header.h, TagFor), so a word of a payload is never taken for a
// header: a free of an interior pointer reads a payload word as its "header"
// and is rejected deterministically, not with probability 1 - 2^-19. The
// targets keep the same rule for all memory they point the allocator at (zero
// buffers, wiped regions, static addresses).

#ifndef FMEMP_FUZZ_LIVE_BLOCKS_H_
#define FMEMP_FUZZ_LIVE_BLOCKS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace fmemp::fuzz {

// Prints "fuzz invariant violated: <message>" with the location and aborts.
[[noreturn]] void FailInvariant(const char* file, int line, const char* format,
                                ...) __attribute__((format(printf, 3, 4)));

#define FUZZ_CHECK(condition, ...)                                   \
  do {                                                               \
    if (!(condition)) {                                              \
      ::fmemp::fuzz::FailInvariant(__FILE__, __LINE__, __VA_ARGS__); \
    }                                                                \
  } while (0)

inline uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Whether a word holding `p` could be taken for a TLSF block header: only if
// bit 45 of the address is set. Static buffers of a normal (PIE or non-PIE)
// x86-64 executable lie far below 2^45; the targets check it once.
inline bool CouldLookTagged(const void* p) {
  return ((Addr(p) >> 45) & 1) != 0;
}

class LiveBlocks {
 public:
  struct Block {
    size_t size;       // bytes the model fills and verifies
    size_t alignment;  // the alignment the block must keep
    uint64_t id;       // selects the fill pattern
  };

  // Bytes of header word in front of every payload, counted in overlap
  // checks so that a payload never covers another block's header.
  static constexpr size_t kHeaderBytes = 8;
  // Freed pointers remembered for double-free probes (the latest ones).
  static constexpr size_t kMaxStale = 64;

  LiveBlocks() = default;
  LiveBlocks(const LiveBlocks&) = delete;
  LiveBlocks& operator=(const LiveBlocks&) = delete;

  size_t count() const { return blocks_.size(); }
  bool empty() const { return blocks_.empty(); }
  const std::map<uintptr_t, Block>& blocks() const { return blocks_; }
  const std::vector<uintptr_t>& stale() const { return stale_; }

  bool IsLive(const void* p) const { return blocks_.count(Addr(p)) != 0; }
  const Block& Get(const void* p) const;

  // Records a new block of `size` bytes at `p`, checking that it is aligned
  // to max(alignment, 16) and overlaps no live block (header word included),
  // then fills it with a fresh pattern. Returns the pattern's id.
  uint64_t Add(void* p, size_t size, size_t alignment);

  // Checks that the block at `p` still holds its pattern.
  void Verify(const void* p) const;

  // Forgets the live block at `p` after checking its contents; remembers p
  // as a freed pointer. Call it before the allocator frees the block (the
  // allocator may write into freed memory).
  Block Remove(void* p);

  // Re-records the block at `p` (moved to `q`, q may equal p) with a new
  // size after a successful realloc: checks that the first
  // min(old size, keep) bytes at q hold the old pattern and that q keeps the
  // block's alignment, then refills the whole block with a new pattern.
  void Moved(void* p, void* q, size_t new_size, size_t keep);

  // The live block with the given index in address order (index taken
  // modulo count()), or nullptr when there is none.
  void* Pick(size_t index) const;

  // A remembered freed pointer (index modulo the count), or nullptr.
  void* PickStale(size_t index) const;

  // Drops remembered freed pointers in [begin, end), e.g. when that memory
  // stops being managed.
  void ForgetStale(uintptr_t begin, uintptr_t end);

  // Forgets every block and freed pointer without checking (the allocator
  // was reset).
  void Clear();

  // Checks every live block's contents and that no two blocks overlap.
  void VerifyAll() const;

  // Whether the first `bytes` at `p` hold pattern `id`.
  static bool HoldsPattern(const void* p, size_t bytes, uint64_t id);
  static void FillPattern(void* p, size_t bytes, uint64_t id);

 private:
  void RememberStale(uintptr_t p);
  void CheckNoOverlap(uintptr_t p, size_t size) const;

  std::map<uintptr_t, Block> blocks_;
  std::vector<uintptr_t> stale_;
  uint64_t next_id_ = 1;
};

}  // namespace fmemp::fuzz

#endif  // FMEMP_FUZZ_LIVE_BLOCKS_H_
