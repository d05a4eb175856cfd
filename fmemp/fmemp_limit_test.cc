// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The C API's budgets (FMempSetLimit, FMempSetSoftLimit) under every
// policy, as SDK code meets them: refusals with a clear count,
// the OOM handler left out, eviction from the soft handler, bad input, and
// the SDK's init/remove cycle starting each time without limits.

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

constexpr size_t kBufferBytes = size_t{2} << 20;

// Runs body(memp) for an FMemp under each policy (unbound threads under
// FMEMP_POLICY_THREAD_HEAPS: its shared regions).
template <typename Body>
void ForEachLimitPolicy(Body body) {
  CApiPolicies::ForEachRow([&body](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE("policy " + std::to_string(static_cast<int>(Row::kPolicy)));
    RegionBuffer buffer(kBufferBytes);
    ScopedFMemp pool;
    ASSERT_EQ(FMempInitWithPolicy(pool.get(), buffer.begin(), buffer.end(),
                                  Row::kPolicy),
              FMEMP_SUCCESS);
    body(pool.get());
  });
}

int oom_calls = 0;
int CountOom(void*, fsize_t, fsize_t) {
  ++oom_calls;
  return 0;
}

TEST(FMempLimitTest, RefusesPastTheLimitCountedAndWithoutTheOomHandler) {
  ForEachLimitPolicy([](FMemp* memp) {
    constexpr u64 kLimit = 100 << 10;
    oom_calls = 0;
    ASSERT_EQ(FMempSetOomHandler(memp, &CountOom, nullptr), FMEMP_SUCCESS);
    ASSERT_EQ(FMempSetLimit(memp, kLimit), FMEMP_SUCCESS);
    std::vector<void*> blocks;
    while (void* p = FMempMalloc(memp, 1500)) blocks.push_back(p);
    FMempUsage usage = Usage(memp);
    EXPECT_LE(usage.used + usage.cached_bytes, kLimit);
    EXPECT_GT(usage.used + usage.cached_bytes + 2 * 1536, kLimit);
    EXPECT_EQ(usage.limit, kLimit);
    EXPECT_EQ(usage.failed_allocations, 1u);
    EXPECT_EQ(usage.limit_refusals, 1u);
    EXPECT_EQ(oom_calls, 0);
    // Under the limit the OOM handler is still asked: a request larger than
    // the region, with no limit.
    ASSERT_EQ(FMempSetLimit(memp, FMEMP_LIMIT_NONE), FMEMP_SUCCESS);
    EXPECT_EQ(FMempMalloc(memp, kBufferBytes), nullptr);
    EXPECT_EQ(oom_calls, 1);
    usage = Usage(memp);
    EXPECT_EQ(usage.limit, FMEMP_LIMIT_NONE);
    EXPECT_EQ(usage.failed_allocations, 2u);
    EXPECT_EQ(usage.limit_refusals, 1u);
    for (void* p : blocks) FMempFree(memp, p);
  });
}

struct Evictor {
  FMemp* memp;
  std::vector<void*> blocks;
  int calls = 0;
  u64 last_usage = 0;
};

void EvictHalf(void* user, u64 usage, u64 soft_limit) {
  auto* evictor = static_cast<Evictor*>(user);
  ++evictor->calls;
  evictor->last_usage = usage;
  EXPECT_GT(usage, soft_limit);
  const size_t keep = evictor->blocks.size() / 2;
  for (size_t i = keep; i < evictor->blocks.size(); ++i) {
    FMempFree(evictor->memp, evictor->blocks[i]);  // outside every lock
  }
  evictor->blocks.resize(keep);
}

TEST(FMempLimitTest, SoftLimitHandlerEvictsFromInsideTheCall) {
  ForEachLimitPolicy([](FMemp* memp) {
    Evictor evictor{memp, {}};
    constexpr u64 kSoft = 200 << 10;
    ASSERT_EQ(FMempSetSoftLimit(memp, kSoft, kSoft / 4, &EvictHalf, &evictor),
              FMEMP_SUCCESS);
    for (int i = 0; i < 3000; ++i) {
      void* p = FMempMalloc(memp, 2000);
      ASSERT_NE(p, nullptr);
      evictor.blocks.push_back(p);
    }
    EXPECT_GT(evictor.calls, 5);
    EXPECT_GT(evictor.last_usage, kSoft);
    const FMempUsage usage = Usage(memp);
    EXPECT_EQ(usage.soft_limit, kSoft);
    EXPECT_LT(usage.used + usage.cached_bytes, kSoft + kSoft / 2);
    for (void* p : evictor.blocks) FMempFree(memp, p);
  });
}

TEST(FMempLimitTest, BadInputIsRefusedAndChangesNothing) {
  ScopedFMemp zeroed;
  EXPECT_EQ(FMempSetLimit(zeroed.get(), 1000), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempSetSoftLimit(zeroed.get(), 1000, 0, &EvictHalf, nullptr),
            FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempSetLimit(nullptr, 1000), FMEMP_ERR_NOT_INIT);
  ForEachLimitPolicy([](FMemp* memp) {
    EXPECT_EQ(FMempSetSoftLimit(memp, 1000, 0, nullptr, nullptr),
              FMEMP_ERR_INVALID_ARG);
    EXPECT_EQ(FMempSetSoftLimit(memp, 1000, 1001, &EvictHalf, nullptr),
              FMEMP_ERR_INVALID_ARG);
    EXPECT_EQ(Usage(memp).soft_limit, FMEMP_LIMIT_NONE);
    // Removing with no handler is fine.
    EXPECT_EQ(FMempSetSoftLimit(memp, FMEMP_LIMIT_NONE, 0, nullptr, nullptr),
              FMEMP_SUCCESS);
  });
}

// A thread heap's limits: a thread without a thread heap, a NULL handler
// and a hysteresis above the limit are refused, and nothing changes.
TEST(FMempLimitTest, ThreadHeapLimitBadInputIsRefusedAndChangesNothing) {
  RegionBuffer buffer(kBufferBytes);
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  EXPECT_EQ(FMempSetThreadHeapLimit(memp, 0, 4096), FMEMP_ERR_NOT_INIT);
  ASSERT_EQ(FMempInitWithPolicy(memp, buffer.begin(), buffer.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  // The calling thread has no thread heap yet; nor has thread 12345.
  EXPECT_EQ(FMempSetThreadHeapLimit(memp, 0, 4096), FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempSetThreadHeapLimit(memp, 12345, 4096), FMEMP_ERR_INVALID_ARG);
  ASSERT_EQ(FMempBindThread(memp, buffer.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempSetThreadHeapSoftLimit(memp, 0, 4096, 0, nullptr, nullptr),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(
      FMempSetThreadHeapSoftLimit(memp, 0, 4096, 5000, &EvictHalf, nullptr),
      FMEMP_ERR_INVALID_ARG);
  FMempThreadHeapUsage usage = {};
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.limit, FMEMP_LIMIT_NONE);
  void* p = FMempMalloc(memp, 8192);  // no limit took effect
  EXPECT_NE(p, nullptr);
  FMempFree(memp, p);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
}

// Starts memp under FMEMP_POLICY_THREAD_HEAPS over `shared`, adds `own` and
// binds it to the calling thread.
void InitWithBoundThreadHeap(FMemp* memp, const RegionBuffer& shared,
                             const RegionBuffer& own) {
  ASSERT_EQ(FMempInitWithPolicy(memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, own.begin(), own.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempBindThread(memp, own.begin()), FMEMP_SUCCESS);
}

// A thread heap's fallback blocks count against its limit and are reported
// as its fallback_bytes: the thread's live bytes (used + fallback_bytes) are
// the FMemp's used bytes when no other thread allocated.
TEST(FMempLimitTest, ThreadHeapLimitCoversFallbackBlocks) {
  constexpr u64 kHeapLimit = 48 << 10;
  RegionBuffer shared(kBufferBytes);
  RegionBuffer own(16 << 10);
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  ASSERT_NO_FATAL_FAILURE(InitWithBoundThreadHeap(memp, shared, own));
  ASSERT_EQ(FMempSetThreadHeapLimit(memp, 0, kHeapLimit), FMEMP_SUCCESS);
  std::vector<void*> blocks;
  u64 from_shared = 0;
  for (void* p; (p = FMempMalloc(memp, 2000)) != nullptr;) {
    blocks.push_back(p);
    if (shared.Holds(p)) ++from_shared;
  }
  EXPECT_GT(from_shared, 0u);
  FMempThreadHeapUsage heap = {};
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &heap), FMEMP_SUCCESS);
  EXPECT_GT(heap.fallback_bytes, 0u);
  EXPECT_LE(heap.used + heap.cached_bytes + heap.fallback_bytes, kHeapLimit);
  EXPECT_EQ(heap.failed_allocations, 1u);
  FMempUsage total = {};
  ASSERT_EQ(FMempProbe64(memp, &total), FMEMP_SUCCESS);
  EXPECT_EQ(total.used, heap.used + heap.fallback_bytes);
  EXPECT_EQ(total.limit_refusals, 1u);
  for (void* p : blocks) FMempFree(memp, p);
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &heap), FMEMP_SUCCESS);
  EXPECT_EQ(heap.fallback_bytes, 0u);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
}

TEST(FMempLimitTest, LimitBelowUsageRefusesAndFreesNothing) {
  ForEachLimitPolicy([](FMemp* memp) {
    std::vector<void*> blocks;
    for (int i = 0; i < 64; ++i) blocks.push_back(FMempMalloc(memp, 4000));
    const u64 used = Usage(memp).used;
    ASSERT_EQ(FMempSetLimit(memp, used / 2), FMEMP_SUCCESS);
    EXPECT_EQ(Usage(memp).used, used);
    EXPECT_EQ(FMempMalloc(memp, 4000), nullptr);
    EXPECT_EQ(Usage(memp).limit_refusals, 1u);
    for (void* p : blocks) FMempFree(memp, p);
    void* p = FMempMalloc(memp, 4000);
    EXPECT_NE(p, nullptr);
    FMempFree(memp, p);
  });
}

// limit_usage is what the hard limit counts: used + cached_bytes, whatever
// the policy, and nothing once every block is back.
TEST(FMempLimitTest, LimitUsageIsUsedPlusCached) {
  ForEachLimitPolicy([](FMemp* memp) {
    ASSERT_EQ(FMempSetLimit(memp, 1 << 20), FMEMP_SUCCESS);
    std::vector<void*> blocks;
    for (int i = 0; i < 32; ++i) blocks.push_back(FMempMalloc(memp, 3000));
    for (int i = 0; i < 16; ++i) FMempFree(memp, blocks[i]);  // some cached
    FMempUsage usage = Usage(memp);
    EXPECT_GE(usage.limit_usage, 16u * 3000);
    EXPECT_EQ(usage.limit_usage, usage.used + usage.cached_bytes);
    for (int i = 16; i < 32; ++i) FMempFree(memp, blocks[i]);
    ASSERT_EQ(FMempDrainThreadCaches(memp), FMEMP_SUCCESS);
    usage = Usage(memp);
    EXPECT_EQ(usage.limit_usage, 0u);
    EXPECT_EQ(usage.used + usage.cached_bytes, 0u);
  });
}

TEST(FMempLimitTest, ThreadHeapLimitUsageIsItsUsedPlusCached) {
  RegionBuffer shared(kBufferBytes);
  RegionBuffer own(kBufferBytes);
  ScopedFMemp pool;
  FMemp* memp = pool.get();
  ASSERT_NO_FATAL_FAILURE(InitWithBoundThreadHeap(memp, shared, own));
  ASSERT_EQ(FMempSetThreadHeapLimit(memp, 0, 1 << 20), FMEMP_SUCCESS);
  std::vector<void*> blocks;
  for (int i = 0; i < 32; ++i) blocks.push_back(FMempMalloc(memp, 2000));
  for (int i = 0; i < 8; ++i) FMempFree(memp, blocks[i]);
  FMempThreadHeapUsage heap = {};
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &heap), FMEMP_SUCCESS);
  EXPECT_GE(heap.limit_usage, 24u * 2000);
  EXPECT_EQ(heap.limit_usage, heap.used + heap.cached_bytes);
  // The FMemp's budget counts the thread heap's bytes too.
  EXPECT_GE(Usage(memp).limit_usage, heap.limit_usage);
  for (int i = 8; i < 32; ++i) FMempFree(memp, blocks[i]);
  ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &heap), FMEMP_SUCCESS);
  EXPECT_EQ(heap.limit_usage, heap.used + heap.cached_bytes);
  EXPECT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
  EXPECT_EQ(Usage(memp).limit_usage, 0u);
}

TEST(FMempLimitTest, EachSdkLifeCycleStartsWithoutLimits) {
  RegionBuffer buffer(kBufferBytes);
  for (int cycle = 0; cycle < 3; ++cycle) {
    FMemp memp = {};
    ASSERT_EQ(FMempInit(&memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
    const FMempUsage usage = Usage(&memp);
    EXPECT_EQ(usage.limit, FMEMP_LIMIT_NONE);
    EXPECT_EQ(usage.soft_limit, FMEMP_LIMIT_NONE);
    EXPECT_EQ(usage.limit_refusals, 0u);
    ASSERT_EQ(FMempSetLimit(&memp, 1024), FMEMP_SUCCESS);
    EXPECT_EQ(FMempMalloc(&memp, 4096), nullptr);
    FMempRemove(&memp);
  }
}

}  // namespace
}  // namespace fmemp
