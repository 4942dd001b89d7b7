"""Bad input gets a clear error from every image denoiser; good input keeps its dtype."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils._param_validation import InvalidParameterError

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
        (np.array([[1.0, 2.0], [3.0, "a"]], dtype=object), TypeError, "non-number"),
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
    X64 = _image(rng)
    X = X64.astype(dtype)
    est = estimator.fit(X)
    for output in ("shrink", "ordinary", "invariant"):
        out = est.set_params(output=output).transform(X)
        assert out.dtype == dtype
        # the same numbers as in float64, to float32 precision
        np.testing.assert_allclose(out, est.transform(X64), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_stack_does_not_copy_floats(dtype, rng):
    X = _image(rng).astype(dtype)
    assert check_stack(X) is X
    F = np.asfortranarray(X)
    assert check_stack(F) is F


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_transform_score_never_change_the_fitted_estimator(estimator, rng):
    X = _image(rng)
    est = estimator.fit(X)
    for output in ("shrink", "ordinary", "invariant"):
        est.set_params(output=output)
        state = dict(vars(est))
        est.transform(X)
        est.invariant_transform(X)
        est.score(X)
        est.shrinkage_weights(X)
        est.self_supervised_loss(X, loss="mae")
        assert vars(est) == state


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


@pytest.mark.parametrize("channel_axis", [0, 1, "last", 2.5, True])
def test_channel_axis_must_be_none_or_minus_one(channel_axis, rng):
    with pytest.raises(InvalidParameterError, match="'channel_axis' parameter"):
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
        (DonutMedian(n_jobs="all"), "n_jobs"),
        (JInvariantGaussian(sigma=-1), "sigma"),
        (JInvariantGaussian(sigma="1"), "sigma"),
        (JInvariantGaussian(truncate=0), "truncate"),
        (JInvariantGaussian(mode="bogus"), "mode"),
        (JInvariantWavelet(sigma=0), "sigma"),
        (JInvariantWavelet(wavelet="nope"), "wavelet"),
        (JInvariantWavelet(wavelet="morl"), "wavelet"),  # continuous: not discrete
        (JInvariantWavelet(stride=1), "stride"),
        (JInvariantWavelet(fill="nope"), "fill"),
        (JInvariantWavelet(method="nope"), "method"),
        (JInvariantWavelet(wavelet_levels=0), "wavelet_levels"),
        (JInvariantWavelet(cosets=0), "cosets"),
        (JInvariantWavelet(memory="cache_dir"), "memory"),
        (DonutMedian(output="best"), "output"),
        (DonutMedian(noise_variance=-1.0), "noise_variance"),
        (DonutMedian(noise_variance=np.inf), "noise_variance"),
    ],
)
def test_bad_parameters_are_named(estimator, message, rng):
    # scikit-learn's message: "The 'radius' parameter of DonutMedian must be ..."
    with pytest.raises(InvalidParameterError,
                       match=f"The '{message}' parameter of {type(estimator).__name__}"):
        estimator.fit(_image(rng))


@pytest.mark.parametrize(
    "estimator, message",
    [
        (JInvariantWavelet(convert2ycbcr=True), "convert2ycbcr=True requires channel_axis"),
        (JInvariantGaussian(sigma=[1.0, -2.0]), "sigma must be a number > 0"),
        (JInvariantGaussian(sigma=[1.0, np.nan]), "sigma must be a number > 0"),
        (JInvariantGaussian(sigma=[[1.0, 2.0]]), "sigma must be a number > 0"),
        (JInvariantGaussian(sigma=[1.0, 2.0, 3.0]), "3 values but X has 2 spatial axes"),
    ],
)
def test_checks_across_parameters_and_data_run_in_fit(estimator, message, rng):
    with pytest.raises(ValueError, match=message):
        estimator.fit(_image(rng))
    assert not hasattr(estimator, "n_spatial_dims_")  # a refused fit leaves no state


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_sklearn_check_param_validation(estimator):
    from sklearn.utils.estimator_checks import check_param_validation

    check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_parameters_are_validated_in_fit_only(estimator, rng):
    """As in scikit-learn: a bad value set after fit is not re-checked by transform."""
    X = _image(rng)
    est = estimator.set_params(output="shrink").fit(X)
    est.set_params(noise_variance=-1.0)  # only fit validates; transform takes it as is
    est.transform(X)
    with pytest.raises(InvalidParameterError, match="noise_variance"):
        est.fit(X)
    est.set_params(noise_variance=None)


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


# ------------------------------------------- None in an object array (issue 10, item 4)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_none_in_object_array_is_not_called_nan(estimator):
    # numpy turns None into NaN on conversion: the message used to say "contains NaN".
    X = np.arange(16.0).reshape(1, 4, 4).astype(object)
    X[0, 2, 3] = None
    with pytest.raises(TypeError, match=r"holds None at index \(0, 2, 3\)") as info:
        estimator.fit(X)
    assert "NaN" not in str(info.value)


def test_numeric_strings_in_object_array_are_refused():
    # numpy would convert '1.5' to 1.5 silently
    X = np.array([[[1.0, "1.5"], [2.0, 3.0]]], dtype=object)
    with pytest.raises(TypeError, match=r"non-number at index \(0, 0, 1\) \('1.5', of type str\)"):
        check_stack(X)


def test_object_array_of_numpy_numbers_and_bools_is_accepted():
    X = np.array([[[np.float32(1.0), np.int8(2)], [True, np.bool_(False)]]], dtype=object)
    np.testing.assert_array_equal(check_stack(X), [[[1.0, 2.0], [1.0, 0.0]]])


# ---------------------------- a list of integer images is their stack (issue 10, item 6)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_list_of_integer_images_is_scaled_like_their_stack(estimator, dtype, container, rng):
    top = np.iinfo(dtype).max
    images = [(rng.random((16, 16)) * top).astype(dtype) for _ in range(2)]
    stack = np.stack(images)
    est = estimator.set_params(output="shrink").fit(stack)
    np.testing.assert_array_equal(est.transform(container(images)), est.transform(stack))
    assert est.score(container(images)) == est.score(stack)
    assert check_stack(container(images), return_scale=True)[1] == pytest.approx(1 / top)


def test_list_of_images_of_different_integer_dtypes_is_refused(rng):
    images = [np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint16)]
    with pytest.raises(ValueError, match="different dtypes \\(uint16, uint8\\)"):
        check_stack(images)


def test_list_of_float_images_and_python_ints_keep_their_policy():
    floats = [np.full((4, 4), 0.5, np.float32), np.full((4, 4), 0.25, np.float32)]
    out = check_stack(floats)
    assert out.dtype == np.float32
    # Python ints stay at face value (no dtype to scale by), as before
    assert check_stack([[[0, 10], [20, 255]]], return_scale=True)[1] == 1.0
    np.testing.assert_array_equal(check_stack([[[0, 10], [20, 255]]]), [[[0, 10], [20, 255]]])
