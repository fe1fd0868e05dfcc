"""Per-stride neighbour distances, combined into one full-resolution distance mesh.

Each stride s of a FeatureNet output gives a D_s-dimensional vector per s x s cell. The distance between two
neighbouring cells, divided by sqrt(D_s) so every stride lives in [0, 1] for sigmoid features, is a boundary
strength at that stride. It is placed on the cell-boundary line between the two cell centres and interpolated
(bilinearly) onto every pixel edge of the full-resolution 4-neighbour grid; coarse strides therefore give a soft,
s-pixel-wide band and stride 1 localises it. The weighted mean over strides is the mesh that the partition
hierarchy (``featlib.cluster``), click segmentation (``featlib.interactive``) and HILL (``featlib.refine``) share.

Shapes: a mesh over an H x W image has ``dy`` [H-1, W] (edge between (y, x) and (y+1, x)) and ``dx`` [H, W-1].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab

ArrayLike = "np.ndarray | torch.Tensor"


@dataclass
class DistanceMesh:
    """Distances between 4-neighbours: ``dy`` [H-1, W] and ``dx`` [H, W-1], float32, >= 0."""

    dy: np.ndarray
    dx: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dx.shape[0], self.dy.shape[1])

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat edge list ``(i, j, d)`` over pixel indices ``y * W + x`` (vertical edges first)."""
        h, w = self.shape
        idx = np.arange(h * w).reshape(h, w)
        i = np.concatenate([idx[:-1, :].ravel(), idx[:, :-1].ravel()])
        j = np.concatenate([idx[1:, :].ravel(), idx[:, 1:].ravel()])
        d = np.concatenate([self.dy.ravel(), self.dx.ravel()])
        return i, j, d


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def feature_dict(features) -> dict[int, np.ndarray]:
    """One image's features -> ``{stride: float32 [C_s, h_s, w_s]}``, checked (ValueError on a bad shape, NaN, inf).

    ``features``: ``{stride: [C, h, w]}`` (tensors or arrays), or one ``[C, H, W]`` map, taken as stride 1.
    """
    if not isinstance(features, Mapping):
        features = {1: features}
    feats = {int(s): _as_numpy(f) for s, f in features.items()}
    for s, f in feats.items():
        if f.ndim != 3:
            raise ValueError(f"features at stride {s} must be [C, h, w] for one image, got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"features at stride {s} contain NaN or inf")
    return feats


def _cell_distances(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f [C, h, w] -> (dy [h-1, w], dx [h, w-1]) Euclidean distances / sqrt(C)."""
    scale = 1.0 / np.sqrt(f.shape[0])
    dy = np.sqrt(((f[:, 1:, :] - f[:, :-1, :]) ** 2).sum(0)) * scale
    dx = np.sqrt(((f[:, :, 1:] - f[:, :, :-1]) ** 2).sum(0)) * scale
    return dy.astype(np.float32), dx.astype(np.float32)


def _to_pixel_edges(cell_d: np.ndarray, stride: int, size: tuple[int, int], axis: int) -> np.ndarray:
    """Interpolate cell-boundary distances of one axis onto the full-resolution pixel edges of that axis.

    ``cell_d[r, c]`` (axis 0) sits on the line between cell rows r and r+1, i.e. at pixel-edge row
    (r + 1) * s - 1 (the edge between pixel rows (r+1)s-1 and (r+1)s), column (c + 0.5) * s - 0.5.
    """
    h, w = size
    if stride == 1:
        return cell_d[: h - 1, :w] if axis == 0 else cell_d[:h, : w - 1]
    if axis == 0:
        ey, ex = np.arange(h - 1, dtype=np.float32), np.arange(w, dtype=np.float32)
        rows = (ey + 1) / stride - 1  # pixel-edge row -> fractional index into cell_d rows
        cols = (ex + 0.5) / stride - 0.5
    else:
        ey, ex = np.arange(h, dtype=np.float32), np.arange(w - 1, dtype=np.float32)
        rows = (ey + 0.5) / stride - 0.5
        cols = (ex + 1) / stride - 1
    if cell_d.size == 0:  # a single cell along this axis: no boundary seen at this stride
        return np.zeros((len(rows), len(cols)), np.float32)
    # bilinear on a separable grid = linear along rows, then along columns (clamped at the ends)
    return _lerp(_lerp(cell_d, rows, 0), cols, 1).astype(np.float32)


def _lerp(a: np.ndarray, pos: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``a`` at fractional indices ``pos`` along ``axis``, clamped to [0, n-1]."""
    n = a.shape[axis]
    pos = np.clip(pos, 0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(np.intp), max(n - 2, 0))
    t = (pos - i0).astype(np.float32)
    lo, hi = np.take(a, i0, axis=axis), np.take(a, np.minimum(i0 + 1, n - 1), axis=axis)
    t = t[:, None] if axis == 0 else t[None, :]
    return lo + t * (hi - lo)


def distance_mesh(
    features,
    *,
    mesh_weights: Mapping[int, float] | None = None,
    size: tuple[int, int] | None = None,
) -> DistanceMesh:
    """Combine per-stride neighbour distances into one full-resolution mesh.

    Args:
        features: FeatureNet output for ONE image, ``{stride: [C_s, h_s, w_s]}`` (tensors or arrays), or a single
            array ``[C, H, W]`` treated as stride 1 (e.g. ``lab_features(image)``).
        mesh_weights: ``{stride: weight}``; strides not listed get weight 0. Default: equal weights.
        size: full-resolution (H, W). Default: stride 1's size if present, else the finest stride's size x stride.

    Returns:
        DistanceMesh with ``dy`` [H-1, W] and ``dx`` [H, W-1], the weighted mean of per-stride distances.
    """
    feats = feature_dict(features)
    if size is None:
        s0 = min(feats)
        size = (feats[s0].shape[1] * s0, feats[s0].shape[2] * s0)
    h, w = size
    if h < 2 or w < 2:
        raise ValueError(f"image must be at least 2 x 2 pixels, got {size}")
    weights = {s: 1.0 for s in feats} if mesh_weights is None else {int(s): float(v) for s, v in mesh_weights.items()}
    unknown = set(weights) - set(feats)
    if unknown:
        raise ValueError(f"mesh_weights name strides {sorted(unknown)} not in features {sorted(feats)}")
    total = sum(v for v in weights.values() if v > 0)
    if total <= 0:
        raise ValueError("mesh_weights must give at least one stride a positive weight")
    dy = np.zeros((h - 1, w), np.float32)
    dx = np.zeros((h, w - 1), np.float32)
    for s, v in weights.items():
        if v <= 0:
            continue
        cdy, cdx = _cell_distances(feats[s])
        dy += (v / total) * _to_pixel_edges(cdy, s, size, axis=0)
        dx += (v / total) * _to_pixel_edges(cdx, s, size, axis=1)
    return DistanceMesh(dy=dy, dx=dx)


MESH_WEIGHT_NAMES = ("equal", "1/s", "finest two", "finest")


def resolve_mesh_weights(spec, strides) -> dict[int, float] | None:
    """A mesh combination by name or value -> ``mesh_weights`` for features with these strides.

    ``spec``: None or "equal" (None: every stride 1), "1/s", "finest two", "finest" (the finest stride alone), a
    dict {stride: weight}, or its JSON text (as a command line gives it, e.g. '{"1": 1, "2": 0.5}').
    """
    strides = sorted(int(s) for s in strides)
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            spec = json.loads(spec)
        except ValueError as e:
            raise ValueError(f"mesh weights {spec!r}: not JSON ({e})") from None
    if spec is None or spec == "equal":
        return None
    if isinstance(spec, Mapping):
        return {int(k): float(v) for k, v in spec.items()}
    named = {"1/s": {s: 1.0 / s for s in strides}, "finest two": {s: 1.0 for s in strides[:2]},
             "finest": {strides[0]: 1.0}}
    if spec not in named:
        raise ValueError(f"unknown mesh weights {spec!r}: use one of {MESH_WEIGHT_NAMES} or {{stride: weight}}")
    return named[spec]


LAB_SMOOTH_SIGMA = 1.5  # px: the partitions' colour baseline (chosen on BSDS500 val, docs/PARTITIONS.md)


def lab_features(image: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """RGB image (uint8 [H, W, 3] or float in [0, 1]) -> CIE Lab scaled to about [0, 1], shape [3, H, W].

    The colour baseline for every application: L / 100, (a + 128) / 255, (b + 128) / 255. ``smooth`` > 0:
    Gaussian-smoothed by that sigma in px per channel (pixel-level colour differences are mostly noise and texture;
    Felzenszwalb-Huttenlocher smooths likewise), as the partitions use it (``LAB_SMOOTH_SIGMA``).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3] RGB, got shape {image.shape}")
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    lab = rgb2lab(np.clip(image, 0, 1))
    out = np.stack([lab[..., 0] / 100.0, (lab[..., 1] + 128) / 255.0, (lab[..., 2] + 128) / 255.0])
    out = out.astype(np.float32)
    return ndimage.gaussian_filter(out, (0, smooth, smooth)) if smooth else out
