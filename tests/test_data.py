"""SA-1B reader on synthetic scenes written in the exact SA-1B format."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from featlib.data import collate, sa1b_dataset
from featlib.data.masks import dense_masks, dense_valid_pixels
from featlib.data.prepare import synthetic_batch, write_prepared_scenes
from featlib.data.sa1b import BadSample, decode_sample, iter_tar_pairs, rle_counts
from featlib.data.synthetic import encode_rle, load_scene, make_scene, scene_files, write_scenes


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sa1b")
    write_scenes(root, 4, size=(96, 128), seed=3)
    return root


def test_generator_is_deterministic_and_sa1b_shaped(tmp_path, folder):
    write_scenes(tmp_path, 4, size=(96, 128), seed=3)
    for i in range(1, 5):
        assert (tmp_path / f"sa_{i}.json").read_bytes() == (folder / f"sa_{i}.json").read_bytes()
    rec = json.loads((folder / "sa_1.json").read_text())
    assert set(rec["image"]) == {"image_id", "width", "height", "file_name"}
    ann = rec["annotations"][0]
    assert set(ann) == {"segmentation", "area", "bbox", "predicted_iou", "stability_score", "point_coords",
                        "crop_box", "id"}
    assert isinstance(ann["segmentation"]["counts"], str) and ann["segmentation"]["size"] == [96, 128]
    kinds = [make_scene(np.random.default_rng([3, i]), (96, 128)).meta for i in range(4)]
    assert any(m["kind"] == "part" for meta in kinds for m in meta)  # nested parts exist


def test_rle_counts_matches_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(10):
        m = rng.random((33, 41)) < rng.uniform(0.05, 0.95)
        rle = encode_rle(m)
        runs = rle_counts(rle["counts"])
        assert runs.sum() == m.size
        assert runs[1::2].sum() == mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})


def test_round_trip_equals_generator_masks(folder):
    """No resize (size = longest side, no augmentation): decoded instances are exactly the generator's components."""
    from scipy import ndimage

    ds = sa1b_dataset(folder, size=128, augment=False, min_component_area=1)
    for i in range(len(ds)):
        s = ds[i]
        scene = make_scene(np.random.default_rng([3, i]), (96, 128))
        expected = []
        for m in scene.masks:
            lab, n = ndimage.label(m)
            expected += [lab == c for c in range(1, n + 1)]
        masks, valid = dense_masks(s), dense_valid_pixels(s)
        got = masks[:, :96].numpy()
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            assert np.array_equal(e, g)
        assert not masks[:, 96:].any() and valid[:96].all() and not valid[96:].any()
        img, _ = load_scene(folder / f"sa_{i + 1}.jpg")
        assert s["image"].dtype == torch.uint8
        assert np.abs(s["image"][:, :96].permute(1, 2, 0).numpy().astype(int) - img).max() <= 1


def test_connected_components_are_split_and_small_ones_dropped():
    m = np.zeros((64, 64), bool)
    m[5:20, 5:20] = True       # 225 px
    m[40:60, 40:60] = True     # 400 px
    m[30:32, 2:4] = True       # 4 px
    img = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img, format="JPEG")
    rec = {"annotations": [{"segmentation": encode_rle(m), "bbox": [2, 5, 58, 55], "id": 7,
                            "predicted_iou": 0.9, "stability_score": 0.95}]}
    s = decode_sample(img.getvalue(), json.dumps(rec).encode(), "x", size=64, augment=False, min_component_area=10)
    assert dense_masks(s).shape[0] == 2
    assert s["mask_id"].tolist() == [7, 7] and sorted(s["area"].tolist()) == [225, 400]
    assert torch.allclose(s["predicted_iou"], torch.tensor([0.9, 0.9]))


def test_downscale_is_area_then_binarise():
    m = np.zeros((200, 300), bool)
    m[:100, :150] = True
    jpg = io.BytesIO()
    Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(jpg, format="JPEG")
    rec = {"annotations": [{"segmentation": encode_rle(m), "bbox": [0, 0, 150, 100], "id": 1}]}
    s = decode_sample(jpg.getvalue(), json.dumps(rec), "x", size=60, augment=False)  # 5x smaller
    got, valid = dense_masks(s)[0], dense_valid_pixels(s)
    assert got.shape == (60, 60) and got[:20, :30].all() and got.sum() == 20 * 30
    assert valid[:40, :60].all() and not valid[40:].any()


@pytest.mark.parametrize("hw", [(481, 321), (321, 481), (9, 40)])
def test_reduced_jpeg_decode_keeps_the_window_inside_the_image(hw):
    """JPEG draft rounds each axis up separately (481 x 321 at 1/8 -> 61 x 41): the crop box must use each axis's own
    factor. Regression: BSDS500 image 100080 (481 x 321) was refused as corrupt at size 64."""
    h, w = hw
    img = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    jpg = io.BytesIO()
    Image.fromarray(img).save(jpg, format="JPEG")
    m = np.zeros((h, w), bool)
    m[h // 3:, w // 3:] = True  # reaches the bottom-right corner
    rec = {"annotations": [{"segmentation": encode_rle(m), "bbox": [w // 3, h // 3, w - w // 3, h - h // 3], "id": 1}]}
    for seed in range(200):
        s = decode_sample(jpg.getvalue(), rec, "x", size=64, augment=True, rng=np.random.default_rng(seed))
        assert s["image"].shape == (3, 64, 64) and dense_masks(s).shape[1:] == (64, 64)


def test_augmentation_keeps_image_and_masks_aligned(folder):
    ds = sa1b_dataset(folder, size=96, augment=True, seed=1)
    for i in range(len(ds)):
        s = ds[i]
        masks, valid = dense_masks(s), dense_valid_pixels(s)
        assert s["image"].shape == (3, 96, 96) and masks.dtype == torch.bool
        assert not (masks & ~valid).any() and valid[0, 0]  # padding (if any) is right / bottom, even when flipped
        # masks follow image content: within one mask the image is far more uniform than across the image
        img = s["image"].float() / 255
        for m in masks[:3]:
            if m.sum() > 50:
                assert img[:, m].std(1).mean() < img[:, valid].std(1).mean() + 0.05


def test_max_instances_and_collate_padding(folder):
    ds = sa1b_dataset(folder, size=64, augment=False, max_instances=3)
    batch = collate([ds[0], ds[1], {"skipped": "corrupt_image", "name": "z"}])
    assert dense_masks(batch).shape[:2] == (2, 3) and batch["mask_valid"].all()
    assert batch["skipped"] == {"corrupt_image": 1} and batch["image"].dtype == torch.uint8
    ds = sa1b_dataset(folder, size=64, augment=False)
    samples = [ds[0], ds[1]]
    batch = collate(samples)
    k = [len(s["mask_id"]) for s in samples]
    assert batch["mask_valid"].sum(1).tolist() == k and batch["name"] == [s["name"] for s in samples]
    masks = dense_masks(batch)
    assert not masks[~batch["mask_valid"]].any()
    for i, s in enumerate(samples):
        assert torch.equal(masks[i, :k[i]], dense_masks(s))


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_out_of_order_tar_members_are_paired(tmp_path):
    rng = np.random.default_rng(0)
    files = [scene_files(make_scene(np.random.default_rng(i), (64, 80)), i + 1, rng) for i in range(4)]
    members = [(n, d) for f in files for n, d in f.items() if not n.endswith(".png")]
    members = members[1::2] + members[0::2]  # all jsons first, then all jpgs
    _tar(tmp_path / "shuffled.tar", members)
    ds = sa1b_dataset(tmp_path / "shuffled.tar", size=80, augment=False)
    names = sorted(s["name"].rsplit(":", 1)[1] for s in ds)
    assert names == ["sa_1", "sa_2", "sa_3", "sa_4"] and not ds.skipped


def test_every_sample_exactly_once_across_ranks_and_workers(tmp_path):
    write_scenes(tmp_path, 12, size=(48, 64), shards=6, seed=5)
    seen = []
    for rank in range(2):
        ds = sa1b_dataset(str(tmp_path / "*.tar"), size=64, augment=True, rank=rank, world_size=2, shuffle_buffer=4)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
        seen += [n.rsplit(":", 1)[1] for b in loader for n in b["name"]]
    assert sorted(seen) == sorted(f"sa_{i}" for i in range(1, 13))


BAD_CASES = ["corrupt_image", "truncated_image", "invalid_json", "malformed_rle", "rle_size_mismatch",
             "missing_pair", "no_annotations", "decompression_bomb"]


def _bad_folder(root, case):
    write_scenes(root, 2, size=(48, 64), seed=1)
    jpg, js = root / "sa_2.jpg", root / "sa_2.json"
    rec = json.loads(js.read_text())
    if case == "corrupt_image":
        jpg.write_bytes(b"\xff\xd8 definitely not a jpeg")
    elif case == "truncated_image":
        jpg.write_bytes(jpg.read_bytes()[:200])
    elif case == "invalid_json":
        js.write_text("{ not json")
    elif case == "malformed_rle":
        rec["annotations"][0]["segmentation"]["counts"] = "\x01\x02garbage"
        js.write_text(json.dumps(rec))
    elif case == "rle_size_mismatch":
        rec["annotations"][0]["segmentation"] = encode_rle(np.ones((10, 10), bool))
        js.write_text(json.dumps(rec))
    elif case == "missing_pair":
        js.unlink()
    elif case == "no_annotations":
        rec["annotations"] = []
        js.write_text(json.dumps(rec))
    elif case == "decompression_bomb":
        buf = io.BytesIO()
        Image.new("1", (9000, 9000)).save(buf, format="PNG")  # 81 MP, tiny on disk
        jpg.write_bytes(buf.getvalue())
    return root


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_data_is_skipped_and_counted(tmp_path, case):
    root = _bad_folder(tmp_path, case)
    expected = "corrupt_image" if case == "truncated_image" else case
    ds = sa1b_dataset(root, size=64, augment=False)
    batch = collate([ds[i] for i in range(len(ds))])
    assert ds.skipped == {expected: 1}
    assert batch["skipped"] == {expected: 1} and batch["image"].shape[0] == 1
    strict = sa1b_dataset(root, size=64, augment=False, strict=True)
    with pytest.raises(BadSample, match="sa_2"):
        [strict[i] for i in range(len(strict))]


def test_bad_shard_members_are_skipped(tmp_path):
    rng = np.random.default_rng(0)
    good = scene_files(make_scene(np.random.default_rng(0), (48, 64)), 1, rng)
    members = [(n, d) for n, d in good.items()] + [("sa_2.jpg", b"junk"), ("sa_2.json", b"{}"), ("sa_3.json", b"{}")]
    _tar(tmp_path / "bad.tar", members)
    ds = sa1b_dataset(tmp_path / "bad.tar", size=64, augment=False)
    out = [s for s in ds if "skipped" not in s]
    assert len(out) == 1
    assert ds.skipped == {"invalid_json": 1, "missing_pair": 1}  # '{}' has no annotations list; sa_3 has no jpg


def test_source_detection_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        sa1b_dataset(tmp_path / "nothing_here.tar")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no SA-1B"):
        sa1b_dataset(tmp_path / "empty")


def test_prepared_shards_match_raw_up_to_resize(tmp_path):
    from featlib.data.prepare import prepare_shard

    write_scenes(tmp_path / "raw", 3, size=(120, 160), shards=1, seed=2)
    raw_tar = tmp_path / "raw" / "sa_000000.tar"
    (tmp_path / "prep").mkdir()
    stats = prepare_shard(raw_tar, tmp_path / "prep" / "sa_000000.tar", size=80)
    assert stats == {"written": 3, "skipped": {}}
    assert not list((tmp_path / "prep").glob("*.partial"))
    raw = {s["name"].rsplit(":", 1)[1]: s for s in sa1b_dataset(raw_tar, size=80, augment=False)}
    prep = {s["name"].rsplit(":", 1)[1]: s for s in sa1b_dataset(tmp_path / "prep", size=80, augment=False)}
    assert raw.keys() == prep.keys()
    for k in raw:
        a, b = dense_masks(raw[k]), dense_masks(prep[k])
        assert a.shape[1:] == b.shape[1:] and abs(len(a) - len(b)) <= 1
        union_a, union_b = a.any(0), b.any(0)
        iou = (union_a & union_b).sum() / (union_a | union_b).sum()
        assert iou > 0.97  # same masks; the two resize paths differ only on boundary pixels
        assert (raw[k]["image"].float() - prep[k]["image"].float()).abs().mean() / 255 < 0.03


def test_write_prepared_scenes_makes_readable_prepared_shards(tmp_path):
    paths = write_prepared_scenes(tmp_path, 3, size=64, shards=2, copies=2, workers=2)
    assert [p.name for p in paths] == ["sa_000000.tar", "sa_000001.tar"]
    pairs = [(k, j, r) for p in paths for k, j, r in iter_tar_pairs(p)]
    assert len(pairs) == 6 and all(j is not None and r is not None for _, j, r in pairs)
    rec = json.loads(pairs[0][2])
    assert rec["featlib_prepared"]["size"] == 64 and max(rec["image"]["width"], rec["image"]["height"]) == 64
    samples = list(sa1b_dataset(str(tmp_path / "sa_*.tar"), size=64, augment=False))
    assert len(samples) == 6 and all(s["image"].shape == (3, 64, 64) and len(s["mask_id"]) > 0 for s in samples)


def test_synthetic_batch_has_the_collate_layout():
    batch = synthetic_batch(2, 64, n_masks=5, seed=0)
    assert batch["image"].shape == (2, 3, 64, 64) and batch["image"].dtype == torch.uint8
    masks = dense_masks(batch)
    assert masks.shape == (2, 5, 64, 64) and masks.flatten(2).any(-1).all()  # no empty mask
    assert batch["mask_valid"].all() and dense_valid_pixels(batch).all() and batch["skipped"] == {}
    assert batch["area"].tolist() == masks.sum((2, 3)).tolist()
    assert torch.equal(dense_masks(synthetic_batch(2, 64, n_masks=5, seed=0)), masks)


def test_rle_window_and_bbox_match_pycocotools():
    """Windowed decoding of column-major runs equals pycocotools' full decode, boxes included (borders too)."""
    from featlib.data.rle import rle_bbox, rle_window

    rng = np.random.default_rng(0)
    for t in range(30):
        h, w = rng.integers(5, 40, 2)
        m = np.zeros((h, w), bool)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0:rng.integers(y0, h) + 1, x0:rng.integers(x0, w) + 1] = rng.random() < 0.5 or t % 3 == 0
        m &= rng.random((h, w)) < 0.8
        rle = encode_rle(m)
        runs = rle_counts(rle["counts"])
        full = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        assert np.array_equal(full, m)
        box = rle_bbox(runs, h)
        if not m.any():
            assert box is None
            continue
        ys, xs = np.nonzero(m)
        assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        wx0, wx1 = sorted(rng.integers(0, w + 1, 2))
        wy0, wy1 = sorted(rng.integers(0, h + 1, 2))
        if wx1 > wx0 and wy1 > wy0:
            assert np.array_equal(rle_window(runs, h, wx0, wx1, wy0, wy1), m[wy0:wy1, wx0:wx1])


def _pieces_record(tall=False):
    """A 64 x 96 photo (96 x 64 if tall) with 12 annotations of 1, 2 and 3 connected pieces (ids 10..)."""
    anns = []
    for a in range(12):
        m = np.zeros((64, 96), bool)
        for p in range(a % 3 + 1):
            y, x = 4 + 20 * p, 4 + 7 * a
            m[y:y + 12, x:x + 5] = True
        anns.append({"segmentation": encode_rle(m.T if tall else m), "id": 10 + a})
    jpg = io.BytesIO()
    ramp = np.add.outer(np.arange(96 if tall else 64), 2 * np.arange(64 if tall else 96)).astype(np.uint8)
    Image.fromarray(np.stack([ramp, ramp[::-1], ramp[:, ::-1]], -1)).save(jpg, format="JPEG")
    return jpg.getvalue(), {"annotations": anns}


def test_max_instances_keeps_whole_annotations():
    jpg, rec = _pieces_record()
    full = decode_sample(jpg, rec, "x", size=96, augment=False, min_component_area=1)
    assert len(full["mask_id"]) == 24  # 4 x (1 + 2 + 3) pieces
    subsets = set()
    for seed in range(10):
        s = decode_sample(jpg, rec, "x", size=96, augment=False, min_component_area=1, max_instances=7,
                          rng=np.random.default_rng(seed))
        ids = s["mask_id"].tolist()
        assert 5 <= len(ids) <= 7 and ids == sorted(ids)  # kept in annotation order
        counts = {i: ids.count(i) for i in ids}
        assert all(c == (i - 10) % 3 + 1 for i, c in counts.items())  # an annotation's pieces stay together
        masks, ref = dense_masks(s), dense_masks(full)
        for k, i in enumerate(ids):  # and they are that annotation's pieces, exactly
            assert any(torch.equal(masks[k], ref[j]) for j in np.flatnonzero(full["mask_id"].numpy() == i))
        subsets.add(tuple(counts))
    assert len(subsets) > 5  # the subset is random


def test_flip_mirrors_content_and_keeps_padding_bottom_right():
    jpg, rec = _pieces_record(tall=True)
    plain = decode_sample(jpg, rec, "x", size=96, augment=False, min_component_area=1)
    assert not dense_valid_pixels(plain)[:, 64:].any()
    flips = 0
    for seed in range(8):  # zoom 1, the photo's own size: no crop, only the flip is random
        s = decode_sample(jpg, rec, "x", size=96, augment=True, zoom=(1.0, 1.0), min_component_area=1,
                          rng=np.random.default_rng(seed))
        assert torch.equal(dense_valid_pixels(s), dense_valid_pixels(plain))  # valid region stays top-left
        a, b = dense_masks(s), dense_masks(plain)
        if torch.equal(a, b):
            continue
        flips += 1
        assert torch.equal(a[..., :64], b[..., :64].flip(-1)) and not a[..., 64:].any()
        assert torch.equal(s["image"][..., :64], plain["image"][..., :64].flip(-1))
    assert 0 < flips < 8
