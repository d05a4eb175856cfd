// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "examples/kv_server/commands.h"

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "examples/kv_server/resp.h"

namespace kv_server {
namespace {

bool Is(absl::string_view arg, absl::string_view name) {
  return absl::EqualsIgnoreCase(arg, name);
}

void WrongArity(absl::string_view command, std::string* out) {
  AppendError(absl::StrCat("ERR wrong number of arguments for '",
                           absl::AsciiStrToLower(command), "' command"),
              out);
}

}  // namespace

CommandHandler::CommandHandler(Store* store, EntryMemory* memory,
                               InfoSource server_info, InfoSource clients_info)
    : store_(store),
      memory_(memory),
      server_info_(std::move(server_info)),
      clients_info_(std::move(clients_info)) {}

CommandHandler::After CommandHandler::Execute(
    absl::Span<const absl::string_view> args, std::string* out) {
  if (args.empty()) return After::kContinue;
  commands_.fetch_add(1, std::memory_order_relaxed);
  const absl::string_view name = args[0];
  const size_t argc = args.size();

  if (Is(name, "GET")) {
    if (argc != 2) {
      WrongArity(name, out);
      return After::kContinue;
    }
    if (!store_->Get(args[1], [out](absl::string_view value) {
          AppendBulkString(value, out);
        })) {
      AppendNullBulkString(out);
    }
  } else if (Is(name, "SET")) {
    Set(args, out);
  } else if (Is(name, "PING")) {
    if (argc > 2) {
      WrongArity(name, out);
      return After::kContinue;
    }
    if (argc == 2) {
      AppendBulkString(args[1], out);
    } else {
      AppendSimpleString("PONG", out);
    }
  } else if (Is(name, "ECHO")) {
    if (argc != 2) {
      WrongArity(name, out);
      return After::kContinue;
    }
    AppendBulkString(args[1], out);
  } else if (Is(name, "DEL") || Is(name, "UNLINK")) {
    if (argc < 2) {
      WrongArity(name, out);
      return After::kContinue;
    }
    int64_t removed = 0;
    for (size_t i = 1; i < argc; ++i) removed += store_->Delete(args[i]);
    AppendInteger(removed, out);
  } else if (Is(name, "EXISTS")) {
    if (argc < 2) {
      WrongArity(name, out);
      return After::kContinue;
    }
    int64_t present = 0;
    for (size_t i = 1; i < argc; ++i) present += store_->Exists(args[i]);
    AppendInteger(present, out);
  } else if (Is(name, "DBSIZE")) {
    if (argc != 1) {
      WrongArity(name, out);
      return After::kContinue;
    }
    AppendInteger(static_cast<int64_t>(store_->Size()), out);
  } else if (Is(name, "FLUSHALL") || Is(name, "FLUSHDB")) {
    if (argc > 2 ||
        (argc == 2 && !Is(args[1], "ASYNC") && !Is(args[1], "SYNC"))) {
      AppendError("ERR syntax error", out);
      return After::kContinue;
    }
    store_->Clear();
    memory_->Trim();
    AppendSimpleString("OK", out);
  } else if (Is(name, "FMEMP.RETIRE")) {
    // FMEMP.RETIRE <region>: retire a live region (INFO's numbering); it
    // is unmapped once its keys are gone (after FLUSHALL, or on the next
    // trim).
    size_t index = 0;
    if (argc != 2 || !absl::SimpleAtoi(args[1], &index)) {
      WrongArity(name, out);
      return After::kContinue;
    }
    if (absl::Status s = memory_->RetireRegion(index); !s.ok()) {
      AppendError(absl::StrCat("ERR ", s.message()), out);
    } else {
      AppendSimpleString("OK", out);
    }
  } else if (Is(name, "INFO")) {
    Info(args, out);
  } else if (Is(name, "CONFIG")) {
    if (argc == 3 && Is(args[1], "GET")) {
      ConfigGet(args[2], out);
    } else if (argc >= 2 && !Is(args[1], "GET")) {
      AppendError("ERR only CONFIG GET is supported", out);
    } else {
      WrongArity("config|get", out);
    }
  } else if (Is(name, "COMMAND")) {
    AppendArrayHeader(0, out);
  } else if (Is(name, "QUIT")) {
    AppendSimpleString("OK", out);
    return After::kClose;
  } else {
    std::string shown(name.substr(0, 64));
    AppendError(absl::StrCat("ERR unknown command '", shown, "'"), out);
  }
  return After::kContinue;
}

void CommandHandler::Set(absl::Span<const absl::string_view> args,
                         std::string* out) {
  if (args.size() < 3) return WrongArity(args[0], out);
  if (args.size() > 3) return AppendError("ERR syntax error", out);
  if (store_->Set(args[1], args[2])) {
    AppendSimpleString("OK", out);
  } else {
    oom_replies_.fetch_add(1, std::memory_order_relaxed);
    AppendError(kOomError, out);
  }
}

void CommandHandler::ConfigGet(absl::string_view parameter, std::string* out) {
  // What a Redis server without persistence answers; redis-benchmark asks
  // for these two when it starts.
  if (Is(parameter, "save")) {
    AppendArrayHeader(2, out);
    AppendBulkString("save", out);
    AppendBulkString("", out);
  } else if (Is(parameter, "appendonly")) {
    AppendArrayHeader(2, out);
    AppendBulkString("appendonly", out);
    AppendBulkString("no", out);
  } else {
    AppendArrayHeader(0, out);
  }
}

void CommandHandler::Info(absl::Span<const absl::string_view> args,
                          std::string* out) {
  auto wanted = [&](absl::string_view section) {
    if (args.size() == 1) return true;
    for (size_t i = 1; i < args.size(); ++i) {
      if (Is(args[i], section) || Is(args[i], "all") ||
          Is(args[i], "everything") || Is(args[i], "default")) {
        return true;
      }
    }
    return false;
  };
  std::string text;
  if (wanted("server")) {
    text += "# Server\r\n";
    server_info_(&text);
    text += "\r\n";
  }
  if (wanted("clients")) {
    text += "# Clients\r\n";
    clients_info_(&text);
    text += "\r\n";
  }
  if (wanted("memory")) {
    text += "# Memory\r\n";
    memory_->AppendInfo(&text);
    text += "\r\n";
  }
  if (wanted("stats")) {
    absl::StrAppend(
        &text, "# Stats\r\ntotal_commands_processed:",
        commands_.load(std::memory_order_relaxed), "\r\n",
        "oom_replies:", oom_replies_.load(std::memory_order_relaxed), "\r\n",
        "evicted_keys:", store_->evicted_keys(), "\r\n\r\n");
  }
  if (wanted("keyspace")) {
    absl::StrAppend(&text, "# Keyspace\r\n");
    const size_t keys = store_->Size();
    if (keys > 0) {
      absl::StrAppend(&text, "db0:keys=", keys, ",expires=0,avg_ttl=0\r\n");
    }
  }
  AppendBulkString(text, out);
}

}  // namespace kv_server
