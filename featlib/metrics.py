"""Partition and mask metrics, each on one image, against one or several ground truths.

Conventions (BSDS500 benchmark, Arbelaez et al. 2011, unless noted):
- ``covering(S, G)``: covering of the ground truth by the segmentation, sum over GT regions R of
  |R| / N * max_{R' in S} IoU(R, R'); several GTs -> mean over GTs (= the benchmark's pixel-weighted pooling).
- ``pri``: probabilistic Rand index = mean over GTs of the Rand index (fraction of pixel pairs on which S and G
  agree about "same segment"), from contingency tables (no pair enumeration).
- ``vi``: variation of information H(S) + H(G) - 2 I(S; G), natural log; mean over GTs.
- ``asa``: achievable segmentation accuracy, sum over segments of max overlap with one GT region / N.
- ``undersegmentation_error``: Neubert & Protzel 2012's corrected form,
  1/N sum_G sum_{S meets G} min(|S ∩ G|, |S \\ G|).
- ``boundary_prf``: boundary precision / recall / F with a pixel tolerance, by distance transform (a simpler
  matching than BSDS's bipartite assignment; it can only be more lenient).
- ``mean_best_iou(labels, masks)``: mean over GT masks of the best IoU with any one segment.
- ``iou(pred, gt, ignore)``: IoU of two binary masks (click segmentation, HILL), 1.0 when both are empty.
Pixels with a negative GT label are ignored (unannotated).
"""

from __future__ import annotations

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


def covering(seg: np.ndarray, gt) -> float:
    """Covering of the ground truth(s) by ``seg`` in [0, 1]."""
    vals = []
    for g in _as_list(gt):
        c = contingency(seg, g)
        if c.size == 0:
            continue
        rs, rg = c.sum(1), c.sum(0)
        overlap = c / (rs[:, None] + rg[None, :] - c)  # IoU of every segment with every GT region
        vals.append(float((rg * overlap.max(0)).sum() / rg.sum()))
    return float(np.mean(vals)) if vals else 0.0


def rand_index(seg: np.ndarray, gt: np.ndarray) -> float:
    c = contingency(seg, gt)
    n = c.sum()
    if n < 2:
        return 1.0
    pairs = n * (n - 1) / 2
    same_both = (c * (c - 1) / 2).sum()
    same_s = (c.sum(1) * (c.sum(1) - 1) / 2).sum()
    same_g = (c.sum(0) * (c.sum(0) - 1) / 2).sum()
    return float((pairs + 2 * same_both - same_s - same_g) / pairs)


def pri(seg: np.ndarray, gt) -> float:
    """Probabilistic Rand index in [0, 1] (1 = agrees with every annotator on every pixel pair)."""
    return float(np.mean([rand_index(seg, g) for g in _as_list(gt)]))


def variation_of_information(seg: np.ndarray, gt: np.ndarray) -> float:
    c = contingency(seg, gt)
    n = c.sum()
    if n == 0:
        return 0.0
    p = c / n
    ps, pg = p.sum(1), p.sum(0)
    nz = p > 0
    h_s = -(ps[ps > 0] * np.log(ps[ps > 0])).sum()
    h_g = -(pg[pg > 0] * np.log(pg[pg > 0])).sum()
    mi = (p[nz] * np.log(p[nz] / (ps[:, None] * pg[None, :])[nz])).sum()
    return float(max(h_s + h_g - 2 * mi, 0.0))


def vi(seg: np.ndarray, gt) -> float:
    """Variation of information (nats; lower is better), mean over ground truths."""
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
    index of the ODS threshold)."""
    v = np.asarray(values, dtype=np.float64)
    mean = v.mean(0)
    if higher_is_better:
        k = int(np.argmax(mean))
        return float(mean[k]), float(v.max(1).mean()), k
    k = int(np.argmin(mean))
    return float(mean[k]), float(v.min(1).mean()), k


def covering_pri_vi(seg: np.ndarray, gt) -> tuple[float, float, float]:
    """(covering, PRI, VI) from one contingency table per ground truth — what threshold sweeps need, 3x cheaper."""
    cov, ri, v = [], [], []
    for g in _as_list(gt):
        c = contingency(seg, g)
        n = c.sum()
        rs, rg = c.sum(1), c.sum(0)
        cov.append(float((rg * (c / (rs[:, None] + rg[None, :] - c)).max(0)).sum() / n))
        pairs = n * (n - 1) / 2
        ri.append(float((pairs + 2 * (c * (c - 1) / 2).sum() - (rs * (rs - 1) / 2).sum() - (rg * (rg - 1) / 2).sum())
                        / pairs) if n > 1 else 1.0)
        p, ps, pg = c / n, rs / n, rg / n
        nz = p > 0
        h_s, h_g = -(ps[ps > 0] * np.log(ps[ps > 0])).sum(), -(pg[pg > 0] * np.log(pg[pg > 0])).sum()
        mi = (p[nz] * np.log(p[nz] / (ps[:, None] * pg[None, :])[nz])).sum()
        v.append(float(max(h_s + h_g - 2 * mi, 0.0)))
    return float(np.mean(cov)), float(np.mean(ri)), float(np.mean(v))


def iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two bool [H, W] masks over the pixels not in ``ignore``; 1.0 when both are empty."""
    valid = np.ones(gt.shape, bool) if ignore is None else ~ignore
    inter = np.count_nonzero(pred & gt & valid)
    union = np.count_nonzero((pred | gt) & valid)
    return 1.0 if union == 0 else inter / union
