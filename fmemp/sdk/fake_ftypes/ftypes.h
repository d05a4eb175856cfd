/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * A stand-in for the SDK's own type header, ftypes.h, for the include-order
 * tests only (fmemp/sdk/ftypes_order_test.c). It mirrors every typedef and
 * macro that ../shared/seed/sdk-api-notes.md lists, the way the SDK writes
 * them: unconditionally, behind the guard FTYPES_H, with `boolean` as
 * `unsigned long` and TRUE/FALSE as unsigned literals. */
#ifndef FTYPES_H
#define FTYPES_H

#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef signed char s8;
typedef uint16_t u16;
typedef short s16;
typedef uint32_t u32;
typedef int32_t s32;
typedef uint64_t u64;
typedef int64_t s64;
typedef float f32;
typedef double f64;
typedef unsigned long boolean;
typedef size_t fsize_t;
typedef intptr_t intptr;
typedef uintptr_t uintptr;
typedef ptrdiff_t ptrdiff;
#if defined(__aarch64__)
typedef u64 tick_t;
#else
typedef u32 tick_t;
#endif

#define FT_COMPONENT_IS_READY 0x11111111U
#define FT_COMPONENT_IS_STARTED 0x22222222U
#define TRUE 1U
#define FALSE 0U

#endif /* FTYPES_H */
