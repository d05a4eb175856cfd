// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "examples/kv_server/fmemp_entry_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace kv_server {
namespace {

// --- fmemp's thread heaps (thread_heaps) ---
// The only code that depends on whether fmemp/fmemp.h has them yet.
#ifdef FMEMP_POLICY_THREAD_HEAPS_AVAILABLE
constexpr bool kThreadHeapsApi = true;
constexpr FMempPolicy kThreadHeapsPolicy = FMEMP_POLICY_THREAD_HEAPS;
FError BindThread(FMemp* memp, void* region) {
  return FMempBindThread(memp, region);
}
FError UnbindThread(FMemp* memp) { return FMempUnbindThread(memp); }
FError SyncThreadHeap(FMemp* memp) { return FMempSyncThreadHeap(memp); }
#else
constexpr bool kThreadHeapsApi = false;
constexpr FMempPolicy kThreadHeapsPolicy = FMEMP_POLICY_MUTEX;  // never used
FError BindThread(FMemp*, void*) { return FMEMP_ERR_INVALID_ARG; }
FError UnbindThread(FMemp*) { return FMEMP_ERR_INVALID_ARG; }
FError SyncThreadHeap(FMemp*) { return FMEMP_ERR_INVALID_ARG; }
#endif

FMempPolicy ToFmempPolicy(PoolPolicy policy) {
  switch (policy) {
    case PoolPolicy::kMutex:
      return FMEMP_POLICY_MUTEX;
    case PoolPolicy::kSpinLock:
      return FMEMP_POLICY_SPINLOCK;
    case PoolPolicy::kThreadCache:
      return FMEMP_POLICY_THREAD_CACHE;
    case PoolPolicy::kThreadHeaps:
      return kThreadHeapsPolicy;
  }
  return FMEMP_POLICY_MUTEX;
}

// Room a region needs beyond a request: the pool record, the boundary words
// and one block header, with margin.
constexpr size_t kRegionOverhead = 4096;

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

size_t RoundUp(size_t value, size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// The region a worker thread is bound to under thread_heaps.
struct ThreadBinding {
  const void* owner = nullptr;
  char* region = nullptr;
};
thread_local ThreadBinding tls_binding;

}  // namespace

absl::StatusOr<PoolPolicy> ParsePoolPolicy(absl::string_view name) {
  PoolPolicy policy;
  if (name == "mutex") {
    policy = PoolPolicy::kMutex;
  } else if (name == "spinlock") {
    policy = PoolPolicy::kSpinLock;
  } else if (name == "thread_cache") {
    policy = PoolPolicy::kThreadCache;
  } else if (name == "thread_heaps") {
    policy = PoolPolicy::kThreadHeaps;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown policy '", name,
        "' (expected mutex, spinlock, thread_cache or thread_heaps)"));
  }
  if (policy == PoolPolicy::kThreadHeaps && !kThreadHeapsApi) {
    return absl::UnimplementedError(absl::StrCat(
        "policy '", name,
        "' needs fmemp's per-thread heaps (FMEMP_POLICY_THREAD_HEAPS_AVAILABLE "
        "in fmemp/fmemp.h), which this build does not have"));
  }
  return policy;
}

absl::string_view PoolPolicyName(PoolPolicy policy) {
  switch (policy) {
    case PoolPolicy::kMutex:
      return "mutex";
    case PoolPolicy::kSpinLock:
      return "spinlock";
    case PoolPolicy::kThreadCache:
      return "thread_cache";
    case PoolPolicy::kThreadHeaps:
      return "thread_heaps";
  }
  return "unknown";
}

std::vector<PoolPolicy> AvailablePoolPolicies() {
  std::vector<PoolPolicy> policies = {PoolPolicy::kMutex, PoolPolicy::kSpinLock,
                                      PoolPolicy::kThreadCache};
  if (kThreadHeapsApi) policies.push_back(PoolPolicy::kThreadHeaps);
  return policies;
}

absl::StatusOr<std::unique_ptr<FmempEntryMemory>> FmempEntryMemory::Create(
    const FmempOptions& options) {
  if (options.policy == PoolPolicy::kThreadHeaps && !kThreadHeapsApi) {
    return absl::UnimplementedError(
        absl::StrCat("policy '", PoolPolicyName(options.policy),
                     "' is not available in this build of fmemp"));
  }
  if (options.region_bytes < (size_t{64} << 10)) {
    return absl::InvalidArgumentError("region size must be at least 64 KiB");
  }
  if (options.max_bytes < options.region_bytes) {
    return absl::InvalidArgumentError("the cap must hold at least one region");
  }
  std::unique_ptr<FmempEntryMemory> memory(new FmempEntryMemory(options));
  if (absl::Status s = memory->Init(); !s.ok()) return s;
  return memory;
}

FmempEntryMemory::FmempEntryMemory(const FmempOptions& options)
    : options_{options.policy, RoundUp(options.region_bytes, PageSize()),
               options.max_bytes} {}

absl::Status FmempEntryMemory::Init() {
  absl::MutexLock hold(&mu_);
  void* begin = mmap(nullptr, options_.region_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (begin == MAP_FAILED) {
    return absl::ResourceExhaustedError("mmap of the first region failed");
  }
  char* const first = static_cast<char*>(begin);
  const FError error =
      FMempInitWithPolicy(&memp_, first, first + options_.region_bytes,
                          ToFmempPolicy(options_.policy));
  if (error != FMEMP_SUCCESS) {
    munmap(begin, options_.region_bytes);
    return absl::InternalError(
        absl::StrFormat("FMempInitWithPolicy failed: 0x%x", error));
  }
  mappings_.push_back({first, options_.region_bytes, false});
  mapped_bytes_ = options_.region_bytes;
  FMempSetOomHandler(&memp_, &FmempEntryMemory::OnOutOfMemory, this);
  if (const FError e = FMempSetLimit(&memp_, options_.max_bytes);
      e != FMEMP_SUCCESS) {
    return absl::InternalError(
        absl::StrFormat("FMempSetLimit failed: 0x%x", e));
  }
  return absl::OkStatus();
}

bool FmempEntryMemory::SetEvictor(Evictor evict) {
  evict_ = std::move(evict);
  const uint64_t soft = options_.max_bytes / 100 * options_.evict_at_percent;
  const uint64_t to = options_.max_bytes / 100 * options_.evict_to_percent;
  return FMempSetSoftLimit(&memp_, soft, soft - to,
                           &FmempEntryMemory::OnSoftLimit,
                           this) == FMEMP_SUCCESS;
}

void FmempEntryMemory::OnSoftLimit(void* user, u64 usage, u64 soft_limit) {
  auto* self = static_cast<FmempEntryMemory*>(user);
  (void)usage;  // other workers may have allocated since: probe instead
  (void)soft_limit;
  const uint64_t to =
      self->options_.max_bytes / 100 * self->options_.evict_to_percent;
  self->evictions_.fetch_add(1, std::memory_order_relaxed);
  // Evict until what the pool has taken (used + cached, fmemp's measure)
  // is under the mark that re-arms the soft limit, in a few rounds: other
  // workers keep writing meanwhile.
  for (int round = 0; round < 8; ++round) {
    FMempUsage now = {};
    FMempProbe64(&self->memp_, &now);
    const uint64_t taken = now.used + now.cached_bytes;
    if (taken < to) break;
    const size_t freed = self->evict_(taken - to + (64 << 10));
    // What this thread freed may sit in its per-thread cache, still
    // counted as taken: give it back.
    FMempFlushThreadCache(&self->memp_);
    self->evicted_bytes_.fetch_add(freed, std::memory_order_relaxed);
    if (freed == 0) break;
  }
}

FmempEntryMemory::~FmempEntryMemory() {
  FMempRemove(&memp_);
  FMempRelease(&memp_);
  absl::MutexLock hold(&mu_);
  for (const Mapping& m : mappings_) munmap(m.begin, m.bytes);
  mappings_.clear();
}

void* FmempEntryMemory::Allocate(size_t bytes) noexcept {
  return FMempMalloc(&memp_, bytes);
}

void FmempEntryMemory::Free(void* block) noexcept {
  if (block == nullptr) return;
  FMempFree(&memp_, block);
  if ((frees_.fetch_add(1, std::memory_order_relaxed) + 1) % kTrimInterval ==
      0) {
    if (mu_.TryLock()) {
      TrimLocked(/*drain_caches=*/false);
      mu_.Unlock();
    }
  }
}

int FmempEntryMemory::OnOutOfMemory(void* user, fsize_t size, fsize_t align) {
  return static_cast<FmempEntryMemory*>(user)->Grow(size, align) ? 1 : 0;
}

bool FmempEntryMemory::Grow(size_t size, size_t align) {
  absl::MutexLock hold(&mu_);
  // Another thread may have added a region since this request failed: if a
  // shared region (not a retiring one) now has room, retry without mapping
  // more.
  const size_t need = size + (align > 16 ? align : 0);
  const uint32_t count = FMempRegionCount(&memp_);
  for (uint32_t i = 0; i < count; ++i) {
    FMempRegionUsage usage;
    if (FMempProbeRegion(&memp_, i, &usage) != FMEMP_SUCCESS) continue;
    const bool bound = std::any_of(
        mappings_.begin(), mappings_.end(),
        [&](const Mapping& m) { return m.begin == usage.begin && m.bound; });
    if (!bound && !usage.retiring && usage.largest_free >= need) return true;
  }
  const size_t bytes = std::max(options_.region_bytes,
                                RoundUp(need + kRegionOverhead, PageSize()));
  return AddMappedRegion(bytes, /*bound=*/false) != nullptr;
}

char* FmempEntryMemory::AddMappedRegion(size_t bytes, bool bound) {
  if (mapped_bytes_ + bytes > 2 * options_.max_bytes) {
    ++growth_refused_;
    return nullptr;
  }
  void* begin = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (begin == MAP_FAILED) {
    ++growth_refused_;
    return nullptr;
  }
  char* const region = static_cast<char*>(begin);
  if (FMempAddRegion(&memp_, region, region + bytes) != FMEMP_SUCCESS) {
    munmap(begin, bytes);
    ++growth_refused_;
    return nullptr;
  }
  mappings_.push_back({region, bytes, bound});
  mapped_bytes_ += bytes;
  ++regions_added_;
  return region;
}

absl::Status FmempEntryMemory::AttachThread() {
  if (options_.policy != PoolPolicy::kThreadHeaps) return absl::OkStatus();
  absl::MutexLock hold(&mu_);
  char* const region = AddMappedRegion(options_.region_bytes, /*bound=*/true);
  if (region == nullptr) {
    return absl::ResourceExhaustedError(
        "no room under the cap for this thread's own region");
  }
  if (const FError e = BindThread(&memp_, region); e != FMEMP_SUCCESS) {
    // Leave the region shared; Trim can remove it later.
    mappings_.back().bound = false;
    return absl::InternalError(
        absl::StrFormat("FMempBindThread failed: 0x%x", e));
  }
  tls_binding = {this, region};
  return absl::OkStatus();
}

void FmempEntryMemory::DetachThread() {
  if (tls_binding.owner != this) return;
  UnbindThread(&memp_);
  absl::MutexLock hold(&mu_);
  for (Mapping& m : mappings_) {
    if (m.begin == tls_binding.region) m.bound = false;
  }
  tls_binding = {};
}

void FmempEntryMemory::OnIdle() {
  if (tls_binding.owner != this) return;
  // Applies the frees other threads queued to this worker's heap, which
  // otherwise wait for its next malloc or free.
  SyncThreadHeap(&memp_);
}

void FmempEntryMemory::Trim() {
  absl::MutexLock hold(&mu_);
  TrimLocked(/*drain_caches=*/true);
}

absl::Status FmempEntryMemory::RetireRegion(size_t index) {
  absl::MutexLock hold(&mu_);
  UnmapRetired();
  FMempRegionUsage r;
  if (index >= FMempRegionCount(&memp_) ||
      FMempProbeRegion(&memp_, static_cast<u32>(index), &r) != FMEMP_SUCCESS) {
    return absl::InvalidArgumentError("no such region");
  }
  for (const Mapping& m : mappings_) {
    if (m.begin != r.begin) continue;
    if (&m == &mappings_[0] || m.bound) {
      return absl::InvalidArgumentError(
          "the first region and workers' own regions stay");
    }
    const FError e = FMempRetireRegion(
        &memp_, r.begin, &FmempEntryMemory::OnRegionRetired, this);
    if (e != FMEMP_SUCCESS) {
      return absl::FailedPreconditionError(
          absl::StrFormat("FMempRetireRegion failed: 0x%x", e));
    }
    UnmapRetired();  // it may have had no entry left
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("not a region of this server");
}

void FmempEntryMemory::OnRegionRetired(void* user, void* begin, void*) {
  auto* self = static_cast<FmempEntryMemory*>(user);
  absl::MutexLock hold(&self->retired_mu_);
  self->retired_.push_back(begin);
}

void FmempEntryMemory::UnmapRetired() {
  std::vector<void*> gone;
  {
    absl::MutexLock hold(&retired_mu_);
    gone.swap(retired_);
  }
  for (void* begin : gone) {
    for (auto it = mappings_.begin(); it != mappings_.end(); ++it) {
      if (it->begin != begin) continue;
      munmap(it->begin, it->bytes);
      mapped_bytes_ -= it->bytes;
      ++regions_retired_;
      mappings_.erase(it);
      break;
    }
  }
}

void FmempEntryMemory::TrimLocked(bool drain_caches) {
  UnmapRetired();
  // Blocks parked in per-thread caches keep a region busy; an explicit trim
  // gives them back first (the periodic one leaves the caches warm).
  if (drain_caches) FMempDrainThreadCaches(&memp_);
  if (mappings_.size() < 2) return;
  auto keep = mappings_.begin() + 1;
  for (auto it = mappings_.begin() + 1; it != mappings_.end(); ++it) {
    if (!it->bound && FMempRemoveRegion(&memp_, it->begin) == FMEMP_SUCCESS) {
      munmap(it->begin, it->bytes);
      mapped_bytes_ -= it->bytes;
      ++regions_removed_;
      continue;
    }
    *keep++ = *it;
  }
  mappings_.erase(keep, mappings_.end());
}

uint64_t FmempEntryMemory::UsedBytes() const {
  FMempUsage usage = {};
  FMempProbe64(&memp_, &usage);
  return usage.used;
}

uint32_t FmempEntryMemory::RegionCount() const {
  return FMempRegionCount(&memp_);
}

absl::Status FmempEntryMemory::Check() {
  FMempDrainThreadCaches(&memp_);
  const FError error = FMempCheck(&memp_);
  if (error != FMEMP_SUCCESS) {
    return absl::DataLossError(
        absl::StrFormat("FMempCheck failed: 0x%x", error));
  }
  return absl::OkStatus();
}

void FmempEntryMemory::AppendInfo(std::string* out) const {
  absl::MutexLock hold(&mu_);
  FMempUsage usage = {};
  FMempProbe64(&memp_, &usage);
  absl::StrAppend(out, "allocator:fmemp\r\n",
                  "fmemp_policy:", PoolPolicyName(options_.policy), "\r\n");
  absl::StrAppend(out, "used_memory:", usage.used, "\r\n",
                  "used_memory_peak:", usage.max_used, "\r\n",
                  "maxmemory:", options_.max_bytes, "\r\n");
  absl::StrAppend(out, "fmemp_total:", usage.total, "\r\n",
                  "fmemp_used:", usage.used, "\r\n",
                  "fmemp_free:", usage.free_bytes, "\r\n",
                  "fmemp_peak:", usage.max_used, "\r\n");
  absl::StrAppend(out, "fmemp_cached_bytes:", usage.cached_bytes, "\r\n");
  absl::StrAppend(out, "fmemp_live_blocks:", usage.live_blocks, "\r\n",
                  "fmemp_failed_allocations:", usage.failed_allocations, "\r\n",
                  "fmemp_invalid_frees:", usage.invalid_frees, "\r\n");
  absl::StrAppend(
      out, "fmemp_limit:", usage.limit, "\r\n",
      "fmemp_limit_refusals:", usage.limit_refusals, "\r\n",
      "fmemp_soft_limit:",
      usage.soft_limit == FMEMP_LIMIT_NONE ? 0 : usage.soft_limit, "\r\n",
      "fmemp_evictions:", evictions_.load(std::memory_order_relaxed), "\r\n",
      "fmemp_evicted_bytes:", evicted_bytes_.load(std::memory_order_relaxed),
      "\r\n");
  absl::StrAppend(out, "fmemp_region_bytes:", options_.region_bytes, "\r\n",
                  "fmemp_mapped_bytes:", mapped_bytes_, "\r\n",
                  "fmemp_regions_added:", regions_added_, "\r\n",
                  "fmemp_regions_removed:", regions_removed_, "\r\n",
                  "fmemp_regions_retired:", regions_retired_, "\r\n",
                  "fmemp_growth_refused:", growth_refused_, "\r\n",
                  "fmemp_regions:", usage.regions, "\r\n");
  const uint32_t count = FMempRegionCount(&memp_);
  for (uint32_t i = 0; i < count; ++i) {
    FMempRegionUsage r;
    if (FMempProbeRegion(&memp_, i, &r) != FMEMP_SUCCESS) break;
    const bool bound = std::any_of(
        mappings_.begin(), mappings_.end(),
        [&](const Mapping& m) { return m.begin == r.begin && m.bound; });
    absl::StrAppendFormat(
        out,
        "fmemp_region_%u:begin=%p,total=%u,used=%u,free=%u,peak=%u,"
        "largest_free=%u,live_blocks=%u,bound=%d,retiring=%u\r\n",
        i, r.begin, r.total, r.used, r.free_bytes, r.max_used, r.largest_free,
        r.live_blocks, bound ? 1 : 0, r.retiring);
  }
}

}  // namespace kv_server
