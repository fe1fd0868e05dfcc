#!/usr/bin/env python
"""Evaluate unsupervised partitions on BSDS500 against every annotator.

    python scripts/evaluate_partitions.py --dataset bsds500 --root ../shared/datasets/bsds500 --split val \
        --method hierarchy,slic,felzenszwalb --features lab-smooth --output outputs/partitions/val.json

The hierarchy is the features' default grouping (``--grouping``: "gradients", a boundary map merged by mean
boundary strength -- for colour the learned map of featlib.boundary_net, its watershed on the mean of the image's
and the 2x-upsampled image's maps, its merging on those and the half-size image's (``--boundary-scales 1
--merge-scales 1,0.5`` the default until 2026-12-04, ~5x faster; ``--boundary-scales 1 --merge-scales 1`` one scale,
the fast option), ``--boundary-map chi2`` the equal-weight histogram gradients + spectral globalisation; for
bsds500-b0-all the merging also weighs how far apart two regions' mean features are, ``--region-weight``, 0 off --
the default partitions; "mesh", the fast grouping on neighbour
distances; settings in featlib.features.DEFAULTS). For each method a sweep of its granularity parameter
(hierarchy: merge-height thresholds, one dataset-wide grid per grouping; SLIC: segment counts; Felzenszwalb:
scale) gives per-image covering / PRI / VI; ODS takes the best dataset-wide setting, OIS the best setting per image
(BSDS conventions; the hierarchy's region sweep and ODS / OIS are
featlib.evaluate's hierarchy_sweep / summarise_sweeps, which training validation runs too). ASA,
undersegmentation error and boundary recall are reported at matched segment counts.

The BSDS boundary benchmark (``featlib.boundaries``: thinned boundaries matched by correspondPixels within 0.0075 of
the diagonal; ODS F / OIS F / AP) scores the same sweeps: the hierarchy's UCM thresholded at the region sweep's
merge heights (featlib.evaluate.THRESHOLDS[grouping]: heights are not in [0, 1], and one fixed dataset-wide grid keeps
ODS a single common threshold and each boundary map the boundaries of exactly a partition the region metrics score),
and each SLIC / Felzenszwalb setting's partition as one "threshold". ``--distance-map`` (opt-in) also scores
FeatureNet features' finest-stride distance map (``pixel_strength``, already in [0, 1]: sigmoid features, distances
/ sqrt(C)) as a soft edge map at the benchmark's 99 thresholds. ``--no-boundary`` skips the boundary benchmark.

How the boundary benchmark runs (it is most of the run time: correspondPixels, ~0.1-1 s per map and annotator):
- per image, each sweep's *distinct* thinned maps (a UCM's map only changes where a threshold crosses one of its
  levels; empty maps need no matching) become separate jobs, so ``--workers`` runs parallel over images AND maps;
- the matcher is seeded (``featlib.boundaries.MATCH_SEED``): the same map gives the same counts in any process and
  order, so results do not depend on ``--workers`` and counts are cached by content in ``boundary_cache.jsonl``
  beside RESULT.json (``--boundary-cache``): a map that any earlier run matched on the same image (SLIC and
  Felzenszwalb baselines always, the hierarchy's coarse maps across settings) is not matched again;
- each finished image is appended to RESULT.jsonl (a settings line, then one line per image): the same command after
  an interruption resumes where it stopped; a RESULT.jsonl of other settings is refused. ``--overwrite`` starts it
  afresh whatever its settings: pass it after changing code or a network file the per-image results depend on;
- ``--matcher lap`` (the same matching solved optimally: ~3.5x less CPU, ODS F within 1e-4 on BSDS500 val) and
  ``--matcher dt`` (APPROXIMATE distance-transform matching, F +0.03) are for tuning; the JSON records the matcher
  ("boundary_matcher") and reported numbers use bsds.

Command line (``featlib.cli``): RESULT.json is ``--output`` or, by default,
``outputs/partitions/<dataset>_<split>_<features>.json`` (first free -2, -3 ... suffix), printed at the end; an
existing --output is refused unless --overwrite; ``--workers N`` scores images in N processes (1: in this one);
bad arguments exit 2 with one line.

Writes RESULT.json (top-level "ods", "ois" {covering, pri, vi}, "best" {covering}, "n_images" for the first method;
VI in bits, covering pooled as the benchmark: featlib.evaluate; every method under "methods", with "boundary"
{ods_f, ois_f, ap, pr_curve, ...}; the edge map under "distance_map"), RESULT.jsonl (per image) and RESULT.png
(covering, PRI, VI vs number of segments, all methods).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import felzenszwalb, slic
from tqdm.auto import tqdm

from featlib import boundaries, boundary_runs, cli
from featlib import features as feature_registry
from featlib.boundary_net import check_scales
from featlib.data.bsds import bsds_ids, holdout_split, load_record, read_ground_truth
from featlib.distances import distance_mesh, resolve_mesh_weights
from featlib.evaluate import SWEEP_COLUMNS, THRESHOLDS, hierarchy_partitions, summarise_sweeps, sweep_scores
from featlib.graphcut import pixel_strength
from featlib.metrics import asa, boundary_prf, undersegmentation_error

SLIC_COUNTS = [8, 16, 32, 64, 128, 256, 512, 1024]
FH_SCALES = list(np.geomspace(20, 8000, 16))
MATCHED = [25, 50, 100, 200, 400]


def sweep_grids(grouping: str) -> dict:
    """What each method's region sweep and boundary P/R curve run over (the hierarchy: its grouping's grid)."""
    return {"hierarchy": THRESHOLDS[grouping], "slic": SLIC_COUNTS, "felzenszwalb": FH_SCALES}


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
    """Stage 1, one image: every method's region sweep [n_settings, 7] (``featlib.evaluate.SWEEP_COLUMNS``),
    matched-count scores and, with ``boundary``, the distinct thinned boundary maps its sweep needs matched
    ("boundary_work"; the learned distance map's under "distance_map" with ``distance``). ``run_images`` farms the
    maps out and replaces the work by counts [n_settings, 4]."""
    root, split, image_id, methods, features, boundary, hier_kw, *rest = args
    distance = bool(rest and rest[0])
    rec = load_record(root, split, image_id)
    img, gts = rec.image, rec.segmentations
    out = {"id": image_id}
    if boundary:
        out["gt"] = boundary_runs.gt_info(rec.boundaries)
    for method in methods:
        t = time.perf_counter()
        if method == "hierarchy":
            f = _features(features)
            feats = f(img)
            # the features' defaults (Features.hierarchy_settings), then the command line's settings; the region
            # sweep is featlib.evaluate.hierarchy_sweep's two steps (training validation runs the same), timed apart
            h, segs, grid = hierarchy_partitions(f, img, feats=feats, **hier_kw)
            matched = {n: h.partition(n_segments=n) for n in MATCHED}
        elif method == "slic":
            segs = [_slic(img, n) for n in SLIC_COUNTS]
            matched = {n: _slic(img, n) for n in MATCHED}
        else:
            segs = [_fh(img, s) for s in FH_SCALES]
            counts = [len(np.unique(s)) for s in segs]
            matched = {n: segs[int(np.argmin([abs(c - n) for c in counts]))] for n in MATCHED}
        seconds = time.perf_counter() - t
        m = {str(n): {"n_segments": int(len(np.unique(s))), "asa": asa(s, gts), "ue": undersegmentation_error(s, gts),
                      "boundary_recall": boundary_prf(s, gts, tolerance=2)[1]} for n, s in matched.items()}
        out[method] = {"sweep": sweep_scores(segs, gts).tolist(), "matched": m, "seconds": seconds}
        if boundary:
            t = time.perf_counter()
            maps = boundaries.ucm_maps(h.ucm(), grid) if method == "hierarchy" else \
                boundaries.partition_maps(segs)
            out[method]["boundary_work"] = boundary_runs.work(maps, time.perf_counter() - t)
            if method == "hierarchy" and distance and _features(features).model is not None:
                t = time.perf_counter()
                maps = boundaries.edge_maps(distance_map(feats, img.shape[:2]))
                out["distance_map"] = {"boundary_work": boundary_runs.work(maps, time.perf_counter() - t)}
    return out


_GT: dict = {}  # (root, split, id) -> annotators' boundaries, the last few images a matching worker saw


def match_map(job: tuple, packed: bytes, shape, matcher: str) -> tuple[list[int], float]:
    """Stage 2, one thinned boundary map of the image of ``job`` (``evaluate_image``'s) against all its annotators:
    (cntR, sumR, cntP, sumP) and the seconds it took (``featlib.boundaries.map_counts``, seeded: the same map always
    gives the same counts)."""
    root, split, image_id = job[:3]
    key = (str(root), split, image_id)
    if key not in _GT:
        if len(_GT) > 8:
            _GT.pop(next(iter(_GT)))
        _GT[key] = read_ground_truth(Path(root) / "groundTruth" / split / f"{image_id}.mat")[1]
    t = time.perf_counter()
    counts = boundaries.map_counts(boundary_runs.unpack(packed, shape), _GT[key], thin=False, matcher=matcher)
    return list(counts), time.perf_counter() - t


def summarise_boundary(entries: list[dict], thresholds) -> dict:
    """Per-image {"counts", "seconds"} -> ODS / OIS / AP and the dataset P/R curve, rounded like the rest."""
    s = boundaries.summarise([e["counts"] for e in entries], thresholds)
    s["pr_curve"] = {k: np.round(v, 4).tolist() for k, v in s["pr_curve"].items()}
    s["seconds_per_image"] = float(np.mean([e["seconds"] for e in entries]))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}


def summarise(results: list[dict], method: str, grids: dict) -> dict:
    sweep = np.array([r[method]["sweep"] for r in results])  # [n_images, n_settings, 7]
    regions = summarise_sweeps(sweep, digits=4)  # the benchmark's ODS / OIS, as training validation computes them
    col = {c: sweep[:, :, j] for j, c in enumerate(SWEEP_COLUMNS)}
    matched = {n: {k: round(float(np.mean([r[method]["matched"][str(n)][k] for r in results])), 4)
                   for k in ("n_segments", "asa", "ue", "boundary_recall")} for n in MATCHED}
    return {"ods": regions["ods"], "ois": regions["ois"], "best": regions["best"], "n_images": len(results),
            "per_setting": {"mean_segments": col["n_segments"].mean(0).round(1).tolist(),
                            "covering": (col["cover_overlap"].sum(0) / col["cover_area"].sum(0)).round(4).tolist(),
                            "pri": col["pri"].mean(0).round(4).tolist(), "vi": col["vi"].mean(0).round(4).tolist()},
            "matched": matched,
            "seconds_per_image": round(float(np.mean([r[method]["seconds"] for r in results])), 3),
            **({"boundary": summarise_boundary([r[method]["boundary"] for r in results], grids[method])}
               if "boundary" in results[0][method] else {})}


def plot(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: nothing to show or close, and no backend is chosen

    fig = Figure(figsize=(14, 3.6))
    ax = fig.subplots(1, 3)
    for method, s in summary["methods"].items():
        ps = s["per_setting"]
        for a, key in zip(ax, ("covering", "pri", "vi")):
            a.plot(ps["mean_segments"], ps[key], "o-", ms=3, label=f"{method} (ODS {s['ods'][key]:.3f})")
    for a, key in zip(ax, ("covering (pooled)", "PRI", "VI (bits, lower is better)")):
        a.set(xscale="log", xlabel="mean number of segments", title=key)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _bnd(s: dict) -> str:
    b = s.get("boundary")
    return f"{b['ods_f']:.3f} / {b['ois_f']:.3f} / {b['ap']:.3f}" if b else "-"


def _settings(a, methods: list[str], hier_kw: dict) -> dict:
    """What a run's per-image results depend on: a JSONL made with other settings is not resumed."""
    spec = Path(a.features)
    return {"root": str(Path(a.root).resolve()), "split": a.split, "methods": methods, "features": a.features,
            "features_file": [spec.stat().st_size, spec.stat().st_mtime] if spec.is_file() else None,
            "hierarchy": hier_kw, "boundary": not a.no_boundary, "distance_map": a.distance_map,
            "matcher": a.matcher, "match_seed": boundaries.MATCH_SEED, "max_dist": boundaries.MAX_DIST,
            "grids": {k: [float(v) for v in g] for k, g in sweep_grids(hier_kw["grouping"]).items()}}


def _run(a, jobs: list[tuple], ids: list[str], settings: dict, out: Path) -> list[dict]:
    """Every image's result: those RESULT.jsonl already holds (same settings), the rest computed and appended."""
    per_image = out.with_suffix(".jsonl")
    done = boundary_runs.resume(per_image, settings, a.overwrite)
    todo = [j for j in jobs if j[2] not in done]
    if done:
        print(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} images already in {per_image}", file=sys.stderr)
    cache = boundary_runs.CountsCache(None if a.boundary_cache == "none" else
                                      Path(a.boundary_cache or out.parent / "boundary_cache.jsonl"))
    pool = boundary_runs.InProcess() if a.workers == 1 else cli.process_pool(a.workers, evaluate_image)
    with pool, per_image.open("a") as f:
        for r in tqdm(boundary_runs.run_images(pool, todo, evaluate_image, match_map, a.matcher, cache,
                                               in_flight=2 * a.workers), total=len(todo), desc=f"BSDS500 {a.split}"):
            r = json.loads(json.dumps(r))  # as a resumed run reads it back
            f.write(json.dumps(r) + "\n")
            f.flush()
            done[r["id"]] = r
    return [done[i] for i in ids]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="bsds500", choices=["bsds500", "bsds"], help="bsds: deprecated alias")
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
    p.add_argument("--size-prior", type=float, help="hierarchy merge-cost size prior (default: the features')")
    p.add_argument("--contrast", type=float, help="mesh grouping: internal-contrast weight (default: the features')")
    p.add_argument("--seed-spacing", type=int, help="hierarchy watershed seed grid in px (default: the features')")
    p.add_argument("--grouping", choices=feature_registry.GROUPINGS, default=None,
                   help="gradients (histogram gradients + spectral, the default partitions) or mesh (neighbour "
                        "distances, the fast option); default: the features' (featlib.features.DEFAULTS)")
    p.add_argument("--spectral", type=float,
                   help="gradients grouping: spectral boundary weight (default: the features', 0 colour, 1 learned)")
    p.add_argument("--boundary-map", choices=("learned", "chi2"), default=None,
                   help="gradients grouping: learned (featlib.boundary_net, colour features' default) or chi2 (the "
                        "equal-weight histogram gradients, plus learned features as a cue: FeatureNets' default)")
    p.add_argument("--boundary-scales", default=None, metavar="S[,S...]",
                   help="gradients grouping, learned map: the watershed reads the map averaged over the image "
                        "resized by these factors, each in (0, 2] (default: the features', '1,2' for colour and "
                        "bsds500-b0-all; '1' with --merge-scales 1: the fast option, one scale throughout)")
    p.add_argument("--merge-scales", default=None, metavar="S[,S...]",
                   help="gradients grouping, learned map: the merge heights read the map averaged over these "
                        "factors while the watershed reads --boundary-scales' (default: the features', '1,0.5,2' "
                        "for colour and bsds500-b0-all)")
    p.add_argument("--nms", choices=("on", "off"), default=None,
                   help="gradients grouping, learned map: non-maximum suppression of the map before the watershed "
                        "and merging (featlib.boundary_net.suppress_nonmaxima; default: the features')")
    p.add_argument("--region-weight", type=float, default=None,
                   help="gradients grouping, FeatureNet sources: weight of the distance between two regions' mean "
                        "features in the merge cost (featlib.merging; default: the features', 4 for "
                        "bsds500-b0-all, 0 for the others; 0 turns it off)")
    p.add_argument("--boundary-net", default=None, metavar="PATH",
                   help="with the learned map: this network file (scripts/train_boundary.py), not the shipped one")
    cli.add_workers(p)
    cli.add_output(p, "outputs/partitions/<dataset>_<split>_<features>.json")
    p.add_argument("--no-boundary", action="store_true",
                   help="skip the BSDS boundary benchmark (ODS F / OIS F / AP; most of the run time)")
    p.add_argument("--distance-map", action="store_true",
                   help="also score learned features' finest-stride distance map as a soft edge map (99 thresholds; "
                        "off by default: as long again as the hierarchy's boundaries)")
    p.add_argument("--matcher", default="bsds", choices=boundaries.MATCHERS,
                   help="boundary matching: bsds (default, the benchmark's correspondPixels, seeded: report these), "
                        "lap (the same matching solved optimally, ~3.5x less CPU, F within 1e-4: tuning), dt "
                        "(APPROXIMATE, many-to-one distance-transform matching, ~25x less, F +0.03: quick tuning only)")
    p.add_argument("--boundary-cache", default=None,
                   help="JSONL of boundary counts by content, shared by runs (default: boundary_cache.jsonl beside "
                        "RESULT.json; 'none' to keep it in memory)")
    a = p.parse_args(argv)
    methods = [m.strip() for m in a.method.split(",")]
    bad = [m for m in methods if m not in ("hierarchy", "slic", "felzenszwalb")]
    if bad:
        p.error(f"unknown method(s) {bad}")
    try:
        dataset = cli.canonical_dataset(a.dataset)
        cli.check_workers(a.workers)
        if a.holdout and a.split != "train":
            raise ValueError("--holdout selects held-out *train* images; use it with --split train")
        ids = bsds_ids(a.root, a.split)
        if a.holdout:
            ids = holdout_split(ids, a.holdout)[1]
        ids = ids[: a.limit]
        hier_kw = {k: v for k, v in (("size_prior", a.size_prior), ("contrast", a.contrast),
                                     ("seed_spacing", a.seed_spacing), ("region_weight", a.region_weight))
                  if v is not None}
        if a.mesh_weights is not None:
            resolve_mesh_weights(a.mesh_weights, [1, 2, 4, 8, 16])  # a bad name fails here, not in every worker
            hier_kw["mesh_weights"] = a.mesh_weights
        if a.spectral is not None:
            hier_kw["spectral"] = a.spectral
        if a.boundary_map is not None:
            hier_kw["boundary_map"] = a.boundary_map
        for flag, key in (("--boundary-scales", "boundary_scales"), ("--merge-scales", "merge_scales")):
            if getattr(a, key) is not None:
                try:
                    scales = [float(v) for v in getattr(a, key).split(",")]
                except ValueError:
                    raise ValueError(f"{flag} takes numbers like 1,0.5, got {getattr(a, key)!r}") from None
                hier_kw[key] = list(check_scales(scales))
        if a.nms is not None:
            hier_kw["nms"] = a.nms == "on"
        if a.boundary_net is not None:
            if not Path(a.boundary_net).is_file():
                raise ValueError(f"--boundary-net: no file at {a.boundary_net}")
            hier_kw["boundary_net"] = str(Path(a.boundary_net).resolve())
        # the grouping and its settings, resolved once (a bad combination fails here, not in every worker)
        hier_kw["grouping"], _ = feature_registry.load(a.features).hierarchy_settings(a.grouping, **hier_kw)
        out = cli.result_path(a.output, Path("outputs/partitions") / f"{dataset}_{a.split}_{cli.slug(a.features)}.json",
                              a.overwrite)
    except (FileNotFoundError, ValueError) as e:
        return cli.fail(str(e))
    jobs = [(a.root, a.split, i, methods, a.features, not a.no_boundary, hier_kw, a.distance_map) for i in ids]
    t0 = time.perf_counter()
    try:
        results = _run(a, jobs, ids, _settings(a, methods, hier_kw), out)
    except ValueError as e:
        return cli.fail(str(e))
    grids = sweep_grids(hier_kw["grouping"])
    summary = {"methods": {m: summarise(results, m, grids) for m in methods}, "features": a.features, "split": a.split,
               "holdout": a.holdout, "hierarchy": dict(hier_kw), "units": {"vi": "bits"},
               "wall_seconds": round(time.perf_counter() - t0, 1)}
    summary.update({k: summary["methods"][methods[0]][k] for k in ("ods", "ois", "best", "n_images")})
    if not a.no_boundary:
        summary["boundary_matcher"] = {"matcher": a.matcher, "seed": boundaries.MATCH_SEED,
                                       "max_dist": boundaries.MAX_DIST, "exact": a.matcher == "bsds"}
    if "distance_map" in results[0]:
        summary["distance_map"] = {"boundary": summarise_boundary([r["distance_map"]["boundary"] for r in results],
                                                                  boundaries.bsds_thresholds())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    plot(summary, out.with_suffix(".png"))
    print(f"{'method':14s} {'cov ODS':>8s} {'cov OIS':>8s} {'PRI ODS':>8s} {'PRI OIS':>8s} {'VI ODS':>7s} "
          f"{'VI OIS':>7s} {'s/img':>6s}  bnd ODS F / OIS F / AP   (VI in bits)")
    for m, s in summary["methods"].items():
        print(f"{m:14s} {s['ods']['covering']:8.3f} {s['ois']['covering']:8.3f} {s['ods']['pri']:8.3f} "
              f"{s['ois']['pri']:8.3f} {s['ods']['vi']:7.3f} {s['ois']['vi']:7.3f} {s['seconds_per_image']:6.2f}  "
              f"{_bnd(s)}")
    if "distance_map" in summary:
        print(f"{'distance map':14s} {'':58s}  {_bnd(summary['distance_map'])}")
    if not a.no_boundary and a.matcher != "bsds":
        print(f"\nboundary scores by matcher={a.matcher}: NOT the benchmark's matching (tuning only; report bsds)")
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
