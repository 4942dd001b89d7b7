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

A time between two steps, ``t = s + f``, is the mixture ``(1 - f) P^s X + f P^(s+1) X``
(its J-invariant prediction the same mixture of the two steps' predictions, so it is
J-invariant too, and its loss is quadratic in f: :func:`_path_losses` reads the best f
between two scored steps off the sweep).

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
from scipy.sparse import _sparsetools
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
            # the covariance only (the Gram matrix of the centred rows is n times it):
            # one float64 n_features^2 array fewer
            self.covariance = np.empty((X.shape[1], X.shape[1]))
            np.divide(centred.T @ centred, n, out=self.covariance)
            self.gram = None
            del centred

    def covariance_without(self, rows):
        """``(covariance, mean, n)`` of the rows *not* in ``rows`` (a training fold),
        from the stored Gram matrix minus that of ``rows``: one pass over ``rows``
        instead of a randomized SVD's passes over the fold (``denoise``'s low-rank
        curve). Dense float32 rows give a float32 covariance (what the subspace
        iteration reads), each entry the float64 expression rounded once."""
        held = self.X[rows]
        n = self.X.shape[0] - len(rows)
        mean = (self.mean * self.X.shape[0]
                - np.asarray(held.sum(axis=0, dtype=np.float64)).ravel()) / n
        # in place: a few n_features^2 arrays fewer (each a fresh allocation)
        if sp.issparse(held):
            covariance = np.subtract(self.gram, _gram(held))
            covariance /= n
            shift = mean
        else:  # the covariance is of the centred rows
            held = held - self.mean.astype(held.dtype)
            covariance = held.T @ held  # in the rows' dtype: float32 kept
            shift = mean - self.mean
        # (N covariance - held's) / n less the outer product of the shift, a few rows
        # at a time: no n_features^2 float64 temporary (4.7 MB of fresh pages at 765
        # genes, a third of the fold's time in a process's first call)
        total = self.X.shape[0]
        step = max(1, (1 << 16) // max(len(shift), 1))
        for start in range(0, len(shift), step):
            block = slice(start, start + step)
            if sp.issparse(held):
                covariance[block] -= np.multiply.outer(shift[block], shift)
            else:
                update = self.covariance[block] * total
                update -= covariance[block]
                update /= n
                update -= np.multiply.outer(shift[block], shift)
                covariance[block] = update
        return covariance, mean, n

    def all_loadings(self):
        """The leading eigenvectors of the covariance of all columns (``transform``'s
        graph), computed once: ``denoise`` also starts its low-rank screening fold
        from them."""
        if getattr(self, "_all_loadings", None) is None:
            n_keep = min(self.n_components, self.X.shape[1], self.X.shape[0])
            self._all_loadings = top_eigenvectors(self.covariance, n_keep)
        return self._all_loadings

    def coordinates(self, keep):
        """The rows' coordinates on the leading components of the columns ``keep``."""
        X = self.X
        if self.n_components is None:
            block = X[:, keep]
            return to_dense(block) if sp.issparse(block) else np.asarray(block, np.float64)
        n_keep = min(self.n_components, len(keep), X.shape[0])
        if len(keep) == X.shape[1]:  # all columns (transform's graph): no block copy
            loadings = self.all_loadings()
        else:
            loadings = np.zeros((X.shape[1], n_keep))
            loadings[keep] = top_eigenvectors(self.covariance[np.ix_(keep, keep)], n_keep)
        product = np.asarray(X @ loadings.astype(X.dtype, copy=False))  # float32 X: in
        # float32, centred in place (the search reads float32 coordinates)
        if product.dtype not in (np.float32, np.float64):
            product = product.astype(np.float64)
        product -= (self.mean @ loadings).astype(product.dtype)
        return product


def top_eigenvectors(matrix, n_vectors, *, return_values=False, start=None,
                     iterations=_POWER_ITERATIONS):
    """The ``n_vectors`` leading eigenvectors of a symmetric positive semi-definite
    matrix, as columns, by decreasing eigenvalue (and the eigenvalues, with
    ``return_values``).

    Small matrices (or most of the spectrum): LAPACK's ``eigh``. Otherwise a subspace
    iteration from a fixed random start (``_POWER_ITERATIONS`` products with the
    matrix, then Rayleigh-Ritz), as randomized PCA does: a tenth of ``eigh``'s time on
    765 genes, and a deterministic function of ``matrix`` alone (the graph of a gene
    group still never depends on that group's values). ``start``: another first basis
    (columns; at least ``n_vectors``), with ``iterations`` products from it.
    """
    size = len(matrix)
    if size <= 2 * n_vectors + _OVERSAMPLES:
        values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[size - n_vectors,
                                                                      size - 1])
        return (vectors[:, ::-1], values[::-1]) if return_values else vectors[:, ::-1]
    # The iterations' products in float32 (the matrix scaled to a unit largest diagonal
    # entry: no overflow), LU normalisation between them (as scikit-learn's randomized
    # SVD), then one QR and the Rayleigh-Ritz step: 17 ms against 30 ms (float64, QR
    # at every step) at 765 x 765, the vectors within 1e-7 of those. The
    # start stays the float64 draw (a float32 draw is another start: the trailing
    # vectors of an unconverged iteration move, and pbmc68k's losses by 2e-3).
    scale = float(np.max(np.abs(np.diag(matrix)), initial=0.0))
    reduced = matrix.astype(np.float32)  # scaled in place: no float64 temporary
    if scale > 0:
        reduced *= np.float32(1 / scale)
    basis = _start(size, n_vectors + _OVERSAMPLES) if start is None else \
        np.asarray(start, dtype=np.float32)
    for i in range(iterations):
        basis = reduced @ basis
        if i < iterations - 1:  # the last product goes to the QR below as it is: an
            # LU first would change its columns, not their span (0.4 ms an iteration)
            basis = scipy.linalg.lu(basis, permute_l=True, overwrite_a=True,
                                    check_finite=False)[0]
    if iterations == 0:
        basis = basis.copy()  # the QR below overwrites it
    # The QR in float32, made orthonormal to float64's precision by one Cholesky step
    # (B R^-1, R^T R = B^T B: a small product and a triangular solve), and the
    # Rayleigh-Ritz product in float32: the rotation within the basis is then
    # float32-accurate (the coordinates it gives are float32 anyway), the vectors
    # orthonormal to 1e-15; 4 -> 1.7 ms (QR) and 4 -> 1.5 ms (product) at 765 x 120.
    basis = scipy.linalg.qr(basis, mode="economic", overwrite_a=True,
                            check_finite=False)[0].astype(np.float64)
    cholesky = np.linalg.cholesky(basis.T @ basis)  # lower: L L^T = B^T B
    # B L^-T: L is within 1e-7 of the identity (B is float32-orthonormal), so its
    # explicit inverse is as good as a triangular solve, and one product is faster
    basis = basis @ np.linalg.inv(cholesky).T
    single = basis.astype(np.float32)
    values, vectors = np.linalg.eigh((single.T @ (reduced @ single)).astype(np.float64))
    vectors = basis @ vectors[:, ::-1][:, :n_vectors]
    values = values[::-1][:n_vectors] * (scale if scale > 0 else 1.0)
    return (vectors, values) if return_values else vectors


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


def kernel_operator(distances, indices, n_neighbors, decay=1.0, dtype=np.float64):
    """MAGIC's Markov operator from sorted neighbour lists (CSR, rows sum to 1).

    Affinity of row i to its ``3 * n_neighbors`` nearest other rows j (the first
    columns of the lists): ``exp(-(d_ij / b_i)^decay)``, with ``b_i`` the distance to
    i's ``n_neighbors``-th nearest other row; below 1e-4 dropped; 1 to itself.
    Symmetrised (``(K + K^T) / 2``) and divided by the row sums; its values in
    ``dtype`` (cast in place: ``astype`` of a CSR matrix sorts its indices first).
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
    if kernel.dtype != dtype:
        kernel.data = kernel.data.astype(dtype)
    return kernel


def diffusion_operator(features, n_neighbors, decay=1.0, *, algorithm="exact",
                       random_state=None, dtype=np.float64):
    """MAGIC's Markov operator on the rows of ``features`` (see :func:`kernel_operator`)."""
    width = min(_SUPPORT_FACTOR * n_neighbors, features.shape[0] - 1)
    distances, indices = neighbour_lists(features, width, algorithm=algorithm,
                                         random_state=random_state)
    return kernel_operator(distances, indices, n_neighbors, decay, dtype)


def _split_time(t):
    """``(whole steps, fraction of the next step)`` of a diffusion time."""
    steps = int(np.floor(t))
    return steps, float(t - steps)


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
    spare = np.empty_like(state)
    while wanted:
        state, spare = _product_into(operator, state, spare), state
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


def _product_into(operator, dense, out):
    """``operator @ dense`` (CSR times C-contiguous, one dtype) written into ``out``.

    The sweep alternates two buffers instead of a fresh result per step: in a fresh
    process every new array of a few MB is new pages to the kernel (the first call
    of ``denoise`` on pbmc68k spent about 15 ms more than the next ones in such
    faults, a tenth of its time). scipy's own kernel for ``@`` (``csr_matvecs``,
    which adds to its output); the plain product where it is not there.
    """
    kernel = getattr(_sparsetools, "csr_matvecs", None)
    if kernel is None or operator.format != "csr" or dense.dtype != operator.dtype \
            or out.dtype != dense.dtype or not dense.flags.c_contiguous:
        return operator @ dense  # pragma: no cover - another scipy
    out.fill(0)
    kernel(operator.shape[0], operator.shape[1], dense.shape[1], operator.indptr,
           operator.indices, operator.data, dense.ravel(), out.ravel())
    return out


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
    t : float, default=3
        Diffusion time: the number of times the operator is applied. A fraction
        interpolates between the two whole times around it:
        ``(1 - f) P^floor(t) X + f P^(floor(t) + 1) X`` with ``f = t - floor(t)`` (a
        walk that takes its last step with probability f), so the diffusion can be
        set between two steps; :func:`denoise` reads the best f between two scored
        times off the sweep (:func:`diffusion_path_losses`, ``mixtures``).
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
        "t": [IntervalNotBool(Real, 1, None, closed="left")],
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
        return self._fit_table(check_table(self, X, reset=True))

    def _fit_table(self, X):
        """``fit`` of a table already validated (``denoise`` validates its normalised
        values once: each of scikit-learn's validations re-reads the whole table, and
        the first in a process scans the installed packages' entry points, 12-19 ms)."""
        self.n_features_in_ = X.shape[1]
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
        scale = float(max(coordinates.max(initial=0.0), -coordinates.min(initial=0.0)))
        if coordinates.dtype != np.float32:
            coordinates = coordinates / scale if scale > 0 else coordinates
            return coordinates.astype(np.float32)
        if scale > 0:
            coordinates *= np.float32(1 / scale)
        return coordinates

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

    def _diffuse(self, X, pca=None, overwrite=False):
        """``transform`` of a validated X; ``pca``: X's ComplementPCA when already built
        (``denoise`` shares the one of the calibration); ``overwrite``: X (dense, in
        the diffusion's dtype) may be used as one of the two buffers of the walk
        (``denoise``'s own normalised table: one dense copy fewer)."""
        check_dense_size(*X.shape)
        self._check_n_neighbors(X.shape[0])
        pca = ComplementPCA(X, self.n_components) if pca is None else pca
        features = self._features(pca, np.arange(X.shape[1]))
        # float32 data are diffused in float32 (the output's precision): half the
        # memory of the dense copies and of the products' traffic.
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        operator = diffusion_operator(features, self.n_neighbors, self.decay,
                                      algorithm=self.algorithm,
                                      random_state=self.random_state, dtype=dtype)
        if sp.issparse(X):
            out = X.toarray().astype(dtype, copy=False)
        elif overwrite and X.dtype == dtype and X.flags.c_contiguous:
            out = X
        else:
            out = np.array(X, dtype=dtype)
        steps, fraction = _split_time(self.t)
        spare = np.empty_like(out)
        for _ in range(steps):
            out, spare = _product_into(operator, out, spare), out
        if fraction:
            # (1 - f) P^s X + f P^(s+1) X, as the calibration's mixture of two times
            later = _product_into(operator, out, spare)
            out *= 1 - fraction
            later *= fraction
            out += later
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
        operator = kernel_operator(distances, indices, k, self.decay, dtype)
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
        steps, fraction = _split_time(self.t)
        times = [steps, steps + 1] if fraction else [steps]
        for group, values, _, path in self._group_paths(X, times):
            predictions = [step_prediction for _, step_prediction in path]
            prediction[:, group] = predictions[0] if not fraction else \
                (1 - fraction) * predictions[0] + fraction * predictions[1]
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
                 stop_after_rises=None, significant_rise=None, mixtures=False):
    """:func:`diffusion_path_losses` of a validated X, with X's ComplementPCA when
    already built.

    With ``stop_after_rises`` (an int), the sweep of a k stops once its loss (over all
    groups) has risen at that many successive times of the sorted grid, or, with
    ``significant_rise`` (a number z), once it has risen by more than z standard
    errors at one time; the times not reached are NaN (the curve of diffusion is
    unimodal in t on every data set measured: once past its minimum, more steps only
    blur more). The standard error of a rise is that of the mean of the paired
    per-row changes of the squared errors (the cells as the units: a cell's genes
    share its neighbours, so its entries are not independent).

    With ``mixtures``, also returns ``(fractions, mixed)``, both shaped as the losses:
    at ``[k, i]``, for times ``t[i]`` and ``t[i] + 1`` both scored, the share f of the
    later one whose mixture ``(1 - f) prediction(t) + f prediction(t + 1)`` has the
    lowest loss, and that loss (NaN elsewhere). The loss of a mixture is quadratic in
    f, ``(1 - f)^2 S_aa + 2 f (1 - f) S_ab + f^2 S_bb``, with ``S_ab`` the mean product
    of the two times' residuals (accumulated in the sweep): the minimiser is
    ``(S_aa - S_ab) / (S_aa - 2 S_ab + S_bb)``, clipped to [0, 1]. A mixture of two
    J-invariant predictions is J-invariant, so the fraction is calibrated by the same
    self-supervised loss (``DiffusionSmoother(t=t + f)`` gives that loss).
    """
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
    cross = {(k, v): 0.0 for k in rows for v in order}  # S_ab of times v - 1 and v
    n_entries = X.shape[0] * sum(min(len(group), max_columns or len(group))
                                 for group in smoother.groups_)
    if stop_after_rises is None:  # one group at a time: the memory of one sweep
        for _, values, k, path in smoother._group_paths(X, order, max_columns, ks, pca):
            previous = None
            for step, residual in path:
                residual -= values  # the prediction, a fresh array: in place
                totals[k, step] += float(np.vdot(residual, residual)) / n_entries
                if mixtures and previous is not None and previous[0] == step - 1:
                    cross[k, step] += float(np.vdot(previous[1], residual)) / n_entries
                previous = (step, residual) if mixtures else None
    else:  # every group in step, to see the whole curve rise
        graphs = list(smoother._group_graphs(X, rows, max_columns, pca))
        folds = smoother._row_folds(X.shape[0])
        for k in rows:
            paths = [(graph[1], smoother._path(graph, k, folds, order)) for graph in graphs]
            previous = [None] * len(paths)
            curve, squares = [], None
            for i, v in enumerate(order):
                row_squares = np.zeros(X.shape[0])  # per row: the sum of squared errors
                for g, (values, path) in enumerate(paths):
                    _, residual = next(path)
                    residual -= values  # the prediction, a fresh array: in place
                    row_squares += np.einsum("ij,ij->i", residual, residual)
                    if mixtures and previous[g] is not None and order[i - 1] == v - 1:
                        cross[k, v] += float(np.vdot(previous[g], residual)) / n_entries
                    previous[g] = residual if mixtures else None
                totals[k, v] = float(row_squares.sum()) / n_entries
                change = None if squares is None else row_squares - squares
                squares = row_squares
                curve.append(totals[k, v])
                if _has_risen(curve, stop_after_rises) or significant_rise is not None \
                        and change is not None and _rise_is_significant(
                            change, n_entries, significant_rise):
                    break
            for v in order[len(curve):]:
                totals[k, v] = cross[k, v] = np.nan
    losses = np.array([[totals[k, v] for v in times] for k in rows])
    if not mixtures:
        return losses[0] if ks is None else losses
    fractions, mixed = np.full(losses.shape, np.nan), np.full(losses.shape, np.nan)
    for r, k in enumerate(rows):
        for i, v in enumerate(times):
            if (k, v + 1) in totals and np.isfinite(totals[k, v + 1]):
                fractions[r, i], mixed[r, i] = _best_mixture(
                    totals[k, v], cross[k, v + 1], totals[k, v + 1])
    if ks is None:
        return losses[0], fractions[0], mixed[0]
    return losses, fractions, mixed


def _best_mixture(s_aa, s_ab, s_bb):
    """``(f, loss)``: the f in [0, 1] minimising ``(1-f)^2 s_aa + 2 f (1-f) s_ab +
    f^2 s_bb`` (the mean squared error of ``(1 - f) a + f b`` from the mean squared
    errors of a and b and the mean product of their residuals) and its value."""
    curvature = s_aa - 2 * s_ab + s_bb  # the mean squared difference of a and b: >= 0
    fraction = float(np.clip((s_aa - s_ab) / curvature, 0.0, 1.0)) if curvature > 0 \
        else 0.0
    loss = ((1 - fraction) ** 2 * s_aa + 2 * fraction * (1 - fraction) * s_ab
            + fraction ** 2 * s_bb)
    return fraction, float(loss)


def _rise_is_significant(change, n_entries, z):
    """Whether the mean change of the squared errors, ``sum(change) / n_entries``, is
    above z of its standard errors (the rows' changes as independent draws)."""
    n = len(change)
    rise = change.sum() / n_entries
    spread = np.sqrt(n * change.var()) / n_entries if n > 1 else np.inf
    return bool(rise > z * spread)


def _has_risen(curve, rises):
    """Whether the last ``rises`` values each rose above the one before."""
    return len(curve) > rises and all(a < b for a, b in zip(curve[-rises - 1:-1],
                                                              curve[-rises:]))
