// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the C API in tlsf/tlsf.h: the C11 usage scenario of
// tlsf_c_usage.c, and one regression test for each defect of the reference
// TLSF 3.1 that the API documents as fixed (huge requests, failed realloc,
// freed blocks not found again, too-small or too-large buffers, double free,
// removing a pool in use, unaligned pools, aligned realloc, blocks and pools
// over 4 GiB), plus the extensions (exact tlsf_largest_allocatable,
// tlsf_walk_pool_until, the peak statistic), NULL arguments, and a seeded
// random workload that checks contents, alignment and tlsf_check throughout.

#include "tlsf/tlsf.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tlsf/tlsf_c_usage.h"

namespace {

constexpr size_t kGiB = size_t{1} << 30;

uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Heap memory aligned to 4096 bytes, released on destruction.
class Buffer {
 public:
  explicit Buffer(size_t bytes) : storage_(bytes + 4096) {}
  char* data() {
    return reinterpret_cast<char*>((Addr(storage_.data()) + 4095) &
                                   ~uintptr_t{4095});
  }
  size_t size() const { return storage_.size() - 4096; }

 private:
  std::vector<char> storage_;
};

// A heap with one pool in a Buffer of `bytes`.
class TestHeap {
 public:
  explicit TestHeap(size_t bytes) : buffer_(bytes) {
    tlsf_ = tlsf_create_with_pool(buffer_.data(), buffer_.size());
  }
  ~TestHeap() {
    if (tlsf_ != nullptr) tlsf_destroy(tlsf_);
  }
  TestHeap(const TestHeap&) = delete;
  TestHeap& operator=(const TestHeap&) = delete;

  tlsf_t get() const { return tlsf_; }
  pool_t pool() const { return tlsf_get_pool(tlsf_); }
  tlsf_stats_t stats() const {
    tlsf_stats_t s;
    std::memset(&s, 0, sizeof(s));
    tlsf_get_stats(tlsf_, &s);
    return s;
  }

 private:
  Buffer buffer_;
  tlsf_t tlsf_;
};

// A heap with no pool of its own.
class PoollessHeap {
 public:
  PoollessHeap() : control_(tlsf_size()), tlsf_(tlsf_create(control_.data())) {}
  ~PoollessHeap() { tlsf_destroy(tlsf_); }
  PoollessHeap(const PoollessHeap&) = delete;
  PoollessHeap& operator=(const PoollessHeap&) = delete;

  tlsf_t get() const { return tlsf_; }
  tlsf_stats_t stats() const {
    tlsf_stats_t s;
    tlsf_get_stats(tlsf_, &s);
    return s;
  }

 private:
  Buffer control_;
  tlsf_t tlsf_;
};

// Collects error reports.
struct ErrorLog {
  std::vector<std::pair<int, const void*>> reports;

  static void Record(void* user, int kind, const void* ptr) {
    static_cast<ErrorLog*>(user)->reports.emplace_back(kind, ptr);
  }
};

// One block as seen by tlsf_walk_pool.
struct WalkedBlock {
  void* ptr;
  size_t size;
  bool used;
};

std::vector<WalkedBlock> Walk(pool_t pool) {
  std::vector<WalkedBlock> blocks;
  tlsf_walk_pool(
      pool,
      [](void* ptr, size_t size, int used, void* user) {
        static_cast<std::vector<WalkedBlock>*>(user)->push_back(
            WalkedBlock{ptr, size, used != 0});
      },
      &blocks);
  return blocks;
}

// Allocates `bytes` until the heap refuses; returns the blocks.
std::vector<void*> AllocateUntilFull(tlsf_t tlsf, size_t bytes) {
  std::vector<void*> blocks;
  for (void* p; (p = tlsf_malloc(tlsf, bytes)) != nullptr;) {
    blocks.push_back(p);
  }
  return blocks;
}

// Fills what AllocateUntilFull left with ever smaller blocks, until even
// tlsf_malloc(0) fails: afterwards the heap has no free block to hand out.
void FillRemainder(tlsf_t tlsf, std::vector<void*>* blocks,
                   std::vector<size_t>* sizes) {
  for (size_t bytes = size_t{1} << 20;; bytes /= 2) {
    for (void* p; (p = tlsf_malloc(tlsf, bytes)) != nullptr;) {
      blocks->push_back(p);
      if (sizes != nullptr) sizes->push_back(bytes);
    }
    if (bytes == 0) break;
  }
}

// Live blocks never overlap and are all distinct.
::testing::AssertionResult Disjoint(std::vector<void*> blocks) {
  std::sort(blocks.begin(), blocks.end());
  for (size_t i = 0; i + 1 < blocks.size(); ++i) {
    if (Addr(blocks[i]) + tlsf_block_size(blocks[i]) > Addr(blocks[i + 1])) {
      return ::testing::AssertionFailure()
             << "blocks " << blocks[i] << " (" << tlsf_block_size(blocks[i])
             << " bytes) and " << blocks[i + 1] << " overlap";
    }
  }
  return ::testing::AssertionSuccess();
}

void Fill(void* p, size_t bytes, unsigned seed) {
  unsigned char* c = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) {
    c[i] = static_cast<unsigned char>(seed + i);
  }
}

::testing::AssertionResult Filled(const void* p, size_t bytes, unsigned seed) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) {
    if (c[i] != static_cast<unsigned char>(seed + i)) {
      return ::testing::AssertionFailure()
             << "byte " << i << " of " << p << " changed";
    }
  }
  return ::testing::AssertionSuccess();
}

// --- C usage ---

TEST(TlsfCUsageTest, RunsFromC) {
  EXPECT_EQ(tlsf_c_usage_run(), 0)
      << "the check at this line of tlsf/tlsf_c_usage.c failed";
}

// --- Huge requests ---
// Reference 3.1 rounds SIZE_MAX up to 0 and hands out a minimum block.

TEST(TlsfHugeRequestTest, MallocOfHugeSizesReturnsNull) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  const size_t sizes[] = {SIZE_MAX,
                          SIZE_MAX - 1,
                          SIZE_MAX - 64,
                          SIZE_MAX - tlsf_align_size(),
                          SIZE_MAX / 2,
                          tlsf_block_size_max() + 1,
                          tlsf_block_size_max(),
                          size_t{1} << 32};
  uint64_t expected_failures = 0;
  for (const size_t bytes : sizes) {
    EXPECT_EQ(tlsf_malloc(heap.get(), bytes), nullptr) << bytes;
    ++expected_failures;
    EXPECT_EQ(heap.stats().failed_allocations, expected_failures) << bytes;
  }
  EXPECT_EQ(heap.stats().live_blocks, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  void* p = tlsf_malloc(heap.get(), 100);
  EXPECT_NE(p, nullptr);
  tlsf_free(heap.get(), p);
}

TEST(TlsfHugeRequestTest, MemalignOfHugeSizesReturnsNull) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  const size_t sizes[] = {SIZE_MAX,
                          SIZE_MAX - 1,
                          SIZE_MAX - 64,
                          SIZE_MAX - 4096,
                          tlsf_block_size_max() + 1,
                          tlsf_block_size_max()};
  const size_t aligns[] = {8, 16, 32, 64, 4096, size_t{1} << 20};
  uint64_t expected_failures = 0;
  for (const size_t align : aligns) {
    for (const size_t bytes : sizes) {
      EXPECT_EQ(tlsf_memalign(heap.get(), align, bytes), nullptr)
          << align << " " << bytes;
      ++expected_failures;
    }
  }
  // Alignments that are huge or not a power of two.
  EXPECT_EQ(tlsf_memalign(heap.get(), size_t{1} << 63, 16), nullptr);
  EXPECT_EQ(tlsf_memalign(heap.get(), 0, 16), nullptr);
  EXPECT_EQ(tlsf_memalign(heap.get(), 48, 16), nullptr);
  expected_failures += 3;
  EXPECT_EQ(heap.stats().failed_allocations, expected_failures);
  EXPECT_EQ(heap.stats().live_blocks, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

// --- Failed realloc ---
// Reference 3.1 can return a block it could not grow, or lose the old one.

TEST(TlsfReallocTest, ImpossibleSizeReturnsNullAndKeepsTheBlock) {
  TestHeap heap(256 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  void* const p = tlsf_malloc(heap.get(), 1000);
  ASSERT_NE(p, nullptr);
  Fill(p, 1000, 7);
  const size_t size = tlsf_block_size(p);
  const size_t capacity = heap.stats().capacity_bytes;
  const size_t impossible[] = {
      SIZE_MAX,
      SIZE_MAX - 1,
      SIZE_MAX - 64,
      tlsf_block_size_max() + 1,
      tlsf_block_size_max(),
      capacity,
      capacity * 4,
      tlsf_largest_allocatable(heap.get()) + size + 4096};
  for (const size_t bytes : impossible) {
    EXPECT_EQ(tlsf_realloc(heap.get(), p, bytes), nullptr) << bytes;
    EXPECT_TRUE(Filled(p, 1000, 7)) << bytes;
    EXPECT_EQ(tlsf_block_size(p), size) << bytes;
    ASSERT_EQ(tlsf_check(heap.get()), 0) << bytes;
    const std::vector<WalkedBlock> blocks = Walk(heap.pool());
    const auto it =
        std::find_if(blocks.begin(), blocks.end(),
                     [p](const WalkedBlock& b) { return b.ptr == p; });
    ASSERT_NE(it, blocks.end()) << bytes;
    EXPECT_TRUE(it->used);
    EXPECT_EQ(it->size, size);
  }
  EXPECT_EQ(heap.stats().live_blocks, 1u);
  // The block still works: it grows, keeps its contents, and frees cleanly.
  ErrorLog log;
  tlsf_set_error_handler(heap.get(), &ErrorLog::Record, &log);
  void* const q = tlsf_realloc(heap.get(), p, 2000);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(Filled(q, 1000, 7));
  tlsf_free(heap.get(), q);
  EXPECT_TRUE(log.reports.empty());
  EXPECT_EQ(heap.stats().live_blocks, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

TEST(TlsfReallocTest, ImpossibleGrowthNextToAFreeBlockKeepsTheBlock) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  void* const p = tlsf_malloc(heap.get(), 3000);
  void* const q = tlsf_malloc(heap.get(), 3000);
  void* const r = tlsf_malloc(heap.get(), 3000);
  ASSERT_TRUE(p != nullptr && q != nullptr && r != nullptr);
  Fill(p, 3000, 3);
  tlsf_free(heap.get(), q);  // p now has a free neighbour, too small
  const size_t size = tlsf_block_size(p);
  EXPECT_EQ(tlsf_realloc(heap.get(), p, 60 * 1024), nullptr);
  EXPECT_TRUE(Filled(p, 3000, 3));
  EXPECT_EQ(tlsf_block_size(p), size);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(heap.stats().live_blocks, 2u);
  tlsf_free(heap.get(), p);
  tlsf_free(heap.get(), r);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

// --- A freed block is found again ---
// Reference 3.1 rounds every request up to the next bin, so on a full heap the
// block just freed for exactly that size is not found.

class TlsfRefindTest : public ::testing::TestWithParam<size_t> {};

TEST_P(TlsfRefindTest, FreedBlockIsReturnedForTheSameSizeOnAFullHeap) {
  const size_t bytes = GetParam();
  TestHeap heap(std::max<size_t>(256 * 1024, 20 * bytes));
  ASSERT_NE(heap.get(), nullptr);
  std::vector<void*> blocks = AllocateUntilFull(heap.get(), bytes);
  ASSERT_GE(blocks.size(), 3u);
  const size_t picks[] = {0, blocks.size() / 2, blocks.size() - 1, 1};
  for (const size_t i : picks) {
    void* const freed = blocks[i];
    tlsf_free(heap.get(), freed);
    void* const again = tlsf_malloc(heap.get(), bytes);
    EXPECT_EQ(again, freed) << "block " << i << " of " << blocks.size();
    if (again == nullptr) {
      blocks[i] = tlsf_malloc(heap.get(), 0);  // keep the vector valid
      ASSERT_NE(blocks[i], nullptr);
    } else {
      blocks[i] = again;
    }
    ASSERT_EQ(tlsf_check(heap.get()), 0);
  }
  for (void* p : blocks) tlsf_free(heap.get(), p);
  EXPECT_EQ(heap.stats().live_blocks, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

INSTANTIATE_TEST_SUITE_P(Sizes, TlsfRefindTest,
                         ::testing::Values(1000, 3000, 70000, 24, 100, 600,
                                           1020, 4095, 12345, 100000, 1 << 20));

TEST(TlsfRefindTest, FreedBlocksOfMixedSizesAreFoundAgainOnAFullHeap) {
  for (unsigned seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    TestHeap heap(1 << 20);
    ASSERT_NE(heap.get(), nullptr);
    std::vector<void*> blocks;
    std::vector<size_t> sizes;
    std::uniform_int_distribution<size_t> size_dist(1, 40000);
    for (;;) {
      const size_t bytes = size_dist(rng);
      void* const p = tlsf_malloc(heap.get(), bytes);
      if (p == nullptr) break;
      blocks.push_back(p);
      sizes.push_back(bytes);
    }
    FillRemainder(heap.get(), &blocks, &sizes);
    ASSERT_EQ(tlsf_malloc(heap.get(), 0), nullptr);
    ASSERT_EQ(tlsf_largest_allocatable(heap.get()), 0u);
    std::uniform_int_distribution<size_t> pick(0, blocks.size() - 1);
    for (int round = 0; round < 200; ++round) {
      const size_t i = pick(rng);
      tlsf_free(heap.get(), blocks[i]);
      void* const again = tlsf_malloc(heap.get(), sizes[i]);
      ASSERT_EQ(again, blocks[i]) << "size " << sizes[i] << " round " << round;
    }
    EXPECT_TRUE(Disjoint(blocks));
    EXPECT_EQ(tlsf_check(heap.get()), 0);
    for (void* p : blocks) tlsf_free(heap.get(), p);
    EXPECT_EQ(tlsf_check(heap.get()), 0);
  }
}

// --- Buffers that are too small or too large ---
// Reference 3.1 writes its control structure into any buffer, and computes
// the pool size as bytes - tlsf_size() even when that wraps.

TEST(TlsfBufferTest, CreateWithPoolRejectsBuffersTooSmall) {
  Buffer buffer(2 * tlsf_size() + 4096);
  const size_t sizes[] = {0,
                          1,
                          tlsf_size() - 1,
                          tlsf_size(),
                          tlsf_size() + 1,
                          tlsf_size() + tlsf_pool_overhead()};
  for (const size_t bytes : sizes) {
    // Poison the buffer past `bytes` to catch writes beyond it.
    std::memset(buffer.data(), 0xa5, buffer.size());
    EXPECT_EQ(tlsf_create_with_pool(buffer.data(), bytes), nullptr) << bytes;
    for (size_t i = bytes; i < buffer.size(); ++i) {
      ASSERT_EQ(static_cast<unsigned char>(buffer.data()[i]), 0xa5)
          << "byte " << i << " written by create_with_pool(" << bytes << ")";
    }
  }
  EXPECT_EQ(tlsf_create_with_pool(nullptr, 1 << 20), nullptr);
  // Just large enough works.
  tlsf_t tlsf = nullptr;
  for (size_t bytes = tlsf_size(); bytes <= buffer.size() && tlsf == nullptr;
       bytes += tlsf_align_size()) {
    tlsf = tlsf_create_with_pool(buffer.data(), bytes);
  }
  ASSERT_NE(tlsf, nullptr);
  void* p = tlsf_malloc(tlsf, 0);
  EXPECT_NE(p, nullptr);
  tlsf_free(tlsf, p);
  EXPECT_EQ(tlsf_check(tlsf), 0);
  tlsf_destroy(tlsf);
}

TEST(TlsfBufferTest, AddPoolRejectsBadRangesWithoutTouchingThem) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  const tlsf_stats_t before = heap.stats();
  // Fake, unmapped addresses: any access would crash.
  void* const fake = reinterpret_cast<void*>(uintptr_t{0x10000});
  const size_t too_large[] = {
      (size_t{1} << 40) + 4096, (size_t{1} << 40) + tlsf_pool_overhead(),
      size_t{1} << 41,          SIZE_MAX / 2,
      SIZE_MAX - 0x10000,       SIZE_MAX};
  for (const size_t bytes : too_large) {
    EXPECT_EQ(tlsf_add_pool(heap.get(), fake, bytes), nullptr) << bytes;
  }
  // Ranges that wrap around the end of the address space.
  EXPECT_EQ(
      tlsf_add_pool(heap.get(), reinterpret_cast<void*>(~uintptr_t{7}), 4096),
      nullptr);
  EXPECT_EQ(
      tlsf_add_pool(heap.get(), reinterpret_cast<void*>(~uintptr_t{7}), 7),
      nullptr);
  EXPECT_EQ(
      tlsf_add_pool(heap.get(), reinterpret_cast<void*>(~uintptr_t{3}), 3),
      nullptr);
  // NULL memory and tiny sizes.
  Buffer small(4096);
  EXPECT_EQ(tlsf_add_pool(heap.get(), nullptr, 1 << 20), nullptr);
  const size_t tiny[] = {0,
                         1,
                         15,
                         16,
                         tlsf_pool_overhead(),
                         tlsf_pool_overhead() + tlsf_block_size_min()};
  for (const size_t bytes : tiny) {
    EXPECT_EQ(tlsf_add_pool(heap.get(), small.data(), bytes), nullptr) << bytes;
  }
  const tlsf_stats_t after = heap.stats();
  EXPECT_EQ(after.pool_count, before.pool_count);
  EXPECT_EQ(after.capacity_bytes, before.capacity_bytes);
  EXPECT_EQ(tlsf_check(heap.get()), 0);

  // Ranges overlapping a pool of the heap.
  Buffer extra(4 * 4096);
  char* const middle = extra.data() + 4096;
  pool_t const pool = tlsf_add_pool(heap.get(), middle, 2 * 4096);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(tlsf_add_pool(heap.get(), middle, 2 * 4096), nullptr);
  EXPECT_EQ(tlsf_add_pool(heap.get(), middle + 4096, 2 * 4096), nullptr);
  EXPECT_EQ(tlsf_add_pool(heap.get(), extra.data() + 96, 4096), nullptr);
  EXPECT_EQ(tlsf_add_pool(heap.get(), extra.data(), 4 * 4096), nullptr);
  EXPECT_EQ(heap.stats().pool_count, before.pool_count + 1);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), pool), 0);
}

// --- Double free ---
// Reference 3.1 asserts in debug builds and corrupts its free lists otherwise,
// after which malloc hands out the same block twice.

TEST(TlsfDoubleFreeTest, SecondFreeIsReportedAndIgnored) {
  TestHeap heap(256 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  ErrorLog log;
  tlsf_set_error_handler(heap.get(), &ErrorLog::Record, &log);
  void* const keep = tlsf_malloc(heap.get(), 500);
  void* const p = tlsf_malloc(heap.get(), 1000);
  ASSERT_TRUE(keep != nullptr && p != nullptr);
  tlsf_free(heap.get(), p);
  EXPECT_TRUE(log.reports.empty());
  tlsf_free(heap.get(), p);
  ASSERT_EQ(log.reports.size(), 1u);
  EXPECT_EQ(log.reports[0].first, TLSF_ERROR_DOUBLE_FREE);
  EXPECT_EQ(log.reports[0].second, p);
  EXPECT_EQ(heap.stats().invalid_frees, 1u);
  EXPECT_EQ(heap.stats().live_blocks, 1u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);

  // No block is handed out twice.
  std::vector<void*> blocks{keep};
  for (size_t bytes : {1000, 1000, 24, 5000, 0, 1000}) {
    blocks.push_back(tlsf_malloc(heap.get(), bytes));
    ASSERT_NE(blocks.back(), nullptr);
  }
  std::vector<void*> rest = AllocateUntilFull(heap.get(), 700);
  blocks.insert(blocks.end(), rest.begin(), rest.end());
  FillRemainder(heap.get(), &blocks, nullptr);
  EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(),
            blocks.size());
  EXPECT_TRUE(Disjoint(blocks));
  EXPECT_EQ(heap.stats().live_blocks, blocks.size());
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  for (void* b : blocks) tlsf_free(heap.get(), b);
  EXPECT_EQ(log.reports.size(), 1u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

// A freed block whose header was absorbed by a merge with a free neighbour
// (b freed after a: b merges into a; a freed after b: a absorbs b) is still
// a block freed twice, and must be reported as TLSF_ERROR_DOUBLE_FREE.
TEST(TlsfDoubleFreeTest, DoubleFreeOfAMergedBlockIsReportedAsDouble) {
  for (const bool b_first : {false, true}) {
    SCOPED_TRACE(b_first ? "b freed before a" : "a freed before b");
    TestHeap heap(64 * 1024);
    ASSERT_NE(heap.get(), nullptr);
    ErrorLog log;
    tlsf_set_error_handler(heap.get(), &ErrorLog::Record, &log);
    void* const a = tlsf_malloc(heap.get(), 1000);
    void* const b = tlsf_malloc(heap.get(), 1000);
    void* const c = tlsf_malloc(heap.get(), 1000);
    ASSERT_TRUE(a != nullptr && b != nullptr && c != nullptr);
    tlsf_free(heap.get(), b_first ? b : a);
    tlsf_free(heap.get(), b_first ? a : b);  // a and b merge
    tlsf_free(heap.get(), b);
    ASSERT_EQ(log.reports.size(), 1u);
    EXPECT_EQ(log.reports[0].first, TLSF_ERROR_DOUBLE_FREE)
        << "a block freed twice is reported as kind " << log.reports[0].first;
    EXPECT_EQ(log.reports[0].second, b);
    EXPECT_EQ(heap.stats().invalid_frees, 1u);
    EXPECT_EQ(heap.stats().live_blocks, 1u);
    EXPECT_EQ(tlsf_check(heap.get()), 0);
    tlsf_free(heap.get(), c);
    EXPECT_EQ(tlsf_check(heap.get()), 0);
  }
}

TEST(TlsfDoubleFreeTest, ReallocOfAFreedBlockIsReported) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  ErrorLog log;
  tlsf_set_error_handler(heap.get(), &ErrorLog::Record, &log);
  void* const keep = tlsf_malloc(heap.get(), 64);
  void* const p = tlsf_malloc(heap.get(), 300);
  ASSERT_NE(p, nullptr);
  tlsf_free(heap.get(), p);
  EXPECT_EQ(tlsf_realloc(heap.get(), p, 600), nullptr);
  ASSERT_EQ(log.reports.size(), 1u);
  EXPECT_EQ(log.reports[0].first, TLSF_ERROR_DOUBLE_FREE);
  // Not a pointer of this heap at all: an interior pointer, and a block of
  // another heap.
  tlsf_free(heap.get(), static_cast<char*>(keep) + 16);
  TestHeap other(64 * 1024);
  void* const foreign = tlsf_malloc(other.get(), 64);
  ASSERT_NE(foreign, nullptr);
  tlsf_free(heap.get(), foreign);
  ASSERT_EQ(log.reports.size(), 3u);
  EXPECT_EQ(log.reports[1].first, TLSF_ERROR_INVALID_FREE);
  EXPECT_EQ(log.reports[2].first, TLSF_ERROR_INVALID_FREE);
  EXPECT_EQ(heap.stats().invalid_frees, 3u);
  EXPECT_EQ(heap.stats().live_blocks, 1u);
  EXPECT_EQ(other.stats().live_blocks, 1u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_check(other.get()), 0);
  tlsf_free(other.get(), foreign);
  tlsf_free(heap.get(), keep);
}

// --- Removing a pool in use ---
// Reference 3.1 removes it anyway and keeps handing out its memory.

TEST(TlsfRemovePoolTest, PoolWithALiveBlockIsKeptUntilItIsEmpty) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  ErrorLog log;
  tlsf_set_error_handler(heap.get(), &ErrorLog::Record, &log);
  Buffer memory(256 * 1024);
  const uintptr_t begin = Addr(memory.data());
  const uintptr_t end = begin + memory.size();
  auto inside = [&](const void* p) {
    return Addr(p) >= begin && Addr(p) < end;
  };
  pool_t const second = tlsf_add_pool(heap.get(), memory.data(), memory.size());
  ASSERT_NE(second, nullptr);
  // Too big for the first pool, so it lands in the second.
  void* const live = tlsf_malloc(heap.get(), 100 * 1024);
  ASSERT_NE(live, nullptr);
  ASSERT_TRUE(inside(live));

  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), second), -1);
  EXPECT_TRUE(log.reports.empty());
  tlsf_remove_pool(heap.get(), second);
  ASSERT_EQ(log.reports.size(), 1u);
  EXPECT_EQ(log.reports[0].first, TLSF_ERROR_POOL_NOT_REMOVED);
  EXPECT_EQ(log.reports[0].second, second);
  EXPECT_EQ(heap.stats().pool_count, 2u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_check_pool(second), 0);

  // The pool still serves allocations.
  void* const more = tlsf_malloc(heap.get(), 100 * 1024);
  ASSERT_NE(more, nullptr);
  EXPECT_TRUE(inside(more));
  std::memset(live, 1, 100 * 1024);
  std::memset(more, 2, 100 * 1024);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  tlsf_free(heap.get(), live);
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), second), -1);  // more lives
  tlsf_free(heap.get(), more);

  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), second), 0);
  EXPECT_EQ(heap.stats().pool_count, 1u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_check_pool(second), -1);
  EXPECT_TRUE(Walk(second).empty());
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), second), -1);  // gone
  EXPECT_EQ(log.reports.size(), 1u);

  // Its memory is never handed out again.
  std::vector<void*> blocks = AllocateUntilFull(heap.get(), 5000);
  FillRemainder(heap.get(), &blocks, nullptr);
  for (size_t align : {64, 4096}) {
    for (void* p; (p = tlsf_memalign(heap.get(), align, 16)) != nullptr;) {
      blocks.push_back(p);
    }
  }
  ASSERT_FALSE(blocks.empty());
  for (void* p : blocks) {
    EXPECT_FALSE(inside(p)) << p;
  }
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  for (void* p : blocks) tlsf_free(heap.get(), p);
  EXPECT_EQ(log.reports.size(), 1u);
}

TEST(TlsfRemovePoolTest, InitialPoolCanBeRemovedWhenEmpty) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  pool_t const pool = heap.pool();
  void* const p = tlsf_malloc(heap.get(), 10);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), pool), -1);
  EXPECT_EQ(tlsf_get_pool(heap.get()), pool);
  tlsf_free(heap.get(), p);
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), pool), 0);
  EXPECT_EQ(tlsf_get_pool(heap.get()), nullptr);
  EXPECT_EQ(tlsf_malloc(heap.get(), 0), nullptr);
  EXPECT_EQ(heap.stats().pool_count, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

TEST(TlsfRemovePoolTest, PoolOfAnotherHeapIsRefused) {
  TestHeap heap(64 * 1024);
  TestHeap other(64 * 1024);
  ASSERT_TRUE(heap.get() != nullptr && other.get() != nullptr);
  ErrorLog log;
  tlsf_set_error_handler(other.get(), &ErrorLog::Record, &log);
  EXPECT_EQ(tlsf_remove_pool_checked(other.get(), heap.pool()), -1);
  tlsf_remove_pool(other.get(), heap.pool());
  ASSERT_EQ(log.reports.size(), 1u);
  EXPECT_EQ(log.reports[0].first, TLSF_ERROR_POOL_NOT_REMOVED);
  Buffer not_a_pool(4096);
  EXPECT_EQ(tlsf_remove_pool_checked(other.get(), not_a_pool.data()), -1);
  EXPECT_EQ(tlsf_remove_pool_checked(other.get(), nullptr), -1);
  EXPECT_EQ(heap.stats().pool_count, 1u);
  EXPECT_EQ(other.stats().pool_count, 1u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_check(other.get()), 0);
  void* const p = tlsf_malloc(heap.get(), 1000);
  EXPECT_NE(p, nullptr);
  tlsf_free(heap.get(), p);
}

// --- Unaligned pools ---
// Reference 3.1 rejects (or asserts on) pool memory that is not aligned.

TEST(TlsfUnalignedPoolTest, BoundsAreAlignedInward) {
  Buffer control(tlsf_size() + 64);
  Buffer memory(128 * 1024);
  for (const size_t offset : {1, 3, 5, 8, 15, 17}) {
    for (const size_t bytes : {4097, 10007, 65539, 100001}) {
      SCOPED_TRACE(testing::Message() << offset << " " << bytes);
      tlsf_t const tlsf = tlsf_create(control.data() + 3);
      ASSERT_NE(tlsf, nullptr);
      EXPECT_EQ(Addr(tlsf) % tlsf_align_size(), 0u);
      EXPECT_GE(Addr(tlsf), Addr(control.data() + 3));
      char* const mem = memory.data() + offset;
      const uintptr_t begin = Addr(mem);
      const uintptr_t end = begin + bytes;
      pool_t const pool = tlsf_add_pool(tlsf, mem, bytes);
      ASSERT_NE(pool, nullptr);
      EXPECT_GE(Addr(pool), begin);
      std::vector<void*> blocks;
      for (const size_t size : {1000, 100, 24, 0}) {
        for (void* p; (p = tlsf_malloc(tlsf, size)) != nullptr;) {
          blocks.push_back(p);
        }
        for (void* p; (p = tlsf_memalign(tlsf, 64, size)) != nullptr;) {
          blocks.push_back(p);
        }
      }
      ASSERT_FALSE(blocks.empty());
      for (void* p : blocks) {
        EXPECT_EQ(Addr(p) % tlsf_align_size(), 0u) << p;
        EXPECT_GE(Addr(p), begin) << p;
        EXPECT_LE(Addr(p) + tlsf_block_size(p), end) << p;
        std::memset(p, 0xee, tlsf_block_size(p));
      }
      for (const WalkedBlock& b : Walk(pool)) {
        EXPECT_GE(Addr(b.ptr), begin);
        EXPECT_LE(Addr(b.ptr) + b.size, end);
      }
      EXPECT_EQ(tlsf_check(tlsf), 0);
      // Capacity loses at most the fixed overhead plus alignment slack.
      const tlsf_stats_t stats = [&] {
        tlsf_stats_t s;
        tlsf_get_stats(tlsf, &s);
        return s;
      }();
      EXPECT_LE(stats.capacity_bytes + tlsf_pool_overhead(), bytes);
      EXPECT_GE(
          stats.capacity_bytes + tlsf_pool_overhead() + 2 * tlsf_align_size(),
          bytes);
      for (void* p : blocks) tlsf_free(tlsf, p);
      EXPECT_EQ(tlsf_remove_pool_checked(tlsf, pool), 0);
      tlsf_destroy(tlsf);
    }
  }
}

// --- Aligned realloc ---

// Allocates minimum blocks until the block physically after `p` is live;
// returns whether it is. The blocks are appended to `blocks`.
bool PinBlockBehind(tlsf_t tlsf, void* p, std::vector<void*>* blocks) {
  const uintptr_t behind = Addr(p) + tlsf_block_size(p) + tlsf_alloc_overhead();
  for (void* b; (b = tlsf_malloc(tlsf, 0)) != nullptr;) {
    blocks->push_back(b);
    if (Addr(b) == behind) return true;
  }
  return false;
}

// Reference 3.1 moves a block with tlsf_malloc, losing its alignment.
TEST(TlsfAlignedReallocTest, MovedBlockKeepsItsAlignment) {
  for (const size_t align : {64, 256, 4096}) {
    SCOPED_TRACE(align);
    TestHeap heap(1 << 20);
    ASSERT_NE(heap.get(), nullptr);
    void* const p = tlsf_memalign(heap.get(), align, 200);
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(Addr(p) % align, 0u);
    // A live block right behind p forces a growing realloc to move.
    std::vector<void*> blockers;
    ASSERT_TRUE(PinBlockBehind(heap.get(), p, &blockers));
    Fill(p, 200, 11);
    void* const moved = tlsf_realloc(heap.get(), p, 100000);
    ASSERT_NE(moved, nullptr);
    EXPECT_NE(moved, p);
    EXPECT_EQ(Addr(moved) % align, 0u) << moved;
    EXPECT_TRUE(Filled(moved, 200, 11));
    EXPECT_GE(tlsf_block_size(moved), 100000u);
    // Again, behind another live block.
    Fill(moved, 100000, 13);
    ASSERT_TRUE(PinBlockBehind(heap.get(), moved, &blockers));
    void* const moved2 = tlsf_realloc(heap.get(), moved, 300000);
    ASSERT_NE(moved2, nullptr);
    EXPECT_NE(moved2, moved);
    EXPECT_EQ(Addr(moved2) % align, 0u) << moved2;
    EXPECT_TRUE(Filled(moved2, 100000, 13));
    // Shrinking stays in place.
    EXPECT_EQ(tlsf_realloc(heap.get(), moved2, 50), moved2);
    EXPECT_TRUE(Filled(moved2, 50, 13));
    EXPECT_EQ(tlsf_check(heap.get()), 0);
    tlsf_free(heap.get(), moved2);
    for (void* b : blockers) tlsf_free(heap.get(), b);
    EXPECT_EQ(heap.stats().live_blocks, 0u);
    EXPECT_EQ(tlsf_check(heap.get()), 0);
  }
}

// --- More than 4 GiB ---
// Reference 3.1 on 64-bit caps blocks and pools at 4 GiB (FL_INDEX_MAX 32).

class Mapping {
 public:
  explicit Mapping(size_t bytes) : bytes_(bytes) {
    void* const p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Mapping() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* data() const { return data_; }

 private:
  size_t bytes_;
  char* data_;
};

TEST(TlsfLargeTest, BlocksAndPoolsOver4GiBWork) {
  const size_t pool_bytes = 5 * kGiB;
  Mapping mapping(pool_bytes);
  if (mapping.data() == nullptr) GTEST_SKIP() << "cannot map 5 GiB";
  PoollessHeap heap;
  pool_t const pool = tlsf_add_pool(heap.get(), mapping.data(), pool_bytes);
  ASSERT_NE(pool, nullptr);
  EXPECT_GT(heap.stats().capacity_bytes, pool_bytes - 4096);
  EXPECT_EQ(tlsf_check_pool(pool), 0);

  const size_t bytes = 4 * kGiB + kGiB / 2;
  char* const p = static_cast<char*>(tlsf_malloc(heap.get(), bytes));
  ASSERT_NE(p, nullptr);
  EXPECT_GE(tlsf_block_size(p), bytes);
  EXPECT_GE(Addr(p), Addr(mapping.data()));
  EXPECT_LE(Addr(p) + bytes, Addr(mapping.data()) + pool_bytes);
  p[0] = 1;
  p[bytes - 1] = 2;
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(heap.stats().live_blocks, 1u);
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[bytes - 1], 2);
  tlsf_free(heap.get(), p);
  EXPECT_EQ(tlsf_check(heap.get()), 0);

  const size_t largest = tlsf_largest_allocatable(heap.get());
  EXPECT_GT(largest, 5 * kGiB - 4096);
  void* const q = tlsf_malloc(heap.get(), largest);
  ASSERT_NE(q, nullptr);
  EXPECT_GE(tlsf_block_size(q), largest);
  tlsf_free(heap.get(), q);
  EXPECT_EQ(tlsf_malloc(heap.get(), largest + 1), nullptr);
  void* const aligned = tlsf_memalign(heap.get(), 4096, bytes);
  ASSERT_NE(aligned, nullptr);
  EXPECT_EQ(Addr(aligned) % 4096, 0u);
  tlsf_free(heap.get(), aligned);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), pool), 0);
}

// The largest pool has a single block of span kMaxSpan - 16, which serves
// exactly tlsf_block_size_max().
TEST(TlsfLargeTest, PoolOfTheMaximumSpanServesTheMaximumRequest) {
  const size_t max_span = tlsf_block_size_max() + tlsf_alloc_overhead();
  const size_t pool_bytes = max_span + tlsf_pool_overhead();
  Mapping mapping(pool_bytes + 4096);
  if (mapping.data() == nullptr) GTEST_SKIP() << "cannot map 1 TiB";
  PoollessHeap heap;
  EXPECT_EQ(
      tlsf_add_pool(heap.get(), mapping.data(), pool_bytes + tlsf_align_size()),
      nullptr);
  pool_t const pool = tlsf_add_pool(heap.get(), mapping.data(), pool_bytes);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(tlsf_largest_allocatable(heap.get()), tlsf_block_size_max());
  EXPECT_EQ(tlsf_malloc(heap.get(), tlsf_block_size_max() + 1), nullptr);
  void* const p = tlsf_malloc(heap.get(), tlsf_block_size_max());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(tlsf_block_size(p), tlsf_block_size_max());
  EXPECT_EQ(tlsf_malloc(heap.get(), 0), nullptr);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  tlsf_free(heap.get(), p);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  EXPECT_EQ(tlsf_remove_pool_checked(heap.get(), pool), 0);
}

// --- tlsf_largest_allocatable ---

TEST(TlsfLargestAllocatableTest, IsExactOnAFragmentedHeap) {
  for (unsigned seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    TestHeap heap(1 << 20);
    ASSERT_NE(heap.get(), nullptr);
    std::vector<void*> live;
    std::uniform_int_distribution<size_t> size_dist(0, 30000);
    std::uniform_int_distribution<int> op(0, 99);
    for (int step = 0; step < 3000; ++step) {
      const int o = op(rng);
      if (o < 55) {
        void* p = o < 10 ? tlsf_memalign(heap.get(), size_t{64} << (o % 4),
                                         size_dist(rng))
                         : tlsf_malloc(heap.get(), size_dist(rng) >> (o % 5));
        if (p != nullptr) live.push_back(p);
      } else if (!live.empty()) {
        std::uniform_int_distribution<size_t> pick(0, live.size() - 1);
        const size_t i = pick(rng);
        tlsf_free(heap.get(), live[i]);
        live[i] = live.back();
        live.pop_back();
      }
      if (step % 50 != 0) continue;
      const size_t largest = tlsf_largest_allocatable(heap.get());
      if (largest == 0) {
        ASSERT_EQ(tlsf_malloc(heap.get(), 0), nullptr) << step;
        continue;
      }
      void* const probe = tlsf_malloc(heap.get(), largest);
      ASSERT_NE(probe, nullptr) << "step " << step << " largest " << largest;
      tlsf_free(heap.get(), probe);
      void* const over = tlsf_malloc(heap.get(), largest + 1);
      EXPECT_EQ(over, nullptr) << "step " << step << " largest " << largest;
      if (over != nullptr) tlsf_free(heap.get(), over);
      ASSERT_EQ(tlsf_check(heap.get()), 0) << step;
    }
    for (void* p : live) tlsf_free(heap.get(), p);
    EXPECT_EQ(tlsf_largest_allocatable(heap.get()) + tlsf_alloc_overhead(),
              heap.stats().capacity_bytes);
  }
}

// --- Randomized use ---
// Every documented guarantee at once, under random malloc, memalign, realloc
// and free over two pools: contents survive, alignment is kept across moving
// reallocs, blocks never overlap, counters and tlsf_check agree.

struct LiveBlock {
  void* ptr;
  size_t bytes;
  size_t align;
  unsigned seed;
};

TEST(TlsfRandomTest, RandomOperationsKeepContentsAndInvariants) {
  for (unsigned seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    TestHeap heap(512 * 1024);
    ASSERT_NE(heap.get(), nullptr);
    Buffer second(768 * 1024 + 5);
    ASSERT_NE(tlsf_add_pool(heap.get(), second.data() + 5, 768 * 1024),
              nullptr);
    ErrorLog log;
    tlsf_set_error_handler(heap.get(), &ErrorLog::Record, &log);
    std::vector<LiveBlock> live;
    auto random_size = [&rng]() -> size_t {
      const int log2 = std::uniform_int_distribution<int>(0, 16)(rng);
      return std::uniform_int_distribution<size_t>(0, size_t{1} << log2)(rng);
    };
    for (int step = 0; step < 6000; ++step) {
      const int op = std::uniform_int_distribution<int>(0, 9)(rng);
      if (op < 4 || live.empty()) {
        const size_t bytes = random_size();
        const int align_log2 = std::uniform_int_distribution<int>(5, 12)(rng);
        const size_t align = op == 0 ? size_t{1} << align_log2 : 0;
        void* const p = align != 0 ? tlsf_memalign(heap.get(), align, bytes)
                                   : tlsf_malloc(heap.get(), bytes);
        if (p == nullptr) continue;
        ASSERT_EQ(Addr(p) % std::max(align, tlsf_align_size()), 0u);
        ASSERT_GE(tlsf_block_size(p), bytes);
        Fill(p, bytes, step);
        live.push_back(LiveBlock{p, bytes, align, static_cast<unsigned>(step)});
        continue;
      }
      const size_t i =
          std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng);
      LiveBlock& b = live[i];
      ASSERT_TRUE(Filled(b.ptr, b.bytes, b.seed)) << "step " << step;
      if (op < 7) {
        const size_t bytes =
            std::max<size_t>(1, op == 4 ? b.bytes / 2 : random_size() * 2);
        void* const p = tlsf_realloc(heap.get(), b.ptr, bytes);
        if (p == nullptr) {
          ASSERT_TRUE(Filled(b.ptr, b.bytes, b.seed)) << "step " << step;
          continue;
        }
        ASSERT_TRUE(Filled(p, std::min(b.bytes, bytes), b.seed))
            << "step " << step;
        ASSERT_EQ(Addr(p) % std::max(b.align, tlsf_align_size()), 0u)
            << "realloc lost alignment " << b.align << " at step " << step;
        b.ptr = p;
        b.bytes = bytes;
        b.seed = static_cast<unsigned>(step);
        Fill(p, b.bytes, b.seed);
      } else {
        tlsf_free(heap.get(), b.ptr);
        b = live.back();
        live.pop_back();
      }
      if (step % 100 == 0) {
        ASSERT_EQ(tlsf_check(heap.get()), 0) << "step " << step;
        std::vector<void*> ptrs;
        for (const LiveBlock& l : live) {
          ASSERT_TRUE(Filled(l.ptr, l.bytes, l.seed)) << "step " << step;
          ptrs.push_back(l.ptr);
        }
        ASSERT_TRUE(Disjoint(ptrs)) << "step " << step;
        const tlsf_stats_t stats = heap.stats();
        ASSERT_EQ(stats.live_blocks, live.size());
        ASSERT_EQ(stats.used_bytes + stats.free_bytes, stats.capacity_bytes);
      }
    }
    for (const LiveBlock& l : live) tlsf_free(heap.get(), l.ptr);
    EXPECT_TRUE(log.reports.empty());
    EXPECT_EQ(heap.stats().used_bytes, 0u);
    EXPECT_EQ(tlsf_check(heap.get()), 0);
  }
}

// --- Statistics ---

// peak_used_bytes is the maximum of used_bytes. A realloc that grows in place
// uses only the bytes it keeps, however large the free neighbour it grows
// into.
TEST(TlsfStatsTest, PeakCountsOnlyBytesInUse) {
  TestHeap heap(256 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  void* const p = tlsf_malloc(heap.get(), 100);
  ASSERT_NE(p, nullptr);
  tlsf_reset_peak(heap.get());
  EXPECT_EQ(heap.stats().peak_used_bytes, heap.stats().used_bytes);
  void* const q = tlsf_realloc(heap.get(), p, 200);  // grows into the rest
  ASSERT_EQ(q, p);
  const tlsf_stats_t grown = heap.stats();
  EXPECT_EQ(grown.used_bytes, tlsf_block_size(q) + tlsf_alloc_overhead());
  EXPECT_EQ(grown.peak_used_bytes, grown.used_bytes)
      << "peak counts bytes that were never in use; capacity is "
      << grown.capacity_bytes;
  // Plain allocation and free move the peak as expected.
  void* const r = tlsf_malloc(heap.get(), 5000);
  ASSERT_NE(r, nullptr);
  const size_t high = heap.stats().used_bytes;
  tlsf_free(heap.get(), r);
  EXPECT_EQ(heap.stats().peak_used_bytes,
            std::max(high, grown.peak_used_bytes));
  tlsf_reset_peak(heap.get());
  EXPECT_EQ(heap.stats().peak_used_bytes, heap.stats().used_bytes);
  tlsf_free(heap.get(), q);
  EXPECT_EQ(heap.stats().used_bytes, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

// --- Walks ---

TEST(TlsfWalkTest, WalkPoolVisitsEveryBlockAndSizesAddUp) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  std::vector<void*> live;
  for (size_t bytes : {10, 100, 1000, 3000, 0, 555}) {
    live.push_back(tlsf_malloc(heap.get(), bytes));
  }
  live.push_back(tlsf_memalign(heap.get(), 256, 40));
  for (void* p : live) ASSERT_NE(p, nullptr);
  tlsf_free(heap.get(), live[1]);
  tlsf_free(heap.get(), live[3]);
  live.erase(live.begin() + 3);
  live.erase(live.begin() + 1);

  const std::vector<WalkedBlock> blocks = Walk(heap.pool());
  size_t total = 0;
  size_t used_bytes = 0;
  std::set<void*> used;
  for (size_t i = 0; i < blocks.size(); ++i) {
    total += blocks[i].size + tlsf_alloc_overhead();
    if (blocks[i].used) {
      used.insert(blocks[i].ptr);
      used_bytes += blocks[i].size + tlsf_alloc_overhead();
      EXPECT_EQ(blocks[i].size, tlsf_block_size(blocks[i].ptr));
    }
    if (i > 0) {
      EXPECT_EQ(
          Addr(blocks[i - 1].ptr) + blocks[i - 1].size + tlsf_alloc_overhead(),
          Addr(blocks[i].ptr))
          << "blocks are adjacent, in address order";
      EXPECT_FALSE(!blocks[i - 1].used && !blocks[i].used) << "not merged";
    }
  }
  const tlsf_stats_t stats = heap.stats();
  EXPECT_EQ(total, stats.capacity_bytes);
  EXPECT_EQ(used_bytes, stats.used_bytes);
  EXPECT_EQ(used, std::set<void*>(live.begin(), live.end()));
  for (void* p : live) tlsf_free(heap.get(), p);
  const std::vector<WalkedBlock> empty = Walk(heap.pool());
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_FALSE(empty[0].used);
  EXPECT_EQ(empty[0].size + tlsf_alloc_overhead(), stats.capacity_bytes);
}

TEST(TlsfWalkTest, WalkPoolUntilStopsWhenTheWalkerReturnsZero) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  std::vector<void*> live;
  live.reserve(10);
  for (int i = 0; i < 10; ++i) live.push_back(tlsf_malloc(heap.get(), 100));
  struct Counter {
    int calls = 0;
    int stop_at = 0;  // stop on this call; 0: never
    void* last = nullptr;
  };
  auto walker = [](void* ptr, size_t, int, void* user) -> int {
    Counter* c = static_cast<Counter*>(user);
    c->last = ptr;
    return ++c->calls == c->stop_at ? 0 : 1;
  };
  Counter all;
  EXPECT_EQ(tlsf_walk_pool_until(heap.pool(), walker, &all), 0);
  EXPECT_EQ(all.calls, 11);  // ten blocks and the free rest

  Counter third;
  third.stop_at = 3;
  EXPECT_EQ(tlsf_walk_pool_until(heap.pool(), walker, &third), 1);
  EXPECT_EQ(third.calls, 3);
  EXPECT_EQ(third.last, live[2]);

  Counter first;
  first.stop_at = 1;
  EXPECT_EQ(tlsf_walk_pool_until(heap.pool(), walker, &first), 1);
  EXPECT_EQ(first.calls, 1);

  Counter last;
  last.stop_at = 11;
  EXPECT_EQ(tlsf_walk_pool_until(heap.pool(), walker, &last), 1);
  EXPECT_EQ(last.calls, 11);

  EXPECT_EQ(tlsf_walk_pool_until(heap.pool(), nullptr, nullptr), 0);
  for (void* p : live) tlsf_free(heap.get(), p);
}

// --- NULL arguments ---

TEST(TlsfNullTest, NullTlsfIsHarmlessEverywhere) {
  TestHeap heap(64 * 1024);
  ASSERT_NE(heap.get(), nullptr);
  void* const p = tlsf_malloc(heap.get(), 100);
  ASSERT_NE(p, nullptr);
  Fill(p, 100, 5);
  Buffer memory(64 * 1024);

  EXPECT_EQ(tlsf_create(nullptr), nullptr);
  EXPECT_EQ(tlsf_create_with_pool(nullptr, 0), nullptr);
  EXPECT_EQ(tlsf_create_with_pool(nullptr, 1 << 20), nullptr);
  tlsf_destroy(nullptr);
  EXPECT_EQ(tlsf_get_pool(nullptr), nullptr);
  EXPECT_EQ(tlsf_add_pool(nullptr, memory.data(), memory.size()), nullptr);
  tlsf_remove_pool(nullptr, heap.pool());
  EXPECT_EQ(tlsf_remove_pool_checked(nullptr, heap.pool()), -1);
  EXPECT_EQ(tlsf_malloc(nullptr, 100), nullptr);
  EXPECT_EQ(tlsf_malloc(nullptr, 0), nullptr);
  EXPECT_EQ(tlsf_memalign(nullptr, 64, 100), nullptr);
  EXPECT_EQ(tlsf_realloc(nullptr, nullptr, 100), nullptr);
  EXPECT_EQ(tlsf_realloc(nullptr, p, 1000), nullptr);
  EXPECT_EQ(tlsf_realloc(nullptr, p, 0), nullptr);
  tlsf_free(nullptr, p);
  tlsf_free(nullptr, nullptr);
  EXPECT_EQ(tlsf_block_size(nullptr), 0u);
  bool called = false;
  tlsf_walk_pool(
      nullptr,
      [](void*, size_t, int, void* user) { *static_cast<bool*>(user) = true; },
      &called);
  EXPECT_EQ(tlsf_walk_pool_until(
                nullptr,
                [](void*, size_t, int, void* user) {
                  *static_cast<bool*>(user) = true;
                  return 1;
                },
                &called),
            0);
  EXPECT_FALSE(called);
  tlsf_walk_pool(heap.pool(), nullptr, nullptr);
  EXPECT_EQ(tlsf_check(nullptr), -1);
  EXPECT_EQ(tlsf_check_pool(nullptr), -1);
  tlsf_stats_t stats;
  std::memset(&stats, 0x5a, sizeof(stats));
  tlsf_get_stats(nullptr, &stats);
  EXPECT_EQ(stats.live_blocks, static_cast<size_t>(0x5a5a5a5a5a5a5a5aull));
  tlsf_get_stats(heap.get(), nullptr);
  tlsf_reset_peak(nullptr);
  EXPECT_EQ(tlsf_largest_allocatable(nullptr), 0u);
  tlsf_set_error_handler(nullptr, &ErrorLog::Record, nullptr);
  tlsf_set_error_handler(nullptr, nullptr, nullptr);

  // The real heap is untouched.
  EXPECT_TRUE(Filled(p, 100, 5));
  EXPECT_EQ(heap.stats().live_blocks, 1u);
  EXPECT_EQ(heap.stats().pool_count, 1u);
  EXPECT_EQ(heap.stats().invalid_frees, 0u);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
  tlsf_free(heap.get(), p);
  EXPECT_EQ(tlsf_check(heap.get()), 0);
}

}  // namespace
