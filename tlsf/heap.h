// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tlsf/heap.h
//
// tlsf::Heap is a two-level segregated fit (TLSF) heap over one or more
// caller-provided memory pools. Allocation, free, aligned allocation and
// reallocation take O(1) time: a free block is found with two bit scans over
// a first-level and a second-level bitmap, and freed blocks are merged with
// their physical neighbours immediately through boundary tags.
//
// Who should use it: the fmemp front-end (fmemp/), the C API in tlsf/tlsf.h,
// and code that needs a deterministic heap over fixed memory. A Heap is NOT
// thread-safe; callers serialise access (fmemp/ does, with a lock policy).
//
// Guarantees
//
// * Every payload is aligned to kAlignment (16 on x86-64, at least
//   alignof(std::max_align_t)); AllocateAligned() accepts any power of two up
//   to kMaxAlignment.
// * Per-allocation overhead is one 64-bit word. Pools and blocks may exceed
//   4 GiB, up to kMaxSpan (1 TiB) each.
// * Hot-path calls are noexcept, never allocate, and report failure with
//   nullptr or false. Management calls return a PoolError (TryAddPool,
//   TryRemovePool: no allocation) or, in their wrappers, absl::Status.
// * Misuse is detected and leaves the heap intact: each block header carries a
//   tag derived from its address, this heap and every other bit of the word,
//   so freeing a pointer this heap did not hand out, an interior pointer, or
//   a block twice is reported to the error handler, counted, and otherwise
//   ignored.
// * Heap damage is contained. Whatever the program writes into pool memory
//   outside the payloads of its live blocks (block headers, a free block's
//   list links and tail, alignment padding, the pool record, the ends of a
//   pool), the heap never reads or writes outside its pools and its own
//   object, never crashes, never loops, and never hands out a block that
//   overlaps a live one. Nothing read from pool memory is used to compute an
//   address before it is validated:
//   - a header's tag covers the whole word (tlsf/block_header.h);
//   - a span is bounds-checked against its pool, whose bounds the Heap
//     object holds (never the pool's memory), before a neighbour's address
//     is computed from it;
//   - free-list links are stored encoded with their own address and a
//     per-heap secret (as glibc's safe-linking) and are followed only when
//     they decode to an aligned address inside a pool whose block links
//     back; the back pointer to a free predecessor only when it names a
//     free block whose span ends exactly here.
//   Freeing a block whose own header, successor's header or back pointer is
//   damaged is reported (HeapError::kCorruptHeap with the pointer; a
//   damaged own header reads as kInvalidFree when the heap cannot tell it
//   from a foreign pointer), counted in invalid_frees and not applied: the
//   block stays live. A free block found damaged (a bad header or link on a
//   free list, or links that do not unlist) goes out of service: reported
//   once as kCorruptHeap, never handed out or merged again, and its span
//   counted in HeapStats::lost_bytes when its header is intact; allocation
//   goes on with other blocks or fails cleanly. Check() names the damage.
//   Beyond the tag's odds (2^-17 per damaged word), one write is outside
//   the guarantee: a header or link word the heap wrote earlier at the same
//   address, written back there (a replay), cannot be told from the real one.
// * A pool is removed only when it holds no live block; memory of a removed
//   pool is never handed out again.
// * Debug modes (HeapOptions: poisoning, canaries, ASan poisoning) are off
//   by default and cost one predictable branch per hot-path call while off.
//   With them on, writes to freed memory and overflows or underflows of a
//   block are reported (HeapError::kUseAfterFreeWrite, kCanaryDamaged) with
//   the block's address and size.
//
// Accounting: a block's *span* is its usable bytes plus its one-word header.
// used_bytes, free_bytes and lost_bytes add up spans, so used_bytes +
// free_bytes + lost_bytes == capacity_bytes at every moment. Pool overhead
// (kPoolOverhead) is excluded from capacity.

#ifndef FMEMP_TLSF_HEAP_H_
#define FMEMP_TLSF_HEAP_H_

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tlsf/block_header.h"
#include "tlsf/size_class.h"

// The lock-free readers below (UsableSize, UsableSizeIfFreeable) run on
// every free of the per-thread caches: forced into their callers, since GCC
// otherwise calls UsableSizeIfFreeable out of line (a call, a frame and a
// second debug-mode test: ~15 instructions per free). Not under ASan: GCC
// refuses to force a no_sanitize_address function into an instrumented one.
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
#define FMEMP_TLSF_INLINE_READER
#else
#define FMEMP_TLSF_INLINE_READER ABSL_ATTRIBUTE_ALWAYS_INLINE
#endif

namespace fmemp::tlsf {

// What the heap reports to its error handler.
enum class HeapError {
  kInvalidFree,     // free/realloc of a pointer that is not a live block here
  kDoubleFree,      // free/realloc of a block that is already free (one
                    // that merged into a 16-byte alignment fragment before
                    // it reads as kInvalidFree: its header became a link)
  kCorruptHeap,     // a header next to the block is damaged (e.g. overflow),
                    // or a free block's header or links are damaged (`ptr`
                    // is then that block's payload; it goes out of service)
  kPoolNotRemoved,  // RemovePool refused (via the C API, which returns void)
  // Reported only by a heap with a debug mode on (HeapOptions):
  kUseAfterFreeWrite,  // free memory lost its poison or its list links are
                       // damaged: written after it was freed; `ptr` is the
                       // free block's payload address (HeapOptions::poison)
  kCanaryDamaged,      // a live block's head or tail canary is damaged: an
                       // underflow or an overflow past its requested size;
                       // `ptr` is the block (HeapOptions::canaries)
};

// Returns a static, human-readable name for `error`.
const char* HeapErrorName(HeapError error);

// Why AddPool or RemovePool refused, as TryAddPool and TryRemovePool return
// it: a value that never allocates, so a caller holding a lock that its
// program's operator new may also take (fmemp's front-ends) can learn the
// reason without calling operator new. AddPool and RemovePool turn it into
// an absl::Status with a message.
enum class PoolError : uint8_t {
  kNone,          // success
  kNullMemory,    // InvalidArgument: mem is null
  kWrapsAround,   // InvalidArgument: the range wraps around the address space
  kTooSmall,      // InvalidArgument: smaller than kMinPoolBytes once aligned
  kOverlap,       // InvalidArgument: overlaps a pool of this heap
  kTooLarge,      // OutOfRange: its single block would reach kMaxSpan
  kTooManyPools,  // ResourceExhausted: the heap already holds kMaxPools
  kNotAPool,      // NotFound: not a pool of this heap
  kLiveBlocks,    // FailedPrecondition: a live block lies in it (or its
                  // first block's header is damaged)
  kUnlistable,    // DataLoss: its free block cannot be unlisted
};

// Receives every misuse the heap detects. Runs on the calling thread, inside
// the heap call (and so inside any lock the caller holds): it must not call
// back into the same heap.
using HeapErrorHandler = void (*)(void* context, HeapError error,
                                  const void* ptr);

// One report with what the heap knows about the block (SetReportHandler).
struct HeapReport {
  HeapError error = HeapError::kInvalidFree;
  // The pointer the call was given, or for a debug finding the damaged
  // block's address (as handed out for live blocks; the payload for free
  // ones).
  const void* ptr = nullptr;
  // The block's size: requested bytes under canaries, otherwise its usable
  // bytes (for a free block, what a live block of its span could hold). 0
  // when unknown (misuse, or a damaged head canary).
  size_t size = 0;
  // The first damaged byte of a debug finding; nullptr otherwise.
  const void* damage = nullptr;
};

// As HeapErrorHandler, with the report's details.
using HeapReportHandler = void (*)(void* context, const HeapReport& report);

// One line describing `report` ("fmemp tlsf: " and DescribeBlockFindingTo's
// text), as the default handler prints it.
std::string FormatHeapReport(const HeapReport& report);
// The longest line FormatHeapReportTo writes, with its NUL.
inline constexpr size_t kHeapReportBytes = 256;
// FormatHeapReport's line into buf[0..n) (NUL-terminated, cut at n - 1
// bytes); its length. Allocates nothing.
size_t FormatHeapReportTo(const HeapReport& report, char* buf,
                          size_t n) noexcept;

// "<what>: <ptr> (<size> bytes), first damaged byte at <damage> (offset
// <n>)", leaving out the size when 0 and the damage when nullptr, into
// buf[0..n) (NUL-terminated, cut at n - 1 bytes); its length. The
// description of a block finding that the heap's reports and Check share.
// Allocates nothing.
size_t DescribeBlockFindingTo(char* buf, size_t n, const char* what,
                              const void* ptr, size_t size,
                              const void* damage) noexcept;

// What an integrity check found: how many problems, and the first
// kMaxNamed of them described as text in a fixed buffer (the problems are
// separated by "; "). Building one or adding to one never allocates (text
// is written with vsnprintf), so a front-end can run Heap::Check while it
// holds a lock that its program's operator new may also take, and build an
// absl::Status (ToStatus) only after it has released that lock.
//
// Every problem is counted; the first kMaxNamed are named. A description
// that does not fit in kTextBytes is cut, and the text then ends in "...".
// Not thread-safe; about 3 KiB, meant to live on the caller's stack.
class CheckFindings {
 public:
  static constexpr size_t kMaxNamed = 16;
  static constexpr size_t kTextBytes = 3072;

  CheckFindings() noexcept { text_[0] = '\0'; }
  CheckFindings(const CheckFindings&) = delete;
  CheckFindings& operator=(const CheckFindings&) = delete;

  bool ok() const noexcept { return count_ == 0; }
  // Every problem added, named or not.
  size_t count() const noexcept { return count_; }
  // The named problems ("" while ok()); NUL-terminated.
  const char* text() const noexcept { return text_; }

  // Counts one problem and, while fewer than kMaxNamed are named, appends
  // its printf-style description.
  void Add(const char* format, ...) noexcept ABSL_PRINTF_ATTRIBUTE(2, 3);
  // Adds `inner`'s problems as one named entry, "<printf-style
  // prefix><inner's text>", counting each of them.
  void AddWithin(const CheckFindings& inner, const char* format, ...) noexcept
      ABSL_PRINTF_ATTRIBUTE(3, 4);

  // OK, or DataLoss "<text> (<count> problem(s) found)". Allocates the
  // message: call it only outside any lock the program's operator new may
  // take.
  absl::Status ToStatus() const;

 private:
  bool BeginEntry() noexcept;
  void AppendV(const char* format, va_list args) noexcept;
  void Append(const char* text) noexcept;

  size_t count_ = 0;
  size_t named_ = 0;
  size_t length_ = 0;
  char text_[kTextBytes];
};

// Debug modes, all off by default (see docs/HARDENING.md). With every mode
// off the heap's hot path pays one predictable branch per call; each mode on
// makes allocation and free O(block size) instead of O(1).
struct HeapOptions {
  // Poisoning. Free memory holds kFreePattern and every fresh allocation
  // (and every byte a realloc adds) starts as kAllocPattern. Free bytes are
  // verified when they are handed out again, the first
  // kMergeCheckBytes of a free block when it is merged, its list links
  // whenever it is unlinked, and all of them by Check(); damage is reported
  // as HeapError::kUseAfterFreeWrite (once: the bytes are then
  // overwritten or repaired) and the call goes on.
  bool poison = false;
  // Canaries. Each block carries kCanaryHeadBytes before the pointer handed
  // out (its requested size and a canary word keyed by its address) and at
  // least kCanaryTailBytes of kCanaryByte after the requested bytes.
  // UsableSize() is then the requested size. Free, Reallocate and Check()
  // verify both; damage is reported as HeapError::kCanaryDamaged, and
  // Free/Reallocate refuse the block (it stays allocated, as for
  // kCorruptHeap). Costs kCanaryExtraBytes per block (plus rounding).
  bool canaries = false;
  // AddressSanitizer, in a build with it (ignored otherwise): every byte of a
  // pool that is not part of a live block as handed out is poisoned
  // (headers, free blocks and their links, canaries, and, under canaries,
  // the bytes past the requested size), so that ASan itself reports a use
  // after free or an overflow at the faulting access. The heap's own
  // accesses to its bookkeeping are exempt. REQUIRES: the pools' memory is
  // still valid when the heap is destroyed (it is unpoisoned then).
  bool asan = false;

  friend bool operator==(const HeapOptions& a, const HeapOptions& b) {
    return a.poison == b.poison && a.canaries == b.canaries && a.asan == b.asan;
  }
  friend bool operator!=(const HeapOptions& a, const HeapOptions& b) {
    return !(a == b);
  }
};

// Whether this build has AddressSanitizer (HeapOptions::asan takes effect).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kHeapAsanBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kHeapAsanBuild = true;
#else
inline constexpr bool kHeapAsanBuild = false;
#endif
#else
inline constexpr bool kHeapAsanBuild = false;
#endif

// Counters kept on every operation; reading them is O(1).
struct HeapStats {
  size_t capacity_bytes = 0;   // sum of pool capacities (used + free)
  size_t used_bytes = 0;       // spans of live blocks, headers included
  size_t free_bytes = 0;       // capacity - used - lost: free blocks' spans
  size_t live_blocks = 0;      // blocks handed out and not yet freed
  size_t peak_used_bytes = 0;  // max of used_bytes since creation/ResetPeak
  size_t pool_count = 0;
  uint64_t failed_allocations = 0;  // allocation calls that returned nullptr
  uint64_t invalid_frees = 0;       // misuse reported to the error handler
  // Free blocks taken out of service because the heap found them damaged
  // (HeapError::kCorruptHeap): never handed out again. A block whose own
  // header is damaged counts in lost_blocks but not in lost_bytes (its span
  // is unknown; it stays in free_bytes).
  size_t lost_bytes = 0;
  size_t lost_blocks = 0;
};

// One block, as seen by WalkPool.
struct BlockInfo {
  void* ptr;    // payload address (under canaries, live blocks: as handed out)
  size_t size;  // usable bytes (under canaries, live blocks: as requested)
  bool used;
  size_t span = 0;    // bytes of the pool the block takes, header included
  bool lost = false;  // out of service (HeapStats::lost_bytes); used is false
};

// A pool: a contiguous range handed to AddPool. Opaque. A record at the start
// of the pool's own memory names its heap (PoolOwner); the bounds and the
// capacity the heap works with are kept in the Heap object.
class Pool;

class Heap {
 public:
  // Most pools one heap holds at a time (AddPool: ResourceExhausted).
  static constexpr int kMaxPools = 64;
  // Largest alignment AllocateAligned accepts.
  static constexpr size_t kMaxAlignment = size_t{1} << 31;
  // Bytes of each pool not available for blocks (record, first back pointer
  // slot and end sentinel), plus up to 2 * kAlignment - 2 lost to aligning the
  // pool's bounds inward.
  static const size_t kPoolOverhead;
  // The smallest pool AddPool accepts after aligning its bounds.
  static const size_t kMinPoolBytes;
  // Offset from PoolBegin() of the lowest payload address in a pool; a
  // pointer below it is never a block (and freeing it would read before the
  // pool).
  static const size_t kFirstPayloadOffset;

  // Fill bytes of the debug modes (HeapOptions): free memory, fresh
  // allocations, tail canaries. Each has bit 5 clear, so that a word of them
  // never passes for a block header (whose tag has bit 45 set).
  static constexpr unsigned char kFreePattern = 0xdd;
  static constexpr unsigned char kAllocPattern = 0xcd;
  static constexpr unsigned char kCanaryByte = 0xca;
  // Canaries: bytes before the pointer handed out (requested size, canary
  // word), the least tail after the requested bytes, and the two together.
  static constexpr size_t kCanaryHeadBytes = 16;
  static constexpr size_t kCanaryTailBytes = 16;
  static constexpr size_t kCanaryExtraBytes =
      kCanaryHeadBytes + kCanaryTailBytes;
  // Poisoning: bytes of a free block verified when it is merged (the rest
  // is verified when it is handed out again, or by Check).
  static constexpr size_t kMergeCheckBytes = 256;

  // An empty heap with no pools and every debug mode off. Heap's storage may
  // itself live in caller-provided memory (placement new), as the C API's
  // tlsf_create does.
  Heap() noexcept;
  // An empty heap with the debug modes of `options`.
  explicit Heap(const HeapOptions& options) noexcept;
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;
  // Under HeapOptions::asan, unpoisons the memory of every pool still added.
  ~Heap();

  // Sets the debug modes. O(1). FailedPrecondition, changing nothing, while
  // the heap has a pool: blocks laid out under one set of modes cannot be
  // read under another.
  absl::Status SetOptions(const HeapOptions& options);
  const HeapOptions& options() const noexcept { return options_; }

  // --- Pools (O(pools); not on the hot path) ---

  // Adds [mem, mem + bytes) as a pool. Bounds are aligned inward to
  // kAlignment. Errors (the heap is unchanged):
  //   InvalidArgument     mem is null, the range wraps, is smaller than
  //                       kMinPoolBytes, or overlaps a pool of this heap;
  //   OutOfRange          the pool's single block would reach kMaxSpan;
  //   ResourceExhausted   the heap already holds kMaxPools pools.
  absl::StatusOr<Pool*> AddPool(void* mem, size_t bytes);
  // As AddPool, without allocating: the pool goes to *pool (untouched on
  // failure) and the reason for a refusal is returned. noexcept.
  PoolError TryAddPool(void* mem, size_t bytes, Pool** pool) noexcept;

  // Removes `pool`. Errors (the heap is unchanged):
  //   NotFound            pool is not a pool of this heap;
  //   FailedPrecondition  a live block lies in the pool (the message says how
  //                       many bytes in how many blocks).
  absl::Status RemovePool(Pool* pool);
  // As RemovePool, without allocating (PoolError::kLiveBlocks instead of the
  // message's counts). noexcept.
  PoolError TryRemovePool(Pool* pool) noexcept;

  // Calls `fn` for each pool, in the order they were added. `fn` must not add
  // or remove pools.
  void ForEachPool(absl::FunctionRef<void(Pool*)> fn) const;

  // The pool whose memory contains `ptr`, or nullptr. O(pools), at most
  // kMaxPools.
  Pool* FindPool(const void* ptr) const;

  // First and one-past-last byte of the memory a pool manages (after
  // alignment), and its capacity in the units of HeapStats. PoolEnd and
  // PoolCapacity come from the owning heap's table (nullptr and 0 when
  // PoolOwner is nullptr).
  static void* PoolBegin(const Pool* pool);
  static void* PoolEnd(const Pool* pool);
  static size_t PoolCapacity(const Pool* pool);
  // The heap a pool belongs to, or nullptr if `pool` is not a live pool record
  // (removed, or its record damaged) or its heap no longer holds it.
  static Heap* PoolOwner(const Pool* pool);

  // --- Hot path: O(1), noexcept, never throws or allocates ---

  // Returns a block of at least `bytes` usable bytes aligned to kAlignment,
  // or nullptr (counted as a failed allocation) when no free block fits or
  // `bytes` > kMaxRequest. Allocate(0) returns a unique minimum block.
  void* Allocate(size_t bytes) noexcept;

  // As Allocate, aligned to `alignment`. Returns nullptr (counted) when
  // `alignment` is not a power of two or exceeds kMaxAlignment. Succeeds
  // whenever the search reaches a free block with room for bytes + alignment;
  // the search inspects every bin above the request's and the first
  // kFallbackScan blocks of its own bin, which keeps it O(1).
  void* AllocateAligned(size_t alignment, size_t bytes) noexcept;

  // Resizes the block at `ptr` to at least `bytes` usable bytes.
  // * ptr == nullptr: same as Allocate(bytes).
  // * bytes == 0: frees ptr and returns nullptr.
  // * Shrinks in place; grows in place into a free next block when it can;
  //   otherwise moves the contents to a new block with the alignment the
  //   block was allocated with, and frees the old one.
  // * On failure returns nullptr and leaves the original block allocated and
  //   unchanged. An invalid or freed ptr is reported and yields nullptr.
  void* Reallocate(void* ptr, size_t bytes) noexcept;

  // Frees the block at `ptr`; nullptr is a no-op that returns true. A pointer
  // that is not a live block of this heap is reported to the error handler,
  // counted in invalid_frees, and ignored: returns false.
  bool Free(void* ptr) noexcept;

  // Usable bytes of the live block at `ptr`; 0 if ptr is not one. Under
  // canaries, the requested size (at least 1, so that 0 still means "not a
  // live block"): the bytes that can be written without touching a canary.
  // Unlike every other member, this one may run without the caller's
  // exclusion when the caller owns the live block at `ptr` (no other thread
  // frees or reallocates it) and `ptr` lies in a pool of this heap: it reads
  // the block's header word once, atomically, while the heap may change that
  // word's neighbour flag under another thread's lock.
  //
  // Inline: the per-thread caches call it on every free.
  FMEMP_TLSF_INLINE_READER ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS size_t
  UsableSize(const void* ptr) const noexcept {
    if (__builtin_expect((debug_ & kDebugCanaries) != 0, 0)) {
      return DebugUsableSize(ptr);
    }
    return PlainUsableSize(ptr);
  }

  // As UsableSize, and also 0 when Free(ptr) would refuse the block because
  // the header after it is damaged (an overflow: HeapError::kCorruptHeap).
  // For a front-end that parks freed blocks without the heap's lock (the
  // per-thread caches): it must not park what the heap would refuse. The
  // same conditions as UsableSize; with a debug mode on, the same answer.
  // Reading the successor's header without the lock is sound: while the
  // block lives, its successor's header stays where it is, and the heap
  // writes header words whole.
  FMEMP_TLSF_INLINE_READER ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS size_t
  UsableSizeIfFreeable(const void* ptr) const noexcept {
    // One test of the debug modes, which answer as UsableSize.
    if (__builtin_expect(HasDebugModes(), 0)) return UsableSize(ptr);
    return ptr == nullptr ? 0 : PlainUsableSizeIfFreeable(ptr);
  }
  // Whether any debug mode (HeapOptions) is on. Inline.
  bool HasDebugModes() const noexcept { return debug_ != 0; }
  // UsableSizeIfFreeable of a heap without debug modes: inline and without
  // any call, for the front-ends' hit paths, which take their slow path
  // (UsableSizeIfFreeable) when HasDebugModes(); a hot path without calls
  // needs no frame. REQUIRES: !HasDebugModes(); ptr lies in a pool of
  // this heap (so it is not null: the callers found its region).
  FMEMP_TLSF_INLINE_READER ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS size_t
  PlainUsableSizeIfFreeable(const void* ptr) const noexcept {
    const size_t usable = NonNullPlainUsableSize(ptr);
    if (usable == 0) return 0;
    // A live block's span is its usable bytes and its header word, so its
    // successor's block starts one word before the payload's end, and the
    // successor's header word sits right at that end.
    const uintptr_t next =
        reinterpret_cast<uintptr_t>(ptr) - kAlignment + usable + kBlockOverhead;
    const uint64_t next_word = __atomic_load_n(
        reinterpret_cast<const uint64_t*>(next + kBlockOverhead),
        __ATOMIC_RELAXED);
    return block_header::IsIntactSuccessor(next_word, next, tag_key_) ? usable
                                                                      : 0;
  }

  // The alignment the live block at `ptr` was allocated with (kAlignment for
  // plain allocations); 0 if ptr is not a live block. O(1).
  size_t BlockAlignment(const void* ptr) const noexcept;

  // Bytes of its pool the live block at `ptr` takes: its span, header and
  // canaries included (the unit of HeapStats::used_bytes); 0 if ptr is not a
  // live block. O(1).
  size_t BlockSpan(const void* ptr) const noexcept;

  // Flat index (first * kSecondLevelCount + second) of the highest non-empty
  // free-list bin, or -1 when no listed free block exists. Every request
  // whose RoundUpToBinStart span maps to a bin at or below it succeeds. O(1).
  // Inline: a front-end over several regions asks after every call.
  int LargestFreeBin() const noexcept {
    if (first_level_bitmap_ == 0) return -1;
    const int first = FloorLog2(first_level_bitmap_);
    return first * kSecondLevelCount +
           FloorLog2(second_level_bitmap_[static_cast<unsigned>(first)]);
  }

  // --- Observation ---

  // The counters. The reference stays valid and its counters current as
  // the heap changes, except free_bytes, which is derived (capacity_bytes -
  // used_bytes - lost_bytes) when Stats() is called: one counter fewer on
  // the hot path.
  const HeapStats& Stats() const noexcept {
    stats_.free_bytes =
        stats_.capacity_bytes - stats_.used_bytes - stats_.lost_bytes;
    return stats_;
  }
  // Sets peak_used_bytes to the current used_bytes.
  void ResetPeak() noexcept { stats_.peak_used_bytes = stats_.used_bytes; }

  // The largest `bytes` for which Allocate(bytes) succeeds right now (and
  // Allocate(bytes + 1) fails); 0 when even Allocate(0) would fail.
  // O(bins * kFallbackScan): reads the head of each free list.
  size_t LargestAllocatable() const noexcept;

  // Calls `fn` for every block of `pool` in address order until it returns
  // false. Returns false if the walk was stopped, true if it completed (or
  // stopped at a damaged header, which it never reads past).
  // REQUIRES: pool belongs to this heap (checked; returns true doing nothing
  // otherwise).
  bool WalkPool(const Pool* pool,
                absl::FunctionRef<bool(const BlockInfo&)> fn) const;

  // Full integrity check; never aborts, never loops, never allocates and
  // never reads outside the pools, whatever their memory holds. Verifies:
  // bitmaps agree with the free lists; every listed block is free, tagged,
  // in the right bin and doubly linked (links decoded and bounds-checked
  // before they are followed); a physical walk of every pool reaches its
  // end sentinel exactly; no two free blocks are adjacent; back pointers
  // and prev-free flags agree; the counters equal the walk's totals. Finds
  // every block out of service (HeapStats::lost_blocks) and every damaged
  // header: past a damaged header the walk resumes at the next word that
  // validates as a header (O(pool bytes) then). With debug modes on, also
  // what FindDamage finds in every pool (so O(pool bytes) under poisoning).
  // Adds each problem to `findings` (which names the first
  // CheckFindings::kMaxNamed and counts all). Reports nothing to the
  // handler.
  void Check(CheckFindings* findings) const noexcept;
  // As above, as OK or DataLoss (findings.ToStatus(): the message
  // allocates).
  absl::Status Check() const;
  // The physical-walk part of Check() for one pool: OK, DataLoss, or
  // NotFound if `pool` is not a pool of this heap. The message allocates.
  absl::Status CheckPool(const Pool* pool) const;

  // The debug modes' part of Check() for one pool: calls `fn` for each
  // damaged block in address order (HeapError::kUseAfterFreeWrite for a
  // free block whose poison or links are damaged, kCanaryDamaged for a live
  // block) and returns how many; the handler is not called and nothing is
  // repaired. The walk stops at a damaged header (CheckPool reports those).
  // O(blocks) plus O(free bytes) under poisoning. 0 when no mode is on or
  // `pool` is not a pool of this heap.
  size_t FindDamage(const Pool* pool,
                    absl::FunctionRef<void(const HeapReport&)> fn) const;

  // Installs the handler for detected misuse; nullptr restores the default,
  // which prints one line to stderr. Replaces a report handler.
  void SetErrorHandler(HeapErrorHandler handler, void* context) noexcept;
  // As SetErrorHandler, for a handler that wants each report's details;
  // replaces an error handler.
  void SetReportHandler(HeapReportHandler handler, void* context) noexcept;

  // Search depth in a request's own bin when the good-fit search fails.
  static constexpr int kFallbackScan = 8;

 private:
  struct Block;
  friend class Pool;

  // One pool's bounds and capacity as this heap keeps them: the heap never
  // reads them back from the pool's memory.
  struct PoolRange {
    uintptr_t first = 0;  // the pool's first block, just past its record
    uintptr_t last = 0;   // its end sentinel block (end - kAlignment)
    size_t capacity = 0;
    uint64_t serial = 0;  // add order, for ForEachPool
  };

  // Bits of debug_.
  static constexpr uint8_t kDebugPoison = 1;
  static constexpr uint8_t kDebugCanaries = 2;
  static constexpr uint8_t kDebugAsan = 4;

  static Block* FirstBlockOf(const Pool* pool);
  // The header word with bits 0-44 `rest` for `block`, and whether `word`
  // is a header this heap wrote at `block` (tlsf/block_header.h).
  uint64_t MakeWord(const Block* block, uint64_t rest) const noexcept;
  bool IsHeader(const Block* block, uint64_t word) const noexcept;
  bool IsTagged(const Block* block) const noexcept;
  void MarkAbsorbed(Block* block) const;

  // The pool whose blocks' range [first, last] holds `address`, or nullptr.
  // O(1) with one pool; bisection over pools_ otherwise.
  const PoolRange* RangeFor(uintptr_t address) const noexcept {
    if (__builtin_expect(stats_.pool_count == 1, 1)) {
      const PoolRange& r = pools_[0];
      return address - r.first <= r.last - r.first ? &r : nullptr;
    }
    return SearchRange(address);
  }
  const PoolRange* SearchRange(uintptr_t address) const noexcept;
  const PoolRange* RangeOfPool(const Pool* pool) const noexcept;
  // Debug builds (FMEMP_DCHECK, fmemp/debug_assert.h), after a pool is
  // added or removed: pools_ sorted by address and disjoint, each with
  // first < last, their capacities summing to capacity_bytes, and used plus
  // lost bytes within it. O(pools).
  void DebugCheckPools() const noexcept;

  // Free-list links, stored encoded (safe-linking): the target's address
  // XOR the slot's address >> 3 XOR link_key_.
  Block* LoadLink(const Block* block, size_t offset) const noexcept;
  void StoreLink(Block* block, size_t offset,
                 const Block* target) const noexcept;
  // Whether the decoded link `target` (not null) may be followed from
  // `from`: aligned, inside a pool with room for a free block, and its link
  // at `back_offset` leads back to `from`.
  bool LinkLeadsBack(const Block* target, size_t back_offset,
                     const Block* from) const noexcept;
  // The free predecessor named by `block`'s back pointer, with its header
  // in *prev_word, when the pointer is valid: inside [r.first, block),
  // aligned, a free header whose span ends exactly at `block`. nullptr
  // otherwise.
  Block* ValidPrev(const Block* block, const PoolRange& r,
                   uint64_t* prev_word) const noexcept;

  // The hot path's internals are XImpl<kDebug> templates, always inlined:
  // Allocate and Free each compile to one function with the modes off
  // (kDebug = false), and the Debug* entry points instantiate them with the
  // modes' checks (kDebug = true).

  // Free lists. InsertFree and RemoveFree take the block's span (the caller
  // has its header word loaded already); RemoveFree ignores fragments, and
  // returns false, changing nothing, when the block's links do not check out
  // (each neighbour must link back; with no previous node the block must
  // head its bin).
  void InsertFree(Block* block, size_t span) noexcept;
  bool RemoveFree(Block* block, size_t span) noexcept;
  Block*& ListHead(Bin bin) noexcept;
  // Makes `next` the head of `bin` in place of its old head, clearing the
  // bitmap bits when the list empties.
  void UnlinkHead(Block* next, Bin bin) noexcept;
  // Unlists and returns a free block of at least `span` bytes, or nullptr:
  // a good-fit search over the bitmaps, then TakeFromOwnBin. A list whose
  // head does not validate is dropped first (DropList).
  template <bool kDebug>
  Block* TakeFreeBlockImpl(size_t span) noexcept;
  // Drops the list of `damaged` and searches again (TakeFreeBlockImpl).
  __attribute__((noinline, cold)) Block* TakeAfterDrop(size_t span, Bin damaged,
                                                       bool debug) noexcept;
  // The first kFallbackScan blocks of span's own bin (with `debug`, each
  // one's links checked first). Out of line: the common case never runs it.
  Block* TakeFromOwnBin(size_t span, bool debug) noexcept;
  // Empties `bin`, whose list holds damage: relists the blocks before the
  // damage, takes the damaged block out of service (Lose) and reports it.
  // O(list length).
  __attribute__((noinline, cold)) void DropList(Bin bin) noexcept;
  // Takes the free block with the valid header `word` out of service: marks
  // it kLost, clears its successor's kPrevFree, counts it, and reports it
  // (kCorruptHeap). REQUIRES: its span checked against its pool; it is not
  // listed or its list is being dropped.
  __attribute__((noinline, cold)) void Lose(Block* block,
                                            uint64_t word) noexcept;

  // Turns the free, unlisted `block` into a live block of `span` bytes,
  // returning any tail of at least kMinFreeSpan to the free lists. Under
  // poisoning, first verifies the free bytes from `verify_from` that it
  // hands out or overwrites.
  template <bool kDebug>
  void* UseBlockImpl(Block* block, size_t span, int alignment_log2,
                     const char* verify_from) noexcept;
  // AllocateAligned's search and split for a block of `span`; the payload
  // plus `head` bytes is aligned. Returns the payload or nullptr (counted).
  template <bool kDebug>
  void* PlaceAlignedImpl(size_t span, size_t alignment, size_t head) noexcept;
  // Grows the live `block`, whose validated header is `word`, into its free
  // successor when that gives at least `want` bytes (the caller then
  // shrinks it to `want` and updates the peak). A successor that does not
  // unlist goes out of service and the call returns false.
  bool GrowInPlace(Block* block, uint64_t word, size_t want) noexcept;
  // Splits a free tail off the live `block` so it keeps `span` bytes.
  void ShrinkLive(Block* block, size_t span) noexcept;
  void DebugShrinkLive(Block* block, size_t span) noexcept;
  template <bool kDebug>
  void ShrinkLiveImpl(Block* block, size_t span) noexcept;
  // Merges the free `block`, whose header holds `word`, with free
  // neighbours and lists the result. REQUIRES: the span in `word` fits the
  // pool, the successor's header was validated (it is rewritten without a
  // second check), and with kPrevFree the back pointer was (ValidPrev). A
  // neighbour that does not unlist goes out of service instead of merging.
  template <bool kDebug>
  void ReleaseFreeImpl(Block* block, uint64_t word) noexcept;
  // Frees the live `block`, whose header holds `word`.
  template <bool kDebug>
  void FreeBlockImpl(Block* block, uint64_t word) noexcept;

  // Returns the live block behind `ptr` and sets *word to its header, or
  // reports and returns nullptr. Validates, before anything is changed: the
  // block lies in a pool, its header, its span against the pool, its
  // successor's header, and with kPrevFree its back pointer.
  Block* DebugLiveBlockOrReport(const void* ptr, uint64_t* word) noexcept;
  template <bool kDebug>
  Block* LiveBlockOrReportImpl(const void* ptr, uint64_t* word) noexcept;
  // Misuse reports, out of line and cold so that the hot path only jumps.
  __attribute__((noinline, cold)) void ReportInvalidFree(
      const void* ptr) noexcept;
  __attribute__((noinline, cold)) void ReportDoubleFree(
      const void* ptr) noexcept;
  __attribute__((noinline, cold)) void ReportCorrupt(const void* ptr) noexcept;
  // A pointer whose header word does not validate: kCorruptHeap when a walk
  // of its pool finds a block starting there (its header is damaged),
  // kInvalidFree otherwise. O(blocks of the pool): misuse only.
  __attribute__((noinline, cold)) void ReportBadHeader(
      const void* ptr, const Block* block, const PoolRange& range) noexcept;
  void Report(HeapError error, const void* ptr) noexcept;
  void Report(const HeapReport& report) noexcept;

  // --- Debug modes (heap.cc, "Debug modes") ---
  void ApplyOptions(const HeapOptions& options) noexcept;
  size_t HeadBytes() const noexcept {
    return (debug_ & kDebugCanaries) != 0 ? kCanaryHeadBytes : 0;
  }
  void* DebugAllocate(size_t alignment, size_t bytes) noexcept;
  void* DebugReallocate(void* ptr, size_t bytes) noexcept;
  bool DebugFree(void* ptr) noexcept;
  size_t DebugUsableSize(const void* ptr) const noexcept;
  // UsableSize without canaries (no debug mode changes the answer then).
  FMEMP_TLSF_INLINE_READER ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS size_t
  PlainUsableSize(const void* ptr) const noexcept {
    return ptr == nullptr ? 0 : NonNullPlainUsableSize(ptr);
  }
  // PlainUsableSize of a non-null ptr.
  FMEMP_TLSF_INLINE_READER ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS size_t
  NonNullPlainUsableSize(const void* ptr) const noexcept {
    const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
    if (address % kAlignment != 0) return 0;
    // The header is the word just before the payload. One atomic load: the
    // heap may flip its kPrevFree bit under another thread's lock.
    const uintptr_t block = address - kAlignment;
    const uint64_t word = __atomic_load_n(
        reinterpret_cast<const uint64_t*>(address - kBlockOverhead),
        __ATOMIC_RELAXED);
    return block_header::LiveUsableBytes(word, block, tag_key_);
  }
  // Lays out a live block after allocation or reallocation: ASan shadow,
  // kAllocPattern from `fresh_from` bytes on, canaries. Returns the pointer
  // to hand out.
  void* FinishBlock(void* payload, size_t bytes, size_t fresh_from) noexcept;
  void WriteCanaries(Block* block, size_t bytes) noexcept;
  // The canary word of the block whose payload is at `payload`.
  uint64_t HeadCanary(const void* payload) const noexcept;
  // The first damaged canary byte of the live `block`, or nullptr; *size is
  // the requested size, or 0 when the head is damaged.
  const char* CanaryDamage(const Block* block, size_t* size) const noexcept;
  // The first byte of [from, to) that holds neither kFreePattern nor (at a
  // header position) the marker of a header merged away; nullptr if none.
  const char* PoisonDamage(const char* from, const char* to) const noexcept;
  // Reports kUseAfterFreeWrite for the free `owner` if [from, to) is
  // damaged.
  void VerifyFree(const Block* owner, const char* from,
                  const char* to) noexcept;
  // Fills [from, to) with kFreePattern (and poisons it under asan).
  void FillFree(char* from, char* to) const noexcept;
  // The address of a damaged list link of the listed free `block`, or
  // nullptr when both links name list neighbours that name it back.
  const char* LinkDamage(const Block* block) const noexcept;
  bool IsListedIn(const Block* block, Bin bin) const noexcept;
  // If the listed free `block` has a damaged link: reports it, relists
  // every free block from a walk of the pools, and returns true. REQUIRES:
  // every block's header is consistent (no operation half done).
  bool EnsureLinks(Block* block) noexcept;
  // EnsureLinks for the free physical neighbours of the live `block`; a
  // damaged back pointer to a free predecessor (its last word) is reported
  // and repaired from a walk of the pool.
  void EnsureNeighbourLinks(Block* block) noexcept;
  void RebuildFreeLists() noexcept;
  void NoteFailure() noexcept { ++stats_.failed_allocations; }
  void AddUsed(size_t span) noexcept;
  void SubUsed(size_t span) noexcept;
  void UpdatePeak() noexcept;

  bool OwnsPool(const Pool* pool) const;
  // Check()'s parts, adding to `findings`: the free lists and bitmaps
  // (returns how many blocks the lists hold), and the physical walk of one
  // pool of this heap.
  size_t FindListProblems(CheckFindings* findings) const noexcept;
  void FindPoolProblems(const Pool* pool,
                        CheckFindings* findings) const noexcept;

  uint32_t first_level_bitmap_ = 0;
  uint8_t debug_ = 0;  // kDebug* bits; 0 keeps the hot path plain
  uint32_t second_level_bitmap_[kFirstLevelCount] = {};
  Block* free_lists_[kFirstLevelCount][kSecondLevelCount] = {};
  mutable HeapStats stats_;  // free_bytes: see Stats()
  uint64_t tag_key_;
  uint64_t link_key_;  // the free-list links' secret
  // The pools, sorted by address; stats_.pool_count of them.
  PoolRange pools_[kMaxPools] = {};
  uint64_t pool_serial_ = 0;
  HeapErrorHandler error_handler_ = nullptr;
  HeapReportHandler report_handler_ = nullptr;
  void* error_context_ = nullptr;
  HeapOptions options_;
};

}  // namespace fmemp::tlsf

#endif  // FMEMP_TLSF_HEAP_H_
