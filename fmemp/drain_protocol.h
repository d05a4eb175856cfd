// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/drain_protocol.h
//
// How another thread (a drainer) stops the owner of per-thread state (a
// CachingMemp's cache, a ThreadHeapMemp's thread heap) to work on that state,
// even while the owner is idle, without the owner paying for a lock or an
// atomic read-modify-write on its fast path.
//
//   // Owner, around every access to its state s:
//   void* p = OwnerOp(s, [&] { return ...; });  // or an OwnerOpScope
//   // or, on an inline fast path that can fall back to a slow one:
//   void* p = OwnerOpUnlessDiverted(s, nullptr, [&] { return ...; });
//   // (or EnterInlineOp / LeaveInlineOp written out)
//   // Drainer (its caller keeps s alive, e.g. under RegistryMutex()):
//   WithOwnerStopped(s, [](Drainable* s) { ... });
//
// Protocol. The owner marks its state in use (a relaxed store), issues
// LightBarrier() and reads the drain flag; the drainer takes the state's
// mutex, sets the flag, issues HeavyBarrier() (fmemp/asymmetric_barrier.h)
// and waits for the in-use mark to clear. So either the drainer sees the
// owner in use and waits, or the owner sees the flag and diverts: it
// clears its mark and takes the mutex, which the drainer holds until it
// is done.
//
// Guarantees
// * A drainer runs fn(s) only while no owner operation on s is running;
//   an owner operation that starts meanwhile waits (on s->mu) until it is
//   done. Owner operations may nest (a handler that calls back into
//   fmemp): scoped ones count their depth in in_scope, only the outermost
//   one can divert, and an inline hit inside one leaves its mark alone.
//   The owner can tell whether it is inside a scoped operation: in_scope is
//   nonzero exactly then (a diverted one included). The front-ends run no
//   user handler inside one (fmemp/thread_heap.h, fmemp/thread_cache.h).
// * Owner side: no lock, no read-modify-write; a store, a compiler barrier
//   (a fence when membarrier(2) is missing or under TSan) and a load, and a
//   store at the end (a scoped operation also loads its nesting depth). Drainer
//   side: O(1) plus one HeavyBarrier and the wait for the owner's current
//   operation.
// * REQUIRES: an owner never waits for a drainer of its own state inside an
//   owner operation (it would wait for itself).
// * fork(): StopOwner on every state before fork() and ResumeOwner after it
//   (ResetOwnerInForkChild in the child) leave a child no state marked in
//   use and no mutex held by a thread it lacks.
// * Cost on the owner's inline hits (OwnerOpUnlessDiverted): two relaxed
//   stores, a compiler barrier and a load, as before this header existed.

#ifndef FMEMP_FMEMP_DRAIN_PROTOCOL_H_
#define FMEMP_FMEMP_DRAIN_PROTOCOL_H_

#include <atomic>
#include <cstdint>
#include <new>
#include <thread>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/asymmetric_barrier.h"
#include "fmemp/no_wait_lock.h"

namespace fmemp {

// The part of per-thread state that the protocol uses.
struct Drainable {
  // The owner's marks, written only by the owner: in_use while an inline
  // hit runs (0 or 1, OwnerOpUnlessDiverted), in_scope for every other
  // owner operation (OwnerOp, OwnerOpScope), nested ones counted. Two
  // words so that the hits keep the cheapest form (two stores) and a hit
  // nested in another operation (a handler calling back) cannot clear the
  // outer one's mark.
  std::atomic<uint32_t> in_use{0};
  std::atomic<uint32_t> in_scope{0};
  std::atomic<bool> drain_requested{false};
  absl::Mutex mu;  // held by a drainer, and by the owner when diverted
};

// The drain flag as the owner reads it, after its mark and LightBarrier.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool DrainRequested(const Drainable* s) {
  return s->drain_requested.load(kAsymmetricBarrierEnabled
                                     ? std::memory_order_acquire
                                     : std::memory_order_seq_cst);
}

// The inline hits' side: marks `s` in use and returns whether the hit may
// go on (false: a drainer has asked for `s`; the caller must not touch it
// and, after LeaveInlineOp, takes its slow path). kGivenMembarrier: the
// caller knows that HeavyBarrierIsMembarrier() (see
// LightBarrierGivenMembarrier).
template <bool kGivenMembarrier = false>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool EnterInlineOp(Drainable* s) {
  s->in_use.store(1, kFastSideOrder);
  if (kGivenMembarrier) {
    LightBarrierGivenMembarrier();
  } else {
    LightBarrier();
  }
  return !DrainRequested(s);
}
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void LeaveInlineOp(Drainable* s) {
  s->in_use.store(0, std::memory_order_release);
}

// OwnerOp for inline fast paths: runs op(), or returns `otherwise` without
// running it when a drainer has asked for `s` (the caller then takes its
// slow path, which uses OwnerOp or OwnerOpScope).
template <bool kGivenMembarrier = false, typename R, typename Op>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline R OwnerOpUnlessDiverted(Drainable* s,
                                                            R otherwise,
                                                            Op op) {
  R result = otherwise;
  if (ABSL_PREDICT_TRUE(EnterInlineOp<kGivenMembarrier>(s))) result = op();
  LeaveInlineOp(s);
  return result;
}

// An owner operation for the life of the object (slow paths, management
// calls): marked in scope, or, when a drainer has asked for `s`, under
// s->mu once the drainer is done. Nests: an operation inside another never
// diverts (the drainer waits for the outer one).
class OwnerOpScope {
 public:
  // s == nullptr: nothing to mark (Adopt may give it later).
  explicit OwnerOpScope(Drainable* s) { Adopt(s); }
  OwnerOpScope(const OwnerOpScope&) = delete;
  OwnerOpScope& operator=(const OwnerOpScope&) = delete;
  ~OwnerOpScope() { Close(); }
  // Ends the operation now (the destructor then does nothing): for a
  // caller that has more to do once it is over, e.g. run a user handler
  // that may stop this state's owner's peers.
  void Close() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (s_ == nullptr) return;
    if (ABSL_PREDICT_FALSE(diverted_)) {
      s_->in_scope.store(0, std::memory_order_release);
      s_->mu.Unlock();
    } else {
      s_->in_scope.store(depth_, std::memory_order_release);
    }
    s_ = nullptr;
  }
  // Starts the operation on `s` (nullptr: none). REQUIRES: none started.
  void Adopt(Drainable* s) {
    s_ = s;
    if (s == nullptr) return;
    depth_ = s->in_scope.load(std::memory_order_relaxed);
    s->in_scope.store(depth_ + 1, kFastSideOrder);
    LightBarrier();
    if (depth_ == 0 && ABSL_PREDICT_FALSE(DrainRequested(s))) Divert(s);
  }

 private:
  // Leaves the mark and takes s->mu, which the drainer holds until done;
  // then marks the operation again (no drainer can look before Close
  // unlocks s->mu), so that in_scope says, for the owner, whether it is
  // inside an operation, diverted or not.
  ABSL_ATTRIBUTE_NOINLINE void Divert(Drainable* s)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    s->in_scope.store(0, std::memory_order_release);
    LockWithoutWaiting(s->mu);
    s->in_scope.store(1, std::memory_order_relaxed);
    diverted_ = true;
  }

  Drainable* s_ = nullptr;
  uint32_t depth_ = 0;
  bool diverted_ = false;
};

// Runs op() as the owner of `s` (an OwnerOpScope around it).
template <typename Op>
auto OwnerOp(Drainable* s, Op op) {
  OwnerOpScope scope(s);
  return op();
}

// Drainer side: takes s->mu and waits until no owner operation on `s`
// runs; from then on the owner's operations wait until ResumeOwner.
// The caller keeps `s` alive.
inline void StopOwner(Drainable* s) ABSL_EXCLUSIVE_LOCK_FUNCTION(s->mu) {
  LockWithoutWaiting(s->mu);
  s->drain_requested.store(true, std::memory_order_seq_cst);
  HeavyBarrier();
  constexpr std::memory_order kOrder = kAsymmetricBarrierEnabled
                                           ? std::memory_order_acquire
                                           : std::memory_order_seq_cst;
  while (s->in_use.load(kOrder) != 0 || s->in_scope.load(kOrder) != 0) {
    std::this_thread::yield();
  }
}
inline void ResumeOwner(Drainable* s) ABSL_UNLOCK_FUNCTION(s->mu) {
  s->drain_requested.store(false, std::memory_order_release);
  s->mu.Unlock();
}
// Stops the owner of `s`, runs fn(s), resumes it.
template <typename Fn>
void WithOwnerStopped(Drainable* s, Fn fn) {
  StopOwner(s);
  fn(s);
  ResumeOwner(s);
}
// In a fork child, for a state that StopOwner stopped before fork(): a
// fresh mutex (the old one may be mid-update by a waiter the child lacks),
// no drain request, and no mark in use (an owner that met the stop may
// have been between marking and unmarking at the fork; the child runs none
// of the parent's other threads, and the forking thread is inside no
// operation).
inline void ResetOwnerInForkChild(Drainable* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ::new (&s->mu) absl::Mutex();
  s->drain_requested.store(false, std::memory_order_relaxed);
  s->in_use.store(0, std::memory_order_relaxed);
  s->in_scope.store(0, std::memory_order_relaxed);
}

}  // namespace fmemp

#endif  // FMEMP_FMEMP_DRAIN_PROTOCOL_H_
