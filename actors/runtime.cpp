#include "actors/runtime.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

namespace luoshu::actors {

runtime_config::runtime_config() {
  load<caf::io::middleman>();
  // Deserialize on the middleman thread: one payload copy less (TOOLCHAIN.md).
  set("middleman.workers", size_t{0});
  // No automatic node-to-node connections. When two nodes learn of each
  // other at once (through the coordinator) both connect, and CAF 0.17
  // closes one of the two connections, losing the messages on it: 33 of
  // 1000 four-node jobs lost requests that way in a stress run. Nodes
  // connect explicitly instead, one side per pair (node::serve / connect);
  // an actor handle learned any other way is reached through the
  // coordinator's connections.
  set("middleman.enable-automatic-connections", false);
  // A shared work queue instead of work stealing: on 2-4 cores this cut the
  // typed-message round trip from ~136 to ~88 us (luoshu bench transport).
  set("scheduler.policy", caf::atom("sharing"));
}

std::string describe(caf::actor_system& sys, const caf::error& e) {
  if (e == caf::sec::request_timeout) return request_timeout_text;
  if (e == caf::sec::request_receiver_down) return "the peer is gone (it exited or the connection was lost)";
  // Our own errors: a runtime_error whose context is the sentence.
  if (e == caf::sec::runtime_error && e.context().match_elements<std::string>())
    return e.context().get_as<std::string>(0);
  return sys.render(e);
}

} // namespace luoshu::actors
