// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/resp.h
//
// The subset of RESP (the Redis serialization protocol, version 2) that the
// key-value server speaks: requests as arrays of bulk strings (what
// redis-cli and redis-benchmark send) or as inline commands (a line of
// space-separated words, what a person types into a raw TCP session), and
// replies of every RESP2 type.
//
// Guarantees
// * ParseCommand never reads outside `input`, never allocates beyond the
//   argument vector, and is stateless: call it again on the same bytes plus
//   more and it gives the same answer. It only scans header lines (a few
//   bytes each) and skips bulk bodies by length, so re-parsing a buffer that
//   grows is O(arguments), not O(bytes).
// * Every limit in RespLimits is enforced before the bytes it would admit
//   have arrived: a declared bulk length, array count or request size over
//   its limit is an error at once, so a peer cannot make the server buffer
//   more than about max_request_bytes of one request.
// * An error is final for the connection: the server replies "-ERR <error>"
//   and closes it (the stream position is unknown after bad framing).

#ifndef FMEMP_EXAMPLES_KV_SERVER_RESP_H_
#define FMEMP_EXAMPLES_KV_SERVER_RESP_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kv_server {

struct RespLimits {
  size_t max_bulk_bytes = size_t{1} << 20;     // one argument
  size_t max_array_count = 1024;               // arguments of one request
  size_t max_request_bytes = size_t{2} << 20;  // declared bulk bytes, summed
  size_t max_inline_bytes = size_t{64} << 10;  // one inline command line
};

enum class ParseStatus {
  kIncomplete,  // need more bytes; nothing consumed
  kCommand,     // one request parsed (possibly empty: ignore it)
  kError,       // malformed or over a limit; see ParseResult::error
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  size_t consumed = 0;  // bytes of `input` the request used (kCommand)
  std::string error;    // kError: text after "-ERR "
};

// Parses the first request in `input`. On kCommand, `args` holds views into
// `input` (valid while `input` is) and `consumed` its length; otherwise
// `args` is cleared.
ParseResult ParseCommand(absl::string_view input, const RespLimits& limits,
                         std::vector<absl::string_view>* args);

// Reply encoders: each appends one RESP2 value to `out`. Simple strings and
// errors must not contain CR or LF (they are replaced by spaces).
void AppendSimpleString(absl::string_view text, std::string* out);
void AppendError(absl::string_view text, std::string* out);  // "-" + text
void AppendInteger(int64_t value, std::string* out);
void AppendBulkString(absl::string_view bytes, std::string* out);
void AppendNullBulkString(std::string* out);
void AppendArrayHeader(size_t count, std::string* out);

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_RESP_H_
