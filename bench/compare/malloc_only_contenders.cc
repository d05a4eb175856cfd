// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/malloc_only_contenders.cc
//
// The contender list of the jemalloc, tcmalloc and mimalloc binaries: their
// malloc alone (fmemp's contenders run in the glibc binary; see
// fmemp_contenders.cc).

#include <string>
#include <vector>

#include "bench/compare/contender.h"
#include "bench/compare/malloc_contender.h"

namespace fmemp::bench::compare {

std::vector<Contender> AllContenders(const std::string& malloc_name) {
  return {MallocContender(malloc_name)};
}

}  // namespace fmemp::bench::compare
