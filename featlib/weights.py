"""Strict loading of official EfficientViT-SAM image-encoder backbones into a FeatureNet.

Official checkpoints (``efficientvit_sam_l0.pt`` / l1 / l2, or the 2023 ``l0.pt``) are a plain state_dict or
``{"state_dict": ...}`` whose image-encoder backbone keys read ``image_encoder.backbone.stages.{s}.op_list.{j}...``.
kornia's EfficientViT-L backbones use the same names below ``backbone.``, so loading is a prefix strip plus a strict
name-and-shape check: a partial load would silently train from a half-random backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

PREFIX = "image_encoder.backbone."
# The XL image encoders use a backbone kornia does not build.
UNSUPPORTED = {"xl0", "xl1"}
SAM_NORM_EPS = 1e-6


def _backbone_of(model: nn.Module) -> nn.Module:
    return model.backbone if hasattr(model, "backbone") else model


def set_norm_eps(module: nn.Module, eps: float = SAM_NORM_EPS) -> None:
    """Set eps of every BatchNorm/LayerNorm in ``module`` (EfficientViT-SAM runs its encoder with eps 1e-6)."""
    for m in module.modules():
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
            m.eps = eps


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load an official checkpoint safely (``weights_only=True``) and unwrap ``{"state_dict": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientViT-SAM checkpoint not found: {path}")
    name = path.stem.lower()
    for v in UNSUPPORTED:
        if name.endswith(v):
            raise ValueError(f"{path.name}: EfficientViT-SAM-{v.upper()} uses a backbone kornia cannot build; "
                             f"use an l0/l1/l2 checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip ...
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state_dict (or {{'state_dict': ...}}) of tensors")
    return obj


def backbone_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys under ``image_encoder.backbone.`` with the prefix stripped."""
    return {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}


def load_efficientvit_sam(model: nn.Module, path: str | Path, *, max_report: int = 10) -> nn.Module:
    """Copy an official EfficientViT-SAM image-encoder backbone into ``model.backbone`` (strict) and set eps 1e-6.

    Every backbone key must exist on both sides with the same shape; otherwise ``ValueError`` lists the first
    ``max_report`` mismatches (missing, unexpected, shape). Returns ``model``.
    """
    state = backbone_state_dict(read_checkpoint(path))
    if not state:
        raise ValueError(f"{path}: no '{PREFIX}*' keys — not an EfficientViT-SAM checkpoint")
    target = _backbone_of(model)
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        variant = getattr(model, "backbone_name", "?")
        lines = [f"{path}: checkpoint does not match backbone {variant!r} "
                 f"({len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} shape mismatches); "
                 f"is it another variant (e.g. an l1 file into l0)?"]
        lines += [f"  missing: {k}" for k in missing[:max_report]]
        lines += [f"  unexpected: {k}" for k in unexpected[:max_report]]
        lines += [f"  shape: {s}" for s in shapes[:max_report]]
        raise ValueError("\n".join(lines))
    target.load_state_dict(state, strict=True)
    set_norm_eps(target)
    return model
