#!/usr/bin/env python3
"""PyTorch baseline for `luoshu bench mlp`.

Trains an MLP 784-256-256-10 (ReLU, softmax cross-entropy, SGD lr 0.01
momentum 0.9) on pre-generated random data (standard-normal features, random
int labels, --nbatches batches cycled), on the CPU. Runs --warmup untimed
steps, then times --steps steps with time.perf_counter and prints ONE JSON
line on stdout:
  {"framework":"pytorch","version":..,"samples_per_sec":..,"step_ms":..,
   "intra_threads":N,"interop_threads":N,"blas_threads":..,"final_loss":..}

Threads: --intra -> torch.set_num_threads, --interop ->
torch.set_num_interop_threads. OMP_NUM_THREADS / MKL_NUM_THREADS /
OPENBLAS_NUM_THREADS are read by the libraries at load time, so the caller
(run_baseline.py) sets them in the environment; they are only reported here.
Note: this torch build's intra-op pool is OpenMP and set_num_threads also sets
the OpenMP/MKL thread counts, so --intra usually overrides the environment.
"""
import time

import baseline_common

import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    a = baseline_common.parse(__doc__.splitlines()[0], "torch")

    if a.interop > 0:  # must precede any inter-op parallel work
        torch.set_num_interop_threads(a.interop)
    if a.intra > 0:
        torch.set_num_threads(a.intra)
    torch.manual_seed(a.seed)

    dev = torch.device("cpu")
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(),
                          nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = torch.randn(a.nbatches, a.batch, 784, device=dev)
    ys = torch.randint(0, 10, (a.nbatches, a.batch), device=dev)

    def step(i):
        k = i % a.nbatches
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs[k]), ys[k])
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(i)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(a.steps):
        loss = step(a.warmup + i)
    final_loss = loss.item()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0  # CPU seconds of all threads

    baseline_common.report("pytorch", torch.__version__, a, dt, cpu, torch.get_num_threads(),
                           torch.get_num_interop_threads(), final_loss,
                           ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"))


if __name__ == "__main__":
    main()
