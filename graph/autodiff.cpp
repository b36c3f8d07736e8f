#include "graph/autodiff.hpp"

#include "graph/builder.hpp"

namespace luoshu {

namespace {

struct accum {
  std::vector<expr> dense;
  std::vector<expr> indices;
  std::vector<expr> values;
  expr total; ///< cached dense_total
  bool empty() const { return dense.empty() && indices.empty(); }
};

expr scatter_rows(expr values, expr indices, expr like) {
  op_attrs a;
  a.axis = 0;
  return like.g().add(op_kind::scatter_add_like, {values.id(), indices.id(), like.id()}, a);
}

expr sum_all(const std::vector<expr>& xs) {
  expr s = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) s = s + xs[i];
  return s;
}

/// The dense total of everything that flowed into node `x`.
expr dense_total(accum& a, expr x) {
  if (a.total.valid()) return a.total;
  std::vector<expr> parts = a.dense;
  if (!a.indices.empty()) {
    expr idx = a.indices.size() == 1 ? a.indices[0] : concat(a.indices, 0);
    expr val = a.values.size() == 1 ? a.values[0] : concat(a.values, 0);
    parts.push_back(scatter_rows(val, idx, x));
  }
  a.total = sum_all(parts);
  return a.total;
}

} // namespace

expr gradient::densified(expr wrt) const {
  return sparse() ? scatter_rows(values, indices, wrt) : dense;
}

std::vector<gradient> gradients(expr loss, const std::vector<expr>& wrt, bool allow_sparse) {
  if (!loss.valid()) throw luoshu_error("gradients: empty loss expression");
  graph& g = loss.g();
  if (!is_float(loss.type()))
    throw luoshu_error("gradients: loss '" + loss.name() + "' must be a float tensor");
  if (loss.shape().numel() != 1)
    throw luoshu_error("gradients: loss '" + loss.name() + "' must be a scalar, got shape " +
                       loss.shape().to_string() + " (reduce it, e.g. with mean())");
  const size_t n = static_cast<size_t>(loss.id()) + 1;

  // Nodes on a path from some wrt node to the loss.
  std::vector<bool> from_wrt(g.size(), false), to_loss(n, false);
  for (const expr& w : wrt) {
    if (!w.valid() || &w.g() != &g) throw luoshu_error("gradients: a wrt expression is not in the loss's graph");
    from_wrt[static_cast<size_t>(w.id())] = true;
  }
  for (size_t i = 0; i < n; ++i) {
    const node& nd = g.at(static_cast<node_id>(i));
    if (info(nd.op).flags & op_flag_no_grad) continue;
    for (auto in : nd.inputs)
      if (from_wrt[static_cast<size_t>(in)]) from_wrt[i] = true;
  }
  to_loss[n - 1] = true;
  for (size_t i = n; i-- > 0;) {
    if (!to_loss[i]) continue;
    for (auto in : g.at(static_cast<node_id>(i)).inputs) to_loss[static_cast<size_t>(in)] = true;
  }
  auto relevant = [&](node_id id) {
    auto i = static_cast<size_t>(id);
    return i < n && from_wrt[i] && to_loss[i] && is_float(g.at(id).type);
  };

  std::vector<accum> acc(n);
  expr one = g.scalar(1.0, loss.type());
  acc[n - 1].dense.push_back(loss.shape().rank() == 0 ? one : broadcast_like(one, loss));

  for (size_t i = n; i-- > 0;) {
    auto id = static_cast<node_id>(i);
    if (!relevant(id) || acc[i].empty()) continue;
    const node& nd = g.at(id);
    const op_info& oi = info(nd.op);
    if (oi.flags & (op_flag_source | op_flag_no_grad)) continue;
    if (!oi.grad)
      throw luoshu_error("gradients: op '" + std::string(oi.name) + "' (node '" + nd.name +
                         "') has no gradient");
    auto first_new = static_cast<node_id>(g.size());
    grad_ctx c{g, id, dense_total(acc[i], expr(&g, id)), {}, {}};
    bool any = false;
    for (auto in : nd.inputs) {
      c.needs.push_back(relevant(in));
      any = any || c.needs.back();
    }
    if (!any) continue;
    oi.grad(c);
    g.set_origin(first_new, id);
    for (auto& k : c.out) {
      auto src = static_cast<size_t>(g.at(id).inputs[static_cast<size_t>(k.input)]);
      if (!c.needs[static_cast<size_t>(k.input)]) continue;
      if (k.dense.valid()) {
        acc[src].dense.push_back(k.dense);
      } else {
        acc[src].indices.push_back(k.indices);
        acc[src].values.push_back(k.values);
      }
    }
  }

  std::vector<gradient> out;
  for (const expr& w : wrt) {
    auto i = static_cast<size_t>(w.id());
    gradient gr;
    if (i >= n || acc[i].empty() || !relevant(w.id())) {
      if (!is_float(w.type()))
        throw luoshu_error("gradients: '" + w.name() + "' is not a float tensor");
      gr.dense = broadcast_like(g.scalar(0.0, w.type()), w);
    } else if (allow_sparse && acc[i].dense.empty()) {
      auto& a = acc[i];
      gr.indices = a.indices.size() == 1 ? a.indices[0] : concat(a.indices, 0);
      gr.values = a.values.size() == 1 ? a.values[0] : concat(a.values, 0);
    } else {
      gr.dense = dense_total(acc[i], w);
    }
    out.push_back(gr);
  }
  return out;
}

} // namespace luoshu
