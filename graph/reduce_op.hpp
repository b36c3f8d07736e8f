#pragma once
// How a collective combines the ranks' values (actors/collective.hpp on the
// CPU, graph/nccl.hpp on CUDA devices).

#include <cstdint>
#include <optional>
#include <string>

namespace luoshu {

enum class reduce_op : uint8_t {
  sum,  ///< elementwise sum
  mean, ///< sum divided by the number of ranks (integer division for integers)
  max,
  min,
};

inline const char* name(reduce_op op) {
  switch (op) {
    case reduce_op::sum: return "sum";
    case reduce_op::mean: return "mean";
    case reduce_op::max: return "max";
    case reduce_op::min: return "min";
  }
  return "?";
}

/// "sum", "mean", "max", "min"; nullopt otherwise.
inline std::optional<reduce_op> parse_reduce_op(const std::string& s) {
  if (s == "sum") return reduce_op::sum;
  if (s == "mean") return reduce_op::mean;
  if (s == "max") return reduce_op::max;
  if (s == "min") return reduce_op::min;
  return std::nullopt;
}

} // namespace luoshu
