// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/workloads.h
//
// The comparison suite's workloads. Each runs one contender through every
// case of one workload and reports its numbers; sizes, slots and traces come
// from fixed seeds, so every contender (in every binary) sees the same
// request sequence. docs/BENCHMARKS.md ("Comparison suite") describes them.

#ifndef FMEMP_BENCH_COMPARE_WORKLOADS_H_
#define FMEMP_BENCH_COMPARE_WORKLOADS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "bench/compare/contender.h"

namespace fmemp::bench::compare {

// How much work each workload does.
struct Scale {
  size_t single_steps = 0;     // timed steps per single-thread case
  size_t big_live = 0;         // the "100 K" live set
  size_t server_steps = 0;     // timed steps per thread
  size_t server_live = 0;      // live blocks per thread
  size_t prodcons_blocks = 0;  // blocks passed from producer to consumer
  size_t latency_ops = 0;      // recorded operations
  size_t latency_heap = 0;     // fmemp region size; malloc live-byte target
  size_t trace_phase = 0;      // events per phase of the memory trace
};

// "full" (the published run), "quick" or "smoke" (CI); false if unknown.
bool ScaleByName(const std::string& name, Scale* scale);

// Writes one tab-separated result line to stdout:
//   R <workload> <case> <contender> <metric> <value>
// Progress goes to stderr.
class Reporter {
 public:
  explicit Reporter(std::string contender) : contender_(std::move(contender)) {}
  void Add(const std::string& workload, const std::string& case_name,
           const std::string& metric, double value) const;
  // Reports that `case_name` could not run (setup or an allocation failed).
  void Fail(const std::string& workload, const std::string& case_name,
            const std::string& why) const;

 private:
  std::string contender_;
};

// The workloads. Each returns false if any case failed (and reported so).
// Workloads that need threads skip contenders that are not thread_safe.

// 1. Live sets of 1 K and big_live blocks, sizes 16 B..1 KiB and
//    16 B..64 KiB: each step frees a random slot and refills it.
//    Metric: msteps_per_s.
bool RunSingleThread(const Contender& c, const Scale& s, const Reporter& r);

// 2. Larson-like server: each of T threads replaces random slots of its own
//    live set; 10 % of freed blocks go, in batches of 64, to the next
//    thread's inbox and are freed there ("T threads"). For T > 1 also with
//    no handoff ("T threads, no handoff": workload 1's first case on every
//    thread at once). Metric: msteps_per_s (all threads).
bool RunServer(const Contender& c, const Scale& s,
               const std::vector<int>& thread_counts, const Reporter& r);

// 3. One thread allocates (16 B..4 KiB), another frees, through a 4096-slot
//    ring. Metrics: mblocks_per_s, peak_rss_growth (VmHWM over the run minus
//    RSS before it), peak_live_bytes (requested bytes allocated and not yet
//    popped by the consumer, largest over the producer's pushes),
//    allocator_peak (the contender's own peak; fmemp only).
bool RunProducerConsumer(const Contender& c, const Scale& s, const Reporter& r);

// 4. Per-operation latency (steady_clock around each call), sizes 16 B..
//    64 KiB, live requested bytes kept within 70..90 % of latency_heap; for
//    fmemp contenders also over a pre-faulted region (HeapSpec::prefault).
//    Metrics: {malloc,free}_{p50,p99,p999,p9999,max}_ns, failed_allocations,
//    timer_ns (median cost of the two clock reads, not subtracted).
bool RunLatency(const Contender& c, const Scale& s, const Reporter& r);

// 5. Memory efficiency on a fixed trace. fmemp contenders: the smallest
//    single region (4 KiB steps, binary search) that replays the trace
//    without a failed allocation, as region_over_peak_live. Malloc
//    contenders: rss_over_peak_live (peak RSS growth while replaying with
//    every block written in full); a different measure.
bool RunMemoryEfficiency(const Contender& c, const Scale& s, const Reporter& r);

// 6. Workload 1 (1 K live) over 1, 8 and 64 regions of one total size.
bool RunRegions(const Contender& c, const Scale& s, const Reporter& r);

}  // namespace fmemp::bench::compare

#endif  // FMEMP_BENCH_COMPARE_WORKLOADS_H_
