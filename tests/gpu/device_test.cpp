// Every op on the device against the CPU, and training on the device.
//
// Built twice from this one source:
//   - gpu_test: the CUDA backend on a real GPU (the whole executable reports
//     itself skipped, exit 77, where no CUDA device is usable);
//   - gpu_emu_test (LUOSHU_TEST_EMULATED): the same CUDA kernel sources built
//     for the host (ops/cuda/gpu.cuh), which checks their indexing and the
//     executor's device path on any machine. It says nothing about CUDA
//     itself; only gpu_test does.
//
// Bounds (relative norm of the difference to the CPU's result): 1e-5 in f32
// (or the larger bound a case declares against its float64 reference), and
// 1e-12 in f64. Kernels are deterministic except those that scatter with
// atomic adds (embedding and gather gradients, scatter_add_like): their
// summation order varies, which the same bounds absorb.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "graph/models.hpp"
#include "graph/optimizer.hpp"
#include "tests/ops/op_cases.hpp"

#ifdef LUOSHU_TEST_EMULATED
#include "ops/cuda/emulated.hpp"
#endif

using namespace luoshu;
using namespace luoshu::op_cases;

namespace {

void register_device(kernel_registry& r) {
#ifdef LUOSHU_TEST_EMULATED
  cuda_emu::register_kernels(r);
#else
  cuda::register_kernels(r);
#endif
}

const device dev = device::cuda(0);

struct registries {
  kernel_registry cpu_reg, dev_reg;
  registries() {
    cpu::register_kernels(cpu_reg);
    register_device(dev_reg);
  }
};
const registries& regs() {
  static const registries r;
  return r;
}

executor_options on_device() {
  executor_options o;
  o.device = dev;
  return o;
}

/// Runs `fetches` on the CPU and on the device from the same feeds.
void run_both(graph& g, const feed_map& feeds, const exprs& fetches, std::vector<tensor>& cpu_out,
              std::vector<tensor>& dev_out) {
  variable_store v1, v2;
  executor cpu_ex(g, v1, regs().cpu_reg);
  executor dev_ex(g, v2, regs().dev_reg, on_device());
  auto a = cpu_ex.run(feeds, fetches);
  ASSERT_TRUE(a.ok()) << "cpu: " << a.err().message;
  auto b = dev_ex.run(feeds, fetches);
  ASSERT_TRUE(b.ok()) << "device: " << b.err().message;
  cpu_out = *a;
  dev_out = *b;
}

void expect_same(const std::vector<tensor>& cpu_out, const std::vector<tensor>& dev_out, double tol,
                 const std::string& what) {
  ASSERT_EQ(cpu_out.size(), dev_out.size());
  for (size_t k = 0; k < cpu_out.size(); ++k) {
    EXPECT_TRUE(dev_out[k].on_host()) << what << " " << k << ": fetched values come back to the host";
    EXPECT_EQ(dev_out[k].type(), cpu_out[k].type()) << what << " " << k;
    EXPECT_EQ(dev_out[k].shape().to_string(), cpu_out[k].shape().to_string()) << what << " " << k;
    EXPECT_TRUE(close_by_norm(dev_out[k].to_doubles(), cpu_out[k].to_doubles(), tol)) << what << " " << k;
  }
}

double f32_bound(const op_case& c) { return std::max(1e-5, c.f32_tol); }

void check_forward(const op_case& c, dtype ft) {
  nds vals = draw_inputs(c);
  graph g;
  feed_map feeds;
  exprs ins = make_placeholders(g, c, ft, vals, feeds);
  exprs outs = c.build(ins);
  std::vector<tensor> a, b;
  run_both(g, feeds, outs, a, b);
  expect_same(a, b, ft == dtype::f32 ? f32_bound(c) : 1e-12, "output");
}

void check_gradient(const op_case& c, dtype ft) {
  nds vals = draw_inputs(c);
  graph g;
  feed_map feeds;
  exprs ins = make_placeholders(g, c, ft, vals, feeds);
  exprs outs = c.build(ins);
  for (auto& y : outs) // the weights are f64: the op itself still runs in ft
    if (y.type() != dtype::f64) y = cast(y, dtype::f64);
  expr loss = weighted_loss(g, outs, c.name);
  exprs wrt;
  for (size_t k = 0; k < ins.size(); ++k)
    if (c.inputs[k].differentiable()) wrt.push_back(ins[k]);
  auto grads = gradients(loss, wrt);
  exprs fetch;
  for (size_t k = 0; k < grads.size(); ++k) fetch.push_back(grads[k].densified(wrt[k]));
  std::vector<tensor> a, b;
  run_both(g, feeds, fetch, a, b);
  expect_same(a, b, ft == dtype::f32 ? f32_bound(c) : 1e-12, "gradient");
}

class DeviceForward : public testing::TestWithParam<op_case> {};
TEST_P(DeviceForward, F32MatchesCpu) { check_forward(GetParam(), dtype::f32); }
TEST_P(DeviceForward, F64MatchesCpu) { check_forward(GetParam(), dtype::f64); }

class DeviceGradient : public testing::TestWithParam<op_case> {};
TEST_P(DeviceGradient, F32MatchesCpu) { check_gradient(GetParam(), dtype::f32); }
TEST_P(DeviceGradient, F64MatchesCpu) { check_gradient(GetParam(), dtype::f64); }

std::string case_name(const testing::TestParamInfo<op_case>& info) { return info.param.name; }
INSTANTIATE_TEST_SUITE_P(AllOps, DeviceForward, testing::ValuesIn(all_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(AllOps, DeviceGradient, testing::ValuesIn(differentiable_cases()), case_name);

TEST(DeviceReduce, LargeGroupsMatchTheCpu) {
  // Groups long enough for the chunked tree of partial passes.
  struct shape_axes {
    dims_t dims;
    std::vector<int64_t> axes;
  };
  for (const auto& sa : {shape_axes{{1 << 20}, {0}}, shape_axes{{3, 300001}, {1}}, shape_axes{{300001, 3}, {0}},
                         shape_axes{{7, 4099, 5}, {0, 1}}}) {
    graph g;
    expr x = g.placeholder("x", dtype::f64, shape(sa.dims));
    rng r("large-reduce");
    std::vector<double> v(static_cast<size_t>(numel_of(sa.dims)));
    for (auto& e : v) e = r.uniform(-1, 1);
    exprs outs = {sum(x, sa.axes), mean(x, sa.axes), max(x, sa.axes), min(x, sa.axes), norm(x, sa.axes)};
    std::vector<tensor> a, b;
    run_both(g, {{x, tensor::from<double>(shape(sa.dims), v)}}, outs, a, b);
    expect_same(a, b, 1e-12, "reduction of " + dims_str(sa.dims));
  }
}

TEST(DeviceCoverage, EveryComputeOpHasADeviceKernel) {
  std::string missing;
  for (int k = 0; k < op_count; ++k) {
    auto op = static_cast<op_kind>(k);
    if (info(op).flags & op_flag_source) continue;
    if (!regs().dev_reg.supports(op, device::kind_t::cuda)) missing += std::string(" ") + name(op);
  }
  EXPECT_TRUE(missing.empty()) << "ops without a CUDA kernel:" << missing;
}

class DeviceRunError : public testing::TestWithParam<bad_run> {};

TEST_P(DeviceRunError, OutOfRangeIndexIsAnErrorNamingIt) {
  const bad_run& c = GetParam();
  graph g;
  expr data = g.placeholder("data", dtype::f32, shape(c.data_dims));
  expr index = g.placeholder("index", dtype::i64, shape(c.index_dims));
  expr y = c.build(g, data, index);
  variable_store vars;
  executor ex(g, vars, regs().dev_reg, on_device());
  tensor x = tensor::zeros(dtype::f32, shape(c.data_dims));
  x.fill(0.25);
  auto r = ex.run({{data, x}, {index, tensor::from<int64_t>(shape(c.index_dims), c.bad)}}, {y});
  ASSERT_FALSE(r.ok()) << "out-of-range index accepted";
  for (const auto& s : c.expect)
    EXPECT_NE(r.err().message.find(s), std::string::npos) << "missing " << s << " in: " << r.err().message;
  auto ok = ex.run({{data, x}, {index, tensor::from<int64_t>(shape(c.index_dims), c.good)}}, {y});
  EXPECT_TRUE(ok.ok()) << "the executor stays usable: " << ok.err().message;
}

INSTANTIATE_TEST_SUITE_P(AllOps, DeviceRunError, testing::ValuesIn(bad_runs()),
                         [](const testing::TestParamInfo<bad_run>& i) { return i.param.name; });

TEST(DeviceErrors, IntegerDivisionByZeroNamesTheNode) {
  graph g;
  expr a = g.placeholder("a", dtype::i32, shape{3});
  expr b = g.placeholder("b", dtype::i32, shape{3});
  expr q = div(a, b);
  variable_store vars;
  executor ex(g, vars, regs().dev_reg, on_device());
  auto r = ex.run({{a, tensor::from<int32_t>(shape{3}, {1, 2, 3})}, {b, tensor::from<int32_t>(shape{3}, {1, 0, 1})}},
                  {q});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("division by zero"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("'" + q.name() + "'"), std::string::npos) << r.err().message;
}

TEST(DeviceErrors, AMissingDeviceIsAnErrorNotACrash) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, shape{2});
  variable_store vars;
  executor_options o;
  o.device = device::cuda(99);
  executor ex(g, vars, regs().dev_reg, o);
  auto r = ex.run({{x, tensor::zeros(dtype::f32, shape{2})}}, {relu(x)});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("cuda:99"), std::string::npos) << r.err().message;
}

TEST(DeviceErrors, ACpuOnlyRegistryRefusesTheDevice) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, shape{2});
  variable_store vars;
  executor ex(g, vars, regs().cpu_reg, on_device());
  auto r = ex.run({{x, tensor::zeros(dtype::f32, shape{2})}}, {relu(x)});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("cuda:0"), std::string::npos) << r.err().message;
}

// --- training on the device -------------------------------------------------------

struct mlp_problem {
  graph g;
  expr x, y, loss, acc;
  tensor xs, ys;
  explicit mlp_problem(int64_t batch = 64) {
    x = g.placeholder("x", dtype::f32, shape{-1, 20});
    y = g.placeholder("y", dtype::i64, shape{-1});
    expr logits = models::mlp(x, {32, 32, 5});
    loss = mean(softmax_cross_entropy(logits, y));
    acc = accuracy(logits, y);
    // A learnable rule: the class is the argmax of 5 fixed sums of features.
    rng r("mlp_problem");
    std::vector<float> xv(static_cast<size_t>(batch * 20));
    std::vector<int64_t> yv(static_cast<size_t>(batch));
    for (auto& v : xv) v = static_cast<float>(r.uniform(-1, 1));
    for (int64_t i = 0; i < batch; ++i) {
      int best = 0;
      double bv = -1e9;
      for (int k = 0; k < 5; ++k) {
        double s = 0;
        for (int j = 0; j < 4; ++j) s += xv[static_cast<size_t>(i * 20 + k * 4 + j)];
        if (s > bv) {
          bv = s;
          best = k;
        }
      }
      yv[static_cast<size_t>(i)] = best;
    }
    xs = tensor::from<float>(shape{batch, 20}, xv);
    ys = tensor::from<int64_t>(shape{batch}, yv);
  }
};

std::vector<double> train_losses(optimizer_config cfg, const kernel_registry& reg, executor_options o, int steps,
                                 variable_store& vars) {
  mlp_problem p;
  executor ex(p.g, vars, reg, o);
  trainer t(p.g, p.loss, cfg, ex);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    auto r = t.step({{p.x, p.xs}, {p.y, p.ys}});
    if (!r.ok()) {
      ADD_FAILURE() << r.err().message;
      return losses;
    }
    losses.push_back((*r)[0].item());
  }
  return losses;
}

class DeviceTraining : public testing::TestWithParam<optimizer_config::kind_t> {};

TEST_P(DeviceTraining, MlpFollowsTheCpuLossCurve) {
  optimizer_config cfg;
  cfg.kind = GetParam();
  cfg.lr.base = cfg.kind == optimizer_config::kind_t::adam || cfg.kind == optimizer_config::kind_t::adamw ? 0.01 : 0.1;
  cfg.weight_decay = 1e-4;
  cfg.clip_norm = 5;
  variable_store cv(7), dv(7);
  auto cpu_l = train_losses(cfg, regs().cpu_reg, {}, 30, cv);
  auto dev_l = train_losses(cfg, regs().dev_reg, on_device(), 30, dv);
  ASSERT_EQ(cpu_l.size(), dev_l.size());
  ASSERT_EQ(cpu_l.size(), 30u);
  EXPECT_LT(cpu_l.back(), cpu_l.front() * 0.8) << "the problem must be learnable for the comparison to mean anything";
  for (size_t i = 0; i < cpu_l.size(); ++i)
    EXPECT_NEAR(dev_l[i], cpu_l[i], 1e-4 * std::max(1.0, std::fabs(cpu_l[i]))) << "step " << i;
  // Variables live on the device after training, and read back equal.
  for (const auto& [n, t] : dv.all()) {
    EXPECT_FALSE(t.on_host()) << n;
    EXPECT_TRUE(close_by_norm(t.to_doubles(), cv.get(n).to_doubles(), 1e-4)) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, DeviceTraining,
                         testing::Values(optimizer_config::kind_t::sgd, optimizer_config::kind_t::momentum,
                                         optimizer_config::kind_t::nesterov, optimizer_config::kind_t::adagrad,
                                         optimizer_config::kind_t::adam, optimizer_config::kind_t::adamw),
                         [](const testing::TestParamInfo<optimizer_config::kind_t>& i) {
                           return std::string(optimizer_config::name(i.param));
                         });

class DeviceSparseTraining : public testing::TestWithParam<optimizer_config::kind_t> {};

TEST_P(DeviceSparseTraining, EmbeddingRowsUpdateLikeTheCpu) {
  auto build_and_train = [&](const kernel_registry& reg, executor_options o, variable_store& vars) {
    graph g;
    expr ids = g.placeholder("ids", dtype::i64, shape{-1, 3});
    expr y = g.placeholder("y", dtype::f32, shape{-1});
    expr table = g.variable("table", {50, 8}, init::normal(0, 0.1));
    expr w = g.variable("w", {8, 1}, init::xavier_uniform());
    expr e = sum(embedding(table, ids), {1}); // [b, 8]
    expr logit = reshape(matmul(e, w), shape{-1});
    expr loss = mean(bce_with_logits(logit, y));
    optimizer_config cfg;
    cfg.kind = GetParam();
    cfg.lr.base = 0.05;
    executor ex(g, vars, reg, o);
    trainer t(g, loss, cfg, ex);
    std::vector<double> losses;
    rng r("sparse");
    for (int s = 0; s < 10; ++s) {
      std::vector<int64_t> iv(24);
      std::vector<float> yv(8);
      for (auto& v : iv) v = static_cast<int64_t>(r.next() % 50);
      for (auto& v : yv) v = static_cast<float>(r.next() % 2);
      auto res = t.step({{ids, tensor::from<int64_t>(shape{8, 3}, iv)}, {y, tensor::from<float>(shape{8}, yv)}});
      if (!res.ok()) {
        ADD_FAILURE() << res.err().message;
        break;
      }
      losses.push_back((*res)[0].item());
    }
    return losses;
  };
  variable_store cv(3), dv(3);
  auto a = build_and_train(regs().cpu_reg, {}, cv);
  auto b = build_and_train(regs().dev_reg, on_device(), dv);
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * std::max(1.0, std::fabs(a[i]))) << "step " << i;
  for (const auto& [n, t] : cv.all()) EXPECT_TRUE(close_by_norm(dv.get(n).to_doubles(), t.to_doubles(), 1e-5)) << n;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, DeviceSparseTraining,
                         testing::Values(optimizer_config::kind_t::sgd, optimizer_config::kind_t::momentum,
                                         optimizer_config::kind_t::adagrad, optimizer_config::kind_t::adam),
                         [](const testing::TestParamInfo<optimizer_config::kind_t>& i) {
                           return std::string(optimizer_config::name(i.param));
                         });

TEST(DeviceDropout, MaskMatchesTheCpuForTheSameSeedAndStep) {
  graph g;
  expr x = g.placeholder("x", dtype::f32, shape{1000});
  expr y = dropout(x, 0.3, 42);
  tensor xs(dtype::f32, shape{1000});
  xs.fill(1.0);
  for (int64_t step : {0, 5}) {
    variable_store v1, v2;
    executor a(g, v1, regs().cpu_reg), b(g, v2, regs().dev_reg, on_device());
    run_options ro;
    ro.step = step;
    auto ra = a.run({{x, xs}}, {y}, {}, ro);
    auto rb = b.run({{x, xs}}, {y}, {}, ro);
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ((*ra)[0].to_doubles(), (*rb)[0].to_doubles()) << "step " << step;
  }
}

// --- tensors, variables and streams ---------------------------------------------------

TEST(DeviceTensors, HostAccessToDeviceMemoryIsAClearError) {
  graph g;
  expr w = g.variable("w", {3}, init::constant(2));
  variable_store vars;
  executor ex(g, vars, regs().dev_reg, on_device());
  auto r = ex.run({}, {w * 3.0});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ((*r)[0].to_doubles(), (std::vector<double>{6, 6, 6}));
  const tensor& dw = vars.get("w");
  ASSERT_FALSE(dw.on_host());
  EXPECT_EQ(dw.device(), dev);
  try {
    (void)dw.data<float>();
    ADD_FAILURE() << "host pointer to device memory handed out";
  } catch (const luoshu_error& e) {
    EXPECT_NE(std::string(e.what()).find("to_host()"), std::string::npos) << e.what();
  }
  EXPECT_EQ(dw.to_doubles(), (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(dw.clone().to_doubles(), (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(dw.cast(dtype::i32).to_host().type(), dtype::i32);
  EXPECT_NE(dw.to_string().find("2"), std::string::npos);
}

TEST(DeviceTensors, CheckpointOfDeviceVariablesRestoresOnTheCpu) {
  variable_store dv(11);
  auto losses = train_losses(optimizer_config{}, regs().dev_reg, on_device(), 3, dv);
  ASSERT_EQ(losses.size(), 3u);
  std::string path = testing::TempDir() + "/device_ckpt.lsc";
  auto saved = dv.save(path);
  ASSERT_TRUE(saved.ok()) << saved.err().message;
  variable_store back(0);
  for (const auto& [n, t] : dv.all()) back.set(n, tensor::zeros(t.type(), t.shape()));
  ASSERT_TRUE(back.load(path).ok());
  for (const auto& [n, t] : dv.all()) EXPECT_EQ(back.get(n).to_doubles(), t.to_doubles()) << n;
}

TEST(DeviceStreams, ExecutorsOnTheirOwnStreamsRunConcurrently) {
  // Two executors (as two compute actors would), each with its own stream,
  // driven from two threads; both must get the single-threaded answer.
  optimizer_config cfg;
  variable_store ref(5);
  auto want = train_losses(cfg, regs().dev_reg, on_device(), 8, ref);
  std::vector<double> got[2];
  std::thread ts[2];
  variable_store vs[2] = {variable_store(5), variable_store(5)};
  for (int i = 0; i < 2; ++i)
    ts[i] = std::thread([&, i] { got[i] = train_losses(cfg, regs().dev_reg, on_device(), 8, vs[i]); });
  for (auto& t : ts) t.join();
  for (int i = 0; i < 2; ++i) EXPECT_EQ(got[i], want) << "executor " << i;
}

} // namespace
