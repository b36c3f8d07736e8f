// Layer normalization over the last axis: shape inference and gradient (the
// formulas and attributes are in ops/layer_norm.hpp).

#include "ops/layer_norm.hpp"

#include <cmath>

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

/// Checks x [..., D] and epsilon; returns D (unknown: -1).
int64_t ln_features(const node& n, const type_shape& x) {
  require_float(x, "input");
  if (x.shape.rank() < 1) throw luoshu_error("input must have rank >= 1 (normalized over its last axis), got a scalar");
  int64_t d = x.shape[x.shape.rank() - 1];
  if (d == 0) throw luoshu_error("cannot normalize over an empty last axis: input " + x.shape.to_string());
  double eps = n.attrs.eps;
  if (!(eps >= 0) || !std::isfinite(eps))
    throw luoshu_error("epsilon must be finite and >= 0, got " + std::to_string(eps));
  return d;
}

/// A per-feature parameter: [D], the input's dtype.
void require_param(const type_shape& p, const type_shape& x, int64_t d, const char* what) {
  if (p.type != x.type)
    throw luoshu_error(std::string(what) + " dtype " + name(p.type) + " differs from the input's " + name(x.type));
  if (p.shape.rank() != 1 || !dims_agree(p.shape[0], d))
    throw luoshu_error(std::string(what) + " must be [" + (d < 0 ? std::string("D") : std::to_string(d)) +
                       "] (the input's last axis), got " + p.shape.to_string() + " for input " + x.shape.to_string());
}

void require_same_shape(const type_shape& a, const type_shape& b, const char* what) {
  require_same_type(a, b);
  bool ok = a.shape.rank() == b.shape.rank();
  for (int i = 0; ok && i < a.shape.rank(); ++i) ok = dims_agree(a.shape[i], b.shape[i]);
  if (!ok)
    throw luoshu_error(std::string(what) + " " + a.shape.to_string() + " does not match the input " +
                       b.shape.to_string());
}

// layer_norm(x, gamma, beta)
type_shape infer_layer_norm(const node& n, std::span<const type_shape> in) {
  int64_t d = ln_features(n, in[0]);
  require_param(in[1], in[0], d, "gamma");
  require_param(in[2], in[0], d, "beta");
  return in[0];
}

// layer_norm_grad(dy, x, gamma) -> dx
type_shape infer_layer_norm_grad(const node& n, std::span<const type_shape> in) {
  int64_t d = ln_features(n, in[1]);
  require_same_shape(in[0], in[1], "output gradient");
  require_param(in[2], in[1], d, "gamma");
  return in[1];
}

// layer_norm_scale_grad(dy, x) -> dgamma [D]
type_shape infer_layer_norm_scale_grad(const node& n, std::span<const type_shape> in) {
  int64_t d = ln_features(n, in[1]);
  require_same_shape(in[0], in[1], "output gradient");
  return {in[1].type, shape{d}};
}

void grad_layer_norm(grad_ctx& c) {
  const op_attrs& a = c.n().attrs;
  expr x = c.in(0), gamma = c.in(1), dy = c.dy;
  if (c.needs[0]) c.dense(0, c.g.add(op_kind::layer_norm_grad, {dy.id(), x.id(), gamma.id()}, a));
  if (c.needs[1]) c.dense(1, c.g.add(op_kind::layer_norm_scale_grad, {dy.id(), x.id()}, a));
  if (c.needs[2]) {
    std::vector<int64_t> lead;
    for (int i = 0; i + 1 < dy.shape().rank(); ++i) lead.push_back(i);
    c.dense(2, lead.empty() ? dy : sum(dy, lead));
  }
}

} // namespace

void describe_layer_norm(op_table& t) {
  t.set(op_kind::layer_norm, 0, infer_layer_norm, grad_layer_norm);
  t.set(op_kind::layer_norm_grad, 0, infer_layer_norm_grad, nullptr);
  t.set(op_kind::layer_norm_scale_grad, 0, infer_layer_norm_scale_grad, nullptr);
}

} // namespace luoshu::ops
