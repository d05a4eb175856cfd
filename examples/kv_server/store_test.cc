// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the Store over both EntryMemory implementations, and of
// FmempEntryMemory's growth (regions added on demand up to the cap), its
// refusal past the cap, and its trimming of empty regions.

#include "examples/kv_server/store.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "examples/kv_server/fmemp_entry_memory.h"
#include "examples/kv_server/glibc_entry_memory.h"
#include "gtest/gtest.h"

namespace kv_server {
namespace {

std::unique_ptr<FmempEntryMemory> MakeFmemp(PoolPolicy policy,
                                            size_t region_bytes,
                                            size_t max_bytes) {
  FmempOptions options;
  options.policy = policy;
  options.region_bytes = region_bytes;
  options.max_bytes = max_bytes;
  auto memory = FmempEntryMemory::Create(options);
  EXPECT_TRUE(memory.ok()) << memory.status();
  return memory.ok() ? *std::move(memory) : nullptr;
}

std::string Value(const Store& store, absl::string_view key) {
  std::string value = "<absent>";
  store.Get(key, [&](absl::string_view v) { value = std::string(v); });
  return value;
}

void ExerciseBasics(EntryMemory* memory) {
  const uint64_t used_before = memory->UsedBytes();
  {
    Store store(memory);
    EXPECT_TRUE(store.Set("a", "1"));
    EXPECT_TRUE(store.Set("b", ""));
    EXPECT_TRUE(store.Set("", "empty key"));
    EXPECT_EQ(Value(store, "a"), "1");
    EXPECT_EQ(Value(store, "b"), "");
    EXPECT_EQ(Value(store, ""), "empty key");
    EXPECT_EQ(Value(store, "c"), "<absent>");
    EXPECT_TRUE(store.Set("a", std::string(1000, 'x')));
    EXPECT_EQ(Value(store, "a"), std::string(1000, 'x'));
    EXPECT_EQ(store.Size(), 3u);
    EXPECT_TRUE(store.Exists("b"));
    EXPECT_TRUE(store.Delete("b"));
    EXPECT_FALSE(store.Delete("b"));
    EXPECT_FALSE(store.Exists("b"));
    EXPECT_GT(memory->UsedBytes(), used_before);
    EXPECT_EQ(store.Clear(), 2u);
    EXPECT_EQ(memory->UsedBytes(), used_before);
    EXPECT_TRUE(store.Set("left", "for the destructor"));
  }
  EXPECT_EQ(memory->UsedBytes(), used_before);
  EXPECT_TRUE(memory->Check().ok());
}

TEST(StoreTest, BasicsOverGlibc) {
  GlibcEntryMemory memory(size_t{64} << 20);
  ExerciseBasics(&memory);
}

TEST(StoreTest, BasicsOverEveryFmempPolicy) {
  for (PoolPolicy policy : AvailablePoolPolicies()) {
    SCOPED_TRACE(PoolPolicyName(policy));
    auto memory = MakeFmemp(policy, size_t{1} << 20, size_t{8} << 20);
    ASSERT_NE(memory, nullptr);
    ExerciseBasics(memory.get());
  }
}

TEST(FmempEntryMemoryTest, GrowsToTheCapThenRefusesAndTrimsBack) {
  auto memory =
      MakeFmemp(PoolPolicy::kMutex, size_t{256} << 10, size_t{1} << 20);
  ASSERT_NE(memory, nullptr);
  EXPECT_EQ(memory->RegionCount(), 1u);
  Store store(memory.get());
  const std::string value(10000, 'v');
  int stored = 0;
  while (store.Set(absl::StrCat("key", stored), value)) {
    ++stored;
    ASSERT_LT(stored, 1000) << "the cap was never reached";
  }
  // About 1 MiB of 10 KB entries (fmemp's hard limit refused the next),
  // in four or five regions (mapped up to the limit plus one region).
  EXPECT_GT(stored, 80);
  EXPECT_LE(memory->UsedBytes(), size_t{1} << 20);
  EXPECT_GE(memory->RegionCount(), 4u);
  EXPECT_LE(memory->RegionCount(), 5u);
  std::string info;
  memory->AppendInfo(&info);
  EXPECT_NE(info.find("fmemp_limit:1048576\r\n"), std::string::npos);
  EXPECT_NE(info.find("fmemp_limit_refusals:1\r\n"), std::string::npos) << info;
  // A refused SET keeps the old value.
  EXPECT_FALSE(store.Set("key0", std::string(300000, 'w')));
  EXPECT_EQ(Value(store, "key0"), value);
  // Requests larger than a region get a region of their own size.
  store.Clear();
  memory->Trim();
  EXPECT_EQ(memory->RegionCount(), 1u);
  EXPECT_EQ(memory->UsedBytes(), 0u);
  EXPECT_TRUE(store.Set("big", std::string(600000, 'b')));
  EXPECT_EQ(memory->RegionCount(), 2u);
  EXPECT_TRUE(store.Delete("big"));
  memory->Trim();
  EXPECT_EQ(memory->RegionCount(), 1u);
  EXPECT_TRUE(memory->Check().ok());
}

// maxmemory-policy allkeys-random: fmemp's soft limit calls the store's
// eviction, so writes far beyond maxmemory keep succeeding while usage stays
// under it, under every policy.
TEST(FmempEntryMemoryTest, SoftLimitEvictsSoWritesGoOnUnderEveryPolicy) {
  for (PoolPolicy policy : AvailablePoolPolicies()) {
    SCOPED_TRACE(PoolPolicyName(policy));
    constexpr size_t kMax = size_t{4} << 20;
    auto memory = MakeFmemp(policy, size_t{1} << 20, kMax);
    ASSERT_NE(memory, nullptr);
    {
      Store store(memory.get());
      ASSERT_TRUE(memory->SetEvictor(
          [&store](size_t bytes) { return store.Evict(bytes); }));
      const std::string value(10000, 'v');
      for (int i = 0; i < 2000; ++i) {  // ~20 MB of writes
        ASSERT_TRUE(store.Set(absl::StrCat("key", i), value)) << i;
        ASSERT_LE(memory->UsedBytes(), kMax);
      }
      EXPECT_GT(store.evicted_keys(), 1000u);
      EXPECT_LT(store.Size(), 400u);
      std::string info;
      memory->AppendInfo(&info);
      EXPECT_EQ(info.find("fmemp_evictions:0\r\n"), std::string::npos) << info;
      EXPECT_NE(info.find("fmemp_limit_refusals:0\r\n"), std::string::npos)
          << info;
      store.Clear();
    }
    EXPECT_TRUE(memory->Check().ok());
  }
}

TEST(StoreTest, EvictFreesAtLeastWhatItIsAskedForThenStopsWhenEmpty) {
  GlibcEntryMemory memory(size_t{64} << 20);
  Store store(&memory);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(store.Set(absl::StrCat("k", i), std::string(100, 'x')));
  }
  const size_t freed = store.Evict(5000);
  EXPECT_GE(freed, 5000u);
  EXPECT_LT(freed, 5000u + 200);
  EXPECT_EQ(store.Size(), 1000u - store.evicted_keys());
  EXPECT_GT(store.Evict(size_t{1} << 30), 0u);
  EXPECT_EQ(store.Size(), 0u);
  EXPECT_EQ(store.evicted_keys(), 1000u);
  EXPECT_EQ(store.Evict(100), 0u);
}

// Eviction reaches every key in time, not only those that hash to the
// first slots of a shard's table (which evicting from the table's start
// would keep forever): a steady stream of new keys, each paid for by one
// eviction, leaves none of the first 1000 keys.
TEST(StoreTest, EvictionUnderSteadyWritesReachesEveryOldKey) {
  GlibcEntryMemory memory(size_t{64} << 20);
  Store store(&memory);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(store.Set(absl::StrCat("old", i), std::string(100, 'x')));
  }
  for (int i = 0; i < 30000; ++i) {
    ASSERT_TRUE(store.Set(absl::StrCat("new", i), std::string(100, 'x')));
    ASSERT_GT(store.Evict(1), 0u);
  }
  EXPECT_EQ(store.Size(), 1000u);
  int survivors = 0;
  for (int i = 0; i < 1000; ++i) {
    survivors += store.Exists(absl::StrCat("old", i)) ? 1 : 0;
  }
  EXPECT_EQ(survivors, 0);
}

// A live region retired: no new entry goes there, its entries stay
// readable, and it is unmapped once they are deleted.
TEST(FmempEntryMemoryTest, RetiredRegionGoesWithItsLastEntry) {
  auto memory =
      MakeFmemp(PoolPolicy::kMutex, size_t{256} << 10, size_t{4} << 20);
  ASSERT_NE(memory, nullptr);
  Store store(memory.get());
  const std::string value(10000, 'v');
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(store.Set(absl::StrCat("key", i), value));
  }
  ASSERT_GE(memory->RegionCount(), 3u);
  EXPECT_FALSE(memory->RetireRegion(99).ok());
  // Region 0 in address order may be the first mapping (refused): retire
  // the first index that is allowed.
  size_t retired = 0;
  while (!memory->RetireRegion(retired).ok()) ++retired;
  const uint32_t regions = memory->RegionCount();
  std::string info;
  memory->AppendInfo(&info);
  EXPECT_NE(info.find("retiring=1"), std::string::npos) << info;
  for (int i = 60; i < 120; ++i) {
    ASSERT_TRUE(store.Set(absl::StrCat("key", i), value));
  }
  EXPECT_EQ(Value(store, "key0"), value);
  store.Clear();
  memory->Trim();
  info.clear();
  memory->AppendInfo(&info);
  EXPECT_EQ(info.find("retiring=1"), std::string::npos) << info;
  EXPECT_NE(info.find("fmemp_regions_retired:1\r\n"), std::string::npos)
      << info;
  EXPECT_LT(memory->RegionCount(), regions + 1);
  EXPECT_TRUE(memory->Check().ok());
}

TEST(FmempEntryMemoryTest, InfoListsEveryRegion) {
  auto memory =
      MakeFmemp(PoolPolicy::kSpinLock, size_t{256} << 10, size_t{1} << 20);
  ASSERT_NE(memory, nullptr);
  Store store(memory.get());
  ASSERT_TRUE(store.Set("big", std::string(300000, 'b')));
  std::string info;
  memory->AppendInfo(&info);
  EXPECT_NE(info.find("allocator:fmemp\r\n"), std::string::npos) << info;
  EXPECT_NE(info.find("fmemp_policy:spinlock\r\n"), std::string::npos);
  EXPECT_NE(info.find("fmemp_regions:2\r\n"), std::string::npos) << info;
  EXPECT_NE(info.find("fmemp_region_0:"), std::string::npos);
  EXPECT_NE(info.find("fmemp_region_1:"), std::string::npos);
  EXPECT_NE(info.find("used_memory_peak:"), std::string::npos);
}

TEST(FmempEntryMemoryTest, RejectsBadOptionsAndUnknownPolicies) {
  FmempOptions options;
  options.region_bytes = 1024;
  EXPECT_FALSE(FmempEntryMemory::Create(options).ok());
  options.region_bytes = size_t{1} << 20;
  options.max_bytes = size_t{1} << 19;
  EXPECT_FALSE(FmempEntryMemory::Create(options).ok());
  EXPECT_FALSE(ParsePoolPolicy("bogus").ok());
  EXPECT_TRUE(ParsePoolPolicy("mutex").ok());
  EXPECT_TRUE(ParsePoolPolicy("spinlock").ok());
}

TEST(StoreTest, ConcurrentWritersReadersAndDeleters) {
  for (PoolPolicy policy : AvailablePoolPolicies()) {
    SCOPED_TRACE(PoolPolicyName(policy));
    auto memory = MakeFmemp(policy, size_t{1} << 20, size_t{64} << 20);
    ASSERT_NE(memory, nullptr);
    {
      Store store(memory.get());
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&store, &memory, t] {
          ASSERT_TRUE(memory->AttachThread().ok());
          for (int i = 0; i < 3000; ++i) {
            const std::string key = absl::StrCat("k", i % 200);
            switch ((i + t) % 4) {
              case 0:
              case 1:
                store.Set(key, absl::StrCat("value-", t, "-", i));
                break;
              case 2:
                store.Get(key, [](absl::string_view v) {
                  ASSERT_EQ(v.substr(0, 6), "value-");
                });
                break;
              case 3:
                store.Delete(key);
                break;
            }
          }
          memory->DetachThread();
        });
      }
      for (auto& thread : threads) thread.join();
    }
    memory->Trim();
    EXPECT_EQ(memory->UsedBytes(), 0u);
    EXPECT_TRUE(memory->Check().ok());
  }
}

}  // namespace
}  // namespace kv_server
