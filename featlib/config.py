"""Training configuration: a typed dataclass, YAML + ``key=value`` overrides, validation before anything starts.

    cfg = load_config("configs/demo.yaml", ["max_steps=4", "output_dir=runs/try"])   # TrainConfig, validated
    save_config(cfg, Path("runs/try/config.yaml"))

Every key has a type (checked: a typo or a wrong type is one ``ConfigError`` naming the key, before any
data is read) and a default with its reason in a comment. Values of overrides are parsed as YAML.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Keys whose meaning was split or renamed: an old config gets an error that names the new key.
RENAMED_KEYS = {"stride_weights": "loss_weights"}


class ConfigError(ValueError):
    """A config problem found before training starts (unknown key, bad type, missing path ...)."""


@dataclass
class TrainConfig:
    # model
    backbone: str = "b0"
    strides: list = field(default_factory=lambda: [1, 2, 4, 8, 16])
    base_channels: int = 3
    colour_skip: bool = False              # colours start from the image's Lab (FeatureNet docstring); BSDS recipe
    pretrained: str | None = None          # official EfficientViT-SAM checkpoint (backbone only)
    freeze_backbone: bool = False
    # BatchNorm (EfficientViT's backbone has 25 layers): freeze_bn keeps the loaded running statistics and affine
    # parameters (eval mode) -- None = on exactly when `pretrained` is set, so batch 8 per GPU never overwrites
    # EfficientViT-SAM's statistics; sync_bn (CUDA, from scratch, > 1 process) computes statistics over all GPUs'
    # batches instead of each GPU's 8 images. docs/TRAINING.md "BatchNorm".
    freeze_bn: bool | None = None
    sync_bn: bool = False
    backbone_lr_scale: float = 1.0         # e.g. 0.1 for a pretrained backbone
    # data
    data: str = "synthetic"                # "synthetic" | "bsds500" | path to SA-1B folder / tar shards (glob)
    data_root: str = "data/synthetic"      # where synthetic scenes live (written if absent) / BSDS500 root
    n_train: int = 64                      # synthetic scenes for training
    n_val: int = 8                         # held-out synthetic scenes (or BSDS val images) for validation
    val_on_train: bool = False             # score the training scenes instead (overfitting studies)
    # BSDS500-layout folder (images/val, groundTruth/val) that SA-1B runs validate on: SA-1B has no ground-truth
    # partitions, and BSDS500 val is what scripts/evaluate_partitions.py reports. None = ../shared/datasets/bsds500
    # (featlib.utils.shared_dir); when neither exists, the held-out synthetic scenes, with a warning
    val_root: str | None = None
    scene_size: int = 160                  # synthetic scene longest side
    scene_kind: str = "simple"             # "simple" (4-9 objects, 2 levels: the demo) | "sa1b" (SA1B_LIKE: ~100
    #                                        masks, object > part > sub-part, split objects; docs/LOSS.md)
    image_size: int = 128                  # training sample side S
    max_instances: int | None = 64
    min_component_area: int = 16
    num_workers: int = 0
    # BSDS500 training (data=bsds500): defaults = the old behaviour; the recipe is configs/bsds500.yaml
    holdout: int = 0                       # train images kept out of training and validated on instead of val (tuning)
    cross_fit: list | None = None          # [k, n]: also leave out fold k of n of the rest (data.bsds.fold_split), so
    #                                        features on those images are out of sample (training the boundary net)
    crop_scale: list | None = None         # [lo, hi] resize of the photo's own pixels; None = fit the photo into S
    annotators: str = "one"                # "one" drawn per sample | "all" as overlapping instances
    colour_jitter: float = 0.0             # brightness/contrast/saturation/gain, each up to ±this
    shuffle_buffer: int = 256              # tar streams
    prefetch_factor: int = 2               # batches in flight per DataLoader worker; /dev/shm per rank = workers x
    #   this x batch bytes = 12 x 2 x 30.5 MiB = 0.73 GiB (SA-1B-like, 1024^2, batch 8, K = 64: benchmark.py data)
    # optimisation
    batch_size: int = 4                    # per process
    grad_accum: int = 1
    max_steps: int = 300                   # length of the LR schedule
    stop_at: int | None = None             # stop early at this step (e.g. a job's time slice); resume continues
    # stop cleanly (checkpoint, model.pt, summary) at the first log step after this many minutes of this process's
    # loop, every rank agreeing; set it under the job's time limit by ~2 log intervals + a checkpoint's write, so a
    # scheduler's kill never costs the steps since the last checkpoint (up to checkpoint_every). None = no limit
    time_limit_minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    mixed_precision: str = "no"            # "no" | "bf16" | "fp16"
    # GPU options: off by default, not measured better on a GPU yet. Measure with `scripts/gpu_check.py --checks
    # options` (or `scripts/benchmark.py train --device cuda channels_last=true` against the same command without
    # it). Both give the default's outputs up to float32 rounding (tests/test_train.py).
    channels_last: bool = False            # NHWC model weights and input images (tensor-core friendly convs)
    compile: bool = False                  # torch.compile(model) after accelerator.prepare
    compile_backend: str = "inductor"      # torch.compile backend; the CPU tests use "aot_eager" (inductor: minutes)
    seed: int = 0
    # loss
    push_pairs: str = "all"                # all | disjoint | adjacent | nested (featlib.loss; SA-1B: nested)
    push_norm: str = "allowed"             # push = mean hinge over the pairs allowed ("all_pairs": the old / C(C-1))
    max_cells: float | None = None         # nested: a mask counts at stride s while area / s^2 <= this (not at the
    #                                        coarsest stride); None = no bound. 1024: docs/LOSS.md "nested masks"
    adjacent_strides: list = field(default_factory=list)  # nested: strides that push only neighbouring masks
    margin_v: float = 0.05
    margin_d: float = 0.2
    min_cells: int = 2
    loss_weights: dict | None = None       # loss balance per stride {s: w}; None = w ∝ s
    contrast_weight: float = 0.0           # featlib.contrast: cells a mask separates differ (issue 20); 0 = off
    contrast_min_cut: float = 0.0          # featlib.contrast: only borders drawn by this share (c) of the masks
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
    """YAML file + ``key=value`` overrides (values parsed as YAML) -> validated TrainConfig. Raises ConfigError.

    A str-typed key keeps the text as typed where YAML would read a bool or a number: ``mixed_precision=no`` (or
    ``mixed_precision: no`` in the file) is "no", not YAML 1.1's False; ``tracker: off`` is "off".
    """
    raw: dict = {}
    typed: dict = {}  # key -> the text of its plain scalar as written (file, then overrides)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_text()
            raw = yaml.safe_load(text) or {}
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping of config keys")
        if isinstance(node, yaml.MappingNode):  # None for an empty file
            typed = {k.value: v.value for k, v in node.value
                     if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        raw[k.strip()] = yaml.safe_load(v) if v.strip() else None
        typed[k.strip()] = v.strip()
    hints = _annotations()
    renamed = {k: RENAMED_KEYS[k] for k in raw if k in RENAMED_KEYS}
    if renamed:
        old, new = next(iter(renamed.items()))
        raise ConfigError(f"config key {old!r} was renamed to {new!r} (the per-stride balance of the loss; the "
                          "distance-mesh combination used for clustering is chosen after training, mesh_weights)")
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(hints)}")
    for k, v in raw.items():
        if isinstance(v, (bool, int, float)) and not _type_ok(v, hints[k]) and _type_ok("x", hints[k]) and k in typed:
            raw[k] = v = typed[k]  # YAML read the text as a bool or number; the key wants the text
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
    if cfg.compile:
        from torch._dynamo import list_backends  # lazy: ~1 s of imports, paid only by runs that compile

        known = list_backends(exclude_tags=())
        if cfg.compile_backend not in known:
            raise ConfigError(f"compile_backend {cfg.compile_backend!r} is not a torch.compile backend; known: {known}")
    if cfg.push_pairs not in ("all", "disjoint", "adjacent", "nested"):
        raise ConfigError(f"push_pairs must be all|disjoint|adjacent|nested, got {cfg.push_pairs!r}")
    if cfg.push_norm not in ("allowed", "all_pairs"):
        raise ConfigError(f"push_norm must be allowed|all_pairs, got {cfg.push_norm!r}")
    if cfg.scene_kind not in ("simple", "sa1b"):
        raise ConfigError(f"scene_kind must be simple|sa1b, got {cfg.scene_kind!r}")
    if not set(cfg.adjacent_strides) <= set(cfg.strides):
        raise ConfigError(f"adjacent_strides {cfg.adjacent_strides} must be among strides {cfg.strides}")
    if cfg.max_cells is not None and cfg.max_cells < cfg.min_cells:
        raise ConfigError(f"max_cells ({cfg.max_cells}) must be >= min_cells ({cfg.min_cells})")
    if cfg.annotators not in ("one", "all"):
        raise ConfigError(f"annotators must be one|all, got {cfg.annotators!r}")
    if cfg.crop_scale is not None and not (len(cfg.crop_scale) == 2 and 0 < cfg.crop_scale[0] <= cfg.crop_scale[1]):
        raise ConfigError(f"crop_scale must be [lo, hi] with 0 < lo <= hi, got {cfg.crop_scale!r}")
    if cfg.cross_fit is not None and not (len(cfg.cross_fit) == 2 and cfg.cross_fit[1] >= 2
                                          and 0 <= cfg.cross_fit[0] < cfg.cross_fit[1]):
        raise ConfigError(f"cross_fit must be [k, n] with n >= 2 and 0 <= k < n, got {cfg.cross_fit!r}")
    if cfg.cross_fit is not None and cfg.data != "bsds500":
        raise ConfigError(f"cross_fit needs data=bsds500, got data={cfg.data!r}")
    if cfg.contrast_weight < 0 or not 0 <= cfg.contrast_min_cut <= 1:
        raise ConfigError(f"contrast_weight must be >= 0 and contrast_min_cut in [0, 1], got {cfg.contrast_weight}, "
                          f"{cfg.contrast_min_cut}")
    if not 0 <= cfg.colour_jitter < 1 or cfg.holdout < 0:
        raise ConfigError("colour_jitter must be in [0, 1) and holdout >= 0")
    if cfg.prefetch_factor < 1 or cfg.num_workers < 0:
        raise ConfigError(f"prefetch_factor must be >= 1 and num_workers >= 0, got {cfg.prefetch_factor} and "
                          f"{cfg.num_workers}")
    if cfg.time_limit_minutes is not None and cfg.time_limit_minutes <= 0:
        raise ConfigError(f"time_limit_minutes must be > 0 (or null), got {cfg.time_limit_minutes}")
    if cfg.image_size < 32 or cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.grad_accum < 1:
        raise ConfigError("image_size >= 32, batch_size >= 1, grad_accum >= 1 and max_steps >= 1 are required")
    if cfg.data == "bsds500":
        if not (Path(cfg.data_root) / "images" / "train").is_dir():
            raise ConfigError(f"data=bsds500 but {cfg.data_root}/images/train does not exist")
    elif cfg.data != "synthetic":
        if not (Path(cfg.data).exists() or glob.glob(cfg.data)):
            raise ConfigError(f"data path not found: {cfg.data}")
    if cfg.pretrained is not None and not Path(cfg.pretrained).is_file():
        raise ConfigError(f"pretrained checkpoint not found: {cfg.pretrained}")


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
