// The CUDA runtime as Luoshu sees it (runs only where a GPU is present).

#include <gtest/gtest.h>

#include "ops/cuda/runtime.hpp"

TEST(CudaRuntime, DescribesEveryDevice) {
  int n = luoshu::cuda::device_count();
  ASSERT_GT(n, 0);
  for (int i = 0; i < n; ++i) {
    std::string d = luoshu::cuda::describe_device(i);
    EXPECT_NE(d.find("sm_"), std::string::npos) << d;
    EXPECT_NE(d.find("GiB"), std::string::npos) << d;
  }
}

TEST(CudaRuntime, OutOfRangeDeviceIsReportedNotFatal) {
  std::string d = luoshu::cuda::describe_device(luoshu::cuda::device_count() + 5);
  EXPECT_NE(d.find("device"), std::string::npos) << d;
}
