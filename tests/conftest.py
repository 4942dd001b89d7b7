"""Shared fixtures: small noisy images made in the test, and offline real images."""

import numpy as np
import pytest
from skimage import data, img_as_float
from skimage.util import random_noise


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def camera_noisy():
    """The 512x512 camera image and a noisy copy (Gaussian, sigma 0.1, unclipped so
    the noise is zero-mean everywhere), as (1, H, W)."""
    clean = img_as_float(data.camera())
    noisy = random_noise(clean, var=0.1**2, rng=0, clip=False)
    return clean[np.newaxis], noisy[np.newaxis]
