// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "sync/spin_lock.h"

#include <thread>

namespace fmemp::sync {
namespace {

// Tells the core we are spinning (saves power, frees the sibling hyperthread).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

ABSL_ATTRIBUTE_NOINLINE void SpinLock::LockSlow() noexcept {
  int pause_rounds = 1;
  int looks = 0;
  for (;;) {
    // Test: wait on a plain load until the lock looks free.
    while (locked_.load(std::memory_order_relaxed)) {
      if (++looks >= kSpinsBeforeYield) {
        looks = 0;
        std::this_thread::yield();
        continue;
      }
      for (int i = 0; i < pause_rounds; ++i) CpuRelax();
      if (pause_rounds < kMaxPauseRounds) pause_rounds *= 2;
    }
    // Test-and-set: another waiter may win the race; then wait again.
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

}  // namespace fmemp::sync
