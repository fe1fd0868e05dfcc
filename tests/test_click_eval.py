"""Click simulators, robustness metrics and the multi-object protocol (featlib.click_protocol, click_metrics,
multi_protocol)."""

import numpy as np
import pytest

from conftest import two_object_scene
from featlib.click_metrics import (
    bootstrap_interval,
    compare_results,
    delta_gr,
    delta_sb,
    delta_sb_interval,
    noc,
    nsr,
    paired_bootstrap,
    summarise,
)
from featlib.click_protocol import (
    ClickRun,
    choose_click,
    click_rng,
    error_region,
    next_click,
    parse_clicker,
    simulate_clicks,
)
from featlib.distances import lab_features
from featlib.interactive import ClickSegmenter
from featlib.metrics import iou
from featlib.multi_protocol import multi_objects, simulate_multi, simulate_single

scene = two_object_scene  # (image, disk, square)


def test_parse_clicker():
    assert parse_clicker("center").stochastic is False
    assert parse_clicker("jitter:10").param == 10 and parse_clicker("jitter:10").spec == "jitter:10"
    assert parse_clicker("worst:4").kind == "worst" and parse_clicker("dt").stochastic
    for bad, msg in [("corner", "unknown clicker"), ("dt:3", "no parameter"), ("jitter:x", "number"),
                     ("jitter:0", "S > 0"), ("best:1", "M >= 2"), ("worst:2.5", "integer")]:
        with pytest.raises(ValueError, match=msg):
            parse_clicker(bad)


def test_every_clicker_clicks_inside_the_largest_error_region():
    gt = np.zeros((40, 50), bool)
    gt[5:30, 5:30] = True
    pred = np.zeros_like(gt)
    pred[5:30, 5:12] = True  # FN: a 25 x 18 block
    pred[32:38, 35:48] = True  # FP: a smaller blob elsewhere
    pred[0, 0] = True  # a one-pixel FP
    region, dt, positive, centre = error_region(pred, gt)
    assert positive and region.sum() == 25 * 18 and region[centre]
    assert next_click(pred, gt) == (*centre, True)
    for spec in ["dt", "uniform", "jitter:3", "jitter:40"]:
        for k in range(20):
            y, x, p = choose_click(spec, pred, gt, rng=click_rng(0, "a", k))
            assert p and region[y, x], spec
    # a tiny jitter leaves the centre where it is
    assert choose_click("jitter:0.01", pred, gt, rng=click_rng(0, "a", 0)) == (*centre, True)
    # dt favours deep pixels: over many draws the mean depth beats the uniform clicker's
    depth = {s: np.mean([dt[choose_click(s, pred, gt, rng=click_rng(1, "a", k))[:2]] for k in range(200)])
             for s in ("dt", "uniform")}
    assert depth["dt"] > depth["uniform"]
    with pytest.raises(ValueError, match="rng"):
        choose_click("dt", pred, gt)
    assert choose_click("dt", gt, gt, rng=click_rng(0, "a", 0)) is None


def test_common_random_numbers():
    img, disk, _ = scene()
    seg = ClickSegmenter(lab_features(img), img)
    runs = {s: simulate_clicks(seg, disk, n_clicks=6, clicker="dt", seed=s, object_id="disk") for s in (0, 0, 1)}
    again = simulate_clicks(seg, disk, n_clicks=6, clicker="dt", seed=0, object_id="disk")
    assert again.clicks == runs[0].clicks and again.ious == runs[0].ious
    assert runs[1].clicks[0] != runs[0].clicks[0]  # another seed, another first click
    other = simulate_clicks(seg, disk, n_clicks=1, clicker="dt", seed=0, object_id="other")
    assert other.clicks[0] != runs[0].clicks[0]  # the object id is part of the key
    # A second feature source sees the same first click (its draw depends only on seed, object and click index).
    seg2 = ClickSegmenter(lab_features(img)[:2], img)
    assert simulate_clicks(seg2, disk, n_clicks=1, clicker="dt", seed=0, object_id="disk").clicks == runs[0].clicks[:1]
    assert click_rng(3, "x", 2).random() == click_rng(3, "x", 2).random() != click_rng(3, "x", 1).random()


def test_worst_and_best_try_candidates_without_changing_the_segmenter():
    img, disk, square = scene(seed=1)
    gt = disk | square
    seg = ClickSegmenter(lab_features(img), img, region_spacing=1)
    seg.add_click(25, 25, True)  # the disk: the square is still missing
    before = (seg.mask.copy(), list(seg.clicks))
    got = {s: choose_click(s, seg.mask, gt, rng=click_rng(0, "d", 1), segmenter=seg) for s in ("worst:6", "best:6")}
    np.testing.assert_array_equal(seg.mask, before[0])
    assert seg.clicks == before[1]
    after = {}
    for s, c in got.items():
        seg.add_click(*c)
        after[s] = iou(seg.mask, gt)
        seg.undo()
    assert after["worst:6"] <= after["best:6"]
    with pytest.raises(ValueError, match="undo"):
        choose_click("worst:2", seg.mask, gt, rng=click_rng(0, "d", 1), segmenter=None)


class _Forgetful:
    """A segmenter that forgets every click but the last: its earlier clicked pixels lose their label."""

    def __init__(self, shape):
        self.shape, self.last_update_s = shape, 0.0
        self.reset()

    def reset(self):
        self.mask = np.zeros(self.shape, bool)

    def add_click(self, y, x, positive):
        self.mask = np.zeros(self.shape, bool)
        self.mask[max(0, y - 3):y + 4, max(0, x - 3):x + 4] = positive
        return self.mask


def test_honoured_clicks_over_100_clicks_and_the_check_can_fail():
    img, disk, square = scene(48, seed=2)
    seg = ClickSegmenter(lab_features(img), img)
    for spec in ("center", "dt"):
        run = simulate_clicks(seg, disk | square, n_clicks=100, clicker=spec, object_id="o")
        assert run.honoured and len(run.ious) == 100 and len(run.clicks) <= 100
    bad = simulate_clicks(_Forgetful(disk.shape), disk, n_clicks=5)
    assert not bad.honoured and bad.violations > 0
    stop = simulate_clicks(seg, disk, n_clicks=20, stop_at=0.5)
    assert len(stop.clicks) == stop.noc(0.5) and stop.ious[-1] == stop.ious[len(stop.clicks) - 1]


def test_honoured_on_the_grabcut_sample(shared):
    """The 100-click regime on a real photo (half resolution to stay fast): every click honoured."""
    from featlib.data.samples import iis_samples

    root = shared / "fixtures" / "grabcut_sample"
    if not root.is_dir():
        pytest.skip("no grabcut_sample fixture")
    name, image, mask, ignore = next(iis_samples("grabcut", root, limit=1))
    image, mask, ignore = image[::2, ::2], mask[::2, ::2], ignore[::2, ::2]
    seg = ClickSegmenter(lab_features(image), image)
    run = simulate_clicks(seg, mask, ignore, n_clicks=100, clicker="dt", object_id=name)
    assert run.honoured and len(run.clicks) > 20
    for y, x, p in run.clicks:
        assert not ignore[y, x] and mask[y, x] == p  # clicks sit on wrong, scored pixels


def _record(name, trajectories):
    return {"name": name, "runs": [{"seed": s, "ious": list(t), "clicks": [[0, 0, True]] * len(t), "honoured": True}
                                   for s, t in enumerate(trajectories)]}


def test_summarise_matches_the_definitions():
    rng = np.random.default_rng(0)
    ious = np.clip(np.cumsum(rng.uniform(-0.05, 0.2, (5, 3, 12)), -1), 0, 1)  # [objects, seeds, clicks]
    objs = [_record(f"o{i}", ious[i]) for i in range(5)]
    s = summarise(objs, max_clicks=10)
    per = np.array([[ClickRun(ious=list(t)).noc(0.9, 10) for t in o] for o in ious])
    assert s["noc90"] == pytest.approx(per.mean()) and s["noc90_std"] == pytest.approx(per.mean(0).std())
    assert s["noc90_p50"] == pytest.approx(np.median(per))
    falls = np.diff(ious, axis=-1)
    assert s["drops"] == int((falls < -1e-9).sum()) and s["drops_over_0.01"] == int((falls < -0.01).sum())
    assert s["never_falls"] == pytest.approx((~(falls < -1e-9).any(-1)).mean())
    assert sum(s["drops_per_click"]) == s["drops"] and s["drops_per_click"][0] == 0
    assert s["nsr_iou1"] == pytest.approx(np.mean(ious[:, :, 0].std(1) / ious[:, :, 0].mean(1)) * 100)
    assert s["clicks_honoured"] == 1.0
    assert noc(ious, 2.0, 10).max() == 10  # never reached -> the budget
    assert nsr(ious[:, :1, 0]) is None  # one seed: no spread to measure
    assert delta_sb(11.0, 10.0) == pytest.approx(10.0) and delta_gr(12.0, 8.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="seeds"):
        summarise([objs[0], _record("x", ious[0, :2])], 10)


def test_paired_bootstrap_and_compare():
    rng = np.random.default_rng(1)
    a = rng.normal(10, 2, 40)
    shifted = paired_bootstrap(a + 1.5 + rng.normal(0, 0.3, 40), a)
    assert shifted["ci95"][0] > 0 and shifted["ci95"][0] <= shifted["mean_diff"] <= shifted["ci95"][1]
    noise = paired_bootstrap(a + rng.normal(0, 1, 40), a)
    assert noise["ci95"][0] < 0 < noise["ci95"][1]  # pure noise: the interval holds 0
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(a, a[:-1])
    ious = np.linspace(0.5, 1, 10)[None, None].repeat(4, 0).repeat(2, 1)
    res = {"clickers": {"dt": {"max_clicks": 10, "objects": [_record(f"o{i}", ious[i]) for i in range(4)]}}}
    cmp = compare_results(res, res)["dt"]
    assert cmp["noc90"]["mean_diff"] == 0 and cmp["same_first_click"] == 1.0 and cmp["n_objects"] == 4
    with pytest.raises(ValueError, match="clickers"):
        compare_results(res, {})


def test_bootstrap_intervals_of_delta_sb_and_nsr():
    """The intervals hold their point estimates, shrink with more objects, resample objects jointly, and refuse
    mismatched inputs."""
    rng = np.random.default_rng(2)
    centre = rng.uniform(5, 15, 200)
    clicker = centre * 1.2 + rng.normal(0, 2, 200)  # ~20 % more clicks, object by object
    point = delta_sb(clicker.mean(), centre.mean())
    wide, narrow = delta_sb_interval(clicker[:20], centre[:20]), delta_sb_interval(clicker, centre)
    assert narrow[0] < point < narrow[1] and narrow[1] - narrow[0] < wide[1] - wide[0]
    assert delta_sb_interval(centre, centre) == [0.0, 0.0]  # paired: identical clickers have no spread
    # resampled jointly: both arrays see the same objects, so the difference of identical arrays is 0 every time
    joint = bootstrap_interval(lambda a, b: (a - b).mean(1), clicker, clicker)
    assert joint == [0.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        delta_sb_interval(clicker, centre[:-1])
    with pytest.raises(ValueError, match="same number of objects"):
        bootstrap_interval(lambda a, b: a.mean(1), clicker, centre[:-1])
    ious = np.clip(rng.uniform(0.2, 0.9, (30, 3, 4)), 0, 1)
    s = summarise([_record(f"o{i}", ious[i]) for i in range(30)], max_clicks=4)
    lo, hi = s["nsr_iou1_ci95"]
    assert lo < s["nsr_iou1"] < hi
    assert summarise([_record(f"o{i}", ious[i, :1]) for i in range(30)], 4)["nsr_iou1_ci95"] is None


def test_multi_objects_area_rule():
    seg = np.zeros((10, 20), int)
    seg[:, 10:] = 5  # 100 px
    seg[:3, :5] = 2  # 15 px
    seg[9, 0] = 7  # 1 px: below 5 %
    labels = multi_objects(seg, min_area=0.05)
    assert labels.dtype == np.int32 and labels.max() == 3
    assert (labels[:, 10:] == 1).all() and (labels[:3, :5] == 3).all() and labels[9, 0] == 0
    assert labels[5, 5] == 2  # segment 0 (84 px) is the second largest
    with pytest.raises(ValueError, match="min_area"):
        multi_objects(seg, 0)


class _NearestClick:
    """Stand-in multi-label segmenter: each pixel takes the label of its nearest click in colour + position."""

    def __init__(self, features, image=None, **_):
        self.f = np.asarray(features, np.float64)
        self.shape = self.f.shape[1:]
        self.last_update_s = 0.0
        self.reset()

    def reset(self):
        self.clicks = {}
        self.labels = np.zeros(self.shape, np.int32)
        return self.labels

    def add_click(self, y, x, label):
        self.clicks[(y, x)] = label
        yy, xx = np.mgrid[: self.shape[0], : self.shape[1]]
        d = [((self.f - self.f[:, cy, cx, None, None]) ** 2).sum(0) + 1e-4 * ((yy - cy) ** 2 + (xx - cx) ** 2)
             for cy, cx in self.clicks]
        self.labels = np.array(list(self.clicks.values()), np.int32)[np.argmin(d, axis=0)]
        return self.labels


class _ClickedPixelsOnly(_NearestClick):
    """Stand-in that labels only the clicked pixels: no object ever reaches the target."""

    def add_click(self, y, x, label):
        self.labels = self.labels.copy()
        self.labels[y, x] = label
        return self.labels


def test_simulate_multi_and_single_baseline():
    img, disk, square = scene(48, seed=3)
    gt = disk.astype(np.int32) + 2 * square
    f = lab_features(img)
    run = simulate_multi(_NearestClick(f), gt, threshold=0.85, max_per_object=5)
    assert run.honoured and run.nci == sum(run.charged) == len(run.clicks) and run.nfo == 0
    first = [c[:3] for c in run.clicks[:2]]
    centres = [next_click(np.zeros_like(m), m)[:2] for m in (disk, square)]
    assert first == [(*centres[0], 1), (*centres[1], 2)]
    assert all(gt[y, x] == lab for y, x, lab, _ in run.clicks)  # every click carries the label its pixel should have
    assert min(run.ious[-1]) >= 0.85 and len(run.covering) == run.nci and 0 < run.covering[-1] <= 1
    capped = simulate_multi(_ClickedPixelsOnly(f), gt, threshold=0.85, max_per_object=3)
    assert capped.charged == [3, 3] and capped.nfo == 2 and capped.honoured  # every object spends its budget
    with pytest.raises(ValueError, match="threshold"):
        simulate_multi(_NearestClick(f), gt, threshold=1.01)
    base = simulate_single(ClickSegmenter(f, img), gt, threshold=0.85, max_per_object=5)
    assert base["nci_single"] == sum(base["noc"]) and len(base["noc"]) == 2 and base["honoured"]
    assert all(1 <= n <= 5 for n in base["noc"])
    with pytest.raises(ValueError, match="no object"):
        simulate_multi(_NearestClick(f), np.zeros_like(gt))


def test_clicks_of_a_stochastic_run_are_wrong_pixels():
    img, disk, _ = scene(48, seed=4)
    seg = ClickSegmenter(lab_features(img), img)
    run = simulate_clicks(seg, disk, n_clicks=8, clicker="uniform", object_id="u")
    mask = np.zeros_like(disk)
    seg.reset()
    for y, x, p in run.clicks:
        assert disk[y, x] == p and mask[y, x] != p  # always on a currently wrong pixel, with the right label
        mask = seg.add_click(y, x, p).copy()
