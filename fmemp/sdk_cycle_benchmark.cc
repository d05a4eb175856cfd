// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The SDK's life cycle (zeroed FMemp, FMempInit, use, FMempRemove) timed at
// the start and after 10,000 cycles, per policy: the per-cycle cost must not
// grow (issue 14, failure 4). Figures go to docs/BENCHMARKS.md; the command:
//   bazel run -c opt //fmemp:sdk_cycle_benchmark

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "fmemp/fmemp.h"

namespace {

alignas(64) unsigned char g_buffer[256 << 10];

bool Cycle(FMempPolicy policy) {
  FMemp memp;
  std::memset(&memp, 0, sizeof(memp));
  if (FMempInitWithPolicy(&memp, g_buffer, g_buffer + sizeof(g_buffer),
                          policy) != FMEMP_SUCCESS) {
    return false;
  }
  void* blocks[8];
  for (int k = 0; k < 8; ++k) blocks[k] = FMempMalloc(&memp, 16u << k);
  for (int k = 0; k < 8; k += 2) FMempFree(&memp, blocks[k]);
  FMempRemove(&memp);
  return true;
}

// Cycles per second over `n` cycles.
double Rate(FMempPolicy policy, int n) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    if (!Cycle(policy)) return 0;
  }
  const std::chrono::duration<double> took =
      std::chrono::steady_clock::now() - start;
  return n / took.count();
}

size_t ResidentKiB() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;  // NOLINT(runtime/int): statm
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

}  // namespace

int main() {
  const struct {
    FMempPolicy policy;
    const char* name;
  } policies[] = {{FMEMP_POLICY_MUTEX, "mutex"},
                  {FMEMP_POLICY_SPINLOCK, "spinlock"},
                  {FMEMP_POLICY_SINGLE_THREAD, "single_thread"},
                  {FMEMP_POLICY_THREAD_CACHE, "thread_cache (default)"},
                  {FMEMP_POLICY_THREAD_HEAPS, "thread_heaps"}};
  std::printf("%-24s %14s %14s %12s %12s\n", "policy", "first 2k c/s",
              "after 10k c/s", "RSS before", "RSS after");
  for (const auto& p : policies) {
    const size_t rss_before = ResidentKiB();
    const double first = Rate(p.policy, 2000);
    Rate(p.policy, 10000);
    const double later = Rate(p.policy, 2000);
    std::printf("%-24s %14.0f %14.0f %9zu KiB %9zu KiB\n", p.name, first, later,
                rss_before, ResidentKiB());
  }
  return 0;
}
