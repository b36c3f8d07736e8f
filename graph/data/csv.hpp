#pragma once
// Numeric CSV files: one example per line, one column of them the label.

#include <string>

#include "graph/data/dataset.hpp"
#include "graph/error.hpp"

namespace luoshu::data {

/// How to read a CSV file.
struct csv_options {
  /// 0-based column of the label; negative counts from the end (-1 = last).
  int label_column = -1;
  /// Skip the first line (column names).
  bool header = false;
  /// Field separator; fields are trimmed of spaces and tabs around them.
  char delimiter = ',';
  /// Labels are class indices (i64, must be integral) rather than f32
  /// regression targets.
  bool label_is_class = true;
};

/// Reads a CSV file of numbers into features f32 [n, columns - 1] and
/// labels [n] (i64 or f32, see csv_options). Accepts \n and \r\n line
/// endings, a trailing newline and blank lines (skipped). Errors name the
/// file, the line and the 1-based column: a field that is not a number, a
/// line with a different column count than the first, an empty file, a
/// class label that is not an integer.
result<dataset> read_csv(const std::string& path, const csv_options& options = {});

} // namespace luoshu::data
