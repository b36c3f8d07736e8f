#include "graph/data/cifar.hpp"

#include "graph/data/input.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>
#include <utility>

namespace luoshu::data {

namespace {

/// N of "data_batch_N.bin", or -1 for another name.
int64_t batch_number(const std::string& file) {
  const std::string head = "data_batch_", tail = ".bin";
  if (file.size() <= head.size() + tail.size() || file.compare(0, head.size(), head) != 0 ||
      file.compare(file.size() - tail.size(), tail.size(), tail) != 0)
    return -1;
  std::string digits = file.substr(head.size(), file.size() - head.size() - tail.size());
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char ch) { return std::isdigit(ch); }))
    return -1;
  return std::stoll(digits);
}

/// The files `path` stands for: itself, or a directory's data_batch_N.bin.
result<std::vector<std::string>> files_of(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return std::vector<std::string>{path};
  std::vector<std::pair<int64_t, std::string>> found;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t k = batch_number(it->path().filename().string());
    if (k >= 0) found.emplace_back(k, it->path().string());
  }
  if (ec) return error{path + ": cannot list the directory: " + ec.message()};
  if (found.empty())
    return error{path + ": the directory holds no data_batch_N.bin files (CIFAR-10 binary version; name a file, "
                        "e.g. test_batch.bin, to read another)"};
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

/// Reads one file's records, appending pixel bytes and labels.
status read_file(const std::string& path, std::vector<unsigned char>& pixels, std::vector<int64_t>& labels) {
  auto opened = input::open(path);
  if (!opened) return opened.err();
  input& in = *opened;
  const auto rb = static_cast<uint64_t>(cifar10_record_bytes);
  auto truncated = [&](uint64_t bytes) {
    const uint64_t whole = bytes / rb;
    return in.fail(std::to_string(bytes) + " bytes is not a whole number of " + std::to_string(rb) +
                   "-byte records: record " + std::to_string(whole) + " (at " + in.where(whole * rb) +
                   ") is truncated to " + std::to_string(bytes - whole * rb) + " bytes (a CIFAR-10 binary file?)");
  };
  if (auto size = in.size(); size && *size % rb != 0) return truncated(*size); // before reading anything

  const size_t first_pixel = pixels.size();
  std::vector<unsigned char> rec(static_cast<size_t>(rb));
  uint64_t records = 0;
  for (;;) {
    const uint64_t start = in.offset();
    size_t got = in.read(rec.data(), rec.size());
    if (!in.failure().empty()) return in.fail("read error after " + in.where(in.offset()) + ": " + in.failure());
    if (got == 0) break;
    if (got < rec.size()) return truncated(start + got);
    if (rec[0] >= cifar10_classes)
      return in.fail("record " + std::to_string(records) + " (at " + in.where(start) + ") has label " +
                     std::to_string(rec[0]) + ", CIFAR-10 labels are 0-9");
    labels.push_back(rec[0]);
    pixels.insert(pixels.end(), rec.begin() + 1, rec.end());
    ++records;
  }
  if (records == 0) {
    pixels.resize(first_pixel);
    return in.fail("holds no records (an empty CIFAR-10 file)");
  }
  return {};
}

} // namespace

result<dataset> read_cifar10(const std::string& path, const cifar10_options& o) {
  if (o.mean.size() != o.stddev.size() || (!o.mean.empty() && o.mean.size() != 3))
    return error{"CIFAR-10 normalization needs 3 means and 3 standard deviations (R, G, B), got " +
                 std::to_string(o.mean.size()) + " and " + std::to_string(o.stddev.size())};
  for (double s : o.stddev)
    if (!(s > 0)) return error{"CIFAR-10 normalization: standard deviations must be > 0, got " + std::to_string(s)};
  auto files = files_of(path);
  if (!files) return files.err();
  std::vector<unsigned char> pixels;
  std::vector<int64_t> labels;
  for (const auto& f : *files)
    if (status st = read_file(f, pixels, labels); !st) return st.err();

  const auto n = static_cast<int64_t>(labels.size());
  dataset d;
  d.source = path;
  d.features = tensor(dtype::f32, shape{n, cifar10_pixels});
  d.labels = tensor::from<int64_t>(shape{n}, labels);
  float* out = d.features.data<float>();
  const int64_t plane = cifar10_pixels / 3;
  for (int c = 0; c < 3; ++c) {
    double scale = o.scale_to_unit ? 1.0 / 255.0 : 1.0, shift = 0;
    if (!o.mean.empty()) {
      shift = -o.mean[static_cast<size_t>(c)] / o.stddev[static_cast<size_t>(c)];
      scale /= o.stddev[static_cast<size_t>(c)];
    }
    const auto sc = static_cast<float>(scale), sh = static_cast<float>(shift);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t base = i * cifar10_pixels + c * plane;
      for (int64_t j = 0; j < plane; ++j)
        out[base + j] = static_cast<float>(pixels[static_cast<size_t>(base + j)]) * sc + sh;
    }
  }
  return d;
}

} // namespace luoshu::data
