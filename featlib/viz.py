"""Feature maps as colours, label and mask overlays, and a one-call figure helper for notebooks and training logs.

    rgb = features_to_rgb(features[4])             # [C, H, W] -> float [H, W, 3] in [0, 1]
    view = label_overlay(image, labels)            # segment colours + white boundaries, float [H, W, 3]
    view = overlay(image, seg.mask, seg.clicks)    # click segmentation: uint8 [H, W, 3]
    fig = show_features(image, features, clusters, gt)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def features_to_rgb(x, method: str = "pca") -> np.ndarray:
    """View a feature map as an RGB image in [0, 1].

    ``x``: [C, H, W] or [B, C, H, W] tensor/array -> [H, W, 3] or [B, H, W, 3] float32.
    ``method="first3"`` shows the first three channels as they are (FeatureNet colours are already in [0, 1]);
    ``"pca"`` projects on the top 3 principal components (per image) and stretches each to [0, 1] by its
    1st-99th percentiles, which shows structure in any number of channels.
    """
    a = _to_numpy(x)
    if a.ndim == 4:
        return np.stack([features_to_rgb(f, method) for f in a])
    if a.ndim != 3:
        raise ValueError(f"features must be [C, H, W] or [B, C, H, W], got shape {a.shape}")
    c, h, w = a.shape
    if method == "first3":
        rgb = a[:3] if c >= 3 else np.concatenate([a, np.repeat(a[-1:], 3 - c, 0)])
        return np.clip(rgb.transpose(1, 2, 0), 0, 1)
    if method != "pca":
        raise ValueError(f"method must be 'pca' or 'first3', got {method!r}")
    flat = a.reshape(c, -1).T  # [N, C]
    flat = flat - flat.mean(0, keepdims=True)
    if c > 3:
        sample = flat[:: max(1, len(flat) // 20000)]  # PCA basis from a subsample: same picture, far faster
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        proj = flat @ vt[:3].T
    else:
        proj = np.concatenate([flat, np.zeros((len(flat), 3 - c), np.float32)], 1)
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    proj = (proj - lo) / np.maximum(hi - lo, 1e-8)
    return np.clip(proj, 0, 1).reshape(h, w, 3).astype(np.float32)


def label_colours(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct-ish random colours [n, 3] in [0.15, 1] (deterministic)."""
    return np.random.default_rng(seed).uniform(0.15, 1.0, size=(max(n, 1), 3)).astype(np.float32)


def label_overlay(image, labels, alpha: float = 0.5, boundaries: bool = True) -> np.ndarray:
    """Blend random segment colours over ``image`` [H, W, 3] (uint8 or float in [0, 1]); ``labels`` int [H, W].

    Negative labels (e.g. -1 = unannotated) are left uncoloured. Boundaries are drawn in white.
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    lab = np.asarray(labels)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3], got {img.shape}")
    if lab.shape != img.shape[:2]:
        raise ValueError(f"labels shape {lab.shape} != image size {img.shape[:2]}")
    out = img.copy()
    valid = lab >= 0
    if valid.any():
        colours = label_colours(int(lab.max()) + 1)
        out[valid] = (1 - alpha) * img[valid] + alpha * colours[lab[valid]]
    if boundaries:
        out[find_boundaries(lab, mode="inner")] = 1.0
    return np.clip(out, 0, 1)


def overlay(image: np.ndarray, mask: np.ndarray, clicks: Sequence = (), alpha: float = 0.45) -> np.ndarray:
    """Click-segmentation view -> uint8 [H, W, 3]: ``mask`` (bool [H, W]) tinted blue with a yellow outline, clicks
    as squares, positive green and negative red.

    ``image``: [H, W, 3] uint8, or float in [0, 1]; ``clicks``: objects with ``y``, ``x``, ``positive`` (e.g.
    ``featlib.interactive.Click``).
    """
    img = np.asarray(image)
    img = (img * 255).astype(np.uint8) if img.dtype != np.uint8 else img
    out = img.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.array([40, 120, 255], np.float32)
    edge = mask ^ ndimage.binary_erosion(mask)
    out[edge] = (255, 255, 0)
    h, w = mask.shape
    r = max(2, min(h, w) // 100)
    for c in clicks:
        out[max(0, c.y - r): c.y + r + 1, max(0, c.x - r): c.x + r + 1] = (0, 220, 0) if c.positive else (230, 0, 0)
    return out.astype(np.uint8)


def show_features(image, features: dict, clusters=None, gt=None, method: str = "first3", title: str | None = None):
    """Figure: image | features as colours per stride (full resolution) | clusters | ground truth.

    ``image`` [H, W, 3]; ``features`` {s: [C, h, w]} for one image (pixel-shuffled to full resolution first when
    C = 3 s^2, so every stride shows at the image's size). Returns the matplotlib Figure.
    """
    # Imported on use: matplotlib, torch and the model add ~3 s to `import featlib.viz` (~1 s without them).
    import matplotlib.pyplot as plt
    import torch

    from featlib.model import to_full_resolution

    panels = [("image", np.asarray(image))]
    for s, f in sorted(features.items()):
        t = torch.as_tensor(_to_numpy(f))[None]
        base = t.shape[1] // (s * s)
        if base * s * s == t.shape[1] and base >= 1:
            t = to_full_resolution({s: t}, base_channels=base, size=panels[0][1].shape[:2])[s]
        panels.append((f"/{s}", features_to_rgb(t[0], method if base >= 3 else "pca")))
    if clusters is not None:
        panels.append((f"clusters ({int(np.max(clusters)) + 1})", label_overlay(image, clusters)))
    if gt is not None:
        panels.append(("ground truth", label_overlay(image, gt)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
    for ax, (name, im) in zip(axes[0], panels):
        ax.imshow(im)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(metrics: list[dict], title: str = "", collapse_spread: float | None = None):
    """Figure of a run's ``metrics.jsonl`` rows (``featlib.train.read_metrics``): loss, feature spread (with the
    collapse alarm's threshold) and validation against its baseline -- covering ODS vs ``lab-smooth`` for runs on
    photos (the reported metric), mean best IoU vs raw RGB for synthetic runs."""
    import matplotlib.pyplot as plt  # lazy: only figures need matplotlib

    train = [r for r in metrics if "loss/total" in r]
    photo = [r for r in metrics if "val/covering_ods" in r]
    val = photo or [r for r in metrics if "val/mean_best_iou" in r]
    key, base, label, base_label = (("val/covering_ods", "val/lab_covering_ods", "covering ODS", "lab-smooth")
                                    if photo else ("val/mean_best_iou", "val/rgb_mean_best_iou", "mean best IoU",
                                                   "raw RGB"))
    fig, ax = plt.subplots(1, 3, figsize=(14, 3))
    ax[0].semilogy([r["step"] for r in train], [r["loss/total"] for r in train])
    ax[0].set_title(f"{title}: loss" if title else "loss")
    ax[1].plot([r["step"] for r in train], [r["spread/mean"] for r in train])
    ax[1].set_title("feature spread")
    if collapse_spread is not None:
        ax[1].axhline(collapse_spread, color="r", ls="--", lw=1, label="collapse alarm")
        ax[1].legend()
    ax[2].plot([r["step"] for r in val], [r[key] for r in val], "o-", label="learned")
    ax[2].plot([r["step"] for r in val], [r.get(base, float("nan")) for r in val], "s--", label=base_label)
    ax[2].set_title(f"held-out {label}")
    ax[2].legend()
    for a in ax:
        a.set_xlabel("step")
    fig.tight_layout()
    return fig


def show_levels(image: np.ndarray, levels: Sequence[np.ndarray], names: Sequence[str] | None = None, title=None):
    """Figure: the photo, then one ground-truth partition per nesting level (``featlib.data.synthetic.level_maps``:
    int [H, W], 0 = unannotated, drawn untinted)."""
    import matplotlib.pyplot as plt  # lazy: only figures need matplotlib

    names = list(names) if names is not None else [f"level {i}" for i in range(len(levels))]
    fig, axes = plt.subplots(1, len(levels) + 1, figsize=(3.2 * (len(levels) + 1), 2.8))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    for ax, lab, name in zip(axes[1:], levels, names):
        ax.imshow(label_overlay(image, np.where(lab > 0, lab, -1), alpha=0.55))
        ax.set_title(f"{name}: {len(np.unique(lab[lab > 0]))} regions", fontsize=9)
    for a in axes:
        a.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
