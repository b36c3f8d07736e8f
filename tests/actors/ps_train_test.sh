#!/usr/bin/env bash
# `luoshu train --strategy ps`: Wide&Deep on generated Criteo-format data,
# trained by 2 worker processes through 2 parameter-server processes
# (started by luoshu train itself on loopback):
#   - BSP ends with the test loss and AUC of the same run in one process
#     (up to float rounding);
#   - a BSP run stopped after epoch 1 and resumed from its checkpoint
#     directory ends exactly where the uninterrupted 2-epoch run ends;
#   - so does a batch-norm MLP (its running statistics are in the
#     checkpoint, not only the shards' parameters);
#   - bad strategy options are named.
# Every run is bounded by `timeout`.
#   ps_train_test.sh PATH/TO/luoshu
set -u
luoshu=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
timeout 120 "$luoshu" gen criteo --rows 6000 --out "$tmp/train.tsv" --seed 3 >/dev/null || { echo "FAIL: gen"; exit 1; }
timeout 120 "$luoshu" gen criteo --rows 2000 --out "$tmp/test.tsv" --seed 3 --part 1 >/dev/null || { echo "FAIL: gen"; exit 1; }
cat >"$tmp/wd.yaml" <<YAML
model: {kind: wide_deep, embedding_dim: 8, hidden: [32, 16]}
data: {format: criteo, train: $tmp/train.tsv, test: $tmp/test.tsv, buckets: 50000}
optimizer: {kind: adagrad, lr: 0.05}
run: {epochs: 2, batch_size: 200, eval_batch_size: 1000, seed: 4, threads: 1}
YAML
ps=(--strategy ps --servers 2 --workers 2 --job-timeout 240)

timeout 250 "$luoshu" train "$tmp/wd.yaml" --quiet --summary-json "$tmp/local.json" >"$tmp/local.log" 2>&1 ||
  { echo "FAIL: local run"; tail -20 "$tmp/local.log"; exit 1; }
timeout 250 "$luoshu" train "$tmp/wd.yaml" "${ps[@]}" --quiet --summary-json "$tmp/ps.json" >"$tmp/ps.log" 2>&1 ||
  { echo "FAIL: ps run"; tail -30 "$tmp/ps.log"; exit 1; }
timeout 250 "$luoshu" train "$tmp/wd.yaml" "${ps[@]}" --quiet --set run.epochs=1 --set run.checkpoint="$tmp/ckpt" \
  >"$tmp/first.log" 2>&1 || { echo "FAIL: first half"; tail -30 "$tmp/first.log"; exit 1; }
timeout 250 "$luoshu" train "$tmp/wd.yaml" "${ps[@]}" --quiet --set run.resume="$tmp/ckpt" --summary-json "$tmp/resumed.json" \
  >"$tmp/resumed.log" 2>&1 || { echo "FAIL: resumed run"; tail -30 "$tmp/resumed.log"; exit 1; }
# Mid-epoch: saved every 7 steps, stopped at step 14, resumed to the end.
timeout 250 "$luoshu" train "$tmp/wd.yaml" "${ps[@]}" --quiet --set run.max_steps=14 --set run.checkpoint_every=7 \
  --set run.checkpoint="$tmp/ckpt2" >"$tmp/mid.log" 2>&1 || { echo "FAIL: mid-epoch run"; tail -30 "$tmp/mid.log"; exit 1; }
grep -q "^step 14$" "$tmp/ckpt2/job-state" || fail "every-7-steps checkpoint: $(cat "$tmp/ckpt2/job-state" 2>&1)"
timeout 250 "$luoshu" train "$tmp/wd.yaml" "${ps[@]}" --quiet --set run.resume="$tmp/ckpt2" --summary-json "$tmp/resumed2.json" \
  >"$tmp/resumed2.log" 2>&1 || { echo "FAIL: mid-epoch resume"; tail -30 "$tmp/resumed2.log"; exit 1; }

grep -q "^step $(( 6000 / 200 ))$" "$tmp/ckpt/job-state" || fail "checkpoint state: $(cat "$tmp/ckpt/job-state" 2>&1)"
ls "$tmp/ckpt"/shard-0-of-2.ckpt "$tmp/ckpt"/shard-1-of-2.ckpt >/dev/null || fail "shard checkpoints missing"

python3 - "$tmp/local.json" "$tmp/ps.json" "$tmp/resumed.json" "$tmp/resumed2.json" <<'PY' || fails=$((fails + 1))
import json, sys
local, ps, resumed, resumed2 = (json.load(open(p)) for p in sys.argv[1:5])
for k in ("test_loss", "test_auc", "test_log_loss", "steps"):
    if abs(resumed2[k] - ps[k]) > 1e-9:
        sys.exit(f"FAIL: {k}: run resumed mid-epoch {resumed2[k]} vs uninterrupted {ps[k]}")
for k in ("test_loss", "test_auc", "test_log_loss"):
    if ps[k] is None or local[k] is None:
        sys.exit(f"FAIL: {k} missing: local {local[k]}, ps {ps[k]}")
    if abs(ps[k] - local[k]) > 2e-3:
        sys.exit(f"FAIL: {k}: ps (2 servers, 2 workers, bsp) {ps[k]} vs one process {local[k]}")
    if abs(resumed[k] - ps[k]) > 1e-9:
        sys.exit(f"FAIL: {k}: resumed run {resumed[k]} vs uninterrupted {ps[k]}")
if [e["epoch"] for e in resumed["per_epoch"]] != [2]:
    sys.exit(f"FAIL: the resumed run trained epochs {[e['epoch'] for e in resumed['per_epoch']]}, not only epoch 2")
if ps["steps"] != local["steps"] or resumed["steps"] != ps["steps"]:
    sys.exit(f"FAIL: steps {local['steps']} / {ps['steps']} / {resumed['steps']}")
if not ps["test_auc"] > 0.6:
    sys.exit(f"FAIL: the model did not learn: AUC {ps['test_auc']}")
print(f"ok: ps (bsp) AUC {ps['test_auc']:.4f} log-loss {ps['test_log_loss']:.4f} vs one process "
      f"{local['test_auc']:.4f} {local['test_log_loss']:.4f}; runs resumed after epoch 1 and mid-epoch (step 14) "
      "equal the uninterrupted one")
PY

# Batch norm: its running statistics are no parameter the shards hold, so
# the checkpoint keeps worker 0's (replica.ckpt); a resumed run evaluates
# with them, exactly as the uninterrupted one does.
python3 - "$tmp" <<'PY'
import random, sys
random.seed(1)
for name, n in (("bn_train", 2000), ("bn_test", 500)):
    with open(f"{sys.argv[1]}/{name}.csv", "w") as f:
        for _ in range(n):
            x = [random.gauss(3, 2) for _ in range(6)]
            f.write(",".join(f"{v:.4f}" for v in x) + f",{int(x[0] - x[1] + 0.5 * x[2] > 3)}\n")
PY
cat >"$tmp/bn.yaml" <<YAML
model:
  input: [6]
  layers: [{op: linear, units: 16}, {op: batch_norm}, {op: relu}, {op: linear, units: 2}]
data: {format: csv, train: $tmp/bn_train.csv, test: $tmp/bn_test.csv}
optimizer: {kind: sgd, lr: 0.1}
run: {epochs: 2, batch_size: 50, eval_batch_size: 500, seed: 4, threads: 1}
YAML
bn_ps=(--strategy ps --servers 1 --workers 2 --job-timeout 100)
if timeout 120 "$luoshu" train "$tmp/bn.yaml" "${bn_ps[@]}" --quiet --summary-json "$tmp/bn.json" >"$tmp/bn.log" 2>&1 &&
  timeout 120 "$luoshu" train "$tmp/bn.yaml" "${bn_ps[@]}" --quiet --set run.epochs=1 --set run.checkpoint="$tmp/bn_ckpt" \
    >"$tmp/bn1.log" 2>&1 &&
  timeout 120 "$luoshu" train "$tmp/bn.yaml" "${bn_ps[@]}" --quiet --set run.resume="$tmp/bn_ckpt" \
    --summary-json "$tmp/bn_resumed.json" >"$tmp/bn2.log" 2>&1; then
  python3 - "$tmp/bn.json" "$tmp/bn_resumed.json" <<'PY' || fails=$((fails + 1))
import json, sys
full, resumed = (json.load(open(p)) for p in sys.argv[1:3])
if abs(full["test_loss"] - resumed["test_loss"]) > 1e-9 or full["test_accuracy"] != resumed["test_accuracy"]:
    sys.exit(f"FAIL: batch norm: resumed test loss {resumed['test_loss']} vs uninterrupted {full['test_loss']} "
             "(running statistics lost in the checkpoint?)")
if not full["test_accuracy"] > 0.8:
    sys.exit(f"FAIL: batch norm model did not learn: accuracy {full['test_accuracy']}")
print(f"ok: batch norm through the parameter server resumed equals uninterrupted (test loss {full['test_loss']:.6f})")
PY
else
  fail "batch norm runs"; tail -20 "$tmp"/bn*.log
fi

timeout 60 "$luoshu" train "$tmp/wd.yaml" --strategy ps --workers 3 >"$tmp/bad.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "run.batch_size 200 is not a multiple of 3 workers" "$tmp/bad.log"; then echo "ok: batch not divisible named"
else fail "batch/workers: rc=$rc"; tail -3 "$tmp/bad.log"; fi
timeout 60 "$luoshu" train "$tmp/wd.yaml" --strategy ps --consistency ssp:-1 >"$tmp/bad2.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "consistency 'ssp:-1'" "$tmp/bad2.log"; then echo "ok: bad consistency named"
else fail "consistency: rc=$rc"; tail -3 "$tmp/bad2.log"; fi
timeout 60 "$luoshu" train "$tmp/wd.yaml" --strategy ps --set run.resume="$tmp/nothing" >"$tmp/bad3.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "is not a checkpoint of a distributed job" "$tmp/bad3.log"; then echo "ok: bad resume directory named"
else fail "resume: rc=$rc"; tail -3 "$tmp/bad3.log"; fi

# A server that dies mid-job: the job stops, non-zero, naming it, and leaves
# no process behind.
timeout 120 "$luoshu" train "$tmp/wd.yaml" "${ps[@]}" --quiet --set run.epochs=1000 >"$tmp/kill.log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 200); do
  for c in $(pgrep -f "run.epochs=1000" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "LUOSHU_ROLE=server"; then victim=$c; break; fi
  done
  [ -n "$victim" ] && grep -q "step\|joined" "$tmp/kill.log" && break
  sleep 0.1
done
if [ -n "$victim" ]; then
  sleep 1
  start=$(date +%s)
  kill -9 "$victim"
  wait $job
  rc=$?
  took=$(( $(date +%s) - start ))
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -le 30 ] && grep -qE "server-[01].*(killed by signal|disconnected)" "$tmp/kill.log"; then
    echo "ok: a killed server stops the job in ${took}s: $(grep -oE 'server-[01][^"]*(killed by signal|disconnected)[^"]*' "$tmp/kill.log" | head -1)"
  else fail "killed server: rc=$rc took=${took}s"; tail -8 "$tmp/kill.log"; fi
  sleep 0.5
  left=$(pgrep -f "run.epochs=1000" | wc -l)
  [ "$left" -eq 0 ] || { fail "$left process(es) outlived the job"; pkill -9 -f "run.epochs=1000"; }
else
  fail "killed server: no server process found"; kill $job 2>/dev/null; wait $job
fi

if [ $fails -ne 0 ]; then echo "$fails ps training check(s) failed"; exit 1; fi
echo "all ps training checks passed"
