#pragma once
// Op kinds, their attributes and the per-op table (inference, gradient).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "graph/dtype.hpp"
#include "graph/shape.hpp"
#include "graph/tensor.hpp"

namespace luoshu {

enum class op_kind : uint16_t {
#define LUOSHU_OP(name, arity, family) name,
#include "ops/op_list.def"
#undef LUOSHU_OP
};

inline constexpr int op_count = 0
#define LUOSHU_OP(name, arity, family) +1
#include "ops/op_list.def"
#undef LUOSHU_OP
    ;

/// How a variable's first value is drawn. Fan-in/fan-out: for [in, out]
/// matrices the two dims; for rank > 2 (e.g. OIHW filters) dims[1] and dims[0]
/// times the receptive field; for vectors both are dims[0].
struct initializer {
  enum class kind_t : uint8_t {
    zeros, constant, uniform, normal, truncated_normal,
    xavier_uniform, xavier_normal, he_uniform, he_normal
  };
  kind_t kind = kind_t::zeros;
  double a = 0; // constant value, uniform low, normal mean
  double b = 0; // uniform high, normal stddev
  friend bool operator==(const initializer&, const initializer&) = default;
};

/// Attributes of a node. One plain value type for every op; each op reads the
/// members its comment in ops/<family>.hpp lists.
struct op_attrs {
  std::vector<int64_t> axes;  ///< reduce/squeeze axes, transpose perm, slice begins, pad before
  std::vector<int64_t> axes2; ///< slice ends, pad after
  luoshu::shape target;       ///< reshape/broadcast_to/source shape
  double alpha = 0;           ///< leaky/elu slope, clamp low, lr-free scalars, dropout rate, momentum, beta1
  double beta = 0;            ///< clamp high, beta2
  double eps = 0;             ///< epsilons
  double decay = 0;           ///< weight decay
  int64_t axis = 0;           ///< softmax/gather/concat/argmax axis, one_hot depth
  bool keepdims = false;
  bool trans_a = false;
  bool trans_b = false;
  bool flag = false;          ///< nesterov (momentum), decoupled decay (adam), trainable (variable)
  uint64_t seed = 0;          ///< dropout
  dtype to = dtype::f32;      ///< cast target
  initializer init;           ///< variable
  tensor value;               ///< constant
};

/// One output's dtype and shape.
struct type_shape {
  dtype type = dtype::f32;
  luoshu::shape shape;
};

struct node;
struct grad_ctx;

/// Computes the output type and shape from the inputs'; throws luoshu_error
/// with a message that the graph completes with op, node and input names.
using infer_fn = type_shape (*)(const node& n, std::span<const type_shape> in);
/// Appends the nodes computing input gradients from the output gradient.
using grad_fn = void (*)(grad_ctx& c);

enum op_flag : uint32_t {
  op_flag_none = 0,
  op_flag_stateful = 1u << 0,         ///< mutates a variable (runs after all readers)
  op_flag_alias_input0 = 1u << 1,     ///< output shares input 0's bytes (a view)
  op_flag_shape_only_last = 1u << 2, ///< the last input is read for its shape only
  op_flag_no_grad = 1u << 3,          ///< output carries no gradient
  op_flag_source = 1u << 4,           ///< no inputs: placeholder, variable, constant
};

struct op_info {
  const char* name;
  int arity;
  uint32_t flags;
  infer_fn infer;
  grad_fn grad; ///< null for ops without gradient
};

/// The table entry of an op.
const op_info& info(op_kind k);
inline const char* name(op_kind k) { return info(k).name; }
/// Looks an op up by name ("matmul"); false if there is none.
bool find_op(std::string_view name, op_kind& out);

} // namespace luoshu
