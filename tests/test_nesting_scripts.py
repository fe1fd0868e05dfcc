"""The nested-masks studies behind docs/LOSS.md: scripts/evaluate_levels.py and scripts/loss_satisfiability.py."""

import json

import numpy as np
import pytest

from conftest import load_script
from featlib.data.synthetic import SA1B_LIKE, level_maps, make_scene


def test_sa1b_like_scenes_nest_three_levels_and_split_objects():
    scenes = [make_scene(np.random.default_rng([3, i]), (96, 128), **SA1B_LIKE) for i in range(4)]
    kinds = {mt["kind"] for sc in scenes for mt in sc.meta}
    assert kinds == {"object", "part", "subpart"}
    for sc in scenes:
        ids = {mt["id"]: (m, mt) for m, mt in zip(sc.masks, sc.meta)}
        for m, mt in zip(sc.masks, sc.meta):
            if mt["parent"] is not None:  # a part lies inside its parent, a level below it
                pm, pmt = ids[mt["parent"]]
                assert not (m & ~pm).any() and mt["level"] == pmt["level"] + 1
        levels = level_maps(sc)
        assert len(levels) == 3 and np.array_equal(levels[-1], sc.instances)
        # each level refines the one above it: a level-L region never straddles two level-(L-1) regions
        for coarse, fine in zip(levels, levels[1:]):
            for r in np.unique(fine[fine > 0]):
                assert len(np.unique(coarse[fine == r])) == 1
    # occlusion splits some objects into several pieces; there are many masks, as in SA-1B
    from scipy import ndimage

    pieces = [ndimage.label(m)[1] for sc in scenes for m in sc.masks]
    assert max(pieces) > 1 and np.mean([len(sc.masks) for sc in scenes]) > 40


def test_evaluate_levels_scores_every_level(tmp_path, capsys):
    out = tmp_path / "levels.json"
    assert load_script("evaluate_levels").main(["--features", "lab", "--train", "1", "--held-out", "2",
                                           "--scene-size", "96", "--output", str(out)]) == 0
    r = json.loads(out.read_text())[0]
    assert set(r["held_out"]) == {"object", "part", "subpart", "mean_ods"}
    assert all(0 < r["held_out"][k]["ods"] <= r["held_out"][k]["ois"] <= 1 for k in ("object", "part", "subpart"))
    with pytest.raises(SystemExit, match="exists"):
        load_script("evaluate_levels").main(["--features", "lab", "--output", str(out)])


def test_loss_satisfiability_reports_every_stride(tmp_path):
    mod = load_script("loss_satisfiability")
    masks, valid, groups = mod.scene_batch(1, hw=(64, 96))
    r = mod.run(mod.OBJECTIVES["nested, 1024, adjacent /1 /2"], masks, valid, groups, steps=2)
    assert set(r["strides"]) == {1, 2, 4, 8, 16}
    assert all(0 <= v["push_unmet"] <= 1 and 0 <= v["pull_unmet"] <= 1 for v in r["strides"].values())
