#pragma once
// The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero
// bytes, a type code, a rank byte, `rank` u32 dimensions) followed by the
// elements, big-endian, row-major. Files may be gzip-compressed (detected
// by the gzip magic 1f 8b); either way they are read incrementally and a
// hostile header cannot make the reader allocate more than the data that
// is actually there.

#include <cstdint>
#include <string>

#include "graph/data/dataset.hpp"
#include "graph/error.hpp"
#include "graph/tensor.hpp"

namespace luoshu::data {

/// The most element bytes an IDX file may declare (16 GiB).
inline constexpr uint64_t idx_max_data_bytes = uint64_t{1} << 34;

/// Reads one IDX file (raw or gzip). The tensor's shape is the header's
/// dimensions; its dtype follows the type code: 0x08 u8 -> u8, 0x09 i8 and
/// 0x0B i16 -> i32 (luoshu has no narrower signed type), 0x0C i32 -> i32,
/// 0x0D f32 -> f32, 0x0E f64 -> f64. Bytes after the declared data are
/// ignored. Every error names the file and the byte offset (in the
/// decompressed stream for gzip files) where the problem was found.
result<tensor> read_idx(const std::string& path);

/// Reads an image file and a label file into a dataset: features f32
/// [n, prod(other image dims)] (divided by 255 when `scale_to_unit` and
/// the images are u8), labels i64 [n]. The label file must hold integers
/// with rank 1; the counts must agree.
result<dataset> read_idx_dataset(const std::string& images, const std::string& labels,
                                 bool scale_to_unit = true);

} // namespace luoshu::data
