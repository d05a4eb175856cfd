// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/testing/front_end_list.h
//
// The front-ends (fmemp/testing/front_end.h) a test runs over, as type
// lists, so that a new policy is added here once and every suite picks it
// up:
//
// * ThreadSafeFrontEnds: each C++ front-end with each thread-safe lock
//   (Memp, CachingMemp and ThreadHeapMemp with SpinLock and Mutex), and the C
//   API with each thread-safe policy (mutex, spin lock, thread cache,
//   thread heaps). Ten entries.
// * AllFrontEnds: those, plus what only one thread may use (Memp<NoLock>,
//   the C API's FMEMP_POLICY_SINGLE_THREAD) and the C API as FMempInit
//   starts it. Thirteen entries.
//
// front_end_gtest.h turns a list into gtest's typed-test types.

#ifndef FMEMP_TESTING_FRONT_END_LIST_H_
#define FMEMP_TESTING_FRONT_END_LIST_H_

#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/testing/front_end.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp::testkit {

template <typename... FrontEnds>
struct FrontEndList {};

template <typename List, typename... More>
struct Append;
template <typename... FrontEnds, typename... More>
struct Append<FrontEndList<FrontEnds...>, More...> {
  using type = FrontEndList<FrontEnds..., More...>;
};

using MempSpinLock = CppFrontEnd<Memp<sync::SpinLock>>;
using MempMutex = CppFrontEnd<Memp<sync::Mutex>>;
using MempNoLock = CppFrontEnd<Memp<sync::NoLock>>;
using CachingMempSpinLock = CppFrontEnd<CachingMemp<sync::SpinLock>>;
using CachingMempMutex = CppFrontEnd<CachingMemp<sync::Mutex>>;
using ThreadHeapMempSpinLock = CppFrontEnd<ThreadHeapMemp<sync::SpinLock>>;
using ThreadHeapMempMutex = CppFrontEnd<ThreadHeapMemp<sync::Mutex>>;
using CApiMutex = CApiPolicy<FMEMP_POLICY_MUTEX>;
using CApiSpinLock = CApiPolicy<FMEMP_POLICY_SPINLOCK>;
using CApiSingleThread = CApiPolicy<FMEMP_POLICY_SINGLE_THREAD>;
using CApiThreadCache = CApiPolicy<FMEMP_POLICY_THREAD_CACHE>;
using CApiThreadHeaps = CApiPolicy<FMEMP_POLICY_THREAD_HEAPS>;

using ThreadSafeFrontEnds =
    FrontEndList<MempSpinLock, MempMutex, CachingMempSpinLock, CachingMempMutex,
                 ThreadHeapMempSpinLock, ThreadHeapMempMutex, CApiMutex,
                 CApiSpinLock, CApiThreadCache, CApiThreadHeaps>;

using AllFrontEnds = Append<ThreadSafeFrontEnds, MempNoLock, CApiSingleThread,
                            CApiDefault>::type;

}  // namespace fmemp::testkit

#endif  // FMEMP_TESTING_FRONT_END_LIST_H_
