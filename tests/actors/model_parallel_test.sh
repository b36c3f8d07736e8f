#!/usr/bin/env bash
# The Fashion-MNIST MLP split by layers into two partitions in two
# processes (started by `luoshu launch`) gives the same loss at every step
# as the single-process run (relative difference <= 1e-5) and the same test
# accuracy. Skipped (77) when the data set is not installed.
#   model_parallel_test.sh PATH/TO/luoshu PATH/TO/mlp_model_parallel
set -u
luoshu=$1
example=$2
data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: Fashion-MNIST is not installed (scripts/setup.sh installs dataset-fashion-mnist)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
steps=150
timeout 300 "$example" --steps $steps >"$tmp/single.log" 2>&1 || { echo "FAIL: single-process run"; cat "$tmp/single.log"; exit 1; }
timeout 300 "$luoshu" launch --local 2 --timeout 280 --trace "$tmp/job.json" -- "$example" --steps $steps >"$tmp/job.log" 2>&1 ||
  { echo "FAIL: two-process job"; tail -30 "$tmp/job.log"; exit 1; }
python3 - "$tmp/job.json" <<'PY' || exit 1
import collections, json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
cats = collections.Counter((e["pid"], e.get("cat", "meta")) for e in events)
for pid in (0, 1):
    for cat in ("op", "unit", "message", "wait"):
        if cats[(pid, cat)] == 0:
            sys.exit(f"FAIL: the job's timeline has no '{cat}' events of node {pid}")
print(f"ok: merged timeline with {len(events)} events from both nodes")
PY
python3 - "$tmp/single.log" "$tmp/job.log" "$steps" <<'PY'
import re, sys
def read(path):
    losses, acc = {}, None
    for line in open(path):
        m = re.search(r"step (\d+) loss (\S+)", line)
        if m: losses[int(m.group(1))] = float(m.group(2))
        m = re.search(r"test accuracy (\S+)", line)
        if m: acc = float(m.group(1))
    return losses, acc
a, acc_a = read(sys.argv[1])
b, acc_b = read(sys.argv[2])
steps = int(sys.argv[3])
if len(a) != steps or len(b) != steps:
    sys.exit(f"FAIL: expected {steps} losses from each run, got {len(a)} and {len(b)}")
worst = max(abs(a[i] - b[i]) / max(abs(a[i]), 1e-12) for i in range(steps))
if worst > 1e-5:
    bad = [i for i in range(steps) if abs(a[i] - b[i]) / max(abs(a[i]), 1e-12) > 1e-5][:5]
    sys.exit(f"FAIL: losses differ (worst relative difference {worst:.3g}) at steps {bad}")
if acc_a is None or acc_b is None or acc_a != acc_b:
    sys.exit(f"FAIL: test accuracy {acc_a} (one process) vs {acc_b} (two processes)")
if a[steps - 1] >= a[0]:
    sys.exit(f"FAIL: the loss did not go down ({a[0]} -> {a[steps - 1]})")
print(f"ok: {steps} steps, worst relative loss difference {worst:.3g}, "
      f"loss {a[0]:.4f} -> {a[steps - 1]:.4f}, test accuracy {acc_a:.4f} in both runs")
PY
