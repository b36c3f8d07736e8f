// graph/nccl.hpp where no GPU is needed: in a build without NCCL every call
// is an error saying so; in either build, arguments that can be refused
// before any device is touched are refused with a clear message. The
// collectives themselves are tested on GPUs in tests/gpu/nccl_test.cpp.

#include "graph/nccl.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "graph/device_backend.hpp"
#include "graph/tensor.hpp"
#include "ops/cuda/runtime.hpp"

namespace luoshu {
namespace {

/// A stream that is never used: the calls fail before they reach it.
class unused_stream final : public device_stream {
public:
  luoshu::device device() const override { return luoshu::device::cuda(0); }
  std::shared_ptr<storage> allocate(size_t) override { throw std::logic_error("unused_stream::allocate"); }
  void upload(void*, const void*, size_t) override { throw std::logic_error("unused_stream::upload"); }
  void download(void*, const void*, size_t) override { throw std::logic_error("unused_stream::download"); }
  void copy(void*, const void*, size_t) override { throw std::logic_error("unused_stream::copy"); }
  void synchronize() override {}
  void set_current_node(const std::string&, const char*) override {}
  size_t cached_bytes() const override { return 0; }
  void* native() override { return nullptr; }
};

void expect_mentions(const std::string& message, std::initializer_list<const char*> words) {
  for (const char* w : words) EXPECT_NE(message.find(w), std::string::npos) << "'" << w << "' not in: " << message;
}

nccl_id some_id() {
  nccl_id id;
  id.bytes[0] = 1;
  return id;
}

TEST(NcclApi, WithoutNcclEveryCallSaysSo) {
  if (nccl_built()) GTEST_SKIP() << "this build has NCCL";
  auto id = nccl_make_id();
  ASSERT_FALSE(id.ok());
  expect_mentions(id.err().message, {"NCCL", "no CUDA or NCCL"});

  auto c = nccl_communicator::create(some_id(), 1, 2, device::cuda(1));
  ASSERT_FALSE(c.ok());
  expect_mentions(c.err().message, {"rank 1 of 2", "cuda:1", "no CUDA or NCCL"});

  // A communicator object can exist only by hand here; every call refuses.
  nccl_communicator comm(0, 1, device::cuda(0));
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.device(), device::cuda(0));
  unused_stream s;
  tensor t = tensor::zeros(dtype::f32, shape{4});
  auto e1 = comm.allreduce(t, t, reduce_op::sum, s);
  auto e2 = comm.broadcast(t, t, 0, s);
  auto e3 = comm.allgather(t, t, s);
  auto e4 = comm.reduce_scatter(t, t, reduce_op::mean, s);
  auto e5 = comm.check_async();
  for (const status* e : {&e1, &e2, &e3, &e4, &e5}) {
    ASSERT_FALSE(e->ok());
    expect_mentions(e->err().message, {"no CUDA or NCCL"});
  }
  comm.abort(); // nothing to abort; must not crash
}

TEST(NcclApi, ArgumentsAreCheckedBeforeAnyDevice) {
  // Refused in both builds: without NCCL because there is none, with it
  // before NCCL or a device is touched. Either way the message names the
  // rank, the size and the device.
  struct bad_case {
    nccl_id id;
    int rank, size;
    device dev;
    const char* says; ///< with NCCL
  };
  const bad_case cases[] = {
      {some_id(), 0, 0, device::cuda(0), "size must be at least 1"},
      {some_id(), 2, 2, device::cuda(0), "rank must be in [0, 2)"},
      {some_id(), -1, 2, device::cuda(0), "rank must be in [0, 2)"},
      {some_id(), 0, 1, device::cpu(), "needs a CUDA device"},
      {nccl_id{}, 0, 1, device::cuda(0), "id is empty"},
  };
  for (const auto& k : cases) {
    auto c = nccl_communicator::create(k.id, k.rank, k.size, k.dev);
    ASSERT_FALSE(c.ok()) << k.says;
    expect_mentions(c.err().message, {"NCCL", ("rank " + std::to_string(k.rank) + " of " + std::to_string(k.size)).c_str(),
                                      k.dev.to_string().c_str(), nccl_built() ? k.says : "no CUDA or NCCL"});
  }
}

TEST(NcclApi, WithNcclButNoGpuJoiningIsAnErrorNotACrash) {
  if (!nccl_built()) GTEST_SKIP() << "this build has no NCCL";
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present (tests/gpu/nccl_test.cpp covers it)";
  // A made-up id is fine here: the missing device is found before NCCL runs.
  auto c = nccl_communicator::create(some_id(), 0, 1, device::cuda(0));
  ASSERT_FALSE(c.ok());
  expect_mentions(c.err().message, {"NCCL", "rank 0 of 1", "cuda:0"});
}

} // namespace
} // namespace luoshu
