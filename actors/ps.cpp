#include "actors/ps.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cstring>
#include <thread>

#include <algorithm>
#include <limits>
#include <map>

#include "actors/atoms.hpp"
#include "actors/id_index.hpp"
#include "actors/node.hpp"
#include "actors/runtime.hpp"
#include "transport/codec.hpp"

namespace luoshu::actors {

using transport::ps_op;
using transport::ps_reply;
using transport::ps_request;
using transport::wire_bytes;

namespace {

/// A client's batch of requests, handed to its actor by reference.
struct client_batch {
  std::vector<std::pair<caf::actor, wire_bytes>> msgs;
  std::function<void(std::vector<result<wire_bytes>>)> done;
  std::chrono::milliseconds timeout;
};

} // namespace
} // namespace luoshu::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<luoshu::actors::client_batch>)

namespace luoshu::actors {

result<ps_consistency> ps_consistency::parse(const std::string& s) {
  ps_consistency c;
  if (s == "bsp") return c;
  if (s == "asp") {
    c.kind = kind_t::asp;
    return c;
  }
  if (s.rfind("ssp:", 0) == 0) {
    try {
      size_t used = 0;
      long long k = std::stoll(s.substr(4), &used);
      if (used == s.size() - 4 && k >= 0) {
        c.kind = kind_t::ssp;
        c.staleness = k;
        return c;
      }
    } catch (const std::exception&) {
    }
  }
  return error{"consistency '" + s + "': expected bsp, ssp:K (K >= 0 steps) or asp"};
}

std::string ps_consistency::to_string() const {
  switch (kind) {
    case kind_t::bsp: return "bsp";
    case kind_t::asp: return "asp";
    default: return "ssp:" + std::to_string(staleness);
  }
}

// --- the shard ----------------------------------------------------------------------

namespace {

using clock_t_ = std::chrono::steady_clock;

struct held_push {
  uint32_t table;
  std::vector<uint64_t> keys;
  tensor values;
};

struct waiting_pull {
  ps_request req;
  caf::response_promise promise;
  clock_t_::time_point since;
};

struct shard_state {
  std::unique_ptr<ps_store> store;
  ps_shard_options opt;
  std::vector<int64_t> done;                                   ///< steps each worker finished
  std::map<int64_t, std::map<int, std::vector<held_push>>> held; ///< bsp: clock -> worker -> pushes
  std::vector<waiting_pull> waiting;
  bool ticking = false;
  static inline const char* name = "ps_shard";
};

using shard_actor = caf::stateful_actor<shard_state>;

wire_bytes reply_error(uint64_t seq, std::string msg) {
  ps_reply r;
  r.seq = seq;
  r.error = std::move(msg);
  return transport::encode(r);
}

int64_t slowest(const shard_state& s, int* who = nullptr) {
  int64_t m = std::numeric_limits<int64_t>::max();
  for (size_t w = 0; w < s.done.size(); ++w)
    if (s.done[w] < m) {
      m = s.done[w];
      if (who) *who = static_cast<int>(w);
    }
  return m;
}

/// Whether a pull at `clock` may be served now.
bool servable(const shard_state& s, int64_t clock) {
  switch (s.opt.consistency.kind) {
    case ps_consistency::kind_t::asp: return true;
    case ps_consistency::kind_t::bsp: return slowest(s) >= clock;
    default: return slowest(s) >= clock - s.opt.consistency.staleness;
  }
}

wire_bytes serve_pull(shard_state& s, const ps_request& req) {
  auto v = s.store->pull(req.table, req.keys);
  if (!v) return reply_error(req.seq, v.err().message);
  ps_reply r;
  r.seq = req.seq;
  r.values = std::move(*v);
  r.staleness = std::max<int64_t>(0, req.clock - slowest(s));
  return transport::encode(r);
}

/// Applies a push now (scaled by 1 / workers) or, under BSP, holds it.
status take_push(shard_state& s, const ps_request& req) {
  const ps_table_spec* spec = s.store->spec(req.table);
  if (!spec) return error{"push: unknown table " + std::to_string(req.table) + " on shard " + std::to_string(s.opt.shard)};
  if (req.values.dim(1) != static_cast<int64_t>(spec->width))
    return error{"push to table '" + spec->name + "': rows of width " + std::to_string(req.values.dim(1)) +
                 ", the table's width is " + std::to_string(spec->width)};
  if (req.worker >= s.opt.workers)
    return error{"push from worker " + std::to_string(req.worker) + ", but the job has " + std::to_string(s.opt.workers)};
  if (s.opt.consistency.kind != ps_consistency::kind_t::bsp)
    return s.store->push(req.table, req.keys, req.values, 1.0 / s.opt.workers);
  if (req.clock < s.done[static_cast<size_t>(req.worker)])
    return error{"push of worker " + std::to_string(req.worker) + " for step " + std::to_string(req.clock) +
                 ", which it already finished"};
  // Touch the rows now, so a bad key fails this push and not a later step.
  if (status st = s.store->touch(req.table, req.keys); !st) return st;
  s.held[req.clock][req.worker].push_back({req.table, req.keys, req.values});
  return {};
}

/// BSP: applies every step that all workers finished, in step order.
status apply_finished(shard_state& s) {
  const int64_t all = slowest(s);
  while (!s.held.empty() && s.held.begin()->first < all) {
    auto& by_worker = s.held.begin()->second;
    // Sum per table and key, in worker order then push order: each key's
    // row at a place in one flat buffer (no allocation per key).
    struct table_sum {
      std::vector<uint64_t> order;               ///< keys, first seen first
      id_index at;                               ///< key -> its row in flat
      std::vector<double> flat;
      int64_t width = 0;
    };
    std::map<uint32_t, table_sum> sums;
    for (auto& [w, pushes] : by_worker)
      for (auto& p : pushes) {
        table_sum& t = sums[p.table];
        t.width = p.values.dim(1);
        const size_t width = static_cast<size_t>(t.width);
        const tensor v = p.values.type() == dtype::f64 ? p.values : p.values.cast(dtype::f64);
        const double* src = v.data<double>();
        if (t.order.empty()) {
          t.at.reserve(p.keys.size());
          t.order.reserve(p.keys.size());
          t.flat.reserve(p.keys.size() * width);
        }
        for (size_t i = 0; i < p.keys.size(); ++i) {
          auto [row, fresh] = t.at.try_emplace(p.keys[i], static_cast<int64_t>(t.order.size()));
          if (fresh) {
            t.order.push_back(p.keys[i]);
            t.flat.resize(t.flat.size() + width, 0.0);
          }
          double* dst = t.flat.data() + static_cast<size_t>(row) * width;
          for (size_t j = 0; j < width; ++j) dst[j] += src[i * width + j];
        }
      }
    for (auto& [table, t] : sums) {
      tensor rows(dtype::f64, shape{static_cast<int64_t>(t.order.size()), t.width});
      std::copy(t.flat.begin(), t.flat.end(), rows.data<double>());
      if (status st = s.store->push(table, t.order, rows, 1.0 / s.opt.workers); !st) return st;
    }
    s.held.erase(s.held.begin());
  }
  return {};
}

void maybe_checkpoint(shard_state& s, int64_t before) {
  const int64_t n = s.opt.checkpoint_every, now = slowest(s);
  if (n <= 0 || s.opt.checkpoint_dir.empty() || now / n == before / n) return;
  if (status st = s.store->save(s.opt.checkpoint_dir); !st) // training goes on; the next save retries
    spdlog::error("ps shard {}: periodic checkpoint failed: {}", s.opt.shard, st.err().message);
}

void retry_waiting(shard_state& s) {
  for (size_t i = 0; i < s.waiting.size();) {
    if (servable(s, s.waiting[i].req.clock)) {
      s.waiting[i].promise.deliver(serve_pull(s, s.waiting[i].req));
      s.waiting.erase(s.waiting.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
}

caf::behavior ps_shard(shard_actor* self, ps_shard_options opt) {
  auto& s = self->state;
  s.store = std::make_unique<ps_store>(opt.shard, opt.shards);
  s.done.assign(static_cast<size_t>(std::max(1, opt.workers)), 0);
  s.opt = std::move(opt);
  return {
      [self](ps_atom, const wire_bytes& bytes) -> caf::result<wire_bytes> {
        auto& s = self->state;
        auto dr = transport::decode_ps_request(std::span<const char>(bytes.data(), bytes.size()));
        if (!dr) return reply_error(0, dr.err().message);
        ps_request& req = *dr;
        if (req.worker >= s.opt.workers && req.op != ps_op::create)
          return reply_error(req.seq, "worker " + std::to_string(req.worker) + " is not one of the job's " +
                                          std::to_string(s.opt.workers) + " workers");
        auto ok = [&] {
          ps_reply r;
          r.seq = req.seq;
          return transport::encode(r);
        };
        auto from = [&](const status& st) { return st ? ok() : reply_error(req.seq, st.err().message); };
        switch (req.op) {
          case ps_op::create: return from(s.store->create(req.spec));
          case ps_op::assign: return from(s.store->assign(req.table, req.keys, req.values));
          case ps_op::load: return from(s.store->load(req.path));
          case ps_op::save: return from(s.store->save(req.path));
          case ps_op::func: {
            auto r = s.store->call(req.func, req.table, req.args);
            if (!r) return reply_error(req.seq, r.err().message);
            ps_reply rep;
            rep.seq = req.seq;
            rep.partial = std::move(*r);
            return transport::encode(rep);
          }
          case ps_op::clock: {
            auto& d = s.done[static_cast<size_t>(req.worker)];
            const int64_t before = slowest(s);
            d = std::max(d, req.clock + 1);
            if (status st = apply_finished(s); !st) return reply_error(req.seq, st.err().message);
            maybe_checkpoint(s, before);
            retry_waiting(s);
            return ok();
          }
          case ps_op::push:
          case ps_op::push_pull:
          case ps_op::pull: {
            if (req.op != ps_op::pull)
              if (status st = take_push(s, req); !st) return reply_error(req.seq, st.err().message);
            if (req.op == ps_op::push) return ok();
            if (servable(s, req.clock)) return serve_pull(s, req);
            auto rp = self->make_response_promise();
            s.waiting.push_back({std::move(req), rp, clock_t_::now()});
            if (!s.ticking) {
              s.ticking = true;
              self->delayed_send(self, std::chrono::milliseconds(100), tick_atom::value);
            }
            return caf::delegated<wire_bytes>();
          }
        }
        return reply_error(req.seq, "unknown request");
      },
      [self](tick_atom) {
        auto& s = self->state;
        const auto now = clock_t_::now();
        for (size_t i = 0; i < s.waiting.size();) {
          auto& w = s.waiting[i];
          if (now - w.since < s.opt.wait_timeout) {
            ++i;
            continue;
          }
          int who = 0;
          const int64_t least = slowest(s, &who);
          w.promise.deliver(reply_error(
              w.req.seq, "shard " + std::to_string(s.opt.shard) + ": worker " + std::to_string(w.req.worker) +
                             "'s pull for step " + std::to_string(w.req.clock) + " waited " +
                             std::to_string(s.opt.wait_timeout.count()) + " ms (" + s.opt.consistency.to_string() +
                             ") for worker " + std::to_string(who) + ", which finished only " +
                             std::to_string(least) + " steps"));
          s.waiting.erase(s.waiting.begin() + static_cast<long>(i));
        }
        s.ticking = !s.waiting.empty();
        if (s.ticking) self->delayed_send(self, std::chrono::milliseconds(100), tick_atom::value);
      },
  };
}

} // namespace

caf::actor spawn_ps_shard(caf::actor_system& sys, ps_shard_options o) { return sys.spawn(ps_shard, std::move(o)); }

namespace {
std::string shard_name(int s) { return "ps-shard-" + std::to_string(s); }
} // namespace

status serve_ps_shard(node& n, int shard, const caf::actor& a) { return n.serve(shard_name(shard), a); }

result<std::vector<caf::actor>> connect_ps_shards(node& n, int shards, std::chrono::milliseconds timeout) {
  std::vector<caf::actor> out;
  for (int s = 0; s < shards; ++s) {
    auto a = n.connect(shard_name(s), timeout);
    if (!a) return error{"parameter-server shard " + std::to_string(s) + ": " + a.err().message};
    out.push_back(*a);
  }
  return out;
}

// --- the client ----------------------------------------------------------------------

namespace {

// (An extra argument: CAF 0.17's function-based actors without one trip
// UBSan inside CAF.)
caf::behavior client_actor(caf::event_based_actor* self, int /*worker*/) {
  return {
      [self](const std::shared_ptr<client_batch>& b) {
        struct gather {
          std::vector<result<wire_bytes>> got;
          size_t left = 0;
        };
        auto g = std::make_shared<gather>();
        g->got.assign(b->msgs.size(), error{"no reply"});
        g->left = b->msgs.size();
        if (g->left == 0) {
          b->done({});
          return;
        }
        for (size_t i = 0; i < b->msgs.size(); ++i)
          self->request(b->msgs[i].first, b->timeout, ps_atom::value, std::move(b->msgs[i].second))
              .then(
                  [g, b, i](wire_bytes& r) {
                    g->got[i] = std::move(r);
                    if (--g->left == 0) b->done(std::move(g->got));
                  },
                  [self, g, b, i](caf::error& e) {
                    g->got[i] = error{"shard " + std::to_string(i) + ": " + describe(self->system(), e)};
                    if (--g->left == 0) b->done(std::move(g->got));
                  });
      },
  };
}

/// Decodes a reply; an error names the shard.
result<ps_reply> open_reply(const result<wire_bytes>& r, size_t shard) {
  if (!r) return r.err();
  auto rep = transport::decode_ps_reply(std::span<const char>(r->data(), r->size()));
  if (!rep) return error{"shard " + std::to_string(shard) + ": " + rep.err().message};
  if (!rep->error.empty()) return error{"shard " + std::to_string(shard) + ": " + rep->error};
  return rep;
}

} // namespace

struct ps_client::impl {
  caf::actor actor;
};

ps_client::ps_client(caf::actor_system& sys, std::vector<caf::actor> shards, int worker,
                     std::chrono::milliseconds timeout)
    : sys_(sys), shards_(std::move(shards)), worker_(worker), timeout_(timeout), impl_(std::make_unique<impl>()) {
  impl_->actor = sys_.spawn(client_actor, worker_);
}

ps_client::~ps_client() { caf::anon_send_exit(impl_->actor, caf::exit_reason::user_shutdown); }

void ps_client::send(std::vector<std::pair<size_t, std::vector<char>>> msgs, std::function<void(replies)> done,
                     std::chrono::milliseconds timeout) {
  auto b = std::make_shared<client_batch>();
  std::vector<size_t> which;
  for (auto& [shard, bytes] : msgs) {
    b->msgs.emplace_back(shards_[shard], std::move(bytes));
    which.push_back(shard);
  }
  b->timeout = timeout.count() > 0 ? timeout : timeout_;
  b->done = [which, done = std::move(done)](std::vector<result<wire_bytes>> got) {
    // Errors from the transport name the position; name the shard instead.
    for (size_t i = 0; i < got.size(); ++i)
      if (!got[i]) {
        std::string m = got[i].err().message;
        if (m.rfind("shard ", 0) == 0) m = m.substr(m.find(':') + 2);
        got[i] = error{"shard " + std::to_string(which[i]) + ": " + m};
      }
    done(std::move(got));
  };
  caf::anon_send(impl_->actor, std::move(b));
}

result<std::vector<std::pair<size_t, std::vector<uint64_t>>>> ps_client::split(uint32_t table,
                                                                               const std::vector<uint64_t>& keys,
                                                                               std::vector<size_t>& slot_of) const {
  auto it = specs_.find(table);
  if (it == specs_.end()) return error{"table " + std::to_string(table) + " was not created by this client"};
  std::vector<std::vector<uint64_t>> by(shards_.size()); // each shard's keys, first seen first
  id_index seen(keys.size());                           // key -> position in its shard's list
  std::vector<std::pair<size_t, size_t>> where(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    int s = ps_shard_of(it->second, keys[i], static_cast<int>(shards_.size()));
    if (s < 0)
      return error{"table '" + it->second.name + "': row " + std::to_string(keys[i]) + " is out of range [0, " +
                   std::to_string(it->second.rows) + ")"};
    auto& list = by[static_cast<size_t>(s)];
    auto [pos, fresh] = seen.try_emplace(keys[i], static_cast<int64_t>(list.size()));
    if (fresh) list.push_back(keys[i]);
    where[i] = {static_cast<size_t>(s), static_cast<size_t>(pos)};
  }
  // slot_of[i]: row of key i in the concatenation of the shards' lists (in
  // shard order, shards without keys left out).
  std::vector<std::pair<size_t, std::vector<uint64_t>>> out;
  std::vector<size_t> base(shards_.size(), 0);
  size_t acc = 0;
  for (size_t s = 0; s < by.size(); ++s) {
    if (by[s].empty()) continue;
    base[s] = acc;
    acc += by[s].size();
    out.emplace_back(s, std::move(by[s]));
  }
  slot_of.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) slot_of[i] = base[where[i].first] + where[i].second;
  return out;
}

namespace {

/// Whether slot_of[i] == i for every key (no key twice, already in the
/// shards' order: e.g. a push or pull of a whole range-partitioned table
/// with its keys in order).
bool in_order(const std::vector<size_t>& slot_of, size_t rows) {
  if (rows != slot_of.size()) return false;
  for (size_t i = 0; i < slot_of.size(); ++i)
    if (slot_of[i] != i) return false;
  return true;
}

/// Sums the rows of duplicate keys, in order, into the shards' key lists.
tensor gather_rows(const tensor& grads, const std::vector<size_t>& slot_of, size_t rows) {
  const int64_t width = grads.dim(1);
  if (in_order(slot_of, rows)) return grads; // nothing to move
  if (rows == slot_of.size()) {                // no key twice: the rows only move, in their own dtype
    tensor out(grads.type(), grads.shape());
    const size_t row = static_cast<size_t>(width) * size_of(grads.type());
    for (size_t i = 0; i < slot_of.size(); ++i)
      std::memcpy(static_cast<char*>(out.raw()) + slot_of[i] * row, static_cast<const char*>(grads.raw()) + i * row,
                  row);
    return out;
  }
  std::vector<double> v = grads.to_doubles(), out(rows * static_cast<size_t>(width), 0.0);
  for (size_t i = 0; i < slot_of.size(); ++i)
    for (int64_t j = 0; j < width; ++j) out[slot_of[i] * static_cast<size_t>(width) + static_cast<size_t>(j)] += v[i * width + j];
  return tensor::from<double>(shape{static_cast<int64_t>(rows), width}, out).cast(grads.type());
}

/// Rows [from, from + n) of `all`: a view of its storage, not a copy (the
/// request's encoder copies them once, into the message).
tensor slice_rows(const tensor& all, size_t from, size_t n) {
  const int64_t width = all.dim(1);
  return tensor(all.storage(), all.offset() + from * static_cast<size_t>(width) * size_of(all.type()), all.type(),
                shape{static_cast<int64_t>(n), width});
}

} // namespace

result<ps_client::routed> ps_client::route(ps_op op, uint32_t table, const std::vector<uint64_t>& keys,
                                           const tensor* rows_in, int64_t clock) {
  routed out;
  auto parts = split(table, keys, out.slot_of);
  if (!parts) return parts.err();
  const ps_table_spec& spec = specs_.at(table);
  tensor all;
  if (rows_in) {
    if (!rows_in->defined() || rows_in->rank() != 2 || rows_in->dim(0) != static_cast<int64_t>(keys.size()) ||
        rows_in->dim(1) != static_cast<int64_t>(spec.width))
      return error{std::string(transport::name(op)) + " to table '" + spec.name + "': rows are " +
                   (rows_in->defined() ? rows_in->shape().to_string() : std::string("missing")) + ", want [" +
                   std::to_string(keys.size()) + ", " + std::to_string(spec.width) + "]"};
    size_t rows = 0;
    for (auto& [s, ks] : *parts) rows += ks.size();
    all = gather_rows(rows_in->to_host(), out.slot_of, rows);
  }
  // A shard's part goes in requests of at most max_request_bytes of rows,
  // all in flight at once: the shard applies one while the next is on its
  // way (one large request would leave every other stage idle meanwhile).
  const size_t row_bytes = static_cast<size_t>(spec.width) * size_of(spec.type);
  const size_t per_request = std::max<size_t>(1, max_request_bytes / std::max<size_t>(1, row_bytes));
  size_t at = 0;
  for (auto& [s, ks] : *parts) {
    for (size_t from = 0; from < ks.size(); from += per_request) { // split() makes no empty part
      const size_t n = std::min(per_request, ks.size() - from);
      ps_request r;
      r.seq = ++seq_;
      r.worker = worker_;
      r.clock = clock;
      r.op = op;
      r.table = table;
      r.keys.assign(ks.begin() + static_cast<std::ptrdiff_t>(from), ks.begin() + static_cast<std::ptrdiff_t>(from + n));
      if (rows_in) r.values = slice_rows(all, at, n);
      at += n;
      out.msgs.emplace_back(s, transport::encode(r));
      out.shards.push_back(s);
      out.counts.push_back(n);
    }
  }
  return out;
}

namespace {

/// The rows [n, width] for the keys of a pull, from each shard's reply: its
/// rows of its part, checked (a reply with another number of rows, width or
/// dtype is an error naming the shard, never a read past its end).
result<tensor> assemble_rows(const ps_table_spec& spec, const std::vector<size_t>& shards,
                             const std::vector<size_t>& counts, const std::vector<size_t>& slot_of, size_t n,
                             std::vector<result<wire_bytes>>& got, std::atomic<int64_t>& stale) {
  std::vector<tensor> pieces;
  for (size_t i = 0; i < got.size(); ++i) {
    auto rep = open_reply(got[i], shards[i]);
    if (!rep) return rep.err();
    const tensor& v = rep->values;
    if (!v.defined() || v.type() != spec.type || v.rank() != 2 || v.dim(0) != static_cast<int64_t>(counts[i]) ||
        v.dim(1) != static_cast<int64_t>(spec.width))
      return error{"shard " + std::to_string(shards[i]) + " answered a pull of " + std::to_string(counts[i]) +
                   " rows of table '" + spec.name + "' with " +
                   (v.defined() ? std::string(name(v.type())) + v.shape().to_string() : std::string("no rows")) +
                   " (want " + name(spec.type) + "[" + std::to_string(counts[i]) + ", " +
                   std::to_string(spec.width) + "])"};
    int64_t st = rep->staleness, prev = stale.load();
    while (st > prev && !stale.compare_exchange_weak(prev, st)) {
    }
    pieces.push_back(std::move(rep->values));
  }
  if (pieces.size() == 1 && in_order(slot_of, n)) return std::move(pieces[0]); // the one reply is the answer
  tensor out(spec.type, shape{static_cast<int64_t>(n), static_cast<int64_t>(spec.width)});
  const size_t row = spec.width * size_of(spec.type);
  std::vector<const char*> src;
  for (auto& p : pieces)
    for (int64_t r = 0; r < p.dim(0); ++r) src.push_back(static_cast<const char*>(p.raw()) + static_cast<size_t>(r) * row);
  for (size_t i = 0; i < n; ++i) std::memcpy(static_cast<char*>(out.raw()) + i * row, src[slot_of[i]], row);
  return out;
}

} // namespace

void ps_client::exchange_rows(ps_op op, uint32_t table, const std::vector<uint64_t>& keys, const tensor* rows,
                              int64_t clock, std::function<void(result<tensor>)> done) {
  auto r = route(op, table, keys, rows, clock);
  if (!r) return done(r.err());
  send(std::move(r->msgs), [stale = max_staleness_, spec = specs_.at(table), shards = r->shards, counts = r->counts,
                            slot_of = std::move(r->slot_of), n = keys.size(), done = std::move(done)](replies got) {
    done(assemble_rows(spec, shards, counts, slot_of, n, got, *stale));
  });
}

void ps_client::pull(uint32_t table, const std::vector<uint64_t>& keys, int64_t clock,
                     std::function<void(result<tensor>)> done) {
  exchange_rows(ps_op::pull, table, keys, nullptr, clock, std::move(done));
}

void ps_client::push(uint32_t table, const std::vector<uint64_t>& keys, const tensor& grads, int64_t clock,
                     std::function<void(result<bool>)> done) {
  send_rows(ps_op::push, table, keys, grads, clock, std::move(done));
}

void ps_client::send_rows(ps_op op, uint32_t table, const std::vector<uint64_t>& keys, const tensor& rows_in,
                          int64_t clock, std::function<void(result<bool>)> done) {
  auto r = route(op, table, keys, &rows_in, clock);
  if (!r) return done(r.err());
  send(std::move(r->msgs), [shards = r->shards, done = std::move(done)](replies got) {
    for (size_t i = 0; i < got.size(); ++i)
      if (auto rep = open_reply(got[i], shards[i]); !rep) return done(rep.err());
    done(true);
  });
}

namespace {
template <class T>
ps_future<T> future_of(std::function<void(std::function<void(result<T>)>)> start) {
  auto p = std::make_shared<std::promise<result<T>>>();
  ps_future<T> f(p->get_future());
  start([p](result<T> r) { p->set_value(std::move(r)); });
  return f;
}
} // namespace

ps_future<tensor> ps_client::pull(uint32_t table, const std::vector<uint64_t>& keys, int64_t clock) {
  return future_of<tensor>([&](auto done) { pull(table, keys, clock, std::move(done)); });
}

ps_future<bool> ps_client::push(uint32_t table, const std::vector<uint64_t>& keys, const tensor& grads, int64_t clock) {
  return future_of<bool>([&](auto done) { push(table, keys, grads, clock, std::move(done)); });
}

ps_future<tensor> ps_client::push_pull(uint32_t table, const std::vector<uint64_t>& keys, const tensor& grads,
                                       int64_t clock) {
  return future_of<tensor>([&](auto done) {
    // One request per shard: the shard applies (or, under BSP, holds) the
    // push, then serves the pull as a pull of that clock.
    exchange_rows(ps_op::push_pull, table, keys, &grads, clock, std::move(done));
  });
}

status ps_client::everywhere(std::function<void(ps_request&)> fill, const std::string& what,
                             std::chrono::milliseconds timeout) {
  std::vector<std::pair<size_t, std::vector<char>>> msgs;
  for (size_t s = 0; s < shards_.size(); ++s) {
    ps_request r;
    r.seq = ++seq_;
    r.worker = worker_;
    fill(r);
    msgs.emplace_back(s, transport::encode(r));
  }
  auto f = future_of<bool>([&](auto done) {
    send(
        std::move(msgs),
        [done](replies got) {
          for (size_t i = 0; i < got.size(); ++i)
            if (auto rep = open_reply(got[i], i); !rep) return done(rep.err());
          done(true);
        },
        timeout);
  });
  auto r = f.get();
  if (!r) return error{what + ": " + r.err().message};
  return {};
}

status ps_client::connect(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  caf::scoped_actor self{sys_};
  for (size_t s = 0; s < shards_.size(); ++s) {
    for (bool answered = false; !answered;) {
      std::string why;
      // An empty message: the shard answers with a decoding error, which is
      // all this needs.
      self->request(shards_[s], std::chrono::seconds(2), ps_atom::value, wire_bytes{})
          .receive([&](wire_bytes&) { answered = true; }, [&](caf::error& e) { why = describe(sys_, e); });
      if (answered) break;
      if (std::chrono::steady_clock::now() >= deadline)
        return error{"shard " + std::to_string(s) + " did not answer within " +
                     std::to_string(limit.count() / 1000.0).substr(0, 4) + " s (" + why + ")"};
      std::this_thread::sleep_for(std::chrono::milliseconds(100)); // a dead peer fails at once: don't spin

    }
  }
  return {};
}

status ps_client::create(const ps_table_spec& spec) {
  // Creating is idempotent, and it is the first request on connections
  // that may be fresh (the replies can come back on one the server opens),
  // where CAF 0.17 can lose a message: ask in short attempts until the
  // client's timeout has passed.
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  const auto attempt = std::clamp<std::chrono::milliseconds>(timeout_ / 4, std::chrono::milliseconds(100),
                                                             std::chrono::seconds(5));
  for (;;) {
    status st = everywhere([&](ps_request& r) {
      r.op = ps_op::create;
      r.spec = spec;
    }, "creating table '" + spec.name + "'", attempt);
    if (st) {
      specs_[spec.id] = spec;
      return st;
    }
    if (st.err().message.find(request_timeout_text) == std::string::npos ||
        std::chrono::steady_clock::now() + attempt > deadline)
      return st;
    spdlog::warn("creating table '{}': {}; asking again", spec.name, st.err().message);
  }
}

status ps_client::assign(uint32_t table, const std::vector<uint64_t>& keys, const tensor& values) {
  auto r = future_of<bool>([&](auto done) { send_rows(ps_op::assign, table, keys, values, 0, std::move(done)); }).get();
  return r ? status{} : status{r.err()};
}

status ps_client::clock(int64_t c) {
  return everywhere([&](ps_request& r) {
    r.op = ps_op::clock;
    r.clock = c;
  }, "clock " + std::to_string(c));
}

result<std::vector<double>> ps_client::call(const std::string& func, uint32_t table, const std::vector<double>& args) {
  std::vector<std::pair<size_t, std::vector<char>>> msgs;
  for (size_t s = 0; s < shards_.size(); ++s) {
    ps_request r;
    r.seq = ++seq_;
    r.worker = worker_;
    r.op = ps_op::func;
    r.func = func;
    r.table = table;
    r.args = args;
    msgs.emplace_back(s, transport::encode(r));
  }
  auto f = future_of<std::vector<double>>([&](auto done) {
    send(std::move(msgs), [done](replies got) {
      std::vector<double> sum;
      for (size_t i = 0; i < got.size(); ++i) {
        auto rep = open_reply(got[i], i);
        if (!rep) return done(rep.err());
        if (sum.size() < rep->partial.size()) sum.resize(rep->partial.size(), 0.0);
        for (size_t j = 0; j < rep->partial.size(); ++j) sum[j] += rep->partial[j];
      }
      done(std::move(sum));
    });
  });
  return f.get();
}

status ps_client::save(const std::string& dir) {
  return everywhere([&](ps_request& r) {
    r.op = ps_op::save;
    r.path = dir;
  }, "saving to " + dir);
}

status ps_client::load(const std::string& dir) {
  return everywhere([&](ps_request& r) {
    r.op = ps_op::load;
    r.path = dir;
  }, "loading from " + dir);
}

} // namespace luoshu::actors
