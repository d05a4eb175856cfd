// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/region_index.h
//
// RegionIndex finds, in O(1), a region that can serve a request, however many
// regions there are. Each region is filed under the highest non-empty
// free-list bin of its TLSF heap (tlsf::Heap::LargestFreeBin); the index is
// itself a two-level segregated list with bitmaps, like the heap's, so
// "some region whose largest bin is >= b" is two bit scans away.
//
// Not thread-safe: the front-end holds its lock around every call.

#ifndef FMEMP_FMEMP_REGION_INDEX_H_
#define FMEMP_FMEMP_REGION_INDEX_H_

#include <cstdint>

#include "tlsf/size_class.h"

namespace fmemp {

class RegionIndex {
 public:
  // Flat bin numbers: first * kSecondLevelCount + second.
  static constexpr int kBinCount =
      tlsf::kFirstLevelCount * tlsf::kSecondLevelCount;
  // The bin of an entry that is not in the index (its heap has no free block).
  static constexpr int kNoBin = -1;

  // Intrusive list node; embed one in each indexed object.
  struct Entry {
    Entry* next = nullptr;
    Entry* prev = nullptr;
    int bin = kNoBin;
    void* owner = nullptr;  // the object the entry belongs to
  };

  RegionIndex() = default;
  RegionIndex(const RegionIndex&) = delete;
  RegionIndex& operator=(const RegionIndex&) = delete;

  // Files `entry` under `bin` (kNoBin takes it out). O(1); inline when the
  // bin is unchanged, the common case on the front-end's hot path.
  void Update(Entry* entry, int bin) noexcept {
    if (entry->bin != bin) Move(entry, bin);
  }

  // An entry whose bin is >= `bin`, preferring the lowest such bin (good
  // fit), or nullptr. REQUIRES: 0 <= bin < kBinCount. O(1), inline.
  Entry* FindAtLeast(int bin) const noexcept {
    unsigned first = static_cast<unsigned>(bin) / tlsf::kSecondLevelCount;
    const unsigned second =
        static_cast<unsigned>(bin) % tlsf::kSecondLevelCount;
    uint32_t second_map = second_maps_[first] & (~0u << second);
    if (second_map == 0) {
      if (first + 1 >= static_cast<unsigned>(tlsf::kFirstLevelCount)) {
        return nullptr;
      }
      const uint32_t first_map = first_map_ & (~0u << (first + 1));
      if (first_map == 0) return nullptr;
      first = __builtin_ctz(first_map);
      second_map = second_maps_[first];
    }
    return lists_[first][__builtin_ctz(second_map)];
  }

  // The first entry filed exactly under `bin`, or nullptr. Entries of one bin
  // are reached through Entry::next. REQUIRES: 0 <= bin < kBinCount. O(1).
  Entry* First(int bin) const noexcept {
    return lists_[static_cast<unsigned>(bin) / tlsf::kSecondLevelCount]
                 [static_cast<unsigned>(bin) % tlsf::kSecondLevelCount];
  }

  bool empty() const noexcept { return first_map_ == 0; }

 private:
  // Update for a changed bin.
  void Move(Entry* entry, int bin) noexcept;
  void Unlink(Entry* entry) noexcept;

  uint32_t first_map_ = 0;
  uint32_t second_maps_[tlsf::kFirstLevelCount] = {};
  Entry* lists_[tlsf::kFirstLevelCount][tlsf::kSecondLevelCount] = {};
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_REGION_INDEX_H_
