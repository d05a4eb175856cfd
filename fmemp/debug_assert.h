// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/debug_assert.h
//
// FMEMP_DCHECK(condition): fmemp's one debug-only assertion, for the
// invariants its headers state (a region table sorted and disjoint, a
// cache within its budget, counters that add up). It catches fmemp's own
// bugs, never a user's misuse: what a program can break from outside (a
// double free, a write into freed memory) is reported and counted as
// docs/HARDENING.md says, not asserted.
//
// * Builds without NDEBUG (Bazel's default fastbuild and -c dbg, CMake's
//   Debug): a false condition writes "<file>:<line>: fmemp invariant
//   failed: <condition>" to stderr with write(2) and aborts. Nothing is
//   allocated on the way, so it may fire under a front-end's lock with the
//   program's operator new or malloc routed into that front-end.
// * Builds with NDEBUG (-c opt, CMake's Release and RelWithDebInfo): the
//   condition is compiled (it stays type-checked) but never evaluated, and
//   no code is left.
//
// Rules for its uses:
// * No side effects in the condition: it is not evaluated under NDEBUG.
// * Only on slow paths (management calls, refills, trims, binds, probes),
//   never on an inline hit (PopFast, TryPush, the inline Allocate/Free of
//   the front-ends): a debug build's instruction counts stay those of the
//   release build's hot paths.
// * A check that walks a structure (O(regions)) goes in a function of its
//   own whose body starts with `if constexpr (!kDebugChecks) return;`.
// * Preconditions on a held absl::Mutex use its AssertHeld(), not this.
//
// fmemp/debug_assert_test.cc holds the death tests: each corrupts a
// structure through a test-only friend and expects the assertion.

#ifndef FMEMP_FMEMP_DEBUG_ASSERT_H_
#define FMEMP_FMEMP_DEBUG_ASSERT_H_

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

namespace fmemp {

// Whether FMEMP_DCHECK and the debug-only invariant walks run.
#ifdef NDEBUG
inline constexpr bool kDebugChecks = false;
#else
inline constexpr bool kDebugChecks = true;
#endif

namespace debug_assert_internal {

// Writes "<file>:<line>: fmemp invariant failed: <condition>\n" to stderr
// and aborts. Allocates nothing.
[[noreturn]] ABSL_ATTRIBUTE_NOINLINE ABSL_ATTRIBUTE_COLD inline void Fail(
    const char* file, int line, const char* condition) noexcept {
  char number[16];
  size_t digits = 0;
  unsigned value = line < 0 ? 0u : static_cast<unsigned>(line);
  do {
    number[sizeof(number) - 1 - digits++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && digits < sizeof(number));
  const char* const parts[] = {file,
                               ":",
                               &number[sizeof(number) - digits],
                               ": fmemp invariant failed: ",
                               condition,
                               "\n"};
  const size_t lengths[] = {
      std::strlen(file),      1, digits, std::strlen(parts[3]),
      std::strlen(condition), 1};
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); ++i) {
    // Best effort: the process aborts whatever write(2) returns.
    const ssize_t ignored = write(STDERR_FILENO, parts[i], lengths[i]);
    (void)ignored;
  }
  std::abort();
}

}  // namespace debug_assert_internal
}  // namespace fmemp

#define FMEMP_DCHECK(condition)                                             \
  do {                                                                      \
    if (::fmemp::kDebugChecks && ABSL_PREDICT_FALSE(!(condition))) {        \
      ::fmemp::debug_assert_internal::Fail(__FILE__, __LINE__, #condition); \
    }                                                                       \
  } while (false)

#endif  // FMEMP_FMEMP_DEBUG_ASSERT_H_
