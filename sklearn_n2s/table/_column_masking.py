"""J-invariance for tables: partition the columns, predict every group from the others.

For a table (cells x genes, say) the partition J is over columns: the features are split
into ``n_groups`` groups with :func:`sklearn_n2s.masking.column_groups`, and the
J-invariant prediction of a group's columns looks at the other columns only. With noise
independent across features (Poisson sampling of molecules, for instance) the
self-supervised loss of that prediction ranks denoisers and their hyperparameters as
the loss against the clean data would.

This module holds the part every table estimator shares (:class:`ColumnInvariantMixin`:
``invariant_transform``, ``self_supervised_loss`` and ``score``, computed on blocks of
rows so a large sparse matrix is never densified at once) and
:class:`ColumnMaskingDenoiser`, which makes any scikit-learn transformer J-invariant by
masking one column group at a time.

Under :class:`~sklearn.model_selection.GridSearchCV` a learning estimator is fitted on
the training rows and its loss is measured on the held-out rows; the invariance is with
respect to the values of the row being predicted, not the fitted state.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..base import SelfSupervisedScoreMixin
from ..masking import column_groups
from ..utils._losses import get_loss
from ..utils._table_validation import (
    RANDOM_STATE_CONSTRAINT,
    IntervalNotBool,
    as_output_dtype,
    check_dense_size,
    check_table,
    column_means,
    row_chunks,
    to_dense,
)

FILLS = ("mean", "zero")
#: The constraint on ``n_groups`` every column-partition estimator shares; whether it is
#: at most ``n_features`` depends on the data and is checked in ``fit``.
N_GROUPS_CONSTRAINT = [IntervalNotBool(Integral, 2, None, closed="left")]
# Poisson predictions are clipped here: log(0) is undefined and a zero rate for an
# observed count is an infinite loss.
POISSON_FLOOR = 1e-6


def elementwise_loss(name, prediction, target):
    """Per-entry loss ``'mse'``, ``'mae'`` or ``'poisson'`` (deviance), as an array."""
    diff = prediction - target
    if name == "mse":
        return diff * diff
    if name == "mae":
        return np.abs(diff)
    rate = np.maximum(prediction, POISSON_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(target > 0, np.log(np.where(target > 0, target, 1) / rate), 0.0)
    return 2.0 * (target * log_ratio - (target - rate))


ELEMENTWISE_LOSSES = ("mse", "mae", "poisson")


def check_finite_loss(loss):
    """``loss``, or a ValueError when it overflowed (a last guard: the input range of
    :func:`~sklearn_n2s.utils._table_validation.check_table` normally prevents it)."""
    if not np.all(np.isfinite(loss)):
        raise ValueError(
            "the loss is not finite: the data's values or the predictions are too large "
            "for float64 (squared errors beyond 1.8e308); rescale the data first."
        )
    return loss


class ColumnInvariantMixin(SelfSupervisedScoreMixin):
    """``invariant_transform``, ``self_supervised_loss`` and ``score`` for tables.

    A subclass sets ``groups_`` in ``fit`` (with :meth:`_set_partition`) and implements
    ``_predict_group(X, group)``: the prediction of the columns ``group`` of a block of
    rows X (dense or CSR) from the other columns of X only, as a dense array.
    Estimators whose prediction for a row depends on other rows (a kNN smoother) set
    ``_row_independent = False`` and are given all rows in one block.
    """

    _row_independent = True

    def _set_partition(self, n_features):
        # column_groups raises if n_groups is more than n_features.
        self.groups_ = column_groups(n_features, self.n_groups, shuffle=True,
                                     random_state=self.random_state)

    def _check_input(self, X):
        check_is_fitted(self)
        return check_table(self, X, reset=False)

    def _group_prediction_and_target(self, X, group):
        """Invariant prediction of the columns ``group`` of X, and what it is scored against.

        The target is X's own columns; an estimator that predicts in another space (a
        normalised one) returns its target in that space.
        """
        return self._predict_group(X, group), X[:, group]

    def _invariant_blocks(self, X):
        """Yield ``(rows, prediction, target)``, dense, for blocks of rows covering X."""
        if sp.issparse(X):
            X = X.tocsr()  # cheap row slices
        if self._row_independent:
            blocks = row_chunks(X.shape[0], X.shape[1])
        else:
            check_dense_size(*X.shape, "the invariant prediction")
            blocks = [slice(0, X.shape[0])]
        for rows in blocks:
            block = X[rows]
            prediction = np.empty(block.shape, dtype=np.float64)
            target = np.empty(block.shape, dtype=np.float64)
            for group in self.groups_:
                group_prediction, group_target = self._group_prediction_and_target(block, group)
                prediction[:, group] = group_prediction
                target[:, group] = to_dense(group_target)
            yield rows, prediction, target

    def invariant_transform(self, X):
        """J-invariant prediction of X: columns of group J are predicted without them.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The table to predict, with the features seen in ``fit``.

        Returns
        -------
        X_invariant : ndarray of shape (n_samples, n_features)
            Entry ``(i, j)`` is predicted from row i's values outside the column group
            of j (and the fitted state), never from ``X[i, j]`` itself.
        """
        X = self._check_input(X)
        check_dense_size(*X.shape, "the invariant prediction")
        out = np.empty(X.shape, dtype=X.dtype)
        for rows, prediction, _ in self._invariant_blocks(X):
            out[rows] = as_output_dtype(prediction, X.dtype)
        return out

    def self_supervised_loss(self, X, loss="mse"):
        """Loss of the J-invariant prediction of X against X (lower is better).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The table to score, with the features seen in ``fit``.
        loss : {'mse', 'mae', 'poisson'} or callable, default='mse'
            The named losses are averaged block by block, so the whole prediction is
            never held in memory; ``'poisson'`` is the mean Poisson deviance (for count
            data, with the prediction clipped at 1e-6). A callable
            ``loss(prediction, target)`` gets the whole dense arrays.

        Returns
        -------
        loss : float
            The mean loss over all entries of X.
        """
        X = self._check_input(X)
        if not (isinstance(loss, str) and loss in ELEMENTWISE_LOSSES):
            loss_fn = get_loss(loss)
            check_dense_size(*X.shape, "the invariant prediction")
            pairs = list(self._invariant_blocks(X))
            return check_finite_loss(loss_fn(np.concatenate([p for _, p, _ in pairs]),
                                             np.concatenate([t for _, _, t in pairs])))
        total, n_entries = 0.0, X.shape[0] * X.shape[1]
        for _, prediction, target in self._invariant_blocks(X):
            # Divided before summing: a sum of large squared errors could overflow first.
            total += float(np.sum(elementwise_loss(loss, prediction, target) / n_entries))
        return check_finite_loss(total)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = False
        tags.requires_fit = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _as_full_width(output, transformer, n_features):
    """The transformer's output in the input's feature space (inverse_transform if needed)."""
    if output.shape[1] != n_features:
        if not hasattr(transformer, "inverse_transform"):
            raise ValueError(
                f"{type(transformer).__name__} maps {n_features} features to "
                f"{output.shape[1]} and has no inverse_transform: a denoiser must return "
                "the input's features (or be invertible, like PCA)."
            )
        output = transformer.inverse_transform(output)
    return to_dense(output)


class ColumnMaskingDenoiser(ColumnInvariantMixin, TransformerMixin, BaseEstimator):
    """Any scikit-learn transformer made J-invariant over column groups by masking.

    ``transform`` is the wrapped transformer's output in the input's feature space
    (through ``inverse_transform`` when it reduces dimension, as PCA or TruncatedSVD
    do). The J-invariant prediction replaces the columns of one group by a *fill* that
    does not look at them, runs the transformer, keeps the output on that group, and
    repeats for every group: ``n_groups`` transformer calls.

    Parameters
    ----------
    transformer : estimator
        A scikit-learn transformer that denoises: ``transform`` (and
        ``inverse_transform`` when it changes the number of features). Cloned in fit.
    n_groups : int, default=10
        Number of column groups of the partition (between 2 and n_features).
    fill : {'mean', 'zero'}, default='mean'
        Value given to masked columns: the column mean over the rows seen in ``fit``, or
        0 (which keeps sparse input sparse).
    random_state : int, RandomState or None, default=None
        Seeds the random assignment of columns to groups.

    Attributes
    ----------
    transformer_ : estimator
        The fitted clone of ``transformer``.
    fill_values_ : ndarray of shape (n_features,)
        Values given to masked columns.
    groups_ : list of ndarray
        Column indices of each group (``n_groups`` disjoint sorted arrays covering
        every feature).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``. Defined only when X has feature names that
        are all strings.

    See Also
    --------
    LowRankDenoiser : an exact, closed-form J-invariant PCA denoiser.

    References
    ----------
    .. [1] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import SelfSupervisedScorer
    >>> from sklearn_n2s.table import ColumnMaskingDenoiser
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 30))
    >>> X = clean + rng.normal(scale=0.5, size=clean.shape)
    >>> search = GridSearchCV(ColumnMaskingDenoiser(PCA(), random_state=0),
    ...                       {"transformer__n_components": [1, 3, 10]},
    ...                       scoring=SelfSupervisedScorer(), cv=3)
    >>> search.fit(X).best_params_
    {'transformer__n_components': 3}
    """

    _parameter_constraints: dict = {
        "transformer": [HasMethods(["fit", "transform"])],
        "n_groups": N_GROUPS_CONSTRAINT,
        "fill": [StrOptions(set(FILLS))],
        "random_state": RANDOM_STATE_CONSTRAINT,
    }

    def __init__(self, transformer, *, n_groups=10, fill="mean", random_state=None):
        self.transformer = transformer
        self.n_groups = n_groups
        self.fill = fill
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)  # transformer: validated in its fit
    def fit(self, X, y=None):
        """Fit the transformer on X and draw the column partition.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (CSR or CSC when sparse).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = check_table(self, X, reset=True)
        self._set_partition(X.shape[1])
        self.transformer_ = clone(self.transformer).fit(X)
        if self.fill == "mean":
            self.fill_values_ = column_means(X)
        else:
            self.fill_values_ = np.zeros(X.shape[1])
        return self

    def _denoise(self, X):
        return _as_full_width(self.transformer_.transform(X), self.transformer_,
                              self.n_features_in_)

    def _mask_columns(self, X, group):
        """X with the columns ``group`` replaced by their fill values (a new array)."""
        if sp.issparse(X) and self.fill == "zero":
            keep = np.ones(X.shape[1], dtype=X.dtype)
            keep[group] = 0.0
            return (X @ sp.diags(keep)).tocsr()
        # In X's dtype: the transformer sees float32 data as in fit and transform.
        masked = X.toarray() if sp.issparse(X) else np.array(X, dtype=X.dtype)
        masked[:, group] = self.fill_values_[group]
        return masked

    def _predict_group(self, X, group):
        return self._denoise(self._mask_columns(X, group))[:, group]

    def transform(self, X):
        """The wrapped transformer's denoised output, in the input's feature space.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The table to denoise, with the features seen in ``fit``.

        Returns
        -------
        X_denoised : ndarray of shape (n_samples, n_features)
            ``transformer_.transform(X)``, mapped back with ``inverse_transform`` when
            the transformer reduces the number of features.
        """
        X = self._check_input(X)
        check_dense_size(*X.shape)
        return as_output_dtype(self._denoise(X), X.dtype)
