// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/metadata_arena.h
//
// Where fmemp's own bookkeeping lives: region records and their sorted
// arrays, the region table's arrays, per-thread caches and thread heaps, the C
// API's front-ends and registries. None of it comes from malloc or operator
// new, so a program may route its global operator new/delete (and later
// malloc) into an FMemp without fmemp ever calling back into itself.
//
// The arena takes memory from the kernel (mmap) in 256 KiB chunks and never
// gives it back. It hands out records in power-of-two size classes of 16 B
// to 64 KiB, each class with its own free list, so a record freed is reused
// by the next request of its class: a program that creates and destroys
// fmemp objects in a loop keeps a flat footprint. A request above 64 KiB is
// mapped on its own and unmapped when freed.
//
// Who should use it: fmemp's components, for their bookkeeping. Nothing
// else (it is not a general allocator: every record costs up to twice its
// size, and chunks are never returned).
//
// Guarantees
// * Allocate and Free are thread-safe: one process-wide
//   absl::base_internal::SpinLock (the kind Abseil's own low-level allocator
//   uses; it never allocates), held for a few dozen instructions. Mapping a
//   chunk happens under it too (once per 256 KiB). fork(): the lock is held
//   across fork() by a pthread_atfork handler, so a child never inherits it
//   held by a thread it does not have.
// * Allocate is O(1) (a free-list pop or a bump of the current chunk) but
//   for a chunk's mmap; Free is O(1) (a push) but for a large record's
//   munmap. Neither calls malloc, operator new or anything that may.
// * A record is aligned to min(its class size, 64) bytes: enough for any
//   fmemp object (the cache-line-aligned spin locks included).
// * Memory comes back zero only when it is fresh from the kernel; a reused
//   record holds whatever its last owner left. Callers construct in place.
// * Under AddressSanitizer a free record is poisoned (a use after Free is
//   reported) and every chunk is a LeakSanitizer root region (pointers that
//   bookkeeping holds to ordinary heap blocks keep them reachable).

#ifndef FMEMP_FMEMP_METADATA_ARENA_H_
#define FMEMP_FMEMP_METADATA_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <utility>

namespace fmemp {

struct MetadataArenaStats {
  size_t records_in_use = 0;  // Allocate minus Free calls
  size_t bytes_in_use = 0;    // their class sizes (large: page-rounded)
  size_t bytes_mapped = 0;    // chunks and large records
};

class MetadataArena {
 public:
  // The largest record served from a chunk's size classes.
  static constexpr size_t kMaxClassBytes = size_t{64} << 10;
  static constexpr size_t kChunkBytes = size_t{256} << 10;
  static constexpr size_t kMaxAlignment = 64;

  // A record of at least `bytes` (0 is served as 16), or nullptr when the
  // kernel refuses memory.
  static void* Allocate(size_t bytes) noexcept;
  // Gives back a record from Allocate(bytes) with the same `bytes`. nullptr
  // is a no-op.
  static void Free(void* record, size_t bytes) noexcept;
  // As Allocate, but an exhausted kernel ends the process with a message:
  // for containers, which cannot report a failure.
  static void* AllocateOrDie(size_t bytes) noexcept;

  // The process-wide figures (under the lock: a consistent snapshot).
  static MetadataArenaStats Stats() noexcept;

  // The size a request is served as (its class, or the page-rounded size).
  static size_t RecordBytes(size_t bytes) noexcept;
};

// A standard allocator over the arena, for std containers and Abseil's
// (absl::flat_hash_map, absl::btree_map) holding bookkeeping. Stateless:
// any two compare equal. Exhaustion ends the process (AllocateOrDie).
template <typename T>
class ArenaAllocator {
 public:
  using value_type = T;
  static_assert(alignof(T) <= MetadataArena::kMaxAlignment,
                "the arena aligns records to at most 64 bytes");

  ArenaAllocator() noexcept = default;
  template <typename U>
  ArenaAllocator(const ArenaAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) {
      return static_cast<T*>(
          MetadataArena::AllocateOrDie(std::numeric_limits<size_t>::max()));
    }
    return static_cast<T*>(MetadataArena::AllocateOrDie(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    MetadataArena::Free(p, n * sizeof(T));
  }

  template <typename U>
  bool operator==(const ArenaAllocator<U>&) const noexcept {
    return true;
  }
  template <typename U>
  bool operator!=(const ArenaAllocator<U>&) const noexcept {
    return false;
  }
};

// A base that gives a class arena-backed `new` and `delete`, so that
// `new Cache` or `delete state` (through a virtual destructor: the dynamic
// type's size reaches the sized delete) use the arena. `new` ends the
// process on exhaustion (fmemp is built without exceptions in mind); for a
// nullptr instead, use ArenaNew (and ArenaDelete or `delete`).
class ArenaAllocated {
 public:
  static void* operator new(size_t bytes) {
    return MetadataArena::AllocateOrDie(bytes);
  }
  static void operator delete(void* p, size_t bytes) noexcept {
    MetadataArena::Free(p, bytes);
  }
  // Placement forms stay available to derived classes.
  static void* operator new(size_t, void* where) noexcept { return where; }
  static void operator delete(void*, void*) noexcept {}
};

// A T in an arena record: nullptr when the arena is exhausted.
template <typename T, typename... Args>
T* ArenaNew(Args&&... args) {
  static_assert(alignof(T) <= MetadataArena::kMaxAlignment,
                "the arena aligns records to at most 64 bytes");
  void* record = MetadataArena::Allocate(sizeof(T));
  if (record == nullptr) return nullptr;
  return ::new (record) T(std::forward<Args>(args)...);
}

// Destroys and frees what ArenaNew<T> returned (nullptr: no-op). T must be
// the exact type ArenaNew created.
template <typename T>
void ArenaDelete(T* object) noexcept {
  if (object == nullptr) return;
  object->~T();
  MetadataArena::Free(object, sizeof(T));
}

template <typename T>
struct ArenaDeleter {
  void operator()(T* object) const noexcept { ArenaDelete(object); }
};

// Owns one ArenaNew<T> object.
template <typename T>
using ArenaPtr = std::unique_ptr<T, ArenaDeleter<T>>;

}  // namespace fmemp

#endif  // FMEMP_FMEMP_METADATA_ARENA_H_
