// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/metadata_arena.h"

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"

namespace fmemp {
namespace {

TEST(MetadataArenaTest, RecordsAreClassSizedAndAligned) {
  EXPECT_EQ(MetadataArena::RecordBytes(0), 16u);
  EXPECT_EQ(MetadataArena::RecordBytes(1), 16u);
  EXPECT_EQ(MetadataArena::RecordBytes(16), 16u);
  EXPECT_EQ(MetadataArena::RecordBytes(17), 32u);
  EXPECT_EQ(MetadataArena::RecordBytes(1000), 1024u);
  EXPECT_EQ(MetadataArena::RecordBytes(65536), 65536u);
  EXPECT_GT(MetadataArena::RecordBytes(65537), 65536u);
  for (size_t bytes : {1u, 24u, 48u, 64u, 100u, 4000u, 40000u, 100000u}) {
    void* p = MetadataArena::Allocate(bytes);
    ASSERT_NE(p, nullptr) << bytes;
    const size_t want_align =
        std::min<size_t>(MetadataArena::RecordBytes(bytes), 64);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % want_align, 0u) << bytes;
    std::memset(p, 0xab, bytes);  // the whole record is writable
    MetadataArena::Free(p, bytes);
  }
}

TEST(MetadataArenaTest, FreedRecordIsReusedByItsClass) {
  void* a = MetadataArena::Allocate(200);
  ASSERT_NE(a, nullptr);
  MetadataArena::Free(a, 200);
  // The same class (256) takes the record back off its free list.
  void* b = MetadataArena::Allocate(250);
  EXPECT_EQ(a, b);
  MetadataArena::Free(b, 250);
}

TEST(MetadataArenaTest, CyclesKeepTheFootprintFlat) {
  const MetadataArenaStats before = MetadataArena::Stats();
  for (int i = 0; i < 100000; ++i) {
    void* small = MetadataArena::Allocate(48);
    void* mid = MetadataArena::Allocate(9000);
    void* large = MetadataArena::Allocate(200000);
    ASSERT_TRUE(small != nullptr && mid != nullptr && large != nullptr);
    MetadataArena::Free(large, 200000);
    MetadataArena::Free(mid, 9000);
    MetadataArena::Free(small, 48);
  }
  const MetadataArenaStats after = MetadataArena::Stats();
  EXPECT_EQ(after.records_in_use, before.records_in_use);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  // At most one new chunk for the two small classes; the large record is
  // unmapped each time.
  EXPECT_LE(after.bytes_mapped,
            before.bytes_mapped + MetadataArena::kChunkBytes);
}

TEST(MetadataArenaTest, StatsCountRecordsInUse) {
  const MetadataArenaStats before = MetadataArena::Stats();
  void* p = MetadataArena::Allocate(100);
  void* q = MetadataArena::Allocate(100000);
  const MetadataArenaStats during = MetadataArena::Stats();
  EXPECT_EQ(during.records_in_use, before.records_in_use + 2);
  EXPECT_EQ(during.bytes_in_use,
            before.bytes_in_use + 128 + MetadataArena::RecordBytes(100000));
  MetadataArena::Free(p, 100);
  MetadataArena::Free(q, 100000);
  EXPECT_EQ(MetadataArena::Stats().records_in_use, before.records_in_use);
  MetadataArena::Free(nullptr, 100);  // no-op
  EXPECT_EQ(MetadataArena::Stats().records_in_use, before.records_in_use);
}

TEST(MetadataArenaTest, ContainersRunOnTheArena) {
  const MetadataArenaStats before = MetadataArena::Stats();
  {
    std::vector<int, ArenaAllocator<int>> v;
    for (int i = 0; i < 10000; ++i) v.push_back(i);
    absl::flat_hash_map<int, int, absl::Hash<int>, std::equal_to<int>,
                        ArenaAllocator<std::pair<const int, int>>>
        m;
    for (int i = 0; i < 1000; ++i) m[i] = i * 2;
    EXPECT_EQ(v[9999], 9999);
    EXPECT_EQ(m[500], 1000);
    EXPECT_GT(MetadataArena::Stats().records_in_use, before.records_in_use);
  }
  EXPECT_EQ(MetadataArena::Stats().records_in_use, before.records_in_use);
}

struct Base : ArenaAllocated {
  virtual ~Base() = default;
  int base_field = 1;
};
struct Big final : Base {
  char payload[3000] = {};
};

TEST(MetadataArenaTest, ArenaAllocatedDeletesWithTheDynamicSize) {
  const MetadataArenaStats before = MetadataArena::Stats();
  Base* b = new Big;
  EXPECT_EQ(MetadataArena::Stats().bytes_in_use,
            before.bytes_in_use + MetadataArena::RecordBytes(sizeof(Big)));
  delete b;  // through the base: the sized delete gets sizeof(Big)
  EXPECT_EQ(MetadataArena::Stats().bytes_in_use, before.bytes_in_use);
  EXPECT_EQ(MetadataArena::Stats().records_in_use, before.records_in_use);
}

struct alignas(64) Aligned {
  explicit Aligned(int v) : value(v) {}
  int value;
};

TEST(MetadataArenaTest, ArenaNewAndDelete) {
  const MetadataArenaStats before = MetadataArena::Stats();
  Aligned* a = ArenaNew<Aligned>(7);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->value, 7);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  ArenaDelete(a);
  ArenaPtr<Aligned> owned(ArenaNew<Aligned>(9));
  EXPECT_EQ(owned->value, 9);
  owned.reset();
  EXPECT_EQ(MetadataArena::Stats().records_in_use, before.records_in_use);
}

// Run under --config=tsan: threads allocating and freeing, handing records
// to each other.
TEST(MetadataArenaTest, ThreadsShareTheArena) {
  const MetadataArenaStats before = MetadataArena::Stats();
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      void* held[8] = {};
      for (int i = 0; i < kRounds; ++i) {
        const size_t bytes = 16u << ((i + t) % 8);
        void*& slot = held[i % 8];
        if (slot != nullptr) {
          MetadataArena::Free(slot, 16u << ((i - 8 + t) % 8));
        }
        slot = MetadataArena::Allocate(bytes);
        ASSERT_NE(slot, nullptr);
        std::memset(slot, t, bytes);
      }
      for (int i = kRounds; i < kRounds + 8; ++i) {
        MetadataArena::Free(held[i % 8], 16u << ((i - 8 + t) % 8));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(MetadataArena::Stats().records_in_use, before.records_in_use);
}

}  // namespace
}  // namespace fmemp
