"""Noise variance estimation for the shrinkage output."""

import numpy as np
import pytest
from skimage import data, img_as_float
from skimage.restoration import estimate_sigma
from skimage.util import random_noise

from sklearn_n2s import estimate_noise_variance


@pytest.mark.parametrize("shape", [(4096,), (128, 128), (24, 24, 24)])
def test_white_gaussian_noise_variance(shape, rng):
    X = rng.normal(0, 0.2, size=(2,) + shape)
    np.testing.assert_allclose(estimate_noise_variance(X), 0.04, rtol=0.1)


def test_channels_are_averaged(rng):
    X = rng.normal(0, 1, size=(1, 128, 128, 2)) * np.array([0.1, 0.3])
    assert estimate_noise_variance(X, channel_axis=-1)[0] == pytest.approx(0.05, rel=0.1)


def test_signal_dependent_noise_mean_variance():
    """Poisson noise on camera: the blockwise estimate finds the mean variance; the
    global MAD (skimage's estimate_sigma) follows the typical, lower, level."""
    clean = img_as_float(data.camera())
    noisy = random_noise(clean, mode="poisson", rng=0)
    true = np.mean((noisy - clean) ** 2)
    ours = estimate_noise_variance(noisy[np.newaxis])[0]
    assert ours == pytest.approx(true, rel=0.15)
    assert abs(estimate_sigma(noisy) ** 2 - true) > abs(ours - true)
