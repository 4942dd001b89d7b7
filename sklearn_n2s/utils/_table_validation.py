"""Validation and row-chunking for tables: ``(n_samples, n_features)``, dense or sparse.

Tables are what the single-cell estimators take: cells in rows, genes in columns, often a
``scipy.sparse`` count matrix. One place decides what a valid table is, so every table
estimator fails the same way:

- dense arrays, or sparse CSR / CSC (other sparse formats are refused with a message
  that says how to convert, since a silent conversion could copy a huge matrix);
- finite values of magnitude at most :data:`MAX_TABLE_MAGNITUDE` (1e150: past it the
  squared errors of a loss overflow float64, so no score could be computed), at least
  one row and one column;
- for count-only methods, non-negative integers and no all-zero row.

Dtypes
------
float32 and float64 tables keep their dtype (outputs are float32 for float32 input;
computations with accumulations run in float64 inside); every other dtype becomes
float64. :func:`as_output_dtype` casts a result back, refusing a value that float32
cannot hold rather than returning infinity.

Numeric parameters
------------------
Python's ``True`` is an ``int`` and would pass scikit-learn's ``Interval(Integral, ...)``
as 1: :class:`IntervalNotBool` is that constraint with booleans refused by name, used for
every numeric parameter of the table estimators (and :data:`RANDOM_STATE_CONSTRAINT` for
seeds).

Densifying
----------
A sparse input is never densified as a whole: estimators work on blocks of rows, each
at most :data:`CHUNK_ENTRIES` values once dense. Outputs that are dense by nature (a
low-rank reconstruction) are refused above :data:`MAX_DENSE_ENTRIES` values (1 GiB of
float64) with a message; compute them on row batches instead, or compute the loss
(:meth:`self_supervised_loss` never materialises the whole prediction).
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_non_negative, validate_data

#: Largest dense array (number of values) an estimator will allocate for its output.
MAX_DENSE_ENTRIES = 2**27
#: Number of values in one dense block of rows processed at a time.
CHUNK_ENTRIES = 2**22

ACCEPTED_SPARSE = ("csr", "csc")
#: Dtypes a table keeps; any other is converted to the first.
KEPT_DTYPES = (np.float64, np.float32)
#: Largest magnitude of a table value: a squared error of two such values (4e300), summed
#: over a block of rows, stays below float64's maximum (1.8e308).
MAX_TABLE_MAGNITUDE = 1e150
#: Largest count :func:`sklearn_n2s.table.molecular_split` splits (exact in float64 and
#: in the int64 binomial draw).
MAX_COUNT = 2**53


class IntervalNotBool(Interval):
    """scikit-learn's :class:`~sklearn.utils._param_validation.Interval`, refusing bools.

    ``True`` is an ``int`` (and a ``Real``) to Python; a count, a rank or a fraction given
    as a boolean is a mistake, refused with the parameter's name like any other bad value.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


#: ``random_state`` of the table estimators: scikit-learn's, with ``True`` refused.
RANDOM_STATE_CONSTRAINT = [
    None, IntervalNotBool(Integral, 0, 2**32 - 1, closed="both"), np.random.RandomState,
]


def check_sparse_format(X, name="X"):
    """Raise a ValueError for a sparse matrix that is not CSR or CSC."""
    if sp.issparse(X) and X.format not in ACCEPTED_SPARSE:
        raise ValueError(
            f"{name} is a sparse matrix in {X.format.upper()} format; only CSR and CSC "
            f"sparse formats are supported. Convert it first, e.g. {name}.tocsr()."
        )


def _largest_magnitude(X):
    """``max |X|`` (0 for no stored value), without an array of absolute values."""
    values = stored_values(X)
    return max(float(values.max(initial=0.0)), -float(values.min(initial=0.0)))


def check_magnitude(X, name="X"):
    """Raise a ValueError, naming the accepted range, if ``|X|`` exceeds 1e150."""
    largest = _largest_magnitude(X)
    if largest > MAX_TABLE_MAGNITUDE:
        raise ValueError(
            f"{name} has a value of magnitude {largest:.3g}; table estimators accept "
            f"values in [-{MAX_TABLE_MAGNITUDE:.0e}, {MAX_TABLE_MAGNITUDE:.0e}] (beyond, "
            "squared errors overflow float64 and no loss can be computed). Rescale the "
            "data first."
        )
    return X


def check_table(estimator, X, *, reset, name="X"):
    """Validate a table for ``estimator``: float64 or float32 (kept), dense or CSR/CSC.

    Uses scikit-learn's ``validate_data`` (which records or checks ``n_features_in_``
    and raises on NaN, infinity, complex values, empty or non-2-D input), then
    :func:`check_magnitude`. Other dtypes become float64. The caller's array is returned
    as is when already float32 or float64, and must then never be modified.
    """
    check_sparse_format(X, name)
    X = validate_data(
        estimator, X, reset=reset, accept_sparse=ACCEPTED_SPARSE, dtype=list(KEPT_DTYPES),
        ensure_min_samples=1, ensure_min_features=1,
    )
    return check_magnitude(X, name)


def as_output_dtype(values, dtype, what="the output"):
    """``values`` (computed in float64) as ``dtype``; a ValueError if float32 overflows.

    Sparse matrices are cast too. For float64 the values are returned unchanged.
    """
    dtype = np.dtype(dtype)
    if values.dtype == dtype:
        return values
    limit = float(np.finfo(dtype).max)
    largest = _largest_magnitude(values)
    if largest > limit:
        raise ValueError(
            f"{what} has a value of magnitude {largest:.3g}, beyond the {dtype} range "
            f"(|values| <= {limit:.3g}); pass the data as float64."
        )
    return values.astype(dtype)


def check_table_array(X, name="X"):
    """:func:`check_table`'s format checks, for functions that have no estimator.

    Returns float64 and checks no range: the caller does (:func:`check_counts`).
    """
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
    largest = float(np.max(values, initial=0.0))
    if largest > MAX_COUNT:
        raise ValueError(
            f"{name} has a count of {largest:.3g}; counts must lie in [0, 2**53 = "
            f"{MAX_COUNT:.3g}] (larger ones are not exact in float64 and cannot be split)."
        )
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
    """Sum of every row, as a 1-D float64 array accumulated in float64 (sparse-aware)."""
    return np.asarray(X.sum(axis=1, dtype=np.float64), dtype=np.float64).ravel()


def column_means(X):
    """Mean of every column, as a 1-D float64 array accumulated in float64 (sparse-aware)."""
    return np.asarray(X.mean(axis=0, dtype=np.float64), dtype=np.float64).ravel()


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
