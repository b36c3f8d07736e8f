#include "apps/luoshu/progress.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace luoshu::app {

namespace {

std::string epoch_line(const epoch_stats& e, int64_t epochs) {
  std::string s = fmt::format("epoch {}/{}: train loss {:.4f}", e.epoch, epochs, e.train_loss);
  if (e.test_loss >= 0) s += fmt::format(", test loss {:.4f}", e.test_loss);
  if (e.test_accuracy >= 0) s += fmt::format(", test accuracy {:.2f}%", 100 * e.test_accuracy);
  if (e.test_auc >= 0) s += fmt::format(", test AUC {:.4f}", e.test_auc);
  if (e.test_log_loss >= 0) s += fmt::format(", test log-loss {:.4f}", e.test_log_loss);
  s += fmt::format(", {:.0f} samples/s, {:.1f} s", e.samples_per_sec, e.seconds);
  return s;
}

class terminal_progress : public progress_sink {
public:
  void on_start(const train_config& cfg, int64_t n, int64_t steps) override {
    epochs_ = cfg.run.epochs;
    std::fprintf(stderr, "training on %lld examples, %lld steps per epoch, %lld epochs\n",
                 static_cast<long long>(n), static_cast<long long>(steps), static_cast<long long>(epochs_));
  }
  void on_step(int64_t epoch, int64_t step, int64_t steps, double loss, double sps) override {
    auto now = std::chrono::steady_clock::now();
    if (step != steps && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int width = 30;
    int filled = steps ? static_cast<int>(width * step / steps) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %3lld%% loss %.4f %8.0f samples/s",
                 static_cast<long long>(epoch), static_cast<long long>(epochs_), bar.c_str(),
                 static_cast<long long>(steps ? 100 * step / steps : 100), loss, sps);
    std::fflush(stderr);
  }
  void on_epoch(const epoch_stats& e) override {
    std::fprintf(stderr, "\r\033[K%s\n", epoch_line(e, epochs_).c_str());
  }

private:
  int64_t epochs_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

class log_progress : public progress_sink {
public:
  explicit log_progress(bool quiet) : quiet_(quiet) {}
  void on_start(const train_config& cfg, int64_t n, int64_t steps) override {
    epochs_ = cfg.run.epochs;
    spdlog::info("training on {} examples, {} steps per epoch, {} epochs", n, steps, epochs_);
  }
  void on_step(int64_t epoch, int64_t step, int64_t steps, double loss, double sps) override {
    // About ten lines per epoch.
    if (quiet_ || steps < 10 || step % (steps / 10) != 0 || step == steps) return;
    spdlog::info("epoch {}/{} step {}/{}: loss {:.4f}, {:.0f} samples/s", epoch, epochs_, step, steps, loss, sps);
  }
  void on_epoch(const epoch_stats& e) override { spdlog::info("{}", epoch_line(e, epochs_)); }

private:
  bool quiet_;
  int64_t epochs_ = 0;
};

} // namespace

std::unique_ptr<progress_sink> make_console_progress(bool quiet) {
  if (!quiet && isatty(STDERR_FILENO)) return std::make_unique<terminal_progress>();
  return std::make_unique<log_progress>(quiet);
}

} // namespace luoshu::app
