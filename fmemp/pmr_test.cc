// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp::MemoryResource and fmemp::Allocator with real standard containers,
// over Memp under every lock policy and over the SDK's C API: the memory
// lies in the pool's regions, the pool's usage rises while containers live
// and returns to where it started when they are gone, exhaustion throws
// std::bad_alloc and leaves the pool intact, alignment is honoured, and
// threads sharing one pool (run under --config=tsan too) keep it consistent.

#include "fmemp/pmr.h"

#include <cstdint>
#include <cstdlib>
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

#include "fmemp/fmemp.h"
#include "fmemp/memp.h"
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

using Pools = ::testing::Types<Memp<sync::NoLock>, Memp<sync::SpinLock>,
                               Memp<sync::Mutex>, FMemp>;
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
    ::testing::Types<Memp<sync::SpinLock>, Memp<sync::Mutex>, FMemp>;
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

}  // namespace
}  // namespace fmemp
