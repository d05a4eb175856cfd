// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "bench/compare/callgrind_probe.h"

#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "bench/compare/measure.h"
#include "bench/workload.h"

namespace fmemp::bench::compare {
namespace {

constexpr size_t kCalibrationDumps = 100;
constexpr size_t kWarmUpFactor = 4;
constexpr uint64_t kProbeSeed = 0xca11'9e1d;

// Runs `call` with collection on, then dumps the counts under `label`
// (unless `dump` is false).
template <typename Call>
void Counted(const char* label, bool dump, Call call) {
  CALLGRIND_TOGGLE_COLLECT;
  call();
  CALLGRIND_TOGGLE_COLLECT;
  if (dump) CALLGRIND_DUMP_STATS_AT(label);
}

}  // namespace

// The measured calls, out of line and unmangled so that callgrind_annotate
// shows each one's inclusive count under a fixed name.
extern "C" __attribute__((noinline)) void* FmempCompareProbeMalloc(
    const Instance* a, size_t bytes) {
  return a->Allocate(bytes);
}
extern "C" __attribute__((noinline)) void FmempCompareProbeFree(
    const Instance* a, void* ptr) {
  a->Free(ptr);
}

bool ParseProbeSpec(const std::string& text, ProbeSpec* spec) {
  unsigned long long heap = 0;
  int regions = 0;
  unsigned long long live = 0;
  unsigned long long ops = 0;
  unsigned long long max_bytes = 4096;
  char tail = 0;
  const int n = std::sscanf(text.c_str(), "%llu:%d:%llu:%llu:%llu%c", &heap,
                            &regions, &live, &ops, &max_bytes, &tail);
  if ((n != 4 && n != 5) || regions < 1 || live < 1 || max_bytes < 16) {
    return false;
  }
  const bool dump_each_call = spec->dump_each_call;
  *spec =
      ProbeSpec{HeapSpec{heap, regions}, live, ops, max_bytes, dump_each_call};
  return true;
}

int RunCallgrindProbe(const Contender& c, const ProbeSpec& spec) {
  std::shared_ptr<void> self = c.setup(spec.heap);
  if (self == nullptr) {
    std::fprintf(stderr, "probe: setup of %s failed\n", c.name.c_str());
    return 1;
  }
  const Instance a(c, self);
  const std::vector<size_t> fill =
      RandomSizes(spec.live, spec.max_bytes, kProbeSeed);
  const std::vector<size_t> sizes =
      RandomSizes(spec.ops, spec.max_bytes, kProbeSeed + 1);
  const std::vector<uint32_t> slots =
      RandomSlots(spec.ops, spec.live, kProbeSeed + 2);
  const size_t warm_up = kWarmUpFactor * spec.ops;
  const std::vector<size_t> warm_sizes =
      RandomSizes(warm_up, spec.max_bytes, kProbeSeed + 3);
  const std::vector<uint32_t> warm_slots =
      RandomSlots(warm_up, spec.live, kProbeSeed + 4);
  std::vector<void*> blocks(spec.live, nullptr);
  a.ThreadStart();
  for (size_t i = 0; i < spec.live; ++i) {
    blocks[i] = a.Allocate(fill[i]);
    if (blocks[i] == nullptr) {
      std::fprintf(stderr, "probe: fill allocation %zu failed\n", i);
      return 1;
    }
  }
  bool ok = true;
  for (size_t i = 0; i < warm_up && ok; ++i) {
    void*& slot = blocks[warm_slots[i]];
    a.Free(slot);
    slot = a.Allocate(warm_sizes[i]);
    ok = slot != nullptr;
  }
  const bool dump = spec.dump_each_call;
  for (size_t i = 0; i < kCalibrationDumps && dump; ++i) {
    Counted("empty", dump, [] {});
  }
  for (size_t i = 0; i < spec.ops && ok; ++i) {
    void*& slot = blocks[slots[i]];
    Counted("free", dump, [&] { FmempCompareProbeFree(&a, slot); });
    Counted("malloc", dump,
            [&] { slot = FmempCompareProbeMalloc(&a, sizes[i]); });
    ok = slot != nullptr;
  }
  for (void* block : blocks) a.Free(block);
  a.ThreadEnd();
  if (!ok) std::fprintf(stderr, "probe: an allocation failed\n");
  return ok ? 0 : 1;
}

}  // namespace fmemp::bench::compare
