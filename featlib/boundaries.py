"""The BSDS500 boundary benchmark (Martin et al. 2004; Arbelaez et al. 2011) of soft edge maps, UCMs and partitions.

    from featlib import boundaries
    gts = record.boundaries                                       # every annotator, bool [H, W] each
    c = boundaries.edge_counts(edge_map, gts)                     # soft map in [0, 1] [H, W], 99 thresholds
    c = boundaries.ucm_counts(hierarchy.ucm(), gts, thresholds)   # ucm2 [2H+1, 2W+1], any height scale
    c = boundaries.partition_counts([seg_a, seg_b], gts)          # flat partitions: one "threshold" each
    s = boundaries.summarise([c_image1, c_image2, ...], thresholds)   # {"ods_f", "ois_f", "ap", "pr_curve", ...}
    boundaries.map_counts(bmap, gts)                              # one binary map bool [H, W] -> 4 counts
    boundaries.bsds_boundaries(labels)                            # a partition's boundary map, BSDS-drawn
    boundaries.ucm_labels(ucm2, t)                                # a UCM's partition, as the region benchmark cuts it
    maps, index = boundaries.ucm_maps(ucm2, thresholds)           # the distinct thinned maps: the work to farm out

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

**Repeatable scores.** correspondPixels pairs unmatched pixels through a sparse random outlier graph (degree 6), drawn
from one global generator that BSDS seeds from the clock, so reruns differ by about 0.1% of the matched pixels
(~1e-4 in F). Here every call reseeds that generator to ``seed`` (default ``MATCH_SEED``; through ctypes, the
compiled library's own ``Random::reseed``), so a (map, annotator) pair always gives the same counts, in any order, in
any process: scores repeat exactly, and counts can be cached by content. ``seed=None`` keeps the clock (BSDS's
behaviour). The draw depends only on the pixels within ``max_dist`` of the other map (the matcher drops the rest
before drawing), so seeding does not favour any image.

**Matchers** (``matcher=``): ``"bsds"`` (default; correspondPixels, the benchmark: every reported number);
``"lap"``: the same minimum-cost matching (same integer costs) solved to optimality by scipy's sparse LAPJV on a
graph with every outlier option (no random outlier graph), deterministic, ~3.5x less CPU; on BSDS500 val (100
images, docs/PARTITIONS.md) ODS F / OIS F / AP within 1e-4 of "bsds", P along the curve 0.0002 lower on average (it
picks differently among equal-cost matchings, which moves the "matched to any annotator" count), R 0.0001 higher:
near-exact, for tuning; ``"dt"``: APPROXIMATE, not a matching: a pixel counts as matched when the other map has a
pixel within ``max_dist`` (many-to-one, so optimistic: +0.03 ODS F there), ~25x less matching CPU: for quick
comparisons only, never for reporting.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import warnings

import numpy as np
from pyEdgeEval import correspond_pixels
from scipy import ndimage, sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from skimage.morphology import thin as bwmorph_thin

MAX_DIST = 0.0075  # of the image diagonal: the benchmark's matching tolerance
N_THRESHOLDS = 99  # the benchmark's default for soft edge maps
OUTLIER_COST = 100.0  # correspondPixels' (and the benchmark's) cost of an unmatched pixel, x max_dist x diagonal
MATCH_SEED = 1  # any fixed non-zero seed makes the matcher repeatable (0 would mean the clock); 1: the first one
MATCHERS = ("bsds", "lap", "dt")
_MULTIPLIER = 100  # correspondPixels' float -> integer cost factor (match.cc), kept by the "lap" matcher
_RESEED: tuple | None = None  # (pyEdgeEval's Random::reseed, address of its global generator), found on first use


def bsds_thresholds(n: int = N_THRESHOLDS) -> np.ndarray:
    """The benchmark's thresholds for maps in [0, 1]: float64 [n], ``linspace(1/(n+1), 1 - 1/(n+1), n)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return np.linspace(1 / (n + 1), 1 - 1 / (n + 1), n)


def _reseed(seed: int | None) -> None:
    """Reseed correspondPixels' global generator (``seed=None``: leave it on the clock-seeded stream)."""
    global _RESEED
    if seed is None:
        return
    if _RESEED is None:
        try:  # the same file Python imported, so dlopen hands back the loaded library and its generator
            lib = ctypes.CDLL(importlib.import_module("pyEdgeEval._lib.correspond_pixels").__file__)
            fn = lib._ZN6Random6reseedEm  # Random::reseed(u_int64_t), Itanium C++ ABI
            fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_uint64], None
            _RESEED = (fn, ctypes.addressof(ctypes.c_void_p.in_dll(lib, "_ZN6Random4randE")))
        except (OSError, AttributeError, ValueError, ImportError) as e:
            warnings.warn(f"cannot seed correspondPixels ({e}): boundary scores vary by ~1e-4 between runs",
                          stacklevel=3)
            _RESEED = ()
    if _RESEED:
        _RESEED[0](_RESEED[1], int(seed))


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


def ucm_labels(ucm2: np.ndarray, threshold: float) -> np.ndarray:
    """The partition int32 [H, W] (labels from 1) of a UCM float [2H+1, 2W+1] at ``threshold``, as the region
    benchmark reads it (evaluation_reg_image.m): the 8-connected components of ``ucm2 <= threshold`` (bwlabel's
    default), sampled at the pixels (MATLAB ``(2:2:end, 2:2:end)``)."""
    ucm2 = np.asarray(ucm2, dtype=np.float64)
    _ucm_pb(ucm2)  # shape and finiteness checks
    return ndimage.label(ucm2 <= threshold, structure=np.ones((3, 3), bool))[0][1::2, 1::2].astype(np.int32)


def _check_matcher(matcher: str, max_dist: float, seed=MATCH_SEED) -> None:
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
    if not 0 < max_dist < 1:
        raise ValueError(f"max_dist is a fraction of the image diagonal in (0, 1), got {max_dist}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or not 0 < seed < 2**48):
        raise ValueError(f"seed must be an integer in [1, 2**48) or None (the clock), got {seed!r}")


def _offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer offsets (dy, dx) with dy² + dx² <= radius² (match.cc's window) and their integer costs."""
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dy ** 2 + dx ** 2 <= radius * radius
    dy, dx = dy[keep], dx[keep]
    return dy, dx, np.rint(np.sqrt(dy ** 2 + dx ** 2) * _MULTIPLIER).astype(np.int64)


def _match_lap(bmap: np.ndarray, gt: np.ndarray, radius: float, outlier_cost: float) -> tuple[np.ndarray, int]:
    """correspondPixels' matching problem solved to optimality: min sum of costs of matched pairs + outlier cost per
    unmatched pixel. As a perfect matching: left = map pixels A + GT dummies B', right = GT pixels B + map dummies A';
    a-b (distance), a-a' and b'-b (outlier cost), b'-a' for every a-b pair (0, so a matched pair frees both dummies);
    every weight + 1 (scipy needs non-zero weights; all perfect matchings have the same size, so the optimum stays)."""
    h, w = bmap.shape
    dy, dx, cost = _offsets(radius)
    pad = int(np.ceil(radius))
    ay, ax = np.nonzero(bmap)
    by, bx = np.nonzero(gt)
    node = np.full((h + 2 * pad, w + 2 * pad), -1, np.int64)
    node[by + pad, bx + pad] = np.arange(len(by))
    ii, jj, cc = [], [], []
    for v, u, c in zip(dy, dx, cost):
        j = node[ay + v + pad, ax + u + pad]
        k = np.flatnonzero(j >= 0)
        ii.append(k)
        jj.append(j[k])
        cc.append(np.full(len(k), c))
    ii, jj, cc = np.concatenate(ii), np.concatenate(jj), np.concatenate(cc)
    matched = np.zeros(bmap.shape, bool)
    if not len(ii):
        return matched, 0
    a_ids, ii = np.unique(ii, return_inverse=True)  # matchable pixels only (match.cc drops the rest too)
    _, jj = np.unique(jj, return_inverse=True)
    n1, n2 = len(a_ids), int(jj.max()) + 1
    ow = int(np.ceil(outlier_cost * radius * _MULTIPLIER))
    rows = np.concatenate([ii, np.arange(n1), n1 + np.arange(n2), n1 + jj])
    cols = np.concatenate([jj, n2 + np.arange(n1), np.arange(n2), n2 + ii])
    weight = np.concatenate([cc, np.full(n1 + n2, ow), np.zeros(len(ii), np.int64)]) + 1
    graph = sparse.csr_matrix((weight.astype(np.float64), (rows, cols)), shape=(n1 + n2, n1 + n2))
    left, right = min_weight_full_bipartite_matching(graph)
    real = (left < n1) & (right < n2)
    hit = a_ids[left[real]]
    matched[ay[hit], ax[hit]] = True
    return matched, int(real.sum())


def match_pixels(bmap: np.ndarray, gt: np.ndarray, max_dist: float = MAX_DIST, seed: int | None = MATCH_SEED,
                 matcher: str = "bsds") -> tuple[np.ndarray, int]:
    """Match a (thinned) boundary map bool [H, W] to one annotator's boundary pixels bool [H, W].

    Returns (bool [H, W]: the map's pixels matched to a GT pixel, the number of GT pixels matched). ``matcher``,
    ``seed``: module docstring. Pixels further apart than ``max_dist`` x the image diagonal never match.
    """
    _check_matcher(matcher, max_dist, seed)
    if not (bmap.any() and gt.any()):  # an empty side matches nothing: skip the solver
        return np.zeros(bmap.shape, bool), 0
    radius = max_dist * float(np.hypot(*bmap.shape))
    if matcher == "dt":
        near_gt = ndimage.distance_transform_edt(~gt) <= radius
        near_map = ndimage.distance_transform_edt(~bmap) <= radius
        return bmap & near_gt, int(np.count_nonzero(gt & near_map))
    if matcher == "lap":
        return _match_lap(bmap, gt, radius, OUTLIER_COST)
    _reseed(seed)
    m1, m2, _, _ = correspond_pixels(bmap, gt, max_dist=max_dist, outlier_cost=OUTLIER_COST)
    return m1 > 0, int(np.count_nonzero(m2))


def map_counts(bmap: np.ndarray, gts, max_dist: float = MAX_DIST, thin: bool = True, seed: int | None = MATCH_SEED,
               matcher: str = "bsds") -> tuple[int, int, int, int]:
    """(cntR, sumR, cntP, sumP) of one binary boundary map bool [H, W] against every annotator's bool [H, W]
    (thinned first unless ``thin=False``; ``seed``, ``matcher``: module docstring)."""
    bmap = np.asarray(bmap, dtype=bool)
    if bmap.ndim != 2:
        raise ValueError(f"boundary map must be [H, W], got shape {bmap.shape}")
    gts = _gt_list(gts, bmap.shape)
    _check_matcher(matcher, max_dist, seed)
    if thin:
        bmap = bwmorph_thin(bmap)
    matched_p = np.zeros(bmap.shape, bool)
    cnt_r = 0
    for g in gts:
        m, n = match_pixels(bmap, g, max_dist, seed, matcher)
        matched_p |= m
        cnt_r += n
    return cnt_r, int(sum(g.sum() for g in gts)), int(matched_p.sum()), int(bmap.sum())


def map_key(bmap: np.ndarray) -> str:
    """A content key of a binary map bool [H, W] (sha1 of its shape and bits): equal keys, equal counts."""
    b = np.asarray(bmap, dtype=bool)
    return hashlib.sha1(np.asarray(b.shape, np.int64).tobytes() + np.packbits(b).tobytes()).hexdigest()


def _distinct(raw_maps, thin: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Binary maps (an iterable; None = the same as the previous map) -> (the distinct maps after thinning,
    index int64 [T] of each input's map in that list)."""
    maps, where, index, prev = [], {}, [], -1
    for raw in raw_maps:
        if raw is not None:
            m = bwmorph_thin(raw) if thin else np.asarray(raw, dtype=bool)
            key = np.packbits(m).tobytes()
            if key not in where:
                where[key] = len(maps)
                maps.append(m)
            prev = where[key]
        index.append(prev)
    return maps, np.asarray(index, dtype=np.int64)


def _level_maps(pb: np.ndarray, thresholds: np.ndarray):
    """``pb >= t`` for each threshold, None when it equals the previous one (t in the same gap between pb's values:
    a UCM only changes where the threshold crosses one of its levels)."""
    levels = np.unique(pb)
    slots = np.searchsorted(levels, thresholds, side="left")  # pb >= t  <=>  pb >= levels[slot]
    prev = None
    for t, slot in zip(thresholds, slots):
        yield None if slot == prev else pb >= t
        prev = slot


def _ucm_pb(ucm2: np.ndarray) -> np.ndarray:
    ucm2 = np.asarray(ucm2, dtype=np.float64)
    if ucm2.ndim != 2 or ucm2.shape[0] % 2 == 0 or ucm2.shape[1] % 2 == 0 or min(ucm2.shape) < 3:
        raise ValueError(f"ucm2 must be [2H+1, 2W+1], got shape {ucm2.shape}")
    if not np.isfinite(ucm2).all():
        raise ValueError("ucm2 contains NaN or inf")
    return ucm2[2::2, 2::2]


def _edge_pb(pb: np.ndarray) -> np.ndarray:
    pb = np.asarray(pb, dtype=np.float64)
    if pb.ndim != 2:
        raise ValueError(f"edge map must be [H, W], got shape {pb.shape}")
    if not np.isfinite(pb).all() or pb.min(initial=0) < 0 or pb.max(initial=0) > 1:
        raise ValueError(f"edge map must be finite and in [0, 1], got range [{pb.min()}, {pb.max()}] "
                         "(a UCM with other heights: ucm_counts)")
    return pb


def edge_maps(pb: np.ndarray, thresholds=None, thin: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct (thinned) maps bool [H, W] of a soft edge map float [H, W] in [0, 1] at ``thresholds`` (default
    ``bsds_thresholds()``) and index int64 [T] into them: what ``edge_counts`` matches, for farming out."""
    pb = _edge_pb(pb)
    t = bsds_thresholds() if thresholds is None else _check_thresholds(thresholds)
    return _distinct(_level_maps(pb, t), thin)


def ucm_maps(ucm2: np.ndarray, thresholds=None, thin: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """As ``edge_maps`` for a UCM float [2H+1, 2W+1] on its own height scale (``ucm_counts``)."""
    pb = _ucm_pb(ucm2)
    t = bsds_thresholds() if thresholds is None else _check_thresholds(thresholds)
    return _distinct(_level_maps(pb, t), thin)


def partition_maps(partitions, thin: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """As ``edge_maps`` for T flat partitions int [H, W] drawn by ``bsds_boundaries`` (``partition_counts``)."""
    return _distinct((bsds_boundaries(s) for s in partitions), thin)


def _maps_counts(maps, index, gts, max_dist: float, seed, matcher: str) -> np.ndarray:
    """float64 [T, 4]: the (already thinned) distinct maps' counts, row k from maps[index[k]]."""
    table = [map_counts(m, gts, max_dist, False, seed, matcher) for m in maps]
    return np.array([table[i] for i in index], dtype=np.float64).reshape(-1, 4)


def edge_counts(pb: np.ndarray, gts, thresholds=None, max_dist: float = MAX_DIST, thin: bool = True,
                seed: int | None = MATCH_SEED, matcher: str = "bsds") -> np.ndarray:
    """Counts float64 [T, 4] of a soft edge map pb float [H, W] in [0, 1] at ``thresholds`` (default: the
    benchmark's 99, ``bsds_thresholds()``)."""
    _check_matcher(matcher, max_dist, seed)
    return _maps_counts(*edge_maps(pb, thresholds, thin), gts, max_dist, seed, matcher)


def ucm_counts(ucm2: np.ndarray, gts, thresholds=None, max_dist: float = MAX_DIST, thin: bool = True,
               seed: int | None = MATCH_SEED, matcher: str = "bsds") -> np.ndarray:
    """Counts float64 [T, 4] of an ultrametric contour map in the ucm2 layout float [2H+1, 2W+1]
    (``featlib.cluster.Hierarchy.ucm()``), thresholded on its own height scale (default: the benchmark's 99
    thresholds, which assume heights in [0, 1])."""
    _check_matcher(matcher, max_dist, seed)
    return _maps_counts(*ucm_maps(ucm2, thresholds, thin), gts, max_dist, seed, matcher)


def partition_counts(partitions, gts, max_dist: float = MAX_DIST, thin: bool = True, seed: int | None = MATCH_SEED,
                     matcher: str = "bsds") -> np.ndarray:
    """Counts float64 [T, 4] of T flat partitions int [H, W] (a sweep, e.g. coarse to fine), each one
    "threshold" (the benchmark's ``segs`` input: thresholds 1..T)."""
    _check_matcher(matcher, max_dist, seed)
    return _maps_counts(*partition_maps(partitions, thin), gts, max_dist, seed, matcher)


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
