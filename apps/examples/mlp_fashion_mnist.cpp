// MLP 784-256-256-10 on Fashion-MNIST, written against the public C++ API
// only (the same model as apps/examples/mlp_fashion_mnist.yaml).
//
//   build/apps/examples/mlp_fashion_mnist [DATA_DIR] [EPOCHS]
//
// DATA_DIR defaults to /usr/share/datasets/fashion-mnist.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "apps/examples/fit.hpp"
#include "graph/luoshu.hpp"

using namespace luoshu;

int main(int argc, char** argv) {
  auto args = examples::parse_dir_and_epochs(argc, argv, 10);
  if (!args) return 2;
  const int epochs = args->epochs;
  auto sets = examples::read_fashion_mnist(args->dir);
  if (!sets) return 1;

  // The model reads like the math.
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 784});
  expr y = g.placeholder("y", dtype::i64, {-1});
  expr h1 = relu(linear(x, g.variable("w1", {784, 256}, init::he_uniform()), g.variable("b1", {256}, init::zeros())));
  expr h2 = relu(linear(h1, g.variable("w2", {256, 256}, init::he_uniform()), g.variable("b2", {256}, init::zeros())));
  expr logits = linear(h2, g.variable("w3", {256, 10}, init::he_uniform()), g.variable("b3", {10}, init::zeros()));
  expr loss = mean(softmax_cross_entropy(logits, y));
  expr acc = accuracy(logits, y);

  kernel_registry kernels;
  cpu::register_kernels(kernels);
  variable_store vars(/*seed=*/1);
  executor ex(g, vars, kernels);
  optimizer_config opt;
  opt.kind = optimizer_config::kind_t::momentum;
  opt.lr.base = 0.02;
  opt.momentum = 0.9;
  trainer tr(g, loss, opt, ex);

  return examples::fit(tr, x, y, acc, std::move(sets->train), std::move(sets->test), 128, epochs);
}
