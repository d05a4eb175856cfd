// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The C API of tlsf/tlsf.h over fmemp::tlsf::Heap. Each function converts
// its arguments and forwards; no allocator logic lives here.

#include "tlsf/tlsf.h"

#include <cstdint>
#include <cstdio>
#include <new>

#include "tlsf/heap.h"

namespace fmemp::tlsf {
namespace {

// What a tlsf_t points to: the heap plus the C API's own state.
struct Control {
  Heap heap;
  Pool* initial_pool = nullptr;
  tlsf_error_handler handler = nullptr;
  void* handler_user = nullptr;
};

constexpr size_t kControlBytes = AlignUp(sizeof(Control), kAlignment);

Control* ToControl(tlsf_t tlsf) { return static_cast<Control*>(tlsf); }

int ToCKind(HeapError error) {
  switch (error) {
    case HeapError::kInvalidFree:
      return TLSF_ERROR_INVALID_FREE;
    case HeapError::kDoubleFree:
      return TLSF_ERROR_DOUBLE_FREE;
    case HeapError::kCorruptHeap:
      return TLSF_ERROR_CORRUPT_HEAP;
    case HeapError::kPoolNotRemoved:
      return TLSF_ERROR_POOL_NOT_REMOVED;
    case HeapError::kUseAfterFreeWrite:
    case HeapError::kCanaryDamaged:
      return TLSF_ERROR_CORRUPT_HEAP;  // debug modes are off in this API
  }
  return 0;
}

void ForwardError(void* context, HeapError error, const void* ptr) {
  const Control* control = static_cast<const Control*>(context);
  control->handler(control->handler_user, ToCKind(error), ptr);
}

int CheckResult(const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "fmemp tlsf: check failed: %s\n",
               status.ToString().c_str());
  return -1;
}

}  // namespace
}  // namespace fmemp::tlsf

using fmemp::tlsf::AlignUp;
using fmemp::tlsf::BlockInfo;
using fmemp::tlsf::Control;
using fmemp::tlsf::Heap;
using fmemp::tlsf::HeapError;
using fmemp::tlsf::Pool;
using fmemp::tlsf::ToControl;

extern "C" {

tlsf_t tlsf_create(void* mem) {
  if (mem == nullptr) return nullptr;
  void* const aligned = reinterpret_cast<void*>(
      AlignUp(reinterpret_cast<uintptr_t>(mem), fmemp::tlsf::kAlignment));
  return new (aligned) Control;
}

tlsf_t tlsf_create_with_pool(void* mem, size_t bytes) {
  if (mem == nullptr || bytes < tlsf_size() + Heap::kMinPoolBytes) {
    return nullptr;
  }
  tlsf_t tlsf = tlsf_create(mem);
  Control* const control = ToControl(tlsf);
  auto pool = control->heap.AddPool(static_cast<char*>(mem) + tlsf_size(),
                                    bytes - tlsf_size());
  if (!pool.ok()) {
    tlsf_destroy(tlsf);
    return nullptr;
  }
  control->initial_pool = *pool;
  return tlsf;
}

void tlsf_destroy(tlsf_t tlsf) {
  if (tlsf != nullptr) ToControl(tlsf)->~Control();
}

pool_t tlsf_get_pool(tlsf_t tlsf) {
  return tlsf != nullptr ? ToControl(tlsf)->initial_pool : nullptr;
}

pool_t tlsf_add_pool(tlsf_t tlsf, void* mem, size_t bytes) {
  if (tlsf == nullptr) return nullptr;
  auto pool = ToControl(tlsf)->heap.AddPool(mem, bytes);
  return pool.ok() ? *pool : nullptr;
}

int tlsf_remove_pool_checked(tlsf_t tlsf, pool_t pool) {
  if (tlsf == nullptr) return -1;
  Control* const control = ToControl(tlsf);
  Pool* const p = static_cast<Pool*>(pool);
  if (!control->heap.RemovePool(p).ok()) return -1;
  if (control->initial_pool == p) control->initial_pool = nullptr;
  return 0;
}

void tlsf_remove_pool(tlsf_t tlsf, pool_t pool) {
  if (tlsf == nullptr || tlsf_remove_pool_checked(tlsf, pool) == 0) return;
  const Control* const control = ToControl(tlsf);
  if (control->handler != nullptr) {
    control->handler(control->handler_user, TLSF_ERROR_POOL_NOT_REMOVED, pool);
  } else {
    std::fprintf(stderr, "fmemp tlsf: %s: %p\n",
                 HeapErrorName(HeapError::kPoolNotRemoved), pool);
  }
}

void* tlsf_malloc(tlsf_t tlsf, size_t bytes) {
  return tlsf != nullptr ? ToControl(tlsf)->heap.Allocate(bytes) : nullptr;
}

void* tlsf_memalign(tlsf_t tlsf, size_t align, size_t bytes) {
  return tlsf != nullptr ? ToControl(tlsf)->heap.AllocateAligned(align, bytes)
                         : nullptr;
}

void* tlsf_realloc(tlsf_t tlsf, void* ptr, size_t size) {
  return tlsf != nullptr ? ToControl(tlsf)->heap.Reallocate(ptr, size)
                         : nullptr;
}

void tlsf_free(tlsf_t tlsf, void* ptr) {
  if (tlsf != nullptr) ToControl(tlsf)->heap.Free(ptr);
}

size_t tlsf_block_size(void* ptr) {
  if (ptr == nullptr) return 0;
  uint64_t word;
  __builtin_memcpy(&word, static_cast<char*>(ptr) - sizeof(word), sizeof(word));
  const size_t span =
      word & (fmemp::tlsf::kMaxSpan - 1) & ~(fmemp::tlsf::kAlignment - 1);
  return span >= fmemp::tlsf::kBlockOverhead ? fmemp::tlsf::UsableBytes(span)
                                             : 0;
}

size_t tlsf_size(void) {
  return fmemp::tlsf::kControlBytes + fmemp::tlsf::kAlignment;
}
size_t tlsf_align_size(void) { return fmemp::tlsf::kAlignment; }
size_t tlsf_block_size_min(void) {
  return fmemp::tlsf::UsableBytes(fmemp::tlsf::kMinFreeSpan);
}
size_t tlsf_block_size_max(void) { return fmemp::tlsf::kMaxRequest; }
size_t tlsf_pool_overhead(void) { return Heap::kPoolOverhead; }
size_t tlsf_alloc_overhead(void) { return fmemp::tlsf::kBlockOverhead; }

void tlsf_walk_pool(pool_t pool, tlsf_walker walker, void* user) {
  const Pool* const p = static_cast<const Pool*>(pool);
  const Heap* const heap = Heap::PoolOwner(p);
  if (heap == nullptr || walker == nullptr) return;
  heap->WalkPool(p, [&](const BlockInfo& info) {
    walker(info.ptr, info.size, info.used ? 1 : 0, user);
    return true;
  });
}

int tlsf_walk_pool_until(pool_t pool, tlsf_walker_until walker, void* user) {
  const Pool* const p = static_cast<const Pool*>(pool);
  const Heap* const heap = Heap::PoolOwner(p);
  if (heap == nullptr || walker == nullptr) return 0;
  const bool completed = heap->WalkPool(p, [&](const BlockInfo& info) {
    return walker(info.ptr, info.size, info.used ? 1 : 0, user) != 0;
  });
  return completed ? 0 : 1;
}

int tlsf_check(tlsf_t tlsf) {
  if (tlsf == nullptr) return -1;
  return fmemp::tlsf::CheckResult(ToControl(tlsf)->heap.Check());
}

int tlsf_check_pool(pool_t pool) {
  const Pool* const p = static_cast<const Pool*>(pool);
  const Heap* const heap = Heap::PoolOwner(p);
  if (heap == nullptr) return -1;
  return fmemp::tlsf::CheckResult(heap->CheckPool(p));
}

void tlsf_get_stats(tlsf_t tlsf, tlsf_stats_t* stats) {
  if (tlsf == nullptr || stats == nullptr) return;
  const fmemp::tlsf::HeapStats s = ToControl(tlsf)->heap.Stats();
  stats->capacity_bytes = s.capacity_bytes;
  stats->used_bytes = s.used_bytes;
  stats->free_bytes = s.free_bytes;
  stats->live_blocks = s.live_blocks;
  stats->peak_used_bytes = s.peak_used_bytes;
  stats->pool_count = s.pool_count;
  stats->failed_allocations = s.failed_allocations;
  stats->invalid_frees = s.invalid_frees;
}

void tlsf_reset_peak(tlsf_t tlsf) {
  if (tlsf != nullptr) ToControl(tlsf)->heap.ResetPeak();
}

size_t tlsf_largest_allocatable(tlsf_t tlsf) {
  return tlsf != nullptr ? ToControl(tlsf)->heap.LargestAllocatable() : 0;
}

void tlsf_set_error_handler(tlsf_t tlsf, tlsf_error_handler handler,
                            void* user) {
  if (tlsf == nullptr) return;
  Control* const control = ToControl(tlsf);
  control->handler = handler;
  control->handler_user = user;
  if (handler != nullptr) {
    control->heap.SetErrorHandler(&fmemp::tlsf::ForwardError, control);
  } else {
    control->heap.SetErrorHandler(nullptr, nullptr);
  }
}

}  // extern "C"
