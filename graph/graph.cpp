#include "graph/graph.hpp"

#include <algorithm>
#include <sstream>

namespace luoshu {

const node& expr::get() const {
  if (!g_) throw luoshu_error("use of an empty expression");
  return g_->at(id_);
}

expr expr::named(const std::string& name) const {
  g().rename(id_, name);
  return *this;
}

std::string graph::unique_name(const std::string& base) {
  std::string name = base;
  while (by_name_.count(name)) name = base + "_" + std::to_string(++name_counters_[base]);
  return name;
}

void graph::rename(node_id id, const std::string& name) {
  auto& n = nodes_.at(static_cast<size_t>(id));
  if (n.name == name) return;
  if (name.empty()) throw luoshu_error("node names cannot be empty");
  if (by_name_.count(name))
    throw luoshu_error("node name '" + name + "' is already used in this graph");
  by_name_.erase(n.name);
  n.name = name;
  by_name_[name] = id;
}

void graph::set_origin(node_id first, node_id origin) {
  for (size_t i = static_cast<size_t>(std::max(first, 0)); i < nodes_.size(); ++i)
    if (nodes_[i].origin < 0) nodes_[i].origin = origin;
}

expr graph::find(const std::string& name) {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? expr() : expr(this, it->second);
}

void graph::fail(const node& n, std::span<const type_shape> in, const std::string& why) const {
  std::ostringstream os;
  os << "op '" << luoshu::name(n.op) << "' (node '" << n.name << "'";
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    os << (i == 0 ? "; inputs " : ", ") << "'" << at(n.inputs[i]).name << "' ";
    if (i < in.size()) os << luoshu::name(in[i].type) << in[i].shape.to_string();
  }
  os << "): " << why;
  throw luoshu_error(os.str());
}

type_shape graph::infer(node_id id, std::span<const type_shape> in) const {
  const node& n = at(id);
  try {
    return info(n.op).infer(n, in);
  } catch (const luoshu_error& e) {
    fail(n, in, e.what());
  }
}

expr graph::add(op_kind op, std::vector<node_id> inputs, op_attrs attrs, const std::string& name) {
  const op_info& oi = info(op);
  node n;
  n.op = op;
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  n.name = name.empty() ? unique_name(oi.name) : name;
  if (!name.empty() && by_name_.count(name))
    throw luoshu_error("node name '" + name + "' is already used in this graph");
  std::vector<type_shape> in;
  for (auto i : n.inputs) {
    if (i < 0 || static_cast<size_t>(i) >= nodes_.size())
      throw luoshu_error(std::string("op '") + oi.name + "': input node " + std::to_string(i) +
                         " does not exist in this graph");
    in.push_back({at(i).type, at(i).shape});
  }
  if (oi.arity >= 0 && static_cast<int>(in.size()) != oi.arity)
    fail(n, in, "takes " + std::to_string(oi.arity) + " inputs, got " + std::to_string(in.size()));
  if (oi.arity < 0 && in.empty()) fail(n, in, "needs at least one input");
  type_shape ts;
  try {
    ts = oi.infer(n, in);
  } catch (const luoshu_error& e) {
    fail(n, in, e.what());
  }
  n.type = ts.type;
  n.shape = std::move(ts.shape);
  auto id = static_cast<node_id>(nodes_.size());
  by_name_[n.name] = id;
  nodes_.push_back(std::move(n));
  return expr(this, id);
}

expr graph::placeholder(const std::string& name, dtype t, luoshu::shape s) {
  op_attrs a;
  a.target = std::move(s);
  a.to = t;
  return add(op_kind::placeholder, {}, std::move(a), name);
}

expr graph::variable(const std::string& name, luoshu::shape s, initializer init, dtype t,
                     bool trainable) {
  if (name.empty()) throw luoshu_error("variables need a name (it keys checkpoints)");
  if (!s.known())
    throw luoshu_error("variable '" + name + "' needs a fully known shape, got " + s.to_string());
  op_attrs a;
  a.target = std::move(s);
  a.to = t;
  a.init = init;
  a.flag = trainable;
  return add(op_kind::variable, {}, std::move(a), name);
}

expr graph::constant(tensor value, const std::string& name) {
  if (!value.defined()) throw luoshu_error("constant needs a defined tensor");
  op_attrs a;
  a.target = value.shape();
  a.to = value.type();
  a.value = std::move(value);
  return add(op_kind::constant, {}, std::move(a), name);
}

expr graph::scalar(double v, dtype t) {
  tensor s = tensor::zeros(t, luoshu::shape{});
  s.fill(v);
  return constant(std::move(s));
}

std::vector<expr> graph::variables(bool trainable_only) {
  std::vector<expr> out;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == op_kind::variable && (!trainable_only || nodes_[i].attrs.flag))
      out.emplace_back(this, static_cast<node_id>(i));
  return out;
}

std::vector<expr> graph::placeholders() {
  std::vector<expr> out;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].op == op_kind::placeholder) out.emplace_back(this, static_cast<node_id>(i));
  return out;
}

std::string graph::to_string() const {
  std::ostringstream os;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const auto& n = nodes_[i];
    os << "%" << i << " " << n.name << " = " << luoshu::name(n.op) << "(";
    for (size_t j = 0; j < n.inputs.size(); ++j) os << (j ? ", " : "") << "%" << n.inputs[j];
    os << ") : " << luoshu::name(n.type) << n.shape.to_string() << "\n";
  }
  return os.str();
}

} // namespace luoshu
