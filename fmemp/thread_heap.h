// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/thread_heap.h
//
// fmemp::ThreadHeapMemp<LockPolicy>: the fmemp front-end with per-thread
// heaps. A server gives a worker thread regions of its own; that thread
// allocates from them and frees into them with no lock, while every other
// thread (and the worker itself, once its thread heap is full) uses the shared
// regions behind LockPolicy.
//
//   fmemp::ThreadHeapMemp<fmemp::sync::SpinLock> memp;
//   memp.AddRegion(shared_buffer, shared_size);   // for every thread
//   // In a worker thread:
//   memp.AddRegion(worker_buffer, worker_size);
//   memp.BindThisThread(worker_buffer);  // the region becomes its thread heap
//   void* p = memp.Allocate(100);        // from the thread heap, no lock
//   memp.Free(p);                        // into the thread heap, no lock
//
// Design
// * A thread heap is a RegionSet (fmemp/region_set.h) that only its thread
//   touches. Binding moves a region, live blocks and all, out of the shared
//   set into the calling thread's heap (RegionSet::Detach/Attach); unbinding,
//   and the thread's exit, move its regions back. A region stays one TLSF
//   heap throughout: nothing is copied.
// * Each thread heap has a SizeClassCache (fmemp/size_class_cache.h) in front
//   of its RegionSet, which serves it (the ThreadHeap is the cache's Source):
//   small blocks freed by the owner are parked there and handed out again
//   without the heap; refills and trims go to the thread heap's own regions,
//   with no lock. Only the owner touches its thread heap (cache and regions),
//   or a drainer that stopped it (DrainAllCaches, fork): every own call is an
//   owner operation of fmemp/drain_protocol.h, as CachingMemp's cache
//   operations are (the inline hits pay a store, a compiler barrier and a
//   load more, and a store at the end: EnterInlineOp, LeaveInlineOp).
// * Own calls (the fast path): a thread-local lookup of the thread heap, one
//   relaxed load of the head of its remote-free list (which also carries
//   kNews: Clear, ResetPeak and the first tagged call set it on every thread
//   heap, so that the owner leaves the fast path and catches up with the
//   front-end's epoch), a pop from or a push onto the cache (a push: one
//   compare-exchange on the block's marker word), else the RegionSet
//   operation. A hit changes no counter shared with other threads (see
//   Accounting); a miss ends with relaxed stores of the thread heap's counters
//   for Probe() and, when its regions' used bytes changed, one atomic add to
//   the front-end's total. No lock.
// * One region map: the shared regions and every thread heap's regions are
//   entries of one RegionTable (table_, fmemp/region_table.h; the shared
//   RegionSet and every thread heap's keep their entries there, UseTable), each
//   naming its heap and its owner: nullptr for the shared regions, the
//   owner's RemoteQueue for a bound region. Binding, unbinding and a
//   thread's exit change the owner of an entry in place (one write of the
//   table's sequence lock), so a lock-free reader never misses a region
//   on the move. Every lookup by address outside a held set asks it:
//   cross-thread free, reallocation, usable size, region removal, binding,
//   CheckRegionOf; a free into a set the caller holds (the shared one under
//   its lock, the owner's own heap) uses that set's own lookup.
// * Cross-thread frees are lock-free, allocation-free and bounded. The
//   freeing thread finds the block's region with one lookup in table_
//   (lock-free reads), whose entry names the region's heap and the owner's
//   RemoteQueue. It checks the block's header
//   with Heap::UsableSizeIfFreeable, without a lock (as the per-thread
//   caches do), claims the block's marker word with a compare-exchange (a
//   block queued twice is a double free: the second claim fails and is
//   reported at once, on the freeing thread) and pushes the block onto the
//   owner's multi-producer list, the link stored in the block's first word
//   (a Treiber push: one compare-exchange, retried only under contention).
//   The owner takes the whole list with one exchange at its next call (or
//   SyncThisThread) and parks each block in its cache as it is (the queue's
//   marker is the cache's: one word, one key), or frees it into its own
//   regions when it is not cacheable or the cache is off. No ABA: the
//   owner never pops one block, it only exchanges the head for empty. No
//   lock is shared by all threads, no mutex, no allocation on this path.
// * Why a bad pointer cannot corrupt the owner: nothing is written into a
//   block before the freeing thread has found it, through the table, inside
//   a bound region's payload range, aligned, with a live header whose
//   successor is intact (what the heap itself checks before a free); other
//   pointers take the locked path, which reports them. The words written are
//   then the first two of a live block's own payload, which belongs to the
//   block being freed. The owner frees each queued block through its own
//   RegionSet, which checks it again with the thread heap's exclusion; a block
//   whose table entry no longer names its queue (the region was unbound or
//   bound elsewhere, or the queue was reused by another thread heap while the
//   freer looked) is routed again, as a free from another thread, to the
//   owner the table names now: never freed into the wrong heap.
//   What remains unsupported, as everywhere in fmemp: a pointer that is not
//   a live block freed while its region is being removed.
// * The owner checks every link of the list before following it (aligned,
//   inside a region of this front-end, carrying its marker): a write into a
//   queued block after its free drops the rest of the list (those blocks
//   stay allocated), reported once as MempError::kUseAfterFreeWrite.
// * A queued free is never lost nor applied twice: unbinding applies the
//   list first; thread exit applies it, then closes the list (a sentinel
//   head) under the shared lock, so a later push sees it closed and takes
//   the locked path, which finds the region back in the shared set.
// * RemoteQueues come from the metadata arena (fmemp/metadata_arena.h;
//   never the allocator fmemp serves) through a type-stable free list of
//   this front-end (StableRecords): reused only as queues after their thread
//   heap ends, and handed back to the arena with the front-end. A reused queue
//   may receive one racing push meant for its old thread heap; the new thread
//   heap's owner routes it on (above).
// * When a thread heap cannot serve a request it either falls back to the
//   shared regions (ThreadHeapExhaustion::kFallBackToShared, the default) or
//   fails (kFail, after asking the out-of-memory handler once).
// * A fallback block is attributed to its thread heap (its fallback_account,
//   a RegionSet::ChargeAccount in the shared regions' ledger, kept under the
//   shared lock): charged to the heap's own limit (a fallback that would
//   pass it returns NULL) and credited back when it is freed, by any thread
//   and any path, or resized (a realloc keeps the block's attribution, on
//   any thread). Binding a region that holds a heap's fallback blocks makes
//   them the binder's (its region's blocks). When the heap's thread exits,
//   its entries are forgotten, not re-attributed: the blocks stay live
//   shared blocks, charged to the front-end's budget as before, and their
//   later frees credit no one (SharedUnattributedBytes counts them).
//
// Guarantees
// * Thread safety: every member may be called from any thread (LockPolicy
//   must be thread-safe). Bind and Unbind act on the calling thread.
// * Complexity: as Memp (O(1) allocation, O(log regions) to find a block's
//   region); a thread's own calls take no lock. A free from another thread
//   into a thread heap is one table lookup, O(log regions), and lock-free; into
//   the shared regions it takes the shared lock once. Probe is O(thread heaps).
// * Accounting: Probe() covers the shared regions and every thread heap (each
//   thread heap's figures as of its thread's last call), with used + cached +
//   free == capacity: used_bytes and live_blocks count the blocks the program
//   holds; blocks parked in a thread heap's cache are cached_bytes, neither
//   used nor free. peak_used_bytes is, as under CachingMemp, the peak of the
//   bytes taken from the regions (used + cached: what a hard limit caps), and
//   the true peak of their sum over the shared regions and every thread heap,
//   not a sum of per-heap peaks (UsageTotals): every change of a heap's used
//   bytes (a refill, a trim or flush, an uncached allocation or free, queued
//   frees applied) adds its delta to one atomic total before the call
//   returns, and a rise past the peak raises it (compare-exchange). A cache
//   hit (a pop, a park) moves no block in or out of the regions: it touches
//   no shared counter. A region moving between the shared set and a thread
//   heap leaves its old side first, so the total never counts it twice.
//   Cost: one atomic add on a word shared by all threads per refill, trim or
//   uncached call (plus a rarely taken compare-exchange); exactness across
//   threads needs a shared update, and this is the one. ProbeThreadHeaps()
//   gives each thread heap's figures (its own peak, of the same quantity).
// * Failed allocations are counted once per call that returns nullptr, by
//   the front-end at that return: a bound thread's in its thread heap's own
//   counter (published with the thread heap's other figures, and kept in the
//   total after the thread exits), any other thread's in the shared regions'. A
//   thread heap exhaustion that the shared regions serve is a fallback, not a
//   failure; one that fails there too is one failure, the thread heap's.
// * What one thread cannot see of another's thread heap: Check(), List() and
//   ProbeRegions() cover the shared regions and the calling thread's own
//   thread heap only (another thread heap is being changed, without a lock, by
//   its owner).
// * Misuse: in the owner's own heap and in the shared regions, as Memp. A
//   free, from any thread, of a block parked in its thread heap's cache or
//   queued to its owner is reported (kDoubleFree) on the freeing thread, and
//   Free returns false (the marker is authoritative: fmemp/size_class_cache.h);
//   so is a Reallocate of such a block, and its UsableSize is 0. A block
//   already freed for its heap, or a bad pointer, takes the locked path and
//   is reported there.
// * Regions: AddRegion refuses overlap with bound regions too. RemoveRegion
//   of a region bound to the calling thread removes it from its thread heap
//   (refused while blocks live in it); of a region bound to another thread
//   it is refused (FailedPrecondition) until that thread unbinds or exits.
// * Clear() and ResetPeak() reach a thread heap on its thread's next call.
//   Clear must not race other calls (as for the C API's FMempRemove).
// * Parked blocks go back to the thread heap's regions on unbind, thread exit,
//   RemoveRegion of the owner's region, List, FlushThisThread, when the
//   thread heap runs out of room (before the fallback), and for every thread
//   heap, idle threads' included, on DrainAllCaches from any thread: nothing is
//   lost, nothing applied twice. With a debug mode on, the cache is bypassed;
//   once tagging is used, nothing more is parked (a parked block would keep its
//   tag).
// * fork(): the child keeps the forking thread's heap, its cache
//   included. Thread heaps of other threads stay bound in the child, whole
//   (LockForFork stopped them), whose blocks freed there are queued and
//   never reused; DrainAllCaches in the child returns their caches.
// * Clear() drops parked and queued blocks without touching them (their
//   memory is forgotten with the regions) and draws a new marker key, so
//   markers left in that memory never match again.
// * User handlers (out of memory, soft limits, retired regions) run on the
//   calling thread once its owner operation on its heap is over and with no
//   lock of this front-end held (OwnCall; allocation and reallocation are
//   split into operations, the handler between them, and a retry after the
//   out-of-memory handler is a new operation). So a handler may call any
//   member, DrainAllCaches included, while other threads' handlers do the
//   same (a retiring region emptied by a thread's exit, through a queued
//   free applied then: on that thread, once the registry's lock is
//   released, AfterThreadExit). Misuse reports (error and report handlers)
//   run where the misuse is found, inside the operation or under the shared
//   lock: they must not call back.

#ifndef FMEMP_FMEMP_THREAD_HEAP_H_
#define FMEMP_FMEMP_THREAD_HEAP_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/debug_assert.h"
#include "fmemp/drain_protocol.h"
#include "fmemp/memp.h"
#include "fmemp/metadata_arena.h"
#include "fmemp/no_wait_lock.h"
#include "fmemp/region_set.h"
#include "fmemp/region_table.h"
#include "fmemp/size_class_cache.h"
#include "fmemp/thread_registry.h"
#include "tlsf/heap.h"

namespace fmemp {

// What a per-thread heap does when it cannot serve a request.
enum class ThreadHeapExhaustion {
  kFallBackToShared,  // serve it from the shared regions
  kFail,              // return nullptr (after the out-of-memory handler)
};

// One per-thread heap's figures, as of its thread's last call.
struct ThreadHeapStats {
  uint64_t thread_id = 0;  // the bound thread (gettid)
  // Its regions; cached_bytes counts the blocks parked in its cache (not
  // in used_bytes nor free_bytes), and peak_used_bytes is the thread heap's own
  // true peak of the bytes taken from its regions (used_bytes + cached_bytes).
  MempStats stats;
  uint64_t fallbacks = 0;  // requests it passed to the shared regions
  // Spans of the live blocks it took from the shared regions when it fell
  // back to them (its fallback blocks, attributed to it wherever they are
  // freed; not in stats, which are its regions'). Its thread's live bytes
  // are stats.used_bytes + fallback_bytes; with the shared regions'
  // unattributed bytes (ThreadHeapMemp::SharedUnattributedBytes) they sum
  // to Probe().used_bytes once every thread heap has published.
  size_t fallback_bytes = 0;
  // Its hard limit (SetThreadHeapLimit; Budget::kNoLimit when none) and
  // the bytes it counts against it: blocks of its regions in use or parked
  // in its cache, and its fallback blocks (stats.used_bytes +
  // stats.cached_bytes + fallback_bytes, as of its thread's last call).
  // stats.limit_refusals counts its refusals in its own regions; a
  // fallback refused by a limit counts its failure here and its limit
  // refusal among the shared regions' (as Probe() sums them).
  size_t limit = Budget::kNoLimit;
  size_t budget_usage = 0;
};

// What ProbeThreadHeaps returns (in the metadata arena, as RegionStatsList).
using ThreadHeapStatsList =
    std::vector<ThreadHeapStats, ArenaAllocator<ThreadHeapStats>>;

namespace thread_heap_internal {

// The calling thread's id as the kernel knows it (gettid).
uint64_t CurrentThreadId();

// A block queued to its owner: its first payload words.
struct RemoteBlock {
  uintptr_t next;    // the next queued block (0: none); written before the push
  uintptr_t marker;  // the ThreadHeapMemp's marker while queued; __atomic only
};

class ThreadHeap;

// An owner's list of blocks freed by other threads (see the top). The
// table's entries of a thread heap's regions name it as their owner.
struct RemoteQueue {
  // The newest queued block (a RemoteBlock), 0 when empty, kClosed once
  // the owner's thread has exited; with kNews or'ed in when the front-end
  // has news for the owner (Clear, ResetPeak, the first tagged call), and
  // the owner's kHitsOff and kNoParking (its cache_mode, as the hits need
  // it: ThreadHeap::SetCacheMode), so that the owner's inline hits test
  // one word for all: the free hit needs it 0, the allocation hit 0 but
  // for kNoParking.
  alignas(64) std::atomic<uintptr_t> head{0};
  // The thread heap it belongs to; read under the shared lock (ThreadHeapOf).
  std::atomic<ThreadHeap*> thread_heap{nullptr};
  RemoteQueue* next_free = nullptr;    // in StableRecords' free list
  RemoteQueue* next_record = nullptr;  // StableRecords' list of all
};
inline constexpr uintptr_t kClosed = 1;
// Queued blocks are kAlignment-aligned: the low bits of `head` are free.
inline constexpr uintptr_t kNews = 2;
// Set and cleared by the owner alone (ThreadHeap::SetCacheMode): its
// cache_mode has kCacheOff, kNoRegions or kFencedBarrier (no inline hit);
// has kNoPark (no free hit).
inline constexpr uintptr_t kHitsOff = 4;
inline constexpr uintptr_t kNoParking = 8;
// The bits of `head` that are not part of a block's address.
inline constexpr uintptr_t kHeadFlags = kClosed | kNews | kHitsOff | kNoParking;
static_assert(tlsf::kAlignment > kHeadFlags,
              "queued blocks keep the bits free");

// The whole front-end's bytes taken from its regions and their peak (see
// Accounting above).
struct UsageTotals {
  std::atomic<size_t> used{0};
  std::atomic<size_t> peak{0};
  // Adds `delta` (a wrapped negative for a drop); raises the peak if the
  // new total passes it. Lock-free; one fetch_add, plus a compare-exchange
  // only when the peak rises.
  void Add(size_t delta) {
    if (delta == 0) return;
    const size_t total =
        used.fetch_add(delta, std::memory_order_relaxed) + delta;
    if (static_cast<std::ptrdiff_t>(delta) < 0) return;  // a drop
    size_t seen = peak.load(std::memory_order_relaxed);
    while (total > seen && !peak.compare_exchange_weak(
                               seen, total, std::memory_order_relaxed)) {
    }
  }
};

// Records of type T for the thread heaps' RemoteQueues, from the metadata arena
// and kept type-stable: a record released by a thread heap goes onto this free
// list and is reused only as another T; it goes back to the arena
// (ArenaDelete) only when the StableRecords (its ThreadHeapMemp) is destroyed.
//
// Why not ArenaNew/ArenaDelete per record: a thread freeing a block into a
// thread heap reads the RemoteQueue that the region's table entry names
// (lock-free) and then pushes onto it, with no lock; the owner may
// meanwhile unbind the region or exit, releasing it. Were it handed back to the
// arena, the record could be reused as some other bookkeeping of the same
// size class (a region array, a cache) and the racing compare-exchange on
// `head` would write into it (and ASan would report the arena's poison).
// Kept as a T, the worst case is the documented one: a push lands in a
// reused queue, whose owner routes the block on (see the top).
//
// Not thread-safe: the caller serialises (the ThreadHeapMemp's bindings_mu_).
// New and Release are O(1); never calls the allocator fmemp serves.
template <typename T>
class StableRecords {
 public:
  StableRecords() = default;
  StableRecords(const StableRecords&) = delete;
  StableRecords& operator=(const StableRecords&) = delete;
  ~StableRecords() {
    while (all_ != nullptr) {
      T* const next = all_->next_record;
      ArenaDelete(all_);
      all_ = next;
    }
  }
  // A record, or nullptr when the arena is exhausted: a new one as
  // constructed, or a reused one as it was left.
  T* New() {
    if (free_ != nullptr) {
      // Not constructed again: a reader racing the reuse may still load
      // its atomics. The caller stores every member it relies on.
      T* const t = free_;
      free_ = t->next_free;
      t->next_free = nullptr;
      return t;
    }
    T* const t = ArenaNew<T>();
    if (t == nullptr) return nullptr;
    t->next_record = all_;
    all_ = t;
    return t;
  }
  // Returns `t` for reuse as a T. Readers racing this still see a T (it
  // stays allocated and typed until the StableRecords goes).
  void Release(T* t) {
    t->next_free = free_;
    free_ = t;
  }

 private:
  T* all_ = nullptr;   // every record made, through next_record
  T* free_ = nullptr;  // released records, through next_free
};

// One thread's heap in one ThreadHeapMemp. Its owner touches it only inside
// owner operations of the drain protocol (fmemp/drain_protocol.h), so that
// DrainAllCaches can stop it and return its cache.
class ThreadHeap final : public ThreadState, public Drainable {
 public:
  // --- Owner-only (the bound thread, or its exit hook) ---
  RegionSet regions;
  // What `regions` charges (UseBudget from its creation on), chained to the
  // front-end's budget: the thread heap's own limit and the front-end's. Its
  // settings may be changed from any thread (atomics).
  Budget budget;
  // Whether the thread heap's last attempt was refused by a budget (set by
  // ThreadHeapAttemptFailed): the call then fails without a fallback.
  bool refused_by_limit = false;
  // Its fallback blocks in the shared regions (RegionSet::ChargeAccount:
  // charged to `budget` alone, the shared regions charging the front-end's).
  // Changed and read only under the shared lock, by any thread (a free of
  // a fallback block credits it there). Its thread's exit forgets its
  // entries (ForgetAccount): those blocks stay live, unattributed shared
  // blocks, whose later frees credit no one.
  RegionSet::ChargeAccount fallback_account{&budget, 0};
  // Small free blocks in front of `regions` (fmemp/size_class_cache.h):
  // the thread heap is its Source (the members below under "Source").
  SizeClassCache cache;
  // Every condition the inline hits depend on besides the catch-up, in one
  // byte, written through SetCacheMode (the hits test its image in the
  // queue's head instead):
  // kCacheOff: debug modes are on, the cache is bypassed (and empty).
  // kNoPark: tagging was used, nothing more is parked.
  // kNoRegions: the thread heap has no region (as of the last Publish()).
  // kFencedBarrier: the drain protocol's fast side must fence (no
  // membarrier(2)): the inline hits are off; the slow paths work.
  uint8_t cache_mode = kNoRegions;
  static constexpr uint8_t kCacheOff = 1;
  static constexpr uint8_t kNoPark = 2;
  static constexpr uint8_t kNoRegions = 4;
  static constexpr uint8_t kFencedBarrier = 8;
  // The front-end's marker key as of the thread heap's last catch-up (Clear
  // draws a new one).
  uintptr_t cache_key = 0;
  // The thread heap's own peak of its regions' used bytes (cached blocks
  // counted), and the ThreadHeapMemp's peak epoch it was last reset for.
  size_t peak = 0;
  uint64_t seen_peak_epoch = 0;
  ThreadHeapExhaustion on_exhaustion = ThreadHeapExhaustion::kFallBackToShared;
  uint64_t seen_epoch = 0;
  uint64_t generation = 0;  // the ThreadHeapMemp's Clear generation it is of
  uint64_t fallbacks = 0;
  bool has_regions() const { return (cache_mode & kNoRegions) == 0; }
  // The bits of the queue's head that stand for `mode` (kHitsOff,
  // kNoParking).
  static uintptr_t HeadBitsOf(uint8_t mode) {
    return ((mode & (kCacheOff | kNoRegions | kFencedBarrier)) != 0 ? kHitsOff
                                                                    : 0) |
           ((mode & kNoPark) != 0 ? kNoParking : 0);
  }
  // Sets cache_mode and, when they change, its bits in the queue's head
  // (one atomic read-modify-write each: other threads push meanwhile).
  // Owner only; requires `queue`.
  void SetCacheMode(uint8_t mode) {
    const uintptr_t before = HeadBitsOf(cache_mode);
    const uintptr_t after = HeadBitsOf(mode);
    cache_mode = mode;
    if ((after & ~before) != 0) {
      queue->head.fetch_or(after & ~before, std::memory_order_relaxed);
    }
    if ((before & ~after) != 0) {
      queue->head.fetch_and(~(before & ~after), std::memory_order_relaxed);
    }
  }
  // Used bytes of `regions` (cached blocks counted), last added to *totals.
  size_t accounted_used = 0;
  UsageTotals* totals = nullptr;  // the ThreadHeapMemp's

  // --- Shared ---
  const uint64_t thread_id = CurrentThreadId();
  // Frees from other threads (in the ThreadHeapMemp's arena: it outlives the
  // thread heap, for pushes racing the thread's exit).
  RemoteQueue* queue = nullptr;

  // The figures Probe() reads, stored by the owner after each call but a
  // cache hit (which changes none of them, nor *totals). Used bytes and live
  // blocks are the regions', cached blocks included: Published() takes the
  // cache's own figures (cache.bytes(), cache.blocks()) off.
  std::atomic<size_t> published_capacity{0};
  std::atomic<size_t> published_used{0};
  std::atomic<size_t> published_peak{0};
  std::atomic<size_t> published_live{0};
  std::atomic<size_t> published_regions{0};
  std::atomic<uint64_t> published_failed{0};
  std::atomic<uint64_t> published_invalid{0};
  std::atomic<uint64_t> published_limit_refusals{0};
  std::atomic<uint64_t> published_fallbacks{0};

  void Publish() {
    const MempStats s = regions.Probe();
    SetCacheMode(static_cast<uint8_t>((cache_mode & ~kNoRegions) |
                                      (s.region_count == 0 ? kNoRegions : 0)));
    constexpr auto kRelaxed = std::memory_order_relaxed;
    published_capacity.store(s.capacity_bytes, kRelaxed);
    published_regions.store(s.region_count, kRelaxed);
    published_failed.store(s.failed_allocations, kRelaxed);
    published_limit_refusals.store(s.limit_refusals, kRelaxed);
    published_fallbacks.store(fallbacks, kRelaxed);
    PublishUsage();
  }
  // The part of Publish that a successful own allocation, reallocation or
  // free can change: usage, and the misuse a debug mode may find meanwhile.
  // (Failures, fallbacks and regions change only on the paths that call
  // Publish.)
  // The totals and the peaks count the regions' used bytes, parked blocks
  // included (the bytes taken from the regions); Published() takes the
  // parked ones off used bytes and live blocks. A cache hit moves no block
  // in or out of the regions: it needs no call here.
  void PublishUsage() {
    const MempStats s = regions.Probe();
    const size_t used = s.used_bytes;
    if (used != accounted_used) {
      totals->Add(used - accounted_used);
      accounted_used = used;
    }
    if (used > peak) peak = used;
    constexpr auto kRelaxed = std::memory_order_relaxed;
    published_used.store(s.used_bytes, kRelaxed);
    published_peak.store(peak, kRelaxed);
    published_live.store(s.live_blocks, kRelaxed);
    published_invalid.store(s.invalid_frees, kRelaxed);
  }
  // --- Source (fmemp/size_class_cache.h): the thread heap's own regions, no
  // lock (owner only) ---
  const RegionTable& table() const { return regions.table(); }
  // The table holds every region of the front-end: the thread heap's own are
  // those whose owner is its queue.
  const void* owner() const { return queue; }
  uintptr_t marker_key() const { return cache_key; }
  size_t AllocateBatch(size_t usable, size_t count, void** out) {
    return regions.AllocateBatch(usable, count, out);
  }
  void ReturnChain(ParkedBlock* chain) {
    while (chain != nullptr)
      regions.Free(SizeClassCache::TakeFromChain(&chain));
  }
  void ReportDamagedLink(const void* link) {
    regions.ReportMisuse(MempError::kUseAfterFreeWrite, link);
  }
  // Returns every parked block to the regions. O(parked blocks).
  void FlushCache() {
    cache.ReleaseDownTo(*this, 0);
    PublishUsage();
  }

  ThreadHeapStats Published() const {
    constexpr auto kRelaxed = std::memory_order_relaxed;
    ThreadHeapStats out;
    out.thread_id = thread_id;
    MempStats& s = out.stats;
    // The cache's figures may be newer than the regions' (a refill parks
    // blocks before the regions' figures are published): clamped, so that
    // used + cached + free == capacity always.
    s.capacity_bytes = published_capacity.load(kRelaxed);
    const size_t regions_used =
        std::min(published_used.load(kRelaxed), s.capacity_bytes);
    s.cached_bytes = std::min(cache.bytes(), regions_used);
    s.used_bytes = regions_used - s.cached_bytes;
    s.free_bytes = s.capacity_bytes - regions_used;
    s.peak_used_bytes = std::max(published_peak.load(kRelaxed), regions_used);
    const size_t regions_live = published_live.load(kRelaxed);
    s.live_blocks = regions_live - std::min(cache.blocks(), regions_live);
    s.region_count = published_regions.load(kRelaxed);
    s.failed_allocations = published_failed.load(kRelaxed);
    s.invalid_frees = published_invalid.load(kRelaxed);
    s.limit_refusals = published_limit_refusals.load(kRelaxed);
    out.limit = budget.limit();
    out.budget_usage = budget.usage();
    out.fallbacks = published_fallbacks.load(kRelaxed);
    return out;
  }
};

}  // namespace thread_heap_internal

template <typename LockPolicy>
class ThreadHeapMemp final : private ThreadStateOwner {
  static_assert(LockPolicy::kThreadSafe,
                "per-thread heaps share their other regions between threads");
  using ThreadHeap = thread_heap_internal::ThreadHeap;
  using FailureCountedBy = typename Memp<LockPolicy>::FailureCountedBy;

 public:
  using Lock = LockPolicy;
  static constexpr bool kThreadSafe = true;
  using OutOfMemoryHandler = typename Memp<LockPolicy>::OutOfMemoryHandler;

  ThreadHeapMemp() : marker_key_(NewMarkerKey(this, owner_id())) {
    // The registry's function-local static is set up now, not on some
    // thread's first call (a fork() inside its guard would hang the child).
    RegistryMutex();
    shared_.SetReportHandler(&ThreadHeapMemp::ForwardReport, this);
    // The shared regions are the table's entries with no owner.
    shared_.WithRegions([this](RegionSet& shared) {
      shared.UseTable(&table_, nullptr).IgnoreError();  // no region yet
      return 0;
    });
  }
  ~ThreadHeapMemp() { DetachThreadStates(this); }

  // --- Regions ---

  // Each management call has Memp's two forms: Try* returns a
  // ManagementResult and never allocates; the absl::Status form converts it
  // after every lock is released (fmemp/management_error.h), so a program
  // whose operator new is routed into this ThreadHeapMemp gets its Status.

  // As Memp::AddRegion; also AlreadyExists for overlap with a bound region.
  absl::Status AddRegion(void* begin, void* end) {
    return TryAddRegion(begin, end).ToStatus();
  }
  absl::Status AddRegion(void* begin, size_t bytes) {
    if (bytes > UINTPTR_MAX - reinterpret_cast<uintptr_t>(begin)) {
      return ManagementResult(ManagementError::kWrapsAround, begin).ToStatus();
    }
    return AddRegion(begin, static_cast<char*>(begin) + bytes);
  }
  ManagementResult TryAddRegion(void* begin, void* end) {
    return shared_.WithRegions([&](RegionSet& shared) -> ManagementResult {
      const uintptr_t b = reinterpret_cast<uintptr_t>(begin);
      const uintptr_t e = reinterpret_cast<uintptr_t>(end);
      RegionTable::Entry other;
      if (begin != nullptr && end != nullptr && b < e &&
          table_.Overlapping(b, e, &other) && !IsShared(other.owner)) {
        return {ManagementError::kOverlapBound, begin};
      }
      // Refuses bad ranges and overlap with a shared region (the table).
      return shared.AddRegion(begin, end);
    });
  }

  // As Memp::RemoveRegion for a shared region. A region bound to the
  // calling thread is removed from its thread heap (FailedPrecondition while
  // blocks live in it, after applying queued frees); one bound to another
  // thread is refused with FailedPrecondition.
  absl::Status RemoveRegion(void* begin) {
    return TryRemoveRegion(begin).ToStatus();
  }
  ManagementResult TryRemoveRegion(void* begin) {
    OwnCall own(this);
    ThreadHeap* const mine = SyncedThreadHeap();
    return shared_.WithRegions([&](RegionSet& shared) -> ManagementResult {
      RegionTable::Entry entry;
      if (!table_.FindWhole(reinterpret_cast<uintptr_t>(begin), &entry) ||
          IsShared(entry.owner)) {
        return shared.RemoveRegion(begin);
      }
      if (ThreadHeapOf(entry) != mine) {
        return {ManagementError::kBoundToOtherThread, begin};
      }
      ApplyRemoteFrees(mine, &shared);
      mine->FlushCache();  // parked blocks never keep a region alive
      const ManagementResult removed = mine->regions.RemoveRegion(begin);
      mine->Publish();
      return removed;
    });
  }

  // Forgets every region and block, shared or bound, and zeroes the
  // counters. Each thread heap drops its regions on its thread's next call.
  // REQUIRES: no other call on this ThreadHeapMemp runs meanwhile.
  void Clear() {
    shared_.WithRegions([this](RegionSet& shared) {
      NoWaitLock hold(&bindings_mu_);
      const uintptr_t old_key = marker_key_.load(std::memory_order_relaxed);
      uintptr_t key = NewMarkerKey(this, owner_id());
      if (key == old_key) key ^= 2;  // (the clock may not have moved)
      marker_key_.store(key, std::memory_order_relaxed);
      clear_generation_.fetch_add(1, std::memory_order_relaxed);
      epoch_.fetch_add(1, std::memory_order_release);
      NotifyThreadHeaps();
      thread_heaps_.clear();
      retired_failed_ = retired_invalid_ = retired_limit_refusals_ = 0;
      totals_.used.store(0, std::memory_order_relaxed);
      totals_.peak.store(0, std::memory_order_relaxed);
      shared.Clear();
      // Every thread heap's charges too: each thread heap forgets its own on
      // its next call (CatchUp), without refunding.
      shared_.budget().Reset();
      // The thread heaps' entries too: each thread heap's RegionSet then finds
      // none of its own to erase when it clears on its thread's next call.
      table_.Clear();
      return 0;
    });
  }

  // --- Per-thread heaps ---

  // Moves the region that AddRegion was given `begin` for, with any blocks
  // living in it, into the calling thread's heap. The thread then allocates
  // from its thread heap first; `on_exhaustion` says what happens when the
  // thread heap cannot serve a request (it applies to the whole thread heap;
  // the last bind sets it). A thread may bind several regions. Errors, nothing
  //   changed: NotFound            no shared region begins at `begin`;
  //   FailedPrecondition  the region is bound to another thread.
  // Binding a region already bound to the calling thread just sets
  // `on_exhaustion`. O(log regions + tags); takes the shared lock once.
  absl::Status BindThisThread(void* begin,
                              ThreadHeapExhaustion on_exhaustion =
                                  ThreadHeapExhaustion::kFallBackToShared) {
    return TryBindThisThread(begin, on_exhaustion).ToStatus();
  }
  ManagementResult TryBindThisThread(
      void* begin, ThreadHeapExhaustion on_exhaustion =
                       ThreadHeapExhaustion::kFallBackToShared) {
    OwnCall own(this);
    ThreadHeap* thread_heap = SyncedThreadHeap();
    if (thread_heap == nullptr) {
      thread_heap = NewThreadHeap();
      if (thread_heap == nullptr) return {ManagementError::kNoMemory, begin};
      thread_heap =
          static_cast<ThreadHeap*>(RegisterThreadState(this, thread_heap));
      own.Adopt(thread_heap);
    }
    return shared_.WithRegions([&](RegionSet& shared) -> ManagementResult {
      const uintptr_t b = reinterpret_cast<uintptr_t>(begin);
      RegionTable::Entry entry;
      if (table_.FindWhole(b, &entry) && entry.base == b &&
          !IsShared(entry.owner)) {
        if (ThreadHeapOf(entry) != thread_heap) {
          return {ManagementError::kBoundToOtherThread, begin};
        }
        thread_heap->on_exhaustion = on_exhaustion;
        return {};
      }
      if (!thread_heap->has_regions()) {
        // A thread heap takes the debug modes of the regions it will hold.
        const DebugOptions& debug = shared.debug_options();
        const ManagementResult s = thread_heap->regions.SetDebugOptions(debug);
        if (!s.ok()) return s;
        // A debug mode checks every block: none may skip it in the cache.
        thread_heap->SetCacheMode(static_cast<uint8_t>(
            (thread_heap->cache_mode &
             (ThreadHeap::kNoPark | ThreadHeap::kNoRegions |
              ThreadHeap::kFencedBarrier)) |
            (debug.poison || debug.canaries || debug.asan
                 ? ThreadHeap::kCacheOff
                 : 0)));
      }
      // The region's table entry stays through the move; Attach makes the
      // thread heap its owner in place.
      RegionSet::DetachedRegion region;
      if (const ManagementResult s =
              Counted(shared, [&] { return shared.Detach(begin, &region); });
          !s.ok()) {
        return s;
      }
      if (const ManagementResult s = thread_heap->regions.Attach(region);
          !s.ok()) {
        // Cannot happen (regions of one front-end are disjoint); put it back.
        Counted(shared, [&] { return shared.Attach(region); }).IgnoreError();
        return s;
      }
      thread_heap->on_exhaustion = on_exhaustion;
      {
        NoWaitLock hold(&bindings_mu_);
        if (std::find(thread_heaps_.begin(), thread_heaps_.end(),
                      thread_heap) == thread_heaps_.end()) {
          thread_heaps_.push_back(thread_heap);
        }
      }
      thread_heap->Publish();
      return ManagementResult();
    });
  }

  // Moves every region of the calling thread's heap back to the shared
  // regions, with any blocks living in them (they stay valid and may be
  // freed from any thread). Queued frees are applied first. A thread with
  // no thread heap has nothing to do: OK. Also done when the thread exits.
  absl::Status UnbindThisThread() {
    OwnCall own(this);
    ThreadHeap* const thread_heap = SyncedThreadHeap();
    if (thread_heap == nullptr) return absl::OkStatus();
    shared_.WithRegions([&](RegionSet& shared) {
      ReturnRegions(shared, thread_heap);
      return 0;
    });
    return absl::OkStatus();
  }

  // Returns the blocks parked in the calling thread's heap cache to its
  // regions (also done on unbind, thread exit, RemoveRegion of its own
  // region, List, and when the thread heap runs out of room; DrainAllCaches
  // does it for every thread heap). O(parked blocks); no lock.
  void FlushThisThread() {
    OwnCall own(this);
    if (ThreadHeap* const thread_heap = SyncedThreadHeap())
      thread_heap->FlushCache();
  }

  // Returns every thread heap's parked blocks to that thread heap's regions,
  // now, idle threads' heaps included: each thread heap's owner is stopped as
  // CachingMemp stops a cache (fmemp/drain_protocol.h: its next call waits
  // until its thread heap is done). Skipped: a thread heap that a Clear has not
  // reached yet (its regions are forgotten; its thread's next call drops its
  // blocks) and the calling thread's own heap when called from inside one of
  // its own operations (no user handler is: see the top). Blocks while
  // another drain runs.
  // O(threads with a thread heap + parked blocks), one HeavyBarrier per thread
  // heap.
  void DrainAllCaches() {
    const uint64_t generation =
        clear_generation_.load(std::memory_order_relaxed);
    ThreadHeap* const mine = ThreadHeapOfThisThread();
    const auto flush = [generation](ThreadHeap* thread_heap) {
      if (thread_heap->generation == generation) thread_heap->FlushCache();
    };
    NoWaitLock hold(&RegistryMutex());
    ForEachThreadState(this, [&](ThreadState* s) {
      ThreadHeap* const thread_heap = static_cast<ThreadHeap*>(s);
      if (thread_heap == mine) {
        // No other drainer can be at it (they hold RegistryMutex()).
        if (thread_heap->in_use.load(std::memory_order_relaxed) == 0 &&
            thread_heap->in_scope.load(std::memory_order_relaxed) == 0) {
          flush(thread_heap);
        }
        return;
      }
      WithOwnerStopped(thread_heap, [&flush](Drainable* stopped) {
        flush(static_cast<ThreadHeap*>(stopped));
      });
    });
  }

  // Whether the calling thread has a thread heap with at least one region.
  bool ThisThreadHasHeap() {
    OwnCall own(this);
    return BoundThreadHeap() != nullptr;
  }

  // Applies what other threads left for the calling thread's heap, as its
  // next allocation or free would: the frees they queued to it, and a
  // Clear or ResetPeak. For an owner that may stay idle (a worker waiting
  // for requests), so that Probe counts those blocks free without waiting
  // for its next call. Returns whether the thread has a thread heap. Takes no
  // lock when nothing is pending; O(queued frees) otherwise.
  bool SyncThisThread() {
    OwnCall own(this);
    return SyncedThreadHeap() != nullptr;
  }

  // --- Hot path (Memp's semantics) ---

  // Inlined into every caller (as CachingMemp's hit is by the compiler's
  // own choice): the hit makes no call.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Allocate(size_t bytes) noexcept {
    // The hit, inline and without a call: a pop from the calling thread's
    // thread heap cache. Anything else (no thread heap yet, a pending catch-up
    // or queue, an empty list, the cache off) takes AllocateSlow.
    // The hit is an owner operation (fmemp/drain_protocol.h): a drainer at
    // work sends it to AllocateSlow.
    if (bytes <= SizeClassCache::kMaxCachedRequest) {
      // kNoParking allows a pop (a tagged block is never parked).
      if (ThreadHeap* const thread_heap = ReadyThreadHeap(kNoParking)) {
        // (Written out rather than through OwnerOpUnlessDiverted: a lambda
        // here is not inlined into every caller.)
        void* p = nullptr;
        if (ABSL_PREDICT_TRUE(
                EnterInlineOp</*kGivenMembarrier=*/true>(thread_heap))) {
          const size_t span = tlsf::SpanForRequest(bytes);
          // A hit changes no counter but the cache's own (Accounting).
          p = thread_heap->cache.PopFast(span, thread_heap->regions.table(),
                                         thread_heap->cache_key);
        }
        LeaveInlineOp(thread_heap);
        if (ABSL_PREDICT_TRUE(p != nullptr)) return p;
      }
    }
    return AllocateSlow(bytes);
  }
  void* AllocateAligned(size_t alignment, size_t bytes) noexcept {
    if (alignment <= tlsf::kAlignment && tlsf::IsPowerOfTwo(alignment)) {
      return Allocate(bytes);
    }
    return AllocateWith(
        bytes, alignment, NoCache,
        [alignment, bytes](RegionSet& r) {
          return r.AllocateAligned(alignment, bytes);
        },
        [this, alignment, bytes](FailureCountedBy counted_by,
                                 RegionSet::ChargeAccount* account) {
          return SharedAligned(alignment, bytes, counted_by, account);
        });
  }
  void* Calloc(size_t count, size_t size,
               const BlockTag* tag = nullptr) noexcept {
    size_t bytes = 0;
    if (__builtin_mul_overflow(count, size, &bytes)) {
      OwnCall own(this);
      CountFailedCall();
      return nullptr;
    }
    void* p = tag != nullptr ? AllocateTagged(tlsf::kAlignment, bytes, *tag)
                             : Allocate(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  void* Reallocate(void* ptr, size_t bytes) noexcept {
    return ReallocateWith(ptr, bytes, nullptr);
  }
  bool Free(void* ptr) noexcept {
    // The hit, inline and without a call: a live block of a cacheable span
    // in the region of the thread heap's last lookup, parked if its marker's
    // claim wins and the budget has room. Its heap gives the size only if it
    // would free the block too (UsableSizeIfFreeable), so an overflow is
    // refused and reported by FreeSlow, as by the heap. Anything else
    // (nullptr included: it lies in no region) takes FreeSlow. The hit is
    // an owner operation (fmemp/drain_protocol.h).
    if (ThreadHeap* const thread_heap = ReadyThreadHeap(/*allowed=*/0)) {
      bool parked = false;
      if (ABSL_PREDICT_TRUE(
              EnterInlineOp</*kGivenMembarrier=*/true>(thread_heap))) {
        const RegionTable::Entry* region =
            thread_heap->regions.table().FindInHint(
                reinterpret_cast<uintptr_t>(ptr),
                thread_heap->cache.region_hint);
        // The hint holds only the thread heap's own regions (region_hint in
        // fmemp/size_class_cache.h): no owner check. A heap with debug
        // modes takes FreeSlow: no call here, so no frame.
        if (region != nullptr &&
            !static_cast<const tlsf::Heap*>(region->heap)->HasDebugModes()) {
          const size_t usable = static_cast<const tlsf::Heap*>(region->heap)
                                    ->PlainUsableSizeIfFreeable(ptr);
          const size_t span = usable + tlsf::kBlockOverhead;
          if (SizeClassCache::IsCacheableUsable(usable) &&
              thread_heap->cache.TryPush(static_cast<ParkedBlock*>(ptr), span,
                                         thread_heap->cache_key)) {
            parked = true;  // no counter but the cache's (Accounting)
          }
        }
      }
      LeaveInlineOp(thread_heap);
      if (parked) return true;
    }
    return FreeSlow(ptr);
  }
  // The usable size of a live block anywhere in this front-end; 0 if ptr is
  // not one.
  size_t UsableSize(const void* ptr) noexcept {
    OwnCall own(this);
    ThreadHeap* const thread_heap = BoundThreadHeap();
    RegionTable::Entry entry;
    if (!table_.Find(reinterpret_cast<uintptr_t>(ptr), &entry)) return 0;
    if (thread_heap != nullptr && entry.owner == thread_heap->queue) {
      const size_t usable = thread_heap->regions.UsableSize(ptr);
      return usable != 0 && IsParkedOrQueued(ptr) ? 0 : usable;
    }
    // Under the shared lock, which keeps the region where it is found.
    return shared_.WithRegions([&](const RegionSet& shared) -> size_t {
      if (!table_.Find(reinterpret_cast<uintptr_t>(ptr), &entry)) return 0;
      if (IsShared(entry.owner)) return shared.UsableSize(ptr);
      const size_t usable =
          static_cast<const tlsf::Heap*>(entry.heap)->UsableSize(ptr);
      return usable != 0 && IsParkedOrQueued(ptr) ? 0 : usable;
    });
  }
  void* AllocateTagged(size_t alignment, size_t bytes, const BlockTag& tag) {
    NoteTagging();
    return AllocateWith(
        bytes, alignment, NoCache,
        [&](RegionSet& r) {
          void* block = r.AllocateAligned(alignment, bytes);
          if (block != nullptr) r.SetTag(block, tag);
          return block;
        },
        [&](FailureCountedBy counted_by, RegionSet::ChargeAccount* account) {
          return SharedTagged(alignment, bytes, tag, counted_by, account);
        });
  }
  void* ReallocateTagged(void* ptr, size_t bytes, const BlockTag& tag) {
    NoteTagging();
    return ReallocateWith(ptr, bytes, &tag);
  }

  // As Memp's; for a thread heap with ThreadHeapExhaustion::kFail it is asked
  // too (on the thread heap's thread, after its operation on the heap) before
  // a request fails, and a true answer retries the thread heap once.
  void SetOutOfMemoryHandler(OutOfMemoryHandler handler, void* context) {
    {
      NoWaitLock hold(&handlers_mu_);
      oom_handler_ = handler;
      oom_context_ = context;
    }
    shared_.SetOutOfMemoryHandler(handler, context);
  }
  // As Memp's; one of the two handlers is in force at a time.
  void SetErrorHandler(MempErrorHandler handler, void* context) {
    NoWaitLock hold(&handlers_mu_);
    error_handler_ = handler;
    report_handler_ = nullptr;
    error_context_ = context;
  }
  void SetReportHandler(MempReportHandler handler, void* context) {
    NoWaitLock hold(&handlers_mu_);
    report_handler_ = handler;
    error_handler_ = nullptr;
    error_context_ = context;
  }

  // --- Retirement (Memp's, fmemp/memp.h) ---
  //
  // For a shared region; a region bound to a thread is not one (kNoRegion:
  // unbind it first), and a retiring region cannot be bound (kRetiring).
  // Thread heaps' caches park only their own regions' blocks, so none holds
  // a shared region's; the retiring region's table entry names
  // RegionTable::RetiringOwner, which every check of "shared" accepts
  // (IsShared).
  ManagementResult TryRetireRegion(void* begin,
                                   RegionSet::RetiredHandler handler,
                                   void* context) {
    return shared_.TryRetireRegion(begin, handler, context);
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

  // --- Budgets (fmemp/budget.h) ---
  //
  // The front-end's hard and soft limits, as Memp's, over every region:
  // the shared ones and every thread heap's. A thread heap's regions are
  // charged from its creation on (one atomic operation on its budget and one on
  // the front-end's per block taken from or returned to a heap: a refill or
  // trim of its cache, an uncached request; never a cache hit); the shared
  // regions once a limit is set.
  void SetLimit(size_t bytes) noexcept { shared_.SetLimit(bytes); }
  void SetSoftLimit(size_t bytes, size_t hysteresis,
                    Budget::SoftLimitHandler handler, void* context) noexcept {
    shared_.SetSoftLimit(bytes, hysteresis, handler, context);
  }
  void RemoveLimits() noexcept {
    shared_.RemoveLimits();
    NoWaitLock hold(&bindings_mu_);
    for (ThreadHeap* thread_heap : thread_heaps_) {
      thread_heap->budget.SetLimit(Budget::kNoLimit);
      thread_heap->budget.SetSoftLimit(Budget::kNoLimit, 0, nullptr, nullptr);
    }
  }
  Budget& budget() noexcept { return shared_.budget(); }
  const Budget& budget() const noexcept { return shared_.budget(); }

  // A thread heap's own hard limit, over the bytes of its regions in use or
  // parked in its cache and its fallback blocks (ThreadHeapStats::
  // fallback_bytes); a request that would pass it fails (no fallback to the
  // shared regions, no out-of-memory handler), counted in the thread heap's
  // failed_allocations and limit_refusals (a fallback's refusal: in the
  // heap's failed_allocations and the shared regions' limit_refusals).
  // `thread_id` names the thread heap's thread (ThreadHeapStats::thread_id; 0:
  // the calling thread's). May be set right after binding, and changed from any
  // thread at any time. Budget::kNoLimit removes it. kNoThreadHeap if that
  // thread has no thread heap. O(thread heaps).
  ManagementResult TrySetThreadHeapLimit(uint64_t thread_id, size_t bytes) {
    return WithThreadHeapOf(thread_id, [bytes](ThreadHeap* thread_heap) {
      thread_heap->budget.SetLimit(bytes);
    });
  }
  // A thread heap's own soft limit, with Budget's semantics; the handler runs
  // on the thread heap's thread, outside every lock and after its operation
  // on the heap (it may drain every thread heap).
  ManagementResult TrySetThreadHeapSoftLimit(uint64_t thread_id, size_t bytes,
                                             size_t hysteresis,
                                             Budget::SoftLimitHandler handler,
                                             void* context) {
    return WithThreadHeapOf(thread_id, [&](ThreadHeap* thread_heap) {
      thread_heap->budget.SetSoftLimit(bytes, hysteresis, handler, context);
    });
  }

  // --- Debug modes (Memp's) ---

  // Only while no region exists, shared or bound (FailedPrecondition).
  // Thread heaps take the modes when they bind their first region.
  absl::Status SetDebugOptions(const DebugOptions& options) {
    return TrySetDebugOptions(options).ToStatus();
  }
  ManagementResult TrySetDebugOptions(const DebugOptions& options) {
    return shared_.WithRegions([&](RegionSet& shared) -> ManagementResult {
      // Any entry of the table: a shared region or a bound one.
      if (table_.size() != 0) return ManagementError::kHasRegions;
      return shared.SetDebugOptions(options);
    });
  }
  // The region holding ptr, in the shared regions or the calling thread's
  // thread heap (a region bound to another thread cannot be checked from here:
  // FailedPrecondition).
  absl::Status CheckRegionOf(const void* ptr) {
    tlsf::CheckFindings damage;
    return CheckToStatus(TryCheckRegionOf(ptr, &damage), damage);
  }
  // As Memp::TryCheckRegionOf.
  ManagementResult TryCheckRegionOf(const void* ptr,
                                    tlsf::CheckFindings* damage = nullptr) {
    OwnCall own(this);
    if (ThreadHeap* const thread_heap = BoundThreadHeap();
        InThreadHeap(thread_heap, ptr)) {
      return thread_heap->regions.CheckRegionOf(ptr, damage);
    }
    return shared_.WithRegions(
        [&](const RegionSet& shared) -> ManagementResult {
          RegionTable::Entry entry;
          if (table_.FindWhole(reinterpret_cast<uintptr_t>(ptr), &entry) &&
              !IsShared(entry.owner)) {
            return {ManagementError::kInOtherThreadsHeap, ptr};
          }
          return shared.CheckRegionOf(ptr, damage);
        });
  }

  // --- Observation ---

  MempStats Probe() const {
    return shared_.ProbeAnd([this](MempStats& total) {
      NoWaitLock hold(&bindings_mu_);
      total.failed_allocations += retired_failed_;
      total.invalid_frees += retired_invalid_;
      total.limit_refusals += retired_limit_refusals_;
      for (const ThreadHeap* thread_heap : thread_heaps_) {
        const MempStats s = thread_heap->Published().stats;
        total.capacity_bytes += s.capacity_bytes;
        total.used_bytes += s.used_bytes;
        total.cached_bytes += s.cached_bytes;
        total.free_bytes += s.free_bytes;
        total.live_blocks += s.live_blocks;
        total.region_count += s.region_count;
        total.failed_allocations += s.failed_allocations;
        total.invalid_frees += s.invalid_frees;
        total.limit_refusals += s.limit_refusals;
      }
      // The true peak of the bytes taken from the regions (the sum's, not a
      // sum of peaks); never below the used + cached bytes just summed,
      // which may include a change whose delta is still on its way to
      // totals_.
      total.peak_used_bytes =
          std::max(totals_.peak.load(std::memory_order_relaxed),
                   total.used_bytes + total.cached_bytes);
    });
  }
  // Every thread heap with at least one region or live fallback blocks, in
  // binding order.
  ThreadHeapStatsList ProbeThreadHeaps() const {
    return shared_.WithRegions([this](const RegionSet&) {
      ThreadHeapStatsList out;
      NoWaitLock hold(&bindings_mu_);
      for (const ThreadHeap* thread_heap : thread_heaps_) {
        ThreadHeapStats stats = thread_heap->Published();
        stats.fallback_bytes = thread_heap->fallback_account.bytes;
        if (stats.stats.region_count != 0 || stats.fallback_bytes != 0) {
          out.push_back(stats);
        }
      }
      return out;
    });
  }
  // The shared regions' used bytes that no thread heap's fallback_bytes
  // count: blocks that threads without a thread heap allocated, and
  // fallback blocks whose thread heap's thread has exited. O(1); takes the
  // shared lock.
  size_t SharedUnattributedBytes() const {
    return shared_.WithRegions([](const RegionSet& shared) {
      return shared.Probe().used_bytes - shared.attributed_bytes();
    });
  }
  // The shared regions and the calling thread's own, in address order.
  // A region's figures are its heap's: blocks parked in the calling
  // thread's cache count as used there (FlushThisThread first for figures
  // without them), as under CachingMemp.
  RegionStatsList ProbeRegions() {
    OwnCall own(this);
    RegionStatsList out = shared_.ProbeRegions();
    if (ThreadHeap* const thread_heap = BoundThreadHeap()) {
      for (const RegionStats& r : thread_heap->regions.ProbeRegions()) {
        out.push_back(r);
      }
      std::sort(out.begin(), out.end(),
                [](const RegionStats& a, const RegionStats& b) {
                  return a.begin < b.begin;
                });
    }
    return out;
  }
  // The shared regions' peak and the calling thread's heap's now; every
  // other thread heap's at its thread's next call.
  void ResetPeak() noexcept {
    OwnCall own(this);
    peak_epoch_.fetch_add(1, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_release);
    {
      NoWaitLock hold(&bindings_mu_);
      NotifyThreadHeaps();
    }
    totals_.peak.store(totals_.used.load(std::memory_order_relaxed),
                       std::memory_order_relaxed);
    shared_.ResetPeak();
    SyncedThreadHeap();  // catches up with the new epoch
  }
  // The shared regions and the calling thread's own heap.
  absl::Status Check() {
    tlsf::CheckFindings findings;
    TryCheck(&findings).IgnoreError();
    return findings.ToStatus();
  }
  // As Memp::TryCheck, for the shared regions and the calling thread's own
  // thread heap: allocates nothing.
  ManagementResult TryCheck(tlsf::CheckFindings* findings) {
    OwnCall own(this);
    const size_t found_before = findings->count();
    shared_.TryCheck(findings).IgnoreError();
    if (ThreadHeap* const thread_heap = BoundThreadHeap())
      thread_heap->regions.Check(findings);
    if (findings->count() == found_before) return {};
    return ManagementError::kCorrupt;
  }
  // The shared regions' listing, then the calling thread's own heap's
  // (RegionSet::List's lines: NUL-terminated, on the stack, no allocation).
  void List(absl::FunctionRef<void(absl::string_view)> sink) {
    OwnCall own(this);
    shared_.List(sink);
    if (ThreadHeap* const thread_heap = BoundThreadHeap()) {
      thread_heap->FlushCache();  // the listing shows only blocks in use
      char line[64];              // on the stack: List allocates nothing
      const int n = std::snprintf(
          line, sizeof(line), "heap of thread %llu:",
          static_cast<unsigned long long>(thread_heap->thread_id));
      sink(absl::string_view(line, std::min<size_t>(n, sizeof(line) - 1)));
      thread_heap->regions.List(sink);
    }
  }

  // Fork support, as Memp's: every thread heap stopped (as DrainAllCaches stops
  // it), then every lock of this front-end, in lock order. The caller holds
  // the process-wide registry across fork() (LockRegistryForFork, before
  // these; the C API's atfork handlers do). So a child inherits no thread heap
  // in the middle of an operation and can drain them all.
  void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    ForEachThreadState(this, [](ThreadState* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      StopOwner(static_cast<ThreadHeap*>(s));
    });
    shared_.LockForFork();
    LockWithoutWaiting(bindings_mu_);
    LockWithoutWaiting(handlers_mu_);
  }
  void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    handlers_mu_.Unlock();
    bindings_mu_.Unlock();
    shared_.UnlockAfterFork();
    ForEachThreadState(this, [](ThreadState* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      ResumeOwner(static_cast<ThreadHeap*>(s));
    });
  }
  void ResetLockInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    new (&handlers_mu_) absl::Mutex();
    new (&bindings_mu_) absl::Mutex();
    shared_.ResetLockInForkChild();
    ForEachThreadState(this, [](ThreadState* s) {
      ResetOwnerInForkChild(static_cast<ThreadHeap*>(s));
    });
  }

 private:
  using RemoteBlock = thread_heap_internal::RemoteBlock;
  using RemoteQueue = thread_heap_internal::RemoteQueue;
  static constexpr uintptr_t kClosed = thread_heap_internal::kClosed;
  static constexpr uintptr_t kNews = thread_heap_internal::kNews;
  static constexpr uintptr_t kHitsOff = thread_heap_internal::kHitsOff;
  static constexpr uintptr_t kNoParking = thread_heap_internal::kNoParking;
  static constexpr uintptr_t kHeadFlags = thread_heap_internal::kHeadFlags;

  // Runs fn(thread heap) for the heap of thread `thread_id` (0: the calling
  // thread's), under bindings_mu_; kNoThreadHeap if there is none.
  template <typename Fn>
  ManagementResult WithThreadHeapOf(uint64_t thread_id, Fn fn) {
    if (thread_id == 0) thread_id = thread_heap_internal::CurrentThreadId();
    NoWaitLock hold(&bindings_mu_);
    for (ThreadHeap* thread_heap : thread_heaps_) {
      if (thread_heap->thread_id == thread_id) {
        fn(thread_heap);
        return {};
      }
    }
    return ManagementError::kNoThreadHeap;
  }

  // Whether a table entry's owner is the shared regions': none, or a
  // shared region being retired (RegionTable::RetiringOwner). Every other
  // owner is a thread heap's RemoteQueue.
  static bool IsShared(const void* owner) {
    return owner == nullptr || owner == RegionTable::RetiringOwner();
  }
  // The thread heap that a table entry of a bound region names (entry.owner is
  // its RemoteQueue). REQUIRES: the shared lock (which keeps the binding
  // as found).
  static ThreadHeap* ThreadHeapOf(const RegionTable::Entry& entry) {
    return static_cast<const RemoteQueue*>(entry.owner)
        ->thread_heap.load(std::memory_order_relaxed);
  }
  // Whether ptr lies in a region (pool header included) bound to `thread_heap`
  // (nullptr: false). One lock-free table lookup; the answer stays true
  // while `thread_heap` is the caller's own.
  bool InThreadHeap(const ThreadHeap* thread_heap, const void* ptr) const {
    RegionTable::Entry entry;
    return thread_heap != nullptr &&
           table_.FindWhole(reinterpret_cast<uintptr_t>(ptr), &entry) &&
           entry.owner == thread_heap->queue;
  }

  // A new thread heap with its queue; nullptr if the queue's memory cannot be
  // had.
  ThreadHeap* NewThreadHeap() {
    RemoteQueue* queue;
    {
      NoWaitLock hold(&bindings_mu_);
      queue = queues_.New();
    }
    if (queue == nullptr) return nullptr;
    queue->head.store(0, std::memory_order_relaxed);
    ThreadHeap* thread_heap =
        new ThreadHeap;  // in the metadata arena (a ThreadState)
    if (kAsymmetricBarrierEnabled && !HeavyBarrierIsMembarrier()) {
      thread_heap->cache_mode |= ThreadHeap::kFencedBarrier;
    }
    thread_heap->queue = queue;
    queue->thread_heap.store(thread_heap, std::memory_order_relaxed);
    // Its regions are table_'s entries owned by its queue.
    thread_heap->regions.UseTable(&table_, queue)
        .IgnoreError();  // no region yet
    thread_heap->totals = &totals_;
    thread_heap->budget.SetParent(&shared_.budget());
    thread_heap->regions.UseBudget(
        &thread_heap->budget);  // no region yet: charges 0
    thread_heap->regions.SetReportHandler(&ThreadHeapMemp::ForwardReport, this);
    thread_heap->generation = clear_generation_.load(std::memory_order_relaxed);
    thread_heap->seen_epoch = epoch_.load(std::memory_order_acquire);
    thread_heap->seen_peak_epoch = peak_epoch_.load(std::memory_order_relaxed);
    thread_heap->cache_key = marker_key_.load(std::memory_order_relaxed);
    if (tagging_used_.load(std::memory_order_relaxed)) {
      thread_heap->cache_mode |= ThreadHeap::kNoPark;
    }
    // The head's image of cache_mode (no hit before the first region).
    queue->head.fetch_or(ThreadHeap::HeadBitsOf(thread_heap->cache_mode),
                         std::memory_order_relaxed);
    return thread_heap;
  }

  // The calling thread's heap as it is, or nullptr: what an OwnerOpScope
  // marks in use around every call that touches it (see DrainAllCaches).
  ThreadHeap* ThreadHeapOfThisThread() {
    return static_cast<ThreadHeap*>(ThreadStateFor(this));
  }

  // One owner operation of the calling thread (fmemp/drain_protocol.h) on
  // its heap, for the life of the object (every call but the inline hits
  // takes one); once it is over, the user handlers that it made due run
  // (RunDueHandlers): never inside an owner operation, where a handler that
  // drains every thread heap would wait for a thread that waits for it.
  class OwnCall {
   public:
    explicit OwnCall(ThreadHeapMemp* memp)
        : memp_(memp), scope_(memp->ThreadHeapOfThisThread()) {}
    OwnCall(const OwnCall&) = delete;
    OwnCall& operator=(const OwnCall&) = delete;
    ~OwnCall() {
      scope_.Close();
      memp_->RunDueHandlers();
    }
    // For a call that gave the thread its heap: the operation covers it
    // from now on. REQUIRES: the thread had none when this was made.
    void Adopt(ThreadHeap* thread_heap) { scope_.Adopt(thread_heap); }

   private:
    ThreadHeapMemp* const memp_;
    OwnerOpScope scope_;
  };

  // Runs the user handlers that are due (soft limits: the calling thread's
  // heap's and the front-end's; retired regions'), on the calling thread,
  // unless it is inside an owner operation of its own (an outer call, which
  // runs them when it ends). Holds no lock of this front-end meanwhile. A few
  // relaxed loads when none is due.
  void RunDueHandlers() {
    ThreadHeap* const mine = ThreadHeapOfThisThread();
    if (mine != nullptr) {
      if (mine->in_scope.load(std::memory_order_relaxed) != 0) return;
      mine->budget.RunSoftHandlerIfDue();  // and the front-end's, its parent
    } else {
      shared_.budget().RunSoftHandlerIfDue();
    }
    shared_.RunRetiredHandlersIfDue();
  }

  // AllocateWith's from_cache for requests that never use the cache.
  static void* NoCache(ThreadHeap*) { return nullptr; }

  // The calling thread's heap, brought up to date with Clear, ResetPeak
  // and queued frees; nullptr if the thread never bound a region.
  // REQUIRES: inside an owner operation on it (OwnerOpScope).
  ThreadHeap* SyncedThreadHeap() {
    ThreadState* state = ThreadStateFor(this);
    if (state == nullptr) return nullptr;
    ThreadHeap* const thread_heap = static_cast<ThreadHeap*>(state);
    // Acquire: news seen here comes with the epoch it announces.
    const uintptr_t head =
        thread_heap->queue->head.load(std::memory_order_acquire);
    const uint64_t epoch = epoch_.load(std::memory_order_acquire);
    if (thread_heap->seen_epoch != epoch) CatchUp(thread_heap, epoch);
    constexpr uintptr_t kModeBits = kHitsOff | kNoParking;
    if ((head & ~kModeBits) != 0 ||
        (thread_heap->queue->head.load(std::memory_order_relaxed) &
         ~kModeBits) != 0) {
      ApplyRemoteFrees(thread_heap, nullptr);
    }
    return thread_heap;
  }
  // As SyncedThreadHeap, but only a thread heap with a region to allocate from.
  ThreadHeap* BoundThreadHeap() {
    ThreadHeap* const thread_heap = SyncedThreadHeap();
    return thread_heap != nullptr && thread_heap->has_regions() ? thread_heap
                                                                : nullptr;
  }

  // The calling thread's heap when its own calls may take the inline hit:
  // it was the thread's last-used state, has nothing to catch up on and its
  // cache_mode allows the hit, all told by one load of its queue's head:
  // no bit but `allowed` (kNoParking or 0) set (no queued frees, no news of
  // a Clear, ResetPeak or tagging, no kHitsOff); else nullptr (the slow
  // path syncs). Inline, no call.
  ABSL_ATTRIBUTE_ALWAYS_INLINE ThreadHeap* ReadyThreadHeap(uintptr_t allowed) {
    ThreadHeap* const thread_heap =
        static_cast<ThreadHeap*>(LastUsedThreadStateFor(this));
    if (thread_heap == nullptr ||
        (thread_heap->queue->head.load(std::memory_order_relaxed) & ~allowed) !=
            0) {
      return nullptr;
    }
    // The head's image of cache_mode is exact (SetCacheMode).
    FMEMP_DCHECK((ThreadHeap::HeadBitsOf(thread_heap->cache_mode) & ~allowed) ==
                 0);
    return thread_heap;
  }

  // Allocate without the inline hit: the cache after a sync (refilling it
  // when the class is empty), else the thread heap's regions or the shared
  // ones.
  ABSL_ATTRIBUTE_NOINLINE void* AllocateSlow(size_t bytes) noexcept {
    return AllocateWith(
        bytes, tlsf::kAlignment,
        [this, bytes](ThreadHeap* thread_heap) -> void* {
          if (bytes > SizeClassCache::kMaxCachedRequest ||
              (thread_heap->cache_mode & ThreadHeap::kCacheOff) != 0) {
            return nullptr;
          }
          return TakeFromCache(thread_heap, tlsf::SpanForRequest(bytes));
        },
        [bytes](RegionSet& r) { return r.Allocate(bytes); },
        [this, bytes](FailureCountedBy counted_by,
                      RegionSet::ChargeAccount* account) {
          return shared_.AllocateWith(
              bytes, tlsf::kAlignment,
              [this, bytes, account](RegionSet& r) {
                return Counted(r, [&] {
                  return account == nullptr
                             ? r.Allocate(bytes)
                             : r.AllocateFor(account, tlsf::kAlignment, bytes);
                });
              },
              counted_by);
        });
  }

  // Free without the inline hit.
  ABSL_ATTRIBUTE_NOINLINE bool FreeSlow(void* ptr) noexcept {
    if (ptr == nullptr) return true;
    OwnCall own(this);
    if (ThreadHeap* const thread_heap = BoundThreadHeap())
      return FreeInThreadHeap(thread_heap, ptr);
    return FreeElsewhere(ptr);
  }

  // Allocate's miss: a pop after a refill from the thread heap's regions
  // (nullptr when they have no room; the caller then takes the uncached
  // path, which counts the failure and may flush the cache).
  ABSL_ATTRIBUTE_NOINLINE void* TakeFromCache(ThreadHeap* thread_heap,
                                              size_t span) {
    void* p = thread_heap->cache.Take(*thread_heap, span);
    // A refill cut short by a budget is no call's outcome yet: the call
    // then asks the regions, whose refusal counts.
    thread_heap->regions.TakeLimitRefusal();
    thread_heap->PublishUsage();
    return p;  // (a refill may cross a soft limit: see OwnCall)
  }

  // Free's miss for a calling thread with a thread heap: parks a block of the
  // thread heap's regions (reporting a double free: its marker is set, in this
  // cache or queued to this thread heap), or frees it into the thread heap's
  // regions, or hands it on to FreeElsewhere when it is not in them.
  ABSL_ATTRIBUTE_NOINLINE bool FreeInThreadHeap(ThreadHeap* thread_heap,
                                                void* ptr) {
    if ((thread_heap->cache_mode & ThreadHeap::kCacheOff) == 0) {
      const size_t span = SizeClassCache::CacheableSpan(
          thread_heap->regions.table(), thread_heap->queue, ptr,
          &thread_heap->cache.region_hint);
      if (span != 0) {
        const bool park = (thread_heap->cache_mode & ThreadHeap::kNoPark) == 0;
        switch (thread_heap->cache.Put(*thread_heap, ptr, span, park)) {
          case SizeClassCache::kParked:
            thread_heap->PublishUsage();
            return true;
          case SizeClassCache::kDoubleFree:
            thread_heap->regions.ReportMisuse(MempError::kDoubleFree, ptr);
            thread_heap->Publish();  // misuse, counted
            return false;
          case SizeClassCache::kNotParked:
            break;
        }
      }
    }
    switch (thread_heap->regions.TryFree(ptr)) {
      case RegionSet::FreeOutcome::kFreed:
        thread_heap->PublishUsage();
        return true;
      case RegionSet::FreeOutcome::kRefused:
        thread_heap->Publish();  // misuse, counted
        return false;
      case RegionSet::FreeOutcome::kOutside:
        break;
    }
    return FreeElsewhere(ptr);
  }

  // Whether the live block at ptr carries this front-end's marker: parked
  // in a thread heap's cache or queued to its owner (freed, for the user).
  // REQUIRES: ptr is a live block of a region of this front-end.
  bool IsParkedOrQueued(const void* ptr) const {
    const auto* block = static_cast<const ParkedBlock*>(ptr);
    return SizeClassCache::LoadMarker(block) ==
           SizeClassCache::MarkerFor(
               block, marker_key_.load(std::memory_order_relaxed));
  }

  // Stops every thread heap parking blocks, from its next call on (a parked
  // block would keep its tag while free).
  void NoteTagging() {
    if (!tagging_used_.load(std::memory_order_relaxed)) {
      tagging_used_.store(true, std::memory_order_relaxed);
      epoch_.fetch_add(1, std::memory_order_release);
      NoWaitLock hold(&bindings_mu_);
      NotifyThreadHeaps();
    }
  }

  // Makes every thread heap's next own call leave its inline hit and catch up
  // with epoch_ (its hits test only its queue's head). Call after changing
  // epoch_: the owner that sees kNews (acquire) then sees the new epoch.
  // O(thread heaps).
  void NotifyThreadHeaps() ABSL_EXCLUSIVE_LOCKS_REQUIRED(bindings_mu_) {
    bindings_mu_.AssertHeld();
    for (ThreadHeap* thread_heap : thread_heaps_) {
      thread_heap->queue->head.fetch_or(kNews, std::memory_order_release);
    }
  }

  // Out of line, as the other rare paths of an own call below: inlined,
  // they cost every own call registers saved and restored.
  ABSL_ATTRIBUTE_NOINLINE void CatchUp(ThreadHeap* thread_heap,
                                       uint64_t epoch) {
    const uint64_t generation =
        clear_generation_.load(std::memory_order_relaxed);
    const uint64_t peak_epoch = peak_epoch_.load(std::memory_order_relaxed);
    if (thread_heap->generation != generation) {
      // Parked and queued blocks lie in forgotten regions: dropped, not
      // touched (their markers are stale under the new key).
      thread_heap->cache.Forget();
      // Clear reset the front-end's budget: the thread heap's regions are
      // forgotten, not refunded to it.
      thread_heap->regions.ForgetBudget();
      thread_heap->regions.Clear();
      thread_heap->budget.Reset();
      thread_heap->regions.UseBudget(&thread_heap->budget);
      // (Keeping news that may have come since `epoch` was read, and the
      // image of cache_mode.)
      thread_heap->queue->head.fetch_and(kNews | kHitsOff | kNoParking,
                                         std::memory_order_relaxed);
      thread_heap->accounted_used = 0;  // Clear zeroed the totals
      thread_heap->peak = 0;
      thread_heap->cache_key = marker_key_.load(std::memory_order_relaxed);
      thread_heap->generation = generation;
      thread_heap->fallbacks = 0;
    } else if (thread_heap->seen_peak_epoch != peak_epoch) {
      thread_heap->regions.ResetPeak();
      thread_heap->peak = thread_heap->accounted_used;
    }
    thread_heap->seen_peak_epoch = peak_epoch;
    if (tagging_used_.load(std::memory_order_relaxed)) {
      thread_heap->SetCacheMode(thread_heap->cache_mode | ThreadHeap::kNoPark);
    }
    thread_heap->seen_epoch = epoch;
    thread_heap->Publish();
  }

  // Runs fn() on the shared regions `shared` (under the shared lock) and
  // adds the change of their used bytes to totals_.
  template <typename Fn>
  auto Counted(RegionSet& shared, Fn fn) {
    const size_t before = shared.Probe().used_bytes;
    auto result = fn();
    totals_.Add(shared.Probe().used_bytes - before);
    return result;
  }
  // Allocations from the shared regions, counted in totals_, with Memp's
  // out-of-memory handling; a nullptr is counted as Memp::AllocateWith says.
  // `account`: the falling-back thread heap's fallback_account (the block is
  // attributed to it and charged to its limit), or nullptr.
  void* SharedAligned(size_t alignment, size_t bytes,
                      FailureCountedBy counted_by,
                      RegionSet::ChargeAccount* account) {
    return shared_.AllocateWith(
        bytes, alignment,
        [&](RegionSet& r) {
          return Counted(
              r, [&] { return r.AllocateFor(account, alignment, bytes); });
        },
        counted_by);
  }
  void* SharedTagged(size_t alignment, size_t bytes, const BlockTag& tag,
                     FailureCountedBy counted_by,
                     RegionSet::ChargeAccount* account) {
    return shared_.AllocateWith(
        bytes, alignment,
        [&](RegionSet& r) {
          return Counted(r, [&] {
            void* p = r.AllocateFor(account, alignment, bytes);
            if (p != nullptr) r.SetTag(p, tag);
            return p;
          });
        },
        counted_by);
  }

  // Counts one call of this front-end that returns nullptr, where it
  // returns it: among the figures of the calling thread's heap when it has
  // one (the thread heap's own counter, published with its other figures), else
  // among the shared regions'.
  void CountFailedCall() {
    if (ThreadHeap* const thread_heap = BoundThreadHeap()) {
      CountFailure(thread_heap);
      return;
    }
    shared_.WithRegions([](RegionSet& shared) {
      shared.NoteFailure();
      return 0;
    });
  }
  // Owner only: counts a call of `thread_heap`'s thread that returns nullptr.
  static void CountFailure(ThreadHeap* thread_heap) {
    thread_heap->regions.NoteFailure();
    thread_heap->Publish();
  }

  // Applies the frees other threads queued to `thread_heap`: takes the whole
  // list with one exchange and frees each block into the thread heap's regions;
  // a block not in them (its region was unbound meanwhile, or the push raced a
  // reuse of the queue) is routed again as any free from another thread.
  // `shared` is the shared regions when the caller holds the shared lock, else
  // nullptr. Owner only. O(queued blocks); no allocation.
  ABSL_ATTRIBUTE_NOINLINE void ApplyRemoteFrees(ThreadHeap* thread_heap,
                                                RegionSet* shared) {
    const uintptr_t head = thread_heap->queue->head.exchange(
        ThreadHeap::HeadBitsOf(thread_heap->cache_mode),
        std::memory_order_acq_rel);
    if ((head & kClosed) != 0) {  // cannot happen on a live owner
      thread_heap->queue->head.store(kClosed, std::memory_order_relaxed);
      return;
    }
    ApplyList(thread_heap, head & ~kHeadFlags, shared);
    if ((head & kNews) != 0) {
      // The exchange took the news: act on it now (acquire: its epoch is
      // visible).
      const uint64_t epoch = epoch_.load(std::memory_order_acquire);
      if (thread_heap->seen_epoch != epoch) CatchUp(thread_heap, epoch);
    }
    thread_heap->Publish();
  }
  void ApplyList(ThreadHeap* thread_heap, uintptr_t list, RegionSet* shared) {
    while (list != 0 && list != kClosed) {
      // Every link is checked before it is followed: a write into a queued
      // block (a use after free) must not send the owner into wild memory.
      RegionTable::Entry region;
      if (ABSL_PREDICT_FALSE(!IsQueuedBlock(list, &region))) {
        DropDamagedList(list, shared);
        return;
      }
      auto* block = reinterpret_cast<RemoteBlock*>(list);
      list = block->next;
      // A block of the thread heap's own regions goes into its cache, its
      // marker (claimed by the freeing thread, with the same key) kept.
      const size_t span =
          thread_heap->cache_mode == 0
              ? SizeClassCache::CacheableSpan(thread_heap->regions.table(),
                                              thread_heap->queue, block,
                                              &thread_heap->cache.region_hint)
              : 0;
      if (span != 0 && span <= thread_heap->cache.max_bytes() &&
          thread_heap->cache_key ==
              marker_key_.load(std::memory_order_relaxed)) {
        thread_heap->cache.ParkClaimed(
            *thread_heap, reinterpret_cast<ParkedBlock*>(block), span);
        continue;
      }
      // Unclaimed before the heap sees it (a later free must not find it
      // queued).
      __atomic_store_n(&block->marker, 0, __ATOMIC_RELEASE);
      if (region.owner == thread_heap->queue) {
        thread_heap->regions.Free(block);
      } else {
        RouteAgain(block, shared);
      }
    }
  }
  // Whether `address` may be trusted as a queued block: aligned, whole
  // inside a region of this front-end (the thread heap's own, a bound one, or a
  // shared one: found through the lock-free table, so nothing outside a
  // region is read), and carrying its marker. Its region's entry in *entry.
  bool IsQueuedBlock(uintptr_t address, RegionTable::Entry* entry) const {
    if (address % tlsf::kAlignment != 0) return false;
    if (!table_.Find(address, entry)) return false;
    if (entry->end - address < sizeof(RemoteBlock)) return false;
    const auto* block = reinterpret_cast<const RemoteBlock*>(address);
    return __atomic_load_n(&block->marker, __ATOMIC_ACQUIRE) ==
           (address ^ marker_key_.load(std::memory_order_relaxed));
  }
  // The rest of a remote-free list from a damaged link on is dropped (those
  // blocks stay allocated, never reused), reported once.
  ABSL_ATTRIBUTE_NOINLINE void DropDamagedList(uintptr_t link,
                                               RegionSet* shared) {
    const void* ptr = reinterpret_cast<const void*>(link);
    if (shared != nullptr) {
      shared->ReportMisuse(MempError::kUseAfterFreeWrite, ptr);
      return;
    }
    shared_.WithRegions([ptr](RegionSet& r) {
      r.ReportMisuse(MempError::kUseAfterFreeWrite, ptr);
      return 0;
    });
  }

  // A block found in a queue it does not belong to: freed as a free from
  // another thread would be.
  void RouteAgain(void* ptr, RegionSet* shared) {
    if (shared == nullptr) {
      FreeElsewhere(ptr);
      return;
    }
    switch (PushRemote(ptr)) {
      case kQueued:
        return;
      case kQueuedTwice:
        shared->ReportMisuse(MempError::kDoubleFree, ptr);
        return;
      case kTakeLock:
        FreeLocked(*shared, ptr);
        return;
    }
  }

  // Runs attempt(thread_heap->regions) and returns its block, or nullptr. On a
  // failure for lack of space it returns the thread heap's cached blocks to its
  // regions and retries. no_room: nullptr for an allocation (every nullptr is
  // lack of space or bad input); for a reallocation, what attempt says of its
  // nullptr (false: misuse, reported). Sets refused_by_limit (and counts the
  // limit refusal) when a budget refused it. Asks no handler and counts no
  // failure: the caller decides what the miss leads to (MissInThreadHeap),
  // and asks the out-of-memory handler only once its operation is over.
  // Only the success path is inline.
  template <typename Attempt>
  void* ThreadHeapAttempt(ThreadHeap* thread_heap, Attempt attempt,
                          const bool* no_room) {
    thread_heap->refused_by_limit = false;
    void* p = attempt(thread_heap->regions);
    if (ABSL_PREDICT_TRUE(p != nullptr)) {
      thread_heap->PublishUsage();
      return p;
    }
    return ThreadHeapAttemptFailed(thread_heap, attempt, no_room);
  }

  // ThreadHeapAttempt after its first attempt failed.
  template <typename Attempt>
  ABSL_ATTRIBUTE_NOINLINE void* ThreadHeapAttemptFailed(ThreadHeap* thread_heap,
                                                        Attempt attempt,
                                                        const bool* no_room) {
    void* p = nullptr;
    if ((no_room == nullptr || *no_room) && thread_heap->cache.bytes() != 0) {
      // Blocks parked in the cache may make room (and, under a limit, are
      // charged): give them back, retry.
      thread_heap->regions.TakeLimitRefusal();
      thread_heap->FlushCache();
      p = attempt(thread_heap->regions);
    }
    // A budget's refusal is final: no out-of-memory handler, no fallback.
    thread_heap->refused_by_limit =
        p == nullptr && thread_heap->regions.TakeLimitRefusal();
    if (thread_heap->refused_by_limit) thread_heap->regions.NoteLimitRefusal();
    thread_heap->Publish();
    return p;
  }

  // What a call of a thread with a thread heap does next, decided inside
  // its owner operation and done after it, where user handlers may run.
  enum class Next {
    kDone,        // the call's outcome is known (a failure was counted)
    kShared,      // no thread heap: the shared regions serve it
    kAskHandler,  // ask the out-of-memory handler, then try once more
    kFallBack,    // the shared regions serve it; their failure is the
                  // thread heap's (counted by CountFailureOfThisThread)
    kMove,        // (reallocation) move the block to a new one anywhere
  };
  // After the thread heap could not serve a request for lack of space:
  // kFallBack (counted as a fallback), kAskHandler (kFail, once per call:
  // not after_handler), or kDone with the failure counted (a budget's
  // refusal, or the handler's retry failed too).
  Next MissInThreadHeap(ThreadHeap* thread_heap, bool after_handler) {
    if (!thread_heap->refused_by_limit) {
      if (thread_heap->on_exhaustion ==
          ThreadHeapExhaustion::kFallBackToShared) {
        ++thread_heap->fallbacks;
        thread_heap->Publish();
        return Next::kFallBack;
      }
      if (!after_handler) return Next::kAskHandler;
    }
    CountFailure(thread_heap);
    return Next::kDone;
  }
  // Counts the failure of a call of the calling thread that its operations
  // did not count (a fallback that failed, a handler that declined), in an
  // owner operation of its own.
  ABSL_ATTRIBUTE_NOINLINE void CountFailureOfThisThread() {
    OwnCall own(this);
    CountFailedCall();
  }

  // Serves a request from the calling thread's heap (from_cache(thread heap),
  // which may return nullptr, then thread_heap_attempt) or, with no thread
  // heap or on a fallback, from the shared regions
  // (shared_attempt(FailureCountedBy, ChargeAccount*), which applies Memp's
  // out-of-memory handling and, on a fallback, attributes the block to the
  // thread heap's fallback_account). A nullptr result is one failed
  // allocation, counted once: by
  // the thread heap when the calling thread has one (a fallback that fails too
  // leaves it to the thread heap), else by the shared regions. Called outside
  // the caller's owner operations: the user handlers (soft limits, retired
  // regions, out of memory) run between this call's operations, never inside
  // one (see OwnCall); a retry after the out-of-memory handler is an operation
  // of its own, which finds the thread heap as the handler left it.
  template <typename FromCacheFn, typename ThreadHeapAttemptFn,
            typename SharedAttemptFn>
  void* AllocateWith(size_t bytes, size_t alignment, FromCacheFn from_cache,
                     ThreadHeapAttemptFn thread_heap_attempt,
                     SharedAttemptFn shared_attempt) {
    Next next = Next::kDone;
    void* p = AllocateInOwnOperation(from_cache, thread_heap_attempt,
                                     /*after_handler=*/false, &next);
    if (ABSL_PREDICT_TRUE(next == Next::kDone)) return p;
    return AllocateAfterMiss(bytes, alignment, from_cache, thread_heap_attempt,
                             shared_attempt, next);
  }
  // AllocateWith's operation on the calling thread's heap: its block, or
  // nullptr and in *next what the call does next.
  template <typename FromCacheFn, typename ThreadHeapAttemptFn>
  void* AllocateInOwnOperation(FromCacheFn from_cache,
                               ThreadHeapAttemptFn thread_heap_attempt,
                               bool after_handler, Next* next) {
    *next = Next::kDone;
    OwnCall own(this);
    ThreadHeap* const thread_heap = BoundThreadHeap();
    if (thread_heap == nullptr) {
      *next = Next::kShared;
      return nullptr;
    }
    if (void* p = from_cache(thread_heap)) return p;
    void* p = ThreadHeapAttempt(thread_heap, thread_heap_attempt,
                                /*no_room=*/nullptr);
    if (p == nullptr) *next = MissInThreadHeap(thread_heap, after_handler);
    return p;
  }
  // AllocateWith after its first operation, outside every operation.
  template <typename FromCacheFn, typename ThreadHeapAttemptFn,
            typename SharedAttemptFn>
  ABSL_ATTRIBUTE_NOINLINE void* AllocateAfterMiss(
      size_t bytes, size_t alignment, FromCacheFn from_cache,
      ThreadHeapAttemptFn thread_heap_attempt, SharedAttemptFn shared_attempt,
      Next next) {
    void* p = nullptr;
    if (next == Next::kAskHandler) {
      if (!AskOutOfMemoryHandler(bytes, alignment)) {
        CountFailureOfThisThread();
        return nullptr;
      }
      p = AllocateInOwnOperation(from_cache, thread_heap_attempt,
                                 /*after_handler=*/true, &next);
    }
    switch (next) {
      case Next::kShared:
        return Shared(shared_attempt, FailureCountedBy::kThisMemp,
                      /*account=*/nullptr);
      case Next::kFallBack:
        // (The calling thread's heap: kFallBack comes only from it.)
        p = Shared(shared_attempt, FailureCountedBy::kCaller,
                   &ThreadHeapOfThisThread()->fallback_account);
        RunDueHandlers();  // the fallback may cross the heap's soft limit
        if (p == nullptr) CountFailureOfThisThread();
        return p;
      default:
        return p;
    }
  }

  // Runs a request on the shared regions, out of line.
  template <typename SharedAttemptFn>
  ABSL_ATTRIBUTE_NOINLINE static void* Shared(
      SharedAttemptFn shared_attempt, FailureCountedBy counted_by,
      RegionSet::ChargeAccount* account) {
    return shared_attempt(counted_by, account);
  }

  // As AllocateWith, for a reallocation: decided in an operation
  // (ReallocateInOwnOperation), then a move or the out-of-memory handler
  // outside it.
  void* ReallocateWith(void* ptr, size_t bytes, const BlockTag* tag) {
    if (ptr == nullptr) {
      return tag != nullptr ? AllocateTagged(tlsf::kAlignment, bytes, *tag)
                            : Allocate(bytes);
    }
    if (bytes == 0) {
      Free(ptr);
      return nullptr;
    }
    Next next = Next::kDone;
    size_t usable = 0, alignment = 0;
    void* p = ReallocateInOwnOperation(ptr, bytes, tag, /*after_handler=*/false,
                                       &next, &usable, &alignment);
    if (next == Next::kAskHandler) {
      if (!AskOutOfMemoryHandler(bytes, tlsf::kAlignment)) {
        CountFailureOfThisThread();
        return nullptr;
      }
      p = ReallocateInOwnOperation(ptr, bytes, tag, /*after_handler=*/true,
                                   &next, &usable, &alignment);
    }
    switch (next) {
      case Next::kFallBack:
        p = MoveBlock(ptr, bytes, tag, usable, alignment,
                      /*fallback_of=*/ThreadHeapOfThisThread());
        if (p == nullptr) CountFailureOfThisThread();
        return p;
      case Next::kMove:
        return MoveBlock(ptr, bytes, tag, usable, alignment,
                         /*fallback_of=*/nullptr);
      default:
        return p;
    }
  }
  // ReallocateWith's operation: the reallocated block (or nullptr) when the
  // call is decided here (*next == kDone), else what comes next, with the
  // block's usable size and alignment for a move.
  void* ReallocateInOwnOperation(void* ptr, size_t bytes, const BlockTag* tag,
                                 bool after_handler, Next* next,
                                 size_t* usable_out, size_t* alignment_out) {
    *next = Next::kDone;
    OwnCall own(this);
    ThreadHeap* const thread_heap = BoundThreadHeap();
    if (InThreadHeap(thread_heap, ptr)) {
      if (thread_heap->regions.UsableSize(ptr) != 0 && IsParkedOrQueued(ptr)) {
        // Freed already: the heap still counts it live, so say it here.
        thread_heap->regions.ReportMisuse(MempError::kDoubleFree, ptr);
        thread_heap->Publish();
        return nullptr;
      }
      bool no_room = false;
      void* p = ThreadHeapAttempt(
          thread_heap,
          [&](RegionSet& r) {
            void* moved = r.Reallocate(ptr, bytes, &no_room);
            if (moved != nullptr && tag != nullptr) r.SetTag(moved, *tag);
            return moved;
          },
          &no_room);
      if (p != nullptr || !no_room) return p;  // done, or misuse (reported)
      *next = MissInThreadHeap(thread_heap, after_handler);
      if (*next == Next::kFallBack) {
        *usable_out = thread_heap->regions.UsableSize(ptr);
        *alignment_out = BlockAlignmentIn(thread_heap->regions.table(), ptr);
      }
      return nullptr;
    }
    // A block of the shared regions is resized in place there when it can
    // be; a block of another thread's heap is moved.
    enum Outcome { kDone, kMove, kNotLive, kRefused };
    size_t usable = 0, alignment = 0;
    void* result = nullptr;
    const Outcome outcome = shared_.WithRegions([&](RegionSet& shared) {
      RegionTable::Entry entry;
      if (!table_.FindWhole(reinterpret_cast<uintptr_t>(ptr), &entry) ||
          IsShared(entry.owner)) {
        // A shared region's block, or a foreign pointer (reported).
        bool no_room = false;
        usable = shared.UsableSize(ptr);
        result = Counted(
            shared, [&] { return shared.Reallocate(ptr, bytes, &no_room); });
        if (result != nullptr && tag != nullptr) shared.SetTag(result, *tag);
        if (result != nullptr || !no_room) return kDone;
        if (shared.TakeLimitRefusal()) {
          // A limit refused the growth (the front-end's, or the thread
          // heap's that the block is attributed to): final, as for an
          // allocation; the call's failure is counted below.
          shared.NoteLimitRefusal();
          return kRefused;
        }
        // No room in any shared region. The caller's thread heap (or the
        // out-of-memory handler) may have some: move it outside the lock,
        // where the allocation that decides the call counts its failure.
        alignment = BlockAlignmentIn(shared.table(), ptr);
        return kMove;
      }
      const tlsf::Heap* heap = BoundHeapOf(ptr);
      if (heap == nullptr) {
        // In a bound region's first bytes, before any payload: reported as
        // a pointer outside the shared regions.
        result = Counted(shared, [&] { return shared.Reallocate(ptr, bytes); });
        return kDone;
      }
      usable = heap->UsableSize(ptr);
      alignment = heap->BlockAlignment(ptr);
      if (usable == 0) {
        shared.ReportMisuse(MempError::kInvalidFree, ptr);
        return kNotLive;
      }
      if (IsParkedOrQueued(ptr)) {
        shared.ReportMisuse(MempError::kDoubleFree, ptr);
        return kNotLive;
      }
      return kMove;
    });
    if (outcome == kRefused) CountFailedCall();
    if (outcome == kMove) {
      *next = Next::kMove;
      *usable_out = usable;
      *alignment_out = alignment;
    }
    return result;
  }

  // Allocates bytes with `alignment` (from the caller's thread heap, or,
  // for fallback_of (a thread heap falling back), from the shared regions
  // only, attributed to it), copies the live block at ptr into it and frees
  // ptr. A failure is counted by the allocation, except for a fallback,
  // where the caller's thread heap counts it.
  void* MoveBlock(void* ptr, size_t bytes, const BlockTag* tag, size_t usable,
                  size_t alignment, ThreadHeap* fallback_of) {
    alignment = std::max(alignment, tlsf::kAlignment);
    void* moved = nullptr;
    if (fallback_of != nullptr) {
      constexpr FailureCountedBy kByThreadHeap = FailureCountedBy::kCaller;
      RegionSet::ChargeAccount* const account = &fallback_of->fallback_account;
      moved = tag != nullptr
                  ? SharedTagged(alignment, bytes, *tag, kByThreadHeap, account)
                  : SharedAligned(alignment, bytes, kByThreadHeap, account);
    } else {
      moved = tag != nullptr ? AllocateTagged(alignment, bytes, *tag)
                             : AllocateAligned(alignment, bytes);
    }
    if (moved == nullptr) return nullptr;  // ptr is unchanged
    std::memcpy(moved, ptr, std::min(usable, bytes));
    Free(ptr);
    return moved;
  }

  // The alignment the live block at ptr was allocated with, found through
  // `table` (a RegionSet's); kAlignment if ptr lies in none of its regions.
  static size_t BlockAlignmentIn(const RegionTable& table, const void* ptr) {
    RegionTable::Entry entry;
    if (!table.Find(reinterpret_cast<uintptr_t>(ptr), &entry)) {
      return tlsf::kAlignment;
    }
    return static_cast<const tlsf::Heap*>(entry.heap)->BlockAlignment(ptr);
  }

  // The heap of the bound region whose payload range holds ptr, or
  // nullptr (a shared region, none, or a bound region's first bytes). Call
  // under the shared lock (which keeps the region bound); reads only the
  // lock-free table and, later, atomic header words.
  const tlsf::Heap* BoundHeapOf(const void* ptr) const {
    RegionTable::Entry entry;
    if (!table_.Find(reinterpret_cast<uintptr_t>(ptr), &entry) ||
        IsShared(entry.owner)) {
      return nullptr;
    }
    return static_cast<const tlsf::Heap*>(entry.heap);
  }

  enum PushOutcome { kQueued, kQueuedTwice, kTakeLock };

  // Queues ptr to the thread heap whose bound region holds it, without a lock:
  // kQueued; kQueuedTwice if it is queued already (a double free); kTakeLock
  // when it is not a live block of a bound region, or its owner has exited
  // (nothing was written). One table lookup finds the region's heap and
  // owner. See the top for why a bad pointer cannot hurt.
  PushOutcome PushRemote(void* ptr) noexcept {
    const uintptr_t address = reinterpret_cast<uintptr_t>(ptr);
    RegionTable::Entry entry;
    if (!table_.Find(address, &entry) || IsShared(entry.owner)) {
      return kTakeLock;  // no region's payload, or a shared region's
    }
    const auto* heap = static_cast<const tlsf::Heap*>(entry.heap);
    auto* queue =
        const_cast<RemoteQueue*>(static_cast<const RemoteQueue*>(entry.owner));
    if (heap->UsableSizeIfFreeable(ptr) < sizeof(RemoteBlock)) {
      return kTakeLock;
    }
    constexpr auto kRelaxed = std::memory_order_relaxed;
    auto* block = static_cast<RemoteBlock*>(ptr);
    const uintptr_t marker =
        address ^ marker_key_.load(std::memory_order_relaxed);
    uintptr_t seen = __atomic_load_n(&block->marker, __ATOMIC_RELAXED);
    do {
      if (seen == marker) return kQueuedTwice;
    } while (!__atomic_compare_exchange_n(&block->marker, &seen, marker,
                                          /*weak=*/true, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    uintptr_t head = queue->head.load(kRelaxed);
    do {
      if ((head & kClosed) != 0) {
        __atomic_store_n(&block->marker, 0, __ATOMIC_RELEASE);
        return kTakeLock;
      }
      block->next = head & ~kHeadFlags;
    } while (!queue->head.compare_exchange_weak(
        head, address | (head & kHeadFlags), std::memory_order_release,
        kRelaxed));
    return kQueued;
  }

  // A free of a block outside the calling thread's heap: queued to the thread
  // heap that owns it, lock-free; or into the shared regions (or reported)
  // under the shared lock.
  ABSL_ATTRIBUTE_NOINLINE bool FreeElsewhere(void* ptr) {
    switch (PushRemote(ptr)) {
      case kQueued:
        return true;
      case kQueuedTwice:
        shared_.WithRegions([ptr](RegionSet& shared) {
          shared.ReportMisuse(MempError::kDoubleFree, ptr);
          return 0;
        });
        return false;
      case kTakeLock:
        break;
    }
    return shared_.WithRegions(
        [&](RegionSet& shared) { return FreeLocked(shared, ptr); });
  }
  // FreeElsewhere's locked path. REQUIRES: the shared lock.
  bool FreeLocked(RegionSet& shared, void* ptr) {
    RegionTable::Entry entry;
    if (!table_.FindWhole(reinterpret_cast<uintptr_t>(ptr), &entry) ||
        IsShared(entry.owner)) {
      // A shared region's block, or a foreign pointer (reported).
      return Counted(shared, [&] { return shared.Free(ptr); });
    }
    const tlsf::Heap* heap = BoundHeapOf(ptr);
    if (heap == nullptr) return shared.Free(ptr);  // a foreign pointer
    // In a bound region but not a live block there, or the push raced the
    // owner's exit and the region is still on its way back: retry the
    // push once, else report.
    if (heap->UsableSize(ptr) != 0) {
      const PushOutcome again = PushRemote(ptr);
      if (again == kQueued) return true;
      if (again == kQueuedTwice) {
        shared.ReportMisuse(MempError::kDoubleFree, ptr);
        return false;
      }
    }
    shared.ReportMisuse(MempError::kInvalidFree, ptr);
    return false;
  }

  // Moves every region of `thread_heap` back into `shared`, applying queued
  // frees first. REQUIRES: the shared lock (inside WithRegions), on the thread
  // heap's thread.
  void ReturnRegions(RegionSet& shared, ThreadHeap* thread_heap) {
    ApplyRemoteFrees(thread_heap, &shared);
    thread_heap->FlushCache();
    for (const RegionStats& r : thread_heap->regions.ProbeRegions()) {
      RegionSet::DetachedRegion region;
      if (!thread_heap->regions.Detach(r.begin, &region).ok()) continue;
      thread_heap->PublishUsage();  // the thread heap's side first: never
                                    // counted twice
      // Regions of one front-end are disjoint, so this cannot fail.
      // The region's entry changes owner in place (the shared set's).
      Counted(shared, [&] { return shared.Attach(region); }).IgnoreError();
    }
    thread_heap->Publish();
  }

  void OnThreadExit(ThreadState* state) override {
    ThreadHeap* const thread_heap = static_cast<ThreadHeap*>(state);
    if (thread_heap->generation !=
        clear_generation_.load(std::memory_order_relaxed)) {
      // Its regions were forgotten by Clear: so are its queued blocks.
      shared_.WithRegions([&](RegionSet& shared) {
        shared.ForgetAccount(&thread_heap->fallback_account);
        thread_heap->queue->head.store(kClosed, std::memory_order_release);
        NoWaitLock hold(&bindings_mu_);
        queues_.Release(thread_heap->queue);
        return 0;
      });
      return;
    }
    shared_.WithRegions([&](RegionSet& shared) {
      ReturnRegions(shared, thread_heap);
      // Close the queue: a push racing this exit either landed before the
      // exchange (applied here; its block is now in the shared regions) or
      // finds it closed and takes the shared lock, after this.
      ApplyList(thread_heap,
                thread_heap->queue->head.exchange(kClosed,
                                                  std::memory_order_acq_rel) &
                    ~kHeadFlags,
                &shared);
      // Its fallback blocks stay live in the shared regions, charged to the
      // front-end's budget as before; they become unattributed (its budget
      // goes with it, so nothing is credited to it later, nor twice).
      shared.ForgetAccount(&thread_heap->fallback_account);
      // Its peak and its counts of failures and misuse outlive it: once
      // the thread heap is gone, retired_failed_, retired_invalid_ and
      // retired_limit_refusals_ are the one place these figures live (each was
      // counted once, in the thread heap, where it happened; this moves it, it
      // corrects nothing).
      const ThreadHeapStats last = thread_heap->Published();
      NoWaitLock hold(&bindings_mu_);
      retired_failed_ += last.stats.failed_allocations;
      retired_invalid_ += last.stats.invalid_frees;
      retired_limit_refusals_ += last.stats.limit_refusals;
      thread_heaps_.erase(
          std::remove(thread_heaps_.begin(), thread_heaps_.end(), thread_heap),
          thread_heaps_.end());
      queues_.Release(thread_heap->queue);
      return 0;
    });
  }
  // A retiring region emptied by the queued frees that the exit applied has
  // its handler run now, the registry's lock released.
  void AfterThreadExit() override { shared_.RunRetiredHandlersIfDue(); }

  // Asks the user's out-of-memory handler. REQUIRES: outside every owner
  // operation of the calling thread (a handler may drain every thread heap).
  bool AskOutOfMemoryHandler(size_t bytes, size_t alignment) {
    FMEMP_DCHECK(ThreadHeapOfThisThread() == nullptr ||
                 ThreadHeapOfThisThread()->in_scope.load(
                     std::memory_order_relaxed) == 0);
    OutOfMemoryHandler handler;
    void* context;
    {
      NoWaitLock hold(&handlers_mu_);
      handler = oom_handler_;
      context = oom_context_;
    }
    const bool well_formed = bytes <= tlsf::kMaxRequest &&
                             tlsf::IsPowerOfTwo(alignment) &&
                             alignment <= tlsf::Heap::kMaxAlignment;
    return handler != nullptr && well_formed &&
           handler(context, bytes, alignment);
  }

  // Every RegionSet of this front-end reports misuse and debug findings
  // here; they go to the handler in force (or to stderr, as RegionSet's
  // default does).
  static void ForwardReport(void* context, const MempReport& report) {
    auto* self = static_cast<ThreadHeapMemp*>(context);
    MempErrorHandler error_handler;
    MempReportHandler report_handler;
    void* handler_context;
    {
      NoWaitLock hold(&self->handlers_mu_);
      error_handler = self->error_handler_;
      report_handler = self->report_handler_;
      handler_context = self->error_context_;
    }
    if (report_handler != nullptr) {
      report_handler(handler_context, report);
    } else if (error_handler != nullptr) {
      error_handler(handler_context, report.error, report.ptr);
    } else {
      WriteMempReportToStderr(report);
    }
  }

  // The one region map (see the top): every region of this front-end,
  // shared (owner nullptr) or bound (owner: its thread heap's RemoteQueue), for
  // lock-free reads. Written only under the shared lock (inside
  // shared_.WithRegions), by the shared set and by the thread heaps' sets.
  // Declared before shared_ and the thread heaps, which keep their entries in
  // it.
  RegionTable table_;
  Memp<LockPolicy> shared_;
  // Bumped by Clear (both) and ResetPeak (epoch_ only); thread heaps catch up
  // on their next call.
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> clear_generation_{0};
  // Lock order: the shared lock, then bindings_mu_.
  mutable absl::Mutex bindings_mu_;
  // The thread heaps' queues (see the top): type-stable records from the
  // metadata arena.
  thread_heap_internal::StableRecords<RemoteQueue> queues_
      ABSL_GUARDED_BY(bindings_mu_);
  // A queued or parked block's marker: address ^ key (one key for both, so
  // that a block in either is refused wherever it is freed). Replaced by
  // Clear (which must not race other calls): markers left in forgotten
  // memory never match again.
  std::atomic<uintptr_t> marker_key_;
  // Bumped by ResetPeak: each thread heap resets its own peak on its next call.
  std::atomic<uint64_t> peak_epoch_{0};
  // Set once a tagged call was made: thread heaps park no more blocks (a parked
  // block would keep its tag while free).
  std::atomic<bool> tagging_used_{false};
  thread_heap_internal::UsageTotals totals_;
  // Every thread heap that has been bound since Clear and whose thread lives.
  std::vector<ThreadHeap*, ArenaAllocator<ThreadHeap*>> thread_heaps_
      ABSL_GUARDED_BY(bindings_mu_);
  // Failed allocations and misuse reports of thread heaps whose threads exited:
  // where those counts live once their thread heap is gone (OnThreadExit moves
  // them here; Probe adds them).
  uint64_t retired_failed_ ABSL_GUARDED_BY(bindings_mu_) = 0;
  uint64_t retired_invalid_ ABSL_GUARDED_BY(bindings_mu_) = 0;
  uint64_t retired_limit_refusals_ ABSL_GUARDED_BY(bindings_mu_) = 0;
  absl::Mutex handlers_mu_;
  OutOfMemoryHandler oom_handler_ ABSL_GUARDED_BY(handlers_mu_) = nullptr;
  void* oom_context_ ABSL_GUARDED_BY(handlers_mu_) = nullptr;
  MempErrorHandler error_handler_ ABSL_GUARDED_BY(handlers_mu_) = nullptr;
  MempReportHandler report_handler_ ABSL_GUARDED_BY(handlers_mu_) = nullptr;
  void* error_context_ ABSL_GUARDED_BY(handlers_mu_) = nullptr;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_THREAD_HEAP_H_
