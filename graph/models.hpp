#pragma once
// Small building blocks of the model zoo.

#include <vector>

#include "graph/builder.hpp"

namespace luoshu::models {

/// A multilayer perceptron on x [?, in]: linear layers of the given widths
/// (variables w1, b1, w2, b2, ... with He-uniform weights and zero biases)
/// with relu between them; returns the last layer's output (the logits).
inline expr mlp(expr x, const std::vector<int64_t>& widths) {
  graph& g = x.g();
  expr h = x;
  int64_t in = x.shape()[x.shape().rank() - 1];
  for (size_t i = 0; i < widths.size(); ++i) {
    std::string k = std::to_string(i + 1);
    h = linear(h, g.variable("w" + k, {in, widths[i]}, init::he_uniform()), g.variable("b" + k, {widths[i]}, init::zeros()));
    if (i + 1 < widths.size()) h = relu(h);
    in = widths[i];
  }
  return h;
}

} // namespace luoshu::models
