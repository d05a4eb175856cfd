// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/heap_damage_test.cc
//
// Issue 13's exhaustive sweep through the C API: the classic overflow
// (`p = FMempMalloc(&m, n); p[n + k] = v;`) under every policy, for blocks
// across several bins, every byte offset 0..31 past the requested size,
// values 0x00, 0x01, 0x7f, 0x80, 0xff and one random byte, with the
// block's physical successor live, free, or absent (the block ends the
// region). After the write the case frees the block and the neighbour,
// allocates again several times and runs FMempCheck.
//
// Each (policy, size, neighbour) runs in a forked child, so that a crash is
// observed as a signal (the child says which case it was on); a child runs
// its 192 cases in sequence, each on a fresh FMemp. Asserted per case:
// * no crash, and no allocation overlapping a live block (one whose free
//   was refused included) or leaving the regions;
// * the write changed nothing (same value) or hit only the block's own
//   padding: no report, every free applied, FMempCheck succeeds;
// * it changed the successor's header: the block's free is refused and
//   reported with its address; a live neighbour's own free is reported
//   too; FMempCheck fails;
// * it hit a live neighbour's payload: no report, FMempCheck succeeds;
// * it hit a free neighbour's list links: the damage is reported, or
//   FMempCheck names it, or the heap rewrote the link before using it (a
//   list head's back link) or handed the bytes out; any report leaves
//   FMempCheck failing;
// * past the region's end (the neighbour absent): nothing to report.

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fmemp/fmemp.h"
#include "gtest/gtest.h"
#include "tlsf/heap.h"
#include "tlsf/size_class.h"

namespace fmemp {
namespace {

constexpr FMempPolicy kPolicies[] = {
    FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_SINGLE_THREAD,
    FMEMP_POLICY_THREAD_CACHE, FMEMP_POLICY_THREAD_HEAPS};
// Bins from the smallest to the large ones; 20 and 100 leave padding
// between the requested size and the block's end.
constexpr size_t kSizes[] = {20, 24, 40, 100, 200, 1000, 5000};
constexpr int kOffsets = 32;
enum class Neighbour { kLive, kFree, kAbsent };
constexpr Neighbour kNeighbours[] = {Neighbour::kLive, Neighbour::kFree,
                                     Neighbour::kAbsent};
constexpr size_t kRegionBytes = 64 * 1024;
constexpr size_t kSlackBytes = 256;  // after the region, for writes past it

const char* Name(Neighbour n) {
  switch (n) {
    case Neighbour::kLive:
      return "live";
    case Neighbour::kFree:
      return "free";
    case Neighbour::kAbsent:
      return "absent";
  }
  return "?";
}

struct Report {
  int kind;
  const void* ptr;
};

struct Reports {
  std::vector<Report> seen;
  static void Record(void* user, int kind, const void* ptr) {
    static_cast<Reports*>(user)->seen.push_back({kind, ptr});
  }
  bool Names(const void* ptr, size_t from = 0) const {
    for (size_t i = from; i < seen.size(); ++i) {
      if (seen[i].ptr == ptr) return true;
    }
    return false;
  }
};

// One case, run in the child. Returns "" or what went wrong.
class Case {
 public:
  Case(FMempPolicy policy, size_t size, Neighbour neighbour, int offset,
       uint8_t value)
      : policy_(policy),
        size_(size),
        neighbour_(neighbour),
        offset_(offset),
        value_(value),
        span_(tlsf::SpanForRequest(size)),
        usable_(tlsf::UsableBytes(span_)) {}

  std::string Run() {
    // Regions are plain heap memory (ASan sees them); the first is sized
    // for the absent case so that its last block ends at the region end.
    const size_t region_bytes = neighbour_ == Neighbour::kAbsent
                                    ? tlsf::Heap::kPoolOverhead + 6 * span_
                                    : kRegionBytes;
    std::unique_ptr<uint64_t[]> mem(
        new uint64_t[(region_bytes + kSlackBytes) / 8]());
    std::unique_ptr<uint64_t[]> spare(new uint64_t[kRegionBytes / 8]());
    region_ = reinterpret_cast<char*>(mem.get());
    region_end_ = region_ + region_bytes;
    spare_ = reinterpret_cast<char*>(spare.get());
    FMemp memp = {};
    std::string error = Body(&memp);
    FMempRelease(&memp);
    return error;
  }

 private:
  std::string Fail(const std::string& what) {
    char head[160];
    std::snprintf(
        head, sizeof(head),
        "policy %d, size %zu, neighbour %s, offset %d, value 0x%02x: ",
        static_cast<int>(policy_), size_, Name(neighbour_), offset_, value_);
    return head + what;
  }

  bool InRegions(const char* p, size_t n) const {
    return (p - 8 >= region_ && p + n <= region_end_) ||
           (p - 8 >= spare_ && p + n <= spare_ + kRegionBytes);
  }

  // Records a new block after checking it overlaps nothing live.
  std::string Hold(char* p, size_t n) {
    if (p == nullptr) return "";
    if (!InRegions(p, n)) return Fail("a block outside the regions");
    for (const auto& [q, m] : live_) {
      if (p - 8 < q + m && q - 8 < p + n) {
        char what[96];
        std::snprintf(what, sizeof(what), "block %p overlaps live block %p",
                      static_cast<void*>(p), static_cast<void*>(q));
        return Fail(what);
      }
    }
    live_.emplace_back(p, n);
    return "";
  }

  // Frees p; true when the free was refused (a report names p).
  bool FreeAndSee(FMemp* memp, char* p) {
    const size_t before = reports_.seen.size();
    FMempFree(memp, p);
    const bool refused = reports_.Names(p, before);
    if (!refused) {
      for (size_t i = 0; i < live_.size(); ++i) {
        if (live_[i].first == p) {
          live_.erase(live_.begin() + static_cast<ptrdiff_t>(i));
          break;
        }
      }
    }
    return refused;
  }

  std::string Body(FMemp* memp) {
    if (FMempInitWithPolicy(memp, region_, region_end_, policy_) !=
        FMEMP_SUCCESS) {
      return Fail("init failed");
    }
    if (FMempSetErrorHandler(memp, &Reports::Record, &reports_) !=
        FMEMP_SUCCESS) {
      return Fail("no error handler");
    }
    if (policy_ == FMEMP_POLICY_THREAD_HEAPS &&
        FMempBindThread(memp, region_) != FMEMP_SUCCESS) {
      return Fail("bind failed");
    }
    // Blocks until a physical pair (a, its successor) is found, or for
    // the absent case the block that ends the region.
    std::vector<char*> blocks;
    char* a = nullptr;
    char* n = nullptr;
    for (int i = 0; i < 6 && a == nullptr; ++i) {
      char* const p = static_cast<char*>(FMempMalloc(memp, size_));
      if (p == nullptr) break;
      if (std::string e = Hold(p, size_); !e.empty()) return e;
      std::memset(p, 0x33, size_);
      blocks.push_back(p);
      if (neighbour_ == Neighbour::kAbsent) {
        if (p + span_ == region_end_) a = p;
        continue;
      }
      for (char* q : blocks) {
        for (char* r : blocks) {
          if (r == q + span_) {
            a = q;
            n = r;
          }
        }
      }
    }
    if (a == nullptr) return Fail("no block with the neighbour wanted");
    if (neighbour_ == Neighbour::kFree) {
      FreeAndSee(memp, n);
      // The neighbour goes back to its heap, out of any thread cache (the
      // caches' own lists are the front-end's concern, not this sweep's).
      FMempFlushThreadCache(memp);
    }
    // The write.
    char* const target = a + size_ + offset_;
    const bool changed = static_cast<uint8_t>(*target) != value_;
    *target = static_cast<char>(value_);
    uint64_t* const target_word = reinterpret_cast<uint64_t*>(
        reinterpret_cast<uintptr_t>(target) & ~uintptr_t{7});
    const uint64_t damaged_word = *target_word;
    const size_t pos = size_ + static_cast<size_t>(offset_);
    const bool padding = pos < usable_;
    const bool header = pos >= usable_ && pos < usable_ + 8;
    const bool past_region =
        target >= region_end_ - 0 && neighbour_ == Neighbour::kAbsent;
    const bool links = neighbour_ == Neighbour::kFree && pos >= usable_ + 8 &&
                       pos < usable_ + 24;

    // Free the block and the neighbour, then allocate again.
    const bool a_refused = FreeAndSee(memp, a);
    bool n_refused = false;
    if (neighbour_ == Neighbour::kLive) n_refused = FreeAndSee(memp, n);
    if (FMempAddRegion(memp, spare_, spare_ + kRegionBytes) != FMEMP_SUCCESS) {
      return Fail("no spare region");
    }
    for (size_t s : {size_, size_t{24}, size_ * 2, size_t{1}, size_,
                     size_t{200}, size_t{3000}, size_}) {
      char* const p = static_cast<char*>(FMempMalloc(memp, s));
      if (std::string e = Hold(p, s); !e.empty()) return e;
      if (p != nullptr) std::memset(p, 0x44, s);
    }
    const FError check = FMempCheck(memp);
    const bool reported = !reports_.seen.empty();

    if (!changed || padding || past_region ||
        (neighbour_ == Neighbour::kLive && !header)) {
      if (reported) {
        char what[96];
        std::snprintf(what, sizeof(what), "unexpected report kind %d at %p",
                      reports_.seen[0].kind, reports_.seen[0].ptr);
        return Fail(what);
      }
      if (a_refused || n_refused) return Fail("a free was refused");
      if (check != FMEMP_SUCCESS) return Fail("FMempCheck failed");
    } else if (header) {
      if (!a_refused) return Fail("the block's free was not refused");
      if (neighbour_ == Neighbour::kLive && !n_refused) {
        return Fail("the damaged neighbour's free was not reported");
      }
      if (check == FMEMP_SUCCESS) return Fail("FMempCheck missed the damage");
    } else if (links) {
      // Unless the heap rewrote the damaged link before following it (a
      // list head's back link is never read) or handed its bytes out.
      bool covered = false;
      for (const auto& [q, m] : live_) {
        covered |= target >= q && target < q + m;
      }
      if (!reported && check == FMEMP_SUCCESS && !covered &&
          *target_word == damaged_word) {
        return Fail("damaged links neither reported nor found by FMempCheck");
      }
    }
    if (reported && check == FMEMP_SUCCESS) {
      return Fail("a report, yet FMempCheck succeeds");
    }
    // The blocks still live are intact and freeable where undamaged.
    for (char* p : blocks) {
      if (p != a && p != n) FreeAndSee(memp, p);
    }
    if (policy_ == FMEMP_POLICY_THREAD_HEAPS) FMempUnbindThread(memp);
    return "";
  }

  const FMempPolicy policy_;
  const size_t size_;
  const Neighbour neighbour_;
  const int offset_;
  const uint8_t value_;
  const size_t span_;
  const size_t usable_;
  char* region_ = nullptr;
  char* region_end_ = nullptr;
  char* spare_ = nullptr;
  Reports reports_;
  std::vector<std::pair<char*, size_t>> live_;
};

// Shared with the children: which case each is on, and its first failure.
struct Shared {
  int current_case;
  char failure[512];
};

struct Group {
  FMempPolicy policy;
  size_t size;
  Neighbour neighbour;
};

std::string GroupName(const Group& g) {
  return "policy " + std::to_string(static_cast<int>(g.policy)) + ", size " +
         std::to_string(g.size) + ", neighbour " + Name(g.neighbour);
}

bool SanitizerBuild() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

TEST(HeapDamageSweepTest, OverflowsPastEveryBlockAreContained) {
  // Under a sanitizer the sweep keeps every offset and value but only the
  // first, a middle and the last size (the sanitizers slow each case ~20x).
  std::vector<size_t> sizes(std::begin(kSizes), std::end(kSizes));
  if (SanitizerBuild()) sizes = {24, 100, 5000};
  std::mt19937 rng(20261207);
  void* const mapping = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapping, MAP_FAILED);
  Shared* const shared = static_cast<Shared*>(mapping);
  int cases = 0;
  for (FMempPolicy policy : kPolicies) {
    for (size_t size : sizes) {
      for (Neighbour neighbour : kNeighbours) {
        const Group group{policy, size, neighbour};
        const uint8_t random = static_cast<uint8_t>(rng());
        const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff, random};
        shared->current_case = -1;
        shared->failure[0] = '\0';
        std::fflush(nullptr);
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
          int index = 0;
          for (int offset = 0; offset < kOffsets; ++offset) {
            for (uint8_t value : values) {
              shared->current_case = index++;
              const std::string error =
                  Case(policy, size, neighbour, offset, value).Run();
              if (!error.empty()) {
                std::snprintf(shared->failure, sizeof(shared->failure), "%s",
                              error.c_str());
                _exit(1);
              }
            }
          }
          _exit(0);
        }
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        cases += kOffsets * 6;
        if (WIFSIGNALED(status)) {
          const int index = shared->current_case;
          ADD_FAILURE() << GroupName(group) << ": signal " << WTERMSIG(status)
                        << " at offset " << index / 6 << ", value 0x"
                        << std::hex << int{values[index < 0 ? 0 : index % 6]};
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
          ADD_FAILURE() << shared->failure;
        }
      }
    }
  }
  munmap(mapping, sizeof(Shared));
  RecordProperty("cases", cases);
}

// A write into a freed block's list links, then allocations until the
// heap meets it: the block goes out of service, and the C API's probes
// count it as lost, in neither used nor free, for the FMemp and its region.
TEST(HeapDamageProbeTest, ABlockTakenOutOfServiceIsCountedAsLost) {
  for (FMempPolicy policy :
       {FMEMP_POLICY_MUTEX, FMEMP_POLICY_SPINLOCK, FMEMP_POLICY_SINGLE_THREAD,
        FMEMP_POLICY_THREAD_CACHE}) {
    SCOPED_TRACE(static_cast<int>(policy));
    alignas(64) static unsigned char region[64 * 1024];
    FMemp memp = {};
    ASSERT_EQ(
        FMempInitWithPolicy(&memp, region, region + sizeof(region), policy),
        FMEMP_SUCCESS);
    static int reports;
    reports = 0;
    ASSERT_EQ(FMempSetErrorHandler(
                  &memp, [](void*, int, const void*) { ++reports; }, nullptr),
              FMEMP_SUCCESS);
    // Larger than any cached class, so the free reaches the heap.
    constexpr size_t kSize = 5000;
    unsigned char* victim =
        static_cast<unsigned char*>(FMempMalloc(&memp, kSize));
    void* guard = FMempMalloc(&memp, kSize);
    ASSERT_NE(victim, nullptr);
    ASSERT_NE(guard, nullptr);
    FMempFree(&memp, victim);
    std::memset(victim, 0x41, 16);  // its free-list links
    std::vector<void*> taken;
    for (int i = 0; i < 64; ++i) {
      void* p = FMempMalloc(&memp, kSize);
      if (p == nullptr) break;
      EXPECT_NE(p, static_cast<void*>(victim)) << "a damaged block handed out";
      taken.push_back(p);
    }
    FMempUsage usage = {};
    ASSERT_EQ(FMempProbe64(&memp, &usage), FMEMP_SUCCESS);
    EXPECT_GT(reports, 0);
    EXPECT_GE(usage.lost_bytes, kSize);
    EXPECT_EQ(
        usage.used + usage.cached_bytes + usage.free_bytes + usage.lost_bytes,
        usage.total);
    FMempRegionUsage region_usage = {};
    ASSERT_EQ(FMempProbeRegion(&memp, 0, &region_usage), FMEMP_SUCCESS);
    EXPECT_EQ(region_usage.lost_bytes, usage.lost_bytes);
    EXPECT_EQ(
        region_usage.used + region_usage.free_bytes + region_usage.lost_bytes,
        region_usage.total);
    for (void* p : taken) FMempFree(&memp, p);
    FMempFree(&memp, guard);
    FMempRemove(&memp);
  }
}

}  // namespace
}  // namespace fmemp
