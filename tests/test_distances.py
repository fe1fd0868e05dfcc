import numpy as np
import pytest
import torch

from featlib.distances import DistanceMesh, distance_mesh, lab_features


def _two_halves(h=32, w=40, c=3, split=20):
    f = np.zeros((c, h, w), np.float32)
    f[:, :, split:] = 1.0
    return f


def test_array_input_is_stride_one_and_normalised():
    mesh = distance_mesh(_two_halves())
    assert mesh.shape == (32, 40)
    assert mesh.dy.shape == (31, 40) and mesh.dx.shape == (32, 39)
    # the only boundary is between columns 19 and 20; distance / sqrt(C) = 1 for a unit step in every channel
    assert np.allclose(mesh.dx[:, 19], 1.0)
    assert np.count_nonzero(mesh.dx) == 32 and np.count_nonzero(mesh.dy) == 0


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_coarse_stride_boundary_lands_on_the_right_pixel_edge(stride):
    h, w = 32, 32
    cells = (h // stride, w // stride)
    f = np.zeros((3 * stride * stride, *cells), np.float32)
    f[:, :, cells[1] // 2:] = 1.0  # boundary between cell columns c/2-1 and c/2 = pixel columns 15|16
    mesh = distance_mesh({stride: f}, size=(h, w))
    peak_col = mesh.dx.mean(0).argmax()
    assert peak_col == 15
    assert np.isclose(mesh.dx[:, 15].max(), 1.0)
    assert mesh.dy.max() == 0


def test_dict_of_tensors_with_batchless_shapes_and_weights():
    torch.manual_seed(0)
    feats = {1: torch.rand(3, 16, 16), 2: torch.rand(12, 8, 8)}
    only1 = distance_mesh(feats, mesh_weights={1: 1.0, 2: 0.0})
    ref = distance_mesh(feats[1].numpy())
    assert np.allclose(only1.dy, ref.dy) and np.allclose(only1.dx, ref.dx)
    both = distance_mesh(feats)
    half = distance_mesh(feats, mesh_weights={1: 1.0, 2: 1.0})
    assert np.allclose(both.dx, half.dx)


def test_edges_enumerate_every_neighbour_pair_once():
    mesh = DistanceMesh(dy=np.ones((2, 3), np.float32), dx=2 * np.ones((3, 2), np.float32))
    i, j, d = mesh.edges()
    assert len(i) == 2 * 3 + 3 * 2
    pairs = set(zip(i.tolist(), j.tolist()))
    assert len(pairs) == len(i)
    assert all(abs(a - b) in (1, 3) for a, b in pairs)
    assert sorted(set(d.tolist())) == [1.0, 2.0]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 8)), "C, h, w"),
        (np.full((3, 8, 8), np.nan), "NaN"),
        (np.zeros((3, 1, 8)), "at least 2"),
    ],
)
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        distance_mesh(bad)


def test_bad_weights():
    f = {1: np.zeros((3, 8, 8))}
    with pytest.raises(ValueError, match="not in features"):
        distance_mesh(f, mesh_weights={4: 1.0})
    with pytest.raises(ValueError, match="positive"):
        distance_mesh(f, mesh_weights={1: 0.0})


def test_lab_features_range_and_errors():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    lab = lab_features(img)
    assert lab.shape == (3, 10, 12) and lab.dtype == np.float32
    assert lab.min() >= -0.01 and lab.max() <= 1.01
    with pytest.raises(ValueError, match="RGB"):
        lab_features(img[..., 0])


@pytest.mark.parametrize("stride", [2, 4, 16])
@pytest.mark.parametrize("size", [(64, 64), (50, 37), (17, 40)])
def test_pixel_edge_interpolation_matches_scipy_bilinear(stride, size):
    """The separable interpolation equals scipy's bilinear map_coordinates (clamped ends) on the same grid."""
    from scipy import ndimage

    from featlib.distances import _to_pixel_edges

    h, w = size
    rng = np.random.default_rng(stride)
    ch, cw = -(-h // stride), -(-w // stride)
    for axis, shape in ((0, (ch - 1, cw)), (1, (ch, cw - 1))):
        cell_d = rng.random(shape).astype(np.float32)
        if axis == 0:
            rows = (np.arange(h - 1) + 1) / stride - 1
            cols = (np.arange(w) + 0.5) / stride - 0.5
        else:
            rows = (np.arange(h) + 0.5) / stride - 0.5
            cols = (np.arange(w - 1) + 1) / stride - 1
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        ref = ndimage.map_coordinates(cell_d, [rr.ravel(), cc.ravel()], order=1, mode="nearest")
        out = _to_pixel_edges(cell_d, stride, size, axis)
        assert out.shape == (len(rows), len(cols))
        np.testing.assert_allclose(out, ref.reshape(out.shape), atol=1e-5)
