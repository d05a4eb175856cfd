// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/region_table.h"

#include <algorithm>

#include "fmemp/debug_assert.h"

namespace fmemp {

namespace {
constexpr size_t kInitialCapacity = 8;
}  // namespace

// The sequence lock follows the fence-free pattern: the writer's slot stores
// are releases, so none can become visible before the odd sequence number;
// the reader's slot loads are acquires, so its second read of the sequence
// cannot move before them.

RegionTable::RegionTable() {
  arrays_.push_back(std::make_unique<Array>(kInitialCapacity));
  array_.store(arrays_.back().get(), std::memory_order_release);
}

RegionTable::~RegionTable() = default;

void RegionTable::BeginWrite() {
  sequence_.store(sequence_.load(std::memory_order_relaxed) + 1,
                  std::memory_order_relaxed);
}

void RegionTable::EndWrite() {
  sequence_.store(sequence_.load(std::memory_order_relaxed) + 1,
                  std::memory_order_release);
}

void RegionTable::Store(Slot& slot, const Entry& entry) {
  slot.begin.store(entry.begin, std::memory_order_release);
  slot.end.store(entry.end, std::memory_order_release);
  slot.heap.store(entry.heap, std::memory_order_release);
  slot.owner.store(entry.owner, std::memory_order_release);
  slot.base.store(entry.base, std::memory_order_release);
}

RegionTable::Entry RegionTable::Load(const Slot& slot,
                                     std::memory_order order) {
  Entry entry;
  entry.begin = slot.begin.load(order);
  entry.end = slot.end.load(order);
  entry.heap = slot.heap.load(order);
  entry.owner = slot.owner.load(order);
  entry.base = slot.base.load(order);
  return entry;
}

void RegionTable::Insert(const Entry& inserted) {
  Entry entry = inserted;
  if (entry.base == 0) entry.base = entry.begin;
  FMEMP_DCHECK(entry.base <= entry.begin && entry.begin < entry.end);
  FMEMP_DCHECK(!Overlapping(entry.base, entry.end, nullptr));
  Array* array = array_.load(std::memory_order_relaxed);
  const size_t count = count_.load(std::memory_order_relaxed);
  // Entries are kept sorted by begin; collect them with the new one.
  std::vector<Entry, ArenaAllocator<Entry>> entries;
  entries.reserve(count + 1);
  for (size_t i = 0; i < count; ++i) {
    entries.push_back(Load(array->slots[i], std::memory_order_relaxed));
  }
  entries.insert(std::upper_bound(entries.begin(), entries.end(), entry,
                                  [](const Entry& a, const Entry& b) {
                                    return a.begin < b.begin;
                                  }),
                 entry);
  if (entries.size() > array->capacity) {
    // Readers may still be in the old array: it stays until destruction.
    arrays_.push_back(std::make_unique<Array>(array->capacity * 2));
    Array* bigger = arrays_.back().get();
    for (size_t i = 0; i < entries.size(); ++i)
      Store(bigger->slots[i], entries[i]);
    BeginWrite();
    count_.store(entries.size(), std::memory_order_release);
    array_.store(bigger, std::memory_order_release);
    EndWrite();
    DebugCheckInvariants();
    return;
  }
  BeginWrite();
  for (size_t i = 0; i < entries.size(); ++i)
    Store(array->slots[i], entries[i]);
  count_.store(entries.size(), std::memory_order_release);
  EndWrite();
  DebugCheckInvariants();
}

void RegionTable::DebugCheckInvariants() const noexcept {
  if constexpr (!kDebugChecks) return;
  const Array* array = array_.load(std::memory_order_relaxed);
  const size_t count = count_.load(std::memory_order_relaxed);
  FMEMP_DCHECK(count <= array->capacity);
  for (size_t i = 0; i < count; ++i) {
    const Entry entry = Load(array->slots[i], std::memory_order_relaxed);
    FMEMP_DCHECK(entry.base <= entry.begin && entry.begin < entry.end);
    if (i > 0) {
      // Sorted and disjoint: the previous region ends at or before this
      // one's first byte.
      FMEMP_DCHECK(array->slots[i - 1].end.load(std::memory_order_relaxed) <=
                   entry.base);
    }
  }
}

size_t RegionTable::IndexOf(uintptr_t address) const noexcept {
  const Array* array = array_.load(std::memory_order_relaxed);
  const size_t count = count_.load(std::memory_order_relaxed);
  // The last slot that begins at or below `address`.
  size_t low = 0, high = count;
  while (low < high) {
    const size_t mid = low + (high - low) / 2;
    if (array->slots[mid].begin.load(std::memory_order_relaxed) <= address) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  if (low == 0) return count;
  const Slot& s = array->slots[low - 1];
  return address < s.end.load(std::memory_order_relaxed) ? low - 1 : count;
}

void RegionTable::Erase(uintptr_t begin) {
  Array* array = array_.load(std::memory_order_relaxed);
  const size_t count = count_.load(std::memory_order_relaxed);
  const size_t at = IndexOf(begin);
  if (at == count) return;
  BeginWrite();
  for (size_t i = at; i + 1 < count; ++i) {
    Store(array->slots[i],
          Load(array->slots[i + 1], std::memory_order_relaxed));
  }
  count_.store(count - 1, std::memory_order_release);
  EndWrite();
  DebugCheckInvariants();
}

bool RegionTable::SetOwner(uintptr_t begin, const void* owner) {
  const size_t at = IndexOf(begin);
  if (at == count_.load(std::memory_order_relaxed)) return false;
  Slot& slot = array_.load(std::memory_order_relaxed)->slots[at];
  BeginWrite();
  slot.owner.store(owner, std::memory_order_release);
  EndWrite();
  DebugCheckInvariants();
  return true;
}

bool RegionTable::Overlapping(uintptr_t base, uintptr_t end,
                              Entry* out) const noexcept {
  const Array* array = array_.load(std::memory_order_relaxed);
  const size_t count = count_.load(std::memory_order_relaxed);
  // The first slot that ends after `base`; slots are disjoint and sorted,
  // so their ends are sorted too.
  size_t low = 0, high = count;
  while (low < high) {
    const size_t mid = low + (high - low) / 2;
    if (array->slots[mid].end.load(std::memory_order_relaxed) <= base) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  if (low == count) return false;
  const Slot& s = array->slots[low];
  if (s.base.load(std::memory_order_relaxed) >= end) return false;
  if (out != nullptr) *out = Load(s, std::memory_order_relaxed);
  return true;
}

void RegionTable::Clear() {
  BeginWrite();
  count_.store(0, std::memory_order_release);
  EndWrite();
}

bool RegionTable::Find(uintptr_t address, Entry* out) const noexcept {
  uint64_t sequence;
  return Search(address, out, &sequence);
}

bool RegionTable::FindWhole(uintptr_t address, Entry* out) const noexcept {
  uint64_t sequence;
  return Search(address, out, &sequence, /*whole=*/true);
}

const RegionTable::Entry* RegionTable::FindAndRemember(
    uintptr_t address, Hint* hint, bool filter,
    const void* owner) const noexcept {
  Entry found;
  uint64_t sequence;
  if (!Search(address, &found, &sequence)) return nullptr;
  if (filter && found.owner != owner) return nullptr;  // hint kept as it was
  hint->entry = found;
  hint->size = found.end - found.begin;
  hint->sequence = sequence;
  return &hint->entry;
}

bool RegionTable::Search(uintptr_t address, Entry* out, uint64_t* sequence,
                         bool whole) const noexcept {
  for (;;) {
    const uint64_t before = sequence_.load(std::memory_order_acquire);
    if (before % 2 != 0) continue;  // a writer is mid-update
    const Array* array = array_.load(std::memory_order_acquire);
    size_t count = count_.load(std::memory_order_acquire);
    count = std::min(count, array->capacity);
    // Binary search for the last slot with begin <= address.
    size_t low = 0, high = count;
    while (low < high) {
      const size_t mid = low + (high - low) / 2;
      const Slot& s = array->slots[mid];
      const uintptr_t low_end = whole ? s.base.load(std::memory_order_acquire)
                                      : s.begin.load(std::memory_order_acquire);
      if (low_end <= address) {
        low = mid + 1;
      } else {
        high = mid;
      }
    }
    bool found = false;
    if (low > 0) {
      *out = Load(array->slots[low - 1], std::memory_order_acquire);
      found = (whole ? out->base : out->begin) <= address && address < out->end;
    }
    if (sequence_.load(std::memory_order_relaxed) == before) {
      *sequence = before;
      return found;
    }
  }
}

}  // namespace fmemp
