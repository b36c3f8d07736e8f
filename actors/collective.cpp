#include "actors/collective.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "actors/atoms.hpp"
#include "actors/node.hpp"
#include "transport/bulk/lane.hpp"
#include "transport/bulk/shm_slots.hpp"
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
  int mean_divisor = 0;      ///< reduce_op::mean divides by this (0: the ring's size)
  std::promise<status> done;
  /// Called when the call completes, after `done` is kept and outside the
  /// engine's mutex, on whichever thread completed it (often CAF's I/O
  /// thread): the next step of a halving-doubling all-reduce, or the
  /// communicator's call order starting what waited for this call.
  std::function<void(const status&)> on_done;
  std::atomic<bool> completed{false}; ///< complete() ran
};

/// Keeps `c`'s promise, then calls its on_done (which must not throw: the
/// ones here catch what they call). Only the first call does anything.
void complete(collective_call& c, status st) {
  if (c.completed.exchange(true)) return;
  auto then = std::move(c.on_done);
  c.on_done = nullptr;
  if (!then) return c.done.set_value(std::move(st));
  const status copy = st;
  c.done.set_value(std::move(st));
  then(copy);
}

/// A received payload: a buffer from the lane's pool, given back to it
/// unless it is passed on (to the right neighbour, without a copy).
class payload_buffer {
public:
  payload_buffer(std::vector<char>&& b, std::shared_ptr<bulk::buffer_pool> pool)
      : bytes_(std::move(b)), pool_(std::move(pool)) {}
  payload_buffer(payload_buffer&& o) noexcept
      : bytes_(std::exchange(o.bytes_, {})), pool_(std::move(o.pool_)) {}
  payload_buffer& operator=(payload_buffer&& o) noexcept {
    if (this != &o) {
      give_back();
      bytes_ = std::exchange(o.bytes_, {});
      pool_ = std::move(o.pool_);
    }
    return *this;
  }
  payload_buffer(const payload_buffer&) = delete;
  payload_buffer& operator=(const payload_buffer&) = delete;
  ~payload_buffer() { give_back(); }

  char* data() { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  /// The buffer itself, to pass on; this one is empty afterwards.
  std::vector<char> release() { return std::exchange(bytes_, {}); }

private:
  void give_back() {
    if (pool_ && bytes_.capacity() != 0) pool_->give(std::exchange(bytes_, {}));
  }
  std::vector<char> bytes_;
  std::shared_ptr<bulk::buffer_pool> pool_;
};

/// Where a chunk's elements come from when it is sent: copied from `from`,
/// or computed by `fill` into their destination, or (sent inline) the
/// received `buffer` itself, passed on without a copy after `fill` ran on
/// it. Into a shared-memory slot, `fill` runs there, else `from` or the
/// buffer's bytes are copied there.
struct chunk_source {
  const char* from = nullptr;
  payload_buffer* buffer = nullptr;
  const std::function<void(char*)>* fill = nullptr;
};

/// A lane message frame from the left neighbour that came before its
/// collective started here.
struct collective_incoming {
  std::vector<char> meta;
  payload_buffer payload;
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
  /// Offer the right neighbour shared-memory slots (it advertises this
  /// rank's own host).
  bool offer_shm = false;
};

} // namespace luoshu::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<luoshu::actors::collective_links>)

namespace luoshu::actors {

namespace {

using link_atom = caf::atom_constant<caf::atom("colllink")>;

int mod(int64_t a, int n) { return static_cast<int>(((a % n) + n) % n); }

/// The number errors give rank `r` of a ring: its rank there, or the one
/// the options give it (the rank in the job of a pair ring's member).
int rank_id(const collective_options& o, int r) {
  const auto k = static_cast<size_t>(r);
  return k < o.rank_names.size() ? o.rank_names[k] : r;
}

std::string rank_name(const collective_options& o, int r) { return std::to_string(rank_id(o, r)); }

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

// --- the ring engine --------------------------------------------------------------

/// What the communicator object and its actor share.
struct shared_state {
  mutable std::mutex mu;
  std::string failure;
  std::atomic<uint64_t> ops{0}, sent{0}, received{0}, sent_shm{0}, chunks{0}, ops_hd{0};
};

/// This rank's part of the collectives: the one in progress, the queue, and
/// the chunks that came early.
///
/// Deliberately not an actor's state (STYLE.md would have one owner): a
/// chunk is combined and passed on right where the lane delivers it, on
/// CAF's I/O thread, because a hop to an actor thread and back costs two
/// thread wake-ups per chunk, and on a loaded machine those dominated. So the
/// state sits under one mutex, taken by the lane's callbacks (I/O thread),
/// by submit() (the caller's thread) and by the peer actor (link, timeouts,
/// failures of other ranks). Nothing under the mutex waits: the sender to
/// the right never blocks (its limits are above anything one collective
/// queues; the collective's own size bounds what is in flight), promises are
/// kept after the mutex is released, and the first sends of a collective
/// (the copy of this rank's segment into frames) run outside it, so the I/O
/// thread keeps receiving meanwhile.
class ring_engine {
public:
  ring_engine(int rank, int size, collective_options opt, std::shared_ptr<shared_state> shared,
              std::shared_ptr<bulk::buffer_pool> pool)
      : rank_(rank), size_(size), group_(opt.group), opt_(std::move(opt)), shared_(std::move(shared)),
        pool_(std::move(pool)) {}
  ring_engine(const ring_engine&) = delete;
  ring_engine& operator=(const ring_engine&) = delete;

  int left() const { return mod(rank_ - 1, size_); }
  int right_rank() const { return mod(rank_ + 1, size_); }
  /// How errors name rank `r` of this ring (collective_options::rank_names).
  std::string who(int r) const { return rank_name(opt_, r); }
  const std::string& group() const { return group_; }

  /// Queues a collective (the caller's thread); it starts at once when none runs.
  void submit(std::shared_ptr<collective_call> c) {
    run([&] {
      if (failed_) {
        done_.emplace_back(std::move(c), *failed_);
        return;
      }
      queue_.push_back(std::move(c));
      start_next();
    });
  }

  /// A message frame from the lane (CAF's I/O thread).
  void on_message(bulk::connection_id conn, std::vector<char>&& meta, std::vector<char>&& payload) {
    payload_buffer p(std::move(payload), pool_);
    run([&] { on_incoming(conn, std::move(meta), std::move(p)); });
  }

  /// A lane connection ended (CAF's I/O thread): cleanly between frames, or
  /// with an error.
  void on_lane_end(bulk::connection_id conn, const std::string& what, bool clean) {
    run([&] {
      if (failed_ || !left_known_ || conn != left_conn_) return;
      if (clean) {
        gone_.emplace(left(), "closed its connection to rank " + who(rank_));
        return;
      }
      fail(error{"collective '" + group_ + "': the connection from rank " + who(left()) + " ended" +
                 (cur_ ? " during " + op_label() : std::string()) + ": " + what},
           left());
    });
  }

  /// The connection to the right neighbour (the peer actor, once): says hello
  /// on it. Empty on success, else what went wrong.
  /// `offer`: shared-memory slots offered to it in the hello (null: none).
  std::string attach_right(bulk::sender s, std::shared_ptr<bulk::shm_slots> offer) {
    std::string err;
    run([&] {
      if (stopped_) {
        err = "collective '" + group_ + "': rank " + who(rank_) + " was closed";
        return;
      }
      right_ = std::make_shared<bulk::sender>(std::move(s));
      collective_message m;
      m.kind = collective_message::kind_t::hello;
      m.hello.group = group_;
      m.hello.rank = rank_;
      m.hello.size = size_;
      if (offer) {
        // Used once the right neighbour says it mapped them (settle_shm).
        shm_out_ = std::move(offer);
        m.hello.shm_name = shm_out_->name();
        m.hello.shm_nonce = shm_out_->nonce();
        m.hello.shm_slots = shm_out_->slots();
        m.hello.shm_slot_bytes = shm_out_->slot_bytes();
      }
      auto meta = transport::encode(m);
      if (auto r = right_->send_message(meta, 0, [](char*) {}, "the hello"); !r) err = r.err().message;
    });
    return err;
  }

  /// Waits (up to `timeout`) until the left neighbour introduced itself;
  /// its hello (what it offers), or an error.
  result<transport::collective_hello> await_left(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    left_cv_.wait_for(lock, timeout, [&] { return left_known_ || failed_ || stopped_; });
    if (left_known_) return left_hello_;
    if (failed_) return *failed_;
    return error{"collective '" + group_ + "': rank " + who(left()) + " did not connect to rank " +
                 who(rank_) + " within " + std::to_string(timeout.count()) + " ms"};
  }

  /// The left neighbour's slots, mapped here (before it sends through them).
  void attach_left_shm(std::unique_ptr<bulk::shm_slots> slots) {
    run([&] { shm_in_ = std::move(slots); });
  }

  /// What the right neighbour mapped of the slots offered to it (their
  /// nonce; 0: none): the payloads go through them from now on, while slots
  /// are free; or they are given up (and their name unlinked).
  void settle_shm(uint64_t nonce) {
    std::shared_ptr<bulk::shm_slots> unused;
    run([&] {
      if (!shm_out_) return;
      if (nonce != 0 && shm_out_->nonce() == nonce && !stopped_) shm_out_on_ = true;
      else if (!shm_out_on_) unused = std::move(shm_out_);
    });
  }

  /// Whether payloads to the right go through shared memory (tests).
  bool shm_enabled() const {
    std::lock_guard lock(mu_);
    return shm_out_on_;
  }

  /// Rank `k` closed its communicator (its peer actor stopped cleanly).
  void rank_left(int k) {
    run([&] { gone_.emplace(k, "closed its communicator"); });
  }

  /// Rank `k`'s peer actor is gone otherwise (killed, its process died).
  void rank_died(int k) {
    run([&] {
      fail(error{"collective '" + group_ + "': rank " + who(k) +
                 " is gone (its process exited or its connection dropped)" +
                 (cur_ ? " during " + op_label() : std::string())},
           k, false);
    });
  }

  /// Ends the communicator with `e` (the collective in progress and every
  /// queued one fail; the right neighbour is told), unless it already failed.
  void abort(const error& e) {
    run([&] { fail(e); });
  }

  /// Called once with this ring's failure (not when it is stopped), outside
  /// the mutex: a communicator with pair rings fails all of them with it.
  void on_fail(std::function<void(const error&)> f) {
    run([&] {
      on_fail_ = std::move(f);
      if (failed_ && !stopped_) spread_ = *failed_; // it failed before this was set
    });
  }

  /// The peer actor's periodic check: the job's failure (as the coordinator
  /// reports it; empty while healthy), ranks that left, the timeout.
  void tick(const std::string& job_failure) {
    run([&] {
      if (!cur_ || failed_) return;
      const auto idle = std::chrono::steady_clock::now() - last_progress_;
      if (!job_failure.empty())
        return fail(error{"collective '" + group_ + "': " + op_label() + " stopped: the job failed: " + job_failure});
      if (!gone_.empty() && idle > std::min<std::chrono::milliseconds>(opt_.timeout, std::chrono::seconds(2))) {
        const auto& [k, why] = *gone_.begin();
        return fail(error{"collective '" + group_ + "': rank " + who(k) + " " + why + " while rank " +
                          who(rank_) + " still waits in " + op_label() +
                          " (did every rank issue the same collectives?)"},
                    k);
      }
      if (idle > opt_.timeout)
        fail(error{"collective '" + group_ + "': rank " + who(rank_) + " received nothing from rank " +
                   who(left()) + " for " + std::to_string(opt_.timeout.count()) + " ms during " +
                   op_label() + " (" + std::to_string(received_) + " of " + std::to_string(expected_) +
                   " chunks arrived)"},
             left());
    });
  }

  /// Whether a collective is in progress (the peer actor polls the job's
  /// failure only then).
  bool busy() const {
    std::lock_guard lock(mu_);
    return cur_ != nullptr && !failed_;
  }

  /// The peer actor stops (its communicator closes, or it was killed): the
  /// collectives still pending fail, chunks are ignored from now on, and the
  /// connection to the right closes after what is queued (up to 5 s).
  void stop() {
    std::shared_ptr<bulk::sender> right;
    run([&] {
      stopped_ = true;
      fail(error{"collective '" + group_ + "': rank " + who(rank_) + "'s communicator was closed"}, -1,
           false);
      right = std::move(right_);
    });
    if (right) (void)right->close(std::chrono::seconds(5));
  }

private:
  /// The start of a collective, done outside the mutex by the thread that
  /// started it: copy this rank's own part of the result into place
  /// (`bytes` from `copy_from` to `copy_to`), then send segment `seg` at
  /// `stage`, element k read from base + (k - base_elem) * element size.
  struct first_sends {
    uint64_t op = 0;
    std::shared_ptr<collective_call> call; ///< keeps the buffers alive
    std::shared_ptr<bulk::sender> right;
    std::shared_ptr<bulk::shm_slots> shm; ///< null: payloads inline
    uint32_t stage = 0;
    int seg = 0;
    const char* base = nullptr;
    uint64_t base_elem = 0;
    size_t chunk_elems = 1;
    bool send = false;
    bool announce = false; ///< one chunk without elements (collective_kind::halving_doubling)
    char* copy_to = nullptr;
    const char* copy_from = nullptr;
    size_t bytes = 0;
  };

  /// Runs `f` under the mutex, then (without it) keeps the promises `f`
  /// fulfilled and makes the first sends of a collective `f` started.
  // TODO(perf): a large collective that starts on the I/O thread (queued
  // behind one that finished there) copies its segment there before any of
  // it is written. Handing that copy to the peer actor measured no better
  // (one process, 2 and 4 ranks, 8 queued all-reduces of 16 MiB); across
  // processes it is unmeasured.
  template <class F>
  void run(F&& f) {
    std::unique_lock lock(mu_);
    f();
    for (;;) {
      if (spread_) {
        const error e = std::move(*spread_);
        spread_.reset();
        auto hook = on_fail_;
        lock.unlock();
        if (hook) hook(e);
        lock.lock();
        continue;
      }
      if (!done_.empty()) {
        auto done = std::move(done_);
        done_.clear();
        lock.unlock();
        for (auto& [c, st] : done) complete(*c, std::move(st));
        done.clear(); // the calls' tensors are released outside the mutex too
        lock.lock();
        continue;
      }
      if (!first_) return;
      first_sends p = std::move(*first_);
      first_.reset();
      lock.unlock();
      std::string err = send_first(p);
      lock.lock();
      if (failed_ || !cur_ || cur_op_ != p.op) continue;
      if (!err.empty()) {
        fail(error{"collective '" + group_ + "': cannot send to rank " + who(right_rank()) + " during " +
                   op_label() + ": " + err},
             right_rank(), false);
        continue;
      }
      first_pending_ = false;
      last_progress_ = std::chrono::steady_clock::now();
      maybe_complete();
    }
  }

  /// The meta of a chunk of the collective in progress.
  static transport::wire_bytes chunk_meta(const collective_call& call, uint64_t op, uint32_t stage, int seg,
                                          uint64_t offset, uint64_t count, int slot) {
    collective_message m;
    m.kind = collective_message::kind_t::chunk;
    collective_chunk& c = m.chunk;
    c.op = op;
    c.kind = call.kind;
    c.type = call.type;
    c.reduce = call.op;
    c.stage = stage;
    c.segment = static_cast<uint32_t>(seg);
    c.offset = offset;
    c.count = count;
    c.total = call.total;
    c.slot = slot;
    return transport::encode(m);
  }

  /// Sends one chunk to the right: its elements through a shared-memory
  /// slot of `shm` when one is free (null: none accepted), else inline.
  /// Counts the payload bytes in `shared` (sent, and sent_shm for a slot).
  static result<uint64_t> send_one(bulk::sender& right, bulk::shm_slots* shm, shared_state& shared,
                                   const collective_call& call, uint64_t op, uint32_t stage, int seg, uint64_t offset,
                                   uint64_t count, const chunk_source& src) {
    static const std::string what = "a collective chunk";
    const size_t bytes = count * size_of(call.type);
    const int slot = shm && bytes <= shm->slot_bytes() ? shm->acquire() : -1;
    if (slot >= 0) {
      result<uint64_t> r = error{""};
      try {
        char* d = shm->slot(slot);
        if (src.fill) (*src.fill)(d);
        else std::memcpy(d, src.from ? src.from : src.buffer->data(), bytes);
        shm->publish(slot);
        r = right.send_message(chunk_meta(call, op, stage, seg, offset, count, slot), 0, [](char*) {}, what);
      } catch (...) {
        shm->release(slot); // not announced: the writer's again
        throw;
      }
      if (!r) {
        shm->release(slot);
        return r;
      }
      shared.sent += bytes;
      shared.sent_shm += bytes;
      ++shared.chunks;
      return r;
    }
    auto meta = chunk_meta(call, op, stage, seg, offset, count, -1);
    result<uint64_t> r = error{""};
    if (src.buffer) {
      if (src.fill) (*src.fill)(src.buffer->data());
      r = right.send_message_buffer(meta, src.buffer->release(), what);
    } else if (src.fill) {
      r = right.send_message(meta, bytes, *src.fill, what);
    } else {
      r = right.send_message_bytes(meta, {src.from, bytes}, what);
    }
    if (r) {
      shared.sent += bytes;
      ++shared.chunks;
    }
    return r;
  }

  /// Does `p` (no mutex held): the local copy, then every chunk; stops
  /// early once the communicator failed. Empty on success.
  std::string send_first(const first_sends& p) {
    // Nothing else touches these bytes until the collective completes, and
    // it completes only after this (first_pending_).
    if (p.bytes != 0) std::memmove(p.copy_to, p.copy_from, p.bytes);
    if (!p.send) return "";
    const collective_call& call = *p.call;
    if (p.announce) {
      auto r = p.right->send_message(chunk_meta(call, p.op, 0, 0, 0, 0, -1), 0, [](char*) {}, "an announcement");
      return r ? "" : r.err().message;
    }
    const size_t es = size_of(call.type);
    const uint64_t b = call.seg[static_cast<size_t>(p.seg)], e = call.seg[static_cast<size_t>(p.seg) + 1];
    for (uint64_t o = b; o < e && !aborted_.load(std::memory_order_relaxed); o += p.chunk_elems) {
      const uint64_t cnt = std::min<uint64_t>(p.chunk_elems, e - o);
      const char* from = p.base + (o - p.base_elem) * es;
      auto r = send_one(*p.right, p.shm.get(), *shared_, call, p.op, p.stage, p.seg, o, cnt, {.from = from});
      if (!r) return r.err().message;
    }
    return "";
  }

  std::string op_label() const {
    if (!cur_) return "no collective";
    return std::string(name(cur_->kind)) + " #" + std::to_string(cur_op_);
  }

  /// Ends the communicator: the collective in progress and every queued one
  /// fail with `e`; the right neighbour is told (best effort).
  void fail(const error& e, int blame = -1, bool tell_right = true) {
    if (failed_) return;
    failed_ = e;
    if (on_fail_ && !stopped_) spread_ = e; // run() passes it on once the mutex is released
    left_cv_.notify_all();
    aborted_.store(true, std::memory_order_relaxed);
    {
      std::lock_guard lock(shared_->mu);
      shared_->failure = e.message;
    }
    if (cur_) done_.emplace_back(std::move(cur_), e);
    cur_.reset();
    for (auto& c : queue_) done_.emplace_back(std::move(c), e);
    queue_.clear();
    early_.clear();
    first_.reset();
    if (tell_right && right_ && size_ > 1) {
      collective_message m;
      m.kind = collective_message::kind_t::abort;
      m.abort.reason = e.message;
      m.abort.failed_rank = blame;
      auto meta = transport::encode(m);
      (void)right_->send_message(meta, 0, [](char*) {}, "an abort message");
    }
  }

  size_t chunks_in(int seg) const {
    const uint64_t n = cur_->seg[static_cast<size_t>(seg) + 1] - cur_->seg[static_cast<size_t>(seg)];
    return static_cast<size_t>((n + chunk_elems_ - 1) / chunk_elems_);
  }

  /// The stages this rank receives in for the current call: [first, last).
  std::pair<uint32_t, uint32_t> receive_stages() const {
    const auto n = static_cast<uint32_t>(size_);
    switch (cur_->kind) {
      case collective_kind::allreduce: return {0, 2 * n - 2};
      case collective_kind::reduce_scatter: return {0, n - 1};
      case collective_kind::allgather: return {n - 1, 2 * n - 2};
      case collective_kind::broadcast: {
        const auto st = static_cast<uint32_t>(mod(rank_ - cur_->root - 1, size_));
        return rank_ == cur_->root ? std::pair<uint32_t, uint32_t>{0, 0} : std::pair<uint32_t, uint32_t>{st, st + 1};
      }
      case collective_kind::halving_doubling: return {0, 1};
    }
    return {0, 0};
  }

  /// The segment received (ring collectives) at `stage`.
  int received_segment(uint32_t stage) const {
    if (cur_->kind == collective_kind::broadcast) return 0;
    return mod(static_cast<int64_t>(rank_) - 2 - stage, size_);
  }

  /// Sends a chunk of the collective in progress (chunk_source says how).
  void send_chunk(uint32_t stage, int seg, uint64_t offset, uint64_t count, const chunk_source& src) {
    auto r = !right_ ? result<uint64_t>(error{"not connected"})
                     : send_one(*right_, shm_out_on_ ? shm_out_.get() : nullptr, *shared_, *cur_, cur_op_, stage, seg,
                                offset, count, src);
    if (!r)
      return fail(error{"collective '" + group_ + "': cannot send to rank " + who(right_rank()) +
                        " during " + op_label() + ": " + r.err().message},
                  right_rank(), false);
  }

  /// Completes the collective in progress once everything arrived and its
  /// first chunks are sent.
  void maybe_complete() {
    if (!cur_ || failed_ || first_pending_ || received_ != expected_) return;
    // A halving-doubling all-reduce counts once all its steps are done.
    if (cur_->kind != collective_kind::halving_doubling) ++shared_->ops;
    done_.emplace_back(std::move(cur_), status::success());
    cur_.reset();
    start_next();
  }

  /// Starts the next queued collective, if any and none runs.
  void start_next() {
    if (cur_ || queue_.empty() || failed_) return;
    cur_ = std::move(queue_.front());
    queue_.pop_front();
    ++cur_op_;
    collective_call& c = *cur_;
    const size_t es = size_of(c.type);
    const int n = size_, r = rank_;
    // Chunks of chunk_bytes, or halves of a segment up to twice that (not
    // under split_floor_bytes); from the largest segment, the same on every
    // rank.
    uint64_t largest = 0;
    for (size_t k = 0; k + 1 < c.seg.size(); ++k) largest = std::max(largest, c.seg[k + 1] - c.seg[k]);
    const uint64_t half = (largest + 1) / 2;
    chunk_elems_ = std::max<size_t>(
        1, std::min<uint64_t>(opt_.chunk_bytes / es, std::max<uint64_t>(opt_.split_floor_bytes / es, half)));
    received_ = 0;
    first_pending_ = false;
    last_progress_ = std::chrono::steady_clock::now();

    auto [first, last] = n == 1 ? std::pair<uint32_t, uint32_t>{0, 0} : receive_stages();
    next_chunk_.assign(2 * static_cast<size_t>(n), 0);
    expected_ = 0;
    if (c.kind == collective_kind::halving_doubling) expected_ = last - first; // the left's one announcement
    else
      for (uint32_t st = first; st < last; ++st) expected_ += chunks_in(received_segment(st));

    // What this rank already has (its own part of the result) and what it
    // sends first (always read from `in`): handed to the thread that
    // started the collective, to do once the mutex is released (run()).
    first_sends p{cur_op_, cur_, right_, shm_out_on_ ? shm_out_ : nullptr};
    p.base = c.src;
    p.chunk_elems = chunk_elems_;
    switch (c.kind) {
      case collective_kind::allgather: {
        const auto k = static_cast<size_t>(r);
        p.copy_to = c.dst + c.seg[k] * es;
        p.copy_from = c.src;
        p.bytes = (c.seg[k + 1] - c.seg[k]) * es;
        p.stage = static_cast<uint32_t>(n - 1);
        p.seg = r;
        p.base_elem = c.seg[k];
        p.send = n > 1;
        break;
      }
      case collective_kind::broadcast:
        if (r == c.root) {
          p.copy_to = c.dst;
          p.copy_from = c.src;
          p.bytes = c.total * es;
          p.send = n > 1;
        }
        break;
      case collective_kind::halving_doubling:
        p.announce = true;
        p.send = n > 1;
        break;
      case collective_kind::allreduce:
      case collective_kind::reduce_scatter:
        if (n == 1) {
          const uint64_t at = c.kind == collective_kind::allreduce ? 0 : c.seg[0];
          p.copy_to = c.dst;
          p.copy_from = c.src + at * es;
          p.bytes = (c.seg[1] - c.seg[0]) * es;
        } else {
          p.seg = mod(r - 1, n);
          p.send = true;
        }
        break;
    }
    if (p.copy_to == p.copy_from) p.bytes = 0;
    if (p.send && !p.announce && chunks_in(p.seg) == 0) p.send = false;
    if (p.send && !right_)
      return fail(error{"collective '" + group_ + "': rank " + who(rank_) + " is not connected to rank " +
                        who(right_rank())},
                  -1, false);
    if (p.send || p.bytes != 0) {
      first_ = std::move(p);
      first_pending_ = true;
    }
    if (!first_pending_ && expected_ == 0) return maybe_complete();
    // Chunks that came before this rank got here.
    auto it = early_.find(cur_op_);
    if (it != early_.end()) {
      auto msgs = std::move(it->second);
      early_.erase(it);
      const uint64_t op = cur_op_;
      for (auto& in : msgs) {
        if (!cur_ || failed_ || cur_op_ != op) break;
        auto m = transport::decode_collective_message(in.meta);
        handle_chunk(m->chunk, in.payload);
      }
    }
  }

  error mismatch(const collective_chunk& c, const std::string& what) const {
    return error{"collective '" + group_ + "': rank " + who(left()) + " sent " + name(c.kind) + " #" +
                 std::to_string(c.op) + " of " + std::to_string(c.total) + " " + name(c.type) + " (" +
                 name(c.reduce) + ") but rank " + who(rank_) + " runs " + name(cur_->kind) + " of " +
                 std::to_string(cur_->total) + " " + name(cur_->type) + " (" + name(cur_->op) + "): " + what};
  }

  /// A chunk of the collective in progress.
  void handle_chunk(const collective_chunk& c, payload_buffer& payload) {
    collective_call& call = *cur_;
    const int n = size_;
    const size_t es = size_of(call.type);
    if (c.kind != call.kind || c.type != call.type || c.total != call.total ||
        (c.kind != collective_kind::allgather && c.kind != collective_kind::broadcast && c.reduce != call.op))
      return fail(mismatch(c, "every rank must issue the same collectives in the same order"), left());
    auto [first, last] = receive_stages();
    if (c.stage < first || c.stage >= last)
      return fail(mismatch(c, "stage " + std::to_string(c.stage) + " is not one this rank receives"), left());
    if (call.kind == collective_kind::halving_doubling) {
      // The left neighbour's announcement of the same all-reduce: no elements.
      if (c.count != 0 || c.offset != 0 || c.slot >= 0 || payload.size() != 0 || next_chunk_[0] != 0)
        return fail(mismatch(c, "an announcement with elements, or twice"), left());
      ++next_chunk_[0];
      last_progress_ = std::chrono::steady_clock::now();
      ++received_;
      return maybe_complete();
    }
    const int seg = received_segment(c.stage);
    const uint64_t sb = call.seg[static_cast<size_t>(seg)], se = call.seg[static_cast<size_t>(seg) + 1];
    const uint64_t idx = next_chunk_[c.stage];
    const uint64_t want_off = sb + idx * chunk_elems_;
    const uint64_t want_cnt = want_off < se ? std::min<uint64_t>(chunk_elems_, se - want_off) : 0;
    const bool in_slot = c.slot >= 0;
    const uint64_t want_bytes = in_slot ? 0 : c.count * es;
    if (static_cast<int>(c.segment) != (call.kind == collective_kind::broadcast ? 0 : seg) || c.offset != want_off ||
        c.count != want_cnt || want_cnt == 0 || payload.size() != want_bytes)
      return fail(mismatch(c, "unexpected chunk: segment " + std::to_string(c.segment) + " [" +
                                  std::to_string(c.offset) + ", +" + std::to_string(c.count) + ") with " +
                                  std::to_string(payload.size()) + " bytes at stage " + std::to_string(c.stage) +
                                  " (expected segment " + std::to_string(seg) + " [" + std::to_string(want_off) +
                                  ", +" + std::to_string(want_cnt) + ")); were the ranks given different chunk sizes?"),
                  left());
    const uint64_t o = c.offset, cnt = c.count;
    char* p = payload.data();
    if (in_slot) {
      std::string bad;
      if (!shm_in_) bad = "but none of its shared memory is mapped here";
      else if (static_cast<uint32_t>(c.slot) >= shm_in_->slots()) bad = "of " + std::to_string(shm_in_->slots());
      else if (cnt * es > shm_in_->slot_bytes()) bad = "with " + std::to_string(cnt * es) + " bytes, over its size";
      else if (!shm_in_->full(c.slot)) bad = "not marked full";
      if (!bad.empty())
        return fail(error{"collective '" + group_ + "': rank " + who(left()) + " sent a chunk in " +
                          "shared-memory slot " + std::to_string(c.slot) + " " + bad},
                    left());
      p = shm_in_->slot(c.slot);
    }
    ++next_chunk_[c.stage];
    shared_->received += cnt * es;
    const uint32_t rs_last = static_cast<uint32_t>(n - 2);
    const uint32_t ag_last = static_cast<uint32_t>(2 * n - 3);
    // A received inline buffer that is passed on inline goes as it is (no
    // copy); one in a slot is read there and passed on from its final place.
    payload_buffer* pass_on = in_slot ? nullptr : &payload;
    try {
      if (call.kind == collective_kind::broadcast) {
        char* kept = call.dst + o * es;
        std::memcpy(kept, p, cnt * es);
        if (right_rank() != call.root) send_chunk(c.stage + 1, 0, o, cnt, {.from = kept, .buffer = pass_on});
      } else if (c.stage <= rs_last && call.kind != collective_kind::allgather) {
        // Reduce-scatter: combine with this rank's elements and pass on.
        const char* mine = call.src + o * es;
        if (c.stage < rs_last) {
          const std::function<void(char*)> fill = [&](char* d) {
            combine_bytes(call.type, d, p, mine, cnt, call.op, false, n);
          };
          send_chunk(c.stage + 1, seg, o, cnt, {.buffer = pass_on, .fill = &fill});
        } else {
          // The last step: this rank's segment is complete.
          const uint64_t at = call.kind == collective_kind::allreduce ? o : o - sb;
          char* out = call.dst + at * es;
          combine_bytes(call.type, out, p, mine, cnt, call.op, call.op == reduce_op::mean,
                        call.mean_divisor ? call.mean_divisor : n);
          if (call.kind == collective_kind::allreduce) send_chunk(c.stage + 1, seg, o, cnt, {.from = out});
        }
      } else {
        // All-gather: keep the finished chunk and pass it on.
        char* kept = call.dst + o * es;
        std::memcpy(kept, p, cnt * es);
        if (c.stage < ag_last) send_chunk(c.stage + 1, seg, o, cnt, {.from = kept, .buffer = pass_on});
      }
    } catch (const std::exception& e) {
      return fail(error{"collective '" + group_ + "': " + e.what()});
    }
    if (in_slot) shm_in_->release(c.slot);
    if (failed_) return;
    last_progress_ = std::chrono::steady_clock::now();
    ++received_;
    maybe_complete();
  }

  void on_incoming(bulk::connection_id conn, std::vector<char>&& meta, payload_buffer&& payload) {
    if (failed_) return;
    if (left_known_ && conn != left_conn_) {
      spdlog::warn("collective '{}' rank {}: ignoring a message from a connection that is not rank {}'s", group_,
                   who(rank_), who(left()));
      return;
    }
    auto m = transport::decode_collective_message(meta);
    if (!m) {
      if (!left_known_) {
        spdlog::warn("collective '{}' rank {}: ignoring a connection that did not introduce itself: {}", group_,
                     who(rank_), m.err().message);
        return;
      }
      return fail(error{"collective '" + group_ + "': rank " + who(left()) + " sent " + m.err().message},
                  left());
    }
    if (!left_known_) {
      const auto& h = m->hello;
      if (m->kind != collective_message::kind_t::hello || h.group != group_ || h.size != size_ || h.rank != left()) {
        spdlog::warn("collective '{}' rank {}: ignoring a connection that is not rank {} of this ring (it says: "
                     "group '{}', rank {} of {})",
                     group_, who(rank_), who(left()), h.group, h.rank, h.size);
        return;
      }
      left_known_ = true;
      left_conn_ = conn;
      left_hello_ = h; // its shared-memory offer is taken up off this thread (accept_left_shm)
      left_cv_.notify_all();
      return;
    }
    switch (m->kind) {
      case collective_message::kind_t::hello:
        return fail(error{"collective '" + group_ + "': rank " + who(left()) + " introduced itself twice"},
                    left());
      case collective_message::kind_t::abort: return fail(error{m->abort.reason}, m->abort.failed_rank);
      case collective_message::kind_t::chunk: {
        const uint64_t op = m->chunk.op;
        if (cur_ && op == cur_op_) {
          handle_chunk(m->chunk, payload);
        } else if (op > cur_op_) {
          early_[op].push_back({std::move(meta), std::move(payload)}); // the left neighbour is ahead of this rank
        } else {
          fail(error{"collective '" + group_ + "': rank " + who(left()) + " sent a chunk of " +
                     name(m->chunk.kind) + " #" + std::to_string(op) + ", which rank " + who(rank_) +
                     " has already finished"},
               left());
        }
        return;
      }
    }
  }

  // Fixed at construction.
  const int rank_, size_;
  const std::string group_;
  const collective_options opt_;
  const std::shared_ptr<shared_state> shared_;
  const std::shared_ptr<bulk::buffer_pool> pool_;

  mutable std::mutex mu_;
  // Under mu_.
  std::shared_ptr<bulk::sender> right_;
  std::shared_ptr<bulk::shm_slots> shm_out_; ///< offered to the right (kept until the engine goes)
  bool shm_out_on_ = false;                  ///< the right neighbour mapped them
  std::unique_ptr<bulk::shm_slots> shm_in_;  ///< the left neighbour's, mapped here
  transport::collective_hello left_hello_;    ///< once left_known_
  std::condition_variable left_cv_;           ///< left_known_, failed_ or stopped_ changed
  bool stopped_ = false;
  bool left_known_ = false;
  bulk::connection_id left_conn_ = -1;
  std::deque<std::shared_ptr<collective_call>> queue_;
  std::shared_ptr<collective_call> cur_;
  uint64_t cur_op_ = 0; ///< the number of the collective in progress (0: none yet)
  uint64_t expected_ = 0, received_ = 0;
  size_t chunk_elems_ = 1;
  std::vector<uint64_t> next_chunk_; ///< per stage: the chunk index expected next
  std::chrono::steady_clock::time_point last_progress_;
  std::map<uint64_t, std::vector<collective_incoming>> early_;
  std::optional<error> failed_;
  /// Ranks that closed their communicator (or the left connection closed
  /// between two frames): a collective that then stops making progress for
  /// a short grace period fails naming them, without waiting the timeout.
  std::map<int, std::string> gone_;
  std::optional<first_sends> first_; ///< started, for run() to send
  bool first_pending_ = false;       ///< the current collective's first chunks are not all sent yet
  std::vector<std::pair<std::shared_ptr<collective_call>, status>> done_; ///< promises for run() to keep
  /// failed_ for send_first(), which reads it without the mutex.
  std::atomic<bool> aborted_{false};
  std::function<void(const error&)> on_fail_;
  std::optional<error> spread_; ///< a failure for run() to hand to on_fail_
};

// --- the peer actor ---------------------------------------------------------------

/// The control side of a rank: links it into the ring, watches the other
/// ranks and the timeout, and stops the engine when it goes.
struct peer_state {
  std::shared_ptr<ring_engine> engine;
  std::vector<caf::actor> peers;
  std::function<std::string()> job_failure;

  ~peer_state() {
    if (engine) engine->stop();
  }
};

using peer_actor = caf::stateful_actor<peer_state>;

caf::behavior peer_behavior(peer_actor* self, int rank, int size, collective_options opt,
                            std::shared_ptr<ring_engine> engine, std::shared_ptr<bulk::buffer_pool> pool) {
  self->state.engine = std::move(engine);
  const auto tick = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(250),
                                                        std::max<std::chrono::milliseconds>(opt.timeout / 4,
                                                                                            std::chrono::milliseconds(10)));
  self->set_down_handler([self](const caf::down_msg& d) {
    auto& s = self->state;
    for (size_t k = 0; k < s.peers.size(); ++k)
      if (s.peers[k].address() == d.source) {
        if (d.reason == caf::exit_reason::user_shutdown) // it closed its communicator
          s.engine->rank_left(static_cast<int>(k));
        else
          s.engine->rank_died(static_cast<int>(k));
        return;
      }
  });
  self->delayed_send(self, tick, tick_atom::value);
  return {
    [=](link_atom, const std::shared_ptr<collective_links>& l) -> std::string {
      auto& s = self->state;
      s.peers = l->peers;
      s.job_failure = l->job_failure;
      for (size_t k = 0; k < s.peers.size(); ++k)
        if (static_cast<int>(k) != rank && s.peers[k] && s.peers[k].node() == self->node()) self->monitor(s.peers[k]);
      if (size == 1) return "";
      bulk::lane_options lo;
      lo.pool = pool;
      // The engine sends from CAF's I/O thread, where send() must never wait
      // for room: what one collective queues bounds what is in flight.
      lo.max_in_flight_bytes = size_t{1} << 40;
      lo.max_in_flight_messages = size_t{1} << 30;
      lo.send_timeout = opt.timeout;
      auto snd = bulk::connect(self->system(), l->host, l->port, lo);
      if (!snd)
        return "collective '" + opt.group + "': rank " + rank_name(opt, rank) + " cannot connect to rank " +
               rank_name(opt, mod(rank + 1, size)) + " at " + l->host + ":" + std::to_string(l->port) + ": " +
               snd.err().message;
      std::shared_ptr<bulk::shm_slots> offer;
      if (l->offer_shm && opt.shm_slots > 0) {
        auto slots = bulk::shm_slots::create(opt.shm_slots, opt.chunk_bytes);
        if (slots) offer = std::move(*slots);
        else
          spdlog::info("collective '{}' rank {}: payloads to rank {} go over TCP: {}", opt.group,
                       rank_name(opt, rank), rank_name(opt, mod(rank + 1, size)), slots.err().message);
      }
      return s.engine->attach_right(std::move(*snd), std::move(offer));
    },
    [=](tick_atom) {
      auto& s = self->state;
      std::string f;
      if (s.job_failure && s.engine->busy()) f = s.job_failure();
      s.engine->tick(f);
      self->delayed_send(self, tick, tick_atom::value);
    },
  };
}

} // namespace

// --- the communicator -------------------------------------------------------------

namespace {

/// Keeps a communicator's collectives in call order when some run on its
/// ring and some as halving-doubling on its pair rings: a ring call starts
/// once the halving-doubling ones before it are done (ring calls queue
/// behind each other in the ring's engine), a halving-doubling one once
/// everything before it is done. Calls start on the thread that submits
/// them or on the one that completed what they waited for, one thread at a
/// time, in order.
class call_order : public std::enable_shared_from_this<call_order> {
public:
  using start_fn = std::function<void(std::shared_ptr<collective_call>, const std::shared_ptr<call_order>&)>;
  call_order(start_fn ring, start_fn hd) : start_ring_(std::move(ring)), start_hd_(std::move(hd)) {}

  void push(std::shared_ptr<collective_call> c, bool hd) {
    if (!hd)
      c->on_done = [w = weak_from_this()](const status&) {
        if (auto o = w.lock()) o->ring_done();
      };
    {
      std::lock_guard lock(mu_);
      queue_.push_back({std::move(c), hd});
    }
    pump();
  }
  void ring_done() {
    {
      std::lock_guard lock(mu_);
      --ring_running_;
    }
    pump();
  }
  void hd_done() {
    {
      std::lock_guard lock(mu_);
      hd_running_ = false;
    }
    pump();
  }

private:
  struct entry {
    std::shared_ptr<collective_call> call;
    bool hd = false;
  };

  void pump() {
    std::unique_lock lock(mu_);
    if (pumping_) return; // that thread sees what changed before it stops
    pumping_ = true;
    while (!queue_.empty() && !hd_running_ && (!queue_.front().hd || ring_running_ == 0)) {
      entry e = std::move(queue_.front());
      queue_.pop_front();
      if (e.hd) hd_running_ = true;
      else ++ring_running_;
      lock.unlock();
      auto call = e.call;
      try {
        (e.hd ? start_hd_ : start_ring_)(std::move(e.call), shared_from_this());
      } catch (...) { // out of memory, say: the call fails (once) and the order goes on
        complete(*call, error{"collective: cannot start the call (out of memory?)"}); // a ring call's on_done counts it
      }
      lock.lock();
    }
    pumping_ = false;
  }

  const start_fn start_ring_, start_hd_;
  std::mutex mu_;
  std::deque<entry> queue_;
  int ring_running_ = 0;
  bool hd_running_ = false;
  bool pumping_ = false;
};

/// A ring's engine and counters, as a halving-doubling all-reduce uses them.
struct ring_parts {
  std::shared_ptr<ring_engine> engine;
  std::shared_ptr<shared_state> shared;
};

/// Starts `c` on a ring (its buffers' first bytes set here); it fails at
/// once when the ring has failed.
void start_call(const ring_parts& r, std::shared_ptr<collective_call> c) {
  c->src = static_cast<const char*>(c->in.raw());
  c->dst = static_cast<char*>(c->out.raw());
  std::string failure;
  {
    std::lock_guard lock(r.shared->mu);
    failure = r.shared->failure;
  }
  if (!failure.empty()) return complete(*c, error{failure});
  r.engine->submit(std::move(c));
}

/// Fails every ring of a communicator with the first failure of any of
/// them (ring_engine::on_fail), once: the others' collectives end at once,
/// and each tells its neighbour.
struct failure_spread {
  std::atomic<bool> fired{false};
  /// The communicator is being closed or killed: its rings stop without
  /// telling anyone (the others learn it as from a closed or dead rank).
  std::atomic<bool> closing{false};
  std::vector<std::weak_ptr<ring_engine>> engines;
  void fire(const error& e) {
    if (closing.load() || fired.exchange(true)) return;
    for (auto& w : engines)
      if (auto p = w.lock()) p->abort(e);
  }
};

/// One all-reduce by recursive halving and doubling: step p < k (k =
/// log2 n pair rings) is a reduce-scatter with the partner at distance 2^p
/// that keeps the half of the current range this rank's bit p picks; steps
/// k..2k-1 all-gather back in reverse order. Each step starts when the one
/// before completes (on the thread that completed it). Meanwhile the ring
/// carries its announcement (collective_kind::halving_doubling), which
/// catches a rank that runs another collective; the call is done when both
/// are.
class hd_allreduce : public std::enable_shared_from_this<hd_allreduce> {
public:
  hd_allreduce(std::shared_ptr<collective_call> user, int rank, int size, ring_parts main,
               std::vector<ring_parts> pairs, std::shared_ptr<call_order> order,
               std::shared_ptr<failure_spread> spread)
      : user_(std::move(user)), rank_(rank), size_(size), main_(std::move(main)), pairs_(std::move(pairs)),
        order_(std::move(order)), spread_(std::move(spread)) {
    // ranges_[d]: the part this rank holds after d reduce-scatters.
    ranges_.push_back({0, user_->total});
    for (size_t d = 0; d < pairs_.size(); ++d) {
      const auto [lo, len] = ranges_.back();
      const uint64_t first = (len + 1) / 2;
      ranges_.push_back(((rank_ >> d) & 1) ? std::pair{lo + first, len - first} : std::pair{lo, first});
    }
  }

  void start() {
    try {
      auto a = announcement();
      a->on_done = [self = shared_from_this()](const status& s) { self->part_done(announced, s); };
      start_call(main_, std::move(a));
    } catch (const std::exception& e) {
      part_done(announced, error{std::string("collective: ") + e.what()});
    }
    step(status::success());
  }

private:
  /// What the ring carries for this call (no elements).
  std::shared_ptr<collective_call> announcement() const {
    auto c = std::make_shared<collective_call>();
    c->kind = collective_kind::halving_doubling;
    c->op = user_->op;
    c->type = user_->type;
    c->in = user_->in;
    c->out = user_->out;
    c->total = user_->total;
    c->seg = {0, user_->total};
    return c;
  }

  /// `out` elements [lo, lo + len) as a 1-d tensor sharing its storage.
  tensor view(std::pair<uint64_t, uint64_t> r) const {
    const tensor& o = user_->out;
    return tensor(o.storage(), o.offset() + r.first * size_of(o.type()), o.type(),
                  shape{static_cast<int64_t>(r.second)});
  }

  void step(const status& st) {
    const auto k = static_cast<int>(pairs_.size());
    if (!st || phase_ == 2 * k || failed()) return part_done(stepped, st);
    try {
      const int p = phase_++;
      const bool scatter = p < k;
      const int level = scatter ? p : 2 * k - 1 - p;
      const auto whole = ranges_[static_cast<size_t>(level)], half = ranges_[static_cast<size_t>(level) + 1];
      auto c = std::make_shared<collective_call>();
      c->kind = scatter ? collective_kind::reduce_scatter : collective_kind::allgather;
      // A mean sums, and the last reduce-scatter divides by every rank (as
      // the ring does: dividing at each step would round integers twice).
      c->op = !scatter || (user_->op == reduce_op::mean && p + 1 < k) ? reduce_op::sum : user_->op;
      c->mean_divisor = size_;
      c->type = user_->type;
      c->in = scatter ? (p == 0 ? user_->in : view(whole)) : view(half);
      c->out = scatter ? view(half) : view(whole);
      c->total = whole.second;
      c->seg = {0, (whole.second + 1) / 2, whole.second};
      c->on_done = [self = shared_from_this()](const status& s) { self->step(s); };
      start_call(pairs_[static_cast<size_t>(level)], std::move(c));
    } catch (const std::exception& e) {
      part_done(stepped, error{std::string("collective: ") + e.what()});
    }
  }

  bool failed() const {
    std::lock_guard lock(mu_);
    return error_.has_value();
  }

  /// The announcement or the steps are done; the call once both are.
  enum part { announced, stepped };
  void part_done(part which, const status& st) {
    std::optional<error> e;
    {
      std::lock_guard lock(mu_);
      if (done_[which]) return; // reported already (an exception after the engine took a step)
      done_[which] = true;
      if (!st && !error_) error_ = st.err();
      if (!done_[announced] || !done_[stepped]) return;
      e = error_;
    }
    if (e) {
      spread_->fire(*e); // every ring of this communicator fails with it
    } else {
      ++main_.shared->ops;
      ++main_.shared->ops_hd;
    }
    complete(*user_, e ? status(*e) : status::success());
    order_->hd_done();
  }

  std::shared_ptr<collective_call> user_;
  const int rank_, size_;
  const ring_parts main_;
  const std::vector<ring_parts> pairs_;
  const std::shared_ptr<call_order> order_;
  const std::shared_ptr<failure_spread> spread_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_; ///< {first element, count}
  int phase_ = 0;
  mutable std::mutex mu_;
  bool done_[2] = {false, false}; ///< the announcement, the steps
  std::optional<error> error_;
};

} // namespace

struct communicator::impl {
  caf::actor_system* sys = nullptr;
  caf::actor peer;
  std::shared_ptr<shared_state> shared = std::make_shared<shared_state>();
  std::shared_ptr<ring_engine> engine;
  std::optional<bulk::listener> listener;
  std::string advertised;
  /// Halving-doubling: pairs[p] is the two-rank ring with rank ^ 2^p (empty:
  /// the ring only); all-reduces up to hd_max_bytes use them; `order`
  /// keeps calls in order across the two.
  std::vector<std::shared_ptr<impl>> pairs;
  size_t hd_max_bytes = 0;
  std::shared_ptr<call_order> order;
  std::shared_ptr<failure_spread> spread; ///< with pairs: one ring's failure fails all

  ring_parts parts() const { return {engine, shared}; }

  /// Takes the pair rings (rank `rank`'s, pairs[p] with rank ^ 2^p) and
  /// routes calls through a call order from now on.
  void attach_pairs(int rank, int size, std::vector<std::shared_ptr<impl>> p, const collective_options& o) {
    pairs = std::move(p);
    hd_max_bytes = o.halving_doubling_max_bytes;
    // A failure of any of the rings fails them all.
    spread = std::make_shared<failure_spread>();
    spread->engines.push_back(engine);
    std::vector<ring_parts> rings;
    for (auto& q : pairs) {
      rings.push_back(q->parts());
      spread->engines.push_back(q->engine);
    }
    for (auto& w : spread->engines) w.lock()->on_fail([sp = spread](const error& e) { sp->fire(e); });
    const ring_parts main = parts();
    order = std::make_shared<call_order>(
        [main](std::shared_ptr<collective_call> c, const std::shared_ptr<call_order>&) {
          start_call(main, std::move(c));
        },
        [main, rings, rank, size, sp = spread](std::shared_ptr<collective_call> c,
                                               const std::shared_ptr<call_order>& ord) {
          std::shared_ptr<hd_allreduce> op;
          try {
            op = std::make_shared<hd_allreduce>(c, rank, size, main, rings, ord, sp);
          } catch (...) { // nothing started
            complete(*c, error{"collective: cannot start the all-reduce (out of memory?)"});
            return ord->hd_done();
          }
          op->start(); // reports its own failures
        });
  }

  /// Stops the peer actor (`how`: user_shutdown to close, kill as if the
  /// process died), waiting up to 10 s for it, and closes the lane.
  void stop_peer(caf::exit_reason how) {
    if (peer) {
      caf::scoped_actor self{*sys};
      self->monitor(peer);
      self->send_exit(peer, how);
      self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
      peer = caf::actor();
    }
    if (listener) listener->close();
  }

  ~impl() {
    if (spread) spread->closing = true; // closing is not a failure to pass on
    stop_peer(caf::exit_reason::user_shutdown);
    pairs.clear(); // after the ring: a halving-doubling step in progress fails, then the call
  }
};

namespace {

/// Spawns rank `rank`'s peer actor and its lane listener on `bind`.
result<std::shared_ptr<communicator::impl>> start_peer(caf::actor_system& sys, int rank, int size,
                                                       const collective_options& o, const std::string& bind,
                                                       const std::string& advertised) {
  if (size < 1 || rank < 0 || rank >= size)
    return error{"collective '" + o.group + "': rank " + rank_name(o, rank) + " of " + std::to_string(size)};
  if (o.chunk_bytes < 8) return error{"collective '" + o.group + "': chunk_bytes must be at least 8"};
  if (!o.rank_names.empty() && o.rank_names.size() != static_cast<size_t>(size))
    return error{"collective '" + o.group + "': " + std::to_string(o.rank_names.size()) + " rank names for " +
                 std::to_string(size) + " ranks"};
  if (std::set<int>(o.rank_names.begin(), o.rank_names.end()).size() != o.rank_names.size())
    return error{"collective '" + o.group + "': two ranks have the same name in rank_names"};
  auto im = std::make_shared<communicator::impl>();
  im->sys = &sys;
  im->advertised = advertised;
  auto pool = std::make_shared<bulk::buffer_pool>(size_t{1} << 30);
  im->engine = std::make_shared<ring_engine>(rank, size, o, im->shared, pool);
  // The lane's callbacks drive the engine on CAF's I/O thread.
  bulk::receive_handlers h;
  h.on_message_buffer = [e = im->engine](bulk::connection_id c, std::vector<char> meta, std::vector<char> payload) {
    e->on_message(c, std::move(meta), std::move(payload));
  };
  h.on_error = [e = im->engine](bulk::connection_id c, const error& err) { e->on_lane_end(c, err.message, false); };
  h.on_close = [e = im->engine](bulk::connection_id c) { e->on_lane_end(c, "closed by the peer", true); };
  bulk::lane_options lo;
  lo.pool = pool;
  auto l = bulk::listen(sys, bind, 0, std::move(h), lo);
  if (!l) return error{"collective '" + o.group + "': rank " + rank_name(o, rank) + ": " + l.err().message};
  im->listener.emplace(std::move(*l));
  im->peer = sys.spawn<caf::detached>(peer_behavior, rank, size, o, im->engine, pool);
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

/// The receiving half of the shared-memory handshake: waits for the left
/// neighbour's hello and maps the slots it offered, when it can (same host
/// and /dev/shm). Their nonce, which the left neighbour needs to hear to use
/// them; 0 when none were offered or they cannot be mapped here.
result<uint64_t> accept_left_shm(ring_engine& e, int rank, const collective_options& o) {
  auto hello = e.await_left(o.connect_timeout);
  if (!hello) return hello.err();
  if (hello->shm_name.empty()) return uint64_t{0};
  auto slots = bulk::shm_slots::open(hello->shm_name, hello->shm_nonce, hello->shm_slots, hello->shm_slot_bytes);
  if (!slots) {
    spdlog::info("collective '{}' rank {}: payloads from rank {} come over TCP: {}", o.group, rank_name(o, rank),
                 rank_name(o, hello->rank), slots.err().message);
    return uint64_t{0};
  }
  const uint64_t nonce = (*slots)->nonce();
  e.attach_left_shm(std::move(*slots));
  return nonce;
}

} // namespace

namespace {

/// Whether a ring of `size` ranks all-reduces small buffers by halving and
/// doubling (a power of two, 4 or more, and the option on).
bool wants_pairs(const collective_options& o, int size) {
  return o.halving_doubling_max_bytes > 0 && size >= 4 && (size & (size - 1)) == 0;
}

/// The options of the two-rank ring between `rank` and rank ^ 2^p.
collective_options pair_options(const collective_options& o, int rank, int p) {
  collective_options q = o;
  const int low = rank & ~(1 << p), high = low | (1 << p);
  q.group = o.group + "/pair-" + rank_name(o, low) + "-" + rank_name(o, high);
  q.rank_names = {rank_id(o, low), rank_id(o, high)};
  q.halving_doubling_max_bytes = 0;
  // Shared memory for what one step sends at most (half of the largest
  // all-reduce), not a whole ring's allotment.
  const size_t step_bytes = std::max<size_t>(1, o.halving_doubling_max_bytes / 2);
  q.shm_slots = static_cast<uint32_t>(
      std::min<size_t>(o.shm_slots, (step_bytes + o.chunk_bytes - 1) / o.chunk_bytes + 1));
  // Segments are not halved: the two ranks of a pair already send to each
  // other at once, and halves only add frames (1 MiB over 4 ranks measured
  // about 5% faster without them, over TCP and shared memory).
  q.split_floor_bytes = std::max(q.split_floor_bytes, q.chunk_bytes);
  return q;
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
    l->offer_shm = true;
    if (status st = link(sys, peers[static_cast<size_t>(r)], std::move(l), o.connect_timeout); !st) return st.err();
  }
  for (int r = 0; size > 1 && r < size; ++r) {
    auto nonce = accept_left_shm(*out[static_cast<size_t>(r)]->impl_->engine, r, o);
    if (!nonce) return nonce.err();
    out[static_cast<size_t>((r + size - 1) % size)]->impl_->engine->settle_shm(*nonce);
  }
  if (wants_pairs(o, size)) {
    std::vector<std::vector<std::shared_ptr<impl>>> pairs(static_cast<size_t>(size));
    for (int p = 0; (1 << p) < size; ++p)
      for (int low = 0; low < size; ++low) {
        if (low & (1 << p)) continue;
        auto sub = create_local(sys, 2, pair_options(o, low, p));
        if (!sub)
          return error{"collective '" + o.group + "': connecting the halving-doubling pairs: " + sub.err().message};
        pairs[static_cast<size_t>(low)].push_back(std::move((*sub)[0]->impl_));
        pairs[static_cast<size_t>(low | (1 << p))].push_back(std::move((*sub)[1]->impl_));
      }
    for (int r = 0; r < size; ++r)
      out[static_cast<size_t>(r)]->impl_->attach_pairs(r, size, std::move(pairs[static_cast<size_t>(r)]), o);
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
  // Everything the ranks tell each other while joining goes through the
  // coordinator, on each node's own connection to it, and no rank's peer
  // actor is known to another node. With CAF 0.17 a message between two
  // nodes' actors could go unanswered for good (seen: rank 0 waiting 30 s
  // for rank 1's address while every other rank had linked), and a peer
  // actor another node held a handle to could keep its process from exiting
  // (~actor_system waiting for the detached actor's last reference).
  const std::string lane = endpoint{c->impl_->advertised, c->impl_->listener->port()}.text();
  if (auto pub = n.publish(name_of(rank) + "/lane", lane); !pub || !*pub)
    return error{"collective '" + o.group + "': cannot publish rank " + rank_name(o, rank) + "'s address" +
                 (pub ? std::string(": the name is taken (two ranks " + rank_name(o, rank) + "?)")
                      : ": " + pub.err().message)};
  auto l = std::make_shared<collective_links>();
  l->job_failure = [&n] { return n.failure(); };
  l->peers.resize(static_cast<size_t>(size)); // ranks in other processes are watched through the coordinator
  l->peers[static_cast<size_t>(rank)] = c->impl_->peer;
  if (size > 1) {
    const int right = (rank + 1) % size;
    auto addr = n.fetch(name_of(right) + "/lane", o.connect_timeout);
    if (!addr)
      return error{"collective '" + o.group + "': rank " + rank_name(o, right) + " did not publish its address: " +
                   addr.err().message};
    auto at = parse_endpoint(*addr);
    if (!at)
      return error{"collective '" + o.group + "': rank " + rank_name(o, right) + " published " + at.err().message};
    l->port = at->port;
    l->host = at->host;
    l->offer_shm = l->host == c->impl_->advertised;
  }
  if (status st = link(n.system(), c->impl_->peer, std::move(l), o.connect_timeout); !st) return st.err();
  if (size > 1) {
    // Shared memory between neighbours on one host, agreed through the
    // coordinator (a message between the two peer actors can be lost in
    // CAF 0.17): each rank maps what its left neighbour offered and
    // publishes the nonce (0: nothing mapped), then learns its right
    // neighbour's answer.
    auto mapped = accept_left_shm(*c->impl_->engine, rank, o);
    if (!mapped) return mapped.err();
    if (auto pub = n.publish(name_of(rank) + "/shm", std::to_string(*mapped)); !pub || !*pub)
      return error{"collective '" + o.group + "': cannot publish rank " + rank_name(o, rank) + "'s shared memory" +
                   (pub ? std::string(": the name is taken") : ": " + pub.err().message)};
    const int right = (rank + 1) % size;
    auto answer = n.fetch(name_of(right) + "/shm", o.connect_timeout);
    if (!answer)
      return error{"collective '" + o.group + "': rank " + rank_name(o, right) + " did not say what it mapped: " +
                   answer.err().message};
    char* end = nullptr;
    const uint64_t nonce = std::strtoull(answer->c_str(), &end, 10);
    c->impl_->engine->settle_shm(end == answer->c_str() + answer->size() && !answer->empty() ? nonce : 0);
  }
  if (wants_pairs(o, size)) {
    // Every rank connects its pairs in the same order (distance 1, 2, ...).
    std::vector<std::shared_ptr<impl>> pairs;
    for (int p = 0; (1 << p) < size; ++p) {
      auto sub = create(n, (rank >> p) & 1, 2, pair_options(o, rank, p));
      if (!sub)
        return error{"collective '" + o.group + "': connecting the halving-doubling pairs: " + sub.err().message};
      pairs.push_back(std::move((*sub)->impl_));
    }
    c->impl_->attach_pairs(rank, size, std::move(pairs), o);
  }
  return c;
}

communicator::~communicator() = default;

void communicator::kill_for_testing() {
  if (impl_->spread) impl_->spread->closing = true; // a dead rank tells nobody
  impl_->stop_peer(caf::exit_reason::kill);
  for (auto& p : impl_->pairs) p->stop_peer(caf::exit_reason::kill);
}

std::string communicator::failure() const {
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->failure;
}

bool communicator::shared_memory() const { return impl_->engine->shm_enabled(); }

bool communicator::halving_doubling() const { return !impl_->pairs.empty(); }

collective_stats communicator::stats() const {
  const shared_state& m = *impl_->shared;
  collective_stats s{m.ops.load(), m.sent.load(), m.received.load(), m.sent_shm.load(), m.chunks.load(),
                     m.ops_hd.load()};
  for (const auto& p : impl_->pairs) { // their ops are steps of the all-reduces counted above
    s.bytes_sent += p->shared->sent.load();
    s.bytes_received += p->shared->received.load();
    s.bytes_sent_shm += p->shared->sent_shm.load();
    s.chunks_sent += p->shared->chunks.load();
  }
  return s;
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

collective_future communicator::submit(std::shared_ptr<collective_call> call, bool halving_doubling) {
  auto f = call->done.get_future();
  if (impl_->order) impl_->order->push(std::move(call), halving_doubling);
  else start_call(impl_->parts(), std::move(call));
  return collective_future(std::move(f));
}

namespace {

/// A call of `kind` on `in` -> `out` over `total` elements cut into `seg`.
std::shared_ptr<collective_call> make_call(collective_kind kind, reduce_op op, const tensor& in, const tensor& out,
                                           uint64_t total, std::vector<uint64_t> seg) {
  auto c = std::make_shared<collective_call>();
  c->kind = kind;
  c->op = op;
  c->type = in.type();
  c->in = in;
  c->out = out;
  c->total = total;
  c->seg = std::move(seg);
  return c;
}

} // namespace

collective_future communicator::allreduce(const tensor& in, tensor& out, reduce_op op) {
  if (auto e = check_tensor(in, "in"); !e.empty()) return failed("allreduce: " + e);
  if (auto e = prepare_out(in, out, in.numel(), in.shape()); !e.empty()) return failed("allreduce: " + e);
  const auto total = static_cast<uint64_t>(in.numel());
  const bool hd = !impl_->pairs.empty() && in.nbytes() <= impl_->hd_max_bytes;
  return submit(make_call(collective_kind::allreduce, op, in, out, total, even_segments(total, size_)), hd);
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
  const uint64_t all = seg.back();
  return submit(make_call(collective_kind::allgather, reduce_op::sum, in, out, all, std::move(seg)));
}

collective_future communicator::reduce_scatter(const tensor& in, tensor& out, reduce_op op) {
  if (auto e = check_tensor(in, "in"); !e.empty()) return failed("reduce_scatter: " + e);
  if (in.numel() % size_ != 0)
    return failed("reduce_scatter: in has " + std::to_string(in.numel()) + " elements, not a multiple of " +
                  std::to_string(size_) + " ranks");
  const int64_t part = in.numel() / size_;
  if (auto e = prepare_out(in, out, part, shape{part}); !e.empty()) return failed("reduce_scatter: " + e);
  const auto total = static_cast<uint64_t>(in.numel());
  return submit(make_call(collective_kind::reduce_scatter, op, in, out, total, even_segments(total, size_)));
}

collective_future communicator::broadcast(const tensor& in, tensor& out, int root) {
  if (root < 0 || root >= size_)
    return failed("broadcast: root " + std::to_string(root) + " of " + std::to_string(size_) + " ranks");
  const tensor& ref = rank_ == root ? in : out;
  if (auto e = check_tensor(ref, rank_ == root ? "in" : "out"); !e.empty()) return failed("broadcast: " + e);
  if (rank_ == root)
    if (auto e = prepare_out(in, out, in.numel(), in.shape()); !e.empty()) return failed("broadcast: " + e);
  const auto total = static_cast<uint64_t>(out.numel());
  auto c = make_call(collective_kind::broadcast, reduce_op::sum, ref, out, total, {0, total});
  c->root = root;
  return submit(std::move(c));
}

} // namespace luoshu::actors
