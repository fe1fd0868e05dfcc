"""Training pieces shared by ``scripts/train_accelerate.py``, ``scripts/demo.py`` and notebook 04.

    cfg = load_config("configs/demo.yaml", ["max_steps=4", "output_dir=runs/try"])   # typed, validated
    result = fit(cfg)                 # the training loop (accelerate: DDP, bf16, accumulation, clipping ...)
    model = load_model_checkpoint("runs/try/model.pt")

Layout of ``output_dir``:
    config.yaml                    the resolved config of the run
    checkpoints/step_000100/       accelerator.save_state + trainer state (step, epoch, position); written to a
                                   temporary name and renamed, so a kill never leaves a half checkpoint named step_*
    model.pt                       final weights + model config (``load_model_checkpoint``), weights_only-safe
    metrics.jsonl                  every logged scalar (also in TensorBoard under ``tensorboard/``)
    figures/step_000100.png        image | features per stride | clusters | ground truth

Data position on resume: map-style data (synthetic scenes, SA-1B folders, BSDS) resumes at the exact batch
(seeded DistributedSampler order, the consumed batches are skipped). Streamed tar shards cannot seek, so a resumed
stream starts a fresh, deterministically reseeded pass (epoch id = the resume step): no sample is replayed twice
in a row, and the order is reproducible.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from featlib.model import FeatureNet, build_model

log = logging.getLogger("featlib.train")


# ------------------------------------------------------------------------------------------------- config


class ConfigError(ValueError):
    """A config problem found before training starts (unknown key, bad type, missing path ...)."""


@dataclass
class TrainConfig:
    # model
    backbone: str = "b0"
    strides: list = field(default_factory=lambda: [1, 2, 4, 8, 16])
    base_channels: int = 3
    pretrained: str | None = None          # official EfficientViT-SAM checkpoint (backbone only)
    freeze_backbone: bool = False
    backbone_lr_scale: float = 1.0         # e.g. 0.1 for a pretrained backbone
    # data
    data: str = "synthetic"                # "synthetic" | "bsds500" | path to SA-1B folder / tar shards (glob)
    data_root: str = "data/synthetic"      # where synthetic scenes live (written if absent) / BSDS500 root
    n_train: int = 64                      # synthetic scenes for training
    n_val: int = 8                         # held-out synthetic scenes (or BSDS val images) for validation
    val_on_train: bool = False             # score the training scenes instead (overfitting studies)
    scene_size: int = 160                  # synthetic scene longest side
    image_size: int = 128                  # training sample side S
    max_instances: int | None = 64
    min_component_area: int = 16
    num_workers: int = 0
    shuffle_buffer: int = 256              # tar streams
    # optimisation
    batch_size: int = 4                    # per process
    grad_accum: int = 1
    max_steps: int = 300                   # length of the LR schedule
    stop_at: int | None = None             # stop early at this step (e.g. a job's time slice); resume continues
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    mixed_precision: str = "no"            # "no" | "bf16" | "fp16"
    seed: int = 0
    # loss
    push_pairs: str = "all"
    margin_v: float = 0.05
    margin_d: float = 0.2
    min_cells: int = 2
    loss_weights: dict | None = None       # loss balance per stride {s: w}; None = w ∝ s
    # logging, validation, checkpoints
    output_dir: str = "runs/demo"
    log_every: int = 10
    val_every: int = 100                   # <= 0 disables
    image_every: int = 100                 # <= 0 disables
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    tracker: str = "tensorboard"           # "tensorboard" | "none"
    collapse_spread: float = 0.01          # mean feature spread below this ...
    collapse_patience: int = 3             # ... for this many log intervals -> COLLAPSE warning
    progress: bool = True


def _type_ok(value, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (list, dict, str, bool):
        return isinstance(value, annotation)
    return True


def _annotations() -> dict:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def load_config(path: str | os.PathLike | None = None, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """YAML file + ``key=value`` overrides (values parsed as YAML) -> validated TrainConfig. Raises ConfigError."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping of config keys")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        raw[k.strip()] = yaml.safe_load(v) if v.strip() else None
    hints = _annotations()
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(hints)}")
    for k, v in raw.items():
        if isinstance(v, str) and _type_ok(1.5, hints[k]) and not _type_ok("x", hints[k]):
            try:  # PyYAML reads "1e-3" as a string (YAML 1.1); accept it for float keys
                raw[k] = v = float(v)
            except ValueError:
                pass
        if not _type_ok(v, hints[k]):
            raise ConfigError(f"config key {k!r} must be {hints[k]}, got {v!r} ({type(v).__name__})")
    cfg = TrainConfig(**raw)
    validate_config(cfg)
    return cfg


def validate_config(cfg: TrainConfig) -> None:
    if not set(cfg.strides) <= {1, 2, 4, 8, 16} or not cfg.strides:
        raise ConfigError(f"strides must be a non-empty subset of [1, 2, 4, 8, 16], got {cfg.strides}")
    if cfg.mixed_precision not in ("no", "bf16", "fp16"):
        raise ConfigError(f"mixed_precision must be no|bf16|fp16, got {cfg.mixed_precision!r}")
    if cfg.push_pairs not in ("all", "disjoint", "adjacent"):
        raise ConfigError(f"push_pairs must be all|disjoint|adjacent, got {cfg.push_pairs!r}")
    if cfg.image_size < 32 or cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.grad_accum < 1:
        raise ConfigError("image_size >= 32, batch_size >= 1, grad_accum >= 1 and max_steps >= 1 are required")
    if cfg.data == "bsds500":
        if not (Path(cfg.data_root) / "images" / "train").is_dir():
            raise ConfigError(f"data=bsds500 but {cfg.data_root}/images/train does not exist")
    elif cfg.data != "synthetic":
        import glob

        if not (Path(cfg.data).exists() or glob.glob(cfg.data)):
            raise ConfigError(f"data path not found: {cfg.data}")
    if cfg.pretrained is not None and not Path(cfg.pretrained).is_file():
        raise ConfigError(f"pretrained checkpoint not found: {cfg.pretrained}")


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


# ------------------------------------------------------------------------------------------------- data


class BSDSTrain(torch.utils.data.Dataset):
    """BSDS500 training images as SA-1B-like samples: each annotator's segments are instances."""

    def __init__(self, root, split="train", size=256, augment=True, seed=0, max_instances=None, limit=None):
        from featlib.data.bsds import bsds_ids

        self.root, self.split, self.ids = root, split, bsds_ids(root, split)[:limit]
        self.size, self.augment, self.seed, self.max_instances, self.epoch = size, augment, seed, max_instances, 0
        self.skipped: dict = {}

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        import io

        from PIL import Image

        from featlib.data.bsds import load_record
        from featlib.data.sa1b import decode_sample
        from featlib.data.synthetic import encode_rle

        rec = load_record(self.root, self.split, self.ids[i])
        rng = np.random.default_rng([self.seed, self.epoch, i])
        seg = rec.segmentations[int(rng.integers(len(rec.segmentations)))]
        anns = [{"segmentation": encode_rle(seg == k), "id": int(k)} for k in range(int(seg.max()) + 1)]
        buf = io.BytesIO()
        Image.fromarray(rec.image).save(buf, format="JPEG", quality=95)
        return decode_sample(buf.getvalue(), {"annotations": anns}, rec.id, size=self.size, augment=self.augment,
                             rng=rng, max_instances=self.max_instances)


def synthetic_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    """Write (once) and return the train / held-out val folders of synthetic scenes."""
    from featlib.data.synthetic import ensure_scenes

    root = Path(cfg.data_root)
    train, val = root / "train", root / "val"
    ensure_scenes(train, cfg.n_train, size=_scene_hw(cfg.scene_size), seed=cfg.seed)
    ensure_scenes(val, cfg.n_val, size=_scene_hw(cfg.scene_size), seed=cfg.seed + 10_000)
    return train, val


def _scene_hw(side: int) -> tuple[int, int]:
    return (side * 3 // 4, side)


def build_dataset(cfg: TrainConfig, rank: int = 0, world_size: int = 1):
    """The training dataset for ``cfg.data`` (map-style, or iterable for tar shards)."""
    from featlib.data import sa1b_dataset

    common = dict(size=cfg.image_size, max_instances=cfg.max_instances, augment=True, seed=cfg.seed)
    if cfg.data == "synthetic":
        train, _ = synthetic_dirs(cfg)
        return sa1b_dataset(train, min_component_area=cfg.min_component_area, **common)
    if cfg.data == "bsds500":
        return BSDSTrain(cfg.data_root, "train", **common)
    ds = sa1b_dataset(cfg.data, min_component_area=cfg.min_component_area, **common)
    if isinstance(ds, torch.utils.data.IterableDataset):
        ds.rank, ds.world_size, ds.shuffle_buffer = rank, world_size, cfg.shuffle_buffer
    return ds


def validation_set(cfg: TrainConfig) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Held-out images with ground truth: [(image uint8 [H, W, 3], [instance maps int [H, W] (0 = none)])]."""
    if cfg.data == "bsds500":
        from featlib.data.bsds import load_bsds

        return [(r.image, [s + 1 for s in r.segmentations]) for r in load_bsds(cfg.data_root, "val", cfg.n_val)]
    from featlib.data.synthetic import load_scene

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
        from featlib.data import collate

        self.dataset, self.cfg, self.rank, self.world = dataset, cfg, rank, world_size
        self.iterable = isinstance(dataset, torch.utils.data.IterableDataset)
        self.epoch, self.batch_index, self.collate = 0, 0, collate
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
                                             num_workers=cfg.num_workers, collate_fn=self.collate, drop_last=True,
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


# ------------------------------------------------------------------------------------------------- model & optim


def build_training(cfg: TrainConfig):
    """(model, loss, optimizer, scheduler) for ``cfg``."""
    from featlib.loss import MultiStrideLoss

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.backbone, strides=tuple(cfg.strides), base_channels=cfg.base_channels,
                        pretrained=cfg.pretrained)
    loss = MultiStrideLoss(strides=tuple(cfg.strides), base_channels=cfg.base_channels,
                           loss_weights={int(k): float(v) for k, v in cfg.loss_weights.items()}
                           if cfg.loss_weights else None,
                           margin_v=cfg.margin_v, margin_d=cfg.margin_d, push_pairs=cfg.push_pairs,
                           min_cells=cfg.min_cells)
    if cfg.freeze_backbone:
        model.backbone.requires_grad_(False)
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": head, "lr": cfg.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
    return model, loss, opt, sched


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


# ------------------------------------------------------------------------------------------------- checkpoints


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (``step_*``; temporary ``.tmp-*`` ones are ignored), oldest first."""
    d = checkpoint_dir(output_dir)
    return sorted((p for p in d.glob("step_*") if p.is_dir() and (p / "trainer_state.json").is_file()),
                  key=lambda p: int(p.name.split("_")[1])) if d.is_dir() else []


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    if resume is None:
        return None
    if resume == "latest":
        ckpts = list_checkpoints(output_dir)
        if not ckpts:
            raise ConfigError(f"--resume latest: no checkpoint under {checkpoint_dir(output_dir)}")
        return ckpts[-1]
    p = Path(resume)
    if not (p / "trainer_state.json").is_file():
        raise ConfigError(f"--resume {resume}: not a featlib checkpoint directory")
    return p


def save_checkpoint(accelerator, output_dir: str | Path, step: int, trainer_state: dict, keep: int) -> Path:
    """accelerator.save_state into a temporary directory, then an atomic rename to ``step_{step:06d}``."""
    d = checkpoint_dir(output_dir)
    final, tmp = d / f"step_{step:06d}", d / f".tmp-step_{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({**trainer_state, "step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # atomic: the step_* name only ever points at a complete checkpoint
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def restore_checkpoint(accelerator, checkpoint: str | Path, loader=None) -> int:
    """Load a ``save_checkpoint`` directory into the prepared objects (model, optimizer, registered scheduler,
    RNG states) and ``loader``'s data position; returns its step. Bit-exact (tests/test_train.py checks it)."""
    checkpoint = Path(checkpoint)
    accelerator.load_state(str(checkpoint))
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    step = int(state["step"])
    if loader is not None:
        loader.load_state_dict(state["data"], step)
    return step


def save_model(model: FeatureNet, path: str | Path) -> None:
    """Final weights + the model's build arguments, written atomically; load with ``load_model_checkpoint``."""
    path = Path(path)
    payload = {"model": {"backbone": model.backbone_name, "strides": list(model.strides),
                         "base_channels": model.base_channels},
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_model_checkpoint(path: str | Path, map_location: str = "cpu") -> FeatureNet:
    """A FeatureNet from ``model.pt`` (or a run directory containing it); ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "model" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path}: not a featlib model checkpoint (expected keys 'model' and 'state_dict')")
    m = payload["model"]
    model = build_model(m["backbone"], strides=tuple(m["strides"]), base_channels=m["base_channels"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


# ------------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def image_features(model: FeatureNet, image: np.ndarray, device="cpu") -> dict[int, np.ndarray]:
    """uint8 [H, W, 3] -> {s: float32 [C, h, w]} numpy features of one image."""
    model.eval()
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float().div(255).to(device)
    return {s: f[0].float().cpu().numpy() for s, f in model(x).items()}


def _pieces(instances: np.ndarray) -> np.ndarray:
    """Instance map -> connected pieces (0 stays unannotated): partitions are connected, instances may not be."""
    from scipy import ndimage

    out = np.zeros(instances.shape, np.int32)
    for i in np.unique(instances):
        if i <= 0:
            continue
        lab, n = ndimage.label(instances == i)
        out[lab > 0] = lab[lab > 0] + out.max()
    return out


def score_partition(features, gts: list[np.ndarray], size=None, mesh_weights=None
                    ) -> tuple[float, float, np.ndarray]:
    """Cluster ``features`` with the hierarchy at the ground truth's number of pieces.

    Returns (mean best IoU, covering, labels).

    ``mesh_weights``: how the per-stride distance meshes combine (``featlib.distances.distance_mesh``; None = equal).
    """
    from featlib.cluster import build_hierarchy
    from featlib.metrics import covering, mean_best_iou

    h = build_hierarchy(features, size=size, mesh_weights=mesh_weights)
    gt = _pieces(gts[0])
    labels = h.partition(n_segments=max(1, len(np.unique(gt)) - (1 if (gt == 0).any() else 0) + 1))
    ious = [mean_best_iou(labels, _pieces(g)) for g in gts]
    cov = covering(labels, [np.where(g > 0, g, -1) for g in gts])
    return float(np.nanmean(ious)), cov, labels


def validate(model: FeatureNet, val_set, device="cpu", mesh_weights=None) -> dict[str, float]:
    """Mean best IoU / covering of the feature hierarchy vs raw RGB on held-out images (same clustering)."""
    res = {"iou": [], "cov": [], "rgb_iou": [], "rgb_cov": []}
    for image, gts in val_set:
        feats = image_features(model, image, device)
        iou, cov, _ = score_partition(feats, gts, size=image.shape[:2], mesh_weights=mesh_weights)
        rgb = image.astype(np.float32).transpose(2, 0, 1) / 255
        riou, rcov, _ = score_partition(rgb, gts)
        for k, v in zip(res, (iou, cov, riou, rcov)):
            res[k].append(v)
    return {"val/mean_best_iou": float(np.mean(res["iou"])), "val/covering": float(np.mean(res["cov"])),
            "val/rgb_mean_best_iou": float(np.mean(res["rgb_iou"])), "val/rgb_covering": float(np.mean(res["rgb_cov"]))}


def mesh_weight_candidates(strides) -> dict[str, dict[int, float] | None]:
    """A few ways to combine the per-stride meshes: equal, ∝ 1/s, the two finest, the finest alone."""
    strides = sorted(strides)
    return {"equal": None, "1/s": {s: 1.0 / s for s in strides},
            "finest two": {s: 1.0 for s in strides[:2]}, "finest": {strides[0]: 1.0}}


def select_mesh_weights(model: FeatureNet, scenes, device="cpu", candidates=None):
    """Pick the mesh combination with the best mean best IoU on ``scenes`` (use *training* scenes, then report
    held-out scores with the winner). Returns (name, weights, {name: mean best IoU}).

    Why: a stride whose cells are larger than most objects blurs every boundary it sees (at 128 px the /16 grid is
    8 x 8 cells), so the best combination depends on image and object size, not only on the model.
    """
    feats = [image_features(model, image, device) for image, _ in scenes]
    if candidates is None:
        candidates = mesh_weight_candidates(feats[0].keys())
    table = {name: float(np.mean([score_partition(f, gts, size=image.shape[:2], mesh_weights=w)[0]
                                  for f, (image, gts) in zip(feats, scenes)])) for name, w in candidates.items()}
    best = max(table, key=table.get)
    return best, candidates[best], table


def example_figure(model: FeatureNet, image: np.ndarray, gts: list[np.ndarray], device="cpu", title=None,
                   mesh_weights=None):
    from featlib.viz import show_features

    feats = image_features(model, image, device)
    _, _, labels = score_partition(feats, gts, size=image.shape[:2], mesh_weights=mesh_weights)
    return show_features(image, feats, clusters=labels, gt=gts[0] - 1, title=title)


# ------------------------------------------------------------------------------------------------- loop


class CollapseAlarm:
    """Warn loudly when the mean feature spread stays under ``threshold`` for ``patience`` checks in a row."""

    def __init__(self, threshold: float, patience: int):
        self.threshold, self.patience, self.count, self.fired = threshold, patience, 0, False

    def update(self, spread: float) -> bool:
        self.count = self.count + 1 if spread < self.threshold else 0
        if self.count >= self.patience:
            self.fired = True
            return True
        return False


def check_world_size(accelerator) -> None:
    """Fail loudly on a mis-launch: the process count accelerate sees must equal the launcher's world size."""
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != expected:
        raise RuntimeError(f"launched with WORLD_SIZE={expected} but accelerate runs {accelerator.num_processes} "
                           f"process(es); for N CPU processes use `accelerate launch --multi_gpu --num_processes N "
                           f"... --cpu`")


def fit(cfg: TrainConfig, accelerator=None, resume: str | None = None) -> dict:
    """Train ``cfg``; returns {"step", "final_loss", "val": {...}, "seconds", "collapse"}. See the module docstring."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    out_dir = Path(cfg.output_dir)
    if accelerator is None:
        accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision,
                                  gradient_accumulation_steps=cfg.grad_accum,
                                  log_with=None if cfg.tracker == "none" else cfg.tracker,
                                  project_dir=str(out_dir))
    check_world_size(accelerator)
    resume_dir = resolve_resume(resume, out_dir)
    set_seed(cfg.seed)
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        if cfg.data == "synthetic":
            synthetic_dirs(cfg)  # write the scenes once, before other ranks read them
    accelerator.wait_for_everyone()

    model, loss_fn, opt, sched = build_training(cfg)
    # The scheduler is not prepared: accelerate would step it once per process, while our schedule counts
    # optimizer steps whatever the world size. It is checkpointed alongside the prepared objects.
    model, opt = accelerator.prepare(model, opt)
    accelerator.register_for_checkpointing(sched)
    loader = InfiniteLoader(build_dataset(cfg, rank, world), cfg, rank, world)
    val_set = validation_set(cfg) if accelerator.is_main_process else []
    if cfg.tracker != "none":
        accelerator.init_trackers("featlib", config={k: str(v) for k, v in dataclasses.asdict(cfg).items()})
    step = 0
    if resume_dir is not None:
        step = restore_checkpoint(accelerator, resume_dir, loader)
        accelerator.print(f"resumed from {resume_dir} at step {step}")

    alarm = CollapseAlarm(cfg.collapse_spread, cfg.collapse_patience)
    metrics_file = out_dir / "metrics.jsonl"
    if accelerator.is_main_process:
        _truncate_metrics(metrics_file, step)
        if resume_dir is None and list_checkpoints(out_dir):
            accelerator.print(f"WARNING: {out_dir} holds checkpoints of an earlier run; this run starts at step 0 "
                              "(pass --resume latest to continue that run instead)")
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not (cfg.progress and accelerator.is_main_process))
    start, seen, data_wait, last = time.perf_counter(), 0, 0.0, {}
    unwrapped = accelerator.unwrap_model(model)
    last_step = min(cfg.max_steps, cfg.stop_at or cfg.max_steps)
    out = grad_norm = None
    while step < last_step:
        model.train()
        for _ in range(cfg.grad_accum):
            t0 = time.perf_counter()
            batch = next(loader)
            data_wait += time.perf_counter() - t0
            images = batch["image"].to(accelerator.device)
            masks = batch["masks"].to(accelerator.device)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    feats = model(images)
                out = loss_fn(feats, masks, batch["mask_valid"].to(accelerator.device),
                              batch["valid_pixels"].to(accelerator.device))
                accelerator.backward(out.total)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                if accelerator.sync_gradients:
                    sched.step()
                opt.zero_grad(set_to_none=True)
            seen += images.shape[0] * world
        step += 1
        bar.update(1)
        elapsed = time.perf_counter() - start
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            spread = float(np.mean([out.logs[f"s{s}/spread"] for s in cfg.strides]))
            last = {**out.logs, "lr": sched.get_last_lr()[0], "grad_norm": float(grad_norm) if grad_norm is not None
                    else float("nan"), "img_per_s": seen / elapsed, "data_wait_s": data_wait,
                    "spread/mean": spread, "skipped": float(sum(loader.skipped.values()))}
            if alarm.update(spread):
                last["alarm/collapse"] = 1.0
                msg = (f"COLLAPSE ALARM at step {step}: mean feature spread {spread:.4f} < {cfg.collapse_spread} "
                       f"for {alarm.count} checks — features are (nearly) constant")
                log.warning(msg)
                accelerator.print("!" * 80 + "\n" + msg + "\n" + "!" * 80)
            bar.set_postfix(loss=f"{out.logs['loss/total']:.4f}", spread=f"{spread:.3f}",
                            img_s=f"{seen / elapsed:.1f}")
            _log(accelerator, cfg, metrics_file, last, step)
        if val_set and cfg.val_every > 0 and (step % cfg.val_every == 0 or step == cfg.max_steps):
            v = validate(unwrapped, val_set, accelerator.device)
            last.update(v)
            _log(accelerator, cfg, metrics_file, v, step)
            bar.write(f"step {step}: val mean best IoU {v['val/mean_best_iou']:.3f} "
                      f"(raw RGB {v['val/rgb_mean_best_iou']:.3f}), covering {v['val/covering']:.3f}")
        if val_set and cfg.image_every > 0 and (step % cfg.image_every == 0 or step == cfg.max_steps):
            _log_figure(accelerator, cfg, unwrapped, val_set[0], step, out_dir)
        if step % cfg.checkpoint_every == 0 or step == last_step:
            save_checkpoint(accelerator, out_dir, step, {"data": loader.state_dict()}, cfg.keep_checkpoints)
    bar.close()
    # DDP keeps replicas identical; check it rather than assume it (a fingerprint per rank, gathered)
    fingerprint = torch.stack([p.detach().double().sum() for p in unwrapped.parameters()]).sum().reshape(1)
    fingerprints = accelerator.gather(fingerprint.to(accelerator.device)).cpu().tolist()
    result = {"step": step, "final_loss": float(out.total.detach()) if out is not None else float("nan"), "val": {k: v for k, v in last.items()
              if k.startswith("val/")}, "seconds": time.perf_counter() - start, "collapse": alarm.fired,
              "skipped": dict(loader.skipped), "world_size": world, "replica_fingerprints": fingerprints}
    if accelerator.is_main_process:
        save_model(unwrapped, out_dir / "model.pt")
        (out_dir / "run_summary.json").write_text(json.dumps(result, indent=2))
        if len(set(fingerprints)) > 1:
            log.warning("replicas diverged: parameter fingerprints %s", fingerprints)
    accelerator.wait_for_everyone()
    if cfg.tracker != "none":
        accelerator.end_training()
    return {**result, "accelerator": accelerator}


def _truncate_metrics(metrics_file: Path, step: int) -> None:
    """Keep only rows logged up to ``step`` (the run's starting step): a fresh run into an old output_dir, or a
    resume from a checkpoint older than the last logged row, must not leave duplicate or foreign steps."""
    if not metrics_file.exists():
        return
    rows = [line for line in metrics_file.read_text().splitlines() if line.strip()]
    keep = [line for line in rows if json.loads(line).get("step", 0) <= step] if step else []
    if len(keep) != len(rows):
        metrics_file.write_text("".join(line + "\n" for line in keep))


def _log(accelerator, cfg, metrics_file: Path, values: dict, step: int) -> None:
    if not accelerator.is_main_process:
        return
    if cfg.tracker != "none":
        accelerator.log(values, step=step)
    with open(metrics_file, "a") as f:
        f.write(json.dumps({"step": step, **values}) + "\n")


def _log_figure(accelerator, cfg, model, example, step: int, out_dir: Path) -> None:
    if not accelerator.is_main_process:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = example_figure(model, example[0], example[1], accelerator.device, title=f"step {step}")
    (out_dir / "figures").mkdir(exist_ok=True)
    fig.savefig(out_dir / "figures" / f"step_{step:06d}.png", dpi=90)
    if cfg.tracker == "tensorboard":
        accelerator.get_tracker("tensorboard").writer.add_figure("examples", fig, global_step=step)
    plt.close(fig)


def read_metrics(output_dir: str | Path) -> list[dict]:
    """The run's metrics.jsonl as a list of dicts (for notebooks)."""
    p = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []
