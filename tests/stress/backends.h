// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tests/stress/backends.h
//
// One small interface over every thread-safe way to use fmemp, so that the
// stress harness (stress_harness.h) is written once:
//
// * CppBackend<FrontEnd>: fmemp::Memp<Lock>, fmemp::CachingMemp<Lock> and
//   fmemp::PoolingMemp<Lock>.
// * CApiBackend<kPolicy>: the SDK C API (fmemp/fmemp.h) with one policy.
//
// Each backend counts misuse reports with its own error handler (there
// must be none), and says whether it has per-thread pools (kHasPools); the
// harness binds regions only on those that do.

#ifndef FMEMP_TESTS_STRESS_BACKENDS_H_
#define FMEMP_TESTS_STRESS_BACKENDS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_pool.h"
#include "sync/mutex.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace stress {

// Probe figures, the same for every backend.
struct Usage {
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t free = 0;
  uint64_t cached = 0;  // parked in per-thread caches (0 without caches)
  uint64_t live = 0;
  uint64_t regions = 0;
  uint64_t invalid_frees = 0;
};

struct RegionUsage {
  const void* begin = nullptr;
  const void* end = nullptr;
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t free = 0;
  uint64_t live = 0;
};

// One per-thread pool's figures, as of its thread's last call.
struct PoolUsage {
  uint64_t thread_id = 0;
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t free = 0;
  uint64_t live = 0;
  uint64_t cached = 0;  // parked in the pool's cache
};

enum class Removal { kRemoved, kBusy, kError };

// Misuse reports and the first pointer reported.
class MisuseCounter {
 public:
  void Count(const void* ptr) {
    if (count_.fetch_add(1, std::memory_order_relaxed) == 0) {
      first_.store(ptr, std::memory_order_relaxed);
    }
  }
  int count() const { return count_.load(std::memory_order_relaxed); }
  const void* first() const { return first_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> count_{0};
  std::atomic<const void*> first_{nullptr};
};

template <typename FrontEnd>
class CppBackend {
 public:
  static constexpr bool kHasPools =
      std::is_same<FrontEnd, PoolingMemp<sync::SpinLock>>::value ||
      std::is_same<FrontEnd, PoolingMemp<sync::Mutex>>::value;
  static constexpr bool kHasUsableSize = true;

  static std::string Name() {
    if (std::is_same<FrontEnd, Memp<sync::SpinLock>>::value) {
      return "MempSpinLock";
    }
    if (std::is_same<FrontEnd, Memp<sync::Mutex>>::value) return "MempMutex";
    if (std::is_same<FrontEnd, CachingMemp<sync::SpinLock>>::value) {
      return "CachingMempSpinLock";
    }
    if (std::is_same<FrontEnd, CachingMemp<sync::Mutex>>::value) {
      return "CachingMempMutex";
    }
    if (std::is_same<FrontEnd, PoolingMemp<sync::SpinLock>>::value) {
      return "PoolingMempSpinLock";
    }
    if (std::is_same<FrontEnd, PoolingMemp<sync::Mutex>>::value) {
      return "PoolingMempMutex";
    }
    return "Unknown";
  }

  CppBackend() = default;
  CppBackend(const CppBackend&) = delete;
  CppBackend& operator=(const CppBackend&) = delete;

  // The first region; installs the misuse counter.
  absl::Status Init(void* begin, void* end) {
    memp_.SetErrorHandler(&CppBackend::OnMisuse, &misuse_);
    return memp_.AddRegion(begin, end);
  }
  absl::Status AddRegion(void* begin, void* end) {
    return memp_.AddRegion(begin, end);
  }
  Removal RemoveRegion(void* begin) {
    const absl::Status s = memp_.RemoveRegion(begin);
    if (s.ok()) return Removal::kRemoved;
    return s.code() == absl::StatusCode::kFailedPrecondition ? Removal::kBusy
                                                             : Removal::kError;
  }

  void* Malloc(size_t n) { return memp_.Allocate(n); }
  void* MallocAligned(size_t n, size_t alignment) {
    return memp_.AllocateAligned(alignment, n);
  }
  void* Calloc(size_t count, size_t size) { return memp_.Calloc(count, size); }
  void* Realloc(void* p, size_t n) { return memp_.Reallocate(p, n); }
  // False when the free was refused as misuse.
  bool Free(void* p) { return memp_.Free(p); }
  size_t UsableSize(const void* p) { return memp_.UsableSize(p); }

  // Per-thread pools (kHasPools). Without `fall_back`, an exhausted pool
  // fails the request instead of passing it to the shared regions.
  absl::Status BindThisThread(void* begin, bool fall_back) {
    if constexpr (kHasPools) {
      return memp_.BindThisThread(begin, fall_back
                                             ? PoolExhaustion::kFallBackToShared
                                             : PoolExhaustion::kFail);
    }
    (void)begin;
    (void)fall_back;
    return absl::UnimplementedError("no per-thread pools");
  }
  absl::Status UnbindThisThread() {
    if constexpr (kHasPools) return memp_.UnbindThisThread();
    return absl::UnimplementedError("no per-thread pools");
  }

  // Returns every per-thread cache's blocks to the shared regions.
  absl::Status DrainCaches() {
    if constexpr (HasCaches()) memp_.DrainAllCaches();
    return absl::OkStatus();
  }
  // The calling thread's cache only.
  absl::Status FlushThisThread() {
    if constexpr (HasCaches()) memp_.FlushThisThread();
    return absl::OkStatus();
  }

  Usage Probe() {
    const MempStats s = memp_.Probe();
    return Usage{s.capacity_bytes, s.used_bytes,  s.free_bytes,
                 s.cached_bytes,   s.live_blocks, s.region_count,
                 s.invalid_frees};
  }
  std::vector<RegionUsage> ProbeRegions() {
    std::vector<RegionUsage> out;
    for (const RegionStats& r : memp_.ProbeRegions()) {
      out.push_back(RegionUsage{r.begin, r.end, r.capacity_bytes, r.used_bytes,
                                r.free_bytes, r.live_blocks});
    }
    return out;
  }
  // Each bound thread's pool (none without pools).
  std::vector<PoolUsage> ProbePools() {
    std::vector<PoolUsage> out;
    if constexpr (kHasPools) {
      for (const PoolStats& p : memp_.ProbePools()) {
        out.push_back(PoolUsage{p.thread_id, p.stats.capacity_bytes,
                                p.stats.used_bytes, p.stats.free_bytes,
                                p.stats.live_blocks, p.stats.cached_bytes});
      }
    }
    return out;
  }
  // Empty when the integrity check passes, else what it said.
  std::string Check() {
    const absl::Status s = memp_.Check();
    return s.ok() ? std::string() : s.ToString();
  }

  const MisuseCounter& misuse() const { return misuse_; }

 private:
  static constexpr bool HasCaches() {
    return std::is_same<FrontEnd, CachingMemp<sync::SpinLock>>::value ||
           std::is_same<FrontEnd, CachingMemp<sync::Mutex>>::value;
  }
  static void OnMisuse(void* context, MempError, const void* ptr) {
    static_cast<MisuseCounter*>(context)->Count(ptr);
  }

  FrontEnd memp_;
  MisuseCounter misuse_;
};

template <FMempPolicy kPolicy>
class CApiBackend {
 public:
  static constexpr bool kHasPools = kPolicy == FMEMP_POLICY_THREAD_POOLS;
  static constexpr bool kHasUsableSize = false;  // the C API has none

  static std::string Name() {
    switch (kPolicy) {
      case FMEMP_POLICY_MUTEX:
        return "CApiMutex";
      case FMEMP_POLICY_SPINLOCK:
        return "CApiSpinLock";
      case FMEMP_POLICY_THREAD_CACHE:
        return "CApiThreadCache";
      case FMEMP_POLICY_THREAD_POOLS:
        return "CApiThreadPools";
      default:
        return "CApiUnknown";
    }
  }

  CApiBackend() = default;
  CApiBackend(const CApiBackend&) = delete;
  CApiBackend& operator=(const CApiBackend&) = delete;
  ~CApiBackend() { FMempRelease(&memp_); }

  absl::Status Init(void* begin, void* end) {
    if (FError e = FMempInitWithPolicy(&memp_, begin, end, kPolicy)) {
      return absl::InternalError("FMempInitWithPolicy: " + std::to_string(e));
    }
    if (FError e =
            FMempSetErrorHandler(&memp_, &CApiBackend::OnMisuse, &misuse_)) {
      return absl::InternalError("FMempSetErrorHandler: " + std::to_string(e));
    }
    return absl::OkStatus();
  }
  absl::Status AddRegion(void* begin, void* end) {
    const FError e = FMempAddRegion(&memp_, begin, end);
    return e == FMEMP_SUCCESS
               ? absl::OkStatus()
               : absl::InternalError("FMempAddRegion: " + std::to_string(e));
  }
  Removal RemoveRegion(void* begin) {
    const FError e = FMempRemoveRegion(&memp_, begin);
    if (e == FMEMP_SUCCESS) return Removal::kRemoved;
    return e == FMEMP_ERR_REGION_BUSY ? Removal::kBusy : Removal::kError;
  }

  void* Malloc(size_t n) { return FMempMalloc(&memp_, n); }
  void* MallocAligned(size_t n, size_t alignment) {
    return FMempMallocAlign(&memp_, n, alignment);
  }
  void* Calloc(size_t count, size_t size) {
    return FMempCalloc(&memp_, count, size);
  }
  void* Realloc(void* p, size_t n) { return FMempRealloc(&memp_, p, n); }
  // FMempFree says nothing; a refused free shows in the misuse count.
  bool Free(void* p) {
    FMempFree(&memp_, p);
    return true;
  }
  size_t UsableSize(const void*) { return 0; }

  // FMEMP_ERR_NOT_SUPPORTED without FMEMP_POLICY_THREAD_POOLS.
  absl::Status BindThisThread(void* begin, bool fall_back) {
    const FError e = fall_back ? FMempBindThread(&memp_, begin)
                               : FMempBindThreadWithFlags(
                                     &memp_, begin, FMEMP_BIND_NO_FALLBACK);
    return e == FMEMP_SUCCESS
               ? absl::OkStatus()
               : absl::InternalError("FMempBindThread: " + std::to_string(e));
  }
  absl::Status UnbindThisThread() {
    const FError e = FMempUnbindThread(&memp_);
    return e == FMEMP_SUCCESS
               ? absl::OkStatus()
               : absl::InternalError("FMempUnbindThread: " + std::to_string(e));
  }

  // Every policy accepts these (no-ops without caches).
  absl::Status DrainCaches() {
    const FError e = FMempDrainThreadCaches(&memp_);
    return e == FMEMP_SUCCESS ? absl::OkStatus()
                              : absl::InternalError("FMempDrainThreadCaches: " +
                                                    std::to_string(e));
  }
  absl::Status FlushThisThread() {
    const FError e = FMempFlushThreadCache(&memp_);
    return e == FMEMP_SUCCESS ? absl::OkStatus()
                              : absl::InternalError("FMempFlushThreadCache: " +
                                                    std::to_string(e));
  }

  Usage Probe() {
    FMempUsage u = {};
    if (FMempProbe64(&memp_, &u) != FMEMP_SUCCESS) return Usage{};
    return Usage{u.total,       u.used,    u.free_bytes,   u.cached_bytes,
                 u.live_blocks, u.regions, u.invalid_frees};
  }
  // Region by region; regions removed meanwhile end the list early.
  std::vector<RegionUsage> ProbeRegions() {
    std::vector<RegionUsage> out;
    const u32 count = FMempRegionCount(&memp_);
    for (u32 i = 0; i < count; ++i) {
      FMempRegionUsage r = {};
      if (FMempProbeRegion(&memp_, i, &r) != FMEMP_SUCCESS) break;
      out.push_back(RegionUsage{r.begin, r.end, r.total, r.used, r.free_bytes,
                                r.live_blocks});
    }
    return out;
  }
  // Each bound thread's pool; pools unbound meanwhile end the list early.
  std::vector<PoolUsage> ProbePools() {
    std::vector<PoolUsage> out;
    const u32 count = FMempThreadPoolCount(&memp_);
    for (u32 i = 0; i < count; ++i) {
      FMempPoolUsage p = {};
      if (FMempProbeThreadPool(&memp_, i, &p) != FMEMP_SUCCESS) break;
      out.push_back(PoolUsage{p.thread_id, p.total, p.used, p.free_bytes,
                              p.live_blocks, p.cached_bytes});
    }
    return out;
  }
  std::string Check() {
    const FError e = FMempCheck(&memp_);
    return e == FMEMP_SUCCESS ? std::string()
                              : "FMempCheck: " + std::to_string(e);
  }

  const MisuseCounter& misuse() const { return misuse_; }

 private:
  static void OnMisuse(void* user, int, const void* ptr) {
    static_cast<MisuseCounter*>(user)->Count(ptr);
  }

  FMemp memp_ = {};
  MisuseCounter misuse_;
};

}  // namespace stress
}  // namespace fmemp

#endif  // FMEMP_TESTS_STRESS_BACKENDS_H_
