#!/usr/bin/env python
"""Train the learned boundary map (``featlib.boundary_net``) on BSDS500 train boundaries.

    python scripts/train_boundary.py --root ../shared/datasets/bsds500 --output outputs/boundary/net.pt
    python scripts/train_boundary.py ... --resume          # continue from outputs/boundary/net.pt.ckpt
    python scripts/train_boundary.py ... --features runs/fold0,runs/fold1   # + FeatureNet cues, cross-fitted

The shipped ``featlib/assets/boundary-bsds500.pt`` is this recipe's defaults (4000 steps, ~19 min on 2 CPU threads;
its card says so): BSDS500 train minus the ``--holdout`` images (``featlib.data.bsds.holdout_split``: the 20 on
which every grouping default was chosen), every annotator's boundaries as one soft target
(``boundary_net.boundary_target``), random 128 x 128 crops mirrored with probability 1/2, binary cross-entropy on the
crop's interior (16 px margin: the receptive field's radius is 15), AdamW 2e-3 with a one-cycle schedule. The
held-out images' cross-entropy is printed every ``--eval-every`` steps. (The shipped weights were trained by this
loop's prototype on cue stacks cached in float16 before normalisation: the same recipe, not the same bits.)

``--stanford ROOT``: Stanford Background's 715 photos join the training photos (``featlib.data.stanford``: each
photo's region map as one annotator, its borders drawn as BSDS500 draws its own), ``--stanford-share`` of the crops
drawn from them; the held-out images stay BSDS500's.

``--features``: the network also reads a FeatureNet's features (``boundary_net.feature_channels``, one channel per
stride). A model's features on the photos it trained on are better than on any new photo, so a network trained on
them would learn to trust them too much; with N models (N >= 2) the training images are split into N interleaved
folds (``featlib.data.bsds.fold_split``, as the FeatureNets' ``cross_fit: [k, N]`` config split them) and fold k's
features come from model k, which never saw them (cross-fitting); the held-out images' from the first model. With
one model every image's features come from it: in sample for the photos it trained on (no cross-fitting).

Every ``--save-every`` steps a checkpoint (weights, optimiser, schedule, RNG state, step) is written atomically
beside the output; ``--resume`` continues from it. The output is never overwritten unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from featlib.boundary_net import BoundaryNet, boundary_target, cue_stack, sample_crops, save_boundary_net
from featlib.cli import fail
from featlib.data.bsds import bsds_ids, fold_split, holdout_split, load_record
from featlib.data.stanford import load_stanford, stanford_ids
from featlib.features import load as load_features

MARGIN = 16  # px of each crop left out of the loss (replicate padding there is not what a full image sees)


def load_split(root: str, ids: list[str], desc: str, source_of=None, load=None):
    """(cue stacks float16 [C, H, W], targets float32 [H, W]) of BSDS500 train images ``ids`` (or of the records
    ``load(root, id)`` returns); ``source_of(id)``: the ``Features`` whose features join the stack (None: colour
    cues only)."""
    xs, ys = [], []
    for i in tqdm(ids, desc=desc):
        r = load(root, i) if load else load_record(root, "train", i)
        src = source_of(i) if source_of else None
        xs.append(cue_stack(r.image, None if src is None else src(r.image)).astype(np.float16))
        ys.append(boundary_target(r.boundaries))
    return xs, ys


@torch.no_grad()
def held_out_bce(net: BoundaryNet, xs, ys) -> float:
    net.eval()
    out = [F.binary_cross_entropy_with_logits(net(torch.from_numpy(x.astype(np.float32))[None])[0],
                                              torch.from_numpy(y)).item() for x, y in zip(xs, ys)]
    net.train()
    return float(np.mean(out)) if out else float("nan")


def _save_ckpt(path: Path, net, opt, sched, rng, step: int) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "rng": rng.bit_generator.state, "step": step}, tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="BSDS500 root (images/train, groundTruth/train)")
    p.add_argument("--output", type=Path, required=True, help="where the trained network goes (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--holdout", type=int, default=20, help="train images left out (held_out_bce reads them)")
    p.add_argument("--limit", type=int, help="only the first N training images (smoke runs)")
    p.add_argument("--features", help="FeatureNet(s) whose features the network also reads: a name or run "
                   "directory, or N >= 2 comma-separated, model k trained without fold k of N (cross-fitting)")
    p.add_argument("--stanford", metavar="ROOT", help="add Stanford Background's 715 photos (its region "
                   "borders as one annotator) to the training photos")
    p.add_argument("--stanford-share", type=float, default=0.5,
                   help="with --stanford: the share of training crops drawn from its photos (default 0.5)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        if a.output.exists() and not a.overwrite:
            raise ValueError(f"{a.output} exists; pass --overwrite to replace it or choose another --output")
        for name in ("steps", "batch", "eval_every", "save_every"):
            if getattr(a, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
        if a.crop <= 2 * MARGIN:
            raise ValueError(f"--crop must exceed {2 * MARGIN} px (the loss leaves {MARGIN} px each side), "
                             f"got {a.crop}")
        ckpt = a.output.with_name(a.output.name + ".ckpt")
        if a.resume and not ckpt.is_file():
            raise ValueError(f"--resume: no checkpoint at {ckpt}")
        if not 0 < a.stanford_share < 1:
            raise ValueError(f"--stanford-share must lie in (0, 1), got {a.stanford_share}")
        train_ids, held_ids = holdout_split(bsds_ids(a.root, "train"), a.holdout)
        extra_ids = stanford_ids(a.stanford, "all") if a.stanford else []
        specs = a.features.split(",") if a.features else []
        sources = [load_features(spec) for spec in specs]
        if any(src.model is None for src in sources):
            raise ValueError(f"--features must name FeatureNets (colour cues are already read), got {a.features}")
        fold_of = {i: k for k in range(len(specs)) for i in fold_split(train_ids, k, len(specs))[1]} \
            if len(specs) >= 2 else {}
    except (ValueError, FileNotFoundError) as e:
        return fail(e)
    if a.limit:
        train_ids, held_ids = train_ids[:a.limit], held_ids[:max(1, a.limit // 4)]
        extra_ids = extra_ids[:a.limit]
    source_of = (lambda i: sources[fold_of.get(i, 0)]) if sources else None
    xs, ys = load_split(a.root, train_ids, "train cues", source_of)
    hx, hy = load_split(a.root, held_ids, "held-out cues", source_of)
    weights = None
    if extra_ids:  # no FeatureNet saw these photos: any model's features are out of sample
        first = (lambda i: sources[0]) if sources else None
        ex, ey = load_split(a.stanford, extra_ids, "Stanford Background cues", first, load=load_stanford)
        weights = np.r_[np.full(len(xs), (1 - a.stanford_share) / len(xs)),
                        np.full(len(ex), a.stanford_share / len(ex))]
        xs, ys = xs + ex, ys + ey

    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = BoundaryNet(n_inputs=xs[0].shape[0])
    opt = torch.optim.AdamW(net.parameters(), a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.steps, pct_start=0.05)
    step = 0
    if a.resume:
        state = torch.load(ckpt, weights_only=True)
        net.load_state_dict(state["net"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        rng.bit_generator.state, step = state["rng"], int(state["step"])
        print(f"resumed at step {step} from {ckpt}")
    t0, loss = time.time(), float("nan")
    bar = tqdm(range(step, a.steps), initial=step, total=a.steps, desc="boundary net")
    for step in bar:
        x, y = sample_crops(xs, ys, rng, a.batch, a.crop, weights)
        out = net(x)[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
        loss = F.binary_cross_entropy_with_logits(out, y[:, MARGIN:-MARGIN, MARGIN:-MARGIN])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            bar.write(f"step {step + 1}: train {loss.item():.4f}  held-out {held_out_bce(net, hx, hy):.4f}  "
                      f"({time.time() - t0:.0f} s)")
        if (step + 1) % a.save_every == 0 and step + 1 < a.steps:
            _save_ckpt(ckpt, net, opt, sched, rng, step + 1)
    data = f"BSDS500 train minus {a.holdout} held-out ({len(train_ids)} photos, every annotator)"
    if extra_ids:
        data += (f" + Stanford Background ({len(extra_ids)} photos, region borders as one annotator; "
                 f"{a.stanford_share:.0%} of crops)")
    card = {"data": data,
            "steps": a.steps, "batch": f"{a.batch} crops of {a.crop}", "lr": a.lr, "seed": a.seed,
            "held_out_bce": held_out_bce(net, hx, hy),
            "features": {"models": specs, "cross_fit": len(specs) >= 2} if specs else None}
    save_boundary_net(net, a.output, card, overwrite=a.overwrite)
    ckpt.unlink(missing_ok=True)
    print(f"wrote {a.output} (held-out BCE {card['held_out_bce']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
