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

constexpr size_t kMaxProbeSize = 4096;
constexpr size_t kCalibrationDumps = 100;
constexpr uint64_t kProbeSeed = 0xca11'9e1d;

// Runs `call` with collection on, then dumps the counts under `label`.
template <typename Call>
void Counted(const char* label, Call call) {
  CALLGRIND_TOGGLE_COLLECT;
  call();
  CALLGRIND_TOGGLE_COLLECT;
  CALLGRIND_DUMP_STATS_AT(label);
}

}  // namespace

bool ParseProbeSpec(const std::string& text, ProbeSpec* spec) {
  unsigned long long heap = 0;
  int regions = 0;
  unsigned long long live = 0;
  unsigned long long ops = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%llu:%d:%llu:%llu%c", &heap, &regions, &live,
                  &ops, &tail) != 4 ||
      regions < 1 || live < 1) {
    return false;
  }
  *spec = ProbeSpec{HeapSpec{heap, regions}, live, ops};
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
      RandomSizes(spec.live, kMaxProbeSize, kProbeSeed);
  const std::vector<size_t> sizes =
      RandomSizes(spec.ops, kMaxProbeSize, kProbeSeed + 1);
  const std::vector<uint32_t> slots =
      RandomSlots(spec.ops, spec.live, kProbeSeed + 2);
  std::vector<void*> blocks(spec.live, nullptr);
  a.ThreadStart();
  for (size_t i = 0; i < spec.live; ++i) {
    blocks[i] = a.Allocate(fill[i]);
    if (blocks[i] == nullptr) {
      std::fprintf(stderr, "probe: fill allocation %zu failed\n", i);
      return 1;
    }
  }
  for (size_t i = 0; i < kCalibrationDumps; ++i) Counted("empty", [] {});
  bool ok = true;
  for (size_t i = 0; i < spec.ops && ok; ++i) {
    void*& slot = blocks[slots[i]];
    Counted("free", [&] { a.Free(slot); });
    Counted("malloc", [&] { slot = a.Allocate(sizes[i]); });
    ok = slot != nullptr;
  }
  for (void* block : blocks) a.Free(block);
  a.ThreadEnd();
  if (!ok) std::fprintf(stderr, "probe: an allocation failed\n");
  return ok ? 0 : 1;
}

}  // namespace fmemp::bench::compare
