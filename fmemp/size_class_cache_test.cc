// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp::SizeClassCache against a real RegionSet as its Source (one
// thread, no lock: the Source contract of fmemp/size_class_cache.h).

#include "fmemp/size_class_cache.h"

#include <cstdint>
#include <vector>

#include "fmemp/region_set.h"
#include "gtest/gtest.h"

namespace fmemp {
namespace {

// A Source over one RegionSet that counts what the cache asks of it.
struct CountingSource {
  RegionSet* regions;
  uintptr_t key;
  size_t batches = 0;
  size_t returned = 0;
  std::vector<const void*> damaged;

  const RegionTable& table() const { return regions->table(); }
  const void* owner() const { return nullptr; }  // a RegionSet of its own
  uintptr_t marker_key() const { return key; }
  size_t AllocateBatch(size_t usable, size_t count, void** out) {
    ++batches;
    return regions->AllocateBatch(usable, count, out);
  }
  void ReturnChain(ParkedBlock* chain) {
    while (chain != nullptr) {
      regions->Free(SizeClassCache::TakeFromChain(&chain));
      ++returned;
    }
  }
  void ReportDamagedLink(const void* link) { damaged.push_back(link); }
};

class SizeClassCacheTest : public ::testing::Test {
 protected:
  static constexpr size_t kRegionBytes = 1 << 20;
  void SetUp() override {
    ASSERT_TRUE(regions_.AddRegion(buffer_, buffer_ + kRegionBytes).ok());
  }
  size_t Used() const { return regions_.Probe().used_bytes; }

  alignas(64) static inline char buffer_[kRegionBytes];
  RegionSet regions_;
  CountingSource source_{&regions_, NewMarkerKey(this, 1), 0, 0, {}};
};

constexpr size_t kSpan = tlsf::SpanForRequest(100);

TEST_F(SizeClassCacheTest, TakeRefillsInBatchesAndPopFastServesTheRest) {
  SizeClassCache cache;
  void* first = cache.Take(source_, kSpan);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(source_.batches, 1u);
  // The first refill takes kFirstRefillBlocks: one handed out, three parked.
  EXPECT_EQ(cache.blocks(), SizeClassCache::kFirstRefillBlocks - 1);
  EXPECT_EQ(cache.bytes(), cache.blocks() * kSpan);
  EXPECT_EQ(Used(), SizeClassCache::kFirstRefillBlocks * kSpan);
  // PopFast needs a hint that covers the block: Take left one.
  for (size_t i = 1; i < SizeClassCache::kFirstRefillBlocks; ++i) {
    void* p = cache.PopFast(kSpan, source_.table(), source_.key);
    ASSERT_NE(p, nullptr) << i;
    EXPECT_FALSE(SizeClassCache::IsParked(source_.table(), source_.key, p));
  }
  EXPECT_EQ(cache.PopFast(kSpan, source_.table(), source_.key), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(source_.batches, 1u);
  ASSERT_NE(cache.Take(source_, kSpan), nullptr);
  EXPECT_EQ(source_.batches, 2u);
}

TEST_F(SizeClassCacheTest, AParkedBlockIsRefusedAsADoubleFree) {
  SizeClassCache cache;
  void* p = cache.Take(source_, kSpan);
  ASSERT_NE(p, nullptr);
  auto* block = static_cast<ParkedBlock*>(p);
  ASSERT_TRUE(cache.TryPush(block, kSpan, source_.key));
  EXPECT_TRUE(SizeClassCache::IsParked(source_.table(), source_.key, p));
  const size_t bytes = cache.bytes();
  EXPECT_FALSE(cache.TryPush(block, kSpan, source_.key));
  EXPECT_EQ(cache.Put(source_, p, kSpan, /*park=*/true),
            SizeClassCache::kDoubleFree);
  // Another cache of the same key refuses it too: the marker is the
  // authority, not the list.
  SizeClassCache other;
  EXPECT_EQ(other.Put(source_, p, kSpan, /*park=*/true),
            SizeClassCache::kDoubleFree);
  EXPECT_EQ(cache.bytes(), bytes);
  EXPECT_EQ(other.bytes(), 0u);
}

TEST_F(SizeClassCacheTest, PutWithoutParkingLeavesTheMarkerClear) {
  SizeClassCache cache;
  void* p = regions_.Allocate(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(cache.Put(source_, p, kSpan, /*park=*/false),
            SizeClassCache::kNotParked);
  EXPECT_FALSE(SizeClassCache::IsParked(source_.table(), source_.key, p));
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_TRUE(regions_.Free(p));
}

TEST_F(SizeClassCacheTest, TheBudgetHoldsAndATrimReturnsBlocksToTheSource) {
  CacheOptions options;
  options.max_bytes_per_thread = 8 * kSpan;
  SizeClassCache cache(options);
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(regions_.Allocate(100));
  const size_t used = Used();
  for (void* p : blocks) {
    if (!cache.TryPush(static_cast<ParkedBlock*>(p), kSpan, source_.key)) {
      ASSERT_EQ(cache.Put(source_, p, kSpan, /*park=*/true),
                SizeClassCache::kParked);
    }
    ASSERT_LE(cache.bytes(), options.max_bytes_per_thread);
  }
  EXPECT_GT(source_.returned, 0u);
  // What the cache holds plus what it returned is what was freed.
  EXPECT_EQ(cache.blocks() + source_.returned, blocks.size());
  EXPECT_EQ(Used(), used - source_.returned * kSpan);
  cache.ReleaseDownTo(source_, 0);
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(Used(), 0u);
  EXPECT_TRUE(regions_.Check().ok());
}

TEST_F(SizeClassCacheTest, ADamagedLinkIsReportedAndNotFollowed) {
  SizeClassCache cache;
  std::vector<void*> blocks;
  for (int i = 0; i < 3; ++i) {
    void* p = regions_.Allocate(100);
    blocks.push_back(p);
    ASSERT_TRUE(
        cache.TryPush(static_cast<ParkedBlock*>(p), kSpan, source_.key));
  }
  // A use after free: the newest block's link now points outside every
  // region.
  static char outside[64];
  static_cast<ParkedBlock*>(blocks[2])->next =
      reinterpret_cast<ParkedBlock*>(outside);
  EXPECT_EQ(cache.Take(source_, kSpan), blocks[2]);  // its head is sound
  // The next head is damaged: the list is dropped (blocks[0] and blocks[1]
  // stay allocated, never reused) and the class refills from the source.
  void* fresh = cache.Take(source_, kSpan);
  ASSERT_NE(fresh, nullptr);
  EXPECT_NE(fresh, blocks[0]);
  EXPECT_NE(fresh, blocks[1]);
  EXPECT_EQ(source_.batches, 1u);
  ASSERT_EQ(source_.damaged.size(), 1u);
  EXPECT_EQ(source_.damaged[0], outside);
  cache.ReleaseDownTo(source_, 0);
  EXPECT_EQ(regions_.UsableSize(blocks[0]), tlsf::UsableBytes(kSpan));
}

TEST_F(SizeClassCacheTest, ParkClaimedKeepsTheCallersMarker) {
  SizeClassCache cache;
  void* p = regions_.Allocate(100);
  auto* block = static_cast<ParkedBlock*>(p);
  ASSERT_TRUE(SizeClassCache::ClaimMarker(
      block, SizeClassCache::MarkerFor(block, source_.key)));
  cache.ParkClaimed(source_, block, kSpan);
  EXPECT_EQ(cache.blocks(), 1u);
  EXPECT_TRUE(SizeClassCache::IsParked(source_.table(), source_.key, p));
  EXPECT_EQ(cache.Take(source_, kSpan), p);
  EXPECT_FALSE(SizeClassCache::IsParked(source_.table(), source_.key, p));
}

TEST_F(SizeClassCacheTest, ForgetTouchesNoBlock) {
  SizeClassCache cache;
  ASSERT_NE(cache.Take(source_, kSpan), nullptr);
  ASSERT_GT(cache.blocks(), 0u);
  cache.Forget();
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(cache.blocks(), 0u);
  EXPECT_EQ(source_.returned, 0u);
}

// Two sets sharing one table (as ThreadHeapMemp's pools): a cache over one of
// them never hands out a block of the other, even one that carries a
// marker of the same key (parked in the other's cache) and is reached
// through a damaged link right after a lookup of the other's region.
TEST(SizeClassCacheOwnerTest, ThePopNeverTakesAnotherOwnersParkedBlock) {
  static constexpr size_t kBytes = 1 << 20;
  alignas(64) static char mine_buffer[kBytes];
  alignas(64) static char theirs_buffer[kBytes];
  static const char kMine = 0, kTheirs = 0;
  RegionTable table;
  RegionSet mine, theirs;
  ASSERT_TRUE(mine.UseTable(&table, &kMine).ok());
  ASSERT_TRUE(theirs.UseTable(&table, &kTheirs).ok());
  ASSERT_TRUE(mine.AddRegion(mine_buffer, mine_buffer + kBytes).ok());
  ASSERT_TRUE(theirs.AddRegion(theirs_buffer, theirs_buffer + kBytes).ok());
  struct MineSource : CountingSource {
    const void* owner() const { return &kMine; }
  } source{{&mine, NewMarkerKey(&table, 1), 0, 0, {}}};

  SizeClassCache cache;
  void* head = cache.Take(source, kSpan);  // refills: the hint is mine
  ASSERT_NE(head, nullptr);
  ASSERT_TRUE(
      cache.TryPush(static_cast<ParkedBlock*>(head), kSpan, source.key));
  // Their block, parked in their cache under the same key.
  auto* foreign = static_cast<ParkedBlock*>(theirs.Allocate(100));
  ASSERT_NE(foreign, nullptr);
  ASSERT_TRUE(SizeClassCache::ClaimMarker(
      foreign, SizeClassCache::MarkerFor(foreign, source.key)));
  // A lookup of their block (a free on this thread): not ours, and the
  // hint keeps our region.
  EXPECT_EQ(
      SizeClassCache::CacheableSpan(table, &kMine, foreign, &cache.region_hint),
      0u);
  EXPECT_EQ(cache.region_hint.entry.owner, &kMine);
  // A use after free points our head's link at their block.
  static_cast<ParkedBlock*>(head)->next = foreign;
  EXPECT_EQ(cache.PopFast(kSpan, table, source.key), head);
  EXPECT_EQ(cache.PopFast(kSpan, table, source.key), nullptr);
  // The validated pop refuses it too: reported, the list dropped.
  EXPECT_NE(cache.Take(source, kSpan), foreign);
  ASSERT_EQ(source.damaged.size(), 1u);
  EXPECT_EQ(source.damaged[0], foreign);
  EXPECT_TRUE(SizeClassCache::IsParked(table, source.key, foreign));
}

}  // namespace
}  // namespace fmemp
