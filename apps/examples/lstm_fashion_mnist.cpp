// An LSTM sequence classifier on Fashion-MNIST, written against the public
// C++ API only (the same model and optimizer as
// apps/examples/lstm_fashion_mnist.yaml): each image is a sequence of its 28
// rows of 28 pixels, read by an LSTM with 128 hidden units; a linear layer
// maps the last step's hidden state to the 10 classes.
//
//   OMP_NUM_THREADS=1 build/apps/examples/lstm_fashion_mnist [DATA_DIR] [EPOCHS]
//
// DATA_DIR defaults to /usr/share/datasets/fashion-mnist, EPOCHS to 10.

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

  // The reader gives rows of 784 pixels; the LSTM sees [N, 28 steps, 28 features].
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 784});
  expr y = g.placeholder("y", dtype::i64, {-1});
  expr seq = reshape(x, {-1, 28, 28});
  expr h = models::lstm_layer(seq, 128, "lstm1/"); // [N, 28, 128]: w_x [28, 512], w_h [128, 512], b [512]
  expr last = models::last_step(h);                // [N, 128]
  expr logits = linear(last, g.variable("dense1/w", {128, 10}, init::he_uniform()),
                       g.variable("dense1/b", {10}, init::zeros()));
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
