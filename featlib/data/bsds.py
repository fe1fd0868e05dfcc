"""BSDS500 in its original layout: images/<split>/<id>.jpg and groundTruth/<split>/<id>.mat (every annotator).

    for rec in load_bsds(root, "val"):   # BSDSRecord(id, image uint8 [H, W, 3], segmentations list[int32 [H, W]])
        ...
Segmentations are relabelled 0..n-1 (the .mat files count from 1). Each annotator's segments are a full
partition of the image, so for training every segment is an instance (``bsds_instances``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.io import loadmat

from featlib.data.sa1b import decode_sample
from featlib.data.synthetic import encode_rle

SPLITS = ("train", "val", "test")


@dataclass
class BSDSRecord:
    id: str
    image: np.ndarray
    segmentations: list[np.ndarray]
    boundaries: list[np.ndarray]


def read_ground_truth(path: str | Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(segmentations int32 [H, W] 0..n-1, boundaries bool [H, W]) of every annotator in a BSDS .mat file."""
    try:
        cells = loadmat(str(path))["groundTruth"][0]
    except Exception as e:
        raise ValueError(f"{path}: not a BSDS500 groundTruth .mat file ({e})") from e
    segs, bnds = [], []
    for c in cells:
        seg = np.asarray(c["Segmentation"][0, 0]).astype(np.int32)
        segs.append(np.unique(seg, return_inverse=True)[1].reshape(seg.shape).astype(np.int32))
        bnds.append(np.asarray(c["Boundaries"][0, 0]).astype(bool))
    return segs, bnds


def bsds_ids(root: str | Path, split: str) -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(root) / "images" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no BSDS500 images at {folder} (expected images/<split>/*.jpg)")
    return sorted(p.stem for p in folder.glob("*.jpg"))


def load_record(root: str | Path, split: str, image_id: str) -> BSDSRecord:
    root = Path(root)
    image = np.asarray(Image.open(root / "images" / split / f"{image_id}.jpg").convert("RGB"))
    segs, bnds = read_ground_truth(root / "groundTruth" / split / f"{image_id}.mat")
    if segs and segs[0].shape != image.shape[:2]:
        raise ValueError(f"{image_id}: ground truth {segs[0].shape} != image {image.shape[:2]}")
    return BSDSRecord(image_id, image, segs, bnds)


def load_bsds(root: str | Path, split: str = "val", limit: int | None = None):
    """Yield BSDSRecords of a split in id order (lazy: one image in memory at a time)."""
    for image_id in bsds_ids(root, split)[:limit]:
        yield load_record(root, split, image_id)


def bsds_instances(segmentation: np.ndarray) -> np.ndarray:
    """One annotator's segmentation -> bool [K, H, W] instance masks (every segment is an instance)."""
    n = int(segmentation.max()) + 1
    return segmentation[None] == np.arange(n)[:, None, None]


class BSDSTrain(torch.utils.data.Dataset):
    """BSDS500 training images as SA-1B-like samples: each annotator's segments are instances.

    One annotator is drawn per sample (seeded by seed, epoch and index), the image goes through the SA-1B decoder
    (``decode_sample``: crop, flip, resize to ``size``) so BSDS and SA-1B batches look alike to the loop.
    """

    def __init__(self, root, split="train", size=256, augment=True, seed=0, max_instances=None, limit=None):
        self.root, self.split, self.ids = root, split, bsds_ids(root, split)[:limit]
        self.size, self.augment, self.seed, self.max_instances, self.epoch = size, augment, seed, max_instances, 0
        self.skipped: dict = {}

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        rec = load_record(self.root, self.split, self.ids[i])
        rng = np.random.default_rng([self.seed, self.epoch, i])
        seg = rec.segmentations[int(rng.integers(len(rec.segmentations)))]
        anns = [{"segmentation": encode_rle(seg == k), "id": int(k)} for k in range(int(seg.max()) + 1)]
        buf = io.BytesIO()
        Image.fromarray(rec.image).save(buf, format="JPEG", quality=95)
        return decode_sample(buf.getvalue(), {"annotations": anns}, rec.id, size=self.size, augment=self.augment,
                             rng=rng, max_instances=self.max_instances)
