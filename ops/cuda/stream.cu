// The CUDA backend: streams with their own caching allocator, pinned
// staging buffers, cuBLAS handle and device-side error record; GEMM through
// cuBLAS; registration of every CUDA kernel.

#include <cub/device/device_radix_sort.cuh>

#include <map>
#include <mutex>
#include <vector>

#include "ops/cuda/gpu.cuh"
#include "ops/cuda/runtime.hpp"

namespace luoshu::cuda {

namespace {

[[noreturn]] void fail(const std::string& what, cudaError_t e) {
  throw luoshu_error(what + ": " + cudaGetErrorString(e));
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(what, e);
}

void check_blas(cublasStatus_t s, const std::string& what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw luoshu_error(what + ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}

std::string mib(size_t b) { return std::to_string(b / (1024 * 1024)) + " MiB"; }

/// Device blocks by size. Blocks come back when their storage's last
/// reference goes and are handed out again for requests up to twice smaller
/// (so one huge block never serves a tiny request). Shared by a stream and
/// every storage it handed out, so it outlives whichever goes last.
class block_cache {
public:
  explicit block_cache(int dev) : dev_(dev) {}
  ~block_cache() { trim(); }

  void* get(size_t bytes) {
    bytes = round(bytes);
    std::lock_guard lock(mu_);
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first <= 2 * bytes) {
      void* p = it->second;
      free_.erase(it);
      return p;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) { // give cached blocks back to the driver, then retry once
      cudaGetLastError();
      trim_locked();
      e = cudaMalloc(&p, bytes);
      if (e != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        throw luoshu_error("out of memory on cuda:" + std::to_string(dev_) + " allocating " + mib(bytes) +
                           " (" + mib(free_b) + " of " + mib(total_b) + " free)");
      }
    }
    held_ += bytes;
    sizes_[p] = bytes;
    return p;
  }

  void put(void* p) {
    std::lock_guard lock(mu_);
    free_.emplace(sizes_.at(p), p);
  }

  size_t held() const {
    std::lock_guard lock(mu_);
    return held_;
  }

  void trim() {
    std::lock_guard lock(mu_);
    trim_locked();
  }

private:
  static size_t round(size_t b) {
    if (b == 0) b = 1;
    constexpr size_t small = 512, large = size_t{2} << 20;
    return b < (size_t{1} << 20) ? (b + small - 1) / small * small : (b + large - 1) / large * large;
  }
  void trim_locked() {
    for (auto& [bytes, p] : free_) {
      cudaFree(p);
      held_ -= bytes;
      sizes_.erase(p);
    }
    free_.clear();
  }

  int dev_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::map<void*, size_t> sizes_;
  size_t held_ = 0;
};

/// Pinned host buffers for staging copies; one pool per stream, buffers go
/// back at synchronize().
class pinned_pool {
public:
  ~pinned_pool() {
    for (auto& [bytes, p] : free_) cudaFreeHost(p);
    for (auto& [p, bytes] : busy_) cudaFreeHost(p);
  }
  /// A pinned buffer of at least `bytes`, or null if the pool is at its cap
  /// (then the caller copies from pageable memory).
  void* get(size_t bytes) {
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first <= 4 * bytes + 4096) {
      void* p = it->second;
      busy_.emplace_back(p, it->first);
      free_.erase(it);
      return p;
    }
    if (total_ + bytes > cap) return nullptr;
    void* p = nullptr;
    if (cudaMallocHost(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    total_ += bytes;
    busy_.emplace_back(p, bytes);
    return p;
  }
  void release_all() {
    for (auto& [p, bytes] : busy_) free_.emplace(bytes, p);
    busy_.clear();
  }

private:
  static constexpr size_t cap = size_t{256} << 20;
  std::multimap<size_t, void*> free_;
  std::vector<std::pair<void*, size_t>> busy_;
  size_t total_ = 0;
};

class cuda_backend;

class cuda_stream final : public device_stream {
public:
  cuda_stream(const device_backend* b, int dev) : backend_(b), cache_(std::make_shared<block_cache>(dev)) {
    st_.device = dev;
    check(cudaSetDevice(dev), ("selecting cuda:" + std::to_string(dev)).c_str());
    check(cudaStreamCreateWithFlags(&st_.stream, cudaStreamNonBlocking), "creating a CUDA stream");
    check_blas(cublasCreate(&st_.blas), "creating a cuBLAS handle");
    check_blas(cublasSetStream(st_.blas, st_.stream), "binding cuBLAS to the stream");
    check(cudaMalloc(&st_.errors, sizeof(device_error)), "allocating the error record");
    check(cudaMemsetAsync(st_.errors, 0, sizeof(device_error), st_.stream), "clearing the error record");
    check(cudaMallocHost(&host_error_, sizeof(device_error)), "allocating the pinned error record");
  }
  ~cuda_stream() override {
    cudaSetDevice(st_.device);
    cudaStreamSynchronize(st_.stream);
    cublasDestroy(st_.blas);
    cudaFree(st_.errors);
    cudaFreeHost(host_error_);
    cudaStreamDestroy(st_.stream);
  }

  luoshu::device device() const override { return luoshu::device::cuda(st_.device); }

  std::shared_ptr<storage> allocate(size_t bytes) override {
    cudaSetDevice(st_.device);
    void* p = cache_->get(bytes);
    auto cache = cache_;
    return std::make_shared<storage>(p, bytes, device(), [cache](void* q) { cache->put(q); }, backend_);
  }

  void upload(void* dst, const void* src, size_t bytes) override {
    cudaSetDevice(st_.device);
    if (void* pin = pinned_.get(bytes)) {
      std::memcpy(pin, src, bytes);
      check(cudaMemcpyAsync(dst, pin, bytes, cudaMemcpyHostToDevice, st_.stream), "copying to the device");
    } else { // pageable: returns once the source is staged by the driver
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st_.stream), "copying to the device");
    }
  }

  void download(void* dst, const void* src, size_t bytes) override {
    cudaSetDevice(st_.device);
    if (void* pin = pinned_.get(bytes)) {
      check(cudaMemcpyAsync(pin, src, bytes, cudaMemcpyDeviceToHost, st_.stream), "copying to the host");
      pending_.push_back({dst, pin, bytes});
    } else {
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st_.stream), "copying to the host");
    }
  }

  void copy(void* dst, const void* src, size_t bytes) override {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st_.stream), "copying on the device");
  }

  void synchronize() override {
    cudaSetDevice(st_.device);
    check(cudaMemcpyAsync(host_error_, st_.errors, sizeof(device_error), cudaMemcpyDeviceToHost, st_.stream),
          "reading the error record");
    cudaError_t e = cudaStreamSynchronize(st_.stream);
    if (e != cudaSuccess) {
      std::string where = tags_.message(device_error{-1, st_.tag, 0, 0});
      tags_.clear();
      pending_.clear();
      fail("CUDA error in the work queued up to " + where.substr(0, where.find(':')), e);
    }
    for (auto& p : pending_) std::memcpy(p.dst, p.pin, p.bytes);
    pending_.clear();
    pinned_.release_all();
    device_error rec = *host_error_;
    std::string msg = rec.code != no_error ? tags_.message(rec) : std::string();
    tags_.clear();
    st_.tag = 0;
    if (rec.code != no_error) {
      check(cudaMemsetAsync(st_.errors, 0, sizeof(device_error), st_.stream), "clearing the error record");
      check(cudaStreamSynchronize(st_.stream), "clearing the error record");
      throw luoshu_error(msg);
    }
  }

  void set_current_node(const std::string& node_name, const char* op_name) override {
    cudaSetDevice(st_.device);
    cudaGetLastError(); // a failed call elsewhere on this thread must not be blamed on this node
    st_.tag = tags_.next(node_name, op_name);
  }

  size_t cached_bytes() const override { return cache_->held(); }
  void* native() override { return &st_; }

private:
  struct pending_copy {
    void* dst;
    void* pin;
    size_t bytes;
  };
  const device_backend* backend_;
  std::shared_ptr<block_cache> cache_;
  stream_state st_;
  device_error* host_error_ = nullptr;
  pinned_pool pinned_;
  std::vector<pending_copy> pending_;
  launch_tags tags_;
};

class cuda_backend final : public device_backend {
public:
  std::string name() const override { return "cuda"; }
  int device_count() const override { return cuda::device_count(); }

  std::unique_ptr<device_stream> make_stream(int index) override {
    int n = device_count();
    if (index < 0 || index >= n)
      throw luoshu_error("cuda:" + std::to_string(index) + " does not exist (" +
                         (n == 0 ? std::string("this machine has no usable CUDA device")
                                 : std::to_string(n) + " device(s) visible") +
                         ")");
    return std::make_unique<cuda_stream>(this, index);
  }

  void copy_to_host(void* dst, const void* src, size_t bytes, int index) const override {
    check(cudaSetDevice(index), "selecting the device");
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copying to the host");
  }
  void copy_from_host(void* dst, const void* src, size_t bytes, int index) const override {
    check(cudaSetDevice(index), "selecting the device");
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copying to the device");
  }
  std::shared_ptr<storage> allocate(size_t bytes, int index) const override {
    check(cudaSetDevice(index), "selecting the device");
    void* p = nullptr;
    check(cudaMalloc(&p, bytes == 0 ? 1 : bytes), ("allocating " + mib(bytes) + " on the device").c_str());
    return std::make_shared<storage>(p, bytes, luoshu::device::cuda(index), [](void* q) { cudaFree(q); }, this);
  }
};

cuda_backend the_backend;

template <class T>
struct blas;
template <>
struct blas<float> {
  static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const float* al, const float* a, int lda, long long sa, const float* b, int ldb,
                             long long sb, const float* be, float* c, int ldc, long long sc, int batch) {
    return batch == 1 ? cublasSgemm(h, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc)
                      : cublasSgemmStridedBatched(h, ta, tb, m, n, k, al, a, lda, sa, b, ldb, sb, be, c, ldc, sc,
                                                  batch);
  }
};
template <>
struct blas<double> {
  static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const double* al, const double* a, int lda, long long sa, const double* b, int ldb,
                             long long sb, const double* be, double* c, int ldc, long long sc, int batch) {
    return batch == 1 ? cublasDgemm(h, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc)
                      : cublasDgemmStridedBatched(h, ta, tb, m, n, k, al, a, lda, sa, b, ldb, sb, be, c, ldc, sc,
                                                  batch);
  }
};

} // namespace

template <class T>
void gemm(const kernel_call& c, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, T* out, int64_t ldc, T beta, int64_t batch, int64_t stride_a, int64_t stride_b,
          int64_t stride_c) {
  if (m == 0 || n == 0 || batch == 0) return;
  auto& st = state(c);
  constexpr int64_t int_max = 2147483647;
  if (m > int_max || n > int_max || k > int_max || lda > int_max || ldb > int_max || ldc > int_max ||
      batch > int_max)
    throw luoshu_error(std::string("op '") + name(c.n.op) + "': a matrix dimension exceeds cuBLAS's 32-bit limit");
  if (k == 0) { // an empty sum: out = beta * out; cuBLAS is not asked
    T zero{};
    if (beta == zero)
      for (int64_t i = 0; i < batch; ++i)
        check(cudaMemset2DAsync(out + i * stride_c, static_cast<size_t>(ldc) * sizeof(T), 0,
                                static_cast<size_t>(n) * sizeof(T), static_cast<size_t>(m), st.stream),
              "clearing an empty product");
    return;
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  const T one = T(1);
  check_blas(blas<T>::gemm(st.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                           static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one, b,
                           static_cast<int>(ldb), stride_b, a, static_cast<int>(lda), stride_a, &beta, out,
                           static_cast<int>(ldc), stride_c, static_cast<int>(batch)),
             std::string("op '") + name(c.n.op) + "' (node '" + c.n.name + "'): GEMM");
}

template void gemm<float>(const kernel_call&, bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                          const float*, int64_t, float*, int64_t, float, int64_t, int64_t, int64_t, int64_t);
template void gemm<double>(const kernel_call&, bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                           const double*, int64_t, double*, int64_t, double, int64_t, int64_t, int64_t, int64_t);

void sort_positions(const kernel_call& c, const int64_t* keys, int64_t* sorted_keys, int64_t* pos, int64_t n) {
  if (n <= 0) return;
  if (n > 2147483647)
    throw luoshu_error(std::string("op '") + name(c.n.op) + "': too many keys to sort on the device");
  tensor order = scratch(c, dtype::i64, n);
  int64_t* o = ptr<int64_t>(order);
  parallel_for(c, n, [=] __host__ __device__(int64_t i) { o[i] = i; });
  auto& st = state(c);
  size_t temp = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, temp, keys, sorted_keys, o, pos, static_cast<int>(n), 0, 64,
                                        st.stream),
        "sizing the key sort");
  tensor tmp = scratch(c, dtype::u8, static_cast<int64_t>(temp));
  check(cub::DeviceRadixSort::SortPairs(tmp.raw(), temp, keys, sorted_keys, o, pos, static_cast<int>(n), 0, 64,
                                        st.stream),
        "sorting keys");
}

void register_kernels(kernel_registry& r) {
  r.set_backend(luoshu::device::kind_t::cuda, &the_backend);
  register_families(r);
}

} // namespace luoshu::cuda
