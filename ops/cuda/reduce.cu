// CUDA kernels: reduce ops (see gpu.cuh for how kernels are written).
//
// Each output element owns a reduction group: `keep` maps the output index
// to the group's first input element, `group` maps a position in the group
// to its offset from there. Small groups run one thread per output; large
// ones are split into interleaved chunks whose partials (scratch) a tree of
// passes combines in chunk order: deterministic, no atomics. Accumulation is
// in the element type, as on the CPU (ops/cpu/reduce.cpp).

#include <limits>

#include "ops/cuda/gpu.cuh"
#include "ops/infer_util.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

enum class rop : int { sum, max, min, sumsq };
/// What happens to a finished group: nothing, times `scale` (mean), sqrt (norm).
enum class fin : int { none, scale, sqrt };

template <class T>
LUOSHU_HD inline T rstep(rop r, T acc, T x) {
  switch (r) {
    case rop::sum: return acc + x;
    case rop::max: return x > acc ? x : acc;
    case rop::min: return x < acc ? x : acc;
    case rop::sumsq: return acc + x * x;
  }
  return acc;
}

/// Folds a chunk's partial into the running result (as the CPU combines
/// its per-thread partials).
template <class T>
LUOSHU_HD inline T rcombine(rop r, T acc, T part) {
  return r == rop::sum || r == rop::sumsq ? acc + part : rstep(r, acc, part);
}

template <class T>
LUOSHU_HD inline T finish(fin f, T v, T scale) {
  if (f == fin::scale) return v * scale;
  if (f == fin::sqrt) return static_cast<T>(g_sqrt(static_cast<double>(v)));
  return v;
}

/// One reduction: what to compute, read from the node (host side).
struct reduce_spec {
  strided keep, group;
  int64_t n_out = 1, count = 1;
  rop op = rop::sum;
  fin f = fin::none;
};

/// The groups of `s` reduced over sorted `axes`. The output layout is the
/// input's with the axes removed (keepdims only adds 1s).
reduce_spec plan(const kernel_call& c, const shape& s, const std::vector<int>& axes) {
  std::vector<int64_t> st = contiguous_strides(s), kd, ks, gd, gs;
  reduce_spec r;
  size_t j = 0;
  for (int d = 0; d < s.rank(); ++d) {
    bool red = j < axes.size() && axes[j] == d;
    if (red) ++j;
    (red ? gd : kd).push_back(s[d]);
    (red ? gs : ks).push_back(st[static_cast<size_t>(d)]);
    (red ? r.count : r.n_out) *= s[d];
  }
  r.keep = make_view(c, kd, ks);
  r.group = make_view(c, gd, gs);
  return r;
}

reduce_spec spec_of(const kernel_call& c) {
  const tensor& x = c.in[0];
  if (c.n.op == op_kind::sum_to_like) {
    std::vector<int> axes;
    const shape& target = c.out.shape();
    int lead = x.rank() - target.rank();
    for (int i = 0; i < x.rank(); ++i)
      if (i < lead || (target[i - lead] == 1 && x.dim(i) != 1)) axes.push_back(i);
    return plan(c, x.shape(), axes);
  }
  reduce_spec r = plan(c, x.shape(), ops::reduce_axes(c.n.attrs.axes, x.rank()));
  switch (c.n.op) {
    case op_kind::max: r.op = rop::max; break;
    case op_kind::min: r.op = rop::min; break;
    case op_kind::norm: r.op = rop::sumsq; r.f = fin::sqrt; break;
    case op_kind::mean: r.f = fin::scale; break;
    default: break;
  }
  if ((r.op == rop::max || r.op == rop::min) && r.count == 0)
    throw luoshu_error("max/min over an empty axis in node '" + c.n.name + "'");
  return r;
}

/// Chunks per group: 1 for small groups or when the outputs alone fill the
/// device; otherwise chunks of >= 256 elements, enough for ~1M threads.
int64_t chunks_for(int64_t n_out, int64_t count) {
  if (count <= 1024 || n_out >= 16384) return 1;
  int64_t by_size = (count + 255) / 256, by_threads = (int64_t{1} << 20) / n_out;
  int64_t k = by_size < by_threads ? by_size : by_threads;
  return k < 1 ? 1 : k;
}

/// Partials combined per thread in each level of the combining tree.
constexpr int64_t fan_in = 64;

struct k_reduce {
  template <class T>
  static void run(const kernel_call& c) {
    reduce_spec s = spec_of(c);
    const T* x = ptr<T>(c.in[0]);
    T* out = ptr<T>(c.out);
    const rop op = s.op;
    const fin f = s.f;
    const strided keep = s.keep, group = s.group;
    const int64_t n_out = s.n_out, count = s.count;
    const T init = op == rop::max ? std::numeric_limits<T>::lowest()
                   : op == rop::min ? std::numeric_limits<T>::max()
                                    : T(0);
    const T scale = count ? T(1) / static_cast<T>(count) : std::numeric_limits<T>::quiet_NaN();
    const int64_t chunks = chunks_for(n_out, count);
    if (chunks == 1) {
      parallel_for(c, n_out, [=] LUOSHU_HD(int64_t o) {
        const T* g = x + view_at(keep, o);
        T acc = init;
        for (int64_t j = 0; j < count; ++j) acc = rstep(op, acc, g[view_at(group, j)]);
        out[o] = finish(f, acc, scale);
      });
      return;
    }
    tensor part = scratch(c, c.out.type(), n_out * chunks);
    T* p = ptr<T>(part);
    // Partial i covers output i % n_out, elements ch, ch + chunks, ... of
    // its group (ch = i / n_out): neighbouring threads read neighbouring
    // elements of a full reduction.
    parallel_for(c, n_out * chunks, [=] LUOSHU_HD(int64_t i) {
      int64_t o = i % n_out, ch = i / n_out;
      const T* g = x + view_at(keep, o);
      T acc = init;
      for (int64_t j = ch; j < count; j += chunks) acc = rstep(op, acc, g[view_at(group, j)]);
      p[i] = acc;
    });
    // Combine the partials (laid out [chunk][output]) in a tree of passes,
    // each folding runs of fan_in consecutive chunks in chunk order: fixed
    // order, so the result is deterministic.
    int64_t left = chunks;
    while (left > fan_in) {
      const int64_t next = (left + fan_in - 1) / fan_in, have = left;
      tensor q_mem = scratch(c, c.out.type(), n_out * next);
      T* q = ptr<T>(q_mem);
      parallel_for(c, n_out * next, [=] LUOSHU_HD(int64_t i) {
        const int64_t o = i % n_out, b = i / n_out;
        T acc = p[b * fan_in * n_out + o];
        for (int64_t ch = b * fan_in + 1; ch < have && ch < (b + 1) * fan_in; ++ch)
          acc = rcombine(op, acc, p[ch * n_out + o]);
        q[i] = acc;
      });
      part = q_mem; // keeps the level alive until the next one is queued
      p = q;
      left = next;
    }
    const T* pl = p;
    const int64_t last = left;
    parallel_for(c, n_out, [=] LUOSHU_HD(int64_t o) {
      T acc = pl[o];
      for (int64_t ch = 1; ch < last; ++ch) acc = rcombine(op, acc, pl[ch * n_out + o]);
      out[o] = finish(f, acc, scale);
    });
  }
};

struct k_argmax {
  template <class T>
  static void run(const kernel_call& c) {
    const tensor& x = c.in[0];
    int axis = normalize_axis(c.n.attrs.axis, x.rank(), "argmax");
    int64_t outer = 1, n = x.dim(axis), inner = 1;
    for (int i = 0; i < axis; ++i) outer *= x.dim(i);
    for (int i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
    if (n == 0) throw luoshu_error("argmax over an empty axis in node '" + c.n.name + "'");
    const T* in = ptr<T>(x);
    int64_t* out = ptr<int64_t>(c.out);
    // The first strict maximum along the axis, as on the CPU.
    parallel_for(c, outer * inner, [=] LUOSHU_HD(int64_t r) {
      const T* p = in + (r / inner) * n * inner + r % inner;
      int64_t best = 0;
      for (int64_t j = 1; j < n; ++j)
        if (p[j * inner] > p[best * inner]) best = j;
      out[r] = best;
    });
  }
};

void reduce_kernel(const kernel_call& c) { dispatch_arith<k_reduce>(c, c.in[0].type()); }
void argmax_kernel(const kernel_call& c) { dispatch_arith<k_argmax>(c, c.in[0].type()); }

} // namespace

void register_reduce(kernel_registry& r) {
  auto dev = device::kind_t::cuda;
  for (auto k : {op_kind::sum, op_kind::mean, op_kind::max, op_kind::min, op_kind::norm, op_kind::sum_to_like})
    r.add(k, dev, reduce_kernel);
  r.add(op_kind::argmax, dev, argmax_kernel);
}

} // namespace luoshu::LUOSHU_GPU_NS
