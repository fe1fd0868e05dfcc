import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from featlib.cluster import FixedPartitioner, build_hierarchy, lab_hierarchy
from featlib.data.synthetic import make_scene
from featlib.metrics import mean_best_iou


@pytest.fixture(scope="module")
def hier():
    return lab_hierarchy(data.astronaut()[::4, ::4])  # 128 x 128


def _connected(labels):
    return all(ndimage.label(labels == v)[1] == 1 for v in np.unique(labels))


@pytest.mark.parametrize("n", [1, 5, 40, 200])
def test_partition_full_coverage_connected_exact_count(hier, n):
    p = hier.partition(n_segments=n)
    assert p.dtype == np.int32 and p.shape == (128, 128)
    assert set(np.unique(p)) == set(range(n))
    assert _connected(p)


def test_nested_across_thresholds(hier):
    fine, coarse = hier.partition(n_segments=60), hier.partition(n_segments=12)
    for v in np.unique(fine):  # every fine segment lies inside one coarse segment
        assert len(np.unique(coarse[fine == v])) == 1
    t = hier.thresholds(8)
    counts = [hier.partition(threshold=x).max() + 1 for x in t]
    assert counts == sorted(counts, reverse=True)
    assert hier.n_segments_at(t[3]) == counts[3]


def test_ucm_thresholds_give_the_partitions(hier):
    ucm = hier.ucm()
    assert ucm.shape == (257, 257)
    for t in hier.thresholds(5)[1:-1]:
        inside = ucm <= t
        lab, _ = ndimage.label(inside, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
        seg = lab[1::2, 1::2]
        ref = hier.partition(threshold=t)
        assert mean_best_iou(seg, ref + 1) == pytest.approx(1.0)


def test_recovers_synthetic_objects_from_their_instance_map():
    """On a perfect feature map (one-hot of the instances) the hierarchy recovers the instances exactly."""
    scene = make_scene(np.random.default_rng(4), (96, 128))
    n = scene.instances.max() + 1
    onehot = (scene.instances[None] == np.arange(n)[:, None, None]).astype(np.float32)
    h = build_hierarchy(onehot)
    # segments are connected, so compare with the connected pieces of the (occluded) instances
    pieces = np.zeros_like(scene.instances)
    for i in np.unique(scene.instances)[1:]:
        lab, n = ndimage.label(scene.instances == i)
        pieces[lab > 0] = lab[lab > 0] + pieces.max()
    seg = h.partition(n_segments=len(np.unique(pieces)))
    assert mean_best_iou(seg, pieces) > 0.95


def test_feature_dict_input_and_baselines():
    img = data.astronaut()[::8, ::8]
    feats = {s: torch.rand(3 * s * s, -(-64 // s), -(-64 // s)) for s in (1, 2, 4)}
    h = build_hierarchy(feats, stride_weights={1: 1.0, 2: 1.0, 4: 2.0})
    assert h.shape == (64, 64) and h.partition(n_segments=7).max() == 6
    for method in ("slic", "felzenszwalb"):
        p = FixedPartitioner(img, method).partition(n_segments=20)
        assert p.shape == (64, 64) and _connected(p)
    with pytest.raises(ValueError, match="exactly one"):
        h.partition()
    with pytest.raises(ValueError, match="connectivity"):
        build_hierarchy(feats, connectivity=8)
