// graph/nccl.hpp in a build without CUDA (-Dcuda=disabled): nothing to talk
// to, so every call says so. ops/cuda/nccl.cu is the real implementation.

#include "graph/nccl.hpp"

namespace luoshu {

struct nccl_communicator::impl {};

namespace {

error no_nccl(const std::string& what) {
  return error{"NCCL: " + what + ": this build has no CUDA or NCCL support (rebuild with -Dcuda=enabled)"};
}

} // namespace

bool nccl_built() { return false; }

result<nccl_id> nccl_make_id() { return no_nccl("making a communicator id"); }

nccl_communicator::nccl_communicator(int rank, int size, luoshu::device dev)
    : rank_(rank), size_(size), dev_(dev) {}

nccl_communicator::~nccl_communicator() = default;

result<std::unique_ptr<nccl_communicator>> nccl_communicator::create(const nccl_id&, int rank, int size,
                                                                      luoshu::device dev) {
  return no_nccl("joining as rank " + std::to_string(rank) + " of " + std::to_string(size) + " on " +
                 dev.to_string());
}

status nccl_communicator::allreduce(const tensor&, tensor&, reduce_op, device_stream&) {
  return no_nccl("allreduce");
}

status nccl_communicator::broadcast(const tensor&, tensor&, int, device_stream&) { return no_nccl("broadcast"); }

status nccl_communicator::allgather(const tensor&, tensor&, device_stream&) { return no_nccl("allgather"); }

status nccl_communicator::reduce_scatter(const tensor&, tensor&, reduce_op, device_stream&) {
  return no_nccl("reduce_scatter");
}

status nccl_communicator::check_async() const { return no_nccl("check_async"); }

void nccl_communicator::abort() {}

} // namespace luoshu
