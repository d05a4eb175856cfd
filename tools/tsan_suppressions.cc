// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// ThreadSanitizer suppressions built into every fmemp test (fmemp_cc_test in
// tools/fmemp.bzl links this file), so `bazel test --config=tsan` needs no
// TSAN_OPTIONS.
//
// Abseil's Mutex hides its internal synchronisation from TSan and annotates
// itself as a mutex instead. The futex write in Waiter::Post, made on behalf
// of another thread's fresh ThreadIdentity, then looks racy against the
// mmap/memset that created that identity: google/sanitizers#953 and
// abseil/abseil-cpp#217, a known false positive. The suppression names that
// one function, so races in fmemp's own code are still reported.

#if defined(__SANITIZE_THREAD__)
#define FMEMP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FMEMP_TSAN 1
#endif
#endif

#ifdef FMEMP_TSAN
extern "C" const char* __tsan_default_suppressions() {
  return "race:synchronization_internal::Waiter::Post\n";
}
#endif
