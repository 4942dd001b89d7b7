"""What transform returns: the shrinkage of the invariant output towards the data."""

import numpy as np
import pytest
from skimage import data, img_as_float
from skimage.metrics import peak_signal_noise_ratio
from skimage.util import random_noise
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import (
    DonutMedian,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    SelfSupervisedScorer,
    WaveletDecompositionCache,
)
from sklearn_n2s.base import shrink_towards_data

CASES = {
    "DonutMedian": (DonutMedian(), "radius", [1, 2, 3, 4, 5]),
    "JInvariantGaussian": (JInvariantGaussian(), "sigma", [0.5, 1.0, 1.5, 2.0, 3.0]),
    "JInvariantWavelet": (JInvariantWavelet(memory=WaveletDecompositionCache()), "sigma",
                          [0.02, 0.04, 0.08, 0.12, 0.16]),
}


def test_shrinkage_formula(rng):
    X = rng.random((2, 8, 8))
    invariant = X + 0.5
    out, lam = shrink_towards_data(invariant, X, np.array([0.05, 1.0]))
    # L = 0.25 for both samples; lam = min(var, L) / L
    np.testing.assert_allclose(lam, [0.2, 1.0])
    np.testing.assert_allclose(out[0], X[0] + 0.2 * 0.5)
    np.testing.assert_allclose(out[1], invariant[1])


def test_shrink_weights_follow_the_noise(camera_noisy):
    _, noisy = camera_noisy
    est = JInvariantGaussian(sigma=1.0).fit(noisy)
    lam = est.shrinkage_weights(noisy)
    loss = est.self_supervised_loss(noisy)
    assert lam[0] == pytest.approx(0.01 / loss, rel=0.1)  # sigma^2 = 0.01
    known = est.set_params(noise_variance=0.01).shrinkage_weights(noisy)
    assert known[0] == pytest.approx(0.01 / loss, rel=1e-9)


def _psnr(clean, image):
    return peak_signal_noise_ratio(clean, np.clip(image, 0, 1), data_range=1.0)


@pytest.mark.parametrize("name", ["camera", "coins", "moon"])
@pytest.mark.parametrize("family", list(CASES))
def test_calibration_and_transform_at_the_pick(name, family):
    """Pick by self-supervision; compare with the best the grid offers against clean.

    - the invariant output at the pick is within 0.1 dB of the best invariant output;
    - ``transform`` at the pick is within 1 dB of the best output of any kind (ordinary,
      invariant or shrunk) at any grid value.
    """
    clean = img_as_float(getattr(data, name)())[np.newaxis]
    noisy = random_noise(clean, var=0.1**2, rng=1)
    estimator, param, grid = CASES[family]
    search = GridSearchCV(estimator, {param: grid}, scoring=SelfSupervisedScorer(),
                          cv=FullSplit()).fit(noisy)
    psnr = {}
    for value in grid:
        for output in ("ordinary", "invariant", "shrink"):
            est = estimator.set_params(**{param: value, "output": output}).fit(noisy)
            psnr[value, output] = _psnr(clean[0], est.transform(noisy)[0])
    pick = search.best_params_[param]
    best_invariant = max(psnr[v, "invariant"] for v in grid)
    assert best_invariant - psnr[pick, "invariant"] <= 0.1
    assert max(psnr.values()) - psnr[pick, "shrink"] <= 1.0
    # and the default output is transform's: search.best_estimator_ gives it
    np.testing.assert_allclose(
        _psnr(clean[0], search.best_estimator_.transform(noisy)[0]), psnr[pick, "shrink"]
    )
