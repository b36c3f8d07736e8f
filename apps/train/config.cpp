#include "apps/train/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>

#include "graph/data/criteo.hpp"
#include "graph/shape.hpp"

namespace luoshu::app {

const std::vector<std::string>& known_layer_ops() {
  static const std::vector<std::string> ops{"linear", "conv2d",  "max_pool2d", "avg_pool2d", "flatten",
                                            "lstm",   "gru",     "relu",       "leaky_relu", "elu",
                                            "gelu",   "sigmoid", "tanh",       "softplus",   "dropout",
                                            "batch_norm"};
  return ops;
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

/// Reads typed values out of a YAML map, remembering which keys it saw so
/// that unknown (misspelt) keys are reported.
class reader {
public:
  reader(const YAML::Node& n, std::string where) : n_(n), where_(std::move(where)) {
    if (n_ && !n_.IsMap() && !n_.IsNull()) fail(where_, "must be a mapping");
  }

  template <class T>
  void get(const char* key, T& out) {
    seen_.insert(key);
    if (!n_ || !n_.IsMap() || !n_[key]) return;
    if constexpr (std::is_same_v<T, std::string>) {
      // `test:` or `--set data.test=` clears a text (yaml-cpp would read a
      // null as the text "null": a file of that name).
      if (n_[key].IsNull()) return out.clear();
    }
    try {
      out = n_[key].as<T>();
    } catch (const YAML::Exception&) {
      fail(path(key), "has the wrong type (got '" + dump(n_[key]) + "')");
    }
  }

  /// A window size: one number for both axes (5) or a pair [h, w].
  /// Returns whether the key was there.
  bool get_pair(const char* key, std::array<int64_t, 2>& out) {
    seen_.insert(key);
    if (!n_ || !n_.IsMap() || !n_[key]) return false;
    const YAML::Node v = n_[key];
    try {
      if (v.IsScalar()) {
        out[0] = out[1] = v.as<int64_t>();
        return true;
      }
      if (v.IsSequence() && v.size() == 2) {
        out = {v[0].as<int64_t>(), v[1].as<int64_t>()};
        return true;
      }
    } catch (const YAML::Exception&) {
    }
    fail(path(key), "must be an integer or a pair [h, w] (got '" + dump(v) + "')");
  }

  /// The keys the mapping holds.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    if (n_ && n_.IsMap())
      for (auto it = n_.begin(); it != n_.end(); ++it) out.push_back(it->first.as<std::string>());
    return out;
  }

  YAML::Node child(const char* key) {
    seen_.insert(key);
    return n_ && n_.IsMap() ? n_[key] : YAML::Node(YAML::NodeType::Undefined);
  }

  void finish() {
    if (!n_ || !n_.IsMap()) return;
    for (auto it = n_.begin(); it != n_.end(); ++it) {
      auto k = it->first.as<std::string>();
      if (!seen_.count(k)) fail(path(k.c_str()), "is not a known key");
    }
  }

  std::string path(const char* key) const { return where_.empty() ? key : where_ + "." + key; }

  [[noreturn]] static void fail(const std::string& key, const std::string& why) {
    throw luoshu_error(key + ": " + why);
  }

private:
  static std::string dump(const YAML::Node& n) {
    std::ostringstream os;
    os << n;
    return os.str();
  }
  YAML::Node n_;
  std::string where_;
  std::set<std::string> seen_;
};

void apply_override(YAML::Node root, const std::string& ov) {
  auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    throw luoshu_error("--set '" + ov + "': expected key=value, e.g. optimizer.lr=0.1");
  std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty()) throw luoshu_error("--set '" + ov + "': empty key component");
    parts.push_back(p);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw luoshu_error("--set '" + ov + "': value is not valid YAML: " + e.msg);
  }
  // Walk down with fresh handles: yaml-cpp nodes are references, so
  // reassigning one would overwrite the parent's child.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (next.IsDefined() && !next.IsMap() && !next.IsNull())
      throw luoshu_error("--set '" + ov + "': '" + parts[i] + "' is not a mapping");
    chain.push_back(next);
  }
  chain.back()[parts.back()] = parsed;
}

bool is_window_op(const std::string& op) {
  return op == "conv2d" || op == "max_pool2d" || op == "avg_pool2d";
}

bool is_recurrent_op(const std::string& op) { return op == "lstm" || op == "gru"; }

/// The keys a layer of this op may set besides `op`: a key meant for
/// another op (a kernel on a linear layer) is an error, not ignored.
std::vector<std::string> layer_keys(const std::string& op) {
  if (op == "linear") return {"units", "bias", "init"};
  if (op == "conv2d") return {"units", "kernel", "stride", "padding", "dilation", "groups", "bias", "init"};
  if (op == "max_pool2d") return {"kernel", "stride", "padding"};
  if (op == "avg_pool2d") return {"kernel", "stride", "padding", "count_include_pad"};
  if (op == "leaky_relu" || op == "elu") return {"alpha"};
  if (op == "dropout") return {"rate"};
  if (is_recurrent_op(op)) return {"units", "output"};
  if (op == "batch_norm") return {"eps", "momentum"};
  return {};
}

/// Per-layer values: sizes, and keys that do not belong to the op.
void check_layer(const layer_config& lc, const std::vector<std::string>& keys, bool has_kernel,
                 const std::string& where) {
  const auto allowed = layer_keys(lc.op);
  for (const auto& k : keys)
    if (k != "op" && std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      reader::fail(where + "." + k, "does not apply to " + lc.op +
                                        (allowed.empty() ? " (it takes no keys)" : " (its keys: " + join(allowed) + ")"));
  if (lc.op == "linear" && lc.units <= 0) reader::fail(where + ".units", "linear needs units > 0");
  if (lc.op == "dropout" && !(lc.rate >= 0 && lc.rate < 1)) reader::fail(where + ".rate", "must be in [0, 1)");
  if (lc.op == "conv2d" && lc.units <= 0) reader::fail(where + ".units", "conv2d needs units > 0 (output channels)");
  if (is_recurrent_op(lc.op) && lc.units <= 0) reader::fail(where + ".units", lc.op + " needs units > 0 (hidden size)");
  if (is_recurrent_op(lc.op) && lc.output != "last" && lc.output != "sequence" && lc.output != "mean")
    reader::fail(where + ".output", "unknown output '" + lc.output + "' (known: last, sequence, mean)");
  if (lc.op == "batch_norm" && !(lc.eps > 0)) reader::fail(where + ".eps", "must be > 0");
  if (lc.op == "batch_norm" && !(lc.momentum >= 0 && lc.momentum <= 1)) reader::fail(where + ".momentum", "must be in [0, 1]");
  if (!is_window_op(lc.op)) return;
  if (!has_kernel) reader::fail(where + ".kernel", "is missing (" + lc.op + " needs a kernel size, e.g. 5 or [5, 3])");
  auto at_least = [&](const std::array<int64_t, 2>& v, int64_t low, const char* key, const char* what) {
    if (v[0] < low || v[1] < low) reader::fail(where + "." + key, std::string("must be ") + what);
  };
  at_least(lc.kernel, 1, "kernel", ">= 1");
  // stride: a written value is checked while reading (0 stands for "absent").
  at_least(lc.padding, 0, "padding", ">= 0");
  at_least(lc.dilation, 1, "dilation", ">= 1");
  if (lc.groups < 1) reader::fail(where + ".groups", "must be >= 1");
  if (lc.op == "conv2d" && lc.units % lc.groups != 0)
    reader::fail(where + ".groups", "groups " + std::to_string(lc.groups) + " do not divide the " +
                                        std::to_string(lc.units) + " output channels (units)");
}

/// Walks the layers of a model with lstm or gru layers by rank: they need
/// [N, steps, features] sequences (the input [steps, features], or a
/// recurrent layer's `output: sequence`), linear flat rows; the logits
/// must be flat.
void check_sequence_ranks(const model_config& m) {
  const auto& L = m.layers;
  auto name = [&](size_t i) { return "model.layers[" + std::to_string(i) + "] (" + L[i].op + ")"; };
  size_t first = 0;
  while (!is_recurrent_op(L[first].op)) ++first;
  for (size_t i = 0; i < L.size(); ++i)
    if (is_window_op(L[i].op))
      reader::fail("model.layers[" + std::to_string(i) + "].op",
                   L[i].op + " and " + name(first) + " cannot be in one model (images vs sequences)");
  if (m.input.size() != 2)
    reader::fail("model.input", "is " + shape(m.input).to_string() + " but " + name(first) +
                                    " needs a sequence shape [steps, features], e.g. [28, 28]");
  bool seq = true;
  std::string made_flat;
  for (size_t i = 0; i < L.size(); ++i) {
    const std::string& op = L[i].op;
    if (is_recurrent_op(op) && !seq)
      reader::fail("model.layers[" + std::to_string(i) + "].op",
                   op + " needs [N, steps, features] sequences but " + made_flat + " made them flat [N, features]");
    if (op == "linear" && seq)
      reader::fail("model.layers[" + std::to_string(i) + "].op",
                   "linear needs flat [N, features] rows but gets [N, steps, features] sequences: give the "
                   "recurrent layer before it output: last or mean, or add {op: flatten}");
    if (op == "flatten" || op == "linear" || (is_recurrent_op(op) && L[i].output != "sequence")) {
      if (seq) made_flat = name(i) + (is_recurrent_op(op) ? " with output: " + L[i].output : "");
      seq = false;
    }
  }
  if (seq)
    reader::fail("model.layers", "the last layer gives [N, steps, features] sequences: end with a recurrent layer "
                                 "with output: last or mean (or flatten) and linear to give [N, classes] logits");
}

/// Walks the layers by rank: conv2d and the pools need [N, C, H, W]
/// maps, linear flat [N, features] rows, and the logits must be flat.
/// Sizes (channels, images too small for a kernel) are checked by shape
/// inference when the model is built.
void check_layer_ranks(const model_config& m) {
  const auto& L = m.layers;
  if (std::any_of(L.begin(), L.end(), [](const layer_config& l) { return is_recurrent_op(l.op); }))
    return check_sequence_ranks(m);
  auto name = [&](size_t i) { return "model.layers[" + std::to_string(i) + "] (" + L[i].op + ")"; };
  size_t first_window = L.size();
  for (size_t i = 0; i < L.size() && first_window == L.size(); ++i)
    if (is_window_op(L[i].op)) first_window = i;
  if (first_window == L.size()) return; // flat model: the input is flattened up front
  if (m.input.size() != 3)
    reader::fail("model.input", "is " + shape(m.input).to_string() + " but " + name(first_window) +
                                    " needs an image shape [C, H, W], e.g. [1, 28, 28]");
  bool maps = true;
  std::string made_flat;
  for (size_t i = 0; i < L.size(); ++i) {
    const std::string& op = L[i].op;
    if (is_window_op(op) && !maps)
      reader::fail("model.layers[" + std::to_string(i) + "].op",
                   op + " needs [N, C, H, W] maps but " + made_flat + " made them flat [N, features]");
    if (op == "linear" && maps)
      reader::fail("model.layers[" + std::to_string(i) + "].op",
                   "linear needs flat [N, features] rows but gets [N, C, H, W] maps: add {op: flatten} before it");
    if (op == "flatten" || op == "linear") {
      if (maps) made_flat = name(i);
      maps = false;
    }
  }
  if (maps)
    reader::fail("model.layers", "the last layer gives [N, C, H, W] maps: end with flatten and linear to give "
                                 "[N, classes] logits");
}

initializer::kind_t check_init(const std::string& s, const std::string& key) {
  static const std::vector<std::string> names{"zeros", "xavier_uniform", "xavier_normal", "he_uniform",
                                              "he_normal"};
  if (std::find(names.begin(), names.end(), s) == names.end())
    reader::fail(key, "unknown initializer '" + s + "' (known: " + join(names) + ")");
  return initializer::kind_t::zeros;
}

train_config build(const YAML::Node& root, const std::string& source) {
  train_config c;
  c.source = source;
  reader top(root, "");

  reader m(top.child("model"), "model");
  m.get("kind", c.model.kind);
  m.get("input", c.model.input);
  c.model.loss.clear(); // the default depends on the kind
  m.get("loss", c.model.loss);
  m.get("dtype", c.model.dtype);
  m.get("embedding_dim", c.model.embedding_dim);
  m.get("hidden", c.model.hidden);
  m.get("cross_layers", c.model.cross_layers);
  m.get("channels", c.model.channels);
  m.get("blocks", c.model.blocks);
  m.get("classes", c.model.classes);
  // The CTR kinds read Criteo-format data (dense features plus categorical ids).
  const bool wide_deep = c.model.kind == "wide_deep" || c.model.kind == "deepfm" || c.model.kind == "dcn";
  const bool resnet = c.model.kind == "resnet", transformer = c.model.kind == "transformer";
  if (!wide_deep && !resnet && !transformer && c.model.kind != "sequential")
    reader::fail("model.kind", "unknown kind '" + c.model.kind +
                                   "' (known: sequential, resnet, wide_deep, deepfm, dcn, transformer)");
  if (c.model.kind != "dcn" && m.child("cross_layers")) reader::fail("model.cross_layers", "applies to dcn only");
  if (c.model.cross_layers < 0) reader::fail("model.cross_layers", "must be >= 0");
  // Keys of one kind on another are errors, not ignored.
  for (const char* key : {"channels", "blocks"})
    if (!resnet && m.child(key)) reader::fail(std::string("model.") + key, "applies to model.kind resnet only");
  if (!resnet && !transformer && m.child("classes"))
    reader::fail("model.classes", "applies to model.kind resnet or transformer only");
  const std::vector<std::string> transformer_keys{"d_model", "heads", "ffn", "dropout", "norm"};
  for (const auto& k : m.keys())
    if (!transformer && std::find(transformer_keys.begin(), transformer_keys.end(), k) != transformer_keys.end())
      reader::fail("model." + k, "applies to model.kind transformer only");
  if (transformer) {
    for (const char* k : {"embedding_dim", "hidden"})
      if (m.child(k)) reader::fail(std::string("model.") + k, "does not apply to transformer");
    m.get("d_model", c.model.d_model);
    m.get("heads", c.model.heads);
    m.get("layers", c.model.encoder_layers);
    m.get("ffn", c.model.ffn);
    m.get("dropout", c.model.dropout);
    m.get("norm", c.model.norm);
  }
  YAML::Node layers = transformer ? YAML::Node() : m.child("layers");
  if (wide_deep && layers)
    reader::fail("model.layers", "does not apply to " + c.model.kind + " (set embedding_dim and hidden)");
  if (resnet && layers) reader::fail("model.layers", "does not apply to resnet (set channels, blocks and classes)");
  if (!wide_deep && !resnet && !transformer && (!layers || !layers.IsSequence() || layers.size() == 0))
    reader::fail("model.layers", "must be a non-empty list of layers");
  for (size_t i = 0; !wide_deep && !resnet && !transformer && i < layers.size(); ++i) {
    std::string where = "model.layers[" + std::to_string(i) + "]";
    reader l(layers[i], where);
    layer_config lc;
    l.get("op", lc.op);
    l.get("units", lc.units);
    l.get("bias", lc.bias);
    l.get("init", lc.init);
    l.get("alpha", lc.alpha);
    l.get("rate", lc.rate);
    const bool has_kernel = l.get_pair("kernel", lc.kernel);
    if (l.get_pair("stride", lc.stride) && (lc.stride[0] < 1 || lc.stride[1] < 1))
      reader::fail(where + ".stride", "must be >= 1");
    l.get_pair("padding", lc.padding);
    l.get_pair("dilation", lc.dilation);
    l.get("groups", lc.groups);
    l.get("count_include_pad", lc.count_include_pad);
    l.get("output", lc.output);
    l.get("eps", lc.eps);
    l.get("momentum", lc.momentum);
    l.finish();
    const auto& known = known_layer_ops();
    if (lc.op.empty()) reader::fail(where + ".op", "is missing (known ops: " + join(known) + ")");
    if (std::find(known.begin(), known.end(), lc.op) == known.end())
      reader::fail(where + ".op", "unknown op '" + lc.op + "' (known ops: " + join(known) + ")");
    check_layer(lc, l.keys(), has_kernel, where);
    check_init(lc.init, where + ".init");
    c.model.layers.push_back(lc);
  }
  m.finish();
  if (wide_deep) {
    if (c.model.input.empty()) c.model.input = {data::criteo_dense_fields};
    if (c.model.loss.empty()) c.model.loss = "bce_with_logits";
    if (c.model.loss != "bce_with_logits") reader::fail("model.loss", c.model.kind + " trains with bce_with_logits");
    if (c.model.dtype != "f32") reader::fail("model.dtype", c.model.kind + " supports f32 only");
    if (c.model.embedding_dim <= 0) reader::fail("model.embedding_dim", "must be > 0");
    for (auto h : c.model.hidden)
      if (h <= 0) reader::fail("model.hidden", "widths must be positive");
  }
  if (resnet) {
    if (c.model.input.size() != 3)
      reader::fail("model.input", "is " + shape(c.model.input).to_string() +
                                      " but resnet needs an image shape [C, H, W], e.g. [3, 32, 32]");
    if (c.model.channels.empty()) reader::fail("model.channels", "must list at least one stage's width");
    for (auto ch : c.model.channels)
      if (ch <= 0) reader::fail("model.channels", "widths must be positive");
    if (c.model.blocks < 1) reader::fail("model.blocks", "must be >= 1");
    if (c.model.classes < 2) reader::fail("model.classes", "must be >= 2");
    if (!c.model.loss.empty() && c.model.loss != "softmax_cross_entropy")
      reader::fail("model.loss", "resnet trains with softmax_cross_entropy");
  }
  if (c.model.loss.empty()) c.model.loss = "softmax_cross_entropy";
  if (c.model.input.empty()) reader::fail("model.input", "is missing (per-example feature shape, e.g. [784])");
  for (auto d : c.model.input)
    if (d <= 0) reader::fail("model.input", "dims must be positive");
  if (transformer) {
    const auto& mc = c.model;
    if (mc.input.size() != 2)
      reader::fail("model.input", "is " + shape(mc.input).to_string() +
                                      " but a transformer takes tokens [T, F] (T tokens of F features, e.g. [28, 28])");
    if (mc.d_model <= 0) reader::fail("model.d_model", "must be > 0");
    if (mc.heads <= 0) reader::fail("model.heads", "must be > 0");
    if (mc.d_model % mc.heads != 0)
      reader::fail("model.heads", std::to_string(mc.heads) + " heads do not divide d_model " + std::to_string(mc.d_model));
    if (mc.encoder_layers <= 0) reader::fail("model.layers", "a transformer needs an encoder layer count > 0");
    if (mc.ffn <= 0) reader::fail("model.ffn", "must be > 0");
    if (!(mc.dropout >= 0 && mc.dropout < 1)) reader::fail("model.dropout", "must be in [0, 1)");
    if (mc.norm != "pre" && mc.norm != "post") reader::fail("model.norm", "must be pre or post, got '" + mc.norm + "'");
    if (mc.classes <= 0)
      reader::fail("model.classes", "must be > 0 (logits per example: the class count for "
                                    "softmax_cross_entropy, 1 for bce_with_logits or mse)");
  }
  check_layer_ranks(c.model);
  if (c.model.loss != "softmax_cross_entropy" && c.model.loss != "bce_with_logits" && c.model.loss != "mse")
    reader::fail("model.loss", "unknown loss '" + c.model.loss + "' (known: softmax_cross_entropy, bce_with_logits, mse)");
  if (c.model.dtype != "f32" && c.model.dtype != "f64")
    reader::fail("model.dtype", "must be f32 or f64");

  reader d(top.child("data"), "data");
  d.get("format", c.data.format);
  d.get("train", c.data.train_path);
  d.get("train_labels", c.data.train_labels);
  d.get("test", c.data.test_path);
  d.get("test_labels", c.data.test_labels);
  d.get("label_column", c.data.label_column);
  d.get("header", c.data.header);
  d.get("num_features", c.data.num_features);
  d.get("scale", c.data.scale);
  d.get("buckets", c.data.buckets);
  d.get("max_rows", c.data.max_rows);
  d.get("mean", c.data.mean);
  d.get("std", c.data.stddev);
  d.finish();
  if (c.data.format != "idx" && c.data.format != "csv" && c.data.format != "libsvm" && c.data.format != "criteo" &&
      c.data.format != "cifar10")
    reader::fail("data.format", "unknown format '" + c.data.format + "' (known: idx, csv, libsvm, criteo, cifar10)");
  if (c.data.format == "cifar10") {
    if (c.data.mean.size() != c.data.stddev.size())
      reader::fail("data.mean", "has " + std::to_string(c.data.mean.size()) + " values but data.std has " +
                                    std::to_string(c.data.stddev.size()) + " (they go together, 3 each: R, G, B)");
    if (!c.data.mean.empty() && c.data.mean.size() != 3)
      reader::fail("data.mean", "needs 3 values (R, G, B), got " + std::to_string(c.data.mean.size()));
    for (double v : c.data.stddev)
      if (!(v > 0)) reader::fail("data.std", "values must be > 0");
    if (!c.data.train_labels.empty() || !c.data.test_labels.empty())
      reader::fail(c.data.train_labels.empty() ? "data.test_labels" : "data.train_labels",
                   "does not apply to cifar10 (its records carry their labels)");
  } else if (!c.data.mean.empty() || !c.data.stddev.empty()) {
    reader::fail(c.data.mean.empty() ? "data.std" : "data.mean", "applies to format cifar10 only");
  }
  if ((c.data.format == "criteo") != wide_deep)
    reader::fail(wide_deep ? "data.format" : "model.kind",
                 "the CTR models (wide_deep, deepfm, dcn) and the criteo format (dense features plus categorical ids) go together");
  if (c.data.buckets <= data::criteo_categorical_fields)
    reader::fail("data.buckets", "must be above " + std::to_string(data::criteo_categorical_fields) +
                                     " (ids 0-25 mark missing values)");
  if (c.data.max_rows < 0) reader::fail("data.max_rows", "must be >= 0 (0 = all rows)");
  c.model.buckets = c.data.buckets;
  if (c.data.train_path.empty()) reader::fail("data.train", "is missing");
  if (c.data.format == "idx" && c.data.train_labels.empty())
    reader::fail("data.train_labels", "is missing (idx data comes as an images file and a labels file)");
  if (c.data.format == "idx" && !c.data.test_path.empty() && c.data.test_labels.empty())
    reader::fail("data.test_labels", "is missing");

  reader o(top.child("optimizer"), "optimizer");
  std::string kind = "sgd";
  o.get("kind", kind);
  auto k = optimizer_config::parse(kind);
  if (!k) reader::fail("optimizer.kind", "unknown optimizer '" + kind + "' (known: sgd, momentum, nesterov, adagrad, adam, adamw)");
  c.optimizer.kind = *k;
  o.get("lr", c.optimizer.lr.base);
  o.get("momentum", c.optimizer.momentum);
  o.get("beta1", c.optimizer.momentum);
  o.get("beta2", c.optimizer.beta2);
  o.get("eps", c.optimizer.eps);
  o.get("weight_decay", c.optimizer.weight_decay);
  o.get("clip_norm", c.optimizer.clip_norm);
  reader s(o.child("schedule"), "optimizer.schedule");
  std::string sk = "constant";
  s.get("kind", sk);
  auto skk = lr_schedule::parse(sk);
  if (!skk) reader::fail("optimizer.schedule.kind", "unknown schedule '" + sk + "' (known: constant, step, exponential, cosine)");
  c.optimizer.lr.kind = *skk;
  s.get("warmup_steps", c.optimizer.lr.warmup_steps);
  s.get("step_size", c.optimizer.lr.step_size);
  s.get("gamma", c.optimizer.lr.gamma);
  s.get("total_steps", c.optimizer.lr.total_steps);
  s.get("min_lr", c.optimizer.lr.min_lr);
  s.finish();
  o.finish();
  if (!(c.optimizer.lr.base > 0)) reader::fail("optimizer.lr", "must be > 0");

  reader r(top.child("run"), "run");
  r.get("epochs", c.run.epochs);
  r.get("batch_size", c.run.batch_size);
  r.get("eval_batch_size", c.run.eval_batch_size);
  r.get("seed", c.run.seed);
  r.get("shuffle", c.run.shuffle);
  r.get("drop_last", c.run.drop_last);
  r.get("threads", c.run.threads);
  r.get("device", c.run.device);
  r.get("max_steps", c.run.max_steps);
  r.get("checkpoint", c.run.checkpoint);
  r.get("checkpoint_every", c.run.checkpoint_every);
  r.get("resume", c.run.resume);
  r.get("trace", c.run.trace);
  r.finish();
  if (c.run.epochs <= 0) reader::fail("run.epochs", "must be > 0");
  if (c.run.batch_size <= 0) reader::fail("run.batch_size", "must be > 0");
  if (c.run.eval_batch_size <= 0) reader::fail("run.eval_batch_size", "must be > 0");
  if (c.run.threads < 0) reader::fail("run.threads", "must be >= 0");
  if (c.run.checkpoint_every < 0) reader::fail("run.checkpoint_every", "must be >= 0");
  if (c.run.checkpoint_every > 0 && c.run.checkpoint.empty())
    reader::fail("run.checkpoint_every", "needs run.checkpoint (where to save)");
  try {
    (void)device::parse(c.run.device);
  } catch (const luoshu_error& e) {
    reader::fail("run.device", e.what());
  }
  top.finish();
  return c;
}

} // namespace

result<train_config> parse_train_config(const std::string& yaml_text, const std::string& source,
                                        const std::vector<std::string>& overrides) {
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (!root.IsMap()) return error{source + ": the configuration must be a YAML mapping"};
    for (const auto& ov : overrides) apply_override(root, ov);
    return build(root, source);
  } catch (const YAML::Exception& e) {
    return error{source + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg};
  } catch (const luoshu_error& e) {
    return error{source + ": " + e.what()};
  }
}

result<train_config> load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream f(path);
  if (!f) return error{path + ": cannot open the configuration file"};
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_train_config(ss.str(), path, overrides);
}

} // namespace luoshu::app
