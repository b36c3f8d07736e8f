#!/usr/bin/env bash
# Multi-process tests of the actor runtime on 127.0.0.1 with OS-chosen
# ports: joining, ranks, barriers, failure detection (a killed node, a hung
# node), token refusal, the launcher's clean stop. Every process is bounded
# by `timeout` and reaped; the script checks that no node outlives its job.
#   cluster_test.sh PATH/TO/luoshu
set -u
luoshu=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids_to_reap=()
cleanup() {
  for p in "${pids_to_reap[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# Waits (up to $2 s) until file $1 contains $3 matches of pattern $4.
wait_for() {
  local file=$1 secs=$2 n=$3 pat=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    local c
    c=$(grep -cE -- "$pat" "$file" 2>/dev/null)
    [ "${c:-0}" -ge "$n" ] && return 0
    sleep 0.1
  done
  return 1
}

# Node processes of a launcher started as `timeout ... luoshu launch`: the
# grandchildren of the timeout process.
node_pids() {
  local l
  for l in $(pgrep -P "$1"); do pgrep -P "$l"; done | tr '\n' ' '
}

no_orphans() { # $@: pids that must be gone
  local p
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null; then fail "process $p outlived its job"; kill -9 "$p"; fi
  done
}

# 1. Four nodes join, get distinct ranks, pass 100 barriers.
timeout 120 "$luoshu" launch --local 4 --timeout 90 -- "$luoshu" node --barriers 100 >"$tmp/t1.log" 2>&1
rc=$?
ranks=$(grep -oE "joined as rank [0-9]+ of 4" "$tmp/t1.log" | sort -u | wc -l)
passed=$(grep -cE "rank [0-9] passed 100 barrier" "$tmp/t1.log")
if [ $rc -eq 0 ] && [ "$ranks" -eq 4 ] && [ "$passed" -eq 4 ]; then ok "4 nodes, distinct ranks, 100 barriers"
else fail "4 nodes: rc=$rc ranks=$ranks passed=$passed"; sed 's/^/    /' "$tmp/t1.log" | tail -20; fi

# 2. A killed node is detected; the job exits non-zero naming it.
timeout 120 "$luoshu" launch --local 3 --timeout 90 -- "$luoshu" node --barriers 1000000 --sleep-ms 5 >"$tmp/t2.log" 2>&1 &
launcher=$!
pids_to_reap+=("$launcher")
if wait_for "$tmp/t2.log" 30 3 "joined as rank"; then
  kids=$(node_pids "$launcher")
  victim=$(echo "$kids" | awk '{print $2}')
  start=$(date +%s)
  kill -9 "$victim"
  wait "$launcher"; rc=$?
  took=$(( $(date +%s) - start ))
  if [ $rc -ne 0 ] && grep -qE "worker-[0-9].*(killed by signal|disconnected)" "$tmp/t2.log" && [ $took -le 20 ]; then
    ok "killed node reported in ${took}s: $(grep -oE 'error\] launch: .*' "$tmp/t2.log" | head -1)"
  else fail "killed node: rc=$rc took=${took}s"; tail -15 "$tmp/t2.log" | sed 's/^/    /'; fi
  no_orphans $kids
else fail "killed node: the nodes never joined"; tail -15 "$tmp/t2.log" | sed 's/^/    /'; fi

# 3. A hung node (stopped) misses heartbeats; the job stops naming it.
timeout 120 "$luoshu" launch --local 3 --timeout 90 --heartbeat-timeout 2 -- "$luoshu" node --barriers 1000000 --sleep-ms 5 >"$tmp/t3.log" 2>&1 &
launcher=$!
pids_to_reap+=("$launcher")
if wait_for "$tmp/t3.log" 30 3 "joined as rank"; then
  kids=$(node_pids "$launcher")
  victim=$(echo "$kids" | awk '{print $3}')
  kill -STOP "$victim"
  wait "$launcher"; rc=$?
  if [ $rc -ne 0 ] && grep -qE "worker-[0-9].*sent no heartbeat" "$tmp/t3.log"; then
    ok "hung node reported: $(grep -oE 'sent no heartbeat for [0-9.]+ s' "$tmp/t3.log" | head -1)"
  else fail "hung node: rc=$rc"; tail -15 "$tmp/t3.log" | sed 's/^/    /'; fi
  no_orphans $kids
else fail "hung node: the nodes never joined"; tail -15 "$tmp/t3.log" | sed 's/^/    /'; fi

# 4. A wrong token is refused; the right one joins.
timeout 60 "$luoshu" coordinator --world 1 --host 127.0.0.1 --token good-token --port-file "$tmp/port" >"$tmp/t4c.log" 2>&1 &
coord=$!
pids_to_reap+=("$coord")
if wait_for "$tmp/port" 20 1 "^[0-9]+$"; then
  port=$(cat "$tmp/port")
  LUOSHU_COORDINATOR=127.0.0.1:$port LUOSHU_TOKEN=bad-token timeout 30 "$luoshu" node >"$tmp/t4a.log" 2>&1
  rc_bad=$?
  LUOSHU_COORDINATOR=127.0.0.1:$port LUOSHU_TOKEN=good-token timeout 30 "$luoshu" node --barriers 3 >"$tmp/t4b.log" 2>&1
  rc_good=$?
  wait "$coord"; rc_coord=$?
  if [ $rc_bad -eq 2 ] && grep -q "refused this node: wrong cluster token" "$tmp/t4a.log" &&
     [ $rc_good -eq 0 ] && grep -q "joined as rank 0 of 1" "$tmp/t4b.log" && [ $rc_coord -eq 0 ]; then
    ok "wrong token refused, right token joined, coordinator finished"
  else fail "token: bad=$rc_bad good=$rc_good coordinator=$rc_coord"; cat "$tmp/t4a.log" "$tmp/t4b.log" "$tmp/t4c.log" | sed 's/^/    /' | tail -20; fi
else fail "token: the coordinator did not start"; cat "$tmp/t4c.log"; fi

# 5. Bad settings are named.
env -u LUOSHU_COORDINATOR timeout 10 "$luoshu" node >"$tmp/t5.log" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "LUOSHU_COORDINATOR is not set" "$tmp/t5.log"; then ok "missing LUOSHU_COORDINATOR named"
else fail "missing env: rc=$rc"; cat "$tmp/t5.log"; fi
LUOSHU_COORDINATOR=127.0.0.1:1 LUOSHU_TOKEN=x LUOSHU_RANK=abc timeout 10 "$luoshu" node >"$tmp/t5b.log" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "LUOSHU_RANK='abc'" "$tmp/t5b.log"; then ok "bad LUOSHU_RANK named"
else fail "bad rank: rc=$rc"; cat "$tmp/t5b.log"; fi

# 6. A failing application stops the job with its exit status.
timeout 60 "$luoshu" launch --local 2 --timeout 30 -- sh -c 'if [ "$LUOSHU_RANK" = 1 ]; then exit 3; fi; sleep 20' >"$tmp/t6.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "worker-1 (rank 1, pid [0-9]*) exited with status 3" "$tmp/t6.log"; then ok "failing app named with its status"
else fail "failing app: rc=$rc"; tail "$tmp/t6.log"; fi

# 7. Ctrl-C stops every node and leaves no orphans.
timeout 60 "$luoshu" launch --local 2 --timeout 50 -- "$luoshu" node --barriers 1000000 --sleep-ms 5 >"$tmp/t7.log" 2>&1 &
launcher=$!
pids_to_reap+=("$launcher")
if wait_for "$tmp/t7.log" 30 2 "joined as rank"; then
  kids=$(node_pids "$launcher")
  kill -INT "$launcher"
  wait "$launcher"; rc=$?
  if [ $rc -eq 130 ] && grep -q "interrupted" "$tmp/t7.log"; then ok "Ctrl-C stops the job (exit 130)"
  else fail "Ctrl-C: rc=$rc"; tail "$tmp/t7.log"; fi
  no_orphans $kids
else fail "Ctrl-C: nodes never joined"; fi

# 8. A cluster file, with a "remote" host reached through an ssh stand-in.
cat >"$tmp/cluster.yaml" <<YAML
coordinator: {host: 127.0.0.1, port: 0}
nodes:
  - {host: localhost, role: server}
  - {host: localhost, role: worker, count: 2}
  - {host: far-away-host, role: worker, ssh: "$here/fake_ssh.sh"}
YAML
timeout 120 "$luoshu" launch "$tmp/cluster.yaml" --timeout 90 -- "$luoshu" node --barriers 10 >"$tmp/t8.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "\[server-0\] server-0 joined as rank 0 of 4" "$tmp/t8.log" &&
   grep -q "\[worker-3\] worker-3 joined as rank 3 of 4" "$tmp/t8.log"; then ok "cluster YAML with an ssh-reached node"
else fail "cluster YAML: rc=$rc"; tail -20 "$tmp/t8.log" | sed 's/^/    /'; fi
printf 'nodes:\n  - {host: localhost, rol: worker}\n' >"$tmp/bad.yaml"
timeout 20 "$luoshu" launch "$tmp/bad.yaml" -- true >"$tmp/t8b.log" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "nodes\[0\].rol: is not a known key" "$tmp/t8b.log"; then ok "bad cluster file named"
else fail "bad cluster file: rc=$rc"; cat "$tmp/t8b.log"; fi

# 9. --bind-cores: each local node runs on its own share of the launcher's
# CPUs (as printed by the node's shell before it becomes the node).
ncpu=$(nproc)
timeout 60 "$luoshu" launch --local 2 --bind-cores --timeout 50 -- \
  sh -c 'echo "cpus $(grep Cpus_allowed_list /proc/self/status | cut -f2)"; exec "$0" node --barriers 1' "$luoshu" \
  >"$tmp/t9.log" 2>&1
rc=$?
c0=$(grep -oE "\[worker-0\] cpus [0-9,-]+" "$tmp/t9.log" | awk '{print $3}')
c1=$(grep -oE "\[worker-1\] cpus [0-9,-]+" "$tmp/t9.log" | awk '{print $3}')
if [ "$ncpu" -ge 2 ]; then
  if [ $rc -eq 0 ] && [ -n "$c0" ] && [ -n "$c1" ] && [ "$c0" != "$c1" ]; then ok "--bind-cores: worker-0 on $c0, worker-1 on $c1"
  else fail "--bind-cores: rc=$rc cpus '$c0' '$c1'"; tail -10 "$tmp/t9.log" | sed 's/^/    /'; fi
else
  if [ $rc -eq 0 ] && [ "$c0" = "$c1" ]; then ok "--bind-cores on one CPU: both nodes share it"
  else fail "--bind-cores on one CPU: rc=$rc cpus '$c0' '$c1'"; fi
fi

if [ $fails -ne 0 ]; then echo "$fails cluster check(s) failed"; exit 1; fi
echo "all cluster checks passed"
