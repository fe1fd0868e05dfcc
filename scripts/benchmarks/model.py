"""FeatureNet forward time vs the bare kornia EfficientViT backbone, same process, same input.

    python scripts/benchmark.py model [--quick] [--size 512] [--repeats 5]
Target: FeatureNet <= 1.5x the bare backbone for l0 at 512^2.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from featlib.model import build_model


def _time(fn, x, repeats: int) -> float:
    with torch.no_grad():
        fn(x)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py model")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    size, repeats = (128, 2) if a.quick else (a.size, a.repeats)
    print(f"threads={torch.get_num_threads()}  input 1x3x{size}x{size}  median of {repeats}")
    print(f"{'backbone':8s} {'FeatureNet (ms)':>16s} {'bare backbone (ms)':>19s} {'ratio':>7s}")
    for name in ("b0", "l0"):
        model = build_model(name).eval()
        x = torch.rand(1, 3, size, size)
        bare = lambda t, model=model: model.backbone((t - model.pixel_mean) / model.pixel_std)  # noqa: E731
        # interleaved rounds, best of each: both sides see the same drift in machine load
        t_bb, t_fn = float("inf"), float("inf")
        for _ in range(2):
            t_bb = min(t_bb, _time(bare, x, repeats))
            t_fn = min(t_fn, _time(model, x, repeats))
        print(f"{name:8s} {t_fn * 1e3:16.1f} {t_bb * 1e3:19.1f} {t_fn / t_bb:7.2f}x")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
