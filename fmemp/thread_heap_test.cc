// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/thread_heap.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/test_util.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

using test_util::Fill;
using test_util::HasFill;

constexpr size_t kRegionBytes = size_t{1} << 20;

struct Region {
  explicit Region(size_t bytes = kRegionBytes)
      : bytes(bytes), memory(new uint64_t[bytes / 8]) {}
  char* begin() { return reinterpret_cast<char*>(memory.get()); }
  bool Holds(const void* p) {
    return p >= static_cast<void*>(begin()) &&
           p < static_cast<void*>(begin() + bytes);
  }
  size_t bytes;
  std::unique_ptr<uint64_t[]> memory;
};

// A thread that runs one task at a time, on request, so a test can act as
// a particular thread (keeping its thread heap) step by step.
class Worker {
 public:
  Worker() : thread_([this] { Loop(); }) {}
  ~Worker() {
    Run(nullptr);
    thread_.join();
  }
  // Runs task on the worker and waits for it. nullptr ends the worker.
  void Run(std::function<void()> task) {
    absl::MutexLock hold(&mu_);
    task_ = std::move(task);
    pending_ = true;
    mu_.Await(absl::Condition(
        +[](bool* pending) { return !*pending; }, &pending_));
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        absl::MutexLock hold(&mu_);
        mu_.Await(absl::Condition(&pending_));
        task = std::move(task_);
      }
      const bool stop = task == nullptr;
      if (!stop) task();
      absl::MutexLock hold(&mu_);
      pending_ = false;
      if (stop) return;
    }
  }

  absl::Mutex mu_;
  std::function<void()> task_ ABSL_GUARDED_BY(mu_);
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

struct MisuseLog {
  static void Record(void* context, MempError error, const void* ptr) {
    auto* log = static_cast<MisuseLog*>(context);
    absl::MutexLock hold(&log->mu);
    log->errors.push_back({error, ptr});
  }
  size_t count() {
    absl::MutexLock hold(&mu);
    return errors.size();
  }
  MempError last() {
    absl::MutexLock hold(&mu);
    return errors.back().first;
  }
  absl::Mutex mu;
  std::vector<std::pair<MempError, const void*>> errors ABSL_GUARDED_BY(mu);
};

template <typename Front>
void ExpectBalanced(Front& memp) {
  const MempStats s = memp.Probe();
  EXPECT_EQ(s.used_bytes + s.cached_bytes + s.free_bytes, s.capacity_bytes);
  EXPECT_LE(s.used_bytes + s.cached_bytes, s.peak_used_bytes);
  EXPECT_TRUE(memp.Check().ok()) << memp.Check();
}

// The bytes taken from the regions (in use plus parked in thread heaps'
// caches): the quantity peak_used_bytes is the peak of.
template <typename Front>
size_t Taken(Front& memp) {
  const MempStats s = memp.Probe();
  return s.used_bytes + s.cached_bytes;
}

template <typename T>
class ThreadHeapMempTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memp_.SetErrorHandler(&MisuseLog::Record, &misuse_);
    ASSERT_TRUE(memp_.AddRegion(shared_.begin(), shared_.bytes).ok());
  }
  // Adds `region` and binds it to the calling thread.
  void BindHere(Region& region, ThreadHeapExhaustion mode =
                                    ThreadHeapExhaustion::kFallBackToShared) {
    ASSERT_TRUE(memp_.AddRegion(region.begin(), region.bytes).ok());
    ASSERT_TRUE(memp_.BindThisThread(region.begin(), mode).ok());
  }

  ThreadHeapMemp<T> memp_;
  Region shared_;
  MisuseLog misuse_;
};

using LockPolicies = ::testing::Types<sync::SpinLock, sync::Mutex>;
TYPED_TEST_SUITE(ThreadHeapMempTest, LockPolicies);

TYPED_TEST(ThreadHeapMempTest, BoundThreadAllocatesFromItsThreadHeap) {
  Region own;
  Worker worker;
  void* mine = nullptr;
  worker.Run([&] {
    this->BindHere(own);
    EXPECT_TRUE(this->memp_.ThisThreadHasHeap());
    mine = this->memp_.Allocate(100);
    Fill(mine, 100, 1);
  });
  EXPECT_TRUE(own.Holds(mine));
  EXPECT_FALSE(this->memp_.ThisThreadHasHeap());
  void* shared = this->memp_.Allocate(100);  // this thread has no thread heap
  EXPECT_TRUE(this->shared_.Holds(shared));

  const MempStats total = this->memp_.Probe();
  EXPECT_EQ(total.region_count, 2u);
  EXPECT_EQ(total.live_blocks, 2u);
  const ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].stats.live_blocks, 1u);
  EXPECT_EQ(thread_heaps[0].stats.region_count, 1u);
  EXPECT_NE(thread_heaps[0].thread_id, 0u);
  EXPECT_EQ(thread_heaps[0].stats.capacity_bytes +
                this->memp_.ProbeRegions()[0].capacity_bytes,
            total.capacity_bytes);

  worker.Run([&] {
    EXPECT_TRUE(HasFill(mine, 100, 1));
    EXPECT_EQ(this->memp_.UsableSize(mine), 112u - tlsf::kBlockOverhead);
    EXPECT_TRUE(this->memp_.Check().ok());
    EXPECT_EQ(this->memp_.ProbeRegions().size(), 2u);  // shared and own
    EXPECT_TRUE(this->memp_.Free(mine));
  });
  EXPECT_TRUE(this->memp_.Free(shared));
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  ExpectBalanced(this->memp_);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

TYPED_TEST(ThreadHeapMempTest, RemoteFreesAreQueuedAndAppliedByTheOwner) {
  Region own;
  Worker owner;
  std::vector<void*> blocks;
  owner.Run([&] {
    this->BindHere(own);
    for (int i = 0; i < 50; ++i) blocks.push_back(this->memp_.Allocate(64));
  });
  const size_t used = this->memp_.Probe().used_bytes;
  for (void* p : blocks) {
    EXPECT_TRUE(own.Holds(p));
    EXPECT_GE(this->memp_.UsableSize(p), 64u);  // read from another thread
    EXPECT_TRUE(this->memp_.Free(p));           // queued to the owner
  }
  // Not applied yet: the owner has not made a call since.
  EXPECT_EQ(this->memp_.Probe().used_bytes, used);
  owner.Run([&] {
    void* p = this->memp_.Allocate(64);  // applies the queue first
    EXPECT_TRUE(own.Holds(p));
    this->memp_.Free(p);
  });
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  owner.Run([&] { ExpectBalanced(this->memp_); });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// An idle owner (kv_server's worker with no request) applies its queue with
// a call that neither allocates nor frees: SyncThisThread, or binding the
// region it already holds, which changes nothing else.
TYPED_TEST(ThreadHeapMempTest, SyncOrRebindAppliesQueuedFrees) {
  Region own;
  Worker owner;
  std::vector<void*> blocks;
  owner.Run([&] {
    this->BindHere(own);
    for (int i = 0; i < 50; ++i) blocks.push_back(this->memp_.Allocate(64));
  });
  for (size_t i = 0; i < blocks.size() / 2; ++i) {
    EXPECT_TRUE(this->memp_.Free(blocks[i]));  // queued
  }
  EXPECT_EQ(this->memp_.Probe().live_blocks, blocks.size());
  owner.Run([&] { EXPECT_TRUE(this->memp_.SyncThisThread()); });
  EXPECT_EQ(this->memp_.Probe().live_blocks, blocks.size() - blocks.size() / 2);
  for (size_t i = blocks.size() / 2; i < blocks.size(); ++i) {
    EXPECT_TRUE(this->memp_.Free(blocks[i]));  // queued
  }
  owner.Run([&] {
    EXPECT_TRUE(this->memp_.BindThisThread(own.begin()).ok());
    EXPECT_TRUE(this->memp_.ThisThreadHasHeap());
  });
  EXPECT_EQ(this->memp_.Probe().live_blocks, 0u);
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  EXPECT_FALSE(this->memp_.SyncThisThread())
      << "this thread has no thread heap";
  owner.Run([&] { ExpectBalanced(this->memp_); });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

TYPED_TEST(ThreadHeapMempTest, ExhaustedThreadHeapFallsBackOrFails) {
  Region small_a(64 << 10), small_b(64 << 10);
  Worker falls_back, fails;
  falls_back.Run([&] {
    this->BindHere(small_a);
    void* big = this->memp_.Allocate(200 << 10);  // more than the thread heap
    EXPECT_TRUE(this->shared_.Holds(big));
    void* grown = this->memp_.Allocate(1000);
    EXPECT_TRUE(small_a.Holds(grown));
    Fill(grown, 1000, 9);
    // Growing past the thread heap moves the block to the shared regions.
    void* moved = this->memp_.Reallocate(grown, 100 << 10);
    ASSERT_NE(moved, nullptr);
    EXPECT_TRUE(this->shared_.Holds(moved));
    EXPECT_TRUE(HasFill(moved, 1000, 9));
    this->memp_.Free(moved);
    this->memp_.Free(big);
  });
  ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].fallbacks, 2u);
  EXPECT_EQ(thread_heaps[0].stats.failed_allocations, 0u);
  EXPECT_EQ(this->memp_.Probe().failed_allocations, 0u);
  // Too big for the thread heap and for the shared regions: one failure,
  // counted by the thread heap (its thread's call failed), none by the shared
  // regions.
  falls_back.Run([&] {
    EXPECT_EQ(this->memp_.Allocate(2 * this->shared_.bytes), nullptr);
  });
  thread_heaps = this->memp_.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].fallbacks, 3u);
  EXPECT_EQ(thread_heaps[0].stats.failed_allocations, 1u);
  EXPECT_EQ(this->memp_.Probe().failed_allocations, 1u);

  struct Oom {
    static bool Handle(void* context, size_t bytes, size_t) {
      auto* self = static_cast<Oom*>(context);
      self->asked_for = bytes;
      if (self->release != nullptr) {
        self->memp->Free(self->release);
        self->release = nullptr;
        return true;
      }
      return false;
    }
    ThreadHeapMemp<TypeParam>* memp;
    void* release = nullptr;
    size_t asked_for = 0;
  } oom{&this->memp_};
  this->memp_.SetOutOfMemoryHandler(&Oom::Handle, &oom);
  fails.Run([&] {
    this->BindHere(small_b, ThreadHeapExhaustion::kFail);
    EXPECT_EQ(this->memp_.Allocate(200 << 10), nullptr);
    EXPECT_EQ(oom.asked_for, size_t{200} << 10);
    // The handler makes room in the thread heap: the retry succeeds.
    oom.release = this->memp_.Allocate(40 << 10);
    ASSERT_TRUE(small_b.Holds(oom.release));
    void* second = this->memp_.Allocate(40 << 10);
    EXPECT_TRUE(small_b.Holds(second));
    this->memp_.Free(second);
  });
  // The first request failed; the second, served by the handler's retry,
  // did not.
  thread_heaps = this->memp_.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 2u);
  EXPECT_EQ(thread_heaps[1].stats.failed_allocations, 1u);
  EXPECT_EQ(thread_heaps[1].fallbacks, 0u);
  EXPECT_EQ(this->memp_.Probe().failed_allocations, 2u);
  this->memp_.SetOutOfMemoryHandler(nullptr, nullptr);
  falls_back.Run([&] { ExpectBalanced(this->memp_); });
  fails.Run([&] { ExpectBalanced(this->memp_); });
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
}

// A thread heap's counts of failures outlive its thread: the total keeps them.
TYPED_TEST(ThreadHeapMempTest, FailuresOfAnExitedThreadStayInTheTotal) {
  Region own(64 << 10);
  {
    Worker worker;
    worker.Run([&] {
      this->BindHere(own, ThreadHeapExhaustion::kFail);
      EXPECT_EQ(this->memp_.Allocate(200 << 10), nullptr);
      EXPECT_EQ(this->memp_.AllocateAligned(48, 16), nullptr);
    });
    EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.failed_allocations, 2u);
    EXPECT_EQ(this->memp_.Probe().failed_allocations, 2u);
  }
  EXPECT_TRUE(this->memp_.ProbeThreadHeaps().empty());
  EXPECT_EQ(this->memp_.Probe().failed_allocations, 2u);
  // A thread without a thread heap counts in the shared regions' figures.
  EXPECT_EQ(this->memp_.Calloc(SIZE_MAX / 2, 4), nullptr);
  EXPECT_EQ(this->memp_.Probe().failed_allocations, 3u);
  this->memp_.Clear();
  EXPECT_EQ(this->memp_.Probe().failed_allocations, 0u);
}

TYPED_TEST(ThreadHeapMempTest, ThreadExitReturnsItsRegionsWithLiveBlocks) {
  Region own;
  std::vector<void*> blocks;
  {
    Worker worker;
    worker.Run([&] {
      this->BindHere(own);
      this->memp_.Free(this->memp_.Allocate(100000));  // the thread heap's peak
      for (int i = 0; i < 20; ++i) {
        void* p = this->memp_.Allocate(200);
        Fill(p, 200, static_cast<uint8_t>(i));
        blocks.push_back(p);
      }
    });
  }  // the worker exits with its blocks alive
  EXPECT_TRUE(this->memp_.ProbeThreadHeaps().empty());
  EXPECT_EQ(this->memp_.ProbeRegions().size(), 2u);  // both shared now
  // The thread heap's peak outlives its thread.
  EXPECT_GE(this->memp_.Probe().peak_used_bytes, 100000u);
  EXPECT_EQ(this->memp_.Probe().live_blocks, blocks.size());
  ExpectBalanced(this->memp_);
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_TRUE(HasFill(blocks[i], 200, static_cast<uint8_t>(i)));
    EXPECT_TRUE(this->memp_.Free(blocks[i]));
  }
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  EXPECT_TRUE(this->memp_.RemoveRegion(own.begin()).ok());
  ExpectBalanced(this->memp_);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

TYPED_TEST(ThreadHeapMempTest, QueuedFreesSurviveTheOwnersExit) {
  Region own;
  std::vector<void*> blocks;
  {
    Worker worker;
    worker.Run([&] {
      this->BindHere(own);
      for (int i = 0; i < 20; ++i) blocks.push_back(this->memp_.Allocate(48));
    });
    for (void* p : blocks) this->memp_.Free(p);  // queued; owner idle
  }
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  EXPECT_TRUE(this->memp_.RemoveRegion(own.begin()).ok());
  ExpectBalanced(this->memp_);
}

TYPED_TEST(ThreadHeapMempTest, UnbindMovesRegionsBack) {
  Region own;
  Worker worker;
  void* p = nullptr;
  worker.Run([&] {
    this->BindHere(own);
    p = this->memp_.Allocate(300);
    Fill(p, 300, 3);
    EXPECT_TRUE(this->memp_.UnbindThisThread().ok());
    EXPECT_FALSE(this->memp_.ThisThreadHasHeap());
    EXPECT_TRUE(this->memp_.UnbindThisThread().ok());  // nothing to do
  });
  EXPECT_TRUE(this->memp_.ProbeThreadHeaps().empty());
  // The region is shared again: removable once empty, by anyone.
  EXPECT_EQ(this->memp_.RemoveRegion(own.begin()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(HasFill(p, 300, 3));
  this->memp_.Free(p);
  EXPECT_TRUE(this->memp_.RemoveRegion(own.begin()).ok());
  ExpectBalanced(this->memp_);
}

TYPED_TEST(ThreadHeapMempTest, BadBindsAndRemovalsChangeNothing) {
  Region own, other, unknown;
  Worker a, b;
  a.Run([&] { this->BindHere(own); });
  ASSERT_TRUE(this->memp_.AddRegion(other.begin(), other.bytes).ok());
  const MempStats before = this->memp_.Probe();
  b.Run([&] {
    EXPECT_EQ(this->memp_.BindThisThread(unknown.begin()).code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(this->memp_.BindThisThread(own.begin()).code(),
              absl::StatusCode::kFailedPrecondition);
    // Removing another thread's region is refused, empty or not.
    EXPECT_EQ(this->memp_.RemoveRegion(own.begin()).code(),
              absl::StatusCode::kFailedPrecondition);
  });
  a.Run([&] {
    // Binding the same region again is fine.
    EXPECT_TRUE(this->memp_.BindThisThread(own.begin()).ok());
  });
  // Overlap with a bound region is refused.
  EXPECT_EQ(
      this->memp_.AddRegion(own.begin() + 4096, own.begin() + 8192).code(),
      absl::StatusCode::kAlreadyExists);
  const MempStats after = this->memp_.Probe();
  EXPECT_EQ(after.capacity_bytes, before.capacity_bytes);
  EXPECT_EQ(after.region_count, before.region_count);
  a.Run([&] {
    void* p = this->memp_.Allocate(10);
    EXPECT_EQ(this->memp_.RemoveRegion(own.begin()).code(),
              absl::StatusCode::kFailedPrecondition);  // live block
    this->memp_.Free(p);
    EXPECT_TRUE(this->memp_.RemoveRegion(own.begin()).ok());
    EXPECT_FALSE(this->memp_.ThisThreadHasHeap());
  });
  EXPECT_EQ(this->memp_.Probe().region_count, 2u);
  ExpectBalanced(this->memp_);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// Shared and bound regions are entries of one table: AddRegion refuses a
// range that meets either, a bound region's first bytes (its pool header,
// before any payload) included, and accepts the gap between them.
TYPED_TEST(ThreadHeapMempTest, AddRegionRefusesOverlapAcrossSharedAndBound) {
  constexpr size_t kMiB = size_t{1} << 20;
  Region big(4 * kMiB);
  char* const bound = big.begin() + kMiB;       // [1, 2) MiB: bound
  char* const shared = big.begin() + 3 * kMiB;  // [3, 4) MiB: shared
  Worker owner;
  owner.Run([&] {
    ASSERT_TRUE(this->memp_.AddRegion(bound, kMiB).ok());
    ASSERT_TRUE(this->memp_.BindThisThread(bound).ok());
  });
  ASSERT_TRUE(this->memp_.AddRegion(shared, kMiB).ok());
  const MempStats before = this->memp_.Probe();
  // Only the bound region's first bytes.
  absl::Status s = this->memp_.AddRegion(bound - kMiB / 2, bound + 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("bound"), absl::string_view::npos) << s;
  // Its last bytes.
  EXPECT_EQ(this->memp_.AddRegion(bound + kMiB - 8, bound + kMiB + 4096).code(),
            absl::StatusCode::kAlreadyExists);
  // The shared region's first bytes.
  EXPECT_EQ(this->memp_.AddRegion(shared - 4096, shared + 8).code(),
            absl::StatusCode::kAlreadyExists);
  // Both at once.
  EXPECT_EQ(this->memp_.AddRegion(bound, 3 * kMiB).code(),
            absl::StatusCode::kAlreadyExists);
  const MempStats after = this->memp_.Probe();
  EXPECT_EQ(after.capacity_bytes, before.capacity_bytes);
  EXPECT_EQ(after.region_count, before.region_count);
  // The gap between them fits exactly.
  EXPECT_TRUE(this->memp_.AddRegion(bound + kMiB, kMiB).ok());
  void* p = nullptr;
  owner.Run([&] {
    p = this->memp_.Allocate(64);
    EXPECT_TRUE(big.Holds(p));
  });
  EXPECT_GE(p, static_cast<void*>(bound));
  EXPECT_LT(p, static_cast<void*>(bound + kMiB));
  owner.Run([&] { EXPECT_TRUE(this->memp_.Free(p)); });
  owner.Run([&] { ExpectBalanced(this->memp_); });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// A region that changes hands (bound to one thread, unbound, bound to
// another) is found under its new owner: a free from a third thread of a
// block the first owner allocated is queued to the second owner, and the
// second owner applies it.
TYPED_TEST(ThreadHeapMempTest, CrossThreadFreeAfterRebindReachesTheNewOwner) {
  Region own;
  std::vector<void*> blocks;
  {
    Worker first;
    first.Run([&] {
      this->BindHere(own);
      for (int i = 0; i < 20; ++i) blocks.push_back(this->memp_.Allocate(64));
      EXPECT_TRUE(this->memp_.UnbindThisThread().ok());
    });
  }
  Worker second;
  second.Run([&] {
    ASSERT_TRUE(this->memp_.BindThisThread(own.begin()).ok());
    EXPECT_TRUE(this->memp_.ThisThreadHasHeap());
  });
  ASSERT_EQ(this->memp_.ProbeThreadHeaps().size(), 1u);
  EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.live_blocks, blocks.size());
  for (void* p : blocks) {
    EXPECT_TRUE(own.Holds(p));
    EXPECT_GE(this->memp_.UsableSize(p), 64u);
    EXPECT_TRUE(this->memp_.Free(p));  // queued to the second owner
  }
  // Queued, not applied: the second owner has made no call since.
  EXPECT_EQ(this->memp_.Probe().live_blocks, blocks.size());
  second.Run([&] { EXPECT_TRUE(this->memp_.SyncThisThread()); });
  EXPECT_EQ(this->memp_.Probe().live_blocks, 0u);
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  // A second free of one of them is refused (the block is free for its
  // heap now).
  EXPECT_FALSE(this->memp_.Free(blocks[0]));
  EXPECT_EQ(this->misuse_.count(), 1u);
  second.Run([&] { ExpectBalanced(this->memp_); });
}

TYPED_TEST(ThreadHeapMempTest, MisuseIsReportedAndChangesNothing) {
  Region own;
  Worker owner;
  void* p = nullptr;
  void* keep = nullptr;
  owner.Run([&] {
    this->BindHere(own);
    p = this->memp_.Allocate(64);
    keep = this->memp_.Allocate(64);
    Fill(keep, 64, 4);
    this->memp_.Free(p);
    EXPECT_FALSE(this->memp_.Free(p));  // double free in the own thread heap
  });
  EXPECT_EQ(this->misuse_.count(), 1u);
  EXPECT_EQ(this->misuse_.last(), MempError::kDoubleFree);
  // From another thread: the header is checked before anything is queued,
  // so both are reported at the call, on this thread.
  EXPECT_FALSE(this->memp_.Free(p));
  EXPECT_FALSE(this->memp_.Free(static_cast<char*>(keep) + 8));  // interior
  owner.Run([&] { this->memp_.Check().IgnoreError(); });
  EXPECT_EQ(this->misuse_.count(), 3u);
  int local = 0;
  EXPECT_FALSE(this->memp_.Free(&local));  // foreign
  EXPECT_EQ(this->misuse_.last(), MempError::kForeignPointer);
  EXPECT_EQ(this->memp_.Reallocate(static_cast<char*>(keep) + 8, 10), nullptr);
  EXPECT_EQ(this->misuse_.count(), 5u);
  EXPECT_EQ(this->memp_.Probe().invalid_frees, 5u);
  owner.Run([&] {
    EXPECT_TRUE(HasFill(keep, 64, 4));
    ExpectBalanced(this->memp_);
    this->memp_.Free(keep);
  });
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
}

// Cross-thread frees are pushed lock-free onto the owner's list while the
// owner unbinds (even rounds) or exits (odd rounds): every free is applied
// exactly once (all bytes free at the end, no misuse report).
TYPED_TEST(ThreadHeapMempTest, RemoteFreesRacingUnbindAndExitAreAppliedOnce) {
  Region own;
  ASSERT_TRUE(this->memp_.AddRegion(own.begin(), own.bytes).ok());
  constexpr int kRounds = 20;
  constexpr int kBlocks = 400;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<void*> blocks;
    std::atomic<bool> published{false};
    std::atomic<int> freers_done{0};
    std::thread owner([&] {
      ASSERT_TRUE(this->memp_.BindThisThread(own.begin()).ok());
      for (int i = 0; i < kBlocks; ++i) {
        void* p = this->memp_.Allocate(16 + (i * 37) % 500);
        ASSERT_TRUE(own.Holds(p));
        blocks.push_back(p);
      }
      published.store(true, std::memory_order_release);
      if (round % 2 == 0) {
        // Unbind mid-stream, then keep calling: later frees find the
        // blocks in the shared regions.
        EXPECT_TRUE(this->memp_.UnbindThisThread().ok());
        while (freers_done.load() != 2) this->memp_.SyncThisThread();
      }
      // Odd rounds: exit at once, while the frees are still coming.
    });
    auto freer = [&](int half) {
      while (!published.load(std::memory_order_acquire)) {
        std::this_thread::yield();
      }
      for (int i = half; i < kBlocks; i += 2) {
        EXPECT_TRUE(this->memp_.Free(blocks[i]));
      }
      freers_done.fetch_add(1);
    };
    std::thread a(freer, 0), b(freer, 1);
    a.join();
    b.join();
    owner.join();
    const MempStats s = this->memp_.Probe();
    ASSERT_EQ(s.used_bytes, 0u) << "round " << round;
    ASSERT_EQ(s.live_blocks, 0u) << "round " << round;
    ASSERT_EQ(this->misuse_.count(), 0u) << "round " << round;
    ASSERT_TRUE(this->memp_.Check().ok());
  }
}

// Two thread heaps peak at different times: peak_used_bytes is the most the
// whole front-end took from its regions at once (in use plus parked), not
// the sum of each thread heap's peak.
TYPED_TEST(ThreadHeapMempTest, PeakIsTheTrueMaxOfTheSumNotTheSumOfPeaks) {
  Region a_region, b_region;
  Worker a, b;
  std::vector<void*> a_blocks, b_blocks;
  a.Run([&] {
    this->BindHere(a_region);
    for (int i = 0; i < 100; ++i)
      a_blocks.push_back(this->memp_.Allocate(1000));
  });
  const size_t a_top = Taken(this->memp_);  // A's own peak: refills only
  EXPECT_EQ(this->memp_.Probe().peak_used_bytes, a_top);
  a.Run([&] {
    for (int i = 0; i < 60; ++i) this->memp_.Free(a_blocks[i]);  // parked
  });
  EXPECT_EQ(Taken(this->memp_), a_top) << "parking changes no peak";
  // Returned to A's regions: what A holds taken drops below its peak.
  a.Run([&] { this->memp_.FlushThisThread(); });
  EXPECT_LT(Taken(this->memp_), a_top);
  b.Run([&] {
    this->BindHere(b_region);
    for (int i = 0; i < 80; ++i) b_blocks.push_back(this->memp_.Allocate(1000));
  });
  const size_t both = Taken(this->memp_);  // A's 40 + B's 80 and its refills
  b.Run([&] {
    for (void* p : b_blocks) this->memp_.Free(p);
  });
  a.Run([&] {
    for (int i = 60; i < 100; ++i) this->memp_.Free(a_blocks[i]);
  });
  const MempStats s = this->memp_.Probe();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_GT(both, a_top);
  EXPECT_EQ(s.peak_used_bytes, std::max(a_top, both));
  // Each thread heap's own peak is still its own: their sum is more.
  size_t sum_of_peaks = 0;
  for (const ThreadHeapStats& thread_heap : this->memp_.ProbeThreadHeaps()) {
    sum_of_peaks += thread_heap.stats.peak_used_bytes;
  }
  EXPECT_GT(sum_of_peaks, s.peak_used_bytes);
  // The shared regions count too: a shared block on top of both.
  void* shared = this->memp_.Allocate(5000);  // this thread has no thread heap
  ASSERT_TRUE(this->shared_.Holds(shared));
  const size_t with_shared = Taken(this->memp_);
  this->memp_.Free(shared);
  EXPECT_EQ(this->memp_.Probe().peak_used_bytes,
            std::max({a_top, both, with_shared}));
  // The peak restarts from what is taken now: the blocks parked in A and B.
  this->memp_.ResetPeak();
  EXPECT_GT(Taken(this->memp_), 0u);
  EXPECT_EQ(this->memp_.Probe().peak_used_bytes, Taken(this->memp_));
  a.Run([&] { this->memp_.FlushThisThread(); });
  b.Run([&] { this->memp_.FlushThisThread(); });
  EXPECT_EQ(Taken(this->memp_), 0u);
}

// Threads take from their thread heaps at once, with frees handed across
// threads: the peak is still exactly the most taken at once, after one
// thread peaked alone earlier (a sum of each thread heap's peak would be
// more). Under TSan this checks the totals' updates too.
TYPED_TEST(ThreadHeapMempTest, PeakIsExactWhileThreadsTakeAtOnce) {
  constexpr int kThreads = 4;
  constexpr int kBlocks = 100;
  Region regions[kThreads];
  std::vector<void*> blocks[kThreads];
  // Each step ends at a barrier of every thread and this one: 0 all bound;
  // 1 thread 0 took alone; 2 this thread measured; 3 thread 0 returned
  // all; 4 all took at once; 5 this thread measured; 6 all freed (half of
  // them by another thread); 7 all applied their queues and returned
  // their caches; 8 this thread probed their thread heaps.
  constexpr int kSteps = 9;
  absl::Barrier* steps[kSteps];
  for (absl::Barrier*& step : steps) step = new absl::Barrier(kThreads + 1);
  std::atomic<uint64_t> alone_thread_id{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      this->BindHere(regions[t]);
      steps[0]->Block();
      std::vector<void*> alone;
      if (t == 0) {
        alone_thread_id = thread_heap_internal::CurrentThreadId();
        for (int i = 0; i < 3 * kBlocks; ++i)
          alone.push_back(this->memp_.Allocate(1000));
      }
      steps[1]->Block();
      steps[2]->Block();
      if (t == 0) {
        for (void* p : alone) this->memp_.Free(p);
        this->memp_.FlushThisThread();
        EXPECT_EQ(Taken(this->memp_), 0u);  // the others wait at step 3
      }
      steps[3]->Block();
      // Cached and uncached sizes: refills and uncached allocations.
      for (int i = 0; i < kBlocks; ++i) {
        blocks[t].push_back(this->memp_.Allocate(i % 4 == 0 ? 3000 : 1000));
        EXPECT_TRUE(regions[t].Holds(blocks[t].back()));
      }
      steps[4]->Block();
      steps[5]->Block();
      // The even blocks here, the odd ones of the next thread (queued to
      // it, applied at its next call).
      const std::vector<void*>& next = blocks[(t + 1) % kThreads];
      for (int i = 0; i < kBlocks; ++i) {
        EXPECT_TRUE(this->memp_.Free(i % 2 == 0 ? blocks[t][i] : next[i]));
      }
      steps[6]->Block();
      EXPECT_TRUE(this->memp_.SyncThisThread());
      this->memp_.FlushThisThread();
      steps[7]->Block();
      steps[8]->Block();  // then exits: its thread heap goes
    });
  }
  steps[0]->Block();
  steps[1]->Block();
  const size_t alone_top = Taken(this->memp_);
  steps[2]->Block();
  steps[3]->Block();
  steps[4]->Block();
  const size_t together_top = Taken(this->memp_);
  steps[5]->Block();
  steps[6]->Block();
  steps[7]->Block();
  // Nothing in use, nothing parked, the peak where the takings stopped.
  const MempStats s = this->memp_.Probe();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_GT(together_top, alone_top);
  EXPECT_EQ(s.peak_used_bytes, together_top);
  const ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
  EXPECT_EQ(thread_heaps.size(), size_t{kThreads});
  size_t sum_of_peaks = 0;
  for (const ThreadHeapStats& thread_heap : thread_heaps) {
    sum_of_peaks += thread_heap.stats.peak_used_bytes;
    if (thread_heap.thread_id == alone_thread_id.load()) {
      EXPECT_EQ(thread_heap.stats.peak_used_bytes, alone_top);
    }
  }
  EXPECT_GT(sum_of_peaks, s.peak_used_bytes);
  steps[8]->Block();
  for (std::thread& thread : threads) thread.join();
  for (absl::Barrier* step : steps) delete step;
  // The peak outlives the threads.
  EXPECT_EQ(this->memp_.Probe().peak_used_bytes, together_top);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// A write into a block queued to its owner (a use after free) damages the
// list's link: the owner stops there, reports it once and does not follow.
TYPED_TEST(ThreadHeapMempTest, DamagedRemoteFreeLinkIsDroppedNotFollowed) {
  Region own;
  Worker owner;
  void* a = nullptr;
  void* b = nullptr;
  owner.Run([&] {
    this->BindHere(own);
    a = this->memp_.Allocate(64);
    b = this->memp_.Allocate(64);
  });
  std::thread freer([&] {
    EXPECT_TRUE(this->memp_.Free(a));
    EXPECT_TRUE(this->memp_.Free(b));  // the list: b -> a
  });
  freer.join();
  uintptr_t wild = 0xdead0000;
  std::memcpy(b, &wild, sizeof(wild));  // b's link now points nowhere
  owner.Run([&] {
    EXPECT_TRUE(this->memp_.SyncThisThread());
    EXPECT_TRUE(this->memp_.Check().ok());
  });
  EXPECT_EQ(this->misuse_.count(), 1u);
  EXPECT_EQ(this->misuse_.last(), MempError::kUseAfterFreeWrite);
  // b was applied (its marker was intact); a, after the damaged link, was
  // dropped and stays allocated.
  owner.Run([&] {
    const MempStats s = this->memp_.Probe();
    EXPECT_EQ(s.live_blocks, 1u);
  });
}

TYPED_TEST(ThreadHeapMempTest, ReallocateAcrossThreadHeaps) {
  Region a_region, b_region;
  Worker a, b;
  void* p = nullptr;
  a.Run([&] {
    this->BindHere(a_region);
    p = this->memp_.Reallocate(nullptr, 100);
    Fill(p, 100, 5);
    p = this->memp_.Reallocate(p, 2000);  // in its own thread heap
    EXPECT_TRUE(a_region.Holds(p));
    EXPECT_TRUE(HasFill(p, 100, 5));
  });
  b.Run([&] {
    this->BindHere(b_region);
    // Another thread's block moves into the caller's thread heap.
    p = this->memp_.Reallocate(p, 3000);
    EXPECT_TRUE(b_region.Holds(p));
    EXPECT_TRUE(HasFill(p, 100, 5));
  });
  // A shared-region block grows in the shared regions.
  void* s = this->memp_.Reallocate(nullptr, 10);
  Fill(s, 10, 6);
  s = this->memp_.Reallocate(s, 5000);
  EXPECT_TRUE(this->shared_.Holds(s));
  EXPECT_TRUE(HasFill(s, 10, 6));
  EXPECT_EQ(this->memp_.Reallocate(s, 0), nullptr);  // frees
  // And a pooled block freed by Reallocate(p, 0) from a third thread.
  EXPECT_EQ(this->memp_.Reallocate(p, 0), nullptr);
  a.Run([&] { ExpectBalanced(this->memp_); });
  b.Run([&] { ExpectBalanced(this->memp_); });
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

TYPED_TEST(ThreadHeapMempTest, TaggedBlocksAreListedByTheirOwner) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    BlockTag tag;
    tag.file = "thread_heap_user.cc";
    tag.line = 42;
    void* p = this->memp_.AllocateTagged(64, 100, tag);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(own.Holds(p));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    std::string listing;
    this->memp_.List([&](absl::string_view line) {
      listing.append(line.data(), line.size()).append("\n");
    });
    EXPECT_NE(listing.find("thread_heap_user.cc:42"), std::string::npos)
        << listing;
    EXPECT_NE(listing.find("integrity check: OK"), std::string::npos);
    this->memp_.Free(p);
  });
}

// The inline hits read the thread heap's modes from its queue's head
// (with the queued frees and the news): once tagging was used, a plain
// free parks nothing more while a plain allocation still pops parked
// blocks; a free queued by another thread meanwhile is applied at the
// owner's next call, its mode bits kept.
TYPED_TEST(ThreadHeapMempTest, HitsFollowTheModesAfterTagging) {
  Region own;
  Worker owner;
  void* handed = nullptr;
  owner.Run([&] {
    this->BindHere(own);
    void* blocks[4];
    for (void*& b : blocks) b = this->memp_.Allocate(64);
    for (void* b : blocks) EXPECT_TRUE(this->memp_.Free(b));
    handed = this->memp_.Allocate(200);
    ASSERT_NE(handed, nullptr);
    const size_t parked = this->memp_.Probe().cached_bytes;
    ASSERT_GT(parked, 0u);
    BlockTag tag;
    tag.file = "thread_heap_user.cc";
    tag.line = 7;
    void* tagged = this->memp_.AllocateTagged(16, 100, tag);
    ASSERT_NE(tagged, nullptr);
    EXPECT_TRUE(this->memp_.Free(tagged));
    const size_t after_tagging = this->memp_.Probe().cached_bytes;
    void* p = this->memp_.Allocate(64);  // a pop: the cache shrinks
    ASSERT_NE(p, nullptr);
    EXPECT_LT(this->memp_.Probe().cached_bytes, after_tagging);
    const size_t before_free = this->memp_.Probe().cached_bytes;
    EXPECT_TRUE(this->memp_.Free(p));  // not parked
    EXPECT_EQ(this->memp_.Probe().cached_bytes, before_free);
  });
  EXPECT_TRUE(this->memp_.Free(handed));  // queued to the owner
  owner.Run([&] {
    const size_t used_before = this->memp_.Probe().used_bytes;
    EXPECT_TRUE(this->memp_.Free(this->memp_.Allocate(64)));
    EXPECT_LT(this->memp_.Probe().used_bytes, used_before);
    // Still no parking, still pops.
    const size_t cached = this->memp_.Probe().cached_bytes;
    void* p = this->memp_.Allocate(64);
    EXPECT_TRUE(this->memp_.Free(p));
    EXPECT_LE(this->memp_.Probe().cached_bytes, cached);
  });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

TYPED_TEST(ThreadHeapMempTest, ClearForgetsThreadHeaps) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    EXPECT_NE(this->memp_.Allocate(100), nullptr);
  });
  this->memp_.Clear();
  EXPECT_EQ(this->memp_.Probe().capacity_bytes, 0u);
  EXPECT_TRUE(this->memp_.ProbeThreadHeaps().empty());
  owner.Run([&] {
    EXPECT_FALSE(this->memp_.ThisThreadHasHeap());
    EXPECT_EQ(this->memp_.Allocate(100), nullptr);  // no region at all
    // The region can be added and bound afresh.
    this->BindHere(own);
    EXPECT_TRUE(own.Holds(this->memp_.Allocate(100)));
  });
  EXPECT_EQ(this->memp_.Probe().live_blocks, 1u);
}

TYPED_TEST(ThreadHeapMempTest, ResetPeakReachesThreadHeaps) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    this->memp_.Free(this->memp_.Allocate(10000));
  });
  EXPECT_GE(this->memp_.ProbeThreadHeaps()[0].stats.peak_used_bytes, 10000u);
  this->memp_.ResetPeak();
  owner.Run([&] { this->memp_.Free(this->memp_.Allocate(16)); });
  // The peak restarted: now the refill that the 16 bytes took.
  const MempStats s = this->memp_.ProbeThreadHeaps()[0].stats;
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_GT(s.cached_bytes, 0u);
  EXPECT_EQ(s.peak_used_bytes, s.cached_bytes);
}

// Every worker has a thread heap; each allocates, hands half its blocks to the
// next worker to free, and frees the blocks it is handed. Under TSan this
// checks the queue, the owner's lock-free path and the published counters.
TYPED_TEST(ThreadHeapMempTest, ConcurrentOwnAndRemoteFrees) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::vector<Region> regions(kThreads);
  struct Mailbox {
    absl::Mutex mu;
    std::vector<std::pair<void*, uint8_t>> blocks ABSL_GUARDED_BY(mu);
  };
  std::vector<Mailbox> mailboxes(kThreads);
  std::atomic<int> bound{0};
  std::atomic<bool> done{false};
  std::thread prober([&] {
    while (!done.load()) {
      const MempStats s = this->memp_.Probe();
      EXPECT_EQ(s.used_bytes + s.cached_bytes + s.free_bytes, s.capacity_bytes);
      EXPECT_TRUE(this->memp_.Check().ok());
      this->memp_.ProbeThreadHeaps();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      this->BindHere(regions[t]);
      bound.fetch_add(1);
      while (bound.load() < kThreads) std::this_thread::yield();
      std::vector<std::pair<void*, uint8_t>> mine;
      for (int round = 0; round < kRounds; ++round) {
        const size_t n = 16 + (round * 13 + t * 7) % 2000;
        void* p = this->memp_.Allocate(n);
        ASSERT_NE(p, nullptr);
        const auto seed = static_cast<uint8_t>(round + t);
        Fill(p, 16, seed);
        if (round % 2 == 0) {
          Mailbox& next = mailboxes[(t + 1) % kThreads];
          absl::MutexLock hold(&next.mu);
          next.blocks.push_back({p, seed});
        } else {
          mine.push_back({p, seed});
        }
        std::vector<std::pair<void*, uint8_t>> handed;
        {
          absl::MutexLock hold(&mailboxes[t].mu);
          handed.swap(mailboxes[t].blocks);
        }
        for (auto [block, s] : handed) {
          EXPECT_TRUE(HasFill(block, 16, s));
          this->memp_.Free(block);
        }
      }
      for (auto [block, s] : mine) {
        EXPECT_TRUE(HasFill(block, 16, s));
        this->memp_.Free(block);
      }
      EXPECT_TRUE(this->memp_.Check().ok());
    });
  }
  for (std::thread& t : threads) t.join();
  done.store(true);
  prober.join();
  for (Mailbox& m : mailboxes) {
    absl::MutexLock hold(&m.mu);
    for (auto [block, s] : m.blocks) {
      EXPECT_TRUE(HasFill(block, 16, s));
      this->memp_.Free(block);
    }
  }
  // Every worker has exited: its regions and queued frees are back.
  EXPECT_TRUE(this->memp_.ProbeThreadHeaps().empty());
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  EXPECT_EQ(this->memp_.Probe().region_count, kThreads + 1u);
  ExpectBalanced(this->memp_);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// A bound thread's small frees park in its thread heap's cache: they count as
// cached (neither used nor free), the next allocation of the class reuses
// them, and a second free of a parked block is refused as a double free,
// on the owner as on any other thread.
TYPED_TEST(ThreadHeapMempTest,
           OwnFreesParkInTheThreadHeapCacheAndRefuseDoubleFrees) {
  Region own;
  Worker owner;
  void* p = nullptr;
  owner.Run([&] {
    this->BindHere(own);
    p = this->memp_.Allocate(100);
    ASSERT_TRUE(own.Holds(p));
    EXPECT_TRUE(this->memp_.Free(p));
    const ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
    ASSERT_EQ(thread_heaps.size(), 1u);
    EXPECT_GT(thread_heaps[0].stats.cached_bytes, 0u);
    EXPECT_EQ(thread_heaps[0].stats.used_bytes, 0u);
    EXPECT_EQ(thread_heaps[0].stats.live_blocks, 0u);
    EXPECT_EQ(thread_heaps[0].stats.used_bytes +
                  thread_heaps[0].stats.cached_bytes +
                  thread_heaps[0].stats.free_bytes,
              thread_heaps[0].stats.capacity_bytes);
    EXPECT_EQ(this->memp_.Probe().cached_bytes,
              thread_heaps[0].stats.cached_bytes);
    EXPECT_EQ(this->memp_.UsableSize(p), 0u);  // freed
    EXPECT_FALSE(this->memp_.Free(p));
    EXPECT_EQ(this->misuse_.last(), MempError::kDoubleFree);
    EXPECT_EQ(this->memp_.Reallocate(p, 200), nullptr);
    EXPECT_EQ(this->misuse_.last(), MempError::kDoubleFree);
  });
  // From another thread: its marker is set, the push is refused.
  EXPECT_FALSE(this->memp_.Free(p));
  EXPECT_EQ(this->misuse_.last(), MempError::kDoubleFree);
  EXPECT_EQ(this->misuse_.count(), 3u);
  owner.Run([&] {
    EXPECT_EQ(this->memp_.Allocate(100), p);  // the parked block, reused
    EXPECT_TRUE(this->memp_.Free(p));
    ExpectBalanced(this->memp_);
  });
}

// Frees queued by other threads are drained into the owner's cache, not
// its regions: the owner's next allocation of that class gets one back
// without a refill.
TYPED_TEST(ThreadHeapMempTest, RemoteFreesDrainIntoTheOwnersCache) {
  Region own;
  Worker owner;
  std::vector<void*> blocks;
  owner.Run([&] {
    this->BindHere(own);
    for (int i = 0; i < 20; ++i) blocks.push_back(this->memp_.Allocate(48));
  });
  for (void* p : blocks) EXPECT_TRUE(this->memp_.Free(p));
  owner.Run([&] {
    const size_t cached_before =
        this->memp_.ProbeThreadHeaps()[0].stats.cached_bytes;
    EXPECT_TRUE(this->memp_.SyncThisThread());
    const ThreadHeapStats thread_heap = this->memp_.ProbeThreadHeaps()[0];
    EXPECT_EQ(thread_heap.stats.used_bytes, 0u);
    EXPECT_EQ(thread_heap.stats.cached_bytes,
              cached_before + blocks.size() * tlsf::SpanForRequest(48));
    void* again = this->memp_.Allocate(48);
    // A block freed from the other thread, now parked here.
    EXPECT_NE(std::find(blocks.begin(), blocks.end(), again), blocks.end());
    EXPECT_TRUE(this->memp_.Free(again));
  });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// Unbinding and thread exit hand parked blocks back to the regions before
// the regions move: nothing stays cached, nothing is lost.
TYPED_TEST(ThreadHeapMempTest, UnbindAndExitHandParkedBlocksBack) {
  Region a, b;
  {
    Worker worker;
    worker.Run([&] {
      this->BindHere(a);
      for (int i = 0; i < 30; ++i) this->memp_.Free(this->memp_.Allocate(64));
      EXPECT_GT(this->memp_.Probe().cached_bytes, 0u);
      ASSERT_TRUE(this->memp_.UnbindThisThread().ok());
      EXPECT_EQ(this->memp_.Probe().cached_bytes, 0u);
      this->BindHere(b);
      for (int i = 0; i < 30; ++i) this->memp_.Free(this->memp_.Allocate(64));
      EXPECT_GT(this->memp_.Probe().cached_bytes, 0u);
    });
  }  // the worker exits with blocks parked
  const MempStats s = this->memp_.Probe();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.live_blocks, 0u);
  ExpectBalanced(this->memp_);
  // Both regions are whole again: they can be removed.
  EXPECT_TRUE(this->memp_.RemoveRegion(a.begin()).ok());
  EXPECT_TRUE(this->memp_.RemoveRegion(b.begin()).ok());
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// Parked blocks never keep the owner's own region alive, and the peak
// counts what was taken from the regions, as under CachingMemp: a refill's
// whole batch, in use or parked; a cache hit (a pop, a park) changes it not.
TYPED_TEST(ThreadHeapMempTest, CachedBlocksNeverBlockRemovalAndCountInThePeak) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    void* p = this->memp_.Allocate(100);
    const size_t span = tlsf::SpanForRequest(100);
    const size_t batch = span * SizeClassCache::kFirstRefillBlocks;
    EXPECT_EQ(this->memp_.Probe().used_bytes, span);
    EXPECT_EQ(this->memp_.Probe().cached_bytes, batch - span);
    EXPECT_EQ(this->memp_.Probe().peak_used_bytes, batch);
    EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.peak_used_bytes, batch);
    this->memp_.Free(p);                          // a park
    this->memp_.Free(this->memp_.Allocate(100));  // a pop and a park
    EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
    EXPECT_EQ(this->memp_.Probe().cached_bytes, batch);
    EXPECT_EQ(this->memp_.Probe().peak_used_bytes, batch);
    EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.peak_used_bytes, batch);
    EXPECT_GT(this->memp_.Probe().cached_bytes, 0u);
    EXPECT_TRUE(this->memp_.RemoveRegion(own.begin()).ok());
    EXPECT_EQ(this->memp_.Probe().cached_bytes, 0u);
  });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// Clear forgets parked blocks without touching them; the same memory,
// added and bound again, is not mistaken for parked blocks.
TYPED_TEST(ThreadHeapMempTest, ClearForgetsParkedBlocks) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    for (int i = 0; i < 10; ++i) this->memp_.Free(this->memp_.Allocate(64));
  });
  this->memp_.Clear();
  ASSERT_TRUE(
      this->memp_.AddRegion(this->shared_.begin(), this->shared_.bytes).ok());
  owner.Run([&] {
    this->BindHere(own);
    EXPECT_EQ(this->memp_.Probe().cached_bytes, 0u);
    std::vector<void*> blocks;
    for (int i = 0; i < 10; ++i) blocks.push_back(this->memp_.Allocate(64));
    for (void* p : blocks) EXPECT_TRUE(this->memp_.Free(p));
    ExpectBalanced(this->memp_);
  });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// Clear draws a new marker key. Blocks queued to an owner (freed by another
// thread, so marked with the front-end's key) before a Clear leave their
// markers in memory the Clear forgets; once that memory is added and bound
// again, blocks handed out at the same addresses are freed normally, by
// their owner (parked) or by another thread (queued), not refused as double
// frees. Aligned blocks, because TLSF carves them out of the middle of a
// free block: nothing of the new heap writes their marker words (a block
// carved from a free block's front has them overwritten by its links).
TYPED_TEST(ThreadHeapMempTest, ClearMakesMarkersOfQueuedBlocksStale) {
  constexpr int kBlocks = 16;
  constexpr size_t kAlignment = 256;
  Region own;
  Worker owner;
  const auto allocate_blocks = [&](std::vector<void*>* out) {
    owner.Run([&] {
      this->BindHere(own);
      for (int i = 0; i < kBlocks; ++i) {
        out->push_back(this->memp_.AllocateAligned(kAlignment, 64));
      }
    });
  };
  std::vector<void*> before;
  allocate_blocks(&before);
  // Freed here, queued to the owner, which never applies them.
  for (void* p : before) ASSERT_TRUE(this->memp_.Free(p));
  this->memp_.Clear();
  ASSERT_TRUE(
      this->memp_.AddRegion(this->shared_.begin(), this->shared_.bytes).ok());
  std::vector<void*> after;
  allocate_blocks(&after);
  // The same memory, laid out the same way: the blocks reuse the addresses
  // whose marker words still hold the old markers.
  size_t reused = 0;
  for (void* p : after) {
    reused += std::count(before.begin(), before.end(), p);
  }
  ASSERT_GT(reused, 0u);
  // Half freed by another thread (queued), half by the owner (parked).
  for (int i = 0; i < kBlocks / 2; ++i) EXPECT_TRUE(this->memp_.Free(after[i]));
  owner.Run([&] {
    for (int i = kBlocks / 2; i < kBlocks; ++i) {
      EXPECT_TRUE(this->memp_.Free(after[i]));
    }
    this->memp_.FlushThisThread();
    EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
    ExpectBalanced(this->memp_);
  });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// An owner whose calls are all cache hits still hears of ResetPeak and of
// tagging at its next call (the news rides on its queue's head).
TYPED_TEST(ThreadHeapMempTest, InlineHitsStillCatchUpWithResetPeakAndTagging) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    this->memp_.Free(this->memp_.Allocate(16));  // class 16 now warm
    this->memp_.Free(this->memp_.Allocate(10000));
  });
  const size_t warm = this->memp_.ProbeThreadHeaps()[0].stats.cached_bytes;
  EXPECT_GE(this->memp_.ProbeThreadHeaps()[0].stats.peak_used_bytes, 10000u);
  this->memp_.ResetPeak();
  owner.Run([&] { this->memp_.Free(this->memp_.Allocate(16)); });  // hits
  // Reset at those hits: what is taken now, the warm class's parked blocks.
  EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.cached_bytes, warm);
  EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.peak_used_bytes, warm);

  // A tagged call anywhere stops every thread heap parking blocks.
  BlockTag tag;
  tag.file = __FILE__;
  void* tagged = this->memp_.AllocateTagged(16, 100, tag);  // shared
  ASSERT_NE(tagged, nullptr);
  owner.Run([&] {
    void* p = this->memp_.Allocate(16);
    const size_t cached = this->memp_.ProbeThreadHeaps()[0].stats.cached_bytes;
    EXPECT_TRUE(this->memp_.Free(p));
    EXPECT_EQ(this->memp_.ProbeThreadHeaps()[0].stats.cached_bytes, cached);
  });
  EXPECT_TRUE(this->memp_.Free(tagged));
  EXPECT_EQ(this->misuse_.count(), 0u);
}

}  // namespace
}  // namespace fmemp

namespace fmemp {
namespace {

// DrainAllCaches returns an idle thread's parked blocks to its thread heap's
// regions before it returns (the owner is stopped as a cache's is); the
// owner carries on afterwards.
TYPED_TEST(ThreadHeapMempTest, DrainAllCachesReachesAnIdleThreadsThreadHeap) {
  Region own;
  Worker owner;
  owner.Run([&] {
    this->BindHere(own);
    std::vector<void*> blocks;
    for (int i = 0; i < 40; ++i) {
      blocks.push_back(this->memp_.Allocate(16 + 8 * static_cast<size_t>(i)));
    }
    for (void* p : blocks) EXPECT_TRUE(this->memp_.Free(p));
  });
  const MempStats before = this->memp_.Probe();
  ASSERT_GT(before.cached_bytes, 0u);
  this->memp_.DrainAllCaches();  // the owner is idle, in Worker's wait
  const MempStats after = this->memp_.Probe();
  EXPECT_EQ(after.cached_bytes, 0u);
  EXPECT_EQ(after.used_bytes, 0u);
  EXPECT_EQ(after.free_bytes, before.free_bytes + before.cached_bytes);
  const ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), 1u);
  EXPECT_EQ(thread_heaps[0].stats.cached_bytes, 0u);
  EXPECT_EQ(thread_heaps[0].stats.live_blocks, 0u);
  owner.Run([&] {
    void* p = this->memp_.Allocate(100);
    EXPECT_TRUE(own.Holds(p));
    EXPECT_TRUE(this->memp_.Free(p));
    ExpectBalanced(this->memp_);
  });
  EXPECT_EQ(this->misuse_.count(), 0u);
}

// Owners allocate, fill, check and free in their thread heaps (hits, refills,
// trims, remote frees) while another thread drains every thread heap over and
// over: no block is handed out twice or lost (run under TSan too).
TYPED_TEST(ThreadHeapMempTest, DrainsRaceOwnersWithoutLosingBlocks) {
  constexpr int kOwners = 2;
  constexpr int kRounds = 300;
  Region own[kOwners];
  std::atomic<int> running{kOwners};
  std::atomic<void*> handed{nullptr};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kOwners; ++t) {
    threads.emplace_back([&, t] {
      this->BindHere(own[t]);
      void* blocks[32];
      for (int round = 0; round < kRounds; ++round) {
        for (size_t i = 0; i < 32; ++i) {
          const size_t bytes = 16 + (i * 41 + static_cast<size_t>(round)) % 600;
          blocks[i] = this->memp_.Allocate(bytes);
          if (blocks[i] == nullptr) {
            bad.fetch_add(1);
            continue;
          }
          Fill(blocks[i], 16, static_cast<uint8_t>(t * 64 + i));
        }
        for (size_t i = 0; i < 32; ++i) {
          if (blocks[i] == nullptr) continue;
          if (!HasFill(blocks[i], 16, static_cast<uint8_t>(t * 64 + i))) {
            bad.fetch_add(1);
          }
          if (i == 0) {
            // One block per round goes to the other owner to free.
            void* other = handed.exchange(blocks[i]);
            if (other != nullptr) this->memp_.Free(other);
          } else {
            this->memp_.Free(blocks[i]);
          }
        }
      }
      running.fetch_sub(1);
      while (running.load() != 0) std::this_thread::yield();
      this->memp_.SyncThisThread();
      this->memp_.FlushThisThread();
    });
  }
  std::thread drainer([&] {
    while (running.load() != 0) this->memp_.DrainAllCaches();
  });
  for (std::thread& t : threads) t.join();
  drainer.join();
  if (void* last = handed.exchange(nullptr)) this->memp_.Free(last);
  EXPECT_EQ(bad.load(), 0);
  const MempStats s = this->memp_.Probe();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.cached_bytes, 0u);
  ExpectBalanced(this->memp_);
  EXPECT_EQ(this->misuse_.count(), 0u);
}

}  // namespace
}  // namespace fmemp
