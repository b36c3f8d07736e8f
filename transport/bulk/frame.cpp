#include "transport/bulk/frame.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "graph/tensor.hpp"

namespace luoshu::transport::bulk {

static_assert(std::endian::native == std::endian::little,
              "the bulk lane writes host-order integers and tensor bytes: little-endian hosts only");

namespace {

template <class T>
void put(char* out, size_t at, T v) {
  std::memcpy(out + at, &v, sizeof(T));
}

template <class T>
T get(const char* in, size_t at) {
  T v;
  std::memcpy(&v, in + at, sizeof(T));
  return v;
}

// Field offsets inside the 32-byte header.
constexpr size_t at_magic = 0, at_version = 4, at_kind = 5, at_flags = 6, at_meta = 8,
                 at_reserved = 12, at_payload = 16, at_seq = 24;
static_assert(at_seq + 8 == header_bytes);

error header_error(const std::string& detail) { return error{"bulk lane: bad frame header: " + detail}; }
error meta_error(const std::string& detail) { return error{"bulk lane: bad tensor meta: " + detail}; }

} // namespace

void write_header(const frame_header& h, char* out) {
  put<uint32_t>(out, at_magic, frame_magic);
  put<uint8_t>(out, at_version, frame_version);
  put<uint8_t>(out, at_kind, static_cast<uint8_t>(h.kind));
  put<uint16_t>(out, at_flags, 0);
  put<uint32_t>(out, at_meta, h.meta_bytes);
  put<uint32_t>(out, at_reserved, 0);
  put<uint64_t>(out, at_payload, h.payload_bytes);
  put<uint64_t>(out, at_seq, h.seq);
}

void set_header_seq(char* header, uint64_t seq) { put<uint64_t>(header, at_seq, seq); }

result<frame_header> read_header(std::span<const char> bytes, const frame_limits& limits) {
  if (bytes.size() != header_bytes)
    return header_error("size " + std::to_string(bytes.size()) + ", expected " + std::to_string(header_bytes));
  const char* p = bytes.data();
  if (auto magic = get<uint32_t>(p, at_magic); magic != frame_magic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    return header_error(std::string("magic ") + hex + " is not a bulk lane frame (0x4b42534c)");
  }
  if (auto v = get<uint8_t>(p, at_version); v != frame_version)
    return header_error("version " + std::to_string(v) + " (this build speaks " +
                        std::to_string(frame_version) + ")");
  auto kind = get<uint8_t>(p, at_kind);
  if (kind != static_cast<uint8_t>(frame_kind::tensor) && kind != static_cast<uint8_t>(frame_kind::message))
    return header_error("unknown frame kind " + std::to_string(kind));
  if (get<uint16_t>(p, at_flags) != 0 || get<uint32_t>(p, at_reserved) != 0)
    return header_error("reserved bits set");
  frame_header h;
  h.kind = static_cast<frame_kind>(kind);
  h.meta_bytes = get<uint32_t>(p, at_meta);
  h.payload_bytes = get<uint64_t>(p, at_payload);
  h.seq = get<uint64_t>(p, at_seq);
  if (h.meta_bytes < 8 || h.meta_bytes % 8 != 0 || h.meta_bytes > limits.max_meta_bytes)
    return header_error("meta size " + std::to_string(h.meta_bytes) +
                        " (allowed: a multiple of 8 from 8 to " + std::to_string(limits.max_meta_bytes) + ")");
  if (h.payload_bytes > limits.max_payload_bytes)
    return header_error("payload size " + std::to_string(h.payload_bytes) + " exceeds the limit of " +
                        std::to_string(limits.max_payload_bytes) + " bytes");
  return h;
}

wire_bytes encode_meta(const tensor_message& m) {
  tensor_message d;
  d.name = m.name;
  d.step = m.step;
  if (m.value.defined()) {
    const auto& dims = m.value.shape().dims();
    d.value = tensor(dtype::i64, shape{static_cast<int64_t>(dims.size() + 1)});
    auto* out = d.value.data<int64_t>();
    out[0] = static_cast<int64_t>(m.value.type());
    std::copy(dims.begin(), dims.end(), out + 1);
  }
  return encode(d);
}

result<tensor_meta> decode_meta(std::span<const char> bytes, uint64_t payload_bytes) {
  auto m = decode_tensor_message(bytes);
  if (!m) return meta_error(m.err().message);
  tensor_meta out;
  out.name = std::move(m->name);
  out.step = m->step;
  const tensor& d = m->value;
  if (!d.defined()) {
    if (payload_bytes != 0)
      return meta_error("an undefined tensor with " + std::to_string(payload_bytes) + " payload bytes");
    return out;
  }
  if (d.type() != dtype::i64 || d.rank() != 1 || d.numel() < 1 || d.numel() > max_rank + 1)
    return meta_error("descriptor " + std::string(name(d.type())) + d.shape().to_string() +
                      " (expected i64[1.." + std::to_string(max_rank + 1) + "])");
  const int64_t* v = d.data<int64_t>();
  if (v[0] < 0 || v[0] >= dtype_count) return meta_error("unknown dtype code " + std::to_string(v[0]));
  out.defined = true;
  out.type = static_cast<dtype>(v[0]);
  std::vector<int64_t> dims(v + 1, v + d.numel());
  // As the codec does: every partial product (zeros counted as ones) must fit
  // an int64, so kernels can compute strides; numel is the true product.
  int64_t bound = 1;
  uint64_t numel = 1;
  for (auto x : dims) {
    if (x < 0) return meta_error("negative dim " + std::to_string(x));
    if (__builtin_mul_overflow(bound, std::max<int64_t>(x, 1), &bound))
      return meta_error("shape " + shape(dims).to_string() + " overflows");
    numel *= static_cast<uint64_t>(x);
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, uint64_t{size_of(out.type)}, &nbytes))
    return meta_error("shape " + shape(dims).to_string() + " overflows");
  if (nbytes != payload_bytes)
    return meta_error(std::string(name(out.type)) + shape(dims).to_string() + " needs " + std::to_string(nbytes) +
                      " bytes, the header announces " + std::to_string(payload_bytes));
  out.dims = shape(std::move(dims));
  out.payload_bytes = nbytes;
  return out;
}

wire_bytes encode_prefix(const tensor_message& m, uint64_t seq, size_t extra) {
  wire_bytes meta = encode_meta(m);
  if (meta.size() > std::numeric_limits<uint32_t>::max())
    throw luoshu_error("bulk lane: tensor meta of " + std::to_string(meta.size()) + " bytes is too large");
  wire_bytes out;
  out.reserve(header_bytes + meta.size() + extra);
  out.resize(header_bytes);
  frame_header h;
  h.meta_bytes = static_cast<uint32_t>(meta.size());
  h.payload_bytes = m.value.defined() ? m.value.nbytes() : 0;
  h.seq = seq;
  write_header(h, out.data());
  out.insert(out.end(), meta.begin(), meta.end());
  return out;
}

wire_bytes encode_message_prefix(std::span<const char> meta, uint64_t payload_bytes, uint64_t seq, size_t extra) {
  if (meta.size() % 8 != 0 || meta.size() < 8 || meta.size() > std::numeric_limits<uint32_t>::max())
    throw luoshu_error("bulk lane: a message meta of " + std::to_string(meta.size()) +
                       " bytes (want a multiple of 8, at least 8)");
  wire_bytes out;
  out.reserve(header_bytes + meta.size() + extra);
  out.resize(header_bytes);
  frame_header h;
  h.kind = frame_kind::message;
  h.meta_bytes = static_cast<uint32_t>(meta.size());
  h.payload_bytes = payload_bytes;
  h.seq = seq;
  write_header(h, out.data());
  out.insert(out.end(), meta.begin(), meta.end());
  return out;
}

} // namespace luoshu::transport::bulk
