#!/usr/bin/env python
"""Can each stride meet what an objective asks? Free sigmoid features (no network) optimised for a loss on
SA-1B-like scenes, then, per stride, the share of pushed pairs and of pulled cells that still miss their margins.

    python scripts/loss_satisfiability.py --steps 300 --output outputs/satisfiability.json

Scenes: ``--scenes`` of ``make_scene(..., **SA1B_LIKE)`` at 192 x 256 (~100 connected pieces each; pieces of one
mask share its id, passed as ``groups``). Each objective below starts from the same random logits (seed 0) and runs
``--steps`` Adam steps (lr 0.1). Reported per stride: "push_unmet" = pushed pairs whose means lie closer than
0.9 * 2 delta_d, "pull_unmet" = member cells farther than 1.5 delta_v from their mask's mean, with the number of
masks counted there and of pairs pushed. A rule whose unmet shares stay high asks for something no feature map
gives; docs/LOSS.md "Nested masks" holds the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from featlib.data.synthetic import SA1B_LIKE, make_scene
from featlib.loss import MultiStrideLoss, downsample_masks

OBJECTIVES = {
    "all (paper, old divisor)": dict(push_pairs="all", push_norm="all_pairs"),
    "disjoint (old divisor)": dict(push_pairs="disjoint", push_norm="all_pairs"),
    "nested, no size band": dict(push_pairs="nested"),
    "nested, max_cells 4096": dict(push_pairs="nested", max_cells=4096),
    "nested, max_cells 1024": dict(push_pairs="nested", max_cells=1024),
    "nested, 1024, adjacent /1": dict(push_pairs="nested", max_cells=1024, adjacent_strides=(1,)),
    "nested, 1024, adjacent /1 /2": dict(push_pairs="nested", max_cells=1024, adjacent_strides=(1, 2)),
}


def scene_batch(n: int, hw=(192, 256), seed: int = 100):
    """masks bool [n, K, H, W] (connected pieces >= 16 px), mask_valid [n, K], groups int [n, K] (mask ids)."""
    per = []
    for i in range(n):
        sc = make_scene(np.random.default_rng([seed, i]), hw, **SA1B_LIKE)
        pieces = []
        for m, mt in zip(sc.masks, sc.meta):
            lab, k = ndimage.label(m)
            pieces += [(lab == c, mt["id"]) for c in range(1, k + 1) if (lab == c).sum() >= 16]
        per.append(pieces)
    k = max(len(p) for p in per)
    masks = torch.zeros(n, k, *hw, dtype=torch.bool)
    valid = torch.zeros(n, k, dtype=torch.bool)
    groups = torch.zeros(n, k, dtype=torch.long)
    for b, pieces in enumerate(per):
        for j, (m, g) in enumerate(pieces):
            masks[b, j], valid[b, j], groups[b, j] = torch.from_numpy(m), True, g
    return masks, valid, groups


def unmet(loss: MultiStrideLoss, feats: dict, masks, valid, groups) -> dict:
    """Per stride: masks counted, pairs pushed, and the shares of pushes / pulls that miss their margins."""
    per, down, out = loss.stride_pairs(masks, valid, groups), downsample_masks(masks, loss.strides), {}
    for s in loss.strides:
        active, pairs = per[s]
        x = feats[s].flatten(2)  # [B, C, N]
        m = down[s][0].flatten(2).float() * active[:, :, None]
        count = m.sum(-1)
        ok = count >= loss.min_cells
        mu = (m @ x.transpose(1, 2)) / count.clamp(min=1)[..., None]
        allowed = ok[:, :, None] & ok[:, None, :] & ~torch.eye(mu.shape[1], dtype=torch.bool)
        if pairs is not None:
            allowed &= pairs
        dv, dd = loss.margins[s]
        close = (torch.cdist(mu, mu) < 0.9 * 2 * dd) & allowed
        far = (torch.cdist(mu, x.transpose(1, 2)) > 1.5 * dv) & (m > 0)
        out[s] = {"masks": int(ok.sum()), "pairs": int(allowed.sum()),
                  "push_unmet": round(int(close.sum()) / max(1, int(allowed.sum())), 4),
                  "pull_unmet": round(int(far.sum()) / max(1, int(m.sum())), 4)}
    return out


def run(kwargs: dict, masks, valid, groups, steps: int) -> dict:
    loss = MultiStrideLoss(**kwargs)
    g = torch.Generator().manual_seed(0)
    b, _, h, w = masks.shape
    logits = {s: (torch.randn(b, 3 * s * s, -(-h // s), -(-w // s), generator=g) * 0.1).requires_grad_()
              for s in loss.strides}
    opt = torch.optim.Adam(logits.values(), lr=0.1)
    for _ in range(steps):
        out = loss({s: torch.sigmoid(v) for s, v in logits.items()}, masks, valid, groups=groups)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    feats = {s: torch.sigmoid(v).detach() for s, v in logits.items()}
    return {"loss": round(out.read()["loss/total"], 5), "strides": unmet(loss, feats, masks, valid, groups)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--output", type=Path, help="JSON file (refused if it exists)")
    a = p.parse_args(argv)
    if a.output is not None and a.output.exists():
        sys.exit(f"error: {a.output} exists; nothing is overwritten")
    masks, valid, groups = scene_batch(a.scenes)
    print(f"{a.scenes} scenes, {int(valid.sum())} instances (up to {masks.shape[1]} per image)")
    results = {}
    for name, kw in OBJECTIVES.items():
        t = time.perf_counter()
        results[name] = r = run(kw, masks, valid, groups, a.steps)
        cols = " ".join(f"/{s} {v['push_unmet']:.3f}|{v['pull_unmet']:.3f}" for s, v in r["strides"].items())
        print(f"{name:30s} push|pull unmet: {cols}   ({time.perf_counter() - t:.0f} s)", flush=True)
    if a.output is not None:
        a.output.parent.mkdir(parents=True, exist_ok=True)
        a.output.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
