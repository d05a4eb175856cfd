// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/entry_memory.h
//
// EntryMemory: where the key-value server keeps its keys and values. Two
// implementations: FmempEntryMemory (fmemp_entry_memory.h: an FMemp pool
// that grows by mmap'd regions up to a cap and gives empty regions back) and
// GlibcEntryMemory (glibc_entry_memory.h: malloc with the same cap, for
// comparison). The server picks one at start-up (--allocator).
//
// Why an interface: the choice is made once, at run time, and costs one
// indirect call per entry allocated or freed, next to a system call per
// request; templating the store and server on the allocator would double
// the binary for no measurable gain.
//
// Contract for implementations
// * Allocate and Free are safe from any thread, concurrently. Allocate
//   returns nullptr when the cap is reached (never throws, never aborts);
//   Free(nullptr) is a no-op.
// * AttachThread/DetachThread are called by each worker thread when it
//   starts and stops serving; between them the thread may allocate.
// * Trim, AppendInfo, UsedBytes and Check are safe from any thread.

#ifndef FMEMP_EXAMPLES_KV_SERVER_ENTRY_MEMORY_H_
#define FMEMP_EXAMPLES_KV_SERVER_ENTRY_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace kv_server {

class EntryMemory {
 public:
  virtual ~EntryMemory() = default;

  virtual void* Allocate(size_t bytes) noexcept = 0;
  virtual void Free(void* block) noexcept = 0;

  // Per-worker set-up and tear-down (fmemp's thread_heaps policy binds the
  // thread to a region of its own here). A failed attach is reported and
  // the thread allocates from the shared memory instead.
  virtual absl::Status AttachThread() { return absl::OkStatus(); }
  virtual void DetachThread() {}
  // Called on a worker thread that has had no event for kIdleMs (server.cc)
  // and on every further idle interval. fmemp's thread_heaps policy applies
  // here the frees that other workers queued to this worker's heap: they
  // otherwise wait for its next allocation or free, which an idle worker
  // may never make (INFO would report them as used forever).
  virtual void OnIdle() {}

  // Gives back to the system what no live entry uses (fmemp: removes and
  // unmaps empty regions beyond the first). Cheap when there is nothing to
  // do; called after FLUSHALL and, at intervals, after frees.
  virtual void Trim() {}

  // The "# Memory" section of INFO, as "name:value\r\n" lines.
  virtual void AppendInfo(std::string* out) const = 0;
  // Bytes held by live entries (the allocator's own measure).
  virtual uint64_t UsedBytes() const = 0;
  // Full integrity check of the allocator's structures.
  virtual absl::Status Check() = 0;

  // Eviction (--maxmemory_policy=allkeys-random): `evict(bytes)` frees at
  // least `bytes` of entries if it can and returns what it freed. An
  // implementation that supports it calls it when usage goes above its soft
  // limit, on the thread whose allocation crossed it, with no lock of its
  // own held (so it may free). Returns false if unsupported.
  using Evictor = std::function<size_t(size_t bytes)>;

  // Retires region `index` (INFO's numbering) while entries live in it: no
  // new entry goes there, and it is unmapped once its last entry is
  // deleted. Unimplemented where there are no regions.
  virtual absl::Status RetireRegion(size_t index) {
    (void)index;
    return absl::UnimplementedError("this allocator has no regions");
  }
  virtual bool SetEvictor(Evictor evict) {
    (void)evict;
    return false;
  }
};

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_ENTRY_MEMORY_H_
