"""LowRankDenoiser: exact J-invariance, sparse = dense, calibration on real counts."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from sklearn_n2s import SelfSupervisedScorer
from sklearn_n2s.lowrank import LowRankDenoiser
from sklearn_n2s.normalize import LibrarySizeNormalizer


def low_rank_counts(n=200, g=30, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (n, rank)) @ rng.gamma(2.0, 1.0, (rank, g))
    return rng.poisson(rates).astype(np.float64), rates


@pytest.mark.parametrize("solver", ["full", "randomized"])
@pytest.mark.parametrize("sparse", [False, True])
def test_invariant_prediction_ignores_the_entry(solver, sparse):
    X, _ = low_rank_counts()
    est = LowRankDenoiser(3, n_groups=5, svd_solver=solver, random_state=0).fit(X)
    base = est.invariant_transform(sp.csr_matrix(X) if sparse else X)
    rng = np.random.default_rng(1)
    for _ in range(5):
        i, j = rng.integers(X.shape[0]), rng.integers(X.shape[1])
        changed = X.copy()
        changed[i, j] += 1000.0
        moved = est.invariant_transform(sp.csr_matrix(changed) if sparse else changed)
        assert abs(moved[i, j] - base[i, j]) < 1e-10
        # the ordinary reconstruction does look at the entry
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
    import sklearn_n2s._table_validation as tv

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
    with pytest.raises(ValueError, match="svd_solver"):
        LowRankDenoiser(1, svd_solver="arpack").fit(X)
    with pytest.raises(TypeError, match="n_components must be an integer"):
        LowRankDenoiser(1.5).fit(X)
    est = LowRankDenoiser(2, n_groups=3).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :5])


def test_dense_output_limit(monkeypatch):
    import sklearn_n2s._table_validation as tv

    X, _ = low_rank_counts()
    est = LowRankDenoiser(2).fit(sp.csr_matrix(X))
    monkeypatch.setattr(tv, "MAX_DENSE_ENTRIES", 100)
    with pytest.raises(ValueError, match="MAX_DENSE_ENTRIES"):
        est.transform(sp.csr_matrix(X))
    # the loss is computed block by block and is still available
    assert np.isfinite(est.self_supervised_loss(sp.csr_matrix(X)))


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
    from sklearn_n2s.anndata_io import counts_from_log_normalized

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

    script = Path(__file__).resolve().parents[1] / "examples" / "plot_single_cell_rank.py"
    module = runpy.run_path(str(script), run_name="example")
    out = tmp_path / "rank.png"
    with threadpool_limits(1):
        losses = module["main"](["--max-cells", "150", "--max-genes", "200",
                                 "--grid", "1", "3", "8", "--out", str(out)])
    assert out.stat().st_size > 0
    assert set(len(v) for v in losses.values()) == {3}
