# Parameter-server messages (push, pull, push_pull between ps_client and
# ps_shard actors). The parameter-server issue fills this file; the struct
# below only keeps the schema compiling until then.
@0xd73433034ca6eed9;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

# Placeholder until the parameter-server messages land; carries nothing.
struct PsPlaceholder {
}
