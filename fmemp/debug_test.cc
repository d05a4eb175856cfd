// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the debug modes at the front-end: RegionSet::SetDebugOptions
// applies them to every region's heap; their findings reach the error and
// report handlers with the block's address, size and, for a tagged block,
// the file and line that allocated it; Check and CheckRegionOf name the
// damaged block and the region. Memp reaches them through WithRegions. The
// heap-level tests are tlsf/heap_debug_test.cc.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "fmemp/memp.h"
#include "fmemp/region_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/no_lock.h"

namespace fmemp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// RegionSet::CheckRegionOf as the front-ends' absl::Status: the damage it
// describes, or its result.
absl::Status CheckRegionOf(const RegionSet& set, const void* ptr) {
  tlsf::CheckFindings damage;
  const ManagementResult result = set.CheckRegionOf(ptr, &damage);
  return CheckToStatus(result, damage);
}

constexpr size_t kRegionBytes = 64 << 10;

// Records every report with its details (the tag's strings are static).
struct Reports {
  std::vector<MempReport> seen;
  static void Record(void* context, const MempReport& report) {
    static_cast<Reports*>(context)->seen.push_back(report);
  }
};

struct Errors {
  std::vector<std::pair<MempError, const void*>> seen;
  static void Record(void* context, MempError error, const void* ptr) {
    static_cast<Errors*>(context)->seen.emplace_back(error, ptr);
  }
};

DebugOptions Options(bool poison, bool canaries) {
  DebugOptions o;
  o.poison = poison;
  o.canaries = canaries;
  return o;
}

class RegionSetDebugTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(set_.SetDebugOptions(Options(true, true)).ok());
    ASSERT_TRUE(set_.AddRegion(a_, a_ + kRegionBytes).ok());
    ASSERT_TRUE(set_.AddRegion(b_, b_ + kRegionBytes).ok());
    set_.SetReportHandler(&Reports::Record, &reports_);
  }

  static bool In(const char* region, const void* p) {
    return p >= static_cast<const void*>(region) &&
           p < static_cast<const void*>(region + kRegionBytes);
  }

  // A block of `bytes` outside `region`, filling that region first if need
  // be (the set chooses regions by fit, not by order).
  char* AllocateOutside(const char* region, size_t bytes,
                        std::vector<void*>* filler) {
    for (;;) {
      char* p = static_cast<char*>(set_.Allocate(bytes));
      if (p == nullptr || !In(region, p)) return p;
      filler->push_back(p);
    }
  }

  alignas(64) char a_[kRegionBytes];
  alignas(64) char b_[kRegionBytes];
  RegionSet set_;
  Reports reports_;
};

TEST(RegionSetDebugOptionsTest, SetBeforeTheFirstRegionOnly) {
  RegionSet set;
  EXPECT_EQ(set.debug_options(), DebugOptions());
  ASSERT_TRUE(set.SetDebugOptions(Options(true, false)).ok());
  alignas(64) static char buffer[kRegionBytes];
  ASSERT_TRUE(set.AddRegion(buffer, buffer + kRegionBytes).ok());
  EXPECT_EQ(set.SetDebugOptions(Options(false, true)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(set.debug_options(), Options(true, false));
  // Every region's heap runs the set's modes: a fresh block is poisoned.
  auto* p = static_cast<unsigned char*>(set.Allocate(64));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[0], tlsf::Heap::kAllocPattern);
  set.Free(p);
  // Clear keeps the options; an empty set takes new ones.
  set.Clear();
  EXPECT_EQ(set.debug_options(), Options(true, false));
  EXPECT_TRUE(set.SetDebugOptions(DebugOptions()).ok());
}

TEST_F(RegionSetDebugTest, CanaryReportCarriesAddressSizeAndFileLine) {
  BlockTag tag;
  tag.file = "server/session.cc";
  tag.line = 321;
  char* p = static_cast<char*>(set_.Allocate(40));
  ASSERT_NE(p, nullptr);
  set_.SetTag(p, tag);
  EXPECT_EQ(set_.UsableSize(p), 40u);
  p[40] = '!';  // overflow by one byte

  const absl::Status check = set_.Check();
  EXPECT_TRUE(absl::IsDataLoss(check)) << check;
  EXPECT_THAT(std::string(check.message()), HasSubstr("server/session.cc:321"));
  EXPECT_THAT(std::string(check.message()), HasSubstr("(40 bytes)"));
  EXPECT_TRUE(reports_.seen.empty()) << "Check reports only to its caller";

  EXPECT_FALSE(set_.Free(p));
  ASSERT_EQ(reports_.seen.size(), 1u);
  const MempReport& r = reports_.seen[0];
  EXPECT_EQ(r.error, MempError::kCanaryDamaged);
  EXPECT_EQ(r.ptr, p);
  EXPECT_EQ(r.size, 40u);
  EXPECT_EQ(r.damage, p + 40);
  EXPECT_STREQ(r.tag.file, "server/session.cc");
  EXPECT_EQ(r.tag.line, 321u);
  EXPECT_THAT(FormatMempReport(r), HasSubstr("canary damaged"));
  EXPECT_THAT(FormatMempReport(r),
              HasSubstr("allocated at server/session.cc:321"));
  EXPECT_EQ(set_.Probe().invalid_frees, 1u);
  EXPECT_EQ(set_.Probe().live_blocks, 1u) << "the damaged block stays";

  // A realloc is refused the same way, and the block stays where it is.
  EXPECT_EQ(set_.Reallocate(p, 10000), nullptr);
  ASSERT_EQ(reports_.seen.size(), 2u);
  EXPECT_EQ(reports_.seen[1].error, MempError::kCanaryDamaged);
  EXPECT_EQ(set_.UsableSize(p), 40u);

  p[40] = static_cast<char>(tlsf::Heap::kCanaryByte);  // repaired
  EXPECT_TRUE(set_.Check().ok());
  EXPECT_TRUE(set_.Free(p));
}

TEST_F(RegionSetDebugTest, UnderflowOfATaggedBlock) {
  BlockTag tag;
  tag.file = "parser.cc";
  tag.line = 7;
  char* p = static_cast<char*>(set_.AllocateAligned(64, 100));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  set_.SetTag(p, tag);
  p[-3] = static_cast<char>(~p[-3]);  // flipped: any fixed value may match
  EXPECT_FALSE(set_.Free(p));
  ASSERT_EQ(reports_.seen.size(), 1u);
  EXPECT_EQ(reports_.seen[0].error, MempError::kCanaryDamaged);
  EXPECT_EQ(reports_.seen[0].ptr, p);
  EXPECT_EQ(reports_.seen[0].size, 100u);
  EXPECT_EQ(reports_.seen[0].damage, p - 3);
  EXPECT_STREQ(reports_.seen[0].tag.file, "parser.cc");
  EXPECT_EQ(reports_.seen[0].tag.line, 7u);
}

TEST_F(RegionSetDebugTest, UseAfterFreeWriteThroughTheErrorHandler) {
  Errors errors;
  set_.SetErrorHandler(&Errors::Record, &errors);
  char* p = static_cast<char*>(set_.Allocate(300));
  char* guard = static_cast<char*>(set_.Allocate(16));
  ASSERT_TRUE(set_.Free(p));
  p[200] = 1;
  const absl::Status check = set_.Check();
  EXPECT_TRUE(absl::IsDataLoss(check)) << check;
  EXPECT_THAT(std::string(check.message()), HasSubstr("use after free"));
  EXPECT_EQ(set_.Allocate(300), p);
  ASSERT_EQ(errors.seen.size(), 1u);
  EXPECT_EQ(errors.seen[0].first, MempError::kUseAfterFreeWrite);
  EXPECT_EQ(errors.seen[0].second, p - tlsf::Heap::kCanaryHeadBytes)
      << "a free block is named by its payload";
  EXPECT_STREQ(MempErrorName(errors.seen[0].first),
               "write to freed memory (use after free)");
  EXPECT_TRUE(set_.Check().ok());
  EXPECT_TRUE(set_.Free(p));
  EXPECT_TRUE(set_.Free(guard));
}

TEST_F(RegionSetDebugTest, CheckRegionOfChecksOnlyThatRegion) {
  std::vector<void*> filler;
  char* sound = static_cast<char*>(set_.Allocate(64));
  ASSERT_NE(sound, nullptr);
  char* const sound_region = In(a_, sound) ? a_ : b_;
  char* const damaged_region = In(a_, sound) ? b_ : a_;
  char* damaged = AllocateOutside(sound_region, 64, &filler);
  ASSERT_NE(damaged, nullptr);
  ASSERT_TRUE(In(damaged_region, damaged));
  EXPECT_TRUE(CheckRegionOf(set_, sound).ok());
  EXPECT_TRUE(CheckRegionOf(set_, damaged).ok());

  damaged[64] = 0;  // an overflow in the other region
  const absl::Status s = CheckRegionOf(set_, damaged);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(absl::StrFormat(
                  "region [%p, %p)", static_cast<void*>(damaged_region),
                  static_cast<void*>(damaged_region + kRegionBytes))));
  EXPECT_THAT(std::string(s.message()), HasSubstr("canary damaged"));
  // Any address in the region selects it, not only a block's.
  EXPECT_TRUE(absl::IsDataLoss(CheckRegionOf(set_, damaged_region + 7)));
  EXPECT_TRUE(CheckRegionOf(set_, sound).ok()) << "the other region is sound";
  EXPECT_TRUE(CheckRegionOf(set_, sound_region).ok());
  EXPECT_FALSE(set_.Check().ok());

  // An address outside every region.
  static char foreign[64];
  EXPECT_TRUE(absl::IsNotFound(CheckRegionOf(set_, foreign)));
  EXPECT_TRUE(absl::IsNotFound(CheckRegionOf(set_, nullptr)));
  EXPECT_TRUE(
      absl::IsNotFound(CheckRegionOf(set_, std::max(a_, b_) + kRegionBytes)));
  EXPECT_TRUE(reports_.seen.empty());

  damaged[64] = static_cast<char>(tlsf::Heap::kCanaryByte);
  EXPECT_TRUE(CheckRegionOf(set_, damaged).ok());
  for (void* p : filler) set_.Free(p);
  set_.Free(sound);
  set_.Free(damaged);
  EXPECT_TRUE(set_.Check().ok());
  EXPECT_EQ(set_.Probe().used_bytes, 0u);
}

TEST_F(RegionSetDebugTest, CheckRegionOfFindsUseAfterFreeInTheRightRegion) {
  char* p = static_cast<char*>(set_.Allocate(500));
  ASSERT_NE(p, nullptr);
  char* guard = static_cast<char*>(set_.Allocate(16));
  ASSERT_TRUE(set_.Free(p));
  p[300] = 1;
  char* const damaged_region = In(a_, p) ? a_ : b_;
  char* const sound_region = In(a_, p) ? b_ : a_;
  EXPECT_TRUE(CheckRegionOf(set_, sound_region).ok());
  const absl::Status s = CheckRegionOf(set_, damaged_region);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("use after free"));
  set_.Free(guard);
}

TEST_F(RegionSetDebugTest, ReallocAcrossRegionsKeepsContentsAndCanaries) {
  std::vector<void*> filler;
  char* p = static_cast<char*>(set_.Allocate(1000));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x3c, 1000);
  // Larger than what is left next to it: moves, maybe to the other region.
  char* q = static_cast<char*>(set_.Reallocate(p, 40000));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(set_.UsableSize(q), 40000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(q[i], 0x3c) << i;
  EXPECT_TRUE(set_.Check().ok());
  EXPECT_TRUE(reports_.seen.empty());
  set_.Free(q);
  EXPECT_EQ(set_.Probe().used_bytes, 0u);
}

TEST_F(RegionSetDebugTest, ListShowsSizesAsRequested) {
  char* p = static_cast<char*>(set_.Allocate(13));
  BlockTag tag;
  tag.file = "list.cc";
  tag.line = 5;
  set_.SetTag(p, tag);
  std::string all;
  set_.List([&](absl::string_view line) {
    all.append(line.data(), line.size());
    all += "\n";
  });
  EXPECT_THAT(all, HasSubstr(absl::StrFormat("%p       13 bytes  list.cc:5",
                                             static_cast<void*>(p))));
  EXPECT_THAT(all, HasSubstr("integrity check: OK"));
  set_.Free(p);
}

TEST(RegionSetDebugMoveTest, AttachRefusesARegionWithOtherOptions) {
  alignas(64) static char buffer[kRegionBytes];
  RegionSet plain, debug;
  ASSERT_TRUE(debug.SetDebugOptions(Options(false, true)).ok());
  ASSERT_TRUE(plain.AddRegion(buffer, buffer + kRegionBytes).ok());
  void* p = plain.Allocate(100);
  RegionSet::DetachedRegion region;
  ASSERT_TRUE(plain.Detach(buffer, &region).ok());
  EXPECT_EQ(debug.Attach(region).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(region.begin(), buffer) << "the region stays with the caller";
  ASSERT_TRUE(plain.Attach(region).ok());
  EXPECT_TRUE(plain.Free(p));
}

TEST(RegionSetDebugMoveTest, DetachAndAttachKeepTheModesAndTags) {
  alignas(64) static char buffer[kRegionBytes];
  RegionSet from, to;
  ASSERT_TRUE(from.SetDebugOptions(Options(true, true)).ok());
  ASSERT_TRUE(to.SetDebugOptions(Options(true, true)).ok());
  ASSERT_TRUE(from.AddRegion(buffer, buffer + kRegionBytes).ok());
  char* p = static_cast<char*>(from.Allocate(50));
  BlockTag tag;
  tag.file = "moved.cc";
  tag.line = 9;
  from.SetTag(p, tag);
  RegionSet::DetachedRegion region;
  ASSERT_TRUE(from.Detach(buffer, &region).ok());
  ASSERT_TRUE(to.Attach(region).ok());
  Reports reports;
  to.SetReportHandler(&Reports::Record, &reports);
  p[50] = 0;
  EXPECT_FALSE(to.Free(p));
  ASSERT_EQ(reports.seen.size(), 1u);
  EXPECT_STREQ(reports.seen[0].tag.file, "moved.cc");
  EXPECT_EQ(reports.seen[0].size, 50u);
}

TEST(RegionSetDebugDefaultTest, DefaultHandlerPrintsOneDetailedLine) {
  alignas(64) static char buffer[kRegionBytes];
  RegionSet set;
  ASSERT_TRUE(set.SetDebugOptions(Options(false, true)).ok());
  ASSERT_TRUE(set.AddRegion(buffer, buffer + kRegionBytes).ok());
  char* p = static_cast<char*>(set.Allocate(24));
  BlockTag tag;
  tag.file = "main.cc";
  tag.line = 42;
  set.SetTag(p, tag);
  p[24] = 0;
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(set.Free(p));
  EXPECT_FALSE(set.Free(buffer + 8));  // plain misuse keeps its old line
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr(absl::StrFormat(
                       "fmemp: canary damaged (overflow past the block's end "
                       "or underflow before its start): %p (24 bytes), first "
                       "damaged byte at %p (offset 24), allocated at "
                       "main.cc:42\n",
                       static_cast<void*>(p), static_cast<void*>(p + 24))));
  EXPECT_THAT(out, HasSubstr(absl::StrFormat(
                       "fmemp: pointer is not a live block (interior, foreign "
                       "or freed): %p\n",
                       static_cast<void*>(buffer + 8))));
}

// Memp reaches the modes through WithRegions (and the pass-throughs
// proposed in docs/HARDENING.md).
TEST(MempDebugTest, ModesThroughWithRegions) {
  alignas(64) static char buffer[kRegionBytes];
  Memp<sync::NoLock> memp;
  ASSERT_TRUE(memp.WithRegions([](RegionSet& r) {
                    return r.SetDebugOptions(Options(true, true));
                  })
                  .ok());
  ASSERT_TRUE(memp.AddRegion(buffer, kRegionBytes).ok());
  Errors errors;
  memp.SetErrorHandler(&Errors::Record, &errors);
  BlockTag tag;
  tag.file = "memp.cc";
  tag.line = 1;
  char* p = static_cast<char*>(memp.AllocateTagged(16, 10, tag));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(memp.UsableSize(p), 10u);
  char* z = static_cast<char*>(memp.Calloc(3, 5));
  for (int i = 0; i < 15; ++i) EXPECT_EQ(z[i], 0);
  p[10] = 1;
  EXPECT_FALSE(memp.Free(p));
  ASSERT_EQ(errors.seen.size(), 1u);
  EXPECT_EQ(errors.seen[0].first, MempError::kCanaryDamaged);
  EXPECT_FALSE(memp.Check().ok());
  const absl::Status scoped =
      memp.WithRegions([p](const RegionSet& r) { return CheckRegionOf(r, p); });
  EXPECT_TRUE(absl::IsDataLoss(scoped));
  EXPECT_THAT(std::string(scoped.message()), HasSubstr("memp.cc:1"));
  p[10] = static_cast<char>(tlsf::Heap::kCanaryByte);
  EXPECT_TRUE(memp.Free(p));
  EXPECT_TRUE(memp.Free(z));
  EXPECT_TRUE(memp.Check().ok());
  EXPECT_THAT(std::string(memp.Check().message()), Not(HasSubstr("canary")));
}

}  // namespace
}  // namespace fmemp
