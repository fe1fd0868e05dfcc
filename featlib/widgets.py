"""ipywidgets explorers for the notebooks: partitions at any granularity, and click segmentation.

    ex = PartitionExplorer(image, features)      # features: FeatureNet dict {s: [C, h, w]} or [C, H, W]
    display(ex.widget)                           # in JupyterLab
    ex.set(n_segments=40)                        # the same update, callable headless (tests, nbmake)
    click_widget(ClickSegmenter(features, image))   # left click = positive, right / shift+left = negative

PartitionExplorer builds the hierarchy once; a granularity slider only re-cuts it (milliseconds), a stride-weight
slider rebuilds the distance mesh and hierarchy. ``click_widget`` redraws ``featlib.viz.overlay`` after each click;
``handle_event`` is its event rule, testable without a browser.

ipywidgets and ipyevents (extra ``notebooks``) are imported when a widget is built, so this module imports without
them.
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from featlib.cluster import FixedPartitioner, build_hierarchy
from featlib.interactive import ClickSegmenter
from featlib.viz import label_overlay, overlay


def _png(rgb: np.ndarray) -> bytes:
    """float [H, W, 3] in [0, 1] or uint8 [H, W, 3] -> PNG bytes."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


class PartitionExplorer:
    """Sliders: number of segments (log scale) and, for multi-stride features, one weight per stride.

    Shows the hierarchy's partition next to SLIC and Felzenszwalb at the same segment count.
    """

    def __init__(self, image: np.ndarray, features, n_segments: int = 30, compare: bool = True):
        import ipywidgets as W  # optional extra, imported on use (module docstring)

        self.image, self.features, self.compare = np.asarray(image), features, compare
        self.strides = sorted(features) if isinstance(features, dict) else []
        self.weights = {s: 1.0 for s in self.strides}
        self._build()
        self.n_slider = W.IntSlider(value=n_segments, min=2, max=min(400, self.hierarchy.n_regions), step=1,
                                    description="segments", continuous_update=True)
        self.w_sliders = {s: W.FloatSlider(value=1.0, min=0.0, max=4.0, step=0.25, description=f"/{s} weight",
                                           continuous_update=False) for s in self.strides}
        self.views = {name: W.Image(format="png", width=320) for name in
                      (["hierarchy", "SLIC", "Felzenszwalb"] if compare else ["hierarchy"])}
        self.status = W.HTML()
        self.n_slider.observe(lambda ch: self.set(n_segments=ch["new"]), names="value")
        for s, sl in self.w_sliders.items():
            sl.observe(lambda ch, s=s: self.set(weights={s: ch["new"]}), names="value")
        boxes = [W.VBox([W.HTML(f"<b>{k}</b>"), v]) for k, v in self.views.items()]
        self.widget = W.VBox([self.n_slider, W.HBox(list(self.w_sliders.values())), W.HBox(boxes), self.status])
        self.set(n_segments=n_segments)

    def _build(self):
        weights = self.weights if self.strides and any(self.weights.values()) else None
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
        if self.compare:
            labels["SLIC"] = FixedPartitioner(self.image, "slic").partition(n_segments=n)
            labels["Felzenszwalb"] = FixedPartitioner(self.image, "felzenszwalb").partition(n_segments=n)
        for name, lab in labels.items():
            self.views[name].value = _png(label_overlay(self.image, lab, alpha=0.45))
        self.status.value = (f"hierarchy cut: {cut_ms:.1f} ms for {n} segments; "
                             + ", ".join(f"{k}: {int(v.max()) + 1} segments" for k, v in labels.items()))
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
