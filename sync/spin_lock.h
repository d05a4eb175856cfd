// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// sync/spin_lock.h
//
// SpinLock: a test-and-test-and-set lock for very short critical sections,
// such as one TLSF operation. Prefer Mutex (sync/mutex.h) when the holder may
// block, run long, or when threads outnumber cores by far: a spinning waiter
// burns its core.
//
// Guarantees
// * lock(): one atomic exchange when uncontended. Under contention waiters
//   spin on a plain load (no cache-line ping-pong), pausing with the CPU's
//   spin hint for an exponentially growing number of rounds up to
//   kMaxPauseRounds, and yield the CPU after kSpinsBeforeYield failed looks,
//   so a preempted holder gets to run.
// * Acquire on lock, release on unlock, no stand-alone fences: correct under
//   the C++ memory model and understood by ThreadSanitizer as is.
// * Not fair and not recursive. One SpinLock fills a cache line of its own, so
//   neighbouring data does not false-share with it.

#ifndef FMEMP_SYNC_SPIN_LOCK_H_
#define FMEMP_SYNC_SPIN_LOCK_H_

#include <atomic>
#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "sync/lock_policy.h"

namespace fmemp::sync {

// The cache-line size the lock is padded to (x86-64 and most Arm cores).
inline constexpr size_t kCacheLineSize = 64;

class ABSL_LOCKABLE alignas(kCacheLineSize) SpinLock {
 public:
  static constexpr bool kThreadSafe = true;
  static constexpr int kMaxPauseRounds = 64;
  static constexpr int kSpinsBeforeYield = 100;

  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() noexcept ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    LockSlow();
  }

  bool try_lock() noexcept ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept ABSL_UNLOCK_FUNCTION() {
    locked_.store(false, std::memory_order_release);
  }

  // For assertions and tests only: racy by nature.
  bool IsLockedForTesting() const noexcept {
    return locked_.load(std::memory_order_relaxed);
  }

 private:
  void LockSlow() noexcept;

  std::atomic<bool> locked_{false};
};

static_assert(sizeof(SpinLock) == kCacheLineSize);
static_assert(kIsLockPolicy<SpinLock>);

}  // namespace fmemp::sync

#endif  // FMEMP_SYNC_SPIN_LOCK_H_
