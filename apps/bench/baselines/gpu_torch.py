#!/usr/bin/env python3
"""PyTorch-on-GPU baselines for `luoshu bench gpu`.

  gpu_torch.py matmul --n N [--iters I] [--device D]
      f32 torch.mm of random n x n matrices with TF32 off, timed with CUDA
      events (best of 3 rounds of I calls after a warm-up); prints
      {"framework":"pytorch","version":..,"n":N,"tflops":..}
  gpu_torch.py sum --n N [--iters I] [--device D]
      x.sum().item() of N f32 values on the GPU, wall-clock per call (best of 3
      rounds); prints {"framework":"pytorch","version":..,"n":N,"gb_per_s":..}
  gpu_torch.py mlp --batch B [--steps S] [--warmup W] [--device D]
      MLP 784-256-256-10 (ReLU, softmax cross-entropy, SGD lr 0.01 momentum
      0.9) trained on 8 pre-made random batches in pinned host memory; each
      step copies its batch to the GPU and reads the loss back (.item()),
      as Luoshu's trainer does; prints
      {"framework":"pytorch","version":..,"batch":B,"samples_per_sec":..,"step_ms":..}
Prints one JSON line; {"framework":"pytorch","error":..} when it cannot run.
"""
import argparse
import json
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["matmul", "sum", "mlp"])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--device", type=int, default=0)
    a = p.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"framework": "pytorch", "error": f"not installed: {e}"}))
        return 2
    if not torch.cuda.is_available():
        print(json.dumps({"framework": "pytorch", "error": "torch sees no CUDA device"}))
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda", a.device)
    out = {"framework": "pytorch", "version": torch.__version__}
    if a.mode == "matmul":
        x = torch.rand(a.n, a.n, device=dev) - 0.5
        y = torch.rand(a.n, a.n, device=dev) - 0.5
        torch.mm(x, y)
        torch.cuda.synchronize(dev)
        best = None
        for _ in range(3):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            for _ in range(a.iters):
                torch.mm(x, y)
            e1.record()
            e1.synchronize()
            sec = e0.elapsed_time(e1) / 1000 / a.iters
            best = sec if best is None else min(best, sec)
        out.update(n=a.n, tflops=2 * a.n ** 3 / best / 1e12)
    elif a.mode == "sum":
        x = torch.full((a.n,), 0.5, device=dev)
        x.sum().item()
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(a.iters):
                x.sum().item()
            sec = (time.perf_counter() - t0) / a.iters
            best = sec if best is None else min(best, sec)
        out.update(n=a.n, gb_per_s=4 * a.n / best / 1e9)
    else:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10)).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xs = [(torch.rand(a.batch, 784) * 2 - 1).pin_memory() for _ in range(8)]
        ys = [torch.randint(0, 10, (a.batch,)).pin_memory() for _ in range(8)]

        def step(i):
            x = xs[i % 8].to(dev, non_blocking=True)
            y = ys[i % 8].to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        for i in range(a.warmup):
            step(i)
        t0 = time.perf_counter()
        for i in range(a.steps):
            loss = step(i)
        dt = time.perf_counter() - t0
        out.update(batch=a.batch, samples_per_sec=a.steps * a.batch / dt, step_ms=1000 * dt / a.steps,
                   final_loss=loss)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
