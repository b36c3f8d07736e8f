// Embedding lookup (sparse gradient) and dropout.
//   embedding(table [n, d...], ids int [...]) -> [..., d...]
//   dropout / dropout_grad: attrs.alpha = rate, attrs.seed; the mask is a
//   pure function of (seed, step, element index), so the gradient op
//   recomputes it instead of keeping it alive.

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

type_shape infer_embedding(const node&, std::span<const type_shape> in) {
  require_integer(in[1], "ids");
  if (in[0].shape.rank() < 2) throw luoshu_error("table needs rank >= 2 ([rows, dim...])");
  shape out = in[1].shape;
  for (int i = 1; i < in[0].shape.rank(); ++i) out.dims().push_back(in[0].shape[i]);
  return {in[0].type, out};
}

type_shape infer_dropout(const node& n, std::span<const type_shape> in) {
  require_float(in[0], "input");
  if (!(n.attrs.alpha >= 0 && n.attrs.alpha < 1))
    throw luoshu_error("dropout rate must be in [0, 1), got " + std::to_string(n.attrs.alpha));
  return in[0];
}

void grad_embedding(grad_ctx& c) {
  if (!c.needs[0]) return;
  expr table = c.in(0);
  shape row_shape{-1};
  for (int i = 1; i < table.shape().rank(); ++i) row_shape.dims().push_back(table.shape()[i]);
  expr ids = c.in(1);
  expr flat = reshape(ids.type() == dtype::i64 ? ids : cast(ids, dtype::i64), shape{-1});
  c.sparse(0, flat, reshape(c.dy, row_shape));
}

void grad_dropout(grad_ctx& c) {
  op_attrs a;
  a.alpha = c.n().attrs.alpha;
  a.seed = c.n().attrs.seed;
  c.dense(0, c.g.add(op_kind::dropout_grad, {c.dy.id()}, a));
}

} // namespace

void describe_embedding(op_table& t) {
  t.set(op_kind::embedding, 0, infer_embedding, grad_embedding);
  t.set(op_kind::dropout, 0, infer_dropout, grad_dropout);
  t.set(op_kind::dropout_grad, 0, infer_dropout, grad_dropout);
}

} // namespace luoshu::ops
