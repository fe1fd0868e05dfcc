import numpy as np
import pytest
from scipy.io import savemat

from featlib.data.bsds import bsds_ids, bsds_instances, load_bsds, read_ground_truth


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
