"""Gaussian derivative filters over the last two axes of a stack, as matrix products of overlapping blocks.

    g, gy, gx = gaussian_derivatives(bins, 2.5, ((0, 0), (1, 0), (0, 1)))   # float32 [..., H, W] each
    g = gaussian_smooth(bins, 2.5)                                          # the same as ((0, 0),)

What it computes: ``scipy.ndimage.gaussian_filter(x, (0, ..., sigma, sigma), order=(0, ..., oy, ox))`` for each
(oy, ox) -- the same sampled kernels (radius ``int(4 sigma + 0.5)``; order 1 / 2: the kernel times -t / s^2,
t^2 / s^4 - 1 / s^2), the same half-sample-symmetric border (scipy's ``"reflect"``), rows first, then columns, each
derivative's row pass shared between orders. It agrees with scipy to float32 rounding (~1e-7 of the input's range;
tested), not bit for bit.

Why: the histogram gradients (``featlib.gradients``) filter ~100 bin maps per cue-scale, and scipy's line filter runs
in double precision one multiply at a time (~1.5 G multiply-adds/s on one core). Correlating a length-n axis with
2r + 1 weights is a product with a banded matrix; cut into blocks of B outputs, each block is a dense
[B, B + 2r] matrix times the B + 2r inputs it reads, which a float32 BLAS runs near its peak although it multiplies
the band's zeros too: 1.6-2.5x faster than scipy for sigma 1.5-2.5 px on one core (docs/BENCHMARKS.md "partitions").
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BLOCK = 16  # outputs per block: 8-24 ran within 10 % of each other on [25, 321, 481] stacks, sigma 2.5; 64+ slower
TRUNCATE = 4.0  # kernel radius in sigmas (scipy's default)


def gaussian_weights(sigma: float, order: int = 0) -> np.ndarray:
    """Correlation weights float64 [2r + 1] (offsets -r..r, r = int(4 sigma + 0.5)) of the Gaussian's ``order``-th
    derivative (0, 1 or 2), as ``scipy.ndimage.gaussian_filter1d`` samples and normalises them."""
    if not sigma > 0 or order not in (0, 1, 2):
        raise ValueError(f"need sigma > 0 and order 0, 1 or 2, got sigma={sigma}, order={order}")
    r = int(TRUNCATE * sigma + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    phi = np.exp(-0.5 * t * t / sigma**2)
    phi /= phi.sum()
    if order == 1:  # scipy's kernel is -t / s^2 phi, applied by convolution: correlation weights flip its sign
        return t / sigma**2 * phi
    if order == 2:
        return (t * t / sigma**4 - 1 / sigma**2) * phi
    return phi


def correlate(x: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Correlate float32 x [..., H, W] along ``axis`` (-2 or -1) with ``weights`` [2r + 1] (output[i] = sum_t
    w[t + r] x[i + t]), half-sample-symmetric border -> float32, x's shape."""
    if axis not in (-2, -1):
        raise ValueError(f"axis must be -2 or -1, got {axis}")
    x = np.asarray(x, np.float32)
    r = len(weights) // 2
    n, b = x.shape[axis], BLOCK
    nb = -(-n // b)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r + nb * b - n)
    xp = np.pad(x, pad, mode="symmetric")  # numpy's "symmetric" is scipy's "reflect" (d c b a | a b c d)
    band = np.zeros((b, b + 2 * r), np.float32)
    for j in range(b):
        band[j, j:j + 2 * r + 1] = weights
    if axis == -1:  # windows [..., H, nb, b + 2r] times band^T -> [..., H, nb, b]
        win = sliding_window_view(xp, b + 2 * r, axis=-1)[..., ::b, :]
        out = (win @ band.T).reshape(*x.shape[:-1], nb * b)
        return out[..., :n]
    # rows: windows [..., nb, b + 2r, W] (plain row-major blocks, no copy), band times each -> [..., nb, b, W]
    win = np.moveaxis(sliding_window_view(xp, b + 2 * r, axis=-2)[..., ::b, :, :], -1, -2)
    out = (band @ win).reshape(*x.shape[:-2], nb * b, x.shape[-1])
    return out[..., :n, :]


def gaussian_derivatives(x: np.ndarray, sigma: float, orders) -> list[np.ndarray]:
    """Gaussian derivatives of float x [..., H, W] at ``sigma`` px: one float32 [..., H, W] per (order along H,
    order along W) in ``orders`` (each 0, 1 or 2), rows filtered first; a row pass is shared by the orders that
    need it."""
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be float [..., H, W], got {x.dtype} {x.shape}")
    orders = [(int(oy), int(ox)) for oy, ox in orders]
    rows = {oy: correlate(x, gaussian_weights(sigma, oy), -2) for oy in dict.fromkeys(o[0] for o in orders)}
    return [correlate(rows[oy], gaussian_weights(sigma, ox), -1) for oy, ox in orders]


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of float x [..., H, W] over its last two axes -> float32, x's shape."""
    return gaussian_derivatives(x, sigma, ((0, 0),))[0]
