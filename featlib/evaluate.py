"""Scoring features by the partitions they give: what validation, the demo and the notebooks report.

    scores = validate(model, val_set)                       # {"val/mean_best_iou", "val/covering", "val/rgb_..."}
    iou, cov, labels = score_partition(feats, gts, size=(H, W), mesh_weights={1: 1.0})
    name, weights, table = select_mesh_weights(model, train_scenes)   # choose on *training* images
    fig = example_figure(model, image, gts)

A partition is scored at the ground truth's own number of connected pieces (an oracle granularity, the same for
learned features and the colour baseline, so the comparison is fair): mean best IoU over ground-truth pieces
(``metrics.mean_best_iou``) and covering (``metrics.covering``; unannotated pixels ignored).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from featlib.cluster import build_hierarchy
from featlib.distances import MESH_WEIGHT_NAMES, resolve_mesh_weights
from featlib.features import image_features, load
from featlib.metrics import covering, mean_best_iou
from featlib.model import FeatureNet
from featlib.viz import label_overlay, show_features

_RGB = load("rgb")  # the colour baseline of validate()


def _pieces(instances: np.ndarray) -> np.ndarray:
    """Instance map -> connected pieces (0 stays unannotated): partitions are connected, instances may not be."""
    out = np.zeros(instances.shape, np.int32)
    for i in np.unique(instances):
        if i <= 0:
            continue
        lab, n = ndimage.label(instances == i)
        out[lab > 0] = lab[lab > 0] + out.max()
    return out


def score_partition(features, gts: list[np.ndarray], size=None, mesh_weights=None, **hierarchy_kwargs
                    ) -> tuple[float, float, np.ndarray]:
    """Cluster ``features`` with the hierarchy at the ground truth's number of pieces.

    Returns (mean best IoU, covering, labels).

    ``mesh_weights``: how the per-stride distance meshes combine (``featlib.distances.distance_mesh``; None = equal);
    ``hierarchy_kwargs``: other ``build_hierarchy`` settings (e.g. ``Features.hierarchy_kwargs()``).
    """
    h = build_hierarchy(features, size=size, mesh_weights=mesh_weights, **hierarchy_kwargs)
    gt = _pieces(gts[0])
    labels = h.partition(n_segments=max(1, len(np.unique(gt)) - (1 if (gt == 0).any() else 0) + 1))
    ious = [mean_best_iou(labels, _pieces(g)) for g in gts]
    cov = covering(labels, [np.where(g > 0, g, -1) for g in gts])
    return float(np.nanmean(ious)), cov, labels


def validate(model: FeatureNet, val_set, device="cpu", mesh_weights=None) -> dict[str, float]:
    """Mean best IoU / covering of the feature hierarchy vs raw RGB on held-out images (same clustering)."""
    res = {"iou": [], "cov": [], "rgb_iou": [], "rgb_cov": []}
    for image, gts in val_set:
        feats = image_features(model, image, device)
        iou, cov, _ = score_partition(feats, gts, size=image.shape[:2], mesh_weights=mesh_weights)
        riou, rcov, _ = score_partition(_RGB(image), gts)
        for k, v in zip(res, (iou, cov, riou, rcov)):
            res[k].append(v)
    return {"val/mean_best_iou": float(np.mean(res["iou"])), "val/covering": float(np.mean(res["cov"])),
            "val/rgb_mean_best_iou": float(np.mean(res["rgb_iou"])), "val/rgb_covering": float(np.mean(res["rgb_cov"]))}


def mesh_weight_candidates(strides) -> dict[str, dict[int, float] | None]:
    """A few ways to combine the per-stride meshes: equal, ∝ 1/s, the two finest, the finest alone."""
    return {name: resolve_mesh_weights(name, strides) for name in MESH_WEIGHT_NAMES}


def select_mesh_weights(model: FeatureNet, scenes, device="cpu", candidates=None):
    """Pick the mesh combination with the best mean best IoU on ``scenes`` (use *training* scenes, then report
    held-out scores with the winner). Returns (name, weights, {name: mean best IoU}).

    Why: a stride whose cells are larger than most objects blurs every boundary it sees (at 128 px the /16 grid is
    8 x 8 cells), so the best combination depends on image and object size, not only on the model.
    """
    feats = [image_features(model, image, device) for image, _ in scenes]
    if candidates is None:
        candidates = mesh_weight_candidates(feats[0].keys())
    table = {name: float(np.mean([score_partition(f, gts, size=image.shape[:2], mesh_weights=w)[0]
                                  for f, (image, gts) in zip(feats, scenes)])) for name, w in candidates.items()}
    best = max(table, key=table.get)
    return best, candidates[best], table


def example_figure(model: FeatureNet, image: np.ndarray, gts: list[np.ndarray], device="cpu", title=None,
                   mesh_weights=None):
    """Figure: image | features per stride | the hierarchy's partition at the ground truth's count | ground truth."""
    feats = image_features(model, image, device)
    _, _, labels = score_partition(feats, gts, size=image.shape[:2], mesh_weights=mesh_weights)
    return show_features(image, feats, clusters=labels, gt=gts[0] - 1, title=title)


def partitions_figure(image: np.ndarray, features: dict, counts=(8, 32, 128), title=None):
    """Figure: one row per feature source (``{label: featlib.features.Features}``), the photo, then the hierarchy's
    partition at each segment count in ``counts`` (segments tinted, boundaries white). Same counts for every row, so
    rows compare at equal granularity; each row uses its features' own hierarchy defaults."""
    import matplotlib.pyplot as plt  # lazy: only figures need matplotlib

    rows = len(features)
    fig, axes = plt.subplots(rows, len(counts) + 1, figsize=(3.2 * (len(counts) + 1), 2.6 * rows), squeeze=False)
    for r, (label, feats) in enumerate(features.items()):
        h = build_hierarchy(feats(image), size=image.shape[:2], **feats.hierarchy_kwargs())
        axes[r, 0].imshow(image)
        axes[r, 0].set_title(label, fontsize=9)
        for c, n in enumerate(counts, 1):
            axes[r, c].imshow(label_overlay(image, h.partition(n_segments=n), alpha=0.45))
            axes[r, c].set_title(f"{label}: {n} segments", fontsize=9)
    for a in axes.ravel():
        a.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
