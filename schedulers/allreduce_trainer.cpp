#include "schedulers/allreduce_trainer.hpp"

#include <cstring>

namespace luoshu::schedulers {

using actors::collective_future;

/// One trainable variable.
struct allreduce_trainer::param {
  expr var;
  gradient grad;
  int bucket = -1;      ///< dense: its bucket
  size_t offset = 0;    ///< dense: elements into the bucket
  int fetch = -1;       ///< dense: the gradient's fetch; sparse: the indices' (values: fetch + 1)
  expr dense_in;        ///< placeholders fed with the averaged gradient
  expr indices_in, values_in;
};

/// Dense gradients reduced together.
struct allreduce_trainer::bucket {
  dtype type = dtype::f32;
  int64_t numel = 0;
  std::vector<size_t> params; ///< indices into params_
  tensor buf;
  size_t filled = 0;          ///< gradients copied in this step
  collective_future done;
  bool launched = false;
  int64_t launched_us = 0;
};

allreduce_trainer::allreduce_trainer(graph& g, expr loss, const optimizer_config& cfg, executor& ex,
                                     variable_store& vars, actors::communicator& comm, allreduce_trainer_options o,
                                     std::vector<expr> params)
    : g_(g), loss_(loss), cfg_(cfg), ex_(ex), vars_(vars), comm_(comm), opt_(o) {
  if (params.empty()) params = g.variables(true);
  if (params.empty()) {
    config_error_ = error{"allreduce training: the graph has no trainable variables"};
    return;
  }
  auto grads = gradients(loss, params, true);
  std::vector<gradient> fed;
  for (size_t i = 0; i < params.size(); ++i) {
    param p;
    p.var = params[i];
    p.grad = grads[i];
    const std::string base = params[i].name() + "/allreduced";
    gradient in;
    if (p.grad.sparse()) {
      p.fetch = static_cast<int>(fetches_.size());
      fetches_.push_back(p.grad.indices);
      fetches_.push_back(p.grad.values);
      bucket_of_fetch_.push_back(-1);
      bucket_of_fetch_.push_back(-1);
      std::vector<int64_t> row = params[i].shape().dims();
      row[0] = shape::unknown;
      p.indices_in = g.placeholder(base + "/indices", dtype::i64, shape{shape::unknown});
      p.values_in = g.placeholder(base + "/values", params[i].type(), shape(row));
      in.indices = p.indices_in;
      in.values = p.values_in;
    } else {
      p.fetch = static_cast<int>(fetches_.size());
      fetches_.push_back(p.grad.dense);
      bucket_of_fetch_.push_back(0); // set below
      p.dense_in = g.placeholder(base, params[i].type(), params[i].shape());
      in.dense = p.dense_in;
    }
    fed.push_back(in);
    params_.push_back(std::move(p));
  }
  // Buckets in reverse parameter order: backward produces the last layer's
  // gradients first. One dtype per bucket.
  for (size_t k = params_.size(); k-- > 0;) {
    param& p = params_[k];
    if (p.grad.sparse()) continue;
    const dtype t = p.var.type();
    const int64_t n = p.var.shape().numel();
    if (buckets_.empty() || buckets_.back().type != t ||
        (buckets_.back().numel > 0 &&
         static_cast<size_t>(buckets_.back().numel + n) * size_of(t) > opt_.fusion_bytes))
      buckets_.emplace_back().type = t;
    bucket& b = buckets_.back();
    p.bucket = static_cast<int>(buckets_.size() - 1);
    p.offset = static_cast<size_t>(b.numel);
    b.numel += n;
    b.params.push_back(k);
    bucket_of_fetch_[static_cast<size_t>(p.fetch)] = p.bucket;
  }
  for (auto& b : buckets_) b.buf = tensor(b.type, shape{b.numel});
  ops_ = apply_gradients(g, params, std::move(fed), cfg);
}

allreduce_trainer::~allreduce_trainer() {
  // Reductions still running write into the buckets: wait for them.
  for (auto& b : buckets_)
    if (b.launched) (void)b.done.get();
}

status allreduce_trainer::init() {
  if (!config_error_) return config_error_;
  if (status st = vars_.initialize(g_); !st) return st;
  // Rank 0's parameters everywhere, with their optimizer slots ("<param>/..."):
  // a resumed run has them. Other variables (e.g. tables another scheduler
  // trains) are left alone.
  std::vector<std::string> names;
  for (const auto& [name, v] : vars_.all())
    for (const auto& p : params_)
      if (name == p.var.name() || name.rfind(p.var.name() + "/", 0) == 0) {
        names.push_back(name);
        break;
      }
  for (const auto& name : names) {
    tensor v = vars_.get(name).to_host();
    tensor out = comm_.rank() == 0 ? v : tensor(v.type(), v.shape());
    if (status st = comm_.broadcast(v, out, 0).get(); !st) return error{"broadcasting '" + name + "': " + st.err().message};
    vars_.set(name, out);
  }
  return {};
}

void allreduce_trainer::begin_step() {
  pass_start_ = std::chrono::steady_clock::now();
  for (auto& b : buckets_) {
    b.filled = 0;
    b.launched = false;
  }
}

void allreduce_trainer::on_grad(size_t index, const tensor& value) {
  if (index >= bucket_of_fetch_.size() || bucket_of_fetch_[index] < 0) return;
  bucket& b = buckets_[static_cast<size_t>(bucket_of_fetch_[index])];
  size_t k = 0;
  while (params_[b.params[k]].fetch != static_cast<int>(index)) ++k;
  const param& p = params_[b.params[k]];
  const tensor v = value.to_host();
  std::memcpy(static_cast<char*>(b.buf.raw()) + p.offset * size_of(b.type), v.raw(), v.nbytes());
  if (++b.filled == b.params.size() && opt_.overlap) {
    b.launched = true;
    b.launched_us = opt_.trace ? trace_recorder::now_us() : 0;
    b.done = comm_.allreduce(b.buf, b.buf, reduce_op::mean);
  }
}

status allreduce_trainer::finish_step(const std::vector<tensor>& grads) {
  const auto pass_end = std::chrono::steady_clock::now();
  stats_.backward_seconds += std::chrono::duration<double>(pass_end - pass_start_).count();
  // Buckets not launched yet (no overlap, or a gradient only known at the
  // end), then the sparse gradients.
  for (auto& b : buckets_)
    if (!b.launched) {
      if (b.filled != b.params.size())
        for (size_t k : b.params) on_grad(static_cast<size_t>(params_[k].fetch), grads[static_cast<size_t>(params_[k].fetch)]);
      if (!b.launched) {
        b.launched = true;
        b.launched_us = opt_.trace ? trace_recorder::now_us() : 0;
        b.done = comm_.allreduce(b.buf, b.buf, reduce_op::mean);
      }
    }
  feed_map feeds;
  status failed;
  const int64_t n = comm_.size();
  for (auto& p : params_) {
    if (!p.grad.sparse()) continue;
    // Every replica's rows and ids, concatenated in rank order; the values
    // divided by the replica count (the mean of the replicas' gradients).
    const tensor idx = grads[static_cast<size_t>(p.fetch)].to_host();
    const tensor vals = grads[static_cast<size_t>(p.fetch) + 1].to_host();
    tensor count = tensor::from<int64_t>(shape{1}, {idx.numel()}), counts;
    if (status st = comm_.allgather(count, counts).get(); !st) return error{"gathering row counts: " + st.err().message};
    std::vector<int64_t> c(counts.data<int64_t>(), counts.data<int64_t>() + n);
    const int64_t width = idx.numel() > 0 ? vals.numel() / idx.numel() : p.var.shape().numel() / p.var.shape()[0];
    std::vector<int64_t> cv;
    int64_t rows = 0;
    for (auto x : c) cv.push_back(x * width), rows += x;
    tensor all_idx, all_vals;
    auto fi = comm_.allgatherv(idx.reshaped(shape{idx.numel()}), all_idx, c);
    auto fv = comm_.allgatherv(vals.reshaped(shape{vals.numel()}), all_vals, cv);
    if (status st = fi.get(); !st) return error{"gathering sparse gradient ids: " + st.err().message};
    if (status st = fv.get(); !st) return error{"gathering sparse gradient rows: " + st.err().message};
    std::vector<int64_t> row = p.var.shape().dims();
    row[0] = rows;
    all_vals = all_vals.reshaped(shape(row));
    switch (all_vals.type()) {
      case dtype::f32:
        for (auto& x : all_vals.span<float>()) x = static_cast<float>(x / static_cast<double>(n));
        break;
      case dtype::f64:
        for (auto& x : all_vals.span<double>()) x /= static_cast<double>(n);
        break;
      default: return error{"sparse gradient of '" + p.var.name() + "' is " + name(all_vals.type())};
    }
    feeds.emplace_back(p.indices_in, all_idx);
    feeds.emplace_back(p.values_in, all_vals);
  }
  for (auto& b : buckets_) {
    status st = b.done.get();
    b.launched = false;
    if (opt_.trace)
      opt_.trace->span("allreduce bucket", "collective", b.launched_us, trace_recorder::now_us() - b.launched_us,
                       opt_.trace_track, "\"bytes\":" + std::to_string(b.buf.nbytes()));
    if (!st && failed) failed = error{"all-reduce of gradients: " + st.err().message}; // keep the first
  }
  // Everything after the pass until the last reduction is in: the sparse
  // gathers (they queue behind the buckets) and whatever of the buckets'
  // reductions backward did not hide.
  stats_.exposed_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_end).count();
  stats_.buckets += static_cast<int64_t>(buckets_.size());
  if (!failed) return failed;
  for (auto& p : params_) {
    if (p.grad.sparse()) continue;
    const bucket& b = buckets_[static_cast<size_t>(p.bucket)];
    feeds.emplace_back(p.dense_in, tensor(b.buf.storage(), p.offset * size_of(b.type), b.type, p.var.shape()));
  }
  return apply(feeds);
}

status allreduce_trainer::apply(const feed_map& grads) {
  feed_map feeds = grads;
  feeds.emplace_back(ops_.lr, tensor::scalar<float>(static_cast<float>(cfg_.lr.at(step_))));
  run_options ro;
  ro.step = step_;
  auto r = ex_.run(feeds, {}, ops_.updates, ro);
  if (!r) return error{"step " + std::to_string(step_) + ": applying the averaged gradients: " + r.err().message};
  ++step_;
  ++stats_.steps;
  return {};
}

result<double> allreduce_trainer::step(const feed_map& feeds) {
  if (!config_error_) return config_error_.err();
  std::vector<expr> fetches{loss_};
  fetches.insert(fetches.end(), fetches_.begin(), fetches_.end());
  begin_step();
  run_options ro;
  ro.step = step_;
  ro.on_fetch = [this](size_t f, const tensor& v) {
    if (f > 0) on_grad(f - 1, v);
  };
  auto r = ex_.run(feeds, fetches, {}, ro);
  if (!r) {
    // Keep the ranks in step: a replica that fails here leaves the others
    // waiting in their reductions until the communicator's timeout.
    return error{"step " + std::to_string(step_) + ": " + r.err().message};
  }
  const double loss = (*r)[0].item();
  std::vector<tensor> grads(r->begin() + 1, r->end());
  if (status st = finish_step(grads); !st) return error{"step " + std::to_string(step_) + ": " + st.err().message};
  return loss;
}

} // namespace luoshu::schedulers
