// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/memp_fuzz.cc
//
// libFuzzer target for the fmemp front-end over several regions: the C++
// front-ends fmemp::Memp<fmemp::sync::NoLock>, fmemp::CachingMemp (per-thread
// caches) and fmemp::ThreadHeapMemp (per-thread heaps), and the SDK's C API
// (fmemp/fmemp.h) with each of its policies, all through the shared test
// adapter (fmemp/testing/front_end.h).
//
// The input is a program. Its first byte picks the front-end (one of the
// three C++ ones, or the C API with the mutex, spin-lock, single-thread,
// thread-cache or thread-heaps policy); the second picks
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
//   thread heaps   bind a region (a region's begin, an address next to it,
//                  a foreign one; with or without fallback; bad flags) to
//                  this thread, unbind it; refused where there are no thread
//                  heaps
//
// After every operation the target checks: the integrity check (Memp::Check
// / FMempCheck) passes, or reports "not initialised" exactly when the pool
// is not ready; every live block lies inside one region, is aligned, holds
// its fill pattern and overlaps no other block; the probes agree with the
// model and with each other (used <= total, used + free == total, max_used
// >= every used + cached seen, live blocks, region count, failed allocations,
// misuse reports == calls of the error handler, and the 32-bit FMemProbe equals
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

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fmemp/fmemp.h"
#include "fmemp/region_set.h"
#include "fmemp/testing/front_end.h"
#include "fmemp/testing/front_end_list.h"
#include "fuzz/byte_reader.h"
#include "fuzz/live_blocks.h"
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

// --- What the front-ends report, in one vocabulary ---

using testkit::Outcome;

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

// Counts the misuse reports (the adapter's listener).
struct Reports {
  uint64_t count = 0;
  Misuse last = Misuse::kNone;

  void Note(Misuse m) {
    ++count;
    last = m;
  }
  static void CHandler(void* user, int kind, const void*) {
    Misuse m = Misuse::kCorrupt;
    if (kind == FMEMP_MISUSE_FOREIGN_POINTER) m = Misuse::kForeign;
    if (kind == FMEMP_MISUSE_INVALID_FREE) m = Misuse::kInvalid;
    if (kind == FMEMP_MISUSE_DOUBLE_FREE) m = Misuse::kDouble;
    static_cast<Reports*>(user)->Note(m);
  }
};

using testkit::RegionUsage;
using testkit::Usage;

// Counts the lines of a listing, less the lines a per-thread heap's own
// section adds (its heading, totals and check), so every front-end's count
// is regions + blocks + 2.
struct LineCounter {
  size_t lines = 0;
  size_t heap_extra = 0;
  void Add(absl::string_view line) {
    ++lines;
    if (absl::StartsWith(line, "heap of thread")) heap_extra += 3;
  }
  size_t count() const { return lines - heap_extra; }
};

const BlockTag& FuzzTag() {
  static const BlockTag tag = {__FILE__, __LINE__, "fuzz", 1};
  return tag;
}

// --- The front-ends: fmemp/testing/front_end.h ---

// The C API with the policy Run gives it (FMempInitWithPolicy).
class CApiAnyPolicy : public testkit::CApiFrontEnd {
 public:
  CApiAnyPolicy() : CApiFrontEnd(FMEMP_POLICY_MUTEX) {}
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
  kThreadHeaps,
};

constexpr Op kOps[] = {
    Op::kMalloc,      Op::kMalloc,       Op::kMalloc,    Op::kCalloc,
    Op::kMemalign,    Op::kMemalign,     Op::kRealloc,   Op::kRealloc,
    Op::kRealloc,     Op::kFree,         Op::kFree,      Op::kFree,
    Op::kAddRegion,   Op::kRemoveRegion, Op::kBadFree,   Op::kBadRealloc,
    Op::kList,        Op::kProbe,        Op::kLifecycle, Op::kCaches,
    Op::kThreadHeaps,
};
constexpr size_t kOpCount = sizeof(kOps) / sizeof(kOps[0]);

template <typename FrontEnd>
class MempFuzzer {
 public:
  MempFuzzer(ByteReader* in, bool stale_probes)
      : in_(*in), stale_probes_(stale_probes) {
    front_.reports().SetListener(&Reports::CHandler, &reports_);
  }
  MempFuzzer(const MempFuzzer&) = delete;
  MempFuzzer& operator=(const MempFuzzer&) = delete;
  ~MempFuzzer() {
    if constexpr (FrontEnd::kIsCApi) {
      front_.Remove();
      FMempRelease(front_.memp());
      FUZZ_CHECK(front_.memp()->priv == nullptr && front_.memp()->is_ready == 0,
                 "FMempRelease left the FMemp in use");
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
      FUZZ_CHECK(front_.Free(p), "final free of %p refused", p);
    }
    CheckInvariants("final frees");
    const Usage u = front_.Probe();
    FUZZ_CHECK(u.used == 0 && u.live == 0,
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
        FlushCaches(in_.Bool());
        return "flush caches";
      case Op::kThreadHeaps:
        ThreadHeaps();
        return "thread heaps";
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

  Outcome PredictAdd(void* begin, void* end) const {
    if (begin == nullptr || end == nullptr) return Outcome::kInvalidBuffer;
    const uintptr_t lo = Addr(begin);
    const uintptr_t hi = Addr(end);
    if (hi <= lo) return Outcome::kInvalidBuffer;
    for (const RegionModel& r : regions_) {
      if (lo < r.end && r.begin < hi) return Outcome::kOverlap;
    }
    const uintptr_t a = tlsf::AlignUp(lo, tlsf::kAlignment);
    const uintptr_t z = hi & ~uintptr_t{tlsf::kAlignment - 1};
    if (z < a || z - a < tlsf::Heap::kMinPoolBytes) {
      return Outcome::kInvalidBuffer;
    }
    return Outcome::kOk;
  }

  void AddRegion(void* begin, void* end) {
    const Outcome want =
        front_.ready() ? PredictAdd(begin, end) : Outcome::kNotInit;
    const Outcome got = front_.AddRegion(begin, end);
    FUZZ_CHECK(got == want, "AddRegion(%p, %p) returned %d, expected %d", begin,
               end, static_cast<int>(got), static_cast<int>(want));
    if (got == Outcome::kOk) regions_.push_back({Addr(begin), Addr(end)});
  }

  // FMempInitWithPolicy. While the pool is not ready the model is empty
  // (FMempRemove reset it, and calls on it change nothing), which is also
  // what every init attempt starts from.
  void Init(void* begin, void* end, int policy) {
    const bool valid_policy =
        policy >= FMEMP_POLICY_MUTEX && policy <= FMEMP_POLICY_THREAD_HEAPS;
    const bool was_ready = front_.ready();
    Outcome want = Outcome::kAlreadyInit;
    if (!valid_policy) {
      want = Outcome::kInvalidArg;
    } else if (!was_ready) {
      FUZZ_CHECK(
          regions_.empty() && blocks_.empty() && failed_ == 0 && invalid_ == 0,
          "the model of a pool that is not ready is not empty");
      want = PredictAdd(begin, end);
    }
    if constexpr (FrontEnd::kIsCApi) {
      const Outcome got = front_.Init(begin, end, policy);
      FUZZ_CHECK(got == want,
                 "FMempInit(%p, %p, policy %d) returned %d, expected %d", begin,
                 end, policy, static_cast<int>(got), static_cast<int>(want));
      if (!was_ready && got == Outcome::kOk) {
        regions_.push_back({Addr(begin), Addr(end)});
        policy_ = policy;
      }
      FUZZ_CHECK(front_.ready() == (was_ready || got == Outcome::kOk),
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
    Outcome want = front_.ready() ? Outcome::kNotFound : Outcome::kNotInit;
    auto it = std::find_if(
        regions_.begin(), regions_.end(),
        [target](const RegionModel& r) { return r.begin == Addr(target); });
    if (front_.ready() && it != regions_.end()) {
      want = LiveBlocksIn(*it) == 0 ? Outcome::kOk : Outcome::kBusy;
    }
    const Outcome got = front_.RemoveRegion(target);
    FUZZ_CHECK(got == want, "RemoveRegion(%p) returned %d, expected %d", target,
               static_cast<int>(got), static_cast<int>(want));
    if (got == Outcome::kOk) {
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
      size = front_.UsableSize(p);
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
    void* const p =
        tagged ? front_.AllocateTagged(n, FuzzTag()) : front_.Allocate(n);
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
    void* const p = tagged ? front_.CallocTagged(count, size, FuzzTag())
                           : front_.Calloc(count, size);
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
    void* const p = tagged
                        ? front_.AllocateAlignedTagged(alignment, n, FuzzTag())
                        : front_.AllocateAligned(alignment, n);
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
      void* const q = Realloc(nullptr, n, tagged);
      if (Allocated(q, "realloc(NULL)")) Accept(q, n, tlsf::kAlignment);
      return;
    }
    const LiveBlocks::Block old = blocks_.Get(p);
    blocks_.Verify(p);
    if (n == 0) {
      blocks_.Remove(p);
      void* const q = Realloc(p, 0, tagged);
      FUZZ_CHECK(q == nullptr, "realloc(%p, 0) returned %p", p, q);
      return;
    }
    void* const q = Realloc(p, n, tagged);
    if (q == nullptr) {
      ++failed_;
      if (!FrontEnd::kIsCApi) {
        FUZZ_CHECK(front_.UsableSize(p) == old.size,
                   "a failed realloc(%p, %zu) changed the block", p, n);
      }
      return;
    }
    size_t size = n;
    if (!FrontEnd::kIsCApi) {
      size = front_.UsableSize(q);
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
      FUZZ_CHECK(front_.Free(nullptr), "free(NULL) refused");
      return;
    }
    blocks_.Remove(p);
    FUZZ_CHECK(front_.Free(p), "free(%p) of a live block refused", p);
  }

  // Frees (or reallocates) `q`, which is not a live block, and checks that
  // it is reported once as `want` (kInvalid or kDouble when `either`).
  void ExpectRejected(void* q, bool realloc, Misuse want, bool either) {
    FUZZ_CHECK(!blocks_.IsLive(q), "misuse probe %p is a live block", q);
    if (!FrontEnd::kIsCApi) {
      FUZZ_CHECK(front_.UsableSize(q) == 0, "UsableSize(%p) of a non-block", q);
    }
    const uint64_t before = reports_.count;
    if (realloc) {
      const bool tagged = in_.Byte() % 4 == 0;
      void* const r = Realloc(q, in_.Size(), tagged);
      FUZZ_CHECK(r == nullptr, "realloc(%p) of a non-block returned %p", q, r);
    } else {
      // A pool that is not ready ignores the free without a report.
      FUZZ_CHECK(!front_.Free(q) || !front_.ready(),
                 "free(%p) of a non-block succeeded", q);
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
      FUZZ_CHECK(front_.Free(live), "free(%p) of a live block refused", live);
      ExpectRejected(live, realloc, Misuse::kDouble, /*either=*/false);
      return;
    }
    void* const q = g_foreign + 16 + in_.Below(sizeof(g_foreign) - 16);
    ExpectRejected(q, realloc, Misuse::kForeign, /*either=*/false);
  }

  // --- The front-end's calls, with the C API's extra checks ---

  void* Realloc(void* p, size_t n, bool tagged) {
    return tagged ? front_.ReallocateTagged(p, n, FuzzTag())
                  : front_.Reallocate(p, n);
  }

  // Returns this thread's cached blocks (all threads' with `all`).
  void FlushCaches(bool all) {
    const Outcome got = all ? front_.DrainCaches() : front_.FlushThisThread();
    FUZZ_CHECK(got == (front_.ready() ? Outcome::kOk : Outcome::kNotInit),
               "flushing caches returned %s", testkit::OutcomeName(got));
  }

  // The C API: FMemProbe (32-bit) agrees with FMempProbe64, and a pool that
  // is not ready probes as empty.
  Usage ProbeAndCompare() {
    const Usage u = front_.Probe();
    if constexpr (FrontEnd::kIsCApi) {
      FMemp* const memp = front_.memp();
      FMempUsage u64 = {};
      const FError error = FMempProbe64(memp, &u64);
      u32 total = 1, used = 1, max_used = 1;
      FMemProbe(memp, &total, &used, &max_used);
      FMemProbe(memp, nullptr, nullptr, nullptr);
      if (error != FMEMP_SUCCESS) {
        FUZZ_CHECK(!front_.ready() && error == FMEMP_ERR_NOT_INIT,
                   "FMempProbe64 returned %#x", error);
        FUZZ_CHECK(total == 0 && used == 0 && max_used == 0,
                   "FMemProbe of a pool that is not ready: %u %u %u", total,
                   used, max_used);
        return u;
      }
      FUZZ_CHECK(total == Saturate(u.capacity) && used == Saturate(u.used) &&
                     max_used == Saturate(u.peak),
                 "FMemProbe (%u, %u, %u) disagrees with FMempProbe64", total,
                 used, max_used);
      FUZZ_CHECK(used <= total && max_used >= used,
                 "FMemProbe: used %u, total %u, max_used %u", used, total,
                 max_used);
    }
    return u;
  }

  // The C API: the index past the last region and a NULL output are
  // refused.
  std::vector<RegionUsage> Regions() {
    std::vector<RegionUsage> regions = front_.ProbeRegions();
    if constexpr (FrontEnd::kIsCApi) {
      FMemp* const memp = front_.memp();
      const u32 count = FMempRegionCount(memp);
      FUZZ_CHECK(regions.size() == count,
                 "FMempProbeRegion failed below FMempRegionCount (%u)", count);
      FMempRegionUsage r = {};
      FUZZ_CHECK(
          FMempProbeRegion(memp, count, &r) ==
              (front_.ready() ? FMEMP_ERR_INVALID_ARG : FMEMP_ERR_NOT_INIT),
          "FMempProbeRegion past the last region");
      FUZZ_CHECK(FMempProbeRegion(memp, 0, nullptr) == FMEMP_ERR_INVALID_ARG,
                 "FMempProbeRegion with a NULL output");
    }
    return regions;
  }

  static u32 Saturate(uint64_t v) {
    return v > UINT32_MAX ? UINT32_MAX : static_cast<u32>(v);
  }

  // --- Observation and lifecycle ---

  void List() {
    size_t lines = 0;
    LineCounter counter;
    const Outcome got =
        front_.List([&counter](absl::string_view line) { counter.Add(line); });
    lines = counter.count();
    if (!front_.ready()) {
      FUZZ_CHECK(got == Outcome::kNotInit, "listing a pool that is not ready");
      return;
    }
    FUZZ_CHECK(got == Outcome::kOk, "listing failed");
    // A line per region and per live block, the totals and the check.
    FUZZ_CHECK(lines == regions_.size() + blocks_.count() + 2,
               "the listing has %zu lines for %zu regions and %zu blocks",
               lines, regions_.size(), blocks_.count());
  }

  void Probe() {
    if (in_.Bool() && front_.ResetPeak()) {
      const Usage u = front_.Probe();
      // The peak restarts from what is taken from the regions now, under
      // every policy: blocks in use plus blocks parked in caches.
      FUZZ_CHECK(u.peak == u.used + u.cached,
                 "ResetPeak left max_used %llu, not used + cached %llu",
                 static_cast<unsigned long long>(u.peak),
                 static_cast<unsigned long long>(u.used + u.cached));
      peak_floor_ = u.used + u.cached;
    }
    // Regions() is checked with every operation; UsableSize of foreign
    // memory is 0.
    if (!FrontEnd::kIsCApi) {
      FUZZ_CHECK(front_.UsableSize(g_foreign + 32) == 0,
                 "UsableSize of foreign");
    }
  }

  // Binds a region (or a bad address) to this thread, or unbinds it. With
  // one thread a thread heap changes where blocks come from, never what a call
  // returns, so the rest of the model is unaffected.
  void ThreadHeaps() {
    const uint8_t how = in_.Byte() % 8;
    const bool heaps = front_.has_thread_heaps();
    if (how == 0) {
      const Outcome got = front_.UnbindThisThread();
      const Outcome want = !front_.ready() ? Outcome::kNotInit
                           : heaps         ? Outcome::kOk
                                           : Outcome::kNotSupported;
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
    Outcome want = Outcome::kNotInit;
    if (front_.ready()) {
      if (!heaps) {
        want = Outcome::kNotSupported;
      } else if (bad_flags) {
        want = Outcome::kInvalidArg;
      } else {
        want = is_region ? Outcome::kOk : Outcome::kNotFound;
      }
    }
    const Outcome got = front_.BindThisThread(target, flags);
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
          // Installs the adapter's counter again (it passes reports on to
          // reports_, and Free reads it).
          FUZZ_CHECK(FMempSetErrorHandler(front_.memp(),
                                          &testkit::ReportCounter::OnCApiError,
                                          &front_.reports()) ==
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
    const Outcome check = front_.Check(&why);
    FUZZ_CHECK(check == (front_.ready() ? Outcome::kOk : Outcome::kNotInit),
               "after %s: integrity check: %s", op, why.c_str());
    // The aggregate after the regions: the C API's per-region probe first
    // gives the caches back (FMempProbeRegion), which moves cached bytes to
    // free.
    const std::vector<RegionUsage> regions = Regions();
    const Usage u = ProbeAndCompare();
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
      FUZZ_CHECK(Addr(r.begin) == model[i].begin && Addr(r.end) == model[i].end,
                 "after %s: region %zu is [%p, %p)", op, i, r.begin, r.end);
      FUZZ_CHECK(r.used + r.free == r.capacity && r.peak >= r.used &&
                     r.largest <= r.capacity &&
                     r.capacity <= Addr(r.end) - Addr(r.begin),
                 "after %s: region %zu usage is inconsistent", op, i);
      total += r.capacity;
      used += r.used;
      live += r.live;
    }
    // Per-region figures count blocks parked in caches as used; the
    // aggregate separates them (cached; 0 after the C API's drain).
    FUZZ_CHECK(u.capacity == total && u.used + u.cached == used &&
                   (u.cached == 0 ? u.live == live : u.live < live),
               "after %s: totals disagree with the regions", op);
    FUZZ_CHECK(u.used <= u.capacity && u.used + u.cached + u.free == u.capacity,
               "after %s: used %llu, free %llu, total %llu", op,
               static_cast<unsigned long long>(u.used),
               static_cast<unsigned long long>(u.free),
               static_cast<unsigned long long>(u.capacity));
    // The peak is of the bytes taken (used + cached) under every policy.
    peak_floor_ = std::max<uint64_t>(peak_floor_, u.used + u.cached);
    FUZZ_CHECK(u.peak >= peak_floor_,
               "after %s: max_used %llu below a used + cached of %llu", op,
               static_cast<unsigned long long>(u.peak),
               static_cast<unsigned long long>(peak_floor_));
    FUZZ_CHECK(u.live == blocks_.count(),
               "after %s: %llu live blocks, model %zu", op,
               static_cast<unsigned long long>(u.live), blocks_.count());
    FUZZ_CHECK(u.failed == failed_ && u.invalid_frees == invalid_ &&
                   reports_.count == invalid_,
               "after %s: failed %llu (model %llu), misuse %llu (reports "
               "%llu, model %llu)",
               op, static_cast<unsigned long long>(u.failed),
               static_cast<unsigned long long>(failed_),
               static_cast<unsigned long long>(u.invalid_frees),
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
  using fmemp::fuzz::CApiAnyPolicy;
  using fmemp::fuzz::MempFuzzer;
  namespace testkit = fmemp::testkit;
  static const bool stale_probes = fmemp::fuzz::StaticMemoryLooksSafe();
  fmemp::fuzz::ByteReader in(data, size);
  const uint8_t mode = in.Byte() % 8;
  switch (mode) {
    case 0: {
      MempFuzzer<testkit::MempNoLock> fuzzer(&in, stale_probes);
      fuzzer.Run(FMEMP_POLICY_SINGLE_THREAD);
      break;
    }
    case 1: {
      MempFuzzer<testkit::CachingMempSpinLock> fuzzer(&in, stale_probes);
      fuzzer.Run(FMEMP_POLICY_THREAD_CACHE);
      break;
    }
    case 2: {
      MempFuzzer<testkit::ThreadHeapMempSpinLock> fuzzer(&in, stale_probes);
      fuzzer.Run(FMEMP_POLICY_THREAD_HEAPS);
      break;
    }
    default: {
      static constexpr int kPolicies[] = {
          FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_SINGLE_THREAD,
          FMEMP_POLICY_THREAD_CACHE, FMEMP_POLICY_THREAD_HEAPS};
      MempFuzzer<CApiAnyPolicy> fuzzer(&in, stale_probes);
      fuzzer.Run(kPolicies[mode - 3]);
      break;
    }
  }
  return 0;
}
