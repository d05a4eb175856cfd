// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/asymmetric_barrier.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace fmemp {

namespace {

long SystemMembarrier(int command) {
  return syscall(__NR_membarrier, command, 0, 0);
}

std::atomic<long (*)(int)> membarrier_call{&SystemMembarrier};

long Membarrier(int command) {
  return membarrier_call.load(std::memory_order_relaxed)(command);
}

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

void SetMembarrierCallForTesting(long (*call)(int)) {
  membarrier_call.store(call != nullptr ? call : &SystemMembarrier,
                        std::memory_order_relaxed);
}
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
  if (!HeavyBarrierIsMembarrier()) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return;
  }
  // Once registered, fast sides skip their fence, so a fence here alone
  // would not order them: the system call has to succeed. After
  // registration the kernel documents no failure for this command; a
  // transient one (EINTR, EAGAIN, ENOMEM) is retried, anything else stops
  // the process with a message rather than let a cache drain race.
  constexpr int kAttempts = 100;
  long result = 0;
  int error = 0;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    result = Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    if (result == 0) return;
    error = errno;
    if (error != EINTR && error != EAGAIN && error != ENOMEM) break;
    sched_yield();
  }
  std::fprintf(stderr,
               "fmemp: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed "
               "(errno %d) after registration; per-thread cache drains "
               "cannot be ordered\n",
               error);
  std::abort();
#endif
  // Under TSan both sides use seq_cst accesses instead (kFastSideOrder).
}

}  // namespace fmemp
