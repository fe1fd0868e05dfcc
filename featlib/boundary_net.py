"""A learned boundary map on the histogram-gradient cues: a small CNN trained on BSDS500 train boundaries.

    p = boundary_probability(image)            # uint8 [H, W, 3] -> float32 [H, W] in [0, 1]
    p = boundary_probability(image, scales=(1.0, 0.5))   # averaged with the half-size image's map
    p = boundary_probability(image, scales=(1.0, 2.0))   # ... with the 2x-upsampled image's (thinner, better placed)
    mesh = boundary_mesh(image)                # DistanceMesh for cluster.hierarchy_from_mesh
    mesh = boundary_mesh(image, nms=True)      # after non-maximum suppression across the boundary (the default's)
    ws, merge = boundary_meshes(image, scales=(1.0, 2.0), merge_scales=(1.0, 0.5, 2.0), nms=True)  # the default
    #   partitions' meshes: the watershed on scales 1 + 2, the merge heights on 1 + 0.5 + 2 (each map computed once)
    ws, merge = boundary_meshes(photo, merge_scales=(1.0, 0.5), nms=True, max_side=512)   # a large photo's maps at
    #   a 512-px working copy, brought back (docs/PARTITIONS.md "Large photos")
    q = suppress_nonmaxima(p)                  # that suppression alone: float32 [H, W]
    net = load_boundary_net()                  # the shipped weights (featlib/assets/boundary-bsds500.pt)
    x = cue_stack(image)                       # float32 [18, H, W]: what the network reads
    p = boundary_probability(image, features=f(image))   # + a FeatureNet's features (f = features.load(...)):
    #   the network trained on them, featlib/assets/boundary-bsds500-b0-all.pt (docs/PARTITIONS.md)

Why (docs/PARTITIONS.md, "a learned boundary map"): the histogram gradients of ``featlib.gradients`` rank boundaries by
an *equal-weight* mean of 12 cue-scale chi^2 distances. Pb / gPb learn those weights per cue (and gPb per
orientation) from BSDS train; structured edge forests learn from the same 200 photos which *patterns* of cues make a
boundary and reach boundary F 0.74 there on CPU. This module is the smallest step in that direction that keeps the
cues: a 4-layer fully-convolutional network (dilations 1, 2, 4, 8: a 31 x 31 px receptive field, 33k weights)
reads the 12 per-cue-scale strengths (sqrt of chi^2), the combined tensor (its strength and its orientation as
cos 2θ, sin 2θ weighted by anisotropy) and Lab colour, and predicts for each pixel the fraction of annotators who
drew a boundary within 1 px of it (binary cross-entropy on that soft target). A linear read-out of the raw inputs is
added to the network's last layer, so the network starts as a learned cue weighting and learns context on top.

Trained on BSDS500 train minus the 20 held-out images (``featlib.data.bsds.holdout_split``) by
``scripts/train_boundary.py``; never on val or test. On those 20 held-out images, merged as the hierarchy merges
(spectral 0): covering ODS 0.652 vs 0.642, PRI 0.863 vs 0.840, VI 1.481 vs 1.505 bits, boundary ODS F 0.750 vs 0.697
for the equal-weight chi^2 map with spectral globalisation.

With a FeatureNet's features the network reads one more channel per stride (``feature_channels``); the shipped
``FEATURE_ASSET`` was trained that way on *cross-fitted* features (each photo read by a FeatureNet trained without it,
``scripts/train_boundary.py --features``) and is the ``bsds500-b0-all`` source's default: held-out covering ODS 0.676
vs 0.654 for the same script on colour alone, VI 1.375 vs 1.444 bits, boundary F 0.759 vs 0.760.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.transform import resize

from featlib.distances import DistanceMesh, feature_dict
from featlib.gradients import check_image, colour_cue_tensors, feature_tensors, pixel_mesh, tensor_strength

ASSET = Path(__file__).parent / "assets" / "boundary-bsds500.pt"
FEATURE_ASSET = Path(__file__).parent / "assets" / "boundary-bsds500-b0-all.pt"  # reads colour + FeatureNet cues
N_INPUTS = 18  # 12 cue-scale strengths, combined strength, cos 2θ, sin 2θ, L, a, b
LAB_SCALE = np.array([100.0, 60.0, 60.0], np.float32)
_ANISO_EPS = 1e-3
MIN_SIDE = 16  # px: the shortest side a resized image may have
# the largest scale a map may be read at: 2 (the image upsampled 2x, 4x the pixels) places boundaries more precisely
# (docs/PARTITIONS.md "Reading the map at twice the size"); larger would cost 9x and more
MAX_SCALE = 2.0
# Non-maximum suppression (``suppress_nonmaxima``): a pixel below either neighbour across the boundary keeps
# NMS_FLOOR of its probability; the normal is read from the Hessian of the map smoothed by NMS_SIGMA px. Chosen on
# the 20 held-out BSDS500 train images (docs/PARTITIONS.md "Non-maximum suppression"): floor 0.5, sigma 1 gave
# covering ODS / OIS 0.659 / 0.717 vs 0.657 / 0.702 without NMS, PRI 0.866 (level), boundary F 0.759 vs 0.754;
# floors 0.2 / 0.35 / 0.7: OIS 0.719 / 0.717 / 0.704, PRI 0.859 / 0.858 / 0.872 (lower floors trade PRI for OIS);
# sigma 0.7 / 1.5 (floor 0.35): OIS 0.707 / 0.713 vs 0.717. Floor 0 leaves flat plateaus to the watershed.
NMS_FLOOR = 0.5
NMS_SIGMA = 1.0


def feature_channels(features, size: tuple[int, int]) -> np.ndarray:
    """Learned features {s: [C_s, h_s, w_s]} -> float32 [S, H, W] at ``size``: per stride (ascending), sqrt of the
    strength of its mean-difference tensor (``gradients.feature_tensors``), i.e. how far the mean features of the two
    halves of a disc around each pixel lie apart at the best orientation."""
    return np.stack([np.sqrt(np.maximum(tensor_strength(t), 0)) for t in feature_tensors(features, size).values()])


def cue_stack(image: np.ndarray, features=None) -> np.ndarray:
    """The network's input for an image uint8 [H, W, 3]: float32 [18, H, W], or [18 + S, H, W] with ``features``.

    Channels: sqrt of the 12 cue-scale chi^2 strengths (``gradients.colour_cue_tensors`` order: L3 L5 L10 a5 a10 a20
    b5 b10 b20 t5 t10 t20), sqrt of the strength of their mean tensor, its orientation (Txx - Tyy) / tr and
    2 Txy / tr (tr = Txx + Tyy + 1e-3), and L / 100, a / 60, b / 60; then, given a FeatureNet's ``features``
    {s: [C_s, ceil(H / s), ceil(W / s)]}, one ``feature_channels`` channel per stride."""
    tensors = colour_cue_tensors(image)
    strengths = [tensor_strength(t) for t in tensors.values()]
    mean = sum(tensors.values()) / len(tensors)
    txx, txy, tyy = mean
    tr = txx + tyy + _ANISO_EPS
    lab = rgb2lab(image).astype(np.float32).transpose(2, 0, 1) / LAB_SCALE[:, None, None]
    chans = [np.sqrt(np.maximum(s, 0)) for s in strengths]
    chans += [np.sqrt(np.maximum(tensor_strength(mean), 0)), (txx - tyy) / tr, 2 * txy / tr]
    parts = [np.stack(chans), lab]
    if features is not None:
        parts.append(feature_channels(features, image.shape[:2]))
    return np.concatenate(parts).astype(np.float32)


def flip_stack(x: np.ndarray) -> np.ndarray:
    """The cue stack of the left-right mirrored image, from the stack [..., C, H, W] (no recomputation): mirror
    every channel and negate sin 2θ, channel 14 (the tensor's Txy changes sign; feature strengths do not)."""
    out = x[..., ::-1].copy()
    out[..., 14, :, :] *= -1
    return out


class BoundaryNet(nn.Module):
    """Cue stack [B, n_inputs, H, W] -> boundary logits [B, H, W] (n_inputs: 18 colour cues, + one per stride
    when the network reads a FeatureNet's features).

    body: 3 x 3 convolutions (``width`` channels, dilations ``dilations``, replicate padding, ReLU); head: a 1 x 1
    convolution over [body output, inputs] (the linear cue weighting plus context)."""

    def __init__(self, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8), n_inputs: int = N_INPUTS):
        super().__init__()
        if n_inputs < N_INPUTS:
            raise ValueError(f"n_inputs must be >= {N_INPUTS} (the colour cues), got {n_inputs}")
        self.n_inputs = n_inputs
        layers, c = [], n_inputs
        for d in dilations:
            layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d, padding_mode="replicate"), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width + n_inputs, 1, 1)
        self.build_args = {"width": width, "dilations": list(dilations), "n_inputs": n_inputs}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.n_inputs:
            raise ValueError(f"BoundaryNet expects [B, {self.n_inputs}, H, W] ({self.n_inputs - N_INPUTS} feature "
                             f"channels), got {tuple(x.shape)}")
        return self.head(torch.cat([self.body(x), x], 1))[:, 0]


def load_boundary_net(path: str | Path = ASSET) -> BoundaryNet:
    """A BoundaryNet from a file written by ``save_boundary_net`` (``weights_only=True``), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no boundary network at {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob or "build_args" not in blob:
        raise ValueError(f"{path}: not a boundary network file (expected keys state_dict, build_args)")
    args = blob["build_args"]
    net = BoundaryNet(int(args["width"]), tuple(int(d) for d in args["dilations"]), int(args.get("n_inputs", N_INPUTS)))
    net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return net.eval()


def save_boundary_net(net: BoundaryNet, path: str | Path, card: dict | None = None, overwrite: bool = False) -> Path:
    """Write weights (float32), build arguments and a ``card`` (plain data) atomically; never over an existing file
    unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save({"state_dict": {k: v.detach().float().cpu() for k, v in net.state_dict().items()},
                "build_args": dict(net.build_args), "card": dict(card or {})}, tmp)
    tmp.replace(path)
    return path


_LOADED: dict[tuple[Path, float], BoundaryNet] = {}


def cached_net(path: str | Path | None = None, features: bool = False) -> BoundaryNet:
    """A network file, loaded once per (path, modification time): ``path``, or the shipped one -- colour cues only,
    or with ``features`` the one that also reads the ``bsds500-b0-all`` FeatureNet's (``FEATURE_ASSET``)."""
    path = Path(path if path is not None else FEATURE_ASSET if features else ASSET).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no boundary network at {path}")
    key = (path, path.stat().st_mtime)
    if key not in _LOADED:
        _LOADED[key] = load_boundary_net(path)
    return _LOADED[key]


@torch.no_grad()
def probability_from_stack(x: np.ndarray, net: BoundaryNet, mirror: bool = True) -> np.ndarray:
    """Cue stack float32 [C, H, W] -> boundary probability float32 [H, W]; ``mirror``: the mean of the image's and
    its left-right mirror's predictions, mirrored back (exactly equivariant to mirroring the input).

    The input goes in channels-last: oneDNN's convolutions on one CPU core run ~12 % faster so (0.128 vs 0.146 s
    per 481 x 321 pass once warm, docs/BENCHMARKS.md "partitions"); logits differ from the default layout's by float
    rounding (~2e-5)."""
    def run(a: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None].contiguous(memory_format=torch.channels_last)
        return torch.sigmoid(net.eval()(t))[0].numpy()

    p = run(x)
    if mirror:
        p = 0.5 * (p + run(flip_stack(np.asarray(x, np.float32)))[:, ::-1])
    return p.astype(np.float32)


def check_scales(scales) -> tuple[float, ...]:
    """``scales`` as a tuple of floats in (0, ``MAX_SCALE``]; ValueError otherwise (empty, repeated, <= 0 or > 2)."""
    try:
        out = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of numbers in (0, {MAX_SCALE:g}], got {scales!r}") from None
    if not out or any(not 0 < s <= MAX_SCALE for s in out) or len(set(out)) != len(out):
        raise ValueError(f"scales must be distinct numbers in (0, {MAX_SCALE:g}] (1 = full resolution, 2 = upsampled "
                         f"2x), got {scales!r}")
    return out


def resized(image: np.ndarray, scale: float) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [round(H * scale), round(W * scale), 3]: anti-aliased (Gaussian before sampling)
    when shrinking, bilinear when enlarging (skimage smooths only downsampling)."""
    h, w = image.shape[:2]
    size = (max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale)))
    return (resize(image, size, anti_aliasing=True) * 255).round().astype(np.uint8)


def boundary_probability(image: np.ndarray, net: BoundaryNet | str | Path | None = None, mirror: bool = True,
                         scales=(1.0,), features=None, max_side: int | None = None) -> np.ndarray:
    """Per-pixel boundary probability of an image uint8 [H, W, 3]: float32 [H, W] in [0, 1] (``net``: a network or
    its file, default the shipped one, loaded once (``cached_net``); ``mirror``: average with the mirrored image's
    prediction, ~0.1 s more at 481 x 321: held-out train covering ODS 0.657 vs 0.652, boundary F 0.754 vs 0.750,
    VI 1.454 vs 1.481 bits).

    ``scales``: the mean of the predictions on the image resized by each factor in (0, 2] (the cues recomputed
    there), each brought back to [H, W] bilinearly. ``(1.0, 0.5)``: held-out train covering ODS 0.675 vs 0.657, PRI
    0.873 vs 0.866, VI 1.405 vs 1.454 bits, boundary F 0.750 vs 0.754; ``(1.0, 2.0)``, the default partitions'
    watershed map (``boundary_meshes``), places boundaries more precisely (docs/PARTITIONS.md).

    ``features``: a FeatureNet's features of ``image`` {s: [C_s, ceil(H / s), ceil(W / s)]}, read as one more channel
    per stride (``feature_channels``) by a network trained on them (default: ``FEATURE_ASSET``) at scale 1; the
    other scales' maps are the shipped colour network's (``ASSET``) on the resized image (the features exist at the
    image's own scale only; docs/PARTITIONS.md "The shipped partitions model, merged on two scales").

    ``max_side``: the working resolution -- an image whose longer side exceeds it is read at that size (every scale
    relative to it; ``working_scale``) and its map brought back to [H, W]; None or 0: the image's own size."""
    maps = scale_probabilities(image, net, mirror, scales, features, max_side)
    return sum(maps.values()) / len(maps)


def working_scale(shape: tuple[int, ...], max_side: int | None) -> float:
    """The factor an image of ``shape`` (H, W, ...) is read at so that its longer side is at most ``max_side``
    (1.0 when it already is, or for None / 0: the image's own size); ValueError unless ``max_side`` is None, 0 or an
    integer >= ``MIN_SIDE``."""
    if max_side is None:
        return 1.0
    integer = isinstance(max_side, (int, np.integer)) and not isinstance(max_side, bool)
    if not integer or (max_side != 0 and max_side < MIN_SIDE):
        raise ValueError(f"max_side must be None or 0 (the image's own size) or an integer >= {MIN_SIDE} (px), "
                         f"got {max_side!r}")
    return 1.0 if max_side == 0 else min(1.0, int(max_side) / max(shape[0], shape[1]))


def scale_probabilities(image: np.ndarray, net: BoundaryNet | str | Path | None = None, mirror: bool = True,
                        scales=(1.0,), features=None, max_side: int | None = None) -> dict[float, np.ndarray]:
    """{scale: float32 [H, W]}: the network's map of ``image`` resized by each scale, brought back to [H, W]
    bilinearly (arguments as ``boundary_probability``, which averages them). With ``max_side`` a larger image is
    first resized to its working copy (``working_scale``), whose maps these are, brought back."""
    maps = _working_maps(image, net, mirror, scales, features, max_side)
    return {s: to_size(p, image.shape[:2]) for s, p in maps.items()}


def working_copy(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """(the image read at its working resolution, the factor ``working_scale`` gives): the image itself and 1.0 when
    its longer side is within ``max_side`` (or for None / 0), else its anti-aliased copy (``resized``)."""
    base = working_scale(np.shape(image), max_side)
    return (image if base == 1 else resized(image, base)), base


def to_size(p: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map float32 [h, w] brought to ``size`` bilinearly (itself when it has that size)."""
    return p if p.shape == tuple(size) else resize(p, size, order=1, anti_aliasing=False).astype(np.float32)


def _working_maps(image: np.ndarray, net, mirror: bool, scales, features, max_side) -> dict[float, np.ndarray]:
    """{scale: float32 [h, w]} at the working copy's size [h, w] (``image`` itself unless it is larger than
    ``max_side``): each scale's map of the working copy resized by it, brought back to the copy's size."""
    image = check_image(image)
    scales = check_scales(scales)
    if not isinstance(net, BoundaryNet):
        net = cached_net(net, features is not None)
    n_feat = 0 if features is None else len(feature_dict(features))  # checked before any cue is computed
    if N_INPUTS + n_feat != net.n_inputs:
        raise ValueError(f"the boundary network reads {net.n_inputs} channels ({net.n_inputs - N_INPUTS} from "
                         f"features), the cue stack would have {N_INPUTS + n_feat} ({n_feat} from features)")
    work, _ = working_copy(image, max_side)
    out = {}
    for s in scales:
        x = work if s == 1 else resized(work, s)
        if features is not None and s != 1:  # features exist at the image's own scale: other scales read colour
            p = probability_from_stack(cue_stack(x), cached_net(), mirror)
        else:
            p = probability_from_stack(cue_stack(x, features), net, mirror)
        out[s] = to_size(p, work.shape[:2])
    return out


def suppress_nonmaxima(p: np.ndarray, floor: float = NMS_FLOOR, sigma: float = NMS_SIGMA) -> np.ndarray:
    """Non-maximum suppression of a boundary map float [H, W] -> float32 [H, W]: a pixel lower than either of its
    two neighbours one pixel away along the boundary normal (bilinear) is multiplied by ``floor``; crest pixels keep
    their value. The normal at each pixel is the direction of largest curvature (the Hessian's eigenvalue of largest
    magnitude) of the map smoothed by a Gaussian of ``sigma`` px: at a crest the gradient vanishes, the curvature
    across it does not.

    Why (structured edge forests thin their maps so before the watershed): the network's map is ~3 px thick, so the
    watershed's arcs inside a thick ridge and the mean boundary strength of arcs running beside a ridge read the
    ridge's flanks as boundary; after suppression only the crest counts."""
    p = np.asarray(p)
    if p.ndim != 2 or not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"boundary map must be float [H, W], got {p.dtype} {p.shape}")
    if not 0.0 <= floor <= 1.0 or sigma <= 0:
        raise ValueError(f"floor must be in [0, 1] and sigma > 0, got floor={floor}, sigma={sigma}")
    p = p.astype(np.float64)
    gy, gx = np.gradient(ndimage.gaussian_filter(p, sigma))
    hyy, hyx = np.gradient(gy)
    hxy, hxx = np.gradient(gx)
    # the direction of the Hessian's eigenvalue of largest magnitude: across a ridge, both at its crest (curving
    # down) and on its flanks past the inflection (curving up); along it the map is flat
    theta = 0.5 * np.arctan2(hxy + hyx, hxx - hyy) + np.where(hxx + hyy > 0, 0.0, np.pi / 2)
    yy, xx = np.mgrid[: p.shape[0], : p.shape[1]].astype(np.float64)
    dy, dx = np.sin(theta), np.cos(theta)
    ahead = ndimage.map_coordinates(p, [yy + dy, xx + dx], order=1, mode="nearest")
    behind = ndimage.map_coordinates(p, [yy - dy, xx - dx], order=1, mode="nearest")
    crest = (p >= ahead) & (p >= behind)
    return np.where(crest, p, floor * p).astype(np.float32)


def boundary_mesh(image: np.ndarray, net: BoundaryNet | str | Path | None = None, mirror: bool = True,
                  scales=(1.0,), features=None, nms: bool = False, max_side: int | None = None) -> DistanceMesh:
    """The hierarchy's pixel-edge values: the mean probability of the two pixels of each 4-neighbour edge
    (``nms``: of the map after ``suppress_nonmaxima``)."""
    return boundary_meshes(image, net, mirror, scales, None, features, nms, max_side)[0]


def boundary_meshes(image: np.ndarray, net: BoundaryNet | str | Path | None = None, mirror: bool = True,
                    scales=(1.0,), merge_scales=None, features=None, nms: bool = False, max_side: int | None = None
                    ) -> tuple[DistanceMesh, DistanceMesh]:
    """(watershed mesh, merge mesh): ``boundary_mesh`` of the mean map over ``scales`` and over ``merge_scales``
    (None: the same scales, one mesh returned twice), each scale's map computed once. With ``max_side`` the maps
    are averaged and thinned at the working copy's size, then brought to the image's (bilinearly).

    Why two (docs/PARTITIONS.md "Merging on two scales"): the half-scale map calibrates merge heights across images
    (better regions) but places boundaries less precisely; watershed arcs from the full-scale map keep the precise
    boundaries while the merge order reads both scales."""
    scales = check_scales(scales)
    merge_scales = scales if merge_scales is None else check_scales(merge_scales)
    maps = _working_maps(image, net, mirror, tuple(dict.fromkeys(scales + merge_scales)), features, max_side)

    def mesh(group):  # averaged and thinned at the working copy's size, then brought to the image's
        p = sum(maps[s] for s in group) / len(group)
        return pixel_mesh(to_size(suppress_nonmaxima(p) if nms else p, np.shape(image)[:2]))

    watershed = mesh(scales)
    return watershed, watershed if merge_scales == scales else mesh(merge_scales)


# ------------------------------------------------------------------------------------------------ training


def boundary_target(boundaries) -> np.ndarray:
    """Annotators' boundary maps (bool [H, W] each) -> the soft target float32 [H, W]: the fraction of annotators
    with a boundary pixel within 1 px (3 x 3 neighbourhood)."""
    bnds = [np.asarray(b, bool) for b in boundaries]
    if not bnds:
        raise ValueError("no annotator boundary maps")
    if any(b.shape != bnds[0].shape or b.ndim != 2 for b in bnds):
        raise ValueError(f"boundary maps must share one [H, W] shape, got {[b.shape for b in bnds]}")
    return np.mean([ndimage.maximum_filter(b, 3) for b in bnds], 0).astype(np.float32)


def sample_crops(stacks, targets, rng: np.random.Generator, batch: int, size: int, weights=None):
    """A training batch: ``batch`` random ``size`` x ``size`` crops (each mirrored with probability 1/2) of random
    images -> (inputs float32 [B, C, size, size], targets float32 [B, size, size]) as tensors. ``weights``: each
    image's probability of being drawn (float [N], summing to 1; None: uniform)."""
    if weights is not None:
        weights = np.asarray(weights, float)
        if weights.shape != (len(stacks),) or (weights < 0).any() or not np.isclose(weights.sum(), 1.0):
            raise ValueError(f"weights must be {len(stacks)} non-negative probabilities summing to 1, got shape "
                             f"{weights.shape}, sum {weights.sum():.4f}")
    xs, ys = [], []
    for _ in range(batch):
        k = int(rng.integers(len(stacks))) if weights is None else int(rng.choice(len(stacks), p=weights))
        x, y = stacks[k], targets[k]
        h, w = y.shape
        if h < size or w < size:
            raise ValueError(f"image {k} ({h} x {w}) is smaller than the crop size {size}")
        i, j = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        xx, yy = np.asarray(x[:, i:i + size, j:j + size], np.float32), y[i:i + size, j:j + size]
        if rng.random() < 0.5:
            xx, yy = flip_stack(xx), yy[:, ::-1]
        xs.append(np.ascontiguousarray(xx))
        ys.append(np.ascontiguousarray(yy, dtype=np.float32))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
