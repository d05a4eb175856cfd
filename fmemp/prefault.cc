// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/prefault.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace fmemp {
namespace {

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14 uapi value
#endif

// 1: madvise works, 0: not yet known, -1: the kernel refuses it (EINVAL).
std::atomic<int> madvise_state{0};

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// One atomic add of zero per page: a write of the value just read, so it
// neither changes the contents nor races with other writers.
void TouchPages(uintptr_t first_page, uintptr_t end) {
  for (uintptr_t page = first_page; page < end; page += PageSize()) {
    __atomic_fetch_add(reinterpret_cast<unsigned char*>(page), 0,
                       __ATOMIC_RELAXED);
  }
}

}  // namespace

bool PrefaultUsesMadvise() {
  if (madvise_state.load(std::memory_order_relaxed) == 0) {
    // A one-page probe on memory of our own.
    void* const page = mmap(nullptr, PageSize(), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED) {
      const bool ok = madvise(page, PageSize(), MADV_POPULATE_WRITE) == 0;
      munmap(page, PageSize());
      madvise_state.store(ok ? 1 : -1, std::memory_order_relaxed);
    }
  }
  return madvise_state.load(std::memory_order_relaxed) == 1;
}

absl::Status PrefaultRange(void* begin, size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  const uintptr_t start = reinterpret_cast<uintptr_t>(begin);
  if (begin == nullptr || start + bytes < start) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot prefault [%p, +%d): null or wrapped range", begin, bytes));
  }
  const uintptr_t end = start + bytes;
  const uintptr_t first_page = start & ~(PageSize() - 1);
  if (PrefaultUsesMadvise()) {
    if (madvise(reinterpret_cast<void*>(first_page), end - first_page,
                MADV_POPULATE_WRITE) == 0) {
      return absl::OkStatus();
    }
    const int error = errno;
    const std::string what = absl::StrFormat(
        "cannot prefault [%p, +%d): madvise(MADV_POPULATE_WRITE) failed with "
        "errno %d",
        begin, bytes, error);
    // EINVAL: a mapping the kernel will not populate for writing (read-only,
    // or device memory, which has no page faults to save).
    if (error == EINVAL) return absl::InvalidArgumentError(what);
    return absl::ResourceExhaustedError(what);
  }
  TouchPages(first_page, end);
  return absl::OkStatus();
}

}  // namespace fmemp
