"""Tables bigger than memory: a ``dask.array`` of row chunks as a source of row blocks.

:class:`~sklearn_n2s.table.LowRankDenoiser` and :class:`~sklearn_n2s.table.LowRankDenoiserCV`
only ever touch their data through passes over blocks of rows (:mod:`._gram`). For a
dask array (from a zarr store of row chunks, say) each pass reads one row chunk at a
time, through whatever scheduler is active (a ``dask.distributed`` client included), uses
it and drops it: the process holds ``n_jobs + 1`` chunks, the thin dense products (rows x
(rank + oversampling)) and the small sums, never the matrix; choose the row chunks
accordingly (a few thousand rows of 2,000 genes are 16-32 MiB each).

Passes: the calibration reads the whole array about 34 times for 3 folds and
``n_iter=4`` (see :mod:`._lowrank`), each chunk decompressed every time: on a store
bigger than memory, disk and decompression speed set the time, not the arithmetic.
The calibration is the same computation as in memory, block for block, so it picks the
same rank.

dask is imported only when a dask array is given (it is an optional dependency).
"""

import numpy as np
import scipy.sparse as sp

from ..utils._table_validation import KEPT_DTYPES, check_magnitude


def is_dask_array(X):
    """Whether X is a ``dask.array.Array`` (asked without importing dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "chunks")


def check_dask_table(estimator, X, *, reset):
    """Validate a lazy table's shape and dtype; the values are checked as chunks are read.

    Returns X with a single chunk along the columns (rows stay as chunked), cast lazily
    to float64 unless float32 or float64. Sets or checks ``n_features_in_``.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D table (n_samples, n_features); got a dask "
                         f"array with shape {X.shape}.")
    if any(np.isnan(size) for sizes in X.chunks for size in sizes):
        raise ValueError("X is a dask array with unknown chunk sizes; call "
                         "X.compute_chunk_sizes() first.")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}; at least one row and one column are "
                         "needed.")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"X has dtype {X.dtype}; a numeric table is needed.")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError("X has complex values; a real table is needed.")
    if X.dtype not in KEPT_DTYPES:
        X = X.astype(np.float64)
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} "
                         f"is expecting {estimator.n_features_in_} features as input.")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def _check_chunk_values(block):
    values = block.data if sp.issparse(block) else block
    if not np.all(np.isfinite(values)):
        raise ValueError("Input X contains NaN or infinity.")
    check_magnitude(block)


def dask_row_blocks(X, rows, as_float64):
    """Yield ``(positions, block)`` as :func:`._gram.row_blocks` does, chunk by chunk.

    Each row chunk holding selected rows is computed once per pass (with the active
    scheduler), checked (finite, within the accepted range) and cut to those rows.
    """
    bounds = np.cumsum((0,) + tuple(X.chunks[0]))
    for i in range(len(X.chunks[0])):
        first, last = bounds[i], bounds[i + 1]
        if rows is None:
            positions, local = slice(first, last), None
        else:
            lo, hi = np.searchsorted(rows, [first, last])
            if lo == hi:
                continue
            positions, local = slice(lo, hi), rows[lo:hi] - first
        block = X.blocks[i, 0].compute()
        if local is not None and len(local) < last - first:
            block = block[local]
        block = as_float64(block)
        _check_chunk_values(block)
        yield positions, block


def dask_transform(model, X):
    """``model.transform`` of every row chunk, as a lazy dask array of X's float dtype."""
    return X.map_blocks(_transform_chunk, model, dtype=X.dtype)


def _transform_chunk(block, model):
    if sp.issparse(block):
        block = block.tocsr()
    return model.transform(block)
