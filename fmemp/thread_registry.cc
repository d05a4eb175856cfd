// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/thread_registry.h"

#include <atomic>
#include <new>

#include "fmemp/no_wait_lock.h"

namespace fmemp {

namespace {

std::atomic<uint64_t> next_owner_id{1};

}  // namespace

namespace thread_registry_internal {
// The state used last: the hot path (ThreadStateFor, inline) reads only
// this.
__thread ThreadState* last_used = nullptr;
}  // namespace thread_registry_internal

using thread_registry_internal::last_used;

// Every state of the thread, and the destructor that hands them back. Only
// constructed when a thread registers its first state.
class ThreadStateList {
 public:
  ~ThreadStateList() {
    NoWaitLock hold(&RegistryMutex());
    last_used = nullptr;
    ThreadState* s = head;
    while (s != nullptr) {
      ThreadState* next = s->next_in_thread_;
      if (ThreadStateOwner* owner = s->owner_) {
        owner->OnThreadExit(s);
        // Unlink from the owner's list.
        if (s->prev_in_owner_ != nullptr) {
          s->prev_in_owner_->next_in_owner_ = s->next_in_owner_;
        } else {
          owner->first_ = s->next_in_owner_;
        }
        if (s->next_in_owner_ != nullptr) {
          s->next_in_owner_->prev_in_owner_ = s->prev_in_owner_;
        }
      }
      delete s;
      s = next;
    }
  }
  ThreadState* head = nullptr;
};

namespace {
thread_local ThreadStateList thread_states;
}  // namespace

absl::Mutex& RegistryMutex() {
  // Never destroyed: threads may exit during static destruction.
  static absl::Mutex* mutex = new absl::Mutex;
  return *mutex;
}

ThreadStateOwner::ThreadStateOwner()
    : owner_id_(next_owner_id.fetch_add(1, std::memory_order_relaxed)) {}

ThreadStateOwner::~ThreadStateOwner() = default;

ThreadState* ThreadStateForSlow(const ThreadStateOwner* owner) {
  ThreadState* s = last_used;
  const uint64_t id = owner->owner_id();
  if (s == nullptr) return nullptr;  // no state at all, or none used yet
  for (s = thread_states.head; s != nullptr; s = s->next_in_thread_) {
    if (s->owner_id_ == id) {
      last_used = s;
      return s;
    }
  }
  return nullptr;
}

ThreadState* RegisterThreadState(ThreadStateOwner* owner, ThreadState* state) {
  ThreadStateList& list = thread_states;  // constructs it on first use
  {
    NoWaitLock hold(&RegistryMutex());
    // Drop states orphaned by owners destroyed since, so a long-lived thread
    // that uses many short-lived owners does not accumulate them.
    for (ThreadState** link = &list.head; *link != nullptr;) {
      ThreadState* s = *link;
      if (s->owner_ == nullptr) {
        *link = s->next_in_thread_;
        delete s;
      } else {
        link = &s->next_in_thread_;
      }
    }
    state->owner_id_ = owner->owner_id();
    state->owner_ = owner;
    state->next_in_owner_ = owner->first_;
    if (owner->first_ != nullptr) owner->first_->prev_in_owner_ = state;
    owner->first_ = state;
  }
  state->next_in_thread_ = list.head;
  list.head = state;
  last_used = state;
  return state;
}

void DetachThreadStates(ThreadStateOwner* owner) {
  NoWaitLock hold(&RegistryMutex());
  for (ThreadState* s = owner->first_; s != nullptr;) {
    ThreadState* next = s->next_in_owner_;
    s->owner_ = nullptr;
    s->next_in_owner_ = s->prev_in_owner_ = nullptr;
    s = next;
  }
  owner->first_ = nullptr;
}

void ForEachThreadState(ThreadStateOwner* owner,
                        absl::FunctionRef<void(ThreadState*)> fn) {
  for (ThreadState* s = owner->first_; s != nullptr; s = s->next_in_owner_) {
    fn(s);
  }
}

void LockRegistryForFork() { LockWithoutWaiting(RegistryMutex()); }
void UnlockRegistryAfterFork() { RegistryMutex().Unlock(); }
void ResetRegistryInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  new (&RegistryMutex()) absl::Mutex();
}

}  // namespace fmemp
