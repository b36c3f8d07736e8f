#pragma once
// The Criteo display-advertising TSV layout (Kaggle / Terabyte):
//   <label> \t I1 .. I13 \t C1 .. C26 \n
// label 0 or 1; I* integers (counts); C* categorical ids of up to 8 hex
// digits (32 bits, e.g. "68fd1e64"); any I* or C* may be empty (missing).
// Files may be gzip-compressed (detected by the gzip magic).
//
// Also a synthetic generator writing the same layout with a known,
// learnable signal (see criteo_gen_options).

#include <cstdint>
#include <string>

#include "graph/data/dataset.hpp"
#include "graph/error.hpp"

namespace luoshu::data {

inline constexpr int criteo_dense_fields = 13;
inline constexpr int criteo_categorical_fields = 26;
inline constexpr int criteo_columns = 1 + criteo_dense_fields + criteo_categorical_fields;

/// How to read a Criteo file.
struct criteo_options {
  /// Size of the id space: every categorical id is in [0, buckets).
  /// Must exceed criteo_categorical_fields.
  int64_t buckets = 1'000'000;
  /// Stop after this many examples (0 = the whole file).
  int64_t max_rows = 0;
};

/// The id of categorical field `field` (0-based) holding the 32-bit value
/// `value`, in one id space of `buckets` ids shared by all fields:
///   26 + splitmix64((field + 1) << 32 | value) mod (buckets - 26)
/// where splitmix64(k) is shuffle_rng::splitmix64 on the state k (the
/// SplitMix64 finalizer of k + 0x9e3779b97f4a7c15). Field and value are
/// hashed together, so equal hex values in different fields get unrelated
/// ids; different pairs collide only through the modulo.
int64_t criteo_id(int field, uint32_t value, int64_t buckets);
/// The id of a missing (empty) value of `field`: the field's index, so
/// ids 0..25 are reserved for "missing" and never collide with a value.
inline int64_t criteo_missing_id(int field) { return field; }

/// Reads a Criteo file, streaming it line by line: labels f32 [n] (0/1),
/// features f32 [n, 13] = log(1 + max(x, 0)) of the integer columns
/// (missing -> 0), ids i64 [n, 26] (criteo_id / criteo_missing_id). A '\r'
/// before the newline and blank lines are accepted. Errors name the file
/// and the line ("PATH: line N: ..."): a line without 40 tab-separated
/// columns, a label other than 0/1, an integer column that is not an
/// integer, a categorical column that is not 1-8 hex digits, no examples;
/// and buckets <= 26 or max_rows < 0.
result<dataset> read_criteo(const std::string& path, const criteo_options& options = {});

/// The synthetic generator's parameters. Field f's vocabulary has
/// V_f = max(16, distinct >> (f % 6)) values (six tiers: distinct,
/// distinct/2, ... distinct/32); a row draws value ranks with an
/// approximately Zipf(zipf_s) law (the inverse CDF of a power law on
/// [1, V_f + 1)), and writes rank r as the 8 hex digits of a bijective
/// 32-bit mix of (seed, f, r), so a field's ranks never share a hex id.
/// At the defaults the vocabularies total about 8.7 million values;
/// 250,000 rows hold about 1.1 million distinct (field, id) pairs and
/// 10^6 rows about 2.7 million.
///
/// Missing values: categorical field f is empty with probability
/// {0, 0.02, 0.1, 0.3}[f % 4], integer column j with {0, 0.05, 0.2}[j % 3].
/// Integer column j holds floor(expm1(mu_j + z)), z ~ N(0, 1), mu_j in
/// [0.5, 4], so log1p of it is about mu_j + z (-1 where mu_j + z < 0, as
/// in the real data's I2).
///
/// Label: Bernoulli(sigmoid(bias + sum_f w(f, r_f) + sum_j v_j z_j)) with
/// w(f, r) uniform in [-weight_scale, weight_scale], a fixed hash of
/// (seed, f, r) (0 for a missing value), v_j uniform in [-0.5, 0.5], and
/// bias chosen for a positive rate of about 25%. Rows and weights are a
/// pure function of the options: the same seed writes the same file.
/// The vocabularies and weights depend on `seed` only, the rows' random
/// draws on `seed` and `part`: parts 0 and 1 of one seed are independent
/// samples of one distribution (a training and a test set).
struct criteo_gen_options {
  int64_t rows = 100'000;
  uint64_t seed = 1;
  uint64_t part = 0;
  /// The largest per-field vocabulary (at most 2^32).
  int64_t distinct = 1'000'000;
  double zipf_s = 1.05;
  double weight_scale = 0.8;
};

/// What the generator wrote.
struct criteo_gen_stats {
  int64_t rows = 0;
  int64_t positives = 0;
  /// Distinct (field, value) pairs among the non-empty categorical values.
  int64_t distinct_ids = 0;
};

/// Writes `options.rows` rows to `path` (gzip-compressed when the path
/// ends in ".gz"). Errors name the file.
result<criteo_gen_stats> write_criteo(const std::string& path, const criteo_gen_options& options);

} // namespace luoshu::data
