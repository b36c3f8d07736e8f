#include "graph/data/criteo.hpp"

#include <zlib.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <optional>
#include <string_view>
#include <vector>

#include "graph/data/input.hpp"
#include "graph/data/loader.hpp"
#include "graph/data/text.hpp"

namespace luoshu::data {

namespace {

constexpr int fields = criteo_categorical_fields;

/// "I3" or "C12": the column's name in the Criteo documentation.
std::string column_name(size_t c) {
  if (c == 0) return "label";
  // Appending (not "I" + ...) keeps GCC 12's -Wrestrict false positive away.
  std::string name(1, c <= criteo_dense_fields ? 'I' : 'C');
  name += std::to_string(c <= criteo_dense_fields ? c : c - criteo_dense_fields);
  return name;
}

/// 1-8 hex digits as a 32-bit value, or nullopt.
std::optional<uint32_t> parse_hex(std::string_view s) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (s.empty() || s.size() > 8 || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

} // namespace

int64_t criteo_id(int field, uint32_t value, int64_t buckets) {
  uint64_t state = (static_cast<uint64_t>(field) + 1) << 32 | value;
  const uint64_t h = shuffle_rng::splitmix64(state);
  return fields + static_cast<int64_t>(h % static_cast<uint64_t>(buckets - fields));
}

result<dataset> read_criteo(const std::string& path, const criteo_options& options) {
  if (options.buckets <= fields)
    return error{path + ": buckets must be above " + std::to_string(fields) +
                 " (ids 0-25 mark missing values), got " + std::to_string(options.buckets)};
  if (options.max_rows < 0)
    return error{path + ": max_rows must be >= 0 (0 = all rows), got " + std::to_string(options.max_rows)};
  auto in = input::open(path);
  if (!in) return in.err();
  line_reader lines(std::move(*in));

  std::vector<float> labels, dense;
  std::vector<int64_t> ids;
  std::array<std::string_view, criteo_columns> col;
  std::string_view line;
  while ((options.max_rows == 0 || static_cast<int64_t>(labels.size()) < options.max_rows) &&
         lines.next(line)) {
    if (line.empty()) continue;
    size_t count = 0;
    for (size_t start = 0;; ++count) {
      size_t tab = line.find('\t', start);
      if (count < col.size()) col[count] = line.substr(start, tab - start);
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (++count != col.size())
      return lines.at("expected " + std::to_string(criteo_columns) +
                      " tab-separated columns (a label, 13 integer, 26 categorical), found " +
                      std::to_string(count));
    auto bad = [&](size_t c, const char* expected) {
      return lines.at("column " + std::to_string(c + 1) + " (" + column_name(c) + "): '" +
                      std::string(col[c]) + "' is not " + expected);
    };
    if (col[0] != "0" && col[0] != "1") return bad(0, "0 or 1");
    labels.push_back(col[0] == "1" ? 1.0f : 0.0f);
    for (size_t c = 1; c <= criteo_dense_fields; ++c) {
      if (col[c].empty()) {
        dense.push_back(0.0f);
        continue;
      }
      auto v = text::parse_int(col[c]);
      if (!v) return bad(c, "an integer");
      dense.push_back(static_cast<float>(std::log1p(static_cast<double>(std::max<int64_t>(*v, 0)))));
    }
    for (int f = 0; f < fields; ++f) {
      const size_t c = 1 + criteo_dense_fields + static_cast<size_t>(f);
      if (col[c].empty()) {
        ids.push_back(criteo_missing_id(f));
        continue;
      }
      auto v = parse_hex(col[c]);
      if (!v) return bad(c, "a hex id of 1-8 digits");
      ids.push_back(criteo_id(f, *v, options.buckets));
    }
  }
  if (auto e = lines.read_error()) return *e;
  if (labels.empty()) return error{path + ": no examples (empty file)"};

  const auto n = static_cast<int64_t>(labels.size());
  dataset d;
  d.source = path;
  d.labels = tensor::from<float>(shape{n}, labels);
  d.features = tensor::from<float>(shape{n, criteo_dense_fields}, dense);
  d.ids = tensor::from<int64_t>(shape{n, fields}, ids);
  return d;
}

// --- the generator ----------------------------------------------------------

namespace {

/// A fixed hash of (seed, a, b), for b < 2^40.
uint64_t key_hash(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t s = seed;
  uint64_t k = shuffle_rng::splitmix64(s) ^ (a << 40) ^ b;
  return shuffle_rng::splitmix64(k);
}

/// Uniform in [0, 1) from 64 random bits.
double unit(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1p-53; }

/// MurmurHash3's 32-bit finalizer: a bijection on 32-bit values.
uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  return x ^ (x >> 16);
}

/// Writes raw or gzip text, buffered. Resource type: not copyable.
class text_sink {
public:
  explicit text_sink(const std::string& path) : path_(path) {
    if (path.ends_with(".gz")) gz_ = gzopen(path.c_str(), "wb");
    else raw_ = std::fopen(path.c_str(), "wb");
    if (!gz_ && !raw_) failure_ = std::strerror(errno);
  }
  ~text_sink() { close(); }
  text_sink(const text_sink&) = delete;
  text_sink& operator=(const text_sink&) = delete;

  std::string& buffer() { return buf_; }
  /// Writes the buffer out once it holds at least `min` bytes.
  void flush(size_t min = 0) {
    if (buf_.size() < min || buf_.empty() || !failure_.empty()) return;
    bool ok = gz_ ? gzwrite(gz_, buf_.data(), static_cast<unsigned>(buf_.size())) ==
                        static_cast<int>(buf_.size())
                  : std::fwrite(buf_.data(), 1, buf_.size(), raw_) == buf_.size();
    if (!ok) failure_ = gz_ ? "gzip write error" : std::strerror(errno);
    buf_.clear();
  }
  /// An error naming the file if opening or writing failed.
  std::optional<error> status() const {
    if (failure_.empty()) return std::nullopt;
    return error{path_ + ": cannot write: " + failure_};
  }
  /// Flushes and closes; status() afterwards.
  std::optional<error> close() {
    flush();
    if (gz_ && gzclose(gz_) != Z_OK && failure_.empty()) failure_ = "gzip close failed";
    if (raw_ && std::fclose(raw_) != 0 && failure_.empty()) failure_ = std::strerror(errno);
    gz_ = nullptr;
    raw_ = nullptr;
    return status();
  }

private:
  std::string path_, buf_, failure_;
  gzFile gz_ = nullptr;
  std::FILE* raw_ = nullptr;
};

} // namespace

result<criteo_gen_stats> write_criteo(const std::string& path, const criteo_gen_options& o) {
  if (o.rows < 0) return error{path + ": rows must be >= 0, got " + std::to_string(o.rows)};
  if (o.distinct < 1 || o.distinct > (int64_t{1} << 32))
    return error{path + ": distinct must be in [1, 2^32], got " + std::to_string(o.distinct)};
  if (!(o.zipf_s > 0)) return error{path + ": zipf_s must be > 0"};

  constexpr double cat_missing[] = {0, 0.02, 0.1, 0.3};
  constexpr double dense_missing[] = {0, 0.05, 0.2};
  std::array<int64_t, fields> vocab;
  std::array<uint32_t, fields> salt;
  std::array<double, criteo_dense_fields> mu, v;
  double variance = 0;
  for (int f = 0; f < fields; ++f) {
    vocab[f] = std::max<int64_t>(16, o.distinct >> (f % 6));
    salt[f] = static_cast<uint32_t>(key_hash(o.seed, 1, static_cast<uint64_t>(f)));
    variance += (1 - cat_missing[f % 4]) * o.weight_scale * o.weight_scale / 3;
  }
  for (int j = 0; j < criteo_dense_fields; ++j) {
    mu[j] = 0.5 + 3.5 * unit(key_hash(o.seed, 2, static_cast<uint64_t>(j)));
    v[j] = unit(key_hash(o.seed, 3, static_cast<uint64_t>(j))) - 0.5;
    variance += (1 - dense_missing[j % 3]) * v[j] * v[j];
  }
  // E[sigmoid(N(b, var))] ~ Phi(b / sqrt(1.7^2 + var)); Phi(-0.674) = 0.25.
  const double bias = -0.674 * std::sqrt(1.7 * 1.7 + variance);
  std::vector<std::vector<bool>> seen(fields);
  for (int f = 0; f < fields; ++f) seen[static_cast<size_t>(f)].resize(static_cast<size_t>(vocab[f]));

  text_sink out(path);
  if (auto e = out.status()) return *e;
  criteo_gen_stats st;
  shuffle_rng rng(key_hash(o.seed, 0, o.part));
  const double one_minus_s = 1 - o.zipf_s;
  char num[24];
  for (int64_t r = 0; r < o.rows; ++r) {
    std::string& b = out.buffer();
    const size_t label_at = b.size();
    b += "0";
    double logit = bias;
    for (int j = 0; j < criteo_dense_fields; ++j) {
      b += '\t';
      const double u1 = 1 - unit(rng.next()), u2 = unit(rng.next()), m = unit(rng.next());
      if (m < dense_missing[j % 3]) continue;
      const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
      logit += v[j] * z;
      auto [end, ec] = std::to_chars(num, num + sizeof num, static_cast<int64_t>(std::floor(std::expm1(mu[j] + z))));
      b.append(num, end);
    }
    for (int f = 0; f < fields; ++f) {
      b += '\t';
      const double u = unit(rng.next()), m = unit(rng.next());
      if (m < cat_missing[f % 4]) continue;
      const double V = static_cast<double>(vocab[f]);
      const double x = one_minus_s == 0 ? std::exp(u * std::log(V + 1))
                                        : std::pow(1 + u * (std::pow(V + 1, one_minus_s) - 1), 1 / one_minus_s);
      const auto rank = static_cast<uint64_t>(std::clamp(std::floor(x) - 1, 0.0, V - 1));
      if (auto bit = seen[static_cast<size_t>(f)][rank]; !bit) {
        bit = true;
        ++st.distinct_ids;
      }
      logit += o.weight_scale * (2 * unit(key_hash(o.seed, 4 + static_cast<uint64_t>(f), rank)) - 1);
      std::snprintf(num, sizeof num, "%08x", mix32(static_cast<uint32_t>(rank) + salt[f]));
      b.append(num, 8);
    }
    b += '\n';
    if (unit(rng.next()) < 1 / (1 + std::exp(-logit))) b[label_at] = '1', ++st.positives;
    out.flush(size_t{1} << 20);
  }
  st.rows = o.rows;
  if (auto e = out.close()) return *e;
  return st;
}

} // namespace luoshu::data
