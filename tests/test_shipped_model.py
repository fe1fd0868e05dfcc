"""The shipped models (featlib/assets/, features.SHIPPED): each loads with weights_only, has its card, gives sane
features, reproduces the fingerprint taken at export, and on BSDS500 val (with ../shared) partitions better than Lab
colour. One contract, parametrised over every shipped name."""

import numpy as np
import pytest
import skimage.data
import torch

from featlib import features
from featlib.checkpoint import model_card
from featlib.data.bsds import load_bsds
from featlib.data.synthetic import make_scene
from featlib.evaluate import score_partition

NAMES = sorted(features.SHIPPED)
ANNOTATORS = {"bsds500-b0": "one", "bsds500-b0-all": "all"}  # what each name promises about its recipe


def _path(name):
    return features.ASSETS / features.SHIPPED[name]


@pytest.fixture(scope="module", params=NAMES)
def shipped(request):
    return request.param, features.load(request.param)


def test_every_shipped_name_is_registered_and_described():
    assert set(NAMES) == set(ANNOTATORS) and set(NAMES) <= set(features.names())
    assert all(features.describe()[n] for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_file_is_small_fp16_and_loads_weights_only(name):
    path = _path(name)
    assert path.stat().st_size <= 8 * 2**20
    payload = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and values, no pickled code
    floats = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    card = model_card(path)
    assert card["data"] == "bsds500" and "research" in card["terms"] and card["steps"] >= 1000
    assert card["config"]["colour_skip"] and len(card["commit"]) == 40
    assert card["config"]["annotators"] == ANNOTATORS[name]


def test_outputs_shapes_and_range(shipped):
    _, f = shipped
    scene = make_scene(np.random.default_rng(7), (96, 128))
    feats = f(scene.image)
    assert f.model.colour_skip and f.model.strides == (1, 2, 4, 8, 16)
    for s, x in feats.items():
        assert x.shape == (3 * s * s, -(-96 // s), -(-128 // s)) and x.dtype == np.float32
        assert np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


def test_reproduces_the_reference_recorded_at_export(shipped):
    """The card holds per-stride mean/std of the shipped weights' features on a bundled photo (export_model.py):
    the file, the loader and today's model code must still give them (1e-3: far above CPU float rounding)."""
    name, f = shipped
    ref = model_card(_path(name))["reference"]
    assert ref["image"] == "skimage.data.coffee()[::4, ::4]"
    feats = f(skimage.data.coffee()[::4, ::4])
    for s, x in feats.items():
        assert abs(x.mean() - ref["mean"][str(s)]) < 1e-3 and abs(x.std() - ref["std"][str(s)]) < 1e-3, s


def test_the_two_models_differ():
    a, b = (features.load(n).model.state_dict() for n in NAMES)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_covering_above_lab_on_a_few_bsds_val_images(shared, shipped):
    root = shared / "datasets" / "bsds500"
    if not (root / "images" / "val").is_dir():
        pytest.skip("BSDS500 val is not in ../shared")
    # at the ground truth's own piece count (evaluate.score_partition), each source with its hierarchy defaults.
    # Measured 2026-12-02 (exact count): bsds500-b0 0.467, bsds500-b0-all 0.481, Lab 0.461 (with the old count + 1:
    # 0.475, 0.479, 0.464). (Over all 100 val images at one dataset-wide threshold covering ODS is 0.517 / 0.529 vs
    # Lab's 0.521: docs/MODEL_CARD.md. This is a floor against regressions, not the benchmark.)
    _, f = shipped
    lab = features.load("lab-smooth")
    ours, theirs = [], []
    for rec in load_bsds(root, "val", limit=8):
        gts = [s + 1 for s in rec.segmentations]
        ours.append(score_partition(f(rec.image), gts, size=rec.image.shape[:2], **f.hierarchy_kwargs())[1])
        theirs.append(score_partition(lab(rec.image), gts)[1])
    assert np.mean(ours) > np.mean(theirs), (ours, theirs)
