#pragma once
// Each op family fills its ops' rows of the op table (ops/op.cpp calls them
// all and checks that no op was left out).

#include "ops/op.hpp"

namespace luoshu::ops {

struct op_table {
  op_info rows[op_count];
  void set(op_kind k, uint32_t flags, infer_fn infer, grad_fn grad) {
    auto& r = rows[static_cast<int>(k)];
    r.flags = flags;
    r.infer = infer;
    r.grad = grad;
  }
};

void describe_source(op_table& t);
void describe_elementwise(op_table& t);
void describe_activation(op_table& t);
void describe_matmul(op_table& t);
void describe_conv(op_table& t);
void describe_pool(op_table& t);
void describe_rnn(op_table& t);
void describe_norm(op_table& t);
void describe_layer_norm(op_table& t);
void describe_attention(op_table& t);
void describe_reduce(op_table& t);
void describe_shape(op_table& t);
void describe_embedding(op_table& t);
void describe_loss(op_table& t);
void describe_optimizer(op_table& t);

} // namespace luoshu::ops
