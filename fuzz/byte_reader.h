// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/byte_reader.h
//
// ByteReader turns a fuzzer's input into a stream of choices: bytes, small
// integers, and request sizes and alignments biased towards the edge values
// that break allocators (0, 1, powers of two and their neighbours, values
// near SIZE_MAX). It plays the part of libFuzzer's FuzzedDataProvider, which
// ships with clang only; this one also builds with g++, so the fuzz targets
// replay their corpus as ordinary tests in every configuration.
//
// Reading past the end yields zeros, never an error: every input, however
// short, is a complete program. Each draw consumes a fixed number of bytes
// for its kind, so a mutation of one byte changes one decision and a few
// after it, which keeps libFuzzer's mutations local.

#ifndef FMEMP_FUZZ_BYTE_READER_H_
#define FMEMP_FUZZ_BYTE_READER_H_

#include <cstddef>
#include <cstdint>
#include <limits>

namespace fmemp::fuzz {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return pos_ < size_ ? size_ - pos_ : 0; }

  // The next byte, or 0 once the input is exhausted.
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }

  bool Bool() { return (Byte() & 1) != 0; }

  // Little-endian integers of 2, 4 and 8 bytes.
  uint16_t U16() {
    const uint16_t low = Byte();
    return static_cast<uint16_t>(low | (Byte() << 8));
  }
  uint32_t U32() {
    const uint32_t low = U16();
    return low | (static_cast<uint32_t>(U16()) << 16);
  }
  uint64_t U64() {
    const uint64_t low = U32();
    return low | (static_cast<uint64_t>(U32()) << 32);
  }

  // A value in [0, n), from one byte when n <= 256 and two bytes otherwise
  // (then biased for n > 65536). Returns 0 when n == 0.
  size_t Below(size_t n) {
    if (n == 0) return 0;
    if (n <= 256) return Byte() % n;
    return U16() % n;
  }

  // A request size: small sizes most often, then edge values, powers of two
  // and their neighbours (which wrap around to values near SIZE_MAX below
  // 1), medium sizes, and any 64-bit value.
  size_t Size() {
    const uint8_t kind = Byte();
    switch (kind % 8) {
      case 0:
      case 1:
      case 2:
        return Byte();  // 0..255
      case 3:
        return kEdgeSizes[Below(kEdgeSizeCount)];
      case 4:
      case 5: {
        const size_t power = size_t{1} << (Byte() % 64);
        return power + static_cast<size_t>(static_cast<int>(Byte() % 5) - 2);
      }
      case 6:
        return U16();  // 0..65535
      default:
        return static_cast<size_t>(U64());
    }
  }

  // An alignment for aligned allocation: mostly powers of two from 1 to
  // 2^63, sometimes a value that is not a power of two.
  size_t Alignment() {
    const uint8_t kind = Byte();
    switch (kind % 4) {
      case 0:
      case 1:
        return size_t{1} << (Byte() % 13);  // 1..4096
      case 2:
        return size_t{1} << (Byte() % 64);
      default:
        return kEdgeAlignments[Below(kEdgeAlignmentCount)];
    }
  }

 private:
  static constexpr size_t kMax = std::numeric_limits<size_t>::max();
  static constexpr size_t kEdgeSizes[] = {
      0,
      1,
      2,
      7,
      8,
      9,
      15,
      16,
      17,
      23,
      24,
      25,
      31,
      32,
      33,
      40,
      47,
      48,
      64,
      100,
      127,
      128,
      129,
      255,
      256,
      257,
      496,
      511,
      512,
      513,
      1000,
      1023,
      1024,
      1025,
      4095,
      4096,
      4097,
      16384,
      65535,
      65536,
      kMax / 2,
      kMax - 64,
      kMax - 16,
      kMax - 15,
      kMax - 8,
      kMax - 7,
      kMax - 1,
      kMax,
      size_t{1} << 31,
      size_t{1} << 32,
      (size_t{1} << 40) - 24,
      (size_t{1} << 40) - 23,
      (size_t{1} << 40) - 16,
      (size_t{1} << 40),
  };
  static constexpr size_t kEdgeSizeCount =
      sizeof(kEdgeSizes) / sizeof(kEdgeSizes[0]);
  static constexpr size_t kEdgeAlignments[] = {
      0,
      3,
      5,
      24,
      48,
      96,
      (size_t{1} << 31) - 1,
      (size_t{1} << 31) + 1,
      size_t{1} << 32,
      kMax,
      kMax / 2 + 1,
  };
  static constexpr size_t kEdgeAlignmentCount =
      sizeof(kEdgeAlignments) / sizeof(kEdgeAlignments[0]);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace fmemp::fuzz

#endif  // FMEMP_FUZZ_BYTE_READER_H_
