// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/heap_damage_fuzz.cc
//
// libFuzzer target for issue 13: the TLSF heap (fmemp::tlsf::Heap, every
// debug mode off: the release behaviour) under arbitrary writes into its
// pools' memory outside the payloads of live blocks.
//
// The input is a program. Its first byte picks one pool or two (separate
// heap buffers, so that ASan sees any access outside them: the pools are
// exactly those buffers) and their sizes; then each operation is one opcode
// byte and its arguments, read with ByteReader, at most kMaxOps of them:
//
//   malloc        a size (mostly small; sometimes up to the pool size)
//   memalign      an alignment of 32..4096 and a size
//   realloc       of a live block, to any size (0 frees)
//   free          of a live block
//   write         1..16 bytes from the input at an offset into a pool;
//                 bytes that would land in a live block's usable bytes are
//                 skipped (the program's own memory), everything else (pool
//                 record, headers, links, back pointers, free memory,
//                 padding after a block's end) is written
//   write word    one 8-byte word at a 16-byte-aligned position +8 (a
//                 header) or +16/+24 (free-list links) or +0 (a back
//                 pointer), same rule
//
// The target tracks live blocks with their usable sizes and fills each with
// a pattern. After every operation it checks: every live block still holds
// its pattern (the heap never writes into a live payload); no two live
// blocks overlap (header word included) and each lies inside a pool; the
// counters add up (used + free + lost == capacity); Check(), WalkPool and
// LargestAllocatable terminate (their answers are free to say "damaged").
// A free or realloc the heap refuses (it reports the pointer) keeps the
// block live in the model.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "fuzz/byte_reader.h"
#include "fuzz/live_blocks.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp::fuzz {
namespace {

using tlsf::Heap;
using tlsf::HeapError;

constexpr size_t kMaxOps = 300;

struct Reports {
  std::vector<const void*> ptrs;
  static void Handler(void* context, HeapError, const void* ptr) {
    static_cast<Reports*>(context)->ptrs.push_back(ptr);
  }
  bool Names(const void* ptr, size_t from) const {
    return std::find(ptrs.begin() + static_cast<ptrdiff_t>(from), ptrs.end(),
                     ptr) != ptrs.end();
  }
};

// A live block: its usable bytes (taken when it was handed out, while its
// header was intact) and the byte it is filled with.
struct Live {
  size_t usable;
  uint8_t fill;
};

class Target {
 public:
  explicit Target(ByteReader* in) : in_(*in) {}

  void Run() {
    const uint8_t setup = in_.Byte();
    const size_t sizes[] = {1024, 4096, 16384, 65536};
    AddBuffer(sizes[setup % 4]);
    if ((setup & 4) != 0) AddBuffer(sizes[(setup >> 3) % 4]);
    heap_.SetErrorHandler(&Reports::Handler, &reports_);
    for (auto& b : buffers_) {
      absl::StatusOr<tlsf::Pool*> pool = heap_.AddPool(b.data, b.bytes);
      FUZZ_CHECK(pool.ok(), "AddPool failed");
    }
    for (size_t op = 0; op < kMaxOps && !in_.empty(); ++op) {
      Step();
      Verify();
    }
    // Free what is left; refusals keep blocks live (the heap is dropped).
    while (!live_.empty()) {
      void* const p = reinterpret_cast<void*>(live_.begin()->first);
      live_.erase(live_.begin());
      heap_.Free(p);
    }
    (void)heap_.Check();
  }

 private:
  struct Buffer {
    std::unique_ptr<uint64_t[]> storage;
    char* data;
    size_t bytes;
  };

  void AddBuffer(size_t bytes) {
    Buffer b;
    b.storage.reset(new uint64_t[bytes / 8]());
    b.data = reinterpret_cast<char*>(b.storage.get());
    b.bytes = bytes;
    buffers_.push_back(std::move(b));
  }

  bool InBuffers(uintptr_t a, size_t n) const {
    for (const Buffer& b : buffers_) {
      if (a >= Addr(b.data) && a + n <= Addr(b.data) + b.bytes) return true;
    }
    return false;
  }

  // The live block whose usable bytes hold `a`, or 0.
  bool InLivePayload(uintptr_t a) const {
    auto it = live_.upper_bound(a);
    if (it == live_.begin()) return false;
    --it;
    return a < it->first + it->second.usable;
  }

  void Hold(void* p, size_t requested, size_t alignment) {
    if (p == nullptr) return;
    const uintptr_t a = Addr(p);
    const size_t usable = heap_.UsableSize(p);
    FUZZ_CHECK(usable >= requested, "usable %zu below requested %zu", usable,
               requested);
    FUZZ_CHECK(a % std::max<size_t>(alignment, tlsf::kAlignment) == 0,
               "block %p not aligned to %zu", p, alignment);
    FUZZ_CHECK(InBuffers(a - 8, usable + 8), "block %p outside the pools", p);
    auto next = live_.lower_bound(a);
    FUZZ_CHECK(next == live_.end() || a + usable <= next->first - 8,
               "block %p (%zu bytes) overlaps live block %p", p, usable,
               reinterpret_cast<void*>(next == live_.end() ? 0 : next->first));
    if (next != live_.begin()) {
      auto prev = std::prev(next);
      FUZZ_CHECK(prev->first + prev->second.usable <= a - 8,
                 "block %p overlaps live block %p", p,
                 reinterpret_cast<void*>(prev->first));
    }
    const uint8_t fill = static_cast<uint8_t>((next_fill_++ * 37 + 1) & ~0x20);
    std::memset(p, fill, usable);
    live_[a] = Live{usable, fill};
  }

  void* PickLive() {
    if (live_.empty()) return nullptr;
    auto it = live_.begin();
    std::advance(it, static_cast<ptrdiff_t>(in_.Below(live_.size())));
    return reinterpret_cast<void*>(it->first);
  }

  size_t SmallSize() {
    const uint8_t kind = in_.Byte();
    if (kind < 200) return kind;
    if (kind < 250) return in_.U16() % 4096;
    return in_.U16() * 2;  // up to 128 KiB: may exceed every pool
  }

  void Write(bool word) {
    const Buffer& b = buffers_[in_.Below(buffers_.size())];
    size_t offset = in_.U16() % b.bytes;
    size_t n = 1 + in_.Below(16);
    if (word) {
      static constexpr size_t kSlots[] = {0, 8, 16, 24};
      offset = (offset & ~size_t{15}) + kSlots[in_.Below(4)];
      n = 8;
    }
    for (size_t i = 0; i < n && offset + i < b.bytes; ++i) {
      const uint8_t v = in_.Byte();
      const uintptr_t a = Addr(b.data) + offset + i;
      if (!InLivePayload(a)) b.data[offset + i] = static_cast<char>(v);
    }
  }

  void Step() {
    switch (in_.Byte() % 8) {
      case 0:
      case 1: {
        const size_t n = SmallSize();
        Hold(heap_.Allocate(n), n, tlsf::kAlignment);
        break;
      }
      case 2: {
        const size_t alignment = size_t{32} << in_.Below(8);
        const size_t n = SmallSize();
        Hold(heap_.AllocateAligned(alignment, n), n, alignment);
        break;
      }
      case 3: {
        void* const p = PickLive();
        if (p == nullptr) break;
        const size_t n = SmallSize();
        const Live old = live_[Addr(p)];
        const size_t before = reports_.ptrs.size();
        void* const q = heap_.Reallocate(p, n);
        const bool refused = reports_.Names(p, before);
        if (q == nullptr) {
          // Failed (p unchanged), refused (p unchanged), or n == 0 (freed).
          if (n == 0 && !refused) live_.erase(Addr(p));
          break;
        }
        const size_t keep = std::min(old.usable, n);
        for (size_t i = 0; i < keep; ++i) {
          FUZZ_CHECK(static_cast<uint8_t>(static_cast<char*>(q)[i]) == old.fill,
                     "realloc %p -> %p lost byte %zu", p, q, i);
        }
        // A moved block's old one may have been refused by its free.
        if (q != p && refused) {
          live_[Addr(p)] = old;
        } else {
          live_.erase(Addr(p));
        }
        Hold(q, n, tlsf::kAlignment);
        break;
      }
      case 4:
      case 5: {
        void* const p = PickLive();
        if (p == nullptr) break;
        if (heap_.Free(p)) live_.erase(Addr(p));
        break;
      }
      case 6:
        Write(false);
        break;
      default:
        Write(true);
        break;
    }
  }

  void Verify() {
    for (const auto& [a, block] : live_) {
      const char* const p = reinterpret_cast<const char*>(a);
      for (size_t i = 0; i < block.usable; ++i) {
        FUZZ_CHECK(static_cast<uint8_t>(p[i]) == block.fill,
                   "live block %p: byte %zu changed",
                   static_cast<const void*>(p), i);
      }
    }
    const tlsf::HeapStats& s = heap_.Stats();
    FUZZ_CHECK(s.used_bytes + s.free_bytes + s.lost_bytes == s.capacity_bytes,
               "counters: used %zu free %zu lost %zu capacity %zu",
               s.used_bytes, s.free_bytes, s.lost_bytes, s.capacity_bytes);
    (void)heap_.Check();
    heap_.ForEachPool([&](tlsf::Pool* pool) {
      heap_.WalkPool(pool, [&](const tlsf::BlockInfo& info) {
        FUZZ_CHECK(InBuffers(Addr(info.ptr) - 8, info.span),
                   "walk left the pools at %p", info.ptr);
        return true;
      });
    });
    (void)heap_.LargestAllocatable();
  }

  ByteReader& in_;
  std::vector<Buffer> buffers_;
  Heap heap_;
  Reports reports_;
  std::map<uintptr_t, Live> live_;
  uint32_t next_fill_ = 0;
};

}  // namespace
}  // namespace fmemp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fmemp::fuzz::ByteReader in(data, size);
  fmemp::fuzz::Target target(&in);
  target.Run();
  return 0;
}
