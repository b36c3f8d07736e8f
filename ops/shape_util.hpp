#pragma once
// Shape arithmetic shared by inference (ops/) and kernels (ops/cpu, ops/cuda).

#include <vector>

#include "graph/shape.hpp"

namespace luoshu::ops {

/// The output of reshape(in, target), resolving one -1.
shape reshape_target(const shape& in, const shape& target);

/// Per-axis start and extent of a slice after resolving negatives and clamping.
struct slice_bounds {
  std::vector<int64_t> begin;
  std::vector<int64_t> size;
};
slice_bounds resolve_slice(const shape& s, const std::vector<int64_t>& begins,
                           const std::vector<int64_t>& ends);

/// The shape left after reducing sorted `axes`.
shape reduced_shape(const shape& s, const std::vector<int>& axes, bool keepdims);

} // namespace luoshu::ops
