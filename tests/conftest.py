import contextlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from skimage.morphology import thin

from featlib.boundaries import bsds_boundaries
from featlib.data.synthetic import make_scene
from featlib.utils import shared_dir


def load_script(name: str):
    """``scripts/<name>.py`` imported as a module (its ``main(argv)`` callable in the test's process), under the
    module name ``featlib_script_<name>``."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"featlib_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder; tests that need it skip with a reason when it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is not beside this checkout (set FEATLIB_SHARED to point at it)")
    return path


def write_fake_bsds(root: Path, n: int = 2, split: str = "val", size=(48, 64)) -> list[str]:
    """A BSDS500-layout folder of synthetic scenes: images/<split>/<i>.jpg and groundTruth/<split>/<i>.mat with two
    annotators (the scene's instances, and foreground vs background). Returns the ids."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        scene = make_scene(np.random.default_rng(i), size)
        Image.fromarray(scene.image).save(root / "images" / split / f"{i}.jpg", quality=95)
        cell = np.empty((1, 2), dtype=object)
        for a, seg in enumerate([scene.instances + 1, (scene.instances > 0) + 1]):
            # BSDS's Boundaries are the thinned seg2bdry of the segmentation
            cell[0, a] = {"Segmentation": seg.astype(np.uint16), "Boundaries": thin(bsds_boundaries(seg))}
        savemat(root / "groundTruth" / split / f"{i}.mat", {"groundTruth": cell})
    return [str(i) for i in range(n)]


HOST_READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist")


@pytest.fixture
def no_host_reads(monkeypatch):
    """``with no_host_reads(): ...``: inside, every tensor-to-Python conversion raises AssertionError (what a device
    sync looks like from Python), so a test proves a hot path never reads a tensor value on the host."""

    def raiser(name):
        def raise_(self, *a, **k):
            raise AssertionError(f"Tensor.{name} read a value on the host")
        return raise_

    @contextlib.contextmanager
    def forbidden():
        with monkeypatch.context() as m:
            for name in HOST_READS:
                m.setattr(torch.Tensor, name, raiser(name))
            yield

    return forbidden


def two_object_scene(size=64, seed=0):
    """A red disk and a blue square on a noisy grey background -> (image uint8 [H, W, 3], disk mask, square mask):
    the click tests' scene."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size * 0.4) ** 2 + (xx - size * 0.4) ** 2 < (size * 0.22) ** 2
    square = (yy > size * 0.7) & (xx > size * 0.65) & (yy < size * 0.92) & (xx < size * 0.92)
    img = np.full((size, size, 3), 128.0)
    img[disk] = (200, 40, 40)
    img[square] = (40, 40, 200)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), disk, square
