"""The BSDS500 boundary benchmark (Martin et al. 2004; Arbelaez et al. 2011) of soft edge maps, UCMs and partitions.

    from featlib import boundaries
    gts = record.boundaries                                       # every annotator, bool [H, W] each
    c = boundaries.edge_counts(edge_map, gts)                     # soft map in [0, 1] [H, W], 99 thresholds
    c = boundaries.ucm_counts(hierarchy.ucm(), gts, thresholds)   # ucm2 [2H+1, 2W+1], any height scale
    c = boundaries.partition_counts([seg_a, seg_b], gts)          # flat partitions: one "threshold" each
    s = boundaries.summarise([c_image1, c_image2, ...], thresholds)   # {"ods_f", "ois_f", "ap", "pr_curve", ...}
    boundaries.map_counts(bmap, gts)                              # one binary map bool [H, W] -> 4 counts
    boundaries.bsds_boundaries(labels)                            # a partition's boundary map, BSDS-drawn

Each ``*_counts`` returns float64 [T, 4]: per threshold ``(cntR, sumR, cntP, sumP)``, the columns of the
benchmark's ``*_ev1.txt`` files. Definitions, as in the BSDS500 MATLAB code (evaluation_bdry_image.m,
collect_eval_bdry.m, maxF.m, seg2bdry.m):

- At threshold t the boundary map is ``pb >= t``, thinned to one pixel with ``bwmorph(·, 'thin', Inf)``
  (``skimage.morphology.thin``: the same Guo-Hall tables, iterated until nothing changes). A UCM's ``pb`` is
  ``ucm2[2::2, 2::2]`` (MATLAB ``ucm2(3:2:end, 3:2:end)``: the corner below-right of each pixel); a partition's
  boundary map is ``bsds_boundaries(labels)`` (seg2bdry 'imageSize', which also made the GT ``Boundaries``).
- The thinned map is matched to each annotator's boundary pixels by ``correspondPixels`` (minimum-cost bipartite
  matching, pixels further apart than ``max_dist`` x image diagonal never match; outlier cost 100), here the
  benchmark's own C++ through ``pyEdgeEval.correspond_pixels``.
- cntP = predicted pixels matched to ANY annotator, sumP = predicted pixels; cntR = sum over annotators of
  matched GT pixels, sumR = sum over annotators of GT pixels. P = cntP / sumP, R = cntR / sumR (0 when the
  denominator is 0), F = 2PR / (P + R).
- ODS: the counts summed over images give one dataset P/R curve; ODS F is its best F, where P and R are also
  interpolated linearly between neighbouring thresholds (100 steps, maxF.m).
- OIS: each image's best threshold (ties: the last), its counts summed over images, then one F of the sums
  (not the mean of per-image Fs).
- AP: BSDS's ``Area_PR``: P interpolated linearly as a function of the distinct R values of the dataset curve
  (per R value the last threshold's P, as MATLAB's 2011 ``unique`` did), sampled at R = 0, 0.01, ..., 1 (0 outside
  the curve's R range), summed x 0.01 — a Riemann sum, not the trapezoid rule.

Only pyEdgeEval's correspondPixels is used: its per-threshold loop imports OpenCV (for NMS; not a declared
dependency) and its thinning stops as soon as a first sub-iteration changes nothing, short of bwmorph's fixed point.
correspondPixels pairs unmatched pixels through a sparse random outlier graph seeded from the clock (as in BSDS), so
repeated runs differ by about 0.1% of the matched pixels.
"""

from __future__ import annotations

import numpy as np
from pyEdgeEval import correspond_pixels
from skimage.morphology import thin as bwmorph_thin

MAX_DIST = 0.0075  # of the image diagonal: the benchmark's matching tolerance
N_THRESHOLDS = 99  # the benchmark's default for soft edge maps


def bsds_thresholds(n: int = N_THRESHOLDS) -> np.ndarray:
    """The benchmark's thresholds for maps in [0, 1]: float64 [n], ``linspace(1/(n+1), 1 - 1/(n+1), n)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return np.linspace(1 / (n + 1), 1 - 1 / (n + 1), n)


def _gt_list(gts, shape: tuple[int, int]) -> list[np.ndarray]:
    gts = [np.asarray(gts)] if isinstance(gts, np.ndarray) and np.ndim(gts) == 2 else [np.asarray(g) for g in gts]
    for g in gts:
        if g.shape != shape:
            raise ValueError(f"ground-truth boundaries {g.shape} and prediction {shape} differ in shape")
    return [g.astype(bool) for g in gts]


def _check_thresholds(thresholds) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or not t.size or not np.isfinite(t).all():
        raise ValueError(f"thresholds must be a non-empty 1-D array of finite values, got shape {t.shape}")
    return t


def bsds_boundaries(labels: np.ndarray) -> np.ndarray:
    """A partition's boundary map as the benchmark draws it (seg2bdry(seg, 'imageSize')): bool [H, W].

    labels: int [H, W]. Pixel (y, x) is on when an edge meets the corner below-right of it (the image's last row
    and column copy their neighbouring edges, as seg2bdry does).
    """
    seg = np.asarray(labels)
    if seg.ndim != 2:
        raise ValueError(f"labels must be [H, W], got shape {seg.shape}")
    h, w = seg.shape
    v = np.zeros((h, w), bool)  # edge below (y, x)
    v[:-1] = seg[:-1] != seg[1:]
    e = np.zeros((h, w), bool)  # edge right of (y, x)
    e[:, :-1] = seg[:, :-1] != seg[:, 1:]
    b = np.zeros((2 * h + 1, 2 * w + 1), bool)  # the ucm2 layout; corners at even-even entries
    b[2::2, 1::2] = v
    b[1::2, 2::2] = e
    b[2:-1:2, 2:-1:2] = e[:-1, :-1] | e[1:, :-1] | v[:-1, :-1] | v[:-1, 1:]
    b[0] = b[1]  # in this order, as seg2bdry
    b[:, 0] = b[:, 1]
    b[-1] = b[-2]
    b[:, -1] = b[:, -2]
    return b[2::2, 2::2]


def map_counts(bmap: np.ndarray, gts, max_dist: float = MAX_DIST, thin: bool = True) -> tuple[int, int, int, int]:
    """(cntR, sumR, cntP, sumP) of one binary boundary map bool [H, W] against every annotator's bool [H, W]."""
    bmap = np.asarray(bmap, dtype=bool)
    if bmap.ndim != 2:
        raise ValueError(f"boundary map must be [H, W], got shape {bmap.shape}")
    gts = _gt_list(gts, bmap.shape)
    if thin:
        bmap = bwmorph_thin(bmap)
    matched_p = np.zeros(bmap.shape, bool)
    cnt_r = 0
    for g in gts:
        if bmap.any() and g.any():  # an empty side matches nothing: skip the solver
            m1, m2, _, _ = correspond_pixels(bmap, g, max_dist=max_dist)
            matched_p |= m1 > 0
            cnt_r += int(np.count_nonzero(m2))
    return cnt_r, int(sum(g.sum() for g in gts)), int(matched_p.sum()), int(bmap.sum())


def _maps_counts(maps, gts, max_dist: float, thin: bool) -> np.ndarray:
    """float64 [T, 4] counts of a sequence of binary maps; a map equal to an earlier one reuses its counts."""
    seen: dict[bytes, tuple] = {}
    rows = []
    for bmap in maps:
        key = np.packbits(bmap).tobytes()
        if key not in seen:
            seen[key] = map_counts(bmap, gts, max_dist, thin)
        rows.append(seen[key])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def edge_counts(pb: np.ndarray, gts, thresholds=None, max_dist: float = MAX_DIST, thin: bool = True) -> np.ndarray:
    """Counts float64 [T, 4] of a soft edge map pb float [H, W] in [0, 1] at ``thresholds`` (default: the
    benchmark's 99, ``bsds_thresholds()``)."""
    pb = np.asarray(pb, dtype=np.float64)
    if pb.ndim != 2:
        raise ValueError(f"edge map must be [H, W], got shape {pb.shape}")
    if not np.isfinite(pb).all() or pb.min(initial=0) < 0 or pb.max(initial=0) > 1:
        raise ValueError(f"edge map must be finite and in [0, 1], got range [{pb.min()}, {pb.max()}] "
                         "(a UCM with other heights: ucm_counts)")
    t = bsds_thresholds() if thresholds is None else _check_thresholds(thresholds)
    return _maps_counts((pb >= th for th in t), gts, max_dist, thin)


def ucm_counts(ucm2: np.ndarray, gts, thresholds=None, max_dist: float = MAX_DIST, thin: bool = True) -> np.ndarray:
    """Counts float64 [T, 4] of an ultrametric contour map in the ucm2 layout float [2H+1, 2W+1]
    (``featlib.cluster.Hierarchy.ucm()``), thresholded on its own height scale (default: the benchmark's 99
    thresholds, which assume heights in [0, 1])."""
    ucm2 = np.asarray(ucm2, dtype=np.float64)
    if ucm2.ndim != 2 or ucm2.shape[0] % 2 == 0 or ucm2.shape[1] % 2 == 0 or min(ucm2.shape) < 3:
        raise ValueError(f"ucm2 must be [2H+1, 2W+1], got shape {ucm2.shape}")
    if not np.isfinite(ucm2).all():
        raise ValueError("ucm2 contains NaN or inf")
    pb = ucm2[2::2, 2::2]
    t = bsds_thresholds() if thresholds is None else _check_thresholds(thresholds)
    return _maps_counts((pb >= th for th in t), gts, max_dist, thin)


def partition_counts(partitions, gts, max_dist: float = MAX_DIST, thin: bool = True) -> np.ndarray:
    """Counts float64 [T, 4] of T flat partitions int [H, W] (a sweep, e.g. coarse to fine), each one
    "threshold" (the benchmark's ``segs`` input: thresholds 1..T)."""
    return _maps_counts((bsds_boundaries(s) for s in partitions), gts, max_dist, thin)


def _prf(cnt_r, sum_r, cnt_p, sum_p):
    r = cnt_r / (sum_r + (sum_r == 0))
    p = cnt_p / (sum_p + (sum_p == 0))
    return p, r, _f(p, r)


def _f(p, r):
    return 2 * p * r / (p + r + ((p + r) == 0))


def _max_f(thresholds: np.ndarray, p: np.ndarray, r: np.ndarray) -> tuple[float, float, float, float]:
    """maxF.m: best (threshold, P, R, F) with P, R, threshold interpolated in 100 steps between neighbours."""
    d = np.linspace(0, 1, 100)[None, :]
    lerp = [np.concatenate([a[:1], (a[1:, None] * d + a[:-1, None] * (1 - d)).ravel()]) for a in (thresholds, p, r)]
    f = _f(lerp[1], lerp[2])
    k = int(np.argmax(f))  # the first maximum, as maxF's strict `f > bestF` keeps
    return float(lerp[0][k]), float(lerp[1][k]), float(lerp[2][k]), float(f[k])


def _area_pr(p: np.ndarray, r: np.ndarray) -> float:
    ru, last = np.unique(r[::-1], return_index=True)  # last occurrence of each R value
    if len(ru) < 2:
        return 0.0
    pu = p[len(p) - 1 - last]
    return float(np.interp(np.linspace(0, 1, 101), ru, pu, left=0.0, right=0.0).sum() * 0.01)


def summarise(counts, thresholds) -> dict:
    """Dataset scores from per-image counts [N, T, 4] (a list of ``*_counts`` results) at ``thresholds`` [T].

    Returns {"ods_f", "ods_p", "ods_r", "ods_threshold", "ois_f", "ois_p", "ois_r", "ap", "n_images",
    "pr_curve": {"threshold", "precision", "recall", "f"}} (the curve: the dataset curve at each threshold).
    """
    c = np.asarray(counts, dtype=np.float64)
    t = _check_thresholds(thresholds)
    if c.ndim != 3 or c.shape[1:] != (len(t), 4) or not len(c):
        raise ValueError(f"counts must be [n_images, {len(t)} thresholds, 4], got shape {c.shape}")
    p, r, f = _prf(*c.sum(0).T)
    ods_t, ods_p, ods_r, ods_f = _max_f(t, p, r)
    f_img = _prf(*c.transpose(2, 0, 1))[2]  # [N, T]
    best = f_img.shape[1] - 1 - np.argmax(f_img[:, ::-1], axis=1)  # the last best threshold, as BSDS's ff(end)
    ois_p, ois_r, ois_f = _prf(*c[np.arange(len(c)), best].sum(0))
    return {"ods_f": ods_f, "ods_p": ods_p, "ods_r": ods_r, "ods_threshold": ods_t,
            "ois_f": float(ois_f), "ois_p": float(ois_p), "ois_r": float(ois_r), "ap": _area_pr(p, r),
            "n_images": len(c),
            "pr_curve": {"threshold": t.tolist(), "precision": p.tolist(), "recall": r.tolist(), "f": f.tolist()}}
