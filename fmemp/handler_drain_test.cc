// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// User handlers (soft limit, out of memory, retired region) that drain every
// thread's cache, as a server's eviction handler would, while other threads
// do the same. A handler that ran inside its thread's own owner operation
// (fmemp/drain_protocol.h) or under an fmemp lock would deadlock here: two
// threads each inside their own operation, each waiting for the other's
// heap to be stopped; or a drain waiting for the registry lock its own
// caller holds. Each scenario runs under a watchdog, so that a deadlock is a
// failure with a message, not a hung test.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "fmemp/fmemp.h"
#include "fmemp/no_wait_lock.h"
#include "fmemp/test_util.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "fmemp/thread_registry.h"
#include "gtest/gtest.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

using test_util::RegionBuffer;
using test_util::ScopedFMemp;

// Long enough for a loaded 2-core machine under TSan; a scenario that
// finishes takes milliseconds.
constexpr absl::Duration kDeadline = absl::Seconds(60);

// Runs `scenario` on a thread of its own and waits for it up to kDeadline.
// A scenario still running then is deadlocked: the process says so and
// exits with a failure (its threads cannot be unwound).
void RunUnderWatchdog(const char* name, std::function<void()> scenario) {
  absl::Notification done;
  std::thread runner([&] {
    scenario();
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(kDeadline)) {
    std::fprintf(stderr,
                 "%s: still running after %s: the handlers deadlocked\n", name,
                 absl::FormatDuration(kDeadline).c_str());
    std::fflush(stderr);
    _exit(1);
  }
  runner.join();
}

// Where `parties` handlers meet before they drain, so that all of them are
// inside their handlers at once (the deadlock needs that). A party that
// waits longer than a few seconds goes on alone: the meeting is what makes
// a deadlock certain, not what the test checks.
class Meeting {
 public:
  explicit Meeting(int parties) : parties_(parties) {}
  void Arrive() {
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (arrived_.load(std::memory_order_acquire) < parties_ &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::yield();
    }
  }

 private:
  const int parties_;
  std::atomic<int> arrived_{0};
};

constexpr int kThreads = 2;
constexpr size_t kRegionBytes = size_t{1} << 20;

// A front-end's handlers' shared state: the meeting, then a drain, counted.
template <typename Front>
struct DrainingHandler {
  Front* memp = nullptr;
  Meeting meeting{kThreads};
  std::atomic<int> runs{0};
  // The first run on each thread meets the others; every run drains.
  void Run() {
    thread_local bool met = false;
    if (!met) {
      met = true;
      meeting.Arrive();
    }
    memp->DrainAllCaches();
    runs.fetch_add(1, std::memory_order_relaxed);
  }
};

using HeapMemp = ThreadHeapMemp<sync::SpinLock>;

// Allocates 256-byte blocks (through the thread heap's cache) until `done`
// says so or `max` blocks are held, then frees them all. Returns how many
// allocations failed.
size_t AllocateUntil(HeapMemp& memp, const std::function<bool()>& done,
                     size_t max) {
  std::vector<void*> held;
  held.reserve(max);
  size_t failures = 0;
  while (!done() && held.size() < max) {
    void* p = memp.Allocate(256);
    if (p == nullptr) {
      ++failures;
      break;
    }
    held.push_back(p);
  }
  for (void* p : held) memp.Free(p);
  return failures;
}

// Soft limits on each thread heap: each bound thread crosses its own, and
// its handler drains every thread heap's cache.
TEST(HandlerDrainTest, ThreadHeapSoftLimitHandlersDrainingAtOnce) {
  RunUnderWatchdog("thread heap soft limits", [] {
    HeapMemp memp;
    DrainingHandler<HeapMemp> handler;
    handler.memp = &memp;
    std::vector<std::unique_ptr<RegionBuffer>> regions;
    for (int i = 0; i < kThreads; ++i) {
      regions.push_back(std::make_unique<RegionBuffer>(kRegionBytes));
      ASSERT_TRUE(memp.AddRegion(regions[i]->begin(), regions[i]->end()).ok());
    }
    std::atomic<int> thread_runs[kThreads] = {};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_TRUE(memp.BindThisThread(regions[i]->begin()).ok());
        struct Context {
          DrainingHandler<HeapMemp>* handler;
          std::atomic<int>* runs;
        } context{&handler, &thread_runs[i]};
        ASSERT_TRUE(memp.TrySetThreadHeapSoftLimit(
                            0, 64 << 10, 32 << 10,
                            [](void* c, const Budget::SoftLimitEvent&) {
                              auto* ctx = static_cast<Context*>(c);
                              ctx->handler->Run();
                              ctx->runs->fetch_add(1);
                            },
                            &context)
                        .ok());
        EXPECT_EQ(AllocateUntil(
                      memp, [&] { return thread_runs[i].load() != 0; }, 2048),
                  0u);
        ASSERT_TRUE(memp.UnbindThisThread().ok());
      });
    }
    for (std::thread& t : threads) t.join();
    for (int i = 0; i < kThreads; ++i) EXPECT_GE(thread_runs[i].load(), 1);
    EXPECT_EQ(memp.Probe().used_bytes, 0u);
  });
}

// Sets `handler` as memp's out-of-memory handler (it drains every heap's
// cache and declines) and adds one 64 KiB region per thread to `regions`.
void DeclineAfterDraining(HeapMemp* memp, DrainingHandler<HeapMemp>* handler,
                          std::vector<std::unique_ptr<RegionBuffer>>* regions) {
  handler->memp = memp;
  memp->SetOutOfMemoryHandler(
      [](void* c, size_t, size_t) {
        static_cast<DrainingHandler<HeapMemp>*>(c)->Run();
        return false;
      },
      handler);
  for (int i = 0; i < kThreads; ++i) {
    regions->push_back(std::make_unique<RegionBuffer>(64 << 10));
    ASSERT_TRUE(
        memp->AddRegion((*regions)[i]->begin(), (*regions)[i]->end()).ok());
  }
}

// The out-of-memory handler, asked by bound threads whose heaps may not
// fall back (kFail), drains every heap's cache and declines.
TEST(HandlerDrainTest, OutOfMemoryHandlersOfThreadHeapsDrainingAtOnce) {
  RunUnderWatchdog("thread heap out of memory", [] {
    HeapMemp memp;
    DrainingHandler<HeapMemp> handler;
    std::vector<std::unique_ptr<RegionBuffer>> regions;
    ASSERT_NO_FATAL_FAILURE(DeclineAfterDraining(&memp, &handler, &regions));
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_TRUE(memp.BindThisThread(regions[i]->begin(),
                                        ThreadHeapExhaustion::kFail)
                        .ok());
        // Runs out of its 64 KiB: one failure, after the handler.
        EXPECT_EQ(AllocateUntil(
                      memp, [] { return false; }, 1024),
                  1u);
        ASSERT_TRUE(memp.UnbindThisThread().ok());
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_GE(handler.runs.load(), kThreads);
  });
}

// The same for reallocations that grow a block in a heap that may not fall
// back: the handler runs between the reallocation's operations.
TEST(HandlerDrainTest, ReallocOutOfMemoryHandlersDrainingAtOnce) {
  RunUnderWatchdog("thread heap realloc out of memory", [] {
    HeapMemp memp;
    DrainingHandler<HeapMemp> handler;
    std::vector<std::unique_ptr<RegionBuffer>> regions;
    ASSERT_NO_FATAL_FAILURE(DeclineAfterDraining(&memp, &handler, &regions));
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_TRUE(memp.BindThisThread(regions[i]->begin(),
                                        ThreadHeapExhaustion::kFail)
                        .ok());
        void* p = memp.Allocate(64);  // a parked block for the drains, later
        memp.Free(p);
        p = memp.Allocate(1024);
        ASSERT_NE(p, nullptr);
        for (size_t bytes = 2048;; bytes *= 2) {
          void* grown = memp.Reallocate(p, bytes);
          if (grown == nullptr) break;  // p is unchanged
          p = grown;
        }
        memp.Free(p);
        ASSERT_TRUE(memp.UnbindThisThread().ok());
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_GE(handler.runs.load(), kThreads);
    EXPECT_EQ(memp.Probe().used_bytes, 0u);
  });
}

// An out-of-memory handler that adds a region and binds it to the thread
// whose heap ran out (and drains, for good measure): the retry is a call
// of its own and is served from the new region; nothing counts as failed.
TEST(HandlerDrainTest, RetryAfterHandlerThatBindsARegionIsServed) {
  RunUnderWatchdog("retry after binding", [] {
    HeapMemp memp;
    RegionBuffer small(64 << 10);
    RegionBuffer extra(kRegionBytes);
    struct Context {
      HeapMemp* memp;
      RegionBuffer* extra;
      int runs = 0;
    } context{&memp, &extra};
    memp.SetOutOfMemoryHandler(
        [](void* c, size_t, size_t) {
          auto* ctx = static_cast<Context*>(c);
          ++ctx->runs;
          ctx->memp->DrainAllCaches();
          return ctx->memp->AddRegion(ctx->extra->begin(), ctx->extra->end())
                     .ok() &&
                 ctx->memp
                     ->BindThisThread(ctx->extra->begin(),
                                      ThreadHeapExhaustion::kFail)
                     .ok();
        },
        &context);
    ASSERT_TRUE(memp.AddRegion(small.begin(), small.end()).ok());
    std::thread worker([&] {
      ASSERT_TRUE(
          memp.BindThisThread(small.begin(), ThreadHeapExhaustion::kFail).ok());
      void* p = memp.Allocate(200 << 10);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(extra.Holds(p));
      EXPECT_EQ(context.runs, 1);
      memp.Free(p);
      EXPECT_EQ(memp.Probe().failed_allocations, 0u);
      ASSERT_TRUE(memp.UnbindThisThread().ok());
    });
    worker.join();
    EXPECT_EQ(memp.Probe().used_bytes, 0u);
  });
}

// Bound threads whose heaps fall back to a shared region that runs out
// too: the shared regions' out-of-memory handler drains every heap.
TEST(HandlerDrainTest, OutOfMemoryHandlerAfterFallbackDrains) {
  RunUnderWatchdog("fallback out of memory", [] {
    HeapMemp memp;
    DrainingHandler<HeapMemp> handler;
    handler.memp = &memp;
    memp.SetOutOfMemoryHandler(
        [](void* c, size_t, size_t) {
          static_cast<DrainingHandler<HeapMemp>*>(c)->Run();
          return false;
        },
        &handler);
    RegionBuffer shared(32 << 10);
    ASSERT_TRUE(memp.AddRegion(shared.begin(), shared.end()).ok());
    std::vector<std::unique_ptr<RegionBuffer>> regions;
    for (int i = 0; i < kThreads; ++i) {
      regions.push_back(std::make_unique<RegionBuffer>(32 << 10));
      ASSERT_TRUE(memp.AddRegion(regions[i]->begin(), regions[i]->end()).ok());
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_TRUE(memp.BindThisThread(regions[i]->begin()).ok());
        // 2 KiB blocks bypass the cache: each thread fills its heap, then
        // the shared region with the other, until one request fails.
        std::vector<void*> held;
        while (void* p = memp.Allocate(2048)) held.push_back(p);
        for (void* p : held) memp.Free(p);
        ASSERT_TRUE(memp.UnbindThisThread().ok());
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_GE(handler.runs.load(), kThreads);
  });
}

// Retired shared regions whose last blocks bound threads free: each
// region's handler runs on the freeing thread and drains every heap.
TEST(HandlerDrainTest, RetiredRegionHandlersOnBoundThreadsDrainingAtOnce) {
  RunUnderWatchdog("retired regions", [] {
    HeapMemp memp;
    DrainingHandler<HeapMemp> handler;
    handler.memp = &memp;
    // One shared region per thread, each holding one block allocated by
    // this (unbound) thread: a block that takes most of a region fits in
    // no other.
    std::vector<std::unique_ptr<RegionBuffer>> shared;
    std::vector<void*> blocks;
    for (int i = 0; i < kThreads; ++i) {
      shared.push_back(std::make_unique<RegionBuffer>(64 << 10));
      ASSERT_TRUE(memp.AddRegion(shared[i]->begin(), shared[i]->end()).ok());
      void* p = memp.Allocate(48 << 10);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(shared[i]->Holds(p));
      blocks.push_back(p);
    }
    std::vector<std::unique_ptr<RegionBuffer>> own;
    for (int i = 0; i < kThreads; ++i) {
      own.push_back(std::make_unique<RegionBuffer>(kRegionBytes));
      ASSERT_TRUE(memp.AddRegion(own[i]->begin(), own[i]->end()).ok());
    }
    for (int i = 0; i < kThreads; ++i) {
      ASSERT_TRUE(memp.RetireRegion(
                          shared[i]->begin(),
                          [](void* c, void*, void*) {
                            static_cast<DrainingHandler<HeapMemp>*>(c)->Run();
                          },
                          &handler)
                      .ok());
    }
    Meeting start(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_TRUE(memp.BindThisThread(own[i]->begin()).ok());
        // Something parked in its cache, for the drains to return.
        void* p = memp.Allocate(64);
        memp.Free(p);
        start.Arrive();
        EXPECT_TRUE(memp.Free(blocks[i]));  // its region's last block
        ASSERT_TRUE(memp.UnbindThisThread().ok());
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(handler.runs.load(), kThreads);
    EXPECT_EQ(memp.Probe().region_count, static_cast<size_t>(kThreads));
  });
}

// The same through the C API: per-thread heaps' soft limits
// (FMempSetThreadHeapSoftLimit) whose handlers call FMempDrainThreadCaches.
struct CDrain {
  FMemp* memp = nullptr;
  Meeting meeting{kThreads};
  std::atomic<int> runs{0};
};
CDrain* c_drain = nullptr;
thread_local int c_thread_runs = 0;

TEST(HandlerDrainTest, CApiThreadHeapSoftLimitHandlersDrainingAtOnce) {
  RunUnderWatchdog("C API soft limits", [] {
    RegionBuffer first(kRegionBytes);
    ScopedFMemp pool;
    FMemp* memp = pool.get();
    ASSERT_EQ(FMempInitWithPolicy(memp, first.begin(), first.end(),
                                  FMEMP_POLICY_THREAD_HEAPS),
              FMEMP_SUCCESS);
    std::vector<std::unique_ptr<RegionBuffer>> regions;
    for (int i = 0; i < kThreads; ++i) {
      regions.push_back(std::make_unique<RegionBuffer>(kRegionBytes));
      ASSERT_EQ(FMempAddRegion(memp, regions[i]->begin(), regions[i]->end()),
                FMEMP_SUCCESS);
    }
    CDrain drain;
    drain.memp = memp;
    c_drain = &drain;
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_EQ(FMempBindThread(memp, regions[i]->begin()), FMEMP_SUCCESS);
        ASSERT_EQ(FMempSetThreadHeapSoftLimit(
                      memp, 0, 64 << 10, 32 << 10,
                      [](void* user, u64, u64) {
                        auto* d = static_cast<CDrain*>(user);
                        if (c_thread_runs++ == 0) d->meeting.Arrive();
                        EXPECT_EQ(FMempDrainThreadCaches(d->memp),
                                  FMEMP_SUCCESS);
                        d->runs.fetch_add(1);
                      },
                      c_drain),
                  FMEMP_SUCCESS);
        std::vector<void*> held;
        while (c_thread_runs == 0 && held.size() < 2048) {
          void* p = FMempMalloc(memp, 256);
          ASSERT_NE(p, nullptr);
          held.push_back(p);
        }
        for (void* p : held) FMempFree(memp, p);
        EXPECT_GE(c_thread_runs, 1);
        ASSERT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_GE(drain.runs.load(), kThreads);
    c_drain = nullptr;
  });
}

// The C API's out-of-memory handler under per-thread heaps that may not
// fall back (FMEMP_BIND_NO_FALLBACK), draining every heap's cache.
TEST(HandlerDrainTest, CApiOomHandlersDrainingAtOnce) {
  RunUnderWatchdog("C API out of memory", [] {
    RegionBuffer first(64 << 10);
    ScopedFMemp pool;
    FMemp* memp = pool.get();
    ASSERT_EQ(FMempInitWithPolicy(memp, first.begin(), first.end(),
                                  FMEMP_POLICY_THREAD_HEAPS),
              FMEMP_SUCCESS);
    std::vector<std::unique_ptr<RegionBuffer>> regions;
    for (int i = 0; i < kThreads; ++i) {
      regions.push_back(std::make_unique<RegionBuffer>(64 << 10));
      ASSERT_EQ(FMempAddRegion(memp, regions[i]->begin(), regions[i]->end()),
                FMEMP_SUCCESS);
    }
    CDrain drain;
    drain.memp = memp;
    ASSERT_EQ(FMempSetOomHandler(
                  memp,
                  [](void* user, fsize_t, fsize_t) {
                    auto* d = static_cast<CDrain*>(user);
                    if (c_thread_runs++ == 0) d->meeting.Arrive();
                    EXPECT_EQ(FMempDrainThreadCaches(d->memp), FMEMP_SUCCESS);
                    d->runs.fetch_add(1);
                    return 0;
                  },
                  &drain),
              FMEMP_SUCCESS);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        ASSERT_EQ(FMempBindThreadWithFlags(memp, regions[i]->begin(),
                                           FMEMP_BIND_NO_FALLBACK),
                  FMEMP_SUCCESS);
        std::vector<void*> held;
        while (void* p = FMempMalloc(memp, 256)) held.push_back(p);
        for (void* p : held) FMempFree(memp, p);
        EXPECT_GE(c_thread_runs, 1);
        ASSERT_EQ(FMempUnbindThread(memp), FMEMP_SUCCESS);
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_GE(drain.runs.load(), kThreads);
  });
}

// CachingMemp: a retired region whose last blocks are parked in a cache
// goes when the retirement's drain returns them; its handler drains again
// (it must not run under the drain's registry lock, nor while it holds a
// cache stopped).
TEST(HandlerDrainTest, CachingRetiredHandlerDrains) {
  RunUnderWatchdog("caching retired region", [] {
    CachingMemp<sync::SpinLock> memp;
    RegionBuffer region(64 << 10);
    ASSERT_TRUE(memp.AddRegion(region.begin(), region.end()).ok());
    std::vector<void*> held;
    for (int i = 0; i < 8; ++i) held.push_back(memp.Allocate(64));
    for (void* p : held) memp.Free(p);  // parked in this thread's cache
    ASSERT_NE(memp.CachedBytes(), 0u);
    struct Context {
      CachingMemp<sync::SpinLock>* memp;
      int runs = 0;
    } context{&memp};
    ASSERT_TRUE(memp.RetireRegion(
                        region.begin(),
                        [](void* c, void*, void*) {
                          auto* ctx = static_cast<Context*>(c);
                          ctx->memp->DrainAllCaches();
                          ++ctx->runs;
                        },
                        &context)
                    .ok());
    EXPECT_EQ(context.runs, 1);
    EXPECT_EQ(memp.Probe().region_count, 0u);
  });
}

// The same through the C API's default policy (FMEMP_POLICY_THREAD_CACHE):
// the retired region's handler calls FMempDrainThreadCaches.
TEST(HandlerDrainTest, CApiCachingRetiredHandlerDrains) {
  RunUnderWatchdog("C API caching retired region", [] {
    RegionBuffer first(64 << 10);
    RegionBuffer second(64 << 10);
    ScopedFMemp pool;
    FMemp* memp = pool.get();
    ASSERT_EQ(FMempInitWithPolicy(memp, first.begin(), first.end(),
                                  FMEMP_POLICY_THREAD_CACHE),
              FMEMP_SUCCESS);
    std::vector<void*> held;
    for (int i = 0; i < 8; ++i) held.push_back(FMempMalloc(memp, 64));
    for (void* p : held) FMempFree(memp, p);  // parked in this thread's cache
    ASSERT_EQ(FMempAddRegion(memp, second.begin(), second.end()),
              FMEMP_SUCCESS);
    struct Context {
      FMemp* memp;
      int runs = 0;
    } context{memp};
    ASSERT_EQ(FMempRetireRegion(
                  memp, first.begin(),
                  [](void* c, void*, void*) {
                    auto* ctx = static_cast<Context*>(c);
                    EXPECT_EQ(FMempDrainThreadCaches(ctx->memp), FMEMP_SUCCESS);
                    ++ctx->runs;
                  },
                  &context),
              FMEMP_SUCCESS);
    EXPECT_EQ(context.runs, 1);
    EXPECT_EQ(FMempRegionCount(memp), 1u);
  });
}

// A thread's exit: OnThreadExit runs under the registry's lock, then
// AfterThreadExit (where the front-ends run the handlers of regions the
// exit emptied) once it is released: a handler there may drain, which takes
// that lock. The owner's DetachThreadStates waits for an AfterThreadExit
// under way.
class ExitRecorder final : public ThreadStateOwner {
 public:
  // *detach_saw_after_done: whether AfterThreadExit had finished when
  // DetachThreadStates returned, in the destructor.
  explicit ExitRecorder(std::atomic<bool>* detach_saw_after_done)
      : detach_saw_after_done_(detach_saw_after_done) {}
  ~ExitRecorder() {
    DetachThreadStates(this);
    detach_saw_after_done_->store(after_done.load());
  }
  void Register() { RegisterThreadState(this, new ThreadState); }
  void OnThreadExit(ThreadState*) override { on_exit_runs.fetch_add(1); }
  void AfterThreadExit() override {
    // Would wait forever if the exiting thread still held it.
    { NoWaitLock hold(&RegistryMutex()); }
    in_after.store(true);
    while (hold_after.load()) std::this_thread::yield();
    after_done.store(true);
  }
  std::atomic<int> on_exit_runs{0};
  std::atomic<bool> in_after{false};
  std::atomic<bool> hold_after{false};
  std::atomic<bool> after_done{false};

 private:
  std::atomic<bool>* const detach_saw_after_done_;
};

TEST(HandlerDrainTest, AfterThreadExitRunsWithoutTheRegistryLock) {
  RunUnderWatchdog("after thread exit", [] {
    std::atomic<bool> unused{false};
    ExitRecorder recorder(&unused);
    std::thread([&] { recorder.Register(); }).join();
    EXPECT_EQ(recorder.on_exit_runs.load(), 1);
    EXPECT_TRUE(recorder.after_done.load());
  });
}

TEST(HandlerDrainTest, OwnerDestructionWaitsForAfterThreadExit) {
  RunUnderWatchdog("owner destruction during exit", [] {
    std::atomic<bool> saw_after_done{false};
    auto* recorder = new ExitRecorder(&saw_after_done);
    recorder->hold_after.store(true);
    std::thread exiting([&] { recorder->Register(); });
    while (!recorder->in_after.load()) std::this_thread::yield();
    std::atomic<bool> destroying{false};
    std::thread destroyer([&] {
      destroying.store(true);
      delete recorder;  // waits for the exiting thread's AfterThreadExit
    });
    while (!destroying.load()) std::this_thread::yield();
    for (int i = 0; i < 1000; ++i) std::this_thread::yield();
    recorder->hold_after.store(false);
    destroyer.join();
    exiting.join();
    EXPECT_TRUE(saw_after_done.load());
  });
}

}  // namespace
}  // namespace fmemp
