// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/thread_registry.h"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>

#include "fmemp/no_wait_lock.h"

namespace fmemp {

namespace {

std::atomic<uint64_t> next_owner_id{1};

// Bumped in every fork child: an owner's pins from before (by threads the
// child lacks) no longer count.
std::atomic<uint32_t> fork_epoch{0};

// ThreadStateOwner::exits_in_flight_'s word: the fork epoch in the high 32
// bits, the pins taken in that epoch in the low 32.
constexpr uint64_t kPinMask = 0xffffffffu;
uint64_t PinWord(uint32_t epoch, uint64_t pins) {
  return (uint64_t{epoch} << 32) | pins;
}
// Counts one more exiting thread in an owner's `word`
// (ThreadStateOwner::exits_in_flight_). REQUIRES: RegistryMutex() held.
void Pin(std::atomic<uint64_t>& word) {
  const uint32_t epoch = fork_epoch.load(std::memory_order_relaxed);
  const uint64_t seen = word.load(std::memory_order_relaxed);
  if (seen >> 32 != epoch) {
    word.store(PinWord(epoch, 1), std::memory_order_relaxed);
  } else {
    word.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

namespace thread_registry_internal {
// The state used last: the hot path (ThreadStateFor, inline) reads only
// this.
__thread ThreadState* last_used = nullptr;
}  // namespace thread_registry_internal

using thread_registry_internal::last_used;

namespace {

// Every state of the calling thread (all owners), linked through
// next_in_thread_; touched only by the thread. `__thread`, a plain pointer:
// no C++ destructor runs for it (the pthread key below hands the states
// back, after every thread_local destructor of the thread).
__thread ThreadState* thread_head = nullptr;

// The key whose destructor hands a thread's states back. Its value is a
// non-null marker while the thread has states, so that the destructor runs.
pthread_key_t ExitKey() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, &HandBackThreadStates) != 0) {
      std::fputs("fmemp: pthread_key_create failed\n", stderr);
      std::abort();
    }
    return k;
  }();
  return key;
}

}  // namespace

struct RegistryInternals {
  // Unlinks `s` from its owner's list. REQUIRES: RegistryMutex() held and
  // s->owner_ == owner.
  static void UnlinkFromOwner(ThreadState* s, ThreadStateOwner* owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(RegistryMutex()) {
    RegistryMutex().AssertHeld();
    if (s->prev_in_owner_ != nullptr) {
      s->prev_in_owner_->next_in_owner_ = s->next_in_owner_;
    } else {
      owner->first_ = s->next_in_owner_;
    }
    if (s->next_in_owner_ != nullptr) {
      s->next_in_owner_->prev_in_owner_ = s->prev_in_owner_;
    }
    s->owner_ = nullptr;
    s->next_in_owner_ = s->prev_in_owner_ = nullptr;
  }
  static size_t CountOfThisThread() {
    size_t n = 0;
    for (ThreadState* s = thread_head; s != nullptr; s = s->next_in_thread_) {
      ++n;
    }
    return n;
  }
};

void HandBackThreadStates(void* /*unused*/) {
  // The owners whose AfterThreadExit runs once the lock is released, each
  // pinned (exits_in_flight_) so that it outlives the call. A thread holds
  // one state per owner: no owner appears twice.
  ThreadStateOwner* after[kMaxOwnersAfterExit];
  size_t count = 0;
  {
    NoWaitLock hold(&RegistryMutex());
    // Empty the thread's list first: whatever the hooks below do, they find
    // no state of this thread (a new one would be registered afresh).
    ThreadState* s = thread_head;
    thread_head = nullptr;
    last_used = nullptr;
    while (s != nullptr) {
      ThreadState* const next = s->next_in_thread_;
      if (ThreadStateOwner* owner = s->owner_) {
        owner->OnThreadExit(s);
        RegistryInternals::UnlinkFromOwner(s, owner);
        if (count < kMaxOwnersAfterExit) {
          Pin(owner->exits_in_flight_);
          after[count++] = owner;
        } else {
          owner->AfterThreadExit();
        }
      }
      delete s;
      s = next;
    }
  }
  // (A fork meanwhile leaves these pins behind in the child, where they no
  // longer count; here, in this process, the epoch has not changed.)
  for (size_t i = 0; i < count; ++i) {
    after[i]->AfterThreadExit();
    after[i]->exits_in_flight_.fetch_sub(1, std::memory_order_release);
  }
}

absl::Mutex& RegistryMutex() {
  // In static storage and never destroyed: threads may exit during static
  // destruction. Placement new, not operator new (which may be an FMemp).
  alignas(absl::Mutex) static unsigned char storage[sizeof(absl::Mutex)];
  static absl::Mutex* const mutex = ::new (storage) absl::Mutex;
  return *mutex;
}

ThreadStateOwner::ThreadStateOwner()
    : owner_id_(next_owner_id.fetch_add(1, std::memory_order_relaxed)) {
  // Create the key now, not inside some thread's first registration.
  ExitKey();
}

ThreadStateOwner::~ThreadStateOwner() = default;

ThreadState* ThreadStateForSlow(const ThreadStateOwner* owner) {
  const uint64_t id = owner->owner_id();
  for (ThreadState* s = thread_head; s != nullptr; s = s->next_in_thread_) {
    if (s->owner_id_ == id) {
      last_used = s;
      return s;
    }
  }
  return nullptr;
}

ThreadState* RegisterThreadState(ThreadStateOwner* owner, ThreadState* state) {
  ThreadState* orphans = nullptr;
  {
    NoWaitLock hold(&RegistryMutex());
    // Take out states orphaned by owners destroyed since, so a long-lived
    // thread that uses many short-lived owners does not accumulate them.
    for (ThreadState** link = &thread_head; *link != nullptr;) {
      ThreadState* s = *link;
      if (s->owner_ == nullptr) {
        *link = s->next_in_thread_;
        if (last_used == s) last_used = nullptr;
        s->next_in_thread_ = orphans;
        orphans = s;
      } else {
        link = &s->next_in_thread_;
      }
    }
    state->owner_id_ = owner->owner_id();
    state->owner_ = owner;
    state->next_in_owner_ = owner->first_;
    state->prev_in_owner_ = nullptr;
    if (owner->first_ != nullptr) owner->first_->prev_in_owner_ = state;
    owner->first_ = state;
  }
  while (orphans != nullptr) {
    ThreadState* const next = orphans->next_in_thread_;
    delete orphans;
    orphans = next;
  }
  state->next_in_thread_ = thread_head;
  thread_head = state;
  last_used = state;
  // Arms (or re-arms, inside a key destructor round) the exit hook. Our key
  // is among the first few a process creates, so its value lives in the
  // thread's static key array and setting it does not allocate.
  pthread_setspecific(ExitKey(), reinterpret_cast<void*>(uintptr_t{1}));
  return state;
}

void DetachThreadStates(ThreadStateOwner* owner) {
  {
    NoWaitLock hold(&RegistryMutex());
    for (ThreadState* s = owner->first_; s != nullptr;) {
      ThreadState* next = s->next_in_owner_;
      s->owner_ = nullptr;
      s->next_in_owner_ = s->prev_in_owner_ = nullptr;
      s = next;
    }
    owner->first_ = nullptr;
  }
  // No exiting thread pins the owner from now on (it finds no state of
  // it); wait for those that did.
  while (true) {
    const uint64_t word =
        owner->exits_in_flight_.load(std::memory_order_acquire);
    if ((word & kPinMask) == 0 ||
        word >> 32 != fork_epoch.load(std::memory_order_relaxed)) {
      return;
    }
    std::this_thread::yield();
  }
}

size_t ThreadStateCountOfThisThread() {
  return RegistryInternals::CountOfThisThread();
}

void ForEachThreadState(ThreadStateOwner* owner,
                        absl::FunctionRef<void(ThreadState*)> fn) {
  RegistryMutex().AssertHeld();
  for (ThreadState* s = owner->first_; s != nullptr; s = s->next_in_owner_) {
    fn(s);
  }
}

void LockRegistryForFork() { LockWithoutWaiting(RegistryMutex()); }
void UnlockRegistryAfterFork() { RegistryMutex().Unlock(); }
void ResetRegistryInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ::new (&RegistryMutex()) absl::Mutex();
  // Pins taken by the parent's exiting threads, which the child lacks, no
  // longer count (see ThreadStateOwner::exits_in_flight_).
  fork_epoch.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace fmemp
