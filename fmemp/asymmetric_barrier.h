// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/asymmetric_barrier.h
//
// A store-load barrier split unevenly between two sides: the fast side (a
// thread's cache operations, millions per second) pays only a compiler
// barrier; the slow side (draining every thread's cache, rare) pays a
// membarrier(2) system call that makes every running thread of the process
// execute a full memory barrier. Together they give what a full fence on
// both sides would: after the slow side's HeavyBarrier(), a fast-side store
// made before its LightBarrier() is visible to the slow side, or the fast
// side's loads after it see the slow side's stores.
//
// When the kernel lacks MEMBARRIER_CMD_PRIVATE_EXPEDITED, and under
// ThreadSanitizer (which does not model membarrier), both sides fall back
// to sequentially consistent fences and accesses, which are correct and
// cost the fast side a full fence.

#ifndef FMEMP_FMEMP_ASYMMETRIC_BARRIER_H_
#define FMEMP_FMEMP_ASYMMETRIC_BARRIER_H_

#include <atomic>

namespace fmemp {

// True when HeavyBarrier uses membarrier(2). Decided once per process, the
// first time this is called (static initialisation calls it).
bool HeavyBarrierIsMembarrier();

#if defined(__SANITIZE_THREAD__)
#define FMEMP_INTERNAL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FMEMP_INTERNAL_TSAN 1
#endif
#endif

#ifdef FMEMP_INTERNAL_TSAN
// Under TSan the fast side's flag accesses are seq_cst (see below).
inline constexpr bool kAsymmetricBarrierEnabled = false;
#else
inline constexpr bool kAsymmetricBarrierEnabled = true;
#endif

// The memory order for the fast side's flag store and load.
inline constexpr std::memory_order kFastSideOrder =
    kAsymmetricBarrierEnabled ? std::memory_order_relaxed
                              : std::memory_order_seq_cst;

namespace asymmetric_barrier_internal {
// True once HeavyBarrierIsMembarrier() has decided for membarrier(2) (at
// the latest during static initialisation of the program): until then the
// fast side fences for real, which is correct with either slow side.
extern std::atomic<bool> membarrier_registered;

// Replaces the membarrier(2) system call (command -> result, errno set on
// failure) for tests; nullptr restores the real one. Not thread-safe with
// respect to HeavyBarrier callers' choice of call, only for tests.
void SetMembarrierCallForTesting(long (*call)(int));  // NOLINT(runtime/int)
}  // namespace asymmetric_barrier_internal

// Fast side: between a flag store and a flag load.
inline void LightBarrier() {
#ifndef FMEMP_INTERNAL_TSAN
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // Without membarrier the fast side must fence for real.
  if (!asymmetric_barrier_internal::membarrier_registered.load(
          std::memory_order_relaxed)) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
#endif
}

// LightBarrier for a fast side that has seen HeavyBarrierIsMembarrier()
// return true (the decision never changes, so a caller can check it once,
// e.g. when it is constructed): the compiler barrier alone, no flag load.
inline void LightBarrierGivenMembarrier() {
#ifndef FMEMP_INTERNAL_TSAN
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// Slow side: between its flag store and its flag load. With membarrier(2)
// registered the system call must succeed (the fast sides rely on it):
// transient failures are retried; a persistent one aborts the process with
// a message, since no fallback on this side alone would be correct.
// Thread-safe; one system call (or one fence) per call.
void HeavyBarrier();

}  // namespace fmemp

#endif  // FMEMP_FMEMP_ASYMMETRIC_BARRIER_H_
