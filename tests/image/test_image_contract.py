"""The number of spatial axes: ``spatial_ndim`` and the warning on 2-D arrays (issue 10,
item 5).

``DonutMedian().fit(img).transform(img)`` on one 2-D image used to read it, silently, as
512 one-dimensional rows (24.7 dB instead of 26.95 dB on the noisy camera image).
"""

import warnings

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import DonutMedian, JInvariantGaussian, JInvariantWavelet
from sklearn_n2s.image import SpatialAxesWarning

MAKERS = [lambda **kw: DonutMedian(radius=2, **kw),
          lambda **kw: JInvariantGaussian(sigma=1.5, **kw),
          lambda **kw: JInvariantWavelet(**kw)]
IDS = ["DonutMedian", "JInvariantGaussian", "JInvariantWavelet"]
OUTPUTS = ["shrink", "ordinary", "invariant"]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_single_image_with_spatial_ndim_is_a_stack_of_one(make, output, rng):
    image = rng.random((24, 28))
    est = make(output=output, spatial_ndim=2).fit(image)
    ref = make(output=output).fit(image[np.newaxis])
    assert est.n_spatial_dims_ == 2
    out = est.transform(image)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out, ref.transform(image[np.newaxis])[0])
    np.testing.assert_array_equal(est.invariant_transform(image),
                                  ref.invariant_transform(image[np.newaxis])[0])
    assert est.score(image) == ref.score(image[np.newaxis])
    # a stack still works, with the sample axis kept
    stack = np.stack([image, image[::-1]])
    np.testing.assert_array_equal(est.transform(stack), ref.transform(stack))


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_spatial_ndim_with_channels_and_volumes(make, rng):
    rgb = rng.random((16, 18, 3))
    est = make(spatial_ndim=2, channel_axis=-1).fit(rgb)
    ref = make(channel_axis=-1).fit(rgb[np.newaxis])
    np.testing.assert_array_equal(est.transform(rgb), ref.transform(rgb[np.newaxis])[0])
    volume = rng.random((8, 9, 10))
    est = make(spatial_ndim=3).fit(volume)
    assert est.n_spatial_dims_ == 3
    assert est.transform(volume).shape == volume.shape


def test_first_call_on_one_image_denoises_it_as_an_image(camera_noisy):
    clean, noisy = camera_noisy
    img = noisy[0]
    with pytest.warns(SpatialAxesWarning):
        rows = DonutMedian().fit(img).transform(img)  # 512 signals of 512 pixels
    image = DonutMedian(spatial_ndim=2).fit(img).transform(img)
    psnr_rows = peak_signal_noise_ratio(clean[0], np.clip(rows, 0, 1), data_range=1)
    psnr_image = peak_signal_noise_ratio(clean[0], np.clip(image, 0, 1), data_range=1)
    assert psnr_image > psnr_rows + 1.5  # measured 26.9 dB against 24.7 dB
    np.testing.assert_array_equal(image, DonutMedian().fit(noisy).transform(noisy)[0])


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_2d_array_without_spatial_ndim_warns_naming_the_fix(make, rng):
    X = rng.random((6, 20))
    with pytest.warns(SpatialAxesWarning, match=r"spatial_ndim=2.*X\[np\.newaxis\]") as record:
        est = make().fit(X)
    assert len(record) == 1
    assert "6 one-dimensional signals of 20 pixels" in str(record[0].message)
    assert issubclass(SpatialAxesWarning, UserWarning)
    assert est.n_spatial_dims_ == 1  # today's behaviour is kept
    # transform and score do not warn again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.transform(X)
        est.score(X)


@pytest.mark.parametrize("X", [np.zeros((6, 20)), np.zeros((1, 20)), np.zeros((2, 8, 8))],
                         ids=["1d-told", "one-signal", "stack-2d"])
def test_no_warning_when_the_axes_are_not_ambiguous(X):
    spatial_ndim = 1 if X.shape == (6, 20) else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        JInvariantGaussian(spatial_ndim=spatial_ndim).fit(X)


def test_channel_stack_of_1d_signals_warns(rng):
    with pytest.warns(SpatialAxesWarning, match="n_channels"):
        JInvariantGaussian(channel_axis=-1).fit(rng.random((16, 18, 3)))


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
@pytest.mark.parametrize("shape", [(4,), (2, 3, 8, 8)])
def test_spatial_ndim_refuses_other_numbers_of_axes(make, shape):
    with pytest.raises(ValueError, match=r"spatial_ndim=2 expects one image \(H, W\) or a "
                                         r"stack of them \(n_samples, H, W\)"):
        make(spatial_ndim=2).fit(np.zeros(shape))


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
@pytest.mark.parametrize("value", [0, 4, 2.5, "2", -1])
def test_bad_spatial_ndim_is_named(make, value, rng):
    est = make(spatial_ndim=value)
    with pytest.raises(InvalidParameterError, match="'spatial_ndim' parameter"):
        est.fit(rng.random((2, 8, 8)))


def test_transform_of_a_single_image_after_fitting_a_stack(rng):
    stack = rng.random((3, 16, 16))
    est = JInvariantGaussian(spatial_ndim=2).fit(stack)
    np.testing.assert_array_equal(est.transform(stack[1]), est.transform(stack)[1])
    with pytest.raises(ValueError, match="spatial_ndim=2"):
        est.transform(rng.random((16,)))
