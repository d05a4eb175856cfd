// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "examples/kv_server/store.h"

#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"

namespace kv_server {

// Lives at the start of an EntryMemory block; the key and then the value
// follow it.
struct Store::Entry {
  uint32_t key_size;
  uint32_t value_size;
  uint64_t reserved;  // keeps the bytes after the header 16-byte aligned

  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  absl::string_view key() { return {bytes(), key_size}; }
  absl::string_view value() { return {bytes() + key_size, value_size}; }
};

Store::Shard& Store::ShardFor(absl::string_view key) const {
  // The map rehashes the key with its own seed; the shard uses the high bits
  // so the two choices are independent.
  const size_t hash = absl::Hash<absl::string_view>{}(key);
  return shards_[(hash >> 48) % kShards];
}

bool Store::Set(absl::string_view key, absl::string_view value) {
  constexpr size_t kMaxField = std::numeric_limits<uint32_t>::max();
  if (key.size() > kMaxField || value.size() > kMaxField) return false;
  void* block = memory_->Allocate(sizeof(Entry) + key.size() + value.size());
  if (block == nullptr) return false;
  Entry* entry = new (block) Entry{static_cast<uint32_t>(key.size()),
                                   static_cast<uint32_t>(value.size()), 0};
  if (!key.empty()) std::memcpy(entry->bytes(), key.data(), key.size());
  if (!value.empty()) {
    std::memcpy(entry->bytes() + key.size(), value.data(), value.size());
  }

  Entry* replaced = nullptr;
  Shard& shard = ShardFor(key);
  {
    absl::MutexLock hold(&shard.mu);
    auto it = shard.map.find(key);
    if (it != shard.map.end()) {
      replaced = it->second;
      // The map's key views the old entry: erase and re-insert so it views
      // the new one.
      shard.map.erase(it);
    }
    shard.map.emplace(entry->key(), entry);
  }
  if (replaced != nullptr) memory_->Free(replaced);
  return true;
}

bool Store::Get(absl::string_view key,
                absl::FunctionRef<void(absl::string_view)> reader) const {
  Shard& shard = ShardFor(key);
  absl::MutexLock hold(&shard.mu);
  auto it = shard.map.find(key);
  if (it == shard.map.end()) return false;
  reader(it->second->value());
  return true;
}

bool Store::Delete(absl::string_view key) {
  Entry* removed = nullptr;
  Shard& shard = ShardFor(key);
  {
    absl::MutexLock hold(&shard.mu);
    auto it = shard.map.find(key);
    if (it == shard.map.end()) return false;
    removed = it->second;
    shard.map.erase(it);
  }
  memory_->Free(removed);
  return true;
}

bool Store::Exists(absl::string_view key) const {
  Shard& shard = ShardFor(key);
  absl::MutexLock hold(&shard.mu);
  return shard.map.contains(key);
}

size_t Store::Size() const {
  size_t total = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock hold(&shard.mu);
    total += shard.map.size();
  }
  return total;
}

size_t Store::Clear() {
  size_t cleared = 0;
  std::vector<Entry*> doomed;
  for (Shard& shard : shards_) {
    absl::flat_hash_map<absl::string_view, Entry*> taken;
    {
      absl::MutexLock hold(&shard.mu);
      taken.swap(shard.map);
    }
    cleared += taken.size();
    doomed.clear();
    doomed.reserve(taken.size());
    for (auto& [key, entry] : taken) doomed.push_back(entry);
    // The views in `taken` point into the entries: drop them first.
    taken.clear();
    for (Entry* entry : doomed) memory_->Free(entry);
  }
  return cleared;
}

size_t Store::Evict(size_t bytes) {
  // A few entries per shard visit, so that eviction spreads over shards.
  constexpr size_t kPerShard = 16;
  size_t freed = 0;
  std::vector<Entry*> doomed;
  for (size_t visited = 0; visited < kShards && freed < bytes; ++visited) {
    Shard& shard =
        shards_[next_victim_shard_.fetch_add(1, std::memory_order_relaxed) %
                kShards];
    doomed.clear();
    {
      absl::MutexLock hold(&shard.mu);
      // From a pseudo-random place in the table, wrapping: always starting
      // at its first slot would evict the keys that hash there and keep
      // the others forever.
      auto it = shard.map.begin();
      if (!shard.map.empty()) {
        const uint64_t draw =
            (next_victim_draw_.fetch_add(1, std::memory_order_relaxed) + 1) *
            0x9e3779b97f4a7c15ull;
        std::advance(it, (draw >> 32) % shard.map.size());
      }
      while (!shard.map.empty() && doomed.size() < kPerShard && freed < bytes) {
        if (it == shard.map.end()) it = shard.map.begin();
        Entry* entry = it->second;
        freed += sizeof(Entry) + entry->key_size + entry->value_size;
        doomed.push_back(entry);
        shard.map.erase(it++);
      }
    }
    evicted_keys_.fetch_add(doomed.size(), std::memory_order_relaxed);
    for (Entry* entry : doomed) memory_->Free(entry);
    if (!doomed.empty()) visited = 0;  // keep going while shards give
  }
  return freed;
}

}  // namespace kv_server
