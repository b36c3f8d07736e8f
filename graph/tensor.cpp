#include "graph/tensor.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "graph/device_backend.hpp"
#include "graph/error.hpp"

namespace luoshu {

// --- dtype, shape, device --------------------------------------------------

std::optional<dtype> parse_dtype(std::string_view s) {
  if (s == "f32" || s == "float32" || s == "float") return dtype::f32;
  if (s == "f64" || s == "float64" || s == "double") return dtype::f64;
  if (s == "i32" || s == "int32") return dtype::i32;
  if (s == "i64" || s == "int64") return dtype::i64;
  if (s == "u8" || s == "uint8") return dtype::u8;
  if (s == "f16" || s == "float16") return dtype::f16;
  if (s == "bf16" || s == "bfloat16") return dtype::bf16;
  return std::nullopt;
}

bool shape::known() const {
  for (auto d : dims_)
    if (d < 0) return false;
  return true;
}

int64_t shape::numel() const {
  int64_t n = 1;
  for (auto d : dims_) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

std::string shape::to_string() const {
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ", ";
    s += dims_[i] < 0 ? std::string("?") : std::to_string(dims_[i]);
  }
  return s + "]";
}

int normalize_axis(int64_t axis, int rank, const char* what) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    throw luoshu_error(std::string(what) + ": axis " + std::to_string(axis) +
                       " is out of range for rank " + std::to_string(rank));
  return static_cast<int>(a);
}

std::string device::to_string() const {
  return kind == kind_t::cpu ? "cpu" : "cuda:" + std::to_string(index);
}

device device::parse(std::string_view s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.substr(0, 5) == "cuda:" && s.size() > 5) {
    int idx = 0;
    for (char c : s.substr(5)) {
      if (c < '0' || c > '9')
        throw luoshu_error("bad device '" + std::string(s) + "': expected cpu or cuda:N");
      idx = idx * 10 + (c - '0');
    }
    return cuda(idx);
  }
  throw luoshu_error("bad device '" + std::string(s) + "': expected cpu or cuda:N");
}

// --- storage ----------------------------------------------------------------

storage::storage(size_t bytes) : bytes_(bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!data_) throw std::bad_alloc();
  release_ = [](void* p) { std::free(p); };
}

storage::storage(void* data, size_t bytes, luoshu::device dev, std::function<void(void*)> release,
                 const device_backend* backend)
    : data_(data), bytes_(bytes), device_(dev), release_(std::move(release)), backend_(backend) {}

storage::~storage() {
  if (release_) release_(data_);
}

// --- tensor -----------------------------------------------------------------

namespace {

template <class F>
decltype(auto) visit_numeric(dtype t, F&& f) {
  switch (t) {
    case dtype::f32: return f(float{});
    case dtype::f64: return f(double{});
    case dtype::i32: return f(int32_t{});
    case dtype::i64: return f(int64_t{});
    case dtype::u8: return f(uint8_t{});
    default: break;
  }
  throw luoshu_error(std::string("no arithmetic on dtype ") + name(t) + " yet");
}

} // namespace

tensor::tensor(dtype t, luoshu::shape s) : dtype_(t), shape_(std::move(s)) {
  if (!shape_.known())
    throw luoshu_error("cannot allocate a tensor of unknown shape " + shape_.to_string());
  storage_ = std::make_shared<luoshu::storage>(nbytes());
}

tensor::tensor(std::shared_ptr<luoshu::storage> st, size_t offset, dtype t, luoshu::shape s)
    : storage_(std::move(st)), offset_(offset), dtype_(t), shape_(std::move(s)) {
  if (!shape_.known())
    throw luoshu_error("tensor view of unknown shape " + shape_.to_string());
  if (!storage_ || offset_ + nbytes() > storage_->bytes())
    throw luoshu_error("tensor view " + shape_.to_string() + " " + name(t) +
                       " does not fit its storage");
}

tensor tensor::zeros(dtype t, luoshu::shape s) {
  tensor r(t, std::move(s));
  std::memset(r.raw(), 0, r.nbytes());
  return r;
}

luoshu::device tensor::device() const {
  return storage_ ? storage_->device() : luoshu::device::cpu();
}

void* tensor::raw() const {
  return storage_ ? static_cast<char*>(storage_->data()) + offset_ : nullptr;
}

void tensor::check_type(dtype t) const {
  if (t != dtype_)
    throw luoshu_error(std::string("tensor holds ") + name(dtype_) + ", accessed as " + name(t));
}

void tensor::check_host() const {
  if (!on_host())
    throw luoshu_error("tensor " + shape_.to_string() + " lives on " + device().to_string() +
                       ": copy it to the host with to_host() before reading its elements");
}

const device_backend& tensor::backend_of() const {
  if (!storage_->backend())
    throw luoshu_error("tensor " + shape_.to_string() + " on " + device().to_string() +
                       " has no device backend to copy it with");
  return *storage_->backend();
}

tensor tensor::to_host() const {
  if (on_host()) return *this;
  tensor r(dtype_, shape_);
  if (nbytes() > 0) backend_of().copy_to_host(r.raw(), raw(), nbytes(), device().index);
  return r;
}

tensor tensor::to(device_stream& s) const {
  if (!on_host() && device() == s.device()) return *this;
  const tensor src = to_host();
  tensor r(s.allocate(src.nbytes()), 0, dtype_, shape_);
  if (src.nbytes() > 0) s.upload(r.raw(), src.raw(), src.nbytes());
  return r;
}

namespace {
/// A device copy of host tensor `h` on the device (and backend) of `like`.
tensor upload_like(const tensor& h, const tensor& like) {
  const device_backend& b = like.backend_of();
  tensor r(b.allocate(h.nbytes(), like.device().index), 0, h.type(), h.shape());
  if (h.nbytes() > 0) b.copy_from_host(r.raw(), h.raw(), h.nbytes(), like.device().index);
  return r;
}
} // namespace

void tensor::check_numel(int64_t n) const {
  if (n != numel())
    throw luoshu_error("tensor of shape " + shape_.to_string() + " needs " +
                       std::to_string(numel()) + " values, got " + std::to_string(n));
}

std::vector<double> tensor::to_doubles() const {
  if (!on_host()) return to_host().to_doubles();
  std::vector<double> out(static_cast<size_t>(numel()));
  visit_numeric(dtype_, [&](auto z) {
    using T = decltype(z);
    const T* p = static_cast<const T*>(raw());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

double tensor::item(int64_t i) const {
  if (i < 0 || i >= numel())
    throw luoshu_error("item " + std::to_string(i) + " out of range for shape " + shape_.to_string());
  if (!on_host()) return to_host().item(i);
  return visit_numeric(dtype_, [&](auto z) {
    using T = decltype(z);
    return static_cast<double>(static_cast<const T*>(raw())[i]);
  });
}

tensor tensor::reshaped(luoshu::shape s) const {
  if (s.numel() != numel())
    throw luoshu_error("cannot reshape " + shape_.to_string() + " to " + s.to_string());
  return tensor(storage_, offset_, dtype_, std::move(s));
}

tensor tensor::clone() const {
  if (!on_host()) return upload_like(to_host(), *this);
  tensor r(dtype_, shape_);
  std::memcpy(r.raw(), raw(), nbytes());
  return r;
}

tensor tensor::cast(dtype t) const {
  if (t == dtype_) return clone();
  if (!on_host()) return upload_like(to_host().cast(t), *this);
  tensor r(t, shape_);
  visit_numeric(dtype_, [&](auto zi) {
    using I = decltype(zi);
    visit_numeric(t, [&](auto zo) {
      using O = decltype(zo);
      const I* in = static_cast<const I*>(raw());
      O* out = static_cast<O*>(r.raw());
      // n hoisted: numel() is out of line, and the stores to `out` could
      // alias the shape for all the compiler knows (no vectorising then).
      const int64_t n = numel();
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<O>(in[i]);
    });
  });
  return r;
}

void tensor::fill(double v) const {
  if (!on_host()) {
    tensor h(dtype_, shape_);
    h.fill(v);
    if (nbytes() > 0) backend_of().copy_from_host(raw(), h.raw(), nbytes(), device().index);
    return;
  }
  visit_numeric(dtype_, [&](auto z) {
    using T = decltype(z);
    T* p = static_cast<T*>(raw());
    std::fill(p, p + numel(), static_cast<T>(v));
  });
}

namespace {

void print_elem(std::ostringstream& os, dtype t, const void* base, int64_t i) {
  switch (t) {
    case dtype::f32: os << static_cast<const float*>(base)[i]; break;
    case dtype::f64: os << static_cast<const double*>(base)[i]; break;
    case dtype::i32: os << static_cast<const int32_t*>(base)[i]; break;
    case dtype::i64: os << static_cast<const int64_t*>(base)[i]; break;
    case dtype::u8: os << static_cast<int>(static_cast<const uint8_t*>(base)[i]); break;
    default: os << "?"; break;
  }
}

void print_rec(std::ostringstream& os, const tensor& t, int dim, int64_t offset, int64_t edge,
               int indent) {
  const auto& s = t.shape();
  if (dim == s.rank()) {
    print_elem(os, t.type(), t.raw(), offset);
    return;
  }
  int64_t n = s[dim];
  int64_t stride = 1;
  for (int d = dim + 1; d < s.rank(); ++d) stride *= s[d];
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge && i == edge) {
      os << (dim + 1 == s.rank() ? "..., " : "...,\n" + std::string(static_cast<size_t>(indent + 1), ' '));
      i = n - edge - 1;
      continue;
    }
    print_rec(os, t, dim + 1, offset + i * stride, edge, indent + 1);
    if (i + 1 < n) os << (dim + 1 == s.rank() ? ", " : ",\n" + std::string(static_cast<size_t>(indent + 1), ' '));
  }
  os << "]";
}

} // namespace

std::string tensor::to_string(int64_t edge_items) const {
  std::ostringstream os;
  os << "tensor(" << name(dtype_) << ", " << shape_.to_string() << ", " << device().to_string() << ")";
  if (!defined()) return os.str() + " <undefined>";
  if (dtype_ == dtype::f16 || dtype_ == dtype::bf16) return os.str();
  os << "\n";
  os.precision(6);
  print_rec(os, to_host(), 0, 0, edge_items, 0);
  return os.str();
}

} // namespace luoshu
