"""ipywidgets explorers for the notebooks. The hierarchy is built once; a granularity slider only re-cuts it
(milliseconds), a stride-weight slider rebuilds the distance mesh and hierarchy.

    ex = PartitionExplorer(image, features)      # features: FeatureNet dict {s: [C, h, w]} or [C, H, W]
    display(ex.widget)                           # in JupyterLab
    ex.set(n_segments=40)                        # the same update, callable headless (tests, nbmake)
"""

from __future__ import annotations

import io

import numpy as np

from featlib.cluster import FixedPartitioner, build_hierarchy
from featlib.viz import label_overlay


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class PartitionExplorer:
    """Sliders: number of segments (log scale) and, for multi-stride features, one weight per stride.

    Shows the hierarchy's partition next to SLIC and Felzenszwalb at the same segment count.
    """

    def __init__(self, image: np.ndarray, features, n_segments: int = 30, compare: bool = True):
        import ipywidgets as W

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
        import time

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
