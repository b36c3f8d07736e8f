// A small ResNet (models::resnet: ResNet-8, stages of 16, 32 and 64
// channels, batch normalization) written against the public C++ API only,
// on CIFAR-10 (binary version) or Fashion-MNIST:
//
//   build/apps/examples/resnet [DATA_DIR] [EPOCHS] [BLOCKS]
//
// A DATA_DIR holding data_batch_1.bin .. data_batch_5.bin and
// test_batch.bin is read as CIFAR-10 ([3, 32, 32] images); any other as
// Fashion-MNIST's IDX files ([1, 28, 28]). DATA_DIR defaults to
// /usr/share/datasets/fashion-mnist, EPOCHS to 5, BLOCKS (residual blocks
// per stage: 1 = ResNet-8, 3 = ResNet-20) to 1. Training updates the batch
// norm's running statistics; the test pass (trainer::infer) uses them.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "apps/examples/fit.hpp"
#include "graph/luoshu.hpp"

using namespace luoshu;

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  int epochs = argc > 2 ? std::atoi(argv[2]) : 5;
  int blocks = argc > 3 ? std::atoi(argv[3]) : 1;
  if (epochs <= 0 || blocks <= 0) {
    std::fprintf(stderr, "EPOCHS and BLOCKS must be positive numbers\n");
    return 2;
  }

  const bool cifar = std::filesystem::exists(dir + "/data_batch_1.bin");
  result<data::dataset> train_set = error{""}, test_set = error{""};
  shape image;
  if (cifar) {
    // Per-channel mean and standard deviation of the CIFAR-10 training set.
    data::cifar10_options o{.scale_to_unit = true, .mean = {0.4914, 0.4822, 0.4465}, .stddev = {0.2470, 0.2435, 0.2616}};
    train_set = data::read_cifar10(dir, o);
    test_set = data::read_cifar10(dir + "/test_batch.bin", o);
    image = {-1, 3, 32, 32};
  } else {
    train_set = data::read_idx_dataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
    test_set = data::read_idx_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
    image = {-1, 1, 28, 28};
  }
  if (!train_set || !test_set) {
    std::fprintf(stderr, "error: %s\n", (!train_set ? train_set.err() : test_set.err()).message.c_str());
    return 1;
  }

  // The readers give flat rows; the network sees images.
  graph g;
  expr x = g.placeholder("x", dtype::f32, {-1, image[1] * image[2] * image[3]});
  expr y = g.placeholder("y", dtype::i64, {-1});
  expr logits = models::resnet(reshape(x, image), {.classes = 10, .channels = {16, 32, 64}, .blocks = blocks});
  expr loss = mean(softmax_cross_entropy(logits, y));
  expr acc = accuracy(logits, y);

  kernel_registry kernels;
  cpu::register_kernels(kernels);
  variable_store vars(/*seed=*/1);
  executor ex(g, vars, kernels);
  const int64_t batch = 128;
  const int64_t steps_per_epoch = (train_set->size() + batch - 1) / batch;
  optimizer_config opt;
  opt.kind = optimizer_config::kind_t::adam;
  opt.lr.base = 0.003;
  opt.lr.kind = lr_schedule::kind_t::cosine;
  opt.lr.total_steps = steps_per_epoch * epochs;
  trainer tr(g, loss, opt, ex);

  return examples::fit(tr, x, y, acc, std::move(*train_set), std::move(*test_set), batch, epochs);
}
