// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Typed tests of fmemp::Memp over every lock policy: regions, allocation of
// every kind across regions, every error path, probes, listing, tagging, and
// (for thread-safe policies) concurrent use, which --config=tsan checks.

#include "fmemp/memp.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

using ::testing::HasSubstr;

// Memory for regions, owned by the test.
class Arena {
 public:
  explicit Arena(size_t bytes) : bytes_(bytes), data_(new char[bytes]) {}
  char* begin() { return data_.get(); }
  char* end() { return data_.get() + bytes_; }
  bool Contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= data_.get() && c < data_.get() + bytes_;
  }

 private:
  size_t bytes_;
  std::unique_ptr<char[]> data_;
};

struct Reports {
  std::vector<std::pair<MempError, const void*>> seen;
  static void Record(void* context, MempError error, const void* ptr) {
    static_cast<Reports*>(context)->seen.emplace_back(error, ptr);
  }
};

template <typename Lock>
class MempTest : public ::testing::Test {
 protected:
  MempTest() : a_(16 * 1024), b_(64 * 1024) {
    memp_.SetErrorHandler(&Reports::Record, &reports_);
    EXPECT_TRUE(memp_.AddRegion(a_.begin(), a_.end()).ok());
    EXPECT_TRUE(memp_.AddRegion(b_.begin(), b_.end()).ok());
  }

  void ExpectSound() {
    const absl::Status status = memp_.Check();
    EXPECT_TRUE(status.ok()) << status;
    const MempStats s = memp_.Probe();
    EXPECT_EQ(s.used_bytes + s.free_bytes, s.capacity_bytes);
    EXPECT_GE(s.peak_used_bytes, s.used_bytes);
  }

  bool InSomeRegion(const void* p) { return a_.Contains(p) || b_.Contains(p); }

  Arena a_, b_;
  Reports reports_;
  Memp<Lock> memp_;
};

using Policies = ::testing::Types<sync::NoLock, sync::SpinLock, sync::Mutex>;
TYPED_TEST_SUITE(MempTest, Policies);

TYPED_TEST(MempTest, RejectsBadRegionsAndChangesNothing) {
  auto& memp = this->memp_;
  const MempStats before = memp.Probe();
  Arena c(4096);
  EXPECT_EQ(memp.AddRegion(nullptr, c.end()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(memp.AddRegion(c.end(), c.begin()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(memp.AddRegion(c.begin(), c.begin()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(memp.AddRegion(c.begin(), c.begin() + 40).code(),
            absl::StatusCode::kInvalidArgument);
  // Overlaps: inside, straddling the start, straddling the end, covering.
  char* a = this->a_.begin();
  for (auto [lo, hi] : std::vector<std::pair<char*, char*>>{
           {a + 100, a + 200},
           {a - 8, a + 64},
           {this->a_.end() - 64, this->a_.end() + 4096},
           {a - 16, this->b_.end() + 16}}) {
    EXPECT_EQ(memp.AddRegion(lo, hi).code(), absl::StatusCode::kAlreadyExists);
  }
  EXPECT_EQ(memp.RemoveRegion(c.begin()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(memp.RemoveRegion(a + 16).code(), absl::StatusCode::kNotFound);
  const MempStats after = memp.Probe();
  EXPECT_EQ(after.region_count, before.region_count);
  EXPECT_EQ(after.capacity_bytes, before.capacity_bytes);
  this->ExpectSound();
}

TYPED_TEST(MempTest, AllocatesAcrossRegions) {
  auto& memp = this->memp_;
  std::vector<void*> blocks;
  bool used_a = false, used_b = false;
  while (void* p = memp.Allocate(1000)) {
    ASSERT_TRUE(this->InSomeRegion(p));
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    used_a |= this->a_.Contains(p);
    used_b |= this->b_.Contains(p);
    std::memset(p, 0x5c, 1000);
    blocks.push_back(p);
  }
  EXPECT_TRUE(used_a && used_b);
  EXPECT_GE(blocks.size(), (16u + 64u) * 1024 / 1100);
  const MempStats full = memp.Probe();
  EXPECT_EQ(full.live_blocks, blocks.size());
  EXPECT_EQ(full.failed_allocations, 1u);
  this->ExpectSound();
  for (void* p : blocks) EXPECT_TRUE(memp.Free(p));
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
  EXPECT_EQ(memp.Probe().peak_used_bytes, full.used_bytes);
  this->ExpectSound();
}

TYPED_TEST(MempTest, PerRegionProbesAddUp) {
  auto& memp = this->memp_;
  void* p = memp.Allocate(30000);  // only fits in b
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(this->b_.Contains(p));
  const RegionStatsList regions = memp.ProbeRegions();
  ASSERT_EQ(regions.size(), 2u);
  size_t capacity = 0, used = 0, live = 0;
  for (const RegionStats& r : regions) {
    capacity += r.capacity_bytes;
    used += r.used_bytes;
    live += r.live_blocks;
    EXPECT_EQ(r.used_bytes + r.free_bytes, r.capacity_bytes);
    EXPECT_GE(r.peak_used_bytes, r.used_bytes);
    void* probe = memp.Allocate(r.largest_allocatable);
    EXPECT_NE(probe, nullptr);
    memp.Free(probe);
  }
  const MempStats total = memp.Probe();
  EXPECT_EQ(capacity, total.capacity_bytes);
  EXPECT_EQ(used, total.used_bytes);
  EXPECT_EQ(live, total.live_blocks);
  EXPECT_EQ(regions[0].begin,
            static_cast<void*>(std::min(this->a_.begin(), this->b_.begin())));
  memp.Free(p);
}

TYPED_TEST(MempTest, MisuseIsReportedAndHarmless) {
  auto& memp = this->memp_;
  void* keep = memp.Allocate(64);
  std::memset(keep, 0x77, 64);
  void* p = memp.Allocate(100);
  void* q = memp.Allocate(100);
  alignas(16) static char foreign[64];
  EXPECT_FALSE(memp.Free(foreign + 16));
  EXPECT_TRUE(memp.Free(p));
  EXPECT_FALSE(memp.Free(p));
  EXPECT_FALSE(memp.Free(static_cast<char*>(q) + 32));
  EXPECT_EQ(memp.Reallocate(foreign + 16, 10), nullptr);
  EXPECT_EQ(memp.Reallocate(p, 10), nullptr);
  ASSERT_EQ(this->reports_.seen.size(), 5u);
  EXPECT_EQ(this->reports_.seen[0].first, MempError::kForeignPointer);
  EXPECT_EQ(this->reports_.seen[1].first, MempError::kDoubleFree);
  EXPECT_EQ(this->reports_.seen[2].first, MempError::kInvalidFree);
  EXPECT_EQ(this->reports_.seen[3].first, MempError::kForeignPointer);
  EXPECT_EQ(memp.Probe().invalid_frees, 5u);
  EXPECT_TRUE(memp.Free(nullptr));
  for (int i = 0; i < 64; ++i) ASSERT_EQ(static_cast<char*>(keep)[i], 0x77);
  this->ExpectSound();
  memp.Free(q);
  memp.Free(keep);
}

TYPED_TEST(MempTest, RemoveRegionRefusedWhileLive) {
  auto& memp = this->memp_;
  void* in_b = memp.Allocate(30000);
  ASSERT_TRUE(this->b_.Contains(in_b));
  const absl::Status refused = memp.RemoveRegion(this->b_.begin());
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("live bytes"));
  EXPECT_EQ(memp.Probe().region_count, 2u);
  memp.Free(in_b);
  ASSERT_TRUE(memp.RemoveRegion(this->b_.begin()).ok());
  EXPECT_EQ(memp.Probe().region_count, 1u);
  // Never handed out again; a pointer into it is now foreign.
  std::vector<void*> blocks;
  while (void* p = memp.Allocate(256)) {
    EXPECT_TRUE(this->a_.Contains(p));
    blocks.push_back(p);
  }
  EXPECT_FALSE(memp.Free(in_b));
  EXPECT_EQ(this->reports_.seen.back().first, MempError::kForeignPointer);
  for (void* p : blocks) memp.Free(p);
  // It can come back.
  EXPECT_TRUE(memp.AddRegion(this->b_.begin(), this->b_.end()).ok());
  this->ExpectSound();
}

TYPED_TEST(MempTest, ReallocMovesAcrossRegionsKeepingAlignment) {
  auto& memp = this->memp_;
  // Fill region a with an aligned block and a fence, then grow the block
  // beyond anything region a can hold.
  size_t b_largest = 0;
  for (const RegionStats& r : memp.ProbeRegions()) {
    if (r.begin == this->b_.begin()) b_largest = r.largest_allocatable;
  }
  void* big_b = memp.Allocate(b_largest);  // all of b, at first
  ASSERT_TRUE(this->b_.Contains(big_b));
  void* p = memp.AllocateAligned(256, 100);
  ASSERT_TRUE(this->a_.Contains(p));
  std::memset(p, 0x42, 100);
  memp.Free(big_b);
  void* moved = memp.Reallocate(p, 20000);
  ASSERT_NE(moved, nullptr);
  EXPECT_TRUE(this->b_.Contains(moved));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(moved) % 256, 0u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(moved)[i], 0x42);
  EXPECT_EQ(memp.Probe().live_blocks, 1u);
  // Impossible sizes fail and leave the block as it was.
  EXPECT_EQ(memp.Reallocate(moved, 1 << 20), nullptr);
  EXPECT_EQ(memp.Reallocate(moved, SIZE_MAX), nullptr);
  EXPECT_GE(memp.UsableSize(moved), 20000u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(moved)[i], 0x42);
  EXPECT_EQ(memp.Reallocate(moved, 0), nullptr);  // frees
  EXPECT_EQ(memp.Probe().live_blocks, 0u);
  this->ExpectSound();
}

// A layer's allocation (AllocateWith) that fails is counted here unless
// the layer says it counts the failure itself (a thread heap whose fallback
// failed); the out-of-memory handler is asked either way.
TYPED_TEST(MempTest, AllocateWithCountsAFailureWhereTheCallerSays) {
  auto& memp = this->memp_;
  using Front = std::remove_reference_t<decltype(memp)>;
  int asked = 0;
  memp.SetOutOfMemoryHandler(
      +[](void* context, size_t, size_t) {
        ++*static_cast<int*>(context);
        return false;
      },
      &asked);
  constexpr size_t kTooBig = size_t{1} << 22;  // more than both regions
  const auto attempt = [](RegionSet& r) { return r.Allocate(kTooBig); };
  EXPECT_EQ(memp.AllocateWith(kTooBig, 16, attempt), nullptr);
  EXPECT_EQ(memp.Probe().failed_allocations, 1u);
  EXPECT_EQ(
      memp.AllocateWith(kTooBig, 16, attempt, Front::FailureCountedBy::kCaller),
      nullptr);
  EXPECT_EQ(memp.Probe().failed_allocations, 1u);
  EXPECT_EQ(asked, 2);
  void* p =
      memp.AllocateWith(100, 16, [](RegionSet& r) { return r.Allocate(100); });
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(memp.Probe().failed_allocations, 1u);
  memp.Free(p);
  this->ExpectSound();
}

TYPED_TEST(MempTest, CallocZeroesAndChecksOverflow) {
  auto& memp = this->memp_;
  void* dirty = memp.Allocate(4000);
  std::memset(dirty, 0xff, 4000);
  memp.Free(dirty);
  auto* zeroed = static_cast<unsigned char*>(memp.Calloc(100, 40));
  ASSERT_NE(zeroed, nullptr);
  for (int i = 0; i < 4000; ++i) ASSERT_EQ(zeroed[i], 0);
  const uint64_t failed = memp.Probe().failed_allocations;
  EXPECT_EQ(memp.Calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(memp.Calloc(size_t{1} << 33, size_t{1} << 33), nullptr);
  EXPECT_EQ(memp.Probe().failed_allocations, failed + 2);
  memp.Free(zeroed);
  this->ExpectSound();
}

TYPED_TEST(MempTest, AlignedAllocationValidatesAlignment) {
  auto& memp = this->memp_;
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{48}, SIZE_MAX}) {
    EXPECT_EQ(memp.AllocateAligned(alignment, 10), nullptr) << alignment;
  }
  for (size_t alignment = 1; alignment <= 8192; alignment *= 2) {
    void* p = memp.AllocateAligned(alignment, 64);
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    memp.Free(p);
  }
  this->ExpectSound();
}

TYPED_TEST(MempTest, ListShowsRegionsBlocksTagsAndCheck) {
  auto& memp = this->memp_;
  void* plain = memp.Allocate(100);
  BlockTag tag;
  tag.file = "server.cc";
  tag.line = 42;
  tag.message = "session buffer";
  tag.thread_id = 7;
  void* tagged = memp.AllocateTagged(16, 200, tag);
  std::string listing;
  memp.List([&](absl::string_view line) {
    listing.append(line.data(), line.size());
    listing.push_back('\n');
  });
  EXPECT_THAT(listing, HasSubstr("region 0 ["));
  EXPECT_THAT(listing, HasSubstr("region 1 ["));
  EXPECT_THAT(listing, HasSubstr("server.cc:42 thread 7 session buffer"));
  EXPECT_THAT(listing, HasSubstr("total: 2 regions"));
  EXPECT_THAT(listing, HasSubstr("live blocks 2"));
  EXPECT_THAT(listing, HasSubstr("integrity check: OK"));
  // A tag follows its block through a moving realloc and leaves with it.
  void* moved = memp.Reallocate(tagged, 40000);
  ASSERT_NE(moved, nullptr);
  listing.clear();
  memp.List([&](absl::string_view line) {
    listing.append(line.data(), line.size());
    listing.push_back('\n');
  });
  EXPECT_THAT(listing, HasSubstr("server.cc:42"));
  memp.Free(moved);
  listing.clear();
  memp.List([&](absl::string_view line) {
    listing.append(line.data(), line.size());
    listing.push_back('\n');
  });
  EXPECT_THAT(listing, ::testing::Not(HasSubstr("server.cc")));
  memp.Free(plain);
  this->ExpectSound();
}

TYPED_TEST(MempTest, ClearForgetsEverything) {
  auto& memp = this->memp_;
  EXPECT_NE(memp.Allocate(100), nullptr);
  memp.Clear();
  const MempStats s = memp.Probe();
  EXPECT_EQ(s.region_count, 0u);
  EXPECT_EQ(s.capacity_bytes, 0u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(memp.Allocate(1), nullptr);
  EXPECT_TRUE(memp.AddRegion(this->a_.begin(), this->a_.end()).ok());
  EXPECT_NE(memp.Allocate(1), nullptr);
  this->ExpectSound();
}

// The out-of-memory handler: told the request, called outside the lock (it
// calls back into the Memp, which would deadlock a non-recursive lock
// otherwise), and a true result retries the request once.
template <typename Memp>
struct OomRecorder {
  Memp* memp = nullptr;
  Arena* spare = nullptr;  // added as a region when non-null
  void* victim = nullptr;  // freed when non-null
  std::vector<std::pair<size_t, size_t>> calls;
  static bool Handle(void* context, size_t bytes, size_t alignment) {
    auto* self = static_cast<OomRecorder*>(context);
    self->calls.emplace_back(bytes, alignment);
    self->memp->Probe();  // any member may be called from here
    if (self->spare != nullptr) {
      const bool added =
          self->memp->AddRegion(self->spare->begin(), self->spare->end()).ok();
      self->spare = nullptr;
      return added;
    }
    if (self->victim != nullptr) {
      self->memp->Free(self->victim);
      self->victim = nullptr;
      return true;
    }
    return false;
  }
};

TYPED_TEST(MempTest, OutOfMemoryHandlerIsToldAndCanMakeRoom) {
  auto& memp = this->memp_;
  OomRecorder<Memp<TypeParam>> oom;
  oom.memp = &memp;
  memp.SetOutOfMemoryHandler(&OomRecorder<Memp<TypeParam>>::Handle, &oom);
  // No room, handler declines: nullptr, one call with the request.
  EXPECT_EQ(memp.AllocateAligned(64, 200000), nullptr);
  ASSERT_EQ(oom.calls.size(), 1u);
  EXPECT_EQ(oom.calls[0], std::make_pair(size_t{200000}, size_t{64}));
  // The handler adds a region: the retry succeeds in it.
  Arena spare(512 * 1024);
  oom.spare = &spare;
  void* big = memp.Allocate(200000);
  ASSERT_NE(big, nullptr);
  EXPECT_TRUE(spare.Contains(big));
  EXPECT_EQ(oom.calls.size(), 2u);
  // The handler frees a block: the retry reuses the room.
  void* rest = memp.Allocate(memp.ProbeRegions().back().largest_allocatable);
  ASSERT_NE(rest, nullptr);
  oom.victim = big;
  void* again = memp.Allocate(150000);
  EXPECT_NE(again, nullptr);
  EXPECT_EQ(oom.calls.size(), 3u);
  // Malformed requests and misuse never reach it.
  EXPECT_EQ(memp.AllocateAligned(48, 16), nullptr);
  EXPECT_EQ(memp.Allocate(SIZE_MAX), nullptr);
  EXPECT_EQ(memp.Calloc(SIZE_MAX, 2), nullptr);
  alignas(16) static char foreign[64];
  EXPECT_EQ(memp.Reallocate(foreign + 16, 10), nullptr);
  EXPECT_EQ(oom.calls.size(), 3u);
  // A realloc that cannot grow asks too, and the block survives a refusal.
  std::memset(again, 0x3c, 100);
  EXPECT_EQ(memp.Reallocate(again, 400000), nullptr);
  EXPECT_EQ(oom.calls.size(), 4u);
  EXPECT_EQ(static_cast<unsigned char*>(again)[99], 0x3c);
  memp.SetOutOfMemoryHandler(nullptr, nullptr);
  EXPECT_EQ(memp.Allocate(1 << 20), nullptr);
  EXPECT_EQ(oom.calls.size(), 4u);
  memp.Free(again);
  memp.Free(rest);
  EXPECT_TRUE(memp.RemoveRegion(spare.begin()).ok());
  this->ExpectSound();
}

TEST(MempManyRegionsTest, SixtyFourRegionsServeAndDrain) {
  Memp<sync::NoLock> memp;
  std::vector<std::unique_ptr<Arena>> arenas;
  for (int i = 0; i < 64; ++i) {
    arenas.push_back(std::make_unique<Arena>(4096 + 512 * (i % 7)));
    ASSERT_TRUE(
        memp.AddRegion(arenas.back()->begin(), arenas.back()->end()).ok());
  }
  std::mt19937 rng(99);
  std::vector<void*> live;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      if (void* p = memp.Allocate(16 + rng() % 2000)) live.push_back(p);
    } else {
      const size_t i = rng() % live.size();
      ASSERT_TRUE(memp.Free(live[i]));
      live[i] = live.back();
      live.pop_back();
    }
  }
  ASSERT_TRUE(memp.Check().ok()) << memp.Check();
  for (void* p : live) memp.Free(p);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
  for (auto& arena : arenas) {
    EXPECT_TRUE(memp.RemoveRegion(arena->begin()).ok());
  }
  EXPECT_EQ(memp.Probe().region_count, 0u);
}

// --- Concurrency (thread-safe policies; run under --config=tsan) ---

template <typename Lock>
class MempThreadTest : public ::testing::Test {};
using ThreadSafePolicies = ::testing::Types<sync::SpinLock, sync::Mutex>;
TYPED_TEST_SUITE(MempThreadTest, ThreadSafePolicies);

TYPED_TEST(MempThreadTest, ConcurrentAllocateFreeProbeAndRegionChurn) {
  Memp<TypeParam> memp;
  Arena base(1 << 20);
  ASSERT_TRUE(memp.AddRegion(base.begin(), base.end()).ok());
  constexpr int kThreads = 4;
  constexpr int kOps = 4000;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  // Blocks handed from each worker to the next, freed there.
  std::vector<std::vector<void*>> handoff(kThreads);
  std::vector<std::thread> workers;
  workers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<std::pair<unsigned char*, size_t>> mine;
      for (int i = 0; i < kOps; ++i) {
        if (mine.size() < 64 && rng() % 2 == 0) {
          const size_t n = 1 + rng() % 512;
          auto* p = static_cast<unsigned char*>(memp.Allocate(n));
          if (p == nullptr) continue;
          std::memset(
              p, static_cast<int>(reinterpret_cast<uintptr_t>(p) & 0xff), n);
          mine.emplace_back(p, n);
        } else if (!mine.empty()) {
          auto [p, n] = mine.back();
          mine.pop_back();
          const unsigned char want = reinterpret_cast<uintptr_t>(p) & 0xff;
          for (size_t k = 0; k < n; ++k) {
            if (p[k] != want) {
              errors.fetch_add(1);
              break;
            }
          }
          if (i % 3 == 0) {
            handoff[t].push_back(p);  // freed later by another thread
          } else if (!memp.Free(p)) {
            errors.fetch_add(1);
          }
        }
      }
      for (auto [p, n] : mine) memp.Free(p);
    });
  }
  // Region churn and probes while the workers run.
  std::thread manager([&] {
    Arena extra(64 * 1024);
    while (!stop.load()) {
      if (memp.AddRegion(extra.begin(), extra.end()).ok()) {
        // Removal may be refused while a worker holds a block there.
        while (!memp.RemoveRegion(extra.begin()).ok() && !stop.load()) {
          std::this_thread::yield();
        }
      }
      const MempStats s = memp.Probe();
      if (s.used_bytes > s.capacity_bytes || s.peak_used_bytes < s.used_bytes) {
        errors.fetch_add(1);
      }
    }
    // Leave no block behind in `extra` before it goes out of scope.
    if (memp.RemoveRegion(extra.begin()).code() ==
        absl::StatusCode::kFailedPrecondition) {
      errors.fetch_add(1000);
    }
  });
  for (auto& w : workers) w.join();
  // Cross-thread frees: every worker's handoff is freed by this thread.
  for (auto& list : handoff) {
    for (void* p : list) {
      if (!memp.Free(p)) errors.fetch_add(1);
    }
  }
  stop.store(true);
  manager.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(memp.Probe().used_bytes, 0u);
  EXPECT_EQ(memp.Probe().live_blocks, 0u);
  EXPECT_TRUE(memp.Check().ok()) << memp.Check();
}

}  // namespace
}  // namespace fmemp
