#pragma once
// libsvm / svmlight sparse text files:
//   <label> [qid:<n>] <index>:<value> <index>:<value> ... [# comment]
// one example per line, indices 1-based and strictly increasing.

#include <cstdint>
#include <string>

#include "graph/data/dataset.hpp"
#include "graph/error.hpp"

namespace luoshu::data {

/// Reads a libsvm file into CSR form (0-based columns, f32 labels).
/// `qid:` tokens are skipped, `#` starts a comment to the end of the line,
/// blank lines are skipped. `num_features` 0 means the largest index seen;
/// otherwise every index must be at most `num_features`. Errors name the
/// file and the line: a malformed token, an index <= 0, indices not
/// increasing, an index above `num_features`, a file with no examples.
result<sparse_dataset> read_libsvm(const std::string& path, int64_t num_features = 0);

} // namespace luoshu::data
