// Tests of reverse-mode autodiff: gradients against finite differences,
// fan-out, broadcasts, integer paths, stop_gradient, and the error cases.

#include "graph/autodiff.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "graph/builder.hpp"
#include "graph/executor.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

namespace luoshu {
namespace {

kernel_registry cpu_kernels() {
  kernel_registry r;
  cpu::register_kernels(r);
  return r;
}

std::vector<tensor> run_ok(executor& ex, const feed_map& feeds, const std::vector<expr>& fetches) {
  auto r = ex.run(feeds, fetches);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
  return r.ok() ? *r : std::vector<tensor>{};
}

double rel_err(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

TEST(Autodiff, MlpGradientsMatchFiniteDifferences) {
  graph g;
  auto x = g.placeholder("x", dtype::f64, {4, 5});
  auto labels = g.placeholder("labels", dtype::i64, {4});
  auto w1 = g.variable("w1", {5, 7}, init::normal(0, 0.6), dtype::f64);
  auto b1 = g.variable("b1", {7}, init::uniform(-0.5, 0.5), dtype::f64);
  auto w2 = g.variable("w2", {7, 3}, init::normal(0, 0.6), dtype::f64);
  auto b2 = g.variable("b2", {3}, init::uniform(-0.5, 0.5), dtype::f64);
  auto h = tanh(linear(x, w1, b1));
  auto loss = mean(softmax_cross_entropy(linear(h, w2, b2), labels));
  std::vector<expr> params{w1, b1, w2, b2};
  auto grads = gradients(loss, params);
  ASSERT_EQ(grads.size(), 4u);

  std::vector<double> xs(20);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(1.7 * static_cast<double>(i) + 0.3);
  feed_map feeds{{x, tensor::from<double>({4, 5}, xs)},
                 {labels, tensor::from<int64_t>({4}, {0, 2, 1, 2})}};

  auto kr = cpu_kernels();
  variable_store vars(7);
  executor ex(g, vars, kr);
  std::vector<expr> fetches{loss};
  for (auto& gr : grads) {
    ASSERT_FALSE(gr.sparse());
    fetches.push_back(gr.dense);
  }
  auto out = run_ok(ex, feeds, fetches);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(std::isfinite(out[0].item()));

  const double h_step = 1e-5;
  for (size_t p = 0; p < params.size(); ++p) {
    EXPECT_EQ(out[p + 1].shape(), params[p].shape()) << params[p].name();
    tensor value = vars.get(params[p].name());
    double* v = value.data<double>();
    std::vector<double> fd(static_cast<size_t>(value.numel()));
    for (int64_t i = 0; i < value.numel(); ++i) {
      double keep = v[i];
      v[i] = keep + h_step;
      double up = run_ok(ex, feeds, {loss})[0].item();
      v[i] = keep - h_step;
      double down = run_ok(ex, feeds, {loss})[0].item();
      v[i] = keep;
      fd[static_cast<size_t>(i)] = (up - down) / (2 * h_step);
    }
    double err = rel_err(out[p + 1].to_doubles(), fd);
    EXPECT_LT(err, 1e-6) << "gradient of " << params[p].name();
  }
}

TEST(Autodiff, FanOutIsSummed) {
  graph g;
  auto x = g.placeholder("x", dtype::f64, {3});
  auto w = g.variable("w", {3}, init::constant(0.5), dtype::f64);
  auto w2 = g.variable("w2", {3}, init::constant(-2), dtype::f64);
  // x feeds two products, w feeds a product and a square.
  auto loss = sum(x * w + x * w2) + sum(square(w));
  auto grads = gradients(loss, {x, w, w2});

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, {{x, tensor::from<double>({3}, {1, 2, 3})}},
                    {grads[0].dense, grads[1].dense, grads[2].dense});
  ASSERT_EQ(out.size(), 3u);
  expect_near_all(out[0].to_doubles(), {-1.5, -1.5, -1.5}, 1e-12); // w + w2
  expect_near_all(out[1].to_doubles(), {2, 3, 4}, 1e-12);          // x + 2 w
  expect_near_all(out[2].to_doubles(), {1, 2, 3}, 1e-12);          // x
}

TEST(Autodiff, BroadcastGradientIsReducedToBiasShape) {
  graph g;
  auto a = g.placeholder("a", dtype::f64, {4, 3});
  auto bias = g.variable("bias", {3}, init::zeros(), dtype::f64);
  auto k = g.constant(tensor::from<double>({4, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), "k");
  auto loss = sum((a + bias) * k);
  auto grads = gradients(loss, {bias, a});
  EXPECT_EQ(grads[0].dense.shape(), shape({3}));
  EXPECT_EQ(grads[1].dense.shape(), shape({4, 3}));

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, {{a, tensor::zeros(dtype::f64, {4, 3})}}, {grads[0].dense, grads[1].dense});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape(), shape({3}));
  expect_near_all(out[0].to_doubles(), {22, 26, 30}, 1e-12); // column sums of k
  expect_near_all(out[1].to_doubles(), k.get().attrs.value.to_doubles(), 1e-12);

  // Same for an unknown batch dimension, resolved at run time.
  graph g2;
  auto a2 = g2.placeholder("a", dtype::f64, {shape::unknown, 3});
  auto bias2 = g2.variable("bias", {3}, init::constant(1), dtype::f64);
  auto loss2 = sum(square(a2 + bias2)) * 0.5;
  auto gb = gradients(loss2, {bias2})[0].dense;
  EXPECT_EQ(gb.shape(), shape({3}));
  variable_store vars2;
  executor ex2(g2, vars2, kr);
  auto out2 = run_ok(ex2, {{a2, tensor::from<double>({2, 3}, {1, 2, 3, -4, 5, 0})}}, {gb});
  ASSERT_EQ(out2.size(), 1u);
  EXPECT_EQ(out2[0].shape(), shape({3}));
  expect_near_all(out2[0].to_doubles(), {-1, 9, 5}, 1e-12); // column sums of a + 1
}

// An operand whose shape alone fixes a broadcast's output (a batch of -1
// plus a per-channel bias) gets the output's gradient as it is: no
// sum_to_like over a tensor of its own size. One that may be broadcast at
// run time (-1 against -1, or a known 1) still gets summed down.
TEST(Autodiff, OperandThatFixesTheBroadcastGetsTheGradientUnreduced) {
  graph g;
  auto y = g.placeholder("y", dtype::f64, {shape::unknown, 2, 3});
  auto b = g.variable("b", {2, 1}, init::constant(0.5), dtype::f64);
  auto u = g.placeholder("u", dtype::f64, {shape::unknown, 3});
  auto v = g.placeholder("v", dtype::f64, {shape::unknown, 3});
  auto w = g.placeholder("w", dtype::f64, {1, 3});
  auto loss = sum(square(y + b)) + sum(u * v) + sum(u * w);
  auto grads = gradients(loss, {y, b, u, w});
  auto op_of = [&](const expr& e) { return g.at(e.id()).op; };
  // y + b: y's gradient is 2 (y + b) itself; b's is summed down.
  EXPECT_NE(op_of(grads[0].dense), op_kind::sum_to_like);
  EXPECT_EQ(op_of(grads[1].dense), op_kind::sum_to_like);
  // u * v with both batches unknown (either could be 1 at run time), and
  // w's known 1 against u's batch: both need the reduction.
  EXPECT_EQ(op_of(grads[3].dense), op_kind::sum_to_like);

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex,
                    {{y, tensor::from<double>({2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})},
                     {u, tensor::from<double>({2, 3}, {1, 2, 3, 4, 5, 6})},
                     {v, tensor::from<double>({1, 3}, {1, -1, 2})},
                     {w, tensor::zeros(dtype::f64, {1, 3})}},
                    {grads[0].dense, grads[1].dense, grads[2].dense, grads[3].dense});
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].shape(), shape({2, 2, 3}));
  expect_near_all(out[0].to_doubles(), {3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25}, 1e-12);
  expect_near_all(out[1].to_doubles(), {2 * (1 + 2 + 3 + 7 + 8 + 9 + 3), 2 * (4 + 5 + 6 + 10 + 11 + 12 + 3)}, 1e-12);
  // d/du = v (fed with batch 1, broadcast over u's) + w (zeros).
  EXPECT_EQ(out[2].shape(), shape({2, 3}));
  expect_near_all(out[2].to_doubles(), {1, -1, 2, 1, -1, 2}, 1e-12);
  expect_near_all(out[3].to_doubles(), {5, 7, 9}, 1e-12);
}

TEST(Autodiff, IntegerWrtThrowsAndIntegerPathsCarryNoGradient) {
  graph g;
  auto ids = g.placeholder("ids", dtype::i64, {3});
  auto w = g.variable("w", {3}, init::constant(1.5), dtype::f64);
  auto loss = sum(cast(ids, dtype::f64) * w);
  try {
    gradients(loss, {ids});
    FAIL() << "gradient w.r.t. an i64 placeholder did not throw";
  } catch (const luoshu_error& e) {
    EXPECT_NE(std::string(e.what()).find("'ids'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("float"), std::string::npos) << e.what();
  }

  // Rounding w through an integer dtype cuts the path: zero gradient.
  auto rounded = sum(cast(cast(w, dtype::i32), dtype::f64) * 3.0);
  auto through_int = sum(w) + rounded;
  auto grads = gradients(through_int, {w});
  auto wgrad = gradients(loss, {w});

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, {{ids, tensor::from<int64_t>({3}, {4, 5, 6})}},
                    {grads[0].dense, wgrad[0].dense});
  ASSERT_EQ(out.size(), 2u);
  expect_near_all(out[0].to_doubles(), {1, 1, 1}, 1e-12);
  expect_near_all(out[1].to_doubles(), {4, 5, 6}, 1e-12);
}

TEST(Autodiff, StopGradientBlocksFlow) {
  graph g;
  auto w = g.variable("w", {3}, init::constant(2), dtype::f64);
  auto v = g.variable("v", {3}, init::constant(5), dtype::f64);
  auto half = sum(w * stop_gradient(w));  // d/dw = w, not 2w
  auto blocked = sum(stop_gradient(v) * 4.0);
  auto g_half = gradients(half, {w});
  auto g_blocked = gradients(blocked, {v});

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, {}, {g_half[0].dense, g_blocked[0].dense, half});
  ASSERT_EQ(out.size(), 3u);
  expect_near_all(out[0].to_doubles(), {2, 2, 2}, 1e-12);
  expect_near_all(out[1].to_doubles(), {0, 0, 0}, 0);
  EXPECT_DOUBLE_EQ(out[2].item(), 12); // forward is the identity
}

TEST(Autodiff, UnrelatedWrtGetsZeros) {
  graph g;
  auto w = g.variable("w", {2}, init::constant(3), dtype::f32);
  auto unused = g.variable("unused", {2, 3}, init::constant(1), dtype::f32);
  auto loss = sum(square(w));
  auto grads = gradients(loss, {unused, w});
  ASSERT_EQ(grads.size(), 2u);
  ASSERT_FALSE(grads[0].sparse());
  EXPECT_EQ(grads[0].dense.shape(), shape({2, 3}));
  EXPECT_EQ(grads[0].dense.type(), dtype::f32);

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, {}, {grads[0].dense, grads[1].dense});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape(), shape({2, 3}));
  expect_near_all(out[0].to_doubles(), std::vector<double>(6, 0.0), 0);
  expect_near_all(out[1].to_doubles(), {6, 6}, 1e-6);
}

TEST(Autodiff, NonScalarLossThrows) {
  graph g;
  auto w = g.variable("w", {2, 3}, init::zeros());
  auto y = w * 2.0;
  try {
    gradients(y, {w});
    FAIL() << "a [2, 3] loss was accepted";
  } catch (const luoshu_error& e) {
    EXPECT_NE(std::string(e.what()).find("scalar"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
  auto x = g.placeholder("x", dtype::f32, {shape::unknown});
  EXPECT_THROW(gradients(x * 2.0, {x}), luoshu_error);
  auto idx = argmax(w);
  EXPECT_THROW(gradients(sum(idx), {w}), luoshu_error); // integer loss

  graph other;
  auto o = other.variable("o", {2}, init::zeros());
  EXPECT_THROW(gradients(sum(w), {o}), luoshu_error);
}

TEST(Autodiff, EmbeddingGradientIsSparseAndDensifiesToDense) {
  graph g;
  auto ids = g.placeholder("ids", dtype::i64, {5});
  auto table = g.variable("table", {6, 2}, init::normal(0, 1), dtype::f64);
  auto rows = embedding(table, ids);
  auto wts = g.constant(tensor::from<double>({5, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  auto loss = sum(rows * wts);
  auto sparse = gradients(loss, {table}, true)[0];
  auto dense = gradients(loss, {table}, false)[0];
  ASSERT_TRUE(sparse.sparse());
  ASSERT_FALSE(dense.sparse());
  EXPECT_EQ(sparse.indices.type(), dtype::i64);
  EXPECT_EQ(dense.dense.shape(), shape({6, 2}));

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, {{ids, tensor::from<int64_t>({5}, {1, 4, 1, 0, 4})}},
                    {sparse.indices, sparse.values, dense.dense, sparse.densified(table)});
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].to_doubles(), (std::vector<double>{1, 4, 1, 0, 4}));
  EXPECT_EQ(out[1].shape(), shape({5, 2}));
  std::vector<double> want{7, 8, 6, 8, 0, 0, 0, 0, 12, 14, 0, 0};
  expect_near_all(out[2].to_doubles(), want, 1e-12);
  expect_near_all(out[3].to_doubles(), want, 1e-12);
}

} // namespace
} // namespace luoshu
