"""Single-object test samples: the largest object of a dataset image, as ``(name, image, mask, ignore)`` tuples.

    for name, image, mask, ignore in synthetic_samples(10):          # image uint8 [H, W, 3], mask bool [H, W]
        ...
    bsds_samples(root / "datasets" / "bsds500", n=30)                 # ignore is None for both
    iis_samples("grabcut", root / "fixtures" / "grabcut_sample")      # ignore bool [H, W] (GrabCut's 128 band)
    sample_sets(10)      # {"synthetic": ..., "BSDS val": ..., "GrabCut sample": ...}; real sets need ../shared

The common input of HILL's ``featlib.refine.evaluate`` and the click benchmarks (``scripts/evaluate_iis.py``,
``scripts/benchmarks/clicks.py``). Each loader is a generator, so a long dataset is read one image at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from featlib.data.bsds import load_bsds, load_record
from featlib.data.iis import load_iis
from featlib.data.synthetic import make_scene
from featlib.utils import shared_dir


def synthetic_samples(n: int, size: tuple[int, int] = (192, 256), seed: int = 0) -> Iterator[tuple]:
    """(name, image, largest object mask, None) from ``featlib.data.synthetic.make_scene`` scenes of ``size`` (H, W)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        sc = make_scene(rng, size)
        objs = [m for m, meta in zip(sc.masks, sc.meta) if meta.get("kind") == "object"] or sc.masks
        yield f"synthetic{k}", sc.image, max(objs, key=lambda m: m.sum()), None


def bsds_samples(root, n: int, split: str = "val", min_area: float = 0.05, max_area: float = 0.5,
                 ids: list[str] | None = None) -> Iterator[tuple]:
    """(id, image, mask, None): per BSDS image the largest first-annotator segment covering 5-50 % of the image.

    Images whose segments are all outside (min_area, max_area) of the image are skipped, so fewer than ``n`` may come.
    ``ids``: only these images of the split (e.g. ``holdout_split``'s held-out train ids), in this order.
    """
    records = load_bsds(root, split, limit=n) if ids is None else (load_record(root, split, i) for i in ids[:n])
    for rec in records:
        seg = rec.segmentations[0]
        frac = np.bincount(seg.ravel()) / seg.size
        cand = [k for k in np.argsort(-frac) if min_area < frac[k] < max_area]
        if cand:
            yield rec.id, rec.image, seg == cand[0], None


def iis_samples(kind: str, root, limit: int | None = None) -> Iterator[tuple]:
    """(name, image, mask, ignore) from a click benchmark folder (``featlib.data.iis``: grabcut, berkeley, davis)."""
    for s in load_iis(kind, root, limit=limit):
        yield s.name, s.image, s.mask, s.ignore


def sample_sets(n: int, small: bool = False) -> dict[str, Iterator[tuple]]:
    """The standard single-object sets, fresh generators each call: synthetic scenes, and with ``../shared`` BSDS500
    val (``n`` images) and the GrabCut sample. ``small`` (smoke runs): smaller synthetic scenes, real photos at half
    resolution, one GrabCut image."""
    sets = {"synthetic": synthetic_samples(n, size=(96, 128) if small else (192, 256))}
    root = shared_dir()
    if root is not None and (root / "datasets" / "bsds500").is_dir():
        sets["BSDS val"] = bsds_samples(root / "datasets" / "bsds500", n)
    if root is not None and (root / "fixtures" / "grabcut_sample").is_dir():
        gc = root / "fixtures" / "grabcut_sample"
        sets["GrabCut sample"] = iis_samples("grabcut", gc, limit=1 if small else None)
    if small:
        for name in set(sets) - {"synthetic"}:
            sets[name] = ((nm, im[::2, ::2], m[::2, ::2], None if ig is None else ig[::2, ::2])
                          for nm, im, m, ig in sets[name])
    return sets
