// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/budget.h"

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fmemp {
namespace {

TEST(BudgetTest, NoLimitChargesEverything) {
  Budget budget;
  EXPECT_EQ(budget.limit(), Budget::kNoLimit);
  EXPECT_TRUE(budget.TryCharge(size_t{1} << 40));
  EXPECT_EQ(budget.usage(), size_t{1} << 40);
  budget.Refund(size_t{1} << 40);
  EXPECT_EQ(budget.usage(), 0u);
  EXPECT_EQ(budget.refusals(), 0u);
}

TEST(BudgetTest, RefusesAChargePastTheLimitAndChangesNothing) {
  Budget budget;
  budget.SetLimit(1000);
  EXPECT_TRUE(budget.TryCharge(600));
  EXPECT_FALSE(budget.TryCharge(401));
  EXPECT_EQ(budget.usage(), 600u);
  EXPECT_EQ(budget.refusals(), 1u);
  EXPECT_TRUE(budget.TryCharge(400));  // exactly to the limit
  EXPECT_EQ(budget.usage(), 1000u);
  EXPECT_FALSE(budget.TryCharge(1));
  EXPECT_FALSE(budget.TryCharge(SIZE_MAX));  // no wrap-around
  EXPECT_EQ(budget.refusals(), 3u);
}

TEST(BudgetTest, LimitBelowUsageRefusesUntilRefundsBringItUnder) {
  Budget budget;
  EXPECT_TRUE(budget.TryCharge(800));
  budget.SetLimit(500);
  EXPECT_EQ(budget.usage(), 800u);  // nothing is taken back
  EXPECT_FALSE(budget.TryCharge(16));
  budget.Refund(400);
  EXPECT_TRUE(budget.TryCharge(100));
  EXPECT_EQ(budget.usage(), 500u);
  budget.SetLimit(Budget::kNoLimit);
  EXPECT_TRUE(budget.TryCharge(1 << 20));
}

TEST(BudgetTest, ParentRefusalLeavesNeitherCharged) {
  Budget parent;
  Budget child;
  child.SetParent(&parent);
  parent.SetLimit(100);
  child.SetLimit(1000);
  EXPECT_TRUE(child.TryCharge(80));
  EXPECT_EQ(parent.usage(), 80u);
  EXPECT_FALSE(child.TryCharge(40));  // the parent refuses
  EXPECT_EQ(child.usage(), 80u);
  EXPECT_EQ(parent.usage(), 80u);
  EXPECT_EQ(parent.refusals(), 1u);
  EXPECT_EQ(child.refusals(), 0u);
  child.SetLimit(50);
  EXPECT_FALSE(child.TryCharge(1));  // the child refuses
  EXPECT_EQ(parent.usage(), 80u);
  child.Refund(80);
  EXPECT_EQ(parent.usage(), 0u);
}

struct Calls {
  int count = 0;
  Budget::SoftLimitEvent last{};
};

void CountCall(void* context, const Budget::SoftLimitEvent& event) {
  auto* calls = static_cast<Calls*>(context);
  ++calls->count;
  calls->last = event;
}

TEST(BudgetTest, SoftLimitNoticeRunsOncePerCrossingAndRearmsBelowHysteresis) {
  Budget budget;
  Calls calls;
  budget.SetSoftLimit(1000, 300, CountCall, &calls);
  EXPECT_TRUE(budget.TryCharge(1000));  // at, not above
  budget.RunSoftHandlerIfDue();
  EXPECT_EQ(calls.count, 0);
  EXPECT_TRUE(budget.TryCharge(10));  // crosses
  EXPECT_EQ(calls.count, 0);          // not from inside the charge
  budget.RunSoftHandlerIfDue();
  EXPECT_EQ(calls.count, 1);
  EXPECT_EQ(calls.last.usage, 1010u);
  EXPECT_EQ(calls.last.soft_limit, 1000u);
  budget.RunSoftHandlerIfDue();  // once per crossing
  EXPECT_EQ(calls.count, 1);
  // Falling under the limit but not by the hysteresis does not re-arm.
  budget.Refund(200);  // 810
  EXPECT_TRUE(budget.TryCharge(300));
  budget.RunSoftHandlerIfDue();
  EXPECT_EQ(calls.count, 1);
  budget.Refund(500);  // 610 < 700: re-armed
  EXPECT_TRUE(budget.TryCharge(400));
  budget.RunSoftHandlerIfDue();
  EXPECT_EQ(calls.count, 2);
  EXPECT_EQ(budget.soft_crossings(), 2u);
}

TEST(BudgetTest, SoftLimitSetBelowUsageFiresOnTheNextCharge) {
  Budget budget;
  Calls calls;
  EXPECT_TRUE(budget.TryCharge(5000));
  budget.SetSoftLimit(1000, 0, CountCall, &calls);
  EXPECT_TRUE(budget.TryCharge(16));
  budget.RunSoftHandlerIfDue();
  EXPECT_EQ(calls.count, 1);
}

TEST(BudgetTest, NullHandlerRemovesTheSoftLimit) {
  Budget budget;
  Calls calls;
  budget.SetSoftLimit(100, 0, CountCall, &calls);
  budget.SetSoftLimit(100, 0, nullptr, nullptr);
  EXPECT_EQ(budget.soft_limit(), Budget::kNoLimit);
  EXPECT_TRUE(budget.TryCharge(500));
  budget.RunSoftHandlerIfDue();
  EXPECT_EQ(calls.count, 0);
}

TEST(BudgetTest, ChildCrossingRunsTheParentsHandlerToo) {
  Budget parent;
  Budget child;
  child.SetParent(&parent);
  Calls parent_calls;
  parent.SetSoftLimit(100, 0, CountCall, &parent_calls);
  EXPECT_TRUE(child.TryCharge(200));
  child.RunSoftHandlerIfDue();
  EXPECT_EQ(parent_calls.count, 1);
}

TEST(BudgetTest, TransferLeavesABudgetInBothChainsUntouched) {
  Budget parent;
  Budget child;
  child.SetParent(&parent);
  EXPECT_TRUE(parent.TryCharge(100));
  parent.SetLimit(100);  // at the limit: a transfer into the child passes
  Budget::Transfer(&parent, &child, 100);  // shared regions -> a thread heap
  EXPECT_EQ(parent.usage(), 100u);
  EXPECT_EQ(child.usage(), 100u);
  Budget::Transfer(&child, &parent, 100);  // and back
  EXPECT_EQ(parent.usage(), 100u);
  EXPECT_EQ(child.usage(), 0u);
  Budget::Transfer(&parent, nullptr, 100);  // to a set without a budget
  EXPECT_EQ(parent.usage(), 0u);
  parent.SetLimit(10);
  Budget::Transfer(nullptr, &child, 50);  // charged whatever the limits
  EXPECT_EQ(child.usage(), 50u);
  EXPECT_EQ(parent.usage(), 50u);
  EXPECT_EQ(parent.refusals(), 0u);
}

// A handler that runs long (an eviction) while usage falls below the
// hysteresis and crosses again on another thread: the second notice waits
// for the first call to return, and then runs, once. (Before the fix the
// second thread ran the handler while the first call was still running.)
TEST(BudgetTest, HandlerCallsForOneBudgetNeverOverlap) {
  struct Watch {
    std::atomic<int> running{0};
    std::atomic<int> calls{0};
    std::atomic<int> overlaps{0};
    std::atomic<bool> first_entered{false};
    std::atomic<bool> release_first{false};
  } watch;
  auto handler = [](void* context, const Budget::SoftLimitEvent&) {
    Watch& w = *static_cast<Watch*>(context);
    if (w.running.fetch_add(1) != 0) w.overlaps.fetch_add(1);
    if (w.calls.fetch_add(1) == 0) {
      w.first_entered.store(true);
      while (!w.release_first.load()) std::this_thread::yield();
    }
    w.running.fetch_sub(1);
  };
  Budget budget;
  budget.SetSoftLimit(100, 50, handler, &watch);
  std::thread first([&] {
    EXPECT_TRUE(budget.TryCharge(150));  // crosses: due
    budget.RunSoftHandlerIfDue();        // runs the handler, which waits
  });
  while (!watch.first_entered.load()) std::this_thread::yield();
  budget.Refund(150);                  // below 100 - 50: re-armed
  EXPECT_TRUE(budget.TryCharge(150));  // crosses again: due
  budget.RunSoftHandlerIfDue();        // the handler is busy: left due
  EXPECT_EQ(watch.calls.load(), 1);
  watch.release_first.store(true);
  first.join();  // the first thread ran the second notice on its return
  EXPECT_EQ(watch.calls.load(), 2);
  EXPECT_EQ(watch.overlaps.load(), 0);
  EXPECT_EQ(budget.soft_crossings(), 2u);
  budget.RunSoftHandlerIfDue();  // nothing left due
  EXPECT_EQ(watch.calls.load(), 2);
}

// 8 threads race to charge blocks of assorted sizes against a limit that is
// not a multiple of them; usage must never pass it, and the final usage must
// equal what the successful charges add up to.
TEST(BudgetTest, RacingThreadsNeverPassTheLimit) {
  constexpr size_t kLimit = 200'003;  // below what the threads would hold
  constexpr int kThreads = 8;
  constexpr int kRounds = 20000;
  Budget budget;
  budget.SetLimit(kLimit);
  std::atomic<bool> passed{false};
  std::atomic<size_t> charged_total{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      size_t mine = 0;
      std::vector<size_t> held;
      for (int i = 0; i < kRounds; ++i) {
        const size_t bytes = 16 + 16 * ((i * 7 + t * 13) % 64);
        if (budget.TryCharge(bytes)) {
          held.push_back(bytes);
          mine += bytes;
        }
        if (budget.usage() > kLimit) passed.store(true);
        if (held.size() > 64) {  // give some back, oldest first
          budget.Refund(held.front());
          mine -= held.front();
          held.erase(held.begin());
        }
      }
      charged_total.fetch_add(mine);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(passed.load());
  EXPECT_EQ(budget.usage(), charged_total.load());
  EXPECT_GT(budget.refusals(), 0u);
}

}  // namespace
}  // namespace fmemp
