// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of fmemp::tlsf::Heap: every operation, every error path, and a
// regression test for each defect of the reference TLSF 3.1 that fmemp
// fixes. The randomized model test is heap_random_test.cc; the C API's own
// tests are tlsf_test.cc.

#include "tlsf/heap.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fmemp::tlsf {
namespace {

using ::testing::HasSubstr;

// A 16-aligned buffer owned by the test.
class Buffer {
 public:
  explicit Buffer(size_t bytes)
      : storage_(new uint64_t[(bytes + 2 * kAlignment) / 8 + 1]),
        bytes_(bytes) {}
  char* data() {
    return reinterpret_cast<char*>(
        AlignUp(reinterpret_cast<uintptr_t>(storage_.get()), kAlignment));
  }
  size_t size() const { return bytes_; }

 private:
  std::unique_ptr<uint64_t[]> storage_;
  size_t bytes_;
};

// Records what the heap reports.
struct Reports {
  std::vector<std::pair<HeapError, const void*>> seen;
  static void Record(void* context, HeapError error, const void* ptr) {
    static_cast<Reports*>(context)->seen.emplace_back(error, ptr);
  }
};

class HeapTest : public ::testing::Test {
 protected:
  HeapTest() : buffer_(64 * 1024) {
    heap_.SetErrorHandler(&Reports::Record, &reports_);
    auto pool = heap_.AddPool(buffer_.data(), buffer_.size());
    EXPECT_TRUE(pool.ok()) << pool.status();
    pool_ = pool.value_or(nullptr);
  }

  void ExpectSound() {
    const absl::Status status = heap_.Check();
    EXPECT_TRUE(status.ok()) << status;
    const HeapStats stats = heap_.Stats();
    EXPECT_EQ(stats.used_bytes + stats.free_bytes, stats.capacity_bytes);
  }

  bool InBuffer(const void* p) {
    const char* c = static_cast<const char*>(p);
    return c >= buffer_.data() && c < buffer_.data() + buffer_.size();
  }

  Buffer buffer_;
  Heap heap_;
  Reports reports_;
  Pool* pool_ = nullptr;
};

// --- Allocation ---

TEST_F(HeapTest, AllocatesAlignedDistinctBlocks) {
  std::set<void*> seen;
  for (size_t n : {0, 1, 8, 15, 16, 17, 24, 100, 511, 512, 513, 4000}) {
    void* p = heap_.Allocate(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
    EXPECT_GE(heap_.UsableSize(p), n);
    EXPECT_TRUE(InBuffer(p));
    EXPECT_TRUE(seen.insert(p).second);
    std::memset(p, 0xab, heap_.UsableSize(p));
  }
  EXPECT_EQ(heap_.Stats().live_blocks, seen.size());
  ExpectSound();
  for (void* p : seen) EXPECT_TRUE(heap_.Free(p));
  EXPECT_EQ(heap_.Stats().live_blocks, 0u);
  EXPECT_EQ(heap_.Stats().used_bytes, 0u);
  ExpectSound();
}

TEST_F(HeapTest, AllocateZeroGivesUniqueMinimumBlock) {
  void* a = heap_.Allocate(0);
  void* b = heap_.Allocate(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(heap_.UsableSize(a), UsableBytes(kMinFreeSpan));
  heap_.Free(a);
  heap_.Free(b);
  ExpectSound();
}

// Reference defect: malloc of SIZE_MAX wrapped around to a tiny block.
TEST_F(HeapTest, HugeRequestsReturnNull) {
  for (size_t n : {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 64, kMaxRequest + 1,
                   size_t{1} << 62, buffer_.size()}) {
    EXPECT_EQ(heap_.Allocate(n), nullptr) << n;
    EXPECT_EQ(heap_.AllocateAligned(64, n), nullptr) << n;
  }
  EXPECT_EQ(heap_.Stats().failed_allocations, 12u);
  EXPECT_EQ(heap_.Stats().used_bytes, 0u);
  ExpectSound();
}

// Reference defect: freeing a block of size X on a full heap and asking for
// X again failed, because the search rounded X up past the freed block's bin.
TEST_F(HeapTest, FreedBlockIsFoundAgainOnFullHeap) {
  for (size_t size : {1000u, 3000u, 5000u, 777u, 24u, 600u}) {
    std::vector<void*> blocks;
    while (void* p = heap_.Allocate(size)) blocks.push_back(p);
    ASSERT_GT(blocks.size(), 1u);
    // Also use up the tail that was too small for `size`.
    std::vector<void*> fillers;
    for (size_t n = size; n > 0; n /= 2) {
      while (void* p = heap_.Allocate(n)) fillers.push_back(p);
    }
    for (size_t i = 0; i < blocks.size(); i += 3) {
      void* victim = blocks[i];
      ASSERT_TRUE(heap_.Free(victim));
      void* again = heap_.Allocate(size);
      EXPECT_EQ(again, victim) << "size " << size;
      blocks[i] = again;
    }
    for (void* p : blocks) heap_.Free(p);
    for (void* p : fillers) heap_.Free(p);
    ExpectSound();
  }
}

TEST_F(HeapTest, LargestAllocatableIsExact) {
  std::vector<void*> live;
  uint32_t seed = 7;
  for (int round = 0; round < 200; ++round) {
    seed = seed * 1103515245u + 12345u;
    const size_t n = 16 + (seed >> 8) % 3000;
    if (void* p = heap_.Allocate(n)) live.push_back(p);
    if (round % 3 == 0 && !live.empty()) {
      const size_t i = (seed >> 4) % live.size();
      heap_.Free(live[i]);
      live.erase(live.begin() + static_cast<ptrdiff_t>(i));
    }
    const size_t largest = heap_.LargestAllocatable();
    if (largest == 0) continue;
    EXPECT_EQ(heap_.Allocate(largest + 1), nullptr) << largest;
    void* probe = heap_.Allocate(largest);
    ASSERT_NE(probe, nullptr) << largest;
    heap_.Free(probe);
  }
  for (void* p : live) heap_.Free(p);
  EXPECT_EQ(heap_.LargestAllocatable(), heap_.Stats().capacity_bytes - 8);
  ExpectSound();
}

// --- Free and misuse ---

TEST_F(HeapTest, FreeNullIsNoOp) {
  EXPECT_TRUE(heap_.Free(nullptr));
  EXPECT_EQ(heap_.Stats().invalid_frees, 0u);
  EXPECT_TRUE(reports_.seen.empty());
}

// Reference defect: a double free relinked the block, so the same pointer
// was handed out twice and the check later looped forever.
TEST_F(HeapTest, DoubleFreeIsReportedAndHarmless) {
  void* a = heap_.Allocate(100);
  void* b = heap_.Allocate(100);  // keeps `a` from merging with the rest
  std::memset(b, 0x5a, 100);
  ASSERT_TRUE(heap_.Free(a));
  EXPECT_FALSE(heap_.Free(a));
  ASSERT_EQ(reports_.seen.size(), 1u);
  EXPECT_EQ(reports_.seen[0].first, HeapError::kDoubleFree);
  EXPECT_EQ(reports_.seen[0].second, a);
  EXPECT_EQ(heap_.Stats().invalid_frees, 1u);
  ExpectSound();
  void* c = heap_.Allocate(100);
  void* d = heap_.Allocate(100);
  EXPECT_NE(c, d);
  EXPECT_NE(d, b);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(b)[i], 0x5a);
  heap_.Free(b);
  heap_.Free(c);
  heap_.Free(d);
  ExpectSound();
}

TEST_F(HeapTest, DoubleFreeOfMergedBlockIsReported) {
  void* a = heap_.Allocate(100);
  void* b = heap_.Allocate(100);
  void* c = heap_.Allocate(100);
  ASSERT_TRUE(heap_.Free(a));
  ASSERT_TRUE(heap_.Free(b));  // merges into a's block: b's header is gone
  EXPECT_FALSE(heap_.Free(b));
  ASSERT_EQ(reports_.seen.size(), 1u);
  EXPECT_EQ(reports_.seen[0].first, HeapError::kDoubleFree);
  heap_.Free(c);
  ExpectSound();
}

TEST_F(HeapTest, ForeignInteriorAndMisalignedPointersAreReported) {
  void* a = heap_.Allocate(256);
  alignas(16) static char outside[256] = {};
  std::set<const void*> bad = {static_cast<char*>(a) + 16,
                               static_cast<char*>(a) + 1,
                               static_cast<char*>(a) + 64, outside + 32};
  for (const void* p : bad) EXPECT_FALSE(heap_.Free(const_cast<void*>(p)));
  EXPECT_EQ(heap_.Stats().invalid_frees, bad.size());
  EXPECT_EQ(reports_.seen.size(), bad.size());
  for (const auto& [error, ptr] : reports_.seen) {
    EXPECT_EQ(error, HeapError::kInvalidFree);
    EXPECT_TRUE(bad.count(ptr));
  }
  EXPECT_EQ(heap_.Stats().live_blocks, 1u);
  EXPECT_EQ(heap_.Reallocate(static_cast<char*>(a) + 32, 10), nullptr);
  ExpectSound();
  EXPECT_TRUE(heap_.Free(a));
}

TEST_F(HeapTest, PointerOfAnotherHeapIsReported) {
  Buffer other_buffer(8192);
  Heap other;
  ASSERT_TRUE(other.AddPool(other_buffer.data(), other_buffer.size()).ok());
  void* theirs = other.Allocate(64);
  ASSERT_NE(theirs, nullptr);
  EXPECT_FALSE(heap_.Free(theirs));
  EXPECT_EQ(heap_.UsableSize(theirs), 0u);
  EXPECT_TRUE(other.Free(theirs));
  EXPECT_TRUE(other.Check().ok());
  ExpectSound();
}

// An overflow that damages the next block's header is caught when the
// damaged neighbour is involved, instead of spreading the damage.
TEST_F(HeapTest, OverflowIntoNextHeaderIsDetected) {
  void* a = heap_.Allocate(64);
  void* b = heap_.Allocate(64);
  const size_t usable = heap_.UsableSize(a);
  // Writes past a's usable bytes: that is b's header word.
  std::memset(static_cast<char*>(a) + usable, 0xee, 8);
  EXPECT_FALSE(heap_.Check().ok());
  EXPECT_FALSE(heap_.Free(a));
  EXPECT_FALSE(heap_.Free(b));
  ASSERT_EQ(reports_.seen.size(), 2u);
  EXPECT_EQ(reports_.seen[0].first, HeapError::kCorruptHeap);
  EXPECT_EQ(reports_.seen[1].first, HeapError::kCorruptHeap);
}

TEST_F(HeapTest, UsableSizeIfFreeableRefusesWhatFreeWouldRefuse) {
  void* a = heap_.Allocate(64);
  void* b = heap_.Allocate(64);
  void* c = heap_.Allocate(64);
  const size_t usable = heap_.UsableSize(a);
  EXPECT_EQ(heap_.UsableSizeIfFreeable(a), usable);
  EXPECT_EQ(heap_.UsableSizeIfFreeable(b), heap_.UsableSize(b));
  EXPECT_EQ(heap_.UsableSizeIfFreeable(nullptr), 0u);
  EXPECT_EQ(heap_.UsableSizeIfFreeable(static_cast<char*>(a) + 16), 0u);
  // The last block before the free rest: its successor is free, which is
  // fine.
  EXPECT_EQ(heap_.UsableSizeIfFreeable(c), heap_.UsableSize(c));
  heap_.Free(c);
  EXPECT_EQ(heap_.UsableSizeIfFreeable(c), 0u) << "freed";
  // An overflow into b's header: UsableSize still answers (a's own header
  // is intact), UsableSizeIfFreeable does not, as Free would refuse it.
  char saved[8];
  std::memcpy(saved, static_cast<char*>(a) + usable, sizeof(saved));
  std::memset(static_cast<char*>(a) + usable, 0xee, sizeof(saved));
  EXPECT_EQ(heap_.UsableSize(a), usable);
  EXPECT_EQ(heap_.UsableSizeIfFreeable(a), 0u);
  std::memcpy(static_cast<char*>(a) + usable, saved, sizeof(saved));
  EXPECT_EQ(heap_.UsableSizeIfFreeable(a), usable) << "repaired";
  EXPECT_TRUE(reports_.seen.empty()) << "asking reports nothing";
  EXPECT_TRUE(heap_.Free(a));
  EXPECT_TRUE(heap_.Free(b));
  EXPECT_TRUE(heap_.Check().ok());
}

TEST_F(HeapTest, CheckTerminatesOnCyclicFreeList) {
  void* a = heap_.Allocate(100);
  void* b = heap_.Allocate(100);
  void* c = heap_.Allocate(100);
  void* d = heap_.Allocate(100);
  heap_.Free(a);
  heap_.Free(c);  // a and c are free, same bin, not adjacent
  // Free-list links are the first two payload words of a free block.
  void** c_links = static_cast<void**>(c);
  void** a_links = static_cast<void**>(a);
  // Frees push to the front, so the bin's list is c -> a. Point a's next
  // link back at c's block: c -> a -> c -> ...
  void* c_block = static_cast<char*>(c) - kAlignment;
  void* saved_c_next = c_links[0];
  void* saved_a_next = a_links[0];
  a_links[0] = c_block;
  const absl::Status status = heap_.Check();
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  c_links[0] = saved_c_next;
  a_links[0] = saved_a_next;
  ExpectSound();
  heap_.Free(b);
  heap_.Free(d);
  ExpectSound();
}

// --- Coalescing ---

TEST_F(HeapTest, FreedNeighboursMergeImmediately) {
  const size_t whole = heap_.LargestAllocatable();
  void* a = heap_.Allocate(1000);
  void* b = heap_.Allocate(1000);
  void* c = heap_.Allocate(1000);
  heap_.Free(b);
  heap_.Free(a);  // merges with b
  ExpectSound();
  heap_.Free(c);  // merges with a+b and with the free rest of the pool
  EXPECT_EQ(heap_.LargestAllocatable(), whole);
  size_t blocks = 0;
  heap_.WalkPool(pool_, [&](const BlockInfo& info) {
    ++blocks;
    EXPECT_FALSE(info.used);
    return true;
  });
  EXPECT_EQ(blocks, 1u);
  ExpectSound();
}

// --- Realloc ---

TEST_F(HeapTest, ReallocGrowsInPlaceIntoFreeNextBlock) {
  void* a = heap_.Allocate(100);
  std::memset(a, 0x11, 100);
  void* grown = heap_.Reallocate(a, 5000);
  EXPECT_EQ(grown, a);
  EXPECT_GE(heap_.UsableSize(grown), 5000u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(a)[i], 0x11);
  // Growing absorbs the whole free neighbour before trimming it; the peak
  // must only see the final size.
  EXPECT_EQ(heap_.Stats().peak_used_bytes, heap_.Stats().used_bytes);
  ExpectSound();
  heap_.Free(grown);
}

TEST_F(HeapTest, ReallocShrinksInPlaceAndReturnsTail) {
  void* a = heap_.Allocate(4000);
  void* guard = heap_.Allocate(16);
  const size_t used_before = heap_.Stats().used_bytes;
  std::memset(a, 0x22, 100);
  EXPECT_EQ(heap_.Reallocate(a, 100), a);
  EXPECT_LT(heap_.Stats().used_bytes, used_before);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(a)[i], 0x22);
  void* tail = heap_.Allocate(3000);  // fits in the returned tail
  EXPECT_GT(tail, a);
  EXPECT_LT(tail, guard);
  ExpectSound();
  heap_.Free(a);
  heap_.Free(tail);
  heap_.Free(guard);
}

TEST_F(HeapTest, ReallocMovesWhenNextIsLive) {
  void* a = heap_.Allocate(100);
  void* b = heap_.Allocate(100);
  for (int i = 0; i < 100; ++i) static_cast<unsigned char*>(a)[i] = i;
  void* moved = heap_.Reallocate(a, 2000);
  ASSERT_NE(moved, nullptr);
  EXPECT_NE(moved, a);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(static_cast<unsigned char*>(moved)[i], i);
  }
  EXPECT_EQ(heap_.Stats().live_blocks, 2u);
  ExpectSound();
  heap_.Free(moved);
  heap_.Free(b);
}

// Reference defect: an impossible realloc returned the same pointer with
// size 0 and broke later walks.
TEST_F(HeapTest, ImpossibleReallocLeavesBlockIntact) {
  void* a = heap_.Allocate(300);
  void* b = heap_.Allocate(300);
  std::memset(a, 0x33, 300);
  const size_t usable = heap_.UsableSize(a);
  const HeapStats before = heap_.Stats();
  for (size_t n : {SIZE_MAX, kMaxRequest + 1, buffer_.size()}) {
    EXPECT_EQ(heap_.Reallocate(a, n), nullptr) << n;
  }
  EXPECT_EQ(heap_.UsableSize(a), usable);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(static_cast<char*>(a)[i], 0x33);
  EXPECT_EQ(heap_.Stats().used_bytes, before.used_bytes);
  EXPECT_EQ(heap_.Stats().failed_allocations, before.failed_allocations + 3);
  ExpectSound();
  EXPECT_TRUE(heap_.Free(a));
  EXPECT_TRUE(heap_.Free(b));
}

TEST_F(HeapTest, ReallocNullAllocatesAndZeroFrees) {
  void* a = heap_.Reallocate(nullptr, 50);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(heap_.Stats().live_blocks, 1u);
  EXPECT_EQ(heap_.Reallocate(a, 0), nullptr);
  EXPECT_EQ(heap_.Stats().live_blocks, 0u);
  EXPECT_EQ(heap_.Stats().failed_allocations, 0u);
  ExpectSound();
}

// Reference defect: a block from memalign lost its alignment when realloc
// had to move it.
TEST_F(HeapTest, AlignedReallocKeepsAlignmentWhenMoving) {
  for (size_t alignment : {32u, 64u, 256u, 4096u}) {
    void* a = heap_.AllocateAligned(alignment, 100);
    ASSERT_NE(a, nullptr);
    std::memset(a, 0x44, 100);
    // Fill the heap, then free the blocks far from `a`: the realloc below
    // finds its neighbour live and has to move into that far space.
    std::vector<void*> fill;
    while (void* p = heap_.Allocate(64)) fill.push_back(p);
    std::vector<void*> kept;
    for (void* p : fill) {
      if (static_cast<char*>(p) > static_cast<char*>(a) + 8192) {
        heap_.Free(p);
      } else {
        kept.push_back(p);
      }
    }
    void* moved = heap_.Reallocate(a, 3000);
    ASSERT_NE(moved, nullptr);
    EXPECT_NE(moved, a);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(moved) % alignment, 0u) << alignment;
    for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<char*>(moved)[i], 0x44);
    heap_.Free(moved);
    for (void* p : kept) heap_.Free(p);
    ExpectSound();
  }
}

// --- Aligned allocation ---

TEST_F(HeapTest, AlignedAllocationHonoursEveryPowerOfTwo) {
  for (size_t alignment = 1; alignment <= 8192; alignment *= 2) {
    void* p = heap_.AllocateAligned(alignment, 40);
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
    EXPECT_GE(heap_.UsableSize(p), 40u);
    ExpectSound();
    heap_.Free(p);
  }
  ExpectSound();
  EXPECT_EQ(heap_.Stats().used_bytes, 0u);
}

TEST_F(HeapTest, NonPowerOfTwoAlignmentIsRejected) {
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{24}, size_t{48},
                           size_t{1000}, Heap::kMaxAlignment * 2, SIZE_MAX}) {
    EXPECT_EQ(heap_.AllocateAligned(alignment, 16), nullptr) << alignment;
  }
  EXPECT_EQ(heap_.Stats().failed_allocations, 7u);
  EXPECT_EQ(heap_.Stats().live_blocks, 0u);
}

// A free block that holds size + alignment always serves the request, with
// no extra minimum gap as the reference required.
TEST(HeapAlignedTest, SucceedsWhenBlockHoldsSizePlusAlignment) {
  for (size_t alignment : {32u, 64u, 128u, 4096u, 65536u, 1u << 20}) {
    for (size_t shift : {0u, 16u, 48u, 112u}) {
      Buffer buffer(3 * alignment + 4096);
      Heap heap;
      ASSERT_TRUE(
          heap.AddPool(buffer.data() + shift, buffer.size() - shift).ok());
      const size_t usable = heap.LargestAllocatable();
      ASSERT_GT(usable, alignment);
      const size_t n = usable - alignment;
      void* p = heap.AllocateAligned(alignment, n);
      ASSERT_NE(p, nullptr) << "alignment " << alignment << " shift " << shift;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
      EXPECT_GE(heap.UsableSize(p), n);
      EXPECT_TRUE(heap.Check().ok()) << heap.Check();
      heap.Free(p);
      EXPECT_TRUE(heap.Check().ok()) << heap.Check();
      EXPECT_EQ(heap.LargestAllocatable(), usable);
    }
  }
}

// Padding of exactly one kAlignment becomes a 16-byte free fragment; it must
// merge back when its neighbours are freed.
TEST_F(HeapTest, SmallAlignmentPaddingMergesBack) {
  const size_t whole = heap_.LargestAllocatable();
  std::vector<void*> blocks;
  for (int i = 0; i < 50; ++i) {
    blocks.push_back(heap_.Allocate(static_cast<size_t>(i) * 16));
    blocks.push_back(heap_.AllocateAligned(32, 40));
    ExpectSound();
  }
  for (size_t i = 0; i < blocks.size(); i += 2) heap_.Free(blocks[i]);
  ExpectSound();
  for (size_t i = 1; i < blocks.size(); i += 2) heap_.Free(blocks[i]);
  ExpectSound();
  EXPECT_EQ(heap_.LargestAllocatable(), whole);
}

// --- Pools ---

TEST(HeapPoolTest, RejectsBadPools) {
  Heap heap;
  Buffer buffer(4096);
  EXPECT_EQ(heap.AddPool(nullptr, 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap.AddPool(buffer.data(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      heap.AddPool(buffer.data(), Heap::kMinPoolBytes - 1).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      heap.AddPool(buffer.data() + 1, Heap::kMinPoolBytes).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap.AddPool(buffer.data(), SIZE_MAX).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Reference defect: a pool of exactly the maximum size crashed. Pools whose
  // block would reach kMaxSpan are rejected before the memory is touched (the
  // fake address below is never written).
  void* fake = reinterpret_cast<void*>(uintptr_t{1} << 20);
  for (size_t bytes :
       {kMaxSpan + Heap::kPoolOverhead, kMaxSpan + Heap::kPoolOverhead + 1,
        kMaxSpan * 2, SIZE_MAX / 4}) {
    EXPECT_EQ(heap.AddPool(fake, bytes).status().code(),
              absl::StatusCode::kOutOfRange)
        << bytes;
  }
  EXPECT_EQ(heap.Stats().pool_count, 0u);
  EXPECT_EQ(heap.Stats().capacity_bytes, 0u);
  EXPECT_EQ(heap.Allocate(1), nullptr);
  EXPECT_TRUE(heap.Check().ok());
  // The smallest pool works.
  auto pool = heap.AddPool(buffer.data(), Heap::kMinPoolBytes);
  ASSERT_TRUE(pool.ok()) << pool.status();
  void* p = heap.Allocate(UsableBytes(kMinFreeSpan));
  EXPECT_NE(p, nullptr);
  heap.Free(p);
  EXPECT_TRUE(heap.Check().ok());
}

TEST(HeapPoolTest, RejectsOverlappingPools) {
  Heap heap;
  Buffer buffer(16384);
  ASSERT_TRUE(heap.AddPool(buffer.data() + 4096, 4096).ok());
  for (auto [offset, bytes] : std::vector<std::pair<size_t, size_t>>{
           {4096, 4096}, {0, 8192}, {6000, 4096}, {0, 16384}, {8000, 1000}}) {
    auto status = heap.AddPool(buffer.data() + offset, bytes).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << offset << "+" << bytes;
    EXPECT_THAT(std::string(status.message()), HasSubstr("overlaps"));
  }
  EXPECT_TRUE(heap.AddPool(buffer.data(), 4096).ok());  // touching is fine
  EXPECT_TRUE(heap.AddPool(buffer.data() + 8192, 8192).ok());
  EXPECT_EQ(heap.Stats().pool_count, 3u);
  EXPECT_TRUE(heap.Check().ok());
}

// Reference defect: pool memory that was not aligned was rejected with a
// printf. fmemp aligns it inward.
TEST(HeapPoolTest, UnalignedPoolIsAlignedInward) {
  Buffer buffer(8192);
  for (size_t shift : {1u, 3u, 7u, 9u, 15u}) {
    Heap heap;
    char* begin = buffer.data() + shift;
    const size_t bytes = 4096 + shift;
    auto pool = heap.AddPool(begin, bytes);
    ASSERT_TRUE(pool.ok()) << pool.status();
    EXPECT_GE(static_cast<char*>(Heap::PoolBegin(*pool)), begin);
    EXPECT_LE(static_cast<char*>(Heap::PoolEnd(*pool)), begin + bytes);
    std::vector<void*> blocks;
    while (void* p = heap.Allocate(40)) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
      EXPECT_GE(static_cast<char*>(p), begin);
      EXPECT_LE(static_cast<char*>(p) + heap.UsableSize(p), begin + bytes);
      blocks.push_back(p);
    }
    EXPECT_TRUE(heap.Check().ok());
    for (void* p : blocks) heap.Free(p);
    EXPECT_TRUE(heap.RemovePool(*pool).ok());
  }
}

// The non-allocating forms give the reason the Status forms describe, and
// change nothing when they refuse.
TEST(HeapPoolTest, TryAddPoolAndTryRemovePoolReturnTheReason) {
  Buffer first(8192), second(8192);
  Heap heap;
  Pool* pool = nullptr;
  EXPECT_EQ(heap.TryAddPool(nullptr, 4096, &pool), PoolError::kNullMemory);
  EXPECT_EQ(heap.TryAddPool(first.data(), Heap::kMinPoolBytes - 1, &pool),
            PoolError::kTooSmall);
  EXPECT_EQ(heap.TryAddPool(first.data(), SIZE_MAX, &pool),
            PoolError::kWrapsAround);
  EXPECT_EQ(pool, nullptr);
  ASSERT_EQ(heap.TryAddPool(first.data(), first.size(), &pool),
            PoolError::kNone);
  ASSERT_NE(pool, nullptr);
  Pool* other = nullptr;
  EXPECT_EQ(heap.TryAddPool(first.data() + 1024, 4096, &other),
            PoolError::kOverlap);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(heap.Stats().pool_count, 1u);
  void* live = heap.Allocate(100);
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(heap.TryRemovePool(pool), PoolError::kLiveBlocks);
  EXPECT_EQ(heap.Stats().pool_count, 1u);
  heap.Free(live);
  EXPECT_EQ(heap.TryRemovePool(pool), PoolError::kNone);
  EXPECT_EQ(heap.TryRemovePool(pool), PoolError::kNotAPool);
  EXPECT_EQ(heap.TryRemovePool(nullptr), PoolError::kNotAPool);
  EXPECT_EQ(heap.Stats().pool_count, 0u);
  EXPECT_TRUE(heap.Check().ok());
}

// Reference defect: removing a pool with live blocks was allowed, and the
// heap later handed out memory inside the removed pool.
TEST(HeapPoolTest, RemovePoolWithLiveBlocksIsRefused) {
  Buffer first(8192), second(8192);
  Heap heap;
  auto a = heap.AddPool(first.data(), first.size());
  auto b = heap.AddPool(second.data(), second.size());
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<void*> blocks;
  while (void* p = heap.Allocate(500)) blocks.push_back(p);
  void* in_b = nullptr;
  for (void* p : blocks) {
    if (heap.FindPool(p) == *b) in_b = p;
  }
  ASSERT_NE(in_b, nullptr);
  const HeapStats before = heap.Stats();
  const absl::Status refused = heap.RemovePool(*b);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("live bytes"));
  EXPECT_EQ(heap.Stats().pool_count, 2u);
  EXPECT_EQ(heap.Stats().capacity_bytes, before.capacity_bytes);
  EXPECT_TRUE(heap.Check().ok());
  // Free everything in b, then removal succeeds and b is never used again.
  std::vector<void*> kept;
  for (void* p : blocks) {
    if (heap.FindPool(p) == *b) {
      heap.Free(p);
    } else {
      kept.push_back(p);
    }
  }
  ASSERT_TRUE(heap.RemovePool(*b).ok());
  EXPECT_EQ(heap.Stats().pool_count, 1u);
  EXPECT_EQ(heap.FindPool(in_b), nullptr);
  for (void* p : kept) heap.Free(p);
  std::vector<void*> again;
  while (void* p = heap.Allocate(64)) {
    EXPECT_TRUE(static_cast<char*>(p) < second.data() ||
                static_cast<char*>(p) >= second.data() + second.size());
    again.push_back(p);
  }
  EXPECT_FALSE(again.empty());
  for (void* p : again) heap.Free(p);
  EXPECT_TRUE(heap.Check().ok());
  // A removed pool is unknown to the heap.
  EXPECT_EQ(heap.RemovePool(*b).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(heap.RemovePool(nullptr).code(), absl::StatusCode::kNotFound);
  // And it can be added again.
  EXPECT_TRUE(heap.AddPool(second.data(), second.size()).ok());
  EXPECT_TRUE(heap.Check().ok());
}

TEST(HeapPoolTest, BlocksNeverSpanPools) {
  Buffer a(4096), b(4096);
  Heap heap;
  ASSERT_TRUE(heap.AddPool(a.data(), a.size()).ok());
  ASSERT_TRUE(heap.AddPool(b.data(), b.size()).ok());
  EXPECT_EQ(heap.Allocate(6000), nullptr);
  void* p = heap.Allocate(3000);
  void* q = heap.Allocate(3000);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(heap.FindPool(p), heap.FindPool(q));
  heap.Free(p);
  heap.Free(q);
  EXPECT_TRUE(heap.Check().ok());
}

// --- Counters ---

TEST_F(HeapTest, CountersTrackEveryOperation) {
  const HeapStats empty = heap_.Stats();
  EXPECT_EQ(empty.pool_count, 1u);
  EXPECT_EQ(empty.used_bytes, 0u);
  EXPECT_EQ(empty.free_bytes, empty.capacity_bytes);
  EXPECT_EQ(empty.capacity_bytes, Heap::PoolCapacity(pool_));
  EXPECT_EQ(empty.capacity_bytes, buffer_.size() - Heap::kPoolOverhead);

  void* a = heap_.Allocate(1000);
  void* b = heap_.Allocate(2000);
  const size_t span_a = heap_.UsableSize(a) + kBlockOverhead;
  const size_t span_b = heap_.UsableSize(b) + kBlockOverhead;
  EXPECT_EQ(heap_.Stats().used_bytes, span_a + span_b);
  EXPECT_EQ(heap_.Stats().live_blocks, 2u);
  EXPECT_EQ(heap_.Stats().peak_used_bytes, span_a + span_b);
  heap_.Free(b);
  EXPECT_EQ(heap_.Stats().used_bytes, span_a);
  EXPECT_EQ(heap_.Stats().peak_used_bytes, span_a + span_b);
  heap_.ResetPeak();
  EXPECT_EQ(heap_.Stats().peak_used_bytes, span_a);
  EXPECT_EQ(heap_.Allocate(1 << 20), nullptr);
  EXPECT_EQ(heap_.Stats().failed_allocations, 1u);
  heap_.Free(a);
  EXPECT_EQ(heap_.Stats().used_bytes, 0u);
  ExpectSound();
}

TEST_F(HeapTest, BlockAlignmentAndLargestFreeBin) {
  const int empty_bin = heap_.LargestFreeBin();
  ASSERT_GE(empty_bin, 0);
  const size_t whole_span = heap_.Stats().capacity_bytes;
  EXPECT_EQ(empty_bin, BinForSpan(whole_span).first * kSecondLevelCount +
                           BinForSpan(whole_span).second);
  void* plain = heap_.Allocate(10);
  void* aligned = heap_.AllocateAligned(256, 10);
  EXPECT_EQ(heap_.BlockAlignment(plain), kAlignment);
  EXPECT_EQ(heap_.BlockAlignment(aligned), 256u);
  EXPECT_EQ(heap_.BlockAlignment(static_cast<char*>(aligned) + 16), 0u);
  EXPECT_LE(heap_.LargestFreeBin(), empty_bin);
  std::vector<void*> all;
  while (void* p = heap_.Allocate(16)) all.push_back(p);
  EXPECT_EQ(heap_.LargestFreeBin(), -1);
  heap_.Free(plain);
  EXPECT_EQ(heap_.BlockAlignment(plain), 0u);
  EXPECT_GE(heap_.LargestFreeBin(), 0);
  heap_.Free(aligned);
  for (void* p : all) heap_.Free(p);
  EXPECT_EQ(heap_.LargestFreeBin(), empty_bin);
}

TEST_F(HeapTest, WalkVisitsEveryBlockAndCanStop) {
  void* a = heap_.Allocate(100);
  void* b = heap_.Allocate(200);
  void* c = heap_.Allocate(300);
  heap_.Free(b);
  std::vector<BlockInfo> seen;
  EXPECT_TRUE(heap_.WalkPool(pool_, [&](const BlockInfo& info) {
    seen.push_back(info);
    return true;
  }));
  ASSERT_EQ(seen.size(), 4u);  // a, free b, c, free rest
  EXPECT_EQ(seen[0].ptr, a);
  EXPECT_TRUE(seen[0].used);
  EXPECT_FALSE(seen[1].used);
  EXPECT_EQ(seen[2].ptr, c);
  EXPECT_FALSE(seen[3].used);
  size_t total = 0;
  for (const BlockInfo& info : seen) total += info.size + kBlockOverhead;
  EXPECT_EQ(total, heap_.Stats().capacity_bytes);
  int visits = 0;
  EXPECT_FALSE(
      heap_.WalkPool(pool_, [&](const BlockInfo&) { return ++visits < 2; }));
  EXPECT_EQ(visits, 2);
  heap_.Free(a);
  heap_.Free(c);
}

}  // namespace
}  // namespace fmemp::tlsf
