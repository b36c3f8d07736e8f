# Control-plane messages between nodes and the coordinator: membership and
# barriers. Mirrors transport/messages.hpp; change only by adding fields
# with higher numbers.
@0xc6e57806c67ed684;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

# What a process does in a job (luoshu::transport::node_role).
enum Role {
  coordinator @0;
  server @1;
  worker @2;
}

# A member of a job as the coordinator records it (member_info).
struct MemberInfo {
  rank @0 :Int32;    # -1: not assigned (or "any" in a join request)
  name @1 :Text;     # e.g. "worker-1"
  host @2 :Text;     # where the process runs
  pid @3 :Int32;
  role @4 :Role;
  device @5 :Text;   # "cpu", "cuda:0"
}

# node -> coordinator: asks to become a member (join_request).
struct JoinRequest {
  token @0 :Text;         # the cluster token; a mismatch is refused
  self @1 :MemberInfo;    # rank: the requested rank, or -1 for any
  worldSize @2 :Int32;    # what the node expects (0: no expectation)
}

# coordinator -> node: the answer to a JoinRequest (join_reply).
struct JoinReply {
  accepted @0 :Bool;
  reason @1 :Text;        # why not, when refused
  rank @2 :Int32;
  worldSize @3 :Int32;
  heartbeatMs @4 :Int64;  # how often the node must send heartbeats
}

# node -> coordinator: arrives at a named barrier (barrier_request).
struct BarrierRequest {
  name @0 :Text;
  rank @1 :Int32;
}
