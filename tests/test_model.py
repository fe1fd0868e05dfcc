import math

import pytest
import torch

from featlib.checkpoint import LEGACY_MODEL_ARGS, export_model, load_model_checkpoint, model_card, save_model
from featlib.distances import lab_features
from featlib.model import BACKBONES, FeatureNet, build_model, to_full_resolution

SLOW = {"b3": "4 s", "l3": "25 s: 197 M parameters"}  # forward + backward at 2 x 64 x 80 on 2 CPU cores


@pytest.mark.parametrize("backbone", [pytest.param(b, marks=pytest.mark.slow) if b in SLOW else b for b in BACKBONES])
def test_backbone_contract(backbone):
    """Every registered backbone: all five strides with 3 s^2 channels at ceil(H/s) x ceil(W/s), sigmoid range,
    finite values, and a gradient that reaches every parameter (train mode: batch-norm statistics from the batch)."""
    torch.manual_seed(0)
    m = build_model(backbone)
    assert m.backbone_name == backbone
    h, w = 64, 80
    out = m(torch.rand(2, 3, h, w))
    assert list(out) == [1, 2, 4, 8, 16]
    for s, f in out.items():
        assert f.shape == (2, 3 * s * s, math.ceil(h / s), math.ceil(w / s)) and f.dtype == torch.float32
        assert torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
    sum(f.mean() for f in out.values()).backward()
    starved = [n for n, p in m.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert starved == [], f"{len(starved)} parameters get no gradient, e.g. {starved[:3]}"


@pytest.mark.parametrize("size", [(97, 131), (32, 45)])
def test_odd_sizes_give_ceil_shapes(size):
    m = build_model("b0").eval()
    h, w = size
    with torch.no_grad():
        out = m(torch.rand(1, 3, h, w))
    assert {s: tuple(f.shape[-2:]) for s, f in out.items()} == {s: (math.ceil(h / s), math.ceil(w / s)) for s in out}


def test_subset_of_strides_and_base_channels():
    m = build_model("b0", strides=(4, 16), base_channels=2).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 70, 90))
    assert {s: tuple(f.shape) for s, f in out.items()} == {4: (1, 32, 18, 23), 16: (1, 512, 5, 6)}
    # decoding stops at the finest requested stride
    assert m.decode_strides == (16, 8, 4)


def test_padding_is_cropped_back_and_does_not_leak():
    """The top-left of a padded image must equal the output on the unpadded image (replicate padding, crop)."""
    m = build_model("b0", strides=(1, 2)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = m(x)
        b = m(x[..., :61, :63])  # padded to 64 internally with replicated border
    assert b[1].shape[-2:] == (61, 63)
    # away from the replicated border the receptive field sees (almost) the same pixels
    assert torch.allclose(a[1][..., :40, :40], b[1][..., :40, :40], atol=0.05)


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(3, 64, 64), "rank"),
        (torch.rand(1, 1, 64, 64), "3 channels"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "float"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
        (torch.rand(1, 3, 31, 64), "at least 32"),
    ],
)
def test_bad_input_raises(images, match):
    m = build_model("b0")
    with pytest.raises(ValueError, match=match):
        m(images)


def test_bad_construction():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("b9")
    with pytest.raises(ValueError, match="strides"):
        build_model("b0", strides=(3,))


def test_to_full_resolution_is_pixel_shuffle():
    f = {2: torch.arange(12 * 2 * 3, dtype=torch.float32).reshape(1, 12, 2, 3)}
    full = to_full_resolution(f)[2]
    assert full.shape == (1, 3, 4, 6)
    # channel c*4 + i*2 + j of cell (y, x) lands at pixel (2y+i, 2x+j) of output channel c
    for c in range(3):
        for i in range(2):
            for j in range(2):
                assert torch.equal(full[0, c, i::2, j::2], f[2][0, c * 4 + i * 2 + j])
    cropped = to_full_resolution(f, size=(3, 5))[2]
    assert cropped.shape == (1, 3, 3, 5)
    with pytest.raises(ValueError, match="channels"):
        to_full_resolution({4: torch.rand(1, 12, 2, 2)})


def test_colour_skip_starts_at_the_images_lab_colour():
    torch.manual_seed(0)
    model = build_model("b0", colour_skip=True).eval()
    images = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        full = to_full_resolution(model(images), size=(45, 70))
    lab = torch.stack([torch.from_numpy(lab_features(im.permute(1, 2, 0).numpy())) for im in images])
    plain = to_full_resolution(build_model("b0").eval()(images), size=(45, 70))
    for s, f in full.items():
        # gate 0.1 x the untrained decoder: within a few hundredths of Lab, where an untrained model is ~0.2 off
        assert (f - lab).abs().mean() < 0.05, s
        assert (plain[s] - lab).abs().mean() > 0.1, s
    loss = sum(f.mean() for f in model.train()(images).values())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # every parameter (gates too) is used: DDP-safe
    with pytest.raises(ValueError, match="base_channels=3"):
        build_model("b0", base_channels=2, colour_skip=True)


def test_colour_skip_survives_save_and_export(tmp_path):
    torch.manual_seed(0)
    model = build_model("b0", strides=(1, 4), colour_skip=True).eval()
    save_model(model, tmp_path / "model.pt")
    size = export_model(model, tmp_path / "ship.pt", card={"steps": 3, "note": "test"})
    assert size < 0.6 * (tmp_path / "model.pt").stat().st_size  # fp16
    images = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        ref = model(images)
        for path, tol in ((tmp_path / "model.pt", 0), (tmp_path / "ship.pt", 5e-3)):
            got = load_model_checkpoint(path)
            assert got.colour_skip and got.strides == (1, 4)
            for s in ref:
                assert (got(images)[s] - ref[s]).abs().max() <= tol
    assert model_card(tmp_path / "ship.pt") == {"steps": 3, "note": "test"} and model_card(tmp_path / "model.pt") == {}


def test_model_files_record_every_build_argument(tmp_path):
    """Non-default registers / depths / expand survive save and export (weights_only reads the int-keyed dicts)."""
    torch.manual_seed(0)
    widths = {"registers": {1: 3, 4: 9}, "depths": {2: 2, 4: 2}, "expand": {1: 1.5, 8: 3}}
    model = build_model("b0", strides=(1, 4), **widths).eval()
    args = model.build_args()
    assert args["registers"][1] == 3 and args["depths"][2] == 2 and args["expand"][1] == 1.5
    assert FeatureNet(**args).state_dict().keys() == model.state_dict().keys()
    save_model(model, tmp_path / "model.pt")
    export_model(model, tmp_path / "ship.pt")
    images = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        ref = model(images)
        for path, tol in ((tmp_path / "model.pt", 0), (tmp_path / "ship.pt", 5e-3)):
            assert torch.load(path, weights_only=True)["model"] == args
            got = load_model_checkpoint(path)  # strict load: a default width would not fit these weights
            assert got.build_args() == args
            for s in ref:
                assert (got(images)[s] - ref[s]).abs().max() <= tol


def test_model_files_without_widths_load_with_legacy_defaults(tmp_path):
    """A file from before registers / depths / expand were recorded builds with LEGACY_MODEL_ARGS (the shipped assets
    are such files: tests/test_shipped_model.py); an argument this featlib does not know is refused."""
    legacy_widths = {k: LEGACY_MODEL_ARGS[k] for k in ("registers", "depths", "expand")}  # not today's defaults
    model = build_model("b0", strides=(2,), colour_skip=True, **legacy_widths).eval()
    old = {"model": {"backbone": "b0", "strides": [2], "base_channels": 3, "colour_skip": True},
           "state_dict": model.state_dict()}
    torch.save(old, tmp_path / "old.pt")
    assert load_model_checkpoint(tmp_path / "old.pt").build_args() == model.build_args()
    del old["model"]["colour_skip"]  # the oldest files: no colour_skip either
    torch.save({"model": old["model"], "state_dict": build_model("b0", strides=(2,), **legacy_widths).state_dict()},
               tmp_path / "o.pt")
    assert load_model_checkpoint(tmp_path / "o.pt").colour_skip is False
    torch.save({"model": {**model.build_args(), "heads": 2}, "state_dict": model.state_dict()}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match="heads"):
        load_model_checkpoint(tmp_path / "new.pt")
    with pytest.raises(ValueError, match="not decode strides"):
        build_model("b0", registers={3: 4})
