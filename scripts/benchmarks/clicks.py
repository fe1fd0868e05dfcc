"""Per-click update time of featlib's ClickSegmenter at 512 x 512 vs scikit-image SLIC on the same image.

    python scripts/benchmark.py clicks [--quick] [--clicks 20] [--size 512] [--features lab|untrained-b0|CKPT]
Input: a BSDS500 val image (../shared) resized to size x size with its largest first-annotator segment as the object,
or a synthetic scene when ../shared is absent. Clicks follow the standard simulation protocol (20 clicks).
Measured after the one-off precompute (also reported): median wall time of ``add_click``; baseline: one
``skimage.segmentation.slic`` call (defaults) on the image, median of 3. Target: median click <= 0.4 x SLIC.
Both max-flow backends run when PyMaxflow is installed (their masks are compared too), each with the default
trust-region update and with a global cut on every click (``reach=None``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image
from skimage.segmentation import slic

from featlib import features as feature_registry
from featlib.data.samples import bsds_samples
from featlib.data.synthetic import make_scene
from featlib.graphcut import maxflow_available
from featlib.interactive import ClickSegmenter, simulate_clicks
from featlib.utils import shared_dir


def test_image(size: int) -> tuple[np.ndarray, np.ndarray, str]:
    root = shared_dir()
    if root is not None and (root / "datasets" / "bsds500").is_dir():
        name, image, mask, _ = next(bsds_samples(root / "datasets" / "bsds500", 1))
        img = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
        return img, m, f"BSDS val {name}"
    sc = make_scene(np.random.default_rng(0), (size, size))
    return sc.image, max(sc.masks, key=lambda m: m.sum()), "synthetic scene"


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py clicks")
    p.add_argument("--quick", action="store_true", help="128 x 128, 5 clicks")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--features", default="lab", help="a featlib.features spec: lab, untrained-b0, a checkpoint ...")
    a = p.parse_args(argv)
    size, n_clicks = (128, 5) if a.quick else (a.size, a.clicks)
    image, gt, source = test_image(size)
    slic_t = []
    for _ in range(1 if a.quick else 3):
        t0 = time.perf_counter()
        slic(image)
        slic_t.append(time.perf_counter() - t0)
    slic_s = float(np.median(slic_t))
    feats = feature_registry.load(a.features)(image)
    print(f"image: {source}, {size}x{size}, features {a.features}; {n_clicks} simulated clicks")
    print(f"skimage SLIC (defaults): {1000 * slic_s:.1f} ms")
    backends = ["scipy"] + (["pymaxflow"] if maxflow_available() else [])
    masks = {}
    print(f"{'backend':10s} {'update':8s} {'precompute ms':>13s} {'median click ms':>15s} {'p90 ms':>7s} "
          f"{'ratio vs SLIC':>13s} {'final IoU':>9s}")
    for b in backends:
        # default: trust-region clicks (cut solved in a box around the click); global: every click cuts the whole graph
        for mode, reach in (("default", 3.0), ("global", None)):
            t0 = time.perf_counter()
            seg = ClickSegmenter(feats, image, backend=b, reach=reach)
            pre = time.perf_counter() - t0
            run = simulate_clicks(seg, gt, n_clicks=n_clicks)
            lat = np.asarray(run.latency_s)
            med = float(np.median(lat))
            masks[b, mode] = seg.mask.copy()
            print(f"{b:10s} {mode:8s} {1000 * pre:13.1f} {1000 * med:15.1f} {1000 * np.percentile(lat, 90):7.1f} "
                  f"{med / slic_s:12.3f}x {run.ious[-1]:9.3f}")
    if len(backends) == 2:
        for mode in ("default", "global"):
            same = np.mean(masks["scipy", mode] == masks["pymaxflow", mode])
            print(f"scipy vs PyMaxflow final masks ({mode}): {100 * same:.2f} % pixels equal")
    else:
        print("PyMaxflow not installed: scipy backend only (pip install 'featlib[maxflow]')")
    print("target: median click <= 0.4x SLIC")
