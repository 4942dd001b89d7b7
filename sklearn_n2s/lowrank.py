"""Low-rank (PCA) denoising of tables, with an exact J-invariant prediction.

``transform`` is the rank-k PCA reconstruction ``mean + (X - mean) V V^T``.
The J-invariant prediction of a column group J estimates each row's latent scores
from the *other* columns only, by least squares on the fitted loadings,

    z = argmin_z || (x - mean)_{-J} - V_{-J} z ||^2 = (V_{-J}^T V_{-J})^+ V_{-J}^T (x - mean)_{-J},

and predicts ``mean_J + V_J z``. The loadings of group J enter as exact zeros in the
projection (``V`` with the rows of J set to 0), so the prediction does not depend on
``x_J`` even in floating point. Under :class:`~sklearn.model_selection.GridSearchCV`
the loadings are learned on the training rows and the loss is measured on held-out rows.

Sparse input is centred implicitly: the randomized SVD multiplies ``X - 1 mean^T`` by
dense blocks as ``X @ Q - 1 (mean @ Q)``, never forming the dense centred matrix.
"""

import numbers

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state

from ._table_validation import (
    check_dense_size,
    check_table,
    column_means,
    row_chunks,
    to_dense,
)
from ._validation import check_option
from .column_masking import ColumnInvariantMixin

SOLVERS = ("auto", "full", "randomized")
# 'auto' takes the exact SVD for dense data up to this many rows or columns.
_FULL_SVD_MAX_SIDE = 1000


def _flip_signs(components):
    """Make the largest-magnitude loading of each component positive (deterministic)."""
    largest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(len(components)), largest])
    signs[signs == 0] = 1.0
    return components * signs[:, np.newaxis]


def _qr_basis(A):
    return scipy.linalg.qr(A, mode="economic", check_finite=False)[0]


def randomized_centred_svd(X, mean, n_components, *, n_oversamples=10, n_iter=4,
                           random_state=None):
    """Top singular values and right vectors of ``X - mean`` without centring X.

    Halko et al. (2011), algorithm 4.4 (subspace iteration with a QR at every step).
    X may be dense or sparse; only products with dense blocks are formed.

    Returns
    -------
    singular_values : ndarray of shape (n_components,)
    components : ndarray of shape (n_components, n_features)
    """
    n_samples, n_features = X.shape
    size = min(n_components + n_oversamples, n_samples, n_features)

    def times(Q):  # (X - 1 mean^T) @ Q
        return np.asarray(X @ Q) - mean @ Q

    def transposed_times(Y):  # (X - 1 mean^T)^T @ Y
        return np.asarray(X.T @ Y) - np.outer(mean, Y.sum(axis=0))

    rng = check_random_state(random_state)
    Q = _qr_basis(times(rng.standard_normal((n_features, size))))
    for _ in range(n_iter):
        Q = _qr_basis(times(_qr_basis(transposed_times(Q))))
    _, s, Vt = scipy.linalg.svd(transposed_times(Q).T, full_matrices=False,
                                check_finite=False)
    return s[:n_components], Vt[:n_components]


def full_centred_svd(X, mean, n_components):
    """Same as :func:`randomized_centred_svd`, exactly, through a dense SVD."""
    centred = to_dense(X) - mean
    _, s, Vt = scipy.linalg.svd(centred, full_matrices=False, check_finite=False)
    return s[:n_components], Vt[:n_components]


class LowRankDenoiser(ColumnInvariantMixin, TransformerMixin, BaseEstimator):
    """PCA denoising of a table, dense or sparse, exactly J-invariant over column groups.

    ``transform`` returns the rank-``n_components`` reconstruction. The J-invariant
    prediction used for calibration predicts every column group from the other columns
    only (see the module notes), so :class:`~sklearn_n2s.SelfSupervisedScorer` under
    :class:`~sklearn.model_selection.GridSearchCV` (with an ordinary row split: the
    loadings are learned on training rows) chooses the rank with no clean data.

    Parameters
    ----------
    n_components : int, default=10
        Rank of the reconstruction.
    n_groups : int, default=10
        Number of column groups of the J-invariant prediction (2 to n_features). More
        groups leave more columns to estimate the scores from, at proportional cost.
    svd_solver : {'auto', 'full', 'randomized'}, default='auto'
        ``'full'``: exact SVD of the dense centred matrix (a sparse input is densified,
        within the documented limit). ``'randomized'``: randomized subspace iteration,
        implicitly centred, for sparse or large data. ``'auto'``: ``'full'`` for dense
        data with at most 1000 rows or columns, else ``'randomized'``.
    n_iter : int, default=4
        Power iterations of the randomized solver.
    n_oversamples : int, default=10
        Extra random directions of the randomized solver.
    random_state : int, RandomState or None, default=None
        Seeds the randomized solver and the assignment of columns to groups.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Column means of the training data.
    components_ : ndarray of shape (n_components, n_features)
        Loadings (right singular vectors of the centred data), signs fixed so that each
        one's largest entry is positive.
    singular_values_ : ndarray of shape (n_components,)
    explained_variance_ : ndarray of shape (n_components,)
    groups_ : list of ndarray
        Column indices of each group.
    n_features_in_ : int

    See Also
    --------
    ColumnMaskingDenoiser : the same for any scikit-learn transformer, by masking.
    sklearn_n2s.mcv.MolecularCrossValidationScorer : the alternative for raw counts.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import SelfSupervisedScorer
    >>> from sklearn_n2s.lowrank import LowRankDenoiser
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 40))
    >>> X = clean + rng.normal(scale=0.5, size=clean.shape)
    >>> search = GridSearchCV(LowRankDenoiser(random_state=0),
    ...                       {"n_components": [1, 2, 4, 8, 16]},
    ...                       scoring=SelfSupervisedScorer(), cv=3)
    >>> search.fit(X).best_params_
    {'n_components': 4}
    """

    def __init__(self, n_components=10, *, n_groups=10, svd_solver="auto", n_iter=4,
                 n_oversamples=10, random_state=None):
        self.n_components = n_components
        self.n_groups = n_groups
        self.svd_solver = svd_solver
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.random_state = random_state

    def _check_params(self, n_samples, n_features):
        check_option(self.svd_solver, "svd_solver", SOLVERS)
        for name in ("n_components", "n_iter", "n_oversamples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer, got {value!r}.")
            if value < (1 if name == "n_components" else 0):
                raise ValueError(f"{name} must be >= {1 if name == 'n_components' else 0}, "
                                 f"got {value}.")
        if self.n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components={self.n_components} must be <= min(n_samples, n_features)"
                f" = {min(n_samples, n_features)}."
            )

    def _solver(self, X):
        if self.svd_solver != "auto":
            return self.svd_solver
        small = min(X.shape) <= _FULL_SVD_MAX_SIDE
        return "full" if small and not sp.issparse(X) else "randomized"

    def fit(self, X, y=None):
        """Learn the column means and the loadings, and draw the column partition.

        Parameters
        ----------
        X : {array-like, sparse matrix (CSR or CSC)} of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        X = check_table(self, X, reset=True)
        self._check_params(*X.shape)
        self._set_partition(X.shape[1])
        self.mean_ = column_means(X)
        if self._solver(X) == "full":
            check_dense_size(*X.shape, "the dense copy for svd_solver='full'")
            s, Vt = full_centred_svd(X, self.mean_, self.n_components)
        else:
            s, Vt = randomized_centred_svd(
                X, self.mean_, self.n_components, n_oversamples=self.n_oversamples,
                n_iter=self.n_iter, random_state=self.random_state,
            )
        self.components_ = _flip_signs(Vt)
        self.singular_values_ = s
        self.explained_variance_ = s**2 / max(X.shape[0] - 1, 1)
        return self

    def transform(self, X):
        """Rank-``n_components`` reconstruction ``mean + (X - mean) V V^T``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        X_denoised : ndarray of shape (n_samples, n_features)
        """
        X = self._check_input(X)
        check_dense_size(*X.shape)
        if sp.issparse(X):
            X = X.tocsr()
        V = self.components_.T
        offset = self.mean_ @ V
        out = np.empty(X.shape, dtype=np.float64)
        for rows in row_chunks(*X.shape):
            scores = np.asarray(X[rows] @ V) - offset
            out[rows] = self.mean_ + scores @ self.components_
        return out

    def _predict_group(self, X, group):
        # Loadings of the other columns; the rows of J are exact zeros, so x_J is
        # multiplied by 0 and cannot move the scores.
        V_rest = self.components_.T.copy()
        V_rest[group] = 0.0
        scores = np.asarray(X @ V_rest) - self.mean_ @ V_rest
        coef = scipy.linalg.pinvh(V_rest.T @ V_rest)
        return self.mean_[group] + (scores @ coef) @ self.components_[:, group]
