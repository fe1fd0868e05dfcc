"""MultiClickSegmenter's guarantees, the alpha-expansion behind it and the pure update policy."""

import itertools

import numpy as np
import pytest
from scipy import ndimage

from featlib.click_energy import alpha_expansion, potts_energy
from featlib.click_update import apply_click, check_policy, click_radius, seed_region, seeded_trust, trust_box
from featlib.distances import lab_features
from featlib.graphcut import maxflow_available
from featlib.interactive import ClickSegmenter
from featlib.metrics import iou
from featlib.multiclick import MultiClickSegmenter

_NO_MAXFLOW = pytest.mark.skipif(not maxflow_available(), reason="no PyMaxflow")
BACKENDS = ["scipy", pytest.param("pymaxflow", marks=_NO_MAXFLOW)]


def scene(size=64, seed=0):
    """A red disk, a blue square and a green bar on a noisy grey background -> (image uint8 [H, W, 3], gt int32
    [H, W]: 0 background, 1 disk, 2 square, 3 bar)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    gt = np.zeros((size, size), np.int32)
    gt[(yy - size * 0.35) ** 2 + (xx - size * 0.35) ** 2 < (size * 0.2) ** 2] = 1
    gt[(yy > size * 0.65) & (xx > size * 0.6) & (yy < size * 0.9) & (xx < size * 0.9)] = 2
    gt[(yy > size * 0.1) & (yy < size * 0.3) & (xx > size * 0.7) & (xx < size * 0.93)] = 3
    img = np.full((size, size, 3), 128.0)
    for k, colour in ((1, (200, 40, 40)), (2, (40, 40, 200)), (3, (40, 190, 60))):
        img[gt == k] = colour
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), gt


def multistride(img):
    """A FeatureNet-like dict: Lab at stride 1, 2x2-block means stacked as channels at stride 2."""
    lab = lab_features(img)
    c, h, w = lab.shape
    return {1: lab, 2: lab.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3).reshape(c * 4, h // 2, w // 2)}


def random_clicks(rng, n, size=64, n_labels=4):
    clicks = [(int(y), int(x), int(k)) for y, x, k in
              zip(rng.integers(0, size, n), rng.integers(0, size, n), rng.integers(0, n_labels, n))]
    # neighbouring pixels with different labels share a base region: forces node splits; then a replaced click
    return clicks + [(30, 30, 1), (30, 31, 2), (31, 30, 0), (31, 31, 3), (30, 31, 1)]


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spacing", [1, 4])
@pytest.mark.parametrize("kind", ["lab", "dict", "lab+boundary"])
def test_clicked_pixels_keep_labels_and_changes_go_to_the_click_label(kind, spacing, backend, local):
    img, _ = scene()
    feats = multistride(img) if kind == "dict" else lab_features(img)
    # a boundary map (any values in [0, 1]) changes weights and geodesics, never the guarantees
    extra = {"boundary_map": np.random.default_rng(1).random((64, 64))} if kind == "lab+boundary" else {}
    seg = MultiClickSegmenter(feats, img, region_spacing=spacing, backend=backend, local=local, **extra)
    clicks = random_clicks(np.random.default_rng(7), 14)
    seen = {}
    for y, x, k in clicks:
        before = seg.labels.copy()
        seg.add_click(y, x, k)
        seen[(y, x)] = k  # a later click on the same pixel replaces the earlier one
        for (cy, cx), ck in seen.items():
            assert seg.labels[cy, cx] == ck, f"clicked pixel ({cy}, {cx}) lost label {ck}"
        changed = seg.labels != before
        if local:
            # only pixels taken FOR k change, and they form one 4-connected piece holding the click
            assert (seg.labels[changed] == k).all()
            pieces, n = ndimage.label(changed)
            assert n <= 1 and (n == 0 or pieces[y, x] == 1)
    assert seg.labels.dtype == np.int32 and seg.n_objects == 3
    other = MultiClickSegmenter(feats, img, region_spacing=spacing, backend=backend, local=local, **extra)
    for y, x, k in clicks:
        other.add_click(y, x, k)
    np.testing.assert_array_equal(seg.labels, other.labels)  # deterministic


@pytest.mark.parametrize("spacing,local,reach,touch_up,extra", [
    (4, True, 3.0, 4.5, {}), (4, True, None, 0.0, {}), (1, True, 2.0, 4.5, {}), (4, False, 3.0, 4.5, {}),
    (1, False, None, 0.0, {}), (4, True, 3.0, 4.5, {"lone_click_segments": 8}),
    (4, False, None, 0.0, {"lone_click_segments": 8}), (4, True, 1.0, 4.5, {"grow": 2}),
    (4, True, 1.0, 4.5, {"grow": 2, "grow_cap": 1.5}), (4, True, 3.0, 4.5, {"boundary_map": "learned"}),
    (1, True, 3.0, 4.5, {"touch_up_disc": 3.0}), (4, True, 3.0, 4.5, {"touch_up_disc": 6.0, "escalate_within": 9.0})])
@pytest.mark.parametrize("object_label", [1, 3])
def test_one_object_is_the_binary_segmenter(spacing, local, reach, touch_up, extra, object_label):
    """K = 1: the same energy, the same single min cut and the same policy, so the same mask pixel for pixel."""
    img, _ = scene(seed=2)
    feats = lab_features(img)
    kw = dict(region_spacing=spacing, local=local, reach=reach, touch_up=touch_up, backend="scipy", **extra)
    binary, multi = ClickSegmenter(feats, img, **kw), MultiClickSegmenter(feats, img, **kw)
    rng = np.random.default_rng(11)
    ys, xs, ps = rng.integers(0, 64, 16), rng.integers(0, 64, 16), rng.random(16) < 0.5
    clicks = [(5, 5, False), (22, 22, True)] + [(int(y), int(x), bool(p)) for y, x, p in zip(ys, xs, ps)]
    for y, x, p in clicks + [(30, 30, True), (30, 31, False), (30, 31, True)]:
        binary.add_click(y, x, p)
        multi.add_click(y, x, object_label if p else 0)
        np.testing.assert_array_equal(multi.mask_of(object_label), binary.mask)
        assert set(np.unique(multi.labels)) <= {0, object_label}


def test_objects_from_one_click_each_and_background():
    img, gt = scene(96, seed=3)
    seg = MultiClickSegmenter(lab_features(img), img)
    centres = {k: tuple(np.argwhere(ndimage.distance_transform_edt(gt == k) ==
                                    ndimage.distance_transform_edt(gt == k).max())[0]) for k in (1, 2, 3)}
    for k, (y, x) in centres.items():
        seg.add_click(y, x, k)
    for k in (1, 2, 3):
        assert iou(seg.mask_of(k), gt == k) > 0.85, k
    assert iou(seg.mask_of(0), gt == 0) > 0.9
    assert seg.last_update_s > 0 and seg.shape == (96, 96)


def test_new_label_grows_k_undo_reset_and_background_first():
    img, _ = scene()
    seg = MultiClickSegmenter(lab_features(img), img)
    seg.add_click(60, 2, 0)
    assert not seg.labels.any() and seg.n_objects == 0  # all background until an object is clicked
    seg.add_click(22, 22, 1)
    one = seg.labels.copy()
    seg.add_click(50, 50, 2)
    assert seg.n_objects == 2 and seg.mask_of(2).any()
    seg.add_click(12, 52, 5)  # labels need not be consecutive
    assert seg.n_objects == 5 and seg.labels[12, 52] == 5
    seg.undo()
    seg.undo()
    np.testing.assert_array_equal(seg.labels, one)
    seg.reset()
    assert not seg.labels.any() and seg.clicks == []
    seg.undo()  # no-op


@pytest.mark.parametrize("label", [-1, 1.5, True, "1"])
def test_bad_label_raises(label):
    img, _ = scene()
    seg = MultiClickSegmenter(lab_features(img), img)
    with pytest.raises(ValueError, match="label"):
        seg.add_click(10, 10, label)
    with pytest.raises(ValueError, match="label"):
        seg.mask_of(label)
    assert seg.clicks == []


@pytest.mark.parametrize("y,x", [(-1, 3), (3, 64), (64, 0)])
def test_click_outside_raises(y, x):
    img, _ = scene()
    seg = MultiClickSegmenter(lab_features(img), img)
    with pytest.raises(ValueError, match="outside"):
        seg.add_click(y, x, 1)
    assert seg.clicks == []


def test_bad_settings_raise():
    img, _ = scene()
    with pytest.raises(ValueError, match="touch_up"):
        MultiClickSegmenter(lab_features(img), img, touch_up=-1)
    with pytest.raises(ValueError, match="backend"):
        MultiClickSegmenter(lab_features(img), img, backend="nope")
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        MultiClickSegmenter(lab_features(img), img[..., 0])


def test_trust_region_bounds_late_changes():
    img, gt = scene(96, seed=6)
    seg = MultiClickSegmenter(lab_features(img), img, reach=1.0, seed_segments=None)  # click-centred boxes
    n_checked = 0
    for y, x, k in [(33, 33, 1), (74, 70, 2), (20, 78, 3), (5, 5, 0), (60, 20, 1), (45, 60, 2), (90, 5, 3)]:
        before = seg.labels.copy()
        r = click_radius(before == k, y, x)
        seg.add_click(y, x, k)
        changed = np.argwhere(seg.labels != before)
        if not np.isfinite(r) or len(changed) == 0:
            continue
        # changes are whole regions meeting the box: allow one region width (spacing 4, regions <= ~2x spacing)
        assert np.abs(changed - (y, x)).max() <= max(r, 2.0) + 8
        n_checked += 1
    assert n_checked >= 2


# ----------------------------------------------------------------------------------------------- alpha-expansion


def brute_force(unary, ei, ej, w, hard):
    n, n_labels = unary.shape
    best = None
    for lab in itertools.product(range(n_labels), repeat=n):
        lab = np.array(lab)
        if ((hard >= 0) & (lab != hard)).any():
            continue
        e = potts_energy(lab, unary, ei, ej, w)
        best = e if best is None or e < best else best
    return best


def random_problem(rng, n, n_labels):
    ei, ej = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5]).reshape(-1, 2).T
    return rng.random((n, n_labels)) * 3, ei.astype(np.int64), ej.astype(np.int64), rng.random(len(ei)) * 2


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_labels", [2, 3, 4])
def test_alpha_expansion_bound_and_local_optimum(seed, n_labels, warm):
    rng = np.random.default_rng(seed)
    n = 6 if n_labels < 4 else 5
    unary, ei, ej, w = random_problem(rng, n, n_labels)
    hard = np.full(n, -1)
    hard[rng.integers(0, n)] = rng.integers(0, n_labels)
    # warm: a random start labelling (it may break the hard constraint) and a random first move
    kw = dict(init=rng.integers(0, n_labels, n), first=int(rng.integers(0, n_labels))) if warm else {}
    lab, cuts = alpha_expansion(unary, ei, ej, w, hard, backend="scipy", **kw)
    assert ((hard < 0) | (lab == hard)).all() and cuts >= 1
    e, opt = potts_energy(lab, unary, ei, ej, w), brute_force(unary, ei, ej, w, hard)
    assert e <= 2 * opt + 1e-6  # Boykov et al. 2001: factor 2 for Potts
    if n_labels == 2:
        assert e == pytest.approx(opt, rel=1e-6, abs=1e-6)  # one cut from a constant labelling is exact
    # no single expansion move lowers the energy (checked by enumerating every move)
    for alpha in range(n_labels):
        for take in itertools.product([0, 1], repeat=n):
            moved = np.where(np.array(take, bool), alpha, lab)
            if ((hard >= 0) & (moved != hard)).any():
                continue
            assert potts_energy(moved, unary, ei, ej, w) >= e - 1e-6 * max(1.0, e)


# ----------------------------------------------------------------------------------------------- update policy


def test_apply_click_is_pure_and_takes_only_the_local_piece_for_the_label():
    labels = np.zeros((20, 20), np.int32)
    labels[2:8, 2:8] = 1
    labels[12:18, 12:18] = 2
    cut = labels.copy()
    cut[2:8, 8:11] = 2  # a piece taken for 2 next to object 1 ...
    cut[15:18, 2:6] = 2  # ... and one far away
    cut[12:14, 12:14] = 1  # a change to another label
    before, cut_before = labels.copy(), cut.copy()
    new = apply_click(labels, cut, 4, 9, 2, r=float("inf"), touch_up=0.0)
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(cut, cut_before)
    expect = labels.copy()
    expect[2:8, 8:11] = 2
    np.testing.assert_array_equal(new, expect)
    # bool maps (the binary segmenter): a negative click removes the piece of newly-background pixels
    mask = labels == 1
    out = apply_click(mask, np.zeros_like(mask), 3, 3, False, r=float("inf"), touch_up=0.0)
    assert out.dtype == bool and not out.any()


def test_touch_up_disc_and_trust_box():
    labels = np.zeros((30, 30), np.int32)
    labels[10:20, 10:20] = 1
    y, x = 15, 22  # 3 px right of object 1
    r = click_radius(labels == 1, y, x)
    assert r == pytest.approx(3.0)
    cut = labels.copy()
    cut[5:25, 10:28] = 1  # the cut takes a wide band
    new = apply_click(labels, cut, y, x, 1, r, touch_up=4.5)
    d2 = ((np.argwhere(new != labels) - (y, x)) ** 2).sum(1)
    assert new[y, x] == 1 and len(d2) > 1 and (d2 < r**2).all()
    assert trust_box(y, x, r, 2.0, (30, 30)) == (9, 22, 16, 29)
    assert trust_box(y, x, float("inf"), 2.0, (30, 30)) is None and trust_box(y, x, r, None, (30, 30)) is None


def test_touch_up_disc_floor():
    """A touch-up click 1 px from its label flips the clicked pixel alone with the empty disc (touch_up_disc 0), and
    with a floor the cut's change for its label within that radius (no farther, none of what the cut leaves)."""
    labels = np.zeros((30, 30), np.int32)
    labels[10:20, 10:20] = 1
    y, x = 15, 20  # 1 px right of object 1
    r = click_radius(labels == 1, y, x)
    assert r == pytest.approx(1.0)
    cut = labels.copy()
    cut[12:18, 10:27] = 1  # the cut takes a band right of the object
    assert (np.argwhere(apply_click(labels, cut, y, x, 1, r, touch_up=4.5) != labels) == (y, x)).all()
    for disc in (2.5, 4.0):
        new = apply_click(labels, cut, y, x, 1, r, touch_up=4.5, touch_up_disc=disc)
        changed = np.argwhere(new != labels)
        d2 = ((changed - (y, x)) ** 2).sum(1)
        assert len(changed) > 1 and (d2 < disc**2).all() and (cut[tuple(changed.T)] == 1).all()
        expect = (cut == 1) & (labels != 1)
        yy, xx = np.mgrid[:30, :30]
        np.testing.assert_array_equal(new != labels, expect & ((yy - y) ** 2 + (xx - x) ** 2 < disc**2))
    # not a touch-up (r >= touch_up): the floor does not apply, the local piece does
    far = apply_click(labels, cut, y, x, 1, r, touch_up=0.0, touch_up_disc=4.0)
    np.testing.assert_array_equal(far != labels, (cut == 1) & (labels != 1))
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="touch_up_disc"):
            check_policy(3.0, 4.5, bad)


def test_seeded_trust_region_is_the_same_for_every_click_in_the_seed_until_the_cap():
    """Two segments (columns 0-14, 15-39); object 1 holds columns 0-5. A positive click in columns 6-14 has the seed
    columns 6-14 (its segment minus the object), depth 9 px (column 14 to column 5), capped at 2 max(r, 2)."""
    segments = np.zeros((30, 40), np.int32)
    segments[:, 15:] = 1
    labels = np.zeros((30, 40), np.int32)
    labels[:, :6] = 1
    seed = seed_region(labels, 1, 15, 10, segments)
    assert seed[:, 6:15].all() and seed.sum() == 30 * 9
    regions = {x: seeded_trust(labels, 1, 15, x, click_radius(labels == 1, 15, x), segments, reach=2.0)
               for x in range(6, 15)}
    box, within = regions[12]
    assert box == (0, 30, 0, 24)  # the seed's box grown by pad = (2 - 1) * 9
    assert within[:, :24].all() and not within[:, 24:].any()  # column 23 is 9 px from the seed, 24 is 10
    for x in (10, 11, 13, 14):  # r = x - 5 >= 4.5: 2r >= 9, the cap does not bind: the same region
        assert regions[x][0] == box and (regions[x][1] == within).all()
    small_box, small = regions[7]  # r = 2: depth capped at 4
    assert small_box == (0, 30, 2, 19) and small.sum() < within.sum()
    # the other label's click in the same place: its seed lies in its own label's complement
    other = seed_region(labels, 0, 15, 3, segments)
    assert other[:, :6].all() and not other[:, 6:].any()
    # global cuts, as trust_box: no reach, no pixel of the label yet, the clicked pixel already has it
    assert seeded_trust(labels, 1, 15, 10, 5.0, segments, None) == (None, None)
    assert click_radius(labels == 2, 15, 10) == float("inf")
    assert seeded_trust(labels, 2, 15, 10, float("inf"), segments, 2.0) == (None, None)
    assert click_radius(labels == 1, 15, 3) == float("inf")
    assert seeded_trust(labels, 1, 15, 3, float("inf"), segments, 2.0) == (None, None)
    # the policy changes nothing outside ``within``
    cut = np.ones_like(labels)
    new = apply_click(labels, cut, 15, 12, 1, 7.0, touch_up=0.0, within=within)
    assert (new[:, :24] == 1).all() and (new[:, 24:] == 0).all()
