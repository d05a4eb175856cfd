// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/thread_registry.h
//
// State that one thread keeps for one front-end (a per-thread cache, a
// per-thread heap), found in O(1) on the hot path and handed back to its
// front-end when the thread exits. The one place per-thread state is
// created, found and handed back.
//
//   class MyFrontEnd : public ThreadStateOwner {
//     void OnThreadExit(ThreadState* state) override;  // give it back
//   };
//   ThreadState* s = ThreadStateFor(this);  // nullptr: none yet
//   if (s == nullptr) s = RegisterThreadState(this, new MyState);
//
// A ThreadState is ArenaAllocated: `new MyState` and the registry's
// `delete` use fmemp's metadata arena (fmemp/metadata_arena.h), never
// operator new, so a program whose global operator new is an FMemp can
// create and drop per-thread state from inside that FMemp.
//
// Guarantees
// * ThreadStateFor is O(1) when the thread last used the same owner (one
//   thread-local load and compare, inline), O(owners the thread used)
//   otherwise (out of line). It takes no lock and no atomic
//   read-modify-write.
// * Thread exit. The thread's states are handed back by a pthread key
//   destructor, not by a C++ thread_local: glibc runs every thread_local
//   destructor of the thread before any key destructor, so a program's
//   thread_local objects may free or allocate through fmemp in their
//   destructors whether they were constructed before or after the thread's
//   first fmemp call. A key destructor of another library that calls fmemp
//   afterwards registers new state, and the key's next destructor round
//   (POSIX gives at least four) hands that back too.
// * For each state whose owner still exists, OnThreadExit runs on the
//   exiting thread under RegistryMutex(), then the state is deleted. The
//   thread's list is emptied before any of this, so nothing the hooks do
//   can reach a deleted state. Then, once RegistryMutex() is released,
//   AfterThreadExit runs for each of those owners (up to
//   kMaxOwnersAfterExit; beyond that, under the lock), for work that may
//   take the lock, such as a user handler that drains every thread's cache;
//   the owner's DetachThreadStates waits for it (in a fork child, not for
//   the parent's threads).
// * An owner's destructor must call DetachThreadStates(this): states of
//   threads still running are orphaned (never passed to the owner again).
//   An orphan is deleted at its thread's next RegisterThreadState or at its
//   exit, whichever is first; a thread that never calls fmemp again keeps
//   its orphans (one per owner it used, in the arena) until it exits.
// * RegistryMutex() also guards ForEachThreadState, so an owner can visit
//   every thread's state (e.g. to drain caches) while none exits.
// * The main thread's states are not handed back at exit() (no key
//   destructor runs for it); the process is ending.
// * fork(): the child keeps the forking thread's states and a fresh lock
//   (LockRegistryForFork / ResetRegistryInForkChild); other threads' states
//   stay on their owners' lists, as they were at the fork.
// * Nothing here calls malloc or operator new: the lock is constructed in
//   static storage, thread lists are intrusive, states live in the arena.

#ifndef FMEMP_FMEMP_THREAD_REGISTRY_H_
#define FMEMP_FMEMP_THREAD_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/metadata_arena.h"

namespace fmemp {

class ThreadState;
struct RegistryInternals;

// The process-wide lock over every owner's list of thread states. Lock
// order: this mutex before any front-end lock. Take it only with NoWaitLock
// (fmemp/no_wait_lock.h), as this file's functions and the fork handler
// do: a blocking Lock() would bring back the false positive a user's TSan
// build stops on.
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
  // Called on the exiting thread after OnThreadExit, once RegistryMutex() is
  // released (see the top); the owner outlives the call.
  virtual void AfterThreadExit() {}

 protected:
  ~ThreadStateOwner();

 private:
  friend class ThreadState;
  friend void HandBackThreadStates(void*);
  friend struct RegistryInternals;
  friend ThreadState* RegisterThreadState(ThreadStateOwner*, ThreadState*);
  friend void DetachThreadStates(ThreadStateOwner*);
  friend void ForEachThreadState(ThreadStateOwner*,
                                 absl::FunctionRef<void(ThreadState*)>);
  const uint64_t owner_id_;
  ThreadState* first_ ABSL_GUARDED_BY(RegistryMutex()) = nullptr;
  // Exiting threads between OnThreadExit and the end of AfterThreadExit for
  // this owner (raised under RegistryMutex()), with the fork epoch they were
  // counted in (thread_registry.cc: a fork child's pins start afresh);
  // DetachThreadStates waits until none counts.
  std::atomic<uint64_t> exits_in_flight_{0};
};

// How many owners' AfterThreadExit one exiting thread runs after releasing
// RegistryMutex(); any more run under it.
inline constexpr size_t kMaxOwnersAfterExit = 16;

// Base of per-thread state. Owned by its thread; allocated in the arena.
class ThreadState : public ArenaAllocated {
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
  friend void HandBackThreadStates(void*);
  friend struct RegistryInternals;

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

// For the owner's destructor: orphans every thread's state for `owner`,
// then waits until no exiting thread is in its AfterThreadExit.
void DetachThreadStates(ThreadStateOwner* owner)
    ABSL_LOCKS_EXCLUDED(RegistryMutex());

// The key destructor (internal; declared for the friend lists above).
void HandBackThreadStates(void* unused);

// States the calling thread holds, orphans included: for tests that check
// that nothing accumulates.
size_t ThreadStateCountOfThisThread();

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
