"""The fast paths of ``denoise``'s diffusion curve: the clustered and the exact (NumPy)
neighbour searches, the subspace-iteration PCA, the early stop of the t sweep, the
one-fold screening of the low-rank curve (from the Gram matrix) and the expected-root
table."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors

from sklearn_n2s.table import (
    DiffusionSmoother,
    LibrarySizeNormalizer,
    LowRankDenoiserCV,
    denoise,
    diffusion_path_losses,
    expected_sqrt,
    mean_from_expected_sqrt,
)
from sklearn_n2s.table._clustered_search import clustered_neighbours, exact_neighbours
from sklearn_n2s.table._diffusion import (
    ComplementPCA,
    _has_risen,
    _path_losses,
    top_eigenvectors,
)
from sklearn_n2s.utils.estimator_checks import check_j_invariance

anndata = pytest.importorskip("anndata")


def blobs(n=3000, d=12, centres=25, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(centres, d))
    return (means[rng.integers(centres, size=n)] + rng.normal(size=(n, d))).astype(
        np.float32)


def cell_types(n_per=60, g=60, types=5, seed=0):
    """Poisson counts of a few cell types (float64), far from 0..1."""
    rng = np.random.default_rng(seed)
    profiles = rng.gamma(1.0, 20.0, (types, g))
    return rng.poisson(np.repeat(profiles, n_per, axis=0)).astype(np.float64)


def test_clustered_search_finds_the_exact_neighbours():
    F = blobs()
    width = 15
    distances, indices = clustered_neighbours(F, width, random_state=0)
    exact_d, exact_i = NearestNeighbors(n_neighbors=width).fit(F).kneighbors()
    recall = np.mean([len(np.intersect1d(a, b)) for a, b in zip(indices, exact_i)])
    assert recall / width > 0.95
    assert not np.any(indices == np.arange(len(F))[:, np.newaxis])  # never itself
    assert all(len(set(row)) == width for row in indices)  # no repeats
    assert np.all(np.diff(distances, axis=1) >= 0)  # sorted
    # the distances are the exact ones of the returned rows (not the expanded form's)
    recomputed = np.linalg.norm(F[indices] - F[:, np.newaxis].astype(np.float64), axis=2)
    np.testing.assert_allclose(distances, recomputed, rtol=1e-5)
    # an approximate k-th distance never below the exact one, and close to it
    assert np.all(distances[:, -1] >= exact_d[:, -1] * (1 - 1e-5))
    assert distances[:, -1].mean() < exact_d[:, -1].mean() * 1.01
    again = clustered_neighbours(F, width, random_state=0)
    np.testing.assert_array_equal(again[1], indices)  # seeded


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_search_is_scikit_learns(dtype):
    """The NumPy brute force returns scikit-learn's neighbours and distances; duplicated
    rows are at exactly 0 (the kernel's zero bandwidth relies on it), never itself."""
    F = blobs(n=600, d=10).astype(dtype) * 100.0 + 1e4  # far from 0..1
    F[7] = F[3]
    F[11] = F[3]
    distances, indices = exact_neighbours(F, 20)
    exact_d, exact_i = NearestNeighbors(n_neighbors=20).fit(
        F.astype(np.float64)).kneighbors()
    np.testing.assert_allclose(distances, exact_d, rtol=1e-6, atol=1e-6)
    # the same rows (the three equal rows are tied for every other row: any order)
    overlap = np.mean([len(np.intersect1d(a, b)) for a, b in zip(indices, exact_i)])
    assert overlap >= 20 - 1e-2
    assert not np.any(indices == np.arange(len(F))[:, np.newaxis])
    assert distances[3, 0] == 0.0 and distances[3, 1] == 0.0
    assert set(indices[3, :2]) == {7, 11}
    with pytest.raises(ValueError, match="width must be in"):
        exact_neighbours(F, 600)


@pytest.mark.parametrize("sparse", [False, True])
def test_covariance_without_rows_is_the_other_rows_covariance(sparse):
    """The screening fold's covariance, from the Gram matrix of all rows less the held
    rows', equals the covariance of the training rows (dense: the Gram matrix of the
    centred rows; sparse: of the rows themselves)."""
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.gamma(1.0, 30.0, (1, 40)), (90, 40)).astype(np.float32)
    X[:, 0] += 1e3  # a large mean: the centred form must not lose its variance
    held = np.sort(rng.choice(90, 30, replace=False))
    pca = ComplementPCA(sp.csr_matrix(X) if sparse else X, 10)
    covariance, mean, n = pca.covariance_without(held)
    train = np.delete(X, held, axis=0).astype(np.float64)
    assert n == 60
    np.testing.assert_allclose(mean, train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(train.T, bias=True), rtol=1e-5,
                               atol=1e-6 * np.abs(covariance).max())


def test_expected_sqrt_table_matches_the_poisson_sum():
    """The table (steps of 0.01 to a mean of 10, 0.1 to 100) against the sum over the
    Poisson distribution, and the series above."""
    from scipy.stats import poisson

    means = np.r_[0.0, np.random.default_rng(0).uniform(0, 120, 300), 1e-3, 9.995, 10.05]
    k = np.arange(0, 700)
    exact = np.array([poisson.pmf(k, m) @ np.sqrt(k) for m in means])
    np.testing.assert_allclose(expected_sqrt(means), exact, rtol=1e-3, atol=2e-5)
    large = means > 5
    np.testing.assert_allclose(expected_sqrt(means[large]), exact[large], rtol=1e-5)


def test_clustered_search_on_few_rows_widens_the_probe():
    """With fewer rows than clusters x probe can hold, every other row is a candidate:
    the result is the exact search."""
    F = blobs(n=40, d=3)
    distances, indices = clustered_neighbours(F, 39, n_clusters=8, n_probe=1)
    exact_d, exact_i = NearestNeighbors(n_neighbors=39).fit(F).kneighbors()
    np.testing.assert_allclose(distances, exact_d, rtol=1e-5)
    with pytest.raises(ValueError, match="width must be in"):
        clustered_neighbours(F, 40)


def test_top_eigenvectors_span_the_leading_subspace():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(300, 300)))[0]
    values = np.r_[np.geomspace(100.0, 10.0, 20), np.full(280, 0.5)]  # a gap after 20
    matrix = (basis * values) @ basis.T
    vectors = top_eigenvectors(matrix, 20)
    assert vectors.shape == (300, 20)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(20), atol=1e-10)
    # the same subspace as LAPACK's, in the same order (Rayleigh quotients decreasing)
    cosines = scipy.linalg.svdvals(basis[:, :20].T @ vectors)
    assert cosines.min() > 1 - 1e-8
    quotients = np.einsum("ij,ij->j", vectors, matrix @ vectors)
    np.testing.assert_allclose(quotients, values[:20], rtol=1e-6)
    # a small matrix goes to LAPACK: equal up to the sign of each vector
    small = matrix[:25, :25]
    exact = scipy.linalg.eigh(small)[1][:, ::-1][:, :5]
    np.testing.assert_allclose(np.abs(top_eigenvectors(small, 5)), np.abs(exact),
                               atol=1e-8)


@pytest.mark.parametrize("sparse", [False, True])
def test_j_invariance_with_clustered_search_and_subspace_pca(sparse):
    """The graph of a group comes from the other groups' columns through the clustered
    search and the subspace iteration (40 columns outside a group, 5 components):
    still exactly J-invariant."""
    X = cell_types()
    X = sp.csr_matrix(X) if sparse else X
    smoother = DiffusionSmoother(2, n_neighbors=4, n_groups=3, n_components=5,
                                 algorithm="clustered", random_state=0)
    assert check_j_invariance(smoother, X) > 1e-3


def test_clustered_smoother_matches_the_exact_one():
    X = cell_types()
    exact = DiffusionSmoother(2, n_neighbors=5, random_state=0).fit(X)
    clustered = DiffusionSmoother(2, n_neighbors=5, algorithm="clustered",
                                  random_state=0).fit(X)
    # near-ties within a cell type may swap a few neighbours: the outputs differ by far
    # less than the noise the diffusion removes
    gap = np.mean((clustered.transform(X) - exact.transform(X)) ** 2)
    assert gap < 1e-3 * np.mean((exact.transform(X) - X) ** 2)
    np.testing.assert_allclose(diffusion_path_losses(clustered, X, [1, 2, 3]),
                               diffusion_path_losses(exact, X, [1, 2, 3]), rtol=1e-2)


def continuous_counts(seed=0):
    """Counts of rank-3 rates with no clusters: the loss rises from t=1 or 2."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (300, 3)) @ rng.gamma(2.0, 1.0, (3, 60))
    return rng.poisson(rates).astype(np.float64)


def test_sweep_stops_after_the_curve_rose():
    X = continuous_counts()
    smoother = DiffusionSmoother(8, n_neighbors=5, random_state=0).fit(X)
    times = [8, 1, 2, 3, 4, 6]  # any order
    full = diffusion_path_losses(smoother, X, times, n_neighbors=[3, 5])
    early = _path_losses(smoother, smoother._check_input(X), times, [3, 5],
                         stop_after_rises=2)
    computed = ~np.isnan(early)
    np.testing.assert_allclose(early[computed], full[computed], rtol=1e-12)
    assert not computed.all()
    order = np.argsort(times)
    for row, losses in zip(computed[:, order], full[:, order]):
        n = int(row.sum())
        assert row[:n].all()  # a prefix of the sorted times
        if n < len(times):
            assert losses[n - 3] < losses[n - 2] < losses[n - 1]
    assert _has_risen([3.0, 2.0, 2.5, 2.6], 2) and not _has_risen([3.0, 2.0, 2.5], 2)
    assert not _has_risen([3.0, 2.5, 2.6, 2.55], 2)


def test_lowrank_curve_screened_by_one_fold():
    """'auto' scores the low rank's first fold alone: far above the diffusion's best
    loss, the curve is that fold's and the low rank is out; close to it, the whole
    cross-validated curve (the CV estimator's)."""
    counts = cell_types(n_per=50)
    adata = anndata.AnnData(counts.astype(np.float32))
    denoise(adata, layer="X", n_components=[1, 2, 3], random_state=0)
    record = adata.uns["n2s"]
    Z = np.sqrt(LibrarySizeNormalizer(1e4, log=False).fit_transform(counts))
    model = LowRankDenoiserCV([1, 2, 3], cv=KFold(3, shuffle=True, random_state=0),
                              n_groups=2, random_state=0).fit(Z)
    assert record["lowrank"]["folds"] == 1 and record["method"] == "diffusion"
    # the screening fold's iteration starts from all rows' components (one product):
    # within a few tenths of a percent of the fold's own curve, not above its best
    np.testing.assert_allclose(record["lowrank"]["loss"], model.losses_[:, 0], rtol=5e-3)
    assert record["lowrank"]["loss"].min() <= model.losses_[:, 0].min() * (1 + 1e-6)
    assert record["lowrank"]["loss"].min() > 1.02 * np.nanmin(record["diffusion"]["loss"])

    # rank-3 rates: the two families within 2 %
    adata = anndata.AnnData(continuous_counts().astype(np.float32))
    denoise(adata, layer="X", n_components=[1, 3, 10], random_state=0)
    record = adata.uns["n2s"]
    assert record["lowrank"]["folds"] == 3
    Z = np.sqrt(LibrarySizeNormalizer(1e4, log=False).fit_transform(adata.X))
    model = LowRankDenoiserCV([1, 3, 10], cv=KFold(3, shuffle=True, random_state=0),
                              n_groups=2, random_state=0).fit(Z)
    np.testing.assert_allclose(record["lowrank"]["loss"], model.mean_losses_, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_from_expected_sqrt_inverts_expected_sqrt(dtype):
    means = np.r_[0.0, np.geomspace(1e-3, 5e3, 400)]
    roots = expected_sqrt(means).astype(dtype)
    got = mean_from_expected_sqrt(roots)
    assert got.dtype == dtype and got.shape == means.shape
    # within 1e-4 of the exact inverse (the table of expected_sqrt is itself linear
    # between means 0.01 apart)
    np.testing.assert_allclose(got, means, rtol=1e-4, atol=1e-6)
    # 2-D, negatives as 0, and the bias it removes: a root of 0.1 is a mean near 0.1
    table = mean_from_expected_sqrt(np.array([[-1.0, 0.1], [2.0, 0.0]]))
    assert table[0, 0] == 0 and table[1, 1] == 0 and 0.09 < table[0, 1] < 0.12
    assert table[1, 0] > 4.0  # E[sqrt(Poisson(m))] = 2 needs m above 4
    assert np.all(mean_from_expected_sqrt(np.zeros((2, 3))) == 0)


@pytest.mark.parametrize("density", [0.05, 0.5])
def test_gram_of_sparse_tables(density):
    """Dense sparse tables go through dense row blocks (BLAS): the same Gram matrix."""
    from sklearn_n2s.table._diffusion import _DENSE_BLOCK_ENTRIES, _gram

    X = sp.random(_DENSE_BLOCK_ENTRIES // 40 + 7, 40, density=density, format="csr",
                  random_state=0, dtype=np.float32) * 1e3
    np.testing.assert_allclose(_gram(X), (X.T @ X).toarray(), rtol=1e-5)
    assert _gram(X).dtype == np.float64
