"""Every benchmark's code path runs in --quick mode (the numbers themselves live in docs/BENCHMARKS.md)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("topic", ["model", "data", "loss", "partitions", "clicks", "train"])
def test_benchmark_quick(topic):
    if not (ROOT / "scripts" / "benchmarks" / f"{topic}.py").exists():
        pytest.skip(f"no {topic} benchmark")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), topic, "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "x" in res.stdout  # every benchmark prints ratios


def _train_benchmark():
    spec = importlib.util.spec_from_file_location("featlib_bench_train", ROOT / "scripts" / "benchmarks" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state: the in-process benchmark's bf16 Accelerator would refuse the
    float32 ones that other tests in this process build, and the other way round. Reset it before and after, as
    accelerate's own tests do, so the order of test files does not matter."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_train_benchmark_reports_out_of_memory_and_stops(monkeypatch, capsys, fresh_accelerate_state):
    """An out-of-memory error at some batch size is a row of the table, not a crash; larger sizes are not tried."""
    bench = _train_benchmark()
    real = bench.measure

    def measure(accelerator, t, cfg, next_batch, *args):
        if next_batch()["image"].shape[0] >= 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(accelerator, t, cfg, next_batch, *args)

    monkeypatch.setattr(bench, "measure", measure)
    result = bench.run(bench.parse_args(["--quick", "--no-loader", "--batch-sizes", "1,2,4"]))
    assert [(r["batch_size"], bool(r.get("oom"))) for r in result["rows"]] == [(1, False), (2, True)]
    assert result["largest_fitting_batch"] == 1 and result["first_oom_batch"] == 2
    bench.print_table(result)
    out = capsys.readouterr().out
    assert "out of memory" in out and "largest batch that fits: 1 (batch 2: out of memory)" in out


@pytest.mark.parametrize("args, message", [(["--batch-sizes", "0,2"], "positive"),
                                           (["--device", "cpu", "--max-batch", "8"], "--max-batch needs")])
def test_train_benchmark_bad_options_are_one_line_errors(args, message):
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "train", *args],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
