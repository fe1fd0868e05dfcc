"""Synthetic scene folders record their generator settings; ensure_scenes reuses a folder only when they match."""

import json

import numpy as np
import pytest
from PIL import Image

from featlib.data import sa1b_dataset, synthetic
from featlib.data.synthetic import SETTINGS_NAME, ensure_scenes, read_scene_settings, scene_settings, write_scenes

SIZE = (48, 64)


def _jpgs(root):
    return sorted(p.name for p in root.glob("sa_*.jpg"))


def test_write_scenes_records_settings_beside_an_sa1b_folder(tmp_path):
    write_scenes(tmp_path, 3, size=SIZE, seed=4, part_prob=0.25)
    record = read_scene_settings(tmp_path)
    assert record["count"] == 3 and record["generator_version"] == synthetic.SCENES_VERSION
    s = record["settings"]
    assert s["size"] == list(SIZE) and s["seed"] == 4 and s["part_prob"] == 0.25 and s["shards"] is None
    assert {"n_objects", "part_prob", "first_id"} <= set(s)  # make_scene's defaults are recorded too
    assert s == scene_settings(size=SIZE, seed=4, part_prob=0.25)
    assert json.loads((tmp_path / SETTINGS_NAME).read_text()) == record
    assert len(sa1b_dataset(tmp_path, size=32, augment=False)) == 3  # the settings file is not read as an annotation
    write_scenes(tmp_path / "shards", 4, size=SIZE, shards=2)
    assert read_scene_settings(tmp_path / "shards")["settings"]["shards"] == 2


def test_ensure_scenes_reuses_matching_folders(tmp_path, capsys):
    first = ensure_scenes(tmp_path, 3, size=SIZE, seed=1)
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert ensure_scenes(tmp_path, 3, size=SIZE, seed=1) == first
    assert ensure_scenes(tmp_path, 2, size=SIZE, seed=1) == first[:2]  # the first n of a larger set
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamp
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("change, why", [
    (dict(seed=2), "seed 1 -> 2"),
    (dict(size=(40, 56)), "size [48, 64] -> [40, 56]"),
    (dict(part_prob=0.9), "part_prob"),  # a make_scene keyword (its default: recorded)
])
def test_ensure_scenes_rebuilds_when_settings_change(tmp_path, capsys, change, why):
    ensure_scenes(tmp_path, 4, size=SIZE, seed=1)
    capsys.readouterr()
    kwargs = {"size": SIZE, "seed": 1, **change}
    got = ensure_scenes(tmp_path, 2, **kwargs)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "rebuilding" in out[0] and why in out[0], out
    assert _jpgs(tmp_path) == ["sa_1.jpg", "sa_2.jpg"] and [p.name for p in got] == _jpgs(tmp_path)  # old 3, 4 gone
    assert not list(tmp_path.glob("sa_3*")) and read_scene_settings(tmp_path)["settings"] == scene_settings(**kwargs)
    fresh = tmp_path / "fresh"
    write_scenes(fresh, 2, **kwargs)
    for name in ("sa_1.json", "sa_2.json", "sa_1.instances.png"):
        assert (tmp_path / name).read_bytes() == (fresh / name).read_bytes()
    assert np.asarray(Image.open(got[0])).shape[:2] == tuple(kwargs["size"])


def test_ensure_scenes_rebuilds_old_short_or_other_version_folders(tmp_path, capsys, monkeypatch):
    write_scenes(tmp_path, 2, size=SIZE)
    (tmp_path / SETTINGS_NAME).unlink()  # a folder from before settings were recorded
    ensure_scenes(tmp_path, 2, size=SIZE)
    assert "written before settings were recorded" in capsys.readouterr().out
    ensure_scenes(tmp_path, 3, size=SIZE)
    assert "2 scenes, 3 wanted" in capsys.readouterr().out and len(_jpgs(tmp_path)) == 3
    monkeypatch.setattr(synthetic, "SCENES_VERSION", synthetic.SCENES_VERSION + 1)
    ensure_scenes(tmp_path, 3, size=SIZE)
    assert "generator version" in capsys.readouterr().out
    assert read_scene_settings(tmp_path)["generator_version"] == synthetic.SCENES_VERSION
    (tmp_path / "notes.txt").write_text("mine")
    ensure_scenes(tmp_path, 1, size=SIZE, seed=5)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only write_scenes' own files are removed


def test_scene_settings_refuse_unknown_names(tmp_path):
    with pytest.raises(TypeError, match="no_such_knob"):
        write_scenes(tmp_path, 1, size=SIZE, no_such_knob=3)
    with pytest.raises(TypeError, match="no_such_knob"):
        ensure_scenes(tmp_path, 1, size=SIZE, no_such_knob=3)
    with pytest.raises(ValueError, match="flat folders"):
        ensure_scenes(tmp_path, 1, size=SIZE, shards=2)
    assert not list(tmp_path.iterdir())
