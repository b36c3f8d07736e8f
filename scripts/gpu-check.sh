#!/usr/bin/env bash
# The GPU checks, for a machine with a CUDA GPU (CI has none): the gpu test
# suite (every op's CUDA output and gradient against the CPU, training on the
# GPU), the collectives' NCCL tests, all-reduce training on the GPU against
# one process, and `luoshu bench gpu` (matmul against cuBLAS called
# directly, MLP training against PyTorch on the same GPU).
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

echo "== collectives on the GPU (NCCL bootstrapped over the CPU ring)"
if [[ -x $build/tests/actors/collective_test ]]; then
  "$build/tests/actors/collective_test" --gtest_filter='*Nccl*' 2>&1 | tee "$out/collective_nccl.log" | tail -n 8
fi
echo "== all-reduce training on the GPU vs one process on the GPU (Wide&Deep, generated Criteo rows)"
tmp=$(mktemp -d)
"$luoshu" gen criteo --rows 6000 --out "$tmp/train.tsv" --seed 3 >/dev/null &&
  "$luoshu" gen criteo --rows 2000 --out "$tmp/test.tsv" --seed 3 --part 1 >/dev/null &&
  printf 'model: {kind: wide_deep, embedding_dim: 8, hidden: [32, 16]}\ndata: {format: criteo, train: %s, test: %s, buckets: 50000}\noptimizer: {kind: adagrad, lr: 0.05}\nrun: {epochs: 2, batch_size: 200, eval_batch_size: 1000, seed: 4, threads: 1}\n' \
    "$tmp/train.tsv" "$tmp/test.tsv" >"$tmp/wd.yaml" &&
  timeout 300 "$luoshu" train "$tmp/wd.yaml" --device cuda:0 --quiet --summary-json "$out/wd_gpu_local.json" 2>&1 | tail -n 2 &&
  timeout 300 "$luoshu" train "$tmp/wd.yaml" --device cuda:0 --strategy allreduce --workers 2 --job-timeout 280 --quiet \
    --summary-json "$out/wd_gpu_allreduce.json" 2>&1 | grep -v '\[info\]' | tail -n 4
rm -rf "$tmp"

echo "== luoshu bench gpu"
bench_args=(bench gpu --json "$out/gpu_bench.json")
if [[ -n $python ]]; then bench_args+=(--python "$python"); else bench_args+=(--no-baselines); fi
"$luoshu" "${bench_args[@]}" 2>&1 | tee "$out/gpu_bench.log"
echo "bench exit status: ${PIPESTATUS[0]}"
exit "$suite"
