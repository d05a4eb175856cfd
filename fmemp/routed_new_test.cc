// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Issue 14, failure 3: a program that routes its global operator new and
// delete (every variant: sized, aligned, nothrow, arrays) into an FMemp,
// the usual way to put its C++ objects in a budgeted pool. fmemp must never
// call operator new itself (it would recurse into the FMemp, or deadlock
// on a lock it holds): its bookkeeping comes from its metadata arena.
//
// For each policy, a child process (fork, so that each policy starts from a
// fresh FMemp and a deadlock is caught by alarm()) initialises the FMemp,
// then runs threads that start, allocate objects of every kind, hand half
// of them to each other through a queue, free what they are handed, and
// exit. Under FMEMP_POLICY_THREAD_HEAPS each thread binds a region of its
// own first. The main thread meanwhile adds and removes a region and
// probes. The child checks that:
// * it finishes (no recursion, no deadlock: alarm(60));
// * every allocation after FMempInit was served by the FMemp (the static
//   bump buffer that serves allocations made before it exists took none,
//   FMempInit included);
// * the FMemp reports no misuse, FMempCheck passes, and its live blocks
//   are exactly the program's outstanding news;
// * misuse reported on stderr (no handler) calls no operator new.
//
// A plain main, not GoogleTest: the test owns operator new. Run it under
// --config=asan and --config=tsan too: the sanitizers' own operator new is
// a weak definition in their runtime, and this binary's replaces it (their
// malloc interception stays).

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "fmemp/fmemp.h"
#include "fmemp/testing/routed_operator_new.h"

namespace {

// --- Where operator new goes ---

FMemp g_memp;
std::atomic<bool> g_ready{false};  // g_memp initialised

// Allocations made before g_memp exists (the C++ runtime's, the loader's):
// a bump buffer, never freed.
alignas(64) unsigned char g_bump[1 << 20];
std::atomic<size_t> g_bump_used{0};
std::atomic<uint64_t> g_bump_allocations{0};

// After init: what went to g_memp.
std::atomic<uint64_t> g_news{0};
std::atomic<uint64_t> g_deletes{0};
std::atomic<uint64_t> g_failed{0};
std::atomic<uint64_t> g_misuse{0};

bool InBump(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return b >= g_bump && b < g_bump + sizeof(g_bump);
}

void* BumpAllocate(size_t bytes, size_t align) {
  if (align < 16) align = 16;
  size_t used = g_bump_used.load(std::memory_order_relaxed);
  for (;;) {
    const size_t at = (used + align - 1) & ~(align - 1);
    if (at + bytes > sizeof(g_bump)) return nullptr;
    if (g_bump_used.compare_exchange_weak(used, at + bytes)) {
      g_bump_allocations.fetch_add(1, std::memory_order_relaxed);
      return g_bump + at;
    }
  }
}

void* Allocate(size_t bytes, size_t align) noexcept {
  if (!g_ready.load(std::memory_order_acquire)) {
    return BumpAllocate(bytes, align);
  }
  void* p = align <= 16 ? FMempMalloc(&g_memp, bytes)
                        : FMempMallocAlign(&g_memp, bytes, align);
  if (p == nullptr) {
    g_failed.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  g_news.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void Deallocate(void* p) noexcept {
  if (p == nullptr || InBump(p)) return;
  g_deletes.fetch_add(1, std::memory_order_relaxed);
  FMempFree(&g_memp, p);
}

}  // namespace

// Every replaceable operator new and delete comes from
// //fmemp/testing:routed_operator_new and lands here.
namespace fmemp::testkit::routed_new {
void* Allocate(size_t bytes, size_t alignment) noexcept {
  return ::Allocate(bytes, alignment);
}
void Deallocate(void* p) noexcept { ::Deallocate(p); }
const char* ProgramName() noexcept { return "routed_new_test"; }
}  // namespace fmemp::testkit::routed_new

namespace {

struct alignas(64) Aligned {
  char bytes[100];
};

// One object of some kind, owned through a type-erased deleter.
struct Object {
  int kind = 0;
  void* p = nullptr;
};

Object Make(int kind, int i) {
  Object o;
  o.kind = kind;
  switch (kind) {
    case 0:
      o.p = new std::string(static_cast<size_t>(20 + i % 200), 'x');
      break;
    case 1: {
      auto* v = new std::vector<int>();
      for (int k = 0; k < i % 50; ++k) v->push_back(k);
      o.p = v;
      break;
    }
    case 2:
      o.p = new Aligned();
      break;
    case 3:
      o.p = new int[static_cast<size_t>(1 + i % 300)];
      break;
    default:
      o.p = new (std::nothrow) char[static_cast<size_t>(1 + i % 2000)];
      break;
  }
  return o;
}

void Destroy(const Object& o) {
  switch (o.kind) {
    case 0:
      delete static_cast<std::string*>(o.p);
      break;
    case 1:
      delete static_cast<std::vector<int>*>(o.p);
      break;
    case 2:
      delete static_cast<Aligned*>(o.p);
      break;
    case 3:
      delete[] static_cast<int*>(o.p);
      break;
    default:
      delete[] static_cast<char*>(o.p);
      break;
  }
}

void CountMisuse(void*, int, const void*) {
  g_misuse.fetch_add(1, std::memory_order_relaxed);
}

int Fail(const char* what) {
  std::fprintf(stderr, "routed_new_test: %s\n", what);
  return 1;
}

// The child's whole run for one policy; its exit status.
int RunPolicy(FMempPolicy policy) {
  alarm(60);  // a deadlock ends the child with SIGALRM
  constexpr size_t kSharedBytes = 32 << 20;
  constexpr size_t kOwnBytes = 2 << 20;
  const bool single = policy == FMEMP_POLICY_SINGLE_THREAD;
  const int threads = single ? 1 : 4;
  const int waves = single ? 4 : 3;
  const size_t own_total =
      kOwnBytes * static_cast<size_t>((threads + 1) * waves);
  void* arena = mmap(nullptr, kSharedBytes + own_total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (arena == MAP_FAILED) return Fail("mmap");
  unsigned char* const base = static_cast<unsigned char*>(arena);

  const uint64_t bump_before = g_bump_allocations.load();
  std::memset(&g_memp, 0, sizeof(g_memp));
  if (FMempInitWithPolicy(&g_memp, base, base + kSharedBytes, policy) !=
      FMEMP_SUCCESS) {
    return Fail("FMempInitWithPolicy");
  }
  if (FMempSetErrorHandler(&g_memp, &CountMisuse, nullptr) != FMEMP_SUCCESS) {
    return Fail("FMempSetErrorHandler");
  }
  if (g_bump_allocations.load() != bump_before) {
    return Fail("FMempInit called operator new");
  }
  g_ready.store(true, std::memory_order_release);
  const uint64_t bump_at_init = g_bump_allocations.load();

  // The hand-over queue and the thread list get their storage now, from
  // the FMemp, before the first extra region exists: nothing the main
  // thread keeps may pin a region it is about to remove.
  std::mutex mu;
  constexpr size_t kQueueSlots = 1 << 15;
  std::vector<Object> handed(kQueueSlots);  // a ring: [head, tail)
  size_t head = 0, tail = 0;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads));
  unsigned char* next_own = base + kSharedBytes;
  std::atomic<int> bind_failures{0};

  for (int wave = 0; wave < waves; ++wave) {
    // A region that comes and goes while threads allocate.
    unsigned char* const extra = next_own;
    next_own += kOwnBytes;
    if (FMempAddRegion(&g_memp, extra, extra + kOwnBytes) != FMEMP_SUCCESS) {
      return Fail("FMempAddRegion");
    }
    for (int t = 0; t < threads; ++t) {
      unsigned char* const own = next_own;
      next_own += kOwnBytes;
      workers.emplace_back([&, own, t] {
        if (policy == FMEMP_POLICY_THREAD_HEAPS) {
          if (FMempAddRegion(&g_memp, own, own + kOwnBytes) != FMEMP_SUCCESS ||
              FMempBindThread(&g_memp, own) != FMEMP_SUCCESS) {
            bind_failures.fetch_add(1);
          }
        }
        std::vector<Object> mine;
        for (int i = 0; i < 2000; ++i) {
          mine.push_back(Make((i + t) % 5, i));
          if (i % 2 == 1) {
            std::lock_guard<std::mutex> hold(mu);
            if (tail - head < kQueueSlots) {
              handed[tail++ % kQueueSlots] = mine.back();
              mine.pop_back();
            }
          }
          if (i % 3 == 0) {
            Object from_other;
            {
              std::lock_guard<std::mutex> hold(mu);
              if (head != tail) from_other = handed[head++ % kQueueSlots];
            }
            if (from_other.p != nullptr) Destroy(from_other);
          }
        }
        for (const Object& o : mine) Destroy(o);
      });
      if (single) workers.back().join();  // one thread at a time
    }
    if (!single) {
      // Probes while the threads run.
      FMempUsage usage;
      if (FMempProbe64(&g_memp, &usage) != FMEMP_SUCCESS) {
        return Fail("FMempProbe64");
      }
      FMempRegionUsage region;
      if (FMempRegionCount(&g_memp) == 0 ||
          FMempProbeRegion(&g_memp, 0, &region) != FMEMP_SUCCESS) {
        return Fail("FMempProbeRegion");
      }
    }
    for (std::thread& w : workers) {
      if (w.joinable()) w.join();
    }
    workers.clear();
    while (head != tail) Destroy(handed[head++ % kQueueSlots]);
    // Every block of the extra region is free now (caches are drained by
    // the removal itself).
    if (FMempRemoveRegion(&g_memp, extra) != FMEMP_SUCCESS) {
      return Fail("FMempRemoveRegion");
    }
  }

  if (bind_failures.load() != 0) return Fail("FMempBindThread");
  if (g_bump_allocations.load() != bump_at_init) {
    return Fail("an allocation after init bypassed the FMemp");
  }
  if (g_failed.load() != 0) return Fail("the FMemp ran out of memory");
  if (g_misuse.load() != 0) return Fail("the FMemp reported misuse");
  if (FMempCheck(&g_memp) != FMEMP_SUCCESS) return Fail("FMempCheck");
  FMempDrainThreadCaches(&g_memp);
  FMempUsage usage;
  if (FMempProbe64(&g_memp, &usage) != FMEMP_SUCCESS) {
    return Fail("FMempProbe64");
  }
  const uint64_t outstanding = g_news.load() - g_deletes.load();
  if (usage.live_blocks != outstanding) {
    std::fprintf(stderr, "live blocks %llu, outstanding news %llu\n",
                 static_cast<unsigned long long>(usage.live_blocks),
                 static_cast<unsigned long long>(outstanding));
    return Fail("the FMemp's live blocks are not the program's");
  }
  if (g_news.load() < 10000) return Fail("too few allocations reached it");

  // Misuse reported by the default handler (a line on stderr) allocates
  // nothing either: inside the pool's lock, an operator new would deadlock.
  if (FMempSetErrorHandler(&g_memp, nullptr, nullptr) != FMEMP_SUCCESS) {
    return Fail("FMempSetErrorHandler(nullptr)");
  }
  const uint64_t news_before_misuse = g_news.load();
  int on_stack = 0;
  std::fprintf(stderr, "expected below: two misuse reports\n");
  FMempFree(&g_memp, &on_stack);  // outside every region
  void* twice = FMempMalloc(&g_memp, 64);
  FMempFree(&g_memp, twice);
  FMempFree(&g_memp, twice);  // double free
  if (g_news.load() != news_before_misuse ||
      g_bump_allocations.load() != bump_at_init) {
    return Fail("a misuse report called operator new");
  }
  std::printf("policy %d: %llu news, %llu deletes through the FMemp\n",
              static_cast<int>(policy),
              static_cast<unsigned long long>(g_news.load()),
              static_cast<unsigned long long>(g_deletes.load()));
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main() {
  const FMempPolicy policies[] = {
      FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_SINGLE_THREAD,
      FMEMP_POLICY_THREAD_CACHE, FMEMP_POLICY_THREAD_HEAPS};
  int failures = 0;
  for (FMempPolicy policy : policies) {
    const pid_t pid = fork();
    if (pid < 0) return Fail("fork");
    if (pid == 0) _exit(RunPolicy(policy));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return Fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(
          stderr, "policy %d: FAILED (%s %d)\n", static_cast<int>(policy),
          WIFSIGNALED(status) ? "signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      ++failures;
    }
  }
  if (failures == 0) std::printf("PASS\n");
  return failures == 0 ? 0 : 1;
}
