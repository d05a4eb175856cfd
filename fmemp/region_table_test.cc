// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/region_table.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fmemp {
namespace {

const void* HeapTag(int i) {
  static char tags[1024];
  return &tags[i];
}

TEST(RegionTableTest, FindsOnlyAddressesInsideEntries) {
  RegionTable table;
  RegionTable::Entry e;
  EXPECT_FALSE(table.Find(0x1000, &e));
  table.Insert({0x2000, 0x3000, HeapTag(2)});
  table.Insert({0x1000, 0x1800, HeapTag(1)});
  ASSERT_TRUE(table.Find(0x1000, &e));
  EXPECT_EQ(e.heap, HeapTag(1));
  ASSERT_TRUE(table.Find(0x17ff, &e));
  EXPECT_EQ(e.heap, HeapTag(1));
  EXPECT_FALSE(table.Find(0x1800, &e));  // the gap between the two
  EXPECT_FALSE(table.Find(0xfff, &e));
  ASSERT_TRUE(table.Find(0x2fff, &e));
  EXPECT_EQ(e.heap, HeapTag(2));
  EXPECT_FALSE(table.Find(0x3000, &e));
  table.Erase(0x1000);
  EXPECT_FALSE(table.Find(0x1000, &e));
  EXPECT_TRUE(table.Find(0x2000, &e));
  table.Erase(0x5000);  // unknown: no-op
  EXPECT_EQ(table.size(), 1u);
  table.Clear();
  EXPECT_FALSE(table.Find(0x2000, &e));
}

TEST(RegionTableTest, GrowsPastItsFirstArray) {
  RegionTable table;
  // Inserted out of order, 100 entries of 0x100 bytes 0x1000 apart.
  for (int i = 99; i >= 0; --i) {
    table.Insert({0x10000u + i * 0x1000u, 0x10100u + i * 0x1000u, HeapTag(i)});
  }
  ASSERT_EQ(table.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    RegionTable::Entry e;
    ASSERT_TRUE(table.Find(0x10080u + i * 0x1000u, &e)) << i;
    EXPECT_EQ(e.heap, HeapTag(i));
    EXPECT_FALSE(table.Find(0x10800u + i * 0x1000u, &e)) << i;
  }
  for (int i = 0; i < 100; i += 2) table.Erase(0x10000u + i * 0x1000u);
  for (int i = 0; i < 100; ++i) {
    RegionTable::Entry e;
    EXPECT_EQ(table.Find(0x10000u + i * 0x1000u, &e), i % 2 == 1) << i;
  }
}

// Readers always find a region that stays while a writer adds and removes
// others around it (and grows the array): under TSan this also proves the
// sequence lock race-free.
TEST(RegionTableTest, ReadersSeeStableEntriesWhileWritersChurn) {
  RegionTable table;
  constexpr uintptr_t kStable = 0x500000;
  table.Insert({kStable, kStable + 0x1000, HeapTag(500)});
  std::atomic<bool> stop{false};
  std::atomic<long> misses{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        RegionTable::Entry e;
        if (!table.Find(kStable + 0x800, &e) || e.heap != HeapTag(500) ||
            e.begin != kStable) {
          misses.fetch_add(1);
        }
        if (table.Find(kStable + 0x1000, &e) && e.heap == HeapTag(500)) {
          misses.fetch_add(1);
        }
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 40; ++i) {
      const uintptr_t b = (i < 20 ? 0x100000 : 0x900000) + i * 0x2000;
      table.Insert({b, b + 0x1000, HeapTag(i)});
    }
    for (int i = 0; i < 40; ++i) {
      table.Erase((i < 20 ? 0x100000 : 0x900000) + i * 0x2000);
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(misses.load(), 0);
  EXPECT_EQ(table.size(), 1u);
}

// A hint answers only while the table is unchanged: after any Insert,
// Erase or Clear the next lookup searches again, so a region removed and
// replaced at the same address is seen with its new heap.
TEST(RegionTableTest, HintAnswersOnlyWhileTheTableIsUnchanged) {
  RegionTable table;
  RegionTable::Hint hint;
  EXPECT_EQ(table.FindInHint(0x1000, hint), nullptr);  // empty hint
  EXPECT_EQ(table.Find(0x1000, &hint), nullptr);
  table.Insert({0x1000, 0x2000, HeapTag(1)});
  const RegionTable::Entry* e = table.Find(0x1800, &hint);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->heap, HeapTag(1));
  // Now from the hint alone, and only inside its entry.
  ASSERT_NE(table.FindInHint(0x1000, hint), nullptr);
  ASSERT_NE(table.FindInHint(0x1fff, hint), nullptr);
  EXPECT_EQ(table.FindInHint(0x2000, hint), nullptr);
  EXPECT_EQ(table.FindInHint(0xfff, hint), nullptr);
  EXPECT_EQ(table.Find(0x2000, &hint), nullptr);
  EXPECT_NE(table.FindInHint(0x1800, hint), nullptr);  // a miss keeps it

  table.Insert({0x3000, 0x4000, HeapTag(3)});  // elsewhere: still a change
  EXPECT_EQ(table.FindInHint(0x1800, hint), nullptr);
  ASSERT_NE(table.Find(0x1800, &hint), nullptr);
  table.Erase(0x1000);
  EXPECT_EQ(table.FindInHint(0x1800, hint), nullptr);
  EXPECT_EQ(table.Find(0x1800, &hint), nullptr);
  table.Insert({0x1000, 0x2000, HeapTag(7)});
  e = table.Find(0x1800, &hint);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->heap, HeapTag(7));
  table.Clear();
  EXPECT_EQ(table.FindInHint(0x1800, hint), nullptr);
  EXPECT_EQ(table.Find(0x1800, &hint), nullptr);
}

// Readers with hints, as the per-thread caches use them, never get an
// answer Find could not give while a writer churns other regions.
TEST(RegionTableTest, HintedReadersSeeStableEntriesWhileWritersChurn) {
  RegionTable table;
  constexpr uintptr_t kStable = 0x500000;
  table.Insert({kStable, kStable + 0x1000, HeapTag(500)});
  std::atomic<bool> stop{false};
  std::atomic<long> misses{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      RegionTable::Hint hint;
      while (!stop.load(std::memory_order_relaxed)) {
        const RegionTable::Entry* e = table.Find(kStable + 0x800, &hint);
        if (e == nullptr || e->heap != HeapTag(500) || e->begin != kStable) {
          misses.fetch_add(1);
        }
        // Churned regions: whatever is found must contain the address.
        const uintptr_t a = 0x100000 + 0x2000 * (hint.sequence % 20) + 0x10;
        e = table.Find(a, &hint);
        if (e != nullptr && !(e->begin <= a && a < e->end)) {
          misses.fetch_add(1);
        }
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 20; ++i) {
      const uintptr_t b = 0x100000 + i * 0x2000;
      table.Insert({b, b + 0x1000, HeapTag(i)});
    }
    for (int i = 0; i < 20; ++i) table.Erase(0x100000 + i * 0x2000);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(misses.load(), 0);
}

// Owner changes are made in place: a reader never misses the entry, and
// sees either owner, with the entry's other words unchanged. Under TSan
// this also proves SetOwner race-free.
TEST(RegionTableTest, OwnerChangesInPlaceUnderConcurrentReaders) {
  RegionTable table;
  constexpr uintptr_t kBase = 0x700000;
  table.Insert({kBase + 0x40, kBase + 0x1000, HeapTag(7), HeapTag(100), kBase});
  std::atomic<bool> stop{false};
  std::atomic<long> misses{0};
  std::atomic<long> seen_second{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      RegionTable::Hint hint;
      while (!stop.load(std::memory_order_relaxed)) {
        RegionTable::Entry e;
        if (!table.Find(kBase + 0x800, &e) || e.heap != HeapTag(7) ||
            e.base != kBase ||
            (e.owner != HeapTag(100) && e.owner != HeapTag(101))) {
          misses.fetch_add(1);
        }
        if (e.owner == HeapTag(101)) seen_second.fetch_add(1);
        const RegionTable::Entry* h = table.Find(kBase + 0x40, &hint);
        if (h == nullptr || h->heap != HeapTag(7)) misses.fetch_add(1);
      }
    });
  }
  for (int round = 0; round < 20000; ++round) {
    ASSERT_TRUE(table.SetOwner(kBase + 0x40, HeapTag(100 + round % 2)));
  }
  ASSERT_TRUE(table.SetOwner(kBase + 0x40, HeapTag(101)));
  RegionTable::Entry e;
  ASSERT_TRUE(table.Find(kBase + 0x40, &e));
  EXPECT_EQ(e.owner, HeapTag(101));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(misses.load(), 0);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_FALSE(table.SetOwner(kBase + 0x2000, HeapTag(1)));  // no entry
}

// An owner change invalidates hints, as any other write does.
TEST(RegionTableTest, OwnerChangeIsSeenThroughHints) {
  RegionTable table;
  table.Insert({0x1000, 0x2000, HeapTag(1), HeapTag(10)});
  RegionTable::Hint hint;
  ASSERT_NE(table.Find(0x1800, &hint), nullptr);
  EXPECT_EQ(hint.entry.owner, HeapTag(10));
  table.SetOwner(0x1000, HeapTag(11));
  EXPECT_EQ(table.FindInHint(0x1800, hint), nullptr);
  const RegionTable::Entry* e = table.Find(0x1800, &hint);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->owner, HeapTag(11));
}

// Find covers the payload range, FindWhole and Overlapping the whole
// region from its base.
TEST(RegionTableTest, WholeRegionLookupsIncludeThePoolHeader) {
  RegionTable table;
  table.Insert({0x1040, 0x2000, HeapTag(1), nullptr, 0x1000});
  table.Insert({0x3000, 0x4000, HeapTag(3)});  // base 0: same as begin
  RegionTable::Entry e;
  EXPECT_FALSE(table.Find(0x1000, &e));
  ASSERT_TRUE(table.FindWhole(0x1000, &e));
  EXPECT_EQ(e.base, 0x1000u);
  EXPECT_EQ(e.begin, 0x1040u);
  ASSERT_TRUE(table.FindWhole(0x3000, &e));
  EXPECT_EQ(e.base, 0x3000u);
  EXPECT_FALSE(table.FindWhole(0x2000, &e));
  EXPECT_FALSE(table.FindWhole(0xfff, &e));

  EXPECT_FALSE(table.Overlapping(0x2000, 0x3000, nullptr));  // the gap
  EXPECT_FALSE(table.Overlapping(0x800, 0x1000, nullptr));
  ASSERT_TRUE(table.Overlapping(0x800, 0x1001, &e));  // the pool header
  EXPECT_EQ(e.heap, HeapTag(1));
  ASSERT_TRUE(table.Overlapping(0x1fff, 0x3001, &e));
  EXPECT_EQ(e.heap, HeapTag(1));
  ASSERT_TRUE(table.Overlapping(0x2000, 0x5000, &e));
  EXPECT_EQ(e.heap, HeapTag(3));
  EXPECT_TRUE(table.Overlapping(0x0, 0x10000, nullptr));
  EXPECT_FALSE(table.Overlapping(0x4000, 0x10000, nullptr));
}

#ifndef NDEBUG
// Debug builds refuse an entry that overlaps another.
TEST(RegionTableDeathTest, OverlappingInsertAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        RegionTable table;
        table.Insert({0x1040, 0x2000, HeapTag(1), nullptr, 0x1000});
        table.Insert({0x800, 0x1010, HeapTag(2)});
      },
      "Overlapping");
}
#endif

}  // namespace
}  // namespace fmemp
