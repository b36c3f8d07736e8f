"""Options and the result line shared by the MLP baseline scripts."""
import argparse
import json
import math
import os


def parse(description, framework):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--intra", type=int, default=0, help=f"0 = {framework} default")
    p.add_argument("--interop", type=int, default=0, help=f"0 = {framework} default")
    p.add_argument("--nbatches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if min(a.steps, a.batch, a.nbatches) < 1 or a.warmup < 0:
        p.error("--steps, --batch, --nbatches must be >= 1, --warmup >= 0")
    return a


def report(framework, version, a, seconds, cpu_seconds, intra, interop, final_loss, blas_vars):
    """Prints the one JSON line run_baseline.py reads."""
    blas = next((os.environ[v] for v in blas_vars if os.environ.get(v)), None)
    print(json.dumps({
        "framework": framework, "version": version,
        "samples_per_sec": round(a.steps * a.batch / seconds, 1),
        "step_ms": round(1e3 * seconds / a.steps, 4),
        "intra_threads": intra,
        "interop_threads": interop,
        "blas_threads": int(blas) if blas and blas.isdigit() else None,
        "final_loss": round(final_loss, 6) if math.isfinite(final_loss) else None,
        "cpu_util": round(cpu_seconds / seconds, 2),  # ~ busy cores during timing
        "steps": a.steps, "warmup": a.warmup, "batch": a.batch,
    }), flush=True)
