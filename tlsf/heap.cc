// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "tlsf/heap.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fmemp::tlsf {

// Memory layout of a block. A Block* points kAlignment bytes before the
// payload; consecutive blocks of a pool touch, so block + span is the next
// block.
//
//   prev_physical  last word of the previous block's span: a back pointer to
//                  the previous block, meaningful only while that block is
//                  free (kPrevFree set below). While the previous block is
//                  live, the word is part of its payload.
//   word           this block's header, the one word of overhead:
//                    bit  0      kFree: the block is free
//                    bit  1      kPrevFree: the previous block is free
//                    bits 2-3    zero
//                    bits 4-39   span (a multiple of kAlignment, < kMaxSpan);
//                                0 marks a pool's end sentinel
//                    bits 40-44  log2 of the alignment the block was
//                                allocated with (0: default), kept so that a
//                                moving realloc keeps it
//                    bits 45-63  tag: a hash of the block's address and the
//                                owning heap's key, bits 45 and 63 always
//                                set; a word whose tag does not match is not
//                                a block header
//   next_free,     free-list links; the payload's first two words, used only
//   prev_free      while the block is free and listed
//
// Free blocks of span kAlignment ("fragments") are left before an aligned
// allocation whose padding is too small for a listed free block. They hold no
// links, are never listed, and merge with their neighbours when those are
// freed, exactly like listed free blocks.
struct Heap::Block {
  Block* prev_physical;
  uint64_t word;
  Block* next_free;
  Block* prev_free;
};

// Record at the start of every pool's memory, followed by its first block.
class Pool {
 public:
  uint64_t magic;  // kPoolMagic ^ address ^ heap; zero once removed
  Heap* heap;
  Pool* next;
  Pool* prev;
  char* end;        // one past the last byte of the pool (aligned)
  size_t capacity;  // span of the pool's single block when empty

  uint64_t ExpectedMagic() const {
    return kPoolMagic ^ reinterpret_cast<uintptr_t>(this) ^
           reinterpret_cast<uintptr_t>(heap);
  }
  static constexpr uint64_t kPoolMagic = 0x7f1e5a9c3b2d4e61;
};

namespace {

constexpr uint64_t kFree = 1;
constexpr uint64_t kPrevFree = 2;
constexpr uint64_t kSpanMask = (kMaxSpan - 1) & ~uint64_t{kAlignment - 1};
constexpr int kAlignShift = kMaxSpanLog2;
constexpr uint64_t kAlignMask = uint64_t{0x1f} << kAlignShift;
constexpr int kTagShift = kAlignShift + 5;
constexpr uint64_t kTagMask = ~uint64_t{0} << kTagShift;

static_assert(sizeof(Pool) % kAlignment == 0, "blocks follow the pool record");
static_assert(kTagShift < 64 && 64 - kTagShift >= 16, "tag needs its bits");

// Bytes of a pool outside its blocks: the record, the first block's unused
// back-pointer slot and the end sentinel's header word.
constexpr size_t kPoolFixedOverhead = sizeof(Pool) + 2 * kBlockOverhead;

uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

std::atomic<uint64_t> heap_serial{0};

void DefaultErrorHandler(void*, HeapError error, const void* ptr) {
  std::fprintf(stderr, "fmemp tlsf: %s: %p\n", HeapErrorName(error), ptr);
}

// Collects the first integrity problem and counts the rest.
class Findings {
 public:
  template <typename... Args>
  void Add(const absl::FormatSpec<Args...>& format, const Args&... args) {
    if (count_++ == 0) first_ = absl::StrFormat(format, args...);
  }
  bool empty() const { return count_ == 0; }
  absl::Status ToStatus() const {
    if (count_ == 0) return absl::OkStatus();
    return absl::DataLossError(
        absl::StrCat(first_, " (", count_, " problem(s) found)"));
  }

 private:
  size_t count_ = 0;
  std::string first_;
};

}  // namespace

const size_t Heap::kPoolOverhead = kPoolFixedOverhead;
const size_t Heap::kMinPoolBytes = kPoolFixedOverhead + kMinFreeSpan;
const size_t Heap::kFirstPayloadOffset = sizeof(Pool) + kAlignment;

const char* HeapErrorName(HeapError error) {
  switch (error) {
    case HeapError::kInvalidFree:
      return "free of a pointer that is not a live block of this heap";
    case HeapError::kDoubleFree:
      return "double free";
    case HeapError::kCorruptHeap:
      return "heap corruption next to block";
    case HeapError::kPoolNotRemoved:
      return "pool not removed: it holds live blocks or is not in this heap";
  }
  return "unknown heap error";
}

// --- Block accessors, generic over the (private) block type ---

namespace {

// Header words are read and written with relaxed atomic accesses. Under the
// heap's lock they compile to plain loads and stores; they are atomic so that
// a front-end may read the span of a block it owns without the lock (see
// Heap::UsableSize) while the heap, under the lock, flips the kPrevFree
// bit of that same word as the block's neighbour is freed or allocated.
template <typename B>
uint64_t LoadWord(const B* b) {
  return __atomic_load_n(&b->word, __ATOMIC_RELAXED);
}
template <typename B>
void StoreWord(B* b, uint64_t word) {
  __atomic_store_n(&b->word, word, __ATOMIC_RELAXED);
}

template <typename B>
size_t SpanOf(const B* b) {
  return LoadWord(b) & kSpanMask;
}
template <typename B>
bool IsFree(const B* b) {
  return (LoadWord(b) & kFree) != 0;
}
template <typename B>
bool IsPrevFree(const B* b) {
  return (LoadWord(b) & kPrevFree) != 0;
}
template <typename B>
B* Offset(B* b, size_t bytes) {
  return reinterpret_cast<B*>(reinterpret_cast<char*>(b) + bytes);
}
template <typename B>
const B* Offset(const B* b, size_t bytes) {
  return reinterpret_cast<const B*>(reinterpret_cast<const char*>(b) + bytes);
}
template <typename B>
B* NextOf(B* b) {
  return Offset(b, SpanOf(b));
}
template <typename B>
void* PayloadOf(B* b) {
  return reinterpret_cast<char*>(b) + kAlignment;
}

}  // namespace

Heap::Heap() noexcept {
  const uint64_t serial = heap_serial.fetch_add(1, std::memory_order_relaxed);
  tag_key_ = (Addr(this) * 0xd6e8feb86659fd93ull) ^
             (serial * 0x9e3779b97f4a7c15ull) ^ 0x5bd1e9955bd1e995ull;
}

uint64_t Heap::TagFor(const void* block) const noexcept {
  const uint64_t h = (Addr(block) ^ tag_key_) * 0x9e3779b97f4a7c15ull;
  // Bits 45 and 63 are always set: a zero word or a user-space pointer (bit
  // 63 clear on every 64-bit platform fmemp supports), such as a free-list
  // link that now covers an old header, never passes for a header.
  return ((h >> kTagShift) | 1 | (uint64_t{1} << (63 - kTagShift)))
         << kTagShift;
}

bool Heap::IsTagged(const Block* block) const noexcept {
  return (LoadWord(block) & kTagMask) == TagFor(block);
}

uint64_t Heap::MakeWord(const Block* block, size_t span, uint64_t flags) const {
  return TagFor(block) | span | flags;
}

void Heap::MarkAbsorbed(Block* block) const {
  // A header merged into a neighbour keeps a tagged, free, zero-span word,
  // so a late free of its old pointer is reported as a double free.
  StoreWord(block, TagFor(block) | kFree);
}

void Heap::SetSpan(Block* block, size_t span) const {
  StoreWord(block, (LoadWord(block) & ~kSpanMask) | span);
}

Heap::Block* Heap::FirstBlockOf(const Pool* pool) {
  return reinterpret_cast<Block*>(
      const_cast<char*>(reinterpret_cast<const char*>(pool)) + sizeof(Pool));
}

// --- Free lists ---

void Heap::InsertFree(Block* block) noexcept {
  const Bin bin = BinForSpan(SpanOf(block));
  Block*& head = free_lists_[bin.first][bin.second];
  block->next_free = head;
  block->prev_free = nullptr;
  if (head != nullptr) head->prev_free = block;
  head = block;
  first_level_bitmap_ |= 1u << bin.first;
  second_level_bitmap_[bin.first] |= 1u << bin.second;
}

void Heap::RemoveFree(Block* block) noexcept {
  if (SpanOf(block) < kMinFreeSpan) return;  // fragments are never listed
  const Bin bin = BinForSpan(SpanOf(block));
  Block* const next = block->next_free;
  Block* const prev = block->prev_free;
  if (next != nullptr) next->prev_free = prev;
  if (prev != nullptr) {
    prev->next_free = next;
    return;
  }
  free_lists_[bin.first][bin.second] = next;
  if (next == nullptr) {
    second_level_bitmap_[bin.first] &= ~(1u << bin.second);
    if (second_level_bitmap_[bin.first] == 0) {
      first_level_bitmap_ &= ~(1u << bin.first);
    }
  }
}

Heap::Block* Heap::TakeFreeBlock(size_t span) noexcept {
  const size_t search = RoundUpToBinStart(span);
  if (search < kMaxSpan) {
    const Bin bin = BinForSpan(search);
    int first = bin.first;
    uint32_t second_map = second_level_bitmap_[first] & (~0u << bin.second);
    if (second_map == 0 && first + 1 < kFirstLevelCount) {
      const uint32_t first_map = first_level_bitmap_ & (~0u << (first + 1));
      if (first_map != 0) {
        first = __builtin_ctz(first_map);
        second_map = second_level_bitmap_[first];
      }
    }
    if (second_map != 0) {
      Block* const block = free_lists_[first][__builtin_ctz(second_map)];
      RemoveFree(block);
      return block;
    }
  }
  if (search == span) return nullptr;
  // Good fit failed; blocks in the request's own bin may still be big enough.
  const Bin own = BinForSpan(span);
  Block* block = free_lists_[own.first][own.second];
  for (int i = 0; block != nullptr && i < kFallbackScan; ++i) {
    if (SpanOf(block) >= span) {
      RemoveFree(block);
      return block;
    }
    block = block->next_free;
  }
  return nullptr;
}

// --- Accounting ---

void Heap::AddUsed(size_t span) noexcept {
  stats_.used_bytes += span;
  stats_.free_bytes -= span;
  UpdatePeak();
}

void Heap::UpdatePeak() noexcept {
  stats_.peak_used_bytes = std::max(stats_.peak_used_bytes, stats_.used_bytes);
}

void Heap::SubUsed(size_t span) noexcept {
  stats_.used_bytes -= span;
  stats_.free_bytes += span;
}

void Heap::Report(HeapError error, const void* ptr) noexcept {
  ++stats_.invalid_frees;
  if (error_handler_ != nullptr) {
    error_handler_(error_context_, error, ptr);
  } else {
    DefaultErrorHandler(nullptr, error, ptr);
  }
}

void Heap::SetErrorHandler(HeapErrorHandler handler, void* context) noexcept {
  error_handler_ = handler;
  error_context_ = context;
}

// --- Block transitions ---

void* Heap::UseBlock(Block* block, size_t span, int alignment_log2) noexcept {
  size_t have = SpanOf(block);
  Block* const next = NextOf(block);
  if (have - span >= kMinFreeSpan) {
    Block* const rest = Offset(block, span);
    StoreWord(rest, MakeWord(rest, have - span, kFree));
    next->prev_physical = rest;  // next keeps kPrevFree
    InsertFree(rest);
    have = span;
  } else {
    StoreWord(next, LoadWord(next) & ~kPrevFree);
  }
  StoreWord(block, MakeWord(block, have, LoadWord(block) & kPrevFree) |
                       (static_cast<uint64_t>(alignment_log2) << kAlignShift));
  AddUsed(have);
  ++stats_.live_blocks;
  return PayloadOf(block);
}

void Heap::ReleaseFree(Block* block) noexcept {
  if (IsPrevFree(block)) {
    Block* const prev = block->prev_physical;
    const bool linked = prev != nullptr && Addr(prev) < Addr(block) &&
                        IsTagged(prev) && IsFree(prev) && NextOf(prev) == block;
    if (linked) {
      RemoveFree(prev);
      SetSpan(prev, SpanOf(prev) + SpanOf(block));
      MarkAbsorbed(block);
      block = prev;
    } else {
      Report(HeapError::kCorruptHeap, PayloadOf(block));
    }
  }
  Block* next = NextOf(block);
  if (IsFree(next)) {
    RemoveFree(next);
    SetSpan(block, SpanOf(block) + SpanOf(next));
    MarkAbsorbed(next);
    next = NextOf(block);
  }
  next->prev_physical = block;
  StoreWord(next, LoadWord(next) | kPrevFree);
  if (SpanOf(block) >= kMinFreeSpan) InsertFree(block);
}

void Heap::ShrinkLive(Block* block, size_t span) noexcept {
  const size_t have = SpanOf(block);
  if (have - span < kMinFreeSpan) return;
  Block* const tail = Offset(block, span);
  StoreWord(tail,
            MakeWord(tail, have - span, kFree));  // previous (block) is live
  SetSpan(block, span);
  SubUsed(have - span);
  ReleaseFree(tail);
}

Heap::Block* Heap::LiveBlockOrReport(const void* ptr) noexcept {
  if (Addr(ptr) % kAlignment != 0) {
    Report(HeapError::kInvalidFree, ptr);
    return nullptr;
  }
  Block* const block = reinterpret_cast<Block*>(
      const_cast<char*>(static_cast<const char*>(ptr)) - kAlignment);
  if (!IsTagged(block)) {
    Report(HeapError::kInvalidFree, ptr);
    return nullptr;
  }
  if (IsFree(block)) {
    Report(HeapError::kDoubleFree, ptr);
    return nullptr;
  }
  if (SpanOf(block) == 0) {  // a pool's end sentinel
    Report(HeapError::kInvalidFree, ptr);
    return nullptr;
  }
  const Block* const next = NextOf(block);
  if (SpanOf(block) < kMinFreeSpan || !IsTagged(next) || IsPrevFree(next)) {
    Report(HeapError::kCorruptHeap, ptr);
    return nullptr;
  }
  return block;
}

// --- Hot path ---

void* Heap::Allocate(size_t bytes) noexcept {
  const size_t span = SpanForRequest(bytes);
  Block* const block = span != 0 ? TakeFreeBlock(span) : nullptr;
  if (block == nullptr) {
    NoteFailure();
    return nullptr;
  }
  return UseBlock(block, span, 0);
}

void* Heap::AllocateAligned(size_t alignment, size_t bytes) noexcept {
  if (!IsPowerOfTwo(alignment) || alignment > kMaxAlignment) {
    NoteFailure();
    return nullptr;
  }
  if (alignment <= kAlignment) return Allocate(bytes);
  const size_t span = SpanForRequest(bytes);
  // The payload of any block is kAlignment-aligned, so at most
  // alignment - kAlignment bytes of padding are needed in front.
  const size_t search = span + alignment - kAlignment;
  Block* block =
      (span != 0 && search < kMaxSpan) ? TakeFreeBlock(search) : nullptr;
  if (block == nullptr) {
    NoteFailure();
    return nullptr;
  }
  const uintptr_t payload = Addr(PayloadOf(block));
  const size_t gap = AlignUp(payload, alignment) - payload;
  if (gap != 0) {
    // Split the padding off as a free block of its own; the rest keeps the
    // aligned payload.
    Block* const lead = block;
    const size_t total = SpanOf(lead);
    block = Offset(lead, gap);
    StoreWord(lead, MakeWord(lead, gap, kFree | (LoadWord(lead) & kPrevFree)));
    block->prev_physical = lead;
    StoreWord(block, MakeWord(block, total - gap, kFree | kPrevFree));
    NextOf(block)->prev_physical = block;
    if (gap >= kMinFreeSpan) InsertFree(lead);
  }
  return UseBlock(block, span, FloorLog2(alignment));
}

bool Heap::Free(void* ptr) noexcept {
  if (ptr == nullptr) return true;
  Block* const block = LiveBlockOrReport(ptr);
  if (block == nullptr) return false;
  const size_t span = SpanOf(block);
  SubUsed(span);
  --stats_.live_blocks;
  StoreWord(block,
            MakeWord(block, span, kFree | (LoadWord(block) & kPrevFree)));
  ReleaseFree(block);
  return true;
}

void* Heap::Reallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return Allocate(bytes);
  Block* const block = LiveBlockOrReport(ptr);
  if (block == nullptr) return nullptr;
  if (bytes == 0) {
    Free(ptr);
    return nullptr;
  }
  const size_t want = SpanForRequest(bytes);
  if (want == 0) {
    NoteFailure();
    return nullptr;
  }
  const size_t have = SpanOf(block);
  if (want <= have) {
    ShrinkLive(block, want);
    return ptr;
  }
  Block* const next = NextOf(block);
  if (IsFree(next) && have + SpanOf(next) >= want) {
    const size_t gained = SpanOf(next);
    RemoveFree(next);
    MarkAbsorbed(next);
    SetSpan(block, have + gained);
    StoreWord(NextOf(block), LoadWord(NextOf(block)) & ~kPrevFree);
    // Count the absorbed block as used, then give back the tail, and only
    // then update the peak, which must not see the transient total.
    stats_.used_bytes += gained;
    stats_.free_bytes -= gained;
    ShrinkLive(block, want);
    UpdatePeak();
    return ptr;
  }
  const int alignment_log2 =
      static_cast<int>((LoadWord(block) & kAlignMask) >> kAlignShift);
  void* const moved = alignment_log2 != 0
                          ? AllocateAligned(size_t{1} << alignment_log2, bytes)
                          : Allocate(bytes);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, ptr, std::min(UsableBytes(have), bytes));
  Free(ptr);
  return moved;
}

size_t Heap::UsableSize(const void* ptr) const noexcept {
  if (ptr == nullptr || Addr(ptr) % kAlignment != 0) return 0;
  const Block* const block = reinterpret_cast<const Block*>(
      static_cast<const char*>(ptr) - kAlignment);
  // One load of the header: a caller may ask about a block it owns without
  // the heap's lock while a neighbour's kPrevFree bit changes under it.
  const uint64_t word = LoadWord(block);
  const size_t span = word & kSpanMask;
  if ((word & kTagMask) != TagFor(block) || (word & kFree) != 0 ||
      span < kMinFreeSpan) {
    return 0;
  }
  return UsableBytes(span);
}

size_t Heap::BlockAlignment(const void* ptr) const noexcept {
  if (UsableSize(ptr) == 0) return 0;
  const Block* const block = reinterpret_cast<const Block*>(
      static_cast<const char*>(ptr) - kAlignment);
  const int log2 =
      static_cast<int>((LoadWord(block) & kAlignMask) >> kAlignShift);
  return log2 == 0 ? kAlignment : size_t{1} << log2;
}

int Heap::LargestFreeBin() const noexcept {
  if (first_level_bitmap_ == 0) return -1;
  const int first = FloorLog2(first_level_bitmap_);
  return first * kSecondLevelCount + FloorLog2(second_level_bitmap_[first]);
}

// --- Pools ---

absl::StatusOr<Pool*> Heap::AddPool(void* mem, size_t bytes) {
  if (mem == nullptr) return absl::InvalidArgumentError("pool memory is null");
  const uintptr_t low = Addr(mem);
  if (bytes > UINTPTR_MAX - low) {
    return absl::InvalidArgumentError(
        "pool range wraps around the end of the address space");
  }
  const uintptr_t begin = AlignUp(low, kAlignment);
  const uintptr_t end = (low + bytes) & ~uintptr_t{kAlignment - 1};
  if (end < begin || end - begin < kMinPoolBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool of ", bytes, " bytes is smaller than the minimum of ",
        kMinPoolBytes, " bytes after aligning its bounds"));
  }
  const size_t span = end - begin - kPoolFixedOverhead;
  if (span >= kMaxSpan) {
    return absl::OutOfRangeError(absl::StrCat(
        "pool of ", bytes, " bytes exceeds the maximum block span of ",
        kMaxSpan - kAlignment, " bytes"));
  }
  for (Pool* p = first_pool_; p != nullptr; p = p->next) {
    if (begin < Addr(p->end) && Addr(p) < end) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "pool [%p, %p) overlaps pool [%p, %p) of this heap",
          reinterpret_cast<void*>(begin), reinterpret_cast<void*>(end),
          static_cast<void*>(p), static_cast<void*>(p->end)));
    }
  }
  Pool* const pool = new (reinterpret_cast<void*>(begin)) Pool;
  pool->heap = this;
  pool->magic = pool->ExpectedMagic();
  pool->next = nullptr;
  pool->prev = last_pool_;
  pool->end = reinterpret_cast<char*>(end);
  pool->capacity = span;
  (last_pool_ != nullptr ? last_pool_->next : first_pool_) = pool;
  last_pool_ = pool;

  Block* const block = FirstBlockOf(pool);
  block->prev_physical = nullptr;
  StoreWord(block, MakeWord(block, span, kFree));
  Block* const sentinel = NextOf(block);
  sentinel->prev_physical = block;
  StoreWord(sentinel, MakeWord(sentinel, 0, kPrevFree));
  InsertFree(block);

  stats_.capacity_bytes += span;
  stats_.free_bytes += span;
  ++stats_.pool_count;
  return pool;
}

bool Heap::OwnsPool(const Pool* pool) const {
  size_t seen = 0;
  for (const Pool* p = first_pool_; p != nullptr && seen <= stats_.pool_count;
       p = p->next, ++seen) {
    if (p == pool) return true;
  }
  return false;
}

absl::Status Heap::RemovePool(Pool* pool) {
  if (pool == nullptr || !OwnsPool(pool)) {
    return absl::NotFoundError("not a pool of this heap");
  }
  Block* const block = FirstBlockOf(pool);
  if (!IsFree(block) || SpanOf(block) != pool->capacity) {
    size_t live_bytes = 0;
    size_t live_blocks = 0;
    WalkPool(pool, [&](const BlockInfo& info) {
      if (info.used) {
        live_bytes += info.size;
        ++live_blocks;
      }
      return true;
    });
    return absl::FailedPreconditionError(
        absl::StrFormat("pool at %p still holds %d live bytes in %d blocks",
                        static_cast<void*>(pool), live_bytes, live_blocks));
  }
  RemoveFree(block);
  StoreWord(block, 0);
  StoreWord(Offset(block, pool->capacity), 0);  // the end sentinel
  (pool->prev != nullptr ? pool->prev->next : first_pool_) = pool->next;
  (pool->next != nullptr ? pool->next->prev : last_pool_) = pool->prev;
  pool->magic = 0;
  stats_.capacity_bytes -= pool->capacity;
  stats_.free_bytes -= pool->capacity;
  --stats_.pool_count;
  return absl::OkStatus();
}

void Heap::ForEachPool(absl::FunctionRef<void(Pool*)> fn) const {
  for (Pool* p = first_pool_; p != nullptr;) {
    Pool* const next = p->next;
    fn(p);
    p = next;
  }
}

Pool* Heap::FindPool(const void* ptr) const {
  const uintptr_t a = Addr(ptr);
  for (Pool* p = first_pool_; p != nullptr; p = p->next) {
    if (a >= Addr(p) && a < Addr(p->end)) return p;
  }
  return nullptr;
}

void* Heap::PoolBegin(const Pool* pool) { return const_cast<Pool*>(pool); }
void* Heap::PoolEnd(const Pool* pool) { return pool->end; }
size_t Heap::PoolCapacity(const Pool* pool) { return pool->capacity; }

Heap* Heap::PoolOwner(const Pool* pool) {
  if (pool == nullptr || Addr(pool) % kAlignment != 0) return nullptr;
  return pool->magic == pool->ExpectedMagic() ? pool->heap : nullptr;
}

// --- Observation ---

size_t Heap::LargestAllocatable() const noexcept {
  size_t best = 0;
  for (int first = 0; first < kFirstLevelCount; ++first) {
    uint32_t map = second_level_bitmap_[first];
    while (map != 0) {
      const int second = __builtin_ctz(map);
      map &= map - 1;
      const Block* block = free_lists_[first][second];
      for (int i = 0; block != nullptr && i < kFallbackScan; ++i) {
        best = std::max(best, SpanOf(block));
        block = block->next_free;
      }
    }
  }
  return best == 0 ? 0 : UsableBytes(best);
}

bool Heap::WalkPool(const Pool* pool,
                    absl::FunctionRef<bool(const BlockInfo&)> fn) const {
  if (pool == nullptr || !OwnsPool(pool)) return true;
  const uintptr_t end = Addr(pool->end);
  Block* block = FirstBlockOf(pool);
  while (Addr(block) + kAlignment <= end && IsTagged(block) &&
         SpanOf(block) != 0) {
    const size_t span = SpanOf(block);
    if (span > end - Addr(block)) break;
    const BlockInfo info{PayloadOf(block), UsableBytes(span), !IsFree(block)};
    if (!fn(info)) return false;
    block = Offset(block, span);
  }
  return true;
}

absl::Status Heap::CheckPool(const Pool* pool) const {
  Findings findings;
  if (pool == nullptr || !OwnsPool(pool)) {
    return absl::NotFoundError("not a pool of this heap");
  }
  if (pool->magic != pool->ExpectedMagic()) {
    findings.Add("pool %p: record damaged", static_cast<const void*>(pool));
    return findings.ToStatus();
  }
  const uintptr_t end = Addr(pool->end);
  const Block* block = FirstBlockOf(pool);
  const Block* prev = nullptr;
  bool prev_free = false;
  for (;;) {
    if (Addr(block) + kAlignment > end) {
      findings.Add("pool %p: walk ran past the pool end at %p",
                   static_cast<const void*>(pool),
                   static_cast<const void*>(block));
      break;
    }
    if (!IsTagged(block)) {
      findings.Add("pool %p: block header at %p has a bad tag",
                   static_cast<const void*>(pool),
                   static_cast<const void*>(block));
      break;
    }
    if (IsPrevFree(block) != prev_free) {
      findings.Add("block %p: prev-free flag disagrees with the walk",
                   static_cast<const void*>(block));
    }
    if (prev_free && block->prev_physical != prev) {
      findings.Add("block %p: back pointer does not name its predecessor",
                   static_cast<const void*>(block));
    }
    const size_t span = SpanOf(block);
    if (span == 0) {
      if (Addr(block) + kAlignment != end) {
        findings.Add("pool %p: end sentinel at %p is not at the pool end",
                     static_cast<const void*>(pool),
                     static_cast<const void*>(block));
      }
      if (IsFree(block)) {
        findings.Add("pool %p: end sentinel marked free",
                     static_cast<const void*>(pool));
      }
      break;
    }
    if (span > end - Addr(block) - kAlignment) {
      findings.Add("block %p: span %d runs past the pool end",
                   static_cast<const void*>(block), span);
      break;
    }
    const bool free = IsFree(block);
    if (free && prev_free) {
      findings.Add("blocks %p and %p: adjacent free blocks were not merged",
                   static_cast<const void*>(prev),
                   static_cast<const void*>(block));
    }
    if (!free && span < kMinFreeSpan) {
      findings.Add("block %p: live block of span %d is below the minimum",
                   static_cast<const void*>(block), span);
    }
    prev = block;
    prev_free = free;
    block = Offset(block, span);
  }
  return findings.ToStatus();
}

absl::Status Heap::CheckLists(size_t* listed_blocks) const {
  Findings findings;
  // Any list longer than this bound has a cycle or foreign nodes.
  const size_t max_nodes = stats_.free_bytes / kMinFreeSpan + 1;
  size_t listed = 0;
  for (int first = 0; first < kFirstLevelCount; ++first) {
    const bool first_bit = (first_level_bitmap_ >> first) & 1u;
    if (first_bit != (second_level_bitmap_[first] != 0)) {
      findings.Add("first-level bit %d disagrees with its second level", first);
    }
    for (int second = 0; second < kSecondLevelCount; ++second) {
      const Block* block = free_lists_[first][second];
      const bool second_bit = (second_level_bitmap_[first] >> second) & 1u;
      if (second_bit != (block != nullptr)) {
        findings.Add("bin (%d, %d): bitmap bit %d but list %s", first, second,
                     second_bit, block != nullptr ? "non-empty" : "empty");
      }
      const Block* prev = nullptr;
      size_t steps = 0;
      for (; block != nullptr; prev = block, block = block->next_free) {
        if (++steps > max_nodes) {
          findings.Add("bin (%d, %d): list has a cycle", first, second);
          break;
        }
        const Pool* pool = FindPool(block);
        if (pool == nullptr || Addr(block) < Addr(FirstBlockOf(pool)) ||
            Addr(block) + 4 * kBlockOverhead > Addr(pool->end)) {
          findings.Add("bin (%d, %d): node %p lies outside every pool", first,
                       second, static_cast<const void*>(block));
          break;
        }
        if (!IsTagged(block) || !IsFree(block)) {
          findings.Add("bin (%d, %d): node %p is not a free block", first,
                       second, static_cast<const void*>(block));
          break;
        }
        const size_t span = SpanOf(block);
        if (span < kMinFreeSpan || !(BinForSpan(span) == Bin{first, second})) {
          findings.Add("bin (%d, %d): node %p of span %d is in the wrong bin",
                       first, second, static_cast<const void*>(block), span);
        }
        if (block->prev_free != prev) {
          findings.Add("bin (%d, %d): node %p has a wrong prev link", first,
                       second, static_cast<const void*>(block));
        }
        ++listed;
      }
    }
  }
  *listed_blocks = listed;
  return findings.ToStatus();
}

absl::Status Heap::Check() const {
  Findings findings;
  size_t listed = 0;
  if (absl::Status s = CheckLists(&listed); !s.ok()) {
    findings.Add("%s", std::string(s.message()));
  }
  size_t pools = 0;
  size_t capacity = 0, used = 0, free_bytes = 0, live = 0, listable = 0;
  for (const Pool* p = first_pool_; p != nullptr; p = p->next) {
    if (++pools > stats_.pool_count) {
      findings.Add("pool list is longer than the pool count %d",
                   stats_.pool_count);
      break;
    }
    if (absl::Status s = CheckPool(p); !s.ok()) {
      findings.Add("%s", std::string(s.message()));
      continue;
    }
    capacity += p->capacity;
    WalkPool(p, [&](const BlockInfo& info) {
      const size_t span = info.size + kBlockOverhead;
      if (info.used) {
        used += span;
        ++live;
      } else {
        free_bytes += span;
        if (span >= kMinFreeSpan) ++listable;
      }
      return true;
    });
  }
  if (findings.empty()) {
    if (pools != stats_.pool_count) {
      findings.Add("pool count %d, but %d pools are linked", stats_.pool_count,
                   pools);
    }
    if (capacity != stats_.capacity_bytes || used != stats_.used_bytes ||
        free_bytes != stats_.free_bytes || live != stats_.live_blocks) {
      findings.Add(
          "counters disagree with the walk: capacity %d/%d used %d/%d "
          "free %d/%d live %d/%d",
          stats_.capacity_bytes, capacity, stats_.used_bytes, used,
          stats_.free_bytes, free_bytes, stats_.live_blocks, live);
    }
    if (listable != listed) {
      findings.Add("%d free blocks in the pools but %d in the free lists",
                   listable, listed);
    }
    if (stats_.peak_used_bytes < stats_.used_bytes) {
      findings.Add("peak %d is below used %d", stats_.peak_used_bytes,
                   stats_.used_bytes);
    }
  }
  return findings.ToStatus();
}

}  // namespace fmemp::tlsf
