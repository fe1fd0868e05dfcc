#!/usr/bin/env python
"""Batch inference: features, UCM and label maps at chosen granularities for a folder of images or tar shards.

    python scripts/segment_images.py --features bsds500-b0-all --input photos/ --output seg/ --levels 10,50,200 --png
    accelerate launch --multi_gpu --num_processes 8 scripts/segment_images.py --features CKPT --input 'shards/*.tar' \
        --output seg/

Per image, OUTPUT/<name>.npz holds ``ucm`` (float16 [2H+1, 2W+1], BSDS layout), ``labels_<n>`` (int32 [H, W]) for
each level and, with --save-features, ``features_<s>`` (float16 unless --fp32); with --png also OUTPUT/<name>_<n>.png
per level (the photo, segments tinted, boundaries white). Images are split across processes (accelerate); finished
outputs are skipped (resumable; written atomically); unreadable images are skipped and listed in
OUTPUT/skipped_rank<k>.txt. ``--features`` takes any spec of the features registry (``featlib.features``): a model
checkpoint, or a name such as ``bsds500-b0-all`` (the shipped partitions model) or ``lab-smooth`` (the partitions'
colour baseline).
The hierarchy uses the features' own defaults (``Features.hierarchy_kwargs``) unless --mesh-weights says otherwise.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
from accelerate import PartialState
from PIL import Image
from tqdm.auto import tqdm

from featlib import features as feature_registry
from featlib.cluster import build_hierarchy
from featlib.viz import label_overlay

EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def list_inputs(spec: str) -> list[tuple[str, str]]:
    """(name, locator) pairs: files in a folder, or 'tar::member' inside tar shards."""
    p = Path(spec)
    if p.is_dir():
        return [(f.stem, str(f)) for f in sorted(p.rglob("*")) if f.suffix.lower() in EXTS]
    tars = sorted(glob.glob(spec)) if not p.is_file() else [spec]
    out = []
    for t in tars:
        if t.endswith(".tar"):
            with tarfile.open(t) as tar:
                out += [(Path(m.name).stem, f"{t}::{m.name}") for m in tar if m.name.lower().endswith(EXTS)]
        elif t.lower().endswith(EXTS):
            out.append((Path(t).stem, t))
    return out


def read_image(loc: str) -> np.ndarray:
    if "::" in loc:
        t, member = loc.split("::", 1)
        with tarfile.open(t) as tar:
            data = tar.extractfile(member).read()
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return np.asarray(Image.open(loc).convert("RGB"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", "--checkpoint", dest="features", required=True,
                   help="model.pt from training, or a registered name (featlib.features.names(), e.g. lab-smooth)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--levels", default="10,50,200", help="segment counts of the saved label maps")
    p.add_argument("--save-features", action="store_true")
    p.add_argument("--fp32", action="store_true", help="save features as float32 (default float16)")
    p.add_argument("--png", action="store_true", help="also write a viewable overlay PNG per image and level")
    p.add_argument("--mesh-weights", default=None,
                   help="stride combination: equal, 1/s, finest, 'finest two' or JSON {stride: weight} (default: "
                        "the features' own choice, featlib.features.Features.mesh_weights)")
    a = p.parse_args(argv)
    levels = [int(v) for v in a.levels.split(",") if v]
    state = PartialState(cpu=os.environ.get("ACCELERATE_USE_CPU") == "true")
    try:
        features = feature_registry.load(a.features, device=state.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    items = list_inputs(a.input)
    if not items:
        print(f"error: no images found at {a.input}", file=sys.stderr)
        return 2
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    skipped = []
    with state.split_between_processes(items) as mine:
        for name, loc in tqdm(mine, desc=f"rank {state.process_index}", disable=not state.is_main_process):
            target = out / f"{name}.npz"
            if target.exists():
                continue  # resumable
            try:
                img = read_image(loc)
            except Exception as e:  # unreadable image: list it, keep going
                skipped.append(f"{loc}\t{type(e).__name__}: {e}")
                continue
            arrays = {}
            feats = features(img)
            h = build_hierarchy(feats, size=img.shape[:2], **features.hierarchy_kwargs(a.mesh_weights))
            if a.save_features:
                arrays.update({f"features_{s}": f.astype(np.float32 if a.fp32 else np.float16)
                               for s, f in feats.items()})
            arrays["ucm"] = h.ucm().astype(np.float16)
            arrays.update({f"labels_{n}": h.partition(n_segments=n) for n in levels})
            if a.png:  # before the .npz: the .npz's presence is what marks an image done
                for n in levels:
                    png = Image.fromarray((label_overlay(img, arrays[f"labels_{n}"]) * 255).round().astype(np.uint8))
                    tmp_png = out / f".{name}_{n}.tmp.png"
                    png.save(tmp_png)
                    os.replace(tmp_png, out / f"{name}_{n}.png")
            tmp = out / f".{name}.tmp.npz"
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, target)
    if skipped:
        (out / f"skipped_rank{state.process_index}.txt").write_text("\n".join(skipped) + "\n")
        print(f"rank {state.process_index}: skipped {len(skipped)} unreadable image(s), listed in "
              f"{out / f'skipped_rank{state.process_index}.txt'}")
    state.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
