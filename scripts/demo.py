#!/usr/bin/env python
"""`make demo`: the embedded default job. For now the brightness MVP (notebook 01) end to end.

Writes outputs/brightness/brightness_mvp.png and prints the PSNR on unseen photos. FEATLIB_SMOKE=1 runs the
seconds-long smoke configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from featlib.brightness import BrightnessConfig, fit_brightness, plot_brightness  # noqa: E402
from featlib.utils import repo_root, smoke_mode  # noqa: E402


def main() -> None:
    out = repo_root() / "outputs" / "brightness"
    out.mkdir(parents=True, exist_ok=True)
    cfg = BrightnessConfig.smoke() if smoke_mode() else BrightnessConfig()
    print(f"brightness MVP: FeatureNet({cfg.backbone}) stride-1 head -> luminance of {', '.join(cfg.train_photos)}")
    hist = fit_brightness(cfg)
    fig = plot_brightness(hist)
    fig.savefig(out / "brightness_mvp.png", dpi=110)
    summary = {"steps": cfg.steps, "minutes": round(hist.seconds / 60, 2),
               "psnr_fitted_db": round(hist.psnr_train[-1], 2), "psnr_unseen_db": round(hist.psnr_test[-1], 2),
               "unseen_photos": list(cfg.test_photos)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"figure: {out / 'brightness_mvp.png'}")


if __name__ == "__main__":
    main()
