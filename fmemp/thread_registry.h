// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/thread_registry.h
//
// State that one thread keeps for one front-end (a per-thread cache, a
// per-thread pool), found in O(1) on the hot path and handed back to its
// front-end when the thread exits.
//
//   class MyFrontEnd : public ThreadStateOwner {
//     void OnThreadExit(ThreadState* state) override;  // give it back
//   };
//   ThreadState* s = ThreadStateFor(this);  // nullptr: none yet
//   if (s == nullptr) s = RegisterThreadState(this, new MyState);
//
// Guarantees
// * ThreadStateFor is O(1) when the thread last used the same owner (one
//   thread-local load and compare, inline), O(owners the thread used)
//   otherwise (out of line). It takes no lock and no atomic
//   read-modify-write.
// * When a thread exits, OnThreadExit runs for each of its states whose
//   owner still exists, under RegistryMutex(), and the state is deleted.
// * An owner's destructor must call DetachThreadStates(this): states of
//   threads still running are orphaned (never passed to the owner again)
//   and deleted when their threads exit.
// * RegistryMutex() also guards ForEachThreadState, so an owner can visit
//   every thread's state (e.g. to drain caches) while none exits.

#ifndef FMEMP_FMEMP_THREAD_REGISTRY_H_
#define FMEMP_FMEMP_THREAD_REGISTRY_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace fmemp {

class ThreadState;

// The process-wide lock over every owner's list of thread states. Lock
// order: this mutex before any front-end lock.
absl::Mutex& RegistryMutex();

class ThreadStateOwner {
 public:
  ThreadStateOwner();
  ThreadStateOwner(const ThreadStateOwner&) = delete;
  ThreadStateOwner& operator=(const ThreadStateOwner&) = delete;

  // Unique for the life of the process (addresses are reused; ids are not).
  uint64_t owner_id() const { return owner_id_; }

  // Called on the exiting thread, under RegistryMutex(), for `state` (which
  // belongs to this owner); the registry deletes the state afterwards.
  virtual void OnThreadExit(ThreadState* state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(RegistryMutex()) = 0;

 protected:
  ~ThreadStateOwner();

 private:
  friend class ThreadState;
  friend class ThreadStateList;
  friend ThreadState* RegisterThreadState(ThreadStateOwner*, ThreadState*);
  friend void DetachThreadStates(ThreadStateOwner*);
  friend void ForEachThreadState(ThreadStateOwner*,
                                 absl::FunctionRef<void(ThreadState*)>);
  const uint64_t owner_id_;
  ThreadState* first_ ABSL_GUARDED_BY(RegistryMutex()) = nullptr;
};

// Base of per-thread state. Owned by its thread.
class ThreadState {
 public:
  ThreadState() = default;
  ThreadState(const ThreadState&) = delete;
  ThreadState& operator=(const ThreadState&) = delete;
  virtual ~ThreadState() = default;

  uint64_t owner_id() const { return owner_id_; }

 private:
  friend ThreadState* LastUsedThreadStateFor(const ThreadStateOwner*);
  friend ThreadState* ThreadStateForSlow(const ThreadStateOwner*);
  friend ThreadState* RegisterThreadState(ThreadStateOwner*, ThreadState*);
  friend void DetachThreadStates(ThreadStateOwner*);
  friend void ForEachThreadState(ThreadStateOwner*,
                                 absl::FunctionRef<void(ThreadState*)>);
  friend class ThreadStateList;

  uint64_t owner_id_ = 0;
  ThreadStateOwner* owner_ ABSL_GUARDED_BY(RegistryMutex()) = nullptr;
  // The owner's list (all threads), under RegistryMutex().
  ThreadState* next_in_owner_ ABSL_GUARDED_BY(RegistryMutex()) = nullptr;
  ThreadState* prev_in_owner_ ABSL_GUARDED_BY(RegistryMutex()) = nullptr;
  // The thread's list (all owners), touched only by the thread.
  ThreadState* next_in_thread_ = nullptr;
};

namespace thread_registry_internal {
// The state the calling thread used last, or nullptr; read and written only
// by its thread. `__thread` rather than `thread_local`: a pointer needs no
// initialisation guard, and an extern `thread_local` would be read through
// a TLS wrapper call on every access.
extern __thread ThreadState* last_used;
}  // namespace thread_registry_internal

// The calling thread's state for `owner` when it is not the one it used
// last (see ThreadStateFor).
ThreadState* ThreadStateForSlow(const ThreadStateOwner* owner);

// The calling thread's state for `owner` if the thread used that state
// last (the common case), else nullptr (then ask ThreadStateFor). Makes no
// call, for hot paths that keep everything else out of line.
inline ThreadState* LastUsedThreadStateFor(const ThreadStateOwner* owner) {
  ThreadState* const s = thread_registry_internal::last_used;
  return s != nullptr && s->owner_id_ == owner->owner_id() ? s : nullptr;
}

// The calling thread's state for `owner`, or nullptr.
inline ThreadState* ThreadStateFor(const ThreadStateOwner* owner) {
  if (ThreadState* s = LastUsedThreadStateFor(owner)) return s;
  return ThreadStateForSlow(owner);
}

// Makes `state` the calling thread's state for `owner` (which must have
// none) and returns it. Takes RegistryMutex().
ThreadState* RegisterThreadState(ThreadStateOwner* owner, ThreadState* state)
    ABSL_LOCKS_EXCLUDED(RegistryMutex());

// For the owner's destructor: orphans every thread's state for `owner`.
void DetachThreadStates(ThreadStateOwner* owner)
    ABSL_LOCKS_EXCLUDED(RegistryMutex());

// Calls `fn` for every live thread's state for `owner`.
// REQUIRES: RegistryMutex() held.
void ForEachThreadState(ThreadStateOwner* owner,
                        absl::FunctionRef<void(ThreadState*)> fn)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(RegistryMutex());

// Fork support: lock the registry across fork() so a child never inherits
// it held by a thread that does not exist there.
void LockRegistryForFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(RegistryMutex());
void UnlockRegistryAfterFork() ABSL_UNLOCK_FUNCTION(RegistryMutex());
// In the child: a fresh registry lock (the old one may be mid-update by a
// thread the child does not have).
void ResetRegistryInForkChild();

}  // namespace fmemp

#endif  // FMEMP_FMEMP_THREAD_REGISTRY_H_
