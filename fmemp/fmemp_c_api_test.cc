// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the SDK's C API (fmemp/fmemp.h), one or more per function and per
// error path: init and its errors, NULL and never-initialised pools, remove /
// deinit / release, probes (including saturation above 4 GiB), calloc,
// aligned malloc, realloc, misuse reports and the error handler, regions,
// lock policies, FMemListAll's and FMemListAllTo's listing, and the SDK's
// types and codes (including redeclaring the SDK's typedefs after fmemp.h).

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "fmemp/fmemp.h"
#include "fmemp/prefault.h"
#include "fmemp/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// The SDK's ftypes.h and ferror_code.h, included after fmemp.h, redeclare
// these; identical typedefs (and identical macro definitions) are legal, so
// this translation unit must compile.
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
typedef uintptr_t uintptr;
typedef size_t fsize_t;
typedef unsigned long boolean;  // as the SDK's ftypes.h (not bool)
typedef u32 FError;
#define TRUE 1U
#define FALSE 0U
#define FT_COMPONENT_IS_READY 0x11111111U

extern "C" FError InitWithRawPolicy(FMemp* memp, void* begin, void* end,
                                    int policy);

namespace {

using ::fmemp::test_util::Fill;
using ::fmemp::test_util::HasFill;
using Pool = ::fmemp::test_util::ScopedFMemp;

using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kBufferBytes = 64 * 1024;

// Heap memory for a region, 16-byte aligned (operator new[]), owned by the
// test.
class Buffer {
 public:
  explicit Buffer(size_t bytes) : bytes_(bytes), data_(new uint8_t[bytes]) {
    std::memset(data_.get(), 0, bytes);
  }
  uint8_t* begin() const { return data_.get(); }
  uint8_t* end() const { return data_.get() + bytes_; }
  size_t size() const { return bytes_; }
  bool Contains(const void* p) const {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    return c >= begin() && c < end();
  }

 private:
  size_t bytes_;
  std::unique_ptr<uint8_t[]> data_;
};

FMempUsage Usage(FMemp* memp) {
  FMempUsage usage;
  std::memset(&usage, 0xab, sizeof(usage));
  EXPECT_EQ(FMempProbe64(memp, &usage), FMEMP_SUCCESS);
  return usage;
}

FMempRegionUsage RegionUsage(FMemp* memp, u32 index) {
  FMempRegionUsage usage;
  std::memset(&usage, 0xab, sizeof(usage));
  EXPECT_EQ(FMempProbeRegion(memp, index, &usage), FMEMP_SUCCESS);
  return usage;
}

std::string ListAll(FMemp* memp) {
  testing::internal::CaptureStdout();
  FMemListAll(memp);
  return testing::internal::GetCapturedStdout();
}

// An FMempLineSink that collects the lines.
void CollectLine(void* user, const char* line) {
  static_cast<std::vector<std::string>*>(user)->push_back(line);
}

std::string PointerText(const void* p) { return absl::StrFormat("%p", p); }

// How FMemListAll starts the line of a live block.
std::string BlockText(const void* p) { return absl::StrFormat("  %p ", p); }

bool IsAligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

// Expects memp to be unusable but safe: allocation gives NULL, management
// calls give FMEMP_ERR_NOT_INIT, probes give zeros.
void ExpectInert(FMemp* memp, void* some_pointer) {
  EXPECT_EQ(FMempMalloc(memp, 16), nullptr);
  EXPECT_EQ(FMempMalloc(memp, 0), nullptr);
  EXPECT_EQ(FMempCalloc(memp, 4, 4), nullptr);
  EXPECT_EQ(FMempMallocAlign(memp, 64, 64), nullptr);
  EXPECT_EQ(FMempRealloc(memp, nullptr, 16), nullptr);
  EXPECT_EQ(FMempRealloc(memp, some_pointer, 16), nullptr);
  FMempFree(memp, some_pointer);
  FMempFree(memp, nullptr);
  EXPECT_EQ(FMempMallocTag(memp, 16, __FILE__, __LINE__, ""), nullptr);
  EXPECT_EQ(FMempMallocAlignTag(memp, 16, 64, __FILE__, __LINE__, ""), nullptr);
  EXPECT_EQ(FMempCallocTag(memp, 2, 8, __FILE__, __LINE__, ""), nullptr);
  EXPECT_EQ(FMempReallocTag(memp, nullptr, 16, __FILE__, __LINE__, ""),
            nullptr);
  FMempFreeTag(memp, some_pointer);

  u32 total = 1, used = 2, max_used = 3;
  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(total, 0u);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(max_used, 0u);
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(memp, &usage), FMEMP_ERR_NOT_INIT);
  FMempRegionUsage region;
  EXPECT_EQ(FMempProbeRegion(memp, 0, &region), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempRegionCount(memp), 0u);
  EXPECT_EQ(FMempCheck(memp), FMEMP_ERR_NOT_INIT);
  static uint8_t region_memory[4096];
  EXPECT_EQ(FMempAddRegion(memp, region_memory,
                           region_memory + sizeof(region_memory)),
            FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempRemoveRegion(memp, region_memory), FMEMP_ERR_NOT_INIT);
  EXPECT_THAT(ListAll(memp), HasSubstr("not initialised"));
  std::vector<std::string> lines;
  EXPECT_EQ(FMemListAllTo(memp, &CollectLine, &lines), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMemListAllTo(memp, nullptr, nullptr), FMEMP_ERR_INVALID_ARG);
  EXPECT_TRUE(lines.empty());
}

// --- SDK types and codes ---

TEST(FMempConstantsTest, ErrorCodesMatchTheManual) {
  static_assert(FMEMP_SUCCESS == 0, "");
  static_assert(FMEMP_ERR_INVALID_BUF == 0x0010000, "");
  static_assert(FMEMP_ERR_INIT_TLFS == 0x0010001, "");
  static_assert(FMEMP_ERR_BAD_MALLOC == 0x0010002, "");
  static_assert(FMEMP_ERR_ALREADY_INIT == 0x0010003, "");
  EXPECT_EQ(FMEMP_SUCCESS, 0u);
  EXPECT_EQ(FMEMP_ERR_INVALID_BUF, 0x0010000u);
  EXPECT_EQ(FMEMP_ERR_INIT_TLFS, 0x0010001u);
  EXPECT_EQ(FMEMP_ERR_BAD_MALLOC, 0x0010002u);
  EXPECT_EQ(FMEMP_ERR_ALREADY_INIT, 0x0010003u);
  // fmemp's own codes extend the module's range without clashing.
  const std::vector<FError> codes = {
      FMEMP_ERR_NOT_INIT,         FMEMP_ERR_REGION_BUSY,
      FMEMP_ERR_REGION_NOT_FOUND, FMEMP_ERR_REGION_OVERLAP,
      FMEMP_ERR_CORRUPT,          FMEMP_ERR_INVALID_ARG};
  for (size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], 0x0010004u + i);
  }
}

TEST(FMempConstantsTest, SdkTypesHaveTheSdkSizes) {
  static_assert(sizeof(FError) == 4, "");
  static_assert(std::is_same<FError, uint32_t>::value, "");
  static_assert(std::is_same<fsize_t, size_t>::value, "");
  static_assert(std::is_same<u8, uint8_t>::value, "");
  static_assert(std::is_same<u16, uint16_t>::value, "");
  static_assert(std::is_same<u32, uint32_t>::value, "");
  static_assert(std::is_same<u64, uint64_t>::value, "");
  static_assert(std::is_same<s32, int32_t>::value, "");
  static_assert(std::is_same<uintptr, uintptr_t>::value, "");
  static_assert(std::is_same<boolean, unsigned long>::value, "");
  EXPECT_EQ(sizeof(FError), 4u);
  EXPECT_TRUE((std::is_same<fsize_t, size_t>::value));
  EXPECT_TRUE((std::is_same<u32, uint32_t>::value));
  EXPECT_EQ(FT_COMPONENT_IS_READY, 0x11111111u);
  EXPECT_EQ(TRUE, 1u);
  EXPECT_EQ(FALSE, 0u);
}

// --- FMempInit ---

TEST(FMempInitTest, NullMempIsInvalidArg) {
  Buffer buffer(kBufferBytes);
  EXPECT_EQ(FMempInit(nullptr, buffer.begin(), buffer.end()),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempInitWithPolicy(nullptr, buffer.begin(), buffer.end(),
                                FMEMP_POLICY_SPINLOCK),
            FMEMP_ERR_INVALID_ARG);
}

// A bad range, as offsets into a buffer (-1: NULL).
struct BadRange {
  const char* name;
  ptrdiff_t begin;
  ptrdiff_t end;
};

class FMempInitBadRangeTest : public testing::TestWithParam<BadRange> {};

TEST_P(FMempInitBadRangeTest, IsInvalidBufAndLeavesMempInert) {
  Buffer buffer(kBufferBytes);
  const BadRange range = GetParam();
  void* begin = range.begin < 0 ? nullptr : buffer.begin() + range.begin;
  void* end = range.end < 0 ? nullptr : buffer.begin() + range.end;
  Pool pool;
  EXPECT_EQ(FMempInit(pool.get(), begin, end), FMEMP_ERR_INVALID_BUF);
  EXPECT_NE(pool.get()->is_ready, FT_COMPONENT_IS_READY);
  ExpectInert(pool.get(), buffer.begin() + 64);
  // The FMemp can still be initialised afterwards.
  EXPECT_EQ(FMempInit(pool.get(), buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  EXPECT_NE(FMempMalloc(pool.get(), 16), nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Ranges, FMempInitBadRangeTest,
    testing::Values(BadRange{"NullBegin", -1, 4096}, BadRange{"NullEnd", 0, -1},
                    BadRange{"NullBoth", -1, -1}, BadRange{"Reversed", 4096, 0},
                    BadRange{"Empty", 64, 64},
                    BadRange{"TooSmall40Bytes", 0, 40},
                    BadRange{"EmptyAfterAligningInward", 1, 15}),
    [](const testing::TestParamInfo<BadRange>& info) {
      return std::string(info.param.name);
    });

TEST(FMempInitTest, SetsTheSdkFields) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  EXPECT_EQ(memp->is_ready, FT_COMPONENT_IS_READY);
  ASSERT_NE(memp->pools_list, nullptr);
  EXPECT_EQ(memp->pools_list->pool_addr, buffer.begin());
  EXPECT_NE(memp->tlsf_ptr, nullptr);
  EXPECT_NE(memp->priv, nullptr);
  FMempRemove(memp);
  EXPECT_NE(memp->is_ready, FT_COMPONENT_IS_READY);
  EXPECT_EQ(memp->pools_list, nullptr);
}

TEST(FMempInitTest, DoubleInitIsAlreadyInitAndChangesNothing) {
  Buffer first(kBufferBytes), second(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, first.begin(), first.end()), FMEMP_SUCCESS);
  void* p = FMempMalloc(memp, 300);
  ASSERT_NE(p, nullptr);
  Fill(p, 300, 11);
  const FMempUsage before = Usage(memp);

  EXPECT_EQ(FMempInit(memp, second.begin(), second.end()),
            FMEMP_ERR_ALREADY_INIT);
  EXPECT_EQ(FMempInitWithPolicy(memp, second.begin(), second.end(),
                                FMEMP_POLICY_SINGLE_THREAD),
            FMEMP_ERR_ALREADY_INIT);
  EXPECT_EQ(FMempInit(memp, first.begin(), first.end()),
            FMEMP_ERR_ALREADY_INIT);

  const FMempUsage after = Usage(memp);
  EXPECT_EQ(after.total, before.total);
  EXPECT_EQ(after.used, before.used);
  EXPECT_EQ(after.live_blocks, 1u);
  EXPECT_EQ(after.regions, 1u);
  EXPECT_EQ(RegionUsage(memp, 0).begin, first.begin());
  EXPECT_EQ(memp->pools_list->pool_addr, first.begin());
  EXPECT_TRUE(HasFill(p, 300, 11));
  for (int i = 0; i < 50; ++i) {
    void* q = FMempMalloc(memp, 100);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(second.Contains(q));
  }
  FMempFree(memp, p);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempInitTest, UnalignedBoundsAreAlignedInward) {
  Buffer buffer(8192);
  uint8_t* const begin = buffer.begin() + 1;
  uint8_t* const end = buffer.end() - 3;
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, begin, end), FMEMP_SUCCESS);
  const FMempUsage usage = Usage(memp);
  EXPECT_LE(usage.total, static_cast<u64>(end - begin));
  // Bookkeeping lives outside the buffer: nearly all of it is usable.
  EXPECT_GE(usage.total, static_cast<u64>(end - begin) - 256);
  std::vector<void*> blocks;
  for (;;) {
    void* p = FMempMalloc(memp, 24);
    if (p == nullptr) break;
    blocks.push_back(p);
    EXPECT_TRUE(IsAligned(p, 16)) << p;
    EXPECT_GE(static_cast<uint8_t*>(p), begin);
    EXPECT_LE(static_cast<uint8_t*>(p) + 24, end);
    std::memset(p, 0xee, 24);
  }
  EXPECT_GT(blocks.size(), 100u);
  void* aligned = nullptr;
  while (!blocks.empty() && aligned == nullptr) {
    FMempFree(memp, blocks.back());
    blocks.pop_back();
    aligned = FMempMallocAlign(memp, 64, 256);
  }
  // Nothing was written outside [begin, end).
  EXPECT_EQ(buffer.begin()[0], 0);
  EXPECT_EQ(buffer.end()[-1], 0);
  EXPECT_EQ(buffer.end()[-2], 0);
  EXPECT_EQ(buffer.end()[-3], 0);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

// --- NULL and never-initialised FMemp ---

TEST(FMempNotInitTest, NeverInitialisedFMempIsInertAndUntouched) {
  FMemp memp = {};
  Buffer buffer(4096);
  ExpectInert(&memp, buffer.begin() + 32);
  EXPECT_EQ(FMempSetErrorHandler(&memp, nullptr, nullptr), FMEMP_ERR_NOT_INIT);
  FMempRemove(&memp);
  FMempDeinit(&memp);
  FMempRelease(&memp);
  // Nothing was touched: in particular no front-end was created.
  EXPECT_EQ(memp.pools_list, nullptr);
  EXPECT_EQ(memp.tlsf_ptr, nullptr);
  EXPECT_EQ(memp.is_ready, 0u);
  EXPECT_EQ(memp.priv, nullptr);
}

TEST(FMempNotInitTest, NullFMempIsInert) {
  Buffer buffer(4096);
  ExpectInert(nullptr, buffer.begin() + 32);
  EXPECT_EQ(FMempSetErrorHandler(nullptr, nullptr, nullptr),
            FMEMP_ERR_NOT_INIT);
  FMempRemove(nullptr);
  FMempDeinit(nullptr);
  FMempRelease(nullptr);
}

// --- FMempRemove / FMempDeinit / FMempRelease ---

void ExpectTeardownReleasesEverything(void (*teardown)(FMemp*)) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  const u64 capacity = Usage(memp).total;
  std::vector<void*> blocks;
  blocks.reserve(20);
  for (int i = 0; i < 20; ++i) blocks.push_back(FMempMalloc(memp, 1000));
  void* p = blocks.front();
  ASSERT_NE(p, nullptr);

  teardown(memp);
  EXPECT_NE(memp->is_ready, FT_COMPONENT_IS_READY);
  ExpectInert(memp, p);

  // Initialising again over the same buffer starts from scratch.
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  const FMempUsage usage = Usage(memp);
  EXPECT_EQ(usage.total, capacity);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.max_used, 0u);
  EXPECT_EQ(usage.live_blocks, 0u);
  void* q = FMempMalloc(memp, 20 * 1000);
  EXPECT_NE(q, nullptr);
  FMempFree(memp, q);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempRemoveTest, RemoveReleasesEverythingAndAllowsInitAgain) {
  ExpectTeardownReleasesEverything(&FMempRemove);
}

TEST(FMempRemoveTest, DeinitIsRemove) {
  ExpectTeardownReleasesEverything(&FMempDeinit);
}

TEST(FMempRemoveTest, RemoveTwiceIsHarmless) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  ASSERT_EQ(FMempInit(pool.get(), buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  FMempRemove(pool.get());
  FMempRemove(pool.get());
  FMempDeinit(pool.get());
  ExpectInert(pool.get(), buffer.begin() + 64);
}

TEST(FMempRemoveTest, ReleaseFreesFrontEndAndLeavesMempReusable) {
  Buffer buffer(kBufferBytes);
  FMemp memp = {};
  ASSERT_EQ(FMempInit(&memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  void* p = FMempMalloc(&memp, 100);
  ASSERT_NE(p, nullptr);
  FMempRelease(&memp);
  EXPECT_EQ(memp.priv, nullptr);
  EXPECT_NE(memp.is_ready, FT_COMPONENT_IS_READY);
  ExpectInert(&memp, p);  // creates no front-end
  EXPECT_EQ(memp.priv, nullptr);
  FMempRelease(&memp);  // again: a no-op

  ASSERT_EQ(FMempInitWithPolicy(&memp, buffer.begin(), buffer.end(),
                                FMEMP_POLICY_SPINLOCK),
            FMEMP_SUCCESS);
  EXPECT_EQ(Usage(&memp).used, 0u);
  void* q = FMempMalloc(&memp, 100);
  EXPECT_NE(q, nullptr);
  FMempFree(&memp, q);
  EXPECT_EQ(FMempCheck(&memp), FMEMP_SUCCESS);
  FMempRelease(&memp);
  EXPECT_EQ(memp.priv, nullptr);
}

// --- Fixture: an FMemp initialised over one buffer ---

class FMempTest : public testing::Test {
 protected:
  FMempTest() : buffer_(kBufferBytes) {}
  void SetUp() override {
    ASSERT_EQ(FMempInit(memp(), buffer_.begin(), buffer_.end()), FMEMP_SUCCESS);
  }
  FMemp* memp() { return pool_.get(); }

  Buffer buffer_;
  Pool pool_;
};

// --- FMemProbe / FMempProbe64 ---

TEST_F(FMempTest, ProbeTotalIsCapacityAndUsedStartsAtZero) {
  u32 total = 0, used = 1, max_used = 1;
  FMemProbe(memp(), &total, &used, &max_used);
  const FMempUsage usage = Usage(memp());
  EXPECT_EQ(total, usage.total);
  EXPECT_EQ(total, RegionUsage(memp(), 0).total);
  EXPECT_LE(total, kBufferBytes);
  EXPECT_GE(total, kBufferBytes - 256);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(max_used, 0u);
  EXPECT_EQ(usage.free_bytes, usage.total);
  EXPECT_EQ(usage.live_blocks, 0u);
  EXPECT_EQ(usage.regions, 1u);
  EXPECT_EQ(usage.failed_allocations, 0u);
  EXPECT_EQ(usage.invalid_frees, 0u);
}

// used grows by each block and returns to zero. Under every policy max_used
// is the exact peak of the bytes taken from the regions: used, plus, under
// per-thread caches, the blocks parked there (cached_bytes); with
// allocations only, that is used + cached_bytes now.
void CheckProbeFollowsAllocations(FMemp* memp) {
  std::vector<void*> blocks;
  u32 total = 0, used = 0, max_used = 0;
  u32 last_used = 0, last_max = 0;
  for (size_t n : {1, 16, 100, 1000, 4000, 0}) {
    void* p = FMempMalloc(memp, n);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
    FMemProbe(memp, &total, &used, &max_used);
    // A block costs at least its bytes plus its 8-byte header.
    EXPECT_GE(used, last_used + n + 8) << n;
    EXPECT_LE(used, last_used + n + 64) << n;
    const FMempUsage usage = Usage(memp);
    EXPECT_EQ(max_used, used + usage.cached_bytes) << n;
    EXPECT_EQ(usage.max_used, max_used) << n;
    EXPECT_EQ(usage.used, used);
    last_used = used;
    last_max = max_used;
  }
  for (void* p : blocks) FMempFree(memp, p);
  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(max_used, last_max) << "frees (parks, trims) lower no peak";
  EXPECT_EQ(Usage(memp).live_blocks, 0u);
}

TEST_F(FMempTest, ProbeUsedGrowsWithAllocationsAndReturnsToZero) {
  // FMempInit: the default policy, per-thread caches.
  CheckProbeFollowsAllocations(memp());
}

// Without caches (FMEMP_POLICY_THREAD_HEAPS: a thread without a thread
// heap) nothing is parked: max_used is the exact peak of used.
TEST(FMempPolicyProbeTest, MaxUsedIsTheExactPeakWithoutCaches) {
  for (FMempPolicy policy :
       {FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_SINGLE_THREAD,
        FMEMP_POLICY_THREAD_HEAPS}) {
    SCOPED_TRACE(static_cast<int>(policy));
    Buffer buffer(kBufferBytes);
    Pool pool;
    ASSERT_EQ(
        FMempInitWithPolicy(pool.get(), buffer.begin(), buffer.end(), policy),
        FMEMP_SUCCESS);
    CheckProbeFollowsAllocations(pool.get());
    EXPECT_EQ(Usage(pool.get()).cached_bytes, 0u);
  }
}

TEST(FMempPolicyProbeTest, FMempInitUsesThreadCaches) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  ASSERT_EQ(FMempInit(pool.get(), buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  // A small block freed by this thread is parked, not returned: only the
  // thread-cache policy does that.
  void* p = FMempMalloc(pool.get(), 64);
  ASSERT_NE(p, nullptr);
  FMempFree(pool.get(), p);
  EXPECT_GT(Usage(pool.get()).cached_bytes, 0u);
  EXPECT_EQ(FMempDrainThreadCaches(pool.get()), FMEMP_SUCCESS);
  EXPECT_EQ(Usage(pool.get()).cached_bytes, 0u);
}

TEST_F(FMempTest, ProbeMaxUsedIsTheTruePeak) {
  void* a = FMempMalloc(memp(), 20000);
  ASSERT_NE(a, nullptr);
  u32 used_with_a = 0;
  FMemProbe(memp(), nullptr, &used_with_a, nullptr);
  FMempFree(memp(), a);
  void* b = FMempMalloc(memp(), 100);
  ASSERT_NE(b, nullptr);
  u32 total = 0, used = 0, max_used = 0;
  FMemProbe(memp(), &total, &used, &max_used);
  EXPECT_LT(used, used_with_a);
  EXPECT_EQ(max_used, used_with_a);
  EXPECT_EQ(Usage(memp()).max_used, used_with_a);
  FMempFree(memp(), b);
}

TEST_F(FMempTest, ProbeAcceptsNullOutputs) {
  void* p = FMempMalloc(memp(), 100);
  ASSERT_NE(p, nullptr);
  const FMempUsage usage = Usage(memp());
  FMemProbe(memp(), nullptr, nullptr, nullptr);
  u32 value = 0;
  FMemProbe(memp(), &value, nullptr, nullptr);
  EXPECT_EQ(value, usage.total);
  FMemProbe(memp(), nullptr, &value, nullptr);
  EXPECT_EQ(value, usage.used);
  FMemProbe(memp(), nullptr, nullptr, &value);
  EXPECT_EQ(value, usage.max_used);
  FMempFree(memp(), p);
}

TEST_F(FMempTest, Probe64NullUsageIsInvalidArg) {
  EXPECT_EQ(FMempProbe64(memp(), nullptr), FMEMP_ERR_INVALID_ARG);
}

TEST(FMempProbeSaturationTest, ProbeSaturatesAbove4GiBAndProbe64IsExact) {
  constexpr size_t kMapBytes = size_t{5} << 30;
  constexpr size_t kBlockBytes = (size_t{9} << 30) / 2;  // 4.5 GiB
  void* map = mmap(nullptr, kMapBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) GTEST_SKIP() << "cannot map 5 GiB";
  uint8_t* const big = static_cast<uint8_t*>(map);
  Buffer buffer(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  const u64 small_total = Usage(memp).total;
  ASSERT_EQ(FMempAddRegion(memp, big, big + kMapBytes), FMEMP_SUCCESS);

  u32 total = 0, used = 0, max_used = 0;
  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(total, 0xFFFFFFFFu);
  EXPECT_EQ(used, 0u);

  uint8_t* p = static_cast<uint8_t*>(FMempMalloc(memp, kBlockBytes));
  ASSERT_NE(p, nullptr);
  EXPECT_GE(p, big);
  EXPECT_LE(p + kBlockBytes, big + kMapBytes);
  p[0] = 1;  // only a few bytes of the mapping are touched
  p[kBlockBytes - 1] = 2;

  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(total, 0xFFFFFFFFu);
  EXPECT_EQ(used, 0xFFFFFFFFu);
  EXPECT_EQ(max_used, 0xFFFFFFFFu);

  const FMempUsage usage = Usage(memp);
  u64 region_total = 0;
  for (u32 i = 0; i < FMempRegionCount(memp); ++i) {
    region_total += RegionUsage(memp, i).total;
  }
  EXPECT_EQ(usage.total, region_total);
  EXPECT_GT(usage.total, small_total + kMapBytes - 256);
  EXPECT_LE(usage.total, small_total + kMapBytes);
  // The block's span: its bytes and 8-byte header, rounded up to 16.
  EXPECT_EQ(usage.used, (kBlockBytes + 8 + 15) / 16 * 16);
  EXPECT_EQ(usage.max_used, usage.used);
  EXPECT_EQ(usage.used + usage.free_bytes, usage.total);
  EXPECT_EQ(usage.live_blocks, 1u);

  FMempFree(memp, p);
  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(max_used, 0xFFFFFFFFu);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  FMempRemove(memp);
  munmap(map, kMapBytes);
}

// --- FMempCalloc ---

TEST_F(FMempTest, CallocZeroesDirtyMemory) {
  void* dirty = FMempMalloc(memp(), 4000);
  ASSERT_NE(dirty, nullptr);
  std::memset(dirty, 0xff, 4000);
  FMempFree(memp(), dirty);
  uint32_t* array =
      static_cast<uint32_t*>(FMempCalloc(memp(), 1000, sizeof(uint32_t)));
  ASSERT_NE(array, nullptr);
  EXPECT_EQ(static_cast<void*>(array), dirty);  // the dirty block came back
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(array[i], 0u) << i;
  FMempFree(memp(), array);
}

TEST_F(FMempTest, CallocOverflowIsNullAndCounted) {
  const u64 failed = Usage(memp()).failed_allocations;
  EXPECT_EQ(FMempCalloc(memp(), SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(FMempCalloc(memp(), size_t{1} << 33, size_t{1} << 31), nullptr);
  const FMempUsage usage = Usage(memp());
  EXPECT_EQ(usage.failed_allocations, failed + 2);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.live_blocks, 0u);
}

TEST_F(FMempTest, CallocOfZeroElementsIsAUniqueBlock) {
  void* a = FMempCalloc(memp(), 0, 16);
  void* b = FMempCalloc(memp(), 16, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  FMempFree(memp(), a);
  FMempFree(memp(), b);
  EXPECT_EQ(Usage(memp()).used, 0u);
}

// --- FMempMallocAlign ---

TEST_F(FMempTest, MallocAlignHonoursPowerOfTwoAlignments) {
  std::vector<void*> blocks;
  for (size_t align : {128, 64, 32, 4096, 16, 8, 1, 256}) {
    void* p = FMempMallocAlign(memp(), 200, align);
    ASSERT_NE(p, nullptr) << align;
    EXPECT_TRUE(IsAligned(p, align)) << p << " " << align;
    EXPECT_TRUE(buffer_.Contains(p));
    std::memset(p, 0x3c, 200);
    blocks.push_back(p);
  }
  for (void* p : blocks) FMempFree(memp(), p);
  EXPECT_EQ(Usage(memp()).used, 0u);
  EXPECT_EQ(FMempCheck(memp()), FMEMP_SUCCESS);
}

TEST_F(FMempTest, MallocAlignRejectsNonPowerOfTwo) {
  const u64 failed = Usage(memp()).failed_allocations;
  for (size_t align : {0, 3, 48, 100}) {
    EXPECT_EQ(FMempMallocAlign(memp(), 64, align), nullptr) << align;
  }
  const FMempUsage usage = Usage(memp());
  EXPECT_EQ(usage.failed_allocations, failed + 4);
  EXPECT_EQ(usage.used, 0u);
}

// --- FMempMalloc / FMempFree ---

TEST_F(FMempTest, MallocZeroReturnsUniqueBlocks) {
  void* a = FMempMalloc(memp(), 0);
  void* b = FMempMalloc(memp(), 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(Usage(memp()).live_blocks, 2u);
  FMempFree(memp(), a);
  FMempFree(memp(), b);
  EXPECT_EQ(Usage(memp()).live_blocks, 0u);
}

TEST_F(FMempTest, MallocTooLargeIsNullAndCounted) {
  EXPECT_EQ(FMempMalloc(memp(), kBufferBytes), nullptr);
  EXPECT_EQ(FMempMalloc(memp(), SIZE_MAX), nullptr);
  EXPECT_EQ(Usage(memp()).failed_allocations, 2u);
}

TEST_F(FMempTest, FreeNullIsANoOp) {
  void* p = FMempMalloc(memp(), 64);
  ASSERT_NE(p, nullptr);
  const FMempUsage before = Usage(memp());
  testing::internal::CaptureStderr();
  FMempFree(memp(), nullptr);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  const FMempUsage after = Usage(memp());
  EXPECT_EQ(after.used, before.used);
  EXPECT_EQ(after.live_blocks, 1u);
  EXPECT_EQ(after.invalid_frees, 0u);
  FMempFree(memp(), p);
}

// --- FMempRealloc ---

TEST_F(FMempTest, ReallocNullActsAsMalloc) {
  void* p = FMempRealloc(memp(), nullptr, 300);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(buffer_.Contains(p));
  std::memset(p, 1, 300);
  EXPECT_EQ(Usage(memp()).live_blocks, 1u);
  FMempFree(memp(), p);
  EXPECT_EQ(Usage(memp()).used, 0u);
}

TEST_F(FMempTest, ReallocToZeroFreesAndReturnsNull) {
  void* p = FMempMalloc(memp(), 300);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(Usage(memp()).live_blocks, 1u);
  EXPECT_EQ(FMempRealloc(memp(), p, 0), nullptr);
  const FMempUsage usage = Usage(memp());
  EXPECT_EQ(usage.live_blocks, 0u);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.invalid_frees, 0u);
}

TEST_F(FMempTest, ReallocGrowthPreservesContent) {
  void* p = FMempMalloc(memp(), 100);
  void* blocker = FMempMalloc(memp(), 100);  // keeps p from growing in place
  ASSERT_NE(p, nullptr);
  ASSERT_NE(blocker, nullptr);
  Fill(p, 100, 42);
  void* q = FMempRealloc(memp(), p, 5000);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(HasFill(q, 100, 42));
  std::memset(static_cast<uint8_t*>(q) + 100, 0x11, 4900);
  // Growing again, in place or not, still keeps the bytes.
  void* r = FMempRealloc(memp(), q, 20000);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(HasFill(r, 100, 42));
  // Shrinking keeps the prefix.
  void* s = FMempRealloc(memp(), r, 50);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(HasFill(s, 50, 42));
  EXPECT_EQ(Usage(memp()).live_blocks, 2u);
  FMempFree(memp(), s);
  FMempFree(memp(), blocker);
  EXPECT_EQ(Usage(memp()).used, 0u);
  EXPECT_EQ(FMempCheck(memp()), FMEMP_SUCCESS);
}

TEST_F(FMempTest, ReallocImpossibleSizeKeepsTheBlock) {
  void* p = FMempMalloc(memp(), 200);
  ASSERT_NE(p, nullptr);
  Fill(p, 200, 9);
  const FMempUsage before = Usage(memp());
  EXPECT_EQ(FMempRealloc(memp(), p, 2 * kBufferBytes), nullptr);
  EXPECT_EQ(FMempRealloc(memp(), p, SIZE_MAX), nullptr);
  EXPECT_EQ(FMempRealloc(memp(), p, SIZE_MAX - 4096), nullptr);
  const FMempUsage after = Usage(memp());
  EXPECT_EQ(after.used, before.used);
  EXPECT_EQ(after.live_blocks, 1u);
  // One failed allocation per call, none for the attempts within it.
  EXPECT_EQ(after.failed_allocations, before.failed_allocations + 3);
  EXPECT_TRUE(HasFill(p, 200, 9));
  // Still a live block: it can be reallocated and freed normally.
  void* q = FMempRealloc(memp(), p, 400);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(HasFill(q, 200, 9));
  FMempFree(memp(), q);
  EXPECT_EQ(Usage(memp()).used, 0u);
  EXPECT_EQ(Usage(memp()).invalid_frees, 0u);
}

TEST_F(FMempTest, ReallocKeepsAlignmentWhenMovingWithinARegion) {
  void* p = FMempMallocAlign(memp(), 64, 4096);
  void* blocker = FMempMalloc(memp(), 64);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(blocker, nullptr);
  Fill(p, 64, 3);
  void* q = FMempRealloc(memp(), p, 9000);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(IsAligned(q, 4096)) << q;
  EXPECT_TRUE(HasFill(q, 64, 3));
  FMempFree(memp(), q);
  FMempFree(memp(), blocker);
  EXPECT_EQ(FMempCheck(memp()), FMEMP_SUCCESS);
}

TEST(FMempReallocTest, AlignedBlockKeepsAlignmentWhenMovingToAnotherRegion) {
  Buffer small(8 * 1024), large(256 * 1024);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, small.begin(), small.end()), FMEMP_SUCCESS);
  void* p = FMempMallocAlign(memp, 64, 4096);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(small.Contains(p));
  Fill(p, 64, 77);
  ASSERT_EQ(FMempAddRegion(memp, large.begin(), large.end()), FMEMP_SUCCESS);
  // 64 KiB cannot fit in the small region: the block moves.
  void* q = FMempRealloc(memp, p, 64 * 1024);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(large.Contains(q));
  EXPECT_TRUE(IsAligned(q, 4096)) << q;
  EXPECT_TRUE(HasFill(q, 64, 77));
  EXPECT_EQ(RegionUsage(memp, small.begin() < large.begin() ? 0 : 1).used, 0u);
  EXPECT_EQ(Usage(memp).live_blocks, 1u);
  FMempFree(memp, q);
  EXPECT_EQ(Usage(memp).used, 0u);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

// --- Misuse and the error handler ---

struct Reports {
  std::vector<std::pair<int, const void*>> seen;
  static void Record(void* user, int kind, const void* ptr) {
    static_cast<Reports*>(user)->seen.emplace_back(kind, ptr);
  }
};

class FMempMisuseTest : public FMempTest {
 protected:
  void SetUp() override {
    FMempTest::SetUp();
    ASSERT_EQ(FMempSetErrorHandler(memp(), &Reports::Record, &reports_),
              FMEMP_SUCCESS);
    keep_ = FMempMalloc(memp(), 256);
    ASSERT_NE(keep_, nullptr);
    Fill(keep_, 256, 200);
  }

  // One report of `kind` for `ptr`, counted; the heap and the other live
  // block are intact.
  void ExpectReported(int kind, const void* ptr, u64 invalid_frees = 1) {
    ASSERT_EQ(reports_.seen.size(), invalid_frees);
    EXPECT_EQ(reports_.seen.back().first, kind);
    EXPECT_EQ(reports_.seen.back().second, ptr);
    EXPECT_EQ(Usage(memp()).invalid_frees, invalid_frees);
    EXPECT_EQ(FMempCheck(memp()), FMEMP_SUCCESS);
    EXPECT_TRUE(HasFill(keep_, 256, 200));
  }

  Reports reports_;
  void* keep_ = nullptr;
};

TEST_F(FMempMisuseTest, ForeignPointerFreeIsReported) {
  alignas(16) static uint8_t foreign[256];
  const FMempUsage before = Usage(memp());
  FMempFree(memp(), foreign + 16);
  ExpectReported(FMEMP_MISUSE_FOREIGN_POINTER, foreign + 16);
  EXPECT_EQ(Usage(memp()).used, before.used);
  EXPECT_EQ(Usage(memp()).live_blocks, 1u);
}

TEST_F(FMempMisuseTest, ForeignPointerReallocIsReportedAndReturnsNull) {
  alignas(16) static uint8_t foreign[256];
  EXPECT_EQ(FMempRealloc(memp(), foreign + 32, 100), nullptr);
  ExpectReported(FMEMP_MISUSE_FOREIGN_POINTER, foreign + 32);
}

TEST_F(FMempMisuseTest, InteriorPointerFreeIsReported) {
  uint8_t* p = static_cast<uint8_t*>(FMempMalloc(memp(), 512));
  ASSERT_NE(p, nullptr);
  Fill(p, 512, 5);
  FMempFree(memp(), p + 64);
  ExpectReported(FMEMP_MISUSE_INVALID_FREE, p + 64);
  FMempFree(memp(), p + 3);  // unaligned as well
  ExpectReported(FMEMP_MISUSE_INVALID_FREE, p + 3, 2);
  EXPECT_TRUE(HasFill(p, 512, 5));
  EXPECT_EQ(Usage(memp()).live_blocks, 2u);
  FMempFree(memp(), p);
  EXPECT_EQ(Usage(memp()).live_blocks, 1u);
  EXPECT_EQ(reports_.seen.size(), 2u);
}

TEST_F(FMempMisuseTest, DoubleFreeIsReported) {
  void* p = FMempMalloc(memp(), 128);
  void* after = FMempMalloc(memp(), 128);  // p stays a block of its own
  ASSERT_NE(p, nullptr);
  ASSERT_NE(after, nullptr);
  Fill(after, 128, 1);
  FMempFree(memp(), p);
  EXPECT_TRUE(reports_.seen.empty());
  FMempFree(memp(), p);
  ExpectReported(FMEMP_MISUSE_DOUBLE_FREE, p);
  EXPECT_TRUE(HasFill(after, 128, 1));
  EXPECT_EQ(Usage(memp()).live_blocks, 2u);
  FMempFree(memp(), after);
}

TEST_F(FMempMisuseTest, DoubleFreeOfAMergedBlockIsReported) {
  // p is the last block: freeing it merges it with the free rest.
  void* p = FMempMalloc(memp(), 128);
  ASSERT_NE(p, nullptr);
  FMempFree(memp(), p);
  FMempFree(memp(), p);
  ExpectReported(FMEMP_MISUSE_DOUBLE_FREE, p);
  EXPECT_EQ(Usage(memp()).live_blocks, 1u);
}

TEST_F(FMempMisuseTest, NullHandlerRestoresTheDefaultStderrLine) {
  ASSERT_EQ(FMempSetErrorHandler(memp(), nullptr, nullptr), FMEMP_SUCCESS);
  alignas(16) static uint8_t foreign[64];
  testing::internal::CaptureStderr();
  FMempFree(memp(), foreign);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("fmemp"));
  EXPECT_THAT(err, HasSubstr(PointerText(foreign)));
  EXPECT_TRUE(reports_.seen.empty());
  EXPECT_EQ(Usage(memp()).invalid_frees, 1u);
}

// FMempSetErrorHandler(NULL) must restore the default for the FMemp, whatever
// policy it was initialised with earlier.
TEST(FMempErrorHandlerTest, NullHandlerRestoresDefaultAcrossPolicyChanges) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  Reports reports;
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempSetErrorHandler(memp, &Reports::Record, &reports),
            FMEMP_SUCCESS);
  FMempRemove(memp);
  ASSERT_EQ(FMempInitWithPolicy(memp, buffer.begin(), buffer.end(),
                                FMEMP_POLICY_SPINLOCK),
            FMEMP_SUCCESS);
  ASSERT_EQ(FMempSetErrorHandler(memp, nullptr, nullptr), FMEMP_SUCCESS);
  FMempRemove(memp);
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  alignas(16) static uint8_t foreign[64];
  testing::internal::CaptureStderr();
  FMempFree(memp, foreign);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(reports.seen.empty())
      << "the handler replaced by NULL was called";
  EXPECT_THAT(err, HasSubstr(PointerText(foreign)));
}

// A call that fails changes nothing (fmemp.h, "Failure"): a handler set while
// the FMemp is not initialised must not be installed by a later init.
TEST(FMempErrorHandlerTest, FailedSetErrorHandlerInstallsNothing) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  Reports reports;
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  FMempRemove(memp);
  ASSERT_EQ(FMempSetErrorHandler(memp, &Reports::Record, &reports),
            FMEMP_ERR_NOT_INIT);
  ASSERT_EQ(FMempInit(memp, buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  alignas(16) static uint8_t foreign[64];
  testing::internal::CaptureStderr();
  FMempFree(memp, foreign);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(reports.seen.empty())
      << "FMempSetErrorHandler returned FMEMP_ERR_NOT_INIT, yet its handler "
         "was installed by the next FMempInit";
  EXPECT_THAT(err, HasSubstr(PointerText(foreign)));
}

// --- Regions ---

TEST_F(FMempTest, AddRegionOverlapIsRejected) {
  Buffer other(kBufferBytes);
  ASSERT_EQ(FMempAddRegion(memp(), other.begin(), other.end()), FMEMP_SUCCESS);
  const FMempUsage before = Usage(memp());
  uint8_t* const b = buffer_.begin();
  uint8_t* const e = buffer_.end();
  const std::vector<std::pair<void*, void*>> overlapping = {
      {b, e},                             // identical
      {b + 4096, b + 8192},               // inside
      {b - 16, e + 16},                   // around (the bytes are not touched)
      {b - 4096, b + 16},                 // over the start
      {e - 16, e + 4096},                 // over the end
      {other.begin() + 100, other.end()}  // inside the second region
  };
  for (const auto& [begin, end] : overlapping) {
    EXPECT_EQ(FMempAddRegion(memp(), begin, end), FMEMP_ERR_REGION_OVERLAP)
        << begin << " " << end;
  }
  const FMempUsage after = Usage(memp());
  EXPECT_EQ(after.regions, 2u);
  EXPECT_EQ(after.total, before.total);
  EXPECT_EQ(FMempRegionCount(memp()), 2u);
  EXPECT_EQ(FMempCheck(memp()), FMEMP_SUCCESS);
}

TEST_F(FMempTest, AddRegionBadRangeIsInvalidBuf) {
  Buffer other(kBufferBytes);
  uint8_t* const b = other.begin();
  EXPECT_EQ(FMempAddRegion(memp(), nullptr, b + 4096), FMEMP_ERR_INVALID_BUF);
  EXPECT_EQ(FMempAddRegion(memp(), b, nullptr), FMEMP_ERR_INVALID_BUF);
  EXPECT_EQ(FMempAddRegion(memp(), b + 4096, b), FMEMP_ERR_INVALID_BUF);
  EXPECT_EQ(FMempAddRegion(memp(), b + 64, b + 64), FMEMP_ERR_INVALID_BUF);
  EXPECT_EQ(FMempAddRegion(memp(), b, b + 40), FMEMP_ERR_INVALID_BUF);
  EXPECT_EQ(FMempRegionCount(memp()), 1u);
  // The range itself is fine.
  EXPECT_EQ(FMempAddRegion(memp(), b, other.end()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp()), 2u);
}

TEST_F(FMempTest, RemoveUnknownRegionIsNotFound) {
  Buffer other(kBufferBytes);
  EXPECT_EQ(FMempRemoveRegion(memp(), other.begin()),
            FMEMP_ERR_REGION_NOT_FOUND);
  EXPECT_EQ(FMempRemoveRegion(memp(), buffer_.begin() + 16),
            FMEMP_ERR_REGION_NOT_FOUND);
  EXPECT_EQ(FMempRemoveRegion(memp(), nullptr), FMEMP_ERR_REGION_NOT_FOUND);
  EXPECT_EQ(FMempRegionCount(memp()), 1u);
}

TEST(FMempRegionTest, RemoveBusyRegionIsRefusedThenSucceedsWhenEmpty) {
  Buffer small(4 * 1024), large(64 * 1024);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, small.begin(), small.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, large.begin(), large.end()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp), 2u);
  void* p = FMempMalloc(memp, 16 * 1024);  // only fits in `large`
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(large.Contains(p));
  Fill(p, 16 * 1024, 21);
  const FMempUsage before = Usage(memp);

  EXPECT_EQ(FMempRemoveRegion(memp, large.begin()), FMEMP_ERR_REGION_BUSY);
  const FMempUsage after = Usage(memp);
  EXPECT_EQ(after.regions, 2u);
  EXPECT_EQ(after.total, before.total);
  EXPECT_EQ(after.used, before.used);
  EXPECT_EQ(after.live_blocks, 1u);
  EXPECT_TRUE(HasFill(p, 16 * 1024, 21));
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  void* q = FMempRealloc(memp, p, 20 * 1024);  // the region still serves
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(HasFill(q, 16 * 1024, 21));

  FMempFree(memp, q);
  EXPECT_EQ(FMempRemoveRegion(memp, large.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp), 1u);
  EXPECT_EQ(Usage(memp).total, RegionUsage(memp, 0).total);
  EXPECT_EQ(FMempRemoveRegion(memp, large.begin()), FMEMP_ERR_REGION_NOT_FOUND);
  // No later allocation lands in the removed region.
  EXPECT_EQ(FMempMalloc(memp, 16 * 1024), nullptr);
  std::vector<void*> blocks;
  for (;;) {
    void* r = FMempMalloc(memp, 32);
    if (r == nullptr) break;
    EXPECT_FALSE(large.Contains(r));
    EXPECT_TRUE(small.Contains(r));
    blocks.push_back(r);
  }
  EXPECT_GT(blocks.size(), 10u);
  for (void* r : blocks) FMempFree(memp, r);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempRegionTest, InitialRegionCanBeRemovedWhenEmpty) {
  Buffer first(kBufferBytes), second(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, first.begin() + 1, first.end()), FMEMP_SUCCESS);
  void* p = FMempMalloc(memp, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(FMempRemoveRegion(memp, first.begin() + 1), FMEMP_ERR_REGION_BUSY);
  FMempFree(memp, p);
  EXPECT_EQ(FMempRemoveRegion(memp, first.begin() + 1), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp), 0u);
  EXPECT_EQ(Usage(memp).total, 0u);
  EXPECT_EQ(FMempMalloc(memp, 16), nullptr);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  // Still initialised: another region makes it usable again.
  ASSERT_EQ(FMempAddRegion(memp, second.begin(), second.end()), FMEMP_SUCCESS);
  void* q = FMempMalloc(memp, 100);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(second.Contains(q));
  FMempFree(memp, q);
}

TEST(FMempRegionTest, ProbeRegionFieldsAreConsistent) {
  Buffer a(16 * 1024), b(64 * 1024), c(8 * 1024);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, a.begin(), a.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, b.begin(), b.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, c.begin(), c.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempRegionCount(memp), 3u);
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) {
    void* p = FMempMalloc(memp, 100 + 37 * i);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
  }
  for (size_t i = 0; i < blocks.size(); i += 3) FMempFree(memp, blocks[i]);

  const FMempUsage usage = Usage(memp);
  u64 total = 0, used = 0, live = 0;
  void* previous_begin = nullptr;
  for (u32 i = 0; i < 3; ++i) {
    const FMempRegionUsage r = RegionUsage(memp, i);
    EXPECT_EQ(r.used + r.free_bytes, r.total) << i;
    EXPECT_GE(r.max_used, r.used) << i;
    EXPECT_LE(r.largest_free, r.free_bytes) << i;
    EXPECT_LT(previous_begin, r.begin) << "regions in address order";
    previous_begin = r.begin;
    const Buffer* owner = r.begin == a.begin()   ? &a
                          : r.begin == b.begin() ? &b
                                                 : &c;
    EXPECT_EQ(r.begin, owner->begin());
    EXPECT_EQ(r.end, owner->end());
    EXPECT_LE(r.total, owner->size());
    total += r.total;
    used += r.used;
    live += r.live_blocks;
    if (r.largest_free > 0) {
      void* p = FMempMalloc(memp, r.largest_free);
      EXPECT_NE(p, nullptr)
          << "region " << i << " largest_free " << r.largest_free;
      FMempFree(memp, p);
    }
  }
  EXPECT_EQ(total, usage.total);
  EXPECT_EQ(used, usage.used);
  EXPECT_EQ(live, usage.live_blocks);
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (i % 3 != 0) FMempFree(memp, blocks[i]);
  }
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
}

TEST(FMempPrefaultTest, PopulatesWithoutChangingAnything) {
  Buffer buffer(256 * 1024);
  EXPECT_EQ(FMempPrefault(buffer.begin(), buffer.end()), FMEMP_SUCCESS)
      << "before init";
  Pool pool;
  ASSERT_EQ(FMempInit(pool.get(), buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  auto* block = static_cast<uint8_t*>(FMempMalloc(pool.get(), 5000));
  ASSERT_NE(block, nullptr);
  std::memset(block, 0x6b, 5000);
  const FMempUsage before = Usage(pool.get());
  // On a pool in use: the blocks, the headers and the free lists survive.
  EXPECT_EQ(FMempPrefault(buffer.begin(), buffer.end()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempCheck(pool.get()), FMEMP_SUCCESS);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(block[i], 0x6b) << i;
  EXPECT_EQ(Usage(pool.get()).used, before.used);
  FMempFree(pool.get(), block);
  EXPECT_EQ(FMempPrefault(buffer.begin(), buffer.begin()), FMEMP_SUCCESS)
      << "an empty range";
}

TEST(FMempPrefaultTest, RefusesBadRanges) {
  Buffer buffer(8192);
  EXPECT_EQ(FMempPrefault(nullptr, buffer.end()), FMEMP_ERR_INVALID_BUF);
  EXPECT_EQ(FMempPrefault(buffer.end(), buffer.begin()), FMEMP_ERR_INVALID_BUF);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* read_only =
      mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(read_only, MAP_FAILED);
  if (fmemp::PrefaultUsesMadvise()) {
    EXPECT_EQ(FMempPrefault(read_only, static_cast<char*>(read_only) + page),
              FMEMP_ERR_INVALID_BUF);
  }
  munmap(read_only, page);
}

TEST_F(FMempTest, LargestFreeIsExactInASingleRegion) {
  std::vector<void*> blocks;
  blocks.reserve(40);
  for (int i = 0; i < 40; ++i) blocks.push_back(FMempMalloc(memp(), 700));
  for (size_t i = 0; i < blocks.size(); i += 2) FMempFree(memp(), blocks[i]);
  const FMempRegionUsage r = RegionUsage(memp(), 0);
  ASSERT_GT(r.largest_free, 0u);
  EXPECT_EQ(FMempMalloc(memp(), r.largest_free + 1), nullptr);
  void* p = FMempMalloc(memp(), r.largest_free);
  EXPECT_NE(p, nullptr);
  FMempFree(memp(), p);
  for (size_t i = 1; i < blocks.size(); i += 2) FMempFree(memp(), blocks[i]);
}

TEST_F(FMempTest, ProbeRegionBadIndexOrNullUsageIsInvalidArg) {
  FMempRegionUsage usage;
  EXPECT_EQ(FMempProbeRegion(memp(), 1, &usage), FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempProbeRegion(memp(), 0xFFFFFFFFu, &usage),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempProbeRegion(memp(), 0, nullptr), FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempProbeRegion(memp(), 0, &usage), FMEMP_SUCCESS);
}

TEST_F(FMempTest, RegionCountFollowsAddAndRemove) {
  Buffer b(8192), c(8192);
  EXPECT_EQ(FMempRegionCount(memp()), 1u);
  ASSERT_EQ(FMempAddRegion(memp(), b.begin(), b.end()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp()), 2u);
  ASSERT_EQ(FMempAddRegion(memp(), c.begin(), c.end()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp()), 3u);
  EXPECT_EQ(Usage(memp()).regions, 3u);
  ASSERT_EQ(FMempRemoveRegion(memp(), b.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp()), 2u);
  ASSERT_EQ(FMempRemoveRegion(memp(), c.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempRegionCount(memp()), 1u);
}

// --- FMempInitWithPolicy ---

class FMempPolicyTest : public testing::TestWithParam<FMempPolicy> {};

TEST_P(FMempPolicyTest, WorksEndToEnd) {
  Buffer buffer(kBufferBytes), extra(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInitWithPolicy(memp, buffer.begin(), buffer.end(), GetParam()),
            FMEMP_SUCCESS);
  EXPECT_EQ(memp->is_ready, FT_COMPONENT_IS_READY);
  ASSERT_EQ(FMempAddRegion(memp, extra.begin(), extra.end()), FMEMP_SUCCESS);
  void* a = FMempMalloc(memp, 100);
  void* b = FMempCalloc(memp, 10, 10);
  void* c = FMempMallocAlign(memp, 100, 128);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(IsAligned(c, 128));
  Fill(a, 100, 8);
  a = FMempRealloc(memp, a, 3000);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(HasFill(a, 100, 8));
  EXPECT_EQ(Usage(memp).live_blocks, 3u);
  const std::string listing = ListAll(memp);
  EXPECT_THAT(listing, HasSubstr(BlockText(a)));
  EXPECT_THAT(listing, HasSubstr("integrity check: OK"));
  FMempFree(memp, a);
  FMempFree(memp, b);
  FMempFree(memp, c);
  u32 used = 1;
  FMemProbe(memp, nullptr, &used, nullptr);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(FMempRemoveRegion(memp, extra.begin()), FMEMP_SUCCESS);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  FMempRemove(memp);
  ExpectInert(memp, buffer.begin() + 64);
  // Another policy on the same FMemp.
  const FMempPolicy next = GetParam() == FMEMP_POLICY_MUTEX
                               ? FMEMP_POLICY_SINGLE_THREAD
                               : FMEMP_POLICY_MUTEX;
  ASSERT_EQ(FMempInitWithPolicy(memp, buffer.begin(), buffer.end(), next),
            FMEMP_SUCCESS);
  void* d = FMempMalloc(memp, 100);
  EXPECT_NE(d, nullptr);
  FMempFree(memp, d);
  EXPECT_EQ(Usage(memp).used, 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, FMempPolicyTest,
                         testing::Values(FMEMP_POLICY_MUTEX,
                                         FMEMP_POLICY_SPINLOCK,
                                         FMEMP_POLICY_SINGLE_THREAD,
                                         FMEMP_POLICY_THREAD_CACHE,
                                         FMEMP_POLICY_THREAD_HEAPS),
                         [](const testing::TestParamInfo<FMempPolicy>& info) {
                           switch (info.param) {
                             case FMEMP_POLICY_THREAD_HEAPS:
                               return std::string("ThreadHeaps");
                             case FMEMP_POLICY_THREAD_CACHE:
                               return std::string("ThreadCache");
                             case FMEMP_POLICY_MUTEX:
                               return std::string("Mutex");
                             case FMEMP_POLICY_SPINLOCK:
                               return std::string("SpinLock");
                             case FMEMP_POLICY_SINGLE_THREAD:
                               return std::string("SingleThread");
                           }
                           return std::string("Unknown");
                         });

TEST(FMempPolicyErrorTest, InvalidPolicyIsInvalidArg) {
  Buffer buffer(kBufferBytes);
  Pool pool;
  // C++ cannot hold an FMempPolicy outside 0..4; C callers can pass any
  // int (raw_policy_init.c does).
  EXPECT_EQ(InitWithRawPolicy(pool.get(), buffer.begin(), buffer.end(), 5),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(InitWithRawPolicy(pool.get(), buffer.begin(), buffer.end(), -1),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(pool.get()->priv, nullptr);
  ExpectInert(pool.get(), buffer.begin() + 64);
  EXPECT_EQ(FMempInit(pool.get(), buffer.begin(), buffer.end()), FMEMP_SUCCESS);
}

// --- FMemListAll ---

TEST(FMemListAllTest, ListsRegionsBlocksTotalsAndCheck) {
  Buffer a(kBufferBytes), b(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, a.begin(), a.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, b.begin(), b.end()), FMEMP_SUCCESS);
  std::vector<void*> blocks;
  blocks.push_back(FMempMalloc(memp, 100));
  blocks.push_back(FMempMallocAlign(memp, 100, 256));
  blocks.push_back(FMempCalloc(memp, 3, 50));
  blocks.push_back(FMempMalloc(memp, 40 * 1024));
  blocks.push_back(FMempMalloc(memp, 40 * 1024));  // in the other region
  void* freed = FMempMalloc(memp, 64);
  FMempFree(memp, freed);
  for (void* p : blocks) ASSERT_NE(p, nullptr);

  const std::string listing = ListAll(memp);
  EXPECT_THAT(listing, HasSubstr("region 0 ["));
  EXPECT_THAT(listing, HasSubstr("region 1 ["));
  EXPECT_THAT(listing, Not(HasSubstr("region 2 [")));
  EXPECT_THAT(listing, HasSubstr(PointerText(a.begin())));
  EXPECT_THAT(listing, HasSubstr(PointerText(b.begin())));
  for (void* p : blocks) {
    EXPECT_THAT(listing, HasSubstr(BlockText(p))) << p;
  }
  EXPECT_THAT(listing, Not(HasSubstr(BlockText(freed))));
  EXPECT_THAT(listing, HasSubstr("total:"));
  EXPECT_THAT(listing, HasSubstr("integrity check: OK"));
  for (void* p : blocks) FMempFree(memp, p);
  EXPECT_THAT(ListAll(memp), Not(HasSubstr(BlockText(blocks[0]))));
}

TEST(FMemListAllTest, ListAllToSendsTheSameLinesToTheSink) {
  Buffer a(kBufferBytes), b(kBufferBytes);
  Pool pool;
  FMemp* memp = pool.get();
  ASSERT_EQ(FMempInit(memp, a.begin(), a.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempAddRegion(memp, b.begin(), b.end()), FMEMP_SUCCESS);
  void* p = FMempMalloc(memp, 100);
  void* q = FMempMallocTag(memp, 200, "somewhere.c", 1234, "note");
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);

  std::vector<std::string> lines;
  ASSERT_EQ(FMemListAllTo(memp, &CollectLine, &lines), FMEMP_SUCCESS);
  std::string joined;
  for (const std::string& line : lines) {
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    joined += line + "\n";
  }
  EXPECT_EQ(joined, ListAll(memp));
  ASSERT_GE(lines.size(), 4u);
  EXPECT_THAT(lines[0], HasSubstr("region 0 ["));
  EXPECT_THAT(joined, HasSubstr("region 1 ["));
  EXPECT_THAT(joined, HasSubstr(BlockText(p)));
  EXPECT_THAT(joined, HasSubstr("somewhere.c:1234"));
  EXPECT_THAT(joined, HasSubstr("note"));
  EXPECT_THAT(lines[lines.size() - 2], HasSubstr("total:"));
  EXPECT_EQ(lines.back(), "integrity check: OK");

  EXPECT_EQ(FMemListAllTo(memp, nullptr, nullptr), FMEMP_ERR_INVALID_ARG);
  FMempFree(memp, p);
  FMempFree(memp, q);
}

// --- Out of memory ---

// What the handler saw; optionally adds `spare` as a region and says retry.
struct Oom {
  FMemp* memp = nullptr;
  void* spare_begin = nullptr;
  void* spare_end = nullptr;
  std::vector<std::pair<fsize_t, fsize_t>> calls;
  static int Handle(void* user, fsize_t size, fsize_t align) {
    Oom* self = static_cast<Oom*>(user);
    self->calls.emplace_back(size, align);
    if (self->spare_begin == nullptr) return 0;
    // Called without the pool's lock: calling back in must not deadlock.
    const FError added =
        FMempAddRegion(self->memp, self->spare_begin, self->spare_end);
    self->spare_begin = nullptr;
    return added == FMEMP_SUCCESS ? 1 : 0;
  }
};

TEST(FMempOomTest, HandlerIsToldTheRequestAndCanAddARegion) {
  Buffer first(16 * 1024), spare(256 * 1024);
  Pool pool;
  FMemp* memp = pool.get();
  EXPECT_EQ(FMempSetOomHandler(memp, &Oom::Handle, nullptr),
            FMEMP_ERR_NOT_INIT);
  ASSERT_EQ(FMempInit(memp, first.begin(), first.end()), FMEMP_SUCCESS);
  Oom oom;
  oom.memp = memp;
  ASSERT_EQ(FMempSetOomHandler(memp, &Oom::Handle, &oom), FMEMP_SUCCESS);

  EXPECT_EQ(FMempMallocAlign(memp, 100000, 256), nullptr);
  ASSERT_EQ(oom.calls.size(), 1u);
  EXPECT_EQ(oom.calls[0].first, 100000u);
  EXPECT_EQ(oom.calls[0].second, 256u);
  EXPECT_EQ(Usage(memp).failed_allocations, 1u);

  oom.spare_begin = spare.begin();
  oom.spare_end = spare.end();
  void* big = FMempMalloc(memp, 100000);
  ASSERT_NE(big, nullptr);
  EXPECT_TRUE(spare.Contains(big));
  EXPECT_EQ(oom.calls.size(), 2u);
  EXPECT_EQ(oom.calls[1].second, 16u);
  // Served by the retry: the call did not fail.
  EXPECT_EQ(Usage(memp).failed_allocations, 1u);

  // Malformed requests never reach the handler; each fails once.
  EXPECT_EQ(FMempCalloc(memp, SIZE_MAX, 4), nullptr);
  EXPECT_EQ(FMempMallocAlign(memp, 16, 48), nullptr);
  EXPECT_EQ(oom.calls.size(), 2u);
  EXPECT_EQ(Usage(memp).failed_allocations, 3u);

  // Removed: failures are plain again.
  ASSERT_EQ(FMempSetOomHandler(memp, nullptr, nullptr), FMEMP_SUCCESS);
  EXPECT_EQ(FMempMalloc(memp, 1 << 22), nullptr);
  EXPECT_EQ(oom.calls.size(), 2u);
  EXPECT_EQ(Usage(memp).failed_allocations, 4u);
  FMempFree(memp, big);
  EXPECT_EQ(FMempCheck(memp), FMEMP_SUCCESS);
  FMempRemove(memp);
}

}  // namespace
