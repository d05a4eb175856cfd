// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Built outside fmemp's tree against an installed fmemp (find_package, see
// CMakeLists.txt here): the SDK's C API by its SDK header name, from several
// threads that free each other's blocks, under each thread-safe policy, and
// the C++ front-end (fmemp::Memp, which brings Abseil's Status through
// fmemp::fmemp). Prints what it checked; the last line is
// "cmake consumer: fmemp works" only if every check passed.

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "fmemory_pool.h"
#include "fmemp/memp.h"
#include "sync/mutex.h"

namespace {

bool Check(bool ok, const char* what, const char* policy) {
  std::printf("%s: %s: %s\n", policy, what, ok ? "ok" : "FAILED");
  return ok;
}

// kThreads threads put fresh blocks into shared slots and free whatever
// block they take out, so most blocks are freed by another thread than the
// one that allocated them. Afterwards nothing may be in use.
bool CrossThreadFrees(FMempPolicy policy, const char* name) {
  constexpr size_t kBytes = 1 << 20;
  std::unique_ptr<u8[]> buffer(new u8[kBytes]);
  FMemp memp = {};
  if (!Check(FMempInitWithPolicy(&memp, buffer.get(), buffer.get() + kBytes,
                                 policy) == FMEMP_SUCCESS,
             "FMempInitWithPolicy", name)) {
    return false;
  }
  constexpr int kSlots = 128;
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::atomic<void*>> slots(kSlots);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        void* fresh = FMempMalloc(&memp, 16 + (i * 13 + t * 7) % 700);
        if (fresh == nullptr) {
          failed.fetch_add(1);
          continue;
        }
        void* old = slots[(i * 31 + t * 17) % kSlots].exchange(fresh);
        if (old != nullptr) FMempFree(&memp, old);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::atomic<void*>& slot : slots) {
    if (void* p = slot.exchange(nullptr)) FMempFree(&memp, p);
  }
  FMempDrainThreadCaches(&memp);
  FMempUsage usage = {};
  bool ok =
      Check(FMempProbe64(&memp, &usage) == FMEMP_SUCCESS, "FMempProbe64", name);
  std::printf(
      "%s: %d threads x %d blocks, peak %llu bytes, now used %llu, "
      "live blocks %llu\n",
      name, kThreads, kRounds, static_cast<unsigned long long>(usage.max_used),
      static_cast<unsigned long long>(usage.used),
      static_cast<unsigned long long>(usage.live_blocks));
  ok &= Check(failed.load() == 0, "every malloc served", name);
  ok &=
      Check(usage.used == 0 && usage.live_blocks == 0, "usage back to 0", name);
  ok &= Check(FMempCheck(&memp) == FMEMP_SUCCESS, "FMempCheck", name);
  FMempRemove(&memp);
  return ok;
}

bool FrontEnd() {
  constexpr size_t kBytes = 64 << 10;
  std::unique_ptr<char[]> region(new char[kBytes]);
  fmemp::Memp<fmemp::sync::Mutex> memp;
  if (!Check(memp.AddRegion(region.get(), kBytes).ok(), "AddRegion", "Memp")) {
    return false;
  }
  void* p = memp.Allocate(100);
  bool ok =
      Check(p != nullptr && memp.Probe().used_bytes > 0, "Allocate", "Memp");
  ok &= Check(memp.Free(p) && memp.Probe().used_bytes == 0, "Free", "Memp");
  ok &= Check(memp.Check().ok(), "Check", "Memp");
  return ok;
}

}  // namespace

int main() {
  bool ok = CrossThreadFrees(FMEMP_POLICY_MUTEX, "mutex");
  ok &= CrossThreadFrees(FMEMP_POLICY_SPINLOCK, "spinlock");
  ok &= CrossThreadFrees(FMEMP_POLICY_THREAD_CACHE, "thread_cache");
  ok &= CrossThreadFrees(FMEMP_POLICY_THREAD_HEAPS, "thread_heaps");
  ok &= FrontEnd();
  std::printf("%s\n", ok ? "cmake consumer: fmemp works" : "FAILED");
  return ok ? 0 : 1;
}
