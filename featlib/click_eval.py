"""Click evaluation over a dataset: every clicker and seed on every object, or whole images with many objects, in
worker processes; the result dicts ``scripts/evaluate_iis.py`` writes as JSON.

    res = evaluate(samples, "lab", clickers=("center", "dt", "jitter:10"), seeds=3, max_clicks=20, long_clicks=100)
    res["noc90"], res["delta_sb"], res["clickers"]["jitter:10"]["nsr_iou1"]     # featlib.click_metrics' keys
    res = evaluate_multi([(name, image, objects), ...], "lab", threshold=0.85, max_per_object=20)   # res["nci"]

One object is one job (``_object_job``): its features once, then one ``ClickSegmenter`` trajectory per clicker and
seed (``featlib.click_protocol.simulate_clicks``; common random numbers, so the order and the number of workers do
not change a result). Stochastic clickers bring the centre protocol along (once) for ``delta_sb``. One image is one
``--multi`` job: ``featlib.multi_protocol``'s multi-label protocol and its one-object-at-a-time baseline on the same
features. The summaries are ``featlib.click_metrics.summarise``'s; this module only runs and collects.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from featlib import cli
from featlib import features as feature_registry
from featlib.click_metrics import delta_gr, delta_sb, delta_sb_interval, noc, summarise
from featlib.click_protocol import parse_clicker, simulate_clicks
from featlib.data.bsds import load_record
from featlib.interactive import ClickSegmenter
from featlib.multi_protocol import simulate_multi, simulate_single
from featlib.multiclick import MultiClickSegmenter
from featlib.oracle_cues import oracle_cues

DEFAULT_SEEDS = 3  # RClicks uses 10 click groups; 3 seeds keep 20 objects x 5 clickers to minutes on one CPU core
_FEATURES: dict = {}  # per process: features spec -> Features (loaded once per worker)


def _features(spec: str):
    """The registry's features for ``spec``, loaded once per process (each worker loads its own)."""
    if spec not in _FEATURES:
        _FEATURES[spec] = feature_registry.load(spec)
    return _FEATURES[spec]


class _Jobs:
    """``make(item)`` for each item of a sized iterable, built one at a time (a lazy dataset stays lazy)."""

    def __init__(self, items, make):
        self.items, self.make = items, make

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return (self.make(i) for i in self.items)


class Lazy:
    """Items ``index`` of a lazy dataset, read one at a time."""

    def __init__(self, dataset, index):
        self.dataset, self.index = dataset, list(index)

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self):
        return (self.dataset[i] for i in self.index)


def _pmap(fn, jobs, workers: int, progress: bool, desc: str) -> list:
    """``[fn(j) for j in jobs]`` in order, in ``workers`` processes (1: here)."""
    if workers <= 1:
        return [fn(j) for j in tqdm(jobs, total=len(jobs), desc=desc, disable=not progress)]
    with cli.process_pool(workers, fn) as pool:
        return list(tqdm(pool.map(fn, jobs), total=len(jobs), desc=desc, disable=not progress))


def _object_job(job) -> dict:
    """One object, every clicker and seed -> {"precompute_s", "latency_s", "records": {clicker: record}}."""
    sample, spec, kw, clickers, seeds, n_clicks, max_clicks, oracle = job
    t0 = time.perf_counter()
    feats = _features(spec)(sample.image)
    if oracle is not None:  # (root, split, annotator, cues): another person's grouping as the graph's cues
        root, split, k, cues = oracle
        segs = load_record(root, split, sample.name).segmentations
        if not 0 < k < len(segs):
            raise ValueError(f"{sample.name}: --oracle-annotator {k}, but it has annotators 0-{len(segs) - 1} "
                             "(0 drew the objects)")
        feats, extra = oracle_cues(segs[k], feats, cues)
        kw = {**kw, **extra}
    seg = ClickSegmenter(feats, sample.image, **kw)
    out = {"precompute_s": time.perf_counter() - t0, "latency_s": [], "records": {}}
    for c in clickers:
        runs = []
        for s in range(seeds) if c.stochastic else [0]:
            run = simulate_clicks(seg, sample.mask, sample.ignore, n_clicks, clicker=c, seed=s, object_id=sample.name)
            out["latency_s"] += run.latency_s if c.kind not in ("worst", "best") else []
            runs.append({"seed": s, "ious": [round(float(v), 5) for v in run.ious], "honoured": run.honoured,
                         "clicks": [[int(y), int(x), bool(p)] for y, x, p in run.clicks],
                         **{f"noc{t}": run.noc(t / 100, max_clicks) for t in (85, 90, 95)}})
        ious = np.array([r["ious"] for r in runs])
        fall = np.maximum(ious[:, :-1] - ious[:, 1:], 0)
        out["records"][c.spec] = {
            "name": sample.name, **{f"noc{t}": float(np.mean([r[f"noc{t}"] for r in runs])) for t in (85, 90, 95)},
            "iou@1": float(ious[:, 0].mean()), "iou@5": float(ious[:, min(4, n_clicks - 1)].mean()),
            "drops": int((fall > 1e-9).sum()), "max_drop": float(fall.max(initial=0.0)),
            "ious": [round(float(v), 5) for v in ious.mean(0)], "runs": runs}
    return out


def evaluate(dataset, features: str, clickers=("center",), seeds: int = DEFAULT_SEEDS, max_clicks: int = 20,
             long_clicks: int = 100, workers: int = 1, progress: bool = True, oracle: tuple | None = None,
             **seg_kwargs) -> dict:
    """Every clicker on every object of ``dataset`` (IISSample list); returns the result dict written as JSON.
    ``oracle``: (BSDS500 root, split, annotator, cues) -- that annotator's segmentation of each object's image as the
    click graph's cues (``featlib.oracle_cues``; objects named by their BSDS500 id)."""
    clickers = [parse_clicker(c) for c in clickers]
    if len({c.spec for c in clickers}) != len(clickers):
        raise ValueError(f"a clicker is listed twice: {[c.spec for c in clickers]}")
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if any(c.stochastic for c in clickers) and "center" not in {c.spec for c in clickers}:
        clickers.append(parse_clicker("center"))
    n_clicks = max(max_clicks, long_clicks)
    jobs = _Jobs(dataset, lambda s: (s, features, seg_kwargs, clickers, seeds, n_clicks, max_clicks, oracle))
    if not len(jobs):
        raise ValueError("no objects found")
    done = _pmap(_object_job, jobs, workers, progress, "objects")
    per = {c.spec: [d["records"][c.spec] for d in done] for c in clickers}
    summaries = {spec: {**summarise(objs, max_clicks), "seeds": sorted({r["seed"] for r in objs[0]["runs"]}),
                        "objects": objs} for spec, objs in per.items()}
    first = clickers[0].spec
    res = {"clicker": first, "clickers_run": list(summaries), "n_seeds": seeds, **summaries[first]}
    centre = summaries["center"]["noc90"]
    res["delta_sb_by_clicker"] = {s: delta_sb(v["noc90"], centre) for s, v in summaries.items() if s != "center"}
    res["delta_sb"] = res["delta_sb_by_clicker"].get(first, 0.0)
    per_obj = {s: [noc(np.array([r["ious"] for r in o["runs"]]), 0.9, max_clicks).mean() for o in objs]
               for s, objs in per.items()}
    res["delta_sb_ci95_by_clicker"] = {s: delta_sb_interval(per_obj[s], per_obj["center"])
                                       for s in summaries if s != "center"}
    res["delta_sb_ci95"] = res["delta_sb_ci95_by_clicker"].get(first)
    ms = {c.param for c in clickers if c.kind == "worst"} & {c.param for c in clickers if c.kind == "best"}
    res["delta_gr"] = {f"{m:g}": delta_gr(summaries[f"worst:{m:g}"]["noc90"], summaries[f"best:{m:g}"]["noc90"])
                       for m in sorted(ms)} or None
    lat = [v for d in done for v in d["latency_s"]]
    res["latency_median_s"] = float(np.median(lat)) if lat else 0.0
    res["latency_p90_s"] = float(np.percentile(lat, 90)) if lat else 0.0
    res["precompute_median_s"] = float(np.median([d["precompute_s"] for d in done]))
    res["clickers"] = {s: v for s, v in summaries.items()}
    return res


def _multi_job(job) -> dict:
    """One image: the multi-label protocol and the binary one-object-at-a-time baseline."""
    name, image, gt, spec, kw, threshold, cap = job
    f = _features(spec)(image)
    multi = simulate_multi(MultiClickSegmenter(f, image, **kw), gt, threshold, cap)
    single = simulate_single(ClickSegmenter(f, image, **kw), gt, threshold, cap)
    return {"name": name, "n_objects": multi.n_objects, "nci": multi.nci, "nfo": multi.nfo,
            "nci_single": single["nci_single"], "nfo_single": single["nfo_single"], "noc_single": single["noc"],
            "charged": multi.charged, "final_ious": [round(v, 5) for v in multi.ious[-1]],
            "covering": [round(v, 5) for v in multi.covering], "honoured": multi.honoured,
            "honoured_single": single["honoured"], "latency_s": multi.latency_s,
            "latency_single_s": single["latency_s"]}


def evaluate_multi(images, features: str, threshold: float = 0.85, max_per_object: int = 20, workers: int = 1,
                   progress: bool = True, **seg_kwargs) -> dict:
    """``images``: (name, image uint8 [H, W, 3], objects int32 [H, W]) -> the --multi result dict."""
    jobs = [(n, im, gt, features, seg_kwargs, threshold, max_per_object) for n, im, gt in images]
    if not jobs:
        raise ValueError("no image with an object")
    done = _pmap(_multi_job, jobs, workers, progress, "images")
    longest = max(len(d["covering"]) for d in done)
    cov = np.array([d["covering"] + [d["covering"][-1]] * (longest - len(d["covering"])) for d in done])
    lat = [v for d in done for v in d["latency_s"]]
    lat1 = [v for d in done for v in d["latency_single_s"]]
    for d in done:
        d.pop("latency_s"), d.pop("latency_single_s")
    n_obj = sum(d["n_objects"] for d in done)
    return {
        "n_images": len(done), "n_objects": n_obj, "threshold": threshold, "max_per_object": max_per_object,
        "nci": float(np.mean([d["nci"] for d in done])), "nci_single": float(np.mean([d["nci_single"] for d in done])),
        "nfo": int(sum(d["nfo"] for d in done)), "nfo_single": int(sum(d["nfo_single"] for d in done)),
        "nfi": int(sum(d["nfo"] > 0 for d in done)), "nfi_single": int(sum(d["nfo_single"] > 0 for d in done)),
        "clicks_per_object": sum(d["nci"] for d in done) / n_obj,
        "clicks_per_object_single": sum(d["nci_single"] for d in done) / n_obj,
        "covering_per_click": [float(v) for v in cov.mean(0)],
        "clicks_honoured": float(np.mean([d["honoured"] for d in done])),
        "clicks_honoured_single": float(np.mean([d["honoured_single"] for d in done])),
        "latency_median_s": float(np.median(lat)), "latency_single_median_s": float(np.median(lat1)) if lat1 else 0.0,
        "images": done,
    }
