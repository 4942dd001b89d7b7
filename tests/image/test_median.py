"""DonutMedian: exact medians of in-image neighbours, and J-invariance as a property."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import img_as_float

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


# --------------------------------------------------- bounded memory, exact fast paths
@pytest.mark.parametrize(
    "shape, radius",
    [((1, 64, 64), 6),  # float, many levels: the sorting path
     ((1, 64, 64), 30),  # a disk nearly as large as the image (histogram on ranks)
     ((1, 16, 16, 16), 5)],  # a volume: the sorting path
    ids=["2d-sorting", "2d-large-radius", "3d"],
)
def test_peak_memory_is_bounded_by_the_image(shape, radius, rng):
    """Numpy reports its allocations to tracemalloc: the peak stays a small multiple of
    the image plus one footprint (it was 40x to 2800x the image here), and the medians
    are the brute-force ones, bit for bit."""
    import tracemalloc

    X = rng.random(shape)
    footprint = neighbourhood(radius, len(shape) - 1, centre=False)
    tracemalloc.start()
    try:
        got = neighbourhood_median(X, footprint)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_footprint = footprint.size * 8 * footprint.ndim  # its offsets, as int64
    assert peak < 20 * X.nbytes + one_footprint, peak / X.nbytes
    np.testing.assert_array_equal(got[0], brute_force_median(X[0], footprint))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunked_sorting_path_is_exact_with_channels_and_threads(dtype, rng, monkeypatch):
    from sklearn_n2s.image import _median

    monkeypatch.setattr(_median, "_CHUNK_VALUES", 500)  # many small chunks
    X = rng.random((2, 15, 17, 2)).astype(dtype)
    for centre in (False, True):
        footprint = neighbourhood(3, 2, centre=centre)
        one = _median._median_by_sorting(X, footprint, 2, channel_axis=-1)
        two = _median._median_by_sorting(X, footprint, 2, channel_axis=-1, n_jobs=2)
        assert one.dtype == dtype and one.flags.c_contiguous
        np.testing.assert_array_equal(one, two)
        for i in range(2):
            for c in range(2):
                expected = brute_force_median(X[i, ..., c].astype(np.float64), footprint)
                np.testing.assert_array_equal(one[i, ..., c], expected.astype(dtype))


def test_uint16_data_take_an_exact_histogram_path(rng, monkeypatch):
    """16-bit counts (more than 256 levels) are ranked and go through scikit-image's
    uint16 histogram filters; the medians are the sorting path's, bit for bit."""
    from sklearn_n2s.image import _median

    counts = rng.poisson(rng.uniform(50, 400, (1, 40, 45))).astype(np.uint16)
    assert len(np.unique(counts)) > 256
    X = img_as_float(counts)  # what check_stack gives the filter
    footprint = neighbourhood(6, 2, centre=False)
    expected = _median._median_by_sorting(X, footprint, 2)

    def refuse(*args, **kwargs):
        raise AssertionError("took the sorting path")

    monkeypatch.setattr(_median, "_median_by_sorting", refuse)
    np.testing.assert_array_equal(neighbourhood_median(X, footprint), expected)
    est = DonutMedian(radius=6, output="invariant").fit(counts)
    np.testing.assert_array_equal(est.transform(counts), expected)


# ------------------------------------------------------ sizes and parameters refused
@pytest.mark.parametrize(
    "radius, shape",
    [(10**6, (1, 64, 64)), (50, (1, 8, 8)), (12, (2, 11)), (14, (1, 6, 7, 5))],
)
def test_radius_larger_than_the_image_is_refused_before_any_work(radius, shape):
    X = np.zeros(shape)
    est = DonutMedian(radius=radius)
    spatial = re.escape(str(shape[1:]))
    with pytest.raises(ValueError, match=rf"radius={radius} is larger.*{spatial}"):
        est.fit(X)
    assert not hasattr(est, "n_spatial_dims_")  # a refused fit leaves no state


def test_largest_radius_allowed_covers_the_image():
    X = np.random.default_rng(0).random((1, 5, 6))  # farthest pixels 6.4 apart
    est = DonutMedian(radius=7, output="invariant").fit(X)
    out = est.transform(X)
    for index in np.ndindex(5, 6):  # every neighbourhood is the whole image
        others = np.delete(X[0].ravel(), np.ravel_multi_index(index, (5, 6)))
        assert out[(0,) + index] == np.median(others)
    with pytest.raises(ValueError, match="radius <= 7"):
        DonutMedian(radius=8).fit(X)


def test_sizes_are_checked_again_for_another_image_size():
    est = DonutMedian(radius=20).fit(np.zeros((1, 64, 64)))
    with pytest.raises(ValueError, match=r"radius=20 is larger.*\(10, 10\)"):
        est.transform(np.zeros((1, 10, 10)))
    with pytest.raises(ValueError, match=r"radius=20 is larger.*\(10, 10\)"):
        est.score(np.zeros((1, 10, 10)))


def test_dask_arrays_are_checked_on_the_whole_image():
    da = pytest.importorskip("dask.array")
    est = DonutMedian(radius=20).fit(np.zeros((1, 64, 64)))
    with pytest.raises(ValueError, match=r"radius=20 is larger.*\(10, 12\)"):
        est.transform(da.zeros((1, 10, 12), chunks=(1, 5, 6)))
    with pytest.raises(ValueError, match=r"radius=20 is larger.*\(10, 12\)"):
        DonutMedian(radius=20).fit(da.zeros((1, 10, 12), chunks=(1, 5, 6)))
    # a chunk smaller than the radius is fine: it is checked against the whole image
    X = np.random.default_rng(0).random((1, 64, 64))
    lazy = est.transform(da.from_array(X, chunks=(1, 32, 32)))
    np.testing.assert_allclose(lazy.compute(), est.transform(X))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1), (2, 1, 1, 1)])
def test_fit_refuses_a_single_pixel_as_transform_does(shape):
    est = DonutMedian(radius=1)
    with pytest.raises(ValueError, match="single pixel has no neighbours"):
        est.fit(np.zeros(shape))
    assert not hasattr(est, "n_spatial_dims_")


@pytest.mark.parametrize(
    "params, name",
    [({"n_jobs": "2"}, "n_jobs"), ({"n_jobs": 0}, "n_jobs"), ({"n_jobs": True}, "n_jobs"),
     ({"n_jobs": 1.5}, "n_jobs"), ({"radius": True}, "radius"), ({"radius": 2.0}, "radius")],
)
def test_bad_parameters_are_refused_by_name(params, name):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of DonutMedian"):
        DonutMedian(**params).fit(np.zeros((1, 8, 8)))
