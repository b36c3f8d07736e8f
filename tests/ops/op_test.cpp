// The op test driver. One table of cases (inputs, builder, reference) runs
// three ways:
//   - f32 forward against a float64 reference written here with plain,
//     obviously-correct loops (relative norm <= 1e-5 unless a case says),
//   - f64 forward against the same reference (relative norm <= 1e-12),
//   - f64 gradients from gradients() against central finite differences of
//     loss = sum over outputs of sum(y * R), R a fixed random tensor
//     (relative norm <= 1e-6).
// Inputs are random but fixed (seeded by the case name), never all zero and
// kept away from kinks (relu/abs at 0, clamp bounds, max ties). Dropout, the
// sparse embedding gradient and error reporting have their own tests below.

#include "tests/ops/op_cases.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graph/autodiff.hpp"
#include "graph/builder.hpp"
#include "graph/executor.hpp"
#include "graph/models.hpp"
#include "graph/optimizer.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

using namespace luoshu;
using namespace luoshu::op_cases;

namespace {

/// Runs a case's forward in float type `ft` and compares with the reference.
void check_forward(const op_case& c, dtype ft, double tol) {
  nds vals = draw_inputs(c);
  nds want = c.ref(vals);
  graph g;
  feed_map feeds;
  exprs ins = make_placeholders(g, c, ft, vals, feeds);
  exprs outs = c.build(ins);
  ASSERT_EQ(outs.size(), want.size());
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto r = ex.run(feeds, outs);
  ASSERT_TRUE(r.ok()) << r.err().message;
  for (size_t k = 0; k < outs.size(); ++k) {
    const tensor& got = (*r)[k];
    EXPECT_EQ(dims_str(got.shape().dims()), dims_str(want[k].dims)) << "output " << k;
    EXPECT_EQ(dims_str(outs[k].shape().dims()), dims_str(want[k].dims)) << "inferred shape of output " << k;
    EXPECT_TRUE(close_by_norm(got.to_doubles(), want[k].v, tol)) << "output " << k << " (" << name(got.type()) << ")";
  }
}

class OpForward : public testing::TestWithParam<op_case> {};

TEST_P(OpForward, F32MatchesFloat64Reference) { check_forward(GetParam(), dtype::f32, GetParam().f32_tol); }

TEST_P(OpForward, F64MatchesFloat64Reference) { check_forward(GetParam(), dtype::f64, GetParam().f64_tol); }

double run_scalar(executor& ex, const feed_map& feeds, expr e) {
  auto r = ex.run(feeds, {e});
  if (!r.ok()) {
    ADD_FAILURE() << r.err().message;
    return std::nan("");
  }
  return (*r)[0].item(0);
}

/// Central differences of `loss` w.r.t. the elements `at` of f64 feed
/// `which` (perturbed in place and restored).
std::vector<double> numeric_gradient(executor& ex, const feed_map& feeds, size_t which, expr loss,
                                     const std::vector<int64_t>& at, double eps = 1e-6) {
  // Hundreds of tiny runs: one thread, so that a busy machine does not make
  // every parallel region wait for a descheduled OpenMP worker. The forward
  // and analytic-gradient runs keep all threads (and their parallel paths).
  struct one_thread {
    int before = cpu::num_threads();
    one_thread() { cpu::set_num_threads(1); }
    ~one_thread() { cpu::set_num_threads(before); }
  } guard;
  double* p = feeds[which].second.data<double>();
  std::vector<double> out(at.size());
  for (size_t k = 0; k < at.size(); ++k) {
    auto i = static_cast<size_t>(at[k]);
    double v = p[i];
    p[i] = v + eps;
    double up = run_scalar(ex, feeds, loss);
    p[i] = v - eps;
    double down = run_scalar(ex, feeds, loss);
    p[i] = v;
    out[k] = (up - down) / (2 * eps);
  }
  return out;
}

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> at(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) at[static_cast<size_t>(i)] = i;
  return at;
}

/// Every index of a small input; 24 distinct random ones of a large one.
std::vector<int64_t> fd_indices(int64_t n, rng& r) {
  if (n <= 64) return all_indices(n);
  std::set<int64_t> picked;
  while (picked.size() < 24) picked.insert(static_cast<int64_t>(r.next() % static_cast<uint64_t>(n)));
  return {picked.begin(), picked.end()};
}

class OpGradient : public testing::TestWithParam<op_case> {};

TEST_P(OpGradient, F64MatchesFiniteDifferences) {
  const op_case& c = GetParam();
  nds vals = draw_inputs(c);
  graph g;
  feed_map feeds;
  exprs ins = make_placeholders(g, c, dtype::f64, vals, feeds);
  exprs outs = c.build(ins);
  expr loss = weighted_loss(g, outs, c.name);
  exprs wrt;
  std::vector<size_t> which;
  for (size_t k = 0; k < ins.size(); ++k)
    if (c.inputs[k].differentiable()) {
      wrt.push_back(ins[k]);
      which.push_back(k);
    }
  ASSERT_FALSE(wrt.empty());
  auto grads = gradients(loss, wrt);
  exprs fetch;
  for (size_t k = 0; k < grads.size(); ++k) fetch.push_back(grads[k].densified(wrt[k]));
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto r = ex.run(feeds, fetch);
  ASSERT_TRUE(r.ok()) << r.err().message;
  rng r_fd(c.name + "/fd");
  for (size_t k = 0; k < wrt.size(); ++k) {
    const tensor& got = (*r)[k];
    EXPECT_EQ(dims_str(got.shape().dims()), dims_str(c.inputs[which[k]].dims)) << "gradient of input " << which[k];
    std::vector<int64_t> at = fd_indices(got.numel(), r_fd);
    std::vector<double> all = got.to_doubles(), analytic;
    for (int64_t i : at) analytic.push_back(all[static_cast<size_t>(i)]);
    std::vector<double> fd = numeric_gradient(ex, feeds, which[k], loss, at, c.fd_eps);
    EXPECT_TRUE(close_by_norm(analytic, fd, 1e-6)) << "gradient of input " << which[k];
  }
}

/// The analytic gradients of a case's weighted loss in float type `ft`,
/// densified, one per differentiable input.
std::vector<std::vector<double>> analytic_gradients(const op_case& c, dtype ft) {
  nds vals = draw_inputs(c);
  graph g;
  feed_map feeds;
  exprs ins = make_placeholders(g, c, ft, vals, feeds);
  expr loss = weighted_loss(g, c.build(ins), c.name);
  exprs wrt;
  for (size_t k = 0; k < ins.size(); ++k)
    if (c.inputs[k].differentiable()) wrt.push_back(ins[k]);
  auto grads = gradients(loss, wrt);
  exprs fetch;
  for (size_t k = 0; k < grads.size(); ++k) fetch.push_back(grads[k].densified(wrt[k]));
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto r = ex.run(feeds, fetch);
  std::vector<std::vector<double>> out;
  if (!r.ok()) {
    ADD_FAILURE() << r.err().message;
    return out;
  }
  for (const auto& t : *r) out.push_back(t.to_doubles());
  return out;
}

// The f32 gradient kernels (oneDNN's backward primitives, the fast paths of
// reductions and pooling) against the f64 ones, which the finite
// differences above check.
TEST_P(OpGradient, F32MatchesF64) {
  const op_case& c = GetParam();
  auto f32 = analytic_gradients(c, dtype::f32);
  auto f64 = analytic_gradients(c, dtype::f64);
  ASSERT_EQ(f32.size(), f64.size());
  for (size_t k = 0; k < f32.size(); ++k)
    EXPECT_TRUE(close_by_norm(f32[k], f64[k], std::max(1e-4, 10 * c.f32_tol))) << "gradient " << k;
}

std::string case_name(const testing::TestParamInfo<op_case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(AllOps, OpForward, testing::ValuesIn(all_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(AllOps, OpGradient, testing::ValuesIn(differentiable_cases()), case_name);

// Every op a user can build appears in some case (forward or backward graph);
// only sources, optimizer updates and dropout (tested below) are exempt.
TEST(OpCoverage, EveryComputeOpIsExercisedByTheTable) {
  std::set<op_kind> used;
  for (const auto& c : all_cases()) {
    nds vals = draw_inputs(c);
    graph g;
    feed_map feeds;
    exprs ins = make_placeholders(g, c, dtype::f64, vals, feeds);
    exprs outs = c.build(ins);
    if (c.differentiable) {
      exprs wrt;
      for (size_t k = 0; k < ins.size(); ++k)
        if (c.inputs[k].differentiable()) wrt.push_back(ins[k]);
      for (const auto& gr : gradients(weighted_loss(g, outs, c.name), wrt)) gr.densified(wrt.front());
    }
    for (size_t i = 0; i < g.size(); ++i) used.insert(g.at(static_cast<node_id>(i)).op);
  }
  for (int i = 0; i < op_count; ++i) {
    auto k = static_cast<op_kind>(i);
    uint32_t f = info(k).flags;
    if ((f & (op_flag_source | op_flag_stateful)) || k == op_kind::dropout || k == op_kind::dropout_grad) continue;
    EXPECT_TRUE(used.count(k)) << "no case exercises op '" << name(k) << "'";
  }
}

// --- embedding: the sparse gradient -------------------------------------------

TEST(EmbeddingGradient, IsSparseAndDensifiesToFiniteDifferencesAndTheDenseGradient) {
  graph g;
  expr table = g.placeholder("table", dtype::f64, shape{6, 3});
  expr ids = g.placeholder("ids", dtype::i64, shape{2, 3});
  expr loss = weighted_loss(g, {embedding(table, ids)}, "embedding");
  auto sparse = gradients(loss, {table});
  auto dense = gradients(loss, {table}, /*allow_sparse=*/false);
  ASSERT_EQ(sparse.size(), 1u);
  ASSERT_TRUE(sparse[0].sparse());
  ASSERT_FALSE(dense[0].sparse());
  EXPECT_EQ(sparse[0].indices.type(), dtype::i64);

  rng r("embedding table");
  std::vector<double> tv(18);
  for (double& v : tv) v = r.uniform(-1, 1);
  feed_map feeds{{table, tensor::from<double>(shape{6, 3}, tv)},
                 {ids, tensor::from<int64_t>(shape{2, 3}, {1, 5, 1, 0, 5, 1})}};
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto out = ex.run(feeds, {sparse[0].indices, sparse[0].values, sparse[0].densified(table), dense[0].dense});
  ASSERT_TRUE(out.ok()) << out.err().message;
  // One gradient row per looked-up id, repeats included.
  EXPECT_EQ((*out)[0].to_doubles(), (std::vector<double>{1, 5, 1, 0, 5, 1}));
  EXPECT_EQ(dims_str((*out)[1].shape().dims()), "[6, 3]");
  std::vector<double> densified = (*out)[2].to_doubles();
  EXPECT_TRUE(close_by_norm(densified, numeric_gradient(ex, feeds, 0, loss, all_indices(18)), 1e-6));
  EXPECT_TRUE(close_by_norm((*out)[3].to_doubles(), densified, 1e-15));
  // Rows 2, 3 and 4 are never looked up.
  for (int row : {2, 3, 4})
    for (int j = 0; j < 3; ++j) EXPECT_EQ(densified[static_cast<size_t>(row * 3 + j)], 0.0) << row;
}

// The bag gradient is sparse: one row per id, padding positions pointing at
// a row the batch touches anyway with zero values, so no other row is touched.
TEST(EmbeddingBagGradient, IsSparseTouchesNoRowForPaddingAndMatchesFiniteDifferences) {
  for (bool mean : {false, true}) {
    graph g;
    expr table = g.placeholder("table", dtype::f64, shape{6, 3});
    expr ids = g.placeholder("ids", dtype::i64, shape{3, 3});
    expr loss = weighted_loss(g, {embedding_bag(table, ids, {.mean = mean, .padding_id = -1})}, "bag");
    auto sparse = gradients(loss, {table});
    auto dense = gradients(loss, {table}, /*allow_sparse=*/false);
    ASSERT_TRUE(sparse[0].sparse());
    ASSERT_FALSE(dense[0].sparse());
    rng r("bag table");
    std::vector<double> tv(18);
    for (double& v : tv) v = r.uniform(-1, 1);
    feed_map feeds{{table, tensor::from<double>(shape{6, 3}, tv)},
                   {ids, tensor::from<int64_t>(shape{3, 3}, {-1, 4, 1, 4, -1, -1, -1, -1, -1})}};
    variable_store vars;
    kernel_registry reg;
    cpu::register_kernels(reg);
    executor ex(g, vars, reg);
    auto out = ex.run(feeds, {sparse[0].indices, sparse[0].values, sparse[0].densified(table), dense[0].dense});
    ASSERT_TRUE(out.ok()) << out.err().message;
    // Padding positions take the batch's first real id (4) and zero values.
    EXPECT_EQ((*out)[0].to_doubles(), (std::vector<double>{4, 4, 1, 4, 4, 4, 4, 4, 4}));
    std::vector<double> vals = (*out)[1].to_doubles();
    for (int pos : {0, 4, 5, 6, 7, 8})
      for (int j = 0; j < 3; ++j) EXPECT_EQ(vals[static_cast<size_t>(pos * 3 + j)], 0.0) << pos;
    std::vector<double> densified = (*out)[2].to_doubles();
    EXPECT_TRUE(close_by_norm(densified, numeric_gradient(ex, feeds, 0, loss, all_indices(18)), 1e-6));
    EXPECT_TRUE(close_by_norm((*out)[3].to_doubles(), densified, 1e-15));
  }
}

TEST(EmbeddingBagGradient, ABatchOfPaddingOnlyPointsAtRowZeroWithZeroValues) {
  graph g;
  expr table = g.placeholder("table", dtype::f64, shape{4, 2});
  expr ids = g.placeholder("ids", dtype::i32, shape{2, 2});
  expr y = embedding_bag(table, ids, {.mean = true, .padding_id = 3});
  auto gr = gradients(weighted_loss(g, {y}, "bag"), {table})[0];
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto out = ex.run({{table, tensor::zeros(dtype::f64, shape{4, 2})},
                     {ids, tensor::from<int32_t>(shape{2, 2}, {3, 3, 3, 3})}},
                    {y, gr.indices, gr.values});
  ASSERT_TRUE(out.ok()) << out.err().message;
  EXPECT_EQ((*out)[0].to_doubles(), std::vector<double>(4, 0.0));
  EXPECT_EQ((*out)[1].to_doubles(), std::vector<double>(4, 0.0));
  EXPECT_EQ((*out)[2].to_doubles(), std::vector<double>(8, 0.0));
}

TEST(StopGradient, PassesValuesButNoGradient) {
  graph g;
  expr x = g.placeholder("x", dtype::f64, shape{3});
  expr loss = sum(stop_gradient(x) * x); // d/dx = stop_gradient(x) only
  auto grads = gradients(loss, {x});
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto r = ex.run({{x, tensor::from<double>(shape{3}, {1.5, -2, 3})}}, {loss, grads[0].dense});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_DOUBLE_EQ((*r)[0].item(), 1.5 * 1.5 + 4 + 9);
  EXPECT_EQ((*r)[1].to_doubles(), (std::vector<double>{1.5, -2, 3}));
}

// Max pooling sends each window's gradient to its first largest element
// (row by row), in the 2 x 2 stride-2 fast path and in the general one, on
// ties too; an odd last row or column gets none.
TEST(MaxPoolGradient, GoesToTheFirstLargestElementOfEachWindow) {
  // One 3 x 5 plane; the last row is in no window.
  const std::vector<double> xv = {1, 1, 0, 5, 9,  //
                                  1, 0, 5, 5, 9,  //
                                  9, 9, 9, 9, 9};
  for (dtype t : {dtype::f32, dtype::f64})
    for (bool fast : {true, false}) {
      graph g;
      expr x = g.placeholder("x", t, shape{1, 1, 3, 5});
      // 2 x 2 windows at stride 2 take the fast path (columns 0-1, 2-3),
      // at stride (2, 3) the general loop (columns 0-1, 3-4).
      expr y = max_pool2d(x, {.kernel = {2, 2}, .stride = {2, fast ? 2 : 3}});
      expr loss = sum(y * g.constant(tensor::from<double>(shape{1, 1, 1, 2}, {10, 20}).cast(t)));
      auto grads = gradients(loss, {x});
      variable_store vars;
      kernel_registry reg;
      cpu::register_kernels(reg);
      executor ex(g, vars, reg);
      auto r = ex.run({{x, tensor::from<double>(shape{1, 1, 3, 5}, xv).cast(t)}}, {y, grads[0].dense});
      ASSERT_TRUE(r.ok()) << r.err().message;
      // Window 1 (both): 1 1 / 1 0 -> the first 1. Window 2: fast 0 5 / 5 5
      // -> the first 5; general 5 9 / 5 9 -> the first 9.
      EXPECT_EQ((*r)[0].to_doubles(), (std::vector<double>{1, fast ? 5.0 : 9.0})) << name(t) << " fast " << fast;
      std::vector<double> want(15, 0.0);
      want[0] = 10;
      want[fast ? 3 : 4] = 20;
      EXPECT_EQ((*r)[1].to_doubles(), want) << name(t) << " fast " << fast;
    }
}

// A convolution of an empty image (zero height and width, padded) is its
// bias in every output element, plain or channel-blocked (16 channels: a
// 2 x 2 max pool reads it blocked where the CPU has blocked layouts).
TEST(Conv2dBias, OfAnEmptyImageIsTheBias) {
  for (dtype t : {dtype::f32, dtype::f64}) {
    graph g;
    expr x = g.placeholder("x", t, shape{1, 16, 0, 0});
    std::vector<double> bv(16), wv(16 * 16, 0.5);
    for (size_t i = 0; i < bv.size(); ++i) bv[i] = 0.25 * static_cast<double>(i) - 1;
    expr w = g.constant(tensor::from<double>(shape{16, 16, 1, 1}, wv).cast(t), "w");
    expr b = g.constant(tensor::from<double>(shape{16}, bv).cast(t), "b");
    expr y = conv2d(x, w, b, {.padding = {1, 1}});
    expr p = max_pool2d(conv2d(x, w, b, {.padding = {1, 1}}), {.kernel = {2, 2}});
    variable_store vars;
    kernel_registry reg;
    cpu::register_kernels(reg);
    executor ex(g, vars, reg);
    auto r = ex.run({{x, tensor(t, shape{1, 16, 0, 0})}}, {y, p});
    ASSERT_TRUE(r.ok()) << r.err().message;
    ASSERT_EQ((*r)[0].shape(), shape({1, 16, 2, 2}));
    std::vector<double> want;
    for (double v : bv) want.insert(want.end(), 4, v);
    EXPECT_EQ((*r)[0].to_doubles(), want) << name(t);
    EXPECT_EQ((*r)[1].to_doubles(), bv) << name(t);
  }
}

TEST(Cast, ToItsOwnTypeIsTheSameExpression) {
  graph g;
  expr x = g.placeholder("x", dtype::f64, shape{3});
  size_t nodes = g.size();
  EXPECT_EQ(cast(x, dtype::f64), x);
  EXPECT_EQ(g.size(), nodes);
  EXPECT_EQ(cast(x, dtype::f32).type(), dtype::f32);
}

TEST(IntegerDivision, ByZeroIsAnErrorNamingTheNode) {
  graph g;
  expr a = g.placeholder("a", dtype::i64, shape{3});
  expr b = g.placeholder("b", dtype::i64, shape{3});
  expr q = (a / b).named("quotient");
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  auto r = ex.run({{a, tensor::from<int64_t>(shape{3}, {1, 2, 3})}, {b, tensor::from<int64_t>(shape{3}, {1, 0, 1})}},
                  {q});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("'quotient'"), std::string::npos) << r.err().message;
}

// --- dropout -----------------------------------------------------------------

struct dropout_net {
  static constexpr double rate = 0.3;
  static constexpr int64_t n = 100;
  graph g;
  expr x, y, dx;
  std::vector<float> xv;
  variable_store vars;
  kernel_registry reg;
  std::unique_ptr<executor> ex;

  explicit dropout_net(uint64_t seed, int extra_nodes = 0) {
    x = g.placeholder("x", dtype::f32, shape{n, n});
    expr h = x;
    for (int i = 0; i < extra_nodes; ++i) h = identity(h); // moves the dropout node elsewhere
    y = dropout(h, rate, seed);
    dx = gradients(sum(y), {x})[0].dense;
    rng r("dropout x");
    for (int64_t i = 0; i < n * n; ++i) xv.push_back(static_cast<float>(r.uniform(0.5, 1.5))); // never 0
    cpu::register_kernels(reg);
    ex = std::make_unique<executor>(g, vars, reg);
  }
  std::vector<tensor> run(const std::vector<expr>& fetch, run_options ro) {
    auto r = ex->run({{x, tensor::from<float>(shape{n, n}, xv)}}, fetch, {}, ro);
    EXPECT_TRUE(r.ok()) << r.err().message;
    return r.ok() ? *r : std::vector<tensor>{};
  }
  std::vector<double> output(int64_t step) { return run({y}, {.training = true, .step = step})[0].to_doubles(); }
};

std::vector<bool> kept(const std::vector<double>& out) {
  std::vector<bool> m;
  for (double v : out) m.push_back(v != 0);
  return m;
}

TEST(Dropout, IsIdentityInInferenceMode) {
  dropout_net d(7);
  auto out = d.run({d.y, d.dx}, {.training = false, .step = 3});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].to_doubles(), std::vector<double>(d.xv.begin(), d.xv.end()));
  EXPECT_EQ(out[1].to_doubles(), std::vector<double>(static_cast<size_t>(d.n * d.n), 1.0));
}

TEST(Dropout, ZeroesOrScalesEachElementAndKeepsAboutOneMinusRate) {
  dropout_net d(7);
  std::vector<double> out = d.output(3);
  ASSERT_EQ(out.size(), d.xv.size());
  int64_t kept_count = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0) continue;
    ++kept_count;
    double want = d.xv[i] / (1 - d.rate);
    EXPECT_NEAR(out[i], want, 1e-6 * want) << "element " << i;
  }
  // 10k draws: the standard deviation of the kept fraction is ~0.005.
  EXPECT_NEAR(static_cast<double>(kept_count) / static_cast<double>(out.size()), 1 - d.rate, 0.02);
}

TEST(Dropout, MaskDependsOnSeedAndStepOnly) {
  dropout_net a(7), same_seed_other_graph(7, /*extra_nodes=*/3), other_seed(8);
  auto m3 = kept(a.output(3));
  EXPECT_EQ(kept(a.output(3)), m3) << "same executor, same step";
  EXPECT_EQ(kept(same_seed_other_graph.output(3)), m3) << "same seed and step in another graph";
  auto differing = [](const std::vector<bool>& p, const std::vector<bool>& q) {
    int64_t n = 0;
    for (size_t i = 0; i < p.size(); ++i) n += p[i] != q[i];
    return n;
  };
  // Independent masks differ in ~2 * 0.3 * 0.7 = 42% of the places.
  EXPECT_GT(differing(kept(a.output(4)), m3), 3000) << "another step";
  EXPECT_GT(differing(kept(other_seed.output(3)), m3), 3000) << "another seed";
}

TEST(Dropout, GradientUsesTheForwardMask) {
  dropout_net d(11);
  for (int64_t step : {0, 5, 6}) {
    auto out = d.run({d.y, d.dx}, {.training = true, .step = step});
    ASSERT_EQ(out.size(), 2u);
    std::vector<double> y = out[0].to_doubles(), dx = out[1].to_doubles();
    int64_t mismatches = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      double want = y[i] != 0 ? 1 / (1 - d.rate) : 0.0; // d sum(y) / dx = mask / (1 - rate)
      mismatches += std::fabs(dx[i] - want) > 1e-6;
    }
    EXPECT_EQ(mismatches, 0) << "step " << step;
  }
}

// --- errors -------------------------------------------------------------------

// --- batch normalization: running statistics, inference mode ------------------

/// x [n, c] (c = 2) of fixed values through models::batch_norm_layer.
struct bn_net {
  graph g;
  expr x, y;
  variable_store vars;
  kernel_registry reg;
  std::unique_ptr<executor> ex;
  explicit bn_net(dtype t, shape s = {4, 2}) {
    x = g.placeholder("x", t, s);
    y = models::batch_norm_layer(x, "bn/", {.eps = 1e-3, .momentum = 0.25});
    cpu::register_kernels(reg);
    ex = std::make_unique<executor>(g, vars, reg);
  }
  tensor run(const tensor& xv, bool training) {
    auto r = ex->run({{x, xv}}, {y}, {}, {.training = training});
    if (!r.ok()) throw luoshu_error(r.err().message);
    return (*r)[0];
  }
  std::vector<double> stat(const char* which) { return vars.get(std::string("bn/") + which).to_doubles(); }
};

tensor bn_input(dtype t) {
  // channel 0: 1, 2, 4, 9 (mean 4, biased var 9.5, unbiased 38/3); channel 1: -1, 1, 3, 5 (mean 2, 5, 20/3)
  return tensor::from<double>(shape{4, 2}, {1, -1, 2, 1, 4, 3, 9, 5}).cast(t);
}

TEST(BatchNorm, TrainingUpdatesTheRunningStatisticsWithTheUnbiasedVariance) {
  for (dtype t : {dtype::f32, dtype::f64}) {
    bn_net n(t);
    tensor y = n.run(bn_input(t), true);
    // running = 0.75 initial + 0.25 batch; initial mean 0, variance 1.
    std::vector<double> mean = n.stat("running_mean"), var = n.stat("running_var");
    EXPECT_NEAR(mean[0], 0.25 * 4, 1e-6);
    EXPECT_NEAR(mean[1], 0.25 * 2, 1e-6);
    EXPECT_NEAR(var[0], 0.75 + 0.25 * 38.0 / 3, 1e-5);
    EXPECT_NEAR(var[1], 0.75 + 0.25 * 20.0 / 3, 1e-5);
    // The output used the batch's biased variance.
    EXPECT_NEAR(y.to_doubles()[6], (9 - 4) / std::sqrt(9.5 + 1e-3), 1e-5) << name(t);
    // A second step moves them on from there.
    n.run(bn_input(t), true);
    EXPECT_NEAR(n.stat("running_mean")[0], 0.75 * 1 + 0.25 * 4, 1e-6);
    EXPECT_NEAR(n.stat("running_var")[1], 0.75 * (0.75 + 0.25 * 20.0 / 3) + 0.25 * 20.0 / 3, 1e-5);
  }
}

TEST(BatchNorm, InferenceUsesTheRunningStatisticsAndLeavesThemAlone) {
  for (dtype t : {dtype::f32, dtype::f64}) {
    for (shape s : {shape{4, 2}, shape{2, 2, 1, 2}}) { // the same values as [N, C] and as NCHW
      bn_net n(t, s);
      ASSERT_TRUE(n.vars.initialize(n.g).ok());
      n.vars.set("bn/running_mean", tensor::from<double>(shape{2}, {0.5, -2}).cast(t));
      n.vars.set("bn/running_var", tensor::from<double>(shape{2}, {4, 0.25}).cast(t));
      n.vars.set("bn/gamma", tensor::from<double>(shape{2}, {2, -1}).cast(t));
      n.vars.set("bn/beta", tensor::from<double>(shape{2}, {0.5, 3}).cast(t));
      tensor xv = bn_input(t).reshaped(s);
      std::vector<double> y = n.run(xv, false).to_doubles(), xs = xv.to_doubles();
      for (size_t i = 0; i < y.size(); ++i) {
        size_t ch = s.rank() == 2 ? i % 2 : (i / 2) % 2;
        double want = ch == 0 ? (xs[i] - 0.5) / std::sqrt(4 + 1e-3) * 2 + 0.5
                              : (xs[i] + 2) / std::sqrt(0.25 + 1e-3) * -1 + 3;
        EXPECT_NEAR(y[i], want, 1e-5) << name(t) << " " << s.to_string() << " element " << i;
      }
      EXPECT_EQ(n.stat("running_mean"), (std::vector<double>{0.5, -2}));
      EXPECT_EQ(n.stat("running_var"), (std::vector<double>{4, 0.25}));
    }
  }
}

TEST(BatchNorm, InferenceGradientTreatsTheStatisticsAsConstants) {
  graph g;
  expr x = g.placeholder("x", dtype::f64, {3, 2, 2, 2});
  expr y = models::batch_norm_layer(x, "bn/");
  expr loss = weighted_loss(g, {y}, "bn-inference");
  auto grads = gradients(loss, {x});
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  ASSERT_TRUE(vars.initialize(g).ok());
  vars.set("bn/running_mean", tensor::from<double>(shape{2}, {0.3, -0.2}));
  vars.set("bn/running_var", tensor::from<double>(shape{2}, {0.5, 2}));
  vars.set("bn/gamma", tensor::from<double>(shape{2}, {1.5, -0.7}));
  rng r("bn-inference/x");
  std::vector<double> xs(24);
  for (double& v : xs) v = r.uniform(-1, 1);
  feed_map feeds{{x, tensor::from<double>(shape{3, 2, 2, 2}, xs)}};
  const run_options infer{.training = false};
  auto got = ex.run(feeds, {grads[0].dense}, {}, infer);
  ASSERT_TRUE(got.ok()) << got.err().message;
  std::vector<double> analytic = (*got)[0].to_doubles(), fd;
  double* p = feeds[0].second.data<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    double v = p[i];
    p[i] = v + 1e-6;
    double up = (*ex.run(feeds, {loss}, {}, infer))[0].item(0);
    p[i] = v - 1e-6;
    double down = (*ex.run(feeds, {loss}, {}, infer))[0].item(0);
    p[i] = v;
    fd.push_back((up - down) / 2e-6);
  }
  EXPECT_TRUE(close_by_norm(analytic, fd, 1e-7));
  EXPECT_EQ(vars.get("bn/running_var").to_doubles(), (std::vector<double>{0.5, 2}));
}

TEST(BatchNorm, TrainingWithOneValuePerChannelIsAnErrorNamingTheNode) {
  bn_net n(dtype::f32, shape{-1, 2});
  try {
    n.run(tensor::from<float>(shape{1, 2}, {1, 2}), true);
    FAIL() << "a batch of one trained";
  } catch (const luoshu_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("batch_norm_stats"), std::string::npos) << msg;
    EXPECT_NE(msg.find("more than one value per channel in training mode, got input [1, 2]"), std::string::npos)
        << msg;
  }
  // Inference on one example is fine.
  EXPECT_EQ(n.run(tensor::from<float>(shape{1, 2}, {0, 0}), false).numel(), 2);
}

TEST(BatchNorm, OptimizersTrainScaleAndShiftButNeverTheRunningStatistics) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 3});
  expr labels = g.placeholder("labels", dtype::i64, {-1});
  expr h = models::batch_norm_layer(x, "bn/");
  expr loss = mean(softmax_cross_entropy(h, labels));
  std::vector<std::string> trainable;
  for (expr v : g.variables(true)) trainable.push_back(v.name());
  EXPECT_EQ(trainable, (std::vector<std::string>{"bn/gamma", "bn/beta"}));
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  optimizer_config cfg;
  cfg.kind = optimizer_config::kind_t::momentum;
  cfg.lr.base = 0.1;
  trainer tr(g, loss, cfg, ex);
  for (expr v : g.variables())
    EXPECT_EQ(v.name().find("running_mean/"), std::string::npos) << "optimizer slot of a running statistic: " << v.name();
  tensor xv = tensor::from<float>(shape{4, 3}, {1, 2, 3, 0, -1, 4, 2, 2, 2, 5, 0, 1});
  tensor yv = tensor::from<int64_t>(shape{4}, {0, 1, 2, 1});
  auto r = tr.step({{x, xv}, {labels, yv}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  // gamma moved by the gradient; the running mean by the batch only.
  EXPECT_NE(vars.get("bn/gamma").to_doubles(), (std::vector<double>{1, 1, 1}));
  std::vector<double> rm = vars.get("bn/running_mean").to_doubles();
  EXPECT_NEAR(rm[0], 0.1 * 2, 1e-6);
  EXPECT_NEAR(rm[1], 0.1 * 0.75, 1e-6);
  EXPECT_NEAR(rm[2], 0.1 * 2.5, 1e-6);
}

struct bad_build {
  std::string name;
  std::function<void(graph&)> build;
  std::vector<std::string> expect; ///< substrings of what()
};

void PrintTo(const bad_build& c, std::ostream* os) { *os << c.name; }

expr ph(graph& g, const std::string& n, shape s, dtype t = dtype::f32) { return g.placeholder(n, t, std::move(s)); }
/// A running statistic of batch_norm: a non-trainable f32 variable [c].
expr running(graph& g, const std::string& n, int64_t c) { return g.variable(n, {c}, init::zeros(), dtype::f32, false); }

const std::vector<bad_build>& bad_builds() {
  static const std::vector<bad_build> cases = {
      {"AddMismatch", [](graph& g) { add(ph(g, "lhs", {3, 4}), ph(g, "rhs", {5})); },
       {"op 'add'", "node 'add'", "'lhs'", "'rhs'", "[3, 4]", "[5]"}},
      {"MulMismatch", [](graph& g) { ph(g, "lhs", {2, 3}) * ph(g, "rhs", {4, 3}); },
       {"op 'mul'", "node 'mul'", "[2, 3]", "[4, 3]"}},
      {"WhereConditionMismatch",
       [](graph& g) { where(ph(g, "cond", {5}, dtype::u8), ph(g, "lhs", {3, 4}), ph(g, "rhs", {3, 4})); },
       {"op 'where'", "node 'where'", "'cond'", "[5]", "[3, 4]"}},
      {"MatmulInnerDims", [](graph& g) { matmul(ph(g, "lhs", {3, 4}), ph(g, "rhs", {5, 2})); },
       {"op 'matmul'", "node 'matmul'", "[3, 4]", "[5, 2]"}},
      {"BatchMatmulBatch", [](graph& g) { batch_matmul(ph(g, "lhs", {2, 3, 4}), ph(g, "rhs", {3, 4, 5})); },
       {"op 'batch_matmul'", "node 'batch_matmul'", "[2, 3, 4]", "[3, 4, 5]"}},
      {"LinearFeatures", [](graph& g) { linear(ph(g, "x", {3, 4}), ph(g, "w", {5, 2}), ph(g, "b", {2})); },
       {"op 'linear'", "node 'linear'", "[3, 4]", "[5, 2]"}},
      {"ConcatOtherAxis", [](graph& g) { concat({ph(g, "lhs", {2, 3}), ph(g, "rhs", {3, 3})}, 1); },
       {"op 'concat'", "node 'concat'", "[2, 3]", "[3, 3]"}},
      {"BceShapes", [](graph& g) { bce_with_logits(ph(g, "logits", {3, 4}), ph(g, "targets", {4, 3})); },
       {"op 'bce_with_logits'", "node 'bce_with_logits'", "[3, 4]", "[4, 3]"}},
      {"SoftmaxCrossEntropyRows",
       [](graph& g) { softmax_cross_entropy(ph(g, "logits", {4, 5}), ph(g, "labels", {3}, dtype::i64)); },
       {"op 'softmax_cross_entropy'", "node 'softmax_cross_entropy'", "[4, 5]", "[3]"}},
      {"SumToLike", [](graph& g) { sum_to_like(ph(g, "lhs", {3, 4}), ph(g, "rhs", {5})); },
       {"op 'sum_to_like'", "node 'sum_to_like'", "[3, 4]", "[5]"}},
      {"Reshape", [](graph& g) { reshape(ph(g, "lhs", {3, 4}), shape{5}); },
       {"op 'reshape'", "node 'reshape'", "[3, 4]", "[5]"}},
      {"MseLossIsASub", [](graph& g) { mse_loss(ph(g, "pred", {3, 4}), ph(g, "target", {5})); },
       {"op 'sub'", "'pred'", "'target'", "[3, 4]", "[5]"}},
      {"Conv2dRank", [](graph& g) { conv2d(ph(g, "x", {3, 8, 8}), ph(g, "w", {4, 3, 3, 3})); },
       {"op 'conv2d'", "node 'conv2d'", "'x'", "[3, 8, 8]", "rank 4"}},
      {"Conv2dChannelMismatch", [](graph& g) { conv2d(ph(g, "x", {1, 3, 8, 8}), ph(g, "w", {4, 2, 3, 3})); },
       {"op 'conv2d'", "channel mismatch", "3 channels", "[4, 2, 3, 3]"}},
      {"Conv2dGroupsDoNotDivide",
       [](graph& g) { conv2d(ph(g, "x", {1, 4, 8, 8}), ph(g, "w", {6, 2, 3, 3}), {.groups = 3}); },
       {"op 'conv2d'", "groups 3 do not divide the 4 input channels"}},
      {"Conv2dGroupsOutputChannels",
       [](graph& g) { conv2d(ph(g, "x", {1, 4, 8, 8}), ph(g, "w", {5, 2, 3, 3}), {.groups = 2}); },
       {"op 'conv2d'", "groups 2 do not divide the 5 output channels"}},
      {"Conv2dKernelLargerThanPaddedInput",
       [](graph& g) { conv2d(ph(g, "x", {1, 3, 4, 9}), ph(g, "w", {2, 3, 5, 3}), {.padding = {0, 1}}); },
       {"op 'conv2d'", "kernel height extent 5", "larger than the padded input height 4"}},
      {"Conv2dDilatedKernelTooWide",
       [](graph& g) { conv2d(ph(g, "x", {1, 3, 9, 4}), ph(g, "w", {2, 3, 3, 3}), {.dilation = {1, 2}}); },
       {"op 'conv2d'", "kernel width extent 5", "dilation 2", "padded input width 4"}},
      {"Conv2dZeroStride",
       [](graph& g) { conv2d(ph(g, "x", {1, 3, 8, 8}), ph(g, "w", {2, 3, 3, 3}), {.stride = {0, 1}}); },
       {"op 'conv2d'", "stride must be in [1, 2^30], got 0"}},
      {"Conv2dNegativePadding",
       [](graph& g) { conv2d(ph(g, "x", {1, 3, 8, 8}), ph(g, "w", {2, 3, 3, 3}), {.padding = {1, -1}}); },
       {"op 'conv2d'", "padding must be in [0, 2^30], got -1"}},
      {"Conv2dDtypes",
       [](graph& g) { conv2d(ph(g, "x", {1, 3, 8, 8}), ph(g, "w", {2, 3, 3, 3}, dtype::f64)); },
       {"op 'conv2d'", "dtypes differ"}},
      {"Conv2dBiasLength",
       [](graph& g) { conv2d(ph(g, "x", {1, 3, 8, 8}), ph(g, "w", {2, 3, 3, 3}), ph(g, "b", {3})); },
       {"op 'conv2d'", "node 'conv2d'", "'b' f32[3]", "bias must be [2]"}},
      {"MaxPool2dRank", [](graph& g) { max_pool2d(ph(g, "x", {8, 8})); },
       {"op 'max_pool2d'", "node 'max_pool2d'", "'x'", "[8, 8]", "rank 4"}},
      {"MaxPool2dPaddingOverHalfTheKernel",
       [](graph& g) { max_pool2d(ph(g, "x", {1, 1, 8, 8}), {.kernel = {2, 2}, .padding = {2, 0}}); },
       {"op 'max_pool2d'", "padding (2, 0) must be at most half the kernel (2, 2)"}},
      {"AvgPool2dKernelLargerThanInput",
       [](graph& g) { avg_pool2d(ph(g, "x", {1, 1, 3, 8}), {.kernel = {4, 4}}); },
       {"op 'avg_pool2d'", "kernel height extent 4", "larger than the padded input height 3"}},
      {"MaxPool2dEmptyImage",
       [](graph& g) { max_pool2d(ph(g, "x", {1, 1, 0, 4}), {.kernel = {2, 2}, .padding = {1, 1}}); },
       {"op 'max_pool2d'", "cannot pool an empty image [1, 1, 0, 4]"}},
      {"AvgPool2dIntegerInput", [](graph& g) { avg_pool2d(ph(g, "x", {1, 1, 4, 4}, dtype::i64)); },
       {"op 'avg_pool2d'", "float"}},
      {"LstmInputRank", [](graph& g) { lstm(ph(g, "x", {4, 3}), ph(g, "wx", {3, 8}), ph(g, "wh", {2, 8}), ph(g, "b", {8})); },
       {"op 'lstm'", "node 'lstm'", "'x'", "x must be [batch, steps, features] (rank 3), got [4, 3]"}},
      {"LstmFeatureMismatch",
       [](graph& g) { lstm(ph(g, "x", {4, 5, 3}), ph(g, "wx", {2, 8}), ph(g, "wh", {2, 8}), ph(g, "b", {8})); },
       {"op 'lstm'", "x [4, 5, 3] has 3 features but w_x [2, 8] expects 2"}},
      {"LstmRecurrentWeightNotFourGates",
       [](graph& g) { lstm(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 8}), ph(g, "wh", {2, 6}), ph(g, "b", {8})); },
       {"op 'lstm'", "w_h [2, 6] must have 4 x hidden = 8 columns (gates i, f, g, o)"}},
      {"LstmInputWeightColumns",
       [](graph& g) { lstm(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 6}), ph(g, "wh", {2, 8}), ph(g, "b", {8})); },
       {"op 'lstm'", "w_x [3, 6] must have 4 x hidden = 8 columns"}},
      {"LstmBiasLength",
       [](graph& g) { lstm(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 8}), ph(g, "wh", {2, 8}), ph(g, "b", {2})); },
       {"op 'lstm'", "bias must be [8]", "got [2]"}},
      {"LstmUnknownHidden",
       [](graph& g) { lstm(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 8}), ph(g, "wh", {-1, 8}), ph(g, "b", {8})); },
       {"op 'lstm'", "hidden size (w_h's rows) must be known"}},
      {"LstmIntegerInput",
       [](graph& g) {
         lstm(ph(g, "x", {4, 5, 3}, dtype::i64), ph(g, "wx", {3, 8}, dtype::i64), ph(g, "wh", {2, 8}, dtype::i64),
              ph(g, "b", {8}, dtype::i64));
       },
       {"op 'lstm'", "x must be a float tensor, got i64"}},
      {"LstmDtypes",
       [](graph& g) { lstm(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 8}, dtype::f64), ph(g, "wh", {2, 8}), ph(g, "b", {8})); },
       {"op 'lstm'", "dtypes differ"}},
      {"GruRecurrentWeightNotThreeGates",
       [](graph& g) {
         gru(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 6}), ph(g, "wh", {2, 8}), ph(g, "bx", {6}), ph(g, "bh", {6}));
       },
       {"op 'gru'", "w_h [2, 8] must have 3 x hidden = 6 columns (gates r, z, n)"}},
      {"GruRecurrentBiasLength",
       [](graph& g) {
         gru(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 6}), ph(g, "wh", {2, 6}), ph(g, "bx", {6}), ph(g, "bh", {3}));
       },
       {"op 'gru'", "recurrent bias must be [6]", "got [3]"}},
      {"GruZeroHidden",
       [](graph& g) {
         gru(ph(g, "x", {4, 5, 3}), ph(g, "wx", {3, 0}), ph(g, "wh", {0, 0}), ph(g, "bx", {0}), ph(g, "bh", {0}));
       },
       {"op 'gru'", "hidden size must be at least 1"}},
      {"LastStepNeedsASequence", [](graph& g) { models::last_step(ph(g, "h", {4, 3})); },
       {"last_step needs a sequence [batch, steps, features], got [4, 3]"}},
      {"BatchNormRank", [](graph& g) { models::batch_norm_layer(ph(g, "x", {2, 3, 4}), "bn/"); },
       {"batch_norm_layer 'bn/'", "[N, C] or [N, C, H, W]", "[2, 3, 4]"}},
      {"BatchNormScaleLength",
       [](graph& g) {
         batch_norm(ph(g, "x", {2, 3, 4, 4}), ph(g, "gamma", {4}), ph(g, "beta", {3}), running(g, "rm", 3),
                    running(g, "rv", 3));
       },
       {"op 'batch_norm'", "node 'batch_norm'", "'gamma'", "scale (gamma) must be [C] = [3]", "[4]"}},
      {"BatchNormRunningStatLength",
       [](graph& g) {
         batch_norm(ph(g, "x", {2, 3}), ph(g, "gamma", {3}), ph(g, "beta", {3}), running(g, "rm", 2),
                    running(g, "rv", 3));
       },
       {"op 'batch_norm_stats'", "'rm'", "running mean must be [C] = [3]", "[2]"}},
      {"BatchNormRunningStatDtype",
       [](graph& g) {
         batch_norm(ph(g, "x", {2, 3}), ph(g, "gamma", {3}), ph(g, "beta", {3}), running(g, "rm", 3),
                    g.variable("rv", {3}, init::zeros(), dtype::f64, false));
       },
       {"op 'batch_norm_stats'", "running variance is f64 but the input is f32"}},
      {"BatchNormRunningStatPlaceholder",
       [](graph& g) {
         batch_norm(ph(g, "x", {2, 3}), ph(g, "gamma", {3}), ph(g, "beta", {3}), ph(g, "rm", {3}), running(g, "rv", 3));
       },
       {"batch_norm: the running mean 'rm' must be a non-trainable variable", "op placeholder"}},
      {"BatchNormRunningStatTrainable",
       [](graph& g) {
         batch_norm(ph(g, "x", {2, 3}), ph(g, "gamma", {3}), ph(g, "beta", {3}), running(g, "rm", 3),
                    g.variable("rv", {3}, init::zeros()));
       },
       {"the running variance 'rv' must be a non-trainable variable", "a trainable variable"}},
      {"BatchNormEpsilon",
       [](graph& g) { models::batch_norm_layer(ph(g, "x", {2, 3}), "bn/", {.eps = 0}); },
       {"op 'batch_norm_stats'", "epsilon must be a positive number, got 0"}},
      {"BatchNormMomentum",
       [](graph& g) { models::batch_norm_layer(ph(g, "x", {2, 3}), "bn/", {.momentum = 1.5}); },
       {"op 'batch_norm_stats'", "momentum must be in [0, 1], got 1.5"}},
      {"BatchNormIntegerInput", [](graph& g) { models::batch_norm_layer(ph(g, "x", {2, 3}, dtype::i64), "bn/"); },
       {"op 'batch_norm_stats'", "input must be a float tensor, got i64"}},
      {"LayerNormGammaLength",
       [](graph& g) { layer_norm(ph(g, "x", {4, 8}), ph(g, "gamma", {6}), ph(g, "beta", {8})); },
       {"op 'layer_norm'", "node 'layer_norm'", "gamma must be [8]", "got [6]", "[4, 8]"}},
      {"LayerNormBetaDtype",
       [](graph& g) { layer_norm(ph(g, "x", {4, 8}), ph(g, "gamma", {8}), ph(g, "beta", {8}, dtype::f64)); },
       {"op 'layer_norm'", "beta dtype f64 differs from the input's f32"}},
      {"LayerNormScalar", [](graph& g) { layer_norm(ph(g, "x", {}), ph(g, "gamma", {1}), ph(g, "beta", {1})); },
       {"op 'layer_norm'", "rank >= 1"}},
      {"LayerNormEmptyLastAxis",
       [](graph& g) { layer_norm(ph(g, "x", {3, 0}), ph(g, "gamma", {0}), ph(g, "beta", {0})); },
       {"op 'layer_norm'", "empty last axis", "[3, 0]"}},
      {"LayerNormNegativeEpsilon",
       [](graph& g) { layer_norm(ph(g, "x", {2, 4}), ph(g, "gamma", {4}), ph(g, "beta", {4}), -1e-5); },
       {"op 'layer_norm'", "epsilon must be finite and >= 0"}},
      {"LayerNormIntegerInput",
       [](graph& g) {
         layer_norm(ph(g, "x", {2, 4}, dtype::i64), ph(g, "gamma", {4}, dtype::i64), ph(g, "beta", {4}, dtype::i64));
       },
       {"op 'layer_norm'", "input must be a float tensor"}},
      {"AttentionRank", [](graph& g) { attention_probs(ph(g, "q", {2, 3, 4}), ph(g, "k", {2, 3, 4}), {.scale = 1}); },
       {"op 'attention_probs'", "q must be [B, heads, Tq, d] (rank 4), got [2, 3, 4]"}},
      {"AttentionHeadSizes", [](graph& g) { attention_probs(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 2, 5, 8})); },
       {"op 'attention_probs'", "head sizes (d) differ", "[2, 2, 3, 4]", "[2, 2, 5, 8]"}},
      {"AttentionHeads", [](graph& g) { attention_probs(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 4, 5, 4})); },
       {"op 'attention_probs'", "head counts differ"}},
      {"AttentionKeyDtype",
       [](graph& g) { attention_probs(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 2, 5, 4}, dtype::f64)); },
       {"op 'attention_probs'", "k dtype f64 differs from q's f32"}},
      {"AttentionMaskDoesNotBroadcast",
       [](graph& g) {
         attention_probs(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 2, 5, 4}), {.mask = ph(g, "m", {3, 4}, dtype::u8)});
       },
       {"op 'attention_probs'", "mask [3, 4] does not broadcast to the scores", "[2, 2, 3, 5]"}},
      {"AttentionMaskDtype",
       [](graph& g) {
         attention_probs(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 2, 5, 4}), {.mask = ph(g, "m", {5}, dtype::i64)});
       },
       {"op 'attention_probs'", "mask must be u8", "got i64"}},
      {"AttentionNegativeScale",
       [](graph& g) { attention_probs(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 2, 5, 4}), {.scale = -1}); },
       {"op 'attention_probs'", "scale must be finite and > 0"}},
      {"AttentionValueLength",
       [](graph& g) { attention(ph(g, "q", {2, 2, 3, 4}), ph(g, "k", {2, 2, 5, 4}), ph(g, "v", {2, 2, 4, 4})); },
       {"attention: v must be [B, heads, Tk, dv]", "[2, 2, 5, 4]", "[2, 2, 4, 4]"}},
      {"EmbeddingBagIdsRank", [](graph& g) { embedding_bag(ph(g, "table", {6, 3}), ph(g, "ids", {4}, dtype::i64)); },
       {"op 'embedding_bag'", "ids must be [B, L]", "got [4]"}},
      {"EmbeddingBagFloatIds", [](graph& g) { embedding_bag(ph(g, "table", {6, 3}), ph(g, "ids", {2, 4})); },
       {"op 'embedding_bag'", "ids must be i32 or i64"}},
      {"EmbeddingBagTableRank",
       [](graph& g) { embedding_bag(ph(g, "table", {6, 3, 2}), ph(g, "ids", {2, 4}, dtype::i64)); },
       {"op 'embedding_bag'", "table must be [rows, dim] (rank 2), got [6, 3, 2]"}},
      {"NamedNode",
       [](graph& g) {
         expr a = ph(g, "lhs", {3, 4}), b = ph(g, "rhs", {5});
         g.add(op_kind::add, {a.id(), b.id()}, {}, "my_sum");
       },
       {"op 'add'", "node 'my_sum'", "[3, 4]", "[5]"}},
  };
  return cases;
}

class OpBuildError : public testing::TestWithParam<bad_build> {};

TEST_P(OpBuildError, ThrowsNamingOpNodeAndShapes) {
  graph g;
  try {
    GetParam().build(g);
    FAIL() << "no luoshu_error thrown";
  } catch (const luoshu_error& e) {
    std::string msg = e.what();
    for (const auto& s : GetParam().expect) EXPECT_NE(msg.find(s), std::string::npos) << "missing " << s << " in: " << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpBuildError, testing::ValuesIn(bad_builds()),
                         [](const testing::TestParamInfo<bad_build>& i) { return i.param.name; });

class OpRunError : public testing::TestWithParam<bad_run> {};

TEST_P(OpRunError, OutOfRangeIndexIsAnErrorNamingIt) {
  const bad_run& c = GetParam();
  graph g;
  expr data = g.placeholder("data", dtype::f32, shape(c.data_dims));
  expr index = g.placeholder("index", dtype::i64, shape(c.index_dims));
  expr y = c.build(g, data, index);
  variable_store vars;
  kernel_registry reg;
  cpu::register_kernels(reg);
  executor ex(g, vars, reg);
  tensor x = tensor::zeros(dtype::f32, shape(c.data_dims));
  x.fill(0.25);
  auto r = ex.run({{data, x}, {index, tensor::from<int64_t>(shape(c.index_dims), c.bad)}}, {y});
  ASSERT_FALSE(r.ok()) << "out-of-range index accepted";
  for (const auto& s : c.expect)
    EXPECT_NE(r.err().message.find(s), std::string::npos) << "missing " << s << " in: " << r.err().message;
  // The executor is still usable.
  auto ok = ex.run({{data, x}, {index, tensor::from<int64_t>(shape(c.index_dims), c.good)}}, {y});
  EXPECT_TRUE(ok.ok()) << ok.err().message;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpRunError, testing::ValuesIn(bad_runs()),
                         [](const testing::TestParamInfo<bad_run>& i) { return i.param.name; });

} // namespace
