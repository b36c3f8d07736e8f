// CUDA kernels: conv2d, max_pool2d, avg_pool2d and their gradients (see
// gpu.cuh for how kernels are written). Direct loops: one thread per output
// element running the one-element functions of ops/window.hpp, the same
// arithmetic as the CPU's f64 path; gradients gather (no atomics), so
// results are deterministic.
// TODO(perf): cuDNN convolution and pooling.

#include "ops/cuda/gpu.cuh"
#include "ops/window.hpp"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

// conv2d(x, w), conv2d(x, w, b)
struct conv_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::conv_geom(c.in[0].shape(), c.in[1].shape(), c.out.shape(), c.n.attrs);
    const T *x = ptr<T>(c.in[0]), *w = ptr<T>(c.in[1]);
    const T* b = c.in.size() == 3 ? ptr<T>(c.in[2]) : nullptr;
    T* y = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) {
      T v = ops::conv_forward_at(g, x, w, i);
      y[i] = b ? v + b[(i / (g.oh * g.ow)) % g.o] : v;
    });
  }
};

// conv2d_input_grad(dy, w, x_like)
struct conv_input_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::conv_geom(c.out.shape(), c.in[1].shape(), c.in[0].shape(), c.n.attrs);
    const T *dy = ptr<T>(c.in[0]), *w = ptr<T>(c.in[1]);
    T* dx = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { dx[i] = ops::conv_input_grad_at(g, dy, w, i); });
  }
};

// conv2d_filter_grad(x, dy, w_like)
struct conv_filter_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::conv_geom(c.in[0].shape(), c.out.shape(), c.in[1].shape(), c.n.attrs);
    const T *x = ptr<T>(c.in[0]), *dy = ptr<T>(c.in[1]);
    T* dw = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { dw[i] = ops::conv_filter_grad_at(g, x, dy, i); });
  }
};

// conv2d_bias_grad(dy): one thread per output channel.
struct conv_bias_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g{};
    g.n = c.in[0].dim(0);
    g.o = c.in[0].dim(1);
    g.oh = c.in[0].dim(2);
    g.ow = c.in[0].dim(3);
    const T* dy = ptr<T>(c.in[0]);
    T* db = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t o) { db[o] = ops::conv_bias_grad_at(g, dy, o); });
  }
};

struct max_pool_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::pool_geom(c.in[0].shape(), c.out.shape(), c.n.attrs);
    const T* x = ptr<T>(c.in[0]);
    T* y = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { y[i] = ops::max_pool_forward_at(g, x, i); });
  }
};

struct avg_pool_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::pool_geom(c.in[0].shape(), c.out.shape(), c.n.attrs);
    const T* x = ptr<T>(c.in[0]);
    T* y = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { y[i] = ops::avg_pool_forward_at(g, x, i); });
  }
};

// max_pool2d_grad(dy, x)
struct max_pool_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::pool_geom(c.out.shape(), c.in[0].shape(), c.n.attrs);
    const T *dy = ptr<T>(c.in[0]), *x = ptr<T>(c.in[1]);
    T* dx = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { dx[i] = ops::max_pool_grad_at(g, dy, x, i); });
  }
};

// avg_pool2d_grad(dy, x_like)
struct avg_pool_grad_k {
  template <class T>
  static void run(const kernel_call& c) {
    ops::window_geom g = ops::pool_geom(c.out.shape(), c.in[0].shape(), c.n.attrs);
    const T* dy = ptr<T>(c.in[0]);
    T* dx = ptr<T>(c.out);
    parallel_for(c, c.out.numel(), [=] LUOSHU_HD(int64_t i) { dx[i] = ops::avg_pool_grad_at(g, dy, i); });
  }
};

void k_conv2d(const kernel_call& c) { dispatch_float<conv_k>(c, c.out.type()); }
void k_conv2d_input_grad(const kernel_call& c) { dispatch_float<conv_input_grad_k>(c, c.out.type()); }
void k_conv2d_filter_grad(const kernel_call& c) { dispatch_float<conv_filter_grad_k>(c, c.out.type()); }
void k_conv2d_bias_grad(const kernel_call& c) { dispatch_float<conv_bias_grad_k>(c, c.out.type()); }
void k_max_pool2d(const kernel_call& c) { dispatch_float<max_pool_k>(c, c.out.type()); }
void k_avg_pool2d(const kernel_call& c) { dispatch_float<avg_pool_k>(c, c.out.type()); }
void k_max_pool2d_grad(const kernel_call& c) { dispatch_float<max_pool_grad_k>(c, c.out.type()); }
void k_avg_pool2d_grad(const kernel_call& c) { dispatch_float<avg_pool_grad_k>(c, c.out.type()); }

} // namespace

void register_conv(kernel_registry& r) {
  auto cuda = device::kind_t::cuda;
  r.add(op_kind::conv2d, cuda, k_conv2d);
  r.add(op_kind::conv2d_input_grad, cuda, k_conv2d_input_grad);
  r.add(op_kind::conv2d_filter_grad, cuda, k_conv2d_filter_grad);
  r.add(op_kind::conv2d_bias_grad, cuda, k_conv2d_bias_grad);
  r.add(op_kind::max_pool2d, cuda, k_max_pool2d);
  r.add(op_kind::avg_pool2d, cuda, k_avg_pool2d);
  r.add(op_kind::max_pool2d_grad, cuda, k_max_pool2d_grad);
  r.add(op_kind::avg_pool2d_grad, cuda, k_avg_pool2d_grad);
}

} // namespace luoshu::LUOSHU_GPU_NS
