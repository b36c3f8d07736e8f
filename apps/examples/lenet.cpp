// LeNet-5 on Fashion-MNIST, written against the public C++ API only (the
// same model and optimizer as apps/examples/lenet_fashion_mnist.yaml):
// conv5x5x6 (pad 2) - relu - maxpool2 - conv5x5x16 - relu - maxpool2 -
// 120 - relu - 84 - relu - 10.
//
//   build/apps/examples/lenet [DATA_DIR] [EPOCHS]
//
// DATA_DIR defaults to /usr/share/datasets/fashion-mnist, EPOCHS to 15.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "apps/examples/fit.hpp"
#include "graph/luoshu.hpp"

using namespace luoshu;

int main(int argc, char** argv) {
  auto args = examples::parse_dir_and_epochs(argc, argv, 15);
  if (!args) return 2;
  const int epochs = args->epochs;
  auto sets = examples::read_fashion_mnist(args->dir);
  if (!sets) return 1;

  // The reader gives rows of 784 pixels; the convolutions see [N, 1, 28, 28].
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 784});
  expr y = g.placeholder("y", dtype::i64, {-1});
  auto conv = [&](expr in, const std::string& name, int64_t out, int64_t channels, conv2d_options o) {
    return conv2d(in, g.variable(name + "/w", {out, channels, 5, 5}, init::he_uniform()),
                  g.variable(name + "/b", {out}, init::zeros()), o);
  };
  auto dense = [&](expr in, const std::string& name, int64_t from, int64_t to) {
    return linear(in, g.variable(name + "/w", {from, to}, init::he_uniform()), g.variable(name + "/b", {to}, init::zeros()));
  };
  expr img = reshape(x, {-1, 1, 28, 28});
  expr c1 = max_pool2d(relu(conv(img, "conv1", 6, 1, {.padding = {2, 2}})), {.kernel = {2, 2}}); // [N, 6, 14, 14]
  expr c2 = max_pool2d(relu(conv(c1, "conv2", 16, 6, {})), {.kernel = {2, 2}});                   // [N, 16, 5, 5]
  expr f = reshape(c2, {-1, 16 * 5 * 5});
  expr h1 = relu(dense(f, "dense1", 400, 120));
  expr h2 = relu(dense(h1, "dense2", 120, 84));
  expr logits = dense(h2, "dense3", 84, 10);
  expr loss = mean(softmax_cross_entropy(logits, y));
  expr acc = accuracy(logits, y);

  kernel_registry kernels;
  cpu::register_kernels(kernels);
  variable_store vars(/*seed=*/1);
  executor ex(g, vars, kernels);
  const int64_t batch = 64;
  const int64_t steps_per_epoch = (sets->train.size() + batch - 1) / batch;
  optimizer_config opt;
  opt.kind = optimizer_config::kind_t::adam;
  opt.lr.base = 0.002;
  opt.lr.kind = lr_schedule::kind_t::cosine;
  opt.lr.total_steps = steps_per_epoch * epochs;
  trainer tr(g, loss, opt, ex);

  return examples::fit(tr, x, y, acc, std::move(sets->train), std::move(sets->test), batch, epochs);
}
