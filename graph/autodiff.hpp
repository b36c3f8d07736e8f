#pragma once
// Reverse-mode automatic differentiation as a graph rewrite: gradients()
// appends backward nodes built from ordinary ops.

#include <vector>

#include "graph/graph.hpp"

namespace luoshu {

/// The gradient of a scalar with respect to one node. Dense, or sparse
/// (row-indexed: `values[i]` is the gradient of row `indices[i]`, rows may
/// repeat) for tables read through embedding().
struct gradient {
  expr dense;
  expr indices; ///< i64 [k] for a sparse gradient
  expr values;  ///< [k, row...] for a sparse gradient
  bool sparse() const { return indices.valid(); }
  /// The dense form (scatters a sparse gradient into a zero tensor).
  expr densified(expr wrt) const;
};

/// Gradients of the scalar `loss` with respect to each of `wrt`. Fan-out is
/// summed, broadcasts are reduced back, integer inputs get none, and nothing
/// flows through stop_gradient(). A node that `loss` does not depend on gets
/// a zero gradient. With `allow_sparse`, a table read only through
/// embedding() gets a sparse gradient.
std::vector<gradient> gradients(expr loss, const std::vector<expr>& wrt, bool allow_sparse = true);

/// Handed to each op's gradient function.
struct grad_ctx {
  graph& g;
  node_id id;
  expr dy;                 ///< gradient of the loss w.r.t. this node's output
  std::vector<bool> needs; ///< which inputs want a gradient

  struct contribution {
    int input;
    expr dense;
    expr indices;
    expr values;
  };
  std::vector<contribution> out;

  const node& n() const { return g.at(id); }
  expr y() const { return expr(&g, id); }
  expr in(int i) const { return expr(&g, n().inputs[static_cast<size_t>(i)]); }
  void dense(int i, expr grad) { out.push_back({i, grad, {}, {}}); }
  void sparse(int i, expr indices, expr values) { out.push_back({i, {}, indices, values}); }
};

} // namespace luoshu
