"""Per-click update time of featlib's ClickSegmenter at 512 x 512 vs scikit-image SLIC on the same image.

    python scripts/benchmark.py clicks [--quick] [--clicks 20] [--size 512] [--features lab|untrained-b0|CKPT]
Input: a BSDS500 val image (../shared) resized to size x size with its largest first-annotator segment as the object,
or a synthetic scene when ../shared is absent. Clicks follow the standard simulation protocol (20 clicks).
Measured after the one-off precompute (also reported): median wall time of ``add_click``; baseline: one
``skimage.segmentation.slic`` call (defaults) on the image, median of 3. Target: median click <= 0.4 x SLIC.
Both max-flow backends run when PyMaxflow is installed (their masks are compared too), each with the default
update's trust box around the click ("default"), the same with the first click standing for its segment ("lone",
``lone_click_segments=25``, an option: the precompute then includes the 25-segment partition), the box doubled up
to twice while a click's change reaches its side ("grow", ``grow=2``, an option), seeded trust regions
(``seed_segments=200``; the precompute includes the seeds' partition), a global cut on every click
(``reach=None``) and the source's own defaults ("source", ``Features.click_kwargs()``: since 2026-12-05 the learned
boundary map, whose network runs in the precompute, with ``lam`` 24, the capped growth and a lone first click's
25-segment partition). With ``--size`` above the source's working resolution (``max_side``, 512 for colour) a
"full-size" row adds the same defaults with the map and the partition computed at the image's own size.

Many objects (``featlib.multiclick.MultiClickSegmenter``): the same image with its 3 largest first-annotator segments
as objects 1-3 (the rest background; synthetic: the 3 largest objects). Multi-label run: one click per object at its
centre, then corrective clicks on the object of lowest IoU at the centre of its largest error region, labelled with
the ground truth there (``--multi-clicks``, default 21 = 7 per object). Binary baseline in the same run, with the
same features, settings (the source's ``click_kwargs``; "global": ``reach=None``) and backend: each object alone
with ``ClickSegmenter`` and the standard protocol, 7 clicks each (the same 21 updates, the same objects). Reported:
median and p90 update time of each, their ratio (target: multi-label median <= 2x binary), min cuts per multi-label
click and the objects' mean IoU at the end.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image
from skimage.segmentation import slic

from featlib import features as feature_registry
from featlib.data.bsds import load_bsds
from featlib.data.samples import bsds_samples
from featlib.data.synthetic import make_scene
from featlib.graphcut import maxflow_available
from featlib.interactive import ClickSegmenter, next_click, simulate_clicks
from featlib.metrics import iou
from featlib.multiclick import MultiClickSegmenter
from featlib.utils import shared_dir

# the binary update modes timed: name -> ClickSegmenter keywords
MODES = {"default": {}, "lone": {"lone_click_segments": 25}, "grow": {"grow": 2}, "seeded": {"seed_segments": 200},
         "global": {"reach": None}}

N_OBJECTS = 3  # objects of the multi-label row (the "e.g. 3 objects + background")


def test_image(size: int) -> tuple[np.ndarray, np.ndarray, str]:
    root = shared_dir()
    if root is not None and (root / "datasets" / "bsds500").is_dir():
        name, image, mask, _ = next(bsds_samples(root / "datasets" / "bsds500", 1))
        img = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
        return img, m, f"BSDS val {name}"
    sc = make_scene(np.random.default_rng(0), (size, size))
    return sc.image, max(sc.masks, key=lambda m: m.sum()), "synthetic scene"


def multi_gt(size: int) -> np.ndarray:
    """int32 [size, size]: the benchmark image's N_OBJECTS largest first-annotator segments (synthetic: objects) as
    labels 1..N by decreasing area, 0 elsewhere."""
    root = shared_dir()
    if root is not None and (root / "datasets" / "bsds500").is_dir():
        rec = next(iter(load_bsds(root / "datasets" / "bsds500", "val", limit=1)))
        seg = np.asarray(Image.fromarray(rec.segmentations[0].astype(np.int32)).resize((size, size), Image.NEAREST))
        parts = [seg == i for i in np.unique(seg)]
    else:
        parts = list(make_scene(np.random.default_rng(0), (size, size)).masks)
    gt = np.zeros((size, size), np.int32)
    for k, m in enumerate(sorted(parts, key=lambda m: -int(m.sum()))[:N_OBJECTS]):
        gt[m & (gt == 0)] = k + 1
    return gt


def multi_clicks(seg: MultiClickSegmenter, gt: np.ndarray, n_clicks: int) -> tuple[list[float], list[int], float]:
    """The multi-label run of the module docstring -> (update seconds per click, min cuts per click, mean IoU)."""
    n_obj = int(gt.max())
    seg.reset()
    lat, cuts = [], []
    for i in range(n_clicks):
        ious = [iou(seg.labels == k, gt == k) for k in range(1, n_obj + 1)]
        k = i + 1 if i < n_obj else int(np.argmin(ious)) + 1
        c = next_click(seg.labels == k, gt == k)
        if c is None:
            break
        seg.add_click(c[0], c[1], int(gt[c[0], c[1]]))
        lat.append(seg.last_update_s)
        cuts.append(seg.last_cuts)
    return lat, cuts, float(np.mean([iou(seg.labels == k, gt == k) for k in range(1, n_obj + 1)]))


def multi_rows(feats, image, backends, n_clicks: int, kwargs: dict) -> None:
    """Print the multi-label vs binary rows (module docstring)."""
    gt = multi_gt(image.shape[0])
    per_object = max(1, n_clicks // N_OBJECTS)
    print(f"\nmany objects: {int(gt.max())} objects + background; multi-label {n_clicks} clicks, binary baseline "
          f"{per_object} clicks on each object alone")
    print(f"{'backend':10s} {'update':8s} {'binary ms':>9s} {'p90':>6s} {'multi ms':>8s} {'p90':>6s} "
          f"{'multi / binary':>14s} {'cuts/click':>10s} {'IoU multi':>9s} {'IoU binary':>10s}")
    for b in backends:
        for mode, reach in (("default", kwargs.get("reach", 3.0)), ("global", None)):  # default: the source's reach
            kw = {**kwargs, "backend": b, "reach": reach}
            single = ClickSegmenter(feats, image, **kw)
            lat_b, iou_b = [], []
            for k in range(1, int(gt.max()) + 1):
                run = simulate_clicks(single, gt == k, n_clicks=per_object)
                lat_b += run.latency_s
                iou_b.append(run.ious[-1])
            lat_m, cuts, iou_m = multi_clicks(MultiClickSegmenter(feats, image, **kw), gt, n_clicks)
            mb, mm = float(np.median(lat_b)), float(np.median(lat_m))
            print(f"{b:10s} {mode:8s} {1000 * mb:9.1f} {1000 * np.percentile(lat_b, 90):6.1f} {1000 * mm:8.1f} "
                  f"{1000 * np.percentile(lat_m, 90):6.1f} {mm / mb:13.2f}x {np.mean(cuts):10.1f} {iou_m:9.3f} "
                  f"{np.mean(iou_b):10.3f}")
    print("target: multi-label median <= 2x binary (default update)")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py clicks")
    p.add_argument("--quick", action="store_true", help="128 x 128, 5 clicks")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--features", default="lab", help="a featlib.features spec: lab, untrained-b0, a checkpoint ...")
    p.add_argument("--multi-clicks", type=int, default=7 * N_OBJECTS, help="clicks of the multi-label run")
    a = p.parse_args(argv)
    size, n_clicks = (128, 5) if a.quick else (a.size, a.clicks)
    n_multi = 2 * N_OBJECTS if a.quick else a.multi_clicks
    if n_multi < N_OBJECTS:
        raise ValueError(f"--multi-clicks must be >= {N_OBJECTS} (one click per object), got {n_multi}")
    image, gt, source = test_image(size)
    slic_t = []
    for _ in range(1 if a.quick else 3):
        t0 = time.perf_counter()
        slic(image)
        slic_t.append(time.perf_counter() - t0)
    slic_s = float(np.median(slic_t))
    extractor = feature_registry.load(a.features)
    feats = extractor(image)
    print(f"image: {source}, {size}x{size}, features {a.features}; {n_clicks} simulated clicks")
    print(f"skimage SLIC (defaults): {1000 * slic_s:.1f} ms")
    backends = ["scipy"] + (["pymaxflow"] if maxflow_available() else [])
    masks = {}
    print(f"{'backend':10s} {'update':8s} {'precompute ms':>13s} {'median click ms':>15s} {'p90 ms':>7s} "
          f"{'ratio vs SLIC':>13s} {'final IoU':>9s}")
    modes = {**MODES, "source": extractor.click_kwargs()}  # the source's own defaults: the learned boundary map
    if modes["source"].get("max_side") and size > modes["source"]["max_side"]:  # a photo over the working size:
        modes["full-size"] = {**modes["source"], "max_side": None}  # the same, its map and partition at full size
    for b in backends:
        for mode, kw in modes.items():
            t0 = time.perf_counter()
            seg = ClickSegmenter(feats, image, backend=b, **kw)
            pre = time.perf_counter() - t0
            run = simulate_clicks(seg, gt, n_clicks=n_clicks)
            lat = np.asarray(run.latency_s)
            med = float(np.median(lat))
            masks[b, mode] = seg.mask.copy()
            print(f"{b:10s} {mode:8s} {1000 * pre:13.1f} {1000 * med:15.1f} {1000 * np.percentile(lat, 90):7.1f} "
                  f"{med / slic_s:12.3f}x {run.ious[-1]:9.3f}")
    if len(backends) == 2:
        for mode in modes:
            same = np.mean(masks["scipy", mode] == masks["pymaxflow", mode])
            print(f"scipy vs PyMaxflow final masks ({mode}): {100 * same:.2f} % pixels equal")
    else:
        print("PyMaxflow not installed: scipy backend only (pip install 'featlib[maxflow]')")
    print("target: median click <= 0.4x SLIC")
    multi_rows(feats, image, backends, n_multi, extractor.click_kwargs())
