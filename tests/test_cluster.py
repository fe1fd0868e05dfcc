import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from featlib.cluster import FixedPartitioner, Hierarchy, build_hierarchy, lab_hierarchy, seed_watershed
from featlib.data.synthetic import make_scene
from featlib.distances import distance_mesh, lab_features
from featlib.merging import _adjacency, merge_regions, region_descriptors
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


def _greedy_merges_reference(regions, mesh, size_prior, contrast, features=None, weight=0.0, region_area=250.0):
    """The merge loop written plainly: recompute every adjacent pair's cost each step, merge the cheapest (with
    ``weight``: each cluster's mean features taken afresh from its pixels, every stride upsampled by repetition)."""
    h, w = regions.shape
    full = {s: f.repeat(s, 1).repeat(s, 2)[:, :h, :w] for s, f in (features or {}).items()}
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
        if weight:
            cluster = owner[regions]
            dist = np.zeros(len(pa))
            for f in full.values():
                mean = np.stack([np.bincount(cluster.ravel(), weights=c.ravel(), minlength=r) for c in f], 1)
                mean = mean / np.maximum(np.bincount(cluster.ravel(), minlength=r), 1)[:, None]
                dist += np.linalg.norm(mean[pa] - mean[pb], axis=1) / np.sqrt(len(f)) / len(full)
            cost = cost * (1 + weight * dist * m / (m + region_area))
        i = int(np.argmin(cost))
        level = max(level, cost[i])
        merges.append((int(pa[i]), int(pb[i])))
        heights.append(level)
        keep, gone = (pa[i], pb[i])
        owner[owner == gone] = keep
    return merges, np.array(heights)


@pytest.mark.parametrize("contrast, weight", [(0.0, 0.0), (0.01, 0.0), (0.0, 4.0)])
def test_compiled_merge_loop_matches_plain_greedy_merging(contrast, weight):
    img = data.astronaut()[100:164, 180:244]  # 64 x 64: a face, hair and background
    mesh = distance_mesh(lab_features(img))
    regions = seed_watershed(mesh, 6)
    rgb = (np.moveaxis(img, -1, 0) / 255).astype(np.float32)  # features are float32, as FeatureNet gives them
    feats = {1: rgb, 4: rgb.reshape(3, 16, 4, 16, 4).transpose(0, 2, 4, 1, 3).reshape(48, 16, 16)}  # 4x4 patches
    desc = region_descriptors(regions, feats) if weight else None
    merges, heights, _, _ = merge_regions(regions, mesh, 64.0, contrast, desc, weight, 20.0)
    ref_merges, ref_heights = _greedy_merges_reference(regions, mesh, 64.0, contrast, feats, weight, 20.0)
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


def test_region_descriptors_are_sums_of_every_strides_cell_per_region():
    rng = np.random.default_rng(0)
    regions = rng.integers(0, 5, (10, 13))
    feats = {1: rng.random((3, 10, 13)), 4: rng.random((48, 3, 4))}
    desc, offsets = region_descriptors(regions, feats)
    assert desc.shape == (5, 51) and offsets.tolist() == [0, 3, 51]
    up = feats[4].repeat(4, 1).repeat(4, 2)[:, :10, :13]  # the cell each pixel lies in
    for k in range(5):
        np.testing.assert_allclose(desc[k, :3], feats[1][:, regions == k].sum(1))
        np.testing.assert_allclose(desc[k, 3:], up[:, regions == k].sum(1))
    with pytest.raises(ValueError, match="stride 4 features are 2 x 4"):
        region_descriptors(regions, {4: rng.random((48, 2, 4))})


def test_region_means_keep_apart_two_halves_that_no_boundary_separates():
    """A flat boundary mesh says nothing; features that differ between the halves make them the last merge."""
    h, w = 32, 48
    mesh = distance_mesh(np.zeros((1, h, w), np.float32))
    mesh.dy[:] = mesh.dx[:] = 0.1
    regions = (np.arange(h)[:, None] // 8) * 6 + np.arange(w)[None] // 8  # 8 x 8 blocks, 4 x 6 of them
    halves = (np.arange(w) >= 24)[None].repeat(h, 0)
    feats = {1: np.stack([halves.astype(float) * 0.8, np.full((h, w), 0.5)])}
    merges, heights, pairs, edge_height = merge_regions(regions, mesh, 16.0, 0.0, region_descriptors(regions, feats),
                                                        4.0)
    hier = Hierarchy(regions, merges, heights, mesh, pairs, edge_height)
    two = hier.partition(n_segments=2)
    assert mean_best_iou(two, halves.astype(int)) == pytest.approx(1.0)
    assert heights[-1] > 2 * heights[-2]  # the halves merge far above everything inside them
    with pytest.raises(ValueError, match="needs descriptors"):
        merge_regions(regions, mesh, 16.0, 0.0, None, 4.0)
