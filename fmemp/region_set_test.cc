// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of RegionSet::Detach and RegionSet::Attach, the moves per-thread
// heaps are built on. The rest of RegionSet is tested through Memp
// (memp_test.cc, bad_input_test.cc).

#include "fmemp/region_set.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmemp/budget.h"
#include "gtest/gtest.h"
#include "tlsf/heap.h"

namespace fmemp {
namespace {

// RegionSet::Detach as a StatusOr, which these tests read more easily.
absl::StatusOr<RegionSet::DetachedRegion> Detach(RegionSet& set, void* begin) {
  RegionSet::DetachedRegion region;
  if (const ManagementResult result = set.Detach(begin, &region);
      !result.ok()) {
    return result.ToStatus();
  }
  return region;
}

constexpr size_t kRegionBytes = 64 << 10;

struct Misuse {
  int count = 0;
  MempError last = MempError::kForeignPointer;
  static void Record(void* context, MempError error, const void*) {
    auto* self = static_cast<Misuse*>(context);
    ++self->count;
    self->last = error;
  }
};

class RegionSetMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(from_.AddRegion(a_, a_ + kRegionBytes).ok());
    ASSERT_TRUE(from_.AddRegion(b_, b_ + kRegionBytes).ok());
    from_.SetErrorHandler(&Misuse::Record, &from_misuse_);
    to_.SetErrorHandler(&Misuse::Record, &to_misuse_);
  }

  alignas(64) char a_[kRegionBytes];
  alignas(64) char b_[kRegionBytes];
  alignas(64) char c_[kRegionBytes];
  RegionSet from_, to_;
  Misuse from_misuse_, to_misuse_;
};

TEST_F(RegionSetMoveTest, LiveBlocksMoveWithTheirRegion) {
  // Blocks land in whichever region fits best; move the one holding the
  // first block, with every block it holds.
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) {
    void* p = from_.Allocate(100);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, 100);
    blocks.push_back(p);
  }
  char* const home = blocks[0] >= static_cast<void*>(a_) &&
                             blocks[0] < static_cast<void*>(a_ + kRegionBytes)
                         ? a_
                         : b_;
  std::vector<void*> in_a, elsewhere;
  for (void* p : blocks) {
    (p >= static_cast<void*>(home) &&
             p < static_cast<void*>(home + kRegionBytes)
         ? in_a
         : elsewhere)
        .push_back(p);
  }
  const MempStats before = from_.Probe();

  absl::StatusOr<RegionSet::DetachedRegion> moved = Detach(from_, home);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->begin(), static_cast<void*>(home));
  EXPECT_EQ(moved->end(), static_cast<void*>(home + kRegionBytes));
  const MempStats after_detach = from_.Probe();
  EXPECT_EQ(after_detach.region_count, 1u);
  EXPECT_EQ(after_detach.live_blocks, before.live_blocks - in_a.size());
  EXPECT_LT(after_detach.capacity_bytes, before.capacity_bytes);
  EXPECT_TRUE(from_.Check().ok()) << from_.Check();
  EXPECT_FALSE(from_.Contains(in_a[0]));

  ASSERT_TRUE(to_.Attach(*moved).ok());
  EXPECT_EQ(moved->begin(), nullptr);
  EXPECT_TRUE(to_.Contains(in_a[0]));
  EXPECT_EQ(to_.Probe().live_blocks, in_a.size());
  EXPECT_EQ(to_.Probe().capacity_bytes + after_detach.capacity_bytes,
            before.capacity_bytes);
  EXPECT_TRUE(to_.Check().ok()) << to_.Check();

  // The moved blocks kept their contents and are now the new set's to free.
  for (void* p : in_a) {
    const auto* bytes = static_cast<const unsigned char*>(p);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(bytes[i], 0x5a);
    EXPECT_TRUE(to_.Free(p));
  }
  EXPECT_EQ(to_.Probe().used_bytes, 0u);
  // The old set no longer knows them: a free there is a foreign pointer,
  // reported, with nothing changed.
  EXPECT_FALSE(from_.Free(in_a[0]));
  EXPECT_EQ(from_misuse_.count, 1);
  EXPECT_EQ(from_misuse_.last, MempError::kForeignPointer);
  for (void* p : elsewhere) EXPECT_TRUE(from_.Free(p));
  EXPECT_TRUE(from_.Check().ok());
  EXPECT_TRUE(to_.Check().ok());
}

TEST_F(RegionSetMoveTest, MisuseInAMovedRegionIsReportedToItsNewSet) {
  absl::StatusOr<RegionSet::DetachedRegion> moved = Detach(from_, a_);
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(to_.Attach(*moved).ok());
  void* p = to_.Allocate(64);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(to_.Free(p));
  EXPECT_FALSE(to_.Free(p));  // double free, found by the region's heap
  EXPECT_EQ(to_misuse_.count, 1);
  EXPECT_EQ(from_misuse_.count, 0);
  EXPECT_EQ(to_.Probe().invalid_frees, 1u);
}

TEST_F(RegionSetMoveTest, TagsMoveWithTheirBlocks) {
  absl::StatusOr<RegionSet::DetachedRegion> moved = Detach(from_, b_);
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(to_.Attach(*moved).ok());
  void* p = to_.Allocate(32);  // to_ holds only b_
  ASSERT_NE(p, nullptr);
  BlockTag tag;
  tag.file = "moved.cc";
  tag.line = 7;
  to_.SetTag(p, tag);

  moved = Detach(to_, b_);
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(from_.Attach(*moved).ok());
  std::vector<std::string> lines;
  from_.List([&](absl::string_view line) { lines.emplace_back(line); });
  bool listed = false;
  for (const std::string& line : lines) {
    listed |= line.find("moved.cc:7") != std::string::npos;
  }
  EXPECT_TRUE(listed);
  to_.List([&](absl::string_view line) {
    EXPECT_EQ(line.find("moved.cc"), absl::string_view::npos) << line;
  });
  EXPECT_TRUE(from_.Free(p));
  EXPECT_TRUE(from_.Check().ok()) << from_.Check();
}

TEST_F(RegionSetMoveTest, BadMovesChangeNothing) {
  EXPECT_EQ(Detach(from_, c_).status().code(), absl::StatusCode::kNotFound);
  RegionSet::DetachedRegion empty;
  EXPECT_EQ(to_.Attach(empty).code(), absl::StatusCode::kInvalidArgument);

  // A region overlapping one of the target set is refused, and the caller
  // keeps it.
  ASSERT_TRUE(to_.AddRegion(a_ + 1024, a_ + 2048).ok());
  absl::StatusOr<RegionSet::DetachedRegion> moved = Detach(from_, a_);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(to_.Attach(*moved).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(moved->begin(), static_cast<void*>(a_));
  EXPECT_EQ(to_.Probe().region_count, 1u);
  ASSERT_TRUE(from_.Attach(*moved).ok());  // and can put it back
  EXPECT_EQ(from_.Probe().region_count, 2u);
  EXPECT_TRUE(from_.Check().ok());
  EXPECT_TRUE(to_.Check().ok());
}

// With one allocatable region the set serves it directly and reads that
// region's counters through (RegionSet::solo_); every change of which regions
// are allocatable must leave the aggregates, the peak and the index exact.
TEST_F(RegionSetMoveTest, CountersStayExactAsRegionsComeAndGo) {
  auto expect_sound = [](const RegionSet& set) {
    ASSERT_TRUE(set.Check().ok()) << set.Check();
    size_t used = 0, live = 0;
    for (const RegionStats& r : set.ProbeRegions()) {
      used += r.used_bytes;
      live += r.live_blocks;
    }
    const MempStats s = set.Probe();
    EXPECT_EQ(s.used_bytes, used);
    EXPECT_EQ(s.live_blocks, live);
    EXPECT_EQ(s.used_bytes + s.free_bytes, s.capacity_bytes);
    EXPECT_GE(s.peak_used_bytes, s.used_bytes);
  };
  std::vector<void*> blocks;
  auto fill = [&](RegionSet& set, int n) {
    for (int i = 0; i < n; ++i) {
      void* p = set.Allocate(200 + 16 * i);
      ASSERT_NE(p, nullptr);
      blocks.push_back(p);
    }
  };
  fill(from_, 10);
  expect_sound(from_);
  // b out of service: a is the only region allocated from.
  ASSERT_TRUE(from_.SetAllocatable(b_, false).ok());
  fill(from_, 10);
  for (size_t i = 0; i < blocks.size(); i += 3) {
    ASSERT_TRUE(from_.Free(blocks[i]));
    blocks[i] = nullptr;
  }
  expect_sound(from_);
  const size_t peak = from_.Probe().peak_used_bytes;
  fill(from_, 4);
  EXPECT_GE(from_.Probe().peak_used_bytes, peak);
  expect_sound(from_);
  // Back in service, then a moves away with its blocks and back again.
  ASSERT_TRUE(from_.SetAllocatable(b_, true).ok());
  expect_sound(from_);
  ASSERT_TRUE(from_.SetAllocatable(b_, false).ok());
  auto moved = Detach(from_, a_);
  ASSERT_TRUE(moved.ok());
  expect_sound(from_);
  ASSERT_TRUE(to_.Attach(*moved).ok());
  expect_sound(to_);
  fill(to_, 4);  // to_'s only region
  expect_sound(to_);
  auto back = Detach(to_, a_);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(to_.Probe().used_bytes, 0u);
  ASSERT_TRUE(from_.Attach(*back).ok());
  expect_sound(from_);
  ASSERT_TRUE(from_.SetAllocatable(b_, true).ok());
  for (void* p : blocks) {
    if (p != nullptr) {
      ASSERT_TRUE(from_.Free(p));
    }
  }
  expect_sound(from_);
  EXPECT_EQ(from_.Probe().used_bytes, 0u);
  EXPECT_EQ(from_.Probe().live_blocks, 0u);
  ASSERT_TRUE(from_.RemoveRegion(a_).ok());
  expect_sound(from_);
  // Nothing of the removed region is found any more (no stale lookup).
  const int misuse_before = from_misuse_.count;
  EXPECT_FALSE(from_.Free(a_ + kRegionBytes / 2));
  EXPECT_EQ(from_misuse_.count, misuse_before + 1);
  EXPECT_EQ(from_misuse_.last, MempError::kForeignPointer);
  fill(from_, 2);  // b alone
  expect_sound(from_);
  EXPECT_EQ(from_.Probe().region_count, 1u);
}

// Sets that share one table (as ThreadHeapMemp's shared set and thread heaps
// do): every region is in it under its set's owner; a move between them changes
// the owner in place; Clear and a dropped detached region take out only
// their own entries.
TEST(RegionSetSharedTableTest, MovesChangeTheOwnerInPlace) {
  alignas(64) static char a[kRegionBytes];
  alignas(64) static char b[kRegionBytes];
  RegionTable table;
  int first_owner = 0, second_owner = 0;
  RegionSet first, second;
  ASSERT_TRUE(first.UseTable(&table, &first_owner).ok());
  ASSERT_TRUE(second.UseTable(&table, &second_owner).ok());
  ASSERT_TRUE(first.AddRegion(a, a + kRegionBytes).ok());
  ASSERT_TRUE(second.AddRegion(b, b + kRegionBytes).ok());
  EXPECT_EQ(&first.table(), &table);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(first.UseTable(nullptr, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);

  void* p = first.Allocate(100);
  ASSERT_NE(p, nullptr);
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  RegionTable::Entry entry;
  ASSERT_TRUE(table.Find(address, &entry));
  EXPECT_EQ(entry.owner, &first_owner);
  EXPECT_EQ(entry.base, reinterpret_cast<uintptr_t>(a));
  ASSERT_TRUE(table.FindWhole(reinterpret_cast<uintptr_t>(a), &entry));

  RegionTable::Hint hint;
  ASSERT_NE(table.Find(address, &hint), nullptr);
  absl::StatusOr<RegionSet::DetachedRegion> moved = Detach(first, a);
  ASSERT_TRUE(moved.ok());
  // Detached, the entry stays under its old owner until the region lands.
  ASSERT_TRUE(table.Find(address, &entry));
  EXPECT_EQ(entry.owner, &first_owner);
  ASSERT_TRUE(second.Attach(*moved).ok());
  ASSERT_TRUE(table.Find(address, &entry));
  EXPECT_EQ(entry.owner, &second_owner);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_TRUE(second.Free(p));

  // A region of another set of the table is refused as overlap.
  EXPECT_EQ(first.AddRegion(a + 4096, a + 2 * 4096).code(),
            absl::StatusCode::kAlreadyExists);
  // Clear of a set sharing the table erases its own entries only.
  second.Clear();
  EXPECT_EQ(table.size(), 0u);
  ASSERT_TRUE(first.AddRegion(a, a + kRegionBytes).ok());
  ASSERT_TRUE(second.AddRegion(b, b + kRegionBytes).ok());
  first.Clear();
  EXPECT_EQ(table.size(), 1u);
  EXPECT_FALSE(table.Find(address, &entry));

  // A detached region dropped unattached takes its entry with it.
  {
    absl::StatusOr<RegionSet::DetachedRegion> dropped = Detach(second, b);
    ASSERT_TRUE(dropped.ok());
    EXPECT_EQ(table.size(), 1u);
  }
  EXPECT_EQ(table.size(), 0u);
}

// A failed attempt is not counted by the set: its owner counts the calls it
// returns nullptr for (NoteFailure). Reallocate says why it returned
// nullptr: no room (the owner's failure) or not (misuse, or a free).
TEST(RegionSetTest, FailuresAreCountedByTheOwnerAndReallocateSaysNoRoom) {
  alignas(64) static char region[kRegionBytes];
  RegionSet set;
  Misuse misuse;
  set.SetErrorHandler(&Misuse::Record, &misuse);
  ASSERT_TRUE(set.AddRegion(region, region + kRegionBytes).ok());
  EXPECT_EQ(set.Allocate(2 * kRegionBytes), nullptr);
  EXPECT_EQ(set.AllocateAligned(48, 16), nullptr);
  void* batch[4];
  EXPECT_EQ(set.AllocateBatch(2 * kRegionBytes, 4, batch), 0u);
  EXPECT_EQ(set.Probe().failed_allocations, 0u);
  set.NoteFailure();
  EXPECT_EQ(set.Probe().failed_allocations, 1u);

  void* p = set.Allocate(100);
  ASSERT_NE(p, nullptr);
  bool no_room = false;
  EXPECT_EQ(set.Reallocate(p, 2 * kRegionBytes, &no_room), nullptr);
  EXPECT_TRUE(no_room);
  EXPECT_GE(set.UsableSize(p), 100u);  // still live
  void* grown = set.Reallocate(p, 1000, &no_room);
  ASSERT_NE(grown, nullptr);
  EXPECT_FALSE(no_room);
  int foreign = 0;
  no_room = true;
  EXPECT_EQ(set.Reallocate(&foreign, 10, &no_room), nullptr);
  EXPECT_FALSE(no_room);
  EXPECT_EQ(misuse.count, 1);
  no_room = true;
  EXPECT_EQ(set.Reallocate(grown, 0, &no_room), nullptr);  // frees it
  EXPECT_FALSE(no_room);
  EXPECT_EQ(set.Reallocate(nullptr, 2 * kRegionBytes, &no_room), nullptr);
  EXPECT_TRUE(no_room);
  EXPECT_EQ(set.Probe().live_blocks, 0u);
  EXPECT_EQ(set.Probe().failed_allocations, 1u);
  set.Clear();
  EXPECT_EQ(set.Probe().failed_allocations, 0u);
}

// Under a budget a batch is charged once; when the budget refuses the
// whole batch, the set still gives the blocks that fit, charged one by
// one, and the peak counts only those.
TEST(RegionSetTest, ABatchRefusedAsAWholeStillGivesTheBlocksThatFit) {
  alignas(64) static char region[kRegionBytes];
  RegionSet set;
  Budget budget;
  set.UseBudget(&budget);
  ASSERT_TRUE(set.AddRegion(region, region + kRegionBytes).ok());
  void* batch[8];
  ASSERT_EQ(set.AllocateBatch(100, 8, batch), 8u);
  const size_t span = tlsf::SpanForRequest(100);
  EXPECT_EQ(budget.usage(), 8 * span);
  EXPECT_EQ(set.Probe().used_bytes, 8 * span);
  for (void* p : batch) EXPECT_TRUE(set.Free(p));
  EXPECT_EQ(budget.usage(), 0u);
  const size_t peak = set.Probe().peak_used_bytes;

  budget.SetLimit(3 * span);  // room for three of eight
  set.ResetPeak();
  ASSERT_EQ(set.AllocateBatch(100, 8, batch), 3u);
  EXPECT_EQ(budget.usage(), 3 * span);
  EXPECT_EQ(set.Probe().used_bytes, 3 * span);
  EXPECT_EQ(set.Probe().live_blocks, 3u);
  EXPECT_EQ(set.Probe().peak_used_bytes, 3 * span);
  EXPECT_LE(set.Probe().peak_used_bytes, peak);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(set.Free(batch[i]));
  EXPECT_EQ(budget.usage(), 0u);
  set.Clear();
}

// The ledger (RegionSet::ChargeAccount): an attributed block is charged to
// its account's budget alone and credited once, whatever path frees or
// resizes it; Detach and Clear credit it, ForgetAccount does not.
TEST_F(RegionSetMoveTest, AttributedBlocksAreChargedAndCreditedOnce) {
  Budget parent;
  Budget budget;
  budget.SetParent(&parent);
  RegionSet::ChargeAccount account{&budget, 0};
  void* p = from_.AllocateFor(&account, 64, 3000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  const size_t span = from_.UsableSize(p) + tlsf::kBlockOverhead;
  EXPECT_EQ(account.bytes, span);
  EXPECT_EQ(budget.usage(), span);
  EXPECT_EQ(parent.usage(), 0u);  // the set's own budget charges the parent
  EXPECT_EQ(from_.attributed_bytes(), span);
  void* plain = from_.AllocateFor(nullptr, 8, 100);  // not attributed
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(from_.attributed_bytes(), span);
  // Grows by a move, the new block charged to the same account.
  void* grown = from_.Reallocate(p, 6000);
  ASSERT_NE(grown, nullptr);
  const size_t grown_span = from_.UsableSize(grown) + tlsf::kBlockOverhead;
  EXPECT_EQ(account.bytes, grown_span);
  EXPECT_EQ(budget.usage(), grown_span);
  // Refused by the account's limit: nothing changes.
  budget.SetLimit(grown_span + 1000);
  const MempStats before = from_.Probe();
  bool no_room = false;
  EXPECT_EQ(from_.Reallocate(grown, 9000, &no_room), nullptr);
  EXPECT_TRUE(no_room);
  EXPECT_TRUE(from_.TakeLimitRefusal());
  EXPECT_EQ(from_.AllocateFor(&account, 8, 2000), nullptr);
  EXPECT_TRUE(from_.TakeLimitRefusal());
  EXPECT_EQ(from_.Probe().used_bytes, before.used_bytes);
  EXPECT_EQ(from_.Probe().peak_used_bytes, before.peak_used_bytes);
  EXPECT_EQ(account.bytes, grown_span);
  // Shrinks in place: credited the difference.
  void* shrunk = from_.Reallocate(grown, 200);
  ASSERT_NE(shrunk, nullptr);
  const size_t shrunk_span = from_.UsableSize(shrunk) + tlsf::kBlockOverhead;
  EXPECT_LT(shrunk_span, grown_span);
  EXPECT_EQ(account.bytes, shrunk_span);
  EXPECT_EQ(budget.usage(), shrunk_span);
  // Freed: credited once; a double free credits nothing more.
  EXPECT_TRUE(from_.Free(shrunk));
  EXPECT_EQ(account.bytes, 0u);
  EXPECT_EQ(budget.usage(), 0u);
  EXPECT_FALSE(from_.Free(shrunk));
  EXPECT_EQ(budget.usage(), 0u);
  EXPECT_EQ(from_.attributed_bytes(), 0u);
  from_.Free(plain);

  // Detach of its region credits it (the block is the new owner's).
  budget.SetLimit(Budget::kNoLimit);
  void* moved = from_.AllocateFor(&account, 8, 500);
  ASSERT_NE(moved, nullptr);
  void* region =
      reinterpret_cast<uintptr_t>(moved) < reinterpret_cast<uintptr_t>(b_)
          ? static_cast<void*>(a_)
          : static_cast<void*>(b_);
  {
    absl::StatusOr<RegionSet::DetachedRegion> detached = Detach(from_, region);
    ASSERT_TRUE(detached.ok());
    EXPECT_EQ(account.bytes, 0u);
    EXPECT_EQ(budget.usage(), 0u);
    ASSERT_TRUE(to_.Attach(*detached).ok());
  }
  EXPECT_TRUE(to_.Free(moved));
  // Clear credits; ForgetAccount drops without crediting.
  ASSERT_NE(from_.AllocateFor(&account, 8, 500), nullptr);
  from_.Clear();
  EXPECT_EQ(account.bytes, 0u);
  EXPECT_EQ(budget.usage(), 0u);
  ASSERT_TRUE(from_.AddRegion(c_, c_ + kRegionBytes).ok());
  void* forgotten = from_.AllocateFor(&account, 8, 500);
  ASSERT_NE(forgotten, nullptr);
  const size_t charged = budget.usage();
  from_.ForgetAccount(&account);
  EXPECT_EQ(account.bytes, 0u);
  EXPECT_EQ(from_.attributed_bytes(), 0u);
  EXPECT_TRUE(from_.Free(forgotten));
  EXPECT_EQ(budget.usage(), charged);  // no one credited
  EXPECT_EQ(from_misuse_.count, 1);    // the double free above
}

// A bind moves a region from the shared set (charged to the front-end's
// budget) into a thread heap's set (charged to the heap's budget, whose
// parent is the front-end's). The front-end's usage must not dip during
// the move: a thread heap charging the front-end at that moment (it takes
// no shared lock) would take the room, and the move's charge would then
// pass the hard limit. (Before the fix Detach refunded and Attach charged
// again: the dip was the region's bytes.)
TEST_F(RegionSetMoveTest, AMoveKeepsTheBlocksChargedToTheBudgetBothSetsShare) {
  Budget front;
  Budget heap;
  heap.SetParent(&front);
  from_.UseBudget(&front);
  to_.UseBudget(&heap);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(from_.Allocate(1000));
  const size_t charged = front.usage();
  ASSERT_GT(charged, 8u * 1000);
  front.SetLimit(charged);  // at the limit
  // The region holding the first block moves, with its share of the charge.
  char* const home = blocks[0] >= static_cast<void*>(a_) &&
                             blocks[0] < static_cast<void*>(a_ + kRegionBytes)
                         ? a_
                         : b_;
  size_t in_a = 0;
  for (const RegionStats& r : from_.ProbeRegions()) {
    if (r.begin == home) in_a = r.used_bytes;
  }
  ASSERT_GT(in_a, 0u);
  absl::StatusOr<RegionSet::DetachedRegion> moved = Detach(from_, home);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(front.usage(), charged) << "the move left room under the limit";
  EXPECT_FALSE(front.TryCharge(64)) << "a racing charge took the room";
  ASSERT_TRUE(to_.Attach(*moved).ok());
  EXPECT_EQ(front.usage(), charged);
  EXPECT_EQ(heap.usage(), in_a);
  // Back (an unbind): the heap's charge goes, the front-end's stays.
  moved = Detach(to_, home);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(front.usage(), charged);
  ASSERT_TRUE(from_.Attach(*moved).ok());
  EXPECT_EQ(front.usage(), charged);
  EXPECT_EQ(heap.usage(), 0u);
  // Into a set without a budget: refunded; a region dropped unattached
  // takes its charge with it.
  RegionSet unbudgeted;
  moved = Detach(from_, home);
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(unbudgeted.Attach(*moved).ok());
  EXPECT_EQ(front.usage(), charged - in_a);
  moved = Detach(unbudgeted, home);
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(to_.Attach(*moved).ok());  // charged to both again
  EXPECT_EQ(front.usage(), charged);
  EXPECT_EQ(heap.usage(), in_a);
  {
    absl::StatusOr<RegionSet::DetachedRegion> dropped = Detach(to_, home);
    ASSERT_TRUE(dropped.ok());
  }
  EXPECT_EQ(front.usage(), charged - in_a);
  EXPECT_EQ(heap.usage(), 0u);
  for (void* p : blocks) {
    if (p < static_cast<void*>(home) ||
        p >= static_cast<void*>(home + kRegionBytes)) {
      from_.Free(p);
    }
  }
  EXPECT_EQ(front.usage(), 0u);
}

}  // namespace
}  // namespace fmemp
