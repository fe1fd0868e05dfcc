"""featlib.oracle_cues: another person's grouping as the click graph's cues, and evaluate_iis --oracle-annotator."""

import json

import numpy as np
import pytest
from test_iis import _script
from test_interactive import ring_scene

from conftest import write_fake_bsds
from featlib.distances import lab_features
from featlib.interactive import ClickSegmenter
from featlib.metrics import iou
from featlib.oracle_cues import CUES, FixedPartition, oracle_cues, segment_borders, segment_embedding


def test_segment_borders_mark_one_pixel_per_border():
    s = np.zeros((4, 6), np.int32)
    s[:, 3:] = 1
    p = segment_borders(s)
    assert p.dtype == np.float32 and set(np.unique(p)) == {0.0, 1.0}
    np.testing.assert_array_equal(np.nonzero(p.any(0))[0], [2])  # the left pixel of each crossing pair
    assert not segment_borders(np.full((3, 3), 7)).any()


def test_segment_embedding_is_one_vector_per_segment():
    s = np.array([[0, 0, 1], [2, 2, 1]])
    e = segment_embedding(s, dim=8, scale=0.2)
    assert e.shape == (8, 2, 3)
    np.testing.assert_array_equal(e[:, 0, 0], e[:, 0, 1])
    np.testing.assert_allclose(np.linalg.norm(e, axis=0), 0.2, rtol=1e-5)
    assert np.linalg.norm(e[:, 0, 0] - e[:, 0, 2]) > 0.01
    np.testing.assert_array_equal(e, segment_embedding(s))  # fixed seed


def test_oracle_cues_extend_every_stride_and_check_their_input():
    s = np.zeros((9, 10), np.int64)
    s[4:] = 3
    feats = {1: np.zeros((3, 9, 10)), 2: np.ones((5, 5, 5))}
    out, kw = oracle_cues(s, feats, CUES)
    assert out[1].shape == (11, 9, 10) and out[2].shape == (13, 5, 5)
    np.testing.assert_array_equal(out[2][5:], segment_embedding(s)[:, ::2, ::2])
    assert isinstance(kw["hierarchy"], FixedPartition) and kw["hierarchy"].partition(n_segments=25) is s
    np.testing.assert_array_equal(kw["boundary_map"], segment_borders(s))
    out, kw = oracle_cues(s, np.zeros((3, 9, 10)), ("map",))  # one [C, H, W] map: stride 1
    assert kw.keys() == {"boundary_map"} and out[1].shape == (3, 9, 10)
    with pytest.raises(ValueError, match="unknown oracle cues"):
        oracle_cues(s, feats, ("map", "gt"))
    with pytest.raises(ValueError, match="stride 2"):
        oracle_cues(s, {2: np.zeros((3, 4, 5))})
    with pytest.raises(ValueError, match="int"):
        oracle_cues(s.astype(float), feats)


def test_oracle_cues_let_one_click_take_a_segment_colour_cannot_see():
    """A disk of the background's grey: with the person's grouping as cues one click gives the disk; without, not."""
    img, disk, _ = ring_scene()
    segmentation = disk.astype(np.int32)
    for cues in (("map",), ("features",)):
        feats, kw = oracle_cues(segmentation, lab_features(img), cues)
        seg = ClickSegmenter(feats, img, region_spacing=1, **kw)
        seg.add_click(20, 20, True)
        assert iou(seg.mask, disk) > 0.9, cues
    plain = ClickSegmenter(lab_features(img), img, region_spacing=1)
    plain.add_click(20, 20, True)
    assert iou(plain.mask, disk) < 0.5


def test_lone_click_stands_for_the_oracle_partition():
    """With the partition cue a lone first click stands for its person-drawn segment: a disk of two colours (and a
    grey background) gives the disk from a click in either half or on its seam."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    disk = (yy - 24) ** 2 + (xx - 24) ** 2 < 14**2
    img = 128 + rng.normal(0, 6, (48, 48, 3))
    img[disk & (xx < 24)] += (80, -40, -40)
    img[disk & (xx >= 24)] += (-40, -40, 80)
    img = np.clip(img, 0, 255).astype(np.uint8)
    _, kw = oracle_cues(disk.astype(np.int32), lab_features(img), ("partition",))
    for y, x in ((24, 16), (24, 32), (15, 24)):
        seg = ClickSegmenter(lab_features(img), img, region_spacing=1, lone_click_segments=2, **kw)
        seg.add_click(y, x, True)
        assert iou(seg.mask, disk) > 0.9, (y, x)


def test_evaluate_iis_oracle_annotator(tmp_path):
    """--oracle-annotator K reads annotator K's segmentation of each object's image; bad uses exit 2."""
    write_fake_bsds(tmp_path / "bsds", n=2, split="val", size=(48, 64))
    mod = _script()
    args = ["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--features", "lab", "--max-clicks", "2",
            "--long-clicks", "0", "--no-progress", "--workers", "1"]
    runs = {}
    for name, extra in (("plain", []), ("oracle", ["--oracle-annotator", "1", "--oracle-cues", "map,features"])):
        out = tmp_path / f"{name}.json"
        assert mod.main([*args, *extra, "--output", str(out)]) == 0
        runs[name] = json.loads(out.read_text())
    assert runs["oracle"]["oracle"] == {"annotator": 1, "cues": ["map", "features"]} and runs["plain"]["oracle"] is None
    assert [o["name"] for o in runs["oracle"]["objects"]] == [o["name"] for o in runs["plain"]["objects"]]
    assert [o["ious"] for o in runs["oracle"]["objects"]] != [o["ious"] for o in runs["plain"]["objects"]]
    for extra in (["--oracle-annotator", "0"], ["--oracle-annotator", "2"], ["--oracle-annotator", "1",
                  "--oracle-cues", "map,gt"], ["--oracle-annotator", "1", "--multi"]):
        assert mod.main([*args, *extra, "--output", str(tmp_path / "bad.json")]) == 2, extra
