"""AutoDenoiser: the denoising family, and its parameters, chosen without clean data.

The self-supervised loss of a J-invariant denoiser is its loss against the unknown clean
image plus the noise variance, a constant that does not depend on the denoiser. So the
loss ranks not only the parameters of one family but families against each other: the
median, the Gaussian and the wavelet (and the newer families when they are installed)
are each calibrated on their own grid, and the family with the lowest loss at its best
parameters wins (``criterion='loss'``). No clean data is used at any step.

The loss ranks J-invariant predictions, but the best output of a family is often its
ordinary filter (NL-means, TV, BM3D), whose gain over the invariant prediction differs
by family: ranked by the invariant loss, NL-means beat BM3D where BM3D's ordinary output
was up to 3 dB better. ``criterion='risk'`` ranks what each family's
``transform`` returns by its estimated error against the clean image
(``estimated_risk``: the self-supervised loss minus the noise variance for J-invariant
outputs, which orders them as the loss does, and Stein's unbiased risk estimate for the
ordinary filter), every family set to return the lowest-risk output (``output='auto'``)
except where the invariant prediction is too costly to compute (TV and BM3D return their
ordinary filter). Stein's estimate needs Gaussian noise, and noise clipped at the
data's range is not: the default ``criterion='auto'`` ranks by the risk, or by the loss
(which needs only noise independent between pixels) where X is clipped.

Where two families come close, which one wins is decided by the estimate's own noise
(Stein's estimate of each varies by about 0.01 noise variances between noise draws of
a 256 x 256 image). Ranked by the risk, ``transform`` therefore returns the mix of the
two best families with the weight whose mix has the lowest estimated risk
(``blend=True``): Stein's estimate of a mix follows exactly from the two families' own,
as in the SURE-optimal combination of denoisers of Choi et al. (2019). The mix is never
worse than the worse of the two (its true error is convex in the weight) and usually
better than either. Clipping biases Stein's estimate, and the mix's weight rests on
the difference of two such estimates: where over 2 % of X is clipped
(:data:`BLEND_CLIPPED_FRACTION`) the best family is kept alone.

The default grids live in one dict, :data:`DEFAULT_GRIDS`, keyed by the estimator's name
in :mod:`sklearn_n2s.image`; a family is a default candidate only when that module has
it (and, for BM3D, when the ``bm3d`` package imports).
"""

import importlib.util
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import image
from ..base import IMAGE_OUTPUTS
from ..utils._noise import estimate_noise_variance
from ..utils._validation import MAX_SPATIAL_DIMS, check_stack
from ._calibration import calibrate
from ._scorer import EstimatedRiskScorer
from ._split import FullSplit


class NoiseMultiples:
    """Grid values given as multiples of the estimated noise level, in the data's units.

    An intensity-valued parameter (a wavelet threshold, an NL-means ``h``, a TV weight)
    means nothing without the data's scale: 0.1 is a lot for a float image in 0..1 and
    nothing for 16-bit counts. :class:`AutoDenoiser` turns these factors into values by
    multiplying them with the noise standard deviation it estimates from the data (in
    the input's units: 0..255 levels for uint8, counts for uint16), rounded to three
    significant digits.

    Parameters
    ----------
    factors : sequence of float
        The multiples, each > 0.
    """

    def __init__(self, factors):
        self.factors = tuple(float(f) for f in factors)

    def resolve(self, noise_sigma):
        """The grid values for a noise standard deviation ``noise_sigma``."""
        return sorted({float(f"{f * noise_sigma:.3g}") for f in self.factors})

    def __repr__(self):
        return f"NoiseMultiples({list(self.factors)})"


#: The default candidates and their grids, keyed by the class name in
#: :mod:`sklearn_n2s.image`; searched in this order. A family is used only when that
#: module has the class (and the BM3D family only when ``bm3d`` imports). Pixel-valued
#: parameters are given in pixels; intensity-valued ones as :class:`NoiseMultiples`.
#: Kept short: AutoDenoiser on one 512 x 512 image must stay within a minute on two
#: cores (``benchmarks/bench_auto.py``).
DEFAULT_GRIDS = {
    "DonutMedian": {"radius": [1, 2, 3, 4]},
    "JInvariantGaussian": {"sigma": [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]},
    # BayesShrink often does best a little below the true level under Gaussian noise,
    # hence the low end; under photon noise above it (2x on uint16 camera counts).
    "JInvariantWavelet": {"sigma": NoiseMultiples([0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.25,
                                                   1.5, 2.0, 2.5])},
    # Around the picks of benchmarks/bench_classics.py on the paper's setup (camera,
    # sigma 25.5 grey levels): NL-means h = 25 (1.0 sigma), TV weight = 18 (0.7 sigma),
    # bilateral sigma_color = 38 (1.5 sigma) with sigma_spatial = 3.
    "JInvariantNLMeans": {"h": NoiseMultiples([0.6, 0.8, 1.0, 1.2]), "patch_size": [5],
                          "patch_distance": [6], "fast_mode": [True]},
    "JInvariantTV": {"weight": NoiseMultiples([0.5, 0.8, 1.2, 1.8])},
    "JInvariantBilateral": {"sigma_color": NoiseMultiples([1.5, 3.0]),
                            "sigma_spatial": [1.0, 3.0]},
    # One BM3D run costs about 11 s of CPU on 512 x 512. criterion='risk' scores its
    # ordinary output (two runs: the filter and the divergence probe); for
    # criterion='loss' the exact loss (16 cosets) would take three minutes alone, so two
    # cosets score it (an unbiased estimate of the same loss, on an eighth of the
    # pixels). Either way at the estimated noise level only.
    "JInvariantBM3D": {"sigma_psd": NoiseMultiples([1.0]), "cosets": [2]},
}

#: With ``criterion='risk'``, the output each default family returns: ``'auto'`` (the
#: lowest estimated risk of the three) unless its J-invariant prediction costs one run
#: per coset (16 TV or BM3D runs per value), where the ordinary filter alone is scored.
_RISK_OUTPUTS = {"JInvariantTV": "ordinary", "JInvariantBM3D": "ordinary"}

#: The ``cv_results_`` column that holds minus the mean test score, per ``criterion``.
SCORE_COLUMNS = {"risk": "estimated_risk", "loss": "self_supervised_loss"}

#: Share of X's values sitting at its minimum or maximum above which
#: ``criterion='auto'`` ranks by the loss, and ``criterion='risk'`` warns. Clipped noise
#: is not Gaussian and Stein's estimate then misranks: camera with Gaussian noise 0.2
#: (21 % of a 256**2 crop clipped) got TV chosen 1.9 dB below BM3D, even with each
#: pixel's true variance; the loss, which needs only independent noise, chose BM3D, and
#: it chose the best family on all five offline cases clipped 7.5-21 % (as the risk
#: did on the four others). Under 10 % the risk's worst miss was 0.53 dB, a near tie on
#: moon, where the loss missed by up to 3.8 dB on unclipped cases
#: (``benchmarks/results/auto.md``).
CLIPPED_FRACTION = 0.1

#: Share of X's values at its minimum or maximum above which ``blend`` mixes nothing.
#: The mix's weight rests on the difference between two close Stein's estimates, and
#: clipping biases each of them: on the 28 offline cases at 256**2 the mix lost
#: 0.09-0.18 dB against the best family alone on the four crops clipped 2.5-9.6 %, and
#: gained up to 0.47 dB on the others (``benchmarks/results/auto.md``, sixth pass).
BLEND_CLIPPED_FRACTION = 0.02

#: Families that need an optional package, and its import name.
_OPTIONAL_PACKAGES = {"JInvariantBM3D": "bm3d"}

#: Parameters that describe the data: set on every candidate that has them.
_DATA_PARAMS = ("channel_axis", "spatial_ndim")
#: Parameters set on every candidate only when given (not None).
_OPTIONAL_SHARED = ("output", "noise_variance")


def available_families():
    """Names of the default families this installation has, in :data:`DEFAULT_GRIDS` order.

    Returns
    -------
    names : list of str
    """
    names = []
    for name in DEFAULT_GRIDS:
        if getattr(image, name, None) is None:
            continue
        package = _OPTIONAL_PACKAGES.get(name)
        if package is not None and importlib.util.find_spec(package) is None:
            continue
        names.append(name)
    return names


def _default_estimator(name):
    estimator = getattr(image, name)()
    if "memory" in estimator.get_params(deep=False):
        # A cache of its own: the clones of the sweep share the masked images (the
        # wavelet: their decompositions), which do not depend on the swept parameters.
        cache = (image.WaveletDecompositionCache if name == "JInvariantWavelet"
                 else getattr(image, "MaskedImageCache", None))
        if cache is not None:
            estimator.set_params(memory=cache(max_entries=1))
    return estimator


def noise_level(X, channel_axis=None, spatial_ndim=None):
    """Median over the stack of the estimated noise standard deviation, in X's units.

    Parameters
    ----------
    X : array-like of shape (n_samples, *spatial[, n_channels])
        Images as the image estimators take them (integers in their own units).
    channel_axis : None or -1, default=None
    spatial_ndim : int or None, default=None

    Returns
    -------
    sigma : float
        In the input's units: 0..255 levels for uint8, counts for uint16.
    """
    stack, scale = check_stack(X, channel_axis=channel_axis, spatial_ndim=spatial_ndim,
                               return_scale=True)
    variances = estimate_noise_variance(stack, channel_axis=channel_axis)
    return float(np.sqrt(np.median(variances))) / scale


class AutoDenoiser(TransformerMixin, BaseEstimator):
    """The denoiser, family and parameters, whose output has the lowest estimated error.

    ``fit`` calibrates every candidate family on its grid with
    :class:`~sklearn.model_selection.GridSearchCV` and keeps the family whose best
    parameters score best. With ``criterion='risk'`` the score is the estimated error
    against the clean image of what the family's ``transform`` returns
    (:class:`~sklearn_n2s.EstimatedRiskScorer`); with ``criterion='loss'`` it is the
    :class:`~sklearn_n2s.SelfSupervisedScorer`'s loss of the J-invariant prediction,
    comparable across families because it is the loss against the clean image plus the
    noise variance, the same constant for all. The default, ``'auto'``, takes the risk
    unless X is clipped (``criterion_`` says which it took). ``transform`` and
    ``invariant_transform`` are those of the chosen family's calibrated estimator.

    Parameters
    ----------
    candidates : list of (estimator, param_grid) or None, default=None
        The families to compare, each a J-invariant estimator whose loss is in the
        input's units (an image denoiser of :mod:`sklearn_n2s.image`, not a pipeline
        that rescales the data) and a grid (a dict or a list of dicts, as
        ``GridSearchCV`` takes it; ``{}`` scores the estimator as it is). None: every
        family of :data:`DEFAULT_GRIDS` this installation has, on its default grid
        (pixel values that the data's size cannot take are left out; intensity values
        scaled by the noise level estimated from the data).
    families : list of str or None, default=None
        With the default candidates, only these (class names, e.g.
        ``["DonutMedian", "JInvariantGaussian"]``).
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis; set on every candidate.
    spatial_ndim : {1, 2, 3} or None, default=None
        Number of spatial axes (see the image estimators); set on every candidate.
    output : {'shrink', 'ordinary', 'invariant', 'auto'} or None, default=None
        What ``transform`` returns, set on every candidate. None: given candidates
        keep their own; the default families, ranked by the risk, return ``'auto'``
        (the output with the lowest estimated risk) where the J-invariant prediction is
        cheap and the ordinary filter for TV and BM3D, and ranked by the loss their own
        default.
    criterion : {'auto', 'risk', 'loss'}, default='auto'
        What ranks parameters and families: ``'risk'``, the estimated error of the
        output ``transform`` returns (needs the noise to be independent between pixels
        and Gaussian; its variance is estimated unless ``noise_variance`` is given;
        ``fit`` warns when over 10 % of X sits at its minimum or maximum, where clipping
        makes the noise non-Gaussian); ``'loss'``, the self-supervised loss of the
        J-invariant prediction (no noise model at all); ``'auto'``, the risk unless over
        10 % of X sits at its minimum or maximum (:data:`CLIPPED_FRACTION`) or a given
        candidate has no ``estimated_risk``, then the loss.
    noise_variance : float or None, default=None
        Noise variance in the input's units, for the shrinkage output; None lets each
        family estimate it.
    blend : bool, default=True
        With ``criterion_='risk'``, ``transform`` returns the mix
        ``w A(X) + (1 - w) B(X)`` of the two families with the lowest estimated risk,
        ``w`` in [0, 1] chosen by the mix's estimated risk (see the module notes);
        ``w = 1`` is the best family alone. ``blend_weights_`` says what was mixed.
        False: the best family alone. No effect with ``criterion_='loss'`` (the
        self-supervised loss ranks J-invariant predictions, not what ``transform``
        returns), where over 2 % of X sits at its minimum or maximum
        (:data:`BLEND_CLIPPED_FRACTION`: clipping biases Stein's estimate), or with a
        candidate that is a :class:`~sklearn.pipeline.Pipeline`.
    cv : cross-validation generator or None, default=None
        How each family's grid is scored; None is :class:`~sklearn_n2s.FullSplit`
        (right for filters, which learn nothing from the data). Use held-out samples
        (``KFold``) for candidates that learn.
    verbose : int, default=0
        1 draws a progress bar per family (on a terminal only).

    Attributes
    ----------
    best_estimator_ : estimator
        The chosen family's estimator at its best parameters, fitted on X.
    best_family_ : str
        Its name (the class name; ``Name#2`` for a second candidate of one class).
    best_params_ : dict
        Its best parameters.
    best_score_ : float
        Minus its estimated risk (``criterion_='risk'``) or self-supervised loss.
    criterion_ : {'risk', 'loss'}
        What ranked the families: ``criterion``, or what ``'auto'`` resolved to.
    best_index_ : int
        Its row in ``cv_results_``.
    blend_weights_ : dict of str to float
        The families ``transform`` mixes and their weights (summing to 1), the best
        family first; ``{best_family_: 1.0}`` when nothing is mixed.
    candidates_ : dict of str to estimator
        One calibrated estimator per family (fitted at its best parameters), in the
        order searched.
    searches_ : dict of str to GridSearchCV
        The fitted search of each family (for :func:`~sklearn_n2s.plotting.plot_calibration`).
    cv_results_ : dict of arrays
        One row per family and parameter setting: ``family``, ``params`` (the family's
        own), ``param_<name>`` (masked where a family has no such parameter),
        ``mean_test_score``, ``std_test_score``, ``estimated_risk`` or
        ``self_supervised_loss`` (minus the mean test score, after ``criterion_``),
        ``rank_test_score`` (over all rows), ``rank_in_family``, ``mean_fit_time``,
        ``mean_score_time``.
    noise_level_ : float or None
        The noise standard deviation (input units) the default grids were scaled by;
        None when no grid needed it.
    n_features_in_ : int
        Values per sample of the data seen in ``fit``.

    See Also
    --------
    sklearn_n2s.SelfSupervisedScorer : The scorer each family is calibrated with.

    Notes
    -----
    The same choice in plain scikit-learn: put the denoiser in a one-step
    :class:`~sklearn.pipeline.Pipeline` and search a list of grids, each naming the
    estimator as a parameter::

        pipe = Pipeline([("denoiser", DonutMedian())])
        grids = [{"denoiser": [DonutMedian()], "denoiser__radius": [1, 2, 3]},
                 {"denoiser": [JInvariantGaussian()], "denoiser__sigma": [0.5, 1, 2]}]
        GridSearchCV(pipe, grids, scoring=SelfSupervisedScorer(), cv=FullSplit())

    ``AutoDenoiser`` adds the default grids in the data's units, one calibrated
    estimator per family and a table keyed by family.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       ICML 2019, arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s import AutoDenoiser, DonutMedian, JInvariantGaussian
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:64, :64]
    >>> clean = np.sin(xx / 5.0) * np.cos(yy / 7.0)
    >>> X = (clean + rng.normal(0, 0.3, clean.shape))[np.newaxis]
    >>> auto = AutoDenoiser([(DonutMedian(), {"radius": [1, 2]}),
    ...                      (JInvariantGaussian(), {"sigma": [1.0, 2.0]})]).fit(X)
    >>> auto.best_family_, auto.best_params_
    ('JInvariantGaussian', {'sigma': 2.0})
    >>> auto.transform(X).shape
    (1, 64, 64)
    """

    _parameter_constraints: dict = {
        "candidates": [None, list],
        "families": [None, list],
        "channel_axis": [None, Options(Integral, {-1})],
        "spatial_ndim": [None, Interval(Integral, 1, MAX_SPATIAL_DIMS, closed="both")],
        "output": [None, StrOptions(set(IMAGE_OUTPUTS))],
        "criterion": [StrOptions({"auto", "risk", "loss"})],
        "blend": ["boolean"],
        "noise_variance": [None, Interval(Real, 0, None, closed="left")],
        "cv": [None, "cv_object"],
        "verbose": ["verbose"],
    }

    def __init__(self, candidates=None, *, families=None, channel_axis=None,
                 spatial_ndim=None, output=None, criterion="auto", blend=True,
                 noise_variance=None, cv=None, verbose=0):
        self.candidates = candidates
        self.families = families
        self.channel_axis = channel_axis
        self.spatial_ndim = spatial_ndim
        self.output = output
        self.criterion = criterion
        self.blend = blend
        self.noise_variance = noise_variance
        self.cv = cv
        self.verbose = verbose

    # ------------------------------------------------------------------ candidates
    def _shared_params(self, estimator):
        settable = estimator.get_params(deep=False)
        params = {k: getattr(self, k) for k in _DATA_PARAMS if k in settable}
        params.update({k: getattr(self, k) for k in _OPTIONAL_SHARED
                       if k in settable and getattr(self, k) is not None})
        return params

    def _given_candidates(self):
        """``[(name, estimator, grid)]`` from ``candidates``, checked before any work."""
        if self.families is not None:
            raise ValueError("families selects among the default candidates; with "
                             "candidates given, list only the ones you want.")
        if not self.candidates:
            raise ValueError("candidates is empty: give at least one (estimator, "
                             "param_grid) pair, or None for the default families.")
        out, seen = [], {}
        for k, item in enumerate(self.candidates):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(f"candidates[{k}] must be a pair (estimator, param_grid), "
                                 f"got {item!r}.")
            estimator, grid = item
            if not hasattr(estimator, "get_params") or not hasattr(estimator, "fit"):
                raise TypeError(f"candidates[{k}][0] must be an estimator, got "
                                f"{type(estimator).__name__}.")
            final = _final_step(estimator)
            if self.criterion == "risk" and not hasattr(final, "estimated_risk"):
                raise TypeError(f"candidates[{k}][0] ({type(final).__name__}) has no "
                                "estimated_risk, which criterion='risk' ranks by: use "
                                "criterion='loss' (the self-supervised loss).")
            if not isinstance(grid, (dict, list)):
                raise TypeError(f"candidates[{k}][1] must be a param grid (a dict or a list "
                                f"of dicts), got {type(grid).__name__}.")
            try:  # a malformed grid fails here, before any work
                ParameterGrid(grid or [{}])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"candidates[{k}][1] is not a param grid: {exc}") from None
            name = type(estimator).__name__
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            out.append((name, estimator, grid))
        return out

    def _resolved_criterion(self, clipped, given):
        """``criterion``, or what ``'auto'`` takes for X (``clipped``: its
        :func:`clipped_fraction`): the loss where X is clipped or a given candidate has
        no ``estimated_risk``, the risk otherwise."""
        if self.criterion != "auto":
            return self.criterion
        if given is not None and not all(hasattr(_final_step(estimator), "estimated_risk")
                                         for _, estimator, _ in given):
            return "loss"
        return "loss" if clipped > CLIPPED_FRACTION else "risk"

    def _default_candidates(self, X, criterion):
        """``[(name, estimator, grid)]`` of the default families, grids in X's units,
        each set to return the output that ``criterion`` ('risk' or 'loss') ranks."""
        names = available_families()
        if self.families is not None:
            unknown = [f for f in self.families if f not in DEFAULT_GRIDS]
            if unknown:
                raise ValueError(f"families: unknown family {unknown[0]!r}; known: "
                                 f"{', '.join(DEFAULT_GRIDS)}.")
            missing = [f for f in self.families if f not in names]
            if missing:
                raise ValueError(f"families: {missing[0]!r} is not available in this "
                                 f"installation (available: {', '.join(names)}).")
            names = [n for n in names if n in self.families]
        scaled = [n for n in names
                  if any(isinstance(v, NoiseMultiples) for v in DEFAULT_GRIDS[n].values())]
        self.noise_level_ = None
        if scaled:
            self.noise_level_ = noise_level(X, self.channel_axis, self.spatial_ndim)
            # below a millionth of the data's range: rounding, not noise
            if not self.noise_level_ > 1e-6 * float(np.ptp(X)):
                warnings.warn(f"no noise found in X (estimated noise level "
                              f"{self.noise_level_:g}): the families whose grids follow "
                              f"the noise level ({', '.join(scaled)}) are left out.",
                              UserWarning, stacklevel=3)
                names = [n for n in names if n not in scaled]
        out, refusals = [], []
        probe = X[:1]
        for name in names:
            estimator = _default_estimator(name)
            if criterion == "risk" and self.output is None:
                estimator.set_params(output=_RISK_OUTPUTS.get(name, "auto"))
            estimator.set_params(**self._shared_params(estimator))
            grid = {k: (v.resolve(self.noise_level_) if isinstance(v, NoiseMultiples)
                        else list(v)) for k, v in DEFAULT_GRIDS[name].items()}
            unknown = sorted(set(grid) - set(estimator.get_params()))
            if unknown:
                raise ValueError(f"DEFAULT_GRIDS[{name!r}] names {unknown[0]!r}, which "
                                 f"{name} does not have: fix the grid in "
                                 "sklearn_n2s/model_selection/_auto.py.")
            grid, refusal = _settings_that_fit(estimator, grid, probe)
            if grid:
                out.append((name, estimator, grid))
            else:
                refusals.append(f"{name}: {refusal}")
        if not out:
            raise ValueError(f"no default family can denoise X of shape {np.shape(X)}; "
                             f"{'; '.join(refusals)}")
        return out

    # ------------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Calibrate every candidate family and keep the one with the lowest loss.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
            Images as the candidates take them (integers in their own units); with
            ``spatial_ndim`` set, also one image.
        y : None
            Ignored: the self-supervised setting has no targets.

        Returns
        -------
        self : AutoDenoiser
            Fitted.
        """
        for _ in self._fit_families(X):
            pass
        return self

    def _fit_families(self, X):
        """``fit``, one family at a time: yields ``(name, search or None)`` after each
        family's search (None: the family was left out), for progress displays such as
        the napari plugin's; the fitted attributes are set when it is exhausted. The
        parameters must have been validated (``fit`` does it)."""
        given = self._given_candidates() if self.candidates is not None else None
        X_float, single = check_stack(X, channel_axis=self.channel_axis,
                                      spatial_ndim=self.spatial_ndim, return_single=True)
        X = np.asarray(X)
        if single:  # one image: the search splits samples, so give it a stack of one
            X = X[np.newaxis]
        clipped = clipped_fraction(X)  # one pass over X serves every rule below
        self.criterion_ = self._resolved_criterion(clipped, given)
        if self.criterion == "risk":
            _warn_if_clipped(clipped)
        if given is not None:
            self.noise_level_ = None
            candidates = []
            for name, estimator, grid in given:
                estimator = clone(estimator)
                estimator.set_params(**self._shared_params(estimator))
                candidates.append((name, estimator, grid))
        else:
            candidates = self._default_candidates(X, self.criterion_)
        cv = FullSplit() if self.cv is None else self.cv
        scoring = EstimatedRiskScorer() if self.criterion_ == "risk" else None
        self.searches_ = {}
        for name, estimator, grid in candidates:
            try:
                self.searches_[name] = calibrate(estimator, grid, X, cv=cv,
                                                 quiet=not self.verbose,
                                                 desc=f"calibrating {name}",
                                                 scoring=scoring)
            except (ValueError, TypeError) as exc:
                if given is not None:
                    raise  # a family the user asked for: its failure is theirs to see
                # A default family that cannot serve this data (its dimensionality,
                # say) is left out: the others still compete.
                warnings.warn(f"{name} left out: {exc}", UserWarning, stacklevel=3)
            yield name, self.searches_.get(name)
        if not self.searches_:
            raise ValueError("no default family could be calibrated on X: give candidates.")
        self.candidates_ = {name: s.best_estimator_ for name, s in self.searches_.items()}
        self.cv_results_ = _merge_results(self.searches_, SCORE_COLUMNS[self.criterion_])
        scores = self.cv_results_["mean_test_score"]
        self.best_index_ = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
        self.best_family_ = str(self.cv_results_["family"][self.best_index_])
        self.best_params_ = dict(self.cv_results_["params"][self.best_index_])
        self.best_score_ = float(scores[self.best_index_])
        self.best_estimator_ = self.candidates_[self.best_family_]
        self.blend_weights_ = self._blend_weights(X, X_float, clipped, cv)
        self.n_features_in_ = int(np.prod(X.shape[1:]))

    def _blend_weights(self, X, X_float, clipped, cv):
        """``{family: weight}`` of what ``transform`` returns (see ``blend``); X_float is
        X in the families' float units, ``clipped`` its :func:`clipped_fraction`."""
        alone = {self.best_family_: 1.0}
        mixable = [f for f, e in self.candidates_.items() if not isinstance(e, Pipeline)]
        if (not self.blend or self.criterion_ != "risk" or len(mixable) < 2
                or self.best_family_ not in mixable
                or clipped > BLEND_CLIPPED_FRACTION):
            return alone
        scores = {f: self.searches_[f].best_score_ for f in mixable
                  if f != self.best_family_ and np.isfinite(self.searches_[f].best_score_)}
        if not scores:
            return alone
        pair = (self.best_family_, max(scores, key=scores.get))
        # the scores are the risks on X itself unless the search held samples out
        risks = ([-self.searches_[f].best_score_ for f in pair] if isinstance(cv, FullSplit)
                 else [self.candidates_[f].estimated_risk(X) for f in pair])
        first, second = (self.candidates_[f].transform(X) for f in pair)
        weight = mixture_weight(first, second, X_float, risks)[0]
        if weight >= 1.0:
            return alone
        return {pair[0]: weight, pair[1]: 1.0 - weight}

    # ------------------------------------------------------------------- outputs
    def transform(self, X):
        """The chosen family's output (see its ``output``), or the mix of two families'
        outputs with the weights ``blend_weights_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        X_denoised : ndarray of the same shape
        """
        check_is_fitted(self)
        if len(self.blend_weights_) == 1:
            return self.best_estimator_.transform(X)
        (first, w_first), (second, w_second) = self.blend_weights_.items()
        out = self.candidates_[first].transform(X)
        return w_first * out + w_second * self.candidates_[second].transform(X)

    def invariant_transform(self, X):
        """The chosen family's J-invariant prediction of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        X_invariant : ndarray of the same shape
        """
        check_is_fitted(self)
        return self.best_estimator_.invariant_transform(X)

    def self_supervised_loss(self, X, loss="mse"):
        """The chosen estimator's self-supervised loss on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
        loss : {'mse', 'mae'} or callable, default='mse'

        Returns
        -------
        loss : float
        """
        check_is_fitted(self)
        from ._scorer import self_supervised_loss

        return self_supervised_loss(self.best_estimator_, X, loss=loss)

    def estimated_risk(self, X):
        """The estimated error of ``transform`` on X: the chosen estimator's (see
        :meth:`sklearn_n2s.image.JInvariantGaussian.estimated_risk`), or the mix's,
        which follows from the two families' own (see the module notes).

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        risk : float
        """
        check_is_fitted(self)
        if len(self.blend_weights_) == 1:
            return self.best_estimator_.estimated_risk(X)
        (first, weight), (second, _) = self.blend_weights_.items()
        estimators = self.candidates_[first], self.candidates_[second]
        outputs = [e.transform(X) for e in estimators]
        X_float = check_stack(X, channel_axis=self.channel_axis,
                              spatial_ndim=self.spatial_ndim).reshape(outputs[0].shape)
        return mixture_risk(weight, *outputs, X_float,
                            [e.estimated_risk(X) for e in estimators])

    def score(self, X, y=None):
        """Minus what ranked the families (``criterion_``): the chosen estimator's
        estimated risk (``'risk'``) or self-supervised loss (``'loss'``) on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        if self.criterion_ == "risk":
            return -self.estimated_risk(X)
        return -self.self_supervised_loss(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.requires_fit = True
        if tags.transformer_tags is not None:  # every image family keeps float dtypes
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def clipped_fraction(X):
    """Share of the values of X at its minimum or maximum (0 for a constant X).

    Noise pushed past the range a camera or a file can hold is cut there, so heavily
    clipped data pile up at both ends.

    Parameters
    ----------
    X : array-like
        Any array of numbers.

    Returns
    -------
    fraction : float
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> clipped_fraction(np.array([0.0, 0.0, 0.5, 1.0]))
    0.75
    """
    X = np.asarray(X)
    low, high = X.min(), X.max()
    if low == high:
        return 0.0
    return float(np.count_nonzero((X == low) | (X == high)) / X.size)


def _warn_if_clipped(fraction):
    if fraction > CLIPPED_FRACTION:
        warnings.warn(f"{fraction:.0%} of X's values sit at its minimum or maximum: clipped "
                      "noise is not Gaussian and criterion='risk' (Stein's estimate) can "
                      "misrank families on it; criterion='loss' (which 'auto', the "
                      "default, takes here) needs only noise independent between "
                      "pixels.", UserWarning, stacklevel=4)


def _mixture_terms(first, second, x, risks):
    """``(a, b, c)`` of the mix's estimated risk ``a w**2 + b w + c`` (see
    :func:`mixture_weight`)."""
    first, second, x = (np.asarray(v, dtype=np.float64) for v in (first, second, x))
    residual = second - x
    step = first - second
    a = float(np.mean(np.square(step)))
    cross = float(np.mean(step * residual))
    second_residual = float(np.mean(np.square(residual)))
    # Stein's estimate of an output f is mean((f - x)**2) plus a term linear in f
    # (2 s2 div f / n - s2): each family's term is its risk less its residual.
    first_term = risks[0] - float(np.mean(np.square(first - x)))
    second_term = risks[1] - second_residual
    return a, 2 * cross + first_term - second_term, second_residual + second_term


def mixture_risk(weight, first, second, x, risks):
    """Estimated risk of the mix ``weight * first + (1 - weight) * second`` of two outputs
    of x whose estimated risks are ``risks`` (see :func:`mixture_weight`).

    Parameters
    ----------
    weight : float
    first, second : ndarray
        Two denoised versions of x, in x's float units.
    x : ndarray
        The noisy data, in float units.
    risks : pair of float
        Each output's estimated risk (Stein's estimate, or the loss-based estimate of a
        J-invariant or shrunk output, which is Stein's for those outputs).

    Returns
    -------
    risk : float
    """
    a, b, c = _mixture_terms(first, second, x, risks)
    return a * weight ** 2 + b * weight + c


def mixture_weight(first, second, x, risks):
    """The weight in [0, 1] whose mix ``w first + (1 - w) second`` has the lowest
    estimated risk, and that risk.

    Stein's unbiased risk estimate of an output f of x is ``mean((f - x)**2)`` plus
    ``2 s2 div f / n - s2``, a term linear in f; so the mix's estimate is
    ``mean((mix - x)**2) + w t1 + (1 - w) t2``, each ``t`` read back from an output's
    estimated risk and its residual: a quadratic in w, minimised in closed form. The
    outputs' estimated risks must be in x's units, computed on this x.

    Parameters
    ----------
    first, second : ndarray
        Two denoised versions of x, in x's float units.
    x : ndarray
        The noisy data, in float units.
    risks : pair of float
        Each output's estimated risk on x.

    Returns
    -------
    weight : float
        In [0, 1]; 1 when the outputs are equal.
    risk : float
        The mix's estimated risk.

    References
    ----------
    .. [1] J. H. Choi, O. A. Elgendy and S. H. Chan, "Optimal combination of image
       denoisers", IEEE Transactions on Image Processing 28(8), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=10_000)  # pure noise of variance 1
    >>> zero, data = np.zeros_like(x), x.copy()
    >>> risks = [np.mean(x**2) - 1.0, 1.0]  # Stein's: zero's divergence 0, data's 1
    >>> weight, risk = mixture_weight(zero, data, x, risks)
    >>> weight > 0.98  # (nearly) all on the zero output: the clean signal is 0
    True
    """
    a, b, c = _mixture_terms(first, second, x, risks)
    weight = 1.0 if not a > 0 else float(np.clip(-b / (2 * a), 0.0, 1.0))
    return weight, a * weight ** 2 + b * weight + c


def _final_step(estimator):
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _settings_that_fit(estimator, grid, probe):
    """The grid without the values the data's size or type cannot take.

    Each value is tried alone (the others at the estimator's own), by fitting on one
    sample: an image filter's ``fit`` only validates. A parameter left with no value
    drops the family: ``({}, the last refusal's message)``.
    """
    kept, refusal = {}, None
    for name, values in grid.items():
        ok = []
        for value in values:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clone(estimator).set_params(**{name: value}).fit(probe)
            except (ValueError, TypeError) as exc:
                refusal = " ".join(str(exc).split())
                continue
            ok.append(value)
        if not ok:
            return {}, refusal
        kept[name] = ok
    return kept, None


def _merge_results(searches, score_name):
    """One ``cv_results_`` table over the families' searches (rows in search order)."""
    rows = {"family": [], "params": []}
    columns = ("mean_test_score", "std_test_score", "mean_fit_time", "std_fit_time",
               "mean_score_time", "std_score_time")
    for key in columns:
        rows[key] = []
    rank_in_family = []
    for name, search in searches.items():
        results = search.cv_results_
        n = len(results["params"])
        rows["family"] += [name] * n
        rows["params"] += [dict(p) for p in results["params"]]
        for key in columns:
            rows[key] += list(np.asarray(results[key], dtype=float))
        rank_in_family += list(np.asarray(results["rank_test_score"], dtype=int))
    out = {"family": np.array(rows["family"], dtype=object), "params": rows["params"]}
    names = sorted({k for p in rows["params"] for k in p})
    for name in names:
        column = np.ma.MaskedArray(np.empty(len(rows["params"]), dtype=object),
                                   mask=True)
        for i, p in enumerate(rows["params"]):
            if name in p:
                column[i] = p[name]
        out[f"param_{name}"] = column
    for key in columns:
        out[key] = np.array(rows[key], dtype=float)
    out[score_name] = -out["mean_test_score"]
    scores = np.where(np.isnan(out["mean_test_score"]), -np.inf, out["mean_test_score"])
    # 1 for the best, ties share the lowest rank (scikit-learn's "min" ranking)
    out["rank_test_score"] = np.array(
        [1 + int(np.sum(scores > s)) for s in scores], dtype=np.int32)
    out["rank_in_family"] = np.array(rank_in_family, dtype=np.int32)
    return out
