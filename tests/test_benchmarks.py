"""Every benchmark's code path runs in --quick mode (the numbers themselves live in docs/BENCHMARKS.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("topic", ["model", "data", "loss", "partitions", "clicks"])
def test_benchmark_quick(topic):
    if not (ROOT / "scripts" / "benchmarks" / f"{topic}.py").exists():
        pytest.skip(f"no {topic} benchmark")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), topic, "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "x" in res.stdout  # every benchmark prints ratios
