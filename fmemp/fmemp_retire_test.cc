// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// FMempRetireRegion and FMempCancelRetire through the C API, as SDK code
// meets them, under every policy (unbound threads under thread heaps): the
// probe shows the retiring region and its live bytes, nothing new comes from
// it, the handler runs when the last block is freed, and bad input changes
// nothing.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fmemp/fmemp.h"
#include "fmemp/policy_table.h"
#include "fmemp/test_util.h"
#include "gtest/gtest.h"

namespace fmemp {
namespace {

using test_util::RegionBuffer;
using test_util::ScopedFMemp;
using test_util::Usage;

constexpr size_t kBytes = size_t{256} << 10;

struct Retired {
  FMemp* memp = nullptr;
  int calls = 0;
  void* begin = nullptr;
  u32 regions_seen = 0;
};

void OnRetired(void* user, void* begin, void*) {
  auto* retired = static_cast<Retired*>(user);
  ++retired->calls;
  retired->begin = begin;
  retired->regions_seen = FMempRegionCount(retired->memp);  // outside locks
}

// The usage of the region that begins at `begin`, or nullptr.
bool ProbeRegionAt(FMemp* memp, void* begin, FMempRegionUsage* out) {
  const u32 count = FMempRegionCount(memp);
  for (u32 i = 0; i < count; ++i) {
    if (FMempProbeRegion(memp, i, out) == FMEMP_SUCCESS &&
        out->begin == begin) {
      return true;
    }
  }
  return false;
}

TEST(FMempRetireTest, RetiredRegionGoesWithItsLastBlockUnderEveryPolicy) {
  CApiPolicies::ForEachRow([](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE("policy " + std::to_string(static_cast<int>(Row::kPolicy)));
    RegionBuffer first(kBytes), second(kBytes);
    ScopedFMemp pool;
    FMemp* memp = pool.get();
    ASSERT_EQ(
        FMempInitWithPolicy(memp, first.begin(), first.end(), Row::kPolicy),
        FMEMP_SUCCESS);
    ASSERT_EQ(FMempAddRegion(memp, second.begin(), second.end()),
              FMEMP_SUCCESS);
    Retired retired{memp};
    {
      // Large blocks, until some land in the second region.
      std::vector<void*> in_second, elsewhere;
      for (int i = 0; i < 40 && in_second.size() < 3; ++i) {
        void* p = FMempMalloc(memp, 8000);
        ASSERT_NE(p, nullptr);
        (second.Holds(p) ? in_second : elsewhere).push_back(p);
      }
      ASSERT_FALSE(in_second.empty());
      ASSERT_EQ(FMempRetireRegion(memp, second.begin(), &OnRetired, &retired),
                FMEMP_SUCCESS);
      EXPECT_EQ(FMempRetireRegion(memp, second.begin(), nullptr, nullptr),
                FMEMP_ERR_INVALID_ARG);  // twice
      FMempRegionUsage usage = {};
      ASSERT_TRUE(ProbeRegionAt(memp, second.begin(), &usage));
      EXPECT_EQ(usage.retiring, 1u);
      EXPECT_EQ(usage.live_blocks, in_second.size());
      for (int i = 0; i < 20; ++i) {
        void* p = FMempMalloc(memp, 100 + i);
        if (p == nullptr) break;
        EXPECT_FALSE(second.Holds(p));
        elsewhere.push_back(p);
      }
      for (void* p : in_second) FMempFree(memp, p);
      EXPECT_EQ(retired.calls, 1);
      EXPECT_EQ(retired.begin, second.begin());
      EXPECT_EQ(retired.regions_seen, 1u);
      EXPECT_FALSE(ProbeRegionAt(memp, second.begin(), &usage));
      EXPECT_EQ(FMempCancelRetire(memp, second.begin()),
                FMEMP_ERR_REGION_NOT_FOUND);
      for (void* p : elsewhere) FMempFree(memp, p);
      EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
    }
  });
}

TEST(FMempRetireTest, CancelKeepsTheRegionAndBadInputChangesNothing) {
  RegionBuffer first(kBytes), second(kBytes);
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  EXPECT_EQ(FMempRetireRegion(memp, first.begin(), nullptr, nullptr),
            FMEMP_ERR_NOT_INIT);
  ASSERT_EQ(
      FMempInitWithPolicy(memp, first.begin(), first.end(), FMEMP_POLICY_MUTEX),
      FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, second.begin(), second.end()), FMEMP_SUCCESS);
  int unrelated = 0;
  EXPECT_EQ(FMempRetireRegion(memp, &unrelated, nullptr, nullptr),
            FMEMP_ERR_REGION_NOT_FOUND);
  EXPECT_EQ(FMempCancelRetire(memp, second.begin()), FMEMP_ERR_INVALID_ARG);
  // A block in the first region keeps it; retire, cancel, free: it stays.
  void* p = FMempMalloc(memp, 100);
  ASSERT_NE(p, nullptr);
  void* region = first.Holds(p) ? first.begin() : second.begin();
  ASSERT_EQ(FMempRetireRegion(memp, region, nullptr, nullptr), FMEMP_SUCCESS);
  ASSERT_EQ(FMempCancelRetire(memp, region), FMEMP_SUCCESS);
  FMempFree(memp, p);
  EXPECT_EQ(FMempRegionCount(memp), 2u);
  FMempRegionUsage usage = {};
  ASSERT_TRUE(ProbeRegionAt(memp, region, &usage));
  EXPECT_EQ(usage.retiring, 0u);
}

}  // namespace
}  // namespace fmemp
