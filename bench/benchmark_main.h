// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/benchmark_main.h
//
// The main() of fmemp's benchmark binaries: Google Benchmark's usual main,
// preceded by a `--callgrind_probe=<name>` mode that runs one fixed,
// deterministic sequence for `valgrind --tool=callgrind` instead (the flag
// must be handled before benchmark::Initialize, which rejects it).

#ifndef FMEMP_BENCH_BENCHMARK_MAIN_H_
#define FMEMP_BENCH_BENCHMARK_MAIN_H_

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

#include "benchmark/benchmark.h"

namespace fmemp::bench {

// Probe is any type with a `const char* name`; run(probe) returns the exit
// code. With --callgrind_probe=<name> runs that probe (exit code 2 for an
// unknown name); otherwise registers and runs the benchmarks.
template <typename Probe, size_t kCount>
int BenchmarkMain(int argc, char** argv, const Probe (&probes)[kCount],
                  int (*run)(const Probe&), void (*register_benchmarks)()) {
  constexpr char kFlag[] = "--callgrind_probe=";
  constexpr size_t kFlagLength = sizeof(kFlag) - 1;
  for (int a = 1; a < argc; ++a) {
    if (std::strncmp(argv[a], kFlag, kFlagLength) != 0) continue;
    const char* const name = argv[a] + kFlagLength;
    std::string known;
    for (const Probe& probe : probes) {
      if (std::strcmp(name, probe.name) == 0) return run(probe);
      known += known.empty() ? "" : ", ";
      known += probe.name;
    }
    std::fprintf(stderr, "unknown probe '%s'; expected one of: %s\n", name,
                 known.c_str());
    return 2;
  }
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace fmemp::bench

#endif  // FMEMP_BENCH_BENCHMARK_MAIN_H_
