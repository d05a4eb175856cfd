// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/metadata_arena.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/base/const_init.h"
#include "absl/base/internal/spinlock.h"

#if defined(ABSL_HAVE_ADDRESS_SANITIZER) || defined(ABSL_HAVE_LEAK_SANITIZER)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define FMEMP_ARENA_SANITIZED 1
#endif

namespace fmemp {
namespace {

constexpr size_t kMinClassBytes = 16;
constexpr int kMinClassShift = 4;
constexpr int kClassCount = 13;  // 16 B .. 64 KiB
static_assert((kMinClassBytes << (kClassCount - 1)) ==
                  MetadataArena::kMaxClassBytes,
              "the classes end at kMaxClassBytes");
static_assert(MetadataArena::kChunkBytes >= 2 * MetadataArena::kMaxClassBytes,
              "a chunk holds at least two of the largest records");

struct FreeRecord {
  FreeRecord* next;
};

// Everything under one lock. Constant-initialised: usable before main and
// during static destruction, and never destroyed.
struct ArenaState {
  absl::base_internal::SpinLock lock{absl::kConstInit,
                                     absl::base_internal::SCHEDULE_KERNEL_ONLY};
  FreeRecord* free_lists[kClassCount] = {};
  char* bump = nullptr;      // next unused byte of the current chunk
  char* bump_end = nullptr;  // end of the current chunk
  MetadataArenaStats stats;
};

ABSL_CONST_INIT ArenaState arena;

int ClassOf(size_t bytes) {
  if (bytes <= kMinClassBytes) return 0;
  // ceil(log2(bytes)) - 4.
  const int shift = 64 - __builtin_clzll(static_cast<unsigned long long>(
                             bytes - 1));  // NOLINT(runtime/int)
  return shift - kMinClassShift;
}

size_t ClassBytes(int c) { return kMinClassBytes << c; }

size_t PageBytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t RoundUpToPage(size_t bytes) {
  const size_t page = PageBytes();
  return (bytes + page - 1) & ~(page - 1);
}

void* MapFromKernel(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
#ifdef FMEMP_ARENA_SANITIZED
  __lsan_register_root_region(p, bytes);
#endif
  return p;
}

void UnmapToKernel(void* p, size_t bytes) {
#ifdef FMEMP_ARENA_SANITIZED
  __lsan_unregister_root_region(p, bytes);
#endif
  munmap(p, bytes);
}

void Poison(void* p, size_t bytes) {
#ifdef FMEMP_ARENA_SANITIZED
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

void Unpoison(void* p, size_t bytes) {
#ifdef FMEMP_ARENA_SANITIZED
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

// fork(): the child must not inherit the lock held by a thread it lacks.
void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { arena.lock.Lock(); }
void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { arena.lock.Unlock(); }

// Outside the lock: pthread_atfork may call malloc (its handler list),
// which a program may have routed into fmemp.
void InstallForkHandlersOnce() {
  static std::atomic<bool> installed{false};
  if (installed.load(std::memory_order_acquire) ||
      installed.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  pthread_atfork(&LockForFork, &UnlockAfterFork, &UnlockAfterFork);
}

// A record of class `c`. REQUIRES: arena.lock held.
void* AllocateFromClass(int c) {
  const size_t size = ClassBytes(c);
  if (FreeRecord* r = arena.free_lists[c]) {
    Unpoison(r, size);
    arena.free_lists[c] = r->next;
    return r;
  }
  const size_t align =
      size < MetadataArena::kMaxAlignment ? size : MetadataArena::kMaxAlignment;
  uintptr_t at = (reinterpret_cast<uintptr_t>(arena.bump) + align - 1) &
                 ~(uintptr_t{align} - 1);
  if (arena.bump == nullptr ||
      at + size > reinterpret_cast<uintptr_t>(arena.bump_end)) {
    // The rest of the current chunk is abandoned (less than one record of
    // this class: at most 64 KiB of 256).
    char* chunk = static_cast<char*>(MapFromKernel(MetadataArena::kChunkBytes));
    if (chunk == nullptr) return nullptr;
    Poison(chunk, MetadataArena::kChunkBytes);
    arena.stats.bytes_mapped += MetadataArena::kChunkBytes;
    arena.bump = chunk;
    arena.bump_end = chunk + MetadataArena::kChunkBytes;
    at = reinterpret_cast<uintptr_t>(chunk);  // page-aligned
  }
  arena.bump = reinterpret_cast<char*>(at + size);
  void* record = reinterpret_cast<void*>(at);
  Unpoison(record, size);
  return record;
}

}  // namespace

size_t MetadataArena::RecordBytes(size_t bytes) noexcept {
  if (bytes > kMaxClassBytes) return RoundUpToPage(bytes);
  return ClassBytes(ClassOf(bytes));
}

void* MetadataArena::Allocate(size_t bytes) noexcept {
  if (bytes > kMaxClassBytes) {
    if (bytes > (size_t{1} << 46)) return nullptr;  // no rounding overflow
    const size_t mapped = RoundUpToPage(bytes);
    void* p = MapFromKernel(mapped);
    if (p == nullptr) return nullptr;
    absl::base_internal::SpinLockHolder hold(&arena.lock);
    arena.stats.records_in_use += 1;
    arena.stats.bytes_in_use += mapped;
    arena.stats.bytes_mapped += mapped;
    return p;
  }
  const int c = ClassOf(bytes);
  InstallForkHandlersOnce();
  absl::base_internal::SpinLockHolder hold(&arena.lock);
  void* record = AllocateFromClass(c);
  if (record != nullptr) {
    arena.stats.records_in_use += 1;
    arena.stats.bytes_in_use += ClassBytes(c);
  }
  return record;
}

void* MetadataArena::AllocateOrDie(size_t bytes) noexcept {
  void* p = Allocate(bytes);
  if (p == nullptr) {
    static const char kMessage[] =
        "fmemp: the metadata arena could not map memory; aborting\n";
    // write(2), not stdio: stdio may allocate.
    ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    (void)ignored;
    std::abort();
  }
  return p;
}

void MetadataArena::Free(void* record, size_t bytes) noexcept {
  if (record == nullptr) return;
  if (bytes > kMaxClassBytes) {
    const size_t mapped = RoundUpToPage(bytes);
    {
      absl::base_internal::SpinLockHolder hold(&arena.lock);
      arena.stats.records_in_use -= 1;
      arena.stats.bytes_in_use -= mapped;
      arena.stats.bytes_mapped -= mapped;
    }
    UnmapToKernel(record, mapped);
    return;
  }
  const int c = ClassOf(bytes);
  FreeRecord* r = static_cast<FreeRecord*>(record);
  absl::base_internal::SpinLockHolder hold(&arena.lock);
  r->next = arena.free_lists[c];
  arena.free_lists[c] = r;
  Poison(reinterpret_cast<char*>(r) + sizeof(FreeRecord),
         ClassBytes(c) - sizeof(FreeRecord));
  arena.stats.records_in_use -= 1;
  arena.stats.bytes_in_use -= ClassBytes(c);
}

MetadataArenaStats MetadataArena::Stats() noexcept {
  absl::base_internal::SpinLockHolder hold(&arena.lock);
  return arena.stats;
}

}  // namespace fmemp
