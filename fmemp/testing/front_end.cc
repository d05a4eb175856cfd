// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/testing/front_end.cc

#include "fmemp/testing/front_end.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace fmemp::testkit {
namespace {

// Reports noted on this thread, by any counter (ReportCounter::OnThisThread).
thread_local uint64_t reports_on_this_thread = 0;

void SendLine(void* user, const char* line) {
  (*static_cast<absl::FunctionRef<void(absl::string_view)>*>(user))(line);
}

}  // namespace

Outcome OutcomeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Outcome::kOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return Outcome::kInvalidBuffer;
    case absl::StatusCode::kAlreadyExists:
      return Outcome::kOverlap;
    case absl::StatusCode::kNotFound:
      return Outcome::kNotFound;
    case absl::StatusCode::kFailedPrecondition:
      return Outcome::kBusy;
    case absl::StatusCode::kUnimplemented:
      return Outcome::kNotSupported;
    case absl::StatusCode::kDataLoss:
      return Outcome::kCorrupt;
    default:
      return Outcome::kOther;
  }
}

Outcome OutcomeOf(FError error) {
  switch (error) {
    case FMEMP_SUCCESS:
      return Outcome::kOk;
    case FMEMP_ERR_INVALID_BUF:
      return Outcome::kInvalidBuffer;
    case FMEMP_ERR_REGION_OVERLAP:
      return Outcome::kOverlap;
    case FMEMP_ERR_REGION_NOT_FOUND:
      return Outcome::kNotFound;
    case FMEMP_ERR_REGION_BUSY:
      return Outcome::kBusy;
    case FMEMP_ERR_NOT_INIT:
      return Outcome::kNotInit;
    case FMEMP_ERR_ALREADY_INIT:
      return Outcome::kAlreadyInit;
    case FMEMP_ERR_INVALID_ARG:
      return Outcome::kInvalidArg;
    case FMEMP_ERR_NOT_SUPPORTED:
      return Outcome::kNotSupported;
    case FMEMP_ERR_CORRUPT:
      return Outcome::kCorrupt;
    default:
      return Outcome::kOther;
  }
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kInvalidBuffer:
      return "invalid buffer";
    case Outcome::kOverlap:
      return "overlap";
    case Outcome::kNotFound:
      return "not found";
    case Outcome::kBusy:
      return "busy";
    case Outcome::kNotInit:
      return "not initialised";
    case Outcome::kAlreadyInit:
      return "already initialised";
    case Outcome::kInvalidArg:
      return "invalid argument";
    case Outcome::kNotSupported:
      return "not supported";
    case Outcome::kCorrupt:
      return "corrupt";
    case Outcome::kOther:
      return "other error";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& out, Outcome outcome) {
  return out << OutcomeName(outcome);
}

// --- ReportCounter ---

void ReportCounter::Note(int kind, const void* ptr) {
  ++reports_on_this_thread;
  if (count_.fetch_add(1, std::memory_order_relaxed) == 0) {
    first_.store(ptr, std::memory_order_relaxed);
  }
  last_kind_.store(kind, std::memory_order_relaxed);
  if (listener_ != nullptr) listener_(listener_context_, kind, ptr);
}

void ReportCounter::Reset() {
  count_.store(0, std::memory_order_relaxed);
  first_.store(nullptr, std::memory_order_relaxed);
  last_kind_.store(0, std::memory_order_relaxed);
}

uint64_t ReportCounter::OnThisThread() { return reports_on_this_thread; }

void ReportCounter::OnMempError(void* context, MempError error,
                                const void* ptr) {
  static_cast<ReportCounter*>(context)->Note(ToMisuseKind(error), ptr);
}

void ReportCounter::OnCApiError(void* user, int kind, const void* ptr) {
  static_cast<ReportCounter*>(user)->Note(kind, ptr);
}

// --- CApiFrontEnd ---

CApiFrontEnd::~CApiFrontEnd() {
  FMempRemove(&memp_);
  FMempRelease(&memp_);
}

Outcome CApiFrontEnd::Init(void* begin, void* end) {
  const FError error = via_fmemp_init_
                           ? FMempInit(&memp_, begin, end)
                           : FMempInitWithPolicy(&memp_, begin, end, policy_);
  InstallHandlers();
  return OutcomeOf(error);
}

Outcome CApiFrontEnd::Init(void* begin, void* end, int policy) {
  const FError error =
      FMempInitWithPolicy(&memp_, begin, end, static_cast<FMempPolicy>(policy));
  if (error == FMEMP_SUCCESS) {
    policy_ = static_cast<FMempPolicy>(policy);
    via_fmemp_init_ = false;
  }
  InstallHandlers();
  return OutcomeOf(error);
}

void CApiFrontEnd::InstallHandlers() {
  FMempSetErrorHandler(&memp_, &ReportCounter::OnCApiError, &reports_);
  if (oom_ != nullptr) FMempSetOomHandler(&memp_, &OnOutOfMemory, this);
}

int CApiFrontEnd::OnOutOfMemory(void* user, fsize_t size, fsize_t align) {
  const CApiFrontEnd* self = static_cast<const CApiFrontEnd*>(user);
  return self->oom_(self->oom_context_, size, align) ? 1 : 0;
}

void CApiFrontEnd::SetOutOfMemoryHandler(OutOfMemoryHandler handler,
                                         void* context) {
  oom_ = handler;
  oom_context_ = context;
  FMempSetOomHandler(&memp_, handler != nullptr ? &OnOutOfMemory : nullptr,
                     this);
}

Usage CApiFrontEnd::Probe() const {
  FMempUsage u = {};
  Usage out;
  if (FMempProbe64(const_cast<FMemp*>(&memp_), &u) != FMEMP_SUCCESS) {
    return out;
  }
  out.capacity = u.total;
  out.used = u.used;
  out.free = u.free_bytes;
  out.peak = u.max_used;
  out.cached = u.cached_bytes;
  out.live = u.live_blocks;
  out.regions = u.regions;
  out.failed = u.failed_allocations;
  out.invalid_frees = u.invalid_frees;
  out.limit = u.limit;
  out.soft_limit = u.soft_limit;
  out.limit_usage = u.limit_usage;
  out.limit_refusals = u.limit_refusals;
  return out;
}

std::vector<RegionUsage> CApiFrontEnd::ProbeRegions() {
  std::vector<RegionUsage> out;
  const u32 count = FMempRegionCount(&memp_);
  for (u32 i = 0; i < count; ++i) {
    FMempRegionUsage r = {};
    if (FMempProbeRegion(&memp_, i, &r) != FMEMP_SUCCESS) break;
    RegionUsage u;
    u.begin = r.begin;
    u.end = r.end;
    u.capacity = r.total;
    u.used = r.used;
    u.free = r.free_bytes;
    u.peak = r.max_used;
    u.largest = r.largest_free;
    u.live = r.live_blocks;
    out.push_back(u);
  }
  return out;
}

std::vector<ThreadHeapUsage> CApiFrontEnd::ProbeThreadHeaps() {
  std::vector<ThreadHeapUsage> out;
  const u32 count = FMempThreadHeapCount(&memp_);
  for (u32 i = 0; i < count; ++i) {
    FMempThreadHeapUsage p = {};
    if (FMempProbeThreadHeap(&memp_, i, &p) != FMEMP_SUCCESS) break;
    ThreadHeapUsage u;
    u.thread_id = p.thread_id;
    u.capacity = p.total;
    u.used = p.used;
    u.free = p.free_bytes;
    u.live = p.live_blocks;
    u.cached = p.cached_bytes;
    u.failed = p.failed_allocations;
    u.fallbacks = p.fallbacks;
    u.limit = p.limit;
    u.limit_usage = p.limit_usage;
    u.limit_refusals = p.limit_refusals;
    out.push_back(u);
  }
  return out;
}

bool CApiFrontEnd::ProbeThisThreadHeap(ThreadHeapUsage* out) {
  const uint64_t self = static_cast<uint64_t>(syscall(SYS_gettid));
  for (const ThreadHeapUsage& u : ProbeThreadHeaps()) {
    if (u.thread_id == self) {
      *out = u;
      return true;
    }
  }
  return false;
}

Outcome CApiFrontEnd::Check(std::string* why) {
  const FError error = FMempCheck(&memp_);
  if (why != nullptr) *why = "FMempCheck returned " + std::to_string(error);
  return OutcomeOf(error);
}

Outcome CApiFrontEnd::List(absl::FunctionRef<void(absl::string_view)> line) {
  return OutcomeOf(FMemListAllTo(&memp_, &SendLine, &line));
}

}  // namespace fmemp::testkit
