#!/usr/bin/env python
"""Train FeatureNet with the multi-stride discriminative loss, on 1 CPU or N GPUs through accelerate.

    # 8 GPUs (one node); multi-node: add accelerate's --num_machines/--machine_rank/--main_process_ip flags
    accelerate launch --multi_gpu --num_processes 8 scripts/train_accelerate.py --config configs/sa1b_l0.yaml
    # two CPU processes (how the tests check DDP): --multi_gpu is what makes accelerate start 2 processes
    accelerate launch --multi_gpu --num_processes 2 scripts/train_accelerate.py --cpu --config configs/demo.yaml \
        max_steps=4
    # resume the latest checkpoint of the run's output_dir
    python scripts/train_accelerate.py --config configs/demo.yaml --resume latest

Any config key can be overridden as key=value (parsed as YAML). The loop lives in featlib.train.fit, shared with
scripts/demo.py and notebooks/04_training.ipynb.
"""

from __future__ import annotations

import argparse
import sys

from featlib.config import ConfigError, load_config
from featlib.train import fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (see configs/)")
    parser.add_argument("--cpu", action="store_true", help="force CPU (Accelerator(cpu=True))")
    parser.add_argument("--pretrained", help="official EfficientViT-SAM checkpoint for the backbone")
    parser.add_argument("--resume", help="'latest' or a checkpoint directory")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    try:
        overrides = list(args.overrides) + ([f"pretrained={args.pretrained}"] if args.pretrained else [])
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2

    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=args.cpu or not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision,
                              gradient_accumulation_steps=cfg.grad_accum,
                              log_with=None if cfg.tracker == "none" else cfg.tracker, project_dir=cfg.output_dir)
    try:
        result = fit(cfg, accelerator=accelerator, resume=args.resume)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    accelerator.print(f"done: {result['step']} steps in {result['seconds'] / 60:.1f} min, final loss "
                      f"{result['final_loss']:.4f}, {result['val']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
