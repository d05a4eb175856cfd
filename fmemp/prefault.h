// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/prefault.h
//
// PrefaultRange makes every page of a memory range resident and writable
// before the allocator hands any of it out, so that no later allocation pays
// a page fault. A region's first touch is what dominates an allocator's
// latency tail (docs/BENCHMARKS.md, the latency workload): a fresh page costs
// a fault of one to several microseconds, the allocator itself well under
// one. Latency-sensitive users prefault their regions once, at start-up.
//
// Guarantees
// * The contents of the range are unchanged: the pages are populated with
//   madvise(MADV_POPULATE_WRITE) (Linux 5.14 and later), or, where the kernel
//   lacks it, by an atomic add of zero to one byte of each page, which
//   writes the value it read. So it is safe on a region already in use, from
//   any thread, while other threads allocate from it.
// * O(pages). It may take milliseconds per GiB: call it at start-up, not on
//   a hot path.
// * Failure: InvalidArgument for a null or wrapped range, or for memory the
//   kernel will not populate for writing (a read-only mapping, device
//   memory); ResourceExhausted when it cannot populate the pages (out of
//   memory, or part of the range not mapped). Each message has the errno.
//   The range may then be partly populated; nothing else changes. Without
//   MADV_POPULATE_WRITE a range that is not writable memory faults in the
//   touch loop, as any write to it would.
//
// The pages stay resident only as long as the kernel leaves them: under
// memory pressure they may be swapped out again. Users who need a hard
// guarantee lock them (mlock) as well.

#ifndef FMEMP_FMEMP_PREFAULT_H_
#define FMEMP_FMEMP_PREFAULT_H_

#include <cstddef>

#include "absl/status/status.h"

namespace fmemp {

// Populates every page that [begin, begin + bytes) touches. bytes == 0 is a
// no-op that returns OK.
absl::Status PrefaultRange(void* begin, size_t bytes);

// How PrefaultRange populated pages in this process: true when the kernel
// supports MADV_POPULATE_WRITE (detected on first use). For tests and
// diagnostics.
bool PrefaultUsesMadvise();

}  // namespace fmemp

#endif  // FMEMP_FMEMP_PREFAULT_H_
