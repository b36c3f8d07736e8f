#pragma once
// What the examples share: their command line [DATA_DIR] [EPOCHS], reading
// Fashion-MNIST, and the training loop (epochs of shuffled batches through a
// trainer, then the test accuracy, one line per epoch).

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "graph/luoshu.hpp"

namespace luoshu::examples {

/// The command line `[DATA_DIR] [EPOCHS]`.
struct dir_and_epochs {
  std::string dir = "/usr/share/datasets/fashion-mnist";
  int epochs = 0;
};

/// Reads argv[1] and argv[2] (defaults: the dataset's Debian path and
/// `default_epochs`); prints why and returns nothing for an EPOCHS that is
/// not a positive number (exit with 2).
inline std::optional<dir_and_epochs> parse_dir_and_epochs(int argc, char** argv, int default_epochs) {
  dir_and_epochs a;
  if (argc > 1) a.dir = argv[1];
  a.epochs = argc > 2 ? std::atoi(argv[2]) : default_epochs;
  if (a.epochs <= 0) {
    std::fprintf(stderr, "EPOCHS must be a positive number\n");
    return std::nullopt;
  }
  return a;
}

/// A training and a test set.
struct train_test {
  data::dataset train, test;
};

/// Fashion-MNIST's training and test sets from the four IDX files in
/// `dir`; prints the error and returns nothing when one cannot be read
/// (exit with 1).
inline std::optional<train_test> read_fashion_mnist(const std::string& dir) {
  auto train = data::read_idx_dataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  auto test = data::read_idx_dataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  if (!train || !test) {
    std::fprintf(stderr, "error: %s\n", (!train ? train.err() : test.err()).message.c_str());
    return std::nullopt;
  }
  return train_test{std::move(*train), std::move(*test)};
}

/// Trains `tr` (placeholders x, y) for `epochs` epochs over `train` in
/// shuffled batches of `batch` (seed 1), printing after each epoch the mean
/// train loss and accuracy `acc` over `test` (batches of 1000). Returns the
/// exit code: 0, or 1 after printing the error that stopped it.
inline int fit(trainer& tr, expr x, expr y, expr acc, data::dataset train, data::dataset test, int64_t batch,
               int epochs) {
  auto train_data = std::make_shared<const data::dataset>(std::move(train));
  auto test_data = std::make_shared<const data::dataset>(std::move(test));
  data::loader batches(train_data, {.batch_size = batch, .shuffle = true, .seed = 1});
  data::loader test_batches(test_data, {.batch_size = 1000, .shuffle = false});
  for (int epoch = 0; epoch < epochs; ++epoch) {
    batches.start_epoch(epoch);
    double loss_sum = 0;
    int n = 0;
    while (auto b = batches.next()) {
      auto r = tr.step({{x, b->features}, {y, b->labels}});
      if (!r) {
        std::fprintf(stderr, "error: %s\n", r.err().message.c_str());
        return 1;
      }
      loss_sum += r->at(0).item();
      ++n;
    }
    test_batches.start_epoch(0);
    double hits = 0;
    int64_t seen = 0;
    while (auto b = test_batches.next()) {
      auto r = tr.infer({{x, b->features}, {y, b->labels}}, {acc});
      if (!r) {
        std::fprintf(stderr, "error: %s\n", r.err().message.c_str());
        return 1;
      }
      hits += r->at(0).item() * static_cast<double>(b->features.dim(0));
      seen += b->features.dim(0);
    }
    std::printf("epoch %d: train loss %.4f, test accuracy %.2f%%\n", epoch + 1, loss_sum / n,
                100.0 * hits / static_cast<double>(seen));
    std::fflush(stdout);
  }
  return 0;
}

} // namespace luoshu::examples
