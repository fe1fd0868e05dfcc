"""Click segmentation by an s-t graph cut on a feature map, and the standard click-simulation protocol.

    seg = ClickSegmenter(features, image)      # FeatureNet dict {s: [C, h, w]} for ONE image, or [C, H, W] (Lab)
    seg.add_click(120, 200, positive=True)     # (y, x) in full-resolution pixels
    seg.add_click(40, 30, positive=False)
    seg.mask                                   # bool [H, W]
    seg.undo(); seg.reset()

Model (see docs/CLICKS.md):
- Nodes are regions of a fine oversegmentation (``featlib.graphcut.edge_watershed``: watershed of the distance
  mesh's pixel edges from a regular seed grid, ``region_spacing`` px; ``region_spacing=1`` gives the exact pixel
  graph). Precomputed once: regions, their mean feature per stride, region adjacency with contrast-sensitive weights
  ``sum over shared pixel edges of exp(-d^2 / (2 mean d^2))`` from the combined distance mesh.
- Unary: for each node a "distance" to the positive clicks and one to the negative side, each the multi-stride
  feature distance (per stride ``||mu_r - f_click|| / sqrt(C_s)``, weighted mean over strides, as in the mesh) plus
  ``geo_weight`` x the geodesic distance on the region graph. The negative side always includes the image-border
  regions (plus ``border_margin``) so one positive click already gives a bounded object. Costs:
  ``area * D_pos / (D_pos + D_neg)`` for foreground and ``area * D_neg / (D_pos + D_neg)`` for background.
- Hard constraints: a node holding a positive click is tied to the source, a negative click to the sink. A region
  that holds clicks of both signs is split into single-pixel nodes, so **every clicked pixel keeps its label**.
- Max-flow (``featlib.graphcut.min_cut``): ``scipy.sparse.csgraph.maximum_flow`` (Dinic, integer capacities: scaled
  and rounded) by default; PyMaxflow (optional extra ``maxflow``, GPL) when installed. The mask is the *minimal*
  source set (nodes reachable from the source in the residual graph), which makes the result unique and deterministic.

Update rule (``local=True``, default): the cut is solved for the whole click set, then only the change that
touches the new click is applied: for a positive click the 4-connected piece of newly-foreground pixels that holds
the clicked pixel, for a negative click the piece of newly-background pixels. So masks are **nested by
construction** (a positive click never removes a pixel, a negative click never adds one), every clicked pixel keeps
its label, and similar-looking regions far from the click do not flip. Two trust regions, both sized by r, the click's
distance to the nearest pixel that already has the clicked label: ``reach`` bounds the cut to a box of half-size
``reach * max(r, 2)`` (nodes outside keep their label), and below ``touch_up`` px the click is a boundary touch-up that
may flip only pixels closer to it than the mask is (the disc of radius r). Without ``local`` the mask is the global cut;
then nestedness still holds while no region split happens (the unaries move monotonically and the minimal minimiser
of a graph cut is nested, Topkis), which the tests check on the pixel graph. IoU can still fall after a click (a
positive click may add some background with the object part); the evaluation counts those drops.

First click negative: allowed. The mask stays empty until the first positive click (there is no object model yet);
the negative clicks are kept and constrain later cuts. A click on an already-clicked pixel replaces that click.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2
from scipy.sparse import coo_matrix, csr_matrix, diags
from scipy.sparse.csgraph import dijkstra

from featlib.distances import distance_mesh, feature_dict
from featlib.graphcut import contrast_weights, edge_watershed, maxflow_available, min_cut, region_adjacency
from featlib.metrics import iou

# ----------------------------------------------------------------------------------------------- segmenter


@dataclass
class Click:
    y: int
    x: int
    positive: bool


@dataclass
class _Graph:
    regions: np.ndarray  # int32 [H, W] node id per pixel
    area: np.ndarray  # [R]
    means: dict  # stride -> float32 [R, C_s]
    avg: dict  # stride -> csr [R, cells_s]: averaging of cell values over each node's pixels
    ei: np.ndarray
    ej: np.ndarray
    w: np.ndarray  # contrast-sensitive pairwise weight [E]
    geo: csr_matrix  # symmetric geodesic step lengths
    border: np.ndarray  # bool [R] touches the image border
    geo_cache: dict = field(default_factory=dict)
    term_cache: dict = field(default_factory=dict)
    border_model: tuple | None = None


# ClickSegmenter's defaults for FeatureNet features (featlib.features gives them to every model), chosen on the 19
# objects of the 20 held-out BSDS500 *train* images of the recipe's ablation model (docs/CLICKS.md "Learned
# features"): NoC@90 finest two 12.26 (27 drops) vs 1/s 12.74 (26), finest 13.16 (29), equal 14.89 (28); Lab 13.89
# (35). Why not equal, as for partitions: the /8 and /16 cells blur the boundary a click must snap to.
# reach 2 (trust region), chosen on the same objects with the annotators-all ablation model over 50 clicks: NoC@90 /
# drops (> 0.01) reach 3: 12.53 / 60 (24), 2.5: 12.63 / 39 (16), 2: 12.74 / 19 (7); Lab (reach 3) 13.89 / 49 (18).
# Learned features leak further than Lab when a mid-run click's cut is free over a wide box; reach 2 keeps both
# targets (fewer clicks and fewer drops than Lab) with room there, for 0.2 more clicks than reach 3. On val (objects
# 9-100, bsds500-b0) it gave NoC@90 12.93 vs Lab's 12.91 and 138 drops vs 230 (reach 3: 12.27, 266).
LEARNED_CLICKS: dict = {"mesh_weights": "finest two", "reach": 2.0}


class ClickSegmenter:
    """Interactive binary segmentation of one image by graph cut on a feature map.

    Args:
        features: FeatureNet output for ONE image ``{stride: [C_s, h_s, w_s]}`` (tensors or arrays), or one map
            ``[C, H, W]`` (e.g. ``featlib.distances.lab_features(image)``), values about [0, 1].
        image: optional RGB [H, W, 3] (only kept for display; sets the size when given).
        mesh_weights: per-stride weights for both the mesh and the unary distances (default equal).
        region_spacing: oversegmentation seed spacing in px (1 = pixel graph). Default 4.
        lam: pairwise weight (per shared pixel edge) relative to the per-pixel unary in [0, 1]. Default 8.0
            (tuned with the other defaults on the GrabCut sample + 8 BSDS val objects, Lab features).
        geo_weight: weight of the geodesic distance in the click distances. Default 1.0.
        border_margin: added to the distance to border regions (the default background model). Default 0.2.
        backend: "auto" | "scipy" | "pymaxflow".
        local: apply only the connected change holding each new click (default; masks nested by construction).
            ``False``: the mask is the global cut for the current click set.
        reach: with ``local``, a click whose pixel lies r px inside its error blob (r = distance to the nearest
            pixel already of the clicked label) is solved in a box of half-size ``reach * max(r, 2)`` px around it,
            the nodes outside fixed to the current mask (so late clicks are cheap and cannot flip far-away parts);
            the first click of each kind is global. None = always global. Default 3: on the tuning set (GrabCut
            sample + 8 BSDS objects, 40 clicks) summed IoU drops per object 0.77 (no limit) -> 0.065, NoC@90
            8.2 -> 8.9.
        touch_up: with ``local``, a click within this many px of the clicked label (r < touch_up) flips only pixels
            closer to it than r (the empty disc: for r = 1 the clicked pixel alone). Late clicks sit in 1-3 px slivers
            along the boundary, where flipping whole 4 px regions added more wrong pixels than right ones. 0 = off.
            Default 4.5: on the tuning set (GrabCut sample, 100 clicks + 8 BSDS objects, 50 clicks) drops 56 + 58 ->
            3 + 9 clicks, NoC@85/90 unchanged (docs/CLICKS.md). The cost: boundary slivers close one click at a time;
            where the features trace object edges exactly (synthetic scenes) 0 converges further (IoU@20 0.998 vs
            0.994).

    Attributes: ``mask`` bool [H, W]; ``clicks`` list of ``Click``; ``shape`` (H, W); ``last_update_s``.
    """

    def __init__(
        self,
        features,
        image: np.ndarray | None = None,
        *,
        mesh_weights: Mapping[int, float] | None = None,
        region_spacing: int = 4,
        lam: float = 8.0,
        geo_weight: float = 1.0,
        border_margin: float = 0.2,
        backend: str = "auto",
        local: bool = True,
        reach: float | None = 3.0,
        touch_up: float = 4.5,
    ):
        feats = feature_dict(features)
        size = None
        if image is not None:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image must be [H, W, 3], got shape {image.shape}")
            size = image.shape[:2]
        if lam < 0 or geo_weight < 0 or border_margin < 0:
            raise ValueError("lam, geo_weight and border_margin must be >= 0")
        if backend not in ("auto", "scipy", "pymaxflow"):
            raise ValueError(f"backend must be 'auto', 'scipy' or 'pymaxflow', got {backend!r}")
        if backend == "pymaxflow" and not maxflow_available():
            raise ValueError("backend='pymaxflow' needs PyMaxflow (pip install 'featlib[maxflow]')")
        self.image = image
        self.backend = backend
        self.lam, self.geo_weight, self.border_margin = float(lam), float(geo_weight), float(border_margin)
        self.mesh = distance_mesh(feats, mesh_weights=mesh_weights, size=size)
        self.shape = self.mesh.shape
        sw = {s: 1.0 for s in feats} if mesh_weights is None else {int(s): float(v) for s, v in mesh_weights.items()}
        total = sum(v for v in sw.values() if v > 0)
        self._feats = {s: f for s, f in feats.items() if sw.get(s, 0) > 0}
        self._sw = {s: sw[s] / total for s in self._feats}
        # [cells, C] per stride
        self._cells = {s: np.ascontiguousarray(f.reshape(f.shape[0], -1).T) for s, f in self._feats.items()}
        self._cell_sq = {s: (c**2).sum(1) for s, c in self._cells.items()}
        h, w = self.shape
        # Nearest-cell index per pixel and stride: the upsampling used for unaries (no [D, H, W] tensor is built).
        self._cell = {}
        for s, f in self._feats.items():
            cy = np.minimum(np.arange(h) // s, f.shape[1] - 1)
            cx = np.minimum(np.arange(w) // s, f.shape[2] - 1)
            self._cell[s] = (cy[:, None] * f.shape[2] + cx[None, :]).ravel()
        self._pix_i, self._pix_j, self._pix_w, self._pix_d = contrast_weights(self.mesh)
        self._base_regions = edge_watershed(self.mesh, region_spacing)
        self._graphs: dict[frozenset, _Graph] = {}
        self.local = bool(local)
        self.reach = None if reach is None else float(reach)
        if touch_up < 0:
            raise ValueError(f"touch_up must be >= 0, got {touch_up}")
        self.touch_up = float(touch_up)
        self.clicks: list[Click] = []
        self._history: list[np.ndarray] = []
        self.mask = np.zeros(self.shape, bool)
        self.last_update_s = 0.0

    # -- graph construction ---------------------------------------------------------------------------------

    def _graph(self, split: frozenset) -> _Graph:
        """Region graph with the base regions in ``split`` replaced by single-pixel nodes (cached)."""
        if split in self._graphs:
            return self._graphs[split]
        regions = self._base_regions
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
        # Geodesic step: mean boundary distance plus a small spatial term so flat areas are not free.
        step = dsum / cnt + 0.02 * np.sqrt(np.sqrt(area[ei] * area[ej])) / max(h, w) * 4
        geo = csr_matrix((np.concatenate([step, step]), (np.concatenate([ei, ej]), np.concatenate([ej, ei]))),
                         shape=(r, r))
        border = np.zeros(r, bool)
        border[np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))] = True
        g = _Graph(regions, area, means, avg, ei, ej, wsum, geo, border)
        # Keep the base graph and the two most recent split graphs (each holds full-size arrays).
        for old in [k for k in self._graphs if k][:-1]:
            del self._graphs[old]
        self._graphs[split] = g
        return g

    def _click_features(self, clicks: list[Click]) -> dict:
        return {s: np.stack([f.reshape(f.shape[0], -1)[:, self._cell[s][c.y * self.shape[1] + c.x]] for c in clicks])
                for s, f in self._feats.items()}

    def _feature_distance(self, g: _Graph, ref: dict) -> np.ndarray:
        """[R, K] multi-stride distance of each node to K reference vectors: per stride, the mean over the node's
        pixels of ``||f_cell - ref|| / sqrt(C_s)``. Computed per cell (few at coarse strides, few channels at fine
        ones), then averaged to nodes with a sparse matrix: cost ~ H*W*base per stride, whatever the channel count.
        """
        out = 0.0
        for s, cells in self._cells.items():
            r = np.asarray(ref[s], np.float32)
            # einsum, not matmul: for these skinny products BLAS thread start-up dominated (~7 ms per call here).
            d2 = self._cell_sq[s][:, None] + (r**2).sum(1)[None, :] - 2.0 * np.einsum("nc,kc->nk", cells, r)
            d = np.sqrt(np.maximum(d2, 0.0)) / np.sqrt(cells.shape[1])
            out = out + self._sw[s] * (g.avg[s] @ d)
        return np.asarray(out, np.float64)

    def _geo(self, g: _Graph, nodes: np.ndarray) -> np.ndarray:
        """Geodesic distance [R] from a set of nodes on the region graph (cached per graph and node set)."""
        key = tuple(np.unique(nodes).tolist())
        if key not in g.geo_cache:
            g.geo_cache[key] = dijkstra(g.geo, directed=False, indices=list(key), min_only=True)
        return g.geo_cache[key]

    def _reference_term(self, g: _Graph, key, nodes: np.ndarray, ref: dict) -> np.ndarray:
        """[R] min over references k of (feature distance to ref k + geo_weight * geodesic distance to nodes[k]).

        Cached per graph under ``key`` (a click's pixel or "border"), so a new click costs one column and one
        Dijkstra. Each reference keeps its own geodesic term: adding the closest feature match and the closest click
        separately would let a region that looks like one click and lies beside another become foreground.
        """
        if key not in g.term_cache:
            d = self._feature_distance(g, ref)  # [R, K]
            if self.geo_weight > 0:
                d = d + self.geo_weight * np.stack([self._geo(g, n) for n in nodes], axis=1)
            g.term_cache[key] = d.min(1)
        return g.term_cache[key]

    def _border_model(self, g: _Graph) -> tuple[list[np.ndarray], dict]:
        """Border regions grouped into <= 8 feature clusters: (node sets, {stride: [K, C_s]} mean features)."""
        if g.border_model is None:
            nodes = np.flatnonzero(g.border)
            x = np.concatenate([np.sqrt(self._sw[s] / m.shape[1]) * m[nodes] for s, m in g.means.items()], axis=1)
            k = min(8, len(nodes))
            _, lab = kmeans2(x.astype(np.float64), k, minit="++", seed=0)
            groups = [nodes[lab == c] for c in range(k) if (lab == c).any()]
            ref = {s: np.stack([(m[gr] * g.area[gr, None]).sum(0) / g.area[gr].sum() for gr in groups])
                   .astype(np.float32) for s, m in g.means.items()}
            g.border_model = (groups, ref)
        return g.border_model

    # -- public API -------------------------------------------------------------------------------------------

    def add_click(self, y: int, x: int, positive: bool = True) -> np.ndarray:
        """Add a click at pixel (y, x) and update ``mask`` (bool [H, W], returned). Outside the image -> ValueError."""
        y, x = int(y), int(x)
        h, w = self.shape
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"click ({y}, {x}) is outside the image of size {h} x {w}")
        t0 = time.perf_counter()
        click = Click(y, x, bool(positive))
        same = self.mask if click.positive else ~self.mask
        roi, r_same = None, np.inf
        if self.local and same.any() and not same[y, x]:
            # r_same: how far the click is from the nearest pixel already of the clicked label, i.e. the radius of
            # the largest disc around the click that the current mask leaves wholly wrong (the "empty disc").
            edge = np.argwhere(same & ~ndimage.binary_erosion(same, border_value=1))
            r_same = float(np.sqrt(((edge - (y, x)) ** 2).sum(1).min()))
        if self.reach and np.isfinite(r_same):
            # Trust region: the cut is solved only in a box of half-size reach * max(r_same, 2) around the click,
            # with the nodes outside fixed to the current mask. The first click of each kind is unbounded.
            r = self.reach * max(r_same, 2.0)
            roi = (max(0, int(y - r)), int(y + r) + 1, max(0, int(x - r)), int(x + r) + 1)
        cut = self._solve(self.clicks + [click], roi=roi)
        if self.local:
            # Apply only the change that touches the click: additions for a positive click, removals for a negative
            # one, restricted to the 4-connected piece holding the clicked pixel. Far-away flips of similar-looking
            # regions were not asked for and are the main cause of IoU drops; the masks are nested by construction.
            change = (cut & ~self.mask) if click.positive else (self.mask & ~cut)
            if r_same < self.touch_up:
                # Touch-up: a click this close to the mask asks for a boundary correction at its own scale, so only
                # pixels closer to it than the mask is (the empty disc) may flip. Region-sized changes here were most
                # of the IoU drops: late clicks sit in 1-3 px slivers where a 4 px region is mostly wrong.
                k = int(r_same)
                y0, y1, x0, x1 = max(0, y - k), min(h, y + k + 1), max(0, x - k), min(w, x + k + 1)
                yy, xx = np.ogrid[y0:y1, x0:x1]
                disc = np.zeros_like(change)
                disc[y0:y1, x0:x1] = (yy - y) ** 2 + (xx - x) ** 2 < r_same**2
                change &= disc
            new = self.mask.copy()
            if change[y, x]:
                lab, _ = ndimage.label(change)
                new[lab == lab[y, x]] = click.positive
            new[y, x] = click.positive
            cut = new
        self._history.append(self.mask)
        self.clicks.append(click)
        self.mask = cut
        self.last_update_s = time.perf_counter() - t0
        return self.mask

    def undo(self) -> np.ndarray:
        """Remove the last click (no-op without clicks) and restore the mask before it (exactly)."""
        if self.clicks:
            self.clicks.pop()
            self.mask = self._history.pop()
        return self.mask

    def reset(self) -> np.ndarray:
        """Remove all clicks; the mask becomes empty."""
        self.clicks, self._history = [], []
        self.mask = np.zeros(self.shape, bool)
        return self.mask

    def _solve(self, clicks: list[Click], roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Mask of the cut for ``clicks``; with ``roi`` (y0, y1, x0, x1) only nodes meeting it are free, the rest
        keep their label in the current mask (pairwise terms to them become unaries)."""
        h, w = self.shape
        if not any(c.positive for c in clicks):
            return np.zeros((h, w), bool)
        # A later click on the same pixel overrides an earlier one there.
        last = {(c.y, c.x): c for c in clicks}
        clicks = list(last.values())
        base = self._base_regions
        signs: dict[int, set] = {}
        for c in clicks:
            signs.setdefault(int(base[c.y, c.x]), set()).add(c.positive)
        split = frozenset(r for r, s in signs.items() if len(s) > 1)
        g = self._graph(split)
        n = len(g.area)
        node = np.array([g.regions[c.y, c.x] for c in clicks])
        pos = np.array([c.positive for c in clicks])
        hard_fg = np.zeros(n, bool)
        hard_bg = np.zeros(n, bool)
        hard_fg[node[pos]] = True
        hard_bg[node[~pos]] = True
        def click_term(k: int) -> np.ndarray:
            c = clicks[k]
            return self._reference_term(g, (c.y, c.x), [node[k:k + 1]], self._click_features([c]))

        d_pos = np.min([click_term(k) for k in np.flatnonzero(pos)], axis=0)
        # Background side: border regions (the default prior, + border_margin) and negative clicks, whichever is closer.
        groups, bref = self._border_model(g)
        d_neg = self._reference_term(g, "border", groups, bref) + self.border_margin
        for k in np.flatnonzero(~pos):
            d_neg = np.minimum(d_neg, click_term(k))
        d_neg = np.minimum(d_neg, 1e6)
        denom = d_pos + d_neg + 1e-9
        cost_fg = g.area * d_pos / denom
        cost_bg = g.area * d_neg / denom
        w = self.lam * g.w
        if roi is None:
            fg, _ = min_cut(n, g.ei, g.ej, w, cost_fg, cost_bg, hard_fg, hard_bg, backend=self.backend)
            return fg[g.regions]
        y0, y1, x0, x1 = roi
        free = np.zeros(n, bool)
        free[np.unique(g.regions[y0:y1, x0:x1])] = True
        flat = g.regions.ravel()
        current = np.bincount(flat, weights=self.mask.ravel(), minlength=n) > 0.5 * g.area
        fi, fj = free[g.ei], free[g.ej]
        # Edges from a free node to a fixed one: cutting them is paid by the free node's disagreeing label.
        for a, b, m in ((g.ei, g.ej, fi & ~fj), (g.ej, g.ei, fj & ~fi)):
            np.add.at(cost_bg, a[m & current[b]], w[m & current[b]])
            np.add.at(cost_fg, a[m & ~current[b]], w[m & ~current[b]])
        idx = np.flatnonzero(free)
        local_id = np.full(n, -1, np.int64)
        local_id[idx] = np.arange(len(idx))
        both = fi & fj
        sub, _ = min_cut(len(idx), local_id[g.ei[both]], local_id[g.ej[both]], w[both], cost_fg[idx], cost_bg[idx],
                         hard_fg[idx], hard_bg[idx], backend=self.backend)
        out = self.mask.copy()
        inside = free[flat].reshape(self.shape)
        out[inside] = sub[local_id[g.regions[inside]]]
        return out


# ----------------------------------------------------------------------------------------------- click simulation


def next_click(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int, bool] | None:
    """Standard (RITM/SimpleClick) simulated click: the point deepest inside the larger error region.

    Args: pred, gt bool [H, W]; ignore bool [H, W] or None (pixels excluded, e.g. GrabCut's 128 band).
    Returns (y, x, positive) — false negatives give a positive click, false positives a negative one — or None
    when there is no error left. Depth = Euclidean distance transform of the error mask padded with a 1-px zero
    border (so the image edge counts as a boundary); ties go to the first pixel in raster order.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    valid = np.ones(gt.shape, bool) if ignore is None else ~ignore
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    if not fn.any() and not fp.any():
        return None
    dt_fn = ndimage.distance_transform_edt(np.pad(fn, 1))[1:-1, 1:-1]
    dt_fp = ndimage.distance_transform_edt(np.pad(fp, 1))[1:-1, 1:-1]
    positive = dt_fn.max() >= dt_fp.max()
    dt = dt_fn if positive else dt_fp
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return int(y), int(x), bool(positive)


@dataclass
class ClickRun:
    """Result of simulating clicks on one object: ``ious[k]`` is the IoU after k+1 clicks; ``latency_s`` per click."""

    ious: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)

    def noc(self, threshold: float, max_clicks: int = 20) -> int:
        """Clicks needed to reach IoU >= threshold, ``max_clicks`` when never reached within ``max_clicks``."""
        for k, v in enumerate(self.ious[:max_clicks]):
            if v >= threshold:
                return k + 1
        return max_clicks

    def drops(self, eps: float = 1e-9) -> list[float]:
        """Sizes (> 0) of the IoU decreases after a click, one entry per click that lowered IoU."""
        a = np.asarray(self.ious)
        d = a[:-1] - a[1:]
        return [float(v) for v in d if v > eps]


def simulate_clicks(
    segmenter: ClickSegmenter, gt: np.ndarray, ignore: np.ndarray | None = None, n_clicks: int = 20
) -> ClickRun:
    """Run the standard click protocol for ``n_clicks`` clicks on a fresh ``segmenter`` (it is reset first).

    When no error is left, the remaining clicks are not made and the last IoU is repeated (no latency entry).
    """
    gt = np.asarray(gt, bool)
    if gt.shape != segmenter.shape:
        raise ValueError(f"gt shape {gt.shape} does not match the segmenter's image {segmenter.shape}")
    if ignore is not None:
        ignore = np.asarray(ignore, bool)
        if ignore.shape != gt.shape:
            raise ValueError(f"ignore shape {ignore.shape} does not match gt {gt.shape}")
    segmenter.reset()
    run = ClickRun()
    for _ in range(n_clicks):
        c = next_click(segmenter.mask, gt, ignore)
        if c is None:
            run.ious.append(run.ious[-1] if run.ious else iou(segmenter.mask, gt, ignore))
            continue
        segmenter.add_click(*c)
        run.clicks.append(c)
        run.latency_s.append(segmenter.last_update_s)
        run.ious.append(iou(segmenter.mask, gt, ignore))
    return run
