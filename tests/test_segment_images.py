import importlib.util
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.segmentation import find_boundaries

from featlib.checkpoint import save_model
from featlib.data.synthetic import make_scene
from featlib.model import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def seg(monkeypatch):
    """The script as a module, its main() run in this process on the CPU (seconds, not a subprocess)."""
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    spec = importlib.util.spec_from_file_location("featlib_segment_images", ROOT / "scripts" / "segment_images.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its NamedTuple looks its module up there
    spec.loader.exec_module(module)
    return module


def _image(seed: int) -> Image.Image:
    return Image.fromarray(make_scene(np.random.default_rng(seed), (48, 64)).image)


def _encoded(seed: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    _image(seed).save(buf, fmt)
    return buf.getvalue()


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _run(seg, src, out, *extra) -> int:
    return seg.main(["--features", "lab", "--input", str(src), "--output", str(out), "--levels", "3", *extra])


def test_segment_images_outputs_resume_and_skips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(make_scene(np.random.default_rng(i), (48, 64)).image).save(src / f"img{i}.png")
    (src / "broken.jpg").write_bytes(b"not an image")
    ckpt = tmp_path / "model.pt"
    save_model(build_model("b0", strides=(1, 4)).eval(), ckpt)
    cmd = [sys.executable, str(ROOT / "scripts" / "segment_images.py"), "--features", str(ckpt), "--input", str(src),
           "--output", str(tmp_path / "out"), "--levels", "3,8", "--save-features"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    z = np.load(tmp_path / "out" / "img0.npz")
    assert z["ucm"].shape == (97, 129) and z["labels_3"].max() == 2 and z["labels_8"].max() == 7
    assert z["features_4"].dtype == np.float16 and z["features_4"].shape == (48, 12, 16)
    assert "broken.jpg" in (tmp_path / "out" / "skipped_rank0.txt").read_text()
    before = (tmp_path / "out" / "img0.npz").stat().st_mtime_ns
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    assert (tmp_path / "out" / "img0.npz").stat().st_mtime_ns == before  # done outputs are skipped


def test_png_overlays_per_level(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    scene = make_scene(np.random.default_rng(0), (48, 64))
    Image.fromarray(scene.image).save(src / "a.png")
    cmd = [sys.executable, str(ROOT / "scripts" / "segment_images.py"), "--features", "lab-smooth", "--input", str(src),
           "--output", str(tmp_path / "out"), "--levels", "2,6", "--png"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    labels = np.load(tmp_path / "out" / "a.npz")["labels_6"]
    png = np.asarray(Image.open(tmp_path / "out" / "a_6.png"))
    assert png.shape == (48, 64, 3) and png.dtype == np.uint8
    # boundaries of the saved labels are white, the rest is the photo tinted
    inner = find_boundaries(labels, mode="inner")
    assert (png[inner] == 255).all() and not (png[~inner] == 255).all(axis=-1).all()
    assert (tmp_path / "out" / "a_2.png").is_file() and not list((tmp_path / "out").glob(".*tmp*"))


def test_same_stem_in_subfolders_both_written_and_resumed(seg, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i, sub in enumerate(["a", "b", "b/c"]):
        (src / sub).mkdir(parents=True)
        _image(i).save(src / sub / "0001.jpg")
    assert _run(seg, src, out, "--png") == 0
    written = {p: (out / p).stat().st_mtime_ns for p in ["a/0001.npz", "b/0001.npz", "b/c/0001.npz"]}
    assert (out / "b" / "c" / "0001_3.png").is_file() and not list(out.rglob(".*tmp*"))
    assert not np.array_equal(np.load(out / "a/0001.npz")["ucm"], np.load(out / "b/0001.npz")["ucm"])
    assert _run(seg, src, out, "--png") == 0  # resume: both same-stem outputs are recognised as done
    assert {p: (out / p).stat().st_mtime_ns for p in written} == written
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == sorted(written)


def test_glob_of_images_is_named_relative_to_its_fixed_prefix(seg, tmp_path):
    for sub in ["a", "b"]:
        (tmp_path / "in" / sub).mkdir(parents=True)
        _image(0).save(tmp_path / "in" / sub / "x.png")
    inputs = seg.list_inputs(str(tmp_path / "in" / "*" / "*.png"))
    assert [name for name, _ in inputs.files] == ["a/x", "b/x"] and inputs.tars == []
    assert [name for name, _ in seg.list_inputs(str(tmp_path / "in" / "a" / "x.png")).files] == ["x"]


def test_colliding_inputs_are_refused_and_nothing_is_written(seg, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _image(0).save(src / "x.jpg")
    _image(1).save(src / "x.png")
    _image(2).save(src / "y.png")
    assert _run(seg, src, out) == 2
    err = capsys.readouterr().err
    assert "collision" in err and "'x'" in err and "x.jpg" in err and "x.png" in err and "y.png" not in err
    assert not out.exists()
    with pytest.raises(ValueError, match="collision"):
        seg.list_inputs(str(src))
    # the same member name in two tars of the same stem from different folders
    for folder in ["d1", "d2"]:
        _write_tar(tmp_path / "shards" / folder / "sa_000000.tar", [("0.png", _encoded(0))])
    assert _run(seg, tmp_path / "shards" / "*" / "*.tar", out) == 2
    err = capsys.readouterr().err
    assert "sa_000000" in err and "d1" in err and "d2" in err and not out.exists()
    # a loose image that would land in a tar's output folder
    _write_tar(tmp_path / "mixed" / "s.tar", [("0.png", _encoded(0))])
    (tmp_path / "mixed" / "s").mkdir()
    _image(0).save(tmp_path / "mixed" / "s" / "0.png")
    with pytest.raises(ValueError, match="output folder of"):
        seg.list_inputs(str(tmp_path / "mixed" / "**"))


def test_tar_is_streamed_once_and_named_by_member_path(seg, tmp_path, monkeypatch):
    members = [("./imgs/0.png", _encoded(0)), ("imgs/0.json", b"{}"), ("imgs/1.jpg", _encoded(1, "JPEG")),
               ("sub/dir/2.png", _encoded(2)), ("broken.png", b"not an image"),
               ("imgs/0.jpg", _encoded(3, "JPEG")),  # same output name as ./imgs/0.png: listed, not written
               ("../escape.png", _encoded(4))]
    shard = _write_tar(tmp_path / "shards" / "sa_000007.tar", members)
    opened = []
    real_open = tarfile.open

    def counting_open(*args, **kwargs):
        opened.append((str(args[0] if args else kwargs.get("name")), kwargs.get("mode", args[1] if len(args) > 1
                                                                            else "r")))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(seg.tarfile, "open", counting_open)
    out = tmp_path / "out"
    assert _run(seg, shard, out) == 0
    assert opened == [(str(shard), "r|*")]  # one sequential pass, no per-member re-open
    done = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz"))
    assert done == ["sa_000007/imgs/0.npz", "sa_000007/imgs/1.npz", "sa_000007/sub/dir/2.npz"]
    assert np.load(out / "sa_000007/imgs/1.npz")["labels_3"].shape == (48, 64)
    skipped = (out / "skipped_rank0.txt").read_text()
    assert "broken.png" in skipped and "imgs/0.jpg" in skipped and "escape.png" in skipped
    assert not (tmp_path / "escape.npz").exists()
    # re-run: still one pass, finished images are not even decoded
    opened.clear()
    decoded = []
    real_decode = seg.decode
    monkeypatch.setattr(seg, "decode", lambda data: decoded.append(1) or real_decode(data))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert _run(seg, shard, out) == 0
    assert opened == [(str(shard), "r|*")] and len(decoded) == 1  # only broken.png is retried
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == before


def test_split_covers_every_tar_and_image_exactly_once(seg):
    inputs = seg.Inputs([(f"f{i}", f"f{i}.png") for i in range(7)], [f"t{i}.tar" for i in range(5)])
    for world in (1, 2, 3, 8):
        shares = [seg.split_for_rank(inputs, r, world) for r in range(world)]
        assert sorted(t for s in shares for t in s.tars) == sorted(inputs.tars)
        assert [f for s in shares for f in s.files] == inputs.files  # contiguous slices, in order
        assert all(s.tars == inputs.tars[r::world] for r, s in enumerate(shares))
    assert seg.split_for_rank(inputs, 1, 2).tars == ["t1.tar", "t3.tar"]
    assert seg.split_for_rank(inputs, 7, 8) == seg.Inputs([], [])  # nothing to do: an empty share
    with pytest.raises(ValueError, match="rank 2"):
        seg.split_for_rank(inputs, 2, 2)


def test_a_rank_with_nothing_to_do_exits_cleanly(seg, tmp_path, monkeypatch, capsys):
    _write_tar(tmp_path / "s.tar", [("0.png", _encoded(0))])
    monkeypatch.setattr(seg, "split_for_rank", lambda inputs, rank, world: seg.Inputs([], []))
    assert _run(seg, tmp_path / "s.tar", tmp_path / "out") == 0
    assert "nothing to do" in capsys.readouterr().out and not list((tmp_path / "out").rglob("*.npz"))


def test_max_side_reads_large_photos_at_a_working_resolution(seg, tmp_path, capsys):
    """--max-side: the map of an image over it at that size (the hierarchy still at full size: fewer initial
    regions, full-size outputs); 0 keeps full size; a grouping or map without a working resolution exits 2."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(make_scene(np.random.default_rng(1), (96, 128)).image).save(src / "a.png")
    assert _run(seg, src, tmp_path / "small", "--max-side", "64") == 0
    assert _run(seg, src, tmp_path / "full", "--max-side", "0") == 0
    small, full = np.load(tmp_path / "small" / "a.npz"), np.load(tmp_path / "full" / "a.npz")
    assert small["ucm"].shape == full["ucm"].shape == (193, 257) and small["labels_3"].shape == (96, 128)
    assert not np.array_equal(small["ucm"], full["ucm"])
    for bad in (["--max-side", "8"], ["--max-side", "64", "--grouping", "mesh"]):
        assert seg.main(["--features", "lab", "--input", str(src), "--output", str(tmp_path / "x"), *bad]) == 2
        assert "max_side" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything is written
