// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/heap_fuzz.cc
//
// libFuzzer target for the TLSF heap alone (fmemp::tlsf::Heap).
//
// The input is a program. Its first byte picks which of four pool buffers
// (160 B to 32 KiB, two of them with unaligned starts) are added before the
// first operation; then each operation is one opcode byte followed by its
// arguments, read with ByteReader until the input ends (at most kMaxOps
// operations):
//
//   add pool      a buffer with its full length, a shorter one, a shifted
//                 start, a null start, a length that wraps or exceeds the
//                 maximum span; the status must be the documented one
//   remove pool   a pool of the heap (refused while it holds live blocks), a
//                 removed pool or nullptr (NotFound)
//   malloc        a size from ByteReader::Size() or LargestAllocatable() +-2
//   memalign      an alignment from ByteReader::Alignment() and a size
//   realloc       of a live block or nullptr, to any size (0 frees)
//   free          of a live block, or nullptr
//   bad free      of a freed pointer, an interior pointer of a live block, a
//                 pointer into a zeroed buffer, or a block freed twice
//   bad realloc   of the same kinds of pointer
//   probe         ResetPeak, LargestFreeBin, WalkPool, CheckPool, FindPool
//
// After every operation the target checks: Heap::Check() is OK; every live
// block lies inside a pool, is aligned, holds its fill pattern and overlaps
// no other block (header word included); the counters equal the model's
// (live_blocks, used_bytes as the sum of spans, used + free == capacity ==
// the sum of the pools' capacities, pool_count, failed_allocations,
// invalid_frees == calls of the error handler, peak_used_bytes >= every
// used_bytes seen since the last ResetPeak). Allocate and AllocateAligned
// must succeed exactly when the request's search span fits the largest free
// block that LargestAllocatable() reported before the call.
//
// Misuse probes only ever point into memory this target owns, at least 8
// bytes past its start, so reading the would-be header word is always in
// bounds (see fuzz/live_blocks.h for why such a word is never mistaken for a
// header).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fuzz/byte_reader.h"
#include "fuzz/live_blocks.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp::fuzz {
namespace {

using tlsf::BlockInfo;
using tlsf::Heap;
using tlsf::HeapError;
using tlsf::HeapStats;
using tlsf::Pool;

constexpr size_t kMaxOps = 400;

// --- Memory the target owns ---

// Separate arrays, so that ASan's redzones between globals catch a heap that
// writes past the end of a pool.
alignas(64) unsigned char g_pool0[176];
alignas(64) unsigned char g_pool1[1056];
alignas(64) unsigned char g_pool2[4160];
alignas(64) unsigned char g_pool3[32832];
// Never handed to the heap and never written: misuse probes point into it.
alignas(64) unsigned char g_foreign[512];
// The heap itself, in static storage so that the heap pointer each pool
// record holds is a low (never tag-like) address.
alignas(Heap) unsigned char g_heap_storage[sizeof(Heap)];

struct PoolBuffer {
  unsigned char* base;
  size_t offset;  // where AddPool starts by default (may be unaligned)
  size_t bytes;   // the full length AddPool is given
};

const PoolBuffer kBuffers[] = {
    {g_pool0, 5, sizeof(g_pool0) - 5},
    {g_pool1, 16, 1024},
    {g_pool2, 3, sizeof(g_pool2) - 3 - 7},
    {g_pool3, 8, sizeof(g_pool3) - 8},
};
constexpr size_t kBufferCount = sizeof(kBuffers) / sizeof(kBuffers[0]);

bool StaticMemoryLooksSafe() {
  for (const PoolBuffer& b : kBuffers) {
    if (CouldLookTagged(b.base) || CouldLookTagged(b.base + b.bytes)) {
      return false;
    }
  }
  return !CouldLookTagged(g_heap_storage) && !CouldLookTagged(g_foreign);
}

// Counts what the heap reports.
struct Reports {
  uint64_t count = 0;
  HeapError last = HeapError::kInvalidFree;

  static void Handler(void* context, HeapError error, const void*) {
    Reports* const reports = static_cast<Reports*>(context);
    ++reports->count;
    reports->last = error;
  }
};

// A pool the model knows is in the heap.
struct PoolModel {
  Pool* pool;
  uintptr_t begin;  // PoolBegin
  uintptr_t end;    // PoolEnd
};

enum class Op {
  kAddPool,
  kRemovePool,
  kMalloc,
  kMallocLargest,
  kMemalign,
  kRealloc,
  kFree,
  kBadFree,
  kBadRealloc,
  kProbe,
};

// Opcode byte -> operation; allocation and free dominate.
constexpr Op kOps[] = {
    Op::kMalloc,   Op::kMalloc,        Op::kMalloc,  Op::kMalloc,
    Op::kMemalign, Op::kMemalign,      Op::kRealloc, Op::kRealloc,
    Op::kRealloc,  Op::kFree,          Op::kFree,    Op::kFree,
    Op::kAddPool,  Op::kRemovePool,    Op::kBadFree, Op::kBadRealloc,
    Op::kProbe,    Op::kMallocLargest,
};
constexpr size_t kOpCount = sizeof(kOps) / sizeof(kOps[0]);

class HeapFuzzer {
 public:
  HeapFuzzer(ByteReader* in, bool stale_probes)
      : in_(*in), stale_probes_(stale_probes) {
    heap_ = new (g_heap_storage) Heap;
    heap_->SetErrorHandler(&Reports::Handler, &reports_);
  }
  HeapFuzzer(const HeapFuzzer&) = delete;
  HeapFuzzer& operator=(const HeapFuzzer&) = delete;
  ~HeapFuzzer() { heap_->~Heap(); }

  void Run() {
    const uint8_t initial = in_.Byte();
    for (size_t i = 0; i < kBufferCount; ++i) {
      if ((initial >> i) & 1) {
        const PoolBuffer& b = kBuffers[i];
        AddPoolAndCheck(b.base + b.offset, b.bytes);
      }
    }
    CheckInvariants("initial pools");
    for (size_t n = 0; n < kMaxOps && !in_.empty(); ++n) {
      const Op op = kOps[in_.Byte() % kOpCount];
      const char* name = Step(op);
      CheckInvariants(name);
    }
    // Free everything: the heap must end empty.
    while (!blocks_.empty()) {
      void* p = blocks_.Pick(0);
      blocks_.Remove(p);
      FUZZ_CHECK(heap_->Free(p), "final free of %p failed", p);
    }
    CheckInvariants("final frees");
    FUZZ_CHECK(heap_->Stats().used_bytes == 0 &&
                   heap_->Stats().free_bytes == heap_->Stats().capacity_bytes,
               "heap not empty after every block was freed");
  }

 private:
  const char* Step(Op op) {
    switch (op) {
      case Op::kAddPool:
        AddPool();
        return "add pool";
      case Op::kRemovePool:
        RemovePool();
        return "remove pool";
      case Op::kMalloc:
        Malloc(in_.Size());
        return "malloc";
      case Op::kMallocLargest: {
        const size_t delta = static_cast<size_t>(in_.Byte() % 5) - 2;
        Malloc(heap_->LargestAllocatable() + delta);
        return "malloc of the largest";
      }
      case Op::kMemalign: {
        const size_t alignment = in_.Alignment();
        Memalign(alignment, in_.Size());
        return "memalign";
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
      case Op::kProbe:
        Probe();
        return "probe";
    }
    return "?";
  }

  // --- Pools ---

  // The status AddPool(mem, bytes) must return, as documented in heap.h.
  absl::StatusCode PredictAddPool(void* mem, size_t bytes) const {
    if (mem == nullptr) return absl::StatusCode::kInvalidArgument;
    const uintptr_t low = Addr(mem);
    if (bytes > UINTPTR_MAX - low) return absl::StatusCode::kInvalidArgument;
    const uintptr_t begin = tlsf::AlignUp(low, tlsf::kAlignment);
    const uintptr_t end = (low + bytes) & ~uintptr_t{tlsf::kAlignment - 1};
    if (end < begin || end - begin < Heap::kMinPoolBytes) {
      return absl::StatusCode::kInvalidArgument;
    }
    if (end - begin - Heap::kPoolOverhead >= tlsf::kMaxSpan) {
      return absl::StatusCode::kOutOfRange;
    }
    for (const PoolModel& p : pools_) {
      if (begin < p.end && p.begin < end) {
        return absl::StatusCode::kInvalidArgument;
      }
    }
    return absl::StatusCode::kOk;
  }

  void AddPoolAndCheck(void* mem, size_t bytes) {
    const absl::StatusCode want = PredictAddPool(mem, bytes);
    const HeapStats before = heap_->Stats();
    absl::StatusOr<Pool*> pool = heap_->AddPool(mem, bytes);
    FUZZ_CHECK(pool.status().code() == want,
               "AddPool(%p, %zu) returned %s, expected code %d", mem, bytes,
               pool.status().ToString().c_str(), static_cast<int>(want));
    if (!pool.ok()) {
      const HeapStats after = heap_->Stats();
      FUZZ_CHECK(after.capacity_bytes == before.capacity_bytes &&
                     after.pool_count == before.pool_count,
                 "a failed AddPool changed the heap");
      return;
    }
    Pool* const p = *pool;
    const uintptr_t begin = Addr(Heap::PoolBegin(p));
    const uintptr_t end = Addr(Heap::PoolEnd(p));
    FUZZ_CHECK(begin >= Addr(mem) && end <= Addr(mem) + bytes && begin < end,
               "pool [%p, %p) is not inside [%p, +%zu)", Heap::PoolBegin(p),
               Heap::PoolEnd(p), mem, bytes);
    FUZZ_CHECK(begin % tlsf::kAlignment == 0 && end % tlsf::kAlignment == 0,
               "pool bounds not aligned");
    FUZZ_CHECK(Heap::PoolCapacity(p) == end - begin - Heap::kPoolOverhead,
               "pool capacity %zu for [%p, %p)", Heap::PoolCapacity(p),
               Heap::PoolBegin(p), Heap::PoolEnd(p));
    FUZZ_CHECK(Heap::PoolOwner(p) == heap_, "PoolOwner of a new pool");
    pools_.push_back(PoolModel{p, begin, end});
    removed_.erase(std::remove(removed_.begin(), removed_.end(), p),
                   removed_.end());
  }

  void AddPool() {
    const PoolBuffer& b = kBuffers[in_.Byte() % kBufferCount];
    unsigned char* mem = b.base + b.offset;
    size_t bytes = b.bytes;
    switch (in_.Byte() % 10) {
      case 0:
      case 1:
      case 2:
      case 3:
        break;  // the whole buffer
      case 4:
      case 5:
        bytes = in_.Below(bytes + 1);  // shorter, maybe below the minimum
        break;
      case 6: {  // a later start inside the buffer
        const size_t shift = 1 + in_.Below(bytes);
        mem += shift;
        bytes -= std::min(bytes, shift);
        break;
      }
      case 7:
        mem = nullptr;
        break;
      case 8:  // wraps around the address space
        bytes = std::numeric_limits<size_t>::max() - in_.Byte();
        break;
      default:  // fits the address space but exceeds the maximum span
        // (by more than alignment can trim, so the heap must refuse it
        // before touching the memory)
        bytes = tlsf::kMaxSpan + Heap::kPoolOverhead + 64 + in_.U16();
        break;
    }
    AddPoolAndCheck(mem, bytes);
  }

  size_t LiveBlocksIn(const PoolModel& pool) const {
    size_t n = 0;
    for (const auto& [p, block] : blocks_.blocks()) {
      if (p >= pool.begin && p < pool.end) ++n;
    }
    return n;
  }

  void RemovePool() {
    const uint8_t choice = in_.Byte();
    Pool* target = nullptr;
    if (choice % 4 != 3 && !pools_.empty()) {
      target = pools_[in_.Below(pools_.size())].pool;
    } else if (choice % 2 == 1 && !removed_.empty()) {
      target = removed_[in_.Below(removed_.size())];
    }
    auto it = std::find_if(pools_.begin(), pools_.end(),
                           [target](const PoolModel& p) {
                             return target != nullptr && p.pool == target;
                           });
    absl::StatusCode want = absl::StatusCode::kNotFound;
    if (it != pools_.end()) {
      want = LiveBlocksIn(*it) == 0 ? absl::StatusCode::kOk
                                    : absl::StatusCode::kFailedPrecondition;
    }
    const absl::Status status = heap_->RemovePool(target);
    FUZZ_CHECK(status.code() == want,
               "RemovePool(%p) returned %s, expected code %d",
               static_cast<void*>(target), status.ToString().c_str(),
               static_cast<int>(want));
    if (status.ok()) {
      FUZZ_CHECK(Heap::PoolOwner(target) == nullptr,
                 "a removed pool still names its heap");
      pools_.erase(it);
      if (removed_.size() == 8) removed_.erase(removed_.begin());
      removed_.push_back(target);
    }
  }

  // --- Allocation ---

  // The largest free span before the call: a request succeeds exactly when
  // its search span is at most this (see LargestAllocatable in heap.h).
  size_t BestSpan() const {
    const size_t largest = heap_->LargestAllocatable();
    return largest == 0 ? 0 : largest + tlsf::kBlockOverhead;
  }

  // Checks a fresh block for a request of `bytes` with `alignment` and adds
  // it to the model.
  void Accept(void* p, size_t bytes, size_t alignment) {
    const size_t usable = heap_->UsableSize(p);
    const size_t span = tlsf::SpanForRequest(bytes);
    FUZZ_CHECK(usable >= bytes, "block %p has %zu usable bytes for %zu", p,
               usable, bytes);
    FUZZ_CHECK(usable < span - tlsf::kBlockOverhead + tlsf::kMinFreeSpan,
               "block %p of %zu usable bytes for %zu kept a splittable tail", p,
               usable, bytes);
    const size_t effective = std::max(alignment, tlsf::kAlignment);
    FUZZ_CHECK(heap_->BlockAlignment(p) == effective,
               "BlockAlignment(%p) is %zu, expected %zu", p,
               heap_->BlockAlignment(p), effective);
    blocks_.Add(p, usable, effective);
  }

  void Malloc(size_t bytes) {
    const size_t best = BestSpan();
    const size_t span = tlsf::SpanForRequest(bytes);
    const bool fits = span != 0 && span <= best;
    void* const p = heap_->Allocate(bytes);
    FUZZ_CHECK((p != nullptr) == fits,
               "Allocate(%zu) returned %p, but the largest free span is %zu",
               bytes, p, best);
    if (p == nullptr) {
      ++failed_;
      return;
    }
    Accept(p, bytes, tlsf::kAlignment);
  }

  void Memalign(size_t alignment, size_t bytes) {
    const size_t best = BestSpan();
    const size_t span = tlsf::SpanForRequest(bytes);
    bool fits = tlsf::IsPowerOfTwo(alignment) &&
                alignment <= Heap::kMaxAlignment && span != 0;
    if (fits && alignment > tlsf::kAlignment) {
      const size_t search = span + alignment - tlsf::kAlignment;
      fits = search < tlsf::kMaxSpan && search <= best;
    } else if (fits) {
      fits = span <= best;
    }
    void* const p = heap_->AllocateAligned(alignment, bytes);
    FUZZ_CHECK((p != nullptr) == fits,
               "AllocateAligned(%zu, %zu) returned %p, largest free span %zu",
               alignment, bytes, p, best);
    if (p == nullptr) {
      ++failed_;
      return;
    }
    Accept(p, bytes, alignment);
  }

  void Realloc() {
    const uint8_t choice = in_.Byte();
    void* const p =
        choice % 8 == 0 ? nullptr : blocks_.Pick(in_.Below(blocks_.count()));
    const size_t bytes = in_.Size();
    if (p == nullptr) {
      const size_t best = BestSpan();
      const size_t span = tlsf::SpanForRequest(bytes);
      void* const q = heap_->Reallocate(nullptr, bytes);
      FUZZ_CHECK((q != nullptr) == (span != 0 && span <= best),
                 "Reallocate(nullptr, %zu) returned %p, largest free span %zu",
                 bytes, q, best);
      if (q == nullptr) {
        ++failed_;
      } else {
        Accept(q, bytes, tlsf::kAlignment);
      }
      return;
    }
    const LiveBlocks::Block old = blocks_.Get(p);
    blocks_.Verify(p);
    if (bytes == 0) {
      blocks_.Remove(p);
      void* const q = heap_->Reallocate(p, 0);
      FUZZ_CHECK(q == nullptr, "Reallocate(%p, 0) returned %p", p, q);
      return;
    }
    const size_t old_span = old.size + tlsf::kBlockOverhead;
    const size_t want = tlsf::SpanForRequest(bytes);
    void* const q = heap_->Reallocate(p, bytes);
    if (q == nullptr) {
      ++failed_;
      FUZZ_CHECK(heap_->UsableSize(p) == old.size,
                 "a failed Reallocate(%p, %zu) changed the block", p, bytes);
      return;  // contents are checked with every live block
    }
    FUZZ_CHECK(want != 0, "Reallocate(%p, %zu) succeeded", p, bytes);
    if (want <= old_span) {
      FUZZ_CHECK(q == p, "shrinking Reallocate(%p, %zu) moved to %p", p, bytes,
                 q);
    }
    const size_t usable = heap_->UsableSize(q);
    FUZZ_CHECK(usable >= bytes &&
                   usable < want - tlsf::kBlockOverhead + tlsf::kMinFreeSpan,
               "Reallocate(%p, %zu) gave %zu usable bytes", p, bytes, usable);
    FUZZ_CHECK(heap_->BlockAlignment(q) == old.alignment,
               "Reallocate(%p) -> %p changed the alignment from %zu to %zu", p,
               q, old.alignment, heap_->BlockAlignment(q));
    blocks_.Moved(p, q, usable, bytes);
  }

  void Free() {
    void* const p = blocks_.Pick(in_.Below(blocks_.count()));
    if (p == nullptr) {
      FUZZ_CHECK(heap_->Free(nullptr), "Free(nullptr) returned false");
      return;
    }
    blocks_.Remove(p);
    FUZZ_CHECK(heap_->Free(p), "Free(%p) of a live block failed", p);
  }

  // Frees (or reallocates) a pointer that is not a live block and checks
  // that it is reported once, as `want` (or as kInvalidFree / kDoubleFree
  // when `either` is set), and changes nothing.
  void ExpectRejected(void* q, bool realloc, HeapError want, bool either) {
    FUZZ_CHECK(!blocks_.IsLive(q), "misuse probe %p is a live block", q);
    FUZZ_CHECK(heap_->UsableSize(q) == 0,
               "UsableSize(%p) of a non-block is %zu", q, heap_->UsableSize(q));
    FUZZ_CHECK(heap_->BlockAlignment(q) == 0,
               "BlockAlignment(%p) of a non-block", q);
    const uint64_t reports = reports_.count;
    if (realloc) {
      void* const r = heap_->Reallocate(q, in_.Size());
      FUZZ_CHECK(r == nullptr, "Reallocate(%p) of a non-block returned %p", q,
                 r);
    } else {
      FUZZ_CHECK(!heap_->Free(q), "Free(%p) of a non-block returned true", q);
    }
    FUZZ_CHECK(reports_.count == reports + 1,
               "misuse of %p reported %llu times", q,
               static_cast<unsigned long long>(reports_.count - reports));
    ++invalid_;
    if (either) {
      FUZZ_CHECK(reports_.last == HeapError::kInvalidFree ||
                     reports_.last == HeapError::kDoubleFree,
                 "misuse of %p reported as %s", q,
                 tlsf::HeapErrorName(reports_.last));
    } else if (!(want == HeapError::kDoubleFree &&
                 reports_.last == HeapError::kInvalidFree &&
                 MergedIntoFragment(q))) {
      FUZZ_CHECK(reports_.last == want, "misuse of %p reported as %s, not %s",
                 q, tlsf::HeapErrorName(reports_.last),
                 tlsf::HeapErrorName(want));
    }
  }

  // Documented in tlsf/heap.h (HeapError::kDoubleFree): a freed block that
  // merged into the 16-byte fragment in front of it, whose payload then
  // starts 16 bytes before q, lost its old header to the merged block's
  // free-list links, so a second free of q reads as kInvalidFree.
  bool MergedIntoFragment(const void* q) const {
    const Pool* const pool = heap_->FindPool(q);
    bool merged = false;
    if (pool != nullptr) {
      heap_->WalkPool(pool, [&](const BlockInfo& b) {
        merged = !b.used && Addr(b.ptr) + tlsf::kAlignment == Addr(q);
        return !merged;
      });
    }
    return merged;
  }

  void BadFree(bool realloc) {
    const uint8_t kind = in_.Byte() % 4;
    void* const live = blocks_.Pick(in_.Below(blocks_.count()));
    if (kind == 0 && stale_probes_ && !blocks_.stale().empty()) {
      // A freed pointer; it may have been handed out again since.
      void* const q = blocks_.PickStale(in_.Byte());
      if (!blocks_.IsLive(q)) {
        ExpectRejected(q, realloc, HeapError::kInvalidFree, /*either=*/true);
        return;
      }
    }
    if (kind == 1 && live != nullptr && blocks_.Get(live).size > 1) {
      // An interior pointer: its would-be header word lies in the payload.
      const size_t size = blocks_.Get(live).size;
      void* const q = static_cast<char*>(live) + 1 + in_.Below(size - 1);
      ExpectRejected(q, realloc, HeapError::kInvalidFree, /*either=*/false);
      return;
    }
    if (kind == 2 && live != nullptr) {
      // A block freed twice in a row: always reported as a double free.
      blocks_.Remove(live);
      FUZZ_CHECK(heap_->Free(live), "Free(%p) of a live block failed", live);
      ExpectRejected(live, realloc, HeapError::kDoubleFree, /*either=*/false);
      return;
    }
    // A pointer into zeroed memory the heap never managed.
    void* const q = g_foreign + 16 + in_.Below(sizeof(g_foreign) - 16);
    ExpectRejected(q, realloc, HeapError::kInvalidFree, /*either=*/false);
  }

  // --- Observation ---

  void Probe() {
    switch (in_.Byte() % 4) {
      case 0:
        heap_->ResetPeak();
        FUZZ_CHECK(heap_->Stats().peak_used_bytes == heap_->Stats().used_bytes,
                   "ResetPeak left the peak above used bytes");
        peak_floor_ = heap_->Stats().used_bytes;
        last_peak_ = peak_floor_;
        break;
      case 1:
        FUZZ_CHECK(
            (heap_->LargestFreeBin() < 0) == (heap_->LargestAllocatable() == 0),
            "LargestFreeBin %d disagrees with LargestAllocatable %zu",
            heap_->LargestFreeBin(), heap_->LargestAllocatable());
        break;
      case 2:
        WalkOnePool();
        break;
      default: {
        void* const p = blocks_.Pick(in_.Below(blocks_.count()));
        if (p == nullptr) break;
        Pool* const pool = heap_->FindPool(p);
        FUZZ_CHECK(pool != nullptr && Addr(p) >= Addr(Heap::PoolBegin(pool)) &&
                       Addr(p) < Addr(Heap::PoolEnd(pool)),
                   "FindPool(%p) of a live block", p);
        FUZZ_CHECK(heap_->FindPool(g_foreign + 64) == nullptr,
                   "FindPool of foreign memory");
        break;
      }
    }
  }

  void WalkOnePool() {
    if (pools_.empty()) return;
    const PoolModel& pool = pools_[in_.Below(pools_.size())];
    const absl::Status check = heap_->CheckPool(pool.pool);
    FUZZ_CHECK(check.ok(), "CheckPool: %s", check.ToString().c_str());
    size_t spans = 0;
    size_t used = 0;
    uintptr_t next = 0;
    const bool completed = heap_->WalkPool(pool.pool, [&](const BlockInfo& b) {
      FUZZ_CHECK(next == 0 || Addr(b.ptr) == next,
                 "WalkPool skipped from %p to %p",
                 reinterpret_cast<void*>(next), b.ptr);
      next = Addr(b.ptr) + b.size + tlsf::kBlockOverhead;
      spans += b.size + tlsf::kBlockOverhead;
      if (b.used) {
        FUZZ_CHECK(blocks_.IsLive(b.ptr) && blocks_.Get(b.ptr).size == b.size,
                   "WalkPool lists used block %p (%zu bytes) the model lacks",
                   b.ptr, b.size);
        ++used;
      }
      return true;
    });
    FUZZ_CHECK(completed, "a full WalkPool reported a stop");
    FUZZ_CHECK(spans == Heap::PoolCapacity(pool.pool),
               "WalkPool spans add up to %zu of capacity %zu", spans,
               Heap::PoolCapacity(pool.pool));
    FUZZ_CHECK(used == LiveBlocksIn(pool), "WalkPool found %zu used blocks",
               used);
    // A walk stopped after the first block reports the stop.
    FUZZ_CHECK(
        !heap_->WalkPool(pool.pool, [](const BlockInfo&) { return false; }),
        "a stopped WalkPool reported completion");
  }

  void CheckInvariants(const char* op) {
    const absl::Status check = heap_->Check();
    FUZZ_CHECK(check.ok(), "after %s: Check(): %s", op,
               check.ToString().c_str());
    const HeapStats s = heap_->Stats();
    size_t capacity = 0;
    for (const PoolModel& p : pools_) capacity += Heap::PoolCapacity(p.pool);
    size_t used = 0;
    for (const auto& [p, block] : blocks_.blocks()) {
      used += block.size + tlsf::kBlockOverhead;
      bool inside = false;
      for (const PoolModel& pool : pools_) {
        inside = inside || (p - LiveBlocks::kHeaderBytes > pool.begin &&
                            p + block.size <= pool.end - tlsf::kBlockOverhead);
      }
      FUZZ_CHECK(inside, "after %s: block %p (%zu bytes) is outside every pool",
                 op, reinterpret_cast<void*>(p), block.size);
    }
    FUZZ_CHECK(s.live_blocks == blocks_.count(),
               "after %s: live_blocks %zu, model %zu", op, s.live_blocks,
               blocks_.count());
    FUZZ_CHECK(s.used_bytes == used, "after %s: used_bytes %zu, model %zu", op,
               s.used_bytes, used);
    FUZZ_CHECK(s.capacity_bytes == capacity &&
                   s.used_bytes + s.free_bytes == s.capacity_bytes,
               "after %s: capacity %zu (model %zu), used %zu + free %zu", op,
               s.capacity_bytes, capacity, s.used_bytes, s.free_bytes);
    FUZZ_CHECK(s.pool_count == pools_.size(), "after %s: pool_count %zu", op,
               s.pool_count);
    FUZZ_CHECK(s.failed_allocations == failed_,
               "after %s: failed_allocations %llu, model %llu", op,
               static_cast<unsigned long long>(s.failed_allocations),
               static_cast<unsigned long long>(failed_));
    FUZZ_CHECK(s.invalid_frees == invalid_ && reports_.count == invalid_,
               "after %s: invalid_frees %llu, reports %llu, model %llu", op,
               static_cast<unsigned long long>(s.invalid_frees),
               static_cast<unsigned long long>(reports_.count),
               static_cast<unsigned long long>(invalid_));
    peak_floor_ = std::max(peak_floor_, s.used_bytes);
    FUZZ_CHECK(
        s.peak_used_bytes >= peak_floor_ && s.peak_used_bytes >= last_peak_,
        "after %s: peak %zu below a used_bytes of %zu or earlier peak %zu", op,
        s.peak_used_bytes, peak_floor_, last_peak_);
    last_peak_ = s.peak_used_bytes;
    size_t listed = 0;
    heap_->ForEachPool([&](Pool* p) {
      FUZZ_CHECK(listed < pools_.size() && pools_[listed].pool == p,
                 "after %s: ForEachPool order differs from the add order", op);
      ++listed;
    });
    blocks_.VerifyAll();
  }

  ByteReader& in_;
  const bool stale_probes_;
  Heap* heap_;
  Reports reports_;
  LiveBlocks blocks_;
  std::vector<PoolModel> pools_;  // in the order they were added
  std::vector<Pool*> removed_;    // recently removed pool records
  uint64_t failed_ = 0;
  uint64_t invalid_ = 0;
  size_t peak_floor_ = 0;  // largest used_bytes since the last ResetPeak
  size_t last_peak_ = 0;
};

}  // namespace
}  // namespace fmemp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool stale_probes = fmemp::fuzz::StaticMemoryLooksSafe();
  fmemp::fuzz::ByteReader in(data, size);
  fmemp::fuzz::HeapFuzzer fuzzer(&in, stale_probes);
  fuzzer.Run();
  return 0;
}
