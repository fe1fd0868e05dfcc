"""Masks across strides and between each other: what the loss's pull and push are computed on.

    down = downsample_masks(masks, (1, 2, 4, 8, 16), valid_pixels)  # {s: (members [B, K, h, w], cell_valid [B, h, w])}
    rel = mask_relations(masks)                  # {"disjoint", "contains", "adjacent": bool [B, K, K], "area": [B, K]}
    allowed = pair_relations(masks, "disjoint")  # which pairs a push mode may push, bool [B, K, K] (None: all)
    allowed_s = nested_pairs(rel, active_s, groups, adjacent_only)   # "nested": the pairs one stride pushes

Area-downsampling: a cell is a member of a mask when >= half of its in-image pixels are (hierarchical integer
counts, one small-integer copy of the masks). Relations are computed on masks pooled to <= 128 cells per side:
overlap / smaller area <= 0.1 is "disjoint", overlap >= 0.9 of a mask's area means it lies inside the other, masks
within 2 pooled cells are "adjacent". The rules of ``push_pairs="nested"`` (``featlib.loss``'s docstring and
docs/LOSS.md "Nested masks") are built from these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

PUSH_MODES = ("all", "disjoint", "adjacent", "nested")


def downsample_masks(masks: torch.Tensor, strides: Sequence[int], valid_pixels: torch.Tensor | None = None
                     ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Area-downsample full-resolution masks to every stride.

    masks bool [B, K, H, W] -> {s: (members bool [B, K, ceil(H/s), ceil(W/s)], cell_valid bool [B, h, w])}.
    A cell belongs to a mask when >= half of its in-image pixels do; a cell is valid when >= half of its in-image
    pixels are in ``valid_pixels`` (all pixels if None). Counts are built hierarchically (2x2 sums of the previous
    stride's counts), so memory is one small-integer copy of the masks, not one float copy per stride.
    """
    b, k, h, w = masks.shape
    top = max(strides)
    if top & (top - 1):
        raise ValueError(f"strides must be powers of two, got {tuple(strides)}")
    ph, pw = (-h) % top, (-w) % top
    inside = torch.ones(1, 1, h, w, dtype=torch.int32, device=masks.device)
    valid = (valid_pixels[:, None] if valid_pixels is not None
             else torch.ones(b, 1, h, w, dtype=torch.bool, device=masks.device)).to(torch.int32)
    counts = masks.view(torch.uint8)  # same bytes, no copy
    if ph or pw:
        counts = F.pad(counts, (0, pw, 0, ph))
    inside, valid = F.pad(inside, (0, pw, 0, ph)), F.pad(valid, (0, pw, 0, ph))
    out, s = {}, 1
    if 1 in strides:  # full resolution: membership is the mask itself
        out[1] = (masks, valid_pixels if valid_pixels is not None
                  else torch.ones(b, h, w, dtype=torch.bool, device=masks.device))
    while True:
        if s in strides and s > 1:
            hs, ws = math.ceil(h / s), math.ceil(w / s)
            ins = inside[..., :hs, :ws]
            # 2 * count >= n_inside  <=>  count >= ceil(n_inside / 2): compare in the counts' own small dtype
            half = ((ins + 1) // 2).to(counts.dtype)
            members = counts[..., :hs, :ws] >= half  # every cell holds >= 1 in-image pixel (ceil sizes)
            cell_valid = (2 * valid[:, 0, :hs, :ws] >= ins[:, 0]) & (ins[:, 0] > 0)
            out[s] = (members, cell_valid)
        if s >= top:
            break
        counts = _pool2(counts.to(torch.int16) if s == 4 else counts)  # uint8 holds counts up to 4 (s = 2)
        inside, valid = _pool2(inside), _pool2(valid)
        s *= 2
    return out


def _pool2(t: torch.Tensor) -> torch.Tensor:
    """2x2 sum over the last two dims (even sizes): strided adds, several times faster than a reshape-sum."""
    t = t[..., 0::2, :] + t[..., 1::2, :]
    return t[..., 0::2] + t[..., 1::2]


def mask_relations(masks: torch.Tensor, *, overlap_threshold: float = 0.1, adjacency_radius: int = 2,
                   max_size: int = 128, adjacency: bool = True, pooled: dict | None = None) -> dict[str, torch.Tensor]:
    """Pairwise relations of ``masks`` bool [B, K, H, W], on masks area-pooled to at most ``max_size`` cells per
    side (relations do not need pixel precision, and the K x K x N overlap product would dominate at full size):

        "disjoint"  bool [B, K, K]  overlap / smaller area <= overlap_threshold (diagonal False)
        "contains"  bool [B, K, K]  [a, c]: a lies inside c (overlap >= (1 - overlap_threshold) area_a), a != c
        "adjacent"  bool [B, K, K]  masks within ``adjacency_radius`` pooled cells of each other (with adjacency)
        "area"      float [B, K]    pixels per mask at full resolution

    ``pooled``: ``downsample_masks(masks, ...)``'s output when the caller has it (the loss does): its members at the
    relation grid's stride are reused instead of pooling the masks a second time (the same values).
    """
    b, k, h, w = masks.shape
    f = 1
    while max(h, w) / f > max_size:
        f *= 2
    if f == 1:
        m = masks
    else:
        m = (pooled if pooled is not None and f in pooled else downsample_masks(masks, (f,)))[f][0]
    m = m.float()
    flat = m.flatten(2)  # [B, K, n]
    area = flat.sum(-1)
    inter = flat @ flat.transpose(1, 2)
    smaller = torch.minimum(area[:, :, None], area[:, None, :]).clamp(min=1)
    eye = torch.eye(k, dtype=torch.bool, device=masks.device)
    out = {"disjoint": (inter / smaller <= overlap_threshold) & ~eye,
           "contains": (inter >= (1 - overlap_threshold) * area[:, :, None]) & (area[:, :, None] > 0) & ~eye,
           "area": masks.flatten(2).sum(-1, dtype=torch.float32) if f > 1 else area}
    if adjacency:
        grown = F.max_pool2d(m, 2 * adjacency_radius + 1, stride=1, padding=adjacency_radius).flatten(2)
        out["adjacent"] = (grown @ flat.transpose(1, 2)) > 0
    return out


def pair_relations(masks: torch.Tensor, mode: str, *, overlap_threshold: float = 0.1,
                   adjacency_radius: int = 2, max_size: int = 128, pooled: dict | None = None
                   ) -> torch.Tensor | None:
    """Which mask pairs may be pushed apart: bool [B, K, K] (diagonal False), or None for ``"all"``.

    ``"disjoint"``: overlap / smaller area <= ``overlap_threshold`` (so an object and its own parts are never
    pushed apart). ``"adjacent"``: disjoint pairs whose masks touch or lie within ``adjacency_radius`` pooled cells of
    each other. ``"nested"`` depends on the stride and the groups: ``MultiStrideLoss`` builds it from
    ``mask_relations``; here it gives its stride-free part, the disjoint pairs. See ``mask_relations``.
    """
    if mode == "all":
        return None
    if mode not in PUSH_MODES:
        raise ValueError(f"push_pairs must be one of {PUSH_MODES} or a bool [B, K, K] tensor, got {mode!r}")
    rel = mask_relations(masks, overlap_threshold=overlap_threshold, adjacency_radius=adjacency_radius,
                         max_size=max_size, adjacency=mode == "adjacent", pooled=pooled)
    return rel["disjoint"] & rel["adjacent"] if mode == "adjacent" else rel["disjoint"]


def nested_pairs(rel: dict[str, torch.Tensor], active: torch.Tensor, groups: torch.Tensor | None,
                 adjacent_only: bool) -> torch.Tensor:
    """The pairs ``push_pairs="nested"`` pushes at one stride (module docstring): bool [B, K, K].

    rel: ``mask_relations`` output; active bool [B, K]: masks that count at this stride; groups int [B, K] (the
    annotation each piece came from) or None.
    """
    allowed = rel["disjoint"] & active[:, :, None] & active[:, None, :]
    if groups is not None:
        allowed &= groups[:, :, None] != groups[:, None, :]
    inside = (rel["contains"] & active[:, None, :]).float()  # [a, c]: a inside an active c
    allowed &= (inside @ inside.transpose(1, 2)) == 0  # no active mask holds both
    if adjacent_only:
        allowed &= rel["adjacent"]
    return allowed


def active_masks_per_stride(masks: torch.Tensor, strides=(1, 2, 4, 8, 16), min_cells: int = 2) -> dict[int, int]:
    """How many of ``masks`` [B, K, H, W] survive the loss's downsampling rule (>= min_cells cells) per stride."""
    down = downsample_masks(masks, strides)
    return {s: int((down[s][0].flatten(2).sum(-1) >= min_cells).sum()) for s in strides}
