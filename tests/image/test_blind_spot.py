"""Structured blind spots on the image families (correlated noise): the prediction at a
pixel ignores its whole blind spot, 'auto' measures it, and calibration improves."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data
from skimage.metrics import peak_signal_noise_ratio
from skimage.restoration import denoise_tv_chambolle
from skimage.util import img_as_float
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import (
    DonutMedian,
    FullSplit,
    JInvariantBilateral,
    JInvariantDenoiser,
    JInvariantGaussian,
    JInvariantNLMeans,
    JInvariantTV,
    JInvariantWavelet,
    MaskedImageCache,
    SelfSupervisedScorer,
)
from sklearn_n2s.utils.estimator_checks import check_j_invariance

RNG = np.random.default_rng(0)
BLIND_SPOT_FAMILIES = [DonutMedian(radius=3), JInvariantWavelet(wavelet_levels=1),
                       JInvariantGaussian(sigma=1.5)]


def _ids(estimator):
    return type(estimator).__name__


def _line_noise(shape, rng, sigma, length=4, axis=-1):
    noise = ndi.uniform_filter1d(rng.normal(size=shape), length, axis=axis)
    return noise / noise.std() * sigma


@pytest.mark.parametrize("estimator", BLIND_SPOT_FAMILIES, ids=_ids)
@pytest.mark.parametrize("blind_spot, X", [
    ((0, 3), RNG.integers(0, 256, (2, 20, 21), dtype=np.uint8)),
    ((1, 1), RNG.normal(size=(1, 16, 17))),
    ((0, None), RNG.integers(0, 2**16, (1, 14, 15), dtype=np.uint16)),
    ((2,), RNG.normal(size=(3, 40))),
    ((1, 0, 2), RNG.normal(size=(1, 9, 10, 11))),
    (np.eye(3, dtype=bool), RNG.normal(size=(1, 12, 12))),
])
def test_prediction_ignores_its_whole_blind_spot(estimator, blind_spot, X):
    est = clone(estimator).set_params(blind_spot=blind_spot)
    assert check_j_invariance(est, X, n_probes=6) > 0


@pytest.mark.parametrize("estimator", BLIND_SPOT_FAMILIES, ids=_ids)
def test_channels_share_the_blind_spot(estimator):
    X = RNG.random((1, 14, 15, 3))
    est = clone(estimator).set_params(blind_spot=(0, 2), channel_axis=-1)
    assert check_j_invariance(est, X, n_probes=4) > 0


def test_check_catches_a_blind_spot_narrower_than_claimed():
    class PixelOnly(DonutMedian):
        def _blind_spot_footprint(self, spatial_shape):
            return np.ones((1, 7), dtype=bool)  # claims +-3 along x, hides the pixel only

        def _invariant(self, X, scale=1.0):
            return DonutMedian(self.radius)._invariant(X, scale)

    X = RNG.normal(size=(1, 16, 16))
    with pytest.raises(AssertionError, match="blind spot of"):
        check_j_invariance(PixelOnly(radius=2), X)


@pytest.mark.parametrize("estimator", BLIND_SPOT_FAMILIES, ids=_ids)
def test_auto_measures_the_blind_spot(estimator):
    clean = img_as_float(data.camera())[::2, ::2]
    rng = np.random.default_rng(1)
    white = (clean + rng.normal(0, 0.1, clean.shape))[np.newaxis]
    est = clone(estimator).set_params(blind_spot="auto").fit(white)
    assert est.blind_spot_ == (0, 0)
    correlated = (clean + _line_noise(clean.shape, rng, 0.1))[np.newaxis]
    est = clone(estimator).set_params(blind_spot="auto").fit(correlated)
    assert est.blind_spot_ == (0, 3)
    assert est.noise_correlation_.correlation[1, 1] > 0.6
    assert check_j_invariance(est, correlated[:, :40, :40], n_probes=3) > 0


@pytest.mark.parametrize("estimator", BLIND_SPOT_FAMILIES, ids=_ids)
def test_bad_blind_spots_are_refused_in_fit(estimator):
    X = RNG.normal(size=(1, 12, 12))
    with pytest.raises(ValueError, match="spatial axes"):
        clone(estimator).set_params(blind_spot=(1, 2, 3)).fit(X)
    with pytest.raises(ValueError, match="blind_spot"):
        clone(estimator).set_params(blind_spot="line").fit(X)


def test_median_blind_spot_larger_than_its_neighbourhood_is_refused():
    X = RNG.normal(size=(1, 30))
    est = DonutMedian(radius=1, blind_spot=(1,)).fit(X)
    with pytest.raises(ValueError, match="larger radius"):
        est.invariant_transform(X)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "wrap", "constant", "mirror"])
@pytest.mark.parametrize("blind_spot", [(0, 2), (None, 1), 1])
def test_gaussian_closed_form_is_exact_in_every_boundary_mode(mode, blind_spot):
    X = RNG.normal(size=(2, 13, 14))
    est = JInvariantGaussian(sigma=1.5, mode=mode, blind_spot=blind_spot).fit(X)
    assert check_j_invariance(est, X, n_probes=4) > 0
    # the closed form equals the masking core's prediction, which hides the same box
    from sklearn_n2s.masking import invariant_predict

    footprint = est._blind_spot_footprint((13, 14))
    masked = invariant_predict(est._denoise, X, footprint=footprint, fill="zero")[0]
    closed = est.invariant_transform(X)
    # not equal (the core fills what it hides), but both ignore the whole blind spot,
    # and they agree where the hidden weight is small
    assert np.corrcoef(masked.ravel(), closed.ravel())[0, 1] > 0.5


def test_gaussian_non_box_footprint_goes_through_the_masking_core():
    cross = np.zeros((3, 5), dtype=bool)
    cross[1, :] = True
    cross[:, 2] = True
    X = RNG.normal(size=(1, 16, 16))
    assert check_j_invariance(JInvariantGaussian(1.0, blind_spot=cross), X, n_probes=4) > 0


@pytest.mark.parametrize("estimator, grid", [
    (DonutMedian(), {"radius": [1, 2, 3, 4]}),
    (JInvariantGaussian(), {"sigma": [0.5, 1.0, 1.5, 2.0, 3.0]}),
], ids=lambda v: _ids(v) if not isinstance(v, dict) else "")
def test_auto_calibrates_better_than_pixel_on_correlated_noise(estimator, grid):
    clean = img_as_float(data.camera())[::2, ::2]
    rng = np.random.default_rng(2)
    noisy = (clean + _line_noise(clean.shape, rng, 0.1))[np.newaxis]
    scores = {}
    for blind_spot in ("pixel", "auto"):
        est = clone(estimator).set_params(blind_spot=blind_spot, output="ordinary")
        search = GridSearchCV(est, grid, scoring=SelfSupervisedScorer(), cv=FullSplit())
        best = search.fit(noisy).best_estimator_
        scores[blind_spot] = peak_signal_noise_ratio(clean, best.transform(noisy)[0],
                                                     data_range=1)
    assert scores["auto"] > scores["pixel"] + 0.3


# ------------------------------------------------ the catalogue of issue 12 takes it too
NEW_FAMILIES = [
    JInvariantDenoiser(denoise_tv_chambolle, weight=0.2),
    JInvariantTV(weight=0.2),
    JInvariantNLMeans(h=0.3, patch_size=3, patch_distance=2),
    JInvariantBilateral(sigma_color=0.3),
]


@pytest.mark.parametrize("estimator", NEW_FAMILIES, ids=_ids)
@pytest.mark.parametrize("blind_spot", [(0, 2), (1, 1), (None, 0)])
def test_new_families_ignore_their_whole_blind_spot(estimator, blind_spot):
    X = np.random.default_rng(3).random((1, 14, 15))
    est = clone(estimator).set_params(blind_spot=blind_spot)
    assert check_j_invariance(est, X, n_probes=3) > 0


def test_masked_image_cache_keys_the_blind_spot():
    X = np.random.default_rng(4).random((1, 16, 16))
    cache = MaskedImageCache()
    pixel = JInvariantTV(weight=0.2, memory=cache).fit(X).invariant_transform(X)
    line = JInvariantTV(weight=0.2, memory=cache, blind_spot=(0, 2)).fit(X)
    np.testing.assert_allclose(
        line.invariant_transform(X),
        JInvariantTV(weight=0.2, blind_spot=(0, 2)).fit(X).invariant_transform(X))
    assert not np.allclose(line.invariant_transform(X), pixel)


def test_masked_families_refuse_dask_with_a_structured_blind_spot():
    da = pytest.importorskip("dask.array")
    X = da.from_array(np.random.default_rng(5).random((1, 32, 32)), chunks=(1, 16, 16))
    est = JInvariantTV(weight=0.2, blind_spot=(0, 2)).fit(X)
    with pytest.raises(TypeError, match="blind spot"):
        est.transform(X).compute()


def test_shrink_uses_the_per_pixel_variance_of_correlated_noise():
    # The finest-scale noise estimate misses the power correlated noise has at coarser
    # scales; with a structured blind spot the measured correlation corrects it, so the
    # weight is close to sigma**2 / L with the true sigma**2 (0.01 here).
    clean = img_as_float(data.camera())[:256, :256]
    noisy = (clean + _line_noise(clean.shape, np.random.default_rng(6), 0.1))[np.newaxis]
    est = JInvariantGaussian(sigma=1.5, blind_spot="auto").fit(noisy)
    ideal = 0.01 / est.self_supervised_loss(noisy)
    assert est.shrinkage_weights(noisy)[0] == pytest.approx(ideal, rel=0.15)
    assert 2.0 < est.noise_correlation_.high_pass_gain() ** -1 < 8.0
    pixel = JInvariantGaussian(sigma=0.5).fit(noisy)  # what 'pixel' calibration picks
    gain = (peak_signal_noise_ratio(clean, est.transform(noisy)[0], data_range=1)
            - peak_signal_noise_ratio(clean, pixel.transform(noisy)[0], data_range=1))
    assert gain > 2.0


def test_refit_with_pixel_forgets_the_correlation():
    X = RNG.normal(size=(1, 32, 32))
    est = JInvariantGaussian(blind_spot=(0, 2)).fit(X)
    assert hasattr(est, "noise_correlation_")
    est.set_params(blind_spot="pixel").fit(X)
    assert not hasattr(est, "noise_correlation_")
