"""Diffusion of the rows of a table over an adaptive-kernel kNN graph (MAGIC-style),
with an exactly J-invariant prediction and every diffusion time scored in one sweep.

``transform`` is MAGIC's operation (van Dijk et al., 2018): a kNN graph of the rows with
an adaptive Gaussian-type kernel (row i's bandwidth is the distance to its
``n_neighbors``-th neighbour, affinities ``exp(-(d / bandwidth)^decay)`` over the
``3 * n_neighbors`` nearest rows, below 1e-4 dropped, the row itself at affinity 1),
symmetrised and row-normalised into a Markov operator P, applied ``t`` times: ``P^t X``.

The J-invariant prediction of a column group J must not depend on ``x_iJ``. Two things
would let it in, and each is removed exactly:

- the graph: the operator used for group J is built from the *other* columns only:
  the distances are measured on the leading principal components of the columns
  outside J (:class:`ComplementPCA`: one covariance matrix of all columns, its block
  without J diagonalised per group; J's loadings are exact zeros), as ``transform``'s
  graph is on those of all columns (MAGIC's ``n_pca=100``);
- the walk: ``P^t`` returns to row i after two steps or more, so ``(P^t X_J)_i`` holds
  ``(P^t)_ii x_iJ``. The rows are split once into ``n_folds`` random folds; a row of
  fold f is predicted from the values of the rows *outside* f only,
  ``(P^t (m * X_J))_i / (P^t m)_i`` with m the indicator of the rows outside f.
  ``x_iJ`` is multiplied by an exact zero, so not even rounding lets it in, and both
  the numerator and the normaliser advance by one sparse product per step: the loss of
  every t up to the largest is read off one sweep (:func:`diffusion_path_losses`).

The prediction thus sees the diffusion from ``1 - 1 / n_folds`` of the rows (a little
noisier than the output at the same t; with two halves the calibrated t was one step
longer than molecular cross-validation's on pbmc68k, with five folds the same) and a
graph built without one column group out of ``n_groups``. The neighbour search of a
group is shared by every ``n_neighbors`` scored (at the largest), so a small grid of
bandwidths costs sweeps, not searches.

The principal components come from one covariance matrix of all columns: each group's
leading eigenvectors by a subspace iteration (:func:`top_eigenvectors`) from a fixed
start, a function of the other groups' block alone.

Cost per column group: one neighbour search on the other groups' embeddings (exact,
pynndescent's, or the clustered search of ``_clustered_search``), then per
step one product of the sparse operator (about ``3 * n_neighbors`` to
``6 * n_neighbors`` entries a row) with a dense ``n_samples x n_folds (|J| + 1)``
block.
"""

from functools import lru_cache
from numbers import Integral, Real

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions

from ..utils._table_validation import (
    RANDOM_STATE_CONSTRAINT,
    IntervalNotBool,
    as_output_dtype,
    check_dense_size,
    check_table,
    complement,
    to_dense,
)
from ._clustered_search import clustered_neighbours, exact_neighbours
from ._column_masking import N_GROUPS_CONSTRAINT, ColumnInvariantMixin
from ._knn import _pynndescent

ALGORITHMS = ("exact", "nndescent", "clustered")
# Affinities below this are dropped (MAGIC's graphtools default threshold).
_THRESHOLD = 1e-4
# The kernel reaches this many times n_neighbors rows (MAGIC's knn_max default).
_SUPPORT_FACTOR = 3
# Largest magnitude swept in float32 (far below its 3.4e38 limit: sums of many rows).
_FLOAT32_SAFE = 1e30
# Sparse tables denser than this form their Gram matrix through dense row blocks of
# about this many entries.
_DENSE_GRAM_DENSITY = 0.15
_DENSE_BLOCK_ENTRIES = 1 << 21
# Subspace iteration of top_eigenvectors: extra directions and products with the matrix.
_OVERSAMPLES = 20
_POWER_ITERATIONS = 4
# Exact searches up to this many rows are a NumPy brute force (``exact_neighbours``):
# scikit-learn's spends about 20 ms of set-up on its first call in a process (its
# thread-pool scan), most of the search at pbmc68k's 700 cells; above, its chunked
# heap selection is the faster (twice at 2,000 rows).
_NUMPY_SEARCH_MAX_ROWS = 1000
#: Most columns whose covariance matrix ComplementPCA forms (8,192: 0.5 GB in float64).
MAX_PCA_FEATURES = 8192


def _gram(X):
    """``X^T X`` as a dense float64 array. Sparse X above ``_DENSE_GRAM_DENSITY`` goes
    through dense row blocks (BLAS): pbmc68k's 33 % non-zero took a third of the
    sparse product's time; at 9 % the two are even."""
    if X.dtype == np.float64 and not sp.issparse(X) or \
            sp.issparse(X) and X.nnz <= _DENSE_GRAM_DENSITY * X.shape[0] * X.shape[1]:
        gram = X.T @ X
        return np.asarray(gram.toarray() if sp.issparse(gram) else gram, dtype=np.float64)
    gram = np.zeros((X.shape[1], X.shape[1]))
    step = max(1, _DENSE_BLOCK_ENTRIES // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        block = X[start:start + step]
        block = (block.toarray() if sp.issparse(block) else block).astype(np.float64)
        gram += block.T @ block
    return gram


class ComplementPCA:
    """Principal components of any subset of the columns, from one covariance matrix.

    The covariance of all columns is computed once (``X^T X / n - mean mean^T``, in
    float64; sparse X stays sparse); the PCA of the columns ``keep`` is the leading
    eigenvectors of its ``keep x keep`` block, and the rows' coordinates are
    ``(X - mean) V`` with V's rows outside ``keep`` exact zeros: the coordinates for the
    graph of group J never involve J's columns, not even through rounding. One
    ``n_features x n_features`` matrix, an eigendecomposition per group.
    """

    def __init__(self, X, n_components):
        if n_components is not None and X.shape[1] > MAX_PCA_FEATURES:
            raise ValueError(
                f"DiffusionSmoother(n_components={n_components}) forms the covariance "
                f"matrix of the {X.shape[1]} columns, more than {MAX_PCA_FEATURES}: "
                "select the variable genes first (a few thousand), or pass "
                "n_components=None (distances on the columns themselves).")
        # float32 kept (the coordinates' products in float32; the Gram matrix and the
        # means accumulate in float64)
        self.X = X.tocsr() if sp.issparse(X) else (
            X if X.dtype == np.float32 else np.asarray(X, dtype=np.float64))
        self.n_components = n_components
        n = X.shape[0]
        self.mean = np.asarray(self.X.sum(axis=0, dtype=np.float64)).ravel() / n
        if n_components is None:
            return
        if sp.issparse(self.X):
            self.gram = _gram(self.X)  # uncentred: X stays sparse
            self.covariance = self.gram / n - np.outer(self.mean, self.mean)
        else:
            # centred first, then in X's precision (float32: half the time of float64
            # at 700 x 765; no cancellation left to lose digits to)
            centred = self.X - self.mean.astype(self.X.dtype)
            self.gram = np.asarray(centred.T @ centred, dtype=np.float64)
            del centred
            self.covariance = self.gram / n

    def covariance_without(self, rows):
        """``(covariance, mean, n)`` of the rows *not* in ``rows`` (a training fold),
        from the stored Gram matrix minus that of ``rows``: one pass over ``rows``
        instead of a randomized SVD's passes over the fold (``denoise``'s low-rank
        curve)."""
        held = self.X[rows]
        n = self.X.shape[0] - len(rows)
        mean = (self.mean * self.X.shape[0]
                - np.asarray(held.sum(axis=0, dtype=np.float64)).ravel()) / n
        # in place: a few n_features^2 arrays fewer (each a fresh allocation)
        if sp.issparse(held):
            covariance = np.subtract(self.gram, _gram(held))
            shift = mean
        else:  # the Gram matrix is of the centred rows
            held = held - self.mean.astype(held.dtype)
            covariance = np.subtract(self.gram, held.T @ held, dtype=np.float64)
            shift = mean - self.mean
        covariance /= n
        covariance -= shift[:, np.newaxis] * shift[np.newaxis, :]
        return covariance, mean, n

    def coordinates(self, keep):
        """The rows' coordinates on the leading components of the columns ``keep``."""
        X = self.X
        if self.n_components is None:
            block = X[:, keep]
            return to_dense(block) if sp.issparse(block) else np.asarray(block, np.float64)
        n_keep = min(self.n_components, len(keep), X.shape[0])
        if len(keep) == X.shape[1]:  # all columns (transform's graph): no block copy
            loadings = top_eigenvectors(self.covariance, n_keep)
        else:
            loadings = np.zeros((X.shape[1], n_keep))
            loadings[keep] = top_eigenvectors(self.covariance[np.ix_(keep, keep)], n_keep)
        product = X @ loadings.astype(X.dtype, copy=False)  # float32 X: in float32
        return np.asarray(product, dtype=np.float64) - self.mean @ loadings


def top_eigenvectors(matrix, n_vectors, *, return_values=False):
    """The ``n_vectors`` leading eigenvectors of a symmetric positive semi-definite
    matrix, as columns, by decreasing eigenvalue (and the eigenvalues, with
    ``return_values``).

    Small matrices (or most of the spectrum): LAPACK's ``eigh``. Otherwise a subspace
    iteration from a fixed random start (``_POWER_ITERATIONS`` products with the
    matrix, then Rayleigh-Ritz), as randomized PCA does: a tenth of ``eigh``'s time on
    765 genes, and a deterministic function of ``matrix`` alone (the graph of a gene
    group still never depends on that group's values).
    """
    size = len(matrix)
    if size <= 2 * n_vectors + _OVERSAMPLES:
        values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[size - n_vectors,
                                                                      size - 1])
        return (vectors[:, ::-1], values[::-1]) if return_values else vectors[:, ::-1]
    # The iterations' products in float32 (the matrix scaled to a unit largest diagonal
    # entry: no overflow), LU normalisation between them (as scikit-learn's randomized
    # SVD), then one QR and the Rayleigh-Ritz step in float64: 17 ms against 30 ms
    # (float64, QR at every step) at 765 x 765, the vectors within 1e-7 of those. The
    # start stays the float64 draw (a float32 draw is another start: the trailing
    # vectors of an unconverged iteration move, and pbmc68k's losses by 2e-3).
    scale = float(np.max(np.abs(np.diag(matrix)), initial=0.0))
    reduced = (matrix / scale if scale > 0 else matrix).astype(np.float32)
    basis = _start(size, n_vectors + _OVERSAMPLES)
    for _ in range(_POWER_ITERATIONS):
        basis = scipy.linalg.lu(reduced @ basis, permute_l=True, overwrite_a=True,
                                check_finite=False)[0]
    basis = scipy.linalg.qr(basis.astype(np.float64), mode="economic", overwrite_a=True,
                            check_finite=False)[0]
    values, vectors = scipy.linalg.eigh(basis.T @ (matrix @ basis))
    vectors = basis @ vectors[:, ::-1][:, :n_vectors]
    return (vectors, values[::-1][:n_vectors]) if return_values else vectors


@lru_cache(maxsize=8)
def _start(size, width):
    """The subspace iteration's fixed start (a float64 normal draw, kept in float32),
    drawn once per shape: ``denoise`` asks for the same few shapes at every call (the
    draw was 1 ms of the 20 ms of an iteration at 765 x 120). Read-only."""
    start = np.random.default_rng(0).standard_normal((size, width)).astype(np.float32)
    start.flags.writeable = False
    return start


def _neighbours(features, width, algorithm, random_state):
    """Distances and indices ``(n, width)`` of each row's nearest *other* rows."""
    if algorithm == "exact":
        if len(features) <= _NUMPY_SEARCH_MAX_ROWS:
            return exact_neighbours(features, width)
        search = NearestNeighbors(n_neighbors=width, algorithm="brute").fit(features)
        return search.kneighbors()  # X=None: each row left out of its own list
    seed = random_state if isinstance(random_state, (Integral, type(None))) else \
        random_state.randint(2**31 - 1)
    if algorithm == "clustered":
        return clustered_neighbours(features, width, random_state=seed)
    index = _pynndescent().NNDescent(features, n_neighbors=width + 1, random_state=seed,
                                     n_jobs=1)
    indices, distances = index.neighbor_graph
    n = len(indices)
    is_self = indices == np.arange(n)[:, np.newaxis]
    is_self[~is_self.any(axis=1), width] = True  # a duplicate took its place: drop the last
    drop = np.zeros_like(is_self)
    drop[np.arange(n), np.argmax(is_self, axis=1)] = True
    return distances[~drop].reshape(n, width), indices[~drop].reshape(n, width)


def neighbour_lists(features, width, *, algorithm="exact", random_state=None):
    """Distances and indices ``(n, width)`` of each row's nearest other rows, sorted."""
    distances, indices = _neighbours(features, width, algorithm, random_state)
    return distances.astype(np.float64), indices


def kernel_operator(distances, indices, n_neighbors, decay=1.0):
    """MAGIC's Markov operator from sorted neighbour lists (CSR, rows sum to 1).

    Affinity of row i to its ``3 * n_neighbors`` nearest other rows j (the first
    columns of the lists): ``exp(-(d_ij / b_i)^decay)``, with ``b_i`` the distance to
    i's ``n_neighbors``-th nearest other row; below 1e-4 dropped; 1 to itself.
    Symmetrised (``(K + K^T) / 2``) and divided by the row sums.
    """
    n = len(indices)
    width = min(_SUPPORT_FACTOR * n_neighbors, indices.shape[1])
    distances, indices = distances[:, :width], indices[:, :width]
    bandwidth = distances[:, min(n_neighbors, width) - 1][:, np.newaxis]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Duplicated rows: a zero bandwidth; the rows at distance 0 keep affinity 1.
        scaled = np.where(distances > 0, distances / bandwidth, 0.0)
    affinity = np.exp(-scaled**decay)
    affinity[affinity < _THRESHOLD] = 0.0
    kernel = sp.csr_matrix((affinity.ravel(), indices.ravel(),
                            np.arange(0, n * width + 1, width)), shape=(n, n))
    kernel = ((kernel + kernel.T) * 0.5 + sp.identity(n, format="csr")).tocsr()
    # rows divided by their sums in place (what diags(1 / sums) @ kernel computes,
    # without a sparse product)
    kernel.data *= np.repeat(1.0 / np.asarray(kernel.sum(axis=1)).ravel(),
                             np.diff(kernel.indptr))
    return kernel


def diffusion_operator(features, n_neighbors, decay=1.0, *, algorithm="exact",
                       random_state=None):
    """MAGIC's Markov operator on the rows of ``features`` (see :func:`kernel_operator`)."""
    width = min(_SUPPORT_FACTOR * n_neighbors, features.shape[0] - 1)
    distances, indices = neighbour_lists(features, width, algorithm=algorithm,
                                         random_state=random_state)
    return kernel_operator(distances, indices, n_neighbors, decay)


def row_folds(n_samples, n_folds, seed):
    """A random assignment of the rows to ``n_folds`` folds of equal size (+-1)."""
    return np.random.default_rng(seed).permutation(n_samples) % n_folds


def fold_predictions(operator, values, folds, times):
    """Yield ``(t, prediction)`` for each t of ``times`` (sorted): the rows of each fold
    predicted from the *other* folds' ``values`` diffused t steps.

    ``values`` is dense ``(n, w)``. For fold f the walk carries ``values * m_f`` and the
    mass ``m_f`` (``m_f`` the indicator of the rows outside f), so a row of f is
    multiplied by an exact 0 in the block that predicts it. Where the other folds have
    not been reached yet (a mass of 0), their column means are predicted.
    """
    n, w = values.shape
    n_folds = int(folds.max()) + 1
    # per fold: [outside values, outside mass], in the operator's precision
    state = np.empty((n, n_folds * (w + 1)), dtype=operator.dtype)
    for f in range(n_folds):
        outside = folds != f
        block = state[:, f * (w + 1):(f + 1) * (w + 1)]
        np.multiply(values, outside[:, np.newaxis], out=block[:, :w], casting="unsafe")
        block[:, w] = outside
    step, wanted = 0, list(times)
    rows = np.arange(n)
    while wanted:
        state = operator @ state
        step += 1
        if step != wanted[0]:
            continue
        wanted.pop(0)
        # each row's own fold's block, [values, mass], in one gather of contiguous
        # runs (a fifth of take_along_axis's time)
        own = state.reshape(n, n_folds, w + 1)[rows, folds]
        mass = own[:, w].astype(np.float64)
        reached = mass > 0
        if reached.all():  # the usual case: no masks to gather through
            prediction = np.divide(own[:, :w], mass[:, np.newaxis])
        else:
            prediction = np.empty((n, w))
            prediction[reached] = own[reached, :w] / mass[reached, np.newaxis]
            prediction[~reached] = _fold_means(values, folds)[folds[~reached]]
        yield step, prediction


def _fold_means(values, folds):
    """The column means of the rows outside each fold (zeros where there are none):
    the prediction of a row that the walk has not linked to another fold yet."""
    n_folds = int(folds.max()) + 1
    means = np.zeros((n_folds, values.shape[1]))
    for f in range(n_folds):
        outside = folds != f
        if outside.any():
            means[f] = values[outside].mean(axis=0)
    return means


class DiffusionSmoother(ColumnInvariantMixin, TransformerMixin, BaseEstimator):
    """Diffuse each row over a kNN graph of the rows (MAGIC); J-invariant over columns.

    ``transform`` returns ``P^t X``, P the row-normalised adaptive kernel of the kNN
    graph (see the module notes): MAGIC's imputation, the distances measured between
    principal components (MAGIC's ``n_pca``). The J-invariant prediction of a column
    group uses a graph built from the other columns only, and predicts each row from
    the diffused values of the rows outside its fold (an exact zero weight on the row
    itself), so the self-supervised loss calibrates ``t`` (and ``n_neighbors``) with no
    clean data; :func:`diffusion_path_losses` scores every t in one sweep.

    The smoother is transductive, like :class:`KNNSmoother`: the graph is built on the
    rows given to ``transform`` / ``invariant_transform``; ``fit`` learns the column
    partition only. Calibrate it on the data to be smoothed.

    Parameters
    ----------
    t : int, default=3
        Diffusion time: the number of times the operator is applied.
    n_neighbors : int, default=5
        The kernel's bandwidth for a row is the distance to its ``n_neighbors``-th
        nearest other row; the kernel reaches ``3 * n_neighbors`` rows. Must be below
        the number of rows.
    decay : float, default=1.0
        Exponent of the kernel ``exp(-(d / bandwidth)^decay)`` (MAGIC's alpha-decay;
        larger is a sharper cut-off).
    n_groups : int, default=4
        Column groups of the J-invariant prediction: one graph is built per group (from
        the other groups), plus one for ``transform``.
    n_components : int or None, default=100
        Principal components in the distance (MAGIC's ``n_pca``): of all columns for
        ``transform``, of the columns outside the group for its J-invariant prediction
        (fewer when there are fewer columns or rows); None: the columns themselves.
        The covariance matrix of the columns is formed, so at most 8,192 columns.
    n_folds : int, default=5
        The J-invariant prediction of a row diffuses the values of the rows outside
        its fold (random folds of the rows, at least 2): it sees ``1 - 1 / n_folds``
        of the data, the closer to ``transform`` the more folds, at ``n_folds`` times
        the cost of the sweep. With 2 folds the loss curve of pbmc68k had its minimum
        one step of t later than the molecular cross-validation's, with 5 at the same
        t.
    algorithm : {'exact', 'nndescent', 'clustered'}, default='exact'
        Exact neighbours (brute force: NumPy up to 1,000 rows, else
        scikit-learn's); pynndescent's approximate ones
        (optional dependency; its first call in a process compiles for about a
        minute); or the clustered search (an inverted file over a k-means of the rows,
        in NumPy: at 20,000 rows x 100 components 99 % of the exact neighbours in a
        quarter of the brute force's time; what ``denoise`` uses from 5,000 cells).
    random_state : int, RandomState or None, default=None
        Seeds the column partition, the row folds (drawn in ``fit``) and pynndescent.

    Attributes
    ----------
    groups_ : list of ndarray
        Column indices of each group.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit``. Defined only when X has feature names that
        are all strings.

    See Also
    --------
    KNNSmoother : the uniform average over k neighbours (one step, no kernel).
    diffusion_path_losses : the self-supervised loss of every t from one sweep.

    References
    ----------
    .. [1] van Dijk, D. et al. (2018). Recovering gene interactions from single-cell
       data using data diffusion. Cell 174(3), 716-729 (MAGIC).
    .. [2] Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by
       Self-Supervision. Proceedings of the 36th International Conference on Machine
       Learning (ICML), PMLR 97. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.table import DiffusionSmoother, diffusion_path_losses
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(scale=3.0, size=(4, 20))
    >>> X = np.repeat(centres, 50, axis=0) + rng.normal(size=(200, 20))
    >>> smoother = DiffusionSmoother(random_state=0).fit(X)
    >>> losses = diffusion_path_losses(smoother, X, [1, 2, 4, 8])
    >>> bool(losses[-1] < losses[0])  # more diffusion helps on well separated clusters
    True
    >>> smoother.set_params(t=8).transform(X).shape
    (200, 20)
    """

    _row_independent = False

    _parameter_constraints: dict = {
        "t": [IntervalNotBool(Integral, 1, None, closed="left")],
        "n_neighbors": [IntervalNotBool(Integral, 1, None, closed="left")],
        "decay": [IntervalNotBool(Real, 0, None, closed="neither")],
        "n_groups": N_GROUPS_CONSTRAINT,
        "n_components": [IntervalNotBool(Integral, 1, None, closed="left"), None],
        "n_folds": [IntervalNotBool(Integral, 2, None, closed="left")],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "random_state": RANDOM_STATE_CONSTRAINT,
    }

    def __init__(self, t=3, *, n_neighbors=5, decay=1.0, n_groups=4, n_components=100,
                 n_folds=5, algorithm="exact", random_state=None):
        self.t = t
        self.n_neighbors = n_neighbors
        self.decay = decay
        self.n_groups = n_groups
        self.n_components = n_components
        self.n_folds = n_folds
        self.algorithm = algorithm
        self.random_state = random_state

    def _check_n_neighbors(self, n_samples, n_neighbors=None):
        n_neighbors = self.n_neighbors if n_neighbors is None else n_neighbors
        if n_neighbors >= n_samples:
            rows = "1 row" if n_samples == 1 else f"{n_samples} rows"
            raise ValueError(
                f"DiffusionSmoother got {rows} (n_samples={n_samples}), but it needs "
                f"more than n_neighbors={n_neighbors}: the graph is built on the "
                "rows of each call (the smoother is transductive). Pass all the rows to "
                "smooth together, or lower n_neighbors.")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate X, draw the column partition and the seed of the row halves.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; more than ``n_neighbors`` rows.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = check_table(self, X, reset=True)
        self._check_n_neighbors(X.shape[0])
        if self.algorithm == "nndescent":
            _pynndescent()
        self._set_partition(X.shape[1])
        # Drawn once: the row folds of a later call depend on its number of rows only.
        self._folds_seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        return self

    def _features(self, pca, keep):
        # float32 coordinates: the brute-force search's products at twice the speed;
        # scaled first (the kernel only sees ratios of distances), so values far beyond
        # float32's range keep their geometry.
        coordinates = pca.coordinates(keep)
        scale = np.abs(coordinates).max() if coordinates.size else 0.0
        if scale > 0:
            coordinates = coordinates / scale
        return coordinates.astype(np.float32)

    def transform(self, X):
        """``P^t X``: each row diffused ``t`` steps over the graph of the rows of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to smooth (more than ``n_neighbors``), with the features seen in
            ``fit``; the graph is built on them.

        Returns
        -------
        X_smoothed : ndarray of shape (n_samples, n_features)
            In X's dtype (float32 kept).
        """
        return self._diffuse(self._check_input(X))

    def _diffuse(self, X, pca=None):
        """``transform`` of a validated X; ``pca``: X's ComplementPCA when already built
        (``denoise`` shares the one of the calibration)."""
        check_dense_size(*X.shape)
        self._check_n_neighbors(X.shape[0])
        pca = ComplementPCA(X, self.n_components) if pca is None else pca
        features = self._features(pca, np.arange(X.shape[1]))
        operator = diffusion_operator(features, self.n_neighbors, self.decay,
                                      algorithm=self.algorithm,
                                      random_state=self.random_state)
        # float32 data are diffused in float32 (the output's precision): half the
        # memory of the dense copies and of the products' traffic.
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        out = X.toarray().astype(dtype, copy=False) if sp.issparse(X) else \
            np.array(X, dtype=dtype)
        operator = operator.astype(dtype, copy=False)
        for _ in range(self.t):
            out = operator @ out
        return as_output_dtype(out, X.dtype)

    def _row_folds(self, n_samples):
        return row_folds(n_samples, min(self.n_folds, n_samples), self._folds_seed)

    def _group_graphs(self, X, ks, max_columns=None, pca=None):
        """Yield ``(group, values, distances, indices, dtype)`` for every column group:
        its neighbour lists (wide enough for the largest k of ``ks``) from the other
        groups' components, the values of its (scored) columns, and the precision of
        its sweep. With ``max_columns``, ``group`` is a random subset of at most that
        many of the group's columns (seeded)."""
        for k in ks:
            self._check_n_neighbors(X.shape[0], k)
        pca = ComplementPCA(X, self.n_components) if pca is None else pca
        rng = np.random.default_rng(self._folds_seed)
        columns = X.tocsc() if sp.issparse(X) else X
        width = min(_SUPPORT_FACTOR * max(ks), X.shape[0] - 1)
        for group in self.groups_:
            # the graph of the group never saw its columns
            features = self._features(pca, complement(X.shape[1], group))
            distances, indices = neighbour_lists(features, width, algorithm=self.algorithm,
                                                 random_state=self.random_state)
            if max_columns is not None and len(group) > max_columns:
                group = np.sort(rng.choice(group, max_columns, replace=False))
            values = to_dense(columns[:, group])
            # float32 sweep: half the memory traffic of the sparse products, and a loss
            # precise to about 1e-7, far below the differences between t (float64 for
            # values that float32 cannot hold).
            small = values.size == 0 or np.abs(values).max() < _FLOAT32_SAFE
            yield group, values, distances, indices, np.float32 if small else np.float64

    def _path(self, graph, k, folds, times):
        """``fold_predictions`` of one group's graph at k."""
        _, values, distances, indices, dtype = graph
        operator = kernel_operator(distances, indices, k, self.decay).astype(dtype)
        return fold_predictions(operator, values, folds, times)

    def _group_paths(self, X, times, max_columns=None, n_neighbors=None, pca=None):
        """Yield ``(group, values, k, path)`` for every column group and every k of
        ``n_neighbors`` (default: the smoother's): ``path`` yields ``(t, prediction)``
        for each t of ``times``. The neighbour search is shared by the k of a group.
        With ``max_columns``, ``group`` is a random subset of at most that many of the
        group's columns (seeded)."""
        ks = [self.n_neighbors] if n_neighbors is None else list(n_neighbors)
        folds = self._row_folds(X.shape[0])
        for graph in self._group_graphs(X, ks, max_columns, pca):
            for k in ks:
                yield graph[0], graph[1], k, self._path(graph, k, folds, times)

    def _invariant_blocks(self, X):
        """All rows in one block: the prediction of every group at ``t``."""
        check_dense_size(*X.shape, "the invariant prediction")
        prediction = np.empty(X.shape, dtype=np.float64)
        target = np.empty(X.shape, dtype=np.float64)
        for group, values, _, path in self._group_paths(X, [self.t]):
            (_, prediction[:, group]), = path
            target[:, group] = values
        yield slice(0, X.shape[0]), prediction, target


def diffusion_path_losses(smoother, X, t, *, n_neighbors=None, max_columns=None):
    """Self-supervised loss (MSE) of every diffusion time in ``t`` from one sweep.

    Per column group one neighbour search (at the largest ``n_neighbors``) and, per
    number of neighbours, ``max(t)`` sparse products; the loss at each t is what
    :meth:`DiffusionSmoother.self_supervised_loss` gives with that t (and k; with
    ``max_columns=None``).

    Parameters
    ----------
    smoother : DiffusionSmoother
        Fitted; its partition, graph options and row folds are used (its ``t`` is not,
        nor its ``n_neighbors`` when ``n_neighbors`` is given).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The rows to smooth, with the features seen in ``fit``.
    t : sequence of int
        The diffusion times to score (each >= 1).
    n_neighbors : sequence of int or None, default=None
        Kernel bandwidth neighbours to score too (each below the number of rows), all
        from one neighbour search per group. None: the smoother's ``n_neighbors``.
    max_columns : int or None, default=None
        Score at most this many columns per group, drawn at random (seeded by the
        smoother's ``random_state``): the sweep carries ``n_folds`` copies of the
        scored columns, so with thousands of genes a subset estimates the same mean
        loss at a fraction of the cost. None: every column.

    Returns
    -------
    losses : ndarray of shape (len(t),), or (len(n_neighbors), len(t))
        Mean squared error of each t's (and k's) J-invariant prediction against X
        (over the scored entries).
    """
    return _path_losses(smoother, smoother._check_input(X), t, n_neighbors, max_columns)


def _path_losses(smoother, X, t, n_neighbors=None, max_columns=None, pca=None,
                 stop_after_rises=None):
    """:func:`diffusion_path_losses` of a validated X, with X's ComplementPCA when
    already built. With ``stop_after_rises`` (an int), the sweep of a k stops once its
    loss (over all groups) has risen at that many successive times of the sorted grid;
    the times not reached are NaN (the curve of diffusion is unimodal in t on every
    data set measured: once past its minimum, more steps only blur more)."""
    times = [int(v) for v in np.atleast_1d(t)]
    if not times or min(times) < 1:
        raise ValueError(f"t must hold diffusion times >= 1; got {times}.")
    if max_columns is not None and (isinstance(max_columns, bool) or
                                    not isinstance(max_columns, Integral) or max_columns < 1):
        raise ValueError(f"max_columns must be a positive int or None; got {max_columns!r}.")
    ks = None if n_neighbors is None else [int(k) for k in np.atleast_1d(n_neighbors)]
    if ks is not None and (not ks or min(ks) < 1):
        raise ValueError(f"n_neighbors must hold positive ints; got {ks}.")
    order = sorted(set(times))
    rows = [smoother.n_neighbors] if ks is None else ks
    totals = {(k, v): 0.0 for k in rows for v in order}
    n_entries = X.shape[0] * sum(min(len(group), max_columns or len(group))
                                 for group in smoother.groups_)
    if stop_after_rises is None:  # one group at a time: the memory of one sweep
        for _, values, k, path in smoother._group_paths(X, order, max_columns, ks, pca):
            for step, prediction in path:
                diff = prediction - values
                totals[k, step] += float(np.sum(diff * diff / n_entries))
    else:  # every group in step, to see the whole curve rise
        graphs = list(smoother._group_graphs(X, rows, max_columns, pca))
        folds = smoother._row_folds(X.shape[0])
        for k in rows:
            paths = [(graph[1], smoother._path(graph, k, folds, order)) for graph in graphs]
            curve = []
            for v in order:
                for values, path in paths:
                    _, diff = next(path)
                    diff -= values  # the prediction, a fresh array: in place
                    diff *= diff
                    diff /= n_entries
                    totals[k, v] += float(np.sum(diff))
                curve.append(totals[k, v])
                if _has_risen(curve, stop_after_rises):
                    break
            for v in order[len(curve):]:
                totals[k, v] = np.nan
    losses = np.array([[totals[k, v] for v in times] for k in rows])
    return losses[0] if ks is None else losses


def _has_risen(curve, rises):
    """Whether the last ``rises`` values each rose above the one before."""
    return len(curve) > rises and all(a < b for a, b in zip(curve[-rises - 1:-1],
                                                              curve[-rises:]))
