// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "bench/compare/trace.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "bench/compare/measure.h"

namespace fmemp::bench::compare {
namespace {

constexpr size_t kStep = 4096;

uint32_t DrawSize(std::mt19937_64& rng) {
  std::uniform_int_distribution<uint32_t> percent(0, 99);
  const uint32_t p = percent(rng);
  uint32_t low = 16;
  uint32_t high = 128;
  if (p >= 90) {
    low = 2049;
    high = 64 * 1024;
  } else if (p >= 60) {
    low = 129;
    high = 2048;
  }
  return std::uniform_int_distribution<uint32_t>(low, high)(rng);
}

}  // namespace

Trace MakeTrace(size_t phase_events, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint32_t> quarter(0, 3);
  Trace trace;
  std::vector<uint32_t> live;        // slots holding a block
  std::vector<uint32_t> free_slots;  // slots to reuse
  std::vector<uint32_t> size_of;     // by slot
  size_t live_bytes = 0;
  for (int phase = 0; phase < 4; ++phase) {
    const bool growing = phase % 2 == 0;
    for (size_t e = 0; e < phase_events; ++e) {
      const bool coin = quarter(rng) != 0;  // true 3 times in 4
      const bool allocate = live.empty() || (growing ? coin : !coin);
      if (allocate) {
        uint32_t slot;
        if (free_slots.empty()) {
          slot = static_cast<uint32_t>(size_of.size());
          size_of.push_back(0);
        } else {
          slot = free_slots.back();
          free_slots.pop_back();
        }
        const uint32_t size = DrawSize(rng);
        size_of[slot] = size;
        live.push_back(slot);
        live_bytes += size;
        trace.peak_live_bytes = std::max(trace.peak_live_bytes, live_bytes);
        trace.events.push_back({slot, size});
      } else {
        std::uniform_int_distribution<size_t> pick(0, live.size() - 1);
        const size_t index = pick(rng);
        const uint32_t slot = live[index];
        live[index] = live.back();
        live.pop_back();
        live_bytes -= size_of[slot];
        free_slots.push_back(slot);
        trace.events.push_back({slot, 0});
      }
    }
  }
  for (uint32_t slot : live) trace.events.push_back({slot, 0});
  trace.slots = size_of.size();
  return trace;
}

bool Replay(const Instance& a, const Trace& trace, bool write_all) {
  std::vector<void*> blocks(trace.slots, nullptr);
  bool ok = true;
  a.ThreadStart();
  for (const TraceEvent& event : trace.events) {
    void*& block = blocks[event.slot];
    if (event.size == 0) {
      a.Free(block);
      block = nullptr;
      continue;
    }
    block = a.Allocate(event.size);
    if (block == nullptr) {
      ok = false;
      break;
    }
    if (write_all) {
      std::memset(block, 0x5a, event.size);
      Escape(block);
    } else {
      Touch(block, event.slot);
    }
  }
  for (void* block : blocks) a.Free(block);
  a.ThreadEnd();
  return ok;
}

size_t SmallestFit(size_t lower, const std::function<bool(size_t)>& fits) {
  size_t bad = lower / kStep * kStep;  // assumed not to fit
  size_t good = bad + kStep;
  while (!fits(good)) {
    bad = good;
    good = std::min(2 * good, 64 * lower / kStep * kStep);
    if (good <= bad) return 0;
  }
  while (good - bad > kStep) {
    const size_t middle = (bad + good) / 2 / kStep * kStep;
    (fits(middle) ? good : bad) = middle;
  }
  return good;
}

}  // namespace fmemp::bench::compare
