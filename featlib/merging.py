"""Greedy region merging: mean boundary strength, a size prior and, optionally, how far apart two regions' mean
learned features are.

    merges, heights, pairs, edge_height = merge_regions(regions, mesh, size_prior=256.0)
    desc = region_descriptors(regions, features)     # FeatureNet {s: [C_s, ceil(H/s), ceil(W/s)]} -> sums per region
    merges, heights, pairs, edge_height = merge_regions(regions, mesh, 256.0, descriptors=desc, region_weight=4.0)

The cost of merging two adjacent regions A and B (m = min(|A|, |B|) in pixels; every quantity is added up when
regions merge, so the cost of any pair is exact at any time):

    c(A, B) = mean_{e in boundary(A, B)} d_e  *  m / (m + size_prior)  *  (1 + lambda * D(A, B) * m / (m + a))
    D(A, B) = 1/S sum_s ||mu_s(A) - mu_s(B)|| / sqrt(C_s)          (mu_s: mean stride-s feature over the region)

- mean boundary strength over the common boundary (OWT-UCM's merging order): boundary sums and lengths add on merge;
- the size prior: specks (a few pixels on a boundary, whose mean boundary is high) merge first;
- ``contrast > 0`` (the "mesh" grouping): c is divided by ``contrast + mean internal distance of A u B``
  (Felzenszwalb-Huttenlocher's adaptivity, in mean form);
- ``region_weight`` lambda > 0 with ``descriptors``: the regions' mean features. The discriminative loss pulls a
  mask's features to their mean and pushes neighbouring masks' means 0.4 sqrt(C_s) apart, so D reads what
  FeatureNet was trained to say -- "these two regions are different objects" -- and reads it over whole regions,
  where a boundary map sees only the pixels along their border. The ramp m / (m + a) (``region_area`` a, pixels)
  lets it speak for large regions only (a small region's mean is noisy, and its boundary already decides). The
  term multiplies the boundary cost: a strong boundary is never weakened, a weak one between two regions that the
  features tell apart merges later. Chosen on Stanford Background photos with ``bsds500-b0-all``
  (docs/PARTITIONS.md "Regions' mean features in the merging"): lambda 4, a = 250 px at BSDS500's scale.

Heights are the running maximum of the popped costs, so they are monotone and the cuts nested (an ultrametric).
"""

from __future__ import annotations

import heapq

import numba
import numpy as np
from scipy.sparse import coo_matrix

from featlib.distances import DistanceMesh, feature_dict
from featlib.graphcut import region_adjacency

REGION_AREA = 250.0  # a, pixels at BSDS500's scale (481 x 321): lambda 4 with a 64 / 250 / 1000 px -- covering ODS
# 0.616 / 0.617 / 0.612 on 179 Stanford Background photos (docs/PARTITIONS.md)


def _adjacency(regions: np.ndarray, mesh: DistanceMesh):
    """Initial-region adjacency: pairs int64 [E, 2] (a < b, sorted), boundary distance sums [E] and lengths [E]."""
    i, j, d = mesh.edges()
    ei, ej, sums, lens = region_adjacency(regions, i, j, d.astype(np.float64))
    return np.stack([ei, ej], 1), sums, lens


def region_descriptors(regions: np.ndarray, features) -> tuple[np.ndarray, np.ndarray]:
    """Per-region sums of each stride's features: (sums float64 [R, sum_s C_s], offsets int64 [S + 1]); the columns
    of stride k are ``offsets[k]:offsets[k + 1]``, strides ascending.

    ``regions`` int [H, W] ids 0..R-1; ``features`` {s: [C_s, h_s, w_s]} at the image's own scale (a FeatureNet's
    output: h_s = ceil(H / s)) or one [C, H, W] map (stride 1). Each pixel reads the cell it lies in (pixel y
    belongs to cell y // s), so a region's sum is its mean feature times its area, exactly as if every stride were
    upsampled by repetition. ValueError when a stride's grid does not fit the regions.
    """
    regions = np.asarray(regions)
    if regions.ndim != 2 or not np.issubdtype(regions.dtype, np.integer) or regions.size == 0:
        raise ValueError(f"regions must be a non-empty int [H, W] map, got {regions.dtype} {regions.shape}")
    feats = feature_dict(features)
    h, w = regions.shape
    r = int(regions.max()) + 1
    rows = regions.ravel()
    cols, offsets = [], [0]
    for s, f in sorted(feats.items()):
        c, fh, fw = f.shape
        if (fh, fw) != (-(-h // s), -(-w // s)):
            raise ValueError(f"stride {s} features are {fh} x {fw}; regions {h} x {w} need "
                             f"{-(-h // s)} x {-(-w // s)} (features at the image's own scale)")
        cell = ((np.arange(h) // s)[:, None] * fw + (np.arange(w) // s)[None, :]).ravel()
        counts = coo_matrix((np.ones(h * w), (rows, cell)), shape=(r, fh * fw)).tocsr()
        cols.append(counts @ f.reshape(c, -1).T.astype(np.float64))
        offsets.append(offsets[-1] + c)
    return np.ascontiguousarray(np.concatenate(cols, 1)), np.asarray(offsets, np.int64)


def merge_regions(regions: np.ndarray, mesh: DistanceMesh, size_prior: float = 16.0, contrast: float = 0.0,
                  descriptors: tuple[np.ndarray, np.ndarray] | None = None, region_weight: float = 0.0,
                  region_area: float = REGION_AREA):
    """Greedy merging by the cost of the module docstring. Returns (merges int64 [M, 2], heights float64 [M],
    edge_pairs int64 [E, 2], edge_height float64 [E]: the height at which each initial adjacency merges).

    ``descriptors``: ``region_descriptors(regions, features)``, needed when ``region_weight > 0``."""
    if region_weight < 0 or region_area <= 0:
        raise ValueError(f"need region_weight >= 0 and region_area > 0, got {region_weight}, {region_area}")
    r = int(regions.max()) + 1
    area = np.bincount(regions.ravel(), minlength=r).astype(np.float64)
    if region_weight > 0:
        if descriptors is None:
            raise ValueError("region_weight > 0 needs descriptors (region_descriptors(regions, features))")
        desc, offsets = descriptors
        if desc.ndim != 2 or desc.shape[0] != r or offsets[-1] != desc.shape[1]:
            raise ValueError(f"descriptors {desc.shape} (offsets ending {offsets[-1]}) do not describe {r} regions")
    else:
        desc, offsets = np.zeros((r, 0)), np.zeros(1, np.int64)
    pairs, sums, lens = _adjacency(regions, mesh)
    # internal edge statistics (sum, count) per region: the texture a boundary is compared against
    i, j, d = mesh.edges()
    a_all = regions.ravel()[i]
    inside = a_all == regions.ravel()[j]
    d_all = d.astype(np.float64)
    isum = np.bincount(a_all[inside], weights=d_all[inside], minlength=r).astype(np.float64)
    icnt = np.bincount(a_all[inside], minlength=r).astype(np.float64)
    merges, heights, edge_height = _merge_loop(
        pairs.astype(np.int64), sums.astype(np.float64), lens.astype(np.float64), area, isum, icnt,
        float(size_prior), float(contrast), np.asarray(desc, np.float64), np.asarray(offsets, np.int64),
        float(region_weight), float(region_area))
    return merges, heights, pairs, edge_height


@numba.njit(cache=True)
def _descriptor_distance(desc, area, offsets, a, b):
    """D(A, B): the mean over strides of ||mu_a - mu_b|| / sqrt(C_s), from per-region sums."""
    total = 0.0
    n = offsets.shape[0] - 1
    for k in range(n):
        acc = 0.0
        for j in range(offsets[k], offsets[k + 1]):
            diff = desc[a, j] / area[a] - desc[b, j] / area[b]
            acc += diff * diff
        total += np.sqrt(acc / (offsets[k + 1] - offsets[k]))
    return total / n


@numba.njit(cache=True)
def _merge_cost(a, b, s, n, area, isum, icnt, size_prior, contrast, desc, offsets, weight, region_area):
    m = min(area[a], area[b])
    c = s / n * m / (m + size_prior)
    if contrast:
        # boundary relative to the regions' own texture (Felzenszwalb-Huttenlocher's adaptivity, in mean form)
        c = c / (contrast + (isum[a] + isum[b]) / max(icnt[a] + icnt[b], 1.0))
    if weight > 0:
        c = c * (1.0 + weight * _descriptor_distance(desc, area, offsets, a, b) * m / (m + region_area))
    return c


@numba.njit(cache=True)
def _merge_loop(pairs, sums, lens, area, isum, icnt, size_prior, contrast, desc, offsets, weight, region_area):
    """The greedy loop, compiled with numba (scalar work: 47 ms at 512², 300 ms as the same loop in Python).

    A boundary record is named by the id of its first initial edge; merging two records sums their boundary
    statistics and chains their initial edges (``nxt``/``tail``) so each initial edge learns its merge height.
    Heap entries are (cost, version a, version b, a, b) as floats (exact for these integers), popped in the same
    total order as a tuple heap; entries whose clusters changed since are stale and skipped.
    """
    r, e_count = area.shape[0], pairs.shape[0]
    area, isum, icnt, desc = area.copy(), isum.copy(), icnt.copy(), desc.copy()
    rec_s, rec_n = sums.copy(), lens.copy()
    nxt = np.full(e_count, -1, np.int64)
    tail = np.arange(e_count)
    nbrs = [numba.typed.Dict.empty(numba.int64, numba.int64) for _ in range(r)]  # cluster -> {neighbour: record}
    for e in range(e_count):
        nbrs[pairs[e, 0]][pairs[e, 1]] = e
        nbrs[pairs[e, 1]][pairs[e, 0]] = e
    alive = np.ones(r, np.bool_)
    version = np.zeros(r, np.int64)
    heap = [(_merge_cost(pairs[e, 0], pairs[e, 1], rec_s[e], rec_n[e], area, isum, icnt, size_prior, contrast,
                         desc, offsets, weight, region_area),
             0.0, 0.0, float(pairs[e, 0]), float(pairs[e, 1])) for e in range(e_count)]
    heapq.heapify(heap)
    merges = np.empty((max(r - 1, 0), 2), np.int64)
    heights = np.empty(max(r - 1, 0))
    edge_height = np.zeros(e_count)
    n_merges, level = 0, 0.0
    while len(heap):
        c, fva, fvb, fa, fb = heapq.heappop(heap)
        a, b = int(fa), int(fb)
        if not (alive[a] and alive[b]) or version[a] != int(fva) or version[b] != int(fvb):
            continue  # stale entry
        level = max(level, c)
        merges[n_merges, 0], merges[n_merges, 1] = a, b
        heights[n_merges] = level
        n_merges += 1
        rec = nbrs[a][b]
        e = rec
        while e >= 0:
            edge_height[e] = level
            e = nxt[e]
        isum[a] += isum[b] + rec_s[rec]
        icnt[a] += icnt[b] + rec_n[rec]
        isum[b], icnt[b] = isum[a], icnt[a]
        if len(nbrs[a]) < len(nbrs[b]):  # fold the smaller neighbour map into the larger; keep that id
            a, b = b, a
        na, nb = nbrs[a], nbrs[b]
        del na[b]
        del nb[a]
        for n, rb in nb.items():
            del nbrs[n][b]
            if n in na:  # a common neighbour: the two boundaries become one
                ra = na[n]
                rec_s[ra] += rec_s[rb]
                rec_n[ra] += rec_n[rb]
                nxt[tail[ra]] = rb
                tail[ra] = tail[rb]
            else:
                na[n] = rb
                nbrs[n][a] = rb
        nb.clear()
        alive[b] = False
        area[a] += area[b]
        desc[a] += desc[b]
        version[a] += 1
        for n, rn in na.items():
            lo, hi = min(a, n), max(a, n)
            heapq.heappush(heap, (_merge_cost(lo, hi, rec_s[rn], rec_n[rn], area, isum, icnt, size_prior, contrast,
                                              desc, offsets, weight, region_area),
                                  float(version[lo]), float(version[hi]), float(lo), float(hi)))
    return merges[:n_merges], heights[:n_merges], edge_height
