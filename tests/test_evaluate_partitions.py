import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script, write_fake_bsds
from featlib.evaluate import THRESHOLDS

ROOT = Path(__file__).resolve().parents[1]


fake_bsds = write_fake_bsds


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_partitions.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def script():
    return load_script("evaluate_partitions")


def run_main(script, capsys, *args) -> tuple[int, str]:
    """The script's ``main`` in this process (argument errors need no fresh interpreter): (exit status, stderr)."""
    capsys.readouterr()
    try:
        rc = script.main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    return rc, capsys.readouterr().err


def check_boundary(b: dict, n_settings: int):
    assert {"ods_f", "ois_f", "ap", "pr_curve"} <= set(b)
    assert all(0 <= b[k] <= 1 for k in ("ods_f", "ois_f", "ap", "ods_p", "ods_r"))
    curve = b["pr_curve"]
    assert len(curve["precision"]) == len(curve["recall"]) == len(curve["threshold"]) == n_settings
    assert all(0 <= v <= 1 for v in curve["precision"] + curve["recall"])


def test_evaluate_partitions_end_to_end(tmp_path):
    fake_bsds(tmp_path / "bsds", size=(96, 128))  # the learned boundary map needs objects larger than its textures
    out = tmp_path / "res.json"
    res = run_script("--root", tmp_path / "bsds", "--workers", "1", "--output", out)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["n_images"] == 2 and set(r["ods"]) == {"covering", "pri", "vi"} == set(r["ois"])
    for m in ("hierarchy", "slic", "felzenszwalb"):
        s = r["methods"][m]
        assert 0 <= s["ods"]["covering"] <= s["ois"]["covering"] <= 1  # OIS picks per image: never below ODS
        assert s["ois"]["vi"] <= s["ods"]["vi"]
        check_boundary(s["boundary"], len(s["per_setting"]["covering"]))
        assert s["boundary"]["ods_f"] > 0.2  # the synthetic scenes' edges are found
    assert "distance_map" not in r  # colour features: no learned distance map (and it is opt-in)
    assert r["units"] == {"vi": "bits"} and r["boundary_matcher"]["matcher"] == "bsds"
    assert 0 <= r["ods"]["covering"] <= r["best"]["covering"] <= 1  # each region at its own best: >= ODS
    assert "bnd ODS F / OIS F / AP" in res.stdout and "gPb-owt-ucm 0.730" in res.stdout
    assert out.with_suffix(".png").is_file()
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_partitions.py"), "--root",
                          str(tmp_path / "nothing")], capture_output=True, text=True)
    assert bad.returncode == 2 and "images" in bad.stderr


@pytest.mark.slow
def test_feature_net_distance_map_is_scored_as_an_edge_map(tmp_path):
    fake_bsds(tmp_path / "bsds", n=1)
    out = tmp_path / "res.json"
    res = run_script("--root", tmp_path / "bsds", "--workers", "1", "--method", "hierarchy", "--features",
                     "untrained-b0", "--distance-map", "--output", out)  # opt-in: as long again as the UCM's
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    check_boundary(r["distance_map"]["boundary"], 99)  # the benchmark's 99 thresholds of a map in [0, 1]
    check_boundary(r["methods"]["hierarchy"]["boundary"], len(THRESHOLDS["gradients"]))  # the features' grouping
    assert "distance map" in res.stdout
    res = run_script("--root", tmp_path / "bsds", "--workers", "1", "--method", "slic", "--no-boundary",
                     "--output", out, "--overwrite")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "boundary" not in json.loads(out.read_text())["methods"]["slic"] and "published" not in res.stdout


def test_holdout_scores_only_the_held_out_train_images(tmp_path):
    ids = fake_bsds(tmp_path / "bsds", n=4, split="train")
    out = tmp_path / "hold.json"
    res = run_script("--root", tmp_path / "bsds", "--split", "train", "--holdout", "2", "--method", "hierarchy",
                     "--no-boundary", "--workers", "1", "--nms", "off", "--merge-scales", "1", "--output", out)
    assert res.returncode == 0, res.stderr
    summary = json.loads(out.read_text())
    assert summary["n_images"] == 2 and summary["holdout"] == 2
    assert summary["hierarchy"]["nms"] is False  # the command line's settings, recorded with the run
    assert summary["hierarchy"]["merge_scales"] == [1.0]
    from featlib.data.bsds import holdout_split
    assert len(holdout_split(ids, 2)[1]) == 2


def test_bad_settings_exit_2_before_any_image(tmp_path, script, capsys):
    fake_bsds(tmp_path / "bsds", n=4, split="train")
    out, root = tmp_path / "hold.json", tmp_path / "bsds"
    cases = [(["--split", "val", "--holdout", "2"], "--split train"),
             (["--split", "train", "--mesh-weights", "coarsest"], "unknown mesh weights"),
             (["--split", "train", "--boundary-net", tmp_path / "no.pt"], "--boundary-net: no file"),
             (["--split", "train", "--boundary-net", ROOT / "featlib" / "assets" / "boundary-bsds500.pt",
               "--boundary-map", "chi2"], "need boundary_map='learned'"),
             (["--split", "train", "--boundary-map", "chi2", "--nms", "on"], "nms=True thins the learned map"),
             (["--split", "train", "--region-weight", "4"], "has none")]  # colour (lab-smooth) has no features
    cases += [(["--split", "train", flag, scales], msg) for flag in ("--boundary-scales", "--merge-scales")
              for scales, msg in (("1,half", "numbers like"), ("1,3", "in (0, 2]"))]
    for args, msg in cases:
        rc, err = run_main(script, capsys, "--root", root, *args, "--output", out)
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not out.exists()


def _scores(path: Path) -> dict:
    """RESULT.json without its timings."""
    r = json.loads(path.read_text())
    for s in [*r["methods"].values()]:
        s.pop("seconds_per_image")
        s.get("boundary", {}).pop("seconds_per_image", None)
    r.pop("wall_seconds")
    return r


@pytest.mark.slow
def test_an_interrupted_run_resumes_reuses_cached_counts_and_does_not_depend_on_workers(tmp_path):
    fake_bsds(tmp_path / "bsds", n=3)
    args = ["--root", tmp_path / "bsds", "--method", "hierarchy,slic"]
    first = tmp_path / "a" / "res.json"
    res = run_script(*args, "--workers", "1", "--limit", "2", "--output", first)
    assert res.returncode == 0, res.stderr[-2000:]
    per_image = first.with_suffix(".jsonl")
    lines = per_image.read_text().splitlines()
    assert len(lines) == 3 and "settings" in json.loads(lines[0])  # a settings line, then one line per image
    cache = first.parent / "boundary_cache.jsonl"
    n_cached = len(cache.read_text().splitlines())
    assert n_cached > 0
    # interrupted: the second image's line cut short, no RESULT yet; the same command (all 3 images) resumes
    per_image.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    first.unlink()
    first.with_suffix(".png").unlink()
    res = run_script(*args, "--workers", "1", "--output", first)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming: 1 of 3 images" in res.stderr
    keys = [json.loads(x)["key"] for x in cache.read_text().splitlines()]
    assert len(keys) == len(set(keys)) > n_cached  # image 2's maps were cached: matched once, never again
    # a fresh run in 2 processes, without the cache, gives the same scores (the matcher is seeded)
    fresh = tmp_path / "b" / "res.json"
    res = run_script(*args, "--workers", "2", "--boundary-cache", "none", "--output", fresh)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _scores(fresh) == _scores(first) and not (fresh.parent / "boundary_cache.jsonl").exists()
    # other settings never mix with the per-image results of these
    first.unlink()
    bad = run_script("--root", tmp_path / "bsds", "--method", "slic", "--workers", "1", "--output", first)
    assert bad.returncode == 2 and "other settings" in bad.stderr
