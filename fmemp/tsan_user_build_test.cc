// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// A user's multithreaded program under ThreadSanitizer, built the way a
// user builds it: a plain cc_test, WITHOUT tools/tsan_suppressions.cc (see
// fmemp/BUILD.bazel), so any report from fmemp or the Abseil it uses stops
// it. Threads allocate, free, hand blocks to each other and probe, under
// the default policy (FMempInit) and the pools policy; then threads change
// handlers and create and remove FMemps at once. Run it with
// --config=tsan --runs_per_test=6.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "fmemp/fmemp.h"

namespace {

constexpr int kThreads = 4;
constexpr int kSteps = 20000;
constexpr size_t kRegionBytes = size_t{8} << 20;

int Fail(const char* what) {
  std::fprintf(stderr, "tsan_user_build_test: %s\n", what);
  return 1;
}

// Threads allocate, free their own blocks and every fourth one of the next
// thread's (through a lock-free mailbox), and probe now and then.
int Run(FMempPolicy policy) {
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[kRegionBytes]);
  FMemp memp = {};
  if (FMempInitWithPolicy(&memp, buffer.get(), buffer.get() + kRegionBytes,
                          policy) != FMEMP_SUCCESS) {
    return Fail("init");
  }
  std::atomic<void*> mailbox[kThreads];
  for (auto& m : mailbox) m.store(nullptr);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint32_t seed = 12345u + static_cast<uint32_t>(t);
      std::vector<void*> live;
      for (int step = 0; step < kSteps; ++step) {
        seed = seed * 1664525u + 1013904223u;
        void* p = FMempMalloc(&memp, 16 + (seed >> 8) % 1000);
        if (p == nullptr) {
          errors.fetch_add(1);
          continue;
        }
        static_cast<uint8_t*>(p)[0] = static_cast<uint8_t>(t);
        if (step % 4 == 0) {
          // Hand it to the next thread; free what it handed to us.
          void* old = mailbox[(t + 1) % kThreads].exchange(
              p, std::memory_order_acq_rel);
          if (old != nullptr) FMempFree(&memp, old);
          void* mine = mailbox[t].exchange(nullptr, std::memory_order_acq_rel);
          if (mine != nullptr) FMempFree(&memp, mine);
        } else {
          live.push_back(p);
        }
        if (live.size() > 64) {
          FMempFree(&memp, live.front());
          live.erase(live.begin());
        }
        if (step % 64 == 0) {
          FMempUsage usage;
          if (FMempProbe64(&memp, &usage) != FMEMP_SUCCESS) errors.fetch_add(1);
          u32 total, used, peak;
          FMemProbe(&memp, &total, &used, &peak);
        }
      }
      for (void* p : live) FMempFree(&memp, p);
    });
  }
  for (auto& t : threads) t.join();
  for (auto& m : mailbox) {
    if (void* p = m.exchange(nullptr)) FMempFree(&memp, p);
  }
  const bool ok = errors.load() == 0 && FMempCheck(&memp) == FMEMP_SUCCESS;
  FMempRemove(&memp);
  FMempRelease(&memp);
  return ok ? 0 : Fail("errors or a failed check");
}

int IgnoreOom(void* /*user*/, fsize_t /*size*/, fsize_t /*align*/) { return 0; }
void IgnoreMisuse(void* /*user*/, int /*kind*/, const void* /*ptr*/) {}

// Threads contend on the C API's management locks: each changes the shared
// FMemp's handlers (its admin_ mutex) and creates and removes FMemps of its
// own (the fork handlers' registry of FMemps), while allocating.
int RunManagement() {
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[kRegionBytes]);
  FMemp shared = {};
  if (FMempInit(&shared, buffer.get(), buffer.get() + kRegionBytes) !=
      FMEMP_SUCCESS) {
    return Fail("init");
  }
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      constexpr size_t kOwnBytes = 64 << 10;
      std::unique_ptr<uint8_t[]> own(new uint8_t[kOwnBytes]);
      for (int step = 0; step < 2000; ++step) {
        if (FMempSetOomHandler(&shared, &IgnoreOom, nullptr) != FMEMP_SUCCESS ||
            FMempSetErrorHandler(&shared,
                                 (step + t) % 2 ? &IgnoreMisuse : nullptr,
                                 nullptr) != FMEMP_SUCCESS) {
          errors.fetch_add(1);
        }
        FMemp mine = {};
        if (FMempInit(&mine, own.get(), own.get() + kOwnBytes) !=
            FMEMP_SUCCESS) {
          errors.fetch_add(1);
          continue;
        }
        FMempFree(&mine, FMempMalloc(&mine, 32));
        FMempFree(&shared, FMempMalloc(&shared, 48));
        FMempRemove(&mine);
        FMempRelease(&mine);
      }
    });
  }
  for (auto& t : threads) t.join();
  const bool ok = errors.load() == 0 && FMempCheck(&shared) == FMEMP_SUCCESS;
  FMempRemove(&shared);
  FMempRelease(&shared);
  return ok ? 0 : Fail("errors or a failed check (management)");
}

}  // namespace

int main() {
  if (int rc = Run(FMEMP_POLICY_THREAD_CACHE)) return rc;
  if (int rc = Run(FMEMP_POLICY_THREAD_HEAPS)) return rc;
  if (int rc = RunManagement()) return rc;
  std::printf("tsan_user_build_test: ok\n");
  return 0;
}
