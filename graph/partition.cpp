#include "graph/partition.hpp"

#include "graph/device_backend.hpp"

#include <algorithm>
#include <set>

namespace luoshu {

namespace {

bool is_source(const node& n) { return info(n.op).flags & op_flag_source; }

/// The partition `owner` gives a variable name, directly, by a '/' prefix,
/// or (for slots like "w1/velocity") through its parent variable.
int owner_of(const std::string& name, const std::map<std::string, int>& owner) {
  auto it = owner.find(name);
  if (it != owner.end()) return it->second;
  for (size_t pos = name.rfind('/'); pos != std::string::npos && pos > 0; pos = name.rfind('/', pos - 1)) {
    std::string head = name.substr(0, pos);
    if ((it = owner.find(head)) != owner.end()) return it->second;
    if ((it = owner.find(head + "/")) != owner.end()) return it->second;
    if (pos == 0) break;
  }
  return -1;
}

} // namespace

std::vector<int> partition_plan::units_of(int p) const {
  std::vector<int> out;
  for (size_t i = 0; i < units.size(); ++i)
    if (units[i].partition == p) out.push_back(static_cast<int>(i));
  return out;
}

std::vector<int> place_by_variables(const graph& g, const std::map<std::string, int>& owner, int fallback) {
  std::vector<int> place(g.size(), -1);
  for (size_t i = 0; i < g.size(); ++i) {
    const node& n = g.at(static_cast<node_id>(i));
    if (n.op == op_kind::variable) {
      int p = owner_of(n.name, owner);
      place[i] = p >= 0 ? p : fallback;
    }
  }
  for (size_t i = 0; i < g.size(); ++i) {
    const node& n = g.at(static_cast<node_id>(i));
    if (n.op == op_kind::variable) continue;
    if (is_source(n)) { // placeholders and constants are copied where needed
      place[i] = fallback;
      continue;
    }
    int p = -1;
    if (n.origin >= 0) p = place[static_cast<size_t>(n.origin)];
    if (p < 0 && (info(n.op).flags & op_flag_stateful)) p = place[static_cast<size_t>(n.inputs[0])];
    if (p < 0)
      for (auto in : n.inputs)
        if (g.at(in).op == op_kind::variable) {
          p = place[static_cast<size_t>(in)];
          break;
        }
    if (p < 0)
      for (auto in : n.inputs)
        if (!is_source(g.at(in))) {
          p = place[static_cast<size_t>(in)];
          break;
        }
    place[i] = p >= 0 ? p : fallback;
  }
  return place;
}

partition_plan partition_graph(const graph& g, const std::vector<int>& placement, const std::vector<expr>& fetches,
                               const std::vector<expr>& targets) {
  const size_t n = g.size();
  if (placement.size() != n)
    throw luoshu_error("partition: placement has " + std::to_string(placement.size()) + " entries for " +
                       std::to_string(n) + " nodes");
  int parts = 0;
  for (int p : placement) {
    if (p < 0) throw luoshu_error("partition: negative partition in the placement");
    parts = std::max(parts, p + 1);
  }
  // The nodes the fetches and targets need.
  std::vector<bool> need(n, false);
  for (auto* list : {&fetches, &targets})
    for (auto& e : *list) {
      if (!e.valid() || &e.g() != &g) throw luoshu_error("partition: fetch or target from another graph");
      need[static_cast<size_t>(e.id())] = true;
    }
  for (size_t i = n; i-- > 0;)
    if (need[i])
      for (auto in : g.at(static_cast<node_id>(i)).inputs) need[static_cast<size_t>(in)] = true;

  // Waves: crossings on the longest path from a source.
  std::vector<int> wave(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (!need[i]) continue;
    const node& nd = g.at(static_cast<node_id>(i));
    if (is_source(nd)) continue;
    for (auto in : nd.inputs) {
      const node& src = g.at(in);
      if (src.op == op_kind::variable && placement[static_cast<size_t>(in)] != placement[i])
        throw luoshu_error("partition: node '" + nd.name + "' on partition " + std::to_string(placement[i]) +
                           " reads variable '" + src.name + "' of partition " +
                           std::to_string(placement[static_cast<size_t>(in)]) +
                           " (place a variable's readers on its partition)");
      if (is_source(src)) continue;
      int w = wave[static_cast<size_t>(in)] + (placement[static_cast<size_t>(in)] != placement[i] ? 1 : 0);
      wave[i] = std::max(wave[i], w);
    }
  }
  // Updates run after everything else of their partition has read the
  // variables, so they join the partition's last wave.
  std::vector<int> last_wave(static_cast<size_t>(parts), 0);
  for (size_t i = 0; i < n; ++i)
    if (need[i] && !is_source(g.at(static_cast<node_id>(i))))
      last_wave[static_cast<size_t>(placement[i])] = std::max(last_wave[static_cast<size_t>(placement[i])], wave[i]);
  for (size_t i = 0; i < n; ++i)
    if (need[i] && (info(g.at(static_cast<node_id>(i)).op).flags & op_flag_stateful))
      wave[i] = last_wave[static_cast<size_t>(placement[i])];

  // Units, ordered by (wave, partition).
  std::set<std::pair<int, int>> keys;
  for (size_t i = 0; i < n; ++i)
    if (need[i] && !is_source(g.at(static_cast<node_id>(i)))) keys.insert({wave[i], placement[i]});
  partition_plan plan;
  plan.partitions = parts;
  std::map<std::pair<int, int>, int> unit_of_key;
  for (auto& k : keys) {
    unit u;
    u.wave = k.first;
    u.partition = k.second;
    u.g = std::make_unique<graph>();
    unit_of_key[k] = static_cast<int>(plan.units.size());
    plan.units.push_back(std::move(u));
  }
  auto unit_index = [&](size_t i) { return unit_of_key.at({wave[i], placement[i]}); };

  // Per unit: original node id -> expression in the unit's graph.
  std::vector<std::map<node_id, expr>> local(plan.units.size());
  std::map<node_id, size_t> send_index; // producer -> index in its unit's sends

  auto bring = [&](int ui, node_id id) -> expr {
    auto& m = local[static_cast<size_t>(ui)];
    auto it = m.find(id);
    if (it != m.end()) return it->second;
    unit& u = plan.units[static_cast<size_t>(ui)];
    const node& src = g.at(id);
    expr e;
    if (src.op == op_kind::placeholder) {
      e = u.g->placeholder(src.name, src.type, src.shape);
      u.feeds.emplace_back(src.name, e);
    } else if (src.op == op_kind::variable) {
      e = u.g->variable(src.name, src.shape, src.attrs.init, src.type, src.attrs.flag);
    } else if (src.op == op_kind::constant) {
      e = u.g->constant(src.attrs.value, src.name);
    } else {
      // A value computed by another unit: receive it here, send it there.
      int from = unit_index(static_cast<size_t>(id));
      e = u.g->placeholder(src.name, src.type, src.shape);
      u.recvs.emplace_back(src.name, e);
      unit& producer = plan.units[static_cast<size_t>(from)];
      auto si = send_index.find(id);
      if (si == send_index.end()) {
        si = send_index.emplace(id, producer.sends.size()).first;
        producer.sends.push_back({src.name, local[static_cast<size_t>(from)].at(id), {}});
      }
      producer.sends[si->second].to.push_back(ui);
    }
    m[id] = e;
    return e;
  };

  for (size_t i = 0; i < n; ++i) {
    const node& nd = g.at(static_cast<node_id>(i));
    if (!need[i] || is_source(nd)) continue;
    int ui = unit_index(i);
    std::vector<node_id> ins;
    for (auto in : nd.inputs) ins.push_back(bring(ui, in).id());
    local[static_cast<size_t>(ui)][static_cast<node_id>(i)] =
        plan.units[static_cast<size_t>(ui)].g->add(nd.op, std::move(ins), nd.attrs, nd.name);
  }
  for (size_t f = 0; f < fetches.size(); ++f) {
    auto id = fetches[f].id();
    const node& nd = g.at(id);
    if (is_source(nd)) throw luoshu_error("partition: fetching source node '" + nd.name + "' is not supported");
    int ui = unit_index(static_cast<size_t>(id));
    plan.units[static_cast<size_t>(ui)].fetches.emplace_back(f, local[static_cast<size_t>(ui)].at(id));
  }
  for (auto& t : targets) {
    int ui = unit_index(static_cast<size_t>(t.id()));
    plan.units[static_cast<size_t>(ui)].targets.push_back(local[static_cast<size_t>(ui)].at(t.id()));
  }
  return plan;
}

} // namespace luoshu

namespace luoshu {

partition_runner::partition_runner(const partition_plan& plan, int partition, variable_store& vars,
                                   const kernel_registry& kernels, trace_recorder* trace, device_stream* stream)
    : plan_(plan), units_(plan.units_of(partition)) {
  for (int ui : units_) {
    executor_options eo;
    if (stream) {
      eo.device = stream->device();
      eo.stream = stream;
    }
    eo.trace = trace;
    eo.trace_track = ui;
    if (trace)
      trace->name_track(ui, "unit " + std::to_string(ui) + " (wave " +
                                std::to_string(plan.units[static_cast<size_t>(ui)].wave) + ")");
    executors_[ui] = std::make_unique<executor>(*plan.units[static_cast<size_t>(ui)].g, vars, kernels, eo);
  }
}

partition_runner::~partition_runner() = default;

bool partition_runner::ready(int ui, const std::map<std::string, tensor>& values) const {
  const unit& u = plan_.units[static_cast<size_t>(ui)];
  for (auto* list : {&u.feeds, &u.recvs})
    for (auto& [key, e] : *list)
      if (!values.count(key)) return false;
  return true;
}

result<unit_outputs> partition_runner::run(int ui, const std::map<std::string, tensor>& values,
                                           const run_options& ro) {
  const unit& u = plan_.units[static_cast<size_t>(ui)];
  std::string where = "unit " + std::to_string(ui) + " (partition " + std::to_string(u.partition) + ", wave " +
                      std::to_string(u.wave) + ")";
  feed_map feeds;
  for (auto* list : {&u.feeds, &u.recvs})
    for (auto& [key, e] : *list) {
      auto it = values.find(key);
      if (it == values.end()) return error{where + ": input '" + key + "' has not arrived"};
      feeds.emplace_back(e, it->second);
    }
  std::vector<expr> fetches;
  for (auto& s : u.sends) fetches.push_back(s.value);
  for (auto& [index, e] : u.fetches) fetches.push_back(e);
  auto r = executors_.at(ui)->run(feeds, fetches, u.targets, ro);
  if (!r) return error{where + ": " + r.err().message};
  unit_outputs out;
  size_t k = 0;
  for (auto& s : u.sends) out.sends.emplace_back(s.key, (*r)[k++]);
  for (auto& [index, e] : u.fetches) out.fetches.emplace_back(index, (*r)[k++]);
  return out;
}

result<std::vector<tensor>> run_plan_locally(const partition_plan& plan, const std::vector<variable_store*>& stores,
                                             const kernel_registry& kernels,
                                             const std::map<std::string, tensor>& feeds, size_t fetch_count,
                                             const run_options& ro) {
  if (static_cast<int>(stores.size()) < plan.partitions)
    return error{"run_plan_locally: needs one variable store per partition"};
  std::vector<std::unique_ptr<partition_runner>> runners;
  for (int p = 0; p < plan.partitions; ++p)
    runners.push_back(std::make_unique<partition_runner>(plan, p, *stores[static_cast<size_t>(p)], kernels));
  std::map<std::string, tensor> values = feeds;
  std::vector<tensor> out(fetch_count);
  for (size_t ui = 0; ui < plan.units.size(); ++ui) {
    auto r = runners[static_cast<size_t>(plan.units[ui].partition)]->run(static_cast<int>(ui), values, ro);
    if (!r) return r.err();
    for (auto& [key, t] : r->sends) values[key] = t;
    for (auto& [index, t] : r->fetches)
      if (index < out.size()) out[index] = t;
  }
  return out;
}

} // namespace luoshu
