"""The shipped model ("bsds500-b0", featlib/assets/): loads with weights_only, has its card, gives sane features,
and on BSDS500 val (with ../shared) partitions better than Lab colour."""

import numpy as np
import pytest
import skimage.data
import torch

from featlib import features
from featlib.checkpoint import model_card
from featlib.data.bsds import load_bsds
from featlib.data.synthetic import make_scene
from featlib.evaluate import score_partition

PATH = features.ASSETS / features.SHIPPED["bsds500-b0"]


@pytest.fixture(scope="module")
def shipped():
    return features.load("bsds500-b0")


def test_file_is_small_fp16_and_loads_weights_only():
    assert PATH.stat().st_size <= 8 * 2**20
    payload = torch.load(PATH, map_location="cpu", weights_only=True)  # plain tensors and values, no pickled code
    floats = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    card = model_card(PATH)
    assert card["data"] == "bsds500" and "research" in card["terms"] and card["steps"] >= 1000
    assert card["config"]["colour_skip"] and len(card["commit"]) == 40


def test_outputs_shapes_and_range(shipped):
    scene = make_scene(np.random.default_rng(7), (96, 128))
    feats = shipped(scene.image)
    assert shipped.model.colour_skip and shipped.model.strides == (1, 2, 4, 8, 16)
    for s, f in feats.items():
        assert f.shape == (3 * s * s, -(-96 // s), -(-128 // s)) and f.dtype == np.float32
        assert np.isfinite(f).all() and 0 <= f.min() and f.max() <= 1


def test_reproduces_the_reference_recorded_at_export(shipped):
    """The card holds per-stride mean/std of the shipped weights' features on a bundled photo (export_model.py):
    the file, the loader and today's model code must still give them (1e-3: far above CPU float rounding)."""
    ref = model_card(PATH)["reference"]
    assert ref["image"] == "skimage.data.coffee()[::4, ::4]"
    feats = shipped(skimage.data.coffee()[::4, ::4])
    for s, f in feats.items():
        assert abs(f.mean() - ref["mean"][str(s)]) < 1e-3 and abs(f.std() - ref["std"][str(s)]) < 1e-3, s


def test_covering_above_lab_on_a_few_bsds_val_images(shared, shipped):
    root = shared / "datasets" / "bsds500"
    if not (root / "images" / "val").is_dir():
        pytest.skip("BSDS500 val is not in ../shared")
    # at the ground truth's own piece count (evaluate.score_partition), each source with its hierarchy defaults.
    # Measured 2026-12-02: 0.476 vs 0.464. (Over all 100 val images at one dataset-wide threshold, covering ODS is
    # 0.517 vs Lab's 0.521: docs/MODEL_CARD.md. This is a floor against regressions, not the benchmark.)
    lab = features.load("lab-smooth")
    ours, theirs = [], []
    for rec in load_bsds(root, "val", limit=8):
        gts = [s + 1 for s in rec.segmentations]
        ours.append(score_partition(shipped(rec.image), gts, size=rec.image.shape[:2], **shipped.hierarchy_kwargs())[1])
        theirs.append(score_partition(lab(rec.image), gts)[1])
    assert np.mean(ours) > np.mean(theirs), (ours, theirs)
