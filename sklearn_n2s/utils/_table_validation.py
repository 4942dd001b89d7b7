"""Validation and row-chunking for tables: ``(n_samples, n_features)``, dense or sparse.

Tables are what the single-cell estimators take: cells in rows, genes in columns, often a
``scipy.sparse`` count matrix. One place decides what a valid table is, so every table
estimator fails the same way:

- dense arrays, or sparse CSR / CSC (other sparse formats are refused with a message
  that says how to convert, since a silent conversion could copy a huge matrix);
- finite values, at least one row and one column;
- for count-only methods, non-negative integers and no all-zero row.

Densifying
----------
A sparse input is never densified as a whole: estimators work on blocks of rows, each
at most :data:`CHUNK_ENTRIES` values once dense. Outputs that are dense by nature (a
low-rank reconstruction) are refused above :data:`MAX_DENSE_ENTRIES` values (1 GiB of
float64) with a message; compute them on row batches instead, or compute the loss
(:meth:`self_supervised_loss` never materialises the whole prediction).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_non_negative, validate_data

#: Largest dense array (number of values) an estimator will allocate for its output.
MAX_DENSE_ENTRIES = 2**27
#: Number of values in one dense block of rows processed at a time.
CHUNK_ENTRIES = 2**22

ACCEPTED_SPARSE = ("csr", "csc")


def check_sparse_format(X, name="X"):
    """Raise a ValueError for a sparse matrix that is not CSR or CSC."""
    if sp.issparse(X) and X.format not in ACCEPTED_SPARSE:
        raise ValueError(
            f"{name} is a sparse matrix in {X.format.upper()} format; only CSR and CSC "
            f"sparse formats are supported. Convert it first, e.g. {name}.tocsr()."
        )


def check_table(estimator, X, *, reset, name="X"):
    """Validate a table for ``estimator`` and return it as float64 (dense or CSR/CSC).

    Uses scikit-learn's ``validate_data`` (which records or checks ``n_features_in_``
    and raises on NaN, infinity, complex values, empty or non-2-D input). The caller's
    array is returned as is when already float64, and must then never be modified.
    """
    check_sparse_format(X, name)
    return validate_data(
        estimator, X, reset=reset, accept_sparse=ACCEPTED_SPARSE, dtype=np.float64,
        ensure_min_samples=1, ensure_min_features=1,
    )


def check_table_array(X, name="X"):
    """Same checks as :func:`check_table`, for functions that have no estimator."""
    from sklearn.utils import check_array

    check_sparse_format(X, name)
    return check_array(X, accept_sparse=ACCEPTED_SPARSE, dtype=np.float64,
                       ensure_min_samples=1, ensure_min_features=1, input_name=name)


def stored_values(X):
    """The explicitly stored values of a sparse matrix, or all values of a dense one."""
    return X.data if sp.issparse(X) else np.asarray(X)


def check_counts(X, name="X", *, allow_empty_rows=False):
    """Raise a ValueError unless X holds non-negative integer counts.

    With ``allow_empty_rows=False`` a row with no counts at all is refused too: its
    library size is zero and it cannot be normalised or split meaningfully.
    """
    check_non_negative(X, f"{name} (raw counts: non-negative integers)")
    values = stored_values(X)
    if values.size and not np.all(values == np.round(values)):
        bad = values[values != np.round(values)][0]
        raise ValueError(
            f"{name} has non-integer values (e.g. {bad:g}); this method needs raw counts, "
            "not normalised or log-transformed data."
        )
    if not allow_empty_rows:
        totals = row_sums(X)
        empty = np.flatnonzero(totals == 0)
        if empty.size:
            raise ValueError(
                f"{name} has {empty.size} row(s) with zero total counts (first: row "
                f"{empty[0]}); remove them first (e.g. scanpy.pp.filter_cells(min_counts=1))."
            )
    return X


def row_sums(X):
    """Sum of every row, as a 1-D float64 array (sparse-aware)."""
    return np.asarray(X.sum(axis=1), dtype=np.float64).ravel()


def column_means(X):
    """Mean of every column, as a 1-D float64 array (sparse-aware)."""
    return np.asarray(X.mean(axis=0), dtype=np.float64).ravel()


def check_dense_size(n_rows, n_cols, what="the output"):
    """Raise a ValueError if a dense ``(n_rows, n_cols)`` array would pass the limit."""
    if n_rows * n_cols > MAX_DENSE_ENTRIES:
        raise ValueError(
            f"{what} would be a dense array of {n_rows} x {n_cols} values, more than the "
            f"limit of {MAX_DENSE_ENTRIES} "
            "(sklearn_n2s.utils._table_validation.MAX_DENSE_ENTRIES). "
            "Process the rows in batches, or use self_supervised_loss, which never "
            "materialises the whole prediction."
        )


def row_chunks(n_rows, n_cols):
    """Slices of consecutive rows whose dense blocks hold about CHUNK_ENTRIES values."""
    step = max(1, CHUNK_ENTRIES // max(n_cols, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def to_dense(X):
    """A dense float64 array of X (a copy for sparse input, X itself when dense)."""
    return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def complement(n_features, group):
    """Indices of the features not in ``group`` (sorted)."""
    keep = np.ones(n_features, dtype=bool)
    keep[group] = False
    return np.flatnonzero(keep)


def columns(X, index):
    """Columns ``index`` of X; sparse input is kept sparse (as CSC, cheap to slice)."""
    return X[:, index]
