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
// * Blocks of spans up to kMaxCachedSpan (requests up to 1016 bytes) are
//   cached, by span in 16-byte classes. A cached block stays a live block
//   of its TLSF heap: the cache links it through its own payload.
// * Hit (the fast path): a pop from or a push onto the thread's list for
//   the class. No lock and no atomic read-modify-write: two relaxed stores
//   and one load of the thread's own flags, and for a free a lock-free
//   lookup of the block's region (RegionTable) and one atomic load of its
//   header to learn its span.
// * Miss: a refill takes the shared lock once and allocates a batch of about
//   CacheOptions::refill_bytes; an overfull cache gives back half its bytes
//   under one lock. The shared lock is taken once per batch, not per call.
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
//   barrier (fmemp/asymmetric_barrier.h), so the fast path still needs no
//   read-modify-write.
// * RemoveRegion takes the region out of service, drains every cache and
//   then removes it: blocks parked in caches never keep a region alive;
//   live blocks still refuse the removal.
//
// Guarantees
// * Thread safety: every member may be called from any thread (LockPolicy
//   must be thread-safe).
// * Complexity: as Memp, plus O(1) on a hit. Probe and the drains are
//   O(threads that used this front-end).
// * Misuse: a double free (or a realloc) of a block that is still in the
//   calling thread's cache is detected (a marker word in the parked block,
//   then a search of that one list) and reported as MempError::kDoubleFree;
//   UsableSize of such a block is 0. A double free across threads' caches
//   is not detected (the same limit as glibc's tcache). Foreign and interior
//   pointers take the locked path and are reported as by Memp.
// * Accounting: Probe().used_bytes excludes cached blocks and
//   Probe().cached_bytes counts them: used + cached + free == capacity.
//   peak_used_bytes and per-region figures count cached blocks as used.
// * Tagged blocks (AllocateTagged) never enter a cache once tagging is used.
// * fork(): the child keeps the forking thread's cache; other threads'
//   caches stay parked (their blocks count as cached) in the child.

#ifndef FMEMP_FMEMP_THREAD_CACHE_H_
#define FMEMP_FMEMP_THREAD_CACHE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/asymmetric_barrier.h"
#include "fmemp/memp.h"
#include "fmemp/thread_registry.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp {

struct CacheOptions {
  // Most bytes (block spans) one thread's cache holds. 0 disables caching.
  // The default holds one refill of each of the 64 classes (512 KiB) with
  // room to spare: with 256 KiB, random sizes made refills and trims chase
  // each other (bench/compare, single thread, 16 B-1 KiB, 1 K live: 2.5 M
  // steps/s at 256 KiB, 29.8 M at 1 MiB, in one run).
  size_t max_bytes_per_thread = size_t{1} << 20;
  // Bytes allocated per refill of one class (at least one block).
  size_t refill_bytes = size_t{8} << 10;
};

namespace thread_cache_internal {

inline constexpr size_t kMaxCachedSpan = 1024;
inline constexpr size_t kClassCount = kMaxCachedSpan / tlsf::kAlignment + 1;
inline constexpr size_t ClassOf(size_t span) { return span / tlsf::kAlignment; }

// A parked block: its first payload words.
struct ParkedBlock {
  ParkedBlock* next;
  uintptr_t marker;  // MarkerFor(block) while parked
};

struct FreeList {
  ParkedBlock* head = nullptr;
  size_t count = 0;
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
  size_t cached_bytes = 0;
  size_t cached_blocks = 0;
  size_t next_victim = 1;  // where a trim starts looking
  // cached_bytes and cached_blocks as last published for Probe().
  std::atomic<size_t> published_bytes{0};
  std::atomic<size_t> published_blocks{0};

  void Publish() {
    published_bytes.store(cached_bytes, std::memory_order_relaxed);
    published_blocks.store(cached_blocks, std::memory_order_relaxed);
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

  explicit CachingMemp(CacheOptions options = {})
      : options_(options),
        marker_key_(0x9e3779b97f4a7c15ull * (owner_id() | 1)) {
    shared_.SetOutOfMemoryHandler(&CachingMemp::OnOutOfMemory, this);
    // Initialise the barrier's and the registry's function-local statics
    // now, not on some thread's first call: a fork() while another thread
    // holds such an initialisation guard would hang the child.
    LightBarrier();
    RegistryMutex();
  }
  ~CachingMemp() { DetachThreadStates(this); }

  // --- Regions ---

  absl::Status AddRegion(void* begin, void* end) {
    return shared_.AddRegion(begin, end);
  }
  absl::Status AddRegion(void* begin, size_t bytes) {
    return shared_.AddRegion(begin, bytes);
  }
  // As Memp::RemoveRegion, after taking the region out of service and
  // returning every cache's blocks, so that blocks parked in caches do not
  // keep it alive. On failure the region is back in service.
  absl::Status RemoveRegion(void* begin) {
    absl::Status s = shared_.WithRegions(
        [begin](RegionSet& r) { return r.SetAllocatable(begin, false); });
    if (!s.ok()) return s;
    DrainAllCaches();
    s = shared_.RemoveRegion(begin);
    if (!s.ok()) {
      shared_
          .WithRegions(
              [begin](RegionSet& r) { return r.SetAllocatable(begin, true); })
          .IgnoreError();
    }
    return s;
  }
  // Forgets every region and block, cached or not, and zeroes the counters.
  void Clear() {
    DropAllCaches();
    shared_.Clear();
  }

  // --- Hot path (Memp's semantics) ---

  void* Allocate(size_t bytes) noexcept {
    const size_t span = tlsf::SpanForRequest(bytes);
    if (span != 0 && span <= kMaxCachedSpan) {
      if (Cache* c = CacheOfThisThread()) {
        void* p = OwnerOp(c, [&] { return Take(c, span); });
        if (p != nullptr) return p;
        // The shared regions could not refill the class; the locked path
        // below drains every cache before it gives up (OnOutOfMemory).
      }
    }
    return shared_.Allocate(bytes);
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
    if (ParkedInThisThreadsCache(ptr)) {
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
    if (ptr == nullptr) return true;
    if (Cache* c = CacheOfThisThread()) {
      const size_t span = CacheableSpan(ptr);
      if (span != 0) {
        // Once tagging is used no block is parked, but blocks parked before
        // are still checked for a double free.
        const bool park = !tagging_used_.load(std::memory_order_relaxed);
        const int result = OwnerOp(c, [&] { return Put(c, ptr, span, park); });
        if (result == kParked) return true;
        if (result == kDoubleFree) {
          ReportDoubleFree(ptr);
          return false;
        }
      }
    }
    return shared_.Free(ptr);
  }
  // 0 for a block parked in the calling thread's cache (freed); a block
  // parked in another thread's cache still reads as live (see Misuse above).
  size_t UsableSize(const void* ptr) const noexcept {
    const size_t usable = shared_.UsableSize(ptr);
    return usable != 0 && ParkedInThisThreadsCache(ptr) ? 0 : usable;
  }
  void* AllocateTagged(size_t alignment, size_t bytes, const BlockTag& tag) {
    NoteTagging();
    return shared_.AllocateTagged(alignment, bytes, tag);
  }
  void* ReallocateTagged(void* ptr, size_t bytes, const BlockTag& tag) {
    NoteTagging();
    if (ptr != nullptr && ParkedInThisThreadsCache(ptr)) {
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
    absl::MutexLock hold(&oom_mu_);
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
    absl::MutexLock hold(&RegistryMutex());
    return SumPublished().first;
  }

  // --- Observation ---

  MempStats Probe() const {
    size_t bytes = 0, blocks = 0;
    {
      absl::MutexLock hold(&RegistryMutex());
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
  std::vector<RegionStats> ProbeRegions() const {
    return shared_.ProbeRegions();
  }
  void ResetPeak() noexcept { shared_.ResetPeak(); }
  absl::Status Check() const { return shared_.Check(); }
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
    absl::Status s = shared_.SetDebugOptions(options);
    if (!s.ok()) return s;
    const bool on = options.poison || options.canaries || options.asan;
    if (on) DrainAllCaches();
    debug_.store(on, std::memory_order_relaxed);
    return s;
  }
  absl::Status CheckRegionOf(const void* ptr) const {
    return shared_.CheckRegionOf(ptr);
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

  static bool OnOutOfMemory(void* context, size_t bytes, size_t alignment) {
    auto* self = static_cast<CachingMemp*>(context);
    const bool drained = self->AnyCachedBytes();
    if (drained) self->DrainAllCaches();
    OutOfMemoryHandler handler;
    void* handler_context;
    {
      absl::MutexLock hold(&self->oom_mu_);
      handler = self->oom_handler_;
      handler_context = self->oom_context_;
    }
    const bool handled =
        handler != nullptr && handler(handler_context, bytes, alignment);
    return drained || handled;
  }

  Cache* CacheOfThisThread() {
    // With a debug mode on, every block takes the checked path: a parked
    // block would skip the checks and could serve a request of another size.
    if (options_.max_bytes_per_thread == 0 ||
        debug_.load(std::memory_order_relaxed)) {
      return nullptr;
    }
    if (ThreadState* s = ThreadStateFor(this)) return static_cast<Cache*>(s);
    return static_cast<Cache*>(RegisterThreadState(this, new Cache));
  }

  // Runs op() as the cache's owner: either on the fast path, marked in use,
  // or, when a drainer has asked for the cache, under its mutex once the
  // drainer is done.
  template <typename Op>
  static auto OwnerOp(Cache* c, Op op) {
    c->in_use.store(1, kFastSideOrder);
    LightBarrier();
    if (c->drain_requested.load(kAsymmetricBarrierEnabled
                                    ? std::memory_order_acquire
                                    : std::memory_order_seq_cst)) {
      c->in_use.store(0, std::memory_order_release);
      absl::MutexLock hold(&c->mu);
      return op();
    }
    auto result = op();
    c->in_use.store(0, std::memory_order_release);
    return result;
  }

  // Stops `c` (its owner is outside OwnerOp or waits on c->mu) and runs
  // fn(c). REQUIRES: RegistryMutex() held, so `c` cannot be deleted.
  template <typename Fn>
  static void WithCacheStopped(Cache* c, Fn fn) {
    absl::MutexLock hold(&c->mu);
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
    absl::MutexLock hold(&RegistryMutex());
    ForEachThreadState(this, [&](ThreadState* s) {
      WithCacheStopped(static_cast<Cache*>(s), fn);
    });
  }

  // Empties every cache without returning blocks (their regions are being
  // forgotten).
  void DropAllCaches() {
    ForEachCache([](Cache* c) {
      for (FreeList& list : c->lists) list = FreeList();
      c->cached_bytes = c->cached_blocks = 0;
      c->Publish();
    });
  }

  void OnThreadExit(ThreadState* state) override {
    ReleaseDownTo(static_cast<Cache*>(state), 0);
  }

  std::pair<size_t, size_t> SumPublished() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(RegistryMutex()) {
    size_t bytes = 0, blocks = 0;
    ForEachThreadState(const_cast<CachingMemp*>(this), [&](ThreadState* s) {
      const Cache* c = static_cast<const Cache*>(s);
      bytes += c->published_bytes.load(std::memory_order_relaxed);
      blocks += c->published_blocks.load(std::memory_order_relaxed);
    });
    return {bytes, blocks};
  }
  bool AnyCachedBytes() const { return CachedBytes() != 0; }

  // Whether ptr is parked in the calling thread's cache: its marker word
  // says so and its class's list holds it. Safe for any pointer: nothing
  // outside a region is read.
  bool ParkedInThisThreadsCache(const void* ptr) const noexcept {
    const size_t span = CacheableSpan(ptr);
    if (span == 0) return false;
    ThreadState* state = ThreadStateFor(this);
    if (state == nullptr) return false;
    Cache* const c = static_cast<Cache*>(state);
    const auto* block = static_cast<const ParkedBlock*>(ptr);
    return OwnerOp(c, [&] {
      if (block->marker != MarkerFor(block)) return false;
      const FreeList& list = c->lists[thread_cache_internal::ClassOf(span)];
      for (const ParkedBlock* b = list.head; b != nullptr; b = b->next) {
        if (b == block) return true;
      }
      return false;
    });
  }

  void ReportDoubleFree(const void* ptr) {
    shared_.WithRegions([ptr](RegionSet& r) {
      r.ReportMisuse(MempError::kDoubleFree, ptr);
      return 0;
    });
  }

  uintptr_t MarkerFor(const void* block) const {
    return reinterpret_cast<uintptr_t>(block) ^ marker_key_;
  }

  void NoteTagging() { tagging_used_.store(true, std::memory_order_relaxed); }

  // The span of `ptr` if it may be parked: a live block (for the heaps), in
  // a region, of a cacheable span. 0 sends it the locked way. Safe for any
  // pointer: nothing outside a region is read.
  size_t CacheableSpan(const void* ptr) const noexcept {
    RegionTable::Entry entry;
    const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
    if (!shared_.table().Find(address, &entry)) return 0;
    const size_t usable =
        static_cast<const tlsf::Heap*>(entry.heap)->UsableSize(ptr);
    if (usable == 0) return 0;
    const size_t span = usable + tlsf::kBlockOverhead;
    return span <= kMaxCachedSpan ? span : 0;
  }

  // --- Owner operations (inside OwnerOp) ---

  void* Take(Cache* c, size_t span) {
    FreeList& list = c->lists[thread_cache_internal::ClassOf(span)];
    if (list.head == nullptr && !Refill(c, span)) return nullptr;
    ParkedBlock* block = list.head;
    list.head = block->next;
    --list.count;
    block->marker = 0;
    c->cached_bytes -= span;
    --c->cached_blocks;
    c->Publish();
    return block;
  }

  bool Refill(Cache* c, size_t span) {
    size_t want = std::max<size_t>(1, options_.refill_bytes / span);
    want = std::min(want, kMaxBatch);
    // Keep the budget: trim first if the batch would not fit.
    const size_t budget = options_.max_bytes_per_thread;
    if (c->cached_bytes + want * span > budget) {
      ReleaseDownTo(c, budget > want * span ? budget - want * span : 0);
      want = std::max<size_t>(1, std::min(want, budget / span));
    }
    void* got[kMaxBatch];
    size_t spans[kMaxBatch];
    const size_t n = shared_.WithRegions([&](RegionSet& r) {
      const size_t count = r.AllocateBatch(tlsf::UsableBytes(span), want, got);
      // A block can be a little larger than asked (a tail too small to
      // split stays with it): file it under its own span.
      for (size_t i = 0; i < count; ++i) {
        spans[i] = r.UsableSize(got[i]) + tlsf::kBlockOverhead;
      }
      return count;
    });
    bool refilled = false;
    for (size_t i = 0; i < n; ++i) {
      auto* block = static_cast<ParkedBlock*>(got[i]);
      if (spans[i] > kMaxCachedSpan) {
        shared_.Free(block);
        continue;
      }
      FreeList& list = c->lists[thread_cache_internal::ClassOf(spans[i])];
      block->next = list.head;
      block->marker = MarkerFor(block);
      list.head = block;
      ++list.count;
      c->cached_bytes += spans[i];
      ++c->cached_blocks;
      refilled |= spans[i] == span;
    }
    c->Publish();
    return refilled;
  }

  // Parks the block unless it is parked here already (a double free) or
  // `park` is false.
  int Put(Cache* c, void* ptr, size_t span, bool park) {
    auto* block = static_cast<ParkedBlock*>(ptr);
    FreeList& list = c->lists[thread_cache_internal::ClassOf(span)];
    if (block->marker == MarkerFor(block)) {
      for (ParkedBlock* b = list.head; b != nullptr; b = b->next) {
        if (b == block) return kDoubleFree;
      }
    }
    const size_t budget = options_.max_bytes_per_thread;
    if (!park || span > budget) return kNotParked;
    if (c->cached_bytes + span > budget) ReleaseDownTo(c, budget / 2);
    block->next = list.head;
    block->marker = MarkerFor(block);
    list.head = block;
    ++list.count;
    c->cached_bytes += span;
    ++c->cached_blocks;
    c->Publish();
    return kParked;
  }

  // Returns blocks to the shared regions, under one lock, until the cache
  // holds at most `target` bytes. Classes are emptied round-robin from
  // next_victim, so no class is favoured.
  void ReleaseDownTo(Cache* c, size_t target) {
    if (c->cached_bytes <= target) return;
    ParkedBlock* chain = nullptr;  // the blocks to return, linked
    size_t bytes = c->cached_bytes;
    size_t blocks = 0;
    const size_t first_class = c->next_victim;
    for (size_t step = 0;
         step < thread_cache_internal::kClassCount && bytes > target; ++step) {
      const size_t cls =
          (first_class + step) % thread_cache_internal::kClassCount;
      FreeList& list = c->lists[cls];
      const size_t span = cls * tlsf::kAlignment;
      while (list.head != nullptr && bytes > target) {
        ParkedBlock* b = list.head;
        list.head = b->next;
        --list.count;
        bytes -= span;
        ++blocks;
        b->next = chain;
        chain = b;
      }
      c->next_victim = cls + 1;
    }
    // Publish the drop before the heaps see the blocks free (see Probe).
    c->cached_bytes = bytes;
    c->cached_blocks -= blocks;
    c->Publish();
    shared_.WithRegions([chain](RegionSet& r) {
      for (ParkedBlock* b = chain; b != nullptr;) {
        ParkedBlock* next = b->next;
        b->marker = 0;
        r.Free(b);
        b = next;
      }
      return 0;
    });
  }

  static constexpr size_t kMaxBatch = 64;

  const CacheOptions options_;
  const uintptr_t marker_key_;
  std::atomic<bool> tagging_used_{false};
  std::atomic<bool> debug_{false};
  absl::Mutex oom_mu_;
  OutOfMemoryHandler oom_handler_ ABSL_GUARDED_BY(oom_mu_) = nullptr;
  void* oom_context_ ABSL_GUARDED_BY(oom_mu_) = nullptr;
  Memp<LockPolicy> shared_;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_THREAD_CACHE_H_
