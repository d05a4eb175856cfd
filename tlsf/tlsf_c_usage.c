/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * tlsf/tlsf_c_usage.c
 *
 * Compiles tlsf/tlsf.h as C11 and calls it as the SDK's C code does: a heap
 * created with a pool in a static buffer, malloc/memalign/realloc/free, pool
 * walks, integrity checks, a second pool added and removed, statistics, the
 * error handler and the implementation's size queries. Every check returns
 * its line number on failure, so tlsf_test.cc can say which one failed.
 */

#include "tlsf/tlsf_c_usage.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tlsf/tlsf.h"

#define CHECK(cond)    \
  do {                 \
    if (!(cond)) {     \
      return __LINE__; \
    }                  \
  } while (0)

/* The heap's memory as SDK code declares it: a static array of words. */
static uint64_t g_first_memory[64 * 1024 / sizeof(uint64_t)];
/* A second pool, larger than the first so that big blocks must use it. */
static uint64_t g_second_memory[128 * 1024 / sizeof(uint64_t)];

static int IsAligned(const void* ptr, size_t align) {
  return ((uintptr_t)ptr & (align - 1)) == 0;
}

static int IsInside(const void* ptr, const void* mem, size_t bytes) {
  const uintptr_t p = (uintptr_t)ptr;
  const uintptr_t begin = (uintptr_t)mem;
  return p >= begin && p < begin + bytes;
}

static int FilledWith(const void* ptr, unsigned char value, size_t bytes) {
  const unsigned char* p = (const unsigned char*)ptr;
  size_t i;
  for (i = 0; i < bytes; ++i) {
    if (p[i] != value) return 0;
  }
  return 1;
}

/* What a tlsf_walker sees over one pool. */
typedef struct WalkTotals {
  size_t blocks;
  size_t used_blocks;
  size_t used_bytes;
  size_t span_bytes; /* usable bytes plus per-block overhead, all blocks */
  int misaligned;
} WalkTotals;

static void CountBlocks(void* ptr, size_t size, int used, void* user) {
  WalkTotals* totals = (WalkTotals*)user;
  ++totals->blocks;
  totals->span_bytes += size + tlsf_alloc_overhead();
  if (used) {
    ++totals->used_blocks;
    totals->used_bytes += size;
    if (!IsAligned(ptr, tlsf_align_size())) totals->misaligned = 1;
  }
}

static WalkTotals Walk(pool_t pool) {
  WalkTotals totals;
  memset(&totals, 0, sizeof(totals));
  tlsf_walk_pool(pool, CountBlocks, &totals);
  return totals;
}

/* Stops the walk at the first used block. */
static int StopAtFirstUsed(void* ptr, size_t size, int used, void* user) {
  (void)size;
  if (used) {
    *(void**)user = ptr;
    return 0;
  }
  return 1;
}

/* Records the last misuse report. */
typedef struct Reports {
  int count;
  int kind;
  const void* ptr;
} Reports;

static void RecordError(void* user, int kind, const void* ptr) {
  Reports* reports = (Reports*)user;
  ++reports->count;
  reports->kind = kind;
  reports->ptr = ptr;
}

static int CheckSizeQueries(void) {
  const size_t align = tlsf_align_size();
  CHECK(align >= 16);
  CHECK((align & (align - 1)) == 0);
  CHECK(tlsf_size() > 0);
  CHECK(tlsf_size() % align == 0);
  CHECK(tlsf_alloc_overhead() == 8);
  CHECK(tlsf_block_size_min() > 0);
  CHECK(tlsf_block_size_max() > tlsf_block_size_min());
  CHECK(tlsf_block_size_max() >= ((size_t)1 << 32));
  CHECK(tlsf_pool_overhead() > 0);
  CHECK(tlsf_pool_overhead() < 1024);
  return 0;
}

static int Run(void) {
  tlsf_t tlsf;
  pool_t pool;
  pool_t second;
  tlsf_stats_t stats;
  WalkTotals totals;
  Reports reports;
  void* first_used = NULL;
  unsigned char* p;
  unsigned char* a128;
  unsigned char* a64;
  unsigned char* a32;
  unsigned char* q;
  unsigned char* big;
  size_t capacity;
  size_t largest;
  int line;

  line = CheckSizeQueries();
  if (line != 0) return line;

  /* Too small for the control structure and a pool. */
  CHECK(tlsf_create_with_pool(g_first_memory, tlsf_size()) == NULL);

  tlsf = tlsf_create_with_pool(g_first_memory, sizeof(g_first_memory));
  CHECK(tlsf != NULL);
  CHECK(IsInside(tlsf, g_first_memory, sizeof(g_first_memory)));
  pool = tlsf_get_pool(tlsf);
  CHECK(pool != NULL);
  CHECK(IsInside(pool, g_first_memory, sizeof(g_first_memory)));
  CHECK(tlsf_check(tlsf) == 0);
  CHECK(tlsf_check_pool(pool) == 0);

  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.pool_count == 1);
  CHECK(stats.live_blocks == 0);
  CHECK(stats.used_bytes == 0);
  CHECK(stats.free_bytes == stats.capacity_bytes);
  CHECK(stats.capacity_bytes <= sizeof(g_first_memory) - tlsf_size());
  CHECK(stats.capacity_bytes + tlsf_size() + tlsf_pool_overhead() + 32 >=
        sizeof(g_first_memory));
  capacity = stats.capacity_bytes;

  totals = Walk(pool);
  CHECK(totals.blocks == 1);
  CHECK(totals.used_blocks == 0);
  CHECK(totals.span_bytes == capacity);

  /* malloc, memalign and realloc. */
  p = (unsigned char*)tlsf_malloc(tlsf, 100);
  CHECK(p != NULL);
  CHECK(IsAligned(p, tlsf_align_size()));
  CHECK(tlsf_block_size(p) >= 100);
  memset(p, 0x11, 100);

  a128 = (unsigned char*)tlsf_memalign(tlsf, 128, 200);
  a64 = (unsigned char*)tlsf_memalign(tlsf, 64, 50);
  a32 = (unsigned char*)tlsf_memalign(tlsf, 32, 1000);
  CHECK(a128 != NULL && a64 != NULL && a32 != NULL);
  CHECK(IsAligned(a128, 128));
  CHECK(IsAligned(a64, 64));
  CHECK(IsAligned(a32, 32));
  CHECK(tlsf_block_size(a128) >= 200);
  CHECK(tlsf_block_size(a64) >= 50);
  CHECK(tlsf_block_size(a32) >= 1000);
  memset(a128, 0x80, 200);
  memset(a64, 0x40, 50);
  memset(a32, 0x20, 1000);
  CHECK(tlsf_memalign(tlsf, 48, 16) == NULL); /* not a power of two */
  CHECK(tlsf_check(tlsf) == 0);

  p = (unsigned char*)tlsf_realloc(tlsf, p, 5000);
  CHECK(p != NULL);
  CHECK(tlsf_block_size(p) >= 5000);
  CHECK(FilledWith(p, 0x11, 100));
  memset(p, 0x22, 5000);
  p = (unsigned char*)tlsf_realloc(tlsf, p, 10);
  CHECK(p != NULL);
  CHECK(FilledWith(p, 0x22, 10));
  CHECK(FilledWith(a128, 0x80, 200));
  CHECK(FilledWith(a64, 0x40, 50));
  CHECK(FilledWith(a32, 0x20, 1000));

  q = (unsigned char*)tlsf_realloc(tlsf, NULL, 64); /* same as malloc */
  CHECK(q != NULL);
  CHECK(tlsf_block_size(q) >= 64);
  CHECK(tlsf_realloc(tlsf, q, 0) == NULL); /* frees q */

  /* Four live blocks: p, a128, a64, a32. */
  totals = Walk(pool);
  CHECK(totals.used_blocks == 4);
  CHECK(totals.misaligned == 0);
  CHECK(totals.span_bytes == capacity);
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.live_blocks == 4);
  CHECK(stats.used_bytes + stats.free_bytes == stats.capacity_bytes);
  CHECK(stats.used_bytes == totals.used_bytes + 4 * tlsf_alloc_overhead());
  CHECK(stats.peak_used_bytes >= stats.used_bytes);
  CHECK(tlsf_check(tlsf) == 0);
  CHECK(tlsf_walk_pool_until(pool, StopAtFirstUsed, &first_used) == 1);
  CHECK(first_used != NULL);

  /* A second pool, used by a block too big for the first, then removed. */
  second = tlsf_add_pool(tlsf, g_second_memory, sizeof(g_second_memory));
  CHECK(second != NULL);
  CHECK(tlsf_check_pool(second) == 0);
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.pool_count == 2);
  CHECK(stats.capacity_bytes > capacity + sizeof(g_second_memory) / 2);
  big = (unsigned char*)tlsf_malloc(tlsf, 96 * 1024);
  CHECK(big != NULL);
  CHECK(IsInside(big, g_second_memory, sizeof(g_second_memory)));
  memset(big, 0x5a, 96 * 1024);
  CHECK(tlsf_check(tlsf) == 0);
  totals = Walk(second);
  CHECK(totals.used_blocks == 1);
  CHECK(tlsf_remove_pool_checked(tlsf, second) == -1); /* big is live */
  CHECK(tlsf_check_pool(second) == 0);
  tlsf_free(tlsf, big);
  tlsf_remove_pool(tlsf, second);
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.pool_count == 1);
  CHECK(stats.capacity_bytes == capacity);
  CHECK(tlsf_check(tlsf) == 0);
  CHECK(tlsf_check_pool(second) == -1); /* no longer a pool */
  CHECK(tlsf_malloc(tlsf, 96 * 1024) == NULL);
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.failed_allocations >= 1);

  /* Misuse goes to the handler and leaves the heap intact. */
  memset(&reports, 0, sizeof(reports));
  tlsf_set_error_handler(tlsf, RecordError, &reports);
  q = (unsigned char*)tlsf_malloc(tlsf, 200);
  CHECK(q != NULL);
  tlsf_free(tlsf, q);
  tlsf_free(tlsf, q);
  CHECK(reports.count == 1);
  CHECK(reports.kind == TLSF_ERROR_DOUBLE_FREE);
  CHECK(reports.ptr == q);
  tlsf_free(tlsf, p + 16); /* interior pointer */
  CHECK(reports.count == 2);
  CHECK(reports.kind == TLSF_ERROR_INVALID_FREE);
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.invalid_frees == 2);
  CHECK(tlsf_check(tlsf) == 0);
  tlsf_set_error_handler(tlsf, NULL, NULL);

  /* Free everything; the pool is one free block again. */
  tlsf_free(tlsf, p);
  tlsf_free(tlsf, a128);
  tlsf_free(tlsf, a64);
  tlsf_free(tlsf, a32);
  tlsf_free(tlsf, NULL); /* no-op */
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.live_blocks == 0);
  CHECK(stats.used_bytes == 0);
  CHECK(stats.peak_used_bytes > 0);
  tlsf_reset_peak(tlsf);
  tlsf_get_stats(tlsf, &stats);
  CHECK(stats.peak_used_bytes == 0);
  totals = Walk(pool);
  CHECK(totals.blocks == 1);
  CHECK(totals.used_blocks == 0);
  CHECK(tlsf_check(tlsf) == 0);

  largest = tlsf_largest_allocatable(tlsf);
  CHECK(largest + tlsf_alloc_overhead() == capacity);
  q = (unsigned char*)tlsf_malloc(tlsf, largest);
  CHECK(q != NULL);
  CHECK(tlsf_malloc(tlsf, 0) == NULL);
  tlsf_free(tlsf, q);
  CHECK(tlsf_check(tlsf) == 0);

  tlsf_destroy(tlsf);
  return 0;
}

int tlsf_c_usage_run(void) { return Run(); }
