// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// kv_server: a multithreaded key-value server speaking enough RESP for
// redis-cli and redis-benchmark, with its keys and values in fmemp (or in
// glibc malloc, for comparison). docs/SERVER.md has measurements.
//
//   kv_server --port=0 --port_file=/tmp/port --threads=2 --policy=mutex
//             --region_mb=8 --max_mb=256
//
// Components: resp.h (protocol), store.h (sharded table; entries in an
// EntryMemory), fmemp_entry_memory.h / glibc_entry_memory.h (where entries
// live), commands.h (what each command does), server.h (epoll workers).
//
// SIGINT or SIGTERM shuts it down: workers stop and close their
// connections, every entry is freed, empty regions are given back, fmemp's
// integrity check runs, and the exit status is 0 only if the check passed
// and no entry bytes remain in use.

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "examples/kv_server/entry_memory.h"
#include "examples/kv_server/fmemp_entry_memory.h"
#include "examples/kv_server/glibc_entry_memory.h"
#include "examples/kv_server/server.h"
#include "examples/kv_server/store.h"

ABSL_FLAG(int, port, 0, "TCP port; 0 picks a free one (printed at start)");
ABSL_FLAG(std::string, bind, "127.0.0.1", "IPv4 address to listen on");
ABSL_FLAG(int, threads, 2, "worker threads (each has an epoll loop)");
ABSL_FLAG(std::string, allocator, "fmemp",
          "where keys and values live: fmemp or glibc");
ABSL_FLAG(std::string, policy, "mutex",
          "fmemp policy: mutex, spinlock, thread_cache or thread_heaps");
ABSL_FLAG(int64_t, region_mb, 8, "size of each fmemp region, MiB");
ABSL_FLAG(int64_t, max_mb, 256,
          "maxmemory: cap on the memory for keys and values, MiB (fmemp's "
          "hard limit); past it SET answers -OOM");
ABSL_FLAG(std::string, maxmemory_policy, "noeviction",
          "noeviction, or allkeys-random: from 90% of --max_mb (fmemp's soft "
          "limit) random keys are evicted down to 80% (--allocator=fmemp)");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound port is written there (for scripts)");
ABSL_FLAG(int64_t, max_bulk_kb, 1024, "largest argument accepted, KiB");
ABSL_FLAG(bool, print_policies, false,
          "print the fmemp policies this build supports and exit");

namespace kv_server {
namespace {

// How this binary was built, for INFO and the start-up line.
constexpr const char* BuildMode() {
#if defined(__SANITIZE_THREAD__)
  return "tsan";
#elif defined(__SANITIZE_ADDRESS__)
  return "asan";
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return "tsan";
#elif __has_feature(address_sanitizer)
  return "asan";
#endif
#endif
#ifdef NDEBUG
  return "opt";
#else
  return "dbg";
#endif
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kv_server: %s\n", status.ToString().c_str());
  return 2;
}

// Writes the port through a temporary file and a rename, so a reader never
// sees a partial number.
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream file(temp, std::ios::trunc);
    file << port << "\n";
    if (!file.good()) {
      return absl::InternalError(absl::StrCat("cannot write ", temp));
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename to ", path));
  }
  return absl::OkStatus();
}

int Main() {
  if (absl::GetFlag(FLAGS_print_policies)) {
    for (PoolPolicy policy : AvailablePoolPolicies()) {
      std::printf("%s\n", std::string(PoolPolicyName(policy)).c_str());
    }
    return 0;
  }
  const int64_t region_mb = absl::GetFlag(FLAGS_region_mb);
  const int64_t max_mb = absl::GetFlag(FLAGS_max_mb);
  if (region_mb < 1 || max_mb < 1 || region_mb > (int64_t{1} << 20) ||
      max_mb > (int64_t{1} << 20)) {
    return Fail(absl::InvalidArgumentError(
        "--region_mb and --max_mb must be between 1 and 1048576"));
  }
  const size_t max_bytes = static_cast<size_t>(max_mb) << 20;

  // Where keys and values live.
  const std::string allocator = absl::GetFlag(FLAGS_allocator);
  std::string description =
      absl::StrCat("server:fmemp_kv_server\r\nbuild_mode:", BuildMode(), "\r\n",
                   "allocator:", allocator, "\r\n");
  std::unique_ptr<EntryMemory> memory;
  if (allocator == "glibc") {
    memory = std::make_unique<GlibcEntryMemory>(max_bytes);
  } else if (allocator == "fmemp") {
    absl::StatusOr<PoolPolicy> policy =
        ParsePoolPolicy(absl::GetFlag(FLAGS_policy));
    if (!policy.ok()) return Fail(policy.status());
    FmempOptions options;
    options.policy = *policy;
    options.region_bytes = static_cast<size_t>(region_mb) << 20;
    options.max_bytes = max_bytes;
    absl::StatusOr<std::unique_ptr<FmempEntryMemory>> fmemp =
        FmempEntryMemory::Create(options);
    if (!fmemp.ok()) return Fail(fmemp.status());
    memory = *std::move(fmemp);
    absl::StrAppend(&description, "fmemp_policy:", PoolPolicyName(*policy),
                    "\r\n");
  } else {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--allocator must be fmemp or glibc, not ", allocator)));
  }
  Store store(memory.get());
  const std::string maxmemory_policy = absl::GetFlag(FLAGS_maxmemory_policy);
  if (maxmemory_policy == "allkeys-random") {
    if (!memory->SetEvictor(
            [&store](size_t bytes) { return store.Evict(bytes); })) {
      return Fail(absl::InvalidArgumentError(
          "--maxmemory_policy=allkeys-random needs --allocator=fmemp"));
    }
  } else if (maxmemory_policy != "noeviction") {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--maxmemory_policy must be noeviction or allkeys-random, not ",
        maxmemory_policy)));
  }
  absl::StrAppend(&description, "maxmemory_policy:", maxmemory_policy, "\r\n");

  ServerOptions options;
  options.bind = absl::GetFlag(FLAGS_bind);
  options.port = absl::GetFlag(FLAGS_port);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.description = description;
  const int64_t max_bulk_kb = absl::GetFlag(FLAGS_max_bulk_kb);
  if (max_bulk_kb < 1 || max_bulk_kb > (int64_t{512} << 10)) {
    return Fail(absl::InvalidArgumentError("--max_bulk_kb out of range"));
  }
  options.limits.max_bulk_bytes = static_cast<size_t>(max_bulk_kb) << 10;
  options.limits.max_request_bytes = 2 * options.limits.max_bulk_bytes;

  // Signals are taken synchronously by this thread (sigwait); the workers
  // inherit the blocked mask, and SIGPIPE is ignored (sends use
  // MSG_NOSIGNAL too).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // A shell starts background jobs with SIGINT ignored; restore the default
  // so that, blocked, it is still delivered to sigwait.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int exit_code = 0;
  {
    Server server(std::move(options), &store, memory.get());
    if (absl::Status s = server.Start(); !s.ok()) return Fail(s);
    std::printf(
        "kv_server: listening on %s:%d (allocator=%s policy=%s threads=%d "
        "build=%s)\n",
        absl::GetFlag(FLAGS_bind).c_str(), server.port(), allocator.c_str(),
        allocator == "fmemp" ? absl::GetFlag(FLAGS_policy).c_str() : "-",
        absl::GetFlag(FLAGS_threads), BuildMode());
    std::fflush(stdout);
    if (const std::string path = absl::GetFlag(FLAGS_port_file);
        !path.empty()) {
      if (absl::Status s = WritePortFile(path, server.port()); !s.ok()) {
        server.Stop();
        return Fail(s);
      }
    }
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    std::printf("kv_server: signal %d, shutting down\n", signal_number);
    server.Stop();
    server.Wait();
  }

  const size_t freed = store.Clear();
  memory->Trim();
  const absl::Status check = memory->Check();
  const uint64_t used = memory->UsedBytes();
  std::printf("kv_server: freed %zu entries; used=%llu; check=%s\n", freed,
              static_cast<unsigned long long>(used),
              check.ok() ? "ok" : check.ToString().c_str());
  if (!check.ok() || used != 0) exit_code = 1;
  return exit_code;
}

}  // namespace
}  // namespace kv_server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "RESP key-value server with keys and values in fmemp. "
      "Example: kv_server --port=0 --policy=spinlock --threads=2");
  absl::ParseCommandLine(argc, argv);
  return kv_server::Main();
}
