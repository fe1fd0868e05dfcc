#!/usr/bin/env python
"""Repack raw SA-1B tar shards into training-ready shards (JPEG + RLEs at the training size), in parallel.

    python scripts/prepare_sa1b.py SRC DST --size 1024 --workers 16
    # several machines: each takes every n-th shard
    python scripts/prepare_sa1b.py SRC DST --size 1024 --workers 16 --shard-index 0 --num-shards 4

SRC is a folder of sa_*.tar (or a glob). Resumable: finished shards (DST/<name>.tar) are skipped; a shard is
written as <name>.tar.partial and renamed only after it was re-read and verified, so an interrupted run never
leaves a partial shard that looks finished. Read the result with featlib.data.sa1b_dataset(DST, size=...).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from featlib.data.prepare import prepare_shard


def _job(args):
    src, dst, size = args
    return src, prepare_shard(src, dst, size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--shard-index", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1)
    a = p.parse_args(argv)
    if not 0 <= a.shard_index < a.num_shards:
        p.error("--shard-index must be in [0, --num-shards)")
    src = Path(a.src)
    shards = sorted(src.glob("*.tar")) if src.is_dir() else sorted(Path(s) for s in glob.glob(a.src))
    if not shards:
        print(f"no .tar shards found at {a.src}", file=sys.stderr)
        return 2
    dst = Path(a.dst)
    dst.mkdir(parents=True, exist_ok=True)
    mine = shards[a.shard_index::a.num_shards]
    todo = [(str(s), str(dst / s.name), a.size) for s in mine if not (dst / s.name).exists()]
    print(f"{len(mine)} shards for this machine, {len(mine) - len(todo)} already done, {len(todo)} to prepare")
    totals = {"written": 0, "skipped": {}}
    with ProcessPoolExecutor(max_workers=max(1, a.workers)) as pool:
        futures = [pool.submit(_job, j) for j in todo]
        for f in tqdm(as_completed(futures), total=len(futures), desc="shards"):
            _, r = f.result()
            totals["written"] += r["written"]
            for k, v in r["skipped"].items():
                totals["skipped"][k] = totals["skipped"].get(k, 0) + v
    print(json.dumps(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
