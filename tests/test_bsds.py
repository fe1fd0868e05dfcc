import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from conftest import write_fake_bsds
from featlib.data.bsds import (
    BSDSTrain,
    bsds_ids,
    bsds_instances,
    colour_jitter,
    fold_split,
    holdout_split,
    load_bsds,
    read_ground_truth,
)
from featlib.data.masks import dense_masks, dense_valid_pixels


def test_reads_shared_bsds_val(shared):
    root = shared / "datasets" / "bsds500"
    rec = next(load_bsds(root, "val", limit=1))
    assert rec.image.dtype == np.uint8 and rec.image.ndim == 3
    assert len(rec.segmentations) >= 3  # several annotators
    for seg, bnd in zip(rec.segmentations, rec.boundaries):
        assert seg.shape == rec.image.shape[:2] and seg.min() == 0
        assert bnd.dtype == bool
    assert len(bsds_ids(root, "val")) == 100


def test_synthetic_mat_round_trip(tmp_path):
    seg = np.array([[1, 1, 2], [3, 3, 2]], dtype=np.uint16)
    cell = np.empty((1, 2), dtype=object)
    for i in range(2):
        cell[0, i] = {"Segmentation": seg, "Boundaries": np.zeros_like(seg, dtype=bool)}
    savemat(tmp_path / "x.mat", {"groundTruth": cell})
    segs, bnds = read_ground_truth(tmp_path / "x.mat")
    assert len(segs) == 2 and segs[0].tolist() == [[0, 0, 1], [2, 2, 1]]
    inst = bsds_instances(segs[0])
    assert inst.shape == (3, 2, 3) and inst.sum() == 6


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="split"):
        bsds_ids(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match="images"):
        bsds_ids(tmp_path, "val")
    (tmp_path / "bad.mat").write_bytes(b"nope")
    with pytest.raises(ValueError, match="groundTruth"):
        read_ground_truth(tmp_path / "bad.mat")


def test_holdout_split_is_disjoint_spread_and_complete():
    ids = [f"{i:03d}" for i in range(200)]
    train, held = holdout_split(ids, 20)
    assert len(held) == 20 and len(train) == 180 and not set(train) & set(held) and set(train) | set(held) == set(ids)
    pos = sorted(ids.index(i) for i in held)
    assert pos[0] < 10 and pos[-1] > 190 and max(np.diff(pos)) <= 11  # spread over the id range, not the tail
    assert holdout_split(ids, 0) == (ids, [])
    with pytest.raises(ValueError, match="leaves no training"):
        holdout_split(ids, 200)


def test_fold_split_partitions_the_ids_into_interleaved_folds():
    ids = [f"{i:03d}" for i in range(181)]
    folds = [fold_split(ids, k, 2) for k in (0, 1)]
    for train, fold in folds:
        assert not set(train) & set(fold) and set(train) | set(fold) == set(ids)
    assert set(folds[0][1]) | set(folds[1][1]) == set(ids) and not set(folds[0][1]) & set(folds[1][1])
    assert len(folds[0][1]) == 91 and len(folds[1][1]) == 90 and folds[1][0] == folds[0][1]
    assert [ids.index(i) for i in fold_split(ids, 1, 3)[1][:3]] == [1, 4, 7]  # every n-th: spans the id range
    for k, n in ((2, 2), (-1, 2), (0, 1)):
        with pytest.raises(ValueError, match="fold must be"):
            fold_split(ids, k, n)
    with pytest.raises(ValueError, match="at least 5 images"):
        fold_split(ids[:4], 0, 5)


@pytest.fixture(scope="module")
def fake_train(tmp_path_factory):
    root = tmp_path_factory.mktemp("bsds")
    write_fake_bsds(root, n=3, split="train", size=(120, 160))
    return root


def test_native_scale_crops_are_windows_of_the_photo(fake_train):
    ds = BSDSTrain(fake_train, "train", size=64, scale=(1.0, 1.0), augment=True, seed=3)
    photo = np.asarray(Image.open(fake_train / "images" / "train" / "0.jpg").convert("RGB")).astype(np.float32) / 255
    for epoch in range(3):
        ds.set_epoch(epoch)
        crop = ds[0]["image"].permute(1, 2, 0).numpy().astype(np.float32) / 255
        # scale 1: a 64 x 64 window of the photo itself (maybe mirrored), not the photo shrunk into 64 px
        wins = [photo[y:y + 64, x:x + 64] for y in range(0, 120 - 63) for x in range(0, 160 - 63)]
        err = min(min(np.abs(w - crop).mean(), np.abs(w[:, ::-1] - crop).mean()) for w in wins)
        assert err < 2e-3
    fitted = dense_valid_pixels(BSDSTrain(fake_train, "train", size=64, augment=False)[0])
    assert fitted.float().mean() < 0.9  # the whole 120 x 160 photo fitted into 64 px leaves padding rows


def test_annotators_all_gives_every_annotators_segments(fake_train):
    segs, _ = read_ground_truth(fake_train / "groundTruth" / "train" / "0.mat")
    one = BSDSTrain(fake_train, "train", size=64, augment=False, annotators="one")[0]
    every = BSDSTrain(fake_train, "train", size=64, augment=False, annotators="all")[0]
    assert len(every["mask_id"]) > len(one["mask_id"])
    assert set((every["mask_id"] // 1000).tolist()) == set(range(len(segs)))  # ids say which annotator


def test_colour_jitter_moves_colours_not_masks(fake_train):
    plain = BSDSTrain(fake_train, "train", size=64, seed=1)[1]
    jit = BSDSTrain(fake_train, "train", size=64, seed=1, jitter=0.3)[1]
    assert torch.equal(dense_masks(plain), dense_masks(jit))
    assert (plain["image"].float() - jit["image"].float()).abs().mean() / 255 > 0.01
    assert jit["image"].dtype == torch.uint8  # jittered in [0, 1], rounded back to the sample's uint8
    x = torch.rand(3, 8, 8)
    assert torch.equal(colour_jitter(x, 0.0, np.random.default_rng(0)), x)


def test_bsds_train_errors(fake_train):
    with pytest.raises(ValueError, match="annotators"):
        BSDSTrain(fake_train, "train", annotators="some")
    with pytest.raises(ValueError, match="scale"):
        BSDSTrain(fake_train, "train", scale=(1.2, 0.8))
