// Tests of the host-side metrics: AUC and log-loss.

#include "graph/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace luoshu {
namespace {

using dv = std::vector<double>;

TEST(Auc, HandWorkedExample) {
  // Positives 0.35 and 0.8, negatives 0.1 and 0.4: three of four pairs ordered.
  auto r = metrics::auc(dv{0.1, 0.4, 0.35, 0.8}, dv{0, 0, 1, 1});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_DOUBLE_EQ(*r, 0.75);
}

TEST(Auc, TiesCountHalf) {
  // Pairs (pos, neg): (0.5, 0.5) tie = 1/2, (0.5, 0.2) = 1, (0.9, 0.5) = 1,
  // (0.9, 0.2) = 1, (0.2, 0.5) = 0, (0.2, 0.2) tie = 1/2: 4 / 6.
  auto r = metrics::auc(dv{0.5, 0.5, 0.9, 0.2, 0.2}, dv{1, 0, 1, 0, 1});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_NEAR(*r, 4.0 / 6.0, 1e-12);

  // All scores equal: every pair is a tie.
  r = metrics::auc(dv{0.3, 0.3, 0.3, 0.3}, dv{1, 0, 0, 1});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_DOUBLE_EQ(*r, 0.5);
}

TEST(Auc, PerfectAndReversedRankings) {
  auto r = metrics::auc(dv{0.1, 0.2, 0.8, 0.9}, dv{0, 0, 1, 1});
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(*r, 1.0);
  r = metrics::auc(dv{0.9, 0.8, 0.2, 0.1}, dv{0, 0, 1, 1});
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(*r, 0.0);
  // Invariant to any increasing transform of the scores.
  r = metrics::auc(dv{-5, 40, 7, 1000}, dv{0, 0, 1, 1});
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(*r, 0.75);
}

TEST(Auc, OneClassIsAnError) {
  auto r = metrics::auc(dv{0.1, 0.2, 0.3}, dv{1, 1, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("auc"), std::string::npos) << r.err().message;
  r = metrics::auc(dv{0.1, 0.2}, dv{0, 0});
  EXPECT_FALSE(r.ok());
  r = metrics::auc(dv{}, dv{});
  EXPECT_FALSE(r.ok());
}

TEST(Auc, LengthMismatchAndBadLabelsAreErrors) {
  auto r = metrics::auc(dv{0.1, 0.2, 0.3}, dv{0, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find('3'), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find('2'), std::string::npos) << r.err().message;
  r = metrics::auc(dv{0.1, 0.2, 0.3}, dv{0, 1, 2});
  EXPECT_FALSE(r.ok());
  EXPECT_THROW(r.value(), luoshu_error);
}

TEST(LogLoss, HandValue) {
  // -(log 0.8 + log(1 - 0.3) + log 0.6 + log(1 - 0.1)) / 4
  auto r = metrics::log_loss(dv{0.8, 0.3, 0.6, 0.1}, dv{1, 0, 1, 0});
  ASSERT_TRUE(r.ok()) << r.err().message;
  double want = -(std::log(0.8) + std::log(0.7) + std::log(0.6) + std::log(0.9)) / 4;
  EXPECT_NEAR(*r, want, 1e-12);
  EXPECT_NEAR(*r, 0.2990011586691898, 1e-12);
}

TEST(LogLoss, ClipsExtremeProbabilities) {
  // A confident wrong answer costs -log(1e-15), not infinity.
  auto r = metrics::log_loss(dv{0.0, 1.0}, dv{1, 1});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::isfinite(*r));
  EXPECT_NEAR(*r, -std::log(1e-15) / 2, 1e-9);
  r = metrics::log_loss(dv{1.0, 0.0}, dv{1, 0});
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(*r, 0.0, 1e-12);
}

TEST(LogLoss, LengthMismatchOrEmptyIsAnError) {
  EXPECT_FALSE(metrics::log_loss(dv{0.5, 0.5}, dv{1}).ok());
  EXPECT_FALSE(metrics::log_loss(dv{}, dv{}).ok());
}

} // namespace
} // namespace luoshu
