// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// sync/lock_policy.h
//
// The lock-policy contract that fmemp's front-end is templated on, a scoped
// holder that clang's thread-safety analysis understands, and a trait that
// rejects types that do not fit.
//
// Contract. A lock policy L is a class that
//   * is default-constructible and neither copyable nor movable;
//   * has `void lock()`, `void unlock()` and `bool try_lock()` with the usual
//     meaning (lock blocks until the caller holds it; try_lock takes it only
//     if it is free and says whether it did; unlock releases a lock the
//     caller holds), all noexcept;
//   * is annotated ABSL_LOCKABLE, with ABSL_EXCLUSIVE_LOCK_FUNCTION(),
//     ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) and ABSL_UNLOCK_FUNCTION() on
//     those members, so that `-Wthread-safety` checks ABSL_GUARDED_BY(lock)
//     members of whoever holds one;
//   * declares `static constexpr bool kThreadSafe`: false only for a policy
//     that does not actually exclude other threads (NoLock).
//
// The policies: NoLock (sync/no_lock.h), SpinLock (sync/spin_lock.h) and
// Mutex (sync/mutex.h). Use ScopedLock<L> rather than std::lock_guard, which
// libstdc++ does not annotate and the analysis cannot see.

#ifndef FMEMP_SYNC_LOCK_POLICY_H_
#define FMEMP_SYNC_LOCK_POLICY_H_

#include <type_traits>

#include "absl/base/thread_annotations.h"

namespace fmemp::sync {

namespace internal {

template <typename L, typename = void>
struct HasLockMembers : std::false_type {};

template <typename L>
struct HasLockMembers<L,
                      std::void_t<decltype(std::declval<L&>().lock()),
                                  decltype(std::declval<L&>().unlock()),
                                  decltype(bool{std::declval<L&>().try_lock()}),
                                  decltype(bool{L::kThreadSafe})>>
    : std::bool_constant<noexcept(std::declval<L&>().lock())&& noexcept(
          std::declval<L&>().unlock())&& noexcept(std::declval<L&>()
                                                      .try_lock())> {};

}  // namespace internal

// True when L meets the contract above (as far as the type system can tell;
// the annotations are checked by clang's -Wthread-safety).
template <typename L>
inline constexpr bool kIsLockPolicy =
    internal::HasLockMembers<L>::value&& std::is_default_constructible_v<L> &&
    !std::is_copy_constructible_v<L> && !std::is_move_constructible_v<L>;

// Holds `lock` for the holder's scope. Visible to the thread-safety analysis.
template <typename L>
class ABSL_SCOPED_LOCKABLE ScopedLock {
  static_assert(kIsLockPolicy<L>,
                "L must be a lock policy: see sync/lock_policy.h");

 public:
  explicit ScopedLock(L& lock) ABSL_EXCLUSIVE_LOCK_FUNCTION(lock)
      : lock_(lock) {
    lock_.lock();
  }
  ScopedLock(const ScopedLock&) = delete;
  ScopedLock& operator=(const ScopedLock&) = delete;
  ~ScopedLock() ABSL_UNLOCK_FUNCTION() { lock_.unlock(); }

 private:
  L& lock_;
};

}  // namespace fmemp::sync

#endif  // FMEMP_SYNC_LOCK_POLICY_H_
