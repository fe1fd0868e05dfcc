"""Interactive-segmentation benchmarks in the layouts RITM distributes them (one object per image).

    ds = load_iis("grabcut", root)         # or "berkeley", "davis"
    s = ds[0]            # IISSample(name, image uint8 [H, W, 3], mask bool [H, W], ignore bool [H, W]); len(ds)

Layouts and mask rules:
- GrabCut: ``data_GT/<name>.jpg|.bmp|.png`` + ``boundary_GT/<name>.bmp``; value 128 is the uncertain boundary band
  (``ignore``), > 128 object, else background.
- Berkeley: ``images/<name>.jpg|.png`` + ``masks/<name>.png``; first channel > 128 is the object.
- DAVIS-345: ``img/<name>.jpg`` + ``gt/<name>.png``; any non-zero value (any channel) is the object.
Images and masks are paired by file stem; a mask without an image (or vice versa) is skipped and counted in
``missing``. Reading is lazy (one file per ``__getitem__``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class IISSample:
    name: str
    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # bool [H, W]
    ignore: np.ndarray  # bool [H, W] pixels excluded from IoU and clicks


LAYOUTS = {
    # name: (image folder, mask folder, mask extensions)
    "grabcut": ("data_GT", "boundary_GT", (".bmp", ".png")),
    "berkeley": ("images", "masks", (".png",)),
    "davis": ("img", "gt", (".png",)),
}


def _decode_mask(kind: str, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if kind == "grabcut":
        m = m if m.ndim == 2 else m[..., 0]
        return m > 128, m == 128
    if kind == "berkeley":
        m = m if m.ndim == 2 else m[..., 0]
        return m > 128, np.zeros(m.shape, bool)
    m = m if m.ndim == 2 else m.max(axis=2)
    return m > 0, np.zeros(m.shape, bool)


class IISDataset:
    """Lazy list of ``IISSample`` for one benchmark folder (see module docstring for layouts)."""

    def __init__(self, kind: str, root: str | Path, limit: int | None = None):
        if kind not in LAYOUTS:
            raise ValueError(f"unknown dataset {kind!r}; expected one of {sorted(LAYOUTS)}")
        root = Path(root)
        img_dir, mask_dir, mask_exts = LAYOUTS[kind]
        if not (root / img_dir).is_dir() or not (root / mask_dir).is_dir():
            raise ValueError(f"{root} does not have the {kind} layout: expected folders {img_dir}/ and {mask_dir}/")
        images = {p.stem: p for p in sorted((root / img_dir).iterdir()) if p.suffix.lower() in IMAGE_EXTS}
        masks = {p.stem: p for p in sorted((root / mask_dir).iterdir()) if p.suffix.lower() in mask_exts}
        names = sorted(set(images) & set(masks))
        self.missing = len(set(images) ^ set(masks))
        if limit is not None:
            names = names[:limit]
        self.kind, self.root = kind, root
        self.items = [(n, images[n], masks[n]) for n in names]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> IISSample:
        name, ip, mp = self.items[i]
        image = np.asarray(Image.open(ip).convert("RGB"))
        m = np.asarray(Image.open(mp))
        mask, ignore = _decode_mask(self.kind, m)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{name}: mask {mask.shape} and image {image.shape[:2]} sizes differ")
        return IISSample(name, image, mask, ignore)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def load_iis(kind: str, root: str | Path, limit: int | None = None) -> IISDataset:
    """``IISDataset(kind, root, limit)``: kind is "grabcut", "berkeley" or "davis"."""
    return IISDataset(kind, root, limit)
