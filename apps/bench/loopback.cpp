#include "apps/bench/loopback.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace luoshu::bench {

namespace bulk = transport::bulk;
using transport::tensor_message;
using transport::wire_bytes;
using namespace std::chrono_literals;

double since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

// --- raw TCP ----------------------------------------------------------------------

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // as CAF does for its sockets
}

fd_owner listen_loopback(uint16_t& port) {
  fd_owner s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (s.get() < 0 || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.get(), 4) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw bench_failure(std::string("raw TCP: cannot listen on 127.0.0.1: ") + std::strerror(errno));
  port = ntohs(a.sin_port);
  return s;
}

fd_owner connect_loopback(uint16_t port) {
  fd_owner s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s.get() < 0 || ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw bench_failure("raw TCP: cannot connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  set_nodelay(s.get());
  return s;
}

bool read_exact(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_frame(int fd, const wire_bytes& prefix, const void* payload, size_t n) {
  iovec iov[2] = {{const_cast<char*>(prefix.data()), prefix.size()}, {const_cast<void*>(payload), n}};
  int first = 0, count = n == 0 ? 1 : 2;
  while (first < count) {
    msghdr mh{};
    mh.msg_iov = iov + first;
    mh.msg_iovlen = static_cast<size_t>(count - first);
    ssize_t w = ::sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    auto left = static_cast<size_t>(w);
    while (first < count && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < count) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

/// Reads frames from a raw socket into reused buffers, checking them as the

std::optional<bulk::tensor_meta> raw_reader::next() {
  char h[bulk::header_bytes];
  if (!read_exact(fd_, h, sizeof h)) return std::nullopt;
  auto hdr = bulk::read_header({h, sizeof h}, limits_);
  if (!hdr) throw bench_failure("raw TCP: " + hdr.err().message);
  meta_.resize(hdr->meta_bytes);
  if (!read_exact(fd_, meta_.data(), meta_.size())) throw bench_failure("raw TCP: truncated meta");
  auto m = bulk::decode_meta(meta_, hdr->payload_bytes);
  if (!m) throw bench_failure("raw TCP: " + m.err().message);
  // Grown once, then reused: the raw path's best case.
  if (payload_.size() < hdr->payload_bytes) payload_.resize(hdr->payload_bytes);
  size_ = hdr->payload_bytes;
  if (size_ != 0 && !read_exact(fd_, payload_.data(), size_)) throw bench_failure("raw TCP: truncated payload");
  return std::move(*m);
}

raw_server::raw_server() : listen_(listen_loopback(port_)), thread_([this] { serve(); }) {}

raw_server::~raw_server() {
  ::shutdown(listen_.get(), SHUT_RDWR); // unblocks accept()
  if (int c = conn_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
  thread_.join();
}

void raw_server::serve() {
  fd_owner c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (c.get() < 0) return;
  conn_ = c.get();
  set_nodelay(c.get());
  raw_reader in(c.get());
  uint64_t count = 0, seq = 0;
  try {
    while (auto m = in.next()) {
      if (m->name == "data") {
        ++count;
      } else if (m->name == "end") {
        auto prefix = bulk::encode_prefix({"ack", static_cast<int64_t>(count), {}}, ++seq);
        count = 0;
        if (!write_frame(c.get(), prefix, nullptr, 0)) break;
      } else if (m->name == "ping") {
        tensor_message pong{"pong", m->step, tensor(m->type, m->dims)};
        auto prefix = bulk::encode_prefix(pong, ++seq);
        if (!write_frame(c.get(), prefix, in.payload(), in.payload_size())) break;
      }
    }
  } catch (const bench_failure& e) {
    spdlog::error("peer: {}", e.what());
  }
  conn_ = -1;
}

raw_link::raw_link(uint16_t port) : fd(connect_loopback(port)) { in.emplace(fd.get()); }

throughput raw_throughput(raw_link& l, const tensor& t, double seconds) {
  wire_bytes prefix = bulk::encode_prefix({"data", 0, t}, 0);
  wire_bytes end = bulk::encode_prefix({"end", 0, {}}, 0);
  return stream_for(
    seconds, t.nbytes(),
    [&] {
      bulk::set_header_seq(prefix.data(), ++l.seq);
      if (!write_frame(l.fd.get(), prefix, t.raw(), t.nbytes())) throw bench_failure("raw TCP: write failed");
    },
    [&]() -> uint64_t {
      bulk::set_header_seq(end.data(), ++l.seq);
      if (!write_frame(l.fd.get(), end, nullptr, 0)) throw bench_failure("raw TCP: write failed");
      auto ack = l.in->next();
      if (!ack || ack->name != "ack") throw bench_failure("raw TCP: no ack from the peer");
      return static_cast<uint64_t>(ack->step);
    });
}

// --- the peer process -------------------------------------------------------------

peer_process::peer_process(const std::vector<std::string>& args) {
  // A peer that dies must not take us with it on a write to its pipe.
  ::signal(SIGPIPE, SIG_IGN);
  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0)
    throw bench_failure(std::string("cannot create a pipe: ") + std::strerror(errno));
  fd_owner to_read(to[0]), to_write(to[1]);
  if (::pipe2(from, O_CLOEXEC) != 0)
    throw bench_failure(std::string("cannot create a pipe: ") + std::strerror(errno));
  fd_owner from_read(from[0]), from_write(from[1]);
  // argv is built before fork: the child may not allocate.
  std::vector<std::string> words{"luoshu"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw bench_failure(std::string("cannot fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL); // the peer never outlives the benchmark
    ::dup2(to[0], 0);
    ::dup2(from[1], 1);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  to_ = std::move(to_write);
  from_ = std::move(from_read);
}

peer_process::~peer_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void peer_process::send_line(const std::string& s) {
  std::string l = s + "\n";
  if (::write(to_.get(), l.data(), l.size()) != static_cast<ssize_t>(l.size()))
    throw bench_failure("the peer process is gone (cannot write to it)");
}

std::string peer_process::read_line(std::chrono::milliseconds timeout) {
  std::string out;
  const auto until = steady::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now()).count();
    if (left <= 0) throw bench_failure("the peer process did not answer in time");
    pollfd p{from_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char c;
    ssize_t r = ::read(from_.get(), &c, 1);
    if (r <= 0) throw bench_failure("the peer process exited early (see its messages above)");
    if (c == '\n') return out;
    out += c;
  }
}

int peer_process::finish(std::chrono::milliseconds timeout) {
  try {
    send_line("quit");
  } catch (const bench_failure&) {
    // Already gone: reap below.
  }
  to_.reset();
  const auto until = steady::now() + timeout;
  int st = 0;
  while (steady::now() < until) {
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

// --- formatting -------------------------------------------------------------------

std::string human(uint64_t b) {
  char buf[32];
  if (b >= (1u << 30) && b % (1u << 30) == 0) std::snprintf(buf, sizeof buf, "%llu GiB", static_cast<unsigned long long>(b >> 30));
  else if (b >= (1u << 20) && b % (1u << 20) == 0) std::snprintf(buf, sizeof buf, "%llu MiB", static_cast<unsigned long long>(b >> 20));
  else if (b >= 1024 && b % 1024 == 0) std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>(b >> 10));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

std::string cell(std::optional<double> v, const char* fmt) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, *v);
  return buf;
}

nlohmann::json to_json(const throughput& t) {
  if (!t.measured) return {{"measured", false}, {"note", t.note}};
  return {{"measured", true}, {"gbps", t.gbps}, {"messages", t.messages}, {"seconds", t.seconds}};
}

uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &pos);
  } catch (const std::exception&) {
    throw usage_error("bad size '" + s + "': expected bytes or a number with K, M or G (binary)");
  }
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift = -1;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K" || unit == "KB" || unit == "KIB") shift = 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB") shift = 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB") shift = 30;
  if (shift < 0) throw usage_error("bad size '" + s + "': unknown unit '" + unit + "'");
  const uint64_t bytes = static_cast<uint64_t>(v) << shift;
  if (v == 0 || bytes > (uint64_t{1} << 30) || (bytes >> shift) != v)
    throw usage_error("bad size '" + s + "': sizes go from 1 byte to 1 GiB");
  return bytes;
}

} // namespace luoshu::bench
