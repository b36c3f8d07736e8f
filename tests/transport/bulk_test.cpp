// The bulk tensor lane: two actor systems in this process, one listening and
// one sending over loopback TCP (ports chosen by the OS); hostile peers are
// raw sockets. Every wait is bounded, so a broken lane fails instead of hanging.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <variant>

#include "graph/tensor.hpp"
#include "transport/bulk/frame.hpp"
#include "transport/bulk/lane.hpp"

using namespace std::chrono_literals;
using luoshu::dtype;
using luoshu::shape;
using luoshu::tensor;
using luoshu::transport::tensor_message;
namespace bulk = luoshu::transport::bulk;

namespace {

// GCC 12 with -O2 and sanitizers warns falsely inside caf::config_value's
// variant when set() is inlined here (-Wmaybe-uninitialized).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// As actors::runtime_config does (which tests of transport/ do not link).
class lane_config : public caf::actor_system_config {
public:
  lane_config() {
    load<caf::io::middleman>();
    set("middleman.workers", size_t{0});
  }
};
#pragma GCC diagnostic pop

/// What a listener reported, in order.
struct event {
  enum kind_t { tensor_arrived, failed, closed } kind;
  bulk::connection_id conn = 0;
  tensor_message msg;
  std::string error;
};

/// Collects a listener's callbacks (they run on CAF's I/O thread).
class inbox {
public:
  bulk::receive_handlers handlers() {
    return {
      [this](bulk::connection_id c, tensor_message m) { push({event::tensor_arrived, c, std::move(m), {}}); },
      [this](bulk::connection_id c, const luoshu::error& e) { push({event::failed, c, {}, e.message}); },
      [this](bulk::connection_id c) { push({event::closed, c, {}, {}}); },
    };
  }
  /// The next event, or nullopt after `timeout`.
  std::optional<event> next(std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
    event e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  /// The next event that is not a clean close.
  std::optional<event> next_significant(std::chrono::milliseconds timeout = 30s) {
    for (;;) {
      auto e = next(timeout);
      if (!e || e->kind != event::closed) return e;
    }
  }

private:
  void push(event e) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<event> events_;
};

/// Bytes that depend on (seed, position), so a misplaced chunk shows.
tensor patterned(dtype t, shape s, uint64_t seed) {
  tensor x(t, std::move(s));
  auto* p = static_cast<unsigned char*>(x.raw());
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < x.nbytes(); ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    p[i] = static_cast<unsigned char>(state);
  }
  return x;
}

/// "m<i>" (not "m" + std::to_string(i): GCC 12 warns falsely, -Wrestrict).
std::string numbered(int i) {
  std::string s = "m";
  return s += std::to_string(i);
}

bool same_bytes(const tensor& a, const tensor& b) {
  return a.type() == b.type() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

/// A raw TCP client for playing a hostile peer.
class raw_socket {
public:
  explicit raw_socket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~raw_socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;
  bool ok() const { return ok_; }
  bool write_all(const void* data, size_t n) {
    auto* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  bool write_all(const std::vector<char>& v) { return write_all(v.data(), v.size()); }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  /// Whether the other side closed (EOF or reset) within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    char buf[256];
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) return true;
    }
    return false;
  }

private:
  int fd_ = -1;
  bool ok_ = false;
};

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

/// A frame as a sender would write it, for building hostile variants.
std::vector<char> frame_bytes(const tensor_message& m, uint64_t seq) {
  auto out = bulk::encode_prefix(m, seq);
  if (m.value.defined() && m.value.nbytes() != 0) {
    auto* p = static_cast<const char*>(m.value.raw());
    out.insert(out.end(), p, p + m.value.nbytes());
  }
  return out;
}

class BulkLane : public ::testing::Test {
protected:
  void SetUp() override {
    auto l = bulk::listen(receiving_, "127.0.0.1", 0, in_.handlers(), opts_for_listener());
    ASSERT_TRUE(l) << l.err().message;
    listener_.emplace(std::move(*l));
    ASSERT_NE(listener_->port(), 0);
  }
  void TearDown() override {
    if (listener_) listener_->close();
  }
  virtual bulk::lane_options opts_for_listener() {
    bulk::lane_options o;
    o.pool = receive_pool_;
    o.max_payload_bytes = uint64_t{128} << 20;
    return o;
  }
  bulk::sender connect(const bulk::lane_options& o = {}) {
    auto s = bulk::connect(sending_, "127.0.0.1", listener_->port(), o);
    EXPECT_TRUE(s) << s.err().message;
    return std::move(*s);
  }

  lane_config cfg_a_, cfg_b_;
  caf::actor_system receiving_{cfg_a_};
  caf::actor_system sending_{cfg_b_};
  std::shared_ptr<bulk::buffer_pool> receive_pool_ = std::make_shared<bulk::buffer_pool>();
  inbox in_;
  std::optional<bulk::listener> listener_;
};

// --- frames, without sockets --------------------------------------------------------

TEST(BulkFrame, HeaderRoundTripsAndRejectsBadFields) {
  bulk::frame_header h;
  h.meta_bytes = 96;
  h.payload_bytes = uint64_t{5} << 30;
  h.seq = 42;
  char b[bulk::header_bytes];
  bulk::write_header(h, b);
  bulk::frame_limits big;
  big.max_payload_bytes = uint64_t{8} << 30;
  auto r = bulk::read_header({b, sizeof b}, big);
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(r->meta_bytes, 96u);
  EXPECT_EQ(r->payload_bytes, uint64_t{5} << 30);
  EXPECT_EQ(r->seq, 42u);

  auto refused = [&](auto&& mutate, const char* what) {
    char c[bulk::header_bytes];
    std::memcpy(c, b, sizeof c);
    mutate(c);
    auto x = bulk::read_header({c, sizeof c}, big);
    ASSERT_FALSE(x) << what;
    EXPECT_NE(x.err().message.find("bad frame header"), std::string::npos) << x.err().message;
  };
  refused([](char* c) { c[0] ^= 1; }, "magic");
  refused([](char* c) { c[4] = 2; }, "version");
  refused([](char* c) { c[5] = 9; }, "kind");
  refused([](char* c) { c[6] = 1; }, "flags");
  refused([](char* c) { c[12] = 1; }, "reserved");
  refused([](char* c) { c[8] = 97; }, "meta not a multiple of 8");
  refused([](char* c) { std::memset(c + 8, 0xff, 4); }, "meta too large");
  refused([](char* c) { std::memset(c + 8, 0, 4); }, "meta empty");
  refused([](char* c) { std::memset(c + 16, 0x7f, 8); }, "payload over the limit");
  EXPECT_FALSE(bulk::read_header({b, 31}, big));
}

TEST(BulkFrame, MetaDescribesTheTensorAndMustMatchThePayload) {
  tensor_message m{"layer/w:grad", 7, patterned(dtype::f32, {3, 5}, 1)};
  auto bytes = bulk::encode_meta(m);
  auto d = bulk::decode_meta(bytes, 60);
  ASSERT_TRUE(d) << d.err().message;
  EXPECT_EQ(d->name, "layer/w:grad");
  EXPECT_EQ(d->step, 7);
  EXPECT_TRUE(d->defined);
  EXPECT_EQ(d->type, dtype::f32);
  EXPECT_EQ(d->dims, shape({3, 5}));
  EXPECT_FALSE(bulk::decode_meta(bytes, 61));
  EXPECT_FALSE(bulk::decode_meta(bytes, 0));

  // A descriptor with an unknown dtype, a negative dim or an overflowing
  // shape is refused before anything is allocated for it.
  auto with_descriptor = [](std::vector<int64_t> v) {
    tensor_message x{"x", 0, tensor::from<int64_t>({static_cast<int64_t>(v.size())}, v)};
    return luoshu::transport::encode(x);
  };
  EXPECT_FALSE(bulk::decode_meta(with_descriptor({99, 4}), 4));
  EXPECT_FALSE(bulk::decode_meta(with_descriptor({0, -1}), 0));
  EXPECT_FALSE(bulk::decode_meta(with_descriptor({0, int64_t{1} << 40, int64_t{1} << 40}), 0));
  EXPECT_FALSE(bulk::decode_meta(with_descriptor({0, 0, int64_t{1} << 62, int64_t{1} << 62}), 0));
  EXPECT_FALSE(bulk::decode_meta(with_descriptor(std::vector<int64_t>(40, 1)), 4));
  std::vector<char> garbage(64, '\x5a');
  EXPECT_FALSE(bulk::decode_meta(garbage, 0));

  tensor_message undefined{"u", 1, {}};
  auto u = bulk::decode_meta(bulk::encode_meta(undefined), 0);
  ASSERT_TRUE(u) << u.err().message;
  EXPECT_FALSE(u->defined);
}

TEST(BulkPool, ReusesLargeBuffersWithinItsBudget) {
  bulk::buffer_pool pool(size_t{8} << 20, size_t{64} << 10);
  auto a = pool.take_sized(size_t{1} << 20);
  const char* where = a.data();
  pool.give(std::move(a));
  auto b = pool.take_sized(size_t{1} << 20);
  EXPECT_EQ(b.data(), where);
  EXPECT_EQ(b.size(), size_t{1} << 20);
  pool.give(std::move(b));
  // Too different a size: not reused.
  auto c = pool.take_sized(size_t{256} << 10);
  EXPECT_NE(c.data(), where);
  // Over the budget: the oldest buffers go.
  for (int i = 0; i < 20; ++i) pool.give(std::vector<char>(size_t{1} << 20));
  EXPECT_LE(pool.get_stats().kept_bytes, size_t{8} << 20);
  // Small buffers are not kept.
  pool.give(std::vector<char>(100));
  EXPECT_LE(pool.get_stats().kept_buffers, 8u);
}

// --- the lane ---------------------------------------------------------------------------

TEST_F(BulkLane, DeliversExactBytesOfEverySize) {
  auto s = connect();
  std::vector<tensor_message> sent = {
    {"empty", 1, tensor(dtype::f32, {0})},
    {"undefined", 2, tensor()},
    {"scalar", 3, tensor::scalar<double>(2.5)},
    {"one-byte", 4, patterned(dtype::u8, {1}, 4)},
    {"small", 5, patterned(dtype::f32, {10, 25}, 5)},
    {"just-under-inline", 6, patterned(dtype::u8, {(64 << 10) - 1}, 6)},
    {"odd-megabyte", 7, patterned(dtype::u8, {(1 << 20) + 3}, 7)},
    {"i64-matrix", 8, patterned(dtype::i64, {1000, 129}, 8)},
    {"64MiB", 9, patterned(dtype::f32, {16, 1 << 20}, 9)},
    {"after-the-big-one", 10, patterned(dtype::f64, {3, 3}, 10)},
  };
  for (const auto& m : sent) {
    auto seq = s.send(m);
    ASSERT_TRUE(seq) << seq.err().message;
  }
  ASSERT_TRUE(s.flush(30s).ok());
  EXPECT_EQ(s.completed(), sent.size());
  for (const auto& m : sent) {
    auto e = in_.next();
    ASSERT_TRUE(e) << "nothing arrived for " << m.name;
    ASSERT_EQ(e->kind, event::tensor_arrived) << e->error;
    EXPECT_EQ(e->msg.name, m.name);
    EXPECT_EQ(e->msg.step, m.step);
    EXPECT_EQ(e->msg.value.defined(), m.value.defined());
    if (m.value.defined()) {
      EXPECT_TRUE(same_bytes(e->msg.value, m.value)) << m.name;
    }
  }
  ASSERT_TRUE(s.close(10s).ok());
  auto e = in_.next(10s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, event::closed);
}

TEST_F(BulkLane, KeepsOrderOverManyMessages) {
  bulk::lane_options o;
  o.max_in_flight_bytes = size_t{4} << 20; // exercise back-pressure
  auto s = connect(o);
  constexpr int count = 3000;
  auto size_of_msg = [](int i) -> int64_t {
    switch (i % 7) {
      case 0: return 0;
      case 3: return 200'000 + i;  // its own buffer
      case 5: return 65'536;       // the first size that is not inlined
      default: return 1 + i % 1000;
    }
  };
  std::thread producer([&] {
    for (int i = 0; i < count; ++i) {
      auto seq = s.send({numbered(i), i, patterned(dtype::u8, {size_of_msg(i)}, static_cast<uint64_t>(i))});
      ASSERT_TRUE(seq) << seq.err().message;
      ASSERT_EQ(*seq, static_cast<uint64_t>(i + 1));
    }
  });
  for (int i = 0; i < count; ++i) {
    auto e = in_.next();
    ASSERT_TRUE(e) << "message " << i << " never arrived";
    ASSERT_EQ(e->kind, event::tensor_arrived) << e->error;
    ASSERT_EQ(e->msg.step, i);
    ASSERT_EQ(e->msg.name, numbered(i));
    ASSERT_TRUE(same_bytes(e->msg.value, patterned(dtype::u8, {size_of_msg(i)}, static_cast<uint64_t>(i)))) << i;
  }
  producer.join();
  EXPECT_TRUE(s.flush(10s).ok());
}

TEST_F(BulkLane, ReceivesIntoPooledBuffersWithoutCopying) {
  // The receive path swaps a pooled buffer into CAF's read buffer: the
  // second tensor of a size lands in the very buffer the first one released.
  // This fails if CAF stops handing our buffer to the kernel (0.17 internals).
  auto s = connect();
  const void* first_data = nullptr;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(s.send({"w", i, patterned(dtype::f32, {1 << 20}, 3)}));
    auto e = in_.next();
    ASSERT_TRUE(e);
    ASSERT_EQ(e->kind, event::tensor_arrived) << e->error;
    if (i == 0) first_data = e->msg.value.raw();
    else EXPECT_EQ(e->msg.value.raw(), first_data);
  } // each tensor is dropped here, giving its buffer back
  EXPECT_GE(receive_pool_->get_stats().hits, 1u);
}

TEST_F(BulkLane, SenderRefusesWhatTheLaneCannotCarry) {
  bulk::lane_options o;
  o.max_payload_bytes = 1000;
  auto s = connect(o);
  auto big = s.send({"big", 0, tensor(dtype::f32, {251})});
  ASSERT_FALSE(big);
  EXPECT_NE(big.err().message.find("over the limit"), std::string::npos) << big.err().message;
  auto long_name = s.send({std::string(5000, 'n'), 0, tensor(dtype::f32, {1})});
  EXPECT_FALSE(long_name);
  // Still usable after refusals.
  auto ok = s.send({"ok", 1, patterned(dtype::f32, {250}, 1)});
  ASSERT_TRUE(ok) << ok.err().message;
  auto e = in_.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, event::tensor_arrived) << e->error;
}

TEST_F(BulkLane, ListenerClosingFailsTheSender) {
  auto s = connect();
  ASSERT_TRUE(s.send({"one", 0, patterned(dtype::f32, {1000}, 1)}));
  ASSERT_TRUE(in_.next());
  listener_->close();
  // The sender notices the peer's close on its own (it reads for EOF).
  bool failed = false;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!failed && std::chrono::steady_clock::now() < until) {
    auto r = s.send({"more", 1, patterned(dtype::f32, {1 << 18}, 2)});
    failed = !r || s.failure().has_value();
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(failed);
  EXPECT_FALSE(s.send({"after", 2, tensor(dtype::f32, {1})}));
}

// --- hostile peers ----------------------------------------------------------------------

class BulkLaneHostile : public BulkLane {
protected:
  /// Writes `bytes` from a raw socket, optionally closes its write side, and
  /// returns the listener's verdict; the listener must close the socket.
  event expect_error(const std::vector<char>& bytes, bool close_after, const char* what) {
    raw_socket sock(listener_->port());
    EXPECT_TRUE(sock.ok());
    sock.write_all(bytes);
    if (close_after) sock.shutdown_write();
    auto e = in_.next_significant();
    EXPECT_TRUE(e) << what << ": no verdict";
    if (!e) return {};
    EXPECT_EQ(e->kind, event::failed) << what;
    if (!close_after) {
      EXPECT_TRUE(sock.closed_by_peer(10s)) << what << ": connection left open";
    }
    return *e;
  }
  /// The listener still serves well-behaved senders.
  void expect_still_serving() {
    auto s = connect();
    ASSERT_TRUE(s.send({"fine", 1, patterned(dtype::f32, {4096}, 11)}));
    auto e = in_.next_significant();
    ASSERT_TRUE(e);
    ASSERT_EQ(e->kind, event::tensor_arrived) << e->error;
    EXPECT_TRUE(same_bytes(e->msg.value, patterned(dtype::f32, {4096}, 11)));
  }
};

TEST_F(BulkLaneHostile, GarbageHeader) {
  std::vector<char> garbage(bulk::header_bytes, '\x41');
  auto e = expect_error(garbage, false, "garbage");
  EXPECT_NE(e.error.find("magic"), std::string::npos) << e.error;
  // An HTTP request is garbage too.
  std::string http = "GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";
  expect_error({http.begin(), http.end()}, false, "http");
  expect_still_serving();
}

TEST_F(BulkLaneHostile, AbsurdLengths) {
  tensor_message m{"x", 0, patterned(dtype::f32, {4}, 1)};
  auto frame = frame_bytes(m, 1);
  auto payload_absurd = frame;
  uint64_t huge = uint64_t{1} << 62;
  std::memcpy(payload_absurd.data() + 16, &huge, 8);
  auto e = expect_error(payload_absurd, false, "payload 2^62");
  EXPECT_NE(e.error.find("exceeds the limit"), std::string::npos) << e.error;

  auto meta_absurd = frame;
  uint32_t big_meta = 0xfffffff8u;
  std::memcpy(meta_absurd.data() + 8, &big_meta, 4);
  expect_error(meta_absurd, false, "meta 4 GiB");

  // Within the limits but not what the meta describes.
  auto mismatch = frame;
  uint64_t wrong = 17;
  std::memcpy(mismatch.data() + 16, &wrong, 8);
  e = expect_error(mismatch, false, "payload size mismatch");
  EXPECT_NE(e.error.find("announces"), std::string::npos) << e.error;
  expect_still_serving();
}

TEST_F(BulkLaneHostile, TruncatedPayloadThenClose) {
  tensor_message m{"cut", 0, patterned(dtype::u8, {1 << 20}, 2)};
  auto frame = frame_bytes(m, 1);
  frame.erase(frame.end() - 1000, frame.end());
  auto e = expect_error(frame, true, "truncated payload");
  EXPECT_NE(e.error.find("truncated payload"), std::string::npos) << e.error;

  auto cut_meta = frame_bytes(m, 1);
  cut_meta.resize(bulk::header_bytes + 8);
  e = expect_error(cut_meta, true, "truncated meta");
  EXPECT_NE(e.error.find("truncated meta"), std::string::npos) << e.error;
  expect_still_serving();
}

TEST_F(BulkLaneHostile, GarbageMetaAndOutOfOrderFrames) {
  tensor_message m{"x", 0, patterned(dtype::f32, {4}, 1)};
  auto frame = frame_bytes(m, 1);
  auto bad_meta = frame;
  for (size_t i = bulk::header_bytes; i < bulk::header_bytes + 24; ++i) bad_meta[i] = '\xee';
  auto e = expect_error(bad_meta, false, "garbage meta");
  EXPECT_NE(e.error.find("bad tensor meta"), std::string::npos) << e.error;

  auto out_of_order = frame_bytes(m, 1);
  auto second = frame_bytes(m, 3);
  out_of_order.insert(out_of_order.end(), second.begin(), second.end());
  raw_socket sock(listener_->port());
  ASSERT_TRUE(sock.ok());
  sock.write_all(out_of_order);
  auto first = in_.next_significant();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->kind, event::tensor_arrived);
  auto verdict = in_.next_significant();
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict->kind, event::failed);
  EXPECT_NE(verdict->error.find("out of order"), std::string::npos) << verdict->error;
  EXPECT_TRUE(sock.closed_by_peer(10s));
  expect_still_serving();
}

TEST_F(BulkLaneHostile, RandomlyMutatedStreamsNeverCrashOrHang) {
  // Seeded mutations of a valid two-frame stream: each connection either
  // delivers tensors or fails, and always ends (the socket is closed after
  // writing, so nothing can wait for more bytes).
  std::mt19937_64 rng(20240611);
  std::vector<char> valid = frame_bytes({"a", 1, patterned(dtype::f32, {3, 7}, 5)}, 1);
  auto second = frame_bytes({"b", 2, patterned(dtype::i32, {100}, 6)}, 2);
  valid.insert(valid.end(), second.begin(), second.end());
  const size_t fds_before = open_fds();
  for (int round = 0; round < 150; ++round) {
    auto bytes = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 3 == 0) bytes.resize(rng() % bytes.size());
    raw_socket sock(listener_->port());
    ASSERT_TRUE(sock.ok());
    sock.write_all(bytes);
    sock.shutdown_write();
    // Events until this connection ends: tensors, then a close or a failure.
    for (;;) {
      auto e = in_.next(20s);
      ASSERT_TRUE(e) << "round " << round << ": the lane hung";
      if (e->kind != event::tensor_arrived) break;
    }
  }
  // Closed connections give their sockets back (allow CAF a moment).
  for (int i = 0; i < 100 && open_fds() > fds_before + 4; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_LE(open_fds(), fds_before + 4);
  expect_still_serving();
}

class BulkLaneOneConnection : public BulkLane {
protected:
  bulk::lane_options opts_for_listener() override {
    auto o = BulkLane::opts_for_listener();
    o.max_connections = 1;
    return o;
  }
};

TEST_F(BulkLaneOneConnection, RefusesConnectionsBeyondTheLimit) {
  raw_socket first(listener_->port());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first.write_all(frame_bytes({"a", 1, patterned(dtype::f32, {8}, 1)}, 1)));
  auto a = in_.next_significant();
  ASSERT_TRUE(a);
  ASSERT_EQ(a->kind, event::tensor_arrived) << a->error;
  raw_socket second(listener_->port());
  ASSERT_TRUE(second.ok()); // the kernel accepts; the lane closes it at once
  auto refused = in_.next_significant();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, event::failed);
  EXPECT_NE(refused->error.find("max_connections"), std::string::npos) << refused->error;
  EXPECT_TRUE(second.closed_by_peer(10s));
  // The first connection is unaffected.
  ASSERT_TRUE(first.write_all(frame_bytes({"b", 2, patterned(dtype::f32, {8}, 2)}, 2)));
  auto b = in_.next_significant();
  ASSERT_TRUE(b);
  ASSERT_EQ(b->kind, event::tensor_arrived) << b->error;
  EXPECT_EQ(b->msg.name, "b");
}

TEST(BulkLaneSetup, ReportsWhatCannotBeSetUp) {
  lane_config cfg;
  caf::actor_system sys{cfg};
  // Nobody listens on port 1.
  auto s = bulk::connect(sys, "127.0.0.1", 1);
  ASSERT_FALSE(s);
  EXPECT_NE(s.err().message.find("cannot connect"), std::string::npos) << s.err().message;
  auto l = bulk::listen(sys, "127.0.0.1", 0, {});
  ASSERT_FALSE(l);
  EXPECT_NE(l.err().message.find("on_tensor"), std::string::npos);
  auto bad_host = bulk::listen(sys, "not-an-address", 0, {[](bulk::connection_id, tensor_message) {}, {}, {}});
  EXPECT_FALSE(bad_host);
}

} // namespace
