// Activations, softmax and their fused gradient ops.
//   leaky_relu: attrs.alpha = negative slope; elu: attrs.alpha;
//   softmax/log_softmax and their grads: attrs.axis.
//   *_grad(dy, t): t is the forward output (relu, sigmoid, tanh, softmax,
//   log_softmax) or the forward input (leaky_relu, elu, gelu).

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

type_shape infer_act(const node&, std::span<const type_shape> in) {
  require_float(in[0], "input");
  return in[0];
}

type_shape infer_act_grad(const node&, std::span<const type_shape> in) {
  require_float(in[0], "gradient");
  require_same_type(in[0], in[1]);
  if (!(in[0].shape == in[1].shape) && in[0].shape.known() && in[1].shape.known())
    throw luoshu_error("gradient and forward tensor shapes differ");
  return in[1];
}

type_shape infer_softmax(const node& n, std::span<const type_shape> in) {
  require_float(in[0], "input");
  normalize_axis(n.attrs.axis, in[0].shape.rank(), "softmax");
  return in[0];
}

type_shape infer_softmax_grad(const node& n, std::span<const type_shape> in) {
  normalize_axis(n.attrs.axis, in[0].shape.rank(), "softmax gradient");
  return infer_act_grad(n, in);
}

expr act_grad(grad_ctx& c, op_kind k, expr t) {
  op_attrs a;
  a.alpha = c.n().attrs.alpha;
  a.axis = c.n().attrs.axis;
  return c.g.add(k, {c.dy.id(), t.id()}, a);
}

void grad_relu(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::relu_grad, c.y())); }
void grad_leaky(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::leaky_relu_grad, c.in(0))); }
void grad_elu(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::elu_grad, c.in(0))); }
void grad_gelu(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::gelu_grad, c.in(0))); }
void grad_sigmoid(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::sigmoid_grad, c.y())); }
void grad_tanh(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::tanh_grad, c.y())); }
void grad_softplus(grad_ctx& c) { c.dense(0, c.dy * sigmoid(c.in(0))); }
void grad_softmax(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::softmax_grad, c.y())); }
void grad_log_softmax(grad_ctx& c) { c.dense(0, act_grad(c, op_kind::log_softmax_grad, c.y())); }

} // namespace

void describe_activation(op_table& t) {
  t.set(op_kind::relu, 0, infer_act, grad_relu);
  t.set(op_kind::leaky_relu, 0, infer_act, grad_leaky);
  t.set(op_kind::elu, 0, infer_act, grad_elu);
  t.set(op_kind::gelu, 0, infer_act, grad_gelu);
  t.set(op_kind::sigmoid, 0, infer_act, grad_sigmoid);
  t.set(op_kind::tanh, 0, infer_act, grad_tanh);
  t.set(op_kind::softplus, 0, infer_act, grad_softplus);
  for (auto k : {op_kind::relu_grad, op_kind::leaky_relu_grad, op_kind::elu_grad,
                 op_kind::gelu_grad, op_kind::sigmoid_grad, op_kind::tanh_grad})
    t.set(k, 0, infer_act_grad, nullptr);
  t.set(op_kind::softmax, 0, infer_softmax, grad_softmax);
  t.set(op_kind::log_softmax, 0, infer_softmax, grad_log_softmax);
  t.set(op_kind::softmax_grad, 0, infer_softmax_grad, nullptr);
  t.set(op_kind::log_softmax_grad, 0, infer_softmax_grad, nullptr);
}

} // namespace luoshu::ops
