#pragma once
// Atoms of Luoshu's actor protocols (verbs, at most 10 characters).

#include <caf/atom.hpp>

namespace luoshu::actors {

using join_atom = caf::atom_constant<caf::atom("join")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using barrier_atom = caf::atom_constant<caf::atom("barrier")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using failure_atom = caf::atom_constant<caf::atom("failure")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using register_atom = caf::atom_constant<caf::atom("register")>;
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
/// A short string value published through the coordinator (node::publish / fetch).
using publish_atom = caf::atom_constant<caf::atom("publish")>;
using fetch_atom = caf::atom_constant<caf::atom("fetch")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using tensor_atom = caf::atom_constant<caf::atom("tensor")>;
using peer_atom = caf::atom_constant<caf::atom("peer")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
/// End of data: a driver tells its compute actor that no more steps come;
/// a compute actor tells its peers how many steps it ran.
using end_atom = caf::atom_constant<caf::atom("enddata")>;
/// A parameter-server request (Cap'n Proto ps bytes) to a ps_shard.
using ps_atom = caf::atom_constant<caf::atom("ps")>;
/// Asks a compute actor where its bulk tensor lane listens.
using lane_atom = caf::atom_constant<caf::atom("lane")>;

} // namespace luoshu::actors
