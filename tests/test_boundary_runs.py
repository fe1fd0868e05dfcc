"""featlib.boundary_runs: the scheduler farms out each distinct map once, reuses cached and shared maps, skips empty
ones, and per-image results resume; checked with stand-in stage functions that count their calls."""

import json

import numpy as np
import pytest

from featlib import boundary_runs as br

SHAPE = (6, 8)
GT = [np.eye(6, 8, dtype=bool), np.eye(6, 8, 1, dtype=bool)]


def _map(k: int) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    if k:
        m[k % 6, :k] = True
    return m


def image_fn(job):
    """Stage 1 of image job[2]: two sweeps; image "b" shares maps 1 and 2 with image "a"; map 0 is empty."""
    image_id = job[2]
    extra = 3 if image_id == "a" else 4
    maps = {"ucm": [_map(0), _map(1), _map(2)], "segs": [_map(2), _map(extra)]}
    return {"id": image_id, "gt": br.gt_info(GT),
            "ucm": {"boundary_work": br.work((maps["ucm"], [0, 1, 1, 2]), 0.5)},
            "segs": {"boundary_work": br.work((maps["segs"], [1, 0]), 0.25)}}


CALLS: list = []


def match_fn(job, packed, shape, matcher):
    m = br.unpack(packed, shape)
    CALLS.append((job[2], int(m.sum())))
    return [int(m.sum()), 99, int(m.sum()) // 2, int(m.sum())], 1.0


def test_pack_round_trip_and_gt_info():
    m = np.random.default_rng(0).random((7, 9)) > 0.5
    assert (br.unpack(br.pack(m), m.shape) == m).all()
    info = br.gt_info(GT)
    assert info["sum_r"] == int(GT[0].sum() + GT[1].sum()) and info["shape"] == list(SHAPE)
    with pytest.raises(ValueError, match="annotator"):
        br.gt_info([])


@pytest.mark.parametrize("in_flight", [1, 2])
def test_each_distinct_map_is_matched_once_and_results_are_assembled(tmp_path, in_flight):
    CALLS.clear()
    cache = br.CountsCache(tmp_path / "cache.jsonl")
    jobs = [("root", "val", "a"), ("root", "val", "b")]
    with br.InProcess() as ex:
        out = {r["id"]: r for r in br.run_images(ex, jobs, image_fn, match_fn, "bsds", cache, in_flight)}
    assert set(out) == {"a", "b"} and "gt" not in out["a"]
    # maps 1 and 2 once for both images (shared, or cached after image a), 3 and 4 once each; the empty map never
    assert sorted(n for _, n in CALLS) == [1, 2, 3, 4]
    ucm = out["a"]["ucm"]["boundary"]
    empty = [0, br.gt_info(GT)["sum_r"], 0, 0]  # (0, every annotator's pixels, 0, 0) without the matcher
    assert ucm["counts"] == [empty, [1, 99, 0, 1], [1, 99, 0, 1], [2, 99, 1, 2]]
    assert out["a"]["segs"]["boundary"]["counts"] == [[3, 99, 1, 3], [2, 99, 1, 2]]
    assert "boundary_work" not in out["a"]["ucm"]
    assert ucm["seconds"] == pytest.approx(0.5 + 2.0)  # making the maps + matching maps 1 and 2, each timed once
    # a second run finds every map in the cache file: nothing is matched
    CALLS.clear()
    with br.InProcess() as ex:
        again = {r["id"]: r for r in br.run_images(ex, jobs, image_fn, match_fn, "bsds",
                                                   br.CountsCache(tmp_path / "cache.jsonl"), in_flight)}
    assert CALLS == [] and again["b"]["segs"]["boundary"]["counts"] == out["b"]["segs"]["boundary"]["counts"]
    # another matcher is another key
    with br.InProcess() as ex:
        list(br.run_images(ex, jobs[:1], image_fn, match_fn, "lap", br.CountsCache(tmp_path / "cache.jsonl"), 1))
    assert sorted(n for _, n in CALLS) == [1, 2, 3]
    with pytest.raises(ValueError, match="in_flight"):
        list(br.run_images(br.InProcess(), jobs, image_fn, match_fn, "bsds", cache, 0))


def test_resume_hands_back_finished_images_of_the_same_settings_only(tmp_path):
    path = tmp_path / "res.jsonl"
    settings = {"split": "val", "grid": [0.1, 0.2]}
    assert br.resume(path, settings) == {} and json.loads(path.read_text()) == {"settings": settings}
    with path.open("a") as f:
        f.write(json.dumps({"id": "a", "x": 1}) + "\n" + '{"id": "b", "x"')  # b cut short by an interruption
    assert br.resume(path, settings) == {"a": {"id": "a", "x": 1}}
    assert path.read_text().endswith("\n")  # the next result starts its own line
    with pytest.raises(ValueError, match="other settings"):
        br.resume(path, {**settings, "split": "test"})
    assert br.resume(path, {**settings, "split": "test"}, overwrite=True) == {}
    assert len(path.read_text().splitlines()) == 1
    with path.open("a") as f:
        f.write(json.dumps({"id": "a", "x": 1}) + "\n")
    assert br.resume(path, {**settings, "split": "test"}) == {"a": {"id": "a", "x": 1}}
    assert br.resume(path, {**settings, "split": "test"}, overwrite=True) == {}  # same settings: afresh all the same
    assert len(path.read_text().splitlines()) == 1
