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

Scaling to 100,000 cells and more
---------------------------------
Three options, each keeping the prediction of group J a function of the other columns
only (exactly, in floating point):

- ``n_components``: the distance is measured between per-group embeddings, the
  ``n_components`` leading principal components of *each column group on its own*
  (a PCA fitted on that group's columns). The squared distance then splits over
  groups, and the distance without group J is the sum over the other groups, computed
  from embeddings that never saw J's columns.
- ``algorithm='nndescent'``: approximate neighbours with ``pynndescent``
  (``pip install 'sklearn_n2s[knn]'``) instead of scikit-learn's exact search.
- ``search='shared'``: an index that saw group J's columns cannot give J's neighbours
  without them, so one index cannot serve every group; *two* can, and that is the
  fewest. The groups are split into two halves; one index is built on the columns of
  each half. For each group J, candidates (``3 * n_neighbors``) come from the index
  of the *other* half, and are re-ranked by the exact squared distance over every
  group but J (summed group by group, J's term left out rather than subtracted, so
  rounding cannot let ``x_J`` in). Two searches instead of ``n_groups``; the
  neighbours are the best of the candidates, so they may differ from the per-group
  search's exact ones. Needs the Euclidean metric (the only one that splits over
  groups).

Measured (``benchmarks/bench_knn.py``, ``benchmarks/results/knn.md``; 100,000 cells x
1,000 genes, 6 groups, 8 components per group, k=15, a loaded 2-core machine): the
per-group search with pynndescent took 262 s for the loss against 1,085 s exact, at the
same loss (ratio 0.9999, 96 % of the exact neighbours); the shared search took 391 s
exact, 431 s with pynndescent (its 46-neighbour candidate graphs cost more than six
16-neighbour ones), finding 55 % of the exact neighbours at a loss 0.28 % higher. So:
``algorithm='nndescent'`` with ``search='per_group'`` at scale; ``search='shared'``
saves searches only with the exact algorithm.

The self-supervised loss is computed from the neighbour lists block by block, so it
never holds a dense copy of the whole table.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import StrOptions

from ..utils._table_validation import (
    CHUNK_ENTRIES,
    RANDOM_STATE_CONSTRAINT,
    IntervalNotBool,
    as_output_dtype,
    check_dense_size,
    check_table,
    complement,
    row_chunks,
    to_dense,
)
from ._column_masking import N_GROUPS_CONSTRAINT, ColumnInvariantMixin

ALGORITHMS = ("exact", "nndescent")
SEARCHES = ("per_group", "shared")
# Candidates per row fetched from the other half's index, as a multiple of n_neighbors.
_CANDIDATE_FACTOR = 3


def neighbour_average(graph, values):
    """Row i of the result is the mean of ``values`` over the neighbours of row i.

    ``graph`` is a kNN connectivity graph (CSR, ``k`` ones per row), as
    :meth:`~sklearn.neighbors.NearestNeighbors.kneighbors_graph` returns it.
    """
    k = graph.indptr[1] - graph.indptr[0]
    return to_dense(graph @ values) / k


def connectivity(indices, n_samples):
    """CSR graph with a one at ``(i, indices[i, m])`` for every row i and m."""
    n_rows, k = indices.shape
    return sp.csr_matrix((np.ones(indices.size), indices.ravel(),
                          np.arange(0, n_rows * k + 1, k)), shape=(n_rows, n_samples))


def _pynndescent():
    try:
        import pynndescent
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "KNNSmoother(algorithm='nndescent') needs the optional dependency pynndescent: "
            "pip install 'sklearn_n2s[knn]'."
        ) from None
    return pynndescent


def _drop_self(indices):
    """``(n, k + 1)`` neighbour lists that may hold the row itself -> ``(n, k)`` without it.

    A row absent from its own list (a duplicate took its place) loses its last entry.
    """
    n, width = indices.shape
    is_self = indices == np.arange(n)[:, np.newaxis]
    is_self[~is_self.any(axis=1), width - 1] = True
    first = np.argmax(is_self, axis=1)  # one entry per row dropped, the first self
    drop = np.zeros_like(is_self)
    drop[np.arange(n), first] = True
    return indices[~drop].reshape(n, width - 1)


def nearest_other_rows(features, k, *, algorithm="exact", metric="euclidean",
                       random_state=None):
    """Indices ``(n_samples, k)`` of each row's k nearest *other* rows of ``features``."""
    if algorithm == "exact":
        search = NearestNeighbors(n_neighbors=k, metric=metric).fit(features)
        return search.kneighbors(return_distance=False)  # X=None: the row left out
    seed = random_state if isinstance(random_state, (Integral, type(None))) else \
        random_state.randint(2**31 - 1)
    index = _pynndescent().NNDescent(features, n_neighbors=k + 1, metric=metric,
                                     random_state=seed, n_jobs=1)
    indices = index.neighbor_graph[0]
    if np.any(indices < 0):  # pragma: no cover - pynndescent found too few neighbours
        raise ValueError("pynndescent found fewer neighbours than asked; use "
                         "algorithm='exact' or lower n_neighbors.")
    return _drop_self(indices)


class KNNSmoother(ColumnInvariantMixin, TransformerMixin, BaseEstimator):
    """Average each row with its nearest rows; J-invariant over column groups.

    Parameters
    ----------
    n_neighbors : int, default=15
        Number of other rows averaged (must be below the number of rows smoothed).
    n_groups : int, default=10
        Number of column groups of the J-invariant prediction.
    metric : str, default='euclidean'
        Distance between rows, see :class:`~sklearn.neighbors.NearestNeighbors` (or
        pynndescent's metrics with ``algorithm='nndescent'``). ``search='shared'`` and
        ``n_components`` need ``'euclidean'``.
    algorithm : {'exact', 'nndescent'}, default='exact'
        Exact neighbours (scikit-learn), or approximate ones from pynndescent's
        nearest-neighbour descent (optional dependency; its first call in a process
        spends about 30 s compiling).
    search : {'per_group', 'shared'}, default='per_group'
        ``'per_group'``: one neighbour search per column group, on the other columns
        (``n_groups`` searches). ``'shared'``: two indexes, each on half of the groups,
        reused by every group of the other half, candidates re-ranked without the
        group (see the module notes).
    n_components : int or None, default=None
        None: distances between the rows' columns. An int: between per-group
        embeddings, each group's columns reduced to their ``n_components`` leading
        principal components (fewer when the group has fewer columns), fitted on the
        rows of the call. Needed to reach 100,000 rows with thousands of columns.
    random_state : int, RandomState or None, default=None
        Seeds the assignment of columns to groups and pynndescent.

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
    .. [3] Dong, W., Moses, C. & Li, K. (2011). Efficient k-nearest neighbor graph
       construction for generic similarity measures. WWW 2011 (NN-descent).

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
    >>> shared = KNNSmoother(10, search="shared", n_components=5, random_state=0)
    >>> shared.fit(X).self_supervised_loss(X) < KNNSmoother(100).fit(X).self_supervised_loss(X)
    True
    """

    _row_independent = False

    _parameter_constraints: dict = {
        "n_neighbors": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_groups": N_GROUPS_CONSTRAINT,
        "metric": NearestNeighbors._parameter_constraints["metric"],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "search": [StrOptions(set(SEARCHES))],
        "n_components": [IntervalNotBool(Integral, 1, None, closed="left"), None],
        "random_state": RANDOM_STATE_CONSTRAINT,
    }

    def __init__(self, n_neighbors=15, *, n_groups=10, metric="euclidean",
                 algorithm="exact", search="per_group", n_components=None,
                 random_state=None):
        self.n_neighbors = n_neighbors
        self.n_groups = n_groups
        self.metric = metric
        self.algorithm = algorithm
        self.search = search
        self.n_components = n_components
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

    def _check_options(self):
        """Refuse option combinations before any search (they need a splitting metric)."""
        if self.metric != "euclidean" and (self.search == "shared"
                                           or self.n_components is not None):
            raise ValueError(
                f"KNNSmoother(metric={self.metric!r}) cannot be combined with "
                "search='shared' or n_components: both split the squared Euclidean "
                "distance over column groups; use metric='euclidean'."
            )
        if self.algorithm == "nndescent":
            _pynndescent()

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
        self._check_options()
        self._check_n_neighbors(X.shape[0])
        self._set_partition(X.shape[1])
        return self

    # ------------------------------------------------------------------ search space
    def _group_blocks(self, X, groups):
        """Per group, the block its distances are measured on: its columns, or their PCA.

        Each block is computed from that group's columns only: the J-invariance of the
        prediction of group J rests on this.
        """
        if sp.issparse(X):
            X = X.tocsc()  # cheap column slices
        blocks = []
        for group in groups:
            columns = X[:, group]
            if self.n_components is None:
                blocks.append(columns.tocsr() if sp.issparse(columns) else columns)
                continue
            n_keep = min(self.n_components, len(group), X.shape[0])
            pca = PCA(n_keep, svd_solver="covariance_eigh" if len(group) <= 2000 else "arpack",
                      random_state=0)
            blocks.append(pca.fit_transform(columns).astype(np.float32))
        return blocks

    def _stack(self, blocks):
        if any(sp.issparse(b) for b in blocks):
            return sp.hstack(blocks, format="csr")
        return np.hstack(blocks)

    def _nearest(self, features, k):
        return nearest_other_rows(features, k, algorithm=self.algorithm, metric=self.metric,
                                  random_state=self.random_state)

    def _neighbours(self, X):
        """Connectivity graph of the ``n_neighbors`` nearest *other* rows of each row of X."""
        self._check_n_neighbors(X.shape[0])
        if self.n_components is None:
            features = X
        else:
            features = self._stack(self._group_blocks(X, self._partition(X)))
        return connectivity(self._nearest(features, self.n_neighbors), X.shape[0])

    def _partition(self, X):
        return getattr(self, "groups_", None) or [np.arange(X.shape[1])]

    def group_neighbours(self, X):
        """Neighbour lists for the J-invariant prediction of every column group.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to smooth, with the features seen in ``fit``.

        Returns
        -------
        neighbours : list of ndarray of shape (n_samples, n_neighbors)
            ``neighbours[g][i]``: the rows averaged to predict row i on ``groups_[g]``,
            found without the columns of ``groups_[g]`` (and never i itself).
        """
        X = self._check_input(X)
        return self._group_neighbour_lists(X)

    def _group_neighbour_lists(self, X, only=None):
        """Neighbour lists of every group (or of group ``only``, the others left None)."""
        self._check_options()
        self._check_n_neighbors(X.shape[0])
        blocks = self._group_blocks(X, self.groups_)
        n_groups = len(self.groups_)
        wanted = range(n_groups) if only is None else [only]
        lists = [None] * n_groups
        if self.search == "per_group":
            for g in wanted:
                rest = [blocks[h] for h in range(n_groups) if h != g]
                lists[g] = self._nearest(self._stack(rest), self.n_neighbors)
            return lists
        half = n_groups // 2
        halves = [list(range(half)), list(range(half, n_groups))]
        n_candidates = min(X.shape[0] - 1, _CANDIDATE_FACTOR * self.n_neighbors)
        for own, other in (halves, halves[::-1]):
            own = [g for g in own if g in wanted]
            if not own:
                continue
            # the index of the other half never saw the columns of the groups it serves
            candidates = self._nearest(self._stack([blocks[h] for h in other]), n_candidates)
            for g, indices in zip(own, self._rerank(blocks, candidates, own)):
                lists[g] = indices
        return lists

    def _rerank(self, blocks, candidates, own):
        """For each group g of ``own``: the n_neighbors candidates nearest without g."""
        n, n_candidates = candidates.shape
        width = sum(b.shape[1] for b in blocks)
        step = max(1, CHUNK_ENTRIES // max(n_candidates * width, 1))
        out = {g: np.empty((n, self.n_neighbors), dtype=np.intp) for g in own}
        for start in range(0, n, step):
            rows = np.arange(start, min(start + step, n))
            cand = candidates[rows]
            # per_group[h]: squared distance over group h, for every (row, candidate)
            per_group = [_pair_sq_distances(b, rows, cand) for b in blocks]
            # sums of the groups before / after g: J's own term is never added in
            before = [np.zeros_like(per_group[0])]
            for term in per_group[:-1]:
                before.append(before[-1] + term)
            after = [np.zeros_like(per_group[0])]
            for term in per_group[:0:-1]:
                after.append(after[-1] + term)
            after = after[::-1]
            for g in own:
                distance = before[g] + after[g]
                order = np.argsort(distance, axis=1, kind="stable")[:, :self.n_neighbors]
                out[g][rows] = np.take_along_axis(cand, order, axis=1)
        return [out[g] for g in own]

    # ------------------------------------------------------------------ outputs
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
        self._check_options()
        neighbour_sum = to_dense(self._neighbours(X) @ X)
        return as_output_dtype((to_dense(X) + neighbour_sum) / (self.n_neighbors + 1), X.dtype)

    def _predict_group(self, X, group):
        """Prediction of one group (used by wrappers such as NormalizedDenoiser)."""
        self._check_options()
        self._check_n_neighbors(X.shape[0])
        known = [g for g, cols in enumerate(self.groups_) if np.array_equal(cols, group)]
        if self.search == "per_group" and self.n_components is None or not known:
            rest = complement(X.shape[1], group)
            indices = self._nearest(X[:, rest], self.n_neighbors)
        else:
            indices = self._group_neighbour_lists(X, only=known[0])[known[0]]
        return neighbour_average(connectivity(indices, X.shape[0]), X[:, group])

    def _invariant_blocks(self, X):
        """Neighbours searched once on all rows, then the averages block by block."""
        if sp.issparse(X):
            X = X.tocsr()
        lists = self._group_neighbour_lists(X)
        graphs = [connectivity(indices, X.shape[0]) for indices in lists]
        columns = [X[:, group] for group in self.groups_]
        for rows in row_chunks(X.shape[0], X.shape[1]):
            n_rows = rows.stop - rows.start
            prediction = np.empty((n_rows, X.shape[1]), dtype=np.float64)
            for group, graph, values in zip(self.groups_, graphs, columns):
                prediction[:, group] = neighbour_average(graph[rows], values)
            yield rows, prediction, to_dense(X[rows])


def _pair_sq_distances(block, rows, candidates):
    """``||block[i] - block[c]||^2`` for every row i of ``rows`` and its candidates c."""
    n_rows, n_candidates = candidates.shape
    own = block[rows]
    other = block[candidates.ravel()]
    if sp.issparse(block):
        own, other = own.toarray(), other.toarray()
    own = np.asarray(own, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64).reshape(n_rows, n_candidates, -1)
    diff = other - own[:, np.newaxis, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def knn_path_losses(smoother, X, n_neighbors):
    """Self-supervised loss (MSE) of every k in ``n_neighbors`` from one search.

    The neighbour lists of each group are searched once, at the largest k, by
    ``smoother`` (fitted, its ``n_neighbors`` at least the largest k); each smaller k
    keeps the first k of every list (they are sorted by distance). With
    ``search='shared'`` the candidates were gathered for the largest k, so a smaller k
    may see better neighbours than its own search would (never worse).

    Parameters
    ----------
    smoother : KNNSmoother
        Fitted; its ``groups_`` and search options are used.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The rows to smooth, with the features seen in ``fit``.
    n_neighbors : sequence of int
        The k to score, each at most ``smoother.n_neighbors``.

    Returns
    -------
    losses : ndarray of shape (len(n_neighbors),)
        Mean squared error of each k's J-invariant prediction against X, as
        :meth:`KNNSmoother.self_supervised_loss` computes it.
    """
    X = smoother._check_input(X)
    ks = [int(k) for k in n_neighbors]
    if max(ks) > smoother.n_neighbors:
        raise ValueError(f"n_neighbors={max(ks)} is more than the smoother's "
                         f"n_neighbors={smoother.n_neighbors}, the search's size.")
    if sp.issparse(X):
        X = X.tocsr()
    lists = smoother._group_neighbour_lists(X)
    columns = [X[:, group] for group in smoother.groups_]
    totals = np.zeros(len(ks))
    for rows in row_chunks(X.shape[0], X.shape[1]):
        block = to_dense(X[rows])
        for group, indices, values in zip(smoother.groups_, lists, columns):
            target = block[:, group]
            for i, k in enumerate(ks):
                graph = connectivity(indices[rows, :k], X.shape[0])
                diff = neighbour_average(graph, values) - target
                totals[i] += float(np.sum(diff * diff / (X.shape[0] * X.shape[1])))
    return totals
