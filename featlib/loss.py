"""The multi-stride discriminative loss (De Brabandere, Neven & Van Gool 2017, "Semantic Instance Segmentation
with a Discriminative Loss Function"), vectorised and made aware of overlapping / nested masks.

Single stride, image b with C_b valid non-empty masks, mu_k the (weighted) mean feature over mask k:

    pull_b = 1/C_b  sum_k 1/N_k sum_{i in k} [ ||mu_k - x_i|| - delta_v ]_+^2
    push_b = 1/P_b sum_{(a, b) allowed} [ 2 delta_d - ||mu_a - mu_b|| ]_+^2     P_b = allowed ordered pairs (0 if none)
    reg_b  = 1/C_b  sum_k ||mu_k||
    total  = mean over images with C_b >= 1 of (alpha pull_b + beta push_b + gamma reg_b)

P_b = C_b (C_b - 1) for ``push_pairs="all"`` (the paper). ``push_norm="all_pairs"`` keeps C_b (C_b - 1) for every
mode (featlib before 2026-12: a mode that allows fewer pairs also pushed less hard), only for comparisons.

Nested, multi-granular masks (SA-1B: object > part > sub-part, pieces of occluded objects): ``push_pairs="nested"``
asks only what a piecewise-constant feature map can satisfy at each stride s:
    active_s(k)     = valid, >= min_cells member cells, and area_k / s^2 <= max_cells (no upper bound at the
                      coarsest stride): each stride answers for the masks it resolves, less resolved strides for
                      the large ones ("less resolved counts more")
    push (a, b) at s iff  disjoint(a, b)  (overlap / smaller area <= overlap_threshold: never a mask and its part)
                      and group_a != group_b  (pieces of one annotation are never pushed apart)
                      and no active c at s contains both  (siblings under an active parent would contradict its pull)
                      and, at ``adjacent_strides``, a and b lie within ``adjacency_radius`` cells (D = 3 at /1
                      holds only ~14 means 2 delta_d apart: there only neighbours must differ, like a map colouring)
Measured in docs/LOSS.md ("nested masks").

Cost: the pull term (``featlib.pull``) gathers only member pixels (memory ~ total mask area, linear in K); the push
term is a K x K distance matrix per image. Pair relations for ``push_pairs`` are computed once per batch at a coarse
resolution.

Multi-stride (``MultiStrideLoss``): masks are area-downsampled per stride (a cell is a member when at least half of
its in-image pixels are), cells that are mostly outside ``valid_pixels`` are ignored, and masks with fewer than
``min_cells`` member cells are invalid at that stride. Margins scale with sqrt(D), D = base * s^2: sigmoid
features live in [0, 1]^D whose diameter is sqrt(D), so the paper's fixed delta_d = 1.5 is unreachable for D = 3.
Each stride's loss is then measured in units of sqrt(D) (features and margins divided by it), so its parts are
comparable across strides and the stride weights alone set the balance.

Usage::

    loss = MultiStrideLoss(strides=(1, 2, 4, 8, 16), push_pairs="nested", max_cells=1024)
    out = loss(model(images), masks, mask_valid, valid_pixels, groups)  # features {s: [B, 3 s^2, ceil(H/s), ...]}
    out.total.backward()  # out.logs: 0-dim tensors "loss/total", "s{s}/pull", ... (no host sync); out.read() floats
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from featlib.contrast import multi_stride_contrast
from featlib.pull import EPS, pull_term
from featlib.relations import (  # noqa: F401  (re-exported: the loss's public names since 2026-11)
    PUSH_MODES,
    active_masks_per_stride,
    downsample_masks,
    mask_relations,
    nested_pairs,
    pair_relations,
)

PUSH_NORMS = ("allowed", "all_pairs")


@dataclass
class LossParts:
    """Batch values (scalars) of the loss and its parts; ``n_masks`` [B] valid non-empty masks per image."""

    total: torch.Tensor
    pull: torch.Tensor
    push: torch.Tensor
    reg: torch.Tensor
    n_masks: torch.Tensor


def _norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.sqrt(torch.clamp((x * x).sum(dim), min=EPS))


def _check(features: torch.Tensor, masks: torch.Tensor, mask_valid: torch.Tensor | None) -> None:
    if features.ndim != 4:
        raise ValueError(f"features must be [B, C, H, W], got shape {tuple(features.shape)}")
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got {features.dtype}")
    if masks.ndim != 4:
        raise ValueError(f"masks must be bool [B, K, H, W], got shape {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        raise ValueError(f"masks must be bool, got {masks.dtype}")
    b, _, h, w = features.shape
    if masks.shape[0] != b or masks.shape[-2:] != (h, w):
        raise ValueError(f"masks {tuple(masks.shape)} do not match features {tuple(features.shape)} (B, H, W)")
    if mask_valid is not None and tuple(mask_valid.shape) != tuple(masks.shape[:2]):
        raise ValueError(f"mask_valid must be [B, K] = {tuple(masks.shape[:2])}, got {tuple(mask_valid.shape)}")


def discriminative_loss(
    features: torch.Tensor,
    masks: torch.Tensor,
    mask_valid: torch.Tensor | None = None,
    *,
    delta_v: float,
    delta_d: float,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
    push_pairs: str | torch.Tensor = "all",
    pixel_weight: torch.Tensor | None = None,
    overlap_threshold: float = 0.1,
    adjacency_radius: int = 2,
    dense: bool | None = None,
    min_members: int = 1,
    feature_scale: float = 1.0,
    push_norm: str = "allowed",
) -> LossParts:
    """Discriminative loss at one stride.

    Args:
        features: [B, C, H, W] float (computed in float32, or float64 if given float64, even under autocast).
        masks: bool [B, K, H, W]; masks may overlap.
        mask_valid: bool [B, K] or None (all valid). Invalid and empty masks are ignored.
        push_pairs: "all" (the paper), "disjoint", "adjacent" (see ``pair_relations``), or bool [B, K, K].
        push_norm: "allowed" (mean hinge over the pairs allowed among valid masks) or "all_pairs" (divided by
            C_b (C_b - 1) whatever is allowed: the old rule, kept for comparisons).
        pixel_weight: [B, H, W] non-negative weights (0 = ignored pixel) or None.
        dense: pull-term layout — dense [B, K, N] distances or gathered member features [M, C]; None picks the
            cheaper from the mask density and C (dense for large masks at coarse strides). Same values either way.
        min_members: masks with fewer member pixels (weight > 0) than this are ignored.
        feature_scale: the loss of ``features * feature_scale``, applied to the per-mask means and distances so
            the feature map itself is never copied.
    Returns:
        LossParts of scalars; a batch with no valid mask gives zeros that still carry a (zero) gradient.
    """
    _check(features, masks, mask_valid)
    if push_norm not in PUSH_NORMS:
        raise ValueError(f"push_norm must be one of {PUSH_NORMS}, got {push_norm!r}")
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=features.device.type, enabled=False):
        return _discriminative_loss(features.to(dtype), masks, mask_valid, delta_v, delta_d, alpha, beta, gamma,
                                    push_pairs, pixel_weight, overlap_threshold, adjacency_radius, dense,
                                    min_members, feature_scale, push_norm)


def _discriminative_loss(x, masks, mask_valid, delta_v, delta_d, alpha, beta, gamma, push_pairs, pixel_weight,
                         overlap_threshold, adjacency_radius, dense=None, min_members=1, scale=1.0,
                         push_norm="allowed") -> LossParts:
    b, _, h, w = x.shape
    k = masks.shape[1]
    if k == 0:  # no masks at all: zeros that still hang off the features' graph
        z = x.sum() * 0.0
        return LossParts(z, z, z, z, torch.zeros(b, dtype=torch.long, device=x.device))
    if isinstance(push_pairs, str):
        allowed = pair_relations(masks, push_pairs, overlap_threshold=overlap_threshold,
                                 adjacency_radius=adjacency_radius)
    else:
        allowed = push_pairs.to(device=x.device, dtype=torch.bool)
        if allowed.shape != (b, k, k):
            raise ValueError(f"push_pairs tensor must be [B, K, K] = {(b, k, k)}, got {tuple(allowed.shape)}")

    if pixel_weight is not None and pixel_weight.shape != (b, h, w):
        raise ValueError(f"pixel_weight must be [B, H, W] = {(b, h, w)}, got {tuple(pixel_weight.shape)}")
    mu, valid, per_mask = pull_term(x, masks, mask_valid, pixel_weight, delta_v, min_members, scale, dense)
    if scale != 1.0:  # the means come in the features' units; push and regulariser work in the scaled ones
        mu = mu * scale
    n_masks = valid.sum(1)
    cb = n_masks.to(x.dtype)
    pull = (per_mask * valid).sum(1) / cb.clamp(min=1)

    # push: hinge on distances between means of allowed pairs
    pair = valid[:, :, None] & valid[:, None, :] & ~torch.eye(k, dtype=torch.bool, device=x.device)
    if allowed is not None:
        pair = pair & allowed
    # ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b: a [B, K, K] Gram matrix instead of a [B, K, K, C] difference tensor
    sq = (mu * mu).sum(-1)
    dmu = torch.sqrt(torch.clamp(sq[:, :, None] + sq[:, None, :] - 2 * mu @ mu.transpose(1, 2), min=EPS))
    hinge = F.relu(2 * delta_d - dmu) ** 2 * pair
    norm = cb * (cb - 1) if push_norm == "all_pairs" else pair.sum((1, 2)).to(x.dtype)
    push = hinge.sum((1, 2)) / norm.clamp(min=1)

    reg = (_norm(mu) * valid).sum(1) / cb.clamp(min=1)
    per_image = alpha * pull + beta * push + gamma * reg
    has = n_masks > 0
    n = has.sum().clamp(min=1).to(x.dtype)

    def batch(v):
        return (v * has).sum() / n  # the means always come from x, so this keeps a graph even with no mask

    return LossParts(batch(per_image), batch(pull), batch(push), batch(reg), n_masks)


def default_margins(stride: int, base_channels: int = 3, v: float = 0.05, d: float = 0.2) -> tuple[float, float]:
    """(delta_v, delta_d) at ``stride``: ``v * sqrt(D)`` and ``d * sqrt(D)``, D = base * s^2.

    [0, 1]^D has diameter sqrt(D); two random points in it lie ~sqrt(D/6) ~ 0.41 sqrt(D) apart. With d = 0.2 the
    push asks neighbouring masks' means to be 2 delta_d = 0.4 sqrt(D) apart — reachable at every stride (for D = 3:
    0.69 in a cube of diameter 1.73) — and v = 0.05 lets each mask keep a little texture.
    """
    dim = base_channels * stride * stride
    return v * math.sqrt(dim), d * math.sqrt(dim)


def feature_spread(features: torch.Tensor, cell_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over channels of the per-channel std over valid cells, averaged over images: the collapse alarm.

    features [B, C, h, w], cell_valid bool [B, h, w] -> scalar (0 for a constant output).
    """
    # moments E[y^2] - E[y]^2 of y = x - (a cell of x), fast reductions where torch.var_mean takes ~10x longer on
    # CPU; the shift makes a constant output exactly 0 and keeps the difference well conditioned
    x = features.detach().float().flatten(2)
    x = x - x[:, :, :1]
    if cell_valid is None:
        n = torch.tensor(float(x.shape[2]))
        s1, s2 = x.sum(2), torch.linalg.vecdot(x, x, dim=2)
    else:
        m = cell_valid.flatten(1).float()[:, None, :]
        n = m.sum(2).clamp(min=1)
        s1, s2 = (x * m).sum(2), (x * x * m).sum(2)
    var = (s2 / n - (s1 / n) ** 2).clamp(min=0)
    return var.sqrt().mean(1).mean()


@dataclass
class MultiStrideOutput:
    """``total`` (scalar tensor with grad), ``logs`` (0-dim tensors, detached: "loss/total", "s{s}/pull|push|reg|
    active_masks|spread") and ``parts`` ({s: LossParts}). Reading the logs is the host sync a training
    step must not pay every step: ``read()`` converts them all at once, at log steps only."""

    total: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    parts: dict[int, LossParts] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        """All logs as floats, in one device-to-host copy."""
        if not self.logs:
            return {}
        values = torch.stack([v.detach().float().reshape(()) for v in self.logs.values()]).tolist()
        return dict(zip(self.logs, values))


class MultiStrideLoss(torch.nn.Module):
    """Discriminative loss on every stride of a FeatureNet output, weighted so less resolved strides count more.

    Args:
        strides: strides to use (keys of the FeatureNet dict).
        base_channels: colour channels at full resolution (D = base * s^2 at stride s).
        loss_weights: {s: w} or None for w ∝ s, normalised to sum 1.
        margins: {s: (delta_v, delta_d)} or None for ``default_margins`` (v * sqrt(D), d * sqrt(D)).
        margin_v, margin_d: the v and d of the default rule.
        push_pairs: "all" | "disjoint" | "adjacent" (see ``pair_relations``) | "nested" (module docstring).
        push_norm: "allowed" | "all_pairs" (see ``discriminative_loss``).
        min_cells: a mask needs at least this many member cells at a stride to count there.
        max_cells: ("nested") a mask counts at stride s only while area / s^2 <= max_cells, except at the coarsest
            stride; None = no upper bound.
        adjacent_strides: ("nested") strides that push only neighbouring masks (within ``adjacency_radius`` cells
            of the <= 128-cell relation grid).
        contrast_weight, contrast_margin, contrast_min_cut: weight, margin and min_cut of ``featlib.contrast``'s
            boundary term (neighbouring cells a mask separates should differ), added with the same stride weights;
            weight 0 = off (the default).

    ``forward(features {s: [B, base*s^2, ceil(H/s), ceil(W/s)]}, masks bool [B, K, H, W], mask_valid bool [B, K]
    | None, valid_pixels bool [B, H, W] | None (None: no padding), groups int [B, K] | None (the annotation each
    mask came from; "nested" never pushes two masks of one group)) -> MultiStrideOutput``. No step of it reads a
    tensor on the host (tests/test_loss.py checks it).
    """

    def __init__(self, strides: Sequence[int] = (1, 2, 4, 8, 16), base_channels: int = 3,
                 loss_weights: Mapping[int, float] | None = None,
                 margins: Mapping[int, tuple[float, float]] | None = None, margin_v: float = 0.05,
                 margin_d: float = 0.2, push_pairs: str = "all", min_cells: int = 2, alpha: float = 1.0,
                 beta: float = 1.0, gamma: float = 0.001, overlap_threshold: float = 0.1,
                 adjacency_radius: int = 2, push_norm: str = "allowed", max_cells: float | None = None,
                 adjacent_strides: Sequence[int] = (), contrast_weight: float = 0.0, contrast_margin: float = 0.4,
                 contrast_min_cut: float = 0.0):
        super().__init__()
        self.strides = tuple(sorted(int(s) for s in strides))
        if push_pairs not in PUSH_MODES:
            raise ValueError(f"push_pairs must be one of {PUSH_MODES}, got {push_pairs!r}")
        if push_norm not in PUSH_NORMS:
            raise ValueError(f"push_norm must be one of {PUSH_NORMS}, got {push_norm!r}")
        if max_cells is not None and max_cells < min_cells:
            raise ValueError(f"max_cells ({max_cells}) must be >= min_cells ({min_cells})")
        raw = dict(loss_weights) if loss_weights is not None else {s: float(s) for s in self.strides}
        if set(raw) != set(self.strides) or any(v < 0 for v in raw.values()) or sum(raw.values()) <= 0:
            raise ValueError(f"loss_weights must give a non-negative weight to each of {self.strides}, got {raw}")
        total = sum(raw.values())
        self.loss_weights = {s: raw[s] / total for s in self.strides}
        self.margins = {s: (margins[s] if margins is not None and s in margins
                            else default_margins(s, base_channels, margin_v, margin_d)) for s in self.strides}
        self.base_channels, self.push_pairs, self.min_cells = base_channels, push_pairs, min_cells
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.overlap_threshold, self.adjacency_radius = overlap_threshold, adjacency_radius
        self.push_norm, self.max_cells = push_norm, max_cells
        self.adjacent_strides = tuple(int(s) for s in adjacent_strides)
        if contrast_weight < 0 or contrast_margin <= 0 or not 0 <= contrast_min_cut <= 1:
            raise ValueError(f"contrast_weight must be >= 0, contrast_margin > 0 and contrast_min_cut in [0, 1], got "
                             f"{contrast_weight}, {contrast_margin}, {contrast_min_cut}")
        self.contrast_weight, self.contrast_margin = float(contrast_weight), float(contrast_margin)
        self.contrast_min_cut = float(contrast_min_cut)

    def stride_pairs(self, masks: torch.Tensor, mask_valid: torch.Tensor, groups: torch.Tensor | None = None,
                     pooled: dict | None = None) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
        """{s: (masks that count at s bool [B, K], pairs pushed at s bool [B, K, K] or None = all)}; ``pooled``:
        ``downsample_masks``' output if already computed (``mask_relations`` reuses it)."""
        if self.push_pairs != "nested":
            pairs = pair_relations(masks, self.push_pairs, overlap_threshold=self.overlap_threshold,
                                   adjacency_radius=self.adjacency_radius, pooled=pooled)
            return {s: (mask_valid, pairs) for s in self.strides}
        rel = mask_relations(masks, overlap_threshold=self.overlap_threshold, adjacency_radius=self.adjacency_radius,
                             adjacency=bool(self.adjacent_strides), pooled=pooled)
        out = {}
        for s in self.strides:
            active = mask_valid & (rel["area"] >= self.min_cells * s * s)
            if self.max_cells is not None and s != self.strides[-1]:
                active = active & (rel["area"] <= self.max_cells * s * s)
            out[s] = (active, nested_pairs(rel, active, groups, s in self.adjacent_strides))
        return out

    def forward(self, features: Mapping[int, torch.Tensor], masks: torch.Tensor,
                mask_valid: torch.Tensor | None = None, valid_pixels: torch.Tensor | None = None,
                groups: torch.Tensor | None = None) -> MultiStrideOutput:
        missing = [s for s in self.strides if s not in features]
        if missing:
            raise ValueError(f"features lack strides {missing} (have {sorted(features)})")
        if masks.ndim != 4 or masks.dtype != torch.bool:
            raise ValueError(f"masks must be bool [B, K, H, W], got {masks.dtype} {tuple(masks.shape)}")
        b, k, h, w = masks.shape
        for s in self.strides:
            exp = (b, self.base_channels * s * s, math.ceil(h / s), math.ceil(w / s))
            if tuple(features[s].shape) != exp:
                raise ValueError(f"stride {s}: features {tuple(features[s].shape)} do not match masks "
                                 f"{tuple(masks.shape)}; expected {exp}")
        if valid_pixels is not None and tuple(valid_pixels.shape) != (b, h, w):
            raise ValueError(f"valid_pixels must be [B, H, W] = {(b, h, w)}, got {tuple(valid_pixels.shape)}")
        if groups is not None and tuple(groups.shape) != (b, k):
            raise ValueError(f"groups must be [B, K] = {(b, k)}, got {tuple(groups.shape)}")
        if mask_valid is None:
            mask_valid = torch.ones(b, k, dtype=torch.bool, device=masks.device)
        down = downsample_masks(masks, self.strides, valid_pixels)
        per_stride = self.stride_pairs(masks, mask_valid, groups, pooled=down)  # relations reuse a pooled stride
        device = next(iter(features.values())).device
        total = torch.zeros((), device=device)
        out = MultiStrideOutput(total)
        for s in self.strides:
            members, cell_valid = down[s]
            active, pairs = per_stride[s]
            dv, dd = self.margins[s]
            # Distances in units of sqrt(D) (the cube's diameter): every stride's loss lives on the same scale,
            # so the stride weights, not the channel counts, decide how much each stride counts.
            unit = math.sqrt(features[s].shape[1])
            parts = discriminative_loss(
                features[s], members, active, delta_v=dv / unit, delta_d=dd / unit, alpha=self.alpha,
                beta=self.beta, gamma=self.gamma, push_pairs=pairs if pairs is not None else "all",
                pixel_weight=None if valid_pixels is None else cell_valid.float(), min_members=self.min_cells,
                feature_scale=1.0 / unit, push_norm=self.push_norm)
            total = total + self.loss_weights[s] * parts.total
            out.parts[s] = parts
            out.logs.update({f"s{s}/pull": parts.pull.detach(), f"s{s}/push": parts.push.detach(),
                             f"s{s}/reg": parts.reg.detach(),
                             f"s{s}/active_masks": parts.n_masks.float().mean(),
                             f"s{s}/spread": feature_spread(features[s], None if valid_pixels is None else cell_valid)})
        if self.contrast_weight > 0:
            cells = {s: (down[s][0] & mask_valid[:, :, None, None], down[s][1]) for s in self.strides}
            term, parts = multi_stride_contrast(features, cells, self.loss_weights, self.contrast_margin,
                                                min_cut=self.contrast_min_cut)
            total = total + self.contrast_weight * term
            out.logs.update({f"s{s}/contrast": v.detach() for s, v in parts.items()})
        out.total = total
        out.logs["loss/total"] = total.detach()
        return out


def fit_free_features(masks: torch.Tensor, loss: MultiStrideLoss, steps: int = 200, lr: float = 0.1,
                      seed: int = 0, valid_pixels: torch.Tensor | None = None, mask_valid: torch.Tensor | None = None,
                      groups: torch.Tensor | None = None) -> tuple[dict, list[float]]:
    """Optimise a free feature tensor (no network) for ``loss`` on ``masks`` [B, K, H, W]: is the loss satisfiable?

    Features are sigmoid(logits) per stride, like FeatureNet's; ``mask_valid`` [B, K] and ``groups`` [B, K] (the
    annotation of each piece, ``batch["mask_id"]``) as in ``MultiStrideLoss.forward``. Returns ({s: features}, loss
    history).
    """
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = masks.shape
    logits = {s: (torch.randn(b, loss.base_channels * s * s, math.ceil(h / s), math.ceil(w / s), generator=g) * 0.1)
              .requires_grad_() for s in loss.strides}
    opt = torch.optim.Adam(logits.values(), lr=lr)
    history = []
    for _ in range(steps):
        out = loss({s: torch.sigmoid(v) for s, v in logits.items()}, masks, mask_valid, valid_pixels, groups)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        history.append(out.total.item())
    return {s: torch.sigmoid(v).detach() for s, v in logits.items()}, history
