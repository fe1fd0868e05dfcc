"""Training steps: images/s, where a step's time goes, peak memory and the largest batch that fits.

    python scripts/benchmark.py train [--config CFG] [--batch-sizes 1,2,4,8] [--steps 5]
        [--warmup 2] [--device cpu|cuda] [--max-batch 64] [--workers N] [--shards 'GLOB'] [--no-loader]
        [--output train.json] [--quick] [key=value ...]

What runs: full training steps of the config's FeatureNet + MultiStrideLoss + AdamW, built and stepped by the
training loop's own code (``featlib.train.prepare_training`` / ``train_step``: accelerate, the config's
mixed precision, clipping, the LR schedule, ``channels_last`` / ``compile`` if set), at the config's image_size
with max_instances masks per image. ``key=value`` overrides any config key, e.g. ``compile=true`` or
``channels_last=true``: run with and without to decide whether to turn them on. The default config is the one
that device trains: configs/sa1b_l0.yaml on CUDA (and in --quick sizes), configs/demo.yaml on CPU (l0 at 1024^2
would need ~3 GB of RAM per image and minutes per step there, so ``make benchmark`` stays usable).

Rows, each measured after ``--warmup`` steps:
- one per batch size, fed a fixed ``featlib.data.prepare.synthetic_batch`` (no data loading): img/s, ms per
  step and its split into forward / loss / backward / optimizer (CUDA events on GPU, perf_counter on CPU, where
  every op is synchronous), peak memory. The ratio column is img/s relative to the first batch size.
- the loader row: the same steps fed by ``featlib.data.loaders.InfiniteLoader`` over prepared shards
  (``--shards``, else synthetic scenes written by ``featlib.data.prepare.write_prepared_scenes``) with the
  config's num_workers: img/s relative to the synthetic row of its batch size, and the data-wait share (time in
  ``next(loader)`` / wall time). Synthetic scenes carry ~5-15 masks, SA-1B's ~100: on real shards decoding
  costs more (scripts/benchmark.py data measures it).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors: weights, grads, AdamW moments, activations;
the caching allocator's reserve is reported beside it), reset per row. On CPU the process's peak resident set
(VmHWM, reset per row through /proc/self/clear_refs; where that is refused, ru_maxrss since process start): the
whole process, model and Python included, DataLoader workers not. Largest batch: the largest that ran; with
``--max-batch`` (CUDA only) the largest fitting size keeps doubling until an out-of-memory error or the cap. An
out-of-memory error ends the row (reported, not raised); larger sizes are not tried.

``--quick``: b0, 64^2, 8 masks, batch sizes 1 and 2 (unless given), 1 warm-up + 2 steps, one loader worker, CPU
unless ``--device cuda`` (the tests; scripts/gpu_check.py --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import glob
import json
import math
import os
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from accelerate import Accelerator

from featlib.config import load_config
from featlib.data.loaders import InfiniteLoader, build_dataset
from featlib.data.prepare import synthetic_batch, write_prepared_scenes
from featlib.train import prepare_training, train_step

ROOT = Path(__file__).resolve().parents[2]
PHASES = ("forward", "loss", "backward", "optimizer")
QUICK = ["backbone=b0", "image_size=64", "max_instances=8"]


class PhaseTimer:
    """``with timer("forward"): ...`` sums each phase's time: CUDA events on GPU (read once, in ``totals``),
    perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)
        self.events: list = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.events.append((name, start, end))
        else:
            t = time.perf_counter()
            yield
            self.seconds[name] += time.perf_counter() - t

    def totals(self) -> dict[str, float]:
        if self.events:
            torch.cuda.synchronize()
            for name, start, end in self.events:
                self.seconds[name] += start.elapsed_time(end) / 1000
            self.events = []
        return dict(self.seconds)


class PeakMemory:
    """Peak memory of one row in MB (see the module docstring for what each device measures)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.kind = "max_memory_allocated" if self.cuda else "peak RSS (VmHWM)"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            self.kind = "ru_maxrss since process start (VmHWM reset refused)"

    def read(self) -> dict[str, float]:
        if self.cuda:
            return {"peak_mb": torch.cuda.max_memory_allocated() / 2**20,
                    "reserved_mb": torch.cuda.max_memory_reserved() / 2**20}
        if "VmHWM" in self.kind:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return {"peak_mb": int(line.split()[1]) / 1024}
        return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(accelerator, t, cfg, next_batch, warmup: int, steps: int, memory: PeakMemory) -> dict:
    """``warmup`` then ``steps`` training steps on batches from ``next_batch()``: throughput, phases, memory."""
    device = accelerator.device
    memory.reset()
    for _ in range(warmup):
        train_step(accelerator, t, next_batch(), cfg)
    _sync(device)
    timer, data_wait, images, losses = PhaseTimer(device), 0.0, 0, []
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next_batch()
        data_wait += time.perf_counter() - t0
        out, _ = train_step(accelerator, t, batch, cfg, phase=timer)
        images += batch["image"].shape[0]
        losses.append(out.logs["loss/total"])
    _sync(device)
    wall = time.perf_counter() - start
    phases = timer.totals()
    return {"img_per_s": images / wall, "step_ms": wall / steps * 1e3,
            "phase_ms": {p: phases.get(p, 0.0) / steps * 1e3 for p in PHASES},
            "data_wait_share": data_wait / wall, "loss_finite": all(math.isfinite(v) for v in losses),
            **memory.read()}


def try_measure(accelerator, t, cfg, next_batch, warmup, steps, memory) -> dict:
    """``measure``, with an out-of-memory error reported as {"oom": True, "error": ...} and its memory freed."""
    error = None
    try:
        return measure(accelerator, t, cfg, next_batch, warmup, steps, memory)
    except (RuntimeError, MemoryError) as e:
        if not (is_oom(e) or isinstance(e, MemoryError)):
            raise
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    # outside the except block: the traceback (and the activations its frames hold) is gone
    t.opt.zero_grad(set_to_none=True)
    gc.collect()
    if accelerator.device.type == "cuda":
        torch.cuda.empty_cache()
    return {"oom": True, "error": error}


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--batch-sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or any(b < 1 for b in sizes):
        raise ValueError(f"--batch-sizes needs positive batch sizes, got {text!r}")
    return sorted(set(sizes))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmark.py train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="default: configs/sa1b_l0.yaml on CUDA and with --quick, else configs/demo.yaml")
    p.add_argument("--batch-sizes", help="comma-separated (default 1,2,4,8; --quick: 1,2)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per row")
    p.add_argument("--warmup", type=int, help="untimed steps before each row (default 2; 8 with compile=true)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available (--quick: cpu)")
    p.add_argument("--max-batch", type=int, default=0, help="CUDA: keep doubling the batch up to this until OOM")
    p.add_argument("--workers", type=int, default=None, help="loader row's DataLoader workers (default: config)")
    p.add_argument("--shards", help="prepared shards (glob) for the loader row; default: synthetic ones")
    p.add_argument("--no-loader", action="store_true", help="skip the loader row")
    p.add_argument("--output", help="write the results as JSON here")
    p.add_argument("--quick", action="store_true")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = p.parse_args(argv)
    if a.quick:
        a.batch_sizes, a.steps, a.device = a.batch_sizes or "1,2", 2, a.device or "cpu"
        a.warmup = 1 if a.warmup is None else a.warmup
        a.workers = 1 if a.workers is None else a.workers
        a.overrides = QUICK + a.overrides
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.config is None:
        a.config = str(ROOT / "configs" / ("sa1b_l0.yaml" if a.device == "cuda" or a.quick else "demo.yaml"))
    a.batch_sizes = _parse_sizes(a.batch_sizes or "1,2,4,8")
    if a.steps < 1 or (a.warmup is not None and a.warmup < 0):
        raise ValueError(f"--steps must be >= 1 and --warmup >= 0, got {a.steps} and {a.warmup}")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    if a.max_batch and a.device != "cuda":
        raise ValueError("--max-batch needs --device cuda: on CPU running out of memory is not an error that can "
                         "be caught (the process is killed)")
    if a.workers is not None and a.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {a.workers}")
    return a


def _loader_shards(a, cfg, batch: int, workers: int, warmup: int, tmp: str) -> str:
    """The loader row's shard glob: ``--shards``, or synthetic prepared shards (one per worker, as
    ``SA1BShards.check_split`` requires) with enough samples that no pass over them repeats during the row."""
    if a.shards:
        if not glob.glob(a.shards):
            raise ValueError(f"--shards {a.shards!r} matches no file")
        return a.shards
    consumers = max(1, workers)  # each worker batches its own shards' samples
    per_consumer = math.ceil((warmup + a.steps + 1) / consumers) * batch
    unique = min(per_consumer * consumers, 4 * consumers)
    copies = math.ceil(per_consumer * consumers / unique)
    write_prepared_scenes(tmp, unique, size=cfg.image_size, shards=consumers, copies=copies, seed=cfg.seed,
                          workers=min(os.cpu_count() or 1, unique))
    return str(Path(tmp) / "sa_*.tar")


def run(a: argparse.Namespace) -> dict:
    """The benchmark for parsed arguments: {"setup": ..., "rows": [...], "largest_fitting_batch", ...}."""
    cfg = load_config(a.config, ["data=synthetic", *a.overrides])  # the loader row sets its own data
    # a compiled model compiles its backward and recompiles for each new batch size in its first steps; on CPU (b0,
    # inductor) steps stayed ~5x slow for 5 steps after the first
    warmup = a.warmup if a.warmup is not None else (8 if cfg.compile else 2)
    accelerator = Accelerator(cpu=a.device == "cpu", mixed_precision=cfg.mixed_precision)
    device = accelerator.device
    t = prepare_training(cfg, accelerator)
    t.model.train()
    memory = PeakMemory(device)
    setup = {"backbone": cfg.backbone, "image_size": cfg.image_size, "masks": cfg.max_instances,
             "mixed_precision": cfg.mixed_precision, "device": str(device),
             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             "threads": torch.get_num_threads(), "warmup": warmup, "steps": a.steps,
             "channels_last": cfg.channels_last, "compile": cfg.compile, "memory": memory.kind,
             "torch": torch.__version__}
    rows, fitting, oom_at = [], [], None
    sizes = list(a.batch_sizes)
    while sizes:
        b = sizes.pop(0)
        batch = synthetic_batch(b, cfg.image_size, cfg.max_instances or 64, seed=cfg.seed)
        row = {"batch_size": b, "source": "synthetic",
               **try_measure(accelerator, t, cfg, lambda batch=batch: batch, warmup, a.steps, memory)}
        rows.append(row)
        del batch
        if row.get("oom"):
            oom_at = b
            break
        fitting.append(b)
        if not sizes and a.max_batch and 2 * b <= a.max_batch:
            sizes.append(2 * b)
    base = rows[0].get("img_per_s")
    for row in rows:
        if base and "img_per_s" in row:
            row["vs_first"] = row["img_per_s"] / base
    loader_row = None
    if not a.no_loader and fitting:
        b = cfg.batch_size if cfg.batch_size in fitting else fitting[-1]
        workers = cfg.num_workers if a.workers is None else a.workers
        with tempfile.TemporaryDirectory() as tmp:
            lcfg = dataclasses.replace(cfg, data=_loader_shards(a, cfg, b, workers, warmup, tmp), num_workers=workers,
                                       batch_size=b)
            loader = InfiniteLoader(build_dataset(lcfg), lcfg, 0, 1)
            loader_row = {"batch_size": b, "source": f"loader ({workers} workers)", "workers": workers,
                          **try_measure(accelerator, t, lcfg, lambda: next(loader), warmup, a.steps, memory)}
            del loader
        synth = next(r for r in rows if r["batch_size"] == b)
        if "img_per_s" in loader_row:
            loader_row["vs_synthetic"] = loader_row["img_per_s"] / synth["img_per_s"]
        rows.append(loader_row)
    return {"setup": setup, "rows": rows, "largest_fitting_batch": max(fitting) if fitting else None,
            "first_oom_batch": oom_at}


def print_table(result: dict) -> None:
    s = result["setup"]
    print(f"{s['backbone']} at {s['image_size']}^2, K={s['masks']} masks, mixed_precision={s['mixed_precision']}, "
          f"{s['device_name']} ({s['threads']} threads), channels_last={s['channels_last']}, "
          f"compile={s['compile']}; {s['warmup']} warm-up + {s['steps']} timed steps per row; memory = {s['memory']}")
    head = f"{'batch':>5s} {'source':22s} {'img/s':>8s} {'ratio':>13s} {'step ms':>9s}"
    print(head + "".join(f" {p:>9s}" for p in PHASES) + f" {'data wait':>9s} {'peak MB':>9s}")
    for r in result["rows"]:
        if r.get("oom"):
            print(f"{r['batch_size']:5d} {r['source']:22s} out of memory: {r['error']}")
            continue
        ratio = (f"{r['vs_first']:.2f}x vs b{result['rows'][0]['batch_size']}" if "vs_first" in r
                 else f"{r['vs_synthetic']:.2f}x vs synth")
        line = f"{r['batch_size']:5d} {r['source']:22s} {r['img_per_s']:8.2f} {ratio:>13s} {r['step_ms']:9.1f}"
        line += "".join(f" {r['phase_ms'][p]:9.1f}" for p in PHASES)
        print(line + f" {100 * r['data_wait_share']:8.1f}% {r['peak_mb']:9.0f}", flush=True)
    oom = result["first_oom_batch"]
    print(f"largest batch that fits: {result['largest_fitting_batch']}"
          + (f" (batch {oom}: out of memory)" if oom else " (no out-of-memory error up to it)"))


def main(argv: list[str]) -> None:
    a = parse_args(argv)
    result = run(a)
    print_table(result)
    if a.output:
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        Path(a.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
