"""Hierarchy build and cut time vs scikit-image SLIC (~300 segments), same image, same run, one thread.

    python scripts/benchmark.py partitions [--quick]

Rows: the default grouping of colour features (``featlib.features.load("lab").hierarchy``: the learned boundary map of
``featlib.boundary_net`` on the histogram-gradient cues, thinned by non-maximum suppression, its watershed on the mean
of the image's map and the 2x-upsampled image's, its merge heights on those and the half-size image's map,
``features.SCALES["default"]``, without spectral globalisation), the default until 2026-12-04 (no 2x map: the
watershed on the image's map, the merging on it and the half-size map, ``SCALES["two-scale merge"]``), the fast option
(one scale throughout, ``SCALES["fast"]``), the same without the suppression (``nms=False``, one scale), both stages
on the 1 + 0.5 map (the accurate option until 2026-12-04; BSDS size only) and the
equal-weight histogram gradients + spectral globalisation (``cluster.gradient_hierarchy`` with ``boundary_map="chi2"``,
FeatureNet sources' default) on a BSDS-sized 481 x 321 crop and at 512^2; the shipped partitions model's whole build
(``features.load("bsds500-b0-all").hierarchy``: its forward pass, then the map that also reads its features, on
colour's scales, the 2x and half-size maps colour's, the merging also reading the regions' mean features; without
those (``region_weight=0``, its default until the twelfth session); its two-scale merge, the default until
2026-12-04; and one scale without NMS, its earlier default; BSDS size only); the fast grouping (neighbour-distance mesh,
``build_hierarchy``) on Lab and on FeatureNet(l0)-shaped features at 512^2. Targets: a default build <= 1 s per
481 x 321 image on one core (issue 20; met by the two-scale merge and the fast option, not the 2x default), the mesh
build <= 1x SLIC; a new cut <= 10 ms. Last, the kernel the default build spends most of its cue time in: Gaussian
filtering of a 25-bin stack at the BSDS size (``featlib.gaussian``'s banded block products vs ``scipy.ndimage``),
and (not with --quick) a large photo, the astronaut upscaled to 1500 x 2250: the default build, whose map is read at
the 512-px working resolution (``max_side``), without the 2x map at 512 px vs at full size (``max_side=0``), and the
histogram gradients + spectral at 512 px vs at full size, once each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from scipy import ndimage
from skimage import data
from skimage.segmentation import slic
from skimage.transform import resize

from featlib.cluster import build_hierarchy, gradient_hierarchy, lab_hierarchy
from featlib.features import SCALES
from featlib.features import load as load_features
from featlib.gaussian import gaussian_derivatives
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
    bsds = data.astronaut()[:321, :481] if not a.quick else img
    t_slic_b, _ = best(lambda: slic(bsds, n_segments=300, compactness=10, start_label=0), repeats)
    lab = load_features("lab")
    lab.hierarchy(img[:8, :8])  # load the boundary network once, outside the timings
    t_grad_b, hg = best(lambda: lab.hierarchy(bsds), repeats)
    t_two_b, _ = best(lambda: lab.hierarchy(bsds, **SCALES["two-scale merge"]), repeats)
    t_one_b, _ = best(lambda: lab.hierarchy(bsds, **SCALES["fast"]), repeats)
    t_nonms_b, _ = best(lambda: lab.hierarchy(bsds, nms=False, **SCALES["fast"]), repeats)
    t_acc_b, _ = best(lambda: lab.hierarchy(bsds, boundary_scales=(1.0, 0.5), merge_scales=(1.0, 0.5)), repeats)
    t_chi_b, _ = best(lambda: gradient_hierarchy(bsds, boundary_map="chi2", spectral=1.0), repeats)
    b0all = load_features("bsds500-b0-all")
    b0all.hierarchy(img[:32, :32])  # load its boundary network once, outside the timings
    t_b0_b, _ = best(lambda: b0all.hierarchy(bsds), repeats)
    t_b0plain_b, _ = best(lambda: b0all.hierarchy(bsds, region_weight=0.0), repeats)
    t_b0two_b, _ = best(lambda: b0all.hierarchy(bsds, **SCALES["two-scale merge"]), repeats)
    t_b0one_b, _ = best(lambda: b0all.hierarchy(bsds, nms=False, **SCALES["fast"]), repeats)
    t_slic, _ = best(lambda: slic(img, n_segments=300, compactness=10, start_label=0), repeats)
    t_grad, _ = best(lambda: lab.hierarchy(img), repeats)
    t_chi, _ = best(lambda: gradient_hierarchy(img, boundary_map="chi2", spectral=1.0), repeats)
    t_lab, h = best(lambda: lab_hierarchy(img), repeats)
    t_feat, hf = best(lambda: build_hierarchy(feats, size=img.shape[:2]), repeats)
    cuts, gcuts = [], []
    for n in (5, 20, 80, 300, 1000):
        cuts.append(best(lambda n=n: h.partition(n_segments=n), 5)[0])
        gcuts.append(best(lambda n=n: hg.partition(n_segments=n), 5)[0])
    hb, wb = bsds.shape[:2]

    def row(label, t, base, extra=""):
        print(f"  {label:<40} {t * 1e3:8.1f} ms   {t / base:5.2f}x SLIC  {extra}")

    def cut_row(ts):
        print(f"  {'new cut (5..1000 segments)':<40} {statistics.median(ts) * 1e3:8.2f} ms median, "
              f"{max(ts) * 1e3:.2f} ms max")

    print(f"image {hb}x{wb}; best of {repeats}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} "
          "(one core: 1)")
    row("SLIC (300 segments)", t_slic_b, t_slic_b)
    row("hierarchy, learned map (default)", t_grad_b, t_slic_b, f"({hg.n_regions} initial regions)")
    row("hierarchy, no 2x map (two-scale merge)", t_two_b, t_slic_b, "(the default until 2026-12-04)")
    row("hierarchy, learned map at one scale", t_one_b, t_slic_b, '(the fast option: SCALES["fast"])')
    row("hierarchy, one scale, without NMS", t_nonms_b, t_slic_b, "(the default until 2026-12-03, sixth session)")
    row("hierarchy, scales 1 + 0.5 for both stages", t_acc_b, t_slic_b, "(the accurate option until 2026-12-04)")
    row("hierarchy, chi2 gradients + spectral", t_chi_b, t_slic_b)
    row("bsds500-b0-all: forward + its learned map", t_b0_b, t_slic_b, "(the shipped partitions model; NMS, "
        "colour's scales, region means in the merging)")
    row("bsds500-b0-all without region means", t_b0plain_b, t_slic_b, "(its default until 2026-12-04, "
        "eleventh session: region_weight 0)")
    row("bsds500-b0-all, no 2x map (two-scale merge)", t_b0two_b, t_slic_b, "(its default until 2026-12-04)")
    row("bsds500-b0-all, one scale, without NMS", t_b0one_b, t_slic_b, "(its default until 2026-12-04, first session)")
    cut_row(gcuts)
    print(f"image {size}x{size}; best of {repeats}")
    row("SLIC (300 segments)", t_slic, t_slic)
    row("hierarchy, learned map (default)", t_grad, t_slic)
    row("hierarchy, chi2 gradients + spectral", t_chi, t_slic)
    row("hierarchy, mesh on Lab (fast)", t_lab, t_slic, f"({h.n_regions} initial regions)")
    row("hierarchy, mesh on FeatureNet(l0) (fast)", t_feat, t_slic, f"({hf.n_regions} initial regions)")
    cut_row(cuts)
    stack = np.random.default_rng(0).random((25, hb, wb)).astype(np.float32)
    print(f"Gaussian filters of a [25, {hb}, {wb}] float32 stack; best of {repeats}")
    for sigma, orders in ((1.5, ((0, 0),)), (2.5, ((0, 0),)), (2.5, ((0, 0), (1, 0), (0, 1)))):
        t_sp, _ = best(lambda s=sigma, oo=orders: [ndimage.gaussian_filter(stack, (0, s, s), order=(0, *o))
                                                   for o in oo], repeats)
        t_fl, _ = best(lambda s=sigma, oo=orders: gaussian_derivatives(stack, s, oo), repeats)
        label = f"sigma {sigma}, orders {', '.join(f'{a}{b}' for a, b in orders)}"
        print(f"  {label:<40} scipy {t_sp * 1e3:7.1f} ms   featlib.gaussian {t_fl * 1e3:7.1f} ms   "
              f"{t_sp / t_fl:4.2f}x faster")
    if not a.quick:
        big = (resize(data.astronaut(), (1500, 2250), order=3) * 255).round().astype(np.uint8)
        print("a 1500x2250 photo; once each")
        t_cap, h_cap = best(lambda: lab.hierarchy(big), 1)
        # at full size without the 2x map (a 2x map of this photo would be 3000 x 4500: ~4x the time and memory)
        t_two, _ = best(lambda: lab.hierarchy(big, **SCALES["two-scale merge"]), 1)
        t_full, h_full = best(lambda: lab.hierarchy(big, max_side=0, **SCALES["two-scale merge"]), 1)
        row("hierarchy, default (max_side 512)", t_cap, t_slic_b, f"({h_cap.n_regions} initial regions)")
        row("hierarchy, two-scale merge (max_side 512)", t_two, t_slic_b)
        row("hierarchy, two-scale merge, full size", t_full, t_slic_b,
            f"({h_full.n_regions} initial regions; {t_full / t_two:.1f}x the same at max_side 512)")
        chi2 = {"boundary_map": "chi2", "spectral": 1.0}  # FeatureNets' grouping (here without a feature cue)
        t_c, h_c = best(lambda: lab.hierarchy(big, **chi2), 1)
        t_cf, h_cf = best(lambda: lab.hierarchy(big, max_side=0, **chi2), 1)
        row("hierarchy, chi2 + spectral (max_side 512)", t_c, t_slic_b, f"({h_c.n_regions} initial regions)")
        row("hierarchy, chi2 + spectral, full size", t_cf, t_slic_b,
            f"({h_cf.n_regions} initial regions; {t_cf / t_c:.1f}x the same at max_side 512)")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
