#!/usr/bin/env python3
"""Writes an IDX image/label pair (MNIST, Fashion-MNIST; raw or .gz) as a
libsvm file, for the logistic and softmax regression examples:

  scripts/idx_to_libsvm.py IMAGES LABELS OUT [--binary CLASS]

Each image becomes one line "<label> <index>:<value> ..." with 1-based
feature indices in increasing order and pixel values scaled to [0, 1]; zero
pixels are left out (libsvm is sparse). With --binary CLASS the label is +1
for that class and -1 for every other (libsvm's usual binary labels);
without it the label is the class number. Standard library only.
"""
import argparse
import gzip
import struct
import sys


def open_idx(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path, want_dims):
    with open_idx(path) as f:
        data = f.read()
    if len(data) < 4:
        sys.exit(f"{path}: too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or ndim != want_dims:
        sys.exit(f"{path}: not an IDX file of unsigned bytes with {want_dims} dimensions")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    count = 1
    for d in dims:
        count *= d
    if len(body) != count:
        sys.exit(f"{path}: {len(body)} data bytes, the header promises {count}")
    return dims, body


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images")
    p.add_argument("labels")
    p.add_argument("out")
    p.add_argument("--binary", type=int, default=None, metavar="CLASS",
                   help="label +1 for CLASS, -1 for the others")
    a = p.parse_args()
    (n, h, w), pixels = read_idx(a.images, 3)
    (m,), labels = read_idx(a.labels, 1)
    if n != m:
        sys.exit(f"{a.images} holds {n} images but {a.labels} {m} labels")
    size = h * w
    with open(a.out, "w") as out:
        for i in range(n):
            row = pixels[i * size:(i + 1) * size]
            label = labels[i]
            if a.binary is not None:
                label = "+1" if label == a.binary else "-1"
            feats = " ".join(f"{j + 1}:{v / 255:.4g}" for j, v in enumerate(row) if v)
            out.write(f"{label} {feats}\n")
    print(f"wrote {n} examples with {size} features to {a.out}")


if __name__ == "__main__":
    main()
