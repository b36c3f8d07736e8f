// CPU kernels: embedding lookup, dropout.

#include "ops/cpu/cpu_util.hpp"
#include "ops/cpu/register.hpp"
#include "ops/random.hpp"

namespace luoshu::cpu {

namespace {

void k_embedding(const kernel_call& c) {
  const tensor &table = c.in[0], &ids = c.in[1];
  int64_t rows = table.dim(0);
  int64_t width = rows ? table.numel() / rows : 0;
  int64_t k = ids.numel();
  for (int64_t i = 0; i < k; ++i) {
    int64_t v = index_at(ids, i);
    if (v < 0 || v >= rows)
      throw luoshu_error("embedding id " + std::to_string(v) + " at position " + std::to_string(i) +
                         " is out of range [0, " + std::to_string(rows) + ") in node '" + c.n.name + "'");
  }
  size_t row = static_cast<size_t>(width) * size_of(table.type());
  const char* in = static_cast<const char*>(table.raw());
  char* out = static_cast<char*>(c.out.raw());
  parallel_for(k, width, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (i + 8 < e) __builtin_prefetch(in + static_cast<size_t>(index_at(ids, i + 8)) * row); // scattered rows
      std::memcpy(out + static_cast<size_t>(i) * row, in + static_cast<size_t>(index_at(ids, i)) * row, row);
    }
  });
}

void k_dropout(const kernel_call& c) {
  const tensor& x = c.in[0];
  double rate = c.n.attrs.alpha;
  if (!c.ctx.training || rate == 0) {
    if (c.out.raw() != x.raw()) std::memcpy(c.out.raw(), x.raw(), x.nbytes());
    return;
  }
  uint64_t key = ops::dropout_key(c.n.attrs.seed, c.ctx.step);
  dispatch_float(c, x.type(), [&](auto z) {
    using T = decltype(z);
    const T* in = x.data<T>();
    T* out = c.out.data<T>();
    T scale = static_cast<T>(1.0 / (1.0 - rate));
    parallel_for(x.numel(), 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        out[i] = ops::dropout_keep(key, static_cast<uint64_t>(i), rate) ? in[i] * scale : T(0);
    });
  });
}

} // namespace

void register_embedding(kernel_registry& r) {
  auto cpu = device::kind_t::cpu;
  r.add(op_kind::embedding, cpu, k_embedding);
  r.add(op_kind::dropout, cpu, k_dropout);
  r.add(op_kind::dropout_grad, cpu, k_dropout);
}

} // namespace luoshu::cpu
