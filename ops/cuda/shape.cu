// CUDA kernels: shape and data-movement ops (see gpu.cuh for how kernels
// are written). Pure data movement is one strided copy, dst[dv(i)] =
// src[sv(i)], over elements of the dtype's size (any dtype, as the CPU's
// memcpy-based kernels in ops/cpu/shape.cpp); only ops that compute on
// values dispatch on the element type.

#include "ops/cuda/gpu.cuh"
#include "ops/infer_util.hpp"
#include "ops/shape_util.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

char* bytes(const tensor& t) { return static_cast<char*>(t.raw()); }

/// Element offset of a box's corner `begin` in a tensor with `strides`.
int64_t corner(const std::vector<int64_t>& begin, const std::vector<int64_t>& strides) {
  int64_t off = 0;
  for (size_t d = 0; d < begin.size(); ++d) off += begin[d] * strides[d];
  return off;
}

struct k_move {
  template <class U>
  static void run(const kernel_call& c, char* dst, strided dv, const char* src, strided sv, int64_t n) {
    U* d = reinterpret_cast<U*>(dst);
    const U* s = reinterpret_cast<const U*>(src);
    parallel_for(c, n, [=] LUOSHU_HD(int64_t i) { d[view_at(dv, i)] = s[view_at(sv, i)]; });
  }
};

/// dst[dv(i)] = src[sv(i)] for i < n, elements of dtype t.
void move(const kernel_call& c, dtype t, char* dst, const strided& dv, const char* src, const strided& sv,
          int64_t n) {
  dispatch_bytes<k_move>(c, t, dst, dv, src, sv, n);
}

/// Copies `box` (extents) from `src` at corner `sb` into `dst` at corner `db`.
void copy_box(const kernel_call& c, const tensor& src, const std::vector<int64_t>& sb, const tensor& dst,
              const std::vector<int64_t>& db, const std::vector<int64_t>& box) {
  auto ss = contiguous_strides(src.shape()), ds = contiguous_strides(dst.shape());
  size_t es = size_of(src.type());
  int64_t n = 1;
  for (auto e : box) n *= e;
  move(c, src.type(), bytes(dst) + static_cast<size_t>(corner(db, ds)) * es, make_view(c, box, ds),
       bytes(src) + static_cast<size_t>(corner(sb, ss)) * es, make_view(c, box, ss), n);
}

struct k_fill {
  template <class U>
  static void run(const kernel_call& c, const tensor& t, uint64_t bits) {
    U v;
    std::memcpy(&v, &bits, sizeof v);
    U* d = reinterpret_cast<U*>(bytes(t));
    parallel_for(c, t.numel(), [=] LUOSHU_HD(int64_t i) { d[i] = v; });
  }
};

/// Sets every element of `t` to `value` converted to its dtype.
void fill(const kernel_call& c, const tensor& t, double value) {
  tensor one(t.type(), shape{});
  one.fill(value);
  uint64_t bits = 0;
  std::memcpy(&bits, one.raw(), size_of(t.type()));
  dispatch_bytes<k_fill>(c, t.type(), t, bits);
}

void alias_kernel(const kernel_call& c) {
  if (c.out.raw() != c.in[0].raw()) c.ctx.stream->copy(c.out.raw(), c.in[0].raw(), c.out.nbytes());
}

void transpose_kernel(const kernel_call& c) {
  const tensor& x = c.in[0];
  std::vector<int64_t> perm;
  for (auto p : c.n.attrs.axes) perm.push_back(normalize_axis(p, x.rank(), "transpose"));
  int64_t n = c.out.numel();
  move(c, x.type(), bytes(c.out), contiguous_view(n), bytes(x), simplified(transpose_view(c, x.shape(), perm)), n);
}

void concat_kernel(const kernel_call& c) {
  int r = c.out.rank();
  auto axis = static_cast<size_t>(normalize_axis(c.n.attrs.axis, r, "concat"));
  std::vector<int64_t> zero(static_cast<size_t>(r), 0), at(static_cast<size_t>(r), 0);
  for (const tensor& x : c.in) {
    copy_box(c, x, zero, c.out, at, x.shape().dims());
    at[axis] += x.shape()[static_cast<int>(axis)];
  }
}

void slice_kernel(const kernel_call& c) {
  const tensor& x = c.in[0];
  auto sb = ops::resolve_slice(x.shape(), c.n.attrs.axes, c.n.attrs.axes2);
  copy_box(c, x, sb.begin, c.out, std::vector<int64_t>(static_cast<size_t>(x.rank()), 0), sb.size);
}

void slice_grad_kernel(const kernel_call& c) {
  const tensor& dy = c.in[0];
  auto sb = ops::resolve_slice(c.out.shape(), c.n.attrs.axes, c.n.attrs.axes2);
  fill(c, c.out, 0);
  copy_box(c, dy, std::vector<int64_t>(static_cast<size_t>(dy.rank()), 0), c.out, sb.begin, sb.size);
}

void pad_kernel(const kernel_call& c) {
  const tensor& x = c.in[0];
  fill(c, c.out, c.n.attrs.alpha);
  copy_box(c, x, std::vector<int64_t>(static_cast<size_t>(x.rank()), 0), c.out, c.n.attrs.axes, x.shape().dims());
}

/// The shape broadcast_to/broadcast_like reads its input as.
shape broadcast_source(const kernel_call& c) {
  const tensor& x = c.in[0];
  if (c.n.op != op_kind::broadcast_like || c.n.attrs.axes.empty()) return x.shape();
  // x lacks the listed axes of the output: put them back as 1s.
  shape from = ops::reduced_shape(c.out.shape(), ops::reduce_axes(c.n.attrs.axes, c.out.rank()), true);
  if (from.numel() != x.numel())
    throw luoshu_error("broadcast_like in node '" + c.n.name + "': input " + x.shape().to_string() +
                       " does not fit " + from.to_string());
  return from;
}

/// broadcast_like with attrs.flag: each value times in/out element counts.
struct k_broadcast_scaled {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor& x = c.in[0];
    const strided sv = simplified(broadcast_view(c, c.out.shape(), broadcast_source(c)));
    double scale = x.numel() ? static_cast<double>(x.numel()) / static_cast<double>(c.out.numel()) : 1;
    const T s = static_cast<T>(scale);
    const T* in = ptr<T>(x);
    T* out = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { out[i] = static_cast<T>(in[view_at(sv, i)] * s); });
  }
};

void broadcast_kernel(const kernel_call& c) {
  const tensor& x = c.in[0];
  if (c.n.attrs.flag) return dispatch_all<k_broadcast_scaled>(c, x.type());
  int64_t n = c.out.numel();
  move(c, x.type(), bytes(c.out), contiguous_view(n), bytes(x),
       simplified(broadcast_view(c, c.out.shape(), broadcast_source(c))), n);
}

/// Element i of a gathered [outer, k, inner] tensor and where it lives in the
/// [outer, n, inner] source: -1 (reported, to be skipped) when its index is
/// not in [0, n).
struct axis_map {
  int64_t outer = 1, n = 1, inner = 1, k = 1;
  index_view idx;
  error_sink err;
  LUOSHU_HD int64_t operator()(int64_t i) const {
    int64_t e = i % inner, r = i / inner;
    int64_t v = idx[r % k];
    if (v < 0 || v >= n) {
      err.out_of_range(v, n);
      return -1;
    }
    return ((r / k) * n + v) * inner + e;
  }
};

/// The map for gather (source x) and scatter_add_like (target: the output).
axis_map map_axis(const kernel_call& c, const shape& s, const tensor& idx, const char* what) {
  int axis = normalize_axis(c.n.attrs.axis, s.rank(), what);
  axis_map m{1, s[axis], 1, idx.numel(), indices(c, idx), errors(c)};
  for (int i = 0; i < axis; ++i) m.outer *= s[i];
  for (int i = axis + 1; i < s.rank(); ++i) m.inner *= s[i];
  return m;
}

struct k_gather {
  template <class U>
  static void run(const kernel_call& c) {
    const axis_map m = map_axis(c, c.in[0].shape(), c.in[1], "gather");
    const U* in = reinterpret_cast<const U*>(bytes(c.in[0]));
    U* out = reinterpret_cast<U*>(bytes(c.out));
    parallel_for(c, m.outer * m.k * m.inner, [=] LUOSHU_HD(int64_t i) {
      int64_t src = m(i);
      if (src >= 0) out[i] = in[src];
    });
  }
};

struct k_scatter_add {
  template <class T>
  static void run(const kernel_call& c) {
    const axis_map m = map_axis(c, c.out.shape(), c.in[1], "scatter_add");
    fill(c, c.out, 0);
    const T* upd = ptr<T>(c.in[0]);
    T* out = ptr<T>(c.out);
    // Indices may repeat: rows add up with atomics (order varies in floats).
    parallel_for(c, m.outer * m.k * m.inner, [=] LUOSHU_HD(int64_t i) {
      int64_t dst = m(i);
      if (dst >= 0) g_atomic_add(out + dst, upd[i]);
    });
  }
};

struct k_one_hot {
  template <class T>
  static void run(const kernel_call& c) {
    const index_view idx = indices(c, c.in[0]);
    const error_sink err = errors(c);
    const int64_t depth = c.n.attrs.axis;
    T* out = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t e) {
      int64_t v = idx[e / depth], d = e % depth;
      if (d == 0 && (v < 0 || v >= depth)) err.out_of_range(v, depth);
      out[e] = v == d ? T(1) : T(0);
    });
  }
};

void gather_kernel(const kernel_call& c) { dispatch_bytes<k_gather>(c, c.in[0].type()); }
void scatter_add_kernel(const kernel_call& c) { dispatch_arith<k_scatter_add>(c, c.in[0].type()); }
void one_hot_kernel(const kernel_call& c) { dispatch_all<k_one_hot>(c, c.out.type()); }

} // namespace

void register_shape(kernel_registry& r) {
  auto dev = device::kind_t::cuda;
  r.add(op_kind::reshape, dev, alias_kernel);
  r.add(op_kind::reshape_like, dev, alias_kernel);
  r.add(op_kind::transpose, dev, transpose_kernel);
  r.add(op_kind::concat, dev, concat_kernel);
  r.add(op_kind::slice, dev, slice_kernel);
  r.add(op_kind::slice_grad, dev, slice_grad_kernel);
  r.add(op_kind::pad, dev, pad_kernel);
  r.add(op_kind::broadcast_to, dev, broadcast_kernel);
  r.add(op_kind::broadcast_like, dev, broadcast_kernel);
  r.add(op_kind::gather, dev, gather_kernel);
  r.add(op_kind::scatter_add_like, dev, scatter_add_kernel);
  r.add(op_kind::one_hot, dev, one_hot_kernel);
}

} // namespace luoshu::LUOSHU_GPU_NS
