#include "graph/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

namespace luoshu::metrics {

result<double> auc(std::span<const double> scores, std::span<const double> labels) {
  if (scores.size() != labels.size())
    return error{"auc: " + std::to_string(scores.size()) + " scores but " + std::to_string(labels.size()) + " labels"};
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double pos = 0, neg = 0, rank_sum = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    double avg_rank = (static_cast<double>(i) + static_cast<double>(j - 1)) / 2.0 + 1.0;
    for (size_t k = i; k < j; ++k) {
      double l = labels[order[k]];
      if (l != 0 && l != 1) return error{"auc: label " + std::to_string(l) + " is not 0 or 1"};
      if (l == 1) {
        pos += 1;
        rank_sum += avg_rank;
      } else {
        neg += 1;
      }
    }
    i = j;
  }
  if (pos == 0 || neg == 0) return error{"auc: needs both positive and negative labels"};
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

result<double> log_loss(std::span<const double> probs, std::span<const double> labels) {
  if (probs.size() != labels.size() || probs.empty())
    return error{"log_loss: needs equally many (and some) probabilities and labels"};
  double s = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    double p = std::clamp(probs[i], 1e-15, 1 - 1e-15);
    s -= labels[i] * std::log(p) + (1 - labels[i]) * std::log(1 - p);
  }
  return s / static_cast<double>(probs.size());
}

} // namespace luoshu::metrics
