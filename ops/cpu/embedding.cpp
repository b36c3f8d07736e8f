// CPU kernels: embedding lookup, embedding bags (ops/embedding.cpp), dropout.

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

/// An embedding_bag node's padding id and mode.
struct bag_attrs {
  bool has_pad = false, mean = false;
  int64_t pad = 0;
  explicit bag_attrs(const node& n)
      : has_pad(!n.attrs.axes.empty()), mean(n.attrs.flag), pad(has_pad ? n.attrs.axes[0] : 0) {}
  bool padding(int64_t id) const { return has_pad && id == pad; }
};

/// Ids per bag that are not padding.
int64_t bag_count(const tensor& ids, const bag_attrs& a, int64_t b, int64_t l) {
  int64_t n = 0;
  for (int64_t j = 0; j < l; ++j) n += a.padding(index_at(ids, b * l + j)) ? 0 : 1;
  return n;
}

// embedding_bag(table [n, d], ids [B, L]) -> [B, d]
void k_embedding_bag(const kernel_call& c) {
  const tensor &table = c.in[0], &ids = c.in[1];
  bag_attrs a(c.n);
  int64_t rows = table.dim(0), d = table.dim(1), bags = ids.dim(0), l = ids.dim(1);
  const int64_t n_ids = ids.numel();
  for (int64_t i = 0; i < n_ids; ++i) {
    int64_t v = index_at(ids, i);
    if (!a.padding(v) && (v < 0 || v >= rows))
      throw luoshu_error("embedding_bag id " + std::to_string(v) + " at position " + std::to_string(i) + " (bag " +
                         std::to_string(l ? i / l : 0) + ") is out of range [0, " + std::to_string(rows) +
                         ") in node '" + c.n.name + "'" +
                         (a.has_pad ? " (the padding id is " + std::to_string(a.pad) + ")" : std::string()));
  }
  dispatch_float(c, table.type(), [&](auto z) {
    using T = decltype(z);
    const T* t = table.data<T>();
    T* out = c.out.data<T>();
    parallel_for(bags, l * d, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        T* o = out + b * d;
        std::fill(o, o + d, T(0));
        int64_t n = 0;
        for (int64_t j = 0; j < l; ++j) {
          int64_t v = index_at(ids, b * l + j);
          if (a.padding(v)) continue;
          ++n;
          const T* row = t + v * d;
#pragma omp simd
          for (int64_t e = 0; e < d; ++e) o[e] += row[e];
        }
        if (a.mean && n > 1) {
          T inv = T(1) / static_cast<T>(n);
          for (int64_t e = 0; e < d; ++e) o[e] *= inv;
        }
      }
    });
  });
}

// embedding_bag_grad(dy [B, d], ids [B, L]) -> [B * L, d]
void k_embedding_bag_grad(const kernel_call& c) {
  const tensor &dy = c.in[0], &ids = c.in[1];
  bag_attrs a(c.n);
  int64_t d = dy.dim(1), bags = ids.dim(0), l = ids.dim(1);
  dispatch_float(c, dy.type(), [&](auto z) {
    using T = decltype(z);
    const T* g = dy.data<T>();
    T* out = c.out.data<T>();
    parallel_for(bags, l * d, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        int64_t n = a.mean ? bag_count(ids, a, b, l) : 1;
        T w = n > 0 ? T(1) / static_cast<T>(n) : T(0);
        for (int64_t j = 0; j < l; ++j) {
          T* o = out + (b * l + j) * d;
          if (a.padding(index_at(ids, b * l + j))) {
            std::fill(o, o + d, T(0));
            continue;
          }
          const T* gb = g + b * d;
#pragma omp simd
          for (int64_t e = 0; e < d; ++e) o[e] = gb[e] * w;
        }
      }
    });
  });
}

// embedding_bag_rows(ids [B, L]) -> i64 [B * L]
void k_embedding_bag_rows(const kernel_call& c) {
  const tensor& ids = c.in[0];
  bag_attrs a(c.n);
  int64_t k = ids.numel(), fill = 0;
  for (int64_t i = 0; i < k; ++i)
    if (!a.padding(index_at(ids, i))) {
      fill = index_at(ids, i);
      break;
    }
  int64_t* out = c.out.data<int64_t>();
  for (int64_t i = 0; i < k; ++i) {
    int64_t v = index_at(ids, i);
    out[i] = a.padding(v) ? fill : v;
  }
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
  r.add(op_kind::embedding_bag, cpu, k_embedding_bag);
  r.add(op_kind::embedding_bag_grad, cpu, k_embedding_bag_grad);
  r.add(op_kind::embedding_bag_rows, cpu, k_embedding_bag_rows);
  r.add(op_kind::dropout, cpu, k_dropout);
  r.add(op_kind::dropout_grad, cpu, k_dropout);
}

} // namespace luoshu::cpu
