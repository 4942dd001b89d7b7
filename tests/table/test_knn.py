"""KNNSmoother: neighbours found without the group's columns, the row itself excluded."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import FullSplit, SelfSupervisedScorer
from sklearn_n2s.table import KNNSmoother
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def clustered(n_per=40, n_clusters=4, g=20, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_clusters, g))
    clean = np.repeat(centres, n_per, axis=0)
    return clean + rng.normal(scale=noise, size=clean.shape), clean


@pytest.mark.parametrize("sparse", [False, True])
def test_invariant_prediction_ignores_the_entry(sparse):
    X, _ = clustered()
    X = np.abs(X)
    wrap = sp.csr_matrix if sparse else np.asarray
    est = KNNSmoother(5, n_groups=4, random_state=0).fit(X)
    check_j_invariance(est, wrap(X), delta=50.0, atol=1e-10)
    rng = np.random.default_rng(1)
    for _ in range(5):  # the ordinary output does look at the entry
        i, j = rng.integers(X.shape[0]), rng.integers(X.shape[1])
        changed = X.copy()
        changed[i, j] += 50.0
        assert abs(est.transform(changed)[i, j] - est.transform(X)[i, j]) > 1e-3


def test_self_is_excluded_even_with_duplicates():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0], [10.0, 10.0]])
    est = KNNSmoother(1, n_groups=2).fit(X)
    np.testing.assert_allclose(est.invariant_transform(X), X)  # the twin, not itself
    changed = X.copy()
    changed[0, 0] = 5.0
    assert est.invariant_transform(changed)[0, 0] == 0.0


def test_transform_averages_self_and_neighbours():
    X = np.array([[0.0], [1.0], [10.0], [12.0]])
    out = KNNSmoother(1, n_groups=1 + 1).fit(np.hstack([X, X])).transform(np.hstack([X, X]))
    np.testing.assert_allclose(out[:, 0], [0.5, 0.5, 11.0, 11.0])


def test_grid_search_picks_a_cluster_sized_neighbourhood():
    X, clean = clustered()
    grid = [1, 5, 20, 39, 100]
    search = GridSearchCV(KNNSmoother(random_state=0), {"n_neighbors": grid},
                          scoring=SelfSupervisedScorer(), cv=FullSplit()).fit(X)
    truth = {k: np.mean((KNNSmoother(k).fit(X).transform(X) - clean) ** 2) for k in grid}
    assert search.best_params_["n_neighbors"] == min(truth, key=truth.get)


def test_sparse_and_dense_agree():
    X, _ = clustered()
    X = np.abs(X)
    est = KNNSmoother(5, random_state=0).fit(X)
    np.testing.assert_allclose(est.invariant_transform(sp.csr_matrix(X)),
                               est.invariant_transform(X))
    np.testing.assert_allclose(est.transform(sp.csc_matrix(X)), est.transform(X))


def test_bad_input():
    X, _ = clustered(n_per=2, n_clusters=2, g=4)
    with pytest.raises(ValueError, match=r"KNNSmoother got 4 rows \(n_samples=4\), but it "
                                         "needs more than n_neighbors=4"):
        KNNSmoother(4, n_groups=2).fit(X)
    with pytest.raises(InvalidParameterError,
                       match=r"'n_neighbors' parameter .* int in the range \[1, inf\)"):
        KNNSmoother(0, n_groups=2).fit(X)
    with pytest.raises(InvalidParameterError, match="'metric' parameter of KNNSmoother"):
        KNNSmoother(1, n_groups=2, metric="no-such-metric").fit(X)
    with pytest.raises(ValueError, match="n_groups=5 is more than n_features=4"):
        KNNSmoother(1, n_groups=5).fit(X)
    with pytest.raises(ValueError, match="infinity"):
        KNNSmoother(1, n_groups=2).fit(np.where(X > 0, np.inf, X))
    est = KNNSmoother(3, n_groups=2).fit(X)
    with pytest.raises(ValueError, match="got 2 rows"):
        est.transform(X[:2])


def test_never_modifies_input():
    X, _ = clustered()
    before = X.copy()
    est = KNNSmoother(5).fit(X)
    est.transform(X)
    est.score(X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("sparse", [False, True])
def test_one_row_batch_gets_a_clear_error(sparse):
    """The smoother is transductive: a batch of one row has no other row to average
    with. Every method says so, with what to do, instead of a bare n_samples message."""
    X, _ = clustered()
    wrap = sp.csr_matrix if sparse else np.asarray
    est = KNNSmoother(5, n_groups=4, random_state=0).fit(X)
    message = (r"KNNSmoother got 1 row \(n_samples=1\), but it needs more than "
               r"n_neighbors=5: each row is "
               r"averaged with its nearest \*other\* rows of the same call \(the smoother "
               r"is transductive, it keeps no training rows\)\. Pass all the rows to "
               r"smooth together \(at least 6\), or lower n_neighbors\.")
    for method in (est.transform, est.invariant_transform, est.score):
        with pytest.raises(ValueError, match=message):
            method(wrap(X[:1]))
    with pytest.raises(ValueError, match="KNNSmoother got 1 row"):
        KNNSmoother(5, n_groups=4).fit(wrap(X[:1]))
    assert est.transform(wrap(X[:6])).shape == (6, X.shape[1])  # k + 1 rows: fine
