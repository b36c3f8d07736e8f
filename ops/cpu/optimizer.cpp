// CPU kernels: dense and sparse optimizer updates (in place).

#include <algorithm>
#include <numeric>

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/update_ops.hpp"

namespace luoshu::cpu {

namespace {

/// Groups the positions of equal indices: order[starts[u] .. starts[u+1])
/// are the positions holding the u-th distinct row. Checks the range.
struct row_groups {
  std::vector<int64_t> order, starts;
};
row_groups group_rows(const kernel_call& c, const tensor& idx, int64_t rows) {
  int64_t k = idx.numel();
  // (row, position) pairs are distinct, so an unstable sort keeps equal
  // rows in position order, as a stable sort would.
  std::vector<std::pair<int64_t, int64_t>> keyed(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    int64_t v = index_at(idx, i);
    if (v < 0 || (rows >= 0 && v >= rows))
      throw luoshu_error("sparse gradient of '" + c.n.name + "': row " + std::to_string(v) + " is out of range [0, " +
                         std::to_string(rows) + ")");
    keyed[static_cast<size_t>(i)] = {v, i};
  }
  std::sort(keyed.begin(), keyed.end());
  row_groups g;
  g.order.resize(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    g.order[static_cast<size_t>(i)] = keyed[static_cast<size_t>(i)].second;
    if (i == 0 || keyed[static_cast<size_t>(i)].first != keyed[static_cast<size_t>(i - 1)].first) g.starts.push_back(i);
  }
  g.starts.push_back(k);
  return g;
}

/// Sums the rows of group u of `vals` into `sum` (width elements).
template <class T>
void sum_group(const row_groups& g, int64_t u, const T* vals, int64_t width, T* sum) {
  auto s = static_cast<size_t>(g.starts[static_cast<size_t>(u)]);
  auto f = static_cast<size_t>(g.starts[static_cast<size_t>(u + 1)]);
  std::copy(vals + g.order[s] * width, vals + (g.order[s] + 1) * width, sum);
  for (size_t j = s + 1; j < f; ++j) {
    const T* src = vals + g.order[j] * width;
    for (int64_t x = 0; x < width; ++x) sum[x] += src[x];
  }
}

void k_sparse_square_sum(const kernel_call& c) {
  const tensor &idx = c.in[0], &vals = c.in[1];
  int64_t k = idx.numel(), width = k ? vals.numel() / k : 0;
  row_groups g = group_rows(c, idx, -1);
  dispatch_float(c, vals.type(), [&](auto z) {
    using T = decltype(z);
    std::vector<T> sum(static_cast<size_t>(width));
    double total = 0;
    for (int64_t u = 0; u + 1 < static_cast<int64_t>(g.starts.size()); ++u) {
      sum_group(g, u, vals.data<T>(), width, sum.data());
      for (T v : sum) total += static_cast<double>(v) * static_cast<double>(v);
    }
    c.out.data<T>()[0] = static_cast<T>(total);
  });
}

void k_update(const kernel_call& c) {
  const ops::update_layout l = ops::update_layout_of(c.n.op);
  const tensor& var = c.in[0];
  const size_t first_slot = l.first_slot(), lr_at = l.lr_at();
  ops::update_hyper h = ops::update_hyper_of(c.n.attrs, l);
  h.lr = c.in[lr_at].item();
  if (l.rule == ops::update_rule::adam) {
    int64_t* t = c.in[lr_at + 1].data<int64_t>();
    h.step = ++*t;
  }
  dispatch_float(c, var.type(), [&](auto z) {
    using T = decltype(z);
    T* w = var.data<T>();
    T* s0 = l.slots > 0 ? c.in[first_slot].data<T>() : nullptr;
    T* s1 = l.slots > 1 ? c.in[first_slot + 1].data<T>() : nullptr;
    if (!l.sparse) {
      const T* g = c.in[1].data<T>();
      parallel_for(var.numel(), 8, [&](int64_t b, int64_t e) {
        ops::apply_update<T>(l.rule, h, w + b, g + b, s0 ? s0 + b : nullptr, s1 ? s1 + b : nullptr, e - b);
      });
      return;
    }
    // Sparse: sum the values of repeated rows first, then update each
    // touched row once; untouched rows and their slots stay as they are.
    const tensor &idx = c.in[1], &vals = c.in[2];
    int64_t rows = var.dim(0), width = rows ? var.numel() / rows : 0;
    row_groups g = group_rows(c, idx, rows);
    const T* gv = vals.data<T>();
    int64_t uniq = static_cast<int64_t>(g.starts.size()) - 1;
    parallel_for(uniq, width * 4, [&](int64_t b, int64_t e) {
      std::vector<T> sum(static_cast<size_t>(width));
      auto row_of = [&](int64_t u) { return index_at(idx, g.order[static_cast<size_t>(g.starts[static_cast<size_t>(u)])]); };
      constexpr int64_t ahead = 8; // rows are scattered over a large table: fetch the coming ones early
      for (int64_t u = b; u < e; ++u) {
        if (u + ahead < e) {
          int64_t next = row_of(u + ahead) * width;
          __builtin_prefetch(w + next, 1);
          if (s0) __builtin_prefetch(s0 + next, 1);
          if (s1) __builtin_prefetch(s1 + next, 1);
        }
        sum_group(g, u, gv, width, sum.data());
        int64_t off = row_of(u) * width;
        ops::apply_update<T>(l.rule, h, w + off, sum.data(), s0 ? s0 + off : nullptr, s1 ? s1 + off : nullptr, width);
      }
    });
  });
}

} // namespace

void register_optimizer(kernel_registry& r) {
  for (auto k : {op_kind::sgd_update, op_kind::momentum_update, op_kind::adagrad_update,
                 op_kind::adam_update, op_kind::sparse_sgd_update, op_kind::sparse_momentum_update,
                 op_kind::sparse_adagrad_update, op_kind::sparse_adam_update})
    r.add(k, device::kind_t::cpu, k_update);
  r.add(op_kind::sparse_square_sum, device::kind_t::cpu, k_sparse_square_sum);
}

} // namespace luoshu::cpu
