// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Issue 14, self-hosted bookkeeping: failing management calls with the
// program's global operator new/delete routed into the allocator they are
// made on. A failing call used to build its absl::Status message (operator
// new) while holding the front-end's lock, so it re-entered that lock: a
// hang (spin lock, caches, thread heaps) or an abort (mutex).
//
// C API, under every policy: each failing management call (an overlapping,
// too small, null, inverted or misaligned region; removing an unknown
// region or one with live blocks; binding an unknown region, one bound to
// another thread, or under a policy without thread heaps; checking a foreign
// pointer) returns the right FError and calls operator new 0 times.
//
// C++ front-ends (Memp under a mutex and a spin lock, CachingMemp,
// ThreadHeapMemp), each with operator new routed into itself: the failing
// calls return the expected absl::StatusCode, and their message is built
// through the routed operator new (after the front-end's locks are
// released) without a hang or an abort.
//
// Each lists itself (FMemListAll, FMemListAllTo, List), with a tagged
// block in the C API and on a damaged heap too: no operator new.
//
// Then each damages its heap on purpose (a live block's header overwritten,
// as an underflow would) and checks it: FMempCheck and FMempCheckRegionOf
// return FMEMP_ERR_CORRUPT and call operator new 0 times (the findings are
// gathered in a fixed buffer under the lock and printed through a stack
// buffer); the C++ Check() and CheckRegionOf() return DataLoss naming the
// block, their message built through the routed operator new after the
// lock is released.
//
// Each case runs in a child process (fork) with alarm(30): a hang ends it
// with SIGALRM, and the parent reports the case as failed. A plain main,
// not GoogleTest: the test owns operator new (see routed_new_test.cc). Run
// it under --config=asan and --config=tsan too.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/testing/routed_operator_new.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "sync/mutex.h"
#include "sync/spin_lock.h"

namespace {

// --- Where operator new goes ---

// Set once in a child, before its first routed allocation: the allocator
// operator new and delete are routed into. Before that, a bump buffer
// serves (the runtime's allocations before main; never freed).
void* (*g_allocate)(size_t bytes, size_t align) = nullptr;
void (*g_free)(void* p) = nullptr;

alignas(64) unsigned char g_bump[1 << 20];
std::atomic<size_t> g_bump_used{0};

// Routed operator new calls (every form).
std::atomic<uint64_t> g_news{0};

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
    if (g_bump_used.compare_exchange_weak(used, at + bytes)) return g_bump + at;
  }
}

void* Allocate(size_t bytes, size_t align) noexcept {
  if (g_allocate == nullptr) return BumpAllocate(bytes, align);
  g_news.fetch_add(1, std::memory_order_relaxed);
  return g_allocate(bytes, align < 16 ? 16 : align);
}

void Deallocate(void* p) noexcept {
  if (p == nullptr || InBump(p)) return;
  g_free(p);
}

}  // namespace

// Every replaceable operator new and delete comes from
// //fmemp/testing:routed_operator_new and lands here.
namespace fmemp::testkit::routed_new {
void* Allocate(size_t bytes, size_t alignment) noexcept {
  return ::Allocate(bytes, alignment);
}
void Deallocate(void* p) noexcept { ::Deallocate(p); }
const char* ProgramName() noexcept { return "routed_new_failure_test"; }
}  // namespace fmemp::testkit::routed_new

namespace {

using ::fmemp::CachingMemp;
using ::fmemp::DebugOptions;
using ::fmemp::Memp;
using ::fmemp::ThreadHeapMemp;
namespace sync = ::fmemp::sync;

constexpr size_t kRegionBytes = 1 << 20;
// Regions the cases use: [0] the first (holds live blocks), [1] a spare
// (never added: its addresses are foreign), [2] one a second thread binds.
constexpr size_t kRegions = 3;

unsigned char* MapRegions() {
  void* p = mmap(nullptr, kRegions * kRegionBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<unsigned char*>(p);
}

// Failures of the current child; it exits with 1 if any.
int g_failures = 0;

void Failed(const char* what, const char* detail) {
  std::fprintf(stderr, "  FAILED: %s: %s\n", what, detail);
  ++g_failures;
}

// Damages the heap on purpose: overwrites the header word in front of the
// live block `p` (as an underflow of the block before it would).
void DamageHeader(void* p) {
  const uint64_t garbage = 0;
  std::memcpy(static_cast<unsigned char*>(p) - sizeof(uint64_t), &garbage,
              sizeof(garbage));
}

// Whether `message` names the block `p` (its address as %p prints it).
bool Names(absl::string_view message, const void* p) {
  char name[32];
  std::snprintf(name, sizeof(name), "%p", p);
  return message.find(name) != absl::string_view::npos;
}

// --- The C API ---

FMemp g_memp;

const char* ErrorName(FError e) {
  switch (e) {
    case FMEMP_SUCCESS:
      return "FMEMP_SUCCESS";
    case FMEMP_ERR_INVALID_BUF:
      return "FMEMP_ERR_INVALID_BUF";
    case FMEMP_ERR_INIT_TLFS:
      return "FMEMP_ERR_INIT_TLFS";
    case FMEMP_ERR_BAD_MALLOC:
      return "FMEMP_ERR_BAD_MALLOC";
    case FMEMP_ERR_NOT_INIT:
      return "FMEMP_ERR_NOT_INIT";
    case FMEMP_ERR_REGION_BUSY:
      return "FMEMP_ERR_REGION_BUSY";
    case FMEMP_ERR_REGION_NOT_FOUND:
      return "FMEMP_ERR_REGION_NOT_FOUND";
    case FMEMP_ERR_REGION_OVERLAP:
      return "FMEMP_ERR_REGION_OVERLAP";
    case FMEMP_ERR_CORRUPT:
      return "FMEMP_ERR_CORRUPT";
    case FMEMP_ERR_NOT_SUPPORTED:
      return "FMEMP_ERR_NOT_SUPPORTED";
    default:
      return "another FError";
  }
}

// Runs one C API call, checking its FError and that it called no operator
// new.
template <typename Call>
void ExpectFError(const char* what, FError expected, Call call) {
  const uint64_t news = g_news.load();
  const FError got = call();
  const uint64_t during = g_news.load() - news;
  if (got != expected) {
    char detail[160];
    std::snprintf(detail, sizeof(detail), "returned %s, expected %s",
                  ErrorName(got), ErrorName(expected));
    Failed(what, detail);
  }
  if (during != 0) {
    char detail[80];
    std::snprintf(detail, sizeof(detail), "called operator new %llu times",
                  static_cast<unsigned long long>(during));
    Failed(what, detail);
  }
}

// --- The listing ---

// What a listing's sink saw, gathered without allocating.
struct ListingSeen {
  int lines = 0;
  bool tag_seen = false;  // a line naming this file (a tagged block)
  char last[48] = {};     // the start of the last line (the check's)
};

void SeeLine(void* user, const char* line) {
  auto* seen = static_cast<ListingSeen*>(user);
  ++seen->lines;
  if (std::strstr(line, "routed_new_failure_test.cc") != nullptr) {
    seen->tag_seen = true;
  }
  // Its start only (strncpy draws -Wstringop-truncation at -O2).
  const size_t n = std::min(std::strlen(line), sizeof(seen->last) - 1);
  std::memcpy(seen->last, line, n);
  seen->last[n] = '\0';
}

// Whether the last line a listing sent starts with `check`.
bool EndsWithCheck(const ListingSeen& seen, const char* check) {
  return std::strncmp(seen.last, check, std::strlen(check)) == 0;
}

// Runs call() with file descriptor 1 on /dev/null (FMemListAll's output
// would clutter the test log). Allocates nothing.
template <typename Call>
void WithStdoutDiscarded(Call call) {
  std::fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  const int null = open("/dev/null", O_WRONLY);
  if (null >= 0) {
    dup2(null, STDOUT_FILENO);
    close(null);
  }
  call();
  if (saved >= 0) {
    dup2(saved, STDOUT_FILENO);
    close(saved);
  }
}

// Both C API listings of g_memp: FMEMP_SUCCESS, no operator new, and the
// last line starting with `check`.
void ExpectListingAllocatesNothing(const char* what, const char* check) {
  ListingSeen seen;
  ExpectFError(what, FMEMP_SUCCESS,
               [&] { return FMemListAllTo(&g_memp, &SeeLine, &seen); });
  if (seen.lines < 3 || !EndsWithCheck(seen, check)) {
    Failed(what, "FMemListAllTo's lines are not a listing");
  }
  ExpectFError(what, FMEMP_SUCCESS, [&] {
    WithStdoutDiscarded([] { FMemListAll(&g_memp); });
    return FMEMP_SUCCESS;
  });
}

int RunCApi(FMempPolicy policy) {
  unsigned char* const base = MapRegions();
  if (base == nullptr) return 2;
  unsigned char* const first = base;
  unsigned char* const spare = base + kRegionBytes;
  unsigned char* const bound = base + 2 * kRegionBytes;
  std::memset(&g_memp, 0, sizeof(g_memp));
  if (FMempInitWithPolicy(&g_memp, first, first + kRegionBytes, policy) !=
      FMEMP_SUCCESS) {
    return 2;
  }
  g_allocate = [](size_t bytes, size_t align) {
    return align <= 16 ? FMempMalloc(&g_memp, bytes)
                       : FMempMallocAlign(&g_memp, bytes, align);
  };
  g_free = [](void* p) { FMempFree(&g_memp, p); };
  // Routed objects, live through the cases: blocks in the first region.
  std::string* const live = new std::string(200, 'x');
  void* const block = FMempMalloc(&g_memp, 64);
  if (g_news.load() == 0 || block == nullptr) return 2;

  ExpectFError("add an overlapping region", FMEMP_ERR_REGION_OVERLAP, [&] {
    return FMempAddRegion(&g_memp, first + 4096, first + 2 * 4096);
  });
  ExpectFError("add a too small region", FMEMP_ERR_INVALID_BUF,
               [&] { return FMempAddRegion(&g_memp, spare, spare + 16); });
  ExpectFError("add a null region", FMEMP_ERR_INVALID_BUF,
               [&] { return FMempAddRegion(&g_memp, nullptr, spare); });
  ExpectFError("add an inverted region", FMEMP_ERR_INVALID_BUF,
               [&] { return FMempAddRegion(&g_memp, spare + 4096, spare); });
  ExpectFError("add a misaligned region too small once aligned",
               FMEMP_ERR_INVALID_BUF,
               [&] { return FMempAddRegion(&g_memp, spare + 1, spare + 40); });
  ExpectFError("remove an unknown region", FMEMP_ERR_REGION_NOT_FOUND,
               [&] { return FMempRemoveRegion(&g_memp, spare); });
  ExpectFError("remove a region with live blocks", FMEMP_ERR_REGION_BUSY,
               [&] { return FMempRemoveRegion(&g_memp, first); });
  ExpectFError("check the region of a foreign pointer",
               FMEMP_ERR_REGION_NOT_FOUND,
               [&] { return FMempCheckRegionOf(&g_memp, spare + 64); });

  if (policy != FMEMP_POLICY_THREAD_HEAPS) {
    ExpectFError("bind under a policy without thread heaps",
                 FMEMP_ERR_NOT_SUPPORTED,
                 [&] { return FMempBindThread(&g_memp, first); });
  } else {
    ExpectFError("bind an unknown region", FMEMP_ERR_REGION_NOT_FOUND,
                 [&] { return FMempBindThread(&g_memp, spare); });
    // A region bound to another thread, which waits while the main thread
    // tries it.
    std::atomic<int> stage{0};  // 1: bound (or -1: failed); 2: done
    std::thread owner([&] {
      const bool ok = FMempAddRegion(&g_memp, bound, bound + kRegionBytes) ==
                          FMEMP_SUCCESS &&
                      FMempBindThread(&g_memp, bound) == FMEMP_SUCCESS;
      stage.store(ok ? 1 : -1);
      while (stage.load() != 2) std::this_thread::yield();
      FMempUnbindThread(&g_memp);
    });
    while (stage.load() == 0) std::this_thread::yield();
    if (stage.load() != 1) {
      Failed("bind a region on another thread", "setup failed");
    } else {
      ExpectFError("bind a region bound to another thread",
                   FMEMP_ERR_REGION_BUSY,
                   [&] { return FMempBindThread(&g_memp, bound); });
      ExpectFError("remove a region bound to another thread",
                   FMEMP_ERR_REGION_BUSY,
                   [&] { return FMempRemoveRegion(&g_memp, bound); });
      ExpectFError("check a pointer in another thread's heap",
                   FMEMP_ERR_REGION_BUSY,
                   [&] { return FMempCheckRegionOf(&g_memp, bound + 64); });
      ExpectFError("add a region overlapping a bound one",
                   FMEMP_ERR_REGION_OVERLAP, [&] {
                     return FMempAddRegion(&g_memp, bound + 4096,
                                           bound + 2 * 4096);
                   });
    }
    stage.store(2);
    owner.join();
  }

  // The listing allocates nothing (each line is formatted on the stack),
  // with a tagged block among the live ones.
  void* const tagged =
      FMempMallocTag(&g_memp, 48, __FILE__, __LINE__, "listed block");
  if (tagged == nullptr) return 2;
  ExpectListingAllocatesNothing("list a sound heap", "integrity check: OK");
  FMempFreeTag(&g_memp, tagged);

  // Nothing changed: the live blocks are intact and the FMemp is sound.
  if (live->size() != 200 || (*live)[199] != 'x') {
    Failed("after the failures", "a live block changed");
  }
  delete live;
  FMempFree(&g_memp, block);
  ExpectFError("FMempCheck after the failures", FMEMP_SUCCESS,
               [&] { return FMempCheck(&g_memp); });

  // A damaged heap: checking it describes the damage without operator new.
  void* const victim = FMempMalloc(&g_memp, 256);
  void* const after = FMempMalloc(&g_memp, 256);
  if (victim == nullptr || after == nullptr) return 2;
  DamageHeader(victim);
  ExpectFError("FMempCheck of a damaged heap", FMEMP_ERR_CORRUPT,
               [&] { return FMempCheck(&g_memp); });
  ExpectFError("FMempCheckRegionOf a damaged region", FMEMP_ERR_CORRUPT,
               [&] { return FMempCheckRegionOf(&g_memp, after); });
  ExpectFError("FMempCheckRegionOf a foreign pointer, heap damaged",
               FMEMP_ERR_REGION_NOT_FOUND,
               [&] { return FMempCheckRegionOf(&g_memp, spare + 64); });
  ExpectListingAllocatesNothing("list a damaged heap",
                                "integrity check: DATA_LOSS");
  return g_failures == 0 ? 0 : 1;
}

// --- The C++ front-ends ---

// A front-end constructed in static storage (its construction calls no
// operator new), routed into by operator new.
template <typename FrontEnd>
struct Routed {
  alignas(FrontEnd) static unsigned char storage[sizeof(FrontEnd)];
  static FrontEnd& Get() { return *reinterpret_cast<FrontEnd*>(storage); }
  static void* Allocate(size_t bytes, size_t align) {
    return align <= 16 ? Get().Allocate(bytes)
                       : Get().AllocateAligned(align, bytes);
  }
  static void Free(void* p) { Get().Free(p); }
};
template <typename FrontEnd>
alignas(FrontEnd) unsigned char Routed<FrontEnd>::storage[sizeof(FrontEnd)];

// Runs one failing C++ call: the code expected, and a message built through
// the routed operator new (so the conversion ran, outside the lock, or the
// child would have hung or aborted).
template <typename Call>
void ExpectCode(const char* what, absl::StatusCode expected, Call call) {
  const uint64_t news = g_news.load();
  const absl::Status status = call();
  const uint64_t during = g_news.load() - news;
  if (status.code() != expected) {
    char detail[200];
    std::snprintf(detail, sizeof(detail), "returned code %d, expected %d",
                  static_cast<int>(status.code()), static_cast<int>(expected));
    Failed(what, detail);
  }
  if (during == 0 || status.message().empty()) {
    Failed(what, "its message did not come through the routed operator new");
  }
}

// Runs memp.List: no operator new, and a last line starting with `check`.
template <typename FrontEnd>
void ExpectListAllocatesNothing(const char* what, FrontEnd& memp,
                                const char* check) {
  ListingSeen seen;
  const uint64_t news = g_news.load();
  memp.List([&seen](absl::string_view line) {
    // List's lines are NUL-terminated.
    SeeLine(&seen, line.data());
  });
  const uint64_t during = g_news.load() - news;
  if (during != 0) {
    char detail[80];
    std::snprintf(detail, sizeof(detail), "called operator new %llu times",
                  static_cast<unsigned long long>(during));
    Failed(what, detail);
  }
  if (seen.lines < 3 || !EndsWithCheck(seen, check)) {
    Failed(what, "its lines are not a listing");
  }
}

template <typename FrontEnd>
int RunCpp() {
  constexpr bool kThreadHeaps =
      std::is_same_v<FrontEnd, ThreadHeapMemp<sync::SpinLock>>;
  unsigned char* const base = MapRegions();
  if (base == nullptr) return 2;
  unsigned char* const first = base;
  unsigned char* const spare = base + kRegionBytes;
  FrontEnd& memp = *new (Routed<FrontEnd>::storage) FrontEnd();
  if (!memp.AddRegion(first, first + kRegionBytes).ok()) return 2;
  g_allocate = &Routed<FrontEnd>::Allocate;
  g_free = &Routed<FrontEnd>::Free;
  std::string* const live = new std::string(200, 'x');
  if (g_news.load() == 0) return 2;

  ExpectCode("AddRegion overlapping", absl::StatusCode::kAlreadyExists,
             [&] { return memp.AddRegion(first + 4096, first + 2 * 4096); });
  ExpectCode("AddRegion too small", absl::StatusCode::kInvalidArgument,
             [&] { return memp.AddRegion(spare, spare + 16); });
  ExpectCode("AddRegion inverted", absl::StatusCode::kInvalidArgument,
             [&] { return memp.AddRegion(spare + 4096, spare); });
  ExpectCode("RemoveRegion unknown", absl::StatusCode::kNotFound,
             [&] { return memp.RemoveRegion(spare); });
  ExpectCode("RemoveRegion with live blocks",
             absl::StatusCode::kFailedPrecondition,
             [&] { return memp.RemoveRegion(first); });
  ExpectCode("CheckRegionOf a foreign pointer", absl::StatusCode::kNotFound,
             [&] { return memp.CheckRegionOf(spare + 64); });
  ExpectCode("SetDebugOptions with a region",
             absl::StatusCode::kFailedPrecondition,
             [&] { return memp.SetDebugOptions(DebugOptions()); });
  if constexpr (kThreadHeaps) {
    ExpectCode("BindThisThread unknown", absl::StatusCode::kNotFound,
               [&] { return memp.BindThisThread(spare); });
  }
  ExpectListAllocatesNothing("List a sound heap", memp, "integrity check: OK");
  if (live->size() != 200 || (*live)[199] != 'x') {
    Failed("after the failures", "a live block changed");
  }
  delete live;
  if (!memp.Check().ok()) Failed("Check after the failures", "not OK");

  // A damaged heap: DataLoss naming the block, its message built through
  // the routed operator new once the lock is released.
  void* const victim = memp.Allocate(256);
  void* const after = memp.Allocate(256);
  if (victim == nullptr || after == nullptr) return 2;
  DamageHeader(victim);
  absl::Status check, scoped;
  ExpectCode("Check of a damaged heap", absl::StatusCode::kDataLoss,
             [&] { return check = memp.Check(); });
  ExpectCode("CheckRegionOf a damaged region", absl::StatusCode::kDataLoss,
             [&] { return scoped = memp.CheckRegionOf(after); });
  if (!Names(check.message(), victim)) {
    Failed("Check of a damaged heap", "does not name the damaged block");
  }
  if (!Names(scoped.message(), victim)) {
    Failed("CheckRegionOf a damaged region", "does not name the damaged block");
  }
  ExpectListAllocatesNothing("List a damaged heap", memp,
                             "integrity check: DATA_LOSS");
  return g_failures == 0 ? 0 : 1;
}

// Runs `run` in a child process; whether it exited 0 in time.
bool InChild(const char* name, int (*run)(int), int arg) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    alarm(30);  // a hang ends the child with SIGALRM
    _exit(run(arg));
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  const bool passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (passed) {
    std::printf("%s: ok\n", name);
  } else {
    std::printf("%s: FAILED (%s %d)\n", name,
                WIFSIGNALED(status) ? "signal" : "exit status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
  return passed;
}

int RunCApiPolicy(int policy) {
  return RunCApi(static_cast<FMempPolicy>(policy));
}

int RunCppFrontEnd(int which) {
  switch (which) {
    case 0:
      return RunCpp<Memp<sync::Mutex>>();
    case 1:
      return RunCpp<Memp<sync::SpinLock>>();
    case 2:
      return RunCpp<CachingMemp<sync::SpinLock>>();
    default:
      return RunCpp<ThreadHeapMemp<sync::SpinLock>>();
  }
}

}  // namespace

int main() {
  struct {
    const char* name;
    FMempPolicy policy;
  } const policies[] = {
      {"C API, FMEMP_POLICY_MUTEX", FMEMP_POLICY_MUTEX},
      {"C API, FMEMP_POLICY_SPINLOCK", FMEMP_POLICY_SPINLOCK},
      {"C API, FMEMP_POLICY_SINGLE_THREAD", FMEMP_POLICY_SINGLE_THREAD},
      {"C API, FMEMP_POLICY_THREAD_CACHE", FMEMP_POLICY_THREAD_CACHE},
      {"C API, FMEMP_POLICY_THREAD_HEAPS", FMEMP_POLICY_THREAD_HEAPS},
  };
  const char* const front_ends[] = {"C++, Memp<sync::Mutex>",
                                    "C++, Memp<sync::SpinLock>",
                                    "C++, CachingMemp<sync::SpinLock>",
                                    "C++, ThreadHeapMemp<sync::SpinLock>"};
  int failed = 0;
  for (const auto& p : policies) {
    failed += InChild(p.name, &RunCApiPolicy, p.policy) ? 0 : 1;
  }
  for (int i = 0; i < 4; ++i) {
    failed += InChild(front_ends[i], &RunCppFrontEnd, i) ? 0 : 1;
  }
  if (failed == 0) std::printf("PASS\n");
  return failed == 0 ? 0 : 1;
}
