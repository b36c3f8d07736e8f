#!/usr/bin/env bash
# Data-parallel training through the parameter server as a real job: two
# server processes (one ps_shard each) and two worker processes, started by
# `luoshu launch` on loopback. With BSP the trained parameters equal those
# of one process training on whole batches (checksums within 1e-5
# relative); with ssp:2 the job finishes and no pull was staler than 2
# steps; a malformed consistency is named. Every run is bounded.
#   ps_job_test.sh PATH/TO/luoshu PATH/TO/ps_data_parallel
set -u
luoshu=$1
example=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$tmp/ps.yaml" <<YAML
coordinator: {host: 127.0.0.1, port: 0}
timeout: 240
nodes:
  - {host: localhost, role: server, count: 2}
  - {host: localhost, role: worker, count: 2}
YAML
steps=25
timeout 120 "$example" --steps $steps >"$tmp/single.log" 2>&1 || { echo "FAIL: single process"; cat "$tmp/single.log"; exit 1; }
timeout 250 "$luoshu" launch "$tmp/ps.yaml" -- "$example" --servers 2 --steps $steps >"$tmp/bsp.log" 2>&1 ||
  { echo "FAIL: BSP job"; tail -30 "$tmp/bsp.log"; exit 1; }
python3 - "$tmp/single.log" "$tmp/bsp.log" <<'PY' || fails=$((fails + 1))
import re, sys
def sums(path):
    out = {}
    for line in open(path):
        m = re.search(r"checksum (\S+) (\S+) (\S+)", line)
        if m: out[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return out
a, b = sums(sys.argv[1]), sums(sys.argv[2])
if set(a) != {"emb", "w1", "b1", "w2", "b2"} or set(b) != set(a):
    sys.exit(f"FAIL: checksums missing: single {sorted(a)}, job {sorted(b)}")
for k in a:
    (s1, q1), (s2, q2) = a[k], b[k]
    if abs(q1 - q2) > 1e-5 * max(1.0, abs(q1)) or abs(s1 - s2) > 1e-5 * max(1.0, q1 ** 0.5 * 10):
        sys.exit(f"FAIL: {k}: job (sum {s2}, sum of squares {q2}) vs one process ({s1}, {q1})")
print("ok: BSP with 2 servers and 2 workers ends where one process on whole batches ends:",
      ", ".join(f"{k} {b[k][1]:.6g}" for k in sorted(b)))
PY
grep -q "max staleness 0" "$tmp/bsp.log" || fail "BSP served a stale pull: $(grep 'max staleness' "$tmp/bsp.log")"

timeout 250 "$luoshu" launch "$tmp/ps.yaml" -- "$example" --servers 2 --steps $steps --consistency ssp:2 >"$tmp/ssp.log" 2>&1 ||
  { fail "SSP job"; tail -20 "$tmp/ssp.log"; }
st=$(grep -o "max staleness [0-9]*" "$tmp/ssp.log" | awk '{print $3}')
if [ -n "$st" ] && [ "$st" -le 2 ]; then echo "ok: ssp:2 job finished, max staleness $st"
else fail "ssp:2: max staleness '$st'"; fi

timeout 60 "$luoshu" launch "$tmp/ps.yaml" -- "$example" --servers 2 --steps 2 --consistency ssp:x >"$tmp/bad.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "consistency 'ssp:x': expected bsp, ssp:K" "$tmp/bad.log"; then echo "ok: a bad consistency is named"
else fail "bad consistency: rc=$rc"; tail -5 "$tmp/bad.log"; fi

if [ $fails -ne 0 ]; then echo "$fails parameter-server job check(s) failed"; exit 1; fi
echo "all parameter-server job checks passed"
