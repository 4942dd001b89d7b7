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

from numbers import Integral

from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.neighbors import NearestNeighbors

from ..utils._table_validation import (
    RANDOM_STATE_CONSTRAINT,
    IntervalNotBool,
    as_output_dtype,
    check_dense_size,
    check_table,
    complement,
    to_dense,
)
from ._column_masking import N_GROUPS_CONSTRAINT, ColumnInvariantMixin


def neighbour_average(graph, values):
    """Row i of the result is the mean of ``values`` over the neighbours of row i.

    ``graph`` is a kNN connectivity graph (CSR, ``k`` ones per row), as
    :meth:`~sklearn.neighbors.NearestNeighbors.kneighbors_graph` returns it.
    """
    k = graph.indptr[1] - graph.indptr[0]
    return to_dense(graph @ values) / k


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
        Column indices of each group (``n_groups`` disjoint sorted arrays covering
        every feature).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``. Defined only when X has feature names that
        are all strings.

    See Also
    --------
    LowRankDenoiser : low-rank denoising with the same column partition.

    References
    ----------
    .. [1] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.
    .. [2] Wagner, F., Yan, Y. & Yanai, I. (2017). K-nearest neighbor smoothing for
       high-throughput single-cell RNA-Seq data. bioRxiv 217737.

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

    _parameter_constraints: dict = {
        "n_neighbors": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_groups": N_GROUPS_CONSTRAINT,
        "metric": NearestNeighbors._parameter_constraints["metric"],
        "random_state": RANDOM_STATE_CONSTRAINT,
    }

    def __init__(self, n_neighbors=15, *, n_groups=10, metric="euclidean",
                 random_state=None):
        self.n_neighbors = n_neighbors
        self.n_groups = n_groups
        self.metric = metric
        self.random_state = random_state

    def _check_n_neighbors(self, n_samples):
        """The row itself is not its own neighbour: the rows smoothed must be more than k.

        After ``fit`` the neighbours are still searched among the rows of each call (the
        smoother is transductive), so a small batch, one row say, cannot be smoothed.
        """
        k = self.n_neighbors
        if k >= n_samples:
            rows = "1 row" if n_samples == 1 else f"{n_samples} rows"
            raise ValueError(
                f"KNNSmoother got {rows} (n_samples={n_samples}), but it needs more than "
                f"n_neighbors={k}: "
                "each row is averaged with its nearest *other* rows of the same call (the "
                "smoother is transductive, it keeps no training rows). Pass all the rows "
                f"to smooth together (at least {k + 1}), or lower n_neighbors."
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate X and draw the column partition (nothing else is learned).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (CSR or CSC when sparse); more than ``n_neighbors`` rows.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = check_table(self, X, reset=True)
        self._check_n_neighbors(X.shape[0])
        self._set_partition(X.shape[1])
        return self

    def _neighbours(self, X):
        """Connectivity graph of the ``n_neighbors`` nearest *other* rows of each row of X."""
        self._check_n_neighbors(X.shape[0])
        search = NearestNeighbors(n_neighbors=self.n_neighbors, metric=self.metric).fit(X)
        return search.kneighbors_graph()  # X=None: each row is left out of its neighbours

    def transform(self, X):
        """Mean of each row and its ``n_neighbors`` nearest other rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to smooth (more than ``n_neighbors``), with the features seen in
            ``fit``; neighbours are searched among them.

        Returns
        -------
        X_smoothed : ndarray of shape (n_samples, n_features)
            Row i is ``(X[i] + sum of its n_neighbors nearest other rows) /
            (n_neighbors + 1)``.
        """
        X = self._check_input(X)
        check_dense_size(*X.shape)
        neighbour_sum = to_dense(self._neighbours(X) @ X)
        return as_output_dtype((to_dense(X) + neighbour_sum) / (self.n_neighbors + 1), X.dtype)

    def _predict_group(self, X, group):
        rest = complement(X.shape[1], group)
        return neighbour_average(self._neighbours(X[:, rest]), X[:, group])
