"""COCO compressed RLE (SA-1B's mask format): parsing, validation, decoding a window only, rasterising a mask.

    runs = validate_rle(ann["segmentation"], (h, w))        # int64 run lengths, zeros first; RLEError if bad
    x0, y0, x1, y1 = rle_bbox(runs, h)                       # the set pixels' box (ends exclusive), None if empty
    crop = rle_window(runs, h, x0, x1, y0, y1)               # uint8 0/1 [y1 - y0, x1 - x0]
    pieces = rasterise(runs, h, r, (cy, cx), (oh, ow), 16)   # its connected pieces, scaled by r, in a window

Maths. An RLE of an h x w mask lists run lengths c_0, c_1, ... of alternating zeros and ones (c_0 may be 0) over
the pixels in column-major order: pixel (y, x) is number i = x*h + y. With e_j = c_0 + ... + c_j, run j covers
[e_j - c_j, e_j) and holds the value j mod 2. Columns x0..x1 are the index range [x0*h, x1*h): clipping every run to
it and repeating each run's value by its clipped length gives those columns exactly, (x1 - x0)*h values, from which
rows y0..y1 are sliced. A run of ones [s, e) lies in columns s // h .. (e-1) // h; when those differ it covers the
bottom of the first and the top of the last, so the mask reaches rows 0 and h-1. ``rasterise`` maps a box
[x0, x1) of the source to output pixels [floor(x0*r - cx), ceil(x1*r - cx) + 1) (clipped to the window), reads the
exact fractional source box of those pixels, ((ox + cx)/r ...), from the enclosing whole source pixels, and keeps an
output pixel when at least half of its source area is covered.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage


class RLEError(ValueError):
    """An unusable segmentation; ``reason`` is "malformed_rle" or "rle_size_mismatch"."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def rle_counts(counts: str) -> np.ndarray:
    """Decode a COCO compressed RLE string into its run lengths (vectorised), validating it.

    Each count is a little-endian sequence of 5-bit chunks (char - 48; bit 0x20 = more chunks; the last chunk's
    bit 0x10 is the sign); counts from the 4th on are stored as differences to the count two places before.
    """
    x = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    if x.size == 0 or x.min() < 0 or x.max() > 63:
        raise ValueError("characters outside the RLE alphabet")
    last = (x & 0x20) == 0
    if not last[-1]:
        raise ValueError("truncated RLE string")
    group = np.concatenate([[0], np.cumsum(last)[:-1]])
    start = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    k = np.arange(len(x)) - start[group]
    vals = np.add.reduceat((x & 0x1F) << (5 * k), start)
    lastk = k[last]
    neg = (x[last] & 0x10) != 0
    vals = vals - (neg.astype(np.int64) << (5 * (lastk + 1)))
    c = vals.copy()
    if len(c) > 3:  # undo the delta coding: c[m] += c[m-2] for m > 2
        c[3::2] = c[1] + np.cumsum(vals[3::2])
        c[4::2] = c[2] + np.cumsum(vals[4::2])
    return c


def validate_rle(seg: Any, hw: tuple[int, int]) -> np.ndarray:
    """{"size": [h, w], "counts": str} of an (h, w) image -> its run lengths int64; raises RLEError if unusable."""
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg or not isinstance(seg["counts"], str):
        raise RLEError("malformed_rle", "segmentation must be {'size': [h, w], 'counts': str}")
    try:
        h, w = (int(v) for v in seg["size"])
    except (TypeError, ValueError):
        raise RLEError("malformed_rle", f"bad size {seg.get('size')!r}") from None
    if (h, w) != tuple(hw):
        raise RLEError("rle_size_mismatch", f"RLE {h}x{w} vs image {hw[0]}x{hw[1]}")
    try:
        runs = rle_counts(seg["counts"])
    except ValueError as e:
        raise RLEError("malformed_rle", str(e)) from None
    # pycocotools writes runs without bounds checks, and rle_window expands them: they must tile the image exactly
    if (runs < 0).any() or int(runs.sum()) != h * w:
        raise RLEError("malformed_rle", f"runs sum to {int(runs.sum())}, image has {h * w} pixels")
    return runs


def rle_bbox(runs: np.ndarray, h: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), ends exclusive, of the set pixels of a column-major RLE of height h; None when empty."""
    ends = np.cumsum(runs)
    s, e = (ends - runs)[1::2], ends[1::2]
    s, e = s[e > s], e[e > s]
    if not len(s):
        return None
    crosses = ((s // h) != ((e - 1) // h)).any()
    y0 = 0 if crosses else int((s % h).min())
    y1 = h if crosses else int(((e - 1) % h).max()) + 1
    return int(s.min() // h), y0, int((e.max() - 1) // h) + 1, y1


def rle_window(runs: np.ndarray, h: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1, columns x0..x1 of a column-major RLE of height h, as uint8 0/1 [y1 - y0, x1 - x0].

    Only the runs inside columns x0..x1 are expanded: (x1 - x0) * h bytes, never the whole image.
    """
    if not (0 <= x0 < x1 and 0 <= y0 < y1 <= h) or x1 * h > int(np.sum(runs)):
        raise ValueError(f"window x {x0}..{x1}, y {y0}..{y1} is empty or outside the {h}-row mask")
    ends = np.cumsum(runs)
    lo, hi = x0 * h, x1 * h
    lengths = np.clip(ends, lo, hi) - np.clip(ends - runs, lo, hi)
    cols = np.repeat((np.arange(len(runs)) & 1).astype(np.uint8), lengths)     # [(x1 - x0) * h], column-major
    return np.ascontiguousarray(cols.reshape(x1 - x0, h)[:, y0:y1].T)


def rasterise(runs: np.ndarray, h0: int, r: float, crop: tuple[int, int], out_hw: tuple[int, int],
              min_area: int) -> list[tuple[np.ndarray, int, int, int]]:
    """A mask of an (h0, w0) image, scaled by r, in the output window of size out_hw = (oh, ow) whose top-left is
    at crop = (cy, cx) of the scaled image: its connected pieces as (bool crop [h, w], y0, x0, area) in window
    pixels, pieces under ``min_area`` pixels dropped. Works inside the mask's box: the window of the runs that
    covers it is area-resized (PIL BOX on the exact fractional source box) and binarised at half coverage."""
    w0 = int(np.sum(runs)) // h0
    box = rle_bbox(runs, h0)
    if box is None:
        return []
    (cy, cx), (oh, ow) = crop, out_hw
    ox0, oy0 = max(0, math.floor(box[0] * r - cx)), max(0, math.floor(box[1] * r - cy))
    ox1, oy1 = min(ow, math.ceil(box[2] * r - cx) + 1), min(oh, math.ceil(box[3] * r - cy) + 1)
    if ox1 <= ox0 or oy1 <= oy0:
        return []
    src = ((ox0 + cx) / r, (oy0 + cy) / r, min((ox1 + cx) / r, w0), min((oy1 + cy) / r, h0))
    sx0, sy0 = math.floor(src[0]), math.floor(src[1])
    sx1, sy1 = min(w0, math.ceil(src[2])), min(h0, math.ceil(src[3]))
    window = rle_window(runs, h0, sx0, sx1, sy0, sy1) * np.uint8(255)
    cov = np.asarray(Image.fromarray(window).resize((ox1 - ox0, oy1 - oy0), Image.BOX,
                                                    box=(src[0] - sx0, src[1] - sy0, src[2] - sx0, src[3] - sy0)))
    lab, n = ndimage.label(cov >= 128)  # area-resize then binarise: a pixel is in when >= half of it is covered
    if n == 0:
        return []
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    out = []
    for c, sl in enumerate(ndimage.find_objects(lab), start=1):
        if areas[c] >= min_area:
            out.append((lab[sl] == c, oy0 + sl[0].start, ox0 + sl[1].start, int(areas[c])))
    return out
