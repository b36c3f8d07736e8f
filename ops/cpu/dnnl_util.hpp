#pragma once
// oneDNN primitives for the CPU kernels (conv, pool): one CPU engine, a
// stream per call, and oneDNN's own primitive cache keyed by shape and
// attributes (so repeated shapes do not rebuild kernels). oneDNN runs on the
// same OpenMP pool as every other kernel (Debian's libdnnl uses libgomp).

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <unordered_map>

#include "ops/cpu/cpu_util.hpp"

namespace luoshu::cpu {

/// The CPU engine (created once; oneDNN engines are thread-safe).
inline const dnnl::engine& dnnl_engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

/// A plain f32 memory over a tensor's bytes (not owned).
inline dnnl::memory dnnl_mem(const dnnl::memory::desc& md, const tensor& t) {
  return dnnl::memory(md, dnnl_engine(), t.raw());
}

/// Runs a primitive to completion.
inline void dnnl_run(const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  dnnl::stream s(dnnl_engine());
  p.execute(s, args);
  s.wait();
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
