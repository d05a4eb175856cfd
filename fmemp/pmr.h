// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/pmr.h
//
// Standard-library containers whose memory comes from an fmemp pool:
//
// * fmemp::MemoryResource<Pool>: a std::pmr::memory_resource, for
//   std::pmr::vector, std::pmr::string, std::pmr::unordered_map, ... and
//   anything else built on std::pmr::polymorphic_allocator.
//
//     fmemp::Memp<fmemp::sync::Mutex> memp;
//     CHECK_OK(memp.AddRegion(buffer, buffer + size));
//     fmemp::MemoryResource<fmemp::Memp<fmemp::sync::Mutex>> resource(&memp);
//     std::pmr::vector<int> v(&resource);
//
// * fmemp::Allocator<T, Pool>: a standard allocator, for containers that take
//   an allocator type rather than a memory resource:
//
//     std::vector<int, fmemp::Allocator<int, Pool>> v{
//         fmemp::Allocator<int, Pool>(&memp)};
//
// `Pool` is any front-end with the three members fmemp's front-ends share:
//
//     void* Allocate(size_t bytes) noexcept;                 // nullptr: none
//     void* AllocateAligned(size_t alignment, size_t bytes) noexcept;
//     /* any result */ Free(void* ptr) noexcept;
//
// fmemp::Memp<LockPolicy> (fmemp/memp.h), fmemp::CachingMemp<LockPolicy>
// (fmemp/thread_cache.h) and fmemp::ThreadHeapMemp<LockPolicy>
// (fmemp/thread_heap.h) all have them, so they need no adapter. The SDK's
// C API pool works too: with `Pool` = FMemp (from fmemp/fmemp.h) the calls
// go to FMempMalloc, FMempMallocAlign and FMempFree. Another pool type can
// be adapted by specialising fmemp::PoolTraits.
//
// Per-thread heaps (ThreadHeapMemp, or an FMemp under
// FMEMP_POLICY_THREAD_HEAPS): one resource serves every thread. Each
// allocation comes from the calling thread's own heap when it has bound
// one (BindThisThread / FMempBindThread), otherwise from the shared
// regions, so a container's blocks may lie in several threads' heaps. A
// container may be destroyed, or shrunk, on any thread: a block of another
// thread's heap is queued to that thread and given back on its next call
// into the pool (or when it unbinds or exits), so until then Probe() still
// counts it as used. Memory outlives the thread that allocated it: when a
// thread unbinds or exits, its regions and the blocks in them go back to
// the shared regions.
//
// Both types hold a pointer to the pool and never own it: the pool must
// outlive every resource, allocator and container that refers to it, and
// the memory they hold must be given back before the pool is cleared or a
// region removed.
//
// Guarantees, for every function below unless it says otherwise
// * Complexity: the pool's. With fmemp's front-ends, allocation and
//   deallocation are O(1) (plus O(log regions) to find a pointer's region);
//   everything else is O(1) and allocation-free.
// * Thread safety: a resource or allocator is immutable after construction;
//   concurrent calls on it (or on copies of it) are as safe as concurrent
//   calls on the pool: fine with Memp<Mutex>, Memp<SpinLock>, CachingMemp,
//   ThreadHeapMemp and an FMemp, one thread at a time with Memp<NoLock>. A
//   container is, as always, not safe for concurrent modification; handing
//   one to another thread needs the usual happens-before (a mutex, a
//   queue, a join).
// * Failure: allocation throws std::bad_alloc when the pool returns nullptr
//   (exhausted, or an alignment it cannot honour); the pool is left intact
//   and the container's strong or basic guarantee applies. Deallocation never
//   fails and never throws; handing back memory the pool did not give out is
//   reported by the pool's misuse handler, as any bad free is.

#ifndef FMEMP_FMEMP_PMR_H_
#define FMEMP_FMEMP_PMR_H_

#include <cstddef>
#include <limits>
#include <memory_resource>
#include <new>
#include <type_traits>

#include "fmemp/fmemp.h"
#include "tlsf/size_class.h"

namespace fmemp {

// Every plain Allocate returns memory aligned to this; larger alignments go
// through AllocateAligned.
inline constexpr size_t kPmrNaturalAlignment = tlsf::kAlignment;

// How MemoryResource and Allocator reach a pool. The primary template calls
// the members named at the top of this file; specialise it for a pool type
// with other names. Each function has the complexity, thread safety and
// failure behaviour of the call it forwards to, and none throws.
template <typename Pool>
struct PoolTraits {
  // nullptr when the pool has no room.
  static void* Allocate(Pool& pool, size_t bytes) noexcept {
    return pool.Allocate(bytes);
  }
  // nullptr when the pool has no room or `alignment` is not a power of two
  // it supports.
  static void* AllocateAligned(Pool& pool, size_t alignment,
                               size_t bytes) noexcept {
    return pool.AllocateAligned(alignment, bytes);
  }
  static void Free(Pool& pool, void* ptr) noexcept {
    static_cast<void>(pool.Free(ptr));
  }
};

// The SDK's C API: an initialised FMemp (fmemp/fmemp.h). An FMemp that is not
// initialised makes every allocation fail (so MemoryResource throws
// std::bad_alloc).
template <>
struct PoolTraits<FMemp> {
  static void* Allocate(FMemp& pool, size_t bytes) noexcept {
    return FMempMalloc(&pool, bytes);
  }
  static void* AllocateAligned(FMemp& pool, size_t alignment,
                               size_t bytes) noexcept {
    return FMempMallocAlign(&pool, bytes, alignment);
  }
  static void Free(FMemp& pool, void* ptr) noexcept { FMempFree(&pool, ptr); }
};

namespace pmr_internal {

// `bytes` aligned to `alignment` from `pool`, or std::bad_alloc.
template <typename Pool>
void* AllocateOrThrow(Pool& pool, size_t bytes, size_t alignment) {
  void* p = alignment <= kPmrNaturalAlignment
                ? PoolTraits<Pool>::Allocate(pool, bytes)
                : PoolTraits<Pool>::AllocateAligned(pool, alignment, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace pmr_internal

// A std::pmr::memory_resource over `Pool` (see the top of this file).
template <typename Pool>
class MemoryResource final : public std::pmr::memory_resource {
 public:
  // Allocates from `*pool`, which must outlive this resource. O(1).
  explicit MemoryResource(Pool* pool) noexcept : pool_(pool) {}
  MemoryResource(const MemoryResource&) = delete;
  MemoryResource& operator=(const MemoryResource&) = delete;
  ~MemoryResource() override = default;

  // The pool this resource allocates from. O(1), thread-safe.
  Pool* pool() const noexcept { return pool_; }

 private:
  // `bytes` aligned to `alignment` (a power of two, as the memory_resource
  // contract requires): a plain allocation up to kPmrNaturalAlignment, an
  // aligned one above. Throws std::bad_alloc when the pool returns nullptr.
  void* do_allocate(size_t bytes, size_t alignment) override {
    return pmr_internal::AllocateOrThrow(*pool_, bytes, alignment);
  }
  // Gives `ptr` back to the pool; `bytes` and `alignment` are not needed
  // (each block records its own span). Never throws.
  void do_deallocate(void* ptr, size_t /*bytes*/,
                     size_t /*alignment*/) override {
    PoolTraits<Pool>::Free(*pool_, ptr);
  }
  // True when `other` is a MemoryResource of the same Pool type over the
  // same pool object: memory from one may then be freed through the other.
  // O(1) (one dynamic_cast), never throws.
  bool do_is_equal(
      const std::pmr::memory_resource& other) const noexcept override {
    if (this == &other) return true;
    const auto* same = dynamic_cast<const MemoryResource*>(&other);
    return same != nullptr && same->pool_ == pool_;
  }

  Pool* const pool_;
};

// A standard allocator (C++17 Allocator requirements) over `Pool`.
//
// Propagation: an Allocator is a handle to its pool, and the pool travels
// with the memory. Copy assignment, move assignment and swap of containers
// all propagate the allocator (the three propagate_on_container_* traits are
// true), so that move assignment and swap are O(1), never allocate and never
// throw, and swapping containers over different pools is well defined (with
// false traits it would be undefined behaviour). A container can therefore
// change pools when it is assigned to or swapped; use the pmr types, whose
// allocator never propagates, when a container must stay on its pool.
// Copy construction keeps the source's pool. Not default-constructible:
// every allocator names its pool.
template <typename T, typename Pool>
class Allocator {
 public:
  using value_type = T;
  using size_type = size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  // Allocators over different pools differ.
  using is_always_equal = std::false_type;

  template <typename U>
  struct rebind {
    using other = Allocator<U, Pool>;
  };

  // Allocates from `*pool`, which must outlive this allocator and every
  // copy. O(1), never throws.
  explicit Allocator(Pool* pool) noexcept : pool_(pool) {}
  // Rebinding copy: the same pool. O(1), never throws.
  template <typename U>
  // NOLINTNEXTLINE(google-explicit-constructor): rebinding must be implicit
  Allocator(const Allocator<U, Pool>& other) noexcept : pool_(other.pool()) {}

  // Room for `n` objects of T, suitably aligned (aligned allocation when
  // alignof(T) exceeds kPmrNaturalAlignment). Throws
  // std::bad_array_new_length when n * sizeof(T) overflows and
  // std::bad_alloc when the pool has no room; the pool is then unchanged.
  [[nodiscard]] T* allocate(size_t n) {
    if (n > max_size()) throw std::bad_array_new_length();
    return static_cast<T*>(
        pmr_internal::AllocateOrThrow(*pool_, n * sizeof(T), alignof(T)));
  }
  // Gives back memory from allocate() on this allocator or one equal to it.
  // Never throws.
  void deallocate(T* ptr, size_t /*n*/) noexcept {
    PoolTraits<Pool>::Free(*pool_, ptr);
  }
  // The largest n allocate() may be asked for. O(1).
  static constexpr size_t max_size() noexcept {
    return std::numeric_limits<size_t>::max() / sizeof(T);
  }

  // The pool this allocator allocates from. O(1), thread-safe.
  Pool* pool() const noexcept { return pool_; }

 private:
  Pool* pool_;
};

// Equal when both allocate from the same pool, whatever their value types.
template <typename T, typename U, typename Pool>
bool operator==(const Allocator<T, Pool>& a,
                const Allocator<U, Pool>& b) noexcept {
  return a.pool() == b.pool();
}
template <typename T, typename U, typename Pool>
bool operator!=(const Allocator<T, Pool>& a,
                const Allocator<U, Pool>& b) noexcept {
  return !(a == b);
}

}  // namespace fmemp

#endif  // FMEMP_FMEMP_PMR_H_
