import numpy as np
import pytest
from scipy import ndimage

from conftest import two_object_scene
from featlib.click_update import SEED_DEPTH_CAP, seed_region
from featlib.distances import lab_features
from featlib.graphcut import maxflow_available
from featlib.interactive import ClickRun, ClickSegmenter, next_click, simulate_clicks
from featlib.metrics import iou

_NO_MAXFLOW = pytest.mark.skipif(not maxflow_available(), reason="no PyMaxflow")
BACKENDS = ["scipy", pytest.param("pymaxflow", marks=_NO_MAXFLOW)]


def scene(size=64, seed=0):
    """conftest.two_object_scene without the square -> (image uint8 [H, W, 3], disk mask)."""
    return two_object_scene(size, seed)[:2]


def multistride(img):
    """A FeatureNet-like dict: Lab at stride 1, 2x2-block means stacked as channels at stride 2."""
    lab = lab_features(img)
    c, h, w = lab.shape
    s2 = lab.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3).reshape(c * 4, h // 2, w // 2)
    return {1: lab, 2: s2}


FEATURES = {"lab": lambda img: lab_features(img), "dict": multistride}


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spacing", [1, 4])
@pytest.mark.parametrize("kind", sorted(FEATURES))
def test_clicked_pixels_keep_labels_and_deterministic(kind, spacing, backend, local):
    img, disk = scene()
    feats = FEATURES[kind](img)
    seg = ClickSegmenter(feats, img, region_spacing=spacing, backend=backend, local=local)
    rng = np.random.default_rng(3)
    clicks = [(26, 26, True)]
    # Adjacent clicks of both signs land in one region and force a split when spacing > 1.
    clicks += [(int(y), int(x), bool(p))
               for y, x, p in zip(rng.integers(0, 64, 12), rng.integers(0, 64, 12), rng.random(12) < 0.5)]
    clicks += [(30, 30, True), (30, 31, False), (31, 30, False), (30, 31, True)]
    seen = {}
    for y, x, p in clicks:
        seg.add_click(y, x, p)
        seen[(y, x)] = p  # a later click on the same pixel overrides
        for (cy, cx), cp in seen.items():
            assert seg.mask[cy, cx] == cp
    other = ClickSegmenter(feats, img, region_spacing=spacing, backend=backend, local=local)
    for y, x, p in clicks:
        other.add_click(y, x, p)
    np.testing.assert_array_equal(seg.mask, other.mask)


@pytest.mark.parametrize("kind", sorted(FEATURES))
def test_good_mask_from_few_clicks(kind):
    img, disk = scene()
    seg = ClickSegmenter(FEATURES[kind](img), img)
    seg.add_click(25, 25, True)
    assert iou(seg.mask, disk) > 0.85


@pytest.mark.parametrize("local,spacing", [(False, 1), (True, 1), (True, 4)])
def test_monotone_nested_masks(local, spacing):
    # Global cut: nested by the submodularity argument on the pixel graph (no splits); local: by construction.
    img, disk = scene(seed=4)
    seg = ClickSegmenter(lab_features(img), img, region_spacing=spacing, backend="scipy", local=local)
    rng = np.random.default_rng(5)
    prev = seg.mask.copy()
    for _ in range(10):
        y, x, p = int(rng.integers(0, 64)), int(rng.integers(0, 64)), bool(rng.random() < 0.6)
        seg.add_click(y, x, p)
        if len(seg.clicks) > 1 and any(c.positive for c in seg.clicks[:-1]):
            if p:
                assert (seg.mask | ~prev).all(), "a positive click removed pixels"
            else:
                assert (~seg.mask | prev).all(), "a negative click added pixels"
        prev = seg.mask.copy()


def test_undo_reset_and_first_negative():
    img, _ = scene()
    seg = ClickSegmenter(lab_features(img), img)
    seg.add_click(5, 5, False)
    assert not seg.mask.any()  # documented: empty until the first positive click
    seg.add_click(25, 25, True)
    one = seg.mask.copy()
    assert one.any() and not one[5, 5]
    seg.add_click(50, 50, True)
    seg.add_click(52, 52, False)
    seg.undo()
    seg.undo()
    np.testing.assert_array_equal(seg.mask, one)
    again = ClickSegmenter(lab_features(img), img)
    again.add_click(5, 5, False)
    again.add_click(25, 25, True)
    np.testing.assert_array_equal(again.mask, one)
    seg.reset()
    assert not seg.mask.any() and seg.clicks == []
    seg.undo()  # no-op


@pytest.mark.parametrize("y,x", [(-1, 3), (3, 64), (64, 0)])
def test_click_outside_raises(y, x):
    img, _ = scene()
    seg = ClickSegmenter(lab_features(img), img)
    with pytest.raises(ValueError, match="outside"):
        seg.add_click(y, x, True)
    assert seg.clicks == []


def test_bad_inputs():
    img, _ = scene()
    f = lab_features(img)
    f[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ClickSegmenter(f)
    with pytest.raises(ValueError, match="C, h, w"):
        ClickSegmenter(np.zeros((64, 64)))
    with pytest.raises(ValueError, match="backend"):
        ClickSegmenter(lab_features(img), backend="nope")


def test_next_click_protocol():
    gt = np.zeros((20, 30), bool)
    gt[4:13, 5:14] = True  # deepest point: centre (8, 9)
    pred = np.zeros_like(gt)
    assert next_click(pred, gt) == (8, 9, True)
    # A large false positive blob beats a thin false negative strip.
    pred = gt.copy()
    pred[4:13, 5] = False
    pred[2:18, 16:28] = True
    y, x, pos = next_click(pred, gt)
    assert not pos and 16 <= x < 28
    # Ignored pixels never receive a click; no error left -> None.
    ignore = pred & ~gt | (gt & ~pred)
    assert next_click(pred, gt, ignore) is None
    assert next_click(gt, gt) is None


def test_click_run_noc_and_drops():
    run = ClickRun(ious=[0.5, 0.86, 0.8, 0.91, 0.95])
    assert run.noc(0.85) == 2 and run.noc(0.9) == 4 and run.noc(0.99) == 20
    assert run.noc(0.9, max_clicks=3) == 3
    assert run.drops() == [pytest.approx(0.06)]


def test_simulate_clicks_reaches_object():
    img, disk = scene()
    seg = ClickSegmenter(lab_features(img), img)
    run = simulate_clicks(seg, disk, n_clicks=5)
    assert len(run.ious) == 5 and run.ious[-1] > 0.9
    assert run.noc(0.85, max_clicks=5) <= 2
    for (y, x, p) in run.clicks:
        assert disk[y, x] == p  # simulated clicks are always on the correct side
    with pytest.raises(ValueError, match="shape"):
        simulate_clicks(seg, disk[:10])


@pytest.mark.parametrize("seeded", [False, True])
@pytest.mark.parametrize("reach", [1.0, 3.0])
def test_trust_region_bounds_late_changes(reach, seeded):
    img, disk = scene(96, seed=6)
    seg = ClickSegmenter(lab_features(img), img, reach=reach, seed_segments=40 if seeded else None)
    assert (seg.seed_map is not None) == seeded
    if seeded:  # without an image: the "mesh" grouping of the features, cut at the count asked for
        assert len(np.unique(ClickSegmenter(lab_features(img), seed_segments=40).seed_map)) == 40
    # the last click is a positive click in the flat background: the cut would take all of it, the box limits it
    run_clicks = [(38, 38, True), (70, 75, True), (5, 90, False), (60, 20, True), (38, 60, False), (90, 5, True)]
    n_checked = 0
    for y, x, p in run_clicks:
        before = seg.mask.copy()
        same = before if p else ~before
        seg.add_click(y, x, p)
        changed = np.argwhere(seg.mask != before)
        if len(seg.clicks) == 1 or not same.any() or same[y, x] or len(changed) == 0:
            continue
        r = max(ndimage.distance_transform_edt(~same)[y, x], 2.0)
        if seeded:  # every change within (reach - 1) * depth of the click's seed, depth <= 2r (pixel-exact)
            seed = seed_region(before, p, y, x, seg.seed_map)
            pad = (reach - 1) * max(SEED_DEPTH_CAP * r, 2.0)
            assert ndimage.distance_transform_edt(~seed)[seg.mask != before].max() <= pad
        else:  # changes are whole regions meeting the box: allow one region width (spacing 4, regions <= ~2x)
            assert np.abs(changed - (y, x)).max() <= reach * r + 8
        n_checked += 1
    assert n_checked >= 2


@pytest.mark.parametrize("dist", [1, 3])
def test_touch_up_changes_only_the_empty_disc(dist):
    """A click r px from the mask (r < touch_up) flips only pixels closer to it than the mask is; touch_up=0 lets
    the region-level cut take more (so the bound is what limits the change, not the scene)."""
    img, disk = scene(96, seed=6)
    changes = {}
    for touch_up in (4.5, 0.0):
        seg = ClickSegmenter(lab_features(img), img, touch_up=touch_up, backend="scipy")
        seg.add_click(38, 38, True)
        dt = ndimage.distance_transform_edt(~seg.mask)
        # a background pixel exactly `dist` px from the mask, right of the disk centre row
        y = 38
        x = int(np.flatnonzero(np.isclose(dt[y], dist) & (np.arange(96) > 38))[0])
        before = seg.mask.copy()
        seg.add_click(y, x, True)
        assert seg.mask[y, x] and (seg.mask | ~before).all()
        changes[touch_up] = np.argwhere(seg.mask != before)
    d2 = ((changes[4.5] - (y, x)) ** 2).sum(1)
    assert (d2 < dist**2).all(), "touch-up changed a pixel outside the empty disc"
    if dist == 1:
        assert len(changes[4.5]) == 1  # only the clicked pixel
    assert len(changes[0.0]) > len(changes[4.5])


def test_escalation_turns_a_repeated_touch_up_into_a_box_click():
    """escalate_within: a would-be touch-up click (1 px from the mask) near an earlier click of its label is solved
    as an ordinary click (r = touch_up: a box), so it may take more than its empty disc; far from earlier clicks, or
    with escalate_within 0, it stays a touch-up (the clicked pixel alone at r = 1)."""
    img, disk = scene(96, seed=6)
    changes = {}
    for within in (0.0, 6.0):
        seg = ClickSegmenter(lab_features(img), img, escalate_within=within, backend="scipy")
        seg.add_click(38, 38, True)
        dt = ndimage.distance_transform_edt(~seg.mask)
        x = int(np.flatnonzero(np.isclose(dt[38], 1) & (np.arange(96) > 38))[0])
        before = seg.mask.copy()
        seg.add_click(38, x, True)  # the first click near here: a touch-up either way
        assert np.argwhere(seg.mask != before).tolist() == [[38, x]]
        dt = ndimage.distance_transform_edt(~seg.mask)
        yy, xx = np.mgrid[:96, :96]
        near = ((yy - 38) ** 2 + (xx - x) ** 2 <= 25) & (yy != 38)
        ys, xs = np.nonzero(np.isclose(dt, 1) & near)
        y2, x2 = int(ys[0]), int(xs[0])  # 1 px from the mask, within 5 px of the last click
        before = seg.mask.copy()
        seg.add_click(y2, x2, True)
        assert seg.mask[y2, x2] and (seg.mask | ~before).all()  # honoured, nested
        changes[within] = np.argwhere(seg.mask != before)
    assert changes[0.0].tolist() == [[y2, x2]]
    assert len(changes[6.0]) > 1
    with pytest.raises(ValueError, match="escalate_within"):
        ClickSegmenter(lab_features(img), img, escalate_within=-1)


def test_touch_up_validation():
    img, _ = scene()
    with pytest.raises(ValueError, match="touch_up"):
        ClickSegmenter(lab_features(img), img, touch_up=-1)


def _two_tone_disk(size=64, seed=0):
    """The click scene's disk, its right half another colour -> (image, disk mask)."""
    img, disk = scene(size, seed)
    xx = np.mgrid[:size, :size][1]
    img[disk & (xx > size * 0.4)] = (40, 160, 60)
    return img, disk


def test_lone_click_stands_for_its_segment():
    """With ``segments``, the newest click that is its label's only one is measured from its segment: every first
    click in the segment gives the same distances and cut; from the second object click on, clicked pixels again."""
    from featlib.click_energy import ClickCut
    from featlib.region_graph import ImageGraph, split_regions

    img, disk = _two_tone_disk()
    ig = ImageGraph(lab_features(img), size=disk.shape)
    plain = ClickCut(ig, 8.0, 1.0, 0.2, "scipy")
    segmented = ClickCut(ig, 8.0, 1.0, 0.2, "scipy", segments=disk.astype(np.int32))  # the object is one segment
    with pytest.raises(ValueError, match="segments"):
        ClickCut(ig, 8.0, 1.0, 0.2, "scipy", segments=disk[1:])
    left, right = (25, 20), (25, 32)  # one in each half of the disk
    masks = {}
    for name, cut in (("plain", plain), ("segmented", segmented)):
        for y, x in (left, right):
            masks[name, (y, x)] = cut.solve([(0, 0, 0), (y, x, 1)], 2) == 1
    np.testing.assert_array_equal(masks["segmented", left], masks["segmented", right])
    assert iou(masks["segmented", left], disk) > 0.9
    for click in (left, right):  # the pixel's colour alone takes its half
        assert iou(masks["plain", click], disk) < iou(masks["segmented", click], disk)
    g = ig.graph(split_regions(ig.base_regions, [(*left, 1)]))
    np.testing.assert_array_equal(segmented.distances(g, [(*left, 1)], 2, lone=(*left, 1)),
                                  segmented.distances(g, [(*right, 1)], 2, lone=(*right, 1)))
    # two object clicks (or a background click last): measured from the pixels, as without segments
    for clicks in ([(*left, 1), (*right, 1)], [(*left, 1), (5, 60, 0)]):
        np.testing.assert_array_equal(segmented.solve(clicks, 2), plain.solve(clicks, 2))


def test_lone_click_segments_in_the_segmenter():
    img, disk = _two_tone_disk(96, seed=4)
    seg = ClickSegmenter(lab_features(img), img, lone_click_segments=6)
    assert len(np.unique(seg.cut.segments)) == 6
    first = {}
    inside = np.argwhere(seg.cut.segments == seg.cut.segments[38, 38])[::97]
    for y, x in inside[:4]:
        seg.reset()
        first[y, x] = seg.add_click(int(y), int(x), True).copy()
    masks = list(first.values())
    assert all(np.array_equal(m, masks[0]) for m in masks[1:])
    with pytest.raises(ValueError, match="lone_click_segments"):
        ClickSegmenter(lab_features(img), img, lone_click_segments=0)


@pytest.mark.parametrize("cls", ["binary", "multi"])
def test_segmenter_partitions_come_from_the_hierarchy_given(cls):
    from featlib.cluster import gradient_hierarchy
    from featlib.multiclick import MultiClickSegmenter
    make = ClickSegmenter if cls == "binary" else MultiClickSegmenter
    img, _ = _two_tone_disk(96, seed=4)
    feats = lab_features(img)
    h = gradient_hierarchy(img, seed_spacing=4)  # a Hierarchy: its cuts, as they are
    seg = make(feats, img, seed_segments=12, lone_click_segments=5, hierarchy=h)
    np.testing.assert_array_equal(seg.seed_map, h.partition(n_segments=12))
    np.testing.assert_array_equal(seg.cut.segments, h.partition(n_segments=5))
    kw = {"boundary_map": "learned", "nms": True, "spectral": 0.0}  # gradient_hierarchy's keywords, on the image
    seg = make(feats, img, lone_click_segments=5, hierarchy=kw)
    np.testing.assert_array_equal(seg.cut.segments, gradient_hierarchy(img, **kw).partition(n_segments=5))
    default = make(feats, img, lone_click_segments=5)  # None: the histogram gradients' own defaults
    np.testing.assert_array_equal(default.cut.segments, gradient_hierarchy(img).partition(n_segments=5))
    for bad, match in (({"seed_spacing": 4, "colour": 1}, "takes no"), ({"nms": True}, "nms"), (3, "hierarchy must"),
                       ({"region_weight": 4.0}, "region_weight"), ({"features": feats}, "takes no")):
        with pytest.raises(ValueError, match=match):
            make(feats, img, lone_click_segments=5, hierarchy=bad)
    with pytest.raises(ValueError, match="pass image="):
        make(feats, None, hierarchy={"spectral": 0.0})


@pytest.mark.parametrize("cls", ["binary", "multi"])
def test_segmenter_partitions_at_a_working_resolution(cls):
    """With ``max_side`` a larger image's partitions are its working copy's, brought back nearest-neighbour: the
    same segment count, full size, each segment a block-upsampled working segment; an image within ``max_side`` is
    read as it is."""
    from featlib.boundary_net import resized
    from featlib.cluster import gradient_hierarchy
    from featlib.multiclick import MultiClickSegmenter, click_partitions
    make = ClickSegmenter if cls == "binary" else MultiClickSegmenter
    img, _ = _two_tone_disk(96, seed=4)
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)  # [192, 192, 3]
    seg = make(lab_features(big), big, lone_click_segments=5, seed_segments=12, max_side=96)
    work = gradient_hierarchy(resized(big, 0.5))  # the 96-px copy's hierarchy
    for n, got in ((5, seg.cut.segments), (12, seg.seed_map)):
        assert got.shape == big.shape[:2]
        np.testing.assert_array_equal(got, np.repeat(np.repeat(work.partition(n_segments=n), 2, 0), 2, 1))
    as_is = make(lab_features(img), img, lone_click_segments=5, max_side=96)  # 96 px: no copy
    np.testing.assert_array_equal(as_is.cut.segments, gradient_hierarchy(img).partition(n_segments=5))
    odd = click_partitions(big[:190, :181], None, None, [7], max_side=64)[7]  # a non-integer factor
    assert odd.shape == (190, 181) and len(np.unique(odd)) == 7
    with pytest.raises(ValueError, match="max_side"):
        make(lab_features(img), img, lone_click_segments=5, max_side=3)


def test_reaches_edge():
    from featlib.click_update import reaches_edge

    change = np.zeros((20, 30), bool)
    box = (5, 15, 0, 10)  # its left side is the image's edge
    assert not reaches_edge(change, box)
    change[8:12, 0:4] = True  # touches the image edge only
    assert not reaches_edge(change, box)
    change[14, 6] = True  # the bottom side (row y1 - 1)
    assert reaches_edge(change, box)
    change[14, 6] = False
    change[9, 9] = True  # the right side (column x1 - 1)
    assert reaches_edge(change, box)
    assert not reaches_edge(change, (0, 20, 0, 30))  # the whole image: no inner side


def _last_click_change(img, clicks, **kw) -> tuple[np.ndarray, np.ndarray]:
    """(bool [H, W] what the last of ``clicks`` changed, bool [H, W] the mask before it)."""
    seg = ClickSegmenter(lab_features(img), img, reach=1.0, **kw)
    for y, x, p in clicks[:-1]:
        seg.add_click(y, x, p)
    before = seg.mask.copy()
    seg.add_click(*clicks[-1])
    assert not (before & ~seg.mask).any()  # still nested
    return seg.mask != before, before


# The last click is positive in the flat background: its cut would take all of it, the box cuts it off.
GROW_CLICKS = [(38, 38, True), (70, 75, True), (5, 90, False), (60, 20, True), (38, 60, False), (90, 5, True)]


def test_grow_doubles_the_box_while_the_change_reaches_it():
    """With ``grow`` (no cap) the box doubles, up to grow times, while the applied change reaches an inner side."""
    img, _ = scene(96, seed=6)
    grown = {}
    for grow in (0, 1, 2):
        change, before = _last_click_change(img, GROW_CLICKS, grow=grow)
        r = max(ndimage.distance_transform_edt(~before)[GROW_CLICKS[-1][:2]], 2.0)
        assert np.abs(np.argwhere(change) - GROW_CLICKS[-1][:2]).max() <= 2**grow * r + 8  # one region's slack
        grown[grow] = change.sum()
    assert grown[0] < grown[1] <= grown[2]  # grow 2: the change stopped short of the doubled box
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="grow"):
            ClickSegmenter(lab_features(img), img, grow=bad)


def test_grow_cap_keeps_a_larger_box_only_while_its_change_stays_within_the_cap():
    """A doubled box's change is kept only while it is at most ``grow_cap`` times the click's own box's change;
    otherwise the last change within the cap stays (on the same state, the capped result is one of the levels')."""
    img, _ = scene(96, seed=6)
    own = _last_click_change(img, GROW_CLICKS, grow=0)[0].sum()
    levels = [_last_click_change(img, GROW_CLICKS, grow=g)[0].sum() for g in (1, 2)]  # default: no cap
    assert own < levels[0] <= levels[1]  # uncapped, the doubled box adds to this click's change
    for cap in (1.0, (own + levels[0]) / (2 * own), levels[0] / own, 2.0, np.inf):  # caps below / at / above level 1
        capped = _last_click_change(img, GROW_CLICKS, grow=2, grow_cap=cap)[0].sum()
        assert capped <= cap * own and capped in [own, *levels]
        assert capped == max(v for v in [own, *levels] if v <= cap * own)  # levels grow monotonically here
    for bad in (0.5, 0.0, float("nan")):
        with pytest.raises(ValueError, match="grow_cap"):
            ClickSegmenter(lab_features(img), img, grow=2, grow_cap=bad)


def ring_scene(size=48, seed=0):
    """A disk of the background's own grey (colour cannot see it) and a boundary map that draws its outline."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - 20) ** 2 + (xx - 20) ** 2 < 11 ** 2
    img = np.clip(128 + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    outline = ndimage.binary_dilation(disk ^ ndimage.binary_erosion(disk))
    return img, disk, 0.9 * outline


def test_boundary_map_guides_the_cut():
    """Weights and geodesics read the map: one click inside an outline colour does not see gives the disk."""
    img, disk, bmap = ring_scene()
    seg = ClickSegmenter(lab_features(img), img, region_spacing=1, boundary_map=bmap)
    seg.add_click(20, 20, True)
    assert iou(seg.mask, disk) > 0.95
    plain = ClickSegmenter(lab_features(img), img, region_spacing=1)
    plain.add_click(20, 20, True)
    assert iou(plain.mask, disk) < 0.5


def test_learned_boundary_map_is_the_networks():
    from featlib import features
    from featlib.boundary_net import boundary_probability

    img, _ = scene()
    seg = ClickSegmenter(lab_features(img), img, boundary_map="learned")
    np.testing.assert_array_equal(seg.boundary_map, boundary_probability(img))
    assert ClickSegmenter(lab_features(img), img).boundary_map is None
    off = features.load("lab").click_segmenter(img, boundary_map="off")  # a source's default map, turned off
    assert off.boundary_map is None and off.lam == 24.0


@pytest.mark.parametrize("kw,match", [
    ({"boundary_map": "nope"}, "boundary_map"), ({"boundary_map": np.zeros((5, 5))}, r"\[H, W\]"),
    ({"boundary_map": np.full((64, 64), 1.5)}, r"\[0, 1\]"), ({"boundary_map": np.full((64, 64), np.nan)}, "finite"),
    ({"boundary_tau": 0.0}, "boundary_tau"), ({"boundary_geo": -1.0}, "boundary_geo")])
def test_bad_boundary_settings_raise(kw, match):
    img, _ = scene()
    with pytest.raises(ValueError, match=match):
        ClickSegmenter(lab_features(img), img, **kw)


def test_learned_boundary_map_needs_the_image():
    img, _ = scene()
    with pytest.raises(ValueError, match="image"):
        ClickSegmenter(lab_features(img), boundary_map="learned")
