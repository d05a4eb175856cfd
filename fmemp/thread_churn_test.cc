// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/thread_churn_test.cc
//
// Thread churn under every thread-safe policy: each entry of
// fmemp::testkit::ThreadSafeFrontEnds (fmemp/testing/front_end_list.h), the
// C++ front-ends with each lock and the C API with each thread-safe policy.
//
// * ThreadChurnTest.ShortLivedThreadsHandTheirBlocksOn: waves of short-lived
//   threads allocate pattern-filled blocks and exit without freeing them.
//   Half of each thread's blocks go to a collector thread that lives through
//   every wave and verifies and frees them (at most one wave behind); the
//   other half are freed by the next wave's threads, after their allocating
//   threads have exited. No allocation fails, though under the cache
//   policies the collector's cache keeps most of what it frees (its budget
//   exceeds the regions) until an exhaustion drains it; at the end nothing
//   is used and the integrity check passes.
// * ThreadChurnTest.RegionRemovalRacesAllocationAndFree: a remover thread
//   removes and re-adds a region while workers allocate, reallocate and
//   free (their own blocks and other workers'). No block handed out while
//   the region was removed may lie in it (see RemovalRace for how that is
//   established soundly), no byte of the removed region may be written, and
//   no block may be lost.
//
// Run under --config=tsan too. Each test is bounded (a soft deadline per
// policy), so it stays well under 20 s under TSan on 2 cores.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/testing/front_end.h"
#include "fmemp/testing/front_end_gtest.h"
#include "fmemp/testing/front_end_list.h"
#include "gtest/gtest.h"

namespace fmemp {
namespace {

using testkit::Outcome;
using testkit::Usage;

// --- Blocks and patterns ---

struct Block {
  uint8_t* ptr;
  size_t size;
  uint32_t seed;  // unique per allocation
};

uint8_t PatternByte(uint32_t seed, size_t i) {
  return static_cast<uint8_t>(((seed * 2654435761u) >> 24) ^ (i * 131));
}

void WritePattern(const Block& b) {
  for (size_t i = 0; i < b.size; ++i) b.ptr[i] = PatternByte(b.seed, i);
}

bool HasPattern(const Block& b) {
  for (size_t i = 0; i < b.size; ++i) {
    if (b.ptr[i] != PatternByte(b.seed, i)) return false;
  }
  return true;
}

// A queue of blocks between threads.
class BlockQueue {
 public:
  void Push(const Block& b) {
    absl::MutexLock hold(&mu_);
    blocks_.push_back(b);
  }
  void PushAll(const std::vector<Block>& blocks) {
    absl::MutexLock hold(&mu_);
    blocks_.insert(blocks_.end(), blocks.begin(), blocks.end());
  }
  std::vector<Block> TakeAll() {
    std::vector<Block> taken;
    absl::MutexLock hold(&mu_);
    taken.swap(blocks_);
    return taken;
  }
  // Up to `n` blocks.
  std::vector<Block> Take(size_t n) {
    absl::MutexLock hold(&mu_);
    const size_t k = std::min(n, blocks_.size());
    std::vector<Block> taken(blocks_.end() - static_cast<ptrdiff_t>(k),
                             blocks_.end());
    blocks_.resize(blocks_.size() - k);
    return taken;
  }

 private:
  absl::Mutex mu_;
  std::vector<Block> blocks_ ABSL_GUARDED_BY(mu_);
};

// What went wrong, counted by every thread; all must stay 0.
struct Errors {
  std::atomic<int> content{0};    // a pattern (or calloc's zeroes) broken
  std::atomic<int> alignment{0};  // an aligned block that is not
  std::atomic<int> bad_free{0};   // a free of a live block refused
  std::atomic<int> overlap{0};    // (removal) block in a removed region
  std::atomic<int> canary{0};     // (removal) removed region written
  std::atomic<int> region_calls{0};
  std::atomic<int> exhausted{0};  // (churn) NULL from a pool far from full

  void ExpectNone() const {
    EXPECT_EQ(content.load(), 0) << "block contents broken";
    EXPECT_EQ(alignment.load(), 0) << "misaligned blocks";
    EXPECT_EQ(bad_free.load(), 0) << "frees of live blocks refused";
    EXPECT_EQ(overlap.load(), 0)
        << "blocks handed out in a region while it was removed";
    EXPECT_EQ(canary.load(), 0) << "a removed region was written";
    EXPECT_EQ(region_calls.load(), 0) << "region calls failed";
    EXPECT_EQ(exhausted.load(), 0) << "allocations failed";
  }
};

// Allocates one block of a random kind and size (up to max_size bytes) and
// writes its pattern; returns {nullptr, ...} when the pool is full.
template <typename FrontEnd>
Block AllocateRandom(FrontEnd& backend, std::mt19937& rng, size_t max_size,
                     std::atomic<uint32_t>& next_seed, Errors& errors) {
  const size_t size = 1 + rng() % max_size;
  void* p = nullptr;
  switch (rng() % 4) {
    case 0:
      p = backend.Allocate(size);
      break;
    case 1: {
      const size_t align = size_t{16} << (rng() % 6);
      p = backend.AllocateAligned(align, size);
      if (p != nullptr && reinterpret_cast<uintptr_t>(p) % align != 0) {
        ++errors.alignment;
      }
      break;
    }
    case 2: {
      p = backend.Calloc(1, size);
      const uint8_t* z = static_cast<const uint8_t*>(p);
      if (z != nullptr &&
          std::any_of(z, z + size, [](uint8_t c) { return c != 0; })) {
        ++errors.content;
      }
      break;
    }
    default: {
      // Grown by realloc from a smaller block: its bytes must come along.
      const Block small{static_cast<uint8_t*>(backend.Allocate(size / 2 + 1)),
                        size / 2 + 1, next_seed.fetch_add(1)};
      if (small.ptr == nullptr) break;
      WritePattern(small);
      p = backend.Reallocate(small.ptr, size);
      if (p == nullptr) {
        if (!HasPattern(small)) ++errors.content;
        if (!backend.Free(small.ptr)) ++errors.bad_free;
        break;
      }
      if (!HasPattern(
              Block{static_cast<uint8_t*>(p), small.size, small.seed})) {
        ++errors.content;
      }
      break;
    }
  }
  const Block b{static_cast<uint8_t*>(p), size, next_seed.fetch_add(1)};
  if (b.ptr != nullptr) WritePattern(b);
  return b;
}

// Verifies and frees `b`.
template <typename FrontEnd>
void Release(FrontEnd& backend, const Block& b, Errors& errors) {
  if (!HasPattern(b)) ++errors.content;
  if (!backend.Free(b.ptr)) ++errors.bad_free;
}

// Heap memory for regions, owned by the test.
class Arena {
 public:
  explicit Arena(size_t bytes) : bytes_(bytes), data_(new uint8_t[bytes]) {}
  uint8_t* begin() const { return data_.get(); }
  uint8_t* end() const { return data_.get() + bytes_; }
  bool Overlaps(const Block& b) const {
    return b.ptr < end() && b.ptr + b.size > begin();
  }

 private:
  size_t bytes_;
  std::unique_ptr<uint8_t[]> data_;
};

template <typename FrontEnd>
class ThreadChurnTest : public testing::Test {};

FMEMP_FRONT_END_TYPED_TEST_SUITE(ThreadChurnTest, testkit::ThreadSafeFrontEnds);

// --- Waves of short-lived threads ---

TYPED_TEST(ThreadChurnTest, ShortLivedThreadsHandTheirBlocksOn) {
  constexpr int kWaves = 30;
  constexpr int kThreadsPerWave = 4;
  constexpr int kBlocksPerThread = 24;
  Arena base(512 * 1024), extra(256 * 1024);
  TypeParam backend;
  ASSERT_EQ(backend.Init(base.begin(), base.end()), Outcome::kOk);
  ASSERT_EQ(backend.AddRegion(extra.begin(), extra.end()), Outcome::kOk);

  Errors errors;
  std::atomic<uint32_t> next_seed{1};
  std::atomic<int> allocated{0};      // blocks handed on by wave threads
  std::atomic<int> sent{0};           // handed to the collector
  std::atomic<int> collected{0};      // freed by the collector
  std::atomic<int> orphans_freed{0};  // freed by a later wave (or the end)
  BlockQueue to_collector;
  // Blocks whose allocating threads have exited (or exit before the next
  // wave starts): the next wave frees them.
  BlockQueue orphans;

  // The surviving thread: verifies and frees what the wave threads send it.
  std::atomic<bool> waves_done{false};
  std::thread collector([&] {
    for (;;) {
      const bool done = waves_done.load(std::memory_order_acquire);
      const std::vector<Block> taken = to_collector.TakeAll();
      for (const Block& b : taken) {
        Release(backend, b, errors);
        ++collected;
      }
      if (done) break;  // everything sent before `done` has been taken
      if (taken.empty()) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  });

  int sent_before_last_wave = 0;
  for (int wave = 0; wave < kWaves; ++wave) {
    // The collector may lag one wave behind, no more: a collector starved
    // by a loaded machine would otherwise let live blocks pile up wave
    // after wave until the regions were full. Waits for a count, not for
    // time.
    while (collected.load() < sent_before_last_wave) std::this_thread::yield();
    sent_before_last_wave = sent.load();
    // Blocks of the previous wave, whose threads have all been joined.
    std::vector<Block> previous = orphans.TakeAll();
    const size_t share = previous.size() / kThreadsPerWave + 1;
    BlockQueue inherited;
    inherited.PushAll(previous);
    std::vector<std::thread> threads;
    threads.reserve(kThreadsPerWave);
    for (int t = 0; t < kThreadsPerWave; ++t) {
      threads.emplace_back([&, wave, t] {
        std::mt19937 rng(1000 * wave + t);
        // Free blocks allocated by threads that no longer exist.
        for (const Block& b : inherited.Take(share)) {
          Release(backend, b, errors);
          ++orphans_freed;
        }
        std::vector<Block> mine;
        for (int i = 0; i < kBlocksPerThread; ++i) {
          const Block b = AllocateRandom(backend, rng, i % 8 == 0 ? 4096 : 256,
                                         next_seed, errors);
          if (b.ptr == nullptr) {
            ++errors.exhausted;  // the pool is far from full: never NULL
            continue;
          }
          mine.push_back(b);
        }
        // Exit without freeing: half to the collector, half to the next
        // wave.
        for (size_t i = 0; i < mine.size(); ++i) {
          if (i % 2 == 0) {
            to_collector.Push(mine[i]);
            ++sent;
          } else {
            orphans.Push(mine[i]);
          }
          ++allocated;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    // A share rounding left some inherited blocks: free them here (their
    // threads have exited too).
    for (const Block& b : inherited.TakeAll()) {
      Release(backend, b, errors);
      ++orphans_freed;
    }
  }
  for (const Block& b : orphans.TakeAll()) {
    Release(backend, b, errors);
    ++orphans_freed;
  }
  waves_done.store(true, std::memory_order_release);
  collector.join();

  errors.ExpectNone();
  EXPECT_EQ(allocated.load(), kWaves * kThreadsPerWave * kBlocksPerThread);
  EXPECT_EQ(collected.load() + orphans_freed.load(), allocated.load());
  EXPECT_GT(orphans_freed.load(), allocated.load() / 3);
  const Usage usage = backend.Probe();
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.live, 0u);
  EXPECT_EQ(usage.invalid_frees, 0u);
  std::string why;
  EXPECT_EQ(backend.Check(&why), Outcome::kOk) << why;
}

// --- Region removal racing allocation and frees ---
//
// How "no block handed out while the region was removed lies in it" is
// established soundly, without a lock around the allocator calls:
//
// `epoch` counts the region's state changes. The remover makes it even only
// *after* RemoveRegion has returned, and odd again *before* it calls
// AddRegion; so whenever epoch is even, the region is absent. A worker reads
// epoch (e1) before an allocation call and again (e2) after it. If e1 == e2
// and e1 is even, the region was absent during the whole call:
// * the removal happened before the call: e1 was stored after RemoveRegion
//   returned, and the worker's acquire load of e1 is before its call, so
//   RemoveRegion's critical section happens-before the call's;
// * no re-add happened before the call's critical section ended: the
//   remover stores e1 + 1 before AddRegion, so if AddRegion's critical
//   section came first, the worker's later load (e2) would see e1 + 1 or
//   more (the allocator's lock orders the two critical sections).
// So a block inside the region from such a call is a violation. (A call
// that saw the epoch change may legitimately get a block there.)
//
// Two more checks: while the region is removed the remover fills it with a
// canary and verifies the canary before re-adding it, so any write into the
// removed memory (by a worker given a block there, or by the allocator
// itself) is caught; and workers verify every block's pattern before
// freeing it, which catches the remover's canary landing on a block that
// was still live (a removal that should have been refused). At the end
// every block is freed and used == 0: none was lost.
template <typename FrontEnd>
class RemovalRace {
 public:
  static constexpr int kWorkers = 3;
  static constexpr int kMinOpsPerWorker = 2000;
  static constexpr int kMinRemovals = 40;
  static constexpr int kMinInExtra = 40;
  static constexpr size_t kMaxLivePerWorker = 24;
  // Ordinary blocks go to the base region (the smaller one, which the
  // good-fit search prefers); "big" blocks fit only in the extra region.
  static constexpr size_t kBaseBytes = 128 * 1024;
  static constexpr size_t kExtraBytes = 256 * 1024;
  static constexpr size_t kBigBytes = 160 * 1024;

  RemovalRace() : base_(kBaseBytes), extra_(kExtraBytes) {}

  void Run() {
    ASSERT_EQ(backend_.Init(base_.begin(), base_.end()), Outcome::kOk);
    ASSERT_EQ(backend_.AddRegion(extra_.begin(), extra_.end()), Outcome::kOk);
    epoch_.store(1);
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::thread remover([this] { Remove(); });
    std::vector<std::thread> workers;
    workers.reserve(kWorkers);
    for (int id = 0; id < kWorkers; ++id) {
      workers.emplace_back([this, id] { Work(id); });
    }
    for (std::thread& w : workers) w.join();
    // Blocks handed over after their receiver stopped.
    for (BlockQueue& inbox : inboxes_) {
      for (const Block& b : inbox.TakeAll()) Release(backend_, b, errors_);
    }
    stop_.store(true, std::memory_order_release);
    remover.join();

    errors_.ExpectNone();
    testing::Test::RecordProperty("removals", removals_.load());
    testing::Test::RecordProperty("blocks_in_region", in_extra_.load());
    testing::Test::RecordProperty("calls_while_removed",
                                  calls_while_removed_.load());
    EXPECT_GE(removals_.load(), 1) << "the region was never removed";
    EXPECT_GT(in_extra_.load(), 0) << "no block was ever placed in the region";
    EXPECT_GT(calls_while_removed_.load(), 0)
        << "no allocation ran while the region was removed";
    const Usage usage = backend_.Probe();
    EXPECT_EQ(usage.used, 0u) << "blocks were lost";
    EXPECT_EQ(usage.live, 0u);
    EXPECT_EQ(usage.invalid_frees, 0u);
    EXPECT_EQ(usage.regions, 2u);
    std::string why;
    EXPECT_EQ(backend_.Check(&why), Outcome::kOk) << why;
    // The region is empty: it can go before its memory does.
    EXPECT_EQ(backend_.RemoveRegion(extra_.begin()), Outcome::kOk);
  }

 private:
  // The canary, word by word (8-byte words keep the fill and the check
  // cheap under TSan).
  static uint64_t CanaryWord(size_t i) {
    return 0xA5C3E1F00F1E3C5Aull ^ (i * 0x9E3779B97F4A7C15ull);
  }
  void WriteCanary() {
    for (size_t i = 0; i < kExtraBytes / 8; ++i) {
      const uint64_t word = CanaryWord(i);
      std::memcpy(extra_.begin() + 8 * i, &word, sizeof(word));
    }
  }
  bool HasCanary() const {
    for (size_t i = 0; i < kExtraBytes / 8; ++i) {
      uint64_t word;
      std::memcpy(&word, extra_.begin() + 8 * i, sizeof(word));
      if (word != CanaryWord(i)) return false;
    }
    return true;
  }

  // Runs an allocator call that may hand out a block, checking it against
  // the epoch as explained above.
  template <typename Call>
  Block Allocation(size_t size, Call call) {
    const uint64_t e1 = epoch_.load(std::memory_order_acquire);
    void* p = call();
    const uint64_t e2 = epoch_.load(std::memory_order_acquire);
    if (e1 % 2 == 0) ++calls_while_removed_;
    const Block b{static_cast<uint8_t*>(p), size, next_seed_.fetch_add(1)};
    if (b.ptr != nullptr && extra_.Overlaps(b)) {
      ++in_extra_;
      if (e1 == e2 && e1 % 2 == 0) ++errors_.overlap;
    }
    return b;
  }

  void Work(int id) {
    std::mt19937 rng(77 + id);
    std::vector<Block> mine;  // long-lived, all in the base region
    BlockQueue& next = inboxes_[(id + 1) % kWorkers];
    // Blocks in the extra region are short-lived (freed here or by the next
    // worker right away), so that the region empties and removals succeed.
    auto keep = [&](const Block& b) {
      if (!extra_.Overlaps(b)) {
        mine.push_back(b);
      } else if (rng() % 2 == 0) {
        next.Push(b);  // freed by the next worker
      } else {
        Release(backend_, b, errors_);
      }
    };
    for (int op = 0;; ++op) {
      if (op >= kMinOpsPerWorker &&
          ((removals_.load(std::memory_order_relaxed) >= kMinRemovals &&
            in_extra_.load(std::memory_order_relaxed) >= kMinInExtra) ||
           std::chrono::steady_clock::now() > deadline_)) {
        break;
      }
      if (op % 8 == 0) std::this_thread::yield();  // let the remover in
      // Cross-thread frees of what the previous worker handed over.
      for (const Block& b : inboxes_[id].TakeAll()) {
        Release(backend_, b, errors_);
      }
      const unsigned choice = rng() % 16;
      if (choice == 0) {
        // A big block: only the extra region can hold it, so it is NULL
        // while the region is removed (or holds another big block).
        const Block b = Allocation(
            kBigBytes, [this] { return backend_.Allocate(kBigBytes); });
        if (b.ptr == nullptr) continue;
        WritePattern(b);
        keep(b);
      } else if (choice < 8 && mine.size() < kMaxLivePerWorker) {
        const size_t size = 1 + rng() % 512;
        const size_t align = size_t{16} << (rng() % 4);
        const unsigned kind = rng() % 3;
        const Block b = Allocation(size, [&]() -> void* {
          switch (kind) {
            case 0:
              return backend_.Allocate(size);
            case 1:
              return backend_.AllocateAligned(align, size);
            default:
              return backend_.Calloc(1, size);
          }
        });
        if (b.ptr == nullptr) continue;
        WritePattern(b);
        keep(b);
      } else if (choice < 11 && !mine.empty()) {
        // Realloc may move a block into the extra region.
        const size_t i = rng() % mine.size();
        const Block b = mine[i];
        if (!HasPattern(b)) ++errors_.content;
        const size_t size = 1 + rng() % 2048;
        const Block moved =
            Allocation(size, [&] { return backend_.Reallocate(b.ptr, size); });
        if (moved.ptr == nullptr) continue;  // b is unchanged
        if (!HasPattern(Block{moved.ptr, std::min(size, b.size), b.seed})) {
          ++errors_.content;
        }
        mine[i] = mine.back();
        mine.pop_back();
        WritePattern(moved);
        keep(moved);
      } else if (!mine.empty()) {
        const size_t i = rng() % mine.size();
        const Block b = mine[i];
        mine[i] = mine.back();
        mine.pop_back();
        if (rng() % 3 == 0) {
          next.Push(b);  // freed by the next worker
        } else {
          Release(backend_, b, errors_);
        }
      }
    }
    for (const Block& b : mine) Release(backend_, b, errors_);
  }

  void Remove() {
    bool present = true;
    while (!stop_.load(std::memory_order_acquire)) {
      if (!present) {
        // Memory of a removed region belongs to its owner again: nobody,
        // the allocator included, may have written it since the canary.
        if (!HasCanary()) ++errors_.canary;
        epoch_.fetch_add(1, std::memory_order_acq_rel);  // odd: may be there
        if (backend_.AddRegion(extra_.begin(), extra_.end()) == Outcome::kOk) {
          present = true;
        } else {
          ++errors_.region_calls;
        }
      } else {
        switch (backend_.RemoveRegion(extra_.begin())) {
          case Outcome::kOk:
            present = false;
            epoch_.fetch_add(1, std::memory_order_acq_rel);  // even: absent
            removals_.fetch_add(1, std::memory_order_relaxed);
            WriteCanary();
            break;
          case Outcome::kBusy:  // a worker holds a block there: retry
            break;
          default:
            ++errors_.region_calls;
            break;
        }
      }
      // Stay in each state a little while so that workers run in it.
      for (int i = 0; i < 4; ++i) std::this_thread::yield();
    }
    if (!present) {
      epoch_.fetch_add(1, std::memory_order_acq_rel);
      if (backend_.AddRegion(extra_.begin(), extra_.end()) != Outcome::kOk) {
        ++errors_.region_calls;
      }
    }
  }

  // In the order that wastes least padding (a SpinLock is cache-line
  // aligned).
  FrontEnd backend_;
  std::atomic<uint64_t> epoch_{1};
  std::chrono::steady_clock::time_point deadline_;
  Arena base_, extra_;
  BlockQueue inboxes_[kWorkers];
  std::atomic<uint32_t> next_seed_{1};
  std::atomic<int> removals_{0};
  std::atomic<int> in_extra_{0};
  std::atomic<int> calls_while_removed_{0};
  Errors errors_;
  std::atomic<bool> stop_{false};
};

TYPED_TEST(ThreadChurnTest, RegionRemovalRacesAllocationAndFree) {
  RemovalRace<TypeParam> race;
  race.Run();
}

}  // namespace
}  // namespace fmemp
