// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/size_class_cache.h
//
// fmemp::SizeClassCache: one thread's cache of small free blocks, by span
// in 16-byte classes, in front of "whatever serves it" (a Source): the
// shared regions behind their lock for CachingMemp (fmemp/thread_cache.h),
// the thread heap's own regions for ThreadHeapMemp (fmemp/thread_heap.h). It is
// the one implementation of the per-class lists, the parked-block marker,
// the validation of popped links, the byte budget, refills and trims. It
// knows nothing of threads: the front-end decides who may call it.
//
//   SizeClassCache cache(options);
//   void* p = cache.PopFast(span, source.table(), source.marker_key());
//   if (p == nullptr) p = cache.Take(source, span);   // refills from source
//   ...
//   if (!cache.TryPush(block, span, source.marker_key())) {
//     cache.Put(source, block, span, /*park=*/true);  // trims to source
//   }
//
// The Source contract (a template parameter of the members that need it):
//   const RegionTable& table() const;  // lock-free lookup of every region
//                                      // whose blocks it hands out
//   const void* owner() const;         // the Entry::owner of its regions
//                                      // in that table (a table may hold
//                                      // other owners' regions too)
//   uintptr_t marker_key() const;      // MarkerFor's key (NewMarkerKey)
//   size_t AllocateBatch(size_t usable, size_t count, void** out);
//                                      // up to count live blocks of usable
//                                      // bytes (RegionSet::AllocateBatch)
//   void ReturnChain(ParkedBlock* chain);
//                                      // frees every block of the chain,
//                                      // taking each with TakeFromChain
//   void ReportDamagedLink(const void* link);
//                                      // a kUseAfterFreeWrite, counted
//   bool OfferBatch(size_t span, const Batch& batch);
//   bool TakeBatch(size_t span, Batch* out);
//                                      // optional, both or neither: a
//                                      // depot of parked batches shared by
//                                      // caches. OfferBatch keeps the
//                                      // batch (true) or refuses it; a
//                                      // refill first asks TakeBatch for a
//                                      // batch of its span.
// Each Source call may take the Source's lock; the cache calls AllocateBatch
// and ReturnChain at most once per refill or trim (the depot's calls once
// per batch).
//
// A cached block stays a live block of its TLSF heap: the cache links it
// through its own payload (ParkedBlock), so parking costs no bookkeeping.
//
// Guarantees
// * Complexity: PopFast and TryPush O(1), inline, no call. Take and Put O(1)
//   amortised; a refill is one AllocateBatch, a trim one ReturnChain of
//   O(parked blocks). Recount and Forget O(parked blocks) / O(classes).
// * Thread safety: not thread-safe. Every member but bytes(), blocks() and
//   the static ones is for the cache's owner only, or for a thread that has
//   stopped the owner (a drainer: CachingMemp's asymmetric barrier). bytes()
//   and blocks() may be read from any thread (atomics, written by plain
//   load and store). The marker word, alone, is shared: any thread freeing
//   a block may claim it (ClaimMarker), so it is only accessed atomically.
// * Budget: the parked bytes (spans) never exceed max_bytes_per_thread
//   after a call returns; an over-full Put or refill trims to half first.
// * Failure: Take returns nullptr when the source has no room (nothing
//   changes but a trim); TryPush and PopFast return false / nullptr having
//   changed nothing; Put returns kDoubleFree for a block already parked
//   (here, in another cache of the same key, or queued under the same key)
//   and changes nothing. A damaged link (a write to a parked block after its
//   free) is never followed: every block is validated before it is handed
//   out or walked (inside a region of the source's table, aligned, carrying
//   its marker), and a bad link drops the rest of that class's list (those
//   blocks stay allocated, never reused), reported once through
//   Source::ReportDamagedLink.
//
// The parked-block marker (authoritative)
// * A parked block's second payload word holds MarkerFor(block, key): its
//   address XOR a per-front-end key (NewMarkerKey; low bit set, so never 0
//   nor an aligned pointer). It is set with a compare-exchange when the
//   block enters a cache (ClaimMarker) and cleared when it leaves: handed
//   out by a pop, or returned to the source. A free that finds it set is
//   refused as a double free, wherever it is freed: of two racing claims
//   exactly one wins. A front-end that queues blocks to another thread
//   (ThreadHeapMemp's remote frees) claims the same word with the same key, so
//   a queued block is refused too, and can be parked as it is (ParkClaimed).
// * A user's write spoofs it only by writing that block's address XOR the
//   63-bit key (2^-63 for unrelated data); then the free of that one live
//   block is refused and the block leaks, reported; nothing is parked twice.

#ifndef FMEMP_FMEMP_SIZE_CLASS_CACHE_H_
#define FMEMP_FMEMP_SIZE_CLASS_CACHE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "fmemp/debug_assert.h"
#include "fmemp/region_table.h"
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

// A parked block: its first payload words.
struct ParkedBlock {
  ParkedBlock* next;  // read and written by the owning cache only
  uintptr_t marker;   // MarkerFor(block, key) while parked; atomic access only
};

// A key for MarkerFor: hard to guess, different per front-end (and per
// call: the clock is mixed in), low bit set. O(1), thread-safe.
uintptr_t NewMarkerKey(const void* self, uint64_t owner_id);

namespace size_class_cache_internal {
template <typename Source, typename = void>
struct HasDepot : std::false_type {};
template <typename Source>
struct HasDepot<Source, std::void_t<decltype(&Source::OfferBatch)>>
    : std::true_type {};
}  // namespace size_class_cache_internal

class SizeClassCache {
 public:
  // Requests up to 1 KiB (span 1040) are cached: a workload of sizes up to
  // 1 KiB then never leaves the cache on a hit (with spans up to 1024, its
  // requests of 1017..1024 bytes did, ~3% of calls at ~450 instructions).
  static constexpr size_t kMaxCachedSpan = tlsf::SpanForRequest(1024);
  // The largest request (usable bytes) a cached block serves.
  static constexpr size_t kMaxCachedRequest = tlsf::UsableBytes(kMaxCachedSpan);
  static constexpr size_t kClassCount = kMaxCachedSpan / tlsf::kAlignment + 1;
  static constexpr size_t ClassOf(size_t span) {
    return span / tlsf::kAlignment;
  }
  // Classes that hold blocks: spans kMinFreeSpan..kMaxCachedSpan.
  static constexpr size_t kUsedClassCount =
      (kMaxCachedSpan - tlsf::kMinFreeSpan) / tlsf::kAlignment + 1;
  static constexpr size_t kMaxBatch = 64;
  static constexpr size_t kFirstRefillBlocks = 4;

  enum PutResult { kParked, kNotParked, kDoubleFree };

  // Parked blocks of one span, linked head to tail through `next` (the
  // tail's link is not part of the batch): what a trim hands to a Source's
  // depot and a refill takes from it.
  struct Batch {
    ParkedBlock* head = nullptr;
    ParkedBlock* tail = nullptr;
    size_t count = 0;
  };
  // Whether Source has a depot (the optional Source members OfferBatch and
  // TakeBatch, see the contract above).
  template <typename Source>
  static constexpr bool kHasDepot =
      size_class_cache_internal::HasDepot<Source>::value;

  // Blocks of `span` one refill asks for at most (and one depot batch
  // holds): refill_bytes worth, at least one, at most kMaxBatch.
  size_t BatchBlocks(size_t span) const {
    return std::min(kMaxBatch, std::max<size_t>(1, refill_bytes_ / span));
  }

  explicit SizeClassCache(const CacheOptions& options = {})
      : max_bytes_(options.max_bytes_per_thread),
        refill_bytes_(
            std::min(options.refill_bytes,
                     options.max_bytes_per_thread / (2 * kUsedClassCount))) {}
  SizeClassCache(const SizeClassCache&) = delete;
  SizeClassCache& operator=(const SizeClassCache&) = delete;

  // --- The marker (any thread) ---

  static uintptr_t MarkerFor(const void* block, uintptr_t key) {
    return reinterpret_cast<uintptr_t>(block) ^ key;
  }
  static uintptr_t LoadMarker(const ParkedBlock* block) {
    return __atomic_load_n(&block->marker, __ATOMIC_ACQUIRE);
  }
  static void StoreMarker(ParkedBlock* block, uintptr_t value) {
    __atomic_store_n(&block->marker, value, __ATOMIC_RELEASE);
  }
  // Sets block's marker to `marker` unless it holds it already. True if this
  // call set it: of any number of threads claiming one block at once,
  // exactly one gets true. Lock-free; one compare-exchange when uncontended.
  ABSL_ATTRIBUTE_ALWAYS_INLINE static bool ClaimMarker(ParkedBlock* block,
                                                       uintptr_t marker) {
    uintptr_t seen = __atomic_load_n(&block->marker, __ATOMIC_RELAXED);
    do {
      if (seen == marker) return false;
    } while (!__atomic_compare_exchange_n(&block->marker, &seen, marker,
                                          /*weak=*/true, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    return true;
  }
  // Whether a block of `usable` bytes (a heap's UsableSize answer) is live
  // and small enough to park. 0 wraps: one comparison for both limits.
  static bool IsCacheableUsable(size_t usable) {
    return usable - 1 < kMaxCachedRequest;
  }
  // The span of `ptr` if it may be parked: a live block (for its heap, with
  // its successor's header intact), in a region of `table`, of a cacheable
  // span; else 0. Safe for any pointer: nothing outside a region is read.
  // Only regions of `owner` (RegionTable::Entry::owner) count, and only
  // they are remembered in *hint (RegionTable::FindOwned).
  static size_t CacheableSpan(const RegionTable& table, const void* owner,
                              const void* ptr,
                              RegionTable::Hint* hint) noexcept {
    const RegionTable::Entry* region =
        table.FindOwned(reinterpret_cast<uintptr_t>(ptr), owner, hint);
    if (region == nullptr) return 0;
    const size_t usable =
        static_cast<const tlsf::Heap*>(region->heap)->UsableSizeIfFreeable(ptr);
    return IsCacheableUsable(usable) ? usable + tlsf::kBlockOverhead : 0;
  }
  // Whether ptr is a block parked (under `key`) in some cache: a live block
  // of a region of `table`, of a cacheable span, whose marker says so. Safe
  // for any pointer. Lock-free.
  static bool IsParked(const RegionTable& table, uintptr_t key,
                       const void* ptr) noexcept {
    RegionTable::Entry region;
    if (!table.Find(reinterpret_cast<uintptr_t>(ptr), &region)) return false;
    const size_t usable =
        static_cast<const tlsf::Heap*>(region.heap)->UsableSize(ptr);
    if (!IsCacheableUsable(usable)) return false;
    const auto* block = static_cast<const ParkedBlock*>(ptr);
    return LoadMarker(block) == MarkerFor(block, key);
  }
  // For Source::ReturnChain: the first block of *chain, unparked (marker
  // cleared), *chain advanced to the next. REQUIRES: *chain != nullptr.
  static void* TakeFromChain(ParkedBlock** chain) {
    ParkedBlock* const block = *chain;
    *chain = block->next;
    StoreMarker(block, 0);
    return block;
  }

  // Whether `block` may be trusted as a block parked under the source's key:
  // whole inside a region of its table, aligned, carrying its marker. Safe
  // for any value: nothing outside a region is read.
  template <typename Source>
  static bool IsValidLink(const Source& source, const ParkedBlock* block,
                          RegionTable::Hint* hint) {
    return CheckLink(source, block, hint) == LinkState::kValid;
  }
  // IsValidLink's answer, telling a sound parked block of a region that is
  // retiring (its entry names RegionTable::RetiringOwner(): parked before
  // the retirement, to be given back, never handed out) from a bad link.
  enum class LinkState { kValid, kRetiring, kBad };
  template <typename Source>
  static LinkState CheckLink(const Source& source, const ParkedBlock* block,
                             RegionTable::Hint* hint) {
    const uintptr_t address = reinterpret_cast<uintptr_t>(block);
    if (address % tlsf::kAlignment != 0) return LinkState::kBad;
    LinkState state = LinkState::kValid;
    RegionTable::Entry found;
    const RegionTable::Entry* region =
        source.table().FindOwned(address, source.owner(), hint);
    if (region == nullptr) {
      if (!source.table().Find(address, &found) ||
          found.owner != RegionTable::RetiringOwner()) {
        return LinkState::kBad;
      }
      region = &found;
      state = LinkState::kRetiring;
    }
    if (region->end - address < sizeof(ParkedBlock) ||
        LoadMarker(block) != MarkerFor(block, source.marker_key())) {
      return LinkState::kBad;
    }
    return state;
  }

  // --- Figures (any thread) ---

  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t blocks() const { return blocks_.load(std::memory_order_relaxed); }
  size_t max_bytes() const { return max_bytes_; }

  // --- Owner operations ---

  // The owner's last region lookup (RegionTable::Hint): its own, never a
  // drainer's. Filled only through RegionTable::FindOwned with the
  // source's owner (CacheableSpan, IsValidLink; a front-end passes its
  // Source's owner() to CacheableSpan), so it holds only regions of the
  // source: an answer of FindInHint from it is the source's region, and
  // PopFast and the front-ends' inline frees need no owner check. (A
  // ThreadHeapMemp's table also holds the shared regions and other pools',
  // whose parked blocks carry markers of the same key: a damaged link to
  // one of those must not be popped here.)
  RegionTable::Hint region_hint;

  // The hit: the head of the list of `span` when it is plainly sound
  // (aligned, whole inside the region of the last lookup while no region
  // changed, which is the source's own (see region_hint), carrying its
  // marker), unparked; else nullptr, having changed
  // nothing (Take then decides: an empty list, a hint that misses, a
  // damaged link). No call. Payloads are kAlignment-aligned, so an aligned
  // block whose last word lies in the hint's region lies in it whole.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* PopFast(size_t span,
                                             const RegionTable& table,
                                             uintptr_t key) {
    ParkedBlock** head = &lists_[ClassOf(span)];
    ParkedBlock* const block = *head;
    const uintptr_t address = reinterpret_cast<uintptr_t>(block);
    if (block == nullptr || address % tlsf::kAlignment != 0 ||
        table.FindInHint(address + sizeof(ParkedBlock) - 1, region_hint) ==
            nullptr ||
        LoadMarker(block) != MarkerFor(block, key)) {
      return nullptr;
    }
    *head = block->next;
    StoreMarker(block, 0);
    Count(-span, -1);
    return block;
  }
  // A block of `span`: from its list (validated), else after a refill from
  // the source; nullptr when the source has no room.
  template <typename Source>
  void* Take(Source& source, size_t span) {
    if (void* p = Pop(source, span)) return p;
    return Refill(source, span) ? Pop(source, span) : nullptr;
  }

  // The inline free: parks `block` (a live block of `span`, checked by the
  // caller) and returns true when it fits the budget and this call's claim
  // of its marker wins; otherwise false, having changed nothing (Put then
  // decides, and the caller reports).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool TryPush(ParkedBlock* block, size_t span,
                                            uintptr_t key) {
    const size_t bytes_after = bytes() + span;
    if (bytes_after > max_bytes_ ||
        !ClaimMarker(block, MarkerFor(block, key))) {
      return false;
    }
    Link(block, span, bytes_after);
    return true;
  }
  // Parks the block (trimming first when the budget is full) unless it is
  // parked already, here or anywhere with the same key: kDoubleFree (the
  // caller reports). kNotParked, with the marker left clear, when `park` is
  // false or the span exceeds the whole budget: the caller frees it.
  template <typename Source>
  PutResult Put(Source& source, void* ptr, size_t span, bool park) {
    auto* block = static_cast<ParkedBlock*>(ptr);
    if (!ClaimMarker(block, MarkerFor(block, source.marker_key()))) {
      return kDoubleFree;
    }
    if (!park || span > max_bytes_) {
      StoreMarker(block, 0);
      return kNotParked;
    }
    ParkClaimed(source, block, span);
    return kParked;
  }
  // Parks a block whose marker the caller has already claimed with the
  // source's key (a block queued by another thread), trimming first when the
  // budget is full. REQUIRES: span <= max_bytes().
  template <typename Source>
  void ParkClaimed(Source& source, ParkedBlock* block, size_t span) {
    if (bytes() + span > max_bytes_) {
      bool handed = false;
      if constexpr (kHasDepot<Source>) handed = HandBatchOn(source, span);
      if (!handed) ReleaseDownTo(source, max_bytes_ / 2);
    }
    Link(block, span, bytes() + span);
    DebugCheckCounts();
  }

  // Returns blocks to the source, in one ReturnChain, until the cache holds
  // at most `target` bytes. Short of a flush (target 0), a trim takes from
  // every class and empties none while halving still frees bytes: each pass
  // takes the older half (the tail) of every list, round-robin. Emptying
  // whole classes instead made them refill at once and go over budget
  // again. Every link is validated first (Recount). O(parked blocks).
  template <typename Source>
  ABSL_ATTRIBUTE_NOINLINE void ReleaseDownTo(Source& source, size_t target) {
    if (bytes() <= target) return;
    // A drainer may run this: its own hint.
    RegionTable::Hint hint;
    Recount(source, &hint);
    const size_t bytes_before = bytes();
    if (bytes_before <= target) return;
    ParkedBlock* chain = nullptr;  // the blocks to return, linked
    size_t bytes_left = bytes_before;
    bool whole_lists = target == 0;
    while (bytes_left > target) {
      bool took = false;
      const size_t first_class = next_victim_;
      for (size_t step = 0; step < kClassCount && bytes_left > target; ++step) {
        const size_t cls = (first_class + step) % kClassCount;
        const size_t span = cls * tlsf::kAlignment;
        // Cut the list after its first (newer) half, or at its head.
        ParkedBlock** cut = &lists_[cls];
        if (!whole_lists) {
          size_t length = 0;
          for (const ParkedBlock* b = *cut; b != nullptr; b = b->next) ++length;
          for (size_t keep = (length + 1) / 2; keep > 0; --keep) {
            cut = &(*cut)->next;
          }
        }
        // The cut blocks go in batches of at most BatchBlocks(span) (one
        // batch per class for a source without a depot): each is offered
        // to the depot, and what it refuses joins the chain.
        const size_t batch_most = kHasDepot<Source> && *cut != nullptr
                                      ? BatchBlocks(span)
                                      : ~size_t{0};
        Batch batch;
        for (ParkedBlock* b = *cut; b != nullptr;) {
          ParkedBlock* next = b->next;
          bytes_left -= span;
          b->next = batch.head;
          batch.head = b;
          if (batch.tail == nullptr) batch.tail = b;
          ++batch.count;
          b = next;
          took = true;
          if (batch.count == batch_most || b == nullptr) {
            HandBack(source, span, &batch, &chain);
          }
        }
        *cut = nullptr;
        next_victim_ = cls + 1;
      }
      // Only lists of one block are left: take them whole.
      if (!took) whole_lists = true;
    }
    if (chain != nullptr) source.ReturnChain(chain);
    FMEMP_DCHECK(bytes() <= target);
    DebugCheckCounts();
  }

  // Walks every list, cutting each at its first invalid link (the rest is
  // dropped: those blocks stay allocated, never reused; each cut is
  // reported once), and sets the counts to what the lists hold.
  // O(parked blocks).
  template <typename Source>
  ABSL_ATTRIBUTE_NOINLINE void Recount(Source& source,
                                       RegionTable::Hint* hint) {
    size_t total_bytes = 0, total_blocks = 0;
    ParkedBlock* retiring = nullptr;  // blocks of retiring regions, to return
    for (size_t cls = 0; cls < kClassCount; ++cls) {
      const size_t span = cls * tlsf::kAlignment;
      for (ParkedBlock** link = &lists_[cls]; *link != nullptr;) {
        const LinkState state = CheckLink(source, *link, hint);
        if (state == LinkState::kBad) {
          source.ReportDamagedLink(*link);
          *link = nullptr;
          break;
        }
        if (state == LinkState::kRetiring) {
          ParkedBlock* const block = *link;
          *link = block->next;
          block->next = retiring;
          retiring = block;
          continue;
        }
        total_bytes += span;
        ++total_blocks;
        link = &(*link)->next;
      }
    }
    bytes_.store(total_bytes, std::memory_order_relaxed);
    blocks_.store(total_blocks, std::memory_order_relaxed);
    if (retiring != nullptr) source.ReturnChain(retiring);
    DebugCheckCounts();
  }

  // Empties every list without touching a block (their memory may be gone:
  // the front-end forgets its regions). The caller makes their markers
  // stale (a new key). O(classes).
  void Forget() {
    for (ParkedBlock*& head : lists_) head = nullptr;
    bytes_.store(0, std::memory_order_relaxed);
    blocks_.store(0, std::memory_order_relaxed);
  }

 private:
  // A block of `span` from its list, or nullptr if it is empty. Validated
  // before it is handed out: a damaged list is dropped (reported, counts
  // redone) and nullptr returned.
  template <typename Source>
  void* Pop(Source& source, size_t span) {
    ParkedBlock** head = &lists_[ClassOf(span)];
    for (;;) {
      ParkedBlock* const block = *head;
      if (block == nullptr) return nullptr;
      const LinkState state = CheckLink(source, block, &region_hint);
      if (ABSL_PREDICT_FALSE(state == LinkState::kBad)) {
        return DropDamagedList(source, head);
      }
      *head = block->next;
      Count(-span, -1);
      if (ABSL_PREDICT_TRUE(state == LinkState::kValid)) {
        StoreMarker(block, 0);
        return block;
      }
      // A retiring region's block: given back, never handed out.
      block->next = nullptr;
      source.ReturnChain(block);
    }
  }
  template <typename Source>
  ABSL_ATTRIBUTE_NOINLINE void* DropDamagedList(Source& source,
                                                ParkedBlock** head) {
    source.ReportDamagedLink(*head);
    *head = nullptr;
    Recount(source, &region_hint);
    return nullptr;
  }

  // Slow start: a class's first refill takes a few blocks, each next one
  // twice as many, up to refill_bytes (and kMaxBatch). Keeps the budget:
  // trims first if the batch would not fit. True if a block of `span` was
  // parked.
  template <typename Source>
  ABSL_ATTRIBUTE_NOINLINE bool Refill(Source& source, size_t span) {
    if constexpr (kHasDepot<Source>) {
      if (RefillFromDepot(source, span)) {
        DebugCheckCounts();
        return true;
      }
    }
    const size_t most = BatchBlocks(span);
    uint8_t& next_count = refill_count_[ClassOf(span)];
    size_t want = std::min<size_t>(
        most, next_count == 0 ? kFirstRefillBlocks : next_count);
    next_count = static_cast<uint8_t>(std::min(most, 2 * want));
    if (bytes() + want * span > max_bytes_) {
      // Trim to half of what leaves room, as Put trims to half the budget,
      // so that the next refills fit without another trim.
      ReleaseDownTo(source, max_bytes_ > want * span
                                ? (max_bytes_ - want * span) / 2
                                : 0);
      want = std::max<size_t>(1, std::min(want, max_bytes_ / span));
    }
    void* got[kMaxBatch];
    const size_t n = source.AllocateBatch(tlsf::UsableBytes(span), want, got);
    const uintptr_t key = source.marker_key();
    bool refilled = false;
    ParkedBlock* unfit = nullptr;  // blocks that cannot be parked
    for (size_t i = 0; i < n; ++i) {
      auto* block = static_cast<ParkedBlock*>(got[i]);
      // A block can be a little larger than asked (a tail too small to
      // split stays with it): filed under its own span, asked of its heap
      // without a lock, as on a free: the block is ours.
      const size_t block_span =
          CacheableSpan(source.table(), source.owner(), block, &region_hint);
      if (block_span == 0 || bytes() + block_span > max_bytes_) {
        block->next = unfit;
        unfit = block;
        continue;
      }
      // Fresh from the heap and ours alone: no other thread can claim it.
      StoreMarker(block, MarkerFor(block, key));
      Link(block, block_span, bytes() + block_span);
      refilled |= block_span == span;
    }
    if (unfit != nullptr) source.ReturnChain(unfit);
    DebugCheckCounts();
    return refilled;
  }

  // A refill from the source's depot: one batch of `span`, whose blocks
  // keep their markers (parked all along), spliced in whole. Its links are
  // validated as any list's, when popped or walked. Trims first, as Refill
  // does, when the batch would not fit. True if a batch came.
  template <typename Source>
  bool RefillFromDepot(Source& source, size_t span) {
    Batch batch;
    if (!source.TakeBatch(span, &batch)) return false;
    const size_t batch_bytes = batch.count * span;
    if (bytes() + batch_bytes > max_bytes_) {
      ReleaseDownTo(source, max_bytes_ > batch_bytes
                                ? (max_bytes_ - batch_bytes) / 2
                                : 0);
    }
    ParkedBlock** head = &lists_[ClassOf(span)];
    batch.tail->next = *head;
    *head = batch.head;
    Count(batch_bytes, batch.count);
    return true;
  }
  // A full cache's cheap way out, before a trim: the newest
  // BatchBlocks(span) blocks of the list of `span` (each validated) go to
  // the depot as one batch, or to the source (one ReturnChain) when the
  // depot is full. False, having changed nothing, if the list is shorter
  // or a link is bad (the trim's Recount then deals with it).
  // O(BatchBlocks(span)). With a stream of frees of one
  // class (another thread's blocks), the cache hands them on a batch at a
  // time, as fast as they come, instead of in half-budget bursts that the
  // depot cannot hold.
  template <typename Source>
  bool HandBatchOn(Source& source, size_t span) {
    const size_t most = BatchBlocks(span);
    ParkedBlock** head = &lists_[ClassOf(span)];
    Batch batch;
    batch.head = *head;
    for (ParkedBlock* b = batch.head; batch.count < most; b = b->next) {
      if (b == nullptr || !IsValidLink(source, b, &region_hint)) return false;
      batch.tail = b;
      ++batch.count;
    }
    // Read before the offer: from then on another thread may take the
    // batch and relink its tail.
    *head = batch.tail->next;
    // Published before the depot or the source sees the blocks.
    Count(-(most * span), -most);
    if (!source.OfferBatch(span, batch)) {
      batch.tail->next = nullptr;
      source.ReturnChain(batch.head);
    }
    return true;
  }
  // ReleaseDownTo's hand-back of one batch of `span`: published as gone
  // from this cache first (a reader of bytes() and the source's figures
  // never sees a block twice), then offered to the source's depot, or
  // prepended to *chain (for ReturnChain) when there is none or it refuses.
  // Leaves *batch empty.
  template <typename Source>
  void HandBack(Source& source, size_t span, Batch* batch,
                ParkedBlock** chain) {
    Count(-(batch->count * span), -batch->count);
    bool kept = false;
    if constexpr (kHasDepot<Source>) kept = source.OfferBatch(span, *batch);
    if (!kept) {
      batch->tail->next = *chain;
      *chain = batch->head;
    }
    *batch = Batch();
  }

  // Debug builds (fmemp/debug_assert.h), after every refill, trim and
  // slow-path park: the budget holds (bytes() <= max_bytes()), and the
  // counts agree (every parked block spans at least tlsf::kMinFreeSpan
  // bytes; no bytes without blocks). O(1); the lists are not walked (their
  // links are the user's to damage, and Recount's to validate).
  void DebugCheckCounts() const {
    FMEMP_DCHECK(bytes() <= max_bytes_);
    FMEMP_DCHECK(blocks() * tlsf::kMinFreeSpan <= bytes());
    FMEMP_DCHECK((blocks() == 0) == (bytes() == 0));
  }
  friend class SizeClassCacheTestPeer;  // fmemp/debug_assert_test.cc

  // Files `block`, whose marker is set, on the list of `span`; the cache
  // then holds `bytes_after` bytes (the callers have just computed it).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Link(ParkedBlock* block, size_t span,
                                         size_t bytes_after) {
    ParkedBlock** head = &lists_[ClassOf(span)];
    block->next = *head;
    *head = block;
    bytes_.store(bytes_after, std::memory_order_relaxed);
    blocks_.store(blocks() + 1, std::memory_order_relaxed);
  }
  // Adds the deltas (either may be a wrapped negative).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Count(size_t bytes_delta,
                                          size_t blocks_delta) {
    bytes_.store(bytes() + bytes_delta, std::memory_order_relaxed);
    blocks_.store(blocks() + blocks_delta, std::memory_order_relaxed);
  }

  const size_t max_bytes_;
  const size_t refill_bytes_;  // options.refill_bytes, clamped (see there)
  ParkedBlock* lists_[kClassCount] = {};
  size_t next_victim_ = 1;  // where a trim starts looking
  // Blocks the next refill of each class takes (0: not refilled yet).
  uint8_t refill_count_[kClassCount] = {};
  // Bytes (spans) and blocks parked: written by the owner with a plain
  // load and store, read from any thread.
  std::atomic<size_t> bytes_{0};
  std::atomic<size_t> blocks_{0};
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_SIZE_CLASS_CACHE_H_
