"""Per-worker SA-1B loading speed: naive loader vs featlib on raw shards vs featlib on prepared shards.

    python scripts/benchmark.py data [--quick]
Input: synthetic SA-1B-sized samples (2250 x 1500 JPEG, 100 masks in COCO RLE), in a raw tar shard, and the same
shard after scripts/prepare_sa1b.py. All three loaders run in this process, single worker, same samples.
(a) naive: full-size decode, every mask decoded at full size and resized one by one, then components.
Targets: (c) >= 5x (a), (b) >= 2x (a).
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from skimage import draw

from featlib.data import sa1b_dataset
from featlib.data.prepare import prepare_shard
from featlib.data.sa1b import iter_tar_pairs
from featlib.data.synthetic import encode_rle, make_scene


def big_sample(seed: int, hw=(1500, 2250), n_masks=100) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    small = make_scene(rng, (hw[0] // 4, hw[1] // 4))
    img = Image.fromarray(small.image).resize((hw[1], hw[0]), Image.BILINEAR)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (*hw, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    anns = []
    for i in range(n_masks):
        m = np.zeros(hw, bool)
        r = rng.uniform(0.02, 0.25) * hw[0]
        rr, cc = draw.ellipse(rng.uniform(0, hw[0]), rng.uniform(0, hw[1]), r, r * rng.uniform(0.5, 2), shape=hw,
                              rotation=rng.uniform(0, np.pi))
        m[rr, cc] = True
        ys, xs = np.nonzero(m)
        anns.append({"segmentation": encode_rle(m), "area": int(m.sum()), "id": i, "predicted_iou": 0.9,
                     "stability_score": 0.95,
                     "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]})
    rec = {"image": {"image_id": seed, "width": hw[1], "height": hw[0], "file_name": f"sa_{seed}.jpg"},
           "annotations": anns}
    return buf.getvalue(), json.dumps(rec).encode()


def naive_load(jpg: bytes, js: bytes, size: int) -> dict:
    img = Image.open(io.BytesIO(jpg)).convert("RGB")
    w, h = img.size
    r = size / max(h, w)
    tw, th = round(w * r), round(h * r)
    image = np.asarray(img.resize((tw, th), Image.BILINEAR))
    masks = []
    for a in json.loads(js)["annotations"]:
        seg = a["segmentation"]
        m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
        m = np.asarray(Image.fromarray(m * 255).resize((tw, th), Image.BILINEAR)) >= 128
        lab, n = ndimage.label(m)
        masks += [lab == c for c in range(1, n + 1)]
    return {"image": image, "masks": np.stack(masks)}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py data")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samples", type=int, default=6)
    a = p.parse_args(argv)
    n, hw, n_masks, sizes = (2, (300, 450), 20, (256,)) if a.quick else (a.samples, (1500, 2250), 100, (1024, 512))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.tar"
        with tarfile.open(raw, "w") as tar:
            for i in range(n):
                for ext, data in zip(("jpg", "json"), big_sample(i, hw, n_masks)):
                    info = tarfile.TarInfo(f"sa_{i}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        pairs = [(j, s) for _, j, s in iter_tar_pairs(raw)]
        print(f"{n} samples of {hw[1]}x{hw[0]} with {n_masks} masks; samples/s of one worker (no augmentation)")
        print(f"{'size':>5s} {'(a) naive':>10s} {'(b) raw shards':>15s} {'(c) prepared':>13s} {'b/a':>6s} {'c/a':>6s}")
        for size in sizes:
            (Path(tmp) / f"prep{size}").mkdir()
            prepare_shard(raw, Path(tmp) / f"prep{size}" / "raw.tar", size)
            t = time.perf_counter()
            for j, s in pairs:
                naive_load(j, s, size)
            ra = n / (time.perf_counter() - t)
            rates = []
            for src in (raw, Path(tmp) / f"prep{size}"):
                ds = sa1b_dataset(src, size=size, augment=False, shuffle_buffer=1)
                t = time.perf_counter()
                count = sum(1 for s in ds if "skipped" not in s)
                rates.append(count / (time.perf_counter() - t))
            rb, rc = rates
            print(f"{size:5d} {ra:10.2f} {rb:15.2f} {rc:13.2f} {rb / ra:5.1f}x {rc / ra:5.1f}x", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
