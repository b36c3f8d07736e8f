#!/usr/bin/env bash
# The GPU checks, for a machine with a CUDA GPU (CI has none): the gpu test
# suite (every op's CUDA output and gradient against the CPU, training on the
# GPU) and `luoshu bench gpu` (matmul against cuBLAS called directly, MLP
# training against PyTorch on the same GPU).
#
#   scripts/gpu-check.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR (default build) must be configured with -Dcuda=enabled. Logs and
# the benchmark's JSON go to OUT_DIR (default gpu-check-out). The PyTorch
# baseline uses $LUOSHU_BENCH_PYTHON, else python3 from PATH. Exit status:
# the gpu suite's (0 passed, 77 no usable GPU, else failed).
set -uo pipefail
build=${1:-build}
out=${2:-gpu-check-out}
mkdir -p "$out"
luoshu="$build/apps/luoshu"
for f in "$luoshu" "$build/tests/gpu_test"; do
  [[ -x $f ]] || { echo "gpu-check: $f is missing: build with meson setup $build -Dcuda=enabled && ninja -C $build" >&2; exit 2; }
done
python=${LUOSHU_BENCH_PYTHON:-$(command -v python3 || true)}

command -v nvidia-smi >/dev/null && nvidia-smi -L
"$luoshu" info

echo "== gpu test suite"
"$build/tests/gpu_test" --gtest_brief=1 2>&1 | tee "$out/gpu_test.log" | tail -n 60
suite=${PIPESTATUS[0]}
echo "gpu_test exit status: $suite"
[[ $suite == 77 ]] && exit 77

echo "== luoshu bench gpu"
bench_args=(bench gpu --json "$out/gpu_bench.json")
if [[ -n $python ]]; then bench_args+=(--python "$python"); else bench_args+=(--no-baselines); fi
"$luoshu" "${bench_args[@]}" 2>&1 | tee "$out/gpu_bench.log"
echo "bench exit status: ${PIPESTATUS[0]}"
exit "$suite"
