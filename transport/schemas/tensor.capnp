# Tensors on the wire: activations, gradients and constant values.
# Change only by adding fields with higher numbers.
@0xeac82add92d157d0;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("luoshu::transport::wire");

# A dense, contiguous, row-major n-d array (luoshu::tensor), copied to the
# wire in one piece.
struct Tensor {
  dtype @0 :UInt8;
  # The element type: the numeric value of luoshu::dtype (graph/dtype.hpp):
  # 0 f32, 1 f64, 2 i32, 3 i64, 4 u8, 5 f16, 6 bf16.

  shape @1 :List(Int64);
  # Dimension sizes, outermost first; every dim is known (>= 0) and the
  # rank is at most 16. An empty list is a 0-d (scalar) tensor.

  data @2 :Data;
  # The elements in host byte order (little-endian on every supported
  # target); exactly numel * size_of(dtype) bytes.
}

# A named tensor at a training step (luoshu::transport::tensor_message).
struct TensorMessage {
  name @0 :Text;
  # What the tensor is ("dense_1/w:grad"); at most 4096 bytes.

  step @1 :Int64;
  # The training step it belongs to.

  tensor @2 :Tensor;
  # The value; absent (null) for an undefined tensor.
}
