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
