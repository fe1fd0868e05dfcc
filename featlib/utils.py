"""Small shared helpers with no featlib dependencies."""

from __future__ import annotations

import os
from pathlib import Path

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
