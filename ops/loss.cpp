// Losses and metrics.
//   softmax_cross_entropy(logits [n, c], labels int [n]) -> [n]
//   softmax_cross_entropy_grad(logits, labels, dy [n]) -> [n, c]
//   bce_with_logits(logits, targets) -> elementwise, same shape
//   accuracy(logits [n, c], labels int [n]) -> f32 scalar

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

void check_logits_labels(std::span<const type_shape> in) {
  require_float(in[0], "logits");
  require_rank(in[0], 2, "logits");
  require_integer(in[1], "labels");
  require_rank(in[1], 1, "labels");
  if (!dims_agree(in[0].shape[0], in[1].shape[0]))
    throw luoshu_error("logits have " + std::to_string(in[0].shape[0]) + " rows, labels " +
                       std::to_string(in[1].shape[0]));
}

type_shape infer_sce(const node&, std::span<const type_shape> in) {
  check_logits_labels(in);
  int64_t n = in[0].shape[0] >= 0 ? in[0].shape[0] : in[1].shape[0];
  return {in[0].type, shape{n}};
}

type_shape infer_sce_grad(const node&, std::span<const type_shape> in) {
  check_logits_labels(in);
  require_same_type(in[0], in[2]);
  require_rank(in[2], 1, "dy");
  return in[0];
}

type_shape infer_bce(const node&, std::span<const type_shape> in) {
  require_float(in[0], "logits");
  require_same_type(in[0], in[1]);
  if (!(in[0].shape == in[1].shape) && in[0].shape.known() && in[1].shape.known())
    throw luoshu_error("logits and targets need the same shape");
  return in[0];
}

type_shape infer_accuracy(const node&, std::span<const type_shape> in) {
  check_logits_labels(in);
  return {dtype::f32, shape{}};
}

void grad_sce(grad_ctx& c) {
  if (!c.needs[0]) return;
  c.dense(0, c.g.add(op_kind::softmax_cross_entropy_grad, {c.in(0).id(), c.in(1).id(), c.dy.id()}));
}

void grad_bce(grad_ctx& c) {
  if (c.needs[0]) c.dense(0, c.dy * (sigmoid(c.in(0)) - c.in(1)));
  if (c.needs[1]) c.dense(1, -(c.dy * c.in(0)));
}

} // namespace

void describe_loss(op_table& t) {
  t.set(op_kind::softmax_cross_entropy, 0, infer_sce, grad_sce);
  t.set(op_kind::softmax_cross_entropy_grad, 0, infer_sce_grad, nullptr);
  t.set(op_kind::bce_with_logits, 0, infer_bce, grad_bce);
  t.set(op_kind::accuracy, op_flag_no_grad, infer_accuracy, nullptr);
}

} // namespace luoshu::ops
