#!/usr/bin/env python
"""Does a feature space recover *every* nesting level? Covering of the hierarchy's partitions against each level of
SA-1B-like synthetic scenes (object > part > sub-part, ``featlib.data.synthetic.SA1B_LIKE``).

    python scripts/evaluate_levels.py --features runs/nested/model.pt lab-smooth --output outputs/levels.json

Scenes: ``--train`` scenes drawn as ``ensure_scenes(..., seed=S)`` draws its training folder (the first ``--train``
of them) choose each feature source's mesh combination (``featlib.distances.MESH_WEIGHT_NAMES``; the best mean over
levels of covering ODS), then ``--held-out`` scenes drawn as the held-out folder (seed S + 10000) are scored once.
``--split tune`` scores another held-out draw (seed S + 20000) instead: choose loss settings there, and report the
chosen ones on the held-out scenes once.
Per level L the ground truth is ``level_maps(scene)[L]`` (each pixel: its deepest mask of level <= L; unannotated
pixels ignored). The hierarchy is cut at each of COUNTS segments; ODS is the best count shared by all images, OIS
the best count per image (BSDS conventions over a count sweep rather than a height sweep, so feature spaces with
different distance scales are cut at the same granularities).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from featlib import features as feature_registry
from featlib.cluster import build_hierarchy
from featlib.data.synthetic import LEVEL_NAMES, SA1B_LIKE, level_maps, make_scene
from featlib.distances import MESH_WEIGHT_NAMES, resolve_mesh_weights
from featlib.metrics import covering, ods_ois

COUNTS = [4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]


def scenes(seed: int, n: int, size: tuple[int, int]):
    """The scenes ``write_scenes(root, n, size=size, seed=seed, **SA1B_LIKE)`` writes, in memory."""
    return [make_scene(np.random.default_rng([seed, i]), size, **SA1B_LIKE) for i in range(n)]


def level_scores(feats: dict, scene, mesh_weights, hierarchy_kwargs: dict) -> np.ndarray:
    """Covering [n_levels, len(COUNTS)] of one scene's hierarchy cuts against each level."""
    h = build_hierarchy(feats, size=scene.image.shape[:2], **{**hierarchy_kwargs, "mesh_weights": mesh_weights})
    cuts = [h.partition(n_segments=n) for n in COUNTS]
    return np.array([[covering(c, np.where(g > 0, g, -1)) for c in cuts] for g in level_maps(scene, 3)])


def summarise(per_image: np.ndarray) -> dict:
    """[n_images, n_levels, n_counts] -> {level: {"ods", "ois", "ods_count"}} and their mean."""
    out = {}
    for lev in range(per_image.shape[1]):
        ods, ois, j = ods_ois(per_image[:, lev])
        out[LEVEL_NAMES[lev]] = {"ods": round(ods, 4), "ois": round(ois, 4), "ods_count": COUNTS[j]}
    out["mean_ods"] = round(float(np.mean([v["ods"] for v in out.values()])), 4)
    return out


def evaluate(spec: str, train, held, progress=True, split="held-out") -> dict:
    f = feature_registry.load(spec)
    kw = f.hierarchy_kwargs()
    kw.pop("mesh_weights", None)
    feats_tr = [f(s.image) for s in train]
    strides = sorted(feats_tr[0])
    table = {}
    for name in MESH_WEIGHT_NAMES if len(strides) > 1 else ("equal",):
        w = resolve_mesh_weights(name, strides)
        table[name] = summarise(np.stack([level_scores(x, s, w, kw) for x, s in zip(feats_tr, train)]))["mean_ods"]
    best = max(table, key=table.get)
    w = resolve_mesh_weights(best, strides)
    per = np.stack([level_scores(f(s.image), s, w, kw) for s in tqdm(held, desc=spec, disable=not progress)])
    return {"features": spec, "mesh_weights": best, "split": split, "train_mean_ods_by_mesh": table,
            "held_out": summarise(per), "n_held_out": len(held), "n_train": len(train)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", nargs="+", required=True, help="feature specs (checkpoints, names)")
    p.add_argument("--seed", type=int, default=0, help="the training config's seed (scene folders' seed)")
    p.add_argument("--scene-size", type=int, default=256, help="the config's scene_size (longest side)")
    p.add_argument("--train", type=int, default=16, help="training scenes for the mesh choice")
    p.add_argument("--held-out", type=int, default=48, help="held-out scenes scored")
    p.add_argument("--split", choices=("held-out", "tune"), default="held-out",
                   help="held-out: the scenes reported (seed + 10000); tune: scenes for choosing settings (+ 20000)")
    p.add_argument("--output", type=Path, help="JSON file (refused if it exists)")
    a = p.parse_args(argv)
    if a.output is not None and a.output.exists():
        sys.exit(f"error: {a.output} exists; nothing is overwritten")
    torch.set_num_threads(1)
    size = (a.scene_size * 3 // 4, a.scene_size)  # featlib.data.loaders' scene shape
    train = scenes(a.seed, a.train, size)
    held = scenes(a.seed + (10_000 if a.split == "held-out" else 20_000), a.held_out, size)
    results = [evaluate(spec, train, held, split=a.split) for spec in a.features]
    for r in results:
        h = r["held_out"]
        levels = " ".join(f"{lev} {h[lev]['ods']:.3f}/{h[lev]['ois']:.3f}" for lev in LEVEL_NAMES)
        print(f"{r['features'][:40]:40s} mesh {r['mesh_weights']:10s} {levels}  mean {h['mean_ods']:.3f}")
    if a.output is not None:
        a.output.parent.mkdir(parents=True, exist_ok=True)
        a.output.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
