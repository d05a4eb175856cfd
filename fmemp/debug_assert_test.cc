// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/debug_assert_test.cc
//
// FMEMP_DCHECK (fmemp/debug_assert.h): its message, that its condition is
// not evaluated under NDEBUG, and death tests for the invariants the
// structures assert in debug builds, each driven by corrupting a structure
// through its test-only friend (RegionTableTestPeer, RegionSetTestPeer,
// SizeClassCacheTestPeer). Under NDEBUG (-c opt) the death tests are
// skipped: the assertions are compiled out.

#include "fmemp/debug_assert.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "fmemp/region_set.h"
#include "fmemp/region_table.h"
#include "fmemp/size_class_cache.h"
#include "gtest/gtest.h"

namespace fmemp {

// Writes RegionTable's slots directly, as a bug in a writer would.
class RegionTableTestPeer {
 public:
  // Swaps the ranges of the first two entries: the table is no longer
  // sorted by address.
  static void SwapFirstTwo(RegionTable& table) {
    RegionTable::Array* array = table.array_.load();
    const RegionTable::Entry first =
        RegionTable::Load(array->slots[0], std::memory_order_relaxed);
    const RegionTable::Entry second =
        RegionTable::Load(array->slots[1], std::memory_order_relaxed);
    RegionTable::Store(array->slots[0], second);
    RegionTable::Store(array->slots[1], first);
  }
};

// Changes RegionSet's private state, as a bug in its bookkeeping would.
class RegionSetTestPeer {
 public:
  static void MiscountCapacity(RegionSet& set, size_t bytes) {
    set.capacity_bytes_ += bytes;
  }
  // Fills a slot of `set`'s lookup cache with a region of `other`.
  static void CacheForeignRegion(RegionSet& set, const RegionSet& other) {
    set.lookup_[0] = other.regions_.front().region.get();
  }
};

// Changes SizeClassCache's counts, as a bug in its accounting would.
class SizeClassCacheTestPeer {
 public:
  static void SetCounts(SizeClassCache& cache, size_t bytes, size_t blocks) {
    cache.bytes_.store(bytes);
    cache.blocks_.store(blocks);
  }
  static void CheckCounts(const SizeClassCache& cache) {
    cache.DebugCheckCounts();
  }
};

namespace {

constexpr size_t kRegionBytes = 64 << 10;

// Memory for regions, owned by the test.
struct Buffers {
  explicit Buffers(size_t count)
      : memory(new uint64_t[count * kRegionBytes / sizeof(uint64_t)]) {}
  void* at(size_t i) {
    return reinterpret_cast<char*>(memory.get()) + i * kRegionBytes;
  }
  void* end(size_t i) { return static_cast<char*>(at(i)) + kRegionBytes; }
  std::unique_ptr<uint64_t[]> memory;
};

#define SKIP_WITHOUT_DEBUG_CHECKS() \
  if (!kDebugChecks) GTEST_SKIP() << "NDEBUG: FMEMP_DCHECK compiled out"

TEST(DebugAssertTest, FailingConditionIsNamedWithItsFileAndLine) {
  SKIP_WITHOUT_DEBUG_CHECKS();
  const int two = 2;
  EXPECT_DEBUG_DEATH(FMEMP_DCHECK(two + two == 5),
                     "debug_assert_test.cc:[0-9]+: fmemp invariant failed: "
                     "two \\+ two == 5");
}

TEST(DebugAssertTest, ConditionIsEvaluatedOnlyInDebugBuilds) {
  int evaluated = 0;
  FMEMP_DCHECK(++evaluated == 1);  // a side effect, for this test only
  EXPECT_EQ(evaluated, kDebugChecks ? 1 : 0);
}

TEST(DebugAssertTest, SoundStructuresPassTheirChecks) {
  Buffers buffers(2);
  RegionSet set;
  ASSERT_TRUE(set.AddRegion(buffers.at(0), buffers.end(0)).ok());
  ASSERT_TRUE(set.AddRegion(buffers.at(1), buffers.end(1)).ok());
  void* p = set.Allocate(100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(set.Free(p));  // fills the lookup cache
  EXPECT_EQ(set.ProbeRegions().size(), 2u);
  EXPECT_TRUE(set.RemoveRegion(buffers.at(1)).ok());
  SizeClassCache cache;
  SizeClassCacheTestPeer::SetCounts(cache, 64, 2);
  SizeClassCacheTestPeer::CheckCounts(cache);
}

// RegionTable: entries sorted by address and disjoint, checked after every
// write.
TEST(DebugAssertDeathTest, UnsortedRegionTableIsCaughtAtItsNextWrite) {
  SKIP_WITHOUT_DEBUG_CHECKS();
  Buffers buffers(2);
  const auto a = reinterpret_cast<uintptr_t>(buffers.at(0));
  const auto b = reinterpret_cast<uintptr_t>(buffers.at(1));
  RegionTable table;
  table.Insert({a + 64, a + kRegionBytes, nullptr, nullptr, a});
  table.Insert({b + 64, b + kRegionBytes, nullptr, nullptr, b});
  EXPECT_DEBUG_DEATH(
      {
        RegionTableTestPeer::SwapFirstTwo(table);
        table.SetOwner(a + 64, &table);
      },
      "fmemp invariant failed: .*<= entry.base");
}

TEST(DebugAssertDeathTest, OverlappingInsertIsCaught) {
  SKIP_WITHOUT_DEBUG_CHECKS();
  Buffers buffers(1);
  const auto a = reinterpret_cast<uintptr_t>(buffers.at(0));
  RegionTable table;
  table.Insert({a + 64, a + kRegionBytes / 2, nullptr, nullptr, a});
  EXPECT_DEBUG_DEATH(
      table.Insert({a + kRegionBytes / 4, a + kRegionBytes, nullptr, nullptr,
                    a + kRegionBytes / 4 - 64}),
      "fmemp invariant failed: !Overlapping");
}

// RegionSet: the aggregates are the sums of the regions' counters.
TEST(DebugAssertDeathTest, MiscountedRegionSetIsCaughtAtItsNextChange) {
  SKIP_WITHOUT_DEBUG_CHECKS();
  Buffers buffers(2);
  RegionSet set;
  ASSERT_TRUE(set.AddRegion(buffers.at(0), buffers.end(0)).ok());
  EXPECT_DEBUG_DEATH(
      {
        RegionSetTestPeer::MiscountCapacity(set, 16);
        set.AddRegion(buffers.at(1), buffers.end(1)).IgnoreError();
      },
      "fmemp invariant failed: capacity == capacity_bytes_");
}

// RegionSet: the lookup cache names only regions of the set, checked on a
// probe (each change to the regions empties it).
TEST(DebugAssertDeathTest, LookupCacheNamingAnotherSetsRegionIsCaught) {
  SKIP_WITHOUT_DEBUG_CHECKS();
  Buffers buffers(2);
  RegionSet set, other;
  ASSERT_TRUE(set.AddRegion(buffers.at(0), buffers.end(0)).ok());
  ASSERT_TRUE(other.AddRegion(buffers.at(1), buffers.end(1)).ok());
  EXPECT_DEBUG_DEATH(
      {
        RegionSetTestPeer::CacheForeignRegion(set, other);
        set.ProbeRegions();
      },
      "fmemp invariant failed: cached == nullptr");
}

// SizeClassCache: the budget, and counts that agree.
TEST(DebugAssertDeathTest, CacheOverItsBudgetIsCaught) {
  SKIP_WITHOUT_DEBUG_CHECKS();
  CacheOptions options;
  options.max_bytes_per_thread = 4096;
  SizeClassCache cache(options);
  EXPECT_DEBUG_DEATH(
      {
        SizeClassCacheTestPeer::SetCounts(cache, 8192, 8);
        SizeClassCacheTestPeer::CheckCounts(cache);
      },
      "fmemp invariant failed: bytes\\(\\) <= max_bytes_");
  EXPECT_DEBUG_DEATH(
      {
        SizeClassCacheTestPeer::SetCounts(cache, 64, 1000);
        SizeClassCacheTestPeer::CheckCounts(cache);
      },
      "fmemp invariant failed: blocks\\(\\) \\* tlsf::kMinFreeSpan");
}

}  // namespace
}  // namespace fmemp
