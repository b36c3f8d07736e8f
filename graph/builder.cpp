#include "graph/builder.hpp"

#include <climits>
#include <cmath>

namespace luoshu {

namespace {

graph& same_graph(expr a, expr b) {
  if (!a.valid() || !b.valid()) throw luoshu_error("use of an empty expression");
  if (&a.g() != &b.g()) throw luoshu_error("expressions '" + a.name() + "' and '" + b.name() +
                                           "' belong to different graphs");
  return a.g();
}

expr unary(op_kind k, expr x, op_attrs a = {}) {
  if (!x.valid()) throw luoshu_error("use of an empty expression");
  return x.g().add(k, {x.id()}, std::move(a));
}

expr binary(op_kind k, expr a, expr b, op_attrs at = {}) {
  graph& g = same_graph(a, b);
  return g.add(k, {a.id(), b.id()}, std::move(at));
}

expr scalar_of(expr like, double v) { return like.g().scalar(v, like.type()); }

} // namespace

expr add(expr a, expr b) { return binary(op_kind::add, a, b); }
expr sub(expr a, expr b) { return binary(op_kind::sub, a, b); }
expr mul(expr a, expr b) { return binary(op_kind::mul, a, b); }
expr div(expr a, expr b) { return binary(op_kind::div, a, b); }
expr pow(expr a, expr b) { return binary(op_kind::pow, a, b); }
expr pow(expr a, double b) { return pow(a, scalar_of(a, b)); }
expr maximum(expr a, expr b) { return binary(op_kind::maximum, a, b); }
expr minimum(expr a, expr b) { return binary(op_kind::minimum, a, b); }
expr equal(expr a, expr b) { return binary(op_kind::equal, a, b); }
expr not_equal(expr a, expr b) { return binary(op_kind::not_equal, a, b); }
expr less(expr a, expr b) { return binary(op_kind::less, a, b); }
expr less_equal(expr a, expr b) { return binary(op_kind::less_equal, a, b); }
expr greater(expr a, expr b) { return binary(op_kind::greater, a, b); }
expr greater_equal(expr a, expr b) { return binary(op_kind::greater_equal, a, b); }
expr where(expr cond, expr a, expr b) {
  graph& g = same_graph(cond, a);
  same_graph(a, b);
  return g.add(op_kind::where, {cond.id(), a.id(), b.id()});
}

expr operator+(expr a, expr b) { return add(a, b); }
expr operator-(expr a, expr b) { return sub(a, b); }
expr operator*(expr a, expr b) { return mul(a, b); }
expr operator/(expr a, expr b) { return div(a, b); }
expr operator+(expr a, double b) { return add(a, scalar_of(a, b)); }
expr operator-(expr a, double b) { return sub(a, scalar_of(a, b)); }
expr operator*(expr a, double b) { return mul(a, scalar_of(a, b)); }
expr operator/(expr a, double b) { return div(a, scalar_of(a, b)); }
expr operator+(double a, expr b) { return add(scalar_of(b, a), b); }
expr operator-(double a, expr b) { return sub(scalar_of(b, a), b); }
expr operator*(double a, expr b) { return mul(scalar_of(b, a), b); }
expr operator/(double a, expr b) { return div(scalar_of(b, a), b); }
expr operator-(expr a) { return neg(a); }

expr neg(expr x) { return unary(op_kind::neg, x); }
expr abs(expr x) { return unary(op_kind::abs, x); }
expr exp(expr x) { return unary(op_kind::exp, x); }
expr log(expr x) { return unary(op_kind::log, x); }
expr sqrt(expr x) { return unary(op_kind::sqrt, x); }
expr rsqrt(expr x) { return unary(op_kind::rsqrt, x); }
expr square(expr x) { return unary(op_kind::square, x); }
expr sign(expr x) { return unary(op_kind::sign, x); }
expr clamp(expr x, double lo, double hi) {
  op_attrs a;
  a.alpha = lo;
  a.beta = hi;
  return unary(op_kind::clamp, x, a);
}
expr cast(expr x, dtype to) {
  if (x.valid() && x.type() == to) return x;
  op_attrs a;
  a.to = to;
  return unary(op_kind::cast, x, a);
}
expr identity(expr x) { return unary(op_kind::identity, x); }
expr stop_gradient(expr x) { return unary(op_kind::stop_gradient, x); }

expr relu(expr x) { return unary(op_kind::relu, x); }
expr leaky_relu(expr x, double slope) {
  op_attrs a;
  a.alpha = slope;
  return unary(op_kind::leaky_relu, x, a);
}
expr elu(expr x, double alpha) {
  op_attrs a;
  a.alpha = alpha;
  return unary(op_kind::elu, x, a);
}
expr gelu(expr x) { return unary(op_kind::gelu, x); }
expr sigmoid(expr x) { return unary(op_kind::sigmoid, x); }
expr tanh(expr x) { return unary(op_kind::tanh, x); }
expr softplus(expr x) { return unary(op_kind::softplus, x); }
expr softmax(expr x, int64_t axis) {
  op_attrs a;
  a.axis = axis;
  return unary(op_kind::softmax, x, a);
}
expr log_softmax(expr x, int64_t axis) {
  op_attrs a;
  a.axis = axis;
  return unary(op_kind::log_softmax, x, a);
}

expr matmul(expr a, expr b, bool trans_a, bool trans_b) {
  op_attrs at;
  at.trans_a = trans_a;
  at.trans_b = trans_b;
  return binary(op_kind::matmul, a, b, at);
}
expr batch_matmul(expr a, expr b, bool trans_a, bool trans_b) {
  op_attrs at;
  at.trans_a = trans_a;
  at.trans_b = trans_b;
  return binary(op_kind::batch_matmul, a, b, at);
}
expr linear(expr x, expr w, expr b) {
  graph& g = same_graph(x, w);
  same_graph(w, b);
  return g.add(op_kind::linear, {x.id(), w.id(), b.id()});
}

namespace {
op_attrs conv_attrs(const conv2d_options& o) {
  op_attrs a;
  a.axes = {o.stride[0], o.stride[1], o.padding[0], o.padding[1], o.dilation[0], o.dilation[1]};
  a.axis = o.groups;
  return a;
}
} // namespace

expr conv2d(expr x, expr w, const conv2d_options& o) {
  return same_graph(x, w).add(op_kind::conv2d, {x.id(), w.id()}, conv_attrs(o));
}
expr conv2d(expr x, expr w, expr b, const conv2d_options& o) {
  graph& g = same_graph(x, w);
  same_graph(x, b);
  return g.add(op_kind::conv2d, {x.id(), w.id(), b.id()}, conv_attrs(o));
}

expr layer_norm(expr x, expr gamma, expr beta, double eps) {
  graph& g = same_graph(x, gamma);
  same_graph(x, beta);
  op_attrs a;
  a.eps = eps;
  return g.add(op_kind::layer_norm, {x.id(), gamma.id(), beta.id()}, std::move(a));
}

expr attention_probs(expr q, expr k, const attention_options& o) {
  graph& g = same_graph(q, k);
  op_attrs a;
  a.flag = o.causal;
  a.alpha = o.scale;
  if (o.scale == 0) {
    int64_t d = q.shape().rank() == 4 ? q.shape()[3] : -1;
    if (d <= 0)
      throw luoshu_error("attention: the default scale 1/sqrt(d) needs q [B, heads, Tq, d] with a known d > 0, got q " +
                         q.shape().to_string());
    a.alpha = 1.0 / std::sqrt(static_cast<double>(d));
  }
  std::vector<node_id> in{q.id(), k.id()};
  if (o.mask.valid()) {
    same_graph(q, o.mask);
    in.push_back(o.mask.id());
  }
  return g.add(op_kind::attention_probs, std::move(in), std::move(a));
}

expr attention(expr q, expr k, expr v, const attention_options& o) {
  same_graph(q, v);
  expr p = attention_probs(q, k, o); // checks q and k
  const shape &ps = p.shape(), &vs = v.shape();
  if (v.type() != q.type())
    throw luoshu_error(std::string("attention: v dtype ") + name(v.type()) + " differs from q's " + name(q.type()));
  if (vs.rank() != 4 || !(vs[0] < 0 || ps[0] < 0 || vs[0] == ps[0]) || !(vs[1] < 0 || vs[1] == ps[1]) ||
      !(vs[2] < 0 || vs[2] == ps[3]))
    throw luoshu_error("attention: v must be [B, heads, Tk, dv] matching k " + k.shape().to_string() + ", got " +
                       vs.to_string());
  int64_t h = ps[1], tq = ps[2], tk = ps[3], dv = vs[3];
  if (h < 0 || tq < 0 || tk < 0 || dv < 0)
    throw luoshu_error("attention: heads, Tq, Tk and dv must be known, got scores " + ps.to_string() + " and v " +
                       vs.to_string());
  expr o3 = batch_matmul(reshape(p, shape{-1, tq, tk}), reshape(v, shape{-1, tk, dv}));
  return reshape(o3, shape{-1, h, tq, dv});
}

namespace {
expr pool(op_kind k, expr x, const pool2d_options& o) {
  op_attrs a;
  int64_t sh = o.stride[0] ? o.stride[0] : o.kernel[0], sw = o.stride[1] ? o.stride[1] : o.kernel[1];
  a.axes = {sh, sw, o.padding[0], o.padding[1], 1, 1};
  a.axes2 = {o.kernel[0], o.kernel[1]};
  a.flag = o.count_include_pad;
  return unary(k, x, std::move(a));
}
} // namespace

expr max_pool2d(expr x, const pool2d_options& o) { return pool(op_kind::max_pool2d, x, o); }
expr avg_pool2d(expr x, const pool2d_options& o) { return pool(op_kind::avg_pool2d, x, o); }

namespace {
/// The hidden states: columns [0, H) of a recurrent workspace [B, T, width].
/// (The lstm and gru gradients recognise exactly this slice and read the
/// gradient of h without the zero-filled workspace around it.)
expr hidden_of(expr ws, int64_t h) { return slice(ws, {0, 0, 0}, {INT64_MAX, INT64_MAX, h}); }
} // namespace

expr lstm(expr x, expr w_x, expr w_h, expr b) {
  graph& g = same_graph(x, w_x);
  same_graph(x, w_h);
  same_graph(x, b);
  expr ws = g.add(op_kind::lstm, {x.id(), w_x.id(), w_h.id(), b.id()});
  return hidden_of(ws, w_h.shape()[0]);
}

expr gru(expr x, expr w_x, expr w_h, expr b_x, expr b_h) {
  graph& g = same_graph(x, w_x);
  same_graph(x, w_h);
  same_graph(x, b_x);
  same_graph(x, b_h);
  expr ws = g.add(op_kind::gru, {x.id(), w_x.id(), w_h.id(), b_x.id(), b_h.id()});
  return hidden_of(ws, w_h.shape()[0]);
}

namespace {
expr reduce(op_kind k, expr x, std::vector<int64_t> axes, bool keepdims) {
  op_attrs a;
  a.axes = std::move(axes);
  a.keepdims = keepdims;
  return unary(k, x, a);
}
} // namespace

expr sum(expr x, std::vector<int64_t> axes, bool keepdims) { return reduce(op_kind::sum, x, std::move(axes), keepdims); }
expr mean(expr x, std::vector<int64_t> axes, bool keepdims) { return reduce(op_kind::mean, x, std::move(axes), keepdims); }
expr max(expr x, std::vector<int64_t> axes, bool keepdims) { return reduce(op_kind::max, x, std::move(axes), keepdims); }
expr min(expr x, std::vector<int64_t> axes, bool keepdims) { return reduce(op_kind::min, x, std::move(axes), keepdims); }
expr norm(expr x, std::vector<int64_t> axes, bool keepdims) { return reduce(op_kind::norm, x, std::move(axes), keepdims); }
expr argmax(expr x, int64_t axis, bool keepdims) {
  op_attrs a;
  a.axis = axis;
  a.keepdims = keepdims;
  return unary(op_kind::argmax, x, a);
}
expr sum_to_like(expr x, expr ref) { return binary(op_kind::sum_to_like, x, ref); }

expr reshape(expr x, luoshu::shape s) {
  op_attrs a;
  a.target = std::move(s);
  return unary(op_kind::reshape, x, a);
}
expr reshape_like(expr x, expr ref) { return binary(op_kind::reshape_like, x, ref); }
expr transpose(expr x, std::vector<int64_t> perm) {
  if (perm.empty())
    for (int i = x.shape().rank() - 1; i >= 0; --i) perm.push_back(i);
  op_attrs a;
  a.axes = std::move(perm);
  return unary(op_kind::transpose, x, a);
}
expr concat(const std::vector<expr>& xs, int64_t axis) {
  if (xs.empty()) throw luoshu_error("concat of no tensors");
  std::vector<node_id> ids;
  for (auto& x : xs) ids.push_back((same_graph(xs[0], x), x.id()));
  op_attrs a;
  a.axis = axis;
  return xs[0].g().add(op_kind::concat, std::move(ids), a);
}
std::vector<expr> split(expr x, const std::vector<int64_t>& sizes, int64_t axis) {
  int r = x.shape().rank();
  int ax = normalize_axis(axis, r, "split");
  int64_t total = 0;
  for (auto s : sizes) {
    if (s < 0) throw luoshu_error("split sizes must be >= 0");
    total += s;
  }
  if (x.shape()[ax] >= 0 && total != x.shape()[ax])
    throw luoshu_error("split sizes add up to " + std::to_string(total) + " but axis " +
                       std::to_string(ax) + " of '" + x.name() + "' has " + std::to_string(x.shape()[ax]));
  std::vector<expr> out;
  int64_t off = 0;
  for (auto s : sizes) {
    std::vector<int64_t> b(static_cast<size_t>(r), 0), e(static_cast<size_t>(r), INT64_MAX);
    b[static_cast<size_t>(ax)] = off;
    e[static_cast<size_t>(ax)] = off + s;
    out.push_back(slice(x, b, e));
    off += s;
  }
  return out;
}
expr slice(expr x, std::vector<int64_t> begins, std::vector<int64_t> ends) {
  op_attrs a;
  a.axes = std::move(begins);
  a.axes2 = std::move(ends);
  return unary(op_kind::slice, x, a);
}
expr pad(expr x, std::vector<int64_t> before, std::vector<int64_t> after, double value) {
  op_attrs a;
  a.axes = std::move(before);
  a.axes2 = std::move(after);
  a.alpha = value;
  return unary(op_kind::pad, x, a);
}
expr broadcast_to(expr x, luoshu::shape s) {
  op_attrs a;
  a.target = std::move(s);
  return unary(op_kind::broadcast_to, x, a);
}
expr broadcast_like(expr x, expr ref) { return binary(op_kind::broadcast_like, x, ref); }
expr squeeze(expr x, std::vector<int64_t> axes) {
  const auto& s = x.shape();
  std::vector<bool> drop(static_cast<size_t>(s.rank()), false);
  if (axes.empty()) {
    for (int i = 0; i < s.rank(); ++i) drop[static_cast<size_t>(i)] = s[i] == 1;
  } else {
    for (auto a : axes) {
      int ax = normalize_axis(a, s.rank(), "squeeze");
      if (s[ax] != 1 && s[ax] >= 0)
        throw luoshu_error("squeeze: axis " + std::to_string(ax) + " of '" + x.name() + "' " +
                           s.to_string() + " is not 1");
      drop[static_cast<size_t>(ax)] = true;
    }
  }
  shape t;
  int unknown = 0;
  for (int i = 0; i < s.rank(); ++i)
    if (!drop[static_cast<size_t>(i)]) {
      t.dims().push_back(s[i]);
      unknown += s[i] < 0;
    }
  if (unknown > 1) throw luoshu_error("squeeze of '" + x.name() + "' needs at most one unknown dim");
  return reshape(x, t);
}
expr unsqueeze(expr x, std::vector<int64_t> axes) {
  const auto& s = x.shape();
  int r = s.rank() + static_cast<int>(axes.size());
  std::vector<bool> ins(static_cast<size_t>(r), false);
  for (auto a : axes) ins[static_cast<size_t>(normalize_axis(a, r, "unsqueeze"))] = true;
  shape t;
  int j = 0, unknown = 0;
  for (int i = 0; i < r; ++i) {
    if (ins[static_cast<size_t>(i)]) {
      t.dims().push_back(1);
    } else {
      t.dims().push_back(s[j]);
      unknown += s[j] < 0;
      ++j;
    }
  }
  if (unknown > 1) throw luoshu_error("unsqueeze of '" + x.name() + "' needs at most one unknown dim");
  return reshape(x, t);
}
expr gather(expr x, expr indices, int64_t axis) {
  op_attrs a;
  a.axis = axis;
  return binary(op_kind::gather, x, indices, a);
}
expr one_hot(expr indices, int64_t depth, dtype t) {
  op_attrs a;
  a.axis = depth;
  a.to = t;
  return unary(op_kind::one_hot, indices, a);
}

expr embedding(expr table, expr ids) { return binary(op_kind::embedding, table, ids); }
expr embedding_bag(expr table, expr ids, const embedding_bag_options& o) {
  op_attrs a;
  a.flag = o.mean;
  if (o.padding_id) a.axes = {*o.padding_id};
  return binary(op_kind::embedding_bag, table, ids, std::move(a));
}
expr dropout(expr x, double rate, uint64_t seed) {
  op_attrs a;
  a.alpha = rate;
  a.seed = seed;
  return unary(op_kind::dropout, x, a);
}

namespace {
/// A running statistic of batch_norm must be a non-trainable variable: its
/// kernel updates it in place while training.
void require_running_stat(expr v, const char* what) {
  const node& n = v.get();
  if (n.op != op_kind::variable || n.attrs.flag)
    throw luoshu_error(std::string("batch_norm: the ") + what + " '" + n.name +
                       "' must be a non-trainable variable (it is updated in place while training; see "
                       "models::batch_norm_layer), got " +
                       (n.op == op_kind::variable ? std::string("a trainable variable") : "op " + std::string(name(n.op))));
}
} // namespace

expr batch_norm(expr x, expr gamma, expr beta, expr running_mean, expr running_var, const batch_norm_options& o) {
  graph& g = same_graph(x, gamma);
  same_graph(x, beta);
  same_graph(x, running_mean);
  same_graph(x, running_var);
  require_running_stat(running_mean, "running mean");
  require_running_stat(running_var, "running variance");
  op_attrs a;
  a.eps = o.eps;
  a.alpha = o.momentum;
  expr stats = g.add(op_kind::batch_norm_stats, {x.id(), running_mean.id(), running_var.id()}, a);
  return g.add(op_kind::batch_norm, {x.id(), gamma.id(), beta.id(), stats.id()}, a);
}

expr softmax_cross_entropy(expr logits, expr labels) {
  return binary(op_kind::softmax_cross_entropy, logits, labels);
}
expr bce_with_logits(expr logits, expr targets) { return binary(op_kind::bce_with_logits, logits, targets); }
expr mse_loss(expr pred, expr target) { return square(pred - target); }
expr l1_loss(expr pred, expr target) { return abs(pred - target); }
expr huber_loss(expr pred, expr target, double delta) {
  if (!(delta > 0)) throw luoshu_error("huber delta must be > 0");
  expr d = pred - target;
  expr c = clamp(d, -delta, delta);
  // 0.5 c^2 + delta (|d| - |c|): quadratic inside, linear outside, C1 at |d| = delta.
  return square(c) * 0.5 + (abs(d) - abs(c)) * delta;
}
expr accuracy(expr logits, expr labels) { return binary(op_kind::accuracy, logits, labels); }

} // namespace luoshu
