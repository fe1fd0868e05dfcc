"""BSDS500 in its original layout: images/<split>/<id>.jpg and groundTruth/<split>/<id>.mat (every annotator).

    for rec in load_bsds(root, "val"):   # BSDSRecord(id, image uint8 [H, W, 3], segmentations list[int32 [H, W]])
        ...
Segmentations are relabelled 0..n-1 (the .mat files count from 1). Each annotator's segments are a full
partition of the image, so for training every segment is an instance (``bsds_instances``).
"""

from __future__ import annotations

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


def holdout_split(ids: list[str], holdout: int) -> tuple[list[str], list[str]]:
    """(training ids, held-out ids): every k-th id is held out, so the held-out images span the id range
    (ids are dates/sequence numbers, so this mixes photo sessions). ``holdout=0`` keeps everything."""
    if holdout <= 0:
        return list(ids), []
    if holdout >= len(ids):
        raise ValueError(f"holdout={holdout} leaves no training images out of {len(ids)}")
    step = len(ids) / holdout
    held = {ids[int(i * step + step / 2)] for i in range(holdout)}
    return [i for i in ids if i not in held], [i for i in ids if i in held]


def fold_split(ids: list[str], fold: int, n_folds: int) -> tuple[list[str], list[str]]:
    """(training ids, fold ids) for cross-fitting: fold ``fold`` of ``n_folds`` is every ``n_folds``-th id from
    position ``fold`` (interleaved, so each fold spans the id range); the model of fold k trains on the others, and
    its features on fold k's images are out of sample (what a learner stacked on them, e.g. the boundary network,
    must see in training)."""
    if not (n_folds >= 2 and 0 <= fold < n_folds):
        raise ValueError(f"fold must be in [0, n_folds) with n_folds >= 2, got fold {fold} of {n_folds}")
    if n_folds > len(ids):
        raise ValueError(f"{n_folds} folds need at least {n_folds} images, got {len(ids)}")
    held = set(ids[fold::n_folds])
    return [i for i in ids if i not in held], [i for i in ids if i in held]


def colour_jitter(image: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and per-channel gain, each by up to ±``strength`` (image [3, H, W] in [0, 1]).

    Why: a mask-aware feature should not be a colour detector; the same segment seen under another exposure or white
    balance must map to the same feature, while the boundaries (what the loss sees) do not move.
    """
    if strength <= 0:
        return image
    b, c, s = rng.uniform(1 - strength, 1 + strength, 3)
    gain = torch.as_tensor(rng.uniform(1 - strength / 2, 1 + strength / 2, 3), dtype=image.dtype)[:, None, None]
    grey = image.mean(0, keepdim=True)
    image = grey + (image - grey) * s                      # saturation
    image = (image - image.mean()) * c + image.mean()      # contrast about the mean
    return (image * b * gain).clamp_(0, 1)                 # brightness and white balance


class BSDSTrain(torch.utils.data.Dataset):
    """BSDS500 training images as SA-1B-like samples: every segment of an annotator is an instance.

    ``annotators``: "one" draws one annotator per sample (a full partition: every pair of segments is pushed apart);
    "all" gives the segments of every annotator as overlapping instances, as SA-1B's nested masks are (train it with
    ``push_pairs="disjoint"`` so a segment is not pushed away from the coarser segment that contains it).
    ``scale``: (lo, hi) resize factor relative to the photo's own pixels, drawn per sample; None fits the whole photo
    into ``size`` (SA-1B's behaviour). Why: features are used on full-resolution photos, so training should see
    objects at that scale; fitting a 481 px photo into 128 px trains at 0.27x.
    Samples go through the SA-1B decoder (``decode_sample``: crop, flip, resize) so BSDS and SA-1B batches look alike
    to the loop (the compact form of ``featlib.data.masks``: uint8 image, bit-packed mask rows). The original JPEG
    bytes are decoded (no re-encoding); RLEs are computed once per annotator and cached.
    """

    def __init__(self, root, split="train", size=256, augment=True, seed=0, max_instances=None, limit=None,
                 ids=None, scale=None, annotators="one", jitter=0.0):
        if annotators not in ("one", "all"):
            raise ValueError(f"annotators must be 'one' or 'all', got {annotators!r}")
        if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1]):
            raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale!r}")
        self.root, self.split = root, split
        self.ids = list(ids) if ids is not None else bsds_ids(root, split)[:limit]
        self.size, self.augment, self.seed, self.max_instances, self.epoch = size, augment, seed, max_instances, 0
        self.scale, self.annotators, self.jitter = scale, annotators, jitter
        self.skipped: dict = {}
        self._cache: dict = {}

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.ids)

    def _load(self, i):
        """(jpeg bytes, (h, w), [annotations of each annotator]) of image i, cached (~0.3 MB per image)."""
        if i not in self._cache:
            image_id = self.ids[i]
            jpg = (Path(self.root) / "images" / self.split / f"{image_id}.jpg").read_bytes()
            segs, _ = read_ground_truth(Path(self.root) / "groundTruth" / self.split / f"{image_id}.mat")
            anns = [[{"segmentation": encode_rle(seg == k), "id": 1000 * a + k} for k in range(int(seg.max()) + 1)]
                    for a, seg in enumerate(segs)]
            self._cache[i] = (jpg, segs[0].shape, anns)
        return self._cache[i]

    def __getitem__(self, i):
        jpg, (h, w), anns = self._load(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.annotators == "one":
            chosen = anns[int(rng.integers(len(anns)))]
        else:
            chosen = [a for per in anns for a in per]
        zoom = (1.0, 1.5)
        if self.scale is not None:  # decode_sample's zoom is relative to fitting the long side into size
            zoom = tuple(float(z) * max(h, w) / self.size for z in self.scale)
        out = decode_sample(jpg, {"annotations": chosen}, self.ids[i], size=self.size, augment=self.augment,
                            rng=rng, max_instances=self.max_instances, zoom=zoom)
        if self.augment and self.jitter > 0:  # samples carry uint8 images: jitter in [0, 1], round back
            jittered = colour_jitter(out["image"].float().div_(255), self.jitter, rng)
            out["image"] = jittered.mul_(255).round_().to(torch.uint8)
        return out
