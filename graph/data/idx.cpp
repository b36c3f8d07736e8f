#include "graph/data/idx.hpp"

#include "graph/data/input.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace luoshu::data {

namespace {

struct idx_type {
  uint8_t code;
  size_t file_bytes;
  dtype type;
  const char* name;
};

constexpr idx_type idx_types[] = {
    {0x08, 1, dtype::u8, "u8"},   {0x09, 1, dtype::i32, "i8"},  {0x0B, 2, dtype::i32, "i16"},
    {0x0C, 4, dtype::i32, "i32"}, {0x0D, 4, dtype::f32, "f32"}, {0x0E, 8, dtype::f64, "f64"},
};

std::string hex_byte(unsigned v) {
  const char* digits = "0123456789abcdef";
  return {'0', 'x', digits[(v >> 4) & 15], digits[v & 15]};
}

uint32_t load_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

uint64_t load_be64(const unsigned char* p) {
  return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}

/// Decodes `n` big-endian elements of `t` from `in` into `out`'s storage.
void decode(const idx_type& t, const unsigned char* in, size_t n, const tensor& out) {
  switch (t.code) {
    case 0x08:
      if (n) std::memcpy(out.data<uint8_t>(), in, n);
      break;
    case 0x09: {
      int32_t* o = out.data<int32_t>();
      for (size_t i = 0; i < n; ++i) o[i] = static_cast<int8_t>(in[i]);
      break;
    }
    case 0x0B: {
      int32_t* o = out.data<int32_t>();
      for (size_t i = 0; i < n; ++i)
        o[i] = static_cast<int16_t>(static_cast<uint16_t>((in[2 * i] << 8) | in[2 * i + 1]));
      break;
    }
    case 0x0C: {
      int32_t* o = out.data<int32_t>();
      for (size_t i = 0; i < n; ++i) o[i] = std::bit_cast<int32_t>(load_be32(in + 4 * i));
      break;
    }
    case 0x0D: {
      float* o = out.data<float>();
      for (size_t i = 0; i < n; ++i) o[i] = std::bit_cast<float>(load_be32(in + 4 * i));
      break;
    }
    case 0x0E: {
      double* o = out.data<double>();
      for (size_t i = 0; i < n; ++i) o[i] = std::bit_cast<double>(load_be64(in + 8 * i));
      break;
    }
    default:
      break;
  }
}

std::string dims_string(const std::vector<uint32_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

} // namespace

result<tensor> read_idx(const std::string& path) {
  auto opened = input::open(path);
  if (!opened) return opened.err();
  input& in = *opened;

  unsigned char head[4];
  if (in.read(head, 4) < 4) return in.short_read("header", 4, 0);
  if (head[0] != 0 || head[1] != 0)
    return in.fail("bad magic at " + in.where(0) + ": expected 0x00 0x00, found " +
                   hex_byte(head[0]) + " " + hex_byte(head[1]) + " (not an IDX file)");
  const idx_type* type = nullptr;
  for (const auto& t : idx_types)
    if (t.code == head[2]) type = &t;
  if (!type)
    return in.fail("unknown type code " + hex_byte(head[2]) + " at " + in.where(2) +
                   " (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)");
  unsigned rank = head[3];
  if (rank == 0) return in.fail("rank 0 at " + in.where(3) + ": an IDX file needs a dimension");

  std::vector<unsigned char> dim_bytes(size_t{rank} * 4);
  if (in.read(dim_bytes.data(), dim_bytes.size()) < dim_bytes.size())
    return in.short_read("header dimensions", dim_bytes.size(), 4);
  std::vector<uint32_t> dims(rank);
  for (unsigned i = 0; i < rank; ++i) dims[i] = load_be32(dim_bytes.data() + 4 * i);

  // Element count, checked against the cap before anything is allocated.
  uint64_t numel = 1;
  bool has_zero = false, too_big = false;
  for (uint32_t d : dims) {
    if (d == 0) has_zero = true;
    else if (!too_big && numel > idx_max_data_bytes / d) too_big = true;
    else if (!too_big) numel *= d;
  }
  if (has_zero) numel = 0, too_big = false;
  if (too_big || numel * type->file_bytes > idx_max_data_bytes)
    return in.fail("dimensions " + dims_string(dims) + " of " + type->name + " at " +
                   in.where(4) + " need more than " + std::to_string(idx_max_data_bytes) +
                   " bytes of data, the IDX reader's limit");
  const uint64_t data_bytes = numel * type->file_bytes;
  const uint64_t data_start = in.offset();

  std::vector<unsigned char> buf;
  if (auto size = in.size()) {
    // Raw file: the size is known, so a lying header fails before allocation.
    if (data_bytes > *size - std::min(*size, data_start))
      return in.fail("expected " + std::to_string(data_bytes) + " bytes of data, file ends at " +
                     in.where(*size) + " (the data starts at " + in.where(data_start) + ")");
    buf.resize(data_bytes);
    if (in.read(buf.data(), buf.size()) < buf.size())
      return in.short_read("data", data_bytes, data_start);
  } else {
    // gzip: the decompressed size is unknown up front; grow the buffer only
    // as data actually arrives.
    constexpr size_t chunk = size_t{1} << 20;
    size_t have = 0;
    while (have < data_bytes) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(chunk, data_bytes - have));
      buf.resize(have + want);
      size_t got = in.read(buf.data() + have, want);
      have += got;
      if (got < want) return in.short_read("data", data_bytes, data_start);
    }
    // Reach the gzip trailer when the data ends there, so that a CRC
    // mismatch is reported; trailing bytes themselves are ignored.
    unsigned char extra;
    in.read(&extra, 1);
    if (!in.failure().empty())
      return in.fail("gzip error after " + in.where(in.offset()) + ": " + in.failure());
  }

  std::vector<int64_t> shape_dims(dims.begin(), dims.end());
  tensor out(type->type, shape(std::move(shape_dims)));
  decode(*type, buf.data(), static_cast<size_t>(numel), out);
  return out;
}

result<dataset> read_idx_dataset(const std::string& images, const std::string& labels,
                                 bool scale_to_unit) {
  auto img = read_idx(images);
  if (!img) return img.err();
  auto lab = read_idx(labels);
  if (!lab) return lab.err();

  if (lab->rank() != 1)
    return error{labels + ": labels must have rank 1, the file holds shape " +
                 lab->shape().to_string()};
  if (!is_integer(lab->type()))
    return error{labels + ": labels must be integers, the file holds " + name(lab->type())};
  const int64_t n = img->dim(0);
  if (lab->dim(0) != n)
    return error{"count mismatch: '" + images + "' holds " + std::to_string(n) +
                 " images but '" + labels + "' holds " + std::to_string(lab->dim(0)) +
                 " labels"};

  int64_t per_example = 1;
  for (int i = 1; i < img->rank(); ++i) per_example *= img->dim(i);

  dataset d;
  d.source = images + ", " + labels;
  if (img->type() == dtype::u8 && scale_to_unit) {
    d.features = tensor(dtype::f32, shape{n, per_example});
    const uint8_t* in = img->data<uint8_t>();
    float* out = d.features.data<float>();
    for (int64_t i = 0; i < n * per_example; ++i) out[i] = static_cast<float>(in[i]) / 255.0f;
  } else {
    d.features = img->cast(dtype::f32).reshaped(shape{n, per_example});
  }
  d.labels = lab->cast(dtype::i64);
  return d;
}

} // namespace luoshu::data
