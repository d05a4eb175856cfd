#include "tlsf/heap.h"
#include "gtest/gtest.h"
TEST(HeapSmoke, Builds) {
  alignas(16) static char buf[4096];
  fmemp::tlsf::Heap heap;
  ASSERT_TRUE(heap.AddPool(buf, sizeof(buf)).ok());
  void* p = heap.Allocate(100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(heap.Check().ok()) << heap.Check();
  heap.Free(p);
  EXPECT_TRUE(heap.Check().ok()) << heap.Check();
}
