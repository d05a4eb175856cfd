// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/bad_input_test.cc
//
// The bad-input table of docs/HARDENING.md, as a table-driven test. Each row
// sets up a "world": a pool with two regions (the second with an unaligned
// end) and a few live blocks filled with patterns in both, with a misuse
// handler and an out-of-memory handler that record every call. The row then
// applies one kind of bad input and checks what the calls return; the
// harness checks what was reported (misuse kinds, invalid_frees,
// failed_allocations, out-of-memory calls), that the pool's totals, usage and
// live blocks did not change, that the integrity check passes, that every
// live block keeps its contents, and that the pool still serves. Each world
// is built over the shared adapter (fmemp/testing/front_end.h). The table
// runs over the SDK's C API as FMempInit starts it (CApiBadInputTest) and
// over fmemp::Memp<sync::Mutex> (MempBadInputTest), each with rows of its
// own where the two APIs differ; the rows they share also run under every
// other front-end of fmemp/testing/front_end_list.h (PolicyBadInputTest:
// each lock, caches, thread heaps, each C API policy).
//
// RegionStartDeathTest holds the inputs that once made the library read
// outside the caller's memory (a pointer to a region's first byte); each runs
// in a child process, over a region preceded by an inaccessible page.
//
// Known failure: the OverflowIntoNextHeader rows (realloc of a block whose
// next header was overwritten moves the block instead of refusing it; see
// docs/HARDENING.md, "Bugs found by these tests").

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/misuse_kind.h"
#include "fmemp/test_util.h"
#include "fmemp/testing/front_end.h"
#include "fmemp/testing/front_end_list.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"

namespace fmemp {
namespace {

using ::fmemp::test_util::Fill;
using ::fmemp::test_util::HasFill;
using ::fmemp::test_util::ScopedFMemp;

constexpr size_t kRegionBytes = 64 * 1024;
constexpr size_t kSpareBytes = 64 * 1024;
constexpr size_t kTiB = size_t{1} << 40;

// --- Memory the tests own ---

// Zeroed heap memory for regions, 16-byte aligned (operator new[]).
class Buffer {
 public:
  explicit Buffer(size_t bytes) : bytes_(bytes), data_(new uint8_t[bytes]) {
    std::memset(data_.get(), 0, bytes);
  }
  uint8_t* begin() const { return data_.get(); }
  uint8_t* end() const { return data_.get() + bytes_; }
  bool Contains(const void* p) const {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    return c >= begin() && c < end();
  }
  std::vector<uint8_t> Bytes() const {
    return std::vector<uint8_t>(begin(), end());
  }
  bool IsZero() const {
    return std::all_of(begin(), end(), [](uint8_t b) { return b == 0; });
  }

 private:
  size_t bytes_;
  std::unique_ptr<uint8_t[]> data_;
};

// `bytes` of memory preceded by an inaccessible page: reading the byte
// before begin() faults.
class GuardedMemory {
 public:
  explicit GuardedMemory(size_t bytes)
      : page_(static_cast<size_t>(sysconf(_SC_PAGESIZE))), bytes_(bytes) {
    void* map = mmap(nullptr, page_ + bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return;
    map_ = static_cast<uint8_t*>(map);
    if (mprotect(map_, page_, PROT_NONE) != 0) {
      munmap(map_, page_ + bytes_);
      map_ = nullptr;
    }
  }
  GuardedMemory(const GuardedMemory&) = delete;
  GuardedMemory& operator=(const GuardedMemory&) = delete;
  ~GuardedMemory() {
    if (map_ != nullptr) munmap(map_, page_ + bytes_);
  }
  bool ok() const { return map_ != nullptr; }
  uint8_t* begin() const { return map_ + page_; }
  uint8_t* end() const { return begin() + bytes_; }

 private:
  size_t page_;
  size_t bytes_;
  uint8_t* map_ = nullptr;
};

// `v`, as a value the optimiser cannot see through.
size_t Opaque(size_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

bool IsAligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

uint8_t* AlignDown(uint8_t* p, size_t alignment) {
  return reinterpret_cast<uint8_t*>(reinterpret_cast<uintptr_t>(p) &
                                    ~uintptr_t{alignment - 1});
}

// p + offset computed on integers: the result may lie outside any object
// (the library is expected to refuse such a range without touching it).
uint8_t* Offset(const uint8_t* p, ptrdiff_t offset) {
  return reinterpret_cast<uint8_t*>(reinterpret_cast<uintptr_t>(p) +
                                    static_cast<uintptr_t>(offset));
}

// --- Reports ---

// A misuse report in the C API's terms (FMEMP_MISUSE_*), whichever API made
// it.
struct Report {
  int kind;
  const void* ptr;
};

struct Reports {
  std::vector<Report> seen;
  std::vector<int> Kinds() const {
    std::vector<int> kinds;
    kinds.reserve(seen.size());
    for (const Report& r : seen) kinds.push_back(r.kind);
    return kinds;
  }
  // The C API's handler, and the adapter's listener.
  static void RecordC(void* user, int kind, const void* ptr) {
    static_cast<Reports*>(user)->seen.push_back(Report{kind, ptr});
  }
  // The front-end's handler.
  static void RecordMemp(void* context, MempError error, const void* ptr) {
    static_cast<Reports*>(context)->seen.push_back(
        Report{ToMisuseKind(error), ptr});
  }
};

// Region call results in one vocabulary (fmemp/testing/front_end.h), so
// that a row can run over every API.
using testkit::Outcome;

// What a row expects the harness to see: these report kinds in this order
// (each counted in invalid_frees), this many more failed allocations, and
// this many calls of the out-of-memory handler (which never retries here).
struct Expected {
  std::vector<int> kinds;
  uint64_t failed = 0;
  uint64_t oom = 0;
};

// The counters the harness compares before and after a row.
struct Counters {
  uint64_t total = 0;
  uint64_t used = 0;
  uint64_t live = 0;
  uint64_t regions = 0;
  uint64_t failed = 0;
  uint64_t invalid = 0;
};

// A live block of the world and the seed of its pattern.
struct Live {
  uint8_t* ptr;
  size_t size;
  uint8_t seed;
};

// --- The worlds ---

// What both worlds share: the memory, the live blocks, the reports.
class WorldBase {
 public:
  WorldBase() : a_(kRegionBytes + 64), b_(kRegionBytes), spare_(kSpareBytes) {}

  // Region A is [a().begin(), a_end()); region B is [b().begin(), b_end()),
  // whose end is not 16-byte aligned. Both ends lie inside their buffers,
  // so the bytes just past each region belong to no region.
  const Buffer& a() const { return a_; }
  const Buffer& b() const { return b_; }
  uint8_t* a_end() const { return a_.begin() + kRegionBytes; }
  uint8_t* b_end() const { return b_.end() - 8; }
  // Memory for rows' own regions and thread heaps; no part of the world.
  const Buffer& spare() const { return spare_; }
  const std::vector<Live>& live() const { return live_; }
  // The live block of 1000 bytes.
  const Live& thousand() const { return live_[4]; }
  Reports& reports() { return reports_; }
  // Requests (size, alignment) the out-of-memory handler was told of.
  const std::vector<std::pair<size_t, size_t>>& oom_calls() const {
    return oom_calls_;
  }

  // Whether [p, p + n) overlaps a live block's header or payload.
  bool OverlapsLiveBlock(const void* p, size_t n) const {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    return std::any_of(live_.begin(), live_.end(), [c, n](const Live& l) {
      return c < l.ptr + l.size && l.ptr - 8 < c + n;
    });
  }
  void ExpectLiveBlocksIntact() const {
    for (const Live& l : live_) {
      EXPECT_TRUE(HasFill(l.ptr, l.size, l.seed))
          << "live block " << static_cast<void*>(l.ptr) << " of " << l.size
          << " bytes lost its contents";
    }
  }

 protected:
  // Allocates the live blocks with `alloc` (a callable taking the block's
  // index) and fills them.
  template <typename Alloc>
  void AddLiveBlocks(Alloc alloc) {
    // Two blocks of 40 KiB cannot share a 64 KiB region: both regions hold
    // live blocks.
    const size_t sizes[] = {40 * 1024, 40 * 1024, 1, 24, 1000, 300, 200, 3000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
      uint8_t* p = static_cast<uint8_t*>(alloc(i, sizes[i]));
      ASSERT_NE(p, nullptr) << i;
      const uint8_t seed = static_cast<uint8_t>(17 * i + 3);
      Fill(p, sizes[i], seed);
      live_.push_back(Live{p, sizes[i], seed});
    }
    bool in_a = false, in_b = false;
    for (const Live& l : live_) {
      in_a |= a_.Contains(l.ptr);
      in_b |= b_.Contains(l.ptr) && l.ptr < b_end();
    }
    ASSERT_TRUE(in_a && in_b) << "the world needs live blocks in both regions";
  }

  static bool RecordOomMemp(void* context, size_t size, size_t align) {
    static_cast<WorldBase*>(context)->oom_calls_.emplace_back(size, align);
    return false;
  }

  Buffer a_, b_, spare_;
  std::vector<Live> live_;
  Reports reports_;
  std::vector<std::pair<size_t, size_t>> oom_calls_;
};

// The world over one front-end of fmemp/testing/front_end_list.h: regions
// A and B (the C API: initialised over A), every report and out-of-memory
// call recorded.
template <typename FrontEnd>
class World : public WorldBase {
 public:
  World() = default;
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  void Build() {
    front_.reports().SetListener(&Reports::RecordC, &reports_);
    front_.SetOutOfMemoryHandler(&RecordOomMemp, this);
    ASSERT_EQ(front_.Init(a_.begin(), a_end()), Outcome::kOk);
    ASSERT_EQ(front_.AddRegion(b_.begin(), b_end()), Outcome::kOk);
    AddLiveBlocks([this](size_t i, size_t size) -> void* {
      switch (i) {
        case 5:
          return front_.Calloc(10, size / 10);
        case 6:
          return front_.AllocateAligned(256, size);
        case 7: {  // grown by a moving realloc
          void* p = front_.Allocate(50);
          void* fence = front_.Allocate(16);
          void* q = front_.Reallocate(p, size);
          front_.Free(fence);
          return q;
        }
        default:
          return front_.Allocate(size);
      }
    });
  }

  // The FMemp (C API) or the C++ front-end itself, for rows of one API.
  decltype(auto) memp() {
    if constexpr (FrontEnd::kIsCApi) {
      return front_.memp();
    } else {
      return (front_.wrapped());
    }
  }

  void* Malloc(size_t n) { return front_.Allocate(n); }
  // The arguments reach the front-end as values unknown to the compiler:
  // with a row's constant (SIZE_MAX) propagated into a front-end's inlined
  // memset, g++ -O1 (the tsan config) warns about a call that never runs.
  void* Calloc(size_t count, size_t size) {
    return front_.Calloc(Opaque(count), Opaque(size));
  }
  void* MallocAlign(size_t size, size_t align) {
    return front_.AllocateAligned(align, size);
  }
  void* Realloc(void* p, size_t n) { return front_.Reallocate(p, n); }
  // Checks the contract on every free: Free returns false exactly when it
  // reported misuse, and (where the API has it) UsableSize is 0 exactly for
  // the pointers that are not live blocks.
  void Free(void* p) {
    const size_t reports_before = reports_.seen.size();
    const size_t usable = front_.UsableSize(p);
    const bool freed = front_.Free(p);
    const bool reported = reports_.seen.size() != reports_before;
    EXPECT_EQ(freed, !reported) << p;
    if (FrontEnd::kHasUsableSize && p != nullptr && usable == 0) {
      EXPECT_FALSE(freed) << p << " is not a live block, yet it was freed";
    }
    if (FrontEnd::kHasUsableSize && p != nullptr && freed) {
      EXPECT_NE(usable, 0u) << p << " was freed, yet UsableSize said 0";
    }
  }
  Outcome AddRegion(void* begin, void* end) {
    return front_.AddRegion(begin, end);
  }
  Outcome RemoveRegion(void* begin) { return front_.RemoveRegion(begin); }
  bool CheckOk() { return front_.Check() == Outcome::kOk; }
  Counters Read() {
    const testkit::Usage u = front_.Probe();
    Counters c;
    c.total = u.capacity;
    c.used = u.used;
    c.live = u.live;
    c.regions = u.regions;
    c.failed = u.failed;
    c.invalid = u.invalid_frees;
    return c;
  }
  // The largest request one region can serve now.
  size_t LargestInOneRegion() {
    size_t largest = 0;
    for (const testkit::RegionUsage& r : front_.ProbeRegions()) {
      largest = std::max<size_t>(largest, r.largest);
    }
    return largest;
  }

 private:
  FrontEnd front_;
};

// The two worlds every row was written for: the C API as FMempInit starts
// it, and the C++ front-end with a mutex.
using CApiWorld = World<testkit::CApiDefault>;
using MempWorld = World<testkit::MempMutex>;

// --- Rows that run over both APIs ---

// The end before the begin: refused, nothing written.
template <typename W>
Expected ReversedBuffer(W& w) {
  uint8_t* const s = w.spare().begin();
  EXPECT_EQ(w.AddRegion(w.spare().end(), s), Outcome::kInvalidBuffer);
  EXPECT_EQ(w.AddRegion(s + 4096, s + 16), Outcome::kInvalidBuffer);
  EXPECT_EQ(w.AddRegion(s + 4097, s + 4096), Outcome::kInvalidBuffer);
  EXPECT_TRUE(w.spare().IsZero());
  return {};
}

// Empty ranges, also after aligning the bounds inward, and NULL bounds.
template <typename W>
Expected EmptyBuffer(W& w) {
  uint8_t* const s = w.spare().begin();
  EXPECT_EQ(w.AddRegion(s + 64, s + 64), Outcome::kInvalidBuffer);
  EXPECT_EQ(w.AddRegion(s + 1, s + 15), Outcome::kInvalidBuffer);
  EXPECT_EQ(w.AddRegion(nullptr, s + 4096), Outcome::kInvalidBuffer);
  EXPECT_EQ(w.AddRegion(s, nullptr), Outcome::kInvalidBuffer);
  EXPECT_EQ(w.AddRegion(nullptr, nullptr), Outcome::kInvalidBuffer);
  EXPECT_TRUE(w.spare().IsZero());
  return {};
}

// Every range below the minimum is refused; the minimum is accepted (and
// removed again).
template <typename W>
Expected TinyBuffer(W& w) {
  uint8_t* const s = w.spare().begin() + 4096;
  size_t minimum = 0;
  for (size_t n = 1; n <= 512 && minimum == 0; ++n) {
    const Outcome o = w.AddRegion(s, s + n);
    if (o == Outcome::kOk) {
      minimum = n;
    } else {
      EXPECT_EQ(o, Outcome::kInvalidBuffer) << n;
      EXPECT_TRUE(w.spare().IsZero()) << n;
    }
  }
  EXPECT_GT(minimum, 0u);
  EXPECT_LE(minimum, 256u) << "bookkeeping lives outside the region";
  EXPECT_EQ(w.RemoveRegion(s), Outcome::kOk);
  return {};
}

// Unaligned bounds are aligned inward; the region is known (and removed) by
// the begin it was given, not by the aligned one.
template <typename W>
Expected UnalignedBuffer(W& w) {
  uint8_t* const s = w.spare().begin();
  uint8_t* const begin = s + 4096 + 5;
  uint8_t* const end = s + 4096 + 8192 - 7;
  EXPECT_EQ(w.AddRegion(begin, end), Outcome::kOk);
  EXPECT_EQ(w.RemoveRegion(s + 4096 + 16), Outcome::kNotFound);
  // Nothing was written outside [begin, end) (the bytes around it are
  // still zero once the region is gone).
  EXPECT_EQ(w.RemoveRegion(begin), Outcome::kOk);
  for (uint8_t* p = s + 4096; p < begin; ++p) EXPECT_EQ(*p, 0);
  for (uint8_t* p = end; p < s + 4096 + 8192; ++p) EXPECT_EQ(*p, 0);
  return {};
}

// Every kind of overlap with the world's regions is refused.
template <typename W>
Expected OverlappingRegion(W& w) {
  uint8_t* const a = w.a().begin();
  uint8_t* const a_end = w.a_end();
  uint8_t* const b = w.b().begin();
  uint8_t* const b_end = w.b_end();
  uint8_t* const low = std::min(a, b);
  uint8_t* const high = std::max(a_end, b_end);
  uint8_t* const block = w.thousand().ptr;
  const std::vector<std::pair<uint8_t*, uint8_t*>> overlapping = {
      {a, a_end},                           // the same region again
      {a + 4096, a + 8192},                 // inside
      {Offset(a, -16), Offset(a_end, 16)},  // around
      {Offset(a, -4096), a + 16},           // over the start
      {a_end - 16, Offset(a_end, 4096)},    // over the end
      {b + 100, b_end},                     // inside the second region
      {b_end - 1, Offset(b_end, 4096)},     // one byte of the unaligned end
      {low, high},                          // both regions
      {block, block + 1000},                // one of its own live blocks
  };
  for (const auto& [begin, end] : overlapping) {
    EXPECT_EQ(w.AddRegion(begin, end), Outcome::kOverlap)
        << static_cast<void*>(begin) << " " << static_cast<void*>(end);
  }
  return {};
}

template <typename W>
Expected RemoveUnknownRegion(W& w) {
  EXPECT_EQ(w.RemoveRegion(w.spare().begin()), Outcome::kNotFound);
  EXPECT_EQ(w.RemoveRegion(w.a().begin() + 16), Outcome::kNotFound);
  EXPECT_EQ(w.RemoveRegion(w.a().begin() + 1), Outcome::kNotFound);
  EXPECT_EQ(w.RemoveRegion(w.b_end()), Outcome::kNotFound);
  EXPECT_EQ(w.RemoveRegion(nullptr), Outcome::kNotFound);
  return {};
}

template <typename W>
Expected RemoveRegionWithLiveBlocks(W& w) {
  EXPECT_EQ(w.RemoveRegion(w.a().begin()), Outcome::kBusy);
  EXPECT_EQ(w.RemoveRegion(w.b().begin()), Outcome::kBusy);
  return {};
}

// Not an error: each zero-byte request gets a unique minimum block.
template <typename W>
Expected ZeroSizeMalloc(W& w) {
  const uint64_t live = w.Read().live;
  std::vector<void*> blocks = {w.Malloc(0),          w.Malloc(0),
                               w.Calloc(0, 16),      w.Calloc(16, 0),
                               w.MallocAlign(0, 64), w.Realloc(nullptr, 0)};
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_NE(blocks[i], nullptr) << i;
    if (blocks[i] == nullptr) return {};
    EXPECT_TRUE(IsAligned(blocks[i], i == 4 ? 64 : 16)) << i;
    EXPECT_FALSE(w.OverlapsLiveBlock(blocks[i], 1)) << i;
    for (size_t j = 0; j < i; ++j) EXPECT_NE(blocks[i], blocks[j]);
  }
  EXPECT_EQ(w.Read().live, live + blocks.size());
  EXPECT_EQ(w.Realloc(blocks[0], 0), nullptr);  // frees
  for (size_t i = 1; i < blocks.size(); ++i) w.Free(blocks[i]);
  return {};
}

// Sizes no region can serve, up to SIZE_MAX (no wrap-around to a small
// request), and one larger than any region but smaller than the free total.
template <typename W>
Expected HugeSizes(W& w) {
  const size_t per_region = w.LargestInOneRegion();
  EXPECT_LT(per_region + 1, w.Read().total - w.Read().used)
      << "the world should have more free bytes than any one region";
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 24, SIZE_MAX / 2,
                          kTiB,     kTiB - 24,     per_region + 1};
  for (size_t n : sizes) EXPECT_EQ(w.Malloc(n), nullptr) << n;
  EXPECT_EQ(w.MallocAlign(SIZE_MAX, 64), nullptr);
  EXPECT_EQ(w.MallocAlign(SIZE_MAX - 4096, 4096), nullptr);
  EXPECT_EQ(w.Calloc(1, SIZE_MAX), nullptr);
  EXPECT_EQ(w.Calloc(SIZE_MAX, 1), nullptr);
  EXPECT_EQ(w.Realloc(nullptr, SIZE_MAX), nullptr);
  using Request = std::pair<size_t, size_t>;
  EXPECT_EQ(w.oom_calls(),
            (std::vector<Request>{{kTiB - 24, 16}, {per_region + 1, 16}}));
  // Only the well-formed requests (at most the largest TLSF request,
  // 1 TiB - 24) reach the out-of-memory handler: kTiB - 24 and
  // per_region + 1.
  return Expected{{}, sizeof(sizes) / sizeof(sizes[0]) + 5, 2};
}

template <typename W>
Expected CallocOverflow(W& w) {
  EXPECT_EQ(w.Calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(w.Calloc(size_t{1} << 33, size_t{1} << 31), nullptr);
  EXPECT_EQ(w.Calloc(SIZE_MAX, SIZE_MAX), nullptr);
  EXPECT_EQ(w.Calloc(2, SIZE_MAX / 2 + 1), nullptr);  // exactly 2^64
  return Expected{{}, 4};
}

template <typename W>
Expected AlignmentZero(W& w) {
  EXPECT_EQ(w.MallocAlign(64, 0), nullptr);
  EXPECT_EQ(w.MallocAlign(0, 0), nullptr);
  return Expected{{}, 2};
}

template <typename W>
Expected AlignmentNotPowerOfTwo(W& w) {
  const size_t alignments[] = {
      3, 24, 48, 100, 4097, (size_t{1} << 20) + 16, SIZE_MAX};
  for (size_t align : alignments) {
    EXPECT_EQ(w.MallocAlign(64, align), nullptr) << align;
  }
  return Expected{{}, sizeof(alignments) / sizeof(alignments[0])};
}

// Powers of two no region can honour (the regions are 64 KiB), up to and
// beyond the heap's maximum of 2 GiB: NULL, and nothing changes.
template <typename W>
Expected AlignmentLargerThanAnyRegion(W& w) {
  const size_t alignments[] = {size_t{1} << 17, size_t{1} << 20,
                               size_t{1} << 30, size_t{1} << 31,
                               size_t{1} << 32, size_t{1} << 63};
  std::vector<std::pair<size_t, size_t>> told;
  for (size_t align : alignments) {
    EXPECT_EQ(w.MallocAlign(16, align), nullptr) << align;
    EXPECT_EQ(w.MallocAlign(0, align), nullptr) << align;
    if (align <= (size_t{1} << 31)) {
      told.emplace_back(16, align);
      told.emplace_back(0, align);
    }
  }
  EXPECT_EQ(w.oom_calls(), told);
  // Alignments up to the maximum (2^31) are well-formed and reach the
  // out-of-memory handler: 4 alignments, 2 sizes.
  return Expected{{}, 2 * sizeof(alignments) / sizeof(alignments[0]), 8};
}

// A static buffer and a block of another pool: reported as foreign, never
// read or written, NULL (also with 0 bytes, which must not free anything).
template <typename W>
Expected ReallocForeignPointer(W& w) {
  alignas(16) static uint8_t foreign[256];
  Fill(foreign, sizeof(foreign), 99);
  ScopedFMemp other;
  EXPECT_EQ(FMempInit(other.get(), w.spare().begin(), w.spare().end()),
            FMEMP_SUCCESS);
  void* theirs = FMempMalloc(other.get(), 100);
  EXPECT_NE(theirs, nullptr);
  Fill(theirs, 100, 5);

  EXPECT_EQ(w.Realloc(foreign + 16, 100), nullptr);
  EXPECT_EQ(w.Realloc(foreign + 32, 0), nullptr);
  EXPECT_EQ(w.Realloc(theirs, 10), nullptr);
  EXPECT_TRUE(HasFill(foreign, sizeof(foreign), 99));
  EXPECT_TRUE(HasFill(theirs, 100, 5));
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(other.get(), &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.live_blocks, 1u);
  EXPECT_EQ(usage.invalid_frees, 0u);
  EXPECT_EQ(FMempCheck(other.get()), FMEMP_SUCCESS);
  std::vector<Report>& seen = w.reports().seen;
  EXPECT_EQ(seen.size(), 3u);
  if (seen.size() == 3) {
    EXPECT_EQ(seen[0].ptr, foreign + 16);
    EXPECT_EQ(seen[2].ptr, theirs);
  }
  return Expected{{FMEMP_MISUSE_FOREIGN_POINTER, FMEMP_MISUSE_FOREIGN_POINTER,
                   FMEMP_MISUSE_FOREIGN_POINTER},
                  0};
}

// The block stays allocated and unchanged (the harness checks its
// contents); each call counts one failed allocation.
template <typename W>
Expected ReallocImpossibleSize(W& w) {
  uint8_t* const p = w.thousand().ptr;
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, kTiB,
                          w.LargestInOneRegion() + 1};
  for (size_t n : sizes) EXPECT_EQ(w.Realloc(p, n), nullptr) << n;
  EXPECT_EQ(w.oom_calls(),
            (std::vector<std::pair<size_t, size_t>>{{sizes[3], 16}}));
  // Only the well-formed size (more than any region) reaches the
  // out-of-memory handler.
  return Expected{{}, sizeof(sizes) / sizeof(sizes[0]), 1};
}

template <typename W>
Expected FreeForeignPointer(W& w) {
  alignas(16) static uint8_t foreign[256];
  Fill(foreign, sizeof(foreign), 42);
  ScopedFMemp other;
  EXPECT_EQ(FMempInit(other.get(), w.spare().begin(), w.spare().end()),
            FMEMP_SUCCESS);
  void* theirs = FMempMalloc(other.get(), 100);
  EXPECT_NE(theirs, nullptr);
  Fill(theirs, 100, 6);
  alignas(16) uint8_t on_stack[64] = {};

  w.Free(foreign + 16);
  w.Free(theirs);
  w.Free(on_stack + 16);
  w.Free(w.a_end());  // one past region A
  w.Free(w.b_end());  // one past region B (inside its buffer)
  w.Free(nullptr);    // not misuse: no report

  EXPECT_TRUE(HasFill(foreign, sizeof(foreign), 42));
  EXPECT_TRUE(HasFill(theirs, 100, 6));
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(other.get(), &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.live_blocks, 1u);
  EXPECT_EQ(FMempCheck(other.get()), FMEMP_SUCCESS);
  return Expected{std::vector<int>(5, FMEMP_MISUSE_FOREIGN_POINTER), 0};
}

// Pointers into live blocks, aligned or not, through free and realloc.
template <typename W>
Expected FreeInteriorPointer(W& w) {
  uint8_t* const p = w.thousand().ptr;
  uint8_t* const big = w.live()[0].ptr;
  w.Free(p + 16);
  w.Free(p + 1);
  w.Free(p + 8);
  w.Free(p + 496);
  w.Free(big + 4096);
  EXPECT_EQ(w.Realloc(p + 16, 10), nullptr);
  EXPECT_EQ(w.Realloc(p + 32, 0), nullptr);
  const std::vector<Report>& seen = w.reports().seen;
  if (!seen.empty()) {
    EXPECT_EQ(seen[0].ptr, p + 16);
  }
  return Expected{std::vector<int>(7, FMEMP_MISUSE_INVALID_FREE), 0};
}

// A block freed twice: by free, by realloc (to a size and to 0), also once
// its header merged into a free neighbour.
template <typename W>
Expected FreeAlreadyFreed(W& w) {
  void* q1 = w.Malloc(128);
  void* q2 = w.Malloc(128);
  void* q3 = w.Malloc(128);
  EXPECT_NE(q1, nullptr);
  EXPECT_NE(q2, nullptr);
  EXPECT_NE(q3, nullptr);
  Fill(q3, 128, 77);
  w.Free(q1);
  EXPECT_TRUE(w.reports().seen.empty());
  w.Free(q1);
  EXPECT_EQ(w.Realloc(q1, 64), nullptr);
  EXPECT_EQ(w.Realloc(q1, 0), nullptr);
  w.Free(q2);  // merges with q1 when they are neighbours
  w.Free(q2);
  EXPECT_TRUE(HasFill(q3, 128, 77));
  w.Free(q3);
  w.Free(q3);
  return Expected{std::vector<int>(5, FMEMP_MISUSE_DOUBLE_FREE), 0};
}

// Pointers inside a region that were never handed out: in never-used free
// space, in the pool record at the region's start, and the end sentinel's
// payload position (inside region B because its end is unaligned).
template <typename W>
Expected FreeNeverAllocated(W& w) {
  uint8_t* const tail = AlignDown(w.b_end() - 1024, 16);
  EXPECT_FALSE(w.OverlapsLiveBlock(tail - 16, 1024));
  uint8_t* const sentinel = AlignDown(w.b_end(), 16);
  EXPECT_LT(sentinel, w.b_end());
  const std::vector<uint8_t> b_before = w.b().Bytes();
  w.Free(tail);
  w.Free(tail + 512);
  w.Free(w.a().begin() + 16);
  w.Free(w.a().begin() + 32);
  w.Free(w.a().begin() + 48);
  w.Free(sentinel);
  EXPECT_EQ(w.Realloc(tail, 100), nullptr);
  EXPECT_TRUE(w.b().Bytes() == b_before) << "region B was written";
  return Expected{std::vector<int>(7, FMEMP_MISUSE_INVALID_FREE), 0};
}

// An overflow from a block into the next block's header: freeing or
// reallocating the block is reported as heap corruption and ignored (the
// block stays allocated, nothing moves); the integrity check fails until
// the header is repaired, after which everything is as before.
template <typename W>
Expected OverflowIntoNextHeader(W& w) {
  uint8_t* p = static_cast<uint8_t*>(w.Malloc(1000));
  uint8_t* q = static_cast<uint8_t*>(w.Malloc(1000));
  EXPECT_NE(p, nullptr);
  // Two consecutive blocks; a per-thread cache hands out a refill's blocks
  // from the highest address down.
  if (p != nullptr && q + 1008 == p) std::swap(p, q);
  EXPECT_EQ(q, p + 1008) << "q must be p's physical neighbour";
  if (p == nullptr || q != p + 1008) return {};
  Fill(p, 1000, 31);
  Fill(q, 1000, 32);
  const uint64_t live = w.Read().live;
  uint8_t saved[8];
  std::memcpy(saved, p + 1000, sizeof(saved));
  std::memset(p + 1000, 0x5a, sizeof(saved));  // 8 bytes past p's end

  w.Free(p);
  EXPECT_EQ(w.Realloc(p, 2000), nullptr);
  EXPECT_EQ(w.Realloc(p, 100 * 1024), nullptr);  // larger than any region
  EXPECT_EQ(w.Read().live, live) << "a block was allocated or freed";
  EXPECT_FALSE(w.CheckOk());

  std::memcpy(p + 1000, saved, sizeof(saved));  // repaired
  EXPECT_TRUE(w.CheckOk());
  EXPECT_TRUE(HasFill(p, 1000, 31));
  EXPECT_TRUE(HasFill(q, 1000, 32));
  w.Free(p);
  w.Free(q);
  return Expected{std::vector<int>(3, FMEMP_MISUSE_CORRUPT_HEAP), 0};
}

// A pointer into a region that was removed is foreign; the region's memory
// is never handed out or written again.
template <typename W>
Expected UseAfterRemoveRegion(W& w) {
  uint8_t* const s = w.spare().begin();
  EXPECT_EQ(w.AddRegion(s, s + 32 * 1024), Outcome::kOk);
  const size_t only_there = 30 * 1024;  // more than A or B has left
  void* r = w.Malloc(only_there);
  EXPECT_TRUE(w.spare().Contains(r));
  if (r == nullptr) return {};
  Fill(r, only_there, 1);
  w.Free(r);
  EXPECT_EQ(w.RemoveRegion(s), Outcome::kOk);
  const std::vector<uint8_t> bytes = w.spare().Bytes();
  w.Free(r);
  EXPECT_EQ(w.Realloc(r, 10), nullptr);
  EXPECT_EQ(w.Malloc(only_there), nullptr);
  EXPECT_TRUE(w.spare().Bytes() == bytes) << "a removed region was written";
  // The malloc only the removed region could serve reaches the
  // out-of-memory handler.
  return Expected{
      {FMEMP_MISUSE_FOREIGN_POINTER, FMEMP_MISUSE_FOREIGN_POINTER}, 1, 1};
}

// --- Rows of the C API only ---

// Every call on `memp` (NULL or not ready) returns NULL / NOT_INIT / zeros
// and touches nothing, `some_pointer` included.
void ExpectInert(FMemp* memp, void* some_pointer) {
  EXPECT_EQ(FMempMalloc(memp, 16), nullptr);
  EXPECT_EQ(FMempMalloc(memp, 0), nullptr);
  EXPECT_EQ(FMempCalloc(memp, 4, 4), nullptr);
  EXPECT_EQ(FMempMallocAlign(memp, 64, 64), nullptr);
  EXPECT_EQ(FMempRealloc(memp, nullptr, 16), nullptr);
  EXPECT_EQ(FMempRealloc(memp, some_pointer, 16), nullptr);
  EXPECT_EQ(FMempRealloc(memp, some_pointer, 0), nullptr);
  FMempFree(memp, some_pointer);
  FMempFreeTag(memp, some_pointer);
  EXPECT_EQ(FMempMallocTag(memp, 16, __FILE__, __LINE__, ""), nullptr);
  EXPECT_EQ(FMempReallocTag(memp, some_pointer, 16, __FILE__, __LINE__, ""),
            nullptr);
  u32 total = 1, used = 2, max_used = 3;
  FMemProbe(memp, &total, &used, &max_used);
  EXPECT_EQ(total, 0u);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(max_used, 0u);
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(memp, &usage), FMEMP_ERR_NOT_INIT);
  FMempRegionUsage region;
  EXPECT_EQ(FMempProbeRegion(memp, 0, &region), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempRegionCount(memp), 0u);
  EXPECT_EQ(FMempCheck(memp), FMEMP_ERR_NOT_INIT);
  alignas(16) static uint8_t region_memory[4096];
  EXPECT_EQ(FMempAddRegion(memp, region_memory,
                           region_memory + sizeof(region_memory)),
            FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempRemoveRegion(memp, region_memory), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempSetErrorHandler(memp, nullptr, nullptr), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempSetOomHandler(memp, nullptr, nullptr), FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMemListAllTo(
                memp, [](void*, const char*) {}, nullptr),
            FMEMP_ERR_NOT_INIT);
  EXPECT_EQ(FMempMallocAlignTag(memp, 16, 64, __FILE__, __LINE__, ""), nullptr);
  EXPECT_EQ(FMempCallocTag(memp, 2, 8, __FILE__, __LINE__, ""), nullptr);
}

Expected NullFMemp(CApiWorld& w) {
  EXPECT_EQ(FMempInit(nullptr, w.spare().begin(), w.spare().end()),
            FMEMP_ERR_INVALID_ARG);
  EXPECT_EQ(FMempInitWithPolicy(nullptr, w.spare().begin(), w.spare().end(),
                                FMEMP_POLICY_SPINLOCK),
            FMEMP_ERR_INVALID_ARG);
  ExpectInert(nullptr, w.thousand().ptr);
  FMempRemove(nullptr);
  FMempDeinit(nullptr);
  FMempRelease(nullptr);
  EXPECT_TRUE(w.spare().IsZero());
  return {};
}

// A zeroed FMemp is "not initialised": inert, and left all zero (no
// front-end is created for it).
Expected ZeroedFMemp(CApiWorld& w) {
  FMemp zeroed = {};
  ExpectInert(&zeroed, w.thousand().ptr);
  FMempRemove(&zeroed);
  FMempDeinit(&zeroed);
  FMempRelease(&zeroed);
  EXPECT_EQ(zeroed.pools_list, nullptr);
  EXPECT_EQ(zeroed.tlsf_ptr, nullptr);
  EXPECT_EQ(zeroed.is_ready, 0u);
  EXPECT_EQ(zeroed.priv, nullptr);
  return {};
}

// FMempInit on a ready FMemp, with a new buffer, its own buffer or another
// policy: ALREADY_INIT; the regions, the SDK fields and the handler stay.
Expected DoubleInit(CApiWorld& w) {
  FMemp* const m = w.memp();
  EXPECT_EQ(FMempInit(m, w.spare().begin(), w.spare().end()),
            FMEMP_ERR_ALREADY_INIT);
  EXPECT_EQ(FMempInitWithPolicy(m, w.spare().begin(), w.spare().end(),
                                FMEMP_POLICY_SINGLE_THREAD),
            FMEMP_ERR_ALREADY_INIT);
  EXPECT_EQ(FMempInit(m, w.a().begin(), w.a_end()), FMEMP_ERR_ALREADY_INIT);
  EXPECT_EQ(m->is_ready, FT_COMPONENT_IS_READY);
  EXPECT_EQ(m->pools_list->pool_addr, w.a().begin());
  EXPECT_TRUE(w.spare().IsZero());
  alignas(16) static uint8_t foreign[64];
  FMempFree(m, foreign);  // still reported to the world's handler
  return Expected{{FMEMP_MISUSE_FOREIGN_POINTER}, 0};
}

// FMempInit with bad buffers leaves a fresh FMemp not ready (and usable by
// a later good init).
Expected InitWithBadBuffer(CApiWorld& w) {
  uint8_t* const s = w.spare().begin();
  const std::vector<std::pair<void*, void*>> bad = {
      {w.spare().end(), s}, {s + 64, s + 64}, {s + 1, s + 15},
      {nullptr, s + 4096},  {s, nullptr},     {s, s + 40}};
  for (const auto& [begin, end] : bad) {
    ScopedFMemp fresh;
    EXPECT_EQ(FMempInit(fresh.get(), begin, end), FMEMP_ERR_INVALID_BUF)
        << begin << " " << end;
    EXPECT_NE(fresh.get()->is_ready, FT_COMPONENT_IS_READY);
    ExpectInert(fresh.get(), w.thousand().ptr);
    EXPECT_EQ(FMempInit(fresh.get(), s, s + 4096), FMEMP_SUCCESS);
    FMempRemove(fresh.get());
  }
  // A region larger than one TLSF pool (> 1 TiB) is refused before any
  // byte of it is touched.
  const std::vector<uint8_t> bytes = w.spare().Bytes();
  ScopedFMemp fresh;
  EXPECT_EQ(FMempInit(fresh.get(), s, Offset(s, 2 * kTiB)),
            FMEMP_ERR_INVALID_BUF);
  EXPECT_TRUE(w.spare().Bytes() == bytes);
  return {};
}

// The smallest buffer FMempInit accepts still serves a block; one byte less
// is INVALID_BUF.
Expected InitWithTinyBuffer(CApiWorld& w) {
  uint8_t* const s = w.spare().begin();
  size_t minimum = 0;
  for (size_t n = 1; n <= 512 && minimum == 0; ++n) {
    ScopedFMemp fresh;
    const FError e = FMempInit(fresh.get(), s, s + n);
    if (e == FMEMP_SUCCESS) {
      minimum = n;
    } else {
      EXPECT_EQ(e, FMEMP_ERR_INVALID_BUF) << n;
    }
  }
  EXPECT_GT(minimum, 0u);
  ScopedFMemp tiny;
  EXPECT_EQ(FMempInit(tiny.get(), s, s + minimum), FMEMP_SUCCESS);
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(tiny.get(), &usage), FMEMP_SUCCESS);
  EXPECT_GT(usage.total, 0u);
  void* p = FMempMalloc(tiny.get(), 0);
  EXPECT_NE(p, nullptr);
  EXPECT_GE(static_cast<uint8_t*>(p), s);
  EXPECT_LT(static_cast<uint8_t*>(p), s + minimum);
  EXPECT_EQ(FMempMalloc(tiny.get(), usage.total), nullptr);
  FMempFree(tiny.get(), p);
  EXPECT_EQ(FMempCheck(tiny.get()), FMEMP_SUCCESS);
  for (uint8_t* q = s + minimum; q < w.spare().end(); ++q) EXPECT_EQ(*q, 0);
  return {};
}

// FMempInit over unaligned bounds: every block is aligned and inside them.
Expected InitWithUnalignedBuffer(CApiWorld& w) {
  uint8_t* const begin = w.spare().begin() + 1;
  uint8_t* const end = w.spare().begin() + 8192 - 3;
  ScopedFMemp fresh;
  EXPECT_EQ(FMempInit(fresh.get(), begin, end), FMEMP_SUCCESS);
  std::vector<void*> blocks;
  while (void* p = FMempMalloc(fresh.get(), 24)) {
    EXPECT_TRUE(IsAligned(p, 16)) << p;
    EXPECT_GE(static_cast<uint8_t*>(p), begin);
    EXPECT_LE(static_cast<uint8_t*>(p) + 24, end);
    std::memset(p, 0xee, 24);
    blocks.push_back(p);
  }
  EXPECT_GT(blocks.size(), 100u);
  for (void* p : blocks) FMempFree(fresh.get(), p);
  EXPECT_EQ(FMempCheck(fresh.get()), FMEMP_SUCCESS);
  EXPECT_EQ(w.spare().begin()[0], 0);
  for (uint8_t* q = end; q < w.spare().end(); ++q) EXPECT_EQ(*q, 0);
  return {};
}

// After FMempRemove every call is inert and the buffer is not touched; after
// FMempInit over the same buffer a pointer from before is not a block (it is
// reported); after FMempRelease the FMemp is inert again.
Expected UseAfterFMempRemove(CApiWorld& w) {
  uint8_t* const s = w.spare().begin();
  ScopedFMemp victim;
  Reports reports;
  EXPECT_EQ(FMempInit(victim.get(), s, s + 32 * 1024), FMEMP_SUCCESS);
  EXPECT_EQ(FMempSetErrorHandler(victim.get(), &Reports::RecordC, &reports),
            FMEMP_SUCCESS);
  void* first = FMempMalloc(victim.get(), 100);
  void* p = FMempMalloc(victim.get(), 500);  // not the first block
  EXPECT_NE(first, nullptr);
  EXPECT_NE(p, nullptr);
  Fill(p, 500, 8);
  FMempRemove(victim.get());
  const std::vector<uint8_t> bytes = w.spare().Bytes();
  ExpectInert(victim.get(), p);
  EXPECT_TRUE(w.spare().Bytes() == bytes) << "a removed pool was written";
  EXPECT_TRUE(reports.seen.empty());

  EXPECT_EQ(FMempInit(victim.get(), s, s + 32 * 1024), FMEMP_SUCCESS);
  // FMempRemove released the handler with the rest (issue 14: it releases
  // everything); set it again.
  EXPECT_EQ(FMempSetErrorHandler(victim.get(), &Reports::RecordC, &reports),
            FMEMP_SUCCESS);
  FMempFree(victim.get(), p);
  EXPECT_EQ(FMempRealloc(victim.get(), p, 100), nullptr);
  EXPECT_EQ(reports.Kinds(), std::vector<int>(2, FMEMP_MISUSE_INVALID_FREE));
  FMempUsage usage;
  EXPECT_EQ(FMempProbe64(victim.get(), &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.invalid_frees, 2u);
  EXPECT_EQ(FMempCheck(victim.get()), FMEMP_SUCCESS);

  FMempRelease(victim.get());
  EXPECT_EQ(victim.get()->priv, nullptr);
  ExpectInert(victim.get(), p);
  EXPECT_EQ(victim.get()->priv, nullptr);
  return {};
}

// --- Rows of the front-end only ---

// A Memp with no region (the analogue of an uninitialised FMemp): NULL
// allocations counted as failures, and a free of any pointer is reported
// as foreign (the C API's NOT_INIT pool ignores it silently) without
// touching it.
Expected NoRegions(MempWorld& w) {
  Memp<sync::Mutex> empty;
  Reports reports;
  empty.SetErrorHandler(&Reports::RecordMemp, &reports);
  uint8_t* const p = w.thousand().ptr;
  EXPECT_EQ(empty.Allocate(16), nullptr);
  EXPECT_EQ(empty.Allocate(0), nullptr);
  EXPECT_EQ(empty.AllocateAligned(64, 64), nullptr);
  EXPECT_EQ(empty.Calloc(4, 4), nullptr);
  EXPECT_EQ(empty.Reallocate(nullptr, 16), nullptr);
  EXPECT_EQ(empty.Reallocate(p, 16), nullptr);
  EXPECT_FALSE(empty.Free(p));
  EXPECT_TRUE(empty.Free(nullptr));
  EXPECT_EQ(empty.UsableSize(p), 0u);
  EXPECT_EQ(empty.RemoveRegion(p).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(empty.Check().ok());
  const MempStats s = empty.Probe();
  EXPECT_EQ(s.capacity_bytes, 0u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.failed_allocations, 5u);
  EXPECT_EQ(s.invalid_frees, 2u);
  EXPECT_EQ(reports.Kinds(), std::vector<int>(2, FMEMP_MISUSE_FOREIGN_POINTER));
  return {};
}

// AddRegion(begin, bytes): sizes that are too small, do not fit a TLSF pool
// or wrap the address space are InvalidArgument, and nothing is written.
Expected AddRegionBySize(MempWorld& w) {
  uint8_t* const s = w.spare().begin();
  // On a Memp of its own: 2 TiB from `s` may reach the world's regions.
  Memp<sync::Mutex> alone;
  const absl::Status too_large = alone.AddRegion(s, 2 * kTiB);
  EXPECT_EQ(too_large.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_large.message().find("maximum"), absl::string_view::npos)
      << too_large;
  EXPECT_EQ(w.memp().AddRegion(s, size_t{40}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.memp().AddRegion(s, size_t{0}).code(),
            absl::StatusCode::kInvalidArgument);
  // begin + bytes wraps around the end of the address space.
  EXPECT_EQ(w.memp().AddRegion(s + 4096, SIZE_MAX).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.memp().AddRegion(s + 4096, SIZE_MAX - 4095).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(w.spare().IsZero());
  return {};
}

// The refusal says why (live bytes), and the region still serves.
Expected RemoveBusyRegionSaysWhy(MempWorld& w) {
  const absl::Status s = w.memp().RemoveRegion(w.b().begin());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("live"), absl::string_view::npos) << s;
  return {};
}

// After Clear (the analogue of FMempRemove) the Memp is still a live object
// with no region: an old pointer is reported as foreign, not read. After the
// same memory is added again, an old pointer is not a block of the new heap.
Expected UseAfterClear(MempWorld& w) {
  uint8_t* const s = w.spare().begin();
  Memp<sync::Mutex> victim;
  Reports reports;
  victim.SetErrorHandler(&Reports::RecordMemp, &reports);
  EXPECT_TRUE(victim.AddRegion(s, s + 32 * 1024).ok());
  void* first = victim.Allocate(100);
  void* p = victim.Allocate(500);
  EXPECT_NE(first, nullptr);
  EXPECT_NE(p, nullptr);
  victim.Clear();
  const std::vector<uint8_t> bytes = w.spare().Bytes();
  EXPECT_FALSE(victim.Free(p));
  EXPECT_EQ(victim.Reallocate(p, 10), nullptr);
  EXPECT_EQ(victim.UsableSize(p), 0u);
  EXPECT_TRUE(w.spare().Bytes() == bytes);
  EXPECT_TRUE(victim.AddRegion(s, s + 32 * 1024).ok());
  EXPECT_FALSE(victim.Free(p));
  EXPECT_EQ(victim.UsableSize(p), 0u);
  EXPECT_EQ(reports.Kinds(), (std::vector<int>{FMEMP_MISUSE_FOREIGN_POINTER,
                                               FMEMP_MISUSE_FOREIGN_POINTER,
                                               FMEMP_MISUSE_INVALID_FREE}));
  EXPECT_TRUE(victim.Check().ok());
  EXPECT_EQ(victim.Probe().used_bytes, 0u);
  return {};
}

// --- The harness ---

template <typename W>
struct Row {
  const char* name;
  Expected (*apply)(W&);
};

template <typename W>
void PrintTo(const Row<W>& row, std::ostream* os) {
  *os << row.name;
}

template <typename W>
std::vector<Row<W>> CommonRows() {
  return {
      {"ReversedBuffer", &ReversedBuffer<W>},
      {"EmptyBuffer", &EmptyBuffer<W>},
      {"TinyBuffer", &TinyBuffer<W>},
      {"UnalignedBuffer", &UnalignedBuffer<W>},
      {"OverlappingRegion", &OverlappingRegion<W>},
      {"RemoveUnknownRegion", &RemoveUnknownRegion<W>},
      {"RemoveRegionWithLiveBlocks", &RemoveRegionWithLiveBlocks<W>},
      {"ZeroSizeMalloc", &ZeroSizeMalloc<W>},
      {"HugeSizes", &HugeSizes<W>},
      {"CallocOverflow", &CallocOverflow<W>},
      {"AlignmentZero", &AlignmentZero<W>},
      {"AlignmentNotPowerOfTwo", &AlignmentNotPowerOfTwo<W>},
      {"AlignmentLargerThanAnyRegion", &AlignmentLargerThanAnyRegion<W>},
      {"ReallocForeignPointer", &ReallocForeignPointer<W>},
      {"ReallocImpossibleSize", &ReallocImpossibleSize<W>},
      {"FreeForeignPointer", &FreeForeignPointer<W>},
      {"FreeInteriorPointer", &FreeInteriorPointer<W>},
      {"FreeAlreadyFreed", &FreeAlreadyFreed<W>},
      {"FreeNeverAllocated", &FreeNeverAllocated<W>},
      {"UseAfterRemoveRegion", &UseAfterRemoveRegion<W>},
      {"OverflowIntoNextHeader", &OverflowIntoNextHeader<W>},
  };
}

std::vector<Row<CApiWorld>> CApiRows() {
  std::vector<Row<CApiWorld>> rows = {
      {"NullFMemp", &NullFMemp},
      {"ZeroedFMemp", &ZeroedFMemp},
      {"DoubleInit", &DoubleInit},
      {"InitWithBadBuffer", &InitWithBadBuffer},
      {"InitWithTinyBuffer", &InitWithTinyBuffer},
      {"InitWithUnalignedBuffer", &InitWithUnalignedBuffer},
      {"UseAfterFMempRemove", &UseAfterFMempRemove},
  };
  for (const Row<CApiWorld>& row : CommonRows<CApiWorld>()) rows.push_back(row);
  return rows;
}

std::vector<Row<MempWorld>> MempRows() {
  std::vector<Row<MempWorld>> rows = {
      {"NoRegions", &NoRegions},
      {"AddRegionBySize", &AddRegionBySize},
      {"RemoveBusyRegionSaysWhy", &RemoveBusyRegionSaysWhy},
      {"UseAfterClear", &UseAfterClear},
  };
  for (const Row<MempWorld>& row : CommonRows<MempWorld>()) rows.push_back(row);
  return rows;
}

// Builds the world, applies the row, and checks everything the row did not
// mean to change.
template <typename W>
void RunRow(const Row<W>& row) {
  W w;
  ASSERT_NO_FATAL_FAILURE(w.Build());
  ASSERT_TRUE(w.CheckOk());
  const Counters before = w.Read();
  const Expected expected = row.apply(w);
  ASSERT_FALSE(testing::Test::HasFatalFailure());

  const Counters after = w.Read();
  EXPECT_EQ(w.reports().Kinds(), expected.kinds) << "misuse reports";
  EXPECT_EQ(after.invalid - before.invalid, expected.kinds.size())
      << "invalid_frees";
  EXPECT_EQ(after.failed - before.failed, expected.failed)
      << "failed_allocations";
  EXPECT_EQ(w.oom_calls().size(), expected.oom)
      << "calls of the out-of-memory handler";
  EXPECT_EQ(after.total, before.total);
  EXPECT_EQ(after.regions, before.regions);
  EXPECT_EQ(after.used, before.used);
  EXPECT_EQ(after.live, before.live);
  EXPECT_TRUE(w.CheckOk()) << "the integrity check failed";
  w.ExpectLiveBlocksIntact();

  // The pool still serves, and every live block can still be freed.
  void* p = w.Malloc(100);
  EXPECT_NE(p, nullptr);
  w.Free(p);
  for (const Live& l : w.live()) w.Free(l.ptr);
  const Counters end = w.Read();
  EXPECT_EQ(end.used, 0u);
  EXPECT_EQ(end.live, 0u);
  EXPECT_EQ(end.invalid, after.invalid);
  EXPECT_TRUE(w.CheckOk());
}

template <typename W>
std::string RowName(const testing::TestParamInfo<Row<W>>& info) {
  return info.param.name;
}

class CApiBadInputTest : public testing::TestWithParam<Row<CApiWorld>> {};

TEST_P(CApiBadInputTest, IsRefusedOrReportedAndChangesNothing) {
  RunRow(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Table, CApiBadInputTest, testing::ValuesIn(CApiRows()),
                         &RowName<CApiWorld>);

class MempBadInputTest : public testing::TestWithParam<Row<MempWorld>> {};

TEST_P(MempBadInputTest, IsRefusedOrReportedAndChangesNothing) {
  RunRow(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Table, MempBadInputTest, testing::ValuesIn(MempRows()),
                         &RowName<MempWorld>);

// The rows both APIs share, under every other front-end of
// fmemp/testing/front_end_list.h (each lock, caches, thread heaps, each C API
// policy), named "<FrontEnd>_<Row>".
struct PolicyRow {
  std::string name;
  std::function<void()> run;
};

void PrintTo(const PolicyRow& row, std::ostream* os) { *os << row.name; }

template <typename FrontEnd>
void AddCommonRows(std::vector<PolicyRow>& rows) {
  if (std::is_same<World<FrontEnd>, CApiWorld>::value ||
      std::is_same<World<FrontEnd>, MempWorld>::value) {
    return;  // CApiBadInputTest and MempBadInputTest run them
  }
  for (const Row<World<FrontEnd>>& row : CommonRows<World<FrontEnd>>()) {
    rows.push_back(
        PolicyRow{FrontEnd::Name() + "_" + row.name, [row] { RunRow(row); }});
  }
}

template <typename... FrontEnds>
std::vector<PolicyRow> PolicyRows(testkit::FrontEndList<FrontEnds...>) {
  std::vector<PolicyRow> rows;
  (AddCommonRows<FrontEnds>(rows), ...);
  return rows;
}

class PolicyBadInputTest : public testing::TestWithParam<PolicyRow> {};

TEST_P(PolicyBadInputTest, IsRefusedOrReportedAndChangesNothing) {
  GetParam().run();
}

INSTANTIATE_TEST_SUITE_P(Table, PolicyBadInputTest,
                         testing::ValuesIn(PolicyRows(testkit::AllFrontEnds())),
                         [](const testing::TestParamInfo<PolicyRow>& info) {
                           return info.param.name;
                         });

// --- A pointer to a region's first byte ---
//
// No block's payload can start at a region's first byte (the pool record
// and a block header come first), so such a pointer is never a block. Each
// call below runs in a child process over a region that starts right after
// an inaccessible page; it must report the pointer as an invalid free and
// exit normally. Reading the 8 bytes before the pointer (where a header
// would be) faults instead.

// Exits with 0 when `reports` holds exactly one invalid-free report of
// `ptr`.
[[noreturn]] void ExitWithVerdict(const Reports& reports, const void* ptr) {
  const bool ok = reports.seen.size() == 1 &&
                  reports.seen[0].kind == FMEMP_MISUSE_INVALID_FREE &&
                  reports.seen[0].ptr == ptr;
  std::_Exit(ok ? 0 : 1);
}

TEST(RegionStartDeathTest, FreeAndReallocOfTheRegionStartReadNothingBefore) {
  GuardedMemory region(kRegionBytes);
  ASSERT_TRUE(region.ok());
  ScopedFMemp memp;
  Reports reports;
  ASSERT_EQ(FMempInit(memp.get(), region.begin(), region.end()), FMEMP_SUCCESS);
  ASSERT_EQ(FMempSetErrorHandler(memp.get(), &Reports::RecordC, &reports),
            FMEMP_SUCCESS);
  EXPECT_EXIT(
      {
        FMempFree(memp.get(), region.begin());
        ExitWithVerdict(reports, region.begin());
      },
      testing::ExitedWithCode(0), "")
      << "FMempFree(region start)";
  EXPECT_EXIT(
      {
        if (FMempRealloc(memp.get(), region.begin(), 64) != nullptr) {
          std::_Exit(2);
        }
        ExitWithVerdict(reports, region.begin());
      },
      testing::ExitedWithCode(0), "")
      << "FMempRealloc(region start)";
}

TEST(RegionStartDeathTest, MempCallsOnTheRegionStartReadNothingBefore) {
  GuardedMemory region(kRegionBytes);
  ASSERT_TRUE(region.ok());
  Memp<sync::Mutex> memp;
  Reports reports;
  memp.SetErrorHandler(&Reports::RecordMemp, &reports);
  ASSERT_TRUE(memp.AddRegion(region.begin(), region.end()).ok());
  EXPECT_EXIT(std::_Exit(memp.UsableSize(region.begin()) == 0 ? 0 : 1),
              testing::ExitedWithCode(0), "")
      << "Memp::UsableSize(region start)";
  EXPECT_EXIT(
      {
        if (memp.Free(region.begin())) std::_Exit(2);
        ExitWithVerdict(reports, region.begin());
      },
      testing::ExitedWithCode(0), "")
      << "Memp::Free(region start)";
}

}  // namespace
}  // namespace fmemp
