// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/misuse_kind.h
//
// The C API's name for a C++ front-end's misuse report: the
// FMEMP_MISUSE_* value (fmemp/fmemp.h) that FMempSetErrorHandler's handler
// receives for a fmemp::MempError (fmemp/region_set.h). The one mapping;
// the C API uses it, and so can a test that counts reports of both APIs
// alike. O(1), no allocation, thread-safe.

#ifndef FMEMP_FMEMP_MISUSE_KIND_H_
#define FMEMP_FMEMP_MISUSE_KIND_H_

#include "fmemp/region_set.h"

namespace fmemp {

// The FMEMP_MISUSE_* value of `error`; 0 for a value outside the enum.
int ToMisuseKind(MempError error);

}  // namespace fmemp

#endif  // FMEMP_FMEMP_MISUSE_KIND_H_
