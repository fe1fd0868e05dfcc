import itertools

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from featlib.distances import DistanceMesh, distance_mesh, lab_features
from featlib.graphcut import (
    contrast_weights,
    edge_watershed,
    grid_seeds,
    maxflow_available,
    min_cut,
    pixel_strength,
    region_adjacency,
)
from featlib.merging import _adjacency

_NO_MAXFLOW = pytest.mark.skipif(not maxflow_available(), reason="no PyMaxflow")
BACKENDS = ["scipy", pytest.param("pymaxflow", marks=_NO_MAXFLOW)]


@pytest.fixture(scope="module")
def mesh():
    return distance_mesh(lab_features(data.astronaut()[100:164, 180:244]))  # 64 x 64: face, hair, background


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_cut_matches_brute_force(backend):
    rng = np.random.default_rng(1)
    n = 7
    pairs = np.array(list(itertools.combinations(range(n), 2)))
    pairs = pairs[rng.random(len(pairs)) < 0.5]
    w = rng.random(len(pairs))
    cf, cb = rng.random(n), rng.random(n)
    fg, _ = min_cut(n, pairs[:, 0], pairs[:, 1], w, cf, cb, backend=backend)

    def energy(lab):
        return cf[lab].sum() + cb[~lab].sum() + w[lab[pairs[:, 0]] != lab[pairs[:, 1]]].sum()

    best = min(energy(np.array(b, bool)) for b in itertools.product([0, 1], repeat=n))
    assert energy(fg) == pytest.approx(best, abs=1e-6)


@pytest.mark.skipif(not maxflow_available(), reason="PyMaxflow not installed")
def test_backends_agree_on_same_graph():
    rng = np.random.default_rng(2)
    n = 300
    ei, ej = rng.integers(0, n, 1200), rng.integers(0, n, 1200)
    keep = ei != ej
    w = rng.random(keep.sum())
    cf, cb = rng.random(n), rng.random(n)
    hard_fg = np.zeros(n, bool)
    hard_fg[:3] = True
    a, va = min_cut(n, ei[keep], ej[keep], w, cf, cb, hard_fg=hard_fg, backend="scipy")
    b, vb = min_cut(n, ei[keep], ej[keep], w, cf, cb, hard_fg=hard_fg, backend="pymaxflow")
    assert va == vb
    np.testing.assert_array_equal(a, b)  # random capacities: no ties, the min cut is unique
    assert a[:3].all()


def test_min_cut_hard_constraints_and_errors():
    ei, ej, w = np.array([0, 1]), np.array([1, 2]), np.array([5.0, 5.0])
    cf, cb = np.array([0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.0])
    fg, _ = min_cut(3, ei, ej, w, cf, cb, hard_bg=np.array([True, False, False]), backend="scipy")
    assert not fg.any()  # the strong chain follows the forced node
    fg, _ = min_cut(3, ei, ej, w, cf, cb, hard_fg=np.array([False, False, True]), backend="scipy")
    assert fg.all()
    with pytest.raises(ValueError, match="backend"):
        min_cut(3, ei, ej, w, cf, cb, backend="nope")
    with pytest.raises(ValueError, match="shape"):
        min_cut(4, ei, ej, w, cf, cb)
    with pytest.raises(ValueError, match=">= 0"):
        min_cut(3, ei, ej, -w, cf, cb)
    with pytest.raises(ValueError, match="both"):
        min_cut(3, ei, ej, w, cf, cb, hard_fg=np.ones(3, bool), hard_bg=np.ones(3, bool))


def test_pixel_strength_is_max_of_adjacent_edges():
    rng = np.random.default_rng(0)
    m = DistanceMesh(dy=rng.random((4, 5), dtype=np.float32), dx=rng.random((5, 4), dtype=np.float32))
    g = pixel_strength(m)
    assert g.shape == (5, 5) and g.dtype == np.float32
    for y, x in itertools.product(range(5), range(5)):
        around = [m.dy[y - 1, x] if y else 0, m.dy[y, x] if y < 4 else 0, m.dx[y, x - 1] if x else 0,
                  m.dx[y, x] if x < 4 else 0]
        assert g[y, x] == max(around)


def test_grid_seeds_one_per_block_at_its_minimum():
    rng = np.random.default_rng(0)
    b = rng.random((10, 7)).astype(np.float32)
    ys, xs = grid_seeds(b, 4)
    assert len(ys) == 3 * 2  # ceil(10/4) x ceil(7/4), partial blocks included
    for (by, bx), y, x in zip(itertools.product(range(3), range(2)), ys, xs, strict=True):
        block = b[4 * by: 4 * by + 4, 4 * bx: 4 * bx + 4]
        assert y // 4 == by and x // 4 == bx and b[y, x] == block.min()
    with pytest.raises(ValueError, match="spacing"):
        grid_seeds(b, 0)


def test_edge_watershed_regions(mesh):
    np.testing.assert_array_equal(edge_watershed(mesh, 1).ravel(), np.arange(64 * 64))
    regions = edge_watershed(mesh, 4)
    assert regions.dtype == np.int32 and regions.shape == (64, 64)
    r = regions.max() + 1
    assert set(np.unique(regions)) == set(range(r)) and r <= 16 * 16  # dense ids, at most one region per seed
    assert all(ndimage.label(regions == v)[1] == 1 for v in range(r))  # every region is connected
    np.testing.assert_array_equal(regions, edge_watershed(mesh, 4))  # deterministic tie-break


def test_region_adjacency_sums_pixel_edges(mesh):
    regions = edge_watershed(mesh, 4)
    i, j, w, d = contrast_weights(mesh)
    assert (w > 0).all() and (w <= 1).all() and len(i) == 2 * 64 * 63
    ei, ej, wsum, dsum, cnt = region_adjacency(regions, i, j, w, d)
    assert (ei < ej).all() and len(np.unique(ei * (regions.max() + 1) + ej)) == len(ei)
    flat = regions.ravel()
    for k in range(0, len(ei), max(1, len(ei) // 20)):  # brute force on a sample of pairs
        sel = ((flat[i] == ei[k]) & (flat[j] == ej[k])) | ((flat[i] == ej[k]) & (flat[j] == ei[k]))
        assert cnt[k] == sel.sum()
        assert wsum[k] == pytest.approx(w[sel].sum()) and dsum[k] == pytest.approx(d[sel].sum())
    # the hierarchy's adjacency is the same computation on the raw distances
    pairs, sums, lens = _adjacency(regions, mesh)
    np.testing.assert_array_equal(pairs, np.stack([ei, ej], 1))
    np.testing.assert_array_equal(sums, dsum)
    np.testing.assert_array_equal(lens, cnt)
