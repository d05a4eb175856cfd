// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/memp.h
//
// fmemp::Memp<LockPolicy>: memory from several TLSF heaps spread over
// non-contiguous regions, behind one lock policy from sync/ (NoLock,
// SpinLock, Mutex). This is the C++ front-end; the SDK's C API (fmemp/fmemp.h)
// is a thin layer over it.
//
//   fmemp::Memp<fmemp::sync::Mutex> memp;
//   absl::Status s = memp.AddRegion(buffer, buffer + size);
//   void* p = memp.Allocate(100);
//   memp.Free(p);
//
// Guarantees
// * Thread safety: every member takes the policy's lock exactly once (in
//   this file, the only place the lock is applied; a request that fails
//   for lack of space or bad input takes it again to read the out-of-memory
//   handler, to retry and to count the failure), so Memp is safe from many
//   threads when LockPolicy::kThreadSafe, and for one thread at a time with
//   NoLock. Calls never re-enter the lock (calloc does not call malloc under
//   it), so a non-recursive lock never deadlocks.
// * Complexity: Allocate/AllocateAligned/Free/Reallocate are O(1) in block
//   count and region count, except that finding the region owning a pointer
//   is O(log regions). Probe is O(1). Region management, ProbeRegions, Check
//   and List walk regions or blocks.
// * Failure: the hot path is noexcept and returns nullptr (or false);
//   management calls change nothing on error. Each has two forms: Try*
//   returns a ManagementResult (fmemp/management_error.h), which never
//   allocates; the absl::Status form converts it after the lock is
//   released, so the only allocation is the returned Status's message, made
//   outside the lock: a program whose operator new is routed into this Memp
//   gets its Status (the C API uses the Try* forms and allocates nothing on
//   failure). Misuse
//   (foreign, interior, double frees) is reported to the error handler,
//   counted in MempStats::invalid_frees, and leaves every heap intact.
// * Memory: bookkeeping (TLSF control structures, region table, tags) comes
//   from fmemp's metadata arena (fmemp/metadata_arena.h: mmap), never from
//   the regions and never from malloc or operator new.
//
// Allocate(0) returns a unique minimum-size block. Reallocate(p, 0) frees p
// and returns nullptr. Calloc checks count * size for overflow.

#ifndef FMEMP_FMEMP_MEMP_H_
#define FMEMP_FMEMP_MEMP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmemp/management_error.h"
#include "fmemp/region_set.h"
#include "sync/lock_policy.h"

namespace fmemp {

template <typename LockPolicy>
class Memp {
  static_assert(sync::kIsLockPolicy<LockPolicy>,
                "LockPolicy must meet the contract in sync/lock_policy.h");

 public:
  using Lock = LockPolicy;
  static constexpr bool kThreadSafe = LockPolicy::kThreadSafe;

  Memp() = default;
  Memp(const Memp&) = delete;
  Memp& operator=(const Memp&) = delete;

  // --- Regions (see RegionSet for the errors) ---

  absl::Status AddRegion(void* begin, void* end) {
    return TryAddRegion(begin, end).ToStatus();
  }
  absl::Status AddRegion(void* begin, size_t bytes) {
    if (bytes > UINTPTR_MAX - reinterpret_cast<uintptr_t>(begin)) {
      return ManagementResult(ManagementError::kWrapsAround, begin).ToStatus();
    }
    return AddRegion(begin, static_cast<char*>(begin) + bytes);
  }
  absl::Status RemoveRegion(void* begin) {
    return TryRemoveRegion(begin).ToStatus();
  }
  ManagementResult TryAddRegion(void* begin, void* end) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.AddRegion(begin, end);
  }
  ManagementResult TryRemoveRegion(void* begin) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.RemoveRegion(begin);
  }
  // Forgets every region and block (live or not) and zeroes the counters.
  void Clear() {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.Clear();
  }

  // --- Hot path ---
  //
  // When a well-formed request fails for lack of space, the out-of-memory
  // handler (SetOutOfMemoryHandler) is told the size and alignment, outside
  // the lock, and may make room (free blocks, AddRegion); if it returns true
  // the request is tried once more. Malformed requests (bad alignment,
  // calloc overflow, sizes above tlsf::kMaxRequest) fail without calling it.
  // A call that returns nullptr for lack of space or bad input counts one
  // failed allocation (MempStats::failed_allocations), under the lock, where
  // it is decided; a reallocation refused as misuse counts in invalid_frees
  // instead, and a request the handler's retry serves counts nothing.

  void* Allocate(size_t bytes) noexcept {
    return WithRetry(bytes, tlsf::kAlignment, [bytes](RegionSet& regions) {
      return regions.Allocate(bytes);
    });
  }
  void* AllocateAligned(size_t alignment, size_t bytes) noexcept {
    return WithRetry(bytes, alignment, [alignment, bytes](RegionSet& regions) {
      return regions.AllocateAligned(alignment, bytes);
    });
  }
  // Zeroed count * size bytes; nullptr (counted) on overflow or exhaustion.
  // With a tag, as AllocateTagged. The zeroing happens outside the lock.
  void* Calloc(size_t count, size_t size,
               const BlockTag* tag = nullptr) noexcept {
    size_t bytes = 0;
    // Above kMaxRequest no region serves it and the out-of-memory handler
    // is not asked: fail as Allocate would (this also tells the compiler
    // that the memset below is bounded).
    if (__builtin_mul_overflow(count, size, &bytes) ||
        bytes > tlsf::kMaxRequest) {
      sync::ScopedLock<LockPolicy> hold(lock_);
      regions_.NoteFailure();
      return nullptr;
    }
    void* p = WithRetry(bytes, tlsf::kAlignment, [bytes, tag](RegionSet& r) {
      void* block = r.Allocate(bytes);
      if (block != nullptr && tag != nullptr) r.SetTag(block, *tag);
      return block;
    });
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  void* Reallocate(void* ptr, size_t bytes) noexcept {
    if (ptr == nullptr) return Allocate(bytes);
    bool no_room = false;
    return WithRetry(
        bytes, tlsf::kAlignment,
        [ptr, bytes, &no_room](RegionSet& regions) {
          return regions.Reallocate(ptr, bytes, &no_room);
        },
        &no_room);
  }
  bool Free(void* ptr) noexcept {
    bool freed, retired;
    {
      sync::ScopedLock<LockPolicy> hold(lock_);
      freed = regions_.Free(ptr);
      retired = regions_.has_retired();
    }
    if (ABSL_PREDICT_FALSE(retired)) RunRetiredHandlers();
    return freed;
  }
  // Who counts a call that returns nullptr (MempStats::failed_allocations):
  // this Memp, or a layer over it whose own call then fails (a thread heap that
  // fell back to these regions counts the failure among its figures).
  enum class FailureCountedBy { kThisMemp, kCaller };
  // An allocation made by attempt(regions) under the lock, with Allocate's
  // out-of-memory handling (the handler, then attempt once more); attempt
  // returns the block or nullptr, and nullptr means no room (or bad input).
  // For a front-end that wraps the allocation (ThreadHeapMemp counts its used
  // bytes there). A nullptr result is counted here only with kThisMemp.
  template <typename Attempt>
  void* AllocateWith(
      size_t bytes, size_t alignment, Attempt attempt,
      FailureCountedBy counted_by = FailureCountedBy::kThisMemp) noexcept {
    return WithRetry(bytes, alignment, attempt, /*no_room=*/nullptr,
                     counted_by);
  }
  size_t UsableSize(const void* ptr) const noexcept {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.UsableSize(ptr);
  }

  // As Allocate / AllocateAligned, recording where the block came from; the
  // tag is listed by List() until the block is freed. The tag table lives in
  // the metadata arena.
  void* AllocateTagged(size_t alignment, size_t bytes, const BlockTag& tag) {
    return WithRetry(bytes, alignment,
                     [alignment, bytes, &tag](RegionSet& regions) {
                       void* p = regions.AllocateAligned(alignment, bytes);
                       if (p != nullptr) regions.SetTag(p, tag);
                       return p;
                     });
  }
  void* ReallocateTagged(void* ptr, size_t bytes, const BlockTag& tag) {
    bool no_room = false;
    return WithRetry(
        bytes, tlsf::kAlignment,
        [ptr, bytes, &tag, &no_room](RegionSet& regions) {
          void* p = regions.Reallocate(ptr, bytes, &no_room);
          if (p != nullptr) regions.SetTag(p, tag);
          return p;
        },
        &no_room);
  }

  // Called, outside the lock, when a well-formed request finds no room:
  // `bytes` and `alignment` as requested. Return true to have the request
  // tried once more (after freeing blocks or adding a region). The handler
  // may call any member of this Memp. nullptr removes it.
  using OutOfMemoryHandler = bool (*)(void* context, size_t bytes,
                                      size_t alignment);
  void SetOutOfMemoryHandler(OutOfMemoryHandler handler, void* context) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    oom_handler_ = handler;
    oom_context_ = context;
  }

  // --- Retirement (RegionSet::Retire) ---
  //
  // The region AddRegion was given `begin` for gets no new block from now
  // on; its live blocks stay valid, and when the last is freed (by any
  // thread, any path) the region is removed and `handler(context, begin,
  // end)` runs on that thread, outside the lock (it may munmap the
  // region, or call this Memp). A region without live blocks goes at once
  // (the handler runs before this call returns). Errors, nothing changed:
  // kNoRegion; kRetiring. CancelRetire: kNoRegion; kNotRetiring. ProbeRegions
  // shows a retiring region (RegionStats::retiring) and its live bytes.
  ManagementResult TryRetireRegion(void* begin,
                                   RegionSet::RetiredHandler handler,
                                   void* context) {
    const ManagementResult result = WithRegions([&](RegionSet& regions) {
      return regions.Retire(begin, handler, context);
    });
    RunRetiredHandlersIfDue();  // an empty region went at once
    return result;
  }
  ManagementResult TryCancelRetire(void* begin) {
    return WithRegions(
        [&](RegionSet& regions) { return regions.CancelRetire(begin); });
  }
  absl::Status RetireRegion(void* begin, RegionSet::RetiredHandler handler,
                            void* context) {
    return TryRetireRegion(begin, handler, context).ToStatus();
  }
  absl::Status CancelRetire(void* begin) {
    return TryCancelRetire(begin).ToStatus();
  }

  // --- Budget (fmemp/budget.h) ---
  //
  // A hard limit on the bytes taken from the regions (block spans, headers
  // included: MempStats::used_bytes, plus what per-thread caches park):
  // an allocation that would pass it returns nullptr, counted in
  // failed_allocations and limit_refusals, without asking the out-of-memory
  // handler; usage never passes it, however many threads race. A limit
  // below the usage is allowed: refusals start, nothing is freed.
  // Budget::kNoLimit removes it. Before the first limit the regions are not
  // charged at all; from then on each heap allocation and free is charged
  // (one atomic operation; a per-thread cache's hits are not).
  void SetLimit(size_t bytes) noexcept {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.UseBudget(&budget_);
    budget_.SetLimit(bytes);
  }
  // A soft limit: when usage goes above `bytes`, `handler` runs once,
  // outside the lock, on the thread whose allocation crossed it (it may
  // free, e.g. evict); it runs again only after usage has fallen below
  // bytes - hysteresis and crossed once more. A null handler removes it.
  void SetSoftLimit(size_t bytes, size_t hysteresis,
                    Budget::SoftLimitHandler handler, void* context) noexcept {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.UseBudget(&budget_);
    budget_.SetSoftLimit(bytes, hysteresis, handler, context);
  }
  // Removes both limits and stops charging (the C API's FMempInit: a new
  // life cycle starts without limits). O(1).
  void RemoveLimits() noexcept {
    sync::ScopedLock<LockPolicy> hold(lock_);
    budget_.SetLimit(Budget::kNoLimit);
    budget_.SetSoftLimit(Budget::kNoLimit, 0, nullptr, nullptr);
    regions_.UseBudget(nullptr);
  }
  // The budget (figures: usage, limits, refusals). Its charges move only
  // once a limit was set. Thread-safe (atomics).
  Budget& budget() noexcept { return budget_; }
  const Budget& budget() const noexcept { return budget_; }

  // --- Observation ---

  MempStats Probe() const noexcept {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.Probe();
  }
  // As Probe, then add(stats) under the same lock acquisition: a layer on
  // this front-end folds in figures that move together with the regions
  // (fmemp/thread_heap.h). `add` must not call into this Memp.
  MempStats ProbeAnd(absl::FunctionRef<void(MempStats&)> add) const {
    sync::ScopedLock<LockPolicy> hold(lock_);
    MempStats stats = regions_.Probe();
    add(stats);
    return stats;
  }
  RegionStatsList ProbeRegions() const {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.ProbeRegions();
  }
  void ResetPeak() noexcept {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.ResetPeak();
  }
  // Every region's integrity (RegionSet::Check): OK or DataLoss. The
  // findings are gathered under the lock without allocating; the Status
  // (whose message allocates) is built after the lock is released.
  absl::Status Check() const {
    tlsf::CheckFindings findings;
    TryCheck(&findings).IgnoreError();
    return findings.ToStatus();
  }
  // As RegionSet::Check: allocates nothing; kCorrupt if it added a problem
  // to `findings`.
  ManagementResult TryCheck(tlsf::CheckFindings* findings) const {
    const size_t found_before = findings->count();
    {
      sync::ScopedLock<LockPolicy> hold(lock_);
      regions_.Check(findings);
    }
    if (findings->count() == found_before) return {};
    return ManagementError::kCorrupt;
  }
  // Writes the listing (see RegionSet::List) to `sink`, under the lock:
  // `sink` must not call into this Memp.
  void List(absl::FunctionRef<void(absl::string_view)> sink) const {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.List(sink);
  }
  // For pthread_atfork handlers only: hold the lock across fork() so the
  // child inherits a consistent heap; the parent then unlocks it, and the
  // child, whose only thread is the forking one, starts from a fresh lock
  // (a lock such as absl::Mutex may have been mid-update by a thread that
  // does not exist in the child, so unlocking it there can hang).
  void LockForFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(lock_) { lock_.lock(); }
  void UnlockAfterFork() ABSL_UNLOCK_FUNCTION(lock_) { lock_.unlock(); }
  void ResetLockInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    new (&lock_) LockPolicy();
  }

  void SetErrorHandler(MempErrorHandler handler, void* context) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.SetErrorHandler(handler, context);
  }
  // Reports with the block's size, first damaged byte and tag; replaces the
  // error handler (see RegionSet::SetReportHandler).
  void SetReportHandler(MempReportHandler handler, void* context) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    regions_.SetReportHandler(handler, context);
  }

  // --- Debug modes (RegionSet::SetDebugOptions) ---

  // Poisoning, canaries and ASan poisoning for every region; only while
  // there is no region (FailedPrecondition otherwise, nothing changed).
  absl::Status SetDebugOptions(const DebugOptions& options) {
    return TrySetDebugOptions(options).ToStatus();
  }
  ManagementResult TrySetDebugOptions(const DebugOptions& options) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.SetDebugOptions(options);
  }
  DebugOptions debug_options() const {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.debug_options();
  }
  // The integrity check of the one region holding ptr (NotFound if none):
  // O(blocks in it), so it can run often in a debug build. A damaged
  // region's DataLoss status is described after the lock is released.
  absl::Status CheckRegionOf(const void* ptr) const {
    tlsf::CheckFindings damage;
    return CheckToStatus(TryCheckRegionOf(ptr, &damage), damage);
  }
  // As RegionSet::CheckRegionOf: allocates nothing.
  ManagementResult TryCheckRegionOf(
      const void* ptr, tlsf::CheckFindings* damage = nullptr) const {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return regions_.CheckRegionOf(ptr, damage);
  }

  // --- For layers built on this front-end (fmemp/thread_cache.h) ---

  // Runs fn(RegionSet&) under the lock and returns its result: one lock
  // acquisition for a batch of operations. `fn` must not call into this
  // Memp. Runs no user handler: the handlers of regions that retirement
  // removed meanwhile wait for RunRetiredHandlersIfDue, which the layer
  // calls once its own operation is over (a layer calls this inside its
  // per-thread operations, where a handler must not run).
  template <typename Fn>
  auto WithRegions(Fn fn) {
    sync::ScopedLock<LockPolicy> hold(lock_);
    auto result = fn(regions_);
    if (ABSL_PREDICT_FALSE(regions_.has_retired())) {
      retired_due_.store(true, std::memory_order_relaxed);
    }
    return result;
  }
  // Runs the handlers that WithRegions left waiting, on the calling thread.
  // Call it with no lock of this Memp (or of a layer) held and outside
  // every per-thread operation of a layer. One relaxed load when none
  // waits; each handler runs once, whichever thread calls this.
  void RunRetiredHandlersIfDue() noexcept {
    if (ABSL_PREDICT_FALSE(retired_due_.load(std::memory_order_relaxed))) {
      RunRetiredHandlers();
    }
  }
  template <typename Fn>
  auto WithRegions(Fn fn) const {
    sync::ScopedLock<LockPolicy> hold(lock_);
    return fn(static_cast<const RegionSet&>(regions_));
  }
  // The lock-free region lookup; safe from any thread (region_table.h).
  const RegionTable& table() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return regions_.table();
  }

 private:
  // Runs attempt(regions_) under the lock; if it fails for lack of space,
  // asks the out-of-memory handler (outside the lock) and, if it says so,
  // runs it once more. The call's outcome is counted where it is decided:
  // a nullptr result is one failed allocation, noted under the lock that
  // saw it (unless counted_by says the caller counts it). no_room: nullptr
  // for an allocation, whose every nullptr is a failure; for a
  // reallocation, what attempt says of its nullptr (false: misuse,
  // reported and not a failure; or a free, for 0 bytes). Only the success
  // path is inline.
  template <typename Attempt>
  void* WithRetry(
      size_t bytes, size_t alignment, Attempt attempt,
      const bool* no_room = nullptr,
      FailureCountedBy counted_by = FailureCountedBy::kThisMemp) noexcept {
    void* p;
    bool refused_by_limit = false;
    bool retired = false;
    {
      sync::ScopedLock<LockPolicy> hold(lock_);
      p = attempt(regions_);
      if (ABSL_PREDICT_FALSE(p == nullptr)) {
        refused_by_limit = NoteIfLimitRefused(counted_by);
      }
      // A reallocation (no_room given) may have emptied a retiring region.
      retired = no_room != nullptr && regions_.has_retired();
    }
    if (ABSL_PREDICT_FALSE(retired)) RunRetiredHandlers();
    budget_.RunSoftHandlerIfDue();
    if (ABSL_PREDICT_TRUE(p != nullptr)) return p;
    if (refused_by_limit || (no_room != nullptr && !*no_room)) return nullptr;
    return RetryOutOfMemory(bytes, alignment, attempt, no_room, counted_by);
  }
  // After an attempt returned nullptr, under the lock: if the budget
  // refused it, counts the failure (unless the caller does) and the limit
  // refusal, and returns true.
  bool NoteIfLimitRefused(FailureCountedBy counted_by) noexcept
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_) {
    if (!regions_.TakeLimitRefusal()) return false;
    if (counted_by == FailureCountedBy::kThisMemp) regions_.NoteFailure();
    regions_.NoteLimitRefusal();
    return true;
  }

  // WithRetry after its first attempt failed for lack of space or bad input.
  template <typename Attempt>
  ABSL_ATTRIBUTE_NOINLINE void* RetryOutOfMemory(
      size_t bytes, size_t alignment, Attempt attempt, const bool* no_room,
      FailureCountedBy counted_by) noexcept {
    const bool counted_here = counted_by == FailureCountedBy::kThisMemp;
    OutOfMemoryHandler handler = nullptr;
    void* context = nullptr;
    const bool well_formed = bytes <= tlsf::kMaxRequest &&
                             tlsf::IsPowerOfTwo(alignment) &&
                             alignment <= tlsf::Heap::kMaxAlignment;
    {
      sync::ScopedLock<LockPolicy> hold(lock_);
      if (oom_handler_ == nullptr || !well_formed) {
        if (counted_here) regions_.NoteFailure();  // the call fails here
        return nullptr;
      }
      handler = oom_handler_;
      context = oom_context_;
    }
    const bool retry = handler(context, bytes, alignment);
    void* p = nullptr;
    {
      sync::ScopedLock<LockPolicy> hold(lock_);
      p = retry ? attempt(regions_) : nullptr;
      // Refused by the handler, by the limit, or no room on the retry (a
      // retried reallocation may meet misuse instead: the handler freed
      // the block).
      if (p == nullptr && !NoteIfLimitRefused(counted_by) && counted_here &&
          (no_room == nullptr || *no_room)) {
        regions_.NoteFailure();
      }
    }
    budget_.RunSoftHandlerIfDue();
    return p;
  }

  // Takes the records of retired regions under the lock and runs their
  // handlers after it. Out of line: rare.
  ABSL_ATTRIBUTE_NOINLINE void RunRetiredHandlers() noexcept {
    std::vector<RegionSet::RetiredRegion,
                ArenaAllocator<RegionSet::RetiredRegion>>
        retired;
    {
      sync::ScopedLock<LockPolicy> hold(lock_);
      regions_.TakeRetired(&retired);
      retired_due_.store(false, std::memory_order_relaxed);
    }
    for (const RegionSet::RetiredRegion& r : retired) {
      if (r.handler != nullptr) r.handler(r.context, r.begin, r.end);
    }
  }

  mutable LockPolicy lock_;
  RegionSet regions_ ABSL_GUARDED_BY(lock_);
  Budget budget_;  // atomics; charged by regions_ once a limit is set
  // Whether WithRegions left retired regions' handlers waiting (written
  // under the lock; read without it by RunRetiredHandlersIfDue).
  std::atomic<bool> retired_due_{false};
  OutOfMemoryHandler oom_handler_ ABSL_GUARDED_BY(lock_) = nullptr;
  void* oom_context_ ABSL_GUARDED_BY(lock_) = nullptr;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_MEMP_H_
