"""The click update policy: which part of a new cut a click may apply. Pure functions of arrays (no state).

    r = click_radius(labels == k, y, x)                   # px from the click to the nearest pixel already labelled k
    roi = trust_box(y, x, r, reach=3.0, shape=(H, W))      # the box the cut is solved in, or None (global cut)
    new = apply_click(labels, cut, y, x, k, r, touch_up=4.5)   # labels after the click; inputs are not modified

``labels`` and ``cut`` are label maps [H, W] of one dtype: bool for a binary segmenter (True = object, a positive
click has k = True, a negative one k = False) or int for a multi-label one (k = the click's label). Rules:

- Local piece: of the pixels the cut takes FOR k (``cut == k`` and ``labels != k``), only the 4-connected piece that
  holds the clicked pixel is applied, and the clicked pixel itself always becomes k. So a click changes pixels only
  to its own label and only next to itself: binary masks are nested (a positive click never removes a pixel, a
  negative one never adds one), and every pixel that is not k after the click keeps its label.
- Reach (trust region): a click r px from the nearest pixel already labelled k (r = ``click_radius``: the radius of
  the largest disc around the click that the labels leave wholly wrong) is solved in a box of half-size
  ``reach * max(r, 2)`` around it; nodes outside keep their labels (``featlib.click_energy.ClickCut.solve``). The
  first click of each label (no pixel has it yet: r = inf) is global.
- Touch-up: for r < ``touch_up`` the click is a boundary correction at its own scale: only pixels closer to it than
  r (the empty disc) may change. For r = 1 that is the clicked pixel alone.

Each rule and default is measured in docs/CLICKS.md ("Updates and guarantees": reach 3 and touch-up 4.5 on the
GrabCut sample and BSDS objects).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


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


def apply_click(labels: np.ndarray, cut: np.ndarray, y: int, x: int, label, r: float, touch_up: float) -> np.ndarray:
    """The label map after a click of ``label`` at (y, x): the local piece of the cut's change FOR ``label``.

    Args:
        labels: label map [H, W] before the click (bool or int).
        cut: the cut's label map [H, W] for the clicks including this one (same dtype).
        y, x: the click; label: its label (True/False for a binary map).
        r: ``click_radius(labels == label, y, x)``; touch_up: the touch-up radius in px (0 = off).
    Returns a new array [H, W] that differs from ``labels`` only where it equals ``label``.
    """
    h, w = labels.shape
    change = (cut == label) & (labels != label)
    if r < touch_up:
        # pixels closer to the click than the nearest pixel of its label: the empty disc
        k = int(r)
        y0, y1, x0, x1 = max(0, y - k), min(h, y + k + 1), max(0, x - k), min(w, x + k + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disc = np.zeros_like(change)
        disc[y0:y1, x0:x1] = (yy - y) ** 2 + (xx - x) ** 2 < r**2
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


def check_policy(reach: float | None, touch_up: float) -> None:
    """ValueError unless ``reach`` is None or >= 0 and ``touch_up`` >= 0."""
    if reach is not None and reach < 0:
        raise ValueError(f"reach must be None or >= 0, got {reach}")
    if touch_up < 0:
        raise ValueError(f"touch_up must be >= 0, got {touch_up}")
