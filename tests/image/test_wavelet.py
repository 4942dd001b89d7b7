"""JInvariantWavelet: wraps skimage's denoise_wavelet; batched masking equals the plain loop."""

import copy
import pickle
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.restoration import denoise_wavelet
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import FullSplit, JInvariantWavelet, WaveletDecompositionCache
from sklearn_n2s.image import _wavelet
from sklearn_n2s.masking import invariant_predict
from sklearn_n2s.utils.estimator_checks import check_j_invariance


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
    np.testing.assert_allclose(est.invariant_transform(X), plain_invariant(est, X), atol=1e-12)


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
    check_j_invariance(est, X, coordinates=[(0,) + index], delta=delta, atol=1e-10)


def test_cache_is_keyed_on_the_data(rng):
    cache = WaveletDecompositionCache()
    X = rng.random((1, 32, 32))
    est = JInvariantWavelet(sigma=0.1, memory=cache).fit(X)
    first = est.invariant_transform(X)
    Y = X.copy()
    Y[0, 5, 5] += 1.0  # same shape, different data: must not reuse X's decomposition
    np.testing.assert_allclose(est.invariant_transform(Y), plain_invariant(est, Y), atol=1e-12)
    np.testing.assert_allclose(est.invariant_transform(X), first)
    assert (cache.misses, cache.hits) == (2, 1)


# ------------------------------------------------------------------ memory= (the cache)
def _sweep(estimator, X, sigmas=(0.05, 0.1, 0.2), modes=("soft", "hard")):
    grid = {"sigma": list(sigmas), "mode": list(modes), "method": ["BayesShrink", "VisuShrink"]}
    search = GridSearchCV(estimator, grid, cv=FullSplit(), refit=False).fit(X)
    return search.cv_results_["mean_test_score"]


def test_clones_share_the_cache_and_a_sweep_hits_it(rng):
    X = rng.random((1, 40, 36))
    cache = WaveletDecompositionCache()
    est = JInvariantWavelet(memory=cache)
    first, second = clone(est), clone(clone(est))
    assert first.memory is cache and second.memory is cache
    assert copy.deepcopy(est).memory is cache
    first.fit(X).score(X)
    assert (cache.misses, cache.hits) == (1, 0)
    second.set_params(sigma=0.3, mode="hard").fit(X).score(X)
    assert (cache.misses, cache.hits) == (1, 1)  # the second step of a sweep reuses it
    # A whole GridSearchCV: 12 candidates, one decomposition.
    cache.clear()
    _sweep(est, X)
    assert (cache.misses, cache.hits) == (1, 11)
    assert len(cache) == 1 and cache.nbytes > 0


def test_results_are_identical_with_and_without_cache(rng):
    X = rng.random((2, 33, 32))
    for params in ({}, {"wavelet": "db2"}, {"stride": 3, "cosets": 4}):
        cached = JInvariantWavelet(memory=WaveletDecompositionCache(), **params)
        plain = JInvariantWavelet(**params)
        np.testing.assert_array_equal(_sweep(cached, X), _sweep(plain, X))
        for output in ("invariant", "shrink"):
            cached.set_params(output=output, sigma=0.1).fit(X)
            plain.set_params(output=output, sigma=0.1).fit(X)
            for _ in range(2):  # the second call reads the cache
                np.testing.assert_array_equal(cached.transform(X), plain.transform(X))


def test_memory_none_keeps_no_state(rng):
    X = rng.random((1, 32, 32))
    est = JInvariantWavelet(sigma=0.1).fit(X)
    state = dict(vars(est))
    est.invariant_transform(X)
    est.score(X)
    assert vars(est) == state
    # no module-level cache remains
    caches = [v for v in vars(_wavelet).values() if isinstance(v, WaveletDecompositionCache)]
    assert caches == []


def test_cache_limits_and_pickle(rng):
    X = rng.random((1, 32, 32))
    cache = WaveletDecompositionCache(max_entries=1)
    est = JInvariantWavelet(sigma=0.1, memory=cache).fit(X)
    est.score(X)
    est.score(X + 1.0)  # evicts X's entry
    est.score(X)
    assert (cache.misses, cache.hits, len(cache)) == (3, 0, 1)
    tiny = WaveletDecompositionCache(max_bytes=100)  # too small to keep anything
    JInvariantWavelet(sigma=0.1, memory=tiny).fit(X).score(X)
    assert len(tiny) == 0 and tiny.nbytes == 0
    # Pickling (process-based parallelism) gives a new, empty cache with the same limits.
    restored = pickle.loads(pickle.dumps(est))
    assert restored.memory is not cache
    assert repr(restored.memory) == repr(cache) == (
        "WaveletDecompositionCache(max_entries=1, max_bytes=536870912)")
    assert len(restored.memory) == 0
    assert restored.score(X) == est.score(X)
    with pytest.raises(ValueError, match="max_entries"):
        WaveletDecompositionCache(max_entries=-1)


def test_cached_coefficients_are_read_only(rng):
    X = rng.random((1, 32, 32))
    cache = WaveletDecompositionCache()
    JInvariantWavelet(sigma=0.1, memory=cache).fit(X).score(X)
    (_, coeffs, _), _ = next(iter(cache._entries.values()))
    assert not coeffs[0].flags.writeable


def test_cache_is_thread_safe(rng):
    X = rng.random((1, 32, 32))
    cache = WaveletDecompositionCache()
    expected = JInvariantWavelet(sigma=0.1).fit(X).score(X)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(JInvariantWavelet(sigma=0.1, memory=cache).fit(X).score(X))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 20
    assert cache.hits + cache.misses == 20 and cache.hits >= 16


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
        est = JInvariantWavelet(output=output).fit(X)
        out = est.transform(X)
    assert np.isfinite(out).all()
    if output == "invariant":
        # No noise found, nothing thresholded: each coset is its masked fill.
        np.testing.assert_allclose(out, plain_invariant(est, X), atol=1e-12)
    else:
        # ordinary: the image itself; shrink: noise variance 0, so lam = 0 (the data).
        np.testing.assert_allclose(out, X, atol=1e-12)


# ------------------------------------------------------ sizes and parameters refused
def test_a_stride_beyond_the_image_is_refused_before_any_work(rng):
    """stride=100 on 12x12 built 10,000 masked copies (2.8 GB and 116 s at stride 1500)."""
    X = rng.random((1, 12, 12))
    est = JInvariantWavelet(stride=100)
    with pytest.raises(ValueError, match=r"stride=100 .*spatial shape \(12, 12\).*<= 24"):
        est.fit(X)
    assert not hasattr(est, "n_spatial_dims_")
    JInvariantWavelet(stride=24, sigma=0.1).fit(X).score(X)  # twice the side: allowed
    # the default stride of 4 on 2-pixel signals (scikit-learn's common checks) is fine
    JInvariantWavelet(spatial_ndim=1).fit(rng.random((5, 2))).score(rng.random((5, 2)))


def test_wavelet_levels_deeper_than_pywt_allows_are_refused(rng):
    X = rng.random((1, 12, 12))  # pywt.dwtn_max_level gives 3 for db1, 0 for db4
    for params, most in ((dict(wavelet_levels=30), 3), (dict(wavelet_levels=4), 3),
                         (dict(wavelet_levels=2, wavelet="db4"), 1)):
        est = JInvariantWavelet(**params)
        with pytest.raises(ValueError, match=rf"wavelet_levels={params['wavelet_levels']} "
                                             rf".*\(12, 12\).*<= {most}"):
            est.fit(X)
        assert not hasattr(est, "n_spatial_dims_")
    JInvariantWavelet(wavelet_levels=3).fit(X).transform(X)
    JInvariantWavelet(wavelet_levels=1, wavelet="db4").fit(X).transform(X)  # as the default


def test_sizes_are_checked_again_for_another_image_size(rng):
    est = JInvariantWavelet(wavelet_levels=5, stride=8).fit(rng.random((1, 64, 64)))
    with pytest.raises(ValueError, match=r"wavelet_levels=5 .*\(12, 12\)"):
        est.transform(rng.random((1, 12, 12)))
    est = JInvariantWavelet(stride=8).fit(rng.random((1, 64, 64)))
    with pytest.raises(ValueError, match=r"stride=8 .*\(3, 2\)"):
        est.score(rng.random((1, 3, 2)))


def test_dask_blocks_are_checked_against_the_whole_image(rng):
    da = pytest.importorskip("dask.array")
    X = rng.random((1, 24, 24))
    est = JInvariantWavelet(sigma=0.1, stride=40).fit(X)  # more than twice a block's side
    lazy = est.invariant_transform(da.from_array(X, chunks=(1, 8, 8)))
    assert lazy.compute().shape == X.shape
    with pytest.raises(ValueError, match=r"stride=40 .*\(12, 12\)"):
        est.transform(da.zeros((1, 12, 12), chunks=(1, 6, 6)))


def test_fit_refuses_more_cosets_than_the_grid_has(rng):
    X = rng.random((1, 16, 16))
    with pytest.raises(ValueError, match="cosets=17 is more than the 16 cosets"):
        JInvariantWavelet(cosets=17).fit(X)
    JInvariantWavelet(cosets=16).fit(X).score(X)


@pytest.mark.parametrize(
    "params, name",
    [(dict(rescale_sigma=None), "rescale_sigma"), (dict(rescale_sigma=1), "rescale_sigma"),
     (dict(convert2ycbcr="yes"), "convert2ycbcr"), (dict(convert2ycbcr=0), "convert2ycbcr"),
     (dict(cosets=True), "cosets"), (dict(wavelet_levels=True), "wavelet_levels"),
     (dict(stride=True), "stride"), (dict(sigma=True), "sigma"), (dict(sigma=np.inf), "sigma")],
)
def test_bad_parameters_are_refused_by_name(params, name, rng):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError,
                       match=f"The '{name}' parameter of JInvariantWavelet"):
        JInvariantWavelet(**params).fit(rng.random((1, 16, 16)))
