#!/usr/bin/python3
"""Writes the handwritten digits that ship with scikit-learn (1797 8x8 images, 10 classes;
Debian: python3-sklearn) as a features data set for MetaRun, in each format it reads:
OUT/digits.csv (a 'label' column, then 64 pixel columns p0..p63 with values 0..16) and
OUT/digits.npy + OUT/digits.labels.npy. Rows keep scikit-learn's order."""
import csv
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)
digits = load_digits()
x = digits.data.astype(np.float32)
y = digits.target.astype(np.int64)
with open(os.path.join(out, "digits.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["label"] + [f"p{i}" for i in range(x.shape[1])])
    for row, label in zip(x, y):
        w.writerow([int(label)] + [f"{v:g}" for v in row])
np.save(os.path.join(out, "digits.npy"), x)
np.save(os.path.join(out, "digits.labels.npy"), y)
print(f"{len(y)} examples, {x.shape[1]} features, {len(set(y.tolist()))} classes -> {out}")
