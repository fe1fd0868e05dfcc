#!/usr/bin/env python
"""Standard click evaluation (RITM/SimpleClick protocol) of featlib's graph-cut ClickSegmenter.

    python scripts/evaluate_iis.py --dataset grabcut --root ../shared/fixtures/grabcut_sample --features lab
    python scripts/evaluate_iis.py --dataset berkeley --root data/Berkeley --features runs/x/model.pt --limit 20 \
        --output results/berkeley.json
    python scripts/evaluate_iis.py --dataset bsds --root ../shared/datasets/bsds500 --limit 30 --skip 8 --long-clicks 50

``--features``: a name of the features registry (``featlib.features.names()``: ``lab`` CIE Lab colour, ``untrained-b0``
random weights as a sanity baseline, ...) or a FeatureNet checkpoint (``model.pt`` or a run directory).
One run of ``max(--max-clicks, --long-clicks)`` clicks per object: NoC@85/90 from the first ``--max-clicks``
(``--max-clicks`` when never reached), mean IoU per click and IoU drops over the whole run.
Writes a JSON (top-level ``noc85``, ``noc90``, ``drops`` = clicks after which IoU fell, ``n_objects``; plus drop sizes,
``drops_over_0.01`` = clicks after which IoU fell by more than 0.01, both also per click index,
latency and per-object details) and a plot next to it (``.png``: mean IoU vs clicks, and per click how many objects
lost IoU), and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featlib import features as feature_registry  # noqa: E402
from featlib.data.bsds import bsds_ids, holdout_split  # noqa: E402
from featlib.data.iis import LAYOUTS, IISSample, load_iis  # noqa: E402
from featlib.data.samples import bsds_samples  # noqa: E402
from featlib.interactive import ClickSegmenter, simulate_clicks  # noqa: E402


def evaluate(dataset, features, max_clicks=20, long_clicks=100, progress=True, **seg_kwargs) -> dict:
    """Run the protocol on every object of ``dataset`` (IISDataset); returns the result dict written as JSON."""
    n_clicks = max(max_clicks, long_clicks)
    per_object, curves, latencies, precompute = [], [], [], []
    for sample in tqdm(dataset, total=len(dataset), desc="objects", disable=not progress):
        t0 = time.perf_counter()
        seg = ClickSegmenter(features(sample.image), sample.image, **seg_kwargs)
        precompute.append(time.perf_counter() - t0)
        run = simulate_clicks(seg, sample.mask, sample.ignore, n_clicks=n_clicks)
        drops = run.drops()
        curves.append(run.ious)
        latencies += run.latency_s
        per_object.append({"name": sample.name, "noc85": run.noc(0.85, max_clicks), "noc90": run.noc(0.90, max_clicks),
                           "iou@1": run.ious[0], "iou@5": run.ious[min(4, n_clicks - 1)], "drops": len(drops),
                           "max_drop": max(drops, default=0.0), "ious": [round(float(v), 5) for v in run.ious]})
    if not per_object:
        raise SystemExit("no objects found")
    curve = np.mean(np.asarray(curves), axis=0)
    all_drops = [o["drops"] for o in per_object]
    fall = np.zeros((len(curves), n_clicks))  # fall[i, k]: IoU lost by object i at click k + 1
    fall[:, 1:] = np.maximum(np.asarray(curves)[:, :-1] - np.asarray(curves)[:, 1:], 0)
    sizes = [float(d) for d in fall.ravel() if d > 1e-9]
    return {
        "noc85": float(np.mean([o["noc85"] for o in per_object])),
        "noc90": float(np.mean([o["noc90"] for o in per_object])),
        "drops": int(sum(all_drops)),
        "n_objects": len(per_object),
        "max_clicks": max_clicks,
        "n_clicks": n_clicks,
        "objects_with_drops": int(sum(d > 0 for d in all_drops)),
        "drops_over_0.01": int(sum(d > 0.01 for d in sizes)),
        "drop_size_mean": float(np.mean(sizes)) if sizes else 0.0,
        "drop_size_max": float(np.max(sizes)) if sizes else 0.0,
        "mean_iou_per_click": [float(v) for v in curve],
        "drops_per_click": [int(v) for v in (fall > 1e-9).sum(0)],
        "drops_over_0.01_per_click": [int(v) for v in (fall > 0.01).sum(0)],
        "latency_median_s": float(np.median(latencies)) if latencies else 0.0,
        "latency_p90_s": float(np.percentile(latencies, 90)) if latencies else 0.0,
        "precompute_median_s": float(np.median(precompute)),
        "objects": per_object,
    }


class _Lazy:
    """Items ``index`` of a lazy dataset, read one at a time."""

    def __init__(self, dataset, index):
        self.dataset, self.index = dataset, list(index)

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self):
        return (self.dataset[i] for i in self.index)


def plot_curve(result: dict, path: Path, label: str) -> None:
    # Imported on use (only runs with --output plot); no pyplot: nothing to show or close, and no backend is chosen.
    from matplotlib.figure import Figure

    c = result["mean_iou_per_click"]
    k = np.arange(1, len(c) + 1)
    fig = Figure(figsize=(11, 4))
    ax, bx = fig.subplots(1, 2)
    ax.plot(k, c, label=label)
    for t in (0.85, 0.9):
        ax.axhline(t, color="grey", lw=0.6, ls="--")
    ax.set(xlabel="clicks", ylabel="mean IoU", ylim=(0, 1), title=f"{result['n_objects']} objects")
    ax.legend()
    # Where the drops happen: per click index, how many objects lost IoU (small vs > 0.01).
    large = np.asarray(result["drops_over_0.01_per_click"])
    small = np.asarray(result["drops_per_click"]) - large
    bx.bar(k, small, color="tab:orange", label="drop <= 0.01")
    bx.bar(k, large, bottom=small, color="tab:red", label="drop > 0.01")
    bx.set(xlabel="click", ylabel="objects whose IoU fell", xlim=(0.5, len(c) + 0.5),
           title=f"{result['drops']} drops, {result['drops_over_0.01']} > 0.01")
    bx.yaxis.get_major_locator().set_params(integer=True)
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(LAYOUTS) + ["bsds"],
                   help="a RITM-layout benchmark, or bsds: per BSDS500 val image its largest 5-50 %% first-annotator "
                        "segment (--root = the BSDS500 folder with images/ and groundTruth/)")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--features", default="lab",
                   help=f"a registered name ({', '.join(feature_registry.names())}) or a model checkpoint")
    p.add_argument("--limit", type=int, default=None,
                   help="first N objects, before --skip (bsds: first N val images; those without a 5-50 %% "
                        "segment drop out)")
    p.add_argument("--skip", type=int, default=0, help="leave out the first N objects (e.g. those used for tuning)")
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument("--long-clicks", type=int, default=100,
                   help="length of the long run for IoU curve and drops (0: off)")
    p.add_argument("--region-spacing", type=int, default=4)
    p.add_argument("--reach", type=float, default=None,
                   help="trust-region factor (ClickSegmenter reach; 0: off; default: the features' own, 3 for Lab)")
    p.add_argument("--touch-up", type=float, default=None,
                   help="ClickSegmenter touch_up in px (0: off; default: the features' own, 4.5)")
    p.add_argument("--backend", default="auto", choices=["auto", "scipy", "pymaxflow"])
    p.add_argument("--split", default="val", choices=["train", "val", "test"], help="bsds: which BSDS500 split")
    p.add_argument("--holdout", type=int, default=0,
                   help="bsds, --split train: only the N train images a config's holdout=N keeps out of training "
                        "(featlib.data.bsds.holdout_split): the recipe's tuning objects")
    p.add_argument("--mesh-weights", default=None,
                   help="stride combination of unary and mesh: equal, 1/s, finest, 'finest two' or JSON {stride: w} "
                        "(default: the features' own, Features.click_kwargs)")
    p.add_argument("--output", type=Path, default=None, help="RESULT.json (the plot goes to RESULT.png)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.max_clicks < 1 or a.long_clicks < 0:
        p.error("--max-clicks must be >= 1 and --long-clicks >= 0")
    try:
        features = feature_registry.load(a.features)
    except ValueError as e:
        p.error(str(e))
    try:
        if a.dataset == "bsds":
            ids = None
            if a.holdout:
                if a.split != "train":
                    raise ValueError("--holdout selects held-out *train* images; use it with --split train")
                ids = holdout_split(bsds_ids(a.root, "train"), a.holdout)[1]
            ds = [IISSample(n, im, m, np.zeros(m.shape, bool))
                  for n, im, m, _ in bsds_samples(a.root, a.limit or 10**9, split=a.split, ids=ids)]
            ds = ds[a.skip:]
        else:
            full = load_iis(a.dataset, a.root, limit=a.limit)
            ds = _Lazy(full, range(a.skip, len(full)))
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    try:
        kw = features.click_kwargs(a.mesh_weights)
    except ValueError as e:
        p.error(str(e))
    kw.update(region_spacing=a.region_spacing, backend=a.backend)
    if a.reach is not None:
        kw["reach"] = a.reach or None
    if a.touch_up is not None:
        kw["touch_up"] = a.touch_up
    res = evaluate(ds, features, a.max_clicks, a.long_clicks, progress=not a.no_progress, **kw)
    mw = kw.get("mesh_weights")
    res.update(dataset=a.dataset, features=a.features, split=a.split, holdout=a.holdout,
               mesh_weights=None if mw is None else {str(k): v for k, v in mw.items()},
               settings={k: v for k, v in kw.items() if k != "mesh_weights"})
    c = res["mean_iou_per_click"]
    print(f"\n{'dataset':10s} {'features':14s} {'objects':>7s} {'NoC@85':>7s} {'NoC@90':>7s} {'IoU@1':>6s} "
          f"{'IoU@5':>6s} "
          f"{'IoU@20':>6s} {'drops':>6s} {'mean drop':>9s} {'ms/click':>8s}")
    print(f"{a.dataset:10s} {Path(a.features).name[:14]:14s} {res['n_objects']:7d} {res['noc85']:7.2f} "
          f"{res['noc90']:7.2f} "
          f"{c[0]:6.3f} {c[min(4, len(c) - 1)]:6.3f} {c[min(19, len(c) - 1)]:6.3f} {res['drops']:6d} "
          f"{res['drop_size_mean']:9.4f} {1000 * res['latency_median_s']:8.1f}")
    if a.output is not None:
        a.output.parent.mkdir(parents=True, exist_ok=True)
        a.output.write_text(json.dumps(res, indent=1))
        plot_curve(res, a.output.with_suffix(".png"), a.features)
        print(f"wrote {a.output} and {a.output.with_suffix('.png')}")
    return res


if __name__ == "__main__":
    main()
