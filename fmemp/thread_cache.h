// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/thread_cache.h
//
// fmemp::CachingMemp<LockPolicy>: the fmemp front-end with a per-thread
// cache of small free blocks in front of the shared TLSF regions, so that
// most malloc and free calls of a multithreaded server touch only memory of
// their own thread.
//
//   fmemp::CachingMemp<fmemp::sync::SpinLock> memp;  // options: CacheOptions
//   memp.AddRegion(buffer, size);
//   void* p = memp.Allocate(100);   // from this thread's cache when it can
//   memp.Free(p);                   // into the freeing thread's cache
//
// Design
// * The cache itself (size-class lists, the parked-block marker, validated
//   links, the byte budget, refills and trims) is fmemp::SizeClassCache
//   (fmemp/size_class_cache.h); this front-end gives each thread one, with
//   the shared regions behind LockPolicy as its Source (SharedSource), and
//   adds what is particular to sharing caches between threads: the drainer
//   protocol, fork and Clear.
// * Hit (the fast path): a pop from or a push onto the thread's list for
//   the class. No lock: two relaxed stores and one load of the thread's own
//   flags; for a malloc, the popped block's check (aligned, inside the
//   region of the thread's last lookup, marked); for a free, a lock-free
//   lookup of the block's region (RegionTable, answered from the thread's
//   last lookup while no region changed), one atomic load of its header to
//   learn its span, and one compare-exchange on the block's own marker word
//   (a line no other thread touches unless it frees the same block). The
//   rare branches (refill, trim, misuse, first use by a thread) are out of
//   line.
// * Miss: a refill takes the shared lock once and allocates a batch (slow
//   start, see SizeClassCache), after looking in the depot; an overfull
//   cache trims down to half its budget, batch by batch, into the depot
//   or, when it is full, the regions under one lock. The shared lock is
//   taken once per batch, not per call.
// * A block freed by a thread other than the one that allocated it goes into
//   the freeing thread's cache, as any free does. Once that cache is full,
//   each further free hands the newest batch of its class (one refill's
//   worth) to the depot: a bounded, shared stack of parked batches by
//   class, behind its own lock held for O(1) per batch, where every
//   refill looks first. So blocks freed elsewhere reach the allocating
//   thread's next refill, still parked, without the regions' lock or TLSF
//   work; only when the depot is full does a batch go back to the regions.
//   Why this and not a queue to the allocating thread (as ThreadHeapMemp's
//   remote frees): blocks of the shared regions carry no owner to queue
//   to, memory held stays bounded by the caches' budgets plus the depot's
//   whatever the pattern, no thread waits on another, and an idle
//   allocating thread strands nothing. Measured with mimalloc-bench's
//   xmalloc-test (one thread allocates, another frees; bench/programs):
//   frees per CPU second went from ~0.45x glibc's to ~0.7-0.9x. A trim
//   offers each batch it gives up to the depot first (the regions take
//   what the depot has no room for); a thread's exit and a drain return
//   blocks to the regions directly.
// * Each cache holds at most CacheOptions::max_bytes_per_thread bytes,
//   counting block spans, and the depot at most kDepotBudgets (4) times
//   that; the bounds hold under any pattern. DrainAllCaches empties the
//   depot too.
// * When a thread exits, its caches go back to the shared regions
//   (fmemp/thread_registry.h). FlushThisThread() does that on demand;
//   DrainAllCaches() does it for every thread, synchronously, even for
//   threads that are idle: the drainer stops a cache with an asymmetric
//   barrier (fmemp/asymmetric_barrier.h), so the fast path needs no
//   read-modify-write on a shared word.
// * RemoveRegion takes the region out of service, drains every cache and
//   then removes it: blocks parked in caches never keep a region alive;
//   live blocks still refuse the removal.
//
// Guarantees
// * Thread safety: every member may be called from any thread (LockPolicy
//   must be thread-safe).
// * Complexity: as Memp, plus O(1) on a hit. Probe and the drains are
//   O(threads that used this front-end).
// * Misuse: a double free (or a realloc) of a block that is parked in any
//   thread's cache is refused and reported as MempError::kDoubleFree (and
//   counted in invalid_frees): a parked block carries a marker word, and
//   the marker is authoritative (see "The parked-block marker" below).
//   UsableSize of a parked block is 0. Two threads freeing one block at the
//   same moment: exactly one parks it, the other is refused. Foreign and
//   interior pointers take the locked path and are reported as by Memp.
// * A damaged cache list (a write to a parked block's link after its free)
//   is not followed: every block is validated before it is handed out or
//   walked (inside a region, aligned, carrying its marker), and a bad link
//   drops the rest of that class's list (those blocks stay allocated, never
//   reused), reported once as MempError::kUseAfterFreeWrite and counted.
//
// The parked-block marker (fmemp/size_class_cache.h has the protocol)
// * Its key is drawn per front-end at construction (and again by Clear).
// * What it does not catch: a double free that races the winner's cache
//   returning that very block to the heap (a trim, between the loser's
//   header check and its compare-exchange) can park a block that is free in
//   its heap. That needs a double free, a racing free and a trim of the
//   same block within a few instructions; the heap's own checks remain.
// * Accounting: Probe().used_bytes excludes cached blocks and
//   Probe().cached_bytes counts them: used + cached + free + lost ==
//   capacity.
//   peak_used_bytes and per-region figures count cached blocks as used.
// * Tagged blocks (AllocateTagged) never enter a cache once tagging is used.
// * fork(): the child keeps the forking thread's cache; other threads'
//   caches stay parked (their blocks count as cached) in the child, whole
//   (LockForFork stopped them), until DrainAllCaches returns them.
// * User handlers (out of memory, soft limit, retired regions) run once the
//   calling thread's cache operation is over, and a drain's once every cache
//   is resumed and the registry released, with no lock of this front-end
//   held: a handler may call any member, DrainAllCaches included (a
//   retiring region emptied by a thread's exit: on that thread, after the
//   registry's lock is released, AfterThreadExit). Misuse reports run under
//   the shared lock (or in a cache operation) and must not call back.

#ifndef FMEMP_FMEMP_THREAD_CACHE_H_
#define FMEMP_FMEMP_THREAD_CACHE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/asymmetric_barrier.h"
#include "fmemp/drain_protocol.h"
#include "fmemp/memp.h"
#include "fmemp/no_wait_lock.h"
#include "fmemp/region_table.h"
#include "fmemp/size_class_cache.h"
#include "fmemp/thread_registry.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp {

namespace thread_cache_internal {

// One thread's cache for one CachingMemp: the size-class lists
// (fmemp/size_class_cache.h) and the protocol with a drainer
// (fmemp/drain_protocol.h).
class Cache final : public ThreadState, public Drainable {
 public:
  explicit Cache(const CacheOptions& options) : lists(options) {}

  // Owned by the thread (or by a drainer that stopped it); its bytes() and
  // blocks() are read by Probe() from any thread.
  SizeClassCache lists;
};

}  // namespace thread_cache_internal

template <typename LockPolicy>
class CachingMemp final : private ThreadStateOwner {
  static_assert(LockPolicy::kThreadSafe,
                "per-thread caches share their regions between threads");
  using Cache = thread_cache_internal::Cache;

 public:
  using Lock = LockPolicy;
  static constexpr bool kThreadSafe = true;
  static constexpr size_t kMaxCachedSpan = SizeClassCache::kMaxCachedSpan;
  // The largest request (usable bytes) a cached block serves.
  static constexpr size_t kMaxCachedRequest = SizeClassCache::kMaxCachedRequest;
  // The depot holds at most this many times max_bytes_per_thread.
  static constexpr size_t kDepotBudgets = 4;

  explicit CachingMemp(CacheOptions options = {})
      : options_(options),
        marker_key_(NewMarkerKey(this, owner_id())),
        mode_((options.max_bytes_per_thread == 0 ? kNoCacheBudget : 0) |
              (kAsymmetricBarrierEnabled && !HeavyBarrierIsMembarrier()
                   ? kFencedBarrier
                   : 0)) {
    shared_.SetOutOfMemoryHandler(&CachingMemp::OnOutOfMemory, this);
    ForgetDepot();  // links the depot's records into its free list
    // Initialise the barrier's (above) and the registry's function-local
    // statics now, not on some thread's first call: a fork() while another
    // thread holds such an initialisation guard would hang the child.
    RegistryMutex();
  }
  ~CachingMemp() { DetachThreadStates(this); }

  // --- Regions ---

  // Each management call has Memp's two forms: Try* returns a
  // ManagementResult and never allocates; the absl::Status form converts it
  // after every lock is released (fmemp/management_error.h).
  absl::Status AddRegion(void* begin, void* end) {
    return shared_.AddRegion(begin, end);
  }
  absl::Status AddRegion(void* begin, size_t bytes) {
    return shared_.AddRegion(begin, bytes);
  }
  ManagementResult TryAddRegion(void* begin, void* end) {
    return shared_.TryAddRegion(begin, end);
  }
  // As Memp::RemoveRegion, after taking the region out of service and
  // returning every cache's blocks, so that blocks parked in caches do not
  // keep it alive. On failure the region is back in service.
  absl::Status RemoveRegion(void* begin) {
    return TryRemoveRegion(begin).ToStatus();
  }
  ManagementResult TryRemoveRegion(void* begin) {
    ManagementResult result = shared_.WithRegions(
        [begin](RegionSet& r) { return r.SetAllocatable(begin, false); });
    // A retiring region is out of service already (and stays out below).
    if (!result.ok() && result.error() != ManagementError::kRetiring) {
      return result;
    }
    DrainAllCaches();
    result = shared_.TryRemoveRegion(begin);
    if (!result.ok()) {
      shared_
          .WithRegions(
              [begin](RegionSet& r) { return r.SetAllocatable(begin, true); })
          .IgnoreError();
    }
    return result;
  }
  // As Memp's retirement (fmemp/memp.h). Blocks of the region that caches
  // (and the depot) hold are given back, never handed out: the region's
  // table entry leaves the caches' owner (RegionTable::RetiringOwner), so
  // no cache parks one of its blocks from then on, a pop gives back one
  // parked before (SizeClassCache::CheckLink), and every cache is drained
  // before this returns, so the region goes as soon as the program has
  // freed its own blocks. O(threads + parked blocks).
  ManagementResult TryRetireRegion(void* begin,
                                   RegionSet::RetiredHandler handler,
                                   void* context) {
    const ManagementResult result =
        shared_.TryRetireRegion(begin, handler, context);
    if (result.ok()) DrainAllCaches();
    return result;
  }
  ManagementResult TryCancelRetire(void* begin) {
    return shared_.TryCancelRetire(begin);
  }
  absl::Status RetireRegion(void* begin, RegionSet::RetiredHandler handler,
                            void* context) {
    return TryRetireRegion(begin, handler, context).ToStatus();
  }
  absl::Status CancelRetire(void* begin) {
    return TryCancelRetire(begin).ToStatus();
  }

  // Forgets every region and block, cached or not, and zeroes the counters.
  // Touches no block: the regions' memory may already be gone. REQUIRES: no
  // other call on this front-end runs meanwhile.
  void Clear() {
    DropAllCaches();
    shared_.Clear();
  }

  // --- Hot path (Memp's semantics) ---

  void* Allocate(size_t bytes) noexcept {
    // The hit, inline and without a call; anything else (a thread's first
    // call, an empty list, a drainer at work) takes AllocateSlow.
    if (bytes <= kMaxCachedRequest && (mode_.load(std::memory_order_relaxed) &
                                       (kNoCache | kFencedBarrier)) == 0) {
      if (Cache* c = static_cast<Cache*>(LastUsedThreadStateFor(this))) {
        const size_t span = tlsf::SpanForRequest(bytes);
        void* p = OwnerOpUnlessDiverted(
            c, static_cast<void*>(nullptr), [this, c, span] {
              return c->lists.PopFast(span, shared_.table(), marker_key());
            });
        if (ABSL_PREDICT_TRUE(p != nullptr)) return p;
      }
    }
    return AllocateSlow(bytes);
  }
  void* AllocateAligned(size_t alignment, size_t bytes) noexcept {
    if (alignment <= tlsf::kAlignment && tlsf::IsPowerOfTwo(alignment)) {
      return Allocate(bytes);
    }
    return shared_.AllocateAligned(alignment, bytes);
  }
  void* Calloc(size_t count, size_t size,
               const BlockTag* tag = nullptr) noexcept {
    size_t bytes = 0;
    if (tag != nullptr || __builtin_mul_overflow(count, size, &bytes)) {
      if (tag != nullptr) NoteTagging();
      return shared_.Calloc(count, size, tag);
    }
    void* p = Allocate(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  void* Reallocate(void* ptr, size_t bytes) noexcept {
    if (ptr == nullptr) return Allocate(bytes);
    if (IsParked(ptr)) {
      // Freed already: the heaps still count it live, so say it here.
      ReportDoubleFree(ptr);
      return nullptr;
    }
    if (bytes == 0) {
      // Reallocate(p, 0) frees p (and reports misuse) without the cache's
      // help, as Memp does.
      shared_.Reallocate(ptr, 0);
      return nullptr;
    }
    return shared_.Reallocate(ptr, bytes);
  }
  bool Free(void* ptr) noexcept {
    // The hit, inline: a block of a cacheable span in the region of the
    // thread's last lookup, not parked already (by its marker word), room
    // in the budget. Its heap gives the size only if it would free the
    // block too (UsableSizeIfFreeable: the header after it intact), so an
    // overflow is refused and reported at this call, as under a lock.
    // Anything else takes FreeSlow, which decides from scratch.
    if (mode_.load(std::memory_order_relaxed) == 0) {
      if (Cache* c = static_cast<Cache*>(LastUsedThreadStateFor(this))) {
        const RegionTable::Entry* region = shared_.table().FindInHint(
            reinterpret_cast<uintptr_t>(ptr), c->lists.region_hint);
        if (region != nullptr) {
          const auto* heap = static_cast<const tlsf::Heap*>(region->heap);
          // A heap with debug modes takes FreeSlow: no call here, so no
          // frame.
          if (ABSL_PREDICT_FALSE(heap->HasDebugModes())) return FreeSlow(ptr);
          const size_t usable = heap->PlainUsableSizeIfFreeable(ptr);
          if (!SizeClassCache::IsCacheableUsable(usable)) {
            return FreeShared(ptr);
          }
          const size_t span = usable + tlsf::kBlockOverhead;
          auto* block = static_cast<ParkedBlock*>(ptr);
          const uintptr_t key = marker_key();
          if (OwnerOpUnlessDiverted(c, false, [=] {
                return c->lists.TryPush(block, span, key);
              })) {
            return true;
          }
        }
      }
    }
    return FreeSlow(ptr);
  }

 private:
  ABSL_ATTRIBUTE_NOINLINE void* AllocateSlow(size_t bytes) noexcept {
    if (bytes <= kMaxCachedRequest &&
        (mode_.load(std::memory_order_relaxed) & kNoCache) == 0) {
      Cache* const c = CacheOfThisThread();
      const size_t span = tlsf::SpanForRequest(bytes);
      void* p = OwnerOp(c, [this, c, span] {
        DepotSource source{this};
        return c->lists.Take(source, span);
      });
      // The operation is over: the handlers it made due may run (a refill
      // may cross the soft limit; a pop may give back a retiring region's
      // last parked block).
      RunDueHandlers();
      if (p != nullptr) return p;
      // The shared regions could not refill the class; the locked path
      // below drains every cache before it gives up (OnOutOfMemory).
    }
    return shared_.Allocate(bytes);
  }
  ABSL_ATTRIBUTE_NOINLINE bool FreeShared(void* ptr) noexcept {
    return shared_.Free(ptr);
  }
  ABSL_ATTRIBUTE_NOINLINE bool FreeSlow(void* ptr) noexcept {
    if (ptr == nullptr) return true;
    const uint8_t mode = mode_.load(std::memory_order_relaxed);
    if ((mode & kNoCache) == 0) {
      Cache* const c = CacheOfThisThread();
      const size_t span = SizeClassCache::CacheableSpan(
          shared_.table(), nullptr, ptr, &c->lists.region_hint);
      if (span != 0) {
        // Once tagging is used no block is parked, but blocks parked before
        // are still checked for a double free.
        const bool park = (mode & kTagging) == 0;
        const SizeClassCache::PutResult result =
            OwnerOp(c, [this, c, ptr, span, park] {
              DepotSource source{this};
              return c->lists.Put(source, ptr, span, park);
            });
        shared_.RunRetiredHandlersIfDue();  // a trim may empty a region
        if (ABSL_PREDICT_TRUE(result == SizeClassCache::kParked)) return true;
        if (result == SizeClassCache::kDoubleFree) {
          ReportDoubleFree(ptr);
          return false;
        }
      }
    }
    return shared_.Free(ptr);
  }

 public:
  // 0 for a block parked in any thread's cache (freed).
  size_t UsableSize(const void* ptr) const noexcept {
    const size_t usable = shared_.UsableSize(ptr);
    return usable != 0 && IsParked(ptr) ? 0 : usable;
  }
  void* AllocateTagged(size_t alignment, size_t bytes, const BlockTag& tag) {
    NoteTagging();
    return shared_.AllocateTagged(alignment, bytes, tag);
  }
  void* ReallocateTagged(void* ptr, size_t bytes, const BlockTag& tag) {
    NoteTagging();
    if (ptr != nullptr && IsParked(ptr)) {
      ReportDoubleFree(ptr);
      return nullptr;
    }
    return shared_.ReallocateTagged(ptr, bytes, tag);
  }
  // As Memp's (fmemp/memp.h, fmemp/budget.h). Blocks parked in the caches
  // count as taken: a refill is charged when it takes them from the
  // regions, a cache hit is not charged, and a trim refunds. At the hard
  // limit the caches are not drained for room: a refusal is a refusal.
  void SetLimit(size_t bytes) noexcept { shared_.SetLimit(bytes); }
  void SetSoftLimit(size_t bytes, size_t hysteresis,
                    Budget::SoftLimitHandler handler, void* context) noexcept {
    shared_.SetSoftLimit(bytes, hysteresis, handler, context);
  }
  void RemoveLimits() noexcept { shared_.RemoveLimits(); }
  Budget& budget() noexcept { return shared_.budget(); }
  const Budget& budget() const noexcept { return shared_.budget(); }

  // As Memp's. Before the handler runs, blocks parked in every thread's
  // cache are returned to the shared regions; the request is then retried
  // once, whatever the handler returns (see OnOutOfMemory).
  using OutOfMemoryHandler = typename Memp<LockPolicy>::OutOfMemoryHandler;
  void SetOutOfMemoryHandler(OutOfMemoryHandler handler, void* context) {
    NoWaitLock hold(&oom_mu_);
    oom_handler_ = handler;
    oom_context_ = context;
  }

  // --- Caches ---

  // Returns the calling thread's cached blocks to the shared regions.
  void FlushThisThread() {
    Cache* c = static_cast<Cache*>(ThreadStateFor(this));
    if (c == nullptr) return;
    OwnerOp(c, [&] {
      SharedSource source{this};
      c->lists.ReleaseDownTo(source, 0);
      return 0;
    });
    shared_.RunRetiredHandlersIfDue();
  }
  // Returns every thread's cached blocks to the shared regions, now, idle
  // threads included. Blocks while another drain runs. The handlers of
  // regions it empties (retirement) run after every cache is resumed and
  // the registry released.
  void DrainAllCaches() {
    ForEachCache([this](Cache* c) {
      SharedSource source{this};
      c->lists.ReleaseDownTo(source, 0);
    });
    DrainDepot();
    shared_.RunRetiredHandlersIfDue();
  }

  // Bytes parked in the depot (batches that trims handed over for other
  // threads' refills; part of CachedBytes).
  size_t DepotBytes() const {
    return depot_bytes_.load(std::memory_order_relaxed);
  }
  // Bytes parked in caches and the depot (sum of what each thread last
  // published, plus the depot's bytes).
  size_t CachedBytes() const {
    NoWaitLock hold(&RegistryMutex());
    return SumPublished().first;
  }

  // --- Observation ---

  MempStats Probe() const {
    size_t bytes = 0, blocks = 0;
    {
      NoWaitLock hold(&RegistryMutex());
      std::tie(bytes, blocks) = SumPublished();
    }
    MempStats stats = shared_.Probe();
    // Published figures may trail the shared counters for an instant; a
    // cache publishes a drop before returning blocks, so they never exceed
    // what the heaps count as used.
    bytes = std::min(bytes, stats.used_bytes);
    blocks = std::min(blocks, stats.live_blocks);
    stats.used_bytes -= bytes;
    stats.live_blocks -= blocks;
    stats.cached_bytes = bytes;
    return stats;
  }
  RegionStatsList ProbeRegions() const { return shared_.ProbeRegions(); }
  void ResetPeak() noexcept { shared_.ResetPeak(); }
  absl::Status Check() const { return shared_.Check(); }
  ManagementResult TryCheck(tlsf::CheckFindings* findings) const {
    return shared_.TryCheck(findings);
  }
  // Returns every cache's blocks to the shared regions first (as
  // DrainAllCaches), so the listing shows only blocks in use.
  void List(absl::FunctionRef<void(absl::string_view)> sink) {
    DrainAllCaches();
    shared_.List(sink);
  }
  void SetErrorHandler(MempErrorHandler handler, void* context) {
    shared_.SetErrorHandler(handler, context);
  }
  void SetReportHandler(MempReportHandler handler, void* context) {
    shared_.SetReportHandler(handler, context);
  }
  // As Memp's. With a mode on, the caches are bypassed (and emptied).
  absl::Status SetDebugOptions(const DebugOptions& options) {
    return TrySetDebugOptions(options).ToStatus();
  }
  ManagementResult TrySetDebugOptions(const DebugOptions& options) {
    const ManagementResult s = shared_.TrySetDebugOptions(options);
    if (!s.ok()) return s;
    const bool on = options.poison || options.canaries || options.asan;
    if (on) {
      DrainAllCaches();
      mode_.fetch_or(kDebug, std::memory_order_relaxed);
    } else {
      mode_.fetch_and(static_cast<uint8_t>(~kDebug), std::memory_order_relaxed);
    }
    return s;
  }
  absl::Status CheckRegionOf(const void* ptr) const {
    return shared_.CheckRegionOf(ptr);
  }
  ManagementResult TryCheckRegionOf(
      const void* ptr, tlsf::CheckFindings* damage = nullptr) const {
    return shared_.TryCheckRegionOf(ptr, damage);
  }

  // Fork support, as Memp's. The caller also holds the process-wide
  // registry across fork() (LockRegistryForFork, before these; the C API's
  // atfork handlers do), since every CachingMemp shares it.
  // LockForFork stops every thread's cache as a drainer does (its drain
  // mutex held, its owner outside any cache operation: an owner mid-way
  // waits out the stop, one diverted finishes first), then takes the
  // depot's and the shared lock: lock order registry, drain mutexes, depot,
  // shared. So the child inherits every cache whole, none marked in use and
  // no drain mutex held by a thread it lacks, and can drain them all.
  // O(threads that used this front-end), one HeavyBarrier each.
  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // (Held across fork(): a lambda the analysis cannot pair.)
    ForEachThreadState(this, [](ThreadState* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      StopOwner(static_cast<Cache*>(s));
    });
    depot_lock_.lock();
    shared_.LockForFork();
  }
  void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    shared_.UnlockAfterFork();
    depot_lock_.unlock();
    ForEachThreadState(this, [](ThreadState* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      ResumeOwner(static_cast<Cache*>(s));
    });
  }
  void ResetLockInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    shared_.ResetLockInForkChild();
    new (&depot_lock_) LockPolicy();
    ForEachThreadState(this, [](ThreadState* s) {
      ResetOwnerInForkChild(static_cast<Cache*>(s));
    });
  }

 private:
  // Bits of mode_: every condition the hot paths test, in one load.
  static constexpr uint8_t kNoCacheBudget = 1;  // max_bytes_per_thread == 0
  // A debug mode is on: every block takes the checked path (a parked block
  // would skip the checks and could serve a request of another size).
  static constexpr uint8_t kDebug = 2;
  static constexpr uint8_t kTagging = 4;  // tagging was used: park nothing
  static constexpr uint8_t kNoCache = kNoCacheBudget | kDebug;
  // The fast side's barrier must fence (no membarrier(2)): the inline hits,
  // which use LightBarrierGivenMembarrier, are off; the slow paths work.
  static constexpr uint8_t kFencedBarrier = 8;

  // The shared regions' out-of-memory handler: drains every cache when
  // blocks are parked, or when another thread's out-of-memory drain is
  // under way (a drain publishes blocks as gone from a cache before it
  // returns them to the regions, and drains run one at a time, so draining
  // again waits for those blocks), then asks the user's handler. Always
  // true: the failed request is tried once more, since another thread's
  // drain may have returned blocks after this thread's failed attempt even
  // when nothing is cached by the time it looks (without this retry,
  // concurrent exhaustions failed with half the region free).
  static bool OnOutOfMemory(void* context, size_t bytes, size_t alignment) {
    auto* self = static_cast<CachingMemp*>(context);
    // Announced before looking: of two threads out of memory at once, the
    // later one sees the earlier one's drain even before it has started.
    const int others =
        self->oom_drains_.fetch_add(1, std::memory_order_acq_rel);
    if (others != 0 || self->AnyCachedBytes()) self->DrainAllCaches();
    self->oom_drains_.fetch_sub(1, std::memory_order_release);
    OutOfMemoryHandler handler;
    void* handler_context;
    {
      NoWaitLock hold(&self->oom_mu_);
      handler = self->oom_handler_;
      handler_context = self->oom_context_;
    }
    if (handler != nullptr) handler(handler_context, bytes, alignment);
    return true;
  }

  // The user handlers that a cache operation of the calling thread made due
  // (the soft limit's, retired regions'), run once that operation is over:
  // never inside one (fmemp/drain_protocol.h), where a handler that drains
  // every cache would wait for its own thread.
  void RunDueHandlers() {
    shared_.budget().RunSoftHandlerIfDue();
    shared_.RunRetiredHandlersIfDue();
  }

  // The calling thread's cache, created on its first use. REQUIRES: mode_
  // has no kNoCache bit (checked by the caller, on its one load of mode_).
  Cache* CacheOfThisThread() {
    if (ThreadState* s = ThreadStateFor(this)) return static_cast<Cache*>(s);
    return NewCacheOfThisThread();
  }
  ABSL_ATTRIBUTE_NOINLINE Cache* NewCacheOfThisThread() {
    return static_cast<Cache*>(RegisterThreadState(this, new Cache(options_)));
  }

  // The owner side of the drain protocol (fmemp/drain_protocol.h) for the
  // inline hit paths. REQUIRES: mode_ without kFencedBarrier.
  template <typename R, typename Op>
  ABSL_ATTRIBUTE_ALWAYS_INLINE static R OwnerOpUnlessDiverted(Cache* c,
                                                              R otherwise,
                                                              Op op) {
    return fmemp::OwnerOpUnlessDiverted</*kGivenMembarrier=*/true>(c, otherwise,
                                                                   op);
  }

  template <typename Fn>
  void ForEachCache(Fn fn) {
    NoWaitLock hold(&RegistryMutex());
    ForEachThreadState(this, [&](ThreadState* s) {
      WithOwnerStopped(static_cast<Cache*>(s), [&fn](Drainable* stopped) {
        fn(static_cast<Cache*>(stopped));
      });
    });
  }

  // Empties every cache without returning blocks (their regions are being
  // forgotten) and without touching them: their memory may already be gone
  // (a C API user may free a region's buffer before FMempRemove). Markers
  // left in that memory are made stale by a new key instead, so the same
  // memory, added again, never looks parked.
  void DropAllCaches() {
    ForEachCache([](Cache* c) { c->lists.Forget(); });
    ForgetDepot();
    const uintptr_t old_key = marker_key();
    uintptr_t key = NewMarkerKey(this, owner_id());
    if (key == old_key) key ^= 2;  // (the clock may not have moved)
    marker_key_.store(key, std::memory_order_relaxed);
  }

  void OnThreadExit(ThreadState* state) override {
    SharedSource source{this};
    static_cast<Cache*>(state)->lists.ReleaseDownTo(source, 0);
  }
  // A retiring region that the exit's returned blocks emptied has its
  // handler run now, the registry's lock released.
  void AfterThreadExit() override { shared_.RunRetiredHandlersIfDue(); }

  std::pair<size_t, size_t> SumPublished() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(RegistryMutex()) {
    RegistryMutex().AssertHeld();
    size_t bytes = 0, blocks = 0;
    ForEachThreadState(const_cast<CachingMemp*>(this), [&](ThreadState* s) {
      const Cache* c = static_cast<const Cache*>(s);
      bytes += c->lists.bytes();
      blocks += c->lists.blocks();
    });
    return {bytes + depot_bytes_.load(std::memory_order_relaxed),
            blocks + depot_blocks_.load(std::memory_order_relaxed)};
  }
  bool AnyCachedBytes() const { return CachedBytes() != 0; }

  // Whether ptr is a block parked in some thread's cache (its marker says
  // so). Safe for any pointer. Lock-free.
  bool IsParked(const void* ptr) const noexcept {
    return SizeClassCache::IsParked(shared_.table(), marker_key(), ptr);
  }

  // What serves the caches (the Source of fmemp/size_class_cache.h): the
  // shared regions, behind their lock, taken once per refill or trim.
  struct SharedSource {
    CachingMemp* memp;
    const RegionTable& table() const { return memp->shared_.table(); }
    const void* owner() const { return nullptr; }  // Memp's own entries
    uintptr_t marker_key() const { return memp->marker_key(); }
    size_t AllocateBatch(size_t usable, size_t count, void** out) {
      // A batch the limit cuts short is no failed call: the call that then
      // finds no block asks the shared regions, which count it.
      return memp->shared_.WithRegions([&](RegionSet& r) {
        const size_t got = r.AllocateBatch(usable, count, out);
        r.TakeLimitRefusal();
        return got;
      });
    }
    void ReturnChain(ParkedBlock* chain) {
      memp->shared_.WithRegions([&chain](RegionSet& r) {
        while (chain != nullptr) r.Free(SizeClassCache::TakeFromChain(&chain));
        return 0;
      });
    }
    void ReportDamagedLink(const void* link) { memp->ReportDamagedLink(link); }
  };
  // SharedSource with the depot in front: what a thread's refills and trims
  // use (drains and thread exits return blocks to the regions).
  struct DepotSource : SharedSource {
    bool OfferBatch(size_t span, const SizeClassCache::Batch& batch) {
      return this->memp->OfferToDepot(span, batch);
    }
    bool TakeBatch(size_t span, SizeClassCache::Batch* out) {
      return this->memp->TakeFromDepot(span, out);
    }
  };

  // --- The depot ---
  //
  // Batches of parked blocks (SizeClassCache::Batch), by class, that one
  // thread's trim handed over and another thread's refill takes whole: a
  // block freed by a thread other than the one that allocated it reaches
  // the allocating thread again without the shared regions' lock nor any
  // TLSF work. Its blocks keep their markers (a free of one is refused as a
  // double free) and count as cached. Bounded: at most
  // kDepotBudgets x max_bytes_per_thread bytes and kDepotRecords batches; a
  // batch that does not fit goes to the regions. Why that size: in
  // mimalloc-bench's xmalloc-test (one thread allocates, another frees)
  // the two threads' pace drifts apart for milliseconds at a time on a
  // loaded machine; with one budget the depot was full or empty so often
  // that the regions' lock stayed busy. Each call takes depot_lock_ for O(1)
  // (a pop or push of one record); no allocation.
  struct DepotRecord {
    SizeClassCache::Batch batch;
    DepotRecord* next = nullptr;
  };
  static constexpr size_t kDepotRecords = 1024;

  bool OfferToDepot(size_t span, const SizeClassCache::Batch& batch) {
    const size_t bytes = batch.count * span;
    if (depot_bytes_.load(std::memory_order_relaxed) + bytes >
        kDepotBudgets * options_.max_bytes_per_thread) {
      return false;
    }
    sync::ScopedLock<LockPolicy> hold(depot_lock_);
    DepotRecord* const record = depot_free_;
    if (record == nullptr) return false;
    depot_free_ = record->next;
    record->batch = batch;
    DepotRecord*& list = depot_lists_[SizeClassCache::ClassOf(span)];
    record->next = list;
    list = record;
    depot_bytes_.store(depot_bytes_.load(std::memory_order_relaxed) + bytes,
                       std::memory_order_relaxed);
    depot_blocks_.store(
        depot_blocks_.load(std::memory_order_relaxed) + batch.count,
        std::memory_order_relaxed);
    return true;
  }
  bool TakeFromDepot(size_t span, SizeClassCache::Batch* out) {
    if (depot_blocks_.load(std::memory_order_relaxed) == 0) return false;
    sync::ScopedLock<LockPolicy> hold(depot_lock_);
    DepotRecord*& list = depot_lists_[SizeClassCache::ClassOf(span)];
    DepotRecord* const record = list;
    if (record == nullptr) return false;
    list = record->next;
    *out = record->batch;
    record->next = depot_free_;
    depot_free_ = record;
    depot_bytes_.store(
        depot_bytes_.load(std::memory_order_relaxed) - out->count * span,
        std::memory_order_relaxed);
    depot_blocks_.store(
        depot_blocks_.load(std::memory_order_relaxed) - out->count,
        std::memory_order_relaxed);
    return true;
  }
  // Returns every batch of the depot to the regions, validating each link
  // first (a bad one drops the rest of its batch, reported, as a cache
  // does). O(blocks in the depot).
  void DrainDepot() {
    SharedSource source{this};
    RegionTable::Hint hint;
    ParkedBlock* chain = nullptr;
    for (size_t cls = 0; cls < SizeClassCache::kClassCount; ++cls) {
      while (true) {
        SizeClassCache::Batch batch;
        if (!TakeFromDepot(cls * tlsf::kAlignment, &batch)) break;
        ParkedBlock* b = batch.head;
        for (size_t i = 0; i < batch.count; ++i) {
          if (!SizeClassCache::IsValidLink(source, b, &hint)) {
            source.ReportDamagedLink(b);
            break;
          }
          ParkedBlock* const next = b->next;
          b->next = chain;
          chain = b;
          b = next;
        }
      }
    }
    if (chain != nullptr) source.ReturnChain(chain);
  }
  // Empties the depot without touching a block (see DropAllCaches).
  void ForgetDepot() {
    sync::ScopedLock<LockPolicy> hold(depot_lock_);
    depot_free_ = nullptr;
    for (DepotRecord*& list : depot_lists_) list = nullptr;
    for (DepotRecord& record : depot_records_) {
      record.next = depot_free_;
      depot_free_ = &record;
    }
    depot_bytes_.store(0, std::memory_order_relaxed);
    depot_blocks_.store(0, std::memory_order_relaxed);
  }

  void ReportDamagedLink(const void* link) {
    damaged_lists_.fetch_add(1, std::memory_order_relaxed);
    shared_.WithRegions([link](RegionSet& r) {
      r.ReportMisuse(MempError::kUseAfterFreeWrite, link);
      return 0;
    });
  }

 public:
  // Class lists dropped because a link in them was damaged (each also
  // reported as MempError::kUseAfterFreeWrite and counted in invalid_frees).
  uint64_t damaged_lists() const {
    return damaged_lists_.load(std::memory_order_relaxed);
  }

 private:
  void ReportDoubleFree(const void* ptr) {
    shared_.WithRegions([ptr](RegionSet& r) {
      r.ReportMisuse(MempError::kDoubleFree, ptr);
      return 0;
    });
  }

  uintptr_t marker_key() const {
    return marker_key_.load(std::memory_order_relaxed);
  }

  void NoteTagging() {
    if ((mode_.load(std::memory_order_relaxed) & kTagging) == 0) {
      mode_.fetch_or(kTagging, std::memory_order_relaxed);
    }
  }

  const CacheOptions options_;
  // A parked block's marker is its address XOR this key. Replaced by Clear
  // (relaxed: Clear must not race other calls), so markers left in
  // forgotten memory never match again.
  std::atomic<uintptr_t> marker_key_;
  std::atomic<uint64_t> damaged_lists_{0};
  std::atomic<uint8_t> mode_;  // kNoCacheBudget, kDebug, kTagging
  // Threads inside OnOutOfMemory now.
  std::atomic<int> oom_drains_{0};
  absl::Mutex oom_mu_;
  OutOfMemoryHandler oom_handler_ ABSL_GUARDED_BY(oom_mu_) = nullptr;
  void* oom_context_ ABSL_GUARDED_BY(oom_mu_) = nullptr;
  Memp<LockPolicy> shared_;
  // Last: the hot paths' members above stay within short offsets.
  // The depot (see there). Its figures are written under depot_lock_ and
  // read from any thread.
  LockPolicy depot_lock_;
  DepotRecord depot_records_[kDepotRecords] ABSL_GUARDED_BY(depot_lock_);
  DepotRecord* depot_free_ ABSL_GUARDED_BY(depot_lock_) = nullptr;
  DepotRecord* depot_lists_[SizeClassCache::kClassCount] ABSL_GUARDED_BY(
      depot_lock_) = {};
  std::atomic<size_t> depot_bytes_{0};
  std::atomic<size_t> depot_blocks_{0};
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_THREAD_CACHE_H_
