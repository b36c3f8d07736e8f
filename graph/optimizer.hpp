#pragma once
// Optimizers as graph rewrites (update nodes on variables), learning-rate
// schedules, and a training step that ties them to an executor.

#include <optional>
#include <string>
#include <vector>

#include "graph/autodiff.hpp"
#include "graph/executor.hpp"

namespace luoshu {

/// Learning rate as a function of the step (0-based), after an optional
/// linear warm-up from 0 over `warmup_steps`.
struct lr_schedule {
  enum class kind_t : uint8_t { constant, step, exponential, cosine };
  kind_t kind = kind_t::constant;
  double base = 0.01;
  int64_t warmup_steps = 0;
  int64_t step_size = 1000;   ///< step: decay every step_size steps
  double gamma = 0.1;         ///< step: factor per decay; exponential: factor per step_size steps
  int64_t total_steps = 0;    ///< cosine: steps to reach min_lr
  double min_lr = 0;          ///< cosine floor

  double at(int64_t step) const;
  /// Parses "constant", "step", "exponential", "cosine"; nullopt otherwise.
  static std::optional<kind_t> parse(const std::string& s);
};

struct optimizer_config {
  enum class kind_t : uint8_t { sgd, momentum, nesterov, adagrad, adam, adamw };
  kind_t kind = kind_t::sgd;
  lr_schedule lr;
  double momentum = 0.9;    ///< momentum/nesterov; adam beta1
  double beta2 = 0.999;
  double eps = 1e-8;        ///< adam and adagrad denominators
  double weight_decay = 0;  ///< L2 (decoupled for adamw)
  double clip_norm = 0;     ///< global-norm clipping threshold; 0 = off
  double adagrad_init = 0;  ///< adagrad accumulator start value

  /// Parses "sgd", "momentum", "nesterov", "adagrad", "adam", "adamw".
  static std::optional<kind_t> parse(const std::string& s);
  static const char* name(kind_t k);
};

/// What minimize() added to the graph.
struct train_ops {
  expr lr;                      ///< f32 scalar placeholder fed each step
  std::vector<expr> updates;    ///< run these as targets
  std::vector<expr> params;     ///< the variables being trained
  std::vector<gradient> grads;  ///< their gradients (before clipping)
  expr grad_norm;               ///< global gradient norm (valid when clipping)
};

/// Appends gradient and update nodes minimising `loss` over `params`
/// (default: every trainable variable). Optimizer slots are non-trainable
/// variables named "<param>/<slot>" so checkpoints carry them. Sparse
/// (embedding) gradients update only the touched rows, except under
/// global-norm clipping, which densifies nothing but scales both kinds.
train_ops minimize(expr loss, const optimizer_config& cfg, std::vector<expr> params = {});

/// The update half of minimize(): clipping and update nodes that apply
/// `grads` (one per param: any expressions, e.g. placeholders fed with
/// gradients averaged over data-parallel replicas) to `params`.
train_ops apply_gradients(graph& g, const std::vector<expr>& params, std::vector<gradient> grads,
                          const optimizer_config& cfg);

/// One training step = forward + backward + update, with the learning rate
/// of the schedule fed for the current step.
class trainer {
public:
  trainer(graph& g, expr loss, optimizer_config cfg, executor& ex, std::vector<expr> params = {});

  /// Runs one step and returns the values of `loss` followed by `extra`
  /// fetches; advances the step counter.
  result<std::vector<tensor>> step(feed_map feeds, const std::vector<expr>& extra = {});
  /// Inference: fetches only, no update, dropout off.
  result<std::vector<tensor>> infer(const feed_map& feeds, const std::vector<expr>& fetches);

  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  const train_ops& ops() const { return ops_; }
  double current_lr() const { return cfg_.lr.at(step_); }

private:
  graph& g_;
  expr loss_;
  optimizer_config cfg_;
  executor& ex_;
  train_ops ops_;
  int64_t step_ = 0;
};

} // namespace luoshu
