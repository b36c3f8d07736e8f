#include "graph/variables.hpp"

#include <cmath>

#include "ops/random.hpp"

namespace luoshu {

namespace {

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct fans {
  double in = 1, out = 1;
};

fans fans_of(const shape& s) {
  fans f;
  if (s.rank() == 0) return f;
  if (s.rank() == 1) {
    f.in = f.out = static_cast<double>(s[0]);
    return f;
  }
  if (s.rank() == 2) {
    f.in = static_cast<double>(s[0]);
    f.out = static_cast<double>(s[1]);
    return f;
  }
  double field = 1;
  for (int i = 2; i < s.rank(); ++i) field *= static_cast<double>(s[i]);
  f.in = static_cast<double>(s[1]) * field;
  f.out = static_cast<double>(s[0]) * field;
  return f;
}

/// A stream of deterministic uniforms and normals.
class rng {
public:
  explicit rng(uint64_t key) : key_(key) {}
  double uniform() { return ops::uniform01(key_, counter_++); }
  double normal() {
    // Box-Muller on two uniforms; (0, 1] for the log.
    double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

} // namespace

tensor initial_value(const initializer& init, dtype t, const shape& s, uint64_t seed) {
  tensor out = tensor::zeros(dtype::f64, s);
  double* p = out.data<double>();
  int64_t n = out.numel();
  rng r(seed);
  fans f = fans_of(s);
  using K = initializer::kind_t;
  auto fill_uniform = [&](double lo, double hi) {
    for (int64_t i = 0; i < n; ++i) p[i] = lo + (hi - lo) * r.uniform();
  };
  auto fill_normal = [&](double mean, double sd) {
    for (int64_t i = 0; i < n; ++i) p[i] = mean + sd * r.normal();
  };
  switch (init.kind) {
    case K::zeros: break;
    case K::constant:
      for (int64_t i = 0; i < n; ++i) p[i] = init.a;
      break;
    case K::uniform: fill_uniform(init.a, init.b); break;
    case K::normal: fill_normal(init.a, init.b); break;
    case K::truncated_normal:
      for (int64_t i = 0; i < n; ++i) {
        double z;
        do z = r.normal();
        while (std::abs(z) > 2.0);
        p[i] = init.a + init.b * z;
      }
      break;
    case K::xavier_uniform: {
      double a = init.a * std::sqrt(6.0 / (f.in + f.out));
      fill_uniform(-a, a);
      break;
    }
    case K::xavier_normal: fill_normal(0, init.a * std::sqrt(2.0 / (f.in + f.out))); break;
    case K::he_uniform: {
      double a = init.a * std::sqrt(3.0 / f.in);
      fill_uniform(-a, a);
      break;
    }
    case K::he_normal: fill_normal(0, init.a / std::sqrt(f.in)); break;
  }
  return t == dtype::f64 ? out : out.cast(t);
}

const tensor& variable_store::get(const std::string& name) const {
  auto it = vars_.find(name);
  if (it == vars_.end()) throw luoshu_error("no variable '" + name + "' in the store");
  return it->second;
}

void variable_store::set(const std::string& name, tensor value) { vars_[name] = std::move(value); }

status variable_store::initialize(const graph& g) {
  for (size_t i = 0; i < g.size(); ++i) {
    const node& n = g.at(static_cast<node_id>(i));
    if (n.op != op_kind::variable) continue;
    auto it = vars_.find(n.name);
    if (it != vars_.end()) {
      if (it->second.type() != n.type || !(it->second.shape() == n.shape))
        return error{"variable '" + n.name + "' holds " + name(it->second.type()) +
                     it->second.shape().to_string() + " but the graph declares " + name(n.type) +
                     n.shape.to_string()};
      continue;
    }
    try {
      vars_[n.name] = initial_value(n.attrs.init, n.type, n.shape, ops::mix64(seed_ ^ hash_name(n.name)));
    } catch (const luoshu_error& e) {
      return error{"initializing variable '" + n.name + "': " + e.what()};
    }
  }
  return {};
}

status variable_store::save(const std::string& path, std::map<std::string, std::string> metadata) const {
  checkpoint ck;
  try { // variables trained on a GPU live there: the file gets host copies
    for (const auto& [name, t] : vars_) ck.tensors[name] = t.to_host();
  } catch (const luoshu_error& e) {
    return error{path + ": copying variables to the host: " + e.what()};
  }
  ck.metadata = std::move(metadata);
  return save_checkpoint(path, ck);
}

result<std::map<std::string, std::string>> variable_store::load(const std::string& path) {
  auto ck = load_checkpoint(path);
  if (!ck) return ck.err();
  for (auto& [name, t] : ck->tensors) {
    auto it = vars_.find(name);
    if (it != vars_.end() && (it->second.type() != t.type() || !(it->second.shape() == t.shape())))
      return error{path + ": '" + name + "' is " + luoshu::name(t.type()) + t.shape().to_string() +
                   " in the checkpoint but " + luoshu::name(it->second.type()) + it->second.shape().to_string() +
                   " in the model"};
  }
  for (auto& [name, t] : ck->tensors) vars_[name] = t;
  return ck->metadata;
}

size_t variable_store::bytes() const {
  size_t b = 0;
  for (auto& [k, v] : vars_) b += v.nbytes();
  return b;
}

} // namespace luoshu
