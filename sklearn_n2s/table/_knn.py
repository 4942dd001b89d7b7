"""k-nearest-neighbour smoothing of the rows of a table, J-invariant by construction.

``transform`` replaces each row by the mean of itself and its ``n_neighbors`` nearest
other rows (kNN smoothing of single-cell profiles, Wagner et al. 2017). The J-invariant
prediction of a column group J averages, for each row, the J columns of its nearest
other rows, the neighbours being found with the *other* columns only: the row's own
values in J are used neither to find the neighbours nor in the average.

The smoother is transductive: neighbours are searched among the rows given to
``transform`` / ``invariant_transform`` (the row itself excluded), and ``fit`` learns
nothing but the column partition. Calibrate it on the data to be smoothed, with
``cv=FullSplit()``; a row split would search neighbours in a smaller set of rows.
"""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.neighbors import NearestNeighbors

from ..utils._table_validation import check_dense_size, check_table, complement, to_dense
from ._column_masking import ColumnInvariantMixin


def neighbour_average(indices, values):
    """Row i of the result is the mean of ``values`` over the rows ``indices[i]``."""
    n_rows, k = indices.shape
    weights = sp.csr_matrix(
        (np.full(n_rows * k, 1.0 / k), indices.ravel(), np.arange(0, n_rows * k + 1, k)),
        shape=(n_rows, values.shape[0]),
    )
    return to_dense(weights @ values)


class KNNSmoother(ColumnInvariantMixin, TransformerMixin, BaseEstimator):
    """Average each row with its nearest rows; J-invariant over column groups.

    Parameters
    ----------
    n_neighbors : int, default=15
        Number of other rows averaged (must be below the number of rows smoothed).
    n_groups : int, default=10
        Number of column groups of the J-invariant prediction.
    metric : str, default='euclidean'
        Distance between rows, see :class:`~sklearn.neighbors.NearestNeighbors`.
    random_state : int, RandomState or None, default=None
        Seeds the assignment of columns to groups.

    Attributes
    ----------
    groups_ : list of ndarray
        Column indices of each group.
    n_features_in_ : int

    See Also
    --------
    LowRankDenoiser : low-rank denoising with the same column partition.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit, SelfSupervisedScorer
    >>> from sklearn_n2s.table import KNNSmoother
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(scale=3.0, size=(4, 20))
    >>> X = np.repeat(centres, 50, axis=0) + rng.normal(size=(200, 20))
    >>> search = GridSearchCV(KNNSmoother(random_state=0), {"n_neighbors": [1, 10, 100]},
    ...                       scoring=SelfSupervisedScorer(), cv=FullSplit())
    >>> search.fit(X).best_params_
    {'n_neighbors': 10}
    """

    _row_independent = False

    def __init__(self, n_neighbors=15, *, n_groups=10, metric="euclidean",
                 random_state=None):
        self.n_neighbors = n_neighbors
        self.n_groups = n_groups
        self.metric = metric
        self.random_state = random_state

    def _check_n_neighbors(self, n_samples):
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"n_neighbors must be an integer, got {k!r}.")
        if k < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {k}.")
        if k >= n_samples:
            raise ValueError(
                f"n_neighbors={k} must be less than n_samples={n_samples}: the row itself "
                "is excluded from its neighbours."
            )

    def fit(self, X, y=None):
        """Validate X and draw the column partition (nothing else is learned).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        X = check_table(self, X, reset=True)
        self._check_n_neighbors(X.shape[0])
        self._set_partition(X.shape[1])
        return self

    def _neighbours(self, X):
        """Indices of the ``n_neighbors`` nearest other rows of every row of X."""
        self._check_n_neighbors(X.shape[0])
        search = NearestNeighbors(n_neighbors=self.n_neighbors, metric=self.metric).fit(X)
        return search.kneighbors(return_distance=False)  # X=None: each row excluded

    def transform(self, X):
        """Mean of each row and its ``n_neighbors`` nearest other rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        X_smoothed : ndarray of shape (n_samples, n_features)
        """
        X = self._check_input(X)
        check_dense_size(*X.shape)
        others = neighbour_average(self._neighbours(X), X)
        k = self.n_neighbors
        return (to_dense(X) + k * others) / (k + 1)

    def _predict_group(self, X, group):
        rest = complement(X.shape[1], group)
        return neighbour_average(self._neighbours(X[:, rest]), X[:, group])
