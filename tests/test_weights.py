"""Official EfficientViT-SAM checkpoints, simulated from the official key/shape lists in ../shared."""

import ast

import pytest
import torch

from featlib.model import build_model
from featlib.weights import load_efficientvit_sam


def fake_checkpoint(shared, variant, wrap=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    keys = shared / "fixtures" / "efficientvit_sam" / f"efficientvit_sam_{variant}.keys.tsv"
    for line in keys.read_text().splitlines():
        key, shape = line.split("\t")
        shape = ast.literal_eval(shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(*shape, generator=g) if shape else torch.randn((), generator=g)
    return {"state_dict": state} if wrap else state


@pytest.mark.parametrize("variant", ["l0", "l1", "l2"])
@pytest.mark.parametrize("wrap", [False, True])
def test_loads_every_backbone_tensor(shared, tmp_path, variant, wrap):
    ckpt = fake_checkpoint(shared, variant, wrap)
    path = tmp_path / f"efficientvit_sam_{variant}.pt"
    torch.save(ckpt, path)
    model = build_model(variant, strides=(16,))
    load_efficientvit_sam(model, path)
    state = ckpt["state_dict"] if wrap else ckpt
    own = model.backbone.state_dict()
    backbone_keys = [k for k in state if k.startswith("image_encoder.backbone.")]
    assert len(backbone_keys) == len(own)
    for k in backbone_keys:
        assert torch.equal(own[k[len("image_encoder.backbone."):]], state[k]), k
    eps = {m.eps for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert eps == {1e-6}


def test_pretrained_argument(shared, tmp_path):
    path = tmp_path / "l0.pt"  # the 2023 file name the plan downloads
    torch.save(fake_checkpoint(shared, "l0", wrap=True), path)
    model = build_model("l0", strides=(16,), pretrained=str(path))
    key = "image_encoder.backbone.stages.4.op_list.1.context_module.main.qkv.conv.weight"
    ref = torch.load(path, weights_only=True)["state_dict"][key]
    assert torch.equal(model.backbone.stages[4].op_list[1].context_module.main.qkv.conv.weight, ref)


def test_wrong_variant_lists_mismatches(shared, tmp_path):
    path = tmp_path / "efficientvit_sam_l1.pt"
    torch.save(fake_checkpoint(shared, "l1"), path)
    with pytest.raises(ValueError, match="unexpected") as err:
        load_efficientvit_sam(build_model("l0", strides=(16,)), path)
    assert "stages.3.op_list.5" in str(err.value)  # l1 has two more blocks in stage 3


def test_shape_mismatch_is_reported(shared, tmp_path):
    ckpt = fake_checkpoint(shared, "l0")
    key = "image_encoder.backbone.stages.0.op_list.0.conv.weight"
    ckpt[key] = torch.zeros(16, 3, 3, 3)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=r"shape: stages.0.op_list.0.conv.weight: checkpoint \(16, 3, 3, 3\)"):
        load_efficientvit_sam(build_model("l0", strides=(16,)), path)


@pytest.mark.parametrize("variant", ["xl0", "xl1"])
def test_xl_refused(shared, tmp_path, variant):
    path = tmp_path / f"efficientvit_sam_{variant}.pt"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="kornia cannot build"):
        load_efficientvit_sam(build_model("l0", strides=(16,)), path)


def test_missing_file_and_garbage(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_efficientvit_sam(build_model("b0", strides=(16,)), tmp_path / "nope.pt")
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_efficientvit_sam(build_model("b0", strides=(16,)), bad)
    other = tmp_path / "other.pt"
    torch.save({"model.weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not an EfficientViT-SAM checkpoint"):
        load_efficientvit_sam(build_model("b0", strides=(16,)), other)


def test_pickled_objects_are_not_executed(tmp_path):
    """weights_only=True: a checkpoint carrying arbitrary Python objects is refused, not unpickled."""
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(ValueError, match="not a readable"):
        load_efficientvit_sam(build_model("b0", strides=(16,)), path)
