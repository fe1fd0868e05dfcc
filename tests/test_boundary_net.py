"""The learned boundary map: its inputs, the shipped weights, the hierarchy option and the training script."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.transform import resize

from conftest import write_fake_bsds
from featlib import boundary_net as bn
from featlib.cluster import gradient_hierarchy
from featlib.data.synthetic import make_scene
from featlib.features import load
from featlib.gradients import pixel_mesh

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_boundary.py"


def _script():
    spec = importlib.util.spec_from_file_location("featlib_train_boundary", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scene():
    return make_scene(np.random.default_rng(3), (64, 80))


def _diagonal_edge(h=40, w=48) -> np.ndarray:
    yy, xx = np.indices((h, w))
    img = np.where((xx - yy)[..., None] > 4, [200, 60, 40], [30, 90, 180]).astype(np.uint8)
    return img


def _edges_and_far(scene):
    """(pixels on an instance boundary, pixels more than 4 px from any) of a synthetic scene, bool [H, W] each."""
    from scipy import ndimage

    seg = scene.instances
    edge = np.zeros(seg.shape, bool)
    edge[1:] |= seg[1:] != seg[:-1]
    edge[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    return edge, ~ndimage.binary_dilation(edge, iterations=4)


def test_cue_stack_shape_and_range(scene):
    x = bn.cue_stack(scene.image)
    assert x.shape == (bn.N_INPUTS, 64, 80) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert (x[:13] >= 0).all() and (x[:13] < 2).all()  # sqrt of chi^2: ~1 for a step between disjoint histograms
    assert (np.abs(x[13:15]) <= 1).all()


def test_flip_stack_matches_the_mirrored_image():
    img = _diagonal_edge()
    x, xm = bn.cue_stack(img), bn.cue_stack(img[:, ::-1].copy())
    f = bn.flip_stack(x)
    colour = [*range(9), 15, 16, 17]  # L, a, b strengths and Lab (textons are re-clustered per image)
    np.testing.assert_allclose(f[colour], xm[colour], atol=1e-4)
    edge = x[0] > 0.5 * x[0].max()
    # the edge runs diagonally: its orientation's sin 2θ has one sign, and the mirror's the other
    assert np.sign(x[14][edge].mean()) == -np.sign(xm[14][edge[:, ::-1]].mean()) != 0
    np.testing.assert_allclose(f[14][edge[:, ::-1]].mean(), xm[14][edge[:, ::-1]].mean(), rtol=0.05)


def test_shipped_net_finds_the_scene_boundaries(scene):
    net = bn.load_boundary_net()
    assert net.build_args == {"width": 32, "dilations": [1, 2, 4, 8], "n_inputs": bn.N_INPUTS}
    blob = torch.load(bn.ASSET, weights_only=True)
    assert "BSDS500 train" in blob["card"]["data"]
    p = bn.boundary_probability(scene.image, net)
    assert p.shape == (64, 80) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    edge, far = _edges_and_far(scene)
    assert p[edge].mean() > 3 * p[far].mean()
    mesh = bn.boundary_mesh(scene.image, net)
    assert mesh.dy.shape == (63, 80) and mesh.dx.shape == (64, 79)


def test_mirrored_prediction_is_equivariant(scene):
    torch.manual_seed(1)
    net = bn.BoundaryNet(width=8, dilations=(1, 2))
    x = bn.cue_stack(scene.image)
    p, pm = bn.probability_from_stack(x, net), bn.probability_from_stack(bn.flip_stack(x), net)
    np.testing.assert_allclose(pm, p[:, ::-1], atol=1e-6)
    single, single_m = (bn.probability_from_stack(v, net, mirror=False) for v in (x, bn.flip_stack(x)))
    assert not np.allclose(single_m, single[:, ::-1], atol=1e-3)  # one pass alone is not (so the test can fail)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="uint8 RGB"):
        bn.boundary_probability(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="2 x 2"):
        bn.boundary_probability(np.zeros((1, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="expects"):
        bn.BoundaryNet()(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="no annotator"):
        bn.boundary_target([])
    with pytest.raises(ValueError, match="share one"):
        bn.boundary_target([np.zeros((4, 4), bool), np.zeros((4, 5), bool)])
    with pytest.raises(ValueError, match="smaller than the crop"):
        bn.sample_crops([np.zeros((18, 8, 8))], [np.zeros((8, 8))], np.random.default_rng(0), 1, 16)


def test_boundary_target_is_the_fraction_of_annotators_within_one_pixel():
    a = np.zeros((7, 7), bool)
    a[3, 3] = True
    b = np.zeros((7, 7), bool)
    t = bn.boundary_target([a, b])
    assert t[2:5, 2:5].tolist() == [[0.5] * 3] * 3 and t.sum() == 4.5


def test_sample_crops_mirror_the_orientation_channel():
    x = np.zeros((18, 10, 12), np.float32)
    x[14] = 1.0
    x[0, :, :6] = 1.0
    y = np.zeros((10, 12), np.float32)
    xs, ys = bn.sample_crops([x], [y], np.random.default_rng(0), 16, 10)
    assert xs.shape == (16, 18, 10, 10) and ys.shape == (16, 10, 10)
    flipped = xs[:, 14, 0, 0] < 0
    assert 0 < flipped.sum() < 16  # some crops were mirrored, some not


def test_sample_crops_draw_images_by_weight():
    xs = [np.full((18, 12, 12), k, np.float32) for k in range(3)]
    ys = [np.zeros((12, 12), np.float32)] * 3
    x, _ = bn.sample_crops(xs, ys, np.random.default_rng(0), 400, 8, weights=[0.0, 0.25, 0.75])
    drawn = x[:, 0, 0, 0].numpy()
    assert (drawn != 0).all() and 0.15 < (drawn == 1).mean() < 0.35  # never image 0; image 1 about a quarter
    for bad in ([0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2]):
        with pytest.raises(ValueError, match="probabilities summing to 1"):
            bn.sample_crops(xs, ys, np.random.default_rng(0), 1, 8, weights=bad)


def test_save_and_load_round_trip(tmp_path, scene):
    torch.manual_seed(0)
    net = bn.BoundaryNet(width=8, dilations=(1, 2))
    path = bn.save_boundary_net(net, tmp_path / "b.pt", {"note": "test"})
    with pytest.raises(FileExistsError):
        bn.save_boundary_net(net, path)
    back = bn.load_boundary_net(path)
    np.testing.assert_array_equal(bn.boundary_probability(scene.image, net), bn.boundary_probability(scene.image, back))
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a boundary network"):
        bn.load_boundary_net(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        bn.load_boundary_net(tmp_path / "missing.pt")


def test_hierarchy_option_and_colour_default(scene):
    h = gradient_hierarchy(scene.image, boundary_map="learned", spectral=0.0)
    lab = h.partition(n_segments=5)
    assert lab.shape == (64, 80) and lab.max() + 1 == 5
    with pytest.raises(ValueError, match="cue_weights"):
        gradient_hierarchy(scene.image, boundary_map="learned", cue_weights={"L3": 1.0})
    with pytest.raises(ValueError, match="boundary_map"):
        gradient_hierarchy(scene.image, boundary_map="sobel")
    grouping, kw = load("lab").hierarchy_settings()
    assert grouping == "gradients" and kw["boundary_map"] == "learned" and kw["spectral"] == 0 and kw["nms"] is True
    assert load("lab").hierarchy(scene.image).partition(n_segments=5).max() + 1 == 5


def test_multiscale_map_averages_a_coarser_view(scene):
    net = bn.load_boundary_net()
    one = bn.boundary_probability(scene.image, net)
    np.testing.assert_array_equal(bn.boundary_probability(scene.image, net, scales=[1]), one)
    two = bn.boundary_probability(scene.image, net, scales=(1.0, 0.5))
    assert two.shape == one.shape and two.dtype == np.float32 and 0 <= two.min() and two.max() <= 1
    assert not np.allclose(two, one, atol=1e-3) and np.corrcoef(one.ravel(), two.ravel())[0, 1] > 0.8
    edge, far = _edges_and_far(scene)
    assert two[edge].mean() > 3 * two[far].mean()  # the half-scale view still puts the boundaries where they are
    tiny = bn.boundary_probability(scene.image, net, scales=(1.0, 0.05))  # 3 x 4 px would be too small: 16 px
    assert tiny.shape == (64, 80) and np.isfinite(tiny).all()
    h = gradient_hierarchy(scene.image, boundary_map="learned", spectral=0.0, boundary_scales=(1.0, 0.5))
    assert h.partition(n_segments=5).max() + 1 == 5
    assert load("lab").hierarchy_settings(boundary_scales=(1.0, 0.5))[1]["boundary_scales"] == (1.0, 0.5)


def test_twice_the_size_is_the_network_on_the_upsampled_image_brought_back(scene):
    net = bn.load_boundary_net()
    maps = bn.scale_probabilities(scene.image, net, scales=(1.0, 2.0))
    big = resize(scene.image, (128, 160), order=1, anti_aliasing=False)  # bilinear, no smoothing when enlarging
    want = bn.probability_from_stack(bn.cue_stack((big * 255).round().astype(np.uint8)), net)
    np.testing.assert_allclose(maps[2.0], resize(want, (64, 80), order=1, anti_aliasing=False), atol=1e-5)
    assert maps[2.0].shape == maps[1.0].shape == (64, 80)
    edge, far = _edges_and_far(scene)
    assert maps[2.0][edge].mean() > 3 * maps[2.0][far].mean()


@pytest.mark.parametrize("scales", [(), (0.0,), (2.5,), (1.0, 1.0), ("half",), 0.5])
def test_bad_scales_are_value_errors(scene, scales):
    with pytest.raises(ValueError, match="scales"):
        bn.boundary_probability(scene.image, scales=scales)


def test_chi2_map_is_one_scale(scene):
    with pytest.raises(ValueError, match="boundary_map='learned'"):
        gradient_hierarchy(scene.image, boundary_map="chi2", boundary_scales=(1.0, 0.5))


def _ridge(angle: float, size: int = 41, width: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A straight blurred boundary through the centre at ``angle`` (rad): (map float32 [size, size], signed distance
    of each pixel from the line)."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    d = -np.sin(angle) * xx + np.cos(angle) * yy
    return np.exp(-0.5 * (d / width) ** 2).astype(np.float32), d


@pytest.mark.parametrize("angle", [0.0, np.pi / 2, np.pi / 4, 0.3, 2.0])
def test_nonmaximum_suppression_keeps_the_crest_of_a_boundary_at_any_orientation(angle):
    p, d = _ridge(angle)
    q = bn.suppress_nonmaxima(p, floor=0.2)
    assert q.shape == p.shape and q.dtype == np.float32
    inner = (slice(6, -6), slice(6, -6))  # away from the image border
    kept = np.isclose(q, p) & (p > 0.05)
    cut = np.isclose(q, 0.2 * p) & (p > 0.05)
    assert (kept | cut | (p <= 0.05))[inner].all()  # each pixel is kept or scaled by the floor, nothing else
    assert kept[inner][np.abs(d[inner]) < 0.5].mean() > 0.9  # the crest survives ...
    assert not kept[inner][np.abs(d[inner]) > 1.5].any()  # ... its flanks do not
    np.testing.assert_array_equal(bn.suppress_nonmaxima(p, floor=1.0), p)  # floor 1: nothing suppressed


def test_nonmaximum_suppression_bad_inputs():
    p, _ = _ridge(0.0)
    for bad in (p.astype(np.uint8), p[None], np.zeros(5, np.float32)):
        with pytest.raises(ValueError, match="float \\[H, W\\]"):
            bn.suppress_nonmaxima(bad)
    for kw in ({"floor": -0.1}, {"floor": 1.5}, {"sigma": 0.0}):
        with pytest.raises(ValueError, match="floor|sigma"):
            bn.suppress_nonmaxima(p, **kw)


def test_nms_option_of_the_learned_map(scene):
    net = bn.load_boundary_net()
    p = bn.boundary_probability(scene.image, net)
    mesh = bn.boundary_mesh(scene.image, net, nms=True)
    thin = pixel_mesh(bn.suppress_nonmaxima(p))
    np.testing.assert_array_equal(mesh.dy, thin.dy)
    np.testing.assert_array_equal(mesh.dx, thin.dx)
    assert (thin.dy <= pixel_mesh(p).dy + 1e-7).all()  # suppression only lowers the map
    h = gradient_hierarchy(scene.image, boundary_map="learned", spectral=0.0, nms=True)
    assert h.partition(n_segments=5).max() + 1 == 5
    edge, far = _edges_and_far(scene)
    q = bn.suppress_nonmaxima(p)
    assert q[edge].mean() > 3 * q[far].mean()  # the scene's boundaries survive suppression
    with pytest.raises(ValueError, match="nms"):
        gradient_hierarchy(scene.image, boundary_map="chi2", nms=True)
    with pytest.raises(ValueError, match="nms"):
        load("lab").hierarchy_settings(boundary_map="chi2", nms=True)  # refused before any image is read


def test_merge_scales_split_the_watershed_map_from_the_merge_map(scene):
    net = bn.load_boundary_net()
    ws, merge = bn.boundary_meshes(scene.image, net, merge_scales=(1.0, 0.5), nms=True)
    one, two = (bn.boundary_mesh(scene.image, net, scales=s, nms=True) for s in ((1.0,), (1.0, 0.5)))
    np.testing.assert_allclose(ws.dy, one.dy, atol=1e-6)  # the watershed reads the image's own scale
    np.testing.assert_allclose(merge.dx, two.dx, atol=1e-6)  # the merging reads both scales' mean
    assert not np.allclose(ws.dx, merge.dx, atol=1e-3)
    same = bn.boundary_meshes(scene.image, net, scales=(1.0, 0.5))
    assert same[0] is same[1]  # merge_scales None: the watershed's map, computed once
    split = gradient_hierarchy(scene.image, boundary_map="learned", spectral=0.0, nms=True, merge_scales=(1.0, 0.5))
    plain = gradient_hierarchy(scene.image, boundary_map="learned", spectral=0.0, nms=True)
    np.testing.assert_array_equal(split.regions, plain.regions)  # the same watershed arcs ...
    assert not np.allclose(split.heights, plain.heights)  # ... merged in another order
    assert split.partition(n_segments=5).max() + 1 == 5
    with pytest.raises(ValueError, match="merge_scales"):
        gradient_hierarchy(scene.image, boundary_map="chi2", merge_scales=(1.0, 0.5))
    with pytest.raises(ValueError, match="scales"):
        bn.boundary_meshes(scene.image, net, merge_scales=(1.0, 3.0))


def test_with_features_the_other_scales_are_the_colour_networks_maps(scene):
    """Features exist at the image's own scale: the feature network reads them there, the colour network the
    half-size image (the shipped partitions model's merge map)."""
    feats = load("bsds500-b0-all")(scene.image)
    maps = bn.scale_probabilities(scene.image, None, True, (1.0, 0.5), feats)
    np.testing.assert_allclose(maps[1.0], bn.boundary_probability(scene.image, features=feats), atol=1e-6)
    np.testing.assert_allclose(maps[0.5], bn.scale_probabilities(scene.image, None, True, (0.5,))[0.5], atol=1e-6)
    assert not np.allclose(maps[1.0], bn.boundary_probability(scene.image), atol=1e-3)  # scale 1 read the features
    ws, merge = bn.boundary_meshes(scene.image, merge_scales=(1.0, 0.5), features=feats, nms=True)
    expected = bn.pixel_mesh(bn.suppress_nonmaxima((maps[1.0] + maps[0.5]) / 2))
    np.testing.assert_allclose(merge.dx, expected.dx, atol=1e-6)
    np.testing.assert_allclose(ws.dy, bn.pixel_mesh(bn.suppress_nonmaxima(maps[1.0])).dy, atol=1e-6)


def test_train_script_resumes_to_the_straight_run(tmp_path, monkeypatch):
    tb = _script()

    write_fake_bsds(tmp_path / "bsds", n=4, split="train", size=(48, 64))
    common = ["--root", str(tmp_path / "bsds"), "--holdout", "1", "--steps", "4", "--batch", "2", "--crop", "40",
              "--save-every", "2", "--eval-every", "2"]
    assert tb.main([*common, "--output", str(tmp_path / "a.pt")]) == 0
    assert tb.main([*common, "--output", str(tmp_path / "a.pt")]) == 2  # never over an existing result

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(tb, "save_boundary_net", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tb.main([*common, "--output", str(tmp_path / "b.pt")])
    assert (tmp_path / "b.pt.ckpt").is_file() and not (tmp_path / "b.pt").exists()
    monkeypatch.undo()
    assert tb.main([*common, "--output", str(tmp_path / "b.pt"), "--resume"]) == 0
    assert not (tmp_path / "b.pt.ckpt").exists()
    a, b = bn.load_boundary_net(tmp_path / "a.pt"), bn.load_boundary_net(tmp_path / "b.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6, msg=k)


def _feats(scene, strides=(1, 2, 4, 8, 16)):
    """Scene features {s: [3, ceil(H/s), ceil(W/s)]}: a random colour per instance, sampled every s px."""
    rgb = np.random.default_rng(0).random((int(scene.instances.max()) + 1, 3)).astype(np.float32)[scene.instances]
    return {s: np.ascontiguousarray(rgb[::s, ::s].transpose(2, 0, 1)) for s in strides}


def test_feature_channels_join_the_stack_and_a_feature_net_reads_them(scene, tmp_path):
    feats = _feats(scene)
    ch = bn.feature_channels(feats, (64, 80))
    assert ch.shape == (5, 64, 80) and ch.dtype == np.float32
    edge, far = _edges_and_far(scene)
    assert (ch[:, edge].mean(1) > ch[:, far].mean(1)).all()  # every stride's channel marks the segments' edges,
    assert (ch[:3, edge].mean(1) > 3 * ch[:3, far].mean(1)).all()  # sharply where its cells are small (s <= 4)
    x = bn.cue_stack(scene.image, feats)
    np.testing.assert_array_equal(x[: bn.N_INPUTS], bn.cue_stack(scene.image))
    np.testing.assert_array_equal(x[bn.N_INPUTS:], ch)
    torch.manual_seed(0)
    path = bn.save_boundary_net(bn.BoundaryNet(8, (1, 2), n_inputs=bn.N_INPUTS + 5), tmp_path / "f.pt")
    net = bn.load_boundary_net(path)
    assert net.n_inputs == bn.N_INPUTS + 5 and bn.cached_net(path) is bn.cached_net(str(path))
    p = bn.boundary_probability(scene.image, str(path), features=feats)
    assert p.shape == (64, 80) and np.isfinite(p).all()
    h = gradient_hierarchy(scene.image, feats, boundary_map="learned", spectral=0.0, boundary_net=path)
    assert h.partition(n_segments=5).max() + 1 == 5
    with pytest.raises(ValueError, match="reads 23 channels"):  # a 2-stride model's features, a 5-stride network
        bn.boundary_probability(scene.image, net, features=_feats(scene, (1, 2)))
    with pytest.raises(ValueError, match="reads 18 channels"):  # the colour network given features
        bn.boundary_probability(scene.image, bn.load_boundary_net(), features=feats)
    with pytest.raises(ValueError, match="need boundary_map='learned'"):
        gradient_hierarchy(scene.image, feats, boundary_net=path)
    with pytest.raises(FileNotFoundError, match="no boundary network"):
        bn.boundary_probability(scene.image, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="n_inputs"):
        bn.BoundaryNet(n_inputs=3)


def test_train_script_reads_cross_fitted_features(tmp_path, capsys):
    tb = _script()
    write_fake_bsds(tmp_path / "bsds", n=5, split="train", size=(48, 64))
    common = ["--root", str(tmp_path / "bsds"), "--holdout", "1", "--steps", "2", "--batch", "2", "--crop", "40"]
    used = []
    real = tb.load_features

    def spy(spec):
        src = real(spec)
        fn = src.fn
        src.fn = lambda image: used.append(spec) or fn(image)
        return src
    tb.load_features = spy
    try:
        assert tb.main([*common, "--output", str(tmp_path / "f.pt"), "--features", "untrained-b0,untrained-b1"]) == 0
    finally:
        tb.load_features = real
    assert sorted(used) == ["untrained-b0"] * 3 + ["untrained-b1"] * 2  # folds of 2 + 2 images, held-out: the first
    blob = torch.load(tmp_path / "f.pt", weights_only=True)
    assert blob["build_args"]["n_inputs"] == bn.N_INPUTS + 5
    assert blob["card"]["features"] == {"models": ["untrained-b0", "untrained-b1"], "cross_fit": True}
    assert tb.main([*common, "--output", str(tmp_path / "g.pt"), "--features", "lab"]) == 2
    assert "must name FeatureNets" in capsys.readouterr().err


def test_train_script_adds_stanford_background_photos(tmp_path):
    from test_stanford import write_fake_stanford
    tb = _script()
    write_fake_bsds(tmp_path / "bsds", n=3, split="train", size=(48, 64))
    write_fake_stanford(tmp_path / "sbd", n=4)
    common = ["--root", str(tmp_path / "bsds"), "--holdout", "1", "--steps", "2", "--batch", "2", "--crop", "40",
              "--stanford", str(tmp_path / "sbd")]
    assert tb.main([*common, "--output", str(tmp_path / "s.pt"), "--stanford-share", "0.3"]) == 0
    card = torch.load(tmp_path / "s.pt", weights_only=True)["card"]
    assert "Stanford Background (4 photos" in card["data"] and "30% of crops" in card["data"]
    assert tb.main([*common, "--output", str(tmp_path / "t.pt"), "--stanford-share", "1"]) == 2
    assert tb.main([*common[:-1], str(tmp_path / "missing"), "--output", str(tmp_path / "t.pt")]) == 2


def test_working_resolution_reads_a_large_image_at_max_side(scene):
    """``max_side``: a larger image's map is its working-size copy's map brought back; the hierarchy is drawn at
    full size with the seed spacing and size prior grown with it; images within max_side are untouched."""
    from skimage.transform import resize

    assert all(bn.working_scale((64, 80), m) == 1.0 for m in (None, 0, 80, 100))  # None / 0: the image's size
    assert bn.working_scale((64, 80, 3), 40) == 0.5
    for bad in (8, 15, -1, 40.0, True, False, "40"):
        with pytest.raises(ValueError, match="max_side"):
            bn.working_scale((64, 80), bad)
    net = bn.load_boundary_net()
    big = np.kron(scene.image, np.ones((2, 2, 1), np.uint8))  # [128, 160]: the scene at twice its size
    p = bn.boundary_probability(big, net, max_side=80)
    small = bn.boundary_probability(bn.resized(big, 0.5), net)
    np.testing.assert_array_equal(p, resize(small, big.shape[:2], order=1, anti_aliasing=False).astype(np.float32))
    ws, _ = bn.boundary_meshes(big, net, merge_scales=(1.0, 0.5), nms=True, max_side=80)
    thin = bn.suppress_nonmaxima(small)  # thinned at the working size, then brought back
    np.testing.assert_array_equal(ws.dy, pixel_mesh(resize(thin, big.shape[:2], order=1,
                                                           anti_aliasing=False).astype(np.float32)).dy)
    two = bn.scale_probabilities(big, net, scales=(1.0, 0.5), max_side=80)
    assert sorted(two) == [0.5, 1.0] and all(m.shape == big.shape[:2] for m in two.values())
    np.testing.assert_array_equal(bn.boundary_probability(scene.image, net, max_side=80),
                                  bn.boundary_probability(scene.image, net))  # within max_side: as it is
    kw = dict(boundary_map="learned", spectral=0.0, nms=True, merge_scales=(1.0, 0.5))
    capped, full = gradient_hierarchy(big, max_side=80, **kw), gradient_hierarchy(big, max_side=0, **kw)
    assert capped.regions.shape == big.shape[:2] and capped.partition(n_segments=5).max() + 1 == 5
    assert capped.n_regions < 0.5 * full.n_regions  # seeds every 16 px instead of 8
    same = gradient_hierarchy(scene.image, max_side=80, **kw)
    np.testing.assert_array_equal(same.ucm(), gradient_hierarchy(scene.image, **kw).ucm())
    # the histogram gradients too: the copy's strength brought back, the hierarchy drawn at full size
    from featlib.cluster import chi2_mesh
    from featlib.gradients import oriented_gradients
    strength = resize(oriented_gradients(bn.resized(big, 0.5)).strength, big.shape[:2], order=1, anti_aliasing=False)
    np.testing.assert_array_equal(chi2_mesh(big, max_side=80).dx, pixel_mesh(strength.astype(np.float32)).dx)
    chi2 = gradient_hierarchy(big, boundary_map="chi2", max_side=80)
    assert chi2.regions.shape == big.shape[:2] and chi2.n_regions < 0.5 * gradient_hierarchy(big).n_regions
    np.testing.assert_array_equal(gradient_hierarchy(scene.image, boundary_map="chi2", max_side=80).ucm(),
                                  gradient_hierarchy(scene.image).ucm())
    with pytest.raises(ValueError, match="max_side"):
        load("lab").hierarchy_settings(max_side=4)  # before any image is read
    assert load("lab").hierarchy_settings()[1]["max_side"] == 512  # colour's default working resolution
    assert load("lab").hierarchy_settings(boundary_map="chi2")[1]["max_side"] == 512  # chi2 reads a copy too
