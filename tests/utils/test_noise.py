"""Noise variance estimation for the shrinkage output."""

import numpy as np
import pytest
from skimage import data, img_as_float
from skimage.restoration import estimate_sigma
from skimage.util import random_noise

from sklearn_n2s import estimate_noise_variance
from sklearn_n2s.utils._noise import noise_variance_weights


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


def test_a_small_image_is_cut_into_enough_tiles_for_photon_noise():
    """A 128 x 128 crop of astronaut (8-bit grey) with photon noise: tiles of 48 saw
    96 x 96 of it in four tiles, one intensity bin, and put the mean variance at 46 %
    of the truth, which left transform's outputs near the noisy data; a quarter of the
    axis (tiles of 32: sixteen, four bins) finds it within 20 %."""
    from skimage import color, img_as_ubyte

    from sklearn_n2s.utils._noise import (
        noise_tile_shape,
        pool_tile_statistics,
        tile_statistics,
    )

    clean = img_as_float(img_as_ubyte(color.rgb2gray(data.astronaut())))[:128, :128]
    noisy = random_noise(clean, mode="poisson", rng=3)
    true = np.mean((noisy - clean) ** 2)
    assert noise_tile_shape(noisy.shape) == (32, 32)
    ours = estimate_noise_variance(noisy[np.newaxis])[0]
    assert ours == pytest.approx(true, rel=0.2)
    large_tiles = np.ldexp(*pool_tile_statistics(*tile_statistics(noisy, (48, 48))))
    assert abs(large_tiles - true) > 2 * abs(ours - true)


def test_estimate_pools_tile_statistics_so_any_tile_aligned_split_gives_it(rng):
    """Issue 10, item 7: the blockwise path computes the same estimate from its chunks."""
    from sklearn_n2s.utils._noise import (
        noise_tile_shape,
        pool_tile_statistics,
        tile_statistics,
    )

    image = rng.normal(0, 0.2, (300, 250)) + np.linspace(0, 3, 250)
    tile = noise_tile_shape(image.shape)
    assert tile == (48, 48)
    whole = estimate_noise_variance(image[np.newaxis])[0]
    # pieces that start on tile boundaries; the last ones hold the incomplete tiles
    rows, cols = [0, 96, 144, 300], [0, 48, 240, 250]
    sigmas, levels = [], []
    for r0, r1 in zip(rows[:-1], rows[1:]):
        for c0, c1 in zip(cols[:-1], cols[1:]):
            s, lv = tile_statistics(image[r0:r1, c0:c1], tile)
            sigmas.append(s)
            levels.append(lv)
    # in any order
    order = rng.permutation(len(sigmas))
    pooled = np.ldexp(*pool_tile_statistics(np.concatenate([sigmas[i] for i in order]),
                                            np.concatenate([levels[i] for i in order])))
    assert pooled == whole
    assert whole == pytest.approx(0.04, rel=0.1)


@pytest.mark.parametrize("shape", [(2, 5), (1, 1, 7), (3, 3, 3), (40,)])
def test_tiny_images_get_a_finite_estimate(shape, rng):
    variance = estimate_noise_variance(rng.normal(size=(1,) + shape))[0]
    assert np.isfinite(variance) and variance >= 0


def test_huge_values_scale_exactly(rng):
    X = rng.normal(0, 0.2, (1, 128, 128))
    scaled = estimate_noise_variance(np.ldexp(X, 500))[0]
    assert np.isfinite(scaled)
    assert scaled == np.ldexp(estimate_noise_variance(X)[0], 1000)


def test_variance_weights_reach_pixels_beyond_the_tiles_intensities():
    """Photon counts on a texture finer than a tile: the tiles' means span 110-170
    counts, the pixels 20-260. The weights follow each pixel's variance across the
    whole range (bright over dark: 3.1 in truth), not just the tiles' (joining the bins
    up gave 1.7); under Gaussian noise on the same image they stay near 1."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    clean = 110 + 90 * np.sin(2 * np.pi * xx / 16) + 60 * (yy / 255.0)
    weights = noise_variance_weights(rng.poisson(clean).astype(float), clean)
    bright, dark = clean > 150, clean < 100
    assert weights.mean() == pytest.approx(1.0)
    assert weights[bright].mean() / weights[dark].mean() > 2.5
    flat = noise_variance_weights(clean + rng.normal(0, 10, clean.shape), clean)
    assert np.all(np.abs(flat - 1) < 0.3)
