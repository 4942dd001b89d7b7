"""ColumnMaskingDenoiser: any transformer made J-invariant over column groups."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import SelfSupervisedScorer
from sklearn_n2s.table import ColumnMaskingDenoiser, LowRankDenoiser
from sklearn_n2s.table._column_masking import elementwise_loss
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def noisy_low_rank(n=300, g=40, rank=3, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, g))
    return clean + rng.normal(scale=noise, size=clean.shape), clean


@pytest.mark.parametrize("fill", ["mean", "zero"])
@pytest.mark.parametrize("sparse", [False, True])
def test_invariant_prediction_ignores_the_entry(fill, sparse):
    X, _ = noisy_low_rank()
    est = ColumnMaskingDenoiser(PCA(3), n_groups=4, fill=fill, random_state=0).fit(X)
    wrap = sp.csr_matrix if sparse else np.asarray
    check_j_invariance(est, wrap(X), delta=100.0, atol=1e-10)
    rng = np.random.default_rng(1)
    for _ in range(5):  # the ordinary output does look at the entry
        i, j = rng.integers(X.shape[0]), rng.integers(X.shape[1])
        changed = X.copy()
        changed[i, j] += 100.0
        assert abs(est.transform(changed)[i, j] - est.transform(X)[i, j]) > 1e-3


def test_transform_is_the_wrapped_transformer():
    X, _ = noisy_low_rank()
    est = ColumnMaskingDenoiser(PCA(3)).fit(X)
    pca = PCA(3).fit(X)
    np.testing.assert_allclose(est.transform(X), pca.inverse_transform(pca.transform(X)))
    # a transformer that keeps the feature space is used as is
    scaler = ColumnMaskingDenoiser(StandardScaler()).fit(X)
    np.testing.assert_allclose(scaler.transform(X), StandardScaler().fit_transform(X))


def test_pca_masked_by_mean_ranks_like_truth():
    X, clean = noisy_low_rank(n=400, g=60, rank=4)
    grid = [1, 2, 4, 8, 16]
    search = GridSearchCV(ColumnMaskingDenoiser(PCA(), random_state=0),
                          {"transformer__n_components": grid},
                          scoring=SelfSupervisedScorer(), cv=3).fit(X)
    assert search.best_params_["transformer__n_components"] == 4


def test_sparse_and_dense_agree():
    X, _ = noisy_low_rank()
    X = np.abs(X)
    for fill in ("mean", "zero"):
        dense = ColumnMaskingDenoiser(TruncatedSVD(3, random_state=0), fill=fill,
                                      random_state=0).fit(X)
        sparse = ColumnMaskingDenoiser(TruncatedSVD(3, random_state=0), fill=fill,
                                       random_state=0).fit(sp.csr_matrix(X))
        np.testing.assert_allclose(sparse.invariant_transform(sp.csr_matrix(X)),
                                   dense.invariant_transform(X), atol=1e-8)


def test_losses():
    X, _ = noisy_low_rank()
    est = ColumnMaskingDenoiser(PCA(3)).fit(X)
    pred = est.invariant_transform(X)
    assert est.self_supervised_loss(X, "mae") == pytest.approx(np.mean(np.abs(pred - X)))
    assert est.self_supervised_loss(X, lambda p, t: float(np.max(np.abs(p - t)))) == \
        pytest.approx(np.max(np.abs(pred - X)))
    counts = np.array([[0.0, 2.0]])
    rate = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(elementwise_loss("poisson", rate, counts), [[2.0, 0.0]])


def test_bad_input():
    X, _ = noisy_low_rank(n=20, g=5)
    with pytest.raises(InvalidParameterError,
                       match="'fill' parameter of ColumnMaskingDenoiser must be a str among"):
        ColumnMaskingDenoiser(PCA(1), fill="median").fit(X)
    with pytest.raises(ValueError, match="n_groups=6 is more than n_features=5"):
        ColumnMaskingDenoiser(PCA(1), n_groups=6).fit(X)
    with pytest.raises(InvalidParameterError,
                       match=r"'n_groups' parameter .* must be an int in the range \[2, inf\)"):
        ColumnMaskingDenoiser(PCA(1), n_groups=1).fit(X)
    with pytest.raises(InvalidParameterError,
                       match="'transformer' parameter .* implementing 'fit' and 'transform'"):
        ColumnMaskingDenoiser("pca", n_groups=2).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        ColumnMaskingDenoiser(PCA(1), n_groups=2).fit(np.where(X > 1, np.nan, X))
    with pytest.raises(ValueError, match="DIA format"):
        ColumnMaskingDenoiser(PCA(1), n_groups=2).fit(sp.dia_matrix(X))


class FirstColumns(TransformerMixin, BaseEstimator):
    """Keeps 5 columns and cannot go back."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[:, :5]


def test_reducing_transformer_without_inverse_is_refused():
    X, _ = noisy_low_rank(n=50, g=40)
    est = ColumnMaskingDenoiser(FirstColumns(), n_groups=2)
    with pytest.raises(ValueError, match="no inverse_transform"):
        est.fit(X).transform(X)


def test_never_modifies_input():
    X, _ = noisy_low_rank()
    Xs = sp.csr_matrix(np.abs(X))
    before = (X.copy(), Xs.data.copy(), Xs.indices.copy())
    for data, fill in ((X, "mean"), (Xs, "mean"), (Xs, "zero")):
        est = ColumnMaskingDenoiser(TruncatedSVD(2), fill=fill).fit(data)
        est.invariant_transform(data)
        est.score(data)
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(Xs.data, before[1])
    np.testing.assert_array_equal(Xs.indices, before[2])


def test_agrees_with_closed_form_lowrank_direction():
    """Masking PCA and the least-squares LowRankDenoiser both choose the true rank."""
    X, _ = noisy_low_rank(n=400, g=60, rank=4)
    for est, key in ((ColumnMaskingDenoiser(PCA(), random_state=0), "transformer__n_components"),
                     (LowRankDenoiser(random_state=0), "n_components")):
        search = GridSearchCV(est, {key: [2, 4, 8]}, scoring=SelfSupervisedScorer(), cv=3)
        assert search.fit(X).best_params_[key] == 4
