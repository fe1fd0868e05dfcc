#!/usr/bin/env python
"""Click evaluation of featlib's graph-cut ClickSegmenter: the centre protocol, stochastic and adversarial clickers,
robustness metrics, and whole-image multi-object annotation.

    python scripts/evaluate_iis.py --dataset grabcut --root ../shared/fixtures/grabcut_sample --features lab
    python scripts/evaluate_iis.py --dataset bsds500 --root ../shared/datasets/bsds500 --limit 30 --skip 8 \
        --clicker dt,jitter:10,worst:4,best:4 --seeds 3 --long-clicks 50
    python scripts/evaluate_iis.py --dataset bsds500 --root ../shared/datasets/bsds500 --multi --limit 10
    python scripts/evaluate_iis.py --dataset grabcut --root GC --features bsds500-b0 --compare outputs/iis/lab.json
    python scripts/evaluate_iis.py --compare A.json B.json          # no run: paired bootstrap of two results

``--features``: a name of the features registry (``featlib.features.names()``: ``lab`` CIE Lab colour,
``bsds500-b0`` the shipped clicks model, ``untrained-b0`` random weights, ...) or a FeatureNet checkpoint.
``--dataset``: a RITM-layout benchmark (grabcut, berkeley, davis) or ``bsds500`` (per BSDS500 image its largest
5-50 % first-annotator segment; ``bsds`` is a deprecated alias).

**Clickers** (``--clicker``, comma-separated; ``featlib.click_protocol``): ``center`` (deepest point of the larger
error region, RITM/SimpleClick), ``dt`` (∝ distance transform in that region), ``uniform``, ``jitter:S`` (centre
+ Gaussian of S px), ``worst:M`` / ``best:M`` (of M dt candidates, the one with the lowest / highest IoU next).
Stochastic clickers run ``--seeds`` times with common random numbers (seed, object name, click index), so two
feature sources see the same draws; ``center`` always runs too (once), for ``delta_sb``. Per object one run of
``max(--max-clicks, --long-clicks)`` clicks per clicker and seed: NoC@85/90/95 over the first ``--max-clicks``
(that number when never reached; 100-click regime: ``--max-clicks 100``), IoU curve and drops over the whole run.

**JSON** (``featlib.click_metrics`` defines every key): top level = the first clicker's summary (``noc85``,
``noc90``, ``noc95`` with ``_std`` over seeds and ``noc90_p10/p50/p90``, ``iou@1``, ``nsr_iou1`` (and
``nsr_iou1_ci95``, a bootstrap interval over objects), ``drops``,
``drops_over_0.01`` and its share of clicks, per click index too, ``never_falls``, ``clicks_honoured``,
``mean_iou_per_click``, ``objects``) plus ``delta_sb`` (its NoC@90 over the centre protocol's, %; ``delta_sb_ci95``:
its bootstrap 95 % interval over objects; per clicker in ``delta_sb_by_clicker`` / ``_ci95_by_clicker``), ``delta_gr``
(worst:M vs best:M, % ; when both ran), latency; every clicker under ``clickers``; with ``--compare OTHER.json`` a
paired bootstrap 95 % interval of the per-object NoC difference (this run - OTHER) under ``compare``. The plot beside
it (.png): mean IoU vs clicks per clicker, drops per click index, NoC@90 ± std per clicker.

**--oracle-annotator K** (bsds500 single objects; ``featlib.oracle_cues``): BSDS500 annotator K's segmentation of
each object's photo (K >= 1; annotator 0 drew the objects) also feeds the click graph (``--oracle-cues``: its borders
as the boundary map, its segments as the lone click's partition, an embedding of them as extra features): what a
second person's grouping would buy the segmenter, an upper bound for features (docs/CLICKS.md).

**--multi** (bsds500 only; ``featlib.multi_protocol``): objects = the ``--annotator``'s segments >= ``--min-area``
of the image; one click per object at its centre, then corrective clicks on the object with the lowest IoU, with
``MultiClickSegmenter``; JSON ``nci`` (clicks per image until every object reaches ``--multi-iou``, at most
``--max-clicks`` per object), ``nfo``, ``covering_per_click``; baseline ``nci_single`` / ``nfo_single``: the same
objects one at a time with the binary ``ClickSegmenter`` (centre protocol, same rule).

Command-line convention (``featlib.cli``): results go to ``--output`` or, by default, to
``outputs/iis/<dataset>_<features>_<clickers>.json`` (first free -2, -3 ... suffix), printed at the end; an
existing --output is refused unless --overwrite. ``--workers N`` evaluates objects (images with --multi) in N
processes with the same results as 1 (set OMP_NUM_THREADS=1 then). Bad arguments exit 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featlib import cli  # noqa: E402
from featlib import features as feature_registry  # noqa: E402
from featlib.click_eval import DEFAULT_SEEDS, Lazy, evaluate, evaluate_multi  # noqa: E402
from featlib.click_metrics import compare_results  # noqa: E402
from featlib.click_protocol import parse_clicker  # noqa: E402
from featlib.click_update import check_policy  # noqa: E402
from featlib.data.bsds import bsds_ids, holdout_split, load_record  # noqa: E402
from featlib.data.iis import LAYOUTS, IISSample, load_iis  # noqa: E402
from featlib.data.samples import bsds_samples  # noqa: E402
from featlib.multi_protocol import MIN_AREA, multi_objects  # noqa: E402
from featlib.oracle_cues import CUES  # noqa: E402
from featlib.region_graph import check_boundary_settings  # noqa: E402

# The update's count options: argparse dest (= ClickSegmenter keyword) -> the keyword's value that 0 stands for (off).
_COUNT_OPTIONS = {"seed_segments": None, "lone_click_segments": None, "grow": 0}


def plot(result: dict, path: Path, label: str) -> None:
    # Imported on use; no pyplot: nothing to show or close, and no backend is chosen.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4))
    ax, bx, cx = fig.subplots(1, 3)
    for spec, s in result["clickers"].items():
        c = s["mean_iou_per_click"]
        ax.plot(np.arange(1, len(c) + 1), c, label=spec, lw=2 if spec == result["clicker"] else 1)
    for t in (0.85, 0.9, 0.95):
        ax.axhline(t, color="grey", lw=0.6, ls="--")
    ax.set(xlabel="clicks", ylabel="mean IoU", ylim=(0, 1), title=f"{label}: {result['n_objects']} objects")
    ax.legend(fontsize=8)
    # Where the drops happen (first clicker, all seeds): per click index, how many trajectories lost IoU.
    large = np.asarray(result["drops_over_0.01_per_click"])
    small = np.asarray(result["drops_per_click"]) - large
    k = np.arange(1, len(large) + 1)
    bx.bar(k, small, color="tab:orange", label="drop <= 0.01")
    bx.bar(k, large, bottom=small, color="tab:red", label="drop > 0.01")
    bx.set(xlabel="click", ylabel="trajectories whose IoU fell", xlim=(0.5, len(k) + 0.5),
           title=f"{result['clicker']}: {result['drops']} drops, {result['drops_over_0.01']} > 0.01")
    bx.yaxis.get_major_locator().set_params(integer=True)
    bx.legend()
    specs = list(result["clickers"])
    cx.bar(specs, [result["clickers"][s]["noc90"] for s in specs],
           yerr=[result["clickers"][s]["noc90_std"] for s in specs], color="tab:blue", capsize=4)
    cx.axhline(result["clickers"]["center"]["noc90"], color="grey", lw=0.8, ls="--", label="center")
    gr = ", ".join(f"ΔGR (worst:{m} vs best:{m}) {v:.0f} %" for m, v in (result["delta_gr"] or {}).items())
    ci = result.get("delta_sb_ci95")
    ci = f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else ""
    cx.set(ylabel=f"NoC@90 (mean ± std over {result['n_seeds']} seeds)",
           title=f"ΔSB of {result['clicker']} {result['delta_sb']:+.1f} %{ci}" + (f"; {gr}" if gr else ""))
    cx.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _print(res: dict, features: str) -> None:
    print(f"\n{'clicker':10s} {'features':14s} {'obj':>4s} {'NoC@85':>7s} {'NoC@90':>13s} {'NoC@95':>7s} {'IoU@1':>6s} "
          f"{'NSR@1':>6s} {'dSB %':>6s} {'drops':>6s} {'>0.01 %':>7s} {'no fall':>7s} {'honour':>6s} {'ms':>5s}")
    for spec, s in res["clickers"].items():
        nsr = "-" if s["nsr_iou1"] is None else f"{s['nsr_iou1']:.1f}"
        dsb = res["delta_sb_by_clicker"].get(spec, 0.0)
        print(f"{spec:10s} {Path(features).name[:14]:14s} {s['n_objects']:4d} {s['noc85']:7.2f} "
              f"{s['noc90']:6.2f} ± {s['noc90_std']:4.2f} {s['noc95']:7.2f} {s['iou@1']:6.3f} {nsr:>6s} {dsb:6.1f} "
              f"{s['drops']:6d} {100 * s['drops_over_0.01_share']:7.2f} {s['never_falls']:7.2f} "
              f"{s['clicks_honoured']:6.2f} {1000 * res['latency_median_s']:5.1f}")
    intervals = [f"ΔSB {spec} [{lo:+.1f}, {hi:+.1f}] %" for spec, (lo, hi) in res["delta_sb_ci95_by_clicker"].items()]
    intervals += [f"nsr_iou1 {spec} [{s['nsr_iou1_ci95'][0]:.1f}, {s['nsr_iou1_ci95'][1]:.1f}]"
                  for spec, s in res["clickers"].items() if s["nsr_iou1_ci95"] is not None]
    if intervals:
        print("95 % intervals over objects (bootstrap): " + "; ".join(intervals))
    if res["delta_gr"]:
        print("delta_gr (worst vs best, %): " + ", ".join(f"M={m}: {v:.1f}" for m, v in res["delta_gr"].items()))


def _print_compare(cmp: dict, a: str, b: str) -> None:
    print(f"\npaired bootstrap, NoC@90 of {a} minus {b} (per object, 95 % interval):")
    for spec, c in cmp.items():
        d = c["noc90"]
        print(f"  {spec:10s} {d['mean_diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] over {d['n']} objects; "
              f"same first click in {100 * c['same_first_click']:.0f} % of trajectories")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(LAYOUTS) + ["bsds500", "bsds"],
                   help="a RITM-layout benchmark, or bsds500: per BSDS500 image its largest 5-50 %% first-annotator "
                        "segment (--root = the BSDS500 folder with images/ and groundTruth/; bsds: deprecated alias)")
    p.add_argument("--root", type=Path)
    p.add_argument("--features", default="lab",
                   help=f"a registered name ({', '.join(feature_registry.names())}) or a model checkpoint")
    p.add_argument("--limit", type=int, default=None,
                   help="first N objects, before --skip (bsds500: first N images; single-object mode drops those "
                        "without a 5-50 %% segment)")
    p.add_argument("--skip", type=int, default=0, help="leave out the first N objects (e.g. those used for tuning)")
    p.add_argument("--clicker", default="center", help="comma-separated clickers: center, dt, uniform, jitter:S, "
                                                       "worst:M, best:M (the first is the JSON's top level)")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="runs per stochastic clicker (center: 1)")
    p.add_argument("--max-clicks", type=int, default=20, help="NoC budget (--multi: clicks per object)")
    p.add_argument("--long-clicks", type=int, default=100,
                   help="length of the long run for IoU curve and drops (0: off)")
    p.add_argument("--multi", action="store_true", help="whole-image multi-object annotation (bsds500)")
    p.add_argument("--min-area", type=float, default=MIN_AREA, help="--multi: objects are segments >= this share")
    p.add_argument("--annotator", type=int, default=0, help="--multi: whose segmentation (0 = the first)")
    p.add_argument("--multi-iou", type=float, default=0.85, help="--multi: IoU every object must reach")
    p.add_argument("--region-spacing", type=int, default=4)
    p.add_argument("--reach", type=float, default=None,
                   help="trust-region factor (ClickSegmenter reach; 0: off; default: the features' own, 3 for Lab)")
    p.add_argument("--touch-up", type=float, default=None,
                   help="ClickSegmenter touch_up in px (0: off; default: the features' own, 3 for both sources)")
    p.add_argument("--touch-up-disc", type=float, default=None,
                   help="the touch-up disc's smallest radius in px (ClickSegmenter touch_up_disc; 0: the empty disc "
                        "of radius r; default: the features' own)")
    p.add_argument("--escalate-within", type=float, default=None,
                   help="a would-be touch-up click within this many px of an earlier click of its label gets a box "
                        "instead (ClickSegmenter escalate_within; 0: off; default: the features' own)")
    p.add_argument("--seed-segments", type=int, default=None,
                   help="segments of the partition that seeds the trust regions (ClickSegmenter seed_segments; "
                        "e.g. 200; default and 0: the click-centred box)")
    p.add_argument("--lone-click-segments", type=int, default=None,
                   help="an object's lone click stands for its segment in a partition into this many segments "
                        "(ClickSegmenter lone_click_segments, e.g. 25; default and 0: off)")
    p.add_argument("--grow", type=int, default=None,
                   help="box doublings while a click's applied change reaches its box's inner side (ClickSegmenter "
                        "grow, e.g. 2; default and 0: off)")
    p.add_argument("--grow-cap", type=float, default=None,
                   help="with --grow, keep a doubled box's change only while it is at most this many times the "
                        "click's own box's change (ClickSegmenter grow_cap, e.g. 2; default: no cap)")
    p.add_argument("--boundary-map", choices=["learned", "off"], default=None,
                   help="the click graph reads the learned boundary map (ClickSegmenter boundary_map) or not "
                        "(default: the features' own)")
    p.add_argument("--boundary-tau", type=float, default=None,
                   help="with a boundary map: Potts weights x exp(-p / TAU) (ClickSegmenter boundary_tau)")
    p.add_argument("--boundary-geo", type=float, default=None,
                   help="with a boundary map: geodesic steps + GEO x p (ClickSegmenter boundary_geo; 0: off)")
    p.add_argument("--click-hierarchy", choices=["gradients", "learned"], default=None,
                   help="the hierarchy whose cuts give --seed-segments' seeds and --lone-click-segments' segments "
                        "(ClickSegmenter hierarchy): the equal-weight histogram gradients, or colour's default "
                        "partitions on the learned boundary map (default: the features' own)")
    p.add_argument("--lam", type=float, default=None,
                   help="Potts weight (ClickSegmenter lam; default: the features' own)")
    p.add_argument("--oracle-annotator", type=int, default=None, metavar="K",
                   help="bsds500, single objects: BSDS500 annotator K's segmentation (K >= 1; annotator 0 drew the "
                        "objects) as the click graph's cues, an upper bound for better features (featlib.oracle_cues)")
    p.add_argument("--oracle-cues", default=",".join(CUES),
                   help="with --oracle-annotator: which cues, comma-separated subset of map, partition, features")
    p.add_argument("--backend", default="auto", choices=["auto", "scipy", "pymaxflow"])
    p.add_argument("--split", default="val", choices=["train", "val", "test"], help="bsds500: which BSDS500 split")
    p.add_argument("--holdout", type=int, default=0,
                   help="bsds500, --split train: only the N train images a config's holdout=N keeps out of training "
                        "(featlib.data.bsds.holdout_split): the recipe's tuning objects")
    p.add_argument("--mesh-weights", default=None,
                   help="stride combination of unary and mesh: equal, 1/s, finest, 'finest two' or JSON {stride: w} "
                        "(default: the features' own, Features.click_kwargs)")
    p.add_argument("--compare", type=Path, nargs="+", default=None, metavar="JSON",
                   help="OTHER.json: add a paired bootstrap of this run minus OTHER; A.json B.json: compare two "
                        "results without a run")
    cli.add_output(p, "outputs/iis/<dataset>_<features>_<clickers>.json")
    cli.add_workers(p)
    p.add_argument("--no-progress", action="store_true")
    return p


def _bsds_ids(a) -> list[str] | None:
    if not a.holdout:
        return None
    if a.split != "train":
        raise ValueError("--holdout selects held-out *train* images; use it with --split train")
    return holdout_split(bsds_ids(a.root, "train"), a.holdout)[1]


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    try:
        if a.compare and len(a.compare) > 2:
            raise ValueError("--compare takes OTHER.json, or A.json B.json")
        if a.compare and len(a.compare) == 2:
            ra, rb = (json.loads(Path(f).read_text()) for f in a.compare)
            _print_compare(compare_results(ra, rb), str(a.compare[0]), str(a.compare[1]))
            return 0
        if a.dataset is None or a.root is None:
            raise ValueError("--dataset and --root are required (unless --compare A.json B.json)")
        dataset = cli.canonical_dataset(a.dataset)
        clickers = [parse_clicker(c) for c in a.clicker.split(",") if c.strip()]
        if a.max_clicks < 1 or a.long_clicks < 0:
            raise ValueError("--max-clicks must be >= 1 and --long-clicks >= 0")
        cli.check_workers(a.workers)
        counts = {dest: getattr(a, dest) for dest in _COUNT_OPTIONS if getattr(a, dest) is not None}
        for dest, value in counts.items():
            if value < 0:
                raise ValueError(f"--{dest.replace('_', '-')} must be >= 0 (0: off), got {value}")
        if a.multi and dataset != "bsds500":
            raise ValueError("--multi needs --dataset bsds500 (whole-image annotations)")
        oracle = None
        if a.oracle_annotator is not None:
            if dataset != "bsds500" or a.multi:
                raise ValueError("--oracle-annotator needs --dataset bsds500 without --multi (another annotator of "
                                 "the same image)")
            if a.oracle_annotator < 1:
                raise ValueError(f"--oracle-annotator must be >= 1 (annotator 0 drew the objects), got "
                                 f"{a.oracle_annotator}")
            cues = tuple(c.strip() for c in a.oracle_cues.split(",") if c.strip())
            if not cues or set(cues) - set(CUES):
                raise ValueError(f"--oracle-cues must be a comma-separated subset of {','.join(CUES)}, got "
                                 f"{a.oracle_cues!r}")
            oracle = (a.root, a.split, a.oracle_annotator, cues)
        other = json.loads(a.compare[0].read_text()) if a.compare else None
        features = feature_registry.load(a.features)
        kw = features.click_kwargs(a.mesh_weights)
        kw.update(region_spacing=a.region_spacing, backend=a.backend)
        if a.reach is not None:
            kw["reach"] = a.reach or None
        if a.touch_up is not None:
            kw["touch_up"] = a.touch_up
        if a.touch_up_disc is not None:
            kw["touch_up_disc"] = a.touch_up_disc
        if a.escalate_within is not None:
            if not a.escalate_within >= 0:
                raise ValueError(f"--escalate-within must be >= 0 px (0: off), got {a.escalate_within}")
            kw["escalate_within"] = a.escalate_within
        check_policy(kw.get("reach"), kw.get("touch_up", 0.0), kw.get("touch_up_disc", 0.0))  # before any work
        if a.grow_cap is not None:
            if not a.grow_cap >= 1:
                raise ValueError(f"--grow-cap must be >= 1 (inf: no cap), got {a.grow_cap}")
            kw["grow_cap"] = a.grow_cap
        kw.update({dest: value or _COUNT_OPTIONS[dest] for dest, value in counts.items()})
        if a.boundary_map is not None:
            kw["boundary_map"] = a.boundary_map
        if a.click_hierarchy is not None:
            learned = feature_registry.DEFAULTS["colour"]["gradients"]  # colour's partitions
            kw["hierarchy"] = None if a.click_hierarchy == "gradients" else dict(learned)
        kw.update({k: v for k, v in (("boundary_tau", a.boundary_tau), ("boundary_geo", a.boundary_geo),
                                     ("lam", a.lam)) if v is not None})
        check_boundary_settings(kw.get("boundary_tau"), kw.get("boundary_geo", 0.0))  # before any work
        if a.lam is not None and not a.lam >= 0:
            raise ValueError(f"--lam must be >= 0, got {a.lam}")
        tag = "multi" if a.multi else "+".join(c.spec.replace(":", "") for c in clickers)
        name = cli.slug(a.features) + ("" if oracle is None else f"_oracle{oracle[2]}")
        out = cli.result_path(a.output, Path("outputs/iis") / f"{dataset}_{name}_{tag}.json",
                              a.overwrite)
        if a.multi:
            ids = _bsds_ids(a) or bsds_ids(a.root, a.split)
            images = []
            for i in ids[: a.limit][a.skip:]:
                rec = load_record(a.root, a.split, i)
                if not 0 <= a.annotator < len(rec.segmentations):
                    raise ValueError(f"{i}: --annotator {a.annotator}, but it has {len(rec.segmentations)}")
                gt = multi_objects(rec.segmentations[a.annotator], a.min_area)
                if gt.max() > 0:
                    images.append((i, rec.image, gt))
            res = evaluate_multi(images, a.features, a.multi_iou, a.max_clicks, a.workers, not a.no_progress, **kw)
            res.update(min_area=a.min_area, annotator=a.annotator)
        else:
            if dataset == "bsds500":
                ds = [IISSample(n, im, m, np.zeros(m.shape, bool)) for n, im, m, _ in
                      bsds_samples(a.root, a.limit or 10**9, split=a.split, ids=_bsds_ids(a))][a.skip:]
            else:
                full = load_iis(dataset, a.root, limit=a.limit)
                ds = Lazy(full, range(a.skip, len(full)))
            res = evaluate(ds, a.features, [c.spec for c in clickers], a.seeds, a.max_clicks, a.long_clicks,
                           a.workers, not a.no_progress, oracle=oracle, **kw)
    except (ValueError, FileNotFoundError) as e:
        return cli.fail(str(e))
    if other is not None:
        try:
            res["compare"] = {"other": str(a.compare[0]), "other_features": other.get("features"),
                              "by_clicker": compare_results(res, other)}
        except ValueError as e:  # the run is kept; only the comparison is missing
            res["compare"] = {"other": str(a.compare[0]), "error": str(e)}
            print(f"note: no comparison with {a.compare[0]}: {e}", file=sys.stderr)
    mw = kw.get("mesh_weights")
    res.update(dataset=dataset, features=a.features, split=a.split, holdout=a.holdout,
               oracle=None if oracle is None else {"annotator": oracle[2], "cues": list(oracle[3])},
               mesh_weights=None if mw is None else {str(k): v for k, v in mw.items()},
               settings={k: v for k, v in kw.items() if k != "mesh_weights"})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    if a.multi:
        print(f"\n{res['n_images']} images, {res['n_objects']} objects: NCI@{a.multi_iou:g} {res['nci']:.2f} "
              f"(one at a time: {res['nci_single']:.2f}), NFO {res['nfo']} ({res['nfo_single']}), clicks honoured "
              f"{res['clicks_honoured']:.2f}, ms/click {1000 * res['latency_median_s']:.1f} "
              f"(binary {1000 * res['latency_single_median_s']:.1f})")
        print(f"wrote {out}")
        return 0
    label = Path(a.features).name + ("" if oracle is None else f"+oracle{oracle[2]}")
    _print(res, label)
    if other is not None and "by_clicker" in res["compare"]:
        _print_compare(res["compare"]["by_clicker"], "this run", str(a.compare[0]))
    plot(res, out.with_suffix(".png"), label)
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
