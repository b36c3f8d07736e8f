#pragma once
// How the optimizer update ops (sgd_update ... sparse_adam_update) lay out
// their inputs and read their attributes; shared by the CPU and CUDA
// kernels. Inputs: the variable, then the gradient (dense) or indices and
// values (sparse), then the rule's slots, the learning rate, and for Adam
// the step counter.

#include <cstddef>

#include "ops/op.hpp"
#include "ops/update_rules.hpp"

namespace luoshu::ops {

struct update_layout {
  update_rule rule;
  bool sparse;
  int slots;
  size_t first_slot() const { return sparse ? 3 : 2; }
  size_t lr_at() const { return first_slot() + static_cast<size_t>(slots); }
};

inline update_layout update_layout_of(op_kind k) {
  using R = update_rule;
  switch (k) {
    case op_kind::sgd_update: return {R::sgd, false, 0};
    case op_kind::momentum_update: return {R::momentum, false, 1};
    case op_kind::adagrad_update: return {R::adagrad, false, 1};
    case op_kind::adam_update: return {R::adam, false, 2};
    case op_kind::sparse_sgd_update: return {R::sgd, true, 0};
    case op_kind::sparse_momentum_update: return {R::momentum, true, 1};
    case op_kind::sparse_adagrad_update: return {R::adagrad, true, 1};
    default: return {R::adam, true, 2};
  }
}

/// The hyper-parameters an update node's attributes give; the learning
/// rate and Adam's step come from its inputs.
inline update_hyper update_hyper_of(const op_attrs& a, const update_layout& l) {
  update_hyper h;
  h.momentum = a.alpha;
  h.beta2 = a.beta;
  h.eps = a.eps;
  h.weight_decay = a.decay;
  h.nesterov = l.rule == update_rule::momentum && a.flag;
  h.decoupled = l.rule == update_rule::adam && a.flag;
  return h;
}

} // namespace luoshu::ops
