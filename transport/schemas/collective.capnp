# Collective messages (ring all-reduce chunks among replicas). The
# collectives issue fills this file; the struct below only keeps the schema
# compiling until then.
@0x942628777d6808c3;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

# Placeholder until the collective messages land; carries nothing.
struct CollectivePlaceholder {
}
