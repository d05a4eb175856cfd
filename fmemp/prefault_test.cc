// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/prefault.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace fmemp {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

class Mapping {
 public:
  Mapping(size_t pages, int prot)
      : bytes_(pages * kPage),
        data_(static_cast<char*>(
            mmap(nullptr, bytes_, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))) {}
  ~Mapping() {
    if (data_ != MAP_FAILED) munmap(data_, bytes_);
  }
  char* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool ok() const { return data_ != MAP_FAILED; }

  // Pages of [data + from_page, data + to_page) that are resident.
  size_t ResidentPages(size_t from_page, size_t to_page) const {
    std::vector<unsigned char> vec(bytes_ / kPage);
    if (mincore(data_, bytes_, vec.data()) != 0) return 0;
    size_t resident = 0;
    for (size_t i = from_page; i < to_page; ++i) resident += vec[i] & 1;
    return resident;
  }

 private:
  size_t bytes_;
  char* data_;
};

TEST(PrefaultTest, MakesEveryPageOfTheRangeResident) {
  Mapping m(64, PROT_READ | PROT_WRITE);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m.ResidentPages(0, 64), 0u) << "fresh anonymous memory";
  // A range that starts and ends inside pages covers those pages too.
  ASSERT_TRUE(PrefaultRange(m.data() + 3 * kPage + 100, 10 * kPage).ok());
  EXPECT_EQ(m.ResidentPages(3, 14), 11u);
  EXPECT_EQ(m.ResidentPages(0, 3), 0u) << "nothing before the range";
  EXPECT_EQ(m.ResidentPages(14, 64), 0u) << "nothing after the range";
}

TEST(PrefaultTest, LeavesContentsUnchanged) {
  Mapping m(16, PROT_READ | PROT_WRITE);
  ASSERT_TRUE(m.ok());
  // Every other page written (and so resident) with a pattern.
  for (size_t page = 0; page < 16; page += 2) {
    std::memset(m.data() + page * kPage, static_cast<int>(0x40 + page), kPage);
  }
  ASSERT_TRUE(PrefaultRange(m.data(), m.bytes()).ok());
  EXPECT_EQ(m.ResidentPages(0, 16), 16u);
  for (size_t page = 0; page < 16; ++page) {
    const unsigned char want = page % 2 == 0 ? 0x40 + page : 0;
    for (size_t i = 0; i < kPage; ++i) {
      ASSERT_EQ(static_cast<unsigned char>(m.data()[page * kPage + i]), want)
          << "page " << page << " byte " << i;
    }
  }
}

TEST(PrefaultTest, RejectsNullAndWrappedRanges) {
  EXPECT_EQ(PrefaultRange(nullptr, kPage).code(),
            absl::StatusCode::kInvalidArgument);
  char byte = 0;
  EXPECT_EQ(PrefaultRange(&byte, SIZE_MAX).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(PrefaultRange(nullptr, 0).ok()) << "an empty range is a no-op";
  EXPECT_TRUE(PrefaultRange(&byte, 0).ok());
}

TEST(PrefaultTest, ReportsMemoryThatCannotBePopulated) {
  if (!PrefaultUsesMadvise()) {
    GTEST_SKIP() << "kernel without MADV_POPULATE_WRITE: the touch loop "
                    "would fault, as documented";
  }
  Mapping read_only(4, PROT_READ);
  ASSERT_TRUE(read_only.ok());
  const absl::Status status =
      PrefaultRange(read_only.data(), read_only.bytes());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("errno"), absl::string_view::npos);

  // A range with a hole: the second page is unmapped.
  Mapping holed(3, PROT_READ | PROT_WRITE);
  ASSERT_TRUE(holed.ok());
  ASSERT_EQ(munmap(holed.data() + kPage, kPage), 0);
  EXPECT_EQ(PrefaultRange(holed.data(), holed.bytes()).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_EQ(mmap(holed.data() + kPage, kPage, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
            holed.data() + kPage);  // so the destructor unmaps one mapping
}

}  // namespace
}  // namespace fmemp
