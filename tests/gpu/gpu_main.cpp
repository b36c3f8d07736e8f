// Entry point of the GPU suite: without a usable CUDA device the whole
// executable reports itself skipped (exit code 77, Meson's skip code), so a
// machine without a GPU never counts these tests as passed.

#include <gtest/gtest.h>

#include <cstdio>

#include "ops/cuda/runtime.hpp"

int main(int argc, char** argv) {
  if (luoshu::cuda::device_count() == 0) {
    std::printf("SKIP: no CUDA device (%s)\n",
                luoshu::cuda::built_with_cuda() ? "this build has CUDA, the machine has no GPU or driver"
                                                : "this build has no CUDA support");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
