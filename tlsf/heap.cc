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
#include "fmemp/debug_assert.h"

#if defined(__SANITIZE_ADDRESS__)
#define FMEMP_HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FMEMP_HEAP_ASAN 1
#endif
#endif

#if defined(FMEMP_HEAP_ASAN)
#include <sanitizer/asan_interface.h>
// The heap's own reads and writes of its bookkeeping (headers, back
// pointers, list links, canary heads) go through functions with this
// attribute, so that HeapOptions::asan can poison those words without ASan
// reporting the heap itself. The attribute also keeps ASan's shadow out of
// the lock-free UsableSize read (fmemp/thread_cache.h).
#define FMEMP_HEAP_NO_ASAN __attribute__((no_sanitize_address))
#else
#define FMEMP_HEAP_NO_ASAN
#endif

namespace fmemp::tlsf {

// Memory layout of a block. A Block* points kAlignment bytes before the
// payload; consecutive blocks of a pool touch, so block + span is the next
// block.
//
//   prev_physical  last word of the previous block's span: a back pointer to
//                  the previous block, meaningful only while that block is
//                  free (kPrevFree set below). While the previous block is
//                  live, the word is part of its payload.
//   word           this block's header, the one word of overhead: flags,
//                  span, alignment and tag (tlsf/block_header.h)
//   next_free,     free-list links; the payload's first two words, used only
//   prev_free      while the block is free and listed; stored encoded
//                  (Heap::LoadLink), so that a stray write or a stale value
//                  never decodes to a pointer the heap follows
//
// Nothing in a pool's memory is trusted: a header is used only once its tag
// checks out, a span only once it fits the pool (Heap::pools_), a link only
// once it decodes to a block that links back, a back pointer only once it
// names a free block ending here (see "Heap damage" in heap.h).
//
// Free blocks of span kAlignment ("fragments") are left before an aligned
// allocation whose padding is too small for a listed free block. They hold no
// links, are never listed, and merge with their neighbours when those are
// freed, exactly like listed free blocks.
//
// Debug modes (HeapOptions) keep this layout. Under canaries the payload P
// of a live block of span S holds, in order: the requested size n (one
// word), the head canary (HeadCanary(P), one word), the n bytes handed
// out (at P + kCanaryHeadBytes, aligned as asked), and kCanaryByte up to the
// payload's end, at least kCanaryTailBytes of it. Under poisoning a free
// block's bytes after its two links, up to its last word (the next block's
// back pointer), hold kFreePattern, except that the header word of a block
// merged away keeps its marker (MarkAbsorbed).
struct Heap::Block {
  Block* prev_physical;
  uint64_t word;
  uint64_t next_free;  // encoded
  uint64_t prev_free;  // encoded
};

// Record at the start of every pool's memory, followed by its first block.
// Only PoolOwner reads it (validated by its magic); the heap keeps the
// pool's bounds in its own object, so a damaged record (an underflow of the
// first block) changes nothing but PoolOwner's answer.
class Pool {
 public:
  uint64_t magic;  // kPoolMagic ^ address ^ heap; zero once removed
  Heap* heap;
  uint64_t reserved[4];  // keeps the record's size (kPoolOverhead)

  uint64_t ExpectedMagic() const {
    return kPoolMagic ^ reinterpret_cast<uintptr_t>(this) ^
           reinterpret_cast<uintptr_t>(heap);
  }
  static constexpr uint64_t kPoolMagic = 0x7f1e5a9c3b2d4e61;
};

namespace {

using block_header::kAlignMask;
using block_header::kAlignShift;
using block_header::kFree;
using block_header::kLost;
using block_header::kPrevFree;
using block_header::kSpanMask;
using block_header::kTagMask;
using block_header::kTagShift;

static_assert(sizeof(Pool) % kAlignment == 0, "blocks follow the pool record");

// Bytes of a pool outside its blocks: the record, the first block's unused
// back-pointer slot and the end sentinel's header word.
constexpr size_t kPoolFixedOverhead = sizeof(Pool) + 2 * kBlockOverhead;

// Offsets in a block (from its Block*) of the free-list links, and the
// first byte a free block's poison covers.
constexpr size_t kNextFreeOffset = 2 * kBlockOverhead;
constexpr size_t kPrevFreeOffset = 3 * kBlockOverhead;
constexpr size_t kPoisonOffset = kMinFreeSpan;

// Debug patterns as words. Bit 45 (the tag's lowest bit) is clear in each.
constexpr uint64_t kFreeWord = 0x0101010101010101ull * Heap::kFreePattern;
constexpr uint64_t kCanaryWord = 0x0101010101010101ull * Heap::kCanaryByte;
constexpr uint64_t kTagLowBit = uint64_t{1} << kTagShift;
static_assert((kFreeWord & kTagLowBit) == 0, "poison must never be a header");
static_assert((kCanaryWord & kTagLowBit) == 0, "canary must never be a header");
static_assert(((0x0101010101010101ull * Heap::kAllocPattern) & kTagLowBit) == 0,
              "fresh fill must never be a header");
static_assert(Heap::kCanaryHeadBytes == 2 * kBlockOverhead &&
                  Heap::kCanaryHeadBytes % kAlignment == 0,
              "the head is the size word and the canary word");

uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

std::atomic<uint64_t> heap_serial{0};

// For the XImpl<kDebug> templates: each is inlined into its two non-template
// versions (see heap.h).
#define FMEMP_HEAP_IMPL inline __attribute__((always_inline))

// A word of memory the user may also have written as anything else.
typedef uint64_t __attribute__((may_alias)) AliasedWord;

FMEMP_HEAP_NO_ASAN uint64_t LoadRaw(const void* p) {
  return *static_cast<const AliasedWord*>(p);
}
FMEMP_HEAP_NO_ASAN void StoreRaw(void* p, uint64_t value) {
  *static_cast<AliasedWord*>(p) = value;
}

// ASan's manual poisoning; no-ops without ASan (where HeapOptions::asan is
// never in effect anyway).
void AsanPoison(const void* p, size_t bytes) {
#if defined(FMEMP_HEAP_ASAN)
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}
void AsanUnpoison(const void* p, size_t bytes) {
#if defined(FMEMP_HEAP_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

// Makes [from, to) addressable for the heap's own fill or scan while it
// lives, and poisons it again afterwards, under HeapOptions::asan.
class AsanWindow {
 public:
  AsanWindow(bool on, const void* from, const void* to)
      : on_(on && to > from),
        from_(from),
        bytes_(on_ ? Addr(to) - Addr(from) : 0) {
    if (on_) AsanUnpoison(from_, bytes_);
  }
  AsanWindow(const AsanWindow&) = delete;
  AsanWindow& operator=(const AsanWindow&) = delete;
  ~AsanWindow() {
    if (on_) AsanPoison(from_, bytes_);
  }

 private:
  const bool on_;
  const void* const from_;
  const size_t bytes_;
};

// The first byte of [from, to) that differs from `byte`, or nullptr.
const char* FirstNotEqual(const char* from, const char* to,
                          unsigned char byte) {
  const char* p = from;
  const uint64_t word = 0x0101010101010101ull * byte;
  while (p < to && Addr(p) % sizeof(uint64_t) != 0) {
    if (static_cast<unsigned char>(*p) != byte) return p;
    ++p;
  }
  for (; p + sizeof(uint64_t) <= to; p += sizeof(uint64_t)) {
    if (*reinterpret_cast<const AliasedWord*>(p) != word) break;
  }
  for (; p < to; ++p) {
    if (static_cast<unsigned char>(*p) != byte) return p;
  }
  return nullptr;
}

void DefaultReportHandler(void*, const HeapReport& report) {
  char line[kHeapReportBytes];
  FormatHeapReportTo(report, line, sizeof(line));
  std::fprintf(stderr, "%s\n", line);
}

}  // namespace

bool CheckFindings::BeginEntry() noexcept {
  ++count_;
  if (named_ == kMaxNamed) return false;
  if (named_++ != 0) Append("; ");
  return true;
}

void CheckFindings::AppendV(const char* format, va_list args) noexcept {
  if (length_ + 1 >= kTextBytes) return;
  const int wrote =
      std::vsnprintf(text_ + length_, kTextBytes - length_, format, args);
  if (wrote < 0) return;
  if (length_ + static_cast<size_t>(wrote) < kTextBytes) {
    length_ += static_cast<size_t>(wrote);
    return;
  }
  // Cut: end the text in "..." so that a reader knows.
  length_ = kTextBytes - 1;
  std::memcpy(text_ + length_ - 3, "...", 3);
}

void CheckFindings::Append(const char* text) noexcept {
  const size_t n = std::strlen(text);
  if (length_ + n < kTextBytes) {
    std::memcpy(text_ + length_, text, n + 1);
    length_ += n;
  } else if (length_ + 1 < kTextBytes) {
    length_ = kTextBytes - 1;
    std::memcpy(text_ + length_ - 3, "...", 4);
  }
}

void CheckFindings::Add(const char* format, ...) noexcept {
  if (!BeginEntry()) return;
  va_list args;
  va_start(args, format);
  AppendV(format, args);
  va_end(args);
}

void CheckFindings::AddWithin(const CheckFindings& inner, const char* format,
                              ...) noexcept {
  if (inner.ok()) return;
  const bool named = BeginEntry();
  count_ += inner.count_ - 1;
  if (!named) return;
  va_list args;
  va_start(args, format);
  AppendV(format, args);
  va_end(args);
  Append(inner.text_);
}

absl::Status CheckFindings::ToStatus() const {
  if (ok()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat(text_, " (", count_, " problem(s) found)"));
}

const size_t Heap::kPoolOverhead = kPoolFixedOverhead;
const size_t Heap::kMinPoolBytes = kPoolFixedOverhead + kMinFreeSpan;
const size_t Heap::kFirstPayloadOffset = sizeof(Pool) + kAlignment;

const char* HeapErrorName(HeapError error) {
  switch (error) {
    case HeapError::kUseAfterFreeWrite:
      return "write to freed memory (use after free)";
    case HeapError::kCanaryDamaged:
      return "canary damaged (overflow past the block's end or underflow "
             "before its start)";
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

size_t DescribeBlockFindingTo(char* buf, size_t n, const char* what,
                              const void* ptr, size_t size,
                              const void* damage) noexcept {
  if (n == 0) return 0;
  int wrote = std::snprintf(buf, n, "%s: %p", what, ptr);
  size_t used = wrote > 0 ? std::min(n - 1, static_cast<size_t>(wrote)) : 0;
  if (size != 0 && used + 1 < n) {
    wrote = std::snprintf(buf + used, n - used, " (%zu bytes)", size);
    if (wrote > 0) used = std::min(n - 1, used + static_cast<size_t>(wrote));
  }
  if (damage != nullptr && used + 1 < n) {
    wrote = std::snprintf(
        buf + used, n - used, ", first damaged byte at %p (offset %lld)",
        damage,
        static_cast<long long>(Addr(damage)) -   // NOLINT(runtime/int)
            static_cast<long long>(Addr(ptr)));  // NOLINT(runtime/int)
    if (wrote > 0) used = std::min(n - 1, used + static_cast<size_t>(wrote));
  }
  return used;
}

std::string FormatHeapReport(const HeapReport& report) {
  char buf[kHeapReportBytes];
  const size_t n = FormatHeapReportTo(report, buf, sizeof(buf));
  return std::string(buf, n);
}

size_t FormatHeapReportTo(const HeapReport& report, char* buf,
                          size_t n) noexcept {
  static constexpr char kPrefix[] = "fmemp tlsf: ";
  constexpr size_t kPrefixBytes = sizeof(kPrefix) - 1;
  if (n <= kPrefixBytes) {
    if (n != 0) buf[0] = '\0';
    return 0;
  }
  std::memcpy(buf, kPrefix, kPrefixBytes);
  return kPrefixBytes +
         DescribeBlockFindingTo(buf + kPrefixBytes, n - kPrefixBytes,
                                HeapErrorName(report.error), report.ptr,
                                report.size, report.damage);
}

// --- Block accessors, generic over the (private) block type ---

namespace {

// Header words are read and written with relaxed atomic accesses. Under the
// heap's lock they compile to plain loads and stores; they are atomic so that
// a front-end may read the span of a block it owns without the lock (see
// Heap::UsableSize) while the heap, under the lock, flips the kPrevFree
// bit of that same word as the block's neighbour is freed or allocated.
template <typename B>
FMEMP_HEAP_NO_ASAN uint64_t LoadWord(const B* b) {
  return __atomic_load_n(&b->word, __ATOMIC_RELAXED);
}
template <typename B>
FMEMP_HEAP_NO_ASAN void StoreWord(B* b, uint64_t word) {
  __atomic_store_n(&b->word, word, __ATOMIC_RELAXED);
}

// The back pointer of a block (the previous block's last word).
template <typename B>
FMEMP_HEAP_NO_ASAN B* PrevPhysical(const B* b) {
  return b->prev_physical;
}
template <typename B>
FMEMP_HEAP_NO_ASAN void SetPrevPhysical(B* b, B* prev) {
  b->prev_physical = prev;
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
bool IsAligned(uintptr_t a) { return a % kAlignment == 0; }
template <typename B>
void* PayloadOf(B* b) {
  return const_cast<char*>(reinterpret_cast<const char*>(b)) + kAlignment;
}
template <typename B>
char* At(B* b, size_t offset) {
  return const_cast<char*>(reinterpret_cast<const char*>(b)) + offset;
}

}  // namespace

Heap::Heap() noexcept {
  const uint64_t serial = heap_serial.fetch_add(1, std::memory_order_relaxed);
  tag_key_ = (Addr(this) * 0xd6e8feb86659fd93ull) ^
             (serial * 0x9e3779b97f4a7c15ull) ^ 0x5bd1e9955bd1e995ull;
  // A second secret for the links, not derivable from a header word.
  uint64_t k = tag_key_ ^ (serial + 0x632be59bd9b4e019ull);
  k = (k ^ (k >> 31)) * 0xbf58476d1ce4e5b9ull;
  link_key_ = (k ^ (k >> 29)) & ~uint64_t{kAlignment - 1};
}

Heap::Heap(const HeapOptions& options) noexcept : Heap() {
  ApplyOptions(options);
}

Heap::~Heap() {
  if ((debug_ & kDebugAsan) == 0) return;
  for (size_t i = 0; i < stats_.pool_count; ++i) {
    const PoolRange& r = pools_[i];
    const uintptr_t begin = r.first - sizeof(Pool);
    AsanUnpoison(reinterpret_cast<void*>(begin), r.last + kAlignment - begin);
  }
}

absl::Status Heap::SetOptions(const HeapOptions& options) {
  if (stats_.pool_count != 0) {
    return absl::FailedPreconditionError(
        "debug options can change only while the heap has no pool");
  }
  ApplyOptions(options);
  return absl::OkStatus();
}

void Heap::ApplyOptions(const HeapOptions& options) noexcept {
  options_ = options;
  debug_ =
      static_cast<uint8_t>((options.poison ? kDebugPoison : 0) |
                           (options.canaries ? kDebugCanaries : 0) |
                           (options.asan && kHeapAsanBuild ? kDebugAsan : 0));
}

FMEMP_HEAP_IMPL uint64_t Heap::MakeWord(const Block* block,
                                        uint64_t rest) const noexcept {
  return block_header::WordFor(Addr(block), tag_key_, rest);
}

FMEMP_HEAP_IMPL bool Heap::IsHeader(const Block* block,
                                    uint64_t word) const noexcept {
  return block_header::IsHeader(word, Addr(block), tag_key_);
}

bool Heap::IsTagged(const Block* block) const noexcept {
  return IsHeader(block, LoadWord(block));
}

void Heap::MarkAbsorbed(Block* block) const {
  // A header merged into a neighbour keeps a tagged, free, zero-span word,
  // so a late free of its old pointer is reported as a double free.
  StoreWord(block, MakeWord(block, kFree));
}

// --- Validation of what pool memory holds ---

const Heap::PoolRange* Heap::SearchRange(uintptr_t address) const noexcept {
  size_t lo = 0;
  size_t hi = stats_.pool_count;  // pools_[lo, hi) may hold it
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (address < pools_[mid].first) {
      hi = mid;
    } else if (address > pools_[mid].last) {
      lo = mid + 1;
    } else {
      return &pools_[mid];
    }
  }
  return nullptr;
}

const Heap::PoolRange* Heap::RangeOfPool(const Pool* pool) const noexcept {
  const uintptr_t first = Addr(pool) + sizeof(Pool);
  const PoolRange* const r = SearchRange(first);
  return r != nullptr && r->first == first ? r : nullptr;
}

FMEMP_HEAP_IMPL Heap::Block* Heap::LoadLink(const Block* block,
                                            size_t offset) const noexcept {
  const char* const slot = reinterpret_cast<const char*>(block) + offset;
  return reinterpret_cast<Block*>(LoadRaw(slot) ^ link_key_ ^
                                  (Addr(slot) >> 3));
}

FMEMP_HEAP_IMPL void Heap::StoreLink(Block* block, size_t offset,
                                     const Block* target) const noexcept {
  char* const slot = reinterpret_cast<char*>(block) + offset;
  StoreRaw(slot, Addr(target) ^ link_key_ ^ (Addr(slot) >> 3));
}

FMEMP_HEAP_IMPL bool Heap::LinkLeadsBack(const Block* target,
                                         size_t back_offset,
                                         const Block* from) const noexcept {
  const uintptr_t a = Addr(target);
  if (!IsAligned(a)) return false;
  const PoolRange* const r = RangeFor(a);
  // Room for a free block's header and links before the end sentinel.
  return r != nullptr && r->last - a >= kMinFreeSpan &&
         LoadLink(target, back_offset) == from;
}

FMEMP_HEAP_IMPL Heap::Block* Heap::ValidPrev(
    const Block* block, const PoolRange& r,
    uint64_t* prev_word) const noexcept {
  Block* const prev = PrevPhysical(block);
  const uintptr_t a = Addr(prev);
  if (a - r.first >= Addr(block) - r.first || !IsAligned(a)) return nullptr;
  const uint64_t word = LoadWord(prev);
  if ((word & (kFree | kLost)) != kFree || !IsHeader(prev, word) ||
      a + (word & kSpanMask) != Addr(block)) {
    return nullptr;
  }
  *prev_word = word;
  return prev;
}

Heap::Block* Heap::FirstBlockOf(const Pool* pool) {
  return reinterpret_cast<Block*>(
      const_cast<char*>(reinterpret_cast<const char*>(pool)) + sizeof(Pool));
}

// --- Free lists ---
//
// The hot path's helpers below are FMEMP_HEAP_IMPL (always inlined): each
// allocation or free then runs as one straight-line function with the
// header words it needs loaded once.

FMEMP_HEAP_IMPL Heap::Block*& Heap::ListHead(Bin bin) noexcept {
  // Unsigned indices: a bin is never negative, and the compiler then needs
  // no sign extension.
  return free_lists_[static_cast<unsigned>(bin.first)]
                    [static_cast<unsigned>(bin.second)];
}

FMEMP_HEAP_IMPL void Heap::InsertFree(Block* block, size_t span) noexcept {
  const Bin bin = BinForSpan(span);
  Block*& head = ListHead(bin);
  Block* const old_head = head;
  StoreLink(block, kNextFreeOffset, old_head);
  StoreLink(block, kPrevFreeOffset, nullptr);
  // The old head is a block the heap listed itself: its slot is its own.
  if (old_head != nullptr) StoreLink(old_head, kPrevFreeOffset, block);
  head = block;
  first_level_bitmap_ |= 1u << bin.first;
  second_level_bitmap_[static_cast<unsigned>(bin.first)] |= 1u << bin.second;
}

FMEMP_HEAP_IMPL void Heap::UnlinkHead(Block* next, Bin bin) noexcept {
  ListHead(bin) = next;
  if (next != nullptr) return;
  uint32_t& second_map = second_level_bitmap_[static_cast<unsigned>(bin.first)];
  second_map &= ~(1u << bin.second);
  if (second_map == 0) first_level_bitmap_ &= ~(1u << bin.first);
}

FMEMP_HEAP_IMPL bool Heap::RemoveFree(Block* block, size_t span) noexcept {
  if (span < kMinFreeSpan) return true;  // fragments are never listed
  Block* const next = LoadLink(block, kNextFreeOffset);
  Block* const prev = LoadLink(block, kPrevFreeOffset);
  // Write only into blocks that name this one back.
  if (next != nullptr && !LinkLeadsBack(next, kPrevFreeOffset, block)) {
    return false;
  }
  if (prev != nullptr) {
    if (!LinkLeadsBack(prev, kNextFreeOffset, block)) return false;
    StoreLink(prev, kNextFreeOffset, next);
  } else {
    const Bin bin = BinForSpan(span);  // the bin only for a list's head
    if (ListHead(bin) != block) return false;
    UnlinkHead(next, bin);
  }
  if (next != nullptr) StoreLink(next, kPrevFreeOffset, prev);
  return true;
}

template <bool kDebug>
FMEMP_HEAP_IMPL Heap::Block* Heap::TakeFreeBlockImpl(size_t span) noexcept {
  const size_t search = RoundUpToBinStart(span);
  if (search < kMaxSpan) {
    const Bin bin = BinForSpan(search);
    int first = bin.first;
    uint32_t second_map = second_level_bitmap_[static_cast<unsigned>(first)] &
                          (~0u << bin.second);
    if (second_map == 0) {
      // The shift is by at most 32: kFirstLevelCount <= 32 and first + 1
      // <= kFirstLevelCount, done in 64 bits so that 32 clears every bit.
      const uint32_t first_map = static_cast<uint32_t>(
          first_level_bitmap_ & (~uint64_t{0} << (first + 1)));
      if (first_map != 0) {
        first = __builtin_ctz(first_map);
        second_map = second_level_bitmap_[static_cast<unsigned>(first)];
      }
    }
    if (second_map != 0) {
      const Bin found{first, __builtin_ctz(second_map)};
      Block* block = ListHead(found);
      if constexpr (kDebug) {
        // A rebuild keeps the block listed in the same bin.
        if (EnsureLinks(block)) block = ListHead(found);
      }
      // The head is a pointer the heap stored; its header and its link are
      // pool memory, checked before use.
      const uint64_t word = LoadWord(block);
      const PoolRange* const r = RangeFor(Addr(block));
      Block* const next = LoadLink(block, kNextFreeOffset);
      if (__builtin_expect(r != nullptr && (word & (kFree | kLost)) == kFree &&
                               IsHeader(block, word) &&
                               (word & kSpanMask) >= search &&
                               (word & kSpanMask) <= r->last - Addr(block) &&
                               (next == nullptr ||
                                LinkLeadsBack(next, kPrevFreeOffset, block)),
                           1)) {
        if (next != nullptr) StoreLink(next, kPrevFreeOffset, nullptr);
        UnlinkHead(next, found);
        return block;
      }
      return TakeAfterDrop(span, found, kDebug);
    }
  }
  if (search == span) return nullptr;
  return TakeFromOwnBin(span, kDebug);
}

Heap::Block* Heap::TakeAfterDrop(size_t span, Bin damaged,
                                 bool debug) noexcept {
  // Each call empties one bin, so the search ends after at most one call
  // per bin.
  DropList(damaged);
  return debug ? TakeFreeBlockImpl<true>(span) : TakeFreeBlockImpl<false>(span);
}

Heap::Block* Heap::TakeFromOwnBin(size_t span, bool debug) noexcept {
  // Good fit failed; blocks in the request's own bin may still be big enough.
  const Bin own = BinForSpan(span);
  Block* block = free_lists_[own.first][own.second];
  for (int i = 0; block != nullptr && i < kFallbackScan; ++i) {
    // Follow only links that check out; after a rebuild they all do.
    if (debug && EnsureLinks(block)) {
      block = free_lists_[own.first][own.second];
      i = -1;
      continue;
    }
    const uint64_t word = LoadWord(block);
    const PoolRange* const r = RangeFor(Addr(block));
    const size_t have = word & kSpanMask;
    if (r == nullptr || (word & (kFree | kLost)) != kFree ||
        !IsHeader(block, word) || have > r->last - Addr(block) ||
        BinForSpan(have) != own) {
      DropList(own);
      return nullptr;
    }
    if (have >= span) {
      if (!RemoveFree(block, have)) {
        DropList(own);
        return nullptr;
      }
      return block;
    }
    Block* const next = LoadLink(block, kNextFreeOffset);
    if (next != nullptr && !LinkLeadsBack(next, kPrevFreeOffset, block)) {
      DropList(own);
      return nullptr;
    }
    block = next;
  }
  return nullptr;
}

void Heap::DropList(Bin bin) noexcept {
  Block* block = ListHead(bin);
  ListHead(bin) = nullptr;
  UnlinkHead(nullptr, bin);
  // Relist what checks out, up to the damage; any list longer than this has
  // a cycle (which links that lead back cannot form, but the walk is
  // bounded whatever the memory holds).
  size_t steps = Stats().free_bytes / kMinFreeSpan + 1;
  while (block != nullptr && steps-- != 0) {
    const uint64_t word = LoadWord(block);
    const PoolRange* const r = RangeFor(Addr(block));
    const size_t span = word & kSpanMask;
    const bool intact = r != nullptr && IsHeader(block, word) &&
                        span >= kMinFreeSpan && span <= r->last - Addr(block);
    if (intact && (word & kLost) != 0) {
      // Taken out of service while listed (Lose): already counted and
      // reported. Its links were left alone; walk on past it.
      Block* const next = LoadLink(block, kNextFreeOffset);
      if (next != nullptr && !LinkLeadsBack(next, kPrevFreeOffset, block)) {
        return;
      }
      block = next;
      continue;
    }
    if (!intact || (word & kFree) == 0 || BinForSpan(span) != bin) {
      // A damaged header: its span is unknown, so it is not merged, listed
      // or handed out again (nothing that checks headers accepts it).
      ++stats_.lost_blocks;
      ReportCorrupt(PayloadOf(block));
      return;
    }
    Block* const next = LoadLink(block, kNextFreeOffset);
    if (next != nullptr && !LinkLeadsBack(next, kPrevFreeOffset, block)) {
      Lose(block, word);  // its link is damaged; what it leads to is unknown
      return;
    }
    InsertFree(block, span);
    block = next;
  }
}

void Heap::Lose(Block* block, uint64_t word) noexcept {
  const size_t span = word & kSpanMask;
  StoreWord(block, MakeWord(block, (word & ~(kTagMask | kFree)) | kLost));
  Block* const next = Offset(block, span);
  const uint64_t next_word = LoadWord(next);
  if ((next_word & kPrevFree) != 0 && IsHeader(next, next_word)) {
    StoreWord(next, MakeWord(next, next_word & ~(kTagMask | kPrevFree)));
  }
  stats_.lost_bytes += span;
  ++stats_.lost_blocks;
  ReportCorrupt(PayloadOf(block));
}

// --- Accounting ---

void Heap::AddUsed(size_t span) noexcept {
  stats_.used_bytes += span;
  UpdatePeak();
}

void Heap::UpdatePeak() noexcept {
  stats_.peak_used_bytes = std::max(stats_.peak_used_bytes, stats_.used_bytes);
}

void Heap::SubUsed(size_t span) noexcept { stats_.used_bytes -= span; }

void Heap::Report(HeapError error, const void* ptr) noexcept {
  HeapReport report;
  report.error = error;
  report.ptr = ptr;
  Report(report);
}

void Heap::Report(const HeapReport& report) noexcept {
  ++stats_.invalid_frees;
  if (report_handler_ != nullptr) {
    report_handler_(error_context_, report);
  } else if (error_handler_ != nullptr) {
    error_handler_(error_context_, report.error, report.ptr);
  } else {
    DefaultReportHandler(nullptr, report);
  }
}

void Heap::SetErrorHandler(HeapErrorHandler handler, void* context) noexcept {
  error_handler_ = handler;
  report_handler_ = nullptr;
  error_context_ = context;
}

void Heap::SetReportHandler(HeapReportHandler handler, void* context) noexcept {
  report_handler_ = handler;
  error_handler_ = nullptr;
  error_context_ = context;
}

// --- Block transitions ---
//
// Each transition reads a header word once and derives the word it stores
// from it. Every stored header word gets its tag recomputed (MakeWord): the
// tag covers the whole word. A neighbour's header is rewritten only when it
// validates, so that a damaged word is never given a valid tag back.

template <bool kDebug>
FMEMP_HEAP_IMPL void* Heap::UseBlockImpl(Block* block, size_t span,
                                         int alignment_log2,
                                         const char* verify_from) noexcept {
  // The caller validated the header and its span against the pool.
  const uint64_t word = LoadWord(block);
  size_t have = word & kSpanMask;
  if constexpr (kDebug) {
    // What is handed out, and the head of a split-off rest, which the rest's
    // header and links overwrite.
    if ((debug_ & kDebugPoison) != 0) {
      const size_t end =
          have - span >= kMinFreeSpan ? span + kPoisonOffset : have;
      VerifyFree(block, verify_from, At(block, end));
    }
  } else {
    (void)verify_from;
  }
  Block* const next = Offset(block, have);
  if (have - span >= kMinFreeSpan) {
    Block* const rest = Offset(block, span);
    StoreWord(rest, MakeWord(rest, (have - span) | kFree));
    SetPrevPhysical(next, rest);  // next keeps kPrevFree
    InsertFree(rest, have - span);
    have = span;
  } else {
    const uint64_t next_word = LoadWord(next);
    if (IsHeader(next, next_word)) {
      StoreWord(next, MakeWord(next, next_word & ~(kTagMask | kPrevFree)));
    }
  }
  StoreWord(block, MakeWord(block, (word & kPrevFree) | have |
                                       (static_cast<uint64_t>(alignment_log2)
                                        << kAlignShift)));
  AddUsed(have);
  ++stats_.live_blocks;
  return PayloadOf(block);
}

template <bool kDebug>
FMEMP_HEAP_IMPL void Heap::ReleaseFreeImpl(Block* block,
                                           uint64_t word) noexcept {
  size_t span = word & kSpanMask;
  uint64_t prev_free = word & kPrevFree;
  const bool poison = kDebug && (debug_ & kDebugPoison) != 0;
  if (poison) FillFree(At(block, kAlignment), At(block, span));
  if (prev_free != 0) {
    // Validated by the caller (ValidPrev).
    Block* const prev = PrevPhysical(block);
    const uint64_t prev_word = LoadWord(prev);
    const size_t prev_span = prev_word & kSpanMask;
    if (poison) {
      VerifyFree(prev, At(prev, kPoisonOffset),
                 At(prev, std::max(kPoisonOffset,
                                   std::min(prev_span, kPoisonOffset +
                                                           kMergeCheckBytes))));
    }
    if (__builtin_expect(RemoveFree(prev, prev_span), 1)) {
      if (poison) FillFree(At(block, 0), At(block, kBlockOverhead));
      // A header merged into a neighbour keeps a tagged, free, zero-span
      // word, so a late free of its old pointer reads as a double free.
      MarkAbsorbed(block);
      block = prev;
      span += prev_span;
      prev_free = prev_word & kPrevFree;
    } else {
      Lose(prev, prev_word);
      prev_free = 0;
    }
  }
  // The successor's header was validated by the caller.
  Block* next = Offset(block, span);
  uint64_t next_word = LoadWord(next);
  bool next_valid = true;
  if ((next_word & (kFree | kLost)) == kFree) {
    const size_t next_span = next_word & kSpanMask;
    const PoolRange* const r = RangeFor(Addr(next));
    if (next_span != 0 && r != nullptr && next_span <= r->last - Addr(next)) {
      if (poison) {
        VerifyFree(
            next, At(next, kPoisonOffset),
            At(next, std::max(kPoisonOffset,
                              std::min(next_span,
                                       kPoisonOffset + kMergeCheckBytes))));
      }
      if (__builtin_expect(RemoveFree(next, next_span), 1)) {
        if (poison) {
          FillFree(At(next, 0), At(next, kBlockOverhead));
          if (next_span >= kMinFreeSpan) {
            FillFree(At(next, kNextFreeOffset), At(next, kPoisonOffset));
          }
        }
        MarkAbsorbed(next);
        span += next_span;
        next = Offset(block, span);
        next_word = LoadWord(next);
        next_valid = IsHeader(next, next_word);
      } else {
        Lose(next, next_word);
        next_word = LoadWord(next);
      }
    }
  }
  SetPrevPhysical(next, block);
  if (next_valid) {
    StoreWord(next, MakeWord(next, (next_word & ~kTagMask) | kPrevFree));
  }
  StoreWord(block, MakeWord(block, span | kFree | prev_free));
  if (span >= kMinFreeSpan) InsertFree(block, span);
}

template <bool kDebug>
FMEMP_HEAP_IMPL void Heap::ShrinkLiveImpl(Block* block, size_t span) noexcept {
  // The caller validated the block and its successor.
  const uint64_t word = LoadWord(block);
  const size_t have = word & kSpanMask;
  if (have - span < kMinFreeSpan) return;
  StoreWord(block, MakeWord(block, (word & ~(kTagMask | kSpanMask)) | span));
  SubUsed(have - span);
  // The tail's previous block (this one) is live.
  ReleaseFreeImpl<kDebug>(Offset(block, span), (have - span) | kFree);
}

void Heap::ShrinkLive(Block* block, size_t span) noexcept {
  ShrinkLiveImpl<false>(block, span);
}
void Heap::DebugShrinkLive(Block* block, size_t span) noexcept {
  ShrinkLiveImpl<true>(block, span);
}

template <bool kDebug>
FMEMP_HEAP_IMPL void Heap::FreeBlockImpl(Block* block, uint64_t word) noexcept {
  const size_t span = word & kSpanMask;
  if constexpr (kDebug) {
    if ((debug_ & kDebugAsan) != 0)
      AsanPoison(PayloadOf(block), UsableBytes(span));
  }
  SubUsed(span);
  --stats_.live_blocks;
  ReleaseFreeImpl<kDebug>(block, (word & (kSpanMask | kPrevFree)) | kFree);
}

void Heap::ReportInvalidFree(const void* ptr) noexcept {
  Report(HeapError::kInvalidFree, ptr);
}
void Heap::ReportDoubleFree(const void* ptr) noexcept {
  Report(HeapError::kDoubleFree, ptr);
}
void Heap::ReportCorrupt(const void* ptr) noexcept {
  Report(HeapError::kCorruptHeap, ptr);
}

void Heap::ReportBadHeader(const void* ptr, const Block* block,
                           const PoolRange& range) noexcept {
  // Is `block` where a block starts? Walk the pool's intact headers.
  uintptr_t at = range.first;
  while (at < Addr(block)) {
    const Block* const b = reinterpret_cast<const Block*>(at);
    const uint64_t word = LoadWord(b);
    const size_t span = word & kSpanMask;
    if (!IsHeader(b, word) || span == 0 || span > range.last - at) break;
    at += span;
  }
  if (at == Addr(block)) {
    ReportCorrupt(ptr);
  } else {
    ReportInvalidFree(ptr);
  }
}

template <bool kDebug>
FMEMP_HEAP_IMPL Heap::Block* Heap::LiveBlockOrReportImpl(
    const void* ptr, uint64_t* word_out) noexcept {
  const size_t head = kDebug ? HeadBytes() : 0;
  const uintptr_t address = Addr(ptr) - kAlignment - head;
  // Never read outside this heap's pools; the end sentinel is no block.
  const PoolRange* const r = RangeFor(address);
  if (!IsAligned(Addr(ptr)) || r == nullptr || address == r->last) {
    ReportInvalidFree(ptr);
    return nullptr;
  }
  Block* const block = reinterpret_cast<Block*>(address);
  const uint64_t word = LoadWord(block);
  if (!IsHeader(block, word)) {
    ReportBadHeader(ptr, block, *r);
    return nullptr;
  }
  if ((word & (kFree | kLost)) != 0) {
    ReportDoubleFree(ptr);
    return nullptr;
  }
  const size_t span = word & kSpanMask;
  if (span < kMinFreeSpan || span > r->last - address) {
    ReportCorrupt(ptr);
    return nullptr;
  }
  if constexpr (kDebug) {
    // The canaries first: an overflow that reached the next header went
    // through the tail canary, and this report says more.
    if ((debug_ & kDebugCanaries) != 0) {
      HeapReport report;
      report.damage = CanaryDamage(block, &report.size);
      if (report.damage != nullptr) {
        report.error = HeapError::kCanaryDamaged;
        report.ptr = ptr;
        Report(report);
        return nullptr;
      }
    }
  }
  const Block* const next = Offset(block, span);
  if (!block_header::IsIntactSuccessor(LoadWord(next), Addr(next), tag_key_)) {
    ReportCorrupt(ptr);
    return nullptr;
  }
  if constexpr (kDebug) {
    // Repairs what poisoning can: a damaged back pointer or link of a free
    // neighbour is reported as a write after free and mended first.
    if ((debug_ & kDebugPoison) != 0) EnsureNeighbourLinks(block);
  }
  if ((word & kPrevFree) != 0) {
    uint64_t prev_word;
    if (ValidPrev(block, *r, &prev_word) == nullptr) {
      ReportCorrupt(ptr);
      return nullptr;
    }
  }
  *word_out = word;
  return block;
}

Heap::Block* Heap::DebugLiveBlockOrReport(const void* ptr,
                                          uint64_t* word) noexcept {
  return LiveBlockOrReportImpl<true>(ptr, word);
}

// --- Hot path ---
//
// Each entry point tests debug_ once; with every mode off that is the only
// difference from a heap without debug modes.

void* Heap::Allocate(size_t bytes) noexcept {
  if (__builtin_expect(debug_ != 0, 0)) {
    return DebugAllocate(kAlignment, bytes);
  }
  const size_t span = SpanForRequest(bytes);
  Block* const block = span != 0 ? TakeFreeBlockImpl<false>(span) : nullptr;
  if (__builtin_expect(block == nullptr, 0)) {
    NoteFailure();
    return nullptr;
  }
  return UseBlockImpl<false>(block, span, 0, nullptr);
}

template <bool kDebug>
FMEMP_HEAP_IMPL void* Heap::PlaceAlignedImpl(size_t span, size_t alignment,
                                             size_t head) noexcept {
  if constexpr (!kDebug) head = 0;
  // The payload of any block is kAlignment-aligned, so at most
  // alignment - kAlignment bytes of padding are needed in front.
  const size_t search = span + alignment - kAlignment;
  Block* block = nullptr;
  if (span != 0 && search < kMaxSpan) {
    block = TakeFreeBlockImpl<kDebug>(search);
  }
  if (block == nullptr) {
    NoteFailure();
    return nullptr;
  }
  const uintptr_t payload = Addr(PayloadOf(block)) + head;
  const size_t gap = AlignUp(payload, alignment) - payload;
  const char* verify_from = At(block, kPoisonOffset);
  if (gap != 0) {
    // Split the padding off as a free block of its own; the rest keeps the
    // aligned payload.
    Block* const lead = block;
    const uint64_t lead_word = LoadWord(lead);
    const size_t total = lead_word & kSpanMask;
    block = Offset(lead, gap);
    if constexpr (kDebug) {
      // The new header and back pointer overwrite poison unless the lead
      // is a fragment (they then overwrite the lead's links); the new
      // block's links were poison.
      if ((debug_ & kDebugPoison) != 0 && gap >= kMinFreeSpan) {
        VerifyFree(lead, At(block, 0), At(block, kAlignment));
      }
      verify_from = At(block, kAlignment);
    }
    StoreWord(lead, MakeWord(lead, gap | kFree | (lead_word & kPrevFree)));
    SetPrevPhysical(block, lead);
    StoreWord(block, MakeWord(block, (total - gap) | kFree | kPrevFree));
    SetPrevPhysical(Offset(lead, total), block);
    if (gap >= kMinFreeSpan) InsertFree(lead, gap);
  }
  return UseBlockImpl<kDebug>(block, span, FloorLog2(alignment), verify_from);
}

void* Heap::AllocateAligned(size_t alignment, size_t bytes) noexcept {
  if (__builtin_expect(debug_ != 0, 0)) return DebugAllocate(alignment, bytes);
  if (!IsPowerOfTwo(alignment) || alignment > kMaxAlignment) {
    NoteFailure();
    return nullptr;
  }
  if (alignment <= kAlignment) return Allocate(bytes);
  return PlaceAlignedImpl<false>(SpanForRequest(bytes), alignment, 0);
}

bool Heap::Free(void* ptr) noexcept {
  if (__builtin_expect(debug_ != 0, 0)) return DebugFree(ptr);
  if (ptr == nullptr) return true;
  uint64_t word;
  Block* const block = LiveBlockOrReportImpl<false>(ptr, &word);
  if (__builtin_expect(block == nullptr, 0)) return false;
  FreeBlockImpl<false>(block, word);
  return true;
}

void* Heap::Reallocate(void* ptr, size_t bytes) noexcept {
  if (__builtin_expect(debug_ != 0, 0)) return DebugReallocate(ptr, bytes);
  if (ptr == nullptr) return Allocate(bytes);
  uint64_t word;
  Block* const block = LiveBlockOrReportImpl<false>(ptr, &word);
  if (block == nullptr) return nullptr;
  if (bytes == 0) {
    FreeBlockImpl<false>(block, word);
    return nullptr;
  }
  const size_t want = SpanForRequest(bytes);
  if (want == 0) {
    NoteFailure();
    return nullptr;
  }
  const size_t have = word & kSpanMask;
  if (want <= have) {
    ShrinkLive(block, want);
    return ptr;
  }
  if (GrowInPlace(block, word, want)) {
    ShrinkLive(block, want);
    UpdatePeak();
    return ptr;
  }
  const int alignment_log2 =
      static_cast<int>((word & kAlignMask) >> kAlignShift);
  void* const moved = alignment_log2 != 0
                          ? AllocateAligned(size_t{1} << alignment_log2, bytes)
                          : Allocate(bytes);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, ptr, std::min(UsableBytes(have), bytes));
  // The allocation may have changed the block's kPrevFree bit, and the
  // checks are repeated: Free reports what changed since.
  Free(ptr);
  return moved;
}

bool Heap::GrowInPlace(Block* block, uint64_t word, size_t want) noexcept {
  const size_t have = word & kSpanMask;
  Block* const next = Offset(block, have);
  const uint64_t next_word = LoadWord(next);  // validated: a header
  if ((next_word & (kFree | kLost)) != kFree) return false;
  const size_t gained = next_word & kSpanMask;
  const PoolRange* const r = RangeFor(Addr(next));
  if (r == nullptr || gained == 0 || gained > r->last - Addr(next) ||
      have + gained < want) {
    return false;
  }
  // The block's new successor must be intact: the tail given back after
  // the grow is merged with it without a second check.
  Block* const after = Offset(block, have + gained);
  const uint64_t after_word = LoadWord(after);
  if (!IsHeader(after, after_word)) return false;
  if (!RemoveFree(next, gained)) {
    Lose(next, next_word);
    return false;
  }
  MarkAbsorbed(next);
  StoreWord(block, MakeWord(block, (word & ~(kTagMask | kSpanMask)) |
                                       (have + gained)));
  StoreWord(after, MakeWord(after, after_word & ~(kTagMask | kPrevFree)));
  // Count the absorbed block as used; the caller gives back the tail, and
  // only then updates the peak, which must not see the transient total.
  stats_.used_bytes += gained;
  return true;
}

size_t Heap::BlockSpan(const void* ptr) const noexcept {
  if (UsableSize(ptr) == 0) return 0;
  return SpanOf(reinterpret_cast<const Block*>(static_cast<const char*>(ptr) -
                                               kAlignment - HeadBytes()));
}

size_t Heap::BlockAlignment(const void* ptr) const noexcept {
  if (UsableSize(ptr) == 0) return 0;
  const Block* const block = reinterpret_cast<const Block*>(
      static_cast<const char*>(ptr) - kAlignment - HeadBytes());
  const int log2 =
      static_cast<int>((LoadWord(block) & kAlignMask) >> kAlignShift);
  return log2 == 0 ? kAlignment : size_t{1} << log2;
}

// --- Debug modes ---

namespace {

// Under canaries, whether `bytes` (the requested size in a block's head) is
// the size the block's span was laid out for: a block keeps a tail only if
// it is too small to split off.
bool CanarySizeFits(uint64_t bytes, size_t span) {
  if (bytes == 0 || bytes > kMaxRequest - Heap::kCanaryExtraBytes) {
    return false;
  }
  const size_t want = SpanForRequest(bytes + Heap::kCanaryExtraBytes);
  return want <= span && span - want < kMinFreeSpan;
}

}  // namespace

uint64_t Heap::HeadCanary(const void* payload) const noexcept {
  uint64_t h = (Addr(payload) ^ tag_key_ ^ 0x2545f4914f6cdd1dull) *
               0xc4ceb9fe1a85ec53ull;
  h ^= h >> 29;
  return h & ~kTagLowBit;  // never a header
}

void Heap::WriteCanaries(Block* block, size_t bytes) noexcept {
  char* const payload = At(block, kAlignment);
  StoreRaw(payload, bytes);
  StoreRaw(payload + kBlockOverhead, HeadCanary(payload));
  char* const tail = payload + kCanaryHeadBytes + bytes;
  char* const end = payload + UsableBytes(SpanOf(block));
  AsanWindow window((debug_ & kDebugAsan) != 0, tail, end);
  std::memset(tail, kCanaryByte, end - tail);
}

const char* Heap::CanaryDamage(const Block* block,
                               size_t* size) const noexcept {
  const char* const payload = At(block, kAlignment);
  const size_t span = SpanOf(block);
  const uint64_t bytes = LoadRaw(payload);
  *size = 0;
  if (!CanarySizeFits(bytes, span)) return payload;
  const uint64_t expected = HeadCanary(payload);
  const uint64_t found = LoadRaw(payload + kBlockOverhead);
  *size = bytes;
  if (found != expected) {
    // x86-64 is little-endian: the lowest differing byte is the first.
    return payload + kBlockOverhead + __builtin_ctzll(found ^ expected) / 8;
  }
  const char* const tail = payload + kCanaryHeadBytes + bytes;
  const char* const end = payload + UsableBytes(span);
  AsanWindow window((debug_ & kDebugAsan) != 0, tail, end);
  return FirstNotEqual(tail, end, kCanaryByte);
}

const char* Heap::PoisonDamage(const char* from,
                               const char* to) const noexcept {
  if (from >= to) return nullptr;
  AsanWindow window((debug_ & kDebugAsan) != 0, from, to);
  for (const char* p = from; p < to; p += sizeof(uint64_t)) {
    const uint64_t word = *reinterpret_cast<const AliasedWord*>(p);
    if (word == kFreeWord) continue;
    if (Addr(p) % kAlignment == kBlockOverhead &&
        word == MakeWord(reinterpret_cast<const Block*>(p - kBlockOverhead),
                         kFree)) {
      continue;  // the header of a block merged away (MarkAbsorbed)
    }
    return p + __builtin_ctzll(word ^ kFreeWord) / 8;
  }
  return nullptr;
}

void Heap::FillFree(char* from, char* to) const noexcept {
  if (from >= to) return;
  AsanWindow window((debug_ & kDebugAsan) != 0, from, to);
  std::memset(from, kFreePattern, to - from);
}

void Heap::VerifyFree(const Block* owner, const char* from,
                      const char* to) noexcept {
  if ((debug_ & kDebugPoison) == 0) return;
  const char* const damage = PoisonDamage(from, to);
  if (damage == nullptr) return;
  HeapReport report;
  report.error = HeapError::kUseAfterFreeWrite;
  report.ptr = At(owner, kAlignment);
  report.size = UsableBytes(SpanOf(owner));
  report.damage = damage;
  Report(report);
  // Reported once: the bytes are handed out, overwritten or repaired now.
  FillFree(const_cast<char*>(from), const_cast<char*>(to));
}

bool Heap::IsListedIn(const Block* block, Bin bin) const noexcept {
  if (block == nullptr || !IsAligned(Addr(block))) return false;
  const PoolRange* const r = RangeFor(Addr(block));
  if (r == nullptr || r->last - Addr(block) < kMinFreeSpan) return false;
  const uint64_t word = LoadWord(block);
  if (!IsHeader(block, word) || (word & (kFree | kLost)) != kFree) {
    return false;
  }
  const size_t span = word & kSpanMask;
  return span >= kMinFreeSpan && span <= r->last - Addr(block) &&
         BinForSpan(span) == bin;
}

const char* Heap::LinkDamage(const Block* block) const noexcept {
  const Bin bin = BinForSpan(SpanOf(block));
  const Block* const next = LoadLink(block, kNextFreeOffset);
  if (next != nullptr &&
      !(IsListedIn(next, bin) && LoadLink(next, kPrevFreeOffset) == block)) {
    return At(block, kNextFreeOffset);
  }
  const Block* const prev = LoadLink(block, kPrevFreeOffset);
  const bool prev_ok =
      prev == nullptr
          ? free_lists_[bin.first][bin.second] == block
          : IsListedIn(prev, bin) && LoadLink(prev, kNextFreeOffset) == block;
  return prev_ok ? nullptr : At(block, kPrevFreeOffset);
}

bool Heap::EnsureLinks(Block* block) noexcept {
  if ((debug_ & kDebugPoison) == 0 || SpanOf(block) < kMinFreeSpan ||
      !IsTagged(block)) {
    return false;  // a damaged header is the hot path's to handle
  }
  const char* const damage = LinkDamage(block);
  if (damage == nullptr) return false;
  HeapReport report;
  report.error = HeapError::kUseAfterFreeWrite;
  report.ptr = PayloadOf(block);
  report.size = UsableBytes(SpanOf(block));
  report.damage = damage;
  Report(report);
  RebuildFreeLists();
  return true;
}

void Heap::EnsureNeighbourLinks(Block* block) noexcept {
  // REQUIRES: block's header and span validated (LiveBlockOrReport).
  const PoolRange* const r = RangeFor(Addr(block));
  if (r != nullptr && IsPrevFree(block)) {
    uint64_t prev_word;
    Block* prev = ValidPrev(block, *r, &prev_word);
    if (prev == nullptr) {
      // The back pointer is the last word of the free block before: find
      // that block by walking the pool, and repair the pointer.
      Block* walk = reinterpret_cast<Block*>(r->first);
      Block* found = nullptr;
      while (Addr(walk) < Addr(block) && IsTagged(walk) && SpanOf(walk) != 0 &&
             SpanOf(walk) <= r->last - Addr(walk)) {
        if (NextOf(walk) == block) {
          found = walk;
          break;
        }
        walk = NextOf(walk);
      }
      if (found != nullptr && IsFree(found) && (LoadWord(found) & kLost) == 0) {
        HeapReport report;
        report.error = HeapError::kUseAfterFreeWrite;
        report.ptr = PayloadOf(found);
        report.size = UsableBytes(SpanOf(found));
        report.damage = block;
        Report(report);
        SetPrevPhysical(block, found);
        prev = found;
      } else {
        prev = nullptr;  // ReleaseFree reports the damaged header
      }
    }
    if (prev != nullptr) EnsureLinks(prev);
  }
  Block* const next = NextOf(block);
  if (IsTagged(next) && IsFree(next)) EnsureLinks(next);
}

void Heap::RebuildFreeLists() noexcept {
  first_level_bitmap_ = 0;
  for (int first = 0; first < kFirstLevelCount; ++first) {
    second_level_bitmap_[first] = 0;
    for (int second = 0; second < kSecondLevelCount; ++second) {
      free_lists_[first][second] = nullptr;
    }
  }
  for (size_t i = 0; i < stats_.pool_count; ++i) {
    const PoolRange& r = pools_[i];
    Block* block = reinterpret_cast<Block*>(r.first);
    while (Addr(block) < r.last && IsTagged(block) && SpanOf(block) != 0) {
      const size_t span = SpanOf(block);
      if (span > r.last - Addr(block)) break;
      if ((LoadWord(block) & (kFree | kLost)) == kFree &&
          span >= kMinFreeSpan) {
        InsertFree(block, span);
      }
      block = Offset(block, span);
    }
  }
}

void* Heap::FinishBlock(void* payload, size_t bytes,
                        size_t fresh_from) noexcept {
  Block* const block =
      reinterpret_cast<Block*>(static_cast<char*>(payload) - kAlignment);
  const size_t usable = UsableBytes(SpanOf(block));
  const bool canaries = (debug_ & kDebugCanaries) != 0;
  char* const user = static_cast<char*>(payload) + HeadBytes();
  const size_t size = canaries ? bytes : usable;
  if ((debug_ & kDebugAsan) != 0) {
    AsanPoison(payload, usable);
    AsanUnpoison(user, size);
  }
  if ((debug_ & kDebugPoison) != 0 && fresh_from < size) {
    std::memset(user + fresh_from, kAllocPattern, size - fresh_from);
  }
  if (canaries) WriteCanaries(block, bytes);
  return user;
}

void* Heap::DebugAllocate(size_t alignment, size_t bytes) noexcept {
  if (!IsPowerOfTwo(alignment) || alignment > kMaxAlignment) {
    NoteFailure();
    return nullptr;
  }
  size_t span;
  if ((debug_ & kDebugCanaries) != 0) {
    bytes = std::max<size_t>(bytes, 1);  // UsableSize 0 means "not a block"
    span = bytes <= kMaxRequest - kCanaryExtraBytes
               ? SpanForRequest(bytes + kCanaryExtraBytes)
               : 0;
  } else {
    span = SpanForRequest(bytes);
  }
  void* payload;
  if (alignment <= kAlignment) {
    Block* const block = span != 0 ? TakeFreeBlockImpl<true>(span) : nullptr;
    if (block == nullptr) {
      NoteFailure();
      return nullptr;
    }
    payload = UseBlockImpl<true>(block, span, 0, At(block, kPoisonOffset));
  } else {
    payload = PlaceAlignedImpl<true>(span, alignment, HeadBytes());
    if (payload == nullptr) return nullptr;  // counted
  }
  return FinishBlock(payload, bytes, 0);
}

bool Heap::DebugFree(void* ptr) noexcept {
  if (ptr == nullptr) return true;
  uint64_t word;
  Block* const block = DebugLiveBlockOrReport(ptr, &word);
  if (block == nullptr) return false;
  FreeBlockImpl<true>(block, word);
  return true;
}

void* Heap::DebugReallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return DebugAllocate(kAlignment, bytes);
  uint64_t word;
  Block* const block = DebugLiveBlockOrReport(ptr, &word);
  if (block == nullptr) return nullptr;
  if (bytes == 0) {
    FreeBlockImpl<true>(block, word);
    return nullptr;
  }
  const bool canaries = (debug_ & kDebugCanaries) != 0;
  const bool asan = (debug_ & kDebugAsan) != 0;
  const size_t extra = canaries ? kCanaryExtraBytes : 0;
  const size_t want =
      bytes <= kMaxRequest - extra ? SpanForRequest(bytes + extra) : 0;
  if (want == 0) {
    NoteFailure();
    return nullptr;
  }
  void* const payload = PayloadOf(block);
  const size_t have = word & kSpanMask;
  const size_t old_size = canaries ? LoadRaw(payload) : UsableBytes(have);
  Block* const next = NextOf(block);
  const bool next_free = (LoadWord(next) & (kFree | kLost)) == kFree;
  if (next_free) EnsureLinks(next);  // before anything changes
  if (want <= have) {
    if (asan) AsanPoison(payload, UsableBytes(have));
    DebugShrinkLive(block, want);  // the tail is filled and merged
    return FinishBlock(payload, bytes, old_size);
  }
  if (next_free && have + SpanOf(next) >= want) {
    const size_t gained = SpanOf(next);
    // Of `next`, what becomes payload and the head of the tail split off
    // again (its header and links); the rest of the tail stays poisoned.
    VerifyFree(
        next, At(next, kPoisonOffset),
        At(next, std::max(kPoisonOffset,
                          std::min(gained, want - have + kPoisonOffset))));
  }
  if (GrowInPlace(block, word, want)) {
    if (asan) AsanPoison(payload, UsableBytes(have));
    // The tail's neighbours are live (block) and not free (what followed a
    // free block), so it merges with nothing and keeps its poison: the
    // plain split does.
    ShrinkLive(block, want);
    UpdatePeak();
    return FinishBlock(payload, bytes, old_size);
  }
  const int alignment_log2 =
      static_cast<int>((word & kAlignMask) >> kAlignShift);
  void* const moved = DebugAllocate(
      alignment_log2 != 0 ? size_t{1} << alignment_log2 : kAlignment, bytes);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, ptr, std::min<size_t>(old_size, bytes));
  // The allocation may have changed the block's kPrevFree bit, and the
  // checks are repeated: DebugFree reports what changed since.
  DebugFree(ptr);
  return moved;
}

size_t Heap::DebugUsableSize(const void* ptr) const noexcept {
  if (ptr == nullptr || Addr(ptr) % kAlignment != 0) return 0;
  const char* const payload = static_cast<const char*>(ptr) - kCanaryHeadBytes;
  const Block* const block =
      reinterpret_cast<const Block*>(payload - kAlignment);
  const uint64_t word = LoadWord(block);
  const size_t span = word & kSpanMask;
  if (!IsHeader(block, word) || (word & (kFree | kLost)) != 0 ||
      span < kMinFreeSpan) {
    return 0;
  }
  const uint64_t bytes = LoadRaw(payload);
  return CanarySizeFits(bytes, span) ? bytes : 0;
}

// --- Pools ---

absl::StatusOr<Pool*> Heap::AddPool(void* mem, size_t bytes) {
  Pool* pool = nullptr;
  switch (TryAddPool(mem, bytes, &pool)) {
    case PoolError::kNone:
      return pool;
    case PoolError::kNullMemory:
      return absl::InvalidArgumentError("pool memory is null");
    case PoolError::kWrapsAround:
      return absl::InvalidArgumentError(
          "pool range wraps around the end of the address space");
    case PoolError::kTooSmall:
      return absl::InvalidArgumentError(absl::StrCat(
          "pool of ", bytes, " bytes is smaller than the minimum of ",
          kMinPoolBytes, " bytes after aligning its bounds"));
    case PoolError::kTooLarge:
      return absl::OutOfRangeError(absl::StrCat(
          "pool of ", bytes, " bytes exceeds the maximum block span of ",
          kMaxSpan - kAlignment, " bytes"));
    case PoolError::kOverlap:
      return absl::InvalidArgumentError(
          absl::StrFormat("pool [%p, %p) overlaps a pool of this heap", mem,
                          static_cast<void*>(static_cast<char*>(mem) + bytes)));
    case PoolError::kTooManyPools:
      return absl::ResourceExhaustedError(
          absl::StrCat("a heap holds at most ", kMaxPools, " pools at a time"));
    case PoolError::kNotAPool:
    case PoolError::kLiveBlocks:
    case PoolError::kUnlistable:
      break;  // RemovePool's
  }
  return absl::InternalError("unexpected pool error");
}

PoolError Heap::TryAddPool(void* mem, size_t bytes, Pool** out) noexcept {
  if (mem == nullptr) return PoolError::kNullMemory;
  const uintptr_t low = Addr(mem);
  if (bytes > UINTPTR_MAX - low) return PoolError::kWrapsAround;
  const uintptr_t begin = AlignUp(low, kAlignment);
  const uintptr_t end = (low + bytes) & ~uintptr_t{kAlignment - 1};
  if (end < begin || end - begin < kMinPoolBytes) return PoolError::kTooSmall;
  const size_t span = end - begin - kPoolFixedOverhead;
  if (span >= kMaxSpan) return PoolError::kTooLarge;
  size_t at = 0;  // where the new pool goes in pools_
  for (size_t i = 0; i < stats_.pool_count; ++i) {
    const PoolRange& r = pools_[i];
    const uintptr_t p_begin = r.first - sizeof(Pool);
    const uintptr_t p_end = r.last + kAlignment;
    if (begin < p_end && p_begin < end) return PoolError::kOverlap;
    if (p_begin < begin) at = i + 1;
  }
  if (stats_.pool_count == static_cast<size_t>(kMaxPools)) {
    return PoolError::kTooManyPools;
  }
  for (size_t i = stats_.pool_count; i > at; --i) pools_[i] = pools_[i - 1];
  PoolRange& range = pools_[at];
  range.first = begin + sizeof(Pool);
  range.last = end - kAlignment;
  range.capacity = span;
  range.serial = pool_serial_++;

  Pool* const pool = new (reinterpret_cast<void*>(begin)) Pool;
  pool->heap = this;
  pool->magic = pool->ExpectedMagic();
  for (uint64_t& r : pool->reserved) r = 0;

  Block* const block = FirstBlockOf(pool);
  SetPrevPhysical(block, static_cast<Block*>(nullptr));
  StoreWord(block, MakeWord(block, span | kFree));
  Block* const sentinel = NextOf(block);
  SetPrevPhysical(sentinel, block);
  StoreWord(sentinel, MakeWord(sentinel, kPrevFree));
  if ((debug_ & kDebugPoison) != 0) {
    FillFree(At(block, kAlignment), At(block, span));
  }
  if ((debug_ & kDebugAsan) != 0) {
    // Everything after the pool record: headers, free space, sentinel.
    AsanPoison(block, end - Addr(block));
  }
  stats_.capacity_bytes += span;
  ++stats_.pool_count;
  InsertFree(block, span);
  *out = pool;
  DebugCheckPools();
  return PoolError::kNone;
}

void Heap::DebugCheckPools() const noexcept {
  if constexpr (!fmemp::kDebugChecks) return;
  FMEMP_DCHECK(stats_.pool_count <= static_cast<size_t>(kMaxPools));
  size_t capacity = 0;
  for (size_t i = 0; i < stats_.pool_count; ++i) {
    const PoolRange& range = pools_[i];
    FMEMP_DCHECK(range.first < range.last && range.capacity != 0);
    // Sorted and disjoint: this pool's record starts after the previous
    // pool's end sentinel.
    FMEMP_DCHECK(i == 0 || pools_[i - 1].last < range.first - sizeof(Pool));
    capacity += range.capacity;
  }
  FMEMP_DCHECK(capacity == stats_.capacity_bytes);
  FMEMP_DCHECK(stats_.used_bytes + stats_.lost_bytes <= stats_.capacity_bytes);
}

bool Heap::OwnsPool(const Pool* pool) const {
  return pool != nullptr && RangeOfPool(pool) != nullptr;
}

absl::Status Heap::RemovePool(Pool* pool) {
  switch (TryRemovePool(pool)) {
    case PoolError::kNone:
      return absl::OkStatus();
    case PoolError::kNotAPool:
      return absl::NotFoundError("not a pool of this heap");
    case PoolError::kLiveBlocks: {
      size_t live_bytes = 0;
      size_t live_blocks = 0;
      WalkPool(pool, [&](const BlockInfo& info) {
        if (info.used) {
          live_bytes += info.size;
          ++live_blocks;
        }
        return true;
      });
      return absl::FailedPreconditionError(absl::StrFormat(
          "pool at %p still holds %d live bytes in %d blocks, or is damaged",
          static_cast<void*>(pool), live_bytes, live_blocks));
    }
    case PoolError::kUnlistable:
      return absl::DataLossError(
          absl::StrFormat("pool at %p: its free block cannot be unlisted",
                          static_cast<void*>(pool)));
    default:
      break;  // AddPool's
  }
  return absl::InternalError("unexpected pool error");
}

PoolError Heap::TryRemovePool(Pool* pool) noexcept {
  const PoolRange* const r = pool != nullptr ? RangeOfPool(pool) : nullptr;
  if (r == nullptr) return PoolError::kNotAPool;
  const PoolRange range = *r;
  Block* const block = reinterpret_cast<Block*>(range.first);
  const uint64_t word = LoadWord(block);
  if (!IsHeader(block, word) || (word & (kFree | kLost)) != kFree ||
      (word & kSpanMask) != range.capacity) {
    return PoolError::kLiveBlocks;
  }
  EnsureLinks(block);
  if (!RemoveFree(block, range.capacity)) {
    // Its links are damaged: drop its bin's list (relisting the rest), so
    // that nothing links to the pool's memory once it is gone.
    DropList(BinForSpan(range.capacity));
    if (!RemoveFree(block, range.capacity)) return PoolError::kUnlistable;
  }
  StoreWord(block, 0);
  StoreWord(Offset(block, range.capacity), 0);  // the end sentinel
  const uintptr_t begin = range.first - sizeof(Pool);
  if ((debug_ & kDebugAsan) != 0) {
    AsanUnpoison(pool, range.last + kAlignment - begin);
  }
  pool->magic = 0;
  const size_t at = static_cast<size_t>(r - pools_);
  for (size_t i = at; i + 1 < stats_.pool_count; ++i) pools_[i] = pools_[i + 1];
  pools_[stats_.pool_count - 1] = PoolRange{};
  stats_.capacity_bytes -= range.capacity;
  --stats_.pool_count;
  DebugCheckPools();
  return PoolError::kNone;
}

void Heap::ForEachPool(absl::FunctionRef<void(Pool*)> fn) const {
  // In the order they were added: sort a copy by serial (fn may not add or
  // remove pools, but the copy keeps the walk sound even if it does).
  PoolRange order[kMaxPools];
  const size_t count = stats_.pool_count;
  std::copy(pools_, pools_ + count, order);
  std::sort(order, order + count, [](const PoolRange& a, const PoolRange& b) {
    return a.serial < b.serial;
  });
  for (size_t i = 0; i < count; ++i) {
    fn(reinterpret_cast<Pool*>(order[i].first - sizeof(Pool)));
  }
}

Pool* Heap::FindPool(const void* ptr) const {
  const uintptr_t a = Addr(ptr);
  for (size_t i = 0; i < stats_.pool_count; ++i) {
    const uintptr_t begin = pools_[i].first - sizeof(Pool);
    if (a >= begin && a < pools_[i].last + kAlignment) {
      return reinterpret_cast<Pool*>(begin);
    }
    if (a < begin) break;  // sorted by address
  }
  return nullptr;
}

void* Heap::PoolBegin(const Pool* pool) { return const_cast<Pool*>(pool); }

void* Heap::PoolEnd(const Pool* pool) {
  const Heap* const heap = PoolOwner(pool);
  if (heap == nullptr) return nullptr;
  return reinterpret_cast<void*>(heap->RangeOfPool(pool)->last + kAlignment);
}

size_t Heap::PoolCapacity(const Pool* pool) {
  const Heap* const heap = PoolOwner(pool);
  return heap == nullptr ? 0 : heap->RangeOfPool(pool)->capacity;
}

Heap* Heap::PoolOwner(const Pool* pool) {
  if (pool == nullptr || Addr(pool) % kAlignment != 0) return nullptr;
  if (pool->magic != pool->ExpectedMagic()) return nullptr;
  // The record names the heap; the heap's own table must agree.
  Heap* const heap = pool->heap;
  return heap != nullptr && heap->RangeOfPool(pool) != nullptr ? heap : nullptr;
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
      // Only blocks that check out count, and links are followed only
      // when they lead back (Allocate drops a list that does not).
      for (int i = 0; block != nullptr && i < kFallbackScan; ++i) {
        if (!IsListedIn(block, Bin{first, second})) break;
        best = std::max(best, SpanOf(block));
        const Block* const next = LoadLink(block, kNextFreeOffset);
        if (next != nullptr && !LinkLeadsBack(next, kPrevFreeOffset, block)) {
          break;
        }
        block = next;
      }
    }
  }
  if ((debug_ & kDebugCanaries) != 0) {
    // Allocate(n) takes SpanForRequest(max(n, 1) + kCanaryExtraBytes).
    const size_t least = SpanForRequest(1 + kCanaryExtraBytes);
    return best < least ? 0 : UsableBytes(best) - kCanaryExtraBytes;
  }
  return best == 0 ? 0 : UsableBytes(best);
}

bool Heap::WalkPool(const Pool* pool,
                    absl::FunctionRef<bool(const BlockInfo&)> fn) const {
  const PoolRange* const r = pool != nullptr ? RangeOfPool(pool) : nullptr;
  if (r == nullptr) return true;
  Block* block = reinterpret_cast<Block*>(r->first);
  while (Addr(block) < r->last) {
    const uint64_t word = LoadWord(block);
    const size_t span = word & kSpanMask;
    if (!IsHeader(block, word) || span == 0 || span > r->last - Addr(block)) {
      break;  // a damaged header: nothing past it can be found safely
    }
    const bool lost = (word & kLost) != 0;
    const bool used = (word & (kFree | kLost)) == 0;
    BlockInfo info{PayloadOf(block), UsableBytes(span), used, span, lost};
    if (info.used && (debug_ & kDebugCanaries) != 0) {
      const uint64_t bytes = LoadRaw(info.ptr);
      info.ptr = static_cast<char*>(info.ptr) + kCanaryHeadBytes;
      info.size = CanarySizeFits(bytes, span) ? bytes : 0;
    }
    if (!fn(info)) return false;
    block = Offset(block, span);
  }
  return true;
}

namespace {

// Past a damaged header at `from`: the next block position in (from,
// last] whose word validates as a header with a span that fits, or 0.
template <typename IsHeaderFn>
uintptr_t Resync(uintptr_t from, uintptr_t last, IsHeaderFn is_header) {
  for (uintptr_t at = from + kAlignment; at <= last; at += kAlignment) {
    size_t span;
    if (is_header(at, &span) && span != 0 && span <= last - at) return at;
    if (at == last && is_header(at, &span)) return at;
  }
  return 0;
}

}  // namespace

absl::Status Heap::CheckPool(const Pool* pool) const {
  if (pool == nullptr || RangeOfPool(pool) == nullptr) {
    return absl::NotFoundError("not a pool of this heap");
  }
  CheckFindings findings;
  FindPoolProblems(pool, &findings);
  return findings.ToStatus();
}

void Heap::FindPoolProblems(const Pool* pool,
                            CheckFindings* findings) const noexcept {
  const PoolRange* const r = pool != nullptr ? RangeOfPool(pool) : nullptr;
  if (r == nullptr) return;
  if (pool->magic != pool->ExpectedMagic() || pool->heap != this) {
    findings->Add("pool %p: record damaged (an underflow of its first block?)",
                  static_cast<const void*>(pool));
  }
  const uintptr_t last = r->last;
  const Block* block = reinterpret_cast<const Block*>(r->first);
  const Block* prev = nullptr;
  bool prev_free = false;
  for (;;) {
    const uint64_t word = LoadWord(block);
    if (!IsHeader(block, word)) {
      findings->Add("block %p: header damaged (word %#llx)",
                    static_cast<const void*>(PayloadOf(block)),
                    static_cast<unsigned long long>(word));  // NOLINT
      const uintptr_t next =
          Resync(Addr(block), last, [&](uintptr_t at, size_t* span) {
            const Block* const b = reinterpret_cast<const Block*>(at);
            const uint64_t w = LoadWord(b);
            *span = w & kSpanMask;
            return IsHeader(b, w) &&
                   (at == last || (w & kFree) == 0 || *span != 0);
          });
      if (next == 0) break;
      block = reinterpret_cast<const Block*>(next);
      prev = nullptr;
      prev_free = (LoadWord(block) & kPrevFree) != 0;  // unknown: trust it
      continue;
    }
    if (((word & kPrevFree) != 0) != prev_free) {
      findings->Add("block %p: prev-free flag disagrees with the walk",
                    static_cast<const void*>(block));
    }
    if (prev_free && prev != nullptr && PrevPhysical(block) != prev) {
      findings->Add("block %p: back pointer does not name its predecessor",
                    static_cast<const void*>(block));
    }
    const size_t span = word & kSpanMask;
    if (span == 0) {
      if (Addr(block) != last) {
        findings->Add("pool %p: end sentinel at %p is not at the pool end",
                      static_cast<const void*>(pool),
                      static_cast<const void*>(block));
      }
      if ((word & kFree) != 0) {
        findings->Add("pool %p: end sentinel marked free",
                      static_cast<const void*>(pool));
      }
      break;
    }
    if (span > last - Addr(block)) {
      findings->Add("block %p: span %zu runs past the pool end",
                    static_cast<const void*>(block), span);
      break;
    }
    const bool free = (word & kFree) != 0;
    if ((word & kLost) != 0) {
      findings->Add("block %p (%zu bytes): out of service, damaged",
                    static_cast<const void*>(PayloadOf(block)), span);
    }
    if (free && prev_free) {
      findings->Add("blocks %p and %p: adjacent free blocks were not merged",
                    static_cast<const void*>(prev),
                    static_cast<const void*>(block));
    }
    if (!free && span < kMinFreeSpan) {
      findings->Add("block %p: live block of span %zu is below the minimum",
                    static_cast<const void*>(block), span);
    }
    prev = block;
    prev_free = free;
    block = Offset(block, span);
  }
}

size_t Heap::FindListProblems(CheckFindings* findings) const noexcept {
  // Any list longer than this bound has a cycle or foreign nodes.
  const size_t max_nodes = stats_.capacity_bytes / kMinFreeSpan + 1;
  size_t listed = 0;
  for (int first = 0; first < kFirstLevelCount; ++first) {
    const bool first_bit = (first_level_bitmap_ >> first) & 1u;
    if (first_bit != (second_level_bitmap_[first] != 0)) {
      findings->Add("first-level bit %d disagrees with its second level",
                    first);
    }
    for (int second = 0; second < kSecondLevelCount; ++second) {
      const Block* block = free_lists_[first][second];
      const bool second_bit = (second_level_bitmap_[first] >> second) & 1u;
      if (second_bit != (block != nullptr)) {
        findings->Add("bin (%d, %d): bitmap bit %d but list %s", first, second,
                      second_bit, block != nullptr ? "non-empty" : "empty");
      }
      const Block* prev = nullptr;
      size_t steps = 0;
      while (block != nullptr) {
        if (++steps > max_nodes) {
          findings->Add("bin (%d, %d): list has a cycle", first, second);
          break;
        }
        const PoolRange* const r = RangeFor(Addr(block));
        if (!IsAligned(Addr(block)) || r == nullptr ||
            r->last - Addr(block) < kMinFreeSpan) {
          findings->Add("bin (%d, %d): node %p lies outside every pool", first,
                        second, static_cast<const void*>(block));
          break;
        }
        const uint64_t word = LoadWord(block);
        if (!IsHeader(block, word) || (word & (kFree | kLost)) != kFree) {
          findings->Add("bin (%d, %d): node %p is not a free block%s", first,
                        second, static_cast<const void*>(PayloadOf(block)),
                        IsHeader(block, word) ? " (out of service)"
                                              : " (header damaged)");
          break;
        }
        const size_t span = word & kSpanMask;
        if (span < kMinFreeSpan || !(BinForSpan(span) == Bin{first, second})) {
          findings->Add("bin (%d, %d): node %p of span %zu is in the wrong bin",
                        first, second, static_cast<const void*>(block), span);
        }
        if (LoadLink(block, kPrevFreeOffset) != prev) {
          findings->Add("bin (%d, %d): node %p has a wrong prev link", first,
                        second, static_cast<const void*>(block));
        }
        ++listed;
        prev = block;
        block = LoadLink(block, kNextFreeOffset);
      }
    }
  }
  return listed;
}

absl::Status Heap::Check() const {
  CheckFindings findings;
  Check(&findings);
  return findings.ToStatus();
}

void Heap::Check(CheckFindings* findings) const noexcept {
  const size_t found_before = findings->count();
  const size_t listed = FindListProblems(findings);
  size_t capacity = 0, used = 0, free_bytes = 0, live = 0, listable = 0;
  size_t lost = 0;
  bool walked = true;
  for (size_t i = 0; i < stats_.pool_count; ++i) {
    const Pool* const p =
        reinterpret_cast<const Pool*>(pools_[i].first - sizeof(Pool));
    const size_t found = findings->count();
    FindPoolProblems(p, findings);
    if (findings->count() != found) {
      walked = false;
      continue;
    }
    capacity += pools_[i].capacity;
    WalkPool(p, [&](const BlockInfo& info) {
      const size_t span = info.span;
      if (info.lost) {
        lost += span;
      } else if (info.used) {
        used += span;
        ++live;
      } else {
        free_bytes += span;
        if (span >= kMinFreeSpan) ++listable;
      }
      return true;
    });
  }
  if (walked) {
    if (capacity != stats_.capacity_bytes || used != stats_.used_bytes ||
        free_bytes != Stats().free_bytes || live != stats_.live_blocks ||
        lost != stats_.lost_bytes) {
      findings->Add(
          "counters disagree with the walk: capacity %zu/%zu used %zu/%zu "
          "free %zu/%zu live %zu/%zu lost %zu/%zu",
          stats_.capacity_bytes, capacity, stats_.used_bytes, used,
          Stats().free_bytes, free_bytes, stats_.live_blocks, live,
          stats_.lost_bytes, lost);
    }
    if (listable != listed) {
      findings->Add("%zu free blocks in the pools but %zu in the free lists",
                    listable, listed);
    }
    if (stats_.peak_used_bytes < stats_.used_bytes) {
      findings->Add("peak %zu is below used %zu", stats_.peak_used_bytes,
                    stats_.used_bytes);
    }
  }
  if (findings->count() == found_before) {
    for (size_t i = 0; i < stats_.pool_count; ++i) {
      FindDamage(reinterpret_cast<const Pool*>(pools_[i].first - sizeof(Pool)),
                 [&](const HeapReport& report) {
                   char line[kHeapReportBytes];
                   DescribeBlockFindingTo(
                       line, sizeof(line), HeapErrorName(report.error),
                       report.ptr, report.size, report.damage);
                   findings->Add("%s", line);
                 });
    }
  }
}

size_t Heap::FindDamage(const Pool* pool,
                        absl::FunctionRef<void(const HeapReport&)> fn) const {
  const bool poison = (debug_ & kDebugPoison) != 0;
  const bool canaries = (debug_ & kDebugCanaries) != 0;
  const PoolRange* const r = pool != nullptr ? RangeOfPool(pool) : nullptr;
  if ((!poison && !canaries) || r == nullptr) return 0;
  size_t found = 0;
  auto report = [&](HeapError error, const void* ptr, size_t size,
                    const void* damage) {
    HeapReport rep;
    rep.error = error;
    rep.ptr = ptr;
    rep.size = size;
    rep.damage = damage;
    fn(rep);
    ++found;
  };
  const uintptr_t last = r->last;
  const Block* block = reinterpret_cast<const Block*>(r->first);
  const Block* prev = nullptr;
  bool prev_free = false;
  while (Addr(block) <= last && IsTagged(block)) {
    if (poison && prev_free && PrevPhysical(block) != prev) {
      // The back pointer is the free predecessor's last word.
      report(HeapError::kUseAfterFreeWrite, At(prev, kAlignment),
             UsableBytes(SpanOf(prev)), block);
    }
    const size_t span = SpanOf(block);
    if (span == 0 || span > last - Addr(block)) break;
    const uint64_t word = LoadWord(block);
    const bool free = (word & kFree) != 0;
    if (free && poison && span >= kMinFreeSpan) {
      const char* damage = LinkDamage(block);
      if (damage == nullptr) {
        damage = PoisonDamage(At(block, kPoisonOffset), At(block, span));
      }
      if (damage != nullptr) {
        report(HeapError::kUseAfterFreeWrite, At(block, kAlignment),
               UsableBytes(span), damage);
      }
    } else if (!free && (word & kLost) == 0 && canaries) {
      size_t size = 0;
      const char* const damage = CanaryDamage(block, &size);
      if (damage != nullptr) {
        report(HeapError::kCanaryDamaged,
               At(block, kAlignment + kCanaryHeadBytes), size, damage);
      }
    }
    prev = block;
    prev_free = free;
    block = Offset(block, span);
  }
  return found;
}

}  // namespace fmemp::tlsf
