// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/callgrind_probe.h
//
// Workload 7: a fixed sequence for `valgrind --tool=callgrind
// --collect-atstart=no` that makes callgrind write one dump per malloc and
// per free, so that run_compare.sh can read the instructions of every single
// call (average and worst case), not only a total.

#ifndef FMEMP_BENCH_COMPARE_CALLGRIND_PROBE_H_
#define FMEMP_BENCH_COMPARE_CALLGRIND_PROBE_H_

#include <cstddef>
#include <string>

#include "bench/compare/contender.h"

namespace fmemp::bench::compare {

struct ProbeSpec {
  HeapSpec heap;
  size_t live = 0;          // blocks allocated (uncounted) before the steps
  size_t ops = 0;           // measured free + malloc pairs
  size_t max_bytes = 4096;  // sizes are uniform in 16 B..max_bytes
  // True: a callgrind dump after every measured call (avg and worst case
  // from the dumps). False: one dump at exit holding all measured calls,
  // for callgrind_annotate (per-function profiles; FmempCompareProbeMalloc
  // and FmempCompareProbeFree are the calls' inclusive totals).
  bool dump_each_call = true;
};

// Parses "<heap bytes>:<regions>:<live>:<ops>[:<max bytes>]"; false if
// malformed.
bool ParseProbeSpec(const std::string& text, ProbeSpec* spec);

// Fills `live` blocks (sizes 16 B..max_bytes) on contender `c` over
// spec.heap, runs 4 * ops uncounted warm-up steps (so that per-thread caches
// and malloc's bins are in their steady state), then does `ops` times: free
// a random slot, allocate a random size into it. Collection is toggled on
// around each of those calls only, and (dump_each_call) each is followed by
// a dump named "free" or "malloc". First come 100 dumps named "empty": a
// collection toggled on and off around nothing, the overhead to subtract.
// Returns the process exit code (1 if setup or an allocation failed).
// Outside valgrind the requests do nothing.
int RunCallgrindProbe(const Contender& c, const ProbeSpec& spec);

}  // namespace fmemp::bench::compare

#endif  // FMEMP_BENCH_COMPARE_CALLGRIND_PROBE_H_
