// Embedding lookup (sparse gradient), embedding bags and dropout.
//   embedding(table [n, d...], ids int [...]) -> [..., d...]
//   embedding_bag(table [n, d], ids int [B, L]) -> [B, d]: each row of ids is
//     a bag whose rows are summed (attrs.flag = false) or averaged (true).
//     attrs.axes = {padding_id} or {}: ids equal to the padding id add
//     nothing and are not counted by the mean (a bag of padding only is
//     zero); every other id must be in [0, n). Its table gradient is sparse:
//       indices = embedding_bag_rows(ids) i64 [B * L]: the ids, with each
//         padding position replaced by the first non-padding id of the
//         batch (0 when there is none), so padding touches no extra row;
//       values = embedding_bag_grad(dy, ids) [B * L, d]: dy of the bag times
//         1 (sum) or 1 / count (mean), zero at padding positions.
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

/// The padding id of an embedding_bag node (has = false: none).
void bag_padding(const node& n, bool& has, int64_t& id) {
  if (n.attrs.axes.size() > 1)
    throw luoshu_error("embedding_bag takes at most one padding id, got " + std::to_string(n.attrs.axes.size()));
  has = !n.attrs.axes.empty();
  id = has ? n.attrs.axes[0] : 0;
}

void require_bags(const type_shape& ids) {
  require_integer(ids, "ids");
  if (ids.shape.rank() != 2)
    throw luoshu_error("ids must be [B, L] (rank 2: B bags of L ids each), got " + ids.shape.to_string());
}

// embedding_bag(table [n, d], ids [B, L]) -> [B, d]
type_shape infer_embedding_bag(const node& n, std::span<const type_shape> in) {
  bool has = false;
  int64_t pad = 0;
  bag_padding(n, has, pad);
  require_float(in[0], "table");
  if (in[0].shape.rank() != 2) throw luoshu_error("table must be [rows, dim] (rank 2), got " + in[0].shape.to_string());
  require_bags(in[1]);
  return {in[0].type, shape{in[1].shape[0], in[0].shape[1]}};
}

// embedding_bag_grad(dy [B, d], ids [B, L]) -> [B * L, d]
type_shape infer_embedding_bag_grad(const node& n, std::span<const type_shape> in) {
  bool has = false;
  int64_t pad = 0;
  bag_padding(n, has, pad);
  require_float(in[0], "output gradient");
  require_bags(in[1]);
  if (in[0].shape.rank() != 2 || !dims_agree(in[0].shape[0], in[1].shape[0]))
    throw luoshu_error("output gradient must be [B, dim] for ids " + in[1].shape.to_string() + ", got " +
                       in[0].shape.to_string());
  int64_t b = in[0].shape[0] >= 0 ? in[0].shape[0] : in[1].shape[0], l = in[1].shape[1];
  return {in[0].type, shape{b >= 0 && l >= 0 ? b * l : -1, in[0].shape[1]}};
}

// embedding_bag_rows(ids [B, L]) -> i64 [B * L]
type_shape infer_embedding_bag_rows(const node& n, std::span<const type_shape> in) {
  bool has = false;
  int64_t pad = 0;
  bag_padding(n, has, pad);
  require_bags(in[0]);
  int64_t b = in[0].shape[0], l = in[0].shape[1];
  return {dtype::i64, shape{b >= 0 && l >= 0 ? b * l : -1}};
}

void grad_embedding_bag(grad_ctx& c) {
  if (!c.needs[0]) return;
  const op_attrs& a = c.n().attrs;
  expr ids = c.in(1);
  c.sparse(0, c.g.add(op_kind::embedding_bag_rows, {ids.id()}, a),
           c.g.add(op_kind::embedding_bag_grad, {c.dy.id(), ids.id()}, a));
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
  t.set(op_kind::embedding_bag, 0, infer_embedding_bag, grad_embedding_bag);
  t.set(op_kind::embedding_bag_grad, 0, infer_embedding_bag_grad, nullptr);
  t.set(op_kind::embedding_bag_rows, op_flag_no_grad, infer_embedding_bag_rows, nullptr);
  t.set(op_kind::dropout, 0, infer_dropout, grad_dropout);
  t.set(op_kind::dropout_grad, 0, infer_dropout, grad_dropout);
}

} // namespace luoshu::ops
