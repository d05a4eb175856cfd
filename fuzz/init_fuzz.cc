// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/init_fuzz.cc
//
// libFuzzer target for FMempInit (fmemp/fmemp.h) on arbitrary buffer bounds.
//
// The input is a sequence of init attempts on one FMemp. Each attempt reads
// a control byte (policy, whether to FMempRemove first), then a begin and an
// end bound: NULL, the start or one past the end of a static buffer, or any
// offset in between, so ranges come out reversed, empty, unaligned, tiny or
// whole. Only pointers into the buffer, one past it, or NULL are passed.
//
// For each attempt the target checks the documented result: FMEMP_SUCCESS
// exactly when both bounds are non-NULL, end > begin and the range holds a
// minimum TLSF pool after aligning its bounds inward; otherwise
// FMEMP_ERR_INVALID_BUF (FMEMP_ERR_ALREADY_INIT on a ready pool, which it
// leaves as it was). Then:
//
// * success: the probed total is the aligned range less the pool overhead;
//   allocations of fuzzed sizes and alignments until one fails all lie
//   inside [begin, end), do not overlap and keep their contents; after they
//   are freed, malloc(0) and a malloc of the whole capacity succeed, and the
//   integrity check and the listing are sound;
// * failure: the pool is not ready and every call on it is refused without
//   effect: allocations return NULL, free is a no-op, management calls
//   return FMEMP_ERR_NOT_INIT and the probe reads zeros.
//
// The input ends with FMempRemove (twice: the second is a no-op) and
// FMempRelease.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fmemp/fmemp.h"
#include "fuzz/byte_reader.h"
#include "fuzz/live_blocks.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp::fuzz {
namespace {

// Init attempts per input.
constexpr int kMaxAttempts = 24;
// Allocations per successful attempt.
constexpr int kMaxAllocations = 48;

alignas(64) unsigned char g_buffer[3001];
alignas(64) unsigned char g_foreign[256];

struct Reports {
  uint64_t count = 0;
  int last = 0;
  static void Handler(void* user, int kind, const void*) {
    Reports* const reports = static_cast<Reports*>(user);
    ++reports->count;
    reports->last = kind;
  }
};

void CountLine(void* user, const char*) { ++*static_cast<size_t*>(user); }

// A bound: NULL, the buffer's start, one past its end, or an offset.
unsigned char* PickBound(ByteReader& in) {
  const uint8_t kind = in.Byte() % 8;
  switch (kind) {
    case 0:
      return nullptr;
    case 1:
      return g_buffer;
    case 2:
      return g_buffer + sizeof(g_buffer);
    case 3:  // close to the start: tiny, unaligned ranges
      return g_buffer + in.Byte() % 128;
    default:
      return g_buffer + in.Below(sizeof(g_buffer) + 1);
  }
}

// Whether FMempInit must accept [begin, end).
bool Acceptable(const void* begin, const void* end, size_t* capacity) {
  if (begin == nullptr || end == nullptr || Addr(end) <= Addr(begin)) {
    return false;
  }
  const uintptr_t lo = tlsf::AlignUp(Addr(begin), tlsf::kAlignment);
  const uintptr_t hi = Addr(end) & ~uintptr_t{tlsf::kAlignment - 1};
  if (hi < lo || hi - lo < tlsf::Heap::kMinPoolBytes) return false;
  *capacity = hi - lo - tlsf::Heap::kPoolOverhead;
  return true;
}

class InitFuzzer {
 public:
  explicit InitFuzzer(ByteReader* in) : in_(*in) {}
  InitFuzzer(const InitFuzzer&) = delete;
  InitFuzzer& operator=(const InitFuzzer&) = delete;

  void Run() {
    for (int i = 0; i < kMaxAttempts && !in_.empty(); ++i) Attempt();
    FMempRemove(&memp_);
    FMempRemove(&memp_);
    FUZZ_CHECK(memp_.is_ready == 0, "FMempRemove left the pool ready");
    ExpectUnusable();
    FMempRelease(&memp_);
    FUZZ_CHECK(memp_.priv == nullptr, "FMempRelease kept the front-end");
    std::memset(g_buffer, 0, sizeof(g_buffer));
  }

 private:
  void Attempt() {
    const uint8_t control = in_.Byte();
    if (control & 1) {
      FMempRemove(&memp_);
      std::memset(g_buffer, 0, sizeof(g_buffer));
      ready_ = false;
    }
    unsigned char* const begin = PickBound(in_);
    unsigned char* const end = PickBound(in_);
    size_t capacity = 0;
    const bool acceptable = Acceptable(begin, end, &capacity);
    FError want = acceptable ? FMEMP_SUCCESS : FMEMP_ERR_INVALID_BUF;
    if (ready_) want = FMEMP_ERR_ALREADY_INIT;
    const int policy = (control >> 1) % 4;
    const FError got =
        policy == 3 ? FMempInit(&memp_, begin, end)
                    : FMempInitWithPolicy(&memp_, begin, end,
                                          static_cast<FMempPolicy>(policy));
    FMempSetErrorHandler(&memp_, &Reports::Handler, &reports_);
    FUZZ_CHECK(got == want, "FMempInit(%p, %p) returned %#x, expected %#x",
               static_cast<void*>(begin), static_cast<void*>(end), got, want);
    if (ready_) {
      FUZZ_CHECK(memp_.is_ready == FT_COMPONENT_IS_READY,
                 "a refused FMempInit made a ready pool unusable");
      return;  // the pool keeps the bounds it was given before
    }
    if (got != FMEMP_SUCCESS) {
      FUZZ_CHECK(memp_.is_ready == 0, "a failed FMempInit left is_ready set");
      ExpectUnusable();
      return;
    }
    ready_ = true;
    begin_ = Addr(begin);
    end_ = Addr(end);
    FUZZ_CHECK(memp_.is_ready == FT_COMPONENT_IS_READY,
               "FMempInit succeeded but the pool is not ready");
    FUZZ_CHECK(
        memp_.pools_list != nullptr && memp_.pools_list->pool_addr == begin,
        "pools_list does not name the region");
    Exercise(capacity);
  }

  // Every call on a pool that is not ready is refused without effect.
  void ExpectUnusable() {
    const uint64_t reports = reports_.count;
    FUZZ_CHECK(FMempMalloc(&memp_, 16) == nullptr &&
                   FMempMalloc(&memp_, 0) == nullptr &&
                   FMempCalloc(&memp_, 2, 8) == nullptr &&
                   FMempMallocAlign(&memp_, 16, 64) == nullptr &&
                   FMempRealloc(&memp_, nullptr, 32) == nullptr &&
                   FMempRealloc(&memp_, g_buffer + 64, 32) == nullptr,
               "an allocation from a pool that is not ready succeeded");
    FMempFree(&memp_, g_buffer + 64);
    FMempFree(&memp_, g_foreign + 32);
    FUZZ_CHECK(reports_.count == reports,
               "a pool that is not ready reported misuse");
    u32 total = 1, used = 1, max_used = 1;
    FMemProbe(&memp_, &total, &used, &max_used);
    FUZZ_CHECK(total == 0 && used == 0 && max_used == 0,
               "FMemProbe of a pool that is not ready: %u %u %u", total, used,
               max_used);
    size_t lines = 0;
    FUZZ_CHECK(
        FMempCheck(&memp_) == FMEMP_ERR_NOT_INIT &&
            FMemListAllTo(&memp_, &CountLine, &lines) == FMEMP_ERR_NOT_INIT &&
            FMempAddRegion(&memp_, g_buffer, g_buffer + 512) ==
                FMEMP_ERR_NOT_INIT &&
            FMempRemoveRegion(&memp_, g_buffer) == FMEMP_ERR_NOT_INIT &&
            FMempRegionCount(&memp_) == 0 && lines == 0,
        "a management call on a pool that is not ready");
  }

  bool Inside(const void* p, size_t bytes) const {
    return Addr(p) - tlsf::kBlockOverhead >= begin_ && Addr(p) < end_ &&
           bytes <= end_ - Addr(p);
  }

  void Exercise(size_t capacity) {
    u32 total = 0, used = 0, max_used = 0;
    FMemProbe(&memp_, &total, &used, &max_used);
    FUZZ_CHECK(total == capacity && used == 0 && max_used == 0,
               "a fresh pool of capacity %zu probes as %u %u %u", capacity,
               total, used, max_used);
    FUZZ_CHECK(FMempRegionCount(&memp_) == 1, "a fresh pool has %u regions",
               FMempRegionCount(&memp_));
    LiveBlocks blocks;
    const int allocations = 1 + in_.Byte() % kMaxAllocations;
    for (int i = 0; i < allocations; ++i) {
      const uint8_t how = in_.Byte();
      const size_t bytes = in_.Size();
      size_t alignment = tlsf::kAlignment;
      void* p = nullptr;
      if (how % 4 == 0) {
        alignment = in_.Alignment();
        p = FMempMallocAlign(&memp_, bytes, alignment);
      } else {
        p = FMempMalloc(&memp_, bytes);
      }
      if (p == nullptr) {
        if (how % 8 != 1) break;  // usually stop at the first failure
        continue;
      }
      FUZZ_CHECK(Inside(p, bytes), "block %p of %zu bytes is outside [%p, %p)",
                 p, bytes, reinterpret_cast<void*>(begin_),
                 reinterpret_cast<void*>(end_));
      blocks.Add(p, bytes, alignment);
      FUZZ_CHECK(FMempCheck(&memp_) == FMEMP_SUCCESS, "check after malloc");
    }
    size_t lines = 0;
    FUZZ_CHECK(FMemListAllTo(&memp_, &CountLine, &lines) == FMEMP_SUCCESS &&
                   lines == 1 + blocks.count() + 2,
               "the listing of %zu blocks has %zu lines", blocks.count(),
               lines);
    // A foreign free is reported (quietly, to the handler) and ignored.
    const uint64_t reports = reports_.count;
    FMempFree(&memp_, g_foreign + 16 + in_.Below(sizeof(g_foreign) - 16));
    FUZZ_CHECK(reports_.count == reports + 1 &&
                   reports_.last == FMEMP_MISUSE_FOREIGN_POINTER,
               "a foreign free was not reported once as foreign");
    blocks.VerifyAll();
    while (!blocks.empty()) {
      void* const p = blocks.Pick(in_.Byte());
      blocks.Remove(p);
      FMempFree(&memp_, p);
    }
    FMemProbe(&memp_, &total, &used, &max_used);
    FUZZ_CHECK(total == capacity && used == 0 && max_used <= total,
               "after freeing everything: %u %u %u", total, used, max_used);
    // Round trips on the empty pool: the smallest block and the whole pool.
    void* const small = FMempMalloc(&memp_, 0);
    FUZZ_CHECK(small != nullptr && Inside(small, 1),
               "malloc(0) on an empty pool returned %p", small);
    FMempFree(&memp_, small);
    const size_t whole = capacity - tlsf::kBlockOverhead;
    void* const all = FMempMalloc(&memp_, whole);
    FUZZ_CHECK(all != nullptr && Inside(all, whole),
               "malloc(%zu) of the whole empty pool returned %p", whole, all);
    std::memset(all, 0x5a, whole);
    FUZZ_CHECK(FMempMalloc(&memp_, 0) == nullptr,
               "malloc(0) on a full pool succeeded");
    FMempFree(&memp_, all);
    FUZZ_CHECK(FMempCheck(&memp_) == FMEMP_SUCCESS, "check after round trips");
    FMemProbe(&memp_, &total, &used, &max_used);
    FUZZ_CHECK(used == 0 && max_used == total,
               "after the whole-pool round trip: %u %u %u", total, used,
               max_used);
  }

  ByteReader& in_;
  FMemp memp_ = {};
  Reports reports_;
  bool ready_ = false;
  uintptr_t begin_ = 0;
  uintptr_t end_ = 0;
};

}  // namespace
}  // namespace fmemp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fmemp::fuzz::ByteReader in(data, size);
  fmemp::fuzz::InitFuzzer fuzzer(&in);
  fuzzer.Run();
  return 0;
}
