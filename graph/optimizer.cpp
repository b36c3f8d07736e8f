#include "graph/optimizer.hpp"

#include <cmath>

#include "graph/builder.hpp"

namespace luoshu {

double lr_schedule::at(int64_t step) const {
  if (step < warmup_steps) return base * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  int64_t t = step - warmup_steps;
  switch (kind) {
    case kind_t::constant: return base;
    case kind_t::step: return base * std::pow(gamma, static_cast<double>(t / std::max<int64_t>(1, step_size)));
    case kind_t::exponential:
      return base * std::pow(gamma, static_cast<double>(t) / static_cast<double>(std::max<int64_t>(1, step_size)));
    case kind_t::cosine: {
      int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
      double f = std::min(1.0, static_cast<double>(t) / static_cast<double>(span));
      return min_lr + 0.5 * (base - min_lr) * (1 + std::cos(3.141592653589793 * f));
    }
  }
  return base;
}

std::optional<lr_schedule::kind_t> lr_schedule::parse(const std::string& s) {
  if (s == "constant") return kind_t::constant;
  if (s == "step") return kind_t::step;
  if (s == "exponential") return kind_t::exponential;
  if (s == "cosine") return kind_t::cosine;
  return std::nullopt;
}

std::optional<optimizer_config::kind_t> optimizer_config::parse(const std::string& s) {
  if (s == "sgd") return kind_t::sgd;
  if (s == "momentum") return kind_t::momentum;
  if (s == "nesterov") return kind_t::nesterov;
  if (s == "adagrad") return kind_t::adagrad;
  if (s == "adam") return kind_t::adam;
  if (s == "adamw") return kind_t::adamw;
  return std::nullopt;
}

const char* optimizer_config::name(kind_t k) {
  switch (k) {
    case kind_t::sgd: return "sgd";
    case kind_t::momentum: return "momentum";
    case kind_t::nesterov: return "nesterov";
    case kind_t::adagrad: return "adagrad";
    case kind_t::adam: return "adam";
    case kind_t::adamw: return "adamw";
  }
  return "?";
}

namespace {

using K = optimizer_config::kind_t;

/// The optimizer state variable "<param>/<what>": the existing one when an
/// earlier set of update nodes made it (two update paths of one graph, e.g.
/// a local trainer and a data-parallel one, share the state), else a new one.
expr state_variable(graph& g, const std::string& name, const shape& s, dtype t, const initializer& in) {
  if (expr e = g.find(name); e.valid()) {
    const node& n = g.at(e.id());
    if (n.op != op_kind::variable || n.type != t || !(n.shape == s))
      throw luoshu_error("optimizer state '" + name + "' should be a " + luoshu::name(t) + s.to_string() +
                         " variable, but the graph has a node of that name that is not");
    return e;
  }
  return g.variable(name, s, in, t, false);
}

expr slot(graph& g, expr param, const std::string& what, double init_value = 0) {
  return state_variable(g, param.name() + "/" + what, param.shape(),
                        param.type(), init_value == 0 ? init::zeros() : init::constant(init_value));
}

} // namespace

train_ops minimize(expr loss, const optimizer_config& cfg, std::vector<expr> params) {
  graph& g = loss.g();
  if (params.empty()) params = g.variables(true);
  if (params.empty()) throw luoshu_error("minimize: the graph has no trainable variables");
  return apply_gradients(g, params, gradients(loss, params, true), cfg);
}

train_ops apply_gradients(graph& g, const std::vector<expr>& params, std::vector<gradient> grads,
                          const optimizer_config& cfg) {
  if (grads.size() != params.size())
    throw luoshu_error("apply_gradients: " + std::to_string(grads.size()) + " gradients for " +
                       std::to_string(params.size()) + " parameters");
  train_ops t;
  t.params = params;
  t.grads = grads;
  t.lr = g.find("lr").valid() ? g.find("lr") : g.placeholder("lr", dtype::f32, shape{});

  // Global-norm clipping: scale = clip / max(norm, clip).
  if (cfg.clip_norm > 0) {
    // Accumulate in f64 when any parameter is f64, else f32.
    dtype nt = dtype::f32;
    for (auto& p : params)
      if (p.type() == dtype::f64) nt = dtype::f64;
    expr total;
    for (auto& gr : grads) {
      // A sparse gradient may list a row several times: its norm is that of
      // the summed rows, as for the dense gradient it stands for.
      expr sq = gr.sparse() ? g.add(op_kind::sparse_square_sum, {gr.indices.id(), gr.values.id()})
                            : sum(square(gr.dense));
      sq = cast(sq, nt);
      total = total.valid() ? total + sq : sq;
    }
    t.grad_norm = sqrt(total);
    if (!g.find("grad_norm").valid()) t.grad_norm.named("grad_norm");
    expr clip = g.scalar(cfg.clip_norm, nt);
    expr scale = clip / maximum(t.grad_norm, clip);
    for (auto& gr : grads) {
      expr& v = gr.sparse() ? gr.values : gr.dense;
      v = v * cast(scale, v.type());
    }
  }

  for (size_t i = 0; i < params.size(); ++i) {
    expr p = params[i];
    const gradient& gr = grads[i];
    op_attrs a;
    a.decay = cfg.weight_decay;
    std::vector<node_id> in{p.id()};
    if (gr.sparse()) {
      in.push_back(gr.indices.id());
      in.push_back(gr.values.id());
    } else {
      in.push_back(gr.dense.id());
    }
    expr lr = cast(t.lr, p.type());
    op_kind op = op_kind::sgd_update;
    switch (cfg.kind) {
      case K::sgd:
        op = gr.sparse() ? op_kind::sparse_sgd_update : op_kind::sgd_update;
        break;
      case K::momentum:
      case K::nesterov:
        op = gr.sparse() ? op_kind::sparse_momentum_update : op_kind::momentum_update;
        a.alpha = cfg.momentum;
        a.flag = cfg.kind == K::nesterov;
        in.push_back(slot(g, p, "velocity").id());
        break;
      case K::adagrad:
        op = gr.sparse() ? op_kind::sparse_adagrad_update : op_kind::adagrad_update;
        a.eps = cfg.eps;
        in.push_back(slot(g, p, "accumulator", cfg.adagrad_init).id());
        break;
      case K::adam:
      case K::adamw:
        op = gr.sparse() ? op_kind::sparse_adam_update : op_kind::adam_update;
        a.alpha = cfg.momentum;
        a.beta = cfg.beta2;
        a.eps = cfg.eps;
        a.flag = cfg.kind == K::adamw;
        in.push_back(slot(g, p, "m").id());
        in.push_back(slot(g, p, "v").id());
        break;
    }
    in.push_back(lr.id());
    if (cfg.kind == K::adam || cfg.kind == K::adamw)
      in.push_back(state_variable(g, p.name() + "/t", shape{}, dtype::i64, init::zeros()).id());
    // A second set of update nodes for the same parameter (another update
    // path) gets "/update_2", ...
    std::string uname = p.name() + "/update";
    for (int k = 2; g.find(uname).valid(); ++k) uname = p.name() + "/update_" + std::to_string(k);
    t.updates.push_back(g.add(op, std::move(in), a, uname));
  }
  return t;
}

trainer::trainer(graph& g, expr loss, optimizer_config cfg, executor& ex, std::vector<expr> params)
    : g_(g), loss_(loss), cfg_(cfg), ex_(ex), ops_(minimize(loss, cfg, std::move(params))) {}

result<std::vector<tensor>> trainer::step(feed_map feeds, const std::vector<expr>& extra) {
  feeds.emplace_back(ops_.lr, tensor::scalar<float>(static_cast<float>(cfg_.lr.at(step_))));
  std::vector<expr> fetches{loss_};
  fetches.insert(fetches.end(), extra.begin(), extra.end());
  run_options ro;
  ro.training = true;
  ro.step = step_;
  auto r = ex_.run(feeds, fetches, ops_.updates, ro);
  if (r) ++step_;
  return r;
}

result<std::vector<tensor>> trainer::infer(const feed_map& feeds, const std::vector<expr>& fetches) {
  run_options ro;
  ro.training = false;
  ro.step = step_;
  return ex_.run(feeds, fetches, {}, ro);
}

} // namespace luoshu
