import numpy as np
import pytest
import torch
from skimage import data

from featlib.distances import lab_features
from featlib.interactive import ClickSegmenter
from featlib.viz import overlay
from featlib.widgets import PartitionExplorer, click_widget, handle_event


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
