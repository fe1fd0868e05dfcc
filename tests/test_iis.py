import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script, write_fake_bsds
from featlib import click_eval
from featlib.checkpoint import save_model
from featlib.data.bsds import holdout_split
from featlib.data.iis import IISDataset, IISSample, load_iis
from featlib.data.samples import iis_samples, sample_sets
from featlib.model import build_model


def write_layout(root, kind, n=2, size=(24, 32)):
    layouts = {"berkeley": ("images", "masks"), "davis": ("img", "gt"), "grabcut": ("data_GT", "boundary_GT")}
    img_dir, mask_dir = layouts[kind]
    (root / img_dir).mkdir(parents=True)
    (root / mask_dir).mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth = {}
    for k in range(n):
        name = f"im{k}"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / img_dir / f"{name}.jpg")
        obj = np.zeros(size, bool)
        obj[4 + k : 15, 6:20] = True
        if kind == "berkeley":  # RGB mask, 255 object, a 100-valued stain that is NOT object (<= 128)
            m = np.zeros((*size, 3), np.uint8)
            m[obj] = 255
            m[0, 0] = 100
            Image.fromarray(m).save(root / mask_dir / f"{name}.png")
        elif kind == "davis":  # palette-like labels: any non-zero is object
            m = np.zeros(size, np.uint8)
            m[obj] = 3
            Image.fromarray(m).save(root / mask_dir / f"{name}.png")
        else:
            m = np.zeros(size, np.uint8)
            m[obj] = 255
            m[2, :] = 128
            Image.fromarray(m).save(root / mask_dir / f"{name}.bmp")
        truth[name] = obj
    # an image without a mask is skipped and counted
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(root / img_dir / "orphan.jpg")
    return truth


@pytest.mark.parametrize("kind", ["berkeley", "davis", "grabcut"])
def test_layouts(tmp_path, kind):
    truth = write_layout(tmp_path, kind)
    ds = load_iis(kind, tmp_path)
    assert len(ds) == 2 and ds.missing == 1
    for s in ds:
        assert s.image.dtype == np.uint8 and s.image.shape == (24, 32, 3)
        np.testing.assert_array_equal(s.mask, truth[s.name])
        assert s.ignore.dtype == bool
        if kind == "grabcut":
            assert s.ignore[2].all() and not s.mask[2].any()
        else:
            assert not s.ignore.any()
    assert len(load_iis(kind, tmp_path, limit=1)) == 1


def test_iis_samples_tuples(tmp_path):
    truth = write_layout(tmp_path, "grabcut")
    samples = list(iis_samples("grabcut", tmp_path))
    assert [name for name, *_ in samples] == [s.name for s in load_iis("grabcut", tmp_path)]
    for name, image, mask, ignore in samples:
        assert image.shape == (24, 32, 3) and ignore[2].all()
        np.testing.assert_array_equal(mask, truth[name])
    assert len(list(iis_samples("grabcut", tmp_path, limit=1))) == 1


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        IISDataset("sbd", tmp_path)
    with pytest.raises(ValueError, match="layout"):
        IISDataset("davis", tmp_path)


def test_grabcut_sample(shared):
    root = shared / "fixtures" / "grabcut_sample"
    if not root.is_dir():
        pytest.skip("no grabcut_sample fixture")
    ds = load_iis("grabcut", root)
    assert len(ds) >= 1
    s = ds[0]
    assert s.mask.shape == s.image.shape[:2]
    assert s.mask.any() and (~s.mask).any()
    assert not (s.mask & s.ignore).any()


def _tiny_grabcut(tmp_path):
    """A tiny GrabCut-layout folder with two easy objects: a bright square on a dark noisy background."""
    (tmp_path / "data" / "data_GT").mkdir(parents=True)
    (tmp_path / "data" / "boundary_GT").mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        img = rng.integers(20, 60, (48, 64, 3)).astype(np.uint8)
        m = np.zeros((48, 64), np.uint8)
        m[10 + k : 30, 15:45] = 255
        img[m > 0] = (220, 200, 40)
        m[9 + k, 15:45] = 128
        Image.fromarray(img).save(tmp_path / "data" / "data_GT" / f"o{k}.png")
        Image.fromarray(m).save(tmp_path / "data" / "boundary_GT" / f"o{k}.bmp")
    return tmp_path / "data"


def _script():
    script = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_iis.py"
    spec = importlib.util.spec_from_file_location("evaluate_iis", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_evaluate_iis_script(tmp_path):
    _tiny_grabcut(tmp_path)
    mod = _script()
    out = tmp_path / "res.json"
    assert mod.main(["--dataset", "grabcut", "--root", str(tmp_path / "data"), "--features", "lab", "--max-clicks",
                     "5", "--long-clicks", "8", "--output", str(out), "--no-progress", "--workers", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["n_objects"] == 2 and len(res["mean_iou_per_click"]) == 8
    assert 1 <= res["noc85"] <= 5 and res["noc85"] <= res["noc90"] <= 5
    assert isinstance(res["drops"], int) and res["drops"] >= 0
    assert len(res["drops_per_click"]) == 8 and sum(res["drops_per_click"]) == res["drops"]
    assert sum(res["drops_over_0.01_per_click"]) == res["drops_over_0.01"]
    assert res["drops_per_click"][0] == 0  # nothing to fall from before the first click
    assert out.with_suffix(".png").is_file()


def test_click_eval_library_errors_and_centre_run():
    """featlib.click_eval without the script: a stochastic clicker brings the centre run along, bad arguments are
    ValueErrors naming them, and Lazy reads a dataset's items one at a time, in order."""
    img = np.full((32, 40, 3), 30, np.uint8)
    gt = np.zeros((32, 40), bool)
    gt[8:24, 10:30] = True
    img[gt] = (200, 180, 40)
    samples = [IISSample(f"o{k}", img, gt, np.zeros_like(gt)) for k in range(2)]
    res = click_eval.evaluate(samples, "lab", ("dt",), seeds=2, max_clicks=3, long_clicks=4, progress=False)
    assert res["clickers_run"] == ["dt", "center"] and res["n_objects"] == 2 and res["n_seeds"] == 2
    assert len(res["clickers"]["center"]["objects"][0]["runs"]) == 1 and res["clicks_honoured"] == 1.0
    for kw, msg in [({"clickers": ("dt", "dt")}, "twice"), ({"seeds": 0}, "--seeds")]:
        with pytest.raises(ValueError, match=msg):
            click_eval.evaluate(samples, "lab", **{"clickers": ("dt",), **kw}, max_clicks=2, progress=False)
    with pytest.raises(ValueError, match="no objects"):
        click_eval.evaluate([], "lab", progress=False)
    with pytest.raises(ValueError, match="no image"):
        click_eval.evaluate_multi([], "lab", progress=False)

    class Reads(list):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    seen = []
    lazy = click_eval.Lazy(Reads("abcd"), range(1, 3))
    assert len(lazy) == 2 and not seen and list(lazy) == ["b", "c"] and seen == [1, 2]


def test_evaluate_iis_bsds_skip(shared, tmp_path):
    """--dataset bsds500 reads objects straight from BSDS500; --skip leaves out the first ones (the tuning objects)."""
    root = shared / "datasets" / "bsds500"
    if not root.is_dir():
        pytest.skip("BSDS500 not in ../shared")
    mod = _script()
    runs = {}
    for skip in (0, 1):
        out = tmp_path / f"skip{skip}.json"
        mod.main(["--dataset", "bsds500", "--root", str(root), "--limit", "2", "--skip", str(skip), "--max-clicks",
                  "2", "--long-clicks", "0", "--touch-up", "0", "--output", str(out), "--no-progress",
                  "--workers", "1"])
        runs[skip] = json.loads(out.read_text())
    assert runs[0]["n_objects"] == 2 and runs[1]["n_objects"] == 1
    assert runs[1]["objects"][0]["name"] == runs[0]["objects"][1]["name"]
    assert runs[1]["objects"][0]["ious"] == runs[0]["objects"][1]["ious"]


def test_evaluate_iis_checkpoint_features(tmp_path):
    """--features CHECKPOINT loads a saved FeatureNet (weights_only) and gives the same run as the same weights
    built in process (``untrained-b0`` seeds 0)."""
    root = _tiny_grabcut(tmp_path)
    torch.manual_seed(0)
    save_model(build_model("b0"), tmp_path / "model.pt")
    mod = _script()
    res = {}
    for spec in (str(tmp_path / "model.pt"), "untrained-b0"):
        out = tmp_path / f"{spec[-8:].replace('/', '_')}.json"
        mod.main(["--dataset", "grabcut", "--root", str(root), "--features", spec, "--max-clicks", "3",
                  "--long-clicks", "0", "--output", str(out), "--no-progress", "--workers", "1"])
        res[spec] = json.loads(out.read_text())
    a, b = res.values()
    assert [o["ious"] for o in a["objects"]] == [o["ious"] for o in b["objects"]]
    assert mod.main(["--dataset", "grabcut", "--root", str(root), "--features", str(tmp_path / "missing.pt")]) == 2


def test_evaluate_iis_bsds_train_holdout_and_mesh_weights(tmp_path):
    """--split train --holdout N scores only the held-out train images; --mesh-weights reaches the segmenter."""
    ids = write_fake_bsds(tmp_path / "bsds", n=4, split="train", size=(64, 80))
    mod = _script()
    out = tmp_path / "hold.json"
    mod.main(["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--split", "train", "--holdout", "2",
              "--features", "untrained-b0", "--mesh-weights", "finest", "--max-clicks", "2", "--long-clicks", "0",
              "--output", str(out), "--no-progress", "--workers", "1"])
    res = json.loads(out.read_text())
    held = holdout_split(ids, 2)[1]
    assert {o["name"] for o in res["objects"]} <= set(held) and res["n_objects"] >= 1
    assert res["mesh_weights"] == {"1": 1.0} and res["split"] == "train" and res["holdout"] == 2
    assert res["settings"]["reach"] == 2.0  # the learned features' own trust region (features.DEFAULTS)
    mod.main(["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--split", "train", "--holdout", "2",
              "--features", "lab", "--reach", "0", "--touch-up", "3", "--max-clicks", "2", "--long-clicks", "0",
              "--output", str(out), "--overwrite", "--no-progress", "--workers", "1"])
    settings = json.loads(out.read_text())["settings"]
    assert settings["reach"] is None and settings["touch_up"] == 3.0  # explicit options override; 0 turns reach off
    mod.main(["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--split", "train", "--holdout", "2",
              "--features", "lab", "--touch-up-disc", "2.5", "--max-clicks", "2", "--long-clicks", "0",
              "--output", str(out), "--overwrite", "--no-progress", "--workers", "1"])
    assert json.loads(out.read_text())["settings"]["touch_up_disc"] == 2.5
    mod.main(["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--split", "train", "--holdout", "2",
              "--features", "lab", "--click-hierarchy", "learned", "--seed-segments", "20", "--max-clicks", "2",
              "--long-clicks", "0", "--output", str(out), "--overwrite", "--no-progress", "--workers", "1"])
    settings = json.loads(out.read_text())["settings"]
    assert settings["hierarchy"]["boundary_map"] == "learned" and settings["seed_segments"] == 20
    # holdout is a train-split notion
    assert mod.main(["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--holdout", "2", "--no-progress"]) == 2


def _grabcut_args(root, *extra):
    return ["--dataset", "grabcut", "--root", str(root), "--features", "lab", "--max-clicks", "4", "--long-clicks", "6",
            "--no-progress", *extra]


def test_evaluate_iis_clickers_seeds_and_workers(tmp_path):
    """Stochastic and adversarial clickers with seeds: the robustness keys, the centre run beside them, and the same
    result from 2 worker processes as from 1."""
    root = _tiny_grabcut(tmp_path)
    mod = _script()
    res = {}
    for w in (1, 2):
        out = tmp_path / f"w{w}.json"
        assert mod.main(_grabcut_args(root, "--clicker", "dt,worst:2,best:2", "--seeds", "2", "--workers", str(w),
                                      "--output", str(out))) == 0
        res[w] = json.loads(out.read_text())
    assert res[1]["clickers"] == res[2]["clickers"]
    r = res[1]
    assert r["clicker"] == "dt" and r["clickers_run"] == ["dt", "worst:2", "best:2", "center"]
    assert r["n_seeds"] == 2 and r["clickers"]["center"]["n_seeds"] == 1 and r["clickers"]["dt"]["n_seeds"] == 2
    assert r["clicks_honoured"] == 1.0 and 0 <= r["never_falls"] <= 1 and r["nsr_iou1"] >= 0
    assert r["noc90_std"] >= 0 and r["noc90_p10"] <= r["noc90_p50"] <= r["noc90_p90"] <= 4
    centre = r["clickers"]["center"]["noc90"]
    assert r["delta_sb"] == pytest.approx((r["noc90"] - centre) / centre * 100)
    assert set(r["delta_sb_ci95_by_clicker"]) == {"dt", "worst:2", "best:2"}
    assert r["delta_sb_ci95"] == r["delta_sb_ci95_by_clicker"]["dt"]
    assert r["delta_sb_ci95"][0] <= r["delta_sb"] + 1e-9 and r["delta_sb"] - 1e-9 <= r["delta_sb_ci95"][1]
    worst, best = r["clickers"]["worst:2"]["noc90"], r["clickers"]["best:2"]["noc90"]
    assert r["delta_gr"] == {"2": pytest.approx((worst - best) / best * 100)}
    for o in r["objects"]:
        assert [run["seed"] for run in o["runs"]] == [0, 1] and len(o["runs"][0]["ious"]) == 6
        assert o["runs"][0]["clicks"] != o["runs"][1]["clicks"]  # two seeds, two trajectories
    assert (tmp_path / "w1.png").is_file()


def test_evaluate_iis_compare(tmp_path, capsys):
    """--compare: a paired bootstrap of two feature sources on the same clicks (the first click is shared)."""
    root = _tiny_grabcut(tmp_path)
    mod = _script()
    a, b = tmp_path / "lab.json", tmp_path / "rgb.json"
    assert mod.main(_grabcut_args(root, "--clicker", "dt", "--seeds", "2", "--workers", "1", "--output", str(a))) == 0
    args = _grabcut_args(root, "--clicker", "dt", "--seeds", "2", "--workers", "1", "--output", str(b), "--compare",
                         str(a))
    args[args.index("lab")] = "rgb"
    assert mod.main(args) == 0
    cmp = json.loads(b.read_text())["compare"]["by_clicker"]
    assert set(cmp) == {"dt", "center"} and cmp["dt"]["same_first_click"] == 1.0
    lo, hi = cmp["dt"]["noc90"]["ci95"]
    assert lo <= cmp["dt"]["noc90"]["mean_diff"] <= hi
    capsys.readouterr()
    assert mod.main(["--compare", str(a), str(a)]) == 0  # two results, no run
    assert "+0.00 [+0.00, +0.00]" in capsys.readouterr().out


def test_evaluate_iis_cli_convention(tmp_path, monkeypatch, capsys):
    """Default output path printed and never overwritten (a -2 suffix), an explicit existing --output refused unless
    --overwrite, the deprecated bsds alias, and bad arguments: exit 2 with one line."""
    root = _tiny_grabcut(tmp_path)
    mod = _script()
    monkeypatch.chdir(tmp_path)
    for expect in ("grabcut_lab_center.json", "grabcut_lab_center-2.json"):
        assert mod.main(_grabcut_args(root, "--workers", "1")) == 0
        assert f"outputs/iis/{expect}" in capsys.readouterr().out and (tmp_path / "outputs" / "iis" / expect).is_file()
    first = tmp_path / "outputs" / "iis" / "grabcut_lab_center.json"
    before = first.read_text()
    assert mod.main(_grabcut_args(root, "--workers", "1", "--output", str(first))) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert first.read_text() == before
    assert mod.main(_grabcut_args(root, "--workers", "1", "--output", str(first), "--overwrite")) == 0
    for bad, msg in [(["--clicker", "corner"], "unknown clicker"), (["--multi"], "bsds500"),
                     (["--workers", "0"], "--workers"), (["--seeds", "0", "--clicker", "dt"], "--seeds"),
                     (["--lone-click-segments", "-1"], "--lone-click-segments"), (["--grow", "-1"], "--grow"),
                     (["--grow", "2", "--grow-cap", "0.5"], "--grow-cap"), (["--boundary-tau", "0"], "boundary_tau"),
                     (["--boundary-geo", "-1"], "boundary_geo"), (["--lam", "-1"], "--lam"),
                     (["--touch-up-disc", "-1"], "touch_up_disc"), (["--reach", "-1"], "reach"),
                     (["--escalate-within", "-1"], "--escalate-within")]:
        assert mod.main(_grabcut_args(root, *bad)) == 2, bad
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
    write_fake_bsds(tmp_path / "bsds", n=1, split="val", size=(48, 64))
    assert mod.main(["--dataset", "bsds", "--root", str(tmp_path / "bsds"), "--max-clicks", "2", "--long-clicks", "0",
                     "--workers", "1", "--no-progress", "--output", str(tmp_path / "alias.json")]) == 0
    assert "deprecated" in capsys.readouterr().err
    assert json.loads((tmp_path / "alias.json").read_text())["dataset"] == "bsds500"


def test_evaluate_iis_multi(tmp_path):
    """--multi: whole-image annotation with the multi-label segmenter against the one-at-a-time baseline."""
    write_fake_bsds(tmp_path / "bsds", n=2, split="val", size=(48, 64))
    mod = _script()
    out = tmp_path / "multi.json"
    assert mod.main(["--dataset", "bsds500", "--root", str(tmp_path / "bsds"), "--multi", "--min-area", "0.02",
                     "--max-clicks", "5", "--workers", "1", "--no-progress", "--output", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n_images"] == 2 and r["n_objects"] == sum(im["n_objects"] for im in r["images"])
    for im in r["images"]:
        assert im["nci"] == sum(im["charged"]) and max(im["charged"]) <= 5 and im["n_objects"] <= im["nci"]
        assert im["nci_single"] == sum(im["noc_single"]) and len(im["final_ious"]) == im["n_objects"]
        assert im["nfo"] == sum(v < 0.85 for v in im["final_ious"])
    assert r["nci"] == pytest.approx(np.mean([im["nci"] for im in r["images"]]))
    assert r["clicks_honoured"] == 1.0 and r["clicks_honoured_single"] == 1.0
    assert 0 < r["covering_per_click"][-1] <= 1 and r["min_area"] == 0.02


def test_sample_sets_are_fresh_and_small_halves_real_photos():
    full, small = sample_sets(1), sample_sets(1, small=True)
    assert "synthetic" in full and set(full) == set(small)
    assert next(small["synthetic"])[1].shape[:2] == (96, 128)
    if "BSDS val" in full:
        big, half = next(full["BSDS val"]), next(small["BSDS val"])
        assert half[1].shape[:2] == tuple(-(-d // 2) for d in big[1].shape[:2]) and half[2].shape == half[1].shape[:2]
    assert len(list(sample_sets(1)["synthetic"])) == 1  # a new generator each call


def test_plot_click_tradeoff(tmp_path, capsys):
    """The trade-off figure of docs/CLICKS.md draws from its CSV, every row points at a paragraph that exists, an
    existing figure is not overwritten, and a CSV without a needed column is refused with one line."""
    mod = load_script("plot_click_tradeoff")
    rows = mod.read_rows(mod.ROOT / "docs/results/click_tradeoff.csv")
    doc = (mod.ROOT / "docs/CLICKS.md").read_text()
    assert all(f"**{r['section']}" in doc for r in rows), [r["section"] for r in rows if f"**{r['section']}" not in doc]
    assert {r["source"] for r in rows if r["default"] == "yes"} == {"lab", "bsds500-b0"}
    out = tmp_path / "fig.png"
    assert mod.main(["--output", str(out)]) == 0 and out.stat().st_size > 10_000
    assert mod.main(["--output", str(out)]) == 2 and "exists" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("source,update\nlab,x\n")
    assert mod.main(["--csv", str(bad), "--output", str(tmp_path / "b.png")]) == 2
    assert "missing column" in capsys.readouterr().err and not (tmp_path / "b.png").exists()
