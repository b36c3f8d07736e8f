#!/usr/bin/env bash
# The layer-split Fashion-MNIST MLP as a two-process job whose compute
# actors run on CUDA device 0 (each on its own stream), against the same
# model in one process on the CPU: every step's loss within 1e-4 relative,
# test accuracy within 0.005, the loss going down. Skipped (77) without
# a usable CUDA device or without the data set. Every run is bounded.
#   model_parallel_gpu_test.sh PATH/TO/luoshu PATH/TO/mlp_model_parallel [DATA_DIR]
set -u
luoshu=$1
example=$2
data=${3:-/usr/share/datasets/fashion-mnist}
if ! "$luoshu" info | grep -q "^  cuda:0 "; then
  echo "SKIP: no usable CUDA device"
  exit 77
fi
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: Fashion-MNIST is not installed (scripts/setup.sh installs dataset-fashion-mnist)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
steps=100
cat >"$tmp/gpu.yaml" <<YAML
coordinator: {host: 127.0.0.1, port: 0}
timeout: 280
nodes:
  - {host: localhost, role: worker, device: "cuda:0", count: 2}
YAML
timeout 300 "$example" --steps $steps --data "$data" >"$tmp/cpu.log" 2>&1 ||
  { echo "FAIL: single-process CPU run"; tail -20 "$tmp/cpu.log"; exit 1; }
timeout 300 "$luoshu" launch "$tmp/gpu.yaml" -- "$example" --steps $steps --data "$data" >"$tmp/gpu.log" 2>&1 ||
  { echo "FAIL: two-process job on cuda:0"; tail -30 "$tmp/gpu.log"; exit 1; }
python3 - "$tmp/cpu.log" "$tmp/gpu.log" "$steps" <<'PY'
import re, sys
def read(path):
    losses, acc = {}, None
    for line in open(path):
        m = re.search(r"step (\d+) loss (\S+)", line)
        if m: losses[int(m.group(1))] = float(m.group(2))
        m = re.search(r"test accuracy (\S+)", line)
        if m: acc = float(m.group(1).rstrip('%'))
    return losses, acc
steps = int(sys.argv[3])
cpu, acc_c = read(sys.argv[1])
gpu, acc_g = read(sys.argv[2])
if len(cpu) != steps or len(gpu) != steps:
    sys.exit(f"FAIL: expected {steps} losses, got {len(cpu)} (cpu) and {len(gpu)} (gpu)")
worst = max(abs(gpu[i] - cpu[i]) / max(1.0, abs(cpu[i])) for i in range(steps))
if worst > 1e-4:
    sys.exit(f"FAIL: GPU job losses differ from the CPU run by up to {worst:.3g} (relative)")
if acc_c is None or acc_g is None or abs(acc_c - acc_g) > 0.005:
    sys.exit(f"FAIL: test accuracy {acc_c} (cpu) vs {acc_g} (gpu job)")
if gpu[steps - 1] >= gpu[0]:
    sys.exit(f"FAIL: the loss did not go down on the GPU ({gpu[0]} -> {gpu[steps - 1]})")
print(f"ok: {steps} steps on cuda:0 in two processes, worst relative loss difference to the CPU {worst:.2e}, "
      f"loss {gpu[0]} -> {gpu[steps - 1]}, test accuracy {acc_g} (cpu {acc_c})")
PY
