// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "examples/kv_server/resp.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kv_server {
namespace {

// "*" or "$", up to 19 digits (a sign included), CR LF.
constexpr size_t kMaxHeaderLine = 24;

enum class LineStatus { kFound, kIncomplete, kTooLong };

// Looks for CR LF in input[begin, begin + limit + 2); on kFound, *end is the
// index of the CR.
LineStatus FindCrLf(absl::string_view input, size_t begin, size_t limit,
                    size_t* end) {
  const size_t stop = std::min(input.size(), begin + limit + 2);
  for (size_t i = begin; i + 1 < stop; ++i) {
    if (input[i] == '\r' && input[i + 1] == '\n') {
      *end = i;
      return LineStatus::kFound;
    }
  }
  return input.size() >= begin + limit + 2 ? LineStatus::kTooLong
                                           : LineStatus::kIncomplete;
}

// A decimal integer, optionally negative, at most 18 digits (so it cannot
// overflow int64_t).
bool ParseLength(absl::string_view text, int64_t* value) {
  bool negative = false;
  if (!text.empty() && text[0] == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty() || text.size() > 18) return false;
  int64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    result = result * 10 + (c - '0');
  }
  *value = negative ? -result : result;
  return true;
}

ParseResult Error(std::string message) {
  ParseResult result;
  result.status = ParseStatus::kError;
  result.error = std::move(message);
  return result;
}

ParseResult Parsed(size_t consumed) {
  ParseResult result;
  result.status = ParseStatus::kCommand;
  result.consumed = consumed;
  return result;
}

ParseResult ParseMultiBulk(absl::string_view input, const RespLimits& limits,
                           std::vector<absl::string_view>* args) {
  size_t line_end = 0;
  switch (FindCrLf(input, 1, kMaxHeaderLine, &line_end)) {
    case LineStatus::kIncomplete:
      return ParseResult{};
    case LineStatus::kTooLong:
      return Error("Protocol error: invalid multibulk length");
    case LineStatus::kFound:
      break;
  }
  int64_t count = 0;
  if (!ParseLength(input.substr(1, line_end - 1), &count) ||
      count > static_cast<int64_t>(limits.max_array_count)) {
    return Error("Protocol error: invalid multibulk length");
  }
  size_t pos = line_end + 2;
  if (count <= 0) return Parsed(pos);  // "*0" and "*-1": nothing to run

  size_t declared = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (pos >= input.size()) break;
    if (input[pos] != '$') {
      return Error(absl::StrCat("Protocol error: expected '$', got '",
                                absl::CEscape(input.substr(pos, 1)), "'"));
    }
    switch (FindCrLf(input, pos + 1, kMaxHeaderLine, &line_end)) {
      case LineStatus::kIncomplete:
        args->clear();
        return ParseResult{};
      case LineStatus::kTooLong:
        return Error("Protocol error: invalid bulk length");
      case LineStatus::kFound:
        break;
    }
    int64_t length = 0;
    if (!ParseLength(input.substr(pos + 1, line_end - pos - 1), &length) ||
        length < 0 || static_cast<uint64_t>(length) > limits.max_bulk_bytes) {
      return Error("Protocol error: invalid bulk length");
    }
    declared += static_cast<size_t>(length);
    if (declared > limits.max_request_bytes) {
      return Error("Protocol error: request too large");
    }
    const size_t body = line_end + 2;
    const size_t body_end = body + static_cast<size_t>(length);
    if (input.size() < body_end + 2) {
      pos = input.size();
      break;
    }
    if (input[body_end] != '\r' || input[body_end + 1] != '\n') {
      return Error("Protocol error: bulk string not terminated by CRLF");
    }
    args->push_back(input.substr(body, static_cast<size_t>(length)));
    pos = body_end + 2;
  }
  if (args->size() < static_cast<size_t>(count)) {
    args->clear();
    return ParseResult{};
  }
  return Parsed(pos);
}

ParseResult ParseInline(absl::string_view input, const RespLimits& limits,
                        std::vector<absl::string_view>* args) {
  const size_t newline =
      input.substr(0, limits.max_inline_bytes + 1).find('\n');
  if (newline == absl::string_view::npos) {
    if (input.size() > limits.max_inline_bytes) {
      return Error("Protocol error: too big inline request");
    }
    return ParseResult{};
  }
  absl::string_view line = input.substr(0, newline);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) {
      if (args->size() == limits.max_array_count) {
        args->clear();
        return Error("Protocol error: too many inline arguments");
      }
      args->push_back(line.substr(start, i - start));
    }
  }
  return Parsed(newline + 1);
}

void AppendLine(char type, absl::string_view text, std::string* out) {
  out->push_back(type);
  const size_t start = out->size();
  out->append(text.data(), text.size());
  std::replace_if(
      out->begin() + static_cast<std::ptrdiff_t>(start), out->end(),
      [](char c) { return c == '\r' || c == '\n'; }, ' ');
  out->append("\r\n");
}

}  // namespace

ParseResult ParseCommand(absl::string_view input, const RespLimits& limits,
                         std::vector<absl::string_view>* args) {
  args->clear();
  if (input.empty()) return ParseResult{};
  ParseResult result = input[0] == '*' ? ParseMultiBulk(input, limits, args)
                                       : ParseInline(input, limits, args);
  if (result.status != ParseStatus::kCommand) args->clear();
  return result;
}

void AppendSimpleString(absl::string_view text, std::string* out) {
  AppendLine('+', text, out);
}

void AppendError(absl::string_view text, std::string* out) {
  AppendLine('-', text, out);
}

void AppendInteger(int64_t value, std::string* out) {
  absl::StrAppend(out, ":", value, "\r\n");
}

void AppendBulkString(absl::string_view bytes, std::string* out) {
  absl::StrAppend(out, "$", bytes.size(), "\r\n");
  out->append(bytes.data(), bytes.size());
  out->append("\r\n");
}

void AppendNullBulkString(std::string* out) { out->append("$-1\r\n"); }

void AppendArrayHeader(size_t count, std::string* out) {
  absl::StrAppend(out, "*", count, "\r\n");
}

}  // namespace kv_server
