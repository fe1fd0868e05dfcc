"""The click energy on a region graph and its cut: unaries from labelled clicks, Potts pairwise, hard constraints.

    cut = ClickCut(ImageGraph(features, size=(H, W)), lam=8.0)
    idx = cut.solve([(y, x, label_index), ...], n_labels=L)          # int16 [H, W] in 0..L-1: every pixel one label
    idx = cut.solve(clicks, L, current=idx_before, roi=(y0, y1, x0, x1))   # only nodes meeting the box are free

Labels are indices 0..L-1, 0 the background; a binary segmenter uses L = 2 (1 = object). For node r of the region
graph (``featlib.region_graph``) and label l:

- Distance ``D_l(r) = min over l's clicks c of [feat(r, c) + geo_weight * geo(r, c)]`` (feat: the multi-stride
  feature distance of the node to the clicked pixel's features; geo: geodesic distance on the region graph to the
  clicked node). Each click keeps its own geodesic term: taking the nearest feature match and the nearest click
  separately would let a region that looks like one click and lies beside another take its label. With ``segments``
  (a partition of the image; the segmenters' ``lone_click_segments``), the newest click, when it is its object
  label's only click, stands for its *segment* in that cut: feat is the distance to the segment's mean and geo the
  geodesic from the segment's nodes, so every first click inside one segment gives the same distances (a click's
  exact position no longer decides the first mask; later cuts measure from the clicked pixel again). The background's
  ``D_0`` also includes the image border: <= 8 k-means clusters of the border nodes' features, each with its own
  geodesic term, ``+ border_margin``, so one object click already gives a bounded object. A label without clicks
  other than the background is not in the cut. Distances are capped at 1e6 (a node the geodesics cannot reach).
- Unary ``U_l(r) = area_r * D_l / (D_l + D_-l + 1e-9)``, with ``D_-l = min over m != l of D_m``: each label against
  its strongest competitor, so for L = 2 this is exactly the binary ``area * D_pos / (D_pos + D_neg)``; every unary
  lies in [0, area_r] whatever L, so ``lam`` means the same for any number of labels.
- Pairwise: Potts, ``lam * w_ij [L_i != L_j]`` with w the region graph's summed contrast weights.
- Hard constraints: a clicked node takes its click's label (the region graph splits regions holding two labels).

The cut. L = 2: one s-t min cut (``featlib.graphcut.min_cut``), exact; the object is the minimal source set.
L > 2: alpha-expansion (Boykov, Veksler & Zabih 2001), each move one ``min_cut``. It starts from ``current``'s labels
(label 0 without them) and expands the newest click's label first, then the others in the order 1..L-1, 0, until
L - 1 moves in a row lower nothing (the next move would repeat one whose input has not changed) or ``MAX_CYCLES``
passes. An expansion move on alpha lets every node keep its label or take alpha; with binary x (1 = take) an edge
with labels a_i, a_j costs

    a_i == a_j:                  w [x_i != x_j]
    a_i != a_j, both != alpha:   w (1 - x_i x_j) = w/2 [x_i = 0] + w/2 [x_j = 0] + w/2 [x_i != x_j]
    a_j == alpha:                w [x_i = 0]   (j is alpha whatever it chooses, so it leaves the move)

all graph-representable because Potts is a metric; each move is solved exactly, and the local optimum of the
expansion moves that the loop stops at is within a factor 2 of the global optimum for Potts (Boykov et al. 2001).
For L = 2 a single move from a constant labelling ranges over every labelling: that is why the binary case is exact
and is the same ``min_cut`` call as the binary segmenter's (it ignores ``current``).

Trust region (``roi``): the nodes meeting the box are free, the others keep their majority label in ``current``; an
edge from a free node to a fixed node of label b adds w to the free node's unary of every label != b. The free nodes
choose among the labels that meet the box (its pixels' labels, the fixed neighbours' and those of clicks on free
nodes); their unaries still compare every clicked label, so this is the same energy restricted to those labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.cluster.vq import kmeans2

from featlib.graphcut import maxflow_available, min_cut
from featlib.region_graph import ImageGraph, RegionGraph, split_regions

# Border model: at most 8 feature clusters of the border nodes (first version, tuned with the click defaults on the
# GrabCut sample + 8 BSDS val objects, Lab; docs/CLICKS.md), k-means++ with a fixed seed (deterministic results).
BORDER_CLUSTERS = 8
# Cap on node-to-click distances: far above any real one (feature distances are <= ~1.7, geodesics a few units).
_FAR = 1e6
# Alpha-expansion: full passes over the labels at most. On the 512^2 benchmark image (3 objects + background, 40
# clicks, Lab and bsds500-b0, trust-region and global updates; docs/BENCHMARKS.md "clicks") every cut stopped within 2
# passes (at most 8 cuts for 4 labels); the cap only bounds the worst-case latency.
MAX_CYCLES = 4


def _click_term(ig: ImageGraph, g: RegionGraph, y: int, x: int, geo_weight: float) -> np.ndarray:
    """float64 [R]: feature + geo_weight * geodesic distance of every node to the click at (y, x) (cached)."""
    key = ("click", y, x)
    if key not in g.cache:
        d = ig.feature_distance(g, ig.pixel_features([(y, x)]))[:, 0]
        if geo_weight > 0:
            d = d + geo_weight * ig.geodesic(g, np.array([g.regions[y, x]]))
        g.cache[key] = d
    return g.cache[key]


def _segment_term(ig: ImageGraph, g: RegionGraph, y: int, x: int, segments: np.ndarray,
                  geo_weight: float) -> np.ndarray:
    """float64 [R]: distance of every node to the click at (y, x) standing for its segment of ``segments`` (int
    [H, W]): feature distance to the segment's mean + geo_weight * geodesic distance from the segment's nodes (those
    with more than half their pixels in it, and the clicked node) (cached)."""
    key = ("segment", y, x)
    if key not in g.cache:
        inside = segments == segments[y, x]
        share = np.bincount(g.regions[inside], minlength=g.n) / g.area
        nodes = np.union1d(np.flatnonzero(share > 0.5), [g.regions[y, x]])
        a = g.area[nodes, None]
        ref = {s: ((m[nodes] * a).sum(0) / a.sum())[None].astype(np.float32) for s, m in g.means.items()}
        d = ig.feature_distance(g, ref)[:, 0]
        if geo_weight > 0:
            d = d + geo_weight * ig.geodesic(g, nodes)
        g.cache[key] = d
    return g.cache[key]


def _border_term(ig: ImageGraph, g: RegionGraph, geo_weight: float) -> np.ndarray:
    """float64 [R]: min over the border clusters of (feature distance to the cluster mean + geo_weight * geodesic
    distance to the cluster's nodes) (cached)."""
    key = ("border",)
    if key not in g.cache:
        nodes = np.flatnonzero(g.border)
        sw = ig.stride_weights
        x = np.concatenate([np.sqrt(sw[s] / m.shape[1]) * m[nodes] for s, m in g.means.items()], axis=1)
        k = min(BORDER_CLUSTERS, len(nodes))
        _, lab = kmeans2(x.astype(np.float64), k, minit="++", seed=0)
        groups = [nodes[lab == c] for c in range(k) if (lab == c).any()]
        ref = {s: np.stack([(m[gr] * g.area[gr, None]).sum(0) / g.area[gr].sum() for gr in groups])
               .astype(np.float32) for s, m in g.means.items()}
        d = ig.feature_distance(g, ref)  # [R, K]
        if geo_weight > 0:
            d = d + geo_weight * np.stack([ig.geodesic(g, gr) for gr in groups], axis=1)
        g.cache[key] = d.min(1)
    return g.cache[key]


def label_costs(dist: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Unaries float64 [R, L] from distances ``dist`` [R, L] and node areas [R]: ``area * D_l / (D_l + D_-l)``."""
    n, n_labels = dist.shape
    if n_labels == 2:  # the binary formula, in its own order of operations (same floats as the first version)
        denom = dist[:, 1] + dist[:, 0] + 1e-9
        return np.stack([area * dist[:, 0] / denom, area * dist[:, 1] / denom], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")[:, :2]
    rows = np.arange(n)
    best, second = dist[rows, order[:, 0]], dist[rows, order[:, 1]]
    other = np.repeat(best[:, None], n_labels, axis=1)
    other[rows, order[:, 0]] = second
    return area[:, None] * dist / (dist + other + 1e-9)


def potts_energy(labels: np.ndarray, unary: np.ndarray, ei, ej, w) -> float:
    """``sum_r U[r, L_r] + sum_edges w [L_i != L_j]`` of node labels [n] (float)."""
    return float(unary[np.arange(len(labels)), labels].sum() + w[labels[ei] != labels[ej]].sum())


def _expansion_move(alpha, lab, unary, ei, ej, w, hard, backend) -> np.ndarray:
    """The optimal expansion move on ``alpha`` from node labels ``lab`` [n] (module docstring) -> new labels [n]."""
    move = lab != alpha
    idx = np.flatnonzero(move)
    if len(idx) == 0:
        return lab
    local = np.full(len(lab), -1, np.int64)
    local[idx] = np.arange(len(idx))
    take = unary[idx, alpha].copy()
    keep = unary[idx, lab[idx]].copy()
    mi, mj = move[ei], move[ej]
    same = mi & mj & (lab[ei] == lab[ej])
    diff = mi & mj & ~same
    if diff.any():  # w (1 - x_i x_j): half the weight to each end's keep cost, half on the edge
        np.add.at(keep, local[ei[diff]], 0.5 * w[diff])
        np.add.at(keep, local[ej[diff]], 0.5 * w[diff])
    for a, m in ((ei, mi & ~mj), (ej, mj & ~mi)):  # the other end is alpha already
        if m.any():
            np.add.at(keep, local[a[m]], w[m])
    if diff.any():
        pi = np.concatenate([ei[same], ei[diff]])
        pj = np.concatenate([ej[same], ej[diff]])
        pw = np.concatenate([w[same], 0.5 * w[diff]])
    else:
        pi, pj, pw = ei[same], ej[same], w[same]
    h = hard[idx]
    taken, _ = min_cut(len(idx), local[pi], local[pj], pw, take, keep, h == alpha, (h >= 0) & (h != alpha),
                       backend=backend)
    out = lab.copy()
    out[idx[taken]] = alpha
    return out


def alpha_expansion(unary: np.ndarray, ei: np.ndarray, ej: np.ndarray, w: np.ndarray, hard: np.ndarray,
                    backend: str = "auto", init: np.ndarray | None = None, first: int = 1,
                    max_cycles: int = MAX_CYCLES) -> tuple[np.ndarray, int]:
    """Minimise the Potts energy ``sum_r U[r, L_r] + sum w_ij [L_i != L_j]`` over labels 0..L-1, with hard labels.

    Args: unary float [n, L] (>= 0); ei, ej int [E], w float [E] (>= 0) the edges; hard int [n]: -1 free, else the
    node's forced label; init int [n] the start labelling for L > 2 (default label 0 everywhere); first: the label
    whose move comes first (then the others in the order 1..L-1, 0). Returns (labels int64 [n], number of min cuts).
    L = 2 is exact, one cut from label 0 everywhere whatever ``init``; L > 2 is alpha-expansion (module docstring):
    a local optimum of the expansion moves, within a factor 2 of the optimum.
    """
    n, n_labels = unary.shape
    lab = np.zeros(n, np.int64)
    if n_labels == 1 or n == 0:
        return lab, 0
    if n_labels == 2:
        return _expansion_move(1, lab, unary, ei, ej, w, hard, backend), 1
    if init is not None:
        lab = np.asarray(init, np.int64).copy()
    order = [first] + [a for a in [*range(1, n_labels), 0] if a != first]

    def score(labels):  # hard constraints first: a move on alpha fixes every node forced to alpha
        return int(((hard >= 0) & (labels != hard)).sum()), potts_energy(labels, unary, ei, ej, w)

    best = score(lab)
    quiet, cuts = 0, 0
    for step in range(max_cycles * n_labels):
        if step >= n_labels and quiet >= n_labels - 1:
            break
        new = _expansion_move(order[step % n_labels], lab, unary, ei, ej, w, hard, backend)
        cuts += 1
        s = score(new)
        # a move never raises the energy in exact arithmetic; the scaled integer cut can return a labelling that is
        # worse by rounding, which is not taken (relative 1e-12: far above float error, far below any real move)
        if s[0] < best[0] or (s[0] == best[0] and s[1] < best[1] - 1e-12 * abs(best[1])):
            lab, best, quiet = new, s, 0
        else:
            quiet += 1
    return lab, cuts


class ClickCut:
    """The click energy of one image (module docstring) and its cut.

    Args:
        graph: the image's ``ImageGraph``.
        lam: Potts weight per unit of summed contrast weight, relative to the per-pixel unary in [0, 1].
        geo_weight: weight of the geodesic distance in the click distances.
        border_margin: added to the background's distance to the border clusters.
        backend: max-flow backend of ``featlib.graphcut.min_cut``: "auto" | "scipy" | "pymaxflow".
        segments: optional int [H, W] partition: an object label's lone newest click stands for its segment.
    Defaults are set (and their sources given) by the segmenters that use this class.
    """

    def __init__(self, graph: ImageGraph, lam: float, geo_weight: float, border_margin: float, backend: str,
                 segments: np.ndarray | None = None):
        self.check_args(lam, geo_weight, border_margin, backend)
        if segments is not None and np.shape(segments) != graph.shape:
            raise ValueError(f"segments must be [H, W] = {graph.shape}, got shape {np.shape(segments)}")
        self.graph, self.backend = graph, backend
        self.lam, self.geo_weight, self.border_margin = float(lam), float(geo_weight), float(border_margin)
        self.segments = segments
        self.last_cuts = 0  # min cuts of the last solve (1 per expansion move)

    @staticmethod
    def check_args(lam: float, geo_weight: float, border_margin: float, backend: str) -> None:
        """ValueError for a negative weight or an unknown / unavailable max-flow backend."""
        if lam < 0 or geo_weight < 0 or border_margin < 0:
            raise ValueError("lam, geo_weight and border_margin must be >= 0")
        if backend not in ("auto", "scipy", "pymaxflow"):
            raise ValueError(f"backend must be 'auto', 'scipy' or 'pymaxflow', got {backend!r}")
        if backend == "pymaxflow" and not maxflow_available():
            raise ValueError("backend='pymaxflow' needs PyMaxflow (pip install 'featlib[maxflow]')")

    def distances(self, g: RegionGraph, clicks: Sequence[tuple[int, int, int]], n_labels: int,
                  lone: tuple[int, int, int] | None = None) -> np.ndarray:
        """float64 [R, L]: ``D_l`` of every node for each label (module docstring); clicks (y, x, label index)."""
        dist = np.full((g.n, n_labels), np.inf)
        dist[:, 0] = _border_term(self.graph, g, self.geo_weight) + self.border_margin
        for y, x, lab in clicks:
            if (y, x, lab) == lone:
                term = _segment_term(self.graph, g, y, x, self.segments, self.geo_weight)
            else:
                term = _click_term(self.graph, g, y, x, self.geo_weight)
            dist[:, lab] = np.minimum(dist[:, lab], term)
        return np.minimum(dist, _FAR)

    def solve(self, clicks: Sequence[tuple[int, int, int]], n_labels: int, current: np.ndarray | None = None,
              roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Label indices int16 [H, W] of the cut for ``clicks`` (y, x, label index in 0..n_labels-1).

        A later click on the same pixel replaces an earlier one; the last click's label is expanded first. With
        ``roi`` (y0, y1, x0, x1) only nodes meeting the box are free; the others keep their majority label in
        ``current`` (int [H, W], -1 = no label), and the pixels outside the free nodes are ``current``'s. For more
        than two labels ``current`` (when given) is also where alpha-expansion starts (each node's majority label;
        a node without one starts at its cheapest label). Without clicks of a label > 0 the answer is all background.
        """
        first = clicks[-1][2] if len(clicks) else 0
        h, w = self.graph.shape
        self.last_cuts = 0
        clicks = list({(y, x): (y, x, lab) for y, x, lab in clicks}.values())
        # the newest click, when it is its object label's only one, stands for its segment (in this cut only)
        lone = None
        if self.segments is not None and first > 0 and sum(lab == first for _, _, lab in clicks) == 1:
            lone = next(c for c in clicks if c[2] == first)
        if not any(lab > 0 for _, _, lab in clicks):
            return np.zeros((h, w), np.int16)
        g = self.graph.graph(split_regions(self.graph.base_regions, clicks))
        n = g.n
        dist = self.distances(g, clicks, n_labels, lone)
        clicked = np.array(sorted({0} | {lab for _, _, lab in clicks}))  # background + the labels with clicks
        hard = np.full(n, -1, np.int64)
        for y, x, lab in clicks:
            hard[g.regions[y, x]] = lab
        wt = self.lam * g.w
        free = np.ones(n, bool)
        if roi is not None:
            y0, y1, x0, x1 = roi
            free[:] = False
            free[np.unique(g.regions[y0:y1, x0:x1])] = True
        idx = np.flatnonzero(free)
        local = np.full(n, -1, np.int64)
        local[idx] = np.arange(len(idx))
        # unaries of the free nodes, each label against its nearest rival among all clicked labels
        costs = label_costs(dist[idx][:, clicked], g.area[idx])
        sub = clicked
        cur = g.node_labels(current, n_labels) if current is not None else None
        if roi is not None:
            fi, fj = free[g.ei], free[g.ej]
            # The local cut chooses among the labels that meet the box: its pixels', the fixed neighbours' and the
            # clicks' on free nodes (always >= 2: the click's label and its pixel's current one).
            near = np.concatenate([np.unique(current[y0:y1, x0:x1]), cur[g.ej[fi & ~fj]], cur[g.ei[fj & ~fi]],
                                   hard[idx]])
            keep = np.isin(clicked, near)
            sub, costs = clicked[keep], costs[:, keep]
            # An edge from a free node to a fixed one: the free node pays its weight for every label but the fixed one.
            for a, b, m in ((g.ei, g.ej, fi & ~fj), (g.ej, g.ei, fj & ~fi)):
                for c, lab in enumerate(sub):
                    sel = m & (cur[b] != lab)
                    np.add.at(costs[:, c], local[a[sel]], wt[sel])
        both = free[g.ei] & free[g.ej]
        init = None
        if cur is not None and len(sub) > 2:
            init = _to_sub(cur[idx], sub)
            init = np.where(init >= 0, init, costs.argmin(1))
        node, self.last_cuts = alpha_expansion(costs, local[g.ei[both]], local[g.ej[both]], wt[both],
                                               _to_sub(hard[idx], sub), self.backend, init=init,
                                               first=int(np.searchsorted(sub, first)) if first in sub else 1)
        full = np.full(n, -1, np.int64)
        full[idx] = sub[node]
        if roi is None:
            return full[g.regions].astype(np.int16)
        out = np.array(current, np.int16)
        inside = free[g.regions]
        out[inside] = full[g.regions[inside]]
        return out


def _to_sub(hard: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Label indices [n] (-1: none) re-indexed to positions in ``sub`` (sorted label indices); not in sub -> -1."""
    lut = np.full(max(int(sub.max()), int(hard.max(initial=0))) + 1, -1, np.int64)
    lut[sub] = np.arange(len(sub))
    out = np.full(hard.shape, -1, np.int64)
    ok = hard >= 0
    out[ok] = lut[hard[ok]]
    return out
