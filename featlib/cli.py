"""The command-line convention shared by the evaluation and inference scripts (``scripts/evaluate_iis.py``,
``scripts/evaluate_partitions.py``, ``scripts/segment_images.py``).

    p = argparse.ArgumentParser(...)
    add_workers(p); add_output(p, "outputs/iis/<dataset>_<features>.json")
    a = p.parse_args(argv)
    dataset = canonical_dataset(a.dataset)              # "bsds" -> "bsds500", with a deprecation note on stderr
    out = result_path(a.output, default, a.overwrite)   # ValueError when an explicit --output exists
    return fail(str(e))                                 # one line "error: ..." on stderr, exit status 2

The rules:
- Dataset names: ``bsds500`` (BSDS500; ``bsds`` is an accepted, deprecated alias), ``grabcut``, ``berkeley``,
  ``davis``.
- Results: written by default to a path under ``outputs/`` that the run prints. An existing result is never
  overwritten silently: an explicit ``--output`` that exists is refused (exit 2) unless ``--overwrite``; the default
  path takes the first free suffix ``-2``, ``-3``, ... (so repeated default runs keep every result).
  ``segment_images.py`` writes a folder and resumes instead (existing per-image outputs are skipped, never rewritten).
- ``--workers N``: N processes (1 = in this process); results do not depend on N. ``process_pool`` starts them from
  a fresh forkserver process, never as forks of the caller: a fork taken after torch has run its OpenMP threads in
  the caller (the boundary network, as an earlier in-process run does) hangs in the child's first parallel region.
- Bad arguments exit with status 2 and one line on stderr (argparse's own errors also print the usage line).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DATASET_ALIASES = {"bsds": "bsds500"}  # deprecated name -> name


def canonical_dataset(name: str) -> str:
    """The dataset's current name; a deprecated alias prints a one-line note on stderr."""
    if name in DATASET_ALIASES:
        new = DATASET_ALIASES[name]
        print(f"note: --dataset {name} is deprecated; use --dataset {new}", file=sys.stderr)
        return new
    return name


def slug(spec: str) -> str:
    """A file-name-safe short name of a features spec: registered names as they are, a checkpoint path as
    ``<folder>-<stem>`` (``runs/x/model.pt`` -> ``x-model``)."""
    p = Path(str(spec))
    name = f"{p.parent.name}-{p.stem}" if (p.suffix or len(p.parts) > 1) and p.parent.name else p.name or str(spec)
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-") or "features"


def add_workers(p: argparse.ArgumentParser, default: int | None = None) -> None:
    p.add_argument("--workers", type=int, default=default or os.cpu_count() or 1,
                   help="processes (1: all in this process; default: the CPU count); results do not depend on it")


def add_output(p: argparse.ArgumentParser, default_help: str) -> None:
    p.add_argument("--output", type=Path, default=None,
                   help=f"RESULT.json (default {default_help}, first free -2, -3 ... suffix; the run prints it). An "
                        "existing RESULT is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")


def result_path(output: Path | str | None, default: Path | str, overwrite: bool = False) -> Path:
    """Where a result goes: ``output`` when given (ValueError if it exists and not ``overwrite``), else ``default``
    or its first free ``-N`` suffix (N = 2, 3, ...; the same suffix is kept free for the plot beside it)."""
    if output is not None:
        out = Path(output)
        if out.exists() and not overwrite:
            raise ValueError(f"{out} exists; pass --overwrite to replace it or choose another --output")
        return out
    out = Path(default)
    n = 2
    while out.exists() or out.with_suffix(".png").exists():
        out = Path(default).with_name(f"{Path(default).stem}-{n}{Path(default).suffix}")
        n += 1
    return out


def check_workers(n: int) -> None:
    if n < 1:
        raise ValueError(f"--workers must be >= 1, got {n}")


def fail(message: str) -> int:
    """Print ``error: message`` (one line) on stderr; returns the exit status 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def process_pool(workers: int, fn) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes for ``fn`` (a module-level function), started by a forkserver: each worker is
    a fresh process that imports what it needs, so torch's threads in this process cannot hang it (``fork`` after
    torch ran here deadlocks: tests/test_cli.py). ``fn``'s module must be importable there: a script run as the
    main module is (multiprocessing re-imports it by path); one loaded from its file under another name is imported
    again from that file (``_import_as``)."""
    module = sys.modules[fn.__module__]
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                               initializer=_import_as, initargs=(fn.__module__, getattr(module, "__file__", None)))


def _import_as(name: str, path: str | None) -> None:
    """Make module ``name`` importable in a worker: imported normally, else loaded from ``path`` and registered."""
    if name in sys.modules or name == "__main__":
        return
    try:
        importlib.import_module(name)
    except ImportError:
        if path is None:
            raise
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
