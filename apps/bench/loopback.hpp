#pragma once
// What the two-process benchmarks (`luoshu bench transport`, `luoshu bench
// ps`) share: the peer process (this binary started again with a hidden
// --peer flag, driven over a pipe and reaped at the end), raw loopback TCP
// with the bulk lane's framing (the baseline each of them measures in the
// same run, between the same two processes), and formatting helpers.

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "graph/tensor.hpp"
#include "transport/bulk/frame.hpp"
#include "transport/messages.hpp"

namespace luoshu::bench {

using steady = std::chrono::steady_clock;

/// Seconds since `t0`.
double since(steady::time_point t0);

/// Thrown inside a benchmark on any failure; caught at its edge.
struct bench_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Bad options (exit code 2, like other usage errors).
struct usage_error : bench_failure {
  using bench_failure::bench_failure;
};

// --- raw TCP with the lane's framing ---------------------------------------------

/// An owned file descriptor.
class fd_owner {
public:
  fd_owner() = default;
  explicit fd_owner(int fd) : fd_(fd) {}
  fd_owner(fd_owner&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_owner& operator=(fd_owner&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~fd_owner() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
};

/// TCP_NODELAY, as CAF sets on its sockets.
void set_nodelay(int fd);
/// A socket listening on 127.0.0.1 at an OS-chosen port (written to `port`).
fd_owner listen_loopback(uint16_t& port);
/// A connected socket to 127.0.0.1:`port`, TCP_NODELAY.
fd_owner connect_loopback(uint16_t port);
/// Reads exactly n bytes; false on EOF or error.
bool read_exact(int fd, char* p, size_t n);
/// Writes header + meta and the payload with one sendmsg (and more if
/// short); MSG_NOSIGNAL: a vanished peer is an error, not a SIGPIPE.
bool write_frame(int fd, const transport::wire_bytes& prefix, const void* payload, size_t n);

/// Reads frames from a raw socket into reused buffers, checking them as the
class raw_reader {
public:
  explicit raw_reader(int fd) : fd_(fd) { limits_.max_payload_bytes = uint64_t{1} << 31; }
  /// The next frame's meta (payload in payload()), nullopt on EOF; throws on
  /// a malformed frame.
  std::optional<transport::bulk::tensor_meta> next();
  const char* payload() const { return payload_.data(); }
  size_t payload_size() const { return size_; }

private:
  int fd_;
  transport::bulk::frame_limits limits_;
  std::vector<char> meta_, payload_;
  size_t size_ = 0;
};


/// The peer's raw TCP side, on its own thread: counts "data", answers "end"
/// with "ack" (step = frames counted) and "ping" with "pong". Stops when the
/// connection closes, or when destroyed (it shuts its sockets down).
class raw_server {
public:
  raw_server();
  raw_server(const raw_server&) = delete;
  raw_server& operator=(const raw_server&) = delete;
  ~raw_server();
  uint16_t port() const { return port_; }

private:
  void serve();

  uint16_t port_ = 0;
  fd_owner listen_;
  std::atomic<int> conn_{-1};
  std::thread thread_;
};

/// The benchmark's end of raw TCP to a raw_server.
struct raw_link {
  explicit raw_link(uint16_t port);
  fd_owner fd;
  std::optional<raw_reader> in;
  uint64_t seq = 0;
};

// --- the peer process -------------------------------------------------------------

/// The peer process: this binary again, run as `luoshu ARGS...`, its stdin
/// and stdout a control pipe. Killed and reaped on destruction unless
/// reaped before; it never outlives the benchmark.
class peer_process {
public:
  explicit peer_process(const std::vector<std::string>& args);
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
  ~peer_process();

  void send_line(const std::string& s);
  /// The next line the peer prints; throws if it exits or says nothing in time.
  std::string read_line(std::chrono::milliseconds timeout);
  /// Asks the peer to quit and reaps it; kills it after `timeout`.
  int finish(std::chrono::milliseconds timeout);

private:
  pid_t pid_ = -1;
  fd_owner to_, from_;
};

// --- throughput -------------------------------------------------------------------

/// One throughput measurement.
struct throughput {
  bool measured = false;
  std::string note; ///< why not measured
  uint64_t messages = 0;
  double seconds = 0;
  double gbps = 0; ///< 1e9 bytes per second
};

/// Sends for at least `seconds` (and at least 2 messages), then "end", and
/// waits for the peer's count. `send_one` sends one data message.
template <class SendOne, class EndAndCount>
throughput stream_for(double seconds, uint64_t bytes, SendOne&& send_one, EndAndCount&& end_and_count) {
  const auto t0 = steady::now();
  uint64_t n = 0;
  while (n < 2 || since(t0) < seconds) {
    send_one();
    ++n;
  }
  const uint64_t got = end_and_count();
  throughput r;
  r.seconds = since(t0);
  if (got != n) throw bench_failure("the peer counted " + std::to_string(got) + " of " + std::to_string(n) + " messages");
  r.measured = true;
  r.messages = n;
  r.gbps = static_cast<double>(n) * static_cast<double>(bytes) / r.seconds / 1e9;
  return r;
}

/// Raw TCP: `t` one way for `seconds`, counted by the peer's raw_server.
throughput raw_throughput(raw_link& l, const tensor& t, double seconds);

nlohmann::json to_json(const throughput& t);

// --- formatting -------------------------------------------------------------------

/// 1024 -> "1 KiB", 4194304 -> "4 MiB"; other values in bytes.
std::string human(uint64_t b);
/// "4096", "64K", "16M", "1G" (binary units) -> bytes, 1 byte to 1 GiB; usage_error otherwise.
uint64_t parse_size(const std::string& s);

template <class T>
nlohmann::json opt_json(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

/// `v` formatted with `fmt`, or "n/a".
std::string cell(std::optional<double> v, const char* fmt);

} // namespace luoshu::bench
