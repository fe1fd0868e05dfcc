"""Simulated clicks: where a simulated user clicks next (centre protocol and stochastic / adversarial clickers), and
one object's click trajectory.

    run = simulate_clicks(seg, gt, ignore, n_clicks=20)                       # the centre protocol (RITM/SimpleClick)
    run = simulate_clicks(seg, gt, ignore, 20, clicker="dt", seed=2, object_id="124084")
    run.ious; run.clicks; run.noc(0.9); run.drops(); run.honoured
    next_click(pred, gt, ignore)            # -> (y, x, positive) of the centre protocol, or None
    parse_clicker("jitter:10")              # Clicker(kind="jitter", param=10.0); .stochastic

``seg`` is any segmenter with ``reset()``, ``add_click(y, x, positive)``, ``mask`` (bool [H, W]), ``shape`` and
``last_update_s`` (``featlib.interactive.ClickSegmenter``); the adversarial clickers also need ``undo()``. This module
imports no segmenter, so ``featlib.interactive`` can re-export it.

**The largest error region.** FN = gt & ~pred, FP = ~gt & pred (pixels in ``ignore`` excluded). With ``dt_E`` the
Euclidean distance transform of error E padded by a one-pixel zero border (the image edge counts as a boundary), the
click is positive (on FN) when ``max dt_FN >= max dt_FP``, else negative (on FP) — the centre protocol's choice. The
region is the 8-connected component of that error holding its deepest point (first in raster order on ties).

**Clickers** (each returns one pixel of the region, so a click is always on a wrong pixel):
- ``center``: the deepest point (``argmax dt``); deterministic.
- ``dt``: a pixel drawn with probability ``dt(p) / sum_region dt`` (RClicks found ∝-distance-transform clicks closer
  to real ones than uniform ones: KS 0.14-0.26 vs 0.10 against real clicks).
- ``uniform``: a pixel drawn uniformly from the region.
- ``jitter:S``: the centre moved by ``round(N(0, S^2))`` in y and x; a draw outside the region is redrawn, up to 10
  draws (a truncated Gaussian), then the last draw is projected to its nearest region pixel.
- ``worst:M`` / ``best:M``: M distinct candidates drawn as ``dt`` (all pixels when the region has <= M); each is
  tried (``add_click`` then ``undo``), and the one giving the lowest / highest IoU after the click is made (ties: the
  first drawn). Costs M + 1 updates per click.

**Common random numbers.** Click k of object ``object_id`` under seed s draws from
``numpy.random.default_rng([s, h(object_id), k])`` with h the first 8 bytes of BLAKE2b of the id (stable across
processes, unlike ``hash``). The draws of one click depend only on (seed, object, click index), so two feature sources
(or two worker orders) see the same random numbers: identical first clicks and paired later ones.

**Honoured clicks.** After every click the run checks that every clicked pixel still has its clicked label (the last
click on a pixel wins); ``run.honoured`` is False and ``run.violations`` counts (click, pixel) pairs when one did not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from featlib.metrics import iou

KINDS = ("center", "dt", "uniform", "jitter", "worst", "best")
JITTER_DRAWS = 10  # redraws before projecting: P(10 misses) < 1e-3 when the region holds 50 % of the Gaussian's mass


@dataclass(frozen=True)
class Clicker:
    """A click simulator: ``kind`` one of KINDS; ``param`` S (px) for jitter, M (candidates) for worst / best."""

    kind: str = "center"
    param: float = 0.0

    @property
    def stochastic(self) -> bool:
        return self.kind != "center"

    @property
    def spec(self) -> str:
        return self.kind if self.kind in ("center", "dt", "uniform") else f"{self.kind}:{self.param:g}"


def parse_clicker(spec: str | Clicker) -> Clicker:
    """``"center" | "dt" | "uniform" | "jitter:S" | "worst:M" | "best:M"`` -> Clicker; ValueError naming the problem."""
    if isinstance(spec, Clicker):
        return spec
    kind, _, arg = str(spec).strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown clicker {spec!r}; expected one of center, dt, uniform, jitter:S, worst:M, best:M")
    if kind in ("center", "dt", "uniform"):
        if arg:
            raise ValueError(f"clicker {kind!r} takes no parameter, got {spec!r}")
        return Clicker(kind)
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"clicker {spec!r} needs a number after ':' (jitter:S px, worst:M / best:M "
                         "candidates)") from None
    if kind == "jitter" and not value > 0:
        raise ValueError(f"jitter:S needs S > 0 px, got {spec!r}")
    if kind in ("worst", "best") and (value < 2 or value != int(value)):
        raise ValueError(f"{kind}:M needs an integer M >= 2 candidates, got {spec!r}")
    return Clicker(kind, value)


def click_rng(seed: int, object_id: str, click_index: int) -> np.random.Generator:
    """The generator of click ``click_index`` of ``object_id`` under ``seed`` (common random numbers: module doc)."""
    h = int.from_bytes(hashlib.blake2b(str(object_id).encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([int(seed), h, int(click_index)])


def _check_masks(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None) -> np.ndarray:
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    if ignore is not None and ignore.shape != gt.shape:
        raise ValueError(f"ignore {ignore.shape} and gt {gt.shape} must have the same shape")
    return np.ones(gt.shape, bool) if ignore is None else ~np.asarray(ignore, bool)


def _depth(err: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(np.pad(err, 1))[1:-1, 1:-1]


def error_region(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None):
    """The largest error region (module doc) as ``(region bool [H, W], dt float [H, W], positive, (y, x) deepest)``,
    or None when no error is left. ``dt`` is the padded distance transform of the chosen error (FN or FP)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    valid = _check_masks(pred, gt, ignore)
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    if not fn.any() and not fp.any():
        return None
    dt_fn, dt_fp = _depth(fn), _depth(fp)
    positive = bool(dt_fn.max() >= dt_fp.max())
    dt = dt_fn if positive else dt_fp
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    lab, _ = ndimage.label(fn if positive else fp, structure=np.ones((3, 3), bool))
    return lab == lab[y, x], dt, positive, (int(y), int(x))


def next_click(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int, bool] | None:
    """Standard (RITM/SimpleClick) simulated click: the point deepest inside the larger error region.

    Args: pred, gt bool [H, W]; ignore bool [H, W] or None (pixels excluded, e.g. GrabCut's 128 band).
    Returns (y, x, positive) — false negatives give a positive click, false positives a negative one — or None
    when there is no error left. Depth = Euclidean distance transform of the error mask padded with a 1-px zero
    border (so the image edge counts as a boundary); ties go to the first pixel in raster order.
    """
    r = error_region(pred, gt, ignore)
    return None if r is None else (*r[3], r[2])


def _dt_draw(region: np.ndarray, dt: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct flat indices of region pixels, drawn with probability ∝ dt (all of them when the region has <= n)."""
    idx = np.flatnonzero(region)
    if len(idx) <= n:
        return idx
    w = dt.ravel()[idx]
    return idx[rng.choice(len(idx), size=n, replace=False, p=w / w.sum())]


def choose_click(clicker: Clicker | str, pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None,
                 rng: np.random.Generator | None = None, segmenter=None) -> tuple[int, int, bool] | None:
    """The next click of ``clicker`` for prediction ``pred`` (bool [H, W]) against ``gt``, or None when no error is
    left. Stochastic clickers draw from ``rng``; ``worst`` / ``best`` try candidates on ``segmenter`` (add_click,
    undo: its state is unchanged on return)."""
    c = parse_clicker(clicker)
    r = error_region(pred, gt, ignore)
    if r is None:
        return None
    region, dt, positive, (cy, cx) = r
    if c.kind == "center":
        return cy, cx, positive
    if rng is None:
        raise ValueError(f"clicker {c.spec!r} is stochastic and needs an rng (click_rng)")
    w = region.shape[1]
    if c.kind == "dt":
        k = int(_dt_draw(region, dt, rng, 1)[0])
        return k // w, k % w, positive
    if c.kind == "uniform":
        k = int(rng.choice(np.flatnonzero(region)))
        return k // w, k % w, positive
    if c.kind == "jitter":
        h = region.shape[0]
        for _ in range(JITTER_DRAWS):
            y, x = np.rint(np.array([cy, cx]) + rng.normal(0.0, c.param, 2)).astype(int)
            if 0 <= y < h and 0 <= x < w and region[y, x]:
                return int(y), int(x), positive
        y, x = min(max(y, 0), h - 1), min(max(x, 0), w - 1)
        _, (iy, ix) = ndimage.distance_transform_edt(~region, return_indices=True)
        return int(iy[y, x]), int(ix[y, x]), positive
    # worst / best: try each candidate on the segmenter, keep the lowest / highest IoU after it.
    if segmenter is None or not hasattr(segmenter, "undo"):
        raise ValueError(f"clicker {c.spec!r} tries candidate clicks and needs a segmenter with add_click and undo")
    scores = []
    cands = _dt_draw(region, dt, rng, int(c.param))
    for k in cands:
        segmenter.add_click(int(k // w), int(k % w), positive)
        scores.append(iou(segmenter.mask, gt, ignore))
        segmenter.undo()
    k = int(cands[int(np.argmin(scores) if c.kind == "worst" else np.argmax(scores))])
    return k // w, k % w, positive


@dataclass
class ClickRun:
    """One object's trajectory: ``ious[k]`` is the IoU after k+1 clicks (the last value repeated once no error is
    left); ``clicks`` the (y, x, positive) clicks made; ``latency_s`` per click made; ``violations``: (click, pixel)
    pairs where an earlier clicked pixel had lost its label after a later click (0 = every click honoured)."""

    ious: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)
    violations: int = 0

    @property
    def honoured(self) -> bool:
        return self.violations == 0

    def noc(self, threshold: float, max_clicks: int = 20) -> int:
        """Clicks needed to reach IoU >= threshold, ``max_clicks`` when never reached within ``max_clicks``."""
        for k, v in enumerate(self.ious[:max_clicks]):
            if v >= threshold:
                return k + 1
        return max_clicks

    def drops(self, eps: float = 1e-9) -> list[float]:
        """Sizes (> 0) of the IoU decreases after a click, one entry per click that lowered IoU."""
        a = np.asarray(self.ious)
        d = a[:-1] - a[1:]
        return [float(v) for v in d if v > eps]


def simulate_clicks(segmenter, gt: np.ndarray, ignore: np.ndarray | None = None, n_clicks: int = 20, *,
                    clicker: str | Clicker = "center", seed: int = 0, object_id: str = "",
                    stop_at: float | None = None) -> ClickRun:
    """Run ``clicker`` for ``n_clicks`` clicks on a fresh ``segmenter`` (it is reset first) against ``gt`` bool [H, W].

    When no error is left (or IoU >= ``stop_at``), the remaining clicks are not made and the last IoU is repeated (no
    latency entry). ``seed`` and ``object_id`` key the random draws of stochastic clickers (``click_rng``).
    """
    c = parse_clicker(clicker)
    gt = np.asarray(gt, bool)
    if gt.shape != tuple(segmenter.shape):
        raise ValueError(f"gt shape {gt.shape} does not match the segmenter's image {tuple(segmenter.shape)}")
    if ignore is not None:
        ignore = np.asarray(ignore, bool)
        if ignore.shape != gt.shape:
            raise ValueError(f"ignore shape {ignore.shape} does not match gt {gt.shape}")
    if n_clicks < 1:
        raise ValueError(f"n_clicks must be >= 1, got {n_clicks}")
    segmenter.reset()
    run = ClickRun()
    clicked: dict[tuple[int, int], bool] = {}
    done = False
    for k in range(n_clicks):
        ck = None if done else choose_click(c, segmenter.mask, gt, ignore,
                                            click_rng(seed, object_id, k) if c.stochastic else None, segmenter)
        if ck is None:
            done = True
            run.ious.append(run.ious[-1] if run.ious else iou(segmenter.mask, gt, ignore))
            continue
        segmenter.add_click(*ck)
        mask = np.asarray(segmenter.mask, bool)
        run.clicks.append(ck)
        run.latency_s.append(segmenter.last_update_s)
        clicked[ck[:2]] = ck[2]
        ys, xs = np.array(list(clicked)).T
        run.violations += int((mask[ys, xs] != np.array(list(clicked.values()))).sum())
        run.ious.append(iou(mask, gt, ignore))
        done = stop_at is not None and run.ious[-1] >= stop_at
    return run
