"""What every table estimator promises: parameters validated the scikit-learn way, and
methods that read a fitted estimator without changing it."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from sklearn.utils.estimator_checks import check_param_validation

from sklearn_n2s import SelfSupervisedScorer
from sklearn_n2s.table import (
    ColumnMaskingDenoiser,
    KNNSmoother,
    LibrarySizeNormalizer,
    LowRankDenoiser,
    LowRankDenoiserCV,
    NormalizedDenoiser,
)

ESTIMATORS = [
    ColumnMaskingDenoiser(PCA(2), n_groups=3, random_state=0),
    ColumnMaskingDenoiser(PCA(2), n_groups=3, fill="zero", random_state=0),
    KNNSmoother(4, n_groups=3, random_state=0),
    LowRankDenoiser(2, n_groups=3, random_state=0),
    LowRankDenoiser(2, n_groups=3, svd_solver="randomized", random_state=0),
    LowRankDenoiserCV([1, 2, 4], n_groups=3, cv=KFold(3, shuffle=True, random_state=0),
                      random_state=0),
    LowRankDenoiserCV([1, 2], n_groups=3, scoring=SelfSupervisedScorer(loss="mae"),
                      random_state=0),
    LibrarySizeNormalizer(),
    NormalizedDenoiser(LowRankDenoiser(2, n_groups=3, random_state=0)),
    NormalizedDenoiser(KNNSmoother(4, n_groups=3, random_state=0), output="counts"),
]


def counts(n=60, g=12, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (n, 2)) @ rng.gamma(2.0, 1.0, (2, g))
    X = rng.poisson(rates).astype(np.float64)
    X[X.sum(1) == 0, 0] = 1.0  # no empty row
    return X


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    """scikit-learn's check: every parameter constrained, checked in fit."""
    check_param_validation(type(estimator).__name__, estimator)


def assert_same_state(after, before, path="vars"):
    """Equal values, recursively: arrays by np.array_equal (and dtype), estimators and
    other objects by their ``vars``."""
    assert type(after) is type(before), path
    if isinstance(before, np.ndarray):
        assert after.dtype == before.dtype, path
        assert np.array_equal(after, before, equal_nan=True), path
    elif sp.issparse(before):
        assert (after != before).nnz == 0, path
    elif isinstance(before, dict):
        assert after.keys() == before.keys(), path
        for key in before:
            assert_same_state(after[key], before[key], f"{path}[{key!r}]")
    elif isinstance(before, (list, tuple)):
        assert len(after) == len(before), path
        for i, (a, b) in enumerate(zip(after, before)):
            assert_same_state(a, b, f"{path}[{i}]")
    elif hasattr(before, "__dict__"):  # an estimator, a splitter, a scorer
        assert_same_state(vars(after), vars(before), f"{path}.vars")
    elif isinstance(before, float) and np.isnan(before):
        assert np.isnan(after), path
    else:
        assert after == before, path


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_methods_never_change_the_fitted_estimator(estimator, sparse):
    """transform, invariant_transform, score (and the other read-only methods) leave
    ``vars(estimator)`` as fit left it, arrays included, on training and new rows."""
    wrap = sp.csr_matrix if sparse else np.asarray
    X, new = counts(), counts(seed=1)
    estimator = copy.deepcopy(estimator).fit(wrap(X))
    before = copy.deepcopy(vars(estimator))
    for data in (wrap(X), wrap(new)):
        out = estimator.transform(data)
        if isinstance(estimator, LibrarySizeNormalizer):
            estimator.inverse_transform(out, np.asarray(data.sum(axis=1)).ravel())
            continue
        estimator.invariant_transform(data)
        estimator.score(data)
        estimator.self_supervised_loss(data, loss="mae")
        if isinstance(estimator, LowRankDenoiser):
            estimator.truncation_losses(data, [1, estimator.components_.shape[0]])
    assert_same_state(vars(estimator), before)
