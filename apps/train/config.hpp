#pragma once
// `luoshu train` configuration: YAML in, validated plain structs out. Every
// error names the key (model.layers[2].op) and what was wrong with it.

#include <array>
#include <string>
#include <vector>

#include "graph/error.hpp"
#include "graph/optimizer.hpp"

namespace luoshu::app {

/// One layer of a sequential model. Window sizes ({h, w}) may be written
/// as one number (5) or a pair ([5, 3]).
struct layer_config {
  std::string op;          ///< one of known_layer_ops()
  int64_t units = 0;       ///< linear: outputs; conv2d: output channels; lstm, gru: hidden size
  bool bias = true;        ///< linear, conv2d
  std::string init = "he_uniform"; ///< linear / conv2d weight initializer
  double alpha = 0;        ///< leaky_relu slope / elu alpha (0 = op default)
  double rate = 0;         ///< dropout
  std::array<int64_t, 2> kernel{0, 0};   ///< conv2d, max_pool2d, avg_pool2d (required)
  std::array<int64_t, 2> stride{0, 0};   ///< 0 = default (conv2d: 1; pools: the kernel)
  std::array<int64_t, 2> padding{0, 0};  ///< conv2d, pools
  std::array<int64_t, 2> dilation{1, 1}; ///< conv2d
  int64_t groups = 1;                    ///< conv2d
  bool count_include_pad = true;         ///< avg_pool2d (PyTorch's default)
  /// lstm, gru: what the layer passes on: the last step's hidden state
  /// [N, units] ("last"), its mean over the steps ("mean"), or every step
  /// [N, steps, units] ("sequence", e.g. into another recurrent layer).
  std::string output = "last";
  double eps = 1e-5;                     ///< batch_norm: added to the variance
  double momentum = 0.1;                 ///< batch_norm: weight of a batch in the running statistics
};

struct model_config {
  /// sequential (input + layers), resnet, a CTR model on criteo data
  /// (wide_deep, deepfm, dcn), or transformer (input [T, F] tokens)
  std::string kind = "sequential";
  /// Per-example feature shape, e.g. [784] (wide_deep: [13]); models with
  /// conv2d or pooling layers take an image shape [C, H, W], e.g. [1, 28, 28],
  /// and reshape the data's flat rows to it; models with lstm or gru layers
  /// take a sequence shape [steps, features], e.g. [28, 28].
  std::vector<int64_t> input;
  std::vector<layer_config> layers; ///< sequential
  std::string loss = "softmax_cross_entropy"; ///< wide_deep: bce_with_logits
  std::string dtype = "f32";
  int64_t embedding_dim = 16;            ///< wide_deep, deepfm, dcn: embedding width
  std::vector<int64_t> hidden{256, 128}; ///< wide_deep, deepfm, dcn: deep MLP hidden widths
  int64_t cross_layers = 3;              ///< dcn: cross layers
  std::vector<int64_t> channels{16, 32, 64}; ///< resnet: width of each stage (later stages halve the image)
  int64_t blocks = 1;   ///< resnet: basic blocks per stage (1: ResNet-8, 3: ResNet-20 with 3 stages)
  int64_t classes = 10; ///< resnet, transformer: outputs of the classifier (transformer: 1 for bce_with_logits / mse)
  int64_t buckets = 0; ///< wide_deep: embedding rows, set from data.buckets (not a model key)
  // transformer (input [T, F]: flat rows seen as T tokens of F features;
  // models::transformer_classifier); `layers` is the encoder layer count.
  int64_t d_model = 64;      ///< token width
  int64_t heads = 4;         ///< attention heads (d_model % heads == 0)
  int64_t encoder_layers = 2; ///< the `layers` key
  int64_t ffn = 128;         ///< feed-forward hidden width
  double dropout = 0.1;      ///< encoder dropout rate
  std::string norm = "pre";  ///< pre-LN or post-LN
};

struct data_config {
  std::string format = "idx"; ///< idx, csv, libsvm, criteo, cifar10
  /// idx: images + labels; csv/libsvm/criteo: train_path only; cifar10: a
  /// file or a directory of data_batch_N.bin files
  std::string train_path, train_labels;
  std::string test_path, test_labels;   ///< optional
  int label_column = -1;     ///< csv
  bool header = false;       ///< csv
  int64_t num_features = 0;  ///< libsvm (0 = infer)
  bool scale = true;         ///< idx, cifar10: u8 pixels to [0, 1]
  std::vector<double> mean, stddev; ///< cifar10: optional per-channel (R, G, B) normalization after scaling
  int64_t buckets = 1'000'000; ///< criteo: size of the categorical id space
  int64_t max_rows = 0;        ///< criteo: read at most this many rows per file (0 = all)
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
  int64_t checkpoint_every = 0; ///< also every this many steps (0: only after epochs)
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
