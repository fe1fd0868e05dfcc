"""Many objects at once: click segmentation where each click carries a label, and one cut labels every pixel.

    seg = MultiClickSegmenter(features, image)   # FeatureNet dict {s: [C, h, w]} for ONE image, or [C, H, W] (Lab)
    seg.add_click(120, 200, 1)                   # object 1; labels 1..K are objects, K grows with new labels
    seg.add_click(60, 40, 2)                     # object 2
    seg.add_click(10, 10, 0)                     # background
    seg.labels                                   # int32 [H, W], 0 = background
    seg.mask_of(2)                               # bool [H, W]
    seg.undo(); seg.reset()

The same pieces as the binary ``featlib.interactive.ClickSegmenter`` (docs/CLICKS.md "Structure", "Many objects at
once"), with L = 1 + (number of object labels clicked) labels instead of two:

- ``featlib.region_graph``: the oversegmentation's region graph; a region holding clicks of two labels is split
  into pixel nodes.
- ``featlib.click_energy``: per label l the distance ``D_l`` to l's clicks (the background's also to the image
  border), unary ``area * D_l / (D_l + D_-l)`` (``D_-l``: the nearest other label), Potts pairwise ``lam * w``,
  clicked nodes hard-constrained; one multi-label cut by alpha-expansion (Boykov, Veksler & Zabih 2001; each move
  one ``featlib.graphcut.min_cut``), within a factor 2 of the optimal energy.
- ``featlib.click_update``: a click for label k applies only the 4-connected piece of pixels the cut takes FOR k that
  holds the click, within the same trust region (``reach``; seeded with ``seed_segments``) and touch-up disc as the
  binary update.

Guarantees (tested): every clicked pixel keeps its label after every later click; a click for label k changes only
pixels to k (every pixel not labelled k after the click keeps its previous label); with one object label (K = 1)
the labels are the binary segmenter's mask on the same clicks, pixel for pixel (label 1 = positive, 0 = negative:
the same energy, the same single min cut, the same policy). A first click of label 0 is allowed (all background until
an object is clicked); a click on an already-clicked pixel replaces that click. An object label whose clicks have
all been replaced keeps its pixels until other labels' clicks take them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from featlib.boundary_net import boundary_probability, working_copy, working_scale
from featlib.click_energy import ClickCut
from featlib.click_update import (
    apply_click,
    check_click,
    check_policy,
    click_radius,
    reaches_edge,
    seeded_trust,
    trust_box,
)
from featlib.cluster import check_map_settings, gradient_hierarchy, hierarchy_from_mesh
from featlib.region_graph import ImageGraph, check_boundary_settings, check_image

# How a boundary map (``boundary_map``) enters the click graph (``featlib.region_graph``): Potts weights
# x exp(-p / TAU), geodesic steps + GEO x p in units of the image's mean mesh distance. Chosen with the learned map on
# the 19 objects of the 20 held-out BSDS500 train images (the network never saw them; Lab, 3 seeds, NoC@90 centre /
# dt over 20 clicks; docs/CLICKS.md "The learned boundary map in the click graph"): weights alone, lam 16, TAU 0.1 /
# 0.2: 13.63 / 15.00, 13.47 / 15.28 (x (1 - p), lam 8: 13.89 / 16.26; no map: 13.89 / 16.09); with the weights (TAU
# 0.1, lam 16) GEO 1 / 2 / 4: 12.84 / 14.91, 12.47 / 14.46, 12.89 / 14.35.
BOUNDARY_TAU = 0.1
BOUNDARY_GEO = 2.0


@dataclass
class LabelClick:
    """A click at pixel (y, x) for ``label`` (0 = background, 1..K objects)."""

    y: int
    x: int
    label: int


def _check_hierarchy(hierarchy, image):
    """``hierarchy`` as the segmenters take it -> itself (a mapping copied): None; an object with
    ``partition(n_segments=...)`` (a ``featlib.cluster.Hierarchy``); or a mapping of ``gradient_hierarchy``'s keywords
    but ``features`` (checked here, before any precompute; it reads ``image``, which must be given). Else ValueError."""
    if hierarchy is None or (not isinstance(hierarchy, Mapping) and callable(getattr(hierarchy, "partition", None))):
        return hierarchy
    if not isinstance(hierarchy, Mapping):
        raise ValueError("hierarchy must be None, a dict of featlib.cluster.gradient_hierarchy keywords or a "
                         f"Hierarchy (anything with .partition(n_segments=...)), got {type(hierarchy).__name__}")
    if image is None:
        raise ValueError("a hierarchy given as gradient_hierarchy keywords is drawn on the image: pass image=")
    keywords = set(inspect.signature(gradient_hierarchy).parameters) - {"image", "features"}
    unknown = set(hierarchy) - keywords
    if unknown:
        raise ValueError(f"hierarchy: gradient_hierarchy takes no {sorted(unknown)} here (its keywords: "
                         f"{sorted(keywords)}; for a features' hierarchy pass the Hierarchy itself)")
    if hierarchy.get("region_weight", 0) > 0:
        raise ValueError("hierarchy: region_weight > 0 compares regions' mean features: pass the features' "
                         "Hierarchy itself (Features.hierarchy(image))")
    map_keys = set(inspect.signature(check_map_settings).parameters)
    check_map_settings(**{k: v for k, v in hierarchy.items() if k in map_keys})
    return dict(hierarchy)


def click_partitions(image: np.ndarray | None, mesh, hierarchy, counts, max_side: int | None = None
                     ) -> dict[int, np.ndarray]:
    """{n: int [H, W]} for each n in ``counts``: the partition into n segments that the segmenters' ``seed_segments``
    and ``lone_click_segments`` cut, from ``hierarchy`` (as ``_check_hierarchy`` returns it): a Hierarchy, used as it
    is; a dict of ``gradient_hierarchy`` keywords or None (its defaults), drawn on ``image``; None without an image:
    the "mesh" grouping of the features' ``mesh``.

    ``max_side``: the working resolution. A drawn hierarchy is built on a copy of the image whose longer side is
    ``max_side`` (``boundary_net.working_scale``, anti-aliased) and its partitions are brought back nearest-neighbour:
    the histogram-gradient cues' radii are BSDS500's scale (a photo read larger looks at texture instead of objects:
    docs/PARTITIONS.md "Large photos"), and the build costs what a ``max_side`` image costs (a 1920 x 1080 photo:
    ~22 s at full size). A segment's border only decides which regions stand for a lone click (those with more than
    half their pixels in it) and where a seed's box lies; the masks' borders are the cut's, at full resolution
    (docs/CLICKS.md "Large photos")."""
    if hierarchy is not None and not isinstance(hierarchy, Mapping):
        return {n: hierarchy.partition(n_segments=n) for n in counts}
    if image is None:
        h = hierarchy_from_mesh(mesh)
        return {n: h.partition(n_segments=n) for n in counts}
    work, base = working_copy(image, max_side)
    h = gradient_hierarchy(work, **(hierarchy or {}))
    parts = {n: h.partition(n_segments=n) for n in counts}
    if base == 1:
        return parts
    (height, width), (h0, w0) = image.shape[:2], next(iter(parts.values())).shape
    rows = np.minimum(((np.arange(height) + 0.5) * h0 / height).astype(np.intp), h0 - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w0 / width).astype(np.intp), w0 - 1)
    return {n: p[rows[:, None], cols[None, :]] for n, p in parts.items()}


class CutSegmenter:
    """What both click segmenters share: the checked settings, the image's region graph and its cut.

    Subclasses (``featlib.interactive.ClickSegmenter``, ``MultiClickSegmenter``) define ``reset`` (their empty
    state) and ``add_click``. Args and their defaults: ``ClickSegmenter``'s docstring.
    """

    def __init__(
        self,
        features,
        image: np.ndarray | None = None,
        *,
        mesh_weights: Mapping[int, float] | None = None,
        region_spacing: int = 4,
        lam: float = 8.0,
        geo_weight: float = 1.0,
        border_margin: float = 0.2,
        backend: str = "auto",
        local: bool = True,
        reach: float | None = 3.0,
        touch_up: float = 4.5,
        touch_up_disc: float = 0.0,
        escalate_within: float = 0.0,
        seed_segments: int | None = None,
        lone_click_segments: int | None = None,
        grow: int = 0,
        grow_cap: float = float("inf"),
        boundary_map=None,
        boundary_tau: float | None = BOUNDARY_TAU,
        boundary_geo: float = BOUNDARY_GEO,
        max_side: int | None = None,
        hierarchy=None,
    ):
        self.image, size = check_image(image)
        check_boundary_settings(boundary_tau, boundary_geo)
        check_policy(reach, touch_up, touch_up_disc)
        if not escalate_within >= 0:  # also refuses NaN
            raise ValueError(f"escalate_within must be >= 0 px, got {escalate_within!r}")
        ClickCut.check_args(lam, geo_weight, border_margin, backend)  # before the precompute, which takes a while
        hierarchy = _check_hierarchy(hierarchy, self.image)
        working_scale((1, 1), max_side)  # ValueError for a bad max_side, before the precompute
        for name, value in (("seed_segments", seed_segments), ("lone_click_segments", lone_click_segments)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")
        if isinstance(grow, bool) or not isinstance(grow, (int, np.integer)) or grow < 0:
            raise ValueError(f"grow must be an integer >= 0, got {grow!r}")
        if not grow_cap >= 1:  # also refuses NaN
            raise ValueError(f"grow_cap must be >= 1 (a ratio of changed areas; inf: no cap), got {grow_cap!r}")
        if isinstance(boundary_map, str):  # "off": so that f.click_segmenter(image, boundary_map="off") turns it off
            if boundary_map not in ("learned", "off"):
                raise ValueError(f"boundary_map must be None / 'off', 'learned' or a float [H, W] map, "
                                 f"got {boundary_map!r}")
            if boundary_map == "learned" and self.image is None:
                raise ValueError("boundary_map='learned' reads the image: pass image=")
            boundary_map = None if boundary_map == "off" else boundary_probability(self.image, max_side=max_side)
        self.boundary_map = boundary_map
        self.graph = ImageGraph(features, mesh_weights=mesh_weights, size=size, region_spacing=region_spacing,
                                boundary=boundary_map, boundary_tau=boundary_tau, boundary_geo=boundary_geo)
        self.mesh, self.shape = self.graph.mesh, self.graph.shape
        self.backend, self.lam = backend, float(lam)
        self.geo_weight, self.border_margin = float(geo_weight), float(border_margin)
        self.local = bool(local)
        self.reach = None if reach is None else float(reach)
        self.touch_up, self.touch_up_disc = float(touch_up), float(touch_up_disc)
        self.escalate_within = float(escalate_within)
        self.seed_segments, self.lone_click_segments, self.grow = seed_segments, lone_click_segments, int(grow)
        self.grow_cap = float(grow_cap)
        # Partitions of the image, when asked for: the seeds of the trust regions (click_update.seeded_trust; None:
        # click-centred boxes, trust_box) and the segments a lone first click stands for (click_energy). Both are
        # cuts of one hierarchy: ``hierarchy`` (a Hierarchy, or gradient_hierarchy's keywords), else the
        # histogram-gradient hierarchy of the image when there is one, else the "mesh" grouping of the features' mesh.
        seeded = bool(self.local and self.reach and seed_segments)
        counts = [n for n in (seed_segments if seeded else None, lone_click_segments) if n]
        parts = click_partitions(self.image, self.mesh, hierarchy, counts, max_side) if counts else {}
        self.seed_map = parts[seed_segments] if seeded else None
        segments = parts[lone_click_segments] if lone_click_segments else None
        self.cut = ClickCut(self.graph, lam, geo_weight, border_margin, backend, segments=segments)
        self.reset()
        self.last_update_s = 0.0

    def reset(self):
        raise NotImplementedError

    def _trust(self, labels: np.ndarray, label, y: int, x: int) -> tuple[float, tuple | None, np.ndarray | None]:
        """(r, box, within) of a click for ``label`` at (y, x) on ``labels`` (``featlib.click_update``)."""
        r = click_radius(labels == label, y, x) if self.local else float("inf")
        if self.seed_map is None:
            if r < self.touch_up and self._clicked_near(label, y, x):
                r = self.touch_up  # escalation: the touch-up here fell short, so this click gets a box
            return r, trust_box(y, x, r, self.reach, self.shape), None
        return (r, *seeded_trust(labels, label, y, x, r, self.seed_map, self.reach))

    def _clicked_near(self, label, y: int, x: int) -> bool:
        """Whether an earlier click of ``label`` lies within ``escalate_within`` px of (y, x) (never when 0)."""
        e = self.escalate_within
        return e > 0 and any(c.label == label and (c.y - y) ** 2 + (c.x - x) ** 2 <= e * e for c in self.clicks)

    def _policy_update(self, labels: np.ndarray, label, y: int, x: int, solve) -> np.ndarray:
        """The labels after a click for ``label`` at (y, x): ``solve(box)`` -> the cut's label map (box None: global),
        in the click's trust region, then the policy (``featlib.click_update``). With ``grow``: while the applied
        change reaches the box's inner sides, the box is doubled and solved again, up to ``grow`` times, keeping a
        doubled box's change only while it is at most ``grow_cap`` times the click's own box's change (click-centred
        boxes only, not for touch-ups)."""
        r, box, within = self._trust(labels, label, y, x)
        new = self._apply(labels, solve(box), y, x, label, r, within)
        if not self.grow or box is None or within is not None or r < self.touch_up:
            return new
        change = new != labels
        own = int(change.sum())
        for k in range(1, self.grow + 1):
            if not reaches_edge(change, box):
                break
            box = trust_box(y, x, r * 2**k, self.reach, self.shape)
            grown = self._apply(labels, solve(box), y, x, label, r, within)
            grown_change = grown != labels
            if grown_change.sum() > self.grow_cap * own:
                break  # the larger box's change outgrows what the click's own box supports: keep the smaller
            new, change = grown, grown_change
        return new

    def _apply(self, labels, cut, y, x, label, r, within) -> np.ndarray:
        if not self.local:
            return cut
        return apply_click(labels, cut, y, x, label, r, self.touch_up, within, self.touch_up_disc)


class MultiClickSegmenter(CutSegmenter):
    """Interactive multi-object segmentation of one image: every pixel gets one label, 0 = background.

    Args: as ``featlib.interactive.ClickSegmenter`` (same names, meanings and defaults, with the same sources:
    ``mesh_weights``, ``region_spacing`` 4, ``lam`` 8.0, ``geo_weight`` 1.0, ``border_margin`` 0.2, ``backend``,
    ``local`` True, ``reach`` 3.0, ``touch_up`` 4.5, ``touch_up_disc`` 0, ``escalate_within`` 0, ``seed_segments``
    None, ``lone_click_segments`` None: here each object's first click, ``grow`` 0, ``grow_cap`` inf,
    ``boundary_map`` None, ``boundary_tau`` 0.1, ``boundary_geo`` 2.0, ``max_side`` None, ``hierarchy`` None), so
    ``Features.click_kwargs()`` applies unchanged. Without ``local`` the labels are the whole cut after each click
    (every clicked pixel still keeps its label, but other pixels may change to any label). ``seed_map``: the
    partition seeding the trust regions, or None.

    Attributes: ``labels`` int32 [H, W]; ``clicks`` list of ``LabelClick``; ``shape`` (H, W); ``n_objects`` (K, the
    largest object label clicked); ``last_update_s``; ``last_cuts`` (min cuts of the last click).
    """

    def __init__(self, features, image: np.ndarray | None = None, **kwargs):
        super().__init__(features, image, **kwargs)
        self.last_cuts = 0

    @property
    def n_objects(self) -> int:
        """K: the largest object label among the clicks (0 without object clicks)."""
        return max((c.label for c in self.clicks), default=0)

    def mask_of(self, label: int) -> np.ndarray:
        """bool [H, W]: the pixels of ``label`` (0 = background)."""
        return self.labels == _check_label(label)

    def add_click(self, y: int, x: int, label: int) -> np.ndarray:
        """Add a click for ``label`` at pixel (y, x) and update ``labels`` (int32 [H, W], returned).

        ValueError for a label < 0 (or not an integer) or a click outside the image.
        """
        label = _check_label(label)
        y, x = check_click(y, x, self.shape)
        t0 = time.perf_counter()
        click = LabelClick(y, x, label)
        if self.local and self.labels[y, x] == label:
            new, self.last_cuts = self.labels.copy(), 0  # the policy keeps every pixel: no cut needed
        else:
            new, self.last_cuts = self._update(click)
        self._history.append(self.labels)
        self.clicks.append(click)
        self.labels = new
        self.last_update_s = time.perf_counter() - t0
        return self.labels

    def _update(self, click: LabelClick) -> tuple[np.ndarray, int]:
        """(labels after ``click``: cut (trust region when local) and policy, min cuts it took)."""
        y, x, label = click.y, click.x, click.label
        last = {(c.y, c.x): c.label for c in self.clicks + [click]}  # a later click on a pixel replaces an earlier one
        active = np.array(sorted({0, *last.values()}), np.int32)  # label values in the cut; index 0 = background
        lut = np.full(max(int(active[-1]), int(self.labels.max())) + 1, -1, np.int16)
        lut[active] = np.arange(len(active))
        clicks = [(cy, cx, int(lut[lab])) for (cy, cx), lab in last.items()]
        cuts = []

        def solve(box):
            idx = self.cut.solve(clicks, len(active), current=lut[self.labels], roi=box)
            cuts.append(self.cut.last_cuts)
            # pixels outside the free nodes keep their labels, also those no cut label stands for (index -1)
            return np.where(idx >= 0, active[np.maximum(idx, 0)], self.labels).astype(np.int32)

        new = self._policy_update(self.labels, label, y, x, solve)
        return new, sum(cuts)

    def undo(self) -> np.ndarray:
        """Remove the last click (no-op without clicks) and restore the labels before it (exactly)."""
        if self.clicks:
            self.clicks.pop()
            self.labels = self._history.pop()
        return self.labels

    def reset(self) -> np.ndarray:
        """Remove all clicks; every pixel becomes background."""
        self.clicks: list[LabelClick] = []
        self._history: list[np.ndarray] = []
        self.labels = np.zeros(self.shape, np.int32)
        return self.labels


def _check_label(label) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise ValueError(f"label must be an integer >= 0 (0 = background), got {label!r}")
    if label < 0:
        raise ValueError(f"label must be >= 0 (0 = background, 1..K objects), got {label}")
    return int(label)
