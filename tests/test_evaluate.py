"""featlib.evaluate: the reported metric's per-image sweep and ODS / OIS (shared by scripts/evaluate_partitions.py
and training validation), validate_partitions, validation_set's BSDS choice, score_partition's segment count."""

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_fake_bsds
from featlib import features
from featlib.cluster import build_hierarchy
from featlib.config import TrainConfig
from featlib.data.bsds import load_record
from featlib.data.loaders import validation_set
from featlib.evaluate import (
    HIER_THRESHOLDS,
    baseline_sweep,
    hierarchy_settings,
    hierarchy_sweep,
    score_partition,
    summarise_sweeps,
    summarise_validation,
    validate_partitions,
    validation_image,
)
from featlib.metrics import covering_pri_vi
from featlib.model import build_model

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("featlib_evaluate_partitions", ROOT / "scripts" /
                                                  "evaluate_partitions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("spec", ["lab-smooth", "untrained-b0"])
def test_library_sweep_is_the_scripts(tmp_path, spec):
    ids = write_fake_bsds(tmp_path / "bsds", n=3)
    script = _script()
    assert script.HIER_THRESHOLDS is HIER_THRESHOLDS  # one grid, defined in the library
    f = features.load(spec)
    results, ours = [], []
    for i in ids:
        results.append(script.evaluate_image((tmp_path / "bsds", "val", i, ["hierarchy"], spec, False, {})))
        rec = load_record(tmp_path / "bsds", "val", i)
        feats, size = f(rec.image), rec.image.shape[:2]
        ours.append(hierarchy_sweep(feats, size, rec.segmentations, **hierarchy_settings(f)))
        # and the computation the script inlined before it called the library
        h = build_hierarchy(feats, size=size, **f.hierarchy_kwargs())
        old = [(*covering_pri_vi(s, rec.segmentations), len(np.unique(s)))
               for s in (h.partition(threshold=t) for t in np.geomspace(0.01, 200, 48))]
        np.testing.assert_array_equal(ours[-1], np.array(old))
        np.testing.assert_array_equal(ours[-1], np.asarray(results[-1]["hierarchy"]["sweep"]))
    s = script.summarise(results, "hierarchy")
    lib = summarise_sweeps(ours, digits=4)
    assert (s["ods"], s["ois"], s["n_images"]) == (lib["ods"], lib["ois"], lib["n_images"]) == (s["ods"], s["ois"], 3)
    # training validation on validation_set's records of the same images gives the script's numbers
    cfg = TrainConfig(data="bsds500", data_root=str(tmp_path / "bsds"), n_val=3)
    v = validate_partitions(f, validation_set(cfg), baseline_sweeps=ours)
    for m in ("covering", "pri", "vi"):
        assert round(v[f"val/{m}_ods"], 4) == s["ods"][m] and round(v[f"val/{m}_ois"], 4) == s["ois"][m]


def test_summarise_sweeps_on_a_hand_made_sweep():
    # two images x three thresholds; columns covering, PRI, VI, n_segments
    a = np.array([[0.2, 0.7, 2.0, 100], [0.6, 0.8, 1.0, 20], [0.4, 0.9, 1.5, 5]])
    b = np.array([[0.5, 0.9, 0.8, 80], [0.3, 0.6, 1.2, 30], [0.1, 0.5, 3.0, 4]])
    s = summarise_sweeps([a, b])
    # covering: means 0.35 0.45 0.25 -> ODS 0.45 at threshold 1; OIS (0.6 + 0.5) / 2
    # PRI: means 0.8 0.7 0.7 -> ODS 0.8 at threshold 0; OIS (0.9 + 0.9) / 2
    # VI (lower is better): means 1.4 1.1 2.25 -> ODS 1.1 at threshold 1; OIS (1.0 + 0.8) / 2
    assert s["ods"] == pytest.approx({"covering": 0.45, "pri": 0.8, "vi": 1.1})
    assert s["ois"] == pytest.approx({"covering": 0.55, "pri": 0.9, "vi": 0.9})
    assert s["ods_segments"] == pytest.approx({"covering": 25.0, "pri": 90.0, "vi": 25.0})
    assert s["n_images"] == 2
    assert summarise_sweeps(np.stack([a, b]) + 0.00123, digits=2)["ods"]["covering"] == 0.45  # the script's rounding
    for bad in ([], [a[:, :3]], np.zeros((3, 4))):
        with pytest.raises(ValueError, match="sweeps must be"):
            summarise_sweeps(bad)
    v = summarise_validation([{"sweep": a, "seconds": 1.0}, {"sweep": b, "seconds": 3.0}], baseline_sweeps=[b, a])
    assert v["val/covering_ods"] == v["val/lab_covering_ods"] == pytest.approx(0.45)  # order does not matter
    assert v["val/n_images"] == 2 and v["val/seconds_per_image"] == 2.0 and v["val/segments_at_covering_ods"] == 25
    assert "val/lab_covering_ods" not in summarise_validation([{"sweep": a, "seconds": 1.0}])
    with pytest.raises(ValueError, match="same validation images"):
        summarise_validation([{"sweep": a, "seconds": 1.0}], baseline_sweeps=[a, b])
    with pytest.raises(ValueError, match="no validation results"):
        summarise_validation([])


def test_validate_partitions_on_an_untrained_b0(tmp_path):
    write_fake_bsds(tmp_path / "bsds", n=2)
    records = validation_set(TrainConfig(data="bsds500", data_root=str(tmp_path / "bsds"), n_val=2))
    torch.manual_seed(0)
    model = build_model("b0")
    v = validate_partitions(model, records)
    keys = {f"val/{m}_{k}" for m in ("covering", "pri", "vi") for k in ("ods", "ois")} | {
        "val/n_images", "val/lab_covering_ods", "val/lab_pri_ods", "val/lab_vi_ods", "val/seconds_per_image"}
    assert keys <= set(v) and all(np.isfinite(v[k]) for k in v) and v["val/n_images"] == 2
    assert 0 <= v["val/covering_ods"] <= v["val/covering_ois"] <= 1 and v["val/vi_ois"] <= v["val/vi_ods"]
    # sharded: rank r scores records r::2, the results travel pickled (gather_object), then one summary
    baseline = [baseline_sweep(image, gts) for image, gts in records]
    shards = [[validation_image(model, *rec) for rec in records[r::2]] for r in range(2)]
    gathered = [res for shard in shards[::-1] for res in pickle.loads(pickle.dumps(shard))]
    sharded = summarise_validation(gathered, baseline_sweeps=baseline)
    untimed = [{k: x for k, x in d.items() if "seconds" not in k} for d in (sharded, v)]
    assert untimed[0] == untimed[1]
    with pytest.raises(TypeError, match="FeatureNet"):
        validate_partitions("b0", records)


def test_validation_set_of_an_sa1b_run_is_bsds_val(tmp_path):
    ids = write_fake_bsds(tmp_path / "bsds", n=3)
    (tmp_path / "sa1b").mkdir()
    cfg = TrainConfig(data=str(tmp_path / "sa1b"), val_root=str(tmp_path / "bsds"), n_val=2,
                      data_root=str(tmp_path / "synthetic"))
    recs = validation_set(cfg)
    assert [r.id for r in recs] == ids[:2] and {r.source for r in recs} == {"bsds500/val"}
    image, gts = recs[1]  # still the (image, ground truths) pair of the older code
    segs = load_record(tmp_path / "bsds", "val", ids[1]).segmentations
    assert image.dtype == np.uint8 and len(gts) == len(segs) and all((g == s + 1).all() for g, s in zip(gts, segs))
    assert recs[0][0] is recs[0].image and len(recs[0]) == 2
    shard = validation_set(cfg, rank=1, world_size=2)
    assert [(r.id, r.index) for r in shard] == [(ids[1], 1)]
    assert not (tmp_path / "synthetic").exists()  # no synthetic scenes written when BSDS is there
    with pytest.raises(ValueError, match="rank"):
        validation_set(cfg, rank=2, world_size=2)


def test_validation_set_falls_back_to_synthetic_with_a_warning(tmp_path):
    (tmp_path / "sa1b").mkdir()
    cfg = TrainConfig(data=str(tmp_path / "sa1b"), val_root=str(tmp_path / "missing"), n_val=2, n_train=2,
                      scene_size=64, data_root=str(tmp_path / "synthetic"))
    with pytest.warns(UserWarning, match="NOT THE REPORTED METRIC.*missing"):
        recs = validation_set(cfg)
    assert len(recs) == 2 and {r.source for r in recs} == {"synthetic/val"}
    image, (inst,) = recs[0]
    assert image.shape[:2] == inst.shape and image.dtype == np.uint8


def test_score_partition_asks_for_exactly_the_ground_truths_pieces():
    rng = np.random.default_rng(0)
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]], np.uint8)
    quadrant = np.zeros((48, 64), int)
    quadrant[:24, 32:], quadrant[24:, :32], quadrant[24:, 32:] = 1, 2, 3
    image = np.clip(colours[quadrant] + rng.normal(0, 4, (48, 64, 3)), 0, 255).astype(np.uint8)
    # instance 1 covers two diagonal quadrants (two pieces), instance 2 one, the fourth quadrant is unannotated
    gt = np.select([quadrant == 0, quadrant == 3, quadrant == 1], [1, 1, 2], 0)
    lab = features.load("lab-smooth")
    iou, cov, labels = score_partition(lab(image), [gt])
    assert len(np.unique(labels)) == 3  # 3 pieces; unannotated pixels are not one (it used to ask for 4)
    assert 0 <= iou <= 1 and 0 <= cov <= 1
