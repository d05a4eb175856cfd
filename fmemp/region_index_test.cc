// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of RegionIndex against a brute-force model: after every update,
// FindAtLeast(b) returns an entry with the smallest filed bin >= b, and
// First(b) lists exactly the entries filed under b.

#include "fmemp/region_index.h"

#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace fmemp {
namespace {

TEST(RegionIndexTest, EmptyIndexFindsNothing) {
  RegionIndex index;
  EXPECT_TRUE(index.empty());
  for (int bin = 0; bin < RegionIndex::kBinCount; ++bin) {
    EXPECT_EQ(index.FindAtLeast(bin), nullptr);
    EXPECT_EQ(index.First(bin), nullptr);
  }
}

TEST(RegionIndexTest, MatchesBruteForceModel) {
  constexpr int kEntries = 64;
  std::vector<RegionIndex::Entry> entries(kEntries);
  RegionIndex index;
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> pick(0, kEntries - 1);
  std::uniform_int_distribution<int> bin_of(-1, RegionIndex::kBinCount - 1);
  for (int step = 0; step < 20000; ++step) {
    RegionIndex::Entry& e = entries[pick(rng)];
    // Cluster bins so lists with several entries are common.
    int bin = bin_of(rng);
    if (step % 2 == 0 && bin >= 0) bin = bin % 40;
    index.Update(&e, bin);
    ASSERT_EQ(e.bin, bin);
    std::multiset<int> filed;
    for (const auto& entry : entries) {
      if (entry.bin != RegionIndex::kNoBin) filed.insert(entry.bin);
    }
    EXPECT_EQ(index.empty(), filed.empty());
    const int probe =
        std::uniform_int_distribution<int>(0, RegionIndex::kBinCount - 1)(rng);
    const auto expected = filed.lower_bound(probe);
    RegionIndex::Entry* found = index.FindAtLeast(probe);
    if (expected == filed.end()) {
      EXPECT_EQ(found, nullptr) << probe;
    } else {
      ASSERT_NE(found, nullptr) << probe;
      EXPECT_EQ(found->bin, *expected) << probe;
    }
    // The list of one bin holds exactly its entries.
    const int check_bin = bin >= 0 ? bin : probe;
    size_t listed = 0;
    for (auto* it = index.First(check_bin); it != nullptr; it = it->next) {
      EXPECT_EQ(it->bin, check_bin);
      ++listed;
    }
    EXPECT_EQ(listed, filed.count(check_bin));
  }
}

TEST(RegionIndexTest, UpdateToSameBinKeepsPosition) {
  RegionIndex index;
  RegionIndex::Entry a, b;
  index.Update(&a, 5);
  index.Update(&b, 5);
  EXPECT_EQ(index.First(5), &b);
  index.Update(&a, 5);
  EXPECT_EQ(index.First(5), &b);
  index.Update(&b, RegionIndex::kNoBin);
  EXPECT_EQ(index.First(5), &a);
  EXPECT_EQ(index.FindAtLeast(0), &a);
  EXPECT_EQ(index.FindAtLeast(6), nullptr);
  index.Update(&a, RegionIndex::kNoBin);
  EXPECT_TRUE(index.empty());
}

}  // namespace
}  // namespace fmemp
