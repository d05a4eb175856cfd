// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/region_index.h"

namespace fmemp {

using tlsf::kFirstLevelCount;
using tlsf::kSecondLevelCount;

void RegionIndex::Unlink(Entry* entry) noexcept {
  if (entry->bin == kNoBin) return;
  const unsigned first = static_cast<unsigned>(entry->bin) / kSecondLevelCount;
  const unsigned second = static_cast<unsigned>(entry->bin) % kSecondLevelCount;
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

void RegionIndex::Move(Entry* entry, int bin) noexcept {
  Unlink(entry);
  if (bin == kNoBin) return;
  const unsigned first = static_cast<unsigned>(bin) / kSecondLevelCount;
  const unsigned second = static_cast<unsigned>(bin) % kSecondLevelCount;
  Entry*& head = lists_[first][second];
  entry->bin = bin;
  entry->prev = nullptr;
  entry->next = head;
  if (head != nullptr) head->prev = entry;
  head = entry;
  second_maps_[first] |= 1u << second;
  first_map_ |= 1u << first;
}

}  // namespace fmemp
