"""scripts/gpu_check.py runs on CPU in quick mode, so it is not broken when a GPU appears (GPU numbers: its JSON)."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def test_gpu_check_quick_on_cpu_passes_every_check(tmp_path):
    res = _run("--device", "cpu", "--quick", "--output", str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["loss", "model", "benchmark", "training", "segment"]
    assert all(c["passed"] for c in checks.values()), {k: c["summary"] for k, c in checks.items()}
    cases = [c["case"] for c in checks["loss"]["cases"]]
    for part in ("narrow", "wide", "dense", "sparse", "fp32", "bf16", "MultiStrideLoss"):
        assert any(part in c for c in cases), part
    assert checks["model"]["finite"] and set(checks["model"]["per_stride"]) == {"1", "2", "4", "8", "16"}
    assert checks["benchmark"]["loader"]["img_per_s"] > 0 and checks["benchmark"]["largest_fitting_batch"] == 2
    assert checks["training"]["resumed"] and checks["training"]["checkpoints"] == ["step_000002", "step_000004"]
    assert not checks["training"]["collapse"] and math.isfinite(checks["segment"]["s_per_image"])
    for name in ("benchmark_train.json", "training_metrics.jsonl", "training_run_summary.json"):
        assert (tmp_path / name).is_file(), name
    assert "PASS" in res.stdout and "FAIL" not in res.stdout


def test_bad_arguments_are_one_line_errors(tmp_path):
    res = _run("--device", "cpu", "--quick", "--output", str(tmp_path), "--checks", "loss,nope", timeout=120)
    assert res.returncode == 2 and "unknown ['nope']" in res.stderr
    if not _cuda():
        res = _run("--output", str(tmp_path), timeout=120)
        assert res.returncode == 2 and "no CUDA device" in res.stderr


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_a_failing_check_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("featlib_gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, gpu_check)  # its dataclass looks its module up there
    spec.loader.exec_module(gpu_check)

    def broken(ctx):
        raise RuntimeError("simulated failure")

    monkeypatch.setitem(gpu_check.CHECKS, "model", broken)
    rc = gpu_check.main(["--device", "cpu", "--quick", "--output", str(tmp_path), "--checks", "model,loss"])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    model, loss = report["checks"]
    assert rc == 1 and not report["passed"]
    assert not model["passed"] and "simulated failure" in model["error"]
    assert loss["passed"]


def test_gpu_options_check_quick(tmp_path):
    """The optional check that measures channels_last and compile against the default (aot_eager on CPU)."""
    res = _run("--device", "cpu", "--quick", "--output", str(tmp_path), "--checks", "options")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (check,) = json.loads((tmp_path / "gpu_check.json").read_text())["checks"]
    assert set(check["rows"]) == {"default", "channels_last", "compile"}
    assert all(r["img_per_s"] > 0 for r in check["rows"].values())
