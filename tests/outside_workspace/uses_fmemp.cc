// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Built in a workspace of its own (tests/outside_workspace/): the SDK's C API
// by the SDK's header name (@fmemp//fmemp) and the C++ front-end
// (@fmemp//fmemp:memp). Prints what it did and exits non-zero on the first
// failed check; run.sh checks the last line.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "fmemory_pool.h"
#include "fmemp/memp.h"
#include "sync/spin_lock.h"

namespace {

bool Check(bool ok, const char* what) {
  std::printf("%s: %s\n", what, ok ? "ok" : "FAILED");
  return ok;
}

bool UseCApi() {
  static u8 buffer[9000];
  FMemp memp = {};
  if (!Check(FMempInit(&memp, buffer, buffer + sizeof(buffer)) == FMEMP_SUCCESS,
             "C API: FMempInit")) {
    return false;
  }
  void* p = FMempMallocAlign(&memp, 256, 64);
  u32 total = 0, used = 0, peak = 0;
  FMemProbe(&memp, &total, &used, &peak);
  std::printf("C API: used: %u, total: %u, peak: %u\n", used, total, peak);
  bool ok = Check(p != nullptr && reinterpret_cast<uintptr_t>(p) % 64 == 0,
                  "C API: aligned malloc");
  ok &= Check(used > 0 && used <= total, "C API: probe");
  FMempFree(&memp, p);
  FMemProbe(&memp, &total, &used, &peak);
  ok &= Check(used == 0, "C API: free");
  FMempRemove(&memp);
  FMempRelease(&memp);
  return ok;
}

// Four threads swap blocks through shared slots, so most blocks are freed by
// a thread other than the one that allocated them: what the sanitizer
// configs (tsan, asan) of tools/fmemp.bazelrc are run on by run.sh.
bool UseFromThreads() {
  constexpr size_t kBytes = 1 << 20;
  static u8 buffer[kBytes];
  FMemp memp = {};
  if (!Check(FMempInit(&memp, buffer, buffer + kBytes) == FMEMP_SUCCESS,
             "threads: FMempInit")) {
    return false;
  }
  constexpr int kSlots = 256;
  constexpr int kThreads = 4;
  std::vector<std::atomic<void*>> slots(kSlots);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        void* fresh = FMempMalloc(&memp, 16 + (i * 7 + t) % 500);
        if (fresh == nullptr) {
          failed.fetch_add(1);
          continue;
        }
        void* old = slots[(i * 31 + t * 17) % kSlots].exchange(fresh);
        if (old != nullptr) FMempFree(&memp, old);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& slot : slots) {
    if (void* p = slot.exchange(nullptr)) FMempFree(&memp, p);
  }
  FMempDrainThreadCaches(&memp);
  u32 total = 0, used = 0, peak = 0;
  FMemProbe(&memp, &total, &used, &peak);
  bool ok = Check(failed.load() == 0, "threads: every malloc served");
  ok &= Check(used == 0, "threads: all freed");
  FMempRemove(&memp);
  FMempRelease(&memp);
  return ok;
}

bool UseFrontEnd() {
  constexpr size_t kBytes = 64 << 10;
  std::unique_ptr<char[]> region(new char[kBytes]);
  fmemp::Memp<fmemp::sync::SpinLock> memp;
  if (!Check(memp.AddRegion(region.get(), kBytes).ok(), "Memp: AddRegion")) {
    return false;
  }
  void* p = memp.Allocate(100);
  bool ok =
      Check(p != nullptr && memp.Probe().used_bytes > 0, "Memp: Allocate");
  ok &= Check(memp.Free(p) && memp.Probe().used_bytes == 0, "Memp: Free");
  ok &= Check(memp.Check().ok(), "Memp: Check");
  return ok;
}

}  // namespace

int main() {
  const bool c_api_ok = UseCApi();
  const bool threads_ok = UseFromThreads();
  const bool front_end_ok = UseFrontEnd();  // runs whatever the C API did
  const bool ok = c_api_ok && threads_ok && front_end_ok;
  std::printf("%s\n", ok ? "outside workspace: fmemp works" : "FAILED");
  return ok ? 0 : 1;
}
