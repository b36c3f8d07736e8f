#pragma once
// The examples' training loop: epochs of shuffled batches through a
// trainer, then the test accuracy, one line per epoch.

#include <cstdio>
#include <memory>

#include "graph/luoshu.hpp"

namespace luoshu::examples {

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
