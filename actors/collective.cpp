#include "actors/collective.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>

#include "actors/atoms.hpp"
#include "actors/node.hpp"
#include "transport/bulk/lane.hpp"
#include "transport/codec.hpp"

namespace luoshu::actors {

namespace bulk = transport::bulk;
using transport::collective_chunk;
using transport::collective_kind;
using transport::collective_message;

/// One collective as the caller asked for it.
struct collective_call {
  collective_kind kind = collective_kind::allreduce;
  reduce_op op = reduce_op::sum;
  dtype type = dtype::f32;
  tensor in, out;           ///< kept alive until the call completes
  const char* src = nullptr; ///< in's first byte
  char* dst = nullptr;       ///< out's first byte
  uint64_t total = 0;        ///< elements of the whole buffer the ring works on
  std::vector<uint64_t> seg; ///< segment k is [seg[k], seg[k + 1]) (size + 1 entries)
  int root = 0;              ///< broadcast
  std::promise<status> done;
};

/// A lane message frame from the left neighbour.
struct collective_incoming {
  bulk::connection_id conn = 0;
  std::vector<char> meta;
  bulk::pooled_bytes payload;
};

/// How a rank reaches its right neighbour and whom it watches.
struct collective_links {
  std::string host;
  uint16_t port = 0;
  /// Every rank's peer actor (by rank), watched for failures when local.
  /// Remote ones are not monitored: CAF 0.17 can drop and replace a fresh
  /// node-to-node connection, which fires monitors of a live actor. Ranks
  /// in other processes are watched through the job's coordinator instead.
  std::vector<caf::actor> peers;
  /// The job's failure as the coordinator reports it (empty while healthy);
  /// polled while a collective runs. Empty function: no job.
  std::function<std::string()> job_failure;
};

} // namespace luoshu::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<luoshu::actors::collective_call>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<luoshu::actors::collective_incoming>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<luoshu::actors::collective_links>)

namespace luoshu::actors {

namespace {

using call_atom = caf::atom_constant<caf::atom("collcall")>;
using chunk_atom = caf::atom_constant<caf::atom("collchunk")>;
using link_atom = caf::atom_constant<caf::atom("colllink")>;
using addr_atom = caf::atom_constant<caf::atom("colladdr")>;
using lane_err_atom = caf::atom_constant<caf::atom("collerr")>;

int mod(int64_t a, int n) { return static_cast<int>(((a % n) + n) % n); }

// --- element-wise work ------------------------------------------------------------

template <class T>
void combine(T* dst, const T* a, const T* b, size_t n, reduce_op op) {
  switch (op) {
    case reduce_op::sum:
    case reduce_op::mean:
      for (size_t i = 0; i < n; ++i) dst[i] = a[i] + b[i];
      break;
    case reduce_op::max:
      for (size_t i = 0; i < n; ++i) dst[i] = a[i] < b[i] ? b[i] : a[i];
      break;
    case reduce_op::min:
      for (size_t i = 0; i < n; ++i) dst[i] = b[i] < a[i] ? b[i] : a[i];
      break;
  }
}

template <class T>
void divide(T* x, size_t n, int by) {
  const T d = static_cast<T>(by);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<T>(x[i] / d);
}

/// dst = a (op) b over `n` elements of `t`; with `final_mean`, then / ranks.
void combine_bytes(dtype t, void* dst, const void* a, const void* b, size_t n, reduce_op op, bool final_mean,
                   int ranks) {
  auto run = [&]<class T>(T*) {
    combine(static_cast<T*>(dst), static_cast<const T*>(a), static_cast<const T*>(b), n, op);
    if (final_mean) divide(static_cast<T*>(dst), n, ranks);
  };
  switch (t) {
    case dtype::f32: return run(static_cast<float*>(nullptr));
    case dtype::f64: return run(static_cast<double*>(nullptr));
    case dtype::i32: return run(static_cast<int32_t*>(nullptr));
    case dtype::i64: return run(static_cast<int64_t*>(nullptr));
    default: throw luoshu_error(std::string("collective: unsupported dtype ") + name(t));
  }
}

// --- the peer actor ---------------------------------------------------------------

/// What the communicator object and its actor share.
struct shared_state {
  mutable std::mutex mu;
  std::string failure;
  std::atomic<uint64_t> ops{0}, sent{0}, received{0};
};

struct peer_state {
  int rank = 0, size = 1;
  std::string group;
  collective_options opt;
  std::shared_ptr<shared_state> shared;
  std::shared_ptr<bulk::buffer_pool> pool;
  std::optional<bulk::sender> right;
  std::vector<caf::actor> peers;
  bool left_known = false;
  bulk::connection_id left_conn = -1;

  std::deque<std::shared_ptr<collective_call>> queue;
  std::shared_ptr<collective_call> cur;
  uint64_t cur_op = 0;  ///< the number of the collective in progress (0: none yet)
  uint64_t expected = 0, received = 0;
  size_t chunk_elems = 1;
  std::vector<uint64_t> next_chunk; ///< per stage: the chunk index expected next
  std::chrono::steady_clock::time_point last_progress;
  std::map<uint64_t, std::vector<std::shared_ptr<collective_incoming>>> early;
  std::optional<error> failed;
  /// Ranks that closed their communicator (or the left connection closed
  /// between two frames): a collective that then stops making progress for
  /// a short grace period fails naming them, without waiting the timeout.
  std::map<int, std::string> gone;
  std::function<std::string()> job_failure;

  int left() const { return mod(rank - 1, size); }
  int right_rank() const { return mod(rank + 1, size); }

  ~peer_state() {
    if (right) {
      (void)right->close(std::chrono::seconds(5));
      right.reset();
    }
  }
};

using peer_actor = caf::stateful_actor<peer_state>;

std::string op_label(const peer_state& s) {
  if (!s.cur) return "no collective";
  return std::string(name(s.cur->kind)) + " #" + std::to_string(s.cur_op);
}

/// Ends the communicator: the collective in progress and every queued one
/// fail with `e`; the right neighbour is told (best effort).
void fail(peer_actor* self, const error& e, int blame = -1, bool tell_right = true) {
  auto& s = self->state;
  if (s.failed) return;
  s.failed = e;
  {
    std::lock_guard lock(s.shared->mu);
    s.shared->failure = e.message;
  }
  if (s.cur) {
    s.cur->done.set_value(e);
    s.cur.reset();
  }
  for (auto& c : s.queue) c->done.set_value(e);
  s.queue.clear();
  s.early.clear();
  if (tell_right && s.right && s.size > 1) {
    collective_message m;
    m.kind = collective_message::kind_t::abort;
    m.abort.reason = e.message;
    m.abort.failed_rank = blame;
    auto meta = transport::encode(m);
    (void)s.right->send_message(meta, 0, [](char*) {}, "an abort message");
  }
}

size_t chunks_in(const peer_state& s, int seg) {
  const uint64_t n = s.cur->seg[static_cast<size_t>(seg) + 1] - s.cur->seg[static_cast<size_t>(seg)];
  return static_cast<size_t>((n + s.chunk_elems - 1) / s.chunk_elems);
}

/// The stages this rank receives in for the current call: [first, last).
std::pair<uint32_t, uint32_t> receive_stages(const peer_state& s) {
  const auto n = static_cast<uint32_t>(s.size);
  switch (s.cur->kind) {
    case collective_kind::allreduce: return {0, 2 * n - 2};
    case collective_kind::reduce_scatter: return {0, n - 1};
    case collective_kind::allgather: return {n - 1, 2 * n - 2};
    case collective_kind::broadcast: {
      const auto st = static_cast<uint32_t>(mod(s.rank - s.cur->root - 1, s.size));
      return s.rank == s.cur->root ? std::pair<uint32_t, uint32_t>{0, 0} : std::pair<uint32_t, uint32_t>{st, st + 1};
    }
  }
  return {0, 0};
}

/// The segment received (ring collectives) at `stage`.
int received_segment(const peer_state& s, uint32_t stage) {
  if (s.cur->kind == collective_kind::broadcast) return 0;
  return mod(static_cast<int64_t>(s.rank) - 2 - stage, s.size);
}

/// Sends chunk `c` of segment `seg` at `stage`; `fill` writes its elements.
void send_chunk(peer_actor* self, uint32_t stage, int seg, uint64_t offset, uint64_t count,
                const std::function<void(char*)>& fill) {
  auto& s = self->state;
  collective_message m;
  m.kind = collective_message::kind_t::chunk;
  collective_chunk& c = m.chunk;
  c.op = s.cur_op;
  c.kind = s.cur->kind;
  c.type = s.cur->type;
  c.reduce = s.cur->op;
  c.stage = stage;
  c.segment = static_cast<uint32_t>(seg);
  c.offset = offset;
  c.count = count;
  c.total = s.cur->total;
  const size_t bytes = count * size_of(c.type);
  auto meta = transport::encode(m);
  auto r = s.right->send_message(meta, bytes, fill, "a collective chunk");
  if (!r) return fail(self, error{"collective '" + s.group + "': cannot send to rank " + std::to_string(s.right_rank()) +
                                  " during " + op_label(s) + ": " + r.err().message},
                      s.right_rank(), false);
  s.shared->sent += bytes;
}

/// Sends every chunk of segment `seg` at `stage` from `base` (the buffer the
/// segment's elements are read from, indexed by element).
void send_segment(peer_actor* self, uint32_t stage, int seg, const char* base) {
  auto& s = self->state;
  const size_t es = size_of(s.cur->type);
  const uint64_t b = s.cur->seg[static_cast<size_t>(seg)], e = s.cur->seg[static_cast<size_t>(seg) + 1];
  for (uint64_t o = b; o < e && !s.failed; o += s.chunk_elems) {
    const uint64_t cnt = std::min<uint64_t>(s.chunk_elems, e - o);
    const char* from = base + o * es;
    send_chunk(self, stage, seg, o, cnt, [from, cnt, es](char* d) { std::memcpy(d, from, cnt * es); });
  }
}

void start_next(peer_actor* self);

void complete(peer_actor* self) {
  auto& s = self->state;
  s.cur->done.set_value(status::success());
  s.cur.reset();
  ++s.shared->ops;
  start_next(self);
}

void handle_chunk(peer_actor* self, const collective_chunk& c, bulk::pooled_bytes& payload);

/// Starts the next queued collective, if any and none runs.
void start_next(peer_actor* self) {
  auto& s = self->state;
  if (s.cur || s.queue.empty() || s.failed) return;
  s.cur = std::move(s.queue.front());
  s.queue.pop_front();
  ++s.cur_op;
  collective_call& c = *s.cur;
  const size_t es = size_of(c.type);
  const int n = s.size, r = s.rank;
  s.chunk_elems = std::max<size_t>(1, s.opt.chunk_bytes / es);
  s.received = 0;
  s.last_progress = std::chrono::steady_clock::now();

  // What this rank already has: its own part of the result.
  switch (c.kind) {
    case collective_kind::allgather: {
      char* mine = c.dst + c.seg[static_cast<size_t>(r)] * es;
      const size_t bytes = (c.seg[static_cast<size_t>(r) + 1] - c.seg[static_cast<size_t>(r)]) * es;
      if (mine != c.src && bytes != 0) std::memmove(mine, c.src, bytes);
      break;
    }
    case collective_kind::broadcast:
      if (r == c.root && c.dst != c.src && c.total != 0) std::memmove(c.dst, c.src, c.total * es);
      break;
    case collective_kind::allreduce:
    case collective_kind::reduce_scatter:
      if (n == 1) {
        const uint64_t first = c.kind == collective_kind::allreduce ? 0 : c.seg[0];
        const size_t bytes = (c.seg[1] - c.seg[0]) * es;
        if (c.dst != c.src + first * es && bytes != 0) std::memmove(c.dst, c.src + first * es, bytes);
      }
      break;
  }

  auto [first, last] = n == 1 ? std::pair<uint32_t, uint32_t>{0, 0} : receive_stages(s);
  s.next_chunk.assign(2 * static_cast<size_t>(n), 0);
  s.expected = 0;
  for (uint32_t st = first; st < last; ++st) s.expected += chunks_in(s, received_segment(s, st));

  // What this rank sends first.
  if (n > 1) {
    switch (c.kind) {
      case collective_kind::allreduce:
      case collective_kind::reduce_scatter: send_segment(self, 0, mod(r - 1, n), c.src); break;
      case collective_kind::allgather: send_segment(self, static_cast<uint32_t>(n - 1), r, c.dst); break;
      case collective_kind::broadcast:
        if (r == c.root) send_segment(self, 0, 0, c.dst);
        break;
    }
  }
  if (s.failed) return;
  if (s.expected == 0) return complete(self);
  // Chunks that came before this rank got here.
  auto it = s.early.find(s.cur_op);
  if (it != s.early.end()) {
    auto msgs = std::move(it->second);
    s.early.erase(it);
    const uint64_t op = s.cur_op;
    for (auto& in : msgs) {
      if (!s.cur || s.failed || s.cur_op != op) break;
      auto m = transport::decode_collective_message(in->meta);
      handle_chunk(self, m->chunk, in->payload);
    }
  }
}

error mismatch(const peer_state& s, const collective_chunk& c, const std::string& what) {
  return error{"collective '" + s.group + "': rank " + std::to_string(s.left()) + " sent " + name(c.kind) + " #" +
               std::to_string(c.op) + " of " + std::to_string(c.total) + " " + name(c.type) + " (" +
               name(c.reduce) + ") but rank " + std::to_string(s.rank) + " runs " + name(s.cur->kind) + " of " +
               std::to_string(s.cur->total) + " " + name(s.cur->type) + " (" + name(s.cur->op) + "): " + what};
}

/// A chunk of the collective in progress.
void handle_chunk(peer_actor* self, const collective_chunk& c, bulk::pooled_bytes& payload) {
  auto& s = self->state;
  collective_call& call = *s.cur;
  const int n = s.size;
  const size_t es = size_of(call.type);
  if (c.kind != call.kind || c.type != call.type || c.total != call.total ||
      (c.kind != collective_kind::allgather && c.kind != collective_kind::broadcast && c.reduce != call.op))
    return fail(self, mismatch(s, c, "every rank must issue the same collectives in the same order"), s.left());
  auto [first, last] = receive_stages(s);
  if (c.stage < first || c.stage >= last)
    return fail(self, mismatch(s, c, "stage " + std::to_string(c.stage) + " is not one this rank receives"), s.left());
  const int seg = received_segment(s, c.stage);
  const uint64_t sb = call.seg[static_cast<size_t>(seg)], se = call.seg[static_cast<size_t>(seg) + 1];
  const uint64_t idx = s.next_chunk[c.stage];
  const uint64_t want_off = sb + idx * s.chunk_elems;
  const uint64_t want_cnt = want_off < se ? std::min<uint64_t>(s.chunk_elems, se - want_off) : 0;
  if (static_cast<int>(c.segment) != (call.kind == collective_kind::broadcast ? 0 : seg) || c.offset != want_off ||
      c.count != want_cnt || want_cnt == 0 || payload.size() != c.count * es)
    return fail(self,
                mismatch(s, c,
                         "unexpected chunk: segment " + std::to_string(c.segment) + " [" + std::to_string(c.offset) +
                             ", +" + std::to_string(c.count) + ") with " + std::to_string(payload.size()) +
                             " bytes at stage " + std::to_string(c.stage) + " (expected segment " +
                             std::to_string(seg) + " [" + std::to_string(want_off) + ", +" +
                             std::to_string(want_cnt) + ")); were the ranks given different chunk sizes?"),
                s.left());
  ++s.next_chunk[c.stage];
  s.shared->received += payload.size();
  const uint64_t o = c.offset, cnt = c.count;
  const char* p = payload.data();
  const uint32_t rs_last = static_cast<uint32_t>(n - 2);
  const uint32_t ag_last = static_cast<uint32_t>(2 * n - 3);
  try {
    if (call.kind == collective_kind::broadcast) {
      std::memcpy(call.dst + o * es, p, cnt * es);
      if (s.right_rank() != call.root)
        send_chunk(self, c.stage + 1, 0, o, cnt, [p, cnt, es](char* d) { std::memcpy(d, p, cnt * es); });
    } else if (c.stage <= rs_last && call.kind != collective_kind::allgather) {
      // Reduce-scatter: combine with this rank's elements and pass on.
      const char* mine = call.src + o * es;
      if (c.stage < rs_last) {
        const dtype t = call.type;
        const reduce_op op = call.op;
        send_chunk(self, c.stage + 1, seg, o, cnt,
                   [=](char* d) { combine_bytes(t, d, p, mine, cnt, op, false, n); });
      } else {
        // The last step: this rank's segment is complete.
        const uint64_t at = call.kind == collective_kind::allreduce ? o : o - sb;
        char* out = call.dst + at * es;
        combine_bytes(call.type, out, p, mine, cnt, call.op, call.op == reduce_op::mean, n);
        if (call.kind == collective_kind::allreduce)
          send_chunk(self, c.stage + 1, seg, o, cnt, [out, cnt, es](char* d) { std::memcpy(d, out, cnt * es); });
      }
    } else {
      // All-gather: keep the finished chunk and pass it on.
      std::memcpy(call.dst + o * es, p, cnt * es);
      if (c.stage < ag_last)
        send_chunk(self, c.stage + 1, seg, o, cnt, [p, cnt, es](char* d) { std::memcpy(d, p, cnt * es); });
    }
  } catch (const std::exception& e) {
    return fail(self, error{"collective '" + s.group + "': " + e.what()});
  }
  if (s.failed) return;
  s.last_progress = std::chrono::steady_clock::now();
  if (++s.received == s.expected) complete(self);
}

void on_incoming(peer_actor* self, const std::shared_ptr<collective_incoming>& in) {
  auto& s = self->state;
  if (s.failed) return;
  auto m = transport::decode_collective_message(in->meta);
  if (s.left_known && in->conn != s.left_conn) {
    spdlog::warn("collective '{}' rank {}: ignoring a message from a connection that is not rank {}'s", s.group,
                 s.rank, s.left());
    return;
  }
  if (!m) {
    if (!s.left_known) {
      spdlog::warn("collective '{}' rank {}: ignoring a connection that did not introduce itself: {}", s.group, s.rank,
                   m.err().message);
      return;
    }
    return fail(self, error{"collective '" + s.group + "': rank " + std::to_string(s.left()) + " sent " +
                            m.err().message},
                s.left());
  }
  if (!s.left_known) {
    const auto& h = m->hello;
    if (m->kind != collective_message::kind_t::hello || h.group != s.group || h.size != s.size || h.rank != s.left()) {
      spdlog::warn("collective '{}' rank {}: ignoring a connection that is not rank {} of this ring (it says: "
                   "group '{}', rank {} of {})",
                   s.group, s.rank, s.left(), h.group, h.rank, h.size);
      return;
    }
    s.left_known = true;
    s.left_conn = in->conn;
    return;
  }
  switch (m->kind) {
    case collective_message::kind_t::hello:
      return fail(self, error{"collective '" + s.group + "': rank " + std::to_string(s.left()) + " introduced itself twice"},
                  s.left());
    case collective_message::kind_t::abort: {
      const int blame = m->abort.failed_rank;
      return fail(self, error{m->abort.reason}, blame);
    }
    case collective_message::kind_t::chunk: {
      const uint64_t op = m->chunk.op;
      if (s.cur && op == s.cur_op) {
        handle_chunk(self, m->chunk, in->payload);
      } else if (op > s.cur_op) {
        s.early[op].push_back(in); // the left neighbour is ahead of this rank
      } else {
        fail(self, error{"collective '" + s.group + "': rank " + std::to_string(s.left()) + " sent a chunk of " +
                         name(m->chunk.kind) + " #" + std::to_string(op) + ", which rank " + std::to_string(s.rank) +
                         " has already finished"},
             s.left());
      }
      return;
    }
  }
}

caf::behavior peer_behavior(peer_actor* self, int rank, int size, collective_options opt,
                            std::shared_ptr<shared_state> shared, std::shared_ptr<bulk::buffer_pool> pool,
                            std::string advertised, uint16_t port) {
  auto& s = self->state;
  s.rank = rank;
  s.size = size;
  s.group = opt.group;
  s.opt = opt;
  s.shared = std::move(shared);
  s.pool = std::move(pool);
  const auto tick = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(250),
                                                        std::max<std::chrono::milliseconds>(opt.timeout / 4,
                                                                                            std::chrono::milliseconds(10)));
  self->set_down_handler([self](const caf::down_msg& d) {
    auto& s = self->state;
    for (size_t k = 0; k < s.peers.size(); ++k)
      if (s.peers[k].address() == d.source) {
        if (d.reason == caf::exit_reason::user_shutdown) { // it closed its communicator
          s.gone.emplace(static_cast<int>(k), "closed its communicator");
          return;
        }
        fail(self,
             error{"collective '" + s.group + "': rank " + std::to_string(k) +
                   " is gone (its process exited or its connection dropped)" +
                   (s.cur ? " during " + op_label(s) : std::string())},
             static_cast<int>(k), false);
        return;
      }
  });
  self->delayed_send(self, tick, tick_atom::value);
  return {
    [=](addr_atom) { return std::make_tuple(advertised, port); },
    [=](link_atom, const std::shared_ptr<collective_links>& l) -> std::string {
      auto& s = self->state;
      s.peers = l->peers;
      s.job_failure = l->job_failure;
      for (size_t k = 0; k < s.peers.size(); ++k)
        if (static_cast<int>(k) != s.rank && s.peers[k] && s.peers[k].node() == self->node()) self->monitor(s.peers[k]);
      if (s.size == 1) return "";
      bulk::lane_options lo;
      lo.pool = s.pool;
      lo.send_timeout = s.opt.timeout;
      auto snd = bulk::connect(self->system(), l->host, l->port, lo);
      if (!snd)
        return "collective '" + s.group + "': rank " + std::to_string(s.rank) + " cannot connect to rank " +
               std::to_string(s.right_rank()) + " at " + l->host + ":" + std::to_string(l->port) + ": " +
               snd.err().message;
      s.right.emplace(std::move(*snd));
      collective_message m;
      m.kind = collective_message::kind_t::hello;
      m.hello = {s.group, s.rank, s.size};
      auto meta = transport::encode(m);
      if (auto r = s.right->send_message(meta, 0, [](char*) {}, "the hello"); !r) return r.err().message;
      return "";
    },
    [=](call_atom, std::shared_ptr<collective_call>& c) {
      auto& s = self->state;
      if (s.failed) {
        c->done.set_value(*s.failed);
        return;
      }
      s.queue.push_back(std::move(c));
      start_next(self);
    },
    [=](chunk_atom, const std::shared_ptr<collective_incoming>& in) { on_incoming(self, in); },
    [=](lane_err_atom, bulk::connection_id conn, const std::string& what, bool clean) {
      auto& s = self->state;
      if (!s.left_known || conn != s.left_conn) return;
      if (clean) {
        s.gone.emplace(s.left(), "closed its connection to rank " + std::to_string(s.rank));
        return;
      }
      fail(self, error{"collective '" + s.group + "': the connection from rank " + std::to_string(s.left()) +
                       " ended" + (s.cur ? " during " + op_label(s) : std::string()) + ": " + what},
           s.left());
    },
    [=](tick_atom) {
      auto& s = self->state;
      const auto idle = std::chrono::steady_clock::now() - s.last_progress;
      if (s.cur && !s.failed && s.job_failure)
        if (std::string f = s.job_failure(); !f.empty())
          fail(self, error{"collective '" + s.group + "': " + op_label(s) + " stopped: the job failed: " + f});
      if (s.cur && !s.failed && !s.gone.empty() && idle > std::min<std::chrono::milliseconds>(s.opt.timeout, std::chrono::seconds(2))) {
        const auto& [k, why] = *s.gone.begin();
        fail(self, error{"collective '" + s.group + "': rank " + std::to_string(k) + " " + why + " while rank " +
                         std::to_string(s.rank) + " still waits in " + op_label(s) +
                         " (did every rank issue the same collectives?)"},
             k);
      }
      if (s.cur && !s.failed && idle > s.opt.timeout)
        fail(self, error{"collective '" + s.group + "': rank " + std::to_string(s.rank) + " received nothing from rank " +
                         std::to_string(s.left()) + " for " + std::to_string(s.opt.timeout.count()) + " ms during " +
                         op_label(s) + " (" + std::to_string(s.received) + " of " + std::to_string(s.expected) +
                         " chunks arrived)"},
             s.left());
      self->delayed_send(self, tick, tick_atom::value);
    },
  };
}

} // namespace

// --- the communicator -------------------------------------------------------------

struct communicator::impl {
  caf::actor_system* sys = nullptr;
  caf::actor peer;
  std::shared_ptr<shared_state> shared = std::make_shared<shared_state>();
  std::optional<bulk::listener> listener;
  std::string advertised;

  ~impl() {
    if (peer) {
      caf::scoped_actor self{*sys};
      self->monitor(peer);
      self->send_exit(peer, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
    }
    if (listener) listener->close();
  }
};

namespace {

/// Spawns rank `rank`'s peer actor and its lane listener on `bind`.
result<std::shared_ptr<communicator::impl>> start_peer(caf::actor_system& sys, int rank, int size,
                                                       const collective_options& o, const std::string& bind,
                                                       const std::string& advertised) {
  if (size < 1 || rank < 0 || rank >= size)
    return error{"collective '" + o.group + "': rank " + std::to_string(rank) + " of " + std::to_string(size)};
  if (o.chunk_bytes < 8) return error{"collective '" + o.group + "': chunk_bytes must be at least 8"};
  auto im = std::make_shared<communicator::impl>();
  im->sys = &sys;
  im->advertised = advertised;
  auto pool = std::make_shared<bulk::buffer_pool>(size_t{1} << 30);
  // The listener forwards to the actor, which does not exist yet: go through
  // a handle that is set right after.
  auto target = std::make_shared<caf::actor>();
  bulk::receive_handlers h;
  h.on_message = [target](bulk::connection_id c, std::vector<char> meta, bulk::pooled_bytes payload) {
    auto in = std::make_shared<collective_incoming>();
    in->conn = c;
    in->meta = std::move(meta);
    in->payload = std::move(payload);
    caf::anon_send(*target, chunk_atom::value, std::move(in));
  };
  h.on_error = [target](bulk::connection_id c, const error& e) {
    caf::anon_send(*target, lane_err_atom::value, c, e.message, false);
  };
  h.on_close = [target](bulk::connection_id c) {
    caf::anon_send(*target, lane_err_atom::value, c, std::string("closed by the peer"), true);
  };
  bulk::lane_options lo;
  lo.pool = pool;
  auto l = bulk::listen(sys, bind, 0, std::move(h), lo);
  if (!l) return error{"collective '" + o.group + "': rank " + std::to_string(rank) + ": " + l.err().message};
  const uint16_t port = l->port();
  im->listener.emplace(std::move(*l));
  *target = sys.spawn<caf::detached>(peer_behavior, rank, size, o, im->shared, pool, advertised, port);
  im->peer = *target;
  return im;
}

status link(caf::actor_system& sys, const caf::actor& peer, std::shared_ptr<collective_links> l,
            std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys};
  std::string err;
  bool answered = false;
  self->request(peer, timeout, link_atom::value, std::move(l))
      .receive([&](const std::string& e) { err = e, answered = true; },
               [&](caf::error& e) { err = sys.render(e), answered = true; });
  if (!answered) return error{"collective: the peer actor did not answer"};
  if (!err.empty()) return error{err};
  return {};
}

} // namespace

result<std::vector<std::unique_ptr<communicator>>> communicator::create_local(caf::actor_system& sys, int size,
                                                                              collective_options o) {
  if (size < 1) return error{"collective '" + o.group + "': size " + std::to_string(size) + " (want >= 1)"};
  const std::string host = o.host.empty() ? "127.0.0.1" : o.host;
  std::vector<std::unique_ptr<communicator>> out;
  std::vector<caf::actor> peers;
  std::vector<uint16_t> ports;
  for (int r = 0; r < size; ++r) {
    auto im = start_peer(sys, r, size, o, host, host);
    if (!im) return im.err();
    std::unique_ptr<communicator> c(new communicator());
    c->impl_ = std::move(*im);
    c->rank_ = r;
    c->size_ = size;
    c->group_ = o.group;
    peers.push_back(c->impl_->peer);
    ports.push_back(c->impl_->listener->port());
    out.push_back(std::move(c));
  }
  for (int r = 0; r < size; ++r) {
    auto l = std::make_shared<collective_links>();
    l->host = host;
    l->port = ports[static_cast<size_t>((r + 1) % size)];
    l->peers = peers;
    if (status st = link(sys, peers[static_cast<size_t>(r)], std::move(l), o.connect_timeout); !st) return st.err();
  }
  return out;
}

result<std::unique_ptr<communicator>> communicator::create(node& n, int rank, int size, collective_options o) {
  auto [bind, advertised] = bulk_address(n);
  if (!o.host.empty()) bind = advertised = o.host;
  auto im = start_peer(n.system(), rank, size, o, bind, advertised);
  if (!im) return im.err();
  std::unique_ptr<communicator> c(new communicator());
  c->impl_ = std::move(*im);
  c->rank_ = rank;
  c->size_ = size;
  c->group_ = o.group;
  auto name_of = [&](int r) { return "collective/" + o.group + "/" + std::to_string(r); };
  if (auto reg = n.register_actor(name_of(rank), c->impl_->peer); !reg || !*reg)
    return error{"collective '" + o.group + "': cannot register rank " + std::to_string(rank) +
                 (reg ? std::string(": the name is taken (two ranks " + std::to_string(rank) + "?)") : ": " + reg.err().message)};
  auto l = std::make_shared<collective_links>();
  l->job_failure = [&n] { return n.failure(); };
  for (int r = 0; r < size; ++r) {
    if (r == rank) {
      l->peers.push_back(c->impl_->peer);
      continue;
    }
    auto a = n.lookup(name_of(r), o.connect_timeout);
    if (!a) return error{"collective '" + o.group + "': rank " + std::to_string(r) + " did not join: " + a.err().message};
    l->peers.push_back(*a);
  }
  if (size > 1) {
    // The right neighbour's lane address. A fresh connection between two
    // nodes can lose its first message (CAF 0.17): ask again until it answers.
    const caf::actor& right = l->peers[static_cast<size_t>((rank + 1) % size)];
    const auto deadline = std::chrono::steady_clock::now() + o.connect_timeout;
    caf::scoped_actor self{n.system()};
    bool got = false;
    std::string last = "no answer";
    while (!got && std::chrono::steady_clock::now() < deadline) {
      self->request(right, std::chrono::seconds(2), addr_atom::value)
          .receive(
              [&](const std::string& host, uint16_t port) {
                l->host = host;
                l->port = port;
                got = true;
              },
              [&](caf::error& e) { last = n.system().render(e); });
    }
    if (!got)
      return error{"collective '" + o.group + "': rank " + std::to_string((rank + 1) % size) +
                   " did not tell its address within " + std::to_string(o.connect_timeout.count()) + " ms (" + last +
                   ")"};
  }
  if (status st = link(n.system(), c->impl_->peer, std::move(l), o.connect_timeout); !st) return st.err();
  return c;
}

communicator::~communicator() = default;

void communicator::kill_for_testing() {
  caf::scoped_actor self{*impl_->sys};
  self->monitor(impl_->peer);
  self->send_exit(impl_->peer, caf::exit_reason::kill);
  self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  impl_->peer = caf::actor();
  if (impl_->listener) impl_->listener->close();
}

std::string communicator::failure() const {
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->failure;
}

collective_stats communicator::stats() const {
  return {impl_->shared->ops.load(), impl_->shared->sent.load(), impl_->shared->received.load()};
}

namespace {

collective_future failed(const std::string& what) {
  std::promise<status> p;
  p.set_value(error{"collective: " + what});
  return collective_future(p.get_future());
}

/// Checks a tensor the ring reads or writes; empty when fine.
std::string check_tensor(const tensor& t, const char* role) {
  if (!t.defined()) return std::string(role) + " is undefined";
  if (!t.on_host())
    return std::string(role) + " is on " + t.device().to_string() +
           ": the CPU ring takes host tensors (use an nccl_communicator for device tensors)";
  switch (t.type()) {
    case dtype::f32: case dtype::f64: case dtype::i32: case dtype::i64: return "";
    default: return std::string(role) + " is " + name(t.type()) + " (supported: f32, f64, i32, i64)";
  }
}

/// Allocates `out` when undefined; checks it otherwise.
std::string prepare_out(const tensor& in, tensor& out, int64_t numel, const shape& fresh) {
  if (!out.defined()) out = tensor(in.type(), fresh);
  if (auto e = check_tensor(out, "out"); !e.empty()) return e;
  if (out.type() != in.type())
    return std::string("out is ") + name(out.type()) + " but in is " + name(in.type());
  if (out.numel() != numel)
    return "out has " + std::to_string(out.numel()) + " elements, expected " + std::to_string(numel);
  return "";
}

std::vector<uint64_t> even_segments(uint64_t total, int n) {
  std::vector<uint64_t> seg(static_cast<size_t>(n) + 1, 0);
  const uint64_t q = total / static_cast<uint64_t>(n), rem = total % static_cast<uint64_t>(n);
  for (int k = 0; k < n; ++k) seg[static_cast<size_t>(k) + 1] = seg[static_cast<size_t>(k)] + q + (static_cast<uint64_t>(k) < rem ? 1 : 0);
  return seg;
}

} // namespace

collective_future communicator::submit(std::shared_ptr<collective_call> call) {
  auto f = call->done.get_future();
  {
    std::lock_guard lock(impl_->shared->mu);
    if (!impl_->shared->failure.empty()) {
      call->done.set_value(error{impl_->shared->failure});
      return collective_future(std::move(f));
    }
  }
  call->src = static_cast<const char*>(call->in.raw());
  call->dst = static_cast<char*>(call->out.raw());
  caf::anon_send(impl_->peer, call_atom::value, std::move(call));
  return collective_future(std::move(f));
}

collective_future communicator::allreduce(const tensor& in, tensor& out, reduce_op op) {
  if (auto e = check_tensor(in, "in"); !e.empty()) return failed("allreduce: " + e);
  if (auto e = prepare_out(in, out, in.numel(), in.shape()); !e.empty()) return failed("allreduce: " + e);
  auto c = std::make_shared<collective_call>();
  c->kind = collective_kind::allreduce;
  c->op = op;
  c->type = in.type();
  c->in = in;
  c->out = out;
  c->total = static_cast<uint64_t>(in.numel());
  c->seg = even_segments(c->total, size_);
  return submit(std::move(c));
}

collective_future communicator::allgather(const tensor& in, tensor& out) {
  return allgatherv(in, out, std::vector<int64_t>(static_cast<size_t>(size_), in.defined() ? in.numel() : 0));
}

collective_future communicator::allgatherv(const tensor& in, tensor& out, std::vector<int64_t> counts) {
  if (auto e = check_tensor(in, "in"); !e.empty()) return failed("allgather: " + e);
  if (counts.size() != static_cast<size_t>(size_))
    return failed("allgather: " + std::to_string(counts.size()) + " counts for " + std::to_string(size_) + " ranks");
  std::vector<uint64_t> seg(counts.size() + 1, 0);
  for (size_t k = 0; k < counts.size(); ++k) {
    if (counts[k] < 0) return failed("allgather: negative count " + std::to_string(counts[k]) + " for rank " + std::to_string(k));
    seg[k + 1] = seg[k] + static_cast<uint64_t>(counts[k]);
  }
  if (in.numel() != counts[static_cast<size_t>(rank_)])
    return failed("allgather: in has " + std::to_string(in.numel()) + " elements but rank " + std::to_string(rank_) +
                  "'s count is " + std::to_string(counts[static_cast<size_t>(rank_)]));
  const auto total = static_cast<int64_t>(seg.back());
  if (auto e = prepare_out(in, out, total, shape{total}); !e.empty()) return failed("allgather: " + e);
  auto c = std::make_shared<collective_call>();
  c->kind = collective_kind::allgather;
  c->type = in.type();
  c->in = in;
  c->out = out;
  c->total = seg.back();
  c->seg = std::move(seg);
  return submit(std::move(c));
}

collective_future communicator::reduce_scatter(const tensor& in, tensor& out, reduce_op op) {
  if (auto e = check_tensor(in, "in"); !e.empty()) return failed("reduce_scatter: " + e);
  if (in.numel() % size_ != 0)
    return failed("reduce_scatter: in has " + std::to_string(in.numel()) + " elements, not a multiple of " +
                  std::to_string(size_) + " ranks");
  const int64_t part = in.numel() / size_;
  if (auto e = prepare_out(in, out, part, shape{part}); !e.empty()) return failed("reduce_scatter: " + e);
  auto c = std::make_shared<collective_call>();
  c->kind = collective_kind::reduce_scatter;
  c->op = op;
  c->type = in.type();
  c->in = in;
  c->out = out;
  c->total = static_cast<uint64_t>(in.numel());
  c->seg = even_segments(c->total, size_);
  return submit(std::move(c));
}

collective_future communicator::broadcast(const tensor& in, tensor& out, int root) {
  if (root < 0 || root >= size_)
    return failed("broadcast: root " + std::to_string(root) + " of " + std::to_string(size_) + " ranks");
  const tensor& ref = rank_ == root ? in : out;
  if (auto e = check_tensor(ref, rank_ == root ? "in" : "out"); !e.empty()) return failed("broadcast: " + e);
  if (rank_ == root)
    if (auto e = prepare_out(in, out, in.numel(), in.shape()); !e.empty()) return failed("broadcast: " + e);
  auto c = std::make_shared<collective_call>();
  c->kind = collective_kind::broadcast;
  c->type = ref.type();
  c->in = rank_ == root ? in : out;
  c->out = out;
  c->total = static_cast<uint64_t>(out.numel());
  c->seg = {0, c->total};
  c->root = root;
  return submit(std::move(c));
}

} // namespace luoshu::actors
