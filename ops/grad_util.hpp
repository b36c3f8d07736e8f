#pragma once
// Helpers shared by the ops' gradient functions (ops/*.cpp only).

#include "graph/autodiff.hpp"
#include "graph/builder.hpp"

namespace luoshu::ops {

/// g summed down to x's shape, skipped when both shapes are known and equal.
inline expr reduce_like(expr g, expr x) {
  if (g.shape() == x.shape() && x.shape().known()) return g;
  return sum_to_like(g, x);
}

/// Does operand `k` of a broadcasting node alone fix the shape of its
/// output? True when in every dimension its extent is known and not 1, or
/// every other operand lacks that dimension or has a known extent of 1
/// there: the output then has operand k's shape even where an extent is
/// known only at run time (a batch of -1 plus a per-channel bias).
inline bool fixes_broadcast(const grad_ctx& c, int k) {
  const shape& x = c.in(k).shape();
  const auto n = static_cast<int>(c.n().inputs.size());
  for (int j = 0; j < n; ++j)
    if (j != k && c.in(j).shape().rank() > x.rank()) return false;
  for (int d = 0; d < x.rank(); ++d) {
    if (x[d] >= 0 && x[d] != 1) continue;
    for (int j = 0; j < n; ++j) {
      if (j == k) continue;
      const shape& o = c.in(j).shape();
      const int od = d - (x.rank() - o.rank()); // aligned from the right
      if (od >= 0 && o[od] != 1) return false;
    }
  }
  return true;
}

/// g (the gradient of node c's output, or one shaped like it) summed down
/// to operand k's shape, skipped where operand k fixes the output's shape.
inline expr reduce_like(const grad_ctx& c, expr g, int k) {
  if (fixes_broadcast(c, k)) return g;
  return reduce_like(g, c.in(k));
}

/// A scalar constant with x's dtype.
inline expr scalar_like(expr x, double v) { return x.g().scalar(v, x.type()); }

/// Float mask (1 where cond holds) with x's dtype.
inline expr mask_like(expr cond, expr x) { return cast(cond, x.type()); }

} // namespace luoshu::ops
