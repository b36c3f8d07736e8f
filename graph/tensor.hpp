#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "graph/device.hpp"
#include "graph/dtype.hpp"
#include "graph/shape.hpp"

namespace luoshu {

class device_backend;
class device_stream;

/// A block of bytes on one device. Resource type: not copyable; tensors
/// share it by reference (std::shared_ptr).
class storage {
public:
  /// Allocates `bytes` of 64-byte aligned host memory.
  explicit storage(size_t bytes);
  /// Adopts memory owned elsewhere (a device allocator, a pool); `release`
  /// is called with `data` when the last reference goes.
  storage(void* data, size_t bytes, device dev, std::function<void(void*)> release,
          const device_backend* backend = nullptr);
  ~storage();
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  luoshu::device device() const { return device_; }
  /// The backend that owns device memory (null for host memory).
  const device_backend* backend() const { return backend_; }

private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  luoshu::device device_;
  std::function<void(void*)> release_;
  const device_backend* backend_ = nullptr;
};

/// A dense, contiguous, row-major n-d array. Copying a tensor copies the
/// reference, not the bytes (use clone() for that).
class tensor {
public:
  tensor() = default;
  /// Allocates an uninitialised tensor on the host.
  tensor(dtype t, luoshu::shape s);
  /// A view of `bytes` at `offset` of `st`; the shape must fit.
  tensor(std::shared_ptr<luoshu::storage> st, size_t offset, dtype t, luoshu::shape s);

  static tensor zeros(dtype t, luoshu::shape s);
  /// A tensor holding `values` with shape `s` (numel must match).
  template <class T>
  static tensor from(luoshu::shape s, const std::vector<T>& values);
  /// A 0-d tensor.
  template <class T>
  static tensor scalar(T v) { return from<T>(luoshu::shape{}, {v}); }

  bool defined() const { return static_cast<bool>(storage_); }
  dtype type() const { return dtype_; }
  const luoshu::shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * size_of(dtype_); }
  luoshu::device device() const;
  const std::shared_ptr<luoshu::storage>& storage() const { return storage_; }
  size_t offset() const { return offset_; }

  /// The first byte, in the memory of the tensor's device.
  void* raw() const;
  bool on_host() const { return !storage_ || storage_->device().kind == device::kind_t::cpu; }
  /// Typed element pointer into host memory; throws luoshu_error on a dtype
  /// mismatch or for a tensor on a device (use to_host() first).
  template <class T>
  T* data() const {
    check_type(dtype_of<T>);
    check_host();
    return static_cast<T*>(raw());
  }
  /// Typed element pointer wherever the tensor lives (for device kernels).
  template <class T>
  T* device_data() const {
    check_type(dtype_of<T>);
    return static_cast<T*>(raw());
  }
  template <class T>
  std::span<T> span() const {
    return {data<T>(), static_cast<size_t>(numel())};
  }
  /// Copies the elements out, converted to double (any numeric dtype).
  std::vector<double> to_doubles() const;
  /// Element i (flat index) converted to double.
  double item(int64_t i = 0) const;

  /// Same bytes, another shape with the same element count.
  tensor reshaped(luoshu::shape s) const;
  /// The backend that owns a device tensor's memory; throws if none.
  const device_backend& backend_of() const;
  /// A deep copy (on the same device).
  tensor clone() const;
  /// This tensor if it is on the host, else a host copy (synchronous).
  tensor to_host() const;
  /// A copy on the stream's device, queued on the stream (the host bytes are
  /// staged at once). A tensor already on that device is returned as is.
  tensor to(device_stream& s) const;
  /// A deep copy converted to another dtype.
  tensor cast(dtype t) const;
  /// Fills with a value (converted to the dtype).
  void fill(double v) const;

  /// "tensor(f32, [2, 3], cpu)" followed by the values, nested like NumPy;
  /// long dimensions are elided with "...".
  std::string to_string(int64_t edge_items = 3) const;

private:
  void check_type(dtype t) const;
  void check_host() const;
  void check_numel(int64_t n) const;

  std::shared_ptr<luoshu::storage> storage_;
  size_t offset_ = 0;
  dtype dtype_ = dtype::f32;
  luoshu::shape shape_;
};

template <class T>
tensor tensor::from(luoshu::shape s, const std::vector<T>& values) {
  tensor t(dtype_of<T>, std::move(s));
  t.check_numel(static_cast<int64_t>(values.size()));
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

} // namespace luoshu
