"""denoise_zarr: a zarr array in, its denoised version written to a zarr store."""

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")
import dask

from sklearn_n2s import DonutMedian, JInvariantGaussian
from sklearn_n2s.io import denoise_zarr


@pytest.fixture(autouse=True)
def _synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


def write_zarr(path, X, chunks):
    arr = zarr.open_array(str(path), mode="w", shape=X.shape, chunks=chunks, dtype=X.dtype)
    arr[:] = X
    return arr


@pytest.fixture
def noisy():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:200, 0:180] / 200
    clean = np.sin(5 * xx) * np.cos(3 * yy)
    return np.stack([clean, -clean]) + rng.normal(0, 0.3, (2, 200, 180))


@pytest.mark.parametrize("estimator", [
    JInvariantGaussian(sigma=2.0, output="ordinary"),
    JInvariantGaussian(sigma=2.0, output="invariant"),
    DonutMedian(radius=2, output="invariant"),
], ids=repr)
def test_output_equals_in_memory(tmp_path, noisy, estimator):
    src = write_zarr(tmp_path / "in.zarr", noisy, (1, 64, 64))
    out = denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", estimator)
    assert out.shape == noisy.shape and out.dtype == np.float64
    assert tuple(out.chunks) == (1, 64, 64)
    np.testing.assert_array_equal(out[:], estimator.fit(noisy).transform(noisy))
    np.testing.assert_array_equal(src[:], noisy)  # the source is untouched
    reopened = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(reopened[:], out[:])


def test_shrink_matches_in_memory_with_known_noise(tmp_path, noisy):
    write_zarr(tmp_path / "in.zarr", noisy, (1, 64, 64))
    est = DonutMedian(radius=2, noise_variance=0.09)
    out = denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", est)
    np.testing.assert_allclose(out[:], est.fit(noisy).transform(noisy), rtol=0, atol=1e-12)


def test_shrink_matches_lazy_blockwise_with_estimated_noise(tmp_path, noisy):
    src = write_zarr(tmp_path / "in.zarr", noisy, (1, 64, 64))
    est = JInvariantGaussian(sigma=1.5).fit(noisy)
    out = denoise_zarr(src, tmp_path / "out.zarr", est)
    lazy = est.transform(da.from_array(noisy, chunks=(1, 64, 64))).compute()
    np.testing.assert_allclose(out[:], lazy, rtol=0, atol=1e-12)


def test_float32_and_processing_chunks(tmp_path, noisy):
    X = noisy.astype(np.float32)
    write_zarr(tmp_path / "in.zarr", X, (1, 200, 180))
    est = JInvariantGaussian(sigma=1.0, output="invariant")
    out = denoise_zarr(str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), est,
                       chunks=(1, 50, 60))
    assert out.dtype == np.float32 and tuple(out.chunks) == (1, 50, 60)
    np.testing.assert_array_equal(out[:], est.fit(X).transform(X))


def test_unfitted_estimator_is_fitted_on_a_chunk(tmp_path, noisy):
    write_zarr(tmp_path / "in.zarr", noisy, (1, 64, 64))
    est = JInvariantGaussian(sigma=1.0, output="ordinary")
    denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", est)
    assert est.n_spatial_dims_ == 2


def test_errors(tmp_path, noisy):
    write_zarr(tmp_path / "in.zarr", noisy, (1, 64, 64))
    est = JInvariantGaussian(output="ordinary")
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        denoise_zarr(tmp_path / "missing.zarr", tmp_path / "out.zarr", est)
    denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", est)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", est)
    denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", est, overwrite=True)
    wrong = zarr.open_array(str(tmp_path / "wrong.zarr"), mode="w", shape=(1, 5, 5), dtype="f8")
    with pytest.raises(ValueError, match="shape"):
        denoise_zarr(tmp_path / "in.zarr", wrong, est)
    with pytest.raises(TypeError, match="zarr array"):
        denoise_zarr(noisy, tmp_path / "x.zarr", est)


@pytest.mark.parametrize("output", ["shrink", "ordinary"])
def test_integer_input_comes_back_in_its_dtype_and_units(tmp_path, output):
    """uint16 in, uint16 out, as read_image/restore_dtype give for a TIFF."""
    from sklearn_n2s.io import restore_dtype

    rng = np.random.default_rng(1)
    X = rng.poisson(rng.uniform(50, 3000, (2, 1, 1)), (2, 96, 80)).astype(np.uint16)
    write_zarr(tmp_path / "in.zarr", X, (1, 48, 40))
    est = JInvariantGaussian(sigma=1.5, output=output, noise_variance=1e-6)
    out = denoise_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", est)
    assert out.dtype == np.uint16
    expected = restore_dtype(est.fit(X).transform(X), np.uint16)
    assert np.abs(out[:].astype(int) - expected.astype(int)).max() <= 1  # rounding only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]
