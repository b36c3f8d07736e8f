// The op test table (see op_cases.hpp).

#include "tests/ops/op_cases.hpp"

#include <gtest/gtest.h>

#include <array>

#include "graph/models.hpp"

namespace luoshu::op_cases {

template <class F>
nd make(const dims_t& d, F f) {
  nd r{d, {}};
  for (int64_t i = 0; i < numel_of(d); ++i) r.v.push_back(f(unravel(i, d)));
  return r;
}

template <class F>
nd map(const nd& x, F f) {
  nd r = x;
  for (auto& e : r.v) e = f(e);
  return r;
}

dims_t broadcast_dims(const dims_t& a, const dims_t& b) {
  size_t r = std::max(a.size(), b.size());
  dims_t out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// x read at an index of a (right-aligned) broadcast of it.
double at_broadcast(const nd& x, const dims_t& out_idx) {
  size_t off = out_idx.size() - x.dims.size();
  dims_t idx(x.dims.size());
  for (size_t i = 0; i < x.dims.size(); ++i) idx[i] = x.dims[i] == 1 ? 0 : out_idx[off + i];
  return x.at(idx);
}

template <class F>
nd zip(const nd& a, const nd& b, F f) {
  return make(broadcast_dims(a.dims, b.dims),
              [&](const dims_t& i) { return f(at_broadcast(a, i), at_broadcast(b, i)); });
}

enum class red { sum, mean, max, min, norm };

/// Groups the elements by their index with `axes` removed, then reduces each
/// group.
nd reduce_ref(const nd& x, const dims_t& axes, bool keep, red op) {
  int r = x.rank();
  std::vector<bool> on(static_cast<size_t>(r), axes.empty());
  for (auto a : axes) on[static_cast<size_t>((a + r) % r)] = true;
  dims_t od;
  for (int i = 0; i < r; ++i)
    if (!on[static_cast<size_t>(i)]) od.push_back(x.dims[static_cast<size_t>(i)]);
    else if (keep) od.push_back(1);
  std::vector<std::vector<double>> groups(static_cast<size_t>(numel_of(od)));
  for (int64_t e = 0; e < numel_of(x.dims); ++e) {
    dims_t idx = unravel(e, x.dims), oi;
    for (int i = 0; i < r; ++i)
      if (!on[static_cast<size_t>(i)]) oi.push_back(idx[static_cast<size_t>(i)]);
      else if (keep) oi.push_back(0);
    groups[static_cast<size_t>(ravel(oi, od))].push_back(x.v[static_cast<size_t>(e)]);
  }
  nd out{od, {}};
  for (const auto& g : groups) {
    double acc = 0;
    switch (op) {
      case red::sum: for (double v : g) acc += v; break;
      case red::mean: for (double v : g) acc += v; acc /= static_cast<double>(g.size()); break;
      case red::max: acc = *std::max_element(g.begin(), g.end()); break;
      case red::min: acc = *std::min_element(g.begin(), g.end()); break;
      case red::norm: for (double v : g) acc += v * v; acc = std::sqrt(acc); break;
    }
    out.v.push_back(acc);
  }
  return out;
}

nd softmax_ref(const nd& x, int64_t axis, bool log) {
  auto ax = static_cast<size_t>((axis + x.rank()) % x.rank());
  return make(x.dims, [&](const dims_t& idx) {
    dims_t j = idx;
    double m = -std::numeric_limits<double>::infinity(), s = 0;
    for (j[ax] = 0; j[ax] < x.dims[ax]; ++j[ax]) m = std::max(m, x.at(j));
    for (j[ax] = 0; j[ax] < x.dims[ax]; ++j[ax]) s += std::exp(x.at(j) - m);
    double lse = m + std::log(s);
    return log ? x.at(idx) - lse : std::exp(x.at(idx) - lse);
  });
}

nd matmul_ref(const nd& a, const nd& b, bool ta, bool tb) {
  int64_t m = ta ? a.dims[1] : a.dims[0], k = ta ? a.dims[0] : a.dims[1];
  int64_t n = tb ? b.dims[0] : b.dims[1];
  return make({m, n}, [&](const dims_t& i) {
    double s = 0;
    for (int64_t p = 0; p < k; ++p)
      s += (ta ? a.at({p, i[0]}) : a.at({i[0], p})) * (tb ? b.at({i[1], p}) : b.at({p, i[1]}));
    return s;
  });
}

/// x[i] (the sub-array at index i of the first axis).
nd first_axis(const nd& x, int64_t i) {
  nd r{dims_t(x.dims.begin() + 1, x.dims.end()), {}};
  int64_t n = numel_of(r.dims);
  r.v.assign(x.v.begin() + i * n, x.v.begin() + (i + 1) * n);
  return r;
}

nd batch_matmul_ref(const nd& a, const nd& b, bool ta, bool tb) {
  nds per;
  for (int64_t i = 0; i < a.dims[0]; ++i) per.push_back(matmul_ref(first_axis(a, i), first_axis(b, i), ta, tb));
  dims_t d{a.dims[0], per[0].dims[0], per[0].dims[1]};
  return make(d, [&](const dims_t& i) { return per[static_cast<size_t>(i[0])].at({i[1], i[2]}); });
}

nd linear_ref(const nd& x, const nd& w, const nd& b) {
  dims_t d = x.dims;
  d.back() = w.dims[1];
  return make(d, [&](const dims_t& i) {
    dims_t xi = i;
    double s = b.v[static_cast<size_t>(i.back())];
    for (xi.back() = 0; xi.back() < w.dims[0]; ++xi.back()) s += x.at(xi) * w.at({xi.back(), i.back()});
    return s;
  });
}

/// Output index i of gather(x, indices, axis).
nd gather_ref(const nd& x, const nd& indices, int64_t axis) {
  auto ax = static_cast<size_t>(axis);
  size_t ri = indices.dims.size();
  dims_t d(x.dims.begin(), x.dims.begin() + static_cast<ptrdiff_t>(ax));
  d.insert(d.end(), indices.dims.begin(), indices.dims.end());
  d.insert(d.end(), x.dims.begin() + static_cast<ptrdiff_t>(ax) + 1, x.dims.end());
  return make(d, [&](const dims_t& i) {
    dims_t xi(i.begin(), i.begin() + static_cast<ptrdiff_t>(ax));
    dims_t ii(i.begin() + static_cast<ptrdiff_t>(ax), i.begin() + static_cast<ptrdiff_t>(ax + ri));
    xi.push_back(static_cast<int64_t>(indices.at(ii)));
    xi.insert(xi.end(), i.begin() + static_cast<ptrdiff_t>(ax + ri), i.end());
    return x.at(xi);
  });
}

double sigmoid_ref(double v) { return 1 / (1 + std::exp(-v)); }

/// -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) = log(1 + e^z) - t z,
/// the second form staying finite for large |z| in float64.
double bce_ref(double z, double t) { return std::log1p(std::exp(z)) - t * z; }

/// Index of the first largest element of a row.
int64_t argmax_row(const std::vector<double>& row) {
  int64_t best = 0;
  for (size_t j = 1; j < row.size(); ++j)
    if (row[j] > row[static_cast<size_t>(best)]) best = static_cast<int64_t>(j);
  return best;
}



constexpr int64_t to_end = INT64_MAX;

void add_unary(std::vector<op_case>& cs, std::string name, in_spec in, std::function<expr(expr)> b,
               std::function<double(double)> f, bool differentiable = true, double f32_tol = 1e-5) {
  cs.push_back({.name = std::move(name),
                .inputs = {std::move(in)},
                .build = [b](const exprs& x) -> exprs { return {b(x[0])}; },
                .ref = [f](const nds& x) -> nds { return {map(x[0], f)}; },
                .differentiable = differentiable,
                .f32_tol = f32_tol});
}

void add_binary_cases(std::vector<op_case>& cs) {
  struct shapes { const char* name; dims_t a, b; };
  const shapes shape_cases[] = {
      {"Same", {3, 4}, {3, 4}},          {"Row", {3, 4}, {4}},
      {"Cross", {2, 1, 3}, {1, 4, 1}},   {"ScalarRight", {3, 4}, {}},
      {"ScalarLeft", {}, {2, 3}},        {"Column", {3, 4}, {3, 1}},
      {"Outer", {3, 1}, {1, 4}},         {"Rank4", {2, 1, 3, 1}, {4, 1, 2}},
  };
  struct binop {
    const char* name;
    std::function<expr(expr, expr)> b;
    std::function<double(double, double)> f;
    double alo, ahi, blo, bhi;
    bool distinct;
  };
  const binop ops[] = {
      {"Add", [](expr a, expr b) { return a + b; }, [](double a, double b) { return a + b; }, -1, 1, -1, 1, false},
      {"Sub", [](expr a, expr b) { return a - b; }, [](double a, double b) { return a - b; }, -1, 1, -1, 1, false},
      {"Mul", [](expr a, expr b) { return a * b; }, [](double a, double b) { return a * b; }, -1, 1, -1, 1, false},
      {"Div", [](expr a, expr b) { return a / b; }, [](double a, double b) { return a / b; }, -1, 1, 0.5, 2, false},
      {"Pow", [](expr a, expr b) { return pow(a, b); }, [](double a, double b) { return std::pow(a, b); },
       0.5, 2, -1.5, 2.5, false},
      {"Maximum", [](expr a, expr b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, -1, 1, -1, 1, true},
      {"Minimum", [](expr a, expr b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, -1, 1, -1, 1, true},
  };
  for (const auto& op : ops)
    for (const auto& s : shape_cases) {
      auto b = op.b;
      auto f = op.f;
      cs.push_back({.name = std::string(op.name) + s.name,
                    .inputs = {fl(s.a).range(op.alo, op.ahi), fl(s.b).range(op.blo, op.bhi)},
                    .build = [b](const exprs& x) -> exprs { return {b(x[0], x[1])}; },
                    .ref = [f](const nds& x) -> nds { return {zip(x[0], x[1], f)}; },
                    .distinct = op.distinct});
    }

  // Comparisons: small integers so that ties occur; outputs are u8.
  struct cmpop {
    const char* name;
    expr (*b)(expr, expr);
    std::function<bool(double, double)> f;
  };
  const cmpop cmps[] = {
      {"Equal", &equal, [](double a, double b) { return a == b; }},
      {"NotEqual", &not_equal, [](double a, double b) { return a != b; }},
      {"Less", &less, [](double a, double b) { return a < b; }},
      {"LessEqual", &less_equal, [](double a, double b) { return a <= b; }},
      {"Greater", &greater, [](double a, double b) { return a > b; }},
      {"GreaterEqual", &greater_equal, [](double a, double b) { return a >= b; }},
  };
  for (const auto& op : cmps)
    for (const auto& s : shape_cases) {
      if (std::string(s.name).starts_with("Scalar")) continue;
      auto b = op.b;
      auto f = op.f;
      cs.push_back({.name = std::string(op.name) + s.name,
                    .inputs = {fl(s.a).range(-2, 2).rounded(), fl(s.b).range(-2, 2).rounded()},
                    .build = [b](const exprs& x) -> exprs { return {b(x[0], x[1])}; },
                    .ref = [f](const nds& x) -> nds {
                      return {zip(x[0], x[1], [f](double a, double b) { return f(a, b) ? 1.0 : 0.0; })};
                    },
                    .differentiable = false,
                    .f32_tol = 0});
    }

  // Scalars given as doubles become constants of the tensor's dtype.
  add_unary(cs, "AddDouble", fl({3, 4}), [](expr x) { return x + 1.5; }, [](double v) { return v + 1.5; });
  add_unary(cs, "DoubleMinus", fl({3, 4}), [](expr x) { return 2.0 - x; }, [](double v) { return 2.0 - v; });
  add_unary(cs, "DoubleDivide", fl({3, 4}).range(0.5, 2), [](expr x) { return 2.0 / x; },
            [](double v) { return 2.0 / v; });
  add_unary(cs, "PowDouble", fl({3, 4}).range(0.5, 2), [](expr x) { return pow(x, 2.5); },
            [](double v) { return std::pow(v, 2.5); });

  auto where_ref = [](const nds& x) -> nds {
    dims_t d = broadcast_dims(x[0].dims, broadcast_dims(x[1].dims, x[2].dims));
    return {make(d, [&](const dims_t& i) {
      return at_broadcast(x[0], i) != 0 ? at_broadcast(x[1], i) : at_broadcast(x[2], i);
    })};
  };
  auto where_build = [](const exprs& x) -> exprs { return {where(x[0], x[1], x[2])}; };
  cs.push_back({.name = "WhereSame",
                .inputs = {mask({3, 4}, {1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0}), fl({3, 4}), fl({3, 4})},
                .build = where_build, .ref = where_ref, .f32_tol = 0});
  cs.push_back({.name = "WhereBroadcast",
                .inputs = {mask({3, 1}, {1, 0, 1}), fl({4}), fl({3, 4})},
                .build = where_build, .ref = where_ref, .f32_tol = 0});
  cs.push_back({.name = "WhereScalarBranch",
                .inputs = {mask({2, 3}, {0, 1, 1, 0, 0, 1}), fl({2, 3}), fl({})},
                .build = where_build, .ref = where_ref, .f32_tol = 0});
}

void add_unary_cases(std::vector<op_case>& cs) {
  add_unary(cs, "Neg", fl({3, 5}), [](expr x) { return -x; }, [](double v) { return -v; }, true, 0);
  add_unary(cs, "Abs", fl({3, 5}).avoid({0}), [](expr x) { return abs(x); },
            [](double v) { return std::fabs(v); }, true, 0);
  add_unary(cs, "Exp", fl({3, 5}).range(-2, 2), [](expr x) { return exp(x); },
            [](double v) { return std::exp(v); });
  add_unary(cs, "ExpScalar", fl({}).range(-2, 2), [](expr x) { return exp(x); },
            [](double v) { return std::exp(v); });
  add_unary(cs, "Log", fl({3, 5}).range(0.2, 3), [](expr x) { return log(x); },
            [](double v) { return std::log(v); });
  add_unary(cs, "Sqrt", fl({3, 5}).range(0.2, 3), [](expr x) { return sqrt(x); },
            [](double v) { return std::sqrt(v); });
  add_unary(cs, "Rsqrt", fl({3, 5}).range(0.2, 3), [](expr x) { return rsqrt(x); },
            [](double v) { return 1 / std::sqrt(v); });
  add_unary(cs, "Square", fl({2, 3, 4}), [](expr x) { return square(x); }, [](double v) { return v * v; });
  add_unary(cs, "Sign", fl({3, 5}).range(-2, 2).rounded(), [](expr x) { return sign(x); },
            [](double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); }, false, 0);
  add_unary(cs, "Clamp", fl({3, 5}).avoid({-0.5, 0.6}), [](expr x) { return clamp(x, -0.5, 0.6); },
            [](double v) { return std::min(0.6, std::max(-0.5, v)); });
  add_unary(cs, "Identity", fl({3, 5}), [](expr x) { return identity(x); }, [](double v) { return v; }, true, 0);
  add_unary(cs, "StopGradient", fl({3, 5}), [](expr x) { return stop_gradient(x); },
            [](double v) { return v; }, false, 0);
  // cast f64 -> f64 is the input itself; f32 -> f64 is exact.
  cs.push_back({.name = "CastF32ToF64",
                .inputs = {in_spec{{3, 5}, dtype::f32}},
                .build = [](const exprs& x) -> exprs { return {cast(x[0], dtype::f64)}; },
                .ref = [](const nds& x) -> nds { return {x[0]}; },
                .differentiable = false,
                .f32_tol = 0});

  add_unary(cs, "Relu", fl({3, 5}).avoid({0}), [](expr x) { return relu(x); },
            [](double v) { return v > 0 ? v : 0.0; });
  add_unary(cs, "Relu3d", fl({2, 3, 4}).avoid({0}), [](expr x) { return relu(x); },
            [](double v) { return v > 0 ? v : 0.0; });
  add_unary(cs, "LeakyRelu", fl({3, 5}).avoid({0}), [](expr x) { return leaky_relu(x, 0.1); },
            [](double v) { return v > 0 ? v : 0.1 * v; });
  add_unary(cs, "Elu", fl({3, 5}).range(-2, 2).avoid({0}), [](expr x) { return elu(x, 0.7); },
            [](double v) { return v > 0 ? v : 0.7 * (std::exp(v) - 1); });
  // gelu in f32 goes through std::erf(float), good to ~1e-7 relative.
  add_unary(cs, "Gelu", fl({3, 5}).range(-3, 3), [](expr x) { return gelu(x); },
            [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); });
  add_unary(cs, "Sigmoid", fl({3, 5}).range(-4, 4), [](expr x) { return sigmoid(x); }, sigmoid_ref);
  add_unary(cs, "Tanh", fl({3, 5}).range(-2, 2), [](expr x) { return tanh(x); },
            [](double v) { return std::tanh(v); });
  add_unary(cs, "Softplus", fl({3, 5}).range(-4, 4), [](expr x) { return softplus(x); },
            [](double v) { return std::log(1 + std::exp(v)); });

  struct sm { const char* name; dims_t d; int64_t axis; };
  for (const sm& s : {sm{"LastAxis", {3, 5}, -1}, sm{"Axis0Of3d", {2, 3, 4}, 0}, sm{"MiddleAxis", {2, 3, 4}, 1}})
    for (bool lg : {false, true}) {
      int64_t axis = s.axis;
      cs.push_back({.name = std::string(lg ? "LogSoftmax" : "Softmax") + s.name,
                    .inputs = {fl(s.d).range(-3, 3)},
                    .build = [axis, lg](const exprs& x) -> exprs {
                      return {lg ? log_softmax(x[0], axis) : softmax(x[0], axis)};
                    },
                    .ref = [axis, lg](const nds& x) -> nds { return {softmax_ref(x[0], axis, lg)}; }});
    }
}

void add_matmul_cases(std::vector<op_case>& cs) {
  const int64_t m = 3, k = 4, n = 5;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::string t = std::string(ta ? "T" : "N") + (tb ? "T" : "N");
      dims_t a = ta ? dims_t{k, m} : dims_t{m, k}, b = tb ? dims_t{n, k} : dims_t{k, n};
      cs.push_back({.name = "Matmul" + t,
                    .inputs = {fl(a), fl(b)},
                    .build = [ta, tb](const exprs& x) -> exprs { return {matmul(x[0], x[1], ta, tb)}; },
                    .ref = [ta, tb](const nds& x) -> nds { return {matmul_ref(x[0], x[1], ta, tb)}; }});
      dims_t ba{2}, bb{2};
      ba.insert(ba.end(), a.begin(), a.end());
      bb.insert(bb.end(), b.begin(), b.end());
      cs.push_back({.name = "BatchMatmul" + t,
                    .inputs = {fl(ba), fl(bb)},
                    .build = [ta, tb](const exprs& x) -> exprs { return {batch_matmul(x[0], x[1], ta, tb)}; },
                    .ref = [ta, tb](const nds& x) -> nds { return {batch_matmul_ref(x[0], x[1], ta, tb)}; }});
    }
  auto lin_build = [](const exprs& x) -> exprs { return {linear(x[0], x[1], x[2])}; };
  auto lin_ref = [](const nds& x) -> nds { return {linear_ref(x[0], x[1], x[2])}; };
  cs.push_back({.name = "Linear2d", .inputs = {fl({3, 4}), fl({4, 5}), fl({5})}, .build = lin_build, .ref = lin_ref});
  cs.push_back({.name = "Linear3d", .inputs = {fl({2, 3, 4}), fl({4, 5}), fl({5})}, .build = lin_build, .ref = lin_ref});
  cs.push_back({.name = "Linear1d", .inputs = {fl({4}), fl({4, 5}), fl({5})}, .build = lin_build, .ref = lin_ref});
}

void add_reduce_cases(std::vector<op_case>& cs) {
  struct rop { const char* name; expr (*b)(expr, std::vector<int64_t>, bool); red r; };
  const rop ops[] = {{"Sum", &sum, red::sum}, {"Mean", &mean, red::mean}, {"Max", &max, red::max},
                     {"Min", &min, red::min}, {"Norm", &norm, red::norm}};
  struct variant { const char* name; dims_t d; dims_t axes; bool keep; };
  const variant variants[] = {
      {"All", {2, 3, 4}, {}, false},         {"AllKeep", {2, 3, 4}, {}, true},
      {"Axis1", {2, 3, 4}, {1}, false},      {"LastAxisKeep", {2, 3, 4}, {-1}, true},
      {"Axes02", {2, 3, 4}, {0, 2}, false},  {"Axes02Keep", {2, 3, 4}, {0, 2}, true},
      {"Axes13Of4d", {2, 3, 2, 4}, {3, 1}, false},
  };
  for (const auto& op : ops)
    for (const auto& v : variants) {
      auto b = op.b;
      auto r = op.r;
      dims_t axes = v.axes;
      bool keep = v.keep;
      cs.push_back({.name = std::string(op.name) + v.name,
                    .inputs = {fl(v.d)},
                    .build = [b, axes, keep](const exprs& x) -> exprs { return {b(x[0], axes, keep)}; },
                    .ref = [r, axes, keep](const nds& x) -> nds { return {reduce_ref(x[0], axes, keep, r)}; },
                    .distinct = r == red::max || r == red::min});
    }

  struct am { const char* name; dims_t d; int64_t axis; bool keep; };
  for (const am& a : {am{"LastAxis", {3, 5}, -1, false}, am{"Axis0Keep", {4, 3}, 0, true},
                      am{"Middle3d", {2, 3, 4}, 1, false}}) {
    int64_t axis = a.axis;
    bool keep = a.keep;
    cs.push_back({.name = std::string("Argmax") + a.name,
                  .inputs = {fl(a.d)},
                  .build = [axis, keep](const exprs& x) -> exprs { return {argmax(x[0], axis, keep)}; },
                  .ref = [axis, keep](const nds& x) -> nds {
                    auto ax = static_cast<size_t>((axis + x[0].rank()) % x[0].rank());
                    dims_t d = x[0].dims;
                    d[ax] = 1;
                    nd out = make(d, [&](const dims_t& i) {
                      std::vector<double> row;
                      dims_t j = i;
                      for (j[ax] = 0; j[ax] < x[0].dims[ax]; ++j[ax]) row.push_back(x[0].at(j));
                      return static_cast<double>(argmax_row(row));
                    });
                    if (!keep) out.dims.erase(out.dims.begin() + static_cast<ptrdiff_t>(ax));
                    return {out};
                  },
                  .differentiable = false,
                  .f32_tol = 0,
                  .distinct = true});
  }

  // sum_to_like: the reference sums every element into the target element it
  // broadcasts from.
  auto stl_ref = [](const nds& x) -> nds {
    nd out{x[1].dims, std::vector<double>(static_cast<size_t>(numel_of(x[1].dims)), 0.0)};
    size_t off = x[0].dims.size() - x[1].dims.size();
    for (int64_t e = 0; e < numel_of(x[0].dims); ++e) {
      dims_t i = unravel(e, x[0].dims), t;
      for (size_t k = 0; k < x[1].dims.size(); ++k) t.push_back(x[1].dims[k] == 1 ? 0 : i[off + k]);
      out.v[static_cast<size_t>(ravel(t, out.dims))] += x[0].v[static_cast<size_t>(e)];
    }
    return {out};
  };
  auto stl_build = [](const exprs& x) -> exprs { return {sum_to_like(x[0], x[1])}; };
  cs.push_back({.name = "SumOfScalar",
                .inputs = {fl({})},
                .build = [](const exprs& x) -> exprs { return {sum(x[0]), max(x[0], {}, true)}; },
                .ref = [](const nds& x) -> nds { return {x[0], x[0]}; }});
  cs.push_back({.name = "SumToLikeRow", .inputs = {fl({3, 4}), fl({4})}, .build = stl_build, .ref = stl_ref});
  cs.push_back({.name = "SumToLikeKeptAxes", .inputs = {fl({2, 3, 4}), fl({3, 1})}, .build = stl_build, .ref = stl_ref});
  cs.push_back({.name = "SumToLikeScalar", .inputs = {fl({2, 3}), fl({})}, .build = stl_build, .ref = stl_ref});
}

void add_shape_cases(std::vector<op_case>& cs) {
  cs.push_back({.name = "Reshape",
                .inputs = {fl({2, 3, 4})},
                .build = [](const exprs& x) -> exprs { return {reshape(x[0], shape{4, -1})}; },
                .ref = [](const nds& x) -> nds { return {nd{{4, 6}, x[0].v}}; },
                .f32_tol = 0});
  cs.push_back({.name = "ReshapeLike",
                .inputs = {fl({2, 6}), fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {reshape_like(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {nd{{3, 4}, x[0].v}}; },
                .f32_tol = 0});
  cs.push_back({.name = "Transpose3d",
                .inputs = {fl({2, 3, 4})},
                .build = [](const exprs& x) -> exprs { return {transpose(x[0], {2, 0, 1})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({4, 2, 3}, [&](const dims_t& i) { return x[0].at({i[1], i[2], i[0]}); })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "TransposeDefaultReverses",
                .inputs = {fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {transpose(x[0])}; },
                .ref = [](const nds& x) -> nds {
                  return {make({4, 3}, [&](const dims_t& i) { return x[0].at({i[1], i[0]}); })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "ConcatThreeAxis1",
                .inputs = {fl({2, 1, 3}), fl({2, 2, 3}), fl({2, 3, 3})},
                .build = [](const exprs& x) -> exprs { return {concat({x[0], x[1], x[2]}, 1)}; },
                .ref = [](const nds& x) -> nds {
                  return {make({2, 6, 3}, [&](const dims_t& i) {
                    int64_t j = i[1];
                    for (const nd& p : x) {
                      if (j < p.dims[1]) return p.at({i[0], j, i[2]});
                      j -= p.dims[1];
                    }
                    return std::nan("");
                  })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "ConcatNegativeAxis",
                .inputs = {fl({1, 3}), fl({2, 3})},
                .build = [](const exprs& x) -> exprs { return {concat({x[0], x[1]}, -2)}; },
                .ref = [](const nds& x) -> nds {
                  nd out{{3, 3}, x[0].v};
                  out.v.insert(out.v.end(), x[1].v.begin(), x[1].v.end());
                  return {out};
                },
                .f32_tol = 0});
  cs.push_back({.name = "SplitAxis1",
                .inputs = {fl({3, 6})},
                .build = [](const exprs& x) -> exprs { return split(x[0], {1, 2, 3}, 1); },
                .ref = [](const nds& x) -> nds {
                  nds out;
                  int64_t off = 0;
                  for (int64_t w : {1, 2, 3}) {
                    out.push_back(make({3, w}, [&](const dims_t& i) { return x[0].at({i[0], off + i[1]}); }));
                    off += w;
                  }
                  return out;
                },
                .f32_tol = 0});
  // [1:-1, -4:] of a [4, 5] is rows 1..2, columns 1..4.
  cs.push_back({.name = "SliceNegative",
                .inputs = {fl({4, 5})},
                .build = [](const exprs& x) -> exprs { return {slice(x[0], {1, -4}, {-1, to_end})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({2, 4}, [&](const dims_t& i) { return x[0].at({i[0] + 1, i[1] + 1}); })};
                },
                .f32_tol = 0});
  // [0:1, -2:, 1:-1] of a [2, 3, 4] is [0:1, 1:3, 1:3].
  cs.push_back({.name = "Slice3d",
                .inputs = {fl({2, 3, 4})},
                .build = [](const exprs& x) -> exprs { return {slice(x[0], {0, -2, 1}, {1, to_end, -1})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({1, 2, 2}, [&](const dims_t& i) { return x[0].at({i[0], i[1] + 1, i[2] + 1}); })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "Pad",
                .inputs = {fl({2, 3})},
                .build = [](const exprs& x) -> exprs { return {pad(x[0], {1, 0}, {0, 2}, 0.5)}; },
                .ref = [](const nds& x) -> nds {
                  return {make({3, 5}, [&](const dims_t& i) {
                    return i[0] >= 1 && i[1] < 3 ? x[0].at({i[0] - 1, i[1]}) : 0.5;
                  })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "BroadcastTo",
                .inputs = {fl({3, 1})},
                .build = [](const exprs& x) -> exprs { return {broadcast_to(x[0], shape{2, 3, 4})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({2, 3, 4}, [&](const dims_t& i) { return x[0].at({i[1], 0}); })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "BroadcastToRow",
                .inputs = {fl({4})},
                .build = [](const exprs& x) -> exprs { return {broadcast_to(x[0], shape{3, 4})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({3, 4}, [&](const dims_t& i) { return x[0].at({i[1]}); })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "BroadcastLike",
                .inputs = {fl({3, 1}), fl({2, 3, 4})},
                .build = [](const exprs& x) -> exprs { return {broadcast_like(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds {
                  return {make({2, 3, 4}, [&](const dims_t& i) { return x[0].at({i[1], 0}); })};
                },
                .f32_tol = 0});
  cs.push_back({.name = "Squeeze",
                .inputs = {fl({3, 1, 4})},
                .build = [](const exprs& x) -> exprs { return {squeeze(x[0], {1})}; },
                .ref = [](const nds& x) -> nds { return {nd{{3, 4}, x[0].v}}; },
                .f32_tol = 0});
  cs.push_back({.name = "SqueezeAll",
                .inputs = {fl({1, 3, 1})},
                .build = [](const exprs& x) -> exprs { return {squeeze(x[0])}; },
                .ref = [](const nds& x) -> nds { return {nd{{3}, x[0].v}}; },
                .f32_tol = 0});
  cs.push_back({.name = "Unsqueeze",
                .inputs = {fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {unsqueeze(x[0], {0, 2})}; },
                .ref = [](const nds& x) -> nds { return {nd{{1, 3, 1, 4}, x[0].v}}; },
                .f32_tol = 0});
  cs.push_back({.name = "GatherAxis0Repeated",
                .inputs = {fl({5, 3}), ints({4}, {4, 0, 4, 2})},
                .build = [](const exprs& x) -> exprs { return {gather(x[0], x[1], 0)}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0});
  cs.push_back({.name = "GatherAxis1Repeated",
                .inputs = {fl({3, 5}), ints({2, 2}, {1, 1, 4, 0})},
                .build = [](const exprs& x) -> exprs { return {gather(x[0], x[1], 1)}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 1)}; },
                .f32_tol = 0});
  cs.push_back({.name = "GatherI32Indices",
                .inputs = {fl({4, 2}), ints({3}, {3, 3, 1}, dtype::i32)},
                .build = [](const exprs& x) -> exprs { return {gather(x[0], x[1], 0)}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0});
  cs.push_back({.name = "GatherScalarIndex",
                .inputs = {fl({5, 3}), ints({}, {3})},
                .build = [](const exprs& x) -> exprs { return {gather(x[0], x[1], 0)}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0});
  cs.push_back({.name = "GatherLastAxisOf3d",
                .inputs = {fl({2, 3, 4}), ints({2, 2}, {3, 0, 3, 3})},
                .build = [](const exprs& x) -> exprs { return {gather(x[0], x[1], -1)}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 2)}; },
                .f32_tol = 0});
  cs.push_back({.name = "OneHot",
                .inputs = {ints({2, 3}, {0, 3, 1, 1, 2, 0})},
                .build = [](const exprs& x) -> exprs { return {one_hot(x[0], 4)}; },
                .ref = [](const nds& x) -> nds {
                  return {make({2, 3, 4}, [&](const dims_t& i) {
                    return x[0].at({i[0], i[1]}) == static_cast<double>(i[2]) ? 1.0 : 0.0;
                  })};
                },
                .differentiable = false,
                .f32_tol = 0});
}

void add_embedding_and_loss_cases(std::vector<op_case>& cs) {
  cs.push_back({.name = "EmbeddingRepeatedIds",
                .inputs = {fl({6, 3}), ints({2, 3}, {1, 5, 1, 0, 5, 1})},
                .build = [](const exprs& x) -> exprs { return {embedding(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0});

  cs.push_back({.name = "EmbeddingI32Ids",
                .inputs = {fl({4, 2}), ints({3}, {3, 3, 0}, dtype::i32)},
                .build = [](const exprs& x) -> exprs { return {embedding(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0});
  cs.push_back({.name = "EmbeddingRank3Table",
                .inputs = {fl({5, 2, 3}), ints({4}, {4, 1, 4, 2})},
                .build = [](const exprs& x) -> exprs { return {embedding(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0});
  // The squared norm of the dense tensor a sparse gradient stands for:
  // rows 1 and 4 repeat and are summed before squaring.
  cs.push_back({.name = "SparseSquareSum",
                .inputs = {ints({5}, {4, 1, 0, 4, 1}), fl({5, 3})},
                .build = [](const exprs& x) -> exprs {
                  return {x[0].g().add(op_kind::sparse_square_sum, {x[0].id(), x[1].id()})};
                },
                .ref = [](const nds& x) -> nds {
                  std::vector<double> dense(5 * 3, 0.0);
                  for (int64_t i = 0; i < 5; ++i)
                    for (int64_t j = 0; j < 3; ++j)
                      dense[static_cast<size_t>(static_cast<int64_t>(x[0].v[static_cast<size_t>(i)]) * 3 + j)] +=
                          x[1].at({i, j});
                  double s = 0;
                  for (double v : dense) s += v * v;
                  return {nd{{}, {s}}};
                },
                .differentiable = false});
  auto sce_ref = [](const nds& x) -> nds {
    const nd &z = x[0], &y = x[1];
    return {make({z.dims[0]}, [&](const dims_t& i) {
      double s = 0;
      for (int64_t j = 0; j < z.dims[1]; ++j) s += std::exp(z.at({i[0], j}));
      return std::log(s) - z.at({i[0], static_cast<int64_t>(y.v[static_cast<size_t>(i[0])])});
    })};
  };
  auto sce_build = [](const exprs& x) -> exprs { return {softmax_cross_entropy(x[0], x[1])}; };
  cs.push_back({.name = "SoftmaxCrossEntropy",
                .inputs = {fl({4, 5}).range(-3, 3), ints({4}, {0, 4, 2, 4})},
                .build = sce_build, .ref = sce_ref});
  cs.push_back({.name = "SoftmaxCrossEntropyI32Labels",
                .inputs = {fl({3, 4}).range(-3, 3), ints({3}, {3, 0, 3}, dtype::i32)},
                .build = sce_build, .ref = sce_ref});
  cs.push_back({.name = "BceWithLogits",
                .inputs = {fl({3, 4}).range(-3, 3), fl({3, 4}).range(0, 1)},
                .build = [](const exprs& x) -> exprs { return {bce_with_logits(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {zip(x[0], x[1], bce_ref)}; }});
  cs.push_back({.name = "MseLoss",
                .inputs = {fl({3, 4}), fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {mse_loss(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds {
                  return {zip(x[0], x[1], [](double p, double t) { return (p - t) * (p - t); })};
                }});
  // pred = target + d with d fixed: away from |d| = 0 (l1's kink) and, for
  // huber (delta 1), on both sides of |d| = delta.
  auto offsets = [](std::vector<double> d) {
    return [d](nds& x) {
      for (size_t i = 0; i < d.size(); ++i) x[0].v[i] = x[1].v[i] + d[i];
    };
  };
  cs.push_back({.name = "L1Loss",
                .inputs = {fl({3, 4}), fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {l1_loss(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds {
                  return {zip(x[0], x[1], [](double p, double t) { return std::fabs(p - t); })};
                },
                .adjust = offsets({0.3, -0.5, 0.8, -0.2, 1.1, -0.9, 0.15, -1.6, 0.7, -0.35, 2.0, -0.6})});
  cs.push_back({.name = "HuberLoss",
                .inputs = {fl({3, 4}), fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {huber_loss(x[0], x[1], 1.0)}; },
                .ref = [](const nds& x) -> nds {
                  return {zip(x[0], x[1], [](double p, double t) {
                    double d = std::fabs(p - t);
                    return d <= 1 ? 0.5 * d * d : d - 0.5;
                  })};
                },
                .adjust = offsets({0.3, -0.5, 1.6, -2.2, 0.8, -1.4, 2.5, -0.1, 0.6, -0.9, 1.2, -3.0})});
  // Four rows, so every accuracy is exact in f32.
  cs.push_back({.name = "Accuracy",
                .inputs = {fl({4, 5}), ints({4}, {0, 1, 2, 3})},
                .build = [](const exprs& x) -> exprs { return {accuracy(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds {
                  double hits = 0;
                  for (int64_t i = 0; i < 4; ++i) {
                    nd row = first_axis(x[0], i);
                    hits += argmax_row(row.v) == static_cast<int64_t>(x[1].v[static_cast<size_t>(i)]);
                  }
                  return {nd{{}, {hits / 4}}};
                },
                .differentiable = false,
                .f32_tol = 0,
                .distinct = true,
                // Make row 1 and row 3 hits whatever was drawn (row 0, 2 decided by the draw).
                .adjust = [](nds& x) {
                  x[0].v[1 * 5 + 1] = 5;
                  x[0].v[3 * 5 + 3] = 5;
                }});
}

// Inputs large enough for the kernels' parallel paths (parallel_for splits
// work above 32768 element-steps), checked with sampled finite differences.
void add_large_cases(std::vector<op_case>& cs) {
  auto bin = [](std::function<expr(expr, expr)> b, std::function<double(double, double)> f) {
    return std::pair<builder_fn, reference_fn>{
        [b](const exprs& x) -> exprs { return {b(x[0], x[1])}; },
        [f](const nds& x) -> nds { return {zip(x[0], x[1], f)}; }};
  };
  auto [addb, addr] = bin([](expr a, expr b) { return a + b; }, [](double a, double b) { return a + b; });
  cs.push_back({.name = "AddRowLarge", .inputs = {fl({300, 200}), fl({200})}, .build = addb, .ref = addr,
                .fd_eps = 1e-4});
  auto [mulb, mulr] = bin([](expr a, expr b) { return a * b; }, [](double a, double b) { return a * b; });
  cs.push_back({.name = "MulColumnLarge", .inputs = {fl({300, 200}), fl({300, 1})}, .build = mulb, .ref = mulr,
                .fd_eps = 1e-4});
  cs.push_back({.name = "ExpLarge",
                .inputs = {fl({300, 200}).range(-2, 2)},
                .build = [](const exprs& x) -> exprs { return {exp(x[0])}; },
                .ref = [](const nds& x) -> nds { return {map(x[0], [](double v) { return std::exp(v); })}; },
                .fd_eps = 1e-4});
  cs.push_back({.name = "GeluLarge",
                .inputs = {fl({300, 200}).range(-3, 3)},
                .build = [](const exprs& x) -> exprs { return {gelu(x[0])}; },
                .ref = [](const nds& x) -> nds {
                  return {map(x[0], [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); })};
                },
                .fd_eps = 1e-4});
  for (int64_t axis : {-1, 0}) {
    cs.push_back({.name = axis == 0 ? "SoftmaxAxis0Large" : "SoftmaxLarge",
                  .inputs = {fl({100, 400}).range(-3, 3)},
                  .build = [axis](const exprs& x) -> exprs { return {softmax(x[0], axis)}; },
                  .ref = [axis](const nds& x) -> nds { return {softmax_ref(x[0], axis, false)}; },
                  .fd_eps = 1e-4});
  }
  struct rop { const char* name; expr (*b)(expr, std::vector<int64_t>, bool); red r; dims_t d; dims_t axes; };
  // f32 sums of up to 6e4 positive terms still land within 1e-5 (3e-6 seen).
  const rop reductions[] = {
      {"SumAllLarge", &sum, red::sum, {300, 200}, {}},
      {"SumAxis0Large", &sum, red::sum, {300, 200}, {0}},
      {"MeanAxis1Large", &mean, red::mean, {300, 200}, {1}},
      {"NormAxes02Large", &norm, red::norm, {40, 30, 50}, {0, 2}},
      {"MaxAllLarge", &max, red::max, {300, 200}, {}},
      {"MinAxis0Large", &min, red::min, {300, 200}, {0}},
  };
  for (const auto& op : reductions) {
    auto b = op.b;
    auto r = op.r;
    dims_t axes = op.axes;
    bool extreme = r == red::max || r == red::min;
    cs.push_back({.name = op.name,
                  .inputs = {fl(op.d).range(0.5, 1.5)},
                  .build = [b, axes](const exprs& x) -> exprs { return {b(x[0], axes, false)}; },
                  .ref = [r, axes](const nds& x) -> nds { return {reduce_ref(x[0], axes, false, r)}; },
                  // max/min of thousands of values: neighbours are closer than
                  // any usable finite-difference step, so forward only here.
                  .differentiable = !extreme,
                  .f32_tol = extreme ? 0 : 1e-5,
                  .fd_eps = 1e-4});
  }
  for (bool t : {false, true})
    cs.push_back({.name = t ? "MatmulTTLarge" : "MatmulNNLarge",
                  .inputs = {fl(t ? dims_t{96, 64} : dims_t{64, 96}), fl(t ? dims_t{80, 96} : dims_t{96, 80})},
                  .build = [t](const exprs& x) -> exprs { return {matmul(x[0], x[1], t, t)}; },
                  .ref = [t](const nds& x) -> nds { return {matmul_ref(x[0], x[1], t, t)}; },
                  .fd_eps = 1e-4});
  // Fewer rows than columns with B transposed: the f32 kernel computes the
  // transposed product and transposes it back (several 32 x 32 tiles, on
  // the pool).
  cs.push_back({.name = "MatmulNTWide",
                .inputs = {fl({100, 50}), fl({400, 50})},
                .build = [](const exprs& x) -> exprs { return {matmul(x[0], x[1], false, true)}; },
                .ref = [](const nds& x) -> nds { return {matmul_ref(x[0], x[1], false, true)}; },
                .differentiable = false});
  cs.push_back({.name = "BatchMatmulNTLarge",
                .inputs = {fl({4, 32, 48}), fl({4, 40, 48})},
                .build = [](const exprs& x) -> exprs { return {batch_matmul(x[0], x[1], false, true)}; },
                .ref = [](const nds& x) -> nds { return {batch_matmul_ref(x[0], x[1], false, true)}; },
                .fd_eps = 1e-4});
  cs.push_back({.name = "Linear3dLarge",
                .inputs = {fl({4, 16, 96}), fl({96, 80}), fl({80})},
                .build = [](const exprs& x) -> exprs { return {linear(x[0], x[1], x[2])}; },
                .ref = [](const nds& x) -> nds { return {linear_ref(x[0], x[1], x[2])}; },
                .fd_eps = 1e-4});
  cs.push_back({.name = "Transpose3dLarge",
                .inputs = {fl({40, 30, 50})},
                .build = [](const exprs& x) -> exprs { return {transpose(x[0], {2, 0, 1})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({50, 40, 30}, [&](const dims_t& i) { return x[0].at({i[1], i[2], i[0]}); })};
                },
                .f32_tol = 0,
                .fd_eps = 1e-4});
  cs.push_back({.name = "ConcatLarge",
                .inputs = {fl({200, 100}), fl({200, 150})},
                .build = [](const exprs& x) -> exprs { return {concat({x[0], x[1]}, 1)}; },
                .ref = [](const nds& x) -> nds {
                  return {make({200, 250}, [&](const dims_t& i) {
                    return i[1] < 100 ? x[0].at({i[0], i[1]}) : x[1].at({i[0], i[1] - 100});
                  })};
                },
                .f32_tol = 0,
                .fd_eps = 1e-4});
  cs.push_back({.name = "PadLarge",
                .inputs = {fl({200, 190})},
                .build = [](const exprs& x) -> exprs { return {pad(x[0], {3, 0}, {2, 10}, -1.0)}; },
                .ref = [](const nds& x) -> nds {
                  return {make({205, 200}, [&](const dims_t& i) {
                    return i[0] >= 3 && i[0] < 203 && i[1] < 190 ? x[0].at({i[0] - 3, i[1]}) : -1.0;
                  })};
                },
                .f32_tol = 0,
                .fd_eps = 1e-4});
  cs.push_back({.name = "BroadcastToLarge",
                .inputs = {fl({300, 1})},
                .build = [](const exprs& x) -> exprs { return {broadcast_to(x[0], shape{2, 300, 100})}; },
                .ref = [](const nds& x) -> nds {
                  return {make({2, 300, 100}, [&](const dims_t& i) { return x[0].at({i[1], 0}); })};
                },
                .f32_tol = 0,
                .fd_eps = 1e-4});
  cs.push_back({.name = "GatherAxis1Large",
                .inputs = {fl({200, 300}), rand_ints({150}, 0, 299)},
                .build = [](const exprs& x) -> exprs { return {gather(x[0], x[1], 1)}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 1)}; },
                .f32_tol = 0,
                .fd_eps = 1e-4});
  cs.push_back({.name = "EmbeddingLarge",
                .inputs = {fl({1000, 64}), rand_ints({40, 50}, 0, 999)},
                .build = [](const exprs& x) -> exprs { return {embedding(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {gather_ref(x[0], x[1], 0)}; },
                .f32_tol = 0,
                .fd_eps = 1e-4});
  cs.push_back({.name = "SoftmaxCrossEntropyLarge",
                .inputs = {fl({500, 100}).range(-3, 3), rand_ints({500}, 0, 99)},
                .build = [](const exprs& x) -> exprs { return {softmax_cross_entropy(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds {
                  const nd &z = x[0], &y = x[1];
                  return {make({500}, [&](const dims_t& i) {
                    double s = 0;
                    for (int64_t j = 0; j < 100; ++j) s += std::exp(z.at({i[0], j}));
                    return std::log(s) - z.at({i[0], static_cast<int64_t>(y.v[static_cast<size_t>(i[0])])});
                  })};
                },
                .fd_eps = 1e-4});
}

// Inputs where a naive formula overflows in f32 (e^89 > FLT_MAX).
void add_stability_cases(std::vector<op_case>& cs) {
  for (bool lg : {false, true})
    cs.push_back({.name = lg ? "LogSoftmaxHugeLogits" : "SoftmaxHugeLogits",
                  .inputs = {fl({3, 5}).range(80, 120)},
                  .build = [lg](const exprs& x) -> exprs { return {lg ? log_softmax(x[0]) : softmax(x[0])}; },
                  .ref = [lg](const nds& x) -> nds { return {softmax_ref(x[0], -1, lg)}; }});
  cs.push_back({.name = "SoftmaxCrossEntropyHugeLogits",
                .inputs = {fl({3, 4}).range(80, 120), ints({3}, {2, 0, 1})},
                .build = [](const exprs& x) -> exprs { return {softmax_cross_entropy(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds {
                  return {make({3}, [&](const dims_t& i) {
                    double m = 0, s = 0;
                    for (int64_t j = 0; j < 4; ++j) m = std::max(m, x[0].at({i[0], j}));
                    for (int64_t j = 0; j < 4; ++j) s += std::exp(x[0].at({i[0], j}) - m);
                    return m + std::log(s) - x[0].at({i[0], static_cast<int64_t>(x[1].v[static_cast<size_t>(i[0])])});
                  })};
                }});
  add_unary(cs, "SoftplusWide", fl({3, 5}).range(-100, 100), [](expr x) { return softplus(x); },
            [](double v) { return std::log1p(std::exp(v)); });
  add_unary(cs, "SigmoidWide", fl({3, 5}).range(-60, 60), [](expr x) { return sigmoid(x); }, sigmoid_ref);
  add_unary(cs, "TanhWide", fl({3, 5}).range(-30, 30), [](expr x) { return tanh(x); },
            [](double v) { return std::tanh(v); });
  cs.push_back({.name = "BceWithLogitsWide",
                .inputs = {fl({3, 4}).range(-100, 100), fl({3, 4}).range(0, 1)},
                .build = [](const exprs& x) -> exprs { return {bce_with_logits(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {zip(x[0], x[1], bce_ref)}; }});
}

// Integer dtypes through the ops that accept them (forward only, exact).
void add_integer_cases(std::vector<op_case>& cs) {
  auto fwd = [&](std::string name, std::vector<in_spec> in, builder_fn b, reference_fn r) {
    cs.push_back({.name = std::move(name), .inputs = std::move(in), .build = std::move(b), .ref = std::move(r),
                  .differentiable = false, .f32_tol = 0});
  };
  for (dtype t : {dtype::i32, dtype::i64}) {
    std::string tn = t == dtype::i32 ? "I32" : "I64";
    fwd("AddRow" + tn, {rand_ints({3, 4}, -9, 9, t), rand_ints({4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {x[0] + x[1]}; },
        [](const nds& x) -> nds { return {zip(x[0], x[1], [](double a, double b) { return a + b; })}; });
    fwd("MulCross" + tn, {rand_ints({2, 1, 3}, -9, 9, t), rand_ints({1, 4, 1}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {x[0] * x[1]}; },
        [](const nds& x) -> nds { return {zip(x[0], x[1], [](double a, double b) { return a * b; })}; });
    fwd("Maximum" + tn, {rand_ints({3, 4}, -9, 9, t), rand_ints({3, 4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {maximum(x[0], x[1])}; },
        [](const nds& x) -> nds { return {zip(x[0], x[1], [](double a, double b) { return std::max(a, b); })}; });
    fwd("LessRow" + tn, {rand_ints({3, 4}, -3, 3, t), rand_ints({4}, -3, 3, t)},
        [](const exprs& x) -> exprs { return {less(x[0], x[1])}; },
        [](const nds& x) -> nds { return {zip(x[0], x[1], [](double a, double b) { return a < b ? 1.0 : 0.0; })}; });
    fwd("NegAbsSign" + tn, {rand_ints({3, 5}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {-x[0], abs(x[0]), sign(x[0])}; },
        [](const nds& x) -> nds {
          return {map(x[0], [](double v) { return -v; }), map(x[0], [](double v) { return std::fabs(v); }),
                  map(x[0], [](double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); })};
        });
    fwd("Clamp" + tn, {rand_ints({3, 5}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {clamp(x[0], -3, 4)}; },
        [](const nds& x) -> nds { return {map(x[0], [](double v) { return std::min(4.0, std::max(-3.0, v)); })}; });
    fwd("SumAxes02" + tn, {rand_ints({2, 3, 4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {sum(x[0], {0, 2})}; },
        [](const nds& x) -> nds { return {reduce_ref(x[0], {0, 2}, false, red::sum)}; });
    fwd("MaxAxis1Keep" + tn, {rand_ints({2, 3, 4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {max(x[0], {1}, true)}; },
        [](const nds& x) -> nds { return {reduce_ref(x[0], {1}, true, red::max)}; });
    fwd("Transpose" + tn, {rand_ints({2, 3, 4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {transpose(x[0], {1, 2, 0})}; },
        [](const nds& x) -> nds {
          return {make({3, 4, 2}, [&](const dims_t& i) { return x[0].at({i[2], i[0], i[1]}); })};
        });
    fwd("Where" + tn, {mask({3, 1}, {0, 1, 1}), rand_ints({3, 4}, -9, 9, t), rand_ints({4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {where(x[0], x[1], x[2])}; },
        [](const nds& x) -> nds {
          return {make({3, 4}, [&](const dims_t& i) {
            return x[0].at({i[0], 0}) != 0 ? x[1].at(i) : x[2].at({i[1]});
          })};
        });
    fwd("CastToF32" + tn, {rand_ints({3, 4}, -9, 9, t)},
        [](const exprs& x) -> exprs { return {cast(x[0], dtype::f32)}; },
        [](const nds& x) -> nds { return {x[0]}; });
  }
}

// --- convolution and pooling (NCHW), references by plain loops --------------

using pair_t = std::array<int64_t, 2>;

nd conv_ref(const nd& x, const nd& w, pair_t s, pair_t p, pair_t d, int64_t groups) {
  int64_t n = x.dims[0], c = x.dims[1], h = x.dims[2], wd = x.dims[3];
  int64_t o = w.dims[0], kh = w.dims[2], kw = w.dims[3];
  int64_t oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1;
  int64_t ow = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
  int64_t cg = c / groups, og = o / groups;
  return make({n, o, oh, ow}, [&](const dims_t& i) {
    double acc = 0;
    for (int64_t ci = 0; ci < cg; ++ci)
      for (int64_t a = 0; a < kh; ++a)
        for (int64_t b = 0; b < kw; ++b) {
          int64_t y = i[2] * s[0] - p[0] + a * d[0], xx = i[3] * s[1] - p[1] + b * d[1];
          if (y >= 0 && y < h && xx >= 0 && xx < wd)
            acc += x.at({i[0], i[1] / og * cg + ci, y, xx}) * w.at({i[1], ci, a, b});
        }
    return acc;
  });
}

nd pool_ref(const nd& x, pair_t k, pair_t s, pair_t p, bool is_max, bool include_pad) {
  int64_t h = x.dims[2], wd = x.dims[3];
  int64_t oh = (h + 2 * p[0] - k[0]) / s[0] + 1, ow = (wd + 2 * p[1] - k[1]) / s[1] + 1;
  return make({x.dims[0], x.dims[1], oh, ow}, [&](const dims_t& i) {
    double best = -std::numeric_limits<double>::infinity(), sum = 0;
    int64_t count = 0;
    for (int64_t a = 0; a < k[0]; ++a)
      for (int64_t b = 0; b < k[1]; ++b) {
        int64_t y = i[2] * s[0] - p[0] + a, xx = i[3] * s[1] - p[1] + b;
        if (y < 0 || y >= h || xx < 0 || xx >= wd) continue;
        double v = x.at({i[0], i[1], y, xx});
        best = std::max(best, v);
        sum += v;
        ++count;
      }
    if (is_max) return best;
    return sum / static_cast<double>(include_pad ? k[0] * k[1] : count);
  });
}

void add_conv_pool_cases(std::vector<op_case>& cs) {
  struct conv_spec {
    const char* name;
    dims_t x, w;
    conv2d_options o;
    bool bias;
  };
  const conv_spec convs[] = {
      {"Conv2dBasic", {2, 3, 6, 5}, {4, 3, 3, 3}, {}, false},
      {"Conv2dStride2Pad1", {2, 3, 7, 6}, {4, 3, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}}, false},
      {"Conv2dDilation2", {1, 2, 8, 7}, {3, 2, 3, 2}, {.padding = {2, 1}, .dilation = {2, 2}}, false},
      {"Conv2dGroups2", {2, 4, 5, 5}, {6, 2, 3, 3}, {.padding = {1, 1}, .groups = 2}, false},
      {"Conv2dDepthwise", {1, 3, 5, 4}, {3, 1, 3, 3}, {.stride = {2, 1}, .padding = {1, 1}, .groups = 3}, false},
      {"Conv2dNonSquare", {1, 3, 5, 9}, {2, 3, 2, 4}, {.stride = {1, 2}, .padding = {1, 0}, .dilation = {1, 2}},
       false},
      {"Conv2dPointwise", {2, 5, 3, 4}, {3, 5, 1, 1}, {}, false},
      {"Conv2dBias", {2, 3, 5, 5}, {4, 3, 3, 3}, {.padding = {1, 1}}, true},
  };
  for (const auto& s : convs) {
    conv2d_options o = s.o;
    bool bias = s.bias;
    std::vector<in_spec> in{fl(s.x), fl(s.w)};
    if (bias) in.push_back(fl({s.w[0]}));
    cs.push_back({.name = s.name,
                  .inputs = in,
                  .build = [o, bias](const exprs& x) -> exprs {
                    return {bias ? conv2d(x[0], x[1], x[2], o) : conv2d(x[0], x[1], o)};
                  },
                  .ref = [o, bias](const nds& x) -> nds {
                    nd y = conv_ref(x[0], x[1], o.stride, o.padding, o.dilation, o.groups);
                    if (bias)
                      for (int64_t i = 0; i < numel_of(y.dims); ++i)
                        y.v[static_cast<size_t>(i)] += x[2].v[static_cast<size_t>(unravel(i, y.dims)[1])];
                    return {y};
                  }});
  }
  cs.push_back({.name = "Conv2dLarge",
                .inputs = {fl({4, 8, 16, 16}), fl({16, 8, 3, 3})},
                .build = [](const exprs& x) -> exprs { return {conv2d(x[0], x[1], {.padding = {1, 1}})}; },
                .ref = [](const nds& x) -> nds { return {conv_ref(x[0], x[1], {1, 1}, {1, 1}, {1, 1}, 1)}; },
                .fd_eps = 1e-4});

  struct pool_spec {
    const char* name;
    dims_t x;
    pool2d_options o;
    bool is_max;
  };
  const pool_spec pools[] = {
      {"MaxPool2dK2", {2, 3, 6, 6}, {}, true},
      {"MaxPool2dK2OddSizes", {2, 3, 7, 9}, {}, true}, // the last row and column are in no window
      {"MaxPool2dK2Large", {4, 16, 12, 12}, {}, true}, // planes split across the pool
      {"MaxPool2dK3S2Pad1", {1, 2, 7, 5}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, true},
      {"MaxPool2dNonSquareOverlapping", {2, 2, 5, 6}, {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 1}}, true},
      {"AvgPool2dK2", {2, 3, 6, 6}, {}, false},
      {"AvgPool2dPadIncluded", {1, 2, 7, 5}, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, false},
      {"AvgPool2dPadExcluded", {1, 2, 7, 5},
       {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false}, false},
      {"AvgPool2dNonSquareOverlapping", {2, 2, 5, 6}, {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 1}}, false},
  };
  for (const auto& s : pools) {
    pool2d_options o = s.o;
    bool is_max = s.is_max;
    pair_t stride = {o.stride[0] ? o.stride[0] : o.kernel[0], o.stride[1] ? o.stride[1] : o.kernel[1]};
    cs.push_back({.name = s.name,
                  .inputs = {fl(s.x)},
                  .build = [o, is_max](const exprs& x) -> exprs {
                    return {is_max ? max_pool2d(x[0], o) : avg_pool2d(x[0], o)};
                  },
                  .ref = [o, is_max, stride](const nds& x) -> nds {
                    return {pool_ref(x[0], o.kernel, stride, o.padding, is_max, o.count_include_pad)};
                  },
                  .f32_tol = is_max ? 0 : 1e-5,
                  .distinct = is_max});
  }

  // LeNet's first block: conv + bias, relu, max pool, then a linear layer.
  cs.push_back({.name = "Conv2dReluMaxPoolLinear",
                .inputs = {fl({2, 1, 8, 8}), fl({4, 1, 3, 3}), fl({4}), fl({36, 5}), fl({5})},
                .build = [](const exprs& x) -> exprs {
                  expr h = max_pool2d(relu(conv2d(x[0], x[1], x[2])), {.kernel = {2, 2}});
                  return {linear(reshape(h, shape{2, 36}), x[3], x[4])};
                },
                .ref = [](const nds& x) -> nds {
                  nd c = conv_ref(x[0], x[1], {1, 1}, {0, 0}, {1, 1}, 1);
                  for (int64_t i = 0; i < numel_of(c.dims); ++i)
                    c.v[static_cast<size_t>(i)] =
                        std::max(0.0, c.v[static_cast<size_t>(i)] + x[2].v[static_cast<size_t>(unravel(i, c.dims)[1])]);
                  nd p = pool_ref(c, {2, 2}, {2, 2}, {0, 0}, true, true);
                  p.dims = {2, 36};
                  return {linear_ref(p, x[3], x[4])};
                }});
  // Two such blocks with 16 channels (a multiple of every channel block):
  // on a CPU with AVX2 or AVX-512 the executor keeps the images between the
  // convolutions channel-blocked (conv, relu, 2 x 2 pooling and their
  // gradients on the blocked layout), so f32 against f64 and the
  // gradients check those kernels.
  cs.push_back({.name = "TwoConvBlocksChannelBlocked",
                .inputs = {fl({2, 3, 8, 8}), fl({16, 3, 3, 3}).range(-0.5, 0.5), fl({16}),
                           fl({16, 16, 3, 3}).range(-0.3, 0.3), fl({16}), fl({64, 3}).range(-0.5, 0.5), fl({3})},
                .build = [](const exprs& x) -> exprs {
                  conv2d_options same{.padding = {1, 1}};
                  expr h = max_pool2d(relu(conv2d(x[0], x[1], x[2], same)), {.kernel = {2, 2}});
                  h = max_pool2d(relu(conv2d(h, x[3], x[4], same)), {.kernel = {2, 2}});
                  return {linear(reshape(h, shape{2, 64}), x[5], x[6])};
                },
                .ref = [](const nds& x) -> nds {
                  auto block = [](const nd& in, const nd& w, const nd& b) {
                    nd c = conv_ref(in, w, {1, 1}, {1, 1}, {1, 1}, 1);
                    for (int64_t i = 0; i < numel_of(c.dims); ++i)
                      c.v[static_cast<size_t>(i)] = std::max(
                          0.0, c.v[static_cast<size_t>(i)] + b.v[static_cast<size_t>(unravel(i, c.dims)[1])]);
                    return pool_ref(c, {2, 2}, {2, 2}, {0, 0}, true, true);
                  };
                  nd p = block(block(x[0], x[1], x[2]), x[3], x[4]);
                  p.dims = {2, 64};
                  return {linear_ref(p, x[5], x[6])};
                },
                .fd_eps = 1e-4});
}

// --- recurrent layers ------------------------------------------------------------

/// The LSTM workspace [B, T, 6H] (h | c | i f g o per row) by the textbook
/// recurrence, one element at a time.
nd lstm_ref(const nd& x, const nd& wx, const nd& wh, const nd& b) {
  const int64_t bs = x.dims[0], steps = x.dims[1], in = x.dims[2], h = wh.dims[0];
  nd ws{{bs, steps, 6 * h}, std::vector<double>(static_cast<size_t>(bs * steps * 6 * h))};
  auto at = [&](int64_t bi, int64_t t, int64_t col) -> double& {
    return ws.v[static_cast<size_t>((bi * steps + t) * 6 * h + col)];
  };
  for (int64_t bi = 0; bi < bs; ++bi)
    for (int64_t t = 0; t < steps; ++t) {
      std::vector<double> pre(static_cast<size_t>(4 * h));
      for (int64_t j = 0; j < 4 * h; ++j) {
        double s = b.v[static_cast<size_t>(j)];
        for (int64_t k = 0; k < in; ++k) s += x.at({bi, t, k}) * wx.at({k, j});
        if (t > 0)
          for (int64_t k = 0; k < h; ++k) s += at(bi, t - 1, k) * wh.at({k, j});
        pre[static_cast<size_t>(j)] = s;
      }
      for (int64_t j = 0; j < h; ++j) {
        double i = sigmoid_ref(pre[static_cast<size_t>(j)]), f = sigmoid_ref(pre[static_cast<size_t>(h + j)]);
        double g = std::tanh(pre[static_cast<size_t>(2 * h + j)]), o = sigmoid_ref(pre[static_cast<size_t>(3 * h + j)]);
        double c = i * g + (t > 0 ? f * at(bi, t - 1, h + j) : 0.0);
        at(bi, t, j) = o * std::tanh(c);
        at(bi, t, h + j) = c;
        at(bi, t, 2 * h + j) = i;
        at(bi, t, 3 * h + j) = f;
        at(bi, t, 4 * h + j) = g;
        at(bi, t, 5 * h + j) = o;
      }
    }
  return ws;
}

/// The GRU workspace [B, T, 5H] (h | r z n | hn), PyTorch's formulas.
nd gru_ref(const nd& x, const nd& wx, const nd& wh, const nd& bx, const nd& bh) {
  const int64_t bs = x.dims[0], steps = x.dims[1], in = x.dims[2], h = wh.dims[0];
  nd ws{{bs, steps, 5 * h}, std::vector<double>(static_cast<size_t>(bs * steps * 5 * h))};
  auto at = [&](int64_t bi, int64_t t, int64_t col) -> double& {
    return ws.v[static_cast<size_t>((bi * steps + t) * 5 * h + col)];
  };
  for (int64_t bi = 0; bi < bs; ++bi)
    for (int64_t t = 0; t < steps; ++t) {
      std::vector<double> px(static_cast<size_t>(3 * h)), ph(static_cast<size_t>(3 * h));
      for (int64_t j = 0; j < 3 * h; ++j) {
        double sx = bx.v[static_cast<size_t>(j)], sh = bh.v[static_cast<size_t>(j)];
        for (int64_t k = 0; k < in; ++k) sx += x.at({bi, t, k}) * wx.at({k, j});
        if (t > 0)
          for (int64_t k = 0; k < h; ++k) sh += at(bi, t - 1, k) * wh.at({k, j});
        px[static_cast<size_t>(j)] = sx;
        ph[static_cast<size_t>(j)] = sh;
      }
      for (int64_t j = 0; j < h; ++j) {
        auto u = static_cast<size_t>(j), hu = static_cast<size_t>(h);
        double r = sigmoid_ref(px[u] + ph[u]), z = sigmoid_ref(px[hu + u] + ph[hu + u]);
        double n = std::tanh(px[2 * hu + u] + r * ph[2 * hu + u]);
        double prev = t > 0 ? at(bi, t - 1, j) : 0.0;
        at(bi, t, j) = (1 - z) * n + z * prev;
        at(bi, t, h + j) = r;
        at(bi, t, 2 * h + j) = z;
        at(bi, t, 3 * h + j) = n;
        at(bi, t, 4 * h + j) = ph[2 * hu + u];
      }
    }
  return ws;
}

/// Columns [0, h) of a [B, T, W] array.
nd first_cols(const nd& ws, int64_t h) {
  return make({ws.dims[0], ws.dims[1], h}, [&](const dims_t& i) { return ws.at({i[0], i[1], i[2]}); });
}

void add_rnn_cases(std::vector<op_case>& cs) {
  struct rnn_spec {
    const char* name;
    int64_t b, t, i, h;
  };
  // T = 1 (no recurrence), B = 1, I != H both ways, and a longer sequence.
  const rnn_spec specs[] = {
      {"Basic", 2, 3, 4, 3}, {"OneStep", 3, 1, 2, 4}, {"BatchOne", 1, 5, 3, 2},
      {"WideHidden", 2, 4, 2, 6}, {"Long", 3, 9, 5, 4},
  };
  for (const auto& s : specs) {
    const int64_t h = s.h;
    cs.push_back({.name = std::string("Lstm") + s.name,
                  .inputs = {fl({s.b, s.t, s.i}), fl({s.i, 4 * h}), fl({h, 4 * h}), fl({4 * h})},
                  .build = [](const exprs& x) -> exprs { return {lstm(x[0], x[1], x[2], x[3])}; },
                  .ref = [h](const nds& x) -> nds { return {first_cols(lstm_ref(x[0], x[1], x[2], x[3]), h)}; }});
    cs.push_back({.name = std::string("Gru") + s.name,
                  .inputs = {fl({s.b, s.t, s.i}), fl({s.i, 3 * h}), fl({h, 3 * h}), fl({3 * h}), fl({3 * h})},
                  .build = [](const exprs& x) -> exprs { return {gru(x[0], x[1], x[2], x[3], x[4])}; },
                  .ref = [h](const nds& x) -> nds {
                    return {first_cols(gru_ref(x[0], x[1], x[2], x[3], x[4]), h)};
                  }});
  }
  // The raw ops: their whole workspace is the output, so the gradient check
  // also covers gradients flowing into the cell states and gate activations.
  cs.push_back({.name = "LstmWorkspace",
                .inputs = {fl({2, 4, 3}), fl({3, 8}), fl({2, 8}), fl({8})},
                .build = [](const exprs& x) -> exprs {
                  return {x[0].g().add(op_kind::lstm, {x[0].id(), x[1].id(), x[2].id(), x[3].id()})};
                },
                .ref = [](const nds& x) -> nds { return {lstm_ref(x[0], x[1], x[2], x[3])}; }});
  cs.push_back({.name = "GruWorkspace",
                .inputs = {fl({2, 4, 3}), fl({3, 6}), fl({2, 6}), fl({6}), fl({6})},
                .build = [](const exprs& x) -> exprs {
                  return {x[0].g().add(op_kind::gru, {x[0].id(), x[1].id(), x[2].id(), x[3].id(), x[4].id()})};
                },
                .ref = [](const nds& x) -> nds { return {gru_ref(x[0], x[1], x[2], x[3], x[4])}; }});
  // The classifier's shape: the last step into a linear layer; and two
  // stacked layers (the second reads the first's sequence).
  cs.push_back({.name = "LstmLastStepLinear",
                .inputs = {fl({3, 5, 4}), fl({4, 12}), fl({3, 12}), fl({12}), fl({3, 2}), fl({2})},
                .build = [](const exprs& x) -> exprs {
                  return {linear(models::last_step(lstm(x[0], x[1], x[2], x[3])), x[4], x[5])};
                },
                .ref = [](const nds& x) -> nds {
                  nd ws = lstm_ref(x[0], x[1], x[2], x[3]);
                  nd last = make({3, 3}, [&](const dims_t& i) { return ws.at({i[0], 4, i[1]}); });
                  return {linear_ref(last, x[4], x[5])};
                }});
  cs.push_back({.name = "GruOnLstm",
                .inputs = {fl({2, 4, 3}), fl({3, 8}), fl({2, 8}), fl({8}), fl({2, 9}), fl({3, 9}), fl({9}), fl({9})},
                .build = [](const exprs& x) -> exprs {
                  return {gru(lstm(x[0], x[1], x[2], x[3]), x[4], x[5], x[6], x[7])};
                },
                .ref = [](const nds& x) -> nds {
                  nd h1 = first_cols(lstm_ref(x[0], x[1], x[2], x[3]), 2);
                  return {first_cols(gru_ref(h1, x[4], x[5], x[6], x[7]), 3)};
                }});
  cs.push_back({.name = "LstmLarge",
                .inputs = {fl({4, 12, 16}), fl({16, 64}).range(-0.3, 0.3), fl({16, 64}).range(-0.3, 0.3),
                           fl({64})},
                .build = [](const exprs& x) -> exprs { return {lstm(x[0], x[1], x[2], x[3])}; },
                .ref = [](const nds& x) -> nds { return {first_cols(lstm_ref(x[0], x[1], x[2], x[3]), 16)}; },
                .fd_eps = 1e-4});
  cs.push_back({.name = "GruLarge",
                .inputs = {fl({4, 12, 16}), fl({16, 48}).range(-0.3, 0.3), fl({16, 48}).range(-0.3, 0.3),
                           fl({48}), fl({48})},
                .build = [](const exprs& x) -> exprs { return {gru(x[0], x[1], x[2], x[3], x[4])}; },
                .ref = [](const nds& x) -> nds {
                  return {first_cols(gru_ref(x[0], x[1], x[2], x[3], x[4]), 16)};
                },
                .fd_eps = 1e-4});
}

// --- batch normalization (training mode: the batch's statistics) ------------

/// Per channel (dim 1) of x [N, C, ...]: (x - mean) / sqrt(var + eps) * gamma + beta,
/// mean and biased variance over every other dim.
nd batch_norm_ref(const nd& x, const nd& gamma, const nd& beta, double eps) {
  const int64_t c = x.dims[1];
  std::vector<double> sum(static_cast<size_t>(c), 0), sq(static_cast<size_t>(c), 0);
  const double m = static_cast<double>(numel_of(x.dims) / c);
  for (int64_t i = 0; i < numel_of(x.dims); ++i) sum[static_cast<size_t>(unravel(i, x.dims)[1])] += x.v[static_cast<size_t>(i)];
  for (auto& v : sum) v /= m;
  for (int64_t i = 0; i < numel_of(x.dims); ++i) {
    auto ch = static_cast<size_t>(unravel(i, x.dims)[1]);
    double d = x.v[static_cast<size_t>(i)] - sum[ch];
    sq[ch] += d * d;
  }
  return make(x.dims, [&](const dims_t& i) {
    auto ch = static_cast<size_t>(i[1]);
    return (x.at(i) - sum[ch]) / std::sqrt(sq[ch] / m + eps) * gamma.v[ch] + beta.v[ch];
  });
}

/// batch_norm with fresh running statistics (non-trainable variables).
expr bn_with_stats(expr x, expr gamma, expr beta, const batch_norm_options& o) {
  graph& g = x.g();
  const int64_t c = x.shape()[1];
  return batch_norm(x, gamma, beta, g.variable("running_mean", {c}, init::zeros(), x.type(), false),
                    g.variable("running_var", {c}, init::constant(1), x.type(), false), o);
}

// (Not two rows: two values per channel normalize to -1 and 1 whatever x
// is, so the gradient w.r.t. x is rounding noise around 0.)
void add_norm_cases(std::vector<op_case>& cs) {
  struct bn_spec {
    const char* name;
    dims_t x;
    double eps;
  };
  const bn_spec specs[] = {
      {"BatchNormNC", {6, 3}, 1e-5},          {"BatchNormNCThreeRows", {3, 4}, 1e-5},
      {"BatchNormNCHW", {2, 3, 3, 4}, 1e-5},  {"BatchNormNCHWLargeEps", {3, 2, 2, 3}, 0.5},
      {"BatchNormNCHWOneImage", {1, 2, 4, 4}, 1e-3},
  };
  for (const auto& s : specs) {
    const int64_t c = s.x[1];
    const double eps = s.eps;
    cs.push_back({.name = s.name,
                  .inputs = {fl(s.x), fl({c}).range(0.5, 2), fl({c})},
                  .build = [eps](const exprs& x) -> exprs { return {bn_with_stats(x[0], x[1], x[2], {.eps = eps})}; },
                  .ref = [eps](const nds& x) -> nds { return {batch_norm_ref(x[0], x[1], x[2], eps)}; }});
  }
  // A ResNet's convolution + batch norm; the batch statistics of x shifted
  // far from zero (the normalization must not lose precision to the mean).
  cs.push_back({.name = "Conv2dBatchNorm",
                .inputs = {fl({2, 2, 5, 5}), fl({3, 2, 3, 3}), fl({3}).range(0.5, 2), fl({3})},
                .build = [](const exprs& x) -> exprs {
                  return {bn_with_stats(conv2d(x[0], x[1], {.padding = {1, 1}}), x[2], x[3], {})};
                },
                .ref = [](const nds& x) -> nds {
                  return {batch_norm_ref(conv_ref(x[0], x[1], {1, 1}, {1, 1}, {1, 1}, 1), x[2], x[3], 1e-5)};
                }});
  cs.push_back({.name = "BatchNormShiftedInput",
                .inputs = {fl({4, 3, 2, 2}).range(20, 22), fl({3}), fl({3})},
                .build = [](const exprs& x) -> exprs { return {bn_with_stats(x[0], x[1], x[2], {})}; },
                .ref = [](const nds& x) -> nds { return {batch_norm_ref(x[0], x[1], x[2], 1e-5)}; },
                .f32_tol = 1e-4});
}

// --- layer norm, embedding bags, attention: references by plain loops -------

nd layer_norm_ref(const nd& x, const nd& g, const nd& b, double eps) {
  int64_t d = x.dims.back(), rows = numel_of(x.dims) / d;
  nd y = x;
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < d; ++j) m += x.v[static_cast<size_t>(r * d + j)];
    m /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) v += std::pow(x.v[static_cast<size_t>(r * d + j)] - m, 2);
    v /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) {
      auto k = static_cast<size_t>(r * d + j);
      y.v[k] = (x.v[k] - m) / std::sqrt(v + eps) * g.v[static_cast<size_t>(j)] + b.v[static_cast<size_t>(j)];
    }
  }
  return y;
}

nd embedding_bag_ref(const nd& table, const nd& ids, bool mean, std::optional<int64_t> pad) {
  int64_t bags = ids.dims[0], l = ids.dims[1], d = table.dims[1];
  return make({bags, d}, [&](const dims_t& i) {
    double s = 0;
    int n = 0;
    for (int64_t j = 0; j < l; ++j) {
      auto id = static_cast<int64_t>(ids.at({i[0], j}));
      if (pad && id == *pad) continue;
      s += table.at({id, i[1]});
      ++n;
    }
    return mean && n > 0 ? s / n : s;
  });
}

/// softmax(q k^T scale + mask) with masked (u8 0 / causal) keys left out; a
/// row with no key left is zero. mask_kind: 0 none, 1 boolean, 2 additive.
nd attention_probs_ref(const nd& q, const nd& k, const nd* mask, int mask_kind, bool causal, double scale) {
  int64_t b = q.dims[0], h = q.dims[1], tq = q.dims[2], d = q.dims[3], tk = k.dims[2];
  nd p{{b, h, tq, tk}, {}};
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t hi = 0; hi < h; ++hi)
      for (int64_t i = 0; i < tq; ++i) {
        std::vector<double> s(static_cast<size_t>(tk));
        std::vector<bool> keep(static_cast<size_t>(tk), true);
        for (int64_t j = 0; j < tk; ++j) {
          double acc = 0;
          for (int64_t e = 0; e < d; ++e) acc += q.at({bi, hi, i, e}) * k.at({bi, hi, j, e});
          s[static_cast<size_t>(j)] = acc * scale;
          if (causal && j > i) keep[static_cast<size_t>(j)] = false;
          if (mask_kind > 0) {
            double mv = at_broadcast(*mask, {bi, hi, i, j});
            if (mask_kind == 1 && mv == 0) keep[static_cast<size_t>(j)] = false;
            if (mask_kind == 2) s[static_cast<size_t>(j)] += mv;
          }
        }
        double m = -std::numeric_limits<double>::infinity(), sum = 0;
        for (int64_t j = 0; j < tk; ++j)
          if (keep[static_cast<size_t>(j)]) m = std::max(m, s[static_cast<size_t>(j)]);
        for (int64_t j = 0; j < tk; ++j)
          if (keep[static_cast<size_t>(j)] && std::isfinite(m)) sum += std::exp(s[static_cast<size_t>(j)] - m);
        for (int64_t j = 0; j < tk; ++j)
          p.v.push_back(keep[static_cast<size_t>(j)] && sum > 0 ? std::exp(s[static_cast<size_t>(j)] - m) / sum : 0.0);
      }
  return p;
}

/// p [b, h, tq, tk] times v [b, h, tk, dv].
nd attend_ref(const nd& p, const nd& v) {
  int64_t tk = p.dims[3];
  return make({p.dims[0], p.dims[1], p.dims[2], v.dims[3]}, [&](const dims_t& i) {
    double acc = 0;
    for (int64_t j = 0; j < tk; ++j) acc += p.at({i[0], i[1], i[2], j}) * v.at({i[0], i[1], j, i[3]});
    return acc;
  });
}

void add_norm_attention_cases(std::vector<op_case>& cs) {
  struct ln_spec {
    const char* name;
    dims_t x;
    double eps;
  };
  for (const auto& s : {ln_spec{"LayerNormRank3", {2, 3, 5}, 1e-5}, ln_spec{"LayerNormRank2LargeEps", {4, 8}, 0.5},
                        ln_spec{"LayerNormOneRow", {1, 7}, 1e-5}, ln_spec{"LayerNormVector", {6}, 1e-5}}) {
    double eps = s.eps;
    int64_t d = s.x.back();
    cs.push_back({.name = s.name,
                  .inputs = {fl(s.x), fl({d}).range(0.5, 1.5), fl({d})},
                  .build = [eps](const exprs& x) -> exprs { return {layer_norm(x[0], x[1], x[2], eps)}; },
                  .ref = [eps](const nds& x) -> nds { return {layer_norm_ref(x[0], x[1], x[2], eps)}; }});
  }
  // Rows with a large common offset: the variance must not cancel.
  cs.push_back({.name = "LayerNormLargeMean",
                .inputs = {fl({3, 16}).range(99, 101), fl({16}), fl({16})},
                .build = [](const exprs& x) -> exprs { return {layer_norm(x[0], x[1], x[2])}; },
                .ref = [](const nds& x) -> nds { return {layer_norm_ref(x[0], x[1], x[2], 1e-5)}; },
                .f32_tol = 1e-4,
                .fd_eps = 1e-5});
  cs.push_back({.name = "LayerNormLarge",
                .inputs = {fl({64, 96}), fl({96}), fl({96})},
                .build = [](const exprs& x) -> exprs { return {layer_norm(x[0], x[1], x[2])}; },
                .ref = [](const nds& x) -> nds { return {layer_norm_ref(x[0], x[1], x[2], 1e-5)}; },
                .fd_eps = 1e-4});

  // Embedding bags: -1 is padding (skipped, not counted); bag 2 is all padding.
  const std::vector<double> bag_ids = {1, 5, -1, 1, 0, 0, 3, 2, -1, -1, -1, -1};
  for (bool mean : {false, true}) {
    cs.push_back({.name = mean ? "EmbeddingBagMeanPadding" : "EmbeddingBagSumPadding",
                  .inputs = {fl({6, 3}), ints({3, 4}, bag_ids)},
                  .build = [mean](const exprs& x) -> exprs {
                    return {embedding_bag(x[0], x[1], {.mean = mean, .padding_id = -1})};
                  },
                  .ref = [mean](const nds& x) -> nds { return {embedding_bag_ref(x[0], x[1], mean, -1)}; }});
  }
  // PyTorch-style padding row 0 (never read), i32 ids, repeated ids.
  cs.push_back({.name = "EmbeddingBagMeanPaddingRow0I32",
                .inputs = {fl({5, 4}), ints({2, 3}, {0, 4, 4, 2, 0, 3}, dtype::i32)},
                .build = [](const exprs& x) -> exprs {
                  return {embedding_bag(x[0], x[1], {.mean = true, .padding_id = 0})};
                },
                .ref = [](const nds& x) -> nds { return {embedding_bag_ref(x[0], x[1], true, 0)}; }});
  cs.push_back({.name = "EmbeddingBagSumNoPadding",
                .inputs = {fl({4, 2}), ints({2, 2}, {3, 3, 0, 1})},
                .build = [](const exprs& x) -> exprs { return {embedding_bag(x[0], x[1])}; },
                .ref = [](const nds& x) -> nds { return {embedding_bag_ref(x[0], x[1], false, std::nullopt)}; }});

  // Attention probabilities and attention.
  struct attn_spec {
    const char* name;
    dims_t q, k;
    bool causal;
    double scale; // 0: 1 / sqrt(d)
  };
  for (const auto& s : {attn_spec{"AttentionProbs", {2, 2, 3, 4}, {2, 2, 5, 4}, false, 0},
                        attn_spec{"AttentionProbsCausal", {1, 2, 4, 3}, {1, 2, 4, 3}, true, 0},
                        attn_spec{"AttentionProbsCausalMoreKeys", {1, 1, 3, 2}, {1, 1, 5, 2}, true, 0.7}}) {
    double scale = s.scale ? s.scale : 1 / std::sqrt(static_cast<double>(s.q[3]));
    bool causal = s.causal;
    double given = s.scale;
    cs.push_back({.name = s.name,
                  .inputs = {fl(s.q), fl(s.k)},
                  .build = [causal, given](const exprs& x) -> exprs {
                    return {attention_probs(x[0], x[1], {.causal = causal, .scale = given})};
                  },
                  .ref = [causal, scale](const nds& x) -> nds {
                    return {attention_probs_ref(x[0], x[1], nullptr, 0, causal, scale)};
                  }});
  }
  // Key padding mask [B, 1, 1, Tk]: batch 1 keeps only its first two keys.
  cs.push_back({.name = "AttentionProbsBoolKeyMask",
                .inputs = {fl({2, 2, 3, 4}), fl({2, 2, 5, 4}), mask({2, 1, 1, 5}, {1, 1, 1, 1, 1, 1, 1, 0, 0, 0})},
                .build = [](const exprs& x) -> exprs { return {attention_probs(x[0], x[1], {.mask = x[2]})}; },
                .ref = [](const nds& x) -> nds { return {attention_probs_ref(x[0], x[1], &x[2], 1, false, 0.5)}; }});
  // A [Tq, Tk] boolean mask with a fully masked query row (its output is 0), and causal on top.
  cs.push_back({.name = "AttentionProbsBoolMaskEmptyRowCausal",
                .inputs = {fl({1, 2, 3, 2}), fl({1, 2, 3, 2}), mask({3, 3}, {0, 0, 0, 1, 1, 0, 0, 1, 1})},
                .build = [](const exprs& x) -> exprs {
                  return {attention_probs(x[0], x[1], {.mask = x[2], .causal = true})};
                },
                .ref = [](const nds& x) -> nds {
                  return {attention_probs_ref(x[0], x[1], &x[2], 1, true, 1 / std::sqrt(2.0))};
                }});
  // Additive float mask [Tq, Tk] (differentiable: a learned bias), per-head [h, 1, Tk] too.
  cs.push_back({.name = "AttentionProbsAdditiveMask",
                .inputs = {fl({2, 2, 3, 4}), fl({2, 2, 4, 4}), fl({3, 4})},
                .build = [](const exprs& x) -> exprs { return {attention_probs(x[0], x[1], {.mask = x[2]})}; },
                .ref = [](const nds& x) -> nds { return {attention_probs_ref(x[0], x[1], &x[2], 2, false, 0.5)}; }});
  cs.push_back({.name = "AttentionProbsAdditiveMaskPerHead",
                .inputs = {fl({2, 2, 3, 4}), fl({2, 2, 4, 4}), fl({2, 1, 4})},
                .build = [](const exprs& x) -> exprs { return {attention_probs(x[0], x[1], {.mask = x[2]})}; },
                .ref = [](const nds& x) -> nds { return {attention_probs_ref(x[0], x[1], &x[2], 2, false, 0.5)}; }});
  cs.push_back({.name = "Attention",
                .inputs = {fl({2, 2, 3, 4}), fl({2, 2, 5, 4}), fl({2, 2, 5, 3})},
                .build = [](const exprs& x) -> exprs { return {attention(x[0], x[1], x[2])}; },
                .ref = [](const nds& x) -> nds {
                  return {attend_ref(attention_probs_ref(x[0], x[1], nullptr, 0, false, 0.5), x[2])};
                }});
  cs.push_back({.name = "AttentionCausalKeyMask",
                .inputs = {fl({2, 1, 4, 2}), fl({2, 1, 4, 2}), fl({2, 1, 4, 3}), mask({2, 1, 1, 4}, {1, 1, 1, 1, 1, 1, 1, 0})},
                .build = [](const exprs& x) -> exprs {
                  return {attention(x[0], x[1], x[2], {.mask = x[3], .causal = true})};
                },
                .ref = [](const nds& x) -> nds {
                  return {attend_ref(attention_probs_ref(x[0], x[1], &x[3], 1, true, 1 / std::sqrt(2.0)), x[2])};
                }});
  cs.push_back({.name = "AttentionLarge",
                .inputs = {fl({2, 4, 28, 16}), fl({2, 4, 28, 16}), fl({2, 4, 28, 16})},
                .build = [](const exprs& x) -> exprs { return {attention(x[0], x[1], x[2])}; },
                .ref = [](const nds& x) -> nds {
                  return {attend_ref(attention_probs_ref(x[0], x[1], nullptr, 0, false, 0.25), x[2])};
                },
                .fd_eps = 1e-4});
}

const std::vector<op_case>& all_cases() {
  static const std::vector<op_case> cases = [] {
    std::vector<op_case> cs;
    add_binary_cases(cs);
    add_unary_cases(cs);
    add_matmul_cases(cs);
    add_reduce_cases(cs);
    add_shape_cases(cs);
    add_embedding_and_loss_cases(cs);
    add_conv_pool_cases(cs);
    add_rnn_cases(cs);
    add_norm_cases(cs);
    add_norm_attention_cases(cs);
    add_stability_cases(cs);
    add_integer_cases(cs);
    add_large_cases(cs);
    return cs;
  }();
  return cases;
}

std::vector<op_case> differentiable_cases() {
  std::vector<op_case> out;
  for (const auto& c : all_cases())
    if (c.differentiable) out.push_back(c);
  return out;
}


// --- running a case ---------------------------------------------------------


double to_f32(double v) { return static_cast<double>(static_cast<float>(v)); }

/// Draws the inputs of a case. Float values are rounded to f32 so that the
/// f32 and f64 runs and the reference all see the same numbers.
nds draw_inputs(const op_case& c) {
  rng r(c.name);
  nds out;
  std::vector<double> seen;
  for (const auto& s : c.inputs) {
    nd x{s.dims, {}};
    if (!s.fixed.empty()) {
      x.v = s.fixed;
    } else {
      for (int64_t i = 0; i < numel_of(s.dims); ++i) {
        double v = 0;
        for (int tries = 0;; ++tries) {
          v = to_f32(r.uniform(s.lo, s.hi));
          if (s.integral) v = std::round(v);
          bool ok = true;
          for (double k : s.kinks) ok = ok && std::fabs(v - k) >= 0.05;
          if (c.distinct)
            for (double w : seen) ok = ok && std::fabs(v - w) >= 1e-3;
          if (ok || tries > 1000) break;
        }
        x.v.push_back(v);
        if (s.differentiable()) seen.push_back(v);
      }
    }
    out.push_back(std::move(x));
  }
  if (c.adjust) {
    c.adjust(out);
    for (size_t k = 0; k < out.size(); ++k)
      if (c.inputs[k].differentiable() || c.inputs[k].exact == dtype::f32)
        for (double& v : out[k].v) v = to_f32(v);
  }
  return out;
}

tensor to_tensor(const nd& x, dtype t) {
  shape s(x.dims);
  switch (t) {
    case dtype::f32: return tensor::from<float>(s, std::vector<float>(x.v.begin(), x.v.end()));
    case dtype::f64: return tensor::from<double>(s, x.v);
    case dtype::i32: return tensor::from<int32_t>(s, std::vector<int32_t>(x.v.begin(), x.v.end()));
    case dtype::i64: return tensor::from<int64_t>(s, std::vector<int64_t>(x.v.begin(), x.v.end()));
    case dtype::u8: return tensor::from<uint8_t>(s, std::vector<uint8_t>(x.v.begin(), x.v.end()));
    default: throw luoshu_error("no test tensors of this dtype");
  }
}

/// Placeholders for a case's inputs (float ones in `ft`) and their feeds.
exprs make_placeholders(graph& g, const op_case& c, dtype ft, const nds& vals, feed_map& feeds) {
  exprs ins;
  for (size_t k = 0; k < c.inputs.size(); ++k) {
    dtype t = c.inputs[k].exact.value_or(ft);
    ins.push_back(g.placeholder("in" + std::to_string(k), t, shape(c.inputs[k].dims)));
    feeds.emplace_back(ins.back(), to_tensor(vals[k], t));
  }
  return ins;
}

double norm2(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s);
}

/// ||got - want|| / ||want|| <= tol (absolute when want is all zeros).
testing::AssertionResult close_by_norm(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  if (got.size() != want.size())
    return testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  std::vector<double> diff(got.size());
  for (size_t i = 0; i < got.size(); ++i) diff[i] = got[i] - want[i];
  double den = norm2(want), err = den > 0 ? norm2(diff) / den : norm2(diff);
  if (err <= tol) return testing::AssertionSuccess();
  auto f = testing::AssertionFailure();
  f << "relative error " << err << " > " << tol << "; first mismatches (index: got vs want):";
  int shown = 0;
  for (size_t i = 0; i < got.size() && shown < 6; ++i)
    if (!(std::fabs(diff[i]) <= tol * std::max(1.0, std::fabs(want[i])))) {
      f << " [" << i << "] " << got[i] << " vs " << want[i] << ";";
      ++shown;
    }
  return f;
}

std::string dims_str(const dims_t& d) { return shape(d).to_string(); }


/// loss = sum_k sum(outs[k] * R_k), R_k fixed random (not symmetric).
expr weighted_loss(graph& g, const exprs& outs, const std::string& seed) {
  rng r(seed + "/R");
  expr loss;
  for (const expr& y : outs) {
    std::vector<double> w(static_cast<size_t>(y.shape().numel()));
    for (double& e : w) e = r.uniform(-1, 1);
    tensor wt = tensor::from<double>(y.shape(), w);
    if (y.type() != dtype::f64) wt = wt.cast(y.type()); // f32 runs weigh by the same values, rounded
    expr term = sum(y * g.constant(wt));
    loss = loss.valid() ? loss + term : term;
  }
  return loss;
}


const std::vector<bad_run>& bad_runs() {
  static const std::vector<bad_run> cases = {
      {"GatherAxis0", [](graph&, expr x, expr i) { return gather(x, i, 0); }, {5, 3}, {3}, {1, 7, 0}, {1, 4, 0},
       {"7", "'gather'"}},
      {"GatherAxis1Negative", [](graph&, expr x, expr i) { return gather(x, i, 1); }, {3, 5}, {2}, {-1, 2}, {4, 2},
       {"-1", "'gather'"}},
      {"Embedding", [](graph&, expr t, expr i) { return embedding(t, i); }, {6, 3}, {2, 2}, {0, 6, 1, 2}, {0, 5, 1, 2},
       {"6", "'embedding'"}},
      {"SoftmaxCrossEntropyLabel", [](graph&, expr z, expr y) { return softmax_cross_entropy(z, y); }, {4, 5}, {4},
       {0, 5, 1, 2}, {0, 4, 1, 2}, {"label 5", "'softmax_cross_entropy'"}},
      {"OneHot", [](graph&, expr, expr i) { return one_hot(i, 4); }, {1}, {3}, {0, 4, 1}, {0, 3, 1},
       {"4", "'one_hot'"}},
      {"EmbeddingBag", [](graph&, expr t, expr i) { return embedding_bag(t, i, {.padding_id = -1}); }, {6, 3}, {2, 2},
       {0, -1, 7, 2}, {0, -1, 5, 2}, {"7", "'embedding_bag'"}},
      {"EmbeddingBagNegativeIdWithoutPadding", [](graph&, expr t, expr i) { return embedding_bag(t, i); }, {6, 3},
       {2, 2}, {0, -1, 3, 2}, {0, 1, 5, 2}, {"-1", "'embedding_bag'"}},
  };
  return cases;
}


} // namespace luoshu::op_cases
