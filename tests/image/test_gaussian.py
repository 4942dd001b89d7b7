"""JInvariantGaussian: the closed form equals the explicit linear operator, edges included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.filters import gaussian

from sklearn_n2s import JInvariantGaussian
from sklearn_n2s.image._gaussian import MODES
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def explicit_invariant(image, sigma, mode, truncate=4.0):
    """Build the filter matrix from impulses, drop its diagonal, renormalise each row."""
    n = image.size
    columns = np.empty((n, n))
    for k in range(n):
        impulse = np.zeros(n)
        impulse[k] = 1.0
        columns[:, k] = ndi.gaussian_filter(impulse.reshape(image.shape), sigma, mode=mode,
                                            truncate=truncate).ravel()
    diagonal = np.diag(columns).copy()
    np.fill_diagonal(columns, 0.0)
    return ((columns @ image.ravel()) / (1.0 - diagonal)).reshape(image.shape)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(9,), (7, 8)])
@pytest.mark.parametrize("sigma", [0.7, 2.5])
def test_closed_form_equals_explicit_operator(mode, shape, sigma, rng):
    image = rng.random(shape)
    est = JInvariantGaussian(sigma=sigma, mode=mode).fit(image[np.newaxis])
    got = est.invariant_transform(image[np.newaxis])[0]
    np.testing.assert_allclose(got, explicit_invariant(image, sigma, mode), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    sigma=st.floats(0.4, 4.0),
    index=st.tuples(st.integers(0, 7), st.integers(0, 8)),
    delta=st.floats(-100, 100, allow_nan=False),
)
def test_j_invariance_at_every_pixel_and_mode(mode, sigma, index, delta):
    X = np.random.default_rng(2).random((1, 8, 9))
    est = JInvariantGaussian(sigma=sigma, mode=mode).fit(X)
    check_j_invariance(est, X, coordinates=[(0,) + index], delta=delta, atol=1e-9)


def test_ordinary_output_is_skimage_gaussian(rng):
    X = rng.random((2, 20, 24, 3))
    est = JInvariantGaussian(sigma=1.5, channel_axis=-1, output="ordinary").fit(X)
    out = est.transform(X)
    for i in range(2):
        expected = gaussian(X[i], sigma=1.5, channel_axis=-1, preserve_range=True)
        np.testing.assert_allclose(out[i], expected, atol=1e-12)


def test_anisotropic_sigma_in_3d(rng):
    X = rng.random((1, 6, 9, 10))
    est = JInvariantGaussian(sigma=(0.5, 1.5, 2.0)).fit(X)
    check_j_invariance(est, X, coordinates=[(0, 2, 3, 4)], delta=7)
    with pytest.raises(ValueError, match="3 spatial axes"):
        JInvariantGaussian(sigma=(1.0, 2.0)).fit(X).transform(X)


def test_self_supervised_loss_tracks_ground_truth_loss(camera_noisy):
    """E L = MSE(f_inv, clean) + sigma^2: the two curves differ by the noise variance."""
    clean, noisy = camera_noisy
    noise_var = np.mean((noisy - clean) ** 2)
    for sigma in (0.5, 1.0, 2.0, 4.0):
        est = JInvariantGaussian(sigma=sigma).fit(noisy)
        truth = np.mean((est.invariant_transform(noisy) - clean) ** 2)
        assert est.self_supervised_loss(noisy) == pytest.approx(truth + noise_var, rel=0.02)


# ------------------------------------------------------ sizes and parameters refused
@pytest.mark.parametrize("sigma", [1e-300, 0.05, 0.15, (0.1, 0.1)])
def test_a_sigma_too_small_is_refused_as_such_in_fit(sigma, rng):
    """The centre weight would be 1: a ZeroDivisionError, or an infinite gain; the
    message blames sigma, not the image."""
    X = rng.random((1, 16, 16))
    est = JInvariantGaussian(sigma=sigma)
    with pytest.raises(ValueError, match=r"sigma=.* is too small") as info:
        est.fit(X)
    assert "image" not in str(info.value)
    assert not hasattr(est, "n_spatial_dims_")
    with pytest.raises(ValueError, match="too small"):
        JInvariantGaussian(sigma=1.0, truncate=0.1).fit(X)  # kernel radius 0
    JInvariantGaussian(sigma=0.16).fit(X).transform(X)  # the smallest that works
    JInvariantGaussian(sigma=(0.1, 2.0)).fit(X).transform(X)  # one axis is enough


@pytest.mark.parametrize("params", [dict(sigma=1e6), dict(sigma=7.0), dict(truncate=1e7),
                                    dict(sigma=(1e6, 1.0))])
def test_a_kernel_larger_than_the_image_is_refused_before_any_work(params, rng):
    X = rng.random((1, 12, 12))
    est = JInvariantGaussian(**params)
    with pytest.raises(ValueError, match=r"kernel radius .*spatial shape \(12, 12\)"):
        est.fit(X)
    assert not hasattr(est, "n_spatial_dims_")
    JInvariantGaussian(sigma=6.0).fit(X).transform(X)  # radius 24: twice the side


def test_sizes_are_checked_again_for_another_image_size(rng):
    est = JInvariantGaussian(sigma=5.0).fit(rng.random((1, 64, 64)))
    for method in (est.transform, est.invariant_transform, est.score):
        with pytest.raises(ValueError, match=r"kernel radius of 20 .*\(4, 4\)"):
            method(rng.random((1, 4, 4)))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1), (1, 1, 1, 1, 2)])
@pytest.mark.parametrize("mode", MODES)
def test_fit_refuses_a_single_pixel_as_transform_does(shape, mode):
    est = JInvariantGaussian(mode=mode, channel_axis=-1 if len(shape) == 5 else None)
    with pytest.raises(ValueError, match="single pixel has no neighbours"):
        est.fit(np.zeros(shape))


@pytest.mark.parametrize(
    "params, name",
    [(dict(sigma=True), "sigma"), (dict(truncate=True), "truncate"),
     (dict(sigma=np.inf), "sigma"), (dict(truncate=np.inf), "truncate"),
     (dict(sigma="1"), "sigma")],
)
def test_bad_parameters_are_refused_by_name(params, name, rng):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError,
                       match=f"The '{name}' parameter of JInvariantGaussian"):
        JInvariantGaussian(**params).fit(rng.random((1, 8, 8)))
    with pytest.raises(ValueError, match="sigma must be a number > 0"):
        JInvariantGaussian(sigma=[1.0, True]).fit(rng.random((1, 8, 8)))


# ------------------------------------------------ the loss path of a sweep (spectral)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, channel_axis", [((2, 140, 150), None),
                                                 ((1, 26, 30, 34), None),
                                                 ((1, 130, 128, 3), -1)])
def test_sweep_loss_equals_direct_filter_loss(mode, shape, channel_axis, rng):
    """The cached-spectrum loss is the direct filter's loss, offset data included."""
    X = rng.random(shape) * 50.0 + 1000.0  # far from 0..1: the rounding follows the spread
    for sigma in (0.6, 2.0, 6.0):
        est = JInvariantGaussian(sigma=sigma, mode=mode, channel_axis=channel_axis).fit(X)
        direct = np.mean((est.invariant_transform(X) - X) ** 2)
        assert est.self_supervised_loss(X) == pytest.approx(direct, rel=1e-5)


def test_sweep_cache_follows_the_data(rng):
    """A changed image (same shape, even the same array mutated) is never scored from
    the previous image's spectrum; float32 input is scored in its own units."""
    X = rng.random((1, 150, 150))
    est = JInvariantGaussian(sigma=1.5).fit(X)
    first = est.self_supervised_loss(X)
    X[0, 70, 70] += 40.0  # in place
    direct = np.mean((est.invariant_transform(X) - X) ** 2)
    assert est.self_supervised_loss(X) == pytest.approx(direct, rel=1e-5)
    assert est.self_supervised_loss(X) != pytest.approx(first, rel=1e-3)
    X32 = X.astype(np.float32)
    direct32 = np.mean((est.invariant_transform(X32).astype(float) - X32) ** 2)
    assert est.self_supervised_loss(X32) == pytest.approx(direct32, rel=1e-4)
