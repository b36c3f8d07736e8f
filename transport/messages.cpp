#include "transport/messages.hpp"

namespace luoshu::transport {

const char* name(node_role r) {
  switch (r) {
    case node_role::coordinator: return "coordinator";
    case node_role::server: return "server";
    case node_role::worker: return "worker";
  }
  return "?";
}

bool parse_role(const std::string& s, node_role& out) {
  for (auto r : {node_role::coordinator, node_role::server, node_role::worker})
    if (s == name(r)) {
      out = r;
      return true;
    }
  return false;
}

} // namespace luoshu::transport
