// Tests of the optimizers (against textbook formulas written out here),
// sparse vs dense updates, learning-rate schedules and global-norm clipping.

#include "graph/optimizer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "graph/builder.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

namespace luoshu {
namespace {

using K = optimizer_config::kind_t;

kernel_registry cpu_kernels() {
  kernel_registry r;
  cpu::register_kernels(r);
  return r;
}

std::vector<double> values_of(const variable_store& vars, const std::string& name) {
  return vars.get(name).to_doubles();
}

void expect_rel_near(const std::vector<double>& got, const std::vector<double>& want, double rel,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rel * std::max(1.0, std::abs(want[i]))) << what << " at " << i;
}

/// The optimizer state of the reference implementation below.
struct ref_state {
  std::vector<double> w, s0, s1;
  int64_t t = 0;
};

/// One update, written from the textbook (PyTorch conventions), independent
/// of ops/update_rules.hpp.
void ref_step(const optimizer_config& cfg, double eps, double lr, const std::vector<double>& grad,
              ref_state& s) {
  const double mu = cfg.momentum, b2 = cfg.beta2, wd = cfg.weight_decay;
  s.s0.resize(s.w.size(), cfg.kind == K::adagrad ? cfg.adagrad_init : 0.0);
  s.s1.resize(s.w.size(), 0.0);
  ++s.t;
  for (size_t i = 0; i < s.w.size(); ++i) {
    double& w = s.w[i];
    double g = grad[i];
    switch (cfg.kind) {
      case K::sgd:
        g += wd * w;
        w -= lr * g;
        break;
      case K::momentum:
        g += wd * w;
        s.s0[i] = mu * s.s0[i] + g;
        w -= lr * s.s0[i];
        break;
      case K::nesterov:
        g += wd * w;
        s.s0[i] = mu * s.s0[i] + g;
        w -= lr * (g + mu * s.s0[i]);
        break;
      case K::adagrad:
        g += wd * w;
        s.s0[i] += g * g;
        w -= lr * g / (std::sqrt(s.s0[i]) + eps);
        break;
      case K::adam:
      case K::adamw: {
        if (cfg.kind == K::adamw) w -= lr * wd * w; // decoupled decay
        else g += wd * w;
        s.s0[i] = mu * s.s0[i] + (1 - mu) * g;
        s.s1[i] = b2 * s.s1[i] + (1 - b2) * g * g;
        double mhat = s.s0[i] / (1 - std::pow(mu, static_cast<double>(s.t)));
        double vhat = s.s1[i] / (1 - std::pow(b2, static_cast<double>(s.t)));
        w -= lr * mhat / (std::sqrt(vhat) + eps);
        break;
      }
    }
  }
}

/// Trains loss = sum(w * c) (so the gradient is c) for three steps and
/// compares w after each step with ref_step.
void check_three_steps(const optimizer_config& cfg, dtype t, const std::vector<double>& c) {
  const std::string what = std::string(optimizer_config::name(cfg.kind)) + " " + name(t) +
                           " wd=" + std::to_string(cfg.weight_decay);
  const std::vector<double> w0{1.0, -2.0, 0.5, 3.0};
  graph g;
  auto w = g.variable("w", {4}, init::zeros(), t);
  auto ct = g.constant(tensor::from<double>({4}, c).cast(t), "c");
  auto loss = sum(w * ct);
  auto kr = cpu_kernels();
  variable_store vars;
  vars.set("w", tensor::from<double>({4}, w0).cast(t));
  executor ex(g, vars, kr);
  trainer tr(g, loss, cfg, ex);
  ASSERT_EQ(tr.ops().updates.size(), 1u);
  ASSERT_EQ(tr.ops().params.size(), 1u);

  ref_state ref;
  ref.w = w0;
  const double rel = t == dtype::f64 ? 1e-6 : 1e-5;
  for (int step = 0; step < 3; ++step) {
    double lr = cfg.lr.at(step);
    auto before = values_of(vars, "w");
    auto r = tr.step({});
    ASSERT_TRUE(r.ok()) << what << ": " << r.err().message;
    // The loss is computed from the weights before the update.
    double loss_before = 0, scale = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      loss_before += before[i] * c[i];
      scale += std::abs(before[i] * c[i]);
    }
    EXPECT_NEAR((*r)[0].item(), loss_before, 1e-6 * scale) << what;
    ref_step(cfg, cfg.eps, lr, c, ref);
    expect_rel_near(values_of(vars, "w"), ref.w, rel, what + " step " + std::to_string(step + 1));
  }
  EXPECT_EQ(tr.steps_done(), 3);
  if (cfg.kind == K::adam || cfg.kind == K::adamw) {
    EXPECT_EQ(vars.get("w/t").item(), 3.0) << what;
    expect_rel_near(values_of(vars, "w/m"), ref.s0, rel, what + " m");
    expect_rel_near(values_of(vars, "w/v"), ref.s1, rel, what + " v");
  } else if (cfg.kind == K::momentum || cfg.kind == K::nesterov) {
    expect_rel_near(values_of(vars, "w/velocity"), ref.s0, rel, what + " velocity");
  } else if (cfg.kind == K::adagrad) {
    expect_rel_near(values_of(vars, "w/accumulator"), ref.s0, rel, what + " accumulator");
  }
}

optimizer_config config(K kind, double lr, double wd) {
  optimizer_config cfg;
  cfg.kind = kind;
  cfg.lr.base = lr;
  cfg.weight_decay = wd;
  return cfg;
}

const std::vector<double> grad_c{0.5, -1.0, 2.0, 0.25};

TEST(Optimizer, SgdMatchesFormula) {
  for (dtype t : {dtype::f64, dtype::f32}) {
    check_three_steps(config(K::sgd, 0.125, 0), t, grad_c);
    check_three_steps(config(K::sgd, 0.125, 0.1), t, grad_c);
  }
}

TEST(Optimizer, MomentumMatchesFormula) {
  for (dtype t : {dtype::f64, dtype::f32}) {
    check_three_steps(config(K::momentum, 0.125, 0), t, grad_c);
    auto cfg = config(K::momentum, 0.25, 0.05);
    cfg.momentum = 0.8;
    check_three_steps(cfg, t, grad_c);
  }
}

TEST(Optimizer, NesterovMatchesFormula) {
  for (dtype t : {dtype::f64, dtype::f32}) {
    check_three_steps(config(K::nesterov, 0.125, 0), t, grad_c);
    check_three_steps(config(K::nesterov, 0.125, 0.1), t, grad_c);
  }
}

TEST(Optimizer, AdagradMatchesFormula) {
  for (dtype t : {dtype::f64, dtype::f32}) {
    auto cfg = config(K::adagrad, 0.5, 0);
    cfg.eps = 1e-6;
    check_three_steps(cfg, t, grad_c);
    cfg.adagrad_init = 0.1;
    cfg.weight_decay = 0.1;
    check_three_steps(cfg, t, grad_c);
  }
}

TEST(Optimizer, AdamMatchesFormula) {
  for (dtype t : {dtype::f64, dtype::f32}) {
    check_three_steps(config(K::adam, 0.125, 0), t, grad_c);
    auto cfg = config(K::adam, 0.25, 0.1); // L2 added to the gradient
    cfg.momentum = 0.8;
    cfg.beta2 = 0.99;
    cfg.eps = 1e-3;
    check_three_steps(cfg, t, grad_c);
  }
}

TEST(Optimizer, AdamwMatchesFormula) {
  for (dtype t : {dtype::f64, dtype::f32}) {
    check_three_steps(config(K::adamw, 0.125, 0.1), t, grad_c);
    auto cfg = config(K::adamw, 0.5, 0.2);
    cfg.eps = 1e-2;
    check_three_steps(cfg, t, grad_c);
  }
}

TEST(Optimizer, AdamwDecayIsDecoupledFromTheGradient) {
  // The first Adam step moves every weight by lr (|m_hat / sqrt(v_hat)| = 1,
  // up to eps). Decoupled decay shrinks w by lr * wd * w on top; L2 decay
  // instead folds wd * w into the gradient, where it only changes the sign.
  auto adamw = config(K::adamw, 0.125, 0.5);
  auto adam_l2 = config(K::adam, 0.125, 0.5);
  for (auto cfg : {adamw, adam_l2}) {
    graph g;
    auto w = g.variable("w", {2}, init::zeros(), dtype::f64);
    auto loss = sum(w * g.constant(tensor::from<double>({2}, {1.0, 1.0})));
    auto kr = cpu_kernels();
    variable_store vars;
    vars.set("w", tensor::from<double>({2}, {4.0, -4.0}));
    executor ex(g, vars, kr);
    trainer tr(g, loss, cfg, ex);
    ASSERT_TRUE(tr.step({}).ok());
    auto v = values_of(vars, "w");
    if (cfg.kind == K::adamw) {
      EXPECT_NEAR(v[0], 4.0 - 0.125 * 0.5 * 4.0 - 0.125, 1e-7);
      EXPECT_NEAR(v[1], -4.0 + 0.125 * 0.5 * 4.0 - 0.125, 1e-7);
    } else {
      EXPECT_NEAR(v[0], 4.0 - 0.125, 1e-7); // g + wd w = 3 > 0: one lr step down
      EXPECT_NEAR(v[1], -4.0 + 0.125, 1e-7); // g + wd w = -1 < 0: one lr step up
    }
  }
}

TEST(Optimizer, AdamF32FirstStepMovesByLr) {
  // At step 1, m_hat = g and v_hat = g^2 exactly, so with a negligible eps
  // each weight moves by lr * sign(g). In f32 that holds to float precision
  // (~1e-7) when 1 - beta2 is formed in double as PyTorch does; forming it
  // from beta2 already rounded to f32 (1 - 0.999f = 1.0000467e-3) while the
  // bias correction uses the double value gives v_hat = g^2 (1 - 1.3e-5), so
  // each step is 6.4e-6 too long (relative).
  for (K kind : {K::adam, K::adamw}) {
    graph g;
    auto w = g.variable("w", {3}, init::zeros(), dtype::f32);
    auto loss = sum(w * g.constant(tensor::from<float>({3}, {0.5f, -2.0f, 0.125f})));
    auto kr = cpu_kernels();
    variable_store vars;
    executor ex(g, vars, kr);
    auto cfg = config(kind, 0.5, 0); // beta1 0.9, beta2 0.999, eps 1e-8
    trainer tr(g, loss, cfg, ex);
    ASSERT_TRUE(tr.step({}).ok());
    auto v = values_of(vars, "w");
    EXPECT_NEAR(v[0], -0.5, 1e-6) << optimizer_config::name(kind);
    EXPECT_NEAR(v[1], 0.5, 1e-6) << optimizer_config::name(kind);
    EXPECT_NEAR(v[2], -0.5, 1e-6) << optimizer_config::name(kind);
  }
}

TEST(Optimizer, AdagradUsesTheConfiguredEpsilon) {
  // optimizer.hpp: eps (default 1e-8) is the adam and adagrad denominator
  // term. With a gradient of 1e-6, sqrt(acc) = 1e-6 after one step, so the
  // epsilon shows: eps = 1e-8 moves w by lr * 0.990, 1e-10 by lr * 0.9999.
  graph g;
  auto w = g.variable("w", {1}, init::zeros(), dtype::f64);
  auto loss = sum(w * g.constant(tensor::from<double>({1}, {1e-6})));
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  optimizer_config cfg;
  cfg.kind = K::adagrad;
  cfg.lr.base = 1.0;
  trainer tr(g, loss, cfg, ex);
  ASSERT_TRUE(tr.step({}).ok());
  double want = -1.0 * 1e-6 / (1e-6 + 1e-8);
  EXPECT_NEAR(vars.get("w").item(), want, 1e-9) << "adagrad's default epsilon is not 1e-8";
}

/// An embedding model trained with one optimizer, reading the table either
/// through embedding() (sparse gradient) or one_hot(ids) x table (dense).
struct embedding_run {
  std::vector<double> table, slot0, slot1;
  bool sparse = false;
  double first_grad_norm = -1; ///< the global norm of the first step (clipping only)
};

const std::vector<int64_t> emb_ids{2, 5, 2, 7, 5, 2};
const std::vector<int64_t> emb_touched{2, 5, 7};

std::vector<double> initial_table() {
  std::vector<double> t(40);
  for (size_t i = 0; i < t.size(); ++i) t[i] = std::cos(0.9 * static_cast<double>(i)) * 0.5;
  return t;
}

embedding_run train_embedding(const optimizer_config& cfg, bool use_embedding, int steps) {
  graph g;
  auto ids = g.placeholder("ids", dtype::i64, {6});
  auto table = g.variable("table", {10, 4}, init::zeros(), dtype::f64);
  auto rows = use_embedding ? embedding(table, ids) : matmul(one_hot(ids, 10, dtype::f64), table);
  std::vector<double> target(24);
  for (size_t i = 0; i < target.size(); ++i) target[i] = static_cast<double>(i % 5) * 0.3 - 0.4;
  auto loss = sum(square(rows - g.constant(tensor::from<double>({6, 4}, target)))) * 0.5;
  auto kr = cpu_kernels();
  variable_store vars;
  vars.set("table", tensor::from<double>({10, 4}, initial_table()));
  executor ex(g, vars, kr);
  trainer tr(g, loss, cfg, ex);
  embedding_run out;
  out.sparse = tr.ops().grads.at(0).sparse();
  feed_map feeds{{ids, tensor::from<int64_t>({6}, emb_ids)}};
  for (int s = 0; s < steps; ++s) {
    std::vector<expr> extra;
    if (tr.ops().grad_norm.valid()) extra.push_back(tr.ops().grad_norm);
    auto r = tr.step(feeds, extra);
    EXPECT_TRUE(r.ok()) << r.err().message;
    if (s == 0 && r.ok() && !extra.empty()) out.first_grad_norm = (*r)[1].item();
  }
  out.table = values_of(vars, "table");
  auto slot = [&](const char* n) {
    return vars.contains(std::string("table/") + n) ? values_of(vars, std::string("table/") + n)
                                                     : std::vector<double>{};
  };
  if (cfg.kind == K::momentum || cfg.kind == K::nesterov) out.slot0 = slot("velocity");
  if (cfg.kind == K::adagrad) out.slot0 = slot("accumulator");
  if (cfg.kind == K::adam || cfg.kind == K::adamw) {
    out.slot0 = slot("m");
    out.slot1 = slot("v");
  }
  return out;
}

bool touched(size_t row) {
  for (auto r : emb_touched)
    if (static_cast<size_t>(r) == row) return true;
  return false;
}

TEST(Optimizer, SparseUpdatesMatchDenseOnTouchedRowsOnly) {
  for (K kind : {K::sgd, K::momentum, K::nesterov, K::adagrad, K::adam, K::adamw}) {
    auto cfg = config(kind, 0.125, 0.05);
    cfg.adagrad_init = 0.1;
    const std::string what = optimizer_config::name(kind);
    auto sp = train_embedding(cfg, true, 3);
    auto de = train_embedding(cfg, false, 3);
    EXPECT_TRUE(sp.sparse) << what;
    EXPECT_FALSE(de.sparse) << what;
    auto init_table = initial_table();
    for (size_t row = 0; row < 10; ++row)
      for (size_t col = 0; col < 4; ++col) {
        size_t i = row * 4 + col;
        if (touched(row)) {
          EXPECT_NEAR(sp.table[i], de.table[i], 1e-9) << what << " row " << row;
          if (!sp.slot0.empty()) {
            EXPECT_NEAR(sp.slot0[i], de.slot0[i], 1e-9) << what << " slot0 row " << row;
          }
          if (!sp.slot1.empty()) {
            EXPECT_NEAR(sp.slot1[i], de.slot1[i], 1e-9) << what << " slot1 row " << row;
          }
          EXPECT_NE(sp.table[i], init_table[i]) << what << " row " << row << " was not trained";
        } else {
          EXPECT_EQ(sp.table[i], init_table[i]) << what << " untouched row " << row << " changed";
          double slot_init = kind == K::adagrad ? 0.1 : 0.0;
          if (!sp.slot0.empty()) {
            EXPECT_EQ(sp.slot0[i], slot_init) << what << " slot0 of untouched row " << row;
          }
          if (!sp.slot1.empty()) {
            EXPECT_EQ(sp.slot1[i], 0.0) << what << " slot1 of untouched row " << row;
          }
        }
      }
  }
}

/// Mean bags with padding (-1) read through embedding_bag() (sparse
/// gradient) or as a constant bag-weight matrix times the table (dense).
embedding_run train_bags(const optimizer_config& cfg, bool use_bag, int steps) {
  graph g;
  const std::vector<int64_t> ids_v{2, 5, -1, 7, -1, 2, -1, -1, -1}; // bag 2: padding only
  auto ids = g.placeholder("ids", dtype::i64, {3, 3});
  auto table = g.variable("table", {10, 4}, init::zeros(), dtype::f64);
  expr rows;
  if (use_bag) {
    rows = embedding_bag(table, ids, {.mean = true, .padding_id = -1});
  } else {
    std::vector<double> w(30, 0.0);
    for (int b = 0; b < 3; ++b) {
      int n = 0;
      for (int j = 0; j < 3; ++j) n += ids_v[static_cast<size_t>(b * 3 + j)] >= 0;
      for (int j = 0; j < 3; ++j)
        if (auto v = ids_v[static_cast<size_t>(b * 3 + j)]; v >= 0) w[static_cast<size_t>(b * 10 + v)] += 1.0 / n;
    }
    rows = matmul(g.constant(tensor::from<double>({3, 10}, w)), table);
  }
  std::vector<double> target(12);
  for (size_t i = 0; i < target.size(); ++i) target[i] = static_cast<double>(i % 5) * 0.3 - 0.4;
  auto loss = sum(square(rows - g.constant(tensor::from<double>({3, 4}, target)))) * 0.5;
  auto kr = cpu_kernels();
  variable_store vars;
  vars.set("table", tensor::from<double>({10, 4}, initial_table()));
  executor ex(g, vars, kr);
  trainer tr(g, loss, cfg, ex);
  embedding_run out;
  out.sparse = tr.ops().grads.at(0).sparse();
  feed_map feeds{{ids, tensor::from<int64_t>({3, 3}, ids_v)}};
  for (int s = 0; s < steps; ++s) {
    auto r = tr.step(feeds);
    EXPECT_TRUE(r.ok()) << r.err().message;
  }
  out.table = values_of(vars, "table");
  if (cfg.kind == K::momentum) out.slot0 = values_of(vars, "table/velocity");
  if (cfg.kind == K::adam) {
    out.slot0 = values_of(vars, "table/m");
    out.slot1 = values_of(vars, "table/v");
  }
  return out;
}

TEST(Optimizer, EmbeddingBagSparseUpdatesTouchNoRowForPadding) {
  for (K kind : {K::sgd, K::momentum, K::adagrad, K::adam}) {
    auto cfg = config(kind, 0.125, 0.05);
    const std::string what = optimizer_config::name(kind);
    auto sp = train_bags(cfg, true, 3);
    auto de = train_bags(cfg, false, 3);
    EXPECT_TRUE(sp.sparse) << what;
    EXPECT_FALSE(de.sparse) << what;
    auto init_table = initial_table();
    for (size_t row = 0; row < 10; ++row)
      for (size_t col = 0; col < 4; ++col) {
        size_t i = row * 4 + col;
        if (row == 2 || row == 5 || row == 7) {
          EXPECT_NEAR(sp.table[i], de.table[i], 1e-9) << what << " row " << row;
          EXPECT_NE(sp.table[i], init_table[i]) << what << " row " << row << " was not trained";
          if (!sp.slot1.empty()) {
            EXPECT_NEAR(sp.slot1[i], de.slot1[i], 1e-9) << what << " slot1 row " << row;
          }
        } else {
          // Padding ids touch no row: not even row 0 moves (momentum and adam would).
          EXPECT_EQ(sp.table[i], init_table[i]) << what << " untouched row " << row << " changed";
          if (!sp.slot0.empty()) {
            EXPECT_EQ(sp.slot0[i], 0.0) << what << " slot0 of untouched row " << row;
          }
        }
      }
  }
}

TEST(LrSchedule, ConstantAndWarmup) {
  lr_schedule s;
  s.base = 0.1;
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(12345), 0.1);
  s.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(s.at(0), 0.025);
  EXPECT_DOUBLE_EQ(s.at(1), 0.05);
  EXPECT_DOUBLE_EQ(s.at(2), 0.075);
  EXPECT_DOUBLE_EQ(s.at(3), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100), 0.1);
}

TEST(LrSchedule, StepDecay) {
  lr_schedule s;
  s.kind = lr_schedule::kind_t::step;
  s.base = 0.1;
  s.step_size = 10;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(9), 0.1);
  EXPECT_DOUBLE_EQ(s.at(10), 0.05);
  EXPECT_DOUBLE_EQ(s.at(19), 0.05);
  EXPECT_DOUBLE_EQ(s.at(25), 0.025);
  // The decay clock starts after the warm-up.
  s.warmup_steps = 5;
  EXPECT_DOUBLE_EQ(s.at(1), 0.04);
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  EXPECT_DOUBLE_EQ(s.at(15), 0.05);
}

TEST(LrSchedule, ExponentialDecay) {
  lr_schedule s;
  s.kind = lr_schedule::kind_t::exponential;
  s.base = 0.1;
  s.step_size = 10;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_NEAR(s.at(5), 0.1 * std::sqrt(0.5), 1e-15);
  EXPECT_NEAR(s.at(10), 0.05, 1e-15);
  EXPECT_NEAR(s.at(20), 0.025, 1e-15);
  EXPECT_NEAR(s.at(13), 0.1 * std::pow(0.5, 1.3), 1e-15);
}

TEST(LrSchedule, CosineDecay) {
  lr_schedule s;
  s.kind = lr_schedule::kind_t::cosine;
  s.base = 0.1;
  s.min_lr = 0.01;
  s.total_steps = 100;
  EXPECT_NEAR(s.at(0), 0.1, 1e-15);
  EXPECT_NEAR(s.at(25), 0.01 + 0.045 * (1 + std::sqrt(0.5)), 1e-12);
  EXPECT_NEAR(s.at(50), 0.055, 1e-12);
  EXPECT_NEAR(s.at(75), 0.01 + 0.045 * (1 - std::sqrt(0.5)), 1e-12);
  EXPECT_NEAR(s.at(100), 0.01, 1e-12);
  EXPECT_NEAR(s.at(500), 0.01, 1e-12); // stays at the floor
  // With a warm-up, the cosine spans the remaining steps.
  s.warmup_steps = 10;
  s.total_steps = 110;
  EXPECT_NEAR(s.at(0), 0.01, 1e-15);
  EXPECT_NEAR(s.at(9), 0.1, 1e-15);
  EXPECT_NEAR(s.at(10), 0.1, 1e-15);
  EXPECT_NEAR(s.at(60), 0.055, 1e-12);
  EXPECT_NEAR(s.at(110), 0.01, 1e-12);
}

TEST(LrSchedule, ParsesNames) {
  EXPECT_EQ(lr_schedule::parse("constant"), lr_schedule::kind_t::constant);
  EXPECT_EQ(lr_schedule::parse("step"), lr_schedule::kind_t::step);
  EXPECT_EQ(lr_schedule::parse("exponential"), lr_schedule::kind_t::exponential);
  EXPECT_EQ(lr_schedule::parse("cosine"), lr_schedule::kind_t::cosine);
  EXPECT_FALSE(lr_schedule::parse("linear").has_value());
  for (K k : {K::sgd, K::momentum, K::nesterov, K::adagrad, K::adam, K::adamw})
    EXPECT_EQ(optimizer_config::parse(optimizer_config::name(k)), k);
  EXPECT_FALSE(optimizer_config::parse("rmsprop").has_value());
}

TEST(Trainer, FeedsTheScheduledLearningRate) {
  graph g;
  auto w = g.variable("w", {2}, init::zeros(), dtype::f64);
  auto loss = sum(w * g.constant(tensor::from<double>({2}, {1, -2})));
  auto kr = cpu_kernels();
  variable_store vars;
  executor ex(g, vars, kr);
  optimizer_config cfg;
  cfg.lr.kind = lr_schedule::kind_t::step;
  cfg.lr.base = 0.5;
  cfg.lr.step_size = 1;
  cfg.lr.gamma = 0.5;
  trainer tr(g, loss, cfg, ex);
  EXPECT_DOUBLE_EQ(tr.current_lr(), 0.5);
  ASSERT_TRUE(tr.step({}).ok());
  EXPECT_EQ(values_of(vars, "w"), (std::vector<double>{-0.5, 1.0}));
  EXPECT_DOUBLE_EQ(tr.current_lr(), 0.25);
  ASSERT_TRUE(tr.step({}).ok());
  ASSERT_TRUE(tr.step({}).ok());
  EXPECT_EQ(values_of(vars, "w"), (std::vector<double>{-0.875, 1.75}));
  EXPECT_EQ(tr.steps_done(), 3);

  // infer() runs no update.
  auto r = tr.infer({}, {loss});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_DOUBLE_EQ((*r)[0].item(), -0.875 - 3.5);
  EXPECT_EQ(values_of(vars, "w"), (std::vector<double>{-0.875, 1.75}));
  EXPECT_EQ(tr.steps_done(), 3);
}

TEST(Trainer, MinimizeWithoutTrainableVariablesThrows) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2});
  auto s = g.variable("frozen", {2}, init::zeros(), dtype::f32, false);
  EXPECT_THROW(minimize(sum(x * s), optimizer_config{}), luoshu_error);
}

TEST(Clipping, ScalesUpdateByClipOverGlobalNorm) {
  // Two parameters with gradients {3} and {4}: global norm 5.
  for (double clip : {1.0, 2.5, 10.0}) {
    graph g;
    auto a = g.variable("a", {1}, init::constant(1), dtype::f64);
    auto b = g.variable("b", {1}, init::constant(1), dtype::f64);
    auto loss = sum(a * 3.0) + sum(b * 4.0);
    auto kr = cpu_kernels();
    variable_store vars;
    executor ex(g, vars, kr);
    optimizer_config cfg;
    cfg.lr.base = 0.5;
    cfg.clip_norm = clip;
    trainer tr(g, loss, cfg, ex);
    ASSERT_TRUE(tr.ops().grad_norm.valid());
    auto r = tr.step({}, {tr.ops().grad_norm});
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_NEAR((*r)[1].item(), 5.0, 1e-6);
    double scale = clip < 5.0 ? clip / 5.0 : 1.0;
    EXPECT_NEAR(vars.get("a").item(), 1 - 0.5 * 3 * scale, 1e-6) << "clip " << clip;
    EXPECT_NEAR(vars.get("b").item(), 1 - 0.5 * 4 * scale, 1e-6) << "clip " << clip;
    // The applied update has norm lr * min(clip, 5).
    double da = 1 - vars.get("a").item(), db = 1 - vars.get("b").item();
    EXPECT_NEAR(std::sqrt(da * da + db * db), 0.5 * std::min(clip, 5.0), 1e-6);
  }
}

TEST(Clipping, SparseGradientUsesTheSameNormAsDense) {
  // Row 2 is read three times and row 5 twice: the table's gradient is the
  // sum per row, and so is its norm. Clipped training must not depend on
  // whether the table was read through embedding() or one_hot x table.
  for (K kind : {K::sgd, K::momentum}) {
    auto cfg = config(kind, 0.25, 0);
    cfg.clip_norm = 0.5;
    auto sp = train_embedding(cfg, true, 2);
    auto de = train_embedding(cfg, false, 2);
    ASSERT_TRUE(sp.sparse);
    ASSERT_FALSE(de.sparse);
    ASSERT_GT(de.first_grad_norm, cfg.clip_norm); // clipping is active
    EXPECT_NEAR(sp.first_grad_norm, de.first_grad_norm, 1e-5 * de.first_grad_norm)
        << optimizer_config::name(kind) << ": grad_norm of the sparse gradient";
    for (size_t i = 0; i < sp.table.size(); ++i)
      EXPECT_NEAR(sp.table[i], de.table[i], 1e-6) // the clip scale is formed in f32
          << optimizer_config::name(kind) << " element " << i << " (row " << i / 4 << ")";
  }
}

} // namespace
} // namespace luoshu
