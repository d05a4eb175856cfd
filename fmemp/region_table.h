// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/region_table.h
//
// RegionTable answers "which region holds this address, which heap serves
// it, and who owns it now?" without a lock, while regions are added,
// removed and handed between owners under the front-end's lock. It is the
// front-end's one map from an address to its region: the per-thread caches
// (fmemp/thread_cache.h) use it on their lock-free free path (a pointer that
// lies in no region is never dereferenced there), and ThreadHeapMemp
// (fmemp/thread_heap.h) keeps the shared regions and every thread's heap in
// one table, so that a free from any thread finds the block's owner with one
// lookup.
//
// Guarantees
// * Find takes no lock and writes no shared memory, so it never blocks a
//   writer; it retries while a writer is mid-update (a sequence lock), so
//   it is not wait-free: a writer stopped mid-update stalls it. It never
//   reads freed memory: arrays replaced by a larger one are kept until the
//   table is destroyed (geometric growth bounds them to twice the largest
//   array).
// * Writers (Insert, Erase, SetOwner, Clear) must be serialised by the
//   caller (the front-end's lock). O(regions) each: they are not on the hot
//   path. SetOwner changes one entry in place: a reader sees the old owner
//   or the new one, never a missing entry.
// * Entries are sorted by address and never overlap (their whole regions,
//   [base, end)), each with base <= begin < end: asserted after every
//   write in debug builds (FMEMP_DCHECK, fmemp/debug_assert.h); callers
//   check for overlap first (Overlapping).
// * Find is O(log regions). All shared words are atomics, so the table is
//   clean under ThreadSanitizer.
//
// The per-thread caches look up nearly every free; Find with a Hint makes
// the common case (the block lies in the region of the thread's previous
// lookup and no region changed since) a comparison of the sequence number
// and of the address, without a search.
//
// What Find returns may be stale by the time the caller uses it: a region
// can be removed right after. Callers use it only for a pointer to a block
// they own (whose region cannot be removed while the block lives) and fall
// back to the locked path for everything else.

#ifndef FMEMP_FMEMP_REGION_TABLE_H_
#define FMEMP_FMEMP_REGION_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fmemp/metadata_arena.h"

namespace fmemp {

class RegionTable {
 public:
  // What the table stores per region. `heap` and `owner` are opaque to the
  // table.
  struct Entry {
    uintptr_t begin = 0;         // lowest address of a payload in it
    uintptr_t end = 0;           // one past the region's last byte
    const void* heap = nullptr;  // the region's tlsf::Heap
    // Who serves the region now, as its user defines it (ThreadHeapMemp:
    // nullptr for its shared regions, the thread heap's RemoteQueue for a
    // region bound to a thread).
    const void* owner = nullptr;
    // The region's first byte, as given to AddRegion (<= begin; its first
    // bytes hold the heap's pool header, no payload). 0: same as begin.
    uintptr_t base = 0;
  };

  RegionTable();
  RegionTable(const RegionTable&) = delete;
  RegionTable& operator=(const RegionTable&) = delete;
  ~RegionTable();

  // Adds `entry`. REQUIRES: serialised with other writers; `entry` overlaps
  // no entry of the table (asserted in debug builds).
  void Insert(const Entry& entry);
  // Removes the entry that begins at or covers `begin`; no-op if none.
  void Erase(uintptr_t begin);
  // The owner a retiring region's entry names (RegionSet::Retire): no
  // cache's owner, so hints and owned lookups miss it, and its blocks are
  // neither parked nor popped as the cache's own. Not a valid address.
  static const void* RetiringOwner() noexcept {
    return reinterpret_cast<const void*>(uintptr_t{1});
  }
  // Sets the owner of the entry whose payload range holds `begin`, in place
  // (one write of the sequence lock; readers never miss the entry). False,
  // nothing changed, if there is none.
  bool SetOwner(uintptr_t begin, const void* owner);
  void Clear();

  // Copies the entry with begin <= address < end to *out and returns true,
  // or returns false. Safe from any thread at any time.
  bool Find(uintptr_t address, Entry* out) const noexcept;
  // As Find, for the whole region: the entry with base <= address < end
  // (its pool header included). For management calls given a region's
  // first byte. Safe from any thread at any time.
  bool FindWhole(uintptr_t address, Entry* out) const noexcept;
  // An entry whose whole region meets [base, end), copied to *out (may be
  // nullptr); false if none. REQUIRES: serialised with writers. O(log
  // regions).
  bool Overlapping(uintptr_t base, uintptr_t end, Entry* out) const noexcept;

  // One remembered answer of Find, with the table's version it is valid
  // for. Owned by one thread (a front-end keeps one per thread); starts
  // empty.
  struct Hint {
    Entry entry;
    uintptr_t size = 0;     // entry.end - entry.begin
    uint64_t sequence = 1;  // odd: matches no stable version
  };
  // As Find, but answers from *hint without a search when the table has
  // not changed since *hint was filled and `address` lies in its entry;
  // otherwise searches and remembers what it finds in *hint. Returns the
  // entry (inside *hint) or nullptr. The answer is always one that Find
  // could have given at the time of the call: a hint is valid only while
  // the sequence number it was read under is current, and any Insert,
  // Erase or Clear changes that number. Safe from any thread at any time,
  // with a hint that no other thread uses.
  const Entry* Find(uintptr_t address, Hint* hint) const noexcept {
    if (const Entry* entry = FindInHint(address, *hint)) return entry;
    return FindAndRemember(address, hint, /*filter=*/false, nullptr);
  }
  // As Find(address, hint), counting only regions of `owner` (Entry::owner):
  // the entry that holds `address` if its owner is `owner`, else nullptr;
  // and it remembers only such an entry. So a hint filled only by this
  // call, always with the same `owner`, holds nothing but that owner's
  // regions, and FindInHint's answer from it is one of them (SetOwner
  // changes the table's version, as every write does). The per-thread
  // caches fill their hints only so: their inline paths then need no owner
  // check. Safe from any thread at any time, with a hint that no other
  // thread uses.
  const Entry* FindOwned(uintptr_t address, const void* owner,
                         Hint* hint) const noexcept {
    if (const Entry* entry = FindInHint(address, *hint)) {
      return entry->owner == owner ? entry : nullptr;
    }
    return FindAndRemember(address, hint, /*filter=*/true, owner);
  }
  // Find's answer from `hint` alone: its entry when the table has not
  // changed since `hint` was filled and `address` lies in the entry, else
  // nullptr (which says nothing: ask Find). Inline, no call.
  const Entry* FindInHint(uintptr_t address, const Hint& hint) const noexcept {
    if (hint.sequence == sequence_.load(std::memory_order_acquire) &&
        address - hint.entry.begin < hint.size) {
      return &hint.entry;
    }
    return nullptr;
  }

  size_t size() const noexcept {
    return count_.load(std::memory_order_acquire);
  }

 private:
  // One slot: an Entry's words, each atomic so readers racing a writer are
  // not a data race (the sequence number tells them to retry).
  struct Slot {
    std::atomic<uintptr_t> begin{0};
    std::atomic<uintptr_t> end{0};
    std::atomic<const void*> heap{nullptr};
    std::atomic<const void*> owner{nullptr};
    std::atomic<uintptr_t> base{0};
  };
  // The slots live in the metadata arena (fmemp/metadata_arena.h), as does
  // the Array: a table's growth never calls operator new.
  struct Array : ArenaAllocated {
    explicit Array(size_t n)
        : capacity(n),
          slots(static_cast<Slot*>(
              MetadataArena::AllocateOrDie(n * sizeof(Slot)))) {
      for (size_t i = 0; i < n; ++i) ::new (&slots[i]) Slot();
    }
    ~Array() {
      for (size_t i = 0; i < capacity; ++i) slots[i].~Slot();
      MetadataArena::Free(slots, capacity * sizeof(Slot));
    }
    Array(const Array&) = delete;
    Array& operator=(const Array&) = delete;
    const size_t capacity;
    Slot* const slots;
  };

  // Find's search: the answer as of the stable sequence number *sequence;
  // `whole`: FindWhole's range instead of the payload's.
  bool Search(uintptr_t address, Entry* out, uint64_t* sequence,
              bool whole = false) const noexcept;
  // The index of the entry whose payload range holds `address`, or count_.
  // REQUIRES: serialised with writers.
  size_t IndexOf(uintptr_t address) const noexcept;
  // The hinted lookups' search: the entry holding `address` (when
  // `filter`, only if its owner is `owner`), remembered in *hint.
  const Entry* FindAndRemember(uintptr_t address, Hint* hint, bool filter,
                               const void* owner) const noexcept;

  void BeginWrite();
  void EndWrite();
  // Debug builds: asserts that the entries are sorted and disjoint, each
  // with base <= begin < end. O(regions). REQUIRES: serialised with
  // writers.
  void DebugCheckInvariants() const noexcept;
  friend class RegionTableTestPeer;  // fmemp/debug_assert_test.cc
  static void Store(Slot& slot, const Entry& entry);
  static Entry Load(const Slot& slot, std::memory_order order);

  // Even: stable; odd: a writer is between BeginWrite and EndWrite.
  std::atomic<uint64_t> sequence_{0};
  std::atomic<Array*> array_;
  std::atomic<size_t> count_{0};
  // Every array ever used; freed with the table.
  std::vector<std::unique_ptr<Array>, ArenaAllocator<std::unique_ptr<Array>>>
      arrays_;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_REGION_TABLE_H_
