"""Command-line options shared by the MLP baseline scripts."""
import argparse


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
