// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/timed_loops.h
//
// The timed loops fmemp's benchmarks share, over any allocator with
// Allocate(bytes) and Free(ptr). Sizes and slots come pregenerated (see
// workload.h), so a loop does allocator work, an index mask and one byte
// write per block, nothing else.

#ifndef FMEMP_BENCH_TIMED_LOOPS_H_
#define FMEMP_BENCH_TIMED_LOOPS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"

namespace fmemp::bench {

// Length of every pregenerated sequence; a power of two so that the timed
// loops index it with a mask.
inline constexpr size_t kSequenceLength = size_t{1} << 16;
inline constexpr size_t kSequenceMask = kSequenceLength - 1;

// Writes one byte of a block so that the allocation has a visible effect.
inline void Touch(void* ptr, size_t i) {
  static_cast<char*>(ptr)[0] = static_cast<char>(i);
  benchmark::DoNotOptimize(ptr);
}

// The live-set loop: each iteration frees the block in a pregenerated slot
// and allocates a pregenerated size into it. `blocks` holds the live set,
// already allocated. Stops the benchmark with an error if an allocation
// fails.
template <typename Allocator>
void ReplaceInLiveSet(benchmark::State& state, Allocator& allocator,
                      std::vector<void*>& blocks,
                      const std::vector<uint32_t>& slots,
                      const std::vector<size_t>& sizes) {
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = i & kSequenceMask;
    void*& slot = blocks[slots[k]];
    allocator.Free(slot);
    slot = allocator.Allocate(sizes[k]);
    if (slot == nullptr) {
      state.SkipWithError("allocation failed");
      break;
    }
    Touch(slot, i);
    ++i;
  }
}

}  // namespace fmemp::bench

#endif  // FMEMP_BENCH_TIMED_LOOPS_H_
