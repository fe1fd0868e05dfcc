"""featlib.evaluate: the reported metric's per-image sweep and ODS / OIS (shared by scripts/evaluate_partitions.py
and training validation), validate_partitions, validation_set's BSDS choice, score_partition's segment count."""

import pickle

import numpy as np
import pytest
import torch

from conftest import load_script, write_fake_bsds
from featlib import features
from featlib.cluster import build_hierarchy
from featlib.config import TrainConfig
from featlib.data.bsds import load_record
from featlib.data.loaders import validation_set
from featlib.evaluate import (
    HIER_THRESHOLDS,
    SWEEP_COLUMNS,
    THRESHOLDS,
    baseline_sweep,
    hierarchy_sweep,
    score_partition,
    summarise_sweeps,
    summarise_validation,
    validate_partitions,
    validation_image,
)
from featlib.metrics import covering_pri_vi
from featlib.model import build_model


@pytest.mark.parametrize("spec,grouping", [("lab-smooth", "mesh"), ("untrained-b0", "mesh"), ("lab", "gradients"),
                                           ("untrained-b0", "gradients")])
def test_library_sweep_is_the_scripts(tmp_path, spec, grouping):
    ids = write_fake_bsds(tmp_path / "bsds", n=3)
    script = load_script("evaluate_partitions")
    assert script.THRESHOLDS is THRESHOLDS and THRESHOLDS["mesh"] is HIER_THRESHOLDS  # grids defined in the library
    f = features.load(spec)
    results, ours = [], []
    for i in ids:
        results.append(script.evaluate_image((tmp_path / "bsds", "val", i, ["hierarchy"], spec, False,
                                              {"grouping": grouping})))
        rec = load_record(tmp_path / "bsds", "val", i)
        feats, size = f(rec.image), rec.image.shape[:2]
        ours.append(hierarchy_sweep(f, rec.image, rec.segmentations, grouping))
        if grouping == "mesh":  # and the computation the script inlined before it called the library
            h = build_hierarchy(feats, size=size, **f.hierarchy_kwargs())
            old = [(*covering_pri_vi(s, rec.segmentations), len(np.unique(s)))
                   for s in (h.partition(threshold=t) for t in np.geomspace(0.01, 200, 48))]
            np.testing.assert_allclose(ours[-1][:, :4], np.array(old), rtol=1e-12)
        assert len(ours[-1]) == len(THRESHOLDS[grouping])
        np.testing.assert_array_equal(ours[-1], np.asarray(results[-1]["hierarchy"]["sweep"]))
        # the pooling columns: covering = overlap / area; "best" takes each region's best so far, so it never falls
        cov, overlap, area, best = (ours[-1][:, SWEEP_COLUMNS.index(c)] for c in
                                    ("covering", "cover_overlap", "cover_area", "best_overlap"))
        np.testing.assert_allclose(cov, overlap / area, rtol=1e-12)
        assert (np.diff(best) >= 0).all() and (best >= overlap - 1e-9).all() and (area == area[0]).all()
    s = script.summarise(results, "hierarchy", script.sweep_grids(grouping))
    lib = summarise_sweeps(ours, digits=4)
    assert (s["ods"], s["ois"], s["n_images"]) == (lib["ods"], lib["ois"], lib["n_images"]) == (s["ods"], s["ois"], 3)
    # training validation on validation_set's records of the same images gives the script's numbers
    cfg = TrainConfig(data="bsds500", data_root=str(tmp_path / "bsds"), n_val=3)
    v = validate_partitions(f, validation_set(cfg), hierarchy_kwargs={"grouping": grouping}, baseline_sweeps=ours)
    for m in ("covering", "pri", "vi"):
        assert round(v[f"val/{m}_ods"], 4) == s["ods"][m] and round(v[f"val/{m}_ois"], 4) == s["ois"][m]


def _sweep(cov, pri, vi, segs, area, best_overlap):
    """A hand-made sweep [T, 7] (SWEEP_COLUMNS) of one image from per-threshold covering, PRI, VI, segment counts,
    its annotated area and the running per-region best overlap."""
    cov = np.asarray(cov, float)
    return np.stack([cov, pri, vi, segs, cov * area, np.full(len(cov), float(area)), best_overlap], axis=1)


def test_summarise_sweeps_on_a_hand_made_sweep():
    # two images x three thresholds; image a has 100 annotated pixels (all annotators together), image b 300
    a = _sweep([0.2, 0.6, 0.4], [0.7, 0.8, 0.9], [2.0, 1.0, 1.5], [100, 20, 5], 100, [20, 60, 70])
    b = _sweep([0.5, 0.3, 0.1], [0.9, 0.6, 0.5], [0.8, 1.2, 3.0], [80, 30, 4], 300, [150, 160, 165])
    s = summarise_sweeps([a, b])
    # covering, pooled (the benchmark): (20 + 150) / 400, (60 + 90) / 400, (40 + 30) / 400 -> ODS .425 at threshold
    # 0 (the mean of per-image coverings would pick threshold 1: .45); OIS: a's best (60) and b's best (150) pooled,
    # (60 + 150) / 400 (the mean of per-image bests: .55); best: each region at its own threshold (70 + 165) / 400
    # PRI: means 0.8 0.7 0.7 -> ODS 0.8 at threshold 0; OIS (0.9 + 0.9) / 2
    # VI (bits, lower is better): means 1.4 1.1 2.25 -> ODS 1.1 at threshold 1; OIS (1.0 + 0.8) / 2
    assert s["ods"] == pytest.approx({"covering": 0.425, "pri": 0.8, "vi": 1.1})
    assert s["ois"] == pytest.approx({"covering": 0.525, "pri": 0.9, "vi": 0.9})
    assert s["best"] == pytest.approx({"covering": 235 / 400}) and s["ods_index"] == {"covering": 0, "pri": 0, "vi": 1}
    assert s["ods_segments"] == pytest.approx({"covering": 90.0, "pri": 90.0, "vi": 25.0})
    assert s["n_images"] == 2
    assert summarise_sweeps(np.stack([a, b]) + 0.00123, digits=2)["ods"]["pri"] == 0.8  # the script's rounding
    for bad in ([], [a[:, :4]], np.zeros((3, 7))):  # a [T, 4] sweep of the older, per-image-mean format too
        with pytest.raises(ValueError, match="sweeps must be"):
            summarise_sweeps(bad)
    v = summarise_validation([{"sweep": a, "seconds": 1.0}, {"sweep": b, "seconds": 3.0}], baseline_sweeps=[b, a])
    assert v["val/covering_ods"] == v["val/lab_covering_ods"] == pytest.approx(0.425)  # order does not matter
    assert v["val/n_images"] == 2 and v["val/seconds_per_image"] == 2.0 and v["val/segments_at_covering_ods"] == 90
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
