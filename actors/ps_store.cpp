#include "actors/ps_store.hpp"

#include <cmath>
#include <mutex>

#include "actors/id_index.hpp"
#include "graph/checkpoint.hpp"
#include "graph/variables.hpp"
#include "ops/random.hpp"
#include "ops/update_rules.hpp"

namespace luoshu::actors {

using transport::ps_optimizer;

namespace {

uint64_t table_salt(uint32_t id) { return ops::mix64(0x5053u ^ (uint64_t{id} << 20)); }

int slot_count(ps_optimizer::rule_t r) {
  switch (r) {
    case ps_optimizer::rule_t::sgd: return 0;
    case ps_optimizer::rule_t::momentum:
    case ps_optimizer::rule_t::adagrad: return 1;
    default: return 2;
  }
}

std::string describe(const ps_table_spec& t) {
  return std::string(t.sparse ? "sparse" : "dense") + " " + name(t.type) + " rows " + std::to_string(t.rows) +
         " width " + std::to_string(t.width) + " optimizer " +
         std::to_string(static_cast<int>(t.optimizer.rule));
}

std::mutex& functions_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, ps_function>& functions() {
  static std::map<std::string, ps_function> f = {
      {"sum_squares",
       [](ps_rows& r, const std::vector<double>&) -> result<std::vector<double>> {
         double s = 0;
         for (double v : r.values) s += v * v;
         return std::vector<double>{s};
       }},
      {"row_count",
       [](ps_rows& r, const std::vector<double>&) -> result<std::vector<double>> {
         return std::vector<double>{static_cast<double>(r.rows)};
       }},
      {"scale",
       [](ps_rows& r, const std::vector<double>& a) -> result<std::vector<double>> {
         if (a.size() != 1) return error{"scale takes one argument (the factor)"};
         for (double& v : r.values) v *= a[0];
         r.changed = true;
         return std::vector<double>{static_cast<double>(r.rows)};
       }},
      {"clip_rows",
       [](ps_rows& r, const std::vector<double>& a) -> result<std::vector<double>> {
         if (a.size() != 1 || !(a[0] > 0)) return error{"clip_rows takes one argument (the norm bound, > 0)"};
         double clipped = 0;
         for (int64_t i = 0; i < r.rows; ++i) {
           auto row = r.values.subspan(static_cast<size_t>(i * r.width), static_cast<size_t>(r.width));
           double n = 0;
           for (double v : row) n += v * v;
           n = std::sqrt(n);
           if (n > a[0]) {
             for (double& v : row) v *= a[0] / n;
             clipped += 1;
             r.changed = true;
           }
         }
         return std::vector<double>{clipped};
       }},
  };
  return f;
}

} // namespace

int ps_shard_of(const ps_table_spec& t, uint64_t id, int shards) {
  if (shards <= 1) return 0;
  if (!t.sparse && !t.hash_partition) {
    if (id >= t.rows) return -1;
    // The s with rows*s/S <= id < rows*(s+1)/S.
    auto s = static_cast<int>(((static_cast<unsigned __int128>(id) + 1) * static_cast<unsigned>(shards) - 1) / t.rows);
    return s;
  }
  return static_cast<int>(ops::mix64(id ^ table_salt(t.id)) % static_cast<uint64_t>(shards));
}

void register_ps_function(const std::string& name, ps_function fn) {
  std::lock_guard lock(functions_mutex());
  functions()[name] = std::move(fn);
}

/// One table's rows on this shard.
struct ps_store::table {
  ps_table_spec spec;
  int slots = 0;
  bool ranged = false;  ///< dense range partitioning: local row = id - begin
  uint64_t begin = 0, end = 0;
  id_index index;                              ///< id -> local row (not ranged)
  std::vector<uint64_t> ids;                   ///< local row -> id (not ranged)
  std::vector<double> w, s0, s1;               ///< rows * width each (slots as the rule needs)
  int64_t step = 0;                            ///< pushes applied (adam's t)

  int64_t rows() const { return static_cast<int64_t>(w.size() / spec.width); }

  /// Values of an f32 table are f32 values (held as double): each update
  /// computes in double and rounds the result, so a pull returns exactly
  /// what the table holds.
  void round(double& v) const {
    if (spec.type == dtype::f32) v = static_cast<double>(static_cast<float>(v));
  }

  /// The initial value of row `id`.
  void init_row(uint64_t id, double* out) const {
    tensor v = initial_value(spec.init, dtype::f64, shape{static_cast<int64_t>(spec.width)},
                             ops::mix64(spec.seed ^ table_salt(spec.id) ^ ops::mix64(id)));
    const double* p = v.data<double>();
    std::copy(p, p + spec.width, out);
    for (uint32_t j = 0; j < spec.width; ++j) round(out[j]);
  }

  void grow(int64_t n) {
    size_t sz = static_cast<size_t>(n) * spec.width;
    w.resize(sz);
    if (slots > 0) s0.resize(sz, 0.0);
    if (slots > 1) s1.resize(sz, 0.0);
  }
};

ps_store::ps_store(int shard, int shards) : shard_(shard), shards_(shards) {}
ps_store::~ps_store() = default;

std::string ps_store::checkpoint_path(const std::string& dir, int shard, int shards) {
  return dir + "/shard-" + std::to_string(shard) + "-of-" + std::to_string(shards) + ".ckpt";
}

status ps_store::create(const ps_table_spec& spec) {
  if (spec.width == 0) return error{"table '" + spec.name + "': width must be >= 1"};
  if (!spec.sparse && spec.rows == 0) return error{"dense table '" + spec.name + "' needs rows >= 1"};
  if (spec.type != dtype::f32 && spec.type != dtype::f64)
    return error{"table '" + spec.name + "': dtype must be f32 or f64"};
  if (auto it = tables_.find(spec.id); it != tables_.end()) {
    if (it->second->spec == spec) return {};
    return error{"table " + std::to_string(spec.id) + " exists as '" + it->second->spec.name + "' (" +
                 describe(it->second->spec) + "); asked for '" + spec.name + "' (" + describe(spec) + ")"};
  }
  auto t = std::make_unique<table>();
  t->spec = spec;
  t->slots = slot_count(spec.optimizer.rule);
  t->ranged = !spec.sparse && !spec.hash_partition;
  if (t->ranged) {
    auto bound = [&](int s) {
      return static_cast<uint64_t>(static_cast<unsigned __int128>(spec.rows) * static_cast<unsigned>(s) /
                                   static_cast<unsigned>(shards_));
    };
    t->begin = bound(shard_);
    t->end = bound(shard_ + 1);
    t->grow(static_cast<int64_t>(t->end - t->begin));
    for (uint64_t id = t->begin; id < t->end; ++id)
      t->init_row(id, t->w.data() + (id - t->begin) * spec.width);
  }
  tables_[spec.id] = std::move(t);
  return {};
}

const ps_table_spec* ps_store::spec(uint32_t id) const {
  auto it = tables_.find(id);
  return it == tables_.end() ? nullptr : &it->second->spec;
}

int64_t ps_store::rows_held(uint32_t id) const {
  auto it = tables_.find(id);
  return it == tables_.end() ? 0 : it->second->rows();
}

result<ps_store::table*> ps_store::find(uint32_t id, const char* what) {
  auto it = tables_.find(id);
  if (it == tables_.end())
    return error{std::string(what) + ": unknown table " + std::to_string(id) + " on shard " + std::to_string(shard_)};
  return it->second.get();
}

namespace {

/// Local rows of `ids` (made on first touch when `make`), or an error
/// naming the first id this shard does not own.
result<std::vector<int64_t>> locate(ps_store::table& t, std::span<const uint64_t> ids, int shard, int shards,
                                    bool make) {
  std::vector<int64_t> rows(ids.size());
  const auto& s = t.spec;
  for (size_t i = 0; i < ids.size(); ++i) {
    uint64_t id = ids[i];
    if (t.ranged && id >= t.begin && id < t.end) { // the common case: no division
      rows[i] = static_cast<int64_t>(id - t.begin);
      continue;
    }
    if ((s.rows != 0 && id >= s.rows) || ps_shard_of(s, id, shards) != shard)
      return error{"table '" + s.name + "': row " + std::to_string(id) +
                   (s.rows != 0 && id >= s.rows ? " is out of range [0, " + std::to_string(s.rows) + ")"
                                                : " does not belong to shard " + std::to_string(shard) + " of " +
                                                      std::to_string(shards))};
    if (t.ranged) {
      rows[i] = static_cast<int64_t>(id - t.begin);
      continue;
    }
    if (const int64_t* at = t.index.find(id)) {
      rows[i] = *at;
      continue;
    }
    if (!make) return error{"table '" + s.name + "': row " + std::to_string(id) + " was never touched"};
    int64_t r = t.rows();
    t.grow(r + 1);
    t.init_row(id, t.w.data() + static_cast<size_t>(r) * s.width);
    t.index.try_emplace(id, r);
    t.ids.push_back(id);
    rows[i] = r;
  }
  return rows;
}

status check_rows(const ps_table_spec& s, std::span<const uint64_t> ids, const tensor& v, const char* what) {
  if (!v.defined() || v.rank() != 2 || v.dim(0) != static_cast<int64_t>(ids.size()) ||
      v.dim(1) != static_cast<int64_t>(s.width) || (v.type() != dtype::f32 && v.type() != dtype::f64))
    return error{std::string(what) + " to table '" + s.name + "': values are " +
                 (v.defined() ? std::string(name(v.type())) + v.shape().to_string() : std::string("missing")) +
                 ", want f32/f64 [" + std::to_string(ids.size()) + ", " + std::to_string(s.width) + "]"};
  return {};
}

} // namespace

result<tensor> ps_store::pull(uint32_t id, std::span<const uint64_t> ids) {
  auto tr = find(id, "pull");
  if (!tr) return tr.err();
  table& t = **tr;
  auto rows = locate(t, ids, shard_, shards_, true);
  if (!rows) return rows.err();
  const int64_t width = t.spec.width;
  tensor out(t.spec.type, shape{static_cast<int64_t>(ids.size()), width});
  auto copy = [&](auto* dst) {
    for (size_t i = 0; i < ids.size(); ++i) {
      const double* src = t.w.data() + (*rows)[i] * width;
      for (int64_t j = 0; j < width; ++j) dst[static_cast<int64_t>(i) * width + j] = static_cast<std::remove_pointer_t<decltype(dst)>>(src[j]);
    }
  };
  if (t.spec.type == dtype::f32) copy(out.data<float>());
  else copy(out.data<double>());
  return out;
}

status ps_store::push(uint32_t id, std::span<const uint64_t> ids, const tensor& grads, double scale) {
  auto tr = find(id, "push");
  if (!tr) return tr.err();
  table& t = **tr;
  if (status st = check_rows(t.spec, ids, grads, "push"); !st) return st;
  auto rows = locate(t, ids, shard_, shards_, true);
  if (!rows) return rows.err();
  // The gradient as f64 times `scale`, made in one pass (none for an f64
  // gradient at scale 1).
  const size_t count = ids.size() * static_cast<size_t>(t.spec.width);
  std::vector<double> scaled;
  const double* gp = nullptr;
  if (grads.type() == dtype::f64 && scale == 1) {
    gp = grads.data<double>();
  } else {
    scaled.resize(count);
    if (grads.type() == dtype::f64) {
      const double* in = grads.data<double>();
      for (size_t e = 0; e < count; ++e) scaled[e] = scale * in[e];
    } else {
      const float* in = grads.data<float>();
      for (size_t e = 0; e < count; ++e) scaled[e] = scale * static_cast<double>(in[e]);
    }
    gp = scaled.data();
  }
  const int64_t width = t.spec.width;
  const auto& o = t.spec.optimizer;
  ++t.step;
  if (o.rule == ps_optimizer::rule_t::ftrl) {
    ops::ftrl_hyper h{o.lr, o.momentum, o.l1, o.weight_decay};
    for (size_t i = 0; i < ids.size(); ++i)
      for (int64_t j = 0; j < width; ++j) {
        size_t e = static_cast<size_t>((*rows)[i] * width + j);
        ops::ftrl_element<double>(h, t.w[e], gp[static_cast<int64_t>(i) * width + j], t.s0[e], t.s1[e]);
        t.round(t.w[e]);
        t.round(t.s0[e]);
        t.round(t.s1[e]);
      }
    return {};
  }
  ops::update_hyper h;
  h.lr = o.lr;
  h.momentum = o.momentum;
  h.beta2 = o.beta2;
  h.eps = o.eps;
  h.weight_decay = o.weight_decay;
  h.step = t.step;
  auto rule = static_cast<ops::update_rule>(static_cast<uint8_t>(o.rule)); // sgd..adam share their codes
  const auto k = ops::make_coeffs<double>(rule, h);
  // One vectorised update per run of consecutive local rows (a dense push
  // of every row in order is one run).
  const bool f32 = t.spec.type == dtype::f32;
  auto round_all = [](double* p, int64_t n) {
    for (int64_t e = 0; e < n; ++e) p[e] = static_cast<double>(static_cast<float>(p[e]));
  };
  for (size_t i = 0; i < ids.size();) {
    size_t j = i + 1;
    while (j < ids.size() && (*rows)[j] == (*rows)[j - 1] + 1) ++j;
    const int64_t at = (*rows)[i] * width, n = static_cast<int64_t>(j - i) * width;
    double* w = t.w.data() + at;
    double* s0 = t.slots > 0 ? t.s0.data() + at : nullptr;
    double* s1 = t.slots > 1 ? t.s1.data() + at : nullptr;
    ops::apply_update<double>(k, w, gp + static_cast<int64_t>(i) * width, s0, s1, n);
    if (f32) {
      round_all(w, n);
      if (s0) round_all(s0, n);
      if (s1) round_all(s1, n);
    }
    i = j;
  }
  return {};
}

status ps_store::assign(uint32_t id, std::span<const uint64_t> ids, const tensor& values) {
  auto tr = find(id, "assign");
  if (!tr) return tr.err();
  table& t = **tr;
  if (status st = check_rows(t.spec, ids, values, "assign"); !st) return st;
  auto rows = locate(t, ids, shard_, shards_, true);
  if (!rows) return rows.err();
  const tensor v = values.type() == dtype::f64 ? values : values.cast(dtype::f64);
  const int64_t width = t.spec.width;
  for (size_t i = 0; i < ids.size(); ++i) {
    double* row = t.w.data() + (*rows)[i] * width;
    std::copy_n(v.data<double>() + static_cast<int64_t>(i) * width, width, row);
    for (int64_t j = 0; j < width; ++j) t.round(row[j]); // these rows only, not the whole table
  }
  return {};
}

status ps_store::touch(uint32_t id, std::span<const uint64_t> ids) {
  auto tr = find(id, "push");
  if (!tr) return tr.err();
  auto rows = locate(**tr, ids, shard_, shards_, true);
  if (!rows) return rows.err();
  return {};
}

result<std::vector<double>> ps_store::call(const std::string& fname, uint32_t id, const std::vector<double>& args) {
  ps_function fn;
  {
    std::lock_guard lock(functions_mutex());
    auto it = functions().find(fname);
    if (it == functions().end()) return error{"unknown server-side function '" + fname + "'"};
    fn = it->second;
  }
  auto tr = find(id, "function call");
  if (!tr) return tr.err();
  table& t = **tr;
  ps_rows r{std::span<double>(t.w), t.rows(), static_cast<int64_t>(t.spec.width), false};
  auto out = fn(r, args);
  if (r.changed)
    for (double& x : t.w) t.round(x);
  if (!out) return error{"server-side function '" + fname + "' on table '" + t.spec.name + "': " + out.err().message};
  return out;
}

status ps_store::save(const std::string& dir) const {
  checkpoint ck;
  for (const auto& [id, t] : tables_) {
    const std::string p = "table" + std::to_string(id) + "/";
    const int64_t n = t->rows(), width = t->spec.width;
    auto put = [&](const char* what, const std::vector<double>& v) {
      ck.tensors[p + what] = tensor::from<double>(shape{n, width}, v);
    };
    put("w", t->w);
    if (t->slots > 0) put("s0", t->s0);
    if (t->slots > 1) put("s1", t->s1);
    std::vector<int64_t> ids(t->ids.begin(), t->ids.end()); // bit patterns of the u64 ids
    if (!t->ranged) ck.tensors[p + "ids"] = tensor::from<int64_t>(shape{n}, ids);
    ck.metadata[p + "spec"] = t->spec.name + " " + describe(t->spec);
    ck.metadata[p + "step"] = std::to_string(t->step);
  }
  ck.metadata["shard"] = std::to_string(shard_) + " of " + std::to_string(shards_);
  return save_checkpoint(checkpoint_path(dir, shard_, shards_), ck);
}

status ps_store::load(const std::string& dir) {
  const std::string path = checkpoint_path(dir, shard_, shards_);
  auto ck = load_checkpoint(path);
  if (!ck) return ck.err();
  // Check everything first, then replace: a bad file changes nothing.
  for (const auto& [id, t] : tables_) {
    const std::string p = "table" + std::to_string(id) + "/";
    auto spec_it = ck->metadata.find(p + "spec");
    if (spec_it == ck->metadata.end()) return error{path + ": no table " + std::to_string(id) + " ('" + t->spec.name + "')"};
    if (spec_it->second != t->spec.name + " " + describe(t->spec))
      return error{path + ": table " + std::to_string(id) + " was saved as " + spec_it->second + ", not as " +
                   t->spec.name + " " + describe(t->spec)};
    for (const char* what : {"w", "s0", "s1", "ids"}) {
      bool needed = std::string(what) == "w" || (std::string(what) == "s0" && t->slots > 0) ||
                    (std::string(what) == "s1" && t->slots > 1) || (std::string(what) == "ids" && !t->ranged);
      if (needed && !ck->tensors.count(p + what)) return error{path + ": table " + std::to_string(id) + " lacks " + what};
    }
  }
  for (auto& [id, t] : tables_) {
    const std::string p = "table" + std::to_string(id) + "/";
    auto get = [&](const char* what) { return ck->tensors.at(p + what).to_doubles(); };
    t->w = get("w");
    if (t->slots > 0) t->s0 = get("s0");
    if (t->slots > 1) t->s1 = get("s1");
    t->step = std::stoll(ck->metadata.at(p + "step"));
    if (!t->ranged) {
      const tensor& ids = ck->tensors.at(p + "ids");
      t->ids.assign(ids.data<int64_t>(), ids.data<int64_t>() + ids.numel());
      t->index.clear();
      t->index.reserve(t->ids.size());
      for (size_t r = 0; r < t->ids.size(); ++r) t->index.try_emplace(t->ids[r], static_cast<int64_t>(r));
    }
  }
  return {};
}

} // namespace luoshu::actors
