"""The region graph of one image that click segmentation cuts: nodes, their features, edges, geodesic steps.

    ig = ImageGraph(features, size=(H, W), region_spacing=4)   # features {s: [C_s, h_s, w_s]} or [C, H, W]
    g = ig.graph(split_regions(ig.base_regions, [(y, x, label), ...]))   # RegionGraph, cached per split
    d = ig.feature_distance(g, ig.pixel_features([(y, x)]))   # float64 [R, 1]: node-to-click feature distance
    geo = ig.geodesic(g, nodes)                                # float64 [R]: geodesic distance from a node set

Built once per image (``ImageGraph``): the combined multi-stride distance mesh (``featlib.distances.distance_mesh``),
its pixel edges with contrast weights ``w = exp(-d^2 / (2 mean d^2))`` (``featlib.graphcut.contrast_weights``) and
a fine oversegmentation, the *base regions* (``featlib.graphcut.edge_watershed``: watershed of the mesh's pixel edges
from a seed grid of ``region_spacing`` px; 1 = the exact pixel graph).

Per set of *split* base regions (``RegionGraph``, cached): a base region that holds clicks of two different labels
is replaced by one node per pixel, so a hard constraint per clicked pixel is always satisfiable. For R nodes:

- ``area[r]`` pixels, ``means[s][r]`` the mean feature of stride s over the node's pixels (nearest-cell upsampling),
  ``avg[s]`` the sparse [R, cells_s] averaging matrix behind it;
- edges ``(ei, ej)`` with ``w = sum of the contrast weights of the pixel edges the two nodes share``
  (``featlib.graphcut.region_adjacency``): the Potts weight of the cut;
- a geodesic step per edge, ``mean mesh distance on the shared border + 0.08 sqrt(sqrt(area_i area_j)) / max(H, W)``
  (the spatial term keeps flat areas from being free), and ``border[r]``: the node touches the image border.

With a boundary map ``boundary`` float [H, W] in [0, 1] (a per-pixel boundary probability, e.g. the learned one,
``featlib.boundary_net.boundary_probability``), each pixel edge reads ``p = max`` of its two pixels' values and

- its contrast weight is multiplied by ``exp(-p / boundary_tau)`` (``boundary_tau`` > 0; None: unchanged): cutting
  along a boundary the map sees costs little even where the features' contrast is weak;
- its geodesic length gains ``boundary_geo * p * mean(d) / mean(p)`` (``boundary_geo`` >= 0; 0: unchanged): crossing a
  boundary is far, in units of the image's mean mesh distance, so the added term weighs the same for any features.

Feature distance of node r to a reference vector f (one per stride): ``sum_s sw_s * mean over r's pixels of
||f_cell - f|| / sqrt(C_s)`` with the stride weights ``sw`` normalised to sum 1. It is computed per *cell*, then
averaged to nodes by ``avg[s]``, so it costs ~H*W per stride whatever the channel count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix, diags
from scipy.sparse.csgraph import dijkstra

from featlib.distances import distance_mesh, feature_dict
from featlib.graphcut import contrast_weights, edge_watershed, region_adjacency

# Split graphs kept besides the base graph: each holds full-size arrays, and a click sequence rarely returns to an
# older split than the previous one (the first version kept two; unchanged).
_KEEP_SPLIT_GRAPHS = 2


@dataclass
class RegionGraph:
    """One node graph of an image: base regions, with the regions in ``split`` as single-pixel nodes. R nodes."""

    regions: np.ndarray  # int32 [H, W] node id per pixel
    area: np.ndarray  # float64 [R] pixels per node
    means: dict  # stride -> float32 [R, C_s]
    avg: dict  # stride -> csr [R, cells_s]: averaging of cell values over each node's pixels
    ei: np.ndarray  # int64 [E] edge ends, ei < ej
    ej: np.ndarray
    w: np.ndarray  # float64 [E] contrast-sensitive Potts weight
    geo: csr_matrix  # [R, R] symmetric geodesic step lengths
    border: np.ndarray  # bool [R] touches the image border
    cache: dict = field(default_factory=dict)  # per-graph results of the layers above (geodesics, click terms)

    @property
    def n(self) -> int:
        return len(self.area)

    def node_labels(self, labels: np.ndarray, n_labels: int) -> np.ndarray:
        """Majority label per node of a pixel map ``labels`` int [H, W] in -1..n_labels-1 -> int64 [R].

        Pixels labelled -1 count for no label; ties go to the lower label; a node with no labelled pixel gets -1.
        """
        flat = self.regions.ravel()
        lab = np.asarray(labels).ravel().astype(np.int64)
        ok = lab >= 0
        counts = np.bincount(flat[ok] * n_labels + lab[ok], minlength=self.n * n_labels).reshape(self.n, n_labels)
        out = counts.argmax(1)
        out[counts.max(1) == 0] = -1
        return out


def check_image(image) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """A segmenter's optional display image -> (RGB array [H, W, 3] or None, its size (H, W) or None).

    Anything but [H, W, 3] -> ValueError. The size, when given, is the size of the graph (``ImageGraph(size=)``).
    """
    if image is None:
        return None, None
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {image.shape}")
    return image, image.shape[:2]


def check_boundary_settings(tau, geo) -> None:
    """``ImageGraph``'s ``boundary_tau`` (None or > 0) and ``boundary_geo`` (>= 0), else ValueError."""
    if tau is not None and not (isinstance(tau, (int, float)) and np.isfinite(tau) and tau > 0):
        raise ValueError(f"boundary_tau must be None or a number > 0, got {tau!r}")
    if not (isinstance(geo, (int, float)) and np.isfinite(geo) and geo >= 0):
        raise ValueError(f"boundary_geo must be a number >= 0, got {geo!r}")


def split_regions(base_regions: np.ndarray, clicks: Iterable[tuple[int, int, object]]) -> frozenset:
    """Base regions (ids of ``base_regions`` int [H, W]) holding clicks (y, x, label) of more than one label."""
    labels: dict[int, set] = {}
    for y, x, lab in clicks:
        labels.setdefault(int(base_regions[y, x]), set()).add(lab)
    return frozenset(r for r, s in labels.items() if len(s) > 1)


class ImageGraph:
    """Per-image precompute of click segmentation (module docstring); ``graph(split)`` gives the node graphs.

    Args:
        features: FeatureNet output for ONE image ``{stride: [C_s, h_s, w_s]}`` (tensors or arrays), or one map
            ``[C, H, W]``; values about [0, 1].
        mesh_weights: per-stride weights of the mesh and of the feature distances (None = equal).
        size: (H, W) of the image (default: the finest stride's map times its stride).
        region_spacing: seed spacing of the base regions in px (1 = pixel graph).
        boundary: optional boundary probability float [H, W] in [0, 1]; ``boundary_tau``, ``boundary_geo``: how the
            weights and geodesic steps read it (module docstring; both off by default).

    Attributes: ``shape`` (H, W), ``mesh`` (DistanceMesh), ``base_regions`` int32 [H, W].
    """

    def __init__(self, features, mesh_weights: Mapping[int, float] | None = None, size=None,
                 region_spacing: int = 4, boundary: np.ndarray | None = None, boundary_tau: float | None = None,
                 boundary_geo: float = 0.0):
        check_boundary_settings(boundary_tau, boundary_geo)
        feats = feature_dict(features)
        self.mesh = distance_mesh(feats, mesh_weights=mesh_weights, size=size)
        self.shape = self.mesh.shape
        sw = {s: 1.0 for s in feats} if mesh_weights is None else {int(s): float(v) for s, v in mesh_weights.items()}
        total = sum(v for v in sw.values() if v > 0)
        self._feats = {s: f for s, f in feats.items() if sw.get(s, 0) > 0}
        self._sw = {s: sw[s] / total for s in self._feats}
        self._cells = {s: np.ascontiguousarray(f.reshape(f.shape[0], -1).T) for s, f in self._feats.items()}  # [N, C]
        self._cell_sq = {s: (c**2).sum(1) for s, c in self._cells.items()}
        h, w = self.shape
        # Nearest-cell index per pixel and stride: the upsampling used for node features (no [D, H, W] tensor).
        self._cell = {}
        for s, f in self._feats.items():
            cy = np.minimum(np.arange(h) // s, f.shape[1] - 1)
            cx = np.minimum(np.arange(w) // s, f.shape[2] - 1)
            self._cell[s] = (cy[:, None] * f.shape[2] + cx[None, :]).ravel()
        self._pix_i, self._pix_j, self._pix_w, self._pix_d = contrast_weights(self.mesh)
        if boundary is not None:
            self._read_boundary(boundary, boundary_tau, boundary_geo)
        self.base_regions = edge_watershed(self.mesh, region_spacing)
        self._graphs: dict[frozenset, RegionGraph] = {}

    def _read_boundary(self, boundary, tau: float | None, geo: float) -> None:
        b = np.asarray(boundary, dtype=np.float64)
        if b.shape != self.shape:
            raise ValueError(f"boundary map must be [H, W] = {list(self.shape)}, got shape {list(b.shape)}")
        if not np.isfinite(b).all() or b.min() < 0 or b.max() > 1:
            raise ValueError("boundary map must be finite and in [0, 1] (a boundary probability)")
        p = np.maximum(b.ravel()[self._pix_i], b.ravel()[self._pix_j])
        if tau is not None:
            self._pix_w = self._pix_w * np.exp(-p / tau)
        if geo > 0:
            self._pix_d = self._pix_d + geo * p * (float(np.mean(self._pix_d)) / max(float(np.mean(p)), 1e-12))

    def graph(self, split: frozenset = frozenset()) -> RegionGraph:
        """Node graph with the base regions in ``split`` replaced by single-pixel nodes (cached)."""
        if split in self._graphs:
            return self._graphs[split]
        regions = self.base_regions
        if split:
            regions = regions.copy()
            sel = np.isin(regions, list(split))
            keep_ids = np.unique(regions[~sel])
            remap = np.full(regions.max() + 1, -1, np.int64)
            remap[keep_ids] = np.arange(len(keep_ids))
            regions = remap[regions]
            regions[sel] = len(keep_ids) + np.arange(sel.sum())
            regions = regions.astype(np.int32)
        h, w = self.shape
        flat = regions.ravel()
        r = int(flat.max()) + 1
        area = np.bincount(flat, minlength=r).astype(np.float64)
        means, avg = {}, {}
        for s, f in self._feats.items():
            ncell = f.shape[1] * f.shape[2]
            m = coo_matrix((np.ones(flat.size, np.float32), (flat, self._cell[s])), shape=(r, ncell)).tocsr()
            avg[s] = (diags(1.0 / area) @ m).astype(np.float32).tocsr()  # row r: pixel share of each cell
            means[s] = np.asarray(avg[s] @ self._cells[s])
        ei, ej, wsum, dsum, cnt = region_adjacency(regions, self._pix_i, self._pix_j, self._pix_w, self._pix_d)
        # The spatial term's weight 0.02 * 4 dates from the first version, tuned with the other click defaults (GrabCut
        # sample + 8 BSDS val objects, Lab; docs/CLICKS.md); written in that order so the floats stay the same.
        step = dsum / cnt + 0.02 * np.sqrt(np.sqrt(area[ei] * area[ej])) / max(h, w) * 4
        geo = csr_matrix((np.concatenate([step, step]), (np.concatenate([ei, ej]), np.concatenate([ej, ei]))),
                         shape=(r, r))
        border = np.zeros(r, bool)
        border[np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))] = True
        g = RegionGraph(regions, area, means, avg, ei, ej, wsum, geo, border)
        splits = [k for k in self._graphs if k]
        for old in splits[:max(0, len(splits) - (_KEEP_SPLIT_GRAPHS - 1))]:
            del self._graphs[old]
        self._graphs[split] = g
        return g

    @property
    def stride_weights(self) -> dict[int, float]:
        """{stride: weight} of the strides in use (weights > 0), normalised to sum 1."""
        return dict(self._sw)

    def pixel_features(self, pixels: Iterable[tuple[int, int]]) -> dict[int, np.ndarray]:
        """Features at K pixels (y, x): {stride: float32 [K, C_s]} (the cell holding each pixel)."""
        idx = [y * self.shape[1] + x for y, x in pixels]
        return {s: np.stack([f.reshape(f.shape[0], -1)[:, self._cell[s][i]] for i in idx])
                for s, f in self._feats.items()}

    def feature_distance(self, g: RegionGraph, ref: Mapping[int, np.ndarray]) -> np.ndarray:
        """float64 [R, K]: multi-stride distance of each node of ``g`` to K reference vectors ``{s: [K, C_s]}``."""
        out = 0.0
        for s, cells in self._cells.items():
            r = np.asarray(ref[s], np.float32)
            # einsum, not matmul: for these skinny products BLAS thread start-up dominated (~7 ms per call here).
            d2 = self._cell_sq[s][:, None] + (r**2).sum(1)[None, :] - 2.0 * np.einsum("nc,kc->nk", cells, r)
            d = np.sqrt(np.maximum(d2, 0.0)) / np.sqrt(cells.shape[1])
            out = out + self._sw[s] * (g.avg[s] @ d)
        return np.asarray(out, np.float64)

    def geodesic(self, g: RegionGraph, nodes: np.ndarray) -> np.ndarray:
        """float64 [R]: geodesic distance on ``g`` from the nearest of ``nodes`` (cached per graph and node set)."""
        key = ("geo", *np.unique(nodes).tolist())
        if key not in g.cache:
            g.cache[key] = dijkstra(g.geo, directed=False, indices=list(key[1:]), min_only=True)
        return g.cache[key]
