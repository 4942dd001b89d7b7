"""LowRankDenoiser(CV) on dask arrays of row chunks: a zarr store, a LocalCluster, and
the same calibration as in memory (same pick, same losses)."""

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_n2s.table import LowRankDenoiser, LowRankDenoiserCV

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")

GRID = [1, 2, 3, 4, 6, 8]


@pytest.fixture(scope="module")
def client():
    # In-process workers: fast to start, light on a shared machine.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def counts():
    """log1p Poisson counts of a rank-3 model, float32, 900 cells x 40 genes."""
    rng = np.random.default_rng(0)
    rates = 0.5 * rng.gamma(1.0, 1.0, (900, 3)) @ rng.gamma(1.0, 1.0, (3, 40))
    return np.log1p(rng.poisson(rates)).astype(np.float32)


def test_zarr_calibration_on_a_cluster_equals_in_memory(client, counts, tmp_path):
    store = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=counts.shape,
                            chunks=(128, counts.shape[1]), dtype="float32")
    store[:] = counts
    lazy = da.from_zarr(str(tmp_path / "x.zarr"))
    in_memory = LowRankDenoiserCV(GRID, svd_solver="randomized", random_state=0).fit(counts)
    with distributed.get_task_stream(client) as stream:
        on_dask = LowRankDenoiserCV(GRID, svd_solver="randomized", random_state=0).fit(lazy)
    assert len(stream.data) > 0  # the chunks were read by the cluster's workers
    assert on_dask.n_components_ == in_memory.n_components_ == 3  # the true rank
    np.testing.assert_allclose(on_dask.losses_, in_memory.losses_, rtol=1e-9)
    np.testing.assert_allclose(on_dask.components_, in_memory.components_, atol=1e-9)
    out = on_dask.transform(lazy)
    assert isinstance(out, da.Array) and out.chunks == lazy.chunks
    computed = out.compute()
    assert computed.dtype == np.float32  # float32 kept
    np.testing.assert_allclose(computed, in_memory.transform(counts), rtol=1e-5, atol=1e-5)


def test_uneven_chunks_shuffled_folds_and_sparse_chunks(counts):
    from sklearn.model_selection import KFold

    cv = KFold(3, shuffle=True, random_state=0)
    in_memory = LowRankDenoiserCV(GRID, cv=cv, svd_solver="randomized", random_state=0,
                                  n_jobs=2).fit(counts)
    lazy = da.from_array(counts, chunks=((100, 350, 50, 400), (25, 15)))
    on_dask = LowRankDenoiserCV(GRID, cv=cv, svd_solver="randomized",
                                random_state=0).fit(lazy)
    np.testing.assert_allclose(on_dask.losses_, in_memory.losses_, rtol=1e-9)
    sparse_chunks = da.from_array(counts, chunks=(300, 40)).map_blocks(sp.csr_matrix)
    on_sparse = LowRankDenoiser(3, svd_solver="randomized", random_state=0).fit(sparse_chunks)
    single = LowRankDenoiser(3, svd_solver="randomized", random_state=0).fit(counts)
    np.testing.assert_allclose(on_sparse.components_, single.components_, atol=1e-9)


def test_bad_dask_input_is_refused_by_name(counts):
    bad = counts.copy()
    bad[700, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LowRankDenoiserCV(GRID).fit(da.from_array(bad, chunks=(300, 40)))
    with pytest.raises(ValueError, match="2-D"):
        LowRankDenoiser(2).fit(da.zeros((4, 5, 6)))
    model = LowRankDenoiser(2, svd_solver="randomized", random_state=0).fit(
        da.from_array(counts, chunks=(300, 40)))
    with pytest.raises(ValueError, match="40 features"):
        model.transform(da.zeros((10, 7)))
    with pytest.raises(TypeError, match="numeric"):
        LowRankDenoiser(2).fit(da.from_array(np.array([["a", "b"], ["c", "d"]])))
