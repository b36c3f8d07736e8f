// NCCL communicators on real GPUs (graph/nccl.hpp). One rank on cuda:0
// everywhere a GPU is present; two ranks, one thread and one device each,
// where the machine has two GPUs. The API without NCCL, and argument
// checks that need no device, are in tests/graph/nccl_api_test.cpp.
//
// Values are small multiples of 1/8, so every sum and mean here is exact in
// f32 and f64 and results are compared for equality.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "graph/device_backend.hpp"
#include "graph/nccl.hpp"
#include "graph/tensor.hpp"
#include "ops/cuda/runtime.hpp"
#include "ops/kernel.hpp"

using namespace luoshu;

namespace {

device_backend& cuda_backend() {
  static const kernel_registry reg = [] {
    kernel_registry r;
    cuda::register_kernels(r);
    return r;
  }();
  return *reg.backend(device::kind_t::cuda);
}

constexpr int64_t big = (int64_t{1} << 20) + 3;
const std::vector<int64_t> sizes = {0, 1, 7, big};
const reduce_op all_ops[] = {reduce_op::sum, reduce_op::mean, reduce_op::max, reduce_op::min};

/// n values in [-100, 100] (scaled by 1/8 for floats), different per salt.
template <class T>
std::vector<T> values(int64_t n, int salt) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t x = (i * 7919 + salt * 104729) % 201 - 100;
    if constexpr (std::is_floating_point_v<T>)
      v[static_cast<size_t>(i)] = static_cast<T>(x) / T(8);
    else
      v[static_cast<size_t>(i)] = static_cast<T>(x);
  }
  return v;
}

template <class T>
tensor upload(const std::vector<T>& v, device_stream& s) {
  return tensor::from<T>(shape{static_cast<int64_t>(v.size())}, v).to(s);
}

/// A device tensor of n elements, filled with a value no collective here
/// produces (so an output left unwritten shows).
template <class T>
tensor sentinel(int64_t n, device_stream& s) {
  return upload(std::vector<T>(static_cast<size_t>(n), static_cast<T>(12345)), s);
}

/// Waits for the stream, then the tensor's elements.
template <class T>
std::vector<T> read(const tensor& t, device_stream& s) {
  s.synchronize();
  tensor h = t.to_host();
  const T* p = h.numel() > 0 ? h.data<T>() : nullptr;
  return std::vector<T>(p, p + h.numel());
}

/// "" if equal, else how many elements differ and the first difference.
template <class T>
std::string differences(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size())
    return std::to_string(got.size()) + " elements, want " + std::to_string(want.size());
  size_t first = got.size(), count = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) {
      if (count++ == 0) first = i;
    }
  if (count == 0) return "";
  return std::to_string(count) + " of " + std::to_string(got.size()) + " elements differ, the first at " +
         std::to_string(first) + ": got " + std::to_string(got[first]) + ", want " + std::to_string(want[first]);
}

/// A one-rank communicator on cuda:0 and a stream there.
class NcclOneRank : public ::testing::Test {
protected:
  void SetUp() override {
    stream_ = cuda_backend().make_stream(0);
    auto id = nccl_make_id();
    ASSERT_TRUE(id.ok()) << id.err().message;
    auto c = nccl_communicator::create(*id, 0, 1, device::cuda(0));
    ASSERT_TRUE(c.ok()) << c.err().message;
    comm_ = std::move(*c);
    ASSERT_EQ(comm_->rank(), 0);
    ASSERT_EQ(comm_->size(), 1);
    ASSERT_EQ(comm_->device(), device::cuda(0));
  }

  /// Every op, every size, in place and out of place: one rank's allreduce
  /// is its input (integer mean divides by 1, through the same kernel).
  template <class T>
  void allreduce_is_identity() {
    device_stream& s = *stream_;
    for (int64_t n : sizes)
      for (reduce_op op : all_ops) {
        const std::string what = std::string(name(dtype_of<T>)) + " n=" + std::to_string(n) + " " + name(op);
        const auto x = values<T>(n, 1);
        tensor in = upload(x, s);
        tensor out = sentinel<T>(n, s);
        auto st = comm_->allreduce(in, out, op, s);
        ASSERT_TRUE(st.ok()) << what << ": " << st.err().message;
        EXPECT_EQ(differences(read<T>(out, s), x), "") << what << " out of place";
        EXPECT_EQ(differences(read<T>(in, s), x), "") << what << " out of place changed the input";
        st = comm_->allreduce(in, in, op, s);
        ASSERT_TRUE(st.ok()) << what << ": " << st.err().message;
        EXPECT_EQ(differences(read<T>(in, s), x), "") << what << " in place";
      }
  }

  /// broadcast, allgather and reduce_scatter of one rank copy their input.
  template <class T>
  void others_copy() {
    device_stream& s = *stream_;
    for (int64_t n : sizes) {
      const std::string what = std::string(name(dtype_of<T>)) + " n=" + std::to_string(n);
      const auto x = values<T>(n, 2);
      tensor in = upload(x, s);
      tensor out = sentinel<T>(n, s);
      auto st = comm_->broadcast(in, out, 0, s);
      ASSERT_TRUE(st.ok()) << what << ": " << st.err().message;
      EXPECT_EQ(differences(read<T>(out, s), x), "") << what << " broadcast";
      st = comm_->broadcast(in, in, 0, s);
      ASSERT_TRUE(st.ok()) << what << ": " << st.err().message;
      EXPECT_EQ(differences(read<T>(in, s), x), "") << what << " broadcast in place";

      out = sentinel<T>(n, s);
      st = comm_->allgather(in, out, s);
      ASSERT_TRUE(st.ok()) << what << ": " << st.err().message;
      EXPECT_EQ(differences(read<T>(out, s), x), "") << what << " allgather";
      st = comm_->allgather(in, in, s);
      ASSERT_TRUE(st.ok()) << what << ": " << st.err().message;
      EXPECT_EQ(differences(read<T>(in, s), x), "") << what << " allgather in place";

      for (reduce_op op : all_ops) {
        out = sentinel<T>(n, s);
        st = comm_->reduce_scatter(in, out, op, s);
        ASSERT_TRUE(st.ok()) << what << " " << name(op) << ": " << st.err().message;
        EXPECT_EQ(differences(read<T>(out, s), x), "") << what << " reduce_scatter " << name(op);
        st = comm_->reduce_scatter(in, in, op, s);
        ASSERT_TRUE(st.ok()) << what << " " << name(op) << ": " << st.err().message;
        EXPECT_EQ(differences(read<T>(in, s), x), "") << what << " reduce_scatter in place " << name(op);
      }
    }
  }

  /// The error of `st`, which must have failed, mentions every one of `words`.
  static void expect_error(const status& st, std::initializer_list<const char*> words, const char* what) {
    ASSERT_FALSE(st.ok()) << what << ": accepted";
    for (const char* w : words)
      EXPECT_NE(st.err().message.find(w), std::string::npos) << what << ": '" << w << "' not in: " << st.err().message;
  }

  std::unique_ptr<device_stream> stream_;
  std::unique_ptr<nccl_communicator> comm_;
};

TEST_F(NcclOneRank, AllreduceOfOneRankIsItsInputF32) { allreduce_is_identity<float>(); }
TEST_F(NcclOneRank, AllreduceOfOneRankIsItsInputF64) { allreduce_is_identity<double>(); }
TEST_F(NcclOneRank, AllreduceOfOneRankIsItsInputI32) { allreduce_is_identity<int32_t>(); }
TEST_F(NcclOneRank, AllreduceOfOneRankIsItsInputI64) { allreduce_is_identity<int64_t>(); }

TEST_F(NcclOneRank, BroadcastAllgatherReduceScatterOfOneRankCopyF32) { others_copy<float>(); }
TEST_F(NcclOneRank, BroadcastAllgatherReduceScatterOfOneRankCopyF64) { others_copy<double>(); }
TEST_F(NcclOneRank, BroadcastAllgatherReduceScatterOfOneRankCopyI32) { others_copy<int32_t>(); }
TEST_F(NcclOneRank, BroadcastAllgatherReduceScatterOfOneRankCopyI64) { others_copy<int64_t>(); }

TEST_F(NcclOneRank, BadInputsAreClearErrors) {
  device_stream& s = *stream_;
  tensor good = upload(values<float>(8, 3), s);
  tensor good64 = upload(values<double>(8, 3), s);
  tensor seven = upload(values<float>(7, 3), s);
  tensor host = tensor::from<float>(shape{8}, values<float>(8, 3));
  tensor bytes = tensor::zeros(dtype::u8, shape{8}).to(s);
  tensor undefined;

  expect_error(comm_->allreduce(host, good, reduce_op::sum, s), {"input", "cpu", "cuda:0", "rank 0 of 1"}, "host input");
  expect_error(comm_->allreduce(good, host, reduce_op::sum, s), {"output", "cpu"}, "host output");
  expect_error(comm_->allreduce(undefined, good, reduce_op::sum, s), {"input", "undefined"}, "undefined input");
  expect_error(comm_->broadcast(good, undefined, 0, s), {"output", "undefined"}, "undefined output");
  expect_error(comm_->allreduce(good, good64, reduce_op::sum, s), {"f32", "f64", "same dtype"}, "dtype mismatch");
  expect_error(comm_->allreduce(bytes, bytes, reduce_op::sum, s), {"u8"}, "u8");
  expect_error(comm_->allreduce(good, seven, reduce_op::sum, s), {"8 elements", "7 elements"}, "size mismatch");
  expect_error(comm_->broadcast(good, seven, 0, s), {"8 elements", "7 elements"}, "broadcast size mismatch");
  expect_error(comm_->allgather(good, seven, s), {"size * input"}, "allgather size");
  expect_error(comm_->reduce_scatter(good, seven, reduce_op::sum, s), {"size * output"}, "reduce_scatter size");
  expect_error(comm_->broadcast(good, good, 1, s), {"root 1"}, "root out of range");
  expect_error(comm_->broadcast(good, good, -1, s), {"root -1"}, "negative root");

  // Overlapping views that do not start at the same byte.
  tensor a(good.storage(), good.offset(), dtype::f32, shape{4});
  tensor b(good.storage(), good.offset() + 2 * sizeof(float), dtype::f32, shape{4});
  expect_error(comm_->allreduce(a, b, reduce_op::sum, s), {"overlap"}, "overlap");

  // None of that broke the communicator.
  const auto x = values<float>(8, 3);
  tensor out = sentinel<float>(8, s);
  auto st = comm_->allreduce(good, out, reduce_op::sum, s);
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_EQ(differences(read<float>(out, s), x), "");
  EXPECT_TRUE(comm_->check_async().ok());
}

TEST_F(NcclOneRank, AbortMakesLaterCallsFail) {
  device_stream& s = *stream_;
  tensor t = upload(values<float>(8, 4), s);
  ASSERT_TRUE(comm_->allreduce(t, t, reduce_op::sum, s).ok());
  s.synchronize();
  comm_->abort();
  comm_->abort(); // twice is harmless
  expect_error(comm_->allreduce(t, t, reduce_op::sum, s), {"aborted"}, "allreduce after abort");
  expect_error(comm_->check_async(), {"aborted"}, "check_async after abort");
}

TEST(Nccl, CreateRejectsBadArguments) {
  auto id = nccl_make_id();
  ASSERT_TRUE(id.ok()) << id.err().message;
  const int n = cuda::device_count();
  auto missing = nccl_communicator::create(*id, 0, 1, device::cuda(n));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("does not exist"), std::string::npos) << missing.err().message;
  auto empty = nccl_communicator::create(nccl_id{}, 0, 1, device::cuda(0));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.err().message.find("id is empty"), std::string::npos) << empty.err().message;
}

TEST(Nccl, IdsDiffer) {
  auto a = nccl_make_id(), b = nccl_make_id();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->bytes, b->bytes);
}

// --- two ranks -------------------------------------------------------------------------

struct rank_results {
  std::string error;
  std::vector<float> sum_f32, mean_f32, gathered_f32, broadcast_f32;
  std::vector<int64_t> mean_i64;
  std::vector<int32_t> max_i32, scattered_i32;
  std::vector<double> min_f64;
};

void run_rank(const nccl_id& id, int rank, int64_t n, rank_results& r) {
  auto fail = [&](const std::string& what, const status& st) {
    if (!st.ok() && r.error.empty()) r.error = what + ": " + st.err().message;
    return !st.ok();
  };
  try {
    auto stream = cuda_backend().make_stream(rank);
    device_stream& s = *stream;
    auto c = nccl_communicator::create(id, rank, 2, device::cuda(rank));
    if (!c.ok()) {
      r.error = c.err().message;
      return;
    }
    nccl_communicator& comm = **c;

    tensor f = upload(values<float>(n, rank), s);
    tensor sum = sentinel<float>(n, s);
    if (fail("allreduce sum f32", comm.allreduce(f, sum, reduce_op::sum, s))) return;
    tensor mean = upload(values<float>(n, rank), s);
    if (fail("allreduce mean f32", comm.allreduce(mean, mean, reduce_op::mean, s))) return;
    tensor li = upload(values<int64_t>(n, rank), s);
    if (fail("allreduce mean i64", comm.allreduce(li, li, reduce_op::mean, s))) return;
    tensor ii = upload(values<int32_t>(n, rank), s);
    if (fail("allreduce max i32", comm.allreduce(ii, ii, reduce_op::max, s))) return;
    tensor d = upload(values<double>(n, rank), s);
    if (fail("allreduce min f64", comm.allreduce(d, d, reduce_op::min, s))) return;
    tensor gathered = sentinel<float>(2 * n, s);
    if (fail("allgather f32", comm.allgather(f, gathered, s))) return;
    tensor whole = upload(values<int32_t>(2 * n, rank + 10), s);
    tensor part = sentinel<int32_t>(n, s);
    if (fail("reduce_scatter sum i32", comm.reduce_scatter(whole, part, reduce_op::sum, s))) return;
    tensor bc = sentinel<float>(n, s);
    if (fail("broadcast f32", comm.broadcast(f, bc, 1, s))) return;

    r.sum_f32 = read<float>(sum, s);
    r.mean_f32 = read<float>(mean, s);
    r.mean_i64 = read<int64_t>(li, s);
    r.max_i32 = read<int32_t>(ii, s);
    r.min_f64 = read<double>(d, s);
    r.gathered_f32 = read<float>(gathered, s);
    r.scattered_i32 = read<int32_t>(part, s);
    r.broadcast_f32 = read<float>(bc, s);
    if (fail("check_async", comm.check_async())) return;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
}

TEST(Nccl, TwoRanksOnTwoDevicesFromTwoThreads) {
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  auto id = nccl_make_id();
  ASSERT_TRUE(id.ok()) << id.err().message;
  const int64_t n = big;
  rank_results res[2];
  std::thread t0([&] { run_rank(*id, 0, n, res[0]); });
  std::thread t1([&] { run_rank(*id, 1, n, res[1]); });
  t0.join();
  t1.join();
  ASSERT_TRUE(res[0].error.empty()) << "rank 0: " << res[0].error;
  ASSERT_TRUE(res[1].error.empty()) << "rank 1: " << res[1].error;

  std::vector<float> sum(n), mean(n), gathered;
  std::vector<int64_t> mean_i(n);
  std::vector<int32_t> max_i(n);
  std::vector<double> min_d(n);
  const auto f0 = values<float>(n, 0), f1 = values<float>(n, 1);
  const auto l0 = values<int64_t>(n, 0), l1 = values<int64_t>(n, 1);
  const auto i0 = values<int32_t>(n, 0), i1 = values<int32_t>(n, 1);
  const auto d0 = values<double>(n, 0), d1 = values<double>(n, 1);
  const auto w0 = values<int32_t>(2 * n, 10), w1 = values<int32_t>(2 * n, 11);
  for (int64_t i = 0; i < n; ++i) {
    sum[i] = f0[i] + f1[i];
    mean[i] = (f0[i] + f1[i]) / 2;
    mean_i[i] = (l0[i] + l1[i]) / 2; // C++ division: towards zero
    max_i[i] = std::max(i0[i], i1[i]);
    min_d[i] = std::min(d0[i], d1[i]);
  }
  gathered = f0;
  gathered.insert(gathered.end(), f1.begin(), f1.end());
  for (int r = 0; r < 2; ++r) {
    std::vector<int32_t> part(n);
    for (int64_t i = 0; i < n; ++i) part[i] = w0[r * n + i] + w1[r * n + i];
    EXPECT_EQ(differences(res[r].sum_f32, sum), "") << "rank " << r << " sum_f32";
    EXPECT_EQ(differences(res[r].mean_f32, mean), "") << "rank " << r << " mean_f32";
    EXPECT_EQ(differences(res[r].mean_i64, mean_i), "") << "rank " << r << " mean_i64";
    EXPECT_EQ(differences(res[r].max_i32, max_i), "") << "rank " << r << " max_i32";
    EXPECT_EQ(differences(res[r].min_f64, min_d), "") << "rank " << r << " min_f64";
    EXPECT_EQ(differences(res[r].gathered_f32, gathered), "") << "rank " << r << " gathered_f32";
    EXPECT_EQ(differences(res[r].scattered_i32, part), "") << "rank " << r << " scattered_i32";
    EXPECT_EQ(differences(res[r].broadcast_f32, f1), "") << "rank " << r << " broadcast_f32";
  }
}

} // namespace
