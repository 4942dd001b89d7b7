"""The fifth pass on ``denoise``'s diffusion: a diffusion time between two steps (its
J-invariance and its loss read off the sweep), the sweep's stop at a significant rise,
the products into reused buffers, the float32 exact search, the counts validated
without scikit-learn's pass and the low-rank screening fold started from the output's
components."""

import types

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import KFold

from sklearn_n2s.table import DiffusionSmoother, LibrarySizeNormalizer, denoise
from sklearn_n2s.table._clustered_search import exact_neighbours
from sklearn_n2s.table._diffusion import (
    ComplementPCA,
    _best_mixture,
    _path_losses,
    _product_into,
    _rise_is_significant,
)
from sklearn_n2s.table._lowrank import LowRankDenoiserCV
from sklearn_n2s.utils.estimator_checks import check_j_invariance

anndata = pytest.importorskip("anndata")


def cell_types(n_per=30, g=30, types=8, seed=0):
    """Poisson counts of a few cell types (float64), far from 0..1."""
    rng = np.random.default_rng(seed)
    profiles = rng.gamma(1.0, 20.0, (types, g))
    return rng.poisson(np.repeat(profiles, n_per, axis=0)).astype(np.float64)


def test_fractional_time_interpolates_the_two_steps_around_it():
    X = cell_types()
    smoother = DiffusionSmoother(n_neighbors=4, n_groups=3, random_state=0).fit(X)
    two, three = (smoother.set_params(t=t).transform(X) for t in (2, 3))
    between = smoother.set_params(t=2.25).transform(X)
    np.testing.assert_allclose(between, 0.75 * two + 0.25 * three, rtol=1e-10)
    assert np.abs(between - two).max() > 1e-3  # the fraction moved the output
    # float32 kept, through the reused product buffers
    out = smoother.set_params(t=1.5).fit(X.astype(np.float32)).transform(
        sp.csr_matrix(X.astype(np.float32)))
    assert out.dtype == np.float32
    one, two = (smoother.set_params(t=t).transform(sp.csr_matrix(X.astype(np.float32)))
                for t in (1, 2))
    np.testing.assert_allclose(out, 0.5 * one + 0.5 * two, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_fractional_time_is_j_invariant(sparse):
    X = cell_types()
    X = sp.csr_matrix(X) if sparse else X
    change = check_j_invariance(
        DiffusionSmoother(1.4, n_neighbors=4, n_groups=3, random_state=0), X)
    assert change > 1e-3


def test_mixture_of_two_times_is_scored_from_the_sweep():
    """The best share f between t and t + 1 read off the sweep's residual products:
    its loss is the smoother's own at t + f, and no f on a fine grid does better."""
    X = cell_types()
    smoother = DiffusionSmoother(n_neighbors=4, n_groups=3, random_state=0).fit(X)
    times = [1, 2, 3, 5]
    losses, fractions, mixed = _path_losses(smoother, smoother._check_input(X), times,
                                            mixtures=True)
    direct = [smoother.set_params(t=t).self_supervised_loss(X) for t in times]
    np.testing.assert_allclose(losses, direct, rtol=1e-10)
    assert np.isnan(mixed[2]) and np.isnan(mixed[3])  # 3 and 5 are not adjacent; 5 last
    for i in (0, 1):
        f = fractions[i]
        assert 0.0 <= f <= 1.0
        np.testing.assert_allclose(
            smoother.set_params(t=times[i] + f).self_supervised_loss(X), mixed[i],
            rtol=1e-9)
        assert mixed[i] <= min(losses[i], losses[i + 1]) + 1e-12
        grid = [smoother.set_params(t=times[i] + g).self_supervised_loss(X)
                for g in np.linspace(0, 1, 6)]
        assert mixed[i] <= min(grid) + 1e-12
    # the stopping sweep (every group in step) gives the same figures
    stopping = _path_losses(smoother, smoother._check_input(X), times, [4],
                            stop_after_rises=len(times), mixtures=True)
    np.testing.assert_allclose(stopping[0][0], losses, rtol=1e-10)
    np.testing.assert_allclose(stopping[2][0, :2], mixed[:2], rtol=1e-10)


def test_best_mixture_is_the_quadratics_minimum():
    a, b = np.array([1.0, -2.0, 0.5, 3.0]), np.array([0.5, -1.0, 1.5, 2.0])
    f, loss = _best_mixture(np.mean(a * a), np.mean(a * b), np.mean(b * b))
    grid = np.linspace(0, 1, 10001)
    values = [np.mean(((1 - g) * a + g * b) ** 2) for g in grid]
    assert abs(f - grid[int(np.argmin(values))]) < 2e-4
    np.testing.assert_allclose(loss, np.mean(((1 - f) * a + f * b) ** 2), rtol=1e-12)
    assert _best_mixture(1.0, 1.0, 1.0) == (0.0, 1.0)  # identical residuals
    assert _best_mixture(1.0, 0.5, 4.0)[0] == pytest.approx(0.5 / 4.0)
    assert _best_mixture(4.0, 2.0, 1.0)[0] == 1.0  # clipped at the later time


def test_significant_rise_stops_the_sweep_after_one_rise():
    """Many small cell types: the curve has one minimum at a small t and rises after
    it. A rise counted as significant stops the sweep at once; otherwise it takes two
    successive rises, and an impossible threshold leaves the two-rise rule alone."""
    X = cell_types(n_per=12, types=16, g=40, seed=1)
    smoother = DiffusionSmoother(n_neighbors=4, n_groups=2, random_state=0).fit(X)
    checked = smoother._check_input(X)
    times = list(range(1, 9))
    full = _path_losses(smoother, checked, times)
    best = int(np.argmin(full))
    assert best < 5 and np.all(np.diff(full[best:]) > 0)  # one minimum
    two = _path_losses(smoother, checked, times, stop_after_rises=2)
    assert np.isnan(two).sum() == len(times) - (best + 3)
    every_rise = _path_losses(smoother, checked, times, stop_after_rises=2,
                              significant_rise=0.0)
    assert np.isnan(every_rise).sum() == len(times) - (best + 2)
    np.testing.assert_allclose(every_rise[:best + 2], full[:best + 2], rtol=1e-12)
    never = _path_losses(smoother, checked, times, stop_after_rises=2,
                         significant_rise=1e9)
    np.testing.assert_array_equal(np.isnan(never), np.isnan(two))


def test_rise_significance_uses_the_rows_spread():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=400)
    assert _rise_is_significant(1.0 + 0.1 * noise, 400, 3.0)
    assert not _rise_is_significant(0.05 + noise, 400, 3.0)  # 0.05 < 3 * 1 / sqrt(400)
    assert not _rise_is_significant(-1.0 + 0.1 * noise, 400, 3.0)  # a fall


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_into_reused_buffer_is_the_sparse_product(dtype):
    rng = np.random.default_rng(0)
    operator = sp.random(60, 60, density=0.1, format="csr", random_state=0, dtype=dtype)
    dense = rng.normal(size=(60, 7)).astype(dtype)
    out = np.full_like(dense, 123.0)  # stale values: overwritten, not added to
    result = _product_into(operator, dense, out)
    assert result is out
    np.testing.assert_allclose(result, operator @ dense, rtol=1e-6)
    # another layout falls back to the plain product
    np.testing.assert_allclose(_product_into(operator, np.asfortranarray(dense), out),
                               operator @ dense, rtol=1e-6)


def test_float32_exact_search_finds_the_float64_neighbours():
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(400, 20)) * np.linspace(3, 0.2, 20)).astype(np.float32)
    features[7] = features[3]  # a duplicate: at distance 0
    d32, i32 = exact_neighbours(features, 12)
    d64, i64 = exact_neighbours(features.astype(np.float64), 12)
    assert np.mean(i32 == i64) > 0.99  # ties aside
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-6)
    assert d32[3, 0] == 0.0 and i32[3, 0] == 7 and d32[7, 0] == 0.0


def test_counts_validated_directly():
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(2.0, 2.0, (120, 30))).astype(np.int64)
    counts[:, 0] += 1  # no empty row
    results = {}
    for name, stored in [("int64", counts), ("float32", counts.astype(np.float32)),
                         ("csc", sp.csc_matrix(counts.astype(np.float64)))]:
        adata = anndata.AnnData(np.zeros(counts.shape, dtype=np.float32))
        adata.layers["counts"] = stored
        denoise(adata, n_components=[1, 2], random_state=0)
        results[name] = adata.layers["denoised"]
    assert results["float32"].dtype == np.float32
    assert results["int64"].dtype == np.float64 and results["csc"].dtype == np.float64
    np.testing.assert_allclose(results["int64"], results["csc"], rtol=1e-10)
    np.testing.assert_allclose(results["float32"], results["int64"], rtol=1e-3,
                               atol=1e-4)
    for bad, message in [(np.nan, "NaN or infinity"), (np.inf, "NaN or infinity"),
                         (-1.0, "negative"), (0.5, "non-integer")]:
        broken = counts.astype(np.float64)
        broken[4, 5] = bad
        adata = anndata.AnnData(np.zeros(counts.shape, dtype=np.float32))
        adata.layers["counts"] = sp.csr_matrix(broken)
        with pytest.raises(ValueError, match=message):
            denoise(adata)
    duck = types.SimpleNamespace(X=None, layers={"counts": sp.coo_matrix(counts)}, uns={},
                                 n_obs=len(counts))
    with pytest.raises(ValueError, match="COO"):
        denoise(duck)


def test_screening_fold_from_the_output_components_is_not_more_eager():
    """The screening fold starts its subspace iteration from all rows' components
    (one product instead of four from a random start): its curve is within a few
    tenths of a percent of the honest fold's, and not above it at its best rank (the
    screen drops the low rank no more readily)."""
    rng = np.random.default_rng(3)
    rates = rng.gamma(2.0, 1.0, (300, 6)) @ rng.gamma(1.0, 1.0, (6, 150))
    counts = rng.poisson(rates).astype(np.float64)
    Z = np.sqrt(LibrarySizeNormalizer(1e4, log=False).fit_transform(counts))
    ranks = [2, 4, 8, 16, 32, 64]
    folds = KFold(3, shuffle=True, random_state=0)
    model = LowRankDenoiserCV(ranks, cv=folds, n_groups=2, random_state=0)
    model._validate_params()
    model.n_features_in_ = Z.shape[1]
    train, test = next(folds.split(Z))
    pca = ComplementPCA(Z, 100)
    covariance = pca.covariance_without(np.sort(test))
    honest = model._fold_losses(Z, train, test, ranks, covariance)
    started = model._fold_losses(Z, train, test, ranks, covariance,
                                 pca.all_loadings()[:, :84])
    np.testing.assert_allclose(started, honest, rtol=0.05)
    assert started.min() <= honest.min() * (1 + 1e-6)
    best = int(np.argmin(honest))
    np.testing.assert_allclose(started[best], honest[best], rtol=3e-3)


def test_pinvh_is_scipys():
    import scipy.linalg

    from sklearn_n2s.table._lowrank import _pinvh

    rng = np.random.default_rng(0)
    for k, rank in [(1, 1), (5, 5), (64, 64), (6, 3)]:
        a = rng.normal(size=(k, rank))
        gram = a @ a.T
        np.testing.assert_allclose(_pinvh(gram), scipy.linalg.pinvh(gram), rtol=1e-6,
                                   atol=1e-10)
