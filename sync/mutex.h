// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// sync/mutex.h
//
// Mutex: the lock policy over absl::Mutex. It spins briefly and then blocks
// in the kernel, so it is the safe default when critical sections may be
// long or threads outnumber cores. Abseil's deadlock detection and TSan
// support come with it (Abseil is built from source here, so TSan sees it).

#ifndef FMEMP_SYNC_MUTEX_H_
#define FMEMP_SYNC_MUTEX_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "sync/lock_policy.h"

namespace fmemp::sync {

class ABSL_LOCKABLE Mutex {
 public:
  static constexpr bool kThreadSafe = true;

  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() noexcept ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.Lock(); }
  bool try_lock() noexcept ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return mu_.TryLock();
  }
  void unlock() noexcept ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }

 private:
  absl::Mutex mu_;
};

static_assert(kIsLockPolicy<Mutex>);

}  // namespace fmemp::sync

#endif  // FMEMP_SYNC_MUTEX_H_
