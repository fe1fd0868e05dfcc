#!/usr/bin/env python
"""`make demo`: the embedded default, end to end on CPU.

1. write synthetic SA-1B-format scenes under data/synthetic/ (train + held-out val) if absent;
2. train configs/demo.yaml (EfficientViT-b0 FeatureNet, multi-stride discriminative loss) with a progress bar;
3. choose how the per-stride distance meshes combine on the *training* scenes (equal, 1/s, finest strides), then
   evaluate on the held-out scenes: the same hierarchy clustering on the learned features and on raw RGB;
4. write outputs/demo/: model.pt, checkpoints/, featlib/ (TensorBoard logs), metrics.jsonl, demo.png (image |
   features | clusters | GT) and summary.json;
5. the shipped real-photo partitions model (features "bsds500-b0-all", trained on BSDS500: docs/MODEL_CARD.md) next
   to Lab colour on a bundled scikit-image photo at the same segment counts: outputs/demo/photo_partitions.png.

FEATLIB_SMOKE=1 shrinks every size so the same path runs in seconds. Extra arguments are config overrides
(key=value), e.g. `python scripts/demo.py max_steps=500`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import matplotlib
import skimage.data

from featlib import features as feature_registry
from featlib.checkpoint import load_model_checkpoint
from featlib.config import load_config
from featlib.data.loaders import validation_set
from featlib.evaluate import example_figure, partitions_figure, select_mesh_weights, validate
from featlib.train import fit
from featlib.utils import repo_root, smoke_mode

SMOKE = ["max_steps=3", "n_train=8", "n_val=2", "image_size=64", "scene_size=96", "batch_size=2",
         "val_every=3", "image_every=3", "checkpoint_every=3", "log_every=1", "data_root=data/synthetic_smoke",
         "output_dir=outputs/demo_smoke"]


def main(argv: list[str]) -> None:
    matplotlib.use("Agg")  # figures go to files; chosen here, not at import, so importing this module changes nothing
    root = repo_root()
    overrides = (SMOKE if smoke_mode() else []) + argv
    cfg = load_config(root / "configs" / "demo.yaml", overrides)
    cfg.data_root = str(root / cfg.data_root)
    cfg.output_dir = str(root / cfg.output_dir)
    print(f"demo: training FeatureNet({cfg.backbone}) on {cfg.n_train} synthetic scenes for {cfg.max_steps} steps "
          f"-> {cfg.output_dir}")
    result = fit(cfg)
    model = load_model_checkpoint(Path(cfg.output_dir) / "model.pt")
    train_scenes = validation_set(dataclasses.replace(cfg, val_on_train=True, n_val=min(cfg.n_train, 16)))
    choice, weights, table = select_mesh_weights(model, train_scenes)
    print("mesh weights chosen on training scenes (mean best IoU): "
          + ", ".join(f"{k} {v:.3f}" for k, v in table.items()) + f" -> {choice}")
    val = validation_set(cfg)
    equal = validate(model, val)
    scores = validate(model, val, mesh_weights=weights)
    fig = example_figure(model, val[0][0], val[0][1], mesh_weights=weights,
                         title=f"held-out scene: image | features per stride | clusters ({choice}) | ground truth")
    fig.savefig(Path(cfg.output_dir) / "demo.png", dpi=100)
    summary = {"steps": result["step"], "minutes": round(result["seconds"] / 60, 2),
               "final_loss": round(result["final_loss"], 4), "collapse_alarm": result["collapse"],
               "held_out_scenes": len(val), "mesh_weights": {"chosen": choice, "train_scores": table},
               "mean_best_iou": {"learned": round(scores["val/mean_best_iou"], 3),
                                 "learned_equal_weights": round(equal["val/mean_best_iou"], 3),
                                 "raw_rgb": round(scores["val/rgb_mean_best_iou"], 3)},
               "covering": {"learned": round(scores["val/covering"], 3),
                            "learned_equal_weights": round(equal["val/covering"], 3),
                            "raw_rgb": round(scores["val/rgb_covering"], 3)}}
    (Path(cfg.output_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    diff = scores["val/mean_best_iou"] - scores["val/rgb_mean_best_iou"]
    verdict = "match" if abs(diff) < 0.01 else ("beat" if diff > 0 else "do NOT beat")  # 8 scenes: ±0.01 is noise
    print(f"held-out mean best IoU: learned ({choice}) {scores['val/mean_best_iou']:.3f} vs raw RGB "
          f"{scores['val/rgb_mean_best_iou']:.3f}; covering {scores['val/covering']:.3f} vs "
          f"{scores['val/rgb_covering']:.3f} -> on mean best IoU the learned features {verdict} raw RGB")
    photo = skimage.data.coffee()
    if smoke_mode():
        photo = photo[::4, ::4]
    fig = partitions_figure(photo, {"bsds500-b0-all": feature_registry.load("bsds500-b0-all"),
                                    "Lab colour": feature_registry.load("lab-smooth")},
                            counts=(8, 32, 128), title="a bundled photo (skimage coffee): the shipped partitions model "
                            "(trained on BSDS500 train) vs Lab colour, each with its default grouping, same segment "
                            "counts")
    fig.savefig(Path(cfg.output_dir) / "photo_partitions.png", dpi=90)
    print(f"figures: {Path(cfg.output_dir) / 'demo.png'}, {Path(cfg.output_dir) / 'photo_partitions.png'}; "
          f"TensorBoard: tensorboard --logdir {cfg.output_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
