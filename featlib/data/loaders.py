"""What the training loop reads: the dataset a config names, its held-out validation images, and an endless,
resumable batch stream.

    ds = build_dataset(cfg)                         # synthetic scenes | BSDS500 | SA-1B folder or tar shards
    loader = InfiniteLoader(ds, cfg, rank=0, world_size=1)     # pin_memory: default on when CUDA is available
    batch = next(loader)                            # collate()'s compact batch (featlib.data.masks)
    dev = to_device(batch, device)                  # image float [B, 3, S, S], masks bool [B, K, S, S] ...
    state = loader.state_dict()                     # {"epoch", "batch_index"}: saved with every checkpoint
    val = validation_set(cfg)                       # [ValRecord]: image, gts = val[0] (uint8 [H, W, 3], [int [H, W]])

One DataLoader for the whole run: its workers start once and never respawn at an epoch boundary (with 12 workers
per GPU, a respawn re-imports torch and refills every prefetch queue each epoch). The epoch reaches the workers
inside the work itself: map-style data (synthetic scenes, SA-1B folders, BSDS) is read through an endless batch
sampler of (epoch, index) pairs — epoch e is DistributedSampler's seeded order for e, dropping the last partial
batch — and the dataset is switched to epoch e inside the worker that reads the item; tar streams are wrapped in
an iterable that runs pass after pass over the consumer's shards itself, one epoch each. Memory: each worker holds
up to ``prefetch_factor`` collated batches in /dev/shm, so a rank holds workers x prefetch_factor x the batch's
bytes (``featlib.data.masks.batch_nbytes``; ``scripts/benchmark.py data`` prints it).

Data position on resume: map-style data resumes at the exact batch (the sampler starts at the saved epoch and
skips the consumed batches' indices; nothing is decoded twice). Streamed tar shards cannot seek, so a resumed
stream starts a fresh, deterministically reseeded pass (epoch id = 1e6 + the resume step): no sample is replayed
twice in a row, and the order is reproducible.

No silent hang: a configuration in which some rank would get no data fails in the constructor, identically on
every rank and before any collective (ConfigError: fewer tar shards than ranks x workers, or fewer samples per rank
than a batch); an epoch (map-style) or a pass over a consumer's shards (streams) that yields no usable sample at all
raises RuntimeError naming the data source, instead of looping forever while the other ranks wait in all-reduce.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from featlib.config import ConfigError, TrainConfig
from featlib.data.bsds import BSDSTrain, bsds_ids, fold_split, holdout_split, load_record
from featlib.data.sa1b import collate, sa1b_dataset
from featlib.data.synthetic import SA1B_LIKE, ensure_scenes, load_scene
from featlib.utils import shared_dir


def synthetic_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    """Write (once) and return the train / held-out val folders of synthetic scenes."""
    root = Path(cfg.data_root)
    train, val = root / "train", root / "val"
    kind = SA1B_LIKE if cfg.scene_kind == "sa1b" else {}  # scene_kind: featlib.config
    ensure_scenes(train, cfg.n_train, size=_scene_hw(cfg.scene_size), seed=cfg.seed, **kind)
    ensure_scenes(val, cfg.n_val, size=_scene_hw(cfg.scene_size), seed=cfg.seed + 10_000, **kind)
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
        if cfg.cross_fit is not None:
            train_ids, _ = fold_split(train_ids, *cfg.cross_fit)
        return BSDSTrain(cfg.data_root, "train", ids=train_ids, scale=cfg.crop_scale, annotators=cfg.annotators,
                         jitter=cfg.colour_jitter, **common)
    ds = sa1b_dataset(cfg.data, min_component_area=cfg.min_component_area, **common)
    if isinstance(ds, torch.utils.data.IterableDataset):
        ds.rank, ds.world_size, ds.shuffle_buffer = rank, world_size, cfg.shuffle_buffer
    return ds


class ValRecord:
    """One validation image. ``image, gts = record`` (and ``record[0]``, ``record[1]``) read it as the (image,
    ground truths) pair it always was; it also names where it comes from.

    image: uint8 [H, W, 3]; gts: int [H, W] per annotator, 0 = unannotated (BSDS segments are 1..n: every pixel
    annotated); id: the BSDS image id or the scene's file stem; source: "bsds500/val", "bsds500/train-holdout" or
    "synthetic/val" ("synthetic/train" with val_on_train): only "bsds500/val" is the reported metric's set; index:
    the position in the whole validation set (images sharded by index % world_size, see ``validation_set``).
    """

    __slots__ = ("image", "gts", "id", "source", "index")

    def __init__(self, image: np.ndarray, gts: list[np.ndarray], id: str, source: str, index: int):
        self.image, self.gts, self.id, self.source, self.index = image, gts, id, source, index

    def __iter__(self):
        return iter((self.image, self.gts))

    def __getitem__(self, i):
        return (self.image, self.gts)[i]

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return (f"ValRecord({self.source} {self.id!r}, index {self.index}, image {self.image.shape}, "
                f"{len(self.gts)} ground truths)")


def bsds_val_root(cfg: TrainConfig) -> tuple[Path | None, str]:
    """(the BSDS500-layout folder an SA-1B run validates on, or None when there is none; where it looked).

    ``cfg.val_root`` if set, else ``../shared/datasets/bsds500`` (``featlib.utils.shared_dir``); a folder counts
    when it holds images/val and groundTruth/val.
    """
    if cfg.val_root is not None:
        root, where = Path(cfg.val_root), f"val_root={cfg.val_root}"
    else:
        shared = shared_dir()
        root = shared / "datasets" / "bsds500" if shared is not None else None
        where = f"{root} (val_root=null: the shared folder)" if root else "../shared/datasets/bsds500 (no ../shared)"
    ok = root is not None and all((root / d / "val").is_dir() for d in ("images", "groundTruth"))
    return (root if ok else None), where


def validation_set(cfg: TrainConfig, rank: int = 0, world_size: int = 1) -> list[ValRecord]:
    """Held-out images with ground truth: [ValRecord] (``image, gts = record``: image uint8 [H, W, 3], [int [H, W]
    per annotator, 0 = unannotated]), the first ``cfg.n_val`` in id order of

    - data=bsds500: BSDS500 val (holdout > 0: the held-out *train* images, never val: tuning);
    - data=synthetic: the held-out synthetic scenes (the training scenes with val_on_train);
    - SA-1B (data is a path): BSDS500 val from ``cfg.val_root`` (``bsds_val_root``), the reported metric's photos;
      SA-1B has no ground-truth partitions. Without a BSDS folder: the held-out synthetic scenes, with a loud
      warning (the val curve is then not the reported metric).

    ``rank``, ``world_size``: only this process's share, the records whose ``index % world_size == rank`` (each
    rank reads only its own images); the default is every record.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    root, split, source, ids = None, "val", "bsds500/val", None
    if cfg.data == "bsds500" and cfg.holdout > 0:  # tuning: score held-out *train* images, never val
        root, split, source = cfg.data_root, "train", "bsds500/train-holdout"
        ids = holdout_split(bsds_ids(root, "train"), cfg.holdout)[1][: cfg.n_val]
    elif cfg.data == "bsds500":
        root = cfg.data_root
    elif cfg.data != "synthetic":
        root, where = bsds_val_root(cfg)
        if root is None:
            warnings.warn(f"VALIDATION IS NOT THE REPORTED METRIC: no BSDS500 folder (images/val + groundTruth/val) "
                          f"at {where}; this SA-1B run validates on {cfg.n_val} held-out synthetic scenes under "
                          f"{cfg.data_root} instead. Set val_root to a BSDS500 folder to validate on the benchmark's "
                          "photos.", stacklevel=2)
    if root is not None:
        ids = ids if ids is not None else bsds_ids(root, "val")[: cfg.n_val]
        return [ValRecord(r.image, [s + 1 for s in r.segmentations], r.id, source, i)
                for i, r in ((i, load_record(root, split, image_id)) for i, image_id in enumerate(ids)
                             if i % world_size == rank)]
    on_train = cfg.val_on_train and cfg.data == "synthetic"
    folder = synthetic_dirs(cfg)[0 if on_train else 1]
    scenes = sorted(folder.glob("sa_*.jpg"), key=lambda p: int(p.stem.split("_")[1]))[: cfg.n_val]
    out = []
    for i, p in enumerate(scenes):
        if i % world_size == rank:
            img, inst = load_scene(p)
            out.append(ValRecord(img, [inst], p.stem, "synthetic/train" if on_train else "synthetic/val", i))
    return out


def describe(dataset) -> str:
    """The data source named in error messages: its shards, folder or root."""
    shards = getattr(dataset, "shards", None)
    if shards:
        return f"SA-1B tar shards {shards[0]}" + (f" (+{len(shards) - 1} more)" if len(shards) > 1 else "")
    root = getattr(dataset, "root", None)
    return f"{type(dataset).__name__} at {root}" if root is not None else type(dataset).__name__


class EpochItems(torch.utils.data.Dataset):
    """A map-style dataset read by (epoch, index) keys: it is switched to that epoch (``set_epoch``: augmentation
    randomness) in whichever process reads the item, so persistent workers follow the epochs."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        if hasattr(self.dataset, "set_epoch") and getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


class EpochBatches:
    """Endless batch sampler of (epoch, index) lists, from ``start`` = (epoch, batch index) on. Epoch e is
    DistributedSampler's order for e (shuffled with ``seed``, equal length on every rank) cut into ``per_epoch``
    full batches."""

    def __init__(self, dataset, batch_size: int, rank: int, world_size: int, seed: int,
                 start: tuple[int, int] = (0, 0)):
        self.sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                                           seed=seed, drop_last=True)
        self.batch_size, self.start = batch_size, start
        self.per_epoch = len(self.sampler) // batch_size

    def __iter__(self):
        if self.per_epoch == 0:
            raise RuntimeError("EpochBatches: an epoch holds no full batch")
        (epoch, skip), b = self.start, self.batch_size
        while True:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for j in range(skip, self.per_epoch):
                yield [(epoch, i) for i in order[j * b:(j + 1) * b]]
            epoch, skip = epoch + 1, 0


class EpochStream(torch.utils.data.IterableDataset):
    """A tar-shard stream run pass after pass by each consumer, one epoch per pass from ``start_epoch`` on; a pass
    that yields no usable sample raises RuntimeError naming ``source`` (it would repeat forever)."""

    def __init__(self, dataset, start_epoch: int, source: str):
        self.dataset, self.start_epoch, self.source = dataset, start_epoch, source

    def __iter__(self):
        epoch = self.start_epoch
        while True:
            self.dataset.set_epoch(epoch)
            usable = 0
            for sample in self.dataset:
                usable += "skipped" not in sample
                yield sample
            if not usable:
                raise RuntimeError(f"{self.source}: a whole pass over this consumer's shards (epoch {epoch}) gave "
                                   f"no usable sample (skipped in it: {dict(self.dataset.skipped)})")
            epoch += 1


class InfiniteLoader:
    """Batches forever from one DataLoader (workers persist across epochs); tracks (epoch, batch index) so a resume
    continues at the same place. ``pin_memory`` (default: CUDA available) puts batches in page-locked memory, so
    ``to_device(batch, device, non_blocking=True)`` copies overlap with compute. Raises ConfigError at construction
    when some rank would get no data (module docstring)."""

    def __init__(self, dataset, cfg: TrainConfig, rank: int, world_size: int, pin_memory: bool | None = None):
        self.dataset, self.cfg, self.rank, self.world = dataset, cfg, rank, world_size
        self.iterable = isinstance(dataset, torch.utils.data.IterableDataset)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.source = describe(dataset)
        self.epoch, self.batch_index, self.per_epoch = 0, 0, None
        self.skipped: dict = {}
        self._it, self._empty = None, 0
        if self.iterable:
            if hasattr(dataset, "check_split"):
                dataset.check_split(world_size, cfg.num_workers)
        else:
            self.per_epoch = EpochBatches(dataset, cfg.batch_size, rank, world_size, cfg.seed).per_epoch
            if self.per_epoch == 0:
                raise ConfigError(f"{self.source}: {len(dataset)} samples over {world_size} rank(s) are fewer than "
                                  f"batch_size={cfg.batch_size} per rank: an epoch would yield no batch")

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch_index": self.batch_index}

    def load_state_dict(self, state: dict, step: int = 0) -> None:
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])
        if self.iterable:  # streams cannot seek: reseed deterministically (see module docstring)
            self.epoch, self.batch_index = 1_000_000 + step, 0
        self._it = None

    def _start(self):
        cfg = self.cfg
        if self.iterable:
            data, kw = EpochStream(self.dataset, self.epoch, self.source), {"batch_size": cfg.batch_size}
        else:
            sampler = EpochBatches(self.dataset, cfg.batch_size, self.rank, self.world, cfg.seed,
                                   (self.epoch, self.batch_index))
            data, kw = EpochItems(self.dataset), {"batch_sampler": sampler}
        if cfg.num_workers > 0:
            kw.update(persistent_workers=True, prefetch_factor=cfg.prefetch_factor)
        loader = torch.utils.data.DataLoader(data, num_workers=cfg.num_workers, collate_fn=collate,
                                             pin_memory=self.pin_memory, **kw)
        self._it = iter(loader)

    def __next__(self) -> dict:
        if self._it is None:
            self._start()
        while True:
            try:
                batch = next(self._it)
            except StopIteration:  # the sampler and the stream are endless: only a bug ends them
                raise RuntimeError(f"{self.source}: the endless loader ended") from None
            self.batch_index += 1
            if self.per_epoch is not None and self.batch_index == self.per_epoch:
                self.epoch, self.batch_index = self.epoch + 1, 0
            for k, v in batch.get("skipped", {}).items():
                self.skipped[k] = self.skipped.get(k, 0) + v
            if batch.get("image") is not None:
                self._empty = 0
                return batch
            self._empty += 1
            if self.per_epoch is not None and self._empty >= self.per_epoch:
                raise RuntimeError(f"{self.source}: a whole epoch ({self.per_epoch} batches) gave no usable sample "
                                   f"(skipped so far: {self.skipped})")
