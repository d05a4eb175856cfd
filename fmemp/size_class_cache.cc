// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/size_class_cache.h"

#include <chrono>
#include <cstdint>

namespace fmemp {

uintptr_t NewMarkerKey(const void* self, uint64_t owner_id) {
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

}  // namespace fmemp
