#include "apps/train/train.hpp"

#include <cstring>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "graph/builder.hpp"
#include "graph/data/cifar.hpp"
#include "graph/data/criteo.hpp"
#include "graph/data/csv.hpp"
#include "graph/data/idx.hpp"
#include "graph/data/libsvm.hpp"
#include "graph/data/loader.hpp"
#include "graph/metrics.hpp"
#include "graph/models.hpp"
#include "graph/optimizer.hpp"
#include "graph/transformer.hpp"
#include "ops/kernel.hpp"

namespace luoshu::app {

namespace {

initializer init_of(const std::string& s) {
  if (s == "zeros") return init::zeros();
  if (s == "xavier_uniform") return init::xavier_uniform();
  if (s == "xavier_normal") return init::xavier_normal();
  if (s == "he_normal") return init::he_normal();
  return init::he_uniform();
}

using clock_t_ = std::chrono::steady_clock;
double seconds_since(clock_t_::time_point t0) {
  return std::chrono::duration<double>(clock_t_::now() - t0).count();
}

/// The placeholders' values for one batch.
feed_map feeds(const model& m, const data::batch& b) {
  feed_map f{{m.x, b.features}, {m.y, b.labels}};
  if (m.ids.valid()) f.emplace_back(m.ids, b.ids);
  return f;
}

size_t max_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

} // namespace

model build_model(graph& g, const model_config& cfg, uint64_t seed) {
  // Initial values come from the variable store's seed; `seed` seeds the
  // transformer's dropout masks.
  dtype t = cfg.dtype == "f64" ? dtype::f64 : dtype::f32;
  model m;
  if (cfg.kind == "wide_deep" || cfg.kind == "deepfm" || cfg.kind == "dcn") {
    m.classification = false;
    m.x = g.placeholder("x", dtype::f32, shape{-1, shape(cfg.input).numel()});
    m.ids = g.placeholder("ids", dtype::i64, shape{-1, data::criteo_categorical_fields});
    m.y = g.placeholder("y", dtype::f32, shape{-1});
    if (cfg.kind == "wide_deep")
      m.logits = models::wide_deep(m.x, m.ids, {cfg.buckets, cfg.embedding_dim, cfg.hidden});
    else if (cfg.kind == "deepfm")
      m.logits = models::deepfm(m.x, m.ids, {cfg.buckets, cfg.embedding_dim, cfg.hidden});
    else
      m.logits = models::dcn(m.x, m.ids, {cfg.buckets, cfg.embedding_dim, cfg.hidden, cfg.cross_layers});
    m.logits = m.logits.named("logits");
    m.loss = mean(bce_with_logits(m.logits, m.y)).named("loss");
    return m;
  }
  m.classification = cfg.loss == "softmax_cross_entropy";
  int64_t features = 1;
  for (auto d : cfg.input) features *= d;
  if (cfg.kind == "resnet") {
    m.x = g.placeholder("x", t, shape{-1, features});
    m.y = g.placeholder("y", dtype::i64, shape{-1});
    shape in{-1};
    for (auto d : cfg.input) in.dims().push_back(d);
    models::resnet_options o;
    o.channels = cfg.channels;
    o.blocks = cfg.blocks;
    o.classes = cfg.classes;
    try {
      m.logits = models::resnet(reshape(m.x, in), o).named("logits");
    } catch (const luoshu_error& e) {
      throw luoshu_error(std::string("model (resnet): ") + e.what());
    }
    m.loss = mean(softmax_cross_entropy(m.logits, m.y)).named("loss");
    m.accuracy = accuracy(m.logits, m.y).named("accuracy");
    return m;
  }
  // The readers give flat rows [N, features]; models with conv2d or
  // pooling layers see them as images [N, C, H, W] (config.cpp checked
  // that the input is [C, H, W] then), others as flat rows.
  const bool images = std::any_of(cfg.layers.begin(), cfg.layers.end(), [](const layer_config& l) {
    return l.op == "conv2d" || l.op == "max_pool2d" || l.op == "avg_pool2d";
  });
  // Models with lstm or gru layers see them as sequences [N, steps, features].
  const bool sequences = std::any_of(cfg.layers.begin(), cfg.layers.end(),
                                     [](const layer_config& l) { return l.op == "lstm" || l.op == "gru"; });
  m.x = g.placeholder("x", t, shape{-1, features});
  m.y = g.placeholder("y", m.classification ? dtype::i64 : t, shape{-1});
  expr h = m.x;
  if (cfg.kind == "transformer") { // flat rows as [N, T, F] tokens
    models::transformer_classifier_options o;
    o.layer = {.d_model = cfg.d_model, .heads = cfg.heads, .ffn = cfg.ffn, .dropout = cfg.dropout,
               .pre_norm = cfg.norm == "pre", .eps = 1e-5, .seed = seed};
    o.layers = cfg.encoder_layers;
    o.outputs = cfg.classes;
    try {
      h = models::transformer_classifier(reshape(m.x, shape{-1, cfg.input[0], cfg.input[1]}), o);
    } catch (const luoshu_error& e) {
      throw luoshu_error(std::string("model (transformer): ") + e.what());
    }
  }
  if (images || sequences) {
    shape in{-1};
    for (auto d : cfg.input) in.dims().push_back(d);
    h = reshape(m.x, in);
  }
  int linear_index = 0, conv_index = 0, rnn_index = 0, bn_index = 0;
  for (size_t i = 0; i < cfg.layers.size(); ++i) {
    const layer_config& l = cfg.layers[i];
    std::string where = "model.layers[" + std::to_string(i) + "] (" + l.op + ")";
    try {
      if (l.op == "linear") {
        if (h.shape().rank() != 2)
          throw luoshu_error("needs flat [N, features] input, got " + h.shape().to_string() + " (add a flatten layer)");
        const int64_t width = h.shape()[1];
        std::string base = "dense" + std::to_string(++linear_index);
        expr w = g.variable(base + "/w", shape{width, l.units}, init_of(l.init), t);
        if (l.bias) {
          expr b = g.variable(base + "/b", shape{l.units}, init::zeros(), t);
          h = linear(h, w, b);
        } else {
          h = matmul(h, w);
        }
      } else if (l.op == "conv2d") {
        if (h.shape().rank() != 4) throw luoshu_error("needs [N, C, H, W] input, got " + h.shape().to_string());
        const int64_t channels = h.shape()[1];
        if (channels % l.groups != 0)
          throw luoshu_error("groups " + std::to_string(l.groups) + " do not divide the " + std::to_string(channels) +
                             " input channels of " + h.shape().to_string());
        conv2d_options o;
        o.stride = {l.stride[0] ? l.stride[0] : 1, l.stride[1] ? l.stride[1] : 1};
        o.padding = l.padding;
        o.dilation = l.dilation;
        o.groups = l.groups;
        std::string base = "conv" + std::to_string(++conv_index);
        expr w = g.variable(base + "/w", shape{l.units, channels / l.groups, l.kernel[0], l.kernel[1]},
                            init_of(l.init), t);
        if (l.bias)
          h = conv2d(h, w, g.variable(base + "/b", shape{l.units}, init::zeros(), t), o);
        else
          h = conv2d(h, w, o);
      } else if (l.op == "lstm" || l.op == "gru") {
        if (h.shape().rank() != 3)
          throw luoshu_error("needs [N, steps, features] input, got " + h.shape().to_string());
        std::string base = l.op + std::to_string(++rnn_index) + "/";
        h = l.op == "lstm" ? models::lstm_layer(h, l.units, base) : models::gru_layer(h, l.units, base);
        if (l.output == "last")
          h = models::last_step(h);
        else if (l.output == "mean")
          h = mean(h, {1});
      } else if (l.op == "max_pool2d" || l.op == "avg_pool2d") {
        pool2d_options o;
        o.kernel = l.kernel;
        o.stride = l.stride; // 0 = the kernel
        o.padding = l.padding;
        o.count_include_pad = l.count_include_pad;
        h = l.op == "max_pool2d" ? max_pool2d(h, o) : avg_pool2d(h, o);
      } else if (l.op == "flatten") {
        int64_t n = 1;
        for (int d = 1; d < h.shape().rank(); ++d) n *= h.shape()[d];
        if (h.shape().rank() != 2) h = reshape(h, shape{-1, n});
      } else if (l.op == "relu") {
        h = relu(h);
      } else if (l.op == "leaky_relu") {
        h = leaky_relu(h, l.alpha == 0 ? 0.01 : l.alpha);
      } else if (l.op == "elu") {
        h = elu(h, l.alpha == 0 ? 1.0 : l.alpha);
      } else if (l.op == "gelu") {
        h = gelu(h);
      } else if (l.op == "sigmoid") {
        h = sigmoid(h);
      } else if (l.op == "tanh") {
        h = tanh(h);
      } else if (l.op == "softplus") {
        h = softplus(h);
      } else if (l.op == "dropout") {
        h = dropout(h, l.rate, 1000 + i);
      } else if (l.op == "batch_norm") {
        h = models::batch_norm_layer(h, "bn" + std::to_string(++bn_index) + "/", {l.eps, l.momentum});
      } else {
        throw luoshu_error("unknown op '" + l.op + "'");
      }
    } catch (const luoshu_error& e) {
      throw luoshu_error(where + ": " + e.what());
    }
  }
  if (h.shape().rank() != 2)
    throw luoshu_error("the last layer gives " + h.shape().to_string() +
                       ": end with flatten and linear to give [N, outputs] logits");
  const int64_t width = h.shape()[1];
  m.logits = h.named("logits");
  if (m.classification) {
    if (width < 2) throw luoshu_error("softmax_cross_entropy needs a last layer with >= 2 units, got " + std::to_string(width));
    m.loss = mean(softmax_cross_entropy(m.logits, m.y)).named("loss");
    m.accuracy = accuracy(m.logits, m.y).named("accuracy");
  } else {
    if (width != 1) throw luoshu_error(cfg.loss + " needs a last layer with 1 unit, got " + std::to_string(width));
    m.logits = reshape(m.logits, shape{-1});
    m.loss = (cfg.loss == "mse" ? mean(mse_loss(m.logits, m.y)) : mean(bce_with_logits(m.logits, m.y))).named("loss");
  }
  return m;
}

namespace {

/// Binary labels for bce_with_logits: 0/1 as they are, -1/+1 (libsvm's
/// usual binary labels) mapped to 0/1; anything else is an error naming the
/// file and the example.
status binary_labels(data::dataset& ds) {
  std::vector<double> v = ds.labels.to_doubles();
  bool signs = false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == -1) signs = true;
    else if (v[i] != 0 && v[i] != 1)
      return error{ds.source + ": bce_with_logits needs binary labels (0/1 or -1/+1), example " + std::to_string(i) +
                   " has " + (std::ostringstream() << v[i]).str()};
  }
  if (!signs) return {};
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] == 0)
      return error{ds.source + ": labels mix 0 and -1 (example " + std::to_string(i) + "): use 0/1 or -1/+1"};
  for (double& x : v) x = x > 0 ? 1 : 0;
  ds.labels = tensor::from<double>(ds.labels.shape(), v).cast(ds.labels.type());
  return {};
}

} // namespace

result<datasets> load_datasets(const train_config& cfg) {
  const data_config& d = cfg.data;
  bool classes = cfg.model.loss == "softmax_cross_entropy";
  auto read = [&](const std::string& path, const std::string& labels) -> result<data::dataset> {
    if (d.format == "idx") return data::read_idx_dataset(path, labels, d.scale);
    if (d.format == "criteo") return data::read_criteo(path, {d.buckets, d.max_rows});
    if (d.format == "cifar10") return data::read_cifar10(path, {d.scale, d.mean, d.stddev});
    if (d.format == "csv") {
      data::csv_options o;
      o.label_column = d.label_column;
      o.header = d.header;
      o.label_is_class = classes;
      return data::read_csv(path, o);
    }
    auto sp = data::read_libsvm(path, d.num_features);
    if (!sp) return sp.err();
    data::dataset ds = sp->to_dense();
    if (classes) ds.labels = ds.labels.cast(dtype::i64);
    return ds;
  };
  datasets out;
  const bool binary = cfg.model.loss == "bce_with_logits";
  auto tr = read(d.train_path, d.train_labels);
  if (!tr) return tr.err();
  if (binary)
    if (status st = binary_labels(*tr); !st) return st.err();
  out.train = std::make_shared<data::dataset>(std::move(*tr));
  if (!d.test_path.empty()) {
    auto te = read(d.test_path, d.test_labels);
    if (!te) return te.err();
    if (binary)
      if (status st = binary_labels(*te); !st) return st.err();
    out.test = std::make_shared<data::dataset>(std::move(*te));
  }
  // Features must match the model's input; labels the loss.
  int64_t want = 1;
  for (auto v : cfg.model.input) want *= v;
  for (auto* ds : {out.train.get(), out.test.get()}) {
    if (!ds) continue;
    int64_t have = ds->size() ? ds->features.numel() / ds->size() : 0;
    if (have != want)
      return error{ds->source + ": examples have " + std::to_string(have) + " features but model.input " +
                   shape(cfg.model.input).to_string() + " needs " + std::to_string(want)};
  }
  if (!classes) {
    auto t = cfg.model.dtype == "f64" ? dtype::f64 : dtype::f32;
    for (auto* ds : {out.train.get(), out.test.get()})
      if (ds && ds->labels.type() != t) const_cast<data::dataset*>(ds)->labels = ds->labels.cast(t);
  }
  if (cfg.model.dtype == "f64")
    for (auto* ds : {out.train.get(), out.test.get()})
      if (ds) const_cast<data::dataset*>(ds)->features = ds->features.cast(dtype::f64);
  return out;
}

namespace {

/// Rows [from, from + n) of every placeholder's batch tensor.
feed_map share_of(const feed_map& f, int worker, int workers) {
  feed_map out;
  for (const auto& [e, t] : f) {
    const int64_t rows = t.dim(0), from = rows * worker / workers, to = rows * (worker + 1) / workers;
    const size_t row = t.nbytes() / static_cast<size_t>(std::max<int64_t>(rows, 1));
    shape s = t.shape();
    std::vector<int64_t> d = s.dims();
    d[0] = to - from;
    tensor part(t.type(), shape(d));
    if (part.nbytes() > 0)
      std::memcpy(part.raw(), static_cast<const char*>(t.raw()) + static_cast<size_t>(from) * row, part.nbytes());
    out.emplace_back(e, part);
  }
  return out;
}

} // namespace

result<train_summary> train(const train_config& cfg, progress_sink* progress, step_strategy* strategy) {
  auto t_start = clock_t_::now();
  cpu::set_num_threads(cfg.run.threads);
  train_summary sum;
  sum.threads = cpu::num_threads();

  auto ds = load_datasets(cfg);
  if (!ds) return ds.err();

  graph g;
  model m;
  try {
    m = build_model(g, cfg.model, cfg.run.seed);
  } catch (const luoshu_error& e) {
    return error{cfg.source + ": " + e.what()};
  }
  kernel_registry reg;
  cpu::register_kernels(reg);
  cuda::register_kernels(reg);
  variable_store vars(cfg.run.seed);
  std::unique_ptr<trace_recorder> trace;
  executor_options eo;
  eo.device = device::parse(cfg.run.device);
  sum.device = eo.device.to_string();
  if (!cfg.run.trace.empty()) {
    trace = std::make_unique<trace_recorder>(0, "luoshu train");
    trace->name_track(0, "executor");
    eo.trace = trace.get();
  }
  executor ex(g, vars, reg, eo);
  std::unique_ptr<trainer> tr;
  try {
    tr = std::make_unique<trainer>(g, m.loss, cfg.optimizer, ex);
  } catch (const luoshu_error& e) {
    return error{cfg.source + ": " + e.what()};
  }

  data::loader_options lo;
  lo.batch_size = cfg.run.batch_size;
  lo.shuffle = cfg.run.shuffle;
  lo.seed = cfg.run.seed;
  lo.drop_last = cfg.run.drop_last;
  std::unique_ptr<data::loader> train_loader;
  try {
    train_loader = std::make_unique<data::loader>(ds->train, lo);
  } catch (const luoshu_error& e) {
    return error{cfg.source + ": " + e.what()};
  }
  int64_t steps_per_epoch = train_loader->batches_per_epoch();
  int64_t first_epoch = 0, skip_batches = 0;
  if (strategy) {
    int64_t done = 0;
    if (!cfg.run.resume.empty()) {
      auto st = strategy->saved_step(cfg.run.resume);
      if (!st) return st.err();
      done = *st;
    }
    if (status st = vars.initialize(g); !st) return st.err();
    if (status st = strategy->attach(g, m, ex, vars, cfg.optimizer, done); !st) return st.err();
    tr->set_steps_done(done);
    first_epoch = steps_per_epoch ? done / steps_per_epoch : 0;
    skip_batches = steps_per_epoch ? done % steps_per_epoch : 0;
  } else if (!cfg.run.resume.empty()) {
    // Every variable must exist (with its optimizer slots) before loading
    // so that a checkpoint of another model is caught by name and shape.
    if (status st = vars.initialize(g); !st) return st.err();
    auto meta = vars.load(cfg.run.resume);
    if (!meta) return meta.err();
    int64_t done = 0;
    auto it = meta->find("step");
    if (it != meta->end()) done = std::strtoll(it->second.c_str(), nullptr, 10);
    tr->set_steps_done(done);
    first_epoch = steps_per_epoch ? done / steps_per_epoch : 0;
    skip_batches = steps_per_epoch ? done % steps_per_epoch : 0;
  }
  if (progress) progress->on_start(cfg, ds->train->size(), steps_per_epoch);

  auto save_checkpoint = [&](int64_t epoch) -> status {
    if (strategy) return strategy->save(cfg.run.checkpoint, tr->steps_done());
    return vars.save(cfg.run.checkpoint, {{"step", std::to_string(tr->steps_done())},
                                          {"epoch", std::to_string(epoch)},
                                          {"config", cfg.source}});
  };
  double train_seconds = 0;
  int64_t train_samples = 0;
  bool stop = false;
  for (int64_t epoch = first_epoch; epoch < cfg.run.epochs && !stop; ++epoch) {
    epoch_stats es;
    es.epoch = epoch + 1;
    auto t_epoch = clock_t_::now();
    train_loader->start_epoch(epoch);
    double loss_sum = 0;
    int64_t batches = 0, samples = 0;
    while (auto b = train_loader->next()) {
      if (skip_batches > 0) { // resuming in the middle of this epoch
        --skip_batches;
        continue;
      }
      double loss = 0;
      if (strategy) {
        auto r = strategy->step(share_of(feeds(m, *b), strategy->worker(), strategy->workers()));
        if (!r) return error{"step " + std::to_string(tr->steps_done()) + ": " + r.err().message};
        loss = *r;
        tr->set_steps_done(tr->steps_done() + 1);
      } else {
        auto r = tr->step(feeds(m, *b));
        if (!r) return error{"step " + std::to_string(tr->steps_done()) + ": " + r.err().message};
        loss = r->at(0).item();
      }
      if (!std::isfinite(loss))
        return error{"step " + std::to_string(tr->steps_done()) + ": the loss became " + std::to_string(loss) +
                     " (try a smaller optimizer.lr or clip_norm)"};
      loss_sum += loss;
      ++batches;
      samples += b->features.dim(0);
      if (progress)
        progress->on_step(epoch + 1, batches, steps_per_epoch, loss_sum / static_cast<double>(batches),
                          static_cast<double>(samples) / seconds_since(t_epoch));
      if (cfg.run.checkpoint_every > 0 && tr->steps_done() % cfg.run.checkpoint_every == 0)
        if (status st = save_checkpoint(epoch); !st) return st.err();
      if (cfg.run.max_steps > 0 && tr->steps_done() >= cfg.run.max_steps) {
        stop = true;
        break;
      }
    }
    es.seconds = seconds_since(t_epoch);
    train_seconds += es.seconds;
    train_samples += samples;
    es.train_loss = batches ? loss_sum / static_cast<double>(batches) : 0;
    es.samples_per_sec = es.seconds > 0 ? static_cast<double>(samples) / es.seconds : 0;

    if (strategy)
      if (status st = strategy->sync(); !st) return error{"before evaluating: " + st.err().message};
    if (ds->test && (!strategy || strategy->worker() == 0)) {
      data::loader_options eo;
      eo.batch_size = cfg.run.eval_batch_size;
      eo.shuffle = false;
      eo.prefetch = 1;
      data::loader el(ds->test, eo);
      el.start_epoch(0);
      double lsum = 0, hits = 0;
      int64_t n = 0;
      std::vector<double> scores, labels;
      std::vector<expr> fetches{m.loss, m.logits};
      if (m.classification) fetches.push_back(m.accuracy);
      while (auto b = el.next()) {
        auto r = tr->infer(feeds(m, *b), fetches);
        if (!r) return error{"evaluation: " + r.err().message};
        int64_t bs = b->features.dim(0);
        lsum += r->at(0).item() * static_cast<double>(bs);
        if (m.classification) {
          hits += r->at(2).item() * static_cast<double>(bs);
        } else if (cfg.model.loss == "bce_with_logits") {
          for (double v : r->at(1).to_doubles()) scores.push_back(v);
          for (double v : b->labels.to_doubles()) labels.push_back(v);
        }
        n += bs;
      }
      es.test_loss = n ? lsum / static_cast<double>(n) : 0;
      if (m.classification) es.test_accuracy = n ? hits / static_cast<double>(n) : 0;
      if (!scores.empty()) {
        if (auto a = metrics::auc(scores, labels)) es.test_auc = *a;
        for (double& v : scores) v = 1 / (1 + std::exp(-v));
        if (auto l = metrics::log_loss(scores, labels)) es.test_log_loss = *l;
      }
    }
    sum.epochs.push_back(es);
    if (progress) progress->on_epoch(es);
    if (!cfg.run.checkpoint.empty())
      if (status st = save_checkpoint(epoch + 1); !st) return st.err();
  }

  if (trace)
    if (status st = trace->write(cfg.run.trace); !st) return st.err();
  sum.steps = tr->steps_done();
  if (!sum.epochs.empty()) {
    sum.train_loss = sum.epochs.back().train_loss;
    sum.test_loss = sum.epochs.back().test_loss;
    sum.test_accuracy = sum.epochs.back().test_accuracy;
    sum.test_auc = sum.epochs.back().test_auc;
    sum.test_log_loss = sum.epochs.back().test_log_loss;
  }
  sum.samples_per_sec = train_seconds > 0 ? static_cast<double>(train_samples) / train_seconds : 0;
  sum.peak_memory_bytes = ex.stats().peak_bytes();
  sum.max_rss_bytes = max_rss_bytes();
  sum.wall_seconds = seconds_since(t_start);
  return sum;
}

std::string summary_json(const train_config& cfg, const train_summary& s) {
  auto num = [](double v) -> nlohmann::json { return v < 0 ? nlohmann::json() : nlohmann::json(v); };
  nlohmann::json j;
  j["config"] = cfg.source;
  j["epochs"] = s.epochs.size();
  j["steps"] = s.steps;
  j["train_loss"] = s.train_loss;
  j["test_loss"] = num(s.test_loss);
  j["test_accuracy"] = num(s.test_accuracy);
  j["test_auc"] = num(s.test_auc);
  j["test_log_loss"] = num(s.test_log_loss);
  j["samples_per_sec"] = s.samples_per_sec;
  j["peak_memory_bytes"] = s.peak_memory_bytes;
  j["max_rss_bytes"] = s.max_rss_bytes;
  j["wall_seconds"] = s.wall_seconds;
  j["threads"] = s.threads;
  j["device"] = s.device;
  j["per_epoch"] = nlohmann::json::array();
  for (const auto& e : s.epochs)
    j["per_epoch"].push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"test_loss", num(e.test_loss)},
                              {"test_accuracy", num(e.test_accuracy)}, {"test_auc", num(e.test_auc)},
                              {"test_log_loss", num(e.test_log_loss)},
                              {"samples_per_sec", e.samples_per_sec}, {"seconds", e.seconds}});
  return j.dump(2) + "\n";
}

} // namespace luoshu::app
