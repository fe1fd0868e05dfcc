#!/usr/bin/env python
"""Prove the CUDA path in minutes: one command, one summary table, one JSON file.

    PYTHONPATH=. python scripts/gpu_check.py --output DIR               # one GPU, <= 8 minutes
    PYTHONPATH=. python scripts/gpu_check.py --device cpu --quick --output DIR   # tiny sizes (the tests run it)
    PYTHONPATH=. python scripts/gpu_check.py --output DIR --checks loss,model    # a subset (a re-run)

No network, no installs, no downloads: it runs where featlib's dependencies already import, on random weights
(no EfficientViT-SAM checkpoint needed) and synthetic data it writes itself into a scratch folder (a temporary
one, removed at the end, unless ``--work DIR``). It writes DIR/gpu_check.json (every number below, the tolerances
used, seconds, tracebacks of failures), DIR/benchmark_train.json and the training run's metrics.jsonl and
run_summary.json. Exit code 0 only when every check passed; one failing check does not stop the others.

The checks and their time budgets on one GPU (sum 7 min; a check over budget is flagged, not failed):

1. ``loss`` (30 s): the loss on the device equals a float64 CPU reference, values and feature gradients, for
   narrow strides (/1, /2: C <= 16, fused numba loops on CPU, the tensor path on GPU) and wide ones (/4, /16),
   with the pull term forced dense and sparse, in float32 and under bf16 autocast; and MultiStrideLoss on all
   strides (automatic layout, padded pixels) likewise.
2. ``model`` (30 s): FeatureNet l0 forward + backward (MultiStrideLoss) at 1024^2 under bf16 autocast: finite,
   and equal to float32 within the tolerances below.
3. ``benchmark`` (150 s, shard writing included): ``scripts/benchmark.py train`` for configs/sa1b_l0.yaml at
   batch 4 / 8 / 16, then doubling to 64 until out of memory, plus the loader row (12 workers): img/s and peak
   memory against the config's on-paper estimates (~21 GB at batch 8, 40-50 img/s per A100-class GPU); and the data
   path: one real batch's bytes (compact vs dense) and ``to_device``'s time (pinned copy + mask unpacking).
4. ``training`` (180 s): 100 steps of scripts/train_accelerate.py (one process, configs/sa1b_l0.yaml at 1024,
   DataLoader workers) on SA-1B-like scenes (2:3, 1024 long side, ~85 nested masks: K = 64 pieces kept, as on
   SA-1B) written as prepared shards: 50 steps, stop, ``--resume latest`` to 100. img/s, data-wait share, no
   collapse alarm, checkpoints written and resumed. Checks 3 and 4 read the shards through the training loader
   (``InfiniteLoader``: persistent workers, pinned memory) and ``featlib.data.masks.to_device``.
5. ``segment`` (30 s): scripts/segment_images.py with the model.pt of check 4 on 4 images (683 x 1024) on the GPU:
   seconds per image (between the first and the last finished output, so process start is not counted).

Optional, only with ``--checks ...,options`` (240 s, mostly inductor compiling): img/s at the config's batch with
``channels_last=true`` and with ``compile=true`` against the default, same process - the measurement that decides
whether to turn them on in the config (both are off until it says so).

Tolerances, and why (relative errors; for gradients the norm of the difference over the norm of the reference):
- float32 vs the float64 reference: loss values 1e-5; feature gradients 5e-4, because a mask's mean and the
  push term's gradient are float32 sums over up to ~10^5 member pixels (/1 at 256^2), whose rounding grows with
  the count (measured on CPU at the GPU sizes: values <= 8e-7, gradients <= 9e-5 at /1, <= 9e-6 elsewhere). TF32
  is switched off for the float32 comparisons (PyTorch allows it in cuDNN convolutions by default; it rounds
  matmul and convolution inputs to 10 mantissa bits).
- bf16 autocast, loss: ``discriminative_loss`` computes in float32 even under autocast, so the only roundings are
  the features' cast to bf16 (8 mantissa bits: relative spacing 2^-8, rounding error <= 2^-9) and the gradient's
  cast back to bf16. Against the float64 loss of the *same rounded* features: values 1e-5 (float32 arithmetic),
  gradients 2^-8 (one bf16 rounding; measured 1.7e-3). Against the unrounded features: 8 x 2^-8 ~ 3 % for both
  (a hinge near its margin amplifies a 2^-9 feature error; measured: values <= 3e-4, gradients <= 3.5e-3).
- bf16 autocast, model (random weights: no checkpoint is downloaded): such a network is sensitive to rounding
  by itself - rounding only the *input image* to bf16, in float32 arithmetic, already moves the sigmoid outputs by
  0.1-1.6 % on average and the parameter gradients by 14-74 % (BatchNorm over one image). So the yardstick is
  that sensitivity ("input-rounded" below): per stride, mean |bf16 - fp32| <= 10x the input-rounded mean
  (measured on CPU 2.4-4.0x for b0 at 64^2 and l0 at 256 and 512^2) and the centred correlation of bf16 and fp32
  outputs >= 0.95 (measured >= 0.976); parameter gradients <= 5x the input-rounded relative error (measured
  1.6-2.2x); the loss within 8 x 2^-8 ~ 3 % (measured <= 1 %).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from featlib.checkpoint import load_model_checkpoint, save_model
from featlib.config import load_config
from featlib.data.loaders import InfiniteLoader, build_dataset
from featlib.data.masks import batch_nbytes, dense_masks, dense_valid_pixels, to_device
from featlib.data.prepare import synthetic_batch, write_prepared_scenes
from featlib.data.synthetic import make_scene
from featlib.loss import MultiStrideLoss, discriminative_loss, downsample_masks
from featlib.model import build_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "sa1b_l0.yaml"
BUDGET_S = {"loss": 30, "model": 30, "benchmark": 150, "training": 180, "segment": 30, "options": 240}

FP32_TOL = 1e-5          # loss values, float32 vs float64 (docstring: tolerances)
FP32_GRAD_TOL = 5e-4     # feature gradients, float32 vs float64
BF16_EPS = 2.0 ** -8
BF16_LOSS_TOL = 8 * BF16_EPS
MODEL_TOL = {"mean_vs_input_rounded": 10.0, "min_correlation": 0.95, "grad_vs_input_rounded": 5.0,
             "loss_rel": BF16_LOSS_TOL}
# configs/sa1b_l0.yaml's on-paper estimates: ~0.5 GB of weights, grads and AdamW moments + ~2.5 GB per image
ESTIMATE = {"fixed_gb": 0.5, "gb_per_image": 2.5, "img_per_s": (40, 50)}


@dataclass
class Context:
    device: torch.device
    quick: bool
    work: Path
    output: Path
    shards: str | None = None
    model_path: Path | None = None

    @property
    def workers(self) -> int:
        """DataLoader workers: the config's 12 on a GPU machine (at most the cores but 2), one in quick mode."""
        return 1 if self.quick else max(1, min(12, (os.cpu_count() or 4) - 2))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a - b| / |b| (norms over all elements), in float64 on the CPU."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


@contextlib.contextmanager
def no_tf32():
    """float32 means float32: no TF32 rounding in matmuls and cuDNN convolutions inside the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ------------------------------------------------------------------------------------------------ 1. loss


def _loss_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bf16: bool, device):
    """(value, gradient w.r.t. x) of fn(x as fed to the loss): x is moved to ``device`` and, for bf16, cast to bf16
    inside the graph (as a bf16-autocast model's output is) and the loss called under autocast."""
    leaf = x.detach().to(device).requires_grad_()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        value = fn(leaf.to(torch.bfloat16) if bf16 else leaf)
    value.backward()
    return value.detach(), leaf.grad


def check_loss(ctx: Context) -> dict:
    b, size, k = (1, 64, 8) if ctx.quick else (2, 256, 32)
    batch = synthetic_batch(b, size, k, seed=1)
    full_masks = dense_masks(batch)  # bool [B, K, S, S] on the CPU
    valid = dense_valid_pixels(batch).clone()
    valid[:, :, size - size // 8:] = False  # a padded strip: the weighted pull path
    loss = MultiStrideLoss()
    down = downsample_masks(full_masks, loss.strides)
    g = torch.Generator().manual_seed(0)
    feats = {s: torch.rand(b, 3 * s * s, size // s, size // s, generator=g, dtype=torch.float64)
             for s in loss.strides}
    cases, dev = [], ctx.device

    def one_stride(s, dense, device):
        dv, dd = loss.margins[s]
        unit = math.sqrt(3 * s * s)
        members = down[s][0].to(device)
        mv = batch["mask_valid"].to(device)
        return lambda x: discriminative_loss(x, members, mv, delta_v=dv / unit, delta_d=dd / unit, min_members=2,
                                             feature_scale=1 / unit, dense=dense).total

    def compare(name, fn_dev, fn_ref, x):
        ref_v, ref_g = _loss_and_grad(fn_ref, x, False, torch.device("cpu"))
        with no_tf32():
            v, grad = _loss_and_grad(fn_dev, x.float(), False, dev)
        cases.append({"case": f"{name} fp32", "value_rel": abs(float(v) - float(ref_v)) / abs(float(ref_v)),
                      "grad_rel": _rel(grad, ref_g), "tol_value": FP32_TOL, "tol_grad": FP32_GRAD_TOL})
        v, grad = _loss_and_grad(fn_dev, x.float(), True, dev)
        cases.append({"case": f"{name} bf16", "value_rel": abs(float(v) - float(ref_v)) / abs(float(ref_v)),
                      "grad_rel": _rel(grad, ref_g), "tol_value": BF16_LOSS_TOL, "tol_grad": BF16_LOSS_TOL})
        rv, rg = _loss_and_grad(fn_ref, x.float().to(torch.bfloat16).double(), False, torch.device("cpu"))
        cases.append({"case": f"{name} bf16 vs rounded ref", "value_rel": abs(float(v) - float(rv)) / abs(float(rv)),
                      "grad_rel": _rel(grad, rg), "tol_value": FP32_TOL, "tol_grad": BF16_EPS})

    for s in (1, 2, 4, 16):
        for dense in (True, False):
            kind = "narrow" if 3 * s * s <= 16 else "wide"
            compare(f"/{s} ({kind}, C={3 * s * s}) {'dense' if dense else 'sparse'}", one_stride(s, dense, dev),
                    one_stride(s, False, "cpu"), feats[s])
    # MultiStrideLoss over all strides, automatic layouts, padded pixels: one flat vector holds every stride's map
    shapes = {s: f.shape for s, f in feats.items()}
    flat = torch.cat([f.flatten() for f in feats.values()])

    def multi(device):
        masks, mv, vp = full_masks.to(device), batch["mask_valid"].to(device), valid.to(device)

        def fn(x):
            parts, i = {}, 0
            for s, shape in shapes.items():
                n = math.prod(shape)
                parts[s], i = x[i:i + n].view(shape), i + n
            return loss(parts, masks, mv, vp).total
        return fn

    compare("MultiStrideLoss /1-/16 auto", multi(dev), multi("cpu"), flat)
    for c in cases:
        c["passed"] = c["value_rel"] <= c["tol_value"] and c["grad_rel"] <= c["tol_grad"]
    worst = max(cases, key=lambda c: max(c["value_rel"] / c["tol_value"], c["grad_rel"] / c["tol_grad"]))
    return {"passed": all(c["passed"] for c in cases), "cases": cases, "size": [b, size, size], "masks": k,
            "worst_case": worst["case"],
            "summary": f"{sum(c['passed'] for c in cases)}/{len(cases)} cases within tolerance; worst "
                       f"{worst['case']}: value {worst['value_rel']:.1e}, grad {worst['grad_rel']:.1e}"}


# ----------------------------------------------------------------------------------------------- 2. model


def _centred_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = (t.double() - t.double().mean((2, 3), keepdim=True) for t in (a, b))
    return float((a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-30))


def check_model(ctx: Context) -> dict:
    backbone, size, k = ("b0", 64, 8) if ctx.quick else ("l0", 1024, 64)
    torch.manual_seed(0)
    model = build_model(backbone).to(ctx.device).train()
    batch = to_device(synthetic_batch(1, size, k, seed=2), ctx.device)
    loss = MultiStrideLoss()

    def run(bf16: bool, images: torch.Tensor):
        model.zero_grad(set_to_none=True)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            feats = model(images)
        out = loss(feats, batch["masks"], batch["mask_valid"], batch["valid_pixels"])
        out.total.backward()
        grads = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
        return {s: f.detach().float() for s, f in feats.items()}, out.total.detach().float(), grads

    images = batch["image"]
    with no_tf32():
        ref_f, ref_l, ref_g = run(False, images)
        sens_f, _, sens_g = run(False, images.to(torch.bfloat16).float())  # the network's own sensitivity
    f, value, grads = run(True, images)
    finite = bool(all(torch.isfinite(v).all() for v in f.values()) and torch.isfinite(value)
                  and torch.isfinite(grads).all())
    per_stride = {}
    for s in f:
        mean, sens = float((f[s] - ref_f[s]).abs().mean()), float((sens_f[s] - ref_f[s]).abs().mean())
        per_stride[str(s)] = {"mean_abs": mean, "max_abs": float((f[s] - ref_f[s]).abs().max()),
                              "input_rounded_mean_abs": sens, "ratio": mean / max(sens, 1e-12),
                              "correlation": _centred_correlation(f[s], ref_f[s])}
    grad_rel, grad_sens = _rel(grads, ref_g), _rel(sens_g, ref_g)
    res = {"finite": finite, "per_stride": per_stride, "loss_rel": abs(float(value - ref_l)) / abs(float(ref_l)),
           "grad_rel": grad_rel, "grad_input_rounded_rel": grad_sens, "grad_ratio": grad_rel / max(grad_sens, 1e-12),
           "tolerance": MODEL_TOL, "backbone": backbone, "size": size}
    res["passed"] = bool(finite and res["loss_rel"] <= MODEL_TOL["loss_rel"]
                         and res["grad_ratio"] <= MODEL_TOL["grad_vs_input_rounded"]
                         and all(v["ratio"] <= MODEL_TOL["mean_vs_input_rounded"]
                                 and v["correlation"] >= MODEL_TOL["min_correlation"] for v in per_stride.values()))
    worst = max(per_stride.values(), key=lambda v: v["ratio"])
    res["summary"] = (f"{backbone} {size}^2 bf16: finite={finite}, outputs <= {worst['ratio']:.1f}x input-rounded "
                      f"(corr >= {min(v['correlation'] for v in per_stride.values()):.3f}), grads "
                      f"{res['grad_ratio']:.1f}x, loss {res['loss_rel']:.1e}")
    return res


# ------------------------------------------------------------------------------------------- 3. benchmark


def ensure_shards(ctx: Context) -> str:
    """Prepared SA-1B-like shards at the training size (``write_prepared_scenes(kind="sa1b")``: ~80-90 nested
    masks, ~140 pieces per photo, so K = max_instances = 64 as on SA-1B), enough for check 4's 100 steps (each
    worker batches its own shard; one shard per worker, as ``SA1BShards.check_split`` requires)."""
    if ctx.shards is None:
        size, batch, steps = (64, 2, 4) if ctx.quick else (1024, 8, 100)
        per_worker = math.ceil((steps + 1) / ctx.workers) * batch
        unique = min(per_worker * ctx.workers, 4 * ctx.workers)
        write_prepared_scenes(ctx.work / "shards", unique, size=size, shards=ctx.workers,
                              copies=math.ceil(per_worker * ctx.workers / unique),
                              workers=min(os.cpu_count() or 1, unique), kind="sa1b")
        ctx.shards = str(ctx.work / "shards" / "sa_*.tar")
    return ctx.shards


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("featlib_bench_train", ROOT / "scripts" / "benchmarks" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_path(ctx: Context) -> dict:
    """One batch of the real loader on the SA-1B-like shards (the config's size, K and batch; pinned on CUDA), then
    ``to_device`` (copy + unpack into dense masks, synchronised) timed over 5 runs: what a training step pays."""
    cfg = load_config(CONFIG, [f"data={ensure_shards(ctx)}", "num_workers=0"]
                      + (_load_benchmark().QUICK + ["batch_size=2"] if ctx.quick else []))
    loader = InfiniteLoader(build_dataset(cfg), cfg, 0, 1, pin_memory=ctx.device.type == "cuda")
    batch = next(loader)
    dev = to_device(batch, ctx.device)  # warm-up (allocator, kernels)
    _sync(ctx.device)
    start = time.perf_counter()
    for _ in range(5):
        dev = to_device(batch, ctx.device)
    _sync(ctx.device)
    ms = (time.perf_counter() - start) / 5 * 1e3
    dense_mib = batch_nbytes(dev) / 2**20
    del dev
    return {"host_syncs": host_syncs(ctx, cfg, batch),
            "batch_size": int(batch["image"].shape[0]), "k": int(batch["mask_valid"].shape[1]),
            "mean_masks": float(batch["mask_valid"].sum(1).float().mean()), "mask_rows": len(batch["mask_rows"]),
            "compact_mib": batch_nbytes(batch) / 2**20, "dense_mib": dense_mib,
            "to_device_ms": ms, "pinned": bool(batch["image"].is_pinned()), "skipped": dict(loader.skipped)}


def host_syncs(ctx: Context, cfg, batch: dict) -> dict:
    """CUDA only: the synchronising operations of one training step on that batch, counted by
    ``torch.cuda.set_sync_debug_mode("warn")``. Expected: the sparse pull's ``nonzero`` at /1 and /2 (its output
    size), 2 per step; nothing is read on the host otherwise (tests/test_train.py forbids it on CPU)."""
    if ctx.device.type != "cuda":
        return {"syncs_per_step": None, "note": "counted on CUDA only"}
    from accelerate import Accelerator

    from featlib.train import prepare_training, train_step

    acc = Accelerator(mixed_precision=cfg.mixed_precision)
    t = prepare_training(cfg, acc)
    t.model.train()
    train_step(acc, t, batch, cfg)  # warm-up: allocator, kernels
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_step(acc, t, batch, cfg)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    msgs = [str(w.message).strip().splitlines()[0][:160] for w in caught if "synchroniz" in str(w.message).lower()]
    del t
    gc.collect()
    torch.cuda.empty_cache()
    return {"syncs_per_step": len(msgs), "sync_ops": sorted(set(msgs))[:10]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_benchmark(ctx: Context) -> dict:
    data = data_path(ctx)
    bench = _load_benchmark()
    argv = ["--config", str(CONFIG), "--device", ctx.device.type, "--shards", ensure_shards(ctx),
            "--workers", str(ctx.workers), "--output", str(ctx.output / "benchmark_train.json")]
    argv += ["--quick"] if ctx.quick else ["--batch-sizes", "4,8,16", "--max-batch", "64"]
    result = bench.run(bench.parse_args(argv))
    bench.print_table(result)
    (ctx.output / "benchmark_train.json").write_text(json.dumps(result, indent=2))
    gc.collect()  # the benchmark's model and optimizer, before check 4 needs the GPU's memory
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    rows = [r for r in result["rows"] if r["source"] == "synthetic" and not r.get("oom")]
    for r in rows:  # the estimates are for l0 at 1024^2: compared only in the full check
        est = None if ctx.quick else ESTIMATE["fixed_gb"] + ESTIMATE["gb_per_image"] * r["batch_size"]
        r["estimate_gb"], r["peak_vs_estimate"] = est, est and r["peak_mb"] / 1024 / est
    loader = next((r for r in result["rows"] if r["source"].startswith("loader")), {"oom": True, "error": "no row"})
    fits = (result["largest_fitting_batch"] or 0) >= (2 if ctx.quick else 8)  # the config's batch must fit
    res = {"passed": bool(rows) and fits and all(r["loss_finite"] for r in rows) and not loader.get("oom"),
           "rows": rows, "loader": loader, "estimate": ESTIMATE, "data_path": data,
           **{key: result[key] for key in ("largest_fitting_batch", "first_oom_batch")}}
    parts = [f"largest batch {result['largest_fitting_batch']} (OOM at {result['first_oom_batch']})"]
    parts += [f"b{r['batch_size']} {r['img_per_s']:.1f} img/s {r['peak_mb'] / 1024:.1f} GB"
              + (f" ({r['peak_vs_estimate']:.2f}x est.)" if r["estimate_gb"] else "") for r in rows]
    if not loader.get("oom"):
        parts.append(f"loader {loader['img_per_s']:.1f} img/s, data wait {100 * loader['data_wait_share']:.0f}%")
    parts.append(f"batch {data['compact_mib']:.1f} MiB compact (dense {data['dense_mib']:.0f} MiB, K={data['k']}), "
                 f"to_device {data['to_device_ms']:.1f} ms, host syncs per step "
                 f"{data['host_syncs']['syncs_per_step']}")
    res["summary"] = "; ".join(parts)
    return res


def check_options(ctx: Context) -> dict:
    bench, b = _load_benchmark(), 2 if ctx.quick else 8
    variants = {"default": [], "channels_last": ["channels_last=true"],
                "compile": ["compile=true"] + (["compile_backend=aot_eager"] if ctx.quick else [])}  # inductor: slow
    rows = {}
    for name, extra in variants.items():
        argv = ["--config", str(CONFIG), "--device", ctx.device.type, "--batch-sizes", str(b), "--warmup",
                "2" if ctx.quick else "8",
                "--no-loader"] + (["--quick"] if ctx.quick else []) + extra
        result = bench.run(bench.parse_args(argv))
        bench.print_table(result)
        rows[name] = next(r for r in result["rows"] if r["batch_size"] == b)
        gc.collect()
    for r in rows.values():
        r["vs_default"] = r.get("img_per_s", float("nan")) / rows["default"].get("img_per_s", float("nan"))
    ok = all(not r.get("oom") and r["loss_finite"] for r in rows.values())
    return {"passed": ok, "batch_size": b, "rows": rows,
            "summary": ", ".join(f"{k} {r.get('img_per_s', float('nan')):.1f} img/s ({r['vs_default']:.2f}x)"
                                 for k, r in rows.items())}


# -------------------------------------------------------------------------------------------- 4. training


def _run(cmd: list[str], timeout: int, cpu: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **({"ACCELERATE_USE_CPU": "true"} if cpu else {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def check_training(ctx: Context) -> dict:
    run_dir, cpu = ctx.work / "run", ctx.device.type == "cpu"
    steps, every = (4, 2) if ctx.quick else (100, 50)
    cmd = [sys.executable, str(ROOT / "scripts" / "train_accelerate.py"), "--config", str(CONFIG)] + (
        ["--cpu"] if cpu else [])
    overrides = [f"data={ensure_shards(ctx)}", f"output_dir={run_dir}", f"data_root={ctx.work / 'val_scenes'}",
                 f"max_steps={steps}", f"checkpoint_every={every}", f"log_every={1 if ctx.quick else 10}",
                 f"val_every={steps}", f"image_every={steps}", f"n_val={1 if ctx.quick else 2}", "progress=false",
                 f"num_workers={ctx.workers}"]
    if ctx.quick:  # the benchmark's quick sizes
        overrides += _load_benchmark().QUICK + ["batch_size=2", "tracker=none"]
    timeout = 120 if ctx.quick else 240
    first = _run(cmd + overrides + [f"stop_at={every}"], timeout, cpu)
    second = _run(cmd + ["--resume", "latest"] + overrides, timeout, cpu) if first.returncode == 0 else None
    res = {"first_rc": first.returncode, "second_rc": second.returncode if second else None,
           "stderr_tail": (second or first).stderr[-3000:]}
    if second is None or second.returncode != 0:
        return {**res, "passed": False, "summary": "train_accelerate.py failed (stderr_tail)"}
    text = second.stdout + second.stderr
    summary = json.loads((run_dir / "run_summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    logged = [r for r in rows if "img_per_s" in r]
    last = logged[-1]
    batch = 2 if ctx.quick else 8
    seen = (last["step"] - every) * batch  # images of the resumed process up to its last log
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))
    load_model_checkpoint(run_dir / "model.pt")  # weights_only load of the final weights
    ctx.model_path = run_dir / "model.pt"
    for name in ("metrics.jsonl", "run_summary.json"):
        shutil.copy(run_dir / name, ctx.output / f"training_{name}")
    res.update({"step": summary["step"], "final_loss": summary["final_loss"], "collapse": summary["collapse"],
                "collapse_rows": sum("alarm/collapse" in r for r in rows), "checkpoints": ckpts,
                "resumed": f"at step {every}" in text and "resumed from" in text,
                "img_per_s": last["img_per_s"], "data_wait_s": last["data_wait_s"],
                "data_wait_share": last["data_wait_s"] * last["img_per_s"] / max(1, seen),
                "val": summary["val"], "loop_seconds": summary["seconds"]})
    res["passed"] = (res["step"] == steps and res["resumed"] and not res["collapse"] and res["collapse_rows"] == 0
                     and math.isfinite(res["final_loss"]) and f"step_{steps:06d}" in ckpts
                     and f"step_{every:06d}" in ckpts)
    res["summary"] = (f"{res['step']} steps, resumed={res['resumed']}, {res['img_per_s']:.1f} img/s, data wait "
                      f"{100 * res['data_wait_share']:.0f}%, collapse={res['collapse']}, checkpoints {ckpts}")
    return res


# --------------------------------------------------------------------------------------------- 5. segment


def check_segment(ctx: Context) -> dict:
    n, hw = (2, (48, 64)) if ctx.quick else (4, (683, 1024))
    src, out = ctx.work / "segment_in", ctx.work / "segment_out"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(make_scene(np.random.default_rng(100 + i), hw).image).save(src / f"img{i}.png")
    model = ctx.model_path
    if model is None:  # check 4 did not run or failed: untrained weights still exercise the path
        model = ctx.work / "untrained.pt"
        torch.manual_seed(0)
        save_model(build_model("b0" if ctx.quick else "l0"), model)
    start = time.perf_counter()
    proc = _run([sys.executable, str(ROOT / "scripts" / "segment_images.py"), "--features", str(model), "--input",
                 str(src), "--output", str(out), "--levels", "10,50"], 120 if ctx.quick else 240,
                ctx.device.type == "cpu")
    wall = time.perf_counter() - start
    done = sorted(out.glob("*.npz"), key=lambda p: p.stat().st_mtime)
    ok = proc.returncode == 0 and len(done) == n and all({"ucm", "labels_10", "labels_50"} <= set(np.load(p).files)
                                                            for p in done)
    per_image = (done[-1].stat().st_mtime - done[0].stat().st_mtime) / (n - 1) if len(done) == n else float("nan")
    return {"passed": ok, "images": n, "size": list(hw), "model": str(model), "s_per_image": per_image,
            "wall_s": wall, "stderr_tail": proc.stderr[-2000:] if not ok else "",
            "summary": f"{n} images {hw[1]}x{hw[0]}: {per_image:.2f} s/image (process wall {wall:.1f} s)"}


CHECKS = {"loss": check_loss, "model": check_model, "benchmark": check_benchmark, "training": check_training,
          "segment": check_segment, "options": check_options}
DEFAULT_CHECKS = ("loss", "model", "benchmark", "training", "segment")


def run_check(name: str, ctx: Context) -> dict:
    """One check; an exception is recorded (traceback) and marks it failed, the others still run."""
    print(f"\n--- check {name} (budget {BUDGET_S[name]} s) ---", flush=True)
    start = time.perf_counter()
    try:
        res = CHECKS[name](ctx)
    except Exception:
        res = {"passed": False, "error": traceback.format_exc(), "summary": "raised (see error)"}
        print(res["error"], file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    return {"name": name, **res, "passed": bool(res["passed"]), "seconds": seconds, "budget_s": BUDGET_S[name],
            "over_budget": seconds > BUDGET_S[name]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes (b0, 64^2): the code path in about a minute")
    p.add_argument("--output", required=True, help="folder for gpu_check.json and the other small results")
    p.add_argument("--work", help="scratch folder to keep (shards, the training run); default: temporary")
    p.add_argument("--checks", default=",".join(DEFAULT_CHECKS),
                   help=f"comma-separated, from {','.join(CHECKS)} (default: all but options)")
    a = p.parse_args(argv)
    names = [c for c in a.checks.split(",") if c]
    unknown = [c for c in names if c not in CHECKS]
    if unknown or not names:
        print(f"gpu_check.py: error: --checks {a.checks!r}: unknown {unknown}; choose from {list(CHECKS)}",
              file=sys.stderr)
        return 2
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: error: --device cuda but torch sees no CUDA device (use --device cpu --quick to check "
              "the code path on CPU)", file=sys.stderr)
        return 2
    output = Path(a.output)
    output.mkdir(parents=True, exist_ok=True)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="featlib_gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(torch.device(a.device), a.quick, work, output)
    start = time.perf_counter()
    try:
        results = [run_check(name, ctx) for name in names]
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": a.device, "quick": a.quick,
           "device_name": torch.cuda.get_device_name() if a.device == "cuda" else "cpu", "cpus": os.cpu_count()}
    report = {"passed": all(r["passed"] for r in results), "seconds": time.perf_counter() - start,
              "environment": env, "checks": results}
    (output / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\n=== gpu_check: {env['device_name']}, torch {env['torch']}, quick={a.quick}, "
          f"{report['seconds']:.0f} s ===")
    print(f"{'check':10s} {'result':6s} {'seconds':>13s}  summary")
    for r in results:
        secs = f"{r['seconds']:.0f}/{r['budget_s']}" + ("!" if r["over_budget"] else "")
        print(f"{r['name']:10s} {'PASS' if r['passed'] else 'FAIL':6s} {secs:>13s}  {r['summary']}")
    print(f"JSON: {output / 'gpu_check.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
