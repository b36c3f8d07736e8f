// Reductions. attrs.axes (empty = all), attrs.keepdims; argmax: attrs.axis.
//   sum_to_like(x, ref): sums x down to ref's shape (ref read for shape only).

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

shape reduced_shape(const shape& s, const std::vector<int>& axes, bool keepdims) {
  std::vector<int64_t> out;
  size_t j = 0;
  for (int i = 0; i < s.rank(); ++i) {
    bool reduced = j < axes.size() && axes[j] == i;
    if (reduced) {
      ++j;
      if (keepdims) out.push_back(1);
    } else {
      out.push_back(s[i]);
    }
  }
  return shape(std::move(out));
}

namespace {

type_shape infer_reduce(const node& n, std::span<const type_shape> in) {
  if (in[0].type == dtype::u8 || in[0].type == dtype::f16 || in[0].type == dtype::bf16)
    throw luoshu_error(std::string("cannot reduce ") + name(in[0].type));
  if ((n.op == op_kind::mean || n.op == op_kind::norm) && !is_float(in[0].type))
    throw luoshu_error("mean and norm need a float input");
  auto axes = reduce_axes(n.attrs.axes, in[0].shape.rank());
  return {in[0].type, reduced_shape(in[0].shape, axes, n.attrs.keepdims)};
}

type_shape infer_argmax(const node& n, std::span<const type_shape> in) {
  int r = in[0].shape.rank();
  if (r == 0) throw luoshu_error("argmax of a scalar");
  int axis = normalize_axis(n.attrs.axis, r, "argmax");
  return {dtype::i64, reduced_shape(in[0].shape, {axis}, n.attrs.keepdims)};
}

type_shape infer_sum_to_like(const node&, std::span<const type_shape> in) {
  // ref must broadcast to x: broadcasting them must give x's shape back.
  shape b = broadcast_shapes(in[0].shape, in[1].shape);
  if (b.rank() != in[0].shape.rank())
    throw luoshu_error("cannot sum " + in[0].shape.to_string() + " down to " + in[1].shape.to_string());
  return {in[0].type, in[1].shape};
}

/// dy broadcast back over the reduced axes of node c.
expr spread(grad_ctx& c, expr v, bool mean_scale) {
  const auto& a = c.n().attrs;
  op_attrs b;
  if (!a.keepdims) {
    auto axes = reduce_axes(a.axes, c.in(0).shape().rank());
    b.axes.assign(axes.begin(), axes.end());
  }
  b.flag = mean_scale;
  return c.g.add(op_kind::broadcast_like, {v.id(), c.in(0).id()}, b);
}

void grad_sum(grad_ctx& c) { c.dense(0, spread(c, c.dy, false)); }
void grad_mean(grad_ctx& c) { c.dense(0, spread(c, c.dy, true)); }
void grad_extreme(grad_ctx& c) {
  expr x = c.in(0);
  expr m = mask_like(equal(x, spread(c, c.y(), false)), x);
  const auto& a = c.n().attrs;
  expr count = sum(m, a.axes, a.keepdims);
  c.dense(0, m * spread(c, c.dy / count, false));
}
void grad_norm(grad_ctx& c) { c.dense(0, c.in(0) * spread(c, c.dy / c.y(), false)); }
void grad_sum_to_like(grad_ctx& c) { c.dense(0, broadcast_like(c.dy, c.in(0))); }

} // namespace

void describe_reduce(op_table& t) {
  t.set(op_kind::sum, 0, infer_reduce, grad_sum);
  t.set(op_kind::mean, 0, infer_reduce, grad_mean);
  t.set(op_kind::max, 0, infer_reduce, grad_extreme);
  t.set(op_kind::min, 0, infer_reduce, grad_extreme);
  t.set(op_kind::norm, 0, infer_reduce, grad_norm);
  t.set(op_kind::argmax, op_flag_no_grad, infer_argmax, nullptr);
  t.set(op_kind::sum_to_like, op_flag_shape_only_last, infer_sum_to_like, grad_sum_to_like);
}

} // namespace luoshu::ops
