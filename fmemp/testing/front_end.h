// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/testing/front_end.h
//
// One interface over every way to use fmemp, for tests, fuzzers and
// benchmarks that run the same code under every policy (the stress
// harness, thread churn, the bad-input table, the front-end fuzzer, the
// comparison suite). Not for production code: call the front-end you chose.
//
// * CppFrontEnd<Front> wraps fmemp::Memp<Lock>, fmemp::CachingMemp<Lock>
//   (fmemp/thread_cache.h) and fmemp::ThreadHeapMemp<Lock>
//   (fmemp/thread_heap.h).
// * CApiFrontEnd wraps the SDK's C API (fmemp/fmemp.h) with a policy chosen
//   at Init; CApiPolicy<kPolicy> and CApiDefault (FMempInit) fix it.
//
// Every wrapper has the same members, none of them virtual: a caller is a
// template over the wrapper, so a benchmark pays nothing for it (Allocate
// and FreeUnchecked are always inlined: the compiler sees the front-end's
// own call, with the same inlining budget as a direct caller). The
// contract:
//
//   static std::string Name();           a readable name (typed lists only)
//   static constexpr bool kIsCApi, kThreadSafe, kHasUsableSize,
//       kHasResetPeak;
//   bool has_caches(), has_thread_heaps();
//                                        what the policy offers; calls for
//                                        what it lacks are refused
//                                        (kNotSupported) or do nothing
//   bool ready();                        the C API between Init and Remove
//   Outcome Init(begin, end);            the first region (C API: FMempInit*)
//   Outcome AddRegion(begin, end), RemoveRegion(begin);
//   Outcome RetireRegion(begin, handler, context), CancelRetire(begin);
//   void* Allocate(n), AllocateAligned(alignment, n), Calloc(count, size),
//       Reallocate(p, n), and their *Tagged variants (a BlockTag);
//   bool Free(p);                        false when the free was refused
//   void FreeUnchecked(p);               the same call, says nothing
//   size_t UsableSize(p);                0 without kHasUsableSize
//   Outcome FlushThisThread(), DrainCaches();   kOk no-ops without caches
//   Outcome BindThisThread(begin, flags), UnbindThisThread(),
//       SyncThisThread();                flags: FMEMP_BIND_NO_FALLBACK
//   Usage Probe(); std::vector<RegionUsage> ProbeRegions();
//   std::vector<ThreadHeapUsage> ProbeThreadHeaps();
//   Outcome Check(std::string* why); Outcome List(line sink);
//   bool ResetPeak();
//   void SetOutOfMemoryHandler(handler, context);
//   void SetLimit(bytes);                 the hard limit (fmemp/budget.h)
//   void SetSoftLimit(bytes, hysteresis, callback), RemoveLimits();
//   Outcome SetThreadHeapLimit(thread_id, bytes),
//       SetThreadHeapSoftLimit(thread_id, bytes, hysteresis, callback);
//                                        thread_id 0: the calling thread's
//   bool ProbeThisThreadHeap(ThreadHeapUsage*);
//   ReportCounter& reports();            every misuse report, counted
//
// Results are Outcomes, one vocabulary for absl::Status and FError, so a
// test's expectations are written once. Misuse reports are counted by the
// wrapper's own handler (installed at construction or Init) and passed on
// to a listener if the caller sets one.
//
// The namespace is fmemp::testkit, not fmemp::testing: code inside
// namespace fmemp must still reach gtest's ::testing unqualified.

#ifndef FMEMP_TESTING_FRONT_END_H_
#define FMEMP_TESTING_FRONT_END_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmemp/budget.h"
#include "fmemp/fmemp.h"
#include "fmemp/management_error.h"
#include "fmemp/memp.h"
#include "fmemp/misuse_kind.h"
#include "fmemp/region_set.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp::testkit {

// What a management call returned, whichever API made it.
enum class Outcome {
  kOk,
  kInvalidBuffer,  // InvalidArgument, OutOfRange / FMEMP_ERR_INVALID_BUF
  kOverlap,        // AlreadyExists / FMEMP_ERR_REGION_OVERLAP
  kNotFound,       // NotFound / FMEMP_ERR_REGION_NOT_FOUND
  kBusy,           // FailedPrecondition / FMEMP_ERR_REGION_BUSY
  kNotInit,        // FMEMP_ERR_NOT_INIT
  kAlreadyInit,    // FMEMP_ERR_ALREADY_INIT
  kInvalidArg,     // FMEMP_ERR_INVALID_ARG
  kNotSupported,   // Unimplemented / FMEMP_ERR_NOT_SUPPORTED
  kCorrupt,        // DataLoss / FMEMP_ERR_CORRUPT
  kOther,
};

Outcome OutcomeOf(const absl::Status& status);
Outcome OutcomeOf(FError error);
const char* OutcomeName(Outcome outcome);
std::ostream& operator<<(std::ostream& out, Outcome outcome);

// Usage::limit and friends when no limit is set (Budget::kNoLimit and
// FMEMP_LIMIT_NONE).
inline constexpr uint64_t kNoLimit = UINT64_MAX;

// Probe figures, the same for every wrapper. cached: free blocks parked in
// per-thread caches (neither used nor free; 0 without caches).
struct Usage {
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t free = 0;
  uint64_t peak = 0;
  uint64_t cached = 0;
  uint64_t live = 0;
  uint64_t regions = 0;
  uint64_t failed = 0;  // allocations that returned nullptr
  uint64_t invalid_frees = 0;
  // The budget (fmemp/budget.h): the hard and soft limits (kNoLimit: none),
  // the bytes they count now (read atomically: under thread heaps not the
  // sum of the heaps' published used + cached), and the allocations the
  // limits refused (of `failed`).
  uint64_t limit = kNoLimit;
  uint64_t soft_limit = kNoLimit;
  uint64_t limit_usage = 0;
  uint64_t limit_refusals = 0;
};

struct RegionUsage {
  const void* begin = nullptr;  // as passed to AddRegion
  const void* end = nullptr;
  uint64_t capacity = 0;
  uint64_t used = 0;  // blocks parked in caches count as used here
  uint64_t free = 0;
  uint64_t peak = 0;
  uint64_t largest = 0;  // the largest request it can serve now
  uint64_t live = 0;
};

// One per-thread heap's figures, as of its thread's last call.
struct ThreadHeapUsage {
  uint64_t thread_id = 0;
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t free = 0;
  uint64_t live = 0;
  uint64_t cached = 0;     // parked in the thread heap's cache
  uint64_t failed = 0;     // its thread's allocations that returned nullptr
  uint64_t fallbacks = 0;  // requests it passed to the shared regions
  // Its own hard limit (kNoLimit: none), the bytes it counts now, and the
  // requests a limit refused.
  uint64_t limit = kNoLimit;
  uint64_t limit_usage = 0;
  uint64_t limit_refusals = 0;
};

// A soft-limit handler as the adapter passes it on: the front-end calls
// run(this, usage, soft_limit) once per crossing (fmemp/budget.h), outside
// its locks. The caller owns the callback; it must outlive every limit
// that names it.
struct SoftLimitCallback {
  void (*run)(SoftLimitCallback* self, uint64_t usage,
              uint64_t soft_limit) = nullptr;

  // The forms the front-ends call; `context` is the callback.
  static void FromBudget(void* context, const Budget::SoftLimitEvent& event) {
    auto* self = static_cast<SoftLimitCallback*>(context);
    self->run(self, event.usage, event.soft_limit);
  }
  static void FromCApi(void* user, u64 usage, u64 soft_limit) {
    auto* self = static_cast<SoftLimitCallback*>(user);
    self->run(self, usage, soft_limit);
  }
};

// Counts misuse reports. Thread-safe; a report is counted before the call
// that caused it returns, on the thread that made that call.
class ReportCounter {
 public:
  // Told of every report (kind: FMEMP_MISUSE_*), on the reporting thread,
  // inside the front-end's lock: it must not call the front-end.
  using Listener = void (*)(void* context, int kind, const void* ptr);

  ReportCounter() = default;
  ReportCounter(const ReportCounter&) = delete;
  ReportCounter& operator=(const ReportCounter&) = delete;

  // Set before the front-end is used from several threads.
  void SetListener(Listener listener, void* context) {
    listener_ = listener;
    listener_context_ = context;
  }
  void Note(int kind, const void* ptr);
  // Forgets the counts (not the listener).
  void Reset();

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // The first report's pointer and the last report's kind (0: none).
  const void* first() const { return first_.load(std::memory_order_relaxed); }
  int last_kind() const { return last_kind_.load(std::memory_order_relaxed); }
  // Reports any counter noted on the calling thread: a call that reported
  // moved it.
  static uint64_t OnThisThread();

  // Handlers to install; `context` is the counter.
  static void OnMempError(void* context, MempError error, const void* ptr);
  static void OnCApiError(void* user, int kind, const void* ptr);

 private:
  std::atomic<uint64_t> count_{0};
  std::atomic<const void*> first_{nullptr};
  std::atomic<int> last_kind_{0};
  Listener listener_ = nullptr;
  void* listener_context_ = nullptr;
};

// Told of a request no region could serve; returns whether to retry once.
using OutOfMemoryHandler = bool (*)(void* context, size_t bytes,
                                    size_t alignment);

template <typename T>
struct IsCachingMemp : std::false_type {};
template <typename Lock>
struct IsCachingMemp<CachingMemp<Lock>> : std::true_type {};
template <typename T>
struct IsThreadHeapMemp : std::false_type {};
template <typename Lock>
struct IsThreadHeapMemp<ThreadHeapMemp<Lock>> : std::true_type {};
template <typename T>
struct LockOf;
template <template <typename> class F, typename Lock>
struct LockOf<F<Lock>> {
  using type = Lock;
};

// One of the C++ front-ends.
template <typename Front>
class CppFrontEnd {
 public:
  using Wrapped = Front;
  static constexpr bool kIsCApi = false;
  static constexpr bool kHasCaches = IsCachingMemp<Front>::value;
  static constexpr bool kHasThreadHeaps = IsThreadHeapMemp<Front>::value;
  static constexpr bool kThreadSafe = LockOf<Front>::type::kThreadSafe;
  static constexpr bool kHasUsableSize = true;
  static constexpr bool kHasResetPeak = true;

  // "MempSpinLock", "CachingMempMutex", "ThreadHeapMempNoLock", ...
  static std::string Name() {
    using Lock = typename LockOf<Front>::type;
    const char* front = kHasCaches        ? "CachingMemp"
                        : kHasThreadHeaps ? "ThreadHeapMemp"
                                          : "Memp";
    const char* lock = std::is_same<Lock, sync::SpinLock>::value ? "SpinLock"
                       : std::is_same<Lock, sync::Mutex>::value  ? "Mutex"
                                                                 : "NoLock";
    return std::string(front) + lock;
  }

  // `args` go to the front-end's constructor (e.g. CacheOptions).
  template <typename... Args>
  explicit CppFrontEnd(Args&&... args) : memp_(std::forward<Args>(args)...) {
    memp_.SetErrorHandler(&ReportCounter::OnMempError, &reports_);
  }
  CppFrontEnd(const CppFrontEnd&) = delete;
  CppFrontEnd& operator=(const CppFrontEnd&) = delete;

  static constexpr bool has_caches() { return kHasCaches; }
  static constexpr bool has_thread_heaps() { return kHasThreadHeaps; }
  static constexpr bool ready() { return true; }
  Front& wrapped() { return memp_; }
  ReportCounter& reports() { return reports_; }
  const ReportCounter& reports() const { return reports_; }

  Outcome Init(void* begin, void* end) { return AddRegion(begin, end); }
  Outcome AddRegion(void* begin, void* end) {
    return OutcomeOf(memp_.AddRegion(begin, end));
  }
  Outcome RemoveRegion(void* begin) {
    return OutcomeOf(memp_.RemoveRegion(begin));
  }
  Outcome RetireRegion(void* begin, RegionSet::RetiredHandler handler,
                       void* context) {
    return OutcomeOf(memp_.RetireRegion(begin, handler, context));
  }
  Outcome CancelRetire(void* begin) {
    return OutcomeOf(memp_.CancelRetire(begin));
  }
  // Empties the front-end (every region and block forgotten).
  void Clear() { memp_.Clear(); }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Allocate(size_t n) {
    return memp_.Allocate(n);
  }
  void* AllocateAligned(size_t alignment, size_t n) {
    return memp_.AllocateAligned(alignment, n);
  }
  void* Calloc(size_t count, size_t size) { return memp_.Calloc(count, size); }
  void* Reallocate(void* p, size_t n) { return memp_.Reallocate(p, n); }
  void* AllocateTagged(size_t n, const BlockTag& tag) {
    return memp_.AllocateTagged(1, n, tag);
  }
  void* AllocateAlignedTagged(size_t alignment, size_t n, const BlockTag& tag) {
    return memp_.AllocateTagged(alignment, n, tag);
  }
  void* CallocTagged(size_t count, size_t size, const BlockTag& tag) {
    return memp_.Calloc(count, size, &tag);
  }
  void* ReallocateTagged(void* p, size_t n, const BlockTag& tag) {
    return memp_.ReallocateTagged(p, n, tag);
  }
  bool Free(void* p) { return memp_.Free(p); }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void FreeUnchecked(void* p) { memp_.Free(p); }
  size_t UsableSize(const void* p) { return memp_.UsableSize(p); }

  Outcome FlushThisThread() {
    if constexpr (kHasCaches) memp_.FlushThisThread();
    return Outcome::kOk;
  }
  Outcome DrainCaches() {
    if constexpr (kHasCaches) memp_.DrainAllCaches();
    return Outcome::kOk;
  }

  // flags: 0 or FMEMP_BIND_NO_FALLBACK (an exhausted thread heap fails the
  // request instead of passing it to the shared regions); others are
  // kInvalidArg, as in the C API.
  Outcome BindThisThread(void* begin, uint32_t flags = 0) {
    if constexpr (kHasThreadHeaps) {
      if ((flags & ~FMEMP_BIND_NO_FALLBACK) != 0) return Outcome::kInvalidArg;
      return OutcomeOf(memp_.BindThisThread(
          begin, (flags & FMEMP_BIND_NO_FALLBACK) != 0
                     ? ThreadHeapExhaustion::kFail
                     : ThreadHeapExhaustion::kFallBackToShared));
    }
    (void)begin;
    (void)flags;
    return Outcome::kNotSupported;
  }
  Outcome UnbindThisThread() {
    if constexpr (kHasThreadHeaps) return OutcomeOf(memp_.UnbindThisThread());
    return Outcome::kNotSupported;
  }
  // Applies the frees other threads queued to this thread's heap.
  Outcome SyncThisThread() {
    if constexpr (kHasThreadHeaps) {
      memp_.SyncThisThread();
      return Outcome::kOk;
    }
    return Outcome::kNotSupported;
  }

  Usage Probe() const {
    const MempStats s = memp_.Probe();
    Usage u;
    u.capacity = s.capacity_bytes;
    u.used = s.used_bytes;
    u.free = s.free_bytes;
    u.peak = s.peak_used_bytes;
    u.cached = s.cached_bytes;
    u.live = s.live_blocks;
    u.regions = s.region_count;
    u.failed = s.failed_allocations;
    u.invalid_frees = s.invalid_frees;
    const Budget& budget = memp_.budget();
    u.limit = budget.limit();
    u.soft_limit = budget.soft_limit();
    u.limit_usage = budget.usage();
    u.limit_refusals = s.limit_refusals;
    return u;
  }
  std::vector<RegionUsage> ProbeRegions() {
    std::vector<RegionUsage> out;
    for (const RegionStats& r : memp_.ProbeRegions()) {
      RegionUsage u;
      u.begin = r.begin;
      u.end = r.end;
      u.capacity = r.capacity_bytes;
      u.used = r.used_bytes;
      u.free = r.free_bytes;
      u.peak = r.peak_used_bytes;
      u.largest = r.largest_allocatable;
      u.live = r.live_blocks;
      out.push_back(u);
    }
    return out;
  }
  // Each bound thread's heap (none without thread heaps).
  std::vector<ThreadHeapUsage> ProbeThreadHeaps() {
    std::vector<ThreadHeapUsage> out;
    if constexpr (kHasThreadHeaps) {
      for (const ThreadHeapStats& p : memp_.ProbeThreadHeaps()) {
        ThreadHeapUsage u;
        u.thread_id = p.thread_id;
        u.capacity = p.stats.capacity_bytes;
        u.used = p.stats.used_bytes;
        u.free = p.stats.free_bytes;
        u.live = p.stats.live_blocks;
        u.cached = p.stats.cached_bytes;
        u.failed = p.stats.failed_allocations;
        u.fallbacks = p.fallbacks;
        u.limit = p.limit;
        u.limit_usage = p.budget_usage;
        u.limit_refusals = p.stats.limit_refusals;
        out.push_back(u);
      }
    }
    return out;
  }
  // The calling thread's heap: false when it has none.
  bool ProbeThisThreadHeap(ThreadHeapUsage* out) {
    if constexpr (kHasThreadHeaps) {
      const uint64_t self = thread_heap_internal::CurrentThreadId();
      for (const ThreadHeapUsage& u : ProbeThreadHeaps()) {
        if (u.thread_id == self) {
          *out = u;
          return true;
        }
      }
    }
    (void)out;
    return false;
  }
  // kOk when the integrity check passes; else `why` says what it found.
  Outcome Check(std::string* why = nullptr) {
    const absl::Status status = memp_.Check();
    if (why != nullptr) *why = status.ToString();
    return OutcomeOf(status);
  }
  Outcome List(absl::FunctionRef<void(absl::string_view)> line) {
    memp_.List(line);
    return Outcome::kOk;
  }
  bool ResetPeak() {
    memp_.ResetPeak();
    return true;
  }
  void SetLimit(size_t bytes) { memp_.SetLimit(bytes); }
  // bytes == kNoLimit (or a null callback) removes it.
  void SetSoftLimit(size_t bytes, size_t hysteresis,
                    SoftLimitCallback* callback) {
    memp_.SetSoftLimit(callback == nullptr ? Budget::kNoLimit : bytes,
                       hysteresis,
                       callback == nullptr || bytes == Budget::kNoLimit
                           ? nullptr
                           : &SoftLimitCallback::FromBudget,
                       callback);
  }
  // Both limits (and the thread heaps' own), and charging stops until the
  // next limit.
  void RemoveLimits() { memp_.RemoveLimits(); }
  // A thread heap's own limits (0: the calling thread's); kNotSupported
  // without thread heaps, kInvalidArg when that thread has none.
  Outcome SetThreadHeapLimit(uint64_t thread_id, size_t bytes) {
    if constexpr (kHasThreadHeaps) {
      return ThreadHeapOutcome(memp_.TrySetThreadHeapLimit(thread_id, bytes));
    }
    (void)thread_id;
    (void)bytes;
    return Outcome::kNotSupported;
  }
  Outcome SetThreadHeapSoftLimit(uint64_t thread_id, size_t bytes,
                                 size_t hysteresis,
                                 SoftLimitCallback* callback) {
    if constexpr (kHasThreadHeaps) {
      return ThreadHeapOutcome(memp_.TrySetThreadHeapSoftLimit(
          thread_id, callback == nullptr ? Budget::kNoLimit : bytes, hysteresis,
          callback == nullptr || bytes == Budget::kNoLimit
              ? nullptr
              : &SoftLimitCallback::FromBudget,
          callback));
    }
    (void)thread_id;
    (void)bytes;
    (void)hysteresis;
    (void)callback;
    return Outcome::kNotSupported;
  }
  void SetOutOfMemoryHandler(OutOfMemoryHandler handler, void* context) {
    memp_.SetOutOfMemoryHandler(handler, context);
  }

 private:
  // No thread heap for that thread is the C API's FMEMP_ERR_INVALID_ARG.
  static Outcome ThreadHeapOutcome(ManagementResult result) {
    return result.error() == ManagementError::kNoThreadHeap
               ? Outcome::kInvalidArg
               : OutcomeOf(result.ToStatus());
  }

  Front memp_;
  ReportCounter reports_;
};

// The SDK's C API. The policy is fixed at construction, except that Init
// with a policy (what the fuzzer's lifecycle does) replaces it.
class CApiFrontEnd {
 public:
  static constexpr bool kIsCApi = true;
  static constexpr bool kHasUsableSize = false;  // the C API has none
  static constexpr bool kHasResetPeak = false;

  // With `via_fmemp_init`, Init calls FMempInit (the default policy,
  // `policy` must name it) instead of FMempInitWithPolicy.
  explicit CApiFrontEnd(FMempPolicy policy, bool via_fmemp_init = false)
      : policy_(policy), via_fmemp_init_(via_fmemp_init) {}
  CApiFrontEnd(const CApiFrontEnd&) = delete;
  CApiFrontEnd& operator=(const CApiFrontEnd&) = delete;
  // FMempRemove, then FMempRelease.
  ~CApiFrontEnd();

  FMempPolicy policy() const { return policy_; }
  bool has_caches() const { return policy_ == FMEMP_POLICY_THREAD_CACHE; }
  bool has_thread_heaps() const { return policy_ == FMEMP_POLICY_THREAD_HEAPS; }
  bool ready() const { return memp_.is_ready == FT_COMPONENT_IS_READY; }
  FMemp* memp() { return &memp_; }
  ReportCounter& reports() { return reports_; }
  const ReportCounter& reports() const { return reports_; }

  // FMempInit / FMempInitWithPolicy, then installs the report counter and
  // the out-of-memory handler (on every attempt: the front-end exists after
  // the first, even a failed one). The second form replaces the policy
  // (any int, to test refusals) for this and later Inits.
  Outcome Init(void* begin, void* end);
  Outcome Init(void* begin, void* end, int policy);
  // FMempRemove: not ready until the next Init.
  void Remove() { FMempRemove(&memp_); }

  Outcome AddRegion(void* begin, void* end) {
    return OutcomeOf(FMempAddRegion(&memp_, begin, end));
  }
  Outcome RemoveRegion(void* begin) {
    return OutcomeOf(FMempRemoveRegion(&memp_, begin));
  }
  Outcome RetireRegion(void* begin, FMempRetiredHandler handler,
                       void* context) {
    return OutcomeOf(FMempRetireRegion(&memp_, begin, handler, context));
  }
  Outcome CancelRetire(void* begin) {
    return OutcomeOf(FMempCancelRetire(&memp_, begin));
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void* Allocate(size_t n) {
    return FMempMalloc(&memp_, n);
  }
  void* AllocateAligned(size_t alignment, size_t n) {
    return FMempMallocAlign(&memp_, n, alignment);
  }
  void* Calloc(size_t count, size_t size) {
    return FMempCalloc(&memp_, count, size);
  }
  void* Reallocate(void* p, size_t n) { return FMempRealloc(&memp_, p, n); }
  void* AllocateTagged(size_t n, const BlockTag& tag) {
    return FMempMallocTag(&memp_, n, tag.file, tag.line, tag.message);
  }
  void* AllocateAlignedTagged(size_t alignment, size_t n, const BlockTag& tag) {
    return FMempMallocAlignTag(&memp_, n, alignment, tag.file, tag.line,
                               tag.message);
  }
  void* CallocTagged(size_t count, size_t size, const BlockTag& tag) {
    return FMempCallocTag(&memp_, count, size, tag.file, tag.line, tag.message);
  }
  void* ReallocateTagged(void* p, size_t n, const BlockTag& tag) {
    return FMempReallocTag(&memp_, p, n, tag.file, tag.line, tag.message);
  }
  // FMempFree says nothing: a refused free is one that reported on this
  // thread during the call.
  bool Free(void* p) {
    const uint64_t before = ReportCounter::OnThisThread();
    FMempFree(&memp_, p);
    return ReportCounter::OnThisThread() == before;
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void FreeUnchecked(void* p) {
    FMempFree(&memp_, p);
  }
  size_t UsableSize(const void*) { return 0; }

  // Every policy accepts these (no-ops without caches).
  Outcome FlushThisThread() { return OutcomeOf(FMempFlushThreadCache(&memp_)); }
  Outcome DrainCaches() { return OutcomeOf(FMempDrainThreadCaches(&memp_)); }

  Outcome BindThisThread(void* begin, uint32_t flags = 0) {
    return OutcomeOf(FMempBindThreadWithFlags(&memp_, begin, flags));
  }
  Outcome UnbindThisThread() { return OutcomeOf(FMempUnbindThread(&memp_)); }
  Outcome SyncThisThread() { return OutcomeOf(FMempSyncThreadHeap(&memp_)); }

  // All zero when the pool is not ready.
  Usage Probe() const;
  // Region by region; regions removed meanwhile end the list early.
  std::vector<RegionUsage> ProbeRegions();
  // Thread heap by thread heap; thread heaps unbound meanwhile end the list
  // early.
  std::vector<ThreadHeapUsage> ProbeThreadHeaps();
  Outcome Check(std::string* why = nullptr);
  Outcome List(absl::FunctionRef<void(absl::string_view)> line);
  bool ResetPeak() { return false; }  // not in the C API
  // Installed now when ready, and by every later Init.
  void SetLimit(size_t bytes) { FMempSetLimit(&memp_, bytes); }
  void SetSoftLimit(size_t bytes, size_t hysteresis,
                    SoftLimitCallback* callback) {
    if (callback == nullptr || bytes == kNoLimit) {
      FMempSetSoftLimit(&memp_, FMEMP_LIMIT_NONE, 0, nullptr, nullptr);
    } else {
      FMempSetSoftLimit(&memp_, bytes, hysteresis, &SoftLimitCallback::FromCApi,
                        callback);
    }
  }
  // The C API has no call for it: both limits set to FMEMP_LIMIT_NONE (the
  // budget goes on counting).
  void RemoveLimits() {
    FMempSetLimit(&memp_, FMEMP_LIMIT_NONE);
    FMempSetSoftLimit(&memp_, FMEMP_LIMIT_NONE, 0, nullptr, nullptr);
  }
  Outcome SetThreadHeapLimit(uint64_t thread_id, size_t bytes) {
    return OutcomeOf(FMempSetThreadHeapLimit(&memp_, thread_id, bytes));
  }
  Outcome SetThreadHeapSoftLimit(uint64_t thread_id, size_t bytes,
                                 size_t hysteresis,
                                 SoftLimitCallback* callback) {
    if (callback == nullptr || bytes == kNoLimit) {
      return OutcomeOf(FMempSetThreadHeapSoftLimit(
          &memp_, thread_id, FMEMP_LIMIT_NONE, 0, nullptr, nullptr));
    }
    return OutcomeOf(
        FMempSetThreadHeapSoftLimit(&memp_, thread_id, bytes, hysteresis,
                                    &SoftLimitCallback::FromCApi, callback));
  }
  bool ProbeThisThreadHeap(ThreadHeapUsage* out);
  void SetOutOfMemoryHandler(OutOfMemoryHandler handler, void* context);

 private:
  static int OnOutOfMemory(void* user, fsize_t size, fsize_t align);
  void InstallHandlers();

  FMempPolicy policy_;
  bool via_fmemp_init_;
  FMemp memp_ = {};
  ReportCounter reports_;
  OutOfMemoryHandler oom_ = nullptr;
  void* oom_context_ = nullptr;
};

// The C API with one policy, named "CApi" + the policy ("CApiThreadHeaps").
template <FMempPolicy kPolicy>
class CApiPolicy : public CApiFrontEnd {
 public:
  static constexpr bool kHasCaches = kPolicy == FMEMP_POLICY_THREAD_CACHE;
  static constexpr bool kHasThreadHeaps = kPolicy == FMEMP_POLICY_THREAD_HEAPS;
  static constexpr bool kThreadSafe = kPolicy != FMEMP_POLICY_SINGLE_THREAD;

  static std::string Name() {
    switch (kPolicy) {
      case FMEMP_POLICY_MUTEX:
        return "CApiMutex";
      case FMEMP_POLICY_SPINLOCK:
        return "CApiSpinLock";
      case FMEMP_POLICY_SINGLE_THREAD:
        return "CApiSingleThread";
      case FMEMP_POLICY_THREAD_CACHE:
        return "CApiThreadCache";
      case FMEMP_POLICY_THREAD_HEAPS:
        return "CApiThreadHeaps";
    }
    return "CApiUnknown";
  }

  CApiPolicy() : CApiFrontEnd(kPolicy) {}
};

// The C API as most users start it: FMempInit, whatever policy that picks
// (FMEMP_POLICY_THREAD_CACHE today; front_end_test checks that).
class CApiDefault : public CApiFrontEnd {
 public:
  static constexpr FMempPolicy kPolicy = FMEMP_POLICY_THREAD_CACHE;
  static constexpr bool kHasCaches = true;
  static constexpr bool kHasThreadHeaps = false;
  static constexpr bool kThreadSafe = true;

  static std::string Name() { return "CApiDefault"; }
  CApiDefault() : CApiFrontEnd(kPolicy, /*via_fmemp_init=*/true) {}
};

}  // namespace fmemp::testkit

#endif  // FMEMP_TESTING_FRONT_END_H_
