"""featlib: a mask-aware dense multi-stride feature space for images.

Modules (imports flow one way: utils/metrics -> model/weights -> loss/data -> distances -> graphcut
-> cluster/interactive/refine -> train/viz/widgets):

- ``featlib.model``        FeatureNet (EfficientViT backbone + MBConv decode stages), builder registry.
- ``featlib.weights``      strict loading of official EfficientViT-SAM image-encoder weights.
- ``featlib.brightness``   the brightness MVP fitting loop.
- ``featlib.loss``         multi-stride discriminative loss (De Brabandere et al. 2017).
- ``featlib.data``         SA-1B reading (folders, raw/prepared tar shards), synthetic scenes, BSDS500, click sets,
                           single-object samples (``featlib.data.samples``).
- ``featlib.distances``    per-stride neighbour distances combined into one full-resolution distance mesh.
- ``featlib.graphcut``     s-t min cut (scipy / PyMaxflow), boundary strength, edge watershed, region adjacency.
- ``featlib.cluster``      merge hierarchy -> partitions at any granularity, baselines.
- ``featlib.metrics``      covering, PRI, VI, ASA, UE, boundary P/R/F, mean best IoU, mask IoU.
- ``featlib.interactive``  click segmentation by s-t graph cut, click simulator.
- ``featlib.refine``       HILL: patch scores -> mask by graph cut.
- ``featlib.train``        training loop pieces shared by scripts/train_accelerate.py and the notebooks.
- ``featlib.viz``          feature maps as colours, label and click-mask overlays.
- ``featlib.widgets``      ipywidgets explorers and the click widget for the notebooks.

Top-level names are imported lazily so that ``import featlib`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "FeatureNet": "featlib.model",
    "build_model": "featlib.model",
    "to_full_resolution": "featlib.model",
    "load_efficientvit_sam": "featlib.weights",
    "discriminative_loss": "featlib.loss",
    "MultiStrideLoss": "featlib.loss",
    "build_hierarchy": "featlib.cluster",
    "ClickSegmenter": "featlib.interactive",
    "features_to_rgb": "featlib.viz",
    "smoke_mode": "featlib.utils",
}

_SUBMODULES = {
    "model", "weights", "brightness", "loss", "data", "distances", "graphcut", "cluster", "metrics",
    "interactive", "refine", "train", "viz", "widgets", "utils",
}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"featlib.{name}")
    raise AttributeError(f"module 'featlib' has no attribute {name!r}")
