#!/usr/bin/env bash
# The Fashion-MNIST MLP split by layers into two partitions in two
# processes (started by `luoshu launch`) gives the same loss at every step
# as the single-process run and the same test accuracy — once with every
# tensor as a typed actor message (BASP: the default threshold of 1 MiB is
# above every tensor of this model) and once with every tensor over the bulk
# tensor lane (LUOSHU_BULK_THRESHOLD=0). Losses must match bitwise, and the
# transfer counters must show that each run used the path it was meant to.
# Then end of data: a step after finish() is refused, every compute actor
# stops and the job exits 0; a node that ends its data early makes its peer
# fail with an error naming it (no hang). Skipped (77) when the data set is
# not installed. Every run is bounded by `timeout`.
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
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
steps=150

timeout 300 "$example" --steps $steps >"$tmp/single.log" 2>&1 || { echo "FAIL: single-process run"; cat "$tmp/single.log"; exit 1; }
timeout 300 "$luoshu" launch --local 2 --timeout 280 --trace "$tmp/job.json" -- "$example" --steps $steps >"$tmp/job.log" 2>&1 ||
  { echo "FAIL: two-process job (BASP)"; tail -30 "$tmp/job.log"; exit 1; }
LUOSHU_BULK_THRESHOLD=0 timeout 300 "$luoshu" launch --local 2 --timeout 280 --trace "$tmp/lane.json" -- \
  "$example" --steps $steps --run-after-finish >"$tmp/lane.log" 2>&1 ||
  { echo "FAIL: two-process job (bulk lane)"; tail -30 "$tmp/lane.log"; exit 1; }

python3 - "$tmp/job.json" "$tmp/lane.json" <<'PY' || fails=$((fails + 1))
import collections, json, sys
for path, lane in ((sys.argv[1], False), (sys.argv[2], True)):
    events = json.load(open(path))["traceEvents"]
    cats = collections.Counter((e["pid"], e.get("cat", "meta")) for e in events)
    for pid in (0, 1):
        for cat in ("op", "unit", "message", "wait"):
            if cats[(pid, cat)] == 0:
                sys.exit(f"FAIL: {path}: the job's timeline has no '{cat}' events of node {pid}")
    msgs = [e for e in events if e.get("cat") == "message"]
    paths = collections.Counter(e.get("args", {}).get("lane") for e in msgs)
    if paths[not lane] != 0 or paths[lane] == 0:
        sys.exit(f"FAIL: {path}: messages by path (lane true/false): {dict(paths)}; expected only lane={lane}")
    print(f"ok: merged timeline with {len(events)} events from both nodes, {len(msgs)} messages, all lane={lane}")
PY

python3 - "$tmp/single.log" "$tmp/job.log" "$tmp/lane.log" "$steps" <<'PY' || fails=$((fails + 1))
import re, sys
def read(path):
    losses, acc, transfers = {}, None, []
    for line in open(path):
        m = re.search(r"step (\d+) loss (\S+)", line)
        if m: losses[int(m.group(1))] = m.group(2)   # the printed text: compared bitwise
        m = re.search(r"test accuracy (\S+)", line)
        if m: acc = m.group(1)
        m = re.search(r"transfers: lane sent (\d+) tensors \((\d+) bytes\) received (\d+) .*basp sent (\d+) .*received (\d+)", line)
        if m: transfers.append(tuple(int(x) for x in m.groups()))
    return losses, acc, transfers
steps = int(sys.argv[4])
single, acc_s, _ = read(sys.argv[1])
basp, acc_b, t_basp = read(sys.argv[2])
lane, acc_l, t_lane = read(sys.argv[3])
for name, l in (("single", single), ("basp", basp), ("lane", lane)):
    if len(l) != steps:
        sys.exit(f"FAIL: expected {steps} losses from the {name} run, got {len(l)}")
for name, l in (("BASP", basp), ("bulk lane", lane)):
    bad = [i for i in range(steps) if l[i] != single[i]]
    if bad:
        i = bad[0]
        sys.exit(f"FAIL: two-process ({name}) losses differ from the single-process run at {len(bad)} steps, "
                 f"first step {i}: {l[i]} vs {single[i]}")
if not (acc_s is not None and acc_s == acc_b == acc_l):
    sys.exit(f"FAIL: test accuracy {acc_s} (one process) vs {acc_b} (BASP) vs {acc_l} (lane)")
if float(single[steps - 1]) >= float(single[0]):
    sys.exit(f"FAIL: the loss did not go down ({single[0]} -> {single[steps - 1]})")
# (lane sent, lane bytes, lane received, basp sent, basp received) per node
if len(t_basp) != 2 or any(t[0] or t[2] for t in t_basp) or any(t[3] == 0 or t[4] == 0 for t in t_basp):
    sys.exit(f"FAIL: BASP run: transfer counters {t_basp}: expected no lane traffic on both nodes")
if len(t_lane) != 2 or any(t[0] == 0 or t[2] == 0 or t[3] or t[4] for t in t_lane):
    sys.exit(f"FAIL: lane run: transfer counters {t_lane}: expected every tensor over the lane on both nodes")
if sum(t[0] for t in t_lane) != sum(t[3] for t in t_basp):
    sys.exit(f"FAIL: the lane run sent {sum(t[0] for t in t_lane)} tensors, the BASP run {sum(t[3] for t in t_basp)}")
print(f"ok: {steps} steps, losses bitwise equal in the single-process, BASP and bulk-lane runs, "
      f"loss {single[0]} -> {single[steps - 1]}, test accuracy {acc_s}; "
      f"lane run moved {sum(t[0] for t in t_lane)} tensors ({sum(t[1] for t in t_lane)} bytes) over the lane")
PY

# End of data, orderly: both nodes finished, both refused the extra step.
stopped=$(grep -c "end of data: partition [01] stopped" "$tmp/lane.log")
refused=$(grep -c "run after finish: step [0-9]*: requested after end of data" "$tmp/lane.log")
if [ "$stopped" -eq 2 ] && [ "$refused" -eq 2 ]; then echo "ok: end of data: both compute actors stopped, a later step is refused"
else fail "end of data: stopped=$stopped refused=$refused"; grep -E "end of data|after finish|error" "$tmp/lane.log" | head; fi

# End of data, early: node 0 ends after 5 steps while node 1 wants more; node 1
# fails naming node 0, the job stops non-zero, quickly.
start=$(date +%s)
timeout 120 "$luoshu" launch --local 2 --timeout 100 -- "$example" --steps 40 --finish-early 0:5 >"$tmp/early.log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -lt 90 ] &&
   grep -q "partition 0 (worker-0) ended its data after 5 steps: step 5 cannot" "$tmp/early.log" &&
   grep -q "partition 0 ends its data after 5 steps" "$tmp/early.log"; then
  echo "ok: early end of data reported by the peer in ${took}s: $(grep -o 'partition 0 (worker-0) ended its data[^"]*' "$tmp/early.log" | head -1)"
else fail "early end of data: rc=$rc took=${took}s"; tail -20 "$tmp/early.log" | sed 's/^/    /'; fi

# A malformed threshold is named.
LUOSHU_BULK_THRESHOLD=lots timeout 60 "$luoshu" launch --local 2 --timeout 50 -- "$example" --steps 2 >"$tmp/bad.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "LUOSHU_BULK_THRESHOLD='lots' is not a byte count" "$tmp/bad.log"; then echo "ok: bad LUOSHU_BULK_THRESHOLD named"
else fail "bad threshold: rc=$rc"; tail -5 "$tmp/bad.log"; fi

if [ $fails -ne 0 ]; then echo "$fails model-parallel check(s) failed"; exit 1; fi
echo "all model-parallel checks passed"
