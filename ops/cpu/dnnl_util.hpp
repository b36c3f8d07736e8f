#pragma once
// oneDNN primitives for the CPU kernels (conv, pool): one CPU engine, a
// stream per call, and oneDNN's own primitive cache keyed by shape and
// attributes (so repeated shapes do not rebuild kernels). oneDNN runs on the
// same OpenMP pool as every other kernel (Debian's libdnnl uses libgomp).

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "ops/cpu/cpu_util.hpp"

namespace luoshu::cpu {

/// The CPU engine (created once; oneDNN engines are thread-safe).
inline const dnnl::engine& dnnl_engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

/// The CPU kernels' channel block (kernel_registry::channel_block; layout
/// of a blocked image: [N, C/B, H, W, B]): 16 where oneDNN runs AVX-512
/// (its direct convolutions read and write nChw16c), 8 with AVX2 (nChw8c),
/// else 0 (no blocked layouts).
inline int64_t dnnl_channel_block() {
  static const int64_t b = [] {
    const auto isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) return int64_t{16};
    if ((isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2) return int64_t{8};
    return int64_t{0};
  }();
  return b;
}

/// An f32 image [n, c, h, w]: plain NCHW or channel-blocked.
inline dnnl::memory::desc image_desc(const dnnl::memory::dims& nchw, bool blocked) {
  using tag = dnnl::memory::format_tag;
  return {nchw, dnnl::memory::data_type::f32,
          !blocked ? tag::nchw : dnnl_channel_block() == 16 ? tag::aBcd16b : tag::aBcd8b};
}

/// An f32 memory over a tensor's bytes (not owned), in layout md.
inline dnnl::memory dnnl_mem(const dnnl::memory::desc& md, const tensor& t) {
  return dnnl::memory(md, dnnl_engine(), t.raw());
}

/// Runs a primitive to completion.
inline void dnnl_run(const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  dnnl::stream s(dnnl_engine());
  p.execute(s, args);
  s.wait();
}

/// A oneDNN primitive that runs on the layouts oneDNN prefers for it
/// (blocked formats picked through format_tag::any: direct JIT kernels
/// instead of im2col + GEMM), with each tensor's own layout (plain, or
/// channel-blocked where the executor keeps it so) reordered into scratch
/// buffers on the way in and back on the way out where it differs. Build
/// one per shape and layouts with staged_primitive_cache(); not shared
/// between threads.
struct staged_primitive {
  struct arg {
    int id = 0;                 ///< DNNL_ARG_*
    bool output = false;
    dnnl::memory::desc plain;   ///< the tensor's layout
    bool staged = false;        ///< the primitive wants another layout
    dnnl::memory buf;           ///< scratch in the wanted layout (staged only)
    dnnl::primitive reorder;    ///< plain -> buf (inputs) or buf -> plain (outputs)
  };
  dnnl::primitive prim;
  std::vector<arg> args;

  /// Adds an argument whose tensor is laid out as `plain` and which the
  /// primitive wants as `want`.
  void add(int id, bool output, const dnnl::memory::desc& plain, const dnnl::memory::desc& want) {
    arg a;
    a.id = id;
    a.output = output;
    a.plain = plain;
    a.staged = !(plain == want);
    if (a.staged) {
      a.buf = dnnl::memory(want, dnnl_engine());
      a.reorder = output ? dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_engine(), want, dnnl_engine(), plain))
                         : dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_engine(), plain, dnnl_engine(), want));
    }
    args.push_back(std::move(a));
  }

  /// Runs on `tensors` (one per add(), in order) to completion.
  void run(const std::vector<const tensor*>& tensors) {
    dnnl::stream s(dnnl_engine());
    std::unordered_map<int, dnnl::memory> m;
    std::vector<dnnl::memory> plain(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      arg& a = args[i];
      plain[i] = dnnl_mem(a.plain, *tensors[i]);
      if (!a.staged) {
        m[a.id] = plain[i];
        continue;
      }
      if (!a.output) a.reorder.execute(s, {{DNNL_ARG_FROM, plain[i]}, {DNNL_ARG_TO, a.buf}});
      m[a.id] = a.buf;
    }
    prim.execute(s, m);
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i].staged && args[i].output)
        args[i].reorder.execute(s, {{DNNL_ARG_FROM, args[i].buf}, {DNNL_ARG_TO, plain[i]}});
    s.wait();
  }
};

/// This thread's staged primitive for `key` (a string naming the primitive
/// and every shape parameter), built by make() on first use. At most 64 are
/// kept per thread (then the cache starts over).
template <class Make>
staged_primitive& staged_primitive_cache(const std::string& key, Make&& make) {
  thread_local std::unordered_map<std::string, staged_primitive> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 64) cache.clear();
  return cache.emplace(key, make()).first->second;
}

/// Runs f(), turning oneDNN errors into luoshu_errors naming the node.
template <class F>
void dnnl_guard(const kernel_call& c, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw luoshu_error(std::string("oneDNN failed in node '") + c.n.name + "' (op " + name(c.n.op) + "): " + e.what());
  }
}

} // namespace luoshu::cpu
