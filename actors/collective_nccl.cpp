// NCCL communicators bootstrapped through a CPU ring: rank 0 makes the
// unique id and the ring broadcasts it (over the bulk lane, as a collective
// message), so the id travels over CAF like every other message of the job.

#include <cstring>

#include "actors/collective.hpp"
#include "graph/nccl.hpp"

namespace luoshu::actors {

result<std::unique_ptr<nccl_communicator>> make_nccl_communicator(communicator& ring, device dev) {
  if (!nccl_built()) return error{"collective '" + ring.group() + "': this build has no CUDA/NCCL"};
  if (dev.kind != device::kind_t::cuda)
    return error{"collective '" + ring.group() + "': NCCL needs a CUDA device, not " + dev.to_string()};
  static_assert(sizeof(nccl_id::bytes) % sizeof(int64_t) == 0);
  constexpr int64_t words = sizeof(nccl_id::bytes) / sizeof(int64_t);
  tensor id_words(dtype::i64, shape{words});
  std::string made;
  if (ring.rank() == 0) {
    auto id = nccl_make_id();
    // A failure still takes part in the broadcast (all zeros), so the other
    // ranks fail at once instead of waiting for an id that never comes.
    if (id) std::memcpy(id_words.raw(), id->bytes.data(), sizeof(id->bytes));
    else made = id.err().message, std::memset(id_words.raw(), 0, id_words.nbytes());
  }
  if (status st = ring.broadcast(id_words, id_words, 0).get(); !st)
    return error{"sending the NCCL id over the ring: " + st.err().message};
  if (!made.empty()) return error{"rank 0 could not make an NCCL id: " + made};
  nccl_id id;
  std::memcpy(id.bytes.data(), id_words.raw(), sizeof(id.bytes));
  bool zero = true;
  for (char c : id.bytes) zero = zero && c == 0;
  if (zero) return error{"rank 0 could not make an NCCL id (it sent none)"};
  return nccl_communicator::create(id, ring.rank(), ring.size(), dev);
}

} // namespace luoshu::actors
