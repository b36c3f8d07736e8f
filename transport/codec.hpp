#pragma once
// Value <-> wire codecs: the plain value types of transport/messages.hpp and
// graph partitions as Cap'n Proto bytes (schemas in transport/schemas/).
// Nothing here exposes a generated type.
//
// Decoding trusts nothing: every decode_* accepts any byte span and returns
// either the value or an error "transport: malformed <what>: <detail>". It
// never crashes, never hangs and allocates at most a small multiple of the
// input size. Limits it enforces:
//   - the input is a whole number of 8-byte words, at most max_wire_bytes,
//     and exactly one message (no trailing bytes);
//   - texts (names, tokens, hosts, devices) at most max_name_bytes, a join
//     refusal's reason at most max_reason_bytes;
//   - tensors: a known dtype, rank <= max_rank, dims >= 0, and
//     numel * size_of(dtype) == the data size (no overflow);
//   - graphs: known op names, non-empty unique node names, inputs referring
//     to earlier nodes, attributes within the limits below, what
//     graph::variable / graph::constant require of sources, optimizer updates
//     applied to variables only, and every node re-inferred by graph::add and
//     equal to the encoded dtype and shape.
// A value beyond these limits encodes, but will not decode.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "graph/error.hpp"
#include "graph/graph.hpp"
#include "transport/messages.hpp"

namespace luoshu::transport {

/// Encoded bytes. CAF serialises std::vector<char> in one bulk copy.
using wire_bytes = std::vector<char>;

/// The largest input any decoder accepts.
inline constexpr size_t max_wire_bytes = size_t{1} << 30;
/// The longest name, token, host or device string a decoder accepts.
inline constexpr size_t max_name_bytes = 4096;
/// The longest join refusal reason a decoder accepts.
inline constexpr size_t max_reason_bytes = 65536;
/// The highest tensor (and graph shape) rank a decoder accepts.
inline constexpr int max_rank = 16;
/// The most inputs of one graph node, and the longest axes / axes2 list.
inline constexpr size_t max_node_inputs = 4096;
inline constexpr size_t max_axes = 64;
/// The most keys one parameter-server request may carry.
inline constexpr size_t max_ps_keys = size_t{1} << 26;
/// The most arguments of a server-side function call.
inline constexpr size_t max_ps_args = 4096;
/// The largest buffer one collective may reduce (bytes).
inline constexpr uint64_t max_collective_bytes = uint64_t{1} << 40;
/// Graph shapes: the largest dim, and the largest product of the known dims
/// (so shape inference on decoded shapes cannot overflow).
inline constexpr int64_t max_graph_dim = int64_t{1} << 48;
inline constexpr int64_t max_graph_numel = int64_t{1} << 56;

// Encoders copy bytes in bulk (a tensor's data in one memcpy). Encoding a
// tensor that is not in host memory, or one over Cap'n Proto's 2^29 - 1 byte
// blob limit (large tensors take the bulk tensor lane), throws luoshu_error.

wire_bytes encode(const join_request& m);
wire_bytes encode(const join_reply& m);
wire_bytes encode(const barrier_request& m);
wire_bytes encode(const tensor_message& m);
/// Parameter-server requests and replies. Decoding also checks the keys
/// (at most max_ps_keys, distinct is the shard's business), a push's values
/// ([keys, width] of f32/f64), a table spec (width >= 1, f32/f64, a known
/// optimizer rule and initializer) and texts.
wire_bytes encode(const ps_request& m);
wire_bytes encode(const ps_reply& m);
/// Collective messages. Decoding checks the group name, ranks (0 <= rank <
/// size), a chunk's dtype and reduce codes, that its elements lie inside the
/// buffer (offset + count <= total, no overflow) and its count's bytes fit
/// max_collective_bytes.
wire_bytes encode(const collective_message& m);
/// Every node of `g` in order: op name, node name, inputs, inferred dtype and
/// shape, and every op attribute (the initializer, a constant's tensor).
wire_bytes encode_graph(const graph& g);

result<join_request> decode_join_request(std::span<const char> bytes);
result<join_reply> decode_join_reply(std::span<const char> bytes);
result<barrier_request> decode_barrier_request(std::span<const char> bytes);
/// The tensor comes back in fresh, 64-byte aligned host memory.
result<tensor_message> decode_tensor_message(std::span<const char> bytes);
result<ps_request> decode_ps_request(std::span<const char> bytes);
result<ps_reply> decode_ps_reply(std::span<const char> bytes);
result<collective_message> decode_collective_message(std::span<const char> bytes);
/// Rebuilds the graph node by node through graph::add, which re-runs shape
/// inference; a graph is not movable, hence the unique_ptr.
result<std::unique_ptr<graph>> decode_graph(std::span<const char> bytes);

} // namespace luoshu::transport
