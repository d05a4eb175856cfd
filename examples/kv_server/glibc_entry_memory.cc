// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "examples/kv_server/glibc_entry_memory.h"

#include <malloc.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace kv_server {

void* GlibcEntryMemory::Allocate(size_t bytes) noexcept {
  // Reserve first, so concurrent allocations cannot overshoot the cap.
  const uint64_t before = used_.fetch_add(bytes, std::memory_order_relaxed);
  if (before + bytes > max_bytes_) {
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  void* block = std::malloc(bytes);
  if (block == nullptr) {
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  // Account what malloc really handed out.
  const size_t usable = malloc_usable_size(block);
  const uint64_t now =
      used_.fetch_add(usable - bytes, std::memory_order_relaxed) + usable -
      bytes;
  uint64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak &&
         !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  live_blocks_.fetch_add(1, std::memory_order_relaxed);
  return block;
}

void GlibcEntryMemory::Free(void* block) noexcept {
  if (block == nullptr) return;
  used_.fetch_sub(malloc_usable_size(block), std::memory_order_relaxed);
  live_blocks_.fetch_sub(1, std::memory_order_relaxed);
  std::free(block);
}

void GlibcEntryMemory::Trim() { malloc_trim(0); }

void GlibcEntryMemory::AppendInfo(std::string* out) const {
  const uint64_t used = used_.load(std::memory_order_relaxed);
  absl::StrAppend(
      out, "allocator:glibc\r\n", "used_memory:", used, "\r\n",
      "used_memory_peak:", peak_.load(std::memory_order_relaxed), "\r\n",
      "maxmemory:", max_bytes_, "\r\n",
      "live_blocks:", live_blocks_.load(std::memory_order_relaxed), "\r\n",
      "failed_allocations:", failed_.load(std::memory_order_relaxed), "\r\n");
}

}  // namespace kv_server
