#!/usr/bin/env python
"""Benchmarks that print ratios against a baseline run in the same process.

    python scripts/benchmark.py model|data|loss|partitions|clicks|train|all [--quick]

Each topic lives in ``scripts/benchmarks/<topic>.py`` with ``main(argv) -> None`` (a ValueError for bad options,
printed here as one line, exit code 2); results are recorded by hand in docs/BENCHMARKS.md. ``--quick`` shrinks
sizes so the code path can be checked in seconds (the tests do this). ``benchmark.py train --help`` lists its options.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOPICS = ("model", "data", "loss", "partitions", "clicks", "train")
HERE = Path(__file__).resolve().parent / "benchmarks"


def run(topic: str, argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location(f"featlib_bench_{topic}", HERE / f"{topic}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(f"\n=== benchmark: {topic} ===", flush=True)
    try:
        module.main(argv)
    except ValueError as e:
        print(f"benchmark.py {topic}: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in TOPICS + ("all",):
        sys.exit(f"usage: benchmark.py {{{'|'.join(TOPICS)}|all}} [options]")
    topic, rest = argv[0], argv[1:]
    for t in TOPICS if topic == "all" else (topic,):
        if (HERE / f"{t}.py").exists():
            run(t, rest)
        else:
            print(f"(no benchmark for {t} yet)")


if __name__ == "__main__":
    main()
