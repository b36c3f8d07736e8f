// 2-d max and average pooling over NCHW inputs (attributes: see
// ops/window.hpp; dilation must be 1, padding at most half the kernel, as
// in PyTorch). Output sizes round down (no ceil mode).
//   max_pool2d: padding never wins; the gradient goes to the first largest
//     element of each window (row-major), as in PyTorch.
//   avg_pool2d: flag = count_include_pad (PyTorch's default true: the
//     divisor is always kh * kw; false: only the input elements counted).
// Backward helpers:
//   max_pool2d_grad(dy, x): recomputes each window's argmax from x;
//   avg_pool2d_grad(dy, x_like): x read for its shape.

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"
#include "ops/window.hpp"

namespace luoshu::ops {

namespace {

shape pool_out_shape(const node& nd, const type_shape& x) {
  require_float(x, "input");
  if (x.shape.rank() != 4) throw luoshu_error("input must be [N, C, H, W] (rank 4), got " + x.shape.to_string());
  window_geom g;
  read_window_attrs(nd.attrs.axes, g);
  if (g.dh != 1 || g.dw != 1) throw luoshu_error("pooling supports dilation 1 only");
  const auto& k = nd.attrs.axes2;
  if (k.size() != 2) throw luoshu_error("pooling needs a kernel {kernel_h, kernel_w}, got " + std::to_string(k.size()) + " values");
  for (auto v : k)
    if (v < 1 || v > max_window_attr) throw luoshu_error("kernel sizes must be in [1, 2^30], got " + std::to_string(v));
  if (2 * g.ph > k[0] || 2 * g.pw > k[1])
    throw luoshu_error("padding (" + std::to_string(g.ph) + ", " + std::to_string(g.pw) +
                       ") must be at most half the kernel (" + std::to_string(k[0]) + ", " + std::to_string(k[1]) + ")");
  if (x.shape[2] == 0 || x.shape[3] == 0)
    throw luoshu_error("cannot pool an empty image " + x.shape.to_string());
  return shape{x.shape[0], x.shape[1], window_out(x.shape[2], k[0], g.sh, g.ph, 1, "height"),
               window_out(x.shape[3], k[1], g.sw, g.pw, 1, "width")};
}

type_shape infer_pool(const node& n, std::span<const type_shape> in) { return {in[0].type, pool_out_shape(n, in[0])}; }

// max_pool2d_grad(dy, x), avg_pool2d_grad(dy, x_like)
type_shape infer_pool_grad(const node& n, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  shape want = pool_out_shape(n, in[1]);
  const shape& got = in[0].shape;
  bool ok = got.rank() == 4;
  for (int i = 0; ok && i < 4; ++i) ok = dims_agree(got[i], want[i]);
  if (!ok)
    throw luoshu_error("output gradient " + got.to_string() + " does not match the forward output " + want.to_string());
  return in[1];
}

void grad_max_pool(grad_ctx& c) {
  c.dense(0, c.g.add(op_kind::max_pool2d_grad, {c.dy.id(), c.in(0).id()}, c.n().attrs));
}
void grad_avg_pool(grad_ctx& c) {
  c.dense(0, c.g.add(op_kind::avg_pool2d_grad, {c.dy.id(), c.in(0).id()}, c.n().attrs));
}

} // namespace

void describe_pool(op_table& t) {
  t.set(op_kind::max_pool2d, 0, infer_pool, grad_max_pool);
  t.set(op_kind::avg_pool2d, 0, infer_pool, grad_avg_pool);
  t.set(op_kind::max_pool2d_grad, 0, infer_pool_grad, nullptr);
  t.set(op_kind::avg_pool2d_grad, op_flag_shape_only_last, infer_pool_grad, nullptr);
}

} // namespace luoshu::ops
