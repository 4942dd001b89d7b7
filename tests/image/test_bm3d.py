"""JInvariantBM3D (optional extra bm3d): the bm3d package through the grid cosets."""

import numpy as np
import pytest

from sklearn_n2s.image import JInvariantBM3D
from sklearn_n2s.utils.estimator_checks import check_j_invariance

bm3d = pytest.importorskip("bm3d")


def test_ordinary_is_bm3d_in_grey_levels_and_invariance(rng):
    X = rng.normal(120, 15, (1, 16, 16)).clip(0, 255).astype(np.uint8)
    # one thread: the package's multi-threaded sums differ between runs at float32
    # rounding, which an exact J-invariance probe would read as a leak
    est = JInvariantBM3D(sigma_psd=15.0, stride=2, num_threads=1).fit(X)
    profile = bm3d.BM3DProfile()
    profile.num_threads = 1
    expected = bm3d.bm3d(X[0] / 255.0, sigma_psd=15 / 255, profile=profile)
    np.testing.assert_allclose(est.transform(X)[0], expected, atol=1e-10)
    runs = [JInvariantBM3D(sigma_psd=15.0).fit(X).transform(X) for _ in range(3)]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-6)  # all cores: rounding only
    # bm3d costs about a second per call here: one interior probe
    assert check_j_invariance(est, X, coordinates=[(0, 5, 7)]) > 0


def test_two_dimensional_only(rng):
    with pytest.raises(ValueError, match="2-D images"):
        JInvariantBM3D().fit(rng.random((1, 8, 8, 8)))



def _risk_errors(step, seeds=range(6)):
    """Error of the ordinary output's estimated risk over noise draws, in units of the
    noise variance."""
    yy, xx = np.mgrid[:96, :96]
    clean = 0.3 + 0.4 * (((yy - 48) ** 2 + (xx - 32) ** 2) < 24**2) + 0.1 * np.sin(xx / 4.0)
    errors = []
    for seed in seeds:
        X = (clean + np.random.default_rng(seed).normal(0, 0.15, clean.shape))[np.newaxis]
        est = JInvariantBM3D(sigma_psd=0.15, noise_variance=0.15**2, num_threads=1).fit(X)
        est._divergence_step = step
        true = float(np.mean((est.transform(X)[0] - clean) ** 2))
        errors.append((est.estimated_risk(X) - true) / 0.15**2)
    return np.array(errors)


def test_risk_probe_is_wide_enough_for_block_matching():
    """BM3D's output jumps as block matches change: the divergence probe's step must
    span jumps for Stein's estimate to follow the true error from draw to draw (at a
    step of 0.01 sigma the root-mean-square error here is 0.032 noise variances, at
    the family's 0.1 sigma 0.012; the true error is 0.037)."""
    errors = _risk_errors(JInvariantBM3D._divergence_step)
    assert np.sqrt(np.mean(errors**2)) < 0.02, errors
