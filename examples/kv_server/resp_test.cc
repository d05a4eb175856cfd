// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Tests of the RESP parser and encoders: complete, partial and pipelined
// requests, inline commands, every framing error and limit, and the
// property that a request split at any byte parses the same way.

#include "examples/kv_server/resp.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kv_server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ParseResult Parse(absl::string_view input, std::vector<absl::string_view>* args,
                  const RespLimits& limits = RespLimits()) {
  return ParseCommand(input, limits, args);
}

TEST(RespParseTest, MultiBulkCommand) {
  std::vector<absl::string_view> args;
  const std::string input = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
  const ParseResult r = Parse(input, &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_THAT(args, ElementsAre("SET", "key", "va\r\nl"));
}

TEST(RespParseTest, BinaryAndEmptyBulks) {
  std::vector<absl::string_view> args;
  const std::string input("*2\r\n$0\r\n\r\n$3\r\n\0\xff\n\r\n", 19);
  const ParseResult r = Parse(input, &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(r.consumed, input.size());
  EXPECT_THAT(args, ElementsAre("", absl::string_view("\0\xff\n", 3)));
}

TEST(RespParseTest, EveryPrefixIsIncompleteAndConsumesNothing) {
  const std::string input = "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
  std::vector<absl::string_view> args;
  for (size_t n = 0; n < input.size(); ++n) {
    const ParseResult r = Parse(absl::string_view(input).substr(0, n), &args);
    EXPECT_EQ(r.status, ParseStatus::kIncomplete) << "prefix " << n;
    EXPECT_EQ(r.consumed, 0u);
    EXPECT_THAT(args, IsEmpty());
  }
  EXPECT_EQ(Parse(input, &args).status, ParseStatus::kCommand);
}

TEST(RespParseTest, PipelinedRequestsOneAtATime) {
  const std::string input =
      "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
  std::vector<absl::string_view> args;
  absl::string_view rest = input;
  ParseResult r = Parse(rest, &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_THAT(args, ElementsAre("PING"));
  rest.remove_prefix(r.consumed);
  r = Parse(rest, &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_THAT(args, ElementsAre("GET", "k"));
  rest.remove_prefix(r.consumed);
  r = Parse(rest, &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_THAT(args, ElementsAre("PING"));
  EXPECT_EQ(r.consumed, rest.size());
}

TEST(RespParseTest, EmptyAndNullArraysAreNoOps) {
  std::vector<absl::string_view> args;
  ParseResult r = Parse("*0\r\n", &args);
  EXPECT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(r.consumed, 4u);
  EXPECT_THAT(args, IsEmpty());
  r = Parse("*-1\r\n", &args);
  EXPECT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(r.consumed, 5u);
}

TEST(RespParseTest, InlineCommands) {
  std::vector<absl::string_view> args;
  ParseResult r = Parse("  set  k\tv \r\nrest", &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(r.consumed, 13u);
  EXPECT_THAT(args, ElementsAre("set", "k", "v"));
  r = Parse("PING\n", &args);
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_THAT(args, ElementsAre("PING"));
  r = Parse("\r\n", &args);  // an empty line is an empty request
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_THAT(args, IsEmpty());
  EXPECT_EQ(Parse("PIN", &args).status, ParseStatus::kIncomplete);
}

struct BadInput {
  std::string input;
  std::string error;
};

TEST(RespParseTest, FramingErrors) {
  const std::vector<BadInput> cases = {
      {"*x\r\n", "invalid multibulk length"},
      {"*\r\n", "invalid multibulk length"},
      {"*1025\r\n", "invalid multibulk length"},
      {"*99999999999999999999\r\n", "invalid multibulk length"},
      {"*123456789012345678901234567890", "invalid multibulk length"},
      {"*1\r\n+PING\r\n", "expected '$', got '+'"},
      {"*1\r\n$-1\r\n", "invalid bulk length"},
      {"*1\r\n$abc\r\n", "invalid bulk length"},
      {"*1\r\n$1048577\r\n", "invalid bulk length"},
      {"*1\r\n$4\r\nPINGxx", "not terminated by CRLF"},
      {"*3\r\n$1048576\r\n", ""},  // valid so far: incomplete, not an error
      {"*3\r\n$1048576\r\n" + std::string(1048576, 'a') + "\r\n$1048576\r\n",
       ""},
      {"*3\r\n$1048576\r\n" + std::string(1048576, 'a') + "\r\n$1048576\r\n" +
           std::string(1048576, 'b') + "\r\n$1\r\n",
       "request too large"},
  };
  for (const BadInput& c : cases) {
    std::vector<absl::string_view> args;
    const ParseResult r = Parse(c.input, &args);
    const std::string shown = c.input.substr(0, 40);
    if (c.error.empty()) {
      EXPECT_EQ(r.status, ParseStatus::kIncomplete) << shown;
    } else {
      ASSERT_EQ(r.status, ParseStatus::kError) << shown;
      EXPECT_THAT(r.error, HasSubstr(c.error)) << shown;
      EXPECT_THAT(r.error, HasSubstr("Protocol error")) << shown;
    }
    EXPECT_THAT(args, IsEmpty());
  }
}

TEST(RespParseTest, LimitsAreConfigurable) {
  RespLimits limits;
  limits.max_bulk_bytes = 4;
  limits.max_array_count = 2;
  limits.max_inline_bytes = 8;
  std::vector<absl::string_view> args;
  EXPECT_EQ(Parse("*1\r\n$4\r\nPING\r\n", &args, limits).status,
            ParseStatus::kCommand);
  EXPECT_EQ(Parse("*1\r\n$5\r\n", &args, limits).status, ParseStatus::kError);
  EXPECT_EQ(Parse("*3\r\n", &args, limits).status, ParseStatus::kError);
  EXPECT_EQ(Parse("12345678", &args, limits).status, ParseStatus::kIncomplete);
  EXPECT_EQ(Parse("123456789", &args, limits).status, ParseStatus::kError);
  EXPECT_EQ(Parse("a b c\n", &args, limits).status, ParseStatus::kError);
}

TEST(RespEncodeTest, EveryType) {
  std::string out;
  AppendSimpleString("OK", &out);
  AppendError("ERR bad\r\nthing", &out);
  AppendInteger(-42, &out);
  AppendBulkString(absl::string_view("a\0b", 3), &out);
  AppendNullBulkString(&out);
  AppendArrayHeader(2, &out);
  EXPECT_EQ(out,
            absl::StrCat("+OK\r\n-ERR bad  thing\r\n:-42\r\n$3\r\n",
                         absl::string_view("a\0b", 3), "\r\n$-1\r\n*2\r\n"));
}

}  // namespace
}  // namespace kv_server
