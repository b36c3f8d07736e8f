#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "graph/data/cifar.hpp"
#include "graph/data/criteo.hpp"
#include "graph/data/csv.hpp"
#include "graph/data/dataset.hpp"
#include "graph/data/idx.hpp"
#include "graph/data/libsvm.hpp"
#include "graph/data/loader.hpp"
#include "graph/data/text.hpp"
#include "graph/error.hpp"

namespace fs = std::filesystem;
using namespace luoshu;
using namespace luoshu::data;

namespace {

/// A fresh directory under the system temp directory, removed with its
/// contents when the test ends.
class scratch_dir {
public:
  scratch_dir() {
    static std::atomic<int> counter{0};
    auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() /
            ("luoshu_data_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + "_" + std::to_string(stamp));
    fs::create_directories(path_);
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
  fs::path path_;
};

using bytes = std::vector<uint8_t>;

void write_bytes(const std::string& path, const bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(f.good()) << path;
}

void write_gzip(const std::string& path, const bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!b.empty()) {
    EXPECT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

void put_be32(bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

void put_be64(bytes& b, uint64_t v) {
  put_be32(b, static_cast<uint32_t>(v >> 32));
  put_be32(b, static_cast<uint32_t>(v));
}

bytes idx_header(uint8_t code, const std::vector<uint32_t>& dims) {
  bytes b = {0, 0, code, static_cast<uint8_t>(dims.size())};
  for (auto d : dims) put_be32(b, d);
  return b;
}

bytes idx_u8(const std::vector<uint32_t>& dims, const bytes& values) {
  bytes b = idx_header(0x08, dims);
  b.insert(b.end(), values.begin(), values.end());
  return b;
}

bytes idx_f32(const std::vector<uint32_t>& dims, const std::vector<float>& values) {
  bytes b = idx_header(0x0D, dims);
  for (float v : values) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    put_be32(b, u);
  }
  return b;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

template <class T>
std::vector<T> values_of(const tensor& t) {
  auto s = t.span<T>();
  return {s.begin(), s.end()};
}

} // namespace

// --- IDX ----------------------------------------------------------------------

TEST(IdxReader, ReadsGzipAndRaw) {
  scratch_dir dir;
  bytes pixels;
  for (int i = 0; i < 12; ++i) pixels.push_back(static_cast<uint8_t>(i * 20 + 3));
  const std::vector<float> floats = {1.5f, -2.25f, 3e10f, 0.0f};
  write_bytes(dir.file("u8.idx"), idx_u8({2, 2, 3}, pixels));
  write_gzip(dir.file("u8.idx.gz"), idx_u8({2, 2, 3}, pixels));
  write_bytes(dir.file("f32.idx"), idx_f32({2, 2}, floats));
  write_gzip(dir.file("f32.idx.gz"), idx_f32({2, 2}, floats));

  for (const char* name : {"u8.idx", "u8.idx.gz"}) {
    auto t = read_idx(dir.file(name));
    ASSERT_TRUE(t.ok()) << t.err().message;
    EXPECT_EQ(t->type(), dtype::u8) << name;
    EXPECT_EQ(t->shape(), (shape{2, 2, 3})) << name;
    EXPECT_EQ(values_of<uint8_t>(*t), pixels) << name;
  }
  for (const char* name : {"f32.idx", "f32.idx.gz"}) {
    auto t = read_idx(dir.file(name));
    ASSERT_TRUE(t.ok()) << t.err().message;
    EXPECT_EQ(t->type(), dtype::f32) << name;
    EXPECT_EQ(t->shape(), (shape{2, 2})) << name;
    EXPECT_EQ(values_of<float>(*t), floats) << name;
  }
}

TEST(IdxReader, WidensSignedTypesAndReadsDoubles) {
  scratch_dir dir;
  bytes i8 = idx_header(0x09, {3});
  i8.insert(i8.end(), {0xFF, 0x7F, 0x80});
  bytes i16 = idx_header(0x0B, {2});
  i16.insert(i16.end(), {0xFF, 0xFE, 0x01, 0x2C});
  bytes i32 = idx_header(0x0C, {2});
  put_be32(i32, static_cast<uint32_t>(-70000));
  put_be32(i32, 123456789);
  bytes f64 = idx_header(0x0E, {1, 1});
  double tenth = 0.1;
  uint64_t bits;
  std::memcpy(&bits, &tenth, 8);
  put_be64(f64, bits);
  write_bytes(dir.file("i8.idx"), i8);
  write_bytes(dir.file("i16.idx"), i16);
  write_gzip(dir.file("i32.idx.gz"), i32);
  write_bytes(dir.file("f64.idx"), f64);

  auto a = read_idx(dir.file("i8.idx"));
  ASSERT_TRUE(a.ok()) << a.err().message;
  EXPECT_EQ(a->type(), dtype::i32);
  EXPECT_EQ(values_of<int32_t>(*a), (std::vector<int32_t>{-1, 127, -128}));
  auto b = read_idx(dir.file("i16.idx"));
  ASSERT_TRUE(b.ok()) << b.err().message;
  EXPECT_EQ(values_of<int32_t>(*b), (std::vector<int32_t>{-2, 300}));
  auto c = read_idx(dir.file("i32.idx.gz"));
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(values_of<int32_t>(*c), (std::vector<int32_t>{-70000, 123456789}));
  auto d = read_idx(dir.file("f64.idx"));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->type(), dtype::f64);
  EXPECT_EQ(d->shape(), (shape{1, 1}));
  EXPECT_EQ(d->data<double>()[0], 0.1);
}

TEST(IdxReader, TruncatedFilesNameTheFileAndOffset) {
  scratch_dir dir;
  bytes full = idx_u8({3, 4}, bytes(12, 7));
  bytes cut(full.begin(), full.end() - 5); // 12-byte header + 7 of 12 data bytes
  write_bytes(dir.file("cut.idx"), cut);
  write_gzip(dir.file("cut.idx.gz"), cut);
  // A gzip stream that itself stops half way (no trailer, partial deflate).
  bytes big = idx_u8({64, 1024}, bytes(65536, 0));
  for (size_t i = 12; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  write_gzip(dir.file("whole.idx.gz"), big);
  {
    std::ifstream f(dir.file("whole.idx.gz"), std::ios::binary);
    bytes gz((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    gz.resize(gz.size() / 2);
    write_bytes(dir.file("halfstream.idx.gz"), gz);
  }
  write_bytes(dir.file("header.idx"), bytes{0, 0, 0x08, 2, 0, 0});

  auto raw = read_idx(dir.file("cut.idx"));
  ASSERT_FALSE(raw.ok());
  EXPECT_TRUE(contains(raw.err().message, dir.file("cut.idx"))) << raw.err().message;
  EXPECT_TRUE(contains(raw.err().message, "expected 12 bytes of data, file ends at offset 19"))
      << raw.err().message;

  auto gz = read_idx(dir.file("cut.idx.gz"));
  ASSERT_FALSE(gz.ok());
  EXPECT_TRUE(contains(gz.err().message, dir.file("cut.idx.gz"))) << gz.err().message;
  EXPECT_TRUE(contains(gz.err().message, "expected 12 bytes of data, file ends at offset 19"))
      << gz.err().message;

  auto half = read_idx(dir.file("halfstream.idx.gz"));
  ASSERT_FALSE(half.ok());
  EXPECT_TRUE(contains(half.err().message, dir.file("halfstream.idx.gz"))) << half.err().message;
  EXPECT_TRUE(contains(half.err().message, "offset")) << half.err().message;
  ASSERT_TRUE(read_idx(dir.file("whole.idx.gz")).ok());

  auto head = read_idx(dir.file("header.idx"));
  ASSERT_FALSE(head.ok());
  EXPECT_TRUE(contains(head.err().message, dir.file("header.idx"))) << head.err().message;
  EXPECT_TRUE(contains(head.err().message, "file ends at offset 6")) << head.err().message;
}

TEST(IdxReader, RejectsBadMagicAndTypeCode) {
  scratch_dir dir;
  write_bytes(dir.file("magic.idx"), bytes{1, 0, 0x08, 1, 0, 0, 0, 1, 5});
  write_bytes(dir.file("code.idx"), bytes{0, 0, 0x07, 1, 0, 0, 0, 1, 5});
  write_bytes(dir.file("empty.idx"), bytes{});

  auto m = read_idx(dir.file("magic.idx"));
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(contains(m.err().message, dir.file("magic.idx"))) << m.err().message;
  EXPECT_TRUE(contains(m.err().message, "bad magic at offset 0")) << m.err().message;
  auto c = read_idx(dir.file("code.idx"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.err().message, "type code 0x07 at offset 2")) << c.err().message;
  auto e = read_idx(dir.file("empty.idx"));
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(contains(e.err().message, "file ends at offset 0")) << e.err().message;
}

TEST(IdxReader, RejectsAbsurdDimensionsWithoutAllocating) {
  scratch_dir dir;
  // The product overflows 64 bits.
  write_bytes(dir.file("overflow.idx"), idx_header(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}));
  // 2^40 bytes: over the 2^34 cap.
  write_gzip(dir.file("huge.idx.gz"), idx_header(0x08, {1u << 20, 1u << 20}));
  // 2^32 bytes (under the cap) declared, 3 present.
  bytes liar = idx_header(0x08, {65536, 65536});
  liar.insert(liar.end(), {1, 2, 3});
  write_bytes(dir.file("liar.idx"), liar);
  write_gzip(dir.file("liar.idx.gz"), liar);

  for (const char* name : {"overflow.idx", "huge.idx.gz"}) {
    auto t = read_idx(dir.file(name));
    ASSERT_FALSE(t.ok()) << name;
    EXPECT_TRUE(contains(t.err().message, dir.file(name))) << t.err().message;
    EXPECT_TRUE(contains(t.err().message, "at offset 4")) << t.err().message;
    EXPECT_TRUE(contains(t.err().message, "17179869184")) << t.err().message;
  }
  auto raw = read_idx(dir.file("liar.idx"));
  ASSERT_FALSE(raw.ok());
  EXPECT_TRUE(contains(raw.err().message, "expected 4294967296 bytes of data, file ends at offset 15"))
      << raw.err().message;
  auto gz = read_idx(dir.file("liar.idx.gz"));
  ASSERT_FALSE(gz.ok());
  EXPECT_TRUE(contains(gz.err().message,
                       "expected 4294967296 bytes of data, file ends at offset 15 of the "
                       "decompressed data"))
      << gz.err().message;
}

TEST(IdxReader, CorruptGzipIsAnError) {
  scratch_dir dir;
  bytes payload = idx_u8({100, 100}, bytes(10000, 0));
  for (size_t i = 12; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i % 251);
  write_gzip(dir.file("ok.idx.gz"), payload);
  std::ifstream f(dir.file("ok.idx.gz"), std::ios::binary);
  bytes gz((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (size_t i = gz.size() / 3; i < gz.size() / 3 + 16; ++i) gz[i] ^= 0x5A;
  write_bytes(dir.file("bad.idx.gz"), gz);
  auto t = read_idx(dir.file("bad.idx.gz"));
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(t.err().message, dir.file("bad.idx.gz"))) << t.err().message;
  EXPECT_TRUE(contains(t.err().message, "offset")) << t.err().message;
}

TEST(IdxReader, MissingFileIsAnError) {
  scratch_dir dir;
  auto t = read_idx(dir.file("nope.idx"));
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(t.err().message, dir.file("nope.idx"))) << t.err().message;
  auto d = read_idx_dataset(dir.file("nope-images.idx"), dir.file("nope-labels.idx"));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.err().message, "nope-images.idx")) << d.err().message;
}

TEST(IdxDataset, FlattensAndScalesImages) {
  scratch_dir dir;
  bytes pixels = {0, 51, 102, 255, 1, 2, 3, 4, 254, 253, 252, 251};
  write_gzip(dir.file("images.gz"), idx_u8({3, 2, 2}, pixels));
  write_bytes(dir.file("labels"), idx_u8({3}, {9, 0, 4}));

  auto d = read_idx_dataset(dir.file("images.gz"), dir.file("labels"));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->features.type(), dtype::f32);
  EXPECT_EQ(d->features.shape(), (shape{3, 4}));
  for (size_t i = 0; i < pixels.size(); ++i)
    EXPECT_EQ(d->features.data<float>()[i], static_cast<float>(pixels[i]) / 255.0f) << i;
  EXPECT_EQ(d->features.data<float>()[3], 1.0f);
  EXPECT_EQ(d->labels.type(), dtype::i64);
  EXPECT_EQ(values_of<int64_t>(d->labels), (std::vector<int64_t>{9, 0, 4}));

  auto unscaled = read_idx_dataset(dir.file("images.gz"), dir.file("labels"), false);
  ASSERT_TRUE(unscaled.ok()) << unscaled.err().message;
  for (size_t i = 0; i < pixels.size(); ++i)
    EXPECT_EQ(unscaled->features.data<float>()[i], static_cast<float>(pixels[i])) << i;
}

TEST(IdxDataset, CountMismatchNamesBothFiles) {
  scratch_dir dir;
  write_bytes(dir.file("imgs.idx"), idx_u8({3, 2}, bytes(6, 1)));
  write_bytes(dir.file("labs.idx"), idx_u8({2}, {1, 2}));
  auto d = read_idx_dataset(dir.file("imgs.idx"), dir.file("labs.idx"));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.err().message, dir.file("imgs.idx"))) << d.err().message;
  EXPECT_TRUE(contains(d.err().message, dir.file("labs.idx"))) << d.err().message;
  EXPECT_TRUE(contains(d.err().message, "3 images")) << d.err().message;
  EXPECT_TRUE(contains(d.err().message, "2 labels")) << d.err().message;
}

TEST(IdxDataset, ReadsFashionMnistTestSetWhenInstalled) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  const std::string images = dir + "t10k-images-idx3-ubyte.gz";
  const std::string labels = dir + "t10k-labels-idx1-ubyte.gz";
  if (!fs::exists(images) || !fs::exists(labels))
    GTEST_SKIP() << "Fashion-MNIST not installed at " << dir;
  auto d = read_idx_dataset(images, labels);
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->features.shape(), (shape{10000, 784}));
  EXPECT_EQ(d->labels.shape(), (shape{10000}));
  std::vector<int64_t> per_class(10, 0);
  for (int64_t l : d->labels.span<int64_t>()) {
    ASSERT_GE(l, 0);
    ASSERT_LE(l, 9);
    ++per_class[static_cast<size_t>(l)];
  }
  EXPECT_EQ(per_class, std::vector<int64_t>(10, 1000)); // the test set is balanced
  float lo = 1, hi = 0;
  for (float v : d->features.span<float>()) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, 0.0f);
  EXPECT_LE(hi, 1.0f);
  EXPECT_EQ(hi, 1.0f);
}

// --- CSV ----------------------------------------------------------------------

TEST(CsvReader, ReadsHeaderLabelColumnAndCrlf) {
  scratch_dir dir;
  write_text(dir.file("a.csv"), "x,y,class\r\n1,2,0\r\n3.5, -4 ,1\r\n\r\n");
  auto d = read_csv(dir.file("a.csv"), {.header = true});
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->features.shape(), (shape{2, 2}));
  EXPECT_EQ(values_of<float>(d->features), (std::vector<float>{1, 2, 3.5f, -4}));
  EXPECT_EQ(d->labels.type(), dtype::i64);
  EXPECT_EQ(values_of<int64_t>(d->labels), (std::vector<int64_t>{0, 1}));

  write_text(dir.file("b.csv"), "0.5;10;20\n-1.25;+30;1e2");
  auto r = read_csv(dir.file("b.csv"),
                    {.label_column = 0, .delimiter = ';', .label_is_class = false});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(values_of<float>(r->features), (std::vector<float>{10, 20, 30, 100}));
  EXPECT_EQ(r->labels.type(), dtype::f32);
  EXPECT_EQ(values_of<float>(r->labels), (std::vector<float>{0.5f, -1.25f}));

  auto middle = read_csv(dir.file("b.csv"), {.label_column = 1, .delimiter = ';'});
  ASSERT_TRUE(middle.ok()) << middle.err().message;
  EXPECT_EQ(values_of<int64_t>(middle->labels), (std::vector<int64_t>{10, 30}));
  EXPECT_EQ(values_of<float>(middle->features), (std::vector<float>{0.5f, 20, -1.25f, 100}));
}

TEST(CsvReader, BadNumberNamesLineAndColumn) {
  scratch_dir dir;
  write_text(dir.file("bad.csv"), "h1,h2,h3\n1,2,3\n4,abc,6\n");
  auto d = read_csv(dir.file("bad.csv"), {.header = true});
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.err().message, dir.file("bad.csv"))) << d.err().message;
  EXPECT_TRUE(contains(d.err().message, "line 3, column 2: 'abc' is not a number"))
      << d.err().message;
}

TEST(CsvReader, RejectsRaggedEmptyAndFractionalClassLabels) {
  scratch_dir dir;
  write_text(dir.file("ragged.csv"), "1,2,3\n4,5\n");
  write_text(dir.file("empty.csv"), "");
  write_text(dir.file("header-only.csv"), "a,b\r\n");
  write_text(dir.file("frac.csv"), "1,2\n3,1.5\n");

  auto ragged = read_csv(dir.file("ragged.csv"));
  ASSERT_FALSE(ragged.ok());
  EXPECT_TRUE(contains(ragged.err().message, "line 2: expected 3 columns")) << ragged.err().message;
  EXPECT_TRUE(contains(ragged.err().message, "found 2")) << ragged.err().message;
  auto empty = read_csv(dir.file("empty.csv"));
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(contains(empty.err().message, "empty")) << empty.err().message;
  EXPECT_FALSE(read_csv(dir.file("header-only.csv"), {.header = true}).ok());
  auto frac = read_csv(dir.file("frac.csv"));
  ASSERT_FALSE(frac.ok());
  EXPECT_TRUE(contains(frac.err().message, "line 2, column 2: class label '1.5' is not an integer"))
      << frac.err().message;
  EXPECT_TRUE(read_csv(dir.file("frac.csv"), {.label_is_class = false}).ok());
  auto range = read_csv(dir.file("frac.csv"), {.label_column = 5});
  ASSERT_FALSE(range.ok());
  EXPECT_TRUE(contains(range.err().message, "label_column 5")) << range.err().message;
  EXPECT_FALSE(read_csv(dir.file("missing.csv")).ok());
}

// --- libsvm -------------------------------------------------------------------

TEST(LibsvmReader, ParsesCommentsQidAndConvertsToDense) {
  scratch_dir dir;
  write_text(dir.file("a.svm"),
             "# a comment line\n"
             "1 qid:3 1:0.5 3:-2 # trailing comment\r\n"
             "-1 2:4\n"
             "\n"
             "+0.5 qid:1 4:1e-1\n");
  auto s = read_libsvm(dir.file("a.svm"));
  ASSERT_TRUE(s.ok()) << s.err().message;
  EXPECT_EQ(s->size(), 3);
  EXPECT_EQ(s->num_features, 4);
  EXPECT_EQ(s->row_offsets, (std::vector<int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(s->columns, (std::vector<int64_t>{0, 2, 1, 3}));
  EXPECT_EQ(s->values, (std::vector<float>{0.5f, -2, 4, 0.1f}));
  EXPECT_EQ(values_of<float>(s->labels), (std::vector<float>{1, -1, 0.5f}));

  dataset d = s->to_dense();
  EXPECT_EQ(d.features.shape(), (shape{3, 4}));
  EXPECT_EQ(values_of<float>(d.features),
            (std::vector<float>{0.5f, 0, -2, 0, 0, 4, 0, 0, 0, 0, 0, 0.1f}));
  EXPECT_EQ(values_of<float>(d.labels), (std::vector<float>{1, -1, 0.5f}));

  auto wide = read_libsvm(dir.file("a.svm"), 6);
  ASSERT_TRUE(wide.ok()) << wide.err().message;
  EXPECT_EQ(wide->to_dense().features.shape(), (shape{3, 6}));
}

TEST(LibsvmReader, BadIndicesNameTheLine) {
  scratch_dir dir;
  write_text(dir.file("zero.svm"), "1 1:1\n1 0:2\n");
  write_text(dir.file("order.svm"), "1 1:1\n0 3:1 2:1\n");
  write_text(dir.file("token.svm"), "1 1:1\n1 1:1\n1 a:b\n");
  write_text(dir.file("wide.svm"), "1 3:1\n");

  auto zero = read_libsvm(dir.file("zero.svm"));
  ASSERT_FALSE(zero.ok());
  EXPECT_TRUE(contains(zero.err().message, dir.file("zero.svm") + ": line 2: index 0"))
      << zero.err().message;
  auto order = read_libsvm(dir.file("order.svm"));
  ASSERT_FALSE(order.ok());
  EXPECT_TRUE(contains(order.err().message, "line 2: index 2 follows index 3"))
      << order.err().message;
  auto token = read_libsvm(dir.file("token.svm"));
  ASSERT_FALSE(token.ok());
  EXPECT_TRUE(contains(token.err().message, "line 3: bad token 'a:b'")) << token.err().message;
  auto wide = read_libsvm(dir.file("wide.svm"), 2);
  ASSERT_FALSE(wide.ok());
  EXPECT_TRUE(contains(wide.err().message, "line 1: index 3 exceeds num_features 2"))
      << wide.err().message;
  EXPECT_TRUE(read_libsvm(dir.file("wide.svm"), 3).ok());
}

// --- Criteo -------------------------------------------------------------------

namespace {

/// A Criteo line: the label, then columns 1..39 (I1..I13, C1..C26) empty
/// except the ones given.
std::string criteo_line(const std::string& label, const std::vector<std::pair<int, std::string>>& set = {}) {
  std::vector<std::string> cols(criteo_columns);
  cols[0] = label;
  for (const auto& [c, v] : set) cols[static_cast<size_t>(c)] = v;
  std::string line;
  for (size_t c = 0; c < cols.size(); ++c) line += (c ? "\t" : "") + cols[c];
  return line;
}

/// The ids of a Criteo dataset as (field, id) pairs, missing ones left out.
std::set<std::pair<int, int64_t>> present_ids(const dataset& d) {
  std::set<std::pair<int, int64_t>> out;
  const int64_t* ids = d.ids.data<int64_t>();
  for (int64_t i = 0; i < d.size(); ++i)
    for (int f = 0; f < criteo_categorical_fields; ++f)
      if (int64_t id = ids[i * criteo_categorical_fields + f]; id != criteo_missing_id(f)) out.insert({f, id});
  return out;
}

} // namespace

TEST(CriteoReader, ReadsEmptyFieldsHexIdsAndLogTransform) {
  scratch_dir dir;
  const std::string path = dir.file("day.tsv");
  write_text(path, criteo_line("1", {{1, "0"}, {2, "-3"}, {3, "9"}, {14, "68fd1e64"}, {15, "68fd1e64"}, {39, "0a"}}) +
                       "\r\n" + criteo_line("0", {{13, "1000"}, {14, "68FD1E64"}}) + "\n\n");
  auto d = read_criteo(path, {.buckets = 1000});
  ASSERT_TRUE(d.ok()) << d.err().message;
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(values_of<float>(d->labels), (std::vector<float>{1, 0}));
  ASSERT_EQ(d->features.shape(), (shape{2, 13}));
  std::vector<float> dense(26, 0.0f);
  dense[2] = std::log(10.0f);    // I3 = 9
  dense[13 + 12] = std::log(1001.0f); // row 2, I13 = 1000; I2 = -3 and empty fields are 0
  auto got = values_of<float>(d->features);
  for (size_t i = 0; i < dense.size(); ++i) EXPECT_NEAR(got[i], dense[i], 1e-6) << i;

  ASSERT_EQ(d->ids.shape(), (shape{2, 26}));
  auto ids = values_of<int64_t>(d->ids);
  EXPECT_EQ(ids[0], criteo_id(0, 0x68fd1e64, 1000));
  EXPECT_EQ(ids[1], criteo_id(1, 0x68fd1e64, 1000));
  EXPECT_NE(ids[0], ids[1]) << "the same hex value in two fields must hash apart";
  EXPECT_EQ(ids[25], criteo_id(25, 0x0a, 1000));
  EXPECT_EQ(ids[26], ids[0]) << "hex digits are case-insensitive";
  for (int f = 2; f < 25; ++f) EXPECT_EQ(ids[static_cast<size_t>(f)], criteo_missing_id(f)) << f;
  for (int f = 1; f < 26; ++f) EXPECT_EQ(ids[26 + static_cast<size_t>(f)], f) << f;
  for (int64_t id : ids) EXPECT_TRUE(id >= 0 && id < 1000) << id;
  // The documented hash: 26 + splitmix64((field + 1) << 32 | value) mod (buckets - 26).
  uint64_t state = (uint64_t{2} << 32) | 0x68fd1e64;
  EXPECT_EQ(criteo_id(1, 0x68fd1e64, 1000), 26 + static_cast<int64_t>(shuffle_rng::splitmix64(state) % 974));
  // Computed independently (Python): a change here changes every id.
  EXPECT_EQ(criteo_id(0, 0, int64_t{1} << 40), 114746622582);
}

TEST(CriteoReader, MalformedLinesNameFileAndLine) {
  scratch_dir dir;
  const std::string good = criteo_line("0", {{1, "5"}, {14, "abc"}}) + "\n";
  std::string short_line = criteo_line("1");
  short_line.pop_back(); // drops the last tab: 39 columns
  const std::vector<std::pair<std::string, std::string>> cases{
      {short_line, "expected 40 tab-separated columns (a label, 13 integer, 26 categorical), found 39"},
      {criteo_line("1") + "\t", "expected 40 tab-separated columns (a label, 13 integer, 26 categorical), found 41"},
      {criteo_line("2"), "column 1 (label): '2' is not 0 or 1"},
      {criteo_line(""), "column 1 (label): '' is not 0 or 1"},
      {criteo_line("0", {{5, "1.5"}}), "column 6 (I5): '1.5' is not an integer"},
      {criteo_line("0", {{13, "abc"}}), "column 14 (I13): 'abc' is not an integer"},
      {criteo_line("0", {{20, "xyz"}}), "column 21 (C7): 'xyz' is not a hex id of 1-8 digits"},
      {criteo_line("0", {{39, "123456789"}}), "column 40 (C26): '123456789' is not a hex id"},
      {criteo_line("0", {{14, "-1"}}), "column 15 (C1): '-1' is not a hex id"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir.file("bad" + std::to_string(i) + ".tsv");
    write_text(path, good + cases[i].first + "\n" + good);
    auto d = read_criteo(path);
    ASSERT_FALSE(d.ok()) << "case " << i;
    EXPECT_TRUE(contains(d.err().message, path + ": line 2: " + cases[i].second)) << d.err().message;
  }
}

TEST(CriteoReader, ReadsGzipAndStopsAtMaxRows) {
  scratch_dir dir;
  std::string text;
  for (int i = 0; i < 3; ++i) text += criteo_line(i % 2 ? "1" : "0", {{1, std::to_string(i)}, {20, "f00" + std::to_string(i)}}) + "\n";
  text += "not a criteo line\n";
  write_text(dir.file("raw.tsv"), text);
  write_gzip(dir.file("packed.gz"), bytes(text.begin(), text.end()));
  for (const char* name : {"raw.tsv", "packed.gz"}) {
    auto all = read_criteo(dir.file(name));
    ASSERT_FALSE(all.ok()) << name;
    EXPECT_TRUE(contains(all.err().message, dir.file(name) + ": line 4: expected 40")) << all.err().message;
    auto first = read_criteo(dir.file(name), {.buckets = 5000, .max_rows = 3});
    ASSERT_TRUE(first.ok()) << first.err().message;
    EXPECT_EQ(first->size(), 3);
    EXPECT_EQ(values_of<float>(first->labels), (std::vector<float>{0, 1, 0}));
    EXPECT_EQ(values_of<int64_t>(first->ids)[2 * 26 + 6], criteo_id(6, 0xf002, 5000));
  }
}

TEST(CriteoReader, RejectsBadOptionsAndEmptyFiles) {
  scratch_dir dir;
  write_text(dir.file("empty.tsv"), "\n");
  write_text(dir.file("one.tsv"), criteo_line("1") + "\n");
  auto buckets = read_criteo(dir.file("one.tsv"), {.buckets = 26});
  ASSERT_FALSE(buckets.ok());
  EXPECT_TRUE(contains(buckets.err().message, "buckets must be above 26")) << buckets.err().message;
  EXPECT_FALSE(read_criteo(dir.file("one.tsv"), {.max_rows = -1}).ok());
  auto empty = read_criteo(dir.file("empty.tsv"));
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(contains(empty.err().message, dir.file("empty.tsv") + ": no examples")) << empty.err().message;
  auto missing = read_criteo(dir.file("missing.tsv"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.err().message, dir.file("missing.tsv"))) << missing.err().message;
}

TEST(CriteoGenerator, IsDeterministicAndReadsBack) {
  scratch_dir dir;
  // ~1.5 MB: the reader's lines cross its 1 MiB chunks.
  const criteo_gen_options o{.rows = 6000, .seed = 7, .distinct = 5000};
  auto a = write_criteo(dir.file("a.tsv"), o);
  ASSERT_TRUE(a.ok()) << a.err().message;
  ASSERT_TRUE(write_criteo(dir.file("b.tsv"), o).ok());
  ASSERT_TRUE(write_criteo(dir.file("c.tsv.gz"), o).ok());
  criteo_gen_options other_part = o, other_seed = o;
  other_part.part = 1;
  other_seed.seed = 8;
  ASSERT_TRUE(write_criteo(dir.file("part1.tsv"), other_part).ok());
  ASSERT_TRUE(write_criteo(dir.file("seed8.tsv"), other_seed).ok());
  auto text = [&](const char* name) { return *text::read_file(dir.file(name)); };
  EXPECT_GT(text("a.tsv").size(), size_t{1} << 20);
  EXPECT_EQ(text("a.tsv"), text("b.tsv"));
  EXPECT_NE(text("a.tsv"), text("part1.tsv"));
  EXPECT_NE(text("a.tsv"), text("seed8.tsv"));

  auto d = read_criteo(dir.file("a.tsv"), {.buckets = int64_t{1} << 62});
  ASSERT_TRUE(d.ok()) << d.err().message;
  ASSERT_EQ(d->size(), 6000);
  EXPECT_EQ(a->rows, 6000);
  double positives = 0;
  for (float l : d->labels.span<float>()) positives += l;
  EXPECT_EQ(static_cast<int64_t>(positives), a->positives);
  EXPECT_GT(positives / 6000, 0.15);
  EXPECT_LT(positives / 6000, 0.40);
  EXPECT_EQ(static_cast<int64_t>(present_ids(*d).size()), a->distinct_ids);
  EXPECT_GT(a->distinct_ids, 10'000);
  // Field f is empty with probability {0, 0.02, 0.1, 0.3}[f % 4].
  const int64_t* ids = d->ids.data<int64_t>();
  int64_t missing0 = 0, missing3 = 0;
  for (int64_t i = 0; i < 6000; ++i) {
    missing0 += ids[i * 26] == criteo_missing_id(0);
    missing3 += ids[i * 26 + 3] == criteo_missing_id(3);
  }
  EXPECT_EQ(missing0, 0);
  EXPECT_NEAR(static_cast<double>(missing3) / 6000, 0.3, 0.03);

  auto gz = read_criteo(dir.file("c.tsv.gz"), {.buckets = int64_t{1} << 62});
  ASSERT_TRUE(gz.ok()) << gz.err().message;
  EXPECT_EQ(values_of<int64_t>(gz->ids), values_of<int64_t>(d->ids));
  EXPECT_EQ(values_of<float>(gz->features), values_of<float>(d->features));
}

TEST(CriteoGenerator, DefaultSizesHoldAMillionDistinctIds) {
  auto st = write_criteo("/dev/null", {.rows = 250'000});
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_GE(st->distinct_ids, 1'000'000);
  EXPECT_FALSE(write_criteo("/nonexistent-dir/x.tsv", {.rows = 1}).ok());
  EXPECT_FALSE(write_criteo("/dev/null", {.distinct = 0}).ok());
}

// --- loader -------------------------------------------------------------------

namespace {

/// n examples of shape [2, 3]: element j of example i is i * 100 + j, and
/// the label of example i is i.
std::shared_ptr<const dataset> indexed_dataset(int64_t n) {
  auto d = std::make_shared<dataset>();
  d->source = "indexed";
  d->features = tensor(dtype::f32, shape{n, 2, 3});
  d->labels = tensor(dtype::i64, shape{n});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 6; ++j)
      d->features.data<float>()[i * 6 + j] = static_cast<float>(i * 100 + j);
    d->labels.data<int64_t>()[i] = i;
  }
  return d;
}

/// Every batch of one epoch, checking shapes, indices and that each row's
/// features belong to its label.
std::vector<batch> epoch_batches(loader& l, int64_t epoch) {
  l.start_epoch(epoch);
  std::vector<batch> out;
  while (auto b = l.next()) {
    EXPECT_EQ(b->index, static_cast<int64_t>(out.size()));
    EXPECT_EQ(b->features.rank(), 3);
    EXPECT_EQ(b->features.dim(1), 2);
    EXPECT_EQ(b->features.dim(2), 3);
    EXPECT_EQ(b->features.dim(0), b->labels.dim(0));
    for (int64_t k = 0; k < b->labels.dim(0); ++k) {
      int64_t label = b->labels.data<int64_t>()[k];
      for (int64_t j = 0; j < 6; ++j)
        EXPECT_EQ(b->features.data<float>()[k * 6 + j], static_cast<float>(label * 100 + j));
    }
    out.push_back(std::move(*b));
  }
  EXPECT_EQ(static_cast<int64_t>(out.size()), l.batches_per_epoch());
  return out;
}

std::vector<int64_t> order_of(const std::vector<batch>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches)
    for (int64_t l : b.labels.span<int64_t>()) out.push_back(l);
  return out;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

} // namespace

// --- CIFAR-10 binary ------------------------------------------------------------

/// CIFAR-10 records: label, then 1024 R, 1024 G, 1024 B bytes; pixel p of
/// channel c of record r is (r * 7 + c * 50 + p) % 256.
bytes cifar_records(const std::vector<uint8_t>& labels, int first = 0) {
  bytes out;
  for (size_t i = 0; i < labels.size(); ++i) {
    out.push_back(labels[i]);
    const int r = first + static_cast<int>(i);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) out.push_back(static_cast<uint8_t>((r * 7 + c * 50 + p) % 256));
  }
  return out;
}

double cifar_pixel(int record, int c, int p) { return static_cast<double>((record * 7 + c * 50 + p) % 256); }

TEST(Cifar10Reader, ReadsLabelsAndPlanesScaledToUnit) {
  scratch_dir dir;
  write_bytes(dir.file("test_batch.bin"), cifar_records({3, 9, 0}));
  auto d = read_cifar10(dir.file("test_batch.bin"));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->features.shape(), (shape{3, 3072}));
  EXPECT_EQ(d->features.type(), dtype::f32);
  EXPECT_EQ(d->labels.to_doubles(), (std::vector<double>{3, 9, 0}));
  const float* f = d->features.data<float>();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      for (int p : {0, 1, 33, 1023})
        EXPECT_FLOAT_EQ(f[r * 3072 + c * 1024 + p], static_cast<float>(cifar_pixel(r, c, p) / 255.0))
            << "record " << r << " channel " << c << " pixel " << p;
}

TEST(Cifar10Reader, ReadsADirectorysBatchesInOrderAndGzip) {
  scratch_dir dir;
  // data_batch_10 sorts after 2 by number, not by name; other files are ignored.
  write_bytes(dir.file("data_batch_2.bin"), cifar_records({2, 2}, 1));
  write_gzip(dir.file("data_batch_10.bin"), cifar_records({7}, 3));
  write_bytes(dir.file("data_batch_1.bin"), cifar_records({1}, 0));
  write_bytes(dir.file("test_batch.bin"), cifar_records({5, 5, 5, 5}));
  write_text(dir.file("batches.meta.txt"), "airplane\n");
  auto d = read_cifar10(dir.file(""));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->labels.to_doubles(), (std::vector<double>{1, 2, 2, 7}));
  const float* f = d->features.data<float>();
  for (int r = 0; r < 4; ++r)
    EXPECT_FLOAT_EQ(f[r * 3072 + 2 * 1024 + 5], static_cast<float>(cifar_pixel(r, 2, 5) / 255.0)) << r;
}

TEST(Cifar10Reader, NormalizesPerChannel) {
  scratch_dir dir;
  write_bytes(dir.file("b.bin"), cifar_records({4}));
  auto d = read_cifar10(dir.file("b.bin"), {.mean = {0.5, 0.25, 0}, .stddev = {0.5, 2, 0.25}});
  ASSERT_TRUE(d.ok()) << d.err().message;
  const float* f = d->features.data<float>();
  EXPECT_NEAR(f[10], (cifar_pixel(0, 0, 10) / 255 - 0.5) / 0.5, 1e-6);
  EXPECT_NEAR(f[1024 + 10], (cifar_pixel(0, 1, 10) / 255 - 0.25) / 2, 1e-6);
  EXPECT_NEAR(f[2048 + 10], (cifar_pixel(0, 2, 10) / 255) / 0.25, 1e-6);
  auto raw = read_cifar10(dir.file("b.bin"), {.scale_to_unit = false});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->features.data<float>()[1024 + 10], static_cast<float>(cifar_pixel(0, 1, 10)));
  auto two = read_cifar10(dir.file("b.bin"), {.mean = {0.5, 0.5}, .stddev = {1, 1}});
  ASSERT_FALSE(two.ok());
  EXPECT_TRUE(contains(two.err().message, "needs 3 means and 3 standard deviations")) << two.err().message;
  auto zero = read_cifar10(dir.file("b.bin"), {.mean = {0, 0, 0}, .stddev = {1, 0, 1}});
  ASSERT_FALSE(zero.ok());
  EXPECT_TRUE(contains(zero.err().message, "must be > 0")) << zero.err().message;
}

TEST(Cifar10Reader, TruncatedFilesNameTheFileAndRecord) {
  scratch_dir dir;
  bytes b = cifar_records({1, 2, 3});
  b.resize(b.size() - 100);
  write_bytes(dir.file("short.bin"), b);
  auto d = read_cifar10(dir.file("short.bin"));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.err().message, dir.file("short.bin") + ": 9119 bytes is not a whole number of 3073-byte records"))
      << d.err().message;
  EXPECT_TRUE(contains(d.err().message, "record 2 (at offset 6146) is truncated to 2973 bytes")) << d.err().message;
  // The same through gzip, where the size is only known at the end.
  write_gzip(dir.file("short.bin.gz"), b);
  auto z = read_cifar10(dir.file("short.bin.gz"));
  ASSERT_FALSE(z.ok());
  EXPECT_TRUE(contains(z.err().message, dir.file("short.bin.gz"))) << z.err().message;
  EXPECT_TRUE(contains(z.err().message, "record 2")) << z.err().message;
  EXPECT_TRUE(contains(z.err().message, "truncated to 2973 bytes")) << z.err().message;
}

TEST(Cifar10Reader, LabelAboveNineNamesTheRecord) {
  scratch_dir dir;
  bytes b = cifar_records({1, 2, 3});
  b[2 * 3073] = 10;
  write_bytes(dir.file("data_batch_1.bin"), b);
  auto d = read_cifar10(dir.file(""));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.err().message, dir.file("data_batch_1.bin") + ": record 2 (at offset 6146) has label 10"))
      << d.err().message;
}

TEST(Cifar10Reader, EmptyFilesMissingFilesAndEmptyDirectoriesAreErrors) {
  scratch_dir dir;
  write_bytes(dir.file("empty.bin"), {});
  auto empty = read_cifar10(dir.file("empty.bin"));
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(contains(empty.err().message, "holds no records")) << empty.err().message;
  auto missing = read_cifar10(dir.file("missing.bin"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.err().message, dir.file("missing.bin"))) << missing.err().message;
  fs::create_directories(dir.file("nothing"));
  auto none = read_cifar10(dir.file("nothing"));
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(contains(none.err().message, "holds no data_batch_N.bin files")) << none.err().message;
}

TEST(ShuffleRng, MatchesReferenceStreams) {
  uint64_t state = 1234567;
  EXPECT_EQ(shuffle_rng::splitmix64(state), 6457827717110365317ull);
  EXPECT_EQ(shuffle_rng::splitmix64(state), 3203168211198807973ull);
  EXPECT_EQ(shuffle_rng::splitmix64(state), 9817491932198370423ull);
  shuffle_rng rng(0);
  EXPECT_EQ(rng.next(), 11091344671253066420ull);
  EXPECT_EQ(rng.next(), 13793997310169335082ull);
  EXPECT_EQ(rng.next(), 1900383378846508768ull);
  // Golden orders, computed independently: a change here changes every
  // shuffled training run.
  EXPECT_EQ(epoch_permutation(10, 42, 0), (std::vector<int64_t>{9, 3, 6, 4, 0, 7, 5, 2, 8, 1}));
  EXPECT_EQ(epoch_permutation(10, 42, 1), (std::vector<int64_t>{5, 4, 3, 6, 8, 1, 9, 7, 2, 0}));
}

TEST(Loader, VisitsEveryExampleOncePerEpoch) {
  loader l(indexed_dataset(103), {.batch_size = 10, .seed = 7});
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    auto order = order_of(epoch_batches(l, epoch));
    EXPECT_NE(order, iota(103)) << "epoch " << epoch << " was not shuffled";
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, iota(103)) << "epoch " << epoch;
  }
}

TEST(Loader, OrderIsAFunctionOfSeedAndEpoch) {
  auto d = indexed_dataset(50);
  loader a(d, {.batch_size = 8, .seed = 3});
  loader b(d, {.batch_size = 8, .seed = 3, .prefetch = 0});
  loader c(d, {.batch_size = 8, .seed = 4});
  auto a1 = order_of(epoch_batches(a, 1));
  EXPECT_EQ(a1, order_of(epoch_batches(b, 1)));
  EXPECT_EQ(a1, order_of(epoch_batches(a, 1)));
  EXPECT_NE(a1, order_of(epoch_batches(a, 2)));
  EXPECT_NE(a1, order_of(epoch_batches(c, 1)));
  EXPECT_EQ(a1, epoch_permutation(50, 3, 1));
}

TEST(Loader, DropLastControlsTheFinalPartialBatch) {
  auto d = indexed_dataset(103);
  loader keep(d, {.batch_size = 10, .drop_last = false});
  EXPECT_EQ(keep.batches_per_epoch(), 11);
  auto kept = epoch_batches(keep, 0);
  ASSERT_EQ(kept.size(), 11u);
  EXPECT_EQ(kept.back().features.dim(0), 3);
  EXPECT_EQ(kept.back().labels.dim(0), 3);
  EXPECT_EQ(order_of(kept).size(), 103u);

  loader drop(d, {.batch_size = 10, .drop_last = true});
  EXPECT_EQ(drop.batches_per_epoch(), 10);
  auto dropped = epoch_batches(drop, 0);
  ASSERT_EQ(dropped.size(), 10u);
  for (const auto& b : dropped) EXPECT_EQ(b.features.dim(0), 10);

  loader exact(indexed_dataset(100), {.batch_size = 10, .drop_last = false});
  EXPECT_EQ(exact.batches_per_epoch(), 10);
}

TEST(Loader, WithoutShuffleKeepsOrder) {
  loader l(indexed_dataset(25), {.batch_size = 4, .shuffle = false});
  EXPECT_EQ(order_of(epoch_batches(l, 0)), iota(25));
  EXPECT_EQ(order_of(epoch_batches(l, 5)), iota(25));
}

TEST(Loader, PrefetchDoesNotChangeTheBatches) {
  auto d = indexed_dataset(77);
  loader sync(d, {.batch_size = 9, .seed = 11, .prefetch = 0});
  loader async(d, {.batch_size = 9, .seed = 11, .prefetch = 2});
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    auto s = epoch_batches(sync, epoch);
    auto a = epoch_batches(async, epoch);
    ASSERT_EQ(s.size(), a.size());
    for (size_t i = 0; i < s.size(); ++i) {
      EXPECT_EQ(s[i].index, a[i].index);
      EXPECT_EQ(values_of<float>(s[i].features), values_of<float>(a[i].features)) << i;
      EXPECT_EQ(values_of<int64_t>(s[i].labels), values_of<int64_t>(a[i].labels)) << i;
    }
  }
}

TEST(Loader, StoppingMidEpochNeitherHangsNorLeaks) {
  auto d = indexed_dataset(5000);
  // Restarting mid-epoch gives a complete new epoch.
  loader l(d, {.batch_size = 16, .prefetch = 2});
  l.start_epoch(0);
  ASSERT_TRUE(l.next().has_value());
  auto order = order_of(epoch_batches(l, 1));
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, iota(5000));

  // Destroying with a full queue and a blocked producer returns promptly.
  for (int consumed : {0, 1, 3}) {
    auto victim = std::make_shared<loader>(d, loader_options{.batch_size = 16, .prefetch = 2});
    victim->start_epoch(0);
    for (int i = 0; i < consumed; ++i) ASSERT_TRUE(victim->next().has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // let the queue fill
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    std::thread destroyer([victim = std::move(victim), done]() mutable {
      victim.reset();
      done->set_value();
    });
    if (finished.wait_for(std::chrono::seconds(20)) == std::future_status::ready) {
      destroyer.join();
    } else {
      destroyer.detach();
      FAIL() << "destroying a loader after " << consumed << " batches hung";
    }
  }
}

TEST(Loader, RejectsBadOptions) {
  auto d = indexed_dataset(10);
  auto message = [](auto&& make) -> std::string {
    try {
      make();
    } catch (const luoshu_error& e) {
      return e.what();
    }
    return "<no exception>";
  };
  EXPECT_TRUE(contains(message([&] { loader(d, {.batch_size = 0}); }), "batch_size"));
  EXPECT_TRUE(contains(message([&] { loader(d, {.batch_size = -3}); }), "batch_size"));
  EXPECT_TRUE(contains(message([&] { loader(d, {.prefetch = -1}); }), "prefetch"));
  EXPECT_TRUE(contains(message([&] { loader(nullptr, {}); }), "null"));
  EXPECT_TRUE(
      contains(message([&] { loader(d, {.batch_size = 11, .drop_last = true}); }), "no batches"));

  auto empty = std::make_shared<dataset>();
  empty->source = "nothing";
  empty->features = tensor(dtype::f32, shape{0, 4});
  empty->labels = tensor(dtype::i64, shape{0});
  EXPECT_TRUE(contains(message([&] { loader(empty, {}); }), "'nothing' is empty"));

  auto ragged = std::make_shared<dataset>();
  ragged->features = tensor(dtype::f32, shape{4, 2});
  ragged->labels = tensor(dtype::i64, shape{3});
  EXPECT_TRUE(contains(message([&] { loader(ragged, {}); }), "4 feature rows"));

  auto bad_ids = std::make_shared<dataset>(*d);
  bad_ids->ids = tensor(dtype::i64, shape{9, 2});
  EXPECT_TRUE(contains(message([&] { loader(bad_ids, {}); }), "ids of shape [9, 2]"));
}

TEST(Loader, BatchesIdsWithTheirRows) {
  auto d = std::make_shared<dataset>(*indexed_dataset(37));
  d->ids = tensor(dtype::i64, shape{37, 2});
  for (int64_t i = 0; i < 74; ++i) d->ids.data<int64_t>()[i] = i / 2 * 10 + i % 2;
  loader l(d, {.batch_size = 8, .seed = 5});
  auto batches = epoch_batches(l, 1);
  for (const auto& b : batches) {
    ASSERT_EQ(b.ids.shape(), (shape{b.labels.dim(0), 2}));
    for (int64_t k = 0; k < b.labels.dim(0); ++k) {
      EXPECT_EQ(b.ids.data<int64_t>()[2 * k], b.labels.data<int64_t>()[k] * 10);
      EXPECT_EQ(b.ids.data<int64_t>()[2 * k + 1], b.labels.data<int64_t>()[k] * 10 + 1);
    }
  }
  EXPECT_FALSE(epoch_batches(*std::make_unique<loader>(indexed_dataset(3), loader_options{}), 0)[0].ids.defined());
}
