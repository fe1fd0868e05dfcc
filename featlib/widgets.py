"""ipywidgets explorers for the notebooks: partitions at any granularity, and click segmentation.

    ex = PartitionExplorer(image, featlib.features.load("lab"))   # a Features (its default grouping), or a
                                                 # feature dict {s: [C, h, w]} / map [C, H, W] (mesh grouping)
    display(ex.widget)                           # in JupyterLab
    ex.set(n_segments=40)                        # the same update, callable headless (tests, nbmake)
    click_widget(ClickSegmenter(features, image))   # left click = positive, right / shift+left = negative
    w = LabelClickWidget(MultiClickSegmenter(features, image))   # many objects: a label picker + one colour each
    display(w.widget); w.handle({"type": "click", "dataX": 40, "dataY": 30})   # the same rule, headless

PartitionExplorer builds the hierarchy and the baselines' partitions once; a granularity slider only re-cuts the
hierarchy (milliseconds) and looks the baselines up, a stride-weight slider (mesh grouping) rebuilds the hierarchy.
``click_widget`` redraws ``featlib.viz.overlay`` after each click; ``handle_event`` is its event rule, testable
without a browser. ``LabelClickWidget`` is the multi-label version:
ToggleButtons pick the label of the next left click (background, object 1..K, "+ new object" adds object K + 1 and
picks it; right / shift+left click = background), the view is ``label_click_overlay`` (object k tinted and outlined in
``LABEL_PALETTE[k]``, clicks as squares of their label's colour), and a legend shows each label's colour.

ipywidgets and ipyevents (extra ``notebooks``) are imported when a widget is built, so this module imports without
them.
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image
from scipy import ndimage

from featlib.cluster import FixedPartitioner, build_hierarchy
from featlib.features import Features
from featlib.interactive import ClickSegmenter
from featlib.multiclick import MultiClickSegmenter
from featlib.viz import label_overlay, overlay


def _png(rgb: np.ndarray) -> bytes:
    """float [H, W, 3] in [0, 1] or uint8 [H, W, 3] -> PNG bytes."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


class PartitionExplorer:
    """Sliders: number of segments (log scale) and, for the mesh grouping of multi-stride features, one weight per
    stride. Shows the hierarchy's partition next to SLIC and Felzenszwalb at the nearest count they give.

    ``features``: a ``featlib.features.Features`` (its default grouping, ``f.hierarchy(image)``; ``grouping="mesh"``
    for the fast one, with stride sliders) or a feature dict / map (the mesh grouping). The baselines run once per
    setting of their parameter grid when the explorer is built (``FixedPartitioner.precompute``, a few seconds),
    so a slider tick costs the hierarchy's cut and a lookup, never a SLIC run.
    """

    def __init__(self, image: np.ndarray, features, n_segments: int = 30, compare: bool = True,
                 grouping: str | None = None):
        import ipywidgets as W  # optional extra, imported on use (module docstring)

        self.image, self.compare = np.asarray(image), compare
        self.source = features if isinstance(features, Features) else None
        self.grouping = self.source.hierarchy_settings(grouping)[0] if self.source is not None else "mesh"
        self.features = self.source(self.image) if self.source is not None else features
        mesh_strides = self.grouping == "mesh" and isinstance(self.features, dict) and len(self.features) > 1
        self.strides = sorted(self.features) if mesh_strides else []
        self.weights = {s: 1.0 for s in self.strides}
        self._build()
        self.baselines = ({"SLIC": FixedPartitioner(self.image, "slic").precompute(),
                           "Felzenszwalb": FixedPartitioner(self.image, "felzenszwalb").precompute()}
                          if compare else {})
        self.n_slider = W.IntSlider(value=n_segments, min=2, max=min(400, self.hierarchy.n_regions), step=1,
                                    description="segments", continuous_update=True)
        self.w_sliders = {s: W.FloatSlider(value=1.0, min=0.0, max=4.0, step=0.25, description=f"/{s} weight",
                                           continuous_update=False) for s in self.strides}
        self.views = {name: W.Image(format="png", width=320) for name in ["hierarchy", *self.baselines]}
        self.status = W.HTML()
        self.n_slider.observe(lambda ch: self.set(n_segments=ch["new"]), names="value")
        for s, sl in self.w_sliders.items():
            sl.observe(lambda ch, s=s: self.set(weights={s: ch["new"]}), names="value")
        boxes = [W.VBox([W.HTML(f"<b>{k}</b>"), v]) for k, v in self.views.items()]
        self.widget = W.VBox([self.n_slider, W.HBox(list(self.w_sliders.values())), W.HBox(boxes), self.status])
        self.set(n_segments=n_segments)

    def _build(self):
        weights = self.weights if self.strides and any(self.weights.values()) else None
        if self.source is not None:
            self.hierarchy = self.source.hierarchy(self.image, self.grouping, features=self.features,
                                                   mesh_weights=weights)
        else:
            self.hierarchy = build_hierarchy(self.features, mesh_weights=weights, size=self.image.shape[:2])

    def set(self, n_segments: int | None = None, weights: dict | None = None) -> dict[str, np.ndarray]:
        """Apply a slider change and redraw; returns the label maps shown."""
        if weights:
            self.weights.update(weights)
            self._build()
        n = int(n_segments if n_segments is not None else self.n_slider.value)
        t = time.perf_counter()
        labels = {"hierarchy": self.hierarchy.partition(n_segments=n)}
        cut_ms = (time.perf_counter() - t) * 1e3
        labels.update({k: b.partition(n_segments=n) for k, b in self.baselines.items()})
        for name, lab in labels.items():
            self.views[name].value = _png(label_overlay(self.image, lab, alpha=0.45))
        self.status.value = (f"asked {n} segments ({self.grouping} hierarchy cut: {cut_ms:.1f} ms); shown: "
                             + ", ".join(f"{k} {int(v.max()) + 1}" for k, v in labels.items()))
        self.labels = labels
        return labels


def handle_event(segmenter: ClickSegmenter, event: dict) -> bool:
    """Apply one ipyevents mouse event: left click -> positive, right click (contextmenu) or shift -> negative.

    Returns True when a click was added. ``dataX/dataY`` are image-pixel coordinates (ipyevents, Image widget).
    """
    kind = event.get("type")
    if kind not in ("click", "contextmenu") or "dataX" not in event:
        return False
    y, x = int(event["dataY"]), int(event["dataX"])
    h, w = segmenter.shape
    if not (0 <= y < h and 0 <= x < w):
        return False
    positive = kind == "click" and event.get("button", 0) == 0 and not event.get("shiftKey", False)
    segmenter.add_click(y, x, positive)
    return True


def click_widget(segmenter: ClickSegmenter, image: np.ndarray | None = None, width: int | None = None):
    """A JupyterLab widget: click on the image (left = positive, right/shift+left = negative), Undo/Reset buttons.

    ``image``: RGB [H, W, 3] to draw on (default: the segmenter's). Needs ipywidgets and ipyevents (extra
    ``notebooks``). Returns the ``ipywidgets.VBox``.
    """
    import ipywidgets as widgets  # optional extras, imported on use (module docstring)
    from ipyevents import Event

    image = segmenter.image if image is None else image
    if image is None:
        raise ValueError("click_widget needs the RGB image (pass image= or build the segmenter with image=)")
    view = widgets.Image(format="png", layout=widgets.Layout(width=f"{width or image.shape[1]}px"))
    status = widgets.Label()
    undo, reset = widgets.Button(description="Undo"), widgets.Button(description="Reset")

    def redraw():
        view.value = _png(overlay(image, segmenter.mask, segmenter.clicks))
        n = len(segmenter.clicks)
        status.value = f"{n} clicks, {segmenter.mask.mean():.1%} of the image selected" + (
            f", last update {1000 * segmenter.last_update_s:.0f} ms" if n else "")

    def on_event(event):
        if handle_event(segmenter, event):
            redraw()

    events = Event(source=view, watched_events=["click", "contextmenu"], prevent_default_action=True)
    events.on_dom_event(on_event)
    undo.on_click(lambda _: (segmenter.undo(), redraw()))
    reset.on_click(lambda _: (segmenter.reset(), redraw()))
    redraw()
    box = widgets.VBox([widgets.HBox([undo, reset, status]), view])
    box._featlib_events = events  # keep the listener alive with the widget
    return box


# ----------------------------------------------------------------------------------------------- many objects

# One colour per label, uint8 RGB: [0] draws background clicks, [k] object k (cycling after 10 objects). Matplotlib's
# "tab10" order (distinct for the common kinds of colour blindness up to ~6 labels), blue first as in ``overlay``.
LABEL_PALETTE = np.array([(255, 255, 255), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                          (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34),
                          (23, 190, 207)], np.uint8)
NEW_OBJECT = -1  # the picker's "+ new object" value


def label_colour(label: int) -> np.ndarray:
    """uint8 [3] colour of ``label`` (0 = background: white, used for its clicks)."""
    return LABEL_PALETTE[0] if label == 0 else LABEL_PALETTE[1 + (label - 1) % (len(LABEL_PALETTE) - 1)]


def label_click_overlay(image: np.ndarray, labels: np.ndarray, clicks=(), alpha: float = 0.45) -> np.ndarray:
    """Multi-label view -> uint8 [H, W, 3]: object k (``labels`` int [H, W] == k > 0) tinted and outlined in
    ``label_colour(k)``, background untouched; clicks (objects with ``y``, ``x``, ``label``) as squares of their
    label's colour with a black rim. ``image``: [H, W, 3] uint8, or float in [0, 1]."""
    img = np.asarray(image)
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype != np.uint8 else img
    labels = np.asarray(labels)
    if labels.shape != img.shape[:2]:
        raise ValueError(f"labels shape {labels.shape} != image size {img.shape[:2]}")
    out = img.astype(np.float32)
    for k in np.unique(labels[labels > 0]):
        m = labels == k
        c = label_colour(int(k)).astype(np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * c
        out[m & ~ndimage.binary_erosion(m)] = c
    h, w = labels.shape
    r = max(2, min(h, w) // 100)
    for c in clicks:
        y0, y1, x0, x1 = max(0, c.y - r - 1), c.y + r + 2, max(0, c.x - r - 1), c.x + r + 2
        out[y0:y1, x0:x1] = 0
        out[max(0, c.y - r): c.y + r + 1, max(0, c.x - r): c.x + r + 1] = label_colour(c.label)
    return out.astype(np.uint8)


class LabelClickWidget:
    """JupyterLab widget for ``MultiClickSegmenter``: a label picker, the image (click to label), Undo / Reset, a
    colour legend and a status line.

    Left click: the picked label; right click or shift+left: background. ``handle(event)`` is that rule (ipyevents
    mouse events, ``dataX/dataY`` in image pixels) and is what the browser calls, so tests drive it directly.
    Attributes: ``picker`` (ToggleButtons), ``view`` (Image), ``undo`` / ``reset`` (Buttons), ``legend``, ``status``,
    ``widget`` (the VBox to display). Needs ipywidgets and ipyevents (extra ``notebooks``).
    """

    def __init__(self, segmenter: MultiClickSegmenter, image: np.ndarray | None = None, width: int | None = None,
                 n_objects: int = 1):
        import ipywidgets as widgets  # optional extras, imported on use (module docstring)
        from ipyevents import Event

        self.segmenter = segmenter
        self.image = segmenter.image if image is None else np.asarray(image)
        if self.image is None:
            raise ValueError("LabelClickWidget needs the RGB image (pass image= or build the segmenter with image=)")
        if n_objects < 1:
            raise ValueError(f"n_objects (object buttons shown at the start) must be >= 1, got {n_objects}")
        self.picker = widgets.ToggleButtons(description="label", style={"button_width": "90px"})
        self._set_objects(max(n_objects, segmenter.n_objects), pick=1)
        self.picker.observe(self._on_pick, names="value")
        self.view = widgets.Image(format="png", layout=widgets.Layout(width=f"{width or self.image.shape[1]}px"))
        self.legend, self.status = widgets.HTML(), widgets.Label()
        self.undo, self.reset = widgets.Button(description="Undo"), widgets.Button(description="Reset")
        self.undo.on_click(lambda _: (self.segmenter.undo(), self.redraw()))
        self.reset.on_click(lambda _: (self.segmenter.reset(), self.redraw()))
        self._events = Event(source=self.view, watched_events=["click", "contextmenu"], prevent_default_action=True)
        self._events.on_dom_event(self.handle)
        self.widget = widgets.VBox([self.picker, widgets.HBox([self.undo, self.reset, self.status]), self.view,
                                    self.legend])
        self.widget._featlib_events = self._events  # keep the listener alive with the widget
        self.redraw()

    @property
    def label(self) -> int:
        """The label the next left click gets."""
        return int(self.picker.value)

    def _set_objects(self, k: int, pick: int) -> None:
        self.n_shown = k
        self.picker.options = ([("background", 0)] + [(f"object {j}", j) for j in range(1, k + 1)]
                               + [("+ new object", NEW_OBJECT)])
        self.picker.value = pick

    def _on_pick(self, change) -> None:
        if change["new"] == NEW_OBJECT:
            k = max(self.n_shown, self.segmenter.n_objects) + 1
            self._set_objects(k, pick=k)

    def handle(self, event: dict) -> bool:
        """Apply one mouse event; True when a click was added (outside the image or other events: False)."""
        if event.get("type") not in ("click", "contextmenu") or "dataX" not in event:
            return False
        y, x = int(event["dataY"]), int(event["dataX"])
        h, w = self.segmenter.shape
        if not (0 <= y < h and 0 <= x < w):
            return False
        left = event["type"] == "click" and event.get("button", 0) == 0 and not event.get("shiftKey", False)
        self.segmenter.add_click(y, x, self.label if left else 0)
        if self.segmenter.n_objects > self.n_shown:
            self._set_objects(self.segmenter.n_objects, pick=self.label)
        self.redraw()
        return True

    def redraw(self) -> None:
        seg = self.segmenter
        self.view.value = _png(label_click_overlay(self.image, seg.labels, seg.clicks))
        shown = range(0, max(self.n_shown, seg.n_objects) + 1)
        swatch = '<span style="display:inline-block;width:12px;height:12px;background:rgb{};border:1px solid #444">' \
                 "</span>"
        self.legend.value = " &nbsp; ".join(
            f"{swatch.format(tuple(int(v) for v in label_colour(k)))} {'background' if k == 0 else f'object {k}'}"
            f" ({(seg.labels == k).mean():.0%})" for k in shown)
        n = len(seg.clicks)
        self.status.value = f"{n} clicks, {seg.n_objects} objects" + (
            f", last update {1000 * seg.last_update_s:.0f} ms ({seg.last_cuts} min cuts)" if n else "")
