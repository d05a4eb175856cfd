// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/test_util.h
//
// Helpers the C API tests share: an FMemp that is released when it goes out
// of scope, memory to give it as regions, its probe in one call, and a byte
// pattern to fill blocks with and verify later.

#ifndef FMEMP_FMEMP_TEST_UTIL_H_
#define FMEMP_FMEMP_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

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

// `bytes` (a multiple of 8) of heap memory, 8-byte aligned, to add as a
// region; freed with the object.
class RegionBuffer {
 public:
  explicit RegionBuffer(size_t bytes)
      : bytes_(bytes), data_(new uint64_t[bytes / 8]) {}
  char* begin() const { return reinterpret_cast<char*>(data_.get()); }
  char* end() const { return begin() + bytes_; }
  bool Holds(const void* p) const {
    return static_cast<const char*>(p) >= begin() &&
           static_cast<const char*>(p) < end();
  }

 private:
  size_t bytes_;
  std::unique_ptr<uint64_t[]> data_;
};

// FMempProbe64's figures; all zero if it fails (a test that cares checks the
// call itself).
inline FMempUsage Usage(FMemp* memp) {
  FMempUsage usage = {};
  FMempProbe64(memp, &usage);
  return usage;
}

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
