// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Heap damage (issue 13): one test per mechanism that keeps a write into
// pool memory outside live payloads from crashing the heap or making it
// hand out a block twice. Whole-word header tags, pool bounds held by the
// Heap, encoded free-list links, validated back pointers, blocks taken out
// of service, and Check naming the damage. The exhaustive sweep through the
// C API is fmemp/heap_damage_test.cc; the fuzz target is
// fuzz/heap_damage_fuzz.cc.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tlsf/heap.h"

namespace fmemp::tlsf {
namespace {

using ::testing::HasSubstr;

uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// The word `offset` bytes from `p`.
uint64_t WordAt(const void* p, ptrdiff_t offset) {
  uint64_t w;
  std::memcpy(&w, static_cast<const char*>(p) + offset, sizeof(w));
  return w;
}
void SetWordAt(void* p, ptrdiff_t offset, uint64_t w) {
  std::memcpy(static_cast<char*>(p) + offset, &w, sizeof(w));
}

struct Reports {
  std::vector<std::pair<HeapError, const void*>> seen;
  static void Record(void* context, HeapError error, const void* ptr) {
    static_cast<Reports*>(context)->seen.emplace_back(error, ptr);
  }
  size_t Count(HeapError error, const void* ptr) const {
    size_t n = 0;
    for (const auto& [e, p] : seen) n += e == error && p == ptr;
    return n;
  }
};

class HeapDamageTest : public ::testing::Test {
 protected:
  static constexpr size_t kPoolBytes = 64 * 1024;

  HeapDamageTest() : storage_(new uint64_t[kPoolBytes / 8]) {
    heap_.SetErrorHandler(&Reports::Record, &reports_);
    auto pool = heap_.AddPool(storage_.get(), kPoolBytes);
    EXPECT_TRUE(pool.ok()) << pool.status();
    pool_ = pool.value_or(nullptr);
  }

  // Allocates and records the block as live.
  char* Take(size_t bytes) {
    char* const p = static_cast<char*>(heap_.Allocate(bytes));
    if (p != nullptr) {
      ExpectNoOverlap(p, heap_.UsableSize(p));
      live_.emplace_back(p, heap_.UsableSize(p));
    }
    return p;
  }
  bool Release(void* p) {
    const bool ok = heap_.Free(p);
    if (ok) {
      for (size_t i = 0; i < live_.size(); ++i) {
        if (live_[i].first == p) {
          live_.erase(live_.begin() + i);
          break;
        }
      }
    }
    return ok;
  }
  // [p, p + n) overlaps no block the test holds, and no block taken out of
  // service (kept in `lost_`).
  void ExpectNoOverlap(const char* p, size_t n) {
    for (const auto& [q, m] : live_) {
      EXPECT_TRUE(p + n <= q || q + m <= p)
          << static_cast<const void*>(p) << " overlaps live "
          << static_cast<const void*>(q);
    }
    for (const auto& [q, m] : lost_) {
      EXPECT_TRUE(p + n <= q || q + m <= p)
          << static_cast<const void*>(p) << " overlaps lost "
          << static_cast<const void*>(q);
    }
  }
  // Allocates until the heap is full, checking every block, then frees
  // what it took.
  void DrainAndCheck(size_t bytes) {
    std::vector<char*> taken;
    for (int i = 0; i < 4096; ++i) {
      char* const p = Take(bytes);
      if (p == nullptr) break;
      taken.push_back(p);
    }
    for (char* p : taken) Release(p);
  }
  const void* Memory() const { return storage_.get(); }

  std::unique_ptr<uint64_t[]> storage_;
  Heap heap_;
  Reports reports_;
  Pool* pool_ = nullptr;
  std::vector<std::pair<char*, size_t>> live_;
  std::vector<std::pair<char*, size_t>> lost_;
};

TEST_F(HeapDamageTest, FreeListLinksAreStoredEncoded) {
  char* a = Take(200);
  Take(64);  // keeps a and c apart
  char* c = Take(200);
  Take(64);
  ASSERT_TRUE(Release(a));
  ASSERT_TRUE(Release(c));
  // c heads the bin and links to a; a ends the list. Neither link is
  // stored as the plain pointer (or null), nor points into the pool.
  const uintptr_t begin = Addr(Memory());
  for (const char* block : {a, c}) {
    for (ptrdiff_t offset : {0, 8}) {
      const uint64_t raw = WordAt(block, offset);
      EXPECT_NE(raw, 0u);
      EXPECT_FALSE(raw >= begin && raw < begin + kPoolBytes)
          << "a raw pointer into the pool at "
          << static_cast<const void*>(block + offset);
    }
  }
  EXPECT_TRUE(heap_.Check().ok());
}

TEST_F(HeapDamageTest, DamagedLinkTakesTheBlockOutOfService) {
  char* a = Take(200);
  Take(64);
  char* c = Take(200);
  Take(64);
  ASSERT_TRUE(Release(a));
  ASSERT_TRUE(Release(c));
  // A write after free into c's next link (c heads its bin).
  SetWordAt(c, 0, 0x4141414141414141ull);
  const size_t span = SpanForRequest(200);  // c's
  ASSERT_TRUE(reports_.seen.empty());
  char* const again = Take(200);
  ASSERT_NE(again, nullptr);
  EXPECT_NE(again, c);
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, c), 1u);
  EXPECT_EQ(heap_.Stats().lost_blocks, 1u);
  EXPECT_EQ(heap_.Stats().lost_bytes, span);
  lost_.emplace_back(c, UsableBytes(span));
  // Never handed out again, never merged, reported once.
  DrainAndCheck(200);
  DrainAndCheck(24);
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, c), 1u);
  const absl::Status check = heap_.Check();
  EXPECT_FALSE(check.ok());
  EXPECT_THAT(std::string(check.message()), HasSubstr("out of service"));
  const HeapStats& s = heap_.Stats();
  EXPECT_EQ(s.used_bytes + s.free_bytes + s.lost_bytes, s.capacity_bytes);
}

TEST_F(HeapDamageTest, DamagedHeaderOfAListedBlockIsNeverHandedOut) {
  char* a = Take(1000);
  char* x = Take(64);
  ASSERT_TRUE(Release(a));
  // A stray write into the free block's header.
  SetWordAt(a, -8, 0x00ff00ff00ff00ffull);
  char* const b = Take(1000);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b, a);
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, a), 1u);
  EXPECT_EQ(heap_.Stats().lost_blocks, 1u);
  lost_.emplace_back(a, 1000);
  DrainAndCheck(1000);
  DrainAndCheck(32);
  // x's free merges with nothing damaged: its predecessor's header fails.
  EXPECT_FALSE(Release(x)) << "x's back pointer names a damaged block";
  EXPECT_FALSE(heap_.Check().ok());
}

TEST_F(HeapDamageTest, DamagedBackPointerRefusesTheFree) {
  char* a = Take(200);
  char* b = Take(200);
  char* z = Take(64);
  ASSERT_TRUE(Release(a));
  // b's back pointer is a's last word; point it at z's block instead.
  const uint64_t saved = WordAt(b, -16);
  SetWordAt(b, -16, Addr(z) - 16);
  const uint64_t invalid_before = heap_.Stats().invalid_frees;
  EXPECT_FALSE(Release(b));
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, b), 1u);
  EXPECT_EQ(heap_.Stats().invalid_frees, invalid_before + 1);
  EXPECT_GT(heap_.UsableSize(b), 0u) << "b stays live";
  // Pointing at a free block that does not end at b fails the same way.
  SetWordAt(b, -16, Addr(a) - 16 + 32);
  EXPECT_FALSE(Release(b));
  SetWordAt(b, -16, saved);
  EXPECT_TRUE(Release(b));
  EXPECT_TRUE(Release(z));
  EXPECT_TRUE(heap_.Check().ok());
}

TEST_F(HeapDamageTest, FreeWithDamagedSuccessorIsRefusedAndKeptLive) {
  char* a = Take(24);
  char* b = Take(24);
  const size_t usable = heap_.UsableSize(a);
  a[usable] = 0x01;  // the first byte of b's header
  const HeapStats before = heap_.Stats();
  EXPECT_FALSE(Release(a));
  EXPECT_FALSE(Release(b));
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, a), 1u);
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, b), 1u);
  EXPECT_EQ(heap_.Stats().live_blocks, before.live_blocks);
  EXPECT_EQ(heap_.Stats().invalid_frees, before.invalid_frees + 2);
  EXPECT_EQ(heap_.UsableSize(a), usable);
  EXPECT_THAT(std::string(heap_.Check().message()),
              HasSubstr("header damaged"));
  DrainAndCheck(24);
}

TEST_F(HeapDamageTest, ReplayedSpanPastThePoolIsRefused) {
  // A header the heap wrote for a 60 KiB block, written back at the same
  // address after the pool shrank: valid tag, span past the pool's end.
  char* big = Take(60 * 1024);
  ASSERT_NE(big, nullptr);
  const uint64_t old_header = WordAt(big, -8);
  ASSERT_TRUE(Release(big));
  ASSERT_TRUE(heap_.RemovePool(pool_).ok());
  auto pool = heap_.AddPool(storage_.get(), 16 * 1024);
  ASSERT_TRUE(pool.ok());
  pool_ = *pool;
  char* a = Take(64);
  ASSERT_EQ(a, big);
  SetWordAt(a, -8, old_header);
  EXPECT_FALSE(Release(a));
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, a), 1u);
  EXPECT_FALSE(heap_.Check().ok());
}

TEST_F(HeapDamageTest, DamagedPoolRecordChangesNothingButPoolOwner) {
  char* a = Take(100);
  ASSERT_EQ(Addr(a), Addr(Heap::PoolBegin(pool_)) + Heap::kFirstPayloadOffset);
  // An underflow of the first block that stops before its header: the
  // pool record and the unused back pointer slot.
  std::memset(a - Heap::kFirstPayloadOffset, 0x5a,
              Heap::kFirstPayloadOffset - 8);
  EXPECT_EQ(Heap::PoolOwner(pool_), nullptr);
  EXPECT_EQ(heap_.FindPool(a), pool_) << "the heap keeps the bounds";
  EXPECT_EQ(heap_.Stats().capacity_bytes, kPoolBytes - Heap::kPoolOverhead)
      << "capacity kept by the heap";
  EXPECT_THAT(std::string(heap_.Check().message()),
              HasSubstr("record damaged"));
  EXPECT_TRUE(Release(a));
  DrainAndCheck(500);
  size_t blocks = 0;
  EXPECT_TRUE(heap_.WalkPool(pool_, [&](const BlockInfo&) {
    ++blocks;
    return true;
  }));
  EXPECT_EQ(blocks, 1u);
  EXPECT_TRUE(heap_.RemovePool(pool_).ok());
}

TEST_F(HeapDamageTest, UnderflowIntoTheFirstHeaderIsReportedAsCorruption) {
  char* a = Take(100);
  Take(100);
  std::memset(a - Heap::kFirstPayloadOffset, 0x5a, Heap::kFirstPayloadOffset);
  EXPECT_FALSE(Release(a));
  EXPECT_EQ(reports_.Count(HeapError::kCorruptHeap, a), 1u);
  DrainAndCheck(100);
}

TEST_F(HeapDamageTest, CheckNamesEveryDamagedBlock) {
  std::vector<char*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(Take(48));
  // Damage the headers of blocks 2 and 5 (as overflows of 1 and 4 would).
  SetWordAt(blocks[2], -8, 0);
  SetWordAt(blocks[5], -8, ~uint64_t{0});
  const absl::Status check = heap_.Check();
  ASSERT_FALSE(check.ok());
  const std::string message(check.message());
  char name2[32], name5[32];
  std::snprintf(name2, sizeof(name2), "%p", static_cast<void*>(blocks[2]));
  std::snprintf(name5, sizeof(name5), "%p", static_cast<void*>(blocks[5]));
  EXPECT_THAT(message, HasSubstr(name2));
  EXPECT_THAT(message, HasSubstr(name5));
  // The same findings, into the caller's fixed buffer (what a front-end
  // does under its lock): both blocks named, and counted.
  CheckFindings findings;
  heap_.Check(&findings);
  EXPECT_EQ(findings.count(), 2u);
  EXPECT_THAT(findings.text(), HasSubstr(name2));
  EXPECT_THAT(findings.text(), HasSubstr(name5));
  EXPECT_THAT(message, HasSubstr("(2 problem(s) found)"));
  // The listing stops cleanly at the first damaged header.
  size_t walked = 0;
  EXPECT_TRUE(heap_.WalkPool(pool_, [&](const BlockInfo&) {
    ++walked;
    return true;
  }));
  EXPECT_EQ(walked, 2u);
}

TEST_F(HeapDamageTest, EveryByteOfAFreeBlocksMetadataIsSurvivable) {
  // Each byte of a free block's header, links and back pointer, each
  // value: the heap reports or ignores, and keeps serving without overlap.
  for (int offset = -16; offset < 16; ++offset) {
    for (int value : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      Heap heap;
      Reports reports;
      heap.SetErrorHandler(&Reports::Record, &reports);
      std::unique_ptr<uint64_t[]> mem(new uint64_t[4096]);
      ASSERT_TRUE(heap.AddPool(mem.get(), 4096 * 8).ok());
      char* a = static_cast<char*>(heap.Allocate(40));
      char* b = static_cast<char*>(heap.Allocate(40));
      char* c = static_cast<char*>(heap.Allocate(40));
      heap.Free(b);
      b[offset] = static_cast<char>(value);
      std::vector<std::pair<char*, size_t>> held = {{a, heap.UsableSize(a)},
                                                    {c, heap.UsableSize(c)}};
      for (int i = 0; i < 200; ++i) {
        char* p =
            static_cast<char*>(heap.Allocate(static_cast<size_t>(i % 7) * 24));
        if (p == nullptr) break;
        for (const auto& [q, n] : held) {
          ASSERT_TRUE(p + heap.UsableSize(p) <= q || q + n <= p)
              << "offset " << offset << " value " << value;
        }
        held.emplace_back(p, heap.UsableSize(p));
      }
      for (const auto& [q, n] : held) heap.Free(q);
      (void)heap.Check();
    }
  }
}

TEST(HeapPoolTableTest, AtMostMaxPoolsAndLookupByBisection) {
  Heap heap;
  constexpr size_t kBytes = 4096;
  std::unique_ptr<char[]> mem(new char[(Heap::kMaxPools + 1) * kBytes + 16]);
  char* base = reinterpret_cast<char*>(
      AlignUp(reinterpret_cast<uintptr_t>(mem.get()), kAlignment));
  std::vector<Pool*> pools(Heap::kMaxPools);
  // Added out of address order.
  for (int i = 0; i < Heap::kMaxPools; ++i) {
    const int slot = (i * 7) % Heap::kMaxPools;
    auto pool = heap.AddPool(base + slot * kBytes, kBytes);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pools[slot] = *pool;
  }
  auto extra = heap.AddPool(base + Heap::kMaxPools * kBytes, kBytes);
  EXPECT_EQ(extra.status().code(), absl::StatusCode::kResourceExhausted);
  std::vector<void*> blocks;
  for (void* p = heap.Allocate(1000); p != nullptr; p = heap.Allocate(1000)) {
    blocks.push_back(p);
  }
  EXPECT_GE(blocks.size(), 3u * Heap::kMaxPools);
  for (void* p : blocks) {
    Pool* const pool = heap.FindPool(p);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool, pools[(static_cast<char*>(p) - base) / kBytes]);
    EXPECT_EQ(Heap::PoolOwner(pool), &heap);
  }
  std::vector<Pool*> order;
  heap.ForEachPool([&](Pool* p) { order.push_back(p); });
  ASSERT_EQ(order.size(), pools.size());
  for (int i = 0; i < Heap::kMaxPools; ++i) {
    EXPECT_EQ(order[i], pools[(i * 7) % Heap::kMaxPools]) << "added order";
  }
  for (void* p : blocks) EXPECT_TRUE(heap.Free(p));
  EXPECT_TRUE(heap.Check().ok());
  // A foreign pointer between pools is refused without reading it.
  EXPECT_FALSE(heap.Free(base + Heap::kMaxPools * kBytes + 64));
}

TEST(CheckFindingsTest, CountsEveryProblemAndNamesTheFirstSixteen) {
  CheckFindings findings;
  EXPECT_TRUE(findings.ok());
  EXPECT_STREQ(findings.text(), "");
  EXPECT_TRUE(findings.ToStatus().ok());
  for (int i = 0; i < 20; ++i) findings.Add("problem %d", i);
  EXPECT_EQ(findings.count(), 20u);
  const std::string text = findings.text();
  EXPECT_THAT(text, HasSubstr("problem 0; problem 1; "));
  EXPECT_THAT(text, HasSubstr("problem 15"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("problem 16")));
  const absl::Status status = findings.ToStatus();
  EXPECT_TRUE(absl::IsDataLoss(status));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("problem 15 (20 problem(s) found)"));
}

TEST(CheckFindingsTest, AddWithinCountsTheInnerProblemsAsOneEntry) {
  CheckFindings inner;
  inner.Add("a");
  inner.Add("b");
  CheckFindings outer;
  outer.Add("first");
  outer.AddWithin(inner, "region %d: ", 7);
  EXPECT_EQ(outer.count(), 3u);
  EXPECT_STREQ(outer.text(), "first; region 7: a; b");
  CheckFindings empty;
  outer.AddWithin(empty, "nothing");
  EXPECT_EQ(outer.count(), 3u);
}

TEST(CheckFindingsTest, ALongDescriptionIsCutAndEndsInDots) {
  const std::string long_text(CheckFindings::kTextBytes * 2, 'x');
  CheckFindings findings;
  findings.Add("%s", long_text.c_str());
  findings.Add("more");
  EXPECT_EQ(findings.count(), 2u);
  const std::string text = findings.text();
  EXPECT_EQ(text.size(), CheckFindings::kTextBytes - 1);
  EXPECT_EQ(text.substr(text.size() - 4), "x...");
}

}  // namespace
}  // namespace fmemp::tlsf
