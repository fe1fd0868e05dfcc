#!/usr/bin/env python
"""Evaluate unsupervised partitions on BSDS500 against every annotator.

    python scripts/evaluate_partitions.py --dataset bsds500 --root ../shared/datasets/bsds500 --split val \
        --method hierarchy,slic,felzenszwalb --features lab-smooth --output outputs/partitions/val.json

For each method a sweep of its granularity parameter (hierarchy: merge-height thresholds, one dataset-wide grid;
SLIC: segment counts; Felzenszwalb: scale) gives per-image covering / PRI / VI; ODS takes the best dataset-wide
setting, OIS the best setting per image (BSDS conventions; the hierarchy's region sweep and ODS / OIS are
featlib.evaluate's hierarchy_sweep / summarise_sweeps, which training validation runs too). ASA,
undersegmentation error and boundary recall are reported at matched segment counts.

The BSDS boundary benchmark (``featlib.boundaries``: thinned boundaries matched by correspondPixels within 0.0075 of
the diagonal; ODS F / OIS F / AP) scores the same sweeps: the hierarchy's UCM thresholded at the region sweep's
merge heights (featlib.evaluate.HIER_THRESHOLDS: heights are not in [0, 1], and one fixed dataset-wide grid keeps
ODS a single common threshold and each boundary map the boundaries of exactly a partition the region metrics score),
and each SLIC / Felzenszwalb setting's partition as one "threshold". For FeatureNet features the finest stride's
distance map (``pixel_strength``, already in [0, 1]: sigmoid features, distances / sqrt(C)) is scored as a soft edge
map at the benchmark's 99 thresholds. ``--no-boundary`` skips it (the matching dominates the run time).

Writes RESULT.json (top-level "ods", "ois" {covering, pri, vi}, "n_images" for the first method; every method under
"methods", with "boundary" {ods_f, ois_f, ap, pr_curve, ...}; the edge map under "distance_map") and RESULT.png
(covering vs number of segments, all methods).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import felzenszwalb, slic
from tqdm.auto import tqdm

from featlib import boundaries
from featlib import features as feature_registry
from featlib.data.bsds import bsds_ids, holdout_split, load_record
from featlib.distances import distance_mesh, resolve_mesh_weights
from featlib.evaluate import HIER_THRESHOLDS, hierarchy_partitions, hierarchy_settings, summarise_sweeps, sweep_scores
from featlib.graphcut import pixel_strength
from featlib.metrics import asa, boundary_prf, undersegmentation_error

SLIC_COUNTS = [8, 16, 32, 64, 128, 256, 512, 1024]
FH_SCALES = list(np.geomspace(20, 8000, 16))
MATCHED = [25, 50, 100, 200, 400]
# what each method's boundary P/R curve is swept over (the region sweep's settings)
SWEEP = {"hierarchy": HIER_THRESHOLDS, "slic": SLIC_COUNTS, "felzenszwalb": FH_SCALES}
# BSDS500 test set, boundary ODS F: Arbelaez et al. 2011 (Canny, Felzenszwalb-Huttenlocher, gPb-owt-ucm),
# Kirillov et al. 2023 (SAM, zero-shot edges), Su et al. 2021 (PiDiNet)
PUBLISHED_ODS_F = {"Canny": 0.60, "Felzenszwalb": 0.61, "gPb-owt-ucm": 0.73, "SAM zero-shot": 0.768, "PiDiNet": 0.80}


def _fh(img, scale):
    return felzenszwalb(img, scale=scale, sigma=0.8, min_size=20)


def _slic(img, n):
    return slic(img, n_segments=n, compactness=10, start_label=0)


_FEATURES: dict = {}  # spec -> featlib.features.Features, loaded once per worker process


def _features(spec: str) -> feature_registry.Features:
    if spec not in _FEATURES:
        torch.set_num_threads(1)  # one image per worker process: parallel over images, not inside them
        _FEATURES[spec] = feature_registry.load(spec)
    return _FEATURES[spec]


def distance_map(feats: dict, size: tuple[int, int]) -> np.ndarray:
    """The finest stride's distance map as a soft edge map float [H, W] in [0, 1] (max over a pixel's edges)."""
    s = min(feats)
    return np.clip(pixel_strength(distance_mesh(feats, mesh_weights={s: 1.0}, size=size)), 0, 1)


def evaluate_image(args) -> dict:
    """All methods on one image: per-setting (covering, pri, vi, n_segments), matched-count scores and, with
    ``boundary``, the boundary benchmark's counts [n_settings, 4] (the edge map's under "distance_map")."""
    root, split, image_id, methods, features, boundary, hier_kw = args
    rec = load_record(root, split, image_id)
    img, gts = rec.image, rec.segmentations
    out = {"id": image_id}
    for method in methods:
        t = time.perf_counter()
        if method == "hierarchy":
            feats = _features(features)(img)
            # the features' defaults (Features.hierarchy), then the command line's settings; the region sweep is
            # featlib.evaluate.hierarchy_sweep's two steps (training validation runs the same), timed apart
            kw = hierarchy_settings(_features(features), hier_kw)
            h, segs = hierarchy_partitions(feats, img.shape[:2], HIER_THRESHOLDS, **kw)
            matched = {n: h.partition(n_segments=n) for n in MATCHED}
        elif method == "slic":
            segs = [_slic(img, n) for n in SLIC_COUNTS]
            matched = {n: _slic(img, n) for n in MATCHED}
        else:
            segs = [_fh(img, s) for s in FH_SCALES]
            counts = [len(np.unique(s)) for s in segs]
            matched = {n: segs[int(np.argmin([abs(c - n) for c in counts]))] for n in MATCHED}
        seconds = time.perf_counter() - t
        sweep = sweep_scores(segs, gts)  # [n_settings, 4]: covering, PRI, VI, n_segments
        m = {}
        for n, s in matched.items():
            m[n] = {"n_segments": int(len(np.unique(s))), "asa": asa(s, gts), "ue": undersegmentation_error(s, gts),
                    "boundary_recall": boundary_prf(s, gts, tolerance=2)[1]}
        out[method] = {"sweep": sweep, "matched": m, "seconds": seconds}
        if boundary:
            t = time.perf_counter()
            if method == "hierarchy":
                counts = boundaries.ucm_counts(h.ucm(), rec.boundaries, HIER_THRESHOLDS)
            else:
                counts = boundaries.partition_counts(segs, rec.boundaries)
            out[method]["boundary"] = {"counts": counts.tolist(), "seconds": time.perf_counter() - t}
            if method == "hierarchy" and _features(features).model is not None:
                t = time.perf_counter()
                counts = boundaries.edge_counts(distance_map(feats, img.shape[:2]), rec.boundaries)
                out["distance_map"] = {"counts": counts.tolist(), "seconds": time.perf_counter() - t}
    return out


def summarise_boundary(entries: list[dict], thresholds) -> dict:
    """Per-image {"counts", "seconds"} -> ODS / OIS / AP and the dataset P/R curve, rounded like the rest."""
    s = boundaries.summarise([e["counts"] for e in entries], thresholds)
    s["pr_curve"] = {k: np.round(v, 4).tolist() for k, v in s["pr_curve"].items()}
    s["seconds_per_image"] = float(np.mean([e["seconds"] for e in entries]))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}


def summarise(results: list[dict], method: str) -> dict:
    sweep = np.array([r[method]["sweep"] for r in results])  # [n_images, n_settings, 4]
    regions = summarise_sweeps(sweep, digits=4)  # ODS / OIS as training validation computes them
    ods, ois = regions["ods"], regions["ois"]
    matched = {n: {k: round(float(np.mean([r[method]["matched"][n][k] for r in results])), 4)
                   for k in ("n_segments", "asa", "ue", "boundary_recall")} for n in MATCHED}
    return {"ods": ods, "ois": ois, "n_images": len(results),
            "per_setting": {"mean_segments": sweep[:, :, 3].mean(0).round(1).tolist(),
                            "covering": sweep[:, :, 0].mean(0).round(4).tolist(),
                            "pri": sweep[:, :, 1].mean(0).round(4).tolist(),
                            "vi": sweep[:, :, 2].mean(0).round(4).tolist()},
            "matched": matched,
            "seconds_per_image": round(float(np.mean([r[method]["seconds"] for r in results])), 3),
            **({"boundary": summarise_boundary([r[method]["boundary"] for r in results], SWEEP[method])}
               if "boundary" in results[0][method] else {})}


def plot(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: nothing to show or close, and no backend is chosen

    fig = Figure(figsize=(14, 3.6))
    ax = fig.subplots(1, 3)
    for method, s in summary["methods"].items():
        ps = s["per_setting"]
        for a, key in zip(ax, ("covering", "pri", "vi")):
            a.plot(ps["mean_segments"], ps[key], "o-", ms=3, label=f"{method} (ODS {s['ods'][key]:.3f})")
    for a, key in zip(ax, ("covering", "PRI", "VI (lower is better)")):
        a.set(xscale="log", xlabel="mean number of segments", title=key)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _bnd(s: dict) -> str:
    b = s.get("boundary")
    return f"{b['ods_f']:.3f} / {b['ois_f']:.3f} / {b['ap']:.3f}" if b else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="bsds500", choices=["bsds500"])
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--method", default="hierarchy,slic,felzenszwalb",
                   help="comma-separated: hierarchy, slic, felzenszwalb (the first is the JSON's top-level result)")
    p.add_argument("--features", default="lab-smooth",
                   help="hierarchy features: a registered name (featlib.features.names(); default lab-smooth, the "
                        "colour baseline: Lab smoothed by 1.5 px) or a model checkpoint")
    p.add_argument("--limit", type=int)
    p.add_argument("--holdout", type=int, default=0,
                   help="with --split train: score only the N train images a config's holdout=N keeps out of training "
                        "(featlib.data.bsds.holdout_split), the tuning set of the BSDS recipe")
    p.add_argument("--mesh-weights", default=None,
                   help="how the strides' distance meshes combine: equal (default), 1/s, finest, 'finest two', or "
                        "JSON {stride: weight}; colour features have one stride and ignore it")
    p.add_argument("--size-prior", type=float, help="hierarchy merge-cost size prior (default: build_hierarchy's)")
    p.add_argument("--contrast", type=float, help="hierarchy internal-contrast weight (default: build_hierarchy's)")
    p.add_argument("--seed-spacing", type=int, help="hierarchy watershed seed grid in px (default: build_hierarchy's)")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--output", default="outputs/partitions/result.json")
    p.add_argument("--no-boundary", action="store_true",
                   help="skip the BSDS boundary benchmark (ODS F / OIS F / AP; most of the run time)")
    a = p.parse_args(argv)
    methods = [m.strip() for m in a.method.split(",")]
    bad = [m for m in methods if m not in ("hierarchy", "slic", "felzenszwalb")]
    if bad:
        p.error(f"unknown method(s) {bad}")
    try:
        if a.holdout and a.split != "train":
            raise ValueError("--holdout selects held-out *train* images; use it with --split train")
        ids = bsds_ids(a.root, a.split)
        if a.holdout:
            ids = holdout_split(ids, a.holdout)[1]
        ids = ids[: a.limit]
        hier_kw = {k: v for k, v in (("size_prior", a.size_prior), ("contrast", a.contrast),
                                     ("seed_spacing", a.seed_spacing)) if v is not None}
        if a.mesh_weights is not None:
            resolve_mesh_weights(a.mesh_weights, [1, 2, 4, 8, 16])  # a bad name fails here, not in every worker
            hier_kw["mesh_weights"] = a.mesh_weights
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        feature_registry.load(a.features)  # fail here, with the valid names, not in every worker
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    jobs = [(a.root, a.split, i, methods, a.features, not a.no_boundary, hier_kw) for i in ids]
    with ProcessPoolExecutor(max_workers=max(1, a.workers)) as pool:
        results = list(tqdm(pool.map(evaluate_image, jobs), total=len(jobs), desc=f"BSDS500 {a.split}"))
    summary = {"methods": {m: summarise(results, m) for m in methods}, "features": a.features, "split": a.split,
               "holdout": a.holdout, "hierarchy": dict(hier_kw)}
    summary.update({k: summary["methods"][methods[0]][k] for k in ("ods", "ois", "n_images")})
    if "distance_map" in results[0]:
        summary["distance_map"] = {"boundary": summarise_boundary([r["distance_map"] for r in results],
                                                                  boundaries.bsds_thresholds())}
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    plot(summary, out.with_suffix(".png"))
    print(f"{'method':14s} {'cov ODS':>8s} {'cov OIS':>8s} {'PRI ODS':>8s} {'PRI OIS':>8s} {'VI ODS':>7s} "
          f"{'VI OIS':>7s} {'s/img':>6s}  bnd ODS F / OIS F / AP")
    for m, s in summary["methods"].items():
        print(f"{m:14s} {s['ods']['covering']:8.3f} {s['ois']['covering']:8.3f} {s['ods']['pri']:8.3f} "
              f"{s['ois']['pri']:8.3f} {s['ods']['vi']:7.3f} {s['ois']['vi']:7.3f} {s['seconds_per_image']:6.2f}  "
              f"{_bnd(s)}")
    if "distance_map" in summary:
        print(f"{'distance map':14s} {'':58s}  {_bnd(summary['distance_map'])}")
    if not a.no_boundary:
        print(f"\npublished boundary ODS F (BSDS500 test set; these runs: {a.split}): "
              + ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED_ODS_F.items()))
    print("\nat matched segment counts (ASA ↑ / UE ↓ / boundary recall ↑ at 2 px):")
    for m, s in summary["methods"].items():
        row = "  ".join(f"{n}: {v['asa']:.3f}/{v['ue']:.3f}/{v['boundary_recall']:.3f}"
                        for n, v in s["matched"].items())
        print(f"{m:14s} {row}")
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
