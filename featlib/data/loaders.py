"""What the training loop reads: the dataset a config names, its held-out validation images, and an endless,
resumable batch stream.

    ds = build_dataset(cfg)                         # synthetic scenes | BSDS500 | SA-1B folder or tar shards
    loader = InfiniteLoader(ds, cfg, rank=0, world_size=1)
    batch = next(loader)                            # collate() dict: image [B, 3, S, S], masks bool [B, K, S, S] ...
    state = loader.state_dict()                     # {"epoch", "batch_index"}: saved with every checkpoint
    val = validation_set(cfg)                       # [(image uint8 [H, W, 3], [instance maps int [H, W]])]

Data position on resume: map-style data (synthetic scenes, SA-1B folders, BSDS) resumes at the exact batch
(seeded DistributedSampler order, the consumed indices are skipped, nothing is decoded twice). Streamed tar shards
cannot seek, so a resumed stream starts a fresh, deterministically reseeded pass (epoch id = 1e6 + the resume
step): no sample is replayed twice in a row, and the order is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from featlib.config import TrainConfig
from featlib.data.bsds import BSDSTrain, bsds_ids, holdout_split, load_bsds, load_record
from featlib.data.sa1b import collate, sa1b_dataset
from featlib.data.synthetic import ensure_scenes, load_scene


def synthetic_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    """Write (once) and return the train / held-out val folders of synthetic scenes."""
    root = Path(cfg.data_root)
    train, val = root / "train", root / "val"
    ensure_scenes(train, cfg.n_train, size=_scene_hw(cfg.scene_size), seed=cfg.seed)
    ensure_scenes(val, cfg.n_val, size=_scene_hw(cfg.scene_size), seed=cfg.seed + 10_000)
    return train, val


def _scene_hw(side: int) -> tuple[int, int]:
    return (side * 3 // 4, side)


def build_dataset(cfg: TrainConfig, rank: int = 0, world_size: int = 1):
    """The training dataset for ``cfg.data`` (map-style, or iterable for tar shards)."""
    common = dict(size=cfg.image_size, max_instances=cfg.max_instances, augment=True, seed=cfg.seed)
    if cfg.data == "synthetic":
        train, _ = synthetic_dirs(cfg)
        return sa1b_dataset(train, min_component_area=cfg.min_component_area, **common)
    if cfg.data == "bsds500":
        train_ids, _ = holdout_split(bsds_ids(cfg.data_root, "train"), cfg.holdout)
        return BSDSTrain(cfg.data_root, "train", ids=train_ids, scale=cfg.crop_scale, annotators=cfg.annotators,
                         jitter=cfg.colour_jitter, **common)
    ds = sa1b_dataset(cfg.data, min_component_area=cfg.min_component_area, **common)
    if isinstance(ds, torch.utils.data.IterableDataset):
        ds.rank, ds.world_size, ds.shuffle_buffer = rank, world_size, cfg.shuffle_buffer
    return ds


def validation_set(cfg: TrainConfig) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Held-out images with ground truth: [(image uint8 [H, W, 3], [instance maps int [H, W] (0 = none)])]."""
    if cfg.data == "bsds500" and cfg.holdout > 0:  # tuning: score held-out *train* images, never val
        held = holdout_split(bsds_ids(cfg.data_root, "train"), cfg.holdout)[1][: cfg.n_val]
        return [(r.image, [s + 1 for s in r.segmentations])
                for r in (load_record(cfg.data_root, "train", i) for i in held)]
    if cfg.data == "bsds500":
        return [(r.image, [s + 1 for s in r.segmentations]) for r in load_bsds(cfg.data_root, "val", cfg.n_val)]
    # SA-1B has no ground-truth partitions: SA-1B runs validate on the held-out synthetic scenes too
    root = synthetic_dirs(cfg)[0 if cfg.val_on_train and cfg.data == "synthetic" else 1]
    scenes = sorted(root.glob("sa_*.jpg"), key=lambda p: int(p.stem.split("_")[1]))[: cfg.n_val]
    out = []
    for p in scenes:
        img, inst = load_scene(p)
        out.append((img, [inst]))
    return out


class InfiniteLoader:
    """Batches forever over epochs; tracks (epoch, batch index) so a resume can continue at the same place."""

    def __init__(self, dataset, cfg: TrainConfig, rank: int, world_size: int):
        self.dataset, self.cfg, self.rank, self.world = dataset, cfg, rank, world_size
        self.iterable = isinstance(dataset, torch.utils.data.IterableDataset)
        self.epoch, self.batch_index = 0, 0
        self.skipped: dict = {}
        self._it = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch_index": self.batch_index}

    def load_state_dict(self, state: dict, step: int = 0) -> None:
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])
        if self.iterable:  # streams cannot seek: reseed deterministically (see module docstring)
            self.epoch, self.batch_index = 1_000_000 + step, 0
        self._it = None

    def _start(self):
        cfg = self.cfg
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        if self.iterable:
            sampler = None
        else:
            sampler = torch.utils.data.DistributedSampler(self.dataset, num_replicas=self.world, rank=self.rank,
                                                          shuffle=True, seed=cfg.seed, drop_last=True)
            sampler.set_epoch(self.epoch)
            if self.batch_index:  # resume inside an epoch: skip consumed indices, not decoded batches
                idx = list(sampler)[self.batch_index * cfg.batch_size:]
                sampler = idx
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=sampler,
                                             num_workers=cfg.num_workers, collate_fn=collate, drop_last=True,
                                             persistent_workers=False)
        self._it = iter(loader)

    def __next__(self) -> dict:
        while True:
            if self._it is None:
                self._start()
            try:
                batch = next(self._it)
            except StopIteration:
                self.epoch, self.batch_index, self._it = self.epoch + 1, 0, None
                continue
            self.batch_index += 1
            for k, v in batch.get("skipped", {}).items():
                self.skipped[k] = self.skipped.get(k, 0) + v
            if batch.get("image") is not None:
                return batch
