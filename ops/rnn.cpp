// Recurrent layers over whole sequences: single-layer, unidirectional LSTM
// and GRU with a zero initial state, batch-first x [B, T, I], gates laid out
// as PyTorch's.
//
//   lstm(x, w_x [I, 4H], w_h [H, 4H], b [4H]) -> ws [B, T, 6H]
//     each row of the workspace holds, for one (batch, step):
//       h_t | c_t | i | f | g | o   (gate activations, after sigmoid/tanh)
//     i, f, o = sigmoid, g = tanh of x_t w_x + h_{t-1} w_h + b (in blocks
//     of H columns), c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
//   gru(x, w_x [I, 3H], w_h [H, 3H], b_x [3H], b_h [3H]) -> ws [B, T, 5H]
//       h_t | r | z | n | hn,   hn = h_{t-1} w_hn + b_hn,
//     r, z = sigmoid(x_t w_x + b_x + h_{t-1} w_h + b_h) (their blocks),
//     n = tanh(x_t w_xn + b_xn + r hn), h_t = (1 - z) n + z h_{t-1}.
// The builder (graph/builder.cpp) slices h out of the workspace; the rest is
// what backward reads, so backward never recomputes the forward.
//
// Backward helpers (no attributes unless listed):
//   lstm_grad(dy, ws, w_h) -> dG [B, T, 4H]: the gradient of the gates'
//     pre-activations (= of x_t w_x + b and of h_{t-1} w_h). dy is either the
//     gradient of h alone [B, T, H] (what the builder's slice passes on) or
//     of the whole workspace [B, T, 6H] (every block then contributes).
//   gru_grad(dy, ws, w_h) -> dG [B, T, 6H] = dGx | dGh: the gradients of
//     x_t w_x + b_x and of h_{t-1} w_h + b_h (they differ in the n block:
//     dGh_n = r dGx_n). dy: [B, T, H] or [B, T, 5H].
//   rnn_input_grad(dG, w_x, x_like) -> dx = dG[.., :G] w_x^T, G = w_x cols.
//   rnn_weight_grad(a, dG, w_like) -> dw [K, G]:
//     flag false: a = x,  dw = sum over (b, t) of x_t^T dG_t[:G];
//     flag true:  a = ws, dw = sum over (b, t >= 1) of h_{t-1}^T dG_t[-G:]
//                 (h: the first K columns of each workspace row).
//   rnn_bias_grad(dG, b_like) -> db [G]: column sums of dG[.., :G]
//     (flag false) or dG[.., -G:] (flag true).

#include <climits>

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

std::string dim_str(int64_t d) { return d < 0 ? "?" : std::to_string(d); }

/// Checks x [B, T, I], w_x [I, gates H], w_h [H, gates H] and each bias
/// [gates H]; returns H.
int64_t check_rnn(std::span<const type_shape> in, int gates, const char* gate_names) {
  const type_shape &x = in[0], &wx = in[1], &wh = in[2];
  for (size_t k = 1; k < in.size(); ++k) require_same_type(x, in[k]);
  require_float(x, "x");
  if (x.shape.rank() != 3) throw luoshu_error("x must be [batch, steps, features] (rank 3), got " + x.shape.to_string());
  if (wh.shape.rank() != 2)
    throw luoshu_error("w_h must be [hidden, " + std::to_string(gates) + " x hidden] (rank 2), got " +
                       wh.shape.to_string());
  const int64_t h = wh.shape[0];
  if (h < 0) throw luoshu_error("the hidden size (w_h's rows) must be known, got w_h " + wh.shape.to_string());
  if (h == 0) throw luoshu_error("the hidden size must be at least 1, got w_h " + wh.shape.to_string());
  const int64_t g = gates * h;
  const std::string want = std::to_string(gates) + " x hidden = " + std::to_string(g) + " columns (gates " +
                           gate_names + ")";
  if (!dims_agree(wh.shape[1], g))
    throw luoshu_error("w_h " + wh.shape.to_string() + " must have " + want);
  if (wx.shape.rank() != 2)
    throw luoshu_error("w_x must be [features, " + std::to_string(gates) + " x hidden] (rank 2), got " +
                       wx.shape.to_string());
  if (!dims_agree(wx.shape[1], g)) throw luoshu_error("w_x " + wx.shape.to_string() + " must have " + want);
  if (!dims_agree(wx.shape[0], x.shape[2]))
    throw luoshu_error("x " + x.shape.to_string() + " has " + dim_str(x.shape[2]) + " features but w_x " +
                       wx.shape.to_string() + " expects " + dim_str(wx.shape[0]));
  for (size_t k = 3; k < in.size(); ++k) {
    const shape& b = in[k].shape;
    if (b.rank() != 1 || !dims_agree(b[0], g))
      throw luoshu_error(std::string(k == 3 ? "bias" : "recurrent bias") + " must be [" + std::to_string(g) +
                         "] (" + want + "), got " + b.to_string());
  }
  return h;
}

type_shape infer_lstm(const node&, std::span<const type_shape> in) {
  int64_t h = check_rnn(in, 4, "i, f, g, o");
  return {in[0].type, shape{in[0].shape[0], in[0].shape[1], 6 * h}};
}

type_shape infer_gru(const node&, std::span<const type_shape> in) {
  int64_t h = check_rnn(in, 3, "r, z, n");
  return {in[0].type, shape{in[0].shape[0], in[0].shape[1], 5 * h}};
}

/// Two [B, T, ..] tensors agree in their batch and step dims.
void require_same_steps(const shape& a, const shape& b, const char* what_a, const char* what_b) {
  if (a.rank() != 3 || b.rank() != 3 || !dims_agree(a[0], b[0]) || !dims_agree(a[1], b[1]))
    throw luoshu_error(std::string(what_a) + " " + a.to_string() + " and " + what_b + " " + b.to_string() +
                       " must both be [batch, steps, ..] with the same batch and steps");
}

// lstm_grad / gru_grad(dy, ws, w_h)
type_shape infer_cell_grad(const node& n, std::span<const type_shape> in) {
  const bool is_lstm = n.op == op_kind::lstm_grad;
  require_same_type(in[0], in[1]);
  require_same_type(in[0], in[2]);
  require_rank(in[2], 2, "w_h");
  const int64_t h = in[2].shape[0];
  if (h <= 0) throw luoshu_error("w_h " + in[2].shape.to_string() + " needs a known hidden size >= 1");
  const int64_t width = (is_lstm ? 6 : 5) * h;
  require_same_steps(in[0].shape, in[1].shape, "output gradient", "workspace");
  if (!dims_agree(in[1].shape[2], width))
    throw luoshu_error("workspace " + in[1].shape.to_string() + " must have " + std::to_string(width) +
                       " columns for hidden size " + std::to_string(h));
  int64_t d = in[0].shape[2];
  if (d >= 0 && d != h && d != width)
    throw luoshu_error("output gradient " + in[0].shape.to_string() + " must have " + std::to_string(h) +
                       " (h) or " + std::to_string(width) + " (the workspace) columns");
  return {in[0].type, shape{in[1].shape[0], in[1].shape[1], (is_lstm ? 4 : 6) * h}};
}

/// The gate columns G of a [K, G] weight or [G] bias `like`, checked
/// against dG's width.
int64_t gate_cols(const type_shape& dg, const type_shape& like) {
  int64_t g = like.shape[like.shape.rank() - 1];
  if (g < 0 || (dg.shape[2] >= 0 && dg.shape[2] < g))
    throw luoshu_error("gate gradient " + dg.shape.to_string() + " has fewer than the " + dim_str(g) +
                       " gate columns of " + like.shape.to_string());
  return g;
}

// rnn_input_grad(dG, w_x, x_like)
type_shape infer_input_grad(const node&, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  require_same_type(in[0], in[2]);
  require_rank(in[1], 2, "w_x");
  require_same_steps(in[0].shape, in[2].shape, "gate gradient", "x");
  gate_cols(in[0], in[1]);
  if (!dims_agree(in[1].shape[0], in[2].shape[2]))
    throw luoshu_error("w_x " + in[1].shape.to_string() + " does not match x " + in[2].shape.to_string());
  return in[2];
}

// rnn_weight_grad(a, dG, w_like)
type_shape infer_weight_grad(const node& n, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  require_same_type(in[0], in[2]);
  require_rank(in[2], 2, "weight");
  require_same_steps(in[0].shape, in[1].shape, n.attrs.flag ? "workspace" : "x", "gate gradient");
  gate_cols(in[1], in[2]);
  const int64_t k = in[2].shape[0], a = in[0].shape[2];
  if (n.attrs.flag ? (a >= 0 && a < k) : !dims_agree(a, k))
    throw luoshu_error("weight " + in[2].shape.to_string() + " does not match " + in[0].shape.to_string());
  return in[2];
}

// rnn_bias_grad(dG, b_like)
type_shape infer_bias_grad(const node&, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  require_rank(in[0], 3, "gate gradient");
  require_rank(in[1], 1, "bias");
  gate_cols(in[0], in[1]);
  return in[1];
}

/// The gradient of the h block alone when dy is the builder's slice of it
/// (a slice_grad of exactly columns [0, H) of this node's workspace), so
/// backward reads [B, T, H] instead of a mostly zero [B, T, width]; dy
/// itself otherwise.
expr hidden_gradient(grad_ctx& c, int64_t h) {
  const node& d = c.dy.get();
  if (d.op != op_kind::slice_grad || d.inputs[1] != c.id) return c.dy;
  const std::vector<int64_t> begins{0, 0, 0}, ends{INT64_MAX, INT64_MAX, h};
  if (d.attrs.axes != begins || d.attrs.axes2 != ends) return c.dy;
  return expr(&c.g, d.inputs[0]);
}

expr weight_grad(graph& g, expr a, expr dg, expr like, bool recurrent) {
  op_attrs at;
  at.flag = recurrent;
  return g.add(op_kind::rnn_weight_grad, {a.id(), dg.id(), like.id()}, std::move(at));
}

expr bias_grad(graph& g, expr dg, expr like, bool recurrent) {
  op_attrs at;
  at.flag = recurrent;
  return g.add(op_kind::rnn_bias_grad, {dg.id(), like.id()}, std::move(at));
}

void grad_rnn(grad_ctx& c) {
  const bool is_lstm = c.n().op == op_kind::lstm;
  expr x = c.in(0), wx = c.in(1), wh = c.in(2), ws = c.y();
  expr dy = hidden_gradient(c, wh.shape()[0]);
  expr dg = c.g.add(is_lstm ? op_kind::lstm_grad : op_kind::gru_grad, {dy.id(), ws.id(), wh.id()});
  if (c.needs[0]) c.dense(0, c.g.add(op_kind::rnn_input_grad, {dg.id(), wx.id(), x.id()}));
  if (c.needs[1]) c.dense(1, weight_grad(c.g, x, dg, wx, false));
  if (c.needs[2]) c.dense(2, weight_grad(c.g, ws, dg, wh, true));
  if (c.needs[3]) c.dense(3, bias_grad(c.g, dg, c.in(3), false));
  if (!is_lstm && c.needs[4]) c.dense(4, bias_grad(c.g, dg, c.in(4), true));
}

} // namespace

void describe_rnn(op_table& t) {
  t.set(op_kind::lstm, 0, infer_lstm, grad_rnn);
  t.set(op_kind::gru, 0, infer_gru, grad_rnn);
  t.set(op_kind::lstm_grad, 0, infer_cell_grad, nullptr);
  t.set(op_kind::gru_grad, 0, infer_cell_grad, nullptr);
  t.set(op_kind::rnn_input_grad, op_flag_shape_only_last, infer_input_grad, nullptr);
  t.set(op_kind::rnn_weight_grad, op_flag_shape_only_last, infer_weight_grad, nullptr);
  t.set(op_kind::rnn_bias_grad, op_flag_shape_only_last, infer_bias_grad, nullptr);
}

} // namespace luoshu::ops
