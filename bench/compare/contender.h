// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/contender.h
//
// A Contender is one allocator under test in the comparison suite: a name, a
// setup that returns an opaque object, and plain function pointers that act
// on that object. Every workload calls every contender through the same
// function pointers, so call overhead is identical across contenders.
//
// Most contenders are written as a small adapter class and turned into an
// entry with MakeContender<Adapter>(name, family); see contender_list.cc for
// the list and fmemp_contenders.cc for the adapters.

#ifndef FMEMP_BENCH_COMPARE_CONTENDER_H_
#define FMEMP_BENCH_COMPARE_CONTENDER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fmemp::bench::compare {

// The memory a bounded (fmemp) contender manages: `total_bytes` split into
// `regions` equal regions that do not touch each other. With `prefault`,
// every page of the regions is written once before the allocator gets them
// (what a latency-sensitive user of fixed regions does), so that no
// allocation pays a page fault. Malloc contenders ignore it.
struct HeapSpec {
  size_t total_bytes = 0;
  int regions = 1;
  bool prefault = false;
};

enum class Family {
  kMalloc,  // replaces malloc for the whole process; one binary each
  kFmemp,   // manages the regions it is given (HeapSpec)
};

struct Contender {
  std::string name;
  Family family = Family::kMalloc;
  // False: only single-threaded workloads run it.
  bool thread_safe = false;
  // Creates the allocator over `spec`; nullptr when it cannot.
  std::function<std::shared_ptr<void>(const HeapSpec&)> setup;
  // Hot path. allocate returns nullptr on failure; free accepts any pointer
  // allocate returned, from any thread when thread_safe.
  void* (*allocate)(void* self, size_t bytes) = nullptr;
  void (*free)(void* self, void* ptr) = nullptr;
  // Called on each worker thread before its first and after its last call
  // (per-thread caches register and flush here). Never nullptr.
  void (*thread_start)(void* self) = nullptr;
  void (*thread_end)(void* self) = nullptr;
  // The allocator's own peak of bytes held since setup (fmemp: its probe's
  // peak of used bytes, headers included); 0 when it keeps none.
  size_t (*peak_bytes)(void* self) = nullptr;
};

// Defaults for the optional parts of an adapter; adapters inherit from it
// and hide what they need.
struct AdapterDefaults {
  void ThreadStart() {}
  void ThreadEnd() {}
  size_t PeakBytes() const { return 0; }
};

// Builds the entry for an adapter class A that provides
//   static constexpr bool kThreadSafe;
//   static std::unique_ptr<A> Create(const HeapSpec&);  // nullptr on failure
//   void* Allocate(size_t);  void Free(void*);
// and, from AdapterDefaults or its own, ThreadStart(), ThreadEnd() and
// PeakBytes().
template <typename A>
Contender MakeContender(std::string name, Family family) {
  Contender c;
  c.name = std::move(name);
  c.family = family;
  c.thread_safe = A::kThreadSafe;
  c.setup = [](const HeapSpec& spec) -> std::shared_ptr<void> {
    return std::shared_ptr<A>(A::Create(spec));
  };
  c.allocate = [](void* self, size_t bytes) {
    return static_cast<A*>(self)->Allocate(bytes);
  };
  c.free = [](void* self, void* ptr) { static_cast<A*>(self)->Free(ptr); };
  c.thread_start = [](void* self) { static_cast<A*>(self)->ThreadStart(); };
  c.thread_end = [](void* self) { static_cast<A*>(self)->ThreadEnd(); };
  c.peak_bytes = [](void* self) {
    return static_cast<const A*>(self)->PeakBytes();
  };
  return c;
}

// A contender's object together with its entry, for the workloads.
class Instance {
 public:
  Instance(const Contender& contender, std::shared_ptr<void> self)
      : contender_(&contender), self_(std::move(self)) {}

  void* Allocate(size_t bytes) const {
    return contender_->allocate(self_.get(), bytes);
  }
  void Free(void* ptr) const { contender_->free(self_.get(), ptr); }
  void ThreadStart() const { contender_->thread_start(self_.get()); }
  void ThreadEnd() const { contender_->thread_end(self_.get()); }
  size_t PeakBytes() const { return contender_->peak_bytes(self_.get()); }

 private:
  const Contender* contender_;
  std::shared_ptr<void> self_;
};

// The malloc contender of this binary (named after the allocator that
// really serves malloc, see malloc_identity.h), followed by the fmemp
// contenders linked into it (none outside the glibc binary).
std::vector<Contender> AllContenders(const std::string& malloc_name);

}  // namespace fmemp::bench::compare

#endif  // FMEMP_BENCH_COMPARE_CONTENDER_H_
