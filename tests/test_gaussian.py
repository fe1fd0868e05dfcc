"""Gaussian derivative filters by banded block products (featlib.gaussian) against scipy.ndimage's."""

import numpy as np
import pytest
from scipy import ndimage

from featlib.gaussian import correlate, gaussian_derivatives, gaussian_smooth, gaussian_weights

ORDERS = ((0, 0), (1, 0), (0, 1), (2, 0), (0, 2), (1, 1))


@pytest.mark.parametrize("shape", [(2, 7, 3), (3, 40, 33), (1, 64, 97), (5, 6)])
@pytest.mark.parametrize("sigma", [0.7, 1.5, 2.5, 5.0])
def test_matches_scipy_gaussian_filter(shape, sigma):
    """Every order, leading axes untouched, images narrower than the kernel (repeated mirroring at the border):
    scipy's values to float32 rounding."""
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    lead = (0,) * (x.ndim - 2)
    for (oy, ox), y in zip(ORDERS, gaussian_derivatives(x, sigma, ORDERS)):
        ref = ndimage.gaussian_filter(x, lead + (sigma, sigma), order=lead + (oy, ox))
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_allclose(y, ref, atol=1e-5, err_msg=f"order {(oy, ox)}")
    np.testing.assert_allclose(gaussian_smooth(x, sigma), ndimage.gaussian_filter(x, lead + (sigma, sigma)),
                               atol=1e-5)


def test_weights_and_signs():
    """Order 0 sums to 1; order 1 correlates a ramp to its slope (positive for a rising ramp), order 2 a parabola
    to its curvature (at its vertex: the truncated kernel's sums are not exactly 0, as scipy's are not)."""
    w0, w1, w2 = (gaussian_weights(2.0, k) for k in (0, 1, 2))
    assert len(w0) == 2 * int(4 * 2.0 + 0.5) + 1 and np.isclose(w0.sum(), 1)
    ramp = np.tile(np.arange(60, dtype=np.float32) * 0.5, (4, 1))
    assert np.allclose(correlate(ramp, w1, -1)[:, 20:40], 0.5, atol=1e-3)  # the kernel truncated at 4 sigma: 0.4998
    parabola = np.tile(0.5 * (np.arange(61, dtype=np.float32) - 30) ** 2, (4, 1))
    assert np.allclose(correlate(parabola, w2, -1)[:, 30], 1.0, atol=1e-2)
    assert np.allclose(correlate(ramp.T.copy(), w1, -2)[20:40], 0.5, atol=1e-3)


def test_bad_arguments_raise():
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="sigma > 0"):
        gaussian_weights(0.0)
    with pytest.raises(ValueError, match="order"):
        gaussian_weights(1.0, 3)
    with pytest.raises(ValueError, match="axis"):
        correlate(x, gaussian_weights(1.0), 0)
    with pytest.raises(ValueError, match="float"):
        gaussian_derivatives(np.zeros((4, 4), np.uint8), 1.0, ((0, 0),))
    with pytest.raises(ValueError, match="float"):
        gaussian_smooth(np.zeros(4, np.float32), 1.0)
