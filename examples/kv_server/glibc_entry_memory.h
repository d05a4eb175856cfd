// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/glibc_entry_memory.h
//
// GlibcEntryMemory: entries from glibc malloc, for comparison with fmemp
// (--allocator=glibc). Used bytes are counted with malloc_usable_size, and
// an allocation that would take them past the cap fails like fmemp's does,
// so both servers answer -OOM at the same point. Thread-safe (the counters
// are atomics; malloc is glibc's). Trim calls malloc_trim(0) after FLUSHALL.

#ifndef FMEMP_EXAMPLES_KV_SERVER_GLIBC_ENTRY_MEMORY_H_
#define FMEMP_EXAMPLES_KV_SERVER_GLIBC_ENTRY_MEMORY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "examples/kv_server/entry_memory.h"

namespace kv_server {

class GlibcEntryMemory : public EntryMemory {
 public:
  explicit GlibcEntryMemory(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  void* Allocate(size_t bytes) noexcept override;
  void Free(void* block) noexcept override;
  void Trim() override;
  void AppendInfo(std::string* out) const override;
  uint64_t UsedBytes() const override {
    return used_.load(std::memory_order_relaxed);
  }
  absl::Status Check() override { return absl::OkStatus(); }

 private:
  const uint64_t max_bytes_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> live_blocks_{0};
  std::atomic<uint64_t> failed_{0};
};

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_GLIBC_ENTRY_MEMORY_H_
