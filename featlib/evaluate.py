"""Scoring features by the partitions they give: what validation, the demo and the notebooks report.

    sweep = hierarchy_sweep(f, image, gts)                  # [60, 7]: the reported metric, one image (f: Features)
    summarise_sweeps([sweep, ...])                          # {"ods": {"covering", "pri", "vi"}, "ois": {...}, ...}
    scores = validate_partitions(model, records, device)    # {"val/covering_ods", ..., "val/lab_covering_ods"}
    r = validation_image(model, image, gts, device)         # one image's picklable part of it (shard over ranks)
    scores = validate(model, val_set)                       # {"val/mean_best_iou", "val/covering", "val/rgb_..."}
    iou, cov, labels = score_partition(feats, gts, size=(H, W), mesh_weights={1: 1.0})
    name, weights, table = select_mesh_weights(model, train_scenes)   # choose on *training* images
    fig = example_figure(model, image, gts)
    val = Validation(cfg, accelerator); scores = val.run(model)   # training: sharded over ranks, gathered

**The reported metric** (``scripts/evaluate_partitions.py``, BSDS conventions, Arbelaez et al. 2011): one merge
hierarchy per image (``Features.hierarchy``: the source's default grouping), cut at every merge height t_k of its
grouping's grid ``THRESHOLDS[grouping]`` (one fixed dataset-wide grid), each
partition P_ik scored against every annotator of image i (``metrics.region_terms``): PRI and VI (bits) the means
over annotators, covering the annotators' pooled sums o_ik = sum_R |R| best IoU(R) and a_i = sum_R |R| over the
regions R of every annotator, beside its segment count. Over N images, as the benchmark (collect_eval_reg.m;
verified number for number on its demo outputs, tests/test_bsds_conformance.py):

    PRI, VI:   ODS = max_k (1/N) sum_i m_ik  (VI: min),   OIS = (1/N) sum_i max_k m_ik  (VI: min)
    covering:  ODS = max_k sum_i o_ik / sum_i a_i,        OIS = sum_i o_ik_i / sum_i a_i,  k_i = argmax_k o_ik / a_i
               best = sum_i (sum_R |R| max_k IoU_k(R)) / sum_i a_i      (each region's best threshold)

Covering pools over images and annotators (bigger images and images with more annotators weigh more); featlib
before 2026-12 averaged per-image coverings instead (within ~0.01 of the pooled value on BSDS500 val).
``hierarchy_sweep`` gives one image's [n_thresholds, 7] rows (``SWEEP_COLUMNS``), ``summarise_sweeps`` the
ODS / OIS; the script and
training validation (``validate_partitions``, beside the ``lab-smooth`` colour baseline scored the same way) both
call them, so a val curve and a reported number are the same computation.

**The older oracle score** (``validate``, ``score_partition``: the demo and notebooks): a partition is cut at the
ground truth's own number of connected pieces (an oracle granularity, the same for learned features and the colour
baseline, so the comparison is fair): mean best IoU over ground-truth pieces (``metrics.mean_best_iou``) and
covering (``metrics.covering``; unannotated pixels ignored).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from featlib.cluster import Hierarchy, build_hierarchy
from featlib.data.loaders import validation_set
from featlib.distances import MESH_WEIGHT_NAMES, resolve_mesh_weights
from featlib.features import Features, image_features, load
from featlib.metrics import covering, mean_best_iou, ods_ois, pooled_ods_ois, region_terms
from featlib.model import FeatureNet
from featlib.viz import label_overlay, show_features

_RGB = load("rgb")  # the colour baseline of validate()
# Merge heights the hierarchy is cut at (the reported metric's sweep, the grid every reported number used): heights
# are not in [0, 1]; on BSDS500 val this geometric grid runs from the watershed oversegmentation (~2300 regions with
# bsds500-b0-all, ~3500 with lab-smooth) to one segment. Fixed and dataset-wide, so ODS is one common threshold.
HIER_THRESHOLDS = np.geomspace(0.01, 200, 48)
# Per grouping (featlib.features.GROUPINGS): the gradient grouping's merge heights are mean histogram chi^2 (<= ~1)
# plus the spectral boundary (<= 1), or the learned map's mean boundary probability (< 1), times the size factor
# (< 1): from the oversegmentation (~2500 regions at 481 x 321) to one segment within [1e-3, 2]; 60 steps (the mesh
# grid's density per decade and more).
THRESHOLDS = {"gradients": np.geomspace(1e-3, 2.0, 60), "mesh": HIER_THRESHOLDS}
BASELINE = "lab-smooth"  # the partitions' colour baseline (featlib.features), beside every validation score
_BASELINE = load(BASELINE)
# The columns of one image's sweep [n_thresholds, 7] (``sweep_scores``): covering (that image's, annotators pooled),
# PRI, VI in bits, the partition's segment count, then what the benchmark pools: covering's numerator
# sum_R |R| best IoU(R) and denominator sum_R |R| over the regions R of every annotator, and "best_overlap" at row k:
# sum_R |R| max_{j <= k} IoU_j(R) (each region's best over thresholds 0..k; the last row is the image's "best").
SWEEP_COLUMNS = ("covering", "pri", "vi", "n_segments", "cover_overlap", "cover_area", "best_overlap")


# ------------------------------------------------------------------------- the reported metric (BSDS sweep)


def sweep_scores(partitions, gts: list[np.ndarray]) -> np.ndarray:
    """Each partition int [H, W] (a sweep, in threshold order) against every ground truth -> float64
    [n_partitions, 7] rows of ``SWEEP_COLUMNS`` (labels >= 0 are segments, negative labels unannotated:
    ``featlib.metrics``)."""
    rows, best = [], None
    for p in partitions:
        t = region_terms(p, gts)
        best = t.ious if best is None else np.maximum(best, t.ious)
        rows.append((t.covering, t.pri, t.vi, len(np.unique(p)), float((t.areas * t.ious).sum()),
                     float(t.areas.sum()), float((t.areas * best).sum())))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SWEEP_COLUMNS))


def hierarchy_partitions(features: Features, image: np.ndarray, grouping: str | None = None, feats=None,
                         **overrides) -> tuple[Hierarchy, list[np.ndarray], np.ndarray]:
    """(the merge hierarchy of one image, its partitions int [H, W] cut at each merge height of the grouping's grid
    ``THRESHOLDS[grouping]``, that grid).

    ``features``: a ``Features`` (its defaults: ``Features.hierarchy_settings``; ``overrides`` win, e.g. the script's
    --seed-spacing; ``mesh_weights`` may be a name, a dict or JSON text); ``image`` uint8 [H, W, 3]; ``grouping``
    "gradients" / "mesh" (default: the features'); ``feats``: ``features(image)`` when already computed.
    """
    grouping, _ = features.hierarchy_settings(grouping, **overrides)
    h = features.hierarchy(image, grouping, features=feats, **overrides)
    thresholds = THRESHOLDS[grouping]
    return h, [h.partition(threshold=t) for t in thresholds], thresholds


def hierarchy_sweep(features: Features, image: np.ndarray, gts: list[np.ndarray], grouping: str | None = None,
                    **overrides) -> np.ndarray:
    """**The** scoring function (the script, training validation, notebook 05 and the tests call it): one image's
    part of the reported metric, float64 [n_thresholds, 7] (``SWEEP_COLUMNS``: covering, PRI, VI in bits,
    n_segments, covering's pooling sums) of ``features.hierarchy(image)`` cut at each merge height of its grouping's
    grid. ``gts``: int [H, W] per annotator (labels >= 0 segments, negative unannotated); the rest as
    ``hierarchy_partitions``. ``scripts/evaluate_partitions.py`` runs the same two steps, ``hierarchy_partitions``
    then ``sweep_scores`` (it times the first alone, and needs the hierarchy)."""
    return sweep_scores(hierarchy_partitions(features, image, grouping, **overrides)[1], gts)


def summarise_sweeps(sweeps, digits: int | None = None) -> dict:
    """Per-image sweeps (a list of [n_thresholds, 7], or one array [n_images, n_thresholds, 7]: ``sweep_scores``)
    -> the benchmark's ODS / OIS (module docstring; collect_eval_reg.m).

    Returns {"ods": {"covering", "pri", "vi"}, "ois": {...}, "best": {"covering"}: each GT region at its own best
    threshold, "ods_index": {...}: each metric's ODS threshold index, "ods_segments": {...}: the mean segment count
    there, "n_images"}; VI is in bits, lower is better. ``digits``: round the scores (the script: 4).
    """
    sweep = np.asarray(sweeps, dtype=np.float64)
    n_col = len(SWEEP_COLUMNS)
    if sweep.ndim != 3 or sweep.shape[0] == 0 or sweep.shape[2] != n_col:
        raise ValueError(f"sweeps must be [n_images >= 1, n_thresholds, {n_col}] (featlib.evaluate.SWEEP_COLUMNS, "
                         f"same thresholds for every image), got shape {sweep.shape}")
    col = {c: sweep[:, :, j] for j, c in enumerate(SWEEP_COLUMNS)}
    scores = {"covering": pooled_ods_ois(col["cover_overlap"], col["cover_area"]),
              "pri": ods_ois(col["pri"]), "vi": ods_ois(col["vi"], higher_is_better=False)}
    area = col["cover_area"][:, -1].sum()
    best = float(col["best_overlap"][:, -1].sum() / area) if area else 0.0
    r = (lambda v: round(v, digits)) if digits is not None else (lambda v: v)
    return {"ods": {m: r(o) for m, (o, _, _) in scores.items()}, "ois": {m: r(i) for m, (_, i, _) in scores.items()},
            "best": {"covering": r(best)}, "ods_index": {m: k for m, (_, _, k) in scores.items()},
            "ods_segments": {m: float(col["n_segments"][:, k].mean()) for m, (_, _, k) in scores.items()},
            "n_images": int(sweep.shape[0])}


# ------------------------------------------------------------------ training validation: the same metric


def _as_features(model, device) -> Features:
    """A FeatureNet (training's unwrapped model) as ``Features`` with a learned model's defaults
    (``features.DEFAULTS["learned"]``, as a checkpoint loaded through ``featlib.features.load`` gets), or
    ``Features``."""
    if isinstance(model, Features):
        return model
    if isinstance(model, FeatureNet):
        return Features("validation", lambda image: image_features(model, image, device), model, device, "learned")
    raise TypeError(f"model must be a FeatureNet or featlib.features.Features, got {type(model).__name__}")


def _annotated(gts) -> list[np.ndarray]:
    """Validation ground truths (int [H, W], 0 = unannotated: ``validation_set``) -> metrics' labels (-1 ignored).
    BSDS records count segments from 1, so nothing of theirs is dropped: the script's numbers exactly."""
    return [np.where(np.asarray(g) > 0, g, -1) for g in gts]


def baseline_sweep(image: np.ndarray, gts: list[np.ndarray]) -> np.ndarray:
    """The ``lab-smooth`` colour baseline's sweep [n_thresholds, 7] of one validation image (its own hierarchy
    defaults). It never changes during training: compute it once and pass the list as ``baseline_sweeps``."""
    return hierarchy_sweep(_BASELINE, np.asarray(image), _annotated(gts))


def validation_image(model, image: np.ndarray, gts: list[np.ndarray], device="cpu", hierarchy_kwargs=None,
                     baseline: bool = False) -> dict:
    """One validation image scored as the reported metric: features, hierarchy, sweep.

    ``model``: FeatureNet or ``Features``; ``image`` uint8 [H, W, 3]; ``gts``: int [H, W] per annotator, 0 =
    unannotated (``featlib.data.loaders.validation_set``'s records); ``hierarchy_kwargs``: overrides of the
    features' hierarchy defaults (``Features.hierarchy_settings``; "grouping" may be one). Returns plain picklable
    values, so rank r can score images
    i with i % world == r and ``accelerate.utils.gather_object`` the dicts for ``summarise_validation``:
    {"sweep": float64 [n_thresholds, 7], "seconds": features + hierarchy + scoring, and with ``baseline``
    "baseline_sweep": ``baseline_sweep``'s (not timed)}.
    """
    t = time.perf_counter()
    f = _as_features(model, device)
    image = np.asarray(image)
    sweep = hierarchy_sweep(f, image, _annotated(gts), **dict(hierarchy_kwargs or {}))
    out = {"sweep": sweep, "seconds": time.perf_counter() - t}
    if baseline:
        out["baseline_sweep"] = baseline_sweep(image, gts)
    return out


def summarise_validation(results: list[dict], baseline_sweeps=None) -> dict[str, float]:
    """``validation_image`` results (every rank's, gathered) -> the logged scalars.

    {"val/covering_ods", "val/covering_ois", "val/pri_ods", "val/pri_ois", "val/vi_ods", "val/vi_ois",
    "val/segments_at_covering_ods", "val/n_images", "val/seconds_per_image"} (VI in bits; covering pooled over
    images and annotators, as the benchmark: ``summarise_sweeps``) and, when the results carry
    "baseline_sweep" or ``baseline_sweeps`` (one [n_thresholds, 7] per image, the same images) is given, the colour
    baseline's "val/lab_covering_ods", "val/lab_covering_ois", "val/lab_pri_ods", "val/lab_vi_ods". ODS / OIS do
    not depend on the images' order.
    """
    if not results:
        raise ValueError("no validation results to summarise")
    s = summarise_sweeps([r["sweep"] for r in results])
    out = {f"val/{m}_{k}": s[k][m] for m in SWEEP_COLUMNS[:3] for k in ("ods", "ois")}
    out.update({"val/segments_at_covering_ods": s["ods_segments"]["covering"], "val/n_images": s["n_images"],
                "val/seconds_per_image": float(np.mean([r["seconds"] for r in results]))})
    if baseline_sweeps is None and all("baseline_sweep" in r for r in results):
        baseline_sweeps = [r["baseline_sweep"] for r in results]
    if baseline_sweeps is not None:
        if len(baseline_sweeps) != len(results):
            raise ValueError(f"baseline_sweeps has {len(baseline_sweeps)} images, the results {len(results)}: "
                             "the baseline must be scored on the same validation images")
        b = summarise_sweeps(baseline_sweeps)
        out.update({"val/lab_covering_ods": b["ods"]["covering"], "val/lab_covering_ois": b["ois"]["covering"],
                    "val/lab_pri_ods": b["ods"]["pri"], "val/lab_vi_ods": b["ods"]["vi"]})
    return out


def validate_partitions(model, records, device="cpu", hierarchy_kwargs=None, baseline_sweeps=None
                        ) -> dict[str, float]:
    """Training validation = the reported metric (``scripts/evaluate_partitions.py``'s hierarchy ODS / OIS) on
    ``records`` ((image, gts) pairs: ``validation_set``), beside the ``lab-smooth`` baseline.

    Single process: ``validation_image`` per record, then ``summarise_validation``. ``baseline_sweeps``: the
    baseline's per-image sweeps from an earlier call (``[baseline_sweep(image, gts) for image, gts in records]``);
    None computes them here (~as long again as the model's part). Keys: ``summarise_validation``.
    """
    f = _as_features(model, device)
    results = [validation_image(f, image, gts, device, hierarchy_kwargs, baseline=baseline_sweeps is None)
               for image, gts in records]
    return summarise_validation(results, baseline_sweeps)


def _pieces(instances: np.ndarray) -> np.ndarray:
    """Instance map -> connected pieces (0 stays unannotated): partitions are connected, instances may not be."""
    out = np.zeros(instances.shape, np.int32)
    for i in np.unique(instances):
        if i <= 0:
            continue
        lab, n = ndimage.label(instances == i)
        out[lab > 0] = lab[lab > 0] + out.max()
    return out


def score_partition(features, gts: list[np.ndarray], size=None, mesh_weights=None, **hierarchy_kwargs
                    ) -> tuple[float, float, np.ndarray]:
    """Cluster ``features`` with the hierarchy at the ground truth's number of pieces.

    Returns (mean best IoU, covering, labels int [H, W]). ``gts``: int [H, W] instance maps, 0 = unannotated; the
    count is the connected pieces of ``gts[0]`` (unannotated pixels are not a piece), exactly. (Earlier versions
    asked for one segment more than that: numbers scored with them, e.g. README's demo scores, used the +1.)

    ``mesh_weights``: how the per-stride distance meshes combine (``featlib.distances.distance_mesh``; None = equal);
    ``hierarchy_kwargs``: other ``build_hierarchy`` settings (e.g. ``Features.hierarchy_kwargs()``).
    """
    h = build_hierarchy(features, size=size, mesh_weights=mesh_weights, **hierarchy_kwargs)
    gt = _pieces(gts[0])
    labels = h.partition(n_segments=max(1, len(np.unique(gt[gt > 0]))))
    ious = [mean_best_iou(labels, _pieces(g)) for g in gts]
    cov = covering(labels, [np.where(g > 0, g, -1) for g in gts])
    return float(np.nanmean(ious)), cov, labels


def validate(model: FeatureNet, val_set, device="cpu", mesh_weights=None) -> dict[str, float]:
    """Mean best IoU / covering of the feature hierarchy vs raw RGB on held-out images (same clustering)."""
    res = {"iou": [], "cov": [], "rgb_iou": [], "rgb_cov": []}
    for image, gts in val_set:
        feats = image_features(model, image, device)
        iou, cov, _ = score_partition(feats, gts, size=image.shape[:2], mesh_weights=mesh_weights)
        riou, rcov, _ = score_partition(_RGB(image), gts)
        for k, v in zip(res, (iou, cov, riou, rcov)):
            res[k].append(v)
    return {"val/mean_best_iou": float(np.mean(res["iou"])), "val/covering": float(np.mean(res["cov"])),
            "val/rgb_mean_best_iou": float(np.mean(res["rgb_iou"])), "val/rgb_covering": float(np.mean(res["rgb_cov"]))}


def mesh_weight_candidates(strides) -> dict[str, dict[int, float] | None]:
    """A few ways to combine the per-stride meshes: equal, ∝ 1/s, the two finest, the finest alone."""
    return {name: resolve_mesh_weights(name, strides) for name in MESH_WEIGHT_NAMES}


def select_mesh_weights(model: FeatureNet, scenes, device="cpu", candidates=None):
    """Pick the mesh combination with the best mean best IoU on ``scenes`` (use *training* scenes, then report
    held-out scores with the winner). Returns (name, weights, {name: mean best IoU}).

    Why: a stride whose cells are larger than most objects blurs every boundary it sees (at 128 px the /16 grid is
    8 x 8 cells), so the best combination depends on image and object size, not only on the model.
    """
    feats = [image_features(model, image, device) for image, _ in scenes]
    if candidates is None:
        candidates = mesh_weight_candidates(feats[0].keys())
    table = {name: float(np.mean([score_partition(f, gts, size=image.shape[:2], mesh_weights=w)[0]
                                  for f, (image, gts) in zip(feats, scenes)])) for name, w in candidates.items()}
    best = max(table, key=table.get)
    return best, candidates[best], table


def example_figure(model: FeatureNet, image: np.ndarray, gts: list[np.ndarray], device="cpu", title=None,
                   mesh_weights=None):
    """Figure: image | features per stride | the hierarchy's partition at the ground truth's count | ground truth."""
    feats = image_features(model, image, device)
    _, _, labels = score_partition(feats, gts, size=image.shape[:2], mesh_weights=mesh_weights)
    return show_features(image, feats, clusters=labels, gt=gts[0] - 1, title=title)


def partitions_figure(image: np.ndarray, features: dict, counts=(8, 32, 128), title=None):
    """Figure: one row per feature source (``{label: featlib.features.Features}``), the photo, then the hierarchy's
    partition at each segment count in ``counts`` (segments tinted, boundaries white). Same counts for every row, so
    rows compare at equal granularity; each row uses its features' own hierarchy defaults."""
    import matplotlib.pyplot as plt  # lazy: only figures need matplotlib

    rows = len(features)
    fig, axes = plt.subplots(rows, len(counts) + 1, figsize=(3.2 * (len(counts) + 1), 2.6 * rows), squeeze=False)
    for r, (label, feats) in enumerate(features.items()):
        h = feats.hierarchy(image)
        axes[r, 0].imshow(image)
        axes[r, 0].set_title(label, fontsize=9)
        for c, n in enumerate(counts, 1):
            axes[r, c].imshow(label_overlay(image, h.partition(n_segments=n), alpha=0.45))
            axes[r, c].set_title(f"{label}: {n} segments", fontsize=9)
    for a in axes.ravel():
        a.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


class Validation:
    """The training run's validation (``featlib.train.fit``), identical on every rank's side of the collectives.

    Synthetic runs (``data: synthetic``, the demo): the main rank scores the held-out scenes with ``validate``
    (mean best IoU and covering at the ground truth's count, vs raw RGB). Runs on photos (BSDS500, SA-1B): the
    reported metric, ``scripts/evaluate_partitions.py``'s hierarchy ODS / OIS (``featlib.evaluate``), on BSDS500 val
    (``validation_set``: ``val_root`` or ../shared) sharded over the ranks, image i on rank i % world, gathered, next
    to the ``lab-smooth`` baseline (computed once, at start). Every rank scores ceil(n_val / world) images, so no rank
    waits on another for longer than one share (~1.6 s of CPU per image measured: 100 images on 8 GPUs ~ 20 s,
    far below the 10-minute NCCL default).
    """

    def __init__(self, cfg, accelerator):
        self.cfg, self.acc = cfg, accelerator
        self.synthetic = cfg.data == "synthetic"
        rank, world = accelerator.process_index, accelerator.num_processes
        if cfg.val_every <= 0 and cfg.image_every <= 0:
            self.records, self.baseline = [], None
            return
        if self.synthetic:
            self.records = validation_set(cfg) if accelerator.is_main_process else []
            self.baseline = None
            return
        if accelerator.is_main_process:  # a fallback to synthetic scenes writes them: once, before the others
            self.records = validation_set(cfg, rank, world)
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            self.records = validation_set(cfg, rank, world)
        from accelerate.utils import gather_object  # imported on use: only training runs gather

        self.baseline = gather_object([baseline_sweep(r.image, r.gts) for r in self.records]) \
            if cfg.val_every > 0 else None
        if accelerator.is_main_process:
            accelerator.print(f"validation: {len(self.baseline or [])} images from "
                              f"{self.records[0].source if self.records else '-'}, <= {len(self.records)} per rank")

    def run(self, model) -> dict[str, float]:
        if self.synthetic:
            return validate(model, self.records, self.acc.device) if self.records else {}
        from accelerate.utils import gather_object

        mine = [validation_image(model, r.image, r.gts, self.acc.device) for r in self.records]
        results = gather_object(mine)  # every rank's results, in rank order (as the baseline's)
        return summarise_validation(results, self.baseline) if self.acc.is_main_process and results else {}

    def describe(self, v: dict) -> str:
        if self.synthetic:
            return (f"val mean best IoU {v['val/mean_best_iou']:.3f} (raw RGB {v['val/rgb_mean_best_iou']:.3f}), "
                    f"covering {v['val/covering']:.3f}")
        return (f"val covering ODS {v['val/covering_ods']:.3f} / OIS {v['val/covering_ois']:.3f} (lab-smooth "
                f"{v['val/lab_covering_ods']:.3f}), VI ODS {v['val/vi_ods']:.3f} bits, {int(v['val/n_images'])} images")
