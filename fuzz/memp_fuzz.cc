// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/memp_fuzz.cc
//
// libFuzzer target for the fmemp front-end over several regions: the C++
// front-ends fmemp::Memp<fmemp::sync::NoLock>, fmemp::CachingMemp (per-thread
// caches) and fmemp::PoolingMemp (per-thread pools), and the SDK's C API
// (fmemp/fmemp.h) with each of its policies.
//
// The input is a program. Its first byte picks the front-end (one of the
// three C++ ones, or the C API with the mutex, spin-lock, single-thread,
// thread-cache or thread-pools policy); the second picks
// which of four buffers (264 B to 24 KiB, some with odd sizes) start as
// whole regions (with the C API, the first through FMempInit). Then each
// operation is an opcode byte and its arguments, read with ByteReader, until
// the input ends (at most kMaxOps operations):
//
//   add region     [begin, end) inside one buffer: whole, a sub-range next to
//                  other regions, reversed, empty, tiny, unaligned or NULL;
//                  the result must be the documented one
//   remove region  by its begin, by a begin that is off by one, NULL or a
//                  foreign address; refused while live blocks lie in it
//   malloc, calloc (including count * size overflow), aligned malloc (any
//   alignment, powers of two or not), realloc (of live blocks or NULL, to
//   any size), free, and their tagged variants
//   bad free /     a freed pointer, an interior pointer of a live block, a
//   bad realloc    block freed twice, a pointer outside every region
//   list, probe    FMemListAllTo / Memp::List into a sink that counts lines,
//                  per-region probes, ResetPeak
//   lifecycle      C API: FMempRemove, re-init (with another policy), init
//                  of a ready pool, a bad policy, calls on a NULL FMemp; C++:
//                  Clear()
//   caches         flush this thread's cache, drain every cache (a no-op for
//                  front-ends without caches)
//   pools          bind a region (a region's begin, an address next to it,
//                  a foreign one; with or without fallback; bad flags) to
//                  this thread, unbind it; refused where there are no pools
//
// After every operation the target checks: the integrity check (Memp::Check
// / FMempCheck) passes, or reports "not initialised" exactly when the pool
// is not ready; every live block lies inside one region, is aligned, holds
// its fill pattern and overlaps no other block; the probes agree with the
// model and with each other (used <= total, used + free == total, max_used
// >= every used seen, live blocks, region count, failed allocations, misuse
// reports == calls of the error handler, and the 32-bit FMemProbe equals
// the 64-bit probe). Every misuse must be reported exactly once, as the
// expected kind, through the installed handler (so stderr stays quiet).
//
// Misuse probes only point into memory this target owns; regions are wiped
// when they are removed, and freed pointers into them are forgotten, so a
// probe never reads a word the allocator could mistake for a header (see
// fuzz/live_blocks.h).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/region_set.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_pool.h"
#include "fuzz/byte_reader.h"
#include "fuzz/live_blocks.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp::fuzz {
namespace {

constexpr size_t kMaxOps = 400;

// --- Memory the target owns ---

alignas(64) unsigned char g_region0[264];
alignas(64) unsigned char g_region1[2053];
alignas(64) unsigned char g_region2[8192];
alignas(64) unsigned char g_region3[24579];
// Never a region and never written: foreign-pointer probes point into it.
alignas(64) unsigned char g_foreign[512];

struct Buffer {
  unsigned char* base;
  size_t size;
};

const Buffer kBuffers[] = {
    {g_region0, sizeof(g_region0)},
    {g_region1, sizeof(g_region1)},
    {g_region2, sizeof(g_region2)},
    {g_region3, sizeof(g_region3)},
};
constexpr size_t kBufferCount = sizeof(kBuffers) / sizeof(kBuffers[0]);

void WipeBuffers() {
  for (const Buffer& b : kBuffers) std::memset(b.base, 0, b.size);
}

bool StaticMemoryLooksSafe() {
  for (const Buffer& b : kBuffers) {
    if (CouldLookTagged(b.base) || CouldLookTagged(b.base + b.size)) {
      return false;
    }
  }
  return !CouldLookTagged(g_foreign);
}

// --- What both front-ends report, in one vocabulary ---

enum class Code {
  kOk,
  kInvalidBuffer,  // InvalidArgument / FMEMP_ERR_INVALID_BUF
  kOverlap,        // AlreadyExists / FMEMP_ERR_REGION_OVERLAP
  kNotFound,       // NotFound / FMEMP_ERR_REGION_NOT_FOUND
  kBusy,           // FailedPrecondition / FMEMP_ERR_REGION_BUSY
  kNotInit,        // FMEMP_ERR_NOT_INIT
  kAlreadyInit,    // FMEMP_ERR_ALREADY_INIT
  kInvalidArg,     // FMEMP_ERR_INVALID_ARG
  kNotSupported,   // FMEMP_ERR_NOT_SUPPORTED
  kOther,
};

Code FromStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Code::kOk;
    case absl::StatusCode::kInvalidArgument:
      return Code::kInvalidBuffer;
    case absl::StatusCode::kAlreadyExists:
      return Code::kOverlap;
    case absl::StatusCode::kNotFound:
      return Code::kNotFound;
    case absl::StatusCode::kFailedPrecondition:
      return Code::kBusy;
    default:
      return Code::kOther;
  }
}

Code FromFError(FError error) {
  switch (error) {
    case FMEMP_SUCCESS:
      return Code::kOk;
    case FMEMP_ERR_INVALID_BUF:
      return Code::kInvalidBuffer;
    case FMEMP_ERR_REGION_OVERLAP:
      return Code::kOverlap;
    case FMEMP_ERR_REGION_NOT_FOUND:
      return Code::kNotFound;
    case FMEMP_ERR_REGION_BUSY:
      return Code::kBusy;
    case FMEMP_ERR_NOT_INIT:
      return Code::kNotInit;
    case FMEMP_ERR_ALREADY_INIT:
      return Code::kAlreadyInit;
    case FMEMP_ERR_INVALID_ARG:
      return Code::kInvalidArg;
    case FMEMP_ERR_NOT_SUPPORTED:
      return Code::kNotSupported;
    default:
      return Code::kOther;
  }
}

enum class Misuse { kNone, kForeign, kInvalid, kDouble, kCorrupt };

const char* MisuseName(Misuse m) {
  switch (m) {
    case Misuse::kNone:
      return "none";
    case Misuse::kForeign:
      return "foreign pointer";
    case Misuse::kInvalid:
      return "invalid free";
    case Misuse::kDouble:
      return "double free";
    case Misuse::kCorrupt:
      return "corrupt heap";
  }
  return "?";
}

// Counts the misuse reports of either front-end.
struct Reports {
  uint64_t count = 0;
  Misuse last = Misuse::kNone;

  void Note(Misuse m) {
    ++count;
    last = m;
  }
  static void CppHandler(void* context, MempError error, const void*) {
    Misuse m = Misuse::kCorrupt;
    if (error == MempError::kForeignPointer) m = Misuse::kForeign;
    if (error == MempError::kInvalidFree) m = Misuse::kInvalid;
    if (error == MempError::kDoubleFree) m = Misuse::kDouble;
    static_cast<Reports*>(context)->Note(m);
  }
  static void CHandler(void* user, int kind, const void*) {
    Misuse m = Misuse::kCorrupt;
    if (kind == FMEMP_MISUSE_FOREIGN_POINTER) m = Misuse::kForeign;
    if (kind == FMEMP_MISUSE_INVALID_FREE) m = Misuse::kInvalid;
    if (kind == FMEMP_MISUSE_DOUBLE_FREE) m = Misuse::kDouble;
    static_cast<Reports*>(user)->Note(m);
  }
};

struct Usage {
  uint64_t total = 0;
  uint64_t used = 0;
  uint64_t free_bytes = 0;
  uint64_t max_used = 0;
  uint64_t live_blocks = 0;
  uint64_t regions = 0;
  uint64_t failed = 0;
  uint64_t invalid = 0;
  uint64_t cached = 0;  // in per-thread caches: neither used nor free
};

struct RegionUsage {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  uint64_t total = 0;
  uint64_t used = 0;
  uint64_t free_bytes = 0;
  uint64_t max_used = 0;
  uint64_t largest = 0;
  uint64_t live_blocks = 0;
};

// Counts the lines of a listing, less the lines a per-thread pool's own
// section adds (its heading, totals and check), so every front-end's count
// is regions + blocks + 2.
struct LineCounter {
  size_t lines = 0;
  size_t pool_extra = 0;
  void Add(absl::string_view line) {
    ++lines;
    if (absl::StartsWith(line, "pool of thread")) pool_extra += 3;
  }
  size_t count() const { return lines - pool_extra; }
};

void CountLine(void* user, const char* line) {
  static_cast<LineCounter*>(user)->Add(line);
}

const BlockTag& FuzzTag() {
  static const BlockTag tag = {__FILE__, __LINE__, "fuzz", 1};
  return tag;
}

// --- The two front-ends behind one interface ---

// How a C++ front-end's extras are reached; the plain Memp has none.
template <typename Front>
struct Extras {
  static constexpr bool kCaches = false;
  static constexpr bool kPools = false;
};
template <>
struct Extras<CachingMemp<sync::SpinLock>> {
  static constexpr bool kCaches = true;
  static constexpr bool kPools = false;
};
template <>
struct Extras<PoolingMemp<sync::SpinLock>> {
  static constexpr bool kCaches = false;
  static constexpr bool kPools = true;
};

template <typename Front>
class CppFrontEnd {
 public:
  static constexpr bool kIsCApi = false;
  static constexpr bool kHasPools = Extras<Front>::kPools;

  explicit CppFrontEnd(Reports* reports) {
    memp_.SetErrorHandler(&Reports::CppHandler, reports);
  }

  bool ready() const { return true; }
  Code AddRegion(void* begin, void* end) {
    return FromStatus(memp_.AddRegion(begin, end));
  }
  Code RemoveRegion(void* begin) {
    return FromStatus(memp_.RemoveRegion(begin));
  }
  void* Malloc(size_t n, bool tagged) {
    return tagged ? memp_.AllocateTagged(1, n, FuzzTag()) : memp_.Allocate(n);
  }
  void* Calloc(size_t count, size_t size, bool tagged) {
    return memp_.Calloc(count, size, tagged ? &FuzzTag() : nullptr);
  }
  void* MallocAlign(size_t alignment, size_t n, bool tagged) {
    return tagged ? memp_.AllocateTagged(alignment, n, FuzzTag())
                  : memp_.AllocateAligned(alignment, n);
  }
  void* Realloc(void* p, size_t n, bool tagged) {
    return tagged ? memp_.ReallocateTagged(p, n, FuzzTag())
                  : memp_.Reallocate(p, n);
  }
  // 1: freed (or nullptr), 0: refused; -1 where the API does not say.
  int Free(void* p) { return memp_.Free(p) ? 1 : 0; }
  // Usable bytes of a live block; 0 where the API cannot tell.
  size_t Usable(const void* p) { return memp_.UsableSize(p); }

  // Returns this thread's cached blocks (all threads' with `all`).
  void FlushCaches(bool all) {
    if constexpr (Extras<Front>::kCaches) {
      all ? memp_.DrainAllCaches() : memp_.FlushThisThread();
    }
  }
  // flags: FMEMP_BIND_NO_FALLBACK or 0 (the C++ API takes no other).
  Code Bind(void* begin, u32 flags) {
    if constexpr (Extras<Front>::kPools) {
      return FromStatus(
          memp_.BindThisThread(begin, (flags & FMEMP_BIND_NO_FALLBACK) != 0
                                          ? PoolExhaustion::kFail
                                          : PoolExhaustion::kFallBackToShared));
    }
    return Code::kNotSupported;
  }
  Code Unbind() {
    if constexpr (Extras<Front>::kPools) {
      return FromStatus(memp_.UnbindThisThread());
    }
    return Code::kNotSupported;
  }

  Usage Probe() {
    const MempStats s = memp_.Probe();
    Usage u;
    u.total = s.capacity_bytes;
    u.used = s.used_bytes;
    u.free_bytes = s.free_bytes;
    u.max_used = s.peak_used_bytes;
    u.live_blocks = s.live_blocks;
    u.regions = s.region_count;
    u.failed = s.failed_allocations;
    u.invalid = s.invalid_frees;
    u.cached = s.cached_bytes;
    return u;
  }
  std::vector<RegionUsage> Regions() {
    std::vector<RegionUsage> out;
    for (const RegionStats& r : memp_.ProbeRegions()) {
      RegionUsage u;
      u.begin = Addr(r.begin);
      u.end = Addr(r.end);
      u.total = r.capacity_bytes;
      u.used = r.used_bytes;
      u.free_bytes = r.free_bytes;
      u.max_used = r.peak_used_bytes;
      u.largest = r.largest_allocatable;
      u.live_blocks = r.live_blocks;
      out.push_back(u);
    }
    return out;
  }
  Code Check(std::string* why) {
    const absl::Status status = memp_.Check();
    *why = status.ToString();
    return status.ok() ? Code::kOk : Code::kOther;
  }
  Code List(size_t* lines) {
    LineCounter counter;
    memp_.List([&counter](absl::string_view line) { counter.Add(line); });
    *lines = counter.count();
    return Code::kOk;
  }
  bool ResetPeak() {
    memp_.ResetPeak();
    return true;
  }
  void Clear() { memp_.Clear(); }

 private:
  Front memp_;
};

class CFrontEnd {
 public:
  static constexpr bool kIsCApi = true;
  static constexpr bool kHasPools = true;  // when the policy has them

  explicit CFrontEnd(Reports* reports) : reports_(reports) {}
  CFrontEnd(const CFrontEnd&) = delete;
  CFrontEnd& operator=(const CFrontEnd&) = delete;
  ~CFrontEnd() {
    FMempRelease(&memp_);
    FUZZ_CHECK(memp_.priv == nullptr && memp_.is_ready == 0,
               "FMempRelease left the FMemp in use");
  }

  FMemp* memp() { return &memp_; }
  bool ready() const { return memp_.is_ready == FT_COMPONENT_IS_READY; }

  // FMempInitWithPolicy, then (re)installs the counting handler: the
  // front-end exists after the first attempt, and keeps the handler for
  // every later init.
  Code Init(void* begin, void* end, int policy) {
    const FError error = FMempInitWithPolicy(&memp_, begin, end,
                                             static_cast<FMempPolicy>(policy));
    FMempSetErrorHandler(&memp_, &Reports::CHandler, reports_);
    return FromFError(error);
  }
  void Remove() { FMempRemove(&memp_); }

  Code AddRegion(void* begin, void* end) {
    return FromFError(FMempAddRegion(&memp_, begin, end));
  }
  Code RemoveRegion(void* begin) {
    return FromFError(FMempRemoveRegion(&memp_, begin));
  }
  void* Malloc(size_t n, bool tagged) {
    return tagged ? FMempMallocTag(&memp_, n, __FILE__, __LINE__, "fuzz")
                  : FMempMalloc(&memp_, n);
  }
  void* Calloc(size_t count, size_t size, bool tagged) {
    return tagged
               ? FMempCallocTag(&memp_, count, size, __FILE__, __LINE__, "fuzz")
               : FMempCalloc(&memp_, count, size);
  }
  void* MallocAlign(size_t alignment, size_t n, bool tagged) {
    return tagged ? FMempMallocAlignTag(&memp_, n, alignment, __FILE__,
                                        __LINE__, "fuzz")
                  : FMempMallocAlign(&memp_, n, alignment);
  }
  void* Realloc(void* p, size_t n, bool tagged) {
    return tagged ? FMempReallocTag(&memp_, p, n, __FILE__, __LINE__, "fuzz")
                  : FMempRealloc(&memp_, p, n);
  }
  int Free(void* p) {
    FMempFree(&memp_, p);
    return -1;
  }
  size_t Usable(const void*) const { return 0; }

  void FlushCaches(bool all) {
    const FError error =
        all ? FMempDrainThreadCaches(&memp_) : FMempFlushThreadCache(&memp_);
    FUZZ_CHECK(error == (ready() ? FMEMP_SUCCESS : FMEMP_ERR_NOT_INIT),
               "flushing caches returned %#x", error);
  }
  Code Bind(void* begin, u32 flags) {
    return FromFError(FMempBindThreadWithFlags(&memp_, begin, flags));
  }
  Code Unbind() { return FromFError(FMempUnbindThread(&memp_)); }

  Usage Probe() {
    FMempUsage u64 = {};
    const FError error = FMempProbe64(&memp_, &u64);
    u32 total = 1, used = 1, max_used = 1;
    FMemProbe(&memp_, &total, &used, &max_used);
    FMemProbe(&memp_, nullptr, nullptr, nullptr);
    Usage u;
    if (error != FMEMP_SUCCESS) {
      FUZZ_CHECK(!ready() && error == FMEMP_ERR_NOT_INIT,
                 "FMempProbe64 returned %#x", error);
      FUZZ_CHECK(total == 0 && used == 0 && max_used == 0,
                 "FMemProbe of a pool that is not ready: %u %u %u", total, used,
                 max_used);
      return u;
    }
    FUZZ_CHECK(total == Saturate(u64.total) && used == Saturate(u64.used) &&
                   max_used == Saturate(u64.max_used),
               "FMemProbe (%u, %u, %u) disagrees with FMempProbe64", total,
               used, max_used);
    FUZZ_CHECK(used <= total && max_used >= used,
               "FMemProbe: used %u, total %u, max_used %u", used, total,
               max_used);
    u.total = u64.total;
    u.used = u64.used;
    u.free_bytes = u64.free_bytes;
    u.max_used = u64.max_used;
    u.live_blocks = u64.live_blocks;
    u.regions = u64.regions;
    u.failed = u64.failed_allocations;
    u.invalid = u64.invalid_frees;
    u.cached = u64.cached_bytes;
    return u;
  }
  std::vector<RegionUsage> Regions() {
    std::vector<RegionUsage> out;
    const u32 count = FMempRegionCount(&memp_);
    for (u32 i = 0; i < count; ++i) {
      FMempRegionUsage r = {};
      const FError error = FMempProbeRegion(&memp_, i, &r);
      FUZZ_CHECK(error == FMEMP_SUCCESS, "FMempProbeRegion(%u) returned %#x", i,
                 error);
      RegionUsage u;
      u.begin = Addr(r.begin);
      u.end = Addr(r.end);
      u.total = r.total;
      u.used = r.used;
      u.free_bytes = r.free_bytes;
      u.max_used = r.max_used;
      u.largest = r.largest_free;
      u.live_blocks = r.live_blocks;
      out.push_back(u);
    }
    FMempRegionUsage r = {};
    FUZZ_CHECK(FMempProbeRegion(&memp_, count, &r) ==
                   (ready() ? FMEMP_ERR_INVALID_ARG : FMEMP_ERR_NOT_INIT),
               "FMempProbeRegion past the last region");
    FUZZ_CHECK(FMempProbeRegion(&memp_, 0, nullptr) == FMEMP_ERR_INVALID_ARG,
               "FMempProbeRegion with a NULL output");
    return out;
  }
  Code Check(std::string* why) {
    const FError error = FMempCheck(&memp_);
    *why = "FMempCheck returned " + std::to_string(error);
    return FromFError(error);
  }
  Code List(size_t* lines) {
    LineCounter counter;
    const FError error = FMemListAllTo(&memp_, &CountLine, &counter);
    *lines = counter.count();
    return FromFError(error);
  }
  bool ResetPeak() { return false; }  // not in the C API

 private:
  static u32 Saturate(uint64_t v) {
    return v > UINT32_MAX ? UINT32_MAX : static_cast<u32>(v);
  }

  Reports* reports_;
  FMemp memp_ = {};
};

// --- The program ---

struct RegionModel {
  uintptr_t begin;  // as passed
  uintptr_t end;
};

enum class Op {
  kAddRegion,
  kRemoveRegion,
  kMalloc,
  kCalloc,
  kMemalign,
  kRealloc,
  kFree,
  kBadFree,
  kBadRealloc,
  kList,
  kProbe,
  kLifecycle,
  kCaches,
  kPools,
};

constexpr Op kOps[] = {
    Op::kMalloc,    Op::kMalloc,       Op::kMalloc,    Op::kCalloc,
    Op::kMemalign,  Op::kMemalign,     Op::kRealloc,   Op::kRealloc,
    Op::kRealloc,   Op::kFree,         Op::kFree,      Op::kFree,
    Op::kAddRegion, Op::kRemoveRegion, Op::kBadFree,   Op::kBadRealloc,
    Op::kList,      Op::kProbe,        Op::kLifecycle, Op::kCaches,
    Op::kPools,
};
constexpr size_t kOpCount = sizeof(kOps) / sizeof(kOps[0]);

template <typename FrontEnd>
class MempFuzzer {
 public:
  MempFuzzer(ByteReader* in, bool stale_probes)
      : in_(*in), stale_probes_(stale_probes), front_(&reports_) {}
  MempFuzzer(const MempFuzzer&) = delete;
  MempFuzzer& operator=(const MempFuzzer&) = delete;
  ~MempFuzzer() {
    if constexpr (FrontEnd::kIsCApi) {
      front_.Remove();
    } else {
      front_.Clear();
    }
    WipeBuffers();
  }

  void Run(int policy) {
    policy_ = policy;
    const uint8_t initial = in_.Byte();
    bool first = true;
    for (size_t i = 0; i < kBufferCount; ++i) {
      if (((initial >> i) & 1) == 0) continue;
      const Buffer& b = kBuffers[i];
      if (FrontEnd::kIsCApi && first) {
        Init(b.base, b.base + b.size, policy_);
      } else {
        AddRegion(b.base, b.base + b.size);
      }
      first = false;
    }
    CheckInvariants("initial regions");
    for (size_t n = 0; n < kMaxOps && !in_.empty(); ++n) {
      const Op op = kOps[in_.Byte() % kOpCount];
      const char* name = Step(op);
      CheckInvariants(name);
    }
    while (!blocks_.empty()) {
      void* const p = blocks_.Pick(0);
      blocks_.Remove(p);
      const int freed = front_.Free(p);
      FUZZ_CHECK(freed != 0, "final free of %p refused", p);
    }
    CheckInvariants("final frees");
    const Usage u = front_.Probe();
    FUZZ_CHECK(u.used == 0 && u.live_blocks == 0,
               "pool not empty after every block was freed");
  }

 private:
  const char* Step(Op op) {
    switch (op) {
      case Op::kAddRegion: {
        void* begin = nullptr;
        void* end = nullptr;
        PickRange(&begin, &end);
        AddRegion(begin, end);
        return "add region";
      }
      case Op::kRemoveRegion:
        RemoveRegion();
        return "remove region";
      case Op::kMalloc: {
        const bool tagged = in_.Byte() % 4 == 0;
        Malloc(in_.Size(), tagged);
        return "malloc";
      }
      case Op::kCalloc:
        Calloc();
        return "calloc";
      case Op::kMemalign: {
        const bool tagged = in_.Byte() % 4 == 0;
        const size_t alignment = in_.Alignment();
        Memalign(alignment, in_.Size(), tagged);
        return "aligned malloc";
      }
      case Op::kRealloc:
        Realloc();
        return "realloc";
      case Op::kFree:
        Free();
        return "free";
      case Op::kBadFree:
        BadFree(/*realloc=*/false);
        return "bad free";
      case Op::kBadRealloc:
        BadFree(/*realloc=*/true);
        return "bad realloc";
      case Op::kList:
        List();
        return "list";
      case Op::kProbe:
        Probe();
        return "probe";
      case Op::kLifecycle:
        Lifecycle();
        return "lifecycle";
      case Op::kCaches:
        front_.FlushCaches(in_.Bool());
        return "flush caches";
      case Op::kPools:
        Pools();
        return "pools";
    }
    return "?";
  }

  // --- Regions ---

  // Chooses [begin, end) in or one past one buffer, or NULL bounds.
  void PickRange(void** begin, void** end) {
    const Buffer& b = kBuffers[in_.Byte() % kBufferCount];
    const uint8_t how_begin = in_.Byte() % 8;
    const uint8_t how_end = in_.Byte() % 8;
    unsigned char* lo = b.base + in_.Below(b.size + 1);
    if (how_begin == 0) lo = nullptr;
    if (how_begin == 1 || how_begin == 2) lo = b.base;
    unsigned char* hi = b.base + in_.Below(b.size + 1);
    if (how_end == 0) hi = nullptr;
    if (how_end == 1 || how_end == 2) hi = b.base + b.size;
    if (how_end == 3) {  // a short range after begin (or before, reversed)
      const size_t base_off =
          lo != nullptr ? static_cast<size_t>(lo - b.base) : 0;
      const size_t len = in_.Byte();
      hi = b.base + std::min(b.size, base_off + len);
    }
    *begin = lo;
    *end = hi;
  }

  Code PredictAdd(void* begin, void* end) const {
    if (begin == nullptr || end == nullptr) return Code::kInvalidBuffer;
    const uintptr_t lo = Addr(begin);
    const uintptr_t hi = Addr(end);
    if (hi <= lo) return Code::kInvalidBuffer;
    for (const RegionModel& r : regions_) {
      if (lo < r.end && r.begin < hi) return Code::kOverlap;
    }
    const uintptr_t a = tlsf::AlignUp(lo, tlsf::kAlignment);
    const uintptr_t z = hi & ~uintptr_t{tlsf::kAlignment - 1};
    if (z < a || z - a < tlsf::Heap::kMinPoolBytes) {
      return Code::kInvalidBuffer;
    }
    return Code::kOk;
  }

  void AddRegion(void* begin, void* end) {
    const Code want = front_.ready() ? PredictAdd(begin, end) : Code::kNotInit;
    const Code got = front_.AddRegion(begin, end);
    FUZZ_CHECK(got == want, "AddRegion(%p, %p) returned %d, expected %d", begin,
               end, static_cast<int>(got), static_cast<int>(want));
    if (got == Code::kOk) regions_.push_back({Addr(begin), Addr(end)});
  }

  // FMempInitWithPolicy. While the pool is not ready the model is empty
  // (FMempRemove reset it, and calls on it change nothing), which is also
  // what every init attempt starts from.
  void Init(void* begin, void* end, int policy) {
    const bool valid_policy =
        policy >= FMEMP_POLICY_MUTEX && policy <= FMEMP_POLICY_THREAD_POOLS;
    const bool was_ready = front_.ready();
    Code want = Code::kAlreadyInit;
    if (!valid_policy) {
      want = Code::kInvalidArg;
    } else if (!was_ready) {
      FUZZ_CHECK(
          regions_.empty() && blocks_.empty() && failed_ == 0 && invalid_ == 0,
          "the model of a pool that is not ready is not empty");
      want = PredictAdd(begin, end);
    }
    if constexpr (FrontEnd::kIsCApi) {
      const Code got = front_.Init(begin, end, policy);
      FUZZ_CHECK(got == want,
                 "FMempInit(%p, %p, policy %d) returned %d, expected %d", begin,
                 end, policy, static_cast<int>(got), static_cast<int>(want));
      if (!was_ready && got == Code::kOk) {
        regions_.push_back({Addr(begin), Addr(end)});
        policy_ = policy;
      }
      FUZZ_CHECK(front_.ready() == (was_ready || got == Code::kOk),
                 "FMempInit returned %d, but is_ready is %d",
                 static_cast<int>(got), front_.ready());
    }
  }

  size_t LiveBlocksIn(const RegionModel& r) const {
    size_t n = 0;
    for (const auto& [p, block] : blocks_.blocks()) {
      if (p >= r.begin && p < r.end) ++n;
    }
    return n;
  }

  void RemoveRegion() {
    const uint8_t how = in_.Byte() % 8;
    void* target = g_foreign + 64;
    if (how == 0) target = nullptr;
    if (how >= 2 && !regions_.empty()) {
      const RegionModel& r = regions_[in_.Below(regions_.size())];
      target = reinterpret_cast<void*>(r.begin + (how == 2 ? 1 : 0));
    }
    Code want = front_.ready() ? Code::kNotFound : Code::kNotInit;
    auto it = std::find_if(
        regions_.begin(), regions_.end(),
        [target](const RegionModel& r) { return r.begin == Addr(target); });
    if (front_.ready() && it != regions_.end()) {
      want = LiveBlocksIn(*it) == 0 ? Code::kOk : Code::kBusy;
    }
    const Code got = front_.RemoveRegion(target);
    FUZZ_CHECK(got == want, "RemoveRegion(%p) returned %d, expected %d", target,
               static_cast<int>(got), static_cast<int>(want));
    if (got == Code::kOk) {
      // The memory is ours again: scribble zeros over it and forget freed
      // pointers into it, so no later probe reads what the heap left there.
      std::memset(reinterpret_cast<void*>(it->begin), 0, it->end - it->begin);
      blocks_.ForgetStale(it->begin, it->end);
      regions_.erase(it);
    }
  }

  // --- Allocation ---

  // Records a fresh block of `requested` bytes.
  void Accept(void* p, size_t requested, size_t alignment) {
    size_t size = requested;
    if (!FrontEnd::kIsCApi) {
      size = front_.Usable(p);
      FUZZ_CHECK(size >= requested, "block %p has %zu usable bytes for %zu", p,
                 size, requested);
    }
    blocks_.Add(p, size, std::max(alignment, tlsf::kAlignment));
  }

  // An allocation result: nullptr is one more failed allocation when the
  // pool is ready, and must be nullptr when it is not.
  bool Allocated(void* p, const char* what) {
    if (!front_.ready()) {
      FUZZ_CHECK(p == nullptr, "%s on a pool that is not ready returned %p",
                 what, p);
      return false;
    }
    if (p == nullptr) ++failed_;
    return p != nullptr;
  }

  void Malloc(size_t n, bool tagged) {
    void* const p = front_.Malloc(n, tagged);
    if (Allocated(p, "malloc")) Accept(p, n, tlsf::kAlignment);
  }

  void Calloc() {
    const bool tagged = in_.Byte() % 4 == 0;
    size_t count = in_.Size();
    size_t size = in_.Size();
    if (in_.Byte() % 4 == 0) {  // often a product that overflows
      count = std::numeric_limits<size_t>::max() / std::max<size_t>(size, 1) +
              1 + in_.Byte();
    }
    size_t bytes = 0;
    const bool overflows = __builtin_mul_overflow(count, size, &bytes);
    void* const p = front_.Calloc(count, size, tagged);
    if (!Allocated(p, "calloc")) return;
    FUZZ_CHECK(!overflows, "calloc(%zu, %zu) overflows but returned %p", count,
               size, p);
    const unsigned char* const c = static_cast<const unsigned char*>(p);
    FUZZ_CHECK(
        bytes == 0 || (c[0] == 0 && std::memcmp(c, c + 1, bytes - 1) == 0),
        "calloc(%zu, %zu) = %p is not zeroed", count, size, p);
    Accept(p, bytes, tlsf::kAlignment);
  }

  void Memalign(size_t alignment, size_t n, bool tagged) {
    void* const p = front_.MallocAlign(alignment, n, tagged);
    if (!Allocated(p, "aligned malloc")) return;
    FUZZ_CHECK(
        tlsf::IsPowerOfTwo(alignment) && alignment <= tlsf::Heap::kMaxAlignment,
        "aligned malloc with alignment %zu returned %p", alignment, p);
    Accept(p, n, alignment);
  }

  void Realloc() {
    const uint8_t choice = in_.Byte();
    const bool tagged = choice % 4 == 1;
    void* const p =
        choice % 8 == 0 ? nullptr : blocks_.Pick(in_.Below(blocks_.count()));
    const size_t n = in_.Size();
    if (p == nullptr) {
      void* const q = front_.Realloc(nullptr, n, tagged);
      if (Allocated(q, "realloc(NULL)")) Accept(q, n, tlsf::kAlignment);
      return;
    }
    const LiveBlocks::Block old = blocks_.Get(p);
    blocks_.Verify(p);
    if (n == 0) {
      blocks_.Remove(p);
      void* const q = front_.Realloc(p, 0, tagged);
      FUZZ_CHECK(q == nullptr, "realloc(%p, 0) returned %p", p, q);
      return;
    }
    void* const q = front_.Realloc(p, n, tagged);
    if (q == nullptr) {
      ++failed_;
      if (!FrontEnd::kIsCApi) {
        FUZZ_CHECK(front_.Usable(p) == old.size,
                   "a failed realloc(%p, %zu) changed the block", p, n);
      }
      return;
    }
    size_t size = n;
    if (!FrontEnd::kIsCApi) {
      size = front_.Usable(q);
      FUZZ_CHECK(size >= n, "realloc(%p, %zu) = %p has %zu usable bytes", p, n,
                 q, size);
      const size_t want = tlsf::SpanForRequest(n);
      FUZZ_CHECK(want == 0 || want > old.size + tlsf::kBlockOverhead || q == p,
                 "shrinking realloc(%p, %zu) moved to %p", p, n, q);
    }
    blocks_.Moved(p, q, size, n);
  }

  void Free() {
    void* const p = blocks_.Pick(in_.Below(blocks_.count()));
    if (p == nullptr) {
      FUZZ_CHECK(front_.Free(nullptr) != 0, "free(NULL) refused");
      return;
    }
    blocks_.Remove(p);
    const int freed = front_.Free(p);
    FUZZ_CHECK(freed != 0, "free(%p) of a live block refused", p);
  }

  // Frees (or reallocates) `q`, which is not a live block, and checks that
  // it is reported once as `want` (kInvalid or kDouble when `either`).
  void ExpectRejected(void* q, bool realloc, Misuse want, bool either) {
    FUZZ_CHECK(!blocks_.IsLive(q), "misuse probe %p is a live block", q);
    if (!FrontEnd::kIsCApi) {
      FUZZ_CHECK(front_.Usable(q) == 0, "UsableSize(%p) of a non-block", q);
    }
    const uint64_t before = reports_.count;
    if (realloc) {
      const bool tagged = in_.Byte() % 4 == 0;
      void* const r = front_.Realloc(q, in_.Size(), tagged);
      FUZZ_CHECK(r == nullptr, "realloc(%p) of a non-block returned %p", q, r);
    } else {
      FUZZ_CHECK(front_.Free(q) != 1, "free(%p) of a non-block succeeded", q);
    }
    if (!front_.ready()) {
      FUZZ_CHECK(reports_.count == before,
                 "a pool that is not ready reported misuse");
      return;
    }
    FUZZ_CHECK(reports_.count == before + 1, "misuse of %p reported %llu times",
               q, static_cast<unsigned long long>(reports_.count - before));
    ++invalid_;
    // Documented in tlsf/heap.h: a double free of a block that merged into
    // a 16-byte alignment fragment reads as an invalid free.
    const bool known =
        want == Misuse::kDouble && reports_.last == Misuse::kInvalid;
    const bool ok = either ? (reports_.last == Misuse::kInvalid ||
                              reports_.last == Misuse::kDouble)
                           : (reports_.last == want || known);
    FUZZ_CHECK(ok, "misuse of %p reported as %s, expected %s", q,
               MisuseName(reports_.last), MisuseName(want));
  }

  void BadFree(bool realloc) {
    const uint8_t kind = in_.Byte() % 4;
    void* const live = blocks_.Pick(in_.Below(blocks_.count()));
    if (kind == 0 && stale_probes_ && !blocks_.stale().empty()) {
      void* const q = blocks_.PickStale(in_.Byte());
      if (!blocks_.IsLive(q)) {
        ExpectRejected(q, realloc, Misuse::kInvalid, /*either=*/true);
        return;
      }
    }
    if (kind == 1 && live != nullptr && blocks_.Get(live).size > 1) {
      const size_t size = blocks_.Get(live).size;
      void* const q = static_cast<char*>(live) + 1 + in_.Below(size - 1);
      ExpectRejected(q, realloc, Misuse::kInvalid, /*either=*/false);
      return;
    }
    if (kind == 2 && live != nullptr) {
      blocks_.Remove(live);
      FUZZ_CHECK(front_.Free(live) != 0, "free(%p) of a live block refused",
                 live);
      ExpectRejected(live, realloc, Misuse::kDouble, /*either=*/false);
      return;
    }
    void* const q = g_foreign + 16 + in_.Below(sizeof(g_foreign) - 16);
    ExpectRejected(q, realloc, Misuse::kForeign, /*either=*/false);
  }

  // --- Observation and lifecycle ---

  void List() {
    size_t lines = 0;
    const Code got = front_.List(&lines);
    if (!front_.ready()) {
      FUZZ_CHECK(got == Code::kNotInit, "listing a pool that is not ready");
      return;
    }
    FUZZ_CHECK(got == Code::kOk, "listing failed");
    // A line per region and per live block, the totals and the check.
    FUZZ_CHECK(lines == regions_.size() + blocks_.count() + 2,
               "the listing has %zu lines for %zu regions and %zu blocks",
               lines, regions_.size(), blocks_.count());
  }

  void Probe() {
    if (in_.Bool() && front_.ResetPeak()) {
      const Usage u = front_.Probe();
      // Blocks parked in caches count towards the peak.
      FUZZ_CHECK(u.max_used == u.used + u.cached,
                 "ResetPeak left max_used %llu > %llu",
                 static_cast<unsigned long long>(u.max_used),
                 static_cast<unsigned long long>(u.used + u.cached));
      peak_floor_ = u.used;
    }
    // Regions() is checked with every operation; UsableSize of foreign
    // memory is 0.
    if (!FrontEnd::kIsCApi) {
      FUZZ_CHECK(front_.Usable(g_foreign + 32) == 0, "UsableSize of foreign");
    }
  }

  // Binds a region (or a bad address) to this thread, or unbinds it. With
  // one thread a pool changes where blocks come from, never what a call
  // returns, so the rest of the model is unaffected.
  void Pools() {
    const uint8_t how = in_.Byte() % 8;
    bool pools = FrontEnd::kHasPools;
    if constexpr (FrontEnd::kIsCApi)
      pools = policy_ == FMEMP_POLICY_THREAD_POOLS;
    if (how == 0) {
      const Code got = front_.Unbind();
      const Code want = !front_.ready() ? Code::kNotInit
                        : pools         ? Code::kOk
                                        : Code::kNotSupported;
      FUZZ_CHECK(got == want, "unbind returned %d, expected %d",
                 static_cast<int>(got), static_cast<int>(want));
      return;
    }
    void* target = g_foreign + 64;
    bool is_region = false;
    if (how >= 3 && !regions_.empty()) {
      const RegionModel& r = regions_[in_.Below(regions_.size())];
      target = reinterpret_cast<void*>(r.begin + (how == 3 ? 16 : 0));
      is_region = how != 3;
    }
    u32 flags = in_.Bool() ? FMEMP_BIND_NO_FALLBACK : 0;
    const bool bad_flags = FrontEnd::kIsCApi && how == 1;
    if (bad_flags) flags |= 0x40;
    Code want = Code::kNotInit;
    if (front_.ready()) {
      if (!pools) {
        want = Code::kNotSupported;
      } else if (bad_flags) {
        want = Code::kInvalidArg;
      } else {
        want = is_region ? Code::kOk : Code::kNotFound;
      }
    }
    const Code got = front_.Bind(target, flags);
    FUZZ_CHECK(got == want, "bind(%p, %u) returned %d, expected %d", target,
               flags, static_cast<int>(got), static_cast<int>(want));
  }

  void ResetModel() {
    WipeBuffers();
    blocks_.Clear();
    regions_.clear();
    failed_ = 0;
    invalid_ = 0;
    reports_.count = 0;
    peak_floor_ = 0;
  }

  void Lifecycle() {
    const uint8_t what = in_.Byte() % 8;
    if constexpr (FrontEnd::kIsCApi) {
      switch (what) {
        case 0:
        case 1:
          front_.Remove();
          FUZZ_CHECK(!front_.ready(), "FMempRemove left the pool ready");
          ResetModel();
          break;
        case 2:
        case 3:
        case 4: {
          void* begin = nullptr;
          void* end = nullptr;
          PickRange(&begin, &end);
          const int policy = what == 4 ? in_.Byte() % 6 : policy_;
          Init(begin, end, policy == 5 ? 0x7f : policy);
          break;
        }
        case 5:
          FUZZ_CHECK(FMempSetErrorHandler(front_.memp(), &Reports::CHandler,
                                          &reports_) ==
                         (front_.ready() ? FMEMP_SUCCESS : FMEMP_ERR_NOT_INIT),
                     "FMempSetErrorHandler");
          break;
        default: {
          // Every call on a NULL FMemp is refused without effect.
          void* buffer = kBuffers[0].base;
          FUZZ_CHECK(FMempInit(nullptr, buffer, kBuffers[0].base + 64) ==
                         FMEMP_ERR_INVALID_ARG,
                     "FMempInit(NULL)");
          FUZZ_CHECK(FMempMalloc(nullptr, 16) == nullptr &&
                         FMempCalloc(nullptr, 1, 1) == nullptr &&
                         FMempMallocAlign(nullptr, 16, 64) == nullptr &&
                         FMempRealloc(nullptr, nullptr, 16) == nullptr,
                     "allocation from a NULL FMemp");
          FMempFree(nullptr, g_foreign + 64);
          FMempRemove(nullptr);
          FMempRelease(nullptr);
          FUZZ_CHECK(FMempCheck(nullptr) == FMEMP_ERR_NOT_INIT &&
                         FMempAddRegion(nullptr, buffer, buffer) ==
                             FMEMP_ERR_NOT_INIT &&
                         FMempRegionCount(nullptr) == 0 &&
                         FMemListAllTo(front_.memp(), nullptr, nullptr) ==
                             FMEMP_ERR_INVALID_ARG,
                     "management call on a NULL FMemp");
          FMempUsage usage;
          FUZZ_CHECK(
              FMempProbe64(front_.memp(), nullptr) == FMEMP_ERR_INVALID_ARG &&
                  FMempProbe64(nullptr, &usage) == FMEMP_ERR_NOT_INIT,
              "FMempProbe64 with NULL arguments");
          break;
        }
      }
    } else {
      if (what < 2) {
        front_.Clear();
        ResetModel();
      }
    }
  }

  void CheckInvariants(const char* op) {
    std::string why;
    const Code check = front_.Check(&why);
    FUZZ_CHECK(check == (front_.ready() ? Code::kOk : Code::kNotInit),
               "after %s: integrity check: %s", op, why.c_str());
    // The aggregate after the regions: the C API's per-region probe first
    // gives the caches back (FMempProbeRegion), which moves cached bytes to
    // free.
    const std::vector<RegionUsage> regions = front_.Regions();
    const Usage u = front_.Probe();
    std::vector<RegionModel> model = regions_;
    std::sort(model.begin(), model.end(),
              [](const RegionModel& a, const RegionModel& b) {
                return a.begin < b.begin;
              });
    FUZZ_CHECK(regions.size() == model.size() && u.regions == model.size(),
               "after %s: %zu regions probed, %llu counted, model %zu", op,
               regions.size(), static_cast<unsigned long long>(u.regions),
               model.size());
    uint64_t total = 0, used = 0, live = 0;
    for (size_t i = 0; i < regions.size(); ++i) {
      const RegionUsage& r = regions[i];
      FUZZ_CHECK(r.begin == model[i].begin && r.end == model[i].end,
                 "after %s: region %zu is [%p, %p)", op, i,
                 reinterpret_cast<void*>(r.begin),
                 reinterpret_cast<void*>(r.end));
      FUZZ_CHECK(r.used + r.free_bytes == r.total && r.max_used >= r.used &&
                     r.largest <= r.total && r.total <= r.end - r.begin,
                 "after %s: region %zu usage is inconsistent", op, i);
      total += r.total;
      used += r.used;
      live += r.live_blocks;
    }
    // Per-region figures count blocks parked in caches as used; the
    // aggregate separates them (cached; 0 after the C API's drain).
    FUZZ_CHECK(
        u.total == total && u.used + u.cached == used &&
            (u.cached == 0 ? u.live_blocks == live : u.live_blocks < live),
        "after %s: totals disagree with the regions", op);
    FUZZ_CHECK(u.used <= u.total && u.used + u.cached + u.free_bytes == u.total,
               "after %s: used %llu, free %llu, total %llu", op,
               static_cast<unsigned long long>(u.used),
               static_cast<unsigned long long>(u.free_bytes),
               static_cast<unsigned long long>(u.total));
    peak_floor_ = std::max<uint64_t>(peak_floor_, u.used);
    FUZZ_CHECK(u.max_used >= peak_floor_,
               "after %s: max_used %llu below a used of %llu", op,
               static_cast<unsigned long long>(u.max_used),
               static_cast<unsigned long long>(peak_floor_));
    FUZZ_CHECK(u.live_blocks == blocks_.count(),
               "after %s: %llu live blocks, model %zu", op,
               static_cast<unsigned long long>(u.live_blocks), blocks_.count());
    FUZZ_CHECK(u.failed == failed_ && u.invalid == invalid_ &&
                   reports_.count == invalid_,
               "after %s: failed %llu (model %llu), misuse %llu (reports "
               "%llu, model %llu)",
               op, static_cast<unsigned long long>(u.failed),
               static_cast<unsigned long long>(failed_),
               static_cast<unsigned long long>(u.invalid),
               static_cast<unsigned long long>(reports_.count),
               static_cast<unsigned long long>(invalid_));
    uint64_t spans = 0;
    for (const auto& [p, block] : blocks_.blocks()) {
      spans += block.size + tlsf::kBlockOverhead;
      size_t inside = 0;
      for (const RegionModel& r : regions_) {
        const uintptr_t lo = tlsf::AlignUp(r.begin, tlsf::kAlignment);
        const uintptr_t hi = r.end & ~uintptr_t{tlsf::kAlignment - 1};
        if (p - LiveBlocks::kHeaderBytes > lo &&
            p + block.size <= hi - tlsf::kBlockOverhead) {
          ++inside;
        }
      }
      FUZZ_CHECK(inside == 1,
                 "after %s: block %p (%zu bytes) is in %zu regions", op,
                 reinterpret_cast<void*>(p), block.size, inside);
    }
    if (!FrontEnd::kIsCApi) {
      FUZZ_CHECK(u.used == spans, "after %s: used %llu, blocks' spans %llu", op,
                 static_cast<unsigned long long>(u.used),
                 static_cast<unsigned long long>(spans));
    }
    blocks_.VerifyAll();
  }

  ByteReader& in_;
  const bool stale_probes_;
  Reports reports_;
  FrontEnd front_;
  int policy_ = FMEMP_POLICY_MUTEX;
  LiveBlocks blocks_;
  std::vector<RegionModel> regions_;
  uint64_t failed_ = 0;
  uint64_t invalid_ = 0;
  uint64_t peak_floor_ = 0;
};

}  // namespace
}  // namespace fmemp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fmemp::CachingMemp;
  using fmemp::Memp;
  using fmemp::PoolingMemp;
  using fmemp::fuzz::CFrontEnd;
  using fmemp::fuzz::CppFrontEnd;
  using fmemp::fuzz::MempFuzzer;
  using fmemp::sync::NoLock;
  using fmemp::sync::SpinLock;
  static const bool stale_probes = fmemp::fuzz::StaticMemoryLooksSafe();
  fmemp::fuzz::ByteReader in(data, size);
  const uint8_t mode = in.Byte() % 8;
  switch (mode) {
    case 0: {
      MempFuzzer<CppFrontEnd<Memp<NoLock>>> fuzzer(&in, stale_probes);
      fuzzer.Run(FMEMP_POLICY_SINGLE_THREAD);
      break;
    }
    case 1: {
      MempFuzzer<CppFrontEnd<CachingMemp<SpinLock>>> fuzzer(&in, stale_probes);
      fuzzer.Run(FMEMP_POLICY_THREAD_CACHE);
      break;
    }
    case 2: {
      MempFuzzer<CppFrontEnd<PoolingMemp<SpinLock>>> fuzzer(&in, stale_probes);
      fuzzer.Run(FMEMP_POLICY_THREAD_POOLS);
      break;
    }
    default: {
      static constexpr int kPolicies[] = {
          FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_SINGLE_THREAD,
          FMEMP_POLICY_THREAD_CACHE, FMEMP_POLICY_THREAD_POOLS};
      MempFuzzer<CFrontEnd> fuzzer(&in, stale_probes);
      fuzzer.Run(kPolicies[mode - 3]);
      break;
    }
  }
  return 0;
}
