import numpy as np
import pytest

from featlib.data.samples import iis_samples, synthetic_samples
from featlib.distances import lab_features
from featlib.graphcut import maxflow_available
from featlib.metrics import iou
from featlib.refine import degrade, evaluate, refine, upsample_scores, upsample_threshold


def blob_scene(size=96, seed=0):
    """An irregular red blob on a noisy green background -> (image uint8, mask bool)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    ang = np.arctan2(yy - size / 2, xx - size / 2)
    rad = size * (0.28 + 0.06 * np.sin(5 * ang))
    mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < rad**2
    img = np.where(mask[..., None], [190, 50, 40], [60, 150, 70]).astype(float) + rng.normal(0, 8, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), mask


def test_degrade_shapes_and_range():
    _, mask = blob_scene(100)
    s = degrade(mask, patch=16, noise=0.2, rng=np.random.default_rng(1))
    assert s.shape == (7, 7) and s.min() >= 0 and s.max() <= 1
    clean = degrade(mask, patch=16, noise=0, blur=0)
    assert clean[3, 3] == 1.0 and clean[0, 0] == 0.0
    with pytest.raises(ValueError):
        degrade(mask[None])


def test_upsample_is_consistent():
    s = np.array([[0.0, 1.0]])
    up = upsample_scores(s, (4, 8))
    assert up.shape == (4, 8)
    assert up[:, 0].max() == 0.0 and up[:, -1].min() == 1.0
    assert np.all(np.diff(up, axis=1) >= 0)


@pytest.mark.parametrize("patch", [16, 32])
@pytest.mark.parametrize("spacing", [1, 4])
def test_refine_beats_naive_on_clear_edges(patch, spacing):
    img, mask = blob_scene(128)
    scores = degrade(mask, patch=patch, noise=0.05, blur=0.5, rng=np.random.default_rng(2))
    naive = upsample_threshold(scores, mask.shape)
    out = refine(scores, lab_features(img), region_spacing=spacing)
    assert out.dtype == bool and out.shape == mask.shape
    assert iou(out, mask) > iou(naive, mask) + 0.02
    np.testing.assert_array_equal(out, refine(scores, lab_features(img), region_spacing=spacing))  # deterministic


@pytest.mark.skipif(not maxflow_available(), reason="PyMaxflow not installed")
def test_refine_backends_agree():
    img, mask = blob_scene(64)
    scores = degrade(mask, patch=16)
    a = refine(scores, lab_features(img), backend="scipy")
    b = refine(scores, lab_features(img), backend="pymaxflow")
    assert iou(a, b) > 0.99


def test_refine_constant_scores():
    img, _ = blob_scene(64)
    assert refine(np.ones((4, 4)), lab_features(img)).all()
    assert not refine(np.zeros((4, 4)), lab_features(img)).any()


def test_refine_bad_inputs():
    img, _ = blob_scene(64)
    f = lab_features(img)
    with pytest.raises(ValueError, match="\\[h, w\\]"):
        refine(np.zeros((1, 4, 4)), f)
    with pytest.raises(ValueError, match="NaN"):
        refine(np.full((4, 4), np.nan), f)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        refine(np.full((4, 4), 2.0), f)


def test_evaluate_synthetic():
    rep = evaluate(synthetic_samples(2, size=(96, 128)), patch=16)
    assert rep["n"] == 2 and len(rep["per_sample"]) == 2
    assert 0 <= rep["naive"] <= 1 and 0 <= rep["refined"] <= 1
    with pytest.raises(ValueError, match="no samples"):
        evaluate([])


def test_evaluate_grabcut_sample(shared):
    root = shared / "fixtures" / "grabcut_sample"
    if not root.is_dir():
        pytest.skip("no grabcut_sample fixture")
    rep = evaluate(iis_samples("grabcut", root, limit=1), patch=16)
    assert rep["n"] == 1 and rep["refined"] > 0.5
