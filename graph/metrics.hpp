#pragma once
// Whole-dataset metrics computed on the host (AUC needs every score at once,
// so it is not a graph op).

#include <span>

#include "graph/error.hpp"

namespace luoshu::metrics {

/// Area under the ROC curve of `scores` against binary `labels` (0/1),
/// ties counted half (Mann-Whitney U). An error if either class is absent
/// or the lengths differ.
result<double> auc(std::span<const double> scores, std::span<const double> labels);

/// Mean binary log-loss of probabilities against 0/1 labels, clipped to
/// [1e-15, 1 - 1e-15].
result<double> log_loss(std::span<const double> probs, std::span<const double> labels);

} // namespace luoshu::metrics
