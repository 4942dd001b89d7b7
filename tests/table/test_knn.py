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


# ------------------------------------------------------------------ issue 14, item 3
@pytest.mark.parametrize("search, n_components, sparse", [
    ("shared", None, False), ("shared", None, True), ("shared", 3, False),
    ("shared", 3, True), ("per_group", 2, False),
])
def test_scalable_options_stay_exactly_j_invariant(search, n_components, sparse):
    """Each group's neighbours come from the other groups' columns (or their own PCA)
    only: changing a row's values in group J leaves its prediction on J unchanged, in
    floating point (atol=0), although the index of the other half and the PCA of J move."""
    X, _ = clustered(n_per=30, g=24)
    X = np.abs(X)
    wrap = sp.csr_matrix if sparse else np.asarray
    est = KNNSmoother(5, n_groups=6, search=search, n_components=n_components,
                      random_state=0).fit(X)
    check_j_invariance(est, wrap(X), delta=40.0, atol=0.0, n_probes=6)
    # ...and the ordinary output still looks at the entry
    changed = X.copy()
    changed[0, :] += 40.0
    assert np.abs(est.transform(wrap(changed))[0] - est.transform(wrap(X))[0]).max() > 1.0


def test_shared_search_with_every_row_a_candidate_is_the_exact_search():
    """With 3k >= n - 1 every other row is a candidate: re-ranking without group J gives
    the exact per-group neighbours, so the two searches agree entry for entry."""
    X, _ = clustered(n_per=6, n_clusters=4, g=12)  # 24 rows, k=8: 24 candidates >= 23
    per_group = KNNSmoother(8, n_groups=4, random_state=0).fit(X)
    shared = KNNSmoother(8, n_groups=4, search="shared", random_state=0).fit(X)
    for a, b in zip(per_group.group_neighbours(X), shared.group_neighbours(X)):
        np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(b, axis=1))
    np.testing.assert_allclose(shared.invariant_transform(X),
                               per_group.invariant_transform(X), rtol=1e-12)


def test_full_rank_group_embeddings_keep_the_distances():
    """A PCA keeping all of a group's columns is a rotation (plus centring) of them:
    distances, hence neighbours and outputs, are those of the raw columns."""
    X, _ = clustered(n_per=20, g=12)
    raw = KNNSmoother(4, n_groups=3, random_state=0).fit(X)
    pca = KNNSmoother(4, n_groups=3, n_components=4, random_state=0).fit(X)
    np.testing.assert_allclose(pca.invariant_transform(X), raw.invariant_transform(X))
    np.testing.assert_allclose(pca.transform(X), raw.transform(X))


def test_shared_search_loses_little_against_exact_neighbours():
    X, clean = clustered(n_per=60, n_clusters=5, g=40, noise=2.0)
    exact = KNNSmoother(10, random_state=0).fit(X).self_supervised_loss(X)
    shared = KNNSmoother(10, search="shared", random_state=0).fit(X).self_supervised_loss(X)
    assert shared <= 1.02 * exact


def test_loss_is_computed_without_a_dense_copy_of_a_sparse_table(monkeypatch):
    """The loss of a sparse table runs in row blocks (each a small dense array)."""
    import sklearn_n2s.table._knn as knn

    rng = np.random.default_rng(0)
    X = sp.random(3000, 200, density=0.05, format="csr", random_state=1,
                  data_rvs=lambda n: rng.poisson(3.0, n) + 1.0)
    est = KNNSmoother(5, n_groups=4, search="shared", n_components=4, random_state=0).fit(X)
    expected = est.self_supervised_loss(X.toarray())
    monkeypatch.setattr(knn, "row_chunks",
                        lambda n, m: [slice(s, min(s + 500, n)) for s in range(0, n, 500)])
    shapes = [p.shape for _, p, _ in est._invariant_blocks(X)]
    assert len(shapes) > 1 and max(s[0] for s in shapes) < X.shape[0]
    assert est.self_supervised_loss(X) == pytest.approx(expected, rel=1e-10)


def test_options_are_checked():
    X, _ = clustered(n_per=10, g=8)
    with pytest.raises(ValueError, match="metric='manhattan'.* cannot be combined with "
                                         "search='shared' or n_components"):
        KNNSmoother(3, n_groups=2, metric="manhattan", search="shared").fit(X)
    with pytest.raises(ValueError, match="cannot be combined"):
        KNNSmoother(3, n_groups=2, metric="manhattan", n_components=2).fit(X)
    with pytest.raises(InvalidParameterError, match="'algorithm' parameter"):
        KNNSmoother(3, algorithm="annoy").fit(X)
    with pytest.raises(InvalidParameterError, match="'n_components' parameter"):
        KNNSmoother(3, n_components=True).fit(X)


def test_nndescent_is_exactly_invariant_and_close_to_exact():
    """Approximate neighbours (pynndescent): still exactly J-invariant (the search for
    group J never sees J), reproducible for a seed, and nearly the exact neighbours."""
    pytest.importorskip("pynndescent")
    X, _ = clustered(n_per=100, n_clusters=4, g=20, noise=1.5)
    approx = KNNSmoother(10, n_groups=4, algorithm="nndescent", search="shared",
                         random_state=0).fit(X)
    check_j_invariance(approx, X, delta=40.0, atol=0.0, n_probes=1)
    exact = KNNSmoother(10, n_groups=4, search="shared", random_state=0).fit(X)
    found, truth = approx.group_neighbours(X), exact.group_neighbours(X)
    recall = np.mean([len(set(a) & set(b)) / 10 for fa, fb in zip(found, truth)
                      for a, b in zip(fa, fb)])
    assert recall > 0.95
    np.testing.assert_array_equal(approx.transform(X), approx.transform(X))
    assert approx.self_supervised_loss(X) <= 1.01 * exact.self_supervised_loss(X)
