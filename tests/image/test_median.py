"""DonutMedian: exact medians of in-image neighbours, and J-invariance as a property."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_n2s import DonutMedian
from sklearn_n2s.image._median import neighbourhood, neighbourhood_median
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def brute_force_median(image, footprint):
    """np.median of the in-image pixels of the footprint, one pixel at a time."""
    r = footprint.shape[0] // 2
    padded = np.pad(image.astype(float), r, constant_values=np.nan)
    out = np.empty(image.shape)
    for index in np.ndindex(*image.shape):
        window = padded[tuple(slice(i, i + 2 * r + 1) for i in index)]
        out[index] = np.nanmedian(window[footprint])
    return out


@pytest.mark.parametrize("shape", [(23,), (11, 13), (6, 7, 5)])
@pytest.mark.parametrize("levels", [None, 7], ids=["float", "few-levels"])
@pytest.mark.parametrize("centre", [False, True])
def test_median_equals_brute_force(shape, levels, centre, rng):
    image = rng.random(shape)
    if levels:
        image = np.round(image * levels) / levels  # takes the histogram path
    for radius in (1, 2):
        footprint = neighbourhood(radius, len(shape), centre=centre)
        got = neighbourhood_median(image[np.newaxis], footprint)[0]
        np.testing.assert_allclose(got, brute_force_median(image, footprint), atol=1e-12)


def test_channels_are_filtered_independently(rng):
    X = rng.random((2, 9, 10, 3))
    est = DonutMedian(radius=2, channel_axis=-1, output="invariant").fit(X)
    out = est.transform(X)
    for c in range(3):
        alone = DonutMedian(radius=2, output="invariant").fit(X[..., c]).transform(X[..., c])
        np.testing.assert_allclose(out[..., c], alone)


@settings(max_examples=30, deadline=None)
@given(
    radius=st.integers(1, 3),
    index=st.tuples(st.integers(0, 9), st.integers(0, 10)),
    delta=st.floats(-10, 10, allow_nan=False),
    few_levels=st.booleans(),
)
def test_donut_median_is_j_invariant(radius, index, delta, few_levels):
    X = np.random.default_rng(1).random((1, 10, 11))
    if few_levels:
        X = np.round(X * 50) / 50
    est = DonutMedian(radius=radius).fit(X)
    check_j_invariance(est, X, coordinates=[(0,) + index], delta=delta, atol=1e-12)


def test_ordinary_median_uses_the_centre(rng):
    X = np.zeros((1, 9, 9))
    X[0, 4, 4] = 1.0
    est = DonutMedian(radius=1).fit(X)
    assert est.set_params(output="ordinary").transform(X)[0, 4, 4] == 0.0
    spike = np.ones((1, 9, 9))
    spike[0, 4, 4] = 5.0
    assert est.set_params(output="invariant").transform(spike)[0, 4, 4] == 1.0


def test_uint8_and_float_paths_agree(rng):
    X8 = rng.integers(0, 256, (1, 20, 20)).astype(np.uint8)
    Xf = X8 / 255.0 + 1e-9 * rng.random((1, 20, 20))  # many levels: the sorting path
    est = DonutMedian(radius=2, output="invariant").fit(X8)
    np.testing.assert_allclose(est.transform(X8), est.transform(Xf), atol=1e-8)


@pytest.mark.parametrize("levels", [None, 9], ids=["float", "few-levels"])
def test_threads_give_the_same_result(levels, rng):
    X = rng.random((3, 17, 19))
    if levels:
        X = np.round(X * levels) / levels
    one = DonutMedian(radius=2, output="invariant").fit(X).transform(X)
    two = DonutMedian(radius=2, output="invariant", n_jobs=2).fit(X).transform(X)
    np.testing.assert_array_equal(one, two)
