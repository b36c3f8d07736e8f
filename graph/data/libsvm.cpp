#include "graph/data/libsvm.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/data/text.hpp"
#include "graph/error.hpp"

namespace luoshu::data {

namespace {

/// The whole of `s` as a float (finite, in f32 range), or nullopt.
std::optional<float> parse_float(std::string_view s) {
  auto d = text::parse_double(s);
  if (!d) return std::nullopt;
  double v = *d;
  if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) return std::nullopt;
  return static_cast<float>(v);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

} // namespace

result<sparse_dataset> read_libsvm(const std::string& path, int64_t num_features) {
  if (num_features < 0)
    return error{path + ": num_features must be >= 0 (0 = the largest index seen), got " +
                 std::to_string(num_features)};
  auto content = text::read_file(path);
  if (!content) return content.err();

  sparse_dataset d;
  d.source = path;
  d.row_offsets.push_back(0);
  std::vector<float> labels;
  int64_t max_index = 0;
  int64_t line_no = 0;
  std::string_view rest = *content;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto at = [&](const std::string& what) {
      return error{path + ": line " + std::to_string(line_no) + ": " + what};
    };

    bool have_label = false;
    int64_t prev = 0;
    size_t pos = 0;
    while (true) {
      while (pos < line.size() && is_space(line[pos])) ++pos;
      if (pos == line.size()) break;
      size_t end = pos;
      while (end < line.size() && !is_space(line[end])) ++end;
      std::string_view token = line.substr(pos, end - pos);
      pos = end;

      if (!have_label) {
        auto label = parse_float(token);
        if (!label) return at("bad label '" + std::string(token) + "': expected a number");
        labels.push_back(*label);
        have_label = true;
        continue;
      }
      size_t colon = token.find(':');
      if (colon == std::string_view::npos)
        return at("bad token '" + std::string(token) + "': expected index:value");
      std::string_view key = token.substr(0, colon), val = token.substr(colon + 1);
      if (key == "qid") {
        if (!text::parse_int(val)) return at("bad token '" + std::string(token) + "': qid must be an integer");
        continue;
      }
      auto index = text::parse_int(key);
      auto value = parse_float(val);
      if (!index || !value)
        return at("bad token '" + std::string(token) + "': expected index:value with an integer " +
                  "index and a finite number");
      if (*index <= 0)
        return at("index " + std::to_string(*index) + " must be >= 1 (indices are 1-based)");
      if (*index <= prev)
        return at("index " + std::to_string(*index) + " follows index " + std::to_string(prev) +
                  ": indices must be strictly increasing");
      if (num_features > 0 && *index > num_features)
        return at("index " + std::to_string(*index) + " exceeds num_features " +
                  std::to_string(num_features));
      prev = *index;
      max_index = std::max(max_index, *index);
      d.columns.push_back(*index - 1);
      d.values.push_back(*value);
    }
    if (have_label) d.row_offsets.push_back(static_cast<int64_t>(d.columns.size()));
  }

  if (labels.empty()) return error{path + ": no examples (empty file)"};
  d.num_features = num_features > 0 ? num_features : max_index;
  d.labels = tensor::from<float>(shape{static_cast<int64_t>(labels.size())}, labels);
  return d;
}

dataset sparse_dataset::to_dense() const {
  const int64_t n = size();
  if (n <= 0 || row_offsets.front() != 0 ||
      row_offsets.back() != static_cast<int64_t>(columns.size()) ||
      columns.size() != values.size())
    throw luoshu_error("sparse_dataset::to_dense: inconsistent CSR arrays (" +
                       std::to_string(row_offsets.size()) + " row offsets, " +
                       std::to_string(columns.size()) + " columns, " +
                       std::to_string(values.size()) + " values)");
  if (!labels.defined() || labels.rank() != 1 || labels.dim(0) != n)
    throw luoshu_error("sparse_dataset::to_dense: labels " +
                       (labels.defined() ? labels.shape().to_string() : std::string("undefined")) +
                       " do not match " + std::to_string(n) + " rows");
  if (num_features < 0 ||
      (num_features > 0 && n > std::numeric_limits<int64_t>::max() / 4 / num_features))
    throw luoshu_error("sparse_dataset::to_dense: cannot make a dense [" + std::to_string(n) +
                       ", " + std::to_string(num_features) + "] f32 tensor");

  dataset d;
  d.source = source;
  d.features = tensor::zeros(dtype::f32, shape{n, num_features});
  float* out = d.features.data<float>();
  for (int64_t r = 0; r < n; ++r) {
    const int64_t begin = row_offsets[static_cast<size_t>(r)];
    const int64_t end = row_offsets[static_cast<size_t>(r) + 1];
    if (begin > end || end > static_cast<int64_t>(columns.size()))
      throw luoshu_error("sparse_dataset::to_dense: row offsets of row " + std::to_string(r) +
                         " are out of order");
    for (int64_t k = begin; k < end; ++k) {
      const int64_t c = columns[static_cast<size_t>(k)];
      if (c < 0 || c >= num_features)
        throw luoshu_error("sparse_dataset::to_dense: column " + std::to_string(c) + " of row " +
                           std::to_string(r) + " is outside [0, " + std::to_string(num_features) +
                           ")");
      out[r * num_features + c] = values[static_cast<size_t>(k)];
    }
  }
  d.labels = labels.clone();
  return d;
}

} // namespace luoshu::data
