// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/fmemp_entry_memory.h
//
// FmempEntryMemory: the server's keys and values in one FMemp pool (the SDK
// C API, fmemp/fmemp.h) over regions mapped with mmap.
//
// * maxmemory is fmemp's hard limit (FMempSetLimit(max_bytes)): a SET whose
//   entry would take the pool's usage (entries, headers and blocks parked in
//   per-thread caches) past it is refused by fmemp itself, exactly, and the
//   server answers -OOM; nothing aborts. The server keeps no count of its
//   own.
// * Eviction (SetEvictor, --maxmemory_policy=allkeys-random): a soft limit
//   at `evict_at_percent` of max_bytes (FMempSetSoftLimit) calls the
//   evictor, outside fmemp's locks, on the thread whose allocation crossed
//   it, to free entries down to `evict_to_percent`; the handler is re-armed
//   once usage is back under that mark.
// * Growth: the pool starts with one region of `region_bytes`. When an
//   allocation finds no room, fmemp calls the out-of-memory handler (outside
//   the pool's lock); it maps another region (region_bytes, or more for a
//   larger request), adds it with FMempAddRegion and has the request retried,
//   as long as the mapped total stays within twice max_bytes (room for
//   the heaps' overhead, fragmentation and the workers' own regions, so that
//   the limit, not the mapping, decides; pages are touched only as blocks
//   use them). A request the limit refuses never reaches the handler.
// * Shrinking: Trim removes every region beyond the first that holds no live
//   block (FMempRemoveRegion refuses busy ones with FMEMP_ERR_REGION_BUSY)
//   and unmaps it. It runs after FLUSHALL (first draining per-thread
//   caches, whose parked blocks keep a region busy) and after every
//   kTrimInterval frees (without draining, and only if no other trim runs).
// * Policies: mutex, spinlock and thread_cache are FMempInitWithPolicy's
//   policies (thread_cache: per-thread caches of small blocks; their bytes
//   show as fmemp_cached_bytes in INFO and are not "used"). thread_heaps
//   needs fmemp's per-thread heaps; when fmemp/fmemp.h does not define
//   FMEMP_POLICY_THREAD_HEAPS_AVAILABLE it is reported unavailable (Create
//   fails with a clear message). With thread_heaps every worker maps a
//   region of its own, adds it, and binds itself to it (FMempBindThread) in
//   AttachThread; DetachThread unbinds it, after which the region is shared
//   and can be trimmed.
// * Thread safety: every member may be called from any thread. mu_ guards
//   the table of mappings; it is always taken before the pool's lock, never
//   while holding it (the out-of-memory handler runs outside the pool lock).
// * Teardown: the destructor removes the pool (FMempRemove, FMempRelease)
//   and unmaps every region; entries still live at that point are lost, so
//   free them first (the server clears its store and calls Check).

#ifndef FMEMP_EXAMPLES_KV_SERVER_FMEMP_ENTRY_MEMORY_H_
#define FMEMP_EXAMPLES_KV_SERVER_FMEMP_ENTRY_MEMORY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "examples/kv_server/entry_memory.h"
#include "fmemp/fmemp.h"

namespace kv_server {

enum class PoolPolicy { kMutex, kSpinLock, kThreadCache, kThreadHeaps };

// "mutex", "spinlock", "thread_cache", "thread_heaps"; InvalidArgument for
// other names, Unimplemented for a policy this build of fmemp lacks.
absl::StatusOr<PoolPolicy> ParsePoolPolicy(absl::string_view name);
absl::string_view PoolPolicyName(PoolPolicy policy);
// Policies this build supports, in the order above.
std::vector<PoolPolicy> AvailablePoolPolicies();

struct FmempOptions {
  PoolPolicy policy = PoolPolicy::kMutex;
  size_t region_bytes = size_t{8} << 20;  // each region mapped on growth
  size_t max_bytes = size_t{256} << 20;   // fmemp's hard limit (maxmemory)
  // With an evictor: the soft limit, and where eviction stops, in percent
  // of max_bytes.
  int evict_at_percent = 90;
  int evict_to_percent = 80;
};

class FmempEntryMemory : public EntryMemory {
 public:
  // Trim after this many frees (see the header comment).
  static constexpr uint64_t kTrimInterval = 4096;

  static absl::StatusOr<std::unique_ptr<FmempEntryMemory>> Create(
      const FmempOptions& options);
  ~FmempEntryMemory() override;
  FmempEntryMemory(const FmempEntryMemory&) = delete;
  FmempEntryMemory& operator=(const FmempEntryMemory&) = delete;

  void* Allocate(size_t bytes) noexcept override;
  void Free(void* block) noexcept override;
  absl::Status AttachThread() override;
  void DetachThread() override;
  void OnIdle() override;
  void Trim() override ABSL_LOCKS_EXCLUDED(mu_);
  void AppendInfo(std::string* out) const override ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t UsedBytes() const override;
  absl::Status Check() override;
  bool SetEvictor(Evictor evict) override;
  // FMempRetireRegion on region `index`; the retirement handler only notes
  // the region (it may run on any thread, even one inside Trim), and the
  // next call that holds mu_ unmaps it. InvalidArgument for the first
  // region, a bound one or an index out of range.
  absl::Status RetireRegion(size_t index) override ABSL_LOCKS_EXCLUDED(mu_);

  // Regions in the pool now (the first one included).
  uint32_t RegionCount() const;

 private:
  struct Mapping {
    char* begin;
    size_t bytes;
    bool bound;  // a worker is bound to it (thread_heaps)
  };

  explicit FmempEntryMemory(const FmempOptions& options);
  absl::Status Init();
  static int OnOutOfMemory(void* user, fsize_t size, fsize_t align);
  static void OnSoftLimit(void* user, u64 usage, u64 soft_limit);
  static void OnRegionRetired(void* user, void* begin, void* end);
  // Unmaps the regions retirement removed (noted by OnRegionRetired).
  void UnmapRetired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Grow(size_t size, size_t align) ABSL_LOCKS_EXCLUDED(mu_);
  // Maps `bytes` and adds them as a region; nullptr past the cap or on error.
  char* AddMappedRegion(size_t bytes, bool bound)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes and unmaps empty regions beyond the first (not bound ones).
  void TrimLocked(bool drain_caches) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FmempOptions options_;
  // The C API takes non-const FMemp* even to probe.
  mutable FMemp memp_ = {};
  mutable absl::Mutex mu_;
  std::vector<Mapping> mappings_ ABSL_GUARDED_BY(mu_);  // [0]: the first
  uint64_t mapped_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t regions_added_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t regions_removed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t growth_refused_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> frees_{0};
  // Set once, before the server starts (SetEvictor); read by OnSoftLimit.
  Evictor evict_;
  std::atomic<uint64_t> evictions_{0};      // soft-limit crossings handled
  std::atomic<uint64_t> evicted_bytes_{0};  // entry bytes they freed
  // Regions retirement removed, not yet unmapped (OnRegionRetired).
  absl::Mutex retired_mu_;
  std::vector<void*> retired_ ABSL_GUARDED_BY(retired_mu_);
  uint64_t regions_retired_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_FMEMP_ENTRY_MEMORY_H_
