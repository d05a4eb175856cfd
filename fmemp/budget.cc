// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/budget.h"

#include <algorithm>

namespace fmemp {

void Budget::SetSoftLimit(size_t soft_limit, size_t hysteresis,
                          SoftLimitHandler handler, void* context) noexcept {
  if (handler == nullptr) soft_limit = kNoLimit;
  context_.store(context, std::memory_order_relaxed);
  handler_.store(handler, std::memory_order_relaxed);
  hysteresis_.store(std::min(hysteresis, soft_limit),
                    std::memory_order_relaxed);
  rearm_below_.store(0, std::memory_order_relaxed);
  due_.store(false, std::memory_order_relaxed);
  armed_.store(true, std::memory_order_relaxed);
  soft_limit_.store(soft_limit, std::memory_order_release);
}

void Budget::ForceCharge(size_t bytes) noexcept {
  for (Budget* budget = this; budget != nullptr; budget = budget->parent_) {
    budget->ForceChargeHere(bytes);
  }
}

void Budget::ForceChargeHere(size_t bytes) noexcept {
  const size_t after =
      usage_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (after > soft_limit_.load(std::memory_order_relaxed)) {
    NoteAboveSoft(after);
  }
}

bool Budget::InChain(const Budget* chain, const Budget* budget) noexcept {
  for (; chain != nullptr; chain = chain->parent_) {
    if (chain == budget) return true;
  }
  return false;
}

void Budget::Transfer(Budget* from, Budget* to, size_t bytes) noexcept {
  // Charges first: a budget only in `to`'s chain never lacks the bytes
  // while one only in `from`'s still has them.
  for (Budget* budget = to; budget != nullptr; budget = budget->parent_) {
    if (!InChain(from, budget)) budget->ForceChargeHere(bytes);
  }
  for (Budget* budget = from; budget != nullptr; budget = budget->parent_) {
    if (!InChain(to, budget)) budget->RefundHere(bytes);
  }
}

void Budget::NoteAboveSoft(size_t after) noexcept {
  if (!armed_.load(std::memory_order_relaxed) ||
      !armed_.exchange(false, std::memory_order_acq_rel)) {
    return;
  }
  const size_t soft = soft_limit_.load(std::memory_order_relaxed);
  due_usage_.store(after, std::memory_order_relaxed);
  rearm_below_.store(soft - hysteresis_.load(std::memory_order_relaxed),
                     std::memory_order_relaxed);
  due_.store(true, std::memory_order_seq_cst);  // see RunSoftHandler
}

void Budget::Rearm() noexcept {
  // Only while disarmed is rearm_below_ above 0: of racing refunds, the one
  // that clears it re-arms.
  size_t below = rearm_below_.load(std::memory_order_relaxed);
  if (below == 0 || !rearm_below_.compare_exchange_strong(
                        below, 0, std::memory_order_acq_rel)) {
    return;
  }
  armed_.store(true, std::memory_order_release);
}

void Budget::RunSoftHandler() noexcept {
  // One handler call at a time: a notice that falls due while a call runs
  // stays due, and whichever thread finds the handler free next takes it
  // (the running thread looks again when its call returns). seq_cst here
  // and on due_'s store (NoteAboveSoft): either the running thread's look
  // sees the notice, or the notifying thread finds the handler free.
  while (!handler_running_.exchange(true, std::memory_order_seq_cst)) {
    if (due_.exchange(false, std::memory_order_seq_cst)) {
      const SoftLimitHandler handler = handler_.load(std::memory_order_relaxed);
      if (handler != nullptr) {
        soft_crossings_.fetch_add(1, std::memory_order_relaxed);
        handler(context_.load(std::memory_order_relaxed),
                SoftLimitEvent{due_usage_.load(std::memory_order_relaxed),
                               soft_limit_.load(std::memory_order_relaxed)});
      }
    }
    handler_running_.store(false, std::memory_order_seq_cst);
    if (!due_.load(std::memory_order_seq_cst)) return;
  }
}

void Budget::Reset() noexcept {
  usage_.store(0, std::memory_order_relaxed);
  rearm_below_.store(0, std::memory_order_relaxed);
  due_.store(false, std::memory_order_relaxed);
  armed_.store(true, std::memory_order_relaxed);
}

}  // namespace fmemp
