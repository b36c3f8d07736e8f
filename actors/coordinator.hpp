#pragma once
// The coordinator: membership (join with a cluster token, ranks), named
// barriers, and failure detection (a member's process disconnects, or its
// heartbeats stop). After a failure every pending and later barrier fails
// with a message naming the node, and watchers are told; nothing waits
// forever.

#include <caf/actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "actors/atoms.hpp"
#include "graph/error.hpp"

namespace luoshu::actors {

/// The coordinator protocol. Payloads are transport/ encoded messages.
///  - join: (join_request bytes, the node's agent) -> join_reply bytes; the
///    coordinator monitors the agent and expects its heartbeats.
///  - barrier: barrier_request bytes -> "" when every member arrived, or the
///    reason it cannot pass (a member failed, the caller is no member).
///  - heartbeat: rank.
///  - leave: rank -> true; a member that leaves cleanly is no failure.
///  - status: -> a JSON summary (members, failures).
///  - register: (name, actor) -> false if the name is taken; lookup: name
///    -> the actor, answered once someone registered it (or an error once
///    the job failed). Compute actors find each other this way.
///  - watch: registers an actor that receives (failure_atom, reason) once
///    the job fails, or (leave_atom) once every member joined and left.
using coordinator_actor = caf::typed_actor<
    caf::replies_to<join_atom, std::vector<char>, caf::actor>::with<std::vector<char>>,
    caf::replies_to<barrier_atom, std::vector<char>>::with<std::string>,
    caf::reacts_to<heartbeat_atom, int32_t>,
    caf::replies_to<leave_atom, int32_t>::with<bool>,
    caf::replies_to<status_atom>::with<std::string>,
    caf::reacts_to<watch_atom, caf::actor>,
    caf::replies_to<register_atom, std::string, caf::actor>::with<bool>,
    caf::replies_to<lookup_atom, std::string>::with<caf::actor>,
    caf::replies_to<publish_atom, std::string, std::string>::with<bool>,
    caf::replies_to<fetch_atom, std::string>::with<std::string>,
    caf::reacts_to<tick_atom>>;

struct coordinator_config {
  std::string token;      ///< members must present it
  int32_t world_size = 1; ///< members the job needs
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{5000}; ///< silence that counts as a hang
  std::chrono::milliseconds join_timeout{120000};    ///< time for all world_size members to join
};

/// Spawns a coordinator in `sys`.
coordinator_actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg);

/// A coordinator with its own actor system, published on a TCP port: what
/// `luoshu launch` and `luoshu coordinator` run. Used from one thread.
class coordinator_service {
public:
  /// Binds `host`:`port` (port 0: the OS picks one).
  static result<std::unique_ptr<coordinator_service>> start(coordinator_config cfg, const std::string& host,
                                                            uint16_t port);
  ~coordinator_service();
  coordinator_service(const coordinator_service&) = delete;
  coordinator_service& operator=(const coordinator_service&) = delete;

  uint16_t port() const { return port_; }

  /// What happened to the job, waiting at most `timeout`.
  enum class outcome { running, finished, failed };
  outcome wait(std::chrono::milliseconds timeout);
  /// The failure, once wait() said failed.
  const std::string& failure() const { return failure_; }
  /// Members and failures as JSON.
  std::string status();

private:
  struct impl;
  explicit coordinator_service(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  uint16_t port_ = 0;
  std::string failure_;
  bool finished_ = false;
};

} // namespace luoshu::actors
