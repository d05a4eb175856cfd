// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/region_set.h"

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fmemp/debug_assert.h"

namespace fmemp {

using tlsf::Heap;
using tlsf::HeapError;
using tlsf::HeapStats;

// One region: the caller's memory, a TLSF heap over it (its control
// structure lives here, not in the region), and its index entry.
// In the metadata arena (ArenaAllocated): AddRegion never calls operator
// new.
struct RegionSet::Region : ArenaAllocated {
  explicit Region(const DebugOptions& options) : heap(options) {}

  uintptr_t begin = 0;  // as passed to AddRegion
  uintptr_t end = 0;
  Heap heap;
  tlsf::Pool* pool = nullptr;
  // The lowest address a block's payload can have: a pointer below it (the
  // region's first bytes) would make the heap read before the region.
  uintptr_t first_payload = 0;
  RegionIndex::Entry entry;
  // False while the region is being emptied for removal: it is kept out of
  // the index, so no new block comes from it.
  bool allocatable = true;
  // Retire's: the region goes when its last live block does.
  bool retiring = false;
  RetiredHandler retired_handler = nullptr;
  void* retired_context = nullptr;

  int IndexBin() const {
    return allocatable ? heap.LargestFreeBin() : RegionIndex::kNoBin;
  }
  bool MayHoldPayload(const void* ptr) const {
    return reinterpret_cast<uintptr_t>(ptr) >= first_payload;
  }
};

int RegionSet::IndexedBin(const Region& r) const noexcept {
  return &r == solo_ ? RegionIndex::kNoBin : r.IndexBin();
}

namespace {

constexpr int FlatBin(tlsf::Bin bin) {
  return bin.first * tlsf::kSecondLevelCount + bin.second;
}

// How many regions filed exactly under a request's own bin are tried when the
// good-fit search finds none. Bounded, so allocation stays O(1).
constexpr int kRegionFallback = 4;

uintptr_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

void DefaultReportHandler(void*, const MempReport& report) {
  WriteMempReportToStderr(report);
}

// Appends printf-style text to buf[*used..n), truncating at n - 1 bytes.
// snprintf into a caller's buffer: no allocation.
template <typename... Args>
void Append(char* buf, size_t n, size_t* used, const char* format,
            Args... args) {
  if (*used + 1 >= n) return;
  const int wrote = std::snprintf(buf + *used, n - *used, format, args...);
  if (wrote > 0) *used = std::min(n - 1, *used + static_cast<size_t>(wrote));
}

// A report without the "fmemp: " prefix into buf (NUL-terminated); its
// length. Allocates nothing: the misuse path may run inside a program's
// operator new/delete routed into this pool.
size_t DescribeMempReportTo(const MempReport& report, char* buf, size_t n) {
  size_t used = 0;
  if (n == 0) return 0;
  buf[0] = '\0';
  Append(buf, n, &used, "%s: %p", MempErrorName(report.error), report.ptr);
  if (report.size != 0) {
    Append(buf, n, &used, " (%zu bytes)", report.size);
  }
  if (report.damage != nullptr) {
    Append(
        buf, n, &used, ", first damaged byte at %p (offset %lld)",
        report.damage,
        static_cast<long long>(Addr(report.damage)) -   // NOLINT(runtime/int)
            static_cast<long long>(Addr(report.ptr)));  // NOLINT(runtime/int)
  }
  if (report.tag.file != nullptr) {
    Append(buf, n, &used, ", allocated at %s:%lu", report.tag.file,
           static_cast<unsigned long>(report.tag.line));  // NOLINT(runtime/int)
    if (report.tag.message != nullptr) {
      Append(buf, n, &used, " (%s)", report.tag.message);
    }
  }
  return used;
}

}  // namespace

size_t FormatMempReportTo(const MempReport& report, char* buf, size_t n) {
  static constexpr char kPrefix[] = "fmemp: ";
  constexpr size_t kPrefixBytes = sizeof(kPrefix) - 1;
  if (n <= kPrefixBytes) {
    if (n != 0) buf[0] = '\0';
    return 0;
  }
  std::memcpy(buf, kPrefix, kPrefixBytes);
  return kPrefixBytes +
         DescribeMempReportTo(report, buf + kPrefixBytes, n - kPrefixBytes);
}

std::string FormatMempReport(const MempReport& report) {
  char buf[kMempReportBytes];
  const size_t n = FormatMempReportTo(report, buf, sizeof(buf));
  return std::string(buf, n);
}

namespace {

// buf[0..n) to stderr with write(2), not stdio: allocates nothing.
void WriteToStderr(const char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = write(STDERR_FILENO, buf + done, n - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
}

}  // namespace

void WriteMempReportToStderr(const MempReport& report) {
  char buf[kMempReportBytes + 1];
  size_t n = FormatMempReportTo(report, buf, kMempReportBytes);
  buf[n++] = '\n';
  WriteToStderr(buf, n);
}

void WriteCheckFailureToStderr(const tlsf::CheckFindings& findings) {
  if (findings.ok()) return;
  char buf[tlsf::CheckFindings::kTextBytes + 96];
  const int n = std::snprintf(
      buf, sizeof(buf),
      "fmemp: integrity check failed: %s (%zu problem(s) found)\n",
      findings.text(), findings.count());
  if (n > 0)
    WriteToStderr(buf, std::min(sizeof(buf) - 1, static_cast<size_t>(n)));
}

const char* MempErrorName(MempError error) {
  switch (error) {
    case MempError::kUseAfterFreeWrite:
      return "write to freed memory (use after free)";
    case MempError::kCanaryDamaged:
      return "canary damaged (overflow past the block's end or underflow "
             "before its start)";
    case MempError::kForeignPointer:
      return "pointer outside every region of this pool";
    case MempError::kInvalidFree:
      return "pointer is not a live block (interior, foreign or freed)";
    case MempError::kDoubleFree:
      return "double free";
    case MempError::kCorruptHeap:
      return "heap corruption next to block";
  }
  return "unknown error";
}

RegionSet::RegionSet() = default;
RegionSet::~RegionSet() = default;

void RegionSet::SetErrorHandler(MempErrorHandler handler,
                                void* context) noexcept {
  error_handler_ = handler;
  report_handler_ = nullptr;
  error_context_ = context;
}

void RegionSet::SetReportHandler(MempReportHandler handler,
                                 void* context) noexcept {
  report_handler_ = handler;
  error_handler_ = nullptr;
  error_context_ = context;
}

void RegionSet::Report(MempError error, const void* ptr) noexcept {
  MempReport report;
  report.error = error;
  report.ptr = ptr;
  Report(report);
}

void RegionSet::Report(const MempReport& report) noexcept {
  ++invalid_frees_;
  if (report_handler_ != nullptr) {
    report_handler_(error_context_, report);
  } else if (error_handler_ != nullptr) {
    error_handler_(error_context_, report.error, report.ptr);
  } else {
    DefaultReportHandler(nullptr, report);
  }
}

MempReport RegionSet::FromHeapReport(const tlsf::HeapReport& report) const {
  MempReport out;
  out.error = MempError::kInvalidFree;
  if (report.error == HeapError::kDoubleFree) {
    out.error = MempError::kDoubleFree;
  } else if (report.error == HeapError::kCorruptHeap) {
    out.error = MempError::kCorruptHeap;
  } else if (report.error == tlsf::HeapError::kUseAfterFreeWrite) {
    out.error = MempError::kUseAfterFreeWrite;
  } else if (report.error == tlsf::HeapError::kCanaryDamaged) {
    out.error = MempError::kCanaryDamaged;
  }
  out.ptr = report.ptr;
  out.size = report.size;
  out.damage = report.damage;
  if (!tags_.empty()) {
    if (auto it = tags_.find(report.ptr); it != tags_.end()) {
      out.tag = it->second;
    }
  }
  return out;
}

void RegionSet::OnHeapReport(void* context, const tlsf::HeapReport& report) {
  RegionSet* const self = static_cast<RegionSet*>(context);
  self->lost_stale_ = true;
  self->Report(self->FromHeapReport(report));
}

void RegionSet::RecountLost() const noexcept {
  size_t lost = 0;
  for (const Slot& slot : regions_)
    lost += slot.region->heap.Stats().lost_bytes;
  lost_bytes_ = lost;
  lost_stale_ = false;
}

// --- Regions ---

namespace {

// How a region's heap refusing its pool reads to the set's callers.
ManagementError FromPoolError(tlsf::PoolError error) {
  switch (error) {
    case tlsf::PoolError::kNone:
      return ManagementError::kNone;
    case tlsf::PoolError::kNullMemory:
      return ManagementError::kNullBound;
    case tlsf::PoolError::kWrapsAround:
      return ManagementError::kWrapsAround;
    case tlsf::PoolError::kTooSmall:
      return ManagementError::kTooSmall;
    case tlsf::PoolError::kTooLarge:
    case tlsf::PoolError::kTooManyPools:  // one pool per region's heap
      return ManagementError::kTooLarge;
    case tlsf::PoolError::kOverlap:
      return ManagementError::kOverlap;
    case tlsf::PoolError::kNotAPool:
      return ManagementError::kNoRegion;
    case tlsf::PoolError::kLiveBlocks:
      return ManagementError::kLiveBlocks;
    case tlsf::PoolError::kUnlistable:
      return ManagementError::kRegionUnlistable;
  }
  return ManagementError::kCorrupt;
}

}  // namespace

ManagementResult RegionSet::AddRegion(void* begin, void* end) {
  if (begin == nullptr || end == nullptr) {
    return {ManagementError::kNullBound, begin};
  }
  if (Addr(end) <= Addr(begin)) {
    return {ManagementError::kReversedRange, begin};
  }
  if (Overlapping(Addr(begin), Addr(end)) != nullptr) {
    return {ManagementError::kOverlap, begin};
  }
  if (RegionTable::Entry other;
      table_->Overlapping(Addr(begin), Addr(end), &other)) {
    return {ManagementError::kOverlapOtherSet, begin};
  }
  auto region = std::make_unique<Region>(options_);
  region->begin = Addr(begin);
  region->end = Addr(end);
  region->entry.owner = region.get();
  region->heap.SetReportHandler(&RegionSet::OnHeapReport, this);
  tlsf::Pool* pool = nullptr;
  if (const tlsf::PoolError refused =
          region->heap.TryAddPool(begin, Addr(end) - Addr(begin), &pool);
      refused != tlsf::PoolError::kNone) {
    return {FromPoolError(refused), begin};
  }
  region->pool = pool;
  region->first_payload =
      Addr(Heap::PoolBegin(region->pool)) + Heap::kFirstPayloadOffset;
  Unsolo();
  capacity_bytes_ += region->heap.Stats().capacity_bytes;
  table_->Insert({region->first_payload, region->end, &region->heap, owner_,
                  region->begin});
  InsertSlot(std::move(region));
  Refile();
  DebugCheckInvariants();
  return {};
}

RegionSet::SlotVector::iterator RegionSet::SlotOf(uintptr_t begin) noexcept {
  auto it =
      std::lower_bound(regions_.begin(), regions_.end(), begin, &Slot::Before);
  return it != regions_.end() && it->begin == begin ? it : regions_.end();
}

void RegionSet::InsertSlot(std::unique_ptr<Region> region) {
  const uintptr_t begin = region->begin;
  regions_.insert(
      std::lower_bound(regions_.begin(), regions_.end(), begin, &Slot::Before),
      Slot{begin, std::move(region)});
}

const RegionSet::Region* RegionSet::Overlapping(uintptr_t begin,
                                                uintptr_t end) const noexcept {
  // The neighbours in address order are the only candidates.
  auto next =
      std::lower_bound(regions_.begin(), regions_.end(), begin, &Slot::Before);
  if (next != regions_.end() && next->begin < end) {
    return next->region.get();
  }
  if (next != regions_.begin()) {
    const Region* prev = std::prev(next)->region.get();
    if (prev->end > begin) return prev;
  }
  return nullptr;
}

ManagementResult RegionSet::RemoveRegion(void* begin) {
  auto it = SlotOf(Addr(begin));
  if (it == regions_.end()) return {ManagementError::kNoRegion, begin};
  Region& region = *it->region;
  const size_t capacity = region.heap.Stats().capacity_bytes;
  if (const tlsf::PoolError refused = region.heap.TryRemovePool(region.pool);
      refused != tlsf::PoolError::kNone) {
    return {FromPoolError(refused), begin};
  }
  Unsolo();
  index_.Update(&region.entry, RegionIndex::kNoBin);
  table_->Erase(region.first_payload);
  capacity_bytes_ -= capacity;
  lost_stale_ = true;
  regions_.erase(it);
  Refile();
  DebugCheckInvariants();
  return {};
}

void RegionSet::Clear() {
  if (budget_ != nullptr) budget_->Refund(UsedBytes());
  for (const auto& [ptr, attribution] : ledger_) {
    CreditAccount(attribution, attribution.span);
  }
  ledger_.clear();
  attributed_bytes_ = 0;
  NoteChargedFrees();
  reap_candidate_ = nullptr;  // (retired_'s handlers still run)
  for (auto& [key, r] : regions_) {
    index_.Update(&r->entry, RegionIndex::kNoBin);
  }
  if (table_ == &own_table_) {
    table_->Clear();
  } else {
    // A shared table keeps other sets' entries.
    for (const auto& [key, r] : regions_) EraseEntry(table_, *r);
  }
  regions_.clear();
  ResetLookup();
  solo_ = nullptr;
  solo_stats_ = nullptr;
  tags_.clear();
  capacity_bytes_ = used_bytes_ = peak_used_bytes_ = live_blocks_ = 0;
  failed_allocations_ = invalid_frees_ = limit_refusals_ = 0;
  lost_bytes_ = 0;
  lost_stale_ = false;
  DebugCheckInvariants();
}

ManagementResult RegionSet::SetDebugOptions(const DebugOptions& options) {
  if (!regions_.empty()) return ManagementError::kHasRegions;
  options_ = options;
  canary_extra_ = options.canaries ? Heap::kCanaryExtraBytes : 0;
  max_request_ = tlsf::kMaxRequest - canary_extra_;
  return {};
}

ManagementResult RegionSet::UseTable(RegionTable* table, const void* owner) {
  if (!regions_.empty()) return ManagementError::kHasRegions;
  table_ = table != nullptr ? table : &own_table_;
  owner_ = owner;
  return {};
}

void RegionSet::EraseEntry(RegionTable* table, const Region& r) {
  RegionTable::Entry entry;
  if (table->Find(r.first_payload, &entry) && entry.heap == &r.heap) {
    table->Erase(r.first_payload);
  }
}

RegionSet::DetachedRegion::DetachedRegion() = default;
RegionSet::DetachedRegion::DetachedRegion(DetachedRegion&& other) noexcept
    : region_(std::move(other.region_)),
      table_(std::exchange(other.table_, nullptr)),
      charged_(std::exchange(other.charged_, nullptr)),
      tags_(std::move(other.tags_)) {}
RegionSet::DetachedRegion& RegionSet::DetachedRegion::operator=(
    DetachedRegion&& other) noexcept {
  if (this != &other) {
    Drop();
    region_ = std::move(other.region_);
    table_ = std::exchange(other.table_, nullptr);
    charged_ = std::exchange(other.charged_, nullptr);
    tags_ = std::move(other.tags_);
  }
  return *this;
}
RegionSet::DetachedRegion::~DetachedRegion() { Drop(); }

void RegionSet::DetachedRegion::Drop() noexcept {
  if (!region_) return;
  if (charged_ != nullptr) {
    charged_->Refund(region_->heap.Stats().used_bytes);
    charged_ = nullptr;
  }
  if (table_ != nullptr) EraseEntry(table_, *region_);
}

void* RegionSet::DetachedRegion::begin() const {
  return region_ ? reinterpret_cast<void*>(region_->begin) : nullptr;
}
void* RegionSet::DetachedRegion::end() const {
  return region_ ? reinterpret_cast<void*>(region_->end) : nullptr;
}

ManagementResult RegionSet::Detach(void* begin, DetachedRegion* detached) {
  auto it = SlotOf(Addr(begin));
  if (it == regions_.end()) return {ManagementError::kNoRegion, begin};
  if (it->region->retiring) return {ManagementError::kRetiring, begin};
  Unsolo();
  DetachedRegion& out = *detached;
  out = DetachedRegion();
  out.region_ = std::move(it->region);
  regions_.erase(it);
  Region& r = *out.region_;
  index_.Update(&r.entry, RegionIndex::kNoBin);
  Refile();
  out.table_ = table_;  // the entry stays until Attach or destruction
  const HeapStats& s = r.heap.Stats();
  capacity_bytes_ -= s.capacity_bytes;
  lost_stale_ = true;
  used_bytes_ -= s.used_bytes;
  live_blocks_ -= s.live_blocks;
  out.charged_ = budget_;  // Attach moves the charge
  if (!ledger_.empty()) {
    // Its blocks become the new owner's: their accounts are credited.
    for (auto entry = ledger_.begin(); entry != ledger_.end();) {
      const uintptr_t at = Addr(entry->first);
      if (at >= r.begin && at < r.end) {
        CreditAccount(entry->second, entry->second.span);
        ledger_.erase(entry++);
      } else {
        ++entry;
      }
    }
    NoteChargedFrees();
  }
  if (!tags_.empty()) {
    for (auto tag = tags_.begin(); tag != tags_.end();) {
      const uintptr_t at = Addr(tag->first);
      if (at >= r.begin && at < r.end) {
        out.tags_.emplace_back(*tag);
        tags_.erase(tag++);
      } else {
        ++tag;
      }
    }
  }
  DebugCheckInvariants();
  return {};
}

ManagementResult RegionSet::Attach(DetachedRegion& detached) {
  if (!detached.region_) return ManagementError::kNothingToAttach;
  Region& r = *detached.region_;
  const void* const begin = reinterpret_cast<void*>(r.begin);
  if (Overlapping(r.begin, r.end) != nullptr) {
    return {ManagementError::kOverlap, begin};
  }
  if (r.heap.options() != options_) {
    // Its blocks are laid out for other debug modes than this set
    // allocates for.
    return {ManagementError::kDebugModesDiffer, begin};
  }
  r.heap.SetReportHandler(&RegionSet::OnHeapReport, this);
  Unsolo();
  const HeapStats& s = r.heap.Stats();
  capacity_bytes_ += s.capacity_bytes;
  lost_stale_ = true;
  used_bytes_ += s.used_bytes;
  live_blocks_ += s.live_blocks;
  peak_used_bytes_ = std::max(peak_used_bytes_, used_bytes_);
  Budget::Transfer(std::exchange(detached.charged_, nullptr), budget_,
                   s.used_bytes);
  if (detached.table_ != table_ || !table_->SetOwner(r.first_payload, owner_)) {
    if (detached.table_ != nullptr) EraseEntry(detached.table_, r);
    table_->Insert({r.first_payload, r.end, &r.heap, owner_, r.begin});
  }
  detached.table_ = nullptr;
  for (auto& [ptr, tag] : detached.tags_) tags_.emplace(ptr, tag);
  detached.tags_.clear();
  InsertSlot(std::move(detached.region_));
  Refile();
  DebugCheckInvariants();
  return {};
}

ManagementResult RegionSet::SetAllocatable(void* begin, bool allocatable) {
  auto it = SlotOf(Addr(begin));
  if (it == regions_.end()) return {ManagementError::kNoRegion, begin};
  Region& region = *it->region;
  // A retiring region is out of service until CancelRetire: a caller that
  // takes a region out and puts it back (CachingMemp::TryRemoveRegion, on
  // failure) must not put a retiring one back in.
  if (region.retiring) return {ManagementError::kRetiring, begin};
  region.allocatable = allocatable;
  Refile();
  DebugCheckInvariants();
  return {};
}

void RegionSet::DebugCheckInvariants() const noexcept {
  if constexpr (!kDebugChecks) return;
  size_t capacity = 0, used = 0, live = 0, allocatable = 0;
  const Region* previous = nullptr;
  for (const auto& [begin, r] : regions_) {
    // regions_ is sorted by address and its regions are disjoint.
    FMEMP_DCHECK(begin == r->begin && r->begin < r->end);
    FMEMP_DCHECK(previous == nullptr || previous->end <= r->begin);
    // Each region has its entry in the table, naming its heap and this
    // set's owner (a retiring region: RegionTable::RetiringOwner()).
    RegionTable::Entry entry;
    FMEMP_DCHECK(
        table_->FindWhole(r->begin, &entry) && entry.base == r->begin &&
        entry.end == r->end && entry.heap == &r->heap &&
        entry.owner == (r->retiring ? RegionTable::RetiringOwner() : owner_));
    const HeapStats& stats = r->heap.Stats();
    capacity += stats.capacity_bytes;
    used += stats.used_bytes;
    live += stats.live_blocks;
    if (r->allocatable) ++allocatable;
    previous = r.get();
  }
  // The aggregates are the sums of the regions' counters (solo_'s read
  // through), and the peak is never below what is used.
  FMEMP_DCHECK(capacity == capacity_bytes_);
  FMEMP_DCHECK(used == UsedBytes());
  FMEMP_DCHECK(live == LiveBlocks());
  FMEMP_DCHECK(peak_used_bytes_ >= used);
  // Attributed blocks are live blocks of this set.
  FMEMP_DCHECK(attributed_bytes_ <= used);
  FMEMP_DCHECK(charged_frees_ == (budget_ != nullptr || !ledger_.empty()));
  // solo_ is the only allocatable region, exactly when there is one.
  FMEMP_DCHECK((solo_ != nullptr) == (allocatable == 1));
  FMEMP_DCHECK((solo_ == nullptr) == (solo_stats_ == nullptr));
  FMEMP_DCHECK(solo_ == nullptr || solo_->allocatable);
  // The lookup cache names only regions of this set.
  for (const Region* cached : lookup_) {
    FMEMP_DCHECK(cached == nullptr ||
                 std::any_of(regions_.begin(), regions_.end(),
                             [cached](const Slot& slot) {
                               return slot.region.get() == cached;
                             }));
  }
}

void RegionSet::Unsolo() noexcept {
  if (solo_ == nullptr) return;
  const HeapStats& s = solo_->heap.Stats();
  used_bytes_ += s.used_bytes;
  live_blocks_ += s.live_blocks;
  Region* const r = solo_;
  solo_ = nullptr;
  solo_stats_ = nullptr;
  index_.Update(&r->entry, r->IndexBin());
}

void RegionSet::Refile() noexcept {
  Unsolo();
  ResetLookup();  // a region may have been removed
  Region* only = nullptr;
  size_t allocatable = 0;
  for (auto& [begin, r] : regions_) {
    if (r->allocatable) {
      only = r.get();
      ++allocatable;
    }
  }
  solo_ = allocatable == 1 ? only : nullptr;
  if (solo_ != nullptr) {
    const HeapStats& s = solo_->heap.Stats();
    solo_stats_ = &s;
    used_bytes_ -= s.used_bytes;
    live_blocks_ -= s.live_blocks;
  }
  for (auto& [begin, r] : regions_) {
    index_.Update(&r->entry, IndexedBin(*r));
  }
}

// Inline: it is most of the lookup on every free.
inline RegionSet::Region* RegionSet::FindRegion(
    const void* ptr) const noexcept {
  const uintptr_t at = Addr(ptr);
  Region*& found = lookup_[(at >> lookup_shift_) % kLookupSlots];
  if (found != nullptr && at >= found->begin && at < found->end) return found;
  size_t n = regions_.size();
  if (n == 0) return nullptr;
  // The last slot that begins at or below `at`, by a bisection without
  // branches on the data (a conditional move per step).
  const Slot* slot = regions_.data();
  while (n > 1) {
    const size_t half = n / 2;
    slot = slot[half].begin <= at ? slot + half : slot;
    n -= half;
  }
  Region* const r = slot->region.get();
  if (at < slot->begin || at >= r->end) return nullptr;
  found = r;
  return r;
}

void RegionSet::ResetLookup() noexcept {
  std::fill(std::begin(lookup_), std::end(lookup_), nullptr);
  // Chunks no larger than the smallest region (a power of two at or below
  // its size), so that one chunk meets at most two regions.
  size_t smallest = SIZE_MAX;
  for (const auto& [begin, r] : regions_) {
    smallest = std::min<size_t>(smallest, r->end - r->begin);
  }
  lookup_shift_ = regions_.empty() ? 0 : tlsf::FloorLog2(smallest);
}

bool RegionSet::Contains(const void* ptr) const noexcept {
  return FindRegion(ptr) != nullptr;
}

RegionSet::Region* RegionSet::RegionFor(size_t search_span) const noexcept {
  const size_t good_fit = tlsf::RoundUpToBinStart(search_span);
  if (good_fit >= tlsf::kMaxSpan) return nullptr;
  RegionIndex::Entry* entry =
      index_.FindAtLeast(FlatBin(tlsf::BinForSpan(good_fit)));
  return entry != nullptr ? static_cast<Region*>(entry->owner) : nullptr;
}

template <RegionSet::PeakEffect kPeak, typename Op>
inline auto RegionSet::InRegion(Region* r, Op op) noexcept {
  constexpr bool kMayRaisePeak = kPeak != PeakEffect::kNone;
  const HeapStats& stats = r->heap.Stats();
  const size_t peak_before =
      kPeak == PeakEffect::kTransient ? stats.peak_used_bytes : 0;
  // The highest used_bytes of the heap during the call.
  auto high_water = [&] {
    if (kPeak != PeakEffect::kTransient) return stats.used_bytes;
    return stats.peak_used_bytes > peak_before ? stats.peak_used_bytes
                                               : stats.used_bytes;
  };
  if (r == solo_) {
    // Its counters are read through (see solo_): only the peak needs the
    // call's outcome, and its index entry is not kept.
    auto result = op(r->heap);
    if (kMayRaisePeak) {
      peak_used_bytes_ = std::max(peak_used_bytes_, used_bytes_ + high_water());
    }
    return result;
  }
  const size_t used_before = stats.used_bytes;
  const size_t live_before = stats.live_blocks;
  auto result = op(r->heap);
  const size_t elsewhere = used_bytes_ - used_before;
  used_bytes_ = elsewhere + stats.used_bytes;
  live_blocks_ = live_blocks_ - live_before + stats.live_blocks;
  if (kMayRaisePeak) {
    peak_used_bytes_ = std::max(peak_used_bytes_,
                                UsedBytes() - stats.used_bytes + high_water());
  }
  index_.Update(&r->entry, r->IndexBin());
  return result;
}

inline bool RegionSet::FreeIn(Region* r, void* ptr) noexcept {
  bool freed;
  if (ABSL_PREDICT_FALSE(charged_frees_)) {
    const size_t used_before = r->heap.Stats().used_bytes;
    freed = InRegion<PeakEffect::kNone>(
        r, [ptr](Heap& heap) { return heap.Free(ptr); });
    if (budget_ != nullptr) {
      budget_->Refund(used_before - r->heap.Stats().used_bytes);
    }
    if (freed && !ledger_.empty()) CreditFreed(ptr);
  } else {
    freed = InRegion<PeakEffect::kNone>(
        r, [ptr](Heap& heap) { return heap.Free(ptr); });
  }
  if (ABSL_PREDICT_FALSE(r->retiring) && r->heap.Stats().live_blocks == 0) {
    reap_candidate_ = r;
  }
  return freed;
}

ManagementResult RegionSet::Retire(void* begin, RetiredHandler handler,
                                   void* context) {
  auto it = SlotOf(Addr(begin));
  if (it == regions_.end()) return {ManagementError::kNoRegion, begin};
  Region& r = *it->region;
  if (r.retiring) return {ManagementError::kRetiring, begin};
  r.retiring = true;
  r.retired_handler = handler;
  r.retired_context = context;
  r.allocatable = false;
  // Lock-free readers (per-thread caches) see it leave its owner: their
  // hints drop it, they park none of its blocks and pop none as their own.
  table_->SetOwner(r.first_payload, RegionTable::RetiringOwner());
  Refile();
  if (r.heap.Stats().live_blocks == 0) {
    reap_candidate_ = &r;
    ReapRetired();
  }
  return {};
}

ManagementResult RegionSet::CancelRetire(void* begin) {
  auto it = SlotOf(Addr(begin));
  if (it == regions_.end()) return {ManagementError::kNoRegion, begin};
  Region& r = *it->region;
  if (!r.retiring) return {ManagementError::kNotRetiring, begin};
  r.retiring = false;
  r.allocatable = true;
  table_->SetOwner(r.first_payload, owner_);
  Refile();
  return {};
}

void RegionSet::ReapRetired() noexcept {
  Region* const r = reap_candidate_;
  reap_candidate_ = nullptr;
  const RetiredRegion retired{reinterpret_cast<void*>(r->begin),
                              reinterpret_cast<void*>(r->end),
                              r->retired_handler, r->retired_context};
  // Cannot fail for lack of live blocks; a region whose free block is
  // damaged stays, retiring (its damage was reported).
  if (RemoveRegion(retired.begin).ok()) retired_.push_back(retired);
}

void RegionSet::TakeRetired(
    std::vector<RetiredRegion, ArenaAllocator<RetiredRegion>>* out) {
  out->clear();
  out->swap(retired_);
}

void RegionSet::UseBudget(Budget* budget) noexcept {
  if (budget == budget_) return;
  const size_t used = UsedBytes();
  if (budget_ != nullptr) budget_->Refund(used);
  budget_ = budget;
  if (budget_ != nullptr) budget_->ForceCharge(used);
  NoteChargedFrees();
}

// --- Attribution ---

void RegionSet::CreditAccount(const Attribution& attribution,
                              size_t span) noexcept {
  attribution.account->bytes -= span;
  attributed_bytes_ -= span;
  if (attribution.account->budget != nullptr) {
    attribution.account->budget->RefundWithoutParent(span);
  }
}

void RegionSet::CreditFreed(const void* ptr) noexcept {
  auto entry = ledger_.find(ptr);
  if (entry == ledger_.end()) return;
  CreditAccount(entry->second, entry->second.span);
  ledger_.erase(entry);
  NoteChargedFrees();
}

void RegionSet::Reattribute(const void* from, const void* to,
                            const Region& r) noexcept {
  auto node = ledger_.extract(from);
  if (node.empty()) return;
  Attribution attribution = node.mapped();
  // In place, the span never grows (ReallocateByMove moves a growing
  // attributed block).
  const size_t span = r.heap.BlockSpan(to);
  CreditAccount(attribution, attribution.span - span);
  attribution.span = span;
  ledger_.emplace(to, attribution);
}

void RegionSet::ForgetAccount(ChargeAccount* account) noexcept {
  if (!ledger_.empty()) {
    for (auto entry = ledger_.begin(); entry != ledger_.end();) {
      if (entry->second.account == account) {
        attributed_bytes_ -= entry->second.span;
        ledger_.erase(entry++);
      } else {
        ++entry;
      }
    }
    NoteChargedFrees();
  }
  account->bytes = 0;
}

void* RegionSet::AllocateFor(ChargeAccount* account, size_t alignment,
                             size_t bytes) noexcept {
  if (account == nullptr) return AllocateAligned(alignment, bytes);
  if (!tlsf::IsPowerOfTwo(alignment) || alignment > Heap::kMaxAlignment) {
    return nullptr;
  }
  if (alignment < tlsf::kAlignment) alignment = tlsf::kAlignment;
  const size_t peak_before = peak_used_bytes_;
  void* const p = AllocateWith(alignment, bytes);  // charges budget_
  if (p == nullptr) return nullptr;
  Region* const r = FindRegion(p);
  const size_t span = r->heap.BlockSpan(p);
  if (account->budget != nullptr &&
      !account->budget->TryChargeWithoutParent(span)) {
    // Refused: the heaps, the set's budget and the peak as they were.
    const size_t used_before = r->heap.Stats().used_bytes;
    InRegion<PeakEffect::kNone>(r, [p](Heap& heap) { return heap.Free(p); });
    if (budget_ != nullptr) {
      budget_->Refund(used_before - r->heap.Stats().used_bytes);
    }
    peak_used_bytes_ = peak_before;
    limit_refused_ = true;
    return nullptr;
  }
  ledger_.emplace(p, Attribution{account, span});
  account->bytes += span;
  attributed_bytes_ += span;
  NoteChargedFrees();
  return p;
}

// --- Allocation ---

namespace {

// The heap call of an allocation with `alignment` (kAlignment: plain).
struct HeapAllocation {
  size_t alignment;
  size_t bytes;

  void* operator()(Heap& heap) const noexcept {
    return alignment <= tlsf::kAlignment
               ? heap.Allocate(bytes)
               : heap.AllocateAligned(alignment, bytes);
  }
};

}  // namespace

void* RegionSet::AllocateIndexed(size_t search_span, size_t alignment,
                                 size_t bytes) noexcept {
  const HeapAllocation allocate{alignment, bytes};
  if (Region* r = RegionFor(search_span)) {
    if (void* p = InRegion<PeakEffect::kAtEnd>(r, allocate)) return p;
  }
  // No region has a bin above the request's; regions filed exactly under its
  // own bin may still hold a block that fits.
  const int own = FlatBin(tlsf::BinForSpan(search_span));
  RegionIndex::Entry* entry = index_.First(own);
  for (int i = 0; entry != nullptr && i < kRegionFallback; ++i) {
    RegionIndex::Entry* next = entry->next;  // InRegion may refile entry
    if (void* p = InRegion<PeakEffect::kAtEnd>(
            static_cast<Region*>(entry->owner), allocate)) {
      return p;
    }
    entry = next;
  }
  return nullptr;
}

inline size_t RegionSet::RequestSpan(size_t bytes) const noexcept {
  // tlsf::SpanForRequest(bytes + canary_extra_), as the heap lays the block
  // out, without a branch on the debug modes. (Under canaries the heap takes
  // max(bytes, 1), which has the same span.) bytes <= max_request_ keeps it
  // below kMaxSpan.
  const size_t span = tlsf::AlignUp(
      bytes + canary_extra_ + tlsf::kBlockOverhead, tlsf::kAlignment);
  return span < tlsf::kMinFreeSpan ? tlsf::kMinFreeSpan : span;
}

// Inline: with Allocate's constant alignment it folds into one heap call.
inline void* RegionSet::AllocateWith(size_t alignment, size_t bytes) noexcept {
  if (ABSL_PREDICT_FALSE(budget_ != nullptr)) {
    return AllocateCharged(alignment, bytes);
  }
  return AllocateUncharged(alignment, bytes);
}

void* RegionSet::AllocateCharged(size_t alignment, size_t bytes) noexcept {
  const size_t peak_before = peak_used_bytes_;
  void* const p = AllocateUncharged(alignment, bytes);
  if (p == nullptr) return nullptr;
  Region* const r = FindRegion(p);
  if (budget_->TryCharge(r->heap.BlockSpan(p))) return p;
  // Refused: the heaps and the aggregate peak as they were.
  InRegion<PeakEffect::kNone>(r, [p](Heap& heap) { return heap.Free(p); });
  peak_used_bytes_ = peak_before;
  limit_refused_ = true;
  return nullptr;
}

inline void* RegionSet::AllocateUncharged(size_t alignment,
                                          size_t bytes) noexcept {
  void* p = nullptr;
  if (bytes <= max_request_) {
    if (solo_ != nullptr) {
      // With one region to choose from, its heap's own search (a good fit,
      // then its own bin) decides, as the index would.
      p = InRegion<PeakEffect::kAtEnd>(solo_, HeapAllocation{alignment, bytes});
    } else {
      // Room for the block wherever the alignment puts it.
      const size_t search_span =
          RequestSpan(bytes) + alignment - tlsf::kAlignment;
      if (search_span < tlsf::kMaxSpan) {
        p = AllocateIndexed(search_span, alignment, bytes);
      }
    }
  }
  return p;
}

void* RegionSet::Allocate(size_t bytes) noexcept {
  return AllocateWith(tlsf::kAlignment, bytes);
}

void* RegionSet::AllocateAligned(size_t alignment, size_t bytes) noexcept {
  if (!tlsf::IsPowerOfTwo(alignment) || alignment > Heap::kMaxAlignment) {
    return nullptr;
  }
  if (alignment <= tlsf::kAlignment) return Allocate(bytes);
  return AllocateWith(alignment, bytes);
}

size_t RegionSet::AllocateBatch(size_t bytes, size_t count,
                                void** out) noexcept {
  if (budget_ != nullptr) return AllocateBatchCharged(bytes, count, out);
  size_t got = 0;
  while (got < count) {
    void* p = Allocate(bytes);
    if (p == nullptr) break;
    out[got++] = p;
  }
  return got;
}

size_t RegionSet::AllocateBatchCharged(size_t bytes, size_t count,
                                       void** out) noexcept {
  const size_t peak_before = peak_used_bytes_;
  size_t got = 0;
  size_t spans = 0;
  while (got < count) {
    void* p = AllocateUncharged(tlsf::kAlignment, bytes);
    if (p == nullptr) break;
    Region* r = solo_;  // the one region, if it served the block
    if (r == nullptr || Addr(p) < r->first_payload || Addr(p) >= r->end) {
      r = FindRegion(p);
    }
    spans += r->heap.BlockSpan(p);
    out[got++] = p;
  }
  if (got == 0 || budget_->TryCharge(spans)) return got;
  // Refused as a whole: the heaps and the peak as they were, then block by
  // block, so that the blocks that fit are still had.
  while (got > 0) {
    void* const p = out[--got];
    InRegion<PeakEffect::kNone>(FindRegion(p),
                                [p](Heap& heap) { return heap.Free(p); });
  }
  peak_used_bytes_ = peak_before;
  while (got < count) {
    void* p = AllocateCharged(tlsf::kAlignment, bytes);
    if (p == nullptr) break;
    out[got++] = p;
  }
  return got;
}

inline bool RegionSet::FreeFound(Region* r, void* ptr) noexcept {
  if (!r->MayHoldPayload(ptr)) {
    Report(MempError::kInvalidFree, ptr);
    return false;
  }
  const bool freed = FreeIn(r, ptr);
  if (freed && !tags_.empty()) tags_.erase(ptr);
  return freed;
}

inline RegionSet::Region* RegionSet::SoloHolding(
    const void* ptr) const noexcept {
  Region* const r = solo_;
  const uintptr_t at = Addr(ptr);
  return r != nullptr && at >= r->first_payload && at < r->end &&
                 tags_.empty() && !charged_frees_
             ? r
             : nullptr;
}

bool RegionSet::Free(void* ptr) noexcept {
  // The heap's free is all there is to do (a tail call, no registers saved).
  if (Region* const r = SoloHolding(ptr)) return r->heap.Free(ptr);
  return FreeSlow(ptr);
}

bool RegionSet::FreeSlow(void* ptr) noexcept {
  if (ptr == nullptr) return true;
  Region* const r = FindRegion(ptr);
  if (r == nullptr) {
    Report(MempError::kForeignPointer, ptr);
    return false;
  }
  const bool freed = FreeFound(r, ptr);
  MaybeReapRetired();
  return freed;
}

RegionSet::FreeOutcome RegionSet::TryFree(void* ptr) noexcept {
  if (Region* const r = SoloHolding(ptr)) {
    return r->heap.Free(ptr) ? FreeOutcome::kFreed : FreeOutcome::kRefused;
  }
  return TryFreeSlow(ptr);
}

RegionSet::FreeOutcome RegionSet::TryFreeSlow(void* ptr) noexcept {
  Region* const r = FindRegion(ptr);
  if (r == nullptr) return FreeOutcome::kOutside;
  const bool freed = FreeFound(r, ptr);
  MaybeReapRetired();
  return freed ? FreeOutcome::kFreed : FreeOutcome::kRefused;
}

void* RegionSet::Reallocate(void* ptr, size_t bytes, bool* no_room) noexcept {
  void* const p = ReallocateUnreaped(ptr, bytes, no_room);
  MaybeReapRetired();  // a move may have emptied a retiring region
  return p;
}

void* RegionSet::ReallocateUnreaped(void* ptr, size_t bytes,
                                    bool* no_room) noexcept {
  bool ignored = false;
  if (no_room == nullptr) no_room = &ignored;
  *no_room = false;
  if (ptr == nullptr) {
    void* p = Allocate(bytes);
    *no_room = p == nullptr;
    return p;
  }
  Region* const r = FindRegion(ptr);
  if (r == nullptr) {
    Report(MempError::kForeignPointer, ptr);
    return nullptr;
  }
  if (!r->MayHoldPayload(ptr)) {
    Report(MempError::kInvalidFree, ptr);
    return nullptr;
  }
  if (bytes == 0) {
    Free(ptr);
    return nullptr;
  }
  const size_t old_usable = r->heap.UsableSize(ptr);
  if (old_usable == 0) {
    // Not a live block. Heap::Free only reports such a pointer (as invalid
    // or double free) and changes nothing.
    FreeIn(r, ptr);
    return nullptr;
  }
  if (ABSL_PREDICT_FALSE(charged_frees_ || r->retiring) &&
      (budget_ != nullptr || r->retiring || AccountOf(ptr) != nullptr)) {
    // Under a budget (the set's or the block's account) the new block is
    // charged before the old is refunded; a retiring region's block never
    // grows in place (it gets no new bytes).
    return ReallocateByMove(r, ptr, bytes, no_room);
  }
  const uint64_t misuse_before = r->heap.Stats().invalid_frees;
  void* moved = InRegion<PeakEffect::kTransient>(
      r, [ptr, bytes](Heap& heap) { return heap.Reallocate(ptr, bytes); });
  if (moved == nullptr && r->heap.Stats().invalid_frees != misuse_before) {
    return nullptr;  // the heap found the block damaged and reported it
  }
  if (moved == nullptr) {
    // This region cannot hold the new size: move to another one, keeping
    // the block's alignment.
    moved = AllocateAligned(r->heap.BlockAlignment(ptr), bytes);
    if (moved == nullptr) {
      *no_room = true;  // ptr is unchanged
      return nullptr;
    }
    std::memcpy(moved, ptr, std::min(old_usable, bytes));
    FreeIn(r, ptr);
  }
  if (moved != ptr && !tags_.empty()) {
    auto tag = tags_.extract(ptr);
    if (!tag.empty()) tags_.emplace(moved, tag.mapped());
  }
  return moved;
}

void* RegionSet::ReallocateByMove(Region* r, void* ptr, size_t bytes,
                                  bool* no_room) noexcept {
  const size_t old_usable = r->heap.UsableSize(ptr);
  ChargeAccount* const account = AccountOf(ptr);
  void* moved = nullptr;
  if (bytes <= old_usable) {
    // Shrinks (or keeps) the block in place: its span never grows.
    const size_t used_before = r->heap.Stats().used_bytes;
    const uint64_t misuse_before = r->heap.Stats().invalid_frees;
    moved = InRegion<PeakEffect::kTransient>(
        r, [ptr, bytes](Heap& heap) { return heap.Reallocate(ptr, bytes); });
    if (budget_ != nullptr) {
      budget_->Refund(used_before - r->heap.Stats().used_bytes);
    }
    if (moved != nullptr && account != nullptr) Reattribute(ptr, moved, *r);
    if (moved == nullptr && r->heap.Stats().invalid_frees != misuse_before) {
      return nullptr;  // the heap found the block damaged and reported it
    }
  }
  if (moved == nullptr) {
    // Charged (to the account too, which keeps the block).
    moved = AllocateFor(account, r->heap.BlockAlignment(ptr), bytes);
    if (moved == nullptr) {
      *no_room = true;  // ptr is unchanged
      return nullptr;
    }
    std::memcpy(moved, ptr, std::min(old_usable, bytes));
    FreeIn(r, ptr);  // refunded (and its account credited)
  }
  if (moved != ptr && !tags_.empty()) {
    auto tag = tags_.extract(ptr);
    if (!tag.empty()) tags_.emplace(moved, tag.mapped());
  }
  return moved;
}

size_t RegionSet::UsableSize(const void* ptr) const noexcept {
  const Region* const r = FindRegion(ptr);
  return r != nullptr && r->MayHoldPayload(ptr) ? r->heap.UsableSize(ptr) : 0;
}

void RegionSet::SetTag(const void* ptr, const BlockTag& tag) {
  tags_[ptr] = tag;
}

// --- Observation ---

void RegionSet::ResetPeak() noexcept {
  peak_used_bytes_ = UsedBytes();
  for (auto& [key, r] : regions_) r->heap.ResetPeak();
}

RegionStatsList RegionSet::ProbeRegions() const {
  DebugCheckInvariants();  // a probe: lookup_ may be filled by now
  RegionStatsList out;
  out.reserve(regions_.size());
  for (const auto& [key, r] : regions_) {
    const HeapStats s = r->heap.Stats();
    RegionStats region;
    region.begin = reinterpret_cast<void*>(r->begin);
    region.end = reinterpret_cast<void*>(r->end);
    region.capacity_bytes = s.capacity_bytes;
    region.used_bytes = s.used_bytes;
    region.free_bytes = s.free_bytes;
    region.lost_bytes = s.lost_bytes;
    region.peak_used_bytes = s.peak_used_bytes;
    region.largest_allocatable = r->heap.LargestAllocatable();
    region.live_blocks = s.live_blocks;
    region.failed_allocations = s.failed_allocations;
    region.retiring = r->retiring;
    out.push_back(region);
  }
  return out;
}

void RegionSet::CheckRegion(const Region& r, bool with_tags,
                            tlsf::CheckFindings* findings) const noexcept {
  void* const begin = reinterpret_cast<void*>(r.begin);
  void* const end = reinterpret_cast<void*>(r.end);
  tlsf::CheckFindings heap_findings;
  r.heap.Check(&heap_findings);
  if (!heap_findings.ok()) {
    // A debug finding is named with the block's tag, when it has one.
    bool found = false;
    MempReport first;
    r.heap.FindDamage(r.pool, [&](const tlsf::HeapReport& report) {
      if (!found) first = FromHeapReport(report);
      found = true;
    });
    char tagged[kMempReportBytes] = "";
    if (found) DescribeMempReportTo(first, tagged, sizeof(tagged));
    findings->AddWithin(heap_findings, "region [%p, %p): %s%s", begin, end,
                        tagged, found ? "; heap check: " : "");
    return;
  }
  if (r.entry.bin != IndexedBin(r)) {
    findings->Add("region [%p, %p) is indexed under bin %d, its heap says %d",
                  begin, end, r.entry.bin, IndexedBin(r));
    return;
  }
  if (!with_tags) return;
  for (const auto& [ptr, tag] : tags_) {
    const uintptr_t at = Addr(ptr);
    if (at >= r.begin && at < r.end && r.heap.UsableSize(ptr) == 0) {
      findings->Add("region [%p, %p): tag for %p, which is not a live block",
                    begin, end, ptr);
    }
  }
}

ManagementResult RegionSet::CheckRegionOf(
    const void* ptr, tlsf::CheckFindings* damage) const noexcept {
  const Region* const r = FindRegion(ptr);
  if (r == nullptr) return {ManagementError::kNotInRegion, ptr};
  tlsf::CheckFindings own;
  tlsf::CheckFindings* const findings = damage != nullptr ? damage : &own;
  const size_t found_before = findings->count();
  CheckRegion(*r, /*with_tags=*/true, findings);
  if (findings->count() == found_before) return {};
  return {ManagementError::kCorrupt, ptr};
}

absl::Status CheckToStatus(ManagementResult result,
                           const tlsf::CheckFindings& findings) {
  return findings.ok() ? result.ToStatus() : findings.ToStatus();
}

absl::Status RegionSet::Check() const {
  tlsf::CheckFindings findings;
  Check(&findings);
  return findings.ToStatus();
}

void RegionSet::Check(tlsf::CheckFindings* findings) const noexcept {
  const size_t found_before = findings->count();
  size_t capacity = 0, used = 0, live = 0;
  for (const auto& [key, r] : regions_) {
    // The tags are checked once for all regions, below.
    CheckRegion(*r, /*with_tags=*/false, findings);
    const HeapStats s = r->heap.Stats();
    capacity += s.capacity_bytes;
    used += s.used_bytes;
    live += s.live_blocks;
  }
  // A damaged region's counters are already named by its heap's check.
  if (findings->count() != found_before) return;
  if (capacity != capacity_bytes_ || used != UsedBytes() ||
      live != LiveBlocks() || peak_used_bytes_ < used) {
    findings->Add(
        "aggregate counters disagree with the regions: capacity %zu/%zu used "
        "%zu/%zu live %zu/%zu peak %zu",
        capacity_bytes_, capacity, UsedBytes(), used, LiveBlocks(), live,
        peak_used_bytes_);
  }
  for (const auto& [ptr, tag] : tags_) {
    if (UsableSize(ptr) == 0) {
      findings->Add("tag for %p, which is not a live block", ptr);
    }
  }
}

namespace {

// One line of RegionSet::List, formatted on the stack (List allocates
// nothing): appended to printf-style, cut at kListLineBytes - 1 characters,
// always NUL-terminated.
class ListLine {
 public:
  ListLine() { text_[0] = '\0'; }
  ListLine(const ListLine&) = delete;
  ListLine& operator=(const ListLine&) = delete;

  void Append(const char* format, ...) ABSL_PRINTF_ATTRIBUTE(2, 3) {
    va_list args;
    va_start(args, format);
    const int n =
        std::vsnprintf(text_ + length_, sizeof(text_) - length_, format, args);
    va_end(args);
    if (n > 0) {
      length_ = std::min(sizeof(text_) - 1, length_ + static_cast<size_t>(n));
    }
  }
  absl::string_view view() const { return absl::string_view(text_, length_); }

 private:
  char text_[kListLineBytes];
  size_t length_ = 0;
};

}  // namespace

void RegionSet::List(absl::FunctionRef<void(absl::string_view)> sink) const {
  int index = 0;
  for (const auto& [key, r] : regions_) {
    const HeapStats s = r->heap.Stats();
    {
      ListLine line;
      line.Append(
          "region %d [%p, %p): capacity %zu, used %zu, free %zu, peak %zu, "
          "live blocks %zu, largest %zu, failed %llu",
          index++, reinterpret_cast<void*>(r->begin),
          reinterpret_cast<void*>(r->end), s.capacity_bytes, s.used_bytes,
          s.free_bytes, s.peak_used_bytes, s.live_blocks,
          r->heap.LargestAllocatable(),
          static_cast<unsigned long long>(s.failed_allocations));
      sink(line.view());
    }
    r->heap.WalkPool(r->pool, [&](const tlsf::BlockInfo& block) {
      if (!block.used) return true;
      ListLine line;
      line.Append("  %p %8zu bytes", block.ptr, block.size);
      if (auto it = tags_.find(block.ptr); it != tags_.end()) {
        const BlockTag& tag = it->second;
        line.Append("  %s:%lu thread %llu%s%s",
                    tag.file != nullptr ? tag.file : "?", tag.line,
                    static_cast<unsigned long long>(tag.thread_id),
                    tag.message != nullptr ? " " : "",
                    tag.message != nullptr ? tag.message : "");
      }
      sink(line.view());
      return true;
    });
  }
  const MempStats t = Probe();
  {
    ListLine line;
    line.Append(
        "total: %zu regions, capacity %zu, used %zu, free %zu, peak %zu, live "
        "blocks %zu, failed allocations %llu, invalid frees %llu",
        t.region_count, t.capacity_bytes, t.used_bytes, t.free_bytes,
        t.peak_used_bytes, t.live_blocks,
        static_cast<unsigned long long>(t.failed_allocations),
        static_cast<unsigned long long>(t.invalid_frees));
    sink(line.view());
  }
  // As absl::Status::ToString() writes CheckToStatus's DataLoss.
  tlsf::CheckFindings findings;
  Check(&findings);
  ListLine line;
  if (findings.ok()) {
    line.Append("integrity check: OK");
  } else {
    line.Append("integrity check: DATA_LOSS: %s (%zu problem(s) found)",
                findings.text(), findings.count());
  }
  sink(line.view());
}

}  // namespace fmemp
