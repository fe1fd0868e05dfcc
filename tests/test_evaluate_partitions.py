import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

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
            cell[0, a] = {"Segmentation": seg.astype(np.uint16), "Boundaries": np.zeros(seg.shape, bool)}
        savemat(root / "groundTruth" / "val" / f"{i}.mat", {"groundTruth": cell})


def test_evaluate_partitions_end_to_end(tmp_path):
    fake_bsds(tmp_path / "bsds")
    out = tmp_path / "res.json"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_partitions.py"), "--root",
                          str(tmp_path / "bsds"), "--workers", "1", "--output", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["n_images"] == 2 and set(r["ods"]) == {"covering", "pri", "vi"} == set(r["ois"])
    for m in ("hierarchy", "slic", "felzenszwalb"):
        s = r["methods"][m]
        assert 0 <= s["ods"]["covering"] <= s["ois"]["covering"] <= 1  # OIS picks per image: never below ODS
        assert s["ois"]["vi"] <= s["ods"]["vi"]
    assert out.with_suffix(".png").is_file()
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_partitions.py"), "--root",
                          str(tmp_path / "nothing")], capture_output=True, text=True)
    assert bad.returncode == 2 and "images" in bad.stderr
