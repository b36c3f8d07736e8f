# Parameter-server messages between ps_client and ps_shard actors
# (luoshu::transport::ps_request / ps_reply). Change only by adding fields
# with higher numbers.
@0xd73433034ca6eed9;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

using import "tensor.capnp".Tensor;

# How a table's rows are updated on the shard (ops/update_rules.hpp, plus FTRL).
struct PsOptimizer {
  rule @0 :UInt8;          # 0 sgd, 1 momentum, 2 adagrad, 3 adam, 4 ftrl
  lr @1 :Float64;
  momentum @2 :Float64;    # momentum; adam beta1; ftrl beta
  beta2 @3 :Float64;
  eps @4 :Float64;
  weightDecay @5 :Float64; # L2 (ftrl: l2)
  l1 @6 :Float64;          # ftrl only
}

# A table: dense (rows x width, split into row ranges) or sparse (rows made
# on first touch from the initializer; ids spread by hash).
struct PsTableSpec {
  id @0 :UInt32;
  name @1 :Text;
  sparse @2 :Bool;
  rows @3 :UInt64;         # dense: the row count; sparse: the id bound (0 = any 64-bit id)
  width @4 :UInt32;        # elements per row, >= 1
  dtype @5 :UInt8;         # f32 or f64 (graph/dtype.hpp codes)
  hashPartition @6 :Bool;  # rows by hash (else by contiguous ranges)
  initKind @7 :UInt8;      # luoshu::initializer::kind_t
  initA @8 :Float64;
  initB @9 :Float64;
  seed @10 :UInt64;        # initial values depend on (seed, table, row) only
  optimizer @11 :PsOptimizer;
}

# client -> shard. `op` says which fields matter.
struct PsRequest {
  seq @0 :UInt64;          # echoed in the reply
  worker @1 :Int32;        # the sending worker's index (>= 0)
  clock @2 :Int64;         # the worker's clock (training step) for consistency
  op @3 :UInt8;            # 0 pull, 1 push, 2 push_pull, 3 create, 4 func, 5 save, 6 load, 7 clock, 8 assign
  table @4 :UInt32;
  keys @5 :List(UInt64);   # row ids (global) this request touches, each once
  values @6 :Tensor;       # push, assign: [keys, width] rows
  spec @7 :PsTableSpec;    # create
  func @8 :Text;           # func: a server-side function's name
  args @9 :List(Float64);  # func arguments
  path @10 :Text;          # save / load: the checkpoint directory
}

struct PsReply {
  seq @0 :UInt64;
  error @1 :Text;          # empty: success
  values @2 :Tensor;       # pull / push_pull: [keys, width] rows
  partial @3 :List(Float64); # func: this shard's partial result
  staleness @4 :Int64;     # pull: the worker's clock minus the slowest worker's, when served
}
