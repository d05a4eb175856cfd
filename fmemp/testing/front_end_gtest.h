// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/testing/front_end_gtest.h
//
// Runs a gtest typed suite over a list of front_end_list.h, each test named
// after its front-end ("StressTest/CachingMempMutex.Run"):
//
//   template <typename FrontEnd>
//   class MyTest : public testing::Test {};
//   FMEMP_FRONT_END_TYPED_TEST_SUITE(MyTest, fmemp::testkit::AllFrontEnds);
//   TYPED_TEST(MyTest, Works) { TypeParam front_end; ... }

#ifndef FMEMP_TESTING_FRONT_END_GTEST_H_
#define FMEMP_TESTING_FRONT_END_GTEST_H_

#include <string>

#include "fmemp/testing/front_end_list.h"
#include "gtest/gtest.h"

namespace fmemp::testkit {

// gtest's ::testing::Types of a FrontEndList.
template <typename List>
struct GtestTypesOf;
template <typename... FrontEnds>
struct GtestTypesOf<FrontEndList<FrontEnds...>> {
  using type = ::testing::Types<FrontEnds...>;
};

// The name generator for TYPED_TEST_SUITE: each front-end's Name().
struct FrontEndNames {
  template <typename FrontEnd>
  static std::string GetName(int) {
    return FrontEnd::Name();
  }
};

}  // namespace fmemp::testkit

#define FMEMP_FRONT_END_TYPED_TEST_SUITE(suite, list)                  \
  using suite##FrontEnds = ::fmemp::testkit::GtestTypesOf<list>::type; \
  TYPED_TEST_SUITE(suite, suite##FrontEnds, ::fmemp::testkit::FrontEndNames)

#endif  // FMEMP_TESTING_FRONT_END_GTEST_H_
