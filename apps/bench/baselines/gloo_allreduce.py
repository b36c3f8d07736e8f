#!/usr/bin/env python3
"""torch.distributed (gloo) baseline for `luoshu bench allreduce`.

  gloo_allreduce.py --ranks 2 [--sizes 1048576,16777216,134217728]
                    [--warmup 3] [--iters N] [--timeout 120] [--deadline 1800]

Starts --ranks processes from this script (torch.multiprocessing, spawn); they
join a gloo process group through init_method tcp://127.0.0.1:PORT (PORT: a
free port the launcher finds by binding to port 0). Unless GLOO_SOCKET_IFNAME
is set already it is set to "lo", so the traffic stays on loopback. Each rank
calls torch.set_num_threads(1).

Methodology (the same as Luoshu's own measurement and mpi_allreduce.c): f32
SUM all-reduce, in place, of bytes/4 floats. Per size, one correctness check
(each rank fills its tensor with rank+1; after one all-reduce every element
must be n(n+1)/2, on every rank), a refill with rank+1, --warmup untimed
iterations, then --iters timed ones, each preceded by dist.barrier(); an
iteration's time is the MAX over ranks of that rank's time.perf_counter()
(monotonic) elapsed time around dist.all_reduce, the max taken afterwards with
an all-reduce(MAX) outside the timing. Reported: median (mean of the two middle
values when --iters is even), min and mean iteration time, and
busbw = 2(n-1)/n * bytes / median in GB/s (1e9 bytes/s).
Defaults: --warmup 3; --iters 10 for sizes >= 64 MiB, 20 from 4 MiB, 100
below (short iterations vary the most).

Output: one JSON line per size on stdout, from rank 0 only:
  {"impl": "gloo", "ranks": 2, "bytes": 1048576, "median_s": .., "min_s": ..,
   "mean_s": .., "busbw_gbps": .., "correct": true, "iters": 20}
Every wait is bounded: --timeout (seconds) is the process group's timeout (its
rendezvous and each collective), --deadline the launcher's limit for the whole
run; on a failure or past the deadline the launcher kills the ranks.
Exit status: 0 ok; 1 a rank failed or the deadline passed; 2 bad arguments or
torch (with torch.distributed / gloo) not importable.
"""
import argparse
import datetime
import json
import os
import socket
import statistics
import sys
import time

LARGE_BYTES = 64 << 20  # sizes from here on default to 10 timed iterations
SMALL_BYTES = 4 << 20   # sizes below default to 100
DEFAULT_SIZES = "1048576,16777216,134217728"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2, help="number of processes (default 2)")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help="comma-separated byte counts, multiples of 4 (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations per size (default 3)")
    p.add_argument("--iters", type=int, default=None,
                   help="timed iterations per size (default 10 for sizes >= 64 MiB, 20 from 4 MiB, 100 below)")
    p.add_argument("--timeout", type=float, default=120,
                   help="process-group timeout in seconds: rendezvous and each collective (default 120)")
    p.add_argument("--deadline", type=float, default=1800,
                   help="launcher's limit in seconds for the whole run (default 1800)")
    a = p.parse_args()
    if not 1 <= a.ranks <= 256:
        p.error("--ranks must be in [1, 256]")
    if a.warmup < 0 or (a.iters is not None and a.iters < 1):
        p.error("--warmup must be >= 0 and --iters >= 1")
    if a.timeout <= 0 or a.deadline <= 0:
        p.error("--timeout and --deadline must be > 0")
    sizes = []
    for tok in a.sizes.split(","):
        tok = tok.strip()
        if not tok.isdigit() or int(tok) <= 0 or int(tok) % 4:
            p.error(f"--sizes: '{tok}' is not a positive multiple of 4 bytes")
        sizes.append(int(tok))
    a.sizes = sizes
    return a


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, a, port):
    """One rank. Raising here makes the launcher's join() fail and kill the others."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    n = a.ranks
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=n, timeout=datetime.timedelta(seconds=a.timeout))
    try:
        expected = n * (n + 1) / 2
        for nbytes in a.sizes:
            iters = a.iters or (10 if nbytes >= LARGE_BYTES else 20 if nbytes >= SMALL_BYTES else 100)
            t = torch.empty(nbytes // 4, dtype=torch.float32)

            # Correctness, once per size; "correct" only if every rank agrees.
            t.fill_(float(rank + 1))
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            ok = torch.tensor([1 if bool((t == expected).all()) else 0], dtype=torch.int32)
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)

            t.fill_(float(rank + 1))
            for _ in range(a.warmup):
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
            times = []
            dt = torch.zeros(1, dtype=torch.float64)
            for _ in range(iters):
                dist.barrier()
                t0 = time.perf_counter()
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
                elapsed = time.perf_counter() - t0
                dt[0] = elapsed
                dist.all_reduce(dt, op=dist.ReduceOp.MAX)
                times.append(float(dt[0]))

            if rank == 0:
                median = statistics.median(times)
                busbw = 2 * (n - 1) / n * nbytes / median / 1e9 if n > 1 and median > 0 else 0.0
                print(json.dumps({
                    "impl": "gloo", "ranks": n, "bytes": nbytes,
                    "median_s": float(f"{median:.9g}"),
                    "min_s": float(f"{min(times):.9g}"),
                    "mean_s": float(f"{statistics.fmean(times):.9g}"),
                    "busbw_gbps": round(busbw, 4),
                    "correct": bool(ok[0]),
                    "iters": iters,
                }), flush=True)
            del t
    finally:
        dist.destroy_process_group()


def kill_all(procs):
    for p in procs:
        if p.is_alive():
            p.terminate()
    end = time.monotonic() + 5
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)


def main():
    a = parse_args()
    try:
        import torch
        import torch.distributed as dist
        import torch.multiprocessing as mp
    except ImportError as e:
        print(f"gloo_allreduce: torch is not importable with {sys.executable}: {e}\n"
              "  (scripts/setup-bench.sh creates .venv-bench with it)", file=sys.stderr)
        return 2
    if not dist.is_available() or not dist.is_gloo_available():
        print(f"gloo_allreduce: torch {torch.__version__} has no torch.distributed gloo backend",
              file=sys.stderr)
        return 2

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    port = free_port()
    ctx = mp.start_processes(rank_main, args=(a, port), nprocs=a.ranks, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + a.deadline
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                print(f"gloo_allreduce: still running after --deadline {a.deadline:g} s; "
                      "killing the ranks", file=sys.stderr)
                return 1
    except Exception as e:  # a rank raised or died; join() already terminated the others
        print(f"gloo_allreduce: a rank failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gloo_allreduce: interrupted; killing the ranks", file=sys.stderr)
        return 1
    finally:
        kill_all(ctx.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
