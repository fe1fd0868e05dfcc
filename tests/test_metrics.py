"""Metrics on hand-computed cases, identities, and against independent brute-force computations."""

import itertools

import numpy as np
import pytest
from skimage import data
from skimage.segmentation import felzenszwalb, slic

from featlib import metrics as M


def test_hand_computed_two_by_two():
    seg = np.array([[0, 0], [1, 1]])
    gt = np.array([[0, 1], [0, 1]])
    # GT regions {col 0}, {col 1}; each overlaps each segment in 1 pixel -> IoU 1/3
    assert M.covering(seg, gt) == pytest.approx(1 / 3)
    # 6 pixel pairs: same-in-seg pairs (0,1),(2,3); same-in-gt (0,2),(1,3); they agree on the 2 pairs that are
    # split in both: (0,3),(1,2)
    assert M.rand_index(seg, gt) == pytest.approx(2 / 6)
    # VI in bits, as the BSDS benchmark (log2): H(S) = H(G) = 1 bit, I(S; G) = 0 -> 2 bits (2 ln 2 nats)
    assert M.variation_of_information(seg, gt) == pytest.approx(2.0)
    assert M.asa(seg, gt) == pytest.approx(0.5)
    assert M.mean_best_iou(seg, np.stack([gt == 0, gt == 1])) == pytest.approx(1 / 3)


def test_identities():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (20, 30))
    assert M.vi(a, a) == pytest.approx(0, abs=1e-12)
    assert M.covering(a, a) == pytest.approx(1) and M.pri(a, a) == pytest.approx(1) and M.asa(a, a) == 1
    assert M.undersegmentation_error(a, a) == 0
    assert M.mean_best_iou(a, a + 1) == pytest.approx(1)
    b = rng.integers(0, 3, (20, 30))
    assert M.vi(a, b) == pytest.approx(M.vi(b, a)) and M.pri(a, b) == pytest.approx(M.pri(b, a))
    assert 0 <= M.covering(a, b) <= 1
    one = np.zeros_like(a)
    assert M.asa(a, one) == 1.0  # every segment fits inside the single GT region
    assert M.boundary_prf(a, a, 0)[2] == pytest.approx(1)


def brute_force(seg, gt):
    """Pair enumeration and explicit region loops (independent of the contingency-table code)."""
    s, g = seg.ravel(), gt.ravel()
    agree = sum((s[i] == s[j]) == (g[i] == g[j]) for i, j in itertools.combinations(range(len(s)), 2))
    ri = agree / (len(s) * (len(s) - 1) / 2)
    cov = 0.0
    for r in np.unique(g):
        R = g == r
        cov += R.sum() * max((R & (s == q)).sum() / (R | (s == q)).sum() for q in np.unique(s))
    n = len(s)
    h = lambda x: -sum((x == v).mean() * np.log2((x == v).mean()) for v in np.unique(x))  # noqa: E731, bits
    joint = s.astype(np.int64) * (g.max() + 1) + g
    vi = 2 * h(joint) - h(s) - h(g)
    asa = sum(max(((s == q) & (g == r)).sum() for r in np.unique(g))
              for q in np.unique(s)) / n
    return ri, cov / n, vi, asa


@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
def test_against_brute_force_on_real_segmentations(method):
    img = data.astronaut()[200:224:1, 180:212]
    seg = slic(img, n_segments=12, start_label=0) if method == "slic" else felzenszwalb(img, scale=50)
    gt = felzenszwalb(img, scale=200)
    ri, cov, vi, asa = brute_force(seg, gt)
    assert M.rand_index(seg, gt) == pytest.approx(ri)
    assert M.covering(seg, gt) == pytest.approx(cov)
    assert M.vi(seg, gt) == pytest.approx(vi)
    assert M.asa(seg, gt) == pytest.approx(asa)


def test_multiple_ground_truths_and_ignored_pixels():
    seg = np.array([[0, 0, 1, 1]])
    g1 = np.array([[0, 0, 1, 1]])
    g2 = np.array([[0, 0, 0, 0]])
    assert M.covering(seg, [g1, g2]) == pytest.approx((1 + 0.5) / 2)
    assert M.pri(seg, [g1, g2]) == pytest.approx((1 + 2 / 6) / 2)
    ignored = np.array([[0, 0, -1, -1]])
    assert M.covering(seg, ignored) == 1.0


def test_undersegmentation_and_boundaries():
    gt = np.zeros((10, 10), int)
    gt[:, 5:] = 1
    seg = np.zeros((10, 10), int)
    seg[:, 7:] = 1  # segment 0 leaks 2 columns into GT region 1
    # G0: S0 has 20 px outside it; G1: S0 overlaps it by 20 px; S1 lies inside -> (20 + 20) / 100
    assert M.undersegmentation_error(seg, gt) == pytest.approx(0.4)
    p, r, f = M.boundary_prf(seg, gt, tolerance=1)
    assert p == 0 and r == 0
    p, r, f = M.boundary_prf(seg, gt, tolerance=2)
    assert p == 1 and r == 1


def test_ods_ois():
    v = np.array([[0.1, 0.9], [0.8, 0.2]])
    ods, ois, k = M.ods_ois(v)
    assert ods == pytest.approx(0.55) and ois == pytest.approx(0.85)
    ods, ois, k = M.ods_ois(v, higher_is_better=False)
    assert ods == pytest.approx(0.45) and ois == pytest.approx(0.15)


def test_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        M.covering(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="size"):
        M.mean_best_iou(np.zeros((2, 2)), np.zeros((1, 2, 3), bool))


def test_combined_scores_match_individual_metrics():
    rng = np.random.default_rng(3)
    seg = rng.integers(0, 6, (30, 40))
    gts = [rng.integers(0, 4, (30, 40)), rng.integers(0, 9, (30, 40))]
    c, p, v = M.covering_pri_vi(seg, gts)
    assert (c, p, v) == pytest.approx((M.covering(seg, gts), M.pri(seg, gts), M.vi(seg, gts)))


def test_mask_iou():
    a = np.zeros((4, 5), bool)
    b = np.zeros((4, 5), bool)
    assert M.iou(a, b) == 1.0  # both empty
    a[:2] = True  # 10 pixels
    b[1:3] = True  # 10 pixels, 5 shared
    assert M.iou(a, b) == pytest.approx(5 / 15)
    ignore = np.zeros_like(a)
    ignore[0] = True
    assert M.iou(a, b, ignore) == pytest.approx(5 / 10)


def test_contingency_renumbering_matches_unique():
    rng = np.random.default_rng(0)
    for seg in (rng.integers(0, 5, (30, 40)), rng.integers(-2, 3, (30, 40)), rng.integers(0, 10**7, (30, 40)),
                rng.random((30, 40)).round(1)):
        gt = rng.integers(-1, 4, (30, 40))
        keep = gt >= 0
        _, s = np.unique(seg[keep], return_inverse=True)
        _, g = np.unique(gt[keep], return_inverse=True)
        ns, ng = s.max() + 1, g.max() + 1
        ref = np.bincount(s * ng + g, minlength=ns * ng).reshape(ns, ng)
        assert np.array_equal(M.contingency(seg, gt), ref)


def test_covering_pools_the_annotators_pixels():
    # annotator 1 labels all 4 pixels (covered perfectly), annotator 2 only 2 of them (covered at IoU 1/2): pooled
    # over the 6 annotated pixels, (4 * 1 + 2 * 1/2) / 6, not the mean of the two coverings (1 + 1/2) / 2
    seg = np.array([[0, 0, 1, 1]])
    g1 = np.array([[0, 0, 1, 1]])
    g2 = np.array([[-1, 0, 0, -1]])
    assert M.covering(seg, [g1, g2]) == pytest.approx(5 / 6)
    t = M.region_terms(seg, [g1, g2])
    assert t.areas.tolist() == [2, 2, 2] and t.ious == pytest.approx([1, 1, 0.5])
    assert t.covering == pytest.approx(5 / 6)
    assert (t.pri, t.vi) == pytest.approx((M.pri(seg, [g1, g2]), M.vi(seg, [g1, g2])))


def test_pooled_ods_ois_against_hand_computed_sums():
    # two images, three thresholds: image a has 100 annotated pixels (over its annotators), image b 300
    overlap = np.array([[60.0, 80, 40], [90, 150, 240]])
    area = np.array([[100.0, 100, 100], [300, 300, 300]])
    ods, ois, k = M.pooled_ods_ois(overlap, area)
    # dataset coverings (60 + 90) / 400, (80 + 150) / 400, (40 + 240) / 400 = .375, .575, .7 -> threshold 2
    assert (ods, k) == (pytest.approx(0.7), 2)
    # per-image bests: a at threshold 1 (80), b at 2 (240): pooled (80 + 240) / 400 = .8; the mean of per-image
    # bests would be (.8 + .8) / 2 as well, so check one where they differ
    assert ois == pytest.approx(0.8)
    ods, ois, _ = M.pooled_ods_ois([[60.0, 80], [30, 10]], [[100.0, 100], [300, 300]])
    assert ods == pytest.approx(90 / 400) and ois == pytest.approx((80 + 30) / 400)  # mean of bests: 0.45
    ods, ois, k = M.pooled_ods_ois([[1.0, 1.0]], [[2.0, 2.0]])
    assert k == 0  # ties: the first threshold, as MATLAB's max
    with pytest.raises(ValueError, match="overlap and area"):
        M.pooled_ods_ois(np.zeros((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="overlap must lie"):
        M.pooled_ods_ois(np.full((1, 2), 3.0), np.ones((1, 2)))
