"""JInvariantBilateral: one-pass J-invariant bilateral filter, checked against a
pixel-by-pixel reference; the ordinary output is scikit-image's denoise_bilateral."""

import itertools

import numpy as np
import pytest
from skimage.restoration import denoise_bilateral

from sklearn_n2s.image import JInvariantBilateral
from sklearn_n2s.image._bilateral import bilateral_invariant, window_size
from sklearn_n2s.masking import neighbour_interpolation
from sklearn_n2s.utils.estimator_checks import check_denoiser


def reference(x, sigma_color, sigma_spatial):
    H, W = x.shape
    r = window_size(sigma_spatial) // 2
    guide = neighbour_interpolation(x[np.newaxis])[0]
    out = np.empty_like(x)
    for i in itertools.product(range(H), range(W)):
        num = den = 0.0
        for d in itertools.product(range(-r, r + 1), repeat=2):
            j = (i[0] + d[0], i[1] + d[1])
            if d == (0, 0) or not (0 <= j[0] < H and 0 <= j[1] < W):
                continue
            w = np.exp(-(d[0] ** 2 + d[1] ** 2) / (2 * sigma_spatial**2)
                       - (guide[i] - x[j]) ** 2 / (2 * sigma_color**2))
            num, den = num + w * x[j], den + w
        out[i] = num / den
    return out


def test_one_pass_equals_the_definition(rng):
    x = rng.random((9, 10))
    np.testing.assert_allclose(bilateral_invariant(x, sigma_color=0.2, sigma_spatial=1.0),
                               reference(x, 0.2, 1.0), atol=1e-12)


@pytest.mark.parametrize("X, params", [
    (np.random.default_rng(1).integers(0, 65536, (2, 12, 13)).astype(np.uint16),
     dict(sigma_color=8000.0)),
    (np.random.default_rng(3).random((1, 9, 10, 3)),
     dict(sigma_color=0.3, sigma_spatial=2.0, channel_axis=-1)),
])
def test_j_invariance_and_contract(X, params):
    check_denoiser(JInvariantBilateral(**params), X)


def test_ordinary_is_skimage_and_3d_refused(rng):
    X = rng.integers(0, 256, (1, 16, 17)).astype(np.uint8)
    out = JInvariantBilateral(sigma_color=25.0, output="ordinary").fit(X).transform(X)
    expected = denoise_bilateral(X[0] / 255, sigma_color=25 / 255, sigma_spatial=1.0,
                                 mode="reflect")
    # scikit-image reads its colour weights from a 10000-bin table: a rounding
    # difference in the float image can move a distance to the next bin
    np.testing.assert_allclose(out[0], expected, atol=1e-4)
    with pytest.raises(ValueError, match="2-D images"):
        JInvariantBilateral().fit(rng.random((1, 5, 6, 7)))


def test_blockwise_matches(rng):
    da = pytest.importorskip("dask.array")
    X = rng.random((1, 40, 36))
    est = JInvariantBilateral(sigma_color=0.2, output="invariant").fit(X)
    lazy = est.transform(da.from_array(X, chunks=(1, 20, 18))).compute()
    np.testing.assert_allclose(lazy, est.transform(X), atol=1e-12)
