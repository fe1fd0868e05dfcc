"""Synthetic scenes written in the exact SA-1B format: the embedded default and the test bed.

    write_scenes(root, n, size=(192, 256), seed=0)            # folder: sa_1.jpg, sa_1.json, sa_1.instances.png ...
    write_scenes(root, n, seed=0, shards=4)                     # tar shards: sa_000000.tar ... (same members)
    image, instances = load_scene(root / "sa_1.jpg")            # uint8 [H, W, 3], int32 [H, W] (0 = unannotated)
    scene = make_scene(np.random.default_rng(0), (192, 256))    # in memory: Scene(image, masks, meta, instances)
    batch = synthetic_batch(8, 1024, n_masks=64)               # a training batch in collate()'s layout, no decoding

Each scene: a textured background (gradient + noise; left unannotated like SA-1B's background), 4-9 objects
(rectangles, ellipses, polygons) painted back to front so later ones occlude earlier ones, colours drawn from a
small palette so objects share colours (objects that touch never share a colour, so every boundary is visible),
textures (flat, gradient, noise, stripes) so raw colour is a poor proxy for "same object", and nested parts
annotated as their own masks (object mask ⊃ part masks, like SA-1B's object/part hierarchy). An occluded object
can fall apart into several pieces; its mask keeps them all (the reader splits connected components).

``instances`` is the finest visible level: each pixel carries the id of the part it lies in, else its object,
else 0. Scoring clusters against it is what "recover the instances" means in the notebooks and the demo.
JSON fields follow SA-1B: image {image_id, width, height, file_name}; annotations [{segmentation {size, counts
(COCO compressed RLE string)}, area, bbox [x, y, w, h], predicted_iou, stability_score, point_coords, crop_box, id}].
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from skimage import draw

PALETTE = np.array([[200, 60, 50], [60, 140, 210], [230, 200, 70], [80, 170, 90], [150, 90, 180], [240, 140, 60],
                    [90, 90, 100], [210, 210, 200]], dtype=np.float32)
TEXTURES = ("flat", "gradient", "noise", "stripes")


@dataclass
class Scene:
    image: np.ndarray          # uint8 [H, W, 3]
    masks: list[np.ndarray]    # bool [H, W] each (objects and parts; overlapping)
    meta: list[dict]           # per mask: {"id", "parent" (mask id or None), "kind": "object"|"part"}
    instances: np.ndarray      # int32 [H, W], finest visible level, 0 = unannotated


def _texture(rng: np.random.Generator, shape: tuple[int, int], colour: np.ndarray, kind: str) -> np.ndarray:
    h, w = shape
    base = np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w)
        return base * (0.75 + 0.5 * ramp[..., None])
    if kind == "noise":
        noise = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), rng.uniform(0.5, 2.0))
        return base + 40 * (noise / (noise.std() + 1e-6))[..., None]
    if kind == "stripes":
        period, angle = rng.uniform(4, 10), rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        s = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period)
        return base * (0.8 + 0.25 * s[..., None])
    return base


def _shape_mask(rng: np.random.Generator, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A random rectangle / ellipse / polygon inside box (y0, x0, y1, x1)."""
    h, w = shape
    y0, x0, y1, x1 = box
    m = np.zeros(shape, bool)
    kind = rng.integers(3)
    if kind == 0:
        m[y0:y1, x0:x1] = True
    elif kind == 1:
        rr, cc = draw.ellipse((y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2, shape=shape,
                              rotation=rng.uniform(0, np.pi))
        m[rr, cc] = True
    else:
        n = rng.integers(3, 7)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.6, 1.0, n)
        cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
        rr, cc = draw.polygon(cy + ry * rad * np.sin(ang), cx + rx * rad * np.cos(ang), shape=shape)
        m[rr, cc] = True
    if m.sum() < 16:  # degenerate polygon: fall back to the box
        m[:] = False
        m[y0:y1, x0:x1] = True
    return m


def _random_box(rng, h, w, lo, hi, within=None):
    if within is None:
        within = (0, 0, h, w)
    wy0, wx0, wy1, wx1 = within
    bh = int(np.clip(rng.uniform(lo, hi) * (wy1 - wy0), 4, wy1 - wy0))
    bw = int(np.clip(rng.uniform(lo, hi) * (wx1 - wx0), 4, wx1 - wx0))
    y0 = int(rng.integers(wy0, max(wy0 + 1, wy1 - bh + 1)))
    x0 = int(rng.integers(wx0, max(wx0 + 1, wx1 - bw + 1)))
    return y0, x0, y0 + bh, x0 + bw


def make_scene(rng: np.random.Generator, size: tuple[int, int] = (192, 256), n_objects: tuple[int, int] = (4, 9),
               part_prob: float = 0.5) -> Scene:
    """One random scene (see the module docstring)."""
    h, w = size
    img = _texture(rng, (h, w), PALETTE[rng.integers(len(PALETTE))] * 0.8, rng.choice(["gradient", "noise"]))
    owner = np.zeros((h, w), np.int32)      # topmost object id per pixel (0 = background)
    colour_of: dict[int, int] = {}
    shapes: dict[int, np.ndarray] = {}
    parts: list[tuple[int, int, np.ndarray]] = []  # (part id, object id, full part shape)
    next_id = 1
    for _ in range(int(rng.integers(*n_objects))):
        oid = next_id
        next_id += 1
        m = _shape_mask(rng, (h, w), _random_box(rng, h, w, 0.2, 0.55))
        # Colours of everything this object touches (its footprint grown by 1 px) are forbidden, so touching
        # objects differ in colour while distant ones may share it.
        grown = ndimage.binary_dilation(m, iterations=2)
        touching = {colour_of[o] for o in np.unique(owner[grown]) if o > 0}
        choices = [c for c in range(len(PALETTE)) if c not in touching] or list(range(len(PALETTE)))
        colour_of[oid] = c = int(rng.choice(choices))
        tex = str(rng.choice(TEXTURES))
        img[m] = _texture(rng, (h, w), PALETTE[c], tex)[m]
        owner[m] = oid
        shapes[oid] = m
        if rng.random() < part_prob:
            ys, xs = np.nonzero(m)
            box = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
            for _ in range(int(rng.integers(1, 3))):
                pm = _shape_mask(rng, (h, w), _random_box(rng, h, w, 0.25, 0.5, within=box)) & m
                if pm.sum() < 24:
                    continue
                pc = (c + 1 + int(rng.integers(len(PALETTE) - 1))) % len(PALETTE)
                img[pm] = _texture(rng, (h, w), PALETTE[pc], str(rng.choice(TEXTURES)))[pm]
                parts.append((next_id, oid, pm))
                next_id += 1
        # parts of objects painted earlier are occluded too: handled below through `owner`
    masks, meta = [], []
    instances = np.zeros((h, w), np.int32)
    for oid, m in shapes.items():
        visible = m & (owner == oid)
        if visible.sum() >= 16:
            masks.append(visible)
            meta.append({"id": oid, "parent": None, "kind": "object"})
            instances[visible] = oid
    for pid, oid, pm in parts:
        visible = pm & (owner == oid)
        if visible.sum() >= 16 and any(mt["id"] == oid for mt in meta):
            masks.append(visible)
            meta.append({"id": pid, "parent": oid, "kind": "part"})
            instances[visible] = pid
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)  # sensor noise
    return Scene(img, masks, meta, instances)


def encode_rle(mask: np.ndarray) -> dict:
    """bool [H, W] -> {"size": [H, W], "counts": str} (COCO compressed RLE, as in SA-1B JSON)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def scene_record(scene: Scene, image_id: int, rng: np.random.Generator) -> dict:
    """The SA-1B JSON dict for a scene."""
    h, w = scene.instances.shape
    anns = []
    for m, mt in zip(scene.masks, scene.meta):
        ys, xs = np.nonzero(m)
        i = int(rng.integers(len(ys)))
        anns.append({
            "segmentation": encode_rle(m),
            "area": int(m.sum()),
            "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
            "predicted_iou": round(float(rng.uniform(0.85, 1.0)), 4),
            "stability_score": round(float(rng.uniform(0.9, 1.0)), 4),
            "point_coords": [[float(xs[i]), float(ys[i])]],
            "crop_box": [0.0, 0.0, float(w), float(h)],
            "id": int(image_id * 1000 + mt["id"]),
        })
    return {"image": {"image_id": image_id, "width": w, "height": h, "file_name": f"sa_{image_id}.jpg"},
            "annotations": anns}


def scene_files(scene: Scene, image_id: int, rng: np.random.Generator, quality: int = 92) -> dict[str, bytes]:
    """{member name: bytes} for one scene: ``sa_{id}.jpg``, ``sa_{id}.json``, ``sa_{id}.instances.png``."""
    jpg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(scene.image).save(jpg, format="JPEG", quality=quality)
    Image.fromarray(scene.instances.astype(np.uint16)).save(png, format="PNG")
    stem = f"sa_{image_id}"
    return {f"{stem}.jpg": jpg.getvalue(), f"{stem}.json": json.dumps(scene_record(scene, image_id, rng)).encode(),
            f"{stem}.instances.png": png.getvalue()}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_scenes(root: str | Path, n: int, *, size: int | tuple[int, int] = (192, 256), seed: int = 0,
                 shards: int | None = None, first_id: int = 1) -> list[Path]:
    """Write ``n`` scenes (deterministic in ``seed``) under ``root``; returns the written files (jpgs or tars).

    ``shards=None`` writes a flat folder; ``shards=k`` writes k tar files ``sa_000000.tar`` ... with the scenes
    spread round-robin, members in SA-1B's order (jpg then json per image, plus the instance map).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    size = (size, size) if isinstance(size, int) else tuple(size)
    written: list[Path] = []
    files = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        files.append(scene_files(make_scene(rng, size), first_id + i, rng))
    if shards is None:
        for f in files:
            for name, data in f.items():
                _atomic_write(root / name, data)
            written.append(root / next(k for k in f if k.endswith(".jpg")))
        return written
    return write_shards(root, files, shards)


def write_shards(root: str | Path, samples: list[dict[str, bytes]], shards: int) -> list[Path]:
    """``shards`` tar files ``root/sa_000000.tar`` ... holding ``samples`` ({member name: bytes} each, members in
    the dict's order) round-robin; each tar is written under a temporary name and renamed. Returns the paths."""
    paths = []
    for s in range(shards):
        path = Path(root) / f"sa_{s:06d}.tar"
        tmp = path.with_name(path.name + ".tmp")
        with tarfile.open(tmp, "w") as tar:
            for f in samples[s::shards]:
                for name, data in f.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, path)
        paths.append(path)
    return paths


def load_scene(jpg_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 [H, W, 3], instances int32 [H, W]) of a scene written by ``write_scenes`` as a folder."""
    jpg_path = Path(jpg_path)
    image = np.asarray(Image.open(jpg_path).convert("RGB"))
    inst = np.asarray(Image.open(jpg_path.with_name(jpg_path.stem + ".instances.png"))).astype(np.int32)
    return image, inst


def ensure_scenes(root: str | Path, n: int, **kwargs) -> list[Path]:
    """Write scenes only if ``root`` does not already hold ``n`` of them (what ``make demo`` needs)."""
    root = Path(root)
    have = sorted(root.glob("sa_*.jpg"), key=lambda p: int(p.stem.split("_")[1])) if root.is_dir() else []
    if len(have) >= n:
        return have[:n]
    return write_scenes(root, n, **kwargs)


def synthetic_batch(batch_size: int, size: int, n_masks: int, seed: int = 0, image_side: int = 256) -> dict:
    """A training batch with ``collate``'s keys and shapes, built directly (no JPEG or RLE decoding): what the
    training-step benchmark and the GPU check feed the model and the loss.

    image float [B, 3, S, S] in [0, 1]: a scene of side ``min(S, image_side)`` per image, resized to S (the content
    does not change the cost of a step). masks bool [B, K, S, S]: K overlapping ellipses per image with radii
    log-uniform in [S/64, S/4] (SA-1B-like: most masks small), all valid; valid_pixels all True (no padding).
    """
    rng = np.random.default_rng(seed)
    side = min(size, image_side)
    images = []
    for _ in range(batch_size):
        im = Image.fromarray(make_scene(rng, (side, side)).image)
        images.append(np.asarray(im.resize((size, size), Image.BILINEAR) if side != size else im))
    masks = np.zeros((batch_size, n_masks, size, size), bool)
    lo, hi = np.log(max(2.0, size / 64)), np.log(size / 4)
    for b in range(batch_size):
        for k in range(n_masks):
            ry, rx = np.exp(rng.uniform(lo, hi, 2))
            rr, cc = draw.ellipse(rng.uniform(0, size), rng.uniform(0, size), ry, rx, shape=(size, size),
                                  rotation=rng.uniform(0, np.pi))
            masks[b, k, rr, cc] = True
    return {"image": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255).contiguous(),
            "masks": torch.from_numpy(masks), "mask_valid": torch.ones(batch_size, n_masks, dtype=torch.bool),
            "valid_pixels": torch.ones(batch_size, size, size, dtype=torch.bool)}
