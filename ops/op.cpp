#include "ops/op.hpp"

#include <iterator>
#include <string>

#include "graph/error.hpp"
#include "graph/graph.hpp"
#include "ops/families.hpp"
#include "ops/infer_util.hpp"

namespace luoshu {

namespace {

constexpr const char* op_names[] = {
#define LUOSHU_OP(name, arity, family) #name,
#include "ops/op_list.def"
#undef LUOSHU_OP
};
constexpr int op_arities[] = {
#define LUOSHU_OP(name, arity, family) arity,
#include "ops/op_list.def"
#undef LUOSHU_OP
};
static_assert(std::size(op_names) == op_count, "op name table out of step with op_list.def");
static_assert(std::size(op_arities) == op_count, "op arity table out of step with op_list.def");

ops::op_table build_table() {
  ops::op_table t{};
  for (int i = 0; i < op_count; ++i) {
    t.rows[i].name = op_names[i];
    t.rows[i].arity = op_arities[i];
  }
  ops::describe_source(t);
  ops::describe_elementwise(t);
  ops::describe_activation(t);
  ops::describe_matmul(t);
  ops::describe_conv(t);
  ops::describe_pool(t);
  ops::describe_rnn(t);
  ops::describe_norm(t);
  ops::describe_layer_norm(t);
  ops::describe_attention(t);
  ops::describe_reduce(t);
  ops::describe_shape(t);
  ops::describe_embedding(t);
  ops::describe_loss(t);
  ops::describe_optimizer(t);
  for (int i = 0; i < op_count; ++i)
    if (!t.rows[i].infer)
      throw luoshu_error(std::string("op '") + op_names[i] + "' has no shape inference registered");
  return t;
}

const ops::op_table& table() {
  static const ops::op_table t = build_table();
  return t;
}

} // namespace

const op_info& info(op_kind k) {
  return table().rows[static_cast<int>(k)];
}

bool find_op(std::string_view name, op_kind& out) {
  for (int i = 0; i < op_count; ++i)
    if (name == op_names[i]) {
      out = static_cast<op_kind>(i);
      return true;
    }
  return false;
}

namespace ops {

shape broadcast_shapes(const shape& a, const shape& b) {
  int r = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    int ia = a.rank() - r + i, ib = b.rank() - r + i;
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    int64_t d;
    if (da == db) d = da;
    else if (da == 1) d = db;
    else if (db == 1) d = da;
    else if (da < 0) d = db;
    else if (db < 0) d = da;
    else
      throw luoshu_error("shapes " + a.to_string() + " and " + b.to_string() +
                         " do not broadcast (" + std::to_string(da) + " vs " + std::to_string(db) +
                         " at axis " + std::to_string(i) + ")");
    out[static_cast<size_t>(i)] = d;
  }
  return shape(std::move(out));
}

std::vector<int> reduce_axes(const std::vector<int64_t>& axes, int rank) {
  std::vector<bool> on(static_cast<size_t>(rank), axes.empty());
  for (auto a : axes) on[static_cast<size_t>(normalize_axis(a, rank, "reduction"))] = true;
  std::vector<int> out;
  for (int i = 0; i < rank; ++i)
    if (on[static_cast<size_t>(i)]) out.push_back(i);
  return out;
}

// --- sources -------------------------------------------------------------

namespace {
type_shape infer_source(const node& n, std::span<const type_shape>) {
  return {n.attrs.to, n.attrs.target};
}
} // namespace

void describe_source(op_table& t) {
  t.set(op_kind::placeholder, op_flag_source, infer_source, nullptr);
  t.set(op_kind::variable, op_flag_source, infer_source, nullptr);
  t.set(op_kind::constant, op_flag_source | op_flag_no_grad, infer_source, nullptr);
}

} // namespace ops
} // namespace luoshu
