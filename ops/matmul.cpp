// Matrix products. attrs.trans_a / trans_b transpose the operands.
//   matmul: [m, k] x [k, n]; batch_matmul: [b, m, k] x [b, k, n];
//   linear(x [.., in], w [in, out], b [out]) = x w + b.

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

type_shape infer_matmul(const node& n, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  if (!is_float(in[0].type)) throw luoshu_error("matmul needs float inputs");
  require_rank(in[0], 2, "a");
  require_rank(in[1], 2, "b");
  int64_t m = n.attrs.trans_a ? in[0].shape[1] : in[0].shape[0];
  int64_t ka = n.attrs.trans_a ? in[0].shape[0] : in[0].shape[1];
  int64_t kb = n.attrs.trans_b ? in[1].shape[1] : in[1].shape[0];
  int64_t nn = n.attrs.trans_b ? in[1].shape[0] : in[1].shape[1];
  if (!dims_agree(ka, kb))
    throw luoshu_error("inner dimensions differ: " + std::to_string(ka) + " vs " + std::to_string(kb));
  return {in[0].type, shape{m, nn}};
}

type_shape infer_batch_matmul(const node& n, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  if (!is_float(in[0].type)) throw luoshu_error("batch_matmul needs float inputs");
  require_rank(in[0], 3, "a");
  require_rank(in[1], 3, "b");
  if (!dims_agree(in[0].shape[0], in[1].shape[0])) throw luoshu_error("batch sizes differ");
  int64_t m = n.attrs.trans_a ? in[0].shape[2] : in[0].shape[1];
  int64_t ka = n.attrs.trans_a ? in[0].shape[1] : in[0].shape[2];
  int64_t kb = n.attrs.trans_b ? in[1].shape[2] : in[1].shape[1];
  int64_t nn = n.attrs.trans_b ? in[1].shape[1] : in[1].shape[2];
  if (!dims_agree(ka, kb))
    throw luoshu_error("inner dimensions differ: " + std::to_string(ka) + " vs " + std::to_string(kb));
  int64_t b = in[0].shape[0] >= 0 ? in[0].shape[0] : in[1].shape[0];
  return {in[0].type, shape{b, m, nn}};
}

type_shape infer_linear(const node&, std::span<const type_shape> in) {
  require_same_type(in[0], in[1]);
  require_same_type(in[0], in[2]);
  if (!is_float(in[0].type)) throw luoshu_error("linear needs float inputs");
  if (in[0].shape.rank() < 1) throw luoshu_error("x needs rank >= 1");
  require_rank(in[1], 2, "weight");
  require_rank(in[2], 1, "bias");
  int64_t k = in[0].shape[in[0].shape.rank() - 1];
  if (!dims_agree(k, in[1].shape[0]))
    throw luoshu_error("x has " + std::to_string(k) + " features, weight expects " +
                       std::to_string(in[1].shape[0]));
  if (!dims_agree(in[1].shape[1], in[2].shape[0]))
    throw luoshu_error("weight has " + std::to_string(in[1].shape[1]) + " outputs, bias " +
                       std::to_string(in[2].shape[0]));
  shape out = in[0].shape;
  out[out.rank() - 1] = in[1].shape[1];
  return {in[0].type, out};
}

void grad_matmul(grad_ctx& c) {
  expr a = c.in(0), b = c.in(1), dy = c.dy;
  bool ta = c.n().attrs.trans_a, tb = c.n().attrs.trans_b;
  if (c.needs[0])
    c.dense(0, ta ? matmul(b, dy, tb, true) : matmul(dy, b, false, !tb));
  if (c.needs[1])
    c.dense(1, tb ? matmul(dy, a, true, ta) : matmul(a, dy, !ta, false));
}

void grad_batch_matmul(grad_ctx& c) {
  expr a = c.in(0), b = c.in(1), dy = c.dy;
  bool ta = c.n().attrs.trans_a, tb = c.n().attrs.trans_b;
  if (c.needs[0])
    c.dense(0, ta ? batch_matmul(b, dy, tb, true) : batch_matmul(dy, b, false, !tb));
  if (c.needs[1])
    c.dense(1, tb ? batch_matmul(dy, a, true, ta) : batch_matmul(a, dy, !ta, false));
}

void grad_linear(grad_ctx& c) {
  expr x = c.in(0), w = c.in(1), dy = c.dy;
  int r = x.shape().rank();
  expr x2 = r == 2 ? x : reshape(x, shape{-1, w.shape()[0]});
  expr dy2 = r == 2 ? dy : reshape(dy, shape{-1, w.shape()[1]});
  if (c.needs[0]) {
    expr dx = matmul(dy2, w, false, true);
    c.dense(0, r == 2 ? dx : reshape_like(dx, x));
  }
  if (c.needs[1]) c.dense(1, matmul(x2, dy2, true, false));
  if (c.needs[2]) c.dense(2, sum(dy2, {0}));
}

} // namespace

void describe_matmul(op_table& t) {
  t.set(op_kind::matmul, 0, infer_matmul, grad_matmul);
  t.set(op_kind::batch_matmul, 0, infer_batch_matmul, grad_batch_matmul);
  t.set(op_kind::linear, 0, infer_linear, grad_linear);
}

} // namespace luoshu::ops
