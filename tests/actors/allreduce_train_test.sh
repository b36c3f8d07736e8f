#!/usr/bin/env bash
# All-reduce across processes (loopback, OS-chosen ports; every run bounded
# by `timeout`, every child reaped):
#   - `luoshu train --strategy allreduce --workers 2` and 4 (Wide&Deep on generated
#     Criteo-format data: dense buckets plus sparse embedding gradients)
#     ends with the test loss and AUC of one process on the same global
#     batches (up to float rounding), with and without overlap;
#   - `--strategy hybrid --servers 1 --workers 2` (embeddings through the
#     parameter server, dense layers through all-reduce) does too;
#   - an all-reduce run stopped after epoch 1 and resumed from its
#     checkpoint ends exactly where the uninterrupted run ends;
#   - a rank killed with SIGKILL in the middle of collectives is named by
#     every survivor, which exit with an error instead of hanging (3 ranks
#     on the ring, 4 ranks by halving and doubling);
#   - three ranks on this host all-reduce through shared memory (every
#     rank's payloads), right, and leave nothing in /dev/shm;
#   - four ranks all-reduce small buffers by halving and doubling and large
#     ones on the ring, right, over TCP and shared memory;
#   - bad options are named.
#   allreduce_train_test.sh PATH/TO/luoshu
set -u
luoshu=$1
tmp=$(mktemp -d)
pids_to_reap=()
cleanup() {
  for p in "${pids_to_reap[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

timeout 120 "$luoshu" gen criteo --rows 6000 --out "$tmp/train.tsv" --seed 3 >/dev/null || { echo "FAIL: gen"; exit 1; }
timeout 120 "$luoshu" gen criteo --rows 2000 --out "$tmp/test.tsv" --seed 3 --part 1 >/dev/null || { echo "FAIL: gen"; exit 1; }
cat >"$tmp/wd.yaml" <<YAML
model: {kind: wide_deep, embedding_dim: 8, hidden: [32, 16]}
data: {format: criteo, train: $tmp/train.tsv, test: $tmp/test.tsv, buckets: 50000}
optimizer: {kind: adagrad, lr: 0.05}
run: {epochs: 2, batch_size: 200, eval_batch_size: 1000, seed: 4, threads: 1}
YAML
run() { # name, then luoshu train arguments
  local name=$1
  shift
  timeout 250 "$luoshu" train "$tmp/wd.yaml" --quiet "$@" >"$tmp/$name.log" 2>&1 ||
    { echo "FAIL: $name run"; tail -30 "$tmp/$name.log"; exit 1; }
}
ar=(--strategy allreduce --workers 2 --job-timeout 240)
run local --summary-json "$tmp/local.json"
run ar "${ar[@]}" --summary-json "$tmp/ar.json"
run ar_small_buckets "${ar[@]}" --fusion-bytes 512 --summary-json "$tmp/ar_small.json"
# 4 workers: buckets up to 1 MiB are all-reduced by halving and doubling.
run ar4 --strategy allreduce --workers 4 --job-timeout 240 --summary-json "$tmp/ar4.json"
run ar_no_overlap "${ar[@]}" --no-overlap --summary-json "$tmp/ar_no_overlap.json"
run hybrid --strategy hybrid --servers 1 --workers 2 --job-timeout 240 --summary-json "$tmp/hybrid.json"
run first "${ar[@]}" --set run.epochs=1 --set run.checkpoint="$tmp/ckpt"
run resumed "${ar[@]}" --set run.resume="$tmp/ckpt" --summary-json "$tmp/resumed.json"
grep -q "^step $(( 6000 / 200 ))$" "$tmp/ckpt/job-state" || fail "checkpoint state: $(cat "$tmp/ckpt/job-state" 2>&1)"
grep -q "gradient all-reduce: 60 steps" "$tmp/ar.log" || fail "no gradient exchange report: $(tail -5 "$tmp/ar.log")"

python3 - "$tmp" <<'PY' || fails=$((fails + 1))
import json, sys
d = sys.argv[1]
j = {n: json.load(open(f"{d}/{n}.json")) for n in ("local", "ar", "ar_small", "ar4", "ar_no_overlap", "hybrid", "resumed")}
for k in ("test_loss", "test_auc", "test_log_loss"):
    if j["local"][k] is None:
        sys.exit(f"FAIL: {k} missing in the local run")
    for n in ("ar", "ar_small", "ar4", "ar_no_overlap", "hybrid"):
        if j[n][k] is None or abs(j[n][k] - j["local"][k]) > 1e-4:
            sys.exit(f"FAIL: {k}: {n} {j[n][k]} vs one process {j['local'][k]}")
    if abs(j["resumed"][k] - j["ar"][k]) > 1e-9:
        sys.exit(f"FAIL: {k}: resumed all-reduce run {j['resumed'][k]} vs uninterrupted {j['ar'][k]}")
if j["ar"]["steps"] != 60 or j["hybrid"]["steps"] != 60:
    sys.exit(f"FAIL: steps {j['ar']['steps']} / {j['hybrid']['steps']}, expected 60")
if [e["epoch"] for e in j["resumed"]["per_epoch"]] != [2]:
    sys.exit(f"FAIL: the resumed run trained epochs {[e['epoch'] for e in j['resumed']['per_epoch']]}, not only epoch 2")
print("ok: allreduce (3 bucket/overlap settings, 2 and 4 workers) and hybrid match one process; resume is exact")
PY

# Bad options are named.
timeout 60 "$luoshu" train "$tmp/wd.yaml" --strategy allreduce --workers 3 >"$tmp/bad.log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "not a multiple of 3 workers" "$tmp/bad.log"; then ok "a batch not divisible by the workers is named"
else fail "batch/workers: rc=$rc $(tail -3 "$tmp/bad.log")"; fi
timeout 60 "$luoshu" train "$tmp/wd.yaml" --strategy ring >"$tmp/bad2.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "strategy" "$tmp/bad2.log"; then ok "an unknown strategy is named"
else fail "unknown strategy: rc=$rc $(tail -3 "$tmp/bad2.log")"; fi

# A rank killed in the middle of collectives: the ranks of a standalone
# coordinator run all-reduces; rank 1 kills itself (SIGKILL) after its
# warm-up. The others must fail naming it, well within their timeouts.
killed_rank() { # world size, all-reduce size, what it exercises
  local world=$1 size=$2 what=$3
  timeout 120 "$luoshu" coordinator --world "$world" --host 127.0.0.1 --token t --port-file "$tmp/port$world" \
    --heartbeat-timeout 30 >"$tmp/coord$world.log" 2>&1 &
  pids_to_reap+=("$!")
  for _ in $(seq 100); do [ -s "$tmp/port$world" ] && break; sleep 0.1; done
  local port kids=() rcs=() r p named=0 bad=0 start took
  port=$(cat "$tmp/port$world" 2>/dev/null)
  start=$(date +%s)
  for r in $(seq 0 $((world - 1))); do
    LUOSHU_COORDINATOR=127.0.0.1:$port LUOSHU_TOKEN=t LUOSHU_RANK=$r LUOSHU_WORLD_SIZE=$world LUOSHU_NODE_NAME=rank$r \
      timeout 90 "$luoshu" bench allreduce --worker --sizes "$size" --iters 50 --die-rank 1 >"$tmp/k$world-$r.log" 2>&1 &
    kids+=("$!")
    pids_to_reap+=("$!")
  done
  for p in "${kids[@]}"; do wait "$p"; rcs+=("$?"); done
  took=$(( $(date +%s) - start ))
  for r in $(seq 0 $((world - 1))); do
    [ "$r" -eq 1 ] && continue
    if grep -qE "rank 1|rank1" "$tmp/k$world-$r.log"; then named=$((named + 1)); fi
    if [ "${rcs[$r]}" -eq 0 ] || [ "${rcs[$r]}" -eq 124 ]; then bad=$((bad + 1)); fi
  done
  if [ "${rcs[1]}" -eq 137 ] && [ $bad -eq 0 ] && [ $named -eq $((world - 1)) ] && [ $took -lt 60 ]; then
    ok "$what: a killed rank is named by all $named survivors in ${took} s: $(grep -ohE "collective.*" "$tmp/k$world-0.log" | head -1)"
  else
    fail "$what: killed rank: exit codes ${rcs[*]}, named by $named of $((world - 1)) survivors, ${took} s"
    for r in $(seq 0 $((world - 1))); do sed "s/^/    rank $r: /" "$tmp/k$world-$r.log" | tail -5; done
  fi
}
killed_rank 3 16M "ring"
killed_rank 4 64K "halving-doubling"

# Shared memory between processes on one host: `bench allreduce` runs 3
# ranks over TCP only and with shared-memory slots (256 KiB chunks, several
# per segment); with them, every rank's payloads must go through them (the
# smallest share over the ranks is reported) and both runs must be right.
before=$(ls /dev/shm | grep -c '^luoshu-' || true)
if timeout 120 "$luoshu" bench allreduce --ranks 3 --sizes 1M,3M --chunk-bytes 256K --no-baselines --overlap-rows 0 --iters 3 \
     --warmup 1 --json "$tmp/ar.json" >"$tmp/ar.log" 2>&1 &&
   python3 - "$tmp/ar.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
assert len(rows) == 2, rows
for r in rows:
    assert r["luoshu-tcp"]["correct"] and r["luoshu-shm"]["correct"], r
    assert r["luoshu-tcp"]["shm_fraction"] == 0, r
    assert r["luoshu-shm"]["shm_fraction"] > 0.5, r
PY
then
  after=$(ls /dev/shm | grep -c '^luoshu-' || true)
  if [ "$after" -le "$before" ]; then ok "3 ranks all-reduce through shared memory, nothing left in /dev/shm"
  else fail "shared memory: $((after - before)) objects left in /dev/shm"; fi
else
  fail "shared memory between processes: $(tail -5 "$tmp/ar.log")"
fi

# Halving and doubling across processes: 4 ranks all-reduce 256 KiB by it
# and 3 MiB on the ring (the default threshold is 1 MiB), right, over TCP
# and through shared memory (the pairs' payloads too).
if timeout 180 "$luoshu" bench allreduce --ranks 4 --sizes 256K,3M --no-baselines --overlap-rows 0 --iters 3 --warmup 1 \
     --json "$tmp/hd.json" >"$tmp/hd.log" 2>&1 &&
   python3 - "$tmp/hd.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
assert [r["bytes"] for r in rows] == [262144, 3145728], rows
for r, want in zip(rows, ("halving-doubling", "ring")):
    for impl in ("luoshu-tcp", "luoshu-shm"):
        assert r[impl]["correct"] and r[impl]["algorithm"] == want, (impl, r[impl])
    assert r["luoshu-shm"]["shm_fraction"] > 0.5, r
PY
then
  ok "4 ranks all-reduce 256 KiB by halving and doubling and 3 MiB on the ring, over TCP and shared memory"
else
  fail "halving-doubling between processes: $(tail -5 "$tmp/hd.log")"
fi

[ $fails -eq 0 ] || exit 1
