"""MultiStrideLoss forward+backward vs a straightforward per-mask loop, same inputs, same process family.

    python scripts/benchmark.py loss [--quick]
B=4, 512x512, strides 1-16, K = 16 / 64 / 256 random overlapping rectangles with log-uniform sides (SA-1B-like:
most masks small). Peak memory: each measurement runs in a
fresh child process; we report its peak RSS minus the peak RSS of a child that only builds the inputs (so the
number is what the loss itself adds). Targets: >= 10x faster than the loop at K=64; time and memory ~linear in K.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch

from featlib.loss import MultiStrideLoss, downsample_masks

STRIDES = (1, 2, 4, 8, 16)


def make_inputs(b, size, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = {s: torch.rand(b, 3 * s * s, size // s, size // s, generator=g).requires_grad_() for s in STRIDES}
    # random overlapping rectangles with SA-1B-like sizes: sides log-uniform in [size/64, size/2] (area 0.02 %-25 %
    # of the image, most masks small, as SA-1B's object / part / sub-part masks are)
    masks = torch.zeros(b, k, size, size, dtype=torch.bool)
    for i in range(b):
        for j in range(k):
            lo, hi = torch.log(torch.tensor(size / 64.0)), torch.log(torch.tensor(size / 2.0))
            h, w = torch.exp(lo + (hi - lo) * torch.rand(2, generator=g)).int().clamp(min=2).tolist()
            y = torch.randint(0, size - h, (1,), generator=g).item()
            x = torch.randint(0, size - w, (1,), generator=g).item()
            masks[i, j, y:y + h, x:x + w] = True
    return feats, masks


def loop_loss(feats, masks, loss):
    """The obvious implementation: Python loops over strides, images and masks (same formulas, 'all' pairs)."""
    total = 0.0
    down = downsample_masks(masks, STRIDES)
    for s in STRIDES:
        dv, dd = loss.margins[s]
        unit = feats[s].shape[1] ** 0.5
        f = feats[s] / unit
        per_image = []
        for b in range(f.shape[0]):
            mus, pull = [], 0.0
            for k in range(masks.shape[1]):
                m = down[s][0][b, k]
                if m.sum() < loss.min_cells:
                    continue
                x = f[b][:, m]
                mu = x.mean(1)
                mus.append(mu)
                pull = pull + (torch.relu((x - mu[:, None]).norm(dim=0) - dv / unit) ** 2).mean()
            if not mus:  # no mask big enough at this stride: the image does not count (as in featlib)
                continue
            mu = torch.stack(mus)
            d = torch.cdist(mu, mu)
            c = len(mus)
            push = (torch.relu(2 * dd / unit - d) ** 2).fill_diagonal_(0).sum() / max(c * (c - 1), 1)
            per_image.append(pull / c + push + 0.001 * mu.norm(dim=1).mean())
        if per_image:
            total = total + loss.loss_weights[s] * torch.stack(per_image).mean()
    return total


def _child(method, b, size, k, repeats, q):
    torch.set_num_threads(2)

    feats, masks = make_inputs(b, size, k)
    loss = MultiStrideLoss(push_pairs="all")
    times = []
    if method != "inputs":
        for _ in range(repeats):
            t = time.perf_counter()
            out = loss(feats, masks).total if method == "featlib" else loop_loss(feats, masks, loss)
            out.backward()
            times.append(time.perf_counter() - t)
            for f in feats.values():
                f.grad = None
    q.put((min(times) if times else 0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(method, b, size, k, repeats):
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_child, args=(method, b, size, k, repeats, q))
    p.start()
    p.join()  # the child's result is two floats, so the queue never blocks the join
    if p.exitcode != 0:
        raise RuntimeError(f"benchmark child ({method}, K={k}) failed with exit code {p.exitcode}")
    return q.get(timeout=10)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py loss")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    b, size, ks, repeats = (1, 128, (4, 8), 1) if a.quick else (4, 512, (16, 64, 256), 3)
    print(f"B={b}, {size}x{size}, strides {STRIDES}; time = best of {repeats} fwd+bwd; memory = peak RSS above inputs")
    print(f"{'K':>5s} {'featlib (s)':>12s} {'loop (s)':>10s} {'speed-up':>9s} {'featlib MB':>11s} {'loop MB':>9s}")
    for k in ks:
        _, base = measure("inputs", b, size, k, 0)
        t_f, m_f = measure("featlib", b, size, k, repeats)
        t_l, m_l = measure("loop", b, size, k, repeats)
        print(f"{k:5d} {t_f:12.3f} {t_l:10.3f} {t_l / t_f:8.1f}x {m_f - base:11.0f} {m_l - base:9.0f}", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
