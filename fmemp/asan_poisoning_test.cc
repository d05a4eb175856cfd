// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The ASan debug mode (DebugOptions::asan): under --config=asan, every byte
// of a region that is not part of a live block as handed out is poisoned,
// so that AddressSanitizer itself stops a use after free, an overflow past
// the block's usable end (or, with canaries, past its requested size) and
// an underflow at the faulting access. The heap's own bookkeeping never
// trips ASan, and memory given back (a removed region, a destroyed set) is
// addressable again. The death tests run only in an ASan build and skip
// otherwise; run them with
//   bazel test --config=asan //fmemp:asan_poisoning_test

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "fmemp/region_set.h"
#include "gtest/gtest.h"
#include "tlsf/heap.h"

namespace fmemp {
namespace {

constexpr size_t kRegionBytes = 64 << 10;

// ASan reports a manually poisoned byte as "use-after-poison".
constexpr char kAsanReport[] = "AddressSanitizer: use-after-poison";

// One byte access the compiler cannot drop.
void Poke(char* p, ptrdiff_t i) { *static_cast<volatile char*>(p + i) = 1; }
char Peek(const char* p, ptrdiff_t i) {
  return *static_cast<const volatile char*>(p + i);
}

DebugOptions Asan(bool canaries, bool poison = false) {
  DebugOptions o;
  o.asan = true;
  o.canaries = canaries;
  o.poison = poison;
  return o;
}

class AsanPoisoningTest : public ::testing::Test {
 protected:
  void Start(const DebugOptions& options) {
    set_.reset();  // before its memory goes
    buffer_.reset(new uint64_t[kRegionBytes / 8]);
    set_ = std::make_unique<RegionSet>();
    ASSERT_TRUE(set_->SetDebugOptions(options).ok());
    ASSERT_TRUE(set_->AddRegion(begin(), begin() + kRegionBytes).ok());
  }
  void SetUp() override {
    if (!tlsf::kHeapAsanBuild) {
      GTEST_SKIP() << "needs AddressSanitizer (--config=asan)";
    }
  }
  char* begin() { return reinterpret_cast<char*>(buffer_.get()); }
  char* Allocate(size_t bytes) {
    return static_cast<char*>(set_->Allocate(bytes));
  }

  std::unique_ptr<uint64_t[]> buffer_;  // outlives set_
  std::unique_ptr<RegionSet> set_;
};

TEST_F(AsanPoisoningTest, WriteAfterFreeIsCaughtByAsan) {
  Start(Asan(/*canaries=*/false));
  char* p = Allocate(100);
  char* guard = Allocate(16);
  ASSERT_TRUE(set_->Free(p));
  EXPECT_DEATH(Poke(p, 50), kAsanReport);
  EXPECT_DEATH(Poke(p, 0), kAsanReport) << "the free-list links too";
  set_->Free(guard);
}

TEST_F(AsanPoisoningTest, ReadAfterFreeIsCaughtByAsan) {
  Start(Asan(/*canaries=*/true, /*poison=*/true));
  char* p = Allocate(100);
  char* guard = Allocate(16);
  ASSERT_TRUE(set_->Free(p));
  EXPECT_DEATH(Peek(p, 99), kAsanReport);
  set_->Free(guard);
}

TEST_F(AsanPoisoningTest, OverflowPastUsableSizeIsCaughtByAsan) {
  Start(Asan(/*canaries=*/false));
  char* p = Allocate(100);
  char* next = Allocate(100);  // live: the byte past p is next's header
  const size_t usable = set_->UsableSize(p);
  ASSERT_GE(usable, 100u);
  std::memset(p, 0x5a, usable);  // all of it is the caller's
  EXPECT_DEATH(Poke(p, usable), kAsanReport);
  ASSERT_TRUE(set_->Free(next));
  EXPECT_DEATH(Poke(p, usable + 16), kAsanReport) << "into free space";
  set_->Free(p);
}

TEST_F(AsanPoisoningTest, OverflowPastTheRequestIsCaughtWithCanaries) {
  Start(Asan(/*canaries=*/true));
  char* p = Allocate(13);
  ASSERT_EQ(set_->UsableSize(p), 13u);
  std::memset(p, 0x5a, 13);
  EXPECT_DEATH(Poke(p, 13), kAsanReport);
  // Shrinking in place poisons the bytes given up.
  ASSERT_EQ(set_->Reallocate(p, 5), p);
  Poke(p, 4);
  EXPECT_DEATH(Poke(p, 5), kAsanReport);
  // Growing unpoisons exactly the new request.
  ASSERT_EQ(set_->Reallocate(p, 9), p);
  Poke(p, 8);
  EXPECT_DEATH(Poke(p, 9), kAsanReport);
  EXPECT_TRUE(set_->Free(p));
}

TEST_F(AsanPoisoningTest, UnderflowIsCaughtByAsan) {
  Start(Asan(/*canaries=*/true));
  char* p = static_cast<char*>(set_->AllocateAligned(64, 40));
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(Poke(p, -1), kAsanReport);
  Start(Asan(/*canaries=*/false));
  p = Allocate(40);
  EXPECT_DEATH(Poke(p, -1), kAsanReport) << "the header";
}

// The heap reads and writes its headers, links, back pointers and canaries
// in poisoned memory; none of that may reach ASan.
TEST_F(AsanPoisoningTest, TheHeapsOwnBookkeepingNeverTripsAsan) {
  for (const DebugOptions& options :
       {Asan(false), Asan(true), Asan(true, true), Asan(false, true)}) {
    Start(options);
    std::vector<char*> live;
    uint64_t x = 12345;
    for (int i = 0; i < 20000; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const size_t bytes = (x >> 33) % 2000;
      const int op = static_cast<int>((x >> 20) % 4);
      if (op == 0 || live.empty()) {
        char* p = op == 0 ? Allocate(bytes)
                          : static_cast<char*>(set_->AllocateAligned(
                                size_t{16} << ((x >> 40) % 5), bytes));
        if (p != nullptr) {
          std::memset(p, 0x11, set_->UsableSize(p));
          live.push_back(p);
        }
      } else if (op == 1) {
        const size_t k = (x >> 8) % live.size();
        char* q = static_cast<char*>(set_->Reallocate(live[k], bytes + 1));
        if (q != nullptr) {
          std::memset(q, 0x22, set_->UsableSize(q));
          live[k] = q;
        }
      } else {
        const size_t k = (x >> 8) % live.size();
        ASSERT_TRUE(set_->Free(live[k]));
        live[k] = live.back();
        live.pop_back();
      }
    }
    ASSERT_TRUE(set_->Check().ok()) << set_->Check();
    std::string listing;
    set_->List([&](absl::string_view line) { listing.append(line); });
    for (char* p : live) ASSERT_TRUE(set_->Free(p));
    EXPECT_EQ(set_->Probe().invalid_frees, 0u);
  }
}

TEST_F(AsanPoisoningTest, MemoryGivenBackIsAddressableAgain) {
  Start(Asan(/*canaries=*/true, /*poison=*/true));
  char* p = Allocate(1000);
  ASSERT_TRUE(set_->Free(p));
  ASSERT_TRUE(set_->RemoveRegion(begin()).ok());
  std::memset(begin(), 0, kRegionBytes);

  Start(Asan(/*canaries=*/true));
  Allocate(1000);  // live when the set goes
  set_.reset();
  std::memset(begin(), 0, kRegionBytes);

  Start(Asan(/*canaries=*/false));
  Allocate(1000);
  set_->Clear();
  std::memset(begin(), 0, kRegionBytes);
}

// Without ASan the option is accepted and does nothing.
TEST(AsanOptionWithoutAsanTest, IsIgnored) {
  if (tlsf::kHeapAsanBuild) GTEST_SKIP() << "an ASan build";
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[kRegionBytes / 8]);
  char* const begin = reinterpret_cast<char*>(buffer.get());
  RegionSet set;
  ASSERT_TRUE(set.SetDebugOptions(Asan(/*canaries=*/false)).ok());
  ASSERT_TRUE(set.AddRegion(begin, begin + kRegionBytes).ok());
  char* p = static_cast<char*>(set.Allocate(100));
  ASSERT_TRUE(set.Free(p));
  Poke(p, 50);  // not caught, not reported: no mode checks it
  EXPECT_TRUE(set.Check().ok());
}

}  // namespace
}  // namespace fmemp
