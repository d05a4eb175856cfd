/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * The SDK's memory pool example flow, written as SDK user code: a small
 * static buffer aligned to 4 bytes only, init, probe, malloc, aligned
 * allocations at 128/64/32 with alignment checks, calloc, realloc, list,
 * free all, list, remove. Built twice by fmemp/BUILD.bazel, as C and as C++,
 * and run as a test: it exits non-zero on the first failed check.
 */
#include <stdio.h>
#include <string.h>

#include "fmemory_pool.h"

/* The SDK example sizes its pool for 64-bit Arm. */
#define MEM_BUF_SIZE 9000

static u8 mem_buf[MEM_BUF_SIZE] __attribute__((aligned(4)));
static FMemp memp;

#define CHECK(cond)                                             \
  do {                                                          \
    if (!(cond)) {                                              \
      printf("check failed at line %d: %s\n", __LINE__, #cond); \
      return 1;                                                 \
    }                                                           \
  } while (0)

static int ProbeAndPrint(u32* used_out) {
  u32 total = 0, used = 0, peak = 0;
  FMemProbe(&memp, &total, &used, &peak);
  printf("used: %d, total: %d, peak: %d\n", used, total, peak);
  CHECK(used <= total && peak >= used);
  *used_out = used;
  return 0;
}

int main(void) {
  FError ret;
  u32 used = 0;
  u8* buf;
  u32* array;
  void *align128, *align64, *align32;
  fsize_t i;

  memset(&memp, 0, sizeof(memp));
  /* Unaligned bounds on purpose: fmemp aligns them inward. */
  ret = FMempInit(&memp, mem_buf + 1, mem_buf + MEM_BUF_SIZE - 1);
  CHECK(ret == FMEMP_SUCCESS);
  CHECK(memp.is_ready == FT_COMPONENT_IS_READY);
  CHECK(FMempInit(&memp, mem_buf, mem_buf + MEM_BUF_SIZE) ==
        FMEMP_ERR_ALREADY_INIT);
  if (ProbeAndPrint(&used) != 0) return 1;
  CHECK(used == 0);

  buf = (u8*)FMEMP_MALLOC(&memp, 100);
  CHECK(buf != NULL);
  memset(buf, 0xa5, 100);

  align128 = FMEMP_MALLOC_ALIGN(&memp, 256, 128);
  align64 = FMEMP_MALLOC_ALIGN(&memp, 256, 64);
  align32 = FMEMP_MALLOC_ALIGN(&memp, 256, 32);
  CHECK(align128 != NULL && align64 != NULL && align32 != NULL);
  CHECK(((uintptr)align128 % 128) == 0);
  CHECK(((uintptr)align64 % 64) == 0);
  CHECK(((uintptr)align32 % 32) == 0);
  printf("aligned: %p (128) %p (64) %p (32)\n", align128, align64, align32);

  array = (u32*)FMEMP_CALLOC(&memp, 16, sizeof(u32));
  CHECK(array != NULL);
  for (i = 0; i < 16; ++i) CHECK(array[i] == 0);

  buf = (u8*)FMEMP_REALLOC(&memp, buf, 1000);
  CHECK(buf != NULL);
  for (i = 0; i < 100; ++i) CHECK(buf[i] == 0xa5);

  if (ProbeAndPrint(&used) != 0) return 1;
  CHECK(used > 0);
  FMemListAll(&memp);

  FMEMP_FREE(&memp, buf);
  FMEMP_FREE(&memp, align128);
  FMEMP_FREE(&memp, align64);
  FMEMP_FREE(&memp, align32);
  FMEMP_FREE(&memp, array);
  FMemListAll(&memp);
  if (ProbeAndPrint(&used) != 0) return 1;
  CHECK(used == 0);
  CHECK(FMempCheck(&memp) == FMEMP_SUCCESS);

  FMempRemove(&memp);
  CHECK(memp.is_ready != FT_COMPONENT_IS_READY);
  CHECK(FMempMalloc(&memp, 16) == NULL);
  /* Init again on the same FMemp and buffer. */
  CHECK(FMempInit(&memp, mem_buf, mem_buf + MEM_BUF_SIZE) == FMEMP_SUCCESS);
  CHECK(FMempMalloc(&memp, 16) != NULL);
  FMempDeinit(&memp);
  FMempRelease(&memp);
  printf("sdk example: all checks passed\n");
  return 0;
}
