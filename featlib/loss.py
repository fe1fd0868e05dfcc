"""The multi-stride discriminative loss (De Brabandere, Neven & Van Gool 2017, "Semantic Instance Segmentation
with a Discriminative Loss Function"), vectorised and made aware of overlapping / nested masks.

Single stride, image b with C_b valid non-empty masks, mu_k the (weighted) mean feature over mask k:

    pull_b = 1/C_b  sum_k 1/N_k sum_{i in k} [ ||mu_k - x_i|| - delta_v ]_+^2
    push_b = 1/(C_b (C_b - 1)) sum_{a != b allowed} [ 2 delta_d - ||mu_a - mu_b|| ]_+^2      (0 if C_b < 2)
    reg_b  = 1/C_b  sum_k ||mu_k||
    total  = mean over images with C_b >= 1 of (alpha pull_b + beta push_b + gamma reg_b)

Cost: the pull term gathers only member pixels (memory ~ total mask area, linear in K); the push term is a K x K
distance matrix per image. Pair relations for ``push_pairs`` are computed once per batch at a coarse resolution.

Multi-stride (``MultiStrideLoss``): masks are area-downsampled per stride (a cell is a member when at least half of
its in-image pixels are), cells that are mostly outside ``valid_pixels`` are ignored, and masks with fewer than
``min_cells`` member cells are invalid at that stride. Margins scale with sqrt(D), D = base * s^2: sigmoid
features live in [0, 1]^D whose diameter is sqrt(D), so the paper's fixed delta_d = 1.5 is unreachable for D = 3.
Each stride's loss is then measured in units of sqrt(D) (features and margins divided by it), so its parts are
comparable across strides and the stride weights alone set the balance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numba
import numpy as np
import torch
import torch.nn.functional as F

from featlib.utils import sync_numba_threads

PUSH_MODES = ("all", "disjoint", "adjacent")
_EPS = 1e-20  # under a sqrt: keeps the gradient finite (zero) when two vectors coincide
_FUSED = True  # compiled loops for narrow CPU strides (tests switch them off to compare with the tensor version)
_PER_IMAGE_ABOVE = 8_000_000  # gathered member values (M x C) above which the sparse pull runs image by image


@dataclass
class LossParts:
    """Batch values (scalars) of the loss and its parts; ``n_masks`` [B] valid non-empty masks per image."""

    total: torch.Tensor
    pull: torch.Tensor
    push: torch.Tensor
    reg: torch.Tensor
    n_masks: torch.Tensor


def _norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.sqrt(torch.clamp((x * x).sum(dim), min=_EPS))


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


def pair_relations(masks: torch.Tensor, mode: str, *, overlap_threshold: float = 0.1,
                   adjacency_radius: int = 2, max_size: int = 128) -> torch.Tensor | None:
    """Which mask pairs may be pushed apart: bool [B, K, K] (diagonal False), or None for ``"all"``.

    ``"disjoint"``: overlap / smaller area <= ``overlap_threshold`` (so an object and its own parts are never
    pushed apart). ``"adjacent"``: disjoint pairs whose masks touch or lie within ``adjacency_radius`` cells of
    each other. Computed on masks area-pooled to at most ``max_size`` cells per side (pair relations do not need
    pixel precision, and the K x K x N overlap product would dominate at full resolution).
    """
    if mode == "all":
        return None
    if mode not in PUSH_MODES:
        raise ValueError(f"push_pairs must be one of {PUSH_MODES} or a bool [B, K, K] tensor, got {mode!r}")
    b, k, h, w = masks.shape
    f = 1
    while max(h, w) / f > max_size:
        f *= 2
    m = (downsample_masks(masks, (f,))[f][0] if f > 1 else masks).float()
    flat = m.flatten(2)  # [B, K, n]
    area = flat.sum(-1)
    inter = flat @ flat.transpose(1, 2)
    smaller = torch.minimum(area[:, :, None], area[:, None, :]).clamp(min=1)
    allowed = inter / smaller <= overlap_threshold
    if mode == "adjacent":
        grown = F.max_pool2d(m, 2 * adjacency_radius + 1, stride=1, padding=adjacency_radius).flatten(2)
        allowed &= (grown @ flat.transpose(1, 2)) > 0
    allowed &= ~torch.eye(k, dtype=torch.bool, device=masks.device)
    return allowed


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
) -> LossParts:
    """Discriminative loss at one stride.

    Args:
        features: [B, C, H, W] float (computed in float32, or float64 if given float64, even under autocast).
        masks: bool [B, K, H, W]; masks may overlap.
        mask_valid: bool [B, K] or None (all valid). Invalid and empty masks are ignored.
        push_pairs: "all" (the paper), "disjoint", "adjacent" (see ``pair_relations``), or bool [B, K, K].
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
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=features.device.type, enabled=False):
        return _discriminative_loss(features.to(dtype), masks, mask_valid, delta_v, delta_d, alpha, beta, gamma,
                                    push_pairs, pixel_weight, overlap_threshold, adjacency_radius, dense,
                                    min_members, feature_scale)


def _member_index(masks: torch.Tensor) -> torch.Tensor:
    """Flat indices into ``masks`` (bool, any shape) of its True entries, ascending: ``masks.flatten().nonzero()``.

    Masks are mostly False, so the scan reads them 8 bytes at a time and looks inside non-zero words only
    (2x faster than ``nonzero`` on the bool tensor at SA-1B-like densities)."""
    flat = masks.reshape(-1)
    if flat.numel() % 8 or flat.storage_offset() % 8 or not flat.is_contiguous() or flat.device.type != "cpu":
        return flat.nonzero().squeeze(1)
    words = flat.view(torch.int64)
    hit = words.nonzero().squeeze(1)
    inner = words.index_select(0, hit).view(torch.uint8).view(-1, 8).nonzero()
    return hit.index_select(0, inner[:, 0]) * 8 + inner[:, 1]


def _segment_sum(x: torch.Tensor, flat_k: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Row sums of x [M, C] per segment (rows with equal ``flat_k``) -> [len(count), C]."""
    return torch.zeros(count.shape[0], x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, flat_k, x)


class _SparsePull(torch.autograd.Function):
    """Means and pull of every mask from gathered member features, with a hand-written backward.

    Forward: mu_k = sum_i w_i x_i / m_k, d_i = ||x_i - mu_k||, pull_k = sum_i w_i [s d_i - delta_v]_+^2 / m_k
    (s = ``scale``; mu is returned unscaled). Backward (g = upstream grads of pull and mu): with
    a_i = 2 s w_i g_pull_k [s d_i - delta_v]_+ / (m_k d_i),
    dL/dx_i = a_i (x_i - mu_k) + (w_i / m_k) (g_mu_k - sum_{j in k} a_j (x_j - mu_k)).
    Autograd would keep and walk ~10 [M, C] intermediates; this keeps one and makes ~5 passes over it, one image
    chunk at a time (one image per chunk when the batch's [M, C] would overflow the cache). That is most of the
    loss's time at SA-1B-like mask counts.
    """

    @staticmethod
    def forward(ctx, x, pix, flat_k, bounds, count, wt, mass, delta_v, scale):
        # x [B, C, H, W]; chunks of B / len(bounds[1:]) images; members i: pix [M] pixel within its chunk, flat_k [M]
        # mask b * K + k (ascending), chunk j's members at bounds[j]:bounds[j+1]; count [B*K] members per mask;
        # wt [M] or None; mass [B*K] weight sums
        b, c, h, w = x.shape
        chunks = len(bounds) - 1
        k = count.shape[0] // chunks  # masks per chunk
        feats = x.permute(0, 2, 3, 1).reshape(chunks, -1, c)  # rows = pixels, so a gather reads whole rows
        inv_mass = 1.0 / mass.clamp(min=1e-12)
        mus, pulls, saved = [], [], []
        for i in range(chunks):
            lo, hi, ks = bounds[i], bounds[i + 1], slice(i * k, (i + 1) * k)
            kk, wi, im = flat_k[lo:hi] - i * k, None if wt is None else wt[lo:hi], inv_mass[ks]
            xi = feats[i].index_select(0, pix[lo:hi])  # [M_b, C]
            mu = _segment_sum(xi if wi is None else xi * wi[:, None], kk, count[ks]) * im[:, None]
            diff = xi.sub_(mu.index_select(0, kk))  # x_i - mu_k, in place of xi
            sq = (diff * diff).sum(1)
            d = torch.sqrt(sq.clamp(min=_EPS))
            excess = F.relu(scale * d - delta_v)
            hinge = excess * excess
            pulls.append(torch.zeros_like(im).index_add_(0, kk, hinge if wi is None else wi * hinge) * im)
            mus.append(mu)
            # grad of the clamped sqrt is zero below _EPS, as autograd's would be
            saved.append((diff, torch.where(sq > _EPS, scale * excess / d, torch.zeros_like(d))))
        ctx.saved, ctx.bounds, ctx.shape = saved, bounds, (b, c, h, w)
        ctx.save_for_backward(pix, flat_k, count, wt, inv_mass)
        return torch.cat(mus), torch.cat(pulls)

    @staticmethod
    def backward(ctx, g_mu, g_pull):
        pix, flat_k, count, wt, inv_mass = ctx.saved_tensors
        b, c, h, w = ctx.shape
        bounds = ctx.bounds
        k = count.shape[0] // (len(bounds) - 1)
        grad = torch.zeros(len(bounds) - 1, b * h * w // (len(bounds) - 1), c, dtype=g_mu.dtype, device=g_mu.device)
        for i, (diff, ratio) in enumerate(ctx.saved):
            lo, hi, ks = bounds[i], bounds[i + 1], slice(i * k, (i + 1) * k)
            kk = flat_k[lo:hi] - i * k
            wm = inv_mass[ks].index_select(0, kk)  # w_i / m_k
            if wt is not None:
                wm = wm * wt[lo:hi]
            t = diff * (2 * g_pull[ks].index_select(0, kk) * wm * ratio)[:, None]  # a_i (x_i - mu_k)  [M_b, C]
            g_hat = g_mu[ks] - _segment_sum(t, kk, count[ks])  # [K, C]
            grad[i].index_add_(0, pix[lo:hi], torch.addcmul(t, g_hat.index_select(0, kk), wm[:, None]))
        return grad.view(b, h, w, c).permute(0, 3, 1, 2), None, None, None, None, None, None, None, None


# Narrow strides on CPU (C <= 16: the /1 and /2 maps): the same pull fused into two compiled loops, one pass over
# each mask's members instead of ~10 tensor passes; reads the [B, C, N] map in place (no pixel-major copy). Wide
# strides stay with the tensor version, whose pixel-major gathers read whole rows (the loops here would stride
# across channels). Measured at B = 4, 512^2, K = 64: /1 39 -> 20 ms, /2 24 -> 16 ms forward + backward.


@numba.njit(parallel=True, cache=True)
def _fused_pull_forward(x, pix, seg, wt, inv_mass, k, delta_v, scale, eps):
    """x [B, C, N]; mask s = b * k + kk has members seg[s]:seg[s+1] (pixels pix, weights wt or empty)
    -> mu [S, C], pull [S], ratio [M] (as in ``_SparsePull``). One pass per mask, masks in parallel."""
    s_count, c = seg.shape[0] - 1, x.shape[1]
    mu = np.zeros((s_count, c), x.dtype)
    pull = np.zeros(s_count, x.dtype)
    ratio = np.zeros(pix.shape[0], x.dtype)
    weighted = wt.shape[0] > 0
    for s in numba.prange(s_count):
        lo, hi, b = seg[s], seg[s + 1], s // k
        if hi == lo:
            continue
        xb = x[b]
        for i in range(lo, hi):
            w = wt[i] if weighted else 1.0
            p = pix[i]
            for j in range(c):
                mu[s, j] += w * xb[j, p]
        for j in range(c):
            mu[s, j] *= inv_mass[s]
        acc = 0.0
        for i in range(lo, hi):
            p = pix[i]
            sq = 0.0
            for j in range(c):
                dd = xb[j, p] - mu[s, j]
                sq += dd * dd
            d = math.sqrt(max(sq, eps))
            e = max(scale * d - delta_v, 0.0)
            acc += (wt[i] if weighted else 1.0) * e * e
            ratio[i] = scale * e / d if sq > eps else 0.0
        pull[s] = acc * inv_mass[s]
    return mu, pull, ratio


@numba.njit(parallel=True, cache=True)
def _fused_pull_backward(x, pix, seg, wt, inv_mass, k, mu, ratio, g_mu, g_pull):
    """dL/dx as [B, N, C] from the upstream grads of mu [S, C] and pull [S]; parallel over images (their pixels
    are disjoint, so the scatter needs no atomics)."""
    b_count, c = x.shape[0], x.shape[1]
    grad = np.zeros((b_count, x.shape[2], c), x.dtype)  # pixel-major: one member's C values land side by side
    weighted = wt.shape[0] > 0
    for b in numba.prange(b_count):
        xb, gb = x[b], grad[b]
        g_hat = np.empty(c, x.dtype)
        for s in range(b * k, (b + 1) * k):
            lo, hi = seg[s], seg[s + 1]
            if hi == lo:
                continue
            for j in range(c):
                g_hat[j] = g_mu[s, j]
            base = 2.0 * g_pull[s] * inv_mass[s]
            for i in range(lo, hi):  # g_hat = g_mu - sum_i a_i (x_i - mu)
                a = base * ratio[i] * (wt[i] if weighted else 1.0)
                if a != 0.0:
                    p = pix[i]
                    for j in range(c):
                        g_hat[j] -= a * (xb[j, p] - mu[s, j])
            for i in range(lo, hi):
                w = (wt[i] if weighted else 1.0)
                a = base * ratio[i] * w
                wm = w * inv_mass[s]
                p = pix[i]
                for j in range(c):
                    gb[p, j] += a * (xb[j, p] - mu[s, j]) + wm * g_hat[j]
    return grad


class _FusedPull(torch.autograd.Function):
    """``_SparsePull`` for CPU maps with few channels, through the compiled loops above."""

    @staticmethod
    def forward(ctx, x, pix, seg, k, wt, mass, delta_v, scale):
        b, c, h, w = x.shape
        x3 = x.detach().contiguous().view(b, c, h * w).numpy()
        inv_mass = (1.0 / mass.clamp(min=1e-12)).numpy()
        wt_np = wt.numpy() if wt is not None else np.zeros(0, x3.dtype)
        pix, seg = pix.numpy(), seg.numpy()
        sync_numba_threads()
        mu, pull, ratio = _fused_pull_forward(x3, pix, seg, wt_np, inv_mass, k, delta_v, scale, _EPS)
        ctx.arrays, ctx.shape = (x3, pix, seg, wt_np, inv_mass, k, mu, ratio), x.shape
        return torch.from_numpy(mu), torch.from_numpy(pull)

    @staticmethod
    def backward(ctx, g_mu, g_pull):
        x3, pix, seg, wt_np, inv_mass, k, mu, ratio = ctx.arrays
        sync_numba_threads()
        grad = _fused_pull_backward(x3, pix, seg, wt_np, inv_mass, k, mu, ratio,
                                    g_mu.contiguous().numpy(), g_pull.contiguous().numpy())
        b, c, h, w = ctx.shape
        return torch.from_numpy(grad).view(b, h, w, c).permute(0, 3, 1, 2), None, None, None, None, None, None, None


def _pull_sparse(x, masks, mask_valid, pixel_weight, delta_v, min_members=1, member_index=None, scale=1.0):
    """Pull term from a sparse list of (image, mask, pixel) member pairs: memory ~ total mask area x C.

    ``member_index``: ``_member_index(masks)`` if already computed.
    Returns (mu [B, K, C], valid [B, K], mass [B*K], per-mask pull [B, K])."""
    b, c, h, w = x.shape
    k, n = masks.shape[1], h * w
    idx = _member_index(masks) if member_index is None else member_index
    flat_k, pix = idx // n, idx % n  # mask b * K + k (ascending), pixel within the image
    keep = None
    if mask_valid is not None:
        keep = mask_valid.to(x.device).reshape(-1).index_select(0, flat_k)
    wt = None
    if pixel_weight is not None:
        wt = pixel_weight.to(x.dtype).reshape(b, n)[flat_k // k, pix]
        keep = (wt > 0) if keep is None else keep & (wt > 0)
    if keep is not None and not bool(keep.all()):
        flat_k, pix = flat_k[keep], pix[keep]
        wt = None if wt is None else wt[keep]
    count = torch.bincount(flat_k, minlength=b * k)
    mass = count.to(x.dtype) if wt is None else torch.zeros(b * k, dtype=x.dtype, device=x.device).index_add_(
        0, flat_k, wt)
    if c <= 16 and x.device.type == "cpu" and _FUSED:
        seg = torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])
        mu, per_mask = _FusedPull.apply(x, pix, seg, k, wt, mass, delta_v, scale)
    else:
        if len(flat_k) * c > _PER_IMAGE_ABOVE:  # per image: a batch-wide working set this large spills out of cache
            bounds = [0] + torch.cumsum(count.view(b, k).sum(1), 0).tolist()
        else:
            bounds, pix = [0, len(flat_k)], (flat_k // k) * n + pix
        mu, per_mask = _SparsePull.apply(x, pix, flat_k, bounds, count, wt, mass, delta_v, scale)
    valid = (mass > 0) & (count >= min_members)
    return mu.view(b, k, c), valid.view(b, k), mass, per_mask.view(b, k)


def _pull_dense(x, masks, mask_valid, pixel_weight, delta_v, min_members=1, scale=1.0):
    """Pull term with dense [B, K, N] distances from a Gram expansion: cheap when N is small and C large
    (coarse strides: 1024 cells x 768 channels at /16 for 512^2). Same outputs as ``_pull_sparse``."""
    b, c, h, w = x.shape
    k = masks.shape[1]
    feats = x.flatten(2)  # [B, C, N]
    wgt = masks.flatten(2).to(x.dtype)  # [B, K, N]
    if mask_valid is not None:
        wgt = wgt * mask_valid.to(x.dtype)[:, :, None]
    if pixel_weight is not None:
        wgt = wgt * pixel_weight.to(x.dtype).flatten(1)[:, None, :]
    mass = wgt.sum(-1)  # [B, K]
    mu = (wgt @ feats.transpose(1, 2)) / mass.clamp(min=1e-12)[..., None]  # [B, K, C]
    sq = (feats * feats).sum(1)[:, None, :] - 2 * (mu @ feats) + (mu * mu).sum(-1)[..., None]
    d = torch.sqrt(torch.clamp(sq, min=_EPS))  # [B, K, N]
    per_mask = (wgt * F.relu(scale * d - delta_v) ** 2).sum(-1) / mass.clamp(min=1e-12)
    valid = (mass > 0) & (torch.count_nonzero(wgt, dim=-1) >= min_members)
    return mu, valid, mass.reshape(-1), per_mask


def _discriminative_loss(x, masks, mask_valid, delta_v, delta_d, alpha, beta, gamma, push_pairs, pixel_weight,
                         overlap_threshold, adjacency_radius, dense=None, min_members=1, scale=1.0) -> LossParts:
    b, c, h, w = x.shape
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
    idx = None
    if dense is None:
        # Pick the cheaper layout from the member density M / (B K N). Measured on CPU (2 cores, fwd + bwd):
        # sparse ~7 ns per gathered value (M C), dense ~(18 + 0.1 C) ns per (mask, cell) pair, so dense wins
        # above 2.5 / C + 0.015: from ~2 % of cells at /16 (C = 768) to never at /1 (C = 3).
        idx = _member_index(masks)
        dense = len(idx) > masks.numel() * (2.5 / c + 0.015)
    if dense:
        mu, valid, mass, per_mask = _pull_dense(x, masks, mask_valid, pixel_weight, delta_v, min_members, scale)
    else:
        mu, valid, mass, per_mask = _pull_sparse(x, masks, mask_valid, pixel_weight, delta_v, min_members, idx,
                                                 scale)
    if scale != 1.0:
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
    dmu = torch.sqrt(torch.clamp(sq[:, :, None] + sq[:, None, :] - 2 * mu @ mu.transpose(1, 2), min=_EPS))
    hinge = F.relu(2 * delta_d - dmu) ** 2 * pair
    push = hinge.sum((1, 2)) / (cb * (cb - 1)).clamp(min=1)

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
            members = counts[..., :hs, :ws] >= half
            if not bool((ins > 0).all()):
                members &= ins > 0
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


def feature_spread(features: torch.Tensor, cell_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over channels of the per-channel std over valid cells, averaged over images: the collapse alarm.

    features [B, C, h, w], cell_valid bool [B, h, w] -> scalar (0 for a constant output).
    """
    # moments E[y^2] - E[y]^2 of y = x - (a cell of x), fast reductions where torch.var_mean takes ~10x longer on
    # CPU; the shift makes a constant output exactly 0 and keeps the difference well conditioned
    x = features.detach().float().flatten(2)
    x = x - x[:, :, :1]
    if cell_valid is None or bool(cell_valid.all()):
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
    """``total`` (scalar tensor with grad) and ``logs`` (floats): "loss/total", "s{s}/pull|push|reg|active_masks|spread"."""

    total: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)
    parts: dict[int, LossParts] = field(default_factory=dict)


class MultiStrideLoss(torch.nn.Module):
    """Discriminative loss on every stride of a FeatureNet output, weighted so less resolved strides count more.

    Args:
        strides: strides to use (keys of the FeatureNet dict).
        base_channels: colour channels at full resolution (D = base * s^2 at stride s).
        loss_weights: {s: w} or None for w ∝ s, normalised to sum 1.
        margins: {s: (delta_v, delta_d)} or None for ``default_margins`` (v * sqrt(D), d * sqrt(D)).
        margin_v, margin_d: the v and d of the default rule.
        push_pairs: "all" | "disjoint" | "adjacent" (see ``pair_relations``).
        min_cells: a mask needs at least this many member cells at a stride to count there.

    ``forward(features {s: [B, base*s^2, ceil(H/s), ceil(W/s)]}, masks bool [B, K, H, W], mask_valid bool [B, K]
    | None, valid_pixels bool [B, H, W] | None) -> MultiStrideOutput``.
    """

    def __init__(self, strides: Sequence[int] = (1, 2, 4, 8, 16), base_channels: int = 3,
                 loss_weights: Mapping[int, float] | None = None,
                 margins: Mapping[int, tuple[float, float]] | None = None, margin_v: float = 0.05,
                 margin_d: float = 0.2, push_pairs: str = "all", min_cells: int = 2, alpha: float = 1.0,
                 beta: float = 1.0, gamma: float = 0.001, overlap_threshold: float = 0.1,
                 adjacency_radius: int = 2):
        super().__init__()
        self.strides = tuple(sorted(int(s) for s in strides))
        if push_pairs not in PUSH_MODES:
            raise ValueError(f"push_pairs must be one of {PUSH_MODES}, got {push_pairs!r}")
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

    def forward(self, features: Mapping[int, torch.Tensor], masks: torch.Tensor,
                mask_valid: torch.Tensor | None = None, valid_pixels: torch.Tensor | None = None
                ) -> MultiStrideOutput:
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
        if mask_valid is None:
            mask_valid = torch.ones(b, k, dtype=torch.bool, device=masks.device)
        pairs = pair_relations(masks, self.push_pairs, overlap_threshold=self.overlap_threshold,
                               adjacency_radius=self.adjacency_radius)
        down = downsample_masks(masks, self.strides, valid_pixels)
        device = next(iter(features.values())).device
        total = torch.zeros((), device=device)
        out = MultiStrideOutput(total)
        for s in self.strides:
            members, cell_valid = down[s]
            all_valid = bool(cell_valid.all())  # padding-free batches skip the per-pixel weights entirely
            dv, dd = self.margins[s]
            # Distances in units of sqrt(D) (the cube's diameter): every stride's loss lives on the same scale,
            # so the stride weights, not the channel counts, decide how much each stride counts.
            unit = math.sqrt(features[s].shape[1])
            parts = discriminative_loss(
                features[s], members, mask_valid, delta_v=dv / unit, delta_d=dd / unit, alpha=self.alpha,
                beta=self.beta, gamma=self.gamma, push_pairs=pairs if pairs is not None else "all",
                pixel_weight=None if all_valid else cell_valid.float(), min_members=self.min_cells,
                feature_scale=1.0 / unit)
            total = total + self.loss_weights[s] * parts.total
            out.parts[s] = parts
            out.logs.update({f"s{s}/pull": parts.pull.item(), f"s{s}/push": parts.push.item(),
                             f"s{s}/reg": parts.reg.item(),
                             f"s{s}/active_masks": parts.n_masks.float().mean().item(),
                             f"s{s}/spread": feature_spread(features[s], cell_valid).item()})
        out.total = total
        out.logs["loss/total"] = total.item()
        return out


def fit_free_features(masks: torch.Tensor, loss: MultiStrideLoss, steps: int = 200, lr: float = 0.1,
                      seed: int = 0, valid_pixels: torch.Tensor | None = None) -> tuple[dict, list[float]]:
    """Optimise a free feature tensor (no network) for ``loss`` on ``masks`` [B, K, H, W]: is the loss satisfiable?

    Features are sigmoid(logits) per stride, like FeatureNet's. Returns ({s: features}, loss history).
    """
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = masks.shape
    logits = {s: (torch.randn(b, loss.base_channels * s * s, math.ceil(h / s), math.ceil(w / s), generator=g) * 0.1)
              .requires_grad_() for s in loss.strides}
    opt = torch.optim.Adam(logits.values(), lr=lr)
    history = []
    for _ in range(steps):
        out = loss({s: torch.sigmoid(v) for s, v in logits.items()}, masks, valid_pixels=valid_pixels)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        history.append(out.total.item())
    return {s: torch.sigmoid(v).detach() for s, v in logits.items()}, history


def active_masks_per_stride(masks: torch.Tensor, strides=(1, 2, 4, 8, 16), min_cells: int = 2) -> dict[int, int]:
    """How many of ``masks`` [B, K, H, W] survive the loss's downsampling rule (>= min_cells cells) per stride."""
    down = downsample_masks(masks, strides)
    return {s: int((down[s][0].flatten(2).sum(-1) >= min_cells).sum()) for s in strides}
