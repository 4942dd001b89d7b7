"""What the napari widget computes, without napari or Qt: testable on its own.

:func:`calibration_steps` is a generator: it yields a :class:`Step` after every
candidate it scores (the widget runs it in a napari thread worker, which can stop it
between two steps and turns each step into progress in the viewer) and *returns* a
:class:`Result` with the denoised data, ready to become a layer.

The search is the one :func:`sklearn_n2s.model_selection.calibrate` runs (every
candidate cloned, fitted on the training samples and scored with
:class:`~sklearn_n2s.SelfSupervisedScorer` on the test samples of each split), written
candidate by candidate so that the viewer sees progress and can cancel. The result has
the attributes of a fitted ``GridSearchCV`` that
:func:`sklearn_n2s.plotting.plot_calibration` reads.
"""

import importlib.util
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, ParameterGrid, cross_validate

import sklearn_n2s

from .. import image, model_selection
from ..io import restore_dtype
from ..model_selection import FullSplit, SelfSupervisedScorer

#: Used when :data:`sklearn_n2s.model_selection.DEFAULT_GRIDS` does not exist (an older
#: sklearn_n2s); ``("noise", factors)`` are multiples of the estimated noise level.
_FALLBACK_GRIDS = {
    "DonutMedian": {"radius": [1, 2, 3, 4, 5, 6]},
    "JInvariantGaussian": {"sigma": [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]},
    "JInvariantWavelet": {"sigma": ("noise", [0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.25, 1.5,
                                              2.0, 2.5])},
}
#: Families that need a package of their own, and its import name.
_NEEDS_PACKAGE = {"JInvariantBM3D": "bm3d"}


def _grids():
    """The families' default grids: the package's own (shared with AutoDenoiser)."""
    return getattr(model_selection, "DEFAULT_GRIDS", None) or _FALLBACK_GRIDS


def _label(class_name):
    """The short name the widget shows: DonutMedian -> median, JInvariantTV -> tv."""
    if class_name == "DonutMedian":
        return "median"
    return class_name.removeprefix("JInvariant").lower()


def families():
    """The classical families this installation has: ``{label: class name}``.

    Every family of the default grids whose class :mod:`sklearn_n2s.image` has (and
    whose own package, e.g. ``bm3d``, imports), in the grids' order.
    """
    out = {}
    for name in _grids():
        if getattr(image, name, None) is None:
            continue
        package = _NEEDS_PACKAGE.get(name)
        if package is not None and importlib.util.find_spec(package) is None:
            continue
        out[_label(name)] = name
    return out


def _optional_class(name):
    # Looked up on the package, never imported by name: the widget works without them.
    try:
        return getattr(sklearn_n2s, name, None)
    except Exception:  # N2SNet without torch, or a broken install:
        return None  # the widget still offers the classical families


def available_methods():
    """The methods this installation offers, in the widget's order.

    Returns
    -------
    methods : list of str
        ``'auto'`` when :class:`sklearn_n2s.AutoDenoiser` exists, then every classical
        family (:func:`families`: at least ``'median'``, ``'gaussian'``, ``'wavelet'``),
        then ``'net'`` when :class:`sklearn_n2s.N2SNet` imports (torch and skorch
        installed).
    """
    methods = ["auto"] if _optional_class("AutoDenoiser") is not None else []
    methods += list(families())
    if _optional_class("N2SNet") is not None:
        methods.append("net")
    return methods


def make_estimator(method, *, channel_axis=None, output=None, spatial_ndim=None):
    """A fresh estimator for a method name, with the data's parameters set."""
    known = families()
    if method == "auto":
        cls = _optional_class("AutoDenoiser")
    elif method == "net":
        cls = _optional_class("N2SNet")
    elif method in known:
        cls = getattr(image, known[method])
    else:
        raise ValueError(f"unknown method {method!r}; available: {available_methods()}")
    if cls is None:
        raise ValueError(f"method {method!r} is not available here; available: "
                         f"{available_methods()}")
    estimator = cls()
    settable = estimator.get_params()
    if "memory" in settable and method == "wavelet":
        # The clones of a sweep share one cache: the masked images are decomposed once.
        estimator.set_params(memory=image.WaveletDecompositionCache())
    # A seeded net, so the same click gives the same result.
    wanted = {"channel_axis": channel_axis, "output": output, "random_state": 0,
              "spatial_ndim": spatial_ndim}
    estimator.set_params(**{k: v for k, v in wanted.items()
                            if k in settable and v is not None})
    return estimator


def to_stack(data, *, rgb=False, volume=False):
    """View a layer's data as a stack ``(n_samples, *spatial[, n_channels])``.

    Parameters
    ----------
    data : array-like
        The image layer's data: 2-D, or more axes (planes, time, z...). A dask array is
        loaded into memory.
    rgb : bool, default=False
        The last axis holds colour channels (napari's ``layer.rgb``).
    volume : bool, default=False
        Denoise the last three axes as 3-D volumes rather than each 2-D plane.

    Returns
    -------
    X : ndarray
        A view of the data; ``out.reshape(np.shape(data))`` gives the layer's shape back.
    channel_axis : None or -1
    """
    array = np.asarray(data)
    check_layer(array.shape, array.dtype, rgb=rgb, volume=volume)
    n_spatial = 3 if volume else 2
    tail = array.shape[array.ndim - n_spatial - bool(rgb):]
    return array.reshape((-1, *tail)), (-1 if rgb else None)


def check_layer(shape, dtype, *, rgb=False, volume=False):
    """Refuse a layer the widget cannot denoise, from its shape and dtype alone.

    Nothing is loaded (a dask layer stays lazy), so the widget checks in the main
    thread before it starts any work.

    Parameters
    ----------
    shape : tuple of int
    dtype : dtype
    rgb : bool, default=False
    volume : bool, default=False

    Raises
    ------
    TypeError
        Values that are not numbers (complex, object...).
    ValueError
        Fewer spatial axes than asked for, or no values.
    """
    if np.dtype(dtype).kind not in "biuf":
        raise TypeError(f"the layer holds {np.dtype(dtype)} values; a denoiser needs "
                        "real numbers")
    n_core = len(shape) - bool(rgb)
    n_spatial = 3 if volume else 2
    if n_core < n_spatial:
        raise ValueError(
            f"the layer has shape {tuple(shape)}: {n_core} spatial axes, fewer than the "
            f"{n_spatial} of {'a 3-D volume' if volume else 'a 2-D image'}")
    if 0 in shape:
        raise ValueError(f"the layer has shape {tuple(shape)}: nothing to denoise")


def noise_sigma(X, channel_axis=None):
    """Median over the stack of the estimated noise standard deviation, input units."""
    variances = sklearn_n2s.estimate_noise_variance(X.astype(np.float64),
                                                    channel_axis=channel_axis)
    return float(np.sqrt(np.median(variances)))


def default_grid(method, X, channel_axis=None):
    """The grid searched for a family: its default grid, in the data's units.

    Parameters
    ----------
    method : str
        A label of :func:`families`; the net and 'auto' choose for themselves (``{}``).
    X : ndarray
        The stack from :func:`to_stack`.
    channel_axis : None or -1

    Returns
    -------
    grid : dict
        Intensity-valued parameters (wavelet ``sigma``, NL-means ``h``...) as multiples
        of the noise level estimated from X; median radii that fit in the image.
    """
    name = families().get(method)
    if name is None:
        return {}
    grid, sigma = {}, None
    for key, values in _grids()[name].items():
        multiples = hasattr(values, "resolve") or (isinstance(values, tuple)
                                                   and values[:1] == ("noise",))
        if multiples:
            if sigma is None:
                sigma = noise_sigma(X, channel_axis)
                if not sigma > 0:
                    raise ValueError(f"the image looks noise-free (estimated noise 0): "
                                     f"there is no {method} {key} to calibrate")
            values = (values.resolve(sigma) if hasattr(values, "resolve")
                      else sorted({float(f"{f * sigma:.3g}") for f in values[1]}))
        grid[key] = list(values)
    if name == "DonutMedian":
        n_spatial = X.ndim - 1 - (channel_axis is not None)
        smallest = min(X.shape[1:1 + n_spatial])
        grid["radius"] = [r for r in grid["radius"] if 2 * r < smallest] or [1]
    return grid


def cv_for(method, n_samples):
    """FullSplit for the filters (they learn nothing); held-out samples for the net."""
    if method == "net" and n_samples >= 2:
        return KFold(n_splits=min(3, n_samples))
    return FullSplit()


@dataclass
class Step:
    """One scored candidate: ``done`` of ``total`` steps, and what was scored."""

    done: int
    total: int
    message: str


@dataclass
class CalibrationSearch:
    """A finished candidate-by-candidate search, read like a fitted ``GridSearchCV``.

    ``cv_results_`` holds ``params`` and ``mean_test_score`` (minus the self-supervised
    loss); ``best_index_``, ``best_params_``, ``best_estimator_`` (refitted on all the
    data), ``estimator`` and ``scoring`` as in scikit-learn, so that
    :func:`sklearn_n2s.plotting.plot_calibration` draws it.
    """

    estimator: object
    cv_results_: dict
    best_index_: int
    best_params_: dict
    best_estimator_: object
    scoring: object = field(default_factory=SelfSupervisedScorer)
    multimetric_: bool = False
    refit: bool = True

    @property
    def losses(self):
        """The self-supervised loss of every candidate, in the estimator's units."""
        return -np.asarray(self.cv_results_["mean_test_score"], dtype=float)


@dataclass
class Result:
    """What a calibration returns: the denoised data and how it was chosen."""

    denoised: np.ndarray
    method: str
    search: object = None  # a CalibrationSearch, or a search the estimator ran itself
    estimator: object = None


def _search(estimator, grid, X, cv):
    """Score every candidate of ``grid``: yields a Step each, returns the search."""
    candidates = list(ParameterGrid(grid)) if grid else [{}]
    total = len(candidates) + 1  # the refit on all the data is the last step
    scores = []
    for i, params in enumerate(candidates):
        candidate = clone(estimator).set_params(**params)
        scored = cross_validate(candidate, X, scoring=SelfSupervisedScorer(), cv=cv,
                                error_score="raise")
        scores.append(float(np.mean(scored["test_score"])))
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in params.items()) or "defaults"
        yield Step(i + 1, total, f"scored {shown}: loss {-scores[-1]:.4g}")
    best = int(np.argmax(scores))
    best_estimator = clone(estimator).set_params(**candidates[best]).fit(X)
    return CalibrationSearch(estimator=estimator,
                             cv_results_={"params": candidates, "mean_test_score": scores},
                             best_index_=best, best_params_=dict(candidates[best]),
                             best_estimator_=best_estimator)


def _auto(estimator, X):
    """AutoDenoiser, a step per family; returns (fitted, the chosen family's search).

    The choice is AutoDenoiser's own, as ``n2s --method auto`` makes it: each family
    calibrated on its default grid, ranked by the estimated error of its output (or by
    the self-supervised loss on clipped data), and ``transform`` the best family's output
    or the mix of the two best. The search returned is the best family's, for the curve.
    """
    names = list(families().values())
    auto = clone(estimator).set_params(families=names)
    auto._validate_params()
    for i, (name, search) in enumerate(auto._fit_families(X)):
        done = "left out" if search is None else f"score {search.best_score_:.4g}"
        yield Step(i + 1, len(names) + 1, f"{name}: {done}")
    return auto, auto.searches_[auto.best_family_]


def calibration_steps(method, data, *, rgb=False, volume=False, output=None, grid=None,
                      params=None):
    """Calibrate a method on a layer's data and denoise it, one step at a time.

    Parameters
    ----------
    method : str
        One of :func:`available_methods`.
    data : array-like
        The image layer's data.
    rgb : bool, default=False
        The last axis holds colour channels.
    volume : bool, default=False
        Denoise 3-D volumes rather than 2-D planes.
    output : {'shrink', 'ordinary', 'invariant', 'auto'} or None, default=None
        The estimator's ``output``, when it has one; None keeps the estimator's own
        (for ``'auto'``, each family's: the lowest estimated error of its outputs).
    grid : dict or None, default=None
        The grid to search; None for :func:`default_grid`.
    params : dict or None, default=None
        Parameters set on the estimator before the search (e.g. the net's
        ``max_epochs``).

    Yields
    ------
    step : Step
        After each scored candidate, the refit and the denoising.

    Returns
    -------
    result : Result
        ``denoised`` has the layer's shape and dtype (integers rounded and clipped the
        way ``n2s denoise`` writes them).
    """
    X, channel_axis = to_stack(data, rgb=rgb, volume=volume)
    spatial_ndim = X.ndim - 1 - (channel_axis is not None)
    estimator = make_estimator(method, channel_axis=channel_axis, output=output,
                               spatial_ndim=spatial_ndim)
    estimator.set_params(**(params or {}))
    dtype, shape = np.asarray(data).dtype, np.shape(data)
    if method == "auto":
        fitted, search = yield from _auto(estimator, X)
        total = len(families()) + 1
    else:
        grid = default_grid(method, X, channel_axis) if grid is None else grid
        search = yield from _search(estimator, grid, X, cv_for(method, X.shape[0]))
        fitted = search.best_estimator_
        total = len(search.cv_results_["params"]) + 1
    denoised = fitted.transform(X)
    yield Step(total, total, "denoised")
    denoised = restore_dtype(np.asarray(denoised).reshape(shape), dtype)
    return Result(denoised=denoised, method=method, search=search, estimator=fitted)


def run(method, data, **kwargs):
    """:func:`calibration_steps` run to the end, without progress; the :class:`Result`."""
    steps = calibration_steps(method, data, **kwargs)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
