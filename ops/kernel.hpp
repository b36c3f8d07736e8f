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

/// Channel-blocked layouts. Outside the CPU executor every tensor is dense
/// row-major ("plain": NCHW for images). Between CPU kernels that accept it,
/// the executor may keep an f32 [N, C, H, W] value channel-blocked instead:
/// [N, C/B, H, W, B], B = kernel_registry::channel_block() (C a multiple of
/// B, so the byte size is the same), the layout oneDNN's direct convolutions
/// read and write, so that conv -> relu -> pool -> conv reorders nothing
/// between the ops. A value stays plain when any reader does not accept the
/// blocked layout, and fetched values are always plain.
///
/// A kernel's capabilities, from its node and its inputs' and output's
/// types and shapes (only CPU kernels registered with add_layout have any):
struct layout_caps {
  uint32_t inputs = 0;  ///< bit j: input j may be channel-blocked
  bool output = false;  ///< the output may be channel-blocked
  /// Elementwise over same-shaped operands: the output and the inputs in
  /// `inputs` are all blocked or all plain (the kernel never sees a mix).
  bool uniform = false;
};
using layout_fn = layout_caps (*)(const node& n, std::span<const type_shape> in, const type_shape& out);

/// One kernel invocation. `out` is allocated by the executor with the
/// node's inferred shape (or is a view of input 0 for aliasing ops).
struct kernel_call {
  const node& n;
  std::span<const tensor> in;
  const tensor& out;
  const kernel_context& ctx;
  /// Bit j: input j is channel-blocked; bit 31 (output_blocked): the
  /// output must be written channel-blocked. Zero unless the kernel's
  /// layout_caps allowed it.
  uint32_t blocked = 0;

  static constexpr uint32_t output_blocked = uint32_t{1} << 31;
  bool in_blocked(size_t j) const { return (blocked >> j) & 1u; }
  bool out_blocked() const { return (blocked & output_blocked) != 0; }
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
  /// The CPU kernels' channel-blocked layouts (see layout_caps): the block
  /// size B (0: none) and which kernels accept them.
  void set_channel_block(int64_t b) { channel_block_ = b; }
  int64_t channel_block() const { return channel_block_; }
  void add_layout(op_kind op, layout_fn fn) { layout_[index(op)] = fn; }
  layout_fn layout(op_kind op) const { return layout_[index(op)]; }

private:
  static size_t index(op_kind op) { return static_cast<size_t>(op); }
  static size_t dev_index(device::kind_t d) { return d == device::kind_t::cpu ? 0 : 1; }
  kernel_fn table_[op_count][2] = {};
  device_backend* backends_[2] = {};
  layout_fn layout_[op_count] = {};
  int64_t channel_block_ = 0;
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
