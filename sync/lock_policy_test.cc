// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the lock-policy contract and of every policy: the trait accepts
// the policies and rejects misfits; thread-safe policies exclude each other
// under contention (a data race here is reported by --config=tsan); try_lock
// fails while another thread holds the lock.

#include "sync/lock_policy.h"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp::sync {
namespace {

// --- The trait ---

struct NoTryLock {
  static constexpr bool kThreadSafe = true;
  void lock() noexcept {}
  void unlock() noexcept {}
};
struct Copyable {
  static constexpr bool kThreadSafe = true;
  void lock() noexcept {}
  bool try_lock() noexcept { return true; }
  void unlock() noexcept {}
};
struct NoSafetyFlag {
  NoSafetyFlag() = default;
  NoSafetyFlag(const NoSafetyFlag&) = delete;
  void lock() noexcept {}
  bool try_lock() noexcept { return true; }
  void unlock() noexcept {}
};
struct Throwing {
  static constexpr bool kThreadSafe = true;
  Throwing() = default;
  Throwing(const Throwing&) = delete;
  void lock() {}
  bool try_lock() { return true; }
  void unlock() {}
};

static_assert(kIsLockPolicy<NoLock>);
static_assert(kIsLockPolicy<SpinLock>);
static_assert(kIsLockPolicy<Mutex>);
static_assert(!kIsLockPolicy<NoTryLock> && NoTryLock::kThreadSafe);
static_assert(!kIsLockPolicy<Copyable>);
static_assert(!kIsLockPolicy<NoSafetyFlag>);
static_assert(!kIsLockPolicy<Throwing>);
static_assert(!kIsLockPolicy<std::mutex>, "no kThreadSafe, not noexcept");
static_assert(!kIsLockPolicy<int>);
static_assert(!NoLock::kThreadSafe && SpinLock::kThreadSafe &&
              Mutex::kThreadSafe);
static_assert(alignof(SpinLock) == kCacheLineSize);

// --- Every policy ---

template <typename L>
class LockPolicyTest : public ::testing::Test {};

using Policies = ::testing::Types<NoLock, SpinLock, Mutex>;
TYPED_TEST_SUITE(LockPolicyTest, Policies);

// A counter guarded by a policy, so that -Wthread-safety checks the test too.
template <typename L>
struct Guarded {
  L lock;
  int64_t value ABSL_GUARDED_BY(lock) = 0;
};

TYPED_TEST(LockPolicyTest, LockUnlockAndScopedLock) {
  Guarded<TypeParam> guarded;
  {
    ScopedLock<TypeParam> hold(guarded.lock);
    guarded.value = 1;
  }
  guarded.lock.lock();
  EXPECT_EQ(guarded.value, 1);
  guarded.lock.unlock();
  if (guarded.lock.try_lock()) {
    guarded.value = 2;
    guarded.lock.unlock();
  } else {
    ADD_FAILURE() << "try_lock failed on a free lock";
  }
}

TYPED_TEST(LockPolicyTest, ExcludesOtherThreads) {
  if constexpr (!TypeParam::kThreadSafe) {
    GTEST_SKIP() << "NoLock does not exclude threads, by contract";
  } else {
    Guarded<TypeParam> guarded;
    constexpr int kThreads = 4;
    constexpr int kIterations = 20000;
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&guarded] {
        for (int i = 0; i < kIterations; ++i) {
          ScopedLock<TypeParam> hold(guarded.lock);
          // Non-atomic read-modify-write: lost updates if exclusion fails.
          const int64_t seen = guarded.value;
          guarded.value = seen + 1;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    ScopedLock<TypeParam> hold(guarded.lock);
    EXPECT_EQ(guarded.value, int64_t{kThreads} * kIterations);
  }
}

TYPED_TEST(LockPolicyTest, TryLockFailsWhileAnotherThreadHoldsIt) {
  if constexpr (!TypeParam::kThreadSafe) {
    GTEST_SKIP() << "NoLock::try_lock always succeeds, by contract";
  } else {
    TypeParam lock;
    absl::Notification held, release;
    std::thread holder([&] {
      lock.lock();
      held.Notify();
      release.WaitForNotification();
      lock.unlock();
    });
    held.WaitForNotification();
    EXPECT_FALSE(lock.try_lock());
    release.Notify();
    holder.join();
    if (lock.try_lock()) {
      lock.unlock();
    } else {
      ADD_FAILURE() << "try_lock failed after the holder released";
    }
  }
}

// A waiter that spins long enough to yield still gets the lock once the
// holder lets go, and sees the holder's writes (acquire/release).
TEST(SpinLockTest, WaiterAcquiresAfterLongHold) {
  SpinLock lock;
  int payload = 0;  // written under the lock by the holder
  absl::Notification held;
  std::atomic<bool> waiter_done{false};
  lock.lock();
  std::thread waiter([&] {
    held.Notify();
    lock.lock();
    EXPECT_EQ(payload, 42);
    lock.unlock();
    waiter_done.store(true);
  });
  held.WaitForNotification();
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  EXPECT_FALSE(waiter_done.load());
  payload = 42;
  lock.unlock();
  waiter.join();
  EXPECT_TRUE(waiter_done.load());
  EXPECT_FALSE(lock.IsLockedForTesting());
}

}  // namespace
}  // namespace fmemp::sync
