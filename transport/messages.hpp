#pragma once
// The plain value types that cross process boundaries. transport/codec.hpp
// turns them into Cap'n Proto bytes and back; nothing outside transport/
// sees generated Cap'n Proto types.

#include <cstdint>
#include <string>
#include <vector>

#include "graph/tensor.hpp"
#include "graph/reduce_op.hpp"
#include "ops/op.hpp"

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

// --- parameter server -----------------------------------------------------------

/// How a shard updates a table's rows from pushed gradients.
struct ps_optimizer {
  enum class rule_t : uint8_t { sgd, momentum, adagrad, adam, ftrl };
  rule_t rule = rule_t::sgd;
  double lr = 0.01;
  double momentum = 0.9; ///< momentum; adam beta1; ftrl beta
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0; ///< L2 (ftrl: l2)
  double l1 = 0;           ///< ftrl only
  friend bool operator==(const ps_optimizer&, const ps_optimizer&) = default;
};

/// A parameter table. Dense: `rows` x `width`, split into row ranges (or by
/// hash). Sparse: rows are made on first touch from the initializer, so ids
/// up to `rows` (0: any 64-bit id) cost memory only once used.
struct ps_table_spec {
  uint32_t id = 0;
  std::string name;
  bool sparse = false;
  uint64_t rows = 0;
  uint32_t width = 1;
  dtype type = dtype::f32;
  bool hash_partition = false;
  initializer init;
  uint64_t seed = 0;
  ps_optimizer optimizer;
  friend bool operator==(const ps_table_spec&, const ps_table_spec&) = default;
};

enum class ps_op : uint8_t { pull, push, push_pull, create, func, save, load, clock, assign };
const char* name(ps_op op);

/// ps_client -> ps_shard.
struct ps_request {
  uint64_t seq = 0;
  int32_t worker = 0;
  int64_t clock = 0;
  ps_op op = ps_op::pull;
  uint32_t table = 0;
  std::vector<uint64_t> keys;  ///< distinct row ids
  tensor values;               ///< push: [keys, width]
  ps_table_spec spec;          ///< create
  std::string func;            ///< func: a registered server-side function
  std::vector<double> args;    ///< func arguments
  std::string path;            ///< save / load: checkpoint directory
  friend bool operator==(const ps_request& a, const ps_request& b) {
    return a.seq == b.seq && a.worker == b.worker && a.clock == b.clock && a.op == b.op && a.table == b.table &&
           a.keys == b.keys && a.spec == b.spec && a.func == b.func && a.args == b.args && a.path == b.path &&
           a.values.defined() == b.values.defined() &&
           (!a.values.defined() || (a.values.type() == b.values.type() && a.values.shape() == b.values.shape() &&
                                    a.values.to_doubles() == b.values.to_doubles()));
  }
};

/// ps_shard -> ps_client.
struct ps_reply {
  uint64_t seq = 0;
  std::string error;           ///< empty: success
  tensor values;               ///< pull / push_pull: [keys, width]
  std::vector<double> partial; ///< func: this shard's part
  int64_t staleness = 0;       ///< pull: the worker's clock minus the slowest worker's
};

/// The collectives (actors/collective.hpp). Every collective message is a
/// hello, a chunk or an abort; a chunk's elements travel beside it as a raw
/// payload.
enum class collective_kind : uint8_t { allreduce, allgather, reduce_scatter, broadcast, halving_doubling };
const char* name(collective_kind k);

struct collective_hello {
  std::string group;
  int32_t rank = 0;
  int32_t size = 0;
  std::string shm_name; ///< empty: no shared-memory slots offered
  uint64_t shm_nonce = 0;
  uint32_t shm_slots = 0;
  uint64_t shm_slot_bytes = 0;
  friend bool operator==(const collective_hello&, const collective_hello&) = default;
};

struct collective_chunk {
  uint64_t op = 0;
  collective_kind kind = collective_kind::allreduce;
  dtype type = dtype::f32;
  reduce_op reduce = reduce_op::sum;
  uint32_t stage = 0;
  uint32_t segment = 0;
  uint64_t offset = 0; ///< elements
  uint64_t count = 0;  ///< elements
  uint64_t total = 0;  ///< elements in the whole buffer
  int32_t slot = -1;   ///< >= 0: the elements are in this shared-memory slot
  friend bool operator==(const collective_chunk&, const collective_chunk&) = default;
};

struct collective_abort {
  std::string reason;
  int32_t failed_rank = -1;
  friend bool operator==(const collective_abort&, const collective_abort&) = default;
};

struct collective_message {
  enum class kind_t : uint8_t { hello, chunk, abort };
  kind_t kind = kind_t::chunk;
  collective_hello hello;
  collective_chunk chunk;
  collective_abort abort;
};

} // namespace luoshu::transport
