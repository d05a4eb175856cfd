// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/workload.h
//
// Pieces every fmemp benchmark shares: seeded request sizes and slot choices,
// generated before the timed loop so that it does allocator work only, and
// an anonymous MAP_NORESERVE mapping to put pools and regions in.

#ifndef FMEMP_BENCH_WORKLOAD_H_
#define FMEMP_BENCH_WORKLOAD_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace fmemp::bench {

// The smallest request the workloads make.
inline constexpr size_t kMinRequest = 16;

// `count` sizes uniform in [kMinRequest, max_bytes], from `seed`.
inline std::vector<size_t> RandomSizes(size_t count, size_t max_bytes,
                                       uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> dist(kMinRequest, max_bytes);
  std::vector<size_t> sizes(count);
  for (size_t& size : sizes) size = dist(rng);
  return sizes;
}

// `count` slot indices uniform in [0, live), from `seed`.
inline std::vector<uint32_t> RandomSlots(size_t count, size_t live,
                                         uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint32_t> dist(0,
                                               static_cast<uint32_t>(live - 1));
  std::vector<uint32_t> slots(count);
  for (uint32_t& slot : slots) slot = dist(rng);
  return slots;
}

// An anonymous private MAP_NORESERVE mapping, unmapped on destruction; only
// touched pages cost memory. data() is nullptr if mmap failed.
class Mapping {
 public:
  explicit Mapping(size_t bytes) : bytes_(bytes) {
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    data_ = mem == MAP_FAILED ? nullptr : mem;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }

  void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
};

}  // namespace fmemp::bench

#endif  // FMEMP_BENCH_WORKLOAD_H_
