import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from featlib.checkpoint import save_model
from featlib.data.synthetic import make_scene
from featlib.model import build_model

ROOT = Path(__file__).resolve().parents[1]


def test_segment_images_outputs_resume_and_skips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(make_scene(np.random.default_rng(i), (48, 64)).image).save(src / f"img{i}.png")
    (src / "broken.jpg").write_bytes(b"not an image")
    ckpt = tmp_path / "model.pt"
    save_model(build_model("b0", strides=(1, 4)).eval(), ckpt)
    cmd = [sys.executable, str(ROOT / "scripts" / "segment_images.py"), "--features", str(ckpt), "--input", str(src),
           "--output", str(tmp_path / "out"), "--levels", "3,8", "--save-features"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    z = np.load(tmp_path / "out" / "img0.npz")
    assert z["ucm"].shape == (97, 129) and z["labels_3"].max() == 2 and z["labels_8"].max() == 7
    assert z["features_4"].dtype == np.float16 and z["features_4"].shape == (48, 12, 16)
    assert "broken.jpg" in (tmp_path / "out" / "skipped_rank0.txt").read_text()
    before = (tmp_path / "out" / "img0.npz").stat().st_mtime_ns
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    assert (tmp_path / "out" / "img0.npz").stat().st_mtime_ns == before  # done outputs are skipped
