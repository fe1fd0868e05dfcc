#!/usr/bin/env python
"""Export a training run's final weights as a shippable fp16 file with its model card.

    python scripts/export_model.py runs/bsds500 --output featlib/assets/bsds500-b0.pt \
        --scores outputs/partitions/bsds500-b0_val.json --wall-minutes 118

The card (``featlib.checkpoint.model_card``) holds plain values: the run's config, steps, final loss, wall time, the
git commit of this checkout, the data and its terms, and the evaluation JSONs given with ``--scores`` (their top-level
numbers only). The file loads like any model.pt (``weights_only=True``); the features registry names it (SHIPPED).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import skimage.data
import yaml

from featlib.checkpoint import export_model, load_model_checkpoint, model_card
from featlib.features import image_features

BSDS_TERMS = ("BSDS500 (Arbelaez et al. 2011, UC Berkeley): images and human segmentations for research use; "
              "these weights are derived from its 200 training images and inherit that restriction")
KEEP = ("ods", "ois", "n_images", "split", "holdout", "features", "noc85", "noc90", "drops", "n_objects")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _scores(path: Path) -> dict:
    d = json.loads(path.read_text())
    out = {k: d[k] for k in KEEP if k in d}
    for name, m in d.get("methods", {}).items():
        if "boundary" in m:
            out.setdefault("boundary", {})[name] = {k: m["boundary"][k] for k in ("ods_f", "ois_f", "ap")}
    if "distance_map" in d:
        out.setdefault("boundary", {})["distance_map"] = {k: d["distance_map"]["boundary"][k]
                                                          for k in ("ods_f", "ois_f", "ap")}
    return out


REFERENCE_IMAGE = "skimage.data.coffee()[::4, ::4]"


def reference_features(model) -> dict:
    """Per-stride mean and std of the model's features on a bundled photo: a fingerprint that a test compares with
    what the loaded file gives (tolerance 1e-3, far above float32 rounding between CPUs)."""
    image = skimage.data.coffee()[::4, ::4]
    feats = image_features(model, image)
    return {"image": REFERENCE_IMAGE, "mean": {str(k): float(v.mean()) for k, v in feats.items()},
            "std": {str(k): float(v.std()) for k, v in feats.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training output_dir (holds model.pt, config.yaml, run_summary.json)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--scores", type=Path, nargs="*", default=[], help="evaluate_partitions / evaluate_iis JSONs")
    p.add_argument("--wall-minutes", type=float, help="total training wall time over all slices")
    p.add_argument("--note", default="", help="one line for the card")
    a = p.parse_args(argv)
    try:
        model = load_model_checkpoint(a.run)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = json.loads((a.run / "run_summary.json").read_text()) if (a.run / "run_summary.json").is_file() else {}
    config = yaml.safe_load((a.run / "config.yaml").read_text()) if (a.run / "config.yaml").is_file() else {}
    card = {"config": config, "steps": summary.get("step"), "final_loss": summary.get("final_loss"),
            "wall_minutes": a.wall_minutes, "commit": _commit(), "data": config.get("data"), "terms": BSDS_TERMS
            if config.get("data") == "bsds500" else "see the training data's licence",
            "scores": {f.stem: _scores(f) for f in a.scores}, "note": a.note}
    a.output.parent.mkdir(parents=True, exist_ok=True)
    export_model(model, a.output, card=card)
    card["reference"] = reference_features(load_model_checkpoint(a.output))  # what the shipped fp16 weights give
    size = export_model(model, a.output, card=card)
    print(f"wrote {a.output} ({size / 2**20:.2f} MiB, fp16)")
    print(json.dumps(model_card(a.output), indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
