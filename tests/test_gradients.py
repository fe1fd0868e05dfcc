"""Histogram gradients, spectral globalisation and the gradient hierarchy (featlib.gradients, .spectral, .cluster)."""

import numpy as np
import pytest

from featlib import features as feature_registry
from featlib.cluster import gradient_hierarchy, hierarchy_from_mesh
from featlib.gradients import OrientedGradients, histogram_tensor, oriented_gradients, pixel_mesh, soft_bins
from featlib.interactive import ClickSegmenter, MultiClickSegmenter
from featlib.metrics import covering
from featlib.spectral import add_to_mesh, spectral_boundaries


def _blocks(h=48, w=64, seed=0):
    """Three flat colour blocks with mild noise: uint8 [h, w, 3] and the int labels [h, w]."""
    lab = np.zeros((h, w), int)
    lab[:, w // 2:] = 1
    lab[h // 2:, w // 2:] = 2
    colours = np.array([[200, 40, 40], [40, 160, 60], [50, 60, 200]], float)
    img = colours[lab] + np.random.default_rng(seed).normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), lab


def test_soft_bins_are_memberships():
    x = np.array([[0.0, 0.5, 1.0, 0.3]])
    b = soft_bins(x, 0.0, 1.0, 5)
    assert b.shape == (5, 1, 4)
    assert np.allclose(b.sum(0), 1)
    assert b[0, 0, 0] == 1 and b[4, 0, 2] == 1 and b[2, 0, 1] == 1
    assert np.isclose(b[1, 0, 3], 0.8) and np.isclose(b[2, 0, 3], 0.2)  # 0.3 -> bin position 1.2
    with pytest.raises(ValueError, match="2 bins"):
        soft_bins(x, 0, 1, 1)


def test_chi2_tensor_is_one_across_a_step_between_disjoint_histograms():
    """The closed form: chi^2 of the two half-windows at a straight step between two disjoint histograms is 1,
    the normal is across the step, and far from it the signal vanishes."""
    bins = np.zeros((2, 64, 64), np.float32)
    bins[0, :, :32] = 1
    bins[1, :, 32:] = 1
    g = OrientedGradients(histogram_tensor(bins, 3.0))
    s = g.strength
    assert 0.8 < s[32, 31:33].max() < 1.2
    assert s[32, :12].max() < 0.05 and s[32, 52:].max() < 0.05
    assert abs(np.cos(g.orientation[32, 31])) > 0.99  # the normal points along x for a vertical edge
    thin = g.thin()
    # the crest survives; away from it nothing but rounding residue (~1e-14 on some CPUs, exactly 0 on others)
    assert thin[20:44, 30:34].max(axis=1).min() > 0.8 * s[32, 31:33].max() and thin[20:44, 36:60].max() < 1e-6


def test_orientation_follows_a_diagonal_edge():
    yy, xx = np.indices((64, 64))
    bins = np.stack([(xx + yy < 64), (xx + yy >= 64)]).astype(np.float32)
    g = OrientedGradients(histogram_tensor(bins, 3.0))
    ang = g.orientation[32, 31]
    assert abs(abs(np.cos(ang)) - np.sqrt(0.5)) < 0.05 and np.cos(ang) * np.sin(ang) > 0


def test_texture_cue_separates_textures_of_equal_colour():
    """Horizontal vs vertical stripes of the same two colours: no mean-colour edge, but a texture boundary."""
    h, w = 64, 96
    yy, xx = np.indices((h, w))
    stripes = np.where(xx < w // 2, (yy // 2) % 2, (xx // 2) % 2)
    img = np.where(stripes[..., None] == 1, 220, 30).astype(np.uint8).repeat(3, axis=2)
    s = oriented_gradients(img, weights={"t5": 1.0, "t10": 1.0}).strength
    assert s[16:48, w // 2 - 2:w // 2 + 2].mean() > 3 * s[16:48, 8:24].mean()


def test_oriented_gradients_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8 RGB"):
        oriented_gradients(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="every cue weight"):
        oriented_gradients(np.zeros((8, 8, 3), np.uint8), weights={"L3": 0.0})


def test_spectral_boundaries_live_on_region_borders():
    img, lab = _blocks()
    mesh = oriented_gradients(img).mesh()
    regions = (np.arange(48)[:, None] // 8) * 8 + np.arange(64)[None] // 8  # 6 x 8 blocks of 8 px
    extra = spectral_boundaries(regions.astype(np.int32), mesh)
    h, w = regions.shape
    assert extra.shape == ((h - 1) * w + h * (w - 1),)
    assert extra.min() >= 0 and np.isclose(extra.max(), 1)
    dy = extra[:(h - 1) * w].reshape(h - 1, w)
    inside = regions[1:] == regions[:-1]
    assert (dy[inside] == 0).all()
    # the blocks' true border (row 23/24 on the right half) is stronger than a border inside one colour block
    assert dy[23, 40:].mean() > 2 * dy[15, 40:].mean()
    both = add_to_mesh(mesh, extra, 2.0)
    assert np.allclose(both.dy, mesh.dy + 2 * dy)
    with pytest.raises(ValueError, match="differ in shape"):
        spectral_boundaries(regions[:-1].astype(np.int32), mesh)


@pytest.mark.parametrize("spectral", [0.0, 1.0])
def test_gradient_hierarchy_recovers_blocks(spectral):
    img, lab = _blocks()
    h = gradient_hierarchy(img, spectral=spectral, seed_spacing=4)
    part = h.partition(n_segments=3)
    assert covering(part, lab) > 0.95
    ucm = h.ucm()
    assert ucm.shape == (2 * 48 + 1, 2 * 64 + 1)
    assert (np.diff(h.heights) >= 0).all()
    assert hierarchy_from_mesh(h.mesh).n_regions > 3
    same = hierarchy_from_mesh(h.mesh, seed_spacing=8, merge_mesh=h.mesh)  # merging on the watershed's own mesh
    np.testing.assert_array_equal(same.heights, hierarchy_from_mesh(h.mesh, seed_spacing=8).heights)
    with pytest.raises(ValueError, match="differ in shape"):
        hierarchy_from_mesh(h.mesh, merge_mesh=pixel_mesh(np.zeros((8, 8), np.float32)))
    with pytest.raises(ValueError, match="needs region_features"):
        hierarchy_from_mesh(h.mesh, region_weight=4.0)
    with pytest.raises(ValueError, match="it needs features"):
        gradient_hierarchy(img, region_weight=4.0)
    # the regions' mean features (here the image's own colours) reach the merging: other heights, same regions
    feats = {1: np.moveaxis(img, -1, 0).astype(np.float32) / 255}
    with_means = gradient_hierarchy(img, feats, spectral=spectral, seed_spacing=4, feature_weight=0.0,
                                    region_weight=4.0)
    plain = gradient_hierarchy(img, feats, spectral=spectral, seed_spacing=4, feature_weight=0.0)
    np.testing.assert_array_equal(with_means.regions, plain.regions)
    assert not np.allclose(with_means.heights, plain.heights)


def test_features_entry_point_uses_each_sources_defaults():
    img, lab = _blocks()
    colour = feature_registry.load("lab")
    learned = feature_registry.load("untrained-b0")
    assert colour.hierarchy_settings()[0] == "gradients" == learned.hierarchy_settings()[0]
    assert "feature_weight" in learned.hierarchy_settings()[1]
    assert learned.hierarchy_settings("mesh")[1]["contrast"] == feature_registry.DEFAULTS["learned"]["mesh"]["contrast"]
    assert colour.hierarchy_settings(seed_spacing=4)[1]["seed_spacing"] == 4  # overrides win
    for f in (colour, learned):
        for grouping in ("gradients", "mesh"):
            part = f.hierarchy(img, grouping=grouping, seed_spacing=4).partition(n_segments=3)
            assert part.shape == lab.shape and part.max() == 2
    assert covering(colour.hierarchy(img, seed_spacing=4, boundary_map="chi2").partition(n_segments=3), lab) > 0.95
    for key in ("nms", "boundary_scales", "merge_scales"):  # the learned map's defaults, not chi2's
        assert key not in colour.hierarchy_settings(boundary_map="chi2")[1]
    # the default learned map is trained on "a boundary within 1 px" (a 3-px ridge): the cut may sit 1 px off
    assert covering(colour.hierarchy(img, seed_spacing=4).partition(n_segments=3), lab) > 0.93
    with pytest.raises(ValueError, match="grouping"):
        colour.hierarchy(img, grouping="watershed")
    with pytest.raises(ValueError, match="uint8"):
        colour.hierarchy(img.astype(float))
    seg = colour.click_segmenter(img)
    assert isinstance(seg, ClickSegmenter)
    assert seg.add_click(10, 10).shape == lab.shape
    assert isinstance(learned.click_segmenter(img, labels=True), MultiClickSegmenter)


@pytest.mark.parametrize("sigma", [5.0, 10.0])
def test_coarse_grid_scales_match_full_resolution(sigma):
    """Large scales run on a 2x / 4x block-averaged grid (histogram_tensor); the tensor stays the full-resolution
    one's within a few percent along a step edge."""
    from featlib.gradients import _histogram_tensor

    yy, xx = np.indices((96, 128))
    bins = np.stack([(xx + 0.5 * yy < 80), (xx + 0.5 * yy >= 80)]).astype(np.float32)
    fast = OrientedGradients(histogram_tensor(bins, sigma)).strength
    full = OrientedGradients(_histogram_tensor(bins, sigma)).strength
    assert abs(fast.max() - full.max()) < 0.05 * full.max()
    assert np.abs(fast - full)[24:72, 24:104].max() < 0.1 * full.max()


def test_textons_start_is_scipys_kmeans_pp():
    """The incremental k-means++ start draws what scipy's '++' start draws: kmeans2 from it ends where
    ``kmeans2(x, k, minit="++", seed=...)`` ends, so the textons (and the shipped boundary networks' inputs) are
    the ones they were trained on."""
    import warnings

    from scipy.cluster.vq import kmeans2

    from featlib.gradients import _kmeans_pp

    x = np.random.default_rng(3).normal(size=(3000, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for seed in (0, 7):
            ref, lab_ref = kmeans2(x, 12, iter=10, minit="++", seed=seed)
            got, lab = kmeans2(x, _kmeans_pp(x, 12, np.random.RandomState(seed)), iter=10, minit="matrix")
            assert np.array_equal(ref, got) and np.array_equal(lab_ref, lab)


def test_distinct_rows_count():
    """min(distinct rows of x.round(4), k): the hash shortcut when there are many, the exact count otherwise
    (-0.0 and 0.0 are one value, as np.unique counts them)."""
    from featlib.gradients import _n_distinct_rows

    rng = np.random.default_rng(0)
    many = rng.random((500, 5)).astype(np.float32)
    assert _n_distinct_rows(many, 32) == 32
    few = np.repeat(rng.random((3, 5)).astype(np.float32), 50, 0)
    few[0, 0] = -0.0
    few[1, 0] = 0.0
    assert _n_distinct_rows(few, 32) == len(np.unique(few.round(4), axis=0)) == 4
    assert _n_distinct_rows(np.full((40, 3), 0.12344, np.float32), 32) == 1
    near = np.array([[0.12344], [0.12341]], np.float32)  # equal after rounding to 4 decimals
    assert _n_distinct_rows(near, 32) == 1


def test_filter_bank_matches_scipy_filters():
    """The texton filter bank (shared row passes) against scipy's Gaussian derivative and LoG filters."""
    from scipy import ndimage

    from featlib.gradients import _filter_bank

    lum = np.random.default_rng(1).random((30, 41)).astype(np.float32)
    bank = _filter_bank(lum)
    assert bank.shape == (30, 41, 18)
    for i, s in ((0, 1.0), (9, 2.0)):
        gx = ndimage.gaussian_filter(lum, s, order=(0, 1))
        np.testing.assert_allclose(bank[..., i], gx, atol=1e-5)  # k = 0: the x derivative
        np.testing.assert_allclose(bank[..., i + 8], ndimage.gaussian_laplace(lum, s), atol=1e-5)


@pytest.mark.parametrize("exact", [False, True])
def test_histogram_tensor_in_chunks_is_the_same(monkeypatch, exact):
    """Bins filtered a few at a time (large photos) give the tensor of all bins filtered at once."""
    from featlib import gradients
    from featlib.gradients import _histogram_tensor

    rng = np.random.default_rng(2)
    bins = soft_bins(rng.random((40, 52)), 0.0, 1.0, 9)
    bins[3] = 0  # an empty bin is skipped either way
    whole = _histogram_tensor(bins, 2.0, exact)
    monkeypatch.setattr(gradients, "CHUNK_VALUES", 2 * 40 * 52)
    np.testing.assert_allclose(_histogram_tensor(bins, 2.0, exact), whole, rtol=1e-6, atol=1e-7)
