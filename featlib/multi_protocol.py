"""Whole-image multi-object click evaluation (DynaMITe-style NCI / NFO) and its one-object-at-a-time baseline.

    gt = multi_objects(record.segmentations[0], min_area=0.01)   # int32 [H, W]: 0 background, 1..K objects
    run = simulate_multi(MultiClickSegmenter(f, image), gt)        # run.nci, run.nfo, run.covering, run.ious
    base = simulate_single(ClickSegmenter(f, image), gt)           # base["nci_single"], base["nfo_single"]

**Objects** (``multi_objects``): the segments of ONE annotator's BSDS500 segmentation that cover at least
``min_area`` of the image (default 1 %: on the first 30 val images, first annotator, that keeps 6.6 segments per
image covering 98.3 % of the pixels; 2 % keeps 5.7 covering 97.0 %), numbered 1..K by decreasing area; the pixels of
smaller segments are background (label 0): scored (a background pixel given label k is a false positive of object k)
and clickable with label 0, but background is not an object and has no IoU target.

**Multi-label protocol** (``simulate_multi``), on a segmenter with ``add_click(y, x, label)`` returning ``labels`` int32
[H, W], ``reset()``, ``shape``, ``last_update_s`` (``featlib.interactive.MultiClickSegmenter``):
1. one click per object, in label order, at its centre (the deepest point of its mask, as the centre protocol's first
   click; ``featlib.click_protocol.next_click``), labelled k;
2. then, while some object is below ``threshold`` IoU and has clicks left, a corrective click on the object with the
   lowest IoU (ties: lowest label): at the centre of its largest error region (``next_click`` on ``labels == k`` vs
   ``gt == k``), labelled with the label that pixel has in ``gt`` (k for a missed pixel; another object or background
   0 for a wrongly taken one). Every click is charged to the object it corrects; an object with ``max_per_object``
   charged clicks gets no more.
``nci`` = clicks made on the image (all charged clicks); ``nfo`` = objects below ``threshold`` at the end;
``covering[n]`` = segmentation covering of ``gt`` (background as one region) by the label map after n + 1 clicks.

**Baseline** (``simulate_single``): each object alone with a binary segmenter (``ClickSegmenter``), the centre protocol
on ``gt == k`` until IoU >= ``threshold`` or ``max_per_object`` clicks; ``nci_single`` = sum over objects of those
clicks (``max_per_object`` for an object never reaching it), ``nfo_single`` = objects never reaching it. The defaults
(0.85, 20 per object) are DynaMITe's NCI@85 with its per-object click budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featlib.click_protocol import next_click, simulate_clicks
from featlib.metrics import covering, iou

MIN_AREA = 0.01  # objects: segments >= 1 % of the image (module doc)
THRESHOLD = 0.85  # DynaMITe's NCI@85
MAX_PER_OBJECT = 20  # DynaMITe's per-object click budget


def multi_objects(segmentation: np.ndarray, min_area: float = MIN_AREA) -> np.ndarray:
    """One annotator's segmentation int [H, W] -> int32 [H, W]: segments >= ``min_area`` of the image as objects
    1..K by decreasing area (ties: lower segment id first), every other pixel 0 (background)."""
    seg = np.asarray(segmentation)
    if seg.ndim != 2 or seg.size == 0:
        raise ValueError(f"segmentation must be a non-empty [H, W] label map, got shape {seg.shape}")
    if not 0 < min_area < 1:
        raise ValueError(f"min_area must be a fraction of the image in (0, 1), got {min_area}")
    ids, inv, counts = np.unique(seg.ravel(), return_inverse=True, return_counts=True)
    order = np.lexsort((ids, -counts))
    keep = order[counts[order] >= min_area * seg.size]
    lut = np.zeros(len(ids), np.int32)
    lut[keep] = np.arange(1, len(keep) + 1)
    return lut[inv].reshape(seg.shape)


@dataclass
class MultiRun:
    """One image's multi-object trajectory: ``clicks`` (y, x, label, object charged); ``ious`` [n][K] per object after
    each click; ``covering`` [n]; ``charged`` int [K] clicks per object; ``violations`` (click, pixel) pairs where an
    earlier clicked pixel had lost its label (0 = every click honoured)."""

    n_objects: int
    threshold: float
    clicks: list[tuple[int, int, int, int]] = field(default_factory=list)
    ious: list[list[float]] = field(default_factory=list)
    covering: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    charged: list[int] = field(default_factory=list)
    violations: int = 0

    @property
    def nci(self) -> int:
        return len(self.clicks)

    @property
    def nfo(self) -> int:
        return int(sum(v < self.threshold for v in self.ious[-1])) if self.ious else self.n_objects

    @property
    def honoured(self) -> bool:
        return self.violations == 0


def _check_gt(gt: np.ndarray, shape) -> tuple[np.ndarray, int]:
    gt = np.asarray(gt)
    if gt.shape != tuple(shape):
        raise ValueError(f"gt shape {gt.shape} does not match the segmenter's image {tuple(shape)}")
    if gt.min() < 0:
        raise ValueError("gt labels must be >= 0 (0 background, 1..K objects)")
    k = int(gt.max())
    if k < 1:
        raise ValueError("gt has no object (labels 1..K)")
    return gt, k


def _check_rule(threshold: float, max_per_object: int) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be an IoU in (0, 1], got {threshold}")
    if max_per_object < 1:
        raise ValueError(f"max_per_object must be >= 1, got {max_per_object}")


def simulate_multi(segmenter, gt: np.ndarray, threshold: float = THRESHOLD,
                   max_per_object: int = MAX_PER_OBJECT) -> MultiRun:
    """Run the multi-label protocol (module doc) on a fresh ``segmenter`` (reset first) for ``gt`` int [H, W]."""
    gt, n_obj = _check_gt(gt, segmenter.shape)
    _check_rule(threshold, max_per_object)
    segmenter.reset()
    run = MultiRun(n_obj, float(threshold), charged=[0] * n_obj)
    objects = [gt == k for k in range(1, n_obj + 1)]
    clicked: dict[tuple[int, int], int] = {}
    labels = np.zeros(gt.shape, np.int32)

    def click(y: int, x: int, label: int, k: int) -> list[float]:
        nonlocal labels
        labels = np.asarray(segmenter.add_click(y, x, label))
        run.latency_s.append(segmenter.last_update_s)
        run.clicks.append((y, x, label, k))
        run.charged[k - 1] += 1
        clicked[(y, x)] = label
        ys, xs = np.array(list(clicked)).T
        run.violations += int((labels[ys, xs] != np.array(list(clicked.values()))).sum())
        cur = [iou(labels == j, objects[j - 1]) for j in range(1, n_obj + 1)]
        run.ious.append(cur)
        run.covering.append(covering(labels, gt))
        return cur

    for k in range(1, n_obj + 1):
        y, x, _ = next_click(labels == k, objects[k - 1])
        cur = click(y, x, k, k)
    while True:
        todo = [k for k in range(1, n_obj + 1) if cur[k - 1] < threshold and run.charged[k - 1] < max_per_object]
        if not todo:
            return run
        k = min(todo, key=lambda j: (cur[j - 1], j))
        y, x, _ = next_click(labels == k, objects[k - 1])
        cur = click(y, x, int(gt[y, x]), k)


def simulate_single(segmenter, gt: np.ndarray, threshold: float = THRESHOLD,
                    max_per_object: int = MAX_PER_OBJECT) -> dict:
    """The one-object-at-a-time baseline (module doc) with a binary ``segmenter`` for ``gt`` int [H, W]:
    {"nci_single", "nfo_single", "noc" [K] per object, "honoured" (every run's clicks kept), "latency_s" [clicks]}."""
    gt, n_obj = _check_gt(gt, segmenter.shape)
    _check_rule(threshold, max_per_object)
    nocs, reached, honoured, latency = [], [], True, []
    for k in range(1, n_obj + 1):
        r = simulate_clicks(segmenter, gt == k, None, n_clicks=max_per_object, stop_at=threshold)
        nocs.append(r.noc(threshold, max_per_object))
        reached.append(max(r.ious) >= threshold)
        honoured &= r.honoured
        latency += r.latency_s
    return {"nci_single": int(sum(nocs)), "nfo_single": int(n_obj - sum(reached)), "noc": nocs,
            "honoured": bool(honoured), "latency_s": latency}
