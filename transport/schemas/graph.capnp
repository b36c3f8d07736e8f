# A graph partition on the wire: what a compute actor runs. Ops travel by
# name, so reordering ops/op_list.def never breaks the wire. Change only by
# adding fields with higher numbers.
@0xfc0d72556c6ab862;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

using import "tensor.capnp".Tensor;

# How a variable's first value is drawn (luoshu::initializer).
struct Initializer {
  kind @0 :UInt8;
  # The numeric value of initializer::kind_t (ops/op.hpp): 0 zeros,
  # 1 constant, 2 uniform, 3 normal, 4 truncated_normal, 5 xavier_uniform,
  # 6 xavier_normal, 7 he_uniform, 8 he_normal.

  a @1 :Float64;
  b @2 :Float64;
}

# Every member of luoshu::op_attrs, whichever ones the op reads.
struct OpAttrs {
  axes @0 :List(Int64);   # reduce/squeeze axes, transpose perm, slice begins, pad before
  axes2 @1 :List(Int64);  # slice ends, pad after
  target @2 :List(Int64); # reshape/broadcast_to/source shape; -1 is an unknown dim
  alpha @3 :Float64;
  beta @4 :Float64;
  eps @5 :Float64;
  decay @6 :Float64;
  axis @7 :Int64;
  keepdims @8 :Bool;
  transA @9 :Bool;
  transB @10 :Bool;
  flag @11 :Bool;
  seed @12 :UInt64;
  to @13 :UInt8;          # a luoshu::dtype value (cast target, source dtype)
  init @14 :Initializer;  # variables
  value @15 :Tensor;      # constants; absent (null) on other nodes
}

# One node: its op, its inputs and its inferred dtype and shape, which the
# receiver re-infers and compares.
struct Node {
  op @0 :Text;            # the op's name in ops/op_list.def ("matmul")
  name @1 :Text;          # unique within the graph
  inputs @2 :List(Int32); # indices of earlier nodes
  dtype @3 :UInt8;        # inferred output dtype (a luoshu::dtype value)
  shape @4 :List(Int64);  # inferred output shape; -1 is an unknown dim
  attrs @5 :OpAttrs;
}

# A graph (or a partition of one): nodes in topological order, each node's
# inputs before it.
struct Graph {
  nodes @0 :List(Node);
}
