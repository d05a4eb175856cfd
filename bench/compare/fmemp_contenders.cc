// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/fmemp_contenders.cc
//
// The contender list of the glibc binary: glibc malloc and every fmemp
// allocator, each over regions cut from one MAP_NORESERVE mapping. Linked
// into the glibc binary only, so that fmemp's own bookkeeping (which comes
// from the process heap) never runs on jemalloc, tcmalloc or mimalloc.

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench/compare/contender.h"
#include "bench/compare/malloc_contender.h"
#include "bench/workload.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"
#include "tlsf/heap.h"

namespace fmemp::bench::compare {
namespace {

// spec.regions equal regions of spec.total_bytes / spec.regions bytes each,
// cut from one anonymous MAP_NORESERVE mapping with an unused page between
// neighbours, so no two regions are adjacent. Only touched pages cost
// memory.
class RegionMemory {
 public:
  static constexpr size_t kGap = 4096;

  explicit RegionMemory(const HeapSpec& spec)
      : count_(spec.regions < 1 ? 1 : spec.regions),
        region_bytes_(spec.total_bytes / count_ / kGap * kGap),
        mapping_((region_bytes_ + kGap) * count_) {}

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

// fmemp::Memp<Policy>, one region per RegionMemory region.
template <typename Policy>
class MempAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = Policy::kThreadSafe;

  explicit MempAdapter(const HeapSpec& spec) : memory_(spec) {}
  static std::unique_ptr<MempAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<MempAdapter>(spec);
    const RegionMemory& memory = adapter->memory_;
    if (!memory.ok()) return nullptr;
    for (int i = 0; i < memory.count(); ++i) {
      if (!adapter->memp_.AddRegion(memory.begin(i), memory.end(i)).ok()) {
        return nullptr;
      }
    }
    return adapter;
  }
  void* Allocate(size_t bytes) { return memp_.Allocate(bytes); }
  void Free(void* ptr) { memp_.Free(ptr); }
  size_t PeakBytes() const { return memp_.Probe().peak_used_bytes; }

 private:
  RegionMemory memory_;
  Memp<Policy> memp_;
};

// The bare TLSF heap behind one std::mutex: what the SDK offers. One pool
// per region.
class LockedHeapAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = true;

  explicit LockedHeapAdapter(const HeapSpec& spec) : memory_(spec) {}
  static std::unique_ptr<LockedHeapAdapter> Create(const HeapSpec& spec) {
    auto adapter = std::make_unique<LockedHeapAdapter>(spec);
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
    std::lock_guard<std::mutex> hold(mutex_);
    return heap_.Allocate(bytes);
  }
  void Free(void* ptr) {
    std::lock_guard<std::mutex> hold(mutex_);
    heap_.Free(ptr);
  }
  size_t PeakBytes() const {
    std::lock_guard<std::mutex> hold(mutex_);
    return heap_.Stats().peak_used_bytes;
  }

 private:
  RegionMemory memory_;
  mutable std::mutex mutex_;
  tlsf::Heap heap_;
};

// The SDK's C API with its default policy (FMempInit: a mutex); regions
// after the first through FMempAddRegion.
class CApiAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = true;

  explicit CApiAdapter(const HeapSpec& spec) : memory_(spec) {}
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
    if (!memory.ok() ||
        FMempInit(memp, memory.begin(0), memory.end(0)) != FMEMP_SUCCESS) {
      return nullptr;
    }
    for (int i = 1; i < memory.count(); ++i) {
      if (FMempAddRegion(memp, memory.begin(i), memory.end(i)) !=
          FMEMP_SUCCESS) {
        return nullptr;
      }
    }
    return adapter;
  }
  void* Allocate(size_t bytes) { return FMempMalloc(&memp_, bytes); }
  void Free(void* ptr) { FMempFree(&memp_, ptr); }
  size_t PeakBytes() const {
    FMempUsage usage{};
    FMempProbe64(const_cast<FMemp*>(&memp_), &usage);
    return usage.max_used;
  }

 private:
  RegionMemory memory_;
  FMemp memp_{};
};

}  // namespace

std::vector<Contender> AllContenders(const std::string& malloc_name) {
  return {
      MallocContender(malloc_name),
      MakeContender<MempAdapter<sync::NoLock>>("memp-nolock", Family::kFmemp),
      MakeContender<MempAdapter<sync::SpinLock>>("memp-spinlock",
                                                 Family::kFmemp),
      MakeContender<MempAdapter<sync::Mutex>>("memp-mutex", Family::kFmemp),
      MakeContender<LockedHeapAdapter>("tlsf-heap+mutex", Family::kFmemp),
      MakeContender<CApiAdapter>("fmemp-c-api", Family::kFmemp),
      // New fmemp front-ends go here, one entry each: an adapter class as
      // above (Create over the HeapSpec's regions, Allocate, Free, and
      // ThreadStart/ThreadEnd for per-thread state) and a line such as
      //   MakeContender<ThreadCacheAdapter>("memp-thread-cache",
      //                                     Family::kFmemp),
      //   MakeContender<ThreadPoolAdapter>("memp-thread-pool",
      //                                    Family::kFmemp),
      // Every workload, table and chart picks the entry up by its name.
  };
}

}  // namespace fmemp::bench::compare
