// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/region_index.h"

namespace fmemp {

using tlsf::kFirstLevelCount;
using tlsf::kSecondLevelCount;

void RegionIndex::Unlink(Entry* entry) noexcept {
  if (entry->bin == kNoBin) return;
  const int first = entry->bin / kSecondLevelCount;
  const int second = entry->bin % kSecondLevelCount;
  if (entry->next != nullptr) entry->next->prev = entry->prev;
  if (entry->prev != nullptr) {
    entry->prev->next = entry->next;
  } else {
    lists_[first][second] = entry->next;
    if (entry->next == nullptr) {
      second_maps_[first] &= ~(1u << second);
      if (second_maps_[first] == 0) first_map_ &= ~(1u << first);
    }
  }
  entry->next = entry->prev = nullptr;
  entry->bin = kNoBin;
}

void RegionIndex::Update(Entry* entry, int bin) noexcept {
  if (entry->bin == bin) return;
  Unlink(entry);
  if (bin == kNoBin) return;
  const int first = bin / kSecondLevelCount;
  const int second = bin % kSecondLevelCount;
  Entry*& head = lists_[first][second];
  entry->bin = bin;
  entry->prev = nullptr;
  entry->next = head;
  if (head != nullptr) head->prev = entry;
  head = entry;
  second_maps_[first] |= 1u << second;
  first_map_ |= 1u << first;
}

RegionIndex::Entry* RegionIndex::FindAtLeast(int bin) const noexcept {
  int first = bin / kSecondLevelCount;
  const int second = bin % kSecondLevelCount;
  uint32_t second_map = second_maps_[first] & (~0u << second);
  if (second_map == 0) {
    if (first + 1 >= kFirstLevelCount) return nullptr;
    const uint32_t first_map = first_map_ & (~0u << (first + 1));
    if (first_map == 0) return nullptr;
    first = __builtin_ctz(first_map);
    second_map = second_maps_[first];
  }
  return lists_[first][__builtin_ctz(second_map)];
}

}  // namespace fmemp
