// The host emulation of the CUDA backend (tests only; see gpu.cuh): device
// memory is host memory tagged cuda:N, copies are memcpy, kernels run as
// host loops and GEMM is a plain triple loop.

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "ops/cuda/emulated.hpp"
#include "ops/cuda/gpu.cuh"

namespace luoshu::cuda_emu {

namespace {

constexpr int emulated_devices = 2;

std::shared_ptr<storage> host_block(size_t bytes, int index, const device_backend* b) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw luoshu_error("out of (emulated device) memory");
  // Fresh device memory is garbage: make reads of unwritten bytes visible.
  std::memset(p, 0xA5, rounded == 0 ? 64 : rounded);
  return std::make_shared<storage>(p, bytes, luoshu::device::cuda(index), [](void* q) { std::free(q); }, b);
}

class emu_stream final : public device_stream {
public:
  emu_stream(const device_backend* b, int dev) : backend_(b) {
    st_.device = dev;
    st_.errors = &record_;
  }
  luoshu::device device() const override { return luoshu::device::cuda(st_.device); }
  std::shared_ptr<storage> allocate(size_t bytes) override {
    held_ += bytes;
    return host_block(bytes, st_.device, backend_);
  }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override {
    // Written at synchronize(), as on a real stream.
    pending_.push_back({dst, std::vector<char>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes)});
  }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void synchronize() override {
    for (auto& p : pending_) std::memcpy(p.dst, p.bytes.data(), p.bytes.size());
    pending_.clear();
    device_error rec = record_;
    record_ = device_error{};
    std::string msg = rec.code != no_error ? tags_.message(rec) : std::string();
    tags_.clear();
    st_.tag = 0;
    if (rec.code != no_error) throw luoshu_error(msg);
  }
  void set_current_node(const std::string& node_name, const char* op_name) override {
    st_.tag = tags_.next(node_name, op_name);
  }
  size_t cached_bytes() const override { return held_; }
  void* native() override { return &st_; }

private:
  struct pending_copy {
    void* dst;
    std::vector<char> bytes;
  };
  const device_backend* backend_;
  stream_state st_;
  device_error record_;
  std::vector<pending_copy> pending_;
  launch_tags tags_;
  size_t held_ = 0;
};

class emu_backend final : public device_backend {
public:
  std::string name() const override { return "cuda (host emulation)"; }
  int device_count() const override { return emulated_devices; }
  std::unique_ptr<device_stream> make_stream(int index) override {
    if (index < 0 || index >= emulated_devices)
      throw luoshu_error("cuda:" + std::to_string(index) + " does not exist (" + std::to_string(emulated_devices) +
                         " emulated devices)");
    return std::make_unique<emu_stream>(this, index);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes, int) const override { std::memcpy(dst, src, bytes); }
  void copy_from_host(void* dst, const void* src, size_t bytes, int) const override { std::memcpy(dst, src, bytes); }
  std::shared_ptr<storage> allocate(size_t bytes, int index) const override { return host_block(bytes, index, this); }
};

emu_backend the_backend;

} // namespace

template <class T>
void gemm(const kernel_call&, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, T* out, int64_t ldc, T beta, int64_t batch, int64_t stride_a, int64_t stride_b,
          int64_t stride_c) {
  for (int64_t bi = 0; bi < batch; ++bi) {
    const T* A = a + bi * stride_a;
    const T* B = b + bi * stride_b;
    T* C = out + bi * stride_c;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T acc{};
        for (int64_t p = 0; p < k; ++p) acc += (ta ? A[p * lda + i] : A[i * lda + p]) * (tb ? B[j * ldb + p] : B[p * ldb + j]);
        C[i * ldc + j] = beta == T{} ? acc : acc + beta * C[i * ldc + j];
      }
  }
}

template void gemm<float>(const kernel_call&, bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                          const float*, int64_t, float*, int64_t, float, int64_t, int64_t, int64_t, int64_t);
template void gemm<double>(const kernel_call&, bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                           const double*, int64_t, double*, int64_t, double, int64_t, int64_t, int64_t, int64_t);

void sort_positions(const kernel_call&, const int64_t* keys, int64_t* sorted_keys, int64_t* pos, int64_t n) {
  std::iota(pos, pos + n, int64_t{0});
  std::stable_sort(pos, pos + n, [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  for (int64_t i = 0; i < n; ++i) sorted_keys[i] = keys[pos[i]];
}

void register_kernels(kernel_registry& r) {
  r.set_backend(luoshu::device::kind_t::cuda, &the_backend);
  register_families(r);
}

} // namespace luoshu::cuda_emu
