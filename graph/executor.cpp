#include "graph/executor.hpp"

#include "graph/device_backend.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace luoshu {

namespace {

size_t round_up(size_t b) { return (b + 63) / 64 * 64; }

enum class where_t : uint8_t { external, pooled, alias };

} // namespace

struct executor::plan {
  struct step {
    node_id id;
    kernel_fn kernel;
    where_t where;
    int slot = -1;            ///< pooled: slot index
    int alias_of = -1;        ///< alias: position (in steps) of the value it views
    type_shape ts;            ///< concrete dtype and shape
    std::vector<int> inputs;  ///< positions of the inputs in `steps` (-1 for shape-only)
    std::vector<int> free_after; ///< slots released once this step ran
    uint32_t blocked = 0;     ///< kernel_call::blocked: channel-blocked inputs and output
  };
  std::vector<step> steps;
  std::vector<int> position; ///< node id -> step position (-1 if not in plan)
  std::vector<int> fetch_pos;
  std::vector<std::pair<int, size_t>> feed_pos; ///< step position, index in feeds
  std::vector<size_t> slot_bytes;
  std::vector<lifetime> lifetimes;
  size_t peak_live = 0, unshared = 0;
  size_t first_stateful = 0; ///< position of the first update step (steps.size() if none)
};

executor::executor(const graph& g, variable_store& vars, const kernel_registry& kernels,
                   executor_options opts)
    : g_(g), vars_(vars), kernels_(kernels), opts_(opts) {
  if (opts_.device.kind == device::kind_t::cpu) return;
  if (opts_.stream) {
    stream_ = opts_.stream;
    if (!(stream_->device() == opts_.device))
      device_error_ = "the executor runs on " + opts_.device.to_string() + " but its stream is on " +
                      stream_->device().to_string();
    return;
  }
  device_backend* b = kernels_.backend(opts_.device.kind);
  if (!b) {
    device_error_ = "cannot run on " + opts_.device.to_string() +
                    ": no kernels for it are registered (is this build without CUDA? see `luoshu info`)";
    return;
  }
  try {
    own_stream_ = b->make_stream(opts_.device.index);
    stream_ = own_stream_.get();
  } catch (const luoshu_error& e) {
    device_error_ = e.what();
  }
}

executor::~executor() = default;

std::vector<executor::lifetime> executor::last_lifetimes() const {
  return last_ ? last_->lifetimes : std::vector<lifetime>{};
}

std::vector<node_id> executor::last_blocked() const {
  std::vector<node_id> out;
  if (last_)
    for (const auto& s : last_->steps)
      if (s.blocked & kernel_call::output_blocked) out.push_back(s.id);
  return out;
}

// Which values stay channel-blocked (ops/kernel.hpp, layout_caps): every
// pooled f32 [N, C, H, W] output (C a multiple of the block) of a kernel
// that may write it blocked starts as a candidate; then, until nothing
// changes, a value goes plain when a reader does not accept it blocked or
// when an elementwise reader's operands and output cannot all be blocked.
// Fetched values are plain. Only ever blocked -> plain, so it ends.
void executor::assign_layouts(plan& p) const {
  const int64_t b = kernels_.channel_block();
  const size_t m = p.steps.size();
  std::vector<layout_caps> caps(m);
  std::vector<char> blk(m, 0);
  std::vector<type_shape> in;
  for (size_t i = 0; i < m; ++i) {
    const auto& s = p.steps[i];
    if (!s.kernel) continue;
    const node& nd = g_.at(s.id);
    layout_fn f = kernels_.layout(nd.op);
    if (!f) continue;
    in.clear();
    for (int q : s.inputs) in.push_back(q >= 0 ? p.steps[static_cast<size_t>(q)].ts : type_shape{});
    caps[i] = f(nd, in, s.ts);
    const shape& sh = s.ts.shape;
    blk[i] = caps[i].output && s.where == where_t::pooled && s.ts.type == dtype::f32 && sh.rank() == 4 &&
             sh[1] > 0 && sh[1] % b == 0 && sh.numel() > 0;
  }
  for (int pos : p.fetch_pos) blk[static_cast<size_t>(pos)] = 0;
  // kernel_call::blocked has a bit for each of the first 31 inputs only.
  auto accepts = [&](size_t i, size_t j) { return j < 31 && ((caps[i].inputs >> j) & 1u); };
  for (bool changed = true; changed;) {
    changed = false;
    auto drop = [&](size_t k) {
      if (blk[k]) {
        blk[k] = 0;
        changed = true;
      }
    };
    for (size_t i = 0; i < m; ++i) {
      const auto& s = p.steps[i];
      bool mixed = caps[i].uniform && !blk[i];
      for (size_t j = 0; j < s.inputs.size(); ++j) {
        const int q = s.inputs[j];
        if (q < 0) continue;
        if (!accepts(i, j)) {
          drop(static_cast<size_t>(q));
          continue;
        }
        mixed = mixed || (caps[i].uniform && !blk[static_cast<size_t>(q)]);
      }
      if (!mixed) continue;
      drop(i);
      for (size_t j = 0; j < s.inputs.size(); ++j)
        if (s.inputs[j] >= 0 && accepts(i, j)) drop(static_cast<size_t>(s.inputs[j]));
    }
  }
  for (size_t i = 0; i < m; ++i) {
    auto& s = p.steps[i];
    s.blocked = blk[i] ? kernel_call::output_blocked : 0;
    for (size_t j = 0; j < s.inputs.size() && j < 31; ++j)
      if (s.inputs[j] >= 0 && blk[static_cast<size_t>(s.inputs[j])]) s.blocked |= uint32_t{1} << j;
  }
}

result<executor::plan*> executor::plan_for(const feed_map& feeds, const std::vector<expr>& fetches,
                                           const std::vector<expr>& targets) {
  std::ostringstream key;
  for (auto& f : fetches) key << f.id() << ',';
  key << '|';
  for (auto& t : targets) key << t.id() << ',';
  key << '|';
  for (auto& [e, t] : feeds) key << e.id() << ':' << static_cast<int>(t.type()) << t.shape().to_string();
  auto found = plans_.find(key.str());
  if (found != plans_.end()) return found->second.get();

  auto p = std::make_unique<plan>();
  const size_t n = g_.size();
  std::vector<bool> need(n, false);
  for (auto* list : {&fetches, &targets})
    for (auto& e : *list) {
      if (!e.valid() || &e.g() != &g_) return error{"fetch or target is not an expression of this graph"};
      need[static_cast<size_t>(e.id())] = true;
    }
  for (size_t i = n; i-- > 0;)
    if (need[i])
      for (auto in : g_.at(static_cast<node_id>(i)).inputs) need[static_cast<size_t>(in)] = true;

  std::vector<node_id> order;
  for (size_t i = 0; i < n; ++i)
    if (need[i] && !(info(g_.at(static_cast<node_id>(i)).op).flags & op_flag_stateful))
      order.push_back(static_cast<node_id>(i));
  for (size_t i = 0; i < n; ++i)
    if (need[i] && (info(g_.at(static_cast<node_id>(i)).op).flags & op_flag_stateful))
      order.push_back(static_cast<node_id>(i));

  p->position.assign(n, -1);
  std::vector<int> feed_of(n, -1);
  for (size_t k = 0; k < feeds.size(); ++k) {
    const expr& e = feeds[k].first;
    if (!e.valid() || &e.g() != &g_) return error{"feed key is not an expression of this graph"};
    if (g_.at(e.id()).op != op_kind::placeholder)
      return error{"feed for '" + e.name() + "': only placeholders can be fed"};
    feed_of[static_cast<size_t>(e.id())] = static_cast<int>(k);
  }

  // Concrete shapes and kernels.
  for (node_id id : order) {
    const node& nd = g_.at(id);
    const op_info& oi = info(nd.op);
    plan::step s;
    s.id = id;
    s.kernel = nullptr;
    if (nd.op == op_kind::placeholder) {
      int k = feed_of[static_cast<size_t>(id)];
      if (k < 0) return error{"placeholder '" + nd.name + "' needs a feed"};
      const tensor& t = feeds[static_cast<size_t>(k)].second;
      if (t.type() != nd.type)
        return error{"feed for '" + nd.name + "' is " + name(t.type()) + " but the placeholder is " + name(nd.type)};
      bool ok = t.shape().rank() == nd.shape.rank();
      for (int d = 0; ok && d < nd.shape.rank(); ++d) ok = nd.shape[d] < 0 || nd.shape[d] == t.shape()[d];
      if (!ok)
        return error{"feed for '" + nd.name + "' has shape " + t.shape().to_string() +
                     " but the placeholder declares " + nd.shape.to_string()};
      s.ts = {t.type(), t.shape()};
      s.where = where_t::external;
      p->feed_pos.emplace_back(static_cast<int>(p->steps.size()), static_cast<size_t>(k));
    } else if (oi.flags & op_flag_source) {
      s.ts = {nd.type, nd.shape};
      s.where = where_t::external;
    } else {
      std::vector<type_shape> in;
      for (auto i : nd.inputs) {
        int pos = p->position[static_cast<size_t>(i)];
        in.push_back(p->steps[static_cast<size_t>(pos)].ts);
      }
      try {
        s.ts = g_.infer(id, in);
      } catch (const luoshu_error& e) {
        return error{e.what()};
      }
      s.kernel = kernels_.find(nd.op, opts_.device.kind);
      if (!s.kernel)
        return error{std::string("op '") + oi.name + "' (node '" + nd.name + "') has no " +
                     (opts_.device.kind == device::kind_t::cpu ? "CPU" : "CUDA") + " kernel"};
      s.where = (oi.flags & op_flag_alias_input0) ? where_t::alias : where_t::pooled;
      for (size_t j = 0; j < nd.inputs.size(); ++j) {
        bool shape_only = (oi.flags & op_flag_shape_only_last) && j + 1 == nd.inputs.size();
        s.inputs.push_back(shape_only ? -1 : p->position[static_cast<size_t>(nd.inputs[j])]);
      }
      if (s.where == where_t::alias) {
        int src = s.inputs[0];
        const auto& srcs = p->steps[static_cast<size_t>(src)];
        // A view of an external value stays external; otherwise it shares
        // the root pooled value's buffer.
        if (srcs.where == where_t::external) s.where = where_t::external;
        s.alias_of = srcs.where == where_t::alias ? srcs.alias_of : src;
      }
    }
    p->position[static_cast<size_t>(id)] = static_cast<int>(p->steps.size());
    p->steps.push_back(std::move(s));
  }

  for (auto& f : fetches) p->fetch_pos.push_back(p->position[static_cast<size_t>(f.id())]);
  if (opts_.blocked_layouts && opts_.device.kind == device::kind_t::cpu && kernels_.channel_block() > 0)
    assign_layouts(*p);

  p->first_stateful = p->steps.size();
  for (size_t i = 0; i < p->steps.size(); ++i)
    if (info(g_.at(p->steps[i].id).op).flags & op_flag_stateful) {
      p->first_stateful = i;
      break;
    }

  // Liveness of pooled roots: last step that reads them (through aliases too).
  const int m = static_cast<int>(p->steps.size());
  auto root = [&](int pos) {
    const auto& s = p->steps[static_cast<size_t>(pos)];
    return s.where == where_t::alias ? s.alias_of : pos;
  };
  std::vector<int> last(static_cast<size_t>(m), -1);
  for (int i = 0; i < m; ++i) {
    last[static_cast<size_t>(root(i))] = std::max(last[static_cast<size_t>(root(i))], i);
    for (int in : p->steps[static_cast<size_t>(i)].inputs)
      if (in >= 0) last[static_cast<size_t>(root(in))] = std::max(last[static_cast<size_t>(root(in))], i);
  }
  for (int pos : p->fetch_pos) last[static_cast<size_t>(root(pos))] = m; // fetched values live to the end

  // Slot assignment: best fit among free slots, else a new one.
  std::vector<int> free_slots;
  size_t live = 0;
  for (int i = 0; i < m; ++i) {
    auto& s = p->steps[static_cast<size_t>(i)];
    if (s.where == where_t::pooled) {
      size_t bytes = round_up(static_cast<size_t>(s.ts.shape.numel()) * size_of(s.ts.type));
      p->unshared += bytes;
      int best = -1;
      if (opts_.reuse_buffers)
        for (size_t k = 0; k < free_slots.size(); ++k) {
          size_t have = p->slot_bytes[static_cast<size_t>(free_slots[k])];
          if (have >= bytes &&
              (best < 0 || have < p->slot_bytes[static_cast<size_t>(free_slots[static_cast<size_t>(best)])]))
            best = static_cast<int>(k);
        }
      if (best >= 0) {
        s.slot = free_slots[static_cast<size_t>(best)];
        free_slots.erase(free_slots.begin() + best);
      } else {
        s.slot = static_cast<int>(p->slot_bytes.size());
        p->slot_bytes.push_back(bytes);
      }
      live += p->slot_bytes[static_cast<size_t>(s.slot)];
      p->peak_live = std::max(p->peak_live, live);
      int end = std::max(last[static_cast<size_t>(i)], i);
      p->lifetimes.push_back({s.id, s.slot, i, end});
      if (end < m) p->steps[static_cast<size_t>(end)].free_after.push_back(s.slot);
    }
    // Slots whose last reader is step i become free for later steps (never
    // for step i's own output, which was placed above).
    for (int sl : p->steps[static_cast<size_t>(i)].free_after) {
      free_slots.push_back(sl);
      live -= p->slot_bytes[static_cast<size_t>(sl)];
    }
  }
  auto* raw = p.get();
  // Feeds of ever-changing shapes would grow the cache without bound.
  constexpr size_t max_plans = 64;
  if (plans_.size() >= max_plans) {
    plans_.clear();
    last_ = nullptr;
  }
  plans_.emplace(key.str(), std::move(p));
  return raw;
}

result<std::vector<tensor>> executor::run(const feed_map& feeds, const std::vector<expr>& fetches,
                                          const std::vector<expr>& targets, const run_options& ro) {
  if (!device_error_.empty()) return error{device_error_};
  // Kernels' errors are named by node inside; what escapes here comes from
  // the device (allocation, copies of variables and constants).
  try {
    return run_impl(feeds, fetches, targets, ro);
  } catch (const luoshu_error& e) {
    return error{std::string("on ") + opts_.device.to_string() + ": " + e.what()};
  } catch (const std::bad_alloc&) {
    return error{"out of host memory"};
  }
}

result<std::vector<tensor>> executor::run_impl(const feed_map& feeds, const std::vector<expr>& fetches,
                                               const std::vector<expr>& targets, const run_options& ro) {
  const bool on_device = stream_ != nullptr;
  if (g_.size() != initialized_upto_) { // new nodes (e.g. optimizer slots) since the last run
    if (status st = vars_.initialize(g_); !st) return st.err();
    initialized_upto_ = g_.size();
  }
  auto pr = plan_for(feeds, fetches, targets);
  if (!pr) return pr.err();
  plan& p = **pr;
  last_ = &p;

  // Grow the shared pool to this plan's slot sizes.
  if (slots_.size() < p.slot_bytes.size()) slots_.resize(p.slot_bytes.size());
  for (size_t k = 0; k < p.slot_bytes.size(); ++k)
    if (!slots_[k] || slots_[k]->bytes() < p.slot_bytes[k]) {
      slots_[k].reset(); // back to the device cache before asking for more
      slots_[k] = on_device ? stream_->allocate(p.slot_bytes[k]) : std::make_shared<storage>(p.slot_bytes[k]);
    }
  stats_.pool_bytes = 0;
  for (auto& s : slots_) stats_.pool_bytes += s ? s->bytes() : 0;
  stats_.peak_live_bytes = p.peak_live;
  stats_.unshared_bytes = p.unshared;
  stats_.variable_bytes = vars_.bytes();

  const size_t m = p.steps.size();
  std::vector<tensor> values(m);
  std::vector<node_id> owner(slots_.size(), -1);
  kernel_context ctx;
  ctx.step = ro.step;
  ctx.training = ro.training;
  ctx.stream = stream_;
  // Device failures (a CUDA error, an out-of-range index found by a kernel)
  // surface as luoshu_error from the stream; they end the run as an error.
  try {
    for (auto& [pos, k] : p.feed_pos)
      values[static_cast<size_t>(pos)] = on_device ? feeds[k].second.to(*stream_) : feeds[k].second;
  } catch (const luoshu_error& e) {
    return error{std::string("copying feeds to ") + opts_.device.to_string() + ": " + e.what()};
  }
  std::vector<tensor> ins;
  // Fetched values are copied out before the first update runs, so a
  // fetched variable shows the value this step computed with.
  std::vector<tensor> out(p.fetch_pos.size());
  // On a device, snapshot() queues downloads into `out` that complete at
  // synchronize(). A run that ends early (a failing kernel, a missing
  // variable) must drain them before `out` goes away, or the stream's next
  // synchronize() would write into freed host memory. Declared after `out`,
  // so it runs first; its own error is secondary to the one being returned.
  bool synchronized = false;
  struct drain_guard {
    device_stream* stream;
    const bool& done;
    ~drain_guard() {
      if (!stream || done) return;
      try {
        stream->synchronize();
      } catch (const std::exception&) {
      }
    }
  } drain{on_device ? stream_ : nullptr, synchronized};
  // Fetches reported early through ro.on_fetch (host runs only).
  std::vector<char> reported(ro.on_fetch && !on_device ? p.fetch_pos.size() : 0, 0);
  bool snapshotted = false;
  auto snapshot = [&](bool final_pass) {
    for (size_t f = 0; f < p.fetch_pos.size(); ++f) {
      int pos = p.fetch_pos[f];
      if (out[f].defined() || (!final_pass && static_cast<size_t>(pos) >= p.first_stateful)) continue;
      op_kind k = g_.at(p.steps[static_cast<size_t>(pos)].id).op;
      // Pooled buffers are reused by the next run and variables change with
      // every update: hand out a copy. Feeds and constants are immutable.
      const tensor& v = values[static_cast<size_t>(pos)];
      if (on_device) { // comes back to the host at the end of the run
        out[f] = tensor(v.type(), v.shape());
        if (v.nbytes() > 0) stream_->download(out[f].raw(), v.raw(), v.nbytes());
        continue;
      }
      bool share = k == op_kind::placeholder || k == op_kind::constant;
      out[f] = share ? v : v.clone();
    }
  };
  for (size_t i = 0; i < m; ++i) {
    const auto& s = p.steps[i];
    const node& nd = g_.at(s.id);
    if (!snapshotted && i == p.first_stateful) {
      snapshot(false);
      snapshotted = true;
    }
    if (!s.kernel) { // source
      if (nd.op == op_kind::variable) {
        if (!vars_.contains(nd.name)) return error{"variable '" + nd.name + "' is missing from the store"};
        const tensor& v = vars_.get(nd.name);
        // The store may have been changed behind the executor's back.
        if (v.type() != nd.type || !(v.shape() == nd.shape))
          return error{"variable '" + nd.name + "' holds " + name(v.type()) + v.shape().to_string() +
                       " but the graph declares " + name(nd.type) + nd.shape.to_string()};
        values[i] = v;
        if (on_device && !(v.device() == opts_.device)) { // first use: the variable moves to the device
          values[i] = v.to(*stream_);
          vars_.set(nd.name, values[i]);
        }
      }
      if (nd.op == op_kind::constant) {
        values[i] = nd.attrs.value;
        if (on_device) {
          auto [it, fresh] = device_constants_.try_emplace(s.id);
          if (fresh) it->second = nd.attrs.value.to(*stream_);
          values[i] = it->second;
        }
      }
      continue;
    }
    ins.clear();
    for (size_t j = 0; j < s.inputs.size(); ++j) {
      int in = s.inputs[j];
      if (in < 0) {
        ins.emplace_back();
        continue;
      }
      if (opts_.poison_freed) {
        const auto& src = p.steps[static_cast<size_t>(in)];
        int rootpos = src.where == where_t::alias ? src.alias_of : in;
        const auto& rs = p.steps[static_cast<size_t>(rootpos)];
        if (rs.where == where_t::pooled && owner[static_cast<size_t>(rs.slot)] != rs.id)
          return error{"buffer reuse bug: node '" + nd.name + "' reads '" + g_.at(rs.id).name +
                       "' whose buffer (slot " + std::to_string(rs.slot) + ") now belongs to " +
                       (owner[static_cast<size_t>(rs.slot)] < 0 ? std::string("nobody (freed)")
                                                                : "'" + g_.at(owner[static_cast<size_t>(rs.slot)]).name + "'")};
      }
      ins.push_back(values[static_cast<size_t>(in)]);
    }
    if (s.where == where_t::pooled) {
      values[i] = tensor(slots_[static_cast<size_t>(s.slot)], 0, s.ts.type, s.ts.shape);
      owner[static_cast<size_t>(s.slot)] = s.id;
    } else {
      const tensor& src = ins[0];
      values[i] = tensor(src.storage(), src.offset(), s.ts.type, s.ts.shape);
    }
    int64_t t0 = opts_.trace ? trace_recorder::now_us() : 0;
    auto p0 = opts_.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      if (on_device) stream_->set_current_node(nd.name, name(nd.op));
      s.kernel(kernel_call{nd, ins, values[i], ctx, s.blocked});
    } catch (const luoshu_error& e) {
      std::string msg = e.what();
      if (msg.find("'" + nd.name + "'") == std::string::npos)
        msg = "node '" + nd.name + "' (op " + name(nd.op) + "): " + msg;
      return error{msg};
    } catch (const std::bad_alloc&) {
      return error{"node '" + nd.name + "' (op " + name(nd.op) + "): out of memory"};
    }
    if (opts_.profile) {
      auto k = static_cast<size_t>(nd.op);
      opts_.profile->calls[k] += 1;
      opts_.profile->ns[k] += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - p0).count();
    }
    if (opts_.trace)
      opts_.trace->span(std::string(name(nd.op)), "op", t0, trace_recorder::now_us() - t0, opts_.trace_track,
                        "\"node\":" + json_quote(nd.name) + ",\"shape\":" + json_quote(s.ts.shape.to_string()));
    if (!reported.empty())
      for (size_t f = 0; f < p.fetch_pos.size(); ++f)
        if (static_cast<size_t>(p.fetch_pos[f]) == i && !reported[f]) {
          reported[f] = 1;
          ro.on_fetch(f, values[i]);
        }
    for (int sl : s.free_after) {
      if (opts_.poison_freed) {
        if (!on_device)
          std::memset(slots_[static_cast<size_t>(sl)]->data(), 0xFF, slots_[static_cast<size_t>(sl)]->bytes());
        owner[static_cast<size_t>(sl)] = -1;
      }
    }
  }

  snapshot(true);
  if (on_device) {
    synchronized = true; // whatever happens below, the downloads are done or dropped
    try {
      stream_->synchronize(); // this stream only; completes the downloads above
    } catch (const luoshu_error& e) {
      return error{e.what()};
    }
  }
  // The rest (sources such as variables, or every fetch on a device) now.
  if (ro.on_fetch)
    for (size_t f = 0; f < out.size(); ++f)
      if (reported.empty() || !reported[f]) ro.on_fetch(f, out[f]);
  return out;
}

std::string op_profile::table(int64_t runs, size_t top) const {
  std::vector<size_t> kinds;
  int64_t total = 0;
  for (size_t k = 0; k < ns.size(); ++k)
    if (calls[k] > 0) {
      kinds.push_back(k);
      total += ns[k];
    }
  std::sort(kinds.begin(), kinds.end(), [&](size_t a, size_t b) { return ns[a] > ns[b]; });
  const double per_run = 1e-6 / static_cast<double>(std::max<int64_t>(runs, 1));
  std::string out;
  char line[160];
  for (size_t i = 0; i < kinds.size() && i < top; ++i) {
    size_t k = kinds[i];
    std::snprintf(line, sizeof line, "%-26s %9.3f ms/step %5.1f%%  %6.1f calls/step\n", name(static_cast<op_kind>(k)),
                  static_cast<double>(ns[k]) * per_run, 100.0 * static_cast<double>(ns[k]) / static_cast<double>(std::max<int64_t>(total, 1)),
                  static_cast<double>(calls[k]) / static_cast<double>(std::max<int64_t>(runs, 1)));
    out += line;
  }
  std::snprintf(line, sizeof line, "%-26s %9.3f ms/step (kernels only)\n", "total", static_cast<double>(total) * per_run);
  out += line;
  return out;
}

} // namespace luoshu
