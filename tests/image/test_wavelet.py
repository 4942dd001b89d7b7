"""JInvariantWavelet: wraps skimage's denoise_wavelet; batched masking equals the plain loop."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.restoration import denoise_wavelet

from sklearn_n2s import JInvariantWavelet
from sklearn_n2s.image._wavelet import DECOMPOSITIONS
from sklearn_n2s.masking import invariant_predict


def plain_invariant(est, X):
    """The unbatched definition: mask each coset, run skimage, keep the coset."""
    return invariant_predict(lambda Xm: est._denoise(Xm), X, stride=est.stride,
                             fill=est.fill, channel_axis=est.channel_axis)[0]


def test_ordinary_output_is_skimage_denoise_wavelet(rng):
    X = rng.random((2, 32, 30))
    est = JInvariantWavelet(sigma=0.1, output="ordinary").fit(X)
    out = est.transform(X)
    for i in range(2):
        np.testing.assert_allclose(out[i], denoise_wavelet(X[i], sigma=0.1), atol=1e-12)


@pytest.mark.parametrize(
    "shape, params",
    [
        ((1, 40, 36), dict(sigma=0.1)),  # Haar fast path
        ((1, 37, 41), dict()),  # Haar, sigma estimated per masked image
        ((2, 30, 30), dict(sigma=0.05, method="VisuShrink", mode="hard")),
        ((1, 33, 32), dict(sigma=0.1, wavelet="db2")),  # generic batched path
        ((1, 30, 31), dict(sigma=0.1, stride=3)),  # odd stride: generic path
        ((2, 12, 14, 13), dict(sigma=0.1)),  # 3-D
        ((3, 64), dict(sigma=0.1)),  # 1-D signals
    ],
)
def test_batched_equals_plain_loop(shape, params, rng):
    X = rng.random(shape)
    est = JInvariantWavelet(**params).fit(X)
    np.testing.assert_allclose(est.invariant_transform(X), plain_invariant(est, X), atol=1e-12)


def test_colour_channels_and_ycbcr(rng):
    X = rng.random((1, 24, 26, 3))
    est = JInvariantWavelet(sigma=0.1, channel_axis=-1).fit(X)
    np.testing.assert_allclose(est.invariant_transform(X), plain_invariant(est, X), atol=1e-12)
    est = JInvariantWavelet(sigma=0.1, channel_axis=-1, convert2ycbcr=True).fit(X)
    assert est.invariant_transform(X).shape == X.shape


@settings(max_examples=15, deadline=None)
@given(
    index=st.tuples(st.integers(0, 19), st.integers(0, 20)),
    delta=st.floats(-5, 5, allow_nan=False),
    sigma=st.sampled_from([None, 0.05, 0.2]),
    wavelet=st.sampled_from(["db1", "db2", "sym3"]),
)
def test_wavelet_invariant_output_is_j_invariant(index, delta, sigma, wavelet):
    X = np.random.default_rng(3).random((1, 20, 21))
    est = JInvariantWavelet(sigma=sigma, wavelet=wavelet).fit(X)
    base = est.invariant_transform(X)
    Y = X.copy()
    Y[(0,) + index] += delta
    assert abs(est.invariant_transform(Y)[(0,) + index] - base[(0,) + index]) < 1e-10


def test_cache_is_keyed_on_the_data(rng):
    DECOMPOSITIONS.clear()
    X = rng.random((1, 32, 32))
    est = JInvariantWavelet(sigma=0.1).fit(X)
    first = est.invariant_transform(X)
    Y = X.copy()
    Y[0, 5, 5] += 1.0  # same shape, different data: must not reuse X's decomposition
    np.testing.assert_allclose(est.invariant_transform(Y), plain_invariant(est, Y), atol=1e-12)
    np.testing.assert_allclose(est.invariant_transform(X), first)


def test_approximate_loss_uses_a_subset_of_cosets(camera_noisy):
    _, noisy = camera_noisy
    exact = JInvariantWavelet(sigma=0.1).fit(noisy).self_supervised_loss(noisy)
    approx = JInvariantWavelet(sigma=0.1, cosets=4).fit(noisy).self_supervised_loss(noisy)
    assert approx != exact
    assert approx == pytest.approx(exact, rel=0.05)


def test_integer_sigma_is_in_input_units(rng):
    X8 = (rng.random((1, 32, 32)) * 255).astype(np.uint8)
    a = JInvariantWavelet(sigma=25.5, output="invariant").fit(X8).transform(X8)
    b = JInvariantWavelet(sigma=0.1, output="invariant").fit(X8).transform(X8 / 255.0)
    np.testing.assert_allclose(a, b, atol=1e-12)
    c = JInvariantWavelet(sigma=0.1, rescale_sigma=False, output="invariant").fit(X8)
    np.testing.assert_allclose(c.transform(X8), b, atol=1e-12)


@pytest.mark.parametrize("output", ["ordinary", "invariant", "shrink"])
def test_noise_free_piecewise_constant_image_gives_no_nan(output):
    """All finest coefficients zero: scikit-image's estimate is NaN; ours is 'no noise'."""
    X = np.zeros((1, 16, 16))
    X[0, :8] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = JInvariantWavelet(output=output).fit(X).transform(X)
    assert np.isfinite(out).all()
    if output == "ordinary":
        np.testing.assert_array_equal(out, X)
