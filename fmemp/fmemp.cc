// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// The SDK's C API (fmemp/fmemp.h) over fmemp's front-ends. Each function finds
// the FMemp's front-end through the policy table (fmemp/policy_table.h),
// forwards, and converts the result; the allocator logic lives in the
// front-ends and below.

#include "fmemp/fmemp.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fmemp/budget.h"
#include "fmemp/management_error.h"
#include "fmemp/memp.h"
#include "fmemp/metadata_arena.h"
#include "fmemp/misuse_kind.h"
#include "fmemp/no_wait_lock.h"
#include "fmemp/policy_table.h"
#include "fmemp/prefault.h"
#include "fmemp/thread_heap.h"
#include "fmemp/thread_registry.h"

namespace fmemp {
namespace {

// The one mapping from the front-ends' management errors to the SDK's error
// codes. The C API calls the front-ends' Try* forms and maps their
// ManagementResult here: a failing management call builds no absl::Status
// and allocates nothing (fmemp/management_error.h), so it is safe with the
// program's operator new routed into this FMemp.
FError ToFError(ManagementResult result) {
  switch (result.error()) {
    case ManagementError::kNone:
      return FMEMP_SUCCESS;
    case ManagementError::kNullBound:
    case ManagementError::kReversedRange:
    case ManagementError::kWrapsAround:
    case ManagementError::kTooSmall:
    case ManagementError::kTooLarge:
      return FMEMP_ERR_INVALID_BUF;
    case ManagementError::kOverlap:
    case ManagementError::kOverlapOtherSet:
    case ManagementError::kOverlapBound:
      return FMEMP_ERR_REGION_OVERLAP;
    case ManagementError::kNoRegion:
    case ManagementError::kNotInRegion:
      return FMEMP_ERR_REGION_NOT_FOUND;
    case ManagementError::kLiveBlocks:
    case ManagementError::kBoundToOtherThread:
    case ManagementError::kInOtherThreadsHeap:
      return FMEMP_ERR_REGION_BUSY;
    case ManagementError::kRegionUnlistable:
    case ManagementError::kCorrupt:
      return FMEMP_ERR_CORRUPT;
    case ManagementError::kNoMemory:
      return FMEMP_ERR_BAD_MALLOC;
    case ManagementError::kNoThreadHeap:
    case ManagementError::kRetiring:
    case ManagementError::kNotRetiring:
      return FMEMP_ERR_INVALID_ARG;
    case ManagementError::kHasRegions:
    case ManagementError::kDebugModesDiffer:
    case ManagementError::kNothingToAttach:
      break;
  }
  return FMEMP_ERR_INIT_TLFS;
}

u32 Saturate(size_t value) {
  return value > UINT32_MAX ? UINT32_MAX : static_cast<u32>(value);
}

uint64_t CurrentThreadId() {
  return static_cast<uint64_t>(syscall(SYS_gettid));
}

// The C callbacks of a pool with their arguments; immutable once installed,
// so a report or an out-of-memory call racing a change reads a whole set.
struct Callbacks {
  FMempErrorHandler misuse = nullptr;
  void* misuse_user = nullptr;
  FMempOomHandler oom = nullptr;
  void* oom_user = nullptr;

  bool operator==(const Callbacks& other) const {
    return misuse == other.misuse && misuse_user == other.misuse_user &&
           oom == other.oom && oom_user == other.oom_user;
  }
  static void ForwardMisuse(void* context, MempError error, const void* ptr) {
    const Callbacks* self = static_cast<const Callbacks*>(context);
    self->misuse(self->misuse_user, ToMisuseKind(error), ptr);
  }
  static bool ForwardOom(void* context, size_t bytes, size_t alignment) {
    const Callbacks* self = static_cast<const Callbacks*>(context);
    return self->oom(self->oom_user, bytes, alignment) != 0;
  }
  // Installs these callbacks (or the defaults, for nullptr) on a front-end.
  template <typename FrontEnd>
  static void Install(const Callbacks* self, FrontEnd& front_end) {
    Callbacks* const context = const_cast<Callbacks*>(self);
    front_end.SetErrorHandler(
        self != nullptr && self->misuse != nullptr ? &ForwardMisuse : nullptr,
        context);
    front_end.SetOutOfMemoryHandler(
        self != nullptr && self->oom != nullptr ? &ForwardOom : nullptr,
        context);
  }
};

constexpr int kNotReady = -1;

// What FMemp::priv points to, from FMempInit to FMempRemove (or
// FMempRelease), which destroy it with everything it created: the SDK
// zeroes its FMemp (often on the stack) before every FMempInit, so nothing
// may outlive FMempRemove. It and its front-end live in the metadata arena
// (fmemp/metadata_arena.h), never in operator new's heap.
class CApiPool {
 public:
  CApiPool();
  ~CApiPool();
  CApiPool(const CApiPool&) = delete;
  CApiPool& operator=(const CApiPool&) = delete;

  // fork() support (see PrepareFork): takes admin_ and every front-end's
  // lock, so the child inherits pools no other thread is half-way through.
  // In two steps, because the per-thread caches' registry lock sits between
  // admin_ and the front-ends' locks in the lock order.
  void LockAdminForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    LockWithoutWaiting(admin_);
  }
  // Front-ends are locked in table order and unlocked in the reverse (the
  // lambdas take or release a lock the analysis cannot pair).
  void LockFrontEndsForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    front_ends_.ForEachCreated(
        [](auto& front_end)
            ABSL_NO_THREAD_SAFETY_ANALYSIS { front_end.LockForFork(); });
  }
  void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    front_ends_.ForEachCreatedReversed(
        [](auto& front_end)
            ABSL_NO_THREAD_SAFETY_ANALYSIS { front_end.UnlockAfterFork(); });
    admin_.Unlock();
  }
  void ResetLocksInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    front_ends_.ForEachCreatedReversed(
        [](auto& front_end) { front_end.ResetLockInForkChild(); });
    new (&admin_) absl::Mutex();
  }

  // Runs fn(front-end) for the active policy, or returns `otherwise`.
  template <typename R, typename Fn>
  R Dispatch(R otherwise, Fn fn) {
    return front_ends_.Visit<R>(active_.load(std::memory_order_acquire),
                                otherwise, fn);
  }

  FError Init(FMemp* memp, void* begin, void* end, FMempPolicy policy,
              const DebugOptions& debug) {
    NoWaitLock hold(&admin_);
    if (active_.load(std::memory_order_relaxed) != kNotReady) {
      return FMEMP_ERR_ALREADY_INIT;
    }
    if (!front_ends_.Create(policy)) return FMEMP_ERR_BAD_MALLOC;
    FError error = FMEMP_SUCCESS;
    const Callbacks* const callbacks = callbacks_;
    WithFrontEnd(policy, [&](auto& front_end) {
      front_end.Clear();
      // Every init sets the modes (a previous init's stay otherwise).
      if (!front_end.TrySetDebugOptions(debug).ok()) {
        error = FMEMP_ERR_INIT_TLFS;
        return;
      }
      error = ToFError(front_end.TryAddRegion(begin, end));
      Callbacks::Install(callbacks, front_end);
      // A life cycle starts without limits (FMempRemove keeps none).
      front_end.RemoveLimits();
    });
    if (error != FMEMP_SUCCESS) {
      return error == FMEMP_ERR_INVALID_BUF ? error : FMEMP_ERR_INIT_TLFS;
    }
    node_.pool_addr = begin;
    node_.list.next = nullptr;
    memp->pools_list = &node_;
    memp->tlsf_ptr = begin;
    memp->is_ready = FT_COMPONENT_IS_READY;
    active_.store(policy, std::memory_order_release);
    return FMEMP_SUCCESS;
  }

  void Remove(FMemp* memp) {
    NoWaitLock hold(&admin_);
    const int policy = active_.exchange(kNotReady, std::memory_order_acq_rel);
    if (policy == kNotReady) return;
    WithFrontEnd(static_cast<FMempPolicy>(policy),
                 [](auto& front_end) { front_end.Clear(); });
    memp->pools_list = nullptr;
    memp->tlsf_ptr = nullptr;
    memp->is_ready = 0;
  }

  // The soft limit's C handler, called through ForwardSoftLimit (the
  // Budget's handler, with this CApiPool as its context).
  FError SetSoftLimit(u64 bytes, u64 hysteresis, FMempSoftLimitHandler handler,
                      void* user) {
    absl::MutexLock hold(&admin_);
    const size_t limit = ToLimit(bytes);
    soft_user_.store(user, std::memory_order_relaxed);
    soft_handler_.store(handler, std::memory_order_relaxed);
    return Dispatch<FError>(FMEMP_ERR_NOT_INIT, [&](auto& m) -> FError {
      m.SetSoftLimit(limit, static_cast<size_t>(hysteresis),
                     limit == Budget::kNoLimit ? nullptr : &ForwardSoftLimit,
                     this);
      return FMEMP_SUCCESS;
    });
  }
  // A thread heap's soft limit: its C handler and argument in a record that
  // lives until FMempRelease (a crossing racing a change may still call it), as
  // the Budget's context.
  FError SetThreadHeapSoftLimit(u64 thread_id, u64 bytes, u64 hysteresis,
                                FMempSoftLimitHandler handler, void* user) {
    absl::MutexLock hold(&admin_);
    const size_t limit = ToLimit(bytes);
    SoftCallback* callback = nullptr;
    if (limit != Budget::kNoLimit) {
      for (const auto& existing : soft_callbacks_) {
        if (existing->handler == handler && existing->user == user) {
          callback = existing.get();
        }
      }
      if (callback == nullptr) {
        ArenaPtr<SoftCallback> fresh(ArenaNew<SoftCallback>());
        if (fresh == nullptr) return FMEMP_ERR_BAD_MALLOC;
        fresh->handler = handler;
        fresh->user = user;
        callback = fresh.get();
        soft_callbacks_.push_back(std::move(fresh));
      }
    }
    return Dispatch<FError>(FMEMP_ERR_NOT_INIT, [&](auto& m) -> FError {
      if constexpr (CApiPolicies::RowOf<decltype(m)>::Has(
                        Offers::kThreadHeaps)) {
        return ToFError(m.TrySetThreadHeapSoftLimit(
            thread_id, limit, static_cast<size_t>(hysteresis),
            callback != nullptr ? &CallSoftCallback : nullptr, callback));
      } else {
        return FMEMP_ERR_NOT_SUPPORTED;
      }
    });
  }

  // FMEMP_LIMIT_NONE (and anything above SIZE_MAX) as Budget::kNoLimit.
  static size_t ToLimit(u64 bytes) {
    return bytes >= SIZE_MAX ? Budget::kNoLimit : static_cast<size_t>(bytes);
  }

  FError SetErrorHandler(FMempErrorHandler handler, void* user) {
    return ChangeCallbacks([&](Callbacks& c) {
      c.misuse = handler;
      c.misuse_user = handler != nullptr ? user : nullptr;
    });
  }

  FError SetOomHandler(FMempOomHandler handler, void* user) {
    return ChangeCallbacks([&](Callbacks& c) {
      c.oom = handler;
      c.oom_user = handler != nullptr ? user : nullptr;
    });
  }

 private:
  struct SoftCallback {
    FMempSoftLimitHandler handler = nullptr;
    void* user = nullptr;
  };
  static void CallSoftCallback(void* context,
                               const Budget::SoftLimitEvent& event) {
    const SoftCallback* callback = static_cast<const SoftCallback*>(context);
    callback->handler(callback->user, event.usage, event.soft_limit);
  }
  static void ForwardSoftLimit(void* context,
                               const Budget::SoftLimitEvent& event) {
    const CApiPool* self = static_cast<const CApiPool*>(context);
    const FMempSoftLimitHandler handler =
        self->soft_handler_.load(std::memory_order_relaxed);
    if (handler != nullptr) {
      handler(self->soft_user_.load(std::memory_order_relaxed), event.usage,
              event.soft_limit);
    }
  }

  // Applies `change` to a copy of the current callbacks and installs the
  // result on the active front-end. Sets are kept until FMempRelease (a call
  // racing this one may still use the previous set); equal sets are reused,
  // which bounds them by the distinct combinations ever installed.
  template <typename Change>
  FError ChangeCallbacks(Change change) {
    NoWaitLock hold(&admin_);
    // A pool that is not ready is not touched (Init and Remove hold admin_).
    if (active_.load(std::memory_order_relaxed) == kNotReady) {
      return FMEMP_ERR_NOT_INIT;
    }
    Callbacks wanted = callbacks_ != nullptr ? *callbacks_ : Callbacks{};
    change(wanted);
    const Callbacks* chosen = nullptr;
    for (const auto& existing : callback_sets_) {
      if (*existing == wanted) chosen = existing.get();
    }
    if (chosen == nullptr) {
      ArenaPtr<Callbacks> fresh(ArenaNew<Callbacks>(wanted));
      if (fresh == nullptr) return FMEMP_ERR_BAD_MALLOC;
      callback_sets_.push_back(std::move(fresh));
      chosen = callback_sets_.back().get();
    }
    callbacks_ = chosen;
    return Dispatch<FError>(FMEMP_ERR_NOT_INIT, [chosen](auto& front_end) {
      Callbacks::Install(chosen, front_end);
      return FMEMP_SUCCESS;
    });
  }

  // Runs fn on the front-end of `policy`, which Init created.
  template <typename Fn>
  void WithFrontEnd(FMempPolicy policy, Fn fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(admin_) {
    admin_.AssertHeld();
    front_ends_.Visit<bool>(policy, false, [&fn](auto& front_end) {
      fn(front_end);
      return true;
    });
  }

  std::atomic<int> active_{kNotReady};
  // Serialises Init, Remove and handler changes; taken with NoWaitLock, as
  // every mutex of the C API (fmemp/no_wait_lock.h).
  absl::Mutex admin_;
  // Created under admin_ before active_ publishes them (release), visited
  // after an acquire load of active_.
  CApiPolicies::FrontEnds front_ends_;
  FMempPoolList node_ = {};
  std::vector<ArenaPtr<Callbacks>, ArenaAllocator<ArenaPtr<Callbacks>>>
      callback_sets_ ABSL_GUARDED_BY(admin_);
  const Callbacks* callbacks_ ABSL_GUARDED_BY(admin_) = nullptr;
  // FMempSetSoftLimit's handler and its argument, read by ForwardSoftLimit
  // on any thread.
  std::atomic<FMempSoftLimitHandler> soft_handler_{nullptr};
  std::atomic<void*> soft_user_{nullptr};
  // FMempSetThreadHeapSoftLimit's handlers, one record per distinct
  // handler and argument, kept until the CApiPool goes.
  std::vector<ArenaPtr<SoftCallback>, ArenaAllocator<ArenaPtr<SoftCallback>>>
      soft_callbacks_ ABSL_GUARDED_BY(admin_);
};

// Every live CApiPool, for the fork handlers. In static storage and never
// destroyed (pools may be removed during static destruction); the set's
// table lives in the metadata arena.
struct PoolRegistry {
  absl::Mutex mu;  // taken with NoWaitLock (fmemp/no_wait_lock.h)
  absl::flat_hash_set<CApiPool*, absl::Hash<CApiPool*>,
                      std::equal_to<CApiPool*>, ArenaAllocator<CApiPool*>>
      pools ABSL_GUARDED_BY(mu);
};

PoolRegistry& Registry() {
  alignas(PoolRegistry) static unsigned char storage[sizeof(PoolRegistry)];
  static PoolRegistry* const registry = ::new (storage) PoolRegistry;
  return *registry;
}

// pthread_atfork handlers. Before fork() the forking thread takes the
// registry lock and then every pool's locks, in one fixed order, so no other
// thread is inside an FMemp call when the address space is copied. The
// parent then releases them. The child, whose only thread is the forking
// one, gets fresh locks instead: an absl::Mutex can be copied mid-update by
// a waiter that does not exist in the child, and unlocking it there can
// hang. The child's thread can therefore keep using every FMemp.
void PrepareFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  PoolRegistry& registry = Registry();
  LockWithoutWaiting(registry.mu);
  // Lock order: every pool's admin_, the per-thread caches' registry, then
  // every front-end's lock.
  for (CApiPool* pool : registry.pools) pool->LockAdminForFork();
  LockRegistryForFork();
  for (CApiPool* pool : registry.pools) pool->LockFrontEndsForFork();
}

void ResumeAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  PoolRegistry& registry = Registry();
  for (CApiPool* pool : registry.pools) pool->UnlockAfterFork();
  UnlockRegistryAfterFork();
  registry.mu.Unlock();
}

void ResetInForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Abseil's debug-build deadlock detector remembers the forking thread as
  // holding the locks replaced below, and would abort the child's next lock
  // of them; the child runs without it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  PoolRegistry& registry = Registry();
  for (CApiPool* pool : registry.pools) pool->ResetLocksInForkChild();
  ResetRegistryInForkChild();
  new (&registry.mu) absl::Mutex();
}

CApiPool::CApiPool() {
  static const bool registered = [] {
    return pthread_atfork(&PrepareFork, &ResumeAfterFork, &ResetInForkChild) ==
           0;
  }();
  (void)registered;
  PoolRegistry& registry = Registry();
  NoWaitLock hold(&registry.mu);
  registry.pools.insert(this);
}

CApiPool::~CApiPool() {
  PoolRegistry& registry = Registry();
  NoWaitLock hold(&registry.mu);
  registry.pools.erase(this);
}

CApiPool* PoolOf(FMemp* memp) {
  if (memp == nullptr) return nullptr;
  return static_cast<CApiPool*>(__atomic_load_n(&memp->priv, __ATOMIC_ACQUIRE));
}

// The front-end of memp, created on first use.
CApiPool* CreatePoolOf(FMemp* memp) {
  CApiPool* pool = PoolOf(memp);
  if (pool != nullptr) return pool;
  CApiPool* fresh = ArenaNew<CApiPool>();
  if (fresh == nullptr) return nullptr;
  void* expected = nullptr;
  if (__atomic_compare_exchange_n(&memp->priv, &expected, fresh, false,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    return fresh;
  }
  ArenaDelete(fresh);  // another thread installed one first
  return static_cast<CApiPool*>(expected);
}

template <typename R, typename Fn>
R WithMemp(FMemp* memp, R otherwise, Fn fn) {
  CApiPool* pool = PoolOf(memp);
  return pool != nullptr ? pool->Dispatch<R>(otherwise, fn) : otherwise;
}

BlockTag MakeTag(const char* file,
                 unsigned long line,  // NOLINT(google-runtime-int): SDK API
                 const char* msg) {
  BlockTag tag;
  tag.file = file;
  tag.line = line;
  tag.message = msg;
  tag.thread_id = CurrentThreadId();
  return tag;
}

// The policy table's row for a front-end visited by WithMemp.
template <typename FrontEnd>
using RowOf = CApiPolicies::RowOf<FrontEnd>;

// Returns fn(front-end) when memp's policy offers `kNeeded` (policy_table.h),
// `unsupported` when it does not, FMEMP_ERR_NOT_INIT when memp is not ready.
template <Offers kNeeded, typename Fn>
FError WithOffer(FMemp* memp, FError unsupported, Fn fn) {
  return WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT,
                          [&fn, unsupported](auto& m) -> FError {
                            if constexpr (RowOf<decltype(m)>::Has(kNeeded)) {
                              return fn(m);
                            } else {
                              return unsupported;
                            }
                          });
}

}  // namespace

int ToMisuseKind(MempError error) {
  switch (error) {
    case MempError::kForeignPointer:
      return FMEMP_MISUSE_FOREIGN_POINTER;
    case MempError::kInvalidFree:
      return FMEMP_MISUSE_INVALID_FREE;
    case MempError::kDoubleFree:
      return FMEMP_MISUSE_DOUBLE_FREE;
    case MempError::kCorruptHeap:
      return FMEMP_MISUSE_CORRUPT_HEAP;
    case MempError::kUseAfterFreeWrite:
      return FMEMP_MISUSE_USE_AFTER_FREE_WRITE;
    case MempError::kCanaryDamaged:
      return FMEMP_MISUSE_CANARY_DAMAGED;
  }
  return 0;
}

}  // namespace fmemp

using fmemp::BlockTag;
using fmemp::MempStats;
using fmemp::RegionStats;

extern "C" {

FError FMempInitDebug(FMemp* memp, void* begin_addr, void* end_addr,
                      FMempPolicy policy, u32 debug_flags) {
  if (memp == nullptr) return FMEMP_ERR_INVALID_ARG;
  if ((debug_flags &
       ~(FMEMP_DEBUG_POISON | FMEMP_DEBUG_CANARIES | FMEMP_DEBUG_ASAN)) != 0) {
    return FMEMP_ERR_INVALID_ARG;
  }
  fmemp::DebugOptions debug;
  debug.poison = (debug_flags & FMEMP_DEBUG_POISON) != 0;
  debug.canaries = (debug_flags & FMEMP_DEBUG_CANARIES) != 0;
  debug.asan = (debug_flags & FMEMP_DEBUG_ASAN) != 0;
  // C callers can pass any int.
  if (!fmemp::CApiPolicies::IsPolicy(static_cast<int>(policy))) {
    return FMEMP_ERR_INVALID_ARG;
  }
  fmemp::CApiPool* pool = fmemp::CreatePoolOf(memp);
  if (pool == nullptr) return FMEMP_ERR_BAD_MALLOC;
  return pool->Init(memp, begin_addr, end_addr, policy, debug);
}

FError FMempInitWithPolicy(FMemp* memp, void* begin_addr, void* end_addr,
                           FMempPolicy policy) {
  return FMempInitDebug(memp, begin_addr, end_addr, policy, 0);
}

FError FMempInit(FMemp* memp, void* begin_addr, void* end_addr) {
  // The fastest thread-safe policy (docs/BENCHMARKS.md); fmemp.h lists how
  // its probes differ from FMEMP_POLICY_MUTEX's.
  return FMempInitWithPolicy(memp, begin_addr, end_addr,
                             FMEMP_POLICY_THREAD_CACHE);
}

void FMempRemove(FMemp* memp) {
  // Everything FMempInit created goes: the SDK zeroes its FMemp before the
  // next FMempInit, so whatever stayed behind would leak. Per-thread state
  // that threads still hold for the front-end is orphaned by its destructor
  // (DetachThreadStates) and deleted by those threads; a new front-end,
  // even at the same address, has a new owner id and never sees it.
  fmemp::CApiPool* pool = fmemp::PoolOf(memp);
  if (pool == nullptr) return;
  pool->Remove(memp);
  __atomic_store_n(&memp->priv, nullptr, __ATOMIC_RELEASE);
  fmemp::ArenaDelete(pool);
}

void FMempDeinit(FMemp* memp) { FMempRemove(memp); }

void FMempRelease(FMemp* memp) { FMempRemove(memp); }

void* FMempMalloc(FMemp* memp, fsize_t nbytes) {
  return fmemp::WithMemp<void*>(
      memp, nullptr, [nbytes](auto& m) { return m.Allocate(nbytes); });
}

void* FMempCalloc(FMemp* memp, fsize_t count, fsize_t size) {
  return fmemp::WithMemp<void*>(
      memp, nullptr, [count, size](auto& m) { return m.Calloc(count, size); });
}

void* FMempMallocAlign(FMemp* memp, fsize_t size, fsize_t align) {
  return fmemp::WithMemp<void*>(memp, nullptr, [size, align](auto& m) {
    return m.AllocateAligned(align, size);
  });
}

void* FMempRealloc(FMemp* memp, void* ptr, fsize_t nbytes) {
  return fmemp::WithMemp<void*>(memp, nullptr, [ptr, nbytes](auto& m) {
    return m.Reallocate(ptr, nbytes);
  });
}

void FMempFree(FMemp* memp, void* ptr) {
  fmemp::WithMemp<bool>(memp, false, [ptr](auto& m) { return m.Free(ptr); });
}

void FMemProbe(FMemp* memp, u32* total, u32* used, u32* max_used) {
  const MempStats stats = fmemp::WithMemp<MempStats>(
      memp, MempStats{}, [](auto& m) { return m.Probe(); });
  if (total != nullptr) *total = fmemp::Saturate(stats.capacity_bytes);
  if (used != nullptr) *used = fmemp::Saturate(stats.used_bytes);
  if (max_used != nullptr) *max_used = fmemp::Saturate(stats.peak_used_bytes);
}

namespace {

// Writes all of buf[0..n) to standard output with write(2): stdio's buffer
// comes from malloc, which may be this FMemp, and the listing runs under its
// lock.
void WriteToStdout(const char* buf, size_t n) {
  while (n != 0) {
    const ssize_t w = write(STDOUT_FILENO, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    buf += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void FMemListAll(FMemp* memp) {
  // Whatever the program printed before comes first.
  std::fflush(stdout);
  const bool listed = fmemp::WithMemp<bool>(memp, false, [](auto& m) {
    m.List([](absl::string_view line) {
      WriteToStdout(line.data(), line.size());
      WriteToStdout("\n", 1);
    });
    return true;
  });
  if (!listed) {
    static constexpr char kNotInitialised[] =
        "fmemp: pool is not initialised\n";
    WriteToStdout(kNotInitialised, sizeof(kNotInitialised) - 1);
  }
}

FError FMemListAllTo(FMemp* memp, FMempLineSink sink, void* user) {
  if (sink == nullptr) return FMEMP_ERR_INVALID_ARG;
  return fmemp::WithMemp<FError>(
      memp, FMEMP_ERR_NOT_INIT, [sink, user](auto& m) {
        // List's lines are NUL-terminated, on its stack (no allocation).
        m.List(
            [sink, user](absl::string_view line) { sink(user, line.data()); });
        return FMEMP_SUCCESS;
      });
}

FError FMempAddRegion(FMemp* memp, void* begin, void* end) {
  return fmemp::WithMemp<FError>(
      memp, FMEMP_ERR_NOT_INIT, [begin, end](auto& m) {
        return fmemp::ToFError(m.TryAddRegion(begin, end));
      });
}

FError FMempRemoveRegion(FMemp* memp, void* begin) {
  return fmemp::WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT, [begin](auto& m) {
    return fmemp::ToFError(m.TryRemoveRegion(begin));
  });
}

FError FMempProbe64(FMemp* memp, FMempUsage* usage) {
  if (usage == nullptr) return FMEMP_ERR_INVALID_ARG;
  return fmemp::WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT, [usage](auto& m) {
    const MempStats s = m.Probe();
    usage->total = s.capacity_bytes;
    usage->used = s.used_bytes;
    usage->free_bytes = s.free_bytes;
    usage->max_used = s.peak_used_bytes;
    usage->live_blocks = s.live_blocks;
    usage->regions = s.region_count;
    usage->failed_allocations = s.failed_allocations;
    usage->invalid_frees = s.invalid_frees;
    usage->cached_bytes = s.cached_bytes;
    usage->lost_bytes = s.lost_bytes;
    usage->limit = FMEMP_LIMIT_NONE;
    usage->soft_limit = FMEMP_LIMIT_NONE;
    const fmemp::Budget& budget = m.budget();
    if (budget.limit() != fmemp::Budget::kNoLimit) {
      usage->limit = budget.limit();
    }
    if (budget.soft_limit() != fmemp::Budget::kNoLimit) {
      usage->soft_limit = budget.soft_limit();
    }
    usage->limit_refusals = s.limit_refusals;
    usage->limit_usage = budget.usage();
    return FMEMP_SUCCESS;
  });
}

// The C handler is RegionSet's, as is: no record to keep.
static_assert(
    std::is_same_v<FMempRetiredHandler, fmemp::RegionSet::RetiredHandler>);

FError FMempRetireRegion(FMemp* memp, void* begin, FMempRetiredHandler handler,
                         void* user) {
  return fmemp::WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT, [&](auto& m) {
    return fmemp::ToFError(m.TryRetireRegion(begin, handler, user));
  });
}

FError FMempCancelRetire(FMemp* memp, void* begin) {
  return fmemp::WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT, [begin](auto& m) {
    return fmemp::ToFError(m.TryCancelRetire(begin));
  });
}

FError FMempSetLimit(FMemp* memp, u64 bytes) {
  return fmemp::WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT, [bytes](auto& m) {
    m.SetLimit(fmemp::CApiPool::ToLimit(bytes));
    return FMEMP_SUCCESS;
  });
}

FError FMempSetSoftLimit(FMemp* memp, u64 bytes, u64 hysteresis,
                         FMempSoftLimitHandler handler, void* user) {
  fmemp::CApiPool* pool = fmemp::PoolOf(memp);
  if (pool == nullptr) return FMEMP_ERR_NOT_INIT;
  if (bytes != FMEMP_LIMIT_NONE && (handler == nullptr || hysteresis > bytes)) {
    return FMEMP_ERR_INVALID_ARG;
  }
  return pool->SetSoftLimit(bytes, hysteresis, handler, user);
}

u32 FMempRegionCount(FMemp* memp) {
  // As many as FMempProbeRegion can show (for per-thread heaps, the shared
  // regions and the calling thread's own).
  return fmemp::WithMemp<u32>(memp, 0u, [](auto& m) {
    return static_cast<u32>(m.ProbeRegions().size());
  });
}

FError FMempProbeRegion(FMemp* memp, u32 index, FMempRegionUsage* usage) {
  if (usage == nullptr) return FMEMP_ERR_INVALID_ARG;
  return fmemp::WithMemp<FError>(
      memp, FMEMP_ERR_NOT_INIT, [index, usage](auto& m) -> FError {
        // A region's figures are the heap's, which counts parked blocks as
        // used: give them back first, so that used, free_bytes and
        // largest_free mean what they mean under the other policies.
        if constexpr (fmemp::RowOf<decltype(m)>::Has(
                          fmemp::Offers::kCacheDrain)) {
          m.DrainAllCaches();
        }
        const fmemp::RegionStatsList regions = m.ProbeRegions();
        if (index >= regions.size()) return FMEMP_ERR_INVALID_ARG;
        const RegionStats& r = regions[index];
        usage->begin = r.begin;
        usage->end = r.end;
        usage->total = r.capacity_bytes;
        usage->used = r.used_bytes;
        usage->free_bytes = r.free_bytes;
        usage->max_used = r.peak_used_bytes;
        usage->largest_free = r.largest_allocatable;
        usage->live_blocks = r.live_blocks;
        usage->failed_allocations = r.failed_allocations;
        usage->lost_bytes = r.lost_bytes;
        usage->retiring = r.retiring ? 1 : 0;
        return FMEMP_SUCCESS;
      });
}

FError FMempCheckRegionOf(FMemp* memp, const void* ptr) {
  return fmemp::WithMemp<FError>(
      memp, FMEMP_ERR_NOT_INIT, [ptr](auto& m) -> FError {
        fmemp::tlsf::CheckFindings damage;
        const fmemp::ManagementResult result = m.TryCheckRegionOf(ptr, &damage);
        fmemp::WriteCheckFailureToStderr(damage);
        return fmemp::ToFError(result);
      });
}

FError FMempCheck(FMemp* memp) {
  return fmemp::WithMemp<FError>(memp, FMEMP_ERR_NOT_INIT, [](auto& m) {
    fmemp::tlsf::CheckFindings findings;
    const fmemp::ManagementResult result = m.TryCheck(&findings);
    fmemp::WriteCheckFailureToStderr(findings);
    return fmemp::ToFError(result);
  });
}

FError FMempSetErrorHandler(FMemp* memp, FMempErrorHandler handler,
                            void* user) {
  fmemp::CApiPool* pool = fmemp::PoolOf(memp);
  if (pool == nullptr) return FMEMP_ERR_NOT_INIT;
  return pool->SetErrorHandler(handler, user);
}

FError FMempSetOomHandler(FMemp* memp, FMempOomHandler handler, void* user) {
  fmemp::CApiPool* pool = fmemp::PoolOf(memp);
  if (pool == nullptr) return FMEMP_ERR_NOT_INIT;
  return pool->SetOomHandler(handler, user);
}

void* FMempMallocTag(FMemp* memp, fsize_t nbytes, const char* file,
                     unsigned long line,  // NOLINT(google-runtime-int): SDK API
                     const char* msg) {
  const BlockTag tag = fmemp::MakeTag(file, line, msg);
  return fmemp::WithMemp<void*>(
      memp, nullptr, [&](auto& m) { return m.AllocateTagged(1, nbytes, tag); });
}

void* FMempMallocAlignTag(
    FMemp* memp, fsize_t size, fsize_t align, const char* file,
    unsigned long line,  // NOLINT(google-runtime-int): SDK API
    const char* msg) {
  const BlockTag tag = fmemp::MakeTag(file, line, msg);
  return fmemp::WithMemp<void*>(memp, nullptr, [&](auto& m) {
    return m.AllocateTagged(align, size, tag);
  });
}

void* FMempCallocTag(FMemp* memp, fsize_t count, fsize_t size, const char* file,
                     unsigned long line,  // NOLINT(google-runtime-int): SDK API
                     const char* msg) {
  const BlockTag tag = fmemp::MakeTag(file, line, msg);
  return fmemp::WithMemp<void*>(
      memp, nullptr, [&](auto& m) { return m.Calloc(count, size, &tag); });
}

void* FMempReallocTag(
    FMemp* memp, void* ptr, fsize_t size, const char* file,
    unsigned long line,  // NOLINT(google-runtime-int): SDK API
    const char* msg) {
  const BlockTag tag = fmemp::MakeTag(file, line, msg);
  return fmemp::WithMemp<void*>(memp, nullptr, [&](auto& m) {
    return m.ReallocateTagged(ptr, size, tag);
  });
}

void FMempFreeTag(FMemp* memp, void* ptr) { FMempFree(memp, ptr); }

}  // extern "C"

FError FMempFlushThreadCache(FMemp* memp) {
  return fmemp::WithOffer<fmemp::Offers::kThreadCaches>(memp, FMEMP_SUCCESS,
                                                        [](auto& m) {
                                                          m.FlushThisThread();
                                                          return FMEMP_SUCCESS;
                                                        });
}

FError FMempDrainThreadCaches(FMemp* memp) {
  return fmemp::WithOffer<fmemp::Offers::kCacheDrain>(memp, FMEMP_SUCCESS,
                                                      [](auto& m) {
                                                        m.DrainAllCaches();
                                                        return FMEMP_SUCCESS;
                                                      });
}

namespace {
// Runs fn(front-end) if memp's policy offers per-thread heaps.
template <typename Fn>
FError WithThreadHeaps(FMemp* memp, Fn fn) {
  return fmemp::WithOffer<fmemp::Offers::kThreadHeaps>(
      memp, FMEMP_ERR_NOT_SUPPORTED, fn);
}
}  // namespace

FError FMempBindThreadWithFlags(FMemp* memp, void* region_begin, u32 flags) {
  const fmemp::ThreadHeapExhaustion on_exhaustion =
      (flags & FMEMP_BIND_NO_FALLBACK) != 0
          ? fmemp::ThreadHeapExhaustion::kFail
          : fmemp::ThreadHeapExhaustion::kFallBackToShared;
  return WithThreadHeaps(memp, [&](auto& m) -> FError {
    if ((flags & ~FMEMP_BIND_NO_FALLBACK) != 0) return FMEMP_ERR_INVALID_ARG;
    return fmemp::ToFError(m.TryBindThisThread(region_begin, on_exhaustion));
  });
}

FError FMempBindThread(FMemp* memp, void* region_begin) {
  return FMempBindThreadWithFlags(memp, region_begin, 0);
}

FError FMempUnbindThread(FMemp* memp) {
  return WithThreadHeaps(memp, [](auto& m) {
    // Never fails; an OK absl::Status allocates nothing.
    m.UnbindThisThread().IgnoreError();
    return FMEMP_SUCCESS;
  });
}

FError FMempSyncThreadHeap(FMemp* memp) {
  return WithThreadHeaps(memp, [](auto& m) {
    m.SyncThisThread();
    return FMEMP_SUCCESS;
  });
}

u32 FMempThreadHeapCount(FMemp* memp) {
  u32 count = 0;
  WithThreadHeaps(memp, [&count](auto& m) {
    count = static_cast<u32>(m.ProbeThreadHeaps().size());
    return FMEMP_SUCCESS;
  });
  return count;
}

FError FMempProbeThreadHeap(FMemp* memp, u32 index,
                            FMempThreadHeapUsage* usage) {
  if (usage == nullptr) return FMEMP_ERR_INVALID_ARG;
  return WithThreadHeaps(memp, [index, usage](auto& m) -> FError {
    const fmemp::ThreadHeapStatsList heaps = m.ProbeThreadHeaps();
    if (index >= heaps.size()) return FMEMP_ERR_INVALID_ARG;
    const fmemp::ThreadHeapStats& p = heaps[index];
    usage->thread_id = p.thread_id;
    usage->total = p.stats.capacity_bytes;
    usage->used = p.stats.used_bytes;
    usage->free_bytes = p.stats.free_bytes;
    usage->cached_bytes = p.stats.cached_bytes;
    usage->max_used = p.stats.peak_used_bytes;
    usage->live_blocks = p.stats.live_blocks;
    usage->regions = p.stats.region_count;
    usage->failed_allocations = p.stats.failed_allocations;
    usage->invalid_frees = p.stats.invalid_frees;
    usage->fallbacks = p.fallbacks;
    usage->limit =
        p.limit == fmemp::Budget::kNoLimit ? FMEMP_LIMIT_NONE : p.limit;
    usage->limit_refusals = p.stats.limit_refusals;
    usage->limit_usage = p.budget_usage;
    usage->fallback_bytes = p.fallback_bytes;
    return FMEMP_SUCCESS;
  });
}

FError FMempSetThreadHeapLimit(FMemp* memp, u64 thread_id, u64 bytes) {
  return WithThreadHeaps(memp, [thread_id, bytes](auto& m) {
    return fmemp::ToFError(
        m.TrySetThreadHeapLimit(thread_id, fmemp::CApiPool::ToLimit(bytes)));
  });
}

FError FMempSetThreadHeapSoftLimit(FMemp* memp, u64 thread_id, u64 bytes,
                                   u64 hysteresis,
                                   FMempSoftLimitHandler handler, void* user) {
  fmemp::CApiPool* pool = fmemp::PoolOf(memp);
  if (pool == nullptr) return FMEMP_ERR_NOT_INIT;
  if (bytes != FMEMP_LIMIT_NONE && (handler == nullptr || hysteresis > bytes)) {
    return FMEMP_ERR_INVALID_ARG;
  }
  return pool->SetThreadHeapSoftLimit(thread_id, bytes, hysteresis, handler,
                                      user);
}

FError FMempPrefault(void* begin_addr, void* end_addr) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(begin_addr);
  const uintptr_t end = reinterpret_cast<uintptr_t>(end_addr);
  if (begin_addr == nullptr || end < begin) return FMEMP_ERR_INVALID_BUF;
  const absl::Status status = fmemp::PrefaultRange(begin_addr, end - begin);
  if (status.ok()) return FMEMP_SUCCESS;
  return absl::IsInvalidArgument(status) ? FMEMP_ERR_INVALID_BUF
                                         : FMEMP_ERR_BAD_MALLOC;
}
