import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

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


def test_png_overlays_per_level(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    scene = make_scene(np.random.default_rng(0), (48, 64))
    Image.fromarray(scene.image).save(src / "a.png")
    cmd = [sys.executable, str(ROOT / "scripts" / "segment_images.py"), "--features", "lab-smooth", "--input", str(src),
           "--output", str(tmp_path / "out"), "--levels", "2,6", "--png"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    labels = np.load(tmp_path / "out" / "a.npz")["labels_6"]
    png = np.asarray(Image.open(tmp_path / "out" / "a_6.png"))
    assert png.shape == (48, 64, 3) and png.dtype == np.uint8
    # boundaries of the saved labels are white, the rest is the photo tinted
    inner = find_boundaries(labels, mode="inner")
    assert (png[inner] == 255).all() and not (png[~inner] == 255).all(axis=-1).all()
    assert (tmp_path / "out" / "a_2.png").is_file() and not list((tmp_path / "out").glob(".*tmp*"))
