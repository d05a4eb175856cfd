/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * SDK user code in C, built outside fmemp's tree against an installed fmemp
 * with `pkg-config --cflags --libs fmemp` (the Makefile here). Several
 * threads put fresh blocks into shared slots and free the block they take
 * out, so most blocks are freed by another thread than the one that
 * allocated them, under each thread-safe policy; afterwards nothing may be
 * in use. The last line is "make consumer: fmemp works" only if every check
 * passed. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "fmemory_pool.h"

enum { kBytes = 1 << 20, kSlots = 128, kThreads = 4, kRounds = 20000 };

struct Shared {
  FMemp memp;
  _Atomic(void*) slots[kSlots];
  atomic_int failed;
};

struct Worker {
  struct Shared* shared;
  int index;
};

static void* Work(void* arg) {
  const struct Worker* worker = arg;
  struct Shared* shared = worker->shared;
  const int t = worker->index;
  for (int i = 0; i < kRounds; ++i) {
    void* fresh = FMempMalloc(&shared->memp, 16 + (i * 13 + t * 7) % 700);
    if (fresh == NULL) {
      atomic_fetch_add(&shared->failed, 1);
      continue;
    }
    void* old =
        atomic_exchange(&shared->slots[(i * 31 + t * 17) % kSlots], fresh);
    if (old != NULL) FMempFree(&shared->memp, old);
  }
  return NULL;
}

static int Check(int ok, const char* what, const char* policy) {
  printf("%s: %s: %s\n", policy, what, ok ? "ok" : "FAILED");
  return ok;
}

static int CrossThreadFrees(FMempPolicy policy, const char* name) {
  static struct Shared shared;
  u8* buffer = malloc(kBytes);
  if (!Check(buffer != NULL, "buffer", name)) return 0;
  shared = (struct Shared){0};
  int ok = Check(FMempInitWithPolicy(&shared.memp, buffer, buffer + kBytes,
                                     policy) == FMEMP_SUCCESS,
                 "FMempInitWithPolicy", name);
  if (ok) {
    pthread_t threads[kThreads];
    struct Worker workers[kThreads];
    int started = 0;
    while (started < kThreads) {
      workers[started] = (struct Worker){&shared, started};
      if (pthread_create(&threads[started], NULL, Work, &workers[started])) {
        break;
      }
      ++started;
    }
    ok &= Check(started == kThreads, "pthread_create", name);
    for (int t = 0; t < started; ++t) pthread_join(threads[t], NULL);
    for (int s = 0; s < kSlots; ++s) {
      void* p = atomic_exchange(&shared.slots[s], NULL);
      if (p != NULL) FMempFree(&shared.memp, p);
    }
    FMempDrainThreadCaches(&shared.memp);
    FMempUsage usage = {0};
    ok &= Check(FMempProbe64(&shared.memp, &usage) == FMEMP_SUCCESS,
                "FMempProbe64", name);
    printf(
        "%s: %d threads x %d blocks, peak %llu bytes, now used %llu, "
        "live blocks %llu\n",
        name, kThreads, kRounds, (unsigned long long)usage.max_used,
        (unsigned long long)usage.used, (unsigned long long)usage.live_blocks);
    ok &= Check(atomic_load(&shared.failed) == 0, "every malloc served", name);
    ok &= Check(usage.used == 0 && usage.live_blocks == 0, "usage back to 0",
                name);
    ok &= Check(FMempCheck(&shared.memp) == FMEMP_SUCCESS, "FMempCheck", name);
    FMempRemove(&shared.memp);
  }
  free(buffer);
  return ok;
}

int main(void) {
  int ok = CrossThreadFrees(FMEMP_POLICY_MUTEX, "mutex");
  ok &= CrossThreadFrees(FMEMP_POLICY_SPINLOCK, "spinlock");
  ok &= CrossThreadFrees(FMEMP_POLICY_THREAD_CACHE, "thread_cache");
  ok &= CrossThreadFrees(FMEMP_POLICY_THREAD_HEAPS, "thread_heaps");
  printf("%s\n", ok ? "make consumer: fmemp works" : "FAILED");
  return ok ? 0 : 1;
}
