/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * FMempInitWithPolicy with any int as the policy, as C code may call it
 * (C++ cannot form such an FMempPolicy). For fmemp_c_api_test. */
#include "fmemp/fmemp.h"

FError InitWithRawPolicy(FMemp* memp, void* begin, void* end, int policy);

FError InitWithRawPolicy(FMemp* memp, void* begin, void* end, int policy) {
  return FMempInitWithPolicy(memp, begin, end, (FMempPolicy)policy);
}
