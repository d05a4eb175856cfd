// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/management_error.h"

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace fmemp {
namespace {

struct Entry {
  absl::StatusCode code;
  const char* message;
};

// Indexed by ManagementError; the static_assert below keeps it complete.
constexpr Entry kEntries[] = {
    {absl::StatusCode::kOk, "OK"},
    {absl::StatusCode::kInvalidArgument, "region bound is null"},
    {absl::StatusCode::kInvalidArgument, "region is reversed or empty"},
    {absl::StatusCode::kInvalidArgument,
     "region wraps around the address space"},
    {absl::StatusCode::kInvalidArgument,
     "region cannot hold a TLSF pool: smaller than the minimum after "
     "aligning its bounds"},
    {absl::StatusCode::kInvalidArgument,
     "region cannot hold a TLSF pool: larger than the maximum block span"},
    {absl::StatusCode::kAlreadyExists, "region overlaps a region of this set"},
    {absl::StatusCode::kAlreadyExists,
     "region overlaps a region of another set sharing its table"},
    {absl::StatusCode::kAlreadyExists,
     "region overlaps a region bound to a thread"},
    {absl::StatusCode::kNotFound, "no region begins there"},
    {absl::StatusCode::kFailedPrecondition,
     "region not removed: it still holds live bytes in live blocks, or is "
     "damaged"},
    {absl::StatusCode::kDataLoss,
     "region not removed: its free block cannot be unlisted"},
    {absl::StatusCode::kFailedPrecondition,
     "region is bound to another thread: it must unbind or exit first"},
    {absl::StatusCode::kNotFound, "pointer is in no region"},
    {absl::StatusCode::kFailedPrecondition,
     "pointer lies in a region bound to another thread"},
    {absl::StatusCode::kFailedPrecondition,
     "can change only while there is no region"},
    {absl::StatusCode::kFailedPrecondition,
     "region has other debug modes than this set"},
    {absl::StatusCode::kInvalidArgument, "no region to attach"},
    {absl::StatusCode::kResourceExhausted, "no memory for fmemp's bookkeeping"},
    {absl::StatusCode::kDataLoss, "integrity check failed"},
    {absl::StatusCode::kNotFound, "that thread has no thread heap"},
    {absl::StatusCode::kFailedPrecondition, "region is retiring"},
    {absl::StatusCode::kFailedPrecondition, "region is not retiring"},
};
static_assert(sizeof(kEntries) / sizeof(kEntries[0]) ==
                  static_cast<size_t>(ManagementError::kNotRetiring) + 1,
              "one entry per ManagementError");

const Entry& EntryOf(ManagementError error) noexcept {
  return kEntries[static_cast<size_t>(error)];
}

}  // namespace

absl::StatusCode ManagementErrorCode(ManagementError error) noexcept {
  return EntryOf(error).code;
}

const char* ManagementErrorMessage(ManagementError error) noexcept {
  return EntryOf(error).message;
}

absl::Status ManagementResult::FailureToStatus() const {
  const Entry& entry = EntryOf(error_);
  if (subject_ == nullptr) return absl::Status(entry.code, entry.message);
  return absl::Status(entry.code,
                      absl::StrFormat("%s (at %p)", entry.message, subject_));
}

}  // namespace fmemp
