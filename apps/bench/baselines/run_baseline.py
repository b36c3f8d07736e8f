#!/usr/bin/env python3
"""Driver for the `luoshu bench zoo` / `luoshu bench mlp` Python baselines.

  run_baseline.py {torch|tf} [--model mlp|cnn|lstm|dlrm] [--steps 200]
                  [--warmup 20] [--batch 0] [--quick] [--timeout 300]

Runs zoo_torch.py / zoo_tf.py (next to this file) with the same Python
executable, once per thread setting, each in a fresh subprocess (thread pools
and BLAS env vars are fixed at library load) with a timeout, and prints ONE
JSON line on stdout:
  {"framework":..,"version":..,"best":{<fastest run's JSON>},
   "tried":[{"intra":..,"blas":..,"samples_per_sec":..} | {..,"error":..}],
   "note":"which setting won"}
Grids (2-core target; two pools fighting over the cores can cost 2-6x):
  torch: intra (torch.set_num_threads) {1,2} x blas (OMP/MKL/OPENBLAS_NUM_THREADS) {1,2}, interop 1
  tf:    intra {1,2} x inter-op {1,2}, OMP/MKL/OPENBLAS_NUM_THREADS=1
--quick caps warmup/steps at 5/50 (same grid). Exit codes: 0 ok; 1 every run
failed; 2 framework not importable ({"framework":..,"error":"not installed: ..."}).
No dependencies beyond the standard library (the workers need torch/tensorflow).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FW = {  # cli name -> (framework name, module, worker script)
    "torch": ("pytorch", "torch", "zoo_torch.py"),
    "tf": ("tensorflow", "tensorflow", "zoo_tf.py"),
}


def child_env(blas):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(blas)
    return env


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def err_tail(text, n=300):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][-n:] if lines else "no output"


def main():
    p = argparse.ArgumentParser(description="Run a zoo baseline over a thread grid.")
    p.add_argument("framework", choices=sorted(FW))
    p.add_argument("--model", choices=("mlp", "cnn", "lstm", "dlrm"), default="mlp")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=0, help="0 = the model's batch")
    p.add_argument("--quick", action="store_true", help="warmup<=5, steps<=50")
    p.add_argument("--timeout", type=float, default=300, help="seconds per run")
    a = p.parse_args()
    if a.steps < 1 or a.batch < 0 or a.warmup < 0:
        p.error("--steps must be >= 1, --batch and --warmup >= 0")
    name, module, script = FW[a.framework]
    if a.quick:
        a.steps, a.warmup = min(a.steps, 50), min(a.warmup, 5)

    # Importable at all? (Also gives the version if every run fails later.)
    # Own timeout: a cold TensorFlow import can take a while.
    try:
        r = subprocess.run([sys.executable, "-c",
                            f"import {module} as m; print(m.__version__)"],
                           env=child_env(1), capture_output=True, text=True,
                           timeout=max(a.timeout, 120))
        version = (r.stdout.strip().splitlines() or [None])[-1]
        detail = None if r.returncode == 0 else err_tail(r.stderr)
    except subprocess.TimeoutExpired:
        version, detail = None, "import timed out"
    if detail:
        print(json.dumps({"framework": name, "detail": detail,
                          "error": "not installed: run scripts/setup-bench.sh"}))
        return 2

    if a.framework == "torch":
        grid = [(i, 1, b) for i in (1, 2) for b in (1, 2)]   # (intra, interop, blas)
    else:
        grid = [(i, j, 1) for i in (1, 2) for j in (1, 2)]
    base = [sys.executable, os.path.join(HERE, script), "--model", a.model, "--steps", str(a.steps),
            "--warmup", str(a.warmup), "--batch", str(a.batch)]

    tried, runs = [], []
    for intra, inter, blas in grid:
        rec = {"intra": intra, "interop": inter, "blas": blas}
        cmd = base + ["--intra", str(intra), "--interop", str(inter)]
        try:
            r = subprocess.run(cmd, env=child_env(blas), capture_output=True,
                               text=True, timeout=a.timeout)
            res = last_json(r.stdout) if r.returncode == 0 else None
            if res and res.get("samples_per_sec"):
                res["blas_threads"] = blas
                rec["samples_per_sec"] = res["samples_per_sec"]
                runs.append((res, rec))
            else:
                rec["error"] = f"exit {r.returncode}: " + err_tail(r.stderr or r.stdout)
        except subprocess.TimeoutExpired:
            rec["error"] = f"timeout after {a.timeout:g} s"
        tried.append(rec)

    out = {"framework": name, "version": version, "tried": tried}
    if not runs:  # no "best" key at all, so callers can test for it
        out["error"] = "every run failed"
        out["note"] = "no setting completed"
        print(json.dumps(out))
        return 1
    best, brec = max(runs, key=lambda t: t[0]["samples_per_sec"])
    worst = min(r[0]["samples_per_sec"] for r in runs)
    out = {"framework": name, "version": version, "best": best, "tried": tried}
    out["note"] = ("fastest: intra=%d interop=%d blas=%d (%.0f samples/s); "
                   "slowest setting was %.2fx slower"
                   % (brec["intra"], brec["interop"], brec["blas"],
                      best["samples_per_sec"], best["samples_per_sec"] / worst))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
