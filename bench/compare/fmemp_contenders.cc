// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/fmemp_contenders.cc
//
// The contender list of the glibc binary: glibc malloc and every fmemp
// allocator (the bare TLSF heap, Memp with each lock policy, per-thread
// caches, per-thread pools, and the C API with each thread-safe policy),
// each over regions cut from MAP_NORESERVE mappings. Linked into the glibc
// binary only, so that fmemp's own bookkeeping (which comes from the process
// heap) never runs on jemalloc, tcmalloc or mimalloc.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "bench/compare/contender.h"
#include "bench/compare/malloc_contender.h"
#include "bench/workload.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/prefault.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_pool.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"
#include "tlsf/heap.h"

namespace fmemp::bench::compare {
namespace {

// spec.regions equal regions of spec.total_bytes / spec.regions bytes each,
// cut from one anonymous MAP_NORESERVE mapping with an unused page between
// neighbours, so no two regions are adjacent. Only touched pages cost
// memory; with spec.prefault every page of every region is made resident
// here with fmemp::PrefaultRange, as a latency-sensitive user would.
class RegionMemory {
 public:
  static constexpr size_t kGap = 4096;

  explicit RegionMemory(const HeapSpec& spec)
      : count_(spec.regions < 1 ? 1 : spec.regions),
        region_bytes_(spec.total_bytes / count_ / kGap * kGap),
        mapping_((region_bytes_ + kGap) * count_) {
    if (!spec.prefault || !ok()) return;
    for (int i = 0; i < count_; ++i) {
      const absl::Status status = PrefaultRange(begin(i), region_bytes_);
      if (!status.ok()) {
        std::fprintf(stderr, "prefault: %s\n", status.ToString().c_str());
      }
    }
  }

  bool ok() const { return mapping_.data() != nullptr && region_bytes_ > 0; }
  int count() const { return count_; }
  size_t region_bytes() const { return region_bytes_; }
  char* begin(int i) const {
    return static_cast<char*>(mapping_.data()) + i * (region_bytes_ + kGap);
  }
  char* end(int i) const { return begin(i) + region_bytes_; }

 private:
  int count_;
  size_t region_bytes_;
  Mapping mapping_;
};

// Adds every region of `memory` to the C++ front-end `memp`; false if the
// memory is missing or a region is refused.
template <typename FrontEnd>
bool AddEveryRegion(const RegionMemory& memory, FrontEnd& memp) {
  if (!memory.ok()) return false;
  for (int i = 0; i < memory.count(); ++i) {
    if (!memp.AddRegion(memory.begin(i), memory.end(i)).ok()) return false;
  }
  return true;
}

// fmemp::Memp<Policy>, one region per RegionMemory region.
template <typename Policy>
class MempAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = Policy::kThreadSafe;

  explicit MempAdapter(const HeapSpec& spec) : memory_(spec) {}
  static std::unique_ptr<MempAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<MempAdapter>(spec);
    if (!AddEveryRegion(adapter->memory_, adapter->memp_)) return nullptr;
    return adapter;
  }
  void* Allocate(size_t bytes) { return memp_.Allocate(bytes); }
  void Free(void* ptr) { memp_.Free(ptr); }
  size_t PeakBytes() const { return memp_.Probe().peak_used_bytes; }

 private:
  RegionMemory memory_;
  Memp<Policy> memp_;
};

// The bare TLSF heap, one pool per region: with Lock = std::mutex, what the
// SDK offers to threads; with NoHeapLock, the heap alone (one thread only,
// the counterpart of the reference TLSF without a lock).
struct NoHeapLock {
  void lock() {}
  void unlock() {}
};

template <typename Lock>
class HeapAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = !std::is_same_v<Lock, NoHeapLock>;

  explicit HeapAdapter(const HeapSpec& spec) : memory_(spec) {}
  static std::unique_ptr<HeapAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<HeapAdapter>(spec);
    const RegionMemory& memory = adapter->memory_;
    if (!memory.ok()) return nullptr;
    for (int i = 0; i < memory.count(); ++i) {
      if (!adapter->heap_.AddPool(memory.begin(i), memory.region_bytes())
               .ok()) {
        return nullptr;
      }
    }
    return adapter;
  }
  void* Allocate(size_t bytes) {
    std::lock_guard<Lock> hold(lock_);
    return heap_.Allocate(bytes);
  }
  void Free(void* ptr) {
    std::lock_guard<Lock> hold(lock_);
    heap_.Free(ptr);
  }
  size_t PeakBytes() const {
    std::lock_guard<Lock> hold(lock_);
    return heap_.Stats().peak_used_bytes;
  }

 private:
  RegionMemory memory_;
  mutable Lock lock_;
  tlsf::Heap heap_;
};

// fmemp::CachingMemp<Lock>: per-thread caches in front of the shared
// regions. A thread's cache registers on its first call; ThreadEnd returns
// it (FlushThisThread), as the thread's exit would, so that every case
// starts and ends with empty caches even on the main thread. kBudget 0 runs
// the default CacheOptions; another value sets max_bytes_per_thread (the
// other options stay at their defaults).
template <typename Lock, size_t kBudget = 0>
class ThreadCacheAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = true;

  explicit ThreadCacheAdapter(const HeapSpec& spec)
      : memory_(spec), memp_(Options()) {}
  static std::unique_ptr<ThreadCacheAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<ThreadCacheAdapter>(spec);
    if (!AddEveryRegion(adapter->memory_, adapter->memp_)) return nullptr;
    return adapter;
  }
  void* Allocate(size_t bytes) { return memp_.Allocate(bytes); }
  void Free(void* ptr) { memp_.Free(ptr); }
  void ThreadEnd() { memp_.FlushThisThread(); }
  // Cached blocks count as used in the peak.
  size_t PeakBytes() const { return memp_.Probe().peak_used_bytes; }

 private:
  static CacheOptions Options() {
    CacheOptions options;
    if (kBudget != 0) options.max_bytes_per_thread = kBudget;
    return options;
  }

  RegionMemory memory_;
  CachingMemp<Lock> memp_;
};

// The memory of per-thread pools. How the pools are sized: every thread
// that calls ThreadStart gets its own copy of the whole HeapSpec (its own
// MAP_NORESERVE mapping of spec.total_bytes, split into spec.regions
// regions, all bound to that thread). The workloads size a HeapSpec for
// everything they keep live over all their threads (bench/compare/
// workloads.cc: twice the largest live bytes plus 64 MiB), so each thread's
// pool holds its own live set, the blocks it has handed to other threads
// and not yet got back, and the frees queued to it, with room to spare;
// only touched pages cost memory. Pools are bound without fallback to the
// shared regions, so a pool that is too small shows up as a failed
// allocation rather than as quiet borrowing; for the same reason the memory
// workload's smallest region is the smallest pool.
class ThreadRegions {
 public:
  explicit ThreadRegions(const HeapSpec& spec) : spec_(spec) {}

  // Maps a new copy of the spec for the calling thread; nullptr on failure.
  const RegionMemory* Add() {
    auto memory = std::make_unique<RegionMemory>(spec_);
    if (!memory->ok()) return nullptr;
    std::lock_guard<std::mutex> hold(mutex_);
    memories_.push_back(std::move(memory));
    return memories_.back().get();
  }

 private:
  const HeapSpec spec_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<RegionMemory>> memories_;
};

// Keeps the largest of the peaks handed to it (a pool's peak is read before
// the thread unbinds: moving its regions back to the shared set keeps their
// used bytes but not their peak).
class PeakKeeper {
 public:
  void Note(size_t peak) {
    size_t seen = peak_.load(std::memory_order_relaxed);
    while (peak > seen && !peak_.compare_exchange_weak(seen, peak)) {
    }
  }
  size_t Max(size_t now) const {
    return std::max(now, peak_.load(std::memory_order_relaxed));
  }

 private:
  std::atomic<size_t> peak_{0};
};

// fmemp::PoolingMemp<Lock>: each benchmark thread allocates from a pool of
// its own. ThreadStart adds the thread's regions (ThreadRegions) and binds
// them (BindThisThread); ThreadEnd unbinds (UnbindThisThread), which
// applies the frees other threads queued to it and moves the regions, with
// any blocks still live in them, back to the shared set. There are no other
// shared regions: every workload thread calls ThreadStart before it
// allocates.
template <typename Lock>
class ThreadPoolAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = true;

  explicit ThreadPoolAdapter(const HeapSpec& spec) : regions_(spec) {}
  static std::unique_ptr<ThreadPoolAdapter> Create(const HeapSpec& spec) {
    return std::make_unique<ThreadPoolAdapter>(spec);
  }
  void ThreadStart() {
    const RegionMemory* memory = regions_.Add();
    bool ok = memory != nullptr;
    for (int i = 0; ok && i < memory->count(); ++i) {
      ok = memp_.AddRegion(memory->begin(i), memory->end(i)).ok() &&
           memp_.BindThisThread(memory->begin(i), PoolExhaustion::kFail).ok();
    }
    if (!ok) std::fprintf(stderr, "memp-thread-pool: cannot bind a pool\n");
  }
  void ThreadEnd() {
    peak_.Note(memp_.Probe().peak_used_bytes);
    memp_.UnbindThisThread().IgnoreError();
  }
  void* Allocate(size_t bytes) { return memp_.Allocate(bytes); }
  void Free(void* ptr) { memp_.Free(ptr); }
  // Sum of each pool's and the shared set's peak: an upper bound.
  size_t PeakBytes() const { return peak_.Max(memp_.Probe().peak_used_bytes); }

 private:
  ThreadRegions regions_;  // outlives memp_
  PeakKeeper peak_;
  PoolingMemp<Lock> memp_;
};

// The SDK's C API: FMempInit (the default policy) when kDefaultPolicy,
// else FMempInitWithPolicy(kPolicy); regions after the first through
// FMempAddRegion.
//
// FMEMP_POLICY_THREAD_CACHE: ThreadEnd calls FMempFlushThreadCache.
// FMEMP_POLICY_THREAD_POOLS: as ThreadPoolAdapter, each thread adds its own
// copy of the HeapSpec (ThreadRegions) and binds every region of it with
// FMempBindThreadWithFlags(FMEMP_BIND_NO_FALLBACK); ThreadEnd calls
// FMempUnbindThread. FMempInit needs a region, so the shared part is one
// small region (kPoolsSharedBytes) that the workloads never allocate from.
constexpr size_t kPoolsSharedBytes = size_t{1} << 20;

template <bool kDefaultPolicy, FMempPolicy kPolicy>
class CApiAdapter : public AdapterDefaults {
 public:
  static constexpr bool kPools = kPolicy == FMEMP_POLICY_THREAD_POOLS;
  static constexpr bool kThreadSafe = kPolicy != FMEMP_POLICY_SINGLE_THREAD;

  explicit CApiAdapter(const HeapSpec& spec)
      : memory_(kPools ? HeapSpec{kPoolsSharedBytes, 1} : spec),
        thread_regions_(spec) {}
  CApiAdapter(const CApiAdapter&) = delete;
  CApiAdapter& operator=(const CApiAdapter&) = delete;
  ~CApiAdapter() {
    FMempRemove(&memp_);
    FMempRelease(&memp_);
  }
  static std::unique_ptr<CApiAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<CApiAdapter>(spec);
    const RegionMemory& memory = adapter->memory_;
    FMemp* memp = &adapter->memp_;
    if (!memory.ok()) return nullptr;
    const FError init = kDefaultPolicy
                            ? FMempInit(memp, memory.begin(0), memory.end(0))
                            : FMempInitWithPolicy(memp, memory.begin(0),
                                                  memory.end(0), kPolicy);
    if (init != FMEMP_SUCCESS) return nullptr;
    for (int i = 1; i < memory.count(); ++i) {
      if (FMempAddRegion(memp, memory.begin(i), memory.end(i)) !=
          FMEMP_SUCCESS) {
        return nullptr;
      }
    }
    return adapter;
  }
  void ThreadStart() {
    if constexpr (kPools) {
      const RegionMemory* memory = thread_regions_.Add();
      bool ok = memory != nullptr;
      for (int i = 0; ok && i < memory->count(); ++i) {
        ok = FMempAddRegion(&memp_, memory->begin(i), memory->end(i)) ==
                 FMEMP_SUCCESS &&
             FMempBindThreadWithFlags(&memp_, memory->begin(i),
                                      FMEMP_BIND_NO_FALLBACK) == FMEMP_SUCCESS;
      }
      if (!ok) std::fprintf(stderr, "c-api-thread-pools: cannot bind\n");
    }
  }
  void ThreadEnd() {
    if constexpr (kPolicy == FMEMP_POLICY_THREAD_CACHE) {
      FMempFlushThreadCache(&memp_);
    }
    if constexpr (kPools) {
      peak_.Note(Probe().max_used);
      FMempUnbindThread(&memp_);
    }
  }
  void* Allocate(size_t bytes) { return FMempMalloc(&memp_, bytes); }
  void Free(void* ptr) { FMempFree(&memp_, ptr); }
  size_t PeakBytes() const { return peak_.Max(Probe().max_used); }

 private:
  FMempUsage Probe() const {
    FMempUsage usage{};
    FMempProbe64(const_cast<FMemp*>(&memp_), &usage);
    return usage;
  }

  RegionMemory memory_;
  ThreadRegions thread_regions_;  // used by FMEMP_POLICY_THREAD_POOLS only
  PeakKeeper peak_;
  FMemp memp_{};
};

}  // namespace

std::vector<Contender> AllContenders(const std::string& malloc_name) {
  using CApiDefault = CApiAdapter<true, FMEMP_POLICY_MUTEX>;
  return {
      MallocContender(malloc_name),
      MakeContender<HeapAdapter<NoHeapLock>>("tlsf-heap", Family::kFmemp),
      MakeContender<MempAdapter<sync::NoLock>>("memp-nolock", Family::kFmemp),
      MakeContender<MempAdapter<sync::SpinLock>>("memp-spinlock",
                                                 Family::kFmemp),
      MakeContender<MempAdapter<sync::Mutex>>("memp-mutex", Family::kFmemp),
      MakeContender<ThreadCacheAdapter<sync::SpinLock>>("memp-thread-cache",
                                                        Family::kFmemp),
      MakeContender<ThreadPoolAdapter<sync::SpinLock>>("memp-thread-pool",
                                                       Family::kFmemp),
      // The same caches with the budget CacheOptions had before ab007e5
      // (256 KiB): less than one 8 KiB refill of each of the 64 size
      // classes, so refills and trims chase each other. Not a policy of its
      // own; it keeps that failure mode measured until the trim and refill
      // themselves are fixed (docs/BENCHMARKS.md, "Why the targets are
      // missed", point 1).
      MakeContender<ThreadCacheAdapter<sync::SpinLock, size_t{256} << 10>>(
          "memp-thread-cache-256k", Family::kFmemp),
      MakeContender<HeapAdapter<std::mutex>>("tlsf-heap+mutex", Family::kFmemp),
      // The C API: FMempInit's default policy (what users get without
      // choosing; FMEMP_POLICY_THREAD_CACHE since 8f4442c), then each other
      // thread-safe policy by name, the old default (mutex) included.
      MakeContender<CApiDefault>("fmemp-c-api", Family::kFmemp),
      MakeContender<CApiAdapter<false, FMEMP_POLICY_MUTEX>>("c-api-mutex",
                                                            Family::kFmemp),
      MakeContender<CApiAdapter<false, FMEMP_POLICY_SPINLOCK>>("c-api-spinlock",
                                                               Family::kFmemp),
      MakeContender<CApiAdapter<false, FMEMP_POLICY_THREAD_CACHE>>(
          "c-api-thread-cache", Family::kFmemp),
      MakeContender<CApiAdapter<false, FMEMP_POLICY_THREAD_POOLS>>(
          "c-api-thread-pools", Family::kFmemp),
      // New fmemp front-ends go here, one entry each: an adapter class as
      // above (Create over the HeapSpec's regions, Allocate, Free, and
      // ThreadStart/ThreadEnd for per-thread state). Every workload, table
      // and chart picks the entry up by its name.
  };
}

}  // namespace fmemp::bench::compare
