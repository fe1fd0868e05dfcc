"""SA-1B data path: bytes per batch (dense vs compact masks), samples/s of one worker, /dev/shm per rank.

    python scripts/benchmark.py data [--quick] [--samples 8] [--workers 12] [--prefetch 2] [--measure-workers 2]

Input: SA-1B-like samples (``featlib.data.prepare.sa1b_like_pair``: a 2250 x 1500 JPEG with ~65-95 nested masks in
COCO RLE, ~140 connected pieces) in a raw tar shard, and the same shard after ``prepare_shard`` at the training
size. Training settings throughout: S = 1024, augmentation on, max_instances K = 64, min_component_area 64, B = 8.

1. Bytes per batch: the old dense layout (image float32 [B, 3, S, S] + masks bool [B, K, S, S] + valid_pixels bool
   [B, S, S] + metadata: B*S^2*(12 + K + 1) bytes) against the compact one of ``featlib.data.masks`` (uint8 image,
   bit-packed mask rows), on a batch decoded from the raw shard; the ratio is the saving.
2. Samples/s of one worker, same samples, in this process: (a) naive reference (full-size decode of the photo and
   of every mask, resized one by one, components), (b) featlib on the raw shard, (c) featlib on the prepared one.
3. /dev/shm per rank, which holds up to workers x prefetch_factor collated batches: computed for ``--workers`` x
   ``--prefetch``, and measured for both layouts: a DataLoader with ``--measure-workers`` workers re-serving the
   decoded samples (decoding not timed), the consumer slow so every prefetch slot fills, the tmpfs's used bytes
   sampled every 2 ms (other processes on the machine can add noise).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from featlib.data import sa1b_dataset
from featlib.data.masks import META_KEYS, batch_nbytes, dense_masks, dense_valid_pixels
from featlib.data.prepare import prepare_shard, sa1b_like_pair
from featlib.data.sa1b import collate

MIB = 2**20


def naive_load(jpg: bytes, js: bytes, size: int) -> dict:
    """Reference: decode everything at full size, resize each mask on its own, split components."""
    img = Image.open(io.BytesIO(jpg)).convert("RGB")
    w, h = img.size
    r = size / max(h, w)
    tw, th = round(w * r), round(h * r)
    image = np.asarray(img.resize((tw, th), Image.BILINEAR))
    masks = []
    for a in json.loads(js)["annotations"]:
        seg = a["segmentation"]
        m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
        m = np.asarray(Image.fromarray(m * 255).resize((tw, th), Image.BILINEAR)) >= 128
        lab, n = ndimage.label(m)
        masks += [lab == c for c in range(1, n + 1)]
    return {"image": image, "masks": np.stack(masks)}


def densify(batch: dict) -> dict:
    """A compact batch in the old dense layout: image float32 in [0, 1], masks and valid_pixels bool."""
    out = {"image": batch["image"].float() / 255, "masks": dense_masks(batch),
           "valid_pixels": dense_valid_pixels(batch), "mask_valid": batch["mask_valid"]}
    return {**out, **{k: batch[k] for k in META_KEYS}}


class _Serve(torch.utils.data.Dataset):
    """Already decoded samples, served again (the shared-memory measurement times transport, not decoding)."""

    def __init__(self, samples, n):
        self.samples, self.n = samples, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.samples[i % len(self.samples)]


def _collate_dense(samples):
    return densify(collate(samples))


def shm_peak(samples, batch_size: int, workers: int, prefetch: int, dense: bool) -> float:
    """Peak rise of /dev/shm's used bytes while a DataLoader's prefetch slots are full (bytes)."""
    loader = torch.utils.data.DataLoader(_Serve(samples, batch_size * (workers * prefetch + 4)), batch_size=batch_size,
                                         num_workers=workers, prefetch_factor=prefetch,
                                         collate_fn=_collate_dense if dense else collate)
    base, peak, stop = shutil.disk_usage("/dev/shm").used, [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], shutil.disk_usage("/dev/shm").used)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    it = iter(loader)
    time.sleep(0.5)
    for _ in range(workers * prefetch + 2):
        next(it)  # the batch is dropped at once; its worker refills the slot while we sleep
        time.sleep(0.4)
    stop.set()
    thread.join()
    del it
    return peak[0] - base


def _rate(ds) -> tuple[float, list[dict]]:
    t = time.perf_counter()
    samples = [s for s in ds if "skipped" not in s]
    return len(samples) / (time.perf_counter() - t), samples


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="benchmark.py data")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samples", type=int, default=8, help="SA-1B-like samples to generate (~5 s each)")
    p.add_argument("--workers", type=int, default=12, help="DataLoader workers per rank, for the computed shm")
    p.add_argument("--prefetch", type=int, default=2, help="prefetch_factor, for the computed and measured shm")
    p.add_argument("--measure-workers", type=int, default=2, help="workers of the measured DataLoader (0: skip)")
    a = p.parse_args(argv)
    if a.samples < 1 or a.workers < 1 or a.prefetch < 1 or a.measure_workers < 0:
        raise ValueError("--samples, --workers and --prefetch must be >= 1 and --measure-workers >= 0")
    if a.quick:
        n, hw, up, size, b, k, area, mw = 2, (150, 225), 1, 128, 2, 16, 16, min(a.measure_workers, 1)
    else:
        n, hw, up, size, b, k, area, mw = a.samples, (1500, 2250), 2, 1024, 8, 64, 64, a.measure_workers
    opts = dict(size=size, max_instances=k, min_component_area=area, augment=True, shuffle_buffer=1)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        pairs = [sa1b_like_pair(i, 0, hw, upscale=up) for i in range(n)]
        raw = Path(tmp) / "raw" / "sa_000000.tar"
        raw.parent.mkdir()
        with tarfile.open(raw, "w") as tar:
            for i, pair in enumerate(pairs):
                for ext, data in zip(("jpg", "json"), pair):
                    info = tarfile.TarInfo(f"sa_{i}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        (Path(tmp) / "prep").mkdir()
        prepare_shard(raw, Path(tmp) / "prep" / "sa_000000.tar", size)
        n_masks = [len(json.loads(js)["annotations"]) for _, js in pairs]
        print(f"{n} SA-1B-like samples {hw[1]}x{hw[0]}, {min(n_masks)}-{max(n_masks)} masks each (generated and "
              f"prepared in {time.perf_counter() - t:.0f} s); S={size}, K<={k}, batch {b}, augmentation on")

        t = time.perf_counter()
        for jpg, js in pairs:
            naive_load(jpg, js, size)
        ra = n / (time.perf_counter() - t)
        rb, samples = _rate(sa1b_dataset(raw, **opts))
        rc, _ = _rate(sa1b_dataset(Path(tmp) / "prep", **opts))
        batch = collate([samples[i % len(samples)] for i in range(b)])
        dense = densify(batch)
        kb = batch["mask_valid"].shape[1]
        compact_b, dense_b = batch_nbytes(batch), batch_nbytes(dense)
        parts = {"image": (dense["image"], batch["image"]), "masks": (dense["masks"], batch["mask_rows"]),
                 "valid_pixels": (dense["valid_pixels"], batch["valid_pixels"])}
        print(f"\n1. bytes per batch (B={b}, K={kb}, S={size}; {len(batch['mask_rows'])} mask rows = "
              f"{len(batch['mask_rows']) / max(1, int(batch['mask_valid'].sum())):.0f} per mask)")
        print(f"{'':14s} {'dense (old)':>12s} {'compact':>12s} {'ratio':>8s}")
        for name, (d, c) in parts.items():
            cb = c.numel() * c.element_size() + (batch["mask_row_index"].numel() * 8 if name == "masks" else 0)
            print(f"{name:14s} {d.numel() * d.element_size() / MIB:9.1f} MiB {cb / MIB:8.2f} MiB "
                  f"{d.numel() * d.element_size() / cb:7.1f}x")
        print(f"{'whole batch':14s} {dense_b / MIB:9.1f} MiB {compact_b / MIB:8.2f} MiB {dense_b / compact_b:7.1f}x")

        print(f"\n2. samples/s of one worker ({len(samples)} decoded, mean K = "
              f"{np.mean([len(s['mask_id']) for s in samples]):.0f})")
        print(f"{'(a) naive':>10s} {'(b) raw shard':>14s} {'(c) prepared':>13s} {'b/a':>6s} {'c/a':>6s}")
        print(f"{ra:10.2f} {rb:14.2f} {rc:13.2f} {rb / ra:5.1f}x {rc / ra:5.1f}x   (s/sample raw: {1 / rb:.3f})")

        slots = a.workers * a.prefetch
        print(f"\n3. /dev/shm per rank: {a.workers} workers x prefetch {a.prefetch} = {slots} batches in flight")
        print(f"   computed: dense {slots * dense_b / 2**30:.2f} GiB, compact {slots * compact_b / MIB:.0f} MiB "
              f"({dense_b / compact_b:.1f}x less)")
        if mw:
            got = {d: shm_peak(samples, b, mw, a.prefetch, d) for d in (True, False)}
            for d, peak in got.items():
                per = dense_b if d else compact_b
                print(f"   measured, {mw} workers x prefetch {a.prefetch}, {'dense  ' if d else 'compact'}: peak "
                      f"{peak / MIB:8.1f} MiB = {peak / per:.1f} batches of {per / MIB:.1f} MiB")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
