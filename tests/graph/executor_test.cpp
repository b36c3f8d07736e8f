// Tests of the local executor: feeds, fetches and targets, error reporting,
// plan reuse across batch sizes, buffer reuse and its safety.

#include "graph/executor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "graph/autodiff.hpp"
#include "graph/builder.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

namespace luoshu {
namespace {

constexpr int64_t U = shape::unknown;

kernel_registry cpu_kernels() {
  kernel_registry r;
  cpu::register_kernels(r);
  return r;
}

std::vector<tensor> run_ok(executor& ex, const feed_map& feeds, const std::vector<expr>& fetches,
                           const std::vector<expr>& targets = {}, const run_options& ro = {}) {
  auto r = ex.run(feeds, fetches, targets, ro);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
  return r.ok() ? *r : std::vector<tensor>{};
}

std::string run_error(executor& ex, const feed_map& feeds, const std::vector<expr>& fetches) {
  auto r = ex.run(feeds, fetches);
  EXPECT_FALSE(r.ok()) << "the run succeeded";
  return r.ok() ? std::string() : r.err().message;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

bool bitwise_equal(const tensor& a, const tensor& b) {
  return a.type() == b.type() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(Executor, FeedsFetchesAndTargets) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {3});
  auto w = g.variable("w", {3}, init::constant(1));
  auto y = x * w + 1.0;
  auto grad = g.constant(tensor::from<float>({3}, {1, 2, 3}), "grad");
  auto lr = g.constant(tensor::scalar<float>(0.5f), "lr");
  auto upd = g.add(op_kind::sgd_update, {w.id(), grad.id(), lr.id()}, {}, "w/update");

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  feed_map feeds{{x, tensor::from<float>({3}, {2, 3, 4})}};

  // Fetches come back in order; the feed itself can be fetched.
  auto out = run_ok(ex, feeds, {y, x});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].to_doubles(), (std::vector<double>{3, 4, 5}));
  EXPECT_EQ(out[1].to_doubles(), (std::vector<double>{2, 3, 4}));
  EXPECT_EQ(vars.get("w").to_doubles(), (std::vector<double>{1, 1, 1}));

  // A target runs after every reader: y still sees the old w.
  out = run_ok(ex, feeds, {y}, {upd});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to_doubles(), (std::vector<double>{3, 4, 5}));
  EXPECT_EQ(vars.get("w").to_doubles(), (std::vector<double>{0.5, 0, -0.5}));

  // Targets alone, no fetches.
  out = run_ok(ex, {}, {}, {upd});
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(vars.get("w").to_doubles(), (std::vector<double>{0, -1, -2}));
  out = run_ok(ex, feeds, {y});
  EXPECT_EQ(out[0].to_doubles(), (std::vector<double>{1, -2, -7}));
}

TEST(Executor, MissingFeedNamesThePlaceholder) {
  graph g;
  auto x = g.placeholder("images", dtype::f32, {U, 2});
  auto y = g.placeholder("scale", dtype::f32, {});
  auto z = sum(x * y);
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  std::string msg = run_error(ex, {{x, tensor::zeros(dtype::f32, {1, 2})}}, {z});
  EXPECT_TRUE(contains(msg, "'scale'")) << msg;
  EXPECT_TRUE(contains(msg, "feed")) << msg;

  // Feeding a non-placeholder is an error too.
  msg = run_error(ex, {{x, tensor::zeros(dtype::f32, {1, 2})}, {y, tensor::scalar<float>(1)},
                       {z, tensor::scalar<float>(1)}},
                  {z});
  EXPECT_TRUE(contains(msg, "placeholder")) << msg;
}

TEST(Executor, WrongFeedShapeOrDtypeNamesBoth) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {U, 3});
  auto y = relu(x);
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);

  std::string msg = run_error(ex, {{x, tensor::zeros(dtype::f32, {2, 4})}}, {y});
  EXPECT_TRUE(contains(msg, "'x'")) << msg;
  EXPECT_TRUE(contains(msg, "[2, 4]")) << msg;
  EXPECT_TRUE(contains(msg, "[?, 3]")) << msg;

  msg = run_error(ex, {{x, tensor::zeros(dtype::f32, {6})}}, {y});
  EXPECT_TRUE(contains(msg, "[6]")) << msg;
  EXPECT_TRUE(contains(msg, "[?, 3]")) << msg;

  msg = run_error(ex, {{x, tensor::zeros(dtype::f64, {2, 3})}}, {y});
  EXPECT_TRUE(contains(msg, "'x'")) << msg;
  EXPECT_TRUE(contains(msg, "f64")) << msg;
  EXPECT_TRUE(contains(msg, "f32")) << msg;

  // The executor is still usable after errors.
  auto out = run_ok(ex, {{x, tensor::from<float>({1, 3}, {-1, 0, 2})}}, {y});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to_doubles(), (std::vector<double>{0, 0, 2}));
}

TEST(Executor, PlanServesDifferentBatchSizes) {
  graph g;
  auto x = g.placeholder("x", dtype::f64, {U, 3});
  auto w = g.variable("w", {3, 2}, init::constant(1), dtype::f64);
  auto b = g.variable("b", {2}, init::constant(0.5), dtype::f64);
  auto h = matmul(square(x), w) + b; // [?, 2]: each entry = sum x^2 + 0.5
  auto rowsum = sum(h, {1});         // [?]
  auto total = mean(h);              // []

  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto check = [&](int64_t n) {
    std::vector<double> xs(static_cast<size_t>(n * 3));
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i % 5) - 1.5;
    auto out = run_ok(ex, {{x, tensor::from<double>({n, 3}, xs)}}, {h, rowsum, total});
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].shape(), shape({n, 2}));
    EXPECT_EQ(out[1].shape(), shape({n}));
    double all = 0;
    for (int64_t r = 0; r < n; ++r) {
      double s = 0.5;
      for (int c = 0; c < 3; ++c) s += xs[static_cast<size_t>(r * 3 + c)] * xs[static_cast<size_t>(r * 3 + c)];
      EXPECT_DOUBLE_EQ(out[0].item(r * 2), s);
      EXPECT_DOUBLE_EQ(out[0].item(r * 2 + 1), s);
      EXPECT_DOUBLE_EQ(out[1].item(r), 2 * s);
      all += 2 * s;
    }
    EXPECT_NEAR(out[2].item(), all / static_cast<double>(2 * n), 1e-12);
  };
  check(2);
  check(7);
  check(1);
  check(2); // back to a size seen before
}

TEST(Executor, DeepChainReusesBuffers) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {256, 256});
  expr y = x;
  for (int i = 0; i < 30; ++i) y = (i % 2 == 0) ? y * 1.5 : y - 0.25;
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  tensor in = tensor::zeros(dtype::f32, {256, 256});
  in.fill(1.0);
  auto out = run_ok(ex, {{x, in}}, {y});
  ASSERT_EQ(out.size(), 1u);
  double want = 1.0;
  for (int i = 0; i < 30; ++i) want = (i % 2 == 0) ? want * 1.5 : want - 0.25;
  EXPECT_NEAR(out[0].item(0), want, 1e-3 * want);
  EXPECT_NEAR(out[0].item(256 * 256 - 1), want, 1e-3 * want);

  const auto& st = ex.stats();
  const size_t one = 256 * 256 * 4;
  EXPECT_GE(st.unshared_bytes, 30 * one);
  EXPECT_LE(st.pool_bytes, 3 * one) << "pool " << st.pool_bytes << " unshared " << st.unshared_bytes;
  EXPECT_LT(st.pool_bytes * 5, st.unshared_bytes);
  EXPECT_LE(st.peak_live_bytes, st.pool_bytes);

  // Without reuse every value gets its own buffer.
  variable_store vars2;
  executor_options no_reuse;
  no_reuse.reuse_buffers = false;
  executor ex2(g, vars2, kr, no_reuse);
  auto out2 = run_ok(ex2, {{x, in}}, {y});
  EXPECT_GE(ex2.stats().pool_bytes, ex2.stats().unshared_bytes);
  ASSERT_EQ(out2.size(), 1u);
  EXPECT_TRUE(bitwise_equal(out[0], out2[0]));
}

/// A small MLP with its backward pass, in f32.
struct mlp {
  graph g;
  expr x, labels, loss;
  std::vector<expr> grads;
  mlp() {
    x = g.placeholder("x", dtype::f32, {U, 6});
    labels = g.placeholder("labels", dtype::i64, {U});
    auto w1 = g.variable("w1", {6, 16}, init::xavier_uniform());
    auto b1 = g.variable("b1", {16}, init::uniform(-0.1, 0.1));
    auto w2 = g.variable("w2", {16, 16}, init::xavier_uniform());
    auto b2 = g.variable("b2", {16}, init::uniform(-0.1, 0.1));
    auto w3 = g.variable("w3", {16, 4}, init::xavier_uniform());
    auto b3 = g.variable("b3", {4}, init::zeros());
    auto h1 = relu(linear(x, w1, b1));
    auto h2 = tanh(matmul(h1, w2) + b2) + h1 * 0.5; // fan-out of h1
    auto logits = linear(sigmoid(h2) * h2, w3, b3);
    loss = mean(softmax_cross_entropy(logits, labels)) + mean(square(w2)) * 0.01;
    for (auto& gr : gradients(loss, {w1, b1, w2, b2, w3, b3})) grads.push_back(gr.dense);
  }
  feed_map feeds(int64_t n) {
    std::vector<float> xs(static_cast<size_t>(n * 6));
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
    std::vector<int64_t> ls(static_cast<size_t>(n));
    for (size_t i = 0; i < ls.size(); ++i) ls[i] = static_cast<int64_t>(i % 4);
    return {{x, tensor::from<float>({n, 6}, xs)}, {labels, tensor::from<int64_t>({n}, ls)}};
  }
  std::vector<expr> fetches() {
    std::vector<expr> f{loss};
    f.insert(f.end(), grads.begin(), grads.end());
    return f;
  }
};

TEST(Executor, LifetimesOnOneSlotNeverOverlap) {
  mlp m;
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(m.g, vars, kr);
  run_ok(ex, m.feeds(8), m.fetches());
  auto lt = ex.last_lifetimes();
  ASSERT_GT(lt.size(), 10u);
  int max_slot = 0;
  for (auto& l : lt) {
    EXPECT_LE(l.begin, l.end);
    max_slot = std::max(max_slot, l.slot);
  }
  EXPECT_LT(static_cast<size_t>(max_slot + 1), lt.size()) << "no slot was ever reused";
  for (size_t i = 0; i < lt.size(); ++i)
    for (size_t j = i + 1; j < lt.size(); ++j) {
      if (lt[i].slot != lt[j].slot) continue;
      bool disjoint = lt[i].end < lt[j].begin || lt[j].end < lt[i].begin;
      EXPECT_TRUE(disjoint) << "slot " << lt[i].slot << ": node " << m.g.at(lt[i].node).name << " ["
                            << lt[i].begin << ", " << lt[i].end << "] and node " << m.g.at(lt[j].node).name
                            << " [" << lt[j].begin << ", " << lt[j].end << "]";
    }
}

TEST(Executor, ReuseAndPoisonModesAgreeBitwise) {
  mlp m;
  auto kr = cpu_kernels();
  executor_options reuse, no_reuse, poison;
  no_reuse.reuse_buffers = false;
  poison.poison_freed = true;
  std::vector<std::vector<tensor>> results;
  for (auto opts : {reuse, no_reuse, poison}) {
    variable_store vars(11);
    executor ex(m.g, vars, kr, opts);
    // Two batch sizes: the second run reuses a pool grown by the first.
    run_ok(ex, m.feeds(16), m.fetches());
    results.push_back(run_ok(ex, m.feeds(8), m.fetches()));
  }
  ASSERT_EQ(results.size(), 3u);
  ASSERT_EQ(results[0].size(), 7u);
  EXPECT_TRUE(std::isfinite(results[0][0].item()));
  for (size_t mode = 1; mode < 3; ++mode) {
    ASSERT_EQ(results[mode].size(), results[0].size());
    for (size_t k = 0; k < results[0].size(); ++k)
      EXPECT_TRUE(bitwise_equal(results[0][k], results[mode][k])) << "mode " << mode << " fetch " << k;
  }
}

// Two conv + relu + 2 x 2 max-pool blocks with 16 channels, trained one
// step: with channel-blocked layouts (where the CPU has them) the images
// between the convolutions stay blocked, and every fetch (the loss, an
// intermediate image, the gradients) equals the plain run's; with reuse and
// poisoning on too.
TEST(Executor, ChannelBlockedLayoutsGiveThePlainResults) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, {U, 3, 8, 8});
  expr labels = g.placeholder("labels", dtype::i64, {U});
  auto var = [&](const char* name, shape s) { return g.variable(name, std::move(s), init::uniform(-0.3, 0.3)); };
  expr w1 = var("w1", {16, 3, 3, 3}), b1 = var("b1", {16}), w2 = var("w2", {16, 16, 3, 3}), b2 = var("b2", {16});
  expr fc = var("fc", {64, 5});
  conv2d_options same{.padding = {1, 1}};
  expr a1 = relu(conv2d(x, w1, b1, same));
  expr h = max_pool2d(relu(conv2d(max_pool2d(a1, {.kernel = {2, 2}}), w2, b2, same)), {.kernel = {2, 2}});
  expr loss = mean(softmax_cross_entropy(matmul(reshape(h, shape{U, 64}), fc), labels));
  std::vector<expr> wrt = {w1, b1, w2, b2, fc};
  auto grads = gradients(loss, wrt);
  std::vector<expr> with_image = {loss, a1}, without_image = {loss};
  for (auto& gr : grads) {
    with_image.push_back(gr.dense);
    without_image.push_back(gr.dense);
  }
  tensor xv(dtype::f32, {4, 3, 8, 8});
  for (int64_t i = 0; i < xv.numel(); ++i) xv.data<float>()[i] = static_cast<float>(std::sin(0.37 * i));
  tensor lv = tensor::from<int64_t>({4}, {0, 3, 1, 4});
  auto kr = cpu_kernels();
  std::vector<std::vector<tensor>> results;
  std::vector<size_t> blocked;
  for (int mode = 0; mode < 4; ++mode) {
    executor_options o;
    o.blocked_layouts = mode != 0;
    o.poison_freed = mode == 2;
    variable_store vars(5);
    executor ex(g, vars, kr, o);
    results.push_back(run_ok(ex, {{x, xv}, {labels, lv}}, mode == 3 ? without_image : with_image));
    blocked.push_back(ex.last_blocked().size());
  }
  EXPECT_EQ(blocked[0], 0u);
  if (kr.channel_block() > 0) {
    // Fetched a1 stays plain; the second block's conv output, relu and
    // pooling (and their gradients) are blocked.
    EXPECT_GE(blocked[1], 6u);
    EXPECT_GT(blocked[3], blocked[1]); // a1 and its pooling too, when not fetched
  } else {
    EXPECT_EQ(blocked[1], 0u);
  }
  for (int mode = 1; mode < 4; ++mode) {
    const auto& got = results[static_cast<size_t>(mode)];
    for (size_t k = 0, r = 0; k < results[0].size(); ++k) {
      if (mode == 3 && k == 1) continue; // not fetched
      ASSERT_LT(r, got.size());
      const tensor &want = results[0][k], &have = got[r++];
      ASSERT_EQ(have.shape(), want.shape()) << "mode " << mode << " fetch " << k;
      auto w = want.to_doubles(), h2 = have.to_doubles();
      for (size_t i = 0; i < w.size(); ++i)
        ASSERT_NEAR(h2[i], w[i], 1e-5 * (1 + std::fabs(w[i]))) << "mode " << mode << " fetch " << k << " at " << i;
    }
  }
}

// More inputs than kernel_call::blocked has bits for (31): the layout pass
// must leave them alone (under UBSan a shift past 31 bits is reported).
TEST(Executor, ANodeWithFortyInputsRuns) {
  graph g;
  std::vector<expr> parts;
  feed_map feeds;
  for (int i = 0; i < 40; ++i) {
    std::string name = "p";
    name.append(std::to_string(i)); // not "p" + ...: GCC 12's -Wrestrict false positive
    parts.push_back(g.placeholder(name, dtype::f32, {1, 2}));
    feeds.push_back({parts.back(), tensor::from<float>({1, 2}, {static_cast<float>(i), -static_cast<float>(i)})});
  }
  expr all = relu(concat(parts, 0));
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  auto out = run_ok(ex, feeds, {all});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].shape(), shape({40, 2}));
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(out[0].data<float>()[2 * i], static_cast<float>(i));
    EXPECT_EQ(out[0].data<float>()[2 * i + 1], 0.0f);
  }
}

TEST(Executor, InferenceModeMakesDropoutIdentity) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {1000});
  auto y = dropout(x, 0.5, 42);
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  tensor in = tensor::zeros(dtype::f32, {1000});
  in.fill(3.0);
  feed_map feeds{{x, in}};

  run_options infer;
  infer.training = false;
  auto out = run_ok(ex, feeds, {y}, {}, infer);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(bitwise_equal(out[0], in));

  run_options train;
  train.step = 3;
  auto t1 = run_ok(ex, feeds, {y}, {}, train);
  ASSERT_EQ(t1.size(), 1u);
  int zeros = 0;
  for (double v : t1[0].to_doubles()) {
    if (v == 0) ++zeros;
    else EXPECT_FLOAT_EQ(v, 6.0f); // kept values are scaled by 1 / (1 - rate)
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  // Same step, same mask; another step, another mask.
  auto t2 = run_ok(ex, feeds, {y}, {}, train);
  EXPECT_TRUE(bitwise_equal(t1[0], t2[0]));
  train.step = 4;
  auto t3 = run_ok(ex, feeds, {y}, {}, train);
  EXPECT_FALSE(bitwise_equal(t1[0], t3[0]));
}

TEST(Executor, KernelErrorNamesTheNode) {
  graph g;
  auto table = g.variable("table", {4, 2}, init::constant(1));
  auto idx = g.placeholder("idx", dtype::i64, {2});
  auto picked = gather(table, idx).named("pick_rows");
  auto y = sum(picked);
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  std::string msg = run_error(ex, {{idx, tensor::from<int64_t>({2}, {1, 4})}}, {y});
  EXPECT_TRUE(contains(msg, "'pick_rows'")) << msg;
  EXPECT_TRUE(contains(msg, "4")) << msg;
  msg = run_error(ex, {{idx, tensor::from<int64_t>({2}, {-1, 0})}}, {y});
  EXPECT_TRUE(contains(msg, "'pick_rows'")) << msg;
  // Valid indices still work afterwards.
  auto out = run_ok(ex, {{idx, tensor::from<int64_t>({2}, {0, 3})}}, {y});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].item(), 4.0);
}

TEST(Executor, FetchedTensorsSurviveLaterRuns) {
  mlp m;
  auto kr = cpu_kernels();
  variable_store vars(3);
  executor ex(m.g, vars, kr);
  auto first = run_ok(ex, m.feeds(8), m.fetches());
  ASSERT_EQ(first.size(), 7u);
  std::vector<tensor> copies;
  for (auto& t : first) copies.push_back(t.clone());

  feed_map other = m.feeds(8);
  other[0].second.fill(-2.0);
  auto second = run_ok(ex, other, m.fetches());
  ASSERT_EQ(second.size(), 7u);
  EXPECT_FALSE(bitwise_equal(first[0], second[0])) << "the second run should compute something else";
  for (size_t k = 0; k < first.size(); ++k) EXPECT_TRUE(bitwise_equal(first[k], copies[k])) << "fetch " << k;

  // Fetching a variable returns a snapshot, not the live value.
  auto w = m.g.find("w1");
  auto snap = run_ok(ex, {}, {w});
  ASSERT_EQ(snap.size(), 1u);
  tensor before = snap[0].clone();
  vars.get("w1").fill(0.0);
  EXPECT_TRUE(bitwise_equal(snap[0], before));
}

TEST(Executor, VariableReplacedWithAnotherShapeIsAnError) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2, 3});
  auto w = g.variable("w", {3, 4}, init::uniform(-1, 1));
  auto y = matmul(x, w);
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  tensor xv = tensor::zeros(dtype::f32, {2, 3});
  run_ok(ex, {{x, xv}}, {y});
  vars.set("w", tensor::zeros(dtype::f32, {5, 4})); // behind the executor's back
  std::string msg = run_error(ex, {{x, xv}}, {y});
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[5, 4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 4]"), std::string::npos) << msg;
}

TEST(Executor, ReportsMemoryStats) {
  graph g;
  auto w = g.variable("w", {10, 10}, init::zeros(), dtype::f64);
  auto y = sum(w * 2.0);
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  run_ok(ex, {}, {y});
  EXPECT_EQ(ex.stats().variable_bytes, 800u);
  EXPECT_GT(ex.stats().pool_bytes, 0u);
  EXPECT_EQ(ex.stats().peak_bytes(), ex.stats().pool_bytes + 800u);
}

} // namespace
} // namespace luoshu
