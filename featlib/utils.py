"""Small shared helpers with no featlib dependencies."""

from __future__ import annotations

import os
from pathlib import Path

import numba
import torch

SMOKE_ENV = "FEATLIB_SMOKE"


def smoke_mode() -> bool:
    """True when ``FEATLIB_SMOKE`` is set to a truthy value (the tests set it for notebooks).

    Smoke mode runs the same code path with tiny sizes and step counts so CI stays fast.
    """
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def shared_dir() -> Path | None:
    """The ``../shared`` data folder beside the checkout (or ``$FEATLIB_SHARED``), or None if absent."""
    env = os.environ.get("FEATLIB_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def repo_root() -> Path:
    """The checkout root (parent of the ``featlib`` package)."""
    return Path(__file__).resolve().parents[1]


def sync_numba_threads() -> None:
    """Run numba's parallel loops on torch's thread count, and keep torch's count where it was.

    numba's OpenMP threading layer shares libgomp with torch, and launching it sets the process-wide OpenMP
    thread count to ``NUMBA_NUM_THREADS`` (all cores). Without this, a process started with
    ``OMP_NUM_THREADS=1`` (as ``accelerate launch`` starts each rank) silently ran every torch op after the first
    compiled loss call on all cores: oversubscribed ranks, and a resumed run whose first step used another
    summation order than the straight run's (issue 11). Call before each parallel numba kernel; costs ~1 us.
    """
    n = torch.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # launches the layer on first use
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
