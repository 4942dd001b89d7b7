"""Molecular cross-validation on sparse counts whose dense form would be large."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_n2s.model_selection import MolecularCrossValidationScorer
from sklearn_n2s.table import KNNSmoother, LowRankDenoiser, NormalizedDenoiser
from sklearn_n2s.table._mcv import molecular_split


def sparse_counts(n, g, density, seed=0):
    """CSR counts with about ``density * n * g`` entries (drawn without a dense step)."""
    rng = np.random.default_rng(seed)
    size = int(density * n * g)
    values = rng.poisson(2.0, size) + 1.0
    return sp.coo_matrix((values, (rng.integers(n, size=size), rng.integers(g, size=size))),
                         shape=(n, g)).tocsr()


def peak_bytes(function, *args):
    tracemalloc.start()
    try:
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_split_of_a_huge_sparse_matrix_stays_sparse():
    """200,000 x 5,000 (8 GB dense): the parts are CSR with the input's stored entries
    at most, and the split allocates a small multiple of the stored values only."""
    X = sparse_counts(200_000, 5_000, 0.001)
    stored = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    (A, B), peak = peak_bytes(molecular_split, X, 0.9)
    assert A.format == "csr" and B.format == "csr"
    assert A.nnz <= X.nnz and B.nnz <= X.nnz and A.nnz + B.nnz >= X.nnz
    assert (A + B - X).count_nonzero() == 0
    assert peak < 12 * stored  # the dense form is 8e9 bytes, 600 times more
    assert peak < 8e9 / 100


@pytest.mark.parametrize("loss", ["sqrt_mse", "poisson"])
def test_scorer_never_densifies_a_sparse_matrix(loss, monkeypatch):
    """20,000 x 2,000 sparse counts (320 MB dense): the low-rank model is only ever
    asked for blocks of rows, and the scorer peaks far below the dense size (the split,
    the fit and one block at a time: about ten block-sized temporaries)."""
    import sklearn_n2s.model_selection._mcv as mcv

    X = sparse_counts(20_000, 2_000, 0.005, seed=1)
    dense_bytes = X.shape[0] * X.shape[1] * 8
    monkeypatch.setattr(mcv, "row_chunks",
                        lambda n, m: [slice(s, min(s + 250, n)) for s in range(0, n, 250)])
    asked = []
    transform = LowRankDenoiser.transform
    monkeypatch.setattr(LowRankDenoiser, "transform",
                        lambda self, A: asked.append(A.shape[0]) or transform(self, A))
    est = LowRankDenoiser(2, n_groups=2, svd_solver="randomized", n_iter=1, random_state=0)
    loss_value, peak = peak_bytes(MolecularCrossValidationScorer(loss=loss).loss_of, est, X)
    assert np.isfinite(loss_value) and loss_value > 0
    assert max(asked) == 250 and sum(asked) == X.shape[0]
    assert peak < dense_bytes / 4


@pytest.mark.parametrize("loss", ["sqrt_mse", "poisson", "mse"])
@pytest.mark.parametrize("model", ["lowrank", "normalized", "knn"])
def test_blockwise_loss_equals_the_dense_loss(loss, model, monkeypatch):
    """The loss summed over row blocks equals the one-block loss (small blocks forced),
    for a row-independent model and for a transductive kNN smoother alike, sparse or
    dense input."""
    import sklearn_n2s.model_selection._mcv as mcv

    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 1.0, (300, 3)) @ rng.gamma(2.0, 1.0, (3, 40)) / 3
    X = rng.poisson(rates).astype(float)
    X[X.sum(1) == 0, 0] = 1.0
    est = {"lowrank": LowRankDenoiser(3, n_groups=4, svd_solver="randomized", random_state=0),
           "normalized": NormalizedDenoiser(LowRankDenoiser(3, n_groups=4, random_state=0),
                                            output="counts"),
           "knn": KNNSmoother(10, n_groups=4)}[model]
    scorer = MolecularCrossValidationScorer(loss=loss, p=0.7)
    inputs = [X, sp.csr_matrix(X)]
    whole = [scorer.loss_of(est, data) for data in inputs]
    monkeypatch.setattr(mcv, "row_chunks",
                        lambda n, m: [slice(s, min(s + 7, n)) for s in range(0, n, 7)])
    for data, expected in zip(inputs, whole):
        assert scorer.loss_of(est, data) == pytest.approx(expected, rel=1e-10)
