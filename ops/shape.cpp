// Shape and data-movement ops.
//   reshape: attrs.target (one -1 allowed); transpose: attrs.axes = perm;
//   concat: attrs.axis; slice / slice_grad: attrs.axes = begins,
//   attrs.axes2 = ends (negative counts from the end, clamped to the dim);
//   pad: attrs.axes = before, attrs.axes2 = after, attrs.alpha = fill value;
//   broadcast_to: attrs.target; broadcast_like(x, ref): attrs.axes = axes of
//   ref that x lacks (empty: right-aligned broadcasting), attrs.flag = divide
//   by the broadcast factor (mean's gradient);
//   gather / scatter_add_like: attrs.axis; one_hot: attrs.axis = depth, attrs.to.

#include <climits>
#include <numeric>

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/grad_util.hpp"
#include "ops/infer_util.hpp"
#include "ops/shape_util.hpp"

namespace luoshu::ops {

shape reshape_target(const shape& in, const shape& target) {
  std::vector<int64_t> out = target.dims();
  int infer_at = -1;
  int64_t known = 1;
  for (int i = 0; i < target.rank(); ++i) {
    if (target[i] == -1) {
      if (infer_at >= 0) throw luoshu_error("reshape target " + target.to_string() + " has more than one -1");
      infer_at = i;
    } else if (target[i] < 0) {
      throw luoshu_error("reshape target " + target.to_string() + " has a negative dim");
    } else {
      known *= target[i];
    }
  }
  int64_t n = in.numel();
  if (infer_at >= 0) {
    if (n >= 0) {
      if (known == 0 || n % known != 0)
        throw luoshu_error("cannot reshape " + in.to_string() + " to " + target.to_string());
      out[static_cast<size_t>(infer_at)] = n / known;
    }
  } else if (n >= 0 && n != known) {
    throw luoshu_error("cannot reshape " + in.to_string() + " (" + std::to_string(n) + " elements) to " +
                       target.to_string() + " (" + std::to_string(known) + ")");
  }
  return shape(std::move(out));
}

slice_bounds resolve_slice(const shape& s, const std::vector<int64_t>& begins,
                           const std::vector<int64_t>& ends) {
  if (begins.size() != ends.size() || static_cast<int>(begins.size()) > s.rank())
    throw luoshu_error("slice needs as many begins as ends, at most one per axis; got " +
                       std::to_string(begins.size()) + " and " + std::to_string(ends.size()) +
                       " for rank " + std::to_string(s.rank()));
  slice_bounds r;
  for (int i = 0; i < s.rank(); ++i) {
    int64_t d = s[i];
    int64_t b = i < static_cast<int>(begins.size()) ? begins[static_cast<size_t>(i)] : 0;
    int64_t e = i < static_cast<int>(ends.size()) ? ends[static_cast<size_t>(i)] : INT64_MAX;
    if (d < 0) {
      r.begin.push_back(b);
      r.size.push_back(b >= 0 && e >= 0 && e != INT64_MAX ? std::max<int64_t>(0, e - b) : -1);
      continue;
    }
    if (b < 0) b += d;
    if (e < 0) e += d;
    b = std::clamp<int64_t>(b, 0, d);
    e = std::clamp<int64_t>(e, 0, d);
    r.begin.push_back(b);
    r.size.push_back(std::max<int64_t>(0, e - b));
  }
  return r;
}

namespace {

type_shape infer_reshape(const node& n, std::span<const type_shape> in) {
  return {in[0].type, reshape_target(in[0].shape, n.attrs.target)};
}

type_shape infer_reshape_like(const node&, std::span<const type_shape> in) {
  if (in[0].shape.known() && in[1].shape.known() && in[0].shape.numel() != in[1].shape.numel())
    throw luoshu_error("element counts differ");
  return {in[0].type, in[1].shape};
}

type_shape infer_transpose(const node& n, std::span<const type_shape> in) {
  int r = in[0].shape.rank();
  auto perm = n.attrs.axes;
  if (static_cast<int>(perm.size()) != r)
    throw luoshu_error("permutation has " + std::to_string(perm.size()) + " axes for rank " + std::to_string(r));
  std::vector<bool> seen(static_cast<size_t>(r));
  shape out;
  for (auto p : perm) {
    int a = normalize_axis(p, r, "transpose");
    if (seen[static_cast<size_t>(a)]) throw luoshu_error("permutation repeats axis " + std::to_string(a));
    seen[static_cast<size_t>(a)] = true;
    out.dims().push_back(in[0].shape[a]);
  }
  return {in[0].type, out};
}

type_shape infer_concat(const node& n, std::span<const type_shape> in) {
  int r = in[0].shape.rank();
  int axis = normalize_axis(n.attrs.axis, r, "concat");
  shape out = in[0].shape;
  for (size_t i = 1; i < in.size(); ++i) {
    require_same_type(in[0], in[i]);
    if (in[i].shape.rank() != r) throw luoshu_error("inputs have different ranks");
    for (int d = 0; d < r; ++d) {
      if (d == axis) {
        out[d] = out[d] < 0 || in[i].shape[d] < 0 ? -1 : out[d] + in[i].shape[d];
      } else if (!dims_agree(out[d], in[i].shape[d])) {
        throw luoshu_error("input " + std::to_string(i) + " differs at axis " + std::to_string(d));
      } else if (out[d] < 0) {
        out[d] = in[i].shape[d];
      }
    }
  }
  return {in[0].type, out};
}

type_shape infer_slice(const node& n, std::span<const type_shape> in) {
  auto b = resolve_slice(in[0].shape, n.attrs.axes, n.attrs.axes2);
  return {in[0].type, shape(b.size)};
}

type_shape infer_slice_grad(const node& n, std::span<const type_shape> in) {
  if (in[0].shape.rank() != in[1].shape.rank())
    throw luoshu_error("gradient rank " + std::to_string(in[0].shape.rank()) + " differs from the input's " +
                       std::to_string(in[1].shape.rank()));
  auto b = resolve_slice(in[1].shape, n.attrs.axes, n.attrs.axes2);
  for (int i = 0; i < in[0].shape.rank(); ++i)
    if (!dims_agree(in[0].shape[i], b.size[static_cast<size_t>(i)]))
      throw luoshu_error("gradient does not match the slice");
  return {in[0].type, in[1].shape};
}

type_shape infer_pad(const node& n, std::span<const type_shape> in) {
  int r = in[0].shape.rank();
  const auto& bf = n.attrs.axes;
  const auto& af = n.attrs.axes2;
  if (static_cast<int>(bf.size()) != r || static_cast<int>(af.size()) != r)
    throw luoshu_error("pad needs one before and one after amount per axis (rank " + std::to_string(r) + ")");
  shape out = in[0].shape;
  for (int i = 0; i < r; ++i) {
    if (bf[static_cast<size_t>(i)] < 0 || af[static_cast<size_t>(i)] < 0)
      throw luoshu_error("pad amounts must be >= 0");
    constexpr int64_t limit = int64_t{1} << 48; // keeps dim + pads far from overflow
    if (bf[static_cast<size_t>(i)] > limit || af[static_cast<size_t>(i)] > limit || out[i] > limit)
      throw luoshu_error("pad amounts or dims are too large");
    if (out[i] >= 0) out[i] += bf[static_cast<size_t>(i)] + af[static_cast<size_t>(i)];
  }
  return {in[0].type, out};
}

void check_broadcastable(const shape& from, const shape& to) {
  if (from.rank() > to.rank())
    throw luoshu_error("cannot broadcast " + from.to_string() + " to " + to.to_string());
  for (int i = 0; i < from.rank(); ++i) {
    int64_t f = from[i], t = to[to.rank() - from.rank() + i];
    if (!(f == 1 || dims_agree(f, t)))
      throw luoshu_error("cannot broadcast " + from.to_string() + " to " + to.to_string());
  }
}

type_shape infer_broadcast_to(const node& n, std::span<const type_shape> in) {
  check_broadcastable(in[0].shape, n.attrs.target);
  return {in[0].type, n.attrs.target};
}

type_shape infer_broadcast_like(const node& n, std::span<const type_shape> in) {
  if (n.attrs.axes.empty()) {
    check_broadcastable(in[0].shape, in[1].shape);
  } else {
    auto axes = reduce_axes(n.attrs.axes, in[1].shape.rank());
    if (in[0].shape.rank() + static_cast<int>(axes.size()) != in[1].shape.rank())
      throw luoshu_error("cannot broadcast " + in[0].shape.to_string() + " to " +
                         in[1].shape.to_string() + " over the given axes");
  }
  return {in[0].type, in[1].shape};
}

type_shape infer_gather(const node& n, std::span<const type_shape> in) {
  require_integer(in[1], "indices");
  int r = in[0].shape.rank();
  if (r == 0) throw luoshu_error("cannot gather from a scalar");
  int axis = normalize_axis(n.attrs.axis, r, "gather");
  shape out;
  for (int i = 0; i < axis; ++i) out.dims().push_back(in[0].shape[i]);
  for (auto d : in[1].shape.dims()) out.dims().push_back(d);
  for (int i = axis + 1; i < r; ++i) out.dims().push_back(in[0].shape[i]);
  return {in[0].type, out};
}

type_shape infer_scatter(const node& n, std::span<const type_shape> in) {
  require_integer(in[1], "indices");
  std::vector<type_shape> gin{in[2], in[1]};
  type_shape g = infer_gather(n, gin);
  if (g.shape.rank() != in[0].shape.rank())
    throw luoshu_error("updates rank does not match the gathered shape " + g.shape.to_string());
  for (int i = 0; i < g.shape.rank(); ++i)
    if (!dims_agree(g.shape[i], in[0].shape[i]))
      throw luoshu_error("updates " + in[0].shape.to_string() + " do not match the gathered shape " +
                         g.shape.to_string());
  return {in[0].type, in[2].shape};
}

type_shape infer_one_hot(const node& n, std::span<const type_shape> in) {
  require_integer(in[0], "indices");
  if (n.attrs.axis <= 0) throw luoshu_error("one_hot depth must be positive");
  shape out = in[0].shape;
  out.dims().push_back(n.attrs.axis);
  return {n.attrs.to, out};
}

void grad_reshape(grad_ctx& c) { c.dense(0, reshape_like(c.dy, c.in(0))); }
void grad_transpose(grad_ctx& c) {
  const auto& p = c.n().attrs.axes;
  int r = static_cast<int>(p.size());
  std::vector<int64_t> inv(p.size());
  for (int i = 0; i < r; ++i) inv[static_cast<size_t>(normalize_axis(p[static_cast<size_t>(i)], r, "transpose"))] = i;
  c.dense(0, transpose(c.dy, inv));
}
void grad_concat(grad_ctx& c) {
  int r = c.in(0).shape().rank();
  int axis = normalize_axis(c.n().attrs.axis, r, "concat");
  int64_t off = 0;
  for (size_t i = 0; i < c.n().inputs.size(); ++i) {
    int64_t d = c.in(static_cast<int>(i)).shape()[axis];
    if (d < 0) throw luoshu_error("concat gradient needs known sizes along the concat axis");
    if (c.needs[i]) {
      std::vector<int64_t> b(static_cast<size_t>(r), 0), e(static_cast<size_t>(r), INT64_MAX);
      b[static_cast<size_t>(axis)] = off;
      e[static_cast<size_t>(axis)] = off + d;
      c.dense(static_cast<int>(i), slice(c.dy, b, e));
    }
    off += d;
  }
}
void grad_slice(grad_ctx& c) {
  op_attrs a;
  a.axes = c.n().attrs.axes;
  a.axes2 = c.n().attrs.axes2;
  c.dense(0, c.g.add(op_kind::slice_grad, {c.dy.id(), c.in(0).id()}, a));
}
void grad_slice_grad(grad_ctx& c) { c.dense(0, slice(c.dy, c.n().attrs.axes, c.n().attrs.axes2)); }
void grad_pad(grad_ctx& c) {
  const auto& bf = c.n().attrs.axes;
  const auto& af = c.n().attrs.axes2;
  std::vector<int64_t> e;
  for (auto a : af) e.push_back(a == 0 ? INT64_MAX : -a);
  c.dense(0, slice(c.dy, bf, e));
}
void grad_broadcast(grad_ctx& c) {
  const auto& a = c.n().attrs;
  if (c.n().op == op_kind::broadcast_like && !a.axes.empty()) {
    if (a.flag) throw luoshu_error("no gradient for a mean-scaled broadcast_like");
    c.dense(0, sum(c.dy, a.axes));
    return;
  }
  if (a.flag) throw luoshu_error("no gradient for a mean-scaled broadcast_like");
  c.dense(0, sum_to_like(c.dy, c.in(0)));
}
void grad_gather(grad_ctx& c) {
  if (!c.needs[0]) return;
  op_attrs a;
  a.axis = c.n().attrs.axis;
  c.dense(0, c.g.add(op_kind::scatter_add_like, {c.dy.id(), c.in(1).id(), c.in(0).id()}, a));
}
void grad_scatter(grad_ctx& c) {
  if (c.needs[0]) c.dense(0, gather(c.dy, c.in(1), c.n().attrs.axis));
}

} // namespace

void describe_shape(op_table& t) {
  t.set(op_kind::reshape, op_flag_alias_input0, infer_reshape, grad_reshape);
  t.set(op_kind::reshape_like, op_flag_alias_input0 | op_flag_shape_only_last, infer_reshape_like, grad_reshape);
  t.set(op_kind::transpose, 0, infer_transpose, grad_transpose);
  t.set(op_kind::concat, 0, infer_concat, grad_concat);
  t.set(op_kind::slice, 0, infer_slice, grad_slice);
  t.set(op_kind::slice_grad, op_flag_shape_only_last, infer_slice_grad, grad_slice_grad);
  t.set(op_kind::pad, 0, infer_pad, grad_pad);
  t.set(op_kind::broadcast_to, 0, infer_broadcast_to, grad_broadcast);
  t.set(op_kind::broadcast_like, op_flag_shape_only_last, infer_broadcast_like, grad_broadcast);
  t.set(op_kind::gather, 0, infer_gather, grad_gather);
  t.set(op_kind::scatter_add_like, op_flag_shape_only_last, infer_scatter, grad_scatter);
  t.set(op_kind::one_hot, op_flag_no_grad, infer_one_hot, nullptr);
}

} // namespace luoshu::ops
