#include "transport/messages.hpp"

namespace luoshu::transport {

const char* name(ps_op op) {
  switch (op) {
    case ps_op::pull: return "pull";
    case ps_op::push: return "push";
    case ps_op::push_pull: return "push_pull";
    case ps_op::create: return "create";
    case ps_op::func: return "func";
    case ps_op::save: return "save";
    case ps_op::load: return "load";
    case ps_op::clock: return "clock";
    case ps_op::assign: return "assign";
  }
  return "?";
}

const char* name(collective_kind k) {
  switch (k) {
    case collective_kind::allreduce: return "allreduce";
    case collective_kind::allgather: return "allgather";
    case collective_kind::reduce_scatter: return "reduce_scatter";
    case collective_kind::broadcast: return "broadcast";
    case collective_kind::halving_doubling: return "allreduce by halving and doubling";
  }
  return "?";
}

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
