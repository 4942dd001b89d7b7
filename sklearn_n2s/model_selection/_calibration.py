"""Calibration helpers shared by the demo and the command line.

:func:`calibrate` is a :class:`~sklearn.model_selection.GridSearchCV` with the
self-supervised scorer and a progress bar; :func:`calibrate_rank_path` does the same for
the rank of a low-rank table model through :class:`~sklearn_n2s.LowRankDenoiserCV`'s
path (one decomposition per fold for every rank), on library-size normalised counts
when asked (as the README's single-cell pipeline does); :func:`results_rows` and
:func:`format_table` print either kind of search, :func:`estimator_name` names the model
the same way everywhere (tables, plots, messages).
"""

import numpy as np
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.pipeline import Pipeline, make_pipeline

from ..table import LibrarySizeNormalizer, LowRankDenoiserCV
from ..utils._progress import ProgressScorer, progress
from ._scorer import SelfSupervisedScorer


def calibrate(estimator, grid, X, *, cv, quiet=False, desc="calibrating", scoring=None):
    """``GridSearchCV`` with the self-supervised scorer and a progress bar; fitted search.

    Parameters
    ----------
    estimator : J-invariant estimator
        Cloned for every candidate; scored with
        :class:`~sklearn_n2s.SelfSupervisedScorer`.
    grid : dict
        Parameter grid; an empty dict scores the estimator as it is.
    X : array-like
        The noisy data (an image stack or a table).
    cv : cross-validation generator
        A splitter with ``get_n_splits``, e.g. :class:`~sklearn_n2s.FullSplit` for
        filters that learn nothing, or ``KFold``.
    quiet : bool, default=False
        No progress bar (one is drawn only on a terminal anyway).
    desc : str, default='calibrating'
        The progress bar's label.
    scoring : callable or None, default=None
        The scorer; None is :class:`~sklearn_n2s.SelfSupervisedScorer`.

    Returns
    -------
    search : GridSearchCV
        Fitted; errors of the estimator are raised, not recorded as NaN scores.
    """

    total = len(ParameterGrid(grid)) * cv.get_n_splits(X)
    with progress(total=total, desc=desc, quiet=quiet, unit="fit") as bar:
        search = GridSearchCV(estimator, grid or [{}],
                              scoring=ProgressScorer(scoring or SelfSupervisedScorer(), bar),
                              cv=cv,
                              error_score="raise")
        search.fit(X)
    return search


#: The total every cell is scaled to before the low-rank model (scanpy's usual 1e4).
TARGET_SUM = 1e4


def estimator_name(estimator):
    """The model's name as tables, plots and messages show it.

    A pipeline is its steps joined by ``' + '``; the rank path
    (:class:`~sklearn_n2s.LowRankDenoiserCV`) is the model it fits, ``LowRankDenoiser``.

    Parameters
    ----------
    estimator : estimator or Pipeline

    Returns
    -------
    name : str

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_n2s import LibrarySizeNormalizer, LowRankDenoiserCV
    >>> estimator_name(make_pipeline(LibrarySizeNormalizer(), LowRankDenoiserCV()))
    'LibrarySizeNormalizer + LowRankDenoiser'
    """
    if isinstance(estimator, Pipeline):
        return " + ".join(estimator_name(step) for _, step in estimator.steps)
    if isinstance(estimator, LowRankDenoiserCV):
        return "LowRankDenoiser"
    return type(estimator).__name__


class RankPathSearch:
    """A fitted :class:`~sklearn_n2s.LowRankDenoiserCV` seen as a ``GridSearchCV``.

    The rank path scores every rank from one decomposition per fold (6x faster than a
    grid search on 100,000 cells); this gives it the attributes the tables, the JSON
    output and :func:`~sklearn_n2s.plotting.plot_calibration` read. ``path`` may be a
    pipeline ending in the rank path (a normaliser first).
    """

    multimetric_ = False
    refit = True
    scoring = None

    def __init__(self, path):
        self.best_estimator_ = path
        self.estimator = path
        self.name = estimator_name(path)
        path = path[-1] if isinstance(path, Pipeline) else path
        ranks = [int(r) for r in path.ranks_]
        self.cv_results_ = dict(path.cv_results_,
                                params=[{"n_components": r} for r in ranks])
        self.best_index_ = ranks.index(int(path.n_components_))
        self.best_params_ = {"n_components": int(path.n_components_)}


def calibrate_rank_path(grid, X, *, cv, quiet=False, normalize=False):
    """Calibrate ``n_components`` of a low-rank model with the rank path.

    Parameters
    ----------
    grid : dict
        ``{"n_components": [ranks]}``; any other key is a ValueError.
    X : array-like or sparse matrix of shape (n_samples, n_features)
        The table (counts or normalised values).
    cv : int or cross-validation generator
        Folds of rows, as :class:`~sklearn_n2s.LowRankDenoiserCV` takes them.
    quiet : bool, default=False
        No progress bar.
    normalize : bool, default=False
        Fit ``make_pipeline(LibrarySizeNormalizer(1e4, empty_rows='zero'), path)``: each
        cell scaled to 10,000 counts, then ``log1p`` (scanpy's ``normalize_total`` and
        ``log1p``), as the README's single-cell pipeline does; the losses are then in
        log-normalised units and the best estimator transforms counts to denoised
        log-normalised values.

    Returns
    -------
    search : RankPathSearch
        The fitted path (or pipeline), with the attributes of a fitted ``GridSearchCV``.
    """
    unknown = set(grid) - {"n_components"}
    if unknown:
        raise ValueError(f"the rank path searches n_components only, not "
                         f"{sorted(unknown)[0]!r}")
    with progress(total=1, desc="calibrating lowrank", quiet=quiet, unit="path") as bar:
        path = LowRankDenoiserCV(n_components=grid["n_components"], cv=cv, random_state=0)
        if normalize:
            path = make_pipeline(LibrarySizeNormalizer(TARGET_SUM, empty_rows="zero"), path)
        path.fit(X)
        bar.update(1)
    return RankPathSearch(path)


def results_rows(search):
    """``[(params, loss, chosen), ...]`` in the order searched.

    Parameters
    ----------
    search : fitted GridSearchCV or RankPathSearch
        Scored with minus the self-supervised loss.

    Returns
    -------
    rows : list of (dict, float, bool)
        The parameters, the self-supervised loss (minus the mean test score) and whether
        it is the chosen setting.
    """
    results = search.cv_results_
    losses = -np.asarray(results["mean_test_score"], dtype=float)
    best = search.best_index_
    return [(dict(p), float(loss), i == best)
            for i, (p, loss) in enumerate(zip(results["params"], losses))]


def format_table(headers, rows, chosen=None):
    """A plain text table; the row at index ``chosen`` is marked with ``*``.

    Parameters
    ----------
    headers : list of str
        Column titles.
    rows : list of sequence
        One sequence of cells per row, as many as ``headers``.
    chosen : int or None, default=None
        Index of the row to mark; None marks none.

    Returns
    -------
    table : str
        Right-aligned columns, one line per row, the header first.
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    for k, row in enumerate(cells):
        mark = "* " if k == chosen else "  "
        lines.append(mark + "  ".join(c.rjust(w) for c, w in zip(row, widths)))
    return "\n".join(lines)
