import numpy as np
import torch
from skimage import data

from featlib.widgets import PartitionExplorer


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
