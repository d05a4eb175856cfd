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

bool HeavyBarrierIsMembarrier() {
  static const bool registered = RegisterMembarrier();
  return registered;
}

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
