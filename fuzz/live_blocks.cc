// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fuzz/live_blocks.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>

namespace fmemp::fuzz {
namespace {

// Bit 45 of a word; see the file comment of live_blocks.h.
constexpr uint64_t kNeverTagBit = uint64_t{1} << 45;
// Bit 5 of a byte, so that bit 45 of every word is clear.
constexpr uint8_t kNeverTagByteMask = static_cast<uint8_t>(~0x20u);

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The pattern of block `id`: an 8-byte stamp, then one byte repeated. The
// stamp catches blocks moved or swapped; the repeated byte lets a whole
// payload be checked with two memcmp calls.
uint64_t Stamp(uint64_t id) { return Mix64(id) & ~kNeverTagBit; }
uint8_t FillByte(uint64_t id) {
  const uint8_t b = static_cast<uint8_t>(Mix64(~id) | 1u);
  return b & kNeverTagByteMask;
}

}  // namespace

void FailInvariant(const char* file, int line, const char* format, ...) {
  std::fprintf(stderr, "fuzz invariant violated at %s:%d: ", file, line);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

void LiveBlocks::FillPattern(void* p, size_t bytes, uint64_t id) {
  unsigned char* const bytes_at = static_cast<unsigned char*>(p);
  const uint64_t stamp = Stamp(id);
  const size_t head = std::min(bytes, sizeof(stamp));
  std::memcpy(bytes_at, &stamp, head);
  std::memset(bytes_at + head, FillByte(id), bytes - head);
}

bool LiveBlocks::HoldsPattern(const void* p, size_t bytes, uint64_t id) {
  const unsigned char* const bytes_at = static_cast<const unsigned char*>(p);
  const uint64_t stamp = Stamp(id);
  const size_t head = std::min(bytes, sizeof(stamp));
  if (std::memcmp(bytes_at, &stamp, head) != 0) return false;
  const size_t body = bytes - head;
  if (body == 0) return true;
  const unsigned char* const rest = bytes_at + head;
  // All bytes equal the first, and the first is the fill byte.
  return rest[0] == FillByte(id) && std::memcmp(rest, rest + 1, body - 1) == 0;
}

const LiveBlocks::Block& LiveBlocks::Get(const void* p) const {
  auto it = blocks_.find(Addr(p));
  FUZZ_CHECK(it != blocks_.end(), "%p is not a live block of the model", p);
  return it->second;
}

void LiveBlocks::CheckNoOverlap(uintptr_t p, size_t size) const {
  // Extents are [p - kHeaderBytes, p + size).
  auto next = blocks_.lower_bound(p);
  if (next != blocks_.end()) {
    FUZZ_CHECK(next->first != p, "block %p handed out twice",
               reinterpret_cast<void*>(p));
    FUZZ_CHECK(p + size <= next->first - kHeaderBytes,
               "new block [%p, +%zu) overlaps live block %p",
               reinterpret_cast<void*>(p), size,
               reinterpret_cast<void*>(next->first));
  }
  if (next != blocks_.begin()) {
    const auto prev = std::prev(next);
    FUZZ_CHECK(prev->first + prev->second.size <= p - kHeaderBytes,
               "new block %p overlaps live block [%p, +%zu)",
               reinterpret_cast<void*>(p), reinterpret_cast<void*>(prev->first),
               prev->second.size);
  }
}

uint64_t LiveBlocks::Add(void* p, size_t size, size_t alignment) {
  const uintptr_t a = Addr(p);
  FUZZ_CHECK(p != nullptr, "Add(nullptr)");
  const size_t need = std::max<size_t>(alignment, 16);
  FUZZ_CHECK(a % need == 0, "block %p is not aligned to %zu", p, need);
  FUZZ_CHECK(a >= kHeaderBytes && size <= UINTPTR_MAX - a,
             "block %p of %zu bytes wraps", p, size);
  CheckNoOverlap(a, size);
  const uint64_t id = next_id_++;
  blocks_.emplace(a, Block{size, alignment, id});
  stale_.erase(std::remove(stale_.begin(), stale_.end(), a), stale_.end());
  FillPattern(p, size, id);
  return id;
}

void LiveBlocks::Verify(const void* p) const {
  const Block& block = Get(p);
  FUZZ_CHECK(HoldsPattern(p, block.size, block.id),
             "contents of live block %p (%zu bytes) changed", p, block.size);
}

LiveBlocks::Block LiveBlocks::Remove(void* p) {
  auto it = blocks_.find(Addr(p));
  FUZZ_CHECK(it != blocks_.end(), "Remove(%p): not a live block", p);
  const Block block = it->second;
  FUZZ_CHECK(HoldsPattern(p, block.size, block.id),
             "contents of block %p (%zu bytes) changed before its free", p,
             block.size);
  blocks_.erase(it);
  RememberStale(Addr(p));
  return block;
}

void LiveBlocks::Moved(void* p, void* q, size_t new_size, size_t keep) {
  auto it = blocks_.find(Addr(p));
  FUZZ_CHECK(it != blocks_.end(), "Moved(%p): not a live block", p);
  const Block old = it->second;
  blocks_.erase(it);
  const size_t kept = std::min(old.size, keep);
  FUZZ_CHECK(HoldsPattern(q, kept, old.id),
             "realloc %p -> %p lost the first %zu bytes of the contents", p, q,
             kept);
  if (q != p) RememberStale(Addr(p));
  const size_t need = std::max<size_t>(old.alignment, 16);
  FUZZ_CHECK(Addr(q) % need == 0, "realloc moved %p to %p, not aligned to %zu",
             p, q, need);
  CheckNoOverlap(Addr(q), new_size);
  const uint64_t id = next_id_++;
  blocks_.emplace(Addr(q), Block{new_size, old.alignment, id});
  stale_.erase(std::remove(stale_.begin(), stale_.end(), Addr(q)),
               stale_.end());
  FillPattern(q, new_size, id);
}

void* LiveBlocks::Pick(size_t index) const {
  if (blocks_.empty()) return nullptr;
  auto it = blocks_.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(index % blocks_.size()));
  return reinterpret_cast<void*>(it->first);
}

void* LiveBlocks::PickStale(size_t index) const {
  if (stale_.empty()) return nullptr;
  return reinterpret_cast<void*>(stale_[index % stale_.size()]);
}

void LiveBlocks::RememberStale(uintptr_t p) {
  if (std::find(stale_.begin(), stale_.end(), p) != stale_.end()) return;
  if (stale_.size() == kMaxStale) stale_.erase(stale_.begin());
  stale_.push_back(p);
}

void LiveBlocks::ForgetStale(uintptr_t begin, uintptr_t end) {
  stale_.erase(std::remove_if(
                   stale_.begin(), stale_.end(),
                   [begin, end](uintptr_t p) { return p >= begin && p < end; }),
               stale_.end());
}

void LiveBlocks::Clear() {
  blocks_.clear();
  stale_.clear();
}

void LiveBlocks::VerifyAll() const {
  uintptr_t prev_end = 0;
  for (const auto& [a, block] : blocks_) {
    FUZZ_CHECK(a - kHeaderBytes >= prev_end,
               "live block %p overlaps its predecessor",
               reinterpret_cast<void*>(a));
    FUZZ_CHECK(
        HoldsPattern(reinterpret_cast<const void*>(a), block.size, block.id),
        "contents of live block %p (%zu bytes) changed",
        reinterpret_cast<void*>(a), block.size);
    prev_end = a + block.size;
  }
}

}  // namespace fmemp::fuzz
