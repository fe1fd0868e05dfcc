"""Hierarchy build and cut time vs scikit-image SLIC (~300 segments), same 512^2 image, same run.

    python scripts/benchmark.py partitions [--quick]
Targets: build <= 1x SLIC's time; a new cut <= 10 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from skimage import data
from skimage.segmentation import slic

from featlib.cluster import build_hierarchy, lab_hierarchy
from featlib.model import build_model


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t)
    return min(times), r


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py partitions")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    size, repeats = (128, 1) if a.quick else (512, 3)
    img = data.astronaut()[:size, :size] if size <= 512 else data.astronaut()
    with torch.no_grad():  # a FeatureNet(l0)-shaped feature dict for this image (untrained weights: same sizes)
        feats = {s: f[0].numpy() for s, f in build_model("l0").eval()(
            torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255).items()}
    t_slic, _ = best(lambda: slic(img, n_segments=300, compactness=10, start_label=0), repeats)
    t_lab, h = best(lambda: lab_hierarchy(img), repeats)
    t_feat, hf = best(lambda: build_hierarchy(feats, size=img.shape[:2]), repeats)
    cuts = []
    for n in (5, 20, 80, 300, 1000):
        t, _ = best(lambda n=n: h.partition(n_segments=n), 5)
        cuts.append(t)
    print(f"image {size}x{size}; best of {repeats}")
    print(f"  SLIC (300 segments)              {t_slic * 1e3:8.1f} ms   1.00x")
    print(f"  hierarchy build, Lab colour      {t_lab * 1e3:8.1f} ms   {t_lab / t_slic:.2f}x SLIC  "
          f"({h.n_regions} initial regions)")
    print(f"  hierarchy build, FeatureNet(l0)  {t_feat * 1e3:8.1f} ms   {t_feat / t_slic:.2f}x SLIC  "
          f"({hf.n_regions} initial regions)")
    print(f"  new cut (5..1000 segments)       {statistics.median(cuts) * 1e3:8.2f} ms median, "
          f"{max(cuts) * 1e3:.2f} ms max")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
