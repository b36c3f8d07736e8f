#pragma once
// Sample values and graphs shared by the codec tests and the fuzzer.

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "graph/builder.hpp"
#include "graph/optimizer.hpp"
#include "transport/codec.hpp"

namespace luoshu::transport::test {

inline std::span<const char> bytes_of(const wire_bytes& b) { return {b.data(), b.size()}; }

/// A host tensor of any dtype filled with random bytes.
inline tensor random_tensor(dtype t, shape s, std::mt19937_64& rng) {
  tensor x(t, std::move(s));
  auto* p = static_cast<unsigned char*>(x.raw());
  for (size_t i = 0; i < x.nbytes(); ++i) p[i] = static_cast<unsigned char>(rng());
  return x;
}

/// Same dtype, shape and bytes (undefined equals undefined).
inline bool same_tensor(const tensor& a, const tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  return a.type() == b.type() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

inline join_request sample_join_request() {
  join_request m;
  m.token = "s3cret-token";
  m.self = {3, "worker-3", "host-a.example", 4242, node_role::worker, "cuda:1"};
  m.world_size = 8;
  return m;
}

inline join_reply sample_join_reply() {
  return {false, "token mismatch: the cluster token differs", 5, 8, 250};
}

inline barrier_request sample_barrier_request() { return {"epoch-1/end", 2}; }

inline ps_request sample_ps_push(std::mt19937_64& rng) {
  ps_request m;
  m.seq = 9;
  m.worker = 3;
  m.clock = 17;
  m.op = ps_op::push_pull;
  m.table = 2;
  m.keys = {5, 1ull << 40, 77};
  m.values = random_tensor(dtype::f32, {3, 4}, rng);
  return m;
}

inline ps_request sample_ps_create() {
  ps_request m;
  m.op = ps_op::create;
  m.spec.id = 4;
  m.spec.name = "embedding/table";
  m.spec.sparse = true;
  m.spec.width = 16;
  m.spec.init = {initializer::kind_t::normal, 0, 0.01};
  m.spec.seed = 5;
  m.spec.optimizer.rule = ps_optimizer::rule_t::adam;
  return m;
}

inline ps_reply sample_ps_reply(std::mt19937_64& rng) {
  ps_reply m;
  m.seq = 9;
  m.values = random_tensor(dtype::f64, {2, 3}, rng);
  m.partial = {1.5, 2.5};
  m.staleness = 1;
  return m;
}

inline collective_message sample_collective_chunk() {
  collective_message m;
  m.kind = collective_message::kind_t::chunk;
  m.chunk = {7, collective_kind::allreduce, dtype::f64, reduce_op::max, 3, 2, 1000, 250, 4001, 5};
  return m;
}

inline collective_message sample_collective_hello() {
  collective_message m;
  m.kind = collective_message::kind_t::hello;
  m.hello = {"train", 2, 4, "/luoshu-4242-00000000deadbeef", 0x0123456789abcdefULL, 16, 524288};
  return m;
}

inline collective_message sample_collective_abort() {
  collective_message m;
  m.kind = collective_message::kind_t::abort;
  m.abort = {"collective 'train': rank 3 is gone", 3};
  return m;
}

/// A small MLP classifier (6 features, 16 hidden, 3 classes) set up for
/// training with `cfg`: forward, gradients() via minimize(), update nodes.
struct mlp {
  graph g;
  expr x, labels, loss;
  train_ops ops;

  explicit mlp(optimizer_config cfg = {}) {
    x = g.placeholder("x", dtype::f32, {shape::unknown, 6});
    labels = g.placeholder("labels", dtype::i64, {shape::unknown});
    auto w1 = g.variable("dense1/w", {6, 16}, init::xavier_uniform());
    auto b1 = g.variable("dense1/b", {16}, init::zeros());
    auto w2 = g.variable("dense2/w", {16, 3}, init::he_normal());
    auto b2 = g.variable("dense2/b", {3}, init::constant(0.1));
    auto h = relu(matmul(x, w1) + b1);
    auto logits = linear(h, w2, b2);
    loss = mean(softmax_cross_entropy(logits, labels)).named("loss");
    ops = minimize(loss, cfg);
  }
};

} // namespace luoshu::transport::test
