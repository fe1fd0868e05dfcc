import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from featlib.data.bsds import load_bsds
from featlib.data.stanford import load_stanford, region_boundaries, stanford_ids
from featlib.data.synthetic import make_scene


def write_fake_stanford(root, n=3, size=(48, 64)):
    """A Stanford-Background-layout folder of synthetic scenes (images/<id>.jpg, 16-bit layers/<id>.png, the split
    lists: the last id is val). Returns the ids."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "layers").mkdir(exist_ok=True)
    ids = [f"{i:07d}" for i in range(n)]
    for i, name in enumerate(ids):
        scene = make_scene(np.random.default_rng(i), size)
        Image.fromarray(scene.image).save(root / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(scene.instances.astype(np.uint16)).save(root / "layers" / f"{name}.png")
    (root / "train.txt").write_text("\n".join(ids[:-1]) + "\n")
    (root / "val.txt").write_text(ids[-1] + "\n")
    return ids


def test_reads_regions_and_draws_their_boundaries(tmp_path):
    ids = write_fake_stanford(tmp_path, n=3)
    assert stanford_ids(tmp_path, "train") == ids[:2] and stanford_ids(tmp_path, "val") == ids[2:]
    assert stanford_ids(tmp_path, "all") == ids
    rec = load_stanford(tmp_path, ids[0])
    scene = make_scene(np.random.default_rng(0), (48, 64))
    np.testing.assert_array_equal(rec.segmentations[0], scene.instances)  # 16-bit PNG, read losslessly
    assert rec.image.shape == (48, 64, 3) and rec.image.dtype == np.uint8
    b = rec.boundaries[0]
    assert b.dtype == bool and b.any()
    seg = rec.segmentations[0]  # every boundary pixel has another region within one pixel
    mixed = ndimage.maximum_filter(seg, 3) != ndimage.minimum_filter(seg, 3)
    assert not (b & ~mixed).any() and b.sum() < mixed.sum()  # and it is thinner than the 2-pixel band

def test_bad_folders_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="region map must be"):
        region_boundaries(np.zeros((2, 3, 4), int))
    with pytest.raises(ValueError, match="split must be one of"):
        stanford_ids(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="no Stanford Background photos"):
        stanford_ids(tmp_path, "train")
    ids = write_fake_stanford(tmp_path, n=2)
    (tmp_path / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no split list"):
        stanford_ids(tmp_path, "all")
    Image.fromarray(np.zeros((10, 10), np.uint16)).save(tmp_path / "layers" / f"{ids[0]}.png")
    with pytest.raises(ValueError, match="region map \\(10, 10\\) != image"):
        load_stanford(tmp_path, ids[0])
    (tmp_path / "layers" / f"{ids[1]}.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a region map PNG"):
        load_stanford(tmp_path, ids[1])


def test_boundaries_drawn_as_bsds500_draws_its_own(shared):
    """region_boundaries(Segmentation) reproduces BSDS500's Boundaries maps exactly (Stanford's are drawn so)."""
    for rec in load_bsds(shared / "datasets" / "bsds500", "val", limit=3):
        for seg, bnd in zip(rec.segmentations, rec.boundaries):
            np.testing.assert_array_equal(region_boundaries(seg), bnd)


def test_reads_the_shared_dataset(shared):
    root = shared / "datasets" / "stanford_background"
    train, val = stanford_ids(root, "train"), stanford_ids(root, "val")
    assert (len(train), len(val)) == (572, 143) and not set(train) & set(val)
    rec = load_stanford(root, train[0])
    assert rec.image.shape[:2] == rec.segmentations[0].shape and rec.segmentations[0].max() >= 1
    assert 0.005 < rec.boundaries[0].mean() < 0.2
