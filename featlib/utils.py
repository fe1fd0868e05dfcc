"""Small shared helpers with no featlib dependencies."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

SMOKE_ENV = "FEATLIB_SMOKE"
MALLOC_ENV = "FEATLIB_MALLOC"  # "0": leave the C allocator's settings alone (``reuse_freed_memory``)
# glibc's own knobs: when the user set any of them, their choice stands
_GLIBC_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
_REUSE_BYTES = 1 << 30


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


def reuse_freed_memory() -> bool:
    """Let glibc's allocator keep and reuse freed blocks of up to 1 GiB instead of returning them to the kernel.

    featlib's image work allocates and frees many arrays of tens to hundreds of MB (cue stacks, the boundary
    network's activations on the 2x view, full-size feature maps). glibc serves blocks over its mmap threshold
    (dynamic, at most 32 MiB) with fresh ``mmap`` pages and unmaps them on free, so every such temporary is paid
    again in page faults, and page faults are costly on virtual machines. Measured on this project's 2-core VM
    (2026-12-05, the second of two builds in one process; wall / user / system seconds): colour's default
    hierarchy of a 481 x 321 BSDS500 photo 5.2 / 3.2 / 2.0 s -> 3.3 / 3.3 / 0.05 s (one thread), ``bsds500-b0-all``'s
    5.5 -> 3.6 s, its hierarchy of a 2000 x 1500 SA-1B photo 14.6 / 11.9 / 9.8 s -> 7.8 / 10.5 / 0.1 s (two
    threads), peak memory 1.8 -> 2.4 GB there (freed memory stays with the process; 1.19 -> 1.29 GB at BSDS size).

    Raises glibc's mmap and trim thresholds to 1 GiB (``mallopt``; 32 MiB where a glibc refuses more). Called
    once when featlib is imported; a no-op returning False off glibc Linux, with ``FEATLIB_MALLOC=0``, or when any
    ``MALLOC_*_`` tunable or ``GLIBC_TUNABLES`` malloc setting is in the environment. Returns True when applied.
    """
    if os.environ.get(MALLOC_ENV, "").strip().lower() in ("0", "false", "no"):
        return False
    if any(k in os.environ for k in _GLIBC_MALLOC_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, _REUSE_BYTES) and not mallopt(_M_MMAP_THRESHOLD, 32 << 20):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _REUSE_BYTES))


def sync_numba_threads() -> None:
    """Run numba's parallel loops on torch's thread count, and keep torch's count where it was.

    numba's OpenMP threading layer shares libgomp with torch, and launching it sets the process-wide OpenMP
    thread count to ``NUMBA_NUM_THREADS`` (all cores). Without this, a process started with
    ``OMP_NUM_THREADS=1`` (as ``accelerate launch`` starts each rank) silently ran every torch op after the first
    compiled loss call on all cores: oversubscribed ranks, and a resumed run whose first step used another
    summation order than the straight run's (issue 11). Call before each parallel numba kernel; costs ~1 us.
    """
    import numba  # here, so that ``import featlib`` (which imports this module) stays cheap
    import torch

    n = torch.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # launches the layer on first use
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
