#include <algorithm>
#include "schedulers/ps_trainer.hpp"

#include <cstring>
#include <set>

namespace luoshu::schedulers {

using actors::ps_table_spec;
using transport::ps_optimizer;

namespace {

result<ps_optimizer> server_optimizer(const optimizer_config& c) {
  using K = optimizer_config::kind_t;
  auto refuse = [&](const std::string& what) -> result<ps_optimizer> {
    return error{what + " is not supported with the parameter server yet (the shards apply a constant-rate update)"};
  };
  if (c.lr.kind != lr_schedule::kind_t::constant || c.lr.warmup_steps != 0) return refuse("a learning-rate schedule");
  if (c.clip_norm > 0) return refuse("gradient clipping (optimizer.clip_norm)");
  ps_optimizer o;
  o.lr = c.lr.base;
  o.momentum = c.momentum;
  o.beta2 = c.beta2;
  o.eps = c.eps;
  o.weight_decay = c.weight_decay;
  switch (c.kind) {
    case K::sgd: o.rule = ps_optimizer::rule_t::sgd; break;
    case K::momentum: o.rule = ps_optimizer::rule_t::momentum; break;
    case K::adagrad: o.rule = ps_optimizer::rule_t::adagrad; break;
    case K::adam: o.rule = ps_optimizer::rule_t::adam; break;
    default: return refuse(std::string("optimizer ") + optimizer_config::name(c.kind));
  }
  if (c.kind == K::adagrad && c.adagrad_init != 0) return refuse("optimizer.adagrad_init");
  return o;
}

std::vector<uint64_t> iota_keys(uint64_t n) {
  std::vector<uint64_t> k(n);
  for (uint64_t i = 0; i < n; ++i) k[i] = i;
  return k;
}

/// Rows of a tensor as [rows, width] (a view).
tensor as_rows(const tensor& t, const ps_table_spec& s, int64_t rows) {
  return t.to_host().reshaped(shape{rows, static_cast<int64_t>(s.width)});
}

} // namespace

ps_trainer::ps_trainer(graph& g, expr loss, const optimizer_config& cfg, executor& ex, variable_store& vars,
                       actors::ps_client& client, ps_trainer_options o, std::vector<expr> params)
    : g_(g), loss_(loss), ex_(ex), vars_(vars), client_(client), opt_(std::move(o)) {
  auto server = server_optimizer(cfg);
  if (!server) {
    config_error_ = server.err();
    return;
  }
  if (params.empty())
    for (size_t i = 0; i < g.size(); ++i) {
      const node& n = g.at(static_cast<node_id>(i));
      if (n.op == op_kind::variable && n.attrs.flag) params.emplace_back(&g, static_cast<node_id>(i));
    }
  auto grads = gradients(loss, params);
  fetches_.push_back(loss);
  for (size_t i = 0; i < params.size(); ++i) {
    param p;
    p.var = params[i];
    p.name = params[i].name();
    const shape& s = params[i].shape();
    p.spec.id = opt_.first_table + static_cast<uint32_t>(i);
    p.spec.name = p.name;
    p.spec.rows = s.rank() >= 2 ? static_cast<uint64_t>(s[0]) : 1;
    p.spec.width = static_cast<uint32_t>(s.rank() >= 2 ? s.numel() / s[0] : s.numel());
    p.spec.type = params[i].type();
    p.spec.optimizer = *server;
    p.grad = grads[i];
    if (auto it = opt_.ids_of.find(p.name); it != opt_.ids_of.end()) p.ids = it->second;
    if (p.grad.sparse()) {
      fetches_.push_back(p.grad.indices);
      fetches_.push_back(p.grad.values);
    } else {
      fetches_.push_back(p.grad.dense);
    }
    params_.push_back(std::move(p));
  }
}

status ps_trainer::init(bool assign_initial) {
  if (!config_error_) return config_error_;
  if (status st = vars_.initialize(g_); !st) return st;
  for (auto& p : params_) {
    if (status st = client_.create(p.spec); !st) return st;
    if (!assign_initial) continue;
    const tensor& v = vars_.get(p.name);
    if (status st = client_.assign(p.spec.id, iota_keys(p.spec.rows), as_rows(v, p.spec, static_cast<int64_t>(p.spec.rows)));
        !st)
      return error{"initial values of '" + p.name + "': " + st.err().message};
  }
  return {};
}

status ps_trainer::pull_into_store(const feed_map* feeds) {
  std::vector<actors::ps_future<tensor>> pending;
  std::vector<std::vector<uint64_t>> keys;
  for (auto& p : params_) {
    std::vector<uint64_t> k;
    const tensor* ids = nullptr;
    if (feeds && p.ids.valid())
      for (auto& [e, t] : *feeds)
        if (e.id() == p.ids.id()) ids = &t;
    if (ids) {
      // The distinct ids, ascending. Negative ids are no rows (embedding_bag's
      // padding id -1): nothing to pull.
      for (double v : ids->to_doubles())
        if (v >= 0) k.push_back(static_cast<uint64_t>(v));
      std::sort(k.begin(), k.end());
      k.erase(std::unique(k.begin(), k.end()), k.end());
    } else {
      k = iota_keys(p.spec.rows);
    }
    pending.push_back(client_.pull(p.spec.id, k, step_));
    keys.push_back(std::move(k));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    auto rows = pending[i].get();
    if (!rows) return error{"pulling '" + params_[i].name + "': " + rows.err().message};
    tensor local = vars_.get(params_[i].name).to_host();
    if (local.storage() == vars_.get(params_[i].name).storage() && keys[i].size() == params_[i].spec.rows) {
      std::memcpy(local.raw(), rows->raw(), rows->nbytes());
    } else {
      const size_t row = params_[i].spec.width * size_of(local.type());
      for (size_t r = 0; r < keys[i].size(); ++r)
        std::memcpy(static_cast<char*>(local.raw()) + keys[i][r] * row, static_cast<const char*>(rows->raw()) + r * row,
                    row);
    }
    vars_.set(params_[i].name, local);
  }
  return {};
}

status ps_trainer::fetch_parameters() { return pull_into_store(nullptr); }

result<double> ps_trainer::step(const feed_map& feeds, ps_step_extras* extra) {
  if (!config_error_) return config_error_.err();
  if (status st = pull_into_store(&feeds); !st) return error{"step " + std::to_string(step_) + ": " + st.err().message};
  run_options ro;
  ro.step = step_;
  std::vector<expr> fetches = fetches_;
  const size_t own = fetches_.size();
  if (extra) {
    fetches.insert(fetches.end(), extra->fetches.begin(), extra->fetches.end());
    if (extra->on_fetch)
      ro.on_fetch = [extra, own](size_t f, const tensor& v) {
        if (f >= own) extra->on_fetch(f - own, v);
      };
  }
  auto r = ex_.run(feeds, fetches, {}, ro);
  if (!r) return error{"step " + std::to_string(step_) + ": " + r.err().message};
  if (extra) extra->values.assign(r->begin() + static_cast<std::ptrdiff_t>(own), r->end());
  std::vector<actors::ps_future<bool>> pushes;
  size_t at = 1;
  for (auto& p : params_) {
    if (p.grad.sparse()) {
      const tensor& idx = (*r)[at];
      const tensor& vals = (*r)[at + 1];
      at += 2;
      std::vector<uint64_t> k;
      for (double v : idx.to_doubles()) k.push_back(static_cast<uint64_t>(v));
      pushes.push_back(client_.push(p.spec.id, k, as_rows(vals, p.spec, static_cast<int64_t>(k.size())), step_));
    } else {
      pushes.push_back(client_.push(p.spec.id, iota_keys(p.spec.rows),
                                    as_rows((*r)[at++], p.spec, static_cast<int64_t>(p.spec.rows)), step_));
    }
  }
  for (size_t i = 0; i < pushes.size(); ++i)
    if (auto ok = pushes[i].get(); !ok)
      return error{"step " + std::to_string(step_) + ": pushing '" + params_[i].name + "': " + ok.err().message};
  if (status st = client_.clock(step_); !st) return error{"step " + std::to_string(step_) + ": " + st.err().message};
  ++step_;
  return (*r)[0].item();
}

} // namespace luoshu::schedulers
