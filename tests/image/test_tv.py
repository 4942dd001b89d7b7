"""JInvariantTV: scikit-image's denoise_tv_chambolle through the grid cosets."""

import numpy as np
import pytest
from skimage.restoration import denoise_tv_chambolle

from sklearn_n2s.image import JInvariantTV
from sklearn_n2s.utils.estimator_checks import check_denoiser


def test_ordinary_is_skimage_with_weight_in_grey_levels(rng):
    X = rng.integers(0, 256, (2, 16, 18)).astype(np.uint8)
    out = JInvariantTV(weight=20.0).fit(X).transform(X)  # ordinary by default
    for i in range(2):
        np.testing.assert_allclose(out[i], denoise_tv_chambolle(X[i] / 255, weight=20 / 255),
                                   atol=1e-12)


@pytest.mark.parametrize("X, params", [
    (np.random.default_rng(1).integers(0, 65536, (1, 12, 13)).astype(np.uint16),
     dict(weight=5000.0)),
    (np.random.default_rng(2).random((1, 6, 7, 6)), dict(weight=0.2)),
    (np.random.default_rng(3).random((1, 9, 8, 3)), dict(weight=0.2, channel_axis=-1)),
    (np.random.default_rng(4).random((3, 20)), dict(weight=0.2, spatial_ndim=1)),
])
def test_j_invariance_and_contract(X, params):
    check_denoiser(JInvariantTV(**params), X)


def test_default_grid_in_data_units_and_refusals(rng):
    X = rng.normal(30000, 2000, (1, 64, 64)).clip(0, 65535).astype(np.uint16)
    grid = JInvariantTV.default_grid(X)["weight"]
    assert 1500 < grid[3] < 2500  # the estimated noise sigma, in grey levels
    with pytest.raises(ValueError, match="cosets=20"):
        JInvariantTV(cosets=20).fit(X)
    with pytest.raises(TypeError, match="reach"):
        JInvariantTV()._blockwise_halo((64, 64))
