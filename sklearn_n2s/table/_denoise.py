"""One call for analysts: normalise, calibrate and denoise the counts of an AnnData.

:func:`denoise` takes an ``anndata.AnnData`` (read by duck typing: ``.X``, ``.layers``,
``.uns``, ``.n_obs``; anndata itself is never imported here) and

1. normalises the counts once (:class:`LibrarySizeNormalizer`:
   ``sqrt(x / library size * target_sum)`` by default, as MAGIC's tutorial does, or
   scanpy's ``log1p``; sparse kept sparse);
2. calibrates on the normalised values by the *column-partition* (Noise2Self) loss:
   the mean squared error of the J-invariant prediction of every gene group from the
   other genes, with the same ``n_groups`` groups for every candidate —
   a low-rank curve (:class:`LowRankDenoiserCV`: ranks, cross-validated over rows) and
   a diffusion curve (:class:`DiffusionSmoother`, MAGIC's operator, over all cells, the
   smoother being transductive; every diffusion time read off one sweep per gene
   group, :func:`diffusion_path_losses`); ``method='knn'`` gives the uniform kNN curve
   instead (:class:`KNNSmoother`, :func:`knn_path_losses`);
3. ``method='auto'`` keeps the family whose best loss is lower (both losses are
   estimates of the same quantity, ``E||f_J(x) - x_J||^2`` on the same normalised
   values; by the Noise2Self identity they rank the two as the loss against the clean
   values would);
4. writes ``layers[key_added]`` and the curves and the pick to ``uns[uns_key]``.

The normalisation is computed once from all genes, so the J-invariance of the loss is
approximate through the library size: ``x_J`` moves the other genes' normalised values
by its share of the cell's total (Batson & Royer's remark; about ``1 / n_groups`` of the
counts, and only its noise matters). :class:`NormalizedDenoiser` is the exact form for
one estimator (size factors from the unmasked genes), at one fit per candidate; the
molecular cross-validation scorer
(:class:`~sklearn_n2s.model_selection.MolecularCrossValidationScorer`) needs no
partition at all — both remain available to build a search by hand.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import KFold

from ..masking import check_n_groups
from ..utils._table_validation import (
    as_output_dtype,
    check_counts,
    check_dense_size,
    check_table_array,
    row_sums,
)
from ._diffusion import (
    _OVERSAMPLES,
    MAX_PCA_FEATURES,
    ComplementPCA,
    DiffusionSmoother,
    _path_losses,
)
from ._knn import KNNSmoother, knn_path_losses
from ._lowrank import LowRankDenoiserCV
from ._mcv import _means_into
from ._normalize import LibrarySizeNormalizer

METHODS = ("auto", "lowrank", "knn", "diffusion")
# The families 'auto' compares: the diffusion is a kernel-weighted, multi-step kNN
# average, at least as good as the uniform one on every data set measured
# (benchmarks/results/magic.md), and its whole t curve costs one graph per gene group.
AUTO_FAMILIES = ("lowrank", "diffusion")
OUTPUTS = ("normalized", "counts")
TRANSFORMS = ("log1p", "sqrt")
# Cells above which the kNN search is approximate (pynndescent) when it is installed.
#: From this many cells ``n_groups='auto'`` takes four gene groups and
#: ``diffusion_neighbors='auto'`` adds k = 20. Each group's graph is built from the other
#: groups' genes and the output's from all of them: with two groups the calibration
#: scores a noisier graph than the output uses, and can favour less smoothing than the
#: output bears. Four groups (graphs from three quarters of the genes) are the more
#: faithful calibration everywhere but cost two more neighbour searches; below this size
#: they changed no pick (pbmc68k, 20,000 synthetic cells) and would cost the lead on
#: MAGIC's time (1.7x MAGIC on pbmc68k), at 100,000 cells they picked k = 20, t = 1.93
#: for (10, 2), 6.5 % nearer the true square roots, at 0.61 of MAGIC's time
#: (``benchmarks/results/magic.md``, sixth pass).
LARGE_TABLE_CELLS = 50_000
_LARGE_TABLE_N_GROUPS, _SMALL_TABLE_N_GROUPS = 4, 2
_LARGE_TABLE_KS, _SMALL_TABLE_KS = (5, 10, 20), (5, 10)

_APPROXIMATE_FROM = 20_000
# Cells from which the diffusion's searches are the clustered (inverted-file) search of
# ``_clustered_search``: at 20,000 cells x 100 components 0.6 s against 2.6 s for
# scikit-learn's brute force, 99 % of the exact neighbours, no compilation (pynndescent's
# first call in a process spends about a minute compiling).
_DIFFUSION_APPROXIMATE_FROM = 5_000
# Entries per gene group scored by the diffusion curve: a random subset of the group's
# genes (20 to 100 of them; the sweep carries n_folds copies of them), so its cost stops
# growing with the cells past 20,000 while 400,000 entries or more per group (the
# same entries for every t: paired differences) still rank the candidates (at 20,000
# cells 20 genes instead of 30 gave the same pick, the sweep 16 % faster).
_DIFFUSION_SCORED_ENTRIES = 400_000
_DIFFUSION_SCORED_COLUMNS = (20, 100)
# Principal components per gene group in the kNN distance (when a group has more genes).
_KNN_COMPONENTS = 10
# The diffusion curve of a k stops once its loss has risen at this many successive times
# of the t grid (the later times are NaN in the record): on pbmc68k and the synthetic
# counts the curves have one minimum, at t=1 or 2, and the sweep to t=8 cost as much
# again as the one to t=4.
_STOP_AFTER_RISES = 2
# ... or once it has risen by more than this many standard errors at one time (the
# paired change of the squared errors, cells as the units): a rise that large is not
# noise, and with one minimum the curve only rises after it. On pbmc68k the rises
# after the minimum are 5.7 (k=5) and 14 (k=10) standard errors; the sweep then stops
# one time earlier (a quarter of its products there).
_SIGNIFICANT_RISE = 3.0
# The low-rank curve stops after its first row fold when that fold's best loss is above
# the other family's best by more than this share (the best loss of one fold was within
# 0.5 % of the three folds' mean on pbmc68k's 700 cells, within 0.1 % at 20,000).
_SCREEN_MARGIN = 0.02
# Sparse normalised values are made dense up to this many entries (16 MB in float32)
# when at least this share is non-zero: the products of the PCAs and of the low-rank
# folds then run through BLAS (pbmc68k's 700 x 765 at 33 %: 1.3 ms a product against
# 4 ms for the sparse one).
_DENSE_FROM_ENTRIES = 1 << 22
_DENSE_FROM_DENSITY = 0.1
LOSS_DESCRIPTION = ("self-supervised mean squared error of the J-invariant prediction "
                    "(gene groups predicted from the other genes) on "
                    "log1p(counts / library size * target_sum)")


def _check_adata(adata):
    missing = [name for name in ("X", "layers", "uns", "n_obs") if not hasattr(adata, name)]
    if missing:
        raise TypeError(f"denoise expects an anndata.AnnData; got {type(adata).__name__}, "
                        f"without {', '.join(missing)}.")
    if getattr(adata, "isbacked", False):
        raise ValueError(
            "adata is opened in backed mode: denoise works in memory. Read it with "
            "anndata.read_h5ad(path) (sparse counts are small), or use "
            "sklearn_n2s.io.denoise_anndata(adata, estimator, output_file=...) to denoise "
            "it in row chunks with a fixed estimator.")


def _counts(adata, layer):
    if layer is None or layer == "X":
        return adata.X, "X"
    if layer not in adata.layers:
        raise ValueError(f"adata has no layer {layer!r}; its layers are "
                         f"{sorted(adata.layers)} (use layer='X' for adata.X).")
    return adata.layers[layer], layer


def _validated_counts(stored, layer):
    """The counts as a float32 or float64 table (float32 kept), validated.

    A NumPy array or a CSR / CSC matrix of a real dtype is checked here (2-D, not
    empty, finite; :func:`check_counts` then refuses negative, non-integer and
    empty-row counts) and used as is; anything else goes through scikit-learn's
    ``check_array``. The direct path spares a float32 table its round trip through
    float64, and the first ``check_array`` of a process its scan of the installed
    packages' entry points (12-19 ms in this environment, more than a tenth of
    ``denoise`` on pbmc68k's 700 cells).
    """
    name = f"layers[{layer!r}]"
    dtype = getattr(stored, "dtype", None)
    direct = (type(stored) is np.ndarray or sp.issparse(stored)
              and stored.format in ("csr", "csc")) and stored.ndim == 2 and \
        dtype is not None and dtype.kind in "fiu" and min(stored.shape) > 0
    if not direct:
        counts = check_table_array(stored, name=name)
    else:
        counts = stored
        values = counts.data if sp.issparse(counts) else counts
        if dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(f"{name} contains NaN or infinity: raw counts are finite.")
    if counts.dtype not in (np.float32, np.float64):  # integers, float16
        counts = counts.astype(np.float64)
    return check_counts(counts, name=f"the counts ({layer})")


def _check_choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, options))}.")


def _check_grid(name, values, limit, what):
    values = np.atleast_1d(np.asarray(values))
    if values.size == 0 or values.dtype.kind not in "iu" or np.any(values < 1):
        raise ValueError(f"{name} must be positive integers; got {values.tolist()}.")
    kept = values[values <= limit]
    if kept.size == 0:
        raise ValueError(f"every value of {name}={values.tolist()} is more than {what} "
                         f"({limit}).")
    return [int(v) for v in kept]


def _lowrank_curve(Z, ranks, n_groups, cv, random_state, beat=np.inf, pca=None,
                   svd_solver="auto"):
    """The low-rank curve, cross-validated over ``cv`` row folds.

    The first fold is scored alone; when its lowest loss is above ``beat`` (another
    family's best loss) by more than ``_SCREEN_MARGIN``, the low rank cannot win and
    the other folds and the refit on all rows are skipped: returns ``(None, the first
    fold's losses, 1)``; else ``(the fitted LowRankDenoiserCV, mean losses, cv)``.
    With ``pca`` (the diffusion's :class:`ComplementPCA` of Z, holding the Gram
    matrix of all rows), the screening fold's loadings are the leading eigenvectors of
    its training rows' covariance, the Gram matrix less the held-out rows' (one pass
    over those rows instead of a randomized SVD's ten over the others; on pbmc68k
    28 ms against 45 ms, the losses within 3e-4 of the estimator's own); a curve
    that is not screened out is the estimator's, every fold refitted by its solver.
    """
    folds = KFold(cv, shuffle=True, random_state=random_state)
    model = LowRankDenoiserCV(ranks, cv=folds, n_groups=n_groups, svd_solver=svd_solver,
                              random_state=random_state)
    model._validate_params()
    # Z is denoise's own validated table (float32 or float64, dense or CSR)
    model.n_features_in_ = Z.shape[1]
    X = Z.tocsr() if sp.issparse(Z) else Z
    check_n_groups(n_groups, X.shape[1])
    splits = list(folds.split(X))

    train, test = splits[0]
    covariance = None if pca is None else pca.covariance_without(np.sort(test))
    start = None
    if pca is not None and pca.n_components >= max(ranks) + _OVERSAMPLES:
        # The screening fold's subspace iteration starts from the leading eigenvectors
        # of all rows (computed anyway for the output's graph) and takes one product
        # with the training rows' covariance instead of four from a random start. The
        # start has seen the held-out rows, so the fold's loss can only come out a
        # little low (pbmc68k: best 4.3852 against 4.3876): the screen is then more
        # reluctant to drop the low rank, never more eager; a curve that passes is
        # the estimator's own.
        start = pca.all_loadings()[:, :max(ranks) + _OVERSAMPLES]
    first = model._fold_losses(X, train, test, ranks, covariance, start)
    if first.min() > beat * (1 + _SCREEN_MARGIN):
        return None, np.asarray(first, dtype=np.float64), 1
    # not screened out: the CV estimator's own curve, every fold by its own solver
    losses = np.column_stack(
        [first if covariance is None else model._fold_losses(X, train, test, ranks)]
        + [model._fold_losses(X, train, test, ranks) for train, test in splits[1:]])
    model._finish_fit(X, ranks, losses)
    return model, np.asarray(model.mean_losses_, dtype=np.float64), cv


def _algorithm(Z, algorithm, start=_APPROXIMATE_FROM, approximate=None):
    """'auto': ``approximate`` (else pynndescent when it is installed) from ``start``
    cells."""
    if algorithm != "auto":
        return algorithm
    if approximate is not None:
        return approximate if Z.shape[0] >= start else "exact"
    if Z.shape[0] >= start:
        try:
            import pynndescent  # noqa: F401
            return "nndescent"
        except ImportError:  # pragma: no cover - depends on the environment
            pass
    return "exact"


def _resolved_size_defaults(n_groups, diffusion_neighbors, n_cells, n_genes):
    """``n_groups`` and ``diffusion_neighbors``, their ``'auto'`` resolved for the table's
    size (see :data:`LARGE_TABLE_CELLS`); any other string refused."""
    for name, value, kind in (("n_groups", n_groups, "an int"),
                              ("diffusion_neighbors", diffusion_neighbors, "a sequence of int")):
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"{name} must be 'auto' or {kind}; got {value!r}.")
    large = n_cells >= LARGE_TABLE_CELLS
    if isinstance(n_groups, str):
        n_groups = min(_LARGE_TABLE_N_GROUPS, n_genes) if large else _SMALL_TABLE_N_GROUPS
    if isinstance(diffusion_neighbors, str):
        diffusion_neighbors = _LARGE_TABLE_KS if large else _SMALL_TABLE_KS
    return n_groups, diffusion_neighbors


def _knn_smoother(Z, k, n_groups, algorithm, random_state):
    algorithm = _algorithm(Z, algorithm)
    per_group = Z.shape[1] / n_groups
    components = _KNN_COMPONENTS if per_group > _KNN_COMPONENTS else None
    return KNNSmoother(k, n_groups=n_groups, search="per_group", n_components=components,
                       algorithm=algorithm, random_state=random_state)


def denoise(adata, method="auto", *, layer="counts", n_components=(2, 4, 8, 16, 32, 64),
            n_neighbors=(5, 10, 20, 40, 80), t=(1, 2, 3, 4, 6, 8), diffusion_neighbors="auto",
            target_sum=1e4, transform="sqrt", output="normalized", n_groups="auto",
            cv=3, knn_algorithm="auto", key_added="denoised", uns_key="n2s", copy=False,
            random_state=0):
    """Normalise, calibrate (self-supervised) and denoise the counts of ``adata``.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells in rows, genes in columns; raw integer counts in ``layers[layer]``
        (dense or sparse), no cell without counts. Held in memory (not backed).
    method : {'auto', 'lowrank', 'diffusion', 'knn'}, default='auto'
        ``'lowrank'``: PCA denoising, the rank from ``n_components``. ``'diffusion'``:
        MAGIC's diffusion (:class:`DiffusionSmoother`), the time from ``t``. ``'knn'``:
        kNN smoothing, k from ``n_neighbors``. ``'auto'``: the low-rank and the
        diffusion curves, the lower loss wins (with more than 8,192 genes, whose
        covariance matrix the diffusion's distances need, the low-rank and the kNN
        curves).
    layer : str or None, default='counts'
        Where the counts are: a key of ``adata.layers``, or ``'X'`` / None for
        ``adata.X``.
    n_components : sequence of int, default=(2, 4, 8, 16, 32, 64)
        Candidate ranks (those above ``min(n_cells * (cv - 1) / cv, n_genes)`` are
        dropped).
    n_neighbors : sequence of int, default=(5, 10, 20, 40, 80)
        Candidate numbers of neighbours of ``method='knn'`` (those not below
        ``n_cells`` are dropped).
    t : sequence of int, default=(1, 2, 3, 4, 6, 8)
        Candidate diffusion times (all scored in one sweep per gene group, on at most
        100 of its genes drawn at random: 400,000 entries, 20 genes at least). The
        sweep of a k stops once its loss has risen at two successive times, or at
        one time by more than three standard errors (the paired per-cell change of
        the squared errors); the later times are not computed (NaN in the record).
        Between two successive integers of the grid, the mixture
        ``(1 - f) P^t + f P^(t+1)`` with the lowest loss is a candidate too (its loss
        is quadratic in f, read off the sweep): the chosen t may be a fraction,
        ``DiffusionSmoother``'s interpolation between two steps.
    diffusion_neighbors : sequence of int or 'auto', default='auto'
        Candidate bandwidth neighbours of the diffusion kernel (MAGIC's ``knn``, 5 at
        its default); every (k, t) pair is scored, from one neighbour search per gene
        group. Those not below ``n_cells`` are dropped. ``'auto'``: (5, 10), and
        (5, 10, 20) from :data:`LARGE_TABLE_CELLS` cells.
    target_sum : float, default=1e4
        Every cell is scaled to this total before ``transform``.
    transform : {'sqrt', 'log1p'}, default='sqrt'
        Variance-stabilising transform of the scaled counts, in which the denoiser
        works and the loss is measured: the square root (what MAGIC's tutorial uses;
        expected counts are then the square of the output), or scanpy's ``log1p``.
        The square root is the default because it measured better against held-out
        molecules on every data set of ``benchmarks/results/magic.md`` (``expm1`` of
        smoothed log values is biased low as counts).
    output : {'normalized', 'counts'}, default='normalized'
        What the denoised layer holds: normalised (transformed) values, or expected
        counts at each cell's own library size. With ``transform='sqrt'`` the counts
        are the Poisson means whose expected square roots are the denoised roots
        (brought to the cell's size; :func:`~sklearn_n2s.table.mean_from_expected_sqrt`),
        not the squares of the roots, which are biased low (by about 1/4 at large
        counts, and tenfold where a count of 0.1 is expected). On the synthetic
        counts of ``benchmarks/results/magic.md`` this cut the held-out Poisson
        loss by 20 % and the error on the true rates by 70 %; the square-root
        losses do not change. With ``'log1p'``: ``expm1`` of the output.
    n_groups : int or 'auto', default='auto'
        Gene groups of the column partition (the same for every candidate; the
        diffusion curve builds one graph per group, from the other groups' genes).
        The calibration's graphs see ``1 - 1 / n_groups`` of the genes, the output's all
        of them, so with few groups the curve can favour less smoothing than the output
        would bear; each group costs a neighbour search. ``'auto'``: two groups (three
        searches in all, the same picks as four on pbmc68k and 20,000 synthetic cells
        at three quarters of the time), four from :data:`LARGE_TABLE_CELLS` cells (on
        100,000 synthetic cells four groups with k up to 20 picked k=20, t=1.93 where
        two picked k=10, t=2, and cut the error against the true square roots by
        6.5 %, at twice the time; ``benchmarks/results/magic.md``).
    cv : int, default=3
        Shuffled row folds of the low-rank calibration.
    knn_algorithm : {'auto', 'exact', 'nndescent', 'clustered'}, default='auto'
        Neighbour search of the diffusion and kNN curves. ``'auto'``: for the
        diffusion, the clustered (inverted-file) search from 5,000 cells (99 % of the
        exact neighbours at 20,000 cells, a quarter of the brute force's time; one
        search per gene group and one for the output), else exact (up to 1,000
        cells a NumPy brute force, without scikit-learn's 20 ms of set-up on its first
        call in a process); for the kNN curve
        pynndescent from 20,000 cells when installed (at 100,000 cells its per-group
        search matched the exact loss at a quarter of the time:
        ``benchmarks/results/knn.md``), else exact. ``'clustered'`` is for the
        diffusion only. The diffusion measures distances on 100 principal components
        (of the other gene groups for a group's graph), the kNN curve on 10 per group.
    key_added : str, default='denoised'
        Layer that receives the result.
    uns_key : str, default='n2s'
        Key of ``adata.uns`` that receives the calibration record.
    copy : bool, default=False
        Work on ``adata.copy()`` and return it; otherwise modify ``adata`` and return
        None (scanpy's convention).
    random_state : int, default=0
        Seeds the folds, the gene groups and the searches.

    Returns
    -------
    adata : anndata.AnnData or None
        With ``copy=True`` the denoised copy, else None.

    Notes
    -----
    ``adata.uns[uns_key]`` holds: ``method`` (the family chosen), ``params`` (its
    parameters), ``loss`` (what the curves measure), ``lowrank``, ``diffusion`` or
    ``knn`` (each ``{'values': candidates, 'loss': mean losses}``; the diffusion's
    curve is over t at the chosen k, with ``n_neighbors`` and the whole ``grid`` of
    losses, k by t, NaN where the sweep had stopped, and ``fractions`` and ``mixed``:
    at ``[k, t]``, the best share of step t + 1 and its loss, where t + 1 was scored;
    the low rank's has ``folds``:
    with ``method='auto'`` its first row fold is scored alone, and when its best loss
    is more than 2 % above the other family's the curve stays that fold's
    (``folds`` 1) and the low rank is out), ``layer``, ``target_sum``,
    ``output``, ``n_groups`` and ``estimator`` (the fitted model's repr).

    Examples
    --------
    >>> import numpy as np, anndata
    >>> from sklearn_n2s.table import denoise
    >>> rng = np.random.default_rng(0)  # rank-3 rates
    >>> rates = rng.gamma(2.0, 1.0, (300, 3)) @ rng.gamma(2.0, 1.0, (3, 60))
    >>> adata = anndata.AnnData(rng.poisson(rates).astype(np.float32))
    >>> denoise(adata, layer="X", n_components=[1, 3, 10])
    >>> adata.uns["n2s"]["method"], adata.uns["n2s"]["params"]
    ('diffusion', {'t': 1, 'n_neighbors': 10})
    >>> [round(float(v), 3) for v in adata.uns["n2s"]["lowrank"]["loss"]]
    [5.853, 5.444, 7.61]
    >>> [round(float(v), 3) for v in adata.uns["n2s"]["diffusion"]["loss"]]
    [5.282, 5.377, nan, nan, nan, nan]
    >>> adata.layers["denoised"].shape, adata.layers["denoised"].dtype
    ((300, 60), dtype('float32'))
    """
    _check_adata(adata)
    _check_choice("method", method, METHODS)
    _check_choice("output", output, OUTPUTS)
    _check_choice("transform", transform, TRANSFORMS)
    _check_choice("knn_algorithm", knn_algorithm, ("auto", "exact", "nndescent", "clustered"))
    if copy:
        adata = adata.copy()
    stored, layer = _counts(adata, layer)
    dtype = np.float32 if getattr(stored, "dtype", None) == np.float32 else np.float64
    counts = _validated_counts(stored, layer)
    if counts.dtype != dtype:  # float32 counts are computed in float32 (half the memory)
        counts = counts.astype(dtype)
    n_cells, n_genes = counts.shape
    check_dense_size(n_cells, n_genes, "the denoised layer")
    n_groups, diffusion_neighbors = _resolved_size_defaults(n_groups, diffusion_neighbors,
                                                            n_cells, n_genes)
    if not isinstance(cv, (int, np.integer)) or isinstance(cv, bool) or cv < 2:
        raise ValueError(f"cv must be an int >= 2; got {cv!r}.")

    families = AUTO_FAMILIES if method == "auto" else (method,)
    if method == "auto" and n_genes > MAX_PCA_FEATURES:
        # the diffusion's distances need the genes' covariance matrix: too many genes
        families = ("lowrank", "knn")
    # Every grid is checked before any work.
    grids = {}
    if "lowrank" in families:
        grids["lowrank"] = _check_grid("n_components", n_components,
                                       min(n_cells - -(-n_cells // cv), n_genes),
                                       "the rank the smallest training fold allows")
    if "diffusion" in families:
        grids["diffusion"] = _check_grid("t", t, np.inf, "no limit")
        diffusion_ks = _check_grid("diffusion_neighbors", diffusion_neighbors,
                                   n_cells - 1, "n_cells - 1")
    if "knn" in families:
        grids["knn"] = _check_grid("n_neighbors", n_neighbors, n_cells - 1, "n_cells - 1")

    # fit and transform of LibrarySizeNormalizer, on the counts validated above
    sizes = row_sums(counts)
    normalizer = LibrarySizeNormalizer(target_sum, log=transform == "log1p")
    normalizer._validate_params()
    normalizer._fit_sizes(sizes, n_genes)
    Z = as_output_dtype(normalizer._normalize(counts, sizes), counts.dtype)
    if transform == "sqrt":
        # in place: Z is a fresh array without duplicated entries (scale_rows sums
        # them; a sparse matrix's sqrt() would sort its indices first)
        np.sqrt(Z.data if sp.issparse(Z) else Z, out=Z.data if sp.issparse(Z) else Z)
    # the low rank's SVD solver: 'auto' as LowRankDenoiserCV's, also once Z is made
    # dense below (the exact SVD of 'auto' on small dense data took 60 ms on pbmc68k's
    # 700 x 765)
    svd_solver = "randomized" if sp.issparse(Z) else "auto"
    if sp.issparse(Z) and Z.shape[0] * Z.shape[1] <= _DENSE_FROM_ENTRIES and \
            Z.nnz >= _DENSE_FROM_DENSITY * Z.shape[0] * Z.shape[1]:
        Z = Z.toarray()  # small and dense enough: every product through BLAS
    record = {"loss": LOSS_DESCRIPTION.replace("log1p", transform), "layer": layer,
              "target_sum": float(target_sum), "transform": transform,
              "output": output, "n_groups": int(n_groups)}
    candidates = {}
    if "diffusion" in grids:
        ts = grids["diffusion"]
        smoother = DiffusionSmoother(max(ts), n_neighbors=max(diffusion_ks),
                                     n_groups=n_groups,
                                     algorithm=_algorithm(Z, knn_algorithm,
                                                          _DIFFUSION_APPROXIMATE_FROM,
                                                          "clustered"),
                                     random_state=random_state)
        smoother._validate_params()
        smoother._fit_table(Z)  # Z validated: one scikit-learn validation fewer
        scored = int(np.clip(_DIFFUSION_SCORED_ENTRIES // n_cells,
                             *_DIFFUSION_SCORED_COLUMNS))
        # one covariance matrix for the calibration's graphs and transform's
        pca = ComplementPCA(Z, smoother.n_components)
        grid, fractions, mixed = _path_losses(
            smoother, Z, ts, diffusion_ks, scored, pca,
            stop_after_rises=_STOP_AFTER_RISES, significant_rise=_SIGNIFICANT_RISE,
            mixtures=True)
        k_index, t_index = np.unravel_index(int(np.nanargmin(grid)), grid.shape)
        best = {"t": int(ts[t_index]), "n_neighbors": int(diffusion_ks[k_index])}
        best_loss = float(grid[k_index, t_index])
        if np.any(np.isfinite(mixed)) and np.nanmin(mixed) < best_loss:
            # between two steps: t + f, f the mixture's share of the later step
            k_index, t_index = np.unravel_index(int(np.nanargmin(mixed)), mixed.shape)
            best = {"t": float(ts[t_index] + fractions[k_index, t_index]),
                    "n_neighbors": int(diffusion_ks[k_index])}
            best_loss = float(mixed[k_index, t_index])
        # the curve of the chosen k (the others in 'grid')
        record["diffusion"] = {"values": np.asarray(ts), "loss": grid[k_index],
                               "n_neighbors": np.asarray(diffusion_ks), "grid": grid,
                               "fractions": fractions, "mixed": mixed}
        candidates["diffusion"] = (best_loss, smoother.set_params(**best), best)
    if "knn" in grids:
        ks = grids["knn"]
        smoother = _knn_smoother(Z, max(ks), n_groups, knn_algorithm, random_state).fit(Z)
        losses = knn_path_losses(smoother, Z, ks)
        best = ks[int(np.argmin(losses))]
        record["knn"] = {"values": np.asarray(ks), "loss": losses}
        candidates["knn"] = (float(losses.min()), smoother.set_params(n_neighbors=best),
                             {"n_neighbors": int(best)})
    if "lowrank" in grids:
        # last: with another family's best loss known, one fold may show it cannot win
        ranks = grids["lowrank"]
        beat = min((loss for loss, _, _ in candidates.values()), default=np.inf)
        lowrank, losses, n_folds = _lowrank_curve(
            Z, ranks, n_groups, cv, random_state, beat,
            pca if "diffusion" in grids and pca.n_components is not None else None,
            svd_solver)
        record["lowrank"] = {"values": np.asarray(ranks), "loss": losses,
                             "folds": int(n_folds)}
        if lowrank is not None:
            candidates["lowrank"] = (float(losses.min()), lowrank,
                                     {"n_components": int(lowrank.n_components_)})
    # ties go to the low rank (the order of the families before the screening)
    chosen = min(sorted(candidates, key=lambda name: name != "lowrank"),
                 key=lambda name: candidates[name][0])
    _, model, params = candidates[chosen]
    if chosen == "diffusion":
        # Z is this call's own table, read for the last time: the walk's first buffer
        denoised = model._diffuse(Z, pca, overwrite=True)
    else:
        denoised = np.asarray(model.transform(Z))
    if output == "counts":
        if transform == "sqrt":
            # The denoised value estimates E[sqrt(x / size * target_sum)]: times
            # sqrt(size / target_sum), E[sqrt(x)], whose Poisson mean is the expected
            # count (its square is biased low: 0.1 -> 0.01 where the mean is ~0.1).
            denoised = np.asarray(denoised, dtype=dtype)
            denoised *= np.sqrt(sizes / target_sum).astype(dtype)[:, np.newaxis]
            denoised = _means_into(denoised, denoised)  # in place
        else:
            denoised = normalizer.inverse_transform(denoised,
                                                    library_size=sizes)
    adata.layers[key_added] = denoised.astype(dtype, copy=False)
    record.update(method=chosen, params=params, estimator=repr(model))
    adata.uns[uns_key] = record
    return adata if copy else None

