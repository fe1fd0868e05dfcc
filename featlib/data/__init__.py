"""Data: SA-1B (folders, raw or prepared tar shards), synthetic SA-1B-format scenes, BSDS500, interactive-seg sets.

    from featlib.data import sa1b_dataset, collate
    ds = sa1b_dataset("path/to/sa1b_or_shards", size=512)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=4)

Submodules: ``sa1b`` (reader), ``synthetic`` (scene generator), ``bsds`` (BSDS500), ``iis`` (GrabCut/Berkeley/DAVIS),
``samples`` (the largest object per image of those sets, for HILL and click evaluation).
"""

from __future__ import annotations

import importlib

_EXPORTS = {"sa1b_dataset": "sa1b", "collate": "sa1b", "decode_sample": "sa1b", "BadSample": "sa1b",
            "SA1BFolder": "sa1b", "SA1BShards": "sa1b",
            "synthetic_samples": "samples", "bsds_samples": "samples", "iis_samples": "samples"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"featlib.data.{_EXPORTS[name]}"), name)
    if name in ("sa1b", "synthetic", "bsds", "iis", "samples"):
        return importlib.import_module(f"featlib.data.{name}")
    raise AttributeError(f"module 'featlib.data' has no attribute {name!r}")
