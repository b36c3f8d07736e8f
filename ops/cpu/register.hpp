#pragma once
// Per-family registration functions of the CPU backend (ops/cpu/register.cpp
// calls them all).

#include "ops/kernel.hpp"

namespace luoshu::cpu {

void register_elementwise(kernel_registry& r);
void register_activation(kernel_registry& r);
void register_matmul(kernel_registry& r);
void register_conv(kernel_registry& r);
void register_pool(kernel_registry& r);
void register_rnn(kernel_registry& r);
void register_norm(kernel_registry& r);
void register_layer_norm(kernel_registry& r);
void register_attention(kernel_registry& r);
void register_reduce(kernel_registry& r);
void register_shape(kernel_registry& r);
void register_embedding(kernel_registry& r);
void register_loss(kernel_registry& r);
void register_optimizer(kernel_registry& r);

} // namespace luoshu::cpu
