"""InfiniteLoader: persistent workers over epochs, exact resume, and loud failures instead of silent hangs."""

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from featlib.config import ConfigError, TrainConfig
from featlib.data import sa1b_dataset
from featlib.data.loaders import InfiniteLoader
from featlib.data.masks import META_KEYS
from featlib.data.synthetic import write_scenes

ROOT = Path(__file__).resolve().parents[1]


class Tiny(torch.utils.data.Dataset):
    """Empty 8 x 8 compact samples named "pid:epoch:index": which process read which item in which epoch."""

    def __init__(self, n: int):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        meta = {k: torch.zeros(0, dtype=torch.int64 if k in ("mask_id", "area") else torch.float32)
                for k in META_KEYS}
        return {"image": torch.zeros(3, 8, 8, dtype=torch.uint8),
                "valid_pixels": torch.full((8, 1), 255, dtype=torch.uint8),
                "mask_rows": torch.zeros(0, 1, dtype=torch.uint8), "mask_row_index": torch.zeros(0, dtype=torch.int64),
                **meta, "name": f"{os.getpid()}:{self.epoch}:{i}"}


def _names(loader, n):
    return [name for _ in range(n) for name in next(loader)["name"]]


def test_workers_persist_across_epochs_and_resume_is_exact():
    cfg = TrainConfig(batch_size=2, num_workers=2, seed=3)
    loader = InfiniteLoader(Tiny(8), cfg, 0, 1)
    names = [n.split(":") for n in _names(loader, 12)]  # 3 epochs of 4 batches
    pids = {p for p, _, _ in names}
    assert len(pids) <= 2 and str(os.getpid()) not in pids  # the same two workers all along
    assert [int(e) for _, e, _ in names] == [0] * 8 + [1] * 8 + [2] * 8  # the epoch reached the workers
    for e in range(3):
        assert sorted(int(i) for _, _, i in names[8 * e:8 * e + 8]) == list(range(8))
    assert [i for _, _, i in names[:8]] != [i for _, _, i in names[8:16]]  # reshuffled per epoch
    assert loader.state_dict() == {"epoch": 3, "batch_index": 0}

    straight = InfiniteLoader(Tiny(8), cfg, 0, 1)
    _names(straight, 5)
    state = straight.state_dict()
    assert state == {"epoch": 1, "batch_index": 1}
    resumed = InfiniteLoader(Tiny(8), TrainConfig(batch_size=2, num_workers=0, seed=3), 0, 1)
    resumed.load_state_dict(state)
    drop_pid = [n.split(":", 1)[1] for n in _names(straight, 6)]
    assert [n.split(":", 1)[1] for n in _names(resumed, 6)] == drop_pid


def test_streams_loop_their_shards_without_ending(tmp_path):
    write_scenes(tmp_path, 4, size=(32, 48), shards=2, seed=1)
    ds = sa1b_dataset(str(tmp_path / "*.tar"), size=48, shuffle_buffer=1)
    loader = InfiniteLoader(ds, TrainConfig(batch_size=2, num_workers=2), 0, 1)
    batches = [next(loader) for _ in range(6)]  # each worker's shard holds one batch: 3 passes each
    names = [n.rsplit(":", 1)[1] for b in batches for n in b["name"]]
    assert sorted(set(names)) == ["sa_1", "sa_2", "sa_3", "sa_4"] and len(names) == 12
    assert all(b["image"].dtype == torch.uint8 and b["skipped"] == {} for b in batches)


@pytest.mark.parametrize("world, workers, shards", [(2, 0, 1), (1, 2, 1), (4, 2, 6)])
def test_too_few_shards_fail_at_start_naming_the_counts(tmp_path, world, workers, shards):
    write_scenes(tmp_path, shards, size=(32, 48), shards=shards)
    ds = sa1b_dataset(str(tmp_path / "*.tar"), size=48, rank=0, world_size=world)
    need = world * max(1, workers)
    with pytest.raises(ConfigError, match=f"need at least {need} shards, there are {shards}"):
        InfiniteLoader(ds, TrainConfig(num_workers=workers), 0, world)
    if workers == 0:  # a plain DataLoader fails when iteration starts (with workers: in each, re-raised here)
        with pytest.raises(ConfigError, match="need at least"):
            next(iter(torch.utils.data.DataLoader(ds, batch_size=1, collate_fn=list)))


def test_fewer_samples_than_a_batch_per_rank_fail_at_start():
    with pytest.raises(ConfigError, match=r"3 samples over 2 rank\(s\) are fewer than batch_size=2"):
        InfiniteLoader(Tiny(3), TrainConfig(batch_size=2), 0, 2)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_stream_pass_without_usable_samples_raises(tmp_path, workers):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(3):  # annotations without photos: every sample is a missing_pair
            info = tarfile.TarInfo(f"sa_{i}.json")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    loader = InfiniteLoader(sa1b_dataset(path, size=32), TrainConfig(batch_size=2, num_workers=workers), 0, 1)
    with pytest.raises(RuntimeError, match=r"bad\.tar.*no usable sample"):
        next(loader)


def test_a_map_epoch_without_usable_samples_raises(tmp_path):
    write_scenes(tmp_path, 4, size=(32, 48))
    for js in tmp_path.glob("*.json"):
        js.write_text("{ not json")
    loader = InfiniteLoader(sa1b_dataset(tmp_path, size=48), TrainConfig(batch_size=2), 0, 1)
    with pytest.raises(RuntimeError, match=f"SA1BFolder at {tmp_path}: a whole epoch"):
        next(loader)
    assert loader.skipped == {"invalid_json": 4}


def test_two_ranks_one_shard_exit_loudly_instead_of_hanging(tmp_path):
    write_scenes(tmp_path / "shard", 2, size=(32, 48), shards=1)
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
           str(ROOT / "scripts" / "train_accelerate.py"), "--cpu", "--config", str(ROOT / "configs" / "demo.yaml"),
           f"data={tmp_path / 'shard'}", "image_size=64", "batch_size=2", "max_steps=2", "tracker=none",
           "progress=false", "val_every=0", "image_every=0", f"output_dir={tmp_path / 'run'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and time.perf_counter() - start < 60
    assert "need at least 2 shards, there are 1" in res.stdout + res.stderr, res.stderr[-3000:]
