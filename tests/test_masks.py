"""Compact mask transport (featlib.data.masks): bit-packed rows round-trip exactly to dense masks."""

import numpy as np
import pytest
import torch

from featlib.data import masks as M


def _sample(rng, s, k, pad=0):
    """A compact sample with k random masks (some touching the borders) and its dense truth."""
    masks = rng.random((k, s, s)) < rng.uniform(0.0, 0.3, (k, 1, 1))
    if k:
        masks[0, 0, 0] = masks[0, s - 1, s - 1] = True       # corners
        masks[-1, :, s - 1] = True                           # the last column: the padded bits of an odd width
        masks[-1, s // 2] = False                            # a row with nothing: not stored
    valid = np.zeros((s, s), bool)
    valid[:s - pad, :s - pad] = True
    rows, index = M.compact_masks(masks)
    sample = {"image": torch.from_numpy(rng.integers(0, 256, (3, s, s), dtype=np.uint8)),
              "valid_pixels": torch.from_numpy(M.pack_rows(valid)), "mask_rows": rows, "mask_row_index": index,
              "mask_id": torch.arange(k, dtype=torch.int64) + 100, "area": torch.from_numpy(masks.sum((1, 2))),
              "predicted_iou": torch.full((k,), 0.9), "stability_score": torch.full((k,), 0.95)}
    return sample, torch.from_numpy(masks), torch.from_numpy(valid)


@pytest.mark.parametrize("s", [8, 13, 37, 64])
def test_pack_unpack_round_trip_odd_widths(s):
    x = np.random.default_rng(s).random((5, 3, s)) < 0.5
    packed = M.pack_rows(x)
    assert packed.shape == (5, 3, (s + 7) // 8) and packed.dtype == np.uint8
    assert np.array_equal(M.unpack_rows(torch.from_numpy(packed), s).numpy().astype(bool), x)


@pytest.mark.parametrize("s", [16, 21, 40])
def test_batch_round_trip_is_exact(s):
    rng = np.random.default_rng(s)
    parts = [_sample(rng, s, k, pad) for k, pad in ((3, 0), (0, 5), (6, 2))]   # K differs, one sample has none
    batch = M.collate_compact([p[0] for p in parts])
    k = 6
    expected = torch.zeros(3, k, s, s, dtype=torch.bool)
    for i, (_, m, _) in enumerate(parts):
        expected[i, :len(m)] = m
    assert torch.equal(M.dense_masks(batch), expected)
    assert batch["mask_valid"].tolist() == [[True] * 3 + [False] * 3, [False] * 6, [True] * 6]
    assert batch["padded"] and not M.collate_compact([parts[0][0]])["padded"]  # only the first sample has no pad
    assert batch["mask_id"][0].tolist() == [100, 101, 102, 0, 0, 0]
    for sample, m, v in parts:
        assert torch.equal(M.dense_masks(sample), m) and torch.equal(M.dense_valid_pixels(sample), v)
    dev = M.to_device(batch, "cpu", non_blocking=False)
    assert torch.equal(dev["masks"], expected) and dev["masks"].dtype == torch.bool
    assert torch.equal(dev["valid_pixels"], torch.stack([p[2] for p in parts]))
    assert dev["image"].dtype == torch.float32 and torch.equal(dev["image"], batch["image"].float() / 255)
    assert torch.equal(dev["mask_valid"], batch["mask_valid"]) and torch.equal(dev["mask_id"], batch["mask_id"])
    assert M.batch_nbytes(batch) == sum(v.numel() * v.element_size() for v in batch.values() if torch.is_tensor(v))


def test_empty_batch_k0():
    rng = np.random.default_rng(0)
    batch = M.collate_compact([_sample(rng, 12, 0)[0], _sample(rng, 12, 0)[0]])
    assert batch["mask_rows"].shape == (0, 2) and batch["mask_valid"].shape == (2, 0)
    dev = M.to_device(batch, "cpu")
    assert dev["masks"].shape == (2, 0, 12, 12) and M.dense_masks(batch).shape == (2, 0, 12, 12)


def test_piece_rows_matches_compact_masks():
    s = 30
    piece = np.zeros((7, 9), bool)
    piece[0, :] = piece[6, 4] = True      # first and last row of the box; rows 1-5 hold nothing but row 6's pixel
    rows, ys = M.piece_rows(piece, 23, 21, s)  # the box reaches the right and bottom borders
    dense = np.zeros((1, s, s), bool)
    dense[0, 23:30, 21:30] = piece
    ref_rows, ref_index = M.compact_masks(dense)
    assert np.array_equal(rows, ref_rows.numpy()) and np.array_equal(ys, ref_index.numpy()) and ys.tolist() == [23, 29]


def test_bad_input_raises_value_error_naming_the_problem():
    rng = np.random.default_rng(1)
    sample = _sample(rng, 16, 2)[0]
    batch = M.collate_compact([sample])
    with pytest.raises(ValueError, match="image must be uint8"):
        M.to_device({**batch, "image": batch["image"].float()}, "cpu")
    with pytest.raises(ValueError, match="mask_rows must be"):
        M.to_device({**batch, "mask_rows": batch["mask_rows"][:, :1]}, "cpu")
    with pytest.raises(ValueError, match="mask_row_index must be torch.int64"):
        M.to_device({**batch, "mask_row_index": batch["mask_row_index"].int()}, "cpu")
    with pytest.raises(ValueError, match="mask_row_index must lie in"):
        M.dense_masks({**batch, "mask_row_index": batch["mask_row_index"] + 2 * 16})
    with pytest.raises(ValueError, match="valid_pixels must be"):
        M.dense_masks({**batch, "valid_pixels": torch.ones(1, 16, 16, dtype=torch.bool)})
    with pytest.raises(ValueError, match="lacks tensor 'mask_rows'"):
        M.dense_masks({k: v for k, v in batch.items() if k != "mask_rows"})
    with pytest.raises(ValueError, match="collated batch"):
        M.to_device(sample, "cpu")
    with pytest.raises(ValueError, match="mask_row_index must lie in"):
        M.collate_compact([{**sample, "mask_row_index": sample["mask_row_index"] - 100}])
    with pytest.raises(ValueError, match="different image shapes"):
        M.collate_compact([sample, _sample(rng, 24, 1)[0]])
    with pytest.raises(ValueError, match="bool"):
        M.compact_masks(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="does not fit"):
        M.piece_rows(np.ones((2, 5), bool), 0, 12, 16)
    with pytest.raises(ValueError, match="packed rows must be uint8"):
        M.unpack_rows(torch.zeros(3, 2, dtype=torch.uint8), 17)


def test_pinning_keeps_names_and_skip_counts(monkeypatch):
    """DataLoader(pin_memory=True) pins a collated batch through its own pin_memory(): tensors pinned, the skipped
    Counter and the names unchanged (torch's generic path would add the Counter's counts twice)."""
    from collections import Counter

    from torch.utils.data._utils.pin_memory import pin_memory

    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a: pinned.append(self) or self)  # no CUDA here
    batch = M.Batch(M.collate_compact([_sample(np.random.default_rng(2), 16, 2)[0]]), name=["a"],
                    skipped=Counter(corrupt_image=1))
    out = pin_memory(batch)
    assert isinstance(out, M.Batch) and out["skipped"] == {"corrupt_image": 1} and out["name"] == ["a"]
    assert len(pinned) == sum(isinstance(v, torch.Tensor) for v in batch.values())


def test_to_device_reads_no_value_on_the_host(no_host_reads):
    """to_device is on every training step's path: no tensor becomes a Python value (the CPU runs ahead)."""
    batch = M.collate_compact([_sample(np.random.default_rng(3), 24, 3)[0]])
    expected = M.dense_masks(batch)

    with no_host_reads():
        dev = M.to_device(batch, "cpu")
    assert torch.equal(dev["masks"], expected)
