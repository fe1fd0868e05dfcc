"""The pull term of the discriminative loss and the per-mask means it needs, for many overlapping masks at once.

One stride, image b, mask k with member pixels i (weights w_i > 0, mass m_k = sum_i w_i), s the feature scale:

    mu_k   = sum_{i in k} w_i x_i / m_k
    d_i    = ||x_i - mu_k||,   e_i = [s d_i - delta_v]_+
    pull_k = sum_{i in k} w_i e_i^2 / m_k

``featlib.loss`` averages pull_k over valid masks and builds the push and regulariser terms on s mu_k.

Backward, from the upstream grads g_pull_k and g_mu_k. x_i enters pull_k directly (through d_i) and through mu_k:

    d pull_k / d x_i |_mu = 2 s w_i e_i (x_i - mu_k) / (m_k d_i)        d pull_k / d mu_k = -sum_{j in k} (same)_j
    d mu_k / d x_i = w_i / m_k

so with a_i = 2 s w_i g_pull_k e_i / (m_k d_i) and g_hat_k = g_mu_k - sum_{j in k} a_j (x_j - mu_k):

    dL/dx_i = sum over the masks k holding i of  a_i (x_i - mu_k) + (w_i / m_k) g_hat_k

d_i is sqrt(max(||.||^2, EPS)), whose gradient is zero below EPS (a_i = 0 there), as autograd's would be.

Three implementations give the same values and gradients up to rounding (tests/test_loss.py checks each against
the others):

- sparse, tensors (``_SparsePull``): gathers only the M (image, mask, pixel) member pairs, so memory ~ total mask
  area x C, linear in K. The backward above is written out: autograd kept and walked ~10 [M, C] intermediates,
  this keeps one and makes ~5 passes over it, image by image when the batch's [M, C] would overflow the cache.
  That was most of the loss's time at SA-1B-like mask counts. Used on GPU and for wide strides on CPU.
- sparse, fused CPU loops (``_FusedPull``, numba) for narrow strides (C <= 16: the /1 and /2 maps): one pass over
  each mask's members instead of ~10 tensor passes, reading the [B, C, N] map in place (no pixel-major copy).
  Measured at B = 4, 512^2, K = 64: /1 39 -> 20 ms, /2 24 -> 16 ms forward + backward. Wide strides stay with the
  tensor version, whose pixel-major gathers read whole rows (these loops would stride across channels).
- dense (``_pull_dense``): [B, K, N] distances from a Gram expansion, plain autograd; cheaper for large masks at
  coarse strides (few cells, many channels). ``pull_term`` picks it from the member density by measured costs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
import torch.nn.functional as F

from featlib.utils import sync_numba_threads

EPS = 1e-20  # under a sqrt: keeps the gradient finite (zero) when two vectors coincide
_FUSED = True  # compiled loops for narrow CPU strides (tests switch them off to compare with the tensor version)
_PER_IMAGE_ABOVE = 8_000_000  # gathered member values (M x C) above which the sparse pull runs image by image (CPU)
DENSE_MAX_ENTRIES = 1 << 26  # accelerators: dense layout while B * K * N <= this (see pull_term)


def pull_term(x: torch.Tensor, masks: torch.Tensor, mask_valid: torch.Tensor | None,
              pixel_weight: torch.Tensor | None, delta_v: float, min_members: int = 1, scale: float = 1.0,
              dense: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means and pull of every mask at one stride.

    Args:
        x: [B, C, H, W] float32 / float64 features (unscaled).
        masks: bool [B, K, H, W]; mask_valid: bool [B, K] or None; pixel_weight: [B, H, W] (0 = ignored) or None.
        delta_v, scale: the hinge [scale * d - delta_v]_+ on distances of ``x`` to its masks' means.
        min_members: masks with fewer member pixels (weight > 0) are not valid.
        dense: True / False forces the layout; None picks the cheaper one. Same values either way.
    Returns:
        (mu [B, K, C] means of the unscaled x, valid bool [B, K] (valid, non-empty, >= min_members),
        per-mask pull [B, K]).
    """
    idx = None
    if dense is None and x.device.type != "cpu":
        # On an accelerator the member count is not known without a host sync (nonzero's output size), so the
        # layout follows the shapes: dense while its [B, K, N] tensors stay small (<= 2^26 entries, 256 MB in
        # float32: /4, /8, /16 at 1024^2, B = 8, K = 64), sparse above (/1, /2: one nonzero each).
        dense = masks.numel() <= DENSE_MAX_ENTRIES
    if dense is None:
        # Pick the cheaper layout from the member density M / (B K N). Measured on CPU (2 cores, fwd + bwd):
        # sparse ~7 ns per gathered value (M C), dense ~(18 + 0.1 C) ns per (mask, cell) pair, so dense wins
        # above 2.5 / C + 0.015: from ~2 % of cells at /16 (C = 768) to never at /1 (C = 3).
        idx = _member_index(masks)
        dense = len(idx) > masks.numel() * (2.5 / x.shape[1] + 0.015)
    if dense:
        return _pull_dense(x, masks, mask_valid, pixel_weight, delta_v, min_members, scale)
    return _pull_sparse(x, masks, mask_valid, pixel_weight, delta_v, min_members, idx, scale)


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
    """Means and pull of every mask from gathered member features, with the backward of the module docstring.

    Keeps one [M, C] tensor (x_i - mu_k) and its ratios s e_i / d_i per image chunk for the backward.
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
            d = torch.sqrt(sq.clamp(min=EPS))
            excess = F.relu(scale * d - delta_v)
            hinge = excess * excess
            pulls.append(torch.zeros_like(im).index_add_(0, kk, hinge if wi is None else wi * hinge) * im)
            mus.append(mu)
            # grad of the clamped sqrt is zero below EPS, as autograd's would be
            saved.append((diff, torch.where(sq > EPS, scale * excess / d, torch.zeros_like(d))))
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


# The fused CPU loops for narrow strides (see the module docstring for when and why).


@numba.njit(parallel=True, cache=True)
def _fused_pull_forward(x, pix, seg, wt, inv_mass, k, delta_v, scale, eps):
    """x [B, C, N]; mask s = b * k + kk has members seg[s]:seg[s+1] (pixels pix, weights wt or empty)
    -> mu [S, C], pull [S], ratio [M] (s e_i / d_i). One pass per mask, masks in parallel."""
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
        mu, pull, ratio = _fused_pull_forward(x3, pix, seg, wt_np, inv_mass, k, delta_v, scale, EPS)
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
    Returns (mu [B, K, C], valid [B, K], per-mask pull [B, K])."""
    b, c, h, w = x.shape
    k, n = masks.shape[1], h * w
    idx = _member_index(masks) if member_index is None else member_index
    flat_k, pix = idx // n, idx % n  # mask b * K + k (ascending), pixel within the image
    # Invalid masks and ignored pixels stay in the member list with weight 0 (the same sums as dropping them, and
    # no data-dependent shape: dropping them would read their count on the host).
    wt = None
    if mask_valid is not None:
        wt = mask_valid.to(device=x.device, dtype=x.dtype).reshape(-1).index_select(0, flat_k)
    if pixel_weight is not None:
        pw = pixel_weight.to(x.dtype).reshape(b, n)[flat_k // k, pix]
        wt = pw if wt is None else wt * pw
    count = torch.zeros(b * k, dtype=torch.long, device=x.device).index_add_(0, flat_k, torch.ones_like(flat_k))
    if wt is None:
        mass, members = count.to(x.dtype), count
    else:
        mass = torch.zeros(b * k, dtype=x.dtype, device=x.device).index_add_(0, flat_k, wt)
        members = torch.zeros(b * k, dtype=torch.long, device=x.device).index_add_(0, flat_k, (wt > 0).long())
    if c <= 16 and x.device.type == "cpu" and _FUSED:
        seg = torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])
        mu, per_mask = _FusedPull.apply(x, pix, seg, k, wt, mass, delta_v, scale)
    else:
        if len(flat_k) * c > _PER_IMAGE_ABOVE and x.device.type == "cpu":  # per image: this much spills the cache
            bounds = [0] + torch.cumsum(count.view(b, k).sum(1), 0).tolist()
        else:
            bounds, pix = [0, len(flat_k)], (flat_k // k) * n + pix
        mu, per_mask = _SparsePull.apply(x, pix, flat_k, bounds, count, wt, mass, delta_v, scale)
    valid = (mass > 0) & (members >= min_members)
    return mu.view(b, k, c), valid.view(b, k), per_mask.view(b, k)


def _pull_dense(x, masks, mask_valid, pixel_weight, delta_v, min_members=1, scale=1.0):
    """Pull term with dense [B, K, N] distances from a Gram expansion: cheap when N is small and C large
    (coarse strides: 1024 cells x 768 channels at /16 for 512^2). Same outputs as ``_pull_sparse``."""
    feats = x.flatten(2)  # [B, C, N]
    wgt = masks.flatten(2).to(x.dtype)  # [B, K, N]
    if mask_valid is not None:
        wgt = wgt * mask_valid.to(x.dtype)[:, :, None]
    if pixel_weight is not None:
        wgt = wgt * pixel_weight.to(x.dtype).flatten(1)[:, None, :]
    mass = wgt.sum(-1)  # [B, K]
    mu = (wgt @ feats.transpose(1, 2)) / mass.clamp(min=1e-12)[..., None]  # [B, K, C]
    sq = (feats * feats).sum(1)[:, None, :] - 2 * (mu @ feats) + (mu * mu).sum(-1)[..., None]
    d = torch.sqrt(torch.clamp(sq, min=EPS))  # [B, K, N]
    per_mask = (wgt * F.relu(scale * d - delta_v) ** 2).sum(-1) / mass.clamp(min=1e-12)
    valid = (mass > 0) & (torch.count_nonzero(wgt, dim=-1) >= min_members)
    return mu, valid, per_mask

