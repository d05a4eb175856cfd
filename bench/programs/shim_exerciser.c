/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * bench/programs/shim_exerciser.c
 *
 * What malloc_shim_test.sh runs under libfmemp_malloc.so: threads that
 * allocate with every call of the malloc family, hand half their blocks to
 * the next thread to free, check every block's contents before freeing it,
 * and exit. Exits non-zero on a damaged block or a failed allocation. */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kThreads = 4, kRounds = 200, kBlocks = 64 };

struct Slot {
  unsigned char* p;
  size_t size;
  unsigned char fill;
};

static struct Slot handoff[kThreads][kBlocks];
static pthread_barrier_t barrier;
static int failures;

static int Verify(const struct Slot* s) {
  for (size_t i = 0; i < s->size; ++i) {
    if (s->p[i] != s->fill) return 0;
  }
  return 1;
}

static void* Worker(void* arg) {
  const int id = (int)(intptr_t)arg;
  unsigned seed = (unsigned)id * 2654435761u + 1;
  for (int round = 0; round < kRounds; ++round) {
    struct Slot own[kBlocks];
    for (int i = 0; i < kBlocks; ++i) {
      seed = seed * 1103515245u + 12345u;
      size_t size = 1 + (seed >> 8) % 2048;
      unsigned char* p;
      switch (i % 4) {
        case 0:
          p = malloc(size);
          break;
        case 1:
          p = calloc(1, size);
          break;
        case 2: {
          void* q = NULL;
          p = posix_memalign(&q, 64, size) == 0 ? q : NULL;
          if (p != NULL && ((uintptr_t)p & 63) != 0)
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
          break;
        }
        default:
          p = malloc(size / 2 + 1);
          p = realloc(p, size);
          break;
      }
      if (p == NULL) {
        __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
        return NULL;
      }
      own[i].p = p;
      own[i].size = size;
      own[i].fill = (unsigned char)(id * 31 + i);
      memset(p, own[i].fill, size);
    }
    /* Give the odd blocks to the next thread; free the even ones here. */
    for (int i = 1; i < kBlocks; i += 2) handoff[id][i] = own[i];
    pthread_barrier_wait(&barrier);
    const int from = (id + kThreads - 1) % kThreads;
    for (int i = 1; i < kBlocks; i += 2) {
      if (!Verify(&handoff[from][i]))
        __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
      free(handoff[from][i].p);
    }
    for (int i = 0; i < kBlocks; i += 2) {
      if (!Verify(&own[i])) __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
      free(own[i].p);
    }
    pthread_barrier_wait(&barrier);
  }
  return NULL;
}

int main(void) {
  pthread_t threads[kThreads];
  pthread_barrier_init(&barrier, NULL, kThreads);
  for (int i = 0; i < kThreads; ++i) {
    pthread_create(&threads[i], NULL, Worker, (void*)(intptr_t)i);
  }
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  printf("failures: %d\n", failures);
  return failures == 0 ? 0 : 1;
}
