// A Transformer encoder classifier on Fashion-MNIST, written against the
// public C++ API only (the same model and optimizer as
// apps/examples/transformer_fashion_mnist.yaml): each image is a sequence of
// 28 tokens (its rows) of 28 pixels; models::transformer_classifier projects
// them to d_model 64, adds a learned positional embedding, runs 2 pre-LN
// encoder layers (4 heads, GELU feed-forward 128, dropout 0.1), averages the
// tokens and maps them to 10 logits.
//
//   build/apps/examples/transformer_fashion_mnist [DATA_DIR] [EPOCHS]
//
// DATA_DIR defaults to /usr/share/datasets/fashion-mnist, EPOCHS to 15
// (AdamW, lr 0.002 with 500 warm-up steps and a cosine decay over the run).

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

  // The reader gives rows of 784 pixels; the encoder sees [N, 28, 28] tokens.
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, 784});
  expr y = g.placeholder("y", dtype::i64, {-1});
  models::transformer_classifier_options model;
  model.layer = {.d_model = 64, .heads = 4, .ffn = 128, .dropout = 0.1, .pre_norm = true};
  model.layers = 2;
  model.outputs = 10;
  expr logits = models::transformer_classifier(reshape(x, {-1, 28, 28}), model);
  expr loss = mean(softmax_cross_entropy(logits, y));
  expr acc = accuracy(logits, y);

  kernel_registry kernels;
  cpu::register_kernels(kernels);
  variable_store vars(/*seed=*/1);
  executor ex(g, vars, kernels);
  const int64_t batch = 64;
  const int64_t steps_per_epoch = (sets->train.size() + batch - 1) / batch;
  optimizer_config opt;
  opt.kind = optimizer_config::kind_t::adamw;
  opt.lr.base = 0.002;
  opt.weight_decay = 0.01;
  opt.lr.kind = lr_schedule::kind_t::cosine;
  opt.lr.warmup_steps = 500;
  opt.lr.total_steps = steps_per_epoch * epochs;
  trainer tr(g, loss, opt, ex);

  return examples::fit(tr, x, y, acc, std::move(sets->train), std::move(sets->test), batch, epochs);
}
