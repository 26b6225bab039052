#!/usr/bin/python3
"""Where a second-order MAML iteration spends its time in libtorch's own operators.

The bar configuration (conv4, 64 filters, stride-2 convolutions, batch norm with batch statistics,
Omniglot 28 px, 5-way 1-shot, 1 query per class, one inner step) transcribed into PyTorch, run
through the autograd profiler of Debian's python3-torch 1.13, which is the libtorch MetaRun links.
It shows libtorch's stock operators — what native/src/batchnorm.cpp and native/src/conv.cpp
replace — not MetaRun's own: a test-time cross-check, installed by scripts/setup.sh's test packages.

    scripts/profile-maml.py [--tasks 32] [--threads 2] [--first-order] [--iterations 3]

--tasks T runs T tasks side by side as execution: batched does (images as [N, T*C, H, W],
grouped convolutions, per-task batch norm); --tasks 1 is one task of the per-task mode.
"""
import argparse
import time

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--tasks", type=int, default=32)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--first-order", action="store_true")
parser.add_argument("--iterations", type=int, default=3)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

T, WAYS, FILTERS, SIDE = args.tasks, 5, 64, 28
params = []
channels = 1
for _ in range(4):
    params += [torch.randn(FILTERS, channels, 3, 3) * 0.1, torch.zeros(FILTERS), torch.ones(FILTERS), torch.zeros(FILTERS)]
    channels = FILTERS
params += [torch.randn(WAYS, FILTERS) * 0.1, torch.zeros(WAYS)]
params = [p.requires_grad_() for p in params]
support_x, query_x = torch.randn(T, WAYS, 1, SIDE, SIDE), torch.randn(T, WAYS, 1, SIDE, SIDE)
labels = torch.arange(WAYS).expand(T, -1).contiguous()


def per_task(weights):
    return [w if w.dim() > p.dim() else w.unsqueeze(0).expand(T, *p.shape) for w, p in zip(weights, params)]


def forward(x, w):
    n = x.size(1)
    h = x.transpose(0, 1).reshape(n, T * x.size(2), SIDE, SIDE)
    for b in range(4):
        kernel = w[4 * b]
        h = F.conv2d(h, kernel.reshape(T * FILTERS, kernel.size(2), 3, 3), w[4 * b + 1].reshape(T * FILTERS), stride=2, padding=1, groups=T)
        h = F.batch_norm(h, None, None, w[4 * b + 2].reshape(T * FILTERS), w[4 * b + 3].reshape(T * FILTERS), training=True).relu()
    features = h.mean([2, 3]).reshape(n, T, FILTERS).transpose(0, 1)
    return features.matmul(w[16].transpose(1, 2)) + w[17].unsqueeze(1)


def loss(output, target):
    return F.cross_entropy(output.reshape(-1, WAYS), target.reshape(-1), reduction="sum") / output.size(1)


def iteration():
    fast = per_task(params)
    grads = torch.autograd.grad(loss(forward(support_x, fast), labels), fast, create_graph=not args.first_order)
    fast = [w - 0.4 * g for w, g in zip(fast, grads)]
    return torch.autograd.grad(loss(forward(query_x, fast), labels) / T, params)


for _ in range(3):
    iteration()
times = []
for _ in range(10):
    start = time.perf_counter()
    iteration()
    times.append(time.perf_counter() - start)
print(f"{T} task(s) side by side on {args.threads} thread(s): median {sorted(times)[5]:.3f} s per iteration (10 timed after 3)")
with torch.profiler.profile() as profile:
    for _ in range(args.iterations):
        iteration()
print(f"operators over {args.iterations} iterations, by own time:")
print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
