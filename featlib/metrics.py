"""Partition and mask metrics, each on one image, against one or several ground truths.

    cov = covering(seg, gts); ri = pri(seg, gts); v = vi(seg, gts)      # seg int [H, W], gts: int [H, W] each
    t = region_terms(seg, gts)        # all three + what the benchmark pools: per-GT-region areas and best IoUs
    ods, ois, k = pooled_ods_ois(overlap, area)      # covering ODS / OIS from [n_images, n_thresholds] sums

Conventions: the BSDS500 benchmark's MATLAB code (Arbelaez et al. 2011; ``bench/benchmarks``:
evaluation_reg_image.m, match_segmentations.m, match_segmentations2.m, collect_eval_reg.m), unless noted:
- ``covering(S, G)``: covering of the ground truth by the segmentation. Over the regions R of every annotator's
  ground truth together, sum |R| * max_{R' in S} IoU(R, R') divided by sum |R| (the annotators' pixels pooled:
  evaluation_reg_image's cntR / sumR; with every annotator labelling every pixel, as in BSDS, this is the mean over
  annotators).
- ``pri``: probabilistic Rand index = mean over GTs of the Rand index (fraction of pixel pairs on which S and G
  agree about "same segment"), from contingency tables (no pair enumeration).
- ``vi``: variation of information H(S) + H(G) - 2 I(S; G) **in bits** (log2, as match_segmentations2.m,
  scikit-image and every published table; 1 nat = 1 / ln 2 = 1.4427 bits); mean over GTs.
- Dataset scores over a threshold sweep (``pooled_ods_ois`` for covering, ``ods_ois`` for PRI / VI), as
  collect_eval_reg.m: covering ODS pools the sums over images (sum_i overlap_ik / sum_i area_ik at each threshold k,
  then the best k), covering OIS takes each image's best threshold (its own covering) and pools those sums; PRI and
  VI are means of per-image values at each threshold (ODS: best threshold; OIS: mean of per-image bests).
- ``asa``: achievable segmentation accuracy, sum over segments of max overlap with one GT region / N.
- ``undersegmentation_error``: Neubert & Protzel 2012's corrected form,
  1/N sum_G sum_{S meets G} min(|S ∩ G|, |S \\ G|).
- ``boundary_prf``: boundary precision / recall / F with a pixel tolerance, by distance transform (a simpler
  matching than BSDS's bipartite assignment; it can only be more lenient; the benchmark: ``featlib.boundaries``).
- ``mean_best_iou(labels, masks)``: mean over GT masks of the best IoU with any one segment.
- ``iou(pred, gt, ignore)``: IoU of two binary masks (click segmentation, HILL), 1.0 when both are empty.
Pixels with a negative GT label are ignored (unannotated).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage


def _as_list(gt) -> list[np.ndarray]:
    if isinstance(gt, np.ndarray) and gt.ndim == 2:
        return [gt]
    return [np.asarray(g) for g in gt]


def _check(seg: np.ndarray, gt: np.ndarray) -> None:
    if seg.shape != gt.shape:
        raise ValueError(f"segmentation {seg.shape} and ground truth {gt.shape} differ in shape")


def _dense(x: np.ndarray) -> np.ndarray:
    """Labels -> 0..n-1 in sorted label order (= ``np.unique(x, return_inverse=True)[1]``).

    Why not np.unique: its sort is ~90 % of a threshold sweep's scoring; non-negative integer labels (every partition
    here) are renumbered through a bincount in O(pixels + max label) instead.
    """
    if x.size and np.issubdtype(x.dtype, np.integer) and x.min() >= 0 and x.max() < 4 * x.size:
        present = np.bincount(x.ravel())
        return (np.cumsum(present > 0) - 1)[x]
    return np.unique(x, return_inverse=True)[1].reshape(x.shape)


def contingency(seg: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Overlap counts [n_seg, n_gt] over pixels with gt >= 0 (labels made dense first)."""
    _check(seg, gt)
    keep = gt >= 0
    s, g = _dense(seg[keep]), _dense(gt[keep])
    ns, ng = (s.max() + 1 if s.size else 0), (g.max() + 1 if g.size else 0)
    return np.bincount(s * ng + g, minlength=ns * ng).reshape(ns, ng).astype(np.float64)


def _region_ious(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contingency [n_seg, n_gt] -> (GT region areas float64 [n_gt], each GT region's best IoU with one segment
    float64 [n_gt]) (match_segmentations.m's max over segments)."""
    rs, rg = c.sum(1), c.sum(0)
    if c.size == 0:
        return rg, np.zeros_like(rg)
    return rg, (c / (rs[:, None] + rg[None, :] - c)).max(0)


def covering(seg: np.ndarray, gt) -> float:
    """Covering of the ground truth(s) by ``seg`` in [0, 1]: sum |R| * best IoU(R) / sum |R| over the regions R of
    every ground truth (annotators' pixels pooled, as the benchmark's per-image covering); 0 with no annotated pixel."""
    overlap = area = 0.0
    for g in _as_list(gt):
        rg, best = _region_ious(contingency(seg, g))
        overlap += float((rg * best).sum())
        area += float(rg.sum())
    return overlap / area if area else 0.0


def _rand_index(c: np.ndarray) -> float:
    n = c.sum()
    if n < 2:
        return 1.0
    pairs = n * (n - 1) / 2
    rs, rg = c.sum(1), c.sum(0)
    same_both = (c * (c - 1) / 2).sum()
    return float((pairs + 2 * same_both - (rs * (rs - 1) / 2).sum() - (rg * (rg - 1) / 2).sum()) / pairs)


def rand_index(seg: np.ndarray, gt: np.ndarray) -> float:
    """Rand index of one segmentation int [H, W] against one ground truth int [H, W] in [0, 1]."""
    return _rand_index(contingency(seg, gt))


def pri(seg: np.ndarray, gt) -> float:
    """Probabilistic Rand index in [0, 1] (1 = agrees with every annotator on every pixel pair)."""
    return float(np.mean([rand_index(seg, g) for g in _as_list(gt)]))


def _vi_bits(c: np.ndarray) -> float:
    """VI in bits of one contingency table [n_seg, n_gt] (0 for an empty table)."""
    n = c.sum()
    if n == 0:
        return 0.0
    p = c / n
    ps, pg = p.sum(1), p.sum(0)
    nz = p > 0
    h_s = -(ps[ps > 0] * np.log2(ps[ps > 0])).sum()
    h_g = -(pg[pg > 0] * np.log2(pg[pg > 0])).sum()
    mi = (p[nz] * np.log2(p[nz] / (ps[:, None] * pg[None, :])[nz])).sum()
    return float(max(h_s + h_g - 2 * mi, 0.0))


def variation_of_information(seg: np.ndarray, gt: np.ndarray) -> float:
    """H(S) + H(G) - 2 I(S; G) in bits (log2) of one segmentation int [H, W] against one ground truth int [H, W]."""
    return _vi_bits(contingency(seg, gt))


def vi(seg: np.ndarray, gt) -> float:
    """Variation of information in bits (lower is better), mean over ground truths."""
    return float(np.mean([variation_of_information(seg, g) for g in _as_list(gt)]))


def asa(seg: np.ndarray, gt) -> float:
    """Achievable segmentation accuracy in [0, 1], mean over ground truths."""
    vals = []
    for g in _as_list(gt):
        c = contingency(seg, g)
        vals.append(float(c.max(1).sum() / c.sum()) if c.size else 0.0)
    return float(np.mean(vals))


def undersegmentation_error(seg: np.ndarray, gt) -> float:
    """Corrected undersegmentation error (Neubert & Protzel 2012), lower is better, mean over ground truths."""
    vals = []
    for g in _as_list(gt):
        c = contingency(seg, g)
        if not c.size:
            continue
        rs = c.sum(1)
        vals.append(float(np.minimum(c, rs[:, None] - c)[c > 0].sum() / c.sum()))
    return float(np.mean(vals)) if vals else 0.0


def boundaries(labels: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels whose right or lower neighbour has another label (one-pixel-thin boundary)."""
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def boundary_prf(seg: np.ndarray, gt, tolerance: float = 2.0) -> tuple[float, float, float]:
    """(precision, recall, F) of seg's boundaries vs the GT boundaries (pooled over ground truths)."""
    bs = boundaries(seg)
    hit_s = np.zeros_like(bs)
    tp_g = n_g = 0
    for g in _as_list(gt):
        _check(seg, g)
        bg = boundaries(g)
        if bg.any():
            hit_s |= bs & (ndimage.distance_transform_edt(~bg) <= tolerance)
        n_g += bg.sum()
        if bs.any():
            tp_g += (bg & (ndimage.distance_transform_edt(~bs) <= tolerance)).sum()
    p = float(hit_s.sum() / bs.sum()) if bs.any() else 1.0
    r = float(tp_g / n_g) if n_g else 1.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def mean_best_iou(labels: np.ndarray, gt_masks) -> float:
    """Mean over GT masks (bool [K, H, W], or an instance map int [H, W] with 0/-1 = unannotated) of the best IoU
    of any single segment of ``labels`` with that mask."""
    labels = np.asarray(labels)
    gt_masks = np.asarray(gt_masks)
    if gt_masks.ndim == 2:
        ids = [i for i in np.unique(gt_masks) if i > 0]
        gt_masks = np.stack([gt_masks == i for i in ids]) if ids else np.zeros((0, *labels.shape), bool)
    if gt_masks.shape[1:] != labels.shape:
        raise ValueError(f"masks {gt_masks.shape[1:]} and labels {labels.shape} differ in size")
    if len(gt_masks) == 0:
        return float("nan")
    _, lab = np.unique(labels, return_inverse=True)
    lab = lab.reshape(labels.shape)
    n = lab.max() + 1
    seg_area = np.bincount(lab.ravel(), minlength=n)
    best = []
    for m in gt_masks:
        inter = np.bincount(lab[m], minlength=n)
        union = seg_area + m.sum() - inter
        best.append((inter / np.maximum(union, 1)).max())
    return float(np.mean(best))


def ods_ois(values: np.ndarray, higher_is_better: bool = True) -> tuple[float, float, int]:
    """values [n_images, n_thresholds] -> (ODS: best dataset-wide threshold's mean, OIS: mean of per-image bests,
    index of the ODS threshold; ties: the first, as MATLAB's max). PRI and VI as collect_eval_reg.m."""
    v = np.asarray(values, dtype=np.float64)
    mean = v.mean(0)
    if higher_is_better:
        k = int(np.argmax(mean))
        return float(mean[k]), float(v.max(1).mean()), k
    k = int(np.argmin(mean))
    return float(mean[k]), float(v.min(1).mean()), k


def pooled_ods_ois(overlap: np.ndarray, area: np.ndarray) -> tuple[float, float, int]:
    """Covering ODS / OIS as the benchmark pools them (collect_eval_reg.m), from per-image sums.

    overlap, area: float [n_images, n_thresholds]: sum |R| * best IoU(R) and sum |R| over the GT regions of every
    annotator of image i at threshold k (``region_terms``). ODS = max_k sum_i overlap_ik / sum_i area_ik; OIS: image
    i's best threshold k_i (by its own covering overlap_ik / area_ik, the first of ties), then
    sum_i overlap_ik_i / sum_i area_ik_i. Returns (ODS, OIS, index of the ODS threshold).
    """
    o, a = np.asarray(overlap, dtype=np.float64), np.asarray(area, dtype=np.float64)
    if o.ndim != 2 or o.shape != a.shape or not o.size:
        raise ValueError(f"overlap and area must be the same non-empty [n_images, n_thresholds], got {o.shape} "
                         f"and {a.shape}")
    if (a < 0).any() or (o < 0).any() or (o > a * (1 + 1e-12)).any():
        raise ValueError("overlap must lie in [0, area] (sums of |R| * IoU and of |R|)")
    dataset = o.sum(0) / np.where(a.sum(0) > 0, a.sum(0), 1)
    k = int(np.argmax(dataset))
    per_image = o / np.where(a > 0, a, 1)
    best = np.argmax(per_image, axis=1)
    rows = np.arange(len(o))
    total = a[rows, best].sum()
    return float(dataset[k]), float(o[rows, best].sum() / total) if total else 0.0, k


class RegionTerms(NamedTuple):
    """One segmentation against every annotator: what the region benchmark needs (``region_terms``)."""

    covering: float  # sum(areas * ious) / sum(areas)
    pri: float  # mean Rand index over annotators
    vi: float  # mean VI over annotators, bits
    areas: np.ndarray  # float64 [K]: |R| of every GT region of every annotator, annotator by annotator
    ious: np.ndarray  # float64 [K]: each region's best IoU with one segment


def region_terms(seg: np.ndarray, gt) -> RegionTerms:
    """(covering, PRI, VI, per-region areas and best IoUs) from one contingency table per ground truth.

    seg: int [H, W]; gt: int [H, W] or a list of them (negative labels unannotated). The per-region vectors let a
    threshold sweep pool covering over images (``pooled_ods_ois``) and take the benchmark's "best" covering (each
    region's best IoU over all thresholds).
    """
    ri, v, areas, ious = [], [], [], []
    for g in _as_list(gt):
        c = contingency(seg, g)
        rg, best = _region_ious(c)
        areas.append(rg)
        ious.append(best)
        ri.append(_rand_index(c))
        v.append(_vi_bits(c))
    areas, ious = np.concatenate(areas), np.concatenate(ious)
    total = areas.sum()
    return RegionTerms(float((areas * ious).sum() / total) if total else 0.0, float(np.mean(ri)), float(np.mean(v)),
                       areas, ious)


def covering_pri_vi(seg: np.ndarray, gt) -> tuple[float, float, float]:
    """(covering, PRI, VI in bits) from one contingency table per ground truth — what threshold sweeps need, 3x
    cheaper than the three functions."""
    t = region_terms(seg, gt)
    return t.covering, t.pri, t.vi


def iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two bool [H, W] masks over the pixels not in ``ignore``; 1.0 when both are empty."""
    valid = np.ones(gt.shape, bool) if ignore is None else ~ignore
    inter = np.count_nonzero(pred & gt & valid)
    union = np.count_nonzero((pred | gt) & valid)
    return 1.0 if union == 0 else inter / union
