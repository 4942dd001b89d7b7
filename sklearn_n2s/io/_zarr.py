"""Zarr in, zarr out: denoise an on-disk chunked array without loading it.

:func:`denoise_zarr` reads a zarr array lazily with dask, denoises it blockwise
(:mod:`sklearn_n2s.blockwise`) and writes the result to a zarr store, chunk by chunk, so
memory stays bounded by a few chunks per worker whatever the size of the array. It is
what ``n2s denoise in.zarr out.zarr`` runs.

For ``output='shrink'`` (the default of every denoiser) the per-sample shrinkage
weight needs a statistic of the whole image. Instead of running the filter twice (as a
lazy :meth:`transform` must), :func:`denoise_zarr` writes the J-invariant prediction to
``dst`` while reducing the statistic in the same pass, then mixes it with the data in
place (an element-wise pass over ``src`` and ``dst``).

Integer input gives the same integer dtype back, in the input's units, by the policy of
:func:`sklearn_n2s.io.restore_dtype` (what a TIFF gets from the command line); with
``output='shrink'`` the float J-invariant prediction is then kept in a temporary store
beside ``dst`` (removed afterwards) instead of in ``dst`` itself.
"""

import os
import shutil
import tempfile

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..image._blockwise import (
    _require_dask,
    denoise_overlapping,
    global_shrink_weights,
    mix_with_data,
    prepare_blockwise,
)
from ._images import restore_dtype


def _open_source(src, chunks):
    da = _require_dask()
    import zarr

    if isinstance(src, (str, os.PathLike)):
        if not os.path.exists(src):
            raise FileNotFoundError(f"No zarr store at {os.fspath(src)!r}.")
        src = zarr.open_array(os.fspath(src), mode="r")
    if not hasattr(src, "chunks") or not hasattr(src, "dtype"):
        raise TypeError(f"src must be a zarr array or a path to one, got {type(src).__name__}.")
    return da.from_array(src, chunks=src.chunks if chunks is None else chunks)


def _fitted(estimator, X):
    """The estimator, fitted on one chunk if it was not (the filters learn nothing)."""
    try:
        check_is_fitted(estimator)
        return estimator
    except NotFittedError:
        first_chunk = tuple(slice(0, c[0]) for c in X.chunks)
        return estimator.fit(np.asarray(X[first_chunk].compute()))


def _create_destination(dst, shape, dtype, chunks, overwrite):
    import zarr

    if isinstance(dst, (str, os.PathLike)):
        if os.path.exists(dst) and not overwrite:
            raise FileExistsError(
                f"{os.fspath(dst)!r} exists; pass overwrite=True to replace it."
            )
        return zarr.open_array(os.fspath(dst), mode="w", shape=shape, dtype=dtype,
                               chunks=chunks)
    return dst


def denoise_zarr(src, dst, estimator, *, chunks=None, overwrite=False):
    """Denoise a zarr array chunk by chunk into a new zarr array.

    Parameters
    ----------
    src : str, path or zarr.Array
        Image stack of shape (n_samples, *spatial[, n_channels]); never modified.
    dst : str, path or zarr.Array
        Where to write the result (same shape; integer input keeps its dtype and units,
        see :func:`~sklearn_n2s.io.restore_dtype`; float32 for float16/float32 input,
        else float64). A path is created as a zarr array with the processing chunks.
    estimator : DonutMedian, JInvariantGaussian or JInvariantWavelet
        Used as set (``output`` decides what is written). If not fitted, it is fitted on
        the first chunk (the classical filters learn nothing from the data).
    chunks : tuple or None, default=None
        Processing chunks; None keeps the chunks of ``src``.
    overwrite : bool, default=False
        Replace an existing array at the ``dst`` path.

    Returns
    -------
    out : zarr.Array
        The array written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, zarr
    >>> from sklearn_n2s import JInvariantGaussian
    >>> from sklearn_n2s.io import denoise_zarr
    >>> tmp = tempfile.mkdtemp()
    >>> X = np.random.default_rng(0).normal(size=(1, 64, 64)).astype(np.float32)
    >>> src = zarr.open_array(os.path.join(tmp, "in.zarr"), mode="w", shape=X.shape,
    ...                       chunks=(1, 32, 32), dtype=X.dtype)
    >>> src[:] = X
    >>> est = JInvariantGaussian(sigma=1.0, output="ordinary")
    >>> out = denoise_zarr(os.path.join(tmp, "in.zarr"), os.path.join(tmp, "out.zarr"), est)
    >>> out.shape, str(out.dtype), bool(np.array_equal(out[:], est.transform(X)))
    ((1, 64, 64), 'float32', True)
    >>> import shutil; shutil.rmtree(tmp)
    """
    X = _open_source(src, chunks)
    return write_denoised(X, dst, estimator, overwrite=overwrite)


def write_denoised(X, dst, estimator, *, overwrite=False):
    """Denoise a dask array blockwise and store the result in a zarr array, chunk by chunk.

    The engine of :func:`denoise_zarr`, for a dask array from any source (a lazily
    generated one, an HDF5 dataset). Its chunks become the zarr chunks of ``dst``, so they
    must be regular (all equal but the last along each axis).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
        The image stack.
    dst : str, Path or zarr store
        Where the denoised array is written.
    estimator : estimator
        An image denoiser, used as set; if not fitted, it is fitted on the first chunk
        (the classical filters learn nothing from the data).
    overwrite : bool, default=False
        Replace an existing ``dst``.

    Returns
    -------
    out : zarr.Array
        The denoised array, stored in ``dst`` (integer input: in its own dtype).
    """
    estimator = _fitted(estimator, X)
    X_planned, depth, boundary, dtype = prepare_blockwise(estimator, X)
    integer = np.dtype(X.dtype).kind in "iu"
    store_chunks = tuple(c[0] for c in X.chunks)
    target = _create_destination(dst, X.shape, X.dtype if integer else dtype, store_chunks,
                                 overwrite)
    if tuple(target.shape) != tuple(X.shape):
        raise ValueError(f"dst has shape {tuple(target.shape)}, src has shape {X.shape}.")
    da = _require_dask()
    if estimator.output != "shrink":
        result = denoise_overlapping(X_planned, estimator, estimator.output, depth, boundary,
                                     dtype)
        da.store(_restored(result.rechunk(X.chunks), X.dtype), target, lock=False)
        return target
    invariant = denoise_overlapping(X_planned, estimator, "invariant", depth, boundary, dtype)
    if not integer:
        _store_shrunk(X, invariant, estimator, dtype, target, target)
        return target
    # The float prediction cannot live in an integer dst: a temporary store holds it.
    scratch = tempfile.mkdtemp(prefix=".n2s-invariant-", dir=_scratch_dir(dst))
    try:
        import zarr

        buffer = zarr.open_array(os.path.join(scratch, "invariant.zarr"), mode="w",
                                 shape=X.shape, dtype=dtype, chunks=store_chunks)
        _store_shrunk(X, invariant, estimator, dtype, buffer, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _scratch_dir(dst):
    """Beside a ``dst`` path (same disk); the system's temporary folder otherwise."""
    if isinstance(dst, (str, os.PathLike)):
        return os.path.dirname(os.path.abspath(os.fspath(dst)))
    return None


def _restored(result, dtype):
    """Float blocks back to an integer input's dtype and units (floats: unchanged)."""
    if np.dtype(dtype).kind not in "iu":
        return result
    return result.map_blocks(restore_dtype, dtype, dtype=dtype)


def _store_shrunk(X, invariant, estimator, dtype, buffer, target):
    """Pass 1 writes the invariant prediction to ``buffer`` and reduces ``lam``; pass 2
    mixes it with the data into ``target`` (in place when they are the same array)."""
    da = _require_dask()
    stored = da.store(invariant.rechunk(X.chunks), buffer, lock=False, compute=False)
    # The reduction and the store share the invariant tasks: one filter pass.
    lam = global_shrink_weights(estimator, X, invariant, dtype, also_compute=(stored,))
    stored_invariant = da.from_array(buffer, chunks=X.chunks)
    da.store(_restored(mix_with_data(X, stored_invariant, lam, dtype), X.dtype), target,
             lock=False)
