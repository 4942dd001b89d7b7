"""Library-size normalisation, and a way to keep it J-invariant.

Single-cell counts are usually normalised per cell by its library size (total counts),
scaled to a common ``target_sum`` and log-transformed: ``log1p(x / s * target_sum)``.
The library size ``s`` sums every gene, so it leaks the values of a gene group J into
the normalised values of all the other genes.

Two ways to use it with the self-supervised loss:

- :class:`LibrarySizeNormalizer` as a step of a :class:`~sklearn.pipeline.Pipeline`
  ending in a table denoiser. :class:`~sklearn_n2s.SelfSupervisedScorer` scores the last
  step on the normalised data, where the invariance is approximate: ``x_J`` reaches the
  prediction of ``J`` through ``s`` only, a relative change of about
  ``|J| / n_features`` of a cell's library. Fine in practice for thousands of genes.
- :class:`NormalizedDenoiser` (exact): for each column group J the size factor is
  computed from the *unmasked* columns only (rescaled by the share of counts those
  columns hold in the training data, so it matches the full library on average), the
  row is normalised with it, and the wrapped denoiser predicts J from the other
  normalised columns. Prediction and target of group J use that same size factor, so
  the prediction never depends on ``x_J``, even through ``s``.
"""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted, check_non_negative

from ..utils._table_validation import (
    IntervalNotBool,
    as_output_dtype,
    check_dense_size,
    check_table,
    complement,
    row_sums,
    to_dense,
)
from ._column_masking import ColumnInvariantMixin

OUTPUTS = ("normalized", "counts")
EMPTY_ROWS = ("raise", "zero")
_NORMALIZER_CONSTRAINTS = {
    "target_sum": [IntervalNotBool(Real, 0, None, closed="neither"), None],
    "log": ["boolean"],
    "empty_rows": [StrOptions(set(EMPTY_ROWS))],
}

def scale_rows(X, factors):
    """X with row i multiplied by ``factors[i]`` (a new array; sparse stays sparse)."""
    if sp.issparse(X):
        # CSR: the stored values scaled in a copy (the product with a diagonal matrix
        # gave the same in unsorted order, at twice the time); duplicates summed first
        X = X.tocsr()
        out = sp.csr_matrix((X.data.astype(np.float64), X.indices.copy(),
                             X.indptr.copy()), shape=X.shape)
        out.sum_duplicates()  # a check only, for canonical input
        factors = np.asarray(factors, dtype=np.float64)
        # rows a block of about 2^20 entries: the per-entry factors stay a small
        # temporary (at 100,000 cells one array of them was 70 MB)
        step = max(1, int((1 << 20) * X.shape[0] / max(out.nnz, 1)))
        for start in range(0, X.shape[0], step):
            rows = slice(start, min(start + step, X.shape[0]))
            lo, hi = out.indptr[rows.start], out.indptr[rows.stop]
            out.data[lo:hi] *= np.repeat(factors[rows], np.diff(out.indptr[rows.start:
                                                                          rows.stop + 1]))
        return out
    return np.asarray(X, dtype=np.float64) * factors[:, np.newaxis]


def log1p_table(X):
    """``log1p`` of a dense or sparse table (zeros stay zeros, sparsity is kept)."""
    if sp.issparse(X):
        out = X.copy()
        out.data = np.log1p(out.data)
        return out
    return np.log1p(X)


class LibrarySizeNormalizer(TransformerMixin, BaseEstimator):
    """Normalise each row by its total, to ``target_sum``, then optionally ``log1p``.

    ``transform(X) = log1p(X / s * target_sum)`` with ``s`` the row sums (scanpy's
    ``normalize_total`` followed by ``log1p``). Sparse input stays sparse.

    Parameters
    ----------
    target_sum : float or None, default=None
        Total every row is scaled to; None uses the median row total of the training
        data (as scanpy does).
    log : bool, default=True
        Apply ``log1p`` after scaling.
    empty_rows : {'raise', 'zero'}, default='raise'
        What to do with a row whose total is 0: refuse it (it has no library size), or
        leave it as zeros (what scanpy's ``normalize_total`` does).

    Attributes
    ----------
    target_sum_ : float
        Total every row is scaled to: ``target_sum``, or the median non-zero row total
        of the training data when ``target_sum`` is None (1.0 if every row is empty).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``. Defined only when X has feature names that
        are all strings.

    See Also
    --------
    NormalizedDenoiser : normalisation and a table denoiser, exactly J-invariant.

    References
    ----------
    .. [1] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.table import LibrarySizeNormalizer
    >>> X = np.array([[1, 3], [2, 2]])
    >>> LibrarySizeNormalizer(target_sum=4, log=False).fit_transform(X)
    array([[1., 3.],
           [2., 2.]])
    """

    _parameter_constraints: dict = dict(_NORMALIZER_CONSTRAINTS)

    def __init__(self, target_sum=None, *, log=True, empty_rows="raise"):
        self.target_sum = target_sum
        self.log = log
        self.empty_rows = empty_rows

    def _library_sizes(self, X):
        sizes = row_sums(X)
        empty = np.flatnonzero(sizes == 0)
        if empty.size and self.empty_rows == "raise":
            raise ValueError(
                f"X has {empty.size} row(s) with zero total (first: row {empty[0]}): they "
                "cannot be normalised by library size; remove them first."
            )
        return sizes

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record ``target_sum_`` (the median row total when ``target_sum`` is None).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative values (counts); with ``empty_rows='raise'``, no all-zero row.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = check_table(self, X, reset=True)
        check_non_negative(X, "LibrarySizeNormalizer (input X)")
        return self._fit_sizes(self._library_sizes(X), X.shape[1])

    def _fit_sizes(self, sizes, n_features):
        """``fit`` from the rows' totals of a table already validated (``denoise``'s)."""
        self.n_features_in_ = n_features
        median = float(np.median(sizes[sizes > 0])) if np.any(sizes > 0) else 1.0
        self.target_sum_ = median if self.target_sum is None else float(self.target_sum)
        return self

    def transform(self, X, library_size=None):
        """Normalise X; ``library_size`` (per row) replaces the row totals when given.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative values (counts), with the features seen in ``fit``.
        library_size : array-like of shape (n_samples,) or None
            Rows with a library size of 0 come out as zeros.

        Returns
        -------
        X_normalized : ndarray or sparse matrix of shape (n_samples, n_features)
            ``log1p(X / s * target_sum_)`` (without the ``log1p`` when ``log=False``),
            sparse (CSR) when X is.
        """
        check_is_fitted(self)
        self._validate_params()  # `log` is read here: a set_params(log='yes') is refused
        X = check_table(self, X, reset=False)
        check_non_negative(X, "LibrarySizeNormalizer (input X)")
        return as_output_dtype(self._normalize(X, library_size), X.dtype)

    def _normalize(self, X, library_size=None):
        """The normalised X in float64 (callers cast it back to X's dtype)."""
        sizes = self._library_sizes(X) if library_size is None else np.asarray(library_size)
        with np.errstate(divide="ignore"):
            factors = np.where(sizes > 0, self.target_sum_ / np.where(sizes > 0, sizes, 1), 0.0)
        scaled = scale_rows(X, factors)
        return log1p_table(scaled) if self.log else scaled

    def inverse_transform(self, X, library_size=None):
        """Back to counts: undo ``log1p`` and scale row i to ``library_size[i]``.

        Without ``library_size`` the rows stay at ``target_sum_`` (normalised counts).
        Negative values from a denoiser are clipped at 0.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Values in the normalised space (the output of :meth:`transform`, or a
            denoised version of it).
        library_size : array-like of shape (n_samples,) or None, default=None
            Total counts each row is scaled back to.

        Returns
        -------
        X_counts : ndarray of shape (n_samples, n_features)
            Non-negative counts (expected counts when X was denoised); float32 for
            float32 X, else float64.
        """
        check_is_fitted(self)
        self._validate_params()
        float32 = getattr(X, "dtype", None) == np.float32
        return as_output_dtype(self._inverse(X, library_size),
                               np.float32 if float32 else np.float64)

    def _inverse(self, X, library_size=None):
        """:meth:`inverse_transform` in float64, unvalidated (for NormalizedDenoiser)."""
        Z = to_dense(X)
        counts = np.expm1(Z) if self.log else np.array(Z, dtype=np.float64)
        counts = np.maximum(counts, 0.0)
        if library_size is None:
            return counts
        return counts * (np.asarray(library_size, dtype=np.float64) / self.target_sum_)[:, None]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.requires_fit = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class NormalizedDenoiser(ColumnInvariantMixin, TransformerMixin, BaseEstimator):
    """Library-size normalisation and a table denoiser, J-invariant as a whole.

    ``transform`` normalises X with :class:`LibrarySizeNormalizer` and denoises it. The
    J-invariant prediction computes, for each column group J of the denoiser, the size
    factors from the other columns only (see the module notes), so the self-supervised
    loss is exact; it is measured in the normalised space (``output='normalized'``) or on
    the counts (``output='counts'``).

    Parameters
    ----------
    denoiser : estimator
        A column-partition table denoiser: :class:`~sklearn_n2s.table.LowRankDenoiser`,
        :class:`~sklearn_n2s.table.KNNSmoother` or
        :class:`~sklearn_n2s.table.ColumnMaskingDenoiser`. Its partition
        (``n_groups``, ``random_state``) is used. Cloned in fit; tune it with
        ``denoiser__<param>``.
    target_sum : float or None, default=None
        See :class:`LibrarySizeNormalizer`.
    log : bool, default=True
        See :class:`LibrarySizeNormalizer`.
    empty_rows : {'raise', 'zero'}, default='raise'
        See :class:`LibrarySizeNormalizer`.
    output : {'normalized', 'counts'}, default='normalized'
        Space of ``transform``, ``invariant_transform`` and the loss. ``'counts'`` maps
        the denoised values back to each row's library size (needed for a Poisson loss).

    Attributes
    ----------
    normalizer_ : LibrarySizeNormalizer
        The normaliser fitted on the training counts (``target_sum``, ``log``,
        ``empty_rows`` passed on).
    denoiser_ : estimator
        The fitted clone of ``denoiser``, fitted on the normalised data.
    groups_ : list of ndarray
        The denoiser's column groups.
    column_totals_ : ndarray of shape (n_features,)
        Column sums of the training counts (for the share of counts outside each group).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``. Defined only when X has feature names that
        are all strings.

    See Also
    --------
    LibrarySizeNormalizer : the normalisation alone, as a Pipeline step (the loss is
        then only approximately J-invariant).

    References
    ----------
    .. [1] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import SelfSupervisedScorer
    >>> from sklearn_n2s.table import LowRankDenoiser
    >>> from sklearn_n2s.table import NormalizedDenoiser
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.gamma(2.0, 1.0, (300, 3)) @ rng.gamma(2.0, 1.0, (3, 40))
    >>> X = rng.poisson(rates)
    >>> search = GridSearchCV(NormalizedDenoiser(LowRankDenoiser(random_state=0)),
    ...                       {"denoiser__n_components": [1, 3, 10]},
    ...                       scoring=SelfSupervisedScorer(), cv=3)
    >>> search.fit(X).best_params_
    {'denoiser__n_components': 3}
    """

    _parameter_constraints: dict = {
        # _predict_group: the column-partition table denoisers of this package.
        "denoiser": [HasMethods(["fit", "transform", "_predict_group"])],
        **_NORMALIZER_CONSTRAINTS,
        "output": [StrOptions(set(OUTPUTS))],
    }

    def __init__(self, denoiser, *, target_sum=None, log=True, empty_rows="raise",
                 output="normalized"):
        self.denoiser = denoiser
        self.target_sum = target_sum
        self.log = log
        self.empty_rows = empty_rows
        self.output = output

    @property
    def _row_independent(self):
        return getattr(self.denoiser_, "_row_independent", True)

    @_fit_context(prefer_skip_nested_validation=False)  # denoiser: validated in its fit
    def fit(self, X, y=None):
        """Fit the normaliser, then the denoiser on the normalised data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative counts; with ``empty_rows='raise'``, no all-zero row.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = check_table(self, X, reset=True)
        self.normalizer_ = LibrarySizeNormalizer(
            self.target_sum, log=self.log, empty_rows=self.empty_rows).fit(X)
        self.denoiser_ = clone(self.denoiser).fit(self.normalizer_._normalize(X))
        self.groups_ = self.denoiser_.groups_
        self.column_totals_ = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel()
        return self

    def transform(self, X):
        """Normalise X and denoise it (back to each row's counts with ``output='counts'``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative counts, with the features seen in ``fit``.

        Returns
        -------
        X_denoised : ndarray of shape (n_samples, n_features)
            The denoiser's output on the normalised X (``output='normalized'``), or
            that output mapped back to each row's total counts (``output='counts'``).
        """
        X = self._check_input(X)
        check_dense_size(*X.shape)
        denoised = to_dense(self.denoiser_.transform(self.normalizer_._normalize(X)))
        if self.output == "counts":
            denoised = self.normalizer_._inverse(denoised, row_sums(X))
        return as_output_dtype(denoised, X.dtype)

    def _check_input(self, X):
        """Validated X for transform, invariant_transform and the loss alike: the same
        refusals everywhere (negative values; an all-zero row unless
        ``empty_rows='zero'``, although the J-invariant prediction never divides by the
        row's own total)."""
        X = super()._check_input(X)
        check_non_negative(X, "NormalizedDenoiser (input X)")
        self.normalizer_._library_sizes(X)
        return X

    def _masked_library_size(self, X, group):
        """Library size from the columns outside ``group``, rescaled to the full library."""
        rest = complement(X.shape[1], group)
        total = self.column_totals_.sum()
        kept_share = self.column_totals_[rest].sum() / total if total > 0 else 1.0
        return row_sums(X[:, rest]) / max(kept_share, np.finfo(float).tiny)

    def _group_prediction_and_target(self, X, group):
        sizes = self._masked_library_size(X, group)
        Z = self.normalizer_._normalize(X, sizes)
        prediction = self.denoiser_._predict_group(Z, group)
        if self.output == "normalized":
            return prediction, Z[:, group]
        counts = self.normalizer_._inverse(prediction, sizes)
        return counts, X[:, group]

    def _predict_group(self, X, group):
        return self._group_prediction_and_target(X, group)[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags
