"""One merge hierarchy per image from multi-stride feature distances -> partitions at any granularity.

    h = build_hierarchy(features)                  # FeatureNet dict {s: [C, h, w]} or one map [C, H, W]
    labels = h.partition(n_segments=50)             # int32 [H, W], labels 0..49, each segment connected
    labels = h.partition(threshold=0.2)             # or cut at a merge height
    ucm2 = h.ucm()                                  # [2H+1, 2W+1] ultrametric contour map (BSDS ucm2 layout)

Algorithm (chosen for speed and for partitions that follow the mesh; see docs/PARTITIONS.md):
1. ``featlib.distances.distance_mesh`` combines the per-stride neighbour distances into one full-resolution mesh.
2. Oversegmentation (``seed_watershed``): watershed of the per-pixel boundary strength
   (``featlib.graphcut.pixel_strength``) from a regular grid of seeds (``seed_spacing`` px) plus one seed per flat
   plateau, so every initial region is connected and small.
3. Greedy region merging on the region adjacency graph: always merge the adjacent pair whose shared boundary has
   the lowest *mean* mesh distance (boundary sums and lengths are added on merge, as in OWT-UCM's merging), with
   a mild size prior so specks merge before large regions (``featlib.merging``; optionally also the distance
   between two regions' mean features, ``region_weight``). Merge heights are made monotone (running max), so
   cuts at increasing thresholds are nested and the heights form an ultrametric.
A cut replays the first merges through a union-find over the initial regions (no pixel work beyond a final
lookup), so moving a granularity slider costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import local_minima
from skimage.segmentation import felzenszwalb, slic, watershed

from featlib.boundary_net import boundary_meshes, check_scales, to_size, working_copy, working_scale
from featlib.distances import LAB_SMOOTH_SIGMA, DistanceMesh, distance_mesh, lab_features
from featlib.gradients import oriented_gradients, pixel_mesh
from featlib.graphcut import grid_seeds, pixel_strength
from featlib.merging import REGION_AREA, merge_regions, region_descriptors
from featlib.spectral import add_to_mesh, spectral_boundaries


@dataclass
class Hierarchy:
    """A merge tree over an initial oversegmentation.

    Attributes:
        regions: int32 [H, W] initial region ids 0..R-1.
        merges: int64 [M, 2] region-graph merges in order (ids of two initial regions, one from each side).
        heights: float64 [M] monotone merge heights.
        mesh: the distance mesh the hierarchy was built from.
        edge_pairs / edge_height: initial-region adjacency pairs [E, 2] and the height at which each pair merges
            (used by ``ucm``).
    """

    regions: np.ndarray
    merges: np.ndarray
    heights: np.ndarray
    mesh: DistanceMesh
    edge_pairs: np.ndarray
    edge_height: np.ndarray

    @property
    def n_regions(self) -> int:
        return int(self.regions.max()) + 1 if self.regions.size else 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.regions.shape

    def _region_labels(self, k: int) -> np.ndarray:
        """Initial region -> segment label (0..n-1) after the first ``k`` merges."""
        r = self.n_regions
        m = self.merges[:k]
        graph = coo_matrix((np.ones(len(m)), (m[:, 0], m[:, 1])), shape=(r, r))
        _, lab = connected_components(graph, directed=False)
        # relabel by the smallest initial region id in each segment: stable across cuts, 0..n-1
        _, first = np.unique(lab, return_index=True)
        order = np.argsort(np.argsort(first))
        return order[lab].astype(np.int32)

    def partition(self, n_segments: int | None = None, threshold: float | None = None) -> np.ndarray:
        """int32 [H, W] labels 0..n-1 with ``n_segments`` segments (clipped to [1, R]) or all merges <= threshold."""
        if (n_segments is None) == (threshold is None):
            raise ValueError("give exactly one of n_segments or threshold")
        r = self.n_regions
        if n_segments is not None:
            if n_segments < 1:
                raise ValueError(f"n_segments must be >= 1, got {n_segments}")
            k = int(np.clip(r - n_segments, 0, len(self.merges)))
        else:
            k = int(np.searchsorted(self.heights, threshold, side="right"))
        return self._region_labels(k)[self.regions]

    def n_segments_at(self, threshold: float) -> int:
        return self.n_regions - int(np.searchsorted(self.heights, threshold, side="right"))

    def thresholds(self, n: int = 32) -> np.ndarray:
        """``n`` cut heights spread over the hierarchy (quantiles of the merge heights), ascending."""
        if not len(self.heights):
            return np.zeros(1)
        return np.unique(np.quantile(self.heights, np.linspace(0, 1, n)))

    def ucm(self) -> np.ndarray:
        """Ultrametric contour map in the BSDS ``ucm2`` layout: float [2H+1, 2W+1].

        Pixel (y, x) sits at (2y+1, 2x+1); the edge between (y, x) and (y+1, x) at (2y+2, 2x+1), between (y, x)
        and (y, x+1) at (2y+1, 2x+2); even-even entries (corners) take the max of their edges. The value is the
        height at which the two sides merge (0 inside an initial region). Thresholding ``ucm2 > t`` and labelling
        the pixel grid of ``ucm2 <= t`` gives ``partition(threshold=t)``.
        """
        reg = self.regions
        h, w = reg.shape
        r = max(self.n_regions, 1)
        keys = self.edge_pairs[:, 0] * r + self.edge_pairs[:, 1]  # sorted (from np.unique)

        def height(a, b):
            lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
            out = np.zeros(a.shape)
            cross = lo != hi
            idx = np.searchsorted(keys, lo[cross] * r + hi[cross])
            out[cross] = self.edge_height[idx]
            return out

        out = np.zeros((2 * h + 1, 2 * w + 1))
        out[2:-1:2, 1::2] = height(reg[:-1, :], reg[1:, :])
        out[1::2, 2:-1:2] = height(reg[:, :-1], reg[:, 1:])
        corners = np.zeros((h + 1, w + 1))
        v, hz = out[2:-1:2, 1::2], out[1::2, 2:-1:2]
        corners[1:-1, :-1] = np.maximum(corners[1:-1, :-1], v)
        corners[1:-1, 1:] = np.maximum(corners[1:-1, 1:], v)
        corners[:-1, 1:-1] = np.maximum(corners[:-1, 1:-1], hz)
        corners[1:, 1:-1] = np.maximum(corners[1:, 1:-1], hz)
        out[::2, ::2] = corners
        return out


def seed_watershed(mesh: DistanceMesh, seed_spacing: int = 8) -> np.ndarray:
    """Watershed of the per-pixel boundary strength from grid and plateau seeds: int32 [H, W] connected regions 0..R-1.

    The hierarchy's initial oversegmentation (click segmentation and HILL use ``featlib.graphcut.edge_watershed``,
    which floods the pixel edges instead). One seed per ``seed_spacing`` x ``seed_spacing`` cell at its weakest pixel.
    """
    h, w = mesh.shape
    g = pixel_strength(mesh)
    s = max(1, int(seed_spacing))
    gy, gx = grid_seeds(g, s)  # at each cell's weakest pixel, so seeds never sit on a boundary
    markers = np.zeros((h, w), np.int32)
    markers[gy, gx] = np.arange(1, gy.size + 1)
    # Flat regional minima (uniform areas, e.g. a small object of constant feature) get one seed covering the
    # whole plateau: grid seeds alone could miss an object smaller than a cell or split a plateau arbitrarily.
    plateaus, n = ndimage.label(local_minima(g, connectivity=1, allow_borders=True))
    if n:
        big = np.flatnonzero(np.bincount(plateaus.ravel())[1:] >= max(4, s * s // 2)) + 1
        keep = np.isin(plateaus, big)
        markers[keep] = gy.size + plateaus[keep]
    regions = watershed(g, markers, connectivity=1)
    # watershed regions are connected by construction; relabel densely in label order (a lookup, not a sort)
    present = np.bincount(regions.ravel()) > 0
    return (np.cumsum(present) - 1).astype(np.int32)[regions]


def build_hierarchy(features, *, mesh_weights=None, connectivity: int = 4, seed_spacing: int = 6,
                    size_prior: float = 64.0, contrast: float = 0.01, size: tuple[int, int] | None = None
                    ) -> Hierarchy:
    """Build the merge hierarchy of one image.

    Args:
        features: FeatureNet output for one image ``{s: [C, h, w]}`` (tensor or array), or one map [C, H, W]
            (e.g. ``featlib.distances.lab_features(image)``).
        mesh_weights: {s: w} weights of the per-stride distance meshes (default: equal).
        connectivity: 4 (the pixel grid's neighbours; 8 is not supported by the mesh).
        seed_spacing: grid spacing of the watershed seeds of the initial oversegmentation (px).
        size_prior, contrast: merge-cost shaping (see ``merge_regions``); defaults chosen on BSDS500 val
            (docs/PARTITIONS.md).
        size: (H, W) of the image when features are a dict whose finest stride > 1.
    """
    if connectivity != 4:
        raise ValueError(f"only 4-connectivity is supported, got {connectivity}")
    mesh = distance_mesh(features, mesh_weights=mesh_weights, size=size)
    return hierarchy_from_mesh(mesh, seed_spacing=seed_spacing, size_prior=size_prior, contrast=contrast)


def hierarchy_from_mesh(mesh: DistanceMesh, *, seed_spacing: int = 6, size_prior: float = 64.0,
                        contrast: float = 0.01, spectral: float = 0.0, merge_mesh: DistanceMesh | None = None,
                        region_features=None, region_weight: float = 0.0, region_area: float = REGION_AREA
                        ) -> Hierarchy:
    """Steps 2-3 of the algorithm on any boundary mesh; ``spectral > 0`` first adds that weight x the spectral
    boundaries of the initial regions (``featlib.spectral``) to the mesh the merging reads. ``merge_mesh`` (same
    shape): the merging reads it instead of ``mesh``, which then only places the watershed's arcs.
    ``region_weight > 0``: the merge cost also reads the distance between the regions' mean ``region_features``
    ({s: [C, ceil(H/s), ceil(W/s)]}, ramped in over ``region_area`` px: ``featlib.merging``)."""
    if region_weight > 0 and region_features is None:
        raise ValueError("region_weight > 0 needs region_features (the features whose region means it compares)")
    regions = seed_watershed(mesh, seed_spacing)
    if merge_mesh is not None:
        if merge_mesh.shape != mesh.shape:
            raise ValueError(f"merge_mesh {merge_mesh.shape} and mesh {mesh.shape} differ in shape")
        mesh = merge_mesh
    if spectral > 0:
        mesh = add_to_mesh(mesh, spectral_boundaries(regions, mesh), spectral)
    desc = region_descriptors(regions, region_features) if region_weight > 0 else None
    merges, heights, pairs, edge_height = merge_regions(regions, mesh, size_prior, contrast, desc, region_weight,
                                                        region_area)
    return Hierarchy(regions, merges, heights, mesh, pairs, edge_height)


def check_map_settings(boundary_map: str = "chi2", *, boundary_scales=(1.0,),
                       boundary_net=None, cue_weights=None, nms: bool = False, merge_scales=None,
                       max_side: int | None = None) -> None:
    """ValueError for a combination ``gradient_hierarchy`` cannot run (callers check before reading any image):
    an unknown map; ``cue_weights`` with the learned map (it learned its own weighting); ``boundary_scales`` /
    ``merge_scales`` other than one scale or a ``boundary_net`` with chi2; a bad ``max_side``."""
    if boundary_map not in ("chi2", "learned"):
        raise ValueError(f"boundary_map must be 'chi2' or 'learned', got {boundary_map!r}")
    given = {"boundary_scales": boundary_scales} if merge_scales is None else \
        {"boundary_scales": boundary_scales, "merge_scales": merge_scales}
    one_scale = all(check_scales(v) == (1.0,) for v in given.values())
    named = " / ".join(f"{k} {v!r}" for k, v in given.items())
    if boundary_map == "chi2" and (not one_scale or boundary_net is not None):
        raise ValueError(f"{named} and boundary_net {boundary_net!r} need "
                         "boundary_map='learned' (chi2 is one scale and has no network)")
    if boundary_map == "chi2" and nms:
        raise ValueError("nms=True thins the learned map: it needs boundary_map='learned'")
    working_scale((1, 1), max_side)  # ValueError for a bad max_side
    if boundary_map == "learned" and cue_weights is not None:
        raise ValueError("boundary_map='learned' learned its own cue weighting: pass no cue_weights")


def chi2_mesh(image: np.ndarray, features=None, cue_weights=None, feature_weight: float = 1.0,
              max_side: int | None = None) -> DistanceMesh:
    """The histogram-gradient boundary mesh (``gradients.oriented_gradients``' strength) of ``image`` read at its
    working resolution: a larger image's strength is computed on a copy whose longer side is ``max_side``
    (``features`` {s: [C, ceil(H/s), ceil(W/s)]} of the full image join it there) and brought back bilinearly."""
    work, _ = working_copy(image, max_side)
    return pixel_mesh(to_size(oriented_gradients(work, features, cue_weights, feature_weight).strength,
                              np.shape(image)[:2]))


def gradient_hierarchy(image: np.ndarray, features=None, *, boundary_map: str = "chi2", seed_spacing: int = 8,
                       size_prior: float = 256.0, spectral: float = 1.0, feature_weight: float = 1.0,
                       cue_weights=None, boundary_scales=(1.0,), boundary_net=None, nms: bool = False,
                       merge_scales=None, max_side: int | None = None, region_weight: float = 0.0,
                       region_area: float = REGION_AREA) -> Hierarchy:
    """The hierarchy on a boundary map of ``image`` uint8 [H, W, 3], merged by mean boundary strength (no internal
    contrast term: histogram differences are already relative to the texture), after spectral globalisation when
    ``spectral > 0``.

    boundary_map: "chi2" -- the equal-weight oriented histogram gradients (``featlib.gradients``), plus learned
    ``features`` {s: [C, h, w]} as one more cue when given; "learned" -- ``featlib.boundary_net`` on the same cues
    (trained on BSDS500 train boundaries; no ``cue_weights``), averaged over the image resized by each of
    ``boundary_scales`` (``boundary_net.boundary_probability``; scales in (0, 2], (1.0, 2.0) colour's default); with
    ``features`` the network that also reads them at scale 1 (other scales: the colour network's map of the resized
    image, ``boundary_net.boundary_probability``). ``boundary_net``: a network file
    (``scripts/train_boundary.py``) instead of the shipped one. ``nms``: the learned map after non-maximum
    suppression (``boundary_net.suppress_nonmaxima``). ``merge_scales``: the merge heights read the mean map over
    these scales while the watershed reads ``boundary_scales``' (None: the same map; (1.0, 0.5, 2.0) with
    boundary scales (1.0, 2.0) is colour's default, ``featlib.features.SCALES``, ``boundary_net.boundary_meshes``).
    ``max_side``: the working resolution -- a larger image's map (either kind) is computed at that longer side
    and brought back, and the watershed's seed spacing and the size prior (an area) grow with the image, so a photo
    gets the hierarchy of its working-size copy, drawn at full resolution (the cues' radii and the network are
    BSDS500's scale: docs/PARTITIONS.md "Large photos"). ``region_weight > 0`` (needs ``features`` at the image's
    own scale): the merge cost also reads how far apart the regions' mean features are (``featlib.merging``;
    ``region_area`` px at BSDS500's scale, growing with the image as the size prior). Defaults chosen on 20
    held-out BSDS500 train images (docs/PARTITIONS.md)."""
    if region_weight > 0 and features is None:
        raise ValueError("region_weight > 0 compares the regions' mean features: it needs features")
    check_map_settings(boundary_map, boundary_scales=boundary_scales,
                       boundary_net=boundary_net, cue_weights=cue_weights, nms=nms, merge_scales=merge_scales,
                       max_side=max_side)
    if boundary_map == "learned":
        mesh, merge_mesh = boundary_meshes(image, boundary_net, scales=boundary_scales, merge_scales=merge_scales,
                                           features=features, nms=nms, max_side=max_side)
    else:
        mesh = merge_mesh = chi2_mesh(image, features, cue_weights, feature_weight, max_side)
    base = working_scale(np.shape(image), max_side)
    return hierarchy_from_mesh(mesh, seed_spacing=max(1, round(seed_spacing / base)), size_prior=size_prior / base**2,
                               contrast=0.0, spectral=spectral, merge_mesh=merge_mesh, region_features=features,
                               region_weight=region_weight, region_area=region_area / base**2)


# ----------------------------------------------------------------------------------- baselines, same interface


class FixedPartitioner:
    """A baseline that recomputes a partition per requested segment count (SLIC / Felzenszwalb)."""

    def __init__(self, image: np.ndarray, method: str):
        if method not in ("slic", "felzenszwalb"):
            raise ValueError(f"method must be 'slic' or 'felzenszwalb', got {method!r}")
        self.image, self.method = np.asarray(image), method
        self._table: list[tuple[int, np.ndarray]] = []

    def precompute(self, n_params: int = 40) -> FixedPartitioner:
        """Run the method once per setting of a geometric grid of its granularity parameter (SLIC: n_segments 2 ..
        1500; Felzenszwalb: scale 100000 .. 5); afterwards ``partition(n_segments=n)`` is a lookup of the partition
        whose segment count is nearest n (what a slider needs; SLIC's and FH's counts only approximate what is
        asked, so the table keeps what each setting really gave)."""
        grid = (np.unique(np.geomspace(2, 1500, n_params).astype(int)) if self.method == "slic"
                else np.geomspace(100000, 5, n_params))
        table = {}
        for v in grid:
            lab = self._run(int(v) if self.method == "slic" else None, None if self.method == "slic" else float(v))
            table.setdefault(int(lab.max()) + 1, lab)
        self._table = sorted(table.items())
        return self

    def partition(self, n_segments: int | None = None, threshold: float | None = None) -> np.ndarray:
        if self._table and n_segments is not None:
            counts = np.array([c for c, _ in self._table])
            return self._table[int(np.argmin(np.abs(np.log(counts) - np.log(max(n_segments, 1)))))][1]
        return self._run(n_segments, threshold)

    def _run(self, n_segments: int | None, threshold: float | None) -> np.ndarray:
        img = self.image
        if self.method == "slic":
            if n_segments is None:
                raise ValueError("SLIC needs n_segments")
            lab = slic(img, n_segments=n_segments, compactness=10, start_label=0, enforce_connectivity=True)
        else:
            # FH's scale parameter controls granularity; `threshold` is that scale, or search it for n_segments
            scale = threshold if threshold is not None else _fh_scale_for(img, n_segments)
            lab = felzenszwalb(img, scale=scale, sigma=0.8, min_size=20)
        return _relabel_connected(lab)

    def thresholds(self, n: int = 16) -> np.ndarray:
        return np.geomspace(10, 3000, n)


def _fh_scale_for(img: np.ndarray, n_segments: int) -> float:
    lo, hi = 1.0, 1e5
    for _ in range(12):  # bisection in log-scale on the segment count
        mid = np.sqrt(lo * hi)
        n = felzenszwalb(img, scale=mid, sigma=0.8, min_size=20).max() + 1
        if n > n_segments:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def _relabel_connected(labels: np.ndarray) -> np.ndarray:
    """Split disconnected segments (4-connectivity) and relabel 0..n-1."""
    out = np.zeros(labels.shape, np.int32)
    nxt = 0
    for v in np.unique(labels):
        lab, n = ndimage.label(labels == v)
        out[lab > 0] = lab[lab > 0] - 1 + nxt
        nxt += n
    return out


def lab_hierarchy(image: np.ndarray, smooth: float = LAB_SMOOTH_SIGMA, **kw) -> Hierarchy:
    """The hierarchy on raw CIE Lab colour (the learning-free baseline), Gaussian-smoothed by ``smooth`` px
    (``distances.lab_features``)."""
    return build_hierarchy(lab_features(image, smooth), **kw)
