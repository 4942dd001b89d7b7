"""Figures: why a parameter was chosen, and what the denoised images look like.

matplotlib is optional (the ``cli`` extra) and imported only when a function here is
called, so ``import sklearn_n2s`` never needs it.

:func:`plot_calibration` draws the Noise2Self paper's central picture: the
self-supervised loss of a J-invariant denoiser against its parameter, with the chosen
value marked, and — when the clean data is known — the ground-truth loss of the same
J-invariant outputs. The two curves differ by the noise variance (a constant), so their
minima fall at the same parameter; that is what makes calibration without clean data
trustworthy. Given an :class:`~sklearn_n2s.AutoDenoiser` (or a dict of searches) it
draws every family on one loss axis: the loss is comparable across J-invariant families,
so the lowest point over all of them is the family chosen.
"""

import numbers

import numpy as np
from sklearn.base import clone

from .utils._losses import mean_squared_error
from .utils._validation import to_float


def _pyplot():
    """pyplot, imported on first use (matplotlib itself falls back to Agg headless)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib (or 'sklearn_n2s[cli]')"
        ) from None
    return plt


# --------------------------------------------------------------------- reading a search
def _score_key(search):
    """The ``cv_results_`` column the search selected on."""
    if getattr(search, "multimetric_", False):
        if isinstance(search.refit, str):
            return f"mean_test_{search.refit}"
        raise ValueError("a multi-metric search must have refit=<metric name> to be plotted")
    return "mean_test_score"


def _varying_params(search):
    """Names of the searched parameters that take more than one value."""
    params = search.cv_results_["params"]
    names = sorted({name for p in params for name in p})
    return [n for n in names if len({repr(p.get(n)) for p in params}) > 1]


def _rows_for(search, param):
    """Candidates varying ``param`` with every other parameter at its best value."""
    best = search.best_params_
    rows = []
    for i, p in enumerate(search.cv_results_["params"]):
        others_best = all(repr(v) == repr(best.get(k)) for k, v in p.items() if k != param)
        if param in p and others_best:
            rows.append(i)
    return sorted(rows, key=lambda i: _sort_key(search.cv_results_["params"][i][param]))


def _sort_key(value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, repr(value))


def _is_numeric(values):
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def _scorer_name(search):
    scorer = search.scoring
    if isinstance(scorer, dict):
        scorer = scorer.get(search.refit)
    while hasattr(scorer, "scorer"):  # unwrap e.g. a ProgressScorer
        scorer = scorer.scorer
    return None if scorer is None else type(scorer).__name__


def _is_self_supervised(search):
    return _scorer_name(search) in (None, "SelfSupervisedScorer")


def _is_risk(search):
    """Scored by the estimated error of what ``transform`` returns."""
    return _scorer_name(search) == "EstimatedRiskScorer"


def ground_truth_losses(search, param_values, param, X, clean):
    """MSE against ``clean`` of the J-invariant output at each value of ``param`` (of
    ``transform``'s output for a search scored by the estimated risk, which estimates it).

    The estimator is the search's best one (or its best parameters, with
    ``refit=False``), with ``param`` set to each value in turn and fitted on X.

    Parameters
    ----------
    search : fitted GridSearchCV (or another ``BaseSearchCV``)
        The search whose estimator is evaluated.
    param_values : sequence
        The values of ``param`` to evaluate.
    param : str
        A parameter of the searched estimator.
    X : array-like
        The noisy data.
    clean : array-like of the same shape
        The clean data (integer images are converted as the estimators convert them).

    Returns
    -------
    losses : ndarray of shape (len(param_values),)
        ``mean((invariant_transform(X) - clean) ** 2)`` at each value (``transform``
        for a search scored by :class:`~sklearn_n2s.EstimatedRiskScorer`).
    """
    X = np.asarray(X)
    clean = to_float(np.asarray(clean)) if hasattr(clean, "dtype") else np.asarray(clean, float)
    if clean.shape != X.shape:
        raise ValueError(f"clean has shape {clean.shape}, X has shape {X.shape}; they must match.")
    base = getattr(search, "best_estimator_", None)
    if base is None:  # refit=False
        base = clone(search.estimator).set_params(**search.best_params_)
    method = "transform" if _is_risk(search) else "invariant_transform"
    losses = []
    for value in param_values:
        estimator = clone(base).set_params(**{param: value}).fit(X)
        losses.append(mean_squared_error(getattr(estimator, method)(X), clean))
    return np.array(losses)


# ---------------------------------------------------------------------------- figures
def plot_calibration(search, param=None, clean=None, X=None, ax=None, *, loss_scale=1.0,
                     loss_unit=None, name=None):
    """Self-supervised loss against a searched parameter, the chosen value marked.

    Parameters
    ----------
    search : fitted GridSearchCV (or another ``BaseSearchCV``), AutoDenoiser or dict
        Scored with :class:`~sklearn_n2s.SelfSupervisedScorer` or the estimator's own
        ``score`` (both are minus the self-supervised loss). A fitted
        :class:`~sklearn_n2s.AutoDenoiser`, or a dict ``{family name: fitted search}``,
        draws every family on one loss axis: one curve per family over its own
        parameter (values written beside the points), the lowest loss over all
        families starred; ``param`` must then be None.
    param : str or None, default=None
        The parameter on the x axis; None picks the only one that varies. When several
        vary, the others are held at their chosen values.
    clean : array-like or None, default=None
        The clean data, when known (a demo, a benchmark): adds the ground-truth loss of
        the same J-invariant outputs as a second curve. Needs ``X``.
    X : array-like or None, default=None
        The noisy data the search was fitted on (same shape and dtype convention as
        ``clean``).
    ax : matplotlib Axes or None, default=None
        Where to draw; a new figure when None.
    loss_scale : float, default=1.0
        Factor applied to every loss drawn, e.g. ``1 / intensity_scale(dtype) ** 2`` to
        show the losses of an integer image in its own units (as ``n2s`` prints them)
        rather than in the estimators' 0..1 units.
    loss_unit : str or None, default=None
        The unit of the scaled losses, added to the y label (e.g. ``'uint8 units²'``).
    name : str or None, default=None
        The estimator's name in the title; None uses its class name.

    Returns
    -------
    fig : matplotlib Figure
        ``fig.axes[0].lines[0]`` holds the searched values and their losses.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit, JInvariantGaussian
    >>> from sklearn_n2s.plotting import plot_calibration
    >>> rng = np.random.default_rng(0)
    >>> X = np.sin(np.linspace(0, 6, 64))[None] + rng.normal(0, 0.3, (1, 64))
    >>> search = GridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1.0, 2.0]},
    ...                       cv=FullSplit()).fit(X)
    >>> fig = plot_calibration(search)
    >>> fig.axes[0].lines[0].get_xdata().tolist()
    [0.5, 1.0, 2.0]
    """
    if clean is not None and X is None:
        raise ValueError("clean needs X, the noisy data the search was fitted on.")
    families = _family_searches(search)
    if families is not None:
        if param is not None:
            raise ValueError("param is chosen per family when several families are drawn; "
                             "leave it None.")
        return _plot_families(families, clean=clean, X=X, ax=ax, loss_scale=loss_scale,
                              loss_unit=loss_unit, name=name)
    if not hasattr(search, "cv_results_"):
        raise ValueError("search is not fitted: call search.fit(X) first.")
    param = _choose_param(search, param)
    rows = _rows_for(search, param)
    values = [search.cv_results_["params"][i][param] for i in rows]
    loss_scale = float(loss_scale)
    losses = -np.asarray(search.cv_results_[_score_key(search)], dtype=float)[rows]
    losses = losses * loss_scale
    numeric = _is_numeric(values)
    xs = [float(v) for v in values] if numeric else list(range(len(values)))

    plt = _pyplot()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 5.0))
    ylabel = ("self-supervised loss (MSE)" if _is_self_supervised(search) else
              "estimated error of the output (MSE)" if _is_risk(search) else "-score")
    if loss_unit:
        ylabel = ylabel.replace(" (MSE)", "") + f" (MSE, {loss_unit})"
    ax.plot(xs, losses, "o-", color="C0", lw=2, label=ylabel.split(" (")[0])
    chosen = xs[[repr(v) for v in values].index(repr(search.best_params_[param]))]
    ax.plot([chosen], [losses[xs.index(chosen)]], "*", color="C3", ms=18, zorder=5,
            label=f"chosen: {param} = {_fmt(search.best_params_[param])}")
    if clean is None:
        ax.axvline(chosen, color="C3", ls=":", lw=1)
    else:
        truth = ground_truth_losses(search, values, param, X, clean) * loss_scale
        ax.plot(xs, truth, "s--", color="C2", lw=2, label="ground-truth loss (vs clean)")
        best = int(np.argmin(truth))
        ax.plot([xs[best]], [truth[best]], "o", ms=14, mfc="none", mec="C2", mew=2,
                label=f"ground-truth best: {param} = {_fmt(values[best])}")
        if not _is_risk(search):  # the risk estimates the error itself: no gap to mark
            _mark_gap(ax, chosen, losses[xs.index(chosen)], truth[xs.index(chosen)])
    if not numeric:
        ax.set_xticks(xs, [_fmt(v) for v in values])
    ax.set_xlabel(param)
    ax.set_ylabel(ylabel if clean is None else
                  "mean squared error" + (f" ({loss_unit})" if loss_unit else ""))
    name = name or type(getattr(search, "estimator", search)).__name__
    ax.set_title(f"{name}: calibration of {param}")
    ax.grid(alpha=0.3)
    # Below the axes: inside, it would hide the curves or the gap between them.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig


def _family_searches(search):
    """``{family: fitted search}`` for an AutoDenoiser or a dict of searches, else None."""
    if isinstance(search, dict):
        if not search:
            raise ValueError("no searches to plot: the dict is empty.")
        for name, s in search.items():
            if not hasattr(s, "cv_results_"):
                raise ValueError(f"the search of {name!r} is not fitted: call fit(X) first.")
        return dict(search)
    if type(search).__name__ == "AutoDenoiser":
        if not hasattr(search, "searches_"):
            raise ValueError("the AutoDenoiser is not fitted: call fit(X) first.")
        return dict(search.searches_)
    return None


def _family_curve(search):
    """``(param, values, losses)`` of one family; param None for an empty grid."""
    names = {n for p in search.cv_results_["params"] for n in p}
    if not names:
        rows, param = [int(search.best_index_)], None
        values = [None]
    else:
        param = _choose_param(search, None)
        rows = _rows_for(search, param)
        values = [search.cv_results_["params"][i][param] for i in rows]
    losses = -np.asarray(search.cv_results_[_score_key(search)], dtype=float)[rows]
    return param, values, losses


def _plot_families(families, *, clean, X, ax, loss_scale, loss_unit, name):
    """Every family on one loss axis; the lowest loss of all starred."""
    plt = _pyplot()
    width = max(6.4, 1.9 * len(families))
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(width, 5.0))
    best = None  # (loss, x, family, param, value)
    for k, (family, search) in enumerate(families.items()):
        param, values, losses = _family_curve(search)
        losses = losses * float(loss_scale)
        xs = k + (np.linspace(-0.35, 0.35, len(values)) if len(values) > 1 else np.zeros(1))
        label = family + (f" ({param})" if param else "")
        ax.plot(xs, losses, "o-", color=f"C{k}", lw=2, label=label)
        for x, y, v in zip(xs, losses, values):
            if v is not None:
                ax.annotate(_fmt(v), (x, y), textcoords="offset points", xytext=(0, 7),
                            ha="center", fontsize="x-small", color=f"C{k}")
        i = int(np.nanargmin(losses))
        if best is None or losses[i] < best[0]:
            best = (losses[i], xs[i], family, param, values[i])
        if clean is not None and param is not None:
            truth = ground_truth_losses(search, values, param, X, clean) * float(loss_scale)
            ax.plot(xs, truth, "s--", color=f"C{k}", lw=1.2, alpha=0.7,
                    label=f"{family}: ground truth (vs clean)")
    loss, x, family, param, value = best
    chosen = family + (f", {param} = {_fmt(value)}" if param else "")
    ax.plot([x], [loss], "*", color="k", ms=18, zorder=5, label=f"chosen: {chosen}")
    ax.set_xticks(range(len(families)), list(families))
    ax.set_xlim(-0.6, len(families) - 0.4)
    what = ("estimated error of the output" if all(_is_risk(s) for s in families.values())
            else "self-supervised loss")
    ylabel = what + " (MSE" + (f", {loss_unit})" if loss_unit else ")")
    ax.set_ylabel(ylabel if clean is None else
                  "mean squared error" + (f" ({loss_unit})" if loss_unit else ""))
    ax.set_xlabel("family (its parameter's values left to right)")
    ax.set_title(f"{name or 'AutoDenoiser'}: every family on one loss axis")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig


def _mark_gap(ax, x, loss, truth):
    """The constant gap between the curves: the noise variance, which f cannot change."""
    ax.annotate("", xy=(x, loss), xytext=(x, truth),
                arrowprops={"arrowstyle": "<->", "color": "0.35", "lw": 1.2})
    low, high = ax.get_xlim()
    right_side = (x - low) / (high - low) < 0.6  # write where there is room
    pad = "  "
    text = f"gap {loss - truth:.2g}\n≈ noise variance"
    text = "\n".join(pad + t if right_side else t + pad for t in text.splitlines())
    ax.text(x, (loss + truth) / 2, text, va="center", ha="left" if right_side else "right",
            fontsize="small", color="0.25")


def _choose_param(search, param):
    varying = _varying_params(search)
    if param is None:
        if not varying:
            names = sorted({n for p in search.cv_results_["params"] for n in p})
            if not names:
                raise ValueError("the search has no parameters to plot.")
            return names[0]
        return varying[0] if len(varying) == 1 else _prefer_first(search, varying)
    searched = {n for p in search.cv_results_["params"] for n in p}
    if param not in searched:
        raise ValueError(f"param {param!r} was not searched; searched: {sorted(searched)}.")
    return param


def _prefer_first(search, varying):
    """With several varying parameters, the first of the (first) grid's keys."""
    grid = search.param_grid if hasattr(search, "param_grid") else {}
    grid = grid[0] if isinstance(grid, list) else grid
    for name in grid:
        if name in varying:
            return name
    return varying[0]


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def plot_comparison(images, titles=None, *, cmap="gray", vmin=None, vmax=None, ncols=None,
                    panel_size=3.2):
    """Images side by side (noisy / denoised / clean), on one grey scale.

    Parameters
    ----------
    images : sequence of arrays
        2-D grey images or ``(H, W, 3|4)`` colour images; leading axes of length 1 (a
        stack of one) are dropped.
    titles : sequence of str or None
        One title per image; None for none.
    cmap : str, default='gray'
        Matplotlib colour map of the grey images.
    vmin, vmax : float or None
        Grey-scale limits; by default the range over all grey images, so the panels are
        comparable.
    ncols : int or None
        Panels per row; all in one row by default.
    panel_size : float, default=3.2
        Inches per panel.

    Returns
    -------
    fig : matplotlib Figure
        One panel per image, spare panels of the last row hidden.
    """
    images = [_displayable(im) for im in images]
    if not images:
        raise ValueError("images is empty: nothing to plot.")
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles.")
    grey = [im for im in images if im.ndim == 2]
    if grey and vmin is None:
        vmin = min(float(im.min()) for im in grey)
    if grey and vmax is None:
        vmax = max(float(im.max()) for im in grey)
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        if image.ndim == 2:
            ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
        else:
            ax.imshow(np.clip(image, 0, None) if image.dtype.kind == "f" else image)
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _displayable(image):
    image = np.asarray(image)
    while image.ndim > 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        return image
    raise ValueError(
        f"cannot show an image of shape {image.shape}: expected (H, W) or (H, W, 3|4)."
    )
