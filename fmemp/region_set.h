// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/region_set.h
//
// RegionSet is the unsynchronised core of the fmemp front-end: a set of
// non-contiguous memory regions, each managed by a TLSF heap of its own, that
// together behave as one heap. Memp<LockPolicy> (fmemp/memp.h) wraps it in a
// lock; use that, not this, unless you provide the exclusion yourself.
//
// Guarantees
// * Allocate, AllocateAligned and Free are O(1) in the number of regions for
//   the choice of region (RegionIndex) and O(log regions) to find the region
//   that owns a pointer (a bisection of an array in address order); the TLSF
//   work in the region is O(1). Adding, removing, detaching and attaching a
//   region are O(regions).
// * Bookkeeping never lives in the caller's regions: each region's TLSF
//   control structure, the region array, the region table and the tag table
//   come from the metadata arena (fmemp/metadata_arena.h), never from malloc
//   or operator new. Management calls report failure as a ManagementResult
//   (fmemp/management_error.h), Check and CheckRegionOf their findings
//   in a fixed-size tlsf::CheckFindings, and List formats its lines on the
//   stack: none of them allocates. Turning a result into an absl::Status
//   does.
// * A region is removed only when no live block lies in it; its memory is
//   never handed out again. Misuse (foreign, interior, freed pointers) is
//   reported to the error handler, counted, and leaves every heap intact.
// * Counters are kept on every operation, so Probe() is O(1): used_bytes never
//   exceeds capacity_bytes and peak_used_bytes is never below used_bytes.
//
// Accounting follows tlsf::Heap: used and free bytes include each block's
// one-word header, so used_bytes + free_bytes == capacity_bytes.
//
// Debug modes (SetDebugOptions, before the first region): poisoning of free
// memory, canaries around each block, ASan poisoning; every region's heap
// runs them (tlsf::HeapOptions), their findings reach the error or report
// handler with the block's tag, and CheckRegionOf checks one region. Off by
// default, at the cost of one predictable branch per allocation.

#ifndef FMEMP_FMEMP_REGION_SET_H_
#define FMEMP_FMEMP_REGION_SET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmemp/budget.h"
#include "fmemp/management_error.h"
#include "fmemp/metadata_arena.h"
#include "fmemp/region_index.h"
#include "fmemp/region_table.h"
#include "tlsf/heap.h"

namespace fmemp {

// Misuse the front-end reports.
enum class MempError {
  kForeignPointer,  // free/realloc of a pointer outside every region
  kInvalidFree,     // inside a region, but not a live block
  kDoubleFree,      // a block that is already free
  kCorruptHeap,     // a header next to the block is damaged
  // Reported only with a debug mode on (SetDebugOptions):
  kUseAfterFreeWrite,  // freed memory was written: found when it is handed
                       // out again, merged, or by Check; the pointer is the
                       // free block's (tlsf::HeapError::kUseAfterFreeWrite)
  kCanaryDamaged,      // a block's canary is damaged (an overflow past its
                       // requested size or an underflow): found on free,
                       // realloc or by Check, which refuse the block
};

const char* MempErrorName(MempError error);

// Runs inside the front-end's lock, on the thread that made the bad call: it
// must not call back into the same front-end.
using MempErrorHandler = void (*)(void* context, MempError error,
                                  const void* ptr);

// The debug modes of a RegionSet: those of every region's heap.
using DebugOptions = tlsf::HeapOptions;

// Where a tagged block was allocated (see Memp::AllocateTagged).
struct BlockTag {
  const char* file = nullptr;  // must outlive the block (e.g. __FILE__)
  unsigned long line = 0;
  const char* message = nullptr;  // optional; must outlive the block
  uint64_t thread_id = 0;         // the allocating thread (gettid)
};

// One report with what the front-end knows about the block
// (RegionSet::SetReportHandler).
struct MempReport {
  MempError error = MempError::kInvalidFree;
  // The pointer the call was given; for a debug finding, the damaged
  // block's address (as handed out for a live block, the payload of a free
  // one).
  const void* ptr = nullptr;
  // The block's size: requested bytes under canaries, usable bytes
  // otherwise; 0 when unknown (misuse, a damaged canary head).
  size_t size = 0;
  // The first damaged byte of a debug finding; nullptr otherwise.
  const void* damage = nullptr;
  // Where the block was allocated, if it was tagged (SetTag); file is
  // nullptr otherwise.
  BlockTag tag;
};

// One line describing `report` ("fmemp: <what>: <ptr> (<size> bytes), first
// damaged byte at <address> (offset <n>), allocated at <file>:<line>"), as
// the default handler prints it for debug findings.
std::string FormatMempReport(const MempReport& report);
// The longest line FormatMempReportTo writes (with its NUL); longer tags are
// cut.
inline constexpr size_t kMempReportBytes = 512;
// FormatMempReport's line into buf[0..n) (NUL-terminated, cut at n - 1
// bytes); its length. Allocates nothing.
size_t FormatMempReportTo(const MempReport& report, char* buf, size_t n);
// A check's absl::Status: `findings` as DataLoss if it holds a problem,
// otherwise result.ToStatus() (OK, or e.g. NotFound for CheckRegionOf of a
// pointer in no region). Allocates the message: the C++ front-ends call it
// after releasing their locks.
absl::Status CheckToStatus(ManagementResult result,
                           const tlsf::CheckFindings& findings);

// What a RegionSet with no handler does with a report: FormatMempReport's
// line on stderr, through a stack buffer and write(2): the misuse path
// allocates nothing (a program's operator new may be this pool).
void WriteMempReportToStderr(const MempReport& report);
// The longest line RegionSet::List writes, with its NUL: room for a failed
// check's findings (tlsf::CheckFindings::kTextBytes) and their prefix.
inline constexpr size_t kListLineBytes = tlsf::CheckFindings::kTextBytes + 96;
// What the C API does with a failed check: "fmemp: integrity check failed:
// <findings> (<n> problem(s) found)" on stderr, through a stack buffer and
// write(2), allocating nothing. Writes nothing for findings that are ok().
void WriteCheckFailureToStderr(const tlsf::CheckFindings& findings);

// As MempErrorHandler, with the report's details. Same rules.
using MempReportHandler = void (*)(void* context, const MempReport& report);

// Usage of one region.
struct RegionStats;
// What ProbeRegions returns: a std::vector in the metadata arena, so that
// a probe never calls operator new (under the front-end's lock, that would
// deadlock a program whose operator new is this FMemp).
using RegionStatsList = std::vector<RegionStats, ArenaAllocator<RegionStats>>;

struct RegionStats {
  void* begin = nullptr;  // as passed to AddRegion
  void* end = nullptr;
  size_t capacity_bytes = 0;
  size_t used_bytes = 0;
  size_t free_bytes = 0;
  size_t peak_used_bytes = 0;
  size_t largest_allocatable = 0;  // exact: Allocate(n) succeeds in it
  size_t live_blocks = 0;
  uint64_t failed_allocations = 0;  // requests this region could not serve
  // Retiring (RegionSet::Retire): no new block comes from it, and it goes
  // when its last live block is freed; used_bytes are its live bytes.
  bool retiring = false;
  // Spans of damaged free blocks its heap took out of service
  // (tlsf::HeapStats::lost_bytes): used + free + lost == capacity.
  size_t lost_bytes = 0;
};

// Usage of all regions together.
struct MempStats {
  size_t capacity_bytes = 0;
  size_t used_bytes = 0;
  size_t free_bytes = 0;
  // True peak, since init or ResetPeak, of the bytes taken from the regions:
  // used_bytes + cached_bytes (with per-thread caches, parked blocks count).
  size_t peak_used_bytes = 0;
  size_t live_blocks = 0;
  // Bytes (spans) of free blocks parked in per-thread caches
  // (fmemp/thread_cache.h, and the thread heaps' caches of
  // fmemp/thread_heap.h); 0 for the front-ends without caches. They are neither
  // in used_bytes nor in free_bytes (see lost_bytes for the sum).
  size_t cached_bytes = 0;
  size_t region_count = 0;
  // Calls of the front-end's allocation API (malloc, calloc, aligned,
  // realloc growth) that returned nullptr: each counted once, by the
  // front-end that returned it, at that return. An attempt that the
  // out-of-memory handler's retry, a cache flush or a thread heap's fallback
  // then served is not one.
  uint64_t failed_allocations = 0;
  uint64_t invalid_frees = 0;  // misuse reports
  // Of failed_allocations, those refused because the block would have
  // taken usage past the hard limit (Memp::SetLimit, fmemp/budget.h).
  uint64_t limit_refusals = 0;
  // Spans of damaged free blocks the heaps took out of service (a write
  // into freed memory or heap metadata; tlsf/heap.h): never handed out
  // again, in neither used_bytes nor free_bytes:
  // used + cached + free + lost == capacity.
  size_t lost_bytes = 0;
};

class RegionSet {
  struct Region;

 public:
  // A region taken out of one RegionSet by Detach, with its heap, live
  // blocks, per-region counters and tags, on its way into another by
  // Attach (per-thread heaps move regions between sets this way). A
  // DetachedRegion that is destroyed unattached takes the region with it:
  // its blocks are forgotten, its memory is never touched again.
  class DetachedRegion {
   public:
    DetachedRegion();
    DetachedRegion(DetachedRegion&&) noexcept;
    DetachedRegion& operator=(DetachedRegion&&) noexcept;
    ~DetachedRegion();

    void* begin() const;  // as passed to AddRegion; nullptr when empty
    void* end() const;

   private:
    friend class RegionSet;
    // Forgets the region: refunds its charge, erases its table entry.
    void Drop() noexcept;

    std::unique_ptr<Region> region_;  // in the arena (Region is)
    // The table that still holds the region's entry (under its old owner),
    // or nullptr. Attach to a set of the same table changes the entry's
    // owner in place; a DetachedRegion destroyed unattached erases it
    // (REQUIRES then: serialised with that table's writers).
    RegionTable* table_ = nullptr;
    // The budget (of the set it left) still charged with the region's used
    // bytes, or nullptr: Attach moves the charge (Budget::Transfer), so a
    // budget both sets count never dips; destroyed unattached, it refunds.
    Budget* charged_ = nullptr;
    std::vector<std::pair<const void*, BlockTag>,
                ArenaAllocator<std::pair<const void*, BlockTag>>>
        tags_;
  };

  RegionSet();
  RegionSet(const RegionSet&) = delete;
  RegionSet& operator=(const RegionSet&) = delete;
  ~RegionSet();

  // Management calls return a ManagementResult (its subject: the region's
  // `begin`, or the pointer probed) and never allocate on failure; the
  // errors are named below by ManagementError.

  // Adds [begin, end) as a region (aligned inward). Errors, nothing changed:
  //   kNullBound, kReversedRange, kTooSmall, kTooLarge (for one TLSF pool);
  //   kOverlap         the range overlaps a region of this set;
  //   kOverlapOtherSet ... of another set sharing its table (UseTable).
  ManagementResult AddRegion(void* begin, void* end);

  // Removes the region that AddRegion was given `begin` for. Errors,
  // nothing changed: kNoRegion; kLiveBlocks (live blocks lie in it);
  // kRegionUnlistable (its free block's links are damaged).
  ManagementResult RemoveRegion(void* begin);

  // Drops every region and tag and zeroes the counters, live blocks or not.
  // Debug options stay.
  void Clear();

  // Sets the debug modes of every region added from now on (see
  // tlsf::HeapOptions for what each does and costs). O(1).
  // kHasRegions, changing nothing, while the set has a region.
  ManagementResult SetDebugOptions(const DebugOptions& options);
  const DebugOptions& debug_options() const noexcept { return options_; }

  // Takes the region that begins at `begin` out of this set, live blocks
  // and all: the set's counters drop by its figures (the peak stays), and
  // its blocks are no longer this set's to free. Its used bytes stay
  // charged to this set's budget until Attach moves the charge. Its table entry
  // stays, naming this set's owner, until the region is attached or destroyed.
  // O(regions + tags). kNoRegion (and *out untouched) if no region begins
  // there; kRetiring for a retiring region (it stays).
  ManagementResult Detach(void* begin, DetachedRegion* out);

  // Adds a region taken from another set (see Detach), with its live
  // blocks and tags; heap misuse in it is reported to this set from now on.
  // Its used bytes' charge moves from the old set's budget to this set's
  // (Budget::Transfer: a budget both count, such as a front-end's over its
  // shared regions and its thread heaps, keeps it throughout).
  // From a set that shares this set's table, the region's entry changes
  // owner in place (RegionTable::SetOwner: a lock-free reader never misses
  // it); from another table, it moves to this one. On success `region` is
  // left empty. kOverlap if it overlaps a region of this set,
  // kNothingToAttach if `region` is empty, kDebugModesDiffer if its debug
  // options differ from this set's; on error nothing changes and `region`
  // keeps the region.
  ManagementResult Attach(DetachedRegion& region);

  // Makes this set keep its regions' entries in `table` (nullptr: its own
  // table, the default), each entry naming `owner` (RegionTable::Entry),
  // so that several sets answer lookups through one table (ThreadHeapMemp's
  // shared set and thread heaps). REQUIRES: `table` outlives this set's regions
  // in it, and its writers are serialised with this set's region changes
  // (AddRegion, RemoveRegion, Detach, Attach, Clear); the set's
  // destruction leaves its entries to the table's owner. O(1).
  // kHasRegions, changing nothing, while the set has a region.
  ManagementResult UseTable(RegionTable* table, const void* owner);

  // Charges `budget` (fmemp/budget.h) with the span of every block this set
  // hands out of a heap from now on, and refunds it when the block returns;
  // the set's live bytes are charged at once (ForceCharge), and a set that
  // uses another budget refunds that one first. nullptr: no budget (no
  // charge, no refusal). An allocation the budget refuses returns nullptr
  // with the heaps unchanged and makes TakeLimitRefusal() true; a growing
  // reallocation then moves the block (new block, copy, free), so that it
  // is charged before the old one is refunded. O(1).
  void UseBudget(Budget* budget) noexcept;
  Budget* budget() const noexcept { return budget_; }
  // Stops charging without refunding (a front-end that reset the budget
  // itself, or forgets the set's blocks). O(1).
  void ForgetBudget() noexcept {
    budget_ = nullptr;
    NoteChargedFrees();
  }
  // Whether an allocation since the last call was refused by the budget
  // (rather than for lack of room); clears it. The front-end that returns
  // nullptr asks it, to count a limit refusal and to spare the
  // out-of-memory handler. O(1).
  bool TakeLimitRefusal() noexcept {
    const bool refused = limit_refused_;
    limit_refused_ = false;
    return refused;
  }

  // --- Attribution: a second charge for some blocks ---
  //
  // A ChargeAccount is charged, besides the set's budget, for the blocks
  // that AllocateFor attributes to it: ThreadHeapMemp attributes the blocks
  // a thread heap takes from the shared regions when it falls back to them
  // to that thread heap (fmemp/thread_heap.h). The set keeps a ledger,
  // block -> (account, span), in the metadata arena (an open-addressing hash
  // table that grows by rehashing: O(1) expected per entry; exhaustion of
  // the arena ends the process, as for tags). Every path that frees an
  // attributed block or changes its span credits its account with the
  // difference, once: Free, TryFree, Reallocate (in place or by a move, a
  // retiring region's moves included), Clear, and Detach of its region (the
  // block is then the new owner's, not the account's). The ledger is read
  // only while it holds an entry: with none, a free pays the same one
  // predictable branch it pays for the budget.
  struct ChargeAccount {
    // Charged with each attributed span alone (TryChargeWithoutParent: its
    // parent, if any, is charged through the set's budget); nullptr: none.
    Budget* budget = nullptr;
    // Spans of its live attributed blocks (headers included, as
    // used_bytes). Changed and read under the set's exclusion only.
    size_t bytes = 0;
  };
  // AllocateAligned (alignment <= kAlignment: Allocate) with the block
  // attributed to `account` (nullptr: not attributed, plain
  // AllocateAligned). Refused by the account's budget: nullptr, the heaps,
  // the peak and the set's budget as before, and TakeLimitRefusal() true.
  // A Reallocate of an attributed block keeps its account: the block moves
  // rather than grows in place, the new block charged to the account first.
  void* AllocateFor(ChargeAccount* account, size_t alignment,
                    size_t bytes) noexcept;
  // Drops every ledger entry of `account` without crediting it (its owner
  // is going away: those blocks stay live, unattributed) and zeroes its
  // bytes. O(ledger capacity); O(1) when the ledger is empty.
  void ForgetAccount(ChargeAccount* account) noexcept;
  // Spans of all attributed live blocks: used_bytes - attributed_bytes()
  // are the set's unattributed bytes. O(1).
  size_t attributed_bytes() const noexcept { return attributed_bytes_; }

  // Whether ptr lies inside one of this set's regions (O(log regions)).
  bool Contains(const void* ptr) const noexcept;

  // --- Retirement ---
  //
  // A retiring region hands out no new block; its live blocks stay valid,
  // and the free (by whatever path) of its last one removes it from the set
  // and queues (begin, end) for `handler` (may be nullptr), which the
  // front-end runs outside its locks (TakeRetired) so that it may, say,
  // munmap the region. A region with no live block is removed at once.
  // Errors, nothing changed: kNoRegion; kRetiring (already retiring). O(1)
  // plus a refile of the index.
  using RetiredHandler = void (*)(void* context, void* begin, void* end);
  ManagementResult Retire(void* begin, RetiredHandler handler, void* context);
  // Puts a retiring region back into service. kNoRegion; kNotRetiring.
  ManagementResult CancelRetire(void* begin);
  // A region retirement removed, with its handler, not yet run.
  struct RetiredRegion {
    void* begin;
    void* end;
    RetiredHandler handler;
    void* context;
  };
  // Whether a retired region's handler waits to be run. O(1), inline.
  bool has_retired() const noexcept { return !retired_.empty(); }
  // Moves the waiting handlers' records to *out (cleared first) and
  // forgets them here; the caller runs each handler once its locks are
  // released. Allocates only from the metadata arena.
  void TakeRetired(
      std::vector<RetiredRegion, ArenaAllocator<RetiredRegion>>* out);

  // Takes the region that begins at `begin` out of (false) or back into
  // (true) service: while out, no new block is placed in it, so blocks that
  // are freed leave it empty for RemoveRegion. Live blocks stay usable.
  // kNoRegion if no region begins there; kRetiring, changing nothing, if it
  // is retiring (out of service until CancelRetire).
  ManagementResult SetAllocatable(void* begin, bool allocatable);

  void* Allocate(size_t bytes) noexcept;
  void* AllocateAligned(size_t alignment, size_t bytes) noexcept;
  // tlsf::Heap semantics (nullptr: allocate; 0 bytes: free and return
  // nullptr; failure leaves the block intact), and may move the block to
  // another region, keeping its alignment. When it returns nullptr,
  // *no_room (if given) says whether it was for lack of space (or a size
  // above tlsf::kMaxRequest), which the caller counts as a failed
  // allocation, rather than misuse (reported) or a free (0 bytes).
  void* Reallocate(void* ptr, size_t bytes, bool* no_room = nullptr) noexcept;
  // Frees a live block; nullptr is a no-op. Misuse is reported and ignored
  // (returns false).
  bool Free(void* ptr) noexcept;
  // Free for a pointer that may lie outside this set, with one region
  // lookup: kOutside (nothing done, nothing reported) when ptr is in none of
  // its regions, otherwise Free's outcome. REQUIRES: ptr != nullptr.
  enum class FreeOutcome { kOutside, kFreed, kRefused };
  FreeOutcome TryFree(void* ptr) noexcept;
  size_t UsableSize(const void* ptr) const noexcept;

  // Allocates up to `count` blocks of `bytes` into out[] and returns how
  // many it got (a per-thread cache refilling decides what a short batch
  // means). Under a budget, one charge for the whole batch (block by block
  // only when the budget refuses it: as many blocks as fit).
  size_t AllocateBatch(size_t bytes, size_t count, void** out) noexcept;

  // Failed allocations (MempStats::failed_allocations). No operation of this
  // set counts one: an attempt that fails here may still be served (by the
  // out-of-memory handler's retry, another thread heap, the shared regions), so
  // the front-end that owns this set calls NoteFailure once for each call of
  // its API that it returns nullptr for, where it returns it. Probe and List
  // report the count; Clear zeroes it. O(1).
  void NoteFailure() noexcept { ++failed_allocations_; }
  // Of those, one the budget refused (MempStats::limit_refusals). O(1).
  void NoteLimitRefusal() noexcept { ++limit_refusals_; }

  // Records `tag` for the live block at ptr; dropped when it is freed.
  void SetTag(const void* ptr, const BlockTag& tag);

  // O(1), inline: a layer may publish it after every call.
  MempStats Probe() const noexcept {
    MempStats stats;
    stats.capacity_bytes = capacity_bytes_;
    stats.used_bytes = UsedBytes();
    if (ABSL_PREDICT_FALSE(lost_stale_)) RecountLost();
    stats.lost_bytes = lost_bytes_;
    stats.free_bytes = capacity_bytes_ - stats.used_bytes - lost_bytes_;
    stats.peak_used_bytes = peak_used_bytes_;
    stats.live_blocks = LiveBlocks();
    stats.region_count = regions_.size();
    stats.failed_allocations = failed_allocations_;
    stats.invalid_frees = invalid_frees_;
    stats.limit_refusals = limit_refusals_;
    return stats;
  }
  RegionStatsList ProbeRegions() const;
  void ResetPeak() noexcept;

  // Every region's heap check, the index and the aggregated counters. With
  // debug modes on, also every canary and (poisoning) every free byte; a
  // damaged region is named with its first damaged block and that block's
  // tag. Adds each problem to `findings`: allocates nothing, so a front-end
  // runs it under its lock even with operator new routed into it.
  void Check(tlsf::CheckFindings* findings) const noexcept;
  // As above, as OK or DataLoss (the message allocates).
  absl::Status Check() const;

  // The part of Check() for the one region holding `ptr`: its heap check
  // (with the debug modes' checks of its blocks), its index entry and the
  // tags of its blocks. O(blocks of that region + tags), plus its free bytes
  // under poisoning. Allocates nothing. kNotInRegion if `ptr` is in no
  // region; otherwise OK or kCorrupt, and then, if `damage` is not null, the
  // problems (naming the region and its first damaged block) are added to
  // *damage.
  ManagementResult CheckRegionOf(
      const void* ptr, tlsf::CheckFindings* damage = nullptr) const noexcept;

  // Writes, line by line: every region (range and usage), every live block
  // (address, size, tag), the totals and the result of Check(). Allocates
  // nothing: each line is formatted in a buffer on the stack (at most
  // kListLineBytes - 1 characters, a long tag cut) and handed to `sink`
  // NUL-terminated (line.data()[line.size()] == '\0'), valid during the
  // call. O(regions + blocks + tags).
  void List(absl::FunctionRef<void(absl::string_view)> sink) const;

  // Installs the handler for misuse and debug findings; nullptr restores
  // the default, which prints one line to stderr. Replaces a report handler.
  void SetErrorHandler(MempErrorHandler handler, void* context) noexcept;
  // As SetErrorHandler, for a handler that wants each report's details
  // (size, first damaged byte, tag); replaces an error handler.
  void SetReportHandler(MempReportHandler handler, void* context) noexcept;

  // The regions' payload ranges and heaps, readable from any thread without
  // the exclusion the rest of RegionSet needs (see fmemp/region_table.h);
  // with UseTable, other sets' regions too.
  const RegionTable& table() const noexcept { return *table_; }

  // Reports misuse found outside RegionSet (e.g. a double free caught by a
  // per-thread cache) as if a call here had found it.
  void ReportMisuse(MempError error, const void* ptr) noexcept {
    Report(error, ptr);
  }

 private:
  // The region overlapping [begin, end), if any.
  const Region* Overlapping(uintptr_t begin, uintptr_t end) const noexcept;
  // The region holding ptr (O(log regions)); fills lookup_.
  Region* FindRegion(const void* ptr) const noexcept;
  void ResetLookup() noexcept;
  // A region sure to serve a request of `search_span` bytes, or nullptr.
  Region* RegionFor(size_t search_span) const noexcept;
  // Files every region in the index under IndexedBin and recomputes solo_:
  // after any change to the regions or to which are allocatable.
  // O(regions).
  void Refile() noexcept;
  // Leaves solo mode: folds solo_'s counters into the aggregates and files
  // it in the index. Before any change to the regions. O(1).
  void Unsolo() noexcept;
  // The aggregates, solo_'s counters included.
  size_t UsedBytes() const noexcept {
    return used_bytes_ + (solo_stats_ != nullptr ? solo_stats_->used_bytes : 0);
  }
  size_t LiveBlocks() const noexcept {
    return live_blocks_ +
           (solo_stats_ != nullptr ? solo_stats_->live_blocks : 0);
  }
  // Sums the heaps' lost_bytes into lost_bytes_. O(regions); only after
  // a heap reported damage or a region moved.
  ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD void RecountLost() const noexcept;
  // Free after FindRegion found r.
  bool FreeFound(Region* r, void* ptr) noexcept;
  // solo_, if ptr may be a block of it and no tag can need dropping: a free
  // there is the heap's free alone (solo_'s counters are read through, a
  // free never raises the peak).
  Region* SoloHolding(const void* ptr) const noexcept;
  // Free and TryFree for every other case, out of line so that their
  // common case saves no registers.
  ABSL_ATTRIBUTE_NOINLINE bool FreeSlow(void* ptr) noexcept;
  ABSL_ATTRIBUTE_NOINLINE FreeOutcome TryFreeSlow(void* ptr) noexcept;
  // The bin `r` must be filed under: its heap's largest free bin while
  // allocatable, kNoBin when not, or when it is solo_ (whose entry is not
  // kept up to date on each call: there is no other region to choose).
  int IndexedBin(const Region& r) const noexcept;
  // How a heap call can move used_bytes, for the aggregate peak: not up (a
  // free), up to where it ends (an allocation), or through a high point
  // the heap's own peak records (a moving realloc holds both blocks).
  enum class PeakEffect { kNone, kAtEnd, kTransient };
  // Runs `op` on region `r` and folds the change of its heap's counters into
  // the aggregates and the index.
  template <PeakEffect kPeak, typename Op>
  auto InRegion(Region* r, Op op) noexcept;
  // InRegion for a free of ptr.
  bool FreeIn(Region* r, void* ptr) noexcept;
  // Allocates from solo_, or through the index (AllocateIndexed), charging
  // the budget if one is set; counts nothing (the owner notes a failure,
  // NoteFailure). REQUIRES: alignment >= kAlignment, a power of two.
  void* AllocateWith(size_t alignment, size_t bytes) noexcept;
  // The index's choice of region for a request (and the fallback regions
  // filed under its own bin); nullptr if none serves it. Counts nothing.
  void* AllocateIndexed(size_t search_span, size_t alignment,
                        size_t bytes) noexcept;
  // Reallocate, without reaping a retiring region it emptied.
  void* ReallocateUnreaped(void* ptr, size_t bytes, bool* no_room) noexcept;
  // AllocateWith under a budget: AllocateUncharged, then the block's span
  // charged, or the block freed (heaps and peak as before) if refused.
  ABSL_ATTRIBUTE_NOINLINE void* AllocateCharged(size_t alignment,
                                                size_t bytes) noexcept;
  // AllocateBatch under a budget: the batch's spans charged at once; if
  // that is refused, the batch is undone (heaps and peak as before) and
  // taken block by block with AllocateCharged. O(count) heap calls on
  // success; twice that on a refusal.
  ABSL_ATTRIBUTE_NOINLINE size_t AllocateBatchCharged(size_t bytes,
                                                      size_t count,
                                                      void** out) noexcept;
  // AllocateWith's allocation, charging nothing.
  void* AllocateUncharged(size_t alignment, size_t bytes) noexcept;
  // Reallocate under a budget or in a retiring region: in place when it
  // does not grow, else a new block (charged), a copy and a free.
  ABSL_ATTRIBUTE_NOINLINE void* ReallocateByMove(Region* r, void* ptr,
                                                 size_t bytes,
                                                 bool* no_room) noexcept;
  // A block's entry in the ledger: its account and the span charged.
  struct Attribution {
    ChargeAccount* account;
    size_t span;
  };
  using Ledger = absl::flat_hash_map<
      const void*, Attribution, absl::Hash<const void*>,
      std::equal_to<const void*>,
      ArenaAllocator<std::pair<const void* const, Attribution>>>;
  // charged_frees_ from budget_ and the ledger: after any change to either.
  void NoteChargedFrees() noexcept {
    charged_frees_ = budget_ != nullptr || !ledger_.empty();
  }
  // The account of the live block at ptr, or nullptr. O(1) expected.
  ChargeAccount* AccountOf(const void* ptr) const noexcept {
    if (ledger_.empty()) return nullptr;
    auto it = ledger_.find(ptr);
    return it != ledger_.end() ? it->second.account : nullptr;
  }
  // Takes `span` of an attributed block off its account (and its budget).
  void CreditAccount(const Attribution& attribution, size_t span) noexcept;
  // After ptr was freed: credits and forgets its entry, if it has one.
  ABSL_ATTRIBUTE_NOINLINE void CreditFreed(const void* ptr) noexcept;
  // After an attributed block at `from` was resized in place to `to`
  // (region r): its entry follows it, its account credited for the span
  // it gave back.
  void Reattribute(const void* from, const void* to, const Region& r) noexcept;
  // After a free that left a retiring region without live blocks
  // (reap_candidate_): removes it and queues its handler.
  ABSL_ATTRIBUTE_NOINLINE void ReapRetired() noexcept;
  void MaybeReapRetired() noexcept {
    if (ABSL_PREDICT_FALSE(reap_candidate_ != nullptr)) ReapRetired();
  }
  // The span a request of `bytes` takes in a region's heap, debug modes
  // included. REQUIRES: bytes <= max_request_.
  size_t RequestSpan(size_t bytes) const noexcept;
  // Debug builds (fmemp/debug_assert.h): asserts what this header states
  // of the set after every change to its regions and on ProbeRegions:
  // regions_ sorted and
  // disjoint, each with its entry in table_; the aggregates equal to the
  // sums of the regions' counters, the peak not below them; solo_ the only
  // allocatable region exactly when there is one; lookup_ naming only
  // regions of this set. O(regions + kLookupSlots x regions).
  void DebugCheckInvariants() const noexcept;
  friend class RegionSetTestPeer;  // fmemp/debug_assert_test.cc

  // Erases the entry of `r` from `table` if it is there (matched by heap:
  // another set's entry at the same address is left alone).
  static void EraseEntry(RegionTable* table, const Region& r);
  // CheckRegionOf's checks, added to `findings`; `with_tags`: also the
  // tags in the region.
  void CheckRegion(const Region& region, bool with_tags,
                   tlsf::CheckFindings* findings) const noexcept;
  void Report(MempError error, const void* ptr) noexcept;
  void Report(const MempReport& report) noexcept;
  MempReport FromHeapReport(const tlsf::HeapReport& report) const;
  static void OnHeapReport(void* context, const tlsf::HeapReport& report);

  // A region and its address, the key of regions_.
  struct Slot {
    uintptr_t begin;
    std::unique_ptr<Region> region;

    // The order of regions_, for std::lower_bound.
    static bool Before(const Slot& slot, uintptr_t begin) {
      return slot.begin < begin;
    }
  };
  // The slot of the region that begins at `begin`, or regions_.end().
  using SlotVector = std::vector<Slot, ArenaAllocator<Slot>>;
  SlotVector::iterator SlotOf(uintptr_t begin) noexcept;
  // Inserts `region` in address order. O(regions).
  void InsertSlot(std::unique_ptr<Region> region);

  // Every region, in address order (FindRegion bisects it). The array and
  // the Region records live in the metadata arena: adding or removing a
  // region never calls operator new.
  SlotVector regions_;
  RegionIndex index_;
  // The only allocatable region, when exactly one is (nullptr otherwise).
  // Allocation then goes straight to its heap and neither reads nor refiles
  // the index, and its heap's used and live counts are read through rather
  // than folded into used_bytes_ and live_blocks_ on every call: the common
  // single-region case pays no index or aggregate work but the peak's.
  Region* solo_ = nullptr;
  const tlsf::HeapStats* solo_stats_ = nullptr;  // solo_'s heap's, for Probe
  // FindRegion's first try, before its bisection: the region it found last
  // for each chunk of 2^lookup_shift_ bytes (chunk number modulo
  // kLookupSlots), or nullptr. Emptied, and the chunk size set from the
  // smallest region, on any change to the regions (ResetLookup).
  // Why this cache and not the region map (table_, which holds the same
  // ranges): a RegionTable lookup with a one-entry Hint misses whenever
  // consecutive frees land in different regions and then pays the sequence
  // lock and a bisection of atomic slots: in the callgrind region-count
  // probes (docs/BENCHMARKS.md) a free at 64 regions took a third more
  // instructions through the table than through this cache, where issue 14
  // allows 5%. At one region neither is read (solo_ serves the free).
  static constexpr size_t kLookupSlots = 64;
  mutable Region* lookup_[kLookupSlots] = {};
  int lookup_shift_ = 0;
  RegionTable own_table_;
  RegionTable* table_ = &own_table_;  // own_table_, or UseTable's
  Budget* budget_ = nullptr;          // UseBudget's, charged if not null
  // Whether a free has more to do than the heap's free: budget_ is set or
  // the ledger holds an entry (NoteChargedFrees). One flag, so that the
  // free paths test one byte for both.
  bool charged_frees_ = false;
  // AllocateFor's attributions (see ChargeAccount), and their spans' sum.
  Ledger ledger_;
  size_t attributed_bytes_ = 0;
  // A retiring region a free just emptied (FreeIn), reaped by the public
  // call before it returns; and the handlers of reaped regions.
  Region* reap_candidate_ = nullptr;
  std::vector<RetiredRegion, ArenaAllocator<RetiredRegion>> retired_;
  bool limit_refused_ = false;   // TakeLimitRefusal's answer
  const void* owner_ = nullptr;  // what this set's entries name
  absl::flat_hash_map<const void*, BlockTag, absl::Hash<const void*>,
                      std::equal_to<const void*>,
                      ArenaAllocator<std::pair<const void* const, BlockTag>>>
      tags_;
  size_t capacity_bytes_ = 0;
  // Of every region but solo_ (UsedBytes, LiveBlocks: of all).
  size_t used_bytes_ = 0;
  size_t peak_used_bytes_ = 0;
  size_t live_blocks_ = 0;
  uint64_t failed_allocations_ = 0;
  uint64_t invalid_frees_ = 0;
  uint64_t limit_refusals_ = 0;
  // Sum of the heaps' lost_bytes. A heap loses bytes only on a call that
  // also reports damage, so every heap report (and every Attach/Detach)
  // marks the sum stale, and the next Probe recounts it: O(regions) after
  // damage, nothing on the calls' paths.
  mutable size_t lost_bytes_ = 0;
  mutable bool lost_stale_ = false;
  MempErrorHandler error_handler_ = nullptr;
  MempReportHandler report_handler_ = nullptr;
  void* error_context_ = nullptr;
  DebugOptions options_;
  // What the allocation path reads for the debug modes: the bytes canaries
  // add to each request (tlsf::Heap::kCanaryExtraBytes, or 0), and the
  // largest request a heap then serves.
  size_t canary_extra_ = 0;
  size_t max_request_ = tlsf::kMaxRequest;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_REGION_SET_H_
