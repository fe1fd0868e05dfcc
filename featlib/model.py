"""FeatureNet: an EfficientViT backbone followed by MBConv decode stages that emit multi-stride "colour" maps.

Every decode stage at stride s carries ``base_channels * s**2`` sigmoid channels (its *colours*) followed by free
*register* channels. Pixel-shuffling the colours of stride s by s gives ``base_channels`` channels at full
resolution, so every stride holds the same number of values per image.

    images [B, 3, H, W] in [0, 1]
      -> normalise (EfficientViT-SAM mean/std), pad to a multiple of 32
      -> backbone stages at strides 2, 4, 8, 16, 32                      (kornia's EfficientViT, official key names)
      -> decode: for s = 16, 8, 4, 2, 1: upsample x2, concat skip at s (the image itself at s = 1),
                 1x1 fuse conv, MBConv blocks; first base*s^2 channels -> sigmoid -> output[s]
      -> crop back: output[s] is [B, base*s^2, ceil(H/s), ceil(W/s)]

With ``colour_skip=True`` (base_channels 3) each stride's colours start from the image's own colour: stride s emits
sigmoid(logit(unshuffle_s(Lab)) + g_s * x_s), where unshuffle_s(Lab) is the image's CIE Lab (scaled to [0, 1] as
``featlib.distances.lab_features``) pixel-unshuffled by s, i.e. exactly 3 s^2 channels that pixel-shuffle back to
the Lab image, and g_s is a learned gate (init 0.1). Why: colour is a strong baseline for partitions; a network
trained from scratch on a few hundred photos starts *at* it and learns where to depart from it (flatten a texture,
separate two similar colours), instead of first relearning colour from random weights.

The backbone is built by kornia (never copied here); ``featlib.weights`` loads official EfficientViT-SAM weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from featlib.weights import load_efficientvit_sam

# EfficientViT-SAM normalises 0..255 images with SAM's pixel statistics.
PIXEL_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
PIXEL_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)
BACKBONE_MULTIPLE = 32  # five stride-2 stages
MIN_SIZE = 32


def _kornia_backbones() -> dict[str, Callable[[], nn.Module]]:
    # kornia is imported on use here and in DecodeStage: ~2.4 s that `import featlib.model` (for BACKBONES, say) skips
    from kornia.models.efficient_vit import backbone as kb

    names = ["b0", "b1", "b2", "b3", "l0", "l1", "l2", "l3"]
    return {n: getattr(kb, f"efficientvit_backbone_{n}") for n in names}


BACKBONES = ("b0", "b1", "b2", "b3", "l0", "l1", "l2", "l3")

# Registers per stride (channels beyond the colours) and MBConv expand ratios. Coarse stages already carry many
# colour channels (768 at /16 for base 3) so they expand little; the /1 and /2 stages run on the largest maps and
# dominate the decoder's cost (memory-bound), so they stay narrow. With these, the decoder adds ~0.3-0.4x the l0
# backbone's time at 512^2 on CPU (scripts/benchmark.py model). Changing a default changes new models only: model
# files record every build argument (FeatureNet.build_args), and files from before they did load with the values of
# their time, frozen in featlib.checkpoint.LEGACY_MODEL_ARGS.
DEFAULT_REGISTERS = {1: 5, 2: 12, 4: 32, 8: 64, 16: 64}
DEFAULT_DEPTHS = {1: 1, 2: 1, 4: 1, 8: 1, 16: 1}
DEFAULT_EXPAND = {1: 2, 2: 2, 4: 4, 8: 2, 16: 1}


def _per_stride(name: str, defaults: dict, given: dict | None, cast) -> dict:
    """``defaults`` updated by ``given`` ({stride: value}; string keys, as JSON gives them, are read as ints)."""
    given = {int(s): v for s, v in (given or {}).items()}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: {unknown} are not decode strides {tuple(defaults)}")
    return {s: cast(v) for s, v in {**defaults, **given}.items()}


class DecodeStage(nn.Module):
    """Upsample x2, fuse a skip feature, refine with MBConv blocks; emit ``colours`` sigmoid channels.

    Shapes: x [B, C_in, h, w], skip [B, C_skip, 2h, 2w] -> (state [B, width, 2h, 2w], colours [B, colours, 2h, 2w]).
    """

    def __init__(self, in_channels: int, skip_channels: int, colours: int, width: int, depth: int, expand: float,
                 gated: bool = False):
        super().__init__()
        from kornia.models.efficient_vit.nn.ops import MBConv  # imported on use (see _kornia_backbones)

        if width < colours:
            raise ValueError(f"decode stage width {width} < its {colours} colour channels")
        self.colours = colours
        # only with a prior (FeatureNet's colour_skip): an unused parameter would stall DDP's gradient reduction
        self.gate = nn.Parameter(torch.tensor(0.1)) if gated else None
        # fuse(concat(up(x), skip)) == up(fuse_x(x)) + fuse_skip(skip) for a 1x1 conv and a linear upsampler:
        # projecting x *before* upsampling saves 4x the work on the largest maps.
        self.fuse_x = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.fuse_skip = nn.Conv2d(skip_channels, width, kernel_size=1)
        # LayerNorm2d, not BatchNorm: training batches are small per GPU and maps at /16 can be 2x2 in tests,
        # where batch statistics are meaningless.
        self.blocks = nn.ModuleList(
            MBConv(width, width, expand_ratio=expand, use_bias=(True, True, False),
                   norm=(None, None, "ln2d"), act_func=("hswish", "hswish", None))
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor, prior: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``prior`` [B, colours, 2h, 2w]: logits the colours start from (``colour_skip``), added to gate * x."""
        x = self.fuse_skip(skip) + F.interpolate(self.fuse_x(x), size=skip.shape[-2:], mode="bilinear",
                                                 align_corners=False)
        for block in self.blocks:
            x = x + block(x)
        logits = x[:, : self.colours]
        if prior is not None:
            if self.gate is None:
                raise ValueError("a colour prior needs a stage built with gated=True")
            logits = prior + self.gate * logits
        return x, torch.sigmoid(logits)


class FeatureNet(nn.Module):
    """Multi-stride mask-aware features.

    Args:
        backbone: kornia EfficientViT variant name (b0-b3, l0-l3).
        strides: output strides, a subset of (1, 2, 4, 8, 16).
        base_channels: colour channels per full-resolution pixel; stride s emits base * s^2 channels.
        registers: extra (non-output) channels per decode stride.
        depths: MBConv blocks per decode stride (default 1 everywhere).
        expand: MBConv expand ratio per decode stride.
        colour_skip: start every stride's colours from the image's Lab colour (see the module docstring).

    ``forward(images [B, 3, H, W] float in [0, 1]) -> {s: [B, base*s^2, ceil(H/s), ceil(W/s)]}`` in [0, 1].
    ``build_args()``: every argument above as resolved (defaults filled in), what model files store.
    """

    def __init__(
        self,
        backbone: str = "l0",
        strides: Sequence[int] = (1, 2, 4, 8, 16),
        base_channels: int = 3,
        registers: dict[int, int] | None = None,
        depths: dict[int, int] | None = None,
        expand: dict[int, float] | None = None,
        colour_skip: bool = False,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
        strides = tuple(sorted({int(s) for s in strides}))
        if not strides or any(s not in (1, 2, 4, 8, 16) for s in strides):
            raise ValueError(f"strides must be a non-empty subset of (1, 2, 4, 8, 16), got {strides}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        self.backbone_name = backbone
        self.strides = strides
        self.base_channels = int(base_channels)
        if colour_skip and self.base_channels != 3:
            raise ValueError(f"colour_skip needs base_channels=3 (Lab has 3 channels), got {base_channels}")
        self.colour_skip = bool(colour_skip)
        self.backbone = _kornia_backbones()[backbone]()
        widths_bb = list(self.backbone.width_list)  # channels at strides 2, 4, 8, 16, 32
        self.registers = registers = _per_stride("registers", DEFAULT_REGISTERS, registers, int)
        self.depths = depths = _per_stride("depths", DEFAULT_DEPTHS, depths, int)
        self.expand = expand = _per_stride("expand", DEFAULT_EXPAND, expand, float)

        # Decode from /32 down to the finest requested stride; every stride in between is decoded too
        # (its colours are used only if requested).
        self.decode_strides = tuple(s for s in (16, 8, 4, 2, 1) if s >= min(strides))
        skip_ch = {16: widths_bb[3], 8: widths_bb[2], 4: widths_bb[1], 2: widths_bb[0], 1: 3}
        stages, prev = {}, widths_bb[4]
        for s in self.decode_strides:
            colours = self.base_channels * s * s
            width = colours + int(registers[s])
            stages[str(s)] = DecodeStage(prev, skip_ch[s], colours, width, int(depths[s]), float(expand[s]),
                                         gated=self.colour_skip)
            prev = width
        self.decode = nn.ModuleDict(stages)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def check_images(images: torch.Tensor, finite: bool = True) -> None:
        """Raise ValueError unless ``images`` is a float tensor [B, 3, H, W] with H, W >= 32, finite unless
        ``finite=False`` (that check reads a value on the host: a device sync)."""
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(f"images must have shape [B, 3, H, W], got rank {images.ndim} {tuple(images.shape)}")
        if images.shape[1] != 3:
            raise ValueError(f"images must have 3 channels (RGB), got {images.shape[1]} in {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 1], got dtype {images.dtype} (divide uint8 by 255)")
        if min(images.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"images must be at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(images.shape[-2:])}")
        if finite and not torch.isfinite(images).all():
            raise ValueError("images contain NaN or inf")

    def forward(self, images: torch.Tensor, check_finite: bool = True) -> dict[int, torch.Tensor]:
        """images float [B, 3, H, W] in [0, 1] -> {s: [B, base*s^2, ceil(H/s), ceil(W/s)]}. ``check_finite=False``
        skips the NaN/inf check (the training loop's images come from uint8 and are finite by construction)."""
        self.check_images(images, finite=check_finite)
        h, w = images.shape[-2:]
        x = (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)
        ph, pw = (-h) % BACKBONE_MULTIPLE, (-w) % BACKBONE_MULTIPLE
        if ph or pw:
            # Replicate, not zeros: a zero border is a strong false edge the decoder would learn to colour.
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        feats = self.backbone(x)
        skips = {1: x, 2: feats["stage0"], 4: feats["stage1"], 8: feats["stage2"], 16: feats["stage3"]}
        lab = self._lab_logits(images, pw, ph) if self.colour_skip else None
        state, out = feats["stage_final"], {}
        for s in self.decode_strides:
            prior = None if lab is None else (F.pixel_unshuffle(lab, s) if s > 1 else lab)
            state, colours = self.decode[str(s)](state, skips[s], prior)
            if s in self.strides:
                out[s] = colours[..., : math.ceil(h / s), : math.ceil(w / s)]
        return dict(sorted(out.items()))

    @staticmethod
    def _lab_logits(images: torch.Tensor, pw: int, ph: int) -> torch.Tensor:
        """logit of the (padded) image's Lab scaled to [0, 1]: [B, 3, H', W'], clamped to [0.02, 0.98] first."""
        from kornia.color import rgb_to_lab  # imported on use (see _kornia_backbones)

        lab = rgb_to_lab(images.float().clamp(0, 1))
        lab = torch.cat([lab[:, :1] / 100, (lab[:, 1:] + 128) / 255], 1).clamp(0.02, 0.98)
        if ph or pw:
            lab = F.pad(lab, (0, pw, 0, ph), mode="replicate")
        return torch.logit(lab).to(images.dtype)

    def channels(self, stride: int) -> int:
        """Colour channels at ``stride``: base_channels * stride**2."""
        return self.base_channels * stride * stride

    def build_args(self) -> dict:
        """Every FeatureNet argument this model was built with, defaults filled in, as plain values (str, int, float,
        bool, lists, dicts keyed by int stride) that ``torch.load(weights_only=True)`` reads back:
        ``FeatureNet(**m.build_args())`` has the same architecture (and parameter names and shapes) as ``m``."""
        return {"backbone": self.backbone_name, "strides": list(self.strides), "base_channels": self.base_channels,
                "registers": dict(self.registers), "depths": dict(self.depths), "expand": dict(self.expand),
                "colour_skip": self.colour_skip}


def build_model(
    backbone: str = "l0",
    strides: Sequence[int] = (1, 2, 4, 8, 16),
    base_channels: int = 3,
    pretrained: str | None = None,
    **widths,
) -> FeatureNet:
    """Build a FeatureNet; ``pretrained`` is a path to an official EfficientViT-SAM checkpoint (backbone only).

    ``widths`` are passed to FeatureNet (``registers``, ``depths``, ``expand``: dicts keyed by stride).
    """
    model = FeatureNet(backbone, strides=strides, base_channels=base_channels, **widths)
    if pretrained is not None:
        load_efficientvit_sam(model, pretrained)
    return model


def to_full_resolution(features: dict[int, torch.Tensor], base_channels: int = 3,
                       size: tuple[int, int] | None = None) -> dict[int, torch.Tensor]:
    """Pixel-shuffle every stride to full resolution: {s: [B, base*s^2, h, w]} -> {s: [B, base, h*s, w*s]}.

    ``size=(H, W)`` crops the result to the image size (ceil-sized maps overhang by < s pixels).
    """
    out = {}
    for s, f in features.items():
        if f.ndim != 4:
            raise ValueError(f"stride {s}: expected [B, C, h, w], got shape {tuple(f.shape)}")
        if f.shape[1] != base_channels * s * s:
            raise ValueError(f"stride {s}: expected {base_channels * s * s} channels (base {base_channels} x s^2), "
                             f"got {f.shape[1]}")
        full = F.pixel_shuffle(f, s) if s > 1 else f
        out[s] = full[..., : size[0], : size[1]] if size is not None else full
    return out
