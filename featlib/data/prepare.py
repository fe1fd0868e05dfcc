"""Repack raw SA-1B tar shards into training-ready shards at the training size.

Each prepared sample keeps SA-1B's format — ``sa_N.jpg`` + ``sa_N.json`` — but the JPEG is resized so its
longest side is ``size`` and every mask's RLE is re-encoded at that size (area-resized, then binarised, like the
reader does). The reader needs no flag: it sees smaller photos and smaller RLEs, so decoding costs ~(size/2250)^2
of the raw work. The JSON records ``"featlib_prepared": {"size": size, "source": ...}``.

``write_prepared_scenes`` writes synthetic scenes straight into prepared shards (the training-step benchmark's
loader row and scripts/gpu_check.py read them); ``sa1b_like_pair`` makes one raw SA-1B-like pair (2250 x 1500,
~85 nested masks; scripts/benchmark.py data); ``synthetic_batch`` builds a collated batch directly, no decoding
(the training-step benchmark, gpu_check).
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from skimage import draw

from featlib.data.masks import Batch, collate_compact, compact_masks, pack_rows
from featlib.data.sa1b import BadSample, _open_image, check_rle, iter_tar_pairs, parse_record
from featlib.data.synthetic import SA1B_LIKE, Scene, encode_rle, make_scene, scene_files, write_shards


def prepare_pair(jpg: bytes, record: bytes, name: str, size: int, quality: int = 90) -> tuple[bytes, bytes]:
    """One raw (jpg, json) pair -> (jpg, json) at longest side ``size``. Raises BadSample on bad input."""
    rec, anns = parse_record(record, name)
    img = _open_image(jpg, name, 64_000_000)
    w0, h0 = img.size
    r = min(1.0, size / max(h0, w0))
    w1, h1 = max(1, round(w0 * r)), max(1, round(h0 * r))
    try:
        img.draft("RGB", (w1, h1))
        small = img.convert("RGB").resize((w1, h1), Image.LANCZOS)
    except Exception as e:
        raise BadSample("corrupt_image", name, f"{type(e).__name__}: {e}") from None
    out_anns = []
    for a in anns:
        rle = check_rle(a.get("segmentation") if isinstance(a, dict) else None, (h0, w0), name)
        m = mask_utils.decode(rle)
        cov = np.asarray(Image.fromarray(m * 255).resize((w1, h1), Image.BOX))
        mm = cov >= 128
        if not mm.any():
            continue
        ys, xs = np.nonzero(mm)
        out_anns.append({**a, "segmentation": encode_rle(mm), "area": int(mm.sum()),
                         "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                  int(ys.max() - ys.min() + 1)]})
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    image = {**rec.get("image", {}), "width": w1, "height": h1}
    meta = {"size": size, "source": name, "original_size": [h0, w0]}
    return buf.getvalue(), json.dumps({"image": image, "annotations": out_anns, "featlib_prepared": meta}).encode()


def prepare_shard(src: str | Path, dst: str | Path, size: int) -> dict:
    """Write ``dst`` (a tar) from raw shard ``src``; atomic (temp name + rename) and verified after writing.

    Returns {"written": n, "skipped": {reason: count}}. Bad samples are skipped and counted, never fatal.
    """
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + ".partial")
    written, skipped = 0, {}
    with tarfile.open(tmp, "w") as tar:
        for key, jpg, js in iter_tar_pairs(src):
            stem = key.rsplit(":", 1)[-1]
            try:
                if jpg is None or js is None:
                    raise BadSample("missing_pair", key)
                pj, pr = prepare_pair(jpg, js, key, size)
            except BadSample as e:
                skipped[e.reason] = skipped.get(e.reason, 0) + 1
                continue
            for ext, data in (("jpg", pj), ("json", pr)):
                info = tarfile.TarInfo(f"{stem}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            written += 1
    # verify before publishing: every pair readable, counts match
    n = sum(1 for _, j, s in iter_tar_pairs(tmp) if j is not None and s is not None)
    if n != written:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{dst}: verification failed ({n} readable pairs, {written} written)")
    os.replace(tmp, dst)
    return {"written": written, "skipped": skipped}


def sa1b_like_pair(seed: int, i: int, hw: tuple[int, int] = (1500, 2250), upscale: int = 1) -> tuple[bytes, bytes]:
    """A raw SA-1B-like (jpg, json) pair ``sa_{i+1}``: a ``make_scene(**SA1B_LIKE)`` scene (~80-90 masks in three
    nesting levels, ~140 connected pieces) drawn at hw / upscale and enlarged ``upscale`` times (photo bilinear,
    masks nearest): scene drawing costs ~35 s at 2250 x 1500, ~4 s at a third of that."""
    rng = np.random.default_rng([seed, i])
    h, w = hw[0] // upscale, hw[1] // upscale
    scene = make_scene(rng, (h, w), **SA1B_LIKE)
    if upscale > 1:
        photo = np.asarray(Image.fromarray(scene.image).resize((w * upscale, h * upscale), Image.BILINEAR))
        masks = [m.repeat(upscale, 0).repeat(upscale, 1) for m in [*scene.masks, scene.instances]]
        scene = Scene(photo, masks[:-1], scene.meta, masks[-1])
    files = scene_files(scene, i + 1, rng)
    return files[f"sa_{i + 1}.jpg"], files[f"sa_{i + 1}.json"]


def _prepared_scene(args: tuple[int, int, int, str]) -> tuple[bytes, bytes]:
    seed, i, size, kind = args
    if kind == "sa1b":
        jpg, record = sa1b_like_pair(seed, i, (round(size * 2 / 3), size))
    else:
        rng = np.random.default_rng([seed, i])
        files = scene_files(make_scene(rng, (round(size * 2 / 3), size)), i + 1, rng)
        jpg, record = files[f"sa_{i + 1}.jpg"], files[f"sa_{i + 1}.json"]
    return prepare_pair(jpg, record, f"sa_{i + 1}", size)


def write_prepared_scenes(root: str | Path, n: int, *, size: int, shards: int, copies: int = 1, seed: int = 0,
                          workers: int = 1, kind: str = "simple") -> list[Path]:
    """Prepared shards ``root/sa_000000.tar`` ... of ``n`` synthetic scenes, each written ``copies`` times.

    Scenes have SA-1B's 2:3 aspect at longest side ``size`` and go through ``prepare_pair``, so the shards hold
    exactly what ``prepare_shard`` would write. ``kind``: "simple" (``make_scene``'s defaults, 5-15 masks) or
    "sa1b" (``sa1b_like_pair``: ~80-90 nested masks, ~140 pieces, so ``max_instances=64`` is reached). Copies
    (fresh member names, the same bytes) make a long stream cheaply: scene generation (~1 s per simple scene at
    1024, ~4 s per SA-1B-like one) is the expensive part, and every copy is decoded and augmented anew by the
    reader. ``workers`` processes generate the scenes. Returns the shard paths.
    """
    if kind not in ("simple", "sa1b"):
        raise ValueError(f"kind must be 'simple' or 'sa1b', got {kind!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, size, kind) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            pairs = list(pool.map(_prepared_scene, jobs, chunksize=max(1, math.ceil(n / workers / 4))))
    else:
        pairs = [_prepared_scene(j) for j in jobs]
    samples = [{f"sa_{j + 1}.jpg": jpg, f"sa_{j + 1}.json": record} for j, (jpg, record) in enumerate(pairs * copies)]
    return write_shards(root, samples, shards)


def synthetic_batch(batch_size: int, size: int, n_masks: int, seed: int = 0, image_side: int = 256) -> dict:
    """A training batch in ``collate``'s compact layout (``featlib.data.masks``), built directly (no JPEG or RLE
    decoding): what the training-step benchmark and the GPU check feed ``to_device``, the model and the loss.

    image uint8 [B, 3, S, S]: a scene of side ``min(S, image_side)`` per image, resized to S (the content does not
    change the cost of a step). Masks (mask_rows / mask_row_index; ``dense_masks`` gives bool [B, K, S, S]): K
    overlapping ellipses per image with radii log-uniform in [S/64, S/4] (SA-1B-like: most masks small), all valid;
    valid_pixels all True (no padding). mask_id = k, area = the ellipse's pixels.
    """
    rng = np.random.default_rng(seed)
    side = min(size, image_side)
    samples = []
    for _ in range(batch_size):
        im = Image.fromarray(make_scene(rng, (side, side)).image)
        image = np.asarray(im.resize((size, size), Image.BILINEAR) if side != size else im)
        samples.append({"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))})
    lo, hi = np.log(max(2.0, size / 64)), np.log(size / 4)
    for sample in samples:  # one image's dense masks at a time: K*S^2 bytes, not the batch's
        masks = np.zeros((n_masks, size, size), bool)
        for k in range(n_masks):
            ry, rx = np.exp(rng.uniform(lo, hi, 2))
            rr, cc = draw.ellipse(rng.uniform(0, size), rng.uniform(0, size), ry, rx, shape=(size, size),
                                  rotation=rng.uniform(0, np.pi))
            masks[k, rr, cc] = True
        sample["mask_rows"], sample["mask_row_index"] = compact_masks(masks)
        sample["valid_pixels"] = torch.from_numpy(pack_rows(np.ones((size, size), bool)))
        sample["mask_id"] = torch.arange(n_masks, dtype=torch.int64)
        sample["area"] = torch.from_numpy(masks.sum((1, 2)).astype(np.int64))
        sample["predicted_iou"] = sample["stability_score"] = torch.ones(n_masks)
    return Batch(collate_compact(samples), name=[f"synthetic_{i}" for i in range(batch_size)], skipped=Counter())
