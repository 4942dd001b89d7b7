"""Passes over the rows of a table in blocks: products with thin dense matrices, and the
held-out loss of the low-rank J-invariant prediction from sums of small Gram matrices.

Why blocks. :class:`~sklearn_n2s.table.LowRankDenoiserCV` on a million cells needs the
products ``(X[rows] - mean) @ Q`` and ``(X[rows] - mean)^T @ Y`` for the rows of one
fold. Indexing ``X[train]`` copies two thirds of the matrix, and multiplying a float32
sparse matrix by a float64 block makes scipy copy the whole matrix to float64 first. Here
every product walks ``X`` in blocks of a few thousand rows (only the selected rows of
each block are gathered, only that block is cast to float64), so a pass adds one block
to memory, and ``n_jobs`` threads work on different blocks (scipy's sparse products and
BLAS release the GIL). Results are summed in block order whatever ``n_jobs`` is, so they
do not depend on it.

The held-out loss in one pass. The J-invariant prediction of a column group J at rank k
is ``mean_J + s_J[:, :k] W_k`` with ``s_J = (x - mean)_{-J} V_{-J}`` (the scores from the
*other* columns, see :class:`~sklearn_n2s.table._lowrank.GroupProjection`). Each block
is split once into its column groups, ``P_g = X[:, g] @ V[g]``, and the scores of J are
``sum_{g != J} P_g``: a sum over the other groups only (prefix plus suffix sums, never
``total - P_J``), so the values of group J never enter its scores, not even through
rounding. For the squared error the sum over rows of
``||x_J - mean_J - s W_k||^2`` is ``A - 2 <W_k, B[:, :k]^T> + <W_k, C[:k, :k] W_k>``
with ``A = sum ||x_J - mean_J||^2``, ``B = (x_J - mean_J)^T s`` and ``C = s^T s``
(|J| x K and K x K sums), so every rank of every group is scored from these sums, never
forming a dense prediction. Other losses ('mae', 'poisson') form the prediction block by
block.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ..utils._table_validation import CHUNK_ENTRIES, to_dense
from ._column_masking import check_finite_loss, elementwise_loss
from ._lowrank_dask import dask_row_blocks, is_dask_array


def _as_float64(block):
    if sp.issparse(block):
        return block.tocsr().astype(np.float64, copy=False)
    return np.asarray(block, dtype=np.float64)


def row_blocks(X, rows=None):
    """Yield ``(positions, block)`` over the rows ``rows`` of X (all rows when None).

    ``rows`` is a sorted array of row indices; ``positions`` is the slice of ``rows``
    (or of all rows) the block holds, and ``block`` those rows of X in float64, dense
    or CSR, about :data:`CHUNK_ENTRIES` values once dense. X is a dense array, a CSR
    matrix or a dask array of row chunks (read one chunk at a time).
    """
    if is_dask_array(X):
        yield from dask_row_blocks(X, rows, _as_float64)
        return
    n_rows, n_features = X.shape
    step = max(1, CHUNK_ENTRIES // max(n_features, 1))
    total = n_rows if rows is None else len(rows)
    for start in range(0, total, step):
        stop = min(start + step, total)
        if rows is None:
            block = X[start:stop]
        else:
            chunk = rows[start:stop]
            contiguous = chunk[-1] - chunk[0] == len(chunk) - 1
            # A run of consecutive rows is a slice (no index array to gather through).
            block = X[chunk[0]:chunk[-1] + 1] if contiguous else X[chunk]
        yield slice(start, stop), _as_float64(block)


def map_blocks(function, items, n_jobs):
    """``function(*item)`` for each item, in order; threads when ``n_jobs > 1``.

    At most ``n_jobs`` items are in flight (and one being read), so a pass holds
    ``n_jobs + 1`` blocks at a time.
    """
    if n_jobs <= 1:
        for item in items:
            yield function(*item)
        return
    with ThreadPoolExecutor(n_jobs) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(function, *item))
            if len(pending) >= n_jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def n_selected(X, rows):
    return X.shape[0] if rows is None else len(rows)


def column_means_of_rows(X, rows=None, n_jobs=1):
    """Mean of every column over the rows ``rows`` of X, accumulated in float64."""
    total = np.zeros(X.shape[1])
    for part in map_blocks(lambda _, block: np.asarray(block.sum(axis=0)).ravel(),
                           row_blocks(X, rows), n_jobs):
        total += part
    return total / n_selected(X, rows)


def centred_times(X, mean, Q, rows=None, n_jobs=1):
    """``(X[rows] - mean) @ Q`` as a dense float64 array, X never centred or copied."""
    # Fortran order: the QR that follows overwrites it in place instead of copying.
    out = np.empty((n_selected(X, rows), Q.shape[1]), order="F")
    for positions, product in map_blocks(lambda pos, block: (pos, block @ Q),
                                         row_blocks(X, rows), n_jobs):
        out[positions] = product
    out -= mean @ Q
    return out


def centred_transposed_times(X, mean, Y, rows=None, n_jobs=1):
    """``(X[rows] - mean)^T @ Y`` for Y with one row per selected row of X."""
    total = np.zeros((X.shape[1], Y.shape[1]))
    for part in map_blocks(lambda pos, block: np.asarray(block.T @ Y[pos]),
                           row_blocks(X, rows), n_jobs):
        total += part
    return total - np.outer(mean, Y.sum(axis=0))


def _group_columns(block, groups):
    """The columns of each group of a block (CSC slices for a sparse block)."""
    block = block.tocsc() if sp.issparse(block) else block
    return [block[:, group] for group in groups]


def _scores_without_each_group(parts):
    """``sum_{g != J} parts[g]`` for every J: prefix + suffix sums, never total - own."""
    prefix, suffix = [None] * len(parts), [None] * len(parts)
    running = np.zeros_like(parts[0])
    for g in range(len(parts)):
        prefix[g] = running
        running = running + parts[g]
    running = np.zeros_like(parts[0])
    for g in reversed(range(len(parts))):
        suffix[g] = running
        running = running + parts[g]
    return [prefix[g] + suffix[g] for g in range(len(parts))]


def _squared_error_sums(cols, scores, mean_j):
    """``A = sum ||x_J - mean_J||^2``, ``B = (x_J - mean_J)^T s``, ``C = s^T s``."""
    column_sums = np.asarray(cols.sum(axis=0)).ravel()
    squares = cols.multiply(cols).sum() if sp.issparse(cols) else np.sum(cols * cols)
    A = squares - 2 * mean_j @ column_sums + len(scores) * (mean_j @ mean_j)
    B = np.asarray(cols.T @ scores) - np.outer(mean_j, scores.sum(axis=0))
    return A, B, scores.T @ scores


def _block_statistics(block, projections, components, loss, n_entries):
    """Per group: the sums of the squared-error identity (``loss='mse'``), or each rank's
    elementwise loss summed over the block, each entry divided by ``n_entries`` first."""
    columns = _group_columns(block, [p.group for p in projections])
    parts = [np.asarray(cols @ components[:, p.group].T)
             for cols, p in zip(columns, projections)]
    results = []
    for cols, rest, projection in zip(columns, _scores_without_each_group(parts),
                                      projections):
        scores = rest - projection.offset  # (x - mean)_{-J} V_{-J}, at the largest rank
        if loss == "mse":
            with np.errstate(over="ignore", invalid="ignore"):  # caller checks finiteness
                results.append(_squared_error_sums(cols, scores, projection.mean_group))
        else:
            target = to_dense(cols)
            name = "mse" if loss == "mse-elementwise" else loss
            # Divided before summing: a sum of large squared errors could overflow first.
            results.append([np.sum(elementwise_loss(name, projection.predict(scores, i),
                                                    target) / n_entries)
                            for i in range(len(projection.ranks))])
    return results


def held_out_losses(X, projections, components, loss, rows=None, n_jobs=1):
    """Mean loss over the rows ``rows`` of X of each rank of the group projections.

    ``projections`` are :class:`~sklearn_n2s.table._lowrank.GroupProjection` objects of
    one model, one per column group, all at the same ranks; ``components`` are that
    model's loadings (at least the largest rank). One pass over the rows.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: handled below
        totals = _held_out_losses(X, projections, components, loss, rows, n_jobs)
    if loss == "mse" and not np.all(np.isfinite(totals)):
        # Sums of squares of values near the accepted 1e150 overflow: the slower pass
        # that divides every squared error before summing (as self_supervised_loss).
        totals = _held_out_losses(X, projections, components, "mse-elementwise", rows,
                                  n_jobs)
    return check_finite_loss(totals)


def _held_out_losses(X, projections, components, loss, rows, n_jobs):
    components = components[: max(projections[0].ranks)]
    n_entries = n_selected(X, rows) * X.shape[1]
    n_ranks = len(projections[0].ranks)
    sums = None
    for block_stats in map_blocks(
            lambda _, block: _block_statistics(block, projections, components, loss,
                                               n_entries),
            row_blocks(X, rows), n_jobs):
        if sums is None:
            sums = block_stats
        elif loss == "mse":
            sums = [tuple(a + b for a, b in zip(s, t)) for s, t in zip(sums, block_stats)]
        else:
            sums = [[a + b for a, b in zip(s, t)] for s, t in zip(sums, block_stats)]
    totals = np.zeros(n_ranks)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: handled by the caller
        _add_rank_losses(totals, projections, sums, loss, n_entries)
    return totals


def _add_rank_losses(totals, projections, sums, loss, n_entries):
    for projection, group_sums in zip(projections, sums):
        for i, k in enumerate(projection.ranks):
            if loss == "mse":
                A, B, C = group_sums
                W = projection.weights[i]  # k x |J|
                totals[i] += (A - 2 * np.sum(W * B[:, :k].T)
                              + np.sum(W * (C[:k, :k] @ W))) / n_entries
            else:
                totals[i] += group_sums[i]
    return totals
