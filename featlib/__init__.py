"""featlib: a mask-aware dense multi-stride feature space for images.

Which file holds what (one concept each), lowest layer first. Imports flow one way, down this list: a module imports
only modules above it, never below.

- ``featlib.utils``        smoke mode, ../shared lookup, numba/torch thread-count sync, freed memory kept for reuse.
- ``featlib.cli``          the scripts' command-line convention: dataset names, result paths, --workers, exit 2.
- ``featlib.weights``      strict loading of official EfficientViT-SAM image-encoder weights.
- ``featlib.model``        FeatureNet (EfficientViT backbone + MBConv decode stages), backbone registry.
- ``featlib.brightness``   the brightness MVP fitting loop.
- ``featlib.config``       TrainConfig: typed keys, YAML + overrides, validation, ConfigError.
- ``featlib.pull``         the loss's pull term and per-mask means: dense and sparse layouts, fused CPU loops.
- ``featlib.relations``    masks per stride (area-downsampling) and between each other: disjoint, contains,
                           adjacent; the pairs each push mode may push (``nested``: per stride).
- ``featlib.contrast``     the boundary contrast term: neighbouring cells a mask separates should differ (optional).
- ``featlib.loss``         multi-stride discriminative loss (De Brabandere et al. 2017): formulas, push modes,
                           tensor logs (no host sync), free-feature satisfiability.
- ``featlib.data``         SA-1B reading (folders, raw/prepared tar shards), synthetic scenes, BSDS500, click sets,
                           single-object samples, what training reads (``featlib.data.loaders``) and how its masks
                           travel to the device (``featlib.data.masks``: bit-packed rows).
- ``featlib.metrics``      covering, PRI, VI, ASA, UE, boundary P/R/F, mean best IoU, mask IoU, ODS/OIS.
- ``featlib.boundaries``   the BSDS boundary benchmark (correspondPixels): edge maps, UCMs -> ODS F, OIS F, AP.
- ``featlib.boundary_runs`` that benchmark over many images: parallel over images and maps, cached, resumable.
- ``featlib.distances``    per-stride neighbour distances combined into one full-resolution distance mesh.
- ``featlib.gaussian``     Gaussian derivative filters of image stacks as banded block products (1.6-2.5x scipy's).
- ``featlib.graphcut``     s-t min cut (scipy / PyMaxflow), boundary strength, edge watershed, region adjacency.
- ``featlib.gradients``    oriented multi-scale histogram gradients (colour, texture, learned features): boundaries.
- ``featlib.boundary_net`` a learned boundary map: a small CNN on those cues, trained on BSDS500 train boundaries.
- ``featlib.spectral``     spectral globalisation of a boundary mesh on the superpixel graph (sPb on regions).
- ``featlib.merging``      greedy region merging: mean boundary, size prior, regions' mean features.
- ``featlib.cluster``      merge hierarchy -> partitions at any granularity, baselines.
- ``featlib.click_protocol`` click simulators (centre, dt, uniform, jitter, worst/best) and one object's trajectory.
- ``featlib.click_metrics``  click robustness: NoC over seeds, ΔSB / ΔGR, IoU@1 noise-to-signal, paired bootstrap.
- ``featlib.multi_protocol`` whole-image multi-object clicks (NCI / NFO) and the one-object-at-a-time baseline.
- ``featlib.region_graph`` click segmentation's region graph: oversegmentation, node features, contrast-weighted
                           adjacency, geodesic steps, pixel nodes for regions clicked with two labels.
- ``featlib.click_energy`` click unaries per label, Potts pairwise, hard constraints -> one cut (min cut for two
                           labels, alpha-expansion for more), trust-region solve.
- ``featlib.click_update`` the update policy (pure): local piece taken for the click's label, reach, touch-up.
- ``featlib.multiclick``   many objects at once: MultiClickSegmenter (labelled clicks, one label per pixel).
- ``featlib.interactive``  click segmentation by s-t graph cut, the standard click protocol.
- ``featlib.oracle_cues`` another annotator's grouping as the click graph's cues: an upper bound for features.
- ``featlib.refine``       HILL: patch scores -> mask by graph cut.
- ``featlib.checkpoint``   training checkpoints (atomic, exact resume) and model files (weights_only).
- ``featlib.features``     the features registry: "lab", "lab-smooth", "rgb", "untrained-<backbone>", checkpoints.
- ``featlib.click_eval``   click evaluation over a dataset: clickers x seeds per object, many objects per image.
- ``featlib.viz``          feature maps as colours, label and click-mask overlays.
- ``featlib.evaluate``     scoring features by their partitions: validation, mesh-weight choice, figures.
- ``featlib.widgets``      ipywidgets explorers and the click widget for the notebooks.
- ``featlib.train``        the training loop (accelerate) and its one-batch step, LR schedule, collapse alarm.

Top-level names are imported lazily so that ``import featlib`` stays cheap.
"""

from __future__ import annotations

import importlib

from featlib import utils as _utils

__version__ = "0.1.0"
_utils.reuse_freed_memory()  # glibc keeps freed blocks <= 1 GiB for reuse: no page faults per temporary (utils)

_EXPORTS = {
    "FeatureNet": "featlib.model",
    "build_model": "featlib.model",
    "to_full_resolution": "featlib.model",
    "load_efficientvit_sam": "featlib.weights",
    "discriminative_loss": "featlib.loss",
    "MultiStrideLoss": "featlib.loss",
    "build_hierarchy": "featlib.cluster",
    "ClickSegmenter": "featlib.interactive",
    "MultiClickSegmenter": "featlib.multiclick",
    "features_to_rgb": "featlib.viz",
    "smoke_mode": "featlib.utils",
}

# In layer order (the docstring's list): tests/test_structure.py checks that imports only go up this list.
_SUBMODULES = (
    "utils", "cli", "weights", "model", "brightness", "config", "pull", "relations", "contrast", "loss", "data",
    "metrics", "boundaries", "boundary_runs", "distances", "gaussian", "graphcut", "gradients", "boundary_net",
    "spectral", "merging", "cluster",
    "click_protocol", "click_metrics", "multi_protocol", "region_graph", "click_energy", "click_update", "multiclick",
    "interactive", "oracle_cues", "refine", "checkpoint", "features", "click_eval", "viz", "evaluate", "widgets",
    "train",
)

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"featlib.{name}")
    raise AttributeError(f"module 'featlib' has no attribute {name!r}")
