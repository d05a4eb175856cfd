// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/thread_heap.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace fmemp {
namespace thread_heap_internal {

uint64_t CurrentThreadId() {
  return static_cast<uint64_t>(syscall(SYS_gettid));
}

}  // namespace thread_heap_internal
}  // namespace fmemp
