#pragma once
// The bulk tensor lane: large tensors between two processes over CAF 0.17
// `caf::io` brokers, bypassing BASP's whole-message serialization.
//
// A lane is one direction of one TCP connection. The receiving side listens:
//
//   auto l = bulk::listen(sys, "127.0.0.1", 0, {
//       .on_tensor = [&](bulk::connection_id c, transport::tensor_message m) { ... },
//       .on_error = [&](bulk::connection_id c, const error& e) { ... }});
//   uint16_t port = l->port();                   // 0 asked the OS for one
//
// and the sending side connects and sends:
//
//   auto s = bulk::connect(sys, "127.0.0.1", port);
//   auto seq = s->send(msg);                     // queued; blocks on back-pressure
//   s->wait(*seq, 10s);                          // its bytes are in the kernel
//   s->close(10s);                               // flush, then close
//
// How the bytes move (transport/bulk/frame.hpp has the framing): send()
// builds the whole frame (header, meta, the tensor's bytes: the one copy on
// the sending side) in a pooled buffer and hands it to the sender's I/O
// actor, which swaps it into CAF's write buffer; frames under batch_bytes
// are appended to each other instead (one write for many). The receiver
// reads a header and the meta, checks them, takes a pooled buffer of exactly
// the payload size and swaps it into CAF's read buffer, so the kernel writes
// the tensor's bytes into their final place; the tensor handed to on_tensor
// owns that buffer and gives it back to the pool when its last reference
// goes. Received tensors are 16-byte aligned (malloc's alignment), not 64
// like tensor's own allocations.
//
// Failure: everything from the wire is checked (magic, version, sizes
// against lane_options, the meta through the transport codec, the sequence
// number) before anything is allocated for it. A malformed, truncated or
// oversized stream closes that connection and reports an error through
// on_error; it never crashes the process or hangs the listener, and a
// listener never holds more than max_connections * max_payload_bytes of
// unfinished payloads. (A peer that stops halfway through a frame and keeps
// its connection open holds that connection, like any TCP peer: there is no
// idle timeout yet.)
//
// Threads: the callbacks run on CAF's I/O (multiplexer) thread: keep them
// short, never block in them, and never close the listener from inside one
// (forward to an actor or a queue). send() from a callback is fine while the
// sender has room: it blocks on back-pressure, and a blocked I/O thread
// cannot drain the sender's queue (send would fail after send_timeout). A
// sender's send calls (send, send_message*) may come from several threads
// at once (each frame is queued whole; frames from one thread keep their
// order); wait, flush and close from one thread at a time. Close (or
// destroy) listeners and senders before their actor system, which must
// have the middleman loaded (actors::runtime_config does).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "graph/error.hpp"
#include "transport/bulk/buffer_pool.hpp"
#include "transport/messages.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace luoshu::transport::bulk {

/// Identifies one incoming connection of a listener.
using connection_id = int64_t;

struct lane_options {
  /// The largest tensor payload accepted: a sender refuses bigger tensors, a
  /// receiver closes a connection that announces one.
  uint64_t max_payload_bytes = uint64_t{1} << 30;
  /// The largest meta part (name, step, dtype, shape) accepted.
  size_t max_meta_bytes = size_t{64} << 10;
  /// Listener: connections beyond this are closed at once (with an error).
  size_t max_connections = 64;
  /// Sender: bytes queued but not yet written before send() blocks; one
  /// message is always let through, however large.
  size_t max_in_flight_bytes = size_t{64} << 20;
  /// Sender: messages queued but not yet written before send() blocks.
  size_t max_in_flight_messages = 4096;
  /// Sender: how long send() waits for room before it gives up.
  std::chrono::milliseconds send_timeout{60000};
  /// Sender: frames smaller than this are batched (appended to other small
  /// frames waiting for the socket, one write for many); larger ones are
  /// handed to CAF as a buffer of their own, from the pool, and never copied
  /// again.
  size_t batch_bytes = size_t{64} << 10;
  /// Buffers to reuse; null: the lane makes its own with `pool_bytes`.
  std::shared_ptr<buffer_pool> pool;
  size_t pool_bytes = size_t{1} << 30;
};

/// What a listener calls. on_tensor or on_message is required; the others
/// may be empty. A frame of a kind nobody handles closes its connection
/// with an error.
struct receive_handlers {
  /// A tensor arrived; per connection, in the order it was sent.
  std::function<void(connection_id, tensor_message)> on_tensor;
  /// A connection was closed because of `e`: a malformed, oversized or
  /// truncated frame, an I/O error, or too many connections.
  std::function<void(connection_id, const error& e)> on_error;
  /// The peer closed a connection cleanly, between two frames.
  std::function<void(connection_id)> on_close;
  /// A message frame arrived (sender::send_message): its meta bytes,
  /// unchecked (the handler decodes them), and its payload in a pooled
  /// buffer. Per connection, in order with the tensors. Last, and with a
  /// default initializer, so that brace lists written for the three tensor
  /// handlers {on_tensor, on_error, on_close} still mean what they say.
  std::function<void(connection_id, std::vector<char> meta, pooled_bytes payload)> on_message = {};
  /// Instead of on_message (when set): the payload as the buffer itself,
  /// taken from lane_options::pool, for a handler that passes it on
  /// (sender::send_message_buffer, no copy) or gives it back to the pool.
  std::function<void(connection_id, std::vector<char> meta, std::vector<char> payload)> on_message_buffer = {};
};

struct listener_impl;
struct sender_impl;

/// The receiving end: accepts connections and delivers their tensors.
/// Resource type: movable, not copyable; closes on destruction.
class listener {
public:
  listener(listener&&) noexcept;
  listener& operator=(listener&&) noexcept;
  ~listener();

  /// The port it listens on (the OS's choice when 0 was asked for).
  uint16_t port() const;
  /// Stops accepting, closes every connection and waits (up to `timeout`)
  /// until no callback runs any more. Idempotent.
  void close(std::chrono::milliseconds timeout = std::chrono::seconds(10));

private:
  friend result<listener> listen(caf::actor_system&, const std::string&, uint16_t, receive_handlers,
                                 const lane_options&);
  explicit listener(std::unique_ptr<listener_impl> impl);
  std::unique_ptr<listener_impl> impl_;
};

/// The sending end of one connection. Resource type: movable, not copyable;
/// on destruction it closes after writing what is queued (not waiting).
class sender {
public:
  sender(sender&&) noexcept;
  sender& operator=(sender&&) noexcept;
  ~sender();

  /// Queues `m` (copying the tensor's bytes once) and returns its sequence
  /// number (1, 2, ...). Blocks while more than max_in_flight_bytes or
  /// max_in_flight_messages are queued, up to send_timeout. Fails on a tensor
  /// not in host memory or over max_payload_bytes, a name the codec refuses,
  /// a lane that failed or was closed, or a timeout.
  result<uint64_t> send(const tensor_message& m);
  /// Queues a message frame: `meta` (a Cap'n Proto message the receiver's
  /// on_message decodes; a multiple of 8 bytes) and a payload of
  /// `payload_bytes` bytes that `fill` writes straight into the frame (so
  /// a computed payload is written once, where it is sent from). Blocks and
  /// fails as send() does; `what` names the message in errors.
  result<uint64_t> send_message(std::span<const char> meta, size_t payload_bytes,
                                const std::function<void(char*)>& fill, const std::string& what = "message");
  /// As send_message with `payload` copied in: one copy, where the fill
  /// variant also zero-fills the frame first.
  result<uint64_t> send_message_bytes(std::span<const char> meta, std::span<const char> payload,
                                      const std::string& what = "message");
  /// As send_message with `payload` as the frame's payload buffer itself,
  /// not copied: it goes to the socket after a separate header-and-meta
  /// part (two writes for the frame) and back to the sender's pool once
  /// written. For passing on a buffer a listener delivered
  /// (receive_handlers::on_message_buffer).
  result<uint64_t> send_message_buffer(std::span<const char> meta, std::vector<char>&& payload,
                                       const std::string& what = "message");
  /// Waits until message `seq` has been written to the socket.
  status wait(uint64_t seq, std::chrono::milliseconds timeout);
  /// Waits until everything queued has been written.
  status flush(std::chrono::milliseconds timeout);
  /// Flushes (up to `timeout`), then closes the connection. Idempotent.
  status close(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// The highest sequence number written so far.
  uint64_t completed() const;
  /// The error that ended the lane, if any.
  std::optional<error> failure() const;

private:
  friend result<sender> connect(caf::actor_system&, const std::string&, uint16_t, const lane_options&);
  /// Queues a whole frame (seq filled in here): `frame`, then `tail` when
  /// not empty (the payload of a frame sent in two parts).
  result<uint64_t> enqueue(std::vector<char>&& frame, std::vector<char>&& tail, const std::string& what);
  explicit sender(std::unique_ptr<sender_impl> impl);
  std::unique_ptr<sender_impl> impl_;
};

/// Listens on `host` (an IP address; "" for every interface) and `port` (0:
/// the OS picks one).
result<listener> listen(caf::actor_system& sys, const std::string& host, uint16_t port, receive_handlers h,
                        const lane_options& o = {});

/// Connects to a listener.
result<sender> connect(caf::actor_system& sys, const std::string& host, uint16_t port,
                       const lane_options& o = {});

} // namespace luoshu::transport::bulk
