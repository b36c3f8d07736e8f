#pragma once
// One CAF actor system per process, configured the same way on every node
// (message types, middleman settings), plus helpers for error text.

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <string>

namespace luoshu::actors {

/// The actor-system configuration every Luoshu process uses.
class runtime_config : public caf::actor_system_config {
public:
  runtime_config();
};

/// What describe() says for a request that timed out.
inline constexpr const char* request_timeout_text = "no answer in time (request timed out)";

/// A CAF error as a sentence.
std::string describe(caf::actor_system& sys, const caf::error& e);

} // namespace luoshu::actors
