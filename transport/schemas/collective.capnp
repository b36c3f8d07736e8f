# Collective messages among the ranks of a ring (actors/collective.hpp).
# Each travels as the meta part of a bulk-lane message frame
# (transport/bulk/frame.hpp, kind 2); a chunk's elements are the frame's
# payload, raw and in host byte order, never inside the Cap'n Proto message.
@0x942628777d6808c3;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

enum CollectiveKind {
  allreduce @0;
  allgather @1;
  reduceScatter @2;
  broadcast @3;
  # An all-reduce that runs by halving and doubling on pair rings: on the
  # ring each rank sends one chunk without elements (stage 0, count 0) to
  # its right neighbour, so that calls stay numbered alike on every rank
  # and a rank running something else there is caught at once.
  halvingDoubling @4;
}

# The first message on a connection from rank r to rank r + 1: who it is,
# and optionally the shared-memory slots (transport/bulk/shm_slots.hpp) it
# offers for payloads. The receiver that can map them tells the sender
# through their peer actors; until then every payload travels inline.
struct CollectiveHello {
  group @0 :Text;    # the communicator's name; both ends must agree
  rank @1 :Int32;    # the sender's rank
  size @2 :Int32;    # ranks in the ring, as the sender counts them
  shmName @3 :Text;  # empty: no shared memory offered
  shmNonce @4 :UInt64;
  shmSlots @5 :UInt32;
  shmSlotBytes @6 :UInt64;
}

# One chunk of one step of one collective.
struct CollectiveChunk {
  op @0 :UInt64;          # the collective's number in its communicator (1, 2, ...)
  kind @1 :CollectiveKind;
  dtype @2 :UInt8;        # element type code (graph/dtype.hpp)
  reduce @3 :UInt8;       # reduce_op code (graph/reduce_op.hpp)
  stage @4 :UInt32;       # ring step: 0 .. n-2 reduce-scatter, n-1 .. 2n-3 all-gather
  segment @5 :UInt32;     # the rank whose segment this chunk belongs to
  offset @6 :UInt64;      # first element of the chunk within the whole buffer
  count @7 :UInt64;       # elements in the chunk (the payload holds exactly these)
  total @8 :UInt64;       # elements in the whole buffer
  slot @9 :Int32 = -1;    # >= 0: the elements are in this shared-memory slot, not the payload
}

# A rank gave up on the collectives: every later message fails with this.
struct CollectiveAbort {
  reason @0 :Text;
  failedRank @1 :Int32;   # -1 when no rank is to blame
}

struct CollectiveMessage {
  union {
    hello @0 :CollectiveHello;
    chunk @1 :CollectiveChunk;
    abort @2 :CollectiveAbort;
  }
}
