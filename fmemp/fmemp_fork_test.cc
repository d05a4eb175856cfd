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
#include <cstring>
#include <memory>
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

INSTANTIATE_TEST_SUITE_P(Policies, FMempForkTest,
                         testing::Values(FMEMP_POLICY_MUTEX,
                                         FMEMP_POLICY_SPINLOCK,
                                         FMEMP_POLICY_THREAD_CACHE,
                                         FMEMP_POLICY_THREAD_POOLS));

}  // namespace
