// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Per-thread heaps for worker threads, the way a server would set
// them up. Each worker adds a region of its own (from mmap) to one shared
// fmemp::ThreadHeapMemp and binds it, so that what it allocates comes from its
// region without taking the shared lock. Responses are built in std::pmr
// strings and maps (fmemp/pmr.h), so the containers live in fmemp, and are
// handed to a writer thread that frees them (each free is queued to the
// worker that owns the block). At shutdown a worker
// unbinds, or simply exits: either way its region goes back to the shared
// regions. The program prints each thread heap's figures and the aggregated
// probe, and exits non-zero unless every byte came back and the heap checks OK.
// Run it with `bazel run //examples:worker_heaps`.

#include <sys/mman.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory_resource>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/pmr.h"
#include "fmemp/thread_heap.h"
#include "sync/spin_lock.h"

namespace {

using Memp = fmemp::ThreadHeapMemp<fmemp::sync::SpinLock>;

constexpr int kWorkers = 4;
constexpr int kRequests = 2000;
constexpr size_t kSharedBytes = size_t{1}
                                << 20;  // threads without a thread heap
constexpr size_t kWorkerBytes = size_t{4} << 20;  // each worker's own

// A response: built by a worker in its thread heap, freed by the writer.
using Response = std::pmr::string;

// What the threads share, under one mutex.
struct Queues {
  absl::Mutex mu;
  absl::CondVar changed;
  std::deque<int> requests ABSL_GUARDED_BY(mu);
  std::deque<Response> responses ABSL_GUARDED_BY(mu);
  int workers_busy ABSL_GUARDED_BY(mu) = kWorkers;
  bool may_exit ABSL_GUARDED_BY(mu) = false;  // the report has been printed
};

// Answers one request: counts the words of a generated text in a scratch
// map (allocated and freed by this thread, in its own thread heap) and writes
// the counts into the response.
Response Handle(int request, std::pmr::memory_resource* resource) {
  std::pmr::unordered_map<std::pmr::string, int> counts(resource);
  for (int i = 0; i < 50; ++i) {
    std::pmr::string word("word-with-a-long-stem-", resource);
    word += std::to_string((request * 7 + i) % 13);
    ++counts[std::move(word)];
  }
  Response response("request ", resource);
  response += std::to_string(request);
  for (const auto& [word, count] : counts) {
    response += ' ';
    response += std::to_string(count);
    response += 'x';
    response += word;
  }
  return response;
}

void Worker(int index, Memp& memp, std::pmr::memory_resource* resource,
            void* region, Queues& queues, std::atomic<int>& errors) {
  // A region of its own, bound to this thread: from here on its allocations
  // come from the region, with no lock (and fall back to the shared regions
  // if it ever runs out).
  bool ok = memp.AddRegion(region, kWorkerBytes).ok() &&
            memp.BindThisThread(region).ok();
  while (ok) {
    int request;
    {
      absl::MutexLock hold(&queues.mu);
      if (queues.requests.empty()) break;
      request = queues.requests.front();
      queues.requests.pop_front();
    }
    Response response = Handle(request, resource);  // outside the lock
    absl::MutexLock hold(&queues.mu);
    queues.responses.push_back(std::move(response));  // the buffer moves too
    queues.changed.SignalAll();
  }
  {
    absl::MutexLock hold(&queues.mu);
    --queues.workers_busy;
    queues.changed.SignalAll();
    while (!queues.may_exit) queues.changed.Wait(&queues.mu);
  }
  // Unbinding is optional: thread exit does it too. Either way, frees that
  // the writer queued to this thread heap are applied first.
  if (index % 2 == 0) ok = memp.UnbindThisThread().ok() && ok;
  if (!ok) ++errors;
}

// Frees every response, outside the lock: a free of a block of a worker's
// thread heap is queued to that worker, and applied on its next call.
void Writer(Queues& queues, int* responses, size_t* bytes) {
  for (;;) {
    std::deque<Response> batch;
    {
      absl::MutexLock hold(&queues.mu);
      while (queues.responses.empty() && queues.workers_busy > 0) {
        queues.changed.Wait(&queues.mu);
      }
      if (queues.responses.empty()) return;
      batch.swap(queues.responses);  // the responses themselves stay put
    }
    for (const Response& response : batch) {
      ++*responses;
      *bytes += response.size();
    }
  }  // `batch` is freed here
}

void PrintProbe(const char* what, const fmemp::MempStats& s) {
  std::printf(
      "%s: %zu regions, capacity %zu, used %zu, peak %zu, live blocks %zu, "
      "failed %" PRIu64 "\n",
      what, s.region_count, s.capacity_bytes, s.used_bytes, s.peak_used_bytes,
      s.live_blocks, s.failed_allocations);
}

}  // namespace

int main() {
  std::vector<void*> regions;  // kSharedBytes, then one per worker
  for (int i = 0; i <= kWorkers; ++i) {
    void* p = mmap(nullptr, i == 0 ? kSharedBytes : kWorkerBytes,
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    regions.push_back(p);
  }
  Memp memp;
  fmemp::MemoryResource<Memp> resource(&memp);
  if (!memp.AddRegion(regions[0], kSharedBytes).ok()) return 1;
  std::printf("worker_heaps: %d workers, %d requests\n", kWorkers, kRequests);

  Queues queues;
  {
    absl::MutexLock hold(&queues.mu);
    for (int r = 0; r < kRequests; ++r) queues.requests.push_back(r);
  }
  int responses = 0;
  size_t bytes = 0;
  std::thread writer(Writer, std::ref(queues), &responses, &bytes);
  std::atomic<int> errors{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back(Worker, i, std::ref(memp), &resource, regions[i + 1],
                         std::ref(queues), std::ref(errors));
  }

  // Every worker is done with requests and still bound: report its thread heap
  // (as of its last call; frees queued to it since are counted as used).
  {
    absl::MutexLock hold(&queues.mu);
    while (queues.workers_busy > 0) queues.changed.Wait(&queues.mu);
  }
  for (const fmemp::ThreadHeapStats& thread_heap : memp.ProbeThreadHeaps()) {
    std::printf("heap of thread %" PRIu64
                ": used %zu, peak %zu, live blocks %zu, fallbacks %" PRIu64
                "\n",
                thread_heap.thread_id, thread_heap.stats.used_bytes,
                thread_heap.stats.peak_used_bytes,
                thread_heap.stats.live_blocks, thread_heap.fallbacks);
  }
  PrintProbe("while bound", memp.Probe());
  {
    absl::MutexLock hold(&queues.mu);
    queues.may_exit = true;
    queues.changed.SignalAll();
  }
  for (std::thread& worker : workers) worker.join();
  writer.join();

  // Every thread heap is back in the shared regions and every response is
  // freed.
  const fmemp::MempStats total = memp.Probe();
  PrintProbe("after shutdown", total);
  std::printf("responses written: %d (%zu bytes)\n", responses, bytes);
  const absl::Status check = memp.Check();
  std::printf("check: %s\n", check.ok() ? "OK" : check.ToString().c_str());
  // Empty regions can be removed and their memory given back.
  bool removed = true;
  for (int i = 0; i <= kWorkers; ++i) {
    if (!memp.RemoveRegion(regions[i]).ok()) {
      removed = false;
      continue;
    }
    munmap(regions[i], i == 0 ? kSharedBytes : kWorkerBytes);
  }
  std::printf("regions removed: %s\n", removed ? "yes" : "no");
  const bool ok = errors == 0 && responses == kRequests &&
                  total.used_bytes == 0 && total.live_blocks == 0 &&
                  memp.ProbeThreadHeaps().empty() && check.ok() && removed;
  std::printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
