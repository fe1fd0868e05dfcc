"""The features registry: one meaning per name, checkpoints by path, clear errors."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from featlib import features
from featlib.checkpoint import save_model
from featlib.distances import lab_features
from featlib.model import BACKBONES, build_model


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return (rng.random((40, 56, 3)) * 255).astype(np.uint8)


def test_names_cover_colour_and_every_backbone():
    assert {"lab", "lab-smooth", "rgb"} <= set(features.names())
    assert {f"untrained-{b}" for b in BACKBONES} <= set(features.names())
    assert set(features.describe()) == set(features.names())


def test_colour_features_have_one_meaning(image):
    lab = features.load("lab")(image)
    assert list(lab) == [1] and np.array_equal(lab[1], lab_features(image))
    smooth = features.load("lab-smooth")(image)[1]
    assert np.array_equal(smooth, ndimage.gaussian_filter(lab_features(image), (0, 1.5, 1.5)))
    rgb = features.load("rgb")(image)[1]
    assert rgb.shape == (3, 40, 56) and np.allclose(rgb[:, 3, 5], image[3, 5] / 255)


def test_checkpoint_path_equals_the_same_weights_by_name(tmp_path, image):
    torch.manual_seed(0)
    save_model(build_model("b0", strides=(1, 4)), tmp_path / "model.pt")
    a = features.load(tmp_path / "model.pt")(image)
    b = features.load(tmp_path)(image)  # a run directory holding model.pt
    assert a.keys() == b.keys() == {1, 4} and all(np.array_equal(a[s], b[s]) for s in a)
    assert a[4].shape == (48, 10, 14) and a[4].dtype == np.float32


def test_untrained_is_seeded_and_leaves_the_callers_rng_alone(image):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    f1, f2 = features.load("untrained-b0"), features.load("untrained-b0")
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(f1.model.parameters(), f2.model.parameters()))
    out = f1(image)
    assert sorted(out) == [1, 2, 4, 8, 16] and out[2].shape == (12, 20, 28)


def test_errors_name_the_problem(image, tmp_path):
    with pytest.raises(ValueError, match="lab-smooth"):  # the message lists the valid names
        features.load("lad")
    with pytest.raises(ValueError, match="unknown features"):
        features.load(tmp_path / "missing.pt")
    f = features.load("lab")
    with pytest.raises(ValueError, match="uint8"):
        f(image.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        f(image[..., 0])
    with pytest.raises(ValueError, match="already registered"):
        features.register("lab", lambda device="cpu": None, "duplicate")


def test_with_colour_appends_colour_to_the_finest_stride(image):
    base = features.load("untrained-b0")
    both = features.load("untrained-b0+lab-smooth")
    a, b = base(image), both(image)
    assert both.name == "untrained-b0+lab-smooth" and both.model is not None
    assert b[1].shape == (6, *image.shape[:2]) and np.allclose(b[1][:3], a[1])
    assert np.allclose(b[1][3:], lab_features(image, 1.5), atol=1e-6)
    assert all(np.array_equal(a[s], b[s]) for s in a if s > 1)
    with pytest.raises(ValueError, match="not a single colour map"):
        features.load("lab+untrained-b0")


def test_hierarchy_kwargs_resolve_mesh_weights_per_features():
    learned, colour = features.load("untrained-b0"), features.load("lab-smooth")
    assert learned.hierarchy_kwargs("finest")["mesh_weights"] == {1: 1.0}
    assert learned.hierarchy_kwargs({2: 1, 4: 0.5})["mesh_weights"] == {2: 1.0, 4: 0.5}
    # the learned defaults: features.DEFAULTS["learned"] ("mesh", "clicks")
    assert learned.hierarchy_kwargs() == {"mesh_weights": None, "contrast": 0.07, "seed_spacing": 8}
    assert learned.click_kwargs() == {"mesh_weights": {1: 1.0, 2: 1.0}, "reach": 2.0, "grow": 2, "grow_cap": 2.0,
                                      "touch_up_disc": 6.0, "touch_up": 3.0}
    # colour's clicks read the learned boundary map
    assert colour.click_kwargs() == {"grow": 2, "grow_cap": 2.0, "boundary_map": "learned", "lone_click_segments": 25,
                                     "max_side": features.MAX_SIDE, "lam": 24.0, "touch_up_disc": 6.0,
                                     "touch_up": 3.0}
    assert colour.hierarchy_kwargs("finest") == {}        # one map: nothing to combine
    with pytest.raises(ValueError, match="unknown mesh weights"):
        learned.hierarchy_kwargs("coarsest")


def test_readme_quick_tour_runs_as_written():
    """The README's quick tour is executed verbatim (the shipped model, a bundled photo): it must not rot."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Quick tour\s+```python\n(.*?)```", readme, re.S)
    assert block, "README has no quick-tour python block"
    scope: dict = {}
    exec(compile(block.group(1), "README quick tour", "exec"), scope)
    assert scope["labels"].max() + 1 == 30 and scope["seg"].mask.any()
    assert scope["quick"].partition(n_segments=30).shape == scope["labels"].shape
    assert set(np.unique(scope["multi"].labels)) <= {0, 1} and scope["multi"].labels[200, 300] == 1


def test_the_shipped_partitions_model_reads_its_features_through_its_own_boundary_network(monkeypatch):
    from featlib import boundary_net, cluster

    f = features.load("bsds500-b0-all")
    grouping, kw = f.hierarchy_settings()
    assert f.kind == "bsds500-b0-all" and grouping == "gradients"
    # colour's learned-map grouping (not chi2) and settings: NMS, the watershed on scales 1 and 2, merge heights on
    # 1, 0.5 and 2; and the merge cost that also reads the regions' mean features (featlib.merging)
    assert {k: v for k, v in kw.items() if k != "region_weight"} == features.DEFAULTS["colour"]["gradients"]
    assert kw["region_weight"] == 4.0 and kw["boundary_scales"] == (1.0, 2.0)
    assert kw["merge_scales"] == (1.0, 0.5, 2.0)
    assert features.load("bsds500-b0").kind == "learned" and features.load("bsds500-b0-all+lab").kind == "learned"
    assert boundary_net.cached_net(features=True).n_inputs == boundary_net.N_INPUTS + len(f.model.strides)
    seen = {}
    real = cluster.boundary_meshes

    def spy(image, net=None, mirror=True, scales=(1.0,), merge_scales=None, features=None, **kw):
        seen["features"], seen["scales"], seen["merge_scales"] = features, scales, merge_scales
        return real(image, net, mirror, scales, merge_scales, features, **kw)
    monkeypatch.setattr(cluster, "boundary_meshes", spy)
    real_merge = cluster.merge_regions

    def merge_spy(regions, mesh, size_prior, contrast, descriptors=None, region_weight=0.0, region_area=250.0):
        seen["descriptors"], seen["region_weight"] = descriptors, region_weight
        return real_merge(regions, mesh, size_prior, contrast, descriptors, region_weight, region_area)
    monkeypatch.setattr(cluster, "merge_regions", merge_spy)
    img = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    assert f.hierarchy(img).partition(n_segments=4).max() + 1 == 4
    assert sorted(seen["features"]) == sorted(f.model.strides)  # the model's features reached the network
    assert seen["scales"] == (1.0, 2.0) and seen["merge_scales"] == (1.0, 0.5, 2.0)
    channels = [3 * s * s for s in sorted(f.model.strides)]  # every stride's features, summed per region
    assert seen["region_weight"] == 4.0 and seen["descriptors"][1].tolist() == np.cumsum([0, *channels]).tolist()
    fast = features.SCALES["fast"]
    f.hierarchy(img, **fast)
    assert seen["scales"] == seen["merge_scales"] == (1.0,)
    assert f.hierarchy(img, max_side=28).regions.shape == (40, 56)  # its map read at a working size, features too
