// The graph partitioner: a training graph cut by layers runs, unit by unit
// in one process, exactly like the uncut graph.

#include "graph/partition.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "graph/builder.hpp"
#include "graph/optimizer.hpp"
#include "ops/kernel.hpp"
#include "ops/random.hpp"

namespace luoshu {
namespace {

struct mlp {
  graph g;
  expr x, y, loss;
  train_ops ops;
  mlp() {
    x = g.placeholder("x", dtype::f32, {-1, 12});
    y = g.placeholder("y", dtype::i64, {-1});
    expr h = relu(linear(x, g.variable("w1", {12, 16}, init::he_uniform()), g.variable("b1", {16}, init::zeros())));
    h = tanh(linear(h, g.variable("w2", {16, 8}, init::he_uniform()), g.variable("b2", {8}, init::zeros())));
    expr logits = linear(h, g.variable("w3", {8, 4}, init::he_uniform()), g.variable("b3", {4}, init::zeros()));
    loss = mean(softmax_cross_entropy(logits, y)).named("loss");
    optimizer_config cfg;
    cfg.kind = optimizer_config::kind_t::momentum;
    cfg.lr.base = 0.1;
    ops = minimize(loss, cfg);
  }
};

std::pair<tensor, tensor> batch(int step) {
  tensor x(dtype::f32, {6, 12});
  tensor y(dtype::i64, {6});
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data<float>()[i] = static_cast<float>(ops::uniform01(static_cast<uint64_t>(step), static_cast<uint64_t>(i)) * 2 - 1);
  for (int64_t i = 0; i < 6; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(ops::mix64(static_cast<uint64_t>(step * 10 + i)) % 4);
  return {x, y};
}

kernel_registry cpu_kernels() {
  kernel_registry r;
  cpu::register_kernels(r);
  return r;
}

TEST(Partition, LayerSplitHasForwardAndBackwardUnits) {
  mlp m;
  auto place = place_by_variables(m.g, {{"w1", 0}, {"b1", 0}}, 1);
  auto plan = partition_graph(m.g, place, {m.loss}, m.ops.updates);
  EXPECT_EQ(plan.partitions, 2);
  ASSERT_EQ(plan.units.size(), 3u);
  // forward of layer 1; the rest forward + backward; then layer 1's backward.
  EXPECT_EQ(plan.units[0].partition, 0);
  EXPECT_EQ(plan.units[1].partition, 1);
  EXPECT_EQ(plan.units[2].partition, 0);
  EXPECT_EQ(plan.units[0].wave, 0);
  EXPECT_EQ(plan.units[2].wave, 2);
  // The first hidden layer goes to layer 2 (unit 1) and stays for relu's
  // gradient in layer 1's backward unit (unit 2, same process).
  ASSERT_EQ(plan.units[0].sends.size(), 1u);
  EXPECT_EQ(plan.units[0].sends[0].to, (std::vector<int>{1, 2}));
  EXPECT_EQ(plan.units[1].fetches.size(), 1u); // the loss lives with the last layer
  EXPECT_EQ(plan.units[0].targets.size(), 0u);
  EXPECT_EQ(plan.units[2].targets.size(), 2u); // w1 and b1 updated on partition 0
  EXPECT_EQ(plan.units[1].targets.size(), 4u);
  // Unit 2 gets the gradient of the first hidden layer from unit 1.
  bool from1 = false;
  for (auto& s : plan.units[1].sends)
    for (int to : s.to) from1 = from1 || to == 2;
  EXPECT_TRUE(from1);
}

void expect_same_training(int partitions_wanted, const std::map<std::string, int>& owner, int fallback) {
  mlp whole, cut;
  auto kr = cpu_kernels();
  variable_store single(5);
  executor ex(whole.g, single, kr);
  optimizer_config cfg;
  cfg.kind = optimizer_config::kind_t::momentum;
  cfg.lr.base = 0.1;

  auto place = place_by_variables(cut.g, owner, fallback);
  auto plan = partition_graph(cut.g, place, {cut.loss}, cut.ops.updates);
  ASSERT_EQ(plan.partitions, partitions_wanted);
  std::vector<std::unique_ptr<variable_store>> stores;
  std::vector<variable_store*> ptrs;
  for (int p = 0; p < plan.partitions; ++p) {
    stores.push_back(std::make_unique<variable_store>(5)); // same seed: same initial values
    ptrs.push_back(stores.back().get());
  }
  for (int step = 0; step < 5; ++step) {
    auto [xv, yv] = batch(step);
    tensor lr = tensor::scalar<float>(0.1f);
    auto a = ex.run({{whole.x, xv}, {whole.y, yv}, {whole.ops.lr, lr}}, {whole.loss}, whole.ops.updates);
    ASSERT_TRUE(a.ok()) << a.err().message;
    auto b = run_plan_locally(plan, ptrs, kr, {{"x", xv}, {"y", yv}, {"lr", lr}}, 1);
    ASSERT_TRUE(b.ok()) << b.err().message;
    EXPECT_EQ(a->at(0).item(), b->at(0).item()) << "step " << step;
  }
  // Every variable (and slot) ends bitwise equal on its owning partition.
  for (auto& [name, t] : single.all()) {
    bool found = false;
    for (auto* s : ptrs)
      if (s->contains(name)) {
        found = true;
        const tensor& u = s->get(name);
        ASSERT_EQ(u.nbytes(), t.nbytes());
        EXPECT_EQ(std::memcmp(u.raw(), t.raw(), t.nbytes()), 0) << name;
      }
    EXPECT_TRUE(found) << name;
  }
}

TEST(Partition, TwoPartitionTrainingEqualsSingleProcess) { expect_same_training(2, {{"w1", 0}, {"b1", 0}}, 1); }

TEST(Partition, ThreePartitionTrainingEqualsSingleProcess) {
  expect_same_training(3, {{"w1", 0}, {"b1", 0}, {"w2", 1}, {"b2", 1}, {"w3", 2}, {"b3", 2}}, 2);
}

TEST(Partition, CrossPartitionVariableReadIsNamed) {
  graph g;
  auto x = g.placeholder("x", dtype::f32, {2, 3});
  auto w = g.variable("w", {3, 3}, init::zeros());
  auto y = matmul(x, w);
  auto z = matmul(y, w); // reads w again
  std::vector<int> place(g.size(), 0);
  place[static_cast<size_t>(z.id())] = 1;
  try {
    partition_graph(g, place, {z}, {});
    FAIL() << "expected an error";
  } catch (const luoshu_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("reads variable 'w'"), std::string::npos) << m;
  }
}

} // namespace
} // namespace luoshu
