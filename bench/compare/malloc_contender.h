// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/malloc_contender.h
//
// The process's own malloc as a contender, and a check of which allocator
// that malloc really is. jemalloc, tcmalloc and mimalloc replace malloc when
// linked in, so each gets its own binary built from the same sources; this
// is how a binary proves it measures the allocator it is named after.

#ifndef FMEMP_BENCH_COMPARE_MALLOC_CONTENDER_H_
#define FMEMP_BENCH_COMPARE_MALLOC_CONTENDER_H_

#include <string>

#include "bench/compare/contender.h"

namespace fmemp::bench::compare {

struct MallocIdentity {
  // "glibc", "jemalloc", "tcmalloc", "mimalloc", or "unknown".
  std::string name;
  // The shared object that defines the malloc the dynamic linker resolved.
  std::string library;
  // The allocator's own version, read through an entry point only it
  // exports (mallctl("version"), tc_version, mi_version,
  // gnu_get_libc_version); empty when that entry point is missing, which
  // makes the identity "unknown".
  std::string version;
};

// Identifies the allocator serving malloc() in this process: looks up
// `malloc` with dlsym(RTLD_DEFAULT), asks dladdr which shared object defines
// it, and confirms by calling that allocator's own version entry point.
MallocIdentity IdentifyMalloc();

// malloc/free as a contender named `name` (the identity's name).
Contender MallocContender(const std::string& name);

}  // namespace fmemp::bench::compare

#endif  // FMEMP_BENCH_COMPARE_MALLOC_CONTENDER_H_
