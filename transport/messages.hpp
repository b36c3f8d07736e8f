#pragma once
// The plain value types that cross process boundaries. transport/codec.hpp
// turns them into Cap'n Proto bytes and back; nothing outside transport/
// sees generated Cap'n Proto types.

#include <cstdint>
#include <string>
#include <vector>

#include "graph/tensor.hpp"

namespace luoshu::transport {

enum class node_role : uint8_t { coordinator, server, worker };

const char* name(node_role r);
/// "coordinator", "server", "worker"; false otherwise.
bool parse_role(const std::string& s, node_role& out);

/// A member of a job as the coordinator records it.
struct member_info {
  int32_t rank = -1;
  std::string name;   ///< e.g. "worker-1"
  std::string host;   ///< where the process runs
  int32_t pid = 0;
  node_role role = node_role::worker;
  std::string device; ///< "cpu", "cuda:0"
  friend bool operator==(const member_info&, const member_info&) = default;
};

/// node -> coordinator: asks to become a member.
struct join_request {
  std::string token;           ///< the cluster token; a mismatch is refused
  member_info self;            ///< rank: the requested rank, or -1 for any
  int32_t world_size = 0;      ///< what the node expects (0: no expectation)
  friend bool operator==(const join_request&, const join_request&) = default;
};

/// coordinator -> node.
struct join_reply {
  bool accepted = false;
  std::string reason;          ///< why not, when refused
  int32_t rank = -1;
  int32_t world_size = 0;
  int64_t heartbeat_ms = 0;    ///< how often the node must send heartbeats
  friend bool operator==(const join_reply&, const join_reply&) = default;
};

/// node -> coordinator: arrives at a named barrier.
struct barrier_request {
  std::string name;
  int32_t rank = -1;
  friend bool operator==(const barrier_request&, const barrier_request&) = default;
};

/// A named tensor at a training step (activations, gradients).
struct tensor_message {
  std::string name;
  int64_t step = 0;
  tensor value;
};

} // namespace luoshu::transport
