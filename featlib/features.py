"""Feature maps by name: one registry for every script, notebook and benchmark (cf. segment-anything's
``sam_model_registry``).

    f = featlib.features.load("lab")           # a name from names(), or a model checkpoint path
    feats = f(image)                           # image uint8 [H, W, 3] -> {stride: float32 [C_s, h_s, w_s]}
    h = f.hierarchy(image)                     # partitions at any granularity: h.partition(n_segments=30)
    seg = f.click_segmenter(image)             # click segmentation; labels=True: many objects at once
    featlib.features.DEFAULTS                  # every source's tuned defaults, one table
    featlib.features.names()                   # ['lab', 'lab-smooth', 'rgb', 'untrained-b0', ...]
    featlib.features.register("mine", factory, "what it is")   # factory(device) -> Features

Each name has one meaning:

- ``lab``: CIE Lab colour, L / 100, (a + 128) / 255, (b + 128) / 255 (``distances.lab_features``), as {1: [3, H, W]}.
  The colour baseline of the clicks and of HILL.
- ``lab-smooth``: the same, Gaussian-smoothed by sigma = 1.5 px per channel: the colour baseline of the partitions
  (``cluster.lab_hierarchy``; pixel-level colour differences are mostly noise and texture, and Felzenszwalb-
  Huttenlocher smooths likewise, sigma 0.8). 1.5 px was chosen on BSDS500 val with the hierarchy (docs/PARTITIONS.md).
- ``rgb``: raw RGB / 255 as {1: [3, H, W]} (the demo's baseline).
- ``untrained-<backbone>``, one per backbone of ``featlib.model.BACKBONES``: FeatureNet with random weights drawn
  after ``torch.manual_seed(0)`` (the caller's RNG is left untouched): a floor that learned features must clear.
- ``bsds500-b0`` and ``bsds500-b0-all``: the shipped models, FeatureNet(b0) trained on BSDS500 train with
  ``configs/bsds500.yaml`` (one annotator drawn per sample) and with its ``annotators=all push_pairs=disjoint``
  variant (every annotator's segments as overlapping instances). On held-out train images, and then on val, the first
  is better for clicks and the second for partitions: notebooks and scripts default to each where it is better. fp16
  weights in ``featlib/assets/``; data, steps, scores and research-only terms in docs/MODEL_CARD.md.
  ``bsds500-b0-all``'s hierarchy reads its features through its own boundary network (``DEFAULTS["bsds500-b0-all"]``,
  ``boundary_net.FEATURE_ASSET``); every other FeatureNet joins the chi^2 gradients as one more cue.
- any other spec is a path to a featlib model checkpoint (``model.pt`` or a run directory holding one).

An unknown name that is not an existing path is a ValueError listing the valid names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from featlib.checkpoint import load_model_checkpoint
from featlib.cluster import Hierarchy, build_hierarchy, check_map_settings, gradient_hierarchy
from featlib.distances import LAB_SMOOTH_SIGMA, lab_features, resolve_mesh_weights
from featlib.interactive import ClickSegmenter, MultiClickSegmenter
from featlib.model import BACKBONES, FeatureNet, build_model


@torch.no_grad()
def image_features(model: FeatureNet, image: np.ndarray, device="cpu") -> dict[int, np.ndarray]:
    """FeatureNet features of one image: uint8 [H, W, 3] -> {s: float32 [C_s, ceil(H/s), ceil(W/s)]} (numpy)."""
    model.eval()
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float().div(255).to(device)
    return {s: f[0].float().cpu().numpy() for s, f in model(x).items()}


# ------------------------------------------------------------------ every source's tuned defaults, one table

# kind ("colour": lab, lab-smooth, rgb; "learned": every FeatureNet; "bsds500-b0-all": the shipped partitions model,
# whose own boundary network was trained on its kind of features) -> what ``Features`` uses:
#   grouping   how ``f.hierarchy(image)`` groups pixels: "gradients" (a boundary map on oriented histogram gradients,
#              ``cluster.gradient_hierarchy``: the default partitions) or "mesh" (neighbour distances
#              of the features, ``cluster.build_hierarchy``: ~4x faster, the fast option);
#   gradients  gradient_hierarchy keywords;  mesh  build_hierarchy keywords;  clicks  ClickSegmenter keywords.
# Where each number comes from (held-out BSDS500 *train* images unless said): docs/PARTITIONS.md ("Learned boundary
# map": boundary_map "learned" with spectral 0 for colour -- covering ODS 0.652 / PRI 0.863 / VI 1.481 bits /
# boundary F 0.750 vs "chi2" 0.642 / 0.840 / 1.505 / 0.697; spectral 0.5: 0.646 / F 0.743, 1: 0.644 / F 0.733;
# size prior 128 / 512: 0.647 / 0.650; "Histogram gradients": seed spacing 8 vs 6 / 12, size prior 256 vs 64 / 1024,
# spectral weight 1 vs 0 / 0.5 / 1.5 for "chi2"; "Learned features": contrast 0.07, seed spacing 8, equal mesh) and
# docs/CLICKS.md (finest two strides, reach 2). FeatureNet sources keep "chi2" (their features join it as a cue;
# the learned map reads colour cues only). boundary_scales stays one scale (the function's default): (1.0, 0.5) for
# the watershed too (the accurate option, without NMS) gave covering ODS 0.675 / PRI 0.873 / VI 1.405 bits / F 0.750,
# less precise boundaries than merge_scales below; it is an override: f.hierarchy(image, boundary_scales=(1.0, 0.5)).
# nms: the learned map thinned by non-maximum suppression (floor 0.5) before the watershed and merging: covering ODS
# / OIS 0.659 / 0.717 vs 0.657 / 0.702, PRI 0.866 (level), VI 1.449 vs 1.454 bits, boundary F 0.759 / AP 0.823 vs
# 0.754 / 0.808.
# merge_scales (1.0, 0.5): the watershed reads the one-scale map, the merge heights the mean of it and the half-size
# image's map (both after NMS; docs/PARTITIONS.md "Merging on two scales"): covering ODS / OIS 0.679 / 0.717 vs
# 0.659 / 0.717, PRI 0.873 vs 0.866, VI 1.376 vs 1.449 bits, boundary F 0.764 / AP 0.823 vs 0.759 / 0.823 (both scales
# for both, with NMS: 0.667 / 0.713, F 0.760); on 179 Stanford Background photos covering ODS 0.603 vs 0.587, VI
# 1.754 vs 1.807 bits. It costs the half-size pass (~+30 % per build).
# boundary_scales (1.0, 2.0) with merge_scales (1.0, 0.5, 2.0) (2026-12-04; docs/PARTITIONS.md "Reading the map at
# twice the size"): the watershed reads the mean of the image's map and the 2x-upsampled image's (brought back), the
# merge heights those and the half-size map. On the 20 held-out train images: boundary F / AP (lap) 0.784 / 0.845 vs
# 0.764 / 0.823, PRI 0.876 vs 0.873, VI 1.364 vs 1.376 bits, covering ODS 0.677 vs 0.679 (the 2x map alone for the
# watershed: F 0.788, but 0.603 vs 0.610 covering on Stanford); on 358 Stanford Background photos covering ODS 0.610
# vs 0.605, PRI 0.871 vs 0.869, VI 1.707 vs 1.731 bits. Val (run once): boundary F / AP 0.708 / 0.777 vs 0.697 / 0.759,
# covering ODS 0.590 vs 0.591, PRI 0.813 vs 0.810, VI 1.621 vs 1.642 bits.
# The 2x pass reads 4x the pixels: SCALES names the cheaper settings (f.hierarchy(image, **SCALES["fast"])).
# learned "mesh": build_hierarchy's defaults for FeatureNet features, chosen on the 20
# held-out BSDS500 *train* images of the recipe's ablation model (docs/PARTITIONS.md "Learned features"): equal mesh
# (covering ODS 0.574 vs 1/s 0.558, finest two 0.555, finest 0.530), contrast 0.07 (0: 0.534, 0.01: 0.574, 0.05:
# 0.583, 0.07: 0.594, 0.1: 0.588, 0.2: 0.559), seed spacing 8 (at contrast 0.07: 4: 0.576, 6: 0.594 / VI 1.245,
# 8: 0.593 / VI 1.222 / OIS 0.631 vs 0.618); size prior 64 stays (at 0.07, 16: 0.597 but VI 1.284; at 0.01, 256: 0.566).
# Why a larger contrast floor: the loss flattens features inside segments, so internal distances are near 0 and a
# small floor lets the normalisation blow up on any flat region. The function's own defaults were tuned on Lab.
# learned "clicks": ClickSegmenter's defaults for FeatureNet features, chosen on the 19
# objects of the 20 held-out BSDS500 *train* images of the recipe's ablation model (docs/CLICKS.md "Learned
# features"): NoC@90 finest two 12.26 (27 drops) vs 1/s 12.74 (26), finest 13.16 (29), equal 14.89 (28); Lab 13.89
# (35). Why not equal, as for partitions: the /8 and /16 cells blur the boundary a click must snap to.
# reach 2 (trust region), chosen on the same objects with the annotators-all ablation model over 50 clicks: NoC@90 /
# drops (> 0.01) reach 3: 12.53 / 60 (24), 2.5: 12.63 / 39 (16), 2: 12.74 / 19 (7); Lab (reach 3) 13.89 / 49 (18).
# Learned features leak further than Lab when a mid-run click's cut is free over a wide box; reach 2 keeps both
# targets (fewer clicks and fewer drops than Lab) with room there, for 0.2 more clicks than reach 3. On val (objects
# 9-100, bsds500-b0) it gave NoC@90 12.93 vs Lab's 12.91 and 138 drops vs 230 (reach 3: 12.27, 266).
# grow 2 with grow_cap 2 (a shallow click's box doubles while its change reaches the box's side, keeping a doubled box's
# change only while it at most doubles the own box's; docs/CLICKS.md "Capping the growth"), chosen on the same 19
# held-out objects with bsds500-b0 (3 seeds, 100 clicks): NoC@90 centre / dt / jitter:10 13.11 / 15.96 / 15.58 ->
# 12.47 / 14.68 / 14.23, clicks losing > 1 IoU point 0.42 / 0.91 % -> 0.63 / 1.14 % (cap 4: 12.16 / 14.11 / 13.32 but
# jitter drops 2.18 %; no cap: 2.58 / 3.05 %). On val (objects 9-30, run once): 12.23 / 15.39 / 14.52 -> 11.32 / 14.48
# / 13.17, drops 0.86 / 1.17 / 1.17 %. Lab keeps the plain box: with the same setting its train dt drops are 2.11 %.
# The learned map's working resolution (longer side, px): the cues' radii and the network are BSDS500's scale
# (481 x 321, read as it is); a larger photo's map is computed at this size and the hierarchy drawn at full size. On the
# 20 held-out BSDS500 train images upscaled 2x (GT too), covering ODS 0.681 at 512 vs 0.648 at full size; 3x: 0.666
# at 512, 0.648 at 1024, 0.634 at full size (docs/PARTITIONS.md "Large photos"). f.hierarchy(image, max_side=0): full
# size. The histogram gradients (chi2, FeatureNets' grouping) the same since the eighteenth session: the 2x images
# with Lab, covering ODS / PRI / VI 0.635 / 0.841 / 1.526 bits at 512 vs 0.624 / 0.858 / 1.559 at full size (as they
# are: 0.642 / 0.840 / 1.505), with bsds500-b0 0.628 / 0.843 / 1.544 vs 0.619 / 0.847 / 1.569, half the time.
MAX_SIDE = 512
# The learned map's scales, named (the first is colour's and bsds500-b0-all's default; BENCHMARKS.md "partitions"):
# "two-scale merge" the default until 2026-12-04 (no 2x pass), "fast" one scale throughout.
SCALES = {"default": {"boundary_scales": (1.0, 2.0), "merge_scales": (1.0, 0.5, 2.0)},
          "two-scale merge": {"boundary_scales": (1.0,), "merge_scales": (1.0, 0.5)},
          "fast": {"boundary_scales": (1.0,), "merge_scales": (1.0,)}}
# Colour's clicks: the click graph also reads the learned boundary map (ClickSegmenter boundary_map; its weights and
# geodesics: multiclick.BOUNDARY_TAU / BOUNDARY_GEO), with a stiffer Potts term, lam 24 instead of 8: the map makes
# leaks rarer, so colour can now afford the capped growth the learned sources use (grow 2, grow_cap 2). On the 19
# held-out train objects (the network never saw them; Lab, 3 seeds, 100 clicks; docs/CLICKS.md "The learned boundary
# map in the click graph") NoC@90 centre / dt / jitter:10, drops > 1 point (dt): no map 13.89 / 16.09 / 14.89, 1.58 %;
# map, lam 16 12.47 / 14.46 / 13.89, 1.12 %; + grow 2 / cap 2 12.16 / 13.70 / 13.51, 1.25 % (cap 3: 12.11 / 13.46 /
# 13.39, 1.58 %; reach 5 instead: 12.26 / 13.81 / 13.32, 1.93 %); lam 24 11.84 / 13.28 / 13.35, 1.02 % (lam 32:
# 11.68 / 13.51 / 12.72, 0.98 %). Val objects 9-30 (run once): 12.45 / 15.02 / 14.09, 1.41 % -> 11.45 / 13.62 /
# 13.32, 1.05 %. The map alone raises the first click's noise-to-signal (20 seeds of the first dt click; held-out
# 31.6 -> 43.3, val 32.3 -> 43.1): crisp boundaries make one click take the part it lands on. So an object's lone first
# click now stands for its segment of 25 (lone_click_segments, an option since 2026-12-03 that cost ~1 click without
# the map): held-out 11.37 / 13.67 / 12.79, 1.21 %, first-click nsr 16.2; val (run once) 11.64 / 13.42 / 12.94, 1.32 %,
# nsr 19.7, dt's excess over centre clicks 15.4 % (was 20.6 %), jitter's 11.2 %.
# FeatureNet sources keep their defaults: bsds500-b0 with the same map and lam 24 on val 9-30: 12.09 / 14.47 / 14.20
# vs 11.32 / 14.48 / 13.17 (fewer drops, 0.77 vs 1.17 %, but no fewer clicks; its features already carry BSDS500's
# boundaries); with its own lam 8, held-out 12.11 / 14.33 / 13.88 vs 12.47 / 14.68 / 14.23, but val 11.82 / 14.98 /
# 13.77. max_side: the map's and the lone click's partition's working resolution (a 1920 x 1080 photo's precompute
# 22 s -> 9 s; 19 held-out objects enlarged to 854 px: 12.47 / 14.49 / 13.11 -> 12.11 / 14.28 / 12.93; docs/CLICKS.md
# "Large photos").
# touch_up_disc 6 (2026-12-05): a touch-up click may take the cut's change within 6 px of it, not only its empty disc
# (a loose click on an error's rim corrected a pixel or two). Held-out 19 (3 seeds): NoC@90 within 100 centre / dt /
# jitter:10 18.32 / 26.07 / 28.12 -> 16.00 / 22.39 / 21.46, within 20 unchanged; val 9-30 (once) 15.32 / 23.41 / 23.64
# -> 14.91 / 21.59 / 21.18, bsds500-b0 16.45 / 30.26 / 32.30 -> 15.50 / 27.05 / 27.95; drops over 1 point unchanged,
# falls under 0.1 point after ~15 % of clicks. touch_up 3 (both sources): a click 3-4.5 px from its label does better
# as an ordinary click; val 9-30 within 100 colour 14.91 / 21.59 / 21.18 -> 14.86 / 19.47 / 20.02, bsds500-b0 15.50 /
# 27.05 / 27.95 -> 15.36 / 24.79 / 26.45; drops <= 1.53 % (docs/CLICKS.md "Touch-ups for loose clicks", "A lower
# touch-up threshold").
CLICK_BOUNDARY = {"boundary_map": "learned", "max_side": MAX_SIDE, "lam": 24.0}
TOUCH_UPS = {"touch_up_disc": 6.0, "touch_up": 3.0}  # both sources (above)
DEFAULTS: dict[str, dict] = {
    "colour": {
        "grouping": "gradients",
        "gradients": {"boundary_map": "learned", "seed_spacing": 8, "size_prior": 256.0, "spectral": 0.0,
                      "nms": True, **SCALES["default"], "max_side": MAX_SIDE},
        "mesh": {},  # build_hierarchy's own defaults, tuned on Lab (seed spacing 6, size prior 64, contrast 0.01)
        # ClickSegmenter's own defaults, tuned on Lab (reach 3), plus the learned boundary map and touch-ups (above)
        "clicks": {**CLICK_BOUNDARY, "grow": 2, "grow_cap": 2.0, "lone_click_segments": 25, **TOUCH_UPS},
    },
    "learned": {
        "grouping": "gradients",
        "gradients": {"boundary_map": "chi2", "seed_spacing": 8, "size_prior": 256.0, "spectral": 1.0,
                      "feature_weight": 1.0, "max_side": MAX_SIDE},
        "mesh": {"mesh_weights": "equal", "contrast": 0.07, "seed_spacing": 8},
        "clicks": {"mesh_weights": "finest two", "reach": 2.0, "grow": 2, "grow_cap": 2.0, **TOUCH_UPS},
    },
}
# "bsds500-b0-all": the learned boundary map that also reads the model's features (boundary_net.FEATURE_ASSET,
# trained on cross-fitted features of the same recipe; docs/PARTITIONS.md "Learned features on the learned map"),
# grouped as colour: spectral 0, NMS, merge heights read the mean of its own map and the colour network's map of the
# half-size image (features exist at the image's own scale). On the 20 held-out train images, with a fold model's
# features and one scale without NMS: covering ODS 0.676 vs 0.654 for the same script's colour-only network, VI 1.375
# vs 1.444 bits, boundary F (lap) 0.759 vs 0.760; chi2 + the learned cue had given 0.636. NMS and the two-scale merge
# were chosen on 358 Stanford Background photos (its fold models are not kept, and the held-out train images are in
# the shipped model's training set; docs/PARTITIONS.md "The shipped partitions model, merged on two scales"):
# covering ODS 0.609 vs 0.599 one scale without NMS, VI 1.708 vs 1.747 bits (NMS alone 0.602; the half scale read by
# this network on the half-size image's features 0.608 / 1.714; colour's default 0.604 / 1.732). Colour's 2x map
# too since the eleventh session (its scale-1 map stays its own): on the same photos covering ODS 0.613 vs 0.609, PRI
# 0.872 vs 0.870, VI 1.691 vs 1.709 bits; val covering 0.599 vs 0.597, VI 1.602 vs 1.612 bits, boundary F 0.713 (lap
# matcher) vs 0.697. Its other rows are every FeatureNet's.
# region_weight 4 (featlib.merging: the merge cost also reads how far apart two regions' mean features are, for
# regions above ~250 px; twelfth session, docs/PARTITIONS.md "Regions' mean features in the merging"): chosen on 179
# Stanford Background photos (ids[0::4]) -- covering ODS / PRI / VI 0.603 / 0.865 / 1.723 bits -> 0.617 / 0.869 /
# 1.667 (lambda 2: 0.614, 8: 0.614; a 64 / 1000 px: 0.616 / 0.612; mean Lab colour instead of the features, on
# colour's default: 0.606 -> 0.608, or 0.611 added rather than multiplied) -- and confirmed on the 179 others
# (ids[2::4]): 0.623 / 0.879 / 1.660 -> 0.633 / 0.887 / 1.569, covering OIS 0.664 -> 0.687. Val (run once): covering
# ODS 0.599 -> 0.607, PRI 0.813 -> 0.821, VI 1.602 -> 1.557 bits, boundary F 0.713 -> 0.707 (0.713: lap matcher;
# 0.707: lap and the exact benchmark alike).
DEFAULTS["bsds500-b0-all"] = {**DEFAULTS["learned"],
                              "gradients": {**DEFAULTS["colour"]["gradients"], "region_weight": 4.0}}
GROUPINGS = ("gradients", "mesh")
_KEYS = {"gradients": {"boundary_map", "seed_spacing", "size_prior", "spectral", "feature_weight", "cue_weights",
                       "boundary_scales", "boundary_net", "nms", "merge_scales", "max_side", "region_weight",
                       "region_area"},
         "mesh": {"mesh_weights", "seed_spacing", "size_prior", "contrast", "connectivity"}}


@dataclass
class Features:
    """A named feature extractor, and the entry point to everything built on features.

        feats = f(image)                    # uint8 [H, W, 3] -> {stride: float32 [C, h, w]}
        h = f.hierarchy(image)              # the default partitions: h.partition(n_segments=30), h.ucm()
        h = f.hierarchy(image, grouping="mesh")   # the fast grouping
        seg = f.click_segmenter(image)      # ClickSegmenter with this source's defaults
        seg = f.click_segmenter(image, labels=True)   # MultiClickSegmenter (many objects)

    ``model`` is the FeatureNet behind it (None for colour features); ``device`` where it runs; ``kind`` its row of
    ``DEFAULTS`` ("colour", "learned", or "bsds500-b0-all" for the shipped partitions model).
    """

    name: str
    fn: Callable[[np.ndarray], dict[int, np.ndarray]]
    model: FeatureNet | None = None
    device: str | torch.device = "cpu"
    kind: str = "colour"

    @property
    def defaults(self) -> dict:
        """This source's row of ``DEFAULTS``."""
        return DEFAULTS[self.kind]

    def hierarchy_kwargs(self, mesh_weights=None) -> dict:
        """Keyword arguments of ``build_hierarchy`` (the "mesh" grouping) for these features; ``mesh_weights`` (a
        name, dict or JSON text) overrides the default combination. Single-map colour features have nothing to
        combine and ignore it."""
        return self._resolved(self.defaults["mesh"], mesh_weights)

    def click_kwargs(self, mesh_weights=None) -> dict:
        """Keyword arguments of ``ClickSegmenter`` / ``MultiClickSegmenter`` for these features (as above)."""
        return self._resolved(self.defaults["clicks"], mesh_weights)

    def hierarchy_settings(self, grouping: str | None = None, **overrides) -> tuple[str, dict]:
        """(grouping, keywords) that ``hierarchy`` uses: the defaults, then ``overrides`` (None values ignored)."""
        grouping = grouping or self.defaults["grouping"]
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(overrides) - _KEYS[grouping]
        if unknown:
            raise ValueError(f"the {grouping} grouping takes no {sorted(unknown)} "
                             f"(its settings: {sorted(_KEYS[grouping])})")
        if grouping == "mesh":
            kw = self.hierarchy_kwargs(overrides.pop("mesh_weights", None))
        else:
            kw = dict(self.defaults["gradients"])
            if self.model is None:
                kw.pop("feature_weight", None)
            if overrides.get("boundary_map") == "chi2":  # the learned map's defaults; chi2 has none of them
                for key in ("nms", "boundary_scales", "merge_scales"):
                    if key not in overrides:
                        kw.pop(key, None)
        kw = {**kw, **overrides}
        if grouping == "gradients" and kw.get("region_weight", 0) > 0 and self.model is None:
            raise ValueError(f"region_weight compares regions' mean FeatureNet features: {self.name!r} has none")
        if grouping == "gradients":  # what gradient_hierarchy would refuse, refused before any image is read
            keys = ("boundary_map", "boundary_scales", "boundary_net", "cue_weights", "nms", "merge_scales",
                    "max_side")
            check_map_settings(**{k: kw[k] for k in keys if k in kw})
        return grouping, kw

    def hierarchy(self, image: np.ndarray, grouping: str | None = None, features=None, **overrides) -> Hierarchy:
        """The merge hierarchy of one image uint8 [H, W, 3] with this source's defaults (``overrides`` win).

        ``features``: this source's features of ``image`` when already computed (saves a forward pass)."""
        image = _check_image(image)
        grouping, kw = self.hierarchy_settings(grouping, **overrides)
        if grouping == "mesh":
            return build_hierarchy(self.fn(image) if features is None else features, size=image.shape[:2], **kw)
        if self.model is None:
            return gradient_hierarchy(image, **kw)
        if kw.get("boundary_map") == "learned":  # the network weighs the feature channels itself
            kw.pop("feature_weight", None)
        return gradient_hierarchy(image, self.fn(image) if features is None else features, **kw)

    def click_segmenter(self, image: np.ndarray, labels: bool = False, features=None, **overrides):
        """A ``ClickSegmenter`` (``labels=True``: a ``MultiClickSegmenter``) on ``image`` with this source's
        defaults, ``overrides`` winning (``mesh_weights`` may be a name)."""
        image = _check_image(image)
        kw = self.click_kwargs(overrides.pop("mesh_weights", None))
        kw.update({k: v for k, v in overrides.items() if v is not None})
        cls = MultiClickSegmenter if labels else ClickSegmenter
        return cls(self.fn(image) if features is None else features, image, **kw)

    def _resolved(self, defaults: dict, mesh_weights) -> dict:
        kw = dict(defaults)
        if self.model is None:
            kw.pop("mesh_weights", None)
            return kw
        spec = mesh_weights if mesh_weights is not None else kw.get("mesh_weights")
        kw["mesh_weights"] = resolve_mesh_weights(spec, self.model.strides)
        return kw

    def __call__(self, image: np.ndarray) -> dict[int, np.ndarray]:
        return self.fn(_check_image(image))


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype} (skimage.util.img_as_ubyte converts floats)")
    return image


def _colour(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Features]:
    return lambda device="cpu": Features(name, lambda image: {1: fn(image)}, None, device)


def _model_features(name: str, model: FeatureNet, device, kind: str = "learned") -> Features:
    model = model.to(device).eval()
    return Features(name, lambda image: image_features(model, image, device), model, device, kind)


def _untrained(backbone: str) -> Callable[..., Features]:
    def factory(device="cpu") -> Features:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_model(backbone)
        return _model_features(f"untrained-{backbone}", model, device)

    return factory


ASSETS = Path(__file__).parent / "assets"
SHIPPED = {"bsds500-b0": "bsds500-b0.pt", "bsds500-b0-all": "bsds500-b0-all.pt"}  # name -> file in ASSETS


def _shipped(name: str) -> Callable[..., Features]:
    def factory(device="cpu") -> Features:
        path = ASSETS / SHIPPED[name]
        if not path.is_file():
            raise FileNotFoundError(f"shipped weights of {name!r} are missing: {path} (a git checkout has them)")
        return _model_features(name, load_model_checkpoint(path), device, name if name in DEFAULTS else "learned")

    return factory


_REGISTRY: dict[str, tuple[Callable[..., Features], str]] = {
    "lab": (_colour("lab", lab_features), "CIE Lab colour scaled to about [0, 1], {1: [3, H, W]}"),
    "lab-smooth": (_colour("lab-smooth", lambda image: lab_features(image, LAB_SMOOTH_SIGMA)),
                   f"CIE Lab, Gaussian sigma {LAB_SMOOTH_SIGMA} px"),
    "rgb": (_colour("rgb", lambda image: image.astype(np.float32).transpose(2, 0, 1) / 255), "RGB / 255"),
    **{f"untrained-{b}": (_untrained(b), f"FeatureNet({b}), random weights (seed 0)") for b in BACKBONES},
    "bsds500-b0": (_shipped("bsds500-b0"), "FeatureNet(b0) trained on BSDS500 train, one annotator per sample "
                   "(configs/bsds500.yaml; docs/MODEL_CARD.md), shipped fp16: the clicks' and HILL's default"),
    "bsds500-b0-all": (_shipped("bsds500-b0-all"), "the same recipe with every annotator's segments as overlapping "
                       "instances (docs/MODEL_CARD.md), shipped fp16: the partitions' default"),
}


def names() -> list[str]:
    """Every registered name (a checkpoint path is accepted by ``load`` as well)."""
    return list(_REGISTRY)


def describe() -> dict[str, str]:
    """{name: one-line meaning} of every registered name (for --help texts)."""
    return {k: doc for k, (_, doc) in _REGISTRY.items()}


def register(name: str, factory: Callable[..., Features], doc: str) -> None:
    """Add a named extractor: ``factory(device="cpu") -> Features``. Names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"feature name {name!r} is already registered")
    _REGISTRY[name] = (factory, doc)


def with_colour(base: Features, colour: Features) -> Features:
    """``base``'s features with ``colour``'s map concatenated to its finest stride's channels ("bsds500-b0+lab-smooth").

    The finest stride's neighbour distance becomes sqrt((D_a d_a^2 + D_b d_b^2) / (D_a + D_b)) of the two per-map
    distances d (each already / sqrt(D)): an L2 blend in which each map counts by its channel count, so every
    consumer (hierarchy, clicks, HILL) sees one feature space. A combination to report *beside* the learned features,
    never instead of them.
    """
    if colour.model is not None:
        raise ValueError(f"with_colour: {colour.name!r} is not a single colour map")

    def fn(image):
        feats = dict(base(image))
        s = min(feats)
        c = colour(image)[1]
        if s != 1 or feats[s].shape[1:] != c.shape[1:]:
            raise ValueError(f"with_colour: finest stride {s} of {base.name!r} is not full resolution")
        feats[s] = np.concatenate([feats[s], c.astype(feats[s].dtype)], axis=0)
        return feats

    # a source-specific row (a boundary network trained on the model's own features) does not carry over
    return Features(f"{base.name}+{colour.name}", fn, base.model, base.device,
                    "learned" if base.model is not None else base.kind)


def load(spec: str | Path, device: str | torch.device = "cpu") -> Features:
    """A registered name, or a path to a featlib model checkpoint -> ``Features``. ValueError otherwise."""
    spec = str(spec)
    if spec in _REGISTRY:
        return _REGISTRY[spec][0](device)
    path = Path(spec)
    if path.is_file() or (path.is_dir() and (path / "model.pt").is_file()):
        return _model_features(spec, load_model_checkpoint(path), device)
    if "+" in spec:  # "A+B": B's single colour map appended to A's finest stride (see with_colour)
        base, colour = spec.rsplit("+", 1)
        return with_colour(load(base, device), load(colour, device))
    raise ValueError(f"unknown features {spec!r}: not a registered name nor a model checkpoint; "
                     f"names: {', '.join(names())}")
