"""Blockwise (dask) denoising equals the in-memory path; calibration on a subset of chunks."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import DonutMedian, FullSplit, JInvariantGaussian, JInvariantWavelet

da = pytest.importorskip("dask.array")
import dask

from sklearn_n2s.blockwise import (
    calibrate_blockwise,
    plan_chunks,
    receptive_radius,
    representative_patches,
)
from sklearn_n2s.image._blockwise import global_shrink_weights
from sklearn_n2s.utils.estimator_checks import check_j_invariance

NOISE = 0.3


@pytest.fixture(autouse=True)
def _synchronous_scheduler():
    # Deterministic and light on a shared machine; the threaded path is benchmarked.
    with dask.config.set(scheduler="synchronous"):
        yield


def smooth_image(shape, seed=0):
    grids = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    clean = np.ones(shape)
    for k, g in enumerate(grids):
        clean = clean * np.cos((4 + 2 * k) * g)
    rng = np.random.default_rng(seed)
    return clean, clean + rng.normal(0, NOISE, shape)


@pytest.fixture(scope="module")
def big():
    clean, noisy = smooth_image((1024, 1024))
    return clean[np.newaxis], noisy[np.newaxis]


def lazy(X, chunks):
    return da.from_array(X, chunks=chunks)


LOCAL = [
    DonutMedian(radius=2),
    JInvariantGaussian(sigma=2.0),
    JInvariantGaussian(sigma=[1.0, 2.5], mode="wrap"),
    JInvariantGaussian(sigma=1.5, mode="reflect", truncate=3.0),
    JInvariantGaussian(sigma=1.0, mode="constant"),
]


# ---------------------------------------------------------------- receptive radius
def test_receptive_radius_per_estimator():
    assert receptive_radius(DonutMedian(radius=5), (100, 100)) == (5, 5)
    assert receptive_radius(JInvariantGaussian(sigma=[1.0, 2.0], truncate=4), (9, 9)) == (4, 8)
    assert receptive_radius(JInvariantGaussian(sigma=0.6, truncate=4), (9,)) == (2,)
    # db1, 2 levels: support 3 + 1 fill pixel, rounded up to 2**2.
    assert receptive_radius(JInvariantWavelet(wavelet_levels=2), (64, 64)) == (4, 4)
    # db2 (4 taps), 3 levels: 3 * 7 + 1 = 22, rounded up to a multiple of 8.
    assert receptive_radius(JInvariantWavelet(wavelet="db2", wavelet_levels=3), (64,)) == (24,)


def test_receptive_radius_rejects_unknown_estimator():
    from sklearn.preprocessing import StandardScaler

    with pytest.raises(TypeError, match="StandardScaler does not state its reach"):
        receptive_radius(StandardScaler(), (10, 10))


# ------------------------------------------------------------ exact for local filters
@pytest.mark.parametrize("estimator", LOCAL, ids=repr)
@pytest.mark.parametrize("method", ["ordinary", "invariant"])
def test_local_filters_bit_exact_on_1024_image(big, estimator, method):
    _, X = big
    est = estimator.set_params(output=method).fit(X)
    result = est.transform(lazy(X, (1, 256, 256)))
    assert isinstance(result, da.Array)
    np.testing.assert_array_equal(result.compute(), est.transform(X))


@pytest.mark.parametrize("estimator", LOCAL[:2], ids=repr)
def test_invariant_transform_bit_exact(big, estimator):
    _, X = big
    est = estimator.set_params(output="shrink").fit(X)
    np.testing.assert_array_equal(
        est.invariant_transform(lazy(X, (1, 256, 256))).compute(), est.invariant_transform(X)
    )


@pytest.mark.parametrize("estimator", LOCAL[:2], ids=repr)
def test_shrink_with_known_noise_variance_matches(big, estimator):
    # Only the per-sample loss is summed in another order: equal to rounding.
    _, X = big
    est = estimator.set_params(output="shrink", noise_variance=NOISE**2).fit(X)
    np.testing.assert_allclose(
        est.transform(lazy(X, (1, 256, 256))).compute(), est.transform(X), rtol=0, atol=1e-12
    )


def test_shrink_with_estimated_noise_matches_in_memory(big):
    # The noise estimate pools per-tile statistics: the same lam blockwise as in memory.
    _, X = big
    est = JInvariantGaussian(sigma=2.0).fit(X)
    dX = lazy(X, (1, 256, 256))
    invariant = est.invariant_transform(dX)
    lam = global_shrink_weights(est, dX, invariant, np.float64)
    np.testing.assert_allclose(lam, est.shrinkage_weights(X), rtol=1e-12)


# Issue 10, item 7: the default output used to differ from the in-memory one by up to
# 3.7e-3 on this image in 256 x 256 chunks (noise variance estimated per chunk).
@pytest.mark.parametrize("chunks", [(1, 256, 256), (1, 100, 300), (1, 1024, 128),
                                    (1, 333, 1000), (1, 50, 1024)])
@pytest.mark.parametrize("estimator", LOCAL[:2], ids=repr)
def test_default_shrink_output_does_not_depend_on_chunking(big, estimator, chunks):
    _, X = big
    est = estimator.set_params(output="shrink", noise_variance=None).fit(X)
    np.testing.assert_allclose(est.transform(lazy(X, chunks)).compute(), est.transform(X),
                               rtol=1e-6, atol=0)


@pytest.mark.parametrize("chunks", [(1, 32, 32), (2, 40, 70), (1, 97, 13), (3, 128, 128)])
@pytest.mark.parametrize("shape, channel_axis", [((3, 128, 128), None),
                                                 ((3, 128, 128, 2), -1)])
def test_chunk_noise_variance_equals_the_in_memory_estimate(shape, channel_axis, chunks):
    from sklearn_n2s import estimate_noise_variance
    from sklearn_n2s.blockwise import chunk_noise_variance

    X = np.random.default_rng(4).normal(size=shape) * np.array([0.1, 1.0, 3.0]).reshape(
        (3,) + (1,) * (len(shape) - 1))
    if channel_axis is not None:
        chunks = chunks + (1,)
    lazy_estimate = chunk_noise_variance(lazy(X, chunks), channel_axis=channel_axis)
    np.testing.assert_allclose(lazy_estimate.compute(),
                               estimate_noise_variance(X, channel_axis=channel_axis),
                               rtol=1e-12)


# Issue 10, item 3: huge values give finite results, equal blockwise and in memory.
@pytest.mark.parametrize("dtype, peak", [(np.float64, 1e200), (np.float32, 3e38)])
@pytest.mark.parametrize("estimator", LOCAL[:2], ids=repr)
def test_huge_values_blockwise_match_in_memory(estimator, dtype, peak):
    _, X = smooth_image((128, 128))
    X = (X / np.abs(X).max() * peak)[None].astype(dtype)
    est = estimator.set_params(output="shrink", noise_variance=None).fit(X)
    expected = est.transform(X)
    result = est.transform(lazy(X, (1, 48, 40))).compute()
    assert np.all(np.isfinite(result))
    tol = 1e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(result, expected, rtol=tol, atol=tol * peak)


def test_single_dask_image_with_spatial_ndim():
    _, X = smooth_image((64, 64))
    est = JInvariantGaussian(sigma=1.5, spatial_ndim=2).fit(lazy(X, (32, 32)))
    assert est.n_spatial_dims_ == 2
    for method in (est.transform, est.invariant_transform):
        out = method(lazy(X, (32, 32)))
        assert out.shape == X.shape
        np.testing.assert_allclose(out.compute(), method(X), rtol=1e-12)


def test_uint8_image_bit_exact_median_and_gaussian(big):
    _, X = big
    X8 = np.clip((X + 1.5) * 80, 0, 255).astype(np.uint8)
    for est in (DonutMedian(radius=2, output="invariant"), JInvariantGaussian(output="ordinary")):
        est.fit(X8)
        out = est.transform(lazy(X8, (1, 256, 256)))
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out.compute(), est.transform(X8))


def test_float32_stays_float32_and_exact(big):
    _, X = big
    X32 = X.astype(np.float32)
    est = JInvariantGaussian(sigma=1.5, output="invariant").fit(X32)
    out = est.transform(lazy(X32, (1, 256, 256)))
    assert out.dtype == np.float32
    computed = out.compute()
    assert computed.dtype == np.float32
    np.testing.assert_array_equal(computed, est.transform(X32))


# ------------------------------------------------------------------- the wavelet
@pytest.mark.parametrize("params", [{}, {"wavelet": "db2", "wavelet_levels": 3}],
                         ids=["db1-default", "db2-3levels"])
@pytest.mark.parametrize("method", ["ordinary", "invariant"])
def test_wavelet_within_stated_tolerance(big, params, method):
    # Documented tolerance: RMS difference below 3% of the noise standard deviation
    # (the thresholds are sub-band statistics of each extended chunk).
    _, X = big
    est = JInvariantWavelet(output=method, **params).fit(X)
    blockwise = est.transform(lazy(X, (1, 256, 256))).compute()
    in_memory = est.transform(X)
    rms = np.sqrt(np.mean((blockwise - in_memory) ** 2))
    assert rms < 0.03 * NOISE
    # and it is far closer to the in-memory result than that result is to the data
    assert rms < 0.1 * np.sqrt(np.mean((in_memory - X) ** 2))


def test_wavelet_rechunks_to_dyadic_alignment():
    _, X = smooth_image((256, 256))
    est = JInvariantWavelet(wavelet_levels=3, output="ordinary").fit(X[None])
    # 40 is not a multiple of 2**3; the plan realigns the chunks.
    dX = lazy(X[None], (1, 40, 40))
    planned, depth = plan_chunks(dX, receptive_radius(est, (256, 256)), (8, 8))
    for axis in (1, 2):
        starts = np.cumsum((0,) + planned.chunks[axis][:-1])
        assert not np.any(starts % 8)
        assert min(planned.chunks[axis]) >= depth[axis]
    out = est.transform(dX).compute()
    # Small chunks make noisier per-chunk thresholds: the documented bound is 10% here.
    assert np.sqrt(np.mean((out - est.transform(X[None])) ** 2)) < 0.1 * NOISE


# ---------------------------------------------------------------- chunking and shapes
@pytest.mark.parametrize("chunks", [(1, 3, 5), (1, (100, 7, 149), (3, 253))])
def test_chunks_smaller_than_halo_are_rechunked_and_exact(chunks):
    _, X = smooth_image((256, 256))
    X = X[None]
    for est in (JInvariantGaussian(sigma=2.0, output="invariant"),
                DonutMedian(radius=3, output="invariant")):
        est.fit(X)
        np.testing.assert_array_equal(est.transform(lazy(X, chunks)).compute(), est.transform(X))


def test_plan_keeps_sample_axis_and_merges_channels():
    X = da.zeros((5, 64, 64, 3), chunks=(2, 4, 32, 1))
    planned, depth = plan_chunks(X, (6, 6), (1, 1), channel_axis=-1)
    assert planned.chunks[0] == (2, 2, 1)
    assert planned.chunks[3] == (3,)
    assert min(planned.chunks[1]) >= 6
    assert depth == {0: 0, 1: 6, 2: 6, 3: 0}


@pytest.mark.parametrize("estimator", [
    JInvariantGaussian(sigma=1.5, channel_axis=-1),
    DonutMedian(radius=2, channel_axis=-1),
], ids=repr)
@pytest.mark.parametrize("output", ["ordinary", "invariant"])
def test_stack_with_samples_and_channels(estimator, output):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, 120, 90, 2))
    est = estimator.set_params(output=output).fit(X)
    dX = lazy(X, (2, 32, 40, 1))
    np.testing.assert_array_equal(est.transform(dX).compute(), est.transform(X))


def test_shrink_is_per_sample_on_a_stack():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3, 96, 96)) * np.array([0.1, 1.0, 3.0])[:, None, None]
    est = JInvariantGaussian(sigma=1.0, noise_variance=0.5).fit(X)
    np.testing.assert_allclose(est.transform(lazy(X, (1, 32, 32))).compute(),
                               est.transform(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape,chunks", [((2, 500), (1, 64)), ((1, 36, 30, 40), (1, 12, 16, 16))])
def test_one_and_three_spatial_axes(shape, chunks):
    X = np.random.default_rng(3).normal(size=shape)
    n_spatial = len(shape) - 1
    for est in (JInvariantGaussian(sigma=1.2, output="invariant", spatial_ndim=n_spatial),
                DonutMedian(radius=2, output="invariant", spatial_ndim=n_spatial)):
        est.fit(X)
        np.testing.assert_array_equal(est.transform(lazy(X, chunks)).compute(), est.transform(X))


# ------------------------------------------------------------------ J-invariance
@pytest.mark.parametrize("estimator", [JInvariantGaussian(sigma=2.0), DonutMedian(radius=2)],
                         ids=repr)
def test_blockwise_invariant_is_j_invariant_at_chunk_borders(estimator):
    _, X = smooth_image((128, 128))
    X = X[None]
    chunked = _InChunks(estimator.fit(X))
    for pixel in [(0, 31, 32), (0, 32, 32), (0, 0, 63), (0, 127, 127)]:
        # one of the two changes crosses every neighbour's median
        moved = max(check_j_invariance(chunked, X, coordinates=[pixel], delta=delta,
                                       atol=1e-10) for delta in (-100.0, 100.0))
        assert moved > 1e-3  # the neighbours did move


class _InChunks:
    """A fitted estimator whose invariant_transform runs on dask chunks of 32x32."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y=None):
        return self

    def __sklearn_is_fitted__(self):
        return True

    def invariant_transform(self, X):
        return self.estimator.invariant_transform(lazy(X, (1, 32, 32))).compute()


# ---------------------------------------------------------------------- bad input
def test_caller_array_not_modified():
    _, X = smooth_image((64, 64))
    X = X[None]
    copy = X.copy()
    est = DonutMedian(radius=2).fit(X)
    est.transform(lazy(X, (1, 16, 16))).compute()
    np.testing.assert_array_equal(X, copy)


def test_fit_on_dask_validates_parameters_and_data():
    dX = lazy(np.zeros((2, 32, 32)), (1, 16, 16))
    with pytest.raises(InvalidParameterError, match="'sigma' parameter"):
        JInvariantGaussian(sigma=-1.0).fit(dX)
    with pytest.raises(InvalidParameterError, match="'radius' parameter"):
        DonutMedian(radius=0).fit(dX)
    with pytest.raises(ValueError, match="convert2ycbcr"):
        JInvariantWavelet(convert2ycbcr=True).fit(dX)
    with pytest.raises(ValueError, match="3 values but X has 2 spatial axes"):
        JInvariantGaussian(sigma=[1.0, 2.0, 3.0]).fit(dX)
    with pytest.raises(ValueError, match="empty"):
        JInvariantGaussian().fit(da.zeros((0, 8, 8), chunks=(1, 4, 4)))
    with pytest.raises(TypeError, match="dtype"):
        JInvariantGaussian().fit(dX.astype(np.complex128))
    est = JInvariantGaussian(sigma=[1.0, 2.0]).fit(dX)
    assert (est.n_spatial_dims_, est.n_features_in_) == (2, 32 * 32)


def test_errors():
    X = np.random.default_rng(0).normal(size=(1, 32, 32))
    dX = lazy(X, (1, 16, 16))
    with pytest.raises(NotFittedError):
        JInvariantGaussian().transform(dX)
    est = JInvariantGaussian().fit(X)
    with pytest.raises(ValueError, match="fitted on data with 2"):
        est.transform(lazy(np.zeros((1, 8, 8, 8)), (1, 4, 4, 4)))
    with pytest.raises(ValueError, match="dimension"):
        est.transform(da.zeros((4,), chunks=2))
    with pytest.raises(TypeError, match="dtype"):
        est.transform(dX.astype(np.complex128))
    with pytest.raises(ValueError, match="empty"):
        est.transform(da.zeros((0, 8, 8), chunks=(1, 4, 4)))
    with pytest.raises(ValueError, match="method"):
        from sklearn_n2s.blockwise import blockwise_transform

        blockwise_transform(est, dX, method="predict")
    bad = X.copy()
    bad[0, 20, 20] = np.nan
    lazy_result = est.set_params(output="invariant").transform(lazy(bad, (1, 16, 16)))
    with pytest.raises(ValueError, match="NaN"):
        lazy_result.compute()


# --------------------------------------------------------------------- calibration
def test_representative_patches_are_spread_equal_and_seeded():
    X = np.arange(4 * 64 * 64, dtype=float).reshape(4, 64, 64)
    dX = lazy(X, (1, 16, 16))
    patches, origins = representative_patches(dX, 8, halo=3, random_state=0)
    assert patches.shape == (8, 22, 22)
    assert sorted({o[0] for o in origins}) == [0, 1, 2, 3]  # every sample is visited
    for patch, (s, r, c) in zip(patches, origins):
        np.testing.assert_array_equal(patch, X[s, r:r + 22, c:c + 22])
    again, origins_again = representative_patches(dX, 8, halo=3, random_state=0)
    assert origins_again == origins
    with pytest.raises(ValueError, match="n_patches"):
        representative_patches(dX, 0)


def test_calibrate_blockwise_matches_in_memory_and_ground_truth(big):
    clean, X = big
    grid = {"sigma": [0.5, 1.0, 2.0, 4.0, 8.0]}
    search = calibrate_blockwise(JInvariantGaussian(), grid, lazy(X, (1, 256, 256)),
                                 n_chunks=4, random_state=0)
    in_memory = GridSearchCV(JInvariantGaussian(), grid, cv=FullSplit()).fit(X)
    def truth_error(sigma):
        est = JInvariantGaussian(sigma=sigma, output="invariant").fit(X)
        return np.mean((est.transform(X) - clean) ** 2)

    truth_errors = {s: truth_error(s) for s in grid["sigma"]}
    assert search.best_params_ == in_memory.best_params_
    assert search.best_params_["sigma"] == min(truth_errors, key=truth_errors.get)
    # the calibrated estimator then runs blockwise, as in memory
    out = search.best_estimator_.transform(lazy(X, (1, 256, 256)))
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), search.best_estimator_.transform(X), rtol=1e-6)


def test_calibrate_blockwise_rejects_numpy():
    with pytest.raises(TypeError, match="dask array"):
        calibrate_blockwise(JInvariantGaussian(), {"sigma": [1.0]}, np.zeros((1, 8, 8)))
