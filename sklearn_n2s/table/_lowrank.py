"""Low-rank (PCA) denoising of tables, with an exact J-invariant prediction.

``transform`` is the rank-k PCA reconstruction ``mean + (X - mean) V V^T``.
The J-invariant prediction of a column group J estimates each row's latent scores
from the *other* columns only, by least squares on the fitted loadings,

    z = argmin_z || (x - mean)_{-J} - V_{-J} z ||^2 = (V_{-J}^T V_{-J})^+ V_{-J}^T (x - mean)_{-J},

and predicts ``mean_J + V_J z``. The loadings of group J enter as exact zeros in the
projection (``V`` with the rows of J set to 0), so the prediction does not depend on
``x_J`` even in floating point. Under :class:`~sklearn.model_selection.GridSearchCV`
the loadings are learned on the training rows and the loss is measured on held-out rows.
:class:`LowRankDenoiserCV` does the same search along a path of ranks: one decomposition
per fold at the largest rank, every smaller rank read off it (see :class:`GroupProjection`).

Sparse input is centred implicitly: the randomized SVD multiplies ``X - 1 mean^T`` by
dense blocks as ``X @ Q - 1 (mean @ Q)``, never forming the dense centred matrix.

At scale (a million cells), every pass over the data walks it in blocks of rows
(:mod:`._gram`): the rows of a cross-validation fold are read in place, never copied,
a float32 matrix is cast to float64 one block at a time, ``n_jobs`` threads share the
blocks, and the held-out loss of every rank and column group comes from one pass (the
squared error from small sums, see :mod:`._gram`). A ``dask.array`` of row chunks is
read the same way, one chunk at a time (:mod:`._lowrank_dask`).

Passes over the data of ``LowRankDenoiserCV.fit`` with ``n_iter=4``, 3 folds and the
squared error: per fold one for the mean, ten for the randomized SVD (over the training
rows) and one to score the held-out rows; then eleven for the refit on all rows. Each
randomized-SVD pass multiplies by ``max(ranks) + n_oversamples`` columns, the refit's by
``n_components_ + n_oversamples``.
"""

from numbers import Integral

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.stats
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.extmath import svd_flip
from sklearn.utils.validation import check_is_fitted

from ..masking import check_n_groups
from ..utils._table_validation import (
    RANDOM_STATE_CONSTRAINT,
    IntervalNotBool,
    as_output_dtype,
    check_dense_size,
    check_table,
    row_chunks,
    to_dense,
)
from ..utils._validation import check_option
from ._column_masking import (
    ELEMENTWISE_LOSSES,
    N_GROUPS_CONSTRAINT,
    ColumnInvariantMixin,
)
from ._diffusion import top_eigenvectors
from ._gram import (
    centred_times,
    centred_transposed_times,
    column_means_of_rows,
    held_out_losses,
)
from ._lowrank_dask import check_dask_table, dask_transform, is_dask_array

SOLVERS = ("auto", "full", "randomized")
# 'auto' takes the exact SVD for dense data up to this many rows or columns.
_FULL_SVD_MAX_SIDE = 1000
#: ``n_jobs`` as joblib reads it: None, or a nonzero int (-1: all processors).
N_JOBS_CONSTRAINT = [None, IntervalNotBool(Integral, 1, None, closed="left"),
                     IntervalNotBool(Integral, None, -1, closed="right")]


def check_rank(n_components, n_samples, n_features, name="n_components"):
    """Raise unless the rank ``n_components`` (an int >= 1) fits the data's shape."""
    if n_components > min(n_samples, n_features):
        raise ValueError(
            f"{name}={n_components} must be <= min(n_samples, n_features)"
            f" = {min(n_samples, n_features)}."
        )


def _qr_basis(A):
    # A is a temporary of ours: LAPACK may overwrite it (one tall copy fewer).
    return scipy.linalg.qr(A, mode="economic", overwrite_a=True, check_finite=False)[0]


def randomized_centred_svd(X, mean, n_components, *, n_oversamples=10, n_iter=4,
                           random_state=None, rows=None, n_jobs=1):
    """Top singular values and right vectors of ``X[rows] - mean`` without centring X.

    Halko et al. (2011), algorithm 4.4 (subspace iteration with a QR at every step).
    X may be dense, CSR or a dask array of row chunks; only products with dense blocks
    are formed, block by block over the rows ``rows`` (sorted; all rows when None), so
    neither the selected rows nor a float64 copy of float32 data are ever held whole.

    Returns
    -------
    singular_values : ndarray of shape (n_components,)
    components : ndarray of shape (n_components, n_features)
    """
    n_samples = X.shape[0] if rows is None else len(rows)
    n_features = X.shape[1]
    size = min(n_components + n_oversamples, n_samples, n_features)

    def times(Q):  # (X - 1 mean^T) @ Q
        return centred_times(X, mean, Q, rows, n_jobs)

    def transposed_times(Y):  # (X - 1 mean^T)^T @ Y
        return centred_transposed_times(X, mean, Y, rows, n_jobs)

    rng = check_random_state(random_state)
    # One tall (n_samples x size) array at a time: the QR overwrites the product in
    # place, and the previous basis is released before the next product is allocated
    # (at a million rows each tall array is 0.2-0.3 GB).
    Q = _qr_basis(times(rng.standard_normal((n_features, size))))
    for _ in range(n_iter):
        small = _qr_basis(transposed_times(Q))
        del Q
        Q = _qr_basis(times(small))
    _, s, Vt = scipy.linalg.svd(transposed_times(Q).T, full_matrices=False,
                                check_finite=False)
    return s[:n_components], Vt[:n_components]


def full_centred_svd(X, mean, n_components, rows=None):
    """Same as :func:`randomized_centred_svd`, exactly, through a dense SVD."""
    if rows is not None:
        X = X[rows]
    if is_dask_array(X):
        X = X.compute()
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
    n_jobs : int or None, default=None
        Threads that share the blocks of rows of every pass over the data (products
        with the sparse or dense blocks release the GIL); None means 1, -1 all
        processors. Results do not depend on it.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Column means of the training data.
    components_ : ndarray of shape (n_components, n_features)
        Loadings (right singular vectors of the centred data), signs fixed so that each
        one's largest-magnitude entry is positive
        (:func:`~sklearn.utils.extmath.svd_flip`).
    singular_values_ : ndarray of shape (n_components,)
        Singular values of the centred training data for each component, decreasing.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the training data along each component,
        ``singular_values_**2 / (n_samples - 1)``.
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
    ColumnMaskingDenoiser : the same for any scikit-learn transformer, by masking.
    LowRankDenoiserCV : the rank chosen along a path, one decomposition per fold.
    sklearn_n2s.model_selection.MolecularCrossValidationScorer : the alternative for raw
        counts.

    References
    ----------
    .. [1] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.
    .. [2] Halko, N., Martinsson, P. G. & Tropp, J. A. (2011). Finding structure with
       randomness: probabilistic algorithms for constructing approximate matrix
       decompositions. SIAM Review 53(2), 217-288.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import SelfSupervisedScorer
    >>> from sklearn_n2s.table import LowRankDenoiser
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 40))
    >>> X = clean + rng.normal(scale=0.5, size=clean.shape)
    >>> search = GridSearchCV(LowRankDenoiser(random_state=0),
    ...                       {"n_components": [1, 2, 4, 8, 16]},
    ...                       scoring=SelfSupervisedScorer(), cv=3)
    >>> search.fit(X).best_params_
    {'n_components': 4}
    """

    _parameter_constraints: dict = {
        "n_components": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_groups": N_GROUPS_CONSTRAINT,
        "svd_solver": [StrOptions(set(SOLVERS))],
        "n_iter": [IntervalNotBool(Integral, 0, None, closed="left")],
        "n_oversamples": [IntervalNotBool(Integral, 0, None, closed="left")],
        "random_state": RANDOM_STATE_CONSTRAINT,
        "n_jobs": N_JOBS_CONSTRAINT,
    }

    def __init__(self, n_components=10, *, n_groups=10, svd_solver="auto", n_iter=4,
                 n_oversamples=10, random_state=None, n_jobs=None):
        self.n_components = n_components
        self.n_groups = n_groups
        self.svd_solver = svd_solver
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _solver(self, X, n_rows=None):
        if self.svd_solver != "auto":
            return self.svd_solver
        n_rows = X.shape[0] if n_rows is None else n_rows
        small = min(n_rows, X.shape[1]) <= _FULL_SVD_MAX_SIDE
        in_memory_dense = not (sp.issparse(X) or is_dask_array(X))
        return "full" if small and in_memory_dense else "randomized"

    def _n_threads(self):
        return max(1, effective_n_jobs(self.n_jobs))

    def _validate_table(self, X, *, reset):
        """X validated: in memory (CSR when sparse: row blocks are cheap slices) or lazy.

        A dask array is validated by shape and dtype here and by values as its chunks
        are read (:mod:`._lowrank_dask`). A CSC input is converted to CSR (a copy).
        """
        if is_dask_array(X):
            if not reset:
                check_is_fitted(self)
            return check_dask_table(self, X, reset=reset)
        X = check_table(self, X, reset=reset) if reset else self._check_input(X)
        return X.tocsr() if sp.issparse(X) else X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the column means and the loadings, and draw the column partition.

        Parameters
        ----------
        X : {array-like, sparse matrix (CSR or CSC), dask array} of shape \
                (n_samples, n_features)
            Training data; ``n_components`` must be at most ``min(n_samples,
            n_features)`` and ``n_groups`` at most ``n_features``. A dask array is read
            one row chunk at a time (never held whole).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = self._validate_table(X, reset=True)
        check_rank(self.n_components, *X.shape)
        self._set_partition(X.shape[1])
        return self._fit_decomposition(X, self.n_components)

    def _fit_decomposition(self, X, n_components, rows=None):
        """Set ``mean_`` and the top ``n_components`` loadings of the validated X.

        Only the rows ``rows`` (a sorted index array; all when None) are used, read in
        place: the rows of a cross-validation fold are never copied.
        """
        n_rows = X.shape[0] if rows is None else len(rows)
        n_jobs = self._n_threads()
        # Block by block: scipy's mean of a whole float32 matrix makes a float64 copy.
        self.mean_ = column_means_of_rows(X, rows, n_jobs)
        if self._solver(X, n_rows) == "full":
            check_dense_size(n_rows, X.shape[1], "the dense copy for svd_solver='full'")
            s, Vt = full_centred_svd(X, self.mean_, n_components, rows)
        else:
            s, Vt = randomized_centred_svd(
                X, self.mean_, n_components, n_oversamples=self.n_oversamples,
                n_iter=self.n_iter, random_state=self.random_state, rows=rows,
                n_jobs=n_jobs,
            )
        # Deterministic signs: each component's largest-magnitude loading is positive.
        _, self.components_ = svd_flip(None, Vt, u_based_decision=False)
        self.singular_values_ = s
        self.explained_variance_ = s**2 / max(n_rows - 1, 1)
        return self

    def _fit_covariance(self, covariance, mean, n_rows, n_components, start=None):
        """Set what ``_fit_decomposition`` sets from the rows' covariance matrix and
        mean (their ``n_rows``): the leading eigenvectors, by the subspace iteration
        of :func:`~sklearn_n2s.table._diffusion.top_eigenvectors` (from ``start``, one
        product, when given)."""
        vectors, variance = top_eigenvectors(
            covariance, n_components, return_values=True, start=start,
            **({} if start is None else {"iterations": 1}))
        variance = np.maximum(variance, 0.0)
        self.mean_ = mean
        _, self.components_ = svd_flip(None, vectors.T, u_based_decision=False)
        self.singular_values_ = np.sqrt(variance * n_rows)
        self.explained_variance_ = variance * n_rows / max(n_rows - 1, 1)
        return self

    def transform(self, X):
        """Rank-``n_components`` reconstruction ``mean + (X - mean) V V^T``.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            The table to denoise, with the features seen in ``fit``.

        Returns
        -------
        X_denoised : ndarray or dask array of shape (n_samples, n_features)
            The projection of ``X - mean_`` on the span of ``components_``, plus
            ``mean_``, in X's dtype (float32 kept). For a dask array, a lazy dask array
            with X's row chunks (compute it chunk by chunk, e.g. ``to_zarr``).
        """
        X = self._validate_table(X, reset=False)
        if is_dask_array(X):
            return dask_transform(self, X)
        check_dense_size(*X.shape)
        V = self.components_.T
        offset = self.mean_ @ V
        out = np.empty(X.shape, dtype=X.dtype)
        for rows in row_chunks(*X.shape):
            scores = np.asarray(X[rows] @ V) - offset  # float64 for float32 X too
            out[rows] = as_output_dtype(self.mean_ + scores @ self.components_, X.dtype)
        return out

    def _predict_group(self, X, group):
        projection = GroupProjection(self.mean_, self.components_, group,
                                     [len(self.components_)])
        return projection.predict(projection.scores(X), 0)

    def truncation_losses(self, X, ranks, loss="mse"):
        """Self-supervised loss of the rank-k truncation of this model, for each k in ranks.

        The rank-k truncation keeps ``components_[:k]`` (and the same ``mean_`` and
        ``groups_``): with ``svd_solver='full'`` it is exactly the model a fit with
        ``n_components=k`` learns. Every rank is scored in one pass over X, from one
        product of each block of rows with the loadings.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The table to score, with the features seen in ``fit``.
        ranks : sequence of int
            Ranks, each at most ``len(components_)``.
        loss : {'mse', 'mae', 'poisson'}, default='mse'
            The per-entry loss, averaged over X (see :meth:`self_supervised_loss`).
            The squared error is computed from sums of small matrices accumulated in the
            pass (never a dense prediction); the others from the prediction, block by
            block.

        Returns
        -------
        losses : ndarray of shape (len(ranks),)
            ``losses[i]`` equals ``self_supervised_loss(X, loss)`` of the rank
            ``ranks[i]`` truncation (up to rounding).
        """
        X = self._validate_table(X, reset=False)
        check_option(loss, "loss", ELEMENTWISE_LOSSES)
        ranks = [int(k) for k in ranks]
        if max(ranks) > len(self.components_):
            raise ValueError(f"ranks go up to {max(ranks)}, but the model has only "
                             f"{len(self.components_)} components.")
        return self._truncation_losses(X, ranks, loss)

    def _truncation_losses(self, X, ranks, loss, rows=None):
        """:meth:`truncation_losses` of the validated X's rows ``rows``: one pass."""
        projections = [GroupProjection(self.mean_, self.components_, group, ranks)
                       for group in self.groups_]
        return held_out_losses(X, projections, self.components_, loss, rows,
                               self._n_threads())

    def _truncated(self, n_components):
        """A plain :class:`LowRankDenoiser`, fitted: this model's rank-k truncation."""
        model = LowRankDenoiser(
            n_components, n_groups=self.n_groups, svd_solver=self.svd_solver,
            n_iter=self.n_iter, n_oversamples=self.n_oversamples,
            random_state=self.random_state, n_jobs=self.n_jobs,
        )
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(model, name, value)
        model.components_ = self.components_[:n_components]
        model.singular_values_ = self.singular_values_[:n_components]
        model.explained_variance_ = self.explained_variance_[:n_components]
        return model


def _pinvh(matrix):
    """scipy's ``pinvh`` (eigenvalues at most ``max(n) * eps * max|eigenvalue|`` cut),
    through NumPy's ``eigh``: the same values without scipy's wrappers, which cost
    more than the decomposition on the small matrices here (a third of the time at
    64 x 64, ``denoise`` computing a dozen of them)."""
    values, vectors = np.linalg.eigh(matrix)
    cutoff = np.max(np.abs(values), initial=0.0) * len(matrix) * np.finfo(values.dtype).eps
    kept = np.abs(values) > cutoff
    vectors = vectors[:, kept]
    return (vectors / values[kept]) @ vectors.T


class GroupProjection:
    """The J-invariant least-squares prediction of one column group, at several ranks.

    With ``V`` the loadings (columns = components) and ``V_rest`` the same with the rows
    of the group set to exact zeros, the rank-k prediction of a row x is

        mean_J + ((x - mean) V_rest)[:k] (V_rest[:, :k]^T V_rest[:, :k])^+ V[J, :k]^T.

    The scores ``(x - mean) V_rest`` are computed once at the largest rank and the rank-k
    prediction reads their first k columns: a rank-k model's ``V_rest`` is the first k
    columns of the largest one's.
    """

    def __init__(self, mean, components, group, ranks):
        self.group = group
        self.mean_group = mean[group]
        width = max(ranks)
        # Rows of J are exact zeros, so x_J is multiplied by 0 and cannot move the scores.
        self.loadings_rest = components[:width].T.copy()
        self.loadings_rest[group] = 0.0
        self.offset = mean @ self.loadings_rest
        gram = self.loadings_rest.T @ self.loadings_rest
        # Least-squares coefficients mapped straight to the group's columns, per rank.
        self.weights = [
            _pinvh(gram[:k, :k]) @ components[:k, group] for k in ranks
        ]
        self.ranks = list(ranks)

    def scores(self, X):
        """``(X - mean) V_rest`` for a block of rows X (dense or CSR), at the largest rank."""
        return np.asarray(X @ self.loadings_rest) - self.offset

    def predict(self, scores, index):
        """Prediction of the group's columns at ``ranks[index]`` from :meth:`scores`."""
        k = self.ranks[index]
        return self.mean_group + scores[:, :k] @ self.weights[index]


def check_rank_grid(ranks):
    """The candidate ranks as a list of ints; a clear error if the grid is unusable.

    ``ranks`` has passed :class:`LowRankDenoiserCV`'s parameter constraints (an int
    >= 1 or an array-like); an integer k stands for every rank from 1 to k. What the
    constraints cannot say about a sequence's entries is checked here.
    """
    if isinstance(ranks, Integral):
        return list(range(1, int(ranks) + 1))
    ranks = list(ranks)
    if not ranks:
        raise ValueError("n_components is empty: give at least one rank to try.")
    for k in ranks:
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise TypeError(f"n_components must hold integers, got {k!r}.")
        if k < 1:
            raise ValueError(f"n_components must hold ranks >= 1, got {k}.")
    return [int(k) for k in ranks]


def _std(scores):
    """Standard deviation of each row, scaled first: squares of scores near 1e300 (within
    the accepted input range, squared) would overflow."""
    scale = np.maximum(np.abs(scores).max(axis=1, keepdims=True), np.finfo(float).tiny)
    return (scores / scale).std(axis=1) * scale[:, 0]


def _fast_loss_name(scoring):
    """The loss name when ``scoring`` is the self-supervised loss of one named loss."""
    if scoring is None:
        return "mse"
    # A SelfSupervisedScorer names its loss; any other scorer takes the generic path.
    # (Asked by attribute: the table family sits below model_selection.)
    name = getattr(scoring, "self_supervised_loss_name", None)
    return name if name in ELEMENTWISE_LOSSES else None


class LowRankDenoiserCV(LowRankDenoiser):
    """:class:`LowRankDenoiser` with the rank chosen by cross-validated Noise2Self loss.

    The path idiom of :class:`~sklearn.linear_model.LassoCV`: in each cross-validation
    fold, *one* decomposition at the largest candidate rank is learned on the training
    rows, and every candidate rank's J-invariant prediction of the held-out rows is read
    off it (the rank-k model keeps the first k loadings). The rank with the lowest mean
    held-out loss is then fitted on all rows. Per fold that is one SVD instead of one per
    rank.

    With ``svd_solver='full'`` the first k loadings of the SVD are exactly the rank-k
    fit, so the losses equal those of ``GridSearchCV(LowRankDenoiser(svd_solver='full'),
    {'n_components': ...}, scoring=SelfSupervisedScorer(), cv=cv)`` up to rounding
    (same folds, same column groups when ``random_state`` is fixed).

    With the randomized solver the largest rank is the same fit as the grid search's,
    but a smaller rank k is read off a rank-K randomized SVD (``K + n_oversamples``
    random directions) instead of a rank-k one, which is at least as accurate. Where
    the singular values have a gap (ranks up to the signal's) the two agree to
    rounding; past it, among the flat noise singular values, they differ by the
    randomized solver's error: 0.06-0.4 % of the loss at ranks 8 and 12 of a
    400 x 60 rank-5 table (``tests/test_lowrank.py``), 0.16-0.19 % at ranks 10-20 of
    the 100,000 x 2,000 rank-8 benchmark (``benchmarks/bench_tables.py``). The chosen
    rank agrees when the loss curve has a clear minimum; ``svd_solver='full'`` removes
    the difference.

    Sparse input stays sparse: centring is implicit, as in :class:`LowRankDenoiser`.
    The folds are never copied: every pass reads the fold's rows of X in place, in
    blocks (``n_jobs`` threads), and the held-out squared error of every rank comes from
    one pass over the held-out rows (see the module notes for the count of passes). A
    ``dask.array`` of row chunks (a zarr store bigger than memory) is calibrated the
    same way, one chunk in memory at a time, and ``transform`` returns a lazy dask
    array. Measured: 200,000 x 2,000 counts (9 % non-zero) in ``benchmarks/bench_atlas.py``.

    Parameters
    ----------
    n_components : int or sequence of int, default=(2, 4, 8, 16, 32)
        Candidate ranks; an int k means every rank from 1 to k (cheap: each extra rank
        costs a small product per column group, no extra SVD). Each must be at most
        ``min(n_train, n_features)`` for every training fold. Ties go to the first rank
        in the sequence (as in GridSearchCV).
    cv : int, cross-validation generator or iterable, default=3
        Row splits, as in :func:`~sklearn.model_selection.check_cv`: an int gives
        ``KFold(cv)`` (no shuffle).
    scoring : callable or None, default=None
        None: the self-supervised mean squared error (``SelfSupervisedScorer()``).
        A :class:`~sklearn_n2s.SelfSupervisedScorer` with loss ``'mse'`` or ``'mae'`` is
        computed in the same one pass over the held-out rows. Any
        other ``scorer(estimator, X) -> score`` (greater is better) is called on a
        fitted rank-k :class:`LowRankDenoiser` (the truncation) per rank and fold.
    n_groups, svd_solver, n_iter, n_oversamples, random_state, n_jobs
        As in :class:`LowRankDenoiser`. ``random_state`` also seeds every fold's fit
        (each from the same state, as GridSearchCV's clones do).

    Attributes
    ----------
    n_components_ : int
        The chosen rank.
    ranks_ : ndarray of shape (n_ranks,)
        The candidate ranks, in the given order.
    losses_ : ndarray of shape (n_ranks, n_splits)
        Held-out loss of each rank in each fold (minus the score for a custom scorer).
    mean_losses_ : ndarray of shape (n_ranks,)
        ``losses_`` averaged over the folds; ``n_components_`` minimises it.
    cv_results_ : dict of ndarray
        The same in :class:`~sklearn.model_selection.GridSearchCV`'s format (scores are
        minus the losses): ``param_n_components``, ``split{i}_test_score``,
        ``mean_test_score``, ``std_test_score``, ``rank_test_score``.
    mean_ : ndarray of shape (n_features,)
        Column means of all rows (the refitted model's).
    components_ : ndarray of shape (n_components_, n_features)
        Loadings of the model refitted on all rows at ``n_components_``, as in
        :class:`LowRankDenoiser`.
    singular_values_ : ndarray of shape (n_components_,)
        Singular values of the refitted model, as in :class:`LowRankDenoiser`.
    explained_variance_ : ndarray of shape (n_components_,)
        Variance along each component of the refitted model.
    groups_ : list of ndarray
        Column indices of each group, the same in every fold and in the refit.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``. Defined only when X has feature names that
        are all strings.

    See Also
    --------
    LowRankDenoiser : one rank; tune it with GridSearchCV for any other grid.

    References
    ----------
    .. [1] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.table import LowRankDenoiserCV
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 40))
    >>> X = clean + rng.normal(scale=0.5, size=clean.shape)
    >>> model = LowRankDenoiserCV(n_components=[1, 2, 4, 8, 16], random_state=0).fit(X)
    >>> model.n_components_
    4
    >>> model.losses_.shape
    (5, 3)
    >>> model.transform(X).shape
    (300, 40)
    """

    _parameter_constraints: dict = {
        **LowRankDenoiser._parameter_constraints,
        "n_components": [IntervalNotBool(Integral, 1, None, closed="left"), "array-like"],
        "cv": ["cv_object"],
        "scoring": [callable, None],
    }

    def __init__(self, n_components=(2, 4, 8, 16, 32), *, cv=3, scoring=None,
                 n_groups=10, svd_solver="auto", n_iter=4, n_oversamples=10,
                 random_state=None, n_jobs=None):
        self.n_components = n_components
        self.cv = cv
        self.scoring = scoring
        self.n_groups = n_groups
        self.svd_solver = svd_solver
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.random_state = random_state
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Score every candidate rank by cross-validation, then refit the best on all rows.

        Parameters
        ----------
        X : {array-like, sparse matrix (CSR or CSC), dask array} of shape \
                (n_samples, n_features)
            Training data; every candidate rank must be at most ``min(n_train,
            n_features)`` for the smallest training fold, and ``n_groups`` at most
            ``n_features``. A dask array is read one row chunk at a time.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator, refitted on all rows at ``n_components_``.
        """
        X = self._validate_table(X, reset=True)  # CSR: row blocks are cheap slices
        ranks = check_rank_grid(self.n_components)
        check_n_groups(self.n_groups, X.shape[1])
        # The splitter sees only the number of rows (a lazy X is never read for it).
        placeholder = np.empty((X.shape[0], 0)) if is_dask_array(X) else X
        splits = list(check_cv(self.cv).split(placeholder))
        smallest_train = min(len(train) for train, _ in splits)
        check_rank(max(ranks), smallest_train, X.shape[1],
                   name="the largest rank in n_components")
        losses = np.column_stack([self._fold_losses(X, train, test, ranks)
                                  for train, test in splits])
        return self._finish_fit(X, ranks, losses)

    def _finish_fit(self, X, ranks, losses):
        """Record the (n_ranks, n_folds) losses, pick the rank and refit on all rows
        (``denoise`` calls it after scoring the first fold on its own)."""
        self._record(ranks, losses)
        self._set_partition(X.shape[1])
        return self._fit_decomposition(X, self.n_components_)

    def _fold_losses(self, X, train, test, ranks, covariance=None, start=None):
        """Held-out loss of every rank, from one fit at the largest rank on ``train``.

        The fold's rows are read in place (sorted: neither the fit nor a loss summed
        over rows depends on their order), never copied. ``covariance``: the training
        rows' ``(covariance, mean, n)`` when known (``denoise`` derives it from the
        diffusion's Gram matrix): the loadings are then its leading eigenvectors
        (one product from ``start`` when given: ``denoise``'s screening fold).
        """
        fold_model = LowRankDenoiser(
            max(ranks), n_groups=self.n_groups, svd_solver=self.svd_solver,
            n_iter=self.n_iter, n_oversamples=self.n_oversamples,
            random_state=self.random_state, n_jobs=self.n_jobs,
        )
        # What fit(X[train]) would set, without the copy of the training rows.
        fold_model.n_features_in_ = X.shape[1]
        fold_model._set_partition(X.shape[1])
        if covariance is not None:  # the training rows' (covariance, mean, n)
            fold_model._fit_covariance(*covariance, max(ranks), start)
        else:
            fold_model._fit_decomposition(X, max(ranks), rows=np.sort(train))
        loss = _fast_loss_name(self.scoring)
        if loss is not None:
            return fold_model._truncation_losses(X, ranks, loss, rows=np.sort(test))
        held_out = X[np.sort(test)]
        if is_dask_array(held_out):
            held_out = held_out.compute()
        return np.array([-self.scoring(fold_model._truncated(k), held_out)
                         for k in ranks])

    def _record(self, ranks, losses):
        self.ranks_ = np.asarray(ranks)
        self.losses_ = losses
        self.mean_losses_ = losses.mean(axis=1)
        # argmin takes the first of equal losses: GridSearchCV's tie-break.
        self.n_components_ = ranks[int(np.argmin(self.mean_losses_))]
        scores = -losses
        self.cv_results_ = {
            "param_n_components": self.ranks_.copy(),
            **{f"split{i}_test_score": scores[:, i] for i in range(scores.shape[1])},
            "mean_test_score": scores.mean(axis=1),
            "std_test_score": _std(scores),
            "rank_test_score": scipy.stats.rankdata(
                -scores.mean(axis=1), method="min").astype(np.int32),
        }
