"""JInvariantTV: scikit-image's denoise_tv_chambolle through the grid cosets."""

import numpy as np
import pytest
from skimage.restoration import denoise_tv_chambolle

from sklearn_n2s.image import JInvariantTV
from sklearn_n2s.utils.estimator_checks import check_denoiser


def test_ordinary_is_skimage_with_weight_in_grey_levels(rng):
    X = rng.integers(0, 256, (2, 16, 18)).astype(np.uint8)
    out = JInvariantTV(weight=20.0).fit(X).transform(X)  # ordinary by default
    # by default a fixed number of iterations (eps=0), see the next test
    for i in range(2):
        expected = denoise_tv_chambolle(X[i] / 255, weight=20 / 255, eps=0, max_num_iter=100)
        np.testing.assert_allclose(out[i], expected, atol=1e-12)
    stopped = JInvariantTV(weight=20.0, eps=2e-4, max_num_iter=200).fit(X).transform(X)
    np.testing.assert_allclose(stopped[0], denoise_tv_chambolle(X[0] / 255, weight=20 / 255),
                               atol=1e-12)


def test_ordinary_output_moves_no_more_than_the_data():
    """TV denoising is a proximal map, which never moves further than its input: Stein's
    risk estimate (estimated_risk) relies on that smoothness. scikit-image's default
    stopping rule breaks it (its iteration count jumps with the data: a 1e-3 nudge
    moved the output 21 times as far); the fixed iteration count keeps it."""
    yy, xx = np.mgrid[:64, :64]
    clean = 0.3 + 0.4 * (((yy - 32) ** 2 + (xx - 20) ** 2) < 256)
    ratios = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X = (clean + rng.normal(0, 0.1, clean.shape))[np.newaxis]
        nudge = rng.normal(0, 1e-3, X.shape)
        for weight in (0.05, 0.08, 0.12):
            est = JInvariantTV(weight=weight).fit(X)
            moved = est.transform(X + nudge) - est.transform(X)
            ratios.append(np.linalg.norm(moved) / np.linalg.norm(nudge))
    assert max(ratios) <= 1.0, max(ratios)


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
