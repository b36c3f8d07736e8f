#pragma once
// The bulk tensor lane's wire framing, free of CAF so that tests and the raw
// TCP baseline of `luoshu bench transport` can speak it too.
//
// One frame on the wire is three parts, back to back on a TCP stream:
//
//   header  32 bytes, little-endian:
//             u32 magic 'LSBK' (0x4b42534c), u8 version (1), u8 kind (1 = tensor, 2 = message),
//             u16 flags (0), u32 meta_bytes, u32 reserved (0),
//             u64 payload_bytes, u64 seq (1, 2, ... per connection)
//   meta    meta_bytes: a transport tensor_message (transport/codec.hpp) whose
//           value is the tensor's descriptor, an i64 vector
//           [dtype code, dim 0, dim 1, ...], or absent for an undefined tensor
//   payload payload_bytes: the tensor's elements, exactly
//           numel * size_of(dtype) bytes (host byte order)
//
// A message frame (kind 2) has the same header; its meta is a Cap'n Proto
// message the lane does not interpret (its consumer decodes and checks it,
// e.g. the collectives' transport/schemas/collective.capnp) and its payload
// is raw bytes.
//
// The receiver knows every size before it reads the bytes, so it can read the
// payload straight into the tensor's final buffer. Every field is checked
// against limits before anything is allocated for it.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "graph/error.hpp"
#include "graph/shape.hpp"
#include "graph/dtype.hpp"
#include "transport/codec.hpp"
#include "transport/messages.hpp"

namespace luoshu::transport::bulk {

inline constexpr uint32_t frame_magic = 0x4b42534c; // "LSBK" read as little-endian bytes
inline constexpr uint8_t frame_version = 1;
inline constexpr size_t header_bytes = 32;

enum class frame_kind : uint8_t { tensor = 1, message = 2 };

/// The fixed-size part in front of every tensor.
struct frame_header {
  frame_kind kind = frame_kind::tensor;
  uint32_t meta_bytes = 0;
  uint64_t payload_bytes = 0;
  uint64_t seq = 0;
};

/// What a receiver accepts; anything larger is an error, checked before
/// allocating.
struct frame_limits {
  size_t max_meta_bytes = size_t{64} << 10;
  uint64_t max_payload_bytes = uint64_t{1} << 30;
};

/// Writes `h` into `out[0, header_bytes)`.
void write_header(const frame_header& h, char* out);

/// Parses and checks a header: magic, version, kind, zero flags and reserved
/// bits, 8 <= meta_bytes <= max_meta_bytes (and a multiple of 8),
/// payload_bytes <= max_payload_bytes. Errors read
/// "bulk lane: bad frame header: <detail>".
result<frame_header> read_header(std::span<const char> bytes, const frame_limits& limits);

/// A tensor message without the tensor's bytes.
struct tensor_meta {
  std::string name;
  int64_t step = 0;
  bool defined = false; ///< false: the message carries an undefined tensor
  dtype type = dtype::f32;
  luoshu::shape dims;
  /// numel * size_of(type); 0 for an undefined tensor.
  uint64_t payload_bytes = 0;
};

/// The meta part for `m` (its name, step, dtype and shape). Throws
/// luoshu_error where the codec does (name too long is caught on decode).
wire_bytes encode_meta(const tensor_message& m);

/// Decodes a meta part with the transport codec and checks the descriptor:
/// a known dtype, rank <= max_rank, dims >= 0 with no overflow, and
/// numel * size_of(dtype) == payload_bytes (the header's value).
result<tensor_meta> decode_meta(std::span<const char> bytes, uint64_t payload_bytes);

/// Header and meta for `m` as one buffer, followed by `extra` bytes of
/// reserved space (where a small payload can be appended).
wire_bytes encode_prefix(const tensor_message& m, uint64_t seq, size_t extra = 0);

/// Header and meta of a message frame whose payload has `payload_bytes`
/// bytes, followed by `extra` bytes of reserved space. `meta` must be a
/// multiple of 8 bytes long (a Cap'n Proto message is).
wire_bytes encode_message_prefix(std::span<const char> meta, uint64_t payload_bytes, uint64_t seq, size_t extra = 0);

/// Rewrites the seq field of an encoded header in place.
void set_header_seq(char* header, uint64_t seq);

} // namespace luoshu::transport::bulk
