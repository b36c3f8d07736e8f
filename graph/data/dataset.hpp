#pragma once
// In-memory datasets as the readers produce them (read_idx_dataset,
// read_csv, read_libsvm, read_criteo) and the loader consumes them.

#include <cstdint>
#include <string>
#include <vector>

#include "graph/tensor.hpp"

namespace luoshu::data {

/// Examples stacked along the first axis: `features` is [n, ...] f32,
/// `labels` is [n], i64 class indices for classification or f32 targets
/// for regression, and `ids`, when defined, i64 [n, fields] categorical
/// ids (embedding rows) next to the dense features (read_criteo).
struct dataset {
  tensor features;
  tensor labels;
  tensor ids;
  /// Where the data came from (file names), for messages.
  std::string source;

  /// The number of examples n; 0 when `features` is undefined.
  int64_t size() const {
    return features.defined() && features.rank() > 0 ? features.dim(0) : 0;
  }
};

/// Sparse examples in CSR form, as read from libsvm/svmlight files: row i
/// holds columns[row_offsets[i] .. row_offsets[i+1]) with the matching
/// values; column indices are 0-based and strictly increasing per row.
struct sparse_dataset {
  /// n + 1 entries, row_offsets[0] == 0, row_offsets[n] == columns.size().
  std::vector<int64_t> row_offsets;
  /// 0-based feature indices (the file's 1-based index minus one).
  std::vector<int64_t> columns;
  std::vector<float> values;
  /// f32 [n].
  tensor labels;
  /// Columns of the dense form; every entry of `columns` is below it.
  int64_t num_features = 0;
  std::string source;

  /// The number of examples n.
  int64_t size() const {
    return row_offsets.empty() ? 0 : static_cast<int64_t>(row_offsets.size()) - 1;
  }

  /// The dense form: features f32 [n, num_features] (absent entries 0),
  /// labels a copy of `labels` (f32 [n]). Throws luoshu_error if the CSR
  /// arrays are inconsistent. Defined in libsvm.cpp, its one producer.
  dataset to_dense() const;
};

} // namespace luoshu::data
