// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fork() while other threads are inside FMemp calls: the child's thread must
// be able to keep allocating (fmemp.cc's pthread_atfork handlers hold every
// pool's locks across fork). Each child allocates, frees, probes and checks
// under an alarm, so a lock inherited in a held state shows up as a timeout.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fmemp/fmemp.h"
#include "gtest/gtest.h"

namespace {

// What the child does, from the forking thread; its exit status is the first
// failed step (0: none).
[[maybe_unused]] int ChildWork(FMemp* memp) {
  alarm(10);  // a deadlock kills the child with SIGALRM
  for (int i = 0; i < 200; ++i) {
    void* p = FMempMalloc(memp, 64 + static_cast<size_t>(i));
    if (p == nullptr) return 1;
    std::memset(p, 0x6b, 64);
    FMempFree(memp, p);
  }
  u32 total = 0, used = 0, peak = 0;
  FMemProbe(memp, &total, &used, &peak);
  if (used > total) return 2;
  if (FMempCheck(memp) != FMEMP_SUCCESS) return 3;
  return 0;
}

class FMempForkTest : public testing::TestWithParam<FMempPolicy> {};

TEST_P(FMempForkTest, ChildKeepsAllocatingWhileParentThreadsHoldLocks) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan does not support a multi-threaded fork";
#else
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[1 << 20]);
  FMemp memp;
  std::memset(&memp, 0, sizeof(memp));
  ASSERT_EQ(FMempInitWithPolicy(&memp, buffer.get(), buffer.get() + (1 << 20),
                                GetParam()),
            FMEMP_SUCCESS);
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  workers.reserve(3);
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&memp, &stop] {
      while (!stop.load(std::memory_order_relaxed)) {
        void* p = FMempMalloc(&memp, 200);
        FMempFree(&memp, p);
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(ChildWork(&memp));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status))
        << "round " << round << ": child killed by signal "
        << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ASSERT_EQ(WEXITSTATUS(status), 0) << "round " << round;
  }
  stop.store(true);
  for (std::thread& w : workers) w.join();
  EXPECT_EQ(FMempCheck(&memp), FMEMP_SUCCESS);
  FMempRelease(&memp);
#endif
}

// Forks `rounds` times while `workers` threads allocate and free blocks of
// many sizes (so that their caches refill and trim, taking the shared lock
// the fork handlers hold; under the thread heaps policy, in heaps of their own)
// and `drainers` threads drain every cache; each
// child runs child_work(&memp) under a watchdog and exits with its result.
// Returns "" or what went wrong.
template <typename ChildWork>
std::string ForkWhileBusy(FMempPolicy policy, int workers, int drainers,
                          int rounds, ChildWork child_work) {
  constexpr size_t kBytes = 4 << 20;
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[kBytes]);
  FMemp memp;
  std::memset(&memp, 0, sizeof(memp));
  if (FMempInitWithPolicy(&memp, buffer.get(), buffer.get() + kBytes, policy) !=
      FMEMP_SUCCESS) {
    return "init failed";
  }
  std::atomic<bool> stop{false};
  // Threads that have made their first fmemp call. Forks wait for all of
  // them: a thread still starting is inside the C library's or the
  // sanitizer's allocator (its stack, its TLS), and GCC's ASan allocator,
  // unlike glibc's malloc, is not held across fork(), so a child that starts
  // threads would hang on a lock that is not fmemp's.
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  // Under the thread heaps policy each worker binds a region of its own.
  constexpr size_t kOwnBytes = 512 << 10;
  std::unique_ptr<uint8_t[]> own(new uint8_t[kOwnBytes * workers]);
  for (int t = 0; t < workers; ++t) {
    threads.emplace_back([&memp, &stop, &started, &own, t] {
      uint8_t* const region = own.get() + kOwnBytes * t;
      if (FMempAddRegion(&memp, region, region + kOwnBytes) == FMEMP_SUCCESS) {
        FMempBindThread(&memp, region);  // NOT_SUPPORTED but under thread heaps
      }
      FMempFree(&memp, FMempMalloc(&memp, 32));
      started.fetch_add(1);
      void* blocks[64] = {};
      size_t round = static_cast<size_t>(t);
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t i = 0; i < 64; ++i) {
          blocks[i] = FMempMalloc(&memp, 16 + (i * 37 + round) % 900);
        }
        for (void* p : blocks) FMempFree(&memp, p);
        ++round;
      }
    });
  }
  for (int t = 0; t < drainers; ++t) {
    threads.emplace_back([&memp, &stop, &started] {
      FMempDrainThreadCaches(&memp);
      started.fetch_add(1);
      // Drains back to back would hold the thread registry's lock (a lock
      // without a queue: fmemp/no_wait_lock.h) nearly all the time and
      // starve the fork handler; a program drains now and then.
      while (!stop.load(std::memory_order_relaxed)) {
        FMempDrainThreadCaches(&memp);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  while (started.load() < workers + drainers) std::this_thread::yield();
  std::string failure;
  for (int round = 0; round < rounds && failure.empty(); ++round) {
    const pid_t pid = fork();
    if (pid < 0) {
      failure = "fork failed";
      break;
    }
    if (pid == 0) {
      alarm(10);  // a lock or a stopped cache inherited held: SIGALRM
      _exit(child_work(&memp));
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
      failure = "waitpid failed";
    } else if (!WIFEXITED(status)) {
      failure = "round " + std::to_string(round) + ": child killed by signal " +
                std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    } else if (WEXITSTATUS(status) != 0) {
      failure = "round " + std::to_string(round) + ": child failed step " +
                std::to_string(WEXITSTATUS(status));
    }
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  if (failure.empty() && FMempCheck(&memp) != FMEMP_SUCCESS) {
    failure = "parent's check failed";
  }
  FMempRelease(&memp);
  return failure;
}

// In the child: drains every cache (the parent's threads' included, which
// the child does not have), flushes its own, allocates and frees, checks.
[[maybe_unused]] int DrainInChild(FMemp* memp) {
  if (FMempDrainThreadCaches(memp) != FMEMP_SUCCESS) return 1;
  if (FMempFlushThreadCache(memp) != FMEMP_SUCCESS) return 2;
  for (int i = 0; i < 200; ++i) {
    void* p = FMempMalloc(memp, 16 + static_cast<size_t>(i) * 5);
    if (p == nullptr) return 3;
    std::memset(p, 0x6b, 16);
    FMempFree(memp, p);
  }
  if (FMempDrainThreadCaches(memp) != FMEMP_SUCCESS) return 4;
  if (FMempCheck(memp) != FMEMP_SUCCESS) return 5;
  return 0;
}

// fork() while drainers stop caches and owners refill (an owner may hold
// its cache's drain mutex, or be mid-operation waiting for the shared lock
// that the fork handlers hold): the child must still drain every cache,
// including the caches of threads it does not have.
TEST_P(FMempForkTest, ChildDrainsCachesAfterForkDuringDrains) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan does not support a multi-threaded fork";
#else
  EXPECT_EQ(ForkWhileBusy(GetParam(), /*workers=*/3, /*drainers=*/2,
                          /*rounds=*/60, &DrainInChild),
            "");
#endif
}

// In the child: two new threads allocate, free and exit, each with its own
// region bound under the thread heaps policy (other policies ignore the bind's
// NOT_SUPPORTED); then the child drains and checks.
[[maybe_unused]] int ThreadsInChild(FMemp* memp) {
  constexpr size_t kRegion = 256 << 10;
  static uint8_t regions[2][kRegion];
  std::atomic<int> failed{0};
  std::thread threads[2];
  for (int t = 0; t < 2; ++t) {
    threads[t] = std::thread([memp, t, &failed] {
      if (FMempAddRegion(memp, regions[t], regions[t] + kRegion) !=
          FMEMP_SUCCESS) {
        failed = 10 + t;
        return;
      }
      const FError bound = FMempBindThread(memp, regions[t]);
      if (bound != FMEMP_SUCCESS && bound != FMEMP_ERR_NOT_SUPPORTED) {
        failed = 20 + t;
        return;
      }
      void* blocks[32] = {};
      for (int round = 0; round < 100; ++round) {
        for (size_t i = 0; i < 32; ++i) {
          blocks[i] = FMempMalloc(memp, 16 + (i * 29 + round) % 700);
          if (blocks[i] == nullptr) failed = 30 + t;
        }
        for (void* p : blocks) FMempFree(memp, p);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (failed.load() != 0) return failed.load();
  if (FMempDrainThreadCaches(memp) != FMEMP_SUCCESS) return 40;
  if (FMempCheck(memp) != FMEMP_SUCCESS) return 41;
  void* p = FMempMalloc(memp, 100);
  if (p == nullptr) return 42;
  FMempFree(memp, p);
  return 0;
}

// Threads started in a fork child allocate, free and exit.
TEST_P(FMempForkTest, ThreadsStartedInChildAllocateFreeAndExit) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan does not support a multi-threaded fork";
#else
  EXPECT_EQ(ForkWhileBusy(GetParam(), /*workers=*/3, /*drainers=*/1,
                          /*rounds=*/20, &ThreadsInChild),
            "");
#endif
}

INSTANTIATE_TEST_SUITE_P(Policies, FMempForkTest,
                         testing::Values(FMEMP_POLICY_MUTEX,
                                         FMEMP_POLICY_SPINLOCK,
                                         FMEMP_POLICY_THREAD_CACHE,
                                         FMEMP_POLICY_THREAD_HEAPS));

}  // namespace
