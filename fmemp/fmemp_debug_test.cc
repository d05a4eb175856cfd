// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The debug modes through the C API (FMempInitDebug, FMempCheckRegionOf)
// under every policy, and through the cache and thread-heap front-ends. The
// modes themselves are tested in tlsf/heap_debug_test.cc and
// fmemp/debug_test.cc.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "fmemp/fmemp.h"
#include "fmemp/test_util.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "gtest/gtest.h"
#include "sync/spin_lock.h"

namespace {

using fmemp::test_util::ScopedFMemp;

constexpr size_t kBytes = 256 << 10;

struct Buffer {
  Buffer() : data(new uint64_t[kBytes / 8]) {}
  char* begin() { return reinterpret_cast<char*>(data.get()); }
  char* end() { return begin() + kBytes; }
  std::unique_ptr<uint64_t[]> data;
};

struct Kinds {
  std::atomic<int> last{0};
  std::atomic<int> count{0};
  static void Record(void* user, int kind, const void*) {
    auto* self = static_cast<Kinds*>(user);
    self->last.store(kind);
    self->count.fetch_add(1);
  }
};

class FMempDebugTest : public testing::TestWithParam<FMempPolicy> {};

TEST_P(FMempDebugTest, CanariesCatchAnOverflowOnFree) {
  ScopedFMemp pool;
  Buffer buffer;
  ASSERT_EQ(FMempInitDebug(pool.get(), buffer.begin(), buffer.end(), GetParam(),
                           FMEMP_DEBUG_CANARIES),
            FMEMP_SUCCESS);
  Kinds kinds;
  ASSERT_EQ(FMempSetErrorHandler(pool.get(), &Kinds::Record, &kinds),
            FMEMP_SUCCESS);
  auto* p = static_cast<char*>(FMempMalloc(pool.get(), 40));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(FMempCheckRegionOf(pool.get(), p), FMEMP_SUCCESS);
  p[40] = 'x';  // one byte past the request
  EXPECT_EQ(FMempCheckRegionOf(pool.get(), p), FMEMP_ERR_CORRUPT);
  EXPECT_EQ(FMempCheck(pool.get()), FMEMP_ERR_CORRUPT);
  FMempFree(pool.get(), p);  // refused: the block stays allocated
  EXPECT_EQ(kinds.last.load(), FMEMP_MISUSE_CANARY_DAMAGED);
  FMempUsage usage;
  ASSERT_EQ(FMempProbe64(pool.get(), &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.live_blocks, 1u);
  p[40] = static_cast<char>(0xca);  // the canary byte, restored
  EXPECT_EQ(FMempCheck(pool.get()), FMEMP_SUCCESS);
  FMempFree(pool.get(), p);
  ASSERT_EQ(FMempProbe64(pool.get(), &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.used, 0u);
}

TEST_P(FMempDebugTest, PoisonCatchesAWriteAfterFree) {
  ScopedFMemp pool;
  Buffer buffer;
  ASSERT_EQ(FMempInitDebug(pool.get(), buffer.begin(), buffer.end(), GetParam(),
                           FMEMP_DEBUG_POISON),
            FMEMP_SUCCESS);
  Kinds kinds;
  ASSERT_EQ(FMempSetErrorHandler(pool.get(), &Kinds::Record, &kinds),
            FMEMP_SUCCESS);
  void* keep = FMempMalloc(pool.get(), 64);
  auto* p = static_cast<char*>(FMempMalloc(pool.get(), 200));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(static_cast<unsigned char>(p[10]), 0xcd);  // fresh pattern
  FMempFree(pool.get(), p);
  p[100] = 1;  // use after free
  EXPECT_EQ(FMempCheck(pool.get()), FMEMP_ERR_CORRUPT);
  EXPECT_EQ(FMempCheckRegionOf(pool.get(), keep), FMEMP_ERR_CORRUPT);
  EXPECT_EQ(kinds.count.load(), 0);  // Check describes, it does not report
  FMempFree(pool.get(), keep);
}

TEST_P(FMempDebugTest, BadFlagsAndScopesAreRefused) {
  ScopedFMemp pool;
  Buffer buffer;
  EXPECT_EQ(FMempCheckRegionOf(pool.get(), buffer.begin()), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempInitDebug(pool.get(), buffer.begin(), buffer.end(), GetParam(),
                           0x80),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(pool.get()->is_ready, 0u);
  ASSERT_EQ(FMempInitDebug(pool.get(), buffer.begin(), buffer.end(), GetParam(),
                           FMEMP_DEBUG_CANARIES),
            FMEMP_SUCCESS);
  int local = 0;
  EXPECT_EQ(FMempCheckRegionOf(pool.get(), &local), FMEMP_ERR_REGION_NOT_FOUND);
  // A later plain init turns the modes off: no canary after the request.
  FMempRemove(pool.get());
  ASSERT_EQ(
      FMempInitWithPolicy(pool.get(), buffer.begin(), buffer.end(), GetParam()),
      FMEMP_SUCCESS);
  auto* p = static_cast<unsigned char*>(FMempMalloc(pool.get(), 36));
  ASSERT_NE(p, nullptr);
  p[36] = 'x';  // inside the usable size (40) when there are no canaries
  EXPECT_EQ(FMempCheck(pool.get()), FMEMP_SUCCESS);
  FMempFree(pool.get(), p);
}

INSTANTIATE_TEST_SUITE_P(Policies, FMempDebugTest,
                         testing::Values(FMEMP_POLICY_MUTEX,
                                         FMEMP_POLICY_SPINLOCK,
                                         FMEMP_POLICY_SINGLE_THREAD,
                                         FMEMP_POLICY_THREAD_CACHE,
                                         FMEMP_POLICY_THREAD_HEAPS));

// A bound thread's heap takes the modes of its regions, and its own
// blocks are checked.
TEST(ThreadHeapMempDebugTest, BoundThreadHeapsKeepTheModes) {
  fmemp::ThreadHeapMemp<fmemp::sync::SpinLock> memp;
  fmemp::DebugOptions options;
  options.canaries = true;
  ASSERT_TRUE(memp.SetDebugOptions(options).ok());
  Buffer shared, own;
  ASSERT_TRUE(memp.AddRegion(shared.begin(), shared.end()).ok());
  std::atomic<int> reports{0};
  memp.SetReportHandler(
      +[](void* context, const fmemp::MempReport& report) {
        if (report.error == fmemp::MempError::kCanaryDamaged &&
            report.size == 24) {
          static_cast<std::atomic<int>*>(context)->fetch_add(1);
        }
      },
      &reports);
  std::thread([&] {
    ASSERT_TRUE(memp.AddRegion(own.begin(), own.end()).ok());
    ASSERT_TRUE(memp.BindThisThread(own.begin()).ok());
    auto* p = static_cast<char*>(memp.Allocate(24));
    ASSERT_TRUE(p >= own.begin() && p < own.end());
    EXPECT_EQ(memp.UsableSize(p), 24u);  // canaries: the requested size
    p[24] = 0;
    EXPECT_FALSE(memp.CheckRegionOf(p).ok());
    EXPECT_FALSE(memp.Free(p));
    EXPECT_EQ(reports.load(), 1);
    p[24] = static_cast<char>(0xca);
    EXPECT_TRUE(memp.Free(p));
    EXPECT_TRUE(memp.Check().ok());
  }).join();
  // Regions cannot change modes while they exist.
  EXPECT_FALSE(memp.SetDebugOptions(fmemp::DebugOptions()).ok());
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
}

// With a mode on, the per-thread caches step aside so every free is checked.
TEST(CachingMempDebugTest, CachesAreBypassed) {
  fmemp::CachingMemp<fmemp::sync::SpinLock> memp;
  fmemp::DebugOptions options;
  options.canaries = true;
  ASSERT_TRUE(memp.SetDebugOptions(options).ok());
  Buffer buffer;
  ASSERT_TRUE(memp.AddRegion(buffer.begin(), buffer.end()).ok());
  auto* p = static_cast<char*>(memp.Allocate(24));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(memp.Probe().cached_bytes, 0u);  // no refill batch
  p[24] = 0;
  memp.SetErrorHandler(
      +[](void*, fmemp::MempError, const void*) {}, nullptr);
  EXPECT_FALSE(memp.Free(p));  // checked, refused
  p[24] = static_cast<char>(0xca);
  EXPECT_TRUE(memp.Free(p));
  EXPECT_EQ(memp.Probe().cached_bytes, 0u);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
}

}  // namespace
