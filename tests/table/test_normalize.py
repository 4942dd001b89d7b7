"""Library-size normalisation: a Pipeline step, and an exactly J-invariant wrapper."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import FullSplit, SelfSupervisedScorer
from sklearn_n2s.table import (
    ColumnMaskingDenoiser,
    KNNSmoother,
    LibrarySizeNormalizer,
    LowRankDenoiser,
    NormalizedDenoiser,
)
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def counts(n=200, g=30, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 2.0, (n, 1))
    rates = depth * (rng.gamma(2.0, 1.0, (n, rank)) @ rng.gamma(2.0, 1.0, (rank, g)))
    return rng.poisson(rates).astype(np.float64)


def test_normalizer_matches_scanpy_formula():
    X = counts()
    Z = LibrarySizeNormalizer(target_sum=1e4).fit_transform(X)
    np.testing.assert_allclose(Z, np.log1p(X / X.sum(1, keepdims=True) * 1e4))
    norm = LibrarySizeNormalizer(log=False).fit(X)
    assert norm.target_sum_ == np.median(X.sum(1))
    np.testing.assert_allclose(norm.transform(X).sum(1), norm.target_sum_)
    # sparse stays sparse and agrees
    Zs = LibrarySizeNormalizer(target_sum=1e4).fit_transform(sp.csr_matrix(X))
    assert sp.issparse(Zs)
    np.testing.assert_allclose(Zs.toarray(), Z)


def test_inverse_transform_round_trip():
    X = counts()
    norm = LibrarySizeNormalizer().fit(X)
    np.testing.assert_allclose(norm.inverse_transform(norm.transform(X), X.sum(1)), X,
                               atol=1e-9)


@pytest.mark.parametrize("inner", [LowRankDenoiser(3, n_groups=5, random_state=0),
                                   KNNSmoother(5, n_groups=5, random_state=0),
                                   ColumnMaskingDenoiser(LowRankDenoiser(3, n_groups=2),
                                                         n_groups=5, random_state=0)])
@pytest.mark.parametrize("output", ["normalized", "counts"])
def test_wrapper_is_exactly_invariant(inner, output):
    """The size factor is taken without the group: x_J cannot reach its prediction."""
    X = counts()
    est = NormalizedDenoiser(inner, output=output).fit(X)
    check_j_invariance(est, X, n_probes=4, delta=500.0, atol=1e-10)


def test_pipeline_is_only_approximately_invariant():
    """What the module notes say: in a Pipeline, x_J leaks through the library size."""
    X = counts()
    pipe = Pipeline([("norm", LibrarySizeNormalizer()),
                     ("pca", LowRankDenoiser(3, n_groups=5, random_state=0))]).fit(X)
    i, j = 0, 0
    changed = X.copy()
    changed[i, j] += 500.0
    before = pipe[-1].invariant_transform(pipe[0].transform(X))[i]
    after = pipe[-1].invariant_transform(pipe[0].transform(changed))[i]
    group = next(g for g in pipe[-1].groups_ if j in g)
    assert np.abs(after[group] - before[group]).max() > 1e-6


def test_wrapper_calibrates_and_sparse_agrees():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.5, 2.0, (400, 1)) * (
        rng.gamma(2.0, 1.0, (400, 4)) @ rng.gamma(0.5, 2.0, (4, 60)))
    X = rng.poisson(rates).astype(float)
    truth = np.log1p(rates / rates.sum(1, keepdims=True) * np.median(X.sum(1)))
    grid = [1, 2, 4, 8, 16]
    search = GridSearchCV(NormalizedDenoiser(LowRankDenoiser(random_state=0)),
                          {"denoiser__n_components": grid},
                          scoring=SelfSupervisedScorer(), cv=3).fit(X)
    truth_loss = {k: np.mean((NormalizedDenoiser(LowRankDenoiser(k, random_state=0))
                              .fit(X).transform(X) - truth) ** 2) for k in grid}
    chosen = search.best_params_["denoiser__n_components"]
    assert truth_loss[chosen] <= 1.05 * min(truth_loss.values())
    est = NormalizedDenoiser(LowRankDenoiser(3, svd_solver="randomized", random_state=0))
    dense, sparse = est.fit(X).invariant_transform(X), \
        est.fit(sp.csr_matrix(X)).invariant_transform(sp.csr_matrix(X))
    np.testing.assert_allclose(sparse, dense, atol=1e-8)


def test_counts_output_and_knn_with_full_split():
    X = counts()
    est = NormalizedDenoiser(KNNSmoother(5, random_state=0), output="counts").fit(X)
    out = est.transform(X)
    # the normalised output, mapped back to each row's own library size
    normalized = clone(est).set_params(output="normalized").fit(X).transform(X)
    np.testing.assert_allclose(
        out, np.maximum(np.expm1(normalized), 0) * X.sum(1, keepdims=True)
        / est.normalizer_.target_sum_, rtol=1e-12)
    assert out.min() >= 0
    np.testing.assert_allclose(out.sum(1), X.sum(1), rtol=0.2)
    # FullSplit with the default scoring: each candidate's own score on all rows
    grid = [2, 10]
    search = GridSearchCV(NormalizedDenoiser(KNNSmoother(random_state=0)),
                          {"denoiser__n_neighbors": grid}, cv=FullSplit()).fit(X)
    scores = [NormalizedDenoiser(KNNSmoother(k, random_state=0)).fit(X).score(X)
              for k in grid]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], scores, rtol=1e-12)
    assert scores[0] != scores[1]
    assert search.best_params_["denoiser__n_neighbors"] == grid[int(np.argmax(scores))]


def test_bad_input():
    X = counts(n=20, g=6)
    with pytest.raises(ValueError, match="Negative values"):
        LibrarySizeNormalizer().fit(X - 1000)
    zero_row = X.copy()
    zero_row[3] = 0
    with pytest.raises(ValueError, match="zero total"):
        LibrarySizeNormalizer().fit(zero_row)
    with pytest.raises(InvalidParameterError,
                       match=r"'target_sum' parameter .* range \(0.0, inf\) or None"):
        LibrarySizeNormalizer(target_sum=0).fit(X)
    with pytest.raises(InvalidParameterError,
                       match="'output' parameter of NormalizedDenoiser must be a str among"):
        NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), output="log").fit(X)
    with pytest.raises(InvalidParameterError,
                       match="'denoiser' parameter .* implementing 'fit', 'transform' and "
                             "'_predict_group'"):
        from sklearn.decomposition import PCA

        NormalizedDenoiser(PCA(1)).fit(X)
    with pytest.raises(ValueError, match="Negative values in data passed to Normalized"):
        NormalizedDenoiser(LowRankDenoiser(1, n_groups=2)).fit(X).score(X - 1000)
    with pytest.raises(ValueError, match="COO format"):
        LibrarySizeNormalizer().fit(sp.coo_matrix(X))


def test_never_modifies_input():
    X = counts()
    Xs = sp.csr_matrix(X)
    before = (X.copy(), Xs.data.copy())
    for data in (X, Xs):
        est = NormalizedDenoiser(LowRankDenoiser(2), output="counts").fit(data)
        est.transform(data)
        est.score(data)
        LibrarySizeNormalizer().fit_transform(data)
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(Xs.data, before[1])


@pytest.mark.parametrize("output", ["normalized", "counts"])
def test_empty_rows_same_rule_in_every_method(output):
    """transform refused an all-zero row but score, self_supervised_loss and
    invariant_transform took it; with empty_rows='raise' every method refuses it, with
    'zero' every method takes it (and transform gives its row as zeros)."""
    X = counts(n=40, g=12)
    zero_row = X.copy()
    zero_row[3] = 0
    est = NormalizedDenoiser(LowRankDenoiser(2, n_groups=3, random_state=0),
                             output=output).fit(X)
    for method in (est.transform, est.score, est.invariant_transform,
                   est.self_supervised_loss):
        with pytest.raises(ValueError, match=r"1 row\(s\) with zero total \(first: row 3\)"):
            method(zero_row)
        with pytest.raises(ValueError, match="zero total"):
            method(sp.csr_matrix(zero_row))
    lenient = clone(est).set_params(empty_rows="zero").fit(X)
    if output == "counts":
        np.testing.assert_array_equal(lenient.transform(zero_row)[3], 0.0)
    assert np.isfinite(lenient.score(zero_row))
    assert np.all(np.isfinite(lenient.invariant_transform(zero_row)))
