"""The scripts' command-line convention (featlib.cli): dataset names, result paths that never overwrite, exit 2."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featlib import cli
from featlib.data.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]


def test_result_path_never_overwrites(tmp_path):
    default = tmp_path / "res" / "a.json"
    assert cli.result_path(None, default) == default
    default.parent.mkdir()
    default.write_text("{}")
    assert cli.result_path(None, default) == tmp_path / "res" / "a-2.json"
    (tmp_path / "res" / "a-2.png").write_text("")  # a plot alone also holds its name
    assert cli.result_path(None, default) == tmp_path / "res" / "a-3.json"
    with pytest.raises(ValueError, match="exists"):
        cli.result_path(default, default)
    assert cli.result_path(default, tmp_path / "other.json", overwrite=True) == default
    assert cli.result_path(tmp_path / "new.json", default) == tmp_path / "new.json"


def test_names_and_one_line_errors(capsys):
    assert cli.canonical_dataset("bsds500") == "bsds500" and capsys.readouterr().err == ""
    assert cli.canonical_dataset("bsds") == "bsds500" and "deprecated" in capsys.readouterr().err
    assert cli.slug("lab") == "lab" and cli.slug("runs/x/model.pt") == "x-model"
    assert cli.slug("bsds500-b0+lab-smooth") == "bsds500-b0+lab-smooth"
    assert cli.fail("bad\nthing  here") == 2
    assert capsys.readouterr().err == "error: bad thing here\n"
    with pytest.raises(ValueError, match="--workers"):
        cli.check_workers(0)


@pytest.fixture
def seg(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    spec = importlib.util.spec_from_file_location("featlib_segment_images_cli", ROOT / "scripts" / "segment_images.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_segment_images_default_output_and_bad_levels(seg, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(make_scene(np.random.default_rng(0), (32, 48)).image).save(src / "a.png")
    monkeypatch.chdir(tmp_path)
    assert seg.main(["--features", "lab", "--input", str(src), "--levels", "3"]) == 0
    assert "outputs/segments/lab" in capsys.readouterr().out
    assert (tmp_path / "outputs" / "segments" / "lab" / "a.npz").is_file()
    for levels in ("3,x", "0"):
        assert seg.main(["--features", "lab", "--input", str(src), "--levels", levels]) == 2
        err = capsys.readouterr().err
        assert "--levels" in err and len(err.strip().splitlines()) == 1


_WORKER = '''
import torch

def job(n):
    """A parallel torch op (conv over 64 channels uses the intra-op thread pool) -> a number."""
    x = torch.ones(1, 64, 96, 96)
    return float(torch.nn.functional.conv2d(x, torch.ones(64, 64, 3, 3)).sum()) + n
'''


def test_process_pool_after_torch_ran_here(tmp_path):
    """Workers start from a forkserver, not as forks of a process whose torch threads ran (that fork hangs in the
    child's first parallel op); a job function from a script loaded by file path under its own name is importable
    in them."""
    path = tmp_path / "pool_script.py"
    path.write_text(_WORKER)
    spec = importlib.util.spec_from_file_location("featlib_pool_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["featlib_pool_script"] = mod  # as tests load scripts; the workers cannot import it by name
    try:
        here = [mod.job(n) for n in range(3)]  # torch's thread pool now runs in this process
        pool = cli.process_pool(2, mod.job)
        try:
            futures = [pool.submit(mod.job, n) for n in range(3)]
            assert [f.result(timeout=120) for f in futures] == here
        finally:
            for p in list(getattr(pool, "_processes", {}).values()):  # never leave a hung worker behind
                p.kill()
            pool.shutdown(wait=False, cancel_futures=True)
    finally:
        sys.modules.pop("featlib_pool_script", None)
