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
//   nullptr or false. Management calls return absl::Status.
// * Misuse is detected and leaves the heap intact: each block header carries a
//   tag derived from its address and this heap, so freeing a pointer this heap
//   did not hand out, an interior pointer, or a block twice is reported to the
//   error handler, counted, and otherwise ignored.
// * A pool is removed only when it holds no live block; memory of a removed
//   pool is never handed out again.
//
// Accounting: a block's *span* is its usable bytes plus its one-word header.
// used_bytes and free_bytes add up spans, so used_bytes + free_bytes ==
// capacity_bytes at every moment. Pool overhead (kPoolOverhead) is excluded
// from capacity.

#ifndef FMEMP_TLSF_HEAP_H_
#define FMEMP_TLSF_HEAP_H_

#include <cstddef>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tlsf/size_class.h"

namespace fmemp::tlsf {

// What the heap reports to its error handler.
enum class HeapError {
  kInvalidFree,     // free/realloc of a pointer that is not a live block here
  kDoubleFree,      // free/realloc of a block that is already free (one
                    // that merged into a 16-byte alignment fragment before
                    // it reads as kInvalidFree: its header became a link)
  kCorruptHeap,     // a header next to the block is damaged (e.g. overflow)
  kPoolNotRemoved,  // RemovePool refused (via the C API, which returns void)
};

// Returns a static, human-readable name for `error`.
const char* HeapErrorName(HeapError error);

// Receives every misuse the heap detects. Runs on the calling thread, inside
// the heap call (and so inside any lock the caller holds): it must not call
// back into the same heap.
using HeapErrorHandler = void (*)(void* context, HeapError error,
                                  const void* ptr);

// Counters kept on every operation; reading them is O(1).
struct HeapStats {
  size_t capacity_bytes = 0;   // sum of pool capacities (used + free)
  size_t used_bytes = 0;       // spans of live blocks, headers included
  size_t free_bytes = 0;       // spans of free blocks, headers included
  size_t live_blocks = 0;      // blocks handed out and not yet freed
  size_t peak_used_bytes = 0;  // max of used_bytes since creation/ResetPeak
  size_t pool_count = 0;
  uint64_t failed_allocations = 0;  // allocation calls that returned nullptr
  uint64_t invalid_frees = 0;       // misuse reported to the error handler
};

// One block, as seen by WalkPool.
struct BlockInfo {
  void* ptr;    // payload address
  size_t size;  // usable bytes
  bool used;
};

// A pool: a contiguous range handed to AddPool. Opaque; its record lives at
// the start of the pool's own memory.
class Pool;

class Heap {
 public:
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

  // An empty heap with no pools. Heap's storage may itself live in
  // caller-provided memory (placement new), as the C API's tlsf_create does.
  Heap() noexcept;
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;
  ~Heap() = default;

  // --- Pools (O(pools); not on the hot path) ---

  // Adds [mem, mem + bytes) as a pool. Bounds are aligned inward to
  // kAlignment. Errors (the heap is unchanged):
  //   InvalidArgument     mem is null, the range wraps, is smaller than
  //                       kMinPoolBytes, or overlaps a pool of this heap;
  //   OutOfRange          the pool's single block would reach kMaxSpan.
  absl::StatusOr<Pool*> AddPool(void* mem, size_t bytes);

  // Removes `pool`. Errors (the heap is unchanged):
  //   NotFound            pool is not a pool of this heap;
  //   FailedPrecondition  a live block lies in the pool (the message says how
  //                       many bytes in how many blocks).
  absl::Status RemovePool(Pool* pool);

  // Calls `fn` for each pool, in the order they were added. `fn` must not add
  // or remove pools.
  void ForEachPool(absl::FunctionRef<void(Pool*)> fn) const;

  // The pool whose memory contains `ptr`, or nullptr. O(pools).
  Pool* FindPool(const void* ptr) const;

  // First and one-past-last byte of the memory a pool manages (after
  // alignment), and its capacity in the units of HeapStats.
  static void* PoolBegin(const Pool* pool);
  static void* PoolEnd(const Pool* pool);
  static size_t PoolCapacity(const Pool* pool);
  // The heap a pool belongs to, or nullptr if `pool` is not a live pool record.
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

  // Usable bytes of the live block at `ptr`; 0 if ptr is not one.
  // Unlike every other member, this one may run without the caller's
  // exclusion when the caller owns the live block at `ptr` (no other thread
  // frees or reallocates it) and `ptr` lies in a pool of this heap: it reads
  // the block's header word once, atomically, while the heap may change that
  // word's neighbour flag under another thread's lock.
  size_t UsableSize(const void* ptr) const noexcept;

  // The alignment the live block at `ptr` was allocated with (kAlignment for
  // plain allocations); 0 if ptr is not a live block. O(1).
  size_t BlockAlignment(const void* ptr) const noexcept;

  // Flat index (first * kSecondLevelCount + second) of the highest non-empty
  // free-list bin, or -1 when no listed free block exists. Every request
  // whose RoundUpToBinStart span maps to a bin at or below it succeeds. O(1).
  int LargestFreeBin() const noexcept;

  // --- Observation ---

  const HeapStats& Stats() const noexcept { return stats_; }
  // Sets peak_used_bytes to the current used_bytes.
  void ResetPeak() noexcept { stats_.peak_used_bytes = stats_.used_bytes; }

  // The largest `bytes` for which Allocate(bytes) succeeds right now (and
  // Allocate(bytes + 1) fails); 0 when even Allocate(0) would fail.
  // O(bins * kFallbackScan): reads the head of each free list.
  size_t LargestAllocatable() const noexcept;

  // Calls `fn` for every block of `pool` in address order until it returns
  // false. Returns false if the walk was stopped, true if it completed.
  // REQUIRES: pool belongs to this heap (checked; returns true doing nothing
  // otherwise).
  bool WalkPool(const Pool* pool,
                absl::FunctionRef<bool(const BlockInfo&)> fn) const;

  // Full integrity check; never aborts and never loops on corrupted lists.
  // Verifies: bitmaps agree with the free lists; every listed block is free,
  // tagged, in the right bin and doubly linked; a physical walk of every pool
  // reaches its end sentinel exactly; no two free blocks are adjacent; back
  // pointers and prev-free flags agree; the counters equal the walk's totals.
  // Returns OK or DataLoss describing the first problem and the count.
  absl::Status Check() const;
  // The physical-walk part of Check() for one pool.
  absl::Status CheckPool(const Pool* pool) const;

  // Installs the handler for detected misuse; nullptr restores the default,
  // which prints one line to stderr.
  void SetErrorHandler(HeapErrorHandler handler, void* context) noexcept;

  // Search depth in a request's own bin when the good-fit search fails.
  static constexpr int kFallbackScan = 8;

 private:
  struct Block;
  friend class Pool;

  static Block* FirstBlockOf(const Pool* pool);
  uint64_t TagFor(const void* block) const noexcept;
  bool IsTagged(const Block* block) const noexcept;
  uint64_t MakeWord(const Block* block, size_t span, uint64_t flags) const;
  void SetSpan(Block* block, size_t span) const;
  void MarkAbsorbed(Block* block) const;

  // Free lists.
  void InsertFree(Block* block) noexcept;
  void RemoveFree(Block* block) noexcept;
  Block* TakeFreeBlock(size_t span) noexcept;

  // Turns the free, unlisted `block` into a live block of `span` bytes,
  // returning any tail of at least kMinFreeSpan to the free lists.
  void* UseBlock(Block* block, size_t span, int alignment_log2) noexcept;
  // Splits a free tail off the live `block` so it keeps `span` bytes.
  void ShrinkLive(Block* block, size_t span) noexcept;
  // Merges a free `block` with free neighbours and lists the result.
  void ReleaseFree(Block* block) noexcept;

  // Returns the live block behind `ptr`, or reports and returns nullptr.
  Block* LiveBlockOrReport(const void* ptr) noexcept;
  void Report(HeapError error, const void* ptr) noexcept;
  void NoteFailure() noexcept { ++stats_.failed_allocations; }
  void AddUsed(size_t span) noexcept;
  void SubUsed(size_t span) noexcept;
  void UpdatePeak() noexcept;

  bool OwnsPool(const Pool* pool) const;
  absl::Status CheckLists(size_t* listed_blocks) const;

  uint32_t first_level_bitmap_ = 0;
  uint32_t second_level_bitmap_[kFirstLevelCount] = {};
  Block* free_lists_[kFirstLevelCount][kSecondLevelCount] = {};
  Pool* first_pool_ = nullptr;
  Pool* last_pool_ = nullptr;
  HeapStats stats_;
  uint64_t tag_key_;
  HeapErrorHandler error_handler_ = nullptr;
  void* error_context_ = nullptr;
};

}  // namespace fmemp::tlsf

#endif  // FMEMP_TLSF_HEAP_H_
