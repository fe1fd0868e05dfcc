"""BSDS boundary benchmark (featlib.boundaries) on hand-made cases with hand-computed answers.

On a 100 x 100 image the matching tolerance is 0.0075 * sqrt(2) * 100 = 1.06 px: a 1-px shift matches, 2 px not.
correspondPixels pairs leftover pixels through a sparse random (time-seeded, as in BSDS) outlier graph, which now
and then drops a match (~0.3% of pixels, up to ~1.5% on these small maps): matched counts are compared to 0.03,
pixel totals exactly.
"""

import numpy as np
import pytest
from skimage.morphology import thin

from featlib import boundaries
from featlib.cluster import build_hierarchy
from featlib.data.bsds import bsds_ids, load_record
from featlib.data.synthetic import make_scene

N = 100


def square(n=N, a=20, b=79) -> np.ndarray:
    """The outline of the square [a, b]^2 with its 4 corner pixels cut (8-connected, so thinning keeps it):
    4 sides of b - a - 1 = 58 px, 232 px in all."""
    g = np.zeros((n, n), bool)
    g[a, a + 1:b] = g[b, a + 1:b] = True
    g[a + 1:b, a] = g[a + 1:b, b] = True
    return g


def vline(n=N, x=50) -> np.ndarray:
    g = np.zeros((n, n), bool)
    g[10:90, x] = True  # 80 px
    return g


def prf(counts):
    cnt_r, sum_r, cnt_p, sum_p = counts
    return cnt_p / sum_p, cnt_r / sum_r


GT = square()


def test_the_hand_made_square_is_thin():
    assert GT.sum() == 232 and (thin(GT) == GT).all()


def test_prediction_equal_to_the_ground_truth_scores_one():
    c = boundaries.map_counts(GT, [GT])
    assert (c[1], c[3]) == (232, 232)
    assert prf(c) == pytest.approx((1, 1), abs=0.03)


def test_a_one_pixel_shift_is_within_tolerance():
    assert prf(boundaries.map_counts(np.roll(GT, 1, axis=1), [GT])) == pytest.approx((1, 1), abs=0.03)


def test_a_two_pixel_shift_is_beyond_tolerance_on_100px_but_not_on_200px():
    assert boundaries.map_counts(vline(x=52), [vline()]) == (0, 80, 0, 80)  # 2 > 1.06 px: nothing matches
    # the tolerance is a fraction of the diagonal: 2.12 px on 200 x 200
    assert prf(boundaries.map_counts(vline(200, 52), [vline(200)])) == pytest.approx((1, 1), abs=0.03)


def test_half_the_boundary_has_full_precision_and_half_recall():
    top_bottom = GT.copy()
    top_bottom[21:79] = False  # 2 sides: 116 px
    c = boundaries.map_counts(top_bottom, [GT])
    assert (c[1], c[3]) == (232, 116)
    assert prf(c) == pytest.approx((1, 0.5), abs=0.03)


def test_a_thick_prediction_is_thinned_so_precision_is_not_diluted():
    thick = np.zeros_like(GT)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            thick |= np.roll(GT, (dy, dx), axis=(0, 1))  # a 3-px band, 704 px
    c = boundaries.map_counts(thick, [GT])
    assert 220 <= c[3] <= 236  # one line of about the square's length remains
    assert prf(c) == pytest.approx((1, 1), abs=0.03)
    unthinned = boundaries.map_counts(thick, [GT], thin=False)
    assert unthinned[3] == 704
    assert prf(unthinned) == pytest.approx((232 / 704, 1), abs=0.03)  # only one band pixel per GT pixel matches


def test_precision_matches_any_annotator_and_recall_sums_over_annotators():
    top_bottom, sides = GT.copy(), GT.copy()
    top_bottom[21:79] = False
    sides[[20, 79]] = False  # the other annotator drew the other 2 sides (116 px); the cut corners keep them apart
    c = boundaries.map_counts(GT, [top_bottom, sides])
    assert (c[1], c[3]) == (232, 232)
    assert prf(c) == pytest.approx((1, 1), abs=0.03)  # each pixel is matched by one of the two annotators
    c = boundaries.map_counts(top_bottom, [top_bottom, sides])
    assert (c[1], c[3]) == (232, 116)
    assert prf(c) == pytest.approx((1, 0.5), abs=0.03)  # all of one annotator, none of the other


def test_empty_prediction():
    assert boundaries.map_counts(np.zeros_like(GT), [GT]) == (0, 232, 0, 0)
    s = boundaries.summarise([[boundaries.map_counts(np.zeros_like(GT), [GT])]], [0.5])
    assert (s["ods_f"], s["ois_f"], s["ap"]) == (0, 0, 0)


def test_edge_counts_thresholds_a_soft_map():
    pb = 0.3 * GT + 0.6 * vline()  # the square at 0.3, a line at 0.6 (it crosses the square at 2 pixels)
    c = boundaries.edge_counts(pb, [GT], thresholds=[0.2, 0.5, 0.95])
    assert c[:, 3].tolist() == [310, 80, 0]  # 232 + 80 - 2 crossings; the line; nothing
    assert c[:, 1].tolist() == [232] * 3
    assert c[0, 2] == pytest.approx(232, abs=7)
    # the line alone: at each crossing the crossing pixel takes a GT neighbour, the line pixel next to it the GT
    # pixel under the crossing (1 px); one-to-one matching leaves the third line pixel near the side unmatched
    assert c[1, 2] == pytest.approx(4, abs=1)
    assert boundaries.bsds_thresholds(3).tolist() == [0.25, 0.5, 0.75]


def test_bsds_boundaries_draws_a_partition_as_seg2bdry():
    seg = np.zeros((4, 5), int)
    seg[:, 3:] = 1  # a vertical edge between columns 2 and 3
    seg[3, :] = 2  # and a horizontal one between rows 2 and 3
    expected = np.zeros((4, 5), bool)
    expected[:3, 2] = True  # the corner below-right of each pixel left of the edge
    expected[2, :] = True  # the corners below row 2 (the last column copies the edge below (2, 4))
    # the last row copies its own vertical edges only: row 3 is one segment, so it stays empty
    assert (boundaries.bsds_boundaries(seg) == expected).all()


def test_bsds_boundaries_thinned_are_the_shipped_gt_boundaries(shared):
    root = shared / "datasets" / "bsds500"
    if not (root / "groundTruth" / "val").is_dir():
        pytest.skip("BSDS500 val is not in ../shared")
    for image_id in bsds_ids(root, "val")[:2]:
        rec = load_record(root, "val", image_id)
        for seg, bnd in zip(rec.segmentations, rec.boundaries):
            assert (thin(boundaries.bsds_boundaries(seg)) == bnd).all()


def test_ucm_thresholds_give_the_boundaries_of_the_hierarchy_partitions():
    scene = make_scene(np.random.default_rng(0), (40, 56))
    h = build_hierarchy(np.moveaxis(scene.image, -1, 0) / 255.0)
    pb = h.ucm()[2::2, 2::2]  # the map ucm_counts thresholds
    heights = np.unique(h.heights)
    for t in (heights[:-1] + heights[1:])[:: max(1, len(heights) // 6)] / 2:
        assert ((pb >= t) == boundaries.bsds_boundaries(h.partition(threshold=t))).all()


def test_summarise_against_hand_computed_ods_ois_ap():
    # two images, three thresholds, (cntR, sumR, cntP, sumP); dataset curve R = 1, .8, .5 and P = .5, .8, 1
    a = [[10, 10, 6, 12], [9, 10, 8, 10], [4, 10, 4, 4]]  # best F at threshold 2: R .9, P .8
    b = [[10, 10, 4, 8], [7, 10, 4, 5], [6, 10, 6, 6]]  # best F at threshold 3: R .6, P 1
    s = boundaries.summarise([a, b], [0.25, 0.5, 0.75])
    # ODS: F = .667, .8, .667 at the thresholds; F falls away from .8 on both sides, so the interpolation keeps it
    assert (s["ods_f"], s["ods_p"], s["ods_r"], s["ods_threshold"]) == pytest.approx((0.8, 0.8, 0.8, 0.5))
    # OIS from summed counts at each image's best: R = (9 + 6) / 20, P = (8 + 6) / 16 -> F = 21/26 (the mean of
    # the two per-image Fs would be 0.799)
    assert (s["ois_r"], s["ois_p"], s["ois_f"]) == pytest.approx((0.75, 0.875, 21 / 26))
    # AP: P(R) linear on [.5, .8] (1 -> .8) and [.8, 1] (.8 -> .5), 0 below R = .5, sampled at R = 0, .01, ..., 1:
    # sum_{k=50..80} (1 - (k - 50) / 150) + sum_{k=81..100} (.8 - .015 (k - 80)) = 27.9 + 12.85, x .01
    assert s["ap"] == pytest.approx(0.4075)
    assert s["pr_curve"]["recall"] == pytest.approx([1, 0.8, 0.5]) and s["n_images"] == 2


def test_summarise_interpolates_between_thresholds():
    # dataset P/R (.3, .9) then (.55, .55): F = .45, .55 at the thresholds, but higher in between (maxF.m)
    s = boundaries.summarise([[[9, 10, 3, 10], [11, 20, 11, 20]]], [1.0, 2.0])
    d = np.linspace(0, 1, 100)
    p, r = 0.3 + 0.25 * d, 0.9 - 0.35 * d
    assert s["ods_f"] == pytest.approx((2 * p * r / (p + r)).max()) and s["ods_f"] > 0.55
    assert 1 < s["ods_threshold"] < 2


def test_bad_inputs_are_value_errors_naming_them():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        boundaries.edge_counts(GT * 2.0, [GT])
    with pytest.raises(ValueError, match="differ in shape"):
        boundaries.map_counts(GT, [GT[:50]])
    with pytest.raises(ValueError, match="ucm2"):
        boundaries.ucm_counts(np.zeros((10, 11)), [GT])
    with pytest.raises(ValueError, match="counts"):
        boundaries.summarise(np.zeros((2, 3, 4)), [0.5])
    with pytest.raises(ValueError, match="thresholds"):
        boundaries.edge_counts(GT * 0.5, [GT], thresholds=[[0.5]])


def _noisy_pair(seed=0, n=120):
    """A boundary map and a GT with a few hundred pixels near each other: enough unmatched pixels that
    correspondPixels' random outlier graph matters."""
    rng = np.random.default_rng(seed)
    g = np.zeros((n, n), bool)
    for k in range(6):
        g[10 + 17 * k, 5:115] = True
        g[5:115, 12 + 18 * k] = True
    pred = np.roll(g, (1, 2), axis=(0, 1)) | (rng.random((n, n)) > 0.97)
    return thin(pred), g


def test_seeded_matching_repeats_exactly_and_the_clock_seed_still_runs():
    pred, g = _noisy_pair()
    runs = {boundaries.map_counts(pred, [g], thin=False) for _ in range(3)}
    assert len(runs) == 1  # MATCH_SEED by default: the same counts every call
    assert boundaries.map_counts(pred, [g], thin=False, seed=7)[1::2] == next(iter(runs))[1::2]  # totals never move
    cnt_r, sum_r, cnt_p, sum_p = boundaries.map_counts(pred, [g], thin=False, seed=None)  # BSDS's clock seed
    assert (sum_r, sum_p) == next(iter(runs))[1::2] and 0 < cnt_r <= sum_r and 0 < cnt_p <= sum_p
    for bad in (0, -1, 2**48, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            boundaries.map_counts(pred, [g], seed=bad)


@pytest.mark.parametrize("matcher", ["lap", "dt"])
def test_the_tuning_matchers_agree_with_the_benchmarks_matching(matcher):
    pred, g = _noisy_pair(1)
    ref = boundaries.map_counts(pred, [g], thin=False)
    got = boundaries.map_counts(pred, [g], thin=False, matcher=matcher)
    assert got[1::2] == ref[1::2]
    if matcher == "lap":  # the optimum of the same problem: here at least as many GT pixels as the sampled graph's
        assert ref[0] <= got[0] <= ref[0] * 1.01 and abs(got[2] - ref[2]) <= 0.01 * ref[2]
    else:  # many-to-one: every pixel with a partner in range counts, so it can only be more lenient
        assert got[0] >= ref[0] and got[2] >= ref[2]
    # hand-made: a 2-px-thick GT against a 1-px line: one-to-one matchers match 80 pixels each way, dt 160 GT pixels
    thick = vline() | vline(x=51)
    assert boundaries.map_counts(vline(), [thick], thin=False, matcher=matcher)[:3:2] == \
        ((160, 80) if matcher == "dt" else (80, 80))
    with pytest.raises(ValueError, match="matcher"):
        boundaries.map_counts(pred, [g], matcher="hungarian")


def test_threshold_maps_are_deduplicated_exactly():
    scene = make_scene(np.random.default_rng(0), (40, 56))
    h = build_hierarchy(np.moveaxis(scene.image, -1, 0) / 255.0)
    ucm = h.ucm()
    t = np.geomspace(0.01, 200, 48)
    maps, index = boundaries.ucm_maps(ucm, t)
    assert len(index) == 48 and len(maps) < 48 and len({m.tobytes() for m in maps}) == len(maps)
    pb = ucm[2::2, 2::2]
    for k in range(0, 48, 5):  # every threshold's map is its own thinned map
        assert (maps[index[k]] == thin(pb >= t[k])).all()
    segs = [h.partition(threshold=x) for x in t[::8]]
    pmaps, pindex = boundaries.partition_maps(segs)
    assert all((pmaps[pindex[i]] == thin(boundaries.bsds_boundaries(s))).all() for i, s in enumerate(segs))
    assert boundaries.map_key(maps[0]) == boundaries.map_key(maps[0].copy()) != boundaries.map_key(maps[-1])


def test_ucm_labels_cut_as_the_region_benchmark():
    scene = make_scene(np.random.default_rng(1), (40, 56))
    h = build_hierarchy(np.moveaxis(scene.image, -1, 0) / 255.0)
    for t in (0.05, 0.5, 5.0):
        a, b = boundaries.ucm_labels(h.ucm(), t), h.partition(threshold=t)
        # the same partition up to label names: a one-to-one map between the labels
        pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
        assert len(pairs) == len(np.unique(a)) == len(np.unique(b))
