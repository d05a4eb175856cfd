// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/no_wait_lock.h
//
// NoWaitLock: a scoped lock of an absl::Mutex that never waits inside
// Abseil. It spins on TryLock, yielding the CPU between tries. The thread
// registry's mutex, a cache's drain mutex, the cache front-end's handler
// mutex, the thread-heap front-end's bindings and handlers, the C API's admin_
// and the fork registry's mutex are taken this way; only the MUTEX
// policy's lock blocks.
//
// Why: when a thread blocks on a contended absl::Mutex, Abseil creates the
// thread's identity (mmap) and the unlocking thread later writes into it
// (Waiter::Post). Abseil hides that hand-off from ThreadSanitizer, which
// then reports a data race (google/sanitizers#953, abseil/abseil-cpp#217):
// a false positive, but one a user's TSan build of a program that uses
// fmemp would stop on, without the suppression this project's own tests
// carry. A mutex that no thread ever waits on has no waiter to post to, so
// the pattern never arises; TSan still sees the mutex (Abseil annotates
// Lock/TryLock/Unlock), so real races are still reported.
//
// Use it only for short critical sections taken rarely (registration,
// thread exit, probes, drains, binding): a waiter burns its time slice
// yielding instead of sleeping. Never mix it with blocking Lock() on the
// same mutex (a blocking waiter would bring the pattern back).
//
// Thread safety: as absl::MutexLock; Clang's thread-safety analysis sees
// it as a scoped exclusive lock.

#ifndef FMEMP_FMEMP_NO_WAIT_LOCK_H_
#define FMEMP_FMEMP_NO_WAIT_LOCK_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fmemp {

// Takes `mu` without ever waiting inside Abseil (see above).
inline void LockWithoutWaiting(absl::Mutex& mu)
    ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) {
  while (!mu.TryLock()) std::this_thread::yield();
}

class ABSL_SCOPED_LOCKABLE NoWaitLock {
 public:
  explicit NoWaitLock(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    LockWithoutWaiting(*mu);
  }
  NoWaitLock(const NoWaitLock&) = delete;
  NoWaitLock& operator=(const NoWaitLock&) = delete;
  ~NoWaitLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  absl::Mutex* const mu_;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_NO_WAIT_LOCK_H_
