#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace luoshu {

/// Element types. f16 and bf16 are reserved: tensors can hold them, no
/// kernel computes on them yet.
enum class dtype : uint8_t { f32, f64, i32, i64, u8, f16, bf16 };

inline constexpr int dtype_count = 7;

/// Bytes per element.
constexpr size_t size_of(dtype t) {
  switch (t) {
    case dtype::f32: case dtype::i32: return 4;
    case dtype::f64: case dtype::i64: return 8;
    case dtype::u8: return 1;
    case dtype::f16: case dtype::bf16: return 2;
  }
  return 0;
}

constexpr const char* name(dtype t) {
  switch (t) {
    case dtype::f32: return "f32";
    case dtype::f64: return "f64";
    case dtype::i32: return "i32";
    case dtype::i64: return "i64";
    case dtype::u8: return "u8";
    case dtype::f16: return "f16";
    case dtype::bf16: return "bf16";
  }
  return "?";
}

constexpr bool is_float(dtype t) {
  return t == dtype::f32 || t == dtype::f64 || t == dtype::f16 || t == dtype::bf16;
}
constexpr bool is_integer(dtype t) {
  return t == dtype::i32 || t == dtype::i64 || t == dtype::u8;
}

/// Parses "f32", "float32", "i64", ...; nullopt for anything else.
std::optional<dtype> parse_dtype(std::string_view s);

template <class T> struct dtype_of_t;
template <> struct dtype_of_t<float> { static constexpr dtype value = dtype::f32; };
template <> struct dtype_of_t<double> { static constexpr dtype value = dtype::f64; };
template <> struct dtype_of_t<int32_t> { static constexpr dtype value = dtype::i32; };
template <> struct dtype_of_t<int64_t> { static constexpr dtype value = dtype::i64; };
template <> struct dtype_of_t<uint8_t> { static constexpr dtype value = dtype::u8; };

/// The dtype of a C++ element type: `dtype_of<float>` is `dtype::f32`.
template <class T> inline constexpr dtype dtype_of = dtype_of_t<T>::value;

} // namespace luoshu
