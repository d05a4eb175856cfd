// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// tests/stress/stress_harness.h
//
// StressHarness<FrontEnd>: many threads using one fmemp front-end at once,
// every block's bytes checked, for a bounded time. Written once over the
// shared adapter (fmemp/testing/front_end.h); stress_test.cc runs it for every
// thread-safe policy. docs/STRESS.md says how to run it long and how to read
// its output.
//
// Threads
// * Workers, `threads` at a time, in waves: each wave's threads run for a
//   slice of the time (or of the operation budget) and exit. A worker owns
//   a slot, which outlives it: its live blocks stay in the slot for the
//   next wave's thread, so blocks routinely outlive the thread that
//   allocated them. An exiting worker also hands a quarter of its blocks to
//   the collector.
// * Each operation is drawn at random (a fixed seed per thread, derived
//   from the run's seed, the wave and the slot, and named in every failure
//   message): malloc of random sizes (mostly 1..1024, some up to 64 KiB,
//   some 0), calloc (zeroes checked), aligned malloc (16..4096), realloc
//   (grow and shrink, from NULL, to 0), free, handing a block to another
//   slot's inbox (that slot's thread verifies it and frees it or adopts it:
//   later reallocs and frees happen on a thread that did not allocate it),
//   UsableSize, and a flush of the thread's own cache.
// * Per-thread heaps (front-ends with kHasThreadHeaps): even slots have a
//   region of their own (kThreadHeapBytes), added by the slot's first thread
//   and bound by every thread of the slot, live blocks and all. Slots 0, 4, ...
//   fall back to the shared regions when the thread heap is full, slots 2, 6,
//   ... fail the request. A bound worker unbinds now and then and rebinds soon
//   after, checks its own thread heap with Check, and mostly exits bound: its
//   thread heap goes back to the shared regions with the blocks the slot still
//   holds. Odd slots bind nothing. Blocks of thread heaps travel like any
//   other, so other threads free (queued to the owner) and reallocate them.
// * The collector: lives through every wave, verifies the blocks sent to it,
//   holds up to kCollectorHold of them for a while and frees them.
// * The region manager: removes and re-adds kManagedRegions regions of its
//   own while everyone allocates. RemoveRegion may say busy; that is fine.
//   Half the time it retires a region instead (RetireRegion, issue 15): from
//   its return on no call may get a block there (its epoch is even, as for a
//   removed region), and the region goes when whichever thread frees its
//   last block (the handler marks it gone; then the canary is written and
//   later checked as for a removal). Now and then it cancels a retirement
//   while blocks still live in the region.
// * The prober: Probe, ProbeRegions, ProbeThreadHeaps and Check, over and over,
//   and every eighth round a drain of every thread's cache. Check must
//   always pass; used <= capacity and used + cached + free == capacity, in
//   the whole and per region and per thread heap.
// * The limiter (budgets, fmemp/budget.h): sets, changes and removes the
//   front-end's hard and soft limits while everyone allocates, each near
//   the bytes the budget counts at that moment (some below it), so that
//   refusals and soft-limit crossings really happen. Bound workers set,
//   change and remove their own thread heap's limits the same way.
//
// Hard limits are exact: a charge never takes the budget's usage past the
// limit the charge read (fmemp/budget.h). A charge reads the limit inside
// an allocating call, and lowering a limit below the usage frees nothing,
// so the check is made only where it is exact. The limiter, after setting
// a limit, waits until every allocating call that was under way has
// returned (each worker's call counter is odd during a call); from then
// on ("settled") every charge reads that limit. The prober, alone, then
// reads the usage again and again: each reading must be at most
// max(limit, the previous reading), because a charge lands at or under the
// limit and a refund only lowers it (the first reading after settling
// sets the start). A thread heap's own limit is checked by its thread,
// whose allocations are its heap's only charges: after setting the limit
// (or binding, which charges the region's live blocks whatever the limit)
// it reads its heap's usage; later readings must stay at most max(limit,
// that reading). The limiter's RemoveLimits (which removes the thread
// heaps' limits too, one heap after another) makes an epoch odd before
// and even after: a thread sets its heap's limit only while the epoch is
// even, and drops its check (and its limit) once it sees the epoch moved.
// The seq_cst fences between each side's limit and its epoch or regime
// word make these checks exact in the C++ memory model; under TSan (no
// fences with GCC) they rely on x86's order, which the sanitizer runs on.
//
// Every NULL is classed by whether a limit may have been in force during
// its call (the limiter's regime word, odd from before a hard limit is set
// until after its removal has settled; or the thread's own heap limit):
// the front-end's limit_refusals can be no more than the NULLs under a
// limit, and its failed_allocations must equal every NULL the harness got.
// The soft-limit handlers count their calls and must never overlap for one
// budget.
//
// Every block carries block_pattern.h's pattern over every byte; it is
// checked before every free, before every realloc (and the preserved prefix
// after it), when a block changes hands, and at the end.
//
// No block handed out while a region was removed may lie in it. As in
// fmemp/thread_churn_test.cc's RemovalRace, per region: `epoch` is made
// even only after RemoveRegion has returned and odd before AddRegion is
// called. An allocating call reads every epoch before (e1) and, if its
// block lies in a managed region, that region's again after (e2). If
// e1 == e2 and even, the region was absent during the whole call (the
// removal's critical section happened before the call; a re-add's critical
// section would have made e2 differ), so the block is a violation. While a
// region is removed the manager fills it with a canary and checks it before
// re-adding it: nothing may write a removed region. Blocks that land in a
// managed region are kept only a few operations, so that the regions empty
// and removals succeed. Ordinary requests rarely land there: the base
// regions are smaller, and the region index prefers the smallest region
// that fits. "Big" requests fit only there.
//
// At the end the limiter leaves no limit set (the budget still counting),
// every block is freed, the caches are drained, the budget's usage is 0,
// the limits are removed, used is back to its starting value (0) with no
// live blocks, Check passes, every region but the first can be removed,
// and no misuse was reported.

#ifndef FMEMP_TESTS_STRESS_STRESS_HARNESS_H_
#define FMEMP_TESTS_STRESS_STRESS_HARNESS_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/config.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fmemp/testing/front_end.h"
#include "gtest/gtest.h"
#include "tests/stress/block_pattern.h"

namespace fmemp {
namespace stress {

using testkit::kNoLimit;
using testkit::Outcome;
using testkit::OutcomeName;
using testkit::RegionUsage;
using testkit::ThreadHeapUsage;
using testkit::Usage;

// How long and how hard to run; see StressConfig::FromEnvironment.
struct StressConfig {
  double seconds = 5;       // per policy
  int threads = 4;          // workers per wave
  uint64_t max_ops = 0;     // allocator calls per policy; 0: no limit
  uint64_t seed = 0x5eed;   // the run's seed
  double wave_seconds = 0;  // 0: seconds / 20, clamped to [0.1, 1]

  // The defaults, overridden by FMEMP_STRESS_SECONDS, FMEMP_STRESS_THREADS,
  // FMEMP_STRESS_MAX_OPS, FMEMP_STRESS_SEED and FMEMP_STRESS_WAVE_SECONDS.
  // Without FMEMP_STRESS_SECONDS, a run also stops at kDefaultMaxOps (so
  // unsanitised builds finish early); with it, only the time limit applies
  // unless FMEMP_STRESS_MAX_OPS is set too.
  static constexpr double kDefaultSeconds = 5;
  static constexpr uint64_t kDefaultMaxOps = 400000;
  static StressConfig FromEnvironment() {
    StressConfig c;
    c.max_ops = kDefaultMaxOps;
    if (const char* s = std::getenv("FMEMP_STRESS_SECONDS")) {
      c.seconds = std::max(0.1, std::atof(s));
      c.max_ops = 0;
    }
    if (const char* s = std::getenv("FMEMP_STRESS_THREADS")) {
      c.threads = std::max(1, std::min(64, std::atoi(s)));
    }
    if (const char* s = std::getenv("FMEMP_STRESS_MAX_OPS")) {
      c.max_ops = std::strtoull(s, nullptr, 0);
    }
    if (const char* s = std::getenv("FMEMP_STRESS_SEED")) {
      c.seed = std::strtoull(s, nullptr, 0);
    }
    if (const char* s = std::getenv("FMEMP_STRESS_WAVE_SECONDS")) {
      c.wave_seconds = std::max(0.01, std::atof(s));
    }
    if (c.wave_seconds == 0) {
      c.wave_seconds = std::max(0.1, std::min(1.0, c.seconds / 20));
    }
    return c;
  }
  std::string ToString() const {
    return absl::StrFormat(
        "seconds=%.1f threads=%d max_ops=%u seed=%#x wave_seconds=%.2f",
        seconds, threads, max_ops, seed, wave_seconds);
  }
};

// What went wrong. Every thread adds; the test thread reports.
class Failures {
 public:
  static constexpr int kKept = 20;

  void Add(const std::string& message) {
    const int n = count_.fetch_add(1, std::memory_order_relaxed);
    if (n >= kKept) return;
    std::fprintf(stderr, "STRESS FAILURE: %s\n", message.c_str());
    absl::MutexLock hold(&mu_);
    messages_.push_back(message);
  }
  int count() const { return count_.load(std::memory_order_relaxed); }
  std::string Summary() const {
    absl::MutexLock hold(&mu_);
    return absl::StrJoin(messages_, "\n");
  }

 private:
  std::atomic<int> count_{0};
  mutable absl::Mutex mu_;
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
};

// Blocks on their way between threads.
class BlockQueue {
 public:
  void Push(const Block& b) {
    absl::MutexLock hold(&mu_);
    blocks_.push_back(b);
  }
  // Up to `n` blocks, oldest first.
  std::vector<Block> Take(size_t n) {
    absl::MutexLock hold(&mu_);
    const size_t k = std::min(n, blocks_.size());
    std::vector<Block> taken(blocks_.begin(), blocks_.begin() + k);
    blocks_.erase(blocks_.begin(), blocks_.begin() + k);
    return taken;
  }
  // Everything, waiting up to `timeout` for something to arrive.
  std::vector<Block> TakeAll(absl::Duration timeout = absl::ZeroDuration()) {
    mu_.LockWhenWithTimeout(absl::Condition(this, &BlockQueue::NonEmpty),
                            timeout);
    std::vector<Block> taken(blocks_.begin(), blocks_.end());
    blocks_.clear();
    mu_.Unlock();
    return taken;
  }

 private:
  bool NonEmpty() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !blocks_.empty();
  }

  absl::Mutex mu_;
  std::deque<Block> blocks_ ABSL_GUARDED_BY(mu_);
};

// Memory the test owns and lends to the front-end as a region.
class Arena {
 public:
  explicit Arena(size_t bytes) : bytes_(bytes), data_(new uint8_t[bytes]) {}
  uint8_t* begin() const { return data_.get(); }
  uint8_t* end() const { return data_.get() + bytes_; }
  size_t bytes() const { return bytes_; }
  bool Contains(const void* p) const {
    return p >= begin() && p < static_cast<const void*>(end());
  }

 private:
  size_t bytes_;
  std::unique_ptr<uint8_t[]> data_;
};

template <typename FrontEnd>
class StressHarness {
 public:
  // Sizes. Base regions are smaller than managed ones, so ordinary requests
  // prefer them (the region index takes the smallest region that fits);
  // big requests fit only in a managed region.
  static constexpr int kBaseRegions = 8;
  static constexpr size_t kBaseBytes = size_t{512} << 10;
  static constexpr int kManagedRegions = 3;
  static constexpr size_t kManagedBytes = size_t{1} << 20;
  static constexpr size_t kThreadHeapBytes = size_t{256} << 10;
  static constexpr size_t kBigMin = size_t{600} << 10;
  static constexpr size_t kBigMax = size_t{900} << 10;
  static constexpr size_t kMaxSmall = 1024;
  static constexpr size_t kMaxLarge = size_t{64} << 10;
  static constexpr size_t kMaxLivePerWorker = 48;
  static constexpr size_t kCollectorHold = 128;
  static constexpr int kMinWaves = 2;
  // Limits are set within this much of the budget's usage (below by up to
  // half of it); a thread heap's within kHeapLimitSlack.
  static constexpr size_t kLimitSlack = size_t{64} << 10;
  static constexpr size_t kHeapLimitSlack = size_t{16} << 10;
  // A reading this close under the hard limit counts as "at the limit".
  static constexpr size_t kNearLimit = size_t{16} << 10;

  explicit StressHarness(const StressConfig& config)
      : config_(config),
        inboxes_(config.threads),
        slots_(config.threads),
        call_seq_(new CallCounter[config.threads]) {
    for (int i = 0; i < config.threads; ++i) {
      heap_soft_.push_back(std::make_unique<SoftWatch>());
    }
    for (int i = 0; i < kBaseRegions; ++i) {
      base_.push_back(std::make_unique<Arena>(kBaseBytes));
    }
    for (int i = 0; i < kManagedRegions; ++i) {
      managed_.push_back(std::make_unique<Managed>(kManagedBytes));
    }
    if (FrontEnd::kHasThreadHeaps) {
      for (int i = 0; i < config.threads; ++i) {
        thread_heaps_.push_back(IsThreadHeapSlot(i)
                                    ? std::make_unique<Arena>(kThreadHeapBytes)
                                    : nullptr);
      }
    }
  }

  void Run() {
    const std::string name = FrontEnd::Name();
    std::printf("[%s] %s\n", name.c_str(), config_.ToString().c_str());
    ASSERT_EQ(backend_.Init(base_[0]->begin(), base_[0]->end()), Outcome::kOk);
    for (int i = 1; i < kBaseRegions; ++i) {
      ASSERT_EQ(backend_.AddRegion(base_[i]->begin(), base_[i]->end()),
                Outcome::kOk);
    }
    for (auto& m : managed_) {
      ASSERT_EQ(backend_.AddRegion(m->arena.begin(), m->arena.end()),
                Outcome::kOk);
    }
    const Usage start = backend_.Probe();
    EXPECT_EQ(start.used, 0u);

    const auto t0 = std::chrono::steady_clock::now();
    const auto deadline =
        t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(config_.seconds));
    const auto wave_length =
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(config_.wave_seconds));
    std::thread collector([this] { Collect(); });
    std::thread manager([this] { ManageRegions(); });
    std::thread prober([this] { ProbeLoop(); });
    std::thread limiter([this] { ManageLimits(); });

    int wave = 0;
    for (;; ++wave) {
      const auto now = std::chrono::steady_clock::now();
      const uint64_t calls = calls_.load(std::memory_order_relaxed);
      const bool over =
          now >= deadline || (config_.max_ops != 0 && calls >= config_.max_ops);
      if (wave >= kMinWaves && over) break;
      // Read by the wave's threads, which start after these stores.
      wave_end_ = std::max(std::min(now + wave_length, deadline),
                           now + wave_length / 4);
      wave_call_limit_ =
          config_.max_ops == 0
              ? UINT64_MAX
              : calls + std::max<uint64_t>(config_.max_ops / 16, 1000);
      std::vector<std::thread> workers;
      workers.reserve(config_.threads);
      for (int slot = 0; slot < config_.threads; ++slot) {
        workers.emplace_back([this, slot, wave] { Work(slot, wave); });
      }
      for (std::thread& t : workers) t.join();
    }
    const int waves = wave;

    stop_manager_.store(true, std::memory_order_release);
    manager.join();
    stop_limiter_.store(true, std::memory_order_release);
    limiter.join();
    // Everything the slots and inboxes still hold, freed by this thread
    // (whose allocating threads have all exited).
    ThreadContext self = Context("final", -1, wave, 0);
    for (Slot& s : slots_) {
      for (const Block& b : s.live) Release(self, b);
      s.live.clear();
    }
    for (BlockQueue& q : inboxes_) {
      for (const Block& b : q.TakeAll()) Release(self, b);
    }
    stop_collector_.store(true, std::memory_order_release);
    collector.join();
    stop_prober_.store(true, std::memory_order_release);
    prober.join();
    Publish(self);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();

    // The end state. The limiter left no limit, the budget still counting:
    // with every block back in its region it counts nothing (no charge was
    // lost or counted twice). Then the limits go.
    EXPECT_EQ(backend_.DrainCaches(), Outcome::kOk);
    const Usage counted = backend_.Probe();
    EXPECT_EQ(counted.limit_usage, 0u) << "the budget lost track of a charge";
    EXPECT_EQ(counted.limit, kNoLimit);
    EXPECT_EQ(counted.failed,
              nulls_under_limit_.load() + nulls_without_limit_.load())
        << "failed_allocations differs from the NULLs the harness got";
    EXPECT_LE(counted.limit_refusals, nulls_under_limit_.load())
        << "limit refusals without a limit in force";
    backend_.RemoveLimits();
    const Usage end = backend_.Probe();
    EXPECT_EQ(end.used, start.used) << "blocks were lost";
    EXPECT_EQ(end.live, 0u);
    EXPECT_EQ(end.cached, 0u) << "caches not drained";
    EXPECT_EQ(end.used + end.cached + end.free, end.capacity);
    EXPECT_EQ(end.invalid_frees, 0u);
    std::string why;
    EXPECT_EQ(backend_.Check(&why), Outcome::kOk) << why;
    for (int i = 1; i < kBaseRegions; ++i) {
      EXPECT_EQ(backend_.RemoveRegion(base_[i]->begin()), Outcome::kOk)
          << "base region " << i;
    }
    for (int i = 0; i < kManagedRegions; ++i) {
      EXPECT_EQ(backend_.RemoveRegion(managed_[i]->arena.begin()), Outcome::kOk)
          << "managed region " << i;
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].thread_heap_added) {
        EXPECT_EQ(backend_.RemoveRegion(thread_heaps_[i]->begin()),
                  Outcome::kOk)
            << "thread heap region of slot " << i;
      }
    }
    const Usage last = backend_.Probe();
    EXPECT_EQ(last.regions, 1u);
    EXPECT_EQ(last.used, 0u);
    EXPECT_EQ(backend_.Check(&why), Outcome::kOk) << why;
    EXPECT_EQ(backend_.reports().count(), 0u)
        << "misuse reported, first at " << backend_.reports().first();

    // What ran, and proof that each check had something to check.
    const std::string summary = absl::StrFormat(
        "[%s] %u allocator calls in %.1f s (%.0f/s), %d waves of %d "
        "threads, seed %#x; cross-thread frees %u, collector frees %u, "
        "adopted %u, big blocks %u, blocks in managed regions %u, calls "
        "while a region was removed %u, removals %u (busy %u), retirements "
        "%u of %u, probes %u, "
        "checks %u, NULL from ordinary requests %u, heap binds %u, unbinds "
        "%u, NULL from full heaps %u; %s; failures %d",
        name, calls_.load(), seconds, calls_.load() / seconds, waves,
        config_.threads, config_.seed, cross_thread_frees_.load(),
        collector_frees_.load(), adopted_.load(), big_blocks_.load(),
        in_managed_.load(), calls_while_removed_.load(), removals_.load(),
        busy_removals_.load(), retirements_.load(), retire_calls_.load(),
        probes_.load(), checks_.load(), failed_allocations_.load(),
        binds_.load(), unbinds_.load(), thread_heap_full_.load(),
        LimitSummary(counted), failures_.count());
    std::printf("%s\n", summary.c_str());
    std::fflush(stdout);
    testing::Test::RecordProperty("allocator_calls",
                                  absl::StrCat(calls_.load()));
    testing::Test::RecordProperty("removals", absl::StrCat(removals_.load()));
    testing::Test::RecordProperty(
        "retirements", absl::StrCat(retirements_.load(), " of ",
                                    retire_calls_.load(), " retired"));
    testing::Test::RecordProperty("limit_refusals",
                                  absl::StrCat(counted.limit_refusals));

    EXPECT_EQ(failures_.count(), 0)
        << failures_.Summary() << "\n(run seed " << config_.seed
        << ": FMEMP_STRESS_SEED picks it; each thread's own seed is in its "
           "messages)";
    EXPECT_GE(waves, kMinWaves);
    EXPECT_GT(cross_thread_frees_.load(), 0u);
    EXPECT_GT(collector_frees_.load(), 0u);
    EXPECT_GT(removals_.load(), 0u) << "no region was ever removed";
    EXPECT_GT(retire_calls_.load(), 0u) << "no region was ever retired";
    EXPECT_GT(in_managed_.load(), 0u) << "no block in a managed region";
    EXPECT_GT(calls_while_removed_.load(), 0u)
        << "no allocation ran while a region was removed";
    EXPECT_GT(checks_.load(), 0u);
    if (FrontEnd::kHasThreadHeaps) {
      EXPECT_GT(binds_.load(), 0u);
    }
    // Budgets: each check had something to check.
    EXPECT_GT(hard_sets_.load(), 0u) << "no hard limit was set";
    EXPECT_GT(soft_sets_.load(), 0u) << "no soft limit was set";
    EXPECT_GT(limit_removals_.load(), 0u) << "the limits were never removed";
    EXPECT_GT(hard_checks_.load(), 0u)
        << "no reading was checked against a settled hard limit";
    EXPECT_GT(counted.limit_refusals, 0u) << "no limit ever refused";
    EXPECT_GT(nulls_under_limit_.load(), 0u);
    EXPECT_GT(front_soft_.calls.load(), 0u)
        << "the soft-limit handler never ran";
    EXPECT_EQ(SoftOverlaps(), 0u)
        << "a soft-limit handler ran while the previous call for its budget "
           "was still running";
    if (FrontEnd::kHasThreadHeaps) {
      EXPECT_GT(heap_limit_sets_.load(), 0u);
      EXPECT_GT(heap_limit_checks_.load(), 0u)
          << "no thread heap reading was checked against its limit";
      EXPECT_GT(heap_refusals_.load(), 0u) << "no thread heap limit refused";
      EXPECT_GT(HeapSoftCalls(), 0u)
          << "no thread heap's soft-limit handler ran";
    }
  }

 private:
  // A managed region: memory, and the epoch of its presence (odd: may be
  // in the front-end; even: removed).
  struct Managed {
    explicit Managed(size_t bytes) : arena(bytes) {}
    Arena arena;
    std::atomic<uint64_t> epoch{1};
    // Set by the retirement handler, on whichever thread freed the region's
    // last block: the region is gone.
    std::atomic<bool> gone{false};
  };
  static void OnRetired(void* context, void*, void*) {
    static_cast<Managed*>(context)->gone.store(true, std::memory_order_release);
  }

  // A soft-limit handler's record, one per budget: calls, and calls that
  // began while the previous one for the same budget was still running.
  struct SoftWatch : testkit::SoftLimitCallback {
    SoftWatch() { run = &SoftWatch::Run; }
    static void Run(SoftLimitCallback* self, uint64_t, uint64_t) {
      auto* watch = static_cast<SoftWatch*>(self);
      if (watch->running.fetch_add(1, std::memory_order_acq_rel) != 0) {
        watch->overlaps.fetch_add(1, std::memory_order_relaxed);
      }
      watch->calls.fetch_add(1, std::memory_order_relaxed);
      // A handler takes a while (a server evicts here): long enough for
      // another crossing to try to run it again.
      for (int i = 0; i < 4; ++i) std::this_thread::yield();
      watch->running.fetch_sub(1, std::memory_order_acq_rel);
    }
    std::atomic<int> running{0};
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> overlaps{0};
  };

  // Odd while the slot's thread is inside an allocating call (the limiter
  // waits for the calls under way when it sets a limit).
  struct alignas(64) CallCounter {
    std::atomic<uint64_t> value{0};
  };

  // One worker position, outliving the threads that fill it. Touched by one
  // thread at a time: a wave's thread, then (after joining it) the next
  // wave's or the test thread.
  struct Slot {
    std::vector<Block> live;
    bool thread_heap_added =
        false;  // its thread heap region was added to the front-end
  };

  // Per-thread state of every thread of the harness.
  struct ThreadContext {
    const char* role;
    int slot;
    int wave;
    uint64_t seed;
    uint64_t uid;  // unique per thread; the high half of generations
    std::mt19937_64 rng;
    uint64_t next_generation = 0;
    uint64_t calls = 0;      // allocator calls made
    uint64_t published = 0;  // calls already added to calls_
    uint64_t op = 0;         // operations drawn (workers)
    bool bound = false;      // has a per-thread heap bound
    bool may_fail = false;   // bound to a thread heap that fails when full
    // Its thread heap's own hard limit (kNoLimit: none or given up), the
    // most its usage may read now, and the limiter's removal epoch when
    // it was set.
    uint64_t heap_limit = kNoLimit;
    uint64_t heap_ceiling = kNoLimit;
    uint64_t heap_epoch = 0;

    uint64_t Generation() { return (uid << 32) | ++next_generation; }
    std::string Where() const {
      return absl::StrFormat("%s slot %d wave %d thread seed %#x op %u", role,
                             slot, wave, seed, op);
    }
  };

  ThreadContext Context(const char* role, int slot, int wave, uint64_t salt) {
    const uint64_t seed =
        Mix64(config_.seed ^
              Mix64((uint64_t(wave) << 32) ^ uint64_t(slot) ^ (salt << 48)));
    return ThreadContext{role,
                         slot,
                         wave,
                         seed,
                         next_uid_.fetch_add(1, std::memory_order_relaxed),
                         std::mt19937_64(seed)};
  }

  void Fail(const ThreadContext& t, const std::string& what) {
    failures_.Add(absl::StrCat(FrontEnd::Name(), ": ", t.Where(), ": ", what));
  }

  void Publish(ThreadContext& t) {
    calls_.fetch_add(t.calls - t.published, std::memory_order_relaxed);
    t.published = t.calls;
  }

  bool IsThreadHeapSlot(int slot) const {
    return FrontEnd::kHasThreadHeaps && slot % 2 == 0;
  }

  // The managed region holding p, or -1.
  int ManagedIndex(const void* p) const {
    for (int r = 0; r < kManagedRegions; ++r) {
      if (managed_[r]->arena.Contains(p)) return r;
    }
    return -1;
  }
  // The arena holding p (any kind), or nullptr.
  const Arena* ArenaOf(const void* p) const {
    for (const auto& a : base_) {
      if (a->Contains(p)) return a.get();
    }
    for (const auto& m : managed_) {
      if (m->arena.Contains(p)) return &m->arena;
    }
    for (const auto& a : thread_heaps_) {
      if (a != nullptr && a->Contains(p)) return a.get();
    }
    return nullptr;
  }

  // --- Checks on blocks ---

  bool Verify(ThreadContext& t, const Block& b, const char* when) {
    const ptrdiff_t bad = FirstBadByte(b);
    if (bad < 0) return true;
    Fail(t, absl::StrCat("pattern broken ", when, ": ",
                         DescribeDamage(b, b.ptr, bad)));
    return false;
  }

  void Release(ThreadContext& t, const Block& b) {
    Verify(t, b, "before free");
    ++t.calls;
    if (!backend_.Free(b.ptr)) Fail(t, "free refused: " + Describe(b));
  }

  // Runs an allocating call and checks where its block landed (see the
  // epoch argument at the top of this file).
  template <typename Call>
  void* Allocation(ThreadContext& t, size_t size, Call call) {
    uint64_t before[kManagedRegions];
    bool any_removed = false;
    for (int r = 0; r < kManagedRegions; ++r) {
      before[r] = managed_[r]->epoch.load(std::memory_order_acquire);
      any_removed |= before[r] % 2 == 0;
    }
    // Inside a call (the limiter's grace period waits for it), and the
    // regime the call began and ended in (see the top of this file).
    std::atomic<uint64_t>& in_call = call_seq_[t.slot].value;
    in_call.fetch_add(1, std::memory_order_seq_cst);
    const uint64_t regime_before = regime_.load(std::memory_order_seq_cst);
    void* p = call();
    Fence();
    const uint64_t regime_after = regime_.load(std::memory_order_seq_cst);
    in_call.fetch_add(1, std::memory_order_release);
    ++t.calls;
    if (any_removed)
      calls_while_removed_.fetch_add(1, std::memory_order_relaxed);
    if (p == nullptr) {
      const bool under_limit = regime_before % 2 == 1 ||
                               regime_after != regime_before ||
                               t.heap_limit != kNoLimit;
      (under_limit ? nulls_under_limit_ : nulls_without_limit_)
          .fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    const Arena* arena = ArenaOf(p);
    if (arena == nullptr) {
      Fail(t,
           absl::StrFormat("block %p (size %u) outside every region", p, size));
      return p;
    }
    if (static_cast<uint8_t*>(p) + size > arena->end()) {
      Fail(t, absl::StrFormat("block %p (size %u) runs past its region's end "
                              "%p",
                              p, size, arena->end()));
    }
    const int r = ManagedIndex(p);
    if (r >= 0) {
      in_managed_.fetch_add(1, std::memory_order_relaxed);
      const uint64_t after = managed_[r]->epoch.load(std::memory_order_acquire);
      if (after == before[r] && after % 2 == 0) {
        Fail(t, absl::StrFormat("block %p (size %u) handed out in managed "
                                "region %d while it was removed (epoch %u)",
                                p, size, r, after));
      }
    }
    return p;
  }

  // --- Workers ---

  size_t RandomSize(ThreadContext& t) {
    const uint64_t r = t.rng() % 1000;
    if (r < 10) return 0;
    if (r < 920) return 1 + t.rng() % kMaxSmall;
    return kMaxSmall + 1 + t.rng() % (kMaxLarge - kMaxSmall);
  }

  // Blocks in managed regions are kept only briefly, so that the regions
  // empty.
  void Keep(std::vector<Block>& mine, std::deque<Block>& transient,
            const Block& b) {
    if (ManagedIndex(b.ptr) >= 0) {
      transient.push_back(b);
    } else {
      mine.push_back(b);
    }
  }

  BlockQueue& OtherInbox(ThreadContext& t) {
    if (config_.threads == 1) return inboxes_[0];
    const int k = 1 + static_cast<int>(t.rng() % (config_.threads - 1));
    return inboxes_[(t.slot + k) % config_.threads];
  }

  Block TakeRandom(ThreadContext& t, std::vector<Block>& mine) {
    const size_t i = t.rng() % mine.size();
    const Block b = mine[i];
    mine[i] = mine.back();
    mine.pop_back();
    return b;
  }

  // A NULL from an ordinary request: expected only from a thread heap that
  // fails when full; else the thread heap is short of memory (reported, not an
  // error).
  void CountFailure(const ThreadContext& t) {
    (t.may_fail ? thread_heap_full_ : failed_allocations_)
        .fetch_add(1, std::memory_order_relaxed);
  }

  enum class Kind { kMalloc, kCalloc, kAligned, kReallocNull, kBig };

  void AllocateOne(ThreadContext& t, std::vector<Block>& mine,
                   std::deque<Block>& transient, Kind kind) {
    if (mine.size() >= kMaxLivePerWorker) Release(t, TakeRandom(t, mine));
    size_t size = RandomSize(t);
    void* p = nullptr;
    switch (kind) {
      case Kind::kMalloc:
        p = Allocation(t, size, [&] { return backend_.Allocate(size); });
        break;
      case Kind::kCalloc: {
        const size_t count = 1 + t.rng() % 4;
        const size_t each = size / count;
        size = count * each;
        p = Allocation(t, size, [&] { return backend_.Calloc(count, each); });
        const ptrdiff_t bad =
            p == nullptr ? -1
                         : FirstNonZeroByte(static_cast<uint8_t*>(p), size);
        if (bad >= 0) {
          Fail(t, absl::StrFormat("calloc(%u, %u) = %p: byte %d not zero",
                                  count, each, p, bad));
        }
        break;
      }
      case Kind::kAligned: {
        const size_t alignment = size_t{16} << (t.rng() % 9);
        p = Allocation(
            t, size, [&] { return backend_.AllocateAligned(alignment, size); });
        if (reinterpret_cast<uintptr_t>(p) % alignment != 0) {
          Fail(t, absl::StrFormat("aligned malloc(%u, %u) = %p misaligned",
                                  size, alignment, p));
        }
        break;
      }
      case Kind::kReallocNull:
        p = Allocation(t, size,
                       [&] { return backend_.Reallocate(nullptr, size); });
        break;
      case Kind::kBig:
        // Only a managed region can hold it: NULL when each is removed or
        // holds another big block.
        size = kBigMin + t.rng() % (kBigMax - kBigMin);
        p = Allocation(t, size, [&] { return backend_.Allocate(size); });
        if (p == nullptr) return;
        big_blocks_.fetch_add(1, std::memory_order_relaxed);
        if (ManagedIndex(p) < 0) {
          Fail(t, absl::StrFormat("big block %p (size %u) outside the "
                                  "managed regions",
                                  p, size));
        }
        break;
    }
    if (p == nullptr) {
      CountFailure(t);
      return;
    }
    Keep(mine, transient, MakeBlock(p, size, t.Generation()));
  }

  void ReallocOne(ThreadContext& t, std::vector<Block>& mine,
                  std::deque<Block>& transient) {
    const Block old = TakeRandom(t, mine);
    Verify(t, old, "before realloc");
    if (t.rng() % 64 == 0) {
      // realloc(p, 0) frees p.
      ++t.calls;
      void* p = backend_.Reallocate(old.ptr, 0);
      if (p != nullptr) {
        Fail(t, "realloc(p, 0) returned a block: " + Describe(old));
        Keep(mine, transient, MakeBlock(p, 0, t.Generation()));
      }
      return;
    }
    const size_t size = std::max<size_t>(1, RandomSize(t));
    void* p =
        Allocation(t, size, [&] { return backend_.Reallocate(old.ptr, size); });
    if (p == nullptr) {
      // The block must be as it was.
      CountFailure(t);
      Verify(t, old, "after a failed realloc");
      mine.push_back(old);
      return;
    }
    const ptrdiff_t bad =
        FirstBadByte(old, static_cast<uint8_t*>(p), std::min(size, old.size));
    if (bad >= 0) {
      Fail(t,
           absl::StrFormat("realloc to %u (%p) lost the prefix: %s", size, p,
                           DescribeDamage(old, static_cast<uint8_t*>(p), bad)));
    }
    Keep(mine, transient, MakeBlock(p, size, t.Generation()));
  }

  // Blocks other threads sent to this slot: verified, then freed here or
  // adopted (reallocated and freed later by this thread).
  void ServeInbox(ThreadContext& t, std::vector<Block>& mine) {
    for (const Block& b : inboxes_[t.slot].Take(8)) {
      if (ManagedIndex(b.ptr) < 0 && mine.size() < kMaxLivePerWorker &&
          t.rng() % 4 == 0) {
        Verify(t, b, "on adoption");
        mine.push_back(b);
        adopted_.fetch_add(1, std::memory_order_relaxed);
      } else {
        Release(t, b);
        cross_thread_frees_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  // Thread heap slots: even ones. Slots 0, 4, ... fall back to the shared
  // regions when their thread heap is full; slots 2, 6, ... fail instead.
  bool IsFallBackSlot(int slot) const { return slot % 4 == 0; }

  void Bind(ThreadContext& t) {
    const Outcome s = backend_.BindThisThread(
        thread_heaps_[t.slot]->begin(),
        IsFallBackSlot(t.slot) ? 0 : FMEMP_BIND_NO_FALLBACK);
    if (s != Outcome::kOk) {
      Fail(t, absl::StrCat("BindThisThread: ", OutcomeName(s)));
      return;
    }
    t.bound = true;
    t.may_fail = !IsFallBackSlot(t.slot);
    binds_.fetch_add(1, std::memory_order_relaxed);
    // The region's live blocks were charged to the heap, whatever its limit.
    NoteHeapCeiling(t);
  }
  void Unbind(ThreadContext& t) {
    const Outcome s = backend_.UnbindThisThread();
    if (s != Outcome::kOk) {
      Fail(t, absl::StrCat("UnbindThisThread: ", OutcomeName(s)));
    }
    t.bound = t.may_fail = false;
    unbinds_.fetch_add(1, std::memory_order_relaxed);
  }

  void Work(int slot, int wave) {
    ThreadContext t = Context("worker", slot, wave, 1);
    Slot& s = slots_[slot];
    std::vector<Block>& mine = s.live;
    std::deque<Block> transient;
    if (IsThreadHeapSlot(slot)) {
      // This slot's region: added by the slot's first thread, bound by every
      // thread of the slot, live blocks and all.
      if (!s.thread_heap_added) {
        const Outcome added = backend_.AddRegion(thread_heaps_[slot]->begin(),
                                                 thread_heaps_[slot]->end());
        if (added != Outcome::kOk) {
          Fail(t,
               absl::StrCat("AddRegion (thread heap): ", OutcomeName(added)));
        }
        s.thread_heap_added = added == Outcome::kOk;
      }
      if (s.thread_heap_added) Bind(t);
    }
    for (;; ++t.op) {
      if (t.op % 16 == 0) {
        if (t.bound) CheckHeapLimit(t);
        Publish(t);
        if (std::chrono::steady_clock::now() >= wave_end_ ||
            calls_.load(std::memory_order_relaxed) >= wave_call_limit_) {
          break;
        }
      }
      if (t.op % 4 == 0) ServeInbox(t, mine);
      if (!transient.empty() && t.rng() % 2 == 0) {
        const Block b = transient.front();
        transient.pop_front();
        if (t.rng() % 3 == 0) {
          OtherInbox(t).Push(b);
        } else {
          Release(t, b);
        }
      }
      if (IsThreadHeapSlot(slot) && s.thread_heap_added) {
        // Mostly bound: unbound now and then, for a short while.
        if (t.bound && t.rng() % 1024 == 0) {
          Unbind(t);
        } else if (!t.bound && t.rng() % 64 == 0) {
          Bind(t);
        } else if (t.bound && t.rng() % 128 == 0) {
          ChangeHeapLimits(t);
        }
      }
      const uint64_t pick = t.rng() % 1000;
      if (pick < 280) {
        AllocateOne(t, mine, transient, Kind::kMalloc);
      } else if (pick < 360) {
        AllocateOne(t, mine, transient, Kind::kCalloc);
      } else if (pick < 440) {
        AllocateOne(t, mine, transient, Kind::kAligned);
      } else if (pick < 460) {
        AllocateOne(t, mine, transient, Kind::kReallocNull);
      } else if (pick < 463) {
        AllocateOne(t, mine, transient, Kind::kBig);
      } else if (mine.empty()) {
        AllocateOne(t, mine, transient, Kind::kMalloc);
      } else if (pick < 600) {
        ReallocOne(t, mine, transient);
      } else if (pick < 800) {
        Release(t, TakeRandom(t, mine));
      } else if (pick < 900) {
        const Block b = TakeRandom(t, mine);
        if (t.rng() % 5 == 0) {
          collector_inbox_.Push(b);
        } else {
          OtherInbox(t).Push(b);
        }
      } else if (pick < 950) {
        const Block& b = mine[t.rng() % mine.size()];
        if (FrontEnd::kHasUsableSize) {
          ++t.calls;
          const size_t usable = backend_.UsableSize(b.ptr);
          if (usable < b.size) {
            Fail(t, absl::StrFormat("UsableSize %u < %s", usable, Describe(b)));
          }
        }
      } else if (pick < 951) {
        // Per-thread caches: this thread's back to the shared regions.
        ++t.calls;
        const Outcome flushed = backend_.FlushThisThread();
        if (flushed != Outcome::kOk) {
          Fail(t, absl::StrCat("FlushThisThread: ", OutcomeName(flushed)));
        }
      } else if (pick < 952 && t.bound) {
        // Check covers this thread's own heap only here.
        ++t.calls;
        std::string why;
        if (backend_.Check(&why) != Outcome::kOk) {
          Fail(t, "Check (bound thread): " + why);
        }
      } else {
        Verify(t, mine[t.rng() % mine.size()], "while held");
      }
    }
    // Exit: managed blocks freed, a quarter of the rest to the collector,
    // the others stay in the slot for the next wave. A bound thread mostly
    // exits bound.
    for (const Block& b : transient) Release(t, b);
    for (size_t n = mine.size() / 4; n > 0; --n) {
      collector_inbox_.Push(TakeRandom(t, mine));
    }
    testkit::ThreadHeapUsage heap;
    if (OwnHeap(t, &heap)) {
      heap_refusals_.fetch_add(heap.limit_refusals, std::memory_order_relaxed);
    }
    if (t.bound && t.rng() % 4 == 0) Unbind(t);
    Publish(t);
  }

  // --- The collector ---

  void Collect() {
    ThreadContext t = Context("collector", -1, 0, 2);
    std::deque<Block> held;
    for (;;) {
      const bool done = stop_collector_.load(std::memory_order_acquire);
      for (const Block& b : collector_inbox_.TakeAll(absl::Milliseconds(2))) {
        if (ManagedIndex(b.ptr) >= 0) {
          Release(t, b);
          collector_frees_.fetch_add(1, std::memory_order_relaxed);
        } else {
          Verify(t, b, "on arrival at the collector");
          held.push_back(b);
        }
      }
      while (held.size() > kCollectorHold) {
        Release(t, held.front());
        held.pop_front();
        collector_frees_.fetch_add(1, std::memory_order_relaxed);
      }
      Publish(t);
      if (done) break;  // everything sent before `done` has been taken
    }
    for (const Block& b : held) {
      Release(t, b);
      collector_frees_.fetch_add(1, std::memory_order_relaxed);
    }
    Publish(t);
  }

  // --- The region manager ---

  static uint64_t CanaryWord(size_t i) {
    return 0xa5c3e1f00f1e3c5aull ^ (i * 0x9e3779b97f4a7c15ull);
  }
  void WriteCanary(Managed& m) {
    for (size_t i = 0; i < kManagedBytes / 8; ++i) {
      const uint64_t word = CanaryWord(i);
      std::memcpy(m.arena.begin() + 8 * i, &word, 8);
    }
  }
  ptrdiff_t FirstCanaryDamage(const Managed& m) const {
    for (size_t i = 0; i < kManagedBytes / 8; ++i) {
      uint64_t word;
      std::memcpy(&word, m.arena.begin() + 8 * i, 8);
      if (word != CanaryWord(i)) return static_cast<ptrdiff_t>(8 * i);
    }
    return -1;
  }

  // A retiring region that CancelRetire no longer finds went with its last
  // block; its handler runs on the thread that freed it, once that call has
  // released its locks, so it may still be on its way: waits for it (up to
  // 2 s; reap then fails the run if it never came).
  static void AwaitRetiredHandler(const Managed& m) {
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!m.gone.load(std::memory_order_acquire) &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void ManageRegions() {
    ThreadContext t = Context("manager", -1, 0, 3);
    bool present[kManagedRegions];
    std::fill(present, present + kManagedRegions, true);
    // Retiring (RetireRegion returned, the region not gone yet): it hands
    // out nothing, so its epoch is even, as for a removed region.
    bool retiring[kManagedRegions];
    std::fill(retiring, retiring + kManagedRegions, false);
    // A retiring region the handler reported gone: absent from now on.
    auto reap = [&](int r) {
      Managed& m = *managed_[r];
      if (retiring[r] && m.gone.load(std::memory_order_acquire)) {
        retiring[r] = false;
        present[r] = false;
        retirements_.fetch_add(1, std::memory_order_relaxed);
        WriteCanary(m);
      }
    };
    auto add = [&](int r) {
      Managed& m = *managed_[r];
      const ptrdiff_t damage = FirstCanaryDamage(m);
      if (damage >= 0) {
        Fail(t, absl::StrFormat("managed region %d was written at offset %d "
                                "while removed",
                                r, damage));
      }
      m.epoch.fetch_add(1, std::memory_order_acq_rel);  // odd: may be there
      ++t.calls;
      const Outcome s = backend_.AddRegion(m.arena.begin(), m.arena.end());
      if (s != Outcome::kOk)
        Fail(t, absl::StrCat("AddRegion: ", OutcomeName(s)));
      present[r] = true;
    };
    while (!stop_manager_.load(std::memory_order_acquire)) {
      ++t.op;
      const int r = static_cast<int>(t.rng() % kManagedRegions);
      Managed& m = *managed_[r];
      reap(r);
      if (retiring[r]) {
        // Now and then, take it back into service while blocks live in it.
        if (t.rng() % 8 == 0) {
          ++t.calls;
          m.epoch.fetch_add(1, std::memory_order_acq_rel);  // odd: may serve
          if (backend_.CancelRetire(m.arena.begin()) == Outcome::kOk) {
            retiring[r] = false;
          } else {
            // Gone meanwhile (its last block was freed): absent, as reap
            // says once its handler has run.
            m.epoch.fetch_add(1, std::memory_order_acq_rel);  // even again
            AwaitRetiredHandler(m);
            reap(r);
            if (retiring[r]) Fail(t, "CancelRetire failed, region not gone");
          }
        }
      } else if (!present[r]) {
        add(r);
      } else if (t.rng() % 2 == 0) {
        // Retirement: no new block from it once this returns; it goes with
        // its last block, freed by whichever thread.
        ++t.calls;
        m.gone.store(false, std::memory_order_relaxed);
        const Outcome s = backend_.RetireRegion(m.arena.begin(),
                                                &StressHarness::OnRetired, &m);
        if (s != Outcome::kOk) {
          Fail(t, absl::StrCat("RetireRegion: ", OutcomeName(s)));
        }
        // Even only once RetireRegion has returned, as after a removal: a
        // call that began before may still have got a block there.
        m.epoch.fetch_add(1, std::memory_order_acq_rel);
        retiring[r] = true;
        retire_calls_.fetch_add(1, std::memory_order_relaxed);
        reap(r);
      } else {
        ++t.calls;
        switch (backend_.RemoveRegion(m.arena.begin())) {
          case Outcome::kOk:
            present[r] = false;
            m.epoch.fetch_add(1, std::memory_order_acq_rel);  // even: absent
            removals_.fetch_add(1, std::memory_order_relaxed);
            WriteCanary(m);
            break;
          case Outcome::kBusy:
            busy_removals_.fetch_add(1, std::memory_order_relaxed);
            break;
          default:
            Fail(t, absl::StrFormat("RemoveRegion(managed %d) failed", r));
            break;
        }
      }
      Publish(t);
      // Stay in each state a little while so that workers run in it.
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    for (int r = 0; r < kManagedRegions; ++r) {
      if (retiring[r]) {
        Managed& m = *managed_[r];
        m.epoch.fetch_add(1, std::memory_order_acq_rel);  // odd: may serve
        if (backend_.CancelRetire(m.arena.begin()) == Outcome::kOk) {
          retiring[r] = false;
        } else {
          m.epoch.fetch_add(1, std::memory_order_acq_rel);
          AwaitRetiredHandler(m);
          reap(r);
          if (retiring[r]) Fail(t, "CancelRetire failed, region not gone");
        }
      }
      if (!present[r]) add(r);
    }
    Publish(t);
  }

  // --- The limiter ---

  // A seq_cst fence; none under ThreadSanitizer, which GCC refuses fences
  // with (the sanitizer runs on x86, whose order gives the same).
  static void Fence() {
#ifndef ABSL_HAVE_THREAD_SANITIZER
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }

  // Moves the regime word (only the limiter writes it): odd iff a hard
  // limit may be in force, and a new value at every change.
  void NextRegime(bool limit_in_force) {
    const uint64_t now = regime_.load(std::memory_order_relaxed);
    regime_.store(now + ((now % 2 == 1) == limit_in_force ? 2 : 1),
                  std::memory_order_seq_cst);
  }

  // Returns once every allocating call under way at the NextRegime that
  // preceded it has returned. A call that began later reads what the
  // limiter set before that NextRegime: the call's seq_cst increment of its
  // counter, then its seq_cst load of the regime word, against the
  // limiter's seq_cst store of the word, then its seq_cst load of the
  // counter (one of the two loads sees the other side's write).
  void WaitForCallsInFlight() {
    for (int s = 0; s < config_.threads; ++s) {
      const uint64_t seen = call_seq_[s].value.load(std::memory_order_seq_cst);
      if (seen % 2 == 0) continue;
      while (call_seq_[s].value.load(std::memory_order_acquire) == seen) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    }
  }

  // The bytes the budget counts, or would count once charging (C++
  // front-ends stop charging the shared regions after RemoveLimits).
  static uint64_t Demand(const Usage& u) {
    return std::max(u.limit_usage, u.used + u.cached);
  }
  // A value within `slack` of `base`, below it by up to half of `slack`.
  static uint64_t Near(ThreadContext& t, uint64_t base, size_t slack) {
    const uint64_t offset = t.rng() % (slack + slack / 2);
    return base + offset < slack / 2 ? 0 : base + offset - slack / 2;
  }

  void SetHardLimit(ThreadContext& t, uint64_t limit) {
    {
      absl::MutexLock hold(&hard_mu_);
      hard_.settled = false;
    }
    // Odd from before the limit is set: a NULL from now on may be a refusal
    // (a call whose charge read the new limit sees the word moved: the
    // fences order the word before the limit).
    NextRegime(true);
    Fence();
    ++t.calls;
    backend_.SetLimit(limit);
    NextRegime(true);
    WaitForCallsInFlight();
    absl::MutexLock hold(&hard_mu_);
    hard_.settled = true;
    hard_.limit = limit;
    hard_.ceiling = kNoLimit;  // the prober's next reading sets it
    ++hard_.serial;
    hard_sets_.fetch_add(1, std::memory_order_relaxed);
  }

  void RemoveAllLimits(ThreadContext& t) {
    {
      absl::MutexLock hold(&hard_mu_);
      hard_.settled = false;
    }
    // Odd during the removal (which reaches each thread heap in turn), even
    // after: a thread that read it even before setting its heap's limit,
    // and reads it unmoved later, knows its limit stood through its charges.
    heap_limits_epoch_.fetch_add(1, std::memory_order_seq_cst);
    Fence();
    ++t.calls;
    backend_.RemoveLimits();
    heap_limits_epoch_.fetch_add(1, std::memory_order_seq_cst);
    NextRegime(true);
    WaitForCallsInFlight();
    // Even once no call can still be charging under the old limit.
    NextRegime(false);
    limit_removals_.fetch_add(1, std::memory_order_relaxed);
  }

  // Sets, changes and removes the front-end's limits near the usage, so
  // that they refuse and cross; see the top of this file.
  void ManageLimits() {
    ThreadContext t = Context("limiter", -1, 0, 5);
    while (!stop_limiter_.load(std::memory_order_acquire)) {
      ++t.op;
      ++t.calls;
      const uint64_t demand = Demand(backend_.Probe());
      const uint64_t pick = t.rng() % 16;
      // Near the demand (refusals), or above it by up to a few managed
      // regions (usage meets it now and then).
      const uint64_t near = t.rng() % 3 == 0
                                ? Near(t, demand, kLimitSlack)
                                : demand + t.rng() % (4 * kManagedBytes);
      if (pick < 7) {
        SetHardLimit(t, near);
      } else if (pick < 12) {
        ++t.calls;
        backend_.SetSoftLimit(near, t.rng() % (kLimitSlack / 4), &front_soft_);
        soft_sets_.fetch_add(1, std::memory_order_relaxed);
      } else if (pick < 13) {
        ++t.calls;
        backend_.SetSoftLimit(kNoLimit, 0, nullptr);
      } else if (pick < 14) {
        RemoveAllLimits(t);
      }
      Publish(t);
      // Each setting stands a while, so that the prober reads it often.
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + t.rng() % 8));
    }
    // None left (the budget goes on counting: the end checks it).
    {
      absl::MutexLock hold(&hard_mu_);
      hard_.settled = false;
    }
    ++t.calls;
    backend_.SetLimit(kNoLimit);
    backend_.SetSoftLimit(kNoLimit, 0, nullptr);
    Publish(t);
  }

  // The prober's check of a settled hard limit against a reading of the
  // budget's usage, taken after `before` was read (see the top of this
  // file). Only the prober calls it: its readings are in order.
  struct HardLimitState {
    bool settled = false;
    uint64_t limit = kNoLimit;
    uint64_t serial = 0;
    uint64_t ceiling = kNoLimit;  // the most the next reading may be
  };
  HardLimitState HardLimitNow() {
    absl::MutexLock hold(&hard_mu_);
    return hard_;
  }
  void CheckHardLimit(ThreadContext& t, const HardLimitState& before,
                      const Usage& u) {
    if (!before.settled) return;
    absl::MutexLock hold(&hard_mu_);
    // Changed since `before`: the reading may straddle the change.
    if (!hard_.settled || hard_.serial != before.serial) return;
    if (u.limit != hard_.limit) {
      Fail(t, absl::StrFormat("Probe says the hard limit is %u, %u was set",
                              u.limit, hard_.limit));
    }
    if (hard_.ceiling != kNoLimit) {
      hard_checks_.fetch_add(1, std::memory_order_relaxed);
      if (u.limit_usage > hard_.ceiling) {
        Fail(t, absl::StrFormat("the budget counts %u bytes, over its hard "
                                "limit %u (at most %u possible)",
                                u.limit_usage, hard_.limit, hard_.ceiling));
      }
    }
    if (u.limit_usage > hard_.limit) {
      hard_over_.fetch_add(1, std::memory_order_relaxed);
    } else if (u.limit_usage + kNearLimit >= hard_.limit) {
      hard_near_.fetch_add(1, std::memory_order_relaxed);
    }
    hard_.ceiling = std::max<uint64_t>(hard_.limit, u.limit_usage);
  }

  // --- A thread heap's own limits (bound workers) ---

  // This thread's heap usage, or false when it has none.
  bool OwnHeap(ThreadContext& t, testkit::ThreadHeapUsage* heap) {
    ++t.calls;
    return backend_.ProbeThisThreadHeap(heap);
  }

  // Sets, changes or removes this thread's heap limits, near its usage.
  void ChangeHeapLimits(ThreadContext& t) {
    testkit::ThreadHeapUsage heap;
    if (!OwnHeap(t, &heap)) return;
    const uint64_t pick = t.rng() % 8;
    if (pick < 4) {
      const uint64_t limit = Near(t, heap.limit_usage, kHeapLimitSlack);
      const uint64_t epoch = heap_limits_epoch_.load(std::memory_order_seq_cst);
      if (epoch % 2 == 1) return;  // a removal is under way: not now
      ++t.calls;
      const Outcome s = backend_.SetThreadHeapLimit(0, limit);
      if (s != Outcome::kOk) {
        Fail(t, absl::StrCat("SetThreadHeapLimit: ", OutcomeName(s)));
        return;
      }
      t.heap_limit = limit;
      t.heap_epoch = epoch;
      NoteHeapCeiling(t);
      heap_limit_sets_.fetch_add(1, std::memory_order_relaxed);
    } else if (pick < 7) {
      ++t.calls;
      const Outcome s = backend_.SetThreadHeapSoftLimit(
          0, Near(t, heap.limit_usage, kHeapLimitSlack),
          t.rng() % (kHeapLimitSlack / 4), heap_soft_[t.slot].get());
      if (s != Outcome::kOk) {
        Fail(t, absl::StrCat("SetThreadHeapSoftLimit: ", OutcomeName(s)));
      }
    } else {
      DropHeapLimits(t);
    }
  }
  void DropHeapLimits(ThreadContext& t) {
    t.calls += 2;
    const Outcome hard = backend_.SetThreadHeapLimit(0, kNoLimit);
    const Outcome soft =
        backend_.SetThreadHeapSoftLimit(0, kNoLimit, 0, nullptr);
    if (hard != Outcome::kOk || soft != Outcome::kOk) {
      Fail(t, absl::StrCat("removing a thread heap's limits: ",
                           OutcomeName(hard), ", ", OutcomeName(soft)));
    }
    t.heap_limit = t.heap_ceiling = kNoLimit;
  }
  // After its limit was set or a bind charged the region's live blocks:
  // the most this thread heap may count from now on.
  void NoteHeapCeiling(ThreadContext& t) {
    if (t.heap_limit == kNoLimit) return;
    testkit::ThreadHeapUsage heap;
    if (!OwnHeap(t, &heap)) {
      Fail(t, "a bound thread has no thread heap in ProbeThreadHeaps");
      return;
    }
    t.heap_ceiling = std::max(t.heap_limit, heap.limit_usage);
  }
  // The check (see the top of this file).
  void CheckHeapLimit(ThreadContext& t) {
    if (t.heap_limit == kNoLimit) return;
    testkit::ThreadHeapUsage heap;
    if (!OwnHeap(t, &heap)) {
      Fail(t, "a thread heap with a limit is missing from ProbeThreadHeaps");
      return;
    }
    Fence();
    if (heap_limits_epoch_.load(std::memory_order_seq_cst) != t.heap_epoch) {
      // The limiter removed the limits meanwhile: start again from none.
      DropHeapLimits(t);
      return;
    }
    heap_limit_checks_.fetch_add(1, std::memory_order_relaxed);
    if (heap.limit != t.heap_limit || heap.limit_usage > t.heap_ceiling) {
      Fail(t, absl::StrFormat("thread heap counts %u bytes, limit %u (set "
                              "%u), at most %u possible",
                              heap.limit_usage, heap.limit, t.heap_limit,
                              t.heap_ceiling));
    }
    t.heap_ceiling = std::max(t.heap_limit, heap.limit_usage);
  }

  uint64_t SoftOverlaps() const {
    uint64_t n = front_soft_.overlaps.load();
    for (const auto& w : heap_soft_) n += w->overlaps.load();
    return n;
  }
  uint64_t HeapSoftCalls() const {
    uint64_t n = 0;
    for (const auto& w : heap_soft_) n += w->calls.load();
    return n;
  }
  std::string LimitSummary(const Usage& end) const {
    return absl::StrFormat(
        "hard limits %u (readings checked %u, near %u, over after lowering "
        "%u), soft limits %u (handler calls %u), removals of limits %u, "
        "limit refusals %u, NULL under a limit %u, without %u, thread heap "
        "limits %u (checked %u, refusals %u, soft handler calls %u)",
        hard_sets_.load(), hard_checks_.load(), hard_near_.load(),
        hard_over_.load(), soft_sets_.load(), front_soft_.calls.load(),
        limit_removals_.load(), end.limit_refusals, nulls_under_limit_.load(),
        nulls_without_limit_.load(), heap_limit_sets_.load(),
        heap_limit_checks_.load(), heap_refusals_.load(), HeapSoftCalls());
  }

  // --- The prober ---

  void ProbeLoop() {
    ThreadContext t = Context("prober", -1, 0, 4);
    const uint64_t max_regions = kBaseRegions + kManagedRegions +
                                 static_cast<uint64_t>(thread_heaps_.size());
    while (!stop_prober_.load(std::memory_order_acquire)) {
      ++t.op;
      const HardLimitState hard = HardLimitNow();
      const Usage u = backend_.Probe();
      CheckHardLimit(t, hard, u);
      if (u.used > u.capacity || u.used + u.cached + u.free != u.capacity ||
          u.regions == 0 || u.regions > max_regions || u.invalid_frees != 0) {
        Fail(t, absl::StrFormat(
                    "Probe: capacity %u used %u cached %u free %u regions %u "
                    "invalid frees %u",
                    u.capacity, u.used, u.cached, u.free, u.regions,
                    u.invalid_frees));
      }
      for (const RegionUsage& r : backend_.ProbeRegions()) {
        if (r.used > r.capacity || r.used + r.free != r.capacity ||
            ArenaOf(r.begin) == nullptr) {
          Fail(t, absl::StrFormat(
                      "ProbeRegions: region %p..%p capacity %u used %u free %u",
                      r.begin, r.end, r.capacity, r.used, r.free));
        }
      }
      for (const ThreadHeapUsage& p : backend_.ProbeThreadHeaps()) {
        if (p.used > p.capacity || p.used + p.cached + p.free != p.capacity ||
            p.capacity > kThreadHeapBytes) {
          Fail(t,
               absl::StrFormat(
                   "ProbeThreadHeaps: heap of thread %d capacity %u used %u "
                   "cached %u free %u live %u",
                   p.thread_id, p.capacity, p.used, p.cached, p.free, p.live));
        }
      }
      probes_.fetch_add(1, std::memory_order_relaxed);
      std::string why;
      if (backend_.Check(&why) != Outcome::kOk) Fail(t, "Check: " + why);
      checks_.fetch_add(1, std::memory_order_relaxed);
      t.calls += 3;
      if (t.op % 8 == 0) {
        // Every thread's cache, busy or idle, back to the shared regions.
        ++t.calls;
        const Outcome drained = backend_.DrainCaches();
        if (drained != Outcome::kOk) {
          Fail(t, absl::StrCat("DrainCaches: ", OutcomeName(drained)));
        }
      }
      Publish(t);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  const StressConfig config_;
  FrontEnd backend_;
  std::vector<std::unique_ptr<Arena>> base_;
  std::vector<std::unique_ptr<Managed>> managed_;
  std::vector<std::unique_ptr<Arena>>
      thread_heaps_;                 // per slot; null for a slot without one
  std::vector<BlockQueue> inboxes_;  // per slot
  std::vector<Slot> slots_;
  BlockQueue collector_inbox_;
  Failures failures_;

  // Set by the test thread before each wave's threads start.
  std::chrono::steady_clock::time_point wave_end_;
  uint64_t wave_call_limit_ = 0;

  std::atomic<bool> stop_collector_{false};
  std::atomic<bool> stop_manager_{false};
  std::atomic<bool> stop_prober_{false};
  std::atomic<bool> stop_limiter_{false};

  // Budgets: the soft-limit handlers' records (the front-end's, and each
  // slot's thread heap's), each slot's call counter, the regime word (odd
  // while a hard limit may be in force), the epoch of the limiter's
  // removals, and the settled hard limit the prober checks.
  SoftWatch front_soft_;
  std::vector<std::unique_ptr<SoftWatch>> heap_soft_;
  std::unique_ptr<CallCounter[]> call_seq_;
  std::atomic<uint64_t> regime_{0};
  std::atomic<uint64_t> heap_limits_epoch_{0};
  absl::Mutex hard_mu_;
  HardLimitState hard_ ABSL_GUARDED_BY(hard_mu_);
  std::atomic<uint64_t> next_uid_{1};

  // Counters for the summary.
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> cross_thread_frees_{0};
  std::atomic<uint64_t> collector_frees_{0};
  std::atomic<uint64_t> adopted_{0};
  std::atomic<uint64_t> big_blocks_{0};
  std::atomic<uint64_t> in_managed_{0};
  std::atomic<uint64_t> calls_while_removed_{0};
  std::atomic<uint64_t> removals_{0};
  // RetireRegion calls, and retirements whose region went (its handler ran).
  std::atomic<uint64_t> retire_calls_{0};
  std::atomic<uint64_t> retirements_{0};
  std::atomic<uint64_t> busy_removals_{0};
  std::atomic<uint64_t> probes_{0};
  std::atomic<uint64_t> checks_{0};
  std::atomic<uint64_t> failed_allocations_{0};
  std::atomic<uint64_t> thread_heap_full_{0};
  std::atomic<uint64_t> binds_{0};
  std::atomic<uint64_t> unbinds_{0};
  std::atomic<uint64_t> hard_sets_{0};
  std::atomic<uint64_t> hard_checks_{0};
  std::atomic<uint64_t> hard_near_{0};
  std::atomic<uint64_t> hard_over_{0};
  std::atomic<uint64_t> soft_sets_{0};
  std::atomic<uint64_t> limit_removals_{0};
  std::atomic<uint64_t> nulls_under_limit_{0};
  std::atomic<uint64_t> nulls_without_limit_{0};
  std::atomic<uint64_t> heap_limit_sets_{0};
  std::atomic<uint64_t> heap_limit_checks_{0};
  std::atomic<uint64_t> heap_refusals_{0};
};

}  // namespace stress
}  // namespace fmemp

#endif  // FMEMP_TESTS_STRESS_STRESS_HARNESS_H_
