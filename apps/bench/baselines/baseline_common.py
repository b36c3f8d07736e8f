"""Models, data, options and the result line shared by the zoo baselines
(zoo_torch.py, zoo_tf.py). The shapes match apps/bench/zoo_bench.cpp.

Models (random data, pre-generated once as --nbatches batches, cycled):
  mlp   784-256-256-10 (ReLU), softmax cross-entropy, SGD lr 0.01 momentum
        0.9, batch 128; x ~ N(0, 1), labels uniform in [0, 10)
  cnn   conv5x5x32 (pad 2)-relu-maxpool2-conv5x5x64 (pad 2)-relu-maxpool2-
        fc1024-relu-fc10 on 1x28x28, SGD lr 0.01 momentum 0.9, batch 64
  lstm  LSTM input 64 -> hidden 128 over 32 steps, linear head (10) on the
        last step, SGD lr 0.01 momentum 0.9, batch 32
  dlrm  26 categorical fields (one id each, uniform over 10^6) into one
        10^6 x 16 embedding table, the 26 vectors concatenated with 13
        dense features, MLP 256-128-1 (ReLU), binary cross-entropy with
        logits, Adagrad lr 0.01 (sparse: touched embedding rows only),
        batch 1024
"""
import argparse
import json
import math
import os
import resource

import numpy as np

MODELS = {
    "mlp": {"batch": 128, "input": 784, "hidden": [256, 256], "classes": 10,
            "optimizer": "momentum", "lr": 0.01, "momentum": 0.9},
    "cnn": {"batch": 64, "channels": [32, 64], "fc": 1024, "classes": 10,
            "optimizer": "momentum", "lr": 0.01, "momentum": 0.9},
    "lstm": {"batch": 32, "input": 64, "hidden": 128, "seq": 32, "classes": 10,
             "optimizer": "momentum", "lr": 0.01, "momentum": 0.9},
    "dlrm": {"batch": 1024, "rows": 1_000_000, "dim": 16, "fields": 26, "dense": 13,
             "hidden": [256, 128], "optimizer": "adagrad", "lr": 0.01},
}


def parse(description, framework):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", choices=sorted(MODELS), default="mlp")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=0, help="0 = the model's batch")
    p.add_argument("--intra", type=int, default=0, help=f"0 = {framework} default")
    p.add_argument("--interop", type=int, default=0, help=f"0 = {framework} default")
    p.add_argument("--nbatches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.batch == 0:
        a.batch = MODELS[a.model]["batch"]
    if min(a.steps, a.batch, a.nbatches) < 1 or a.warmup < 0:
        p.error("--steps, --batch, --nbatches must be >= 1, --warmup >= 0")
    return a


def batches(a):
    """--nbatches batches of the model's random inputs as dicts of numpy
    arrays (f32 features, i64 ids/labels; dlrm labels are f32 0/1)."""
    m, rng, out = MODELS[a.model], np.random.default_rng(a.seed), []
    for _ in range(a.nbatches):
        if a.model == "dlrm":
            out.append({"dense": rng.standard_normal((a.batch, m["dense"]), dtype=np.float32),
                        "ids": rng.integers(0, m["rows"], (a.batch, m["fields"]), dtype=np.int64),
                        "y": rng.integers(0, 2, a.batch).astype(np.float32)})
            continue
        if a.model == "mlp":
            shape = (a.batch, m["input"])
        elif a.model == "cnn":
            shape = (a.batch, 1, 28, 28)
        else:
            shape = (a.batch, m["seq"], m["input"])
        out.append({"x": rng.standard_normal(shape, dtype=np.float32),
                    "y": rng.integers(0, m["classes"], a.batch, dtype=np.int64)})
    return out


def report(framework, version, a, seconds, cpu_seconds, intra, interop, final_loss, blas_vars):
    """Prints the one JSON line run_baseline.py reads."""
    blas = next((os.environ[v] for v in blas_vars if os.environ.get(v)), None)
    print(json.dumps({
        "framework": framework, "version": version, "model": a.model,
        "samples_per_sec": round(a.steps * a.batch / seconds, 1),
        "step_ms": round(1e3 * seconds / a.steps, 4),
        "intra_threads": intra,
        "interop_threads": interop,
        "blas_threads": int(blas) if blas and blas.isdigit() else None,
        "final_loss": round(final_loss, 6) if math.isfinite(final_loss) else None,
        "cpu_util": round(cpu_seconds / seconds, 2),  # ~ busy cores during timing
        # Peak resident set of this process (interpreter and framework included).
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": a.steps, "warmup": a.warmup, "batch": a.batch,
    }), flush=True)
