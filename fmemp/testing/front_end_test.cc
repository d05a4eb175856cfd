// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/testing/front_end_test.cc
//
// The adapter itself, under every entry of AllFrontEnds: each allocates,
// frees and probes consistently, counts misuse reports, and offers exactly
// what it says it offers (has_caches, has_thread_heaps, kHasUsableSize,
// kHasResetPeak).

#include "fmemp/testing/front_end.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "fmemp/testing/front_end_gtest.h"
#include "fmemp/testing/front_end_list.h"
#include "gtest/gtest.h"

namespace fmemp::testkit {
namespace {

constexpr size_t kRegionBytes = 256 * 1024;

// Zeroed, 64-byte aligned memory for regions.
class Buffer {
 public:
  explicit Buffer(size_t bytes)
      : bytes_(bytes), data_(new uint8_t[bytes + 64]()) {}
  uint8_t* begin() const {
    return reinterpret_cast<uint8_t*>(
        (reinterpret_cast<uintptr_t>(data_.get()) + 63) & ~uintptr_t{63});
  }
  uint8_t* end() const { return begin() + bytes_; }

 private:
  size_t bytes_;
  std::unique_ptr<uint8_t[]> data_;
};

// The figures that hold in every state: every byte is used, cached or free.
void ExpectConsistent(const Usage& u) {
  EXPECT_EQ(u.used + u.cached + u.free, u.capacity);
  EXPECT_GE(u.peak, u.used);
}

template <typename FrontEnd>
class FrontEndTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(front_.Init(region_.begin(), region_.end()), Outcome::kOk);
    ASSERT_TRUE(front_.ready());
  }

  Buffer region_{kRegionBytes};
  Buffer second_{kRegionBytes};
  FrontEnd front_;
};

FMEMP_FRONT_END_TYPED_TEST_SUITE(FrontEndTest, AllFrontEnds);

TYPED_TEST(FrontEndTest, AllocatesFreesAndProbesConsistently) {
  TypeParam& f = this->front_;
  const Usage empty = f.Probe();
  ExpectConsistent(empty);
  EXPECT_EQ(empty.used, 0u);
  EXPECT_EQ(empty.live, 0u);
  EXPECT_EQ(empty.regions, 1u);
  EXPECT_GT(empty.capacity, kRegionBytes / 2);

  void* a = f.Allocate(100);
  void* b = f.AllocateAligned(256, 300);
  uint8_t* c = static_cast<uint8_t*>(f.Calloc(10, 20));
  void* d = f.Reallocate(nullptr, 50);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 256, 0u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(c[i], 0) << i;
  std::memset(d, 0x5a, 50);
  d = f.Reallocate(d, 5000);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(static_cast<uint8_t*>(d)[49], 0x5a);
  if constexpr (TypeParam::kHasUsableSize) {
    EXPECT_GE(f.UsableSize(a), 100u);
    EXPECT_GE(f.UsableSize(d), 5000u);
  } else {
    EXPECT_EQ(f.UsableSize(a), 0u);
  }

  const Usage busy = f.Probe();
  ExpectConsistent(busy);
  EXPECT_EQ(busy.live, 4u);
  EXPECT_GE(busy.used, 100u + 300u + 200u + 5000u);
  EXPECT_GE(busy.peak, busy.used);
  const std::vector<RegionUsage> regions = f.ProbeRegions();
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].begin, this->region_.begin());
  EXPECT_EQ(regions[0].end, this->region_.end());
  // A region counts the blocks parked in caches as live (a refill takes a
  // batch).
  if (TypeParam::kHasCaches) {
    EXPECT_GE(regions[0].live, 4u);
  } else {
    EXPECT_EQ(regions[0].live, 4u);
  }
  EXPECT_EQ(regions[0].used + regions[0].free, regions[0].capacity);
  EXPECT_LE(regions[0].largest, regions[0].free);

  EXPECT_TRUE(f.Free(a));
  EXPECT_TRUE(f.Free(b));
  EXPECT_TRUE(f.Free(c));
  f.FreeUnchecked(d);
  EXPECT_TRUE(f.Free(nullptr));
  EXPECT_EQ(f.DrainCaches(), Outcome::kOk);
  const Usage end = f.Probe();
  ExpectConsistent(end);
  EXPECT_EQ(end.used, 0u);
  EXPECT_EQ(end.cached, 0u);
  EXPECT_EQ(end.live, 0u);
  EXPECT_EQ(end.failed, 0u);
  EXPECT_EQ(end.invalid_frees, 0u);
  EXPECT_EQ(f.reports().count(), 0u);
  std::string why;
  EXPECT_EQ(f.Check(&why), Outcome::kOk) << why;
}

TYPED_TEST(FrontEndTest, AddsAndRemovesRegions) {
  TypeParam& f = this->front_;
  uint8_t* const s = this->second_.begin();
  EXPECT_EQ(f.AddRegion(s, this->second_.end()), Outcome::kOk);
  EXPECT_EQ(f.AddRegion(s, this->second_.end()), Outcome::kOverlap);
  EXPECT_EQ(f.AddRegion(s + 64, s), Outcome::kInvalidBuffer);
  EXPECT_EQ(f.Probe().regions, 2u);
  EXPECT_EQ(f.ProbeRegions().size(), 2u);
  // Fill the first region so that a block lands in the second.
  std::vector<void*> blocks;
  void* in_second = nullptr;
  while (in_second == nullptr) {
    void* p = f.Allocate(16 * 1024);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
    if (p >= static_cast<void*>(s) && p < this->second_.end()) in_second = p;
  }
  EXPECT_EQ(f.RemoveRegion(s), Outcome::kBusy);
  EXPECT_EQ(f.RemoveRegion(s + 16), Outcome::kNotFound);
  for (void* p : blocks) EXPECT_TRUE(f.Free(p));
  EXPECT_EQ(f.DrainCaches(), Outcome::kOk);
  EXPECT_EQ(f.RemoveRegion(s), Outcome::kOk);
  EXPECT_EQ(f.Probe().regions, 1u);
}

struct Seen {
  std::vector<std::pair<int, const void*>> reports;
  static void Record(void* context, int kind, const void* ptr) {
    static_cast<Seen*>(context)->reports.emplace_back(kind, ptr);
  }
};

TYPED_TEST(FrontEndTest, CountsReportsAndRefusedFrees) {
  TypeParam& f = this->front_;
  Seen seen;
  f.reports().SetListener(&Seen::Record, &seen);
  uint8_t* const foreign = this->second_.begin() + 64;  // in no region
  EXPECT_FALSE(f.Free(foreign));
  EXPECT_EQ(f.reports().count(), 1u);
  EXPECT_EQ(f.reports().first(), foreign);
  EXPECT_EQ(f.reports().last_kind(), FMEMP_MISUSE_FOREIGN_POINTER);

  void* p = f.Allocate(5000);  // above every cache's limit
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(f.Free(p));
  EXPECT_FALSE(f.Free(p));
  EXPECT_EQ(f.reports().count(), 2u);
  EXPECT_EQ(f.reports().last_kind(), FMEMP_MISUSE_DOUBLE_FREE);
  EXPECT_EQ(f.Reallocate(foreign, 10), nullptr);
  EXPECT_EQ(f.reports().count(), 3u);
  EXPECT_EQ(f.Probe().invalid_frees, 3u);

  ASSERT_EQ(seen.reports.size(), 3u);
  EXPECT_EQ(seen.reports[0].first, FMEMP_MISUSE_FOREIGN_POINTER);
  EXPECT_EQ(seen.reports[0].second, foreign);
  EXPECT_EQ(seen.reports[1].first, FMEMP_MISUSE_DOUBLE_FREE);
  EXPECT_EQ(seen.reports[1].second, p);
  f.reports().Reset();
  EXPECT_EQ(f.reports().count(), 0u);
  EXPECT_EQ(f.reports().first(), nullptr);
}

struct OomCalls {
  std::vector<std::pair<size_t, size_t>> calls;
  static bool Record(void* context, size_t bytes, size_t alignment) {
    static_cast<OomCalls*>(context)->calls.emplace_back(bytes, alignment);
    return false;
  }
};

TYPED_TEST(FrontEndTest, CountsFailedAllocationsAndCallsTheOomHandler) {
  TypeParam& f = this->front_;
  OomCalls oom;
  f.SetOutOfMemoryHandler(&OomCalls::Record, &oom);
  EXPECT_EQ(f.Allocate(2 * kRegionBytes), nullptr);
  EXPECT_EQ(f.AllocateAligned(4096, 2 * kRegionBytes), nullptr);
  EXPECT_EQ(f.Probe().failed, 2u);
  ASSERT_EQ(oom.calls.size(), 2u);
  EXPECT_EQ(oom.calls[0].first, 2 * kRegionBytes);
  EXPECT_EQ(oom.calls[1].second, 4096u);
}

// failed_allocations counts calls that returned nullptr, once each, where
// the front-end returns it: not attempts that an out-of-memory retry, a
// cache drain or a thread heap's fallback then served.

// An out-of-memory handler that adds `region` (once) and asks for a retry.
template <typename FrontEnd>
struct AddRegionOnOom {
  FrontEnd* front_end;
  void* begin;
  void* end;
  int calls = 0;
  static bool Add(void* context, size_t, size_t) {
    auto* self = static_cast<AddRegionOnOom*>(context);
    ++self->calls;
    return self->front_end->AddRegion(self->begin, self->end) == Outcome::kOk;
  }
};

// An out-of-memory handler that asks for a retry without making room.
struct RetryWithoutRoom {
  int calls = 0;
  static bool Retry(void* context, size_t, size_t) {
    ++static_cast<RetryWithoutRoom*>(context)->calls;
    return true;
  }
};

TYPED_TEST(FrontEndTest, RequestsTheOomHandlerServesCountNoFailure) {
  TypeParam& f = this->front_;
  AddRegionOnOom<TypeParam> oom{&f, this->second_.begin(), this->second_.end()};
  f.SetOutOfMemoryHandler(&AddRegionOnOom<TypeParam>::Add, &oom);
  void* a = f.Allocate(kRegionBytes * 3 / 4);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(oom.calls, 0);
  // No room left in the first region: the handler adds the second.
  void* b = f.Allocate(kRegionBytes * 3 / 4);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(oom.calls, 1);
  EXPECT_EQ(f.Probe().failed, 0u);
  EXPECT_EQ(f.Probe().regions, 2u);
  EXPECT_TRUE(f.Free(a));
  EXPECT_TRUE(f.Free(b));
  ExpectConsistent(f.Probe());
}

TYPED_TEST(FrontEndTest, ReallocationTheOomHandlerServesCountsNoFailure) {
  TypeParam& f = this->front_;
  AddRegionOnOom<TypeParam> oom{&f, this->second_.begin(), this->second_.end()};
  f.SetOutOfMemoryHandler(&AddRegionOnOom<TypeParam>::Add, &oom);
  auto* a = static_cast<uint8_t*>(f.Allocate(kRegionBytes / 4));
  ASSERT_NE(a, nullptr);
  void* after = f.Allocate(kRegionBytes / 2);  // a cannot grow in place
  ASSERT_NE(after, nullptr);
  a[0] = 0x5a;
  // Too big for what is left of the first region (a quarter).
  auto* grown = static_cast<uint8_t*>(f.Reallocate(a, kRegionBytes / 2));
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(grown[0], 0x5a);
  EXPECT_EQ(oom.calls, 1);
  EXPECT_EQ(f.Probe().failed, 0u);
  EXPECT_TRUE(f.Free(grown));
  EXPECT_TRUE(f.Free(after));
}

TYPED_TEST(FrontEndTest, FailureAfterTheOomHandlerCountsOnce) {
  TypeParam& f = this->front_;
  RetryWithoutRoom oom;
  f.SetOutOfMemoryHandler(&RetryWithoutRoom::Retry, &oom);
  EXPECT_EQ(f.Allocate(2 * kRegionBytes), nullptr);
  EXPECT_EQ(oom.calls, 1);
  EXPECT_EQ(f.Probe().failed, 1u);
  void* p = f.Allocate(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(f.Reallocate(p, 2 * kRegionBytes), nullptr);  // p stays
  EXPECT_EQ(oom.calls, 2);
  EXPECT_EQ(f.Probe().failed, 2u);
  // Neither misuse nor a realloc to 0 bytes is a failed allocation.
  // A foreign block of a block's size: g++'s -Wstringop-overflow (asan
  // build, -O1) would flag the inlined marker read on a smaller object,
  // though it runs only for pointers inside a region.
  alignas(16) char not_ours[64] = {};
  EXPECT_EQ(f.Reallocate(not_ours, 10), nullptr);
  EXPECT_EQ(f.Reallocate(p, 0), nullptr);  // frees p
  const Usage u = f.Probe();
  EXPECT_EQ(u.failed, 2u);
  EXPECT_EQ(u.invalid_frees, 1u);
  EXPECT_EQ(u.live, 0u);
  EXPECT_EQ(oom.calls, 2);
}

// Calloc overflow and bad alignments fail without the handler: one each.
TYPED_TEST(FrontEndTest, MalformedRequestsCountOnceEach) {
  TypeParam& f = this->front_;
  RetryWithoutRoom oom;
  f.SetOutOfMemoryHandler(&RetryWithoutRoom::Retry, &oom);
  EXPECT_EQ(f.Calloc(SIZE_MAX / 2, 4), nullptr);
  EXPECT_EQ(f.Probe().failed, 1u);
  EXPECT_EQ(f.AllocateAligned(48, 16), nullptr);
  EXPECT_EQ(f.Probe().failed, 2u);
  EXPECT_EQ(f.AllocateAligned(size_t{1} << 40, 16), nullptr);
  EXPECT_EQ(f.Probe().failed, 3u);
  EXPECT_EQ(oom.calls, 0);
  if (!TypeParam::kHasThreadHeaps) return;
  // From a bound thread: in its thread heap's figures and in the total.
  uint8_t* const s = this->second_.begin();
  ASSERT_EQ(f.AddRegion(s, this->second_.end()), Outcome::kOk);
  ASSERT_EQ(f.BindThisThread(s), Outcome::kOk);
  EXPECT_EQ(f.Calloc(SIZE_MAX / 2, 4), nullptr);
  EXPECT_EQ(f.AllocateAligned(48, 16), nullptr);
  const std::vector<ThreadHeapUsage> thread_heaps = f.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].failed, 2u);
  EXPECT_EQ(f.Probe().failed, 5u);
  EXPECT_EQ(oom.calls, 0);
  EXPECT_EQ(f.UnbindThisThread(), Outcome::kOk);
}

// A bound thread's calls: an exhaustion the shared regions serve counts
// nothing; a call that fails everywhere counts once, in its thread heap's
// figures and in the total (which keeps it after the thread has gone).
TYPED_TEST(FrontEndTest,
           ThreadHeapFailuresCountOnceInTheThreadHeapAndTheTotal) {
  if (!TypeParam::kHasThreadHeaps) GTEST_SKIP() << "no thread heaps";
  TypeParam& f = this->front_;
  uint8_t* const s = this->second_.begin();
  ASSERT_EQ(f.AddRegion(s, this->second_.end()), Outcome::kOk);
  ASSERT_EQ(f.BindThisThread(s), Outcome::kOk);
  auto thread_heap = [&f] {
    const std::vector<ThreadHeapUsage> thread_heaps = f.ProbeThreadHeaps();
    return thread_heaps.size() == 1 ? thread_heaps[0] : ThreadHeapUsage{};
  };
  void* a = f.Allocate(kRegionBytes * 3 / 4);  // from the thread heap
  ASSERT_NE(a, nullptr);
  void* x = f.Allocate(1000);
  ASSERT_NE(x, nullptr);
  void* b = f.Allocate(kRegionBytes / 2);  // the thread heap is full: shared
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(thread_heap().fallbacks, 1u);
  EXPECT_EQ(thread_heap().failed, 0u);
  EXPECT_EQ(f.Probe().failed, 0u);
  ASSERT_TRUE(f.Free(b));
  // A reallocation the thread heap cannot hold, moved to the shared regions.
  x = f.Reallocate(x, kRegionBytes / 2);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(thread_heap().fallbacks, 2u);
  EXPECT_EQ(thread_heap().failed, 0u);
  EXPECT_EQ(f.Probe().failed, 0u);

  // Fails in the thread heap, then in the shared regions: one failure.
  EXPECT_EQ(f.Allocate(2 * kRegionBytes), nullptr);
  EXPECT_EQ(thread_heap().failed, 1u);
  EXPECT_EQ(f.Probe().failed, 1u);
  // A reallocation of the shared block that fits nowhere: one more.
  EXPECT_EQ(f.Reallocate(x, 2 * kRegionBytes), nullptr);
  EXPECT_EQ(thread_heap().failed, 2u);
  EXPECT_EQ(f.Probe().failed, 2u);

  // Without fallback the thread heap's exhaustion is the call's failure.
  ASSERT_EQ(f.BindThisThread(s, FMEMP_BIND_NO_FALLBACK), Outcome::kOk);
  EXPECT_EQ(f.Allocate(kRegionBytes / 2), nullptr);
  EXPECT_EQ(thread_heap().failed, 3u);
  EXPECT_EQ(f.Probe().failed, 3u);

  ASSERT_TRUE(f.Free(a));
  ASSERT_TRUE(f.Free(x));
  ASSERT_EQ(f.UnbindThisThread(), Outcome::kOk);
  EXPECT_EQ(f.Probe().failed, 3u);

  // A thread's failures outlive it.
  std::thread worker([&] {
    ASSERT_EQ(f.BindThisThread(s, FMEMP_BIND_NO_FALLBACK), Outcome::kOk);
    EXPECT_EQ(f.Allocate(2 * kRegionBytes), nullptr);
  });
  worker.join();
  EXPECT_EQ(f.Probe().failed, 4u);
}

// A thread heap that may not fall back: its thread's handler makes room in the
// thread heap, and the retry's success is the call's outcome.
template <typename FrontEnd>
struct FreeOnOom {
  FrontEnd* front_end;
  void* block;
  static bool Free(void* context, size_t, size_t) {
    auto* self = static_cast<FreeOnOom*>(context);
    if (self->block == nullptr) return false;
    self->front_end->Free(self->block);
    self->block = nullptr;
    return true;
  }
};

TYPED_TEST(FrontEndTest, ThreadHeapServedAfterTheOomHandlerCountsNoFailure) {
  if (!TypeParam::kHasThreadHeaps) GTEST_SKIP() << "no thread heaps";
  TypeParam& f = this->front_;
  uint8_t* const s = this->second_.begin();
  ASSERT_EQ(f.AddRegion(s, this->second_.end()), Outcome::kOk);
  ASSERT_EQ(f.BindThisThread(s, FMEMP_BIND_NO_FALLBACK), Outcome::kOk);
  FreeOnOom<TypeParam> oom{&f, f.Allocate(kRegionBytes * 3 / 4)};
  ASSERT_NE(oom.block, nullptr);
  f.SetOutOfMemoryHandler(&FreeOnOom<TypeParam>::Free, &oom);
  void* p = f.Allocate(kRegionBytes * 3 / 4);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(oom.block, nullptr) << "the handler was not asked";
  const std::vector<ThreadHeapUsage> thread_heaps = f.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].failed, 0u);
  EXPECT_EQ(f.Probe().failed, 0u);
  // Now the handler declines: one failure.
  EXPECT_EQ(f.Allocate(kRegionBytes * 3 / 4), nullptr);
  EXPECT_EQ(f.ProbeThreadHeaps()[0].failed, 1u);
  EXPECT_EQ(f.Probe().failed, 1u);
  EXPECT_TRUE(f.Free(p));
  EXPECT_EQ(f.UnbindThisThread(), Outcome::kOk);
}

TYPED_TEST(FrontEndTest, CachesAreWhereTheEntrySaysTheyAre) {
  TypeParam& f = this->front_;
  EXPECT_EQ(f.has_caches(), TypeParam::kHasCaches);
  void* p = f.Allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(f.Free(p));
  if (TypeParam::kHasCaches) {
    EXPECT_GT(f.Probe().cached, 0u) << "a small free was not cached";
    EXPECT_EQ(f.FlushThisThread(), Outcome::kOk);
    EXPECT_EQ(f.Probe().cached, 0u);
  } else {
    EXPECT_EQ(f.Probe().cached, 0u);
    EXPECT_EQ(f.FlushThisThread(), Outcome::kOk);  // a no-op
  }
  EXPECT_EQ(f.DrainCaches(), Outcome::kOk);
  EXPECT_EQ(f.Probe().used, 0u);
}

TYPED_TEST(FrontEndTest, ThreadHeapsAreWhereTheEntrySaysTheyAre) {
  TypeParam& f = this->front_;
  EXPECT_EQ(f.has_thread_heaps(), TypeParam::kHasThreadHeaps);
  uint8_t* const s = this->second_.begin();
  ASSERT_EQ(f.AddRegion(s, this->second_.end()), Outcome::kOk);
  if (!TypeParam::kHasThreadHeaps) {
    EXPECT_EQ(f.BindThisThread(s), Outcome::kNotSupported);
    EXPECT_EQ(f.UnbindThisThread(), Outcome::kNotSupported);
    EXPECT_TRUE(f.ProbeThreadHeaps().empty());
    return;
  }
  EXPECT_EQ(f.BindThisThread(s, 0x40), Outcome::kInvalidArg);
  EXPECT_EQ(f.BindThisThread(s + 16), Outcome::kNotFound);
  ASSERT_EQ(f.BindThisThread(s, FMEMP_BIND_NO_FALLBACK), Outcome::kOk);
  void* p = f.Allocate(1000);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p >= static_cast<void*>(s) && p < this->second_.end())
      << "a bound thread allocated outside its thread heap";
  const std::vector<ThreadHeapUsage> thread_heaps = f.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].live, 1u);
  EXPECT_GE(thread_heaps[0].used, 1000u);
  EXPECT_EQ(
      thread_heaps[0].used + thread_heaps[0].cached + thread_heaps[0].free,
      thread_heaps[0].capacity);
  // Without fallback an exhausted thread heap fails the request.
  EXPECT_EQ(f.Allocate(kRegionBytes), nullptr);
  EXPECT_EQ(f.SyncThisThread(), Outcome::kOk);
  EXPECT_TRUE(f.Free(p));
  EXPECT_EQ(f.UnbindThisThread(), Outcome::kOk);
  EXPECT_TRUE(f.ProbeThreadHeaps().empty());
  EXPECT_EQ(f.RemoveRegion(s), Outcome::kOk);
}

// The budget calls: the same figures and outcomes whatever the wrapper.
struct CountingSoftLimit : SoftLimitCallback {
  CountingSoftLimit() { run = &CountingSoftLimit::Count; }
  static void Count(SoftLimitCallback* self, uint64_t usage,
                    uint64_t soft_limit) {
    auto* counting = static_cast<CountingSoftLimit*>(self);
    ++counting->calls;
    counting->above = usage > soft_limit;
  }
  int calls = 0;
  bool above = false;
};

TYPED_TEST(FrontEndTest, LimitsRefuseCrossAndGo) {
  TypeParam& f = this->front_;
  EXPECT_EQ(f.Probe().limit, kNoLimit);
  f.SetLimit(64 * 1024);
  CountingSoftLimit soft;
  f.SetSoftLimit(16 * 1024, 1024, &soft);
  Usage u = f.Probe();
  EXPECT_EQ(u.limit, 64u * 1024);
  EXPECT_EQ(u.soft_limit, 16u * 1024);
  std::vector<void*> blocks;
  while (void* p = f.Allocate(1000)) blocks.push_back(p);
  u = f.Probe();
  EXPECT_LE(u.limit_usage, 64u * 1024);
  EXPECT_GT(u.limit_usage, 60u * 1024);
  EXPECT_EQ(u.limit_usage, u.used + u.cached);
  EXPECT_EQ(u.limit_refusals, 1u);
  EXPECT_EQ(u.failed, 1u);
  EXPECT_EQ(soft.calls, 1);
  EXPECT_TRUE(soft.above);
  f.RemoveLimits();
  u = f.Probe();
  EXPECT_EQ(u.limit, kNoLimit);
  EXPECT_EQ(u.soft_limit, kNoLimit);
  void* more = f.Allocate(1000);
  EXPECT_NE(more, nullptr);
  f.FreeUnchecked(more);
  for (void* p : blocks) f.FreeUnchecked(p);
}

TYPED_TEST(FrontEndTest, ThreadHeapLimitsWhereOffered) {
  TypeParam& f = this->front_;
  ThreadHeapUsage heap;
  CountingSoftLimit soft;
  if (!f.has_thread_heaps()) {
    EXPECT_EQ(f.SetThreadHeapLimit(0, 4096), Outcome::kNotSupported);
    EXPECT_EQ(f.SetThreadHeapSoftLimit(0, 4096, 0, &soft),
              Outcome::kNotSupported);
    EXPECT_FALSE(f.ProbeThisThreadHeap(&heap));
    return;
  }
  std::thread([&] {
    EXPECT_EQ(f.SetThreadHeapLimit(0, 4096), Outcome::kInvalidArg);  // none
    ASSERT_EQ(f.AddRegion(this->second_.begin(), this->second_.end()),
              Outcome::kOk);
    ASSERT_EQ(f.BindThisThread(this->second_.begin(), FMEMP_BIND_NO_FALLBACK),
              Outcome::kOk);
    EXPECT_EQ(f.SetThreadHeapLimit(0, 32 * 1024), Outcome::kOk);
    EXPECT_EQ(f.SetThreadHeapSoftLimit(0, 8 * 1024, 0, &soft), Outcome::kOk);
    std::vector<void*> blocks;
    while (void* p = f.Allocate(1000)) blocks.push_back(p);
    ASSERT_TRUE(f.ProbeThisThreadHeap(&heap));
    EXPECT_EQ(heap.limit, 32u * 1024);
    EXPECT_LE(heap.limit_usage, 32u * 1024);
    EXPECT_GT(heap.limit_usage, 28u * 1024);
    EXPECT_EQ(heap.limit_refusals, 1u);
    EXPECT_EQ(soft.calls, 1);
    EXPECT_EQ(f.SetThreadHeapLimit(0, kNoLimit), Outcome::kOk);
    EXPECT_EQ(f.SetThreadHeapSoftLimit(0, kNoLimit, 0, nullptr), Outcome::kOk);
    ASSERT_TRUE(f.ProbeThisThreadHeap(&heap));
    EXPECT_EQ(heap.limit, kNoLimit);
    for (void* p : blocks) f.FreeUnchecked(p);
    EXPECT_EQ(f.UnbindThisThread(), Outcome::kOk);
  }).join();
}

TYPED_TEST(FrontEndTest, ResetPeakAndListWhereOffered) {
  TypeParam& f = this->front_;
  void* p = f.Allocate(4000);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(f.Free(p));
  EXPECT_EQ(f.DrainCaches(), Outcome::kOk);
  EXPECT_GE(f.Probe().peak, 4000u);
  EXPECT_EQ(f.ResetPeak(), TypeParam::kHasResetPeak);
  if (TypeParam::kHasResetPeak) {
    EXPECT_EQ(f.Probe().peak, 0u);
  }
  void* q = f.Allocate(100);
  int lines = 0;
  EXPECT_EQ(f.List([&lines](absl::string_view) { ++lines; }), Outcome::kOk);
  EXPECT_GE(lines, 3);  // the region, the block, the totals
  EXPECT_TRUE(f.Free(q));
}

TYPED_TEST(FrontEndTest, TaggedAllocationsServe) {
  TypeParam& f = this->front_;
  static const BlockTag tag = {__FILE__, __LINE__, "tagged", 0};
  void* a = f.AllocateAlignedTagged(64, 100, tag);
  void* b = f.CallocTagged(4, 25, tag);
  void* c = f.AllocateTagged(10, tag);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  a = f.ReallocateTagged(a, 3000, tag);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(f.Probe().live, 3u);
  int tagged_lines = 0;
  f.List([&tagged_lines](absl::string_view line) {
    if (absl::StrContains(line, "tagged")) ++tagged_lines;
  });
  EXPECT_EQ(tagged_lines, 3) << "each tagged block is listed with its tag";
  EXPECT_TRUE(f.Free(a));
  EXPECT_TRUE(f.Free(b));
  EXPECT_TRUE(f.Free(c));
}

// --- The C API's lifecycle ---

TEST(CApiFrontEndTest, NotReadyUntilInitAndAfterRemove) {
  Buffer region(kRegionBytes);
  CApiFrontEnd f(FMEMP_POLICY_MUTEX);
  EXPECT_FALSE(f.ready());
  EXPECT_EQ(f.Allocate(16), nullptr);
  EXPECT_EQ(f.AddRegion(region.begin(), region.end()), Outcome::kNotInit);
  EXPECT_EQ(f.Probe().capacity, 0u);
  EXPECT_EQ(f.Check(), Outcome::kNotInit);
  EXPECT_EQ(f.Init(region.begin(), region.end(), 0x7f), Outcome::kInvalidArg);
  EXPECT_EQ(f.Init(region.begin(), region.end(), FMEMP_POLICY_THREAD_HEAPS),
            Outcome::kOk);
  EXPECT_TRUE(f.has_thread_heaps());
  EXPECT_EQ(f.Init(region.begin(), region.end()), Outcome::kAlreadyInit);
  // The counter survives re-init: the handler is installed by every Init.
  EXPECT_FALSE(f.Free(region.end() + 64));
  EXPECT_EQ(f.reports().count(), 1u);
  f.Remove();
  EXPECT_FALSE(f.ready());
  EXPECT_EQ(f.Init(region.begin(), region.end(), FMEMP_POLICY_SPINLOCK),
            Outcome::kOk);
  EXPECT_FALSE(f.has_thread_heaps());
  EXPECT_EQ(f.BindThisThread(region.begin()), Outcome::kNotSupported);
}

// --- The list ---

template <typename... FrontEnds>
std::vector<std::string> NamesOf(FrontEndList<FrontEnds...>) {
  return {FrontEnds::Name()...};
}

TEST(FrontEndListTest, NamesAreUniqueAndListsNest) {
  const std::vector<std::string> all = NamesOf(AllFrontEnds());
  const std::vector<std::string> safe = NamesOf(ThreadSafeFrontEnds());
  EXPECT_EQ(all.size(), 13u);
  EXPECT_EQ(safe.size(), 10u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size());
  for (const std::string& name : safe) {
    EXPECT_NE(std::find(all.begin(), all.end(), name), all.end()) << name;
  }
  EXPECT_EQ(MempNoLock::Name(), "MempNoLock");
  EXPECT_EQ(ThreadHeapMempMutex::Name(), "ThreadHeapMempMutex");
  EXPECT_EQ(CApiThreadCache::Name(), "CApiThreadCache");
  EXPECT_FALSE(MempNoLock::kThreadSafe);
  EXPECT_FALSE(CApiSingleThread::kThreadSafe);
  EXPECT_TRUE(CachingMempMutex::kThreadSafe);
}

TEST(OutcomeTest, MapsStatusesAndErrorsAlike) {
  EXPECT_EQ(OutcomeOf(absl::OkStatus()), OutcomeOf(FError{FMEMP_SUCCESS}));
  EXPECT_EQ(OutcomeOf(absl::NotFoundError("")),
            OutcomeOf(FError{FMEMP_ERR_REGION_NOT_FOUND}));
  EXPECT_EQ(OutcomeOf(absl::FailedPreconditionError("")),
            OutcomeOf(FError{FMEMP_ERR_REGION_BUSY}));
  EXPECT_EQ(OutcomeOf(absl::AlreadyExistsError("")),
            OutcomeOf(FError{FMEMP_ERR_REGION_OVERLAP}));
  EXPECT_EQ(OutcomeOf(absl::InvalidArgumentError("")),
            OutcomeOf(FError{FMEMP_ERR_INVALID_BUF}));
  EXPECT_EQ(OutcomeOf(absl::UnimplementedError("")),
            OutcomeOf(FError{FMEMP_ERR_NOT_SUPPORTED}));
  EXPECT_EQ(OutcomeOf(FError{0x12345}), Outcome::kOther);
  EXPECT_STREQ(OutcomeName(Outcome::kBusy), "busy");
}

}  // namespace
}  // namespace fmemp::testkit
