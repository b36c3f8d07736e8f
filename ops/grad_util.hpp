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

/// A scalar constant with x's dtype.
inline expr scalar_like(expr x, double v) { return x.g().scalar(v, x.type()); }

/// Float mask (1 where cond holds) with x's dtype.
inline expr mask_like(expr cond, expr x) { return cast(cond, x.type()); }

} // namespace luoshu::ops
