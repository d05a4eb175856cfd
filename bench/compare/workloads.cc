// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "bench/compare/workloads.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/compare/measure.h"
#include "bench/compare/trace.h"
#include "bench/workload.h"

namespace fmemp::bench::compare {
namespace {

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;

// Length of every pregenerated sequence; a power of two, indexed by mask.
constexpr size_t kSequenceLength = size_t{1} << 16;
constexpr size_t kSequenceMask = kSequenceLength - 1;

constexpr uint64_t kSeed = 0x5eed'c0de'2026;

void Progress(const char* format, const std::string& a, const std::string& b) {
  std::fprintf(stderr, format, a.c_str(), b.c_str());
  std::fflush(stderr);
}

// Bytes of region for a live set: twice the largest possible live bytes,
// plus room for many regions' overhead.
size_t HeapBytesFor(size_t live, size_t max_bytes) {
  return 2 * live * max_bytes + 64 * kMiB;
}

std::string SizeLabel(size_t bytes) {
  if (bytes >= kMiB && bytes % kMiB == 0) {
    return std::to_string(bytes / kMiB) + "MiB";
  }
  if (bytes >= kKiB && bytes % kKiB == 0) {
    return std::to_string(bytes / kKiB) + "KiB";
  }
  return std::to_string(bytes) + "B";
}

std::string CountLabel(size_t n) {
  if (n >= 1000 && n % 1000 == 0) return std::to_string(n / 1000) + "K";
  return std::to_string(n);
}

// --- 1 and 6: live-set replacement ---------------------------------------

struct LiveSetCase {
  size_t live;
  size_t max_bytes;
  int regions;
};

// Runs `steps` replacement steps; returns million steps per second, or a
// negative value if setup or an allocation failed.
double LiveSetRate(const Contender& c, const LiveSetCase& k, size_t steps) {
  std::shared_ptr<void> self =
      c.setup(HeapSpec{HeapBytesFor(k.live, k.max_bytes), k.regions});
  if (self == nullptr) return -1;
  const Instance a(c, self);
  const std::vector<size_t> fill = RandomSizes(k.live, k.max_bytes, kSeed);
  const std::vector<size_t> sizes =
      RandomSizes(kSequenceLength, k.max_bytes, kSeed + 1);
  const std::vector<uint32_t> slots =
      RandomSlots(kSequenceLength, k.live, kSeed + 2);
  std::vector<void*> blocks(k.live, nullptr);
  bool ok = true;
  a.ThreadStart();
  for (size_t i = 0; i < k.live && ok; ++i) {
    blocks[i] = a.Allocate(fill[i]);
    ok = blocks[i] != nullptr;
    if (ok) Touch(blocks[i], i);
  }
  const Clock::time_point start = Clock::now();
  for (size_t i = 0; i < steps && ok; ++i) {
    const size_t k = i & kSequenceMask;
    void*& slot = blocks[slots[k]];
    a.Free(slot);
    slot = a.Allocate(sizes[k]);
    ok = slot != nullptr;
    if (ok) Touch(slot, i);
  }
  const Clock::time_point end = Clock::now();
  for (void* block : blocks) a.Free(block);
  a.ThreadEnd();
  if (!ok) return -1;
  return static_cast<double>(steps) / SecondsBetween(start, end) / 1e6;
}

bool ReportLiveSet(const Contender& c, const char* workload,
                   const std::string& case_name, const LiveSetCase& k,
                   size_t steps, const Reporter& r) {
  Progress("  %s %s\n", workload, case_name);
  const double rate = LiveSetRate(c, k, steps);
  if (rate < 0) {
    r.Fail(workload, case_name, "setup or allocation failed");
    return false;
  }
  r.Add(workload, case_name, "msteps_per_s", rate);
  return true;
}

// --- 2: server ------------------------------------------------------------

// Blocks handed to a thread by others, freed by that thread.
struct Inbox {
  std::mutex mutex;
  std::vector<void*> blocks;
};

constexpr size_t kHandoffBatch = 64;
constexpr unsigned kHandoffPercent = 10;

class ServerRun {
 public:
  ServerRun(const Instance& a, int threads, size_t live, size_t steps,
            unsigned handoff_percent)
      : a_(a),
        threads_(threads),
        handoff_percent_(handoff_percent),
        live_(live),
        steps_(steps),
        inboxes_(threads) {}

  // Million steps per second over all threads; negative on failure.
  double Run() {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads_; ++t) {
      workers.emplace_back([this, t] { Work(t); });
    }
    while (ready_.load() < threads_) std::this_thread::yield();
    const Clock::time_point start = Clock::now();
    go_.store(true);
    for (std::thread& worker : workers) worker.join();
    if (failed_.load()) return -1;
    const double total = static_cast<double>(steps_) * threads_;
    return total / SecondsBetween(start, end_) / 1e6;
  }

 private:
  void Send(int to, std::vector<void*>& batch) {
    Inbox& inbox = inboxes_[to];
    std::lock_guard<std::mutex> hold(inbox.mutex);
    inbox.blocks.insert(inbox.blocks.end(), batch.begin(), batch.end());
    batch.clear();
  }

  void Drain(int me, std::vector<void*>& scratch) {
    Inbox& inbox = inboxes_[me];
    {
      std::lock_guard<std::mutex> hold(inbox.mutex);
      scratch.swap(inbox.blocks);
    }
    for (void* block : scratch) a_.Free(block);
    scratch.clear();
  }

  void Work(int me) {
    const uint64_t seed = kSeed + 100 * static_cast<uint64_t>(me);
    const size_t max_bytes = kKiB;
    const std::vector<size_t> fill = RandomSizes(live_, max_bytes, seed);
    const std::vector<size_t> sizes =
        RandomSizes(kSequenceLength, max_bytes, seed + 1);
    const std::vector<uint32_t> slots =
        RandomSlots(kSequenceLength, live_, seed + 2);
    const std::vector<uint32_t> percent =
        RandomSlots(kSequenceLength, 100, seed + 3);
    const int next = (me + 1) % threads_;
    std::vector<void*> outgoing;
    std::vector<void*> scratch;
    std::vector<void*> blocks(live_, nullptr);
    bool ok = true;

    a_.ThreadStart();
    for (size_t i = 0; i < live_ && ok; ++i) {
      blocks[i] = a_.Allocate(fill[i]);
      ok = blocks[i] != nullptr;
    }
    ready_.fetch_add(1);
    while (!go_.load()) std::this_thread::yield();
    for (size_t i = 0; i < steps_ && ok; ++i) {
      const size_t k = i & kSequenceMask;
      void*& slot = blocks[slots[k]];
      if (percent[k] < handoff_percent_) {
        outgoing.push_back(slot);
        if (outgoing.size() == kHandoffBatch) Send(next, outgoing);
      } else {
        a_.Free(slot);
      }
      slot = a_.Allocate(sizes[k]);
      ok = slot != nullptr;
      if (ok) Touch(slot, i);
      if ((i & (kHandoffBatch - 1)) == 0) Drain(me, scratch);
    }
    Send(next, outgoing);
    if (!ok) failed_.store(true);
    if (finished_.fetch_add(1) + 1 == threads_) end_ = Clock::now();
    // Nobody sends after every thread has finished; then drain for good.
    while (finished_.load() < threads_) std::this_thread::yield();
    Drain(me, scratch);
    for (void* block : blocks) a_.Free(block);
    a_.ThreadEnd();
  }

  const Instance& a_;
  const int threads_;
  const unsigned handoff_percent_;
  const size_t live_;
  const size_t steps_;
  std::vector<Inbox> inboxes_;
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false};
  std::atomic<int> finished_{0};
  std::atomic<bool> failed_{false};
  Clock::time_point end_;
};

// --- 3: producer / consumer -----------------------------------------------

// A single-producer single-consumer ring of block pointers.
class Ring {
 public:
  explicit Ring(size_t capacity) : slots_(capacity) {}
  // On success *popped is how many blocks the consumer had taken out when
  // the push was decided (possibly a few less by now).
  bool TryPush(void* block, size_t* popped) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    const size_t head = head_.load(std::memory_order_acquire);
    *popped = head;
    if (tail - head == slots_.size()) {
      return false;
    }
    slots_[tail % slots_.size()] = block;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  bool TryPop(void** block) {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return false;
    *block = slots_[head % slots_.size()];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

 private:
  std::vector<void*> slots_;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

// Bytes requested by the first n blocks of the cyclic sequence `sizes`
// (kSequenceLength entries), in O(1) after O(kSequenceLength) setup.
class PrefixBytes {
 public:
  explicit PrefixBytes(const std::vector<size_t>& sizes)
      : prefix_(sizes.size() + 1, 0) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      prefix_[i + 1] = prefix_[i] + sizes[i];
    }
  }
  size_t operator()(size_t n) const {
    return (n / kSequenceLength) * prefix_.back() + prefix_[n & kSequenceMask];
  }

 private:
  std::vector<size_t> prefix_;
};

// --- 4: latency -----------------------------------------------------------

struct LatencySamples {
  std::vector<uint64_t> malloc_ns;
  std::vector<uint64_t> free_ns;
  size_t failed = 0;
};

uint64_t Nanos(Clock::time_point start, Clock::time_point end) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(end - start)
          .count());
}

// The median cost of two back-to-back clock reads.
uint64_t TimerCostNanos() {
  std::vector<uint64_t> samples(10000);
  for (uint64_t& sample : samples) {
    const Clock::time_point a = Clock::now();
    sample = Nanos(a, Clock::now());
  }
  return Quantile(samples, 0.5);
}

class LatencyRun {
 public:
  LatencyRun(const Instance& a, size_t heap_bytes)
      : a_(a),
        low_(heap_bytes / 10 * 7),
        high_(heap_bytes / 10 * 9),
        sizes_(RandomSizes(kSequenceLength, 64 * kKiB, kSeed + 10)),
        coins_(RandomSlots(kSequenceLength, 2, kSeed + 11)),
        victims_(RandomSlots(kSequenceLength, UINT32_MAX, kSeed + 12)) {}

  LatencySamples Run(size_t ops) {
    LatencySamples samples;
    samples.malloc_ns.reserve(ops);
    samples.free_ns.reserve(ops);
    size_t i = 0;
    // Fill to the low mark, then warm up, untimed samples thrown away.
    LatencySamples discard;
    discard.malloc_ns.reserve(ops);
    discard.free_ns.reserve(ops);
    while (live_bytes_ < low_ && discard.failed == 0) Step(i++, discard);
    for (size_t n = 0; n < ops / 4; ++n) Step(i++, discard);
    for (size_t n = 0; n < ops; ++n) Step(i++, samples);
    samples.failed += discard.failed;
    for (const Live& block : live_) a_.Free(block.ptr);
    live_.clear();
    return samples;
  }

 private:
  struct Live {
    void* ptr;
    size_t bytes;
  };

  // One operation: an allocation while under the low mark, a free when
  // above the high mark, a coin toss in between.
  void Step(size_t i, LatencySamples& out) {
    const size_t k = i & kSequenceMask;
    const size_t bytes = sizes_[k];
    if (live_bytes_ + bytes <= high_ &&
        (live_bytes_ < low_ || coins_[k] == 1)) {
      const Clock::time_point start = Clock::now();
      void* ptr = a_.Allocate(bytes);
      const Clock::time_point end = Clock::now();
      if (ptr != nullptr) {
        Touch(ptr, i);
        out.malloc_ns.push_back(Nanos(start, end));
        live_.push_back({ptr, bytes});
        live_bytes_ += bytes;
        return;
      }
      ++out.failed;
    }
    if (live_.empty()) return;
    const size_t victim = victims_[k] % live_.size();
    const Live block = live_[victim];
    const Clock::time_point start = Clock::now();
    a_.Free(block.ptr);
    const Clock::time_point end = Clock::now();
    out.free_ns.push_back(Nanos(start, end));
    live_[victim] = live_.back();
    live_.pop_back();
    live_bytes_ -= block.bytes;
  }

  const Instance& a_;
  const size_t low_;
  const size_t high_;
  const std::vector<size_t> sizes_;
  const std::vector<uint32_t> coins_;
  const std::vector<uint32_t> victims_;
  std::vector<Live> live_;
  size_t live_bytes_ = 0;
};

void ReportQuantiles(const Reporter& r, const std::string& case_name,
                     const char* op, std::vector<uint64_t>& ns) {
  const std::string prefix = op;
  r.Add("latency", case_name, prefix + "_p50_ns", Quantile(ns, 0.5));
  r.Add("latency", case_name, prefix + "_p99_ns", Quantile(ns, 0.99));
  r.Add("latency", case_name, prefix + "_p999_ns", Quantile(ns, 0.999));
  r.Add("latency", case_name, prefix + "_p9999_ns", Quantile(ns, 0.9999));
  r.Add("latency", case_name, prefix + "_max_ns", Quantile(ns, 1.0));
}

}  // namespace

bool ScaleByName(const std::string& name, Scale* scale) {
  if (name == "full") {
    *scale = Scale{1'000'000, 100'000, 1'000'000,  1000,
                   1'000'000, 500'000, 128 * kMiB, 50'000};
  } else if (name == "quick") {
    *scale = Scale{300'000, 20'000,  300'000,   1000,
                   300'000, 200'000, 32 * kMiB, 10'000};
  } else if (name == "smoke") {
    *scale = Scale{2'000, 2'000, 2'000, 100, 2'000, 2'000, 4 * kMiB, 500};
  } else {
    return false;
  }
  return true;
}

void Reporter::Add(const std::string& workload, const std::string& case_name,
                   const std::string& metric, double value) const {
  std::printf("R\t%s\t%s\t%s\t%s\t%.6g\n", workload.c_str(), case_name.c_str(),
              contender_.c_str(), metric.c_str(), value);
  std::fflush(stdout);
}

void Reporter::Fail(const std::string& workload, const std::string& case_name,
                    const std::string& why) const {
  std::printf("F\t%s\t%s\t%s\t%s\n", workload.c_str(), case_name.c_str(),
              contender_.c_str(), why.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "  FAILED %s %s: %s\n", workload.c_str(),
               case_name.c_str(), why.c_str());
}

bool RunSingleThread(const Contender& c, const Scale& s, const Reporter& r) {
  bool ok = true;
  for (size_t live : {size_t{1000}, s.big_live}) {
    for (size_t max_bytes : {kKiB, 64 * kKiB}) {
      const std::string name =
          "16B-" + SizeLabel(max_bytes) + " live " + CountLabel(live);
      ok &= ReportLiveSet(c, "single", name, {live, max_bytes, 1},
                          s.single_steps, r);
    }
  }
  return ok;
}

bool RunRegions(const Contender& c, const Scale& s, const Reporter& r) {
  bool ok = true;
  for (size_t max_bytes : {kKiB, 64 * kKiB}) {
    for (int regions : {1, 8, 64}) {
      const std::string name = "16B-" + SizeLabel(max_bytes) + " live 1K, " +
                               std::to_string(regions) + " regions";
      ok &= ReportLiveSet(c, "regions", name, {1000, max_bytes, regions},
                          s.single_steps, r);
    }
  }
  return ok;
}

bool RunServer(const Contender& c, const Scale& s,
               const std::vector<int>& thread_counts, const Reporter& r) {
  if (!c.thread_safe) return true;
  bool ok = true;
  for (int threads : thread_counts) {
    // With several threads, also the same steps with no handoff: each
    // thread runs workload 1's first case on its own live set.
    for (unsigned handoff : {kHandoffPercent, 0u}) {
      if (handoff == 0 && threads == 1) continue;
      const std::string name = std::to_string(threads) + " threads" +
                               (handoff == 0 ? ", no handoff" : "");
      Progress("  %s %s\n", "server", name);
      std::shared_ptr<void> self =
          c.setup(HeapSpec{HeapBytesFor(s.server_live * threads, kKiB), 1});
      double rate = -1;
      if (self != nullptr) {
        const Instance a(c, self);
        ServerRun run(a, threads, s.server_live, s.server_steps, handoff);
        rate = run.Run();
      }
      if (rate < 0) {
        r.Fail("server", name, "setup or allocation failed");
        ok = false;
        continue;
      }
      r.Add("server", name, "msteps_per_s", rate);
    }
  }
  return ok;
}

bool RunProducerConsumer(const Contender& c, const Scale& s,
                         const Reporter& r) {
  if (!c.thread_safe) return true;
  const std::string name = "16B-4KiB, ring 4096";
  Progress("  %s %s\n", "prodcons", name);
  std::shared_ptr<void> self = c.setup(HeapSpec{256 * kMiB, 1});
  if (self == nullptr) {
    r.Fail("prodcons", name, "setup failed");
    return false;
  }
  const Instance a(c, self);
  const std::vector<size_t> sizes =
      RandomSizes(kSequenceLength, 4 * kKiB, kSeed + 20);
  const PrefixBytes bytes_of(sizes);
  Ring ring(4096);
  std::atomic<size_t> failed{0};
  size_t peak_live = 0;  // written by the producer, read after join
  const size_t n = s.prodcons_blocks;

  const bool peak_reset = ResetPeakRss();
  const size_t rss_before = CurrentRssBytes();
  const Clock::time_point start = Clock::now();
  std::thread producer([&] {
    a.ThreadStart();
    for (size_t i = 0; i < n; ++i) {
      void* block = a.Allocate(sizes[i & kSequenceMask]);
      if (block == nullptr) {
        failed.fetch_add(1);
      } else {
        Touch(block, i);
      }
      size_t popped = 0;
      while (!ring.TryPush(block, &popped)) std::this_thread::yield();
      // Live requested bytes: blocks 0..i allocated, minus those the
      // consumer had popped (it frees each right after popping it).
      peak_live = std::max(peak_live, bytes_of(i + 1) - bytes_of(popped));
    }
    a.ThreadEnd();
  });
  std::thread consumer([&] {
    a.ThreadStart();
    for (size_t i = 0; i < n; ++i) {
      void* block = nullptr;
      while (!ring.TryPop(&block)) std::this_thread::yield();
      if (block != nullptr) Escape(block);
      a.Free(block);
    }
    a.ThreadEnd();
  });
  producer.join();
  consumer.join();
  const Clock::time_point end = Clock::now();
  const size_t peak = PeakRssBytes();
  if (failed.load() != 0) {
    r.Fail("prodcons", name, "allocation failed");
    return false;
  }
  r.Add("prodcons", name, "mblocks_per_s",
        static_cast<double>(n) / SecondsBetween(start, end) / 1e6);
  if (peak_reset) {
    r.Add("prodcons", name, "peak_rss_growth",
          static_cast<double>(peak > rss_before ? peak - rss_before : 0));
  }
  r.Add("prodcons", name, "peak_live_bytes", static_cast<double>(peak_live));
  if (c.family == Family::kFmemp) {
    r.Add("prodcons", name, "allocator_peak", a.PeakBytes());
  }
  return true;
}

bool RunLatency(const Contender& c, const Scale& s, const Reporter& r) {
  bool ok = true;
  // Malloc contenders have no region to fault in ahead of time.
  for (bool prefault : {false, true}) {
    if (prefault && c.family != Family::kFmemp) continue;
    const std::string name = "16B-64KiB, " + SizeLabel(s.latency_heap) +
                             " heap 70-90% full" +
                             (prefault ? ", pre-faulted region" : "");
    Progress("  %s %s\n", "latency", name);
    std::shared_ptr<void> self = c.setup(HeapSpec{s.latency_heap, 1, prefault});
    if (self == nullptr) {
      r.Fail("latency", name, "setup failed");
      ok = false;
      continue;
    }
    const Instance a(c, self);
    a.ThreadStart();
    LatencyRun run(a, s.latency_heap);
    LatencySamples samples = run.Run(s.latency_ops);
    a.ThreadEnd();
    ReportQuantiles(r, name, "malloc", samples.malloc_ns);
    ReportQuantiles(r, name, "free", samples.free_ns);
    r.Add("latency", name, "failed_allocations",
          static_cast<double>(samples.failed));
    r.Add("latency", name, "timer_ns", TimerCostNanos());
  }
  return ok;
}

bool RunMemoryEfficiency(const Contender& c, const Scale& s,
                         const Reporter& r) {
  const Trace trace = MakeTrace(s.trace_phase, kSeed + 30);
  const std::string name =
      "trace " + CountLabel(trace.events.size()) + " events, peak " +
      SizeLabel(trace.peak_live_bytes / kKiB * kKiB) + " live";
  Progress("  %s %s\n", "memory", name);
  const double peak_live = static_cast<double>(trace.peak_live_bytes);
  r.Add("memory", name, "peak_live_bytes", peak_live);
  if (c.family == Family::kMalloc) {
    std::shared_ptr<void> self = c.setup(HeapSpec{});
    const Instance a(c, self);
    const bool peak_reset = ResetPeakRss();
    const size_t rss_before = CurrentRssBytes();
    const bool replayed = Replay(a, trace, /*write_all=*/true);
    const size_t peak = PeakRssBytes();
    if (!replayed || !peak_reset) {
      r.Fail("memory", name, replayed ? "cannot reset VmHWM" : "malloc failed");
      return false;
    }
    r.Add("memory", name, "rss_over_peak_live",
          static_cast<double>(peak - std::min(peak, rss_before)) / peak_live);
    return true;
  }
  auto fits = [&](size_t region_bytes) {
    std::shared_ptr<void> self = c.setup(HeapSpec{region_bytes, 1});
    if (self == nullptr) return false;
    return Replay(Instance(c, self), trace, /*write_all=*/false);
  };
  const size_t smallest = SmallestFit(trace.peak_live_bytes, fits);
  if (smallest == 0) {
    r.Fail("memory", name, "no region up to 64x the peak fits");
    return false;
  }
  r.Add("memory", name, "min_region_bytes", static_cast<double>(smallest));
  r.Add("memory", name, "region_over_peak_live",
        static_cast<double>(smallest) / peak_live);
  return true;
}

}  // namespace fmemp::bench::compare
