// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/fmemp_contenders.cc
//
// The contender list of the glibc binary: glibc malloc and every fmemp
// allocator (the bare TLSF heap, Memp with each lock policy, per-thread
// caches, per-thread heaps, and the C API with each thread-safe policy),
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
#include "fmemp/prefault.h"
#include "fmemp/testing/front_end.h"
#include "fmemp/testing/front_end_list.h"
#include "fmemp/thread_cache.h"
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

// The memory of per-thread heaps. How the thread heaps are sized: every thread
// that calls ThreadStart gets its own copy of the whole HeapSpec (its own
// MAP_NORESERVE mapping of spec.total_bytes, split into spec.regions
// regions, all bound to that thread). The workloads size a HeapSpec for
// everything they keep live over all their threads (bench/compare/
// workloads.cc: twice the largest live bytes plus 64 MiB), so each thread's
// thread heap holds its own live set, the blocks it has handed to other threads
// and not yet got back, and the frees queued to it, with room to spare;
// only touched pages cost memory. Thread heaps are bound without fallback to
// the shared regions, so a thread heap that is too small shows up as a failed
// allocation rather than as quiet borrowing; for the same reason the memory
// workload's smallest region is the smallest thread heap.
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

// Keeps the largest of the peaks handed to it (a thread heap's peak is read
// before the thread unbinds: moving its regions back to the shared set keeps
// their used bytes but not their peak).
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

// Every fmemp front-end, through the shared adapter
// (fmemp/testing/front_end.h; FrontEnd is an entry of front_end_list.h).
// Allocate and Free are one inline call into the front-end, as if it were
// called directly: the adapter is a template, with no virtual call.
//
// * Shared regions (no thread heaps): every region of the HeapSpec is added
//   (the C API: the first through FMempInit / FMempInitWithPolicy).
// * Per-thread caches: ThreadEnd returns the thread's cache
//   (FlushThisThread / FMempFlushThreadCache), as the thread's exit would,
//   so that every case starts and ends with empty caches even on the main
//   thread. kCacheBudget 0 runs the default CacheOptions; another value
//   sets max_bytes_per_thread (C++ front-ends only).
// * Per-thread heaps: ThreadStart adds the thread's own copy of the
//   HeapSpec (ThreadRegions) and binds every region of it without fallback
//   (BindThisThread with FMEMP_BIND_NO_FALLBACK); ThreadEnd unbinds, which
//   applies the frees other threads queued to it and moves the regions,
//   with any blocks still live in them, back to the shared set. The C++
//   front-end has no other regions; the C API needs one for FMempInit, so
//   its shared part is one small region (kThreadHeapsSharedBytes) that the
//   workloads never allocate from.
constexpr size_t kThreadHeapsSharedBytes = size_t{1} << 20;

// kLimit: a hard limit set after the regions are added (0: none), far above
// what any workload takes: the cost of a budget that charges but never
// refuses (issue 15).
template <typename FrontEnd, size_t kCacheBudget = 0, size_t kLimit = 0>
class FrontEndAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = FrontEnd::kThreadSafe;
  static constexpr bool kThreadHeaps = FrontEnd::kHasThreadHeaps;

  explicit FrontEndAdapter(const HeapSpec& spec)
      : memory_(SharedSpec(spec)), thread_regions_(spec), front_(Make()) {}
  static std::unique_ptr<FrontEndAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<FrontEndAdapter>(spec);
    const RegionMemory& memory = adapter->memory_;
    FrontEnd& front = adapter->front_;
    if constexpr (kLimit != 0) front.SetLimit(kLimit);
    if (kThreadHeaps && !FrontEnd::kIsCApi)
      return adapter;  // no shared regions
    if (!memory.ok()) return nullptr;
    for (int i = 0; i < memory.count(); ++i) {
      const testkit::Outcome added =
          i == 0 ? front.Init(memory.begin(i), memory.end(i))
                 : front.AddRegion(memory.begin(i), memory.end(i));
      if (added != testkit::Outcome::kOk) return nullptr;
    }
    return adapter;
  }
  void ThreadStart() {
    if constexpr (kThreadHeaps) {
      const RegionMemory* memory = thread_regions_.Add();
      bool ok = memory != nullptr;
      for (int i = 0; ok && i < memory->count(); ++i) {
        ok = front_.AddRegion(memory->begin(i), memory->end(i)) ==
                 testkit::Outcome::kOk &&
             front_.BindThisThread(memory->begin(i), FMEMP_BIND_NO_FALLBACK) ==
                 testkit::Outcome::kOk;
      }
      if (!ok) {
        std::fprintf(stderr, "%s: cannot bind a thread heap\n",
                     FrontEnd::Name().c_str());
      }
    }
  }
  void ThreadEnd() {
    if constexpr (FrontEnd::kHasCaches) front_.FlushThisThread();
    if constexpr (kThreadHeaps) {
      peak_.Note(front_.Probe().peak);
      front_.UnbindThisThread();
    }
  }
  void* Allocate(size_t bytes) { return front_.Allocate(bytes); }
  void Free(void* ptr) { front_.FreeUnchecked(ptr); }
  // The probe's peak of used bytes (cached blocks count as used in it);
  // with thread heaps, the largest of it and of each thread heap's peak before
  // unbinding.
  size_t PeakBytes() const { return peak_.Max(front_.Probe().peak); }

 private:
  static HeapSpec SharedSpec(const HeapSpec& spec) {
    return kThreadHeaps ? HeapSpec{kThreadHeapsSharedBytes, 1} : spec;
  }
  static FrontEnd Make() {
    if constexpr (kCacheBudget != 0) {
      CacheOptions options;
      options.max_bytes_per_thread = kCacheBudget;
      return FrontEnd(options);
    } else {
      return FrontEnd();
    }
  }

  RegionMemory memory_;  // outlives front_
  ThreadRegions
      thread_regions_;  // used with thread heaps only; outlives front_
  PeakKeeper peak_;
  FrontEnd front_;
};

}  // namespace

std::vector<Contender> AllContenders(const std::string& malloc_name) {
  using testkit::CachingMempSpinLock;
  using testkit::CApiDefault;
  using testkit::CApiMutex;
  using testkit::CApiSpinLock;
  using testkit::CApiThreadCache;
  using testkit::CApiThreadHeaps;
  using testkit::MempMutex;
  using testkit::MempNoLock;
  using testkit::MempSpinLock;
  using testkit::ThreadHeapMempSpinLock;
  return {
      MallocContender(malloc_name),
      MakeContender<HeapAdapter<NoHeapLock>>("tlsf-heap", Family::kFmemp),
      MakeContender<FrontEndAdapter<MempNoLock>>("memp-nolock", Family::kFmemp),
      MakeContender<FrontEndAdapter<MempSpinLock>>("memp-spinlock",
                                                   Family::kFmemp),
      MakeContender<FrontEndAdapter<MempMutex>>("memp-mutex", Family::kFmemp),
      MakeContender<FrontEndAdapter<CachingMempSpinLock>>("memp-thread-cache",
                                                          Family::kFmemp),
      MakeContender<FrontEndAdapter<ThreadHeapMempSpinLock>>("memp-thread-heap",
                                                             Family::kFmemp),
      // The same caches with the budget CacheOptions had before ab007e5
      // (256 KiB): less than one 8 KiB refill of each of the 64 size
      // classes, so refills and trims chase each other. Not a policy of its
      // own; it keeps that failure mode measured until the trim and refill
      // themselves are fixed (docs/BENCHMARKS.md, "Why the targets are
      // missed", point 1).
      MakeContender<FrontEndAdapter<CachingMempSpinLock, size_t{256} << 10>>(
          "memp-thread-cache-256k", Family::kFmemp),
      MakeContender<HeapAdapter<std::mutex>>("tlsf-heap+mutex", Family::kFmemp),
      // The C API: FMempInit's default policy (what users get without
      // choosing; FMEMP_POLICY_THREAD_CACHE since 8f4442c), then each other
      // thread-safe policy by name, the old default (mutex) included.
      MakeContender<FrontEndAdapter<CApiDefault>>("fmemp-c-api",
                                                  Family::kFmemp),
      MakeContender<FrontEndAdapter<CApiMutex>>("c-api-mutex", Family::kFmemp),
      MakeContender<FrontEndAdapter<CApiSpinLock>>("c-api-spinlock",
                                                   Family::kFmemp),
      MakeContender<FrontEndAdapter<CApiThreadCache>>("c-api-thread-cache",
                                                      Family::kFmemp),
      MakeContender<FrontEndAdapter<CApiThreadHeaps>>("c-api-thread-heaps",
                                                      Family::kFmemp),
      // The default policy with a hard limit set (1 TiB: charged, never
      // reached), against c-api-thread-cache: what a limit costs.
      MakeContender<FrontEndAdapter<CApiThreadCache, 0, size_t{1} << 40>>(
          "c-api-thread-cache-limit", Family::kFmemp),
      // New fmemp front-ends go here, one entry each: a FrontEndAdapter
      // over an entry of fmemp/testing/front_end_list.h (a new policy is
      // added to the adapter first). Every workload, table and chart picks
      // the entry up by its name.
  };
}

}  // namespace fmemp::bench::compare
