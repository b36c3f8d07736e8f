#!/usr/bin/env bash
# OpenMPI's all-reduce algorithms over TCP, side by side with its default
# choice, in one run: what `luoshu bench allreduce`'s MPI TCP column is made
# of. Each of OpenMPI 4.1's tuned algorithms (1 basic linear, 2 reduce then
# broadcast, 3 recursive doubling, 4 ring, 5 segmented ring, 6 Rabenseifner
# = recursive halving and doubling) is forced in turn with
# `--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm
# N`; the rounds are interleaved (every algorithm once, then again) and the
# median round counts, as in `luoshu bench allreduce`.
#
#   apps/bench/baselines/mpi_algorithms.sh [RANKS [SIZES [ROUNDS]]]
#   e.g. apps/bench/baselines/mpi_algorithms.sh 4 1048576,16777216 3
#
# Prints, per size, bus bandwidth in GB/s (2(n-1)/n x bytes / median time)
# for the default and each algorithm. Needs mpicc and mpirun
# (scripts/setup-bench.sh installs them). Exit status 1 when a run fails.
set -euo pipefail
ranks=${1:-4}
sizes=${2:-1048576,16777216}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
command -v mpicc >/dev/null && command -v mpirun >/dev/null ||
  { echo "mpi_algorithms.sh: mpicc/mpirun not found (scripts/setup-bench.sh installs them)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpicc -O2 -o "$tmp/mpi_allreduce" "$here/mpi_allreduce.c"
algs=(default 1 2 3 4 5 6)
for round in $(seq "$rounds"); do
  for a in "${algs[@]}"; do
    extra=()
    [ "$a" = default ] || extra=(--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm "$a")
    timeout 600 mpirun --allow-run-as-root --oversubscribe -np "$ranks" --mca btl tcp,self --mca btl_tcp_if_include lo \
      "${extra[@]}" "$tmp/mpi_allreduce" --sizes "$sizes" --label "alg-$a" >>"$tmp/lines.jsonl" ||
      { echo "mpi_algorithms.sh: the run of algorithm $a failed" >&2; exit 1; }
  done
done
python3 - "$tmp/lines.jsonl" "$ranks" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = {"default": "default", "1": "linear", "2": "reduce+bcast", "3": "rec. doubling", "4": "ring",
         "5": "segmented ring", "6": "Rabenseifner"}
sizes = sorted({r["bytes"] for r in rows})
algs = list(dict.fromkeys(r["impl"][4:] for r in rows))
print(f"OpenMPI all-reduce over TCP, {sys.argv[2]} ranks, f32 sum in place, bus bandwidth GB/s "
      f"(median of the rounds' medians)")
print(f"{'size':>10} " + " ".join(f"{names[a]:>15}" for a in algs))
for s in sizes:
    cells = []
    for a in algs:
        v = [r["busbw_gbps"] for r in rows if r["bytes"] == s and r["impl"] == "alg-" + a]
        bad = any(not r["correct"] for r in rows if r["bytes"] == s and r["impl"] == "alg-" + a)
        cells.append(f"{statistics.median(v):15.3f}" if v and not bad else f"{'wrong' if bad else '-':>15}")
    print(f"{s / 2**20:>6.0f} MiB " + " ".join(cells))
PY
