/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * fmemp/sdk/fmemory_pool.h: the SDK's name for fmemp/fmemp.h, so that SDK code
 * that includes "fmemory_pool.h" compiles unchanged (//fmemp puts fmemp/sdk on
 * the include path). */
#ifndef FMEMP_SDK_FMEMORY_POOL_H_
#define FMEMP_SDK_FMEMORY_POOL_H_

#include "fmemp/fmemp.h"

#endif /* FMEMP_SDK_FMEMORY_POOL_H_ */
