"""The training loop: FeatureNet + MultiStrideLoss + AdamW through accelerate (1 CPU, N GPUs, bf16, accumulation).

    cfg = load_config("configs/demo.yaml", ["max_steps=4", "output_dir=runs/try"])   # featlib.config
    result = fit(cfg)                 # {"step", "final_loss", "val", "seconds", "collapse", ...}
    t = prepare_training(cfg, accelerator)                   # what fit trains: model (prepared, maybe compiled) ...
    out, grad_norm = train_step(accelerator, t, batch, cfg)  # ... and one micro-batch of its loop
    model = load_model_checkpoint("runs/try/model.pt")                               # featlib.checkpoint

Layout of ``output_dir``:
    config.yaml                    the resolved config of the run
    checkpoints/step_000100/       accelerator.save_state + trainer state (featlib.checkpoint: atomic, exact resume)
    model.pt                       final weights + model config (``load_model_checkpoint``), weights_only-safe
    metrics.jsonl                  every logged scalar (also in TensorBoard, below)
    featlib/                       TensorBoard event files (tracker=tensorboard: accelerate's tracker writes under
                                   project_dir/<project name>, and the project is "featlib")
    figures/step_000100.png        image | features per stride | clusters | ground truth

The schedule is linear warmup then cosine decay to ``min_lr_ratio`` (``lr_factor``), counted in optimizer steps
whatever the world size. Collapse to a constant output is watched through the mean per-channel feature spread
(``CollapseAlarm``), not only the loss. Where the data comes from and how a resume finds its place:
``featlib.data.loaders``. ``train_step`` is the loop's arithmetic for one batch, shared with
``scripts/benchmark.py train`` (which times its phases); ``channels_last`` and ``compile`` are applied by
``build_training`` / ``prepare_training`` (off by default: see ``featlib.config``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from featlib.checkpoint import list_checkpoints, resolve_resume, restore_checkpoint, save_checkpoint, save_model
from featlib.config import ConfigError, TrainConfig, save_config
from featlib.data.loaders import InfiniteLoader, build_dataset, synthetic_dirs
from featlib.data.masks import to_device
from featlib.evaluate import Validation, example_figure
from featlib.loss import MultiStrideLoss
from featlib.model import build_model

log = logging.getLogger("featlib.train")


def build_training(cfg: TrainConfig):
    """(model, loss, optimizer, scheduler) for ``cfg``."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.backbone, strides=tuple(cfg.strides), base_channels=cfg.base_channels,
                        pretrained=cfg.pretrained, colour_skip=cfg.colour_skip)
    loss = MultiStrideLoss(strides=tuple(cfg.strides), base_channels=cfg.base_channels,
                           loss_weights={int(k): float(v) for k, v in cfg.loss_weights.items()}
                           if cfg.loss_weights else None,
                           margin_v=cfg.margin_v, margin_d=cfg.margin_d, push_pairs=cfg.push_pairs,
                           min_cells=cfg.min_cells, push_norm=cfg.push_norm, max_cells=cfg.max_cells,
                           adjacent_strides=tuple(cfg.adjacent_strides), contrast_weight=cfg.contrast_weight,
                           contrast_min_cut=cfg.contrast_min_cut)
    if bn_frozen(cfg):
        freeze_batchnorm(model)
    if cfg.channels_last:  # NHWC weights; train_step converts the images alike
        model = model.to(memory_format=torch.channels_last)
    if cfg.freeze_backbone:
        model.backbone.requires_grad_(False)
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": head, "lr": cfg.lr}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale})
    # fused: one kernel per parameter group, and no host read of the step counts (the foreach and loop versions
    # call .item() on them every step: tests/test_train.py checks that a non-log step reads nothing on the host)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
    return model, loss, opt, sched


def bn_frozen(cfg: TrainConfig) -> bool:
    """``cfg.freeze_bn``, where None means: frozen when the backbone starts from pretrained weights."""
    return cfg.pretrained is not None if cfg.freeze_bn is None else bool(cfg.freeze_bn)


def _stay_eval(self, mode: bool = True):
    return torch.nn.Module.train(self, False)


def freeze_batchnorm(model: torch.nn.Module) -> int:
    """Keep every BatchNorm layer of ``model`` as loaded: running statistics used, never updated (eval mode, whatever
    ``model.train()`` says later) and affine parameters frozen. Returns how many layers.

    Why: EfficientViT-SAM's backbone has 25 BatchNorm layers whose statistics come from SAM's large-batch training;
    at 8 images per GPU (batch statistics of 8 correlated crops) training mode would overwrite them within a few
    hundred steps (momentum 0.1) and shift every feature the pretrained weights compute.
    """
    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.requires_grad_(False)
            m.train = _stay_eval.__get__(m)  # model.train() reaches BN layers through their own train()
            m.train()
            n += 1
    return n


class Training(NamedTuple):
    """What ``fit`` trains. ``model`` is called in steps (prepared by accelerate, compiled if ``cfg.compile``);
    ``unwrapped`` is the plain FeatureNet behind it (validation, ``save_model``: state-dict keys without prefixes)."""

    model: torch.nn.Module
    unwrapped: torch.nn.Module
    loss: MultiStrideLoss
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR


def prepare_training(cfg: TrainConfig, accelerator) -> Training:
    """``build_training``, then ``accelerator.prepare``, the scheduler registered for checkpoints, and
    ``torch.compile`` when ``cfg.compile`` (after prepare, so a DDP-wrapped model is compiled as a whole)."""
    model, loss_fn, opt, sched = build_training(cfg)
    if cfg.sync_bn and accelerator.num_processes > 1:
        if accelerator.device.type != "cuda":
            raise ConfigError("sync_bn needs CUDA (torch's SyncBatchNorm has no CPU kernel); set sync_bn=false")
        if bn_frozen(cfg):
            raise ConfigError("sync_bn and freeze_bn exclude each other (frozen statistics need no syncing)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # The scheduler is not prepared: accelerate would step it once per process, while our schedule counts
    # optimizer steps whatever the world size. It is checkpointed alongside the prepared objects.
    model, opt = accelerator.prepare(model, opt)
    accelerator.register_for_checkpointing(sched)
    unwrapped = accelerator.unwrap_model(model)
    if cfg.compile:
        model = torch.compile(model, backend=cfg.compile_backend)
    return Training(model, unwrapped, loss_fn, opt, sched)


def _untimed(phase: str):
    return contextlib.nullcontext()


def train_step(accelerator, t: Training, batch: dict, cfg: TrainConfig, phase=_untimed):
    """One micro-batch of the loop: forward (autocast), loss, backward and, when gradients sync, clipping, AdamW
    and the schedule. Returns (MultiStrideOutput, grad norm or None).

    ``phase(name)`` -> a context manager wrapped around each of "forward", "loss", "backward", "optimizer"
    (a timer, in scripts/benchmarks/train.py); the default does nothing.
    """
    dev = to_device(batch, accelerator.device)  # compact batch -> float image, dense masks (featlib.data.masks)
    images, masks, mask_valid = dev["image"], dev["masks"], dev["mask_valid"]
    # padding is known on the host (collate's "padded"): an unpadded batch skips the per-cell weights entirely
    valid_pixels = dev["valid_pixels"] if batch.get("padded", True) else None
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with accelerator.accumulate(t.model):
        with phase("forward"), accelerator.autocast():
            # images come from uint8: finite by construction, so the model's finiteness check (a host sync) is off
            feats = t.model(images, check_finite=False)
        with phase("loss"):
            out = t.loss(feats, masks, mask_valid, valid_pixels, groups=dev["mask_id"])
        with phase("backward"):
            accelerator.backward(out.total)
        with phase("optimizer"):
            grad_norm = None
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(t.model.parameters(), cfg.grad_clip)
                # A non-finite gradient must not reach the weights, and checking it on the host would sync every
                # step: zero it on the device instead; the step is counted in out.logs and read at log steps.
                finite = torch.isfinite(grad_norm)
                for p in t.model.parameters():
                    if p.grad is not None:
                        p.grad.copy_(torch.where(finite, p.grad, torch.zeros_like(p.grad)))
                out.logs["nonfinite_step"] = (~finite).float()
            t.opt.step()
            if accelerator.sync_gradients:
                t.sched.step()
            t.opt.zero_grad(set_to_none=True)
    return out, grad_norm


class LogAccumulator:
    """Sums the steps' device-side logs (0-dim tensors, ``MultiStrideOutput.logs``) without reading them, so a
    training step never waits for the device; ``read()`` returns the interval's means ("nonfinite_step" summed as
    "nonfinite_steps") in one host copy and starts a new interval."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, logs: dict) -> None:
        for k, v in logs.items():
            v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def read(self) -> dict[str, float]:
        if not self.count:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].reshape(()).to(self.sums[keys[0]].device) for k in keys]).tolist()
        out = {}
        for k, v in zip(keys, values):
            out["nonfinite_steps" if k == "nonfinite_step" else k] = v if k == "nonfinite_step" else v / self.count
        self.sums, self.count = {}, 0
        return out


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup then cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


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

    t = prepare_training(cfg, accelerator)
    loader = InfiniteLoader(build_dataset(cfg, rank, world), cfg, rank, world,
                            pin_memory=accelerator.device.type == "cuda")
    val = Validation(cfg, accelerator)
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
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train",
               disable=not (cfg.progress and accelerator.is_main_process))
    start, seen, data_wait, last = time.perf_counter(), 0, 0.0, {}
    unwrapped = t.unwrapped
    last_step = min(cfg.max_steps, cfg.stop_at or cfg.max_steps)
    out = None
    logs = LogAccumulator()
    stopped = None
    while step < last_step:
        t.model.train()
        for _ in range(cfg.grad_accum):
            t0 = time.perf_counter()
            batch = next(loader)
            data_wait += time.perf_counter() - t0
            out, grad_norm = train_step(accelerator, t, batch, cfg)
            logs.add(out.logs if grad_norm is None else {**out.logs, "grad_norm": grad_norm})
            seen += batch["image"].shape[0] * world
        step += 1
        bar.update(1)
        elapsed = time.perf_counter() - start
        if step % cfg.log_every == 0 or step == cfg.max_steps or step == last_step:
            means = logs.read()  # the one host read of the interval's device-side logs
            spread = float(np.mean([means[f"s{s}/spread"] for s in cfg.strides]))
            last = {**means, "lr": t.sched.get_last_lr()[0], "img_per_s": seen / elapsed, "data_wait_s": data_wait,
                    "spread/mean": spread, "skipped": float(sum(loader.skipped.values()))}
            if last.get("nonfinite_steps", 0) > 0:
                msg = (f"NON-FINITE GRADIENTS in {int(last['nonfinite_steps'])} step(s) up to step {step}: those "
                       "updates were zeroed (weights unchanged by them); loss/total is their interval mean")
                log.warning(msg)
                accelerator.print("!" * 80 + "\n" + msg + "\n" + "!" * 80)
            if alarm.update(spread):
                last["alarm/collapse"] = 1.0
                msg = (f"COLLAPSE ALARM at step {step}: mean feature spread {spread:.4f} < {cfg.collapse_spread} "
                       f"for {alarm.count} checks — features are (nearly) constant")
                log.warning(msg)
                accelerator.print("!" * 80 + "\n" + msg + "\n" + "!" * 80)
            bar.set_postfix(loss=f"{means['loss/total']:.4f}", spread=f"{spread:.3f}",
                            img_s=f"{seen / elapsed:.1f}")
            _log(accelerator, cfg, metrics_file, last, step)
            if cfg.time_limit_minutes is not None and _any_rank(accelerator, elapsed / 60 >= cfg.time_limit_minutes):
                stopped = f"time_limit_minutes={cfg.time_limit_minutes} reached at step {step}"
        if cfg.val_every > 0 and (step % cfg.val_every == 0 or step == cfg.max_steps):
            v = val.run(unwrapped)  # every rank scores its share; the main rank gets the summary
            if accelerator.is_main_process and v:
                last.update(v)
                _log(accelerator, cfg, metrics_file, v, step)
                bar.write(f"step {step}: {val.describe(v)}")
        if val.records and cfg.image_every > 0 and (step % cfg.image_every == 0 or step == cfg.max_steps):
            _log_figure(accelerator, cfg, unwrapped, val.records[0], step, out_dir)
        if step % cfg.checkpoint_every == 0 or step == last_step or stopped:
            save_checkpoint(accelerator, out_dir, step, {"data": loader.state_dict()}, cfg.keep_checkpoints)
        if stopped:
            accelerator.print(f"stopping cleanly: {stopped}; checkpoint saved, continue with --resume latest")
            break
    bar.close()
    # DDP keeps replicas identical; check it rather than assume it (a fingerprint per rank, gathered)
    fingerprint = torch.stack([p.detach().double().sum() for p in unwrapped.parameters()]).sum().reshape(1)
    fingerprints = accelerator.gather(fingerprint.to(accelerator.device)).cpu().tolist()
    result = {"step": step, "final_loss": last.get("loss/total", float("nan")),
              "val": {k: v for k, v in last.items() if k.startswith("val/")},
              "seconds": time.perf_counter() - start, "collapse": alarm.fired, "skipped": dict(loader.skipped),
              "world_size": world, "replica_fingerprints": fingerprints, "stopped": stopped}
    if accelerator.is_main_process:
        save_model(unwrapped, out_dir / "model.pt")
        (out_dir / "run_summary.json").write_text(json.dumps(result, indent=2))
        if len(set(fingerprints)) > 1:
            log.warning("replicas diverged: parameter fingerprints %s", fingerprints)
    accelerator.wait_for_everyone()
    if cfg.tracker != "none":
        accelerator.end_training()
    return {**result, "accelerator": accelerator}


def _any_rank(accelerator, condition: bool) -> bool:
    """True on every rank when ``condition`` holds on any (one all-reduce: call it where every rank is, at log
    steps), so all ranks take the same branch before the next collective."""
    flag = torch.tensor([1.0 if condition else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="max").item() > 0)


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
    fig = example_figure(model, example[0], example[1], accelerator.device, title=f"step {step}")
    (out_dir / "figures").mkdir(exist_ok=True)
    fig.savefig(out_dir / "figures" / f"step_{step:06d}.png", dpi=90)
    if cfg.tracker == "tensorboard":
        accelerator.get_tracker("tensorboard").writer.add_figure("examples", fig, global_step=step)
    # Closed through pyplot (which example_figure opened it with), whatever the backend: importing featlib never
    # chooses one, so a notebook keeps its inline backend and training figures are not shown there.
    import matplotlib.pyplot as plt  # imported on use, like featlib.viz

    plt.close(fig)


def read_metrics(output_dir: str | Path) -> list[dict]:
    """The run's metrics.jsonl as a list of dicts (for notebooks)."""
    p = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []
