"""Training: configs, two-process DDP through `accelerate launch`, exact resume, kill -9 during checkpointing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from featlib.train import (CollapseAlarm, ConfigError, TrainConfig, check_world_size, list_checkpoints,
                           load_config, load_model_checkpoint, lr_factor, read_metrics)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_accelerate.py"
TINY = ["image_size=64", "scene_size=96", "n_train=8", "n_val=2", "batch_size=2", "max_instances=16",
        "val_every=0", "image_every=0", "log_every=1", "tracker=none", "progress=false"]


def run(args, tmp_path, launcher=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = (launcher or [sys.executable]) + [str(SCRIPT), "--config", str(ROOT / "configs" / "demo.yaml")] + args
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, **kw)


def tiny(tmp_path, *extra):
    return TINY + [f"data_root={tmp_path / 'data'}", f"output_dir={tmp_path / 'run'}", *extra]


@pytest.mark.parametrize("override, message", [
    ("learning_rate=0.1", "unknown config key"),
    ("max_steps=ten", "must be"),
    ("data=/no/such/sa1b", "data path not found"),
    ("push_pairs=some", "push_pairs"),
])
def test_config_errors_fail_fast_with_one_message(tmp_path, override, message):
    res = run([override, f"output_dir={tmp_path / 'run'}"], tmp_path)
    assert res.returncode == 2
    assert message in res.stderr and res.stderr.count("\n") <= 2, res.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_load_config_types_and_overrides(tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml", ["lr=1e-3", "stride_weights={1: 1, 16: 2}", "stop_at=5"])
    assert isinstance(cfg, TrainConfig) and cfg.lr == 1e-3 and cfg.stride_weights == {1: 1, 16: 2}
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_lr_schedule_and_collapse_alarm():
    cfg = TrainConfig(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    f = [lr_factor(s, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] >= 0.1
    alarm = CollapseAlarm(0.01, patience=2)
    assert not alarm.update(0.5) and not alarm.update(0.001) and alarm.update(0.002) and alarm.fired
    assert not alarm.update(0.5)


def test_world_size_mismatch_is_loud(monkeypatch):
    class Fake:
        num_processes = 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="--multi_gpu"):
        check_world_size(Fake())


def test_two_cpu_processes_stay_in_sync(tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517"]
    res = run(["--cpu"] + tiny(tmp_path, "max_steps=3", "checkpoint_every=3"), tmp_path, launcher=launcher)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3
    a, b = summary["replica_fingerprints"]
    assert a == b  # gradients were all-reduced: identical parameters on both ranks
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_000003"]
    ckpt = tmp_path / "run" / "checkpoints" / "step_000003"
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()


def test_resume_matches_straight_run(tmp_path):
    straight = run(tiny(tmp_path / "a", "max_steps=6", "checkpoint_every=3"), tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]
    first = run(tiny(tmp_path / "b", "max_steps=6", "stop_at=3", "checkpoint_every=3"), tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run(["--resume", "latest"] + tiny(tmp_path / "b", "max_steps=6", "checkpoint_every=3"), tmp_path)
    assert second.returncode == 0 and "resumed from" in second.stdout + second.stderr, second.stderr[-2000:]
    a = load_model_checkpoint(tmp_path / "a" / "run").state_dict()
    b = load_model_checkpoint(tmp_path / "b" / "run").state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    sa = json.loads((tmp_path / "a" / "run" / "run_summary.json").read_text())
    sb = json.loads((tmp_path / "b" / "run" / "run_summary.json").read_text())
    assert sa["final_loss"] == pytest.approx(sb["final_loss"], rel=1e-4, abs=1e-6)

    def logged_steps(d):
        return [r["step"] for r in read_metrics(d) if "loss/total" in r]

    assert logged_steps(tmp_path / "b" / "run") == logged_steps(tmp_path / "a" / "run")  # no step logged twice
    again = run(tiny(tmp_path / "a", "max_steps=6", "checkpoint_every=3"), tmp_path)  # fresh run, same output_dir
    assert again.returncode == 0 and "checkpoints of an earlier run" in again.stdout + again.stderr
    assert logged_steps(tmp_path / "a" / "run") == logged_steps(tmp_path / "b" / "run")


def test_kill_during_checkpointing_keeps_previous_checkpoint(tmp_path):
    args = tiny(tmp_path, "max_steps=400", "checkpoint_every=1", "keep_checkpoints=2", "image_size=64")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(ROOT / "configs" / "demo.yaml")] + args,
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list_checkpoints(tmp_path / "run")) < 2:
            time.sleep(0.05)
        time.sleep(0.37)  # land somewhere in the middle of a later checkpoint write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpts = list_checkpoints(tmp_path / "run")
    assert ckpts, "no complete checkpoint survived"
    step = int(ckpts[-1].name.split("_")[1])
    res = run(["--resume", "latest"] + args[:-4] + ["max_steps=400", f"stop_at={step + 1}", "checkpoint_every=1000"],
              tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"at step {step}" in res.stdout + res.stderr


def test_full_run_config_is_valid_apart_from_its_data(tmp_path):
    from featlib.data.synthetic import write_scenes

    write_scenes(tmp_path, 2, size=(48, 64), shards=1)
    cfg = load_config(ROOT / "configs" / "sa1b_l0.yaml", [f"data={tmp_path / 'sa_000000.tar'}"])
    assert cfg.backbone == "l0" and cfg.image_size == 1024 and cfg.mixed_precision == "bf16"


def test_training_on_tar_shards_runs(tmp_path):
    from featlib.data.synthetic import write_scenes

    write_scenes(tmp_path / "shards", 6, size=(48, 64), shards=2)
    res = run(tiny(tmp_path, f"data={tmp_path / 'shards'}/*.tar", "max_steps=2", "checkpoint_every=2"), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "run_summary.json").read_text())["step"] == 2


def test_demo_script_smoke(tmp_path):
    """`make demo`'s script end to end in smoke sizes: trains, picks stride weights on training scenes, compares
    with raw RGB, writes the figure and the summary."""
    env = {**os.environ, "FEATLIB_SMOKE": "1", "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), f"data_root={tmp_path / 'data'}",
                          f"output_dir={tmp_path / 'out'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["held_out_scenes"] == 2
    assert summary["stride_weights"]["chosen"] in summary["stride_weights"]["train_scores"]
    for key in ("learned", "learned_equal_weights", "raw_rgb"):
        assert 0.0 <= summary["mean_best_iou"][key] <= 1.0
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    assert "raw RGB" in res.stdout
