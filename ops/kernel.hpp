#pragma once
// The backend interface: a kernel computes one node's output from its
// inputs. Kernels are registered explicitly by each backend
// (cpu::register_kernels, cuda::register_kernels) into a registry the
// engine owns; there are no global registration side effects.

#include <span>

#include "graph/device.hpp"
#include "graph/device_backend.hpp"
#include "graph/graph.hpp"
#include "graph/tensor.hpp"

namespace luoshu {

/// Per-run facts a kernel may read.
struct kernel_context {
  int64_t step = 0;     ///< training step (seeds dropout masks)
  bool training = true; ///< false in inference mode (dropout is identity)
  device_stream* stream = nullptr; ///< the stream device kernels queue on (null on the CPU)
};

/// One kernel invocation. `out` is allocated by the executor with the
/// node's inferred shape (or is a view of input 0 for aliasing ops).
struct kernel_call {
  const node& n;
  std::span<const tensor> in;
  const tensor& out;
  const kernel_context& ctx;
};

using kernel_fn = void (*)(const kernel_call& call);

/// Kernels by (op, device kind).
class kernel_registry {
public:
  void add(op_kind op, device::kind_t dev, kernel_fn fn) { table_[index(op)][dev_index(dev)] = fn; }
  kernel_fn find(op_kind op, device::kind_t dev) const { return table_[index(op)][dev_index(dev)]; }
  bool supports(op_kind op, device::kind_t dev) const { return find(op, dev) != nullptr; }
  /// The backend that runs a device kind's kernels (null: none registered).
  void set_backend(device::kind_t dev, device_backend* b) { backends_[dev_index(dev)] = b; }
  device_backend* backend(device::kind_t dev) const { return backends_[dev_index(dev)]; }

private:
  static size_t index(op_kind op) { return static_cast<size_t>(op); }
  static size_t dev_index(device::kind_t d) { return d == device::kind_t::cpu ? 0 : 1; }
  kernel_fn table_[op_count][2] = {};
  device_backend* backends_[2] = {};
};

namespace cpu {
/// Registers every CPU kernel.
void register_kernels(kernel_registry& r);
/// Intra-op threads for CPU kernels and the GEMM library (one OpenMP pool
/// serves both, so they never stack). 0 = OMP_NUM_THREADS if set, else one
/// per core.
void set_num_threads(int n);
int num_threads();
} // namespace cpu

namespace cuda {
/// Registers every CUDA kernel and the CUDA backend. Without CUDA in the
/// build it registers nothing, and running on a cuda device is an error
/// saying so.
void register_kernels(kernel_registry& r);
} // namespace cuda

} // namespace luoshu
