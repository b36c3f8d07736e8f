#pragma once
// `luoshu train` configuration: YAML in, validated plain structs out. Every
// error names the key (model.layers[2].op) and what was wrong with it.

#include <string>
#include <vector>

#include "graph/error.hpp"
#include "graph/optimizer.hpp"

namespace luoshu::app {

/// One layer of a sequential model.
struct layer_config {
  std::string op;          ///< linear, relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus, dropout
  int64_t units = 0;       ///< linear
  bool bias = true;        ///< linear
  std::string init = "he_uniform"; ///< linear weight initializer
  double alpha = 0;        ///< leaky_relu slope / elu alpha (0 = op default)
  double rate = 0;         ///< dropout
};

struct model_config {
  std::vector<int64_t> input;  ///< per-example feature shape, e.g. [784]
  std::vector<layer_config> layers;
  std::string loss = "softmax_cross_entropy";
  std::string dtype = "f32";
};

struct data_config {
  std::string format = "idx"; ///< idx, csv, libsvm
  std::string train_path, train_labels; ///< idx: images + labels; csv/libsvm: train_path only
  std::string test_path, test_labels;   ///< optional
  int label_column = -1;     ///< csv
  bool header = false;       ///< csv
  int64_t num_features = 0;  ///< libsvm (0 = infer)
  bool scale = true;         ///< idx: u8 pixels to [0, 1]
};

struct run_config {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  int64_t eval_batch_size = 1000;
  uint64_t seed = 1;
  bool shuffle = true;
  bool drop_last = false;
  int threads = 0; ///< intra-op threads; 0 = one per core
  std::string device = "cpu"; ///< "cpu" or "cuda[:N]"
  int64_t max_steps = 0; ///< stop after this many steps (0 = no limit)
  std::string checkpoint; ///< save variables + optimizer state + step here after every epoch
  std::string resume;     ///< continue from this checkpoint (same model; epochs counts the total)
  std::string trace;      ///< write a Chrome/Perfetto timeline of every op here
};

struct train_config {
  model_config model;
  data_config data;
  optimizer_config optimizer;
  run_config run;
  std::string source; ///< file the config came from
};

/// Loads a YAML file and applies `overrides` ("optimizer.lr=0.1",
/// "run.epochs=2", values parsed as YAML). Errors name the file and key.
result<train_config> load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});
/// Same from YAML text (tests).
result<train_config> parse_train_config(const std::string& yaml_text, const std::string& source,
                                        const std::vector<std::string>& overrides = {});

/// The layer ops a config may name.
const std::vector<std::string>& known_layer_ops();

} // namespace luoshu::app
