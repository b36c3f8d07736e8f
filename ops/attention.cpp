// Scaled dot-product attention probabilities: shape inference and gradient
// (the op's definition and attributes are in ops/attention.hpp).

#include "ops/attention.hpp"

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

std::string dim_str(int64_t d) { return d < 0 ? "?" : std::to_string(d); }

type_shape infer_attention_probs(const node& n, std::span<const type_shape> in) {
  if (in.size() != 2 && in.size() != 3)
    throw luoshu_error("takes q, k and an optional mask (2 or 3 inputs), got " + std::to_string(in.size()));
  const type_shape &q = in[0], &k = in[1];
  require_float(q, "q");
  if (k.type != q.type) throw luoshu_error(std::string("k dtype ") + name(k.type) + " differs from q's " + name(q.type));
  if (q.shape.rank() != 4) throw luoshu_error("q must be [B, heads, Tq, d] (rank 4), got " + q.shape.to_string());
  if (k.shape.rank() != 4) throw luoshu_error("k must be [B, heads, Tk, d] (rank 4), got " + k.shape.to_string());
  const char* what[] = {"batch sizes", "head counts", "", "head sizes (d)"};
  for (int i : {0, 1, 3})
    if (!dims_agree(q.shape[i], k.shape[i]))
      throw luoshu_error(std::string(what[i]) + " differ: q " + q.shape.to_string() + ", k " + k.shape.to_string());
  double scale = n.attrs.alpha;
  if (!(scale > 0) || !std::isfinite(scale))
    throw luoshu_error("scale must be finite and > 0, got " + std::to_string(scale));
  int64_t b = q.shape[0] >= 0 ? q.shape[0] : k.shape[0], h = q.shape[1] >= 0 ? q.shape[1] : k.shape[1];
  shape out{b, h, q.shape[2], k.shape[2]};
  if (in.size() == 3) {
    const type_shape& m = in[2];
    if (m.type != dtype::u8 && m.type != q.type)
      throw luoshu_error(std::string("mask must be u8 (boolean, nonzero = attend) or ") + name(q.type) +
                         " (added to the scores), got " + name(m.type));
    if (m.shape.rank() > 4)
      throw luoshu_error("mask " + m.shape.to_string() + " has rank > 4; it must broadcast to [B, heads, Tq, Tk] " +
                         out.to_string());
    for (int d = m.shape.rank() - 1, o = 3; d >= 0; --d, --o) {
      int64_t md = m.shape[d];
      if (md != 1 && !dims_agree(md, out[o]))
        throw luoshu_error("mask " + m.shape.to_string() + " does not broadcast to the scores [B, heads, Tq, Tk] " +
                           out.to_string() + " (dim " + std::to_string(d) + ": " + dim_str(md) + " vs " +
                           dim_str(out[o]) + ")");
    }
  }
  return {q.type, out};
}

void grad_attention_probs(grad_ctx& c) {
  const op_attrs& a = c.n().attrs;
  expr q = c.in(0), k = c.in(1), p = c.y();
  op_attrs sa;
  sa.axis = -1;
  expr ds = c.g.add(op_kind::softmax_grad, {c.dy.id(), p.id()}, sa); // d(scaled, masked scores)
  if (c.needs[0] || c.needs[1]) {
    int64_t tq = q.shape()[2], tk = k.shape()[2], d = q.shape()[3];
    if (tq < 0 || tk < 0 || d < 0)
      throw luoshu_error("the attention gradient needs known sequence lengths and head size, got q " +
                         q.shape().to_string() + ", k " + k.shape().to_string());
    expr ds3 = reshape(ds, shape{-1, tq, tk});
    if (c.needs[0]) c.dense(0, reshape_like(batch_matmul(ds3, reshape(k, shape{-1, tk, d})) * a.alpha, q));
    if (c.needs[1])
      c.dense(1, reshape_like(batch_matmul(ds3, reshape(q, shape{-1, tq, d}), true, false) * a.alpha, k));
  }
  if (c.n().inputs.size() == 3 && c.needs[2]) c.dense(2, reduce_like(ds, c.in(2)));
}

} // namespace

void describe_attention(op_table& t) { t.set(op_kind::attention_probs, 0, infer_attention_probs, grad_attention_probs); }

} // namespace luoshu::ops
