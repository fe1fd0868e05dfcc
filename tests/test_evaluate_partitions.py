import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from skimage.morphology import thin

from featlib.boundaries import bsds_boundaries
from featlib.data.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]


def fake_bsds(root: Path, n=2):
    for i in range(n):
        scene = make_scene(np.random.default_rng(i), (48, 64))
        (root / "images" / "val").mkdir(parents=True, exist_ok=True)
        (root / "groundTruth" / "val").mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.image).save(root / "images" / "val" / f"{i}.jpg")
        cell = np.empty((1, 2), dtype=object)
        for a, seg in enumerate([scene.instances + 1, (scene.instances > 0) + 1]):
            # BSDS's Boundaries are the thinned seg2bdry of the segmentation
            cell[0, a] = {"Segmentation": seg.astype(np.uint16), "Boundaries": thin(bsds_boundaries(seg))}
        savemat(root / "groundTruth" / "val" / f"{i}.mat", {"groundTruth": cell})


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_partitions.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def check_boundary(b: dict, n_settings: int):
    assert {"ods_f", "ois_f", "ap", "pr_curve"} <= set(b)
    assert all(0 <= b[k] <= 1 for k in ("ods_f", "ois_f", "ap", "ods_p", "ods_r"))
    curve = b["pr_curve"]
    assert len(curve["precision"]) == len(curve["recall"]) == len(curve["threshold"]) == n_settings
    assert all(0 <= v <= 1 for v in curve["precision"] + curve["recall"])


def test_evaluate_partitions_end_to_end(tmp_path):
    fake_bsds(tmp_path / "bsds")
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
    assert "distance_map" not in r  # colour features: no learned distance map
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
                     "untrained-b0", "--output", out)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    check_boundary(r["distance_map"]["boundary"], 99)  # the benchmark's 99 thresholds of a map in [0, 1]
    check_boundary(r["methods"]["hierarchy"]["boundary"], 48)
    assert "distance map" in res.stdout
    res = run_script("--root", tmp_path / "bsds", "--workers", "1", "--method", "slic", "--no-boundary",
                     "--output", out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "boundary" not in json.loads(out.read_text())["methods"]["slic"] and "published" not in res.stdout
