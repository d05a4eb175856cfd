/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * SDK code includes its own ftypes.h before or after fmemory_pool.h; both
 * orders must compile, as C and as C++ (fmemp/BUILD.bazel builds this file
 * four ways: FTYPES_FIRST or not, as C11 or as C++). A typedef of a
 * different type, or a macro defined differently, fails the build under
 * -Werror; the checks below also fail it if a type differs from the SDK's.
 * At run time it does one SDK life cycle. */
#ifdef FTYPES_FIRST
#include "fmemory_pool.h"
#include "ftypes.h"
#else
#include "fmemory_pool.h"
#include "ftypes.h"
#endif

#include <stdio.h>
#include <string.h>

/* Each SDK name is exactly the SDK's type: a pointer to one converts to a
 * pointer to the other without a cast only if they are the same type. */
static int SameTypes(void) {
  uint8_t a8 = 0;
  uint16_t a16 = 0;
  uint32_t a32 = 0;
  uint64_t a64 = 0;
  int32_t as32 = 0;
  uintptr_t aptr = 0;
  unsigned long along = 0;
  size_t asize = 0;
  u8* p8 = &a8;
  u16* p16 = &a16;
  u32* p32 = &a32;
  u64* p64 = &a64;
  s32* ps32 = &as32;
  uintptr* pptr = &aptr;
  boolean* pbool = &along;
  fsize_t* psize = &asize;
  FError* perror = &a32;
  return *p8 + *p16 + (int)*p32 + (int)*p64 + *ps32 + (int)*pptr + (int)*pbool +
         (int)*psize + (int)*perror;
}

static unsigned char buffer[64 * 1024];

int main(void) {
  FMemp memp;
  void* p;
  boolean ok;
  u32 total = 0, used = 0, peak = 0;
  if (SameTypes() != 0) return 1;
  memset(&memp, 0, sizeof(memp));
  if (FMempInit(&memp, buffer, buffer + sizeof(buffer)) != FMEMP_SUCCESS) {
    return 2;
  }
  p = FMEMP_MALLOC(&memp, 100);
  ok = p != NULL ? TRUE : FALSE;
  FMEMP_FREE(&memp, p);
  FMemProbe(&memp, &total, &used, &peak);
  FMempRemove(&memp);
  FMempRelease(&memp);
  if (ok != TRUE || total == 0 || FT_COMPONENT_IS_READY != 0x11111111U) {
    return 3;
  }
  printf("ftypes order: ok\n");
  return 0;
}
