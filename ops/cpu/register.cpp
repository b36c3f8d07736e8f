#include "ops/cpu/register.hpp"

#include "ops/cpu/dnnl_util.hpp"

#include <omp.h>

#include <cstdlib>

namespace luoshu::cpu {

void register_kernels(kernel_registry& r) {
  r.set_channel_block(dnnl_channel_block());
  register_elementwise(r);
  register_activation(r);
  register_matmul(r);
  register_conv(r);
  register_pool(r);
  register_rnn(r);
  register_norm(r);
  register_layer_norm(r);
  register_attention(r);
  register_reduce(r);
  register_shape(r);
  register_embedding(r);
  register_loss(r);
  register_optimizer(r);
}

void set_num_threads(int n) {
  if (n <= 0) {
    // 0 = the default: OMP_NUM_THREADS when set (luoshu launch sets it to
    // share the cores among a host's nodes), else one thread per core.
    const char* env = std::getenv("OMP_NUM_THREADS");
    n = env && std::atoi(env) > 0 ? std::atoi(env) : omp_get_num_procs();
  }
  omp_set_dynamic(0);
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

int64_t omp_threads_in_team() { return omp_get_num_threads(); }
int64_t omp_thread_index() { return omp_get_thread_num(); }

} // namespace luoshu::cpu
