// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/memp_benchmark.cc
//
// Measures the fmemp front-end, fmemp::Memp<LockPolicy> over several mmap'ed
// regions, against glibc malloc/free in one binary, on the same pregenerated
// request sequences (docs/BENCHMARKS.md has the results):
//
// * BM_LiveSet/<allocator>/real_time/threads:<t>: every thread keeps 1024
//   blocks of its own alive; each iteration frees a random slot of that thread
//   and allocates a block of a random size in [16, 1024] bytes into it,
//   touching one byte.
// * BM_Pair/<allocator>/real_time/threads:<t>: allocate a block of a random
//   size in [16, 1024] bytes, touch one byte, free it.
// * BM_LiveSetRegions/nolock/regions:<n>: BM_LiveSet on one thread over a
//   Memp<NoLock> whose 256 MiB are split into n = 1, 8 or 64 regions.
//
// <allocator> is glibc, nolock (Memp<sync::NoLock>, one thread only),
// spinlock (Memp<sync::SpinLock>) or mutex (Memp<sync::Mutex>); t is 1 or 2.
// Rows with the same suffix pair up, and each thread count's rows are
// registered together, glibc first, so twins run close together in time.
// All threads of a run share one Memp per policy, created once per process
// over 8 regions of 32 MiB (each its own anonymous MAP_NORESERVE mapping, so
// the regions are not contiguous); its lock is the only thing they share.
// glibc gives each thread its own arena and tcache instead.
//
// One iteration is one allocation plus one free. items/s counts iterations of
// all threads together and, for BM_LiveSet and BM_Pair, divides by wall time
// (UseRealTime, hence "real_time" in the names): CPU time would hide the time
// a Mutex waiter sleeps and charge a SpinLock waiter's spinning. The region
// rows are single-threaded and use CPU time. Sizes and slots come from
// std::mt19937_64 with a fixed seed per thread, generated before the timed
// loop; each thread fills its live set before the loop and frees it after.
//
// Run (from the repository root):
//   bazel build -c opt --disk_cache=$HOME/.cache/fmemp/disk
//       //bench:memp_benchmark
//   bazel-out/k8-opt/bin/bench/memp_benchmark --benchmark_min_time=0.2
//
// With --callgrind_probe=<probe> (handled before benchmark::Initialize) the
// binary runs no benchmark. It builds a Memp<sync::NoLock> over the probe's
// regions, fills it with 65536 live blocks of random sizes in [16, 4096]
// bytes, and then makes 10000 calls of each of the noinline functions
// FmempMempProbeFree + FmempMempProbeAllocate (free a random slot, allocate
// into it; the same sequence as tlsf/heap_benchmark's tlsf_large probe),
// FmempMempProbeReallocate (resize a random slot) and
// FmempMempProbeAllocateAligned (64-byte aligned, into a slot freed outside
// the wrappers), so that callgrind counts the instructions of exactly those
// calls (one command line):
//   valgrind --tool=callgrind --toggle-collect='FmempMempProbe*'
//       bazel-out/k8-opt/bin/bench/memp_benchmark --callgrind_probe=regions_1
// then `callgrind_annotate --inclusive=yes` on its output file.
// Probes (all regions anonymous MAP_NORESERVE mappings; only block headers
// are touched): regions_1 (one 256 MiB region), regions_64 (64 regions of
// 4 MiB), regions_1_large (one 8 GiB region, the pool of tlsf_large) and
// regions_64_large (64 regions of 128 MiB, 8 GiB in all). At the end the probe
// runs Memp::Check(), frees everything, checks again and exits non-zero if an
// allocation failed or a free was reported as misuse.

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/benchmark_main.h"
#include "bench/timed_loops.h"
#include "bench/workload.h"
#include "benchmark/benchmark.h"
#include "fmemp/memp.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

using ProbeMemp = fmemp::Memp<fmemp::sync::NoLock>;

// --- Callgrind probe entry points ----------------------------------------
//
// Every counted call of the probe goes through one of these functions;
// `valgrind --tool=callgrind --toggle-collect='FmempMempProbe*'` collects
// events only inside them (callees included). They have C linkage so that the
// names to toggle on are stable, and are noinline so that they exist as calls
// at all. Each adds a few instructions (a jump or call and a return) to the
// RegionSet call it wraps; Memp<NoLock> adds nothing for its lock.

extern "C" {

__attribute__((noinline)) void* FmempMempProbeAllocate(ProbeMemp* memp,
                                                       size_t bytes) {
  return memp->Allocate(bytes);
}

__attribute__((noinline)) bool FmempMempProbeFree(ProbeMemp* memp, void* ptr) {
  return memp->Free(ptr);
}

__attribute__((noinline)) void* FmempMempProbeAllocateAligned(ProbeMemp* memp,
                                                              size_t alignment,
                                                              size_t bytes) {
  return memp->AllocateAligned(alignment, bytes);
}

__attribute__((noinline)) void* FmempMempProbeReallocate(ProbeMemp* memp,
                                                         void* ptr,
                                                         size_t bytes) {
  return memp->Reallocate(ptr, bytes);
}

}  // extern "C"

namespace fmemp::bench {
namespace {

constexpr uint64_t kSeed = 0x5eed2026;

// Benchmarks: requests in [16, 1024] bytes, 1024 live blocks per thread.
constexpr size_t kMaxRequest = 1024;
constexpr size_t kLivePerThread = 1024;

// Every benchmark Memp holds 256 MiB: 8 regions of 32 MiB for the policy
// rows, 1, 8 or 64 regions for the region rows. Two threads' live sets need
// about 1 MiB.
constexpr size_t kTotalBytes = size_t{256} << 20;
constexpr size_t kDefaultRegions = 8;

// Each region's mapping is this much longer than the region, so that no two
// regions are adjacent in memory.
constexpr size_t kGuardBytes = 4096;

// A Memp over `regions` regions of `region_bytes` each, every one in a
// mapping of its own.
template <typename Policy>
class Arena {
 public:
  Arena(size_t regions, size_t region_bytes) {
    ok_ = true;
    for (size_t r = 0; r < regions && ok_; ++r) {
      mappings_.push_back(
          std::make_unique<Mapping>(region_bytes + kGuardBytes));
      void* const begin = mappings_.back()->data();
      ok_ = begin != nullptr && memp_.AddRegion(begin, region_bytes).ok();
    }
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  bool ok() const { return ok_; }
  Memp<Policy>& memp() { return memp_; }

 private:
  std::vector<std::unique_ptr<Mapping>> mappings_;  // outlive memp_
  Memp<Policy> memp_;
  bool ok_ = false;
};

// The process's one Memp for (Policy, kRegions), created on first use and
// never destroyed; nullptr if it could not be set up.
template <typename Policy, size_t kRegions>
Memp<Policy>* SharedMemp() {
  static Arena<Policy>* const arena =
      new Arena<Policy>(kRegions, kTotalBytes / kRegions);
  return arena->ok() ? &arena->memp() : nullptr;
}

template <typename Policy>
struct PolicyName;
template <>
struct PolicyName<sync::NoLock> {
  static constexpr const char* kName = "nolock";
};
template <>
struct PolicyName<sync::SpinLock> {
  static constexpr const char* kName = "spinlock";
};
template <>
struct PolicyName<sync::Mutex> {
  static constexpr const char* kName = "mutex";
};

template <typename Policy, size_t kRegions = kDefaultRegions>
class MempAllocator {
 public:
  static constexpr const char* kName = PolicyName<Policy>::kName;
  static constexpr bool kThreadSafe = Policy::kThreadSafe;

  MempAllocator() : memp_(SharedMemp<Policy, kRegions>()) {}

  bool ok() const { return memp_ != nullptr; }
  void* Allocate(size_t bytes) { return memp_->Allocate(bytes); }
  void Free(void* ptr) { memp_->Free(ptr); }

 private:
  Memp<Policy>* memp_;
};

class GlibcAllocator {
 public:
  static constexpr const char* kName = "glibc";
  static constexpr bool kThreadSafe = true;

  bool ok() const { return true; }
  void* Allocate(size_t bytes) { return std::malloc(bytes); }
  void Free(void* ptr) { std::free(ptr); }
};

// A different but fixed seed for each thread of a run.
uint64_t ThreadSeed(const benchmark::State& state) {
  return kSeed + 1000 * static_cast<uint64_t>(state.thread_index());
}

template <typename Allocator>
bool Usable(benchmark::State& state, const Allocator& allocator) {
  if (!Allocator::kThreadSafe && state.threads() > 1) {
    state.SkipWithError("this allocator is for one thread only");
    return false;
  }
  if (!allocator.ok()) {
    state.SkipWithError("could not create the allocator");
    return false;
  }
  return true;
}

template <typename Allocator>
void BM_Pair(benchmark::State& state) {
  const std::vector<size_t> sizes =
      RandomSizes(kSequenceLength, kMaxRequest, ThreadSeed(state));
  Allocator allocator;
  if (!Usable(state, allocator)) return;
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
  state.SetItemsProcessed(state.iterations());
}

template <typename Allocator>
void BM_LiveSet(benchmark::State& state) {
  const uint64_t seed = ThreadSeed(state);
  const std::vector<size_t> fill =
      RandomSizes(kLivePerThread, kMaxRequest, seed + 1);
  const std::vector<size_t> sizes =
      RandomSizes(kSequenceLength, kMaxRequest, seed + 2);
  const std::vector<uint32_t> slots =
      RandomSlots(kSequenceLength, kLivePerThread, seed + 3);
  Allocator allocator;
  if (!Usable(state, allocator)) return;
  std::vector<void*> blocks(kLivePerThread, nullptr);
  for (size_t s = 0; s < kLivePerThread; ++s) {
    blocks[s] = allocator.Allocate(fill[s]);
    if (blocks[s] == nullptr) {
      state.SkipWithError("filling the live set failed");
      for (void* block : blocks) allocator.Free(block);
      return;
    }
    Touch(blocks[s], s);
  }
  ReplaceInLiveSet(state, allocator, blocks, slots, sizes);
  state.SetItemsProcessed(state.iterations());
  for (void* block : blocks) allocator.Free(block);  // Free(nullptr) is a no-op
}

template <typename Allocator>
void RegisterThreaded(int threads) {
  if (!Allocator::kThreadSafe && threads > 1) return;
  benchmark::RegisterBenchmark(
      (std::string("BM_LiveSet/") + Allocator::kName).c_str(),
      BM_LiveSet<Allocator>)
      ->Threads(threads)
      ->UseRealTime();
  benchmark::RegisterBenchmark(
      (std::string("BM_Pair/") + Allocator::kName).c_str(), BM_Pair<Allocator>)
      ->Threads(threads)
      ->UseRealTime();
}

template <size_t kRegions>
void RegisterRegions() {
  using Allocator = MempAllocator<sync::NoLock, kRegions>;
  benchmark::RegisterBenchmark(
      (std::string("BM_LiveSetRegions/") + Allocator::kName +
       "/regions:" + std::to_string(kRegions))
          .c_str(),
      BM_LiveSet<Allocator>);
}

void RegisterBenchmarks() {
  for (int threads : {1, 2}) {
    RegisterThreaded<GlibcAllocator>(threads);
    RegisterThreaded<MempAllocator<sync::NoLock>>(threads);
    RegisterThreaded<MempAllocator<sync::SpinLock>>(threads);
    RegisterThreaded<MempAllocator<sync::Mutex>>(threads);
  }
  RegisterRegions<1>();
  RegisterRegions<8>();
  RegisterRegions<64>();
}

// --- Callgrind probe ---------------------------------------------------------

// The sequence of tlsf/heap_benchmark's tlsf_large probe: same seeds, live
// count and size range.
constexpr size_t kProbeOps = 10000;
constexpr size_t kProbeLive = 65536;
constexpr size_t kProbeMaxRequest = 4096;
constexpr size_t kProbeAlignment = 64;

struct Probe {
  const char* name;
  size_t regions;
  size_t region_bytes;
};

constexpr Probe kProbes[] = {
    {"regions_1", 1, size_t{256} << 20},
    {"regions_64", 64, size_t{4} << 20},
    {"regions_1_large", 1, size_t{8} << 30},
    {"regions_64_large", 64, size_t{128} << 20},
};

// Fills kProbeLive slots (not through the probe functions, so not counted),
// then makes kProbeOps calls of each probe function on random slots with
// random sizes in [16, 4096]. Returns the process exit code.
int RunProbe(const Probe& probe) {
  const std::vector<size_t> fill =
      RandomSizes(kProbeLive, kProbeMaxRequest, kSeed + 11);
  const std::vector<size_t> sizes =
      RandomSizes(kProbeOps, kProbeMaxRequest, kSeed + 12);
  const std::vector<uint32_t> slots =
      RandomSlots(kProbeOps, kProbeLive, kSeed + 13);
  const std::vector<size_t> realloc_sizes =
      RandomSizes(kProbeOps, kProbeMaxRequest, kSeed + 14);
  const std::vector<uint32_t> realloc_slots =
      RandomSlots(kProbeOps, kProbeLive, kSeed + 15);
  const std::vector<size_t> aligned_sizes =
      RandomSizes(kProbeOps, kProbeMaxRequest, kSeed + 16);
  const std::vector<uint32_t> aligned_slots =
      RandomSlots(kProbeOps, kProbeLive, kSeed + 17);

  Arena<sync::NoLock> arena(probe.regions, probe.region_bytes);
  if (!arena.ok()) {
    std::fprintf(stderr,
                 "probe %s: could not create %zu regions of %zu bytes\n",
                 probe.name, probe.regions, probe.region_bytes);
    return 1;
  }
  ProbeMemp& memp = arena.memp();

  std::vector<void*> blocks(kProbeLive, nullptr);
  for (size_t s = 0; s < kProbeLive; ++s) {
    blocks[s] = memp.Allocate(fill[s]);
    if (blocks[s] == nullptr) {
      std::fprintf(stderr, "probe %s: fill failed at block %zu\n", probe.name,
                   s);
      return 1;
    }
  }

  size_t failures = 0;
  size_t rejected_frees = 0;
  for (size_t i = 0; i < kProbeOps; ++i) {
    void*& slot = blocks[slots[i]];
    if (!FmempMempProbeFree(&memp, slot)) ++rejected_frees;
    slot = FmempMempProbeAllocate(&memp, sizes[i]);
    if (slot == nullptr) ++failures;
  }
  for (size_t i = 0; i < kProbeOps; ++i) {
    void*& slot = blocks[realloc_slots[i]];
    void* const moved = FmempMempProbeReallocate(&memp, slot, realloc_sizes[i]);
    if (moved == nullptr) {
      ++failures;  // slot still holds its block
    } else {
      slot = moved;
    }
  }
  size_t misaligned = 0;
  for (size_t i = 0; i < kProbeOps; ++i) {
    void*& slot = blocks[aligned_slots[i]];
    memp.Free(slot);
    slot =
        FmempMempProbeAllocateAligned(&memp, kProbeAlignment, aligned_sizes[i]);
    if (slot == nullptr) ++failures;
    if (reinterpret_cast<uintptr_t>(slot) % kProbeAlignment != 0) ++misaligned;
  }
  benchmark::DoNotOptimize(blocks.data());

  const MempStats stats = memp.Probe();
  size_t regions_in_use = 0;
  for (const RegionStats& region : memp.ProbeRegions()) {
    if (region.live_blocks > 0) ++regions_in_use;
  }
  const bool checked = memp.Check().ok();
  for (void* block : blocks) memp.Free(block);
  const MempStats after = memp.Probe();
  const bool checked_empty = memp.Check().ok() && after.live_blocks == 0;

  std::printf(
      "probe %s: %zu region(s) of %zu bytes (capacity %zu), %zu live blocks "
      "in %zu region(s); %zu calls each of FmempMempProbeFree, "
      "FmempMempProbeAllocate, FmempMempProbeReallocate, "
      "FmempMempProbeAllocateAligned(%zu); failed allocations %zu (Memp "
      "counted %llu), rejected frees %zu (invalid frees %llu), misaligned "
      "%zu; Check %s, after freeing all %s\n",
      probe.name, probe.regions, probe.region_bytes, stats.capacity_bytes,
      stats.live_blocks, regions_in_use, kProbeOps, kProbeAlignment, failures,
      static_cast<unsigned long long>(after.failed_allocations), rejected_frees,
      static_cast<unsigned long long>(after.invalid_frees), misaligned,
      checked ? "ok" : "FAILED", checked_empty ? "ok" : "FAILED");
  const bool ok = checked && checked_empty && failures == 0 &&
                  after.failed_allocations == 0 && rejected_frees == 0 &&
                  after.invalid_frees == 0 && misaligned == 0;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace fmemp::bench

int main(int argc, char** argv) {
  return fmemp::bench::BenchmarkMain(argc, argv, fmemp::bench::kProbes,
                                     &fmemp::bench::RunProbe,
                                     &fmemp::bench::RegisterBenchmarks);
}
