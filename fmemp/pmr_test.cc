// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp::MemoryResource and fmemp::Allocator with real standard containers,
// over Memp under every lock policy and over the SDK's C API: the memory
// lies in the pool's regions, the pool's usage rises while containers live
// and returns to where it started when they are gone, exhaustion throws
// std::bad_alloc and leaves the pool intact, alignment is honoured, and
// threads sharing one pool (run under --config=tsan too) keep it consistent.
// Over per-thread heaps (ThreadHeapMemp, and the C API's
// FMEMP_POLICY_THREAD_HEAPS): containers live in the heap of the thread
// that filled them, may be destroyed on another thread (the frees are
// queued to the owner) or outlive their thread, and the thread heaps' usage
// still returns to zero.

#include "fmemp/pmr.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
#include "fmemp/thread_heap.h"
#include "gtest/gtest.h"
#include "sync/mutex.h"
#include "sync/no_lock.h"
#include "sync/spin_lock.h"

namespace fmemp {
namespace {

// A pool of `bytes` over one region of process memory, with what the tests
// observe of it. The primary template is for Memp<LockPolicy>.
template <typename Pool>
class TestPool {
 public:
  explicit TestPool(size_t bytes) : bytes_(bytes), buffer_(new char[bytes]) {
    EXPECT_TRUE(pool_.AddRegion(buffer_.get(), bytes).ok());
  }
  Pool* pool() { return &pool_; }
  size_t Used() const { return pool_.Probe().used_bytes; }
  bool Intact() const { return pool_.Check().ok(); }
  bool Contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= buffer_.get() && c < buffer_.get() + bytes_;
  }

 private:
  size_t bytes_;
  std::unique_ptr<char[]> buffer_;
  Pool pool_;
};

// The SDK's C API pool.
template <>
class TestPool<FMemp> {
 public:
  explicit TestPool(size_t bytes) : bytes_(bytes), buffer_(new char[bytes]) {
    EXPECT_EQ(FMempInit(&pool_, buffer_.get(), buffer_.get() + bytes),
              FMEMP_SUCCESS);
  }
  ~TestPool() { FMempRelease(&pool_); }
  FMemp* pool() { return &pool_; }
  size_t Used() {
    FMempUsage usage = {};
    EXPECT_EQ(FMempProbe64(&pool_, &usage), FMEMP_SUCCESS);
    return usage.used;
  }
  bool Intact() { return FMempCheck(&pool_) == FMEMP_SUCCESS; }
  bool Contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= buffer_.get() && c < buffer_.get() + bytes_;
  }

 private:
  size_t bytes_;
  std::unique_ptr<char[]> buffer_;
  FMemp pool_ = {};
};

// A ThreadHeapMemp in which the thread that made it (the test's) has a thread
// heap of its own: the buffer's second half is bound to it and the first half
// is shared, so what the thread heap cannot serve falls back to the first half.
template <typename Lock>
class TestPool<ThreadHeapMemp<Lock>> {
 public:
  explicit TestPool(size_t bytes) : bytes_(bytes), buffer_(new char[bytes]) {
    char* const half = buffer_.get() + bytes / 2;
    EXPECT_TRUE(pool_.AddRegion(buffer_.get(), half).ok());
    EXPECT_TRUE(pool_.AddRegion(half, buffer_.get() + bytes).ok());
    EXPECT_TRUE(pool_.BindThisThread(half).ok());
  }
  ~TestPool() { EXPECT_TRUE(pool_.UnbindThisThread().ok()); }
  ThreadHeapMemp<Lock>* pool() { return &pool_; }
  // As this thread sees it: frees that other threads queued to its thread heap
  // are applied first (ThisThreadHasHeap is a call into the pool).
  size_t Used() {
    EXPECT_TRUE(pool_.ThisThreadHasHeap());
    return pool_.Probe().used_bytes;
  }
  bool Intact() { return pool_.Check().ok(); }
  bool Contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= buffer_.get() && c < buffer_.get() + bytes_;
  }

 private:
  size_t bytes_;
  std::unique_ptr<char[]> buffer_;
  ThreadHeapMemp<Lock> pool_;
};

// While alive, any use of the default memory resource throws, so a
// container that forgot its resource fails the test.
class NoDefaultResource {
 public:
  NoDefaultResource()
      : previous_(
            std::pmr::set_default_resource(std::pmr::null_memory_resource())) {}
  ~NoDefaultResource() { std::pmr::set_default_resource(previous_); }

 private:
  std::pmr::memory_resource* previous_;
};

constexpr size_t kPoolBytes = size_t{8} << 20;
// Longer than any small-string buffer, so every string allocates.
constexpr size_t kLongString = 64;

std::string Key(int i) { return "key-" + std::to_string(i) + "-padding"; }

template <typename Pool>
class PmrTest : public ::testing::Test {
 protected:
  PmrTest() : test_pool_(kPoolBytes), resource_(test_pool_.pool()) {}
  void SetUp() override { start_used_ = test_pool_.Used(); }
  // Every test ends with the pool as it began.
  void TearDown() override {
    EXPECT_EQ(test_pool_.Used(), start_used_);
    EXPECT_TRUE(test_pool_.Intact());
  }

  TestPool<Pool> test_pool_;
  MemoryResource<Pool> resource_;
  size_t start_used_ = 0;
};

using Pools =
    ::testing::Types<Memp<sync::NoLock>, Memp<sync::SpinLock>,
                     Memp<sync::Mutex>, FMemp, ThreadHeapMemp<sync::SpinLock>,
                     ThreadHeapMemp<sync::Mutex>>;
TYPED_TEST_SUITE(PmrTest, Pools);

TYPED_TEST(PmrTest, VectorGrowsInsideThePool) {
  NoDefaultResource guard;
  {
    std::pmr::vector<int> v(&this->resource_);
    size_t last_used = this->test_pool_.Used();
    size_t last_capacity = v.capacity();
    int growths = 0;
    for (int i = 0; i < 100000; ++i) {
      v.push_back(i);
      if (v.capacity() != last_capacity) {
        ++growths;
        last_capacity = v.capacity();
        ASSERT_TRUE(this->test_pool_.Contains(v.data()));
        // Usage follows capacity (the smallest capacities share one minimum
        // block size).
        const size_t used = this->test_pool_.Used();
        EXPECT_GE(used, last_used);
        EXPECT_GE(used - this->start_used_, v.capacity() * sizeof(int));
        last_used = used;
      }
    }
    EXPECT_GT(growths, 10);
    for (int i = 0; i < 100000; ++i) ASSERT_EQ(v[i], i);
    v.clear();
    v.shrink_to_fit();
    EXPECT_EQ(this->test_pool_.Used(), this->start_used_);
  }
}

TYPED_TEST(PmrTest, StringLivesInThePool) {
  NoDefaultResource guard;
  {
    std::pmr::string s(&this->resource_);
    for (int i = 0; i < 2000; ++i) s += "fmemp ";
    EXPECT_EQ(s.size(), 12000u);
    EXPECT_TRUE(this->test_pool_.Contains(s.data()));
    EXPECT_GE(this->test_pool_.Used() - this->start_used_, s.size());
    std::pmr::string copy(s, &this->resource_);
    EXPECT_TRUE(this->test_pool_.Contains(copy.data()));
    EXPECT_EQ(copy, s);
  }
}

TYPED_TEST(PmrTest, UnorderedMapManyInsertsAndErases) {
  NoDefaultResource guard;
  {
    std::pmr::unordered_map<int, std::pmr::string> map(&this->resource_);
    std::map<int, std::string> model;
    uint32_t state = 12345;
    for (int step = 0; step < 50000; ++step) {
      state = state * 1664525u + 1013904223u;
      const int key = static_cast<int>(state >> 20);  // 0..4095
      if ((state & 3) != 0) {
        const std::string value(kLongString + (state & 31),
                                static_cast<char>('a' + key % 26));
        map.insert_or_assign(key, std::pmr::string(value, &this->resource_));
        model[key] = value;
      } else {
        EXPECT_EQ(map.erase(key), model.erase(key));
      }
    }
    ASSERT_EQ(map.size(), model.size());
    EXPECT_GT(map.size(), 1000u);
    for (const auto& [key, value] : model) {
      auto it = map.find(key);
      ASSERT_NE(it, map.end());
      EXPECT_EQ(std::string_view(it->second), value);
      EXPECT_TRUE(this->test_pool_.Contains(it->second.data()));
    }
    EXPECT_GT(this->test_pool_.Used(), this->start_used_);
    for (const auto& entry : model) map.erase(entry.first);
    EXPECT_TRUE(map.empty());
    EXPECT_TRUE(this->test_pool_.Intact());
  }
}

TYPED_TEST(PmrTest, NestedContainersShareTheResource) {
  NoDefaultResource guard;
  size_t outer_only = 0;
  {
    std::pmr::vector<std::pmr::string> outer(&this->resource_);
    outer.reserve(100);
    outer_only = this->test_pool_.Used();
    for (int i = 0; i < 100; ++i) {
      // The vector hands its resource to each element it constructs.
      outer.emplace_back(kLongString + i, static_cast<char>('a' + i % 26));
    }
    for (const auto& s : outer) {
      EXPECT_EQ(s.get_allocator().resource(), &this->resource_);
      EXPECT_TRUE(this->test_pool_.Contains(s.data()));
    }
    EXPECT_GT(this->test_pool_.Used(), outer_only + 100 * kLongString);

    std::pmr::unordered_map<std::pmr::string, std::pmr::vector<int>> index(
        &this->resource_);
    for (int i = 0; i < 500; ++i) {
      auto& list = index[std::pmr::string(Key(i % 50), &this->resource_)];
      list.push_back(i);
      EXPECT_EQ(list.get_allocator().resource(), &this->resource_);
    }
    EXPECT_EQ(index.size(), 50u);
    for (const auto& [key, list] : index) {
      EXPECT_EQ(list.size(), 10u);
      EXPECT_TRUE(this->test_pool_.Contains(list.data()));
    }
  }
}

TYPED_TEST(PmrTest, PolymorphicAllocator) {
  std::pmr::polymorphic_allocator<int> alloc(&this->resource_);
  EXPECT_EQ(alloc.resource(), &this->resource_);
  int* ints = alloc.allocate(1000);
  EXPECT_TRUE(this->test_pool_.Contains(ints));
  for (int i = 0; i < 1000; ++i) ints[i] = i;
  EXPECT_GE(this->test_pool_.Used() - this->start_used_, 1000 * sizeof(int));
  alloc.deallocate(ints, 1000);
  EXPECT_EQ(this->test_pool_.Used(), this->start_used_);

  // A copy of the allocator, rebound, allocates from the same pool.
  std::pmr::polymorphic_allocator<std::pmr::string> strings(alloc);
  EXPECT_EQ(strings, alloc);
  std::pmr::vector<std::pmr::string> v(strings);
  v.emplace_back(kLongString, 'x');
  EXPECT_TRUE(this->test_pool_.Contains(v.front().data()));
}

TYPED_TEST(PmrTest, HonoursAlignment) {
  std::pmr::memory_resource& r = this->resource_;
  for (size_t alignment : {1, 2, 8, 16, 32, 64, 256, 4096}) {
    for (size_t bytes : {0, 1, 24, 100, 5000}) {
      void* p = r.allocate(bytes, alignment);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u)
          << bytes << " bytes at " << alignment;
      EXPECT_TRUE(this->test_pool_.Contains(p));
      r.deallocate(p, bytes, alignment);
    }
  }
}

TYPED_TEST(PmrTest, EqualOnlyOverTheSamePool) {
  MemoryResource<TypeParam> same(this->test_pool_.pool());
  TestPool<TypeParam> other_pool(64 << 10);
  MemoryResource<TypeParam> other(other_pool.pool());
  EXPECT_TRUE(this->resource_.is_equal(this->resource_));
  EXPECT_TRUE(this->resource_.is_equal(same));
  EXPECT_TRUE(same.is_equal(this->resource_));
  EXPECT_FALSE(this->resource_.is_equal(other));
  EXPECT_FALSE(this->resource_.is_equal(*std::pmr::new_delete_resource()));
  EXPECT_EQ(this->resource_.pool(), this->test_pool_.pool());

  // Memory from one equal resource may go back through the other.
  void* p = this->resource_.allocate(100);
  same.deallocate(p, 100);
}

TYPED_TEST(PmrTest, ExhaustionThrowsAndLeavesThePoolIntact) {
  TestPool<TypeParam> small(64 << 10);
  MemoryResource<TypeParam> resource(small.pool());
  const size_t start = small.Used();

  EXPECT_THROW(static_cast<void>(resource.allocate(1 << 20)), std::bad_alloc);
  EXPECT_THROW(static_cast<void>(resource.allocate(1 << 20, 64)),
               std::bad_alloc);
  EXPECT_EQ(small.Used(), start);
  EXPECT_TRUE(small.Intact());
  {
    std::pmr::vector<int> v(&resource);
    EXPECT_THROW(v.reserve(1 << 20), std::bad_alloc);
    EXPECT_TRUE(v.empty());

    // push_back has the strong guarantee: when growth fails, the vector is
    // as it was.
    bool threw = false;
    int pushed = 0;
    try {
      for (;; ++pushed) v.push_back(pushed);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    EXPECT_GT(pushed, 1000);
    ASSERT_EQ(v.size(), static_cast<size_t>(pushed));
    for (int i = 0; i < pushed; ++i) ASSERT_EQ(v[i], i);
    EXPECT_TRUE(small.Intact());
  }
  EXPECT_EQ(small.Used(), start);

  {
    std::pmr::unordered_map<int, std::pmr::string> map(&resource);
    int inserted = 0;
    try {
      for (;; ++inserted) {
        map.emplace(inserted, std::pmr::string(kLongString, 'm', &resource));
      }
    } catch (const std::bad_alloc&) {
    }
    EXPECT_GT(inserted, 100);
    EXPECT_TRUE(small.Intact());
    // The pool serves again once some memory comes back.
    map.erase(0);
    map.erase(1);
    map.emplace(-1, std::pmr::string(kLongString, 'n', &resource));
    EXPECT_TRUE(small.Intact());
  }
  EXPECT_EQ(small.Used(), start);
  EXPECT_TRUE(small.Intact());
}

// --- fmemp::Allocator ---

template <typename T, typename Pool>
using Vector = std::vector<T, Allocator<T, Pool>>;

TYPED_TEST(PmrTest, AllocatorVectorListMap) {
  using IntAlloc = Allocator<int, TypeParam>;
  IntAlloc alloc(this->test_pool_.pool());
  {
    Vector<int, TypeParam> v(alloc);
    for (int i = 0; i < 50000; ++i) v.push_back(i);
    EXPECT_TRUE(this->test_pool_.Contains(v.data()));
    EXPECT_GE(this->test_pool_.Used() - this->start_used_, 50000 * sizeof(int));

    // Node containers rebind the allocator to their node types.
    std::list<int, IntAlloc> list(alloc);
    for (int i = 0; i < 1000; ++i) list.push_back(i);
    EXPECT_TRUE(this->test_pool_.Contains(&list.back()));

    using Pair = std::pair<const int, int>;
    std::map<int, int, std::less<int>, Allocator<Pair, TypeParam>> map(alloc);
    for (int i = 0; i < 1000; ++i) map[i] = 2 * i;
    EXPECT_TRUE(this->test_pool_.Contains(&map.at(500)));
    EXPECT_EQ(map.get_allocator(), alloc);
  }
}

TYPED_TEST(PmrTest, AllocatorEqualityAndRebind) {
  TestPool<TypeParam> other_pool(64 << 10);
  Allocator<int, TypeParam> a(this->test_pool_.pool());
  Allocator<double, TypeParam> rebound(a);
  typename std::allocator_traits<
      Allocator<int, TypeParam>>::template rebind_alloc<char>
      as_char(a);
  Allocator<int, TypeParam> b(other_pool.pool());
  EXPECT_TRUE(a == rebound);
  EXPECT_TRUE(a == as_char);
  EXPECT_EQ(as_char.pool(), this->test_pool_.pool());
  EXPECT_TRUE(a != b);
  EXPECT_FALSE(a == b);

  // Memory from one allocator may go back through an equal one.
  double* d = rebound.allocate(10);
  Allocator<double, TypeParam>(a).deallocate(d, 10);
}

TYPED_TEST(PmrTest, AllocatorPropagatesOnAssignmentAndSwap) {
  TestPool<TypeParam> other_pool(1 << 20);
  Allocator<int, TypeParam> here(this->test_pool_.pool());
  Allocator<int, TypeParam> there(other_pool.pool());
  {
    Vector<int, TypeParam> a({1, 2, 3}, here);
    Vector<int, TypeParam> b({4, 5}, there);
    const int* b_data = b.data();
    a = std::move(b);  // takes b's buffer and pool; no copy
    EXPECT_EQ(a.get_allocator(), there);
    EXPECT_EQ(a.data(), b_data);
    EXPECT_TRUE(other_pool.Contains(a.data()));

    Vector<int, TypeParam> c({7, 8, 9}, here);
    a.swap(c);
    EXPECT_EQ(a.get_allocator(), here);
    EXPECT_EQ(c.get_allocator(), there);
    EXPECT_EQ(c, (Vector<int, TypeParam>({4, 5}, there)));

    Vector<int, TypeParam> d(here);
    d = c;  // copy assignment propagates too
    EXPECT_EQ(d.get_allocator(), there);
    EXPECT_TRUE(other_pool.Contains(d.data()));

    // Copy construction keeps the source's pool.
    Vector<int, TypeParam> e(a);
    EXPECT_EQ(e.get_allocator(), here);
  }
  EXPECT_EQ(other_pool.Used(), 0u);
  EXPECT_TRUE(other_pool.Intact());
}

struct alignas(64) CacheLine {
  char bytes[64];
};

TYPED_TEST(PmrTest, AllocatorOverAlignedType) {
  Vector<CacheLine, TypeParam> v(
      Allocator<CacheLine, TypeParam>(this->test_pool_.pool()));
  for (int i = 0; i < 100; ++i) {
    v.emplace_back();
    ASSERT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u);
  }
}

TYPED_TEST(PmrTest, AllocatorFailures) {
  TestPool<TypeParam> small(64 << 10);
  Allocator<int, TypeParam> alloc(small.pool());
  Vector<int, TypeParam> v(alloc);
  EXPECT_THROW(v.reserve(1 << 20), std::bad_alloc);
  EXPECT_THROW(static_cast<void>(alloc.allocate(alloc.max_size() + 1)),
               std::bad_array_new_length);
  EXPECT_THROW(static_cast<void>(alloc.allocate(alloc.max_size())),
               std::bad_alloc);
  EXPECT_EQ(small.Used(), 0u);
  EXPECT_TRUE(small.Intact());
}

// --- Any front-end with the three members ---

// A front-end over the process heap that counts which member each request
// reached, and whose Free returns nothing (the members' results are not part
// of the contract).
class CountingPool {
 public:
  void* Allocate(size_t bytes) noexcept {
    ++plain;
    return std::malloc(bytes == 0 ? 1 : bytes);
  }
  void* AllocateAligned(size_t alignment, size_t bytes) noexcept {
    ++aligned;
    const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    return std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  }
  void Free(void* ptr) noexcept {
    ++frees;
    std::free(ptr);
  }

  int plain = 0;
  int aligned = 0;
  int frees = 0;
};

TEST(PmrGenericTest, PlainUpToNaturalAlignmentAlignedAbove) {
  CountingPool pool;
  MemoryResource<CountingPool> resource(&pool);
  for (size_t alignment : {1, 4, 8, 16}) {
    resource.deallocate(resource.allocate(40, alignment), 40, alignment);
  }
  EXPECT_EQ(pool.plain, 4);
  EXPECT_EQ(pool.aligned, 0);
  for (size_t alignment : {32, 64, 4096}) {
    void* p = resource.allocate(40, alignment);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    resource.deallocate(p, 40, alignment);
  }
  EXPECT_EQ(pool.plain, 4);
  EXPECT_EQ(pool.aligned, 3);
  EXPECT_EQ(pool.frees, 7);

  std::vector<CacheLine, Allocator<CacheLine, CountingPool>> lines{
      Allocator<CacheLine, CountingPool>(&pool)};
  lines.resize(3);
  EXPECT_EQ(pool.aligned, 4);
}

// An FMemp that is not initialised refuses every request.
TEST(PmrGenericTest, UninitialisedFMempThrows) {
  FMemp memp = {};
  MemoryResource<FMemp> resource(&memp);
  EXPECT_THROW(static_cast<void>(resource.allocate(16)), std::bad_alloc);
  EXPECT_THROW(static_cast<void>(resource.allocate(16, 64)), std::bad_alloc);
}

// --- Threads ---

template <typename Pool>
class PmrThreadTest : public PmrTest<Pool> {};

using ThreadSafePools =
    ::testing::Types<Memp<sync::SpinLock>, Memp<sync::Mutex>, FMemp,
                     ThreadHeapMemp<sync::SpinLock>,
                     ThreadHeapMemp<sync::Mutex>>;
TYPED_TEST_SUITE(PmrThreadTest, ThreadSafePools);

// Each thread churns its own containers over one shared pool, then hands a
// vector it filled to the main thread, which frees it: cross-thread frees.
TYPED_TEST(PmrThreadTest, ThreadsWithTheirOwnContainers) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 30;
  // Over the pool from the start, so that moving into them keeps the
  // strings where they are.
  std::vector<std::pmr::vector<std::pmr::string>> handed;
  handed.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) handed.emplace_back(&this->resource_);
  std::vector<int> errors(kThreads, 0);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &handed, &errors] {
      MemoryResource<TypeParam>& r = this->resource_;
      const char letter = static_cast<char>('a' + t);
      const std::string expected(kLongString, letter);
      for (int round = 0; round < kRounds; ++round) {
        std::pmr::vector<int> v(&r);
        std::pmr::string s(&r);
        std::pmr::unordered_map<int, std::pmr::string> map(&r);
        for (int i = 0; i < 300; ++i) {
          v.push_back(i * t);
          s += letter;
          map.emplace(i, std::pmr::string(kLongString, letter, &r));
          if (i % 3 == 0) map.erase(i / 2);
        }
        for (int i = 0; i < 300; ++i) errors[t] += v[i] != i * t;
        for (char c : s) errors[t] += c != letter;
        for (const auto& entry : map) {
          errors[t] += entry.second.compare(expected) != 0;
          errors[t] += !this->test_pool_.Contains(entry.second.data());
        }
      }
      std::pmr::vector<std::pmr::string> out(&r);
      out.reserve(100);
      for (int i = 0; i < 100; ++i) {
        out.emplace_back(kLongString, static_cast<char>('A' + t));
      }
      handed[t] = std::move(out);
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], 0) << "thread " << t;
    ASSERT_EQ(handed[t].size(), 100u);
    // Moved between vectors over equal resources: the strings never left
    // the pool.
    EXPECT_TRUE(this->test_pool_.Contains(handed[t].front().data()));
  }
  EXPECT_GT(this->test_pool_.Used(), this->start_used_);
  handed.clear();
}

// --- Per-thread heaps: every thread binds a region of its own ---

// A region's memory, for a worker to add and bind.
class OwnRegion {
 public:
  explicit OwnRegion(size_t bytes) : bytes_(bytes), memory_(new char[bytes]) {}
  char* begin() const { return memory_.get(); }
  char* end() const { return memory_.get() + bytes_; }
  bool Holds(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= begin() && c < end();
  }

 private:
  size_t bytes_;
  std::unique_ptr<char[]> memory_;
};

// What one thread builds for another: a map and a list of strings, every
// byte of which lies in the builder's thread heap.
struct Parcel {
  static constexpr size_t kKeys = 40;
  static constexpr size_t kLines = 20;

  Parcel(std::pmr::memory_resource* resource, int sender, int sent_in)
      : from(sender), round(sent_in), map(resource), lines(resource) {}

  // The value Fill stores under `key`: long enough that every string
  // allocates.
  std::string Value(int key) const {
    return "from " + std::to_string(from) + " round " + std::to_string(round) +
           " key " + std::to_string(key) + std::string(kLongString, '.');
  }
  void Fill() {
    for (size_t i = 0; i < kKeys; ++i) {
      const int key = static_cast<int>(i);
      map.emplace(key, Value(key));
    }
    lines.reserve(kLines);
    for (size_t i = 0; i < kLines; ++i) {
      lines.emplace_back(Value(static_cast<int>(kKeys + i)));
    }
  }
  // Whether the contents are what Fill wrote.
  bool Intact() const {
    if (map.size() != kKeys || lines.size() != kLines) return false;
    for (const auto& [key, value] : map) {
      if (std::string_view(value) != Value(key)) return false;
    }
    for (size_t i = 0; i < kLines; ++i) {
      if (std::string_view(lines[i]) != Value(static_cast<int>(kKeys + i))) {
        return false;
      }
    }
    return true;
  }
  // Whether every block of the parcel lies in `region`.
  bool LiesIn(const OwnRegion& region) const {
    for (const auto& entry : map) {
      if (!region.Holds(&entry) || !region.Holds(entry.second.data())) {
        return false;
      }
    }
    for (const auto& line : lines) {
      if (!region.Holds(line.data())) return false;
    }
    return region.Holds(lines.data());
  }

  const int from;
  const int round;
  std::pmr::unordered_map<int, std::pmr::string> map;
  std::pmr::vector<std::pmr::string> lines;
};

// Holds each of `count` threads until all have arrived (a BlockingCounter
// allows one waiter only).
class Rendezvous {
 public:
  explicit Rendezvous(int count) : missing_(count) {}
  void ArriveAndWait() {
    absl::MutexLock hold(&mu_);
    --missing_;
    mu_.Await(absl::Condition(this, &Rendezvous::AllArrived));
  }

 private:
  bool AllArrived() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return missing_ == 0;
  }

  absl::Mutex mu_;
  int missing_ ABSL_GUARDED_BY(mu_);
};

template <typename Lock>
class PmrThreadHeapTest : public ::testing::Test {
 protected:
  static constexpr int kThreads = 4;
  // Room for every parcel a slow receiver may leave waiting.
  static constexpr size_t kOwnBytes = size_t{2} << 20;

  PmrThreadHeapTest() : shared_(4 * kOwnBytes), resource_(&memp_) {
    EXPECT_TRUE(memp_.AddRegion(shared_.begin(), shared_.end()).ok());
    own_.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) own_.emplace_back(kOwnBytes);
  }
  // Every test ends with the memory back: nothing used, every thread heap given
  // back to the shared regions (the workers have exited), each worker's
  // region removable.
  void TearDown() override {
    const int added = added_.load();
    const MempStats stats = memp_.Probe();
    EXPECT_EQ(stats.used_bytes, 0u);
    EXPECT_EQ(stats.live_blocks, 0u);
    EXPECT_EQ(stats.region_count, 1u + added);
    EXPECT_TRUE(memp_.ProbeThreadHeaps().empty());
    EXPECT_TRUE(memp_.Check().ok());
    for (int t = 0; t < added; ++t) {
      EXPECT_TRUE(memp_.RemoveRegion(own_[t].begin()).ok()) << "region " << t;
    }
  }

  // Run by worker t first: own_[t] becomes its thread heap.
  void AddAndBind(int t) {
    EXPECT_TRUE(memp_.AddRegion(own_[t].begin(), own_[t].end()).ok());
    EXPECT_TRUE(memp_.BindThisThread(own_[t].begin()).ok());
    EXPECT_TRUE(memp_.ThisThreadHasHeap());
    added_.fetch_add(1);
  }

  // The regions' memory outlives the thread heap.
  OwnRegion shared_;
  std::vector<OwnRegion> own_;
  std::atomic<int> added_{0};  // own_[0, added_) were added
  ThreadHeapMemp<Lock> memp_;
  MemoryResource<ThreadHeapMemp<Lock>> resource_;
};

using ThreadHeapLocks = ::testing::Types<sync::SpinLock, sync::Mutex>;
TYPED_TEST_SUITE(PmrThreadHeapTest, ThreadHeapLocks);

// Each thread fills containers in its own thread heap and hands some to the
// main thread, which destroys them while the builders still run: those frees
// wait in the builders' queues (usage unchanged) until each builder's next
// call applies them.
TYPED_TEST(PmrThreadHeapTest, ContainersFreedByAnotherThreadWhileTheOwnerRuns) {
  constexpr int kThreads = TestFixture::kThreads;
  std::vector<std::unique_ptr<Parcel>> handed(kThreads);
  std::vector<int> errors(kThreads, 0);
  absl::BlockingCounter built(kThreads);
  absl::Notification freed;
  absl::BlockingCounter applied(kThreads);
  absl::Notification may_exit;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &handed, &errors, &built, &freed, &applied,
                          &may_exit] {
      this->AddAndBind(t);
      const OwnRegion& own = this->own_[t];
      {
        // Churn: vectors, strings and maps, all in this thread's heap.
        std::pmr::vector<int> v(&this->resource_);
        std::pmr::string s(&this->resource_);
        std::pmr::unordered_map<int, std::pmr::string> map(&this->resource_);
        for (int i = 0; i < 2000; ++i) {
          v.push_back(i);
          s += static_cast<char>('a' + t);
          map.emplace(i, std::pmr::string(kLongString, 'm', &this->resource_));
          if (i % 3 == 0) map.erase(i / 2);
        }
        errors[t] += !own.Holds(v.data()) + !own.Holds(s.data());
        for (const auto& entry : map) errors[t] += !own.Holds(&entry);
        errors[t] += !this->memp_.Check().ok();  // covers this thread's heap
      }
      auto parcel = std::make_unique<Parcel>(&this->resource_, t, 0);
      parcel->Fill();
      errors[t] += !parcel->LiesIn(own);
      handed[t] = std::move(parcel);
      built.DecrementCount();
      freed.WaitForNotification();
      // This call applies the frees queued to the thread heap.
      errors[t] += !this->memp_.ThisThreadHasHeap();
      applied.DecrementCount();
      may_exit.WaitForNotification();
      // Half of the threads unbind; the others just exit (which unbinds).
      if (t % 2 == 0) errors[t] += !this->memp_.UnbindThisThread().ok();
    });
  }
  built.Wait();
  const MempStats before = this->memp_.Probe();
  EXPECT_GT(before.used_bytes, 0u);
  const ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
  ASSERT_EQ(thread_heaps.size(), static_cast<size_t>(kThreads));
  for (const ThreadHeapStats& thread_heap : thread_heaps) {
    EXPECT_GT(thread_heap.stats.used_bytes, 0u);
    EXPECT_EQ(thread_heap.fallbacks, 0u);
  }
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(handed[t]->Intact()) << "thread " << t;
    EXPECT_TRUE(handed[t]->LiesIn(this->own_[t])) << "thread " << t;
    handed[t].reset();  // queued to thread t
  }
  // The owners have made no call since: the frees still wait.
  EXPECT_EQ(this->memp_.Probe().used_bytes, before.used_bytes);
  freed.Notify();
  applied.Wait();
  EXPECT_EQ(this->memp_.Probe().used_bytes, 0u);
  for (const ThreadHeapStats& thread_heap : this->memp_.ProbeThreadHeaps()) {
    EXPECT_EQ(thread_heap.stats.used_bytes, 0u);
    EXPECT_EQ(thread_heap.stats.live_blocks, 0u);
    EXPECT_GT(thread_heap.stats.peak_used_bytes, 0u);
  }
  may_exit.Notify();
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], 0) << "thread " << t;
}

// Containers outlive the threads that filled them: at exit each thread heap's
// region goes back to the shared regions with the containers' blocks, which
// stay valid and are freed there.
TYPED_TEST(PmrThreadHeapTest, ContainersOutliveTheirThread) {
  constexpr int kThreads = TestFixture::kThreads;
  std::vector<std::unique_ptr<Parcel>> handed(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &handed] {
      this->AddAndBind(t);
      auto parcel = std::make_unique<Parcel>(&this->resource_, t, 0);
      parcel->Fill();
      handed[t] = std::move(parcel);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(this->memp_.ProbeThreadHeaps().empty());
  EXPECT_GT(this->memp_.Probe().used_bytes, 0u);
  EXPECT_TRUE(this->memp_.Check().ok());  // every region is shared again
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(handed[t]->Intact()) << "thread " << t;
    EXPECT_TRUE(handed[t]->LiesIn(this->own_[t])) << "thread " << t;
    // Still usable: it grows (in the shared regions now) and shrinks.
    handed[t]->lines.emplace_back(kLongString, 'z');
    handed[t]->map.clear();
    handed[t].reset();
  }
}

// Every thread, bound to its own thread heap, builds parcels and posts them to
// the next thread, which checks and destroys them while their builder keeps
// allocating: frees queued to a running owner, all the time, from every
// side.
TYPED_TEST(PmrThreadHeapTest, ThreadsPassContainersRound) {
  constexpr int kThreads = TestFixture::kThreads;
  constexpr int kRounds = 60;
  struct Mailbox {
    absl::Mutex mu;
    std::deque<std::unique_ptr<Parcel>> parcels ABSL_GUARDED_BY(mu);
  };
  std::vector<Mailbox> mailboxes(kThreads);
  std::vector<int> errors(kThreads, 0);
  std::vector<int> received(kThreads, 0);
  Rendezvous all_posted(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [this, t, &mailboxes, &errors, &received, &all_posted] {
          this->AddAndBind(t);
          const int from = (t + kThreads - 1) % kThreads;
          Mailbox& inbox = mailboxes[t];
          Mailbox& outbox = mailboxes[(t + 1) % kThreads];
          // Checks and destroys every parcel waiting in the inbox.
          auto drain = [&] {
            std::deque<std::unique_ptr<Parcel>> taken;
            {
              absl::MutexLock hold(&inbox.mu);
              taken.swap(inbox.parcels);
            }
            for (const auto& parcel : taken) {
              errors[t] += parcel->from != from || !parcel->Intact() ||
                           !parcel->LiesIn(this->own_[from]);
              ++received[t];
            }
          };  // `taken` goes here: frees queued to thread `from`
          for (int round = 0; round < kRounds; ++round) {
            auto parcel = std::make_unique<Parcel>(&this->resource_, t, round);
            parcel->Fill();
            {
              absl::MutexLock hold(&outbox.mu);
              outbox.parcels.push_back(std::move(parcel));
            }
            drain();
          }
          all_posted.ArriveAndWait();
          drain();
        });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], 0) << "thread " << t;
    EXPECT_EQ(received[t], kRounds) << "thread " << t;
  }
}

// A thread heap that cannot serve a container falls back to the shared regions
// by default; bound with ThreadHeapExhaustion::kFail it makes the container
// throw std::bad_alloc instead, with the shared regions untouched.
TYPED_TEST(PmrThreadHeapTest, ExhaustedThreadHeapFallsBackOrThrows) {
  std::thread([this] {
    this->AddAndBind(0);
    {
      std::pmr::vector<char> v(&this->resource_);
      v.resize(TestFixture::kOwnBytes / 2);
      EXPECT_TRUE(this->own_[0].Holds(v.data()));
      v.resize(TestFixture::kOwnBytes + 1000);  // more than the thread heap has
      EXPECT_TRUE(this->shared_.Holds(v.data()));
      const ThreadHeapStatsList thread_heaps = this->memp_.ProbeThreadHeaps();
      ASSERT_EQ(thread_heaps.size(), 1u);
      EXPECT_GE(thread_heaps[0].fallbacks, 1u);
    }
    ASSERT_TRUE(
        this->memp_
            .BindThisThread(this->own_[0].begin(), ThreadHeapExhaustion::kFail)
            .ok());
    const size_t shared_used = this->memp_.Probe().used_bytes;
    std::pmr::vector<char> v(&this->resource_);
    EXPECT_THROW(v.resize(TestFixture::kOwnBytes + 1000), std::bad_alloc);
    EXPECT_TRUE(v.empty());
    EXPECT_EQ(this->memp_.Probe().used_bytes, shared_used);
    v.resize(1000);  // the thread heap serves again
    EXPECT_TRUE(this->own_[0].Holds(v.data()));
  }).join();
}

// The C API's per-thread heaps through MemoryResource<FMemp>: threads bind
// regions with FMempBindThread, fill containers, and hand them to the main
// thread, which frees them after the threads exited.
TEST(PmrCApiThreadHeapsTest, ContainersInBoundRegions) {
  constexpr int kThreads = 3;
  constexpr size_t kBytes = size_t{1} << 20;
  OwnRegion shared(kBytes);
  std::vector<OwnRegion> own;
  own.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) own.emplace_back(kBytes);
  FMemp memp = {};
  ASSERT_EQ(FMempInitWithPolicy(&memp, shared.begin(), shared.end(),
                                FMEMP_POLICY_THREAD_HEAPS),
            FMEMP_SUCCESS);
  {
    MemoryResource<FMemp> resource(&memp);
    std::vector<std::unique_ptr<Parcel>> handed(kThreads);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        EXPECT_EQ(FMempAddRegion(&memp, own[t].begin(), own[t].end()),
                  FMEMP_SUCCESS);
        EXPECT_EQ(FMempBindThread(&memp, own[t].begin()), FMEMP_SUCCESS);
        auto parcel = std::make_unique<Parcel>(&resource, t, 0);
        parcel->Fill();
        EXPECT_TRUE(parcel->LiesIn(own[t]));
        handed[t] = std::move(parcel);
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(FMempThreadHeapCount(&memp), 0u);
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_TRUE(handed[t]->Intact());
      handed[t].reset();
    }
  }
  FMempUsage usage = {};
  ASSERT_EQ(FMempProbe64(&memp, &usage), FMEMP_SUCCESS);
  EXPECT_EQ(usage.used, 0u);
  EXPECT_EQ(usage.regions, 1u + kThreads);
  EXPECT_EQ(FMempCheck(&memp), FMEMP_SUCCESS);
  FMempRemove(&memp);
  FMempRelease(&memp);
}

}  // namespace
}  // namespace fmemp
