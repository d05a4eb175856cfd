// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The C API's policy table (fmemp/policy_table.h): every row's offers are
// checked against what the public C API does under that row's policy, so a
// wrong bit, a missing row or a row pointing at the wrong front-end fails
// here; and the table's own members (Create, Visit, the walks, IsPolicy).

#include "fmemp/policy_table.h"

#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "fmemp/fmemp.h"
#include "fmemp/test_util.h"
#include "gtest/gtest.h"

extern "C" FError InitWithRawPolicy(FMemp* memp, void* begin, void* end,
                                    int policy);

namespace fmemp {
namespace {

using test_util::RegionBuffer;
using test_util::ScopedFMemp;
using test_util::Usage;

// Every enumerator of FMempPolicy has a row, and nothing else does.
static_assert(CApiPolicies::IsPolicy(FMEMP_POLICY_MUTEX));
static_assert(CApiPolicies::IsPolicy(FMEMP_POLICY_SPINLOCK));
static_assert(CApiPolicies::IsPolicy(FMEMP_POLICY_SINGLE_THREAD));
static_assert(CApiPolicies::IsPolicy(FMEMP_POLICY_THREAD_CACHE));
static_assert(CApiPolicies::IsPolicy(FMEMP_POLICY_THREAD_HEAPS));
static_assert(CApiPolicies::kRowCount == 5);

constexpr size_t kBufferBytes = size_t{1} << 20;

template <typename Row>
std::string RowName() {
  return "policy " + std::to_string(static_cast<int>(Row::kPolicy));
}

// An FMemp under Row's policy over one buffer; on a kThreadHeaps row the
// calling thread binds that region, as a server's worker does, so that its
// blocks come from its own thread heap.
template <typename Row>
class RowPool {
 public:
  RowPool() {
    EXPECT_EQ(FMempInitWithPolicy(memp(), buffer_.begin(), buffer_.end(),
                                  Row::kPolicy),
              FMEMP_SUCCESS);
    if constexpr (Row::Has(Offers::kThreadHeaps)) {
      EXPECT_EQ(FMempBindThread(memp(), buffer_.begin()), FMEMP_SUCCESS);
    }
  }
  ~RowPool() {
    if constexpr (Row::Has(Offers::kThreadHeaps)) {
      EXPECT_EQ(FMempUnbindThread(memp()), FMEMP_SUCCESS);
    }
  }
  FMemp* memp() { return pool_.get(); }
  char* region_begin() { return buffer_.begin(); }

 private:
  RegionBuffer buffer_{kBufferBytes};
  ScopedFMemp pool_;
};

// Allocates and frees one small block, so that a cache row parks it.
void MallocAndFree(FMemp* memp) {
  void* p = FMempMalloc(memp, 64);
  ASSERT_NE(p, nullptr);
  FMempFree(memp, p);
}

// A row offers exactly the calls its front-end has: the C API gates those
// calls on the row's bits alone, so a bit missing from a row would refuse a
// call its front-end serves. (Member detection here is the test's
// independent view; the C API itself reads only the bits.)
template <typename FrontEnd, typename = void>
struct HasBindThisThread : std::false_type {};
template <typename FrontEnd>
struct HasBindThisThread<
    FrontEnd, std::void_t<decltype(std::declval<FrontEnd&>().BindThisThread(
                  nullptr, ThreadHeapExhaustion::kFail))>> : std::true_type {};
template <typename FrontEnd, typename = void>
struct HasDrainAllCaches : std::false_type {};
template <typename FrontEnd>
struct HasDrainAllCaches<
    FrontEnd, std::void_t<decltype(std::declval<FrontEnd&>().DrainAllCaches())>>
    : std::true_type {};

template <typename FrontEnd, typename = void>
struct HasSetLimit : std::false_type {};
template <typename FrontEnd>
struct HasSetLimit<FrontEnd,
                   std::void_t<decltype(std::declval<FrontEnd&>().SetLimit(0))>>
    : std::true_type {};

template <typename FrontEnd, typename = void>
struct HasTryRetireRegion : std::false_type {};
template <typename FrontEnd>
struct HasTryRetireRegion<
    FrontEnd, std::void_t<decltype(std::declval<FrontEnd&>().TryRetireRegion(
                  nullptr, nullptr, nullptr))>> : std::true_type {};

TEST(PolicyTableTest, RowsOfferExactlyWhatTheirFrontEndsHave) {
  CApiPolicies::ForEachRow([](auto row) {
    using Row = decltype(row);
    using FrontEnd = typename Row::FrontEnd;
    SCOPED_TRACE(RowName<Row>());
    EXPECT_EQ(Row::Has(Offers::kThreadHeaps),
              HasBindThisThread<FrontEnd>::value);
    EXPECT_EQ(Row::Has(Offers::kCacheDrain),
              HasDrainAllCaches<FrontEnd>::value);
    EXPECT_TRUE(HasSetLimit<FrontEnd>::value);         // every row has limits
    EXPECT_TRUE(HasTryRetireRegion<FrontEnd>::value);  // every row retires
  });
}

void IgnoreSoftLimit(void*, u64, u64) {}

// Limits hold under every row, a bound thread's heap included (RowPool
// binds the region on a kThreadHeaps row); per-thread-heap limits exactly on
// kThreadHeaps rows.
TEST(PolicyTableTest, LimitsWorkOnEveryRowAndHeapLimitsOnThreadHeapRows) {
  CApiPolicies::ForEachRow([](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    RowPool<Row> pool;
    FMemp* memp = pool.memp();
    EXPECT_EQ(FMempSetLimit(memp, 4096), FMEMP_SUCCESS);
    EXPECT_EQ(FMempSetSoftLimit(memp, 2048, 0, &IgnoreSoftLimit, nullptr),
              FMEMP_SUCCESS);
    EXPECT_EQ(Usage(memp).limit, 4096u);
    EXPECT_EQ(Usage(memp).soft_limit, 2048u);
    EXPECT_EQ(FMempMalloc(memp, 8192), nullptr);
    EXPECT_EQ(Usage(memp).limit_refusals, 1u);
    EXPECT_EQ(FMempSetLimit(memp, FMEMP_LIMIT_NONE), FMEMP_SUCCESS);
    if constexpr (Row::Has(Offers::kThreadHeaps)) {
      EXPECT_EQ(FMempSetThreadHeapLimit(memp, 0, 4096), FMEMP_SUCCESS);
      EXPECT_EQ(FMempMalloc(memp, 8192), nullptr);
      FMempThreadHeapUsage usage = {};
      ASSERT_EQ(FMempProbeThreadHeap(memp, 0, &usage), FMEMP_SUCCESS);
      EXPECT_EQ(usage.limit, 4096u);
      EXPECT_EQ(usage.limit_refusals, 2u);  // the FMemp's, then its own
      EXPECT_EQ(FMempSetThreadHeapLimit(memp, 0, FMEMP_LIMIT_NONE),
                FMEMP_SUCCESS);
    } else {
      EXPECT_EQ(FMempSetThreadHeapLimit(memp, 0, 4096),
                FMEMP_ERR_NOT_SUPPORTED);
      EXPECT_EQ(FMempSetThreadHeapSoftLimit(memp, 0, 4096, 0, &IgnoreSoftLimit,
                                            nullptr),
                FMEMP_ERR_NOT_SUPPORTED);
    }
    void* p = FMempMalloc(memp, 8192);
    EXPECT_NE(p, nullptr);
    FMempFree(memp, p);
  });
}

TEST(PolicyTableTest, ThreadHeapCallsWorkExactlyOnThreadHeapRows) {
  CApiPolicies::ForEachRow([](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    RegionBuffer buffer(kBufferBytes);
    ScopedFMemp pool;
    FMemp* memp = pool.get();
    ASSERT_EQ(
        FMempInitWithPolicy(memp, buffer.begin(), buffer.end(), Row::kPolicy),
        FMEMP_SUCCESS);
    FMempThreadHeapUsage heap_usage = {};
    if constexpr (Row::Has(Offers::kThreadHeaps)) {
      EXPECT_EQ(FMempBindThread(memp, buffer.begin()), FMEMP_SUCCESS);
      EXPECT_EQ(FMempBindThreadWithFlags(memp, buffer.begin(),
                                         FMEMP_BIND_NO_FALLBACK),
                FMEMP_SUCCESS);
      EXPECT_EQ(FMempSyncThreadHeap(memp), FMEMP_SUCCESS);
      EXPECT_EQ(FMempThreadHeapCount(memp), 1u);
      EXPECT_EQ(FMempProbeThreadHeap(memp, 0, &heap_usage), FMEMP_SUCCESS);
      EXPECT_EQ(heap_usage.regions, 1u);
      EXPECT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
      EXPECT_EQ(FMempThreadHeapCount(memp), 0u);
    } else {
      EXPECT_EQ(FMempBindThread(memp, buffer.begin()), FMEMP_ERR_NOT_SUPPORTED);
      EXPECT_EQ(FMempBindThreadWithFlags(memp, buffer.begin(),
                                         FMEMP_BIND_NO_FALLBACK),
                FMEMP_ERR_NOT_SUPPORTED);
      EXPECT_EQ(FMempSyncThreadHeap(memp), FMEMP_ERR_NOT_SUPPORTED);
      EXPECT_EQ(FMempThreadHeapCount(memp), 0u);
      EXPECT_EQ(FMempProbeThreadHeap(memp, 0, &heap_usage),
                FMEMP_ERR_NOT_SUPPORTED);
      EXPECT_EQ(FMempUnbindThread(memp), FMEMP_ERR_NOT_SUPPORTED);
    }
    // The pool still serves after any of those calls.
    void* p = FMempMalloc(memp, 100);
    EXPECT_NE(p, nullptr);
    FMempFree(memp, p);
  });
}

TEST(PolicyTableTest, FreedBlocksAreParkedExactlyOnThreadCacheRows) {
  CApiPolicies::ForEachRow([](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    RowPool<Row> pool;
    MallocAndFree(pool.memp());
    const FMempUsage usage = Usage(pool.memp());
    EXPECT_EQ(usage.used, 0u);  // parked blocks are not used
    if constexpr (Row::Has(Offers::kThreadCaches)) {
      EXPECT_GT(usage.cached_bytes, 0u);
    } else {
      EXPECT_EQ(usage.cached_bytes, 0u);
    }
  });
}

// A block freed and then drained shows up as free, not cached, exactly on
// the rows that offer a drain; elsewhere the drain succeeds and changes
// nothing. For FMempDrainThreadCaches (every thread) and
// FMempFlushThreadCache (the calling thread).
template <Offers kNeeded, typename Drain>
void ExpectDrainWorksExactlyOnRowsOffering(Drain drain) {
  CApiPolicies::ForEachRow([&drain](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    RowPool<Row> pool;
    MallocAndFree(pool.memp());
    const FMempUsage before = Usage(pool.memp());
    ASSERT_EQ(drain(pool.memp()), FMEMP_SUCCESS);
    const FMempUsage after = Usage(pool.memp());
    EXPECT_EQ(after.used, before.used);
    if constexpr (Row::Has(kNeeded)) {
      EXPECT_GT(before.cached_bytes, 0u);
      EXPECT_EQ(after.cached_bytes, 0u);
      EXPECT_EQ(after.free_bytes, before.free_bytes + before.cached_bytes);
    } else {
      EXPECT_EQ(after.cached_bytes, before.cached_bytes);
      EXPECT_EQ(after.free_bytes, before.free_bytes);
    }
  });
}

TEST(PolicyTableTest, DrainThreadCachesWorksExactlyOnCacheDrainRows) {
  ExpectDrainWorksExactlyOnRowsOffering<Offers::kCacheDrain>(
      &FMempDrainThreadCaches);
}

// The calling thread's cache is flushed on every row with thread caches
// (the thread heaps' too).
TEST(PolicyTableTest, FlushThreadCacheWorksExactlyOnThreadCacheRows) {
  ExpectDrainWorksExactlyOnRowsOffering<Offers::kThreadCaches>(
      &FMempFlushThreadCache);
}

// A region's figures come from its heap, which counts parked blocks as
// used: on a drain row FMempProbeRegion gives them back first.
TEST(PolicyTableTest, ProbeRegionDrainsOnCacheDrainRows) {
  CApiPolicies::ForEachRow([](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    RowPool<Row> pool;
    MallocAndFree(pool.memp());
    const u64 cached_before = Usage(pool.memp()).cached_bytes;
    FMempRegionUsage region = {};
    ASSERT_EQ(FMempProbeRegion(pool.memp(), 0, &region), FMEMP_SUCCESS);
    EXPECT_EQ(region.begin, pool.region_begin());
    if constexpr (Row::Has(Offers::kCacheDrain)) {
      EXPECT_GT(cached_before, 0u);
      EXPECT_EQ(region.used, 0u);
      EXPECT_EQ(region.live_blocks, 0u);
      EXPECT_EQ(Usage(pool.memp()).cached_bytes, 0u);
    } else {
      EXPECT_EQ(Usage(pool.memp()).cached_bytes, cached_before);
      if constexpr (!Row::Has(Offers::kThreadCaches)) {
        EXPECT_EQ(region.used, 0u);
      }
    }
  });
}

// FMempInitWithPolicy (and so FMempInitDebug, which it calls) accepts
// exactly the table's policy numbers, whatever int a C caller passes.
TEST(PolicyTableTest, InitAcceptsExactlyTheTablesPolicies) {
  static_assert(!CApiPolicies::IsPolicy(-1));
  static_assert(!CApiPolicies::IsPolicy(99));
  std::vector<int> numbers = {INT_MIN, INT_MIN + 1, 99, 255, 256, INT_MAX};
  for (int n = -8; n < 64; ++n) numbers.push_back(n);
  RegionBuffer buffer(kBufferBytes);
  int accepted = 0;
  for (int number : numbers) {
    SCOPED_TRACE("policy number " + std::to_string(number));
    ScopedFMemp pool;
    FMemp* memp = pool.get();
    const FError error =
        InitWithRawPolicy(memp, buffer.begin(), buffer.end(), number);
    if (CApiPolicies::IsPolicy(number)) {
      ++accepted;
      EXPECT_EQ(error, FMEMP_SUCCESS);
      void* p = FMempMalloc(memp, 32);
      EXPECT_NE(p, nullptr);
      FMempFree(memp, p);
    } else {
      EXPECT_EQ(error, FMEMP_ERR_INVALID_ARG);
      EXPECT_EQ(memp->priv, nullptr);
      EXPECT_EQ(memp->is_ready, 0u);
      EXPECT_EQ(FMempMalloc(memp, 32), nullptr);
    }
  }
  EXPECT_EQ(accepted, static_cast<int>(CApiPolicies::kRowCount));
}

// --- The table's members, on its own front-ends ---

TEST(PolicyTableTest, CreateMakesEachRowsFrontEndOnceAndRefusesOthers) {
  CApiPolicies::FrontEnds front_ends;
  EXPECT_FALSE(front_ends.Create(-1));
  EXPECT_FALSE(front_ends.Create(99));
  CApiPolicies::ForEachRow([&front_ends](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    ASSERT_TRUE(front_ends.Create(Row::kPolicy));
    const void* first = front_ends.Visit<const void*>(
        Row::kPolicy, nullptr, [](auto& m) -> const void* { return &m; });
    ASSERT_TRUE(front_ends.Create(Row::kPolicy));  // again: the same one
    EXPECT_EQ(
        front_ends.Visit<const void*>(
            Row::kPolicy, nullptr, [](auto& m) -> const void* { return &m; }),
        first);
  });
}

TEST(PolicyTableTest, VisitReachesTheRowsFrontEndType) {
  CApiPolicies::FrontEnds front_ends;
  CApiPolicies::ForEachRow([&front_ends](auto row) {
    using Row = decltype(row);
    SCOPED_TRACE(RowName<Row>());
    ASSERT_TRUE(front_ends.Create(Row::kPolicy));
    const bool right_type =
        front_ends.Visit<bool>(Row::kPolicy, false, [](auto& m) {
          return std::is_same_v<std::decay_t<decltype(m)>,
                                typename Row::FrontEnd>;
        });
    EXPECT_TRUE(right_type);
    // And RowOf maps the type back to this row.
    static_assert(
        std::is_same_v<CApiPolicies::RowOf<typename Row::FrontEnd>, Row>);
  });
  int calls = 0;
  for (int policy : {-1, 5, 99}) {
    EXPECT_EQ(front_ends.Visit<int>(policy, -7,
                                    [&calls](auto&) {
                                      ++calls;
                                      return 1;
                                    }),
              -7);
  }
  EXPECT_EQ(calls, 0);
}

TEST(PolicyTableTest, WalksVisitCreatedFrontEndsInTableOrderAndReverse) {
  CApiPolicies::FrontEnds front_ends;
  std::vector<int> seen;
  auto record = [&seen](auto& m) {
    seen.push_back(CApiPolicies::RowOf<decltype(m)>::kPolicy);
  };
  front_ends.ForEachCreated(record);
  EXPECT_TRUE(seen.empty());
  const std::vector<int> created = {
      FMEMP_POLICY_THREAD_HEAPS, FMEMP_POLICY_MUTEX, FMEMP_POLICY_THREAD_CACHE};
  for (int policy : created) ASSERT_TRUE(front_ends.Create(policy));
  // The created ones, in the order of the table's rows.
  std::vector<int> in_table_order;
  CApiPolicies::ForEachRow([&](auto row) {
    for (int policy : created) {
      if (policy == decltype(row)::kPolicy) in_table_order.push_back(policy);
    }
  });
  ASSERT_EQ(in_table_order.size(), created.size());
  front_ends.ForEachCreated(record);
  EXPECT_EQ(seen, in_table_order);
  seen.clear();
  front_ends.ForEachCreatedReversed(record);
  EXPECT_EQ(seen,
            std::vector<int>(in_table_order.rbegin(), in_table_order.rend()));
}

}  // namespace
}  // namespace fmemp
