// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// A tour of the TLSF heap: one heap over three non-contiguous regions,
// allocations of every kind, the usage counters, a block listing, misuse
// that is detected instead of corrupting the heap, and run-time removal of
// a region. Run it with `tools/demo.sh` or `bazel run //examples:tlsf_demo`.

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "tlsf/heap.h"

namespace {

using fmemp::tlsf::BlockInfo;
using fmemp::tlsf::Heap;
using fmemp::tlsf::HeapError;
using fmemp::tlsf::HeapStats;
using fmemp::tlsf::Pool;

void PrintStats(const char* when, const Heap& heap) {
  const HeapStats s = heap.Stats();
  std::printf(
      "  [%s] pools %zu  capacity %zu  used %zu  free %zu  peak %zu  "
      "live %zu  largest %zu  failed %" PRIu64 "  misuse %" PRIu64 "\n",
      when, s.pool_count, s.capacity_bytes, s.used_bytes, s.free_bytes,
      s.peak_used_bytes, s.live_blocks, heap.LargestAllocatable(),
      s.failed_allocations, s.invalid_frees);
}

void ListBlocks(const Heap& heap) {
  int index = 0;
  heap.ForEachPool([&](Pool* pool) {
    std::printf("  region %d [%p, %p)\n", index++, Heap::PoolBegin(pool),
                Heap::PoolEnd(pool));
    heap.WalkPool(pool, [](const BlockInfo& block) {
      std::printf("    %p %8zu bytes  %s\n", block.ptr, block.size,
                  block.used ? "used" : "free");
      return true;
    });
  });
}

void OnMisuse(void*, HeapError error, const void* ptr) {
  std::printf("  detected: %s at %p (heap left intact)\n",
              fmemp::tlsf::HeapErrorName(error), ptr);
}

}  // namespace

int main() {
  std::printf("== fmemp TLSF heap demonstration ==\n\n");
  // Three separate buffers stand in for non-contiguous memory regions.
  constexpr size_t kRegionBytes[] = {16 * 1024, 8 * 1024, 32 * 1024};
  std::vector<std::unique_ptr<char[]>> regions;
  Heap heap;
  heap.SetErrorHandler(&OnMisuse, nullptr);
  std::vector<Pool*> pools;
  for (size_t bytes : kRegionBytes) {
    regions.emplace_back(new char[bytes]);
    auto pool = heap.AddPool(regions.back().get(), bytes);
    if (!pool.ok()) {
      std::printf("AddPool failed: %s\n", pool.status().ToString().c_str());
      return 1;
    }
    pools.push_back(*pool);
  }
  std::printf("1. Heap over %zu regions (%zu bytes of overhead each)\n",
              pools.size(), Heap::kPoolOverhead);
  PrintStats("empty", heap);

  std::printf("\n2. Allocations: malloc, aligned, realloc in place\n");
  void* small = heap.Allocate(100);
  void* page = heap.AllocateAligned(4096, 1000);
  void* grow = heap.Allocate(200);
  std::memset(grow, 'x', 200);
  void* grown = heap.Reallocate(grow, 6000);
  std::printf("  malloc(100)           -> %p\n", small);
  std::printf("  memalign(4096, 1000)  -> %p (aligned: %s)\n", page,
              reinterpret_cast<uintptr_t>(page) % 4096 == 0 ? "yes" : "no");
  std::printf("  realloc(%p, 6000) -> %p (%s)\n", grow, grown,
              grow == grown ? "grew in place" : "moved");
  std::printf("  malloc(SIZE_MAX)      -> %p (refused, counted)\n",
              heap.Allocate(SIZE_MAX));
  PrintStats("after allocations", heap);

  std::printf("\n3. Every block, region by region\n");
  ListBlocks(heap);

  std::printf("\n4. Misuse is detected, reported and ignored\n");
  heap.Free(small);
  heap.Free(small);                          // double free
  heap.Free(static_cast<char*>(page) + 32);  // interior pointer
  std::printf("  integrity check: %s\n", heap.Check().ToString().c_str());

  std::printf("\n5. Removing a region at run time\n");
  Pool* busy = heap.FindPool(grown);
  std::printf("  remove region holding %p: %s\n", grown,
              heap.RemovePool(busy).ToString().c_str());
  heap.Free(grown);
  heap.Free(page);
  std::printf("  after freeing its blocks:  %s\n",
              heap.RemovePool(busy).ToString().c_str());
  PrintStats("end", heap);
  std::printf("  integrity check: %s\n", heap.Check().ToString().c_str());
  return heap.Check().ok() && heap.Stats().live_blocks == 0 ? 0 : 1;
}
