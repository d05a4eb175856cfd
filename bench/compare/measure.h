// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/measure.h
//
// What the comparison suite measures with: a monotonic clock, the process's
// resident memory (current and peak, with a reset of the peak), percentiles,
// and a way to keep the compiler from dropping a block's use.

#ifndef FMEMP_BENCH_COMPARE_MEASURE_H_
#define FMEMP_BENCH_COMPARE_MEASURE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fmemp::bench::compare {

using Clock = std::chrono::steady_clock;

inline double SecondsBetween(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

// Tells the compiler that `ptr` and the memory it points to are used.
inline void Escape(void* ptr) { asm volatile("" : : "g"(ptr) : "memory"); }

// Writes one byte of a fresh block so that allocating it has a visible
// effect (and, like a real program, touches its first page).
inline void Touch(void* ptr, size_t i) {
  static_cast<char*>(ptr)[0] = static_cast<char>(i);
  Escape(ptr);
}

// Resident set size of this process now, from /proc/self/statm; 0 when it
// cannot be read.
size_t CurrentRssBytes();

// Starts a new peak-RSS interval: writes "5" to /proc/self/clear_refs, which
// makes the kernel set VmHWM to the current RSS. Returns false when the
// kernel refused; PeakRssBytes then covers the whole process lifetime.
bool ResetPeakRss();

// VmHWM from /proc/self/status: the peak resident set size since the process
// started or ResetPeakRss last succeeded; 0 when it cannot be read.
size_t PeakRssBytes();

// The q-quantile (0 <= q <= 1, nearest rank) of `samples`, which it sorts.
// 0 for an empty vector.
uint64_t Quantile(std::vector<uint64_t>& samples, double q);

}  // namespace fmemp::bench::compare

#endif  // FMEMP_BENCH_COMPARE_MEASURE_H_
