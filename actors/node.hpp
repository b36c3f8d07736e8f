#pragma once
// A process's membership in a Luoshu job: connects to the coordinator,
// joins with the cluster token, sends heartbeats, and offers barriers. The
// same program runs alone (no coordinator) or as one node of a job started
// by `luoshu launch`, Kubernetes or Slurm (settings from the environment).

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "graph/error.hpp"
#include "transport/messages.hpp"

#include <caf/fwd.hpp>

namespace luoshu::actors {

struct node_options {
  std::string coordinator_host = "127.0.0.1";
  uint16_t coordinator_port = 0;
  std::string token;
  transport::member_info self; ///< rank -1 = any
  int32_t world_size = 0;      ///< expected; 0 = whatever the coordinator says
  std::chrono::milliseconds connect_timeout{30000}; ///< keep retrying this long
  std::chrono::milliseconds request_timeout{30000};
  /// Tensors of at least this many bytes go between compute actors of
  /// different processes over the bulk tensor lane (transport/bulk); smaller
  /// ones travel as typed actor messages (BASP). 0: every tensor takes the
  /// lane.
  uint64_t bulk_threshold = uint64_t{1} << 20;
  /// The address this node's lane listener binds to and advertises; empty:
  /// 127.0.0.1 when the coordinator is on loopback, else every interface,
  /// advertised as this host's name.
  std::string bulk_host;
};

/// Settings from the environment, as `luoshu launch` and the Kubernetes
/// manifest set them:
///   LUOSHU_COORDINATOR=host:port   (required)
///   LUOSHU_TOKEN=...               (required; or LUOSHU_TOKEN_FILE=path)
///   LUOSHU_RANK, LUOSHU_WORLD_SIZE, LUOSHU_ROLE (worker|server|coordinator),
///   LUOSHU_NODE_NAME, LUOSHU_DEVICE (optional)
///   LUOSHU_BULK_THRESHOLD=bytes    (optional; suffixes K, M, G = KiB, MiB, GiB;
///                                   0 = every tensor over the bulk lane)
///   LUOSHU_BULK_HOST=address       (optional; see node_options::bulk_host)
/// A missing or malformed variable is an error naming it. With
/// LUOSHU_RANK unset, a StatefulSet pod name ending in -N (HOSTNAME) gives
/// the rank.
result<node_options> node_options_from_env();
/// Whether LUOSHU_COORDINATOR is set (the process runs inside a job).
bool in_job();

class node {
public:
  /// Starts this process's actor system, connects to the coordinator
  /// (retrying until connect_timeout) and joins.
  static result<std::unique_ptr<node>> join(const node_options& o);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  int32_t rank() const { return rank_; }
  int32_t world_size() const { return world_size_; }
  const transport::member_info& self() const { return self_; }
  /// The options this node joined with (rank and world size as asked for).
  const node_options& options() const { return options_; }

  /// Waits until every member reached the barrier `name`; an error names
  /// the failed node, or says the coordinator did not answer in `timeout`.
  status barrier(const std::string& name, std::chrono::milliseconds timeout = std::chrono::minutes(10));
  /// The job's failure as the coordinator reported it; empty while healthy.
  std::string failure();
  /// Leaves the job cleanly (the destructor does it too).
  void leave();

  caf::actor_system& system();
  /// Publishes `a` under `name` for the other nodes (false: name taken).
  result<bool> register_actor(const std::string& name, const caf::actor& a);
  /// The actor some node registered as `name`, waiting up to `timeout`.
  /// Its messages travel over whatever connection already leads to that
  /// node, else through the coordinator (two hops): for a direct one, one
  /// of the two nodes calls connect() (below).
  result<caf::actor> lookup(const std::string& name, std::chrono::milliseconds timeout = std::chrono::minutes(2));
  /// Registers `a` under `name` (as register_actor) and accepts direct
  /// connections to it: listens on an OS-chosen port of this node's address
  /// (bulk_address) and publishes that address as `name` + "/address".
  /// An error if the name is taken or nothing can listen (the port is
  /// closed again then); otherwise the port stays open while the node's
  /// actor system runs.
  status serve(const std::string& name, const caf::actor& a);
  /// The actor some node serves as `name` (waiting up to `timeout` for it to
  /// be served), over a direct connection from this node to that one; the
  /// whole of it, handshake included, within `timeout`. Only
  /// one of two nodes may connect to the other: when both connect at once,
  /// CAF 0.17 closes one of the two connections and loses the messages on
  /// it. The other node reaches this one's actors over the same connection
  /// (lookup, or handles in messages) once it exists.
  result<caf::actor> connect(const std::string& name, std::chrono::milliseconds timeout = std::chrono::minutes(2));
  /// Publishes a short string `value` (at most 4 KiB) under `name` through
  /// the coordinator (false: name taken). Unlike an actor's reply, it
  /// travels only on this node's own connection to the coordinator.
  result<bool> publish(const std::string& name, const std::string& value);
  /// The value some node published as `name`, waiting up to `timeout`.
  result<std::string> fetch(const std::string& name, std::chrono::milliseconds timeout = std::chrono::minutes(2));

private:
  struct impl;
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  int32_t rank_ = -1;
  int32_t world_size_ = 0;
  transport::member_info self_;
  node_options options_;
  bool left_ = false;
};

/// An address published through the coordinator as "PORT HOST".
struct endpoint {
  std::string host;
  uint16_t port = 0;
  std::string text() const { return std::to_string(port) + " " + host; }
};
/// Reads "PORT HOST"; an error quoting (at most 80 characters of) `s`.
result<endpoint> parse_endpoint(const std::string& s);

/// Where this node's bulk-lane listeners bind (first) and the address peers
/// use to reach them (second): node_options::bulk_host when set; 127.0.0.1
/// when the coordinator is on loopback; else every interface, advertised as
/// this host's name.
std::pair<std::string, std::string> bulk_address(const node& n);

} // namespace luoshu::actors
