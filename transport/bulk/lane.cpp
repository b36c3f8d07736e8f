// The bulk lane's two brokers (caf::io, CAF 0.17.6) and the caller-side API.
//
// Pinned to CAF 0.17.6 internals (checked against libcaf_io 0.17.6's
// stream.cpp / scribe.cpp; tests/transport/bulk_test.cpp fails if they change):
//  - scribe::consume() swaps the stream's read buffer into new_data_msg::buf
//    for the handler and swaps msg.buf back afterwards; the stream then
//    resizes that buffer to the next configure_read() size only if its size
//    differs. So a handler that swaps a buffer of exactly N bytes into
//    msg.buf and asks for exactly(N) makes the kernel write the next N bytes
//    into that buffer, and the next handler gets the same buffer back.
//  - stream::configure_read() only records the policy; it takes effect after
//    the handler returns.
//  - broker::wr_buf() is the stream's offline buffer. flush() moves it to the
//    stream's write buffer (a swap) when no write is in progress; when one
//    is, the swap happens as soon as it completes. A written buffer is
//    cleared (capacity kept) and comes back as the offline buffer later.
//  - data_transferred_msg is delivered synchronously from the write handler,
//    before the stream swaps in the next offline buffer, and (unlike
//    new_data_msg, whose scribe::consume holds one) without a strong
//    reference to the broker: a broker that quits in that handler can be
//    destroyed halfway through its own cleanup once the last outside handle
//    goes (a sender's close() returns as soon as the broker's attached
//    functor ran). So the sender never quits there: it sends itself
//    lane_done_atom and quits when that arrives through its mailbox.
//  - A servant's epoll registration is queued as an event; when its removal
//    is queued before the multiplexer handled the registration, the two
//    cancel out and removed_from_loop() never runs, so a doorman keeps its
//    self-reference and leaks (seen with ASan: a listener closed right
//    after it was made). listen() therefore returns only once its broker
//    has run (and so its registration is handled before any close).

#include "transport/bulk/lane.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>

#include "graph/tensor.hpp"
#include "transport/bulk/frame.hpp"

namespace luoshu::transport::bulk {

namespace {

using lane_send_atom = caf::atom_constant<caf::atom("lnsend")>;
using lane_close_atom = caf::atom_constant<caf::atom("lnclose")>;
using lane_done_atom = caf::atom_constant<caf::atom("lndone")>;
using lane_ready_atom = caf::atom_constant<caf::atom("lnready")>;

/// Spare capacity kept behind a message payload (received, or built by
/// send_message_bytes): when the payload is passed on in a frame of its own
/// and still waits for the socket, the next frame's header and meta are
/// appended there instead of costing a write of their own.
constexpr size_t frame_slack = 256;

std::shared_ptr<buffer_pool> pool_for(const lane_options& o) {
  return o.pool ? o.pool : std::make_shared<buffer_pool>(o.pool_bytes);
}

std::string what_threw(std::exception_ptr e) {
  try {
    std::rethrow_exception(std::move(e));
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an unknown exception";
  }
}

// --- receiving ------------------------------------------------------------------

struct receiver_config {
  receive_handlers handlers;
  frame_limits limits;
  size_t max_connections = 0;
  std::shared_ptr<buffer_pool> pool;
};

struct connection_state {
  enum class phase { header, meta, payload };
  phase at = phase::header;
  frame_header header;
  tensor_meta meta;               ///< tensor frames
  std::vector<char> message_meta; ///< message frames: the meta as received
  uint64_t next_seq = 1;
};

/// A tensor over a pooled buffer: the buffer goes back to the pool when the
/// tensor's storage is released.
tensor adopt(std::vector<char>&& bytes, const tensor_meta& m, const std::shared_ptr<buffer_pool>& pool) {
  if (m.payload_bytes == 0) return tensor(m.type, m.dims);
  auto buf = std::make_shared<std::vector<char>>(std::move(bytes));
  void* data = buf->data();
  auto st = std::make_shared<luoshu::storage>(data, buf->size(), device::cpu(),
                                              [pool, buf](void*) { pool->give(std::move(*buf)); });
  return tensor(std::move(st), 0, m.type, m.dims);
}

// TODO(robustness): an idle timeout for connections that stop inside a frame
// (today they hold their buffer until the peer closes).
caf::behavior receiver_broker(caf::io::broker* self, caf::io::doorman_ptr door,
                              std::shared_ptr<receiver_config> cfg) {
  using caf::io::connection_handle;
  using caf::io::receive_policy;
  self->add_doorman(std::move(door));
  auto conns = std::make_shared<std::unordered_map<connection_handle, connection_state>>();

  auto report = [cfg](connection_handle hdl, const error& e) {
    if (!cfg->handlers.on_error) return;
    try {
      cfg->handlers.on_error(hdl.id(), e);
    } catch (...) {
      // Nothing left to tell: the connection is already gone.
    }
  };
  auto fail = [self, conns, report](connection_handle hdl, const error& e) {
    conns->erase(hdl);
    self->close(hdl);
    report(hdl, e);
  };
  auto deliver = [cfg, fail](connection_handle hdl, connection_state& st, std::vector<char>&& payload) {
    if (st.header.kind == frame_kind::message) {
      try {
        if (cfg->handlers.on_message_buffer)
          cfg->handlers.on_message_buffer(hdl.id(), std::move(st.message_meta), std::move(payload));
        else
          cfg->handlers.on_message(hdl.id(), std::move(st.message_meta), pooled_bytes(std::move(payload), cfg->pool));
      } catch (...) {
        fail(hdl, error{"bulk lane: on_message threw: " + what_threw(std::current_exception())});
      }
      return;
    }
    tensor_message m;
    m.name = std::move(st.meta.name);
    m.step = st.meta.step;
    if (st.meta.defined) m.value = adopt(std::move(payload), st.meta, cfg->pool);
    try {
      cfg->handlers.on_tensor(hdl.id(), std::move(m));
    } catch (...) {
      fail(hdl, error{"bulk lane: on_tensor threw: " + what_threw(std::current_exception())});
    }
  };

  return {
    [=](const caf::io::new_connection_msg& msg) {
      if (conns->size() >= cfg->max_connections) {
        self->close(msg.handle);
        report(msg.handle, error{"bulk lane: refused a connection: already " + std::to_string(conns->size()) +
                                 " open (max_connections)"});
        return;
      }
      conns->emplace(msg.handle, connection_state{});
      self->configure_read(msg.handle, receive_policy::exactly(header_bytes));
    },
    [=](caf::io::new_data_msg& msg) {
      auto it = conns->find(msg.handle);
      if (it == conns->end()) return; // closed by us; CAF may still hand over bytes
      connection_state& st = it->second;
      switch (st.at) {
        case connection_state::phase::header: {
          auto h = read_header(msg.buf, cfg->limits);
          if (!h) return fail(msg.handle, h.err());
          if (h->seq != st.next_seq)
            return fail(msg.handle, error{"bulk lane: frame " + std::to_string(h->seq) + " out of order (expected " +
                                          std::to_string(st.next_seq) + ")"});
          const bool handled = h->kind == frame_kind::message
                                   ? cfg->handlers.on_message || cfg->handlers.on_message_buffer
                                   : static_cast<bool>(cfg->handlers.on_tensor);
          if (!handled)
            return fail(msg.handle, error{std::string("bulk lane: this listener takes no ") +
                                          (h->kind == frame_kind::message ? "message" : "tensor") + " frames"});
          st.header = *h;
          st.at = connection_state::phase::meta;
          self->configure_read(msg.handle, receive_policy::exactly(h->meta_bytes));
          return;
        }
        case connection_state::phase::meta: {
          if (st.header.kind == frame_kind::message) {
            st.message_meta.assign(msg.buf.begin(), msg.buf.end());
          } else {
            auto m = decode_meta(msg.buf, st.header.payload_bytes);
            if (!m) return fail(msg.handle, m.err());
            st.meta = std::move(*m);
          }
          if (st.header.payload_bytes == 0) {
            st.at = connection_state::phase::header;
            ++st.next_seq;
            self->configure_read(msg.handle, receive_policy::exactly(header_bytes));
            return deliver(msg.handle, st, {});
          }
          // The payload's final buffer becomes CAF's read buffer: the kernel
          // writes the tensor's bytes straight into it (see the top of this file).
          const auto n = static_cast<size_t>(st.header.payload_bytes);
          std::vector<char> target;
          try {
            target = cfg->pool->take_sized(n);
            if (st.header.kind == frame_kind::message && target.capacity() < n + frame_slack) {
              // Without room behind it (dropped, so that the pool ends up
              // holding buffers with room).
              std::vector<char> roomy;
              roomy.reserve(n + frame_slack);
              roomy.resize(n);
              target.swap(roomy);
            }
          } catch (const std::bad_alloc&) {
            return fail(msg.handle, error{"bulk lane: cannot allocate " + std::to_string(n) +
                                          " bytes for the payload of frame " + std::to_string(st.header.seq)});
          }
          msg.buf.swap(target);
          st.at = connection_state::phase::payload;
          self->configure_read(msg.handle, receive_policy::exactly(n));
          return;
        }
        case connection_state::phase::payload: {
          std::vector<char> payload;
          payload.swap(msg.buf);
          st.at = connection_state::phase::header;
          ++st.next_seq;
          self->configure_read(msg.handle, receive_policy::exactly(header_bytes));
          return deliver(msg.handle, st, std::move(payload));
        }
      }
    },
    [=](const caf::io::connection_closed_msg& msg) {
      auto it = conns->find(msg.handle);
      if (it == conns->end()) return;
      const connection_state st = std::move(it->second);
      conns->erase(it);
      if (st.at == connection_state::phase::header) {
        if (cfg->handlers.on_close) {
          try {
            cfg->handlers.on_close(msg.handle.id());
          } catch (...) {
            // The connection is gone either way.
          }
        }
        return;
      }
      const bool in_meta = st.at == connection_state::phase::meta;
      report(msg.handle,
             error{"bulk lane: connection closed inside frame " + std::to_string(st.header.seq) + " (truncated " +
                   (in_meta ? "meta of " + std::to_string(st.header.meta_bytes)
                            : "payload of " + std::to_string(st.header.payload_bytes)) +
                   " bytes)"});
    },
    [=](const caf::io::acceptor_closed_msg&) {
      // The listening socket is gone; open connections carry on.
    },
    [=](lane_ready_atom) { return true; },
  };
}

// --- sending --------------------------------------------------------------------

/// The hand-off between a sender's caller and its I/O actor (which runs on
/// CAF's multiplexer thread), like a future: counters and the failure, under
/// one mutex.
struct sender_shared {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t next_seq = 1;       ///< caller: the next message's number
  uint64_t done_seq = 0;       ///< I/O actor: every message up to this one is written
  size_t in_flight_bytes = 0;  ///< queued, not yet written
  size_t in_flight_messages = 0;
  std::optional<error> failure;
  bool closing = false;        ///< caller asked to close
  bool finished = false;       ///< the I/O actor is gone
  // Whom to wake. A blocked send() is woken once the queue has drained to
  // half the limits (not per written message: that would cost two futex
  // calls per message); wait() is woken when its message is written.
  size_t room_waiters = 0; ///< send calls waiting for room (several threads may send)
  uint64_t wake_seq = UINT64_MAX;
  size_t low_bytes = 0, low_messages = 0;

  /// Called by the I/O actor, under mu, after progress.
  bool should_wake() const {
    return done_seq >= wake_seq ||
           (room_waiters != 0 && in_flight_bytes <= low_bytes && in_flight_messages <= low_messages);
  }
};

struct out_item {
  uint64_t seq = 0;
  std::vector<char> frame; ///< header + meta + payload, contiguous
};

struct completion {
  uint64_t end = 0; ///< stream offset just past the message
  uint64_t seq = 0;
  size_t bytes = 0;
};

struct sender_state {
  std::deque<out_item> queue;
  size_t batch_bytes = 0;     ///< frames below this are appended to waiting small frames
  bool offline_large = false; ///< CAF's offline buffer holds a large frame: append nothing to it
  bool open = true;
  bool closing = false;
  uint64_t enqueued = 0;      ///< bytes handed to CAF
  uint64_t written = 0;       ///< bytes CAF reports written
  std::deque<completion> completions;
};

caf::behavior sender_broker(caf::io::broker* self, caf::io::connection_handle hdl,
                            std::shared_ptr<sender_shared> sh, std::shared_ptr<buffer_pool> pool,
                            size_t batch_bytes) {
  using caf::io::receive_policy;
  auto st = std::make_shared<sender_state>();
  st->batch_bytes = batch_bytes;
  self->ack_writes(hdl, true);
  // The receiver never writes; reading lets us notice when it goes away.
  self->configure_read(hdl, receive_policy::at_most(4096));
  self->attach_functor([sh] {
    std::lock_guard lock(sh->mu);
    if (!sh->failure && !sh->closing)
      sh->failure = error{"bulk lane: the sender's I/O actor stopped (was the actor system shut down?)"};
    sh->finished = true;
    sh->cv.notify_all();
  });

  auto fail = [self, hdl, sh, st](const error& e) {
    {
      std::lock_guard lock(sh->mu);
      if (!sh->failure) sh->failure = e;
      sh->cv.notify_all();
    }
    if (st->open) self->close(hdl);
    st->open = false;
    self->quit();
  };
  // Hands queued frames to CAF in order, as far as its buffers allow: a
  // frame is swapped in whole when CAF's offline buffer is empty (no copy);
  // small frames are appended to other small frames (one write for many),
  // or to a large one that has room for them without growing.
  auto pump = [self, hdl, st, pool] {
    if (!st->open) return;
    for (;;) {
      if (st->queue.empty()) break;
      auto& wb = self->wr_buf(hdl);
      if (wb.empty()) st->offline_large = false;
      out_item& item = st->queue.front();
      const bool large = item.frame.size() >= st->batch_bytes;
      if (wb.empty()) {
        wb.swap(item.frame);
        // What comes back is a buffer CAF wrote earlier, cleared: reuse it.
        if (item.frame.capacity() != 0) pool->give(std::move(item.frame));
        st->offline_large = large;
      } else if (!large && ((!st->offline_large && wb.size() < st->batch_bytes * 16) ||
                            wb.capacity() - wb.size() >= item.frame.size())) {
        wb.insert(wb.end(), item.frame.begin(), item.frame.end());
      } else {
        break; // wait until CAF has taken its offline buffer
      }
      st->queue.pop_front();
      self->flush(hdl);
    }
    if (st->closing && st->queue.empty() && st->written == st->enqueued) {
      st->open = false;
      // Not quit() here: pump may run inside data_transferred (top of file).
      self->send(self, lane_done_atom::value);
    }
  };

  return {
    [=](lane_send_atom, uint64_t seq, std::vector<char>& frame) {
      const size_t bytes = frame.size();
      st->enqueued += bytes;
      st->completions.push_back({st->enqueued, seq, bytes});
      st->queue.push_back({seq, std::move(frame)});
      pump();
    },
    [=](lane_send_atom, uint64_t seq, std::vector<char>& frame, std::vector<char>& tail) {
      // One frame in two parts: its header and meta, then its payload.
      const size_t bytes = frame.size() + tail.size();
      st->enqueued += bytes;
      st->completions.push_back({st->enqueued, seq, bytes});
      st->queue.push_back({seq, std::move(frame)});
      st->queue.push_back({seq, std::move(tail)});
      pump();
    },
    [=](lane_close_atom) {
      st->closing = true;
      pump();
    },
    [=](lane_done_atom) {
      self->close(hdl); // sends FIN once CAF's buffers are written
      self->quit();
    },
    [=](const caf::io::data_transferred_msg& msg) {
      st->written += msg.written;
      uint64_t done = 0;
      size_t bytes = 0, count = 0;
      while (!st->completions.empty() && st->completions.front().end <= st->written) {
        done = st->completions.front().seq;
        bytes += st->completions.front().bytes;
        ++count;
        st->completions.pop_front();
      }
      if (count != 0) {
        std::lock_guard lock(sh->mu);
        sh->done_seq = done;
        sh->in_flight_bytes -= bytes;
        sh->in_flight_messages -= count;
        if (sh->should_wake()) sh->cv.notify_all();
      }
      pump();
    },
    [=](const caf::io::new_data_msg&) {
      // The receiving side has nothing to say; ignore whatever it sends.
    },
    [=](const caf::io::connection_closed_msg&) {
      st->open = false;
      if (st->written == st->enqueued && st->closing) {
        self->quit();
        return;
      }
      fail(error{"bulk lane: connection closed by the peer with " + std::to_string(st->enqueued - st->written) +
                 " bytes unsent"});
    },
  };
}

} // namespace

// --- caller-side objects --------------------------------------------------------

struct listener_impl {
  caf::actor_system* sys = nullptr;
  caf::actor broker;
  uint16_t port = 0;
  bool closed = false;
};

struct sender_impl {
  caf::actor_system* sys = nullptr;
  caf::actor broker;
  std::shared_ptr<sender_shared> shared;
  std::shared_ptr<buffer_pool> pool;
  lane_options opts;
};

listener::listener(std::unique_ptr<listener_impl> impl) : impl_(std::move(impl)) {}
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&& other) noexcept {
  if (this != &other) {
    close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
listener::~listener() { close(); }

uint16_t listener::port() const { return impl_ ? impl_->port : 0; }

void listener::close(std::chrono::milliseconds timeout) {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  caf::scoped_actor self{*impl_->sys};
  self->monitor(impl_->broker);
  self->send_exit(impl_->broker, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) {}, caf::after(timeout) >> [] {});
}

sender::sender(std::unique_ptr<sender_impl> impl) : impl_(std::move(impl)) {}
sender::sender(sender&&) noexcept = default;
sender& sender::operator=(sender&& other) noexcept {
  if (this != &other) {
    if (impl_) close(std::chrono::milliseconds(0));
    impl_ = std::move(other.impl_);
  }
  return *this;
}
sender::~sender() {
  if (impl_) close(std::chrono::milliseconds(0));
}

result<uint64_t> sender::send(const tensor_message& m) {
  if (!impl_) return error{"bulk lane: send on a moved-from sender"};
  sender_impl& im = *impl_;
  const tensor& t = m.value;
  if (t.defined() && t.device().kind != device::kind_t::cpu)
    return error{"bulk lane: cannot send tensor '" + m.name + "' on " + t.device().to_string() +
                 ": copy it to host memory first"};
  const size_t n = t.defined() ? t.nbytes() : 0;
  if (n > im.opts.max_payload_bytes)
    return error{"bulk lane: tensor '" + m.name + "' has " + std::to_string(n) + " bytes, over the limit of " +
                 std::to_string(im.opts.max_payload_bytes)};
  if (m.name.size() > max_name_bytes)
    return error{"bulk lane: tensor name of " + std::to_string(m.name.size()) + " bytes (limit " +
                 std::to_string(max_name_bytes) + ")"};
  wire_bytes prefix;
  try {
    prefix = encode_prefix(m, 0);
  } catch (const std::exception& e) {
    return error{std::string("bulk lane: cannot encode tensor '") + m.name + "': " + e.what()};
  }
  if (prefix.size() - header_bytes > im.opts.max_meta_bytes)
    return error{"bulk lane: the meta of tensor '" + m.name.substr(0, 64) + "' has " +
                 std::to_string(prefix.size() - header_bytes) + " bytes, over the limit of " +
                 std::to_string(im.opts.max_meta_bytes)};
  // The frame in one buffer: header, meta, then the one copy of the tensor's
  // bytes on the sending side. Large frames reuse pooled (faulted-in) buffers.
  std::vector<char> frame;
  const size_t bytes = prefix.size() + n;
  try {
    if (bytes >= im.opts.batch_bytes) {
      frame = im.pool->take_empty(bytes);
      frame.insert(frame.end(), prefix.begin(), prefix.end());
    } else {
      frame = std::move(prefix);
      frame.reserve(bytes);
    }
    if (n != 0) {
      const char* src = static_cast<const char*>(t.raw());
      frame.insert(frame.end(), src, src + n);
    }
  } catch (const std::bad_alloc&) {
    return error{"bulk lane: cannot allocate " + std::to_string(bytes) + " bytes to send '" + m.name + "'"};
  }
  return enqueue(std::move(frame), {}, "'" + m.name + "'");
}

result<uint64_t> sender::send_message(std::span<const char> meta, size_t payload_bytes,
                                      const std::function<void(char*)>& fill, const std::string& what) {
  if (!impl_) return error{"bulk lane: send on a moved-from sender"};
  sender_impl& im = *impl_;
  if (payload_bytes > im.opts.max_payload_bytes)
    return error{"bulk lane: " + what + " has " + std::to_string(payload_bytes) + " payload bytes, over the limit of " +
                 std::to_string(im.opts.max_payload_bytes)};
  if (meta.size() > im.opts.max_meta_bytes)
    return error{"bulk lane: the meta of " + what + " has " + std::to_string(meta.size()) +
                 " bytes, over the limit of " + std::to_string(im.opts.max_meta_bytes)};
  std::vector<char> frame;
  try {
    wire_bytes prefix = encode_message_prefix(meta, payload_bytes, 0);
    const size_t bytes = prefix.size() + payload_bytes;
    if (bytes >= im.opts.batch_bytes) {
      frame = im.pool->take_sized(bytes);
      std::copy(prefix.begin(), prefix.end(), frame.begin());
    } else {
      frame = std::move(prefix);
      frame.resize(bytes);
    }
    if (payload_bytes != 0) fill(frame.data() + (bytes - payload_bytes));
  } catch (const std::bad_alloc&) {
    return error{"bulk lane: cannot allocate a frame for " + what};
  } catch (const std::exception& e) {
    return error{"bulk lane: cannot build " + what + ": " + e.what()};
  }
  return enqueue(std::move(frame), {}, what);
}

result<uint64_t> sender::send_message_bytes(std::span<const char> meta, std::span<const char> payload,
                                            const std::string& what) {
  if (!impl_) return error{"bulk lane: send on a moved-from sender"};
  sender_impl& im = *impl_;
  if (payload.size() > im.opts.max_payload_bytes)
    return error{"bulk lane: " + what + " has " + std::to_string(payload.size()) +
                 " payload bytes, over the limit of " + std::to_string(im.opts.max_payload_bytes)};
  if (meta.size() > im.opts.max_meta_bytes)
    return error{"bulk lane: the meta of " + what + " has " + std::to_string(meta.size()) +
                 " bytes, over the limit of " + std::to_string(im.opts.max_meta_bytes)};
  std::vector<char> frame;
  try {
    wire_bytes prefix = encode_message_prefix(meta, payload.size(), 0);
    const size_t bytes = prefix.size() + payload.size();
    // Appended, not resized and overwritten: a kept buffer is not zero-filled first.
    if (bytes >= im.opts.batch_bytes) {
      frame = im.pool->take_empty(bytes + frame_slack);
      frame.insert(frame.end(), prefix.begin(), prefix.end());
    } else {
      frame = std::move(prefix);
      frame.reserve(bytes);
    }
    frame.insert(frame.end(), payload.begin(), payload.end());
  } catch (const std::bad_alloc&) {
    return error{"bulk lane: cannot allocate a frame for " + what};
  } catch (const std::exception& e) {
    return error{"bulk lane: cannot build " + what + ": " + e.what()};
  }
  return enqueue(std::move(frame), {}, what);
}

result<uint64_t> sender::send_message_buffer(std::span<const char> meta, std::vector<char>&& payload,
                                             const std::string& what) {
  if (!impl_) return error{"bulk lane: send on a moved-from sender"};
  sender_impl& im = *impl_;
  auto refuse = [&](error e) -> result<uint64_t> {
    im.pool->give(std::move(payload));
    return e;
  };
  if (payload.size() > im.opts.max_payload_bytes)
    return refuse(error{"bulk lane: " + what + " has " + std::to_string(payload.size()) +
                        " payload bytes, over the limit of " + std::to_string(im.opts.max_payload_bytes)});
  if (meta.size() > im.opts.max_meta_bytes)
    return refuse(error{"bulk lane: the meta of " + what + " has " + std::to_string(meta.size()) +
                        " bytes, over the limit of " + std::to_string(im.opts.max_meta_bytes)});
  wire_bytes prefix;
  try {
    prefix = encode_message_prefix(meta, payload.size(), 0);
  } catch (const std::exception& e) {
    return refuse(error{"bulk lane: cannot build " + what + ": " + e.what()});
  }
  // A small payload goes in the same buffer (one write); a large one after it.
  if (payload.size() < im.opts.batch_bytes) {
    prefix.insert(prefix.end(), payload.begin(), payload.end());
    im.pool->give(std::move(payload));
    return enqueue(std::move(prefix), {}, what);
  }
  return enqueue(std::move(prefix), std::move(payload), what);
}

result<uint64_t> sender::enqueue(std::vector<char>&& frame, std::vector<char>&& tail, const std::string& what) {
  sender_impl& im = *impl_;
  const size_t bytes = frame.size() + tail.size();
  sender_shared& sh = *im.shared;
  std::unique_lock lock(sh.mu);
  auto has_room = [&] {
    return sh.failure || sh.closing || sh.in_flight_messages == 0 ||
           (sh.in_flight_bytes + bytes <= im.opts.max_in_flight_bytes &&
            sh.in_flight_messages < im.opts.max_in_flight_messages);
  };
  bool room = has_room();
  if (!room) {
    ++sh.room_waiters;
    room = sh.cv.wait_for(lock, im.opts.send_timeout, has_room);
    --sh.room_waiters;
  }
  auto give_back = [&] {
    im.pool->give(std::move(frame));
    im.pool->give(std::move(tail));
  };
  if (sh.failure) {
    give_back();
    return *sh.failure;
  }
  if (sh.closing) {
    give_back();
    return error{"bulk lane: send on a closed sender"};
  }
  if (!room) {
    give_back();
    return error{"bulk lane: no room to send " + what + " within " + std::to_string(im.opts.send_timeout.count()) +
                 " ms (the receiver is not keeping up)"};
  }
  const uint64_t seq = sh.next_seq++;
  set_header_seq(frame.data(), seq);
  sh.in_flight_bytes += bytes;
  ++sh.in_flight_messages;
  // Sent under the lock so that messages reach the I/O actor in seq order.
  if (tail.empty())
    caf::anon_send(im.broker, lane_send_atom::value, seq, std::move(frame));
  else
    caf::anon_send(im.broker, lane_send_atom::value, seq, std::move(frame), std::move(tail));
  return seq;
}

status sender::wait(uint64_t seq, std::chrono::milliseconds timeout) {
  if (!impl_) return error{"bulk lane: wait on a moved-from sender"};
  sender_shared& sh = *impl_->shared;
  std::unique_lock lock(sh.mu);
  if (seq >= sh.next_seq) return error{"bulk lane: message " + std::to_string(seq) + " was never sent"};
  sh.wake_seq = seq;
  sh.cv.wait_for(lock, timeout, [&] { return sh.done_seq >= seq || sh.failure.has_value() || sh.finished; });
  sh.wake_seq = UINT64_MAX;
  if (sh.done_seq >= seq) return status::success();
  if (sh.failure) return *sh.failure;
  if (sh.finished) return error{"bulk lane: closed before message " + std::to_string(seq) + " was written"};
  return error{"bulk lane: message " + std::to_string(seq) + " not written within " +
               std::to_string(timeout.count()) + " ms"};
}

status sender::flush(std::chrono::milliseconds timeout) {
  if (!impl_) return error{"bulk lane: flush on a moved-from sender"};
  uint64_t last;
  {
    std::lock_guard lock(impl_->shared->mu);
    last = impl_->shared->next_seq - 1;
  }
  return last == 0 ? status::success() : wait(last, timeout);
}

status sender::close(std::chrono::milliseconds timeout) {
  if (!impl_) return status::success();
  sender_shared& sh = *impl_->shared;
  bool first = false;
  {
    std::lock_guard lock(sh.mu);
    if (!sh.closing) {
      sh.closing = true;
      first = true;
      sh.cv.notify_all();
    }
  }
  if (first) caf::anon_send(impl_->broker, lane_close_atom::value);
  std::unique_lock lock(sh.mu);
  sh.cv.wait_for(lock, timeout, [&] { return sh.finished; });
  if (sh.failure) return *sh.failure;
  if (sh.done_seq + 1 < sh.next_seq)
    return error{"bulk lane: " + std::to_string(sh.next_seq - 1 - sh.done_seq) +
                 " messages not yet written when close() returned"};
  return status::success();
}

uint64_t sender::completed() const {
  if (!impl_) return 0;
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->done_seq;
}

std::optional<error> sender::failure() const {
  if (!impl_) return std::nullopt;
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->failure;
}

// --- set-up ---------------------------------------------------------------------

result<listener> listen(caf::actor_system& sys, const std::string& host, uint16_t port, receive_handlers h,
                        const lane_options& o) {
  if (!h.on_tensor && !h.on_message && !h.on_message_buffer)
    return error{"bulk lane: listen needs an on_tensor or on_message handler"};
  if (!sys.has_middleman()) return error{"bulk lane: the actor system has no middleman (load caf::io::middleman)"};
  auto cfg = std::make_shared<receiver_config>();
  cfg->handlers = std::move(h);
  cfg->limits.max_meta_bytes = o.max_meta_bytes;
  cfg->limits.max_payload_bytes = o.max_payload_bytes;
  cfg->max_connections = o.max_connections;
  cfg->pool = pool_for(o);
  auto& mm = sys.middleman();
  // What middleman::spawn_server does, plus an address to bind to.
  auto door = mm.backend().new_tcp_doorman(port, host.empty() ? nullptr : host.c_str(), true);
  if (!door)
    return error{"bulk lane: cannot listen on " + host + ":" + std::to_string(port) + ": " + sys.render(door.error())};
  const uint16_t actual = (*door)->port();
  auto broker = mm.spawn_broker(receiver_broker, std::move(*door), std::move(cfg));
  {
    // Running, its doorman registered (top of file).
    caf::scoped_actor self{sys};
    bool ready = false;
    self->request(broker, std::chrono::seconds(30), lane_ready_atom::value)
        .receive([&](bool) { ready = true; }, [&](caf::error&) {});
    if (!ready) {
      self->send_exit(broker, caf::exit_reason::user_shutdown);
      return error{"bulk lane: the listener on " + host + ":" + std::to_string(actual) + " did not start"};
    }
  }
  auto impl = std::make_unique<listener_impl>();
  impl->sys = &sys;
  impl->broker = std::move(broker);
  impl->port = actual;
  return listener(std::move(impl));
}

result<sender> connect(caf::actor_system& sys, const std::string& host, uint16_t port, const lane_options& o) {
  if (!sys.has_middleman()) return error{"bulk lane: the actor system has no middleman (load caf::io::middleman)"};
  auto shared = std::make_shared<sender_shared>();
  shared->low_bytes = o.max_in_flight_bytes / 2;
  shared->low_messages = o.max_in_flight_messages / 2;
  auto pool = pool_for(o);
  auto broker = sys.middleman().spawn_client(sender_broker, host, port, shared, pool, o.batch_bytes);
  if (!broker)
    return error{"bulk lane: cannot connect to " + host + ":" + std::to_string(port) + ": " +
                 sys.render(broker.error())};
  auto impl = std::make_unique<sender_impl>();
  impl->sys = &sys;
  impl->broker = std::move(*broker);
  impl->shared = std::move(shared);
  impl->pool = std::move(pool);
  impl->opts = o;
  return sender(std::move(impl));
}

} // namespace luoshu::transport::bulk
