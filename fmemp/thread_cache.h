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
// * Blocks of spans up to kMaxCachedSpan (requests up to 1 KiB) are
//   cached, by span in 16-byte classes. A cached block stays a live block
//   of its TLSF heap: the cache links it through its own payload.
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
// * Miss: a refill takes the shared lock once and allocates a batch: 4
//   blocks on a class's first refill, twice as many on each next one, up to
//   about CacheOptions::refill_bytes (slow start: a rarely used class holds
//   a few blocks, not a full batch). An overfull cache gives back half its
//   bytes under one lock, the older half of every class's list, so that no
//   class is emptied and refilled at once. The shared lock is taken once per
//   batch, not per call.
// * A block freed by a thread other than the one that allocated it goes into
//   the freeing thread's cache, as any free does, and back to the shared
//   regions in batches once that cache is full. Why this and not a queue to
//   the allocating thread: memory held is bounded by the caches' byte
//   budgets whatever the pattern (one thread allocates, another frees,
//   forever: the freeing thread's cache fills, then returns batches), no
//   thread waits on another, and an idle allocating thread cannot strand
//   blocks freed elsewhere.
// * Each cache holds at most CacheOptions::max_bytes_per_thread bytes,
//   counting block spans; the bound holds under any pattern.
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
// The parked-block marker
// * A parked block's second payload word holds MarkerFor(block), its
//   address XOR a per-front-end key drawn at construction (from its
//   address, its owner id and the clock, mixed; the low bit set, so a
//   marker is never 0 nor an aligned pointer). It is set with an atomic
//   compare-exchange when the block enters a cache, and cleared (stored 0)
//   when it leaves: handed out by Pop, or returned to the heap. A free that
//   finds the marker set is refused; a free whose compare-exchange loses to
//   another thread's is refused too, so of two racing frees exactly one
//   parks the block. Every access to the word uses __atomic builtins: a
//   thread that double-frees reads it while the owning cache may clear it.
// * Why a user's write cannot spoof it beyond the key's odds: user data in
//   a live block matches only if it equals that block's address XOR the
//   key, a 63-bit secret the program never sees (2^-63 for data unrelated
//   to the key). If it does match, the free of that one live block is
//   refused as a double free and the block stays allocated (a leak of one
//   block, reported); nothing is parked twice and no heap is damaged.
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
//   caches stay parked (their blocks count as cached) in the child.

#ifndef FMEMP_FMEMP_THREAD_CACHE_H_
#define FMEMP_FMEMP_THREAD_CACHE_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/asymmetric_barrier.h"
#include "fmemp/memp.h"
#include "fmemp/no_wait_lock.h"
#include "fmemp/region_table.h"
#include "fmemp/thread_registry.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp {

struct CacheOptions {
  // Most bytes (block spans) one thread's cache holds. 0 disables caching.
  // The default holds one refill of each of the 64 classes (~520 KiB) with
  // room to spare: with 256 KiB, random sizes made refills and trims chase
  // each other (bench/compare, single thread, 16 B-1 KiB, 1 K live: 2.5 M
  // steps/s at 256 KiB, 29.8 M at 1 MiB, in one run).
  size_t max_bytes_per_thread = size_t{1} << 20;
  // Bytes allocated per refill of one class (at least one block). At most
  // max_bytes_per_thread / (2 x the 64 classes) is used, so that a refill of
  // every class fits in half the budget: larger refills made refills and
  // trims chase each other (the default budget gives exactly 8 KiB).
  size_t refill_bytes = size_t{8} << 10;
};

namespace thread_cache_internal {

// Requests up to 1 KiB (span 1040) are cached: a workload of sizes up to
// 1 KiB then never takes the shared lock on a hit (with spans up to 1024,
// its requests of 1017..1024 bytes did, ~3% of calls at ~450 instructions).
inline constexpr size_t kMaxCachedSpan = tlsf::SpanForRequest(1024);
inline constexpr size_t kClassCount = kMaxCachedSpan / tlsf::kAlignment + 1;
inline constexpr size_t ClassOf(size_t span) { return span / tlsf::kAlignment; }
// Classes that hold blocks: spans kMinFreeSpan..kMaxCachedSpan.
inline constexpr size_t kUsedClassCount =
    ClassOf(kMaxCachedSpan) - ClassOf(tlsf::kMinFreeSpan) + 1;

// A parked block: its first payload words.
struct ParkedBlock {
  ParkedBlock* next;  // read and written by the owning cache only
  uintptr_t marker;   // MarkerFor(block) while parked; __atomic access only
};

inline uintptr_t LoadMarker(const ParkedBlock* block) {
  return __atomic_load_n(&block->marker, __ATOMIC_ACQUIRE);
}
inline void StoreMarker(ParkedBlock* block, uintptr_t value) {
  __atomic_store_n(&block->marker, value, __ATOMIC_RELEASE);
}
// Sets block's marker to `marker` unless it holds it already. True if this
// call set it: of any number of threads claiming one block at once, exactly
// one gets true. Lock-free; one compare-exchange when uncontended.
inline bool ClaimMarker(ParkedBlock* block, uintptr_t marker) {
  uintptr_t seen = __atomic_load_n(&block->marker, __ATOMIC_RELAXED);
  do {
    if (seen == marker) return false;
  } while (!__atomic_compare_exchange_n(&block->marker, &seen, marker,
                                        /*weak=*/true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED));
  return true;
}

// A key for MarkerFor: hard to guess, different per front-end, low bit set.
inline uintptr_t NewMarkerKey(const void* self, uint64_t owner_id) {
  uint64_t x = reinterpret_cast<uintptr_t>(self) ^
               (owner_id * 0x9e3779b97f4a7c15ull) ^
               static_cast<uint64_t>(
                   std::chrono::steady_clock::now().time_since_epoch().count());
  // splitmix64's finaliser.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<uintptr_t>(x) | 1;
}

struct FreeList {
  ParkedBlock* head = nullptr;
};

// One thread's cache for one CachingMemp.
class Cache final : public ThreadState {
 public:
  // Protocol with a drainer (see CachingMemp::OwnerOp and DrainCache).
  std::atomic<uint32_t> in_use{0};
  std::atomic<bool> drain_requested{false};
  absl::Mutex mu;  // held by a drainer, and by the owner when diverted

  // Owned by the thread (or by a drainer that stopped it).
  FreeList lists[kClassCount];
  size_t next_victim = 1;  // where a trim starts looking
  // Blocks the next refill of each class takes (0: not refilled yet).
  uint8_t refill_count[kClassCount] = {};
  // Bytes (spans) and blocks parked. Written by the owner (or a drainer that
  // stopped it) with a plain load and store, read by Probe() from any
  // thread: atomics, but no read-modify-write.
  std::atomic<size_t> cached_bytes{0};
  std::atomic<size_t> cached_blocks{0};
  // The owner's last region lookup (RegionTable::Hint); only the owner
  // thread touches it, drainers never do.
  RegionTable::Hint region_hint;

  size_t bytes() const { return cached_bytes.load(std::memory_order_relaxed); }
  size_t blocks() const {
    return cached_blocks.load(std::memory_order_relaxed);
  }
  // Adds `bytes_delta` and `blocks_delta` (either may be a wrapped
  // negative).
  void Count(size_t bytes_delta, size_t blocks_delta) {
    cached_bytes.store(bytes() + bytes_delta, std::memory_order_relaxed);
    cached_blocks.store(blocks() + blocks_delta, std::memory_order_relaxed);
  }
};

}  // namespace thread_cache_internal

template <typename LockPolicy>
class CachingMemp final : private ThreadStateOwner {
  static_assert(LockPolicy::kThreadSafe,
                "per-thread caches share their regions between threads");
  using Cache = thread_cache_internal::Cache;
  using ParkedBlock = thread_cache_internal::ParkedBlock;
  using FreeList = thread_cache_internal::FreeList;

 public:
  using Lock = LockPolicy;
  static constexpr bool kThreadSafe = true;
  static constexpr size_t kMaxCachedSpan =
      thread_cache_internal::kMaxCachedSpan;
  // The largest request (usable bytes) a cached block serves.
  static constexpr size_t kMaxCachedRequest = tlsf::UsableBytes(kMaxCachedSpan);

  explicit CachingMemp(CacheOptions options = {})
      : options_(options),
        refill_bytes_(
            std::min(options.refill_bytes,
                     options.max_bytes_per_thread /
                         (2 * thread_cache_internal::kUsedClassCount))),
        marker_key_(thread_cache_internal::NewMarkerKey(this, owner_id())),
        mode_((options.max_bytes_per_thread == 0 ? kNoCacheBudget : 0) |
              (kAsymmetricBarrierEnabled && !HeavyBarrierIsMembarrier()
                   ? kFencedBarrier
                   : 0)) {
    shared_.SetOutOfMemoryHandler(&CachingMemp::OnOutOfMemory, this);
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
    if (!result.ok()) return result;
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
        void* p =
            OwnerOpUnlessDiverted(c, static_cast<void*>(nullptr),
                                  [this, c, span] { return PopFast(c, span); });
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
            reinterpret_cast<uintptr_t>(ptr), c->region_hint);
        if (region != nullptr) {
          const size_t usable = static_cast<const tlsf::Heap*>(region->heap)
                                    ->UsableSizeIfFreeable(ptr);
          if (!IsCacheableUsable(usable)) return FreeShared(ptr);
          const size_t span = usable + tlsf::kBlockOverhead;
          auto* block = static_cast<ParkedBlock*>(ptr);
          const uintptr_t marker = MarkerFor(block);
          const size_t budget = options_.max_bytes_per_thread;
          if (OwnerOpUnlessDiverted(c, false, [=] {
                return TryPush(c, block, span, marker, budget);
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
      void* p = OwnerOp(c, [this, c, span] { return Take(c, span); });
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
      const size_t span = CacheableSpan(c, ptr);
      if (span != 0) {
        // Once tagging is used no block is parked, but blocks parked before
        // are still checked for a double free.
        const bool park = (mode & kTagging) == 0;
        const int result = OwnerOp(
            c, [this, c, ptr, span, park] { return Put(c, ptr, span, park); });
        if (ABSL_PREDICT_TRUE(result == kParked)) return true;
        if (result == kDoubleFree) {
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
  // As Memp's. Before the handler runs, blocks parked in every thread's
  // cache are returned to the shared regions; the request is retried if
  // that returned anything or the handler says so.
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
      ReleaseDownTo(c, 0);
      return 0;
    });
  }
  // Returns every thread's cached blocks to the shared regions, now, idle
  // threads included. Blocks while another drain runs.
  void DrainAllCaches() {
    ForEachCache([this](Cache* c) { ReleaseDownTo(c, 0); });
  }

  // Bytes parked in caches (sum of what each thread last published).
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
  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { shared_.LockForFork(); }
  void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    shared_.UnlockAfterFork();
  }
  void ResetLockInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    shared_.ResetLockInForkChild();
  }

 private:
  enum PutResult { kParked, kNotParked, kDoubleFree };

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

  static bool OnOutOfMemory(void* context, size_t bytes, size_t alignment) {
    auto* self = static_cast<CachingMemp*>(context);
    const bool drained = self->AnyCachedBytes();
    if (drained) self->DrainAllCaches();
    OutOfMemoryHandler handler;
    void* handler_context;
    {
      NoWaitLock hold(&self->oom_mu_);
      handler = self->oom_handler_;
      handler_context = self->oom_context_;
    }
    const bool handled =
        handler != nullptr && handler(handler_context, bytes, alignment);
    return drained || handled;
  }

  // The calling thread's cache, created on its first use. REQUIRES: mode_
  // has no kNoCache bit (checked by the caller, on its one load of mode_).
  Cache* CacheOfThisThread() {
    if (ThreadState* s = ThreadStateFor(this)) return static_cast<Cache*>(s);
    return NewCacheOfThisThread();
  }
  ABSL_ATTRIBUTE_NOINLINE Cache* NewCacheOfThisThread() {
    return static_cast<Cache*>(RegisterThreadState(this, new Cache));
  }

  // Runs op() as the cache's owner: either on the fast path, marked in use,
  // or, when a drainer has asked for the cache, under its mutex once the
  // drainer is done. op() is inlined once, for both branches; the diverted
  // branch's work is out of line.
  template <typename Op>
  static auto OwnerOp(Cache* c, Op op) {
    const bool diverted = !EnterOwnerOp(c);
    if (ABSL_PREDICT_FALSE(diverted)) WaitForDrainer(c);
    auto result = op();
    if (ABSL_PREDICT_FALSE(diverted)) {
      ResumeAfterDrainer(c);
    } else {
      c->in_use.store(0, std::memory_order_release);
    }
    return result;
  }
  // OwnerOp for the inline hit paths: runs op() on the fast path, or returns
  // `otherwise` without running it when a drainer has asked for the cache
  // (the caller then takes its slow path, which uses OwnerOp).
  // REQUIRES: mode_ without kFencedBarrier.
  template <typename R, typename Op>
  static R OwnerOpUnlessDiverted(Cache* c, R otherwise, Op op) {
    R result = otherwise;
    if (ABSL_PREDICT_TRUE(EnterOwnerOp<true>(c))) result = op();
    c->in_use.store(0, std::memory_order_release);
    return result;
  }
  // Marks `c` in use; false if a drainer has asked for it (the caller must
  // then clear in_use and not touch the cache outside c->mu).
  // kGivenMembarrier: the caller checked that mode_ has no kFencedBarrier.
  template <bool kGivenMembarrier = false>
  static bool EnterOwnerOp(Cache* c) {
    c->in_use.store(1, kFastSideOrder);
    if (kGivenMembarrier) {
      LightBarrierGivenMembarrier();
    } else {
      LightBarrier();
    }
    return !c->drain_requested.load(kAsymmetricBarrierEnabled
                                        ? std::memory_order_acquire
                                        : std::memory_order_seq_cst);
  }
  // OwnerOp's diverted branch: leaves the fast path and takes the cache's
  // mutex, which the drainer holds until it is done; then gives it back.
  ABSL_ATTRIBUTE_NOINLINE static void WaitForDrainer(Cache* c)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    c->in_use.store(0, std::memory_order_release);
    LockWithoutWaiting(c->mu);
  }
  ABSL_ATTRIBUTE_NOINLINE static void ResumeAfterDrainer(Cache* c)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    c->mu.Unlock();
  }

  // Stops `c` (its owner is outside OwnerOp or waits on c->mu) and runs
  // fn(c). REQUIRES: RegistryMutex() held, so `c` cannot be deleted.
  template <typename Fn>
  static void WithCacheStopped(Cache* c, Fn fn) {
    NoWaitLock hold(&c->mu);
    c->drain_requested.store(true, std::memory_order_seq_cst);
    HeavyBarrier();
    while (c->in_use.load(kAsymmetricBarrierEnabled
                              ? std::memory_order_acquire
                              : std::memory_order_seq_cst) != 0) {
      std::this_thread::yield();
    }
    fn(c);
    c->drain_requested.store(false, std::memory_order_release);
  }

  template <typename Fn>
  void ForEachCache(Fn fn) {
    NoWaitLock hold(&RegistryMutex());
    ForEachThreadState(this, [&](ThreadState* s) {
      WithCacheStopped(static_cast<Cache*>(s), fn);
    });
  }

  // Empties every cache without returning blocks (their regions are being
  // forgotten) and without touching them: their memory may already be gone
  // (a C API user may free a region's buffer before FMempRemove). Markers
  // left in that memory are made stale by a new key instead, so the same
  // memory, added again, never looks parked.
  void DropAllCaches() {
    ForEachCache([](Cache* c) {
      for (FreeList& list : c->lists) list = FreeList();
      c->Count(-c->bytes(), -c->blocks());
    });
    const uintptr_t old_key = marker_key_.load(std::memory_order_relaxed);
    uintptr_t key = thread_cache_internal::NewMarkerKey(this, owner_id());
    if (key == old_key) key ^= 2;  // (the clock may not have moved)
    marker_key_.store(key, std::memory_order_relaxed);
  }

  void OnThreadExit(ThreadState* state) override {
    ReleaseDownTo(static_cast<Cache*>(state), 0);
  }

  std::pair<size_t, size_t> SumPublished() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(RegistryMutex()) {
    size_t bytes = 0, blocks = 0;
    ForEachThreadState(const_cast<CachingMemp*>(this), [&](ThreadState* s) {
      const Cache* c = static_cast<const Cache*>(s);
      bytes += c->bytes();
      blocks += c->blocks();
    });
    return {bytes, blocks};
  }
  bool AnyCachedBytes() const { return CachedBytes() != 0; }

  // Whether ptr is a block parked in some thread's cache: a live block (for
  // its heap) of a cacheable span whose marker word says so. Safe for any
  // pointer: nothing outside a region is read. Lock-free.
  bool IsParked(const void* ptr) const noexcept {
    RegionTable::Entry region;
    const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
    if (!shared_.table().Find(address, &region)) return false;
    const size_t usable =
        static_cast<const tlsf::Heap*>(region.heap)->UsableSize(ptr);
    if (!IsCacheableUsable(usable)) return false;
    const auto* block = static_cast<const ParkedBlock*>(ptr);
    return thread_cache_internal::LoadMarker(block) == MarkerFor(block);
  }

  // Whether `block` may be trusted as a parked block of this front-end: it
  // lies, whole, inside a region (per the RegionTable), is aligned, and
  // carries its marker. Safe for any value: nothing outside a region is
  // read. `hint` is the caller's own.
  bool IsValidLink(const ParkedBlock* block, RegionTable::Hint* hint) const {
    const uintptr_t address = reinterpret_cast<uintptr_t>(block);
    if (address % tlsf::kAlignment != 0) return false;
    const RegionTable::Entry* region = shared_.table().Find(address, hint);
    if (region == nullptr || region->end - address < sizeof(ParkedBlock)) {
      return false;
    }
    return thread_cache_internal::LoadMarker(block) == MarkerFor(block);
  }

  // Walks every list of `c`, cutting each at its first invalid link (the
  // rest is dropped: those blocks stay allocated, never reused; each cut is
  // reported once), and sets c's counts to what the lists hold. O(parked
  // blocks). REQUIRES: c is stopped or owned by the caller.
  ABSL_ATTRIBUTE_NOINLINE void Recount(Cache* c, RegionTable::Hint* hint) {
    size_t bytes = 0, blocks = 0;
    for (size_t cls = 0; cls < thread_cache_internal::kClassCount; ++cls) {
      const size_t span = cls * tlsf::kAlignment;
      for (ParkedBlock** link = &c->lists[cls].head; *link != nullptr;
           link = &(*link)->next) {
        if (!IsValidLink(*link, hint)) {
          ReportDamagedLink(*link);
          *link = nullptr;
          break;
        }
        bytes += span;
        ++blocks;
      }
    }
    c->cached_bytes.store(bytes, std::memory_order_relaxed);
    c->cached_blocks.store(blocks, std::memory_order_relaxed);
  }

  // Pop found the head of class `cls` invalid: drops the list, recounts.
  ABSL_ATTRIBUTE_NOINLINE void* DropDamagedList(Cache* c, size_t cls) {
    ReportDamagedLink(c->lists[cls].head);
    c->lists[cls].head = nullptr;
    Recount(c, &c->region_hint);
    return nullptr;
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

  uintptr_t MarkerFor(const void* block) const {
    return reinterpret_cast<uintptr_t>(block) ^
           marker_key_.load(std::memory_order_relaxed);
  }

  void NoteTagging() {
    if ((mode_.load(std::memory_order_relaxed) & kTagging) == 0) {
      mode_.fetch_or(kTagging, std::memory_order_relaxed);
    }
  }

  // The span of `ptr` if it may be parked: a live block (for the heaps), in
  // a region, of a cacheable span. 0 sends it the locked way. Safe for any
  // pointer: nothing outside a region is read. `c` is the calling thread's
  // cache (whose region hint it uses).
  size_t CacheableSpan(Cache* c, const void* ptr) const noexcept {
    const RegionTable::Entry* region =
        shared_.table().Find(reinterpret_cast<uintptr_t>(ptr), &c->region_hint);
    if (region == nullptr) return 0;
    const size_t usable =
        static_cast<const tlsf::Heap*>(region->heap)->UsableSizeIfFreeable(ptr);
    return IsCacheableUsable(usable) ? usable + tlsf::kBlockOverhead : 0;
  }
  // Whether a block of `usable` bytes (UsableSize's answer) is live and
  // small enough to park. 0 wraps: one comparison for both limits.
  static bool IsCacheableUsable(size_t usable) {
    return usable - 1 < kMaxCachedRequest;
  }

  // --- Owner operations (inside OwnerOp) ---

  void* Take(Cache* c, size_t span) {
    if (void* p = Pop(c, span)) return p;
    return Refill(c, span) ? Pop(c, span) : nullptr;
  }
  // Pop for the inline hit: the head of the list when it is plainly sound
  // (aligned, whole inside the region of the thread's last lookup while no
  // region changed, carrying its marker), else nullptr, having changed
  // nothing: the slow path's Pop then decides (an empty list, a hint
  // that misses, a damaged link). No call, so the inline path saves no
  // registers. Payloads are kAlignment-aligned, so an aligned block whose
  // last word lies in the hint's region lies in it whole.
  void* PopFast(Cache* c, size_t span) {
    FreeList& list = c->lists[thread_cache_internal::ClassOf(span)];
    ParkedBlock* block = list.head;
    const uintptr_t address = reinterpret_cast<uintptr_t>(block);
    if (block == nullptr || address % tlsf::kAlignment != 0 ||
        shared_.table().FindInHint(address + sizeof(ParkedBlock) - 1,
                                   c->region_hint) == nullptr ||
        thread_cache_internal::LoadMarker(block) != MarkerFor(block)) {
      return nullptr;
    }
    list.head = block->next;
    thread_cache_internal::StoreMarker(block, 0);
    c->Count(-span, -1);
    return block;
  }
  // A block of `span` from the list, or nullptr if it is empty. The block
  // is validated before it is handed out (IsValidLink): a damaged list is
  // dropped (DropDamagedList) and nullptr returned.
  void* Pop(Cache* c, size_t span) {
    const size_t cls = thread_cache_internal::ClassOf(span);
    FreeList& list = c->lists[cls];
    ParkedBlock* block = list.head;
    if (block == nullptr) return nullptr;
    if (ABSL_PREDICT_FALSE(!IsValidLink(block, &c->region_hint))) {
      return DropDamagedList(c, cls);
    }
    list.head = block->next;
    thread_cache_internal::StoreMarker(block, 0);
    c->Count(-span, -1);
    return block;
  }

  ABSL_ATTRIBUTE_NOINLINE bool Refill(Cache* c, size_t span) {
    // Slow start: a class's first refill takes a few blocks, each next one
    // twice as many, up to refill_bytes_ (and kMaxBatch).
    const size_t most =
        std::min(kMaxBatch, std::max<size_t>(1, refill_bytes_ / span));
    uint8_t& next_count = c->refill_count[thread_cache_internal::ClassOf(span)];
    size_t want = std::min<size_t>(
        most, next_count == 0 ? kFirstRefillBlocks : next_count);
    next_count = static_cast<uint8_t>(std::min(most, 2 * want));
    // Keep the budget: trim first if the batch would not fit.
    const size_t budget = options_.max_bytes_per_thread;
    if (c->bytes() + want * span > budget) {
      // Trim to half of what leaves room, as Put trims to half the budget,
      // so that the next refills fit without another trim.
      ReleaseDownTo(c, budget > want * span ? (budget - want * span) / 2 : 0);
      want = std::max<size_t>(1, std::min(want, budget / span));
    }
    void* got[kMaxBatch];
    const size_t n = shared_.WithRegions([&](RegionSet& r) {
      return r.AllocateBatch(tlsf::UsableBytes(span), want, got);
    });
    bool refilled = false;
    for (size_t i = 0; i < n; ++i) {
      auto* block = static_cast<ParkedBlock*>(got[i]);
      // A block can be a little larger than asked (a tail too small to
      // split stays with it): file it under its own span. Asked of its
      // heap without the lock, as on a free: the block is ours.
      const size_t block_span = CacheableSpan(c, block);
      if (block_span == 0) {
        shared_.Free(block);
        continue;
      }
      // Fresh from the heap and ours alone: no other thread can claim it.
      thread_cache_internal::StoreMarker(block, MarkerFor(block));
      Link(c, block, block_span, c->bytes() + block_span);
      refilled |= block_span == span;
    }
    return refilled;
  }

  // Parks the block unless it is parked already, in any cache (a double
  // free: its marker is set, or another thread's claim won the race), or
  // `park` is false (then the block goes to the heap, which checks it).
  int Put(Cache* c, void* ptr, size_t span, bool park) {
    auto* block = static_cast<ParkedBlock*>(ptr);
    if (!thread_cache_internal::ClaimMarker(block, MarkerFor(block))) {
      return kDoubleFree;
    }
    const size_t budget = options_.max_bytes_per_thread;
    if (!park || span > budget) {
      thread_cache_internal::StoreMarker(block, 0);
      return kNotParked;
    }
    if (c->bytes() + span > budget) ReleaseDownTo(c, budget / 2);
    Link(c, block, span, c->bytes() + span);
    return kParked;
  }
  // Put for the inline hit path: parks the block and returns true when it
  // fits the budget and this call's claim of its marker wins; otherwise
  // false, having changed nothing (Put then decides, and reports).
  static bool TryPush(Cache* c, ParkedBlock* block, size_t span,
                      uintptr_t marker, size_t budget) {
    const size_t bytes_after = c->bytes() + span;
    if (bytes_after > budget ||
        !thread_cache_internal::ClaimMarker(block, marker)) {
      return false;
    }
    Link(c, block, span, bytes_after);
    return true;
  }
  // Files `block`, whose marker is set, on the list of `span`; the cache
  // then holds `bytes_after` bytes (passed in: the callers have just
  // computed it).
  static void Link(Cache* c, ParkedBlock* block, size_t span,
                   size_t bytes_after) {
    const size_t blocks_after = c->blocks() + 1;
    FreeList& list = c->lists[thread_cache_internal::ClassOf(span)];
    block->next = list.head;
    list.head = block;
    c->cached_bytes.store(bytes_after, std::memory_order_relaxed);
    c->cached_blocks.store(blocks_after, std::memory_order_relaxed);
  }

  // Returns blocks to the shared regions, under one lock, until the cache
  // holds at most `target` bytes. Short of a flush (target 0), a trim takes
  // from every class and empties none while halving still frees bytes: each
  // pass takes the older half (the tail) of every list, round-robin from
  // next_victim. Emptying whole classes instead made them refill at once and
  // go over budget again; with a budget under one refill per class that
  // chase cost ~2,700 instructions per malloc+free (docs/BENCHMARKS.md,
  // "Why the targets are missed", point 1).
  ABSL_ATTRIBUTE_NOINLINE void ReleaseDownTo(Cache* c, size_t target) {
    if (c->bytes() <= target) return;
    // Validate every link first (a drainer may run this: its own hint), so
    // that the walks below follow only sound links and the counts they
    // start from are what the lists hold.
    RegionTable::Hint hint;
    Recount(c, &hint);
    const size_t bytes_before = c->bytes();
    if (bytes_before <= target) return;
    ParkedBlock* chain = nullptr;  // the blocks to return, linked
    size_t bytes = bytes_before;
    size_t blocks = 0;
    bool whole_lists = target == 0;
    while (bytes > target) {
      bool took = false;
      const size_t first_class = c->next_victim;
      for (size_t step = 0;
           step < thread_cache_internal::kClassCount && bytes > target;
           ++step) {
        const size_t cls =
            (first_class + step) % thread_cache_internal::kClassCount;
        const size_t span = cls * tlsf::kAlignment;
        // Cut the list after its first (newer) half, or at its head.
        ParkedBlock** cut = &c->lists[cls].head;
        if (!whole_lists) {
          size_t length = 0;
          for (const ParkedBlock* b = *cut; b != nullptr; b = b->next) ++length;
          for (size_t keep = (length + 1) / 2; keep > 0; --keep) {
            cut = &(*cut)->next;
          }
        }
        for (ParkedBlock* b = *cut; b != nullptr;) {
          ParkedBlock* next = b->next;
          bytes -= span;
          ++blocks;
          b->next = chain;
          chain = b;
          b = next;
          took = true;
        }
        *cut = nullptr;
        c->next_victim = cls + 1;
      }
      // Only lists of one block are left: take them whole.
      if (!took) whole_lists = true;
    }
    // Publish the drop before the heaps see the blocks free (see Probe).
    c->Count(bytes - bytes_before, -blocks);
    shared_.WithRegions([chain](RegionSet& r) {
      for (ParkedBlock* b = chain; b != nullptr;) {
        ParkedBlock* next = b->next;
        thread_cache_internal::StoreMarker(b, 0);
        r.Free(b);
        b = next;
      }
      return 0;
    });
  }

  static constexpr size_t kMaxBatch = 64;
  static constexpr size_t kFirstRefillBlocks = 4;

  const CacheOptions options_;
  const size_t refill_bytes_;  // options_.refill_bytes, clamped (see there)
  // A parked block's marker is its address XOR this key. Replaced by Clear
  // (relaxed: Clear must not race other calls), so markers left in
  // forgotten memory never match again.
  std::atomic<uintptr_t> marker_key_;
  std::atomic<uint64_t> damaged_lists_{0};
  std::atomic<uint8_t> mode_;  // kNoCacheBudget, kDebug, kTagging
  absl::Mutex oom_mu_;
  OutOfMemoryHandler oom_handler_ ABSL_GUARDED_BY(oom_mu_) = nullptr;
  void* oom_context_ ABSL_GUARDED_BY(oom_mu_) = nullptr;
  Memp<LockPolicy> shared_;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_THREAD_CACHE_H_
