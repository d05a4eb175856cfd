// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// examples/kv_server/server.h
//
// Server: the TCP front of the key-value server. It accepts connections on
// one listening socket and serves RESP requests (resp.h) through a
// CommandHandler (commands.h).
//
// Threading: `threads` workers, each with its own epoll instance. The
// listening socket is in every worker's epoll with EPOLLEXCLUSIVE, so the
// kernel wakes one worker per incoming connection; the worker that accepts a
// connection serves it until it closes. A worker never blocks except in
// epoll_wait: sockets are non-blocking and level-triggered. Chosen over a
// thread per connection because redis-benchmark opens many connections and
// a fixed set of workers keeps the thread count (and, with fmemp's
// thread_heaps policy, the number of per-thread regions) equal to
// --threads. Each worker calls EntryMemory::AttachThread when it starts and
// DetachThread when it ends.
//
// Guarantees
// * Bad input never crashes the server: a framing error or a request over
//   the limits gets "-ERR Protocol error: ..." and the connection is closed
//   once that reply is sent; a peer that vanishes mid-request is closed and
//   its buffers freed.
// * Bounded buffers per connection: input up to about the request limit
//   (RespLimits), output up to max_output_bytes (reading pauses until the
//   peer takes the replies; pipelined requests wait in the input buffer).
// * Stop() may be called from any thread; workers close every connection
//   they hold and exit; Wait() joins them. The destructor stops and waits.

#ifndef FMEMP_EXAMPLES_KV_SERVER_SERVER_H_
#define FMEMP_EXAMPLES_KV_SERVER_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "examples/kv_server/commands.h"
#include "examples/kv_server/entry_memory.h"
#include "examples/kv_server/resp.h"
#include "examples/kv_server/store.h"

namespace kv_server {

struct ServerOptions {
  std::string bind = "127.0.0.1";  // IPv4 address to listen on
  int port = 0;                    // 0: the kernel picks a free port
  int threads = 2;
  int max_clients = 1024;
  size_t max_output_bytes = size_t{4} << 20;  // per connection
  RespLimits limits;
  std::string description;  // INFO server lines, "name:value\r\n" each
};

class Server {
 public:
  // `store` and `memory` must outlive the server.
  Server(ServerOptions options, Store* store, EntryMemory* memory);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the workers.
  absl::Status Start();
  // The port bound by Start.
  int port() const { return port_; }
  void Stop();
  void Wait();

 private:
  class Worker;
  struct Counters {
    std::atomic<int64_t> connected{0};
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> rejected{0};
    std::atomic<uint64_t> protocol_errors{0};
  };

  void AppendServerInfo(std::string* out) const;
  void AppendClientsInfo(std::string* out) const;

  const ServerOptions options_;
  EntryMemory* const memory_;
  CommandHandler handler_;
  Counters counters_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd, readable once Stop() is called
  int port_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace kv_server

#endif  // FMEMP_EXAMPLES_KV_SERVER_SERVER_H_
