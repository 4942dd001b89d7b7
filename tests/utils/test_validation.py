"""Bad input gets a clear error from every image denoiser; good input keeps its dtype."""

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_n2s import DonutMedian, JInvariantGaussian, JInvariantWavelet
from sklearn_n2s.utils._validation import check_stack, intensity_scale

ESTIMATORS = [DonutMedian(radius=1), JInvariantGaussian(sigma=1.0), JInvariantWavelet()]
IDS = [type(e).__name__ for e in ESTIMATORS]


def _image(rng, shape=(2, 16, 16)):
    return rng.random(shape)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.full((1, 8, 8), np.nan), ValueError, "NaN"),
        (np.full((1, 8, 8), np.inf), ValueError, "infinity"),
        (np.zeros((0, 8, 8)), ValueError, "empty"),
        (np.zeros((1, 0, 8)), ValueError, "empty"),
        (np.float64(3.0), ValueError, "0-d"),
        (np.zeros(8), ValueError, "1 dimension"),
        (np.zeros((1, 4, 4, 4, 4)), ValueError, "spatial axes"),
        (np.zeros((1, 8, 8), dtype=complex), ValueError, "Complex"),
        (np.array([[1.0, 2.0], [3.0, "a"]], dtype=object), TypeError, "string or a number"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, "ragged"),
        (np.array(["a", "b"]).reshape(1, 2), TypeError, "dtype"),
        (sp.csr_matrix(np.ones((4, 4))), TypeError, "Sparse"),
    ],
    ids=["nan", "inf", "no-samples", "no-pixels", "0d", "1d", "5d", "complex", "object",
         "ragged", "strings", "sparse"],
)
def test_bad_input_gets_clear_error(estimator, bad, error, message):
    with pytest.raises(error, match=message):
        estimator.fit(bad)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_nan_in_transform_is_refused_after_fit(estimator, rng):
    X = _image(rng)
    est = estimator.fit(X)
    X_bad = X.copy()
    X_bad[1, 3, 4] = np.nan
    for method in (est.transform, est.invariant_transform, est.score):
        with pytest.raises(ValueError, match="NaN"):
            method(X_bad)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_caller_array_is_never_modified(estimator, rng):
    X = _image(rng)
    before = X.copy()
    est = estimator.fit(X)
    for output in ("shrink", "ordinary", "invariant"):
        est.set_params(output=output).transform(X)
    est.invariant_transform(X)
    est.score(X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_preserved(estimator, rng, dtype):
    X = _image(rng).astype(dtype)
    est = estimator.fit(X)
    for output in ("shrink", "ordinary", "invariant"):
        out = est.set_params(output=output).transform(X)
        assert out.dtype == dtype
        assert out.shape == X.shape
        assert np.isfinite(out).all()


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_uint8_input_is_scaled_like_img_as_float(estimator, rng):
    X8 = (rng.random((1, 16, 16)) * 255).astype(np.uint8)
    est = estimator.set_params(output="invariant").fit(X8)
    np.testing.assert_allclose(est.transform(X8), est.transform(X8 / 255.0), atol=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_spatial_rank_must_match_fit(estimator, rng):
    est = estimator.fit(_image(rng))
    with pytest.raises(ValueError, match="spatial axes"):
        est.transform(rng.random((1, 8, 8, 8)))


@pytest.mark.parametrize("channel_axis", [0, 1, "last", 2.5])
def test_channel_axis_must_be_none_or_minus_one(channel_axis, rng):
    with pytest.raises(ValueError, match="channel_axis"):
        JInvariantGaussian(channel_axis=channel_axis).fit(_image(rng))


def test_unfitted_estimator_refuses_transform(rng):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DonutMedian().transform(_image(rng))


@pytest.mark.parametrize(
    "estimator, message",
    [
        (DonutMedian(radius=0), "radius"),
        (DonutMedian(radius=1.5), "radius"),
        (JInvariantGaussian(sigma=-1), "sigma"),
        (JInvariantGaussian(mode="bogus"), "mode"),
        (JInvariantWavelet(wavelet="nope"), "wavelet"),
        (JInvariantWavelet(stride=1), "stride"),
        (JInvariantWavelet(fill="nope"), "fill"),
        (JInvariantWavelet(method="nope"), "method"),
        (JInvariantWavelet(convert2ycbcr=True), "convert2ycbcr"),
        (DonutMedian(output="best"), "output"),
        (DonutMedian(noise_variance=-1.0), "noise_variance"),
    ],
)
def test_bad_parameters_are_named(estimator, message, rng):
    with pytest.raises((ValueError, TypeError), match=message):
        estimator.fit(_image(rng))


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="no neighbours"):
        DonutMedian().fit(np.zeros((1, 1, 1))).transform(np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="too small"):
        JInvariantGaussian().fit(np.zeros((1, 1, 1))).transform(np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="at least 2 pixels"):
        JInvariantWavelet().fit(np.zeros((1, 1, 5)))


def test_check_stack_accepts_object_array_of_numbers():
    X = np.arange(12.0).reshape(1, 3, 4).astype(object)
    out = check_stack(X)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.arange(12.0).reshape(1, 3, 4))


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 1 / 255), (np.uint16, 1 / 65535),
                                          (np.float32, 1.0), (bool, 1.0)])
def test_intensity_scale(dtype, scale):
    assert intensity_scale(dtype) == pytest.approx(scale)


def test_python_lists_of_ints_are_taken_at_face_value():
    nested = [[[0, 10, 20, 30], [40, 50, 60, 70], [1, 2, 3, 4], [5, 6, 7, 8]]]
    est = JInvariantGaussian(output="ordinary").fit(nested)
    np.testing.assert_allclose(est.transform(nested), est.transform(np.asarray(nested, float)))
    # An integer *array* keeps its image dtype: uint8 0..255 is scaled like img_as_float.
    as_uint8 = np.asarray(nested, dtype=np.uint8)
    np.testing.assert_allclose(est.transform(as_uint8) * 255, est.transform(nested), atol=1e-9)
