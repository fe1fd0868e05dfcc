"""Boundary contrast: neighbouring cells that a mask separates should differ in the features (issue 20, item 2).

    term = boundary_contrast(features, members, cell_valid, margin=0.4)   # one stride; 0-dim tensor
    loss = MultiStrideLoss(..., contrast_weight=0.1)                       # every stride, inside the training loss
    #   (0.1: the screened weight; at 1 the features fall apart, docs/LOSS.md "Boundary contrast")

The discriminative loss (``featlib.loss``) acts on masks' *means*: two segments whose means differ satisfy its push
even where the cells along their common border look alike. What the partitions read, though, are differences
*across a border* (the boundary network's per-stride mean-difference strengths, ``boundary_net.feature_channels``;
the mesh's neighbour distances). This term asks for exactly that, where the annotators drew a border.

At stride s the features are cells x [B, D, h, w], D = base * s^2, and the masks are the loss's cell members
(``relations.downsample_masks``: a cell belongs to a mask when half its pixels do). For a cell pair (p, q),
q = p + (0, d) or p + (d, 0), both valid:

    c(p, q) = #{masks holding exactly one of p, q} / #{masks holding p or q}      in [0, 1], 0 when none holds either
    term_s  = sum c [m - ||x(p) - x(q)|| / sqrt(D)]_+^2 / sum c                    (0 when no pair is cut)

For one annotator's tiling c is 1 across its borders and 0 inside its segments; for A annotators of whom k draw a
border between p and q it is 2k / (A + k), so a border most annotators agree on counts most. Distances are in units
of sqrt(D), as the discriminative loss measures them, and the default margin m = 0.4 is its push margin between means
(2 x margin_d 0.2): cells on either side of a border should differ as much as two segments' means must. The pull
keeps a mask's cells within margin_v (0.05) of its mean, so the term cannot be met by cells that differ everywhere.

Cells, not the pixel-shuffled colours: read per pixel, the s^2 pixels of one coarse cell are free channels, and a
first version that compared neighbouring *pixels* at every stride was met within 50 steps (term 0.12 -> 0.001 at
strides 2-16, 0.12 unchanged at stride 1) by a fixed pattern inside every cell: a difference between all neighbours,
not at borders. The multi-stride term is the sum of term_s with the discriminative loss's stride weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F


def cut_fractions(masks: torch.Tensor, offset: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """c(p, q) of the module docstring for horizontal and vertical pairs at ``offset`` px.

    ``masks`` bool [B, K, H, W] -> (float32 [B, H, W - d], float32 [B, H - d, W]).
    """
    if masks.ndim != 4 or masks.dtype != torch.bool:
        raise ValueError(f"masks must be bool [B, K, H, W], got {masks.dtype} {tuple(masks.shape)}")
    if offset < 1:
        raise ValueError(f"offset must be >= 1, got {offset}")
    out = []
    for a, b in _pairs(masks, offset):
        cut = (a ^ b).sum(1, dtype=torch.float32)
        held = (a | b).sum(1, dtype=torch.float32)
        out.append(cut / held.clamp(min=1.0))
    return out[0], out[1]


def _pairs(t: torch.Tensor, d: int):
    """The (first, second) cells of the horizontal and of the vertical pairs d apart, as views of t [..., h, w]."""
    return (t[..., :, :-d], t[..., :, d:]), (t[..., :-d, :], t[..., d:, :])


def boundary_contrast(features: torch.Tensor, members: torch.Tensor, cell_valid: torch.Tensor | None = None,
                      margin: float = 0.4, offset: int = 1, min_cut: float = 0.0) -> torch.Tensor:
    """term_s of the module docstring: cells ``features`` [B, D, h, w], their masks ``members`` bool [B, K, h, w],
    ``cell_valid`` bool [B, h, w] or None (every cell valid); pairs with c < ``min_cut`` do not count (0.6: only
    borders most annotators draw). Returns a 0-dim tensor."""
    if features.ndim != 4 or members.ndim != 4 or features.shape[0] != members.shape[0] \
            or features.shape[2:] != members.shape[2:]:
        raise ValueError(f"features {tuple(features.shape)} and members {tuple(members.shape)} must be [B, D, h, w] "
                         "and [B, K, h, w] on the same cells")
    if margin <= 0 or not 0 <= min_cut <= 1:
        raise ValueError(f"margin must be > 0 and min_cut in [0, 1], got {margin}, {min_cut}")
    x = features.float() / math.sqrt(features.shape[1])
    valid = _pairs(cell_valid, offset) if cell_valid is not None else (None, None)
    num = features.new_zeros((), dtype=torch.float32)
    den = features.new_zeros((), dtype=torch.float32)
    for c, (xa, xb), v in zip(cut_fractions(members, offset), _pairs(x, offset), valid):
        if min_cut > 0:
            c = c * (c >= min_cut)
        if v is not None:
            c = c * (v[0] & v[1])
        gap = (xa - xb).pow(2).sum(1).add(1e-12).sqrt()          # [B, h', w']
        num = num + (c * F.relu(margin - gap).pow(2)).sum()
        den = den + c.sum()
    return num / den.clamp(min=1e-6)


def multi_stride_contrast(features: Mapping[int, torch.Tensor],
                          cells: Mapping[int, tuple[torch.Tensor, torch.Tensor | None]],
                          weights: Mapping[int, float], margin: float = 0.4, offset: int = 1,
                          min_cut: float = 0.0) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """(sum over s of weights[s] * term_s, {s: term_s}) for a FeatureNet output {s: [B, base * s^2, h, w]} and
    ``cells`` {s: (members bool [B, K, h, w], cell_valid bool [B, h, w] | None)} (``downsample_masks``' output)."""
    total = next(iter(features.values())).new_zeros((), dtype=torch.float32)
    parts = {}
    for s, wt in weights.items():
        members, valid = cells[s]
        parts[s] = boundary_contrast(features[s], members, valid, margin, offset, min_cut)
        total = total + wt * parts[s]
    return total, parts
