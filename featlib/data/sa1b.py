"""SA-1B reading: extracted folders and raw (or prepared) tar shards, decoded into training samples.

A sample (``decode_sample``) is a dict in the compact form of ``featlib.data.masks`` (S = ``size``, W8 = ceil(S/8)):
    image           uint8 [3, S, S]   (longest side resized to S·zoom, flipped, then padded: content top-left)
    valid_pixels    uint8 [S, W8]     bit-packed rows, False on padding
    mask_rows       uint8 [R, W8]     the packed rows each instance touches (an instance = one connected piece
    mask_row_index  int64 [R]         of an annotated mask); row r = k*S + y of the dense [K, S, S] masks
    mask_id, area, predicted_iou, stability_score   [K] metadata per instance (mask_id: its SA-1B annotation)
    name            str
``collate`` pads K across the batch (``mask_valid`` bool [B, K]); ``featlib.data.masks.to_device`` rebuilds dense
masks on the device, ``dense_masks`` on the CPU.

Speed (SA-1B photos are ~1500 x 2250 with ~100 masks): the JPEG is decoded at reduced scale (libjpeg DCT scaling
through PIL ``draft``) when the target is much smaller. With ``max_instances`` the annotations are shuffled (sample
rng) and rasterised one by one until ``max_instances`` pieces are collected: the rest are never decoded. An
annotation's pieces are kept together or not at all, so every kept piece's ``mask_id`` names a whole annotation;
annotations are drawn uniformly, so the subset keeps the mix of object / part / sub-part granularities of the full
list. Each annotation is rasterised only inside its bounding box (taken from its runs, not trusted from the JSON):
SA-1B's RLE runs over columns (column-major), so the runs of the box's columns are expanded (``np.repeat``) into a
box-sized window, area-resized to the training resolution (PIL BOX filter, exact for fractional boxes), binarised
at half coverage and split into connected components, each cropped to its own box; no full-size array is ever
made per mask. Prepared shards (``scripts/prepare_sa1b.py``) store the JPEG and RLEs already at the training size.

Bad data never stops an epoch: the sample is skipped and counted by reason in ``dataset.skipped`` (in the main
process) and in the batch's ``"skipped"`` Counter (from DataLoader workers); ``strict=True`` raises
``BadSample`` naming the file instead. Reasons: corrupt_image, decompression_bomb, invalid_json, malformed_rle,
rle_size_mismatch, missing_pair, no_annotations (and corrupt_shard for an unreadable tar). Every annotation's RLE
is validated, decoded or not, so a malformed one skips the sample whatever the subset.
"""

from __future__ import annotations

import glob
import io
import json
import math
import random
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from featlib.config import ConfigError
from featlib.data.masks import Batch, collate_compact, pack_rows, piece_rows, row_bytes
from featlib.data.rle import RLEError, rasterise, rle_counts, validate_rle  # noqa: F401 (rle_counts: re-export)

SKIP_REASONS = ("corrupt_image", "decompression_bomb", "invalid_json", "malformed_rle", "rle_size_mismatch",
                "missing_pair", "no_annotations")
MAX_PIXELS = 64_000_000  # SA-1B photos are ~3.4 MP; anything this large is a decompression bomb, not a photo


class BadSample(ValueError):
    """A sample that cannot be decoded; ``reason`` is one of SKIP_REASONS."""

    def __init__(self, reason: str, name: str, detail: str = ""):
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))
        self.reason, self.name = reason, name


# ----------------------------------------------------------------------------------------------- RLE


def rle_runs(seg: Any, hw: tuple[int, int], name: str) -> np.ndarray:
    """Validate an SA-1B segmentation dict against the image size; returns its run lengths int64 (zeros first).

    Raises BadSample("malformed_rle" | "rle_size_mismatch", name).
    """
    try:
        return validate_rle(seg, hw)
    except RLEError as e:
        raise BadSample(e.reason, name, str(e)) from None


def check_rle(seg: Any, hw: tuple[int, int], name: str) -> dict:
    """Validate an SA-1B segmentation dict against the image size; returns a pycocotools RLE."""
    rle_runs(seg, hw, name)
    return {"size": [int(v) for v in seg["size"]], "counts": seg["counts"].encode("ascii")}


# ----------------------------------------------------------------------------------------------- decoding


def _open_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        if img.size[0] * img.size[1] > max_pixels:
            raise BadSample("decompression_bomb", name, f"{img.size[0]}x{img.size[1]} pixels")
        return img
    except BadSample:
        raise
    except Image.DecompressionBombError as e:
        raise BadSample("decompression_bomb", name, str(e)) from None
    except Exception as e:
        raise BadSample("corrupt_image", name, f"{type(e).__name__}: {e}") from None


def _plan(h: int, w: int, size: int, augment: bool, rng: np.random.Generator, zoom: tuple[float, float]):
    """Where the photo lands in the S x S sample: (scale out/in, crop offset (cy, cx) in resized pixels, (oh, ow),
    flip)."""
    z = rng.uniform(*zoom) if augment else 1.0
    r = size * z / max(h, w)
    rh, rw = h * r, w * r
    cy = rng.uniform(0, max(0.0, rh - size)) if augment else 0.0
    cx = rng.uniform(0, max(0.0, rw - size)) if augment else 0.0
    cy, cx = math.floor(cy), math.floor(cx)
    oh, ow = min(size, int(math.floor(rh - cy))), min(size, int(math.floor(rw - cx)))
    flip = bool(augment and rng.random() < 0.5)
    return r, (cy, cx), (max(oh, 1), max(ow, 1)), flip


def parse_record(record, name: str) -> tuple[dict, list]:
    """An SA-1B annotation record (dict, or JSON bytes/str) -> (record, its non-empty 'annotations' list).

    Raises BadSample("invalid_json" | "no_annotations", name).
    """
    if not isinstance(record, dict):
        try:
            record = json.loads(record)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadSample("invalid_json", name, str(e)) from None
    anns = record.get("annotations") if isinstance(record, dict) else None
    if not isinstance(anns, list):
        raise BadSample("invalid_json", name, "no 'annotations' list")
    if not anns:
        raise BadSample("no_annotations", name)
    return record, anns


def decode_sample(jpg: bytes, record: bytes | dict, name: str, *, size: int = 1024, augment: bool = True,
                  rng: np.random.Generator | None = None, min_component_area: int = 16,
                  max_instances: int | None = None, zoom: tuple[float, float] = (1.0, 1.5),
                  max_pixels: int = MAX_PIXELS) -> dict:
    """Decode one (jpg bytes, json) pair into a compact training sample (module docstring). Raises BadSample.

    K <= ``max_instances``: annotations are drawn in a random order and kept whole while they fit.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    record, anns = parse_record(record, name)
    img = _open_image(jpg, name, max_pixels)
    w0, h0 = img.size
    r, (cy, cx), (oh, ow), flip = _plan(h0, w0, size, augment, rng, zoom)
    try:
        img.draft("RGB", (max(1, int(w0 * r)), max(1, int(h0 * r))))  # DCT-domain downscale, JPEG only
        # source box of the output window in the (drafted) image's pixels; each axis has its own draft factor
        # (sizes round up per axis), and float error must not push the box past the image (PIL refuses it)
        dw, dh = img.size[0] / w0, img.size[1] / h0
        box = (cx / r * dw, cy / r * dh, min((cx + ow) / r * dw, img.size[0]), min((cy + oh) / r * dh, img.size[1]))
        pix = img.convert("RGB").resize((ow, oh), Image.BILINEAR, box=box, reducing_gap=None if dw < 1 else 2.0)
    except BadSample:
        raise
    except Exception as e:
        raise BadSample("corrupt_image", name, f"{type(e).__name__}: {e}") from None
    image = np.zeros((size, size, 3), np.uint8)
    image[:oh, :ow] = np.asarray(pix)[:, ::-1] if flip else np.asarray(pix)  # flip the content, then pad
    valid = np.zeros((size, size), bool)
    valid[:oh, :ow] = True

    runs = [rle_runs(a.get("segmentation") if isinstance(a, dict) else None, (h0, w0), name) for a in anns]
    order = range(len(anns)) if max_instances is None else rng.permutation(len(anns))
    kept, n = [], 0
    for i in order:
        if max_instances is not None and n >= max_instances:
            break
        pieces = rasterise(runs[i], h0, r, (cy, cx), (oh, ow), min_component_area)
        if pieces and (max_instances is None or n + len(pieces) <= max_instances):
            kept.append((int(i), pieces))
            n += len(pieces)
    rows, index, meta = [np.zeros((0, row_bytes(size)), np.uint8)], [np.zeros(0, np.int64)], []
    for i, pieces in sorted(kept, key=lambda t: t[0]):
        a = anns[i]
        for piece, y0, x0, area in pieces:
            if flip:
                piece, x0 = piece[:, ::-1], ow - x0 - piece.shape[1]
            packed, ys = piece_rows(piece, y0, x0, size)
            rows.append(packed)
            index.append(ys + len(meta) * size)
            meta.append((int(a.get("id", -1)), area, float(a.get("predicted_iou", float("nan"))),
                         float(a.get("stability_score", float("nan")))))
    meta_arr = np.array(meta, dtype=np.float64).reshape(-1, 4)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "valid_pixels": torch.from_numpy(pack_rows(valid)),
        "mask_rows": torch.from_numpy(np.concatenate(rows)),
        "mask_row_index": torch.from_numpy(np.concatenate(index)),
        "mask_id": torch.from_numpy(meta_arr[:, 0].astype(np.int64)),
        "area": torch.from_numpy(meta_arr[:, 1].astype(np.int64)),
        "predicted_iou": torch.from_numpy(meta_arr[:, 2].astype(np.float32)),
        "stability_score": torch.from_numpy(meta_arr[:, 3].astype(np.float32)),
        "name": name,
    }


def collate(samples: Sequence[dict]) -> dict:
    """Batch compact samples (``featlib.data.masks.collate_compact``: K padded, ``mask_valid`` bool [B, K]).

    Skipped-sample markers (``{"skipped": reason}``) are dropped and counted in ``batch["skipped"]`` (a Counter),
    so counts survive DataLoader worker processes; a batch of markers only is ``{"skipped": ..., "image": None}``.
    """
    skipped = Counter(s["skipped"] for s in samples if "skipped" in s)
    samples = [s for s in samples if "skipped" not in s]
    if not samples:
        return Batch(skipped=skipped, image=None, name=[])
    return Batch(collate_compact(samples), name=[s["name"] for s in samples], skipped=skipped)


# ----------------------------------------------------------------------------------------------- datasets


class _Decoding:
    """Shared options and skip accounting of the folder and shard datasets."""

    def __init__(self, size, max_instances, min_component_area, augment, strict, seed, zoom):
        self.opts = dict(size=size, max_instances=max_instances, min_component_area=min_component_area,
                         augment=augment, zoom=zoom)
        self.strict, self.seed, self.epoch = strict, seed, 0
        self.skipped: Counter = Counter()

    def set_epoch(self, epoch: int) -> None:
        """Change augmentation randomness and shard order (call once per epoch, like DistributedSampler)."""
        self.epoch = epoch

    def _decode(self, jpg: bytes | None, record: bytes | None, name: str, rng: np.random.Generator) -> dict:
        try:
            if jpg is None or record is None:
                raise BadSample("missing_pair", name, "no .json" if record is None else "no .jpg")
            return decode_sample(jpg, record, name, rng=rng, **self.opts)
        except BadSample as e:
            if self.strict:
                raise
            self.skipped[e.reason] += 1
            return {"skipped": e.reason, "name": name}


def _stem(name: str) -> str:
    return Path(name).name.split(".", 1)[0]


class SA1BFolder(_Decoding, torch.utils.data.Dataset):
    """An extracted SA-1B folder: flat (sa_1.jpg + sa_1.json) or images/ + annotations/, searched recursively."""

    def __init__(self, root: str | Path, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        jpgs = {_stem(p.name): p for p in self.root.rglob("*.jpg")}
        jsons = {_stem(p.name): p for p in self.root.rglob("*.json")}
        self.items = [(jpgs.get(k), jsons.get(k), k) for k in sorted(set(jpgs) | set(jsons), key=_natural)]
        if not self.items:
            raise FileNotFoundError(f"no SA-1B .jpg/.json pairs under {self.root}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        jpg, js, key = self.items[i]
        name = str(jpg or js)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return self._decode(jpg.read_bytes() if jpg else None, js.read_bytes() if js else None, name, rng)


def _natural(key: str):
    digits = "".join(ch for ch in key if ch.isdigit())
    return (int(digits) if digits else -1, key)


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int, int, int]:
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world_size = 0, 1
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank, world_size, worker, workers


def iter_tar_pairs(path: str | Path) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """Stream (key, jpg, json) from a tar without extracting it; members may come in any order.

    Pairs are emitted as soon as both halves were seen, so memory holds only unmatched members (SA-1B keeps
    pairs adjacent, so that is ~1); leftovers at the end come out with the missing half as None.
    """
    from webdataset.tariterators import tar_file_iterator  # imported on use: 1.4 s, only tar shards need it

    pending: dict[str, dict[str, bytes]] = {}
    with open(path, "rb") as f:  # tar_file_iterator opens the stream in "r|*" mode: sequential, no extraction
        for member in tar_file_iterator(f):
            fname = member["fname"]
            key, ext = _stem(fname), fname.rsplit(".", 1)[-1].lower()
            if ext not in ("jpg", "json"):
                continue  # instance maps, READMEs ...
            slot = pending.setdefault(key, {})
            slot[ext] = member["data"]
            if "jpg" in slot and "json" in slot:
                del pending[key]
                yield f"{path}:{key}", slot["jpg"], slot["json"]
    for key, slot in pending.items():
        yield f"{path}:{key}", slot.get("jpg"), slot.get("json")


class SA1BShards(_Decoding, torch.utils.data.IterableDataset):
    """Raw SA-1B tar shards (or prepared ones), read in place and streamed.

    Shards are split across DDP ranks and DataLoader workers: consumer ``rank * workers + worker`` reads shards
    ``consumer, consumer + rank*workers, ...`` of the (per-epoch shuffled, identical on every rank) shard list,
    so each sample is read exactly once per epoch. That needs at least as many shards as ranks x workers: with fewer,
    some consumer would get none and its rank would wait for the others forever, so ``check_split`` (called by
    ``featlib.data.loaders.InfiniteLoader`` at start, and here when iteration starts) raises ConfigError instead,
    the same on every rank. Samples are shuffled through a buffer of ``shuffle_buffer`` pairs.
    """

    def __init__(self, shards: Sequence[str | Path], *, shuffle_buffer: int = 256, rank: int | None = None,
                 world_size: int | None = None, **kw):
        super().__init__(**kw)
        self.shards = [str(s) for s in shards]
        if not self.shards:
            raise FileNotFoundError("no tar shards given")
        self.shuffle_buffer, self.rank, self.world_size = shuffle_buffer, rank, world_size

    def check_split(self, world_size: int, workers: int) -> None:
        """Raise ConfigError unless every one of ``world_size`` x ``workers`` consumers gets a shard (deterministic:
        the same answer on every rank, before any collective)."""
        need = world_size * max(1, workers)
        if len(self.shards) < need:
            raise ConfigError(f"SA-1B tar shards: {world_size} rank(s) x {max(1, workers)} DataLoader worker(s) need "
                              f"at least {need} shards, there are {len(self.shards)} ({self.shards[0]}"
                              f"{' ...' if len(self.shards) > 1 else ''}); a consumer without a shard would leave its "
                              f"rank waiting in all-reduce. Use fewer workers (num_workers) or more, smaller shards")

    def my_shards(self) -> list[str]:
        rank, world, worker, workers = _dist_info(self.rank, self.world_size)
        self.check_split(world, workers)
        order = list(self.shards)
        if self.opts["augment"]:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        consumer, consumers = rank * workers + worker, world * workers
        return order[consumer::consumers]

    def __iter__(self) -> Iterator[dict]:
        rank, _, worker, _ = _dist_info(self.rank, self.world_size)
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker])
        buf: list[tuple[str, bytes | None, bytes | None]] = []
        for shard in self.my_shards():
            try:
                for item in iter_tar_pairs(shard):
                    if self.shuffle_buffer <= 1:
                        yield self._decode(item[1], item[2], item[0], rng)
                        continue
                    buf.append(item)
                    if len(buf) >= self.shuffle_buffer:
                        k, j, s = buf.pop(int(rng.integers(len(buf))))
                        yield self._decode(j, s, k, rng)
            except tarfile.ReadError as e:
                if self.strict:
                    raise BadSample("corrupt_image", shard, f"unreadable tar: {e}") from None
                self.skipped["corrupt_shard"] += 1
                yield {"skipped": "corrupt_shard", "name": shard}  # counted in the batch too (workers' Counter)
        rng.shuffle(buf)
        for k, j, s in buf:
            yield self._decode(j, s, k, rng)


def _expand(source: str | Path | Iterable) -> list[str]:
    if isinstance(source, (list, tuple)):
        out = []
        for s in source:
            out += _expand(s)
        return out
    s = str(source)
    if any(ch in s for ch in "*?["):
        return sorted(glob.glob(s), key=lambda p: _natural(Path(p).name))
    return [s]


def sa1b_dataset(source, *, size: int = 1024, max_instances: int | None = None, min_component_area: int = 16,
                 augment: bool = True, strict: bool = False, seed: int = 0, zoom: tuple[float, float] = (1.0, 1.5),
                 **kw):
    """SA-1B as a torch dataset; the kind of ``source`` is detected:

    - a folder of .jpg/.json (flat or images/ + annotations/) -> ``SA1BFolder`` (map-style)
    - a .tar file, a glob or list of tars, or a folder containing .tar files (raw or prepared shards)
      -> ``SA1BShards`` (iterable, sharded over ranks and workers)
    """
    common = dict(size=size, max_instances=max_instances, min_component_area=min_component_area, augment=augment,
                  strict=strict, seed=seed, zoom=zoom)
    paths = _expand(source)
    if len(paths) == 1 and Path(paths[0]).is_dir():
        root = Path(paths[0])
        tars = sorted(root.glob("*.tar"), key=lambda p: _natural(p.name))
        if tars and not any(root.glob("*.jpg")):
            return SA1BShards(tars, **common, **kw)
        return SA1BFolder(root, **common)
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        raise FileNotFoundError(f"SA-1B source not found: {missing or source}")
    if not all(p.endswith(".tar") for p in paths):
        raise ValueError(f"expected a folder or .tar shards, got {paths[:3]}")
    return SA1BShards(paths, **common, **kw)
