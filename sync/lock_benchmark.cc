// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The lock policies alone, around a critical section about as long as one
// TLSF operation (a few dozen dependent loads and stores on shared data),
// with 1 thread, as many threads as cores, and more threads than cores (the
// case a pure spinlock handles badly: a waiter spins while the holder is
// preempted).
//
//   bazel run -c opt //sync:lock_benchmark -- --benchmark_min_time=0.5
//
// Items per second count critical sections executed by all threads.

#include <cstdint>
#include <mutex>
#include <thread>

#include "benchmark/benchmark.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp::sync {
namespace {

// What the lock protects: a small table the critical section walks, so the
// section has the cost and the cache-line traffic of a heap operation.
struct alignas(64) Shared {
  uint64_t slots[32] = {};
};

template <typename Lock>
struct Fixture {
  Lock lock;
  Shared shared;
};

template <typename Lock>
Fixture<Lock>& TheFixture() {
  static Fixture<Lock> fixture;
  return fixture;
}

template <typename Lock>
void BM_LockedSection(benchmark::State& state) {
  Fixture<Lock>& f = TheFixture<Lock>();
  uint64_t x = static_cast<uint64_t>(state.thread_index()) + 1;
  for (auto _ : state) {
    std::lock_guard<Lock> guard(f.lock);
    for (int i = 0; i < 8; ++i) {
      uint64_t& slot = f.shared.slots[(x + i * 7) & 31];
      slot = slot * 6364136223846793005ull + x;
      x ^= slot >> 17;
    }
    benchmark::DoNotOptimize(x);
  }
  state.SetItemsProcessed(state.iterations());
}

void ThreadCounts(benchmark::internal::Benchmark* b) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  b->Threads(1);
  if (cores > 1) b->Threads(cores);
  b->Threads(cores * 4);  // oversubscribed
  b->UseRealTime();
}

BENCHMARK_TEMPLATE(BM_LockedSection, NoLock)->Threads(1)->UseRealTime();
BENCHMARK_TEMPLATE(BM_LockedSection, SpinLock)->Apply(ThreadCounts);
BENCHMARK_TEMPLATE(BM_LockedSection, Mutex)->Apply(ThreadCounts);
BENCHMARK_TEMPLATE(BM_LockedSection, std::mutex)->Apply(ThreadCounts);

}  // namespace
}  // namespace fmemp::sync

BENCHMARK_MAIN();
