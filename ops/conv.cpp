// 2-d convolution over NCHW inputs and OIHW filters (attributes: see
// ops/window.hpp): conv2d(x, w) or conv2d(x, w, b) with a per-output-channel
// bias b [O] added inside the convolution (oneDNN's bias on the CPU: no
// separate broadcast add over the activation, forward or backward).
// Backward helpers:
//   conv2d_input_grad(dy, w, x_like): the gradient w.r.t. x (x read for its shape);
//   conv2d_filter_grad(x, dy, w_like): the gradient w.r.t. w (w read for its shape);
//   conv2d_bias_grad(dy): the gradient w.r.t. b, dy summed over N, H and W.

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"
#include "ops/window.hpp"

namespace luoshu::ops {

namespace {

std::string dim_str(int64_t d) { return d < 0 ? "?" : std::to_string(d); }

/// The output shape of conv2d(x, w) with n's attributes, after checking
/// ranks, dtypes, channels, groups and sizes.
shape conv_out_shape(const node& nd, const type_shape& x, const type_shape& w) {
  require_same_type(x, w);
  require_float(x, "input");
  if (x.shape.rank() != 4) throw luoshu_error("input must be [N, C, H, W] (rank 4), got " + x.shape.to_string());
  if (w.shape.rank() != 4)
    throw luoshu_error("filter must be [O, C/groups, KH, KW] (rank 4), got " + w.shape.to_string());
  window_geom g;
  read_window_attrs(nd.attrs.axes, g);
  int64_t groups = nd.attrs.axis;
  if (groups < 1 || groups > max_window_attr) throw luoshu_error("groups must be >= 1, got " + std::to_string(groups));
  int64_t c = x.shape[1], o = w.shape[0], kh = w.shape[2], kw = w.shape[3];
  if (c >= 0 && c % groups != 0)
    throw luoshu_error("groups " + std::to_string(groups) + " do not divide the " + std::to_string(c) +
                       " input channels");
  if (o >= 0 && o % groups != 0)
    throw luoshu_error("groups " + std::to_string(groups) + " do not divide the " + std::to_string(o) +
                       " output channels (filter " + w.shape.to_string() + ")");
  if (c >= 0 && w.shape[1] >= 0 && w.shape[1] * groups != c)
    throw luoshu_error("channel mismatch: input has " + std::to_string(c) + " channels, filter " +
                       w.shape.to_string() + " expects " + dim_str(w.shape[1]) + " x " + std::to_string(groups) +
                       " groups");
  if (kh == 0 || kw == 0) throw luoshu_error("filter " + w.shape.to_string() + " has an empty kernel");
  if (kh < 0 || kw < 0) throw luoshu_error("filter kernel size must be known, got " + w.shape.to_string());
  if (kh > max_window_attr || kw > max_window_attr)
    throw luoshu_error("filter " + w.shape.to_string() + " has a kernel larger than 2^30");
  return shape{x.shape[0], o, window_out(x.shape[2], kh, g.sh, g.ph, g.dh, "height"),
               window_out(x.shape[3], kw, g.sw, g.pw, g.dw, "width")};
}

void require_like(const shape& got, const shape& want, const char* what) {
  bool ok = got.rank() == want.rank();
  for (int i = 0; ok && i < got.rank(); ++i) ok = dims_agree(got[i], want[i]);
  if (!ok)
    throw luoshu_error(std::string(what) + " " + got.to_string() + " does not match the forward output " +
                       want.to_string());
}

type_shape infer_conv2d(const node& n, std::span<const type_shape> in) {
  if (in.size() != 2 && in.size() != 3)
    throw luoshu_error("takes x, w and an optional bias (2 or 3 inputs), got " + std::to_string(in.size()));
  shape y = conv_out_shape(n, in[0], in[1]);
  if (in.size() == 3) {
    require_same_type(in[0], in[2]);
    const shape& b = in[2].shape;
    if (b.rank() != 1 || !dims_agree(b[0], y[1]))
      throw luoshu_error("bias must be [" + dim_str(y[1]) + "] (one per output channel of filter " +
                         in[1].shape.to_string() + "), got " + b.to_string());
  }
  return {in[0].type, y};
}

// conv2d_bias_grad(dy)
type_shape infer_conv2d_bias_grad(const node&, std::span<const type_shape> in) {
  require_float(in[0], "output gradient");
  if (in[0].shape.rank() != 4)
    throw luoshu_error("output gradient must be [N, O, H, W] (rank 4), got " + in[0].shape.to_string());
  return {in[0].type, shape{in[0].shape[1]}};
}

// conv2d_input_grad(dy, w, x_like)
type_shape infer_conv2d_input_grad(const node& n, std::span<const type_shape> in) {
  require_same_type(in[0], in[2]);
  require_like(in[0].shape, conv_out_shape(n, in[2], in[1]), "output gradient");
  return in[2];
}

// conv2d_filter_grad(x, dy, w_like)
type_shape infer_conv2d_filter_grad(const node& n, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  require_like(in[1].shape, conv_out_shape(n, in[0], in[2]), "output gradient");
  return in[2];
}

void grad_conv2d(grad_ctx& c) {
  const op_attrs& a = c.n().attrs;
  expr x = c.in(0), w = c.in(1), dy = c.dy;
  if (c.needs[0]) c.dense(0, c.g.add(op_kind::conv2d_input_grad, {dy.id(), w.id(), x.id()}, a));
  if (c.needs[1]) c.dense(1, c.g.add(op_kind::conv2d_filter_grad, {x.id(), dy.id(), w.id()}, a));
  if (c.n().inputs.size() == 3 && c.needs[2]) c.dense(2, c.g.add(op_kind::conv2d_bias_grad, {dy.id()}));
}

} // namespace

void describe_conv(op_table& t) {
  t.set(op_kind::conv2d, 0, infer_conv2d, grad_conv2d);
  t.set(op_kind::conv2d_input_grad, op_flag_shape_only_last, infer_conv2d_input_grad, nullptr);
  t.set(op_kind::conv2d_filter_grad, op_flag_shape_only_last, infer_conv2d_filter_grad, nullptr);
  t.set(op_kind::conv2d_bias_grad, 0, infer_conv2d_bias_grad, nullptr);
}

} // namespace luoshu::ops
