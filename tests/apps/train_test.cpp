// `luoshu train` engine: config validation errors, data errors, and the
// Fashion-MNIST MLP reaching >= 80% test accuracy after one epoch.

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <iterator>
#include <tuple>
#include <algorithm>

#include "apps/train/config.hpp"
#include "apps/train/train.hpp"
#include "graph/checkpoint.hpp"
#include "graph/data/criteo.hpp"

using namespace luoshu;
using namespace luoshu::app;

namespace {

const char* fmnist_dir = "/usr/share/datasets/fashion-mnist";

std::string mlp_yaml(const std::string& extra_layer_op = "relu") {
  return R"(
model:
  input: [784]
  layers:
    - {op: linear, units: 256}
    - {op: )" + extra_layer_op + R"(}
    - {op: linear, units: 10}
data:
  format: idx
  train: /nonexistent/train-images.gz
  train_labels: /nonexistent/train-labels.gz
optimizer: {kind: momentum, lr: 0.02}
run: {epochs: 1, batch_size: 128}
)";
}

class temp_dir {
public:
  temp_dir() {
    path_ = std::filesystem::temp_directory_path() / ("luoshu-train-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name, const std::string& text) const {
    auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

private:
  std::filesystem::path path_;
};

} // namespace

TEST(TrainConfig, ParsesTheExampleConfig) {
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/mlp_fashion_mnist.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.layers.size(), 5u);
  EXPECT_EQ(c->model.layers[0].units, 256);
  EXPECT_EQ(c->optimizer.kind, optimizer_config::kind_t::momentum);
  EXPECT_EQ(c->run.epochs, 10);
}

TEST(TrainConfig, ParsesTheWideDeepExampleAndPairsItWithCriteoData) {
  const std::string example = std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/wide_deep_criteo.yaml";
  auto c = load_train_config(example);
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.kind, "wide_deep");
  EXPECT_EQ(c->model.loss, "bce_with_logits");
  EXPECT_EQ(c->model.input, (std::vector<int64_t>{13}));
  EXPECT_EQ(c->model.hidden, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(c->model.buckets, 1'000'000);
  EXPECT_EQ(c->data.format, "criteo");

  const std::vector<std::pair<std::string, std::string>> bad{
      {"data.format=csv", "data.format: the CTR models (wide_deep, deepfm, dcn) and the criteo format"},
      {"model.kind=sequential", "model.layers: must be a non-empty list"},
      {"model.kind=deep_cross", "model.kind: unknown kind 'deep_cross'"},
      {"model.cross_layers=2", "model.cross_layers: applies to dcn only"},
      {"model.loss=mse", "model.loss: wide_deep trains with bce_with_logits"},
      {"model.layers=[{op: relu}]", "model.layers: does not apply to wide_deep"},
      {"model.hidden=[64, 0]", "model.hidden: widths must be positive"},
      {"model.embedding_dim=0", "model.embedding_dim: must be > 0"},
      {"data.buckets=26", "data.buckets: must be above 26"},
      {"data.max_rows=-5", "data.max_rows: must be >= 0"},
  };
  for (const auto& [set, want] : bad) {
    auto e = load_train_config(example, {set});
    ASSERT_FALSE(e.ok()) << set;
    EXPECT_NE(e.err().message.find(want), std::string::npos) << set << ": " << e.err().message;
  }
  auto seq = parse_train_config(mlp_yaml(), "cfg.yaml", {"data.format=criteo"});
  ASSERT_FALSE(seq.ok());
  EXPECT_NE(seq.err().message.find("model.kind: the CTR models (wide_deep, deepfm, dcn) and the criteo format"), std::string::npos)
      << seq.err().message;
}

TEST(TrainConfig, UnknownOpIsNamedWithItsKey) {
  auto c = parse_train_config(mlp_yaml("rellu"), "cfg.yaml");
  ASSERT_FALSE(c.ok());
  const auto& m = c.err().message;
  EXPECT_NE(m.find("cfg.yaml"), std::string::npos) << m;
  EXPECT_NE(m.find("model.layers[1].op"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown op 'rellu'"), std::string::npos) << m;
  EXPECT_NE(m.find("relu"), std::string::npos) << m; // lists the known ops
}

TEST(TrainConfig, RejectsMisspeltKeysAndBadValues) {
  auto typo = parse_train_config(mlp_yaml() + "extra_key: 1\n", "cfg.yaml");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.err().message.find("extra_key: is not a known key"), std::string::npos) << typo.err().message;

  auto lr = parse_train_config(mlp_yaml(), "cfg.yaml", {"optimizer.lr=-1"});
  ASSERT_FALSE(lr.ok());
  EXPECT_NE(lr.err().message.find("optimizer.lr"), std::string::npos);

  auto kind = parse_train_config(mlp_yaml(), "cfg.yaml", {"optimizer.kind=adamax"});
  ASSERT_FALSE(kind.ok());
  EXPECT_NE(kind.err().message.find("unknown optimizer 'adamax'"), std::string::npos);

  auto type = parse_train_config(mlp_yaml(), "cfg.yaml", {"run.epochs=many"});
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.err().message.find("run.epochs"), std::string::npos);

  // An empty value clears a text key (a null is not the file name "null").
  auto cleared = parse_train_config(mlp_yaml(), "cfg.yaml", {"data.test=t10k.idx", "data.test="});
  ASSERT_TRUE(cleared.ok()) << cleared.err().message;
  EXPECT_EQ(cleared->data.test_path, "");
  auto set_test = parse_train_config(mlp_yaml(), "cfg.yaml", {"data.test=t10k.idx", "data.test_labels=t10k.lbl"});
  ASSERT_TRUE(set_test.ok()) << set_test.err().message;
  EXPECT_EQ(set_test->data.test_path, "t10k.idx");

  auto bad_set = parse_train_config(mlp_yaml(), "cfg.yaml", {"no-equals-sign"});
  ASSERT_FALSE(bad_set.ok());
  EXPECT_NE(bad_set.err().message.find("expected key=value"), std::string::npos);

  auto yaml = parse_train_config("model: [unclosed", "cfg.yaml");
  ASSERT_FALSE(yaml.ok());
  EXPECT_NE(yaml.err().message.find("invalid YAML"), std::string::npos);

  auto missing = load_train_config("/nonexistent/config.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("/nonexistent/config.yaml"), std::string::npos);
}

TEST(TrainConfig, OverridesReplaceValuesAndCreateKeys) {
  auto c = parse_train_config(mlp_yaml(), "cfg.yaml",
                              {"optimizer.lr=0.5", "run.epochs=3", "optimizer.schedule.kind=cosine"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_DOUBLE_EQ(c->optimizer.lr.base, 0.5);
  EXPECT_EQ(c->run.epochs, 3);
  EXPECT_EQ(c->optimizer.lr.kind, lr_schedule::kind_t::cosine);
  EXPECT_EQ(c->optimizer.kind, optimizer_config::kind_t::momentum); // untouched sibling
}

TEST(Train, MissingDataFileIsNamed) {
  auto c = parse_train_config(mlp_yaml(), "cfg.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("/nonexistent/train-images.gz"), std::string::npos) << r.err().message;
}

TEST(Train, FeatureCountMismatchIsAnError) {
  temp_dir dir;
  std::string csv = dir.file("d.csv", "1,2,3,0\n4,5,6,1\n7,8,9,0\n");
  auto c = parse_train_config(mlp_yaml(), "cfg.yaml",
                              {"data.format=csv", "data.train=" + csv, "data.train_labels=''"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("3 features"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("784"), std::string::npos) << r.err().message;
}

TEST(Train, LearnsAnXorLikeCsvProblem) {
  // Two Gaussian-free clusters per class: not linearly separable, so the
  // hidden layer has to do its job.
  temp_dir dir;
  std::string text;
  for (int i = 0; i < 400; ++i) {
    double a = (i % 2) ? 1 : -1, b = ((i / 2) % 2) ? 1 : -1;
    double jx = ((i * 37) % 100) / 500.0, jy = ((i * 53) % 100) / 500.0;
    text += std::to_string(a + jx) + "," + std::to_string(b + jy) + "," + (a * b > 0 ? "1" : "0") + "\n";
  }
  std::string csv = dir.file("xor.csv", text);
  std::string yaml = R"(
model:
  input: [2]
  layers: [{op: linear, units: 16}, {op: tanh}, {op: linear, units: 2}]
data: {format: csv, train: )" + csv + ", test: " + csv + R"(}
optimizer: {kind: adam, lr: 0.05}
run: {epochs: 30, batch_size: 32}
)";
  auto c = parse_train_config(yaml, "xor.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_GE(r->test_accuracy, 0.99);
  EXPECT_LT(r->train_loss, 0.1);
}

class CtrModel : public testing::TestWithParam<const char*> {};

TEST_P(CtrModel, LearnsGeneratedCriteoData) {
  // 20k training rows from the generator's logistic model; ids over small
  // vocabularies so that they repeat enough to be learned. A model using
  // the dense features alone reaches a test AUC of about 0.64 here (the
  // categorical fields carry most of the signal), Wide&Deep 0.73.
  const std::string kind = GetParam();
  temp_dir dir;
  const std::string train_path = dir.file("train.tsv", ""), test_path = dir.file("test.tsv", "");
  data::criteo_gen_options o{.rows = 20'000, .seed = 1, .distinct = 10'000};
  ASSERT_TRUE(data::write_criteo(train_path, o).ok());
  o.rows = 5'000;
  o.part = 1;
  auto test_stats = data::write_criteo(test_path, o);
  ASSERT_TRUE(test_stats.ok());
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/" + kind + "_criteo.yaml",
                             {"data.train=" + train_path, "data.test=" + test_path, "data.buckets=100000",
                              "model.embedding_dim=8", "model.hidden=[32, 16]", "optimizer.lr=0.003"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.kind, kind);
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_GT(r->test_auc, 0.68);
  // Better than always predicting the test set's positive rate.
  const double p = static_cast<double>(test_stats->positives) / 5000;
  const double base_rate_loss = -(p * std::log(p) + (1 - p) * std::log(1 - p));
  EXPECT_LT(r->test_log_loss, base_rate_loss - 0.03) << "base rate " << p;
  EXPECT_NEAR(r->test_log_loss, r->test_loss, 1e-3); // bce_with_logits is the log-loss
}

INSTANTIATE_TEST_SUITE_P(Criteo, CtrModel, testing::Values("wide_deep", "deepfm", "dcn"));

TEST(TrainConfig, DcnCrossLayersAreReadAndChecked) {
  const std::string example = std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/dcn_criteo.yaml";
  auto c = load_train_config(example, {"model.cross_layers=5"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.cross_layers, 5);
  auto bad = load_train_config(example, {"model.cross_layers=-1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("model.cross_layers: must be >= 0"), std::string::npos) << bad.err().message;
}

TEST(Train, FashionMnistMlpReaches80PercentInOneEpoch) {
  if (!std::filesystem::exists(std::string(fmnist_dir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (scripts/setup.sh installs dataset-fashion-mnist)";
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/mlp_fashion_mnist.yaml",
                             {"run.epochs=1"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->steps, 469);
  EXPECT_GE(r->test_accuracy, 0.80);
  EXPECT_GT(r->peak_memory_bytes, 0u);
  std::string json = summary_json(*c, *r);
  EXPECT_NE(json.find("\"test_accuracy\""), std::string::npos);
}

namespace {

std::string xor_csv(const temp_dir& dir) {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    double a = (i % 2) ? 1 : -1, b = ((i / 2) % 2) ? 1 : -1;
    text += std::to_string(a + ((i * 37) % 100) / 500.0) + "," + std::to_string(b + ((i * 53) % 100) / 500.0) +
            "," + (a * b > 0 ? "1" : "0") + "\n";
  }
  return dir.file("xor.csv", text);
}

std::string xor_yaml(const std::string& csv) {
  return R"(
model:
  input: [2]
  layers: [{op: linear, units: 8}, {op: tanh}, {op: dropout, rate: 0.1}, {op: linear, units: 2}]
data: {format: csv, train: )" + csv + R"(}
optimizer: {kind: adam, lr: 0.01}
run: {epochs: 4, batch_size: 16, seed: 3}
)";
}

} // namespace

TEST(Train, ResumeEqualsAnUninterruptedRun) {
  temp_dir dir;
  std::string csv = xor_csv(dir), yaml = xor_yaml(csv);
  std::string a = dir.file("a.ck", ""), b = dir.file("b.ck", "");

  auto full = parse_train_config(yaml, "x.yaml", {"run.checkpoint=" + a});
  ASSERT_TRUE(full.ok()) << full.err().message;
  ASSERT_TRUE(train(*full).ok());

  // Stop in the middle of the second epoch (13 batches per epoch), then
  // resume and finish: the parameters and Adam state must match bit for bit.
  auto part = parse_train_config(yaml, "x.yaml", {"run.checkpoint=" + b, "run.max_steps=20"});
  ASSERT_TRUE(part.ok());
  auto pr = train(*part);
  ASSERT_TRUE(pr.ok()) << pr.err().message;
  EXPECT_EQ(pr->steps, 20);
  auto rest = parse_train_config(yaml, "x.yaml", {"run.checkpoint=" + b, "run.resume=" + b});
  ASSERT_TRUE(rest.ok());
  auto rr = train(*rest);
  ASSERT_TRUE(rr.ok()) << rr.err().message;
  EXPECT_EQ(rr->steps, 4 * 13);

  auto ca = load_checkpoint(a), cb = load_checkpoint(b);
  ASSERT_TRUE(ca.ok() && cb.ok());
  ASSERT_EQ(ca->tensors.size(), cb->tensors.size());
  EXPECT_GT(ca->tensors.count("dense1/w/m"), 0u); // optimizer state is in the file
  for (auto& [name, t] : ca->tensors) {
    ASSERT_TRUE(cb->tensors.count(name)) << name;
    const tensor& u = cb->tensors.at(name);
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.nbytes()), 0) << name << " differs after resume";
  }
  EXPECT_EQ(ca->metadata.at("step"), cb->metadata.at("step"));
}

TEST(Train, ResumeFromACorruptOrForeignCheckpointFails) {
  temp_dir dir;
  std::string csv = xor_csv(dir);
  std::string junk = dir.file("junk.ck", "not a checkpoint at all");
  auto c = parse_train_config(xor_yaml(csv), "x.yaml", {"run.resume=" + junk});
  ASSERT_TRUE(c.ok());
  auto r = train(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find(junk), std::string::npos) << r.err().message;

  // A checkpoint of a wider model: the shape mismatch is named.
  std::string other = dir.file("other.ck", "");
  std::string wide_yaml = xor_yaml(csv);
  wide_yaml.replace(wide_yaml.find("units: 8"), 8, "units: 9");
  auto w = parse_train_config(wide_yaml, "w.yaml", {"run.checkpoint=" + other, "run.epochs=1"});
  ASSERT_TRUE(w.ok()) << w.err().message;
  ASSERT_TRUE(train(*w).ok());
  auto c2 = parse_train_config(xor_yaml(csv), "x.yaml", {"run.resume=" + other});
  ASSERT_TRUE(c2.ok());
  auto r2 = train(*c2);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.err().message.find("'dense1/"), std::string::npos) << r2.err().message;
  EXPECT_NE(r2.err().message.find("9]"), std::string::npos) << r2.err().message;
}

TEST(Train, TraceWritesAChromeTimelineOfEveryOp) {
  temp_dir dir;
  std::string csv = xor_csv(dir), trace = dir.file("t.json", "");
  auto c = parse_train_config(xor_yaml(csv), "x.yaml", {"run.epochs=1", "run.trace=" + trace});
  ASSERT_TRUE(c.ok()) << c.err().message;
  ASSERT_TRUE(train(*c).ok());
  std::ifstream f(trace);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 0), 0u);
  EXPECT_NE(text.find("\"name\":\"linear\",\"cat\":\"op\",\"ph\":\"X\""), std::string::npos);
  EXPECT_NE(text.find("adam_update"), std::string::npos); // the updates are traced too
  EXPECT_EQ(text.substr(text.size() - 3), "]}\n");
}

namespace {

/// 8x8 one-channel images as csv rows (64 pixels, then the label): class 0
/// holds a vertical bar, class 1 a horizontal one, at varying positions
/// over a faint pattern. A linear model on the pixels cannot tell them
/// apart from one position to the next; a 3x3 convolution can.
std::string bars_csv(const temp_dir& dir, const std::string& name, int rows, int offset) {
  std::string text;
  for (int i = 0; i < rows; ++i) {
    const int r = i + offset, label = r % 2, at = 1 + (r / 2) % 6;
    for (int p = 0; p < 64; ++p) {
      const int y = p / 8, x = p % 8;
      const bool on = label == 0 ? (x == at && y >= 1 && y <= 6) : (y == at && x >= 1 && x <= 6);
      const double v = on ? 1.0 : ((r * 7 + p * 13) % 10) / 40.0;
      text += std::to_string(v) + ",";
    }
    text += std::to_string(label) + "\n";
  }
  return dir.file(name, text);
}

std::string conv_yaml(const std::string& train_csv, const std::string& test_csv) {
  return R"(
model:
  input: [1, 8, 8]
  layers:
    - {op: conv2d, units: 4, kernel: 3, padding: 1}
    - {op: relu}
    - {op: max_pool2d, kernel: 2}
    - {op: conv2d, units: 4, kernel: [3, 3], groups: 2, bias: false}
    - {op: relu}
    - {op: avg_pool2d, kernel: 2, stride: 2}
    - {op: flatten}
    - {op: linear, units: 2}
data: {format: csv, train: )" + train_csv + ", test: " + test_csv + R"(}
optimizer: {kind: adam, lr: 0.02}
run: {epochs: 6, batch_size: 16, threads: 1}
)";
}

} // namespace

TEST(TrainConfig, ParsesTheLeNetExample) {
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/lenet_fashion_mnist.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.input, (std::vector<int64_t>{1, 28, 28}));
  ASSERT_EQ(c->model.layers.size(), 12u);
  const layer_config& c1 = c->model.layers[0];
  EXPECT_EQ(c1.op, "conv2d");
  EXPECT_EQ(c1.units, 6);
  EXPECT_EQ(c1.kernel, (std::array<int64_t, 2>{5, 5}));
  EXPECT_EQ(c1.padding, (std::array<int64_t, 2>{2, 2}));
  EXPECT_EQ(c->model.layers[2].op, "max_pool2d");
  EXPECT_EQ(c->model.layers[6].op, "flatten");

  // The graph it builds: [N, 784] rows in, LeNet's shapes on the way.
  graph g;
  model m = build_model(g, c->model, 1);
  EXPECT_EQ(m.x.shape(), (shape{-1, 784}));
  EXPECT_EQ(m.logits.shape(), (shape{-1, 10}));
}

TEST(Train, ConvNetLearnsBarOrientation) {
  temp_dir dir;
  const std::string tr = bars_csv(dir, "bars-train.csv", 192, 0), te = bars_csv(dir, "bars-test.csv", 64, 1000);
  auto c = parse_train_config(conv_yaml(tr, te), "conv.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  ASSERT_EQ(r->epochs.size(), 6u);
  EXPECT_LT(r->epochs.back().train_loss, 0.5 * r->epochs.front().train_loss);
  EXPECT_GE(r->test_accuracy, 0.95);
}

TEST(TrainConfig, ConvLayerErrorsNameTheLayer) {
  temp_dir dir;
  const std::string tr = bars_csv(dir, "bars.csv", 16, 0), yaml = conv_yaml(tr, tr);
  const std::vector<std::pair<std::string, std::string>> bad{
      {"model.layers=[{op: conv2d, units: 4}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].kernel: is missing (conv2d needs a kernel size"},
      {"model.layers=[{op: max_pool2d}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].kernel: is missing (max_pool2d"},
      {"model.layers=[{op: conv2d, kernel: 3}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].units: conv2d needs units > 0"},
      {"model.layers=[{op: flatten}, {op: conv2d, units: 4, kernel: 3}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[1].op: conv2d needs [N, C, H, W] maps but model.layers[0] (flatten) made them flat"},
      {"model.layers=[{op: conv2d, units: 4, kernel: 3}, {op: linear, units: 2}]",
       "model.layers[1].op: linear needs flat [N, features] rows"},
      {"model.layers=[{op: conv2d, units: 4, kernel: 3}, {op: relu}]", "model.layers: the last layer gives [N, C, H, W]"},
      {"model.layers=[{op: relu, kernel: 3}, {op: linear, units: 2}]",
       "model.layers[0].kernel: does not apply to relu"},
      {"model.layers=[{op: linear, units: 2, padding: 1}]", "model.layers[0].padding: does not apply to linear"},
      {"model.layers=[{op: conv2d, units: 4, kernel: [3, 3, 3]}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].kernel: must be an integer or a pair [h, w]"},
      {"model.layers=[{op: max_pool2d, kernel: 2, stride: 0}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].stride: must be >= 1"},
      {"model.layers=[{op: conv2d, units: 5, kernel: 3, groups: 2}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].groups: groups 2 do not divide the 5 output channels"},
      {"model.input=[64]", "model.input: is [64] but model.layers[0] (conv2d) needs an image shape [C, H, W]"},
  };
  for (const auto& [set, want] : bad) {
    auto e = parse_train_config(yaml, "conv.yaml", {set});
    ASSERT_FALSE(e.ok()) << set;
    EXPECT_NE(e.err().message.find(want), std::string::npos) << set << ":\n  " << e.err().message;
  }

  // Sizes are checked by shape inference when the model is built: the
  // error names the layer and says what did not fit.
  struct shape_case {
    std::string set, layer, detail;
  };
  const std::vector<shape_case> shapes{
      {"model.layers=[{op: conv2d, units: 4, kernel: 9}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0] (conv2d)", "larger than the padded input height 8"},
      {"model.layers=[{op: conv2d, units: 4, kernel: 3}, {op: max_pool2d, kernel: 2}, {op: conv2d, units: 4, "
       "kernel: 5}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[2] (conv2d)", "larger than the padded input height 3"},
      {"model.layers=[{op: conv2d, units: 4, kernel: 3, groups: 2}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0] (conv2d)", "groups 2 do not divide the 1 input channels"},
      {"model.layers=[{op: max_pool2d, kernel: 2, padding: 2}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0] (max_pool2d)", "at most half the kernel"},
  };
  for (const auto& s : shapes) {
    auto c = parse_train_config(yaml, "conv.yaml", {s.set});
    ASSERT_TRUE(c.ok()) << s.set << ": " << c.err().message;
    auto r = train(*c);
    ASSERT_FALSE(r.ok()) << s.set;
    const std::string& m = r.err().message;
    EXPECT_EQ(m.rfind("conv.yaml: " + s.layer + ": ", 0), 0u) << s.set << ":\n  " << m;
    EXPECT_NE(m.find(s.detail), std::string::npos) << s.set << ":\n  " << m;
  }
}

namespace {

/// A libsvm file of n examples over 4 features whose class is decided by
/// the sign of x1 - x3; `labels` gives the two label strings (negative,
/// positive), e.g. {"-1", "+1"} or {"0", "1"}.
std::string separable_libsvm(const temp_dir& dir, const std::string& name, int n, std::array<const char*, 2> labels) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    double a = ((i * 37) % 100) / 50.0 - 1, b = ((i * 53) % 100) / 50.0 - 1;
    if (std::abs(a - b) < 0.1) continue; // a margin
    text += std::string(labels[a > b ? 1 : 0]) + " 1:" + std::to_string(a) + " 2:0.5 3:" + std::to_string(b) + "\n";
  }
  return dir.file(name, text);
}

} // namespace

TEST(Train, LogisticRegressionExampleLearnsLibsvmWithSignLabels) {
  temp_dir dir;
  const std::string tr = separable_libsvm(dir, "train.svm", 2000, {"-1", "+1"});
  const std::string te = separable_libsvm(dir, "test.svm", 400, {"-1", "+1"});
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/logistic_regression_libsvm.yaml",
                             {"data.train=" + tr, "data.test=" + te, "data.num_features=4", "model.input=[4]",
                              "run.epochs=3", "optimizer.lr=0.5"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_GT(r->test_auc, 0.99); // -1 read as 0: a learnt boundary, not a constant
  EXPECT_LT(r->test_log_loss, 0.2);
}

TEST(Train, SoftmaxRegressionExampleLearnsLibsvmClasses) {
  temp_dir dir;
  const std::string tr = separable_libsvm(dir, "train.svm", 2000, {"0", "1"});
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/softmax_regression_libsvm.yaml",
                             {"data.train=" + tr, "data.test=" + tr, "data.num_features=4", "model.input=[4]",
                              "model.layers=[{op: linear, units: 2, init: zeros}]", "run.epochs=3", "optimizer.lr=0.5"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_GT(r->test_accuracy, 0.97);
}

TEST(Train, BinaryCrossEntropyRefusesLabelsThatAreNotBinary) {
  temp_dir dir;
  const std::string three = dir.file("three.svm", "0 1:1\n1 1:2\n2 1:3\n");
  const std::string mixed = dir.file("mixed.svm", "-1 1:1\n0 1:2\n1 1:3\n");
  for (const auto& [path, want] : std::vector<std::pair<std::string, std::string>>{
           {three, "three.svm: bce_with_logits needs binary labels (0/1 or -1/+1), example 2 has 2"},
           {mixed, "mixed.svm: labels mix 0 and -1 (example 1)"}}) {
    auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/logistic_regression_libsvm.yaml",
                               {"data.train=" + path, "data.test=" + path, "data.num_features=1", "model.input=[1]"});
    ASSERT_TRUE(c.ok()) << c.err().message;
    auto r = train(*c);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_NE(r.err().message.find(want), std::string::npos) << r.err().message;
  }
}

namespace {

/// Sequences of 6 steps of 2 features as csv rows (12 values, then the
/// label): the label is 1 where the first step's first feature is positive;
/// every later step is noise of the same size. Only a model that carries
/// the first step to the end can tell the classes apart.
std::string first_step_csv(const temp_dir& dir, const std::string& name, int rows, int offset) {
  std::string text;
  for (int i = 0; i < rows; ++i) {
    const int r = i + offset, label = (r * 7 / 3) % 2;
    for (int p = 0; p < 12; ++p) {
      double v = ((r * 31 + p * 17) % 21) / 10.0 - 1.0; // in [-1, 1]
      if (p == 0) v = (label ? 1.0 : -1.0) * (0.3 + 0.7 * ((r * 13) % 10) / 10.0);
      text += std::to_string(v) + ",";
    }
    text += std::to_string(label) + "\n";
  }
  return dir.file(name, text);
}

std::string rnn_yaml(const std::string& train_csv, const std::string& test_csv) {
  return R"(
model:
  input: [6, 2]
  layers:
    - {op: lstm, units: 12}
    - {op: linear, units: 2}
data: {format: csv, train: )" + train_csv + ", test: " + test_csv + R"(}
optimizer: {kind: adam, lr: 0.03}
run: {epochs: 8, batch_size: 16, threads: 1}
)";
}

} // namespace

TEST(TrainConfig, ParsesTheLstmExample) {
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/lstm_fashion_mnist.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.input, (std::vector<int64_t>{28, 28}));
  ASSERT_EQ(c->model.layers.size(), 2u);
  EXPECT_EQ(c->model.layers[0].op, "lstm");
  EXPECT_EQ(c->model.layers[0].units, 128);
  EXPECT_EQ(c->model.layers[0].output, "last");

  // The graph: [N, 784] rows in, seen as 28 steps of 28 features.
  graph g;
  model m = build_model(g, c->model, 1);
  EXPECT_EQ(m.x.shape(), (shape{-1, 784}));
  EXPECT_EQ(m.logits.shape(), (shape{-1, 10}));
  expr wx = g.find("lstm1/w_x"), wh = g.find("lstm1/w_h"), b = g.find("lstm1/b");
  ASSERT_TRUE(wx.valid() && wh.valid() && b.valid());
  EXPECT_EQ(wx.shape(), (shape{28, 512}));
  EXPECT_EQ(wh.shape(), (shape{128, 512}));
  EXPECT_EQ(b.shape(), (shape{512}));
}

TEST(Train, LstmCarriesTheFirstStepToTheLast) {
  temp_dir dir;
  const std::string tr = first_step_csv(dir, "seq-train.csv", 256, 0), te = first_step_csv(dir, "seq-test.csv", 64, 5000);
  auto c = parse_train_config(rnn_yaml(tr, te), "rnn.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  ASSERT_EQ(r->epochs.size(), 8u);
  EXPECT_LT(r->epochs.back().train_loss, 0.5 * r->epochs.front().train_loss);
  EXPECT_GE(r->test_accuracy, 0.95);
}

TEST(Train, StackedGruWithSequenceAndMeanOutputsLearns) {
  temp_dir dir;
  const std::string tr = first_step_csv(dir, "seq-train.csv", 256, 0), te = first_step_csv(dir, "seq-test.csv", 64, 5000);
  auto c = parse_train_config(rnn_yaml(tr, te), "rnn.yaml",
                              {"model.layers=[{op: gru, units: 12, output: sequence}, {op: gru, units: 8, output: "
                               "mean}, {op: tanh}, {op: linear, units: 2}]"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  graph g;
  build_model(g, c->model, 1);
  EXPECT_EQ(g.find("gru1/w_x").shape(), (shape{2, 36}));
  EXPECT_EQ(g.find("gru2/w_x").shape(), (shape{12, 24}));
  EXPECT_EQ(g.find("gru2/b_h").shape(), (shape{24}));
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_LT(r->epochs.back().train_loss, 0.5 * r->epochs.front().train_loss);
  EXPECT_GE(r->test_accuracy, 0.9);
}

TEST(TrainConfig, RecurrentLayerErrorsNameTheLayer) {
  temp_dir dir;
  const std::string tr = first_step_csv(dir, "seq.csv", 16, 0), yaml = rnn_yaml(tr, tr);
  const std::vector<std::pair<std::string, std::string>> bad{
      {"model.layers=[{op: lstm}, {op: linear, units: 2}]", "model.layers[0].units: lstm needs units > 0 (hidden size)"},
      {"model.layers=[{op: gru, units: 4, output: first}, {op: linear, units: 2}]",
       "model.layers[0].output: unknown output 'first' (known: last, sequence, mean)"},
      {"model.layers=[{op: lstm, units: 4, kernel: 3}, {op: linear, units: 2}]",
       "model.layers[0].kernel: does not apply to lstm (its keys: units, output)"},
      {"model.layers=[{op: linear, units: 4, output: last}, {op: linear, units: 2}]",
       "model.layers[0].output: does not apply to linear"},
      {"model.input=[12]", "model.input: is [12] but model.layers[0] (lstm) needs a sequence shape [steps, features]"},
      {"model.layers=[{op: flatten}, {op: lstm, units: 4}, {op: linear, units: 2}]",
       "model.layers[1].op: lstm needs [N, steps, features] sequences but model.layers[0] (flatten) made them flat"},
      {"model.layers=[{op: lstm, units: 4}, {op: gru, units: 4}, {op: linear, units: 2}]",
       "model.layers[1].op: gru needs [N, steps, features] sequences but model.layers[0] (lstm) with output: last "
       "made them flat"},
      {"model.layers=[{op: lstm, units: 4, output: sequence}, {op: linear, units: 2}]",
       "model.layers[1].op: linear needs flat [N, features] rows but gets [N, steps, features] sequences"},
      {"model.layers=[{op: lstm, units: 4, output: sequence}]",
       "model.layers: the last layer gives [N, steps, features] sequences"},
      {"model.layers=[{op: lstm, units: 4}, {op: max_pool2d, kernel: 2}, {op: linear, units: 2}]",
       "model.layers[1].op: max_pool2d and model.layers[0] (lstm) cannot be in one model"},
  };
  for (const auto& [set, want] : bad) {
    auto e = parse_train_config(yaml, "rnn.yaml", {set});
    ASSERT_FALSE(e.ok()) << set;
    EXPECT_NE(e.err().message.find(want), std::string::npos) << set << ":\n  " << e.err().message;
  }
  // A sequence with flatten before the logits is a model too.
  auto c = parse_train_config(yaml, "rnn.yaml",
                              {"model.layers=[{op: lstm, units: 4, output: sequence}, {op: flatten}, {op: linear, units: 2}]"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  graph g;
  EXPECT_EQ(build_model(g, c->model, 1).logits.shape(), (shape{-1, 2}));
}

// --- batch normalization, ResNet, CIFAR-10 ------------------------------------

namespace {

/// CIFAR-10 binary records (label byte, R, G, B planes of 32x32): class 0
/// a vertical bar, class 1 a horizontal one, in the green plane at varying
/// positions over a faint pattern in every plane.
std::string cifar_bars(const temp_dir& dir, const std::string& name, int rows, int offset) {
  std::string bytes;
  for (int i = 0; i < rows; ++i) {
    const int r = i + offset, label = r % 2, at = 4 + (r / 2) % 24;
    bytes.push_back(static_cast<char>(label));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) {
        const int y = p / 32, x = p % 32;
        const bool on = c == 1 && (label == 0 ? (x == at && y >= 4 && y < 28) : (y == at && x >= 4 && x < 28));
        bytes.push_back(static_cast<char>(on ? 250 : (r * 7 + p * 13 + c * 5) % 60));
      }
  }
  return dir.file(name, bytes);
}

std::string resnet_yaml(const std::string& train, const std::string& test) {
  return R"(
model:
  kind: resnet
  input: [3, 32, 32]
  channels: [4, 8]
  blocks: 1
  classes: 2
data: {format: cifar10, train: )" + train + ", test: " + test + R"(, mean: [0.1, 0.1, 0.1], std: [0.2, 0.2, 0.2]}
optimizer: {kind: adam, lr: 0.01}
run: {epochs: 5, batch_size: 16, threads: 1}
)";
}

} // namespace

TEST(TrainConfig, ParsesTheResNetExamples) {
  for (const char* name : {"resnet_cifar10.yaml", "resnet_fashion_mnist.yaml"}) {
    auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/" + name);
    ASSERT_TRUE(c.ok()) << c.err().message;
    EXPECT_EQ(c->model.kind, "resnet") << name;
    EXPECT_EQ(c->model.channels, (std::vector<int64_t>{16, 32, 64})) << name;
    graph g;
    model m = build_model(g, c->model, 1);
    const int64_t features = c->data.format == "cifar10" ? 3072 : 784;
    EXPECT_EQ(m.x.shape(), (shape{-1, features})) << name;
    EXPECT_EQ(m.logits.shape(), (shape{-1, 10})) << name;
    // Batch norm's running statistics are variables, but not trainable ones.
    expr rm = g.find("stage2/block1/shortcut/bn/running_var"), gamma = g.find("stem/bn/gamma");
    ASSERT_TRUE(rm.valid() && gamma.valid()) << name;
    EXPECT_FALSE(rm.get().attrs.flag);
    EXPECT_TRUE(gamma.get().attrs.flag);
  }
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/resnet_cifar10.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data.format, "cifar10");
  EXPECT_EQ(c->data.mean.size(), 3u);
}

TEST(Train, ResNetLearnsCifar10FormatBarsAndResumesWithItsRunningStatistics) {
  temp_dir dir;
  cifar_bars(dir, "data_batch_1.bin", 64, 0);
  cifar_bars(dir, "data_batch_2.bin", 64, 64);
  const std::string test = cifar_bars(dir, "test_batch.bin", 32, 1000);
  const std::string yaml = resnet_yaml(dir.path(), test);
  std::string a = dir.file("a.ck", ""), b = dir.file("b.ck", "");

  auto full = parse_train_config(yaml, "resnet.yaml", {"run.checkpoint=" + a});
  ASSERT_TRUE(full.ok()) << full.err().message;
  auto r = train(*full);
  ASSERT_TRUE(r.ok()) << r.err().message;
  ASSERT_EQ(r->epochs.size(), 5u);
  EXPECT_EQ(r->steps, 5 * 8); // 128 records from two files, batches of 16
  EXPECT_LT(r->epochs.back().train_loss, 0.5 * r->epochs.front().train_loss);
  EXPECT_GE(r->test_accuracy, 0.9); // evaluated with the running statistics

  // Stop in the second epoch and resume: every tensor, the running
  // statistics included, must match the uninterrupted run bit for bit.
  auto part = parse_train_config(yaml, "resnet.yaml", {"run.checkpoint=" + b, "run.max_steps=12"});
  ASSERT_TRUE(part.ok());
  ASSERT_TRUE(train(*part).ok());
  auto rest = parse_train_config(yaml, "resnet.yaml", {"run.checkpoint=" + b, "run.resume=" + b});
  ASSERT_TRUE(rest.ok());
  auto rr = train(*rest);
  ASSERT_TRUE(rr.ok()) << rr.err().message;
  auto ca = load_checkpoint(a), cb = load_checkpoint(b);
  ASSERT_TRUE(ca.ok() && cb.ok());
  ASSERT_TRUE(ca->tensors.count("stem/bn/running_mean"));
  ASSERT_TRUE(ca->tensors.count("stage2/block1/shortcut/bn/running_var"));
  EXPECT_FALSE(ca->tensors.count("stem/bn/running_mean/m")) << "an optimizer slot for a running statistic";
  std::vector<double> rm = ca->tensors.at("stem/bn/running_mean").to_doubles();
  EXPECT_TRUE(std::any_of(rm.begin(), rm.end(), [](double v) { return v != 0; })) << "running mean never updated";
  ASSERT_EQ(ca->tensors.size(), cb->tensors.size());
  for (auto& [name, t] : ca->tensors) {
    ASSERT_TRUE(cb->tensors.count(name)) << name;
    const tensor& u = cb->tensors.at(name);
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.nbytes()), 0) << name << " differs after resume";
  }
}

TEST(Train, BatchNormLayersInASequentialConvNet) {
  temp_dir dir;
  const std::string tr = bars_csv(dir, "bars-train.csv", 192, 0), te = bars_csv(dir, "bars-test.csv", 64, 1000);
  auto c = parse_train_config(
      conv_yaml(tr, te), "conv.yaml",
      {"model.layers=[{op: conv2d, units: 4, kernel: 3, padding: 1, bias: false}, {op: batch_norm}, {op: relu}, "
       "{op: max_pool2d, kernel: 2}, {op: flatten}, {op: batch_norm, momentum: 0.2, eps: 0.001}, "
       "{op: linear, units: 2}]"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.layers[5].momentum, 0.2);
  EXPECT_EQ(c->model.layers[5].eps, 0.001);
  graph g;
  build_model(g, c->model, 1);
  EXPECT_EQ(g.find("bn1/gamma").shape(), (shape{4}));        // over conv maps
  EXPECT_EQ(g.find("bn2/running_mean").shape(), (shape{64})); // over flat rows
  auto r = train(*c);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_LT(r->epochs.back().train_loss, 0.5 * r->epochs.front().train_loss);
  EXPECT_GE(r->test_accuracy, 0.95);
}

TEST(TrainConfig, ResNetBatchNormAndCifarErrorsNameTheKey) {
  temp_dir dir;
  const std::string tr = cifar_bars(dir, "one.bin", 2, 0), yaml = resnet_yaml(tr, tr);
  const std::string conv = conv_yaml(tr, tr);
  const std::vector<std::tuple<std::string, std::string, std::string>> bad{
      {yaml, "model.input=[3072]", "model.input: is [3072] but resnet needs an image shape [C, H, W]"},
      {yaml, "model.channels=[8, 0]", "model.channels: widths must be positive"},
      {yaml, "model.channels=[]", "model.channels: must list at least one stage's width"},
      {yaml, "model.blocks=0", "model.blocks: must be >= 1"},
      {yaml, "model.classes=1", "model.classes: must be >= 2"},
      {yaml, "model.loss=mse", "model.loss: resnet trains with softmax_cross_entropy"},
      {yaml, "model.layers=[{op: relu}]", "model.layers: does not apply to resnet"},
      {yaml, "data.mean=[0.5, 0.5]", "data.mean: has 2 values but data.std has 3"},
      {yaml, "data.std=[]", "data.mean: has 3 values but data.std has 0"},
      {yaml, "data={format: cifar10, train: x, mean: [0, 0], std: [1, 1]}", "data.mean: needs 3 values (R, G, B), got 2"},
      {yaml, "data.std=[0.5, 0, 0.5]", "data.std: values must be > 0"},
      {yaml, "data.train_labels=x", "data.train_labels: does not apply to cifar10"},
      {conv, "model.channels=[4]", "model.channels: applies to model.kind resnet only"},
      {conv, "data.mean=[0, 0, 0]", "data.mean: applies to format cifar10 only"},
      {conv, "model.layers=[{op: batch_norm, eps: 0}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].eps: must be > 0"},
      {conv, "model.layers=[{op: batch_norm, momentum: 2}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].momentum: must be in [0, 1]"},
      {conv, "model.layers=[{op: batch_norm, units: 3}, {op: flatten}, {op: linear, units: 2}]",
       "model.layers[0].units: does not apply to batch_norm (its keys: eps, momentum)"},
  };
  for (const auto& [base, set, want] : bad) {
    auto e = parse_train_config(base, "x.yaml", {set});
    ASSERT_FALSE(e.ok()) << set;
    EXPECT_NE(e.err().message.find(want), std::string::npos) << set << ":\n  " << e.err().message;
  }
  // A corrupt data file is named with its record when training starts.
  std::string bytes(3073, '\0');
  bytes[0] = 12;
  const std::string corrupt = dir.file("corrupt.bin", bytes);
  auto c = parse_train_config(resnet_yaml(corrupt, corrupt), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find(corrupt + ": record 0 (at offset 0) has label 12"), std::string::npos)
      << r.err().message;
}

namespace {

/// The bar images as 8 tokens (rows) of 8 pixels for a small transformer.
std::string transformer_yaml(const std::string& train_csv, const std::string& test_csv) {
  return R"(
model: {kind: transformer, input: [8, 8], d_model: 16, heads: 2, layers: 1, ffn: 32, dropout: 0, classes: 2}
data: {format: csv, train: )" + train_csv + ", test: " + test_csv + R"(}
optimizer: {kind: adam, lr: 0.01}
run: {epochs: 6, batch_size: 16, threads: 1}
)";
}

} // namespace

TEST(TrainConfig, ParsesTheTransformerExample) {
  auto c = load_train_config(std::string(LUOSHU_SOURCE_DIR) + "/apps/examples/transformer_fashion_mnist.yaml");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->model.kind, "transformer");
  EXPECT_EQ(c->model.input, (std::vector<int64_t>{28, 28}));
  EXPECT_EQ(c->model.d_model, 64);
  EXPECT_EQ(c->model.heads, 4);
  EXPECT_EQ(c->model.encoder_layers, 2);
  EXPECT_EQ(c->model.ffn, 128);
  EXPECT_EQ(c->model.dropout, 0.1);
  EXPECT_EQ(c->model.norm, "pre");
  EXPECT_EQ(c->model.classes, 10);

  // [N, 784] rows in, [N, 10] logits out; the encoder's variables by name.
  graph g;
  model m = build_model(g, c->model, 1);
  EXPECT_EQ(m.x.shape(), (shape{-1, 784}));
  EXPECT_EQ(m.logits.shape(), (shape{-1, 10}));
  for (const char* v : {"embed/w", "pos", "layer1/attn/wq", "layer1/attn/wo", "layer1/ln1/gamma", "layer2/ffn/w1",
                        "layer2/ln2/beta", "final_ln/gamma", "head/w"})
    EXPECT_TRUE(g.find(v).valid()) << v;
  EXPECT_EQ(g.find("pos").shape(), (shape{28, 64}));
  EXPECT_EQ(g.find("layer1/ffn/w1").shape(), (shape{64, 128}));
}

TEST(Train, TransformerLearnsBarOrientation) {
  temp_dir dir;
  const std::string tr = bars_csv(dir, "bars-train.csv", 192, 0), te = bars_csv(dir, "bars-test.csv", 64, 1000);
  for (const char* norm : {"pre", "post"}) {
    auto c = parse_train_config(transformer_yaml(tr, te), "transformer.yaml", {std::string("model.norm=") + norm});
    ASSERT_TRUE(c.ok()) << c.err().message;
    auto r = train(*c);
    ASSERT_TRUE(r.ok()) << r.err().message;
    ASSERT_EQ(r->epochs.size(), 6u);
    EXPECT_LT(r->epochs.back().train_loss, 0.5 * r->epochs.front().train_loss) << norm;
    EXPECT_GE(r->test_accuracy, 0.95) << norm;
  }
}

TEST(TrainConfig, TransformerErrorsNameTheKey) {
  temp_dir dir;
  const std::string tr = bars_csv(dir, "bars.csv", 16, 0), yaml = transformer_yaml(tr, tr);
  const std::vector<std::pair<std::string, std::string>> bad{
      {"model.heads=3", "model.heads: 3 heads do not divide d_model 16"},
      {"model.input=[64]", "model.input: is [64] but a transformer takes tokens [T, F]"},
      {"model.norm=middle", "model.norm: must be pre or post, got 'middle'"},
      {"model.classes=0", "model.classes: must be > 0"},
      {"model.dropout=1", "model.dropout: must be in [0, 1)"},
      {"model.layers=0", "model.layers: a transformer needs an encoder layer count > 0"},
      {"model.layers=[{op: relu}]", "model.layers: has the wrong type"},
      {"model.ffn=-4", "model.ffn: must be > 0"},
      {"model.hidden=[8]", "model.hidden: does not apply to transformer"},
      {"model.kind=sequential", "model.classes: applies to model.kind resnet or transformer only"},
      {"model.kind=resnet", "model.d_model: applies to model.kind transformer only"},
      {"model.kind=transformers", "model.kind: unknown kind 'transformers' (known: sequential, resnet, wide_deep, deepfm, dcn, transformer)"},
  };
  for (const auto& [set, want] : bad) {
    auto e = parse_train_config(yaml, "transformer.yaml", {set});
    ASSERT_FALSE(e.ok()) << set;
    EXPECT_NE(e.err().message.find(want), std::string::npos) << set << ":\n  " << e.err().message;
  }
  // The data must hold T x F features per row.
  auto c = parse_train_config(yaml, "transformer.yaml", {"model.input=[8, 7]"});
  ASSERT_TRUE(c.ok()) << c.err().message;
  auto r = train(*c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("56"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("64"), std::string::npos) << r.err().message;
}
