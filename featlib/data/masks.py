"""Compact mask transport: masks travel from the DataLoader workers to the device as bit-packed rows.

    batch = collate(samples)                  # featlib.data.sa1b.collate: a Batch (dict) in the layout below
    dev = to_device(batch, "cuda")            # image float [B, 3, S, S], masks bool [B, K, S, S], valid_pixels ...
    masks = dense_masks(batch)                # bool [B, K, S, S] on the CPU (notebooks, tests); a sample: [K, S, S]
    batch_nbytes(batch)                       # bytes of the batch's tensors (what a worker puts in /dev/shm)
    rows, index = compact_masks(dense)        # any bool [K, S, S] (BSDS, tests) -> the compact form of one sample
    valid = dense_valid_pixels(batch)         # bool [B, S, S] (a sample: [S, S]) on the CPU

Layout. A mask m of an S x S sample is S rows m[y] in {0, 1}^S. Only rows holding a set pixel are kept, each packed
8 pixels per byte (``np.packbits`` order: pixel x is bit 7 - x % 8 of byte x // 8; the width is zero-padded to
W8 = ceil(S / 8) bytes). A batch of B samples padded to K mask slots carries

    image           uint8 [B, 3, S, S]      (uint8 until the device: a quarter of float32)
    valid_pixels    uint8 [B, S, W8]        packed, False on padding
    mask_rows       uint8 [R, W8]           every kept row of every mask of every sample
    mask_row_index  int64 [R]               its row in the flattened dense masks: r = (b*K + k)*S + y
    mask_valid      bool [B, K]; mask_id int64 [B, K]; area, predicted_iou, stability_score [B, K]; name; skipped
    padded          bool (a Python value): some valid_pixels are False (known on the host, no device read)

so ``dense.view(B*K*S, S)[mask_row_index[i]] = unpack(mask_rows[i])`` and every other row is zero. A sample (before
``collate``) has the same keys without the batch axis, with r = k*S + y; ``collate`` adds b*K*S to its indices.

Size. Dense bool masks cost B*K*S^2 bytes (512 MiB at B = 8, K = 64, S = 1024). The compact form costs
R*(W8 + 8) bytes with R = the summed heights of the masks in rows: a mask h rows tall costs h*(S/8 + 8) instead of
S^2, i.e. (h/S)*(1/8 + 8/S) of it -- at most 1/7.5 at S = 1024 (a mask touching every row) and ~1/30 for a mask a
quarter of the image tall. ``scripts/benchmark.py data`` measures it on SA-1B-like samples.

Rebuilding on the device is one vectorised unpack of the R rows (shift by 7..0, and 1) and one ``index_copy_``
into a zeroed [B*K*S, S] tensor: no Python loop over masks. Row indices are unique by construction (``collate``,
which also checks their range); ``to_device`` checks dtypes and shapes only, reading no value on the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

META_KEYS = ("mask_id", "area", "predicted_iou", "stability_score")


def row_bytes(width: int) -> int:
    """W8 = ceil(width / 8): bytes of one packed row."""
    return math.ceil(width / 8)


def pack_rows(rows: np.ndarray) -> np.ndarray:
    """bool [..., W] -> uint8 [..., ceil(W/8)] (8 pixels per byte, zero-padded; ``np.packbits`` bit order)."""
    rows = np.asarray(rows)
    if rows.dtype != bool or rows.ndim < 1:
        raise ValueError(f"pack_rows needs a bool array [..., W], got {rows.dtype} {rows.shape}")
    return np.packbits(rows, axis=-1)


def unpack_rows(packed: torch.Tensor, width: int) -> torch.Tensor:
    """uint8 [..., W8] -> uint8 0/1 [..., width] on packed's device (vectorised; the inverse of ``pack_rows``)."""
    if packed.dtype != torch.uint8 or packed.ndim < 1 or packed.shape[-1] != row_bytes(width):
        raise ValueError(f"packed rows must be uint8 [..., {row_bytes(width)}] for width {width}, got "
                         f"{packed.dtype} {tuple(packed.shape)}")
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1                       # [..., W8, 8]
    return bits.flatten(-2)[..., :width]


def piece_rows(piece: np.ndarray, y0: int, x0: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One mask given by its box crop -> (packed rows uint8 [n, W8], their y int64 [n]), only rows it touches.

    piece bool [h, w] sits at rows y0..y0+h, columns x0..x0+w of a ``width``-wide image; memory is n*width bytes
    for the rows it touches, never the whole image.
    """
    if piece.dtype != bool or piece.ndim != 2:
        raise ValueError(f"piece must be bool [h, w], got {piece.dtype} {piece.shape}")
    h, w = piece.shape
    if y0 < 0 or x0 < 0 or x0 + w > width:
        raise ValueError(f"piece {h}x{w} at (y0={y0}, x0={x0}) does not fit a {width}-wide image")
    ys = np.flatnonzero(piece.any(1))
    full = np.zeros((len(ys), width), bool)
    full[:, x0:x0 + w] = piece[ys]
    return np.packbits(full, axis=1), (ys + y0).astype(np.int64)


def compact_masks(masks: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense bool [K, H, W] -> (mask_rows uint8 [R, ceil(W/8)], mask_row_index int64 [R] = k*H + y) of one sample."""
    m = masks.numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if m.dtype != bool or m.ndim != 3:
        raise ValueError(f"masks must be bool [K, H, W], got {m.dtype} {m.shape}")
    k, h, w = m.shape
    kk, yy = np.nonzero(m.any(2))
    rows = np.packbits(m[kk, yy], axis=1) if len(kk) else np.zeros((0, row_bytes(w)), np.uint8)
    return torch.from_numpy(np.ascontiguousarray(rows)), torch.from_numpy((kk * h + yy).astype(np.int64))


def _shape(batch: Mapping, check_index: bool = True) -> tuple[int | None, int, int]:
    """(B or None for a sample, K, S) of a batch or sample, checking every key's dtype and shape (ValueError), and
    the row indices' range when ``check_index`` (that reads tensor values: not in ``to_device``'s hot path)."""
    for key in ("image", "valid_pixels", "mask_rows", "mask_row_index", "mask_id"):
        if not isinstance(batch.get(key), torch.Tensor):
            raise ValueError(f"compact batch lacks tensor {key!r} (keys: {sorted(batch)})")
    image = batch["image"]
    if image.dtype != torch.uint8 or image.ndim not in (3, 4) or image.shape[-3] != 3 or image.shape[-1] != \
            image.shape[-2]:
        raise ValueError(f"image must be uint8 [B, 3, S, S] (or [3, S, S]), got {image.dtype} {tuple(image.shape)}")
    lead = tuple(image.shape[:-3])
    s = image.shape[-1]
    w8 = row_bytes(s)
    k = batch["mask_id"].shape[-1] if batch["mask_id"].ndim else -1
    checks = [("valid_pixels", torch.uint8, (*lead, s, w8)), ("mask_id", torch.int64, (*lead, k)),
              ("mask_rows", torch.uint8, (batch["mask_rows"].shape[0], w8)),
              ("mask_row_index", torch.int64, (batch["mask_rows"].shape[0],))]
    if lead:
        checks.append(("mask_valid", torch.bool, (*lead, k)))
    for key, dtype, shape in checks:
        t = batch.get(key)
        if not isinstance(t, torch.Tensor) or t.dtype != dtype or tuple(t.shape) != shape:
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else repr(type(t).__name__)
            raise ValueError(f"{key} must be {dtype} {list(shape)} (S = {s}, K = {k}), got {got}")
    idx = batch["mask_row_index"]
    rows_total = (lead[0] if lead else 1) * k * s
    if check_index and len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= rows_total):
        raise ValueError(f"mask_row_index must lie in [0, B*K*S = {rows_total}), got [{int(idx.min())}, "
                         f"{int(idx.max())}]")
    return (lead[0] if lead else None), k, s


def _dense(rows: torch.Tensor, index: torch.Tensor, n_rows: int, s: int) -> torch.Tensor:
    """uint8 [n_rows, s] with unpacked ``rows`` at ``index``, zeros elsewhere, viewed as bool (on rows' device)."""
    out = torch.zeros(n_rows, s, dtype=torch.uint8, device=rows.device)
    if len(index):
        out.index_copy_(0, index, unpack_rows(rows, s))
    return out.view(torch.bool)


def dense_masks(batch: Mapping) -> torch.Tensor:
    """Masks of a compact batch as bool [B, K, S, S] (or of one sample: [K, S, S]), on the CPU."""
    b, k, s = _shape(batch)
    n = (b or 1) * k * s
    dense = _dense(batch["mask_rows"].cpu(), batch["mask_row_index"].cpu(), n, s)
    return dense.view(k, s, s) if b is None else dense.view(b, k, s, s)


def dense_valid_pixels(batch: Mapping) -> torch.Tensor:
    """valid_pixels of a compact batch as bool [B, S, S] (a sample: [S, S]), on the CPU."""
    _, _, s = _shape(batch)
    return unpack_rows(batch["valid_pixels"].cpu(), s).bool()


def to_device(batch: Mapping, device: torch.device | str, non_blocking: bool = True) -> dict:
    """A collated compact batch on ``device``, ready for the model and the loss:

    image float32 [B, 3, S, S] in [0, 1]; masks bool [B, K, S, S]; valid_pixels bool [B, S, S]; mask_valid bool
    [B, K]; mask_id int64 [B, K]. Only the compact tensors are copied (``non_blocking``: overlaps with compute
    when the batch is in pinned memory); conversion and unpacking run on the device. Only dtypes and shapes are
    checked here (no tensor value is read on the host: the CPU keeps running ahead of the device); ``collate``
    checked the row indices, and ``index_copy_`` refuses out-of-range ones.
    """
    b, k, s = _shape(batch, check_index=False)
    if b is None:
        raise ValueError("to_device needs a collated batch (image [B, 3, S, S]); got one sample: use collate([s])")

    def move(key):
        return batch[key].to(device, non_blocking=non_blocking)

    image = move("image").float().div_(255)
    masks = _dense(move("mask_rows"), move("mask_row_index"), b * k * s, s).view(b, k, s, s)
    return {"image": image, "masks": masks, "valid_pixels": unpack_rows(move("valid_pixels"), s).bool(),
            "mask_valid": move("mask_valid"), "mask_id": move("mask_id")}


def batch_nbytes(batch: Mapping) -> int:
    """Bytes held by the batch's tensors (the names and the skip Counter are not counted)."""
    return sum(v.numel() * v.element_size() for v in batch.values() if isinstance(v, torch.Tensor))


class Batch(dict):
    """A collated batch: a dict that pins itself. ``DataLoader(pin_memory=True)`` calls ``pin_memory()`` on it (in
    its pinning thread): tensors are pinned, names and the ``skipped`` Counter kept as they are. (torch's generic
    pinning copies a mapping and ``update``s the copy, which *adds* a Counter's counts again: skips counted twice.)"""

    def pin_memory(self, device=None) -> Batch:
        return Batch({k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in self.items()})


def collate_compact(samples: list[Mapping]) -> Batch:
    """Stack compact samples into a compact batch padded to K = the largest mask count (see the layout above).

    Every sample must have the same S; metadata of padding slots is zero and ``mask_valid`` is False there.
    """
    if not samples:
        raise ValueError("collate_compact needs at least one sample")
    sizes = {tuple(s["image"].shape) for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"samples have different image shapes {sorted(sizes)}; every sample must be [3, S, S]")
    s = samples[0]["image"].shape[-1]
    counts = [int(x["mask_id"].shape[0]) for x in samples]
    for x, n in zip(samples, counts):  # each sample's rows must stay in its own slots once offset
        idx = x["mask_row_index"]
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n * s):
            raise ValueError(f"sample {x.get('name', '?')}: mask_row_index must lie in [0, K*S = {n * s}), got "
                             f"[{int(idx.min())}, {int(idx.max())}]")
    b, k = len(samples), max(counts)
    out = {"image": torch.stack([x["image"] for x in samples]),
           "valid_pixels": torch.stack([x["valid_pixels"] for x in samples]),
           "mask_rows": torch.cat([x["mask_rows"] for x in samples]),
           "mask_row_index": torch.cat([x["mask_row_index"] + i * k * s for i, x in enumerate(samples)]),
           "mask_valid": torch.arange(k)[None, :] < torch.tensor(counts)[:, None]}
    full = torch.from_numpy(pack_rows(np.ones(s, bool)))  # a packed row without padding
    out["padded"] = not bool((out["valid_pixels"] == full).all())
    for key in META_KEYS:
        out[key] = torch.zeros(b, k, dtype=samples[0][key].dtype)
        for i, x in enumerate(samples):
            out[key][i, :counts[i]] = x[key]
    _shape(out)
    return Batch(out)
