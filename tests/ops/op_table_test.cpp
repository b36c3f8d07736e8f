// The op table against the single op list (ops/op_list.def): every op has
// its name, arity and shape inference, every computing op a CPU kernel, and
// the flags and gradient functions agree with each other.

#include <gtest/gtest.h>

#include <iterator>
#include <set>
#include <string>
#include <string_view>

#include "ops/kernel.hpp"
#include "ops/op.hpp"

using namespace luoshu;

namespace {

struct list_row {
  const char* name;
  int arity;
  const char* family;
};

constexpr list_row op_list[] = {
#define LUOSHU_OP(name, arity, family) {#name, arity, #family},
#include "ops/op_list.def"
#undef LUOSHU_OP
};
static_assert(std::size(op_list) == op_count, "op_count out of step with op_list.def");

constexpr uint32_t known_flags = op_flag_stateful | op_flag_alias_input0 | op_flag_shape_only_last |
                                 op_flag_no_grad | op_flag_source;

op_kind kind(int i) { return static_cast<op_kind>(i); }
bool has(op_kind k, uint32_t flag) { return (info(k).flags & flag) != 0; }

TEST(OpTable, NamesAndAritiesFollowTheOpList) {
  for (int i = 0; i < op_count; ++i) {
    const op_info& oi = info(kind(i));
    ASSERT_NE(oi.name, nullptr) << "op " << i;
    EXPECT_EQ(std::string_view(oi.name), op_list[i].name) << "op " << i;
    EXPECT_EQ(std::string_view(name(kind(i))), op_list[i].name);
    EXPECT_EQ(oi.arity, op_list[i].arity) << op_list[i].name;
    EXPECT_GE(oi.arity, -1) << op_list[i].name;
  }
}

TEST(OpTable, FindOpRoundTripsEveryName) {
  std::set<std::string> seen;
  for (int i = 0; i < op_count; ++i) {
    EXPECT_TRUE(seen.insert(op_list[i].name).second) << "duplicate op name " << op_list[i].name;
    op_kind k = op_kind::constant;
    ASSERT_TRUE(find_op(op_list[i].name, k)) << op_list[i].name;
    EXPECT_EQ(k, kind(i)) << op_list[i].name;
  }
  op_kind k = op_kind::matmul;
  EXPECT_FALSE(find_op("no_such_op", k));
  EXPECT_FALSE(find_op("", k));
  EXPECT_FALSE(find_op("matmul ", k));
}

TEST(OpTable, EveryOpHasShapeInferenceAndOnlyKnownFlags) {
  for (int i = 0; i < op_count; ++i) {
    const op_info& oi = info(kind(i));
    EXPECT_NE(oi.infer, nullptr) << op_list[i].name;
    EXPECT_EQ(oi.flags & ~known_flags, 0u) << op_list[i].name;
  }
}

TEST(OpTable, EveryNonSourceOpHasACpuKernel) {
  kernel_registry empty;
  kernel_registry reg;
  cpu::register_kernels(reg);
  for (int i = 0; i < op_count; ++i) {
    EXPECT_FALSE(empty.supports(kind(i), device::kind_t::cpu)) << op_list[i].name;
    if (has(kind(i), op_flag_source)) continue;
    EXPECT_TRUE(reg.supports(kind(i), device::kind_t::cpu)) << op_list[i].name << " has no CPU kernel";
    EXPECT_NE(reg.find(kind(i), device::kind_t::cpu), nullptr) << op_list[i].name;
  }
}

TEST(OpTable, SourcesAreExactlyTheOpsWithoutInputs) {
  int sources = 0;
  for (int i = 0; i < op_count; ++i) {
    bool source = has(kind(i), op_flag_source);
    sources += source;
    EXPECT_EQ(source, info(kind(i)).arity == 0) << op_list[i].name;
    if (source) {
      EXPECT_EQ(info(kind(i)).grad, nullptr) << op_list[i].name;
      EXPECT_FALSE(has(kind(i), op_flag_stateful | op_flag_alias_input0 | op_flag_shape_only_last))
          << op_list[i].name;
    }
  }
  EXPECT_EQ(sources, 3); // placeholder, variable, constant
  EXPECT_TRUE(has(op_kind::placeholder, op_flag_source));
  EXPECT_TRUE(has(op_kind::variable, op_flag_source));
  EXPECT_TRUE(has(op_kind::constant, op_flag_source));
}

TEST(OpTable, NoGradOpsHaveNoGradientFunction) {
  for (int i = 0; i < op_count; ++i)
    if (has(kind(i), op_flag_no_grad)) {
      EXPECT_EQ(info(kind(i)).grad, nullptr) << op_list[i].name;
    }
}

// gradients() throws on an op that is neither no_grad nor a source and has
// no gradient function, so such ops may only be the fused backward helpers
// that gradient functions emit (named *_grad).
TEST(OpTable, OpsWithoutGradientAreFlaggedOrBackwardHelpers) {
  for (int i = 0; i < op_count; ++i) {
    const op_info& oi = info(kind(i));
    if (oi.grad || has(kind(i), op_flag_no_grad | op_flag_source)) continue;
    EXPECT_TRUE(std::string_view(oi.name).ends_with("_grad"))
        << oi.name << " has no gradient function but is neither no_grad nor a backward helper";
  }
  // The ops a model is built from are all differentiable.
  for (op_kind k : {op_kind::add, op_kind::sub, op_kind::mul, op_kind::div, op_kind::pow, op_kind::maximum,
                    op_kind::minimum, op_kind::where, op_kind::neg, op_kind::abs, op_kind::exp, op_kind::log,
                    op_kind::sqrt, op_kind::rsqrt, op_kind::square, op_kind::clamp, op_kind::cast,
                    op_kind::identity, op_kind::relu, op_kind::leaky_relu, op_kind::elu, op_kind::gelu,
                    op_kind::sigmoid, op_kind::tanh, op_kind::softplus, op_kind::softmax,
                    op_kind::log_softmax, op_kind::matmul, op_kind::batch_matmul, op_kind::linear,
                    op_kind::conv2d, op_kind::max_pool2d, op_kind::avg_pool2d, op_kind::batch_norm,
                    op_kind::sum, op_kind::mean, op_kind::max, op_kind::min, op_kind::norm,
                    op_kind::sum_to_like, op_kind::reshape, op_kind::reshape_like, op_kind::transpose,
                    op_kind::concat, op_kind::slice, op_kind::pad, op_kind::broadcast_to,
                    op_kind::broadcast_like, op_kind::gather, op_kind::embedding, op_kind::dropout,
                    op_kind::layer_norm, op_kind::attention_probs, op_kind::embedding_bag,
                    op_kind::softmax_cross_entropy, op_kind::bce_with_logits}) {
    EXPECT_NE(info(k).grad, nullptr) << name(k);
    EXPECT_FALSE(has(k, op_flag_no_grad)) << name(k);
  }
  // Outputs that carry no gradient.
  for (op_kind k : {op_kind::equal, op_kind::not_equal, op_kind::less, op_kind::less_equal, op_kind::greater,
                    op_kind::greater_equal, op_kind::sign, op_kind::stop_gradient, op_kind::argmax,
                    op_kind::one_hot, op_kind::accuracy, op_kind::batch_norm_stats,
                    op_kind::embedding_bag_rows})
    EXPECT_TRUE(has(k, op_flag_no_grad)) << name(k);
}

TEST(OpTable, StatefulOpsUpdateTheirFirstInputInPlace) {
  int stateful = 0;
  for (int i = 0; i < op_count; ++i) {
    if (!has(kind(i), op_flag_stateful)) continue;
    ++stateful;
    EXPECT_TRUE(has(kind(i), op_flag_alias_input0)) << op_list[i].name;
    EXPECT_TRUE(has(kind(i), op_flag_no_grad)) << op_list[i].name;
    EXPECT_GE(info(kind(i)).arity, 3) << op_list[i].name << ": variable, gradient and learning rate at least";
  }
  EXPECT_GT(stateful, 0);
}

TEST(OpTable, FlagsThatNameInputsNeedThoseInputs) {
  for (int i = 0; i < op_count; ++i) {
    int arity = info(kind(i)).arity;
    if (has(kind(i), op_flag_alias_input0)) {
      EXPECT_NE(arity, 0) << op_list[i].name;
    }
    // The shape-only last input is never the only one.
    if (has(kind(i), op_flag_shape_only_last)) {
      EXPECT_TRUE(arity >= 2 || arity == -1) << op_list[i].name;
    }
  }
}

} // namespace
