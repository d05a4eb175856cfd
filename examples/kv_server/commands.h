// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/commands.h
//
// CommandHandler: runs one parsed request against the Store and appends the
// RESP reply. Commands (names case-insensitive):
//
//   PING [message]          +PONG, or the message
//   ECHO message
//   SET key value           +OK; -OOM ... when the memory cap is reached;
//                           options (EX, NX, ...) are a syntax error
//   GET key                 bulk string or null
//   DEL key [key ...]       number removed
//   EXISTS key [key ...]    number present
//   DBSIZE                  number of keys
//   FLUSHALL / FLUSHDB      +OK (ASYNC/SYNC accepted); then trims memory
//   INFO [section ...]      server, clients, memory, stats, keyspace
//   CONFIG GET parameter    "save" and "appendonly" as a server without
//                           persistence answers; other names: empty array
//   COMMAND [...]           empty array (no command table)
//   QUIT                    +OK, then the connection closes
//
// Anything else is "-ERR unknown command". Thread safety: Execute may be
// called from any number of threads at once.

#ifndef FMEMP_EXAMPLES_KV_SERVER_COMMANDS_H_
#define FMEMP_EXAMPLES_KV_SERVER_COMMANDS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "examples/kv_server/entry_memory.h"
#include "examples/kv_server/store.h"

namespace kv_server {

// The reply of SET when the memory cap is reached (Redis's wording).
inline constexpr absl::string_view kOomError =
    "OOM command not allowed when used memory > 'maxmemory'.";

class CommandHandler {
 public:
  // Appends "name:value\r\n" lines for INFO's server and clients sections.
  using InfoSource = std::function<void(std::string* out)>;

  // `store` and `memory` must outlive the handler.
  CommandHandler(Store* store, EntryMemory* memory, InfoSource server_info,
                 InfoSource clients_info);

  enum class After { kContinue, kClose };
  After Execute(absl::Span<const absl::string_view> args, std::string* out);

 private:
  void Set(absl::Span<const absl::string_view> args, std::string* out);
  void Info(absl::Span<const absl::string_view> args, std::string* out);
  void ConfigGet(absl::string_view parameter, std::string* out);

  Store* const store_;
  EntryMemory* const memory_;
  const InfoSource server_info_;
  const InfoSource clients_info_;
  std::atomic<uint64_t> commands_{0};
  std::atomic<uint64_t> oom_replies_{0};
};

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_COMMANDS_H_
