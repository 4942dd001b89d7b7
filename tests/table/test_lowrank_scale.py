"""LowRankDenoiserCV at scale: folds read in place, one held-out pass, the same picks.

The blockwise rewrite must score exactly what the committed implementation scored: the
reference values below are that implementation's (commit 526df2e) on the same matrix.
"""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import KFold

from sklearn_n2s.table import LowRankDenoiser, LowRankDenoiserCV, _gram
from sklearn_n2s.table._gram import held_out_losses
from sklearn_n2s.table._lowrank import GroupProjection
from sklearn_n2s.utils import _table_validation
from sklearn_n2s.utils.estimator_checks import check_j_invariance

GRID = [2, 4, 6, 8, 10, 15, 20]
# LowRankDenoiserCV(GRID, random_state=0) at commit 526df2e on log1p_counts():
# (picked rank, mean_losses_), sparse input (randomized SVD) and dense (svd_solver='full').
BEFORE = {
    "randomized": (6, [0.12037249368244866, 0.11893945611669478, 0.11778160562023143,
                       0.12187136438607359, 0.12681577432563507, 0.13904079695224347,
                       0.15175223230598908]),
    "full": (6, [0.1203726994026426, 0.11893887766407714, 0.11776411003310173,
                 0.12194379052491254, 0.1269936827175155, 0.13989767310057893,
                 0.15380648530757354]),
}


def log1p_counts(n=1500, g=120, rank=6, seed=0):
    """Sparse log1p Poisson counts of a rank-6 gamma model (25 % non-zero)."""
    rng = np.random.default_rng(seed)
    rates = 0.15 * rng.gamma(0.6, 1.0, (n, rank)) @ rng.gamma(0.6, 1.0, (rank, g))
    X = sp.csr_matrix(rng.poisson(rates).astype(np.float64))
    X.data = np.log1p(X.data)
    return X


@pytest.fixture(scope="module")
def counts():
    return log1p_counts()


@pytest.mark.parametrize("solver,dtype", [("randomized", np.float32),
                                          ("full", np.float64)])
def test_same_pick_and_losses_as_before(counts, solver, dtype):
    X = counts.astype(dtype)
    if solver == "full":
        X = X.toarray()
    model = LowRankDenoiserCV(GRID, random_state=0, n_jobs=2).fit(X)
    rank, losses = BEFORE[solver]
    assert model.n_components_ == rank
    # float32 data: means summed in float64 by block (scipy's, before: float32-exact).
    np.testing.assert_allclose(model.mean_losses_, losses, rtol=1e-6)
    assert model.transform(X[:5]).dtype == dtype  # float32 kept


def test_threads_do_not_change_results(counts, monkeypatch):
    monkeypatch.setattr(_gram, "CHUNK_ENTRIES", 2**14)  # many blocks for the threads
    cv = KFold(3, shuffle=True, random_state=1)
    one = LowRankDenoiserCV([3, 6], cv=cv, random_state=0, n_jobs=1).fit(counts)
    two = LowRankDenoiserCV([3, 6], cv=cv, random_state=0, n_jobs=2).fit(counts)
    np.testing.assert_array_equal(one.losses_, two.losses_)
    np.testing.assert_array_equal(one.components_, two.components_)


@pytest.mark.parametrize("sparse", [True, False])
def test_fold_read_in_place_equals_fit_on_a_copy(counts, sparse):
    X = counts.astype(np.float32) if sparse else counts.toarray()
    train = np.sort(next(KFold(3, shuffle=True, random_state=0).split(X))[0])
    copy = LowRankDenoiser(12, svd_solver="randomized", random_state=0).fit(X[train])
    in_place = LowRankDenoiser(12, svd_solver="randomized", random_state=0)
    in_place.n_features_in_ = X.shape[1]
    in_place._fit_decomposition(X, 12, rows=train)
    # float32 data: the blocks are summed in float64, scipy's mean of the whole matrix
    # in float32 precision (4e-6 apart here).
    rtol = 1e-5 if sparse else 1e-12
    np.testing.assert_allclose(in_place.mean_, copy.mean_, rtol=rtol)
    np.testing.assert_allclose(in_place.components_, copy.components_, atol=100 * rtol)
    np.testing.assert_allclose(in_place.singular_values_, copy.singular_values_, rtol=rtol)


@pytest.mark.parametrize("loss", ["mse", "mae", "poisson"])
def test_one_pass_losses_equal_the_invariant_prediction(counts, loss):
    X = counts[:400]
    model = LowRankDenoiser(8, n_groups=7, random_state=0).fit(counts[600:])
    ranks = [1, 3, 8]
    one_pass = model.truncation_losses(X, ranks, loss=loss)
    explicit = [model._truncated(k).self_supervised_loss(X, loss=loss) for k in ranks]
    np.testing.assert_allclose(one_pass, explicit, rtol=1e-10)
    # The truncations scored are exactly J-invariant.
    check_j_invariance(model._truncated(6), X, delta=50.0, atol=1e-10)


@pytest.mark.parametrize("sparse", [True, False])
def test_held_out_squared_error_ignores_the_scored_entry(counts, sparse):
    """Property: perturbing x_ij by d moves group J's squared error by (2 r d + d^2) / N
    with r fixed, so L(d) + L(-d) - 2 L(0) = 2 d^2 / N exactly; a prediction that leaked
    x_ij with weight w would give 2 d^2 (1 - w)^2 / N."""
    X = counts[:300].toarray()
    model = LowRankDenoiser(8, n_groups=5, random_state=0).fit(counts[300:])
    rng = np.random.default_rng(0)
    for _ in range(6):
        group = model.groups_[rng.integers(len(model.groups_))]
        i, j = rng.integers(X.shape[0]), rng.choice(group)
        projection = [GroupProjection(model.mean_, model.components_, group, [2, 8])]

        def loss(d, i=i, j=j, projection=projection):
            changed = X.copy()
            changed[i, j] += d
            data = sp.csr_matrix(changed) if sparse else changed
            return held_out_losses(data, projection, model.components_, "mse")

        d = 40.0
        second_difference = loss(d) + loss(-d) - 2 * loss(0.0)
        np.testing.assert_allclose(second_difference, 2 * d**2 / X.size, rtol=1e-8)


def _traced_peak_of_fit(model, X):
    """Peak of the Python allocations (bytes) while ``model.fit(X)`` runs."""
    tracemalloc.start()
    try:
        model.fit(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_no_copy_of_the_folds(monkeypatch):
    """The fit's extra memory stays well below the matrix: no fold copies, no float64
    copy of float32 data (the code before copied 2/3 of the matrix per fold, in float64)."""
    monkeypatch.setattr(_gram, "CHUNK_ENTRIES", 2**16)  # blocks: 1/100 of the matrix
    rng = np.random.default_rng(0)
    n, g = 20_000, 300
    X = sp.random(n, g, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    X.data = rng.poisson(3.0, X.nnz).astype(np.float32) + 1
    matrix_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    peak = _traced_peak_of_fit(LowRankDenoiserCV([2, 4], n_groups=5, random_state=0), X)
    # What remains: the thin n_train x (rank + oversampling) products and their QR.
    assert peak < 0.5 * matrix_bytes, (peak, matrix_bytes)


def test_one_tall_product_at_a_time(monkeypatch):
    """The randomized SVD holds one n_train x (max rank + oversampling) array at a time.

    The QR overwrites the product in place and the previous basis is released before
    the next product: at 1M cells each such float64 array is 0.2 GB (the subspace
    iteration kept two alive, 2.2x the array's size traced here, before).
    """
    monkeypatch.setattr(_gram, "CHUNK_ENTRIES", 2**16)
    rng = np.random.default_rng(0)
    n, g = 60_000, 200
    X = sp.random(n, g, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    X.data = rng.poisson(3.0, X.nnz).astype(np.float32) + 1
    tall_bytes = (2 * n // 3) * (30 + 10) * 8  # training rows x (max rank + 10), float64
    model = LowRankDenoiserCV([2, 30], n_groups=5, random_state=0, n_jobs=2)
    peak = _traced_peak_of_fit(model, X)
    assert peak < 1.5 * tall_bytes, peak / tall_bytes  # 1.21x measured


def test_n_jobs_is_validated(counts):
    with pytest.raises(ValueError, match="n_jobs"):
        LowRankDenoiserCV(GRID, n_jobs=0).fit(counts)
    with pytest.raises(ValueError, match="n_jobs"):
        LowRankDenoiser(2, n_jobs=True).fit(counts)


def test_large_values_take_the_overflow_safe_pass(monkeypatch):
    """Sums of squares of values near 1e150 overflow; the loss is still finite."""
    X, _ = np.random.default_rng(0).normal(size=(200, 12)), None
    X = X * 1e150 / np.abs(X).max()
    model = LowRankDenoiser(2, n_groups=3, svd_solver="full", random_state=0).fit(X)
    losses = model.truncation_losses(X, [1, 2])
    assert np.all(np.isfinite(losses))
    np.testing.assert_allclose(losses[1], model.self_supervised_loss(X), rtol=1e-9)
    assert _table_validation.MAX_TABLE_MAGNITUDE == 1e150
