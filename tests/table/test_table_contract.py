"""What every table estimator promises: parameters validated the scikit-learn way,
methods that read a fitted estimator without changing it, a bounded numeric range and
float32 kept."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from sklearn.utils import get_tags
from sklearn.utils._param_validation import InvalidParameterError
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
from sklearn_n2s.utils.estimator_checks import check_dtype_preserved

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


# ------------------------------------------------------- numeric range (issue 10, item 3)
def _scores(estimator):
    return not isinstance(estimator, LibrarySizeNormalizer)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_values_beyond_the_range_are_refused_by_name(estimator):
    """One entry of 1e300 made every score -inf; now fit and score refuse it, naming
    the accepted range, and values up to it give finite scores and outputs."""
    X = counts()
    huge = X.copy()
    huge[3, 4] = 1e300
    rng_message = r"accept values in \[-1e\+150, 1e\+150\]"
    with pytest.raises(ValueError, match=rng_message):
        copy.deepcopy(estimator).fit(huge)
    fitted = copy.deepcopy(estimator).fit(X)
    with pytest.raises(ValueError, match=rng_message):
        fitted.transform(huge)
    if _scores(estimator):
        with pytest.raises(ValueError, match=rng_message):
            fitted.score(huge)
    scale = 2.0**460  # 3e138, inside the range; a power of 2 keeps ties between rows
    large = X * scale
    fitted = copy.deepcopy(estimator).fit(large)
    assert np.all(np.isfinite(fitted.transform(large)))
    if isinstance(fitted, LowRankDenoiserCV):  # the spread of scores near 1e280 too
        assert all(np.all(np.isfinite(v)) for v in fitted.cv_results_.values())
    if _scores(estimator):
        assert np.isfinite(fitted.score(large))
        if not isinstance(estimator, NormalizedDenoiser):  # the others scale with X
            small = copy.deepcopy(estimator).fit(X)
            assert fitted.score(large) == pytest.approx(scale**2 * small.score(X), rel=1e-6)


# ---------------------------------------- booleans are not numbers (issue 10, item 4)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_booleans_are_refused_for_every_non_boolean_parameter(estimator):
    """``True`` is an int to Python: ``n_components=True`` ran at rank 1 and
    ``random_state=True`` seeded with 1. Every parameter that is not a flag refuses it,
    by name."""
    X = counts()
    flags = {"log"}  # the only boolean parameters
    names = sorted(set(type(estimator)._parameter_constraints) - flags)
    assert names
    for name in names:
        for value in (True, False):
            bad = copy.deepcopy(estimator).set_params(**{name: value})
            with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
                bad.fit(X)


def test_log_flag_is_checked_where_it_is_read():
    """A ``log`` changed after fit is read by transform and inverse_transform: it is
    validated there too, never taken by truthiness."""
    X = counts()
    for value in ("yes", None, 1):
        normalizer = LibrarySizeNormalizer().fit(X).set_params(log=value)
        with pytest.raises(InvalidParameterError, match="'log' parameter"):
            normalizer.transform(X)
        with pytest.raises(InvalidParameterError, match="'log' parameter"):
            normalizer.inverse_transform(X)


# ------------------------------------------------------- float32 kept (issue 10, item 6)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_float32_in_float32_out(estimator, sparse):
    """Declared in the tag that ``check_dtype_preserved`` reads, and true of every
    output; the values agree with the float64 computation to float32 precision."""
    assert "float32" in get_tags(estimator).transformer_tags.preserves_dtype
    wrap = sp.csr_matrix if sparse else np.asarray
    X = counts()
    est64 = copy.deepcopy(estimator).fit(wrap(X))
    est32 = copy.deepcopy(estimator).fit(wrap(X.astype(np.float32)))
    methods = ["transform"]
    if hasattr(estimator, "invariant_transform"):
        methods.append("invariant_transform")
    for method in methods:
        out64 = getattr(est64, method)(wrap(X))
        out32 = getattr(est32, method)(wrap(X.astype(np.float32)))
        assert out32.dtype == np.float32, method
        assert out64.dtype == np.float64, method
        dense32, dense64 = (o.toarray() if sp.issparse(o) else o for o in (out32, out64))
        np.testing.assert_allclose(dense32, dense64, atol=1e-4 * np.abs(dense64).max())
    if _scores(estimator):
        assert est32.score(wrap(X.astype(np.float32))) == pytest.approx(
            est64.score(wrap(X)), rel=1e-4)
    else:
        Z = est32.transform(wrap(X.astype(np.float32)))
        assert est32.inverse_transform(Z).dtype == np.float32
    check_dtype_preserved(estimator, X)


def test_float32_output_that_would_overflow_is_refused():
    """Computed in float64 and cast back: a value float32 cannot hold is an error that
    names the range, never inf."""
    X = counts().astype(np.float32)
    normalizer = LibrarySizeNormalizer().fit(X)
    with pytest.raises(ValueError, match=r"beyond the float32 range \(\|values\| <= 3.4"):
        normalizer.inverse_transform(np.full((1, X.shape[1]), 100.0, dtype=np.float32))
    assert np.all(np.isfinite(normalizer.inverse_transform(
        np.full((1, X.shape[1]), 100.0))))  # float64: expm1(100) is representable
