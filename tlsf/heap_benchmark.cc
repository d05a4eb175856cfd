// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tlsf/heap_benchmark.cc
//
// Measures fmemp::tlsf::Heap against glibc malloc/free in one binary, on the
// same pregenerated request sequences (docs/BENCHMARKS.md has the results):
//
// * BM_PairRandom/<allocator>/<max>: allocate a block of a random size in
//   [16, max] bytes, touch one byte, free it. max is 4 KiB or 64 KiB.
// * BM_LiveSet/<allocator>/<live>/<max>: keep `live` blocks (64, 1024, 16384)
//   alive; each iteration frees a random slot and allocates a new block of a
//   random size in [16, max] into it, touching one byte.
//
// <allocator> is `tlsf` or `glibc`, so each tlsf row has a glibc twin with the
// same suffix, registered next to it. One iteration is one allocation plus one
// free; items/s counts iterations, and faults/op is the process's minor page
// faults per iteration. Sizes and slots come from std::mt19937_64 with a fixed
// seed, generated before the timed loop; the TLSF heap gets one 2 GiB
// MAP_NORESERVE pool per benchmark run, created outside the timed loop.
//
// Run:
//   bazel run -c opt //tlsf:heap_benchmark -- --benchmark_min_time=0.2
//
// With --callgrind_probe=<probe> (handled before benchmark::Initialize) the
// binary runs no benchmark. It fills a heap with live blocks and then performs
// 10000 deterministic free + allocate pairs through the noinline functions
// FmempProbeAllocate and FmempProbeFree, so that callgrind can count the
// instructions of exactly those calls (one command line):
//   valgrind --tool=callgrind --toggle-collect='FmempProbe*'
//       bazel-out/k8-opt/bin/tlsf/heap_benchmark --callgrind_probe=tlsf_small
// then `callgrind_annotate --inclusive=yes` on its output file.
// Probes: tlsf_small (1 MiB pool, 128 live blocks), tlsf_large (8 GiB
// MAP_NORESERVE pool, 65536 live blocks; only block headers are touched), and
// glibc_small / glibc_large (the same sequences through malloc/free).

#include <sys/mman.h>
#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/benchmark_main.h"
#include "bench/timed_loops.h"
#include "bench/workload.h"
#include "benchmark/benchmark.h"
#include "tlsf/heap.h"

// --- Callgrind probe entry points ---
//
// Every allocator call of the probe goes through one of these two functions;
// `valgrind --tool=callgrind --toggle-collect='FmempProbe*'` collects events
// only inside them (callees included). They have C linkage so the names to
// toggle on are stable, and are noinline so they exist as calls at all. Each
// adds 3 instructions to what it wraps (5 with glibc's PLT jump).

extern "C" {

__attribute__((noinline)) void* FmempProbeAllocate(fmemp::tlsf::Heap* heap,
                                                   size_t bytes) {
  return heap != nullptr ? heap->Allocate(bytes) : std::malloc(bytes);
}

__attribute__((noinline)) void FmempProbeFree(fmemp::tlsf::Heap* heap,
                                              void* ptr) {
  if (heap != nullptr) {
    heap->Free(ptr);
  } else {
    std::free(ptr);
  }
}

}  // extern "C"

namespace fmemp::tlsf {
namespace {

using ::fmemp::bench::kMinRequest;
using ::fmemp::bench::kSequenceLength;
using ::fmemp::bench::kSequenceMask;
using ::fmemp::bench::Mapping;
using ::fmemp::bench::RandomSizes;
using ::fmemp::bench::RandomSlots;
using ::fmemp::bench::ReplaceInLiveSet;
using ::fmemp::bench::Touch;

constexpr uint64_t kSeed = 0x5eed2026;

// The TLSF pool of every benchmark run: room for the largest live set
// (16384 blocks of up to 64 KiB, 512 MiB on average and 1 GiB at most) with
// slack for fragmentation. MAP_NORESERVE: only touched pages cost memory.
constexpr size_t kBenchmarkPoolBytes = size_t{2} << 30;

// A Heap with one pool of `pool_bytes` from a Mapping.
class TlsfAllocator {
 public:
  static constexpr const char* kName = "tlsf";

  TlsfAllocator() : TlsfAllocator(kBenchmarkPoolBytes) {}
  explicit TlsfAllocator(size_t pool_bytes) : mapping_(pool_bytes) {
    ok_ = mapping_.data() != nullptr &&
          heap_.AddPool(mapping_.data(), mapping_.size()).ok();
  }

  bool ok() const { return ok_; }
  void* Allocate(size_t bytes) { return heap_.Allocate(bytes); }
  void Free(void* ptr) { heap_.Free(ptr); }

 private:
  Mapping mapping_;  // outlives heap_
  Heap heap_;
  bool ok_ = false;
};

class GlibcAllocator {
 public:
  static constexpr const char* kName = "glibc";

  bool ok() const { return true; }
  void* Allocate(size_t bytes) { return std::malloc(bytes); }
  void Free(void* ptr) { std::free(ptr); }
};

// Minor page faults of the process so far. The timed loops are bracketed by
// two reads, outside the timing, to report faults per iteration: first touches
// of fresh pages are part of what an allocator costs.
int64_t MinorFaults() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

void SetCounters(benchmark::State& state, int64_t faults_before) {
  state.SetItemsProcessed(state.iterations());
  state.counters["faults/op"] =
      benchmark::Counter(static_cast<double>(MinorFaults() - faults_before),
                         benchmark::Counter::kAvgIterations);
}

// range(0): largest request in bytes.
template <typename Allocator>
void BM_PairRandom(benchmark::State& state) {
  const size_t max_bytes = static_cast<size_t>(state.range(0));
  const std::vector<size_t> sizes =
      RandomSizes(kSequenceLength, max_bytes, kSeed);
  Allocator allocator;
  if (!allocator.ok()) {
    state.SkipWithError("could not create the allocator");
    return;
  }
  const int64_t faults_before = MinorFaults();
  size_t i = 0;
  for (auto _ : state) {
    void* const ptr = allocator.Allocate(sizes[i & kSequenceMask]);
    if (ptr == nullptr) {
      state.SkipWithError("allocation failed");
      break;
    }
    Touch(ptr, i);
    allocator.Free(ptr);
    ++i;
  }
  SetCounters(state, faults_before);
}

// range(0): live blocks; range(1): largest request in bytes.
template <typename Allocator>
void BM_LiveSet(benchmark::State& state) {
  const size_t live = static_cast<size_t>(state.range(0));
  const size_t max_bytes = static_cast<size_t>(state.range(1));
  const std::vector<size_t> fill = RandomSizes(live, max_bytes, kSeed + 1);
  const std::vector<size_t> sizes =
      RandomSizes(kSequenceLength, max_bytes, kSeed + 2);
  const std::vector<uint32_t> slots =
      RandomSlots(kSequenceLength, live, kSeed + 3);
  Allocator allocator;
  if (!allocator.ok()) {
    state.SkipWithError("could not create the allocator");
    return;
  }
  std::vector<void*> blocks(live, nullptr);
  for (size_t s = 0; s < live; ++s) {
    blocks[s] = allocator.Allocate(fill[s]);
    if (blocks[s] == nullptr) {
      state.SkipWithError("filling the live set failed");
      for (void* block : blocks) allocator.Free(block);
      return;
    }
    Touch(blocks[s], s);
  }
  const int64_t faults_before = MinorFaults();
  ReplaceInLiveSet(state, allocator, blocks, slots, sizes);
  SetCounters(state, faults_before);
  for (void* block : blocks) allocator.Free(block);  // Free(nullptr) is a no-op
}

// Registers each tlsf benchmark directly before its glibc twin, so paired rows
// are adjacent and run close together in time on a noisy machine.
template <typename Allocator>
void RegisterPair(size_t max_bytes) {
  benchmark::RegisterBenchmark(
      (std::string("BM_PairRandom/") + Allocator::kName).c_str(),
      BM_PairRandom<Allocator>)
      ->Arg(static_cast<int64_t>(max_bytes));
}

template <typename Allocator>
void RegisterLiveSet(size_t live, size_t max_bytes) {
  benchmark::RegisterBenchmark(
      (std::string("BM_LiveSet/") + Allocator::kName).c_str(),
      BM_LiveSet<Allocator>)
      ->Args({static_cast<int64_t>(live), static_cast<int64_t>(max_bytes)});
}

void RegisterBenchmarks() {
  for (size_t max_bytes : {size_t{4096}, size_t{65536}}) {
    RegisterPair<TlsfAllocator>(max_bytes);
    RegisterPair<GlibcAllocator>(max_bytes);
  }
  for (size_t max_bytes : {size_t{4096}, size_t{65536}}) {
    for (size_t live : {size_t{64}, size_t{1024}, size_t{16384}}) {
      RegisterLiveSet<TlsfAllocator>(live, max_bytes);
      RegisterLiveSet<GlibcAllocator>(live, max_bytes);
    }
  }
}

// --- Callgrind probe ---

constexpr size_t kProbeOps = 10000;
constexpr size_t kProbeMaxRequest = 4096;

struct Probe {
  const char* name;
  bool tlsf;
  size_t pool_bytes;  // TLSF only
  size_t live;
};

constexpr Probe kProbes[] = {
    {"tlsf_small", true, size_t{1} << 20, 128},
    {"tlsf_large", true, size_t{8} << 30, 65536},
    {"glibc_small", false, 0, 128},
    {"glibc_large", false, 0, 65536},
};

// Fills `live` slots (not through the probe functions, so not counted), then
// does kProbeOps pairs of FmempProbeFree + FmempProbeAllocate on random slots
// with random sizes in [16, 4096]. Returns the process exit code.
int RunProbe(const Probe& probe) {
  const std::vector<size_t> fill =
      RandomSizes(probe.live, kProbeMaxRequest, kSeed + 11);
  const std::vector<size_t> sizes =
      RandomSizes(kProbeOps, kProbeMaxRequest, kSeed + 12);
  const std::vector<uint32_t> slots =
      RandomSlots(kProbeOps, probe.live, kSeed + 13);

  Mapping mapping(probe.tlsf ? probe.pool_bytes : 0);
  Heap heap_storage;
  Heap* heap = nullptr;
  if (probe.tlsf) {
    if (mapping.data() == nullptr ||
        !heap_storage.AddPool(mapping.data(), mapping.size()).ok()) {
      std::fprintf(stderr, "probe %s: could not create a %zu-byte pool\n",
                   probe.name, probe.pool_bytes);
      return 1;
    }
    heap = &heap_storage;
  }

  std::vector<void*> blocks(probe.live, nullptr);
  for (size_t s = 0; s < probe.live; ++s) {
    blocks[s] =
        heap != nullptr ? heap->Allocate(fill[s]) : std::malloc(fill[s]);
    if (blocks[s] == nullptr) {
      std::fprintf(stderr, "probe %s: fill failed at block %zu\n", probe.name,
                   s);
      return 1;
    }
  }

  size_t failures = 0;
  for (size_t i = 0; i < kProbeOps; ++i) {
    void*& slot = blocks[slots[i]];
    FmempProbeFree(heap, slot);
    slot = FmempProbeAllocate(heap, sizes[i]);
    if (slot == nullptr) ++failures;
  }
  benchmark::DoNotOptimize(blocks.data());

  for (void* block : blocks) {
    if (heap != nullptr) {
      heap->Free(block);
    } else {
      std::free(block);
    }
  }
  std::printf(
      "probe %s: pool %zu bytes, %zu live blocks, %zu FmempProbeFree + %zu "
      "FmempProbeAllocate calls, %zu failed allocations\n",
      probe.name, probe.tlsf ? mapping.size() : size_t{0}, probe.live,
      kProbeOps, kProbeOps, failures);
  if (heap != nullptr && !heap->Check().ok()) {
    std::fprintf(stderr, "probe %s: heap check failed\n", probe.name);
    return 1;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace fmemp::tlsf

int main(int argc, char** argv) {
  return fmemp::bench::BenchmarkMain(argc, argv, fmemp::tlsf::kProbes,
                                     &fmemp::tlsf::RunProbe,
                                     &fmemp::tlsf::RegisterBenchmarks);
}
