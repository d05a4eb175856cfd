// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/management_error.h
//
// ManagementResult: how fmemp's management calls (adding, removing and
// binding regions, debug modes, region checks) report failure inside the
// library. It is a ManagementError and the address the call was about, 16
// bytes passed by value: building, copying or testing one never allocates.
//
// Why: a program may route its global operator new/delete into an FMemp
// (fmemp/routed_new_test.cc). An absl::Status with a message is a call to
// operator new; built while a front-end holds its lock, it re-enters that
// front-end, which hangs (a spin lock, the caches, the thread heaps) or aborts
// (a mutex). So, under every lock, a management call only returns a
// ManagementResult:
// * the C API (fmemp/fmemp.cc) maps it to an FError and never constructs an
//   absl::Status for it: a failing management call allocates nothing;
// * the C++ front-ends' public methods that return absl::Status convert it
//   with ToStatus() after they have released every lock, so the only
//   allocation is the returned Status's message, made where a routed
//   operator new may take the front-end's lock again.
//
// ToStatus is the one conversion and ManagementErrorMessage the one table
// of messages; both are out of line (not on any hot path).

#ifndef FMEMP_FMEMP_MANAGEMENT_ERROR_H_
#define FMEMP_FMEMP_MANAGEMENT_ERROR_H_

#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"

namespace fmemp {

// Why a management call failed. The comment names the absl::StatusCode that
// ToStatus gives it.
enum class ManagementError : uint8_t {
  kNone,                // OK
  kNullBound,           // InvalidArgument: a region bound is null
  kReversedRange,       // InvalidArgument: a region is reversed or empty
  kWrapsAround,         // InvalidArgument: a region wraps around the
                        // address space
  kTooSmall,            // InvalidArgument: too small a region for one heap
                        // once its bounds are aligned
  kTooLarge,            // InvalidArgument: too large a region for one heap
  kOverlap,             // AlreadyExists: overlaps a region of this set
  kOverlapOtherSet,     // AlreadyExists: overlaps a region of another set
                        // sharing its table
  kOverlapBound,        // AlreadyExists: overlaps a region bound to a thread
  kNoRegion,            // NotFound: no region begins at the address
  kLiveBlocks,          // FailedPrecondition: live blocks lie in the region
  kRegionUnlistable,    // DataLoss: the region's free block cannot be
                        // unlisted (damaged links)
  kBoundToOtherThread,  // FailedPrecondition: the region is bound to another
                        // thread
  kNotInRegion,         // NotFound: the pointer is in no region
  kInOtherThreadsHeap,  // FailedPrecondition: the pointer lies in a region
                        // bound to another thread
  kHasRegions,          // FailedPrecondition: only while there is no region
  kDebugModesDiffer,    // FailedPrecondition: a region laid out under other
                        // debug modes
  kNothingToAttach,     // InvalidArgument: an empty DetachedRegion
  kNoMemory,            // ResourceExhausted: no memory for bookkeeping
  kCorrupt,             // DataLoss: an integrity check failed
  kNoThreadHeap,        // NotFound: the thread named has no thread heap
  kRetiring,            // FailedPrecondition: the region is retiring
  kNotRetiring,         // FailedPrecondition: the region is not retiring
};

// The absl::StatusCode and the static message of each error (the one
// table). Never allocate.
absl::StatusCode ManagementErrorCode(ManagementError error) noexcept;
const char* ManagementErrorMessage(ManagementError error) noexcept;

// A management call's outcome: the error and the address it was about (a
// region's first byte, or the pointer probed). Trivially copyable; nothing
// here allocates except ToStatus. It spells ok(), code() and IgnoreError()
// as absl::Status does.
class ABSL_MUST_USE_RESULT ManagementResult {
 public:
  constexpr ManagementResult() noexcept = default;
  // Implicit, so that `return ManagementError::kNoRegion;` reads naturally.
  constexpr ManagementResult(ManagementError error,  // NOLINT
                             const void* subject = nullptr) noexcept
      : error_(error), subject_(subject) {}

  constexpr bool ok() const noexcept {
    return error_ == ManagementError::kNone;
  }
  constexpr ManagementError error() const noexcept { return error_; }
  constexpr const void* subject() const noexcept { return subject_; }
  absl::StatusCode code() const noexcept { return ManagementErrorCode(error_); }
  void IgnoreError() const noexcept {}

  // The absl::Status of this outcome: OK, or the table's code and message
  // with the subject's address. Allocates the message: call it only after
  // releasing every lock of the front-end (see the file comment).
  absl::Status ToStatus() const {
    if (ABSL_PREDICT_TRUE(ok())) return absl::OkStatus();
    return FailureToStatus();
  }

 private:
  ABSL_ATTRIBUTE_NOINLINE absl::Status FailureToStatus() const;

  ManagementError error_ = ManagementError::kNone;
  const void* subject_ = nullptr;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_MANAGEMENT_ERROR_H_
