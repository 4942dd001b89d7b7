"""JInvariantDenoiser: any function through the grid cosets, its kwargs as parameters."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.restoration import denoise_tv_chambolle
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import FullSplit
from sklearn_n2s.image import JInvariantDenoiser, JInvariantTV, MaskedImageCache
from sklearn_n2s.masking import invariant_predict, neighbour_interpolation
from sklearn_n2s.utils.estimator_checks import check_denoiser, check_j_invariance


def box3(image, size=3):
    """A plain mean filter with an explicit signature (no **kwargs)."""
    from scipy import ndimage as ndi

    return ndi.uniform_filter(image, size=size, mode="reflect")


def test_kwargs_are_parameters_get_set_clone_pickle():
    est = JInvariantDenoiser(denoise_tv_chambolle, weight=0.2, stride=3)
    assert est.get_params()["weight"] == 0.2
    assert est.get_params()["stride"] == 3
    est.set_params(weight=0.5, eps=1e-3)  # eps was not given at construction
    copy = clone(est)
    assert copy.get_params()["weight"] == 0.5 and copy.eps == 1e-3
    assert copy.denoise_kwargs_ == {"weight": 0.5, "eps": 1e-3}
    assert pickle.loads(pickle.dumps(copy)).get_params() == copy.get_params()


def test_unknown_kwarg_refused_by_set_params_and_fit():
    est = JInvariantDenoiser(box3)
    with pytest.raises(ValueError, match="Invalid parameter 'sigma'.*box3"):
        est.set_params(sigma=1.0)
    with pytest.raises(ValueError, match=r"\['sigma'\].*box3"):
        JInvariantDenoiser(box3, sigma=1.0).fit(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="identity"):
        JInvariantDenoiser(size=3).fit(np.zeros((1, 8, 8)))


def test_grid_search_over_a_function_kwarg(rng):
    # photon counts on a gentle ramp: a wider mean predicts better
    clean = np.linspace(100, 200, 48)[:, np.newaxis] * np.ones(48)
    X = rng.poisson(clean).astype(np.uint16)[np.newaxis]
    search = GridSearchCV(JInvariantDenoiser(box3), {"size": [1, 5]}, cv=FullSplit())
    assert search.fit(X).best_params_ == {"size": 5}
    # size=1 is the identity: its invariant output is the fill (the interpolation)
    est = JInvariantDenoiser(box3, size=1).fit(X)
    fill = neighbour_interpolation(X / 65535.0)
    np.testing.assert_allclose(est.invariant_transform(X), fill, atol=1e-12)


def test_invariant_is_the_masking_core_and_ordinary_the_function(rng):
    X = rng.random((2, 20, 18))
    est = JInvariantDenoiser(denoise_tv_chambolle, weight=0.3, output="ordinary").fit(X)

    def stack(Xm):
        return np.stack([denoise_tv_chambolle(x, weight=0.3) for x in Xm])

    expected = invariant_predict(stack, X, stride=4, fill="interpolate")[0]
    np.testing.assert_allclose(est.invariant_transform(X), expected, atol=1e-12)
    np.testing.assert_allclose(est.transform(X), stack(X), atol=1e-12)


def test_function_works_in_the_input_units(rng):
    # uint16 with weight in grey levels == the same data as floats with weight / 65535
    X = rng.integers(1000, 60000, (1, 16, 16)).astype(np.uint16)
    units = JInvariantDenoiser(denoise_tv_chambolle, weight=3000.0).fit(X)
    floats = JInvariantDenoiser(denoise_tv_chambolle, weight=3000.0 / 65535).fit(X / 65535)
    np.testing.assert_allclose(units.invariant_transform(X),
                               floats.invariant_transform(X / 65535), atol=1e-9)


def test_identity_default_and_channel_axis_passed(rng):
    X = rng.random((1, 10, 12, 3))
    seen = {}

    def spy(image, channel_axis=None):
        seen["channel_axis"], seen["shape"] = channel_axis, image.shape
        return image

    JInvariantDenoiser(spy, channel_axis=-1).fit(X).transform(X)
    assert seen == {"channel_axis": -1, "shape": (10, 12, 3)}
    identity = JInvariantDenoiser(channel_axis=-1).fit(X)
    np.testing.assert_allclose(identity.invariant_transform(X),
                               neighbour_interpolation(X, channel_axis=-1), atol=1e-12)


@pytest.mark.parametrize("X, params", [
    (np.random.default_rng(1).integers(0, 256, (2, 12, 13), dtype=np.uint8), {}),
    (np.random.default_rng(2).random((1, 6, 7, 8)), {}),  # 3-D
    (np.random.default_rng(3).random((1, 9, 10, 3)), {"channel_axis": -1}),
])
def test_j_invariance_and_contract(X, params):
    check_denoiser(JInvariantDenoiser(denoise_tv_chambolle, weight=0.2, **params), X)


def test_shape_changing_function_refused(rng):
    est = JInvariantDenoiser(lambda image: image[1:]).fit(rng.random((1, 8, 8)))
    with pytest.raises(ValueError, match="must keep the shape"):
        est.transform(rng.random((1, 8, 8)))


def test_cache_reused_across_sweep_same_results(rng):
    X = rng.random((1, 24, 24))
    cache = MaskedImageCache()
    est = JInvariantDenoiser(denoise_tv_chambolle, memory=cache)
    plain = JInvariantDenoiser(denoise_tv_chambolle)
    for weight in (0.05, 0.1, 0.2):
        a = clone(est).set_params(weight=weight).fit(X).self_supervised_loss(X)
        b = clone(plain).set_params(weight=weight).fit(X).self_supervised_loss(X)
        assert a == b
    assert (cache.misses, cache.hits) == (1, 2)
    # TV is the same machinery: a thin subclass agrees with the generic wrapper (TV's
    # defaults: a fixed number of iterations)
    tv = JInvariantTV(weight=0.1).fit(X)
    generic = JInvariantDenoiser(denoise_tv_chambolle, weight=0.1, eps=0.0,
                                 max_num_iter=100).fit(X)
    np.testing.assert_allclose(tv.invariant_transform(X), generic.invariant_transform(X),
                               atol=1e-12)


def test_dask_needs_a_reach_and_then_matches(rng):
    da = pytest.importorskip("dask.array")
    X = rng.random((1, 40, 40))
    est = JInvariantDenoiser(box3).fit(X)
    with pytest.raises(TypeError, match="reach"):
        est.transform(da.from_array(X, chunks=(1, 20, 20)))
    est = JInvariantDenoiser(box3, reach=1).fit(X)
    lazy = est.invariant_transform(da.from_array(X, chunks=(1, 20, 20))).compute()
    np.testing.assert_allclose(lazy, est.invariant_transform(X), atol=1e-12)
    assert check_j_invariance(est, X, n_probes=2) > 0


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(st.integers(2, 9), st.integers(2, 9)),
       stride=st.integers(2, 4), fill=st.sampled_from(["interpolate", "median", "zero"]),
       seed=st.integers(0, 2**16))
def test_any_function_any_grid_is_j_invariant(shape, stride, fill, seed):
    # a nonlinear function that mixes every pixel: only the masking keeps invariance
    X = np.random.default_rng(seed).integers(0, 65536, (1,) + shape).astype(np.uint16)

    def global_mix(image, power=2.0):
        return np.tanh(image / 65535.0) * 65535.0 + np.mean(image**power) ** (1 / power)

    est = JInvariantDenoiser(global_mix, stride=stride, fill=fill)
    check_j_invariance(est, X, n_probes=2, random_state=seed)
