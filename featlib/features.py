"""Feature maps by name: one registry for every script, notebook and benchmark (cf. segment-anything's
``sam_model_registry``).

    f = featlib.features.load("lab")           # a name from names(), or a model checkpoint path
    feats = f(image)                           # image uint8 [H, W, 3] -> {stride: float32 [C_s, h_s, w_s]}
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
- any other spec is a path to a featlib model checkpoint (``model.pt`` or a run directory holding one).

An unknown name that is not an existing path is a ValueError listing the valid names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from featlib.checkpoint import load_model_checkpoint
from featlib.cluster import LEARNED_HIERARCHY
from featlib.distances import LAB_SMOOTH_SIGMA, lab_features, resolve_mesh_weights
from featlib.interactive import LEARNED_CLICKS
from featlib.model import BACKBONES, FeatureNet, build_model


@torch.no_grad()
def image_features(model: FeatureNet, image: np.ndarray, device="cpu") -> dict[int, np.ndarray]:
    """FeatureNet features of one image: uint8 [H, W, 3] -> {s: float32 [C_s, ceil(H/s), ceil(W/s)]} (numpy)."""
    model.eval()
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float().div(255).to(device)
    return {s: f[0].float().cpu().numpy() for s, f in model(x).items()}


@dataclass
class Features:
    """A named feature extractor: ``features(image uint8 [H, W, 3]) -> {stride: float32 [C, h, w]}``.

    ``model`` is the FeatureNet behind it (None for colour features); ``device`` where it runs.
    """

    name: str
    fn: Callable[[np.ndarray], dict[int, np.ndarray]]
    model: FeatureNet | None = None
    device: str | torch.device = "cpu"
    # build_hierarchy keyword defaults for these features (mesh_weights may be a name, see hierarchy_kwargs):
    # colour keeps build_hierarchy's own (tuned on Lab), FeatureNets get cluster.LEARNED_HIERARCHY
    hierarchy: dict = field(default_factory=dict)
    clicks: dict = field(default_factory=dict)  # ClickSegmenter keyword defaults, likewise (LEARNED_CLICKS)

    def hierarchy_kwargs(self, mesh_weights=None) -> dict:
        """Keyword arguments of ``build_hierarchy`` for these features; ``mesh_weights`` (a name, dict or JSON text)
        overrides the default combination. Single-map colour features have nothing to combine and ignore it."""
        return self._resolved(self.hierarchy, mesh_weights)

    def click_kwargs(self, mesh_weights=None) -> dict:
        """Keyword arguments of ``interactive.ClickSegmenter`` for these features (as ``hierarchy_kwargs``)."""
        return self._resolved(self.clicks, mesh_weights)

    def _resolved(self, defaults: dict, mesh_weights) -> dict:
        kw = dict(defaults)
        if self.model is None:
            kw.pop("mesh_weights", None)
            return kw
        spec = mesh_weights if mesh_weights is not None else kw.get("mesh_weights")
        kw["mesh_weights"] = resolve_mesh_weights(spec, self.model.strides)
        return kw

    def __call__(self, image: np.ndarray) -> dict[int, np.ndarray]:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got {image.dtype} (skimage.util.img_as_ubyte converts floats)")
        return self.fn(image)


def _colour(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Features]:
    return lambda device="cpu": Features(name, lambda image: {1: fn(image)}, None, device)


def _model_features(name: str, model: FeatureNet, device) -> Features:
    model = model.to(device).eval()
    return Features(name, lambda image: image_features(model, image, device), model, device, dict(LEARNED_HIERARCHY),
                    dict(LEARNED_CLICKS))


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
        return _model_features(name, load_model_checkpoint(path), device)

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

    return Features(f"{base.name}+{colour.name}", fn, base.model, base.device, dict(base.hierarchy), dict(base.clicks))


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
