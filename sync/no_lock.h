// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// sync/no_lock.h
//
// NoLock: the lock policy for single-threaded use. Every operation is a no-op
// the compiler removes, so a front-end over NoLock costs nothing for its
// locking. It does not exclude other threads: use it only when one thread at
// a time touches the object (kThreadSafe is false, and fmemp says so).

#ifndef FMEMP_SYNC_NO_LOCK_H_
#define FMEMP_SYNC_NO_LOCK_H_

#include "absl/base/thread_annotations.h"
#include "sync/lock_policy.h"

namespace fmemp::sync {

class ABSL_LOCKABLE NoLock {
 public:
  static constexpr bool kThreadSafe = false;

  NoLock() = default;
  NoLock(const NoLock&) = delete;
  NoLock& operator=(const NoLock&) = delete;

  void lock() noexcept ABSL_EXCLUSIVE_LOCK_FUNCTION() {}
  bool try_lock() noexcept ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return true;
  }
  void unlock() noexcept ABSL_UNLOCK_FUNCTION() {}
};

static_assert(kIsLockPolicy<NoLock>);

}  // namespace fmemp::sync

#endif  // FMEMP_SYNC_NO_LOCK_H_
