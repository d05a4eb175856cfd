// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/budget.h
//
// fmemp::Budget: a cap on the bytes a front-end takes from its regions, and
// a soft limit whose handler a server uses to evict. One Budget belongs to
// one front-end (or one thread's heap, chained to its front-end's budget);
// the regions' allocation paths charge it with each block's span when they
// hand the block out of a heap and refund it when the block returns to its
// heap. A block parked in a per-thread cache is still out of its heap, so
// "usage" here is what the issue calls the bytes taken: in use plus cached.
//
//   Budget budget;
//   budget.SetLimit(64 << 20);                        // hard: never passed
//   budget.SetSoftLimit(48 << 20, 8 << 20, OnSoft, ctx);  // evict at 48 MiB
//   if (!budget.TryCharge(span)) { /* give the block back: refused */ }
//   ...
//   budget.Refund(span);
//   budget.RunSoftHandlerIfDue();   // after the caller's locks are released
//
// Guarantees
// * Exactness: usage() never exceeds limit() as set when the charge was
//   made, by a single byte, however many threads race at the limit: a
//   charge is one compare-exchange of the usage against the limit. Lowering
//   the limit below the usage is allowed: refusals start, nothing is freed.
// * Complexity: every member is O(1) and lock-free; TryCharge and Refund
//   are one atomic read-modify-write each (plus the parent's), and cost one
//   predictable branch more when a soft limit is set. Callers charge on
//   their slow paths (a heap allocation or a cache refill), never on a cache
//   hit: a budget costs the hit path nothing.
// * Soft limit: when a charge takes usage from at most soft_limit to above
//   it while the notice is armed, the notice is disarmed and becomes due;
//   RunSoftHandlerIfDue (called by the front-end once its locks are
//   released and the calling thread's per-thread operation is over:
//   fmemp/drain_protocol.h) runs the handler exactly once per due notice, on
//   the thread that calls it, and never while another call of this budget's
//   handler runs: a notice that falls due meanwhile is run when that call
//   returns (by its thread, or by the next thread that finds the handler
//   free). A refund that takes usage below soft_limit - hysteresis re-arms
//   it. The handler may allocate, free and call the front-end, draining
//   every thread's cache included.
// * Chaining: a budget with a parent (SetParent) charges the parent too;
//   a charge either lands in both or in neither (TryChargeWithoutParent
//   charges this one alone, for bytes the parent is charged for elsewhere).
// * Thread safety: every member may be called from any thread at any time,
//   except SetParent (before the first charge).

#ifndef FMEMP_FMEMP_BUDGET_H_
#define FMEMP_FMEMP_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

namespace fmemp {

class Budget {
 public:
  // limit() when none is set.
  static constexpr size_t kNoLimit = SIZE_MAX;

  // What a soft-limit handler is told.
  struct SoftLimitEvent {
    size_t usage;       // usage just after the crossing charge
    size_t soft_limit;  // the limit it crossed
  };
  // Runs outside the front-end's locks and per-thread operations, on a
  // thread that allocated; may call the front-end (free, allocate, probe,
  // drain every thread's cache).
  using SoftLimitHandler = void (*)(void* context, const SoftLimitEvent& event);

  Budget() = default;
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  // --- Settings (any thread) ---

  // The hard limit: charges that would take usage above it are refused.
  // kNoLimit removes it. Below usage(): allowed; usage stays, charges are
  // refused until refunds bring it under. O(1).
  void SetLimit(size_t limit) noexcept {
    limit_.store(limit, std::memory_order_relaxed);
  }
  size_t limit() const noexcept {
    return limit_.load(std::memory_order_relaxed);
  }

  // The soft limit and its handler (nullptr with kNoLimit removes it). The
  // notice is armed; if usage is already above `soft_limit` the next charge
  // makes it due. hysteresis: how far below soft_limit usage must fall to
  // re-arm it (at most soft_limit). O(1). Not atomic as a whole against
  // charges racing with it: a crossing at that moment may see the old or
  // the new handler.
  void SetSoftLimit(size_t soft_limit, size_t hysteresis,
                    SoftLimitHandler handler, void* context) noexcept;
  size_t soft_limit() const noexcept {
    return soft_limit_.load(std::memory_order_relaxed);
  }

  // The budget whose charges this one's include (a thread's heap inside a
  // front-end). REQUIRES: no charge yet; the parent outlives this budget
  // and has no parent itself (one level: a heap's budget inside its
  // front-end's).
  void SetParent(Budget* parent) noexcept { parent_ = parent; }

  // --- Charges (any thread) ---

  // Adds `bytes` to usage unless that passes the limit (here or in the
  // parent): true if charged, false if refused (nothing changed; the
  // refusing budget's refusals() + 1).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool TryCharge(size_t bytes) noexcept {
    if (!ChargeHere(bytes)) return false;
    if (parent_ != nullptr && !parent_->ChargeHere(bytes)) {
      RefundHere(bytes);
      return false;
    }
    return true;
  }
  // Adds `bytes` whatever the limit (a region with live blocks joining a
  // thread's heap): usage may then pass the limit, and charges are refused
  // until it falls back under. Soft-limit crossings count as for TryCharge.
  void ForceCharge(size_t bytes) noexcept;
  // Moves a charge of `bytes` from `from`'s chain (it and its parent) to
  // `to`'s (a region with live blocks moving between sets): a budget in
  // both chains keeps it untouched, so its usage never dips and a racing
  // charge cannot take the room; one only in `to`'s is charged whatever
  // its limit (as ForceCharge), then one only in `from`'s is refunded.
  // Either may be nullptr (no budget).
  static void Transfer(Budget* from, Budget* to, size_t bytes) noexcept;
  // Takes `bytes` charged earlier off usage (and the parent's).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Refund(size_t bytes) noexcept {
    RefundHere(bytes);
    if (parent_ != nullptr) parent_->RefundHere(bytes);
  }
  // TryCharge and Refund of this budget alone, leaving the parent as it
  // is: for bytes that another path charges to the parent (a thread heap's
  // fallback blocks, which the shared regions charge to the front-end's
  // budget; RegionSet::ChargeAccount). Same exactness and soft-limit
  // semantics as TryCharge and Refund.
  bool TryChargeWithoutParent(size_t bytes) noexcept {
    return ChargeHere(bytes);
  }
  void RefundWithoutParent(size_t bytes) noexcept { RefundHere(bytes); }

  // Runs the soft-limit handler if a crossing made a notice due (here or
  // in the parent), once per notice. Call it with no lock of the front-end
  // held and outside the calling thread's owner operations
  // (fmemp/drain_protocol.h). One relaxed load each when nothing is due.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void RunSoftHandlerIfDue() noexcept {
    if (ABSL_PREDICT_FALSE(due_.load(std::memory_order_relaxed))) {
      RunSoftHandler();
    }
    if (parent_ != nullptr &&
        ABSL_PREDICT_FALSE(parent_->due_.load(std::memory_order_relaxed))) {
      parent_->RunSoftHandler();
    }
  }

  // --- Figures (any thread) ---

  size_t usage() const noexcept {
    return usage_.load(std::memory_order_relaxed);
  }
  // Charges refused by this budget's limit (not the parent's).
  uint64_t refusals() const noexcept {
    return refusals_.load(std::memory_order_relaxed);
  }
  // Crossings of the soft limit whose handler has run.
  uint64_t soft_crossings() const noexcept {
    return soft_crossings_.load(std::memory_order_relaxed);
  }

  // Forgets every charge (the front-end dropped every region). Settings,
  // refusals and crossings stay; the soft notice is re-armed.
  void Reset() noexcept;

 private:
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ChargeHere(size_t bytes) noexcept {
    size_t usage = usage_.load(std::memory_order_relaxed);
    const size_t limit = limit_.load(std::memory_order_relaxed);
    do {
      if (bytes > limit || usage > limit - bytes) {
        refusals_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } while (!usage_.compare_exchange_weak(usage, usage + bytes,
                                           std::memory_order_relaxed));
    if (ABSL_PREDICT_FALSE(usage + bytes >
                           soft_limit_.load(std::memory_order_relaxed))) {
      NoteAboveSoft(usage + bytes);
    }
    return true;
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void RefundHere(size_t bytes) noexcept {
    const size_t after =
        usage_.fetch_sub(bytes, std::memory_order_relaxed) - bytes;
    if (ABSL_PREDICT_FALSE(after <
                           rearm_below_.load(std::memory_order_relaxed))) {
      Rearm();
    }
  }
  // A charge took usage to `after`, above the soft limit: makes the notice
  // due if it was armed. (Once armed, usage was below the limit, or the
  // limit was just set: either way this charge is the crossing.)
  // ForceCharge on this budget alone.
  void ForceChargeHere(size_t bytes) noexcept;
  // Whether `budget` is `chain` or its parent.
  static bool InChain(const Budget* chain, const Budget* budget) noexcept;
  ABSL_ATTRIBUTE_NOINLINE void NoteAboveSoft(size_t after) noexcept;
  ABSL_ATTRIBUTE_NOINLINE void Rearm() noexcept;
  ABSL_ATTRIBUTE_NOINLINE void RunSoftHandler() noexcept;

  std::atomic<size_t> usage_{0};
  std::atomic<size_t> limit_{kNoLimit};
  std::atomic<size_t> soft_limit_{kNoLimit};
  // soft_limit - hysteresis while the notice is disarmed (a refund below it
  // re-arms), 0 while armed (no refund goes below 0).
  std::atomic<size_t> rearm_below_{0};
  std::atomic<size_t> hysteresis_{0};
  std::atomic<bool> armed_{true};
  std::atomic<bool> due_{false};
  std::atomic<bool> handler_running_{false};  // a call of the handler runs
  std::atomic<size_t> due_usage_{0};
  std::atomic<SoftLimitHandler> handler_{nullptr};
  std::atomic<void*> context_{nullptr};
  std::atomic<uint64_t> refusals_{0};
  std::atomic<uint64_t> soft_crossings_{0};
  Budget* parent_ = nullptr;
};

}  // namespace fmemp

#endif  // FMEMP_FMEMP_BUDGET_H_
