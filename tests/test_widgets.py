import numpy as np
import pytest
import torch
from skimage import data

from featlib.distances import lab_features
from featlib.interactive import ClickSegmenter
from featlib.multiclick import LabelClick, MultiClickSegmenter
from featlib.viz import overlay
from featlib.widgets import (
    NEW_OBJECT,
    LabelClickWidget,
    PartitionExplorer,
    click_widget,
    handle_event,
    label_click_overlay,
    label_colour,
)


def test_slider_moves_recut_and_reweight():
    img = data.astronaut()[::8, ::8]
    feats = {s: torch.rand(3 * s * s, -(-64 // s), -(-64 // s)).numpy() for s in (1, 4)}
    ex = PartitionExplorer(img, feats, n_segments=10)
    h = ex.hierarchy
    labels = ex.set(n_segments=5)
    assert ex.hierarchy is h and labels["hierarchy"].max() == 4  # a re-cut, not a rebuild
    assert labels["SLIC"].shape == img.shape[:2] and ex.views["hierarchy"].value[:4] == b"\x89PNG"
    ex.set(weights={4: 0.0})
    assert ex.hierarchy is not h  # stride weights rebuild the hierarchy
    ex.n_slider.value = 7  # the widget callback path
    assert ex.labels["hierarchy"].max() == 6


def test_widget_events_and_overlay():
    img = data.astronaut()[::8, ::8]  # 64 x 64
    seg = ClickSegmenter(lab_features(img), img)
    assert handle_event(seg, {"type": "click", "button": 0, "dataX": 25, "dataY": 26})
    assert seg.clicks[-1].positive and (seg.clicks[-1].y, seg.clicks[-1].x) == (26, 25)
    assert handle_event(seg, {"type": "contextmenu", "button": 2, "dataX": 60, "dataY": 2})
    assert handle_event(seg, {"type": "click", "button": 0, "shiftKey": True, "dataX": 1, "dataY": 1})
    assert [c.positive for c in seg.clicks] == [True, False, False]
    assert not handle_event(seg, {"type": "click", "dataX": 500, "dataY": 1})  # outside: ignored in the UI
    assert not handle_event(seg, {"type": "mousemove", "dataX": 5, "dataY": 5})
    ov = overlay(img, seg.mask, seg.clicks)
    assert ov.shape == img.shape and ov.dtype == np.uint8 and not np.array_equal(ov, img)
    pytest.importorskip("ipyevents")
    box = click_widget(seg)
    assert len(box.children) == 2


def _multi_widget(n_objects=1):
    pytest.importorskip("ipyevents")
    img = data.astronaut()[::8, ::8]  # 64 x 64
    return LabelClickWidget(MultiClickSegmenter(lab_features(img), img), n_objects=n_objects)


def test_label_widget_picker_and_clicks():
    w = _multi_widget()
    seg = w.segmenter
    assert [v for _, v in w.picker.options] == [0, 1, NEW_OBJECT] and w.label == 1
    assert w.handle({"type": "click", "button": 0, "dataX": 25, "dataY": 26})
    assert seg.clicks[-1].label == 1 and seg.labels[26, 25] == 1
    w.picker.value = NEW_OBJECT  # "+ new object": object 2 appears and is picked
    assert w.label == 2 and [v for _, v in w.picker.options] == [0, 1, 2, NEW_OBJECT]
    assert w.handle({"type": "click", "button": 0, "dataX": 55, "dataY": 50})
    assert seg.labels[50, 55] == 2 and seg.n_objects == 2
    # right click and shift+left: background, whatever is picked
    assert w.handle({"type": "contextmenu", "button": 2, "dataX": 2, "dataY": 60})
    assert w.handle({"type": "click", "button": 0, "shiftKey": True, "dataX": 1, "dataY": 1})
    assert [c.label for c in seg.clicks] == [1, 2, 0, 0] and w.label == 2
    w.picker.value = 0
    assert w.handle({"type": "click", "button": 0, "dataX": 40, "dataY": 5}) and seg.clicks[-1].label == 0
    assert not w.handle({"type": "click", "dataX": 500, "dataY": 1})  # outside: ignored in the UI
    assert not w.handle({"type": "mousemove", "dataX": 5, "dataY": 5})
    assert w.view.value[:4] == b"\x89PNG" and "object 2" in w.legend.value and "5 clicks" in w.status.value
    shown = w.view.value
    w.undo.click()  # the button's handler: one click fewer, the view redrawn
    assert len(seg.clicks) == 4 and w.view.value != shown and "4 clicks" in w.status.value
    w.reset.click()
    assert seg.clicks == [] and not seg.labels.any()


def test_label_widget_grows_picker_for_segmenter_labels():
    w = _multi_widget(n_objects=3)
    assert [v for _, v in w.picker.options] == [0, 1, 2, 3, NEW_OBJECT]
    w.segmenter.add_click(10, 10, 5)  # a label added outside the widget (e.g. by code) shows up after the next click
    w.picker.value = 2
    assert w.handle({"type": "click", "button": 0, "dataX": 50, "dataY": 50})
    assert [v for _, v in w.picker.options] == [0, 1, 2, 3, 4, 5, NEW_OBJECT] and w.label == 2


def test_label_overlay_colours_each_label():
    img = np.full((40, 40, 3), 100, np.uint8)
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[25:35, 25:35] = 2
    clicks = [LabelClick(10, 10, 1), LabelClick(30, 30, 2), LabelClick(2, 38, 0)]
    ov = label_click_overlay(img, labels, clicks)
    assert ov.shape == img.shape and ov.dtype == np.uint8
    assert (ov[labels == 0][:10] == 100).all()  # background untouched away from clicks
    inner1, inner2 = ov[8, 12], ov[28, 32]  # inside, away from outline and clicks
    assert not np.array_equal(inner1, inner2) and not np.array_equal(inner1, img[0, 0])
    np.testing.assert_array_equal(ov[30, 30], label_colour(2))
    np.testing.assert_array_equal(ov[2, 38], label_colour(0))
    assert not np.array_equal(label_colour(1), label_colour(2))
    with pytest.raises(ValueError, match="labels shape"):
        label_click_overlay(img, labels[:10])


def test_explorer_on_features_precomputes_baselines_at_the_asked_count():
    """A Features source uses its default grouping; baselines are precomputed, so a slider tick runs no SLIC, and
    they show the count nearest the one asked (not SLIC's own idea of it)."""
    from featlib import cluster
    from featlib.features import load

    img = data.astronaut()[::6, ::6]
    ex = PartitionExplorer(img, load("lab"), n_segments=30)
    assert ex.grouping == "gradients" and ex.strides == []
    calls = []
    orig = cluster.FixedPartitioner._run
    cluster.FixedPartitioner._run = lambda self, *a: calls.append(a) or orig(self, *a)
    try:
        labels = ex.set(n_segments=30)
    finally:
        cluster.FixedPartitioner._run = orig
    assert calls == []  # a lookup, not a rerun
    for name in ("SLIC", "Felzenszwalb"):
        counts = [c for c, _ in ex.baselines[name]._table]
        best = min(counts, key=lambda c: abs(np.log(c) - np.log(30)))
        assert labels[name].max() + 1 == best and 15 <= best <= 60
    assert labels["hierarchy"].max() + 1 == 30
