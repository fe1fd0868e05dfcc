"""Checkpoints and model files: atomic writes, ``weights_only=True`` loads, exact resume.

    save_checkpoint(accelerator, "runs/x", step, {"data": loader.state_dict()}, keep=2)   # checkpoints/step_000100/
    step = restore_checkpoint(accelerator, resolve_resume("latest", "runs/x"), loader)
    save_model(model, "runs/x/model.pt"); model = load_model_checkpoint("runs/x")         # FeatureNet, eval mode
    export_model(model, "featlib/assets/bsds500-b0.pt", card={...})   # fp16 weights to ship; loads the same way

A training checkpoint (``checkpoints/step_{step:06d}/``) is ``accelerator.save_state`` (weights, AdamW moments and
step counts, the registered LR scheduler, every process's RNG states) plus ``trainer_state.json`` (step, data
position). It is written under a temporary name and renamed, so a kill never leaves a half checkpoint named
``step_*``. Restore is bit-exact (tests/test_train.py compares every tensor after ``restore_checkpoint`` with the
state at save time), so a resumed run repeats the straight run's arithmetic bit for bit.

``model.pt`` holds the final weights and the model's build arguments only: a plain dict of tensors and numbers,
so ``torch.load(..., weights_only=True)`` reads it without unpickling code. The build arguments are all of
FeatureNet's (``FeatureNet.build_args``: backbone, strides, base_channels, registers, depths, expand, colour_skip).
Files written before registers / depths / expand were recorded (the shipped ``featlib/assets`` models among them) lack
those keys; they load with ``LEGACY_MODEL_ARGS``, the defaults of the time frozen as literals, so changing a
FeatureNet default later never changes how an old file builds. A key this version does not know is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from featlib.config import ConfigError
from featlib.model import FeatureNet, build_model

# What a model file without these keys was built with: FeatureNet's defaults before files recorded them (2026-12).
# Literals on purpose, never model.DEFAULT_*: those may change, files already written do not.
LEGACY_MODEL_ARGS = {"registers": {1: 5, 2: 12, 4: 32, 8: 64, 16: 64}, "depths": {1: 1, 2: 1, 4: 1, 8: 1, 16: 1},
                     "expand": {1: 2, 2: 2, 4: 4, 8: 2, 16: 1}, "colour_skip": False}
MODEL_ARGS = ("backbone", "strides", "base_channels", "registers", "depths", "expand", "colour_skip")


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
    payload = {"model": model.build_args(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def export_model(model: FeatureNet, path: str | Path, card: dict | None = None, dtype=torch.float16) -> int:
    """Weights to ship: ``save_model``'s format with floating tensors cast to ``dtype`` (fp16 halves the file; the
    features move by ~1e-3, far below the hinge margins) and a ``card`` of plain values (data, config, steps, scores)
    that ``model_card`` reads back. Written atomically; returns the file size in bytes."""
    path = Path(path)
    payload = {"model": model.build_args(),
               "state_dict": {k: (v.detach().cpu().to(dtype) if v.is_floating_point() else v.detach().cpu())
                              for k, v in model.state_dict().items()},
               "card": json.loads(json.dumps(card or {}))}  # plain JSON values only: weights_only can read them
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path.stat().st_size


def model_card(path: str | Path) -> dict:
    """The ``card`` dict stored by ``export_model`` ({} for a plain ``model.pt``); ``weights_only=True``."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return dict(payload.get("card", {})) if isinstance(payload, dict) else {}


def load_model_checkpoint(path: str | Path, map_location: str = "cpu") -> FeatureNet:
    """A FeatureNet from ``model.pt`` (or a run directory containing it); ``weights_only=True``. Build arguments the
    file lacks (files from before they were recorded) come from ``LEGACY_MODEL_ARGS``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "model" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path}: not a featlib model checkpoint (expected keys 'model' and 'state_dict')")
    m = {**LEGACY_MODEL_ARGS, **payload["model"]}
    unknown = sorted(set(m) - set(MODEL_ARGS))
    if unknown:
        raise ValueError(f"{path}: model arguments {unknown} are unknown to this featlib (written by a newer one?)")
    model = build_model(m["backbone"], strides=tuple(m["strides"]), base_channels=int(m["base_channels"]),
                        registers=m["registers"], depths=m["depths"], expand=m["expand"],
                        colour_skip=bool(m["colour_skip"]))
    model.load_state_dict(payload["state_dict"])  # copies into float32 parameters (exported files are fp16)
    return model.eval()
