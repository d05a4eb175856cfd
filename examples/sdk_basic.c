/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * The SDK manual's memory pool example, written as SDK user code in C: it
 * includes the SDK's header by the SDK's name and calls only the SDK's
 * functions. A small static buffer (aligned to 4 bytes, as in the SDK)
 * becomes a pool; the example probes it, allocates plainly, with alignment
 * (checked), zeroed and by reallocation, lists the blocks, frees them, lists
 * again and removes the pool. It prints the SDK example's probe line
 * ("used: %d, total: %d, peak: %d") at each stage and exits non-zero on the
 * first failed check.
 *
 *   bazel run //examples:sdk_basic
 */
#include <stdio.h>
#include <string.h>

#include "fmemory_pool.h"

/* The SDK example's pool size on 64-bit Arm (5000 on 32-bit). */
#define MEM_BUF_SIZE 9000

static u8 mem_buf[MEM_BUF_SIZE] __attribute__((aligned(4)));
static FMemp memp;

static void ProbeMemory(void) {
  u32 total = 0;
  u32 used = 0;
  u32 peak = 0;
  FMemProbe(&memp, &total, &used, &peak);
  printf("used: %d, total: %d, peak: %d\n", used, total, peak);
}

/* Allocates `size` bytes aligned to `align` and checks the alignment. */
static void* MallocAligned(fsize_t size, fsize_t align) {
  void* ptr = FMempMallocAlign(&memp, size, align);
  if (ptr == NULL) {
    printf("malloc %d bytes aligned to %d failed\n", (int)size, (int)align);
    return NULL;
  }
  if (((uintptr)ptr & (align - 1)) != 0) {
    printf("%p is not aligned to %d\n", ptr, (int)align);
    FMempFree(&memp, ptr);
    return NULL;
  }
  printf("malloc %d bytes aligned to %d: %p, aligned ok\n", (int)size,
         (int)align, ptr);
  return ptr;
}

int main(void) {
  FError ret;
  u8* buf;
  u8* moved;
  u32* array;
  void* align128;
  void* align64;
  void* align32;
  fsize_t i;

  memset(&memp, 0, sizeof(memp));
  ret = FMempInit(&memp, mem_buf, mem_buf + MEM_BUF_SIZE);
  if (ret != FMEMP_SUCCESS) {
    printf("memory pool init failed: 0x%x\n", (unsigned)ret);
    return 1;
  }
  printf("memory pool init ok: %d-byte buffer\n", MEM_BUF_SIZE);
  ProbeMemory();

  buf = (u8*)FMempMalloc(&memp, 100);
  if (buf == NULL) {
    printf("malloc 100 bytes failed\n");
    return 1;
  }
  memset(buf, 0xa5, 100);
  printf("malloc 100 bytes: %p\n", (void*)buf);

  align128 = MallocAligned(256, 128);
  align64 = MallocAligned(256, 64);
  align32 = MallocAligned(256, 32);
  if (align128 == NULL || align64 == NULL || align32 == NULL) return 1;

  array = (u32*)FMempCalloc(&memp, 16, sizeof(u32));
  if (array == NULL) {
    printf("calloc 16 x %d bytes failed\n", (int)sizeof(u32));
    return 1;
  }
  for (i = 0; i < 16; ++i) {
    if (array[i] != 0) {
      printf("calloc: element %d is not zero\n", (int)i);
      return 1;
    }
  }
  printf("calloc 16 x %d bytes: %p, zeroed ok\n", (int)sizeof(u32),
         (void*)array);

  moved = (u8*)FMempRealloc(&memp, buf, 1000);
  if (moved == NULL) {
    printf("realloc to 1000 bytes failed\n");
    return 1;
  }
  buf = moved;
  for (i = 0; i < 100; ++i) {
    if (buf[i] != 0xa5) {
      printf("realloc: byte %d was not kept\n", (int)i);
      return 1;
    }
  }
  printf("realloc to 1000 bytes: %p, contents kept\n", (void*)buf);

  ProbeMemory();
  FMemListAll(&memp);

  FMempFree(&memp, buf);
  FMempFree(&memp, align128);
  FMempFree(&memp, align64);
  FMempFree(&memp, align32);
  FMempFree(&memp, array);
  printf("all blocks freed\n");
  FMemListAll(&memp);
  ProbeMemory();

  FMempRemove(&memp);
  printf("memory pool removed\n");
  return 0;
}
