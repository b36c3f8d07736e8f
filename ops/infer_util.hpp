#pragma once
// Helpers shared by the ops' shape inference (ops/*.cpp only).

#include <span>
#include <string>

#include "graph/error.hpp"
#include "ops/op.hpp"

namespace luoshu::ops {

/// NumPy broadcasting of two shapes; unknown dims stay unknown unless the
/// other side fixes them. Throws naming the mismatching dims.
shape broadcast_shapes(const shape& a, const shape& b);

inline void require_float(const type_shape& t, const char* what) {
  if (!is_float(t.type))
    throw luoshu_error(std::string(what) + " must be a float tensor, got " + name(t.type));
}
inline void require_integer(const type_shape& t, const char* what) {
  if (t.type != dtype::i32 && t.type != dtype::i64)
    throw luoshu_error(std::string(what) + " must be i32 or i64, got " + name(t.type));
}
inline void require_same_type(const type_shape& a, const type_shape& b) {
  if (a.type != b.type)
    throw luoshu_error(std::string("dtypes differ: ") + name(a.type) + " vs " + name(b.type));
}
inline void require_rank(const type_shape& t, int rank, const char* what) {
  if (t.shape.rank() != rank)
    throw luoshu_error(std::string(what) + " must have rank " + std::to_string(rank) + ", got " +
                       t.shape.to_string());
}
/// Two dims that must agree (unknown agrees with anything).
inline bool dims_agree(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

/// Normalised, sorted, unique reduction axes; empty = all axes.
std::vector<int> reduce_axes(const std::vector<int64_t>& axes, int rank);

} // namespace luoshu::ops
