// CUDA kernels: elementwise ops with broadcasting (see gpu.cuh for how
// kernels are written). Same formulas and dtype coverage as
// ops/cpu/elementwise.cpp.

#include "ops/cuda/elementwise.cuh"

namespace luoshu::LUOSHU_GPU_NS {

namespace {

// Scalar ops over x (and y), as the CPU computes them; map1/map2 convert
// the value to the output dtype.
LUOSHU_SCALAR_OP(op_add, (T x, T y), x + y)
LUOSHU_SCALAR_OP(op_sub, (T x, T y), x - y)
LUOSHU_SCALAR_OP(op_mul, (T x, T y), x * y)
LUOSHU_SCALAR_OP(op_maximum, (T x, T y), x > y ? x : y)
LUOSHU_SCALAR_OP(op_minimum, (T x, T y), x < y ? x : y)
LUOSHU_SCALAR_OP(op_equal, (T x, T y), x == y)
LUOSHU_SCALAR_OP(op_not_equal, (T x, T y), x != y)
LUOSHU_SCALAR_OP(op_less, (T x, T y), x < y)
LUOSHU_SCALAR_OP(op_less_equal, (T x, T y), x <= y)
LUOSHU_SCALAR_OP(op_greater, (T x, T y), x > y)
LUOSHU_SCALAR_OP(op_greater_equal, (T x, T y), x >= y)
LUOSHU_SCALAR_OP(op_select, (uint8_t m, T x, T y), m ? x : y)

LUOSHU_SCALAR_OP(op_neg, (T x), -x)
LUOSHU_SCALAR_OP(op_abs, (T x), x < 0 ? -x : x)
LUOSHU_SCALAR_OP(op_sign, (T x), (x > 0) - (x < 0))
LUOSHU_SCALAR_OP(op_square, (T x), x * x)
LUOSHU_SCALAR_OP(op_exp, (T x), g_exp(x))
LUOSHU_SCALAR_OP(op_log, (T x), g_log(x))
LUOSHU_SCALAR_OP(op_sqrt, (T x), g_sqrt(x))
LUOSHU_SCALAR_OP(op_rsqrt, (T x), T(1) / g_sqrt(x))
LUOSHU_SCALAR_OP(op_convert, (T x), x)
// clamp: alpha = low, beta = high, converted to T as the CPU does.
LUOSHU_SCALAR_OP(op_clamp, (T x), x < al ? al : (x > static_cast<T>(b) ? static_cast<T>(b) : x))

/// Integer division by zero is a device error (that element is left 0).
struct op_div : op_base {
  template <class T>
  LUOSHU_HD T operator()(T x, T y) const {
    if constexpr (std::is_integral_v<T>) {
      if (y == 0) {
        e.division_by_zero();
        return T(0);
      }
    }
    return static_cast<T>(x / y);
  }
};

/// std::pow(x, y): in T for floats, through double for integers.
struct op_pow : op_base {
  template <class T>
  LUOSHU_HD T operator()(T x, T y) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(g_pow(static_cast<double>(x), static_cast<double>(y)));
    else
      return g_pow(x, y);
  }
};

struct where_k {
  template <class T>
  static void run(const kernel_call& c) {
    ew_run<3>(c, map3<op_select, T, uint8_t, T, T>{make_op<op_select>(c), ptr<T>(c.out), ptr<uint8_t>(c.in[0]),
                                                  ptr<T>(c.in[1]), ptr<T>(c.in[2])});
  }
};
void k_where(const kernel_call& c) { dispatch_all<where_k>(c, c.in[1].type()); }

/// cast: static_cast from the input's dtype I to the output's.
template <class I>
struct cast_to {
  template <class O>
  static void run(const kernel_call& c) {
    ew_run<1>(c, map1<op_convert, O, I>{make_op<op_convert>(c), ptr<O>(c.out), ptr<I>(c.in[0])});
  }
};
struct cast_k {
  template <class I>
  static void run(const kernel_call& c) {
    dispatch_all<cast_to<I>>(c, c.out.type());
  }
};

template <class Op>
using compare_k = binary_k<Op, uint8_t>;

} // namespace

void register_elementwise(kernel_registry& r) {
  auto cuda = device::kind_t::cuda;
  r.add(op_kind::add, cuda, arith_kernel<binary_k<op_add>>);
  r.add(op_kind::sub, cuda, arith_kernel<binary_k<op_sub>>);
  r.add(op_kind::mul, cuda, arith_kernel<binary_k<op_mul>>);
  r.add(op_kind::div, cuda, arith_kernel<binary_k<op_div>>);
  r.add(op_kind::pow, cuda, arith_kernel<binary_k<op_pow>>);
  r.add(op_kind::maximum, cuda, arith_kernel<binary_k<op_maximum>>);
  r.add(op_kind::minimum, cuda, arith_kernel<binary_k<op_minimum>>);
  r.add(op_kind::equal, cuda, all_kernel<compare_k<op_equal>>);
  r.add(op_kind::not_equal, cuda, all_kernel<compare_k<op_not_equal>>);
  r.add(op_kind::less, cuda, all_kernel<compare_k<op_less>>);
  r.add(op_kind::less_equal, cuda, all_kernel<compare_k<op_less_equal>>);
  r.add(op_kind::greater, cuda, all_kernel<compare_k<op_greater>>);
  r.add(op_kind::greater_equal, cuda, all_kernel<compare_k<op_greater_equal>>);
  r.add(op_kind::where, cuda, k_where);
  r.add(op_kind::neg, cuda, arith_kernel<unary_k<op_neg>>);
  r.add(op_kind::abs, cuda, arith_kernel<unary_k<op_abs>>);
  r.add(op_kind::exp, cuda, float_kernel<unary_k<op_exp>>);
  r.add(op_kind::log, cuda, float_kernel<unary_k<op_log>>);
  r.add(op_kind::sqrt, cuda, float_kernel<unary_k<op_sqrt>>);
  r.add(op_kind::rsqrt, cuda, float_kernel<unary_k<op_rsqrt>>);
  r.add(op_kind::square, cuda, arith_kernel<unary_k<op_square>>);
  r.add(op_kind::sign, cuda, arith_kernel<unary_k<op_sign>>);
  r.add(op_kind::clamp, cuda, arith_kernel<unary_k<op_clamp>>);
  r.add(op_kind::cast, cuda, all_kernel<cast_k>);
  r.add(op_kind::identity, cuda, copy_input);
  r.add(op_kind::stop_gradient, cuda, copy_input);
}

} // namespace luoshu::LUOSHU_GPU_NS
