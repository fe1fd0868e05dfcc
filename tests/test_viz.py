import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from featlib.interactive import Click
from featlib.viz import features_to_rgb, label_overlay, overlay, show_features


def test_first3_is_identity_on_colours():
    x = torch.rand(3, 5, 7)
    assert np.allclose(features_to_rgb(x, "first3"), x.permute(1, 2, 0).numpy())


def test_pca_separates_two_regions_in_many_channels():
    f = np.zeros((48, 10, 10), np.float32)
    f[:, :, 5:] = np.random.default_rng(0).normal(size=(48, 1, 1))
    rgb = features_to_rgb(f)
    assert rgb.shape == (10, 10, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.abs(rgb[:, :5] - rgb[:, 5:]).max() > 0.5  # the two halves get different colours
    assert np.allclose(rgb[:, :5], rgb[0, 0])


def test_batched_and_errors():
    assert features_to_rgb(torch.rand(2, 12, 4, 4)).shape == (2, 4, 4, 3)
    with pytest.raises(ValueError, match="shape"):
        features_to_rgb(torch.rand(4, 4))
    with pytest.raises(ValueError, match="method"):
        features_to_rgb(torch.rand(3, 4, 4), "tsne")


def test_label_overlay_and_figure():
    img = np.zeros((8, 8, 3), np.uint8)
    lab = np.zeros((8, 8), int)
    lab[:, 4:] = 1
    lab[0, 0] = -1
    out = label_overlay(img, lab, boundaries=False)
    assert out[0, 0].tolist() == [0, 0, 0]  # unannotated pixel untouched
    assert not np.allclose(out[1, 1], out[1, 6])
    with pytest.raises(ValueError, match="labels shape"):
        label_overlay(img, lab[:4])
    fig = show_features(img, {1: torch.rand(3, 8, 8), 4: torch.rand(48, 2, 2)}, clusters=lab.clip(0), gt=lab)
    assert len(fig.axes) == 5


def test_overlay_tints_mask_outline_and_clicks():
    img = np.full((40, 50, 3), 100, np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:30, 10:30] = True
    out = overlay(img, mask, [Click(20, 20, True), Click(5, 45, False)])
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (100, 100, 100)  # untouched outside mask, outline and clicks
    assert tuple(out[10, 15]) == (255, 255, 0)  # outline
    assert out[15, 15, 2] > out[15, 15, 0]  # inside: tinted blue
    assert tuple(out[20, 20]) == (0, 220, 0) and tuple(out[5, 45]) == (230, 0, 0)
    np.testing.assert_array_equal(overlay(img / 255.0, mask), overlay(img, mask))  # float input in [0, 1]
