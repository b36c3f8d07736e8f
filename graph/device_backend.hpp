#pragma once
// The device backend interface: what the executor needs from an
// accelerator, without naming CUDA. ops/cuda implements it with CUDA
// streams, a caching allocator, pinned staging buffers and cuBLAS; the same
// kernels can also be built against a host emulation of it (tests only).

#include <cstddef>
#include <memory>
#include <string>

#include "graph/device.hpp"

namespace luoshu {

class storage;

/// One ordered queue of device work (a CUDA stream) with its own caching
/// allocator and library handles. One owner at a time (an executor, a
/// compute actor); not thread-safe. Work on different streams may overlap.
class device_stream {
public:
  virtual ~device_stream() = default;
  virtual luoshu::device device() const = 0;
  /// Device memory from this stream's cache. The block returns to the cache
  /// when the last reference goes; a later allocation that reuses it is
  /// ordered after all work already queued on this stream.
  virtual std::shared_ptr<storage> allocate(size_t bytes) = 0;
  /// Queues a host-to-device copy. The host bytes are staged (pinned) before
  /// this returns, so the caller may reuse them at once.
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  /// Queues a device-to-host copy; `host_dst` is written by synchronize().
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  /// Queues a device-to-device copy.
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  /// Waits for this stream's work only (never the whole device), completes
  /// pending downloads and reports the first device-side error (an index out
  /// of range in a kernel, a CUDA fault) as a luoshu_error.
  virtual void synchronize() = 0;
  /// Tells device-side checks which node the next kernels belong to, so an
  /// error found at synchronize() can name it.
  virtual void set_current_node(const std::string& node_name, const char* op_name) = 0;
  /// Bytes held by the cache (in use or free).
  virtual size_t cached_bytes() const = 0;
  /// The backend's own context (stream, library handles) for its kernels.
  virtual void* native() = 0;
};

/// A kind of device and its global operations.
class device_backend {
public:
  virtual ~device_backend() = default;
  /// "cuda" or "cuda (host emulation)".
  virtual std::string name() const = 0;
  virtual int device_count() const = 0;
  /// A new stream on device `index`; throws luoshu_error naming the problem
  /// (no such device, out of memory).
  virtual std::unique_ptr<device_stream> make_stream(int index) = 0;
  /// Synchronous copies for tensors moved outside any stream (checkpoints,
  /// printing, tensor::to_host()).
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes, int index) const = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes, int index) const = 0;
  /// Synchronous device memory for `bytes` outside any stream's cache.
  virtual std::shared_ptr<storage> allocate(size_t bytes, int index) const = 0;
};

} // namespace luoshu
