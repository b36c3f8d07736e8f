#!/usr/bin/env python3
"""PyTorch baseline for `luoshu bench zoo` (and `luoshu bench mlp`).

  zoo_torch.py --model {mlp,cnn,lstm,dlrm} [--steps S] [--warmup W]
               [--batch B] [--intra N] [--interop N]

Trains the model named by --model (see baseline_common.MODELS for the exact
shapes, optimizers and data) on pre-generated random batches (--nbatches,
cycled) on the CPU: --warmup untimed steps, then --steps timed steps
(time.perf_counter). Each step is zero_grad, forward, loss, backward,
optimizer step. Prints ONE JSON line (baseline_common.report) with
samples/s, the thread settings and the process's peak RSS.

Threads: --intra -> torch.set_num_threads, --interop ->
torch.set_num_interop_threads. OMP_NUM_THREADS / MKL_NUM_THREADS /
OPENBLAS_NUM_THREADS are read at load time, so run_baseline.py sets them.
"""
import time

import baseline_common

import torch
import torch.nn as nn
import torch.nn.functional as F


class LastStepLSTM(nn.Module):
    """nn.LSTM (batch first) with a linear head on the last step's output."""

    def __init__(self, m):
        super().__init__()
        self.lstm = nn.LSTM(m["input"], m["hidden"], batch_first=True)
        self.head = nn.Linear(m["hidden"], m["classes"])

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


class Dlrm(nn.Module):
    """One embedding table shared by the fields (sparse gradients), the
    fields' vectors concatenated with the dense features, an MLP."""

    def __init__(self, m):
        super().__init__()
        self.emb = nn.Embedding(m["rows"], m["dim"], sparse=True)
        nn.init.uniform_(self.emb.weight, -0.05, 0.05)
        widths = [m["fields"] * m["dim"] + m["dense"]] + m["hidden"]
        layers = []
        for i in range(len(widths) - 1):
            layers += [nn.Linear(widths[i], widths[i + 1]), nn.ReLU()]
        layers += [nn.Linear(widths[-1], 1)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, dense, ids):
        e = self.emb(ids).reshape(ids.shape[0], -1)
        return self.mlp(torch.cat([e, dense], dim=1)).reshape(-1)


def build(name, m):
    """(model, optimizer, loss(model, batch) -> tensor)"""
    if name == "mlp":
        layers, w = [], [m["input"]] + m["hidden"]
        for i in range(len(w) - 1):
            layers += [nn.Linear(w[i], w[i + 1]), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(w[-1], m["classes"]))
    elif name == "cnn":
        c = m["channels"]
        model = nn.Sequential(nn.Conv2d(1, c[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(c[1] * 7 * 7, m["fc"]), nn.ReLU(),
                              nn.Linear(m["fc"], m["classes"]))
    elif name == "lstm":
        model = LastStepLSTM(m)
    else:
        model = Dlrm(m)
    if m["optimizer"] == "adagrad":
        opt = torch.optim.Adagrad(model.parameters(), lr=m["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=m["lr"], momentum=m["momentum"])
    if name == "dlrm":
        def loss(b):
            return F.binary_cross_entropy_with_logits(model(b["dense"], b["ids"]), b["y"])
    else:
        def loss(b):
            return F.cross_entropy(model(b["x"]), b["y"])
    return model, opt, loss


def main():
    a = baseline_common.parse(__doc__.splitlines()[0], "torch")
    if a.interop > 0:  # must precede any inter-op parallel work
        torch.set_num_interop_threads(a.interop)
    if a.intra > 0:
        torch.set_num_threads(a.intra)
    torch.manual_seed(a.seed)
    m = baseline_common.MODELS[a.model]
    batches = [{k: torch.from_numpy(v) for k, v in b.items()}
               for b in baseline_common.batches(a)]
    model, opt, loss_of = build(a.model, m)

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(batches[i % len(batches)])
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
