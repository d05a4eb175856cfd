// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The README's C++ tour, as a program that is built and run by
// //examples:readme_tour_test: per-thread heaps with std::pmr containers,
// a block freed by another thread, and the thread heaps' probes.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

#include "fmemp/pmr.h"
#include "fmemp/thread_heap.h"
#include "sync/spin_lock.h"

alignas(64) static char shared[1 << 20], mine[2][1 << 20];

int main() {
  fmemp::ThreadHeapMemp<fmemp::sync::SpinLock> memp;  // per-thread heaps
  if (!memp.AddRegion(shared, sizeof shared).ok()) return 1;
  fmemp::MemoryResource<decltype(memp)> resource(&memp);  // std::pmr view
  std::pmr::string* kept = nullptr;
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};
  auto worker = [&](char* region) {
    // Bound, the region becomes this thread's heap: its calls take no lock.
    if (!memp.AddRegion(region, sizeof mine[0]).ok() ||
        !memp.BindThisThread(region).ok()) {
      std::abort();
    }
    std::pmr::vector<std::pmr::string> words(&resource);
    for (int i = 0; i < 1000; ++i) words.emplace_back(40, 'x');
    if (region == mine[0]) {  // outlives this thread; main frees it
      kept = new (resource.allocate(sizeof(std::pmr::string)))
          std::pmr::string("made in a thread heap, freed by main", &resource);
    }
    memp.SyncThisThread();  // publish this thread heap's figures now
    ++ready;
    while (!done) std::this_thread::yield();
  };  // on exit the thread heap's regions go back to the shared ones
  std::thread a(worker, mine[0]), b(worker, mine[1]);
  while (ready < 2) std::this_thread::yield();
  for (const fmemp::ThreadHeapStats& p : memp.ProbeThreadHeaps()) {
    std::printf("thread %llu: used %zu, peak %zu, cached %zu\n",
                static_cast<unsigned long long>(p.thread_id),
                p.stats.used_bytes, p.stats.peak_used_bytes,
                p.stats.cached_bytes);
  }
  std::printf("%s\n", kept->c_str());
  kept->~basic_string();  // from another thread: queued to its owner, no lock
  resource.deallocate(kept, sizeof(std::pmr::string));
  done = true;
  a.join(), b.join();
  const fmemp::MempStats s = memp.Probe();  // counters, no walk
  std::printf("regions %zu, used %zu, peak %zu\n", s.region_count, s.used_bytes,
              s.peak_used_bytes);
  return s.used_bytes == 0 && memp.Check().ok() ? 0 : 1;
}
