#include "graph/data/csv.hpp"

#include "graph/data/text.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

namespace luoshu::data {

namespace {

bool is_blank(char c, char delimiter) {
  return (c == ' ' || c == '\t') && c != delimiter;
}

std::string_view trim(std::string_view s, char delimiter) {
  while (!s.empty() && is_blank(s.front(), delimiter)) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back(), delimiter)) s.remove_suffix(1);
  return s;
}

} // namespace

result<dataset> read_csv(const std::string& path, const csv_options& options) {
  if (options.delimiter == '\n' || options.delimiter == '\r')
    return error{path + ": the CSV delimiter cannot be a line break"};
  auto content = text::read_file(path);
  if (!content) return content.err();
  std::string_view rest = *content;
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3); // UTF-8 byte order mark

  std::vector<float> features;
  std::vector<double> labels;
  size_t columns = 0;
  size_t label_col = 0;
  int64_t line_no = 0;
  auto where = [&](size_t col) {
    return path + ": line " + std::to_string(line_no) + ", column " + std::to_string(col + 1);
  };

  std::vector<std::string_view> fields;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1 && options.header) continue;
    if (trim(line, options.delimiter).empty()) continue;

    fields.clear();
    for (size_t start = 0;;) {
      size_t d = line.find(options.delimiter, start);
      fields.push_back(trim(line.substr(start, d - start), options.delimiter));
      if (d == std::string_view::npos) break;
      start = d + 1;
    }

    if (columns == 0) {
      columns = fields.size();
      if (columns < 2)
        return error{path + ": line " + std::to_string(line_no) +
                     ": expected at least two columns (features and a label), found 1"};
      int64_t lc = options.label_column < 0 ? static_cast<int64_t>(columns) + options.label_column
                                            : options.label_column;
      if (lc < 0 || lc >= static_cast<int64_t>(columns))
        return error{path + ": label_column " + std::to_string(options.label_column) +
                     " is out of range for the " + std::to_string(columns) + " columns of line " +
                     std::to_string(line_no)};
      label_col = static_cast<size_t>(lc);
    } else if (fields.size() != columns) {
      return error{path + ": line " + std::to_string(line_no) + ": expected " +
                   std::to_string(columns) + " columns (as on the first data line), found " +
                   std::to_string(fields.size())};
    }

    for (size_t c = 0; c < columns; ++c) {
      auto v = text::parse_double(fields[c]);
      if (!v) return error{where(c) + ": '" + std::string(fields[c]) + "' is not a number"};
      if (c == label_col) {
        if (options.label_is_class &&
            (!std::isfinite(*v) || std::floor(*v) != *v || std::fabs(*v) > 9007199254740992.0))
          return error{where(c) + ": class label '" + std::string(fields[c]) +
                       "' is not an integer"};
        labels.push_back(*v);
      } else {
        if (std::isfinite(*v) && std::fabs(*v) > std::numeric_limits<float>::max())
          return error{where(c) + ": '" + std::string(fields[c]) + "' is out of f32 range"};
        features.push_back(static_cast<float>(*v));
      }
    }
  }

  if (labels.empty())
    return error{path + ": no data lines" + (options.header ? " after the header" : "") +
                 " (empty file)"};

  const auto n = static_cast<int64_t>(labels.size());
  dataset d;
  d.source = path;
  d.features = tensor::from<float>(shape{n, static_cast<int64_t>(columns) - 1}, features);
  if (options.label_is_class) {
    d.labels = tensor(dtype::i64, shape{n});
    int64_t* out = d.labels.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int64_t>(labels[static_cast<size_t>(i)]);
  } else {
    d.labels = tensor(dtype::f32, shape{n});
    float* out = d.labels.data<float>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(labels[static_cast<size_t>(i)]);
  }
  return d;
}

} // namespace luoshu::data
