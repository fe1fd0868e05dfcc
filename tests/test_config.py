"""load_config takes what a user types: str keys keep the text where YAML 1.1 would read a bool or a number."""

import pytest

from featlib.config import ConfigError, load_config, save_config


def test_overrides_keep_typed_text_for_str_keys():
    cfg = load_config(None, ["mixed_precision=no", "output_dir=2024", "tracker=none", "pretrained=", "max_steps=7",
                             "lr=1e-3", "progress=false"])
    assert cfg.mixed_precision == "no" and cfg.output_dir == "2024" and cfg.tracker == "none"
    assert cfg.pretrained is None and cfg.max_steps == 7 and cfg.lr == 1e-3 and cfg.progress is False
    assert load_config(None, ["mixed_precision='no'"]).mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision must be no"):
        load_config(None, ["mixed_precision=yes"])  # "yes" as typed, then refused by validation, not by type
    with pytest.raises(ConfigError, match="'max_steps' must be"):
        load_config(None, ["max_steps=lots"])  # other types are still checked
    with pytest.raises(ConfigError, match="'progress' must be"):
        load_config(None, ["progress=maybe"])


def test_yaml_files_keep_typed_text_for_str_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("mixed_precision: no\noutput_dir: 2024\nmax_steps: 9\nprogress: no\nstrides: [1, 4]\n")
    cfg = load_config(path)
    assert cfg.mixed_precision == "no" and cfg.output_dir == "2024"
    assert cfg.max_steps == 9 and cfg.progress is False and cfg.strides == [1, 4]
    assert load_config(path, ["mixed_precision=bf16"]).mixed_precision == "bf16"
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml", ["mixed_precision=no"]).mixed_precision == "no"


def test_cross_fit_is_a_fold_of_bsds500_training_images(tmp_path):
    from conftest import write_fake_bsds
    from featlib.data.loaders import build_dataset

    write_fake_bsds(tmp_path / "bsds", n=7, split="train", size=(48, 64))
    base = ["data=bsds500", f"data_root={tmp_path / 'bsds'}", "holdout=1"]
    full = build_dataset(load_config(None, base)).ids
    folds = [build_dataset(load_config(None, [*base, f"cross_fit=[{k}, 2]"])).ids for k in (0, 1)]
    assert len(full) == 6 and [len(f) for f in folds] == [3, 3]
    assert not set(folds[0]) & set(folds[1]) and set(folds[0]) | set(folds[1]) == set(full)
    for bad in ("[2, 2]", "[0, 1]", "[0]"):
        with pytest.raises(ConfigError, match="cross_fit must be"):
            load_config(None, [*base, f"cross_fit={bad}"])
    with pytest.raises(ConfigError, match="cross_fit needs data=bsds500"):
        load_config(None, ["cross_fit=[0, 2]"])
