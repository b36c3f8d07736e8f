// Elementwise ops: shape/dtype inference and gradients.
//   binary ops broadcast NumPy-style; comparisons return u8 (0/1);
//   clamp reads attrs.alpha (low) and attrs.beta (high); cast reads attrs.to.

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

type_shape infer_binary(const node&, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  return {in[0].type, broadcast_shapes(in[0].shape, in[1].shape)};
}

type_shape infer_float_binary(const node& n, std::span<const type_shape> in) {
  require_float(in[0], "input");
  return infer_binary(n, in);
}

type_shape infer_compare(const node&, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  return {dtype::u8, broadcast_shapes(in[0].shape, in[1].shape)};
}

type_shape infer_where(const node&, std::span<const type_shape> in) {
  if (in[0].type != dtype::u8)
    throw luoshu_error(std::string("condition must be u8, got ") + name(in[0].type));
  require_same_type(in[1], in[2]);
  return {in[1].type, broadcast_shapes(in[0].shape, broadcast_shapes(in[1].shape, in[2].shape))};
}

type_shape infer_unary(const node&, std::span<const type_shape> in) { return in[0]; }

type_shape infer_float_unary(const node&, std::span<const type_shape> in) {
  require_float(in[0], "input");
  return in[0];
}

type_shape infer_signed_unary(const node&, std::span<const type_shape> in) {
  if (in[0].type == dtype::u8) throw luoshu_error("not defined for unsigned u8");
  return in[0];
}

type_shape infer_clamp(const node& n, std::span<const type_shape> in) {
  if (n.attrs.alpha > n.attrs.beta)
    throw luoshu_error("clamp bounds are reversed: low " + std::to_string(n.attrs.alpha) +
                       " > high " + std::to_string(n.attrs.beta));
  return in[0];
}

type_shape infer_cast(const node& n, std::span<const type_shape> in) {
  if (n.attrs.to == dtype::f16 || n.attrs.to == dtype::bf16 || in[0].type == dtype::f16 ||
      in[0].type == dtype::bf16)
    throw luoshu_error("f16/bf16 casts are not implemented yet");
  return {n.attrs.to, in[0].shape};
}

void grad_add(grad_ctx& c) {
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy, 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, c.dy, 1));
}
void grad_sub(grad_ctx& c) {
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy, 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, -c.dy, 1));
}
void grad_mul(grad_ctx& c) {
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy * c.in(1), 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, c.dy * c.in(0), 1));
}
void grad_div(grad_ctx& c) {
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy / c.in(1), 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, -(c.dy * c.y() / c.in(1)), 1));
}
void grad_pow(grad_ctx& c) {
  expr a = c.in(0), b = c.in(1);
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy * b * pow(a, b - 1.0), 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, c.dy * c.y() * log(a), 1));
}
void grad_maximum(grad_ctx& c) {
  expr a = c.in(0), b = c.in(1);
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy * mask_like(greater_equal(a, b), c.dy), 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, c.dy * mask_like(less(a, b), c.dy), 1));
}
void grad_minimum(grad_ctx& c) {
  expr a = c.in(0), b = c.in(1);
  if (c.needs[0]) c.dense(0, reduce_like(c, c.dy * mask_like(less_equal(a, b), c.dy), 0));
  if (c.needs[1]) c.dense(1, reduce_like(c, c.dy * mask_like(greater(a, b), c.dy), 1));
}
void grad_where(grad_ctx& c) {
  expr zero = scalar_like(c.dy, 0);
  if (c.needs[1]) c.dense(1, reduce_like(c, where(c.in(0), c.dy, zero), 1));
  if (c.needs[2]) c.dense(2, reduce_like(c, where(c.in(0), zero, c.dy), 2));
}
void grad_neg(grad_ctx& c) { c.dense(0, -c.dy); }
void grad_abs(grad_ctx& c) { c.dense(0, c.dy * sign(c.in(0))); }
void grad_exp(grad_ctx& c) { c.dense(0, c.dy * c.y()); }
void grad_log(grad_ctx& c) { c.dense(0, c.dy / c.in(0)); }
void grad_sqrt(grad_ctx& c) { c.dense(0, c.dy / (c.y() * 2.0)); }
void grad_rsqrt(grad_ctx& c) { c.dense(0, c.dy * c.y() * c.y() * c.y() * -0.5); }
void grad_square(grad_ctx& c) { c.dense(0, c.dy * c.in(0) * 2.0); }
void grad_clamp(grad_ctx& c) {
  expr x = c.in(0);
  const auto& a = c.n().attrs;
  expr lo = scalar_like(x, a.alpha), hi = scalar_like(x, a.beta);
  c.dense(0, c.dy * mask_like(greater_equal(x, lo), x) * mask_like(less_equal(x, hi), x));
}
void grad_cast(grad_ctx& c) {
  if (is_float(c.in(0).type())) c.dense(0, cast(c.dy, c.in(0).type()));
}
void grad_identity(grad_ctx& c) { c.dense(0, c.dy); }

} // namespace

void describe_elementwise(op_table& t) {
  t.set(op_kind::add, 0, infer_binary, grad_add);
  t.set(op_kind::sub, 0, infer_binary, grad_sub);
  t.set(op_kind::mul, 0, infer_binary, grad_mul);
  t.set(op_kind::div, 0, infer_binary, grad_div);
  t.set(op_kind::pow, 0, infer_float_binary, grad_pow);
  t.set(op_kind::maximum, 0, infer_binary, grad_maximum);
  t.set(op_kind::minimum, 0, infer_binary, grad_minimum);
  for (auto k : {op_kind::equal, op_kind::not_equal, op_kind::less, op_kind::less_equal,
                 op_kind::greater, op_kind::greater_equal})
    t.set(k, op_flag_no_grad, infer_compare, nullptr);
  t.set(op_kind::where, 0, infer_where, grad_where);
  t.set(op_kind::neg, 0, infer_signed_unary, grad_neg);
  t.set(op_kind::abs, 0, infer_signed_unary, grad_abs);
  t.set(op_kind::exp, 0, infer_float_unary, grad_exp);
  t.set(op_kind::log, 0, infer_float_unary, grad_log);
  t.set(op_kind::sqrt, 0, infer_float_unary, grad_sqrt);
  t.set(op_kind::rsqrt, 0, infer_float_unary, grad_rsqrt);
  t.set(op_kind::square, 0, infer_unary, grad_square);
  t.set(op_kind::sign, op_flag_no_grad, infer_signed_unary, nullptr);
  t.set(op_kind::clamp, 0, infer_clamp, grad_clamp);
  t.set(op_kind::cast, 0, infer_cast, grad_cast);
  t.set(op_kind::identity, 0, infer_unary, grad_identity);
  t.set(op_kind::stop_gradient, op_flag_no_grad, infer_unary, nullptr);
}

} // namespace luoshu::ops
