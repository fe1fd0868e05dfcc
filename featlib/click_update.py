"""The click update policy: which part of a new cut a click may apply. Pure functions of arrays (no state).

    r = click_radius(labels == k, y, x)                   # px from the click to the nearest pixel already labelled k
    roi = trust_box(y, x, r, reach=3.0, shape=(H, W))      # the box the cut is solved in, or None (global cut)
    roi, within = seeded_trust(labels, k, y, x, r, segments, reach=3.0)   # or: seeded box + pixels it may change
    new = apply_click(labels, cut, y, x, k, r, touch_up=4.5, within=within, touch_up_disc=0.0)   # labels after it

``labels`` and ``cut`` are label maps [H, W] of one dtype: bool for a binary segmenter (True = object, a positive
click has k = True, a negative one k = False) or int for a multi-label one (k = the click's label). Rules:

- Local piece: of the pixels the cut takes FOR k (``cut == k`` and ``labels != k``), only the 4-connected piece that
  holds the clicked pixel is applied, and the clicked pixel itself always becomes k. So a click changes pixels only
  to its own label and only next to itself: binary masks are nested (a positive click never removes a pixel, a
  negative one never adds one), and every pixel that is not k after the click keeps its label.
- Reach (trust region), default: a click r px from the nearest pixel already labelled k (r = ``click_radius``:
  the radius of the largest disc around the click that the labels leave wholly wrong) is solved in a box of
  half-size ``reach * max(r, 2)`` around it (``trust_box``). Shallow clicks get small boxes, so where a click lands
  inside its error matters (docs/CLICKS.md "Robustness").
- Reach, seeded (``seeded_trust``; the segmenters' ``seed_segments``): the click's *seed* is its segment in a
  partition of the image minus the pixels already labelled k, the 4-connected piece holding the click: an estimate
  of the error blob, the same for every click inside it. Its depth (the largest distance from a seed pixel to label
  k, at most ``SEED_DEPTH_CAP * max(r, 2)``) sets pad = ``(reach - 1) * max(depth, 2)``; the cut is solved in the
  seed's box grown by pad, and only pixels within pad of the seed may change. Less sensitive to where the click
  lands, but the larger regions leak more (measured there).
- Either way nodes outside the box keep their labels (``featlib.click_energy.ClickCut.solve``), and the first click
  of each label (no pixel has it yet: r = inf) is global.
- Growth (the segmenters' ``grow``, an option): when the applied change reaches an inner side of the box
  (``reaches_edge``: the box cut it off), the box is doubled (half-size ``reach * 2^k * max(r, 2)``) and solved again,
  up to ``grow`` times: a shallow click whose error runs past its small box gets the box a deeper click would. With
  the segmenters' ``grow_cap`` a doubled box's change is kept only while it is at most that many times the change of
  the click's own box: a change that outgrows it is mostly a leak the click does not support (measured there).
- Touch-up: for r < ``touch_up`` the click is a boundary correction at its own scale: only pixels closer to it than
  max(r, ``touch_up_disc``) may change. With ``touch_up_disc`` 0 that is the empty disc (radius r; for r = 1 the
  clicked pixel alone); with a floor a click that lands next to its label (a loose click on an error's rim) may
  still take the cut's change around it instead of the pixel alone (docs/CLICKS.md "Touch-ups for loose clicks").
  The segmenters' ``escalate_within`` (they keep the click history, this module does not): a would-be touch-up
  within that many px of an earlier click of its label is an ordinary click with r = ``touch_up``.

Each rule and default is measured in docs/CLICKS.md ("Updates and guarantees": reach 3 and touch-up 4.5 on the
GrabCut sample and BSDS objects; "Robustness": the seeded trust region).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Seeded trust region: a seed's depth counts up to this many times the click's own radius r (a segment running far
# along the error's side would open boxes that leak). On 28 BSDS500 train objects (Lab, dt clicks, 3 seeds) cap 1 / 1.5
# / 2: NoC@90 over centre clicks +12.8 / +11.9 / +6.8 %, clicks losing > 1 IoU point 2.05 / 2.80 / 3.18 % (the
# click-centred box: +15.2 %, 1.74 %); 2, the only one under the 10 % target (docs/CLICKS.md "Robustness").
SEED_DEPTH_CAP = 2.0


def click_radius(has_label: np.ndarray, y: int, x: int) -> float:
    """Distance (px, Euclidean) from (y, x) to the nearest pixel of ``has_label`` (bool [H, W]) on that set's inner
    boundary; inf when the set is empty or already holds (y, x)."""
    if not has_label.any() or has_label[y, x]:
        return float("inf")
    edge = np.argwhere(has_label & ~ndimage.binary_erosion(has_label, border_value=1))
    return float(np.sqrt(((edge - (y, x)) ** 2).sum(1).min()))


def trust_box(y: int, x: int, r: float, reach: float | None, shape: tuple[int, int]) -> tuple | None:
    """The box (y0, y1, x0, x1) of half-size ``reach * max(r, 2)`` around (y, x), clipped at the top/left edges (the
    slices clip the rest); None when ``reach`` is None/0 or r is inf (global cut)."""
    if not reach or not np.isfinite(r):
        return None
    half = reach * max(r, 2.0)
    return max(0, int(y - half)), int(y + half) + 1, max(0, int(x - half)), int(x + half) + 1


def reaches_edge(change: np.ndarray, box: tuple) -> bool:
    """Whether ``change`` (bool [H, W]) holds a pixel on a side of ``box`` (y0, y1, x0, x1) that is not the image's
    edge: the cut in the box was cut off there."""
    h, w = change.shape
    y0, y1, x0, x1 = box
    y1, x1 = min(y1, h), min(x1, w)
    sides = [change[y0, x0:x1] if y0 > 0 else None, change[y1 - 1, x0:x1] if y1 < h else None,
             change[y0:y1, x0] if x0 > 0 else None, change[y0:y1, x1 - 1] if x1 < w else None]
    return any(side is not None and side.any() for side in sides)


def seed_region(labels: np.ndarray, label, y: int, x: int, segments: np.ndarray) -> np.ndarray:
    """bool [H, W]: the click's seed, the 4-connected piece holding (y, x) of its segment in ``segments`` (int
    [H, W], a partition of the image) minus the pixels already labelled ``label``. Every click inside one seed has
    that same seed."""
    cand = (segments == segments[y, x]) & (labels != label)
    cand[y, x] = True
    pieces, _ = ndimage.label(cand)
    return pieces == pieces[y, x]


def seeded_trust(labels: np.ndarray, label, y: int, x: int, r: float, segments: np.ndarray, reach: float | None,
                 depth_cap: float = SEED_DEPTH_CAP) -> tuple[tuple | None, np.ndarray | None]:
    """The trust region of a click from its seed (``seed_region``): (box, within), or (None, None) for a global cut.

    depth = the largest distance from a seed pixel to the nearest pixel labelled ``label``, at most ``depth_cap * max(r,
    2)`` (r = ``click_radius(labels == label, y, x)``); pad = ``(reach - 1) * max(depth, 2)``. box: the seed's bounding
    box grown by pad (the box the cut is solved in); within: bool [H, W], the pixels at most pad from the seed (the only
    ones the click may change). For a disc-shaped error blob clicked at its centre this is ``trust_box``'s box; a click
    off centre in the same seed gets the same region until the cap binds. Global (None, None) as ``trust_box``: no
    ``reach``, or r is inf (no pixel has the label yet, or the clicked pixel already has it).
    """
    if not reach or not np.isfinite(r):
        return None, None
    h, w = labels.shape
    has = labels == label
    seed = seed_region(labels, label, y, x, segments)
    ys, xs = np.nonzero(seed)
    bound = depth_cap * max(r, 2.0)
    # depth within the cap needs only the labelled pixels within the cap of the seed's box (exact below the cap)
    c = int(np.ceil(bound)) + 1
    y0, y1, x0, x1 = max(0, ys.min() - c), min(h, ys.max() + c + 1), max(0, xs.min() - c), min(w, xs.max() + c + 1)
    crop = has[y0:y1, x0:x1]
    depth = bound
    if crop.any():
        depth = min(bound, float(ndimage.distance_transform_edt(~crop)[seed[y0:y1, x0:x1]].max()))
    pad = (reach - 1.0) * max(depth, 2.0)
    p = int(np.ceil(pad))
    box = (max(0, int(ys.min()) - p), min(h, int(ys.max()) + p + 1), max(0, int(xs.min()) - p),
           min(w, int(xs.max()) + p + 1))
    within = np.zeros_like(has)
    by0, by1, bx0, bx1 = box
    within[by0:by1, bx0:bx1] = ndimage.distance_transform_edt(~seed[by0:by1, bx0:bx1]) <= pad
    return box, within


def apply_click(labels: np.ndarray, cut: np.ndarray, y: int, x: int, label, r: float, touch_up: float,
                within: np.ndarray | None = None, touch_up_disc: float = 0.0) -> np.ndarray:
    """The label map after a click of ``label`` at (y, x): the local piece of the cut's change FOR ``label``.

    Args:
        labels: label map [H, W] before the click (bool or int).
        cut: the cut's label map [H, W] for the clicks including this one (same dtype).
        y, x: the click; label: its label (True/False for a binary map).
        r: ``click_radius(labels == label, y, x)``; touch_up: the touch-up radius in px (0 = off).
        within: optional bool [H, W], the only pixels the click may change (``seeded_trust``).
        touch_up_disc: the touch-up disc's smallest radius in px (0: the empty disc, radius r).
    Returns a new array [H, W] that differs from ``labels`` only where it equals ``label``.
    """
    h, w = labels.shape
    change = (cut == label) & (labels != label)
    if within is not None:
        change &= within
    if r < touch_up:
        # pixels closer to the click than the nearest pixel of its label (the empty disc), or than the floor
        rad = max(r, touch_up_disc)
        k = int(rad)
        y0, y1, x0, x1 = max(0, y - k), min(h, y + k + 1), max(0, x - k), min(w, x + k + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disc = np.zeros_like(change)
        disc[y0:y1, x0:x1] = (yy - y) ** 2 + (xx - x) ** 2 < rad**2
        change &= disc
    new = labels.copy()
    if change[y, x]:
        pieces, _ = ndimage.label(change)
        new[pieces == pieces[y, x]] = label
    new[y, x] = label
    return new


def check_click(y, x, shape: tuple[int, int]) -> tuple[int, int]:
    """(int y, int x) of a click inside an image of ``shape`` (H, W); outside -> ValueError."""
    y, x = int(y), int(x)
    h, w = shape
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"click ({y}, {x}) is outside the image of size {h} x {w}")
    return y, x


def check_policy(reach: float | None, touch_up: float, touch_up_disc: float = 0.0) -> None:
    """ValueError unless ``reach`` is None or >= 0, and ``touch_up`` and ``touch_up_disc`` are >= 0."""
    if reach is not None and reach < 0:
        raise ValueError(f"reach must be None or >= 0, got {reach}")
    if touch_up < 0:
        raise ValueError(f"touch_up must be >= 0, got {touch_up}")
    if not touch_up_disc >= 0:  # also refuses NaN
        raise ValueError(f"touch_up_disc must be >= 0, got {touch_up_disc}")
