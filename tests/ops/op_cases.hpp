#pragma once
// The op test table, shared by the CPU op tests (tests/ops/op_test.cpp) and
// the device tests (tests/gpu), which run every case on a device and
// compare with the CPU. See op_test.cpp for what each case checks.

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graph/autodiff.hpp"
#include "graph/builder.hpp"
#include "graph/executor.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"

namespace luoshu::op_cases {

// --- float64 n-d arrays for the references ---------------------------------

using dims_t = std::vector<int64_t>;

inline int64_t numel_of(const dims_t& d) {
  int64_t n = 1;
  for (auto x : d) n *= x;
  return n;
}

inline dims_t unravel(int64_t i, const dims_t& d) {
  dims_t idx(d.size());
  for (size_t k = d.size(); k-- > 0;) {
    idx[k] = i % d[k];
    i /= d[k];
  }
  return idx;
}

inline int64_t ravel(const dims_t& idx, const dims_t& d) {
  int64_t i = 0;
  for (size_t k = 0; k < d.size(); ++k) i = i * d[k] + idx[k];
  return i;
}

/// A row-major float64 array.
struct nd {
  dims_t dims;
  std::vector<double> v;
  double at(const dims_t& idx) const { return v[static_cast<size_t>(ravel(idx, dims))]; }
  int rank() const { return static_cast<int>(dims.size()); }
};

using exprs = std::vector<expr>;
using nds = std::vector<nd>;

/// An array of shape d whose element at index i is f(i).

// --- the case table ----------------------------------------------------------

/// One input: its shape and how its values are drawn.
struct in_spec {
  dims_t dims = {};
  /// Unset: a float input in the run's float type (f32 or f64), differentiated.
  /// Set: exactly this dtype (indices, masks), never differentiated.
  std::optional<dtype> exact = {};
  double lo = -1, hi = 1;
  std::vector<double> fixed = {}; ///< these values instead of random ones
  bool integral = false;          ///< round random values (ties for comparisons)
  std::vector<double> kinks = {}; ///< points the values stay >= 0.05 away from

  in_spec range(double l, double h) const { auto s = *this; s.lo = l; s.hi = h; return s; }
  in_spec avoid(std::vector<double> k) const { auto s = *this; s.kinks = std::move(k); return s; }
  in_spec rounded() const { auto s = *this; s.integral = true; return s; }
  bool differentiable() const { return !exact.has_value(); }
};

inline in_spec fl(dims_t d) { return in_spec{std::move(d)}; }
inline in_spec ints(dims_t d, std::vector<double> v, dtype t = dtype::i64) {
  in_spec s{std::move(d), t};
  s.fixed = std::move(v);
  return s;
}
inline in_spec mask(dims_t d, std::vector<double> v) { return ints(std::move(d), std::move(v), dtype::u8); }
/// Random integers in [lo, hi] of an integer dtype.
inline in_spec rand_ints(dims_t d, int64_t lo, int64_t hi, dtype t = dtype::i64) {
  in_spec s{std::move(d), t};
  s.lo = static_cast<double>(lo) - 0.49;
  s.hi = static_cast<double>(hi) + 0.49;
  s.integral = true;
  return s;
}

using builder_fn = std::function<exprs(const exprs&)>;
using reference_fn = std::function<nds(const nds&)>;

struct op_case {
  std::string name = {};
  std::vector<in_spec> inputs = {};
  builder_fn build = {};
  reference_fn ref = {};
  bool differentiable = true;
  double f32_tol = 1e-5;
  double f64_tol = 1e-12;
  bool distinct = false;  ///< all float input values pairwise >= 1e-3 apart (no ties)
  std::function<void(nds&)> adjust = {}; ///< post-processes the drawn inputs
  /// Finite-difference step. Large cases use 1e-4: their loss sums ~1e5
  /// terms, and rounding noise / (2 eps) must stay well below 1e-6.
  double fd_eps = 1e-6;
};

inline void PrintTo(const op_case& c, std::ostream* os) { *os << c.name; }

/// A small deterministic generator (SplitMix64), seeded from a string.
struct rng {
  uint64_t s;
  explicit rng(const std::string& seed) : s(1469598103934665603ull) {
    for (char ch : seed) s = (s ^ static_cast<uint8_t>(ch)) * 1099511628211ull;
  }
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

/// Every case, and those with gradients.
const std::vector<op_case>& all_cases();
std::vector<op_case> differentiable_cases();
/// The inputs of a case (fixed per case name; floats rounded to f32).
nds draw_inputs(const op_case& c);
tensor to_tensor(const nd& x, dtype t);
/// Placeholders for a case's inputs (float ones in `ft`) and their feeds.
exprs make_placeholders(graph& g, const op_case& c, dtype ft, const nds& vals, feed_map& feeds);
/// ||got - want|| / ||want|| <= tol (absolute when want is all zeros).
testing::AssertionResult close_by_norm(const std::vector<double>& got, const std::vector<double>& want, double tol);
std::string dims_str(const dims_t& d);
/// loss = sum_k sum(outs[k] * R_k), R_k fixed random (not symmetric).
expr weighted_loss(graph& g, const exprs& outs, const std::string& seed);

struct bad_run {
  std::string name;
  /// Builds the op; its last input is the index placeholder.
  std::function<expr(graph&, expr data, expr index)> build;
  dims_t data_dims;
  dims_t index_dims;
  std::vector<int64_t> bad, good;
  std::vector<std::string> expect;
};

inline void PrintTo(const bad_run& c, std::ostream* os) { *os << c.name; }

/// Ops fed an out-of-range index: each must fail naming the index and node.
const std::vector<bad_run>& bad_runs();

} // namespace luoshu::op_cases
