"""DiffusionSmoother: MAGIC's operator, an exactly J-invariant prediction, every t in
one sweep."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist

from sklearn_n2s.table import DiffusionSmoother, diffusion_path_losses
from sklearn_n2s.table._diffusion import (
    ComplementPCA,
    diffusion_operator,
    fold_predictions,
    row_folds,
)
from sklearn_n2s.utils.estimator_checks import (
    check_dtype_preserved,
    check_j_invariance,
    check_no_mutation,
)


def clusters(n_per=40, g=24, seed=0):
    """Poisson counts of four cell types (float64), far from 0..1."""
    rng = np.random.default_rng(seed)
    profiles = rng.gamma(1.0, 20.0, (4, g))
    return rng.poisson(np.repeat(profiles, n_per, axis=0)).astype(np.float64)


@pytest.mark.parametrize("params", [
    {"n_groups": 3, "random_state": 0},
    {"n_groups": 4, "n_components": None, "n_folds": 2, "t": 5, "random_state": 1},
    {"n_groups": 2, "n_components": 3, "n_folds": 7, "t": 1, "decay": 2.0,
     "random_state": 2},
])
@pytest.mark.parametrize("sparse", [False, True])
def test_j_invariance(params, sparse):
    X = clusters()
    X = sp.csr_matrix(X) if sparse else X
    change = check_j_invariance(DiffusionSmoother(n_neighbors=4, **params), X)
    assert change > 1e-3  # the probes moved other outputs: they reached the estimator


def test_no_mutation_and_float32_kept():
    X = clusters().astype(np.float32)
    check_no_mutation(DiffusionSmoother(random_state=0), X)
    check_dtype_preserved(DiffusionSmoother(random_state=0), X)
    out = DiffusionSmoother(random_state=0).fit(X).transform(sp.csr_matrix(X))
    assert out.dtype == np.float32 and out.shape == X.shape


def test_operator_is_magic_kernel():
    """Affinities exp(-(d / b_i)^decay) over the 3k nearest other rows, b_i the distance
    to the k-th, 1 on the diagonal, (K + K^T) / 2, rows normalised: checked against
    the same built from the full distance matrix."""
    rng = np.random.default_rng(0)
    F = rng.normal(size=(30, 3))
    k, decay = 2, 1.5
    P = diffusion_operator(F, k, decay).toarray()
    D = cdist(F, F)
    np.fill_diagonal(D, np.inf)
    order = np.argsort(D, axis=1)
    K = np.zeros_like(D)
    for i in range(len(F)):
        near = order[i, : 3 * k]
        bandwidth = D[i, order[i, k - 1]]
        K[i, near] = np.exp(-(D[i, near] / bandwidth) ** decay)
    K[K < 1e-4] = 0
    K = (K + K.T) / 2 + np.eye(len(F))
    np.testing.assert_allclose(P, K / K.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-12)


def test_transform_is_operator_power_and_keeps_constants():
    X = clusters()
    X[:, 5] = 7.0  # a constant column stays constant under a Markov operator
    smoother = DiffusionSmoother(3, n_groups=3, random_state=0).fit(X)
    out = smoother.transform(X)
    np.testing.assert_allclose(out[:, 5], 7.0, rtol=1e-12)
    # the search's coordinates: the principal components, scaled to at most 1, float32
    features = ComplementPCA(X, 100).coordinates(np.arange(X.shape[1]))
    features = (features / np.abs(features).max()).astype(np.float32)
    P = diffusion_operator(features, smoother.n_neighbors)
    np.testing.assert_allclose(out, P @ (P @ (P @ X)), rtol=1e-10)
    assert np.abs(out - X).max() > 1.0  # it smooths


def test_path_losses_equal_the_loss_at_each_t():
    X = clusters()
    smoother = DiffusionSmoother(n_neighbors=4, n_groups=3, random_state=0).fit(X)
    path = diffusion_path_losses(smoother, X, [4, 1, 2])
    direct = [smoother.set_params(t=t).self_supervised_loss(X) for t in (4, 1, 2)]
    np.testing.assert_allclose(path, direct, rtol=1e-12)
    # on four well separated cell types more diffusion predicts better than one step
    assert path[0] < path[1]
    # a column subset estimates the same loss
    subset = diffusion_path_losses(smoother, X, [4, 1, 2], max_columns=4)
    np.testing.assert_allclose(subset, path, rtol=0.3)
    assert not np.allclose(subset, path, rtol=1e-9)


def test_complement_pca_is_pca_and_never_sees_the_left_out_columns():
    from sklearn.decomposition import PCA

    X = clusters()
    pca = ComplementPCA(sp.csr_matrix(X), 5)
    ours = pca.coordinates(np.arange(X.shape[1]))
    theirs = PCA(5).fit_transform(X)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), rtol=1e-6, atol=1e-8)
    keep = np.arange(6, X.shape[1])
    moved = X.copy()
    moved[:, :6] = np.random.default_rng(1).normal(size=(len(X), 6)) * 1e6
    np.testing.assert_array_equal(ComplementPCA(moved, 5).coordinates(keep),
                                  ComplementPCA(X, 5).coordinates(keep))


def test_neighbour_grid_shares_the_search():
    """n_neighbors=[3, 6]: each row of losses is that k's own path."""
    X = clusters()
    smoother = DiffusionSmoother(n_neighbors=6, n_groups=3, random_state=0).fit(X)
    grid = diffusion_path_losses(smoother, X, [1, 3], n_neighbors=[3, 6])
    assert grid.shape == (2, 2)
    for row, k in zip(grid, [3, 6]):
        np.testing.assert_allclose(
            row, diffusion_path_losses(smoother.set_params(n_neighbors=k), X, [1, 3]),
            rtol=1e-12)


def test_fold_prediction_ignores_own_fold():
    """A row's prediction is a weighted mean of the rows of other folds only."""
    rng = np.random.default_rng(0)
    n = 50
    P = sp.csr_matrix(rng.random((n, n)) * (rng.random((n, n)) < 0.2) + np.eye(n))
    P = sp.diags(1 / np.asarray(P.sum(axis=1)).ravel()) @ P
    values = rng.normal(size=(n, 3))
    folds = row_folds(n, 3, seed=0)
    (_, before), = fold_predictions(P, values, folds, [3])
    moved = values.copy()
    moved[folds == 1] += 1e6
    (_, after), = fold_predictions(P, moved, folds, [3])
    np.testing.assert_array_equal(after[folds == 1], before[folds == 1])
    assert np.abs(after[folds != 1] - before[folds != 1]).max() > 1.0


def test_refusals():
    X = clusters(n_per=2)  # 8 rows
    with pytest.raises(ValueError, match=r"8 rows \(n_samples=8\).*n_neighbors=8"):
        DiffusionSmoother(n_neighbors=8).fit(X)
    with pytest.raises(ValueError, match="n_folds"):
        DiffusionSmoother(n_folds=1).fit(X)
    smoother = DiffusionSmoother(n_neighbors=2, n_groups=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="t must hold diffusion times >= 1"):
        diffusion_path_losses(smoother, X, [0, 2])
    with pytest.raises(ValueError, match="max_columns must be a positive int"):
        diffusion_path_losses(smoother, X, [1], max_columns=0)
    with pytest.raises(ValueError, match="8 rows"):
        smoother.set_params(n_neighbors=8).transform(X)
    wide = sp.random(30, 9000, density=0.01, format="csr", random_state=0)
    with pytest.raises(ValueError, match="covariance matrix of the 9000 columns"):
        DiffusionSmoother(n_neighbors=2, random_state=0).fit(wide).transform(wide)


def test_huge_values_are_swept_in_float64():
    """The curve's float32 sweep would overflow on values near 1e100 (accepted input)."""
    X = clusters() * 1e98
    smoother = DiffusionSmoother(n_neighbors=4, n_groups=3, random_state=0).fit(X)
    losses = diffusion_path_losses(smoother, X, [1, 2])
    assert np.all(np.isfinite(losses)) and np.all(losses > 0)
    np.testing.assert_allclose(losses / 1e196,
                               diffusion_path_losses(smoother, X / 1e98, [1, 2]),
                               rtol=1e-5)


def test_rows_not_reached_are_predicted_by_the_other_folds_means():
    # An operator without edges: no row of another fold is reached, so each row is
    # predicted by the column means of the rows outside its fold (and a row that is
    # reached, by the diffusion).
    rng = np.random.default_rng(0)
    values = rng.poisson(50.0, (12, 3)).astype(np.float64)
    folds = row_folds(12, 3, seed=0)
    operator = sp.identity(12, format="csr", dtype=np.float32).tolil()
    operator[0, 1] = operator[1, 0] = 1.0  # rows 0 and 1 see each other
    operator = sp.csr_matrix(operator / operator.sum(axis=1))
    (_, prediction), = fold_predictions(operator, values, folds, [1])
    for i in range(12):
        if i in (0, 1) and folds[0] != folds[1]:
            np.testing.assert_allclose(prediction[i], values[1 - i], rtol=1e-6)
        elif i > 1:
            np.testing.assert_allclose(prediction[i],
                                       values[folds != folds[i]].mean(axis=0))
