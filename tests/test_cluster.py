import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from featlib.cluster import FixedPartitioner, _adjacency, build_hierarchy, lab_hierarchy, merge_regions, seed_watershed
from featlib.data.synthetic import make_scene
from featlib.distances import distance_mesh, lab_features
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
    h = build_hierarchy(feats, mesh_weights={1: 1.0, 2: 1.0, 4: 2.0})
    assert h.shape == (64, 64) and h.partition(n_segments=7).max() == 6
    for method in ("slic", "felzenszwalb"):
        p = FixedPartitioner(img, method).partition(n_segments=20)
        assert p.shape == (64, 64) and _connected(p)
    with pytest.raises(ValueError, match="exactly one"):
        h.partition()
    with pytest.raises(ValueError, match="connectivity"):
        build_hierarchy(feats, connectivity=8)


def _greedy_merges_reference(regions, mesh, size_prior, contrast):
    """The merge loop written plainly: recompute every adjacent pair's cost each step, merge the cheapest."""
    pairs, sums, lens = _adjacency(regions, mesh)
    r = int(regions.max()) + 1
    area = np.bincount(regions.ravel(), minlength=r).astype(float)
    a_all = np.concatenate([regions[:-1, :].ravel(), regions[:, :-1].ravel()])
    b_all = np.concatenate([regions[1:, :].ravel(), regions[:, 1:].ravel()])
    d_all = np.concatenate([mesh.dy.ravel(), mesh.dx.ravel()]).astype(np.float64)
    owner = np.arange(r)  # initial region -> current cluster (the cluster keeps one member's id)
    merges, level, heights = [], 0.0, []
    while True:
        ca, cb = owner[a_all], owner[b_all]
        cross = ca != cb
        if not cross.any():
            break
        lo, hi = np.minimum(ca, cb), np.maximum(ca, cb)
        keys, inv = np.unique(lo[cross] * r + hi[cross], return_inverse=True)
        bsum = np.bincount(inv, weights=d_all[cross])
        blen = np.bincount(inv).astype(float)
        isum = np.bincount(ca[~cross], weights=d_all[~cross], minlength=r)
        icnt = np.bincount(ca[~cross], minlength=r).astype(float)
        carea = np.bincount(owner, weights=area, minlength=r)
        pa, pb = keys // r, keys % r
        m = np.minimum(carea[pa], carea[pb])
        cost = bsum / blen * m / (m + size_prior)
        if contrast:
            cost = cost / (contrast + (isum[pa] + isum[pb]) / np.maximum(icnt[pa] + icnt[pb], 1.0))
        i = int(np.argmin(cost))
        level = max(level, cost[i])
        merges.append((int(pa[i]), int(pb[i])))
        heights.append(level)
        keep, gone = (pa[i], pb[i])
        owner[owner == gone] = keep
    return merges, np.array(heights)


@pytest.mark.parametrize("contrast", [0.0, 0.01])
def test_compiled_merge_loop_matches_plain_greedy_merging(contrast):
    img = data.astronaut()[100:164, 180:244]  # 64 x 64: a face, hair and background
    mesh = distance_mesh(lab_features(img))
    regions = seed_watershed(mesh, 6)
    merges, heights, _, _ = merge_regions(regions, mesh, 64.0, contrast)
    ref_merges, ref_heights = _greedy_merges_reference(regions, mesh, 64.0, contrast)
    assert len(merges) == len(ref_merges) == regions.max()
    np.testing.assert_allclose(heights, ref_heights, rtol=1e-9)
    # same pairs of clusters in the same order (cluster ids may differ: compare the partitions they produce)
    def cuts(m):
        parent = np.arange(regions.max() + 1)
        out = []
        for a, b in m:
            ra, rb = parent[a], parent[b]
            parent[parent == rb] = ra
            out.append(frozenset(np.flatnonzero(parent == ra).tolist()))
        return out
    assert cuts(merges.tolist()) == cuts(ref_merges)
