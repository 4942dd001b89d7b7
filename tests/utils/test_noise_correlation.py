"""estimate_noise_correlation: the measured reach of correlated noise, on real images."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data
from skimage.util import img_as_float

from sklearn_n2s.utils._correlation import (
    NoiseCorrelation,
    estimate_noise_correlation,
)

_CLEAN = {"camera": img_as_float(data.camera())[::2, ::2],
          "coins": img_as_float(data.coins())}


def _noise(kind, shape, rng, sigma=0.08):
    white = rng.normal(size=shape)
    if kind == "white":
        noise = white
    elif kind == "x4":  # four-pixel line kernel along x: correlated up to lag 3
        noise = ndi.uniform_filter1d(white, 4, axis=-1)
    elif kind == "y3":
        noise = ndi.uniform_filter1d(white, 3, axis=-2)
    else:  # sCMOS-like row offsets
        noise = white + rng.normal(size=shape[:-1] + (1,))
    return noise / noise.std() * sigma


@pytest.mark.parametrize("name", sorted(_CLEAN))
@pytest.mark.parametrize("kind, extent", [
    ("white", (0, 0)), ("x4", (0, 3)), ("y3", (2, 0)), ("rows", (0, None)),
])
def test_extent_matches_the_noise(name, kind, extent):
    rng = np.random.default_rng(0)
    clean = _CLEAN[name]
    noisy = clean + _noise(kind, clean.shape, rng)
    result = estimate_noise_correlation(noisy[np.newaxis])
    assert isinstance(result, NoiseCorrelation)
    assert result.extent == extent
    assert result.correlation.shape == (2, 7)
    np.testing.assert_array_equal(result.correlation[:, 0], 1.0)


def test_uint16_units_and_single_image():
    rng = np.random.default_rng(2)
    clean = 1000 + 3000 * _CLEAN["coins"]
    noisy = np.clip(clean + _noise("x4", clean.shape, rng, sigma=120), 0, 65535)
    noisy = noisy.astype(np.uint16)
    before = noisy.copy()
    result = estimate_noise_correlation(noisy, spatial_ndim=2)
    assert result.extent == (0, 3)
    np.testing.assert_array_equal(noisy, before)


def test_line_correlation_measured_close_to_truth():
    rng = np.random.default_rng(3)
    noise = ndi.uniform_filter1d(rng.normal(size=(2, 256, 256)), 4, axis=-1)
    result = estimate_noise_correlation(noise)
    # a box of 4: correlation (4 - l) / 4 at lag l
    np.testing.assert_allclose(result.correlation[1, :5], [1, 0.75, 0.5, 0.25, 0], atol=0.04)
    assert np.all(result.stderr[:, 1:] < 0.05)


def test_one_and_three_dimensions():
    rng = np.random.default_rng(4)
    signal = np.sin(np.linspace(0, 12, 20000))
    assert estimate_noise_correlation((signal + 0.3 * rng.normal(size=20000))[None]).extent == (0,)
    coloured = ndi.uniform_filter1d(rng.normal(size=20000), 3)
    assert estimate_noise_correlation((signal + coloured)[None]).extent == (2,)
    volume = ndi.gaussian_filter(data.binary_blobs(48, n_dim=3, rng=1).astype(float), 2)
    white = estimate_noise_correlation((volume + 0.15 * rng.normal(size=volume.shape))[None])
    assert white.extent == (0, 0, 0)
    along_z = ndi.uniform_filter1d(rng.normal(size=volume.shape), 3, axis=0)
    assert estimate_noise_correlation((volume + 0.3 * along_z)[None]).extent == (2, 0, 0)


def test_channels_are_pooled():
    rng = np.random.default_rng(5)
    rgb = img_as_float(data.astronaut())[::2, ::2]
    noise = ndi.uniform_filter1d(rng.normal(size=rgb.shape), 3, axis=1) * 0.1
    result = estimate_noise_correlation((rgb + noise)[None], channel_axis=-1)
    assert result.extent == (0, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_lag": 0}, "max_lag"), ({"threshold": 1.5}, "threshold"),
    ({"threshold": True}, "threshold"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate_noise_correlation(np.zeros((1, 16, 16)), **kwargs)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="NaN|infinity"):
        estimate_noise_correlation(np.full((1, 16, 16), np.nan))
