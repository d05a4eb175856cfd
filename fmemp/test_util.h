// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/test_util.h
//
// Helpers the C API tests share: an FMemp that is released when it goes out
// of scope, and a byte pattern to fill blocks with and verify later.

#ifndef FMEMP_FMEMP_TEST_UTIL_H_
#define FMEMP_FMEMP_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>

#include "fmemp/fmemp.h"

namespace fmemp::test_util {

// A zero-initialised FMemp whose front-end is freed when the test ends, so
// that LeakSanitizer (--config=asan) sees no leak.
class ScopedFMemp {
 public:
  ScopedFMemp() = default;
  ScopedFMemp(const ScopedFMemp&) = delete;
  ScopedFMemp& operator=(const ScopedFMemp&) = delete;
  ~ScopedFMemp() { FMempRelease(&memp_); }
  FMemp* get() { return &memp_; }

 private:
  FMemp memp_ = {};
};

// Writes n bytes of the pattern selected by seed.
inline void Fill(void* p, size_t n, uint8_t seed) {
  uint8_t* b = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
}

// Whether the n bytes at p still hold the pattern Fill wrote.
inline bool HasFill(const void* p, size_t n, uint8_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

}  // namespace fmemp::test_util

#endif  // FMEMP_FMEMP_TEST_UTIL_H_
