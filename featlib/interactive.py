"""Binary click segmentation by an s-t graph cut on a feature map (the click protocol: ``featlib.click_protocol``).

    seg = ClickSegmenter(features, image)      # FeatureNet dict {s: [C, h, w]} for ONE image, or [C, H, W] (Lab)
    seg.add_click(120, 200, positive=True)     # (y, x) in full-resolution pixels
    seg.add_click(40, 30, positive=False)
    seg.mask                                   # bool [H, W]
    seg.undo(); seg.reset()

The segmenter is the two-label case of three shared pieces (docs/CLICKS.md "Structure"); ``featlib.multiclick``
is the many-label case of the same pieces:

- ``featlib.region_graph``: nodes are regions of a fine oversegmentation of the distance mesh (``region_spacing``
  px; 1 = the pixel graph), with mean features per stride and contrast-weighted adjacency; a region holding clicks of
  both signs is split into single-pixel nodes, so **every clicked pixel keeps its label**.
- ``featlib.click_energy``: distances ``D_pos`` (to the positive clicks) and ``D_neg`` (to the negative clicks and the
  image border's clusters, + ``border_margin``), each a multi-stride feature distance plus ``geo_weight`` x the
  geodesic distance on the region graph; unaries ``area * D_pos / (D_pos + D_neg)`` (object) and
  ``area * D_neg / (D_pos + D_neg)`` (background); Potts pairwise ``lam * w``; clicked nodes hard-constrained; one
  exact s-t min cut (``featlib.graphcut.min_cut``, the minimal source set: unique and deterministic).
- ``featlib.click_update``: the pure update policy. With ``local=True`` (default) only the 4-connected piece of
  newly-object pixels holding a positive click (newly-background for a negative click) is applied, so masks are
  **nested by construction**; ``reach`` solves a late click's cut in a box of half-size ``reach * max(r, 2)`` (r: the
  click's distance to the nearest pixel that already has its label), and below ``touch_up`` px only the disc closer
  to the click than the mask may flip.

Without ``local`` the mask is the global cut; then nestedness still holds while no region split happens (the unaries
move monotonically and the minimal minimiser of a graph cut is nested, Topkis), which the tests check on the pixel
graph. IoU can still fall after a click (a positive click may add some background with the object part); the
evaluation counts those drops.

First click negative: allowed. The mask stays empty until the first positive click (there is no object model yet);
the negative clicks are kept and constrain later cuts. A click on an already-clicked pixel replaces that click.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from featlib.click_protocol import ClickRun, next_click, simulate_clicks  # noqa: F401  (re-exported)
from featlib.click_update import check_click
from featlib.multiclick import CutSegmenter, LabelClick, MultiClickSegmenter  # noqa: F401  (re-exported)

# ----------------------------------------------------------------------------------------------- segmenter


@dataclass
class Click:
    y: int
    x: int
    positive: bool

    @property
    def label(self) -> bool:
        """The click's label in the policy's terms (``featlib.click_update``): True = object, False = background."""
        return self.positive


class ClickSegmenter(CutSegmenter):
    """Interactive binary segmentation of one image by graph cut on a feature map.

    Args:
        features: FeatureNet output for ONE image ``{stride: [C_s, h_s, w_s]}`` (tensors or arrays), or one map
            ``[C, H, W]`` (e.g. ``featlib.distances.lab_features(image)``), values about [0, 1].
        image: optional RGB [H, W, 3] (only kept for display; sets the size when given).
        mesh_weights: per-stride weights for both the mesh and the unary distances (default equal).
        region_spacing: oversegmentation seed spacing in px (1 = pixel graph). Default 4.
        lam: pairwise weight (per shared pixel edge) relative to the per-pixel unary in [0, 1]. Default 8.0
            (tuned with the other defaults on the GrabCut sample + 8 BSDS val objects, Lab features).
        geo_weight: weight of the geodesic distance in the click distances. Default 1.0.
        border_margin: added to the distance to border regions (the default background model). Default 0.2.
        backend: "auto" | "scipy" | "pymaxflow".
        local: apply only the connected change holding each new click (default; masks nested by construction).
            ``False``: the mask is the global cut for the current click set.
        reach: with ``local``, a click whose pixel lies r px inside its error blob (r = distance to the nearest
            pixel already of the clicked label) is solved in a box of half-size ``reach * max(r, 2)`` px around it,
            the nodes outside fixed to the current mask (so late clicks are cheap and cannot flip far-away parts);
            the first click of each kind is global. None = always global. Default 3: on the tuning set (GrabCut
            sample + 8 BSDS objects, 40 clicks) summed IoU drops per object 0.77 (no limit) -> 0.065, NoC@90
            8.2 -> 8.9.
        seed_segments: with ``local`` and ``reach``, seed the trust region instead: the click's seed is its segment in a
            partition of the image into this many segments minus the pixels already of its label, and every click inside
            one seed gets the same region (``featlib.click_update.seeded_trust``), so a click off the error's centre is
            not given a smaller one. The partition: a cut of ``hierarchy``. Default None: the click-centred box
            (``grow`` applies only to it). 200 on 28 BSDS500 train objects (Lab, 3 seeds, histogram-gradient
            partition, no boundary map): dt-click NoC@90 15.23 -> 14.61 and its excess over centre clicks +15.2 % ->
            +6.8 %, jitter:10 +9.8 % -> +2.3 %, but clicks losing > 1 IoU point 1.7 % -> 3.2 % (docs/CLICKS.md
            "Robustness"). With colour's default (the learned map) and its partitions as ``hierarchy``: held-out
            train ΔSB / jitter +9.8 / +3.1 %, but on val (run once) no fewer clicks and drops 1.3 -> 2.8 %
            (docs/CLICKS.md "Seeds and lone-click segments from the learned partitions").
        lone_click_segments: an object's first click stands for its segment in a partition of the image into this
            many segments (a cut of ``hierarchy``, as for ``seed_segments``), in the cut it makes: the first mask is the
            same wherever in that segment the click lands; later cuts measure from the clicked pixels
            (``featlib.click_energy``). Default None: the clicked pixel. 25 on BSDS500 train objects (3 dt seeds)
            halves IoU@1's noise-to-signal (Lab 19.1 -> 8.5, held-out: 27.6 -> 8.8; bsds500-b0 16.9 -> 8.4) for
            +-0.4 clicks to 90 %, but on val (run once) 24.9 -> 13.7 for ~1 more click on every protocol: the larger
            first mask leaks, and local updates repair leaks one bounded box at a time (docs/CLICKS.md "Robustness").
        grow: with ``local`` and the click-centred box, when the change a click applies reaches an inner side of its
            box (the box cut it off), solve again in the box doubled, up to this many times (not for touch-ups):
            a shallow click gets the box its error needs rather than one set by its depth. Default 0 (off); the
            numbers: docs/CLICKS.md "Robustness", "Growing the box".
        grow_cap: with ``grow``, a doubled box's change is kept only while it is at most this many times the change of
            the click's own box (the rest is mostly leaks the click does not support). Default inf (no cap). 2 with
            ``grow=2`` on BSDS500 train objects (3 seeds, 100 clicks): Lab clicks losing > 1 IoU point 3.43 % -> 2.11 %
            (dt) and NoC@90 on centre / dt clicks 13.04 / 13.88 -> 12.86 / 14.10 (the box: 13.21 / 15.23);
            docs/CLICKS.md "Robustness", "Capping the growth".
        touch_up: with ``local``, a click within this many px of the clicked label (r < touch_up) flips only pixels
            closer to it than r (the empty disc: for r = 1 the clicked pixel alone). Late clicks sit in 1-3 px slivers
            along the boundary, where flipping whole 4 px regions added more wrong pixels than right ones. 0 = off.
            Default 4.5: on the tuning set (GrabCut sample, 100 clicks + 8 BSDS objects, 50 clicks) drops 56 + 58 ->
            3 + 9 clicks, NoC@85/90 unchanged (docs/CLICKS.md). The cost: boundary slivers close one click at a time;
            where the features trace object edges exactly (synthetic scenes) 0 converges further (IoU@20 0.998 vs
            0.994). Both feature sources' default 3 (``featlib.features``; with touch_up_disc 6, a click 3-4.5 px from
            its label does better as an ordinary click: val 9-30 NoC@90 within 100 dt / jitter:10, colour 21.59 /
            21.18 -> 19.47 / 20.02, bsds500-b0 27.05 / 27.95 -> 24.79 / 26.45; drops over 1 point <= 1.53 %).
        touch_up_disc: a touch-up click may flip the cut's change within max(r, touch_up_disc) px of it instead of
            the empty disc alone. Default 0 (the empty disc). A loose click on a 3-12 px deep error's rim lands 1-2 px
            from its label and flipped a pixel or two, so the error stayed the largest and drew the next click too.
            Colour's default 6 (``featlib.features``): on 19 held-out BSDS500 train objects (Lab, 3 seeds, 100 clicks)
            NoC@90 within 100 centre / dt / jitter:10 18.32 / 26.07 / 28.12 -> 16.00 / 22.39 / 21.46, within 20
            unchanged, drops 1.05 / 1.21 / 1.53 -> 1.11 / 1.21 / 1.40 % of clicks (docs/CLICKS.md "Touch-ups for
            loose clicks"). FeatureNet sources' default 6 too (bsds500-b0, val 9-30: within 100 16.45 / 30.26 / 32.30
            -> 15.50 / 27.05 / 27.95). Price: falls under 0.1 IoU point after ~15 % of clicks (a few wrong pixels
            in the larger disc); falls over 1 point unchanged.
        escalate_within: a click that would be a touch-up (r < touch_up) within this many px of an earlier click of its
            label is solved as an ordinary click of depth touch_up instead (its box, and the growth): clicking the same
            place again says the touch-up there fell short. Default 0 (off). Click-centred boxes only (not with
            ``seed_segments``). 9 with colour's default, val 9-30 (3 seeds, 100 clicks): NoC@90 within 100 centre /
            dt / jitter:10 14.91 / 21.59 / 21.18 -> 15.09 / 20.36 / 20.42, but drops 1.05 / 1.18 / 1.64 -> 1.23 /
            1.32 / 1.82 % of clicks: not the default (docs/CLICKS.md "Touch-ups for loose clicks").

        boundary_map: a per-pixel boundary probability the click graph also reads: ``"learned"`` (the shipped
            boundary network on ``image``, ``featlib.boundary_net.boundary_probability``, ~0.3 s at 481x321, once),
            a float [H, W] map in [0, 1], or None / ``"off"`` (default: the features' contrast alone). Potts weights are
            multiplied by ``exp(-p / boundary_tau)`` and geodesic steps grow by ``boundary_geo`` x p in units of the
            image's mean mesh distance (``featlib.region_graph``; defaults ``multiclick.BOUNDARY_TAU`` 0.1 and
            ``BOUNDARY_GEO`` 2.0). Colour sources' default through ``featlib.features`` (with ``lam`` 24, the
            capped growth and ``lone_click_segments`` 25): on BSDS500 val objects 9-30 (Lab, 3 seeds, 100 clicks)
            NoC@90 centre / dt / jitter:10 12.45 / 15.02 / 14.09 -> 11.64 / 13.42 / 12.94, `dt` clicks losing > 1
            IoU point 1.41 -> 1.32 % (docs/CLICKS.md "The learned boundary map in the click graph").
        max_side: the working resolution (longer side, px; None: the image's own size) of the learned boundary map
            (as the partitions' ``max_side``) and of the hierarchy ``seed_segments`` / ``lone_click_segments`` cut,
            built on a copy of that size and its partitions brought back (``multiclick.click_partitions``). Colour's
            default 512 (``featlib.features``): a 1920 x 1080 photo's precompute 22 s -> 9 s (docs/CLICKS.md "Large
            photos").
        hierarchy: where ``seed_segments``' and ``lone_click_segments``' partitions are cut from (built only when one
            of them is set): a dict of ``featlib.cluster.gradient_hierarchy`` keywords, drawn on ``image`` (e.g.
            colour's partitions, ``featlib.features.DEFAULTS["colour"]["gradients"]``: ~4-6 s at 481x321, once;
            measured, not adopted); a ``featlib.cluster.Hierarchy`` (e.g. ``Features.hierarchy(image)``), used as it
            is; or None (default): the equal-weight histogram-gradient hierarchy ``gradient_hierarchy(image)``
            (~0.9 s), or without an image the "mesh" grouping of the features (``featlib.cluster.hierarchy_from_mesh``).
    Attributes: ``mask`` bool [H, W]; ``clicks`` list of ``Click``; ``shape`` (H, W); ``last_update_s``;
    ``graph`` (``featlib.region_graph.ImageGraph``) and ``cut`` (``featlib.click_energy.ClickCut``).
    """

    def add_click(self, y: int, x: int, positive: bool = True) -> np.ndarray:
        """Add a click at pixel (y, x) and update ``mask`` (bool [H, W], returned). Outside the image -> ValueError."""
        y, x = check_click(y, x, self.shape)
        t0 = time.perf_counter()
        click = Click(y, x, bool(positive))
        if self.local and self.mask[y, x] == click.positive:
            cut = self.mask.copy()  # the policy keeps every pixel when the clicked one has its label: no cut needed
        else:
            clicks = [(c.y, c.x, int(c.positive)) for c in self.clicks + [click]]

            def solve(box):
                current = None if box is None else self.mask.view(np.uint8)
                return self.cut.solve(clicks, 2, current=current, roi=box) == 1

            cut = self._policy_update(self.mask, click.positive, y, x, solve)
        self._history.append(self.mask)
        self.clicks.append(click)
        self.mask = cut
        self.last_update_s = time.perf_counter() - t0
        return self.mask

    def undo(self) -> np.ndarray:
        """Remove the last click (no-op without clicks) and restore the mask before it (exactly)."""
        if self.clicks:
            self.clicks.pop()
            self.mask = self._history.pop()
        return self.mask

    def reset(self) -> np.ndarray:
        """Remove all clicks; the mask becomes empty."""
        self.clicks, self._history = [], []
        self.mask = np.zeros(self.shape, bool)
        return self.mask
