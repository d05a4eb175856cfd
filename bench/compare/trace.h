// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/trace.h
//
// The memory-efficiency workload's fixed trace of allocations and frees,
// its replay on a contender, and the search for the smallest region that
// replays it.

#ifndef FMEMP_BENCH_COMPARE_TRACE_H_
#define FMEMP_BENCH_COMPARE_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "bench/compare/contender.h"

namespace fmemp::bench::compare {

struct TraceEvent {
  uint32_t slot;  // which block: a free names the slot an allocation filled
  uint32_t size;  // bytes to allocate into `slot`; 0 frees `slot`
};

struct Trace {
  std::vector<TraceEvent> events;
  size_t slots = 0;            // distinct slots the events use
  size_t peak_live_bytes = 0;  // largest sum of live requested sizes
};

// Four phases of `phase_events` events each: the live set grows (3 of 4
// events allocate), shrinks, grows again, then shrinks to empty. Sizes: 60 %
// in 16..128 B, 30 % in 129 B..2 KiB, 10 % in 2..64 KiB. A free picks a
// random live block. The same `seed` always gives the same trace.
Trace MakeTrace(size_t phase_events, uint64_t seed);

// Replays `trace` on `a`; when `write_all`, writes every byte of every
// block (so that it is resident). Frees whatever is live at the end.
// Returns false if an allocation failed (and stops there).
bool Replay(const Instance& a, const Trace& trace, bool write_all);

// The smallest multiple of 4 KiB, from `lower` up to 64 * lower, for which
// fits(bytes) is true, assuming fits is monotonic; 0 when none is.
size_t SmallestFit(size_t lower, const std::function<bool(size_t)>& fits);

}  // namespace fmemp::bench::compare

#endif  // FMEMP_BENCH_COMPARE_TRACE_H_
