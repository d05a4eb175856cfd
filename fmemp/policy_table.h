// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/policy_table.h
//
// The C API's one table from a policy number (FMempPolicy) to the front-end
// that serves it and to what the C API offers on it. fmemp.cc reads nothing
// else to create, dispatch to, validate or fork-lock a policy's front-end,
// or to decide whether a policy supports a call: a new policy is one row in
// CApiPolicies (and its enumerator in fmemp.h). C++ users do not need this
// header; they name a front-end type directly (memp.h, thread_cache.h,
// thread_heap.h).
//
//   CApiPolicies::FrontEnds front_ends;
//   if (!front_ends.Create(policy)) ...;          // arena exhausted
//   void* p = front_ends.Visit<void*>(policy, nullptr,
//                                     [](auto& m) { return m.Allocate(64); });
//   using Row = CApiPolicies::RowOf<Memp<sync::Mutex>>;
//   if constexpr (Row::Has(Offers::kThreadHeaps)) ...;
//
// Guarantees
// * Everything about a row is known at compile time: IsPolicy and RowOf
//   are constexpr, and a capability check is an `if constexpr`, so a call a
//   policy does not offer compiles to its refusal alone.
// * Visit keeps the C API's hot path short: the rows with per-thread caches
//   (the default FMEMP_POLICY_THREAD_CACHE, then THREAD_HEAPS, whose hits
//   are a few dozen instructions) are a compare each and their calls are
//   inlined into the caller; every other policy takes a lock anyway and is
//   reached through one out-of-line call, which keeps their code (and the
//   frame it needs) out of every caller.
// * Thread safety (FrontEnds): Create and the destructor must not run
//   concurrently with any other member. Visit and the ForEachCreated walks
//   may run concurrently with each other once the Create that made the
//   front-end they reach happens-before them (the C API publishes it with
//   a release store of its active policy, read with acquire).
// * Memory: each front-end is an ArenaNew record (fmemp/metadata_arena.h),
//   never operator new; the table itself is a tuple of pointers.

#ifndef FMEMP_FMEMP_POLICY_TABLE_H_
#define FMEMP_FMEMP_POLICY_TABLE_H_

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/base/attributes.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/metadata_arena.h"
#include "fmemp/thread_cache.h"
#include "fmemp/thread_heap.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp {

// What the C API offers on a policy beyond the calls every front-end
// serves (malloc, free, probes, regions, checks, handlers, limits,
// retirement): a bit set,
// combined with operator|.
enum class Offers : unsigned {
  kNone = 0,
  // Freed blocks may be parked per thread: FMempUsage.cached_bytes can be
  // nonzero after a free, and used excludes them; FMempFlushThreadCache
  // hands the calling thread's back (the front-end has FlushThisThread()).
  // Giving every thread's back is kCacheDrain.
  kThreadCaches = 1u << 0,
  // FMempDrainThreadCaches hands every thread's parked blocks back to the
  // regions, and FMempProbeRegion drains before it reads a region; without
  // it they do nothing. The front-end has DrainAllCaches(). Requires
  // kThreadCaches.
  kCacheDrain = 1u << 1,
  // Threads may own heaps: FMempBindThread(WithFlags), FMempUnbindThread,
  // FMempSyncThreadHeap, FMempProbeThreadHeap (FMEMP_ERR_NOT_SUPPORTED
  // without it) and FMempThreadHeapCount (0 without it). The front-end has
  // BindThisThread, UnbindThisThread, SyncThisThread and ProbeThreadHeaps.
  kThreadHeaps = 1u << 2,
};

constexpr Offers operator|(Offers a, Offers b) {
  return static_cast<Offers>(static_cast<unsigned>(a) |
                             static_cast<unsigned>(b));
}

namespace policy_table_internal {

// Whether FrontEnd has what each Offers bit promises (the members named in
// its comment): PolicyRow asserts it at compile time.
template <typename FrontEnd, typename = void>
struct HasFlush : std::false_type {};
template <typename FrontEnd>
struct HasFlush<
    FrontEnd,
    std::void_t<decltype(std::declval<FrontEnd&>().FlushThisThread())>>
    : std::true_type {};
template <typename FrontEnd, typename = void>
struct HasDrain : std::false_type {};
template <typename FrontEnd>
struct HasDrain<
    FrontEnd, std::void_t<decltype(std::declval<FrontEnd&>().DrainAllCaches())>>
    : std::true_type {};
template <typename FrontEnd, typename = void>
struct HasPools : std::false_type {};
template <typename FrontEnd>
struct HasPools<
    FrontEnd,
    std::void_t<decltype(std::declval<FrontEnd&>().BindThisThread(nullptr)),
                decltype(std::declval<FrontEnd&>().UnbindThisThread()),
                decltype(std::declval<FrontEnd&>().SyncThisThread()),
                decltype(std::declval<FrontEnd&>().ProbeThreadHeaps())>>
    : std::true_type {};

}  // namespace policy_table_internal

// One row: policy kPolicy is served by a FrontEnd (default-constructed, one
// per FMemp) and offers kOffers. A row is consistent, or does not compile:
// each bit it offers names members its front-end has (see Offers), and a
// cache drain comes with thread caches.
template <FMempPolicy kPolicyValue, typename FrontEndType, Offers kOffersValue>
struct PolicyRow {
  static constexpr FMempPolicy kPolicy = kPolicyValue;
  using FrontEnd = FrontEndType;
  static constexpr Offers kOffers = kOffersValue;

  // Whether this row offers every bit of `wanted`.
  static constexpr bool Has(Offers wanted) {
    return (static_cast<unsigned>(kOffers) & static_cast<unsigned>(wanted)) ==
           static_cast<unsigned>(wanted);
  }

  static_assert(!Has(Offers::kCacheDrain) || Has(Offers::kThreadCaches),
                "a row that offers a cache drain must have thread caches");
  static_assert(!Has(Offers::kThreadCaches) ||
                    policy_table_internal::HasFlush<FrontEnd>::value,
                "kThreadCaches: the front-end must have FlushThisThread()");
  static_assert(!Has(Offers::kCacheDrain) ||
                    policy_table_internal::HasDrain<FrontEnd>::value,
                "kCacheDrain: the front-end must have DrainAllCaches()");
  static_assert(!Has(Offers::kThreadHeaps) ||
                    policy_table_internal::HasPools<FrontEnd>::value,
                "kThreadHeaps: the front-end must have BindThisThread, "
                "UnbindThisThread, SyncThisThread and ProbeThreadHeaps");

  // Whether PolicyTable::FrontEnds::Visit reaches this row inline: a cache
  // hit is a few dozen instructions and takes no lock, so a call would
  // show; every other front-end takes a lock anyway.
  static constexpr bool kVisitedInline = Has(Offers::kThreadCaches);
};

namespace policy_table_internal {

// The index of the first row whose front-end is FrontEnd, or the row count.
template <typename FrontEnd, typename... Rows>
constexpr size_t IndexOfFrontEnd() {
  constexpr bool kMatches[] = {
      std::is_same_v<FrontEnd, typename Rows::FrontEnd>..., false};
  for (size_t i = 0; i < sizeof...(Rows); ++i) {
    if (kMatches[i]) return i;
  }
  return sizeof...(Rows);
}

// The index of the first row of `policy`, or the row count.
template <typename... Rows>
constexpr size_t IndexOfPolicy(FMempPolicy policy) {
  constexpr FMempPolicy kPolicies[] = {Rows::kPolicy..., FMEMP_POLICY_MUTEX};
  for (size_t i = 0; i < sizeof...(Rows); ++i) {
    if (kPolicies[i] == policy) return i;
  }
  return sizeof...(Rows);
}

// Whether no two rows share a policy or a front-end type.
template <typename... Rows>
constexpr bool RowsAreUnique() {
  size_t index = 0;
  bool unique = true;
  ((unique = unique && IndexOfPolicy<Rows...>(Rows::kPolicy) == index &&
             IndexOfFrontEnd<typename Rows::FrontEnd, Rows...>() == index,
    ++index),
   ...);
  return unique;
}

}  // namespace policy_table_internal

// A table of PolicyRows. Rows with per-thread caches (Offers::kThreadCaches,
// whose hit takes no lock) are the ones Visit tests inline, in table order;
// the others are reached out of line. Policies and front-end types are
// unique across rows (a front-end type names its row: RowOf).
template <typename... Rows>
class PolicyTable {
  using RowTuple = std::tuple<Rows...>;

 public:
  static constexpr size_t kRowCount = sizeof...(Rows);

  template <size_t kIndex>
  using RowAt = std::tuple_element_t<kIndex, RowTuple>;

  // Whether `policy` names a row. O(rows), constexpr; any int is accepted
  // (C callers can pass values outside the enum).
  static constexpr bool IsPolicy(int policy) {
    return ((policy == static_cast<int>(Rows::kPolicy)) || ...);
  }

  // The row whose front-end is FrontEnd (cv and reference ignored); a
  // compile error if there is none.
  template <typename FrontEnd>
  using RowOf =
      RowAt<policy_table_internal::IndexOfFrontEnd<std::decay_t<FrontEnd>,
                                                   Rows...>()>;

  // fn(Row{}) for every row, in table order.
  template <typename Fn>
  static void ForEachRow(Fn fn) {
    (fn(Rows{}), ...);
  }

  // One front-end per row, created on the first Create of its policy and
  // destroyed with this object. See the top of the file for thread safety.
  class FrontEnds {
   public:
    // Creates the front-end of `policy` unless it exists. False when
    // `policy` names no row or the metadata arena is exhausted (nothing
    // changed). O(rows).
    bool Create(int policy) {
      bool created = false;
      ForEachIndex([&](auto index) {
        constexpr size_t kIndex = decltype(index)::value;
        using Row = RowAt<kIndex>;
        if (policy != static_cast<int>(Row::kPolicy)) return;
        auto& slot = std::get<kIndex>(front_ends_);
        if (slot == nullptr) slot.reset(ArenaNew<typename Row::FrontEnd>());
        created = slot != nullptr;
      });
      return created;
    }

    // Returns fn(front-end of `policy`), or `otherwise` when `policy` names
    // no row. REQUIRES: Create(policy) returned true (see the top of the
    // file for the ordering). A row with per-thread caches costs a compare
    // per such row up to its own, with fn inlined into the caller; the
    // others, after those compares, one out-of-line call and a compare per
    // row before theirs.
    template <typename R, typename Fn>
    ABSL_ATTRIBUTE_ALWAYS_INLINE R Visit(int policy, R otherwise, Fn fn) {
      return VisitInline<0, R, Fn>(policy, otherwise, fn);
    }

    // fn(front-end) for every front-end created so far, in table order
    // (ForEachCreated) or the reverse (ForEachCreatedReversed): fork
    // handlers lock in one order and unlock in the other.
    template <typename Fn>
    void ForEachCreated(Fn fn) {
      ForEachIndex([&](auto index) {
        auto& slot = std::get<decltype(index)::value>(front_ends_);
        if (slot != nullptr) fn(*slot);
      });
    }
    template <typename Fn>
    void ForEachCreatedReversed(Fn fn) {
      ForEachIndex([&](auto index) {
        auto& slot =
            std::get<kRowCount - 1 - decltype(index)::value>(front_ends_);
        if (slot != nullptr) fn(*slot);
      });
    }

   private:
    // fn(std::integral_constant<size_t, i>) for i = 0 .. kRowCount-1.
    template <typename Fn>
    static void ForEachIndex(Fn fn) {
      ForEachIndexIn(fn, std::make_index_sequence<kRowCount>());
    }
    template <typename Fn, size_t... kIndices>
    static void ForEachIndexIn(Fn& fn, std::index_sequence<kIndices...>) {
      (fn(std::integral_constant<size_t, kIndices>()), ...);
    }

    // The inline rows, compared in table order; then the out-of-line call.
    template <size_t kIndex, typename R, typename Fn>
    ABSL_ATTRIBUTE_ALWAYS_INLINE R VisitInline(int policy, R otherwise,
                                               Fn& fn) {
      if constexpr (kIndex == kRowCount) {
        return VisitOutOfLine<R, Fn>(policy, otherwise, fn);
      } else {
        using Row = RowAt<kIndex>;
        if constexpr (Row::kVisitedInline) {
          if (policy == static_cast<int>(Row::kPolicy)) {
            return fn(*std::get<kIndex>(front_ends_));
          }
        }
        return VisitInline<kIndex + 1, R, Fn>(policy, otherwise, fn);
      }
    }

    // Every row not visited inline, compared in table order, each call of
    // fn inlined here.
    template <typename R, typename Fn>
    ABSL_ATTRIBUTE_NOINLINE R VisitOutOfLine(int policy, R otherwise, Fn fn) {
      return VisitFrom<0, R, Fn>(policy, otherwise, fn);
    }
    template <size_t kIndex, typename R, typename Fn>
    ABSL_ATTRIBUTE_ALWAYS_INLINE R VisitFrom(int policy, R otherwise, Fn& fn) {
      if constexpr (kIndex == kRowCount) {
        return otherwise;
      } else {
        using Row = RowAt<kIndex>;
        if constexpr (!Row::kVisitedInline) {
          if (policy == static_cast<int>(Row::kPolicy)) {
            return fn(*std::get<kIndex>(front_ends_));
          }
        }
        return VisitFrom<kIndex + 1, R, Fn>(policy, otherwise, fn);
      }
    }

    std::tuple<ArenaPtr<typename Rows::FrontEnd>...> front_ends_;
  };

 private:
  static_assert(policy_table_internal::RowsAreUnique<Rows...>(),
                "each policy and each front-end type has one row");
};

// The C API's policies: the one place a policy number becomes a front-end
// type. The two rows with per-thread caches (FMempInit's THREAD_CACHE, then
// THREAD_HEAPS) are visited inline.
using CApiPolicies = PolicyTable<
    PolicyRow<FMEMP_POLICY_MUTEX, Memp<sync::Mutex>, Offers::kNone>,
    PolicyRow<FMEMP_POLICY_SPINLOCK, Memp<sync::SpinLock>, Offers::kNone>,
    PolicyRow<FMEMP_POLICY_SINGLE_THREAD, Memp<sync::NoLock>, Offers::kNone>,
    PolicyRow<FMEMP_POLICY_THREAD_CACHE, CachingMemp<sync::SpinLock>,
              Offers::kThreadCaches | Offers::kCacheDrain>,
    PolicyRow<FMEMP_POLICY_THREAD_HEAPS, ThreadHeapMemp<sync::SpinLock>,
              Offers::kThreadCaches | Offers::kCacheDrain |
                  Offers::kThreadHeaps>>;

}  // namespace fmemp

#endif  // FMEMP_FMEMP_POLICY_TABLE_H_
