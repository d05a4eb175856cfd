// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "examples/kv_server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kv_server {
namespace {

constexpr size_t kReadChunk = 16 << 10;
// Reads per readiness event, so one busy connection cannot starve others.
constexpr int kReadsPerEvent = 8;
constexpr int kAcceptsPerEvent = 64;
constexpr int kEventsPerWait = 64;
// A worker with no event for this long calls EntryMemory::OnIdle. Another
// worker's connection may free this worker's entries (FLUSHALL, DEL) while
// this one gets no request: with EPOLLEXCLUSIVE the listening socket wakes
// idle workers in a fixed order, so a worker can stay idle indefinitely.
constexpr int kIdleMs = 100;

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

// One client connection, owned by the worker that accepted it.
struct Connection {
  int fd = -1;
  std::string in;
  std::string out;
  size_t sent = 0;           // bytes of `out` already written
  bool close_after = false;  // QUIT or a protocol error: close once flushed
  uint32_t events = 0;       // the epoll interest set now registered
};

class Server::Worker {
 public:
  Worker(Server* server) : server_(server) {}
  ~Worker() {
    for (auto& [fd, conn] : connections_) close(fd);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  absl::Status Init() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return ErrnoStatus("epoll_create1");
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.fd = server_->listen_fd_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, server_->listen_fd_, &ev) != 0) {
      return ErrnoStatus("epoll_ctl(listen)");
    }
    ev.events = EPOLLIN;
    ev.data.fd = server_->stop_fd_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, server_->stop_fd_, &ev) != 0) {
      return ErrnoStatus("epoll_ctl(stop)");
    }
    return absl::OkStatus();
  }

  void StartThread() {
    thread_ = std::thread([this] { Run(); });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    if (absl::Status s = server_->memory_->AttachThread(); !s.ok()) {
      std::fprintf(stderr, "kv_server: worker attach: %s\n",
                   std::string(s.message()).c_str());
    }
    epoll_event events[kEventsPerWait];
    bool stopping = false;
    while (!stopping) {
      const int n = epoll_wait(epoll_fd_, events, kEventsPerWait, kIdleMs);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("kv_server: epoll_wait");
        break;
      }
      if (n == 0) server_->memory_->OnIdle();
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == server_->stop_fd_) {
          stopping = true;
        } else if (fd == server_->listen_fd_) {
          AcceptAll();
        } else {
          OnEvent(fd, events[i].events);
        }
      }
    }
    // Free every connection's buffers before leaving the thread (and, with
    // thread_heaps, before giving the region back).
    for (auto& [fd, conn] : connections_) close(fd);
    server_->counters_.connected.fetch_sub(
        static_cast<int64_t>(connections_.size()), std::memory_order_relaxed);
    connections_.clear();
    server_->memory_->DetachThread();
  }

  void AcceptAll() {
    for (int i = 0; i < kAcceptsPerEvent; ++i) {
      const int fd = accept4(server_->listen_fd_, nullptr, nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN (another worker took it) or an error
      Counters& c = server_->counters_;
      if (c.connected.load(std::memory_order_relaxed) >=
          server_->options_.max_clients) {
        static constexpr char kFull[] =
            "-ERR max number of clients reached\r\n";
        (void)!send(fd, kFull, sizeof(kFull) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
        c.rejected.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto conn = std::make_unique<Connection>();
      conn->fd = fd;
      conn->events = EPOLLIN | EPOLLRDHUP;
      epoll_event ev = {};
      ev.events = conn->events;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        continue;
      }
      connections_.emplace(fd, std::move(conn));
      c.connected.fetch_add(1, std::memory_order_relaxed);
      c.accepted.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void OnEvent(int fd, uint32_t events) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Connection& conn = *it->second;
    bool open = true;
    if (events & EPOLLERR) open = false;
    if (open && (events & EPOLLOUT)) {
      // Once output drains, serve the requests that waited behind it.
      open = Flush(conn);
      if (open) Serve(conn);
      if (open) open = Flush(conn);
    }
    if (open && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
      open = ReadAndServe(conn);
    }
    if (open) open = UpdateInterest(conn);
    if (!open) Close(fd);
  }

  // Reads what is available, serves complete requests, writes replies.
  // Returns false when the connection should close.
  bool ReadAndServe(Connection& conn) {
    bool peer_closed = false;
    for (int i = 0; i < kReadsPerEvent && !Paused(conn); ++i) {
      char buffer[kReadChunk];
      const ssize_t n = recv(conn.fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        conn.in.append(buffer, static_cast<size_t>(n));
        Serve(conn);
        if (static_cast<size_t>(n) < sizeof(buffer)) break;
        continue;
      }
      if (n == 0) {
        peer_closed = true;
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return false;  // reset by peer, or worse
      }
      break;
    }
    if (!Flush(conn)) return false;
    // A peer that closed its side gets the replies already produced (best
    // effort) and nothing more.
    return !peer_closed;
  }

  bool Paused(const Connection& conn) const {
    return conn.close_after ||
           conn.out.size() - conn.sent >= server_->options_.max_output_bytes;
  }

  // Runs every complete request in conn.in, until output backs up.
  void Serve(Connection& conn) {
    size_t offset = 0;
    while (!Paused(conn)) {
      const ParseResult parsed =
          ParseCommand(absl::string_view(conn.in).substr(offset),
                       server_->options_.limits, &args_);
      if (parsed.status == ParseStatus::kIncomplete) break;
      if (parsed.status == ParseStatus::kError) {
        AppendError(absl::StrCat("ERR ", parsed.error), &conn.out);
        server_->counters_.protocol_errors.fetch_add(1,
                                                     std::memory_order_relaxed);
        conn.close_after = true;
        offset = conn.in.size();
        break;
      }
      offset += parsed.consumed;
      if (server_->handler_.Execute(args_, &conn.out) ==
          CommandHandler::After::kClose) {
        conn.close_after = true;
      }
    }
    args_.clear();
    conn.in.erase(0, offset);
  }

  // Writes pending output. False when the connection should close (an
  // error, or everything written after QUIT / a protocol error).
  bool Flush(Connection& conn) {
    while (conn.sent < conn.out.size()) {
      const ssize_t n =
          send(conn.fd, conn.out.data() + conn.sent,
               conn.out.size() - conn.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        conn.sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      return false;
    }
    conn.out.clear();
    conn.sent = 0;
    // A large reply's buffer is not kept for the connection's lifetime.
    if (conn.out.capacity() > (size_t{64} << 10)) conn.out.shrink_to_fit();
    return !conn.close_after;
  }

  bool UpdateInterest(Connection& conn) {
    // A paused connection waits for EPOLLOUT only: with EPOLLRDHUP still
    // armed, a peer that half-closed would wake this worker in a loop.
    uint32_t wanted = 0;
    if (!Paused(conn)) wanted |= EPOLLIN | EPOLLRDHUP;
    if (conn.sent < conn.out.size()) wanted |= EPOLLOUT;
    if (wanted == conn.events) return true;
    epoll_event ev = {};
    ev.events = wanted;
    ev.data.fd = conn.fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &ev) != 0) return false;
    conn.events = wanted;
    return true;
  }

  void Close(int fd) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    connections_.erase(fd);
    server_->counters_.connected.fetch_sub(1, std::memory_order_relaxed);
  }

  Server* const server_;
  int epoll_fd_ = -1;
  std::thread thread_;
  absl::flat_hash_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<absl::string_view> args_;  // reused by Serve
};

Server::Server(ServerOptions options, Store* store, EntryMemory* memory)
    : options_(std::move(options)),
      memory_(memory),
      handler_(
          store, memory, [this](std::string* out) { AppendServerInfo(out); },
          [this](std::string* out) { AppendClientsInfo(out); }) {}

Server::~Server() {
  Stop();
  Wait();
  workers_.clear();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

absl::Status Server::Start() {
  if (options_.threads < 1) {
    return absl::InvalidArgumentError("--threads must be at least 1");
  }
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(options_.port));
  if (options_.port < 0 || options_.port > 65535 ||
      inet_pton(AF_INET, options_.bind.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address ", options_.bind, ":", options_.port));
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoStatus("socket");
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address),
           sizeof(address)) != 0) {
    return ErrnoStatus(
        absl::StrCat("bind ", options_.bind, ":", options_.port));
  }
  if (listen(listen_fd_, 511) != 0) return ErrnoStatus("listen");
  socklen_t length = sizeof(address);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) !=
      0) {
    return ErrnoStatus("getsockname");
  }
  port_ = ntohs(address.sin_port);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return ErrnoStatus("eventfd");

  for (int i = 0; i < options_.threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(this));
    if (absl::Status s = workers_.back()->Init(); !s.ok()) return s;
  }
  for (auto& worker : workers_) worker->StartThread();
  return absl::OkStatus();
}

void Server::Stop() {
  if (stop_fd_ < 0) return;
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
}

void Server::Wait() {
  for (auto& worker : workers_) worker->Join();
}

void Server::AppendServerInfo(std::string* out) const {
  absl::StrAppend(out, options_.description, "tcp_port:", port_, "\r\n",
                  "process_id:", getpid(), "\r\n", "threads:", options_.threads,
                  "\r\n");
}

void Server::AppendClientsInfo(std::string* out) const {
  absl::StrAppend(
      out,
      "connected_clients:", counters_.connected.load(std::memory_order_relaxed),
      "\r\n", "total_connections_received:",
      counters_.accepted.load(std::memory_order_relaxed), "\r\n",
      "rejected_connections:",
      counters_.rejected.load(std::memory_order_relaxed), "\r\n",
      "protocol_errors:",
      counters_.protocol_errors.load(std::memory_order_relaxed), "\r\n");
}

}  // namespace kv_server
