"""Data: SA-1B (folders, raw or prepared tar shards), synthetic SA-1B-format scenes, BSDS500, interactive-seg sets.

    from featlib.data import sa1b_dataset, collate, to_device, dense_masks
    ds = sa1b_dataset("path/to/sa1b_or_shards", size=512)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=4, pin_memory=True)
    batch = to_device(next(iter(loader)), "cuda")    # image float [B, 3, S, S], masks bool [B, K, S, S] ...

Submodules: ``masks`` (compact mask transport: bit-packed rows, ``to_device``), ``rle`` (COCO RLE parsing and
windowed decoding), ``sa1b`` (reader), ``synthetic`` (scene generator), ``bsds`` (BSDS500), ``iis``
(GrabCut/Berkeley/DAVIS), ``samples`` (the largest object per image of those sets, for HILL and click evaluation),
``prepare`` (training-size shards), ``loaders`` (what training reads).
"""

from __future__ import annotations

import importlib

_EXPORTS = {"sa1b_dataset": "sa1b", "collate": "sa1b", "decode_sample": "sa1b", "BadSample": "sa1b",
            "SA1BFolder": "sa1b", "SA1BShards": "sa1b",
            "to_device": "masks", "dense_masks": "masks", "batch_nbytes": "masks", "compact_masks": "masks",
            "synthetic_samples": "samples", "bsds_samples": "samples", "iis_samples": "samples"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"featlib.data.{_EXPORTS[name]}"), name)
    if name in ("masks", "rle", "sa1b", "synthetic", "bsds", "iis", "samples", "prepare", "loaders"):
        return importlib.import_module(f"featlib.data.{name}")
    raise AttributeError(f"module 'featlib.data' has no attribute {name!r}")
