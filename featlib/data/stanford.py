"""Stanford Background (Gould et al., ICCV 2009) as the project ships it: 715 outdoor photos with one region map each.

    ids = stanford_ids(root, "train")                  # the dataset's own split: 572 train / 143 val ids
    rec = load_stanford(root, ids[0])                  # BSDSRecord(id, image uint8 [H, W, 3], [layers], [boundary])

Layout (``../shared/datasets/stanford_background``, its README): ``images/<id>.jpg``, ``layers/<id>.png`` (16-bit, the
photo's distinct regions 0..N-1: each person, car, facade, patch of sky one region), ``train.txt`` / ``val.txt``.
A record has the BSDS500 shape — one "annotator" whose segmentation is the region map and whose boundary map is
drawn as BSDS500's ground truth draws its ``Boundaries`` from its ``Segmentation`` (``region_boundaries``: the
benchmark's ``seg2bmap`` thinned to one 8-connected pixel, which reproduces BSDS500's own maps exactly, tested) — so
BSDS500 code (the boundary network's training, the partition metrics) reads it unchanged. The regions were drawn as
polygons, so their borders are coarser than BSDS500's: a boundary sits within a pixel or two of the image edge it
follows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage.morphology import thin

from featlib.data.bsds import BSDSRecord

SPLITS = ("train", "val", "all")


def region_boundaries(seg: np.ndarray) -> np.ndarray:
    """A region map int [H, W] -> its boundary map bool [H, W], drawn as BSDS500's ground truth draws ``Boundaries``
    from ``Segmentation``: a pixel whose label differs from its east, south or south-east neighbour (``seg2bmap`` at
    the image's size), thinned to one 8-connected pixel."""
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ValueError(f"region map must be [H, W], got shape {seg.shape}")
    b = np.zeros(seg.shape, bool)
    b[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    b[:-1] |= seg[:-1] != seg[1:]
    b[:-1, :-1] |= seg[:-1, :-1] != seg[1:, 1:]
    return thin(b)


def stanford_ids(root: str | Path, split: str = "train") -> list[str]:
    """The ids of a split: ``train`` / ``val`` (the dataset's lists) or ``all`` (both, sorted)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if not (root / "images").is_dir():
        raise FileNotFoundError(f"no Stanford Background photos at {root / 'images'} (expected images/<id>.jpg)")
    names = ("train", "val") if split == "all" else (split,)
    ids = []
    for name in names:
        path = root / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"no split list {path}")
        ids += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return sorted(ids)


def load_stanford(root: str | Path, image_id: str) -> BSDSRecord:
    """One photo and its region map as a one-annotator BSDSRecord."""
    root = Path(root)
    image = np.asarray(Image.open(root / "images" / f"{image_id}.jpg").convert("RGB"))
    path = root / "layers" / f"{image_id}.png"
    try:
        seg = np.asarray(Image.open(path)).astype(np.int32)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a region map PNG ({e})") from e
    if seg.shape != image.shape[:2]:
        raise ValueError(f"{image_id}: region map {seg.shape} != image {image.shape[:2]}")
    return BSDSRecord(image_id, image, [seg], [region_boundaries(seg)])
