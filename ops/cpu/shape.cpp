// CPU kernels: shape and data-movement ops.

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/infer_util.hpp"
#include "ops/shape_util.hpp"

namespace luoshu::cpu {

namespace {

/// Copies the box `extent` at `soff` of src (shape ss) to `doff` of dst (shape
/// ds), element size `es`. Rows of the last dim move with memcpy.
void copy_box(const char* src, const shape& ss, const std::vector<int64_t>& soff, char* dst,
              const shape& ds, const std::vector<int64_t>& doff, const std::vector<int64_t>& extent,
              size_t es) {
  int r = ss.rank();
  if (r == 0) {
    std::memcpy(dst, src, es);
    return;
  }
  for (auto e : extent)
    if (e == 0) return;
  std::vector<int64_t> sst(static_cast<size_t>(r)), dst_st(static_cast<size_t>(r));
  int64_t a = 1, b = 1;
  for (int i = r - 1; i >= 0; --i) {
    sst[static_cast<size_t>(i)] = a;
    dst_st[static_cast<size_t>(i)] = b;
    a *= ss[i];
    b *= ds[i];
  }
  int64_t rows = 1;
  for (int i = 0; i + 1 < r; ++i) rows *= extent[static_cast<size_t>(i)];
  int64_t run = extent[static_cast<size_t>(r - 1)];
  parallel_for(rows, run, [&](int64_t b0, int64_t e0) {
    std::vector<int64_t> idx(static_cast<size_t>(r), 0);
    for (int64_t row = b0; row < e0; ++row) {
      int64_t rem = row;
      for (int d = r - 2; d >= 0; --d) {
        idx[static_cast<size_t>(d)] = rem % extent[static_cast<size_t>(d)];
        rem /= extent[static_cast<size_t>(d)];
      }
      int64_t so = soff[static_cast<size_t>(r - 1)], dof = doff[static_cast<size_t>(r - 1)];
      for (int d = 0; d + 1 < r; ++d) {
        so += (idx[static_cast<size_t>(d)] + soff[static_cast<size_t>(d)]) * sst[static_cast<size_t>(d)];
        dof += (idx[static_cast<size_t>(d)] + doff[static_cast<size_t>(d)]) * dst_st[static_cast<size_t>(d)];
      }
      std::memcpy(dst + static_cast<size_t>(dof) * es, src + static_cast<size_t>(so) * es,
                  static_cast<size_t>(run) * es);
    }
  });
}

char* bytes(const tensor& t) { return static_cast<char*>(t.raw()); }

void k_alias(const kernel_call& c) {
  if (c.out.raw() != c.in[0].raw()) std::memcpy(c.out.raw(), c.in[0].raw(), c.out.nbytes());
}

void k_transpose(const kernel_call& c) {
  const tensor& x = c.in[0];
  int r = x.rank();
  std::vector<int64_t> perm;
  for (auto p : c.n.attrs.axes) perm.push_back(normalize_axis(p, r, "transpose"));
  std::vector<int64_t> ist(static_cast<size_t>(r));
  int64_t s = 1;
  for (int i = r - 1; i >= 0; --i) {
    ist[static_cast<size_t>(i)] = s;
    s *= x.dim(i);
  }
  // Output dim d walks input dim perm[d].
  std::vector<int64_t> pst(static_cast<size_t>(r));
  for (int d = 0; d < r; ++d) pst[static_cast<size_t>(d)] = ist[static_cast<size_t>(perm[static_cast<size_t>(d)])];
  size_t es = size_of(x.type());
  const char* in = bytes(x);
  char* out = bytes(c.out);
  int64_t n = c.out.numel();
  if (r == 0 || n == 0) {
    if (n) std::memcpy(out, in, es);
    return;
  }
  int64_t inner = c.out.dim(r - 1), rows = n / inner, istep = pst[static_cast<size_t>(r - 1)];
  parallel_for(rows, inner, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      int64_t rem = row, off = 0;
      for (int d = r - 2; d >= 0; --d) {
        off += (rem % c.out.dim(d)) * pst[static_cast<size_t>(d)];
        rem /= c.out.dim(d);
      }
      char* o = out + static_cast<size_t>(row * inner) * es;
      if (es == 4) {
        auto* o4 = reinterpret_cast<uint32_t*>(o);
        auto* i4 = reinterpret_cast<const uint32_t*>(in);
        for (int64_t j = 0; j < inner; ++j) o4[j] = i4[off + j * istep];
      } else {
        for (int64_t j = 0; j < inner; ++j)
          std::memcpy(o + static_cast<size_t>(j) * es, in + static_cast<size_t>(off + j * istep) * es, es);
      }
    }
  });
}

void k_concat(const kernel_call& c) {
  int r = c.out.rank();
  int axis = normalize_axis(c.n.attrs.axis, r, "concat");
  std::vector<int64_t> zero(static_cast<size_t>(r), 0), doff(static_cast<size_t>(r), 0);
  size_t es = size_of(c.out.type());
  for (const tensor& x : c.in) {
    copy_box(bytes(x), x.shape(), zero, bytes(c.out), c.out.shape(), doff, x.shape().dims(), es);
    doff[static_cast<size_t>(axis)] += x.dim(axis);
  }
}

void k_slice(const kernel_call& c) {
  const tensor& x = c.in[0];
  auto sb = ops::resolve_slice(x.shape(), c.n.attrs.axes, c.n.attrs.axes2);
  std::vector<int64_t> zero(static_cast<size_t>(x.rank()), 0);
  copy_box(bytes(x), x.shape(), sb.begin, bytes(c.out), c.out.shape(), zero, sb.size, size_of(x.type()));
}

void k_slice_grad(const kernel_call& c) {
  const tensor& dy = c.in[0];
  auto sb = ops::resolve_slice(c.out.shape(), c.n.attrs.axes, c.n.attrs.axes2);
  std::memset(c.out.raw(), 0, c.out.nbytes());
  std::vector<int64_t> zero(static_cast<size_t>(dy.rank()), 0);
  copy_box(bytes(dy), dy.shape(), zero, bytes(c.out), c.out.shape(), sb.begin, sb.size, size_of(dy.type()));
}

void k_pad(const kernel_call& c) {
  const tensor& x = c.in[0];
  c.out.fill(c.n.attrs.alpha);
  std::vector<int64_t> zero(static_cast<size_t>(x.rank()), 0);
  copy_box(bytes(x), x.shape(), zero, bytes(c.out), c.out.shape(), c.n.attrs.axes, x.shape().dims(),
           size_of(x.type()));
}

void k_broadcast(const kernel_call& c) {
  const tensor& x = c.in[0];
  shape from = x.shape();
  if (c.n.op == op_kind::broadcast_like && !c.n.attrs.axes.empty()) {
    // x lacks the listed axes of the output: put them back as 1s.
    auto axes = ops::reduce_axes(c.n.attrs.axes, c.out.rank());
    from = ops::reduced_shape(c.out.shape(), axes, true);
    if (from.numel() != x.numel())
      throw luoshu_error("broadcast_like in node '" + c.n.name + "': input " + x.shape().to_string() +
                         " does not fit " + from.to_string());
  }
  auto plan = make_plan<1>(c.out.shape(), {&from});
  double scale = c.n.attrs.flag && x.numel() ? static_cast<double>(x.numel()) / static_cast<double>(c.out.numel()) : 1;
  dispatch_all(c, x.type(), [&](auto z) {
    using T = decltype(z);
    if (c.n.attrs.flag) {
      T s = static_cast<T>(scale);
      ew_run<1>(plan, c.out.data<T>(), [s](T v) { return static_cast<T>(v * s); }, x.data<T>());
    } else {
      ew_run<1>(plan, c.out.data<T>(), [](T v) { return v; }, x.data<T>());
    }
  });
}

/// [outer, n, inner] around an axis.
void around(const shape& s, int axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  n = s[axis];
  for (int i = axis + 1; i < s.rank(); ++i) inner *= s[i];
}

void check_indices(const kernel_call& c, const tensor& idx, int64_t limit) {
  int64_t k = idx.numel();
  for (int64_t i = 0; i < k; ++i) {
    int64_t v = index_at(idx, i);
    if (v < 0 || v >= limit)
      throw luoshu_error("index " + std::to_string(v) + " at position " + std::to_string(i) +
                         " is out of range [0, " + std::to_string(limit) + ") in node '" + c.n.name +
                         "' (op " + name(c.n.op) + ")");
  }
}

void k_gather(const kernel_call& c) {
  const tensor &x = c.in[0], &idx = c.in[1];
  int axis = normalize_axis(c.n.attrs.axis, x.rank(), "gather");
  int64_t outer, n, inner;
  around(x.shape(), axis, outer, n, inner);
  check_indices(c, idx, n);
  int64_t k = idx.numel();
  size_t es = size_of(x.type()), row = static_cast<size_t>(inner) * es;
  const char* in = bytes(x);
  char* out = bytes(c.out);
  parallel_for(outer * k, inner, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t o = r / k, j = r % k;
      std::memcpy(out + static_cast<size_t>(r) * row,
                  in + static_cast<size_t>(o * n + index_at(idx, j)) * row, row);
    }
  });
}

void k_scatter_add(const kernel_call& c) {
  const tensor &upd = c.in[0], &idx = c.in[1];
  int axis = normalize_axis(c.n.attrs.axis, c.out.rank(), "scatter_add");
  int64_t outer, n, inner;
  around(c.out.shape(), axis, outer, n, inner);
  check_indices(c, idx, n);
  int64_t k = idx.numel();
  std::memset(c.out.raw(), 0, c.out.nbytes());
  dispatch_arith(c, upd.type(), [&](auto z) {
    using T = decltype(z);
    const T* u = upd.data<T>();
    T* out = c.out.data<T>();
    // Rows may repeat, so split the work over outer slices and columns,
    // never over the index list.
    auto body = [&](int64_t o, int64_t i0, int64_t i1) {
      for (int64_t j = 0; j < k; ++j) {
        T* dst = out + (o * n + index_at(idx, j)) * inner;
        const T* src = u + (o * k + j) * inner;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
      }
    };
    if (outer == 1)
      parallel_for(inner, k, [&](int64_t b, int64_t e) { body(0, b, e); });
    else
      parallel_for(outer, k * inner, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) body(o, 0, inner);
      });
  });
}

void k_one_hot(const kernel_call& c) {
  const tensor& idx = c.in[0];
  int64_t depth = c.n.attrs.axis, k = idx.numel();
  check_indices(c, idx, depth);
  std::memset(c.out.raw(), 0, c.out.nbytes());
  dispatch_all(c, c.out.type(), [&](auto z) {
    using T = decltype(z);
    T* out = c.out.data<T>();
    for (int64_t i = 0; i < k; ++i) out[i * depth + index_at(idx, i)] = T(1);
  });
}

} // namespace

void register_shape(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::reshape, cpu, k_alias);
  r.add(op_kind::reshape_like, cpu, k_alias);
  r.add(op_kind::transpose, cpu, k_transpose);
  r.add(op_kind::concat, cpu, k_concat);
  r.add(op_kind::slice, cpu, k_slice);
  r.add(op_kind::slice_grad, cpu, k_slice_grad);
  r.add(op_kind::pad, cpu, k_pad);
  r.add(op_kind::broadcast_to, cpu, k_broadcast);
  r.add(op_kind::broadcast_like, cpu, k_broadcast);
  r.add(op_kind::gather, cpu, k_gather);
  r.add(op_kind::scatter_add_like, cpu, k_scatter_add);
  r.add(op_kind::one_hot, cpu, k_one_hot);
}

} // namespace luoshu::cpu
