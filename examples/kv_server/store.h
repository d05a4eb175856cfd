// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/store.h
//
// Store: the server's key-value table, shared by every worker thread.
//
// Where memory lives
// * Each entry (key and value) is one block from the EntryMemory given to
//   the constructor (fmemp, or glibc for comparison): a 16-byte header with
//   the two lengths, then the key bytes, then the value bytes.
// * The index is kShards absl::flat_hash_map tables in the process heap
//   (global operator new), keyed by a string_view into the entry's own key
//   bytes. Keeping the index out of fmemp keeps the pool's accounting equal
//   to the bytes of live entries, which is what INFO reports and the tests
//   check (used returns to its starting value after FLUSHALL).
//
// Guarantees
// * Thread safety: every member may be called concurrently. A key maps to
//   one shard by its hash; each shard has its own absl::Mutex, held only to
//   look up, insert or unlink (never across an allocation, a free or a copy
//   into an entry), so a slow allocation (the out-of-memory handler mapping
//   a region) never blocks readers of that shard.
// * Set is all-or-nothing: when the memory refuses the block, the old value
//   (if any) is kept and Set returns false.
// * Get runs its callback under the shard's lock, so the value it sees stays
//   valid (and unmodified) for the callback's duration.
// * The destructor frees every entry.

#ifndef FMEMP_EXAMPLES_KV_SERVER_STORE_H_
#define FMEMP_EXAMPLES_KV_SERVER_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "examples/kv_server/entry_memory.h"

namespace kv_server {

class Store {
 public:
  static constexpr size_t kShards = 64;

  // `memory` must outlive the store.
  explicit Store(EntryMemory* memory) : memory_(memory) {}
  ~Store() { Clear(); }
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Inserts or replaces. False when the memory has no room (nothing
  // changed) or the entry would not fit the 32-bit length fields.
  bool Set(absl::string_view key, absl::string_view value);
  // Calls `reader` with the value under the shard's lock; false when absent.
  bool Get(absl::string_view key,
           absl::FunctionRef<void(absl::string_view)> reader) const;
  bool Delete(absl::string_view key);
  bool Exists(absl::string_view key) const;
  // Entries now (a sum over shards, each read under its lock).
  size_t Size() const;
  // Removes and frees every entry; returns how many there were.
  size_t Clear();
  // Removes and frees entries until their blocks' requested bytes reach
  // `bytes` or the store is empty ("allkeys-random": in each shard, up to
  // 16 entries in table order from a pseudo-random place; shards
  // round-robin from where the last eviction stopped). O(entries of the
  // shards visited). Returns the bytes freed; evicted_keys() counts the
  // entries. Thread-safe; takes one shard's lock at a time and frees outside
  // it.
  size_t Evict(size_t bytes);
  uint64_t evicted_keys() const {
    return evicted_keys_.load(std::memory_order_relaxed);
  }

 private:
  struct Entry;
  struct alignas(64) Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<absl::string_view, Entry*> map ABSL_GUARDED_BY(mu);
  };

  Shard& ShardFor(absl::string_view key) const;

  EntryMemory* const memory_;
  mutable Shard shards_[kShards];
  std::atomic<size_t> next_victim_shard_{0};
  std::atomic<uint64_t> next_victim_draw_{0};  // where in a shard Evict starts
  std::atomic<uint64_t> evicted_keys_{0};
};

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_STORE_H_
