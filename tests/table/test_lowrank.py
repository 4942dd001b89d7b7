"""LowRankDenoiser: exact J-invariance, sparse = dense, calibration on real counts."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from sklearn_n2s import SelfSupervisedScorer
from sklearn_n2s.table import LibrarySizeNormalizer, LowRankDenoiser, LowRankDenoiserCV
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def low_rank_counts(n=200, g=30, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (n, rank)) @ rng.gamma(2.0, 1.0, (rank, g))
    return rng.poisson(rates).astype(np.float64), rates


@pytest.mark.parametrize("solver", ["full", "randomized"])
@pytest.mark.parametrize("sparse", [False, True])
def test_invariant_prediction_ignores_the_entry(solver, sparse):
    X, _ = low_rank_counts()
    est = LowRankDenoiser(3, n_groups=5, svd_solver=solver, random_state=0).fit(X)
    check_j_invariance(est, sp.csr_matrix(X) if sparse else X, delta=1000.0, atol=1e-10)
    rng = np.random.default_rng(1)
    for _ in range(5):  # the ordinary reconstruction does look at the entry
        i, j = rng.integers(X.shape[0]), rng.integers(X.shape[1])
        changed = X.copy()
        changed[i, j] += 1000.0
        assert abs(est.transform(changed)[i, j] - est.transform(X)[i, j]) > 1e-3


def test_invariant_prediction_uses_other_columns():
    X, _ = low_rank_counts()
    est = LowRankDenoiser(3, n_groups=5, random_state=0).fit(X)
    group = est.groups_[0]
    other = np.setdiff1d(np.arange(X.shape[1]), group)[0]
    changed = X.copy()
    changed[0, other] += 100.0
    assert np.abs(est.invariant_transform(changed)[0, group]
                  - est.invariant_transform(X)[0, group]).max() > 1e-3


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_and_dense_agree(fmt):
    X, _ = low_rank_counts(n=150, g=40)
    Xs = sp.csr_matrix(X).asformat(fmt)
    for solver in ("full", "randomized"):
        dense = LowRankDenoiser(4, svd_solver=solver, random_state=0).fit(X)
        sparse = LowRankDenoiser(4, svd_solver=solver, random_state=0).fit(Xs)
        np.testing.assert_allclose(sparse.components_, dense.components_, atol=1e-8)
        np.testing.assert_allclose(sparse.transform(Xs), dense.transform(X), atol=1e-8)
        np.testing.assert_allclose(sparse.invariant_transform(Xs),
                                   dense.invariant_transform(X), atol=1e-8)
        assert sparse.self_supervised_loss(Xs) == pytest.approx(
            dense.self_supervised_loss(X), rel=1e-10)


def test_randomized_matches_exact_svd():
    X, _ = low_rank_counts(n=300, g=50)
    exact = LowRankDenoiser(3, svd_solver="full").fit(X)
    approx = LowRankDenoiser(3, svd_solver="randomized", n_iter=6, random_state=0).fit(X)
    np.testing.assert_allclose(approx.singular_values_, exact.singular_values_, rtol=1e-6)
    np.testing.assert_allclose(approx.transform(X), exact.transform(X), atol=1e-4)


def test_chunked_loss_equals_whole(monkeypatch):
    import sklearn_n2s.utils._table_validation as tv

    X, _ = low_rank_counts()
    est = LowRankDenoiser(3, random_state=0).fit(X)
    whole = est.self_supervised_loss(X)
    monkeypatch.setattr(tv, "CHUNK_ENTRIES", 64)  # blocks of 2 rows
    assert len(tv.row_chunks(*X.shape)) == X.shape[0] // 2
    assert est.self_supervised_loss(X) == pytest.approx(whole, rel=1e-12)
    assert est.self_supervised_loss(X) == pytest.approx(
        np.mean((est.invariant_transform(X) - X) ** 2), rel=1e-12)


def test_score_is_minus_loss_and_scorer_agrees():
    X, _ = low_rank_counts()
    est = LowRankDenoiser(3, random_state=0).fit(X)
    assert est.score(X) == pytest.approx(-est.self_supervised_loss(X))
    assert SelfSupervisedScorer()(est, X) == pytest.approx(est.score(X))


def test_grid_search_finds_true_rank():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 60))
    X = clean + rng.normal(scale=1.0, size=clean.shape)
    grid = [1, 2, 3, 5, 8, 12, 20]
    search = GridSearchCV(LowRankDenoiser(random_state=0), {"n_components": grid},
                          scoring=SelfSupervisedScorer(), cv=3).fit(X)
    assert search.best_params_["n_components"] == 5


def test_never_modifies_input():
    X, _ = low_rank_counts()
    Xs = sp.csr_matrix(X)
    before = (X.copy(), Xs.data.copy(), Xs.indices.copy(), Xs.indptr.copy())
    for data in (X, Xs):
        est = LowRankDenoiser(3, random_state=0).fit(data)
        est.transform(data)
        est.invariant_transform(data)
        est.score(data)
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(Xs.data, before[1])
    np.testing.assert_array_equal(Xs.indices, before[2])
    np.testing.assert_array_equal(Xs.indptr, before[3])


@pytest.mark.parametrize("X, match", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
    (np.array([[1.0, np.inf], [2.0, 3.0]]), "infinity"),
    (np.zeros((0, 5)), "0 sample"),
    (np.zeros((5, 0)), "0 feature"),
    (np.ones(5), "2D array"),
    (sp.coo_matrix(np.ones((6, 4))), "COO format"),
    (sp.lil_matrix(np.ones((6, 4))), "LIL format"),
])
def test_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        LowRankDenoiser(1, n_groups=2).fit(X)


def test_bad_parameters():
    X, _ = low_rank_counts(n=20, g=6)
    with pytest.raises(ValueError, match="n_groups=7 is more than n_features=6"):
        LowRankDenoiser(1, n_groups=7).fit(X)
    with pytest.raises(ValueError, match="n_components=30 must be <="):
        LowRankDenoiser(30, n_groups=2).fit(X)
    with pytest.raises(InvalidParameterError,
                       match="'svd_solver' parameter of LowRankDenoiser must be a str among"):
        LowRankDenoiser(1, svd_solver="arpack").fit(X)
    with pytest.raises(InvalidParameterError,
                       match=r"'n_components' parameter of LowRankDenoiser must be an int"):
        LowRankDenoiser(1.5).fit(X)
    with pytest.raises(InvalidParameterError, match=r"'n_iter' parameter .* \[0, inf\)"):
        LowRankDenoiser(1, n_groups=2, n_iter=-1).fit(X)
    est = LowRankDenoiser(2, n_groups=3).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :5])


def test_dense_output_limit(monkeypatch):
    import sklearn_n2s.utils._table_validation as tv

    X, _ = low_rank_counts()
    est = LowRankDenoiser(2).fit(sp.csr_matrix(X))
    loss = est.self_supervised_loss(sp.csr_matrix(X))
    monkeypatch.setattr(tv, "MAX_DENSE_ENTRIES", 100)
    with pytest.raises(ValueError, match="MAX_DENSE_ENTRIES"):
        est.transform(sp.csr_matrix(X))
    # the loss is computed block by block and is still available, unchanged
    assert est.self_supervised_loss(sp.csr_matrix(X)) == loss


def test_clone_and_pickle_keep_results():
    X, _ = low_rank_counts()
    est = LowRankDenoiser(3, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.invariant_transform(X), est.invariant_transform(X))
    refit = clone(est).fit(X)
    np.testing.assert_allclose(refit.transform(X), est.transform(X))


# ---------------------------------------------------------------- real data: pbmc68k
def lognorm(counts):
    return np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)


@pytest.fixture(scope="module")
def pbmc_counts():
    sc = pytest.importorskip("scanpy")
    from sklearn_n2s.io import counts_from_log_normalized

    return counts_from_log_normalized(sc.datasets.pbmc68k_reduced())


@pytest.mark.parametrize("depth, seed", [(0.1, 0), (0.15, 1), (0.2, 2)])
def test_pbmc_rank_choice_matches_full_depth(pbmc_counts, depth, seed):
    """Thinned counts: the rank chosen self-supervisedly is near-best against full depth."""
    full = pbmc_counts
    thinned = np.random.default_rng(seed).binomial(full.astype(np.int64), depth)
    truth = lognorm(full)  # library-size normalised: comparable across depths
    grid = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    pipe = Pipeline([("norm", LibrarySizeNormalizer(target_sum=1e4)),
                     ("pca", LowRankDenoiser(random_state=0))])
    with threadpool_limits(1):
        search = GridSearchCV(pipe, {"pca__n_components": grid},
                              scoring=SelfSupervisedScorer(),
                              cv=KFold(3, shuffle=True, random_state=0)).fit(thinned)
        truth_loss = {
            k: np.mean((clone(pipe).set_params(pca__n_components=k).fit(thinned)
                        .transform(thinned) - truth) ** 2)
            for k in grid
        }
    chosen = search.best_params_["pca__n_components"]
    assert truth_loss[chosen] <= 1.02 * min(truth_loss.values())


def test_example_runs_small(tmp_path):
    pytest.importorskip("scanpy")
    pytest.importorskip("matplotlib")
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "plot_single_cell_rank.py"
    module = runpy.run_path(str(script), run_name="example")
    out = tmp_path / "rank.png"
    with threadpool_limits(1):
        losses = module["main"](["--max-cells", "150", "--max-genes", "200",
                                 "--grid", "1", "3", "8", "--out", str(out)])
    assert out.stat().st_size > 0
    assert set(len(v) for v in losses.values()) == {3}


# ------------------------------------------------------- LowRankDenoiserCV: rank path
CV_GRID = [1, 2, 3, 5, 8, 12, 20]


def gaussian_low_rank(n=400, g=60, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, g))
    return clean + rng.normal(size=clean.shape)


def grid_search(X, solver, grid=CV_GRID, estimator=None, param="n_components", cv=None):
    estimator = estimator or LowRankDenoiser(svd_solver=solver, random_state=0)
    return GridSearchCV(estimator, {param: grid}, scoring=SelfSupervisedScorer(),
                        cv=cv or KFold(3)).fit(X)


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_cv_equals_grid_search_with_full_svd(fmt):
    X = gaussian_low_rank()
    data = X if fmt == "dense" else sp.csr_matrix(X).asformat(fmt)
    search = grid_search(X, "full")
    path = LowRankDenoiserCV(CV_GRID, cv=KFold(3), svd_solver="full",
                             random_state=0).fit(data)
    assert path.n_components_ == search.best_params_["n_components"] == 5
    for i in range(3):
        np.testing.assert_allclose(path.cv_results_[f"split{i}_test_score"],
                                   search.cv_results_[f"split{i}_test_score"], rtol=1e-10)
        np.testing.assert_allclose(path.losses_[:, i],
                                   -search.cv_results_[f"split{i}_test_score"], rtol=1e-10)
    np.testing.assert_allclose(path.mean_losses_, -search.cv_results_["mean_test_score"],
                               rtol=1e-10)
    np.testing.assert_array_equal(path.cv_results_["rank_test_score"],
                                  search.cv_results_["rank_test_score"])
    np.testing.assert_array_equal(path.cv_results_["param_n_components"], CV_GRID)
    # the refit is the same model as GridSearchCV's best_estimator_
    best = search.best_estimator_
    np.testing.assert_allclose(path.components_, best.components_, atol=1e-10)
    np.testing.assert_allclose(path.transform(data), best.transform(X), atol=1e-10)
    np.testing.assert_allclose(path.invariant_transform(data),
                               best.invariant_transform(X), atol=1e-10)
    assert path.score(data) == pytest.approx(best.score(X), rel=1e-10)


def test_cv_in_pipeline_equals_grid_search_over_pipeline():
    counts, _ = low_rank_counts(n=300, g=40, rank=3)
    search = grid_search(
        counts, None, grid=[1, 2, 3, 6], param="pca__n_components",
        estimator=Pipeline([("norm", LibrarySizeNormalizer(target_sum=100.0)),
                            ("pca", LowRankDenoiser(svd_solver="full", random_state=0))]),
        cv=KFold(3, shuffle=True, random_state=1))
    pipe = Pipeline([("norm", LibrarySizeNormalizer(target_sum=100.0)),
                     ("pca", LowRankDenoiserCV([1, 2, 3, 6], svd_solver="full",
                                               random_state=0,
                                               cv=KFold(3, shuffle=True, random_state=1)))])
    pipe.fit(sp.csr_matrix(counts))
    path = pipe[-1]
    assert path.n_components_ == search.best_params_["pca__n_components"]
    np.testing.assert_allclose(path.mean_losses_, -search.cv_results_["mean_test_score"],
                               rtol=1e-10)


def test_cv_randomized_picks_the_grid_search_rank():
    X = gaussian_low_rank()
    search = grid_search(X, "randomized")
    path = LowRankDenoiserCV(CV_GRID, cv=KFold(3), svd_solver="randomized",
                             random_state=0).fit(sp.csr_matrix(X))
    assert path.n_components_ == search.best_params_["n_components"] == 5
    grid_losses = -search.cv_results_["mean_test_score"]
    # up to the true rank (a spectral gap) and at the largest rank (the same fit) the
    # randomized solver agrees; past the signal it differs by its own error
    signal = [i for i, k in enumerate(CV_GRID) if k <= 5] + [len(CV_GRID) - 1]
    np.testing.assert_allclose(path.mean_losses_[signal], grid_losses[signal], rtol=1e-8)
    np.testing.assert_allclose(path.mean_losses_, grid_losses, rtol=1e-2)


@pytest.mark.parametrize("sparse", [False, True])
def test_cv_refitted_model_is_j_invariant(sparse):
    X, _ = low_rank_counts()
    wrap = sp.csr_matrix if sparse else np.asarray
    model = LowRankDenoiserCV([1, 3, 6], n_groups=5, random_state=0).fit(wrap(X))
    # the refit is LowRankDenoiser at the chosen rank, on all rows
    single = LowRankDenoiser(model.n_components_, n_groups=5, random_state=0).fit(wrap(X))
    np.testing.assert_allclose(model.components_, single.components_, atol=1e-10)
    np.testing.assert_allclose(model.mean_, single.mean_, atol=1e-12)
    check_j_invariance(model, wrap(X), delta=1000.0, atol=1e-10)


def test_truncation_losses_equal_truncated_models():
    X, _ = low_rank_counts()
    model = LowRankDenoiser(8, svd_solver="full", random_state=0).fit(X)
    for loss in ("mse", "mae", "poisson"):
        losses = model.truncation_losses(sp.csr_matrix(X), [1, 4, 8], loss=loss)
        for k, value in zip([1, 4, 8], losses):
            direct = LowRankDenoiser(k, svd_solver="full", random_state=0).fit(X)
            assert value == pytest.approx(direct.self_supervised_loss(X, loss=loss),
                                          rel=1e-10)
    with pytest.raises(ValueError, match="only 8 components"):
        model.truncation_losses(X, [9])


def test_cv_custom_scorer_and_mae_scorer():
    X, _ = low_rank_counts()
    fast = LowRankDenoiserCV([1, 3, 6], random_state=0,
                             scoring=SelfSupervisedScorer(loss="mae")).fit(X)
    generic = LowRankDenoiserCV(  # any callable: scored on each rank's truncated model
        [1, 3, 6], random_state=0,
        scoring=lambda est, X: -np.mean(np.abs(est.invariant_transform(X) - X))).fit(X)
    np.testing.assert_allclose(fast.losses_, generic.losses_, rtol=1e-10)
    assert fast.n_components_ == generic.n_components_
    mse = LowRankDenoiserCV([1, 3, 6], random_state=0).fit(X)
    assert not np.allclose(mse.losses_, fast.losses_)


def test_cv_integer_grid_means_every_rank_up_to_it():
    X = gaussian_low_rank(n=200, g=30)
    model = LowRankDenoiserCV(8, random_state=0).fit(X)
    np.testing.assert_array_equal(model.ranks_, np.arange(1, 9))
    assert model.losses_.shape == (8, 3)
    assert model.n_components_ == 5


@pytest.mark.parametrize("grid, error, match", [
    ([], ValueError, "n_components is empty"),
    ((), ValueError, "n_components is empty"),
    ([2, 4.0], TypeError, "n_components must hold integers, got 4.0"),
    ([2, "4"], TypeError, "n_components must hold integers"),
    ([True, 2], TypeError, "n_components must hold integers"),
    ([0, 2], ValueError, "ranks >= 1, got 0"),
    (0, InvalidParameterError, r"must be an int in the range \[1, inf\) or an array-like"),
    (2.5, InvalidParameterError, "'n_components' parameter of LowRankDenoiserCV"),
    ("24", InvalidParameterError, "'n_components' parameter of LowRankDenoiserCV"),
    ([2, 14], ValueError, (r"largest rank in n_components=14 must be <= "
                           r"min\(n_samples, n_features\) = 13")),
    ([2, 31], ValueError, r"largest rank in n_components=31 must be <="),
])
def test_cv_bad_grid(grid, error, match):
    X, _ = low_rank_counts(n=20, g=30)  # 3-fold training sets hold 13 rows
    with pytest.raises(error, match=match):
        LowRankDenoiserCV(grid, n_groups=2).fit(X)


def test_cv_bad_input_and_parameters():
    X, _ = low_rank_counts(n=30, g=6)
    with pytest.raises(ValueError, match="NaN"):
        LowRankDenoiserCV([1]).fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="COO format"):
        LowRankDenoiserCV([1], n_groups=2).fit(sp.coo_matrix(X))
    with pytest.raises(ValueError, match="n_groups=7 is more than n_features=6"):
        LowRankDenoiserCV([1], n_groups=7).fit(X)
    with pytest.raises(InvalidParameterError, match="'svd_solver' parameter"):
        LowRankDenoiserCV([1], n_groups=2, svd_solver="arpack").fit(X)
    with pytest.raises(InvalidParameterError,
                       match="'scoring' parameter of LowRankDenoiserCV must be a callable or None"):
        LowRankDenoiserCV([1], n_groups=2, scoring="mse").fit(X)
    with pytest.raises(InvalidParameterError, match="'cv' parameter of LowRankDenoiserCV"):
        LowRankDenoiserCV([1], n_groups=2, cv="folds").fit(X)
    with pytest.raises(ValueError, match="n_splits=40"):
        LowRankDenoiserCV([1], n_groups=2, cv=40).fit(X)


def test_cv_never_modifies_input():
    X, _ = low_rank_counts()
    Xs = sp.csc_matrix(X)
    before = (X.copy(), Xs.data.copy(), Xs.indices.copy(), Xs.indptr.copy())
    for data in (X, Xs):
        LowRankDenoiserCV([1, 3], random_state=0).fit(data).score(data)
    assert Xs.format == "csc"
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(Xs.data, before[1])
    np.testing.assert_array_equal(Xs.indices, before[2])
    np.testing.assert_array_equal(Xs.indptr, before[3])


def test_cv_clone_and_pickle():
    X, _ = low_rank_counts()
    model = LowRankDenoiserCV([1, 3, 6], cv=KFold(3, shuffle=True, random_state=0),
                              random_state=0).fit(X)
    params = clone(model).get_params()
    assert params["n_components"] == [1, 3, 6] and params["cv"].n_splits == 3
    assert not hasattr(clone(model), "n_components_")
    again = pickle.loads(pickle.dumps(model))
    assert again.n_components_ == model.n_components_
    np.testing.assert_array_equal(again.losses_, model.losses_)
    np.testing.assert_array_equal(again.invariant_transform(X), model.invariant_transform(X))
    refit = clone(model).fit(X)
    np.testing.assert_allclose(refit.losses_, model.losses_, rtol=1e-12)
    np.testing.assert_allclose(refit.transform(X), model.transform(X), atol=1e-10)
