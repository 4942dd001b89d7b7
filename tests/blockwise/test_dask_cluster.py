"""GridSearchCV on a dask.distributed cluster (joblib's dask backend) equals the serial run."""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import DonutMedian, FullSplit, JInvariantGaussian, SelfSupervisedScorer

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def client():
    # In-process workers: fast to start, light on a shared machine.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96] / 96
    clean = np.sin(6 * xx) * np.cos(4 * yy)
    return clean[None] + rng.normal(0, 0.3, (3, 96, 96))


@pytest.mark.parametrize("estimator,grid", [
    (JInvariantGaussian(), {"sigma": [0.5, 1.0, 1.5, 2.0, 3.0]}),
    (DonutMedian(), {"radius": [1, 2, 3]}),
], ids=["gaussian", "median"])
def test_grid_search_on_local_cluster_matches_serial(client, noisy, estimator, grid):
    serial = GridSearchCV(estimator, grid, cv=FullSplit(), scoring=SelfSupervisedScorer())
    serial.fit(noisy)
    parallel = GridSearchCV(estimator, grid, cv=FullSplit(), scoring=SelfSupervisedScorer(),
                            n_jobs=-1)
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask"):
            parallel.fit(noisy)
    assert len(stream.data) >= len(grid[next(iter(grid))])  # the fits ran on the cluster
    assert parallel.best_params_ == serial.best_params_
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"], rtol=1e-12)


def test_blockwise_transform_on_the_cluster(client, noisy):
    est = JInvariantGaussian(sigma=1.5, output="invariant").fit(noisy)
    lazy = est.transform(da.from_array(noisy, chunks=(1, 32, 32)))
    np.testing.assert_array_equal(client.compute(lazy).result(), est.transform(noisy))
