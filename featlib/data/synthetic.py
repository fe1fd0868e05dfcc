"""Synthetic scenes written in the exact SA-1B format: the embedded default and the test bed.

    write_scenes(root, n, size=(192, 256), seed=0)            # folder: sa_1.jpg, sa_1.json, sa_1.instances.png ...
    write_scenes(root, n, seed=0, shards=4)                     # tar shards: sa_000000.tar ... (same members)
    image, instances = load_scene(root / "sa_1.jpg")            # uint8 [H, W, 3], int32 [H, W] (0 = unannotated)
    scene = make_scene(np.random.default_rng(0), (192, 256))    # in memory: Scene(image, masks, meta, instances)

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


# SA-1B-like scenes (``make_scene(rng, size, **SA1B_LIKE)``): three nesting levels, ~100 masks, occluders that
# split objects into pieces. Numbers: SA-1B has ~100 masks per photo (Kirillov et al. 2023, Table 1: 11 M images,
# 1.1 B masks) over object / part / sub-part granularities, most of them small (its Fig. 5: relative mask areas
# spread over ~4 decades, the median below 1 % of the image). 14-24 objects with 2-4 parts each and 1-3 sub-parts
# per part give 60-110 masks (80-130 connected pieces) per scene; thin occluders (poles, branches) cut objects into
# several pieces.
SA1B_LIKE = dict(n_objects=(14, 25), levels=3, part_prob=0.9, parts=(2, 5), subpart_prob=0.8, subparts=(1, 4),
                 object_scale=(0.12, 0.5), thin_prob=0.25)
LEVEL_NAMES = ("object", "part", "subpart")


def make_scene(rng: np.random.Generator, size: tuple[int, int] = (192, 256), n_objects: tuple[int, int] = (4, 9),
               part_prob: float = 0.5, *, levels: int = 2, parts: tuple[int, int] = (1, 3),
               subpart_prob: float = 0.0, subparts: tuple[int, int] = (1, 3),
               object_scale: tuple[float, float] = (0.2, 0.55), thin_prob: float = 0.0) -> Scene:
    """One random scene (see the module docstring); defaults give the original two-level scenes (same random
    stream, so the demo's numbers do not move), ``**SA1B_LIKE`` the three-level ones.

    levels: 2 (object > part) or 3 (object > part > sub-part); parts / subparts: [lo, hi) children per parent,
    drawn with probability part_prob / subpart_prob; object_scale: box side as a fraction of the image's;
    thin_prob: chance that an object is a thin bar across the scene (an occluder that splits what lies below).
    """
    if levels not in (2, 3):
        raise ValueError(f"levels must be 2 or 3, got {levels}")
    h, w = size
    img = _texture(rng, (h, w), PALETTE[rng.integers(len(PALETTE))] * 0.8, rng.choice(["gradient", "noise"]))
    owner = np.zeros((h, w), np.int32)      # topmost object id per pixel (0 = background)
    colour_of: dict[int, int] = {}
    shapes: dict[int, np.ndarray] = {}
    children: list[tuple[int, int, np.ndarray, int]] = []  # (id, parent id, full shape, level)
    next_id = 1

    def paint_children(parent: int, pmask: np.ndarray, pcolour: int, level: int, count, prob) -> None:
        nonlocal next_id
        if rng.random() >= prob:
            return
        ys, xs = np.nonzero(pmask)
        box = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        for _ in range(int(rng.integers(*count))):
            cm = _shape_mask(rng, (h, w), _random_box(rng, h, w, 0.25, 0.5, within=box)) & pmask
            if cm.sum() < 24:
                continue
            cc = (pcolour + 1 + int(rng.integers(len(PALETTE) - 1))) % len(PALETTE)
            img[cm] = _texture(rng, (h, w), PALETTE[cc], str(rng.choice(TEXTURES)))[cm]
            cid = next_id
            next_id += 1
            children.append((cid, parent, cm, level))
            if level + 1 < levels:
                paint_children(cid, cm, cc, level + 1, subparts, subpart_prob)

    for _ in range(int(rng.integers(*n_objects))):
        oid = next_id
        next_id += 1
        if thin_prob and rng.random() < thin_prob:  # a bar across the scene: splits whatever it covers
            m = _bar(rng, h, w)
        else:
            m = _shape_mask(rng, (h, w), _random_box(rng, h, w, *object_scale))
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
        paint_children(oid, m, c, 1, parts, part_prob)
        # children of objects painted earlier are occluded too: handled below through `owner`
    masks, meta = [], []
    instances = np.zeros((h, w), np.int32)
    for oid, m in shapes.items():
        visible = m & (owner == oid)
        if visible.sum() >= 16:
            masks.append(visible)
            meta.append({"id": oid, "parent": None, "kind": "object", "level": 0})
            instances[visible] = oid
    kept = {mt["id"] for mt in meta}
    object_of = {oid: oid for oid in shapes}
    for cid, parent, cm, level in children:  # parents come before their children
        object_of[cid] = object_of[parent]
        visible = cm & (owner == object_of[cid])
        if visible.sum() >= 16 and parent in kept:
            masks.append(visible)
            meta.append({"id": cid, "parent": parent, "kind": LEVEL_NAMES[level], "level": level})
            kept.add(cid)
            instances[visible] = cid
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)  # sensor noise
    return Scene(img, masks, meta, instances)


def _bar(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A thin bar (3-6 % of the shorter side wide) crossing the whole scene at a random angle."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.2 * h, 0.8 * h), rng.uniform(0.2 * w, 0.8 * w)
    dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
    return dist < rng.uniform(0.015, 0.03) * min(h, w)


def level_maps(scene: Scene, levels: int | None = None) -> list[np.ndarray]:
    """One int32 [H, W] partition per nesting level (0 = unannotated): at level L each pixel carries the id of the
    deepest mask of level <= L holding it (a part's pixels keep their object's id where no part covers them), so
    level 0 is the objects, and the last level equals ``scene.instances``. ``levels``: how many maps (a scene whose
    deeper masks were all occluded repeats its deepest level); None = as deep as the scene's masks go."""
    depth = max((mt.get("level", 0 if mt["kind"] == "object" else 1) for mt in scene.meta), default=0)
    out = []
    for lev in range(depth + 1 if levels is None else levels):
        lab = np.zeros(scene.instances.shape, np.int32)
        for m, mt in zip(scene.masks, scene.meta):  # parents precede children, so children overwrite
            if mt.get("level", 0 if mt["kind"] == "object" else 1) <= lev:
                lab[m] = mt["id"]
        out.append(lab)
    return out


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
                 shards: int | None = None, first_id: int = 1, **scene_kwargs) -> list[Path]:
    """Write ``n`` scenes (deterministic in ``seed``) under ``root``; returns the written files (jpgs or tars).

    ``shards=None`` writes a flat folder; ``shards=k`` writes k tar files ``sa_000000.tar`` ... with the scenes
    spread round-robin, members in SA-1B's order (jpg then json per image, plus the instance map).
    ``scene_kwargs`` go to ``make_scene`` (e.g. ``**SA1B_LIKE``). Last, ``root/scenes.settings`` records the
    generator settings, the count and ``SCENES_VERSION`` (``read_scene_settings``; ``ensure_scenes`` compares them).
    """
    root = Path(root)
    settings = scene_settings(size=size, seed=seed, shards=shards, first_id=first_id, **scene_kwargs)
    root.mkdir(parents=True, exist_ok=True)
    (root / SETTINGS_NAME).unlink(missing_ok=True)  # written again once every scene is: never describes a half write
    size = (size, size) if isinstance(size, int) else tuple(size)
    written: list[Path] = []
    files = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        files.append(scene_files(make_scene(rng, size, **scene_kwargs), first_id + i, rng))
    if shards is None:
        for f in files:
            for name, data in f.items():
                _atomic_write(root / name, data)
            written.append(root / next(k for k in f if k.endswith(".jpg")))
    else:
        written = write_shards(root, files, shards)
    record = {"generator_version": SCENES_VERSION, "count": n, "settings": settings}
    _atomic_write(root / SETTINGS_NAME, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    return written


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


def ensure_scenes(root: str | Path, n: int, **generator_kwargs) -> list[Path]:
    """The first ``n`` scenes of a flat folder written by ``write_scenes(root, n, **generator_kwargs)``, written once
    (what ``make demo`` and training on ``data="synthetic"`` need); returns their jpgs.

    ``root`` is reused when its ``scenes.settings`` holds these settings (make_scene's defaults included), this
    ``SCENES_VERSION`` and at least ``n`` scenes (scene i depends only on the seed and i, so the first n of a larger
    set are the n scenes asked for). Otherwise it is rebuilt: its ``sa_*`` files are removed, then written, with one
    printed line saying why (a folder without ``scenes.settings`` predates them and is rebuilt once).
    """
    root = Path(root)
    if generator_kwargs.get("shards") is not None:
        raise ValueError("ensure_scenes writes flat folders; call write_scenes(..., shards=k) for tar shards")
    wanted = scene_settings(**generator_kwargs)
    have = sorted(root.glob("sa_*.jpg"), key=lambda p: int(p.stem.split("_")[1])) if root.is_dir() else []
    reason = _rebuild_reason(root, n, wanted, len(have))
    if reason is None:
        return have[:n]
    if reason:
        print(f"ensure_scenes: rebuilding {root} ({reason})")
        _remove_scenes(root)
    return write_scenes(root, n, **generator_kwargs)


# --- the settings a scene folder was written with (write_scenes records them, ensure_scenes compares them) ---------

# Bump when make_scene / scene_files draw or encode differently for the same settings: folders written by an older
# generator are then rebuilt by ensure_scenes. (A changed make_scene default needs no bump: the defaults are recorded.)
SCENES_VERSION = 1
# JSON text, but not named *.json: SA-1B folder readers take every .json beside the jpgs for an annotation.
SETTINGS_NAME = "scenes.settings"
_LAYOUT = ("size", "seed", "shards", "first_id")  # write_scenes' own arguments; the rest are make_scene's


def scene_settings(*, size: int | tuple[int, int] = (192, 256), seed: int = 0, shards: int | None = None,
                   first_id: int = 1, **scene_kwargs) -> dict:
    """What ``write_scenes(root, n, **kwargs)`` records for ``kwargs``: every make_scene keyword (its defaults filled
    in, so a changed default reads as a changed setting) plus size [h, w], seed, shards and first_id, as JSON values.
    Raises TypeError for a name make_scene does not take."""
    import inspect  # only here: the module's one use of it

    params = {k: p for k, p in inspect.signature(make_scene).parameters.items() if k not in ("rng", "size")}
    unknown = sorted(set(scene_kwargs) - set(params))
    if unknown:
        raise TypeError(f"make_scene takes no {unknown}; its settings are {sorted(params)} and {list(_LAYOUT)}")
    values = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    values |= scene_kwargs
    values |= {"size": [size, size] if isinstance(size, int) else list(size), "seed": seed, "shards": shards,
               "first_id": first_id}
    return json.loads(json.dumps(values, sort_keys=True, default=_plain))


def read_scene_settings(root: str | Path) -> dict | None:
    """``root/scenes.settings`` as written by ``write_scenes`` ({"generator_version", "count", "settings"}); None when
    absent or unreadable."""
    path = Path(root) / SETTINGS_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"generator_version", "count", "settings"} <= set(record) else None


def _plain(value):
    """JSON fallback for numpy values (np.int64 seeds, arrays)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"scene setting {value!r} ({type(value).__name__}) is not a JSON value")


def _rebuild_reason(root: Path, n: int, wanted: dict, n_jpgs: int) -> str | None:
    """None when ``root`` holds ``n`` scenes written with ``wanted``; "" when it holds no scenes (write, nothing to
    say); else why it must be rebuilt."""
    record = read_scene_settings(root)
    if record is None:
        if n_jpgs == 0 and not (root / SETTINGS_NAME).exists():
            return ""
        return f"{n_jpgs} scenes without a readable {SETTINGS_NAME}: written before settings were recorded"
    if record["generator_version"] != SCENES_VERSION:
        return f"generator version {record['generator_version']}, now {SCENES_VERSION}"
    old = record["settings"]
    changed = [f"{k} {old.get(k, '(unset)')} -> {wanted.get(k, '(unset)')}" for k in sorted(set(old) | set(wanted))
               if old.get(k, "(unset)") != wanted.get(k, "(unset)")]
    if changed:
        return "settings changed: " + ", ".join(changed)
    if record["count"] < n or n_jpgs < n:
        return f"{min(record['count'], n_jpgs)} scenes, {n} wanted"
    return None


def _remove_scenes(root: Path) -> None:
    """Delete what write_scenes writes (``sa_*`` files, temporary ones included, and the settings); nothing else."""
    for path in root.glob("sa_*"):
        if path.is_file():
            path.unlink()
    (root / SETTINGS_NAME).unlink(missing_ok=True)
