"""Issue 14, sixth pass: ``denoise`` on a small table with fewer fresh arrays.

The exact search in row blocks, the screening fold's covariance in the rows' precision,
the output's walk in the normalised table's own buffer and the expected counts mapped
in place: each must give what the plain computation gives, and never touch the
caller's counts."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

import sklearn_n2s.table._clustered_search as search
from sklearn_n2s.table import (
    DiffusionSmoother,
    LibrarySizeNormalizer,
    denoise,
    mean_from_expected_sqrt,
)
from sklearn_n2s.table._clustered_search import exact_neighbours
from sklearn_n2s.table._diffusion import ComplementPCA
from sklearn_n2s.table._mcv import _means_into
from sklearn_n2s.utils.estimator_checks import check_j_invariance

anndata = pytest.importorskip("anndata")


def poisson_counts(n=300, g=50, seed=0, dtype=np.float32):
    """Rank-3 Poisson counts, far from 0..1 (rates up to tens)."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (n, 3)) @ rng.gamma(2.0, 2.0, (3, g))
    return rng.poisson(rates).astype(dtype)


def test_exact_search_in_row_blocks_is_one_blocks_and_scikit_learns(monkeypatch):
    """900 rows: several row blocks of ``_EXACT_BLOCK_ENTRIES`` distances; the lists
    are bitwise those of one block of all rows, and scikit-learn's neighbours."""
    rng = np.random.default_rng(1)
    F = (rng.normal(size=(900, 30)) * 50 + 1e3).astype(np.float32)
    assert 900 * 900 > 2 * search._EXACT_BLOCK_ENTRIES  # at least three blocks
    distances, indices = exact_neighbours(F, 25)
    monkeypatch.setattr(search, "_EXACT_BLOCK_ENTRIES", 1 << 30)
    whole_d, whole_i = exact_neighbours(F, 25)
    np.testing.assert_array_equal(distances, whole_d)
    np.testing.assert_array_equal(indices, whole_i)
    exact_d, exact_i = NearestNeighbors(n_neighbors=25).fit(
        F.astype(np.float64)).kneighbors()
    np.testing.assert_allclose(distances, exact_d, rtol=1e-6)
    assert np.mean(indices == exact_i) > 0.999  # ties aside, the same order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_screening_covariance_in_the_rows_precision(dtype):
    """Dense float32 rows: the training rows' covariance comes back float32 (what the
    subspace iteration reads), float64 rows float64; both equal the covariance of the
    training rows, a large mean included."""
    X = poisson_counts(dtype=dtype)
    X[:, 0] += 1e4
    held = np.sort(np.random.default_rng(2).choice(len(X), 100, replace=False))
    covariance, mean, n = ComplementPCA(X, 10).covariance_without(held)
    train = np.delete(X, held, axis=0).astype(np.float64)
    assert covariance.dtype == dtype and n == len(X) - 100
    np.testing.assert_allclose(mean, train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(train.T, bias=True),
                               rtol=1e-5 if dtype == np.float32 else 1e-10,
                               atol=1e-6 * np.abs(covariance).max())


@pytest.mark.parametrize("t", [1, 2, 3, 2.4])
def test_diffusion_in_the_tables_own_buffer_is_transform(t):
    """``_diffuse(Z, overwrite=True)`` (denoise's last use of its normalised table) is
    bitwise ``transform``; without ``overwrite`` the table is left as it was."""
    Z = np.sqrt(poisson_counts())
    smoother = DiffusionSmoother(t, n_neighbors=6, n_groups=2, random_state=0).fit(Z)
    expected = smoother.transform(Z)
    kept = Z.copy()
    np.testing.assert_array_equal(smoother._diffuse(Z), expected)
    np.testing.assert_array_equal(Z, kept)
    got = smoother._diffuse(Z.copy(), overwrite=True)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_smoother_stays_j_invariant():
    """The searches in row blocks and the subspace iteration without its last LU do
    not let a group's values into its own graph."""
    X = np.sqrt(poisson_counts(n=500, g=60, seed=3)).astype(np.float64)
    # 40 columns outside a group, 5 components: the subspace iteration, not eigh;
    # 500 rows: two row blocks of the exact search
    smoother = DiffusionSmoother(2, n_neighbors=5, n_groups=3, n_components=5,
                                 random_state=0).fit(X)
    check_j_invariance(smoother, X, random_state=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expected_counts_mapped_in_place(dtype):
    roots = np.sqrt(poisson_counts(n=40, g=30, dtype=np.float64)).astype(dtype) * 1.3
    expected = mean_from_expected_sqrt(roots)
    out = _means_into(roots, roots)
    assert out is roots and out.dtype == dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("sparse", [False, True])
def test_denoise_counts_layer_and_the_callers_counts(sparse):
    """denoise(output='counts') with the table's buffers reused: the layer is the
    expected counts of the chosen smoother's transform (computed here from scratch),
    and the caller's float32 counts are untouched."""
    counts = poisson_counts(n=240, g=40)
    stored = sp.csr_matrix(counts) if sparse else counts.copy()
    adata = anndata.AnnData(np.log1p(counts))
    adata.layers["counts"] = stored
    denoise(adata, "diffusion", output="counts", random_state=0)
    layer = adata.layers["counts"]
    np.testing.assert_array_equal(layer.toarray() if sparse else layer, counts)
    sizes = counts.sum(axis=1)
    Z = np.sqrt(LibrarySizeNormalizer(1e4, log=False).fit_transform(counts))
    params = adata.uns["n2s"]["params"]
    smoother = DiffusionSmoother(n_groups=2, random_state=0).set_params(**params).fit(Z)
    roots = smoother.transform(Z) * np.sqrt(sizes / 1e4).astype(np.float32)[:, None]
    assert adata.layers["denoised"].dtype == np.float32
    np.testing.assert_allclose(adata.layers["denoised"], mean_from_expected_sqrt(roots),
                               rtol=1e-4, atol=1e-5)
