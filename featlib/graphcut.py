"""Graph-cut building blocks shared by the partition hierarchy, click segmentation and HILL.

    b = pixel_strength(mesh)                              # float32 [H, W] boundary strength per pixel
    regions = edge_watershed(mesh, spacing=4)             # int32 [H, W] region ids 0..R-1, borders on mesh ridges
    i, j, w, d = contrast_weights(mesh)                   # pixel edges [E]: weight exp(-d^2 / 2 mean d^2), distance
    ei, ej, wsum, dsum, n = region_adjacency(regions, i, j, w, d)   # the same terms summed per region pair
    fg, value = min_cut(R, ei, ej, lam * wsum, cost_fg, cost_bg)    # bool [R] foreground, cut value

Energy. ``min_cut`` minimises over binary labels L (1 = foreground)

    E(L) = sum_v cost(v, L_v) + sum_(i,j) w_ij [L_i != L_j],   w_ij >= 0

exactly (the pairwise term is submodular) by an s-t max-flow. Only ``cost_fg - cost_bg`` matters (E changes by the
constant ``sum_v min(cost_fg, cost_bg)``), so each node gets one t-link: ``S -> v`` of capacity
``max(cost_bg - cost_fg, 0)`` (cut when v is background) or ``v -> T`` of ``max(cost_fg - cost_bg, 0)`` (cut when v is
foreground); every pair gets two arcs of capacity w_ij. The foreground is the source side of a minimum cut.

Capacity scaling. Both max-flow backends want integers: all capacities are multiplied by
``scale = 2**29 / (sum of t-links + 2 sum w)`` and rounded, so each term is off by at most 0.5 units, i.e. 2**-30
of the total capacity T: the cut found is optimal up to ``(terms it cuts) * 2**-30 * T``. Every capacity, including
the "infinite" hard constraints ``sum of the rounded capacities + 1`` (larger than any finite cut), fits in int32.
Among the minimal cuts scipy's result is the minimal source set (nodes reachable from S in the residual graph), which
is unique.

Contrast weights and regions. Pixel edges weigh ``exp(-beta d^2)``, ``beta = 1 / (2 mean d^2)`` over the image (as in
GrabCut), so the pairwise term is strong in flat areas and weak across feature edges. Summed over the pixel edges that
two regions share, they become the region graph's pairwise terms; the pair key ``min * R + max`` makes the sums one
``np.unique`` + ``np.bincount``.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow
from skimage.segmentation import watershed

from featlib.distances import DistanceMesh

# Finite capacities are scaled so their total is about 2**29; "infinite" hard constraints are larger than any cut.
_CAP_BUDGET = float(2**29)


def maxflow_available() -> bool:
    """True when PyMaxflow (optional extra ``maxflow``) is importable."""
    try:
        # PyMaxflow is an optional GPL extra: imported on use, never at module load.
        import maxflow  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------- max-flow


def min_cut(
    n: int,
    edges_i: np.ndarray,
    edges_j: np.ndarray,
    edges_w: np.ndarray,
    cost_fg: np.ndarray,
    cost_bg: np.ndarray,
    hard_fg: np.ndarray | None = None,
    hard_bg: np.ndarray | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, int]:
    """Binary s-t min cut of ``sum_v cost(v, label_v) + sum_(i,j) w_ij [label_i != label_j]``.

    Args:
        n: number of nodes.
        edges_i, edges_j, edges_w: undirected pairwise terms [E] (w >= 0, float).
        cost_fg, cost_bg: [n] costs (>= 0, float) of labelling each node foreground / background.
        hard_fg, hard_bg: optional bool [n] nodes forced to foreground / background (not both).
        backend: "scipy", "pymaxflow" or "auto" (PyMaxflow if installed).

    Returns:
        (fg bool [n], cut value in integer capacity units). Capacities are scaled to integers (total ~2**29) and
        rounded. With scipy the foreground is the minimal source set (unique); PyMaxflow's BK algorithm may put
        nodes that are free in both search trees on the source side, so the two can differ only on ties.
    """
    if backend == "auto":
        backend = "pymaxflow" if maxflow_available() else "scipy"
    if backend not in ("scipy", "pymaxflow"):
        raise ValueError(f"backend must be 'scipy', 'pymaxflow' or 'auto', got {backend!r}")
    cost_fg = np.asarray(cost_fg, np.float64)
    cost_bg = np.asarray(cost_bg, np.float64)
    edges_w = np.asarray(edges_w, np.float64)
    if cost_fg.shape != (n,) or cost_bg.shape != (n,):
        raise ValueError(f"cost_fg/cost_bg must have shape ({n},), got {cost_fg.shape} and {cost_bg.shape}")
    for name, a in (("cost_fg", cost_fg), ("cost_bg", cost_bg), ("edges_w", edges_w)):
        if not np.isfinite(a).all() or (a < 0).any():
            raise ValueError(f"{name} must be finite and >= 0")
    # Only the difference of the two unary costs matters: keep one non-negative t-link per node.
    diff = cost_fg - cost_bg
    src = np.maximum(-diff, 0.0)  # S->v, cut when v is background: pays cost_bg - cost_fg
    snk = np.maximum(diff, 0.0)  # v->T, cut when v is foreground
    total = src.sum() + snk.sum() + 2.0 * edges_w.sum()
    scale = _CAP_BUDGET / max(total, 1e-12)
    src_i = np.rint(src * scale).astype(np.int64)
    snk_i = np.rint(snk * scale).astype(np.int64)
    w_i = np.rint(edges_w * scale).astype(np.int64)
    inf = int(src_i.sum() + snk_i.sum() + 2 * w_i.sum() + 1)
    if hard_fg is not None:
        src_i[np.asarray(hard_fg, bool)] = inf
        snk_i[np.asarray(hard_fg, bool)] = 0
    if hard_bg is not None:
        if hard_fg is not None and (np.asarray(hard_fg) & np.asarray(hard_bg)).any():
            raise ValueError("a node cannot be forced to both foreground and background")
        snk_i[np.asarray(hard_bg, bool)] = inf
        src_i[np.asarray(hard_bg, bool)] = 0
    keep = w_i > 0
    ei, ej, w_i = np.asarray(edges_i)[keep], np.asarray(edges_j)[keep], w_i[keep]
    if backend == "pymaxflow":
        return _cut_pymaxflow(n, ei, ej, w_i, src_i, snk_i)
    return _cut_scipy(n, ei, ej, w_i, src_i, snk_i)


def _cut_scipy(n, ei, ej, w, src, snk) -> tuple[np.ndarray, int]:
    """Dinic max-flow on the (n + 2)-node capacity matrix; the foreground is the residual BFS tree from S."""
    s, t = n, n + 1
    nodes = np.arange(n)
    hs, ht = src > 0, snk > 0
    rows = np.concatenate([ei, ej, np.full(hs.sum(), s), nodes[ht]])
    cols = np.concatenate([ej, ei, nodes[hs], np.full(ht.sum(), t)])
    caps = np.concatenate([w, w, src[hs], snk[ht]])
    cap = csr_matrix((caps.astype(np.int32), (rows, cols)), shape=(n + 2, n + 2))
    cap.sum_duplicates()
    res = maximum_flow(cap, s, t, method="dinic")
    residual = (cap - res.flow).tocsr()
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    reach = breadth_first_order(residual, s, directed=True, return_predecessors=False)
    fg = np.zeros(n + 2, bool)
    fg[reach] = True
    return fg[:n], int(res.flow_value)


def _cut_pymaxflow(n, ei, ej, w, src, snk) -> tuple[np.ndarray, int]:
    """Boykov-Kolmogorov max-flow (PyMaxflow) on the same integer capacities."""
    import maxflow  # optional GPL extra, imported on use (see maxflow_available)

    g = maxflow.Graph[int](n, max(len(ei), 1))
    nodes = g.add_nodes(n)
    if len(ei):
        g.add_edges(nodes[ei], nodes[ej], w, w)
    g.add_grid_tedges(nodes, src, snk)
    flow = g.maxflow()
    sink_side = g.get_grid_segments(nodes)  # PyMaxflow: True = sink side
    return ~np.asarray(sink_side, bool), int(flow)


# ----------------------------------------------------------------------------------------------- regions


def pixel_strength(mesh: DistanceMesh) -> np.ndarray:
    """Per-pixel boundary strength: the max mesh distance over the pixel's (up to) 4 edges -> float32 [H, W]."""
    h, w = mesh.shape
    g = np.zeros((h, w), np.float32)
    g[:-1] = np.maximum(g[:-1], mesh.dy)
    g[1:] = np.maximum(g[1:], mesh.dy)
    g[:, :-1] = np.maximum(g[:, :-1], mesh.dx)
    g[:, 1:] = np.maximum(g[:, 1:], mesh.dx)
    return g


def grid_seeds(strength: np.ndarray, spacing: int) -> tuple[np.ndarray, np.ndarray]:
    """One seed per ``spacing`` x ``spacing`` block of ``strength`` [H, W], at the block's weakest pixel.

    Returns (ys, xs), int [ceil(H/s) * ceil(W/s)], blocks in raster order (ties: first pixel in the block). A seed on
    an edge would grow a region straddling it (the reason SLIC moves its seeds off gradients).
    """
    if spacing < 1:
        raise ValueError(f"spacing must be >= 1, got {spacing}")
    h, w = strength.shape
    gh, gw = -(-h // spacing), -(-w // spacing)
    padded = np.pad(strength, ((0, gh * spacing - h), (0, gw * spacing - w)), constant_values=np.inf)
    blocks = padded.reshape(gh, spacing, gw, spacing).transpose(0, 2, 1, 3).reshape(gh, gw, spacing * spacing)
    k = blocks.argmin(-1)
    ys = (np.arange(gh)[:, None] * spacing + k // spacing).ravel()
    xs = (np.arange(gw)[None, :] * spacing + k % spacing).ravel()
    return ys, xs


def edge_watershed(mesh: DistanceMesh, spacing: int, compactness: float = 0.0) -> np.ndarray:
    """Watershed of the mesh's pixel *edges* from a regular seed grid -> int32 [H, W] region ids 0..R-1.

    The oversegmentation of click segmentation and HILL. ``spacing <= 1`` returns one region per pixel. Regions are
    about ``spacing`` px wide and their borders lie on mesh ridges, so a cut between regions loses little against a
    pixel cut. ``compactness`` is skimage's compact-watershed weight (0 = plain flooding).
    """
    h, w = mesh.shape
    if spacing <= 1:
        return np.arange(h * w, dtype=np.int32).reshape(h, w)
    noise = 1e-6 * np.random.default_rng(0).random((h, w), dtype=np.float32)  # fixed tie-break between equal pixels
    ys, xs = grid_seeds(pixel_strength(mesh) + noise, spacing)
    # Flood on the doubled (2H-1) x (2W-1) grid where every pixel edge is a site of its own (as in BSDS ucm2):
    # region borders then fall exactly on the strong pixel edges instead of one pixel beside them, which a
    # per-pixel boundary map cannot guarantee (both pixels beside a step edge are equally "high").
    grid = np.zeros((2 * h - 1, 2 * w - 1), np.float32)
    grid[1::2, 0::2] = mesh.dy
    grid[0::2, 1::2] = mesh.dx
    grid[1::2, 1::2] = np.maximum(np.maximum(mesh.dy[:, :-1], mesh.dy[:, 1:]), np.maximum(mesh.dx[:-1], mesh.dx[1:]))
    markers = np.zeros(grid.shape, np.int32)
    markers[2 * ys, 2 * xs] = np.arange(1, len(ys) + 1)
    labels = watershed(grid, markers, compactness=compactness)[0::2, 0::2]
    _, inv = np.unique(labels, return_inverse=True)  # relabel to 0..R-1
    return inv.reshape(h, w).astype(np.int32)


# ----------------------------------------------------------------------------------------------- region graph


def contrast_weights(mesh: DistanceMesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel edges of a mesh with contrast-sensitive weights: (i, j, w = exp(-d^2 / (2 mean d^2)), d), all [E].

    i, j: flat pixel indices ``y * W + x`` (``DistanceMesh.edges`` order); w, d: float64.
    """
    i, j, d = mesh.edges()
    d = d.astype(np.float64)
    beta = 1.0 / (2.0 * max(float(np.mean(d**2)), 1e-12))
    return i, j, np.exp(-beta * d**2), d


def region_adjacency(regions: np.ndarray, i: np.ndarray, j: np.ndarray, *values: np.ndarray) -> tuple:
    """Sum per-pixel-edge values over region pairs -> (ei, ej, *sums, edge count), each [E_regions].

    regions: int [H, W] ids 0..R-1; i, j: flat pixel indices [E] of the pixel edges; values: any number of
    per-pixel-edge arrays [E] (e.g. contrast weights and distances). Pairs have ei < ej (int64), sorted by
    ``ei * R + ej``; sums and counts are float64. Edges inside one region are dropped.
    """
    flat = regions.ravel()
    r = int(flat.max()) + 1
    ri, rj = flat[i], flat[j]
    cross = ri != rj
    a, b = np.minimum(ri[cross], rj[cross]), np.maximum(ri[cross], rj[cross])
    uniq, inv = np.unique(a.astype(np.int64) * r + b, return_inverse=True)
    sums = [np.bincount(inv, weights=np.asarray(v)[cross], minlength=len(uniq)) for v in values]
    cnt = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    return ((uniq // r).astype(np.int64), (uniq % r).astype(np.int64), *sums, cnt)
