"""Oriented multi-scale gradients of histograms (colour, texture) and of learned features: a boundary map.

    g = oriented_gradients(image)                   # uint8 [H, W, 3]: Lab histograms + per-image textons
    g = oriented_gradients(image, features=feats)   # + FeatureNet features {s: [C_s, h_s, w_s]} as one more cue
    g.strength            # float32 [H, W] in ~[0, 1]: boundary strength at the best orientation
    g.orientation         # float32 [H, W]: the boundary normal's angle (radians)
    g.thin()              # float32 [H, W]: non-maximum suppressed across the boundary (a soft edge map)
    g.mesh()              # featlib.distances.DistanceMesh: what the hierarchy / clicks / HILL read

Why (docs/PARTITIONS.md "Histogram gradients"): the field's learning-free or cue-weight-only methods that reach
covering ~0.59 on BSDS500 (gPb, Arbelaez et al. 2011; PMI, Isola et al. 2014) compare *distributions* of brightness,
colour and texture on the two halves of a disc around each pixel, at several radii, instead of differences between
neighbouring pixels. This module computes that signal in closed form, for every orientation at once:

- Cues: L, a, b of CIE Lab, each split into B soft bins (linear interpolation between bin centres, so a pixel
  belongs to two neighbouring bins), and a texton channel: a filter bank on L (first and second Gaussian derivatives
  at 4 orientations, Laplacian, at sigma 1 and 2 px) clustered by k-means per image into K textons (hard bins).
- For one cue with bin memberships h_b [H, W], the half-disc histograms at scale sigma are replaced by Gaussian
  windows split by a line of normal n: their difference is sigma sqrt(2 pi) (grad G_sigma * h_b) . n and their sum
  2 G_sigma * h_b (exact for a straight step edge). The chi^2 distance of the two halves,
  1/2 sum_b (H+_b - H-_b)^2 / (H+_b + H-_b), becomes a quadratic form in n:

      chi^2(n) = n^T T n,   T = (pi sigma^2 / 2) sum_b grad g_b grad g_b^T / (g_b + eps),   g_b = G_sigma * h_b

  (1 for two disjoint histograms across a step edge). T is a 2x2 "histogram structure tensor" per pixel: the best
  orientation is its principal eigenvector and the strength its largest eigenvalue, no loop over 8 orientations.
- Learned features f [C, h, w] (sigmoid, in [0, 1]) are a cue of their own: the squared distance of the mean
  features of the two halves, / C, T = (2 pi sigma^2 / C) sum_c grad g_c grad g_c^T, per stride on its own grid
  (sigma = 1 cell) and upsampled; strides averaged.
- Tensors of every cue and scale are averaged with ``weights`` (default: equal; a logistic fit on BSDS500 train
  boundary pixels, gPb's way, did no better on held-out train images: covering 0.605 vs 0.609), then the largest
  eigenvalue is the strength. Scales (half-disc radii as gPb's: L 3, 5, 10 px; a, b, texture 5, 10, 20 px at
  481 x 321) use sigma = r / 2 (held-out train covering 0.609; r / 2.86: 0.596; r / 1.43: 0.592).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2
from scipy.spatial.distance import cdist
from skimage.color import rgb2lab

from featlib.distances import DistanceMesh, feature_dict
from featlib.gaussian import gaussian_derivatives, gaussian_smooth

# half-disc radii in px at BSDS resolution (gPb's), per cue
RADII: dict[str, tuple[float, ...]] = {"L": (3, 5, 10), "a": (5, 10, 20), "b": (5, 10, 20), "t": (5, 10, 20)}
SIGMA_PER_RADIUS = 0.5  # Gaussian sigma = r / 2 (see the module docstring)
N_BINS = 25  # soft bins per Lab channel (gPb: 25 for brightness and colour)
LAB_RANGE = {"L": (0.0, 100.0), "a": (-60.0, 60.0), "b": (-60.0, 60.0)}  # bins span these; values outside clip
N_TEXTONS = 32  # per-image k-means textons (gPb: 32 universal textons)
EPS = 1e-3  # histogram mass floor in the chi^2 denominator (empty bins carry no signal)


@dataclass
class OrientedGradients:
    """The combined tensor ``tensor`` float32 [3, H, W] = (Txx, Txy, Tyy) and its derived maps."""

    tensor: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.tensor.shape[1:]

    @property
    def strength(self) -> np.ndarray:
        """Largest eigenvalue of the tensor: float32 [H, W] (chi^2 at the best orientation)."""
        return tensor_strength(self.tensor)

    @property
    def orientation(self) -> np.ndarray:
        """Angle of the boundary normal (the principal eigenvector): float32 [H, W] in (-pi/2, pi/2]."""
        txx, txy, tyy = self.tensor
        return (0.5 * np.arctan2(2 * txy, txx - tyy)).astype(np.float32)

    def thin(self) -> np.ndarray:
        """Strength kept only where it is a maximum along the normal (1 px either side), else 0: float32 [H, W]."""
        e = self.strength
        ang = self.orientation
        ny, nx = np.sin(ang), np.cos(ang)
        yy, xx = np.indices(e.shape, dtype=np.float32)
        a = ndimage.map_coordinates(e, [yy + ny, xx + nx], order=1, mode="nearest")
        b = ndimage.map_coordinates(e, [yy - ny, xx - nx], order=1, mode="nearest")
        return np.where((e >= a) & (e >= b), e, 0).astype(np.float32)

    def mesh(self) -> DistanceMesh:
        """Pixel-edge values for the hierarchy: the mean strength of the two pixels of each 4-neighbour edge."""
        return pixel_mesh(self.strength)


def pixel_mesh(e: np.ndarray) -> DistanceMesh:
    """A per-pixel boundary map float32 [H, W] -> the hierarchy's pixel-edge values: the mean of the two pixels of
    each 4-neighbour edge (dy [H-1, W], dx [H, W-1])."""
    return DistanceMesh(dy=0.5 * (e[1:] + e[:-1]), dx=0.5 * (e[:, 1:] + e[:, :-1]))


def check_image(image) -> np.ndarray:
    """The image as an array, or ValueError unless it is uint8 RGB [H, W, 3] of at least 2 x 2 pixels."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image must be at least 2 x 2 pixels, got {image.shape[:2]}")
    return image


def soft_bins(x: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """Values [H, W] -> memberships float32 [n, H, W] of n bins spanning [lo, hi] (linear, summing to 1)."""
    if n < 2:
        raise ValueError(f"need at least 2 bins, got {n}")
    t = np.clip((np.asarray(x, np.float32) - lo) / (hi - lo), 0, 1) * (n - 1)
    i0 = np.minimum(t.astype(np.intp), n - 2)
    f = t - i0
    out = np.zeros((n, *t.shape), np.float32)
    np.put_along_axis(out, i0[None], (1 - f)[None], 0)
    np.put_along_axis(out, (i0 + 1)[None], f[None], 0)
    return out


def _filter_bank(lum: np.ndarray) -> np.ndarray:
    """L in [0, 1] [H, W] -> float32 [H, W, 18]: oriented 1st / 2nd Gaussian derivatives and the LoG at 2 scales."""
    out = []
    for s in (1.0, 2.0):
        gy, gx, gyy, gxx, gxy = gaussian_derivatives(lum, s, ((1, 0), (0, 1), (2, 0), (0, 2), (1, 1)))
        for k in range(4):
            c, si = np.cos(np.pi * k / 4), np.sin(np.pi * k / 4)
            out += [c * gx + si * gy, c * c * gxx + 2 * c * si * gxy + si * si * gyy]
        out.append(gyy + gxx)  # the Laplacian of Gaussian
    return np.stack(out, -1).astype(np.float32)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """k-means++ seeds of x float64 [N, D] -> [k, D]: the draws and distances of ``scipy.cluster.vq``'s ``'++'``
    start (so ``kmeans2(x, seeds, minit="matrix")`` reproduces ``kmeans2(x, k, minit="++", seed=...)``), with each
    point's squared distance to its nearest seed updated per new seed instead of recomputed against all of them
    (k instead of k^2 / 2 distance passes)."""
    seeds = np.empty((k, x.shape[1]))
    seeds[0] = x[rng.randint(len(x))]
    d2 = cdist(seeds[:1], x, metric="sqeuclidean")[0]
    for i in range(1, k):
        cum = (d2 / d2.sum()).cumsum()
        seeds[i] = x[int(np.searchsorted(cum, rng.uniform()))]
        if i + 1 < k:
            d2 = np.minimum(d2, cdist(seeds[i:i + 1], x, metric="sqeuclidean")[0])
    return seeds


def _n_distinct_rows(x: np.ndarray, at_least: int) -> int:
    """min(number of distinct rows of ``x.round(4)`` (float32 [N, D]), ``at_least``), cheaply when there are many:
    each row hashed to one int64 from its values' bits (-0.0 made 0.0, so equal rows hash equal), and ``at_least``
    distinct hashes prove as many distinct rows; otherwise counted exactly."""
    r = np.asarray(x, np.float32).round(4)
    bits = (r + np.float32(0)).view(np.int32).astype(np.int64)
    h = np.zeros(len(bits), np.int64)
    for col in bits.T:  # polynomial hash in wrapping integer arithmetic: exact, the same for equal rows
        h = h * np.int64(1_000_003) + col
    if len(np.unique(h)) >= at_least:
        return at_least
    return min(at_least, len(np.unique(r, axis=0)))


def textons(lum: np.ndarray, k: int = N_TEXTONS, seed: int = 0, sample: int = 20000) -> np.ndarray:
    """Per-image textons: k-means (k-means++ start, ``seed``) of the filter bank on ``sample`` pixels -> int [H, W]."""
    f = _filter_bank(np.asarray(lum, np.float32))
    x = f.reshape(-1, f.shape[-1])
    rng = np.random.default_rng(seed)
    pick = x[rng.choice(len(x), min(len(x), sample), replace=False)]
    k = _n_distinct_rows(pick, k)  # a flat image has fewer distinct responses than textons
    if k < 2:
        return np.zeros(lum.shape, np.intp)
    pick = pick.astype(np.float64)
    with warnings.catch_warnings():  # an empty cluster is harmless here (that texton labels no pixel)
        warnings.simplefilter("ignore", UserWarning)
        cent, _ = kmeans2(pick, _kmeans_pp(pick, k, np.random.RandomState(seed)), iter=10, minit="matrix")
    cent = cent.astype(np.float32)
    return np.argmin((cent**2).sum(1)[None] - 2 * x @ cent.T, 1).reshape(lum.shape)


def colour_cues(image: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 [H, W, 3] -> {"L", "a", "b", "t": bin memberships float32 [B, H, W]}."""
    lab = rgb2lab(image).astype(np.float32)
    cues = {c: soft_bins(lab[..., i], *LAB_RANGE[c], N_BINS) for i, c in enumerate("Lab")}
    tex = textons(lab[..., 0] / 100.0)
    cues["t"] = (tex[None] == np.arange(N_TEXTONS)[:, None, None]).astype(np.float32)
    return cues


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """[..., H, W] -> [..., ceil(H/f), ceil(W/f)] means of f x f blocks (edge-padded): histogram mass preserved."""
    h, w = x.shape[-2:]
    ph, pw = -h % f, -w % f
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
    out = sum(x[..., i::f, j::f] for i in range(f) for j in range(f))  # strided adds: no slow axis reductions
    return out / np.float32(f * f)


def _upsample(t: np.ndarray, f: int, size: tuple[int, int]) -> np.ndarray:
    """[3, h, w] on an f-times coarser grid (block centres) -> [3, H, W], bilinear (separable), edges clamped."""
    out = t
    for axis, n in ((1, size[0]), (2, size[1])):
        pos = np.clip((np.arange(n) + 0.5) / f - 0.5, 0, out.shape[axis] - 1)
        i0 = np.minimum(pos.astype(np.intp), max(out.shape[axis] - 2, 0))
        wt = (pos - i0).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = n
        wt = wt.reshape(shape)
        lo, hi = np.take(out, i0, axis=axis), np.take(out, np.minimum(i0 + 1, out.shape[axis] - 1), axis=axis)
        out = lo + wt * (hi - lo)
    return out.astype(np.float32)


# bins filtered together: at most this many values per [b, H, W] stack (~32 MB float32; a BSDS500 image's 25-32 bins
# fit in one, a 12-megapixel photo's are filtered one at a time)
CHUNK_VALUES = 1 << 23
MIN_SIGMA = 2.0  # a scale is computed on a 2^k-times coarser grid while sigma / 2^k stays >= this (up to 4x)


def histogram_tensor(bins: np.ndarray, sigma: float) -> np.ndarray:
    """chi^2 half-window tensor of one cue: bins float32 [B, H, W] -> (Txx, Txy, Tyy) float32 [3, H, W].

    Large scales run on a block-averaged grid (f = 2 or 4, sigma / f >= ``MIN_SIGMA``): T is invariant to the
    grid (gradients grow by f as sigma^2 shrinks by f^2). Measured on the 20 held-out train images: covering ODS
    0.636 vs 0.642 at full resolution (within the split's noise), 1.4x faster; with central differences on the
    coarse grid (sigma / f >= 1.25) it fell to 0.608.
    """
    f = 1
    while f < 4 and sigma / (2 * f) >= MIN_SIGMA:
        f *= 2
    if f > 1:
        return _upsample(_histogram_tensor(_block_mean(bins, f), sigma / f, exact=True), f, bins.shape[1:])
    return _histogram_tensor(bins, sigma)


def _histogram_tensor(bins: np.ndarray, sigma: float, exact: bool = False) -> np.ndarray:
    """The tensor on the given grid. ``exact``: sampled Gaussian-derivative filters for the gradient (needed on a
    coarse grid, where a central difference over 2 cells underestimates a sigma ~2 px edge); else the central
    difference of the smoothed map (one filter per bin instead of three; as accurate from sigma 1.5 px up).
    Empty bins (no mass anywhere) are skipped; the others are filtered as [b, H, W] stacks of at most
    ``CHUNK_VALUES`` values, so memory stays bounded on large photos."""
    t = np.zeros((3, *bins.shape[1:]), np.float32)
    bins = bins[bins.reshape(len(bins), -1).any(1)]
    step = max(1, CHUNK_VALUES // max(t[0].size, 1))
    for k in range(0, len(bins), step):
        chunk = bins[k:k + step]
        if exact:
            g, gy, gx = gaussian_derivatives(chunk, sigma, ((0, 0), (1, 0), (0, 1)))
        else:
            g = gaussian_smooth(chunk, sigma)
            gy, gx = np.gradient(g, axis=(1, 2))
        inv = 1.0 / (g + EPS)
        for i in range(len(chunk)):  # accumulated bin by bin
            t[0] += gx[i] * gx[i] * inv[i]
            t[1] += gx[i] * gy[i] * inv[i]
            t[2] += gy[i] * gy[i] * inv[i]
    return t * (np.pi * sigma**2 / 2)


def feature_tensors(features, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Mean-difference tensor of learned features per stride -> {s: float32 [3, H, W]} at ``size`` (strides
    ascending): each stride's on its own grid (sigma = 1 cell), bilinearly upsampled."""
    feats = feature_dict(features)
    h, w = size
    out = {}
    for s, f in sorted(feats.items()):
        g = ndimage.gaussian_filter(f, (0, 1.0, 1.0))
        gy, gx = np.gradient(g, axis=(1, 2))
        t = np.stack([(gx * gx).sum(0), (gx * gy).sum(0), (gy * gy).sum(0)]) * (2 * np.pi / f.shape[0])
        if s != 1 or t.shape[1:] != (h, w):
            t = ndimage.zoom(t, (1, h / t.shape[1], w / t.shape[2]), order=1, grid_mode=True, mode="nearest")
        out[s] = t[:, :h, :w].astype(np.float32)
    return out


def feature_tensor(features, size: tuple[int, int]) -> np.ndarray:
    """Mean-difference tensor of learned features, averaged over strides -> float32 [3, H, W] at ``size``."""
    tensors = feature_tensors(features, size)
    return sum(tensors.values()) / len(tensors)


def tensor_strength(t: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of (Txx, Txy, Tyy) [3, ...]: float32 [...] (chi^2 at the best orientation)."""
    txx, txy, tyy = t
    return ((txx + tyy) / 2 + np.sqrt(((txx - tyy) / 2) ** 2 + txy**2)).astype(np.float32)


def colour_cue_tensors(image: np.ndarray, names=None) -> dict[str, np.ndarray]:
    """Every colour cue-scale tensor of an image uint8 [H, W, 3]: {"L3": float32 [3, H, W], "L5", "L10", "a5", ...,
    "t20"} in that order (cue L, a, b, t; radii ``RADII``); ``names`` keeps only those (None: all 12)."""
    out = {}
    for cue, bins in colour_cues(image).items():
        for r in RADII[cue]:
            name = f"{cue}{r:g}"
            if names is None or name in names:
                out[name] = histogram_tensor(bins, r * SIGMA_PER_RADIUS)
    return out


def oriented_gradients(image: np.ndarray, features=None, weights: Mapping[str, float] | None = None,
                       feature_weight: float = 1.0) -> OrientedGradients:
    """The boundary tensor of one image: mean over colour cues x scales (``weights``: {"L3": w, ...}, default
    equal), plus ``feature_weight`` x the learned-feature tensor when ``features`` are given (counted as one more
    cue-scale). ValueError on a bad image."""
    image = check_image(image)
    acc = np.zeros((3, *image.shape[:2]), np.float32)
    total = 0.0
    names = None if weights is None else {k for k, w in weights.items() if float(w) > 0}
    for name, t in colour_cue_tensors(image, names).items():
        w = 1.0 if weights is None else float(weights[name])
        acc += w * t
        total += w
    if features is not None and feature_weight > 0:
        acc += feature_weight * feature_tensor(features, image.shape[:2])
        total += feature_weight
    if total <= 0:
        raise ValueError("every cue weight is 0")
    return OrientedGradients(acc / total)
