#pragma once
// The CIFAR-10 binary format (https://www.cs.toronto.edu/~kriz/cifar.html,
// "binary version"): files of 3073-byte records, each one label byte (0-9)
// and 3072 pixel bytes, the 1024 red, then green, then blue values of a
// 32x32 image in row-major order. The training set comes as
// data_batch_1.bin .. data_batch_5.bin (10,000 records each), the test set
// as test_batch.bin. Files may be gzip-compressed (detected by the magic).

#include <cstdint>
#include <string>
#include <vector>

#include "graph/data/dataset.hpp"
#include "graph/error.hpp"

namespace luoshu::data {

/// Pixel bytes of one CIFAR-10 image (3 x 32 x 32).
inline constexpr int64_t cifar10_pixels = 3 * 32 * 32;
/// Bytes of one record: the label byte and the pixels.
inline constexpr int64_t cifar10_record_bytes = 1 + cifar10_pixels;
inline constexpr int64_t cifar10_classes = 10;

struct cifar10_options {
  /// Divide the u8 pixels by 255 (to [0, 1]).
  bool scale_to_unit = true;
  /// Optional per-channel normalization after scaling: (v - mean[c]) /
  /// stddev[c]; both empty (off) or both 3 values (R, G, B), stddev > 0.
  std::vector<double> mean = {};
  std::vector<double> stddev = {};
};

/// Reads CIFAR-10 binary data from `path`: one file, or a directory whose
/// data_batch_N.bin files are all read, in the order of N. Features are f32
/// [n, 3072] in the file's (C, H, W) order, ready to be reshaped to
/// [3, 32, 32]; labels i64 [n]. Errors name the file and, for a truncated
/// file (a size that is not a multiple of 3073 bytes) or a label above 9,
/// the record (0-based) and its byte offset.
result<dataset> read_cifar10(const std::string& path, const cifar10_options& o = {});

} // namespace luoshu::data
