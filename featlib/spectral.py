"""Spectral globalisation of a boundary map on the superpixel graph (gPb's sPb, on regions instead of pixels).

    extra = spectral_boundaries(regions, mesh)      # float64 [E]: per pixel edge (mesh.edges() order), 0 inside
    mesh2 = add_to_mesh(mesh, extra, weight=1.0)    # the hierarchy then merges on mesh + weight * extra

Maths (Shi & Malik 2000; Arbelaez et al. 2011, section 3.2): local boundaries fire on texture as much as on object
outlines; the smallest eigenvectors of the normalised graph Laplacian vary slowly inside large coherent areas and
jump across the boundaries that separate them, so their gradients are a *global* boundary signal. Here the graph's
nodes are the hierarchy's initial regions (a few thousand watershed basins, not 150k pixels: the eigenproblem costs
milliseconds to ~0.3 s instead of minutes), with affinity

    W_ab = |boundary(a, b)| * exp(-mean mesh value on boundary(a, b) / rho)        (adjacent regions only)

and the generalised problem (D - W) v = lambda D v solved for the k + 1 smallest eigenpairs (the first is
constant). The spectral boundary between adjacent regions is sum_{j=1..k} |v_j(a) - v_j(b)| / sqrt(lambda_j) with
each v_j scaled to max |v_j| = 1, the whole divided by its maximum over the image (in [0, 1]). Defaults chosen on the
20 held-out BSDS500 train images with Lab histogram gradients (docs/PARTITIONS.md): rho 0.1 (covering ODS 0.624;
0.05: 0.612, 0.2: 0.621), k 16.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, diags
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from featlib.distances import DistanceMesh
from featlib.graphcut import region_adjacency

RHO = 0.1
N_VECTORS = 16


def spectral_boundaries(regions: np.ndarray, mesh: DistanceMesh, k: int = N_VECTORS, rho: float = RHO) -> np.ndarray:
    """Spectral boundary strength per pixel edge, float64 [E] in [0, 1] (``mesh.edges()`` order; 0 inside a region).

    regions: int [H, W] ids 0..R-1 (connected); mesh: the local boundary mesh over the same image.
    """
    if regions.shape != mesh.shape:
        raise ValueError(f"regions {regions.shape} and mesh {mesh.shape} differ in shape")
    if rho <= 0 or k < 1:
        raise ValueError(f"need rho > 0 and k >= 1, got rho={rho}, k={k}")
    i, j, d = mesh.edges()
    ei, ej, sums, lens = region_adjacency(regions, i, j, d.astype(np.float64))
    r = int(regions.max()) + 1
    out = np.zeros(len(i))
    kk = min(k + 1, r - 2)
    if kk < 2 or not len(ei):
        return out
    w = lens * np.exp(-(sums / lens) / rho)
    graph = coo_matrix((np.r_[w, w], (np.r_[ei, ej], np.r_[ej, ei])), shape=(r, r)).tocsr()
    dinv = diags(1.0 / np.sqrt(np.asarray(graph.sum(1)).ravel() + 1e-12))
    m = dinv @ graph @ dinv  # D^-1/2 W D^-1/2: its largest eigenvalues are 1 - the Laplacian's smallest
    try:
        vals, vecs = eigsh(m, k=kk, which="LA", v0=np.ones(r), tol=1e-4)
    except ArpackNoConvergence as e:  # keep what converged; the boundary is a soft extra signal
        vals, vecs = e.eigenvalues, e.eigenvectors
    order = np.argsort(-vals)
    lam = np.clip(1.0 - vals[order], 1e-6, None)
    v = dinv @ vecs[:, order]  # generalised eigenvectors of (D - W) v = lambda D v
    s = np.zeros(len(ei))
    for q in range(1, v.shape[1]):
        vq = v[:, q] / (np.abs(v[:, q]).max() + 1e-12)
        s += np.abs(vq[ei] - vq[ej]) / np.sqrt(lam[q])
    s /= max(s.max(), 1e-12)
    flat = regions.ravel()
    lo, hi = np.minimum(flat[i], flat[j]).astype(np.int64), np.maximum(flat[i], flat[j]).astype(np.int64)
    cross = lo != hi
    out[cross] = s[np.searchsorted(ei.astype(np.int64) * r + ej, lo[cross] * r + hi[cross])]
    return out


def add_to_mesh(mesh: DistanceMesh, extra: np.ndarray, weight: float) -> DistanceMesh:
    """``mesh`` + ``weight`` x per-edge values ``extra`` [E] (``mesh.edges()`` order: vertical edges first)."""
    h, w = mesh.shape
    ny = (h - 1) * w
    if extra.shape != (ny + h * (w - 1),):
        raise ValueError(f"extra must have one value per pixel edge ({ny + h * (w - 1)}), got {extra.shape}")
    return DistanceMesh(dy=(mesh.dy + weight * extra[:ny].reshape(h - 1, w)).astype(np.float32),
                        dx=(mesh.dx + weight * extra[ny:].reshape(h, w - 1)).astype(np.float32))
