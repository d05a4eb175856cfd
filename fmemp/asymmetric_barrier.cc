// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/asymmetric_barrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace fmemp {

namespace {

long Membarrier(int command) { return syscall(__NR_membarrier, command, 0, 0); }

bool RegisterMembarrier() {
  if (!kAsymmetricBarrierEnabled) return false;
  const long commands = Membarrier(MEMBARRIER_CMD_QUERY);
  if (commands < 0 || (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
    return false;
  }
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

namespace asymmetric_barrier_internal {
std::atomic<bool> membarrier_registered{false};
}  // namespace asymmetric_barrier_internal

bool HeavyBarrierIsMembarrier() {
  static const bool registered = [] {
    const bool yes = RegisterMembarrier();
    // Only after registration: a fast side that reads true skips its fence,
    // and every slow side then uses membarrier (this function says so).
    asymmetric_barrier_internal::membarrier_registered.store(
        yes, std::memory_order_relaxed);
    return yes;
  }();
  return registered;
}

namespace {
// Decide before main, so LightBarrier's fast form is on from the first call
// and no thread has to take the decision's guard on a hot path.
[[maybe_unused]] const bool decided_at_start = HeavyBarrierIsMembarrier();
}  // namespace

void HeavyBarrier() {
#ifndef FMEMP_INTERNAL_TSAN
  if (HeavyBarrierIsMembarrier() &&
      Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
    return;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  // Under TSan both sides use seq_cst accesses instead (kFastSideOrder).
}

}  // namespace fmemp
