// sparse_square_sum(indices [k], values [k, row...]): the squared norm of
// the dense gradient a sparse one stands for (repeated rows summed first).
//
// Optimizer update ops: in place on input 0 (a variable), which is also the
// output. Dense: (var, grad, slots..., lr); sparse: (var, indices i64 [k],
// values [k, row...], slots..., lr). Slot order: momentum: velocity;
// adagrad: accumulator; adam: m, v, then lr and the step counter t (i64
// scalar variable, incremented by the update).
//   attrs.alpha: momentum / beta1; attrs.beta: beta2; attrs.eps;
//   attrs.decay: weight decay (L2 added to the gradient, or decoupled when
//   attrs.flag for adam = AdamW); attrs.flag for momentum = Nesterov.

#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/infer_util.hpp"

namespace luoshu::ops {

namespace {

struct layout {
  bool sparse;
  int slots;
};

layout layout_of(op_kind k) {
  switch (k) {
    case op_kind::sgd_update: return {false, 0};
    case op_kind::momentum_update: return {false, 1};
    case op_kind::adagrad_update: return {false, 1};
    case op_kind::adam_update: return {false, 2};
    case op_kind::sparse_sgd_update: return {true, 0};
    case op_kind::sparse_momentum_update: return {true, 1};
    case op_kind::sparse_adagrad_update: return {true, 1};
    case op_kind::sparse_adam_update: return {true, 2};
    default: throw luoshu_error("not an optimizer op");
  }
}

type_shape infer_update(const node& n, std::span<const type_shape> in) {
  layout l = layout_of(n.op);
  const type_shape& var = in[0];
  require_float(var, "variable");
  int next = 1;
  if (l.sparse) {
    require_integer(in[1], "indices");
    require_rank(in[1], 1, "indices");
    const type_shape& vals = in[2];
    require_same_type(var, vals);
    if (vals.shape.rank() != var.shape.rank())
      throw luoshu_error("sparse values " + vals.shape.to_string() + " do not match rows of " +
                         var.shape.to_string());
    for (int i = 1; i < var.shape.rank(); ++i)
      if (!dims_agree(vals.shape[i], var.shape[i]))
        throw luoshu_error("sparse values " + vals.shape.to_string() + " do not match rows of " +
                           var.shape.to_string());
    next = 3;
  } else {
    require_same_type(var, in[1]);
    if (!(in[1].shape == var.shape))
      throw luoshu_error("gradient " + in[1].shape.to_string() + " does not match variable " +
                         var.shape.to_string());
    next = 2;
  }
  for (int s = 0; s < l.slots; ++s, ++next)
    if (!(in[static_cast<size_t>(next)].shape == var.shape) || in[static_cast<size_t>(next)].type != var.type)
      throw luoshu_error("optimizer slot " + std::to_string(s) + " does not match the variable");
  const type_shape& lr = in[static_cast<size_t>(next)];
  if (lr.shape.rank() != 0 || !is_float(lr.type)) throw luoshu_error("learning rate must be a float scalar");
  if (n.op == op_kind::adam_update || n.op == op_kind::sparse_adam_update) {
    const type_shape& t = in[static_cast<size_t>(next + 1)];
    if (t.shape.rank() != 0 || t.type != dtype::i64) throw luoshu_error("adam step counter must be an i64 scalar");
  }
  return var;
}

type_shape infer_sparse_square_sum(const node&, std::span<const type_shape> in) {
  require_integer(in[0], "indices");
  require_rank(in[0], 1, "indices");
  require_float(in[1], "values");
  if (in[1].shape.rank() < 1 || !dims_agree(in[0].shape[0], in[1].shape[0]))
    throw luoshu_error("values need one row per index");
  return {in[1].type, shape{}};
}

} // namespace

void describe_optimizer(op_table& t) {
  t.set(op_kind::sparse_square_sum, op_flag_no_grad, infer_sparse_square_sum, nullptr);
  for (auto k : {op_kind::sgd_update, op_kind::momentum_update, op_kind::adagrad_update,
                 op_kind::adam_update, op_kind::sparse_sgd_update, op_kind::sparse_momentum_update,
                 op_kind::sparse_adagrad_update, op_kind::sparse_adam_update})
    t.set(k, op_flag_stateful | op_flag_alias_input0 | op_flag_no_grad, infer_update, nullptr);
}

} // namespace luoshu::ops
