"""Brightness MVP: the plan's first sanity check that the decode path can reproduce full-resolution detail.

Fit FeatureNet's stride-1 colours (sigmoid) to the luminance of a few bundled scikit-image photos, then report PSNR
on photos never fitted. All three stride-1 channels are fitted to the same luminance, so the prediction is a
grey image; PSNR is measured on their mean.

    history = fit_brightness(BrightnessConfig())     # the loop (notebook 01 and scripts/demo.py call this)
    fig = plot_brightness(history)                     # loss curve + predicted vs true
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from skimage import color, data, transform
from tqdm.auto import tqdm

from featlib.model import FeatureNet, build_model

TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TEST_PHOTOS = ("hubble_deep_field", "retina")  # real colour photos, never fitted


@dataclass
class BrightnessConfig:
    backbone: str = "b0"
    steps: int = 800
    batch_size: int = 8
    crop: int = 128
    lr: float = 3e-3
    max_side: int = 512  # photos are resized so their longest side is at most this
    seed: int = 0
    train_photos: tuple[str, ...] = TRAIN_PHOTOS
    test_photos: tuple[str, ...] = TEST_PHOTOS
    eval_every: int = 200

    @classmethod
    def smoke(cls) -> BrightnessConfig:
        """Same code path, seconds instead of minutes (CI)."""
        return cls(steps=4, batch_size=2, crop=64, max_side=128, eval_every=2)


@dataclass
class BrightnessHistory:
    config: BrightnessConfig
    model: FeatureNet
    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    psnr_train: list[float] = field(default_factory=list)
    psnr_test: list[float] = field(default_factory=list)
    seconds: float = 0.0


def load_photo(name: str, max_side: int) -> np.ndarray:
    """A bundled scikit-image photo as float32 [H, W, 3] in [0, 1], longest side <= max_side."""
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.float32) / 255.0
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        img = transform.resize(img, (round(img.shape[0] * scale), round(img.shape[1] * scale)), anti_aliasing=True)
    return img.astype(np.float32)


def luminance(img: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of [H, W, 3] in [0, 1] (scikit-image's rgb2gray) -> [H, W]."""
    return color.rgb2gray(img).astype(np.float32)


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((pred.astype(np.float64) - target) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@torch.no_grad()
def predict_brightness(model: FeatureNet, img: np.ndarray) -> np.ndarray:
    """[H, W, 3] photo -> predicted luminance [H, W] (mean of the stride-1 colours)."""
    model.eval()
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    return model(x)[1][0].mean(0).numpy()


def _random_crops(images: list[torch.Tensor], targets: list[torch.Tensor], n: int, crop: int, rng: np.random.Generator):
    xs, ys = [], []
    for _ in range(n):
        i = rng.integers(len(images))
        img, tgt = images[i], targets[i]
        h, w = img.shape[-2:]
        c = min(crop, h, w)
        y0, x0 = rng.integers(h - c + 1), rng.integers(w - c + 1)
        x, y = img[:, y0:y0 + c, x0:x0 + c], tgt[None, y0:y0 + c, x0:x0 + c]
        if rng.random() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def fit_brightness(config: BrightnessConfig | None = None, progress: bool = True) -> BrightnessHistory:
    """Fit the stride-1 head to luminance on random crops of ``config.train_photos``; evaluate PSNR periodically."""
    cfg = config or BrightnessConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train = [load_photo(n, cfg.max_side) for n in cfg.train_photos]
    test = [load_photo(n, cfg.max_side) for n in cfg.test_photos]
    images = [torch.from_numpy(p).permute(2, 0, 1).contiguous() for p in train]
    targets = [torch.from_numpy(luminance(p)) for p in train]
    model = build_model(cfg.backbone, strides=(1,))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    hist = BrightnessHistory(cfg, model)
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc="brightness", disable=not progress)
    for step in bar:
        model.train()
        x, y = _random_crops(images, targets, cfg.batch_size, cfg.crop, rng)
        pred = model(x)[1]
        loss = F.mse_loss(pred, y.expand_as(pred))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist.loss.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            hist.eval_steps.append(step)
            hist.psnr_train.append(float(np.mean([psnr(predict_brightness(model, p), luminance(p)) for p in train])))
            hist.psnr_test.append(float(np.mean([psnr(predict_brightness(model, p), luminance(p)) for p in test])))
            bar.set_postfix(loss=f"{loss.item():.2e}", psnr_unseen=f"{hist.psnr_test[-1]:.1f} dB")
    hist.seconds = time.perf_counter() - start
    return hist


def plot_brightness(hist: BrightnessHistory):
    """Figure: loss curve, PSNR curve, and for each unseen photo: photo | true luminance | predicted | |error|."""
    import matplotlib.pyplot as plt  # imported on use: 0.6 s that the fitting loop does not need

    cfg = hist.config
    photos = [load_photo(n, cfg.max_side) for n in cfg.test_photos]
    fig = plt.figure(figsize=(13, 3.2 * (1 + len(photos))))
    grid = fig.add_gridspec(1 + len(photos), 4)
    ax = fig.add_subplot(grid[0, :2])
    ax.semilogy(hist.loss)
    ax.set(xlabel="step", ylabel="MSE (train crops)", title=f"FeatureNet({cfg.backbone}) stride-1 head")
    ax = fig.add_subplot(grid[0, 2:])
    ax.plot(hist.eval_steps, hist.psnr_train, "o-", label="fitted photos")
    ax.plot(hist.eval_steps, hist.psnr_test, "s-", label="unseen photos")
    ax.axhline(28, color="grey", ls="--", lw=1, label="target 28 dB")
    ax.set(xlabel="step", ylabel="PSNR (dB)", title=f"{hist.seconds / 60:.1f} CPU-min")
    ax.legend()
    for r, (name, p) in enumerate(zip(cfg.test_photos, photos), start=1):
        true, pred = luminance(p), predict_brightness(hist.model, p)
        for c, (title, im, kw) in enumerate([
            (f"{name} (unseen)", p, {}),
            ("true luminance", true, dict(cmap="gray", vmin=0, vmax=1)),
            (f"predicted, {psnr(pred, true):.1f} dB", pred, dict(cmap="gray", vmin=0, vmax=1)),
            ("|error| (x5)", np.abs(pred - true) * 5, dict(cmap="magma", vmin=0, vmax=1)),
        ]):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(im, **kw)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return fig
