#include "graph/checkpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace luoshu;

namespace {

using bytes_t = std::vector<unsigned char>;

bytes_t read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes_t(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& p, const bytes_t& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(out.good()) << p;
}

// A tensor of `t` and shape `s` whose bytes are 0, 1, 2, ... (mod 251), so
// every byte position is distinguishable.
tensor patterned(dtype t, shape s, unsigned seed) {
  tensor r(t, std::move(s));
  auto* p = static_cast<unsigned char*>(r.raw());
  for (size_t i = 0; i < r.nbytes(); ++i) p[i] = static_cast<unsigned char>((i + seed) % 251);
  return r;
}

checkpoint sample_checkpoint() {
  checkpoint ck;
  ck.metadata["step"] = "1200";
  ck.metadata["model"] = "mlp";
  ck.metadata["empty"] = "";
  ck.metadata[std::string("nul\0key", 7)] = std::string("a\0b", 3);

  ck.tensors["dense/w"] = patterned(dtype::f32, {3, 4}, 1);
  ck.tensors["dense/b"] = tensor::from<float>({4}, {1.5f, -0.0f, 1e-38f, 3.4e38f});
  ck.tensors["f64"] = patterned(dtype::f64, {2, 1, 3}, 2);
  ck.tensors["i32"] = tensor::from<int32_t>({2, 2}, {-1, 0, 2147483647, -2147483647 - 1});
  ck.tensors["i64"] = patterned(dtype::i64, {5}, 3);
  ck.tensors["u8"] = patterned(dtype::u8, {7}, 4);
  ck.tensors["f16"] = patterned(dtype::f16, {2, 3}, 5);
  ck.tensors["bf16"] = patterned(dtype::bf16, {4, 1}, 6);
  ck.tensors["scalar"] = tensor::scalar<double>(3.25);
  ck.tensors["empty"] = tensor(dtype::f32, {0, 5});
  ck.tensors["adam/step"] = tensor::scalar<int64_t>(1200);
  return ck;
}

void expect_same(const checkpoint& want, const checkpoint& got) {
  EXPECT_EQ(want.metadata, got.metadata);
  ASSERT_EQ(want.tensors.size(), got.tensors.size());
  for (const auto& [name, t] : want.tensors) {
    auto it = got.tensors.find(name);
    ASSERT_NE(it, got.tensors.end()) << name;
    const tensor& u = it->second;
    EXPECT_EQ(t.type(), u.type()) << name;
    EXPECT_EQ(t.shape(), u.shape()) << name;
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    EXPECT_EQ(u.device(), device::cpu()) << name;
    if (t.nbytes() > 0) {
      EXPECT_EQ(0, std::memcmp(t.raw(), u.raw(), t.nbytes())) << name;
    }
  }
}

// Builds checkpoint files field by field, for files save_checkpoint would
// never write.
struct file_builder {
  bytes_t b;

  file_builder& raw(const void* p, size_t n) {
    auto* c = static_cast<const unsigned char*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  template <class T>
  file_builder& le(T v) {
    for (size_t i = 0; i < sizeof(T); ++i)
      b.push_back(static_cast<unsigned char>(static_cast<uint64_t>(v) >> (8 * i)));
    return *this;
  }
  file_builder& str(const std::string& s) {
    le(static_cast<uint32_t>(s.size()));
    return raw(s.data(), s.size());
  }
  file_builder& header(uint32_t version = 1) { return raw("LUOSHUCK", 8).le(version); }

  // Appends a correct trailer, so only the body is wrong.
  bytes_t sealed() const {
    file_builder f = *this;
    f.le(static_cast<uint64_t>(b.size() + 12));
    f.le(static_cast<uint32_t>(::crc32(0, f.b.data(), static_cast<uInt>(f.b.size()))));
    return f.b;
  }
};

// Replaces the trailer of a checkpoint file with a correct one.
bytes_t reseal(bytes_t b) {
  if (b.size() >= 12) b.erase(b.end() - 12, b.end());
  file_builder f{std::move(b)};
  return f.sealed();
}

class Checkpoint : public ::testing::Test {
protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("luoshu_checkpoint_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    ASSERT_TRUE(fs::create_directory(dir_)) << dir_;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }

  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }

  // Loads `b` written to a fresh file; expects failure whose message starts
  // with the file's path and contains `needle`.
  void expect_rejected(const bytes_t& b, const std::string& needle, const std::string& context) {
    std::string p = path("bad.ck");
    write_bytes(p, b);
    auto r = load_checkpoint(p);
    ASSERT_FALSE(r.ok()) << context;
    EXPECT_EQ(r.err().message.rfind(p + ": ", 0), 0u) << context << ": " << r.err().message;
    EXPECT_NE(r.err().message.find(needle), std::string::npos)
        << context << ": expected '" << needle << "' in: " << r.err().message;
  }

  fs::path dir_;
};

TEST_F(Checkpoint, RoundTripIsExact) {
  checkpoint ck = sample_checkpoint();
  std::string p = path("model.ck");
  auto st = save_checkpoint(p, ck);
  ASSERT_TRUE(st.ok()) << st.err().message;

  auto loaded = load_checkpoint(p);
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  expect_same(ck, *loaded);
  EXPECT_EQ(loaded->tensors.at("scalar").rank(), 0);
  EXPECT_EQ(loaded->tensors.at("scalar").item(), 3.25);
  const shape empty_shape{0, 5};
  EXPECT_EQ(loaded->tensors.at("empty").shape(), empty_shape);
  EXPECT_EQ(loaded->tensors.at("empty").nbytes(), 0u);
  EXPECT_EQ(loaded->metadata.at("step"), "1200");
}

TEST_F(Checkpoint, SavesTheViewNotTheWholeStorage) {
  tensor base = tensor::from<float>({6}, {0, 1, 2, 3, 4, 5});
  checkpoint ck;
  ck.tensors["view"] = tensor(base.storage(), 2 * sizeof(float), dtype::f32, {2});
  std::string p = path("view.ck");
  ASSERT_TRUE(save_checkpoint(p, ck).ok());
  auto loaded = load_checkpoint(p);
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  EXPECT_EQ(loaded->tensors.at("view").to_doubles(), (std::vector<double>{2, 3}));
}

TEST_F(Checkpoint, EmptyCheckpointRoundTrips) {
  std::string p = path("empty.ck");
  ASSERT_TRUE(save_checkpoint(p, checkpoint{}).ok());
  EXPECT_EQ(fs::file_size(p), 32u);  // header 12, two counts 8, trailer 12
  auto loaded = load_checkpoint(p);
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  EXPECT_TRUE(loaded->tensors.empty());
  EXPECT_TRUE(loaded->metadata.empty());
}

TEST_F(Checkpoint, SavingTwiceGivesIdenticalFiles) {
  checkpoint ck = sample_checkpoint();
  ASSERT_TRUE(save_checkpoint(path("a.ck"), ck).ok());
  auto loaded = load_checkpoint(path("a.ck"));
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(save_checkpoint(path("b.ck"), *loaded).ok());
  EXPECT_EQ(read_bytes(path("a.ck")), read_bytes(path("b.ck")));
}

TEST_F(Checkpoint, FileStartsWithMagicAndVersion) {
  ASSERT_TRUE(save_checkpoint(path("m.ck"), sample_checkpoint()).ok());
  bytes_t b = read_bytes(path("m.ck"));
  ASSERT_GE(b.size(), 24u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "LUOSHUCK");
  EXPECT_EQ(b[8], 1);
  EXPECT_EQ(b[9] | b[10] | b[11], 0);
  uint64_t recorded = 0;
  for (int i = 0; i < 8; ++i) recorded |= uint64_t{b[b.size() - 12 + i]} << (8 * i);
  EXPECT_EQ(recorded, b.size());
}

TEST_F(Checkpoint, OverwritesExistingCheckpoint) {
  std::string p = path("model.ck");
  ASSERT_TRUE(save_checkpoint(p, sample_checkpoint()).ok());

  checkpoint second;
  second.metadata["step"] = "1300";
  second.tensors["w"] = tensor::from<float>({2}, {7, 8});
  auto st = save_checkpoint(p, second);
  ASSERT_TRUE(st.ok()) << st.err().message;

  auto loaded = load_checkpoint(p);
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  expect_same(second, *loaded);
  EXPECT_EQ(files(), std::vector<std::string>{"model.ck"});
}

TEST_F(Checkpoint, NoTempFilesLeftAfterSave) {
  ASSERT_TRUE(save_checkpoint(path("a.ck"), sample_checkpoint()).ok());
  ASSERT_TRUE(save_checkpoint(path("a.ck"), sample_checkpoint()).ok());
  ASSERT_TRUE(save_checkpoint(path("b.ck"), checkpoint{}).ok());
  for (const auto& f : files()) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
  EXPECT_EQ(files().size(), 2u);
}

TEST_F(Checkpoint, RejectsTruncatedFile) {
  checkpoint ck;
  ck.metadata["step"] = "7";
  ck.tensors["w"] = patterned(dtype::f32, {4, 4}, 9);
  ck.tensors["s"] = tensor::scalar<int32_t>(5);
  std::string good = path("good.ck");
  ASSERT_TRUE(save_checkpoint(good, ck).ok());
  bytes_t b = read_bytes(good);

  // Every possible cut: inside the magic, the version, the metadata, a
  // tensor's header, its data and the trailer.
  for (size_t cut = 0; cut < b.size(); ++cut)
    expect_rejected(bytes_t(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut)),
                    "truncated at offset", "cut at " + std::to_string(cut));

  // A cut inside the 64 bytes of "w" names the tensor and where it stopped.
  bytes_t cut_data(b.begin(), b.end() - 12 - 40);
  expect_rejected(cut_data, "tensor 'w' data", "cut inside tensor data");
  expect_rejected(bytes_t(b.begin(), b.begin() + 10), "truncated at offset 10", "cut in version");
}

TEST_F(Checkpoint, RejectsTruncatedLargeTensor) {
  checkpoint ck;
  ck.tensors["big"] = patterned(dtype::f64, {256, 512}, 3);  // 1 MiB
  std::string good = path("big.ck");
  ASSERT_TRUE(save_checkpoint(good, ck).ok());
  bytes_t b = read_bytes(good);
  for (size_t cut : {size_t{40}, b.size() / 2, b.size() - 13, b.size() - 1})
    expect_rejected(bytes_t(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut)),
                    "truncated at offset", "cut at " + std::to_string(cut));
}

TEST_F(Checkpoint, RejectsFlippedByte) {
  checkpoint ck;
  ck.metadata["step"] = "3";
  ck.tensors["b"] = tensor::from<float>({3}, {1, 2, 3});
  ck.tensors["n"] = tensor::scalar<int64_t>(42);
  std::string good = path("good.ck");
  ASSERT_TRUE(save_checkpoint(good, ck).ok());
  bytes_t b = read_bytes(good);

  for (size_t i = 0; i < b.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      bytes_t bad = b;
      bad[i] ^= mask;
      std::string context = "byte " + std::to_string(i) + " ^ " + std::to_string(mask);
      bool in_body = i >= 12 && i < b.size() - 12;
      bool in_crc = i >= b.size() - 4;
      if (in_body || in_crc)
        expect_rejected(bad, "checksum mismatch: the file is corrupt", context);
      else
        expect_rejected(bad, "", context);  // magic, version or length field
    }
  }
}

TEST_F(Checkpoint, RejectsWrongMagic) {
  expect_rejected(file_builder{}.raw("NOTACKPT", 8).le(uint32_t{1}).le(uint32_t{0}).le(uint32_t{0}).sealed(),
                  "not a Luoshu checkpoint", "wrong magic");
  std::string text = "step,loss\n1,0.5\n2,0.25\n";
  expect_rejected(bytes_t(text.begin(), text.end()), "not a Luoshu checkpoint", "a text file");
  expect_rejected(bytes_t{'L', 'U', 'X'}, "not a Luoshu checkpoint", "short, wrong magic");
}

TEST_F(Checkpoint, RejectsNewerVersion) {
  ASSERT_TRUE(save_checkpoint(path("v.ck"), sample_checkpoint()).ok());
  bytes_t b = read_bytes(path("v.ck"));
  b[8] = 2;
  expect_rejected(reseal(b), "written by a newer version 2", "version 2");
  b[8] = 0x10;
  b[11] = 0x01;
  expect_rejected(reseal(b), "written by a newer version 16777232", "version 0x01000010");
  b[8] = 0;
  b[11] = 0;
  expect_rejected(reseal(b), "version 0", "version 0");
}

TEST_F(Checkpoint, RejectsMalformedEntries) {
  auto one_tensor = [](uint8_t code, std::vector<int64_t> dims, uint64_t nbytes,
                       size_t data_bytes) {
    file_builder f;
    f.header().le(uint32_t{0}).le(uint32_t{1}).str("t").le(code);
    f.le(static_cast<uint32_t>(dims.size()));
    for (int64_t d : dims) f.le(d);
    f.le(nbytes);
    f.b.resize(f.b.size() + data_bytes, 0);
    return f.b;
  };
  auto sealed = [](bytes_t b) { return file_builder{std::move(b)}.sealed(); };

  // Sanity check of the builder: a well-formed file loads.
  {
    file_builder f;
    f.header().le(uint32_t{0}).le(uint32_t{1}).str("t").le(uint8_t{0}).le(uint32_t{1});
    const float values[2] = {1.0f, -2.5f};
    f.le(int64_t{2}).le(uint64_t{8}).raw(values, sizeof(values));
    bytes_t b = f.sealed();
    write_bytes(path("ok.ck"), b);
    auto r = load_checkpoint(path("ok.ck"));
    ASSERT_TRUE(r.ok()) << r.err().message;
    const shape want{2};
    EXPECT_EQ(r->tensors.at("t").shape(), want);
    EXPECT_EQ(r->tensors.at("t").to_doubles(), (std::vector<double>{1.0, -2.5}));
  }

  expect_rejected(sealed(one_tensor(7, {2}, 16, 16)), "unknown dtype code 7", "dtype 7");
  expect_rejected(sealed(one_tensor(255, {2}, 16, 16)), "unknown dtype code 255", "dtype 255");
  expect_rejected(sealed(one_tensor(0, std::vector<int64_t>(17, 1), 4, 4)), "rank 17 exceeds 16",
                  "rank 17");
  expect_rejected(sealed(one_tensor(0, {2, -3}, 24, 24)), "dimension 1 is negative", "negative dim");
  expect_rejected(sealed(one_tensor(0, {2, 3}, 20, 20)), "needs 24 bytes, the file records 20",
                  "byte length mismatch");
  expect_rejected(sealed(one_tensor(0, {int64_t{1} << 62, int64_t{1} << 62, 0}, 0, 0)),
                  "too large", "dims overflow before a zero");
  expect_rejected(sealed(one_tensor(1, {int64_t{1} << 61}, uint64_t{1} << 63, 0)), "too large",
                  "byte length overflow");
  // Claims 4 TiB of data: must be refused as truncated, never allocated.
  expect_rejected(sealed(one_tensor(1, {int64_t{1} << 39}, uint64_t{1} << 42, 64)),
                  "truncated at offset", "absurd byte length");
  // Absurd counts and string lengths run out of file, not memory.
  expect_rejected(file_builder{}.header().le(uint32_t{0xffffffff}).sealed(), "truncated at offset",
                  "absurd metadata count");
  expect_rejected(file_builder{}.header().le(uint32_t{0}).le(uint32_t{0xffffffff}).sealed(),
                  "truncated at offset", "absurd tensor count");
  expect_rejected(file_builder{}.header().le(uint32_t{1}).le(uint32_t{0xfffffff0}).sealed(),
                  "truncated at offset", "absurd key length");
  expect_rejected(
      file_builder{}.header().le(uint32_t{2}).str("k").str("a").str("k").str("b").le(uint32_t{0}).sealed(),
      "duplicate metadata key 'k'", "duplicate key");
  {
    file_builder f;
    f.header().le(uint32_t{0}).le(uint32_t{2});
    for (int i = 0; i < 2; ++i) f.str("t").le(uint8_t{4}).le(uint32_t{0}).le(uint64_t{1}).le(uint8_t{9});
    expect_rejected(f.sealed(), "duplicate tensor name 't'", "duplicate tensor");
  }
  expect_rejected(file_builder{}.header().le(uint32_t{0}).le(uint32_t{0}).le(uint32_t{0}).sealed(),
                  "unexpected bytes after the last tensor", "trailing bytes");
}

TEST_F(Checkpoint, SaveIntoMissingDirectoryFails) {
  std::string p = (dir_ / "no" / "such" / "dir" / "model.ck").string();
  auto st = save_checkpoint(p, sample_checkpoint());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().message.rfind(p + ": ", 0), 0u) << st.err().message;
  EXPECT_NE(st.err().message.find(std::strerror(ENOENT)), std::string::npos) << st.err().message;
  EXPECT_FALSE(fs::exists(dir_ / "no"));
  EXPECT_TRUE(files().empty());
}

TEST_F(Checkpoint, FailedSaveLeavesOldFileAndNoTempFile) {
  std::string p = path("model.ck");
  checkpoint first = sample_checkpoint();
  ASSERT_TRUE(save_checkpoint(p, first).ok());

  checkpoint bad;
  bad.tensors["a"] = tensor::from<float>({1}, {1});
  bad.tensors["b"] = tensor();  // undefined
  auto st = save_checkpoint(p, bad);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("tensor 'b' is undefined"), std::string::npos)
      << st.err().message;
  EXPECT_EQ(files(), std::vector<std::string>{"model.ck"});
  auto loaded = load_checkpoint(p);
  ASSERT_TRUE(loaded.ok()) << loaded.err().message;
  expect_same(first, *loaded);

  // The target is a directory: the rename fails after the data is written.
  fs::create_directory(dir_ / "sub");
  fs::create_directory(dir_ / "sub" / "model.ck");
  fs::create_directory(dir_ / "sub" / "model.ck" / "keep");
  std::string dir_path = (dir_ / "sub" / "model.ck").string();
  st = save_checkpoint(dir_path, first);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().message.rfind(dir_path + ": ", 0), 0u) << st.err().message;
  EXPECT_EQ(fs::directory_iterator(dir_ / "sub")->path().filename(), "model.ck");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "sub"), fs::directory_iterator()), 1);
}

TEST_F(Checkpoint, RejectsNonCpuTensors) {
  auto host = std::make_shared<std::vector<float>>(4, 1.0f);
  auto st = std::make_shared<storage>(host->data(), host->size() * sizeof(float), device::cuda(0),
                                      [host](void*) {});
  checkpoint ck;
  ck.tensors["gpu"] = tensor(st, 0, dtype::f32, {4});
  auto r = save_checkpoint(path("gpu.ck"), ck);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("tensor 'gpu' is on cuda:0"), std::string::npos)
      << r.err().message;
  EXPECT_TRUE(files().empty());
}

TEST_F(Checkpoint, LoadMissingFileFails) {
  std::string p = path("absent.ck");
  auto r = load_checkpoint(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message.rfind(p + ": ", 0), 0u) << r.err().message;
  EXPECT_NE(r.err().message.find(std::strerror(ENOENT)), std::string::npos) << r.err().message;

  auto d = load_checkpoint(dir_.string());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.err().message.rfind(dir_.string() + ": ", 0), 0u) << d.err().message;
}

} // namespace
